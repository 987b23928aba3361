//! The user service assembled: its router and OpenAPI document, and running it (the API and
//! the outbox relay) until shutdown.

use axum::Router;
use axum::routing::{get, post};
use service_kit::faults::Faults;
use service_kit::headers::GatewayTrust;
use service_kit::probes::Stopping;
use service_kit::{Service, Shutdown};
use telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::watch;

use std::sync::Arc;

use messaging::ConsumerStatus;
use messaging::relay::RelaySettings;

use crate::configuration::Settings;
use crate::database::{self, DatabaseError};
use crate::outbox::UserOutbox;
use crate::routes;
use crate::rpc::UserProcedures;
use crate::state::AppState;
use crate::store::UserStore;

/// Why the service could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error("cannot serve: {0}")]
    Serve(#[from] std::io::Error),
}

/// RPC calls answered at once: each is one short query.
const RPC_PREFETCH: u16 = 32;

/// Events the outbox relay publishes per claim.
const RELAY_BATCH: usize = 100;

/// The user service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "user",
        description = "Users of the microservice stack, stored in Postgres."
    ),
    paths(routes::create_user, routes::get_user, routes::list_users),
    components(schemas(contract::users::User, contract::users::NewUserFields))
)]
pub struct ApiDoc;

/// `/health/*` (Postgres answers) and `/metrics`, beside any API of the store's process.
pub fn operational(
    store: &UserStore,
    consumer: Option<service_kit::probes::Consuming>,
    metrics: &Metrics,
    stopping: Stopping,
) -> Router {
    let store = store.clone();
    service_kit::probes::operational(
        "postgres",
        move || {
            let store = store.clone();
            async move { store.ping().await }
        },
        consumer,
        metrics,
        stopping,
    )
}

/// The service's router: the API, traced and measured, then the probes, `/metrics` and
/// `/openapi.json`.
pub fn app(
    state: AppState,
    metrics: &Metrics,
    stopping: Stopping,
    faults: Faults,
    gateway: GatewayTrust,
) -> Router {
    let probes = operational(&state.store, None, metrics, stopping).merge(
        service_kit::openapi_route(<ApiDoc as utoipa::OpenApi>::openapi()),
    );
    let routes = Router::new()
        .route("/user", post(routes::create_user))
        .route("/user/{id}", get(routes::get_user))
        .route("/users", get(routes::list_users));
    service_kit::service_router(routes, state, faults, gateway, probes)
}

impl Service for Settings {
    const NAME: &'static str = crate::SERVICE_NAME;
    const VERSION: &'static str = crate::VERSION;
    type Error = StartError;

    fn listen(&self) -> std::net::SocketAddr {
        self.listen
    }

    /// The API, the RPC server and the outbox relay, until `shutdown`; the RPC server and the
    /// relay stop after the API drained.
    async fn run(
        self,
        metrics: Metrics,
        listener: TcpListener,
        shutdown: Shutdown,
    ) -> Result<(), StartError> {
        let pool = database::connect(&self.database).await?;
        let faults = Faults::start(&self.faults, Self::NAME);
        let store = UserStore::new(pool.clone(), self.database.retry_budget, faults.clone());
        let (stop, stopped) = watch::channel(false);
        let relay = telemetry::spawn(messaging::relay::run(
            UserOutbox::new(pool).await,
            RelaySettings {
                amqp_url: self.amqp_url.clone(),
                batch: RELAY_BATCH,
                poll_interval: self.outbox_poll_interval,
            },
            service_kit::serve::stopped(stopped.clone()),
        ));
        let rpc = telemetry::spawn(messaging::rpc::serve(
            self.amqp_url.clone(),
            contract::broker::USER_RPC_QUEUE,
            RPC_PREFETCH,
            Arc::new(UserProcedures {
                store: store.clone(),
                faults: faults.clone(),
            }),
            ConsumerStatus::default(),
            service_kit::serve::stopped(stopped),
        ));
        let app = app(
            AppState { store },
            &metrics,
            shutdown.stopping(),
            faults,
            self.gateway,
        );
        tracing::info!(address = %listener.local_addr()?, "user service listening");
        let served = service_kit::serve::serve(listener, app, shutdown).await;
        let _ = stop.send(true);
        let _ = tokio::join!(relay, rpc);
        served?;
        Ok(())
    }
}
