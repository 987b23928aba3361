//! HTTP header names that carry meaning between the processes (the trace headers are
//! `telemetry`'s).

/// A client's own name for one creation: sent again, the request answers what it created.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Passed through the gateway both ways, so a client's request id can be followed in every log.
pub const REQUEST_ID: &str = "x-request-id";

/// Who the gateway authenticated, told to the services behind it (which trust it only from the
/// gateway: a client's own is never passed on). It becomes `enduser.id` on their spans.
pub const ENDUSER: &str = "x-enduser-id";

/// The secret the gateway shares with the services behind it (`INTERNAL_TOKEN`): a request
/// that carries it comes from the gateway, and only then is its [`ENDUSER`] believed.
pub const INTERNAL_TOKEN: &str = "x-internal-token";
