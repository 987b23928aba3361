//! Replaying dead letters: after the cause is fixed (Slack back, a bug deployed away), the
//! messages parked in `<queue>.dead` go back to `<queue>` for a fresh set of attempts. Each is
//! republished with confirms and only then removed, so a replay that stops half-way loses
//! nothing; the original headers, trace context included, go with it.

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use std::collections::BTreeMap;

use lapin::types::FieldTable;
use lapin::{Channel, Connection};

use crate::publisher::{Outgoing, PublishError, Publisher};
use crate::topology::ConsumerQueue;
use contract::broker::ATTEMPT_HEADER;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    #[error("could not republish a dead letter (it stays in the dead-letter queue): {0}")]
    Publish(#[from] PublishError),
}

/// Moves the messages waiting in `queue`'s dead-letter queue back to `queue`, with their
/// attempt count reset. Only those there when the replay starts are moved, so a message that
/// fails again at once is not replayed in a loop. Returns how many were moved.
pub async fn replay(connection: &Connection, queue: &ConsumerQueue) -> Result<u32, ReplayError> {
    let publisher = Publisher::open(connection).await?;
    let channel = connection.create_channel().await?;
    let dead = queue.dead_letter_queue();
    let waiting = ready_count(&channel, &dead).await?;
    let mut moved = 0;
    while moved < waiting {
        let Some(message) = channel
            .basic_get(dead.as_str().into(), BasicGetOptions::default())
            .await?
        else {
            break;
        };
        let headers = message
            .properties
            .headers()
            .as_ref()
            .map(without_attempts)
            .unwrap_or_default();
        let message_id = message
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default();
        let mut outgoing = Outgoing::new("", queue.name, &message_id, &message.data);
        outgoing.parent = Some(telemetry::propagation::extract_amqp(&headers));
        outgoing.headers = headers;
        if let Err(error) = publisher.publish(outgoing).await {
            let requeue = BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            };
            message.nack(requeue).await?;
            return Err(error.into());
        }
        message.ack(BasicAckOptions::default()).await?;
        moved += 1;
    }
    Ok(moved)
}

/// Messages ready in `queue` now.
async fn ready_count(channel: &Channel, queue: &str) -> lapin::Result<u32> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await?;
    Ok(declared.message_count())
}

/// The headers without the attempt count, so the consumer starts counting again.
fn without_attempts(headers: &FieldTable) -> FieldTable {
    headers
        .inner()
        .iter()
        .filter(|(name, _)| name.as_str() != ATTEMPT_HEADER)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect::<BTreeMap<_, _>>()
        .into()
}
