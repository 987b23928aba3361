//! Messages in Redis: one list per channel, newest first, capped in length; and, written with
//! each message in the same script, its `message.created` event in a stream that the relay
//! publishes from (an outbox, as the user service has one in Postgres). Every command runs in a
//! CLIENT span with `db.system.name=redis`, measured like any database call.

use std::time::Duration;

use contract::events::MessageCreated;
use contract::messages::Message;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisError, Script};
use telemetry::db::DbOperation;
use uuid::Uuid;

/// Messages kept per channel; older ones are trimmed.
pub const MAX_MESSAGES_PER_CHANNEL: isize = 10_000;
/// How long an event id is remembered for deduplication.
const REMEMBER_EVENTS: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis is unavailable: {0}")]
    Unavailable(#[source] RedisError),
    #[error("redis error: {0}")]
    Other(#[source] RedisError),
}

impl From<RedisError> for StoreError {
    fn from(error: RedisError) -> Self {
        if error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_timeout()
            || error.is_unrecoverable_error()
        {
            StoreError::Unavailable(error)
        } else {
            StoreError::Other(error)
        }
    }
}

const LPUSH: DbOperation = DbOperation {
    system: "redis",
    operation: "LPUSH",
    collection: "channel",
    query: "EVALSHA <store>: LPUSH {prefix}channel:{channel} ?; LTRIM {prefix}channel:{channel} 0 ?; \
            XADD {prefix}outbox:messages * id ? event ? trace ?",
};

const LPUSH_ONCE: DbOperation = DbOperation {
    system: "redis",
    operation: "LPUSH",
    collection: "channel",
    query: "EVALSHA <store once>: SET {prefix}event:{id}:stored NX EX ?; \
            LPUSH {prefix}channel:{channel} ?; LTRIM {prefix}channel:{channel} 0 ?; \
            XADD {prefix}outbox:messages * id ? event ? trace ?",
};

const LRANGE: DbOperation = DbOperation {
    system: "redis",
    operation: "LRANGE",
    collection: "channel",
    query: "LRANGE {prefix}channel:{channel} ? ?",
};

const CLAIM_NOTIFICATION: DbOperation = DbOperation {
    system: "redis",
    operation: "SET",
    collection: "event",
    query: "EVALSHA <claim>: GET {prefix}event:{id}:notified; SET {prefix}event:{id}:notified claimed EX ?",
};

const SET_NOTIFIED: DbOperation = DbOperation {
    system: "redis",
    operation: "SET",
    collection: "event",
    query: "SET {prefix}event:{id}:notified done EX ?",
};

const RELEASE_NOTIFICATION: DbOperation = DbOperation {
    system: "redis",
    operation: "DEL",
    collection: "event",
    query: "EVALSHA <release>: DEL {prefix}event:{id}:notified if claimed",
};

/// Claims telling Slack about an event (KEYS[1], claimed for ARGV[1] seconds): `claimed` when
/// this caller may deliver, `done` when Slack was told already, `busy` while another caller
/// delivers it. (A `1` is how older releases noted a delivery.)
const CLAIM: &str = r"
local state = redis.call('GET', KEYS[1])
if state == 'claimed' then return 'busy' end
if state then return 'done' end
redis.call('SET', KEYS[1], 'claimed', 'EX', ARGV[1])
return 'claimed'
";

/// Gives a claim back after a delivery that did not happen.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == 'claimed' then redis.call('DEL', KEYS[1]) end
return 1
";

/// Whether the caller may tell Slack about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notification {
    /// Yours to deliver: mark it done, or release it.
    Claimed,
    /// Slack was told already.
    Done,
    /// Another delivery of the event is under way.
    Busy,
}

/// Stores the message and its event: one script, so neither is ever stored without the other.
/// KEYS: the channel, the outbox stream; ARGV: the message, the list's last index, the event id,
/// the event, the trace context.
const STORE: &str = r"
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, ARGV[2])
redis.call('XADD', KEYS[2], '*', 'id', ARGV[3], 'event', ARGV[4], 'trace', ARGV[5])
return 1
";

/// The same, unless this announcement was stored already (KEYS[3], kept for ARGV[6] seconds):
/// a redelivered event is never stored twice and a stored one is never forgotten.
const STORE_ONCE: &str = r"
if redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[6]) then
    redis.call('LPUSH', KEYS[1], ARGV[1])
    redis.call('LTRIM', KEYS[1], 0, ARGV[2])
    redis.call('XADD', KEYS[2], '*', 'id', ARGV[3], 'event', ARGV[4], 'trace', ARGV[5])
    return 1
end
return 0
";

#[derive(Clone)]
pub struct MessageStore {
    connection: ConnectionManager,
    prefix: String,
    store: Script,
    store_once: Script,
    claim: Script,
    release: Script,
}

