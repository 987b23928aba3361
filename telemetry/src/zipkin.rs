//! A Zipkin v2 JSON exporter, for setups without an OpenTelemetry Collector.
//!
//! The upstream `opentelemetry-zipkin` crate is deprecated, and its last release leaves out the
//! local service name and remote endpoints that Zipkin's UI is built around. This one follows
//! Zipkin's v2 span model (`POST /api/v2/spans`): lower-case hex ids, no `parentId` on a root,
//! epoch-microsecond timestamps, a duration of at least one, tags as strings, the service in
//! `localEndpoint` and the peer (database, broker, server, client) in `remoteEndpoint`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::SystemTime;

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde::Serialize;

#[derive(Debug)]
pub(crate) struct ZipkinExporter {
    endpoint: String,
    service_name: String,
    client: reqwest::Client,
}

impl ZipkinExporter {
    pub(crate) fn new(endpoint: String, client: reqwest::Client) -> Self {
        Self {
            endpoint,
            service_name: String::new(),
            client,
        }
    }
}

impl SpanExporter for ZipkinExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans: Vec<ZipkinSpan<'_>> = batch
            .iter()
            .map(|span| to_zipkin(span, &self.service_name))
            .collect();
        let body = serde_json::to_vec(&spans)
            .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))?;
        let response = self
            .client
            .post(&self.endpoint)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
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

/// One span in Zipkin's v2 model, serialized straight from the SDK's span data (no JSON tree
/// in between: the exporter turns every span of the stack into one of these).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ZipkinSpan<'a> {
    trace_id: String,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    timestamp: u64,
    duration: u64,
    local_endpoint: Endpoint<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_endpoint: Option<Endpoint<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    annotations: Vec<Annotation<'a>>,
    tags: BTreeMap<&'a str, Cow<'a, str>>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Endpoint<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    service_name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv6: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
}

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct Annotation<'a> {
    timestamp: u64,
    value: &'a str,
}

/// The other side of a remote span, from the OpenTelemetry attributes that name it.
fn remote_endpoint(span: &SpanData) -> Option<Endpoint<'_>> {
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
    let mut endpoint = Endpoint {
        service_name: name_keys
            .iter()
            .find_map(|key| attribute(span, key))
            .map(|name| Cow::Owned(name.as_str().to_lowercase())),
        ..Endpoint::default()
    };
    if let Some(address) = attribute(span, address_key) {
        match address.as_str().parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => endpoint.ipv4 = Some(ip.to_string()),
            Ok(IpAddr::V6(ip)) => endpoint.ipv6 = Some(ip.to_string()),
            Err(_) => {}
        }
    }
    endpoint.port = attribute(span, port_key).and_then(|port| match port {
        Value::I64(port) => u16::try_from(*port).ok().filter(|port| *port != 0),
        other => other.as_str().parse::<u16>().ok().filter(|port| *port != 0),
    });
    let empty = endpoint.service_name.is_none()
        && endpoint.ipv4.is_none()
        && endpoint.ipv6.is_none()
        && endpoint.port.is_none();
    (!empty).then_some(endpoint)
}

fn to_zipkin<'a>(span: &'a SpanData, service_name: &'a str) -> ZipkinSpan<'a> {
    let mut tags: BTreeMap<&str, Cow<'_, str>> = span
        .attributes
        .iter()
        .map(|KeyValue { key, value, .. }| (key.as_str(), value.as_str()))
        .collect();
    if let Status::Error { description } = &span.status {
        tags.insert("otel.status_code", Cow::Borrowed("ERROR"));
        // Zipkin's UI marks a span as failed when it has an `error` tag.
        let message = if description.is_empty() {
            "true"
        } else {
            description
        };
        tags.insert("error", Cow::Borrowed(message));
    }
    let start = micros_since_epoch(span.start_time);
    let duration = micros_since_epoch(span.end_time)
        .saturating_sub(start)
        .max(1);

    let mut annotations: Vec<Annotation<'_>> = span
        .events
        .iter()
        .map(|event| Annotation {
            timestamp: micros_since_epoch(event.timestamp),
            value: &event.name,
        })
        .collect();
    // Zipkin wants unique annotations.
    annotations.sort();
    annotations.dedup();

    ZipkinSpan {
        trace_id: span.span_context.trace_id().to_string(),
        id: span.span_context.span_id().to_string(),
        parent_id: (span.parent_span_id != SpanId::INVALID)
            .then(|| span.parent_span_id.to_string()),
        name: span.name.to_lowercase(),
        kind: match span.span_kind {
            SpanKind::Client => Some("CLIENT"),
            SpanKind::Server => Some("SERVER"),
            SpanKind::Producer => Some("PRODUCER"),
            SpanKind::Consumer => Some("CONSUMER"),
            SpanKind::Internal => None,
        },
        timestamp: start,
        duration,
        local_endpoint: Endpoint {
            service_name: Some(Cow::Borrowed(service_name)),
            ..Endpoint::default()
        },
        remote_endpoint: remote_endpoint(span),
        annotations,
        tags,
    }
}
