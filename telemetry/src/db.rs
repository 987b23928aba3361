//! Database and cache calls as CLIENT spans with the OpenTelemetry database attributes, measured
//! in `db_client_operation_duration_seconds`.
//!
//! A call site describes its statement once, as a constant [`DbOperation`]; the query text is the
//! parameterised statement, never values.

use std::future::Future;
use std::time::Instant;

use metrics::{gauge, histogram};
use tracing::field::Empty;
use tracing::{Instrument, Span};

pub(crate) const OPERATION_DURATION: &str = "db_client_operation_duration_seconds";
pub(crate) const CONNECTIONS: &str = "db_client_connection_count";
pub(crate) const CONNECTIONS_MAX: &str = "db_client_connection_max";

/// Records a connection pool's usage: connections `used` and `idle`, out of `max`.
pub fn record_pool_usage(system: &'static str, used: u32, idle: u32, max: u32) {
    gauge!(CONNECTIONS, "system" => system, "state" => "used").set(f64::from(used));
    gauge!(CONNECTIONS, "system" => system, "state" => "idle").set(f64::from(idle));
    gauge!(CONNECTIONS_MAX, "system" => system).set(f64::from(max));
}

/// One kind of database operation, e.g. `INSERT` into `users` on `postgresql`.
#[derive(Debug, Clone, Copy)]
pub struct DbOperation {
    /// `db.system.name`: `postgresql`, `redis`, ...
    pub system: &'static str,
    /// `db.operation.name`: `INSERT`, `SELECT`, `LPUSH`, ...
    pub operation: &'static str,
    /// `db.collection.name`: the table or key family.
    pub collection: &'static str,
    /// `db.query.text`: the statement with placeholders in place of values.
    pub query: &'static str,
}

impl DbOperation {
    /// The CLIENT span for one execution, a child of the current span, named
    /// `{operation} {collection}` (or just the operation, for `COMMIT` and the like).
    pub fn span(&self) -> Span {
        let name = if self.collection.is_empty() {
            self.operation.to_owned()
        } else {
            format!("{} {}", self.operation, self.collection)
        };
        let span = tracing::info_span!(
            "db operation",
            otel.name = name,
            otel.kind = "client",
            otel.status_code = Empty,
            db.system = self.system,
            db.system.name = self.system,
            db.operation.name = self.operation,
            db.collection.name = Empty,
            db.query.text = self.query,
            error.type = Empty,
            fault.injected = Empty,
        );
        if !self.collection.is_empty() {
            span.record("db.collection.name", self.collection);
        }
        span
    }

    /// Runs `operation` inside its span and records its duration and outcome. Outside any
    /// trace (a background poll, say) the call is measured but starts no trace of its own,
    /// so idle loops do not flood the trace store.
    pub async fn run<T, E, F>(&self, operation: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        let span = if Span::current().is_none() {
            Span::none()
        } else {
            self.span()
        };
        let started = Instant::now();
        let result = operation.instrument(span.clone()).await;
        let outcome = match &result {
            Ok(_) => "ok",
            // The error's text may quote values, so it stays out of the span.
            Err(_) => {
                crate::record_error(&span, "error");
                "error"
            }
        };
        histogram!(
            OPERATION_DURATION,
            "system" => self.system,
            "operation" => self.operation,
            "collection" => self.collection,
            "outcome" => outcome,
        )
        .record(started.elapsed().as_secs_f64());
        result
    }
}
