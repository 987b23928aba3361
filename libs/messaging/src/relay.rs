//! The outbox relay, whatever the outbox: publishes the events that a service committed beside
//! its own writes, confirmed, and only then removes them. A batch is claimed (held by this
//! relay, skipped by any other), published all at once, and removed when the broker confirmed
//! every event of it; a publish that fails gives the whole batch back, to be published again.
//! While RabbitMQ is away the events wait in the outbox; a relay that dies holding a batch
//! gives it back too (its transaction ends, its stream entries are taken over). So every event
//! is published at least once, and twice only if a relay dies between the broker's confirms
//! and the removal: consumers deduplicate on the event id.
//!
//! An [`Outbox`] says how to claim, remove and give back; the user service's is a Postgres
//! table, the slack service's a Redis stream. Any number of relays may share one.

use std::future::Future;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::join_all;
use opentelemetry::Context;

use crate::publisher::{Outgoing, PublishError, Publisher};
use crate::topology::{self, ExchangeType};

/// Why an outbox could not be read or written.
pub type OutboxError = Box<dyn std::error::Error + Send + Sync>;

/// One event waiting in an outbox.
#[derive(Debug)]
pub struct Pending {
    /// The event id, also its AMQP `message_id`.
    pub id: String,
    pub body: Vec<u8>,
    /// The context of the request that stored it: its PRODUCER span's parent.
    pub trace: Context,
}

/// Where an outbox's events go.
#[derive(Debug, Clone, Copy)]
pub struct Destination {
    pub exchange: &'static str,
    pub exchange_type: ExchangeType,
    pub routing_key: &'static str,
    /// Whether an event that no queue takes is an error (it then waits in the outbox).
    pub mandatory: bool,
}

/// An outbox's backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub pending: u64,
    /// The age of the oldest pending event; zero when none waits.
    pub oldest: Duration,
}

/// Measures an outbox's backlog, on a clock of its own: it is seen growing while the broker is
/// away and the relay waits for it.
pub trait Meter: Send + Sync + 'static {
    fn backlog(&self) -> impl Future<Output = Result<Backlog, OutboxError>> + Send;
}

/// A claimed batch and its events; `None` when nothing is pending.
pub type Claimed<C> = Option<(C, Vec<Pending>)>;

/// Where a relay takes its events from.
pub trait Outbox: Send + 'static {
    /// A batch this relay holds until it removes it or gives it back.
    type Claim: Send;
    type Meter: Meter;

    fn destination(&self) -> Destination;

    fn meter(&self) -> Self::Meter;

    /// Claims up to `max` pending events; `None` when none is pending.
    fn claim(
        &mut self,
        max: usize,
    ) -> impl Future<Output = Result<Claimed<Self::Claim>, OutboxError>> + Send;

    /// Removes a batch the broker confirmed in full.
    fn remove(
        &mut self,
        claim: Self::Claim,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send;

    /// Gives a batch back: each of its events is published again.
    fn give_back(
        &mut self,
        claim: Self::Claim,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send;

    /// After a batch that was not full: waits until events may be pending again, for at most
    /// `poll_interval` (at once, for an outbox whose claim waits for events itself).
    fn wait(&mut self, poll_interval: Duration) -> impl Future<Output = ()> + Send;
}

/// How a relay runs.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub amqp_url: String,
    /// Events published per claim.
    pub batch: usize,
    /// The longest wait between two looks at the outbox, the pause after a failure, and how
    /// often the backlog is measured.
    pub poll_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("the outbox failed: {0}")]
    Outbox(OutboxError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// Relays the events of `outbox` until `shutdown` completes (and the batch in flight, if any,
/// is settled).
pub async fn run<O: Outbox>(
    mut outbox: O,
    settings: RelaySettings,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    let destination = outbox.destination();
    let measuring = telemetry::spawn(measure(outbox.meter(), settings.poll_interval));
    let _stop_measuring = AbortOnDrop(measuring);
    loop {
        let connection = tokio::select! {
            connection = crate::connect_with_backoff(&settings.amqp_url) => connection,
            () = &mut shutdown => return,
        };
        let publisher = match open(&connection, destination).await {
            Ok(publisher) => publisher,
            Err(error) => {
                tracing::warn!(%error, "cannot open a publishing channel; reconnecting");
                continue;
            }
        };
        loop {
            // A batch in flight is finished, never dropped: dropped between the broker's
            // confirms and its removal, it would be published again.
            let relayed = relay_batch(&mut outbox, &publisher, destination, settings.batch).await;
            // After a partial batch, wait for more; after a failure, pause.
            let failed = match relayed {
                // A full batch: more may wait, unless the relay is asked to stop.
                Ok(published) if published == settings.batch => {
                    if (&mut shutdown).now_or_never().is_some() {
                        return;
                    }
                    continue;
                }
                Ok(_) => false,
                Err(RelayError::Publish(PublishError::Unroutable {
                    exchange,
                    routing_key,
                })) => {
                    tracing::warn!(
                        %exchange, %routing_key,
                        "no queue takes these events yet; they wait in the outbox"
                    );
                    true
                }
                Err(RelayError::Publish(error)) => {
                    tracing::warn!(%error, "publishing failed; the events wait in the outbox");
                    break;
                }
                Err(RelayError::Outbox(error)) => {
                    tracing::warn!(%error, "cannot read the outbox");
                    true
                }
            };
            let waited = async {
                if failed {
                    tokio::time::sleep(settings.poll_interval).await;
                } else {
                    outbox.wait(settings.poll_interval).await;
                }
            };
            tokio::select! {
                () = waited => {}
                () = &mut shutdown => return,
            }
        }
    }
}

async fn open(
    connection: &lapin::Connection,
    destination: Destination,
) -> lapin::Result<Publisher> {
    let publisher = Publisher::open(connection).await?;
    topology::declare_exchange(
        publisher.channel(),
        destination.exchange,
        destination.exchange_type,
    )
    .await?;
    Ok(publisher)
}

/// Claims one batch, publishes it whole, and removes it or gives it back; how many events were
/// published.
async fn relay_batch<O: Outbox>(
    outbox: &mut O,
    publisher: &Publisher,
    destination: Destination,
    batch: usize,
) -> Result<usize, RelayError> {
    let Some((claim, events)) = outbox.claim(batch).await.map_err(RelayError::Outbox)? else {
        return Ok(0);
    };
    // The whole batch at once: the confirms come back together.
    let outcomes = join_all(events.iter().map(|event| {
        let mut message = Outgoing::new(
            destination.exchange,
            destination.routing_key,
            &event.id,
            &event.body,
        );
        message.parent = Some(event.trace.clone());
        message.mandatory = destination.mandatory;
        publisher.publish(message)
    }))
    .await;
    match outcomes.into_iter().find_map(Result::err) {
        None => {
            outbox.remove(claim).await.map_err(RelayError::Outbox)?;
            Ok(events.len())
        }
        Some(error) => {
            outbox.give_back(claim).await.map_err(RelayError::Outbox)?;
            Err(error.into())
        }
    }
}

/// Measures the backlog every `every`, for as long as the relay runs.
async fn measure(meter: impl Meter, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        if let Ok(backlog) = meter.backlog().await {
            telemetry::amqp::record_outbox_backlog(backlog.pending, backlog.oldest);
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
