//! Stand-ins the stack under load sends to: a Slack incoming webhook that records which
//! "User <email> created" messages arrived (and how often), and a Zipkin-compatible collector
//! that counts spans and throws them away. Both answer at once, so they never hold the stack
//! back, and both listen where the driver is told to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;

/// Messages a Slack webhook stand-in received: text -> times.
#[derive(Clone, Default)]
pub struct SlackSink {
    received: Arc<Mutex<HashMap<String, u32>>>,
}

#[derive(Deserialize)]
struct SlackMessage {
    text: String,
}

impl SlackSink {
    /// Serves the webhook on `address`, any path.
    pub async fn serve(&self, address: SocketAddr) -> std::io::Result<()> {
        let router = Router::new()
            .fallback(post(receive_message))
            .with_state(self.clone());
        serve(address, router).await
    }

    /// How many times `text` arrived.
    pub fn times(&self, text: &str) -> u32 {
        self.received
            .lock()
            .expect("the sink's lock")
            .get(text)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until the announcement ("User <email> created") of every user in `created` arrived
    /// or `timeout` passed. Each poll looks on from the first one still missing, so waiting costs
    /// the driver little CPU.
    pub async fn announcements(&self, created: &[String], timeout: Duration) -> Announced {
        let started = Instant::now();
        let announcement = |email: &String| format!("User {email} created");
        let mut missing = 0;
        loop {
            while missing < created.len() && self.times(&announcement(&created[missing])) > 0 {
                missing += 1;
            }
            if missing == created.len() || started.elapsed() > timeout {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let waited = started.elapsed();
        let times: Vec<u32> = created
            .iter()
            .map(|email| self.times(&announcement(email)))
            .collect();
        Announced {
            arrived: times.iter().filter(|times| **times > 0).count(),
            duplicated: times.iter().filter(|times| **times > 1).count(),
            waited,
        }
    }
}

/// How the announcements of a set of users arrived.
#[derive(Debug)]
pub struct Announced {
    pub arrived: usize,
    /// Arrived more than once.
    pub duplicated: usize,
    /// From the call until the last arrived (or the timeout).
    pub waited: Duration,
}

async fn receive_message(State(sink): State<SlackSink>, body: Bytes) -> StatusCode {
    match serde_json::from_slice::<SlackMessage>(&body) {
        Ok(message) => {
            *sink
                .received
                .lock()
                .expect("the sink's lock")
                .entry(message.text)
                .or_default() += 1;
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// Spans a Zipkin stand-in received.
#[derive(Clone, Default)]
pub struct CollectorSink {
    spans: Arc<AtomicU64>,
}

impl CollectorSink {
    /// Serves `POST /api/v2/spans` on `address`.
    pub async fn serve(&self, address: SocketAddr) -> std::io::Result<()> {
        let router = Router::new()
            .route("/api/v2/spans", post(receive_spans))
            .with_state(self.clone());
        serve(address, router).await
    }

    pub fn spans(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }
}

async fn receive_spans(State(sink): State<CollectorSink>, body: Bytes) -> StatusCode {
    match serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&body) {
        Ok(spans) => {
            sink.spans.fetch_add(spans.len() as u64, Ordering::Relaxed);
            StatusCode::ACCEPTED
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

async fn serve(address: SocketAddr, router: Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    axum::serve(listener, router).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A free loopback address for a sink.
    fn address() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    #[tokio::test]
    async fn the_slack_stand_in_counts_each_message_and_the_collector_each_span() {
        let (slack, collector) = (SlackSink::default(), CollectorSink::default());
        let (slack_address, collector_address) = (address(), address());
        tokio::spawn({
            let slack = slack.clone();
            async move { slack.serve(slack_address).await }
        });
        tokio::spawn({
            let collector = collector.clone();
            async move { collector.serve(collector_address).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;

        let client = reqwest::Client::new();
        let webhook = format!("http://{slack_address}/services/T000/B000/XXXX");
        for text in [
            "User a@example.com created",
            "User a@example.com created",
            "other",
        ] {
            let response = client
                .post(&webhook)
                .json(&serde_json::json!({"text": text, "channel": "#user"}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        let refused = client.post(&webhook).body("not json").send().await.unwrap();
        assert_eq!(refused.status(), 400);
        assert_eq!(slack.times("User a@example.com created"), 2);
        assert_eq!(slack.times("User b@example.com created"), 0);

        let spans = format!("http://{collector_address}/api/v2/spans");
        for batch in [r#"[{"id":"1"},{"id":"2"}]"#, r#"[{"id":"3"}]"#] {
            let response = client.post(&spans).body(batch).send().await.unwrap();
            assert_eq!(response.status(), 202);
        }
        assert_eq!(collector.spans(), 3);
    }

    fn receive(slack: &SlackSink, text: &str) {
        *slack
            .received
            .lock()
            .unwrap()
            .entry(text.to_owned())
            .or_default() += 1;
    }

    #[tokio::test]
    async fn the_wait_for_announcements_lasts_until_the_last_arrives_and_counts_repeats() {
        let slack = SlackSink::default();
        let created: Vec<String> = ["a", "b", "c"].map(|n| format!("{n}@example.com")).into();
        receive(&slack, "User c@example.com created");
        receive(&slack, "User a@example.com created");
        receive(&slack, "User a@example.com created");
        let late = slack.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            receive(&late, "User b@example.com created");
        });
        let announced = slack.announcements(&created, Duration::from_secs(10)).await;
        assert_eq!((announced.arrived, announced.duplicated), (3, 1));
        assert!(
            announced.waited >= Duration::from_millis(300),
            "{announced:?}"
        );

        let missing = slack
            .announcements(&["d@example.com".to_owned()], Duration::from_millis(200))
            .await;
        assert_eq!((missing.arrived, missing.duplicated), (0, 0));
        assert!(missing.waited >= Duration::from_millis(200), "{missing:?}");
    }
}
