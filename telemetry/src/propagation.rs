//! Trace context propagation: which headers carry a trace between processes, and the carriers
//! that read and write them on HTTP header maps and AMQP header tables.
//!
//! Injection uses exactly the formats of `OTEL_PROPAGATORS`. Extraction also always understands
//! B3 (single `b3` header and `X-B3-*` headers), so Zipkin-instrumented callers are continued
//! whatever the configuration; when a request carries both, W3C `traceparent` wins.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
    text_map_propagator::FieldIter,
};
use opentelemetry_propagator_b3::{B3Encoding, Propagator as B3Propagator};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::PropagatorKind;

/// The process-wide propagator built from `OTEL_PROPAGATORS`.
#[derive(Debug)]
pub struct StackPropagator {
    inject: TextMapCompositePropagator,
    extract: TextMapCompositePropagator,
}

impl StackPropagator {
    pub fn new(kinds: &[PropagatorKind]) -> Self {
        let build = |kind: &PropagatorKind| -> Box<dyn TextMapPropagator + Send + Sync> {
            match kind {
                PropagatorKind::TraceContext => Box::new(TraceContextPropagator::new()),
                PropagatorKind::Baggage => Box::new(BaggagePropagator::new()),
                PropagatorKind::B3 => {
                    Box::new(B3Propagator::with_encoding(B3Encoding::SingleHeader))
                }
                PropagatorKind::B3Multi => {
                    Box::new(B3Propagator::with_encoding(B3Encoding::MultipleHeader))
                }
            }
        };
        let inject = TextMapCompositePropagator::new(kinds.iter().map(build).collect());
        // B3 first, so that a `traceparent` extracted after it takes precedence.
        let always_b3: Box<dyn TextMapPropagator + Send + Sync> = Box::new(
            B3Propagator::with_encoding(B3Encoding::SingleAndMultiHeader),
        );
        let configured = kinds
            .iter()
            .filter(|kind| !matches!(kind, PropagatorKind::B3 | PropagatorKind::B3Multi))
            .map(build);
        let extract =
            TextMapCompositePropagator::new(std::iter::once(always_b3).chain(configured).collect());
        Self { inject, extract }
    }
}

impl TextMapPropagator for StackPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.inject.inject_context(cx, injector);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.extract.extract_with_context(cx, extractor)
    }

    fn fields(&self) -> FieldIter<'_> {
        self.inject.fields()
    }
}

/// Installs the process-wide propagator. Every service of a process shares it, as they share the
/// environment it is read from.
pub(crate) fn install(kinds: &[PropagatorKind]) {
    opentelemetry::global::set_text_map_propagator(StackPropagator::new(kinds));
}

/// Writes `cx` into HTTP headers with the configured formats.
pub fn inject_http(cx: &Context, headers: &mut HeaderMap) {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(cx, &mut HeaderInjector(headers));
    });
}

/// Reads the caller's context from HTTP headers (an empty context when there is none or it is
/// malformed: a bad header never fails a request).
pub fn extract_http(headers: &HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    })
}

/// Writes `cx` into AMQP message headers with the configured formats.
pub fn inject_amqp(cx: &Context, headers: &mut FieldTable) {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(cx, &mut FieldTableInjector(headers));
    });
}

/// Reads the producer's context from AMQP message headers.
pub fn extract_amqp(headers: &FieldTable) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&FieldTableExtractor(headers))
    })
}

/// The current span's context as JSON text, to keep with work that continues later (an outbox
/// row or stream entry is published after its request has ended).
pub fn current_context_json() -> String {
    let cx = tracing::Span::current().context();
    let mut map = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&cx, &mut map);
    });
    serde_json::to_string(&map).expect("string pairs serialize")
}

/// The context saved by [`current_context_json`]; the empty context (a new root) if it is not
/// such JSON.
pub fn context_from_json(json: &str) -> Context {
    let map: HashMap<String, String> = serde_json::from_str(json).unwrap_or_default();
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&map))
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct FieldTableInjector<'a>(&'a mut FieldTable);

impl Injector for FieldTableInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(
            ShortString::from(key.to_owned()),
            AMQPValue::LongString(LongString::from(value)),
        );
    }
}

struct FieldTableExtractor<'a>(&'a FieldTable);

impl FieldTableExtractor<'_> {
    fn value_as_str(value: &AMQPValue) -> Option<&str> {
        match value {
            AMQPValue::LongString(value) => std::str::from_utf8(value.as_bytes()).ok(),
            AMQPValue::ShortString(value) => Some(value.as_str()),
            _ => None,
        }
    }
}

