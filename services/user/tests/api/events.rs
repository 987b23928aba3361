//! `user.created` events: written with the user in one transaction, published by the relay
//! with the request's trace in the AMQP headers, and never lost while RabbitMQ is away.

use std::time::Duration;

use serde_json::{Value, json};
use test_support::rabbitmq::header;
use test_support::{TcpProxy, ZipkinReceiver};

use crate::helpers::{
    EVENTS, Options, spawn_app, spawn_app_exporting_to_zipkin, spawn_app_with, unique_email,
};

#[tokio::test]
async fn creating_a_user_publishes_one_persistent_event_carrying_the_trace() {
    let app = spawn_app().await;
    app.observe_user_events().await;
    let response = app
        .post_user(&json!({"name": "Ada", "email": "ada@example.com"}))
        .await;
    assert_eq!(response.status(), 201);
    let trace = response.headers()[telemetry::TRACE_ID_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    let user: Value = response.json().await.unwrap();

    let message = app
        .vhost
        .get(EVENTS, Duration::from_secs(10))
        .await
        .expect("the event is published");
    let event: Value = serde_json::from_slice(&message.delivery.data).unwrap();
    insta::assert_json_snapshot!(event, {
        ".id" => "[event id]",
        ".occurred_at" => "[time]",
        ".user.id" => "[user id]",
        ".user.created_at" => "[time]",
    });
    assert_eq!(event["user"], user);

    let properties = &message.delivery.properties;
    assert_eq!(
        properties.message_id().as_ref().unwrap().as_str(),
        event["id"].as_str().unwrap()
    );
    assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
    assert_eq!(
        properties.content_type().as_ref().unwrap().as_str(),
        "application/json"
    );
    let traceparent = header(&message, "traceparent").expect("a traceparent header");
    assert!(
        traceparent.starts_with(&format!("00-{trace}-")),
        "{traceparent}"
    );

    // Exactly one event.
    assert!(
        app.vhost
            .get(EVENTS, Duration::from_millis(500))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn the_producer_span_belongs_to_the_requests_trace() {
    let zipkin = ZipkinReceiver::start();
    let app = spawn_app_exporting_to_zipkin(zipkin.endpoint()).await;
    app.observe_user_events().await;
    let response = app
        .post_user(&json!({"name": "traced", "email": unique_email()}))
        .await;
    let trace = response.headers()[telemetry::TRACE_ID_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    let message = app
        .vhost
        .get(EVENTS, Duration::from_secs(10))
        .await
        .unwrap();
    app.stop().await;

    let spans = zipkin.trace(&trace);
    assert_eq!(zipkin.violations(), Vec::<String>::new());
    let server = spans
        .iter()
        .find(|s| s["name"] == "post /user")
        .expect("the SERVER span");
    let producer = spans
        .iter()
        .find(|s| s["name"] == "publish user.created")
        .unwrap_or_else(|| panic!("no PRODUCER span in {spans:#?}"));
    assert_eq!(producer["kind"], "PRODUCER");
    assert_eq!(producer["parentId"], server["id"]);
    assert_eq!(producer["tags"]["messaging.system"], "rabbitmq");
    assert_eq!(producer["remoteEndpoint"]["serviceName"], "rabbitmq");
    let traceparent = header(&message, "traceparent").unwrap();
    assert_eq!(
        traceparent,
        format!("00-{trace}-{}-01", producer["id"].as_str().unwrap()),
        "the message carries the PRODUCER span's context"
    );
    // The user and its event are written by one statement, so one CLIENT span.
    let writes: Vec<_> = spans.iter().filter(|s| s["kind"] == "CLIENT").collect();
    assert_eq!(writes.len(), 1, "{writes:#?}");
    assert_eq!(writes[0]["name"], "insert users");
    assert_eq!(writes[0]["parentId"], server["id"]);
}

#[tokio::test]
async fn users_are_created_while_the_broker_is_away_and_every_event_follows_once() {
    let proxy = TcpProxy::start("127.0.0.1:5672");
    let app = spawn_app_with(Options {
        amqp_address: Some(proxy.address().to_string()),
        ..Options::default()
    })
    .await;
    app.observe_user_events().await;

    proxy.cut();
    let mut emails = Vec::new();
    for n in 0..5 {
        let email = unique_email();
        let response = app
            .post_user(&json!({"name": format!("offline {n}"), "email": email}))
            .await;
        assert_eq!(
            response.status(),
            201,
            "users are created without the broker"
        );
        emails.push(email);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(app.vhost.count(EVENTS).await, 0);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"outbox_pending_events{service="user"} 5"#),
        "{metrics}"
    );

    proxy.restore();
    let mut received = Vec::new();
    while let Some(message) = app.vhost.get(EVENTS, Duration::from_secs(15)).await {
        let event: Value = serde_json::from_slice(&message.delivery.data).unwrap();
        received.push(event["user"]["email"].as_str().unwrap().to_owned());
        if received.len() == emails.len() {
            break;
        }
    }
    received.sort();
    emails.sort();
    assert_eq!(received, emails, "every event, each once");
    assert!(
        app.vhost
            .get(EVENTS, Duration::from_millis(800))
            .await
            .is_none(),
        "no duplicate"
    );
}
