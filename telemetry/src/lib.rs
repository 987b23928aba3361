//! Traces, metrics and logs for every service of the stack: the one place for their conventions.
//!
//! A service asks for a [`Telemetry`] by name, then runs on it:
//!
//! ```no_run
//! # async fn serve(_metrics: telemetry::Metrics) {}
//! let config = telemetry::TelemetryConfig::from_env()?;
//! let telemetry = telemetry::Telemetry::init("user", env!("CARGO_PKG_VERSION"), &config)?;
//! let metrics = telemetry.metrics().clone();
//! telemetry.run(serve(metrics))?;
//! # Ok::<(), telemetry::TelemetryError>(())
//! ```
//!
//! [`Telemetry::run`] gives the service a tokio runtime of its own whose threads log, trace and
//! record metrics through that service's pipeline, and flushes the last spans when the service
//! returns. Because the pipeline belongs to the runtime rather than the process, several
//! services can share one process (the `stack` launcher) and still export spans under their
//! own `service.name` and serve their own `/metrics`.
//!
//! The rest of the crate is what services use while they run: [`http_server::instrument`] for an
//! axum router, [`http_client::client`] for reqwest, [`db::DbOperation`] for database calls,
//! [`amqp`] for RabbitMQ messages and [`rpc`] for calls over RabbitMQ.

pub mod amqp;
mod batch;
pub mod config;
pub mod db;
mod export;
pub mod faults;
pub mod frontend;
pub mod http_client;
pub mod http_server;
mod logs;
mod metrics;
mod pipeline;
pub mod propagation;
pub mod rpc;
pub mod websocket;
mod zipkin;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Dispatch;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub use config::{
    BatchSettings, LogFormat, LogsExporter, PropagatorKind, SamplerKind, TelemetryConfig,
    TracesExporter,
};
pub use http_server::{TRACE_ID_HEADER, instrument};
pub use metrics::Metrics;
pub use pipeline::{InPipeline, Pipeline, in_current_pipeline, in_pipeline, spawn};

use batch::ProcessBatch;
use export::{ConfiguredExporter, ConfiguredLogExporter, ReportingExporter};
use logs::JsonLogLayer;

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(transparent)]
    Config(#[from] settings::SettingsError),
    #[error("cannot build the trace exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("cannot start the service runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// One service's telemetry pipeline: its log output, tracer and metrics registry.
pub struct Telemetry {
    service_name: String,
    dispatch: Dispatch,
    provider: SdkTracerProvider,
    /// Exports log records over OpenTelemetry, when `OTEL_LOGS_EXPORTER` asks for it.
    logger: Option<SdkLoggerProvider>,
    metrics: Metrics,
    pipeline: Pipeline,
    /// The worker threads of the runtime [`Telemetry::run`] builds; tokio's default if `None`.
    worker_threads: Option<std::num::NonZeroUsize>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("service_name", &self.service_name)
            .finish_non_exhaustive()
    }
}

const INSTANCE_ID: &str = "service.instance.id";

