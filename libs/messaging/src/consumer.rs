//! A queue consumer that never loses a message: each delivery is handled inside a CONSUMER span
//! that continues the producer's trace, and acknowledged only once its fate is settled — done,
//! parked in the retry queue for a later attempt, or moved to the dead-letter queue. Moving a
//! message is a confirmed publish before the ack, so a crash in between redelivers it (handlers
//! are idempotent) rather than dropping it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use contract::broker::{ATTEMPT_HEADER, REASON_HEADER};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::{AMQPValue, LongString, ShortString};
use settings::{Lookup, SettingsError};
use telemetry::amqp::{self, Outcome};
use tracing::Instrument;

use crate::publisher::{Outgoing, Publisher};
use crate::subscription::{ACK_TIMEOUT, ConsumerStatus, Process, Subscription};
use crate::topology::ConsumerQueue;

/// What should become of a handled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Handled: acknowledge it.
    Done,
    /// Failed for now (a dependency is down): try again after the retry delay, up to the
    /// attempt limit, then dead-letter it.
    Retry(String),
    /// Can never succeed (malformed, invalid): dead-letter it now.
    DeadLetter(String),
}

/// One delivery, as a handler sees it.
#[derive(Debug)]
pub struct Message<'a> {
    pub body: &'a [u8],
    pub message_id: Option<&'a str>,
    /// 1 on the first delivery, 2 on the first retry, ...
    pub attempt: u32,
    /// The consumer's channel in confirm mode: what a handler publishes here is confirmed
    /// before the delivery is acknowledged, so an event it announces is never lost (a
    /// redelivery announces it again, under the same id).
    pub publisher: &'a Publisher,
}

/// What a consumer does with each message.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, message: &Message<'_>) -> impl Future<Output = Disposition> + Send;
}

#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub amqp_url: String,
    pub queue: ConsumerQueue,
    /// Unacknowledged deliveries in hand at once.
    pub prefetch: u16,
    /// Attempts before a retried message is dead-lettered.
    pub max_attempts: u32,
    /// Wait between attempts.
    pub retry_delay: Duration,
}

impl ConsumerSettings {
    /// How a consumer of `queue` takes its deliveries: `AMQP_URL`, `AMQP_PREFETCH` (16),
    /// `AMQP_MAX_ATTEMPTS` (5) and `AMQP_RETRY_DELAY_MS` (5000).
    pub fn from_lookup(lookup: &impl Lookup, queue: ConsumerQueue) -> Result<Self, SettingsError> {
        Ok(Self {
            amqp_url: crate::amqp_url(lookup)?,
            queue,
            prefetch: lookup
                .parse::<u16>("AMQP_PREFETCH", 16, "expected a whole number")?
                .max(1),
            max_attempts: lookup
                .parse::<u32>("AMQP_MAX_ATTEMPTS", 5, "expected a whole number")?
                .max(1),
            retry_delay: lookup.millis("AMQP_RETRY_DELAY_MS", 5000)?,
        })
    }
}

/// Consumes `settings.queue` until `shutdown` completes, reconnecting (with backoff) whenever
/// the broker goes away. On shutdown it stops taking deliveries, finishes and acknowledges
/// those in hand, and returns; deliveries not yet taken stay in the queue.
pub async fn run<H: Handler>(
    settings: ConsumerSettings,
    handler: Arc<H>,
    status: ConsumerStatus,
    shutdown: impl Future<Output = ()> + Send,
) {
    let queue = settings.queue;
    let subscription = Subscription {
        amqp_url: settings.amqp_url.clone(),
        queue: queue.name,
        prefetch: settings.prefetch,
        declare: Arc::new(move |channel| Box::pin(async move { queue.declare(&channel).await })),
    };
    let settling = Arc::new(Settling { settings, handler });
    crate::subscription::run(subscription, settling, status, shutdown).await;
}

/// Settles each delivery of a consumer queue with its handler.
struct Settling<H> {
    settings: ConsumerSettings,
    handler: Arc<H>,
}

impl<H: Handler> Process for Settling<H> {
    async fn process(&self, delivery: Delivery, publisher: Publisher) {
        settle(delivery, &self.settings, &*self.handler, &publisher).await;
    }
}

fn attempt_of(delivery: &Delivery) -> u32 {
    let header = delivery.properties.headers().as_ref().and_then(|headers| {
        headers
            .inner()
            .get(&ShortString::from(ATTEMPT_HEADER))
            .cloned()
    });
    match header {
        Some(AMQPValue::LongUInt(n)) => n.max(1),
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(n).unwrap_or(1).max(1),
        Some(AMQPValue::LongInt(n)) => u32::try_from(n).unwrap_or(1).max(1),
        _ => 1,
    }
}

/// What becomes of a handled delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settlement {
    outcome: Outcome,
    /// Where the message goes before the ack (none when it is done), and why.
    moved_to: Option<Move>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Move {
    queue: String,
    reason: String,
    /// The `x-attempt` it carries there.
    attempt: u32,
    /// How long it waits there before it comes back (retries only).
    delay: Option<Duration>,
}

