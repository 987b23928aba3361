//! Messages in Redis: one list per channel, newest first, capped in length. A message posted to
//! `POST /` is written, in the same script, with its `message.created` event to a stream that
//! the relay publishes from (an outbox, as the user service has one in Postgres). slack-queue's
//! announcements need no outbox (slack-queue publishes their events itself, before it
//! acknowledges the delivery that caused them): each is stored once per event, and claimed
//! for Slack, in one script, one round trip. Every script runs in one CLIENT span with
//! `db.system.name=redis`, measured like any database call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use contract::events::MessageCreated;
use contract::messages::Message;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisError, Script};
use telemetry::db::DbOperation;
use tokio::sync::Notify;
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

const ANNOUNCE: DbOperation = DbOperation {
    system: "redis",
    operation: "LPUSH",
    collection: "channel",
    query: "EVALSHA <announce>: GET {prefix}event:{id}:stored; SET {prefix}event:{id}:stored ? EX ?; \
            LPUSH {prefix}channel:{channel} ?; LTRIM {prefix}channel:{channel} 0 ?; \
            GET {prefix}event:{id}:notified; SET {prefix}event:{id}:notified claimed EX ?; \
            SET {prefix}event:{id}:notified done EX ? (the notes of earlier deliveries)",
};

const NOTE: DbOperation = DbOperation {
    system: "redis",
    operation: "SET",
    collection: "event",
    query: "SET {prefix}event:{id}:notified done EX ?",
};
const LRANGE: DbOperation = DbOperation {
    system: "redis",
    operation: "LRANGE",
    collection: "channel",
    query: "LRANGE {prefix}channel:{channel} ? ?",
};

const RELEASE_NOTIFICATION: DbOperation = DbOperation {
    system: "redis",
    operation: "DEL",
    collection: "event",
    query: "EVALSHA <release>: DEL {prefix}event:{id}:notified if claimed",
};

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

/// Stores the announcement of an event once, and claims telling Slack about it, in one round
/// trip. KEYS: the channel, the event's `stored` key, its `notified` key, then the `notified`
/// keys of earlier deliveries to note as done. ARGV: the message, the list's last index, how
/// long an event is remembered, how long a claim holds (0: no webhook, no claim).
///
/// Returns whether it was stored now, the message as first stored (a redelivery publishes the
/// same event again), and the claim: `claimed` when this caller may tell Slack, `done` when
/// Slack was told already, `busy` while another caller tells it, empty without a claim.
const ANNOUNCE_SCRIPT: &str = r"
for i = 4, #KEYS do redis.call('SET', KEYS[i], 'done', 'EX', ARGV[3]) end
local first = redis.call('GET', KEYS[2])
local stored = 0
if not first then
    redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
    redis.call('LPUSH', KEYS[1], ARGV[1])
    redis.call('LTRIM', KEYS[1], 0, ARGV[2])
    first = ARGV[1]
    stored = 1
end
local claim = ''
if ARGV[4] ~= '0' then
    local state = redis.call('GET', KEYS[3])
    if state == 'claimed' then
        claim = 'busy'
    elseif state then
        claim = 'done'
    else
        redis.call('SET', KEYS[3], 'claimed', 'EX', ARGV[4])
        claim = 'claimed'
    end
end
return {stored, first, claim}
";

/// What storing an announcement found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    /// False when an earlier delivery of the event stored it.
    pub stored_now: bool,
    /// The message as it was first stored.
    pub message: Message,
    /// Whether this delivery may tell Slack; `None` when no claim was asked for.
    pub notification: Option<Notification>,
}

/// Notes of Slack deliveries not yet written: each goes with the next announcement's script,
/// or, when none comes within [`NOTE_WITHIN`], on its own.
#[derive(Debug, Default)]
struct Notes {
    pending: Mutex<Vec<Uuid>>,
    added: Notify,
}

/// The longest a note waits for an announcement to go with.
const NOTE_WITHIN: Duration = Duration::from_millis(50);

impl Notes {
    fn take(&self) -> Vec<Uuid> {
        std::mem::take(&mut *self.pending.lock().expect("notes are never poisoned"))
    }

