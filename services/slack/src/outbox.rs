//! The relay of `message.created` events: publishes what the store wrote to its Redis stream
//! (with each message, in one script), confirmed, to the `messages` exchange, and only then
//! acknowledges and deletes the entry. While RabbitMQ is away the events wait in the stream;
//! a relay that dies holding entries leaves them pending, and a relay claims them after
//! [`ABANDONED_AFTER`]. So every stored message is published at least once (twice only if a
//! relay dies between the broker's confirm and its acknowledgement).
//!
//! The relay is the slack service's role (any number of replicas, one consumer group).

use std::future::Future;
use std::time::Duration;

use contract::broker::{MESSAGE_CREATED, MESSAGES_EXCHANGE};
use futures_util::future::join_all;
use messaging::topology::{self, ExchangeType};
use messaging::{Outgoing, Publisher};
use metrics::gauge;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, RedisError};

/// The consumer group of every relay.
const GROUP: &str = "relay";
/// Entries read and published per round.
const BATCH: usize = 100;
/// How long a read waits for new entries.
const BLOCK: Duration = Duration::from_secs(1);
/// An entry delivered to a relay that has not acknowledged it for this long is taken over.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(30);
/// The pause after a failure (Redis or the broker away).
const PAUSE: Duration = Duration::from_secs(1);
/// How often a relay looks whether the stream exists yet.
const NO_STREAM_YET: Duration = Duration::from_millis(200);
/// How often the backlog is measured.
const MEASURE_EVERY: Duration = Duration::from_secs(1);

const PENDING: &str = "outbox_pending_events";
const OLDEST_AGE: &str = "outbox_oldest_pending_age_seconds";

/// The relay's own connection: its reads block, so they must not share the store's.
struct Stream {
    connection: ConnectionManager,
    key: String,
    /// This relay's name in the group: unique per process.
    consumer: String,
}

/// One entry: the event id, its JSON, and the context of the request that stored it.
struct Entry {
    stream_id: String,
    event_id: String,
    event: String,
    trace: String,
}

impl Entry {
    fn from_stream(entry: StreamId) -> Option<Self> {
        let field = |name: &str| entry.get::<String>(name);
        Some(Self {
            event_id: field("id")?,
            event: field("event")?,
            trace: field("trace").unwrap_or_default(),
            stream_id: entry.id,
        })
    }
}

impl Stream {
    fn new(redis_url: &str, key: String) -> Result<Self, RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(BLOCK + Duration::from_secs(2)))
            .set_max_delay(Duration::from_secs(2));
        Ok(Self {
            connection: ConnectionManager::new_lazy_with_config(
                redis::Client::open(redis_url)?,
                config,
            )?,
            key,
            consumer: uuid::Uuid::new_v4().simple().to_string(),
        })
    }

    /// Creates the group once the stream exists (the first message makes it): from its first
    /// entry, so none written before is skipped. Until then there is nothing to relay.
    async fn create_group(&self) -> Result<bool, RedisError> {
        let mut connection = self.connection.clone();
        let created: Result<(), RedisError> = connection.xgroup_create(&self.key, GROUP, "0").await;
        match created {
            Ok(()) => Ok(true),
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(true),
            // No stream yet: it is made with the first message.
            Err(error) if error.code() == Some("ERR") => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// What to publish next: entries this relay holds unacknowledged, else those abandoned by
    /// another, else new ones (waiting up to [`BLOCK`] for some).
    async fn next(&self) -> Result<Vec<Entry>, RedisError> {
        let mut connection = self.connection.clone();
        let mine: StreamReadReply = connection
            .xread_options(
                &[&self.key],
                &["0"],
                &StreamReadOptions::default()
                    .group(GROUP, &self.consumer)
                    .count(BATCH),
            )
            .await?;
        let mut entries = entries(mine);
        if entries.is_empty() {
            let abandoned: redis::streams::StreamAutoClaimReply = connection
                .xautoclaim_options(
                    &self.key,
                    GROUP,
                    &self.consumer,
                    ABANDONED_AFTER.as_millis() as u64,
                    "0-0",
                    StreamAutoClaimOptions::default().count(BATCH),
                )
                .await?;
            entries = abandoned
                .claimed
                .into_iter()
                .filter_map(Entry::from_stream)
                .collect();
        }
        if entries.is_empty() {
            let new: StreamReadReply = connection
                .xread_options(
                    &[&self.key],
                    &[">"],
                    &StreamReadOptions::default()
                        .group(GROUP, &self.consumer)
                        .count(BATCH)
                        .block(BLOCK.as_millis() as usize),
                )
                .await?;
            entries = self::entries(new);
        }
        Ok(entries)
    }

    /// Forgets entries the broker has confirmed.
    async fn done(&self, ids: &[String]) -> Result<(), RedisError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection.clone();
        redis::pipe()
            .xack(&self.key, GROUP, ids)
            .ignore()
            .xdel(&self.key, ids)
            .ignore()
            .query_async::<()>(&mut connection)
            .await
    }
}

