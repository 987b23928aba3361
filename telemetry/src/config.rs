//! Telemetry configuration, read from the standard OpenTelemetry environment variables.
//!
//! Every value is parsed once at start-up; an unknown value is an error that names its variable,
//! so a typo in a deployment fails loudly instead of silently dropping every trace.

use std::time::Duration;

use settings::{Env, Lookup, SettingsError};

/// Where finished spans are sent.
#[derive(Debug, Clone, PartialEq)]
pub enum TracesExporter {
    /// OTLP over HTTP with protobuf bodies, to this full `/v1/traces` URL.
    Otlp { endpoint: String },
    /// Zipkin's v2 JSON API, to this full `/api/v2/spans` URL.
    Zipkin { endpoint: String },
    /// One line per span on standard output: for local debugging.
    Console,
    /// Spans are still created (trace ids are still returned and propagated) but never exported.
    None,
}

/// Where log records go, besides the log lines on standard output (`OTEL_LOGS_EXPORTER`).
#[derive(Debug, Clone, PartialEq)]
pub enum LogsExporter {
    /// OTLP over HTTP with protobuf bodies, to this full `/v1/logs` URL.
    Otlp { endpoint: String },
    /// One JSON line per record on standard output, as OpenTelemetry sees it.
    Console,
    /// Log lines only (the default).
    None,
}

/// A context propagation format named in `OTEL_PROPAGATORS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropagatorKind {
    TraceContext,
    Baggage,
    /// B3 single header (`b3: {trace}-{span}-{sampled}`).
    B3,
    /// B3 multiple headers (`X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`, ...).
    B3Multi,
}

/// The sampler named by `OTEL_TRACES_SAMPLER` (and its ratio, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerKind {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

/// How log lines are written to standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with `trace_id` and `span_id` when written inside a span.
    Json,
}

