//! The outbox relay: publishes the events that user creation committed to the `outbox` table,
//! and marks each one sent only after the broker confirmed it. When RabbitMQ is down the events
//! wait in the table; when it is back they go out, none lost. A crash between the confirm and
//! the mark publishes an event twice, which consumers absorb by deduplicating on its id.
//!
//! The relay is the user service's role: user-queue writes outbox rows too, but only the user
//! service publishes them, so every PRODUCER span of `user.created` is the user service's. Any
//! number of replicas may relay at once: `FOR UPDATE SKIP LOCKED` gives each row to one of them.
//! The event is built here, from the stored user, by `contract::events::UserCreated::new`.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use contract::broker::{USER_CREATED, USERS_EXCHANGE};
use contract::events::UserCreated;
use contract::users::User;
use futures_util::future::join_all;
use messaging::topology::{self, ExchangeType};
use messaging::{Outgoing, PublishError, Publisher};
use metrics::gauge;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use telemetry::db::DbOperation;
use uuid::Uuid;

/// Events published per round trip to the database.
const BATCH: i64 = 100;
/// Sent rows are kept this long for inspection, then deleted.
const KEEP_SENT: &str = "1 day";
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// After a notification the relay lets this much time pass before it claims, so that the
/// commits of the next few milliseconds go out in the same batch: under load one claim, one
/// round of confirms and one update then serve ten events rather than three or four, for a
/// few milliseconds more between a commit and its publish.
const BATCH_WINDOW: Duration = Duration::from_millis(5);

pub(crate) const PENDING: &str = "outbox_pending_events";
pub(crate) const OLDEST_AGE: &str = "outbox_oldest_pending_age_seconds";

const CLAIM: DbOperation = DbOperation {
    system: "postgresql",
    operation: "SELECT",
    collection: "outbox",
    query: "SELECT o.id, o.trace_context, u.id AS user_id, u.name, u.email, u.created_at \
            FROM outbox o JOIN users u ON u.id = o.user_id \
            WHERE o.sent_at IS NULL ORDER BY o.created_at LIMIT $1 FOR UPDATE OF o SKIP LOCKED",
};

const MARK_SENT: DbOperation = DbOperation {
    system: "postgresql",
    operation: "UPDATE",
    collection: "outbox",
    query: "UPDATE outbox SET sent_at = now() WHERE id = ANY($1)",
};

const BACKLOG: DbOperation = DbOperation {
    system: "postgresql",
    operation: "SELECT",
    collection: "outbox",
    query: "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))::float8 \
            FROM outbox WHERE sent_at IS NULL",
};

const PRUNE: DbOperation = DbOperation {
    system: "postgresql",
    operation: "DELETE",
    collection: "outbox",
    query: "DELETE FROM outbox WHERE sent_at < now() - $1::interval",
};

