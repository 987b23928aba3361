//! An in-test Zipkin server (`POST /api/v2/spans`) and the rules of Zipkin's v2 span model.
//!
//! The rules are those of Zipkin's OpenAPI definition (`zipkin2-api.yaml`, `definitions/Span`),
//! encoded here so the tests need nothing outside the repository. Like a real Zipkin, the
//! receiver answers 400 to a batch that breaks them, and keeps what was wrong for the test.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;

use crate::server::TestServer;
use crate::tls::TestCa;

/// Spans received by the in-test Zipkin, and what was wrong with any of them.
#[derive(Default)]
struct Received {
    /// How long the receiver takes to answer each batch (a slow collector).
    delay: Duration,
    spans: Vec<Value>,
    violations: Vec<String>,
}

pub struct ZipkinReceiver {
    server: TestServer,
    received: Arc<Mutex<Received>>,
}

impl ZipkinReceiver {
    pub fn start() -> Self {
        Self::serve(None)
    }

    /// The same over HTTPS, with a certificate of `ca`.
    pub fn start_tls(ca: &TestCa) -> Self {
        Self::serve(Some(ca))
    }

    fn serve(ca: Option<&TestCa>) -> Self {
        let received = Arc::new(Mutex::new(Received::default()));
        let router = Router::new()
            .route("/api/v2/spans", post(receive))
            .with_state(Arc::clone(&received));
        Self {
            server: match ca {
                Some(ca) => TestServer::start_tls(router, ca),
                None => TestServer::start(router),
            },
            received,
        }
    }

    /// The URL to give to `OTEL_EXPORTER_ZIPKIN_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("{}/api/v2/spans", self.server.base_url())
    }

    pub fn spans(&self) -> Vec<Value> {
        self.received.lock().unwrap().spans.clone()
    }

    /// Makes the receiver take `delay` to answer each later batch.
    pub fn set_delay(&self, delay: Duration) {
        self.received.lock().unwrap().delay = delay;
    }

    /// Every way a received span broke Zipkin's v2 model.
    pub fn violations(&self) -> Vec<String> {
        self.received.lock().unwrap().violations.clone()
    }

    /// The spans of one trace.
    pub fn trace(&self, trace_id: &str) -> Vec<Value> {
        self.spans()
            .into_iter()
            .filter(|span| span["traceId"] == trace_id)
            .collect()
    }

    /// Waits until `done` holds for the spans received so far, or panics after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "the Zipkin receiver did not get {what} within {timeout:?}; it got:\n{}",
                    serde_json::to_string_pretty(&spans).unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The span of `spans` that passes `test`, or a panic naming `what`.
pub fn find<'a>(spans: &'a [Value], what: &str, test: impl Fn(&Value) -> bool) -> &'a Value {
    spans
        .iter()
        .find(|span| test(span))
        .unwrap_or_else(|| panic!("no {what} in {spans:#?}"))
}

/// The service that recorded `span`.
pub fn service(span: &Value) -> &str {
    span["localEndpoint"]["serviceName"].as_str().unwrap_or("")
}

async fn receive(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> StatusCode {
    let delay = received.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    let spans = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(spans)) => spans,
        _ => {
            received
                .lock()
                .unwrap()
                .violations
                .push("the body is not a JSON array of spans".into());
            return StatusCode::BAD_REQUEST;
        }
    };
    let violations: Vec<String> = spans.iter().flat_map(span_violations).collect();
    let mut received = received.lock().unwrap();
    received.spans.extend(spans);
    if violations.is_empty() {
        StatusCode::ACCEPTED
    } else {
        received.violations.extend(violations);
        StatusCode::BAD_REQUEST
    }
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Epoch microseconds between 2001 and 2286: catches milliseconds, nanoseconds and zero.
fn is_epoch_micros(value: &Value) -> bool {
    value
        .as_u64()
        .is_some_and(|micros| (1_000_000_000_000_000..10_000_000_000_000_000).contains(&micros))
}

