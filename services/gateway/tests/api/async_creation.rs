//! `POST /user` with `Prefer: respond-async`: a `create_user` command for user-queue, a 202.

use std::time::Duration;

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
        .client
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
