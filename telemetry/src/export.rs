//! Exporters: for spans the choice made by `OTEL_TRACES_EXPORTER`, for log records the one
//! made by `OTEL_LOGS_EXPORTER`, console exporters for local debugging, and the wrapper that
//! reports a failing collector once instead of on every batch.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tracing::dispatcher::WeakDispatch;

use crate::config::{LogsExporter, TracesExporter};
use crate::zipkin::ZipkinExporter;

/// The exporter chosen by configuration; `None` when spans are not exported at all.
#[derive(Debug)]
pub(crate) enum ConfiguredExporter {
    Otlp(opentelemetry_otlp::SpanExporter),
    Zipkin(ZipkinExporter),
    Console(ConsoleExporter),
}

impl ConfiguredExporter {
    pub(crate) fn build(
        choice: &TracesExporter,
        timeout: Duration,
    ) -> Result<Option<Self>, opentelemetry_otlp::ExporterBuildError> {
        // Asynchronous: exports run on the process's export thread, on a runtime of its own.
        let client = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(|error| {
                    opentelemetry_otlp::ExporterBuildError::InternalFailure(error.to_string())
                })
        };
        Ok(match choice {
            TracesExporter::Otlp { endpoint } => Some(Self::Otlp(
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(client()?)
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(endpoint.clone())
                    .with_timeout(timeout)
                    .build()?,
            )),
            TracesExporter::Zipkin { endpoint } => Some(Self::Zipkin(ZipkinExporter::new(
                endpoint.clone(),
                client()?,
            ))),
            TracesExporter::Console => Some(Self::Console(ConsoleExporter::default())),
            TracesExporter::None => None,
        })
    }
}

impl SpanExporter for ConfiguredExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        match self {
            Self::Otlp(exporter) => exporter.export(batch).await,
            Self::Zipkin(exporter) => exporter.export(batch).await,
            Self::Console(exporter) => exporter.export(batch).await,
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            Self::Otlp(exporter) => exporter.shutdown_with_timeout(timeout),
            Self::Zipkin(exporter) => exporter.shutdown_with_timeout(timeout),
            Self::Console(exporter) => exporter.shutdown_with_timeout(timeout),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self {
            Self::Otlp(exporter) => exporter.set_resource(resource),
            Self::Zipkin(exporter) => exporter.set_resource(resource),
            Self::Console(exporter) => exporter.set_resource(resource),
        }
    }
}

/// Logs the first failed export and the first success after failures, and nothing in between:
/// an unreachable collector is one warning, not one per batch. Spans of failed batches are
/// dropped (the batch queue is bounded), so a dead collector never grows memory.
pub(crate) struct ReportingExporter<E> {
    inner: E,
    destination: String,
    /// `trace` or `log`.
    signal: &'static str,
    failing: AtomicBool,
    /// Whether dropped records were reported already.
    dropping: AtomicBool,
    /// The service's log pipeline; exports run on the SDK's own thread, which has none.
    log: Arc<OnceLock<WeakDispatch>>,
}

impl<E> ReportingExporter<E> {
    /// Reports spans dropped because the export queue was full.
    pub(crate) fn note_dropped(&self, count: u64) {
        if !self.dropping.swap(true, Ordering::Relaxed) {
            self.log(|| {
                tracing::warn!(
                    signal = self.signal,
                    count,
                    "the export queue is full: records are dropped (reported once)"
                )
            });
        }
    }

    pub(crate) fn new(
        inner: E,
        signal: &'static str,
        destination: String,
        log: Arc<OnceLock<WeakDispatch>>,
    ) -> Self {
        Self {
            inner,
            destination,
            signal,
            failing: AtomicBool::new(false),
            dropping: AtomicBool::new(false),
            log,
        }
    }

    /// Reports the outcome of exporting `items` records, as the type says.
    fn note(&self, result: &OTelSdkResult, items: usize) {
        match result {
            Err(error) if !self.failing.swap(true, Ordering::Relaxed) => self.log(|| {
                tracing::warn!(
                    signal = self.signal,
                    destination = %self.destination,
                    %error,
                    items,
                    "export failed; records are dropped until it succeeds again (reported once)"
                )
            }),
            Ok(()) if self.failing.swap(false, Ordering::Relaxed) => self.log(|| {
                tracing::info!(
                    signal = self.signal,
                    destination = %self.destination,
                    "export recovered"
                )
            }),
            _ => {}
        }
    }

    fn log(&self, write: impl FnOnce()) {
        match self.log.get().and_then(WeakDispatch::upgrade) {
            Some(dispatch) => tracing::dispatcher::with_default(&dispatch, write),
            None => write(),
        }
    }
}

impl<E> fmt::Debug for ReportingExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportingExporter")
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

impl<E: SpanExporter> SpanExporter for ReportingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        self.note(&result, spans);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: LogExporter> LogExporter for ReportingExporter<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let records = batch.iter().count();
        let result = self.inner.export(batch).await;
        self.note(&result, records);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The log exporter chosen by configuration; `None` when records are not exported.
