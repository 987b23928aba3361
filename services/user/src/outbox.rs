//! The user service's outbox: the `outbox` table, which user creation writes in the same
//! statement as the user, relayed by `messaging::relay`. A batch is one statement inside a
//! transaction held across the broker's confirms: its rows are deleted as they are claimed
//! (`DELETE … WHERE id = ANY(ARRAY(SELECT … FOR UPDATE SKIP LOCKED)) RETURNING …`), and the
//! transaction commits once every event of it is confirmed, or rolls back, and the rows are
//! pending again.
//! Any number of replicas may relay at once: `SKIP LOCKED` gives each row to one of them.
//!
//! The relay is the user service's role: user-queue writes outbox rows too, but only the user
//! service publishes them, so every PRODUCER span of `user.created` is the user service's. The
//! event is built here, from the stored user, by `contract::events::UserCreated::new`.

use std::time::Duration;

use contract::broker::{USER_CREATED, USERS_EXCHANGE};
use contract::events::UserCreated;
use contract::users::User;
use messaging::relay::{Backlog, Claimed, Destination, Meter, Outbox, OutboxError, Pending};
use messaging::topology::ExchangeType;
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Postgres, Transaction};
use telemetry::db::DbOperation;
use uuid::Uuid;

use crate::store::UserRow;

/// After a notification the relay lets this much time pass before it claims, so that the
/// commits of the next few milliseconds go out in the same batch: under load one claim and one
/// round of confirms then serve ten events rather than three or four, for a few milliseconds
/// more between a commit and its publish.
const BATCH_WINDOW: Duration = Duration::from_millis(5);

/// The batch, claimed and deleted in one statement. Written so that Postgres takes the
/// indexes whatever its statistics say (a table emptied as fast as it fills has misleading
/// ones): the oldest rows by `outbox_created_at`, deleted by primary key (`= ANY`), each joined
/// to its user by `users_pkey` (`LATERAL`), never a scan of either table.
const CLAIM: DbOperation = DbOperation {
    system: "postgresql",
    operation: "DELETE",
    collection: "outbox",
    query: "WITH claimed AS (\
                DELETE FROM outbox WHERE id = ANY(ARRAY(\
                    SELECT id FROM outbox ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)) \
                RETURNING id, user_id, trace_context) \
            SELECT c.id AS event_id, c.trace_context, u.id, u.name, u.email, u.created_at \
            FROM claimed c CROSS JOIN LATERAL (\
                SELECT id, name, email, created_at FROM users WHERE users.id = c.user_id) u",
};

const BACKLOG: DbOperation = DbOperation {
    system: "postgresql",
    operation: "SELECT",
    collection: "outbox",
    query: "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))::float8 FROM outbox",
};

/// A claimed row, with the user its event is about.
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    event_id: Uuid,
    trace_context: String,
    #[sqlx(flatten)]
    user: UserRow,
}

impl ClaimedRow {
    fn pending(self) -> Pending {
        let event = UserCreated::new(self.event_id, User::from(self.user));
        Pending {
            id: self.event_id.to_string(),
            body: serde_json::to_vec(&event).expect("an event serializes"),
            trace: telemetry::propagation::context_from_json(&self.trace_context),
        }
    }
}

/// The `outbox` table, and the notifications its trigger sends on every insert.
pub struct UserOutbox {
    pool: PgPool,
    /// `None` (and polling only) when listening failed.
    wake: Option<PgListener>,
}

impl UserOutbox {
    pub async fn new(pool: PgPool) -> Self {
        let wake = listen(&pool).await;
        Self { pool, wake }
    }
}

/// Listens for the outbox trigger's notifications; `None` (and polling only) if that fails.
async fn listen(pool: &PgPool) -> Option<PgListener> {
    let listening = async {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen("outbox").await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match listening.await {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for outbox notifications; polling only");
            None
        }
    }
}

impl Outbox for UserOutbox {
    type Claim = Transaction<'static, Postgres>;
    type Meter = TableMeter;

    fn destination(&self) -> Destination {
        Destination {
            exchange: USERS_EXCHANGE,
            exchange_type: ExchangeType::Topic,
            routing_key: USER_CREATED,
            mandatory: true,
        }
    }

    fn meter(&self) -> TableMeter {
        TableMeter(self.pool.clone())
    }

    async fn claim(&mut self, max: usize) -> Result<Claimed<Self::Claim>, OutboxError> {
        let mut transaction = self.pool.begin().await?;
        let rows = CLAIM
            .run(
                sqlx::query_as::<_, ClaimedRow>(CLAIM.query)
                    .bind(i64::try_from(max).unwrap_or(i64::MAX))
                    .fetch_all(&mut *transaction),
            )
            .await?;
        if rows.is_empty() {
            // Dropped, the transaction rolls back with the connection's next use.
            return Ok(None);
        }
        Ok(Some((
            transaction,
            rows.into_iter().map(ClaimedRow::pending).collect(),
        )))
    }

    async fn remove(&mut self, claim: Self::Claim) -> Result<(), OutboxError> {
        Ok(claim.commit().await?)
    }

    async fn give_back(&mut self, claim: Self::Claim) -> Result<(), OutboxError> {
        Ok(claim.rollback().await?)
    }

    /// Waits for a notification or for `pause`, whichever comes first; after a notification,
    /// for [`BATCH_WINDOW`] more. Notifications that came meanwhile are drained too: under
    /// load every commit notifies, and one batch serves them all.
    async fn wait(&mut self, pause: Duration) {
        match &mut self.wake {
            // `recv` reconnects by itself after a lost connection.
            Some(listener) => {
                if tokio::time::timeout(pause, listener.recv()).await.is_ok() {
                    tokio::time::sleep(BATCH_WINDOW).await;
                }
                while listener.next_buffered().is_some() {}
            }
            None => tokio::time::sleep(pause).await,
        }
    }
}

/// The backlog of the table, and the connection pool's use with it.
pub struct TableMeter(PgPool);

impl Meter for TableMeter {
    async fn backlog(&self) -> Result<Backlog, OutboxError> {
        let pool = &self.0;
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        telemetry::db::record_pool_usage(
            "postgresql",
            pool.size().saturating_sub(idle),
            idle,
            pool.options().get_max_connections(),
        );
        let (pending, oldest) = BACKLOG
            .run(sqlx::query_as::<_, (i64, Option<f64>)>(BACKLOG.query).fetch_one(pool))
            .await?;
        Ok(Backlog {
            pending: u64::try_from(pending).unwrap_or_default(),
            oldest: Duration::try_from_secs_f64(oldest.unwrap_or_default()).unwrap_or_default(),
        })
    }
}
