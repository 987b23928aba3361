//! Spawns the user service on a random port with a fresh database, the way its binary runs it
//! (its own runtime and telemetry pipeline), and talks to it over HTTP.

use std::time::Duration;

use reqwest::Response;
use serde_json::{Value, json};
use telemetry::{Telemetry, TelemetryConfig, TracesExporter};
use test_support::TestDatabase;
use tokio::sync::oneshot;
use user::Settings;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// Dropped with the app, which drops the database.
    _database: TestDatabase,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A service whose spans go nowhere.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(TelemetryConfig::silent(), None).await
}

/// A service whose spans go to Zipkin at `endpoint`.
pub async fn spawn_app_exporting_to_zipkin(endpoint: String) -> TestApp {
    let config = TelemetryConfig {
        exporter: TracesExporter::Zipkin { endpoint },
        ..TelemetryConfig::silent()
    };
    spawn_app_with(config, None).await
}

/// A service with this telemetry, reaching Postgres at `postgres_server` (`postgres://...`
/// without a database) when given, else the test server.
pub async fn spawn_app_with(config: TelemetryConfig, postgres_server: Option<String>) -> TestApp {
    let database = TestDatabase::new().await;
    let database_url = match postgres_server {
        Some(server) => format!("{server}/{}", database.name()),
        None => database.url(),
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let settings = Settings {
        listen: listener.local_addr().unwrap(),
        database_url,
        max_connections: 5,
        acquire_timeout: Duration::from_secs(1),
    };
    let telemetry = Telemetry::init(user::SERVICE_NAME, "test", &config).unwrap();
    let metrics = telemetry.metrics().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        telemetry
            .run(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                user::run(settings, metrics, listener, async {
                    let _ = stopped.await;
                })
                .await
            })
            .unwrap()
            .unwrap();
    });
    let app = TestApp {
        address,
        client: reqwest::Client::new(),
        _database: database,
        stop: Some(stop),
        thread: Some(thread),
    };
    app.wait_until_ready(Duration::from_secs(30)).await;
    app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn wait_until_ready(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(response) = self.client.get(self.url("/health/ready")).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the user service did not become ready within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Stops the service gracefully and waits until its last spans are flushed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join().expect("the service panicked"))
                .await
                .unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A unique email, so tests never collide even on a shared database.
pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}
