//! The stack's AMQP contract and plumbing, shared by every service that publishes or consumes:
//! the event and command wire types and what a valid user in them is, the exchanges and queues, publishing with confirms, and a
//! consumer with retries and dead letters. Spans and metrics come from `telemetry::amqp`.

pub mod connection;
pub mod consumer;
pub mod dead_letters;
pub mod events;
pub mod publisher;
pub mod topology;
pub mod users;

pub use connection::{connect, connect_with_backoff};
pub use consumer::{ConsumerSettings, ConsumerStatus, Disposition, Handler, Message};
pub use publisher::{Outgoing, PublishError, Publisher};

/// The broker of the local stack.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// `AMQP_URL`, the local broker by default.
pub fn amqp_url(lookup: &impl service_kit::settings::Lookup) -> String {
    lookup
        .text("AMQP_URL")
        .unwrap_or_else(|| DEFAULT_AMQP_URL.to_owned())
}
