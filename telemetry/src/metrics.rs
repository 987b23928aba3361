//! Prometheus metrics: one registry per service, served at `GET /metrics`.
//!
//! Each service gets its own recorder, labelled `service="<name>"`, installed on the threads of
//! that service's runtime (see [`crate::Telemetry::run`]). So when several services share one
//! process, each `/metrics` shows that service's own series, still told apart by the label.
//! Process metrics (CPU, memory, open fds) and `build_info` come with every registry.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Bucket bounds, in seconds, for every `*_duration_seconds` and `*_lag_seconds` histogram: from
/// half a millisecond (a cached read) to ten seconds (a request about to time out).
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A service's metrics registry: what records into it and what renders it.
#[derive(Clone)]
pub struct Metrics {
    recorder: &'static PrometheusRecorder,
    handle: PrometheusHandle,
    process: Arc<metrics_process::Collector>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new(service: &str, version: &str, instance: &str) -> Self {
        let recorder = PrometheusBuilder::new()
            .add_global_label("service", service)
            .set_buckets_for_metric(
                Matcher::Suffix("_duration_seconds".into()),
                DURATION_BUCKETS,
            )
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Suffix("_lag_seconds".into()),
                    DURATION_BUCKETS,
                )
            })
            .expect("the duration buckets are a non-empty constant")
            .build_recorder();
        // One registry per service for the life of the process: leaking it lets every thread of
        // the service's runtime hold a `'static` reference to it.
        let recorder: &'static PrometheusRecorder = Box::leak(Box::new(recorder));
        let metrics = Self {
            recorder,
            handle: recorder.handle(),
            process: Arc::new(metrics_process::Collector::default()),
        };
        metrics.record(|| {
            describe_conventional_metrics();
            metrics.process.describe();
            gauge!(
                "build_info",
                "version" => version.to_owned(),
                "service_instance_id" => instance.to_owned()
            )
            .set(1.0);
        });
        metrics
    }

    pub(crate) fn recorder(&self) -> &'static PrometheusRecorder {
        self.recorder
    }

    /// Runs `f` with this registry as the recorder of the current thread.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(self.recorder, f)
    }

    /// The Prometheus text exposition of this registry, with fresh process metrics.
    pub fn render(&self) -> String {
        self.record(|| self.process.collect());
        self.handle.render()
    }

    /// Drains histogram samples into their buckets so memory stays flat between scrapes.
    pub(crate) fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// `GET /metrics`, for a service's router.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let metrics = self.clone();
        Router::new().route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        metrics.render(),
                    )
                        .into_response()
                }
            }),
        )
    }
}

/// Help and units for the metrics whose conventions this crate owns.
fn describe_conventional_metrics() {
    describe_histogram!(
        crate::amqp::EVENT_LAG,
        Unit::Seconds,
        "From an event's commit to its consumer having handled it, by queue."
    );
    describe_counter!(
        crate::faults::INJECTED,
        "Faults struck, switched on at run time in /admin/faults, by kind."
    );
    describe_histogram!(
        crate::http_server::REQUEST_DURATION,
        Unit::Seconds,
        "Duration of HTTP requests served, by method, route template and status."
    );
    describe_gauge!(
        crate::http_server::ACTIVE_REQUESTS,
        "HTTP requests being served right now, by method."
    );
    describe_histogram!(
        crate::http_client::REQUEST_DURATION,
        Unit::Seconds,
        "Duration of outgoing HTTP requests, by method, peer and status."
    );
    describe_histogram!(
        crate::db::OPERATION_DURATION,
        Unit::Seconds,
        "Duration of database operations, by system, operation, collection and outcome."
    );
    describe_gauge!(
        crate::db::CONNECTIONS,
        "Connections of the database pool, by state (used, idle)."
    );
    describe_gauge!(
        crate::db::CONNECTIONS_MAX,
        "The most connections the database pool may open."
    );
    describe_gauge!(
        "build_info",
        "Always 1; its labels say which service and version this process runs, and which replica it is (service_instance_id, as in its traces)."
    );
    describe_counter!(
        crate::amqp::PUBLISHED_MESSAGES,
        "Messages published to the broker, by exchange, routing key and outcome."
    );
    describe_histogram!(
        crate::frontend::ACTION_DURATION,
        Unit::Seconds,
        "What a person waited for in the page, by action: from the click to the answer, or to the live feed's frame when the action waits for one (the page's relayed root spans)."
    );
    describe_gauge!(
        crate::amqp::OUTBOX_PENDING,
        "Events in the outbox not yet confirmed by the broker."
    );
    describe_gauge!(
        crate::amqp::OUTBOX_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest event not yet confirmed by the broker (0 when none waits)."
    );
    describe_gauge!(
        crate::amqp::CONSUMER_ACTIVE,
        "1 while the consumer of a queue is connected and consuming, 0 otherwise."
    );
    describe_histogram!(
        crate::rpc::CLIENT_DURATION,
        Unit::Seconds,
        "Duration of RPC calls made, by method and outcome (ok, error, timeout, unavailable)."
    );
    describe_histogram!(
        crate::rpc::SERVER_DURATION,
        Unit::Seconds,
        "Duration of RPC calls answered, by method and outcome (ok, error)."
    );
    describe_counter!(
        crate::rpc::LATE_REPLIES,
        "RPC replies that came after their caller gave up, discarded."
    );
    describe_counter!(
        crate::rpc::DROPPED_REQUESTS,
        "RPC requests that could not be answered (no reply_to or correlation_id), by reason."
    );
    describe_gauge!(
        crate::websocket::CONNECTIONS_ACTIVE,
        "WebSocket clients of the live feed connected right now."
    );
    describe_counter!(
        crate::websocket::FRAMES_SENT,
        "Live-feed frames sent, by event type."
    );
    describe_counter!(
        crate::websocket::CLIENTS_CLOSED,
        "Live-feed clients closed, by reason (client, slow, idle, too_large, unsupported, shutdown, error)."
    );
    describe_histogram!(
        crate::websocket::DELIVERY_LAG,
        Unit::Seconds,
        "From an event's occurred_at to its frame sent to a live-feed client."
    );
    describe_histogram!(
        crate::amqp::PROCESS_DURATION,
        Unit::Seconds,
        "Time to process one consumed message, by queue, routing key and outcome."
    );
}
