//! HTTPS, as a real Slack webhook and a hosted collector need it: the slack process (its
//! binary, as a container runs it) delivers to an `https://` webhook and exports its spans to an
//! `https://` Zipkin or OTLP receiver whose certificate a private CA signed, trusted through
//! `SSL_CERT_FILE`; a certificate it does not trust is refused, counted and logged once, without
//! the webhook's secret path.

use std::time::Duration;

use serde_json::{Value, json};
use test_support::{
    FakeWebhook, OtlpReceiver, ServiceProcess, TestCa, TestRedis, ZipkinReceiver, free_port,
};

/// The slack binary, on a port of its own, with `variables` besides its Redis prefix.
async fn slack(redis: &TestRedis, variables: &[(&str, String)]) -> (ServiceProcess, String) {
    let port = free_port();
    let mut all = vec![
        ("LISTEN_HOST", "127.0.0.1".to_owned()),
        ("SLACK_PORT", port.to_string()),
        ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
        ("SLACK_WEBHOOK_ATTEMPTS", "3".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("OTEL_TRACES_EXPORTER", "none".to_owned()),
    ];
    all.extend(variables.iter().cloned());
    let mut process = ServiceProcess::spawn(env!("CARGO_BIN_EXE_slack"), &all);
    let base = format!("http://127.0.0.1:{port}");
    process
        .wait_until_ready(&format!("{base}/health/ready"))
        .await;
    (process, base)
}

async fn post(base: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{base}/"))
        .json(&json!({"channel": "#ops", "message": "over TLS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

#[tokio::test]
async fn notifications_and_spans_go_out_over_https_to_a_private_ca_it_is_told_to_trust() {
    let ca = TestCa::new();
    let webhook = FakeWebhook::start_tls(&[], 200, &ca);
    let zipkin = ZipkinReceiver::start_tls(&ca);
    assert!(webhook.url().starts_with("https://") && zipkin.endpoint().starts_with("https://"));
    let redis = TestRedis::new().await;
    let (process, base) = slack(
        &redis,
        &[
            ("SSL_CERT_FILE", ca.ca_file().display().to_string()),
            ("SLACK_WEBHOOK_URL", webhook.url()),
            ("OTEL_TRACES_EXPORTER", "zipkin".to_owned()),
            ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", zipkin.endpoint()),
        ],
    )
    .await;
    assert_eq!(post(&base).await["slack"], "sent");
    assert_eq!(
        webhook.delivered(),
        [json!({"text": "over TLS", "channel": "#ops"})]
    );
    zipkin
        .wait_for(Duration::from_secs(10), "the POST / span", |spans| {
            spans.iter().any(|span| span["name"] == "post /")
        })
        .await;
    assert!(zipkin.violations().is_empty(), "{:?}", zipkin.violations());
    process.terminate();
    assert_eq!(process.wait(Duration::from_secs(20)).await.code, Some(0));
}

#[tokio::test]
async fn spans_go_out_over_https_to_an_otlp_collector() {
    let ca = TestCa::new();
    let collector = OtlpReceiver::start_tls(&ca);
    let redis = TestRedis::new().await;
    let (process, base) = slack(
        &redis,
        &[
            ("SSL_CERT_FILE", ca.ca_file().display().to_string()),
            ("OTEL_TRACES_EXPORTER", "otlp".to_owned()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.base_url()),
        ],
    )
    .await;
    assert_eq!(post(&base).await["slack"], "skipped");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !collector.spans().iter().any(|span| span.name == "POST /") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no span over HTTPS: {:?}",
            collector.spans()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    process.terminate();
    assert_eq!(process.wait(Duration::from_secs(20)).await.code, Some(0));
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_counted_and_logged_once_without_the_secret() {
    let (theirs, ours) = (TestCa::new(), TestCa::new());
    let webhook = FakeWebhook::start_tls(&[], 200, &theirs);
    let redis = TestRedis::new().await;
    let (process, base) = slack(
        &redis,
        &[
            ("SSL_CERT_FILE", ours.ca_file().display().to_string()),
            ("SLACK_WEBHOOK_URL", webhook.url()),
        ],
    )
    .await;
    assert_eq!(post(&base).await["slack"], "failed");
    assert_eq!(
        webhook.calls(),
        0,
        "no request crossed the refused handshake"
    );
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failed: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("slack_notifications_total{") && line.contains("failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{metrics}");
    assert!(failed[0].ends_with(" 1"), "{}", failed[0]);

    process.terminate();
    let exit = process.wait(Duration::from_secs(20)).await;
    let output = format!("{}{}", exit.stdout, exit.stderr);
    let refusals: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("TLS handshake failed"))
        .collect();
    assert_eq!(refusals.len(), 1, "logged once:\n{output}");
    assert!(
        refusals[0].contains("UnknownIssuer") || refusals[0].contains("certificate"),
        "{}",
        refusals[0]
    );
    assert!(
        !output.contains("T000/B000/XXXX") && !output.contains("/services/"),
        "the webhook's secret path reached the log:\n{output}"
    );
}
