//! `message.created`: every message the slack service stores is published, confirmed, to the
//! `messages` exchange with the trace context of the request that stored it; while RabbitMQ is
//! away the events wait in the Redis outbox and all go out, once each, when it is back.

use std::time::{Duration, Instant};

use lapin::ExchangeKind;
use serde_json::{Value, json};
use test_support::TcpProxy;
use test_support::rabbitmq::header;

use crate::helpers::{Options, Process, TestSlack, spawn};

const OBSERVER: &str = "test.messages";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn observe(slack: &TestSlack) {
    slack
        .vhost
        .observe(OBSERVER, "messages", ExchangeKind::Topic, "message.created")
        .await;
}

#[tokio::test]
async fn every_stored_message_is_published_with_the_trace_of_its_request() {
    let slack = spawn(Process::Api, Options::default()).await;
    observe(&slack).await;
    let response = slack
        .client
        .post(slack.url("/"))
        .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .json(&json!({"channel": "#ops", "message": "deployed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let stored: Value = response.json().await.unwrap();
    let published = slack
        .vhost
        .get(OBSERVER, Duration::from_secs(10))
        .await
        .expect("a message.created event");
    let event: Value = serde_json::from_slice(&published.delivery.data).unwrap();
    assert_eq!(event["type"], "message.created");
    assert_eq!(event["message"]["channel"], "#ops");
    assert_eq!(event["message"]["message"], "deployed");
    assert_eq!(event["message"]["created_at"], stored["created_at"]);
    assert_eq!(event["occurred_at"], stored["created_at"]);
    let properties = &published.delivery.properties;
    assert_eq!(
        properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str().to_owned()),
        event["id"].as_str().map(str::to_owned)
    );
    assert_eq!(properties.delivery_mode(), &Some(2), "persistent");
    let traceparent = header(&published, "traceparent").expect("the trace context");
    assert!(traceparent.contains(TRACE), "{traceparent}");
}

#[tokio::test]
async fn while_the_broker_is_away_the_events_wait_and_all_go_out_once() {
    let proxy = TcpProxy::start(
        &std::env::var("TEST_RABBITMQ_ADDRESS").unwrap_or_else(|_| "127.0.0.1:5672".to_owned()),
    );
    let slack = spawn(
        Process::Api,
        Options {
            amqp_address: Some(proxy.address().to_string()),
            ..Options::default()
        },
    )
    .await;
    observe(&slack).await;
    proxy.cut();
    for n in 0..5 {
        assert_eq!(
            slack
                .post("#ops", &format!("while away {n}"))
                .await
                .status(),
            201
        );
    }
    // The backlog is measured every second.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = slack.get("/metrics").await.text().await.unwrap();
        if metrics.contains(r#"outbox_pending_events{service="slack"} 5"#) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog is not 5:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        slack.vhost.count(OBSERVER).await,
        0,
        "nothing went out while away"
    );
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut texts = Vec::new();
    while texts.len() < 5 {
        assert!(Instant::now() < deadline, "only {texts:?} went out");
        if let Some(message) = slack.vhost.get(OBSERVER, Duration::from_millis(200)).await {
            let event: Value = serde_json::from_slice(&message.delivery.data).unwrap();
            texts.push(event["message"]["message"].as_str().unwrap().to_owned());
        }
    }
    texts.sort();
    let expected: Vec<String> = (0..5).map(|n| format!("while away {n}")).collect();
    assert_eq!(texts, expected);
    assert!(
        slack
            .vhost
            .get(OBSERVER, Duration::from_millis(1500))
            .await
            .is_none(),
        "an event went out twice"
    );
}
