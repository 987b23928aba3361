//! Faults switched on through the gateway's `/admin/faults`, against the whole stack: each kind
//! changes what it should and nothing else, marks the span it touched (`fault.injected`, and a
//! `fault injected` annotation) and counts itself in `faults_injected_total`; switched off, the
//! stack is itself again.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::ServiceProcess;
use test_support::zipkin::service;

mod common;
use common::{Environment, JWT_SECRET};

struct Stack {
    environment: Environment,
    process: ServiceProcess,
    client: reqwest::Client,
}

impl Stack {
    async fn start() -> Self {
        let environment = Environment::new().await;
        let mut variables = environment.variables();
        variables.extend([
            // A struck write gives up quickly, a struck delivery comes back quickly.
            ("DATABASE_RETRY_BUDGET_MS", "200".to_owned()),
            ("AMQP_RETRY_DELAY_MS", "200".to_owned()),
            ("AMQP_MAX_ATTEMPTS", "50".to_owned()),
            ("RPC_TIMEOUT_MS", "500".to_owned()),
        ]);
        let process = environment.launch(&variables).await;
        Self {
            environment,
            process,
            client: reqwest::Client::new(),
        }
    }

    fn gateway(&self, path: &str) -> String {
        format!("{}{path}", Environment::url(self.environment.gateway_port))
    }

    fn admin(&self) -> String {
        let claims = contract::tokens::Claims::new(
            "operator",
            contract::tokens::DEFAULT_AUDIENCE,
            Duration::from_secs(300),
        )
        .with_roles(&[contract::tokens::ADMIN_ROLE]);
        contract::tokens::sign(&claims, JWT_SECRET)
    }

    /// Puts `faults` in force, and waits the second every process takes to read them.
    async fn switch_on(&self, faults: Value) {
        let answer = self
            .client
            .put(self.gateway("/admin/faults"))
            .bearer_auth(self.admin())
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
        tokio::time::sleep(Duration::from_millis(1300)).await;
    }