impl Extractor for FieldTableExtractor<'_> {
    /// AMQP header names are case-sensitive, but other clients write `X-B3-TraceId` where we
    /// look for `x-b3-traceid`: an exact match first, then a case-insensitive one.
    fn get(&self, key: &str) -> Option<&str> {
        let table = self.0.inner();
        table
            .get(&ShortString::from(key.to_owned()))
            .or_else(|| {
                table
                    .iter()
                    .find(|(name, _)| name.as_str().eq_ignore_ascii_case(key))
                    .map(|(_, value)| value)
            })
            .and_then(Self::value_as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(ShortString::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn remote_context() -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex(TRACE).unwrap(),
            SpanId::from_hex(SPAN).unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ))
    }

    fn ids(cx: &Context) -> (String, String) {
        let span = cx.span();
        let context = span.span_context();
        (
            context.trace_id().to_string(),
            context.span_id().to_string(),
        )
    }

    #[test]
    fn http_headers_round_trip_in_every_configured_format() {
        for (kinds, header) in [
            (vec![PropagatorKind::TraceContext], "traceparent"),
            (vec![PropagatorKind::B3], "b3"),
            (vec![PropagatorKind::B3Multi], "x-b3-traceid"),
        ] {
            let propagator = StackPropagator::new(&kinds);
            let mut headers = HeaderMap::new();
            propagator.inject_context(&remote_context(), &mut HeaderInjector(&mut headers));
            assert!(headers.contains_key(header), "{kinds:?}: {headers:?}");
            let extracted = propagator.extract(&HeaderExtractor(&headers));
            assert_eq!(ids(&extracted), (TRACE.into(), SPAN.into()));
        }
    }

    #[test]
    fn b3_is_extracted_even_when_only_w3c_is_configured() {
        let propagator = StackPropagator::new(&[PropagatorKind::TraceContext]);
        let mut single = HeaderMap::new();
        single.insert("b3", format!("{TRACE}-{SPAN}-1").parse().unwrap());
        assert_eq!(
            ids(&propagator.extract(&HeaderExtractor(&single))),
            (TRACE.into(), SPAN.into())
        );

        let mut multi = HeaderMap::new();
        multi.insert("X-B3-TraceId", TRACE.parse().unwrap());
        multi.insert("X-B3-SpanId", SPAN.parse().unwrap());
        multi.insert("X-B3-Sampled", "1".parse().unwrap());
        assert_eq!(
            ids(&propagator.extract(&HeaderExtractor(&multi))),
            (TRACE.into(), SPAN.into())
        );
    }

    #[test]
    fn traceparent_wins_over_b3() {
        let propagator = StackPropagator::new(&[PropagatorKind::TraceContext]);
        let mut headers = HeaderMap::new();
        headers.insert(
            "b3",
            "11111111111111111111111111111111-2222222222222222-1"
                .parse()
                .unwrap(),
        );
        headers.insert(
            "traceparent",
            format!("00-{TRACE}-{SPAN}-01").parse().unwrap(),
        );
        assert_eq!(
            ids(&propagator.extract(&HeaderExtractor(&headers))),
            (TRACE.into(), SPAN.into())
        );
    }

    #[test]
    fn malformed_headers_give_an_empty_context() {
        let propagator = StackPropagator::new(&[PropagatorKind::TraceContext]);
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", "00-zz-yy-01".parse().unwrap());
        headers.insert("b3", "not-a-b3".parse().unwrap());
        let extracted = propagator.extract(&HeaderExtractor(&headers));
        assert!(!extracted.span().span_context().is_valid());
    }

    #[test]
    fn amqp_tables_round_trip_as_long_strings() {
        let propagator = StackPropagator::new(&[PropagatorKind::TraceContext, PropagatorKind::B3]);
        let mut table = FieldTable::default();
        propagator.inject_context(&remote_context(), &mut FieldTableInjector(&mut table));
        assert!(matches!(
            table.inner().get(&ShortString::from("traceparent")),
            Some(AMQPValue::LongString(_))
        ));
        assert!(table.inner().contains_key(&ShortString::from("b3")));
        let extracted = propagator.extract(&FieldTableExtractor(&table));
        assert_eq!(ids(&extracted), (TRACE.into(), SPAN.into()));
    }

    #[test]
    fn amqp_extraction_falls_back_to_case_insensitive_names() {
        let propagator = StackPropagator::new(&[PropagatorKind::TraceContext]);
        let mut table = FieldTable::default();
        for (name, value) in [
            ("X-B3-TraceId", TRACE),
            ("X-B3-SpanId", SPAN),
            ("X-B3-Sampled", "1"),
        ] {
            table.insert(
                ShortString::from(name),
                AMQPValue::LongString(LongString::from(value)),
            );
        }
        let extracted = propagator.extract(&FieldTableExtractor(&table));
        assert_eq!(ids(&extracted), (TRACE.into(), SPAN.into()));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever a caller sends in the trace headers, extraction returns a context (valid or
        /// not) and never panics.
        #[test]
        fn any_trace_headers_are_survived(
            traceparent in any::<String>(),
            b3 in "[ -~]{0,80}",
            tracestate in "[ -~]{0,200}",
            trace_id in "[0-9a-fA-Fz-]{0,40}",
        ) {
            let propagator = StackPropagator::new(&[
                PropagatorKind::TraceContext,
                PropagatorKind::Baggage,
            ]);
            let mut headers = HeaderMap::new();
            for (name, value) in [
                ("traceparent", traceparent.as_str()),
                ("b3", b3.as_str()),
                ("tracestate", tracestate.as_str()),
                ("baggage", tracestate.as_str()),
                ("x-b3-traceid", trace_id.as_str()),
                ("x-b3-spanid", trace_id.as_str()),
            ] {
                if let Ok(value) = HeaderValue::from_str(value) {
                    headers.insert(name, value);
                }
            }
            let _ = propagator.extract(&HeaderExtractor(&headers));
            let mut table = FieldTable::default();
            table.insert(
                ShortString::from("traceparent"),
                AMQPValue::LongString(LongString::from(traceparent.clone())),
            );
            let _ = propagator.extract(&FieldTableExtractor(&table));
        }
    }
}
