//! Spans made in a browser and relayed by the gateway (`POST /otlp/v1/traces`, OTLP/HTTP in
//! JSON or protobuf): read, checked, sampled and exported as the spans of the page's service
//! through the process's own pipeline configuration (OTLP, Zipkin, the one export thread), as
//! a collector behind the gateway would. So the click is the root of its trace, and the
//! gateway's SERVER span its descendant.
//!
//! What the person waited for is measured from them too: each action's root span (attribute
//! `frontend.action`, ending when the answer or the live feed's frame came) is one observation
//! of `frontend_action_duration_seconds{action,outcome}`.
//!
//! The input is a stranger's: every rule broken is named (a 400), nothing of it becomes a
//! metric label unless it is one of the page's own actions, and a request holds at most
//! [`MAX_SPANS`] spans.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use metrics::histogram;
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span as OtlpSpan, span::SpanKind as OtlpKind};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, ShouldSample, SpanData, SpanEvents, SpanLinks, SpanProcessor,
};
use prost::Message;

use crate::batch::ProcessBatch;
use crate::export::{ConfiguredExporter, ReportingExporter};
use crate::{TelemetryConfig, TelemetryError};

/// The most spans one request may carry.
pub const MAX_SPANS: usize = 512;

pub(crate) const ACTION_DURATION: &str = "frontend_action_duration_seconds";

/// How a request's body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Protobuf,
}

impl Encoding {
    /// The encoding a `Content-Type` names; `None` for another.
    pub fn of(content_type: &str) -> Option<Self> {
        match content_type.split(';').next()?.trim() {
            "application/json" => Some(Self::Json),
            "application/x-protobuf" | "application/protobuf" => Some(Self::Protobuf),
            _ => None,
        }
    }
}

/// Why spans were refused: what the 400 says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The relay of one process.
pub struct FrontendRelay {
    /// `None` when spans are not exported at all (`OTEL_TRACES_EXPORTER=none`).
    processor: Option<ProcessBatch>,
    sampler: Sampler,
    page: Page,
}

/// The page whose spans are relayed: its `service.name`, and its actions (`frontend.action`),
/// the metric's bounded `action` label.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub service_name: &'static str,
    pub actions: &'static [&'static str],
}

impl std::fmt::Debug for FrontendRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontendRelay").finish_non_exhaustive()
    }
}

impl FrontendRelay {
    /// A relay of `page`'s spans, exporting as `config` says, under its service name.
    pub fn new(config: &TelemetryConfig, page: Page) -> Result<Self, TelemetryError> {
        let resource = Resource::builder_empty()
            .with_service_name(page.service_name)
            .build();
        let processor =
            ConfiguredExporter::build(&config.exporter, config.export_timeout)?.map(|exporter| {
                let mut processor = ProcessBatch::new(
                    ReportingExporter::new(
                        exporter,
                        "trace",
                        config.destination(),
                        std::sync::Arc::default(),
                    ),
                    config.batch,
                );
                processor.set_resource(&resource);
                processor
            });
        Ok(Self {
            processor,
            sampler: crate::sampler(config.sampler),
            page,
        })
    }

    /// Reads `body`, checks every span, measures the actions, and queues the sampled spans
    /// for export; how many were accepted.
    pub fn accept(&self, encoding: Encoding, body: &[u8]) -> Result<usize, Refused> {
        let request = match encoding {
            Encoding::Json => serde_json::from_slice::<ExportTraceServiceRequest>(body)
                .map_err(|error| Refused(format!("not OTLP/JSON: {error}")))?,
            Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
                .map_err(|error| Refused(format!("not OTLP/protobuf: {error}")))?,
        };
        let spans = read_spans(request, self.page.service_name)?;
        for span in &spans {
            record_action(span, self.page.actions);
        }
        let accepted = spans.len();
        if let Some(processor) = &self.processor {
            for span in spans.into_iter().filter(|span| self.sampled(span)) {
                processor.on_end(span);
            }
        }
        Ok(accepted)
    }

    /// The process's own sampling decision for the span's trace (as for a root of its own).
    fn sampled(&self, span: &SpanData) -> bool {
        let decision = self.sampler.should_sample(
            None,
            span.span_context.trace_id(),
            &span.name,
            &span.span_kind,
            &[],
            &[],
        );
        decision.decision == SamplingDecision::RecordAndSample
    }
}

