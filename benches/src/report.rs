//! Latency and status counts of a load, merged across its connections, and the final table.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// What one connection saw; merged into the load's.
pub struct Tally {
    /// Microseconds per answered request.
    latency: Histogram<u64>,
    /// Status -> count; 0 for a request that got no answer.
    statuses: BTreeMap<u16, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            // 1 µs to 60 s, three significant digits.
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            statuses: BTreeMap::new(),
        }
    }
}

impl Tally {
    pub fn record(&mut self, status: u16, elapsed: Duration) {
        *self.statuses.entry(status).or_default() += 1;
        if status != 0 {
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            self.latency.saturating_record(micros.max(1));
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        self.latency.add(&other.latency).expect("same bounds");
        for (status, count) in &other.statuses {
            *self.statuses.entry(*status).or_default() += count;
        }
    }

    pub fn summary(&self, elapsed: Duration) -> Summary {
        let requests = self.statuses.values().sum::<u64>();
        let ms = |quantile: f64| self.latency.value_at_quantile(quantile) as f64 / 1000.0;
        Summary {
            requests,
            statuses: self
                .statuses
                .iter()
                .map(|(status, count)| (status.to_string(), *count))
                .collect(),
            seconds: elapsed.as_secs_f64(),
            throughput: requests as f64 / elapsed.as_secs_f64(),
            p50_ms: ms(0.50),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            max_ms: self.latency.max() as f64 / 1000.0,
        }
    }
}

/// The figures of a load, printed as a table and written as JSON for scripts.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub requests: u64,
    /// Status -> count ("0" for no answer).
    pub statuses: BTreeMap<String, u64>,
    pub seconds: f64,
    /// Requests per second.
    pub throughput: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(status, count)| match status.as_str() {
                "0" => format!("no answer: {count}"),
                _ => format!("{status}: {count}"),
            })
            .collect();
        writeln!(
            f,
            "  requests     {:>10}  ({})",
            self.requests,
            statuses.join(", ")
        )?;
        writeln!(f, "  duration     {:>10.1} s", self.seconds)?;
        writeln!(f, "  throughput   {:>10.1} req/s", self.throughput)?;
        writeln!(
            f,
            "  latency      p50 {:.2} ms   p95 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
            self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_tallies_count_every_request_and_rank_latencies() {
        let mut first = Tally::default();
        for ms in 1..=99 {
            first.record(201, Duration::from_millis(ms));
        }
        let mut second = Tally::default();
        second.record(201, Duration::from_millis(1000));
        second.record(0, Duration::from_secs(30));
        first.merge(&second);
        let summary = first.summary(Duration::from_secs(2));
        assert_eq!(summary.requests, 101);
        assert_eq!(summary.statuses["201"], 100);
        assert_eq!(summary.statuses["0"], 1);
        assert!((summary.throughput - 50.5).abs() < 1e-9);
        assert!((summary.p50_ms - 50.0).abs() < 0.1, "{}", summary.p50_ms);
        assert!(
            (summary.max_ms - 1000.0).abs() < 1.0,
            "unanswered requests have no latency"
        );
    }
}