pub fn describe_metrics() {
    metrics::describe_gauge!(
        PENDING,
        "Events in the outbox not yet confirmed by the broker."
    );
    metrics::describe_gauge!(
        OLDEST_AGE,
        metrics::Unit::Seconds,
        "Age of the oldest event not yet confirmed by the broker (0 when none waits)."
    );
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// Relays events until `shutdown` completes.
pub async fn run(
    pool: PgPool,
    amqp_url: String,
    poll_interval: Duration,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    describe_metrics();
    // The backlog is measured on its own clock, so it is seen growing while the broker is away.
    let backlog = tokio::spawn(measure_backlog(pool.clone(), poll_interval));
    let _stop_measuring = AbortOnDrop(backlog);
    let mut wake = listen(&pool).await;
    let mut last_prune = Instant::now();
    loop {
        let connection = tokio::select! {
            connection = messaging::connect_with_backoff(&amqp_url) => connection,
            () = &mut shutdown => return,
        };
        let publisher = match open(&connection).await {
            Ok(publisher) => publisher,
            Err(error) => {
                tracing::warn!(%error, "cannot open a publishing channel; reconnecting");
                continue;
            }
        };
        loop {
            let outcome = relay_batch(&pool, &publisher).await;
            let pause = match outcome {
                Ok(published) if published as i64 == BATCH => continue,
                Ok(_) => poll_interval,
                Err(RelayError::Publish(PublishError::Unroutable {
                    exchange,
                    routing_key,
                })) => {
                    tracing::warn!(
                        %exchange, %routing_key,
                        "no queue takes these events yet; they wait in the outbox"
                    );
                    poll_interval
                }
                Err(RelayError::Publish(error)) => {
                    tracing::warn!(%error, "publishing failed; events wait in the outbox");
                    break;
                }
                Err(RelayError::Database(error)) => {
                    tracing::warn!(%error, "cannot read the outbox");
                    poll_interval
                }
            };
            if last_prune.elapsed() > PRUNE_EVERY {
                last_prune = Instant::now();
                prune(&pool).await;
            }
            tokio::select! {
                () = wait(&mut wake, pause) => {}
                () = &mut shutdown => return,
            }
        }
    }
}

async fn open(connection: &lapin::Connection) -> lapin::Result<Publisher> {
    let publisher = Publisher::open(connection).await?;
    topology::declare_exchange(publisher.channel(), USERS_EXCHANGE, ExchangeType::Topic).await?;
    Ok(publisher)
}

/// A pending outbox row, with the user its event is about.
#[derive(sqlx::FromRow)]
struct Pending {
    id: Uuid,
    trace_context: String,
    user_id: i64,
    name: String,
    email: String,
    created_at: DateTime<Utc>,
}

impl Pending {
    /// The event, and the context of the request that stored it (its PRODUCER span's parent).
    fn event(self) -> (UserCreated, String) {
        let user = User {
            id: self.user_id,
            name: self.name,
            email: self.email,
            created_at: self.created_at,
        };
        let context = self.trace_context;
        (UserCreated::new(self.id, user), context)
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

/// Waits for a notification or for `pause`, whichever comes first; after a notification, for
/// [`BATCH_WINDOW`] more. Notifications that came meanwhile are drained too: under load every
/// commit notifies, and one batch serves them all.
async fn wait(wake: &mut Option<PgListener>, pause: Duration) {
    match wake {
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

/// Publishes one batch of pending events; returns how many were published.
async fn relay_batch(pool: &PgPool, publisher: &Publisher) -> Result<usize, RelayError> {
    let mut transaction = pool.begin().await?;
    let rows = CLAIM
        .run(
            sqlx::query_as::<_, Pending>(CLAIM.query)
                .bind(BATCH)
                .fetch_all(&mut *transaction),
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let events: Vec<_> = rows.into_iter().map(Pending::event).collect();
    let bodies: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|(event, _)| {
            let body = serde_json::to_vec(event).expect("an event serializes");
            (event.id.to_string(), body)
        })
        .collect();
    // Publish the whole batch at once; the confirms come back together.
    let outcomes = join_all(
        events
            .iter()
            .zip(&bodies)
            .map(|((_, context), (id, body))| {
                let mut message = Outgoing::new(USERS_EXCHANGE, USER_CREATED, id, body);
                message.parent = Some(telemetry::propagation::context_from_json(context));
                publisher.publish(message)
            }),
    )
    .await;
    let confirmed: Vec<Uuid> = events
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.is_ok())
        .map(|((event, _), _)| event.id)
        .collect();
    if !confirmed.is_empty() {
        MARK_SENT
            .run(
                sqlx::query(MARK_SENT.query)
                    .bind(&confirmed)
                    .execute(&mut *transaction),
            )
            .await?;
    }
    transaction.commit().await?;
    match outcomes.into_iter().find_map(Result::err) {
        Some(error) => Err(error.into()),
        None => Ok(confirmed.len()),
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Measures the outbox backlog and the connection pool on its own clock.
async fn measure_backlog(pool: PgPool, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        let backlog = BACKLOG
            .run(sqlx::query_as::<_, (i64, Option<f64>)>(BACKLOG.query).fetch_one(&pool))
            .await;
        if let Ok((pending, oldest)) = backlog {
            gauge!(PENDING).set(pending as f64);
            gauge!(OLDEST_AGE).set(oldest.unwrap_or(0.0).max(0.0));
        }
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        telemetry::db::record_pool_usage(
            "postgresql",
            pool.size().saturating_sub(idle),
            idle,
            pool.options().get_max_connections(),
        );
    }
}

async fn prune(pool: &PgPool) {
    let pruned = PRUNE
        .run(sqlx::query(PRUNE.query).bind(KEEP_SENT).execute(pool))
        .await;
    if let Err(error) = pruned {
        tracing::warn!(%error, "cannot prune sent outbox rows");
    }
}
