//! RPC telemetry: the CLIENT span of a call and the SERVER span that answers it across the
//! broker, with the OpenTelemetry RPC and messaging attributes, and their duration metrics.
//!
//! The caller writes its CLIENT span's context into the request's headers
//! ([`crate::amqp::inject_headers`]); the server's span is that span's child, so one call is
//! one trace: caller → server → whatever the server does.

use std::time::Duration;

use lapin::types::FieldTable;
use metrics::{counter, histogram};
use opentelemetry::trace::TraceContextExt;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation;

pub(crate) const CLIENT_DURATION: &str = "rpc_client_duration_seconds";
pub(crate) const SERVER_DURATION: &str = "rpc_server_duration_seconds";
pub(crate) const LATE_REPLIES: &str = "rpc_client_late_replies_total";
pub(crate) const DROPPED_REQUESTS: &str = "rpc_server_dropped_requests_total";

/// The `method` label of a method that is not one of the server's: one value for all, so
/// random method names cannot grow the number of series.
pub const OTHER_METHOD: &str = "_OTHER";

/// How a call ended, as a bounded label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcOutcome {
    /// Answered with a result.
    Ok,
    /// Answered with a JSON-RPC error.
    Error,
    /// No answer in time (client only).
    Timeout,
    /// Not sent: no server, the broker unreachable, or the connection lost mid-call.
    Unavailable,
}

impl RpcOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
        }
    }
}

fn span(kind: &'static str, method: &str, queue: &str, correlation_id: &str) -> Span {
    tracing::info_span!(
        "rpc",
        otel.name = method,
        otel.kind = kind,
        otel.status_code = Empty,
        rpc.system.name = "jsonrpc",
        rpc.system = "jsonrpc",
        rpc.method = method,
        rpc.jsonrpc.error_code = Empty,
        messaging.system = "rabbitmq",
        messaging.destination.name = queue,
        messaging.message.conversation_id = correlation_id,
        error.type = Empty,
        fault.injected = Empty,
    )
}

/// The CLIENT span of one call of `method` to `queue`, a child of the current span.
pub fn client_span(method: &str, queue: &str, correlation_id: &str) -> Span {
    span("client", method, queue, correlation_id)
}

/// The SERVER span answering one call: the child of the caller's span, whose context is in
/// the request's `headers` (a new trace when there is none).
pub fn server_span(
    method: &str,
    queue: &str,
    correlation_id: &str,
    headers: Option<&FieldTable>,
) -> Span {
    let span = span("server", method, queue, correlation_id);
    if let Some(headers) = headers {
        let caller = propagation::extract_amqp(headers);
        if caller.span().span_context().is_valid() {
            let _ = span.set_parent(caller);
        }
    }
    span
}

/// Marks `span` as answered with the JSON-RPC error `code`.
pub fn record_error_code(span: &Span, code: i64) {
    span.record("rpc.jsonrpc.error_code", code);
    crate::record_error(span, &code.to_string());
}

/// Measures one call, on the caller's side.
pub fn record_client(method: &'static str, outcome: RpcOutcome, elapsed: Duration) {
    histogram!(CLIENT_DURATION, "method" => method, "outcome" => outcome.as_str())
        .record(elapsed.as_secs_f64());
}

/// Measures one call, on the server's side; `method` is one of the server's or
/// [`OTHER_METHOD`].
pub fn record_server(method: &'static str, outcome: RpcOutcome, elapsed: Duration) {
    histogram!(SERVER_DURATION, "method" => method, "outcome" => outcome.as_str())
        .record(elapsed.as_secs_f64());
}

/// Counts a reply that came after its caller gave up (it is discarded).
pub fn record_late_reply() {
    counter!(LATE_REPLIES).increment(1);
}

/// Counts a request that could not be answered (no `reply_to`, no `correlation_id`): dropped.
pub fn record_dropped(reason: &'static str) {
    counter!(DROPPED_REQUESTS, "reason" => reason).increment(1);
}
