//! slack-queue: announces every new user in `#user` ("User <email> created"), in Redis and on
//! the webhook when one is set. Handling is idempotent by event id: a redelivered event is
//! stored once, and delivered to Slack once (a delivery claims the event first, so two copies
//! handled at the same moment cannot both post) unless the process dies between Slack's answer
//! and the note that it answered.

use std::sync::Arc;
use std::time::Duration;

use contract::events::UserCreated;
use contract::faults::FaultKind;
use messaging::topology::SLACK_QUEUE;
use messaging::{ConsumerStatus, Disposition, Handler, Message};
use service_kit::{Service, Shutdown};
use telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::configuration::QueueSettings;
use crate::domain::{Channel, MessageText, new_message};
use crate::startup::{StartError, operational};
use crate::state::AppState;
use crate::store::Notification;
use crate::webhook::DeliveryError;

/// Where new users are announced.
pub const USER_CHANNEL: &str = "#user";

/// How long a delivery to Slack holds its claim: longer than its calls and waits take.
const CLAIM_HOLD: Duration = Duration::from_secs(120);

pub struct UserCreatedHandler {
    state: AppState,
}

impl UserCreatedHandler {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl Handler for UserCreatedHandler {
    async fn handle(&self, message: &Message<'_>) -> Disposition {
        self.state.faults.delay(FaultKind::ConsumerLatency).await;
        if self
            .state
            .faults
            .strike(FaultKind::ConsumerError, None)
            .is_some()
        {
            return Disposition::Retry("fault injected: the handling failed".to_owned());
        }
        let event: UserCreated = match serde_json::from_slice(message.body) {
            Ok(event) => event,
            Err(error) => {
                return Disposition::DeadLetter(format!("malformed user.created event: {error}"));
            }
        };
        let disposition = self.announce(&event).await;
        if matches!(disposition, Disposition::Done) {
            telemetry::amqp::record_event_lag(SLACK_QUEUE.name, event.occurred_at);
        }
        disposition
    }
}

impl UserCreatedHandler {
    /// Stores the announcement of `event` and tells Slack, each once.
    async fn announce(&self, event: &UserCreated) -> Disposition {
        let text = match MessageText::parse(&format!("User {} created", event.user.email)) {
            Ok(text) => text,
            Err(reason) => {
                return Disposition::DeadLetter(format!(
                    "cannot announce this user: the message {reason}"
                ));
            }
        };
        let channel = Channel::parse(USER_CHANNEL).expect("a valid channel name");
        let announcement = new_message(&channel, &text);
        match self.state.store.push_once(event.id, &announcement).await {
            Ok(true) => tracing::info!(user.id = event.user.id, "new user announced"),
            Ok(false) => {
                tracing::info!(event.id = %event.id, "event seen before; not stored again")
            }
            Err(error) => return Disposition::Retry(error.to_string()),
        }
        if self.state.webhook.is_none() {
            return match self.state.deliver(channel.as_str(), text.as_str()).await {
                Ok(_) => Disposition::Done,
                Err(error) => Disposition::Retry(error.to_string()),
            };
        }
        // Slack is told once per event: deliveries of a redelivered event, even at the same
        // moment, claim it first.
        match self
            .state
            .store
            .claim_notification(event.id, CLAIM_HOLD)
            .await
        {
            Ok(Notification::Claimed) => {}
            Ok(Notification::Done) => return Disposition::Done,
            Ok(Notification::Busy) => {
                return Disposition::Retry("another delivery of this event is under way".into());
            }
            Err(error) => return Disposition::Retry(error.to_string()),
        }
        let delivered = self.state.deliver(channel.as_str(), text.as_str()).await;
        let noted = match &delivered {
            Ok(_) => self.state.store.mark_notified(event.id).await,
            Err(_) => self.state.store.release_notification(event.id).await,
        };
        if let Err(error) = noted {
            tracing::warn!(%error, "could not note the delivery; a redelivery may post again");
        }
        match delivered {
            Ok(_) => Disposition::Done,
            // Slack will never take this one: retrying would only repeat the refusal.
            Err(error @ DeliveryError::Rejected(_)) => Disposition::DeadLetter(error.to_string()),
            Err(error @ DeliveryError::Failed(_)) => Disposition::Retry(error.to_string()),
        }
    }
}

impl Service for QueueSettings {
    const NAME: &'static str = crate::QUEUE_SERVICE_NAME;
    const VERSION: &'static str = crate::VERSION;
    type Error = StartError;

    fn listen(&self) -> std::net::SocketAddr {
        self.listen
    }

    /// The consumer, and `/health/*` and `/metrics` on `listener`, until `shutdown`; then the
    /// consumer finishes and acknowledges the events in hand.
    async fn run(
        self,
        metrics: Metrics,
        listener: TcpListener,
        shutdown: Shutdown,
    ) -> Result<(), StartError> {
        let state = AppState::new(&self.slack, Self::NAME)?;
        let status = ConsumerStatus::default();
        let (stop, stopped) = watch::channel(false);
        let consumer = tokio::spawn(messaging::consumer::run(
            self.consumer,
            Arc::new(UserCreatedHandler::new(state.clone())),
            status.clone(),
            service_kit::serve::stopped(stopped),
        ));
        let app = operational(
            &state.store,
            Some(status.into()),
            &metrics,
            shutdown.stopping(),
        )
        // `/ping` as the HTTP services answer it, for the gateway's health check.
        .merge(service_kit::probes::ping())
        .merge(service_kit::openapi_route(
            service_kit::probes_only_openapi(Self::NAME, Self::VERSION),
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
}
