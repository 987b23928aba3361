//! slack-queue: announces every new user in `#user` ("User <email> created"), in Redis and on
//! the webhook when one is set. Handling is idempotent by event id: a redelivered event is
//! stored once, and delivered to Slack once unless the process dies between Slack's answer and
//! the note that it answered.

use std::sync::Arc;

use messaging::events::UserCreated;
use messaging::{ConsumerStatus, Disposition, Handler, Message};
use telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::configuration::QueueSettings;
use crate::domain::{Channel, MessageText, StoredMessage};
use crate::startup::{self, Slack, StartError};
use crate::webhook::{self, Outcome};

/// Where new users are announced.
pub const USER_CHANNEL: &str = "#user";

pub struct UserCreatedHandler {
    slack: Slack,
}

impl UserCreatedHandler {
    pub fn new(slack: Slack) -> Self {
        Self { slack }
    }
}

impl Handler for UserCreatedHandler {
    async fn handle(&self, message: &Message<'_>) -> Disposition {
        let event: UserCreated = match serde_json::from_slice(message.body) {
            Ok(event) => event,
            Err(error) => {
                return Disposition::DeadLetter(format!("malformed user.created event: {error}"));
            }
        };
        if event.kind != UserCreated::KIND {
            return Disposition::DeadLetter(format!("unexpected event type {:?}", event.kind));
        }
        let text = match MessageText::parse(&format!("User {} created", event.user.email)) {
            Ok(text) => text,
            Err(reason) => {
                return Disposition::DeadLetter(format!(
                    "cannot announce this user: the message {reason}"
                ));
            }
        };
        let channel = Channel::parse(USER_CHANNEL).expect("a valid channel name");
        let announcement = StoredMessage::new(&channel, &text);
        let seen_before = match self.slack.store.push_once(event.id, &announcement).await {
            Ok(true) => {
                tracing::info!(user.id = event.user.id, "new user announced");
                false
            }
            Ok(false) => {
                tracing::info!(event.id = %event.id, "event seen before; not stored again");
                true
            }
            Err(error) => return Disposition::Retry(error.to_string()),
        };
        let Some(webhook) = &self.slack.webhook else {
            webhook::record(Outcome::Skipped);
            return Disposition::Done;
        };
        // Slack is noted as told only after the event is stored, so only an event seen before
        // may have been delivered already: a new one costs no look-up.
        if seen_before {
            match self.slack.store.was_notified(event.id).await {
                Ok(true) => return Disposition::Done,
                Ok(false) => {}
                Err(error) => return Disposition::Retry(error.to_string()),
            }
        }
        match webhook.deliver(channel.as_str(), text.as_str()).await {
            Ok(()) => {
                if let Err(error) = self.slack.store.mark_notified(event.id).await {
                    tracing::warn!(%error, "delivered, but could not note it; a redelivery would post again");
                }
                Disposition::Done
            }
            Err(error) => Disposition::Retry(error.to_string()),
        }
    }
}

/// Runs slack-queue until `shutdown`: the consumer, and `/health/*` and `/metrics` on
/// `listener`. On shutdown the consumer finishes and acknowledges the events in hand first.
pub async fn run(
    settings: QueueSettings,
    metrics: Metrics,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let slack = Slack::new(&settings.slack)?;
    let status = ConsumerStatus::default();
    let (stop, stopped) = watch::channel(false);
    let consumer = tokio::spawn(messaging::consumer::run(
        settings.consumer,
        Arc::new(UserCreatedHandler::new(slack.clone())),
        status.clone(),
        service_kit::serve::stopped(stopped),
    ));
    let app = startup::health_and_metrics(&slack.store, Some(status), &metrics)
        // `/ping` as the HTTP services answer it, for the gateway's health check.
        .merge(service_kit::probes::ping())
        .merge(service_kit::openapi_route(
            service_kit::probes_only_openapi(crate::QUEUE_SERVICE_NAME, crate::VERSION),
        ));
    tracing::info!(address = %listener.local_addr()?, "slack-queue listening");
    let served = service_kit::serve::serve(listener, app, async move {
        shutdown.await;
        let _ = stop.send(true);
    })
    .await;
    let _ = consumer.await;
    served?;
    Ok(())
}