/// `service.instance.id` from `OTEL_RESOURCE_ATTRIBUTES` (a pod's name, say), or a fresh UUID:
/// the replicas of a service must tell themselves apart in traces and metrics.
fn instance_id(config: &TelemetryConfig) -> String {
    config
        .resource_attributes
        .iter()
        .find(|(key, _)| key == INSTANCE_ID)
        .map(|(_, value)| value.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// How long the last spans may take to leave at shutdown before they are given up.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

impl Telemetry {
    /// Builds the pipeline of the service `default_name` (overridden by `OTEL_SERVICE_NAME`).
    pub fn init(
        default_name: &str,
        version: &str,
        config: &TelemetryConfig,
    ) -> Result<Self, TelemetryError> {
        let service_name = config
            .service_name
            .clone()
            .unwrap_or_else(|| default_name.to_owned());
        propagation::install(&config.propagators);

        let instance = instance_id(config);
        let resource = Resource::builder_empty()
            .with_attributes(
                config
                    .resource_attributes
                    .iter()
                    .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
            )
            .with_service_name(service_name.clone())
            .with_attribute(KeyValue::new("service.version", version.to_owned()))
            .with_attribute(KeyValue::new(INSTANCE_ID, instance.clone()))
            .build();
        let log_dispatch = Arc::new(OnceLock::new());
        let mut provider = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_sampler(sampler(config.sampler));
        let exporter = ConfiguredExporter::build(&config.exporter, config.export_timeout)?;
        if let Some(exporter) = exporter {
            provider = provider.with_span_processor(ProcessBatch::new(
                ReportingExporter::new(
                    exporter,
                    "trace",
                    config.destination(),
                    Arc::clone(&log_dispatch),
                ),
                config.batch,
            ));
        }
        let provider = provider.build();
        // Records go through a bounded batch queue on the SDK's own thread, as spans do: a
        // full queue drops records, never blocks the request that logs.
        let logger = ConfiguredLogExporter::build(&config.logs_exporter, config.export_timeout)?
            .map(|exporter| {
                SdkLoggerProvider::builder()
                    .with_resource(resource)
                    .with_batch_exporter(ReportingExporter::new(
                        exporter,
                        "log",
                        config.logs_destination(),
                        Arc::clone(&log_dispatch),
                    ))
                    .build()
            });

        // Spans at INFO and above are traced whatever RUST_LOG says: it filters log lines only.
        let traces = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("telemetry"))
            // Spans carry the OpenTelemetry attributes we give them, not tracing's internals.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_level(false)
            .with_tracked_inactivity(false)
            .with_filter(LevelFilter::INFO);
        let log_lines = match config.log_format {
            // Worker threads are named after their service, which tells the services of the
            // one-process launcher apart.
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_thread_names(true)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .boxed(),
            LogFormat::Json => JsonLogLayer::new(&service_name).boxed(),
        };
        // The same records, with the trace and span ids of the span they were written in (the
        // traces layer makes its context current on enter) and the service's resource.
        let log_records = logger.as_ref().map(|logger| {
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(logger)
                .with_filter(EnvFilter::new(&config.log_filter))
        });
        let subscriber = Registry::default()
            .with(log_lines.with_filter(EnvFilter::new(&config.log_filter)))
            .with(log_records)
            .with(traces);
        let dispatch = Dispatch::new(subscriber);
        let _ = log_dispatch.set(dispatch.downgrade());

        let metrics = Metrics::new(&service_name, version, &instance);
        Ok(Self {
            pipeline: Pipeline::new(dispatch.clone(), metrics.clone()),
            metrics,
            service_name,
            dispatch,
            provider,
            logger,
            worker_threads: None,
        })
    }

    /// Runs the service on `workers` threads instead of tokio's default (one per core).
    pub fn with_worker_threads(mut self, workers: std::num::NonZeroUsize) -> Self {
        self.worker_threads = Some(workers);
        self
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The worker threads asked for by [`Telemetry::with_worker_threads`], if any.
    pub fn worker_threads(&self) -> Option<std::num::NonZeroUsize> {
        self.worker_threads
    }

    /// What the service's tasks run with; [`Pipeline::wrap`] runs a future in it.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Runs `f` with this pipeline as the current thread's tracing dispatch and metrics
    /// recorder: for benchmarks and tools that drive a service on a runtime of their own (a
    /// current-thread runtime polls everything on the calling thread). Queued spans are not
    /// flushed here; [`Telemetry::run`] is how services run.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::dispatcher::with_default(&self.dispatch, || self.metrics.record(f))
    }

    /// Runs `service` to completion on a runtime of its own, whose threads use this pipeline,
    /// then flushes the spans still queued. A panic in `service` is passed on after the flush.
    /// Blocks the calling thread: how a service binary runs.
    pub fn run<F>(self, service: F) -> Result<F::Output, TelemetryError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let pipeline = self.pipeline.clone();
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(workers) = self.worker_threads {
            builder.worker_threads(workers.get());
        }
        let runtime = builder
            .enable_all()
            .thread_name(format!("{}-worker", self.service_name))
            // These threads serve only this service for as long as they live, so even the
            // tasks its libraries spawn use its pipeline.
            .on_thread_start(move || pipeline.set_for_thread())
            .build()?;
        let outcome = runtime.block_on(self.pipeline.wrap(self.spawn_with_upkeep(service)));
        // Spans end when their tasks are dropped, so stop the runtime before the last flush.
        runtime.shutdown_timeout(FLUSH_TIMEOUT);
        self.shutdown();
        Self::passed_on(outcome)
    }

    /// Runs `service` to completion on the current runtime, which other services may share:
    /// its tasks keep this pipeline (see [`spawn`]). Then flushes the spans still queued.
    pub async fn serve<F>(self, service: F) -> Result<F::Output, TelemetryError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let outcome = self.pipeline.wrap(self.spawn_with_upkeep(service)).await;
        // The flush blocks: off the runtime's workers.
        let _ = tokio::task::spawn_blocking(move || self.shutdown()).await;
        Self::passed_on(outcome)
    }

    /// Spawns `service` (in the current pipeline) beside the registry's upkeep; its outcome.
    fn spawn_with_upkeep<F>(
        &self,
        service: F,
    ) -> impl Future<Output = Result<F::Output, tokio::task::JoinError>> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let metrics = self.metrics.clone();
        async move {
            let upkeep = spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(5));
                loop {
                    every.tick().await;
                    metrics.run_upkeep();
                }
            });
            let outcome = spawn(service).await;
            upkeep.abort();
            outcome
        }
    }

    fn passed_on<T>(outcome: Result<T, tokio::task::JoinError>) -> Result<T, TelemetryError> {
        match outcome {
            Ok(output) => Ok(output),
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => Err(TelemetryError::Runtime(std::io::Error::other(error))),
        }
    }

    /// Exports the spans and log records still queued and stops the exporters. This blocks,
    /// and runs outside the service's runtime workers: the exports have their own thread, so no
    /// worker can be starved of the flush it waits for.
    fn shutdown(self) {
        if let Err(error) = self.provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
            tracing::dispatcher::with_default(
                &self.dispatch,
                || tracing::warn!(%error, "could not flush the last spans"),
            );
        }
        if let Some(logger) = self.logger
            && let Err(error) = logger.shutdown_with_timeout(FLUSH_TIMEOUT)
        {
            tracing::dispatcher::with_default(
                &self.dispatch,
                || tracing::warn!(%error, "could not flush the last log records"),
            );
        }
    }
}

