//! user-queue: creates users from `create_user` commands, through the same rules and the same
//! statement (user row + outbox row) as `POST /user`. A command that can never succeed (not
//! JSON, another type, invalid fields, an email that exists) goes to the dead-letter queue with
//! the reason in its `x-reason` header; one that fails because Postgres is down is retried. A
//! command delivered again after its user was stored is done, not a conflict: the user's event
//! carries the command's id. The events it writes are published by the user service's relay.

use std::sync::Arc;

use contract::commands::CreateUser;
use contract::users::NewUser;
use messaging::{ConsumerStatus, Disposition, Handler, Message};
use serde_json::Value;
use service_kit::faults::Faults;
use service_kit::{Service, Shutdown};
use telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::configuration::QueueSettings;
use crate::database;
use crate::startup::{StartError, operational};
use crate::store::{StoreError, UserStore};

/// Handles `create_user` commands.
pub struct CommandHandler {
    store: UserStore,
}

/// Reads a command, or says why it can never be handled.
fn read_command(body: &[u8]) -> Result<CreateUser, String> {
    let command = match serde_json::from_slice::<Value>(body) {
        Ok(command @ Value::Object(_)) => command,
        Ok(_) => return Err("the command is not a JSON object".into()),
        Err(error) => return Err(format!("the command is not JSON: {error}")),
    };
    match command.get("type").and_then(Value::as_str) {
        Some(contract::broker::CREATE_USER) => {}
        other => {
            return Err(format!(
                "unknown command type {other:?}; expected {:?}",
                contract::broker::CREATE_USER
            ));
        }
    }
    serde_json::from_value(command).map_err(|error| format!("malformed create_user: {error}"))
}

impl Handler for CommandHandler {
    async fn handle(&self, message: &Message<'_>) -> Disposition {
        let command = match read_command(message.body) {
            Ok(command) => command,
            Err(reason) => return Disposition::DeadLetter(reason),
        };
        let user = match NewUser::parse(&command.user.name, &command.user.email) {
            Ok(user) => user,
            Err(fields) => {
                let fields: Vec<String> = fields.iter().map(ToString::to_string).collect();
                return Disposition::DeadLetter(format!("invalid command: {}", fields.join("; ")));
            }
        };
        // The event takes the command's id, so a redelivered command whose first delivery
        // stored the user gets that user back instead of a conflict.
        match self.store.create(&user, command.id).await {
            Ok(created) => {
                tracing::info!(user.id = created.id, "user created from a command");
                Disposition::Done
            }
            Err(StoreError::DuplicateEmail) => {
                Disposition::DeadLetter("conflict: a user with this email exists already".into())
            }
            Err(StoreError::EventIdReused) => Disposition::DeadLetter(
                "conflict: this command id was used before for another user".into(),
            ),
            Err(error) => Disposition::Retry(error.to_string()),
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
    /// consumer finishes and acknowledges the commands in hand.
    async fn run(
        self,
        metrics: Metrics,
        listener: TcpListener,
        shutdown: Shutdown,
    ) -> Result<(), StartError> {
        let pool = database::connect(&self.database).await?;
        let faults = Faults::start(&self.faults, Self::NAME);
        let store = UserStore::new(pool, self.database.retry_budget, faults);
        let (stop, stopped) = watch::channel(false);
        let status = ConsumerStatus::default();
        let consumer = telemetry::spawn(messaging::consumer::run(
            self.consumer,
            Arc::new(CommandHandler {
                store: store.clone(),
            }),
            status.clone(),
            service_kit::serve::stopped(stopped),
        ));
        let app = operational(&store, Some(status.into()), &metrics, shutdown.stopping())
            // `/ping` as the HTTP services answer it, for the gateway's health check.
            .merge(service_kit::probes::ping())
            .merge(service_kit::openapi_route(
                service_kit::probes_only_openapi(Self::NAME, Self::VERSION),
            ));
        tracing::info!(address = %listener.local_addr()?, "user-queue listening");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_whole_or_refused_with_a_reason() {
        let command =
            read_command(br#"{"type":"create_user","name":"Ada","email":"a@b.cd"}"#).unwrap();
        assert_eq!(command.user.name, "Ada");
        assert!(read_command(b"name=foo").unwrap_err().contains("not JSON"));
        assert!(
            read_command(b"[1]")
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert!(
            read_command(br#"{"type":"delete_user"}"#)
                .unwrap_err()
                .contains("unknown command type")
        );
        assert!(
            read_command(br#"{"type":"create_user","name":"Ada"}"#)
                .unwrap_err()
                .contains("missing field `email`")
        );
    }
}
