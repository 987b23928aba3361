//! The request headers that carry meaning between the processes (`contract::headers`): who the
//! gateway authenticated, and a client's `Idempotency-Key`.

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use contract::users::IdempotencyKey;
use uuid::Uuid;

use crate::problem::Problem;

/// The subject the gateway authenticated, as it tells the services behind it.
pub fn enduser(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(contract::headers::ENDUSER)
        .and_then(|value| value.to_str().ok())
}

/// Middleware for a service behind the gateway: puts the gateway's `x-enduser-id` on the
/// request's SERVER span as `enduser.id`. Add it inside `telemetry::instrument`.
pub async fn record_enduser(request: Request, next: Next) -> Response {
    if let Some(subject) = enduser(request.headers()) {
        telemetry::http_server::record_enduser(subject);
    }
    next.run(request).await
}

/// The event id that the request's `Idempotency-Key` names for the client `subject`: `None`
/// without a key, a 400 for a malformed one.
pub fn creation_event_id(headers: &HeaderMap, subject: &str) -> Result<Option<Uuid>, Problem> {
    match headers.get(contract::headers::IDEMPOTENCY_KEY) {
        None => Ok(None),
        Some(value) => IdempotencyKey::parse(value.as_bytes())
            .map(|key| Some(key.event_id(subject)))
            .map_err(Problem::malformed),
    }
}
