//! `GET /users/availability` answers through the user service's RPC over RabbitMQ (here a
//! stand-in server on the test's vhost): 200 with the server's answer, 400 for a bad email
//! before any call, 503 at once when no server consumes `user.rpc`, 504 after `RPC_TIMEOUT_MS`
//! (its late reply discarded and counted); and an asynchronous creation of a taken email is a
//! 409 at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use contract::rpc::{self, EmailAvailability, codes, methods};
use messaging::ConsumerStatus;
use messaging::rpc::Procedures;
use serde_json::{Value, json};
use test_support::TestVhost;
use tokio::sync::watch;

use crate::helpers::{TestGateway, spawn_gateway, token};

/// Answers `users.email_available`: taken when the email starts with `taken`, after `delay`.
struct StandIn {
    delay: Duration,
}

impl Procedures for StandIn {
    fn method(&self, name: &str) -> Option<&'static str> {
        methods::ALL.into_iter().find(|method| *method == name)
    }

    async fn call(&self, _method: &'static str, params: Value) -> Result<Value, rpc::Error> {
        tokio::time::sleep(self.delay).await;
        let email = params["email"].as_str().unwrap_or_default().to_lowercase();
        if email.starts_with("down") {
            return Err(rpc::Error::new(codes::UNAVAILABLE, "the database is away"));
        }
        Ok(json!(EmailAvailability {
            available: !email.starts_with("taken"),
            email,
        }))
    }
}

async fn stand_in(vhost: &TestVhost, delay: Duration) -> watch::Sender<bool> {
    let (stop, stopped) = watch::channel(false);
    let status = ConsumerStatus::default();
    tokio::spawn(messaging::rpc::serve(
        vhost.amqp_url(),
        contract::broker::USER_RPC_QUEUE,
        8,
        Arc::new(StandIn { delay }),
        status.clone(),
        service_kit::serve::stopped(stopped),
    ));
    while !status.is_consuming() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop
}

async fn availability(gateway: &TestGateway, email: &str) -> (u16, Value) {
    let mut url = reqwest::Url::parse(&gateway.url("/users/availability")).unwrap();
    url.query_pairs_mut().append_pair("email", email);
    let response = gateway.client.get(url).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn the_availability_of_an_email_comes_over_rpc() {
    let vhost = TestVhost::new().await;
    let _server = stand_in(&vhost, Duration::ZERO).await;
    let gateway = spawn_gateway(&[("AMQP_URL", vhost.amqp_url())]).await;
    assert_eq!(
        availability(&gateway, "Ada@Example.com").await,
        (200, json!({"email": "ada@example.com", "available": true}))
    );
    assert_eq!(
        availability(&gateway, "taken@example.com").await.1["available"],
        false
    );
    let (status, problem) = availability(&gateway, "nope").await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["pointer"], "#/email");
    let (status, problem) = availability(&gateway, "down@example.com").await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (503, Some("urn:problem:dependency-unavailable"))
    );
    let missing = gateway
        .client
        .get(gateway.url("/users/availability"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
}

#[tokio::test]
async fn with_no_server_the_call_fails_at_once_with_503() {
    let vhost = TestVhost::new().await;
    let gateway = spawn_gateway(&[
        ("AMQP_URL", vhost.amqp_url()),
        ("RPC_TIMEOUT_MS", "5000".into()),
    ])
    .await;
    let started = Instant::now();
    let (status, problem) = availability(&gateway, "ada@example.com").await;
    assert_eq!(status, 503, "{problem}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}, not failed fast",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_server_is_a_504_and_its_late_reply_is_discarded_and_counted() {
    let vhost = TestVhost::new().await;
    let _server = stand_in(&vhost, Duration::from_millis(600)).await;
    let gateway = spawn_gateway(&[
        ("AMQP_URL", vhost.amqp_url()),
        ("RPC_TIMEOUT_MS", "200".into()),
    ])
    .await;
    let (status, problem) = availability(&gateway, "ada@example.com").await;
    assert_eq!(status, 504, "{problem}");
    assert_eq!(problem["type"], "urn:problem:gateway-timeout");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = gateway.metrics().await;
        let late = metrics
            .lines()
            .any(|line| line.starts_with("rpc_client_late_replies_total") && line.ends_with(" 1"));
        if late {
            assert!(metrics.contains(r#"outcome="timeout""#), "{metrics}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the late reply was not counted:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_async_creation_of_a_taken_email_is_a_409_at_once() {
    let vhost = TestVhost::new().await;
    let _server = stand_in(&vhost, Duration::ZERO).await;
    let gateway = spawn_gateway(&[("AMQP_URL", vhost.amqp_url())]).await;
    let response = gateway
        .client
        .post(gateway.url("/user"))
        .bearer_auth(token("alice"))
        .header("prefer", "respond-async")
        .json(&json!({"name": "again", "email": "taken@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        vhost.count("user-queue.commands").await,
        0,
        "no command was sent"
    );
}
