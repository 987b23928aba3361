//! Database and cache calls as CLIENT spans with the OpenTelemetry database attributes, measured
//! in `db_client_operation_duration_seconds`.
//!
//! A call site describes its statement once, as a constant [`DbOperation`]; the query text is the
//! parameterised statement, never values.

use std::future::Future;
use std::time::Instant;

use metrics::histogram;
use tracing::field::Empty;
use tracing::{Instrument, Span};

pub(crate) const OPERATION_DURATION: &str = "db_client_operation_duration_seconds";

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
    /// The CLIENT span for one execution, a child of the current span.
    pub fn span(&self) -> Span {
        tracing::info_span!(
            "db operation",
            otel.name = %format_args!("{} {}", self.operation, self.collection),
            otel.kind = "client",
            otel.status_code = Empty,
            db.system = self.system,
            db.system.name = self.system,
            db.operation.name = self.operation,
            db.collection.name = self.collection,
            db.query.text = self.query,
            error.type = Empty,
        )
    }

    /// Runs `operation` inside its span and records its duration and outcome.
    pub async fn run<T, E, F>(&self, operation: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        let span = self.span();
        let started = Instant::now();
        let result = operation.instrument(span.clone()).await;
        let outcome = match &result {
            Ok(_) => "ok",
            // The error's text may quote values, so it stays out of the span.
            Err(_) => {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", "error");
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
