//! user-queue: creates users from `create_user` commands, through the same validation and the
//! same transaction (user row + outbox event) as `POST /user`. A command that can never succeed
//! (not JSON, invalid fields, an email that exists) goes to the dead-letter queue with the
//! reason in its `x-reason` header; one that fails because Postgres is down is retried. A
//! command delivered again after its user was stored is done, not a conflict: the user's event
//! carries the command's id.

use std::net::SocketAddr;
use std::sync::Arc;

use messaging::{ConsumerSettings, ConsumerStatus, Disposition, Handler, Message};
use serde_json::Value;
use service_kit::JsonObject;
use service_kit::settings::{Env, Lookup, SettingsError, listen_host};
use telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::watch;
use uuid::Uuid;

use crate::configuration::{DEFAULT_QUEUE_PORT, Settings};
use crate::domain::NewUser;
use crate::startup::{self, StartError};
use crate::store::{StoreError, UserStore};

#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// `LISTEN_HOST` and `USER_QUEUE_PORT`: health and metrics.
    pub listen: SocketAddr,
    pub database: Settings,
    pub consumer: ConsumerSettings,
}

impl QueueSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&Env)
    }

    pub fn from_lookup(lookup: &impl Lookup) -> Result<Self, SettingsError> {
        let port = lookup.parse(
            "USER_QUEUE_PORT",
            DEFAULT_QUEUE_PORT,
            "expected a port number",
        )?;
        Ok(Self {
            listen: SocketAddr::new(listen_host(lookup)?, port),
            database: Settings::from_lookup(lookup)?,
            consumer: ConsumerSettings::from_lookup(lookup, messaging::topology::USER_QUEUE)?,
        })
    }
}

/// Handles `create_user` commands.
pub struct CommandHandler {
    store: UserStore,
}

impl Handler for CommandHandler {
    async fn handle(&self, message: &Message<'_>) -> Disposition {
        let body = match serde_json::from_slice::<Value>(message.body) {
            Ok(Value::Object(object)) => JsonObject(object),
            Ok(_) => return Disposition::DeadLetter("the command is not a JSON object".into()),
            Err(error) => {
                return Disposition::DeadLetter(format!("the command is not JSON: {error}"));
            }
        };
        match body.0.get("type").and_then(Value::as_str) {
            Some(messaging::events::CreateUser::KIND) => {}
            other => {
                return Disposition::DeadLetter(format!(
                    "unknown command type {other:?}; expected \"create_user\""
                ));
            }
        }
        let user = match NewUser::from_json(&body) {
            Ok(user) => user,
            Err(problem) => {
                let fields: Vec<String> = problem
                    .errors
                    .iter()
                    .map(|error| format!("{} {}", error.pointer, error.detail))
                    .collect();
                return Disposition::DeadLetter(format!("invalid command: {}", fields.join("; ")));
            }
        };
        // The event takes the command's id, so a redelivered command whose first delivery
        // stored the user gets that user back instead of a conflict.
        let command_id = body
            .0
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| Uuid::parse_str(id).ok())
            .unwrap_or_else(Uuid::new_v4);
        match self.store.create(&user, command_id).await {
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
            Err(StoreError::Unavailable(error)) => {
                Disposition::Retry(format!("the database is unavailable: {error}"))
            }
            Err(StoreError::Other(error)) => Disposition::Retry(format!("database error: {error}")),
        }
    }
}

/// Runs user-queue until `shutdown`: the consumer, the outbox relay for the events it writes,
/// and `/health/*` and `/metrics` on `listener`. On shutdown the consumer finishes and
/// acknowledges the commands in hand first.
pub async fn run(
    settings: QueueSettings,
    metrics: Metrics,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let pool = startup::connect_with_retry(&settings.database).await?;
    let store = UserStore::new(pool.clone(), settings.database.retry_budget);
    let (stop, stopped) = watch::channel(false);
    let status = ConsumerStatus::default();

    let relay = tokio::spawn(crate::outbox::run(
        pool,
        settings.database.amqp_url.clone(),
        settings.database.outbox_poll_interval,
        service_kit::serve::stopped(stopped.clone()),
    ));
    let consumer = tokio::spawn(messaging::consumer::run(
        settings.consumer,
        Arc::new(CommandHandler {
            store: store.clone(),
        }),
        status.clone(),
        service_kit::serve::stopped(stopped.clone()),
    ));
    let app = startup::health_and_metrics(&store, Some(status), &metrics)
        // `/ping` as the HTTP services answer it, for the gateway's health check.
        .merge(service_kit::probes::ping())
        .merge(service_kit::openapi_route(
            service_kit::probes_only_openapi(crate::QUEUE_SERVICE_NAME, crate::VERSION),
        ));
    tracing::info!(address = %listener.local_addr()?, "user-queue listening");
    let served = service_kit::serve::serve(listener, app, async move {
        shutdown.await;
        let _ = stop.send(true);
    })
    .await;
    let _ = consumer.await;
    let _ = relay.await;
    served?;
    Ok(())
}