/// Decides, from the handler's answer and the attempt number, what becomes of a delivery.
fn settlement(disposition: Disposition, attempt: u32, settings: &ConsumerSettings) -> Settlement {
    let queue = &settings.queue;
    let (outcome, moved_to) = match disposition {
        Disposition::Done => (Outcome::Ok, None),
        Disposition::Retry(reason) if attempt < settings.max_attempts => (
            Outcome::Retry,
            Some(Move {
                queue: queue.retry_queue(),
                reason,
                attempt: attempt + 1,
                delay: Some(settings.retry_delay),
            }),
        ),
        Disposition::Retry(reason) => (
            Outcome::DeadLetter,
            Some(Move {
                queue: queue.dead_letter_queue(),
                reason: format!("gave up after {attempt} attempts: {reason}"),
                attempt,
                delay: None,
            }),
        ),
        Disposition::DeadLetter(reason) => (
            Outcome::DeadLetter,
            Some(Move {
                queue: queue.dead_letter_queue(),
                reason,
                attempt,
                delay: None,
            }),
        ),
    };
    Settlement { outcome, moved_to }
}

/// Handles one delivery, then settles it as [`settlement`] decides, inside its CONSUMER span.
async fn settle<H: Handler>(
    delivery: Delivery,
    settings: &ConsumerSettings,
    handler: &H,
    publisher: &Publisher,
) {
    let started = Instant::now();
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str().to_owned());
    let span = amqp::process_span(
        settings.queue.name,
        delivery.exchange.as_str(),
        delivery.routing_key.as_str(),
        message_id.as_deref().unwrap_or_default(),
        delivery.properties.headers().as_ref(),
    );
    let attempt = attempt_of(&delivery);
    let message = Message {
        body: &delivery.data,
        message_id: message_id.as_deref(),
        attempt,
        publisher,
    };
    let disposition = handler.handle(&message).instrument(span.clone()).await;
    let Settlement { outcome, moved_to } = settlement(disposition, attempt, settings);
    move_and_ack(&delivery, moved_to, message_id.as_deref(), publisher)
        .instrument(span.clone())
        .await;
    match outcome {
        Outcome::Retry => telemetry::record_error(&span, "retry"),
        Outcome::DeadLetter => telemetry::record_error(&span, "dead_letter"),
        _ => {}
    }
    amqp::record_processed(
        settings.queue.name,
        delivery.routing_key.as_str(),
        outcome,
        started.elapsed(),
    );
}

/// Publishes the delivery to where it is moved, confirmed, and only then acknowledges it; a
/// move that fails puts it back in its queue instead.
async fn move_and_ack(
    delivery: &Delivery,
    moved_to: Option<Move>,
    message_id: Option<&str>,
    publisher: &Publisher,
) {
    if let Some(Move {
        queue,
        reason,
        attempt,
        delay,
    }) = moved_to
    {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        // A signed 64-bit integer: RabbitMQ drops unsigned 32-bit table values.
        headers.insert(
            ATTEMPT_HEADER.into(),
            AMQPValue::LongLongInt(i64::from(attempt)),
        );
        headers.insert(
            REASON_HEADER.into(),
            AMQPValue::LongString(LongString::from(reason.as_str())),
        );
        let mut moved = Outgoing::new("", &queue, message_id.unwrap_or_default(), &delivery.data);
        moved.headers = headers;
        moved.expiration = delay;
        if let Err(error) = publisher.publish(moved).await {
            tracing::warn!(%error, queue, "could not move the message; it goes back to its queue");
            let nack = delivery.nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            });
            let _ = tokio::time::timeout(ACK_TIMEOUT, nack).await;
            return;
        }
        match delay {
            Some(_) => tracing::info!(attempt, %reason, "message will be retried"),
            None => tracing::warn!(attempt, %reason, queue, "message dead-lettered"),
        }
    }
    match tokio::time::timeout(ACK_TIMEOUT, delivery.ack(BasicAckOptions::default())).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "could not acknowledge; the broker will redeliver")
        }
        Err(_) => tracing::warn!("the acknowledgement was not taken; the broker will redeliver"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ConsumerSettings {
        ConsumerSettings {
            amqp_url: String::new(),
            queue: crate::topology::SLACK_QUEUE,
            prefetch: 1,
            max_attempts: 3,
            retry_delay: Duration::from_millis(100),
        }
    }

    #[test]
    fn failures_are_retried_until_the_last_attempt_then_dead_lettered() {
        let settings = settings();
        assert_eq!(
            settlement(Disposition::Done, 1, &settings),
            Settlement {
                outcome: Outcome::Ok,
                moved_to: None
            }
        );
        let retried = settlement(Disposition::Retry("down".into()), 2, &settings);
        assert_eq!(retried.outcome, Outcome::Retry);
        assert_eq!(
            retried.moved_to,
            Some(Move {
                queue: "slack-queue.user-created.retry".into(),
                reason: "down".into(),
                attempt: 3,
                delay: Some(Duration::from_millis(100)),
            })
        );
        let given_up = settlement(Disposition::Retry("down".into()), 3, &settings);
        assert_eq!(given_up.outcome, Outcome::DeadLetter);
        let moved = given_up.moved_to.unwrap();
        assert_eq!(moved.queue, "slack-queue.user-created.dead");
        assert_eq!(moved.reason, "gave up after 3 attempts: down");
        assert_eq!((moved.attempt, moved.delay), (3, None));
        let poison = settlement(Disposition::DeadLetter("not JSON".into()), 1, &settings);
        assert_eq!(poison.outcome, Outcome::DeadLetter);
        assert_eq!(poison.moved_to.unwrap().attempt, 1);
    }
}
