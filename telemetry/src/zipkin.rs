//! A Zipkin v2 JSON exporter, for setups without an OpenTelemetry Collector.
//!
//! The upstream `opentelemetry-zipkin` crate is deprecated, and its last release leaves out the
//! local service name and remote endpoints that Zipkin's UI is built around. This one follows
//! Zipkin's v2 span model (`POST /api/v2/spans`): lower-case hex ids, no `parentId` on a root,
//! epoch-microsecond timestamps, a duration of at least one, tags as strings, the service in
//! `localEndpoint` and the peer (database, broker, server, client) in `remoteEndpoint`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde_json::{Map, Value as Json, json};

#[derive(Debug)]
pub(crate) struct ZipkinExporter {
    endpoint: String,
    timeout: Duration,
    service_name: String,
    /// Built on first use, on the exporting thread: a blocking client must not be created or
    /// dropped inside an async runtime, and the SDK exports from a thread of its own.
    client: OnceLock<reqwest::blocking::Client>,
}

impl ZipkinExporter {
    pub(crate) fn new(endpoint: String, timeout: Duration) -> Self {
        Self {
            endpoint,
            timeout,
            service_name: String::new(),
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> Result<&reqwest::blocking::Client, OTelSdkError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))?;
        Ok(self.client.get_or_init(|| client))
    }
}

impl SpanExporter for ZipkinExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans: Vec<Json> = batch
            .iter()
            .map(|span| to_zipkin(span, &self.service_name))
            .collect();
        let response = self
            .client()?
            .post(&self.endpoint)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Json::Array(spans).to_string())
            .send()
            .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(OTelSdkError::InternalFailure(format!(
                "Zipkin answered {}",
                response.status()
            )))
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.service_name = service_name(resource);
    }
}

/// The resource's `service.name`, lower-cased as Zipkin wants it.
pub(crate) fn service_name(resource: &Resource) -> String {
    resource
        .get(&Key::from_static_str("service.name"))
        .map(|name| name.as_str().to_lowercase())
        .unwrap_or_else(|| "unknown_service".to_owned())
}

fn micros_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// The other side of a remote span, from the OpenTelemetry attributes that name it.
fn remote_endpoint(span: &SpanData) -> Option<Json> {
    let (name_keys, address_key, port_key): (&[&str], &str, &str) = match span.span_kind {
        SpanKind::Client | SpanKind::Producer | SpanKind::Consumer => (
            &[
                "peer.service",
                "db.system.name",
                "db.system",
                "messaging.system",
            ],
            "server.address",
            "server.port",
        ),
        SpanKind::Server => (&[], "client.address", "client.port"),
        SpanKind::Internal => return None,
    };
    let mut endpoint = Map::new();
    if let Some(name) = name_keys.iter().find_map(|key| attribute(span, key)) {
        endpoint.insert("serviceName".into(), name.as_str().to_lowercase().into());
    }
    if let Some(address) = attribute(span, address_key) {
        match address.as_str().parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => endpoint.insert("ipv4".into(), ip.to_string().into()),
            Ok(IpAddr::V6(ip)) => endpoint.insert("ipv6".into(), ip.to_string().into()),
            Err(_) => None,
        };
    }
    let port = attribute(span, port_key).and_then(|port| match port {
        Value::I64(port) => u16::try_from(*port).ok().filter(|port| *port != 0),
        other => other.as_str().parse::<u16>().ok().filter(|port| *port != 0),
    });
    if let Some(port) = port {
        endpoint.insert("port".into(), port.into());
    }
    (!endpoint.is_empty()).then_some(Json::Object(endpoint))
}

fn to_zipkin(span: &SpanData, service_name: &str) -> Json {
    let mut tags: BTreeMap<String, String> = span
        .attributes
        .iter()
        .map(|KeyValue { key, value, .. }| (key.to_string(), value.to_string()))
        .collect();
    if let Status::Error { description } = &span.status {
        tags.insert("otel.status_code".into(), "ERROR".into());
        // Zipkin's UI marks a span as failed when it has an `error` tag.
        let message = if description.is_empty() {
            "true"
        } else {
            description
        };
        tags.insert("error".into(), message.into());
    }
    let start = micros_since_epoch(span.start_time);
    let duration = micros_since_epoch(span.end_time)
        .saturating_sub(start)
        .max(1);

    let mut annotations: Vec<(u64, String)> = span
        .events
        .iter()
        .map(|event| (micros_since_epoch(event.timestamp), event.name.to_string()))
        .collect();
    // Zipkin wants unique annotations.
    annotations.sort();
    annotations.dedup();

    let mut zipkin = json!({
        "traceId": span.span_context.trace_id().to_string(),
        "id": span.span_context.span_id().to_string(),
        "name": span.name.to_lowercase(),
        "timestamp": start,
        "duration": duration,
        "localEndpoint": { "serviceName": service_name },
        "tags": tags,
    });
    let fields = zipkin.as_object_mut().expect("a JSON object literal");
    if span.parent_span_id != SpanId::INVALID {
        fields.insert("parentId".into(), span.parent_span_id.to_string().into());
    }
    let kind = match span.span_kind {
        SpanKind::Client => Some("CLIENT"),
        SpanKind::Server => Some("SERVER"),
        SpanKind::Producer => Some("PRODUCER"),
        SpanKind::Consumer => Some("CONSUMER"),
        SpanKind::Internal => None,
    };
    if let Some(kind) = kind {
        fields.insert("kind".into(), kind.into());
    }
    if let Some(remote) = remote_endpoint(span) {
        fields.insert("remoteEndpoint".into(), remote);
    }
    if !annotations.is_empty() {
        let annotations = annotations
            .into_iter()
            .map(|(timestamp, value)| json!({ "timestamp": timestamp, "value": value }))
            .collect();
        fields.insert("annotations".into(), Json::Array(annotations));
    }
    zipkin
}