    async fn switch_off(&self) {
        let answer = self
            .client
            .delete(self.gateway("/admin/faults"))
            .bearer_auth(self.admin())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 204);
        tokio::time::sleep(Duration::from_millis(1300)).await;
    }

    async fn create(&self, email: &str) -> reqwest::Response {
        self.client
            .post(self.gateway("/user"))
            .bearer_auth(self.environment.token("faulty"))
            .json(&json!({"name": "faulty", "email": email}))
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.gateway(path))
            .bearer_auth(self.environment.token("faulty"))
            .send()
            .await
            .unwrap()
    }

    /// `faults_injected_total` of `kind` in the process on `port`.
    async fn injected(&self, port: u16, kind: &str) -> u64 {
        let metrics = self
            .client
            .get(format!("{}/metrics", Environment::url(port)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .find(|line| {
                line.starts_with("faults_injected_total{")
                    && line.contains(&format!("kind=\"{kind}\""))
            })
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    }

    /// A span of `service` named `name` (any case) marked with the fault `kind`.
    async fn marked_span(&self, service_name: &str, name: &str, kind: &str) -> Value {
        let spans = self
            .environment
            .zipkin
            .wait_for(
                Duration::from_secs(10),
                "a span the fault marked",
                |spans| {
                    spans
                        .iter()
                        .any(|span| marked(span, service_name, name, kind))
                },
            )
            .await;
        spans
            .into_iter()
            .find(|span| marked(span, service_name, name, kind))
            .unwrap()
    }

    async fn stop(self) {
        self.process.terminate();
        assert_eq!(
            self.process.wait(Duration::from_secs(20)).await.code,
            Some(0)
        );
    }
}

fn marked(span: &Value, service_name: &str, name: &str, kind: &str) -> bool {
    service(span) == service_name
        && span["name"]
            .as_str()
            .is_some_and(|span| span.eq_ignore_ascii_case(name))
        && span["tags"]["fault.injected"] == kind
        && span["annotations"]
            .as_array()
            .is_some_and(|notes| notes.iter().any(|note| note["value"] == "fault injected"))
}

#[tokio::test]
async fn a_route_fault_delays_or_fails_its_route_and_no_other() {
    let stack = Stack::start().await;
    let created: Value = stack
        .create("routed@example.com")
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    stack
        .switch_on(json!([
            {"kind": "latency", "service": "user", "route": "GET /user/{id}", "delay_ms": 1000},
            {"kind": "error", "service": "slack", "route": "GET /messages", "status": 502}
        ]))
        .await;

    let started = Instant::now();
    let slow = stack.get(&format!("/user/{id}")).await;
    assert_eq!(slow.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_eq!(stack.get("/users").await.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "another route was delayed"
    );
    let failed = stack.get("/messages?channel=%23user").await;
    assert_eq!(failed.status(), 502);
    let problem: Value = failed.json().await.unwrap();
    assert_eq!(problem["type"], "urn:problem:fault-injected");
    let port = stack.environment.user_port;
    assert_eq!(stack.injected(port, "latency").await, 1);
    assert_eq!(
        stack.injected(stack.environment.slack_port, "error").await,
        1
    );
    stack.marked_span("user", "GET /user/{id}", "latency").await;
    let struck = stack.marked_span("slack", "GET /messages", "error").await;
    assert_eq!(struck["tags"]["http.response.status_code"], "502");

    stack.switch_off().await;
    assert_eq!(stack.get("/messages?channel=%23user").await.status(), 200);
    let started = Instant::now();
    assert_eq!(stack.get(&format!("/user/{id}")).await.status(), 200);
    // Well under the delay, with room for a busy machine.
    assert!(started.elapsed() < Duration::from_millis(800));
    stack.stop().await;
}

#[tokio::test]
async fn a_database_fault_fails_the_user_services_calls_and_nothing_else() {
    let stack = Stack::start().await;
    stack.switch_on(json!([{"kind": "database"}])).await;
    let refused = stack.create("stored-later@example.com").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(stack.get("/users").await.status(), 503);
    assert_eq!(
        stack.get("/messages?channel=%23user").await.status(),
        200,
        "slack has no database fault"
    );
    // user-queue's calls too: a queued creation waits.
    let queued = stack
        .client
        .post(stack.gateway("/user"))
        .bearer_auth(stack.environment.token("faulty"))
        .header("prefer", "respond-async")
        .header("idempotency-key", "5d7f7b5c-3a1e-4f0e-9d5e-0c6b8f2a1b3c")
        .json(&json!({"name": "queued", "email": "queued@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 202);
    stack.marked_span("user", "INSERT users", "database").await;
    stack
        .marked_span("user-queue", "INSERT users", "database")
        .await;
    assert!(
        stack
            .injected(stack.environment.user_port, "database")
            .await
            >= 1
    );

    stack.switch_off().await;
    assert_eq!(stack.create("stored-now@example.com").await.status(), 201);
    // The queued creation, retried, is stored once the fault is off.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found: Vec<Value> = stack
            .get("/users?email=queued%40example.com")
            .await
            .json()
            .await
            .unwrap();
        if found.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the queued creation was lost");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stack.stop().await;
}

#[tokio::test]
async fn rpc_faults_fail_or_silence_the_answers_and_creations_go_on() {
    let stack = Stack::start().await;
    let available = "/users/availability?email=free%40example.com";
    assert_eq!(stack.get(available).await.status(), 200);

    stack.switch_on(json!([{"kind": "rpc_error"}])).await;
    assert_eq!(stack.get(available).await.status(), 503);
    stack
        .marked_span("user", "users.email_available", "rpc_error")
        .await;
    assert_eq!(stack.create("rpc-error@example.com").await.status(), 201);

    stack.switch_on(json!([{"kind": "rpc_timeout"}])).await;
    let started = Instant::now();
    assert_eq!(stack.get(available).await.status(), 504);
    assert!(started.elapsed() >= Duration::from_millis(500));
    stack
        .marked_span("user", "users.email_available", "rpc_timeout")
        .await;
    assert_eq!(
        stack
            .injected(stack.environment.user_port, "rpc_timeout")
            .await,
        1
    );

    stack.switch_off().await;
    assert_eq!(stack.get(available).await.status(), 200);
    stack.stop().await;
}

#[tokio::test]
async fn slack_faults_hold_the_announcements_back_until_they_are_switched_off() {
    let stack = Stack::start().await;
    let webhook = &stack.environment.webhook;

    // The webhook fails: slack-queue retries the announcement, Slack never hears of it.
    stack.switch_on(json!([{"kind": "webhook_error"}])).await;
    assert_eq!(stack.create("held@example.com").await.status(), 201);
    stack
        .marked_span("slack-queue", "POST", "webhook_error")
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(webhook.calls(), 0, "a struck call reaches no webhook");
    stack.switch_off().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while webhook.delivered().is_empty() {
        assert!(Instant::now() < deadline, "the announcement was lost");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Handling fails: the delivery is retried by the broker; slow handling and slow Slack
    // delay it.
    stack
        .switch_on(json!([
            {"kind": "consumer_error", "probability": 1, "ttl_seconds": 3},
            {"kind": "consumer_latency", "delay_ms": 300},
            {"kind": "webhook_latency", "delay_ms": 300}
        ]))
        .await;
    assert_eq!(stack.create("retried@example.com").await.status(), 201);
    let queue_port = stack.environment.slack_queue_port;
    let deadline = Instant::now() + Duration::from_secs(20);
    while webhook.delivered().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the retried announcement never came"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stack.injected(queue_port, "consumer_error").await >= 1);
    let slow = stack
        .marked_span("slack-queue", "POST", "webhook_latency")
        .await;
    assert!(slow["duration"].as_u64().unwrap() >= 300_000, "{slow}");
    // The delivery that comes back from the retry queue, named after its routing key.
    stack
        .marked_span(
            "slack-queue",
            "process slack-queue.user-created",
            "consumer_latency",
        )
        .await;
    let texts: Vec<Value> = webhook
        .delivered()
        .iter()
        .map(|body| body["text"].clone())
        .collect();
    assert_eq!(
        texts,
        [
            json!("User held@example.com created"),
            json!("User retried@example.com created")
        ],
        "each announced once"
    );
    stack.switch_off().await;
    stack.stop().await;
}