/// Every span of `request`, each checked; the first rule broken refuses them all.
fn read_spans(
    request: ExportTraceServiceRequest,
    service_name: &str,
) -> Result<Vec<SpanData>, Refused> {
    let mut spans = Vec::new();
    for (r, resource_spans) in request.resource_spans.into_iter().enumerate() {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|resource| {
                resource
                    .attributes
                    .iter()
                    .find(|attribute| attribute.key == "service.name")
            })
            .and_then(|attribute| attribute.value.as_ref())
            .and_then(|value| match &value.value {
                Some(any_value::Value::StringValue(name)) => Some(name.as_str()),
                _ => None,
            });
        if service != Some(service_name) {
            return Err(Refused(format!(
                "resourceSpans[{r}].resource: service.name must be {service_name:?}, not {service:?}"
            )));
        }
        for (s, scope_spans) in resource_spans.scope_spans.into_iter().enumerate() {
            for (n, span) in scope_spans.spans.into_iter().enumerate() {
                if spans.len() == MAX_SPANS {
                    return Err(Refused(format!("more than {MAX_SPANS} spans")));
                }
                let place = format!("resourceSpans[{r}].scopeSpans[{s}].spans[{n}]");
                spans.push(span_data(span).map_err(|rule| Refused(format!("{place}: {rule}")))?);
            }
        }
    }
    if spans.is_empty() {
        return Err(Refused("no spans".to_owned()));
    }
    Ok(spans)
}

/// The most a span's name, an attribute's key or a string value may hold, in bytes.
const MAX_TEXT: usize = 256;
/// The most attributes (and events) a span may carry.
const MAX_ATTRIBUTES: usize = 32;

