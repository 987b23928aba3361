//! Consuming one queue for as long as the process runs: connect (with backoff), declare the
//! queue, take deliveries up to the prefetch and hand each to the process's own step on a task
//! of its own, and connect again when the broker goes away. On shutdown it stops taking
//! deliveries, lets those in hand finish, and returns; what was not taken stays queued. The
//! retrying consumer (`consumer`) and the RPC server (`rpc`) are both this loop with another
//! step.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::Connection;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use telemetry::amqp;
use tokio::task::JoinSet;

use crate::connection::connect_with_backoff;
use crate::publisher::{Publisher, Setup};

/// The longest wait for the messages in hand when the consumer stops or loses its connection.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest wait for the broker to take an acknowledgement.
pub(crate) const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// What is done with each delivery, until it is acknowledged (or given back). Moves and replies
/// go out on `publisher`, a channel of their own in confirm mode.
pub(crate) trait Process: Send + Sync + 'static {
    fn process(&self, delivery: Delivery, publisher: Publisher) -> impl Future<Output = ()> + Send;
}

/// The queue to consume, and how.
pub(crate) struct Subscription {
    pub(crate) amqp_url: String,
    pub(crate) queue: &'static str,
    /// Unacknowledged deliveries in hand at once.
    pub(crate) prefetch: u16,
    /// Declares the queue (and what it needs) before consuming.
    pub(crate) declare: Setup,
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
        Arc::new(move || status.is_consuming())
    }
}

/// Consumes until `shutdown` completes, as the module says.
pub(crate) async fn run<P: Process>(
    subscription: Subscription,
    process: Arc<P>,
    status: ConsumerStatus,
    shutdown: impl Future<Output = ()> + Send,
) {
    let queue = subscription.queue;
    tokio::pin!(shutdown);
    loop {
        let connection = tokio::select! {
            connection = connect_with_backoff(&subscription.amqp_url) => connection,
            () = &mut shutdown => return,
        };
        let ended = consume(&connection, &subscription, &process, &status, &mut shutdown).await;
        status.set(false);
        amqp::record_consuming(queue, false);
        match ended {
            Ok(()) => {
                let _ = connection.close(200, "shutting down".into()).await;
                tracing::info!(queue, "consumer stopped");
                return;
            }
            Err(error) => {
                tracing::warn!(queue, %error, "consumer lost the broker; reconnecting");
            }
        }
    }
}

/// Consumes on one connection; `Ok` after a shutdown, `Err` when the connection failed.
async fn consume<P: Process>(
    connection: &Connection,
    subscription: &Subscription,
    process: &Arc<P>,
    status: &ConsumerStatus,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> lapin::Result<()> {
    let queue = subscription.queue;
    let channel = connection.create_channel().await?;
    (subscription.declare)(channel.clone()).await?;
    channel
        .basic_qos(subscription.prefetch, BasicQosOptions::default())
        .await?;
    let publisher = Publisher::open(connection).await?;
    let mut deliveries = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let consumer_tag = deliveries.tag();
    status.set(true);
    amqp::record_consuming(queue, true);
    tracing::info!(queue, "consuming");

    let mut in_hand = JoinSet::new();
    let outcome = loop {
        tokio::select! {
            () = &mut *shutdown => {
                let _ = channel.basic_cancel(consumer_tag.clone(), BasicCancelOptions::default()).await;
                break Ok(());
            }
            delivery = deliveries.next() => match delivery {
                Some(Ok(delivery)) => {
                    let (process, publisher) = (Arc::clone(process), publisher.clone());
                    in_hand.spawn(telemetry::in_current_pipeline(async move { process.process(delivery, publisher).await }));
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
            queue,
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
