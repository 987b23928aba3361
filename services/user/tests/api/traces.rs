//! Spans reach a collector, follow Zipkin's v2 model, and continue the caller's trace.

use std::time::Duration;

use serde_json::{Value, json};
use telemetry::{TelemetryConfig, TracesExporter};
use test_support::{OtlpReceiver, ZipkinReceiver};

use crate::helpers::{
    Options, TestApp, spawn_app, spawn_app_exporting_to_zipkin, spawn_app_with, unique_email,
};

fn trace_id(response: &reqwest::Response) -> String {
    response.headers()[telemetry::TRACE_ID_HEADER]
        .to_str()
        .unwrap()
        .to_owned()
}

fn find<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|span| span["name"] == name)
        .unwrap_or_else(|| panic!("no span named {name:?} in {spans:#?}"))
}

#[tokio::test]
async fn a_request_exports_a_server_span_with_its_database_child_to_zipkin() {
    let zipkin = ZipkinReceiver::start();
    let app = spawn_app_exporting_to_zipkin(zipkin.endpoint()).await;
    let response = app
        .post_user(&json!({"name": "traced", "email": unique_email()}))
        .await;
    assert_eq!(response.status(), 201);
    let trace = trace_id(&response);
    app.stop().await;

    let spans = zipkin.trace(&trace);
    assert_eq!(zipkin.violations(), Vec::<String>::new());
    let server = find(&spans, "post /user");
    assert_eq!(server["kind"], "SERVER");
    assert!(
        server.get("parentId").is_none(),
        "a new trace starts at the server"
    );
    assert_eq!(server["localEndpoint"]["serviceName"], "user");
    assert_eq!(server["tags"]["http.request.method"], "POST");
    assert_eq!(server["tags"]["http.route"], "/user");
    assert_eq!(server["tags"]["http.response.status_code"], "201");
    assert_eq!(server["tags"]["url.path"], "/user");

    let insert = find(&spans, "insert users");
    assert_eq!(insert["kind"], "CLIENT");
    assert_eq!(insert["parentId"], server["id"]);
    assert_eq!(insert["tags"]["db.system.name"], "postgresql");
    assert_eq!(insert["tags"]["db.operation.name"], "INSERT");
    assert_eq!(insert["tags"]["db.collection.name"], "users");
    assert_eq!(insert["remoteEndpoint"]["serviceName"], "postgresql");
    let statement = insert["tags"]["db.query.text"].as_str().unwrap();
    assert!(statement.contains("$1") && !statement.contains("traced"));
}

#[tokio::test]
async fn every_exported_span_satisfies_zipkins_model_on_errors_too() {
    let zipkin = ZipkinReceiver::start();
    let app = spawn_app_exporting_to_zipkin(zipkin.endpoint()).await;
    app.post_user(&json!({"name": "", "email": "bad"})).await;
    app.get("/user/424242").await;
    app.get("/no/such/route").await;
    app.get("/users?limit=3").await;
    app.stop().await;
    let spans = zipkin.spans();
    assert!(spans.len() >= 4, "{spans:#?}");
    assert_eq!(zipkin.violations(), Vec::<String>::new());
    assert!(spans.iter().any(|span| span["name"] == "get /user/{id}"));
    // Unmatched paths are named by method only: no raw path in a span name.
    assert!(spans.iter().any(|span| span["name"] == "get"));
}

#[tokio::test]
async fn a_request_exports_a_server_span_with_its_database_child_over_otlp() {
    let otlp = OtlpReceiver::start();
    let config = TelemetryConfig {
        exporter: TracesExporter::Otlp {
            endpoint: format!("{}/v1/traces", otlp.base_url()),
        },
        ..TelemetryConfig::silent()
    };
    let app = spawn_app_with(Options {
        telemetry: Some(config),
        ..Options::default()
    })
    .await;
    let response = app
        .post_user(&json!({"name": "otlp", "email": unique_email()}))
        .await;
    let trace = trace_id(&response);
    app.stop().await;

    let spans: Vec<_> = otlp
        .spans()
        .into_iter()
        .filter(|span| span.trace_id == trace)
        .collect();
    let server = spans
        .iter()
        .find(|span| span.kind == "SERVER")
        .expect("a SERVER span");
    assert_eq!(server.name, "POST /user");
    assert_eq!(server.service_name, "user");
    let insert = spans
        .iter()
        .find(|span| span.name == "INSERT users")
        .expect("the INSERT span");
    assert_eq!(insert.kind, "CLIENT");
    assert_eq!(insert.parent_span_id, server.span_id);
}

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

