//! Start-up: wait for Postgres, create the database and apply migrations, build the router and
//! serve it until shutdown.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use messaging::ConsumerStatus;
use sqlx::migrate::{MigrateDatabase, Migration, MigrationType, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, SqlSafeStr};
use telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::configuration::Settings;
use crate::routes;
use crate::store::{UserStore, is_unavailable};

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: UserStore,
}

/// Why the service could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot prepare the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot serve: {0}")]
    Serve(#[from] std::io::Error),
}

/// The migrations, embedded so the binary needs no files at run time.
fn migrator() -> Migrator {
    let migration = |version, description: &'static str, sql: &'static str| {
        Migration::new(
            version,
            description.into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(1, "users", include_str!("../migrations/0001_users.sql")),
        migration(2, "outbox", include_str!("../migrations/0002_outbox.sql")),
    ])
}

/// Creates the database if it is missing, connects and migrates.
async fn prepare_database(settings: &Settings) -> Result<PgPool, StartError> {
    if !Postgres::database_exists(&settings.database_url).await? {
        // Another instance may create it at the same moment: "already exists" is success.
        if let Err(error) = Postgres::create_database(&settings.database_url).await {
            // 42P04: duplicate database; 23505: the same race caught by the catalog's index.
            let exists = matches!(&error, sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("42P04" | "23505")));
            if !exists {
                return Err(error.into());
            }
        }
        tracing::info!("created the database");
    }
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // No ping before each use: a connection lost meanwhile fails its statement, which is
        // answered as unavailable (and retried, for writes), and the pool replaces it.
        .test_before_acquire(false)
        .connect(&settings.database_url)
        .await?;
    migrator().run(&pool).await?;
    Ok(pool)
}

/// Waits for Postgres with exponential backoff (up to 5 s between tries), logging each try.
/// Only "cannot reach it" is retried; any other failure stops start-up.
pub async fn connect_with_retry(settings: &Settings) -> Result<PgPool, StartError> {
    let database = telemetry::redact_url(&settings.database_url);
    tracing::info!(%database, "connecting to Postgres");
    let mut delay = Duration::from_millis(100);
    for attempt in 1.. {
        match prepare_database(settings).await {
            Ok(pool) => return Ok(pool),
            Err(StartError::Database(error)) if is_unavailable(&error) => {
                tracing::warn!(
                    %database, attempt, retry_in_ms = delay.as_millis() as u64, %error,
                    "Postgres is not reachable yet"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(error),
        }
    }
    unreachable!("the retry loop only ends by returning")
}

/// `/health/live`, `/health/ready` (Postgres answers, and the consumer consumes when there is
/// one) and `/metrics`. They stay out of the request telemetry: probes and scrapes are not
/// traffic, and would flood the trace store.
pub fn health_and_metrics(
    store: &UserStore,
    consumer: Option<ConsumerStatus>,
    metrics: &Metrics,
) -> Router {
    let store = store.clone();
    service_kit::probes::dependency_health(
        "postgres",
        move || {
            let store = store.clone();
            async move { store.ping().await }
        },
        consumer.map(Into::into),
    )
    .merge(metrics.router())
}

/// The user service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "user",
        description = "Users of the microservice stack, stored in Postgres."
    ),
    paths(routes::create_user, routes::get_user, routes::list_users),
    components(schemas(crate::domain::User, crate::domain::NewUserBody))
)]
pub struct ApiDoc;

/// The service's router: the API, traced and measured, then the probes, `/metrics` and
/// `/openapi.json`.
pub fn app(state: AppState, metrics: &Metrics) -> Router {
    let probes = health_and_metrics(&state.store, None, metrics).merge(service_kit::openapi_route(
        <ApiDoc as utoipa::OpenApi>::openapi(),
    ));
    let api = Router::new()
        .route("/user", post(routes::create_user))
        .route("/user/{id}", get(routes::get_user))
        .route("/users", get(routes::list_users))
        .merge(service_kit::probes::ping())
        .with_state(state);
    telemetry::instrument(service_kit::conventions(api)).merge(probes)
}

/// Runs the service on `listener` until `shutdown` completes: the API and the outbox relay.
pub async fn run(
    settings: Settings,
    metrics: Metrics,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let pool = connect_with_retry(&settings).await?;
    let (stop, stopped) = watch::channel(false);
    let relay = tokio::spawn(crate::outbox::run(
        pool.clone(),
        settings.amqp_url.clone(),
        settings.outbox_poll_interval,
        service_kit::serve::stopped(stopped),
    ));
    let app = app(
        AppState {
            store: UserStore::new(pool, settings.retry_budget),
        },
        &metrics,
    );
    tracing::info!(address = %listener.local_addr()?, "user service listening");
    let served = service_kit::serve::serve(listener, app, async move {
        shutdown.await;
        let _ = stop.send(true);
    })
    .await;
    let _ = relay.await;
    served?;
    Ok(())
}
