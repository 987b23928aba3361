//! Declarations of the exchanges and queues named in `contract::broker`. Declaring is
//! idempotent, so every process declares what it uses and start order does not matter.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

use contract::broker;

/// The queue slack-queue consumes; it publishes the `message.created` of its announcements.
pub const SLACK_QUEUE: ConsumerQueue = ConsumerQueue {
    name: broker::SLACK_QUEUE,
    exchange: broker::USERS_EXCHANGE,
    exchange_type: ExchangeType::Topic,
    routing_key: broker::USER_CREATED,
    publishes_to: &[(broker::MESSAGES_EXCHANGE, ExchangeType::Topic)],
};

/// The queue user-queue consumes.
pub const USER_QUEUE: ConsumerQueue = ConsumerQueue {
    name: broker::USER_QUEUE,
    exchange: broker::USER_COMMANDS_EXCHANGE,
    exchange_type: ExchangeType::Direct,
    routing_key: broker::CREATE_USER,
    publishes_to: &[],
};

/// Every queue a consumer of the stack reads.
pub const CONSUMER_QUEUES: [ConsumerQueue; 2] = [SLACK_QUEUE, USER_QUEUE];

/// How an exchange routes: by pattern (topic) or by exact routing key (direct).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeType {
    Topic,
    Direct,
}

impl ExchangeType {
    fn lapin(self) -> ExchangeKind {
        match self {
            ExchangeType::Topic => ExchangeKind::Topic,
            ExchangeType::Direct => ExchangeKind::Direct,
        }
    }
}

/// A durable queue bound to an exchange, with its retry queue (messages wait there for their
/// per-message TTL, then dead-letter back to the queue) and its dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerQueue {
    pub name: &'static str,
    pub exchange: &'static str,
    pub exchange_type: ExchangeType,
    pub routing_key: &'static str,
    /// The exchanges its consumer's handler publishes to, declared with the queue.
    pub publishes_to: &'static [(&'static str, ExchangeType)],
}

impl ConsumerQueue {
    pub fn retry_queue(&self) -> String {
        format!("{}.retry", self.name)
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.name)
    }

    /// Declares the exchange, the three queues and the binding, and the exchanges it
    /// publishes to.
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        declare_exchange(channel, self.exchange, self.exchange_type).await?;
        for (exchange, exchange_type) in self.publishes_to {
            declare_exchange(channel, exchange, *exchange_type).await?;
        }
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(self.name.into(), durable, FieldTable::default())
            .await?;
        channel
            .queue_bind(
                self.name.into(),
                self.exchange.into(),
                self.routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut retry_arguments = FieldTable::default();
        retry_arguments.insert(
            ShortString::from("x-dead-letter-exchange"),
            AMQPValue::LongString("".into()),
        );
        retry_arguments.insert(
            ShortString::from("x-dead-letter-routing-key"),
            AMQPValue::LongString(self.name.into()),
        );
        channel
            .queue_declare(self.retry_queue().into(), durable, retry_arguments)
            .await?;
        channel
            .queue_declare(
                self.dead_letter_queue().into(),
                durable,
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }
}

/// Declares a durable exchange.
pub async fn declare_exchange(
    channel: &Channel,
    name: &str,
    exchange_type: ExchangeType,
) -> lapin::Result<()> {
    channel
        .exchange_declare(
            name.into(),
            exchange_type.lapin(),
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}
