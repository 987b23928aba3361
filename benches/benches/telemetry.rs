//! In-process costs of the telemetry conventions, without a network: the same axum router
//! with and without `telemetry::instrument` (100 % sampled, with spans exported to a local
//! stand-in, and unsampled), and trace-context inject and extract for HTTP headers and AMQP
//! field tables. `cargo bench -p benchmarks --bench telemetry`.

use std::hint::black_box;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use benchmarks::sinks::CollectorSink;
use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use lapin::types::{AMQPValue, FieldTable, LongString};
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use telemetry::propagation::{extract_amqp, extract_http, inject_amqp, inject_http};
use telemetry::{SamplerKind, Telemetry, TelemetryConfig, TracesExporter};
use tower::ServiceExt;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A service's router in miniature: a JSON echo on `POST /user` and `GET /ping`.
fn router() -> Router {
    Router::new()
        .route(
            "/user",
            post(|body: axum::Json<serde_json::Value>| async move { (StatusCode::CREATED, body) }),
        )
        .route("/ping", get(|| async { "pong" }))
}

fn create_user() -> Request<Body> {
    Request::post("/user")
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"name":"Ada Lovelace","email":"ada@example.com"}"#,
        ))
        .expect("a request")
}

/// A collector stand-in on its own thread, so the sampled case exports for real.
fn collector() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = listener.local_addr().expect("an address");
    drop(listener);
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(CollectorSink::default().serve(address))
    });
    address
}

fn telemetry_layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("telemetry_layer/post_user");
    let plain = router();
    group.bench_function("without", |b| {
        b.to_async(&runtime)
            .iter(|| plain.clone().oneshot(create_user()))
    });
    let endpoint = format!("http://{}/api/v2/spans", collector());
    for (name, sampler) in [
        ("sampled", SamplerKind::AlwaysOn),
        ("unsampled", SamplerKind::AlwaysOff),
    ] {
        let config = TelemetryConfig {
            sampler,
            exporter: TracesExporter::Zipkin {
                endpoint: endpoint.clone(),
            },
            ..TelemetryConfig::silent()
        };
        let telemetry = Telemetry::init("bench", "0", &config).expect("telemetry");
        let instrumented = telemetry::instrument(router());
        telemetry.in_scope(|| {
            group.bench_function(name, |b| {
                b.to_async(&runtime)
                    .iter(|| instrumented.clone().oneshot(create_user()))
            });
        });
    }
    group.finish();
}

fn sampled_context() -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("a trace id"),
        SpanId::from_hex("00f067aa0ba902b7").expect("a span id"),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

fn propagation(c: &mut Criterion) {
    // Installs the default propagators (W3C trace context and baggage, B3 read).
    let _telemetry = Telemetry::init("bench", "0", &TelemetryConfig::silent()).expect("telemetry");
    let context = sampled_context();
    let mut group = c.benchmark_group("propagation");
    group.bench_function("inject/http", |b| {
        b.iter(|| {
            let mut headers = HeaderMap::new();
            inject_http(black_box(&context), &mut headers);
            headers
        })
    });
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", TRACEPARENT.parse().expect("a header value"));
    group.bench_function("extract/http", |b| {
        b.iter(|| extract_http(black_box(&headers)))
    });
    group.bench_function("inject/amqp", |b| {
        b.iter(|| {
            let mut table = FieldTable::default();
            inject_amqp(black_box(&context), &mut table);
            table
        })
    });
    let mut table = FieldTable::default();
    table.insert(
        "traceparent".into(),
        AMQPValue::LongString(LongString::from(TRACEPARENT)),
    );
    group.bench_function("extract/amqp", |b| {
        b.iter(|| extract_amqp(black_box(&table)))
    });
    group.finish();
}

criterion_group!(benches, telemetry_layer, propagation);
criterion_main!(benches);
