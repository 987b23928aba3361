//! Users in Postgres. Every statement runs inside a CLIENT span with the database attributes,
//! and failures are sorted into what the API can say about them.

use messaging::events::{UserCreated, UserSnapshot};
use messaging::topology;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use telemetry::db::DbOperation;

use crate::domain::{NewUser, User};

/// Why a database call failed, as far as the caller cares.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a user with this email exists already")]
    DuplicateEmail,
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

const INSERT_USER: DbOperation = DbOperation {
    system: "postgresql",
    operation: "INSERT",
    collection: "users",
    query: "INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id, name, email, created_at",
};

const INSERT_OUTBOX: DbOperation = DbOperation {
    system: "postgresql",
    operation: "INSERT",
    collection: "outbox",
    query: "INSERT INTO outbox (id, exchange, routing_key, payload, trace_context) VALUES ($1, $2, $3, $4, $5)",
};

const BEGIN: DbOperation = DbOperation {
    system: "postgresql",
    operation: "BEGIN",
    collection: "",
    query: "BEGIN",
};

const COMMIT: DbOperation = DbOperation {
    system: "postgresql",
    operation: "COMMIT",
    collection: "",
    query: "COMMIT",
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

    /// Stores the user and its `user.created` event in one transaction: both or neither.
    ///
    /// A connection lost mid-transaction is retried for `retry_budget`. When it was lost
    /// during `COMMIT`, the first attempt may have committed: its id is remembered, and a
    /// retry that meets the email already taken (the unique index waits for the earlier
    /// transaction to finish, so this cannot race) answers with that row if it is ours. So a
    /// lost answer never turns a created user into a 409, or into a second user.
    pub async fn create(&self, user: &NewUser) -> Result<User, StoreError> {
        let deadline = Instant::now() + self.retry_budget;
        let mut assigned = Vec::new();
        loop {
            match self.insert_with_event(user, &mut assigned).await {
                Err(StoreError::Unavailable(error)) if Instant::now() < deadline => {
                    tracing::warn!(%error, "lost Postgres while creating a user; retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(StoreError::DuplicateEmail) if !assigned.is_empty() => {
                    return match self.find_by_email(user.email.as_str()).await? {
                        Some(existing) if assigned.contains(&existing.id) => Ok(existing),
                        _ => Err(StoreError::DuplicateEmail),
                    };
                }
                outcome => return outcome,
            }
        }
    }

    /// One attempt of [`UserStore::create`]; the id the database gave the row, if it got
    /// that far, goes into `assigned`.
    async fn insert_with_event(
        &self,
        user: &NewUser,
        assigned: &mut Vec<i64>,
    ) -> Result<User, StoreError> {
        let trace_context = serde_json::to_string(&telemetry::propagation::current_context_map())
            .unwrap_or_else(|_| "{}".to_owned());
        let mut transaction = BEGIN.run(self.pool.begin()).await?;
        let created = INSERT_USER
            .run(
                sqlx::query_as::<_, User>(INSERT_USER.query)
                    .bind(user.name.as_str())
                    .bind(user.email.as_str())
                    .fetch_one(&mut *transaction),
            )
            .await?;
        assigned.push(created.id);
        let event = UserCreated::new(UserSnapshot {
            id: created.id,
            name: created.name.clone(),
            email: created.email.clone(),
            created_at: created.created_at,
        });
        let payload = serde_json::to_string(&event).expect("an event serializes");
        INSERT_OUTBOX
            .run(
                sqlx::query(INSERT_OUTBOX.query)
                    .bind(event.id)
                    .bind(topology::USERS_EXCHANGE)
                    .bind(topology::USER_CREATED)
                    .bind(payload)
                    .bind(trace_context)
                    .execute(&mut *transaction),
            )
            .await?;
        COMMIT.run(transaction.commit()).await?;
        Ok(created)
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
