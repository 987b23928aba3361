//! slack-queue: announces every new user in `#user` ("User <email> created"), in Redis and on
//! the webhook when one is set, and publishes the announcement's `message.created` itself,
//! confirmed, before it acknowledges the `user.created` delivery: the process that stored a
//! message is the one that announces it, with no outbox in between. Handling is idempotent by
//! event id: a redelivered event is stored once, its `message.created` published again under
//! the same id, and it is delivered to Slack once (a delivery claims the event first, in the
//! same round trip as the store, so two copies handled at the same moment cannot both post)
//! unless the process dies between Slack's answer and the note that it answered.

use std::sync::Arc;
use std::time::Duration;

use contract::broker::{MESSAGE_CREATED, MESSAGES_EXCHANGE};
use contract::events::{MessageCreated, UserCreated};
use contract::faults::FaultKind;
use contract::messages::Message as ChatMessage;
use messaging::topology::SLACK_QUEUE;
use messaging::{ConsumerStatus, Disposition, Handler, Message, Outgoing, PublishError, Publisher};
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
        let disposition = self.announce(&event, message.publisher).await;
        if matches!(disposition, Disposition::Done) {
            telemetry::amqp::record_event_lag(SLACK_QUEUE.name, event.occurred_at);
        }
        disposition
    }
}

impl UserCreatedHandler {
    /// Stores the announcement of `event`, publishes its `message.created`, and tells Slack,
    /// each once.
    async fn announce(&self, event: &UserCreated, publisher: &Publisher) -> Disposition {
        let text = match MessageText::parse(&format!("User {} created", event.user.email)) {
            Ok(text) => text,
            Err(reason) => {
                return Disposition::DeadLetter(format!(
                    "cannot announce this user: the message {reason}"
                ));
            }
        };
        let channel = Channel::parse(USER_CHANNEL).expect("a valid channel name");
        let claim = self.state.webhook.is_some().then_some(CLAIM_HOLD);
        let announced = match self
            .state
            .store
            .announce_once(event.id, &new_message(&channel, &text), claim)
            .await
        {
            Ok(announced) => announced,
            Err(error) => return Disposition::Retry(error.to_string()),
        };
        if announced.stored_now {
            tracing::info!(user.id = event.user.id, "new user announced");
        } else {
            tracing::info!(event.id = %event.id, "event seen before; not stored again");
        }
        if let Err(error) = publish_announcement(publisher, event, announced.message).await {
            return Disposition::Retry(format!("cannot publish message.created: {error}"));
        }
        match announced.notification {
            // No webhook: the delivery is counted as skipped.
            None => match self.state.deliver(channel.as_str(), text.as_str()).await {
                Ok(_) => Disposition::Done,
                Err(error) => Disposition::Retry(error.to_string()),
            },
            Some(Notification::Claimed) => self.tell_slack(event, &channel, &text).await,
            Some(Notification::Done) => Disposition::Done,
            Some(Notification::Busy) => {
                Disposition::Retry("another delivery of this event is under way".into())
            }
        }
    }

    /// Tells Slack about `event`, whose delivery this caller claimed, and notes it.
    async fn tell_slack(
        &self,
        event: &UserCreated,
        channel: &Channel,
        text: &MessageText,
    ) -> Disposition {
        let delivered = self.state.deliver(channel.as_str(), text.as_str()).await;
        match &delivered {
            Ok(_) => self.state.store.mark_notified(event.id),
            Err(_) => {
                if let Err(error) = self.state.store.release_notification(event.id).await {
                    tracing::warn!(%error, "could not release the claim; a redelivery waits for it");
                }
            }
        }
        match delivered {
            Ok(_) => Disposition::Done,
            // Slack will never take this one: retrying would only repeat the refusal.
            Err(error @ DeliveryError::Rejected(_)) => Disposition::DeadLetter(error.to_string()),
            Err(error @ DeliveryError::Failed(_)) => Disposition::Retry(error.to_string()),
        }
    }
}

/// Publishes the `message.created` of `event`'s announcement, confirmed, in the current
/// (CONSUMER) span's trace. Not mandatory: while no feed client is connected, no queue takes it.
async fn publish_announcement(
    publisher: &Publisher,
    event: &UserCreated,
    message: ChatMessage,
) -> Result<(), PublishError> {
    let created = MessageCreated::announcing(event.id, message);
    let id = created.id.to_string();
    let body = serde_json::to_vec(&created).expect("an event serializes");
    let mut outgoing = Outgoing::new(MESSAGES_EXCHANGE, MESSAGE_CREATED, &id, &body);
    outgoing.mandatory = false;
    publisher.publish(outgoing).await
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
        let consumer = telemetry::spawn(messaging::consumer::run(
            self.consumer,
            Arc::new(UserCreatedHandler::new(state.clone())),
            status.clone(),
            service_kit::serve::stopped(stopped),
        ));
        // The notes of Slack deliveries that no next announcement took along, until the
        // consumer has finished; then the last ones.
        let (consumer_done, notes_stop) = watch::channel(false);
        let notes = telemetry::spawn({
            let store = state.store.clone();
            async move {
                store
                    .write_notes(service_kit::serve::stopped(notes_stop))
                    .await;
            }
        });
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
        let _ = consumer_done.send(true);
        let _ = notes.await;
        served?;
        Ok(())
    }
}
