//! Start-up of the slack service: its state, its router, and serving until shutdown.

use std::future::Future;

use axum::Router;
use axum::routing::{get, post};
use messaging::ConsumerStatus;
use telemetry::Metrics;
use tokio::net::TcpListener;

use crate::configuration::Settings;
use crate::domain::StoredMessage;
use crate::routes;
use crate::store::MessageStore;
use crate::webhook::{self, Outcome, Webhook};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid REDIS_URL: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot build the webhook client: {0}")]
    Webhook(#[from] reqwest::Error),
    #[error("cannot serve: {0}")]
    Serve(#[from] std::io::Error),
}

/// What the API and the consumer share: the message store and the webhook, if any.
#[derive(Clone)]
pub struct Slack {
    pub store: MessageStore,
    pub webhook: Option<Webhook>,
}

impl Slack {
    pub fn new(settings: &Settings) -> Result<Self, StartError> {
        webhook::describe_metrics();
        let webhook = settings
            .webhook_url
            .clone()
            .map(|url| Webhook::new(url, settings.webhook_timeout, settings.webhook_attempts))
            .transpose()?;
        Ok(Self {
            store: MessageStore::new(&settings.redis_url, &settings.key_prefix)?,
            webhook,
        })
    }

    /// Delivers `message` to the webhook, if there is one.
    pub async fn deliver(&self, message: &StoredMessage) -> Outcome {
        let Some(webhook) = &self.webhook else {
            webhook::record(Outcome::Skipped);
            return Outcome::Skipped;
        };
        match webhook.deliver(&message.channel, &message.message).await {
            Ok(()) => Outcome::Sent,
            Err(error) => {
                tracing::warn!(%error, "the message was stored but not delivered to Slack");
                match error {
                    webhook::DeliveryError::Rejected(_) => Outcome::Rejected,
                    webhook::DeliveryError::Failed(_) => Outcome::Failed,
                }
            }
        }
    }
}

/// `/health/live`, `/health/ready` (Redis answers, and the consumer consumes when there is
/// one) and `/metrics`, outside the request telemetry.
pub fn health_and_metrics(
    store: &MessageStore,
    consumer: Option<ConsumerStatus>,
    metrics: &Metrics,
) -> Router {
    let store = store.clone();
    service_kit::probes::dependency_health(
        "redis",
        move || {
            let store = store.clone();
            async move { store.ping().await }
        },
        consumer.map(Into::into),
    )
    .merge(metrics.router())
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
        crate::domain::StoredMessage,
        crate::domain::NewMessageBody,
        crate::domain::PostedMessage
    ))
)]
pub struct ApiDoc;

pub fn app(slack: Slack, metrics: &Metrics) -> Router {
    let probes = health_and_metrics(&slack.store, None, metrics).merge(service_kit::openapi_route(
        <ApiDoc as utoipa::OpenApi>::openapi(),
    ));
    let api = Router::new()
        .route("/", post(routes::post_message))
        .route("/messages", get(routes::list_messages))
        .merge(service_kit::probes::ping())
        .with_state(slack);
    telemetry::instrument(service_kit::conventions(api)).merge(probes)
}

/// Runs the API on `listener` until `shutdown` completes.
pub async fn run(
    settings: Settings,
    metrics: Metrics,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let app = app(Slack::new(&settings)?, &metrics);
    tracing::info!(
        address = %listener.local_addr()?,
        redis = %telemetry::redact_url(&settings.redis_url),
        webhook = settings.webhook_url.is_some(),
        "slack service listening"
    );
    service_kit::serve::serve(listener, app, shutdown).await?;
    Ok(())
}
