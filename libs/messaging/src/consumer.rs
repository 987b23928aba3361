//! A queue consumer that never loses a message: each delivery is handled inside a CONSUMER span
//! that continues the producer's trace, and acknowledged only once its fate is settled — done,
//! parked in the retry queue for a later attempt, or moved to the dead-letter queue. Moving a
//! message is a confirmed publish before the ack, so a crash in between redelivers it (handlers
//! are idempotent) rather than dropping it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use contract::broker::{ATTEMPT_HEADER, REASON_HEADER};
use futures_util::StreamExt;
use lapin::Connection;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use settings::{Lookup, SettingsError};
use telemetry::amqp::{self, Outcome};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::connection::connect_with_backoff;
use crate::publisher::{Outgoing, Publisher};
use crate::topology::ConsumerQueue;

/// The longest wait for the messages in hand to settle when the consumer stops or loses its
/// connection.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest wait for the broker to take an acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

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
            amqp_url: crate::amqp_url(lookup),
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

/// Whether the consumer is connected and consuming, for the readiness probe.
#[derive(Debug, Clone, Default)]
pub struct ConsumerStatus(Arc<AtomicBool>);

impl ConsumerStatus {
    pub fn is_consuming(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, consuming: bool) {
        self.0.store(consuming, Ordering::Relaxed);
    }
}

/// What a readiness probe asks of a consumer.
impl From<ConsumerStatus> for service_kit::probes::Consuming {
    fn from(status: ConsumerStatus) -> Self {
        std::sync::Arc::new(move || status.is_consuming())
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
    tokio::pin!(shutdown);
    loop {
        let connection = tokio::select! {
            connection = connect_with_backoff(&settings.amqp_url) => connection,
            () = &mut shutdown => return,
        };
        let ended = consume(&connection, &settings, &handler, &status, &mut shutdown).await;
        status.set(false);
        amqp::record_consuming(settings.queue.name, false);
        match ended {
            Ok(()) => {
                let _ = connection.close(200, "shutting down".into()).await;
                tracing::info!(queue = settings.queue.name, "consumer stopped");
                return;
            }
            Err(error) => {
                tracing::warn!(queue = settings.queue.name, %error, "consumer lost the broker; reconnecting");
            }
        }
    }
}

/// Consumes on one connection; `Ok` after a shutdown, `Err` when the connection failed.
async fn consume<H: Handler>(
    connection: &Connection,
    settings: &ConsumerSettings,
    handler: &Arc<H>,
    status: &ConsumerStatus,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> lapin::Result<()> {
    let channel = connection.create_channel().await?;
    settings.queue.declare(&channel).await?;
    channel
        .basic_qos(settings.prefetch, BasicQosOptions::default())
        .await?;
    // Retries and dead letters are published on a channel of their own, in confirm mode.
    let publisher = Publisher::open(connection).await?;
    let mut deliveries = channel
        .basic_consume(
            settings.queue.name.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let consumer_tag = deliveries.tag();
    status.set(true);
    amqp::record_consuming(settings.queue.name, true);
    tracing::info!(queue = settings.queue.name, "consuming");

    let mut in_hand = JoinSet::new();
    let outcome = loop {
        tokio::select! {
            () = &mut *shutdown => {
                let _ = channel.basic_cancel(consumer_tag.clone(), BasicCancelOptions::default()).await;
                break Ok(());
            }
            delivery = deliveries.next() => match delivery {
                Some(Ok(delivery)) => {
                    let (settings, handler, publisher) = (settings.clone(), Arc::clone(handler), publisher.clone());
                    in_hand.spawn(async move { settle(delivery, &settings, &*handler, &publisher).await });
                }
                Some(Err(error)) => break Err(error),
                None => break Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
                    lapin::ChannelState::Closed,
                    "the consumer was cancelled",
                ))),
            },
            Some(_) = in_hand.join_next(), if !in_hand.is_empty() => {}
        }
    };
    // Finish what is in hand: on shutdown these are acknowledged; on a lost connection their
    // acks fail and the broker redelivers them. A dead connection may leave an ack or a confirm
    // unanswered, so the wait is bounded; whatever is still unsettled then is redelivered.
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while in_hand.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            queue = settings.queue.name,
            "messages in hand did not settle; the broker redelivers them"
        );
        in_hand.abort_all();
    }
    if outcome.is_ok() {
        let _ = channel.close(200, "shutting down".into()).await;
        let _ = publisher.channel().close(200, "shutting down".into()).await;
    }
    outcome
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
