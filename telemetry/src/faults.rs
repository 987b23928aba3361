//! How a fault switched on at run time shows, wherever it strikes: `fault.injected=<kind>` on
//! the span it touched (a request, a database call, a delivery, an RPC answer, a Slack call), a
//! `fault injected` event on that span (which is a log line and record too), and
//! `faults_injected_total{service,kind}`.

use metrics::counter;

pub(crate) const INJECTED: &str = "faults_injected_total";

/// Marks the current span as struck by a fault of `kind`, and counts it.
pub fn injected(kind: &'static str) {
    let span = tracing::Span::current();
    span.record("fault.injected", kind);
    span.in_scope(|| tracing::warn!(fault.kind = kind, "fault injected"));
    counter!(INJECTED, "kind" => kind).increment(1);
}
