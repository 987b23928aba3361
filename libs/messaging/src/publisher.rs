//! Publishing with publisher confirms: a publish succeeds only once the broker has taken
//! responsibility for the message, inside a PRODUCER span whose context rides in the headers.
//! [`Publisher`] is one confirm-mode channel; [`SharedPublisher`] is one that request handlers
//! share, connecting on first use and again after a failure.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use opentelemetry::Context;
use telemetry::amqp::{self, Outcome};
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the broker failed: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker refused the message")]
    Nacked,
    #[error("the broker did not confirm within {0:?}")]
    Unconfirmed(Duration),
    #[error("no queue is bound to {exchange} for {routing_key}; the message was returned")]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
}

/// The longest wait for the broker's confirm of one publish.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// One message to publish.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub message_id: &'a str,
    pub body: &'a [u8],
    /// Headers to carry on (the trace context is added to them).
    pub headers: FieldTable,
    /// The context to continue; the current span's when `None`.
    pub parent: Option<Context>,
    /// How long the message may wait in a queue (retry delays).
    pub expiration: Option<Duration>,
    /// Whether a message that no queue takes is an error (the default). Off for events that
    /// may rightly have no listener, such as the live feed's `message.created` while no feed
    /// client is connected.
    pub mandatory: bool,
}

impl<'a> Outgoing<'a> {
    pub fn new(
        exchange: &'a str,
        routing_key: &'a str,
        message_id: &'a str,
        body: &'a [u8],
    ) -> Self {
        Self {
            exchange,
            routing_key,
            message_id,
            body,
            headers: FieldTable::default(),
            parent: None,
            expiration: None,
            mandatory: true,
        }
    }
}

/// A channel in confirm mode.
#[derive(Debug, Clone)]
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    pub async fn open(connection: &Connection) -> lapin::Result<Self> {
        let channel = connection.create_channel().await?;
        Self::on(channel).await
    }

    /// Puts `channel` in confirm mode and publishes on it.
    pub async fn on(channel: Channel) -> lapin::Result<Self> {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self { channel })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes a persistent JSON message, mandatory unless it says otherwise (a message no
    /// queue would take is then an error, not a silent drop), and waits for the broker's
    /// confirm.
    pub async fn publish(&self, message: Outgoing<'_>) -> Result<(), PublishError> {
        let span = amqp::publish_span(
            message.exchange,
            message.routing_key,
            message.message_id,
            message.parent,
        );
        let mut headers = message.headers;
        amqp::inject_headers(&span, &mut headers);
        let mut properties = BasicProperties::default()
            .with_message_id(message.message_id.into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64)
            .with_headers(headers);
        if let Some(expiration) = message.expiration {
            properties = properties.with_expiration(expiration.as_millis().to_string().into());
        }
        let outcome = async {
            let publishing = self
                .channel
                .basic_publish(
                    message.exchange.into(),
                    message.routing_key.into(),
                    BasicPublishOptions {
                        mandatory: message.mandatory,
                        ..BasicPublishOptions::default()
                    },
                    message.body,
                    properties,
                )
                .await?;
            // A connection that dies uncleanly can leave a confirm unanswered: never wait on it
            // for ever (the caller keeps the message and tries again).
            let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, publishing)
                .await
                .map_err(|_| PublishError::Unconfirmed(CONFIRM_TIMEOUT))??;
            match confirmation {
                Confirmation::Ack(None) => Ok(()),
                Confirmation::Ack(Some(_returned)) => Err(PublishError::Unroutable {
                    exchange: message.exchange.to_owned(),
                    routing_key: message.routing_key.to_owned(),
                }),
                Confirmation::Nack(_) | Confirmation::NotRequested => Err(PublishError::Nacked),
            }
        }
        .instrument(span.clone())
        .await;
        let recorded = match &outcome {
            Ok(()) => Outcome::Ok,
            Err(error) => {
                telemetry::record_error(
                    &span,
                    match error {
                        PublishError::Broker(_) => "broker",
                        PublishError::Nacked => "nacked",
                        PublishError::Unconfirmed(_) => "unconfirmed",
                        PublishError::Unroutable { .. } => "unroutable",
                    },
                );
                Outcome::Error
            }
        };
        amqp::record_published(message.exchange, message.routing_key, recorded);
        outcome
    }
}

