//! A stand-in for a Slack incoming webhook: answers with scripted statuses and records what it
//! was sent, so tests can make it fail, recover, or refuse.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

use crate::server::TestServer;
use crate::tls::TestCa;

#[derive(Default)]
struct Script {
    /// Statuses to answer, in order; `then` once they are used up.
    statuses: Vec<u16>,
    then: u16,
    /// How long each call takes to answer.
    delay: Duration,
    received: Vec<Value>,
    calls: usize,
}

pub struct FakeWebhook {
    server: TestServer,
    script: Arc<Mutex<Script>>,
}

impl FakeWebhook {
    /// Answers `statuses` in order (a 429 with `Retry-After: 1`), then `then` for ever.
    pub fn start(statuses: &[u16], then: u16) -> Self {
        Self::serve(statuses, then, None)
    }

    /// The same over HTTPS, with a certificate of `ca`: a real webhook is `https://`.
    pub fn start_tls(statuses: &[u16], then: u16, ca: &TestCa) -> Self {
        Self::serve(statuses, then, Some(ca))
    }

    fn serve(statuses: &[u16], then: u16, ca: Option<&TestCa>) -> Self {
        let script = Arc::new(Mutex::new(Script {
            statuses: statuses.to_vec(),
            then,
            ..Script::default()
        }));
        let router = Router::new()
            .route("/services/T000/B000/XXXX", post(receive))
            .with_state(Arc::clone(&script));
        Self {
            server: match ca {
                Some(ca) => TestServer::start_tls(router, ca),
                None => TestServer::start(router),
            },
            script,
        }
    }

    /// The URL to give to `SLACK_WEBHOOK_URL`; its path plays the secret part of a real one.
    pub fn url(&self) -> String {
        format!("{}/services/T000/B000/XXXX", self.server.base_url())
    }

    /// Bodies of the requests answered 2xx: the deliveries.
    pub fn delivered(&self) -> Vec<Value> {
        self.script.lock().unwrap().received.clone()
    }

    /// Makes every later call take `delay` before it answers (a slow Slack).
    pub fn set_delay(&self, delay: Duration) {
        self.script.lock().unwrap().delay = delay;
    }

    /// Every request, failed or not.
    pub fn calls(&self) -> usize {
        self.script.lock().unwrap().calls
    }
}

async fn receive(State(script): State<Arc<Mutex<Script>>>, body: Bytes) -> Response {
    let delay = script.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    let mut script = script.lock().unwrap();
    let status = if script.calls < script.statuses.len() {
        script.statuses[script.calls]
    } else {
        script.then
    };
    script.calls += 1;
    let status = StatusCode::from_u16(status).unwrap();
    if status.is_success() {
        script
            .received
            .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
        return (status, "ok").into_response();
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return (status, [("retry-after", "1")], "rate_limited").into_response();
    }
    (status, "invalid_payload").into_response()
}