    /// Puts back notes whose write failed, to go with the next attempt.
    fn restore(&self, notes: Vec<Uuid>) {
        if !notes.is_empty() {
            self.pending
                .lock()
                .expect("notes are never poisoned")
                .extend(notes);
            self.added.notify_one();
        }
    }
}

#[derive(Clone)]
pub struct MessageStore {
    connection: ConnectionManager,
    prefix: String,
    store: Script,
    announce: Script,
    release: Script,
    notes: Arc<Notes>,
}

impl MessageStore {
    /// A store that connects (and reconnects) in the background: a Redis that is down at
    /// start-up or later makes calls fail fast, never the process.
    pub fn new(redis_url: &str, prefix: &str) -> Result<Self, RedisError> {
        Ok(Self {
            connection: service_kit::redis_connection::connect_lazily(redis_url)?,
            prefix: prefix.to_owned(),
            store: Script::new(STORE),
            announce: Script::new(ANNOUNCE_SCRIPT),
            release: Script::new(RELEASE),
            notes: Arc::default(),
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

    /// Stores `message` for `event` unless it was stored before, and, with `claim`, claims
    /// telling Slack about it for that long (a delivery that takes longer loses the claim, and
    /// the event may be told twice). Notes of earlier deliveries go with it.
    pub async fn announce_once(
        &self,
        event: Uuid,
        message: &Message,
        claim: Option<Duration>,
    ) -> Result<Announced, StoreError> {
        let json = serde_json::to_string(message).expect("a message serializes");
        let notes = self.notes.take();
        let mut invocation = self.announce.key(self.channel_key(&message.channel));
        invocation
            .key(self.event_key(event, "stored"))
            .key(self.event_key(event, "notified"));
        for noted in &notes {
            invocation.key(self.event_key(*noted, "notified"));
        }
        invocation
            .arg(&json)
            .arg(MAX_MESSAGES_PER_CHANNEL - 1)
            .arg(REMEMBER_EVENTS.as_secs())
            .arg(claim.map_or(0, |hold| hold.as_secs().max(1)));
        let mut connection = self.connection.clone();
        let answer: Result<(i64, String, String), _> =
            ANNOUNCE.run(invocation.invoke_async(&mut connection)).await;
        let (stored, first, claimed) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                self.notes.restore(notes);
                return Err(error.into());
            }
        };
        Ok(Announced {
            stored_now: stored == 1,
            // Announcements stored by older releases kept no copy: this one stands in.
            message: serde_json::from_str(&first).unwrap_or_else(|_| message.clone()),
            notification: match claimed.as_str() {
                "claimed" => Some(Notification::Claimed),
                "busy" => Some(Notification::Busy),
                "done" => Some(Notification::Done),
                _ => None,
            },
        })
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

    /// Notes that Slack was told about `event`: with the next announcement, or within
    /// [`NOTE_WITHIN`] by [`MessageStore::write_notes`].
    pub fn mark_notified(&self, event: Uuid) {
        self.notes
            .pending
            .lock()
            .expect("notes are never poisoned")
            .push(event);
        self.notes.added.notify_one();
    }

    /// Writes the notes that no announcement took along, [`NOTE_WITHIN`] after each is
    /// added, until `stopped`; then the last ones.
    pub async fn write_notes(&self, stopped: impl std::future::Future<Output = ()>) {
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                () = self.notes.added.notified() => {
                    tokio::time::sleep(NOTE_WITHIN).await;
                    self.flush_notes().await;
                }
                () = &mut stopped => break,
            }
        }
        self.flush_notes().await;
    }

    async fn flush_notes(&self) {
        let notes = self.notes.take();
        if notes.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for noted in &notes {
            pipe.set_ex(
                self.event_key(*noted, "notified"),
                "done",
                REMEMBER_EVENTS.as_secs(),
            )
            .ignore();
        }
        let mut connection = self.connection.clone();
        if let Err(error) = NOTE.run(pipe.query_async::<()>(&mut connection)).await {
            tracing::warn!(%error, notes = notes.len(), "cannot note Slack deliveries yet");
            self.notes.restore(notes);
        }
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