#[derive(Debug)]
pub(crate) enum ConfiguredLogExporter {
    // Boxed: built once, and far larger than the console one.
    Otlp(Box<opentelemetry_otlp::LogExporter>),
    Console(ConsoleLogExporter),
}

impl ConfiguredLogExporter {
    pub(crate) fn build(
        choice: &LogsExporter,
        timeout: Duration,
    ) -> Result<Option<Self>, opentelemetry_otlp::ExporterBuildError> {
        Ok(match choice {
            LogsExporter::Otlp { endpoint } => Some(Self::Otlp(Box::new(
                opentelemetry_otlp::LogExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(endpoint.clone())
                    .with_timeout(timeout)
                    .build()?,
            ))),
            LogsExporter::Console => Some(Self::Console(ConsoleLogExporter::default())),
            LogsExporter::None => None,
        })
    }
}

impl LogExporter for ConfiguredLogExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        match self {
            Self::Otlp(exporter) => exporter.export(batch).await,
            Self::Console(exporter) => exporter.export(batch).await,
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            Self::Otlp(exporter) => exporter.shutdown_with_timeout(timeout),
            Self::Console(_) => Ok(()),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self {
            Self::Otlp(exporter) => exporter.set_resource(resource),
            Self::Console(exporter) => exporter.set_resource(resource),
        }
    }
}

/// Writes each log record as one JSON line on standard output, with its trace context.
#[derive(Debug, Default)]
pub(crate) struct ConsoleLogExporter {
    service_name: String,
}

impl LogExporter for ConsoleLogExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for (record, _) in batch.iter() {
            let attributes: serde_json::Map<String, serde_json::Value> = record
                .attributes_iter()
                .map(|(key, value)| (key.to_string(), format!("{value:?}").into()))
                .collect();
            let context = record.trace_context();
            let line = serde_json::json!({
                "log": record.body().map(|body| format!("{body:?}")),
                "service": self.service_name,
                "severity": record.severity_text(),
                "trace_id": context.map(|context| context.trace_id.to_string()),
                "span_id": context.map(|context| context.span_id.to_string()),
                "attributes": attributes,
            });
            writeln!(out, "{line}")
                .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))?;
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.service_name = crate::zipkin::service_name(resource);
    }
}

/// Writes each span as one JSON line on standard output.
#[derive(Debug, Default)]
pub(crate) struct ConsoleExporter {
    service_name: String,
}

impl SpanExporter for ConsoleExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for span in batch {
            let attributes: serde_json::Map<String, serde_json::Value> = span
                .attributes
                .iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string().into()))
                .collect();
            let line = serde_json::json!({
                "span": span.name,
                "service": self.service_name,
                "kind": format!("{:?}", span.span_kind).to_uppercase(),
                "trace_id": span.span_context.trace_id().to_string(),
                "span_id": span.span_context.span_id().to_string(),
                "parent_id": span.parent_span_id.to_string(),
                "duration_us": span.end_time.duration_since(span.start_time)
                    .unwrap_or_default().as_micros() as u64,
                "status": format!("{:?}", span.status),
                "attributes": attributes,
            });
            writeln!(out, "{line}")
                .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))?;
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.service_name = crate::zipkin::service_name(resource);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tracing::{Dispatch, Event, Level, Subscriber};
    use tracing_subscriber::Registry;
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    use super::*;

    /// Fails the first `failures` exports, then succeeds.
    #[derive(Debug)]
    struct Flaky {
        failures: usize,
        calls: AtomicUsize,
    }

    impl SpanExporter for Flaky {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            if self.calls.fetch_add(1, Ordering::Relaxed) < self.failures {
                Err(OTelSdkError::InternalFailure("connection refused".into()))
            } else {
                Ok(())
            }
        }
    }

    #[derive(Clone, Default)]
    struct CountLevels(Arc<[AtomicUsize; 2]>);

    impl<S: Subscriber> Layer<S> for CountLevels {
        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            match *event.metadata().level() {
                Level::WARN => self.0[0].fetch_add(1, Ordering::Relaxed),
                Level::INFO => self.0[1].fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
    }

    #[test]
    fn a_failing_collector_is_reported_once_and_its_recovery_once() {
        let counts = CountLevels::default();
        let dispatch = Dispatch::new(Registry::default().with(counts.clone()));
        let log = Arc::new(OnceLock::new());
        let _ = log.set(dispatch.downgrade());
        let exporter = ReportingExporter::new(
            Flaky {
                failures: 4,
                calls: AtomicUsize::new(0),
            },
            "trace",
            "http://collector".into(),
            log,
        );
        let results: Vec<bool> = (0..7)
            .map(|_| block_on(exporter.export(Vec::new())).is_ok())
            .collect();
        assert_eq!(results, [false, false, false, false, true, true, true]);
        assert_eq!(counts.0[0].load(Ordering::Relaxed), 1, "one warning");
        assert_eq!(counts.0[1].load(Ordering::Relaxed), 1, "one recovery");
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }
}