/// The backlog: entries waiting, and the age of the oldest (its id is its time).
async fn measure(mut connection: ConnectionManager, key: &str) -> Result<(), RedisError> {
    let waiting: u64 = connection.xlen(key).await?;
    let oldest: redis::streams::StreamRangeReply =
        connection.xrange_count(key, "-", "+", 1).await?;
    let age = oldest
        .ids
        .first()
        .and_then(|entry| entry.id.split('-').next()?.parse::<i64>().ok())
        .map_or(0.0, |millis| {
            (chrono::Utc::now().timestamp_millis() - millis).max(0) as f64 / 1000.0
        });
    gauge!(PENDING).set(waiting as f64);
    gauge!(OLDEST_AGE).set(age);
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn entries(reply: StreamReadReply) -> Vec<Entry> {
    reply
        .keys
        .into_iter()
        .flat_map(|key| key.ids)
        .filter_map(Entry::from_stream)
        .collect()
}

/// Publishes `entries`, all at once; the stream ids of those the broker confirmed.
async fn publish(publisher: &Publisher, entries: &[Entry]) -> (Vec<String>, bool) {
    let outcomes = join_all(entries.iter().map(|entry| {
        let mut message = Outgoing::new(
            MESSAGES_EXCHANGE,
            MESSAGE_CREATED,
            &entry.event_id,
            entry.event.as_bytes(),
        );
        message.parent = Some(telemetry::propagation::context_from_json(&entry.trace));
        // No queue takes it while no feed client is connected, and then nobody needs it.
        message.mandatory = false;
        publisher.publish(message)
    }))
    .await;
    let failed = outcomes.iter().any(Result::is_err);
    let confirmed = entries
        .iter()
        .zip(outcomes)
        .filter(|(_, outcome)| outcome.is_ok())
        .map(|(entry, _)| entry.stream_id.clone())
        .collect();
    (confirmed, failed)
}

/// Relays events until `shutdown` completes.
pub async fn run(
    redis_url: String,
    stream: String,
    amqp_url: String,
    shutdown: impl Future<Output = ()> + Send,
) {
    metrics::describe_gauge!(
        PENDING,
        "Events in the outbox not yet confirmed by the broker."
    );
    metrics::describe_gauge!(
        OLDEST_AGE,
        metrics::Unit::Seconds,
        "Age of the oldest event not yet confirmed by the broker (0 when none waits)."
    );
    let stream = match Stream::new(&redis_url, stream) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::error!(%error, "the message relay cannot use REDIS_URL");
            return;
        }
    };
    // The backlog is measured on its own clock, so it is seen growing while the broker is away.
    let measuring = tokio::spawn({
        let connection = stream.connection.clone();
        let key = stream.key.clone();
        async move {
            let mut every = tokio::time::interval(MEASURE_EVERY);
            loop {
                every.tick().await;
                let _ = measure(connection.clone(), &key).await;
            }
        }
    });
    let _stop_measuring = AbortOnDrop(measuring);
    tokio::pin!(shutdown);
    loop {
        let connection = tokio::select! {
            connection = messaging::connect_with_backoff(&amqp_url) => connection,
            () = &mut shutdown => return,
        };
        let opened = async {
            let publisher = Publisher::open(&connection).await?;
            topology::declare_exchange(publisher.channel(), MESSAGES_EXCHANGE, ExchangeType::Topic)
                .await?;
            Ok::<_, lapin::Error>(publisher)
        };
        let publisher = match opened.await {
            Ok(publisher) => publisher,
            Err(error) => {
                tracing::warn!(%error, "cannot open a publishing channel; reconnecting");
                continue;
            }
        };
        loop {
            let round = async {
                let entries = match stream.next().await {
                    // No stream or group yet, or Redis restarted (it keeps nothing on disk here).
                    Err(error) if error.code() == Some("NOGROUP") => {
                        if !stream.create_group().await? {
                            tokio::time::sleep(NO_STREAM_YET).await;
                            return Ok(false);
                        }
                        stream.next().await?
                    }
                    outcome => outcome?,
                };
                let (confirmed, failed) = publish(&publisher, &entries).await;
                stream.done(&confirmed).await?;
                Ok::<_, RedisError>(failed)
            };
            let outcome = tokio::select! {
                outcome = round => outcome,
                () = &mut shutdown => return,
            };
            match outcome {
                Ok(false) => {}
                Ok(true) => {
                    tracing::warn!("publishing failed; the events wait in the outbox");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the message outbox");
                    tokio::select! {
                        () = tokio::time::sleep(PAUSE) => {}
                        () = &mut shutdown => return,
                    }
                }
            }
        }
    }
}
