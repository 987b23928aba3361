//! Users in Postgres. Every statement runs inside a CLIENT span with the database attributes,
//! and failures are sorted into what the API can say about them.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use contract::faults::FaultKind;
use contract::users::{NewUser, User};
use service_kit::faults::Faults;
use sqlx::PgPool;
use telemetry::db::DbOperation;
use uuid::Uuid;

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

/// Stores a user and its outbox row in one statement. A statement is a transaction of its own,
/// so both or neither are stored, in one round trip instead of four (`BEGIN`, two `INSERT`s,
/// `COMMIT`). The outbox row names the user; the relay builds the event from it, and deletes
/// the row once the event is published. The user keeps the event's id: it says who stored it.
const INSERT_USER_WITH_EVENT: DbOperation = DbOperation {
    system: "postgresql",
    operation: "INSERT",
    collection: "users",
    query: "WITH created AS (\
                INSERT INTO users (name, email, event_id) VALUES ($1, $2, $3) \
                RETURNING id, name, email, created_at), \
            event AS (\
                INSERT INTO outbox (id, user_id, trace_context) SELECT $3, id, $4 FROM created) \
            SELECT id, name, email, created_at FROM created",
};

/// The user that the event `$1` was stored with, if one was.
const CREATED_WITH_EVENT: DbOperation = DbOperation {
    system: "postgresql",
    operation: "SELECT",
    collection: "users",
    query: "SELECT id, name, email, created_at FROM users WHERE event_id = $1",
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

/// The pause between two attempts of a write that lost its connection.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// A row of `users`.
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: i64,
    name: String,
    email: String,
    created_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            email: row.email,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Clone)]
pub struct UserStore {
    pool: PgPool,
    /// How long a write is retried while Postgres cannot be reached.
    retry_budget: Duration,
    faults: Faults,
}

impl UserStore {
    pub fn new(pool: PgPool, retry_budget: Duration, faults: Faults) -> Self {
        Self {
            pool,
            retry_budget,
            faults,
        }
    }

    /// `query`, unless a `database` fault strikes it (in its span): it then fails as if Postgres
    /// were gone.
    async fn unless_struck<T>(
        &self,
        query: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        if self.faults.strike(FaultKind::Database, None).is_some() {
            return Err(sqlx::Error::Io(std::io::Error::other(
                "fault injected: the database is gone",
            )));
        }
        query.await
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
        let trace_context = telemetry::propagation::current_context_json();
        let deadline = Instant::now() + self.retry_budget;
        loop {
            let attempt = INSERT_USER_WITH_EVENT
                .run(
                    self.unless_struck(
                        sqlx::query_as::<_, UserRow>(INSERT_USER_WITH_EVENT.query)
                            .bind(user.name.as_str())
                            .bind(user.email.as_str())
                            .bind(event_id)
                            .bind(&trace_context)
                            .fetch_one(&self.pool),
                    ),
                )
                .await
                .map(User::from)
                .map_err(StoreError::from);
            match attempt {
                Err(StoreError::Unavailable(error)) if Instant::now() < deadline => {
                    tracing::warn!(%error, "lost Postgres while creating a user; retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                // The email or the event id is taken: by this caller before, or by another.
                Err(StoreError::DuplicateEmail) => {
                    return match self.created_with_event(event_id).await? {
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
                self.unless_struck(
                    sqlx::query_as::<_, UserRow>(CREATED_WITH_EVENT.query)
                        .bind(event)
                        .fetch_optional(&self.pool),
                ),
            )
            .await?
            .map(User::from))
    }

    pub async fn get(&self, id: i64) -> Result<Option<User>, StoreError> {
        Ok(SELECT_USER
            .run(
                self.unless_struck(
                    sqlx::query_as::<_, UserRow>(SELECT_USER.query)
                        .bind(id)
                        .fetch_optional(&self.pool),
                ),
            )
            .await?
            .map(User::from))
    }

    /// The user with this email, whatever its case.
    pub async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        Ok(FIND_BY_EMAIL
            .run(
                self.unless_struck(
                    sqlx::query_as::<_, UserRow>(FIND_BY_EMAIL.query)
                        .bind(email)
                        .fetch_optional(&self.pool),
                ),
            )
            .await?
            .map(User::from))
    }

    /// Up to `limit` users older than `before` (all when `None`), newest first.
    pub async fn list(&self, limit: i64, before: Option<i64>) -> Result<Vec<User>, StoreError> {
        Ok(LIST_USERS
            .run(
                self.unless_struck(
                    sqlx::query_as::<_, UserRow>(LIST_USERS.query)
                        .bind(before.unwrap_or(i64::MAX))
                        .bind(limit)
                        .fetch_all(&self.pool),
                ),
            )
            .await?
            .into_iter()
            .map(User::from)
            .collect())
    }

    /// Whether Postgres answers, for the readiness probe. Not a traced or measured operation:
    /// probes are not traffic.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
