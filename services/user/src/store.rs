//! Users in Postgres. Every statement runs inside a CLIENT span with the database attributes,
//! and failures are sorted into what the API can say about them.

use messaging::events::{UserCreated, UserSnapshot};
use messaging::topology;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use sqlx::PgPool;
use telemetry::db::DbOperation;
use uuid::Uuid;

use crate::domain::{NewUser, User};

/// Why a database call failed, as far as the caller cares.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a user with this email exists already")]
    DuplicateEmail,
    #[error("this event id was stored with another user")]
    EventIdReused,
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_unavailable(&error) {
            return StoreError::Unavailable(error);
        }
        match &error {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
                StoreError::DuplicateEmail
            }
            _ => StoreError::Other(error),
        }
    }
}

/// Errors that mean "Postgres cannot be reached or is going away": worth a retry later.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Class 08 is "connection exception"; 57P01-03 are shutdown and start-up states.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// Stores a user and its `user.created` event in one statement. A statement is a transaction
/// of its own, so both or neither are stored, in one round trip instead of four (`BEGIN`, two
/// `INSERT`s, `COMMIT`). The event comes serialized, whole but for the user's id, which only the
/// insert knows: the statement writes it in (`jsonb_set`), so the payload is the event as stored.
const INSERT_USER_WITH_EVENT: DbOperation = DbOperation {
    system: "postgresql",
    operation: "INSERT",
    collection: "users",
    query: "WITH created AS (\
                INSERT INTO users (name, email, created_at) VALUES ($1, $2, $3) \
                RETURNING id, name, email, created_at), \
            event AS (\
                INSERT INTO outbox (id, exchange, routing_key, payload, trace_context) \
                SELECT $4, $5, $6, jsonb_set($7::jsonb, '{user,id}', to_jsonb(id))::text, $8 \
                FROM created) \
            SELECT id, name, email, created_at FROM created",
};

/// The user that the event `$1` was stored with, if that event was stored (and not yet pruned).
const CREATED_WITH_EVENT: DbOperation = DbOperation {
    system: "postgresql",
    operation: "SELECT",
    collection: "users",
    query: "SELECT u.id, u.name, u.email, u.created_at FROM outbox o \
            JOIN users u ON u.id = (o.payload::jsonb -> 'user' ->> 'id')::bigint \
            WHERE o.id = $1",
};

const SELECT_USER: DbOperation = DbOperation {
    system: "postgresql",
    operation: "SELECT",
    collection: "users",
    query: "SELECT id, name, email, created_at FROM users WHERE id = $1",
};

const FIND_BY_EMAIL: DbOperation = DbOperation {
    system: "postgresql",
    operation: "SELECT",
    collection: "users",
    query: "SELECT id, name, email, created_at FROM users WHERE lower(email) = lower($1)",
};

const LIST_USERS: DbOperation = DbOperation {
    system: "postgresql",
    operation: "SELECT",
    collection: "users",
    query: "SELECT id, name, email, created_at FROM users WHERE id < $1 ORDER BY id DESC LIMIT $2",
};

const PING: DbOperation = DbOperation {
    system: "postgresql",
    operation: "SELECT",
    collection: "",
    query: "SELECT 1",
};

/// The pause between two attempts of a write that lost its connection.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct UserStore {
    pool: PgPool,
    /// How long a write is retried while Postgres cannot be reached.
    retry_budget: Duration,
}

