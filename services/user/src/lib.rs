//! The user service: users in Postgres behind a small JSON API (`POST /user`, `GET /user/{id}`,
//! `GET /users`), publishing `user.created` events through a transactional outbox and answering
//! JSON-RPC calls over RabbitMQ, and its command consumer, user-queue. Traced and measured through the `telemetry` crate.

pub mod configuration;
pub mod database;
pub mod outbox;
pub mod queue;
pub mod routes;
pub mod rpc;
pub mod startup;
pub mod state;
pub mod store;

pub use configuration::{QueueSettings, Settings};

/// The service's name in traces and metrics, unless `OTEL_SERVICE_NAME` says otherwise.
pub const SERVICE_NAME: &str = "user";
/// The command consumer's name.
pub const QUEUE_SERVICE_NAME: &str = "user-queue";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
