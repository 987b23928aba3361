//! JSON log lines that carry the trace: one object per event, with `trace_id` and `span_id` of
//! the span it was written in, so a log search leads straight to the trace in Zipkin.

use std::io::Write;
use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

pub(crate) struct JsonLogLayer {
    service: String,
    /// The subscriber this layer is part of, to look up the OpenTelemetry context of a span.
    /// It is read outside this layer's filter, so a line keeps its trace id even when the
    /// span itself is below the log level.
    dispatch: OnceLock<WeakDispatch>,
}

impl JsonLogLayer {
    pub(crate) fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
            dispatch: OnceLock::new(),
        }
    }
}

impl<S> Layer<S> for JsonLogLayer
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        let metadata = event.metadata();

        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("service".into(), self.service.as_str().into());
        line.insert("target".into(), metadata.target().into());
        if let Some(message) = fields.remove("message") {
            line.insert("message".into(), message);
        }
        if let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) {
            let span = if event.is_contextual() {
                let current = dispatch.current_span();
                if let Some(metadata) = current.metadata() {
                    line.insert("span".into(), metadata.name().into());
                }
                current.id().cloned()
            } else {
                event.parent().cloned()
            };
            let cx = span.and_then(|id| tracing_opentelemetry::get_otel_context(&id, &dispatch));
            if let Some(cx) = cx {
                let span = cx.span();
                let context = span.span_context();
                if context.is_valid() {
                    line.insert("trace_id".into(), context.trace_id().to_string().into());
                    line.insert("span_id".into(), context.span_id().to_string().into());
                }
            }
        }
        if !fields.is_empty() {
            line.insert("fields".into(), Value::Object(fields));
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", Value::Object(line));
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
