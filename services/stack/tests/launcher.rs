//! The one-process launcher, end to end: every service on its own port, one `POST /user` makes
//! one announcement in `#user` and one trace across user, RabbitMQ, slack-queue, Redis and the
//! webhook, and one SIGTERM stops everything cleanly.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::ServiceProcess;

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
    let mut stack = ServiceProcess::spawn(env!("CARGO_BIN_EXE_stack"), &variables);
    for (_, port) in environment.ports() {
        stack
            .wait_until_ready(&format!("{}/health/ready", Environment::url(port)))
            .await;
    }
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
    let mut stack = ServiceProcess::spawn(env!("CARGO_BIN_EXE_stack"), &environment.variables());
    for (_, port) in environment.ports() {
        stack
            .wait_until_ready(&format!("{}/health/ready", Environment::url(port)))
            .await;
    }
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
