//! Asynchronous user creation: `POST /user` with `Prefer: respond-async` becomes a
//! `create_user` command for user-queue (a confirmed, persistent publish) and a 202. The
//! command's queue is declared here too, so commands wait even before user-queue first starts.

use std::time::Duration;

use messaging::events::CreateUser;
use messaging::topology::{self, USER_QUEUE};
use messaging::{Outgoing, Publisher};
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the broker cannot be reached")]
    Unreachable,
    #[error(transparent)]
    Publish(#[from] messaging::PublishError),
}

/// A publisher connected on first use, and again after a failure.
pub struct Commands {
    amqp_url: String,
    publisher: Mutex<Option<(lapin::Connection, Publisher)>>,
}

impl Commands {
    pub fn new(amqp_url: String) -> Self {
        Self {
            amqp_url,
            publisher: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<(lapin::Connection, Publisher), SendError> {
        let connecting = async {
            let connection = messaging::connect(&self.amqp_url).await?;
            let publisher = Publisher::open(&connection).await?;
            USER_QUEUE.declare(publisher.channel()).await?;
            Ok::<_, lapin::Error>((connection, publisher))
        };
        match tokio::time::timeout(Duration::from_secs(3), connecting).await {
            Ok(Ok(connected)) => Ok(connected),
            Ok(Err(error)) => {
                tracing::warn!(%error, broker = %telemetry::redact_url(&self.amqp_url), "cannot reach RabbitMQ");
                Err(SendError::Unreachable)
            }
            Err(_) => Err(SendError::Unreachable),
        }
    }

    pub async fn send(&self, command: &CreateUser) -> Result<(), SendError> {
        let mut guard = self.publisher.lock().await;
        if guard.is_none() {
            *guard = Some(self.connect().await?);
        }
        let (_, publisher) = guard.as_ref().expect("connected above");
        let body = serde_json::to_vec(command).expect("a command serializes");
        let id = command.id.to_string();
        let outcome = publisher
            .publish(Outgoing::new(
                topology::USER_COMMANDS_EXCHANGE,
                topology::CREATE_USER,
                &id,
                &body,
            ))
            .await;
        if outcome.is_err() {
            *guard = None;
        }
        Ok(outcome?)
    }
}
