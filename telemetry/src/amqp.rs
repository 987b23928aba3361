//! Messaging telemetry for RabbitMQ: PRODUCER and CONSUMER spans with the OpenTelemetry
//! messaging attributes, the trace context carried in the AMQP message headers, and the
//! publish and process metrics.
//!
//! A producer opens [`publish_span`] and writes its context into the message headers with
//! [`inject_headers`]; the consumer opens [`process_span`], which continues that context as its
//! parent and also links to it, so the trace reads as one tree while the link marks the
//! asynchronous hop.

use std::time::Duration;

use lapin::types::FieldTable;
use metrics::{counter, gauge, histogram};
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation;

pub(crate) const PUBLISHED_MESSAGES: &str = "messaging_client_published_messages_total";
pub(crate) const PROCESS_DURATION: &str = "messaging_process_duration_seconds";

/// How handling a message ended, as a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Published and confirmed, or processed and acknowledged.
    Ok,
    /// Failed, to be tried again later.
    Retry,
    /// Given up on: sent to a dead-letter queue.
    DeadLetter,
    /// Not published (broker unreachable or the publish not confirmed).
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Retry => "retry",
            Outcome::DeadLetter => "dead_letter",
            Outcome::Error => "error",
        }
    }
}

/// The PRODUCER span of one publish: a child of `parent` when given (the context saved with an
/// outbox row, say), else of the current span.
pub fn publish_span(
    exchange: &str,
    routing_key: &str,
    message_id: &str,
    parent: Option<Context>,
) -> Span {
    let span = tracing::info_span!(
        "publish",
        otel.name = %format_args!("publish {routing_key}"),
        otel.kind = "producer",
        otel.status_code = Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.operation.name = "publish",
        messaging.destination.name = exchange,
        messaging.rabbitmq.destination.routing_key = routing_key,
        messaging.message.id = message_id,
        error.type = Empty,
    );
    if let Some(parent) = parent.filter(|cx| cx.span().span_context().is_valid()) {
        let _ = span.set_parent(parent);
    }
    span
}

/// Writes the context of `span` into message headers.
pub fn inject_headers(span: &Span, headers: &mut FieldTable) {
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        propagation::inject_amqp(&cx, headers);
    }
}

/// The CONSUMER span of processing one delivery: a child of the producer's context found in
/// `headers` (a new trace when there is none), with a link to it.
pub fn process_span(
    queue: &str,
    exchange: &str,
    routing_key: &str,
    message_id: &str,
    headers: Option<&FieldTable>,
) -> Span {
    let span = tracing::info_span!(
        "process",
        otel.name = %format_args!("process {routing_key}"),
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = exchange,
        messaging.destination.subscription.name = queue,
        messaging.rabbitmq.destination.routing_key = routing_key,
        messaging.message.id = message_id,
        error.type = Empty,
        fault.injected = Empty,
    );
    if let Some(headers) = headers {
        let producer = propagation::extract_amqp(headers);
        let producer_span = producer.span().span_context().clone();
        if producer_span.is_valid() {
            let _ = span.set_parent(producer);
            span.add_link(producer_span);
        }
    }
    span
}

/// Counts one publish.
pub fn record_published(exchange: &str, routing_key: &str, outcome: Outcome) {
    counter!(
        PUBLISHED_MESSAGES,
        "exchange" => exchange.to_owned(),
        "routing_key" => routing_key.to_owned(),
        "outcome" => outcome.as_str(),
    )
    .increment(1);
}

pub(crate) const CONSUMER_ACTIVE: &str = "messaging_consumer_active";

/// Says whether the consumer of `queue` is consuming (1) or not (0): what an alert on a stopped
/// consumer watches.
pub fn record_consuming(queue: &str, consuming: bool) {
    gauge!(CONSUMER_ACTIVE, "queue" => queue.to_owned()).set(if consuming { 1.0 } else { 0.0 });
}

pub(crate) const OUTBOX_PENDING: &str = "outbox_pending_events";
pub(crate) const OUTBOX_OLDEST_AGE: &str = "outbox_oldest_pending_age_seconds";

/// Records an outbox's backlog: the events not yet confirmed by the broker, and the age of the
/// oldest of them (0 when none waits).
pub fn record_outbox_backlog(pending: u64, oldest_age: Duration) {
    gauge!(OUTBOX_PENDING).set(pending as f64);
    gauge!(OUTBOX_OLDEST_AGE).set(oldest_age.as_secs_f64());
}

pub(crate) const EVENT_LAG: &str = "messaging_event_delivery_lag_seconds";

/// Measures how long an event took from its commit (`occurred_at`, stored with the row that
/// made it) to having been handled by the consumer of `queue`: the outbox's poll or wake-up,
/// the relay, the broker and the handling together.
pub fn record_event_lag(queue: &str, occurred_at: chrono::DateTime<chrono::Utc>) {
    let lag = (chrono::Utc::now() - occurred_at)
        .to_std()
        .unwrap_or_default();
    histogram!(EVENT_LAG, "queue" => queue.to_owned()).record(lag.as_secs_f64());
}

/// Measures the processing of one delivery.
pub fn record_processed(queue: &str, routing_key: &str, outcome: Outcome, elapsed: Duration) {
    histogram!(
        PROCESS_DURATION,
        "queue" => queue.to_owned(),
        "routing_key" => routing_key.to_owned(),
        "outcome" => outcome.as_str(),
    )
    .record(elapsed.as_secs_f64());
}
