//! The telemetry pipeline end to end, exported to an in-test OTLP receiver: AMQP context
//! propagation, the instrumented HTTP client, and several services sharing one process.

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use opentelemetry::trace::TraceContextExt;
use telemetry::{LogsExporter, Telemetry, TelemetryConfig, TracesExporter, amqp};
use test_support::{OtlpReceiver, OtlpSpan};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

fn exporting_to(otlp: &OtlpReceiver) -> TelemetryConfig {
    TelemetryConfig {
        exporter: TracesExporter::Otlp {
            endpoint: format!("{}/v1/traces", otlp.base_url()),
        },
        ..TelemetryConfig::silent()
    }
}

fn ids(span: &tracing::Span) -> (String, String) {
    let cx = span.context();
    let otel = cx.span();
    let context = otel.span_context();
    (
        context.trace_id().to_string(),
        context.span_id().to_string(),
    )
}

fn named<'a>(spans: &'a [OtlpSpan], name: &str) -> &'a OtlpSpan {
    spans
        .iter()
        .find(|span| span.name == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}

#[test]
fn a_consumer_continues_the_producers_trace_from_the_message_headers_and_links_to_it() {
    let otlp = OtlpReceiver::start();
    let telemetry = Telemetry::init("messaging", "test", &exporting_to(&otlp)).unwrap();
    let (producer_ids, headers) = telemetry
        .run(async {
            let publish = amqp::publish_span("users", "user.created", "event-1", None);
            let mut headers = FieldTable::default();
            amqp::inject_headers(&publish, &mut headers);
            amqp::record_published("users", "user.created", amqp::Outcome::Ok);
            let producer_ids = ids(&publish);
            drop(publish);
            let process = amqp::process_span(
                "slack-queue.user-created",
                "users",
                "user.created",
                "event-1",
                Some(&headers),
            );
            assert_eq!(ids(&process).0, producer_ids.0);
            drop(process);
            (producer_ids, headers)
        })
        .unwrap();

    let traceparent = headers
        .inner()
        .get(&ShortString::from("traceparent"))
        .expect("a traceparent header");
    assert!(matches!(traceparent, AMQPValue::LongString(_)));

    let spans = otlp.spans();
    let producer = named(&spans, "publish user.created");
    assert_eq!(producer.kind, "PRODUCER");
    assert_eq!(
        (producer.trace_id.clone(), producer.span_id.clone()),
        producer_ids
    );
    assert_eq!(producer.attributes["messaging.system"], "rabbitmq");
    assert_eq!(producer.attributes["messaging.destination.name"], "users");
    assert_eq!(
        producer.attributes["messaging.rabbitmq.destination.routing_key"],
        "user.created"
    );
    assert_eq!(producer.attributes["messaging.message.id"], "event-1");

    let consumer = named(&spans, "process user.created");
    assert_eq!(consumer.kind, "CONSUMER");
    assert_eq!(consumer.trace_id, producer.trace_id);
    assert_eq!(consumer.parent_span_id, producer.span_id);
    assert_eq!(
        consumer.links,
        [(producer.trace_id.clone(), producer.span_id.clone())]
    );
    assert_eq!(consumer.attributes["messaging.operation.type"], "process");
}

#[test]
fn a_message_without_trace_headers_starts_a_new_trace() {
    let otlp = OtlpReceiver::start();
    let telemetry = Telemetry::init("messaging", "test", &exporting_to(&otlp)).unwrap();
    telemetry
        .run(async {
            let process = amqp::process_span("q", "users", "user.created", "event-2", None);
            drop(process);
        })
        .unwrap();
    let spans = otlp.spans();
    let consumer = named(&spans, "process user.created");
    assert_eq!(consumer.parent_span_id, "");
    assert!(consumer.links.is_empty());
}

