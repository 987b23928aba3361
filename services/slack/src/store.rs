//! Messages in Redis: one list per channel, newest first, capped in length. Every command runs
//! in a CLIENT span with `db.system.name=redis`, measured like any database call.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, Script};
use telemetry::db::DbOperation;
use uuid::Uuid;

use contract::messages::Message;

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
    query: "LPUSH {prefix}channel:{channel} ?; LTRIM {prefix}channel:{channel} 0 ?",
};

const LPUSH_ONCE: DbOperation = DbOperation {
    system: "redis",
    operation: "LPUSH",
    collection: "channel",
    query: "EVALSHA <store once>: SET {prefix}event:{id}:stored NX EX ?; \
            LPUSH {prefix}channel:{channel} ?; LTRIM {prefix}channel:{channel} 0 ?",
};

const LRANGE: DbOperation = DbOperation {
    system: "redis",
    operation: "LRANGE",
    collection: "channel",
    query: "LRANGE {prefix}channel:{channel} ? ?",
};

const GET_NOTIFIED: DbOperation = DbOperation {
    system: "redis",
    operation: "EXISTS",
    collection: "event",
    query: "EXISTS {prefix}event:{id}:notified",
};

const SET_NOTIFIED: DbOperation = DbOperation {
    system: "redis",
    operation: "SET",
    collection: "event",
    query: "SET {prefix}event:{id}:notified 1 EX ?",
};

/// Stores the message unless this event was stored already: both steps in one script, so a
/// redelivered event is never stored twice and a stored one is never forgotten.
const STORE_ONCE: &str = r"
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
    redis.call('LPUSH', KEYS[2], ARGV[1])
    redis.call('LTRIM', KEYS[2], 0, ARGV[3])
    return 1
end
return 0
";

#[derive(Clone)]
pub struct MessageStore {
    connection: ConnectionManager,
    prefix: String,
    store_once: Script,
}

impl MessageStore {
    /// A store that connects (and reconnects) in the background: a Redis that is down at
    /// start-up or later makes calls fail fast, never the process.
    pub fn new(redis_url: &str, prefix: &str) -> Result<Self, RedisError> {
        let client = redis::Client::open(redis_url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        Ok(Self {
            connection: ConnectionManager::new_lazy_with_config(client, config)?,
            prefix: prefix.to_owned(),
            store_once: Script::new(STORE_ONCE),
        })
    }

    fn channel_key(&self, channel: &str) -> String {
        format!("{}channel:{channel}", self.prefix)
    }

    fn event_key(&self, event: Uuid, state: &str) -> String {
        format!("{}event:{event}:{state}", self.prefix)
    }

    pub async fn push(&self, message: &Message) -> Result<(), StoreError> {
        let key = self.channel_key(&message.channel);
        let json = serde_json::to_string(message).expect("a message serializes");
        let mut connection = self.connection.clone();
        LPUSH
            .run(
                redis::pipe()
                    .atomic()
                    .lpush(&key, json)
                    .ignore()
                    .ltrim(&key, 0, MAX_MESSAGES_PER_CHANNEL - 1)
                    .ignore()
                    .query_async::<()>(&mut connection),
            )
            .await?;
        Ok(())
    }

    /// Stores `message` for `event` unless it was stored before; true when stored now.
    pub async fn push_once(&self, event: Uuid, message: &Message) -> Result<bool, StoreError> {
        let json = serde_json::to_string(message).expect("a message serializes");
        let mut connection = self.connection.clone();
        let stored: i64 = LPUSH_ONCE
            .run(
                self.store_once
                    .key(self.event_key(event, "stored"))
                    .key(self.channel_key(&message.channel))
                    .arg(json)
                    .arg(REMEMBER_EVENTS.as_secs())
                    .arg(MAX_MESSAGES_PER_CHANNEL - 1)
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

    pub async fn was_notified(&self, event: Uuid) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        Ok(GET_NOTIFIED
            .run(connection.exists(self.event_key(event, "notified")))
            .await?)
    }

    pub async fn mark_notified(&self, event: Uuid) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        SET_NOTIFIED
            .run(connection.set_ex::<_, _, ()>(
                self.event_key(event, "notified"),
                1,
                REMEMBER_EVENTS.as_secs(),
            ))
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
