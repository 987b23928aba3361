//! A gateway in the test process, in front of fake services that echo what they were sent,
//! answer slowly, or are not there at all.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use gateway::Settings;
use serde_json::json;
use service_kit::Launch;
use telemetry::TelemetryConfig;
use test_support::{InProcess, wait_until_ready};
use tokio::sync::oneshot;

pub const SECRET: &str = "gateway-test-secret-of-at-least-32-bytes";
pub const AUDIENCE: &str = "microservice-stack";

/// A fake service on a random port; dropped, it stops.
pub struct Fake {
    pub url: String,
    _stop: oneshot::Sender<()>,
}

/// Answers `/ping` with pong and every other request with a JSON echo of it (status 201).
pub async fn echo() -> Fake {
    serve(Router::new().fallback(
        |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
            if uri.path() == "/ping" {
                return axum::Json(json!({"response": "pong"})).into_response();
            }
            let headers: HashMap<String, String> = headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_owned()))
                .collect();
            (
                StatusCode::CREATED,
                [("location", "/user/7"), ("x-request-id", "from-upstream")],
                axum::Json(json!({
                    "method": method.as_str(),
                    "uri": uri.to_string(),
                    "headers": headers,
                    "body": String::from_utf8_lossy(&body),
                })),
            )
                .into_response()
        },
    ))
    .await
}

/// Answers every request after `delay`.
pub async fn slow(delay: Duration) -> Fake {
    serve(Router::new().fallback(move || async move {
        tokio::time::sleep(delay).await;
        axum::Json(json!({"response": "pong"}))
    }))
    .await
}

/// Answers every request with this problem.
pub async fn failing(status: u16) -> Fake {
    serve(Router::new().fallback(move || async move {
        (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/problem+json")],
            json!({"type": "urn:problem:conflict", "title": "Conflict", "status": status, "detail": "taken"}).to_string(),
        )
    }))
    .await
}

async fn serve(router: Router) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Fake { url, _stop: stop }
}

/// A URL where nothing listens.
pub fn closed() -> String {
    format!("http://127.0.0.1:{}", test_support::free_port())
}

pub struct TestGateway {
    pub address: String,
    /// Sends a valid token (subject `tester`) with every request.
    pub client: reqwest::Client,
    /// Sends none.
    pub anonymous: reqwest::Client,
    _service: InProcess,
}

/// A gateway whose settings are the defaults but for `overrides` (environment names).
pub async fn spawn_gateway(overrides: &[(&str, String)]) -> TestGateway {
    let mut values: HashMap<String, String> = [
        ("LISTEN_HOST", "127.0.0.1".to_owned()),
        ("GATEWAY_PORT", "0".to_owned()),
        ("JWT_SECRET", SECRET.to_owned()),
        ("HEALTH_TIMEOUT_MS", "500".to_owned()),
        ("UPSTREAM_TIMEOUT_MS", "1000".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    for (name, value) in overrides {
        values.insert((*name).to_owned(), value.clone());
    }
    let settings = Settings::from_lookup(&|name: &str| values.get(name).cloned()).unwrap();
    let launch = Launch::new(settings, &TelemetryConfig::silent()).unwrap();
    let address = format!("http://{}", launch.address());
    let service = InProcess::start(move |stopped| launch.run(stopped).unwrap());
    wait_until_ready(&format!("{address}/health/ready"), Duration::from_secs(10)).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", token("tester")).parse().unwrap(),
    );
    TestGateway {
        address,
        client: reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap(),
        anonymous: reqwest::Client::new(),
        _service: service,
    }
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Its `/metrics`, as Prometheus scrapes them.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// A valid token for `subject`.
pub fn token(subject: &str) -> String {
    contract::tokens::mint(SECRET, subject, AUDIENCE, Duration::from_secs(300))
}
