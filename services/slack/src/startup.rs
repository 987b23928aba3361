//! The slack service assembled: its router and OpenAPI document, and serving it until
//! shutdown.

use axum::Router;
use axum::routing::{get, post};
use messaging::relay::RelaySettings;
use service_kit::headers::GatewayTrust;
use service_kit::probes::Stopping;
use service_kit::{Service, Shutdown};
use telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Events the relay publishes per read of the stream.
const RELAY_BATCH: usize = 100;
/// The pause after a failure, and how often the stream's backlog is measured.
const RELAY_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

use crate::configuration::Settings;
use crate::outbox::MessageOutbox;
use crate::routes;
use crate::state::{AppState, StateError};
use crate::store::MessageStore;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot serve: {0}")]
    Serve(#[from] std::io::Error),
}

/// `/health/*` (Redis answers) and `/metrics`, beside any API of the store's process.
pub fn operational(
    store: &MessageStore,
    consumer: Option<service_kit::probes::Consuming>,
    metrics: &Metrics,
    stopping: Stopping,
) -> Router {
    let store = store.clone();
    service_kit::probes::operational(
        "redis",
        move || {
            let store = store.clone();
            async move { store.ping().await }
        },
        consumer,
        metrics,
        stopping,
    )
}

/// The slack service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "slack",
        description = "Messages per channel, kept in Redis and delivered to a Slack incoming webhook."
    ),
    paths(routes::post_message, routes::list_messages),
    components(schemas(
        contract::messages::Message,
        crate::domain::NewMessage,
        routes::PostedMessage
    ))
)]
pub struct ApiDoc;

pub fn app(
    state: AppState,
    metrics: &Metrics,
    stopping: Stopping,
    gateway: GatewayTrust,
) -> Router {
    let probes = operational(&state.store, None, metrics, stopping).merge(
        service_kit::openapi_route(<ApiDoc as utoipa::OpenApi>::openapi()),
    );
    let routes = Router::new()
        .route("/", post(routes::post_message))
        .route("/messages", get(routes::list_messages));
    let faults = state.faults.clone();
    service_kit::service_router(routes, state, faults, gateway, probes)
}

impl Service for Settings {
    const NAME: &'static str = crate::SERVICE_NAME;
    const VERSION: &'static str = crate::VERSION;
    type Error = StartError;

    fn listen(&self) -> std::net::SocketAddr {
        self.listen
    }

    /// The API and the relay of its `message.created` events, until `shutdown`; the relay
    /// stops after the API drained.
    async fn run(
        self,
        metrics: Metrics,
        listener: TcpListener,
        shutdown: Shutdown,
    ) -> Result<(), StartError> {
        let state = AppState::new(&self, Self::NAME)?;
        let (stop, stopped) = watch::channel(false);
        let outbox = MessageOutbox::new(&self.redis_url, state.store.outbox_key())
            .map_err(StateError::Redis)?;
        let relay = telemetry::spawn(messaging::relay::run(
            outbox,
            RelaySettings {
                amqp_url: self.amqp_url.clone(),
                batch: RELAY_BATCH,
                poll_interval: RELAY_POLL_INTERVAL,
            },
            service_kit::serve::stopped(stopped),
        ));
        let app = app(state, &metrics, shutdown.stopping(), self.gateway.clone());
        tracing::info!(
            address = %listener.local_addr()?,
            redis = %telemetry::redact_url(&self.redis_url),
            webhook = self.webhook_url.is_some(),
            "slack service listening"
        );
        let served = service_kit::serve::serve(listener, app, shutdown).await;
        let _ = stop.send(true);
        let _ = relay.await;
        served?;
        Ok(())
    }
}