/// Sets the process's default log output, for what runs outside every service's pipeline: the
/// tasks that libraries (the AMQP client, say) spawn on a runtime that several services share.
/// Their lines are written as `name`'s; they carry no traces.
pub fn log_strays(name: &str, config: &TelemetryConfig) {
    let lines = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .boxed(),
        LogFormat::Json => JsonLogLayer::new(name).boxed(),
    };
    let subscriber =
        Registry::default().with(lines.with_filter(EnvFilter::new(&config.log_filter)));
    // Set once, by the process's `main`; a second call changes nothing.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// `url` with its password replaced by `***` and without its query or fragment (where tokens
/// and passwords hide too): URLs reach log lines and spans only this way.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "[not a URL]".to_owned(),
    }
}

/// Marks `span` as failed, with a bounded `error.type`: the one way every span of the stack
/// (HTTP, database, messaging) says it failed.
pub fn record_error(span: &tracing::Span, error_type: &str) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", error_type);
}

fn sampler(kind: SamplerKind) -> Sampler {
    match kind {
        SamplerKind::AlwaysOn => Sampler::AlwaysOn,
        SamplerKind::AlwaysOff => Sampler::AlwaysOff,
        SamplerKind::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
        SamplerKind::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerKind::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerKind::ParentBasedTraceIdRatio(ratio) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_a_log_line() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/users"),
            "postgres://app:***@db:5432/users"
        );
        assert_eq!(
            redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/users"),
            "postgres://postgres@127.0.0.1/users"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("https://user:pw@collector.example:4318/v1/traces?token=abc#x"),
            "https://user:***@collector.example:4318/v1/traces"
        );
        assert_eq!(redact_url("not a url"), "[not a URL]");
    }
}
