//! The one-process launcher, end to end: every service on its own port, one `POST /user` makes
//! one announcement in `#user` and one trace across user, RabbitMQ, slack-queue, Redis and the
//! webhook, and one SIGTERM stops everything cleanly.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::Environment;
mod traces;
use traces::{assert_announcement_trace, complete};

#[tokio::test]
async fn one_request_is_one_announcement_and_one_trace_across_the_stack() {
    let environment = Environment::new().await;
    let mut variables = environment.variables();
    // Ignored by the launcher: each service keeps its own name.
    variables.push(("OTEL_SERVICE_NAME", "everything".into()));
    let stack = environment.launch(&variables).await;
    let (zipkin, webhook) = (&environment.zipkin, &environment.webhook);
    let (user, slack) = (
        Environment::url(environment.user_port),
        Environment::url(environment.slack_port),
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
            "every span of the request",
            |spans| complete(spans, trace.as_str(), false),
        )
        .await;
    let spans: Vec<Value> = spans
        .into_iter()
        .filter(|span| span["traceId"] == trace.as_str())
        .collect();
    assert_announcement_trace(&spans);
    assert_eq!(webhook.delivered().len(), 1);

    stack.terminate();
    let exit = stack.wait(Duration::from_secs(20)).await;
    assert_eq!(exit.code, Some(0), "{}", exit.stderr);
    for (name, port) in environment.ports() {
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

/// Every process's OpenAPI document, checked against the running stack: every documented
/// operation answers, with a documented status. The gateway's public document is pinned by a
/// snapshot.
#[tokio::test]
async fn every_documented_operation_answers_as_documented() {
    let environment = Environment::new().await;
    let stack = environment.launch(&environment.variables()).await;
    let client = reqwest::Client::new();
    let token = environment.token("docs");
    for (_, port) in environment.ports() {
        let base = Environment::url(port);
        let document: Value = client
            .get(format!("{base}/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        if port == environment.gateway_port {
            insta::assert_json_snapshot!("gateway_openapi", document);
        }
        test_support::openapi::assert_operations_answer(&base, &document, |operation, request| {
            match operation.method.as_str() {
                "POST" => request.bearer_auth(&token).json(&json!({
                    "name": "documented",
                    "email": format!("documented-{port}@example.com"),
                    "channel": "#docs",
                    "message": "documented",
                })),
                _ => request,
            }
        })
        .await;
    }
    let docs = client
        .get(format!(
            "{}/docs/",
            Environment::url(environment.gateway_port)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text().await.unwrap().contains("swagger"),
        "a browsable UI at /docs"
    );
    stack.terminate();
    assert_eq!(stack.wait(Duration::from_secs(20)).await.code, Some(0));
}

#[tokio::test]
async fn the_log_records_of_a_request_reach_the_collector_with_its_trace() {
    let environment = Environment::new().await;
    let otlp = test_support::OtlpReceiver::start();
    let mut variables = environment.variables();
    variables.extend([
        ("OTEL_TRACES_EXPORTER", "otlp".to_owned()),
        ("OTEL_LOGS_EXPORTER", "otlp".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.base_url()),
        ("OTEL_BLRP_SCHEDULE_DELAY", "200".to_owned()),
    ]);
    let stack = environment.launch(&variables).await;
    let created = reqwest::Client::new()
        .post(format!(
            "{}/user",
            Environment::url(environment.gateway_port)
        ))
        .bearer_auth(environment.token("logger"))
        .json(&json!({"name": "logged", "email": "logged@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let trace = created.headers()["x-trace-id"].to_str().unwrap().to_owned();

    // The user service's record of the creation and slack-queue's of the announcement, each
    // in a span of that trace that the collector got too.
    let deadline = Instant::now() + Duration::from_secs(15);
    let wanted = [
        ("user", "user created"),
        ("slack-queue", "new user announced"),
    ];
    loop {
        let (logs, spans) = (otlp.logs(), otlp.spans());
        let found = wanted.iter().all(|(service, body)| {
            logs.iter().any(|log| {
                log.resource["service.name"] == *service
                    && log.body == *body
                    && log.trace_id == trace
                    && spans
                        .iter()
                        .any(|span| span.span_id == log.span_id && span.service_name == *service)
            })
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no records {wanted:?} in trace {trace} among {:#?}",
            logs.iter()
                .map(|log| (&log.resource["service.name"], &log.body, &log.trace_id))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let user_record = otlp
        .logs()
        .into_iter()
        .find(|log| log.body == "user created")
        .unwrap();
    assert_eq!(user_record.severity, "INFO");
    assert!(
        user_record.attributes.contains_key("user.id"),
        "{user_record:?}"
    );
    assert!(user_record.resource.contains_key("service.instance.id"));

    stack.terminate();
    let exit = stack.wait(Duration::from_secs(20)).await;
    assert_eq!(exit.code, Some(0), "{}", exit.stderr);
}