impl MessageStore {
    /// A store that connects (and reconnects) in the background: a Redis that is down at
    /// start-up or later makes calls fail fast, never the process.
    pub fn new(redis_url: &str, prefix: &str) -> Result<Self, RedisError> {
        Ok(Self {
            connection: service_kit::redis_connection::connect_lazily(redis_url)?,
            prefix: prefix.to_owned(),
            store: Script::new(STORE),
            store_once: Script::new(STORE_ONCE),
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
        })
    }

    /// The stream of `message.created` events waiting to be published.
    pub fn outbox_key(&self) -> String {
        format!("{}outbox:messages", self.prefix)
    }

    /// `message`'s event, with the current span's context, as the script's arguments.
    fn event_arguments(message: &Message) -> (String, String, String) {
        let event = MessageCreated::new(message.clone());
        let trace = telemetry::propagation::current_context_json();
        (
            event.id.to_string(),
            serde_json::to_string(&event).expect("an event serializes"),
            trace,
        )
    }

    fn channel_key(&self, channel: &str) -> String {
        format!("{}channel:{channel}", self.prefix)
    }

    fn event_key(&self, event: Uuid, state: &str) -> String {
        format!("{}event:{event}:{state}", self.prefix)
    }

    /// Stores `message` and its `message.created` event.
    pub async fn push(&self, message: &Message) -> Result<(), StoreError> {
        let json = serde_json::to_string(message).expect("a message serializes");
        let (event_id, event, trace) = Self::event_arguments(message);
        let mut connection = self.connection.clone();
        LPUSH
            .run(
                self.store
                    .key(self.channel_key(&message.channel))
                    .key(self.outbox_key())
                    .arg(json)
                    .arg(MAX_MESSAGES_PER_CHANNEL - 1)
                    .arg(event_id)
                    .arg(event)
                    .arg(trace)
                    .invoke_async::<i64>(&mut connection),
            )
            .await?;
        Ok(())
    }

    /// Stores `message` (and its event) for `event` unless it was stored before; true when
    /// stored now.
    pub async fn push_once(&self, event: Uuid, message: &Message) -> Result<bool, StoreError> {
        let json = serde_json::to_string(message).expect("a message serializes");
        let (event_id, created, trace) = Self::event_arguments(message);
        let mut connection = self.connection.clone();
        let stored: i64 = LPUSH_ONCE
            .run(
                self.store_once
                    .key(self.channel_key(&message.channel))
                    .key(self.outbox_key())
                    .key(self.event_key(event, "stored"))
                    .arg(json)
                    .arg(MAX_MESSAGES_PER_CHANNEL - 1)
                    .arg(event_id)
                    .arg(created)
                    .arg(trace)
                    .arg(REMEMBER_EVENTS.as_secs())
                    .invoke_async(&mut connection),
            )
            .await?;
        Ok(stored == 1)
    }

    /// Up to `limit` messages of `channel` after skipping `offset`, newest first.
    pub async fn list(
        &self,
        channel: &str,
        limit: isize,
        offset: isize,
    ) -> Result<Vec<Message>, StoreError> {
        let mut connection = self.connection.clone();
        let raw: Vec<String> = LRANGE
            .run(connection.lrange(self.channel_key(channel), offset, offset + limit - 1))
            .await?;
        // Entries this service did not write are skipped rather than failing the page.
        Ok(raw
            .iter()
            .filter_map(|entry| serde_json::from_str(entry).ok())
            .collect())
    }

    /// Claims telling Slack about `event` for `hold` (a delivery that takes longer loses the
    /// claim, and the event may be told twice).
    pub async fn claim_notification(
        &self,
        event: Uuid,
        hold: Duration,
    ) -> Result<Notification, StoreError> {
        let mut connection = self.connection.clone();
        let state: String = CLAIM_NOTIFICATION
            .run(
                self.claim
                    .key(self.event_key(event, "notified"))
                    .arg(hold.as_secs().max(1))
                    .invoke_async(&mut connection),
            )
            .await?;
        Ok(match state.as_str() {
            "claimed" => Notification::Claimed,
            "busy" => Notification::Busy,
            _ => Notification::Done,
        })
    }

    /// Notes that Slack was told about `event`.
    pub async fn mark_notified(&self, event: Uuid) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        SET_NOTIFIED
            .run(connection.set_ex::<_, _, ()>(
                self.event_key(event, "notified"),
                "done",
                REMEMBER_EVENTS.as_secs(),
            ))
            .await?;
        Ok(())
    }

    /// Gives back a claim whose delivery did not happen, so the event can be told later.
    pub async fn release_notification(&self, event: Uuid) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        RELEASE_NOTIFICATION
            .run(
                self.release
                    .key(self.event_key(event, "notified"))
                    .invoke_async::<i64>(&mut connection),
            )
            .await?;
        Ok(())
    }

    /// Whether Redis answers, for the readiness probe. Not a traced or measured operation:
    /// probes are not traffic.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await?;
        Ok(())
    }
}
