//! The stack's AMQP plumbing, shared by every process that publishes or consumes: connecting
//! with backoff, declaring the exchanges and queues that `contract::broker` names, publishing
//! with confirms, and a consumer with retries and dead letters. What the messages say is
//! `contract`'s; their spans and metrics are `telemetry::amqp`'s.

pub mod connection;
pub mod consumer;
pub mod dead_letters;
pub mod publisher;
pub mod relay;
pub mod rpc;
mod subscription;
pub mod topology;

pub use connection::{connect, connect_with_backoff};
pub use consumer::{ConsumerSettings, Disposition, Handler, Message};
pub use publisher::{Outgoing, PublishError, Publisher, SharedPublishError, SharedPublisher};
pub use subscription::ConsumerStatus;

/// The broker of the local stack.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// `AMQP_URL`, the local broker by default.
pub fn amqp_url(lookup: &impl settings::Lookup) -> Result<String, settings::SettingsError> {
    Ok(lookup
        .text("AMQP_URL")?
        .unwrap_or_else(|| DEFAULT_AMQP_URL.to_owned()))
}
