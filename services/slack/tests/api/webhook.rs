//! Delivery to a Slack incoming webhook from `POST /`: retries on 5xx and 429, none on other
//! 4xx, outcomes counted, and the webhook URL kept secret.

use serde_json::{Value, json};
use test_support::{FakeWebhook, ZipkinReceiver};

use crate::helpers::{Options, Process, spawn};

async fn post_with(webhook: &FakeWebhook) -> (Value, String) {
    let slack = spawn(
        Process::Api,
        Options {
            webhook: Some(webhook.url()),
            ..Options::default()
        },
    )
    .await;
    let response = slack.post("#user", "hello").await;
    assert_eq!(
        response.status(),
        201,
        "the message is stored whatever Slack says"
    );
    let body = response.json().await.unwrap();
    let metrics = slack.get("/metrics").await.text().await.unwrap();
    (body, metrics)
}

#[tokio::test]
async fn a_message_is_delivered_as_slack_expects_it() {
    let webhook = FakeWebhook::start(&[], 200);
    let (body, metrics) = post_with(&webhook).await;
    assert_eq!(body["slack"], "sent");
    assert_eq!(
        webhook.delivered(),
        [json!({"text": "hello", "channel": "#user"})]
    );
    assert!(
        metrics.contains(r#"slack_notifications_total{service="slack",outcome="sent"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried_until_delivered() {
    let webhook = FakeWebhook::start(&[503, 429], 200);
    let (body, _) = post_with(&webhook).await;
    assert_eq!(body["slack"], "sent");
    assert_eq!(webhook.calls(), 3);
    assert_eq!(webhook.delivered().len(), 1, "delivered once");
}

#[tokio::test]
async fn a_refusal_is_not_retried() {
    let webhook = FakeWebhook::start(&[], 400);
    let (body, metrics) = post_with(&webhook).await;
    assert_eq!(body["slack"], "rejected");
    assert_eq!(webhook.calls(), 1);
    assert!(metrics.contains(r#"outcome="rejected"} 1"#), "{metrics}");
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_is_given_up_after_the_attempts() {
    let webhook = FakeWebhook::start(&[], 500);
    let (body, metrics) = post_with(&webhook).await;
    assert_eq!(body["slack"], "failed");
    assert_eq!(webhook.calls(), 3);
    assert!(metrics.contains(r#"outcome="failed"} 1"#), "{metrics}");
}

#[tokio::test]
async fn the_webhook_url_appears_in_no_span_metric_or_body() {
    let webhook = FakeWebhook::start(&[500], 200);
    let zipkin = ZipkinReceiver::start();
    let slack = spawn(
        Process::Api,
        Options {
            webhook: Some(webhook.url()),
            zipkin: Some(zipkin.endpoint()),
            ..Options::default()
        },
    )
    .await;
    let body = slack
        .post("#user", "secret-free")
        .await
        .text()
        .await
        .unwrap();
    let metrics = slack.get("/metrics").await.text().await.unwrap();
    slack.stop().await;
    let spans = serde_json::to_string(&zipkin.spans()).unwrap();
    assert!(spans.contains("\"CLIENT\""), "the webhook call is traced");
    for (what, text) in [("spans", &spans), ("metrics", &metrics), ("body", &body)] {
        assert!(
            !text.contains("T000/B000/XXXX"),
            "the webhook URL leaked into {what}"
        );
    }
}
