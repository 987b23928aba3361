//! The user service's procedures over RabbitMQ, called the way any language's client would:
//! a plain lapin client written here (not the stack's `RpcClient`), publishing JSON-RPC 2.0 to
//! `user.rpc` with RabbitMQ's direct reply-to. Every method, every error, and hostile requests,
//! which get their JSON-RPC error when a reply is possible and are dropped and counted when not.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, unique_email};

/// A JSON-RPC caller of its own: one channel consuming direct reply-to.
struct ForeignClient {
    _connection: Connection,
    channel: Channel,
    replies: lapin::Consumer,
}

impl ForeignClient {
    async fn new(app: &TestApp) -> Self {
        let connection =
            Connection::connect(&app.vhost.amqp_url(), ConnectionProperties::default())
                .await
                .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let replies = channel
            .basic_consume(
                "amq.rabbitmq.reply-to".into(),
                "foreign".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            _connection: connection,
            channel,
            replies,
        }
    }

    /// Publishes `body` to `user.rpc` with these reply properties.
    async fn send(&self, body: &[u8], reply_to: Option<&str>, correlation_id: Option<&str>) {
        let mut properties =
            BasicProperties::default().with_content_type("application/json".into());
        if let Some(reply_to) = reply_to {
            properties = properties.with_reply_to(reply_to.into());
        }
        if let Some(correlation_id) = correlation_id {
            properties = properties.with_correlation_id(correlation_id.into());
        }
        self.channel
            .basic_publish(
                "".into(),
                "user.rpc".into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap();
    }

    /// Sends `body` and reads its reply (checking the correlation id comes back).
    async fn call_raw(&mut self, body: &[u8]) -> Value {
        let correlation_id = uuid::Uuid::new_v4().to_string();
        self.send(body, Some("amq.rabbitmq.reply-to"), Some(&correlation_id))
            .await;
        let reply = tokio::time::timeout(Duration::from_secs(10), self.replies.next())
            .await
            .expect("a reply within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(
            reply
                .properties
                .correlation_id()
                .as_ref()
                .map(|id| id.as_str()),
            Some(correlation_id.as_str())
        );
        serde_json::from_slice(&reply.data).unwrap()
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        let request = json!({"jsonrpc": "2.0", "id": "t-1", "method": method, "params": params});
        let reply = self.call_raw(&serde_json::to_vec(&request).unwrap()).await;
        assert_eq!(reply["jsonrpc"], "2.0");
        assert_eq!(reply["id"], "t-1", "the id comes back");
        reply
    }
}

#[tokio::test]
async fn email_available_answers_by_the_rules_of_post_user() {
    let app = spawn_app().await;
    let email = unique_email();
    let mut client = ForeignClient::new(&app).await;
    let free = client
        .call("users.email_available", json!({"email": email}))
        .await;
    assert_eq!(free["result"], json!({"email": email, "available": true}));
    app.create_user("taken", &email).await;
    let shouting = email.to_uppercase();
    let taken = client
        .call(
            "users.email_available",
            json!({"email": format!("  {shouting} ")}),
        )
        .await;
    assert_eq!(
        taken["result"],
        json!({"email": email, "available": false}),
        "compared whatever its case, answered normalized"
    );
    let invalid = client
        .call("users.email_available", json!({"email": "not-an-email"}))
        .await;
    assert_eq!(invalid["error"]["code"], -32602);
    assert_eq!(invalid["error"]["data"]["field"], "email");
    assert_eq!(
        invalid["error"]["data"]["detail"],
        "is not a valid email address"
    );
    let wrong_type = client
        .call("users.email_available", json!({"email": 7}))
        .await;
    assert_eq!(wrong_type["error"]["code"], -32602);
    assert_eq!(wrong_type["error"]["data"]["detail"], "must be a string");
    app.stop().await;
}

#[tokio::test]
async fn users_get_answers_the_user_or_not_found() {
    let app = spawn_app().await;
    let email = unique_email();
    let created = app.create_user("got", &email).await;
    let mut client = ForeignClient::new(&app).await;
    let found = client.call("users.get", json!({"id": created["id"]})).await;
    assert_eq!(found["result"], created);
    let missing = client.call("users.get", json!({"id": 999_999})).await;
    assert_eq!(missing["error"]["code"], -32004);
    assert_eq!(missing["error"]["message"], "there is no user 999999");
    for bad in [
        json!({"id": "seven"}),
        json!({"id": 0}),
        json!({}),
        json!([1]),
    ] {
        let answer = client.call("users.get", bad.clone()).await;
        assert_eq!(answer["error"]["code"], -32602, "{bad}");
    }
    app.stop().await;
}

#[tokio::test]
async fn hostile_requests_get_their_json_rpc_error_and_the_server_goes_on() {
    let app = spawn_app().await;
    let mut client = ForeignClient::new(&app).await;
    for (case, body, code) in [
        ("not JSON", b"hello".to_vec(), -32700),
        (
            "a batch",
            br#"[{"jsonrpc":"2.0","id":1,"method":"users.get","params":{"id":1}}]"#.to_vec(),
            -32600,
        ),
        ("not an object", b"42".to_vec(), -32600),
        (
            "no version",
            br#"{"id":1,"method":"users.get"}"#.to_vec(),
            -32600,
        ),
        ("no method", br#"{"jsonrpc":"2.0","id":1}"#.to_vec(), -32600),
        (
            "an unknown method",
            br#"{"jsonrpc":"2.0","id":1,"method":"users.delete"}"#.to_vec(),
            -32601,
        ),
        (
            "a huge body",
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"users.get","params":"{}"}}"#,
                "x".repeat(100_000)
            )
            .into_bytes(),
            -32600,
        ),
    ] {
        let reply = client.call_raw(&body).await;
        assert_eq!(reply["error"]["code"], code, "{case}: {reply}");
        assert_eq!(reply["jsonrpc"], "2.0", "{case}");
    }
    // No way to answer: dropped and counted, never blocking the server.
    client
        .send(
            br#"{"jsonrpc":"2.0","id":1,"method":"users.get","params":{"id":1}}"#,
            None,
            Some("c-1"),
        )
        .await;
    client
        .send(
            br#"{"jsonrpc":"2.0","id":1,"method":"users.get","params":{"id":1}}"#,
            Some("amq.rabbitmq.reply-to"),
            None,
        )
        .await;
    let email = unique_email();
    let still = client
        .call("users.email_available", json!({"email": email}))
        .await;
    assert_eq!(still["result"]["available"], true);
    let counted = |metrics: &str, reason: &str| {
        metrics.lines().any(|line| {
            line.starts_with("rpc_server_dropped_requests_total")
                && line.contains(&format!("reason=\"{reason}\""))
                && line.ends_with(" 1")
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        if ["no_reply_to", "no_correlation_id"]
            .iter()
            .all(|reason| counted(&metrics, reason))
        {
            break metrics;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped requests were not counted:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        metrics.contains(r#"method="_OTHER""#),
        "an unknown method is measured under one label"
    );
    assert!(
        !metrics.contains("users.delete"),
        "a method name became a label"
    );
    app.stop().await;
}