impl UserStore {
    pub fn new(pool: PgPool, retry_budget: Duration) -> Self {
        Self { pool, retry_budget }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Stores the user and its `user.created` event, whose id is `event_id`: both or neither.
    ///
    /// The event id tells, later, whether a user was stored by this caller. A caller that may
    /// come twice passes an id of its own (one derived from an idempotency key, a command's
    /// id), and its second coming gets the user its first one stored instead of a conflict;
    /// the same id with another name or email is [`StoreError::EventIdReused`]. Otherwise a
    /// fresh id.
    ///
    /// The same holds within one call. A write that loses its connection is retried for
    /// `retry_budget`; if the lost attempt had committed, the retry meets the email taken (the
    /// unique index makes it wait for that attempt to end, so this cannot race) and the event
    /// id shows that the row is this caller's own. So a lost answer never turns a created user
    /// into a 409, or into a second user.
    pub async fn create(&self, user: &NewUser, event_id: Uuid) -> Result<User, StoreError> {
        // Postgres keeps microseconds; the row and the event must carry the same instant.
        let created_at = Utc::now().trunc_subsecs(6);
        let event = UserCreated {
            id: event_id,
            kind: UserCreated::KIND.to_owned(),
            occurred_at: created_at,
            user: UserSnapshot {
                id: 0, // written in by the insert
                name: user.name.as_str().to_owned(),
                email: user.email.as_str().to_owned(),
                created_at,
            },
        };
        let payload = serde_json::to_string(&event).expect("an event serializes");
        let trace_context = serde_json::to_string(&telemetry::propagation::current_context_map())
            .unwrap_or_else(|_| "{}".to_owned());
        let deadline = Instant::now() + self.retry_budget;
        loop {
            let attempt = INSERT_USER_WITH_EVENT
                .run(
                    sqlx::query_as::<_, User>(INSERT_USER_WITH_EVENT.query)
                        .bind(user.name.as_str())
                        .bind(user.email.as_str())
                        .bind(created_at)
                        .bind(event.id)
                        .bind(topology::USERS_EXCHANGE)
                        .bind(topology::USER_CREATED)
                        .bind(&payload)
                        .bind(&trace_context)
                        .fetch_one(&self.pool),
                )
                .await
                .map_err(StoreError::from);
            match attempt {
                Err(StoreError::Unavailable(error)) if Instant::now() < deadline => {
                    tracing::warn!(%error, "lost Postgres while creating a user; retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                // The email or the event id is taken: by this caller before, or by another.
                Err(StoreError::DuplicateEmail) => {
                    return match self.created_with_event(event.id).await? {
                        Some(existing)
                            if existing.name == user.name.as_str()
                                && existing.email == user.email.as_str() =>
                        {
                            Ok(existing)
                        }
                        Some(_) => Err(StoreError::EventIdReused),
                        None => Err(StoreError::DuplicateEmail),
                    };
                }
                outcome => return outcome,
            }
        }
    }

    async fn created_with_event(&self, event: Uuid) -> Result<Option<User>, StoreError> {
        Ok(CREATED_WITH_EVENT
            .run(
                sqlx::query_as::<_, User>(CREATED_WITH_EVENT.query)
                    .bind(event)
                    .fetch_optional(&self.pool),
            )
            .await?)
    }

    pub async fn get(&self, id: i64) -> Result<Option<User>, StoreError> {
        Ok(SELECT_USER
            .run(
                sqlx::query_as::<_, User>(SELECT_USER.query)
                    .bind(id)
                    .fetch_optional(&self.pool),
            )
            .await?)
    }

    /// The user with this email, whatever its case.
    pub async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        Ok(FIND_BY_EMAIL
            .run(
                sqlx::query_as::<_, User>(FIND_BY_EMAIL.query)
                    .bind(email)
                    .fetch_optional(&self.pool),
            )
            .await?)
    }

    /// Up to `limit` users older than `before` (all when `None`), newest first.
    pub async fn list(&self, limit: i64, before: Option<i64>) -> Result<Vec<User>, StoreError> {
        Ok(LIST_USERS
            .run(
                sqlx::query_as::<_, User>(LIST_USERS.query)
                    .bind(before.unwrap_or(i64::MAX))
                    .bind(limit)
                    .fetch_all(&self.pool),
            )
            .await?)
    }

    /// Whether Postgres answers, for the readiness probe.
    pub async fn ping(&self) -> Result<(), StoreError> {
        PING.run(sqlx::query(PING.query).execute(&self.pool))
            .await?;
        Ok(())
    }
}