fn span_data(span: OtlpSpan) -> Result<SpanData, String> {
    let trace_id = <[u8; 16]>::try_from(span.trace_id.as_slice())
        .map(TraceId::from_bytes)
        .ok()
        .filter(|id| *id != TraceId::INVALID)
        .ok_or("traceId must be 16 bytes (32 hex digits), not all zero")?;
    let span_id = <[u8; 8]>::try_from(span.span_id.as_slice())
        .map(SpanId::from_bytes)
        .ok()
        .filter(|id| *id != SpanId::INVALID)
        .ok_or("spanId must be 8 bytes (16 hex digits), not all zero")?;
    let parent_span_id = match span.parent_span_id.as_slice() {
        [] => SpanId::INVALID,
        bytes => <[u8; 8]>::try_from(bytes)
            .map(SpanId::from_bytes)
            .map_err(|_| "parentSpanId must be 8 bytes (16 hex digits), or absent")?,
    };
    if span.name.is_empty() || span.name.len() > MAX_TEXT {
        return Err(format!("name must be 1 to {MAX_TEXT} bytes"));
    }
    if span.end_time_unix_nano < span.start_time_unix_nano || span.start_time_unix_nano == 0 {
        return Err("startTimeUnixNano must be set, and endTimeUnixNano not before it".into());
    }
    if span.attributes.len() > MAX_ATTRIBUTES || span.events.len() > MAX_ATTRIBUTES {
        return Err(format!("at most {MAX_ATTRIBUTES} attributes and events"));
    }
    let events = span
        .events
        .into_iter()
        .map(|event| {
            Ok(Event::new(
                text(event.name)?,
                time(event.time_unix_nano),
                attributes(event.attributes)?,
                0,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut span_events = SpanEvents::default();
    span_events.events = events;
    Ok(SpanData {
        span_context: SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id,
        parent_span_is_remote: false,
        span_kind: match OtlpKind::try_from(span.kind) {
            Ok(OtlpKind::Server) => SpanKind::Server,
            Ok(OtlpKind::Client) => SpanKind::Client,
            Ok(OtlpKind::Producer) => SpanKind::Producer,
            Ok(OtlpKind::Consumer) => SpanKind::Consumer,
            _ => SpanKind::Internal,
        },
        name: Cow::Owned(span.name),
        start_time: time(span.start_time_unix_nano),
        end_time: time(span.end_time_unix_nano),
        attributes: attributes(span.attributes)?,
        dropped_attributes_count: 0,
        events: span_events,
        links: SpanLinks::default(),
        status: match span.status {
            Some(status) if status.code == 2 => Status::error(truncated(status.message)),
            Some(status) if status.code == 1 => Status::Ok,
            _ => Status::Unset,
        },
        instrumentation_scope: InstrumentationScope::builder("page").build(),
    })
}

fn time(unix_nano: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(unix_nano)
}

fn text(value: String) -> Result<String, String> {
    if value.len() > MAX_TEXT {
        return Err(format!("a name or value over {MAX_TEXT} bytes"));
    }
    Ok(value)
}

fn truncated(mut value: String) -> String {
    if value.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
    }
    value
}

fn attributes(
    attributes: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
) -> Result<Vec<KeyValue>, String> {
    attributes
        .into_iter()
        .filter_map(|attribute| {
            let value = attribute.value.and_then(|AnyValue { value }| value)?;
            let value = match value {
                any_value::Value::StringValue(text) => Value::from(text),
                any_value::Value::BoolValue(flag) => Value::from(flag),
                any_value::Value::IntValue(number) => Value::from(number),
                any_value::Value::DoubleValue(number) => Value::from(number),
                // Arrays, maps and bytes: nothing the page sends, nothing to keep.
                _ => return None,
            };
            Some((attribute.key, value))
        })
        .map(|(key, value)| {
            let key = text(key)?;
            if let Value::String(text) = &value
                && text.as_str().len() > MAX_TEXT
            {
                return Err(format!("the value of {key:?} is over {MAX_TEXT} bytes"));
            }
            Ok(KeyValue::new(key, value))
        })
        .collect()
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key.as_str() == key)
        .map(|attribute| &attribute.value)
}

/// An action's root span is one observation of what the person waited for.
fn record_action(span: &SpanData, actions: &[&'static str]) {
    if span.parent_span_id != SpanId::INVALID {
        return;
    }
    let Some(action) = attribute(span, "frontend.action") else {
        return;
    };
    let action = actions
        .iter()
        .find(|known| action.as_str() == **known)
        .copied()
        .unwrap_or("other");
    let outcome = match attribute(span, "frontend.outcome")
        .map(Value::as_str)
        .as_deref()
    {
        Some("ok") => "ok",
        Some("error") => "error",
        _ => "other",
    };
    let waited = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or_default();
    histogram!(ACTION_DURATION, "action" => action, "outcome" => outcome)
        .record(waited.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(service: &str, spans: &str) -> Vec<u8> {
        format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"scope":{{"name":"page"}},"spans":[{spans}]}}]}}]}}"#
        )
        .into_bytes()
    }

    const ROOT: &str = r#"{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"click Create user","kind":1,"startTimeUnixNano":"1764633600000000000","endTimeUnixNano":"1764633600250000000","attributes":[{"key":"frontend.action","value":{"stringValue":"create_user"}},{"key":"frontend.outcome","value":{"stringValue":"ok"}}],"events":[{"name":"feed frame received","timeUnixNano":"1764633600240000000"}]}"#;

    const PAGE: Page = Page {
        service_name: "frontend",
        actions: &["create_user"],
    };

    fn relay() -> FrontendRelay {
        FrontendRelay::new(&TelemetryConfig::silent(), PAGE).unwrap()
    }

    #[test]
    fn the_pages_spans_are_read_from_otlp_json() {
        let spans = read_spans(
            serde_json::from_slice(&body("frontend", ROOT)).unwrap(),
            "frontend",
        )
        .unwrap();
        assert_eq!(spans.len(), 1);
        let root = &spans[0];
        assert_eq!(root.name, "click Create user");
        assert_eq!(root.parent_span_id, SpanId::INVALID);
        assert_eq!(root.events.events[0].name, "feed frame received");
        assert_eq!(
            root.end_time.duration_since(root.start_time).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            relay().accept(Encoding::Json, &body("frontend", ROOT)),
            Ok(1)
        );
    }

    #[test]
    fn protobuf_is_read_as_json_is() {
        let request: ExportTraceServiceRequest =
            serde_json::from_slice(&body("frontend", ROOT)).unwrap();
        assert_eq!(
            relay().accept(Encoding::Protobuf, &request.encode_to_vec()),
            Ok(1)
        );
    }

    #[test]
    fn every_broken_rule_is_named() {
        let relay = relay();
        let refused = |service: &str, spans: &str| {
            relay
                .accept(Encoding::Json, &body(service, spans))
                .unwrap_err()
                .0
        };
        assert!(refused("gateway", ROOT).contains("service.name must be \"frontend\""));
        assert!(refused("frontend", "").contains("no spans"));
        assert!(
            refused(
                "frontend",
                &ROOT.replace("4bf92f3577b34da6a3ce929d0e0e4736", "00")
            )
            .contains("spans[0]: traceId")
        );
        assert!(
            refused(
                "frontend",
                &ROOT.replace("1764633600250000000", "1764633599000000000")
            )
            .contains("endTimeUnixNano")
        );
        let many = vec![ROOT; MAX_SPANS + 1].join(",");
        assert!(refused("frontend", &many).contains("more than 512 spans"));
        assert!(
            relay
                .accept(Encoding::Json, b"{\"resourceSpans\": 7}")
                .unwrap_err()
                .0
                .starts_with("not OTLP/JSON")
        );
        assert!(relay.accept(Encoding::Protobuf, b"\xff\xff").is_err());
        assert_eq!(Encoding::of("text/plain"), None);
        assert_eq!(
            Encoding::of("application/json; charset=utf-8"),
            Some(Encoding::Json)
        );
    }
}