async fn assert_continued(headers: &[(&str, String)]) {
    let zipkin = ZipkinReceiver::start();
    let app = spawn_app_exporting_to_zipkin(zipkin.endpoint()).await;
    let mut request = app.client.get(app.url("/ping"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(trace_id(&response), CALLER_TRACE, "{headers:?}");
    app.stop().await;
    let spans = zipkin.trace(CALLER_TRACE);
    let server = find(&spans, "get /ping");
    assert_eq!(server["parentId"], CALLER_SPAN, "{headers:?}");
    assert_eq!(zipkin.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn an_incoming_traceparent_is_continued() {
    assert_continued(&[("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))]).await;
}

#[tokio::test]
async fn an_incoming_b3_single_header_is_continued() {
    assert_continued(&[("b3", format!("{CALLER_TRACE}-{CALLER_SPAN}-1"))]).await;
}

#[tokio::test]
async fn incoming_b3_multi_headers_are_continued() {
    assert_continued(&[
        ("X-B3-TraceId", CALLER_TRACE.to_owned()),
        ("X-B3-SpanId", CALLER_SPAN.to_owned()),
        ("X-B3-Sampled", "1".to_owned()),
    ])
    .await;
}

#[tokio::test]
async fn hostile_trace_headers_are_ignored_not_failed() {
    let app = spawn_app().await;
    for (name, value) in [
        ("traceparent", "00-zz-yy-01".to_owned()),
        (
            "traceparent",
            format!("00-{}-{CALLER_SPAN}-01", "0".repeat(32)),
        ),
        ("traceparent", "x".repeat(8000)),
        ("b3", "not-a-b3".to_owned()),
        ("tracestate", ",,,=,=".repeat(500)),
        ("baggage", "%%%;;;==".repeat(500)),
        ("X-B3-TraceId", "ZZZ".to_owned()),
    ] {
        let response = app
            .client
            .get(app.url("/ping"))
            .header(name, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        assert_ne!(trace_id(&response), CALLER_TRACE);
    }
}

#[tokio::test]
async fn an_unreachable_collector_neither_fails_nor_slows_requests() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = spawn_app_exporting_to_zipkin(format!("http://{closed}/api/v2/spans")).await;
    // The batch exporter sends every 5 s: go on across at least one failed export.
    assert_requests_unaffected(&app, Duration::from_secs(6)).await;
    app.stop().await;
}

#[tokio::test]
async fn a_slow_collector_neither_fails_nor_slows_requests() {
    let zipkin = ZipkinReceiver::start();
    zipkin.set_delay(Duration::from_secs(4));
    let app = spawn_app_exporting_to_zipkin(zipkin.endpoint()).await;
    // Across the first export (after 5 s), which the collector holds for 4 s.
    assert_requests_unaffected(&app, Duration::from_secs(8)).await;
    // The spans went out all the same, at the collector's pace.
    zipkin
        .wait_for(Duration::from_secs(15), "the slow batch", |spans| {
            spans.iter().any(|span| span["name"] == "post /user")
        })
        .await;
    app.stop().await;
}

/// Creates users for `duration`, each answered 201 well within a second, and the service
/// alive at the end.
async fn assert_requests_unaffected(app: &TestApp, duration: Duration) {
    let deadline = tokio::time::Instant::now() + duration;
    let mut requests = 0;
    while tokio::time::Instant::now() < deadline {
        let started = std::time::Instant::now();
        let response = app
            .post_user(&json!({"name": "exported late", "email": unique_email()}))
            .await;
        assert_eq!(response.status(), 201);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a request waited on the collector"
        );
        requests += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(requests > 10);
    assert_eq!(app.get("/health/live").await.status(), 200);
}
