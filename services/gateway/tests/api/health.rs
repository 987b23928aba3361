//! `/health` in the original's shape, with every service checked at once.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{closed, echo, slow, spawn_gateway};

#[tokio::test]
async fn all_services_up_is_200_in_the_originals_shape() {
    let (user, slack, user_queue, slack_queue) =
        (echo().await, echo().await, echo().await, echo().await);
    let gateway = spawn_gateway(&[
        ("USER_URL", user.url.clone()),
        ("SLACK_URL", slack.url.clone()),
        ("USER_QUEUE_URL", user_queue.url.clone()),
        ("SLACK_QUEUE_URL", slack_queue.url.clone()),
    ])
    .await;
    let response = gateway
        .client
        .get(gateway.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let health: Value = response.json().await.unwrap();
    insta::assert_json_snapshot!(health, {".*.time" => "[ms]"});
    for service in ["user", "slack", "user-queue", "slack-queue"] {
        assert!(health[service]["time"].is_u64(), "{service}");
    }
}

#[tokio::test]
async fn a_stopped_and_a_slow_service_report_errors_while_the_others_report_pong() {
    let (user, slack_queue) = (echo().await, echo().await);
    let slow = slow(Duration::from_secs(5)).await;
    let gateway = spawn_gateway(&[
        ("USER_URL", user.url.clone()),
        ("SLACK_URL", slow.url.clone()),
        ("USER_QUEUE_URL", closed()),
        ("SLACK_QUEUE_URL", slack_queue.url.clone()),
        ("HEALTH_TIMEOUT_MS", "300".to_owned()),
    ])
    .await;
    let started = Instant::now();
    let response = gateway
        .client
        .get(gateway.url("/health"))
        .send()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "checked at once, each with its timeout"
    );
    assert_eq!(response.status(), 503);
    let health: Value = response.json().await.unwrap();
    insta::assert_json_snapshot!(health, {".*.time" => "[ms]"});
    assert!(health["slack"]["time"].as_u64().unwrap() >= 300);
}
