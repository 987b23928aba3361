//! Spawns the slack service or slack-queue the way their binaries run them, with a Redis key
//! prefix and a vhost of their own.

use std::time::Duration;

use reqwest::Response;
use serde_json::{Value, json};
use service_kit::{Launch, Service};
use slack::{QueueSettings, Settings};
use telemetry::{TelemetryConfig, TracesExporter};
use test_support::{InProcess, TestRedis, TestVhost, wait_until_ready};

/// How to spawn; the defaults are silent telemetry, no webhook and the test servers.
#[derive(Default)]
pub struct Options {
    pub zipkin: Option<String>,
    pub webhook: Option<String>,
    /// `redis://host:port` of a proxy to the test Redis.
    pub redis_url: Option<String>,
    pub max_attempts: Option<u32>,
    /// `host:port` of a proxy to the test RabbitMQ.
    pub amqp_address: Option<String>,
}

pub struct TestSlack {
    pub address: String,
    pub client: reqwest::Client,
    pub redis: TestRedis,
    pub vhost: TestVhost,
    service: InProcess,
}

fn settings(options: &Options, redis: &TestRedis, amqp_url: &str) -> Settings {
    let lookup = |name: &str| match name {
        "AMQP_URL" => Some(amqp_url.to_owned()),
        "LISTEN_HOST" => Some("127.0.0.1".to_owned()),
        "SLACK_PORT" | "SLACK_QUEUE_PORT" => Some("0".to_owned()),
        "REDIS_URL" => Some(
            options
                .redis_url
                .clone()
                .unwrap_or_else(test_support::redis::server_url),
        ),
        "REDIS_KEY_PREFIX" => Some(redis.prefix().to_owned()),
        "SLACK_WEBHOOK_URL" => options.webhook.clone(),
        "SLACK_WEBHOOK_TIMEOUT_MS" => Some("2000".to_owned()),
        _ => None,
    };
    Settings::from_lookup(&lookup).unwrap()
}

fn telemetry(options: &Options) -> TelemetryConfig {
    match &options.zipkin {
        Some(endpoint) => TelemetryConfig {
            exporter: TracesExporter::Zipkin {
                endpoint: endpoint.clone(),
            },
            ..TelemetryConfig::silent()
        },
        None => TelemetryConfig::silent(),
    }
}

/// Runs `service` in the test process, the way its binary runs it.
fn start(service: impl Service, options: &Options) -> (String, InProcess) {
    let launch = Launch::new(service, &telemetry(options)).unwrap();
    let address = format!("http://{}", launch.address());
    (
        address,
        InProcess::start(move |stopped| launch.run(stopped).unwrap()),
    )
}

/// Which process to run.
pub enum Process {
    Api,
    Queue,
}

pub async fn spawn(process: Process, options: Options) -> TestSlack {
    let redis = TestRedis::new().await;
    let vhost = TestVhost::new().await;
    let amqp_url = match &options.amqp_address {
        Some(address) => vhost.amqp_url_via(address),
        None => vhost.amqp_url(),
    };
    let slack = settings(&options, &redis, &amqp_url);
    let (address, service) = match process {
        Process::Api => start(slack, &options),
        Process::Queue => start(
            QueueSettings {
                listen: slack.listen,
                slack,
                consumer: messaging::ConsumerSettings {
                    amqp_url,
                    queue: messaging::topology::SLACK_QUEUE,
                    prefetch: 4,
                    max_attempts: options.max_attempts.unwrap_or(3),
                    retry_delay: Duration::from_millis(100),
                },
            },
            &options,
        ),
    };
    wait_until_ready(&format!("{address}/health/ready"), Duration::from_secs(30)).await;
    TestSlack {
        address,
        client: reqwest::Client::new(),
        redis,
        vhost,
        service,
    }
}

impl TestSlack {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post(&self, channel: &str, message: &str) -> Response {
        self.client
            .post(self.url("/"))
            .json(&json!({"channel": channel, "message": message}))
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// The texts in `channel`, newest first, read straight from Redis.
    pub async fn channel(&self, channel: &str) -> Vec<String> {
        let mut connection = self.redis.connection().await;
        let raw: Vec<String> = redis::AsyncCommands::lrange(
            &mut connection,
            format!("{}channel:{channel}", self.redis.prefix()),
            0,
            -1,
        )
        .await
        .unwrap();
        raw.iter()
            .map(|entry| {
                serde_json::from_str::<Value>(entry).unwrap()["message"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    /// Stops the process gracefully and waits until its last spans are flushed.
    pub async fn stop(self) {
        self.service.stop().await;
    }
}
