//! A RabbitMQ virtual host of its own for each test (made and deleted through the management
//! API), and the few broker operations tests need: publish, get, count.

use std::time::{Duration, Instant};

use lapin::message::BasicGetMessage;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

fn management_api() -> String {
    std::env::var("TEST_RABBITMQ_API").unwrap_or_else(|_| "http://127.0.0.1:15672".to_owned())
}

fn broker_address() -> String {
    std::env::var("TEST_RABBITMQ_ADDRESS").unwrap_or_else(|_| "127.0.0.1:5672".to_owned())
}

pub struct TestVhost {
    name: String,
    /// The channel [`TestVhost::publish`] reuses (a connection per publish is slow).
    publishing: tokio::sync::Mutex<Option<Channel>>,
}

impl TestVhost {
    /// Creates a fresh vhost where `guest` may do anything.
    pub async fn new() -> Self {
        let name = format!("test-{}", uuid::Uuid::new_v4().simple());
        let api = management_api();
        let client = reqwest::Client::new();
        let created = client
            .put(format!("{api}/api/vhosts/{name}"))
            .basic_auth("guest", Some("guest"))
            .send()
            .await;
        match created {
            Ok(response) if response.status().is_success() => {}
            outcome => panic!(
                "RabbitMQ's management API at {api} did not create a vhost ({outcome:?}). \
                 Start RabbitMQ with `rabbitmq-server -detached` and enable the API with \
                 `rabbitmq-plugins enable rabbitmq_management`."
            ),
        }
        let permitted = client
            .put(format!("{api}/api/permissions/{name}/guest"))
            .basic_auth("guest", Some("guest"))
            .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}))
            .send()
            .await
            .expect("the management API answers");
        assert!(
            permitted.status().is_success(),
            "permissions: {}",
            permitted.status()
        );
        Self {
            name,
            publishing: tokio::sync::Mutex::new(None),
        }
    }

    /// Asks the management API for `path`, where `{vhost}` stands for this vhost
    /// (`queues/{vhost}`, `vhosts/{vhost}/channels`).
    pub async fn management(&self, path: &str) -> serde_json::Value {
        let url = format!(
            "{}/api/{}",
            management_api(),
            path.replace("{vhost}", &self.name)
        );
        reqwest::Client::new()
            .get(&url)
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|error| panic!("the management API at {url}: {error}"))
            .json()
            .await
            .expect("the management API answers JSON")
    }

    /// The URL of this vhost on the test broker.
    pub fn amqp_url(&self) -> String {
        self.amqp_url_via(&broker_address())
    }

    /// The URL of this vhost through another address (a [`crate::TcpProxy`]).
    pub fn amqp_url_via(&self, address: &str) -> String {
        format!("amqp://guest:guest@{address}/{}", self.name)
    }

    pub async fn channel(&self) -> Channel {
        let connection = Connection::connect(&self.amqp_url(), ConnectionProperties::default())
            .await
            .expect("a connection to the test vhost");
        let channel = connection.create_channel().await.expect("a channel");
        // The channel keeps the connection's I/O running; leak the handle with the channel.
        std::mem::forget(connection);
        channel
    }

    /// Declares a durable queue bound to the durable `exchange` (declared too, as `kind`) for
    /// `routing_key`, to watch what is published there.
    pub async fn observe(
        &self,
        queue: &str,
        exchange: &str,
        kind: ExchangeKind,
        routing_key: &str,
    ) {
        let channel = self.channel().await;
        channel
            .exchange_declare(
                exchange.into(),
                kind,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare the exchange");
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare the observer queue");
        channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind the observer queue");
    }

    /// Publishes `body` with `properties` (persistent by default), on a channel kept for the
    /// next publishes (and opened again after a failure).
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) {
        let mut publishing = self.publishing.lock().await;
        for last_try in [false, true] {
            let channel = match publishing.as_ref() {
                Some(channel) if channel.status().connected() => channel.clone(),
                _ => publishing.insert(self.channel().await).clone(),
            };
            let published = async {
                channel
                    .basic_publish(
                        exchange.into(),
                        routing_key.into(),
                        BasicPublishOptions::default(),
                        body,
                        properties.clone().with_delivery_mode(2),
                    )
                    .await?
                    .await
            }
            .await;
            match published {
                Ok(_) => return,
                Err(error) if last_try => panic!("publish to {exchange}/{routing_key}: {error}"),
                Err(_) => *publishing = None,
            }
        }
    }

    /// Takes one message from `queue`, waiting up to `timeout`.
    pub async fn get(&self, queue: &str, timeout: Duration) -> Option<BasicGetMessage> {
        let channel = self.channel().await;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(message) = channel
                .basic_get(queue.into(), BasicGetOptions::default())
                .await
                .expect("basic.get")
            {
                message
                    .delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .expect("ack");
                return Some(message);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Messages ready in `queue` now.
    pub async fn count(&self, queue: &str) -> u32 {
        self.channel()
            .await
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map(|queue| queue.message_count())
            .unwrap_or(0)
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let url = format!("{}/api/vhosts/{}", management_api(), self.name);
        // A blocking client may not be used inside a test's runtime: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let _ = reqwest::blocking::Client::new()
                .delete(url)
                .basic_auth("guest", Some("guest"))
                .send();
        })
        .join();
    }
}

/// Header `name` of a message as text (numbers in decimal), if it has one.
pub fn header(message: &BasicGetMessage, name: &str) -> Option<String> {
    use lapin::types::AMQPValue;
    let headers = message.delivery.properties.headers().as_ref()?;
    Some(match headers.inner().get(name)? {
        AMQPValue::LongString(text) => String::from_utf8_lossy(text.as_bytes()).into_owned(),
        AMQPValue::ShortString(text) => text.as_str().to_owned(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        other => format!("{other:?}"),
    })
}
