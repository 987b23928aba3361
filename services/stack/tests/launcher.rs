//! The one-process launcher, end to end: every service on its own port, one `POST /user` makes
//! one announcement in `#user` and one trace across user, RabbitMQ, slack-queue, Redis and the
//! webhook, and one SIGTERM stops everything cleanly.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::{
    FakeWebhook, ServiceProcess, TestDatabase, TestRedis, TestVhost, ZipkinReceiver, free_port,
};

fn find<'a>(spans: &'a [Value], what: &str, test: impl Fn(&Value) -> bool) -> &'a Value {
    spans
        .iter()
        .find(|span| test(span))
        .unwrap_or_else(|| panic!("no {what} in {spans:#?}"))
}

#[tokio::test]
async fn one_request_is_one_announcement_and_one_trace_across_the_stack() {
    let zipkin = ZipkinReceiver::start();
    let webhook = FakeWebhook::start(&[], 200);
    let (database, vhost, redis) = (
        TestDatabase::new().await,
        TestVhost::new().await,
        TestRedis::new().await,
    );
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let mut stack = ServiceProcess::spawn(
        env!("CARGO_BIN_EXE_stack"),
        &[
            ("LISTEN_HOST", "127.0.0.1".into()),
            ("USER_PORT", ports[0].to_string()),
            ("SLACK_PORT", ports[1].to_string()),
            ("USER_QUEUE_PORT", ports[2].to_string()),
            ("SLACK_QUEUE_PORT", ports[3].to_string()),
            ("GATEWAY_PORT", ports[4].to_string()),
            ("DATABASE_URL", database.url()),
            ("AMQP_URL", vhost.amqp_url()),
            ("REDIS_KEY_PREFIX", redis.prefix().to_owned()),
            ("SLACK_WEBHOOK_URL", webhook.url()),
            ("OTEL_TRACES_EXPORTER", "zipkin".into()),
            ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", zipkin.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
            // Ignored by the launcher: each service keeps its own name.
            ("OTEL_SERVICE_NAME", "everything".into()),
        ],
    );
    for port in &ports {
        stack
            .wait_until_ready(&format!("http://127.0.0.1:{port}/health/ready"))
            .await;
    }
    let (user, slack) = (
        format!("http://127.0.0.1:{}", ports[0]),
        format!("http://127.0.0.1:{}", ports[1]),
    );

    let client = reqwest::Client::new();
    let created = client
        .post(format!("{user}/user"))
        .json(&json!({"name": "launched", "email": "launched@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let trace = created.headers()["x-trace-id"].to_str().unwrap().to_owned();

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let messages: Vec<Value> = client
            .get(format!("{slack}/messages?channel=%23user"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !messages.is_empty() {
            assert_eq!(messages.len(), 1);
            assert_eq!(messages[0]["message"], "User launched@example.com created");
            break;
        }
        assert!(Instant::now() < deadline, "no announcement within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = client
        .get(format!("{user}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"build_info{service="user""#),
        "{metrics}"
    );

    let spans = zipkin
        .wait_for(
            Duration::from_secs(10),
            "the webhook CLIENT span",
            |spans| {
                spans.iter().any(|span| {
                    span["traceId"] == trace.as_str()
                        && span["kind"] == "CLIENT"
                        && span["localEndpoint"]["serviceName"] == "slack-queue"
                        && span["tags"]["http.request.method"] == "POST"
                })
            },
        )
        .await;
    let spans: Vec<Value> = spans
        .into_iter()
        .filter(|span| span["traceId"] == trace.as_str())
        .collect();
    let server = find(&spans, "user SERVER", |s| s["name"] == "post /user");
    assert_eq!(server["localEndpoint"]["serviceName"], "user");
    let producer = find(&spans, "PRODUCER", |s| s["kind"] == "PRODUCER");
    assert_eq!(producer["parentId"], server["id"]);
    let consumer = find(&spans, "CONSUMER", |s| s["kind"] == "CONSUMER");
    assert_eq!(consumer["parentId"], producer["id"]);
    assert_eq!(consumer["localEndpoint"]["serviceName"], "slack-queue");
    let redis_span = find(&spans, "redis CLIENT", |s| s["name"] == "lpush channel");
    assert_eq!(redis_span["parentId"], consumer["id"]);
    let webhook_span = find(&spans, "webhook CLIENT", |s| {
        s["kind"] == "CLIENT" && s["tags"]["http.request.method"] == "POST"
    });
    assert_eq!(webhook_span["parentId"], consumer["id"]);
    assert_eq!(webhook.delivered().len(), 1);

    stack.terminate();
    let exit = stack.wait(Duration::from_secs(20)).await;
    assert_eq!(exit.code, Some(0), "{}", exit.stderr);
    for (name, port) in ["user", "slack", "user-queue", "slack-queue", "gateway"]
        .iter()
        .zip(&ports)
    {
        assert!(
            exit.stdout
                .contains(&format!("{name:<12} http://localhost:{port}")),
            "{}",
            exit.stdout
        );
    }
    assert!(
        exit.stdout
            .contains("traces go to Zipkin http://127.0.0.1:")
    );
    assert_eq!(zipkin.violations(), Vec::<String>::new());
}
