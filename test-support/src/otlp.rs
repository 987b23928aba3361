//! An in-test OTLP/HTTP receiver (`POST /v1/traces` and `POST /v1/logs`, protobuf), flattening
//! what it gets into [`OtlpSpan`]s (links included: Zipkin has no links) and [`OtlpLog`]s that
//! tests can assert on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

use crate::server::TestServer;
use crate::tls::TestCa;

/// One received span, with ids in lower-case hex.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSpan {
    pub service_name: String,
    pub name: String,
    pub kind: &'static str,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// `(trace id, span id)` of each linked span.
    pub links: Vec<(String, String)>,
    pub attributes: BTreeMap<String, String>,
    /// Its resource's attributes (`service.instance.id`, ...).
    pub resource: BTreeMap<String, String>,
}

/// One received log record, with ids in lower-case hex (empty outside a span).
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpLog {
    pub body: String,
    pub severity: String,
    pub trace_id: String,
    pub span_id: String,
    pub attributes: BTreeMap<String, String>,
    /// Its resource's attributes (`service.name`, `service.instance.id`, ...).
    pub resource: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Received {
    spans: Arc<Mutex<Vec<OtlpSpan>>>,
    logs: Arc<Mutex<Vec<OtlpLog>>>,
}

pub struct OtlpReceiver {
    server: TestServer,
    received: Received,
}

impl OtlpReceiver {
    pub fn start() -> Self {
        Self::serve(None)
    }

    /// The same over HTTPS, with a certificate of `ca`.
    pub fn start_tls(ca: &TestCa) -> Self {
        Self::serve(Some(ca))
    }

    fn serve(ca: Option<&TestCa>) -> Self {
        let received = Received::default();
        let router = Router::new()
            .route("/v1/traces", post(receive))
            .route("/v1/logs", post(receive_logs))
            .with_state(received.clone());
        Self {
            server: match ca {
                Some(ca) => TestServer::start_tls(router, ca),
                None => TestServer::start(router),
            },
            received,
        }
    }

    /// The base URL to give to `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn spans(&self) -> Vec<OtlpSpan> {
        self.received.spans.lock().unwrap().clone()
    }

    pub fn logs(&self) -> Vec<OtlpLog> {
        self.received.logs.lock().unwrap().clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn kind(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Server) => "SERVER",
        Ok(SpanKind::Client) => "CLIENT",
        Ok(SpanKind::Producer) => "PRODUCER",
        Ok(SpanKind::Consumer) => "CONSUMER",
        Ok(SpanKind::Internal) => "INTERNAL",
        _ => "UNSPECIFIED",
    }
}

async fn receive_logs(State(received): State<Received>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportLogsServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut logs = received.logs.lock().unwrap();
    for resource_logs in request.resource_logs {
        let resource = resource_logs
            .resource
            .map(|resource| attributes(&resource.attributes))
            .unwrap_or_default();
        for record in resource_logs
            .scope_logs
            .into_iter()
            .flat_map(|scope| scope.log_records)
        {
            logs.push(OtlpLog {
                body: text(record.body.as_ref()),
                severity: record.severity_text,
                trace_id: hex(&record.trace_id),
                span_id: hex(&record.span_id),
                attributes: attributes(&record.attributes),
                resource: resource.clone(),
            });
        }
    }
    StatusCode::OK
}

async fn receive(State(received): State<Received>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut received = received.spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|resource| attributes(&resource.attributes))
            .unwrap_or_default();
        let service_name = resource.get("service.name").cloned().unwrap_or_default();
        for span in resource_spans
            .scope_spans
            .into_iter()
            .flat_map(|scope| scope.spans)
        {
            received.push(OtlpSpan {
                service_name: service_name.clone(),
                name: span.name,
                kind: kind(span.kind),
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                links: span
                    .links
                    .iter()
                    .map(|link| (hex(&link.trace_id), hex(&link.span_id)))
                    .collect(),
                attributes: attributes(&span.attributes),
                resource: resource.clone(),
            });
        }
    }
    StatusCode::OK
}
