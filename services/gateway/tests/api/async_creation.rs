//! `POST /user` with `Prefer: respond-async`: a `create_user` command for user-queue, a 202;
//! an invalid user is a 400 at once, by the same rules as the user service.

use std::time::Duration;

use contract::users::IdempotencyKey;
use serde_json::{Value, json};
use test_support::{TcpProxy, TestVhost};

use crate::helpers::{spawn_gateway, token};

#[tokio::test]
async fn an_async_creation_becomes_a_command_and_a_202() {
    let vhost = TestVhost::new().await;
    let gateway = spawn_gateway(&[("AMQP_URL", vhost.amqp_url())]).await;
    let response = gateway
        .client
        .post(gateway.url("/user"))
        .bearer_auth(token("alice"))
        .header("prefer", "respond-async")
        .json(&json!({"name": "later", "email": "Later@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(
        response.headers()["location"],
        "/users?email=Later%40example.com"
    );
    assert_eq!(response.headers()["preference-applied"], "respond-async");
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["status"], "accepted");

    let command = vhost
        .get("user-queue.commands", Duration::from_secs(5))
        .await
        .expect("the command waits in user-queue's queue");
    let command: Value = serde_json::from_slice(&command.delivery.data).unwrap();
    assert_eq!(command["type"], "create_user");
    assert_eq!(command["name"], "later");
    assert_eq!(command["email"], "Later@example.com");
    assert_eq!(command["id"], accepted["command_id"]);
}

#[tokio::test]
async fn an_async_creation_needs_a_token_and_the_broker() {
    let vhost = TestVhost::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5672");
    let gateway =
        spawn_gateway(&[("AMQP_URL", vhost.amqp_url_via(&proxy.address().to_string()))]).await;
    let unauthenticated = gateway
        .anonymous
        .post(gateway.url("/user"))
        .header("prefer", "respond-async")
        .json(&json!({"name": "later", "email": "later@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    proxy.cut();
    let response = gateway
        .client
        .post(gateway.url("/user"))
        .bearer_auth(token("alice"))
        .header("prefer", "respond-async")
        .json(&json!({"name": "later", "email": "later@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let bad = gateway
        .client
        .post(gateway.url("/user"))
        .bearer_auth(token("alice"))
        .header("prefer", "respond-async")
        .json(&json!({"name": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn an_invalid_async_creation_is_a_400_naming_each_field_and_sends_no_command() {
    let vhost = TestVhost::new().await;
    let gateway = spawn_gateway(&[("AMQP_URL", vhost.amqp_url())]).await;
    let post = |body: Value| {
        gateway
            .client
            .post(gateway.url("/user"))
            .bearer_auth(token("alice"))
            .header("prefer", "respond-async")
            .json(&body)
            .send()
    };
    let response = post(json!({"name": "   ", "email": "not-an-email"}))
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "the user service's rules, up front");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .expect("field errors")
        .iter()
        .map(|error| error["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["#/name", "#/email"], "{problem}");

    // A valid one goes through, and it is the only command queued.
    let accepted = post(json!({"name": "valid", "email": "valid@example.com"}))
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let command = vhost
        .get("user-queue.commands", Duration::from_secs(5))
        .await
        .expect("the valid command is queued");
    let command: Value = serde_json::from_slice(&command.delivery.data).unwrap();
    assert_eq!(command["email"], "valid@example.com");
    assert!(
        vhost
            .get("user-queue.commands", Duration::from_millis(300))
            .await
            .is_none(),
        "the invalid user sent no command"
    );
}

#[tokio::test]
async fn an_idempotency_key_makes_the_command_id_the_one_the_user_service_would_give_its_event() {
    let vhost = TestVhost::new().await;
    let gateway = spawn_gateway(&[("AMQP_URL", vhost.amqp_url())]).await;
    let post = |key: &'static str| {
        gateway
            .client
            .post(gateway.url("/user"))
            .bearer_auth(token("alice"))
            .header("prefer", "respond-async")
            .header("idempotency-key", key)
            .json(&json!({"name": "keyed", "email": "keyed@example.com"}))
            .send()
    };
    // The same id as a synchronous POST with this key: user-queue gives the event the
    // command's id, so either way, and however often, the user is created once.
    let expected = IdempotencyKey::parse(b"signup-1")
        .unwrap()
        .event_id("alice")
        .to_string();
    for _ in 0..2 {
        let response = post("signup-1").await.unwrap();
        assert_eq!(response.status(), 202);
        let accepted: Value = response.json().await.unwrap();
        assert_eq!(accepted["command_id"], expected);
        let command = vhost
            .get("user-queue.commands", Duration::from_secs(5))
            .await
            .expect("the command is queued");
        let command: Value = serde_json::from_slice(&command.delivery.data).unwrap();
        assert_eq!(command["id"], expected);
    }
    assert_eq!(post("two words").await.unwrap().status(), 400);
}
