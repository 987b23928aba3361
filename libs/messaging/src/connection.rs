//! Connecting to RabbitMQ, and connecting again, with backoff, for as long as it takes.

use std::time::Duration;

use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};

/// The frame size asked of the broker unless `AMQP_URL` sets `frame_max`. lapin keeps two
/// buffers of 32 frames per connection, zero-filled, so RabbitMQ's default of 128 KiB costs
/// 8 MiB of resident memory per connection; the stack's messages are well under 1 KiB, and a
/// larger one is simply sent in several frames. At 16 KiB a connection takes 1 MiB.
const FRAME_MAX: u32 = 16 * 1024;

/// One connection attempt to `url`, with the stack's connection settings.
pub async fn connect(url: &str) -> lapin::Result<Connection> {
    let mut uri: AMQPUri = url.parse().map_err(std::io::Error::other)?;
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    Connection::connect_uri(uri, ConnectionProperties::default()).await
}

/// Longest wait for one connection attempt (a blackholed broker would otherwise hang it).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `url`, retrying with backoff (`service_kit::retry`) for as long as it takes.
pub async fn connect_with_backoff(url: &str) -> Connection {
    let broker = telemetry::redact_url(url);
    let connection = service_kit::retry::until_ok(&format!("RabbitMQ at {broker}"), || async {
        match tokio::time::timeout(CONNECT_TIMEOUT, connect(url)).await {
            Ok(outcome) => outcome.map_err(|error| error.to_string()),
            Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
        }
    })
    .await;
    tracing::info!(%broker, "connected to RabbitMQ");
    connection
}