impl Publisher {
    /// Publishes an RPC reply to `reply_to` on the default exchange, confirmed: transient and
    /// not mandatory (a caller that has gone simply never gets it), with no span of its own
    /// (the SERVER span of the call covers it).
    pub async fn reply(
        &self,
        reply_to: &str,
        correlation_id: &str,
        body: &[u8],
    ) -> Result<(), PublishError> {
        let properties = BasicProperties::default()
            .with_correlation_id(correlation_id.into())
            .with_content_type("application/json".into());
        let publishing = self
            .channel
            .basic_publish(
                "".into(),
                reply_to.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await?;
        match tokio::time::timeout(CONFIRM_TIMEOUT, publishing)
            .await
            .map_err(|_| PublishError::Unconfirmed(CONFIRM_TIMEOUT))??
        {
            Confirmation::Ack(_) => Ok(()),
            Confirmation::Nack(_) | Confirmation::NotRequested => Err(PublishError::Nacked),
        }
    }
}

/// What a [`SharedPublisher`] runs on a fresh channel before publishing: declaring where it
/// publishes, so messages wait even before their consumer first starts.
pub type Setup = Arc<dyn Fn(Channel) -> BoxFuture<'static, lapin::Result<()>> + Send + Sync>;

/// Why a [`SharedPublisher`] did not publish.
#[derive(Debug, thiserror::Error)]
pub enum SharedPublishError {
    #[error("the broker cannot be reached: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// The longest wait for a connection when a publish needs one.
const SHARED_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A confirmed publisher for request handlers: connected on first use and again after a
/// failure, and shared by concurrent callers, each of whom waits for its own confirm only.
pub struct SharedPublisher {
    url: String,
    setup: Setup,
    current: tokio::sync::Mutex<Option<Arc<Connected>>>,
}

struct Connected {
    /// Kept so the connection lives as long as its publisher.
    _connection: Connection,
    publisher: Publisher,
}

impl SharedPublisher {
    pub fn new(url: String, setup: Setup) -> Self {
        Self {
            url,
            setup,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The current connection, or a new one. Callers wait here only while a connection is
    /// being made, never while another caller publishes.
    async fn connected(&self) -> Result<Arc<Connected>, SharedPublishError> {
        let mut current = self.current.lock().await;
        if let Some(connected) = current.as_ref() {
            return Ok(Arc::clone(connected));
        }
        let connecting = async {
            let connection = crate::connect(&self.url).await?;
            let publisher = Publisher::open(&connection).await?;
            (self.setup)(publisher.channel().clone()).await?;
            Ok::<_, lapin::Error>(Connected {
                _connection: connection,
                publisher,
            })
        };
        let connected = match tokio::time::timeout(SHARED_CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(connected)) => Arc::new(connected),
            Ok(Err(error)) => return Err(SharedPublishError::Unreachable(error.to_string())),
            Err(_) => {
                return Err(SharedPublishError::Unreachable(format!(
                    "no connection within {SHARED_CONNECT_TIMEOUT:?}"
                )));
            }
        };
        *current = Some(Arc::clone(&connected));
        Ok(connected)
    }

    /// Publishes `message` (see [`Publisher::publish`]); after a broker failure the next
    /// publish connects again.
    pub async fn publish(&self, message: Outgoing<'_>) -> Result<(), SharedPublishError> {
        let connected = self.connected().await?;
        let outcome = connected.publisher.publish(message).await;
        if matches!(
            outcome,
            Err(PublishError::Broker(_) | PublishError::Unconfirmed(_))
        ) {
            let mut current = self.current.lock().await;
            if current
                .as_ref()
                .is_some_and(|now| Arc::ptr_eq(now, &connected))
            {
                *current = None;
            }
        }
        Ok(outcome?)
    }
}