/// Everything the telemetry set-up reads from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// `OTEL_SERVICE_NAME`; when absent each service uses its own name.
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`, as `key=value` pairs.
    pub resource_attributes: Vec<(String, String)>,
    pub exporter: TracesExporter,
    pub logs_exporter: LogsExporter,
    /// Upper bound of one export request (`OTEL_EXPORTER_OTLP_TIMEOUT` / `_ZIPKIN_TIMEOUT`, ms).
    pub export_timeout: Duration,
    pub sampler: SamplerKind,
    pub propagators: Vec<PropagatorKind>,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `RUST_LOG`, an `EnvFilter` directive; `info` (without Postgres notices) by default.
    pub log_filter: String,
    /// How finished spans are batched for export.
    pub batch: BatchSettings,
}

/// How finished spans wait for export, as the OpenTelemetry batch span processor's variables
/// say. One export thread serves every service of a process, with the settings of the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// `OTEL_BSP_SCHEDULE_DELAY` (ms, 5000): the longest a span waits for its batch.
    pub schedule_delay: Duration,
    /// `OTEL_BSP_MAX_QUEUE_SIZE` (2048): spans a service may have waiting; more are dropped.
    pub max_queue_size: usize,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512): spans per export, and the batch that is sent
    /// at once, before the delay is up.
    pub max_export_batch_size: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            schedule_delay: Duration::from_secs(5),
            max_queue_size: 2048,
            max_export_batch_size: 512,
        }
    }
}

impl BatchSettings {
    fn from_lookup(lookup: &(impl Lookup + ?Sized)) -> Result<Self, SettingsError> {
        let default = Self::default();
        let count = |variable, default: usize| -> Result<usize, SettingsError> {
            Ok(lookup
                .parse::<usize>(variable, default, "expected a whole number")?
                .max(1))
        };
        let max_queue_size = count("OTEL_BSP_MAX_QUEUE_SIZE", default.max_queue_size)?;
        Ok(Self {
            schedule_delay: lookup.millis(
                "OTEL_BSP_SCHEDULE_DELAY",
                default.schedule_delay.as_millis() as u64,
            )?,
            max_queue_size,
            max_export_batch_size: count(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                default.max_export_batch_size,
            )?
            .min(max_queue_size),
        })
    }
}

const DEFAULT_OTLP_ENDPOINT: &str = "http://localhost:4318";
const DEFAULT_ZIPKIN_ENDPOINT: &str = "http://localhost:9411/api/v2/spans";
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Postgres notices ("relation already exists, skipping") are not news.
const DEFAULT_LOG_FILTER: &str = "info,sqlx::postgres::notice=warn";

impl TelemetryConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&Env)
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: &(impl Lookup + ?Sized)) -> Result<Self, SettingsError> {
        let (exporter, export_timeout) = traces_exporter(lookup)?;
        let (log_format, log_filter) = logs(lookup)?;
        Ok(Self {
            service_name: lookup.text("OTEL_SERVICE_NAME")?,
            resource_attributes: resource_attributes(lookup)?,
            exporter,
            logs_exporter: logs_exporter(lookup)?,
            export_timeout,
            sampler: sampler(lookup)?,
            propagators: propagators(lookup)?,
            log_format,
            log_filter,
            batch: BatchSettings::from_lookup(lookup)?,
        })
    }

    /// A configuration that exports nothing and logs only warnings: for tests and benchmarks.
    pub fn silent() -> Self {
        Self {
            service_name: None,
            resource_attributes: Vec::new(),
            exporter: TracesExporter::None,
            logs_exporter: LogsExporter::None,
            export_timeout: DEFAULT_EXPORT_TIMEOUT,
            sampler: SamplerKind::ParentBasedAlwaysOn,
            propagators: vec![PropagatorKind::TraceContext, PropagatorKind::Baggage],
            log_format: LogFormat::Text,
            log_filter: "warn".to_owned(),
            batch: BatchSettings::default(),
        }
    }

    /// Where log records go, in words, for reports of a failing export.
    pub fn logs_destination(&self) -> String {
        match &self.logs_exporter {
            LogsExporter::Otlp { endpoint } => format!("OTLP/HTTP {endpoint}"),
            LogsExporter::Console => "standard output".to_owned(),
            LogsExporter::None => "nowhere (OTEL_LOGS_EXPORTER=none)".to_owned(),
        }
    }

    /// Where traces go, in words, for start-up banners.
    pub fn destination(&self) -> String {
        match &self.exporter {
            TracesExporter::Otlp { endpoint } => format!("OTLP/HTTP {endpoint}"),
            TracesExporter::Zipkin { endpoint } => format!("Zipkin {endpoint}"),
            TracesExporter::Console => "standard output".to_owned(),
            TracesExporter::None => "nowhere (OTEL_TRACES_EXPORTER=none)".to_owned(),
        }
    }
}

/// `OTEL_TRACES_EXPORTER`, its endpoint and its timeout.
fn traces_exporter(
    lookup: &(impl Lookup + ?Sized),
) -> Result<(TracesExporter, Duration), SettingsError> {
    let exporter = match lookup.text("OTEL_TRACES_EXPORTER")?.as_deref() {
        None | Some("otlp") => TracesExporter::Otlp {
            endpoint: otlp_endpoint(
                lookup.text("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")?,
                lookup.text("OTEL_EXPORTER_OTLP_ENDPOINT")?,
                "traces",
            ),
        },
        Some("zipkin") => TracesExporter::Zipkin {
            endpoint: lookup
                .text("OTEL_EXPORTER_ZIPKIN_ENDPOINT")?
                .unwrap_or_else(|| DEFAULT_ZIPKIN_ENDPOINT.to_owned()),
        },
        Some("console") => TracesExporter::Console,
        Some("none") => TracesExporter::None,
        Some(other) => {
            return Err(SettingsError::new(
                "OTEL_TRACES_EXPORTER",
                other,
                "expected one of otlp, zipkin, console, none",
            ));
        }
    };
    let timeout_variable = match exporter {
        TracesExporter::Zipkin { .. } => "OTEL_EXPORTER_ZIPKIN_TIMEOUT",
        _ => "OTEL_EXPORTER_OTLP_TIMEOUT",
    };
    let timeout = lookup.millis(timeout_variable, DEFAULT_EXPORT_TIMEOUT.as_millis() as u64)?;
    Ok((exporter, timeout))
}

/// `OTEL_TRACES_SAMPLER` and its ratio, `OTEL_TRACES_SAMPLER_ARG`.
fn sampler(lookup: &(impl Lookup + ?Sized)) -> Result<SamplerKind, SettingsError> {
    // Read whatever the sampler, so that a deployment's variables can be checked against
    // what the process reads; checked only for the samplers that take a ratio.
    let given = lookup.text("OTEL_TRACES_SAMPLER_ARG")?;
    let ratio = || -> Result<f64, SettingsError> {
        match given.clone() {
            None => Ok(1.0),
            Some(value) => value
                .parse::<f64>()
                .ok()
                .filter(|ratio| (0.0..=1.0).contains(ratio))
                .ok_or_else(|| {
                    SettingsError::new(
                        "OTEL_TRACES_SAMPLER_ARG",
                        value,
                        "expected a ratio between 0 and 1",
                    )
                }),
        }
    };
    Ok(match lookup.text("OTEL_TRACES_SAMPLER")?.as_deref() {
        None | Some("parentbased_always_on") => SamplerKind::ParentBasedAlwaysOn,
        Some("parentbased_always_off") => SamplerKind::ParentBasedAlwaysOff,
        Some("parentbased_traceidratio") => SamplerKind::ParentBasedTraceIdRatio(ratio()?),
        Some("always_on") => SamplerKind::AlwaysOn,
        Some("always_off") => SamplerKind::AlwaysOff,
        Some("traceidratio") => SamplerKind::TraceIdRatio(ratio()?),
        Some(other) => {
            return Err(SettingsError::new(
                "OTEL_TRACES_SAMPLER",
                other,
                "expected one of always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off, parentbased_traceidratio",
            ));
        }
    })
}

/// `OTEL_PROPAGATORS`: W3C trace context and baggage by default.
fn propagators(lookup: &(impl Lookup + ?Sized)) -> Result<Vec<PropagatorKind>, SettingsError> {
    match lookup.text("OTEL_PROPAGATORS")? {
        None => Ok(vec![PropagatorKind::TraceContext, PropagatorKind::Baggage]),
        Some(list) => parse_propagators(&list)
            .map_err(|reason| SettingsError::new("OTEL_PROPAGATORS", list, reason)),
    }
}

/// `OTEL_RESOURCE_ATTRIBUTES`, as `key=value` pairs.
fn resource_attributes(
    lookup: &(impl Lookup + ?Sized),
) -> Result<Vec<(String, String)>, SettingsError> {
    match lookup.text("OTEL_RESOURCE_ATTRIBUTES")? {
        None => Ok(Vec::new()),
        Some(list) => parse_resource_attributes(&list)
            .map_err(|reason| SettingsError::new("OTEL_RESOURCE_ATTRIBUTES", list, reason)),
    }
}

/// `LOG_FORMAT` and `RUST_LOG`.
fn logs(lookup: &(impl Lookup + ?Sized)) -> Result<(LogFormat, String), SettingsError> {
    let format = match lookup.text("LOG_FORMAT")?.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(SettingsError::new(
                "LOG_FORMAT",
                other,
                "expected text or json",
            ));
        }
    };
    let filter = lookup
        .text("RUST_LOG")?
        .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());
    if let Err(error) = tracing_subscriber::EnvFilter::try_new(&filter) {
        return Err(SettingsError::new("RUST_LOG", &filter, error.to_string()));
    }
    Ok((format, filter))
}

/// `OTEL_LOGS_EXPORTER` (`none` by default) and its endpoint.
fn logs_exporter(lookup: &(impl Lookup + ?Sized)) -> Result<LogsExporter, SettingsError> {
    // Read whatever the exporter, as the sampler's ratio is.
    let endpoint = otlp_endpoint(
        lookup.text("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")?,
        lookup.text("OTEL_EXPORTER_OTLP_ENDPOINT")?,
        "logs",
    );
    match lookup.text("OTEL_LOGS_EXPORTER")?.as_deref() {
        None | Some("none") => Ok(LogsExporter::None),
        Some("otlp") => Ok(LogsExporter::Otlp { endpoint }),
        Some("console") => Ok(LogsExporter::Console),
        Some(other) => Err(SettingsError::new(
            "OTEL_LOGS_EXPORTER",
            other,
            "expected one of otlp, console, none",
        )),
    }
}

/// The per-signal variable is used as is; the generic one is a base URL that gets
/// `/v1/<signal>`.
fn otlp_endpoint(own: Option<String>, base: Option<String>, signal: &str) -> String {
    match (own, base) {
        (Some(own), _) => own,
        (None, base) => {
            let base = base.unwrap_or_else(|| DEFAULT_OTLP_ENDPOINT.to_owned());
            format!("{}/v1/{signal}", base.trim_end_matches('/'))
        }
    }
}

fn parse_propagators(list: &str) -> Result<Vec<PropagatorKind>, String> {
    let mut propagators = Vec::new();
    for name in list
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let kind = match name {
            "tracecontext" => PropagatorKind::TraceContext,
            "baggage" => PropagatorKind::Baggage,
            "b3" => PropagatorKind::B3,
            "b3multi" => PropagatorKind::B3Multi,
            "none" => continue,
            other => {
                return Err(format!(
                    "unknown propagator {other:?}; expected tracecontext, baggage, b3, b3multi or none"
                ));
            }
        };
        if !propagators.contains(&kind) {
            propagators.push(kind);
        }
    }
    Ok(propagators)
}

fn parse_resource_attributes(list: &str) -> Result<Vec<(String, String)>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok((key.trim().to_owned(), value.trim().to_owned()))
            }
            _ => Err(format!("expected key=value, found {pair:?}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<TelemetryConfig, SettingsError> {
        TelemetryConfig::from_lookup(&|name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn defaults_follow_the_opentelemetry_specification() {
        let config = config(&[]).unwrap();
        assert_eq!(
            config.exporter,
            TracesExporter::Otlp {
                endpoint: "http://localhost:4318/v1/traces".into()
            }
        );
        assert_eq!(config.sampler, SamplerKind::ParentBasedAlwaysOn);
        assert_eq!(
            config.propagators,
            [PropagatorKind::TraceContext, PropagatorKind::Baggage]
        );
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.log_filter, DEFAULT_LOG_FILTER);
    }

    #[test]
    fn endpoints_and_choices_are_read() {
        let config = config(&[
            ("OTEL_TRACES_EXPORTER", "zipkin"),
            (
                "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
                "http://zipkin:9411/api/v2/spans",
            ),
            ("OTEL_EXPORTER_ZIPKIN_TIMEOUT", "2500"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_PROPAGATORS", "b3multi, tracecontext"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=dev, team=sre",
            ),
            ("OTEL_SERVICE_NAME", "user-eu"),
            ("LOG_FORMAT", "json"),
        ])
        .unwrap();
        assert_eq!(
            config.exporter,
            TracesExporter::Zipkin {
                endpoint: "http://zipkin:9411/api/v2/spans".into()
            }
        );
        assert_eq!(config.export_timeout, Duration::from_millis(2500));
        assert_eq!(config.sampler, SamplerKind::ParentBasedTraceIdRatio(0.25));
        assert_eq!(
            config.propagators,
            [PropagatorKind::B3Multi, PropagatorKind::TraceContext]
        );
        assert_eq!(
            config.resource_attributes,
            [
                ("deployment.environment".into(), "dev".into()),
                ("team".into(), "sre".into())
            ]
        );
        assert_eq!(config.service_name.as_deref(), Some("user-eu"));
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn the_otlp_base_endpoint_gets_the_traces_path_and_the_signal_endpoint_does_not() {
        let base = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]).unwrap();
        assert_eq!(
            base.exporter,
            TracesExporter::Otlp {
                endpoint: "http://collector:4318/v1/traces".into()
            }
        );
        let signal = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://other:4318/custom",
            ),
        ])
        .unwrap();
        assert_eq!(
            signal.exporter,
            TracesExporter::Otlp {
                endpoint: "http://other:4318/custom".into()
            }
        );
    }

    #[test]
    fn unknown_values_are_errors_that_name_the_variable() {
        for (variable, value) in [
            ("OTEL_TRACES_EXPORTER", "jaeger"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_PROPAGATORS", "tracecontext,xray"),
            ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
            ("LOG_FORMAT", "yaml"),
            ("RUST_LOG", "info,[[["),
        ] {
            let error = config(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable);
            assert!(error.to_string().contains(variable), "{error}");
        }
        let error = config(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ])
        .unwrap_err();
        assert_eq!(error.variable, "OTEL_TRACES_SAMPLER_ARG");
    }

    #[test]
    fn log_records_are_exported_only_when_asked() {
        assert_eq!(config(&[]).unwrap().logs_exporter, LogsExporter::None);
        assert_eq!(
            config(&[
                ("OTEL_LOGS_EXPORTER", "otlp"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ])
            .unwrap()
            .logs_exporter,
            LogsExporter::Otlp {
                endpoint: "http://collector:4318/v1/logs".into()
            }
        );
        assert_eq!(
            config(&[
                ("OTEL_LOGS_EXPORTER", "otlp"),
                (
                    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                    "http://logs:4318/v1/logs"
                ),
            ])
            .unwrap()
            .logs_exporter,
            LogsExporter::Otlp {
                endpoint: "http://logs:4318/v1/logs".into()
            }
        );
        assert_eq!(
            config(&[("OTEL_LOGS_EXPORTER", "console")])
                .unwrap()
                .logs_exporter,
            LogsExporter::Console
        );
        let error = config(&[("OTEL_LOGS_EXPORTER", "loki")]).unwrap_err();
        assert_eq!(error.variable, "OTEL_LOGS_EXPORTER");
    }
}