fn endpoint_violations(field: &str, endpoint: &Value) -> Vec<String> {
    let mut violations = Vec::new();
    let Some(endpoint) = endpoint.as_object() else {
        return vec![format!("{field} is not an object")];
    };
    for (key, value) in endpoint {
        let ok = match key.as_str() {
            "serviceName" => value
                .as_str()
                .is_some_and(|name| !name.is_empty() && name == name.to_lowercase()),
            "ipv4" => value
                .as_str()
                .is_some_and(|ip| ip.parse::<Ipv4Addr>().is_ok()),
            "ipv6" => value
                .as_str()
                .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok()),
            "port" => value
                .as_u64()
                .is_some_and(|port| (1..=65535).contains(&port)),
            _ => false,
        };
        if !ok {
            violations.push(format!("{field}.{key} = {value} is not allowed"));
        }
    }
    violations
}

/// What is wrong with one span by Zipkin's v2 model; empty when nothing is.
pub fn span_violations(span: &Value) -> Vec<String> {
    let Some(fields) = span.as_object() else {
        return vec![format!("a span is not a JSON object: {span}")];
    };
    let name = fields
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    let mut violations = Vec::new();
    violations.extend(id_violations(fields));
    violations.extend(scalar_violations(fields));
    violations.extend(endpoints_violations(fields));
    violations.extend(annotation_violations(fields));
    violations.extend(tag_violations(fields));
    violations.extend(
        fields
            .keys()
            .filter(|key| !KNOWN_FIELDS.contains(&key.as_str()))
            .map(|key| format!("{key} is not a field of a Zipkin v2 span")),
    );
    violations
        .into_iter()
        .map(|violation| format!("{name}: {violation}"))
        .collect()
}

const KNOWN_FIELDS: &[&str] = &[
    "traceId",
    "id",
    "parentId",
    "name",
    "kind",
    "timestamp",
    "duration",
    "debug",
    "shared",
    "localEndpoint",
    "remoteEndpoint",
    "annotations",
    "tags",
];

type Fields = serde_json::Map<String, Value>;

/// `what` when `ok` is false.
fn unless(ok: bool, what: impl FnOnce() -> String) -> Option<String> {
    (!ok).then(what)
}

fn is_span_id(id: &str) -> bool {
    id.len() == 16 && is_lower_hex(id) && id.bytes().any(|b| b != b'0')
}

fn id_violations(fields: &Fields) -> Vec<String> {
    let trace = match fields.get("traceId").and_then(Value::as_str) {
        Some(id) => unless(
            (id.len() == 16 || id.len() == 32) && is_lower_hex(id) && id.bytes().any(|b| b != b'0'),
            || format!("traceId {id:?} is not 16 or 32 lower-case hex digits"),
        ),
        None => Some("traceId is required".into()),
    };
    let id = match fields.get("id").and_then(Value::as_str) {
        Some(id) => unless(is_span_id(id), || {
            format!("id {id:?} is not 16 lower-case hex digits")
        }),
        None => Some("id is required".into()),
    };
    let parent = fields.get("parentId").and_then(|parent| {
        let parent = parent.as_str().unwrap_or_default();
        unless(is_span_id(parent), || {
            format!("parentId {parent:?} is not 16 lower-case hex digits (absent on a root)")
        })
    });
    [trace, id, parent].into_iter().flatten().collect()
}

/// The name, kind, timestamp, duration and flags.
fn scalar_violations(fields: &Fields) -> Vec<String> {
    let mut violations = Vec::new();
    if let Some(name) = fields.get("name") {
        violations.extend(unless(
            name.as_str().is_some_and(|n| n == n.to_lowercase()),
            || format!("name {name} is not a lower-case string"),
        ));
    }
    if let Some(kind) = fields.get("kind") {
        violations.extend(unless(
            ["CLIENT", "SERVER", "PRODUCER", "CONSUMER"]
                .iter()
                .any(|k| kind == k),
            || format!("kind {kind} is not CLIENT, SERVER, PRODUCER or CONSUMER"),
        ));
    }
    if let Some(timestamp) = fields.get("timestamp") {
        violations.extend(unless(is_epoch_micros(timestamp), || {
            format!("timestamp {timestamp} is not epoch microseconds")
        }));
    }
    if let Some(duration) = fields.get("duration") {
        violations.extend(unless(
            duration.as_u64().is_some_and(|micros| micros >= 1),
            || format!("duration {duration} is not a whole number of microseconds >= 1"),
        ));
    }
    for flag in ["debug", "shared"] {
        if let Some(value) = fields.get(flag) {
            violations.extend(unless(value.is_boolean(), || {
                format!("{flag} {value} is not a boolean")
            }));
        }
    }
    violations
}