#[test]
fn the_http_client_opens_a_client_span_and_sends_its_context() {
    let otlp = OtlpReceiver::start();
    let telemetry = Telemetry::init("caller", "test", &exporting_to(&otlp)).unwrap();
    let metrics = telemetry.metrics().clone();
    let (received_traceparent, caller_ids, exposition) = telemetry
        .run(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let echo = Router::new().route(
                "/echo",
                get(|headers: HeaderMap| async move {
                    headers["traceparent"].to_str().unwrap().to_owned()
                }),
            );
            tokio::spawn(async move { axum::serve(listener, echo).await });

            let client = telemetry::http_client::client(reqwest::Client::new());
            let caller = tracing::info_span!("caller");
            let caller_ids = ids(&caller);
            let received = client
                .get(format!("http://{address}/echo?secret=1"))
                .send()
                .instrument(caller)
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            (received, caller_ids, metrics.render())
        })
        .unwrap();

    let spans = otlp.spans();
    let client = named(&spans, "GET");
    assert_eq!(client.kind, "CLIENT");
    assert_eq!(client.trace_id, caller_ids.0);
    assert_eq!(client.parent_span_id, caller_ids.1);
    assert_eq!(
        received_traceparent,
        format!("00-{}-{}-01", client.trace_id, client.span_id)
    );
    assert_eq!(client.attributes["http.response.status_code"], "200");
    assert!(!client.attributes["url.full"].contains("secret"));
    assert!(
        exposition.contains("http_client_request_duration_seconds_count{"),
        "{exposition}"
    );
    assert!(exposition.contains(r#"status="200""#));
    assert!(exposition.contains(r#"peer="127.0.0.1:"#));
}

#[test]
fn services_sharing_a_process_keep_their_own_names_and_metrics() {
    let otlp = OtlpReceiver::start();
    let run = |name: &'static str| {
        let telemetry = Telemetry::init(name, "test", &exporting_to(&otlp)).unwrap();
        let metrics = telemetry.metrics().clone();
        std::thread::spawn(move || {
            telemetry
                .run(async move {
                    let span = tracing::info_span!("work", otel.name = name);
                    let _entered = span.enter();
                    metrics::counter!("work_done_total").increment(1);
                    metrics.render()
                })
                .unwrap()
        })
    };
    let (alpha, beta) = (run("alpha"), run("beta"));
    let (alpha, beta) = (alpha.join().unwrap(), beta.join().unwrap());

    assert!(
        alpha.contains(r#"work_done_total{service="alpha"} 1"#),
        "{alpha}"
    );
    assert!(!alpha.contains("beta"), "{alpha}");
    assert!(
        beta.contains(r#"work_done_total{service="beta"} 1"#),
        "{beta}"
    );
    assert!(!beta.contains("alpha"), "{beta}");

    let spans = otlp.spans();
    assert_eq!(named(&spans, "alpha").service_name, "alpha");
    assert_eq!(named(&spans, "beta").service_name, "beta");
}

#[test]
fn each_replica_names_itself_in_its_traces_and_metrics() {
    let otlp = OtlpReceiver::start();
    let run = |config: TelemetryConfig| {
        let telemetry = Telemetry::init("replicated", "test", &config).unwrap();
        let metrics = telemetry.metrics().clone();
        telemetry
            .run(async move {
                tracing::info_span!("work").in_scope(|| ());
                metrics.render()
            })
            .unwrap()
    };
    let named = run(TelemetryConfig {
        resource_attributes: vec![("service.instance.id".into(), "pod-a".into())],
        ..exporting_to(&otlp)
    });
    let (first, second) = (run(exporting_to(&otlp)), run(exporting_to(&otlp)));

    let instance = |exposition: &str| {
        let line = exposition
            .lines()
            .find(|line| line.starts_with("build_info{"))
            .unwrap_or_else(|| panic!("no build_info in {exposition}"));
        let start = line.find(r#"service_instance_id=""#).expect(line) + 21;
        line[start..start + line[start..].find('"').unwrap()].to_owned()
    };
    assert_eq!(instance(&named), "pod-a");
    let generated = [instance(&first), instance(&second)];
    assert_ne!(generated[0], generated[1], "each process gets its own id");
    assert!(generated.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()));

    let mut traced: Vec<String> = otlp
        .spans()
        .iter()
        .map(|span| span.resource["service.instance.id"].clone())
        .collect();
    traced.sort();
    let mut expected = vec![
        "pod-a".to_owned(),
        generated[0].clone(),
        generated[1].clone(),
    ];
    expected.sort();
    assert_eq!(traced, expected, "the spans carry the metrics' ids");
}

#[test]
fn log_records_reach_the_collector_with_the_trace_of_the_span_they_were_written_in() {
    let otlp = OtlpReceiver::start();
    let config = TelemetryConfig {
        logs_exporter: LogsExporter::Otlp {
            endpoint: format!("{}/v1/logs", otlp.base_url()),
        },
        log_filter: "info".into(),
        resource_attributes: vec![("service.instance.id".into(), "pod-a".into())],
        ..exporting_to(&otlp)
    };
    let telemetry = Telemetry::init("logging", "test", &config).unwrap();
    let inside = telemetry
        .run(async {
            let span = tracing::info_span!("work");
            let inside = ids(&span);
            span.in_scope(|| tracing::warn!(user_id = 7, "the user was slow to answer"));
            tracing::info!("between requests");
            tracing::debug!("filtered out by RUST_LOG");
            inside
        })
        .unwrap();

    let logs = otlp.logs();
    assert_eq!(logs.len(), 2, "{logs:#?}");
    let slow = logs
        .iter()
        .find(|log| log.body == "the user was slow to answer")
        .unwrap();
    assert_eq!((slow.trace_id.clone(), slow.span_id.clone()), inside);
    assert_eq!(slow.severity, "WARN");
    assert_eq!(slow.attributes["user_id"], "7");
    assert_eq!(slow.resource["service.name"], "logging");
    assert_eq!(slow.resource["service.instance.id"], "pod-a");
    let between = logs
        .iter()
        .find(|log| log.body == "between requests")
        .unwrap();
    assert_eq!(between.trace_id, "", "outside a span a record has no trace");
    // The span the record was written in reached the collector too.
    assert!(otlp.spans().iter().any(|span| span.span_id == inside.1));
}
