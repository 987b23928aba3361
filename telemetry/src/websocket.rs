//! Live-feed telemetry: the span of each frame sent on a WebSocket, in the trace of the event it
//! carries and linked to the connection's upgrade request, and the feed's metrics. No span stays
//! open for a whole connection: the upgrade is an ordinary request, and each frame a short span.

use std::time::Duration;

use metrics::{counter, gauge, histogram};
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub(crate) const CONNECTIONS_ACTIVE: &str = "websocket_connections_active";
pub(crate) const FRAMES_SENT: &str = "websocket_frames_sent_total";
pub(crate) const CLIENTS_CLOSED: &str = "websocket_clients_closed_total";
pub(crate) const DELIVERY_LAG: &str = "websocket_delivery_lag_seconds";

/// The span of one frame sent: a child of `event` (the span that received the event, in the
/// trace of the request that caused it), linked to `connection` (the upgrade request's span).
pub fn frame_span(
    route: &str,
    event_type: &str,
    event_id: &str,
    event: &SpanContext,
    connection: &SpanContext,
) -> Span {
    let span = tracing::info_span!(
        "websocket frame",
        otel.name = %format_args!("send {event_type}"),
        otel.kind = "producer",
        messaging.system = "websocket",
        messaging.operation.type = "send",
        messaging.operation.name = "send",
        messaging.destination.name = route,
        messaging.message.id = event_id,
    );
    if event.is_valid() {
        let _ = span.set_parent(Context::new().with_remote_span_context(event.clone()));
    }
    if connection.is_valid() {
        span.add_link(connection.clone());
    }
    span
}

/// The context of `span`, to parent or link later spans to.
pub fn span_context(span: &Span) -> SpanContext {
    span.context().span().span_context().clone()
}

/// One more, or one fewer, client connected.
pub fn record_connected(delta: f64) {
    gauge!(CONNECTIONS_ACTIVE).increment(delta);
}

/// One frame of `event_type` sent, `lag` after its event occurred.
pub fn record_frame_sent(event_type: &'static str, lag: Duration) {
    counter!(FRAMES_SENT, "type" => event_type).increment(1);
    histogram!(DELIVERY_LAG).record(lag.as_secs_f64());
}

/// A client closed, and why (a bounded reason: `client`, `slow`, `idle`, `too_large`,
/// `unsupported`, `shutdown`, `error`).
pub fn record_closed(reason: &'static str) {
    counter!(CLIENTS_CLOSED, "reason" => reason).increment(1);
}