fn endpoints_violations(fields: &Fields) -> Vec<String> {
    let mut violations = Vec::new();
    match fields.get("localEndpoint") {
        Some(endpoint) => {
            violations.extend(endpoint_violations("localEndpoint", endpoint));
            if endpoint.get("serviceName").is_none() {
                violations.push("localEndpoint.serviceName is missing".into());
            }
        }
        None => violations.push("localEndpoint is missing".into()),
    }
    if let Some(endpoint) = fields.get("remoteEndpoint") {
        violations.extend(endpoint_violations("remoteEndpoint", endpoint));
    }
    violations
}

fn annotation_violations(fields: &Fields) -> Vec<String> {
    let Some(annotations) = fields.get("annotations") else {
        return Vec::new();
    };
    let Some(annotations) = annotations.as_array() else {
        return vec!["annotations is not an array".into()];
    };
    let mut violations = Vec::new();
    let mut seen = HashSet::new();
    for annotation in annotations {
        if !(is_epoch_micros(&annotation["timestamp"]) && annotation["value"].is_string()) {
            violations.push(format!(
                "annotation {annotation} needs epoch-microsecond timestamp and string value"
            ));
        }
        if !seen.insert(annotation.to_string()) {
            violations.push(format!("annotation {annotation} is repeated"));
        }
    }
    violations
}

fn tag_violations(fields: &Fields) -> Vec<String> {
    match fields.get("tags").map(Value::as_object) {
        None => Vec::new(),
        Some(None) => vec!["tags is not an object".into()],
        Some(Some(tags)) => tags
            .iter()
            .filter(|(_, value)| !value.is_string())
            .map(|(key, value)| format!("tag {key} = {value} is not a string"))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
            "id": "00f067aa0ba902b7",
            "parentId": "6b221d5bc9e6496c",
            "name": "post /user",
            "kind": "SERVER",
            "timestamp": 1_556_604_172_355_737u64,
            "duration": 1431,
            "localEndpoint": { "serviceName": "user" },
            "remoteEndpoint": { "ipv4": "127.0.0.1", "port": 5432 },
            "annotations": [{ "timestamp": 1_556_604_172_355_800u64, "value": "started" }],
            "tags": { "http.response.status_code": "201" }
        })
    }

    #[test]
    fn a_well_formed_span_passes() {
        assert_eq!(span_violations(&valid()), Vec::<String>::new());
    }

    #[test]
    fn each_broken_rule_is_reported() {
        let cases: Vec<(&str, Value)> = vec![
            ("traceId", json!("4BF92F3577B34DA6A3CE929D0E0E4736")),
            ("traceId", json!("abc")),
            ("id", json!("0000000000000000")),
            ("parentId", json!("0000000000000000")),
            ("name", json!("POST /user")),
            ("kind", json!("INTERNAL")),
            ("timestamp", json!(1_556_604_172_355u64)),
            ("duration", json!(0)),
            ("localEndpoint", json!({ "port": 0 })),
            ("remoteEndpoint", json!({ "ipv4": "localhost" })),
            ("tags", json!({ "http.response.status_code": 201 })),
            (
                "annotations",
                json!([
                    { "timestamp": 1_556_604_172_355_800u64, "value": "a" },
                    { "timestamp": 1_556_604_172_355_800u64, "value": "a" }
                ]),
            ),
            ("traceID", json!("4bf92f3577b34da6a3ce929d0e0e4736")),
        ];
        for (field, value) in cases {
            let mut span = valid();
            span[field] = value.clone();
            assert!(
                !span_violations(&span).is_empty(),
                "{field} = {value} was accepted"
            );
        }
        let mut without_trace = valid();
        without_trace.as_object_mut().unwrap().remove("traceId");
        assert!(!span_violations(&without_trace).is_empty());
    }
}
