//! The slack service's outbox: the Redis stream that `POST /` writes each message's
//! `message.created` event to (with the message, in one script), relayed by `messaging::relay`.
//! A batch is the entries this relay read in its consumer group; they are acknowledged and
//! deleted once the broker confirmed them all, and otherwise stay pending to this relay, which
//! reads them again first. A relay that dies holding entries leaves them pending, and another
//! takes them over after [`ABANDONED_AFTER`].
//!
//! The relay is the slack service's role (any number of replicas, one consumer group).
//! `message.created` is published not mandatory: no queue takes it while no feed client is
//! connected, and then nobody needs it.

use std::time::Duration;

use contract::broker::{MESSAGE_CREATED, MESSAGES_EXCHANGE};
use messaging::relay::{Backlog, Claimed, Destination, Meter, Outbox, OutboxError, Pending};
use messaging::topology::ExchangeType;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamRangeReply, StreamReadOptions,
    StreamReadReply,
};
use redis::{AsyncCommands, RedisError};

/// The consumer group of every relay.
const GROUP: &str = "relay";
/// How long a read waits for new entries.
const BLOCK: Duration = Duration::from_secs(1);
/// An entry delivered to a relay that has not acknowledged it for this long is taken over.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(30);
/// How often a relay looks whether the stream exists yet.
const NO_STREAM_YET: Duration = Duration::from_millis(200);

/// The stream, read over the relay's own connection: its reads block, so they must not share
/// the store's.
pub struct MessageOutbox {
    connection: ConnectionManager,
    key: String,
    /// This relay's name in the group: unique per process.
    consumer: String,
}

impl MessageOutbox {
    pub fn new(redis_url: &str, key: String) -> Result<Self, RedisError> {
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
    async fn next(&self, max: usize) -> Result<Vec<StreamId>, RedisError> {
        let mut connection = self.connection.clone();
        let read = |from: &'static str| {
            StreamReadOptions::default()
                .group(GROUP, &self.consumer)
                .count(max)
                .block(if from == ">" {
                    BLOCK.as_millis() as usize
                } else {
                    0
                })
        };
        let mine: StreamReadReply = connection
            .xread_options(&[&self.key], &["0"], &read("0"))
            .await?;
        let mut entries = ids(mine);
        if entries.is_empty() {
            let abandoned: StreamAutoClaimReply = connection
                .xautoclaim_options(
                    &self.key,
                    GROUP,
                    &self.consumer,
                    ABANDONED_AFTER.as_millis() as u64,
                    "0-0",
                    StreamAutoClaimOptions::default().count(max),
                )
                .await?;
            entries = abandoned.claimed;
        }
        if entries.is_empty() {
            let new: StreamReadReply = connection
                .xread_options(&[&self.key], &[">"], &read(">"))
                .await?;
            entries = ids(new);
        }
        Ok(entries)
    }

    /// [`Self::next`], creating the group first if there is none yet (or Redis restarted: it
    /// keeps nothing on disk here).
    async fn next_or_create(&self, max: usize) -> Result<Vec<StreamId>, RedisError> {
        match self.next(max).await {
            Err(error) if error.code() == Some("NOGROUP") => {
                if !self.create_group().await? {
                    tokio::time::sleep(NO_STREAM_YET).await;
                    return Ok(Vec::new());
                }
                self.next(max).await
            }
            outcome => outcome,
        }
    }
}

fn ids(reply: StreamReadReply) -> Vec<StreamId> {
    reply.keys.into_iter().flat_map(|key| key.ids).collect()
}

/// An entry's event, or `None` for an entry this service did not write.
fn pending(entry: &StreamId) -> Option<Pending> {
    let field = |name: &str| entry.get::<String>(name);
    Some(Pending {
        id: field("id")?,
        body: field("event")?.into_bytes(),
        trace: telemetry::propagation::context_from_json(&field("trace").unwrap_or_default()),
    })
}

impl Outbox for MessageOutbox {
    /// The stream ids of the entries read.
    type Claim = Vec<String>;
    type Meter = StreamMeter;

    fn destination(&self) -> Destination {
        Destination {
            exchange: MESSAGES_EXCHANGE,
            exchange_type: ExchangeType::Topic,
            routing_key: MESSAGE_CREATED,
            mandatory: false,
        }
    }

    fn meter(&self) -> StreamMeter {
        StreamMeter {
            connection: self.connection.clone(),
            key: self.key.clone(),
        }
    }

    async fn claim(&mut self, max: usize) -> Result<Claimed<Self::Claim>, OutboxError> {
        let entries = self.next_or_create(max).await?;
        if entries.is_empty() {
            return Ok(None);
        }
        // An entry that is not an event is claimed too, and removed with the batch.
        let events = entries.iter().filter_map(pending).collect();
        Ok(Some((
            entries.into_iter().map(|entry| entry.id).collect(),
            events,
        )))
    }

    async fn remove(&mut self, claim: Self::Claim) -> Result<(), OutboxError> {
        let mut connection = self.connection.clone();
        redis::pipe()
            .xack(&self.key, GROUP, &claim)
            .ignore()
            .xdel(&self.key, &claim)
            .ignore()
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }

    /// The entries stay pending to this relay, which reads them first again.
    async fn give_back(&mut self, _claim: Self::Claim) -> Result<(), OutboxError> {
        Ok(())
    }

    /// A claim waits for new entries itself ([`BLOCK`]).
    async fn wait(&mut self, _poll_interval: Duration) {}
}

/// The stream's backlog: entries waiting, and the age of the oldest (its id is its time).
pub struct StreamMeter {
    connection: ConnectionManager,
    key: String,
}

impl Meter for StreamMeter {
    async fn backlog(&self) -> Result<Backlog, OutboxError> {
        let mut connection = self.connection.clone();
        let waiting: u64 = connection.xlen(&self.key).await?;
        let oldest: StreamRangeReply = connection.xrange_count(&self.key, "-", "+", 1).await?;
        let age = oldest
            .ids
            .first()
            .and_then(|entry| entry.id.split('-').next()?.parse::<i64>().ok())
            .map_or(0, |millis| {
                (chrono::Utc::now().timestamp_millis() - millis).max(0)
            });
        Ok(Backlog {
            pending: waiting,
            oldest: Duration::from_millis(u64::try_from(age).unwrap_or_default()),
        })
    }
}
