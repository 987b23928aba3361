//! Spawns the user service on a random port with a fresh database, the way its binary runs it
//! (its own runtime and telemetry pipeline), and talks to it over HTTP.

use std::time::Duration;

use lapin::ExchangeKind;
use reqwest::Response;
use serde_json::{Value, json};
use service_kit::faults::FaultSettings;
use service_kit::{Launch, Service};
use sqlx::{Connection, PgConnection};
use telemetry::{TelemetryConfig, TracesExporter};
use test_support::{InProcess, TestDatabase, TestVhost, wait_until_ready};
use user::configuration::DatabaseSettings;
use user::{QueueSettings, Settings};

/// The queue that [`TestApp::observe_user_events`] binds to the `user.created` events.
pub const EVENTS: &str = "test.observer";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub database: TestDatabase,
    pub vhost: TestVhost,
    service: InProcess,
}

/// How to spawn a test app; the defaults are a silent telemetry and the test servers.
#[derive(Default)]
pub struct Options {
    pub telemetry: Option<TelemetryConfig>,
    /// `postgres://...` without a database: another way to the test Postgres (a proxy).
    pub postgres_server: Option<String>,
    /// `host:port`: another way to the test RabbitMQ (a proxy).
    pub amqp_address: Option<String>,
    /// How long a write that lost Postgres is retried; none by default, so a lost connection
    /// answers 503 at once.
    pub retry_budget: Option<Duration>,
}

/// A service whose spans go nowhere.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// A service whose spans go to Zipkin at `endpoint`.
pub async fn spawn_app_exporting_to_zipkin(endpoint: String) -> TestApp {
    let config = TelemetryConfig {
        exporter: TracesExporter::Zipkin { endpoint },
        ..TelemetryConfig::silent()
    };
    spawn_app_with(Options {
        telemetry: Some(config),
        ..Options::default()
    })
    .await
}

/// Runs `service` in the test process on a port of its own, the way its binary runs it, and
/// waits until it is ready.
async fn start(service: impl Service, config: &TelemetryConfig) -> (String, InProcess) {
    let launch = Launch::new(service, config).unwrap();
    let address = format!("http://{}", launch.address());
    let service = InProcess::start(move |stopped| launch.run(stopped).unwrap());
    wait_until_ready(&format!("{address}/health/ready"), Duration::from_secs(30)).await;
    (address, service)
}

/// The test database, through `url`.
fn database_settings(url: String, retry_budget: Duration) -> DatabaseSettings {
    DatabaseSettings {
        url,
        max_connections: 5,
        acquire_timeout: Duration::from_secs(1),
        retry_budget,
    }
}

/// Listening on a port of its own.
fn any_port() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A service with its own database and vhost, as `options` say.
pub async fn spawn_app_with(options: Options) -> TestApp {
    let database = TestDatabase::new().await;
    let vhost = TestVhost::new().await;
    let database_url = match options.postgres_server {
        Some(server) => format!("{server}/{}", database.name()),
        None => database.url(),
    };
    let amqp_url = match options.amqp_address {
        Some(address) => vhost.amqp_url_via(&address),
        None => vhost.amqp_url(),
    };
    let config = options.telemetry.unwrap_or_else(TelemetryConfig::silent);
    let settings = Settings {
        listen: any_port(),
        database: database_settings(database_url, options.retry_budget.unwrap_or_default()),
        amqp_url,
        outbox_poll_interval: Duration::from_millis(200),
        faults: FaultSettings::off(),
        gateway: service_kit::headers::GatewayTrust::everyone(),
    };
    let (address, service) = start(settings, &config).await;
    TestApp {
        address,
        client: reqwest::Client::new(),
        database,
        vhost,
        service,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post_user(&self, body: &Value) -> Response {
        self.client
            .post(self.url("/user"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn create_user(&self, name: &str, email: &str) -> Value {
        let response = self.post_user(&json!({"name": name, "email": email})).await;
        assert_eq!(response.status(), 201, "creating {email}");
        response.json().await.unwrap()
    }

    /// `POST /user` with an `Idempotency-Key`, as the client `subject` when one is given (the
    /// gateway names it in `x-enduser-id`).
    pub async fn post_user_keyed(
        &self,
        body: &Value,
        key: &str,
        subject: Option<&str>,
    ) -> Response {
        let mut request = self
            .client
            .post(self.url("/user"))
            .header("idempotency-key", key)
            .json(body);
        if let Some(subject) = subject {
            request = request.header(contract::headers::ENDUSER, subject);
        }
        request.send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Binds [`EVENTS`] to the `user.created` events, so a test can read what was published.
    pub async fn observe_user_events(&self) {
        self.vhost
            .observe(EVENTS, "users", ExchangeKind::Topic, "user.created")
            .await;
    }

    /// The ids of the users and the number of outbox events stored for `email`, read straight
    /// from the database (past any proxy a test put in front of it).
    pub async fn stored(&self, email: &str) -> (Vec<i64>, i64) {
        let mut database = PgConnection::connect(&self.database.url()).await.unwrap();
        let users = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(email)
            .fetch_all(&mut database)
            .await
            .unwrap();
        let events = sqlx::query_scalar(
            "SELECT count(*) FROM outbox o JOIN users u ON u.id = o.user_id WHERE u.email = $1",
        )
        .bind(email)
        .fetch_one(&mut database)
        .await
        .unwrap();
        (users, events)
    }

    /// Stops the service gracefully and waits until its last spans are flushed.
    pub async fn stop(self) {
        self.service.stop().await;
    }
}

/// A unique email, so tests never collide even on a shared database.
pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// user-queue, running beside `app` on the same database and vhost.
pub struct QueueApp {
    service: InProcess,
}

pub async fn spawn_user_queue(app: &TestApp) -> QueueApp {
    let settings = QueueSettings {
        listen: any_port(),
        database: database_settings(app.database.url(), Duration::ZERO),
        consumer: messaging::ConsumerSettings {
            amqp_url: app.vhost.amqp_url(),
            queue: messaging::topology::USER_QUEUE,
            prefetch: 4,
            max_attempts: 3,
            retry_delay: Duration::from_millis(100),
        },
        faults: FaultSettings::off(),
    };
    let (_, service) = start(settings, &TelemetryConfig::silent()).await;
    QueueApp { service }
}

impl QueueApp {
    /// Stops user-queue gracefully and waits for it.
    pub async fn stop(self) {
        self.service.stop().await;
    }
}
