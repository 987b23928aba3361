//! Redis going away and coming back, through a proxy this test alone controls.

use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::TcpProxy;

use crate::helpers::{Options, Process, spawn};

#[tokio::test]
async fn redis_down_is_503_and_the_service_recovers_by_itself() {
    let proxy = TcpProxy::start("127.0.0.1:6379");
    let slack = spawn(
        Process::Api,
        Options {
            redis_url: Some(format!("redis://{}", proxy.address())),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(slack.post("#user", "before").await.status(), 201);

    proxy.cut();
    let response = slack.post("#user", "during").await;
    assert_eq!(response.status(), 503);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:problem:dependency-unavailable");
    assert_eq!(slack.get("/health/ready").await.status(), 503);
    assert_eq!(slack.get("/health/live").await.status(), 200);

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = slack.post("#user", "after").await.status();
        if status == 201 {
            break;
        }
        assert_eq!(status, 503, "only 503 while recovering");
        assert!(Instant::now() < deadline, "no recovery within 15 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(slack.channel("#user").await, ["after", "before"]);
}
