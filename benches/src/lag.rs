//! The event delivery lag of the measured requests only: slack-queue's
//! `messaging_event_delivery_lag_seconds` histogram read from its `/metrics` before and after,
//! and the quantiles of the difference. The histogram counts every event of the process's life,
//! so only the difference tells what the measured seconds' events waited.

use std::collections::BTreeMap;

const BUCKET: &str = "messaging_event_delivery_lag_seconds_bucket";

/// Cumulative bucket counts by upper bound (`+Inf` last), summed over every label set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram(Vec<(f64, f64)>);

impl Histogram {
    /// The lag histogram of a Prometheus text exposition (empty when it has none).
    pub fn parse(exposition: &str) -> Self {
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for line in exposition.lines() {
            let Some(rest) = line.strip_prefix(BUCKET) else {
                continue;
            };
            let Some((labels, count)) = rest.rsplit_once(' ') else {
                continue;
            };
            let Some(bound) = labels
                .split("le=\"")
                .nth(1)
                .and_then(|tail| tail.split('"').next())
                .and_then(|bound| match bound {
                    "+Inf" => Some(f64::INFINITY),
                    finite => finite.parse::<f64>().ok(),
                })
            else {
                continue;
            };
            let Ok(count) = count.trim().parse::<f64>() else {
                continue;
            };
            // Non-negative floats order as their bits do.
            buckets.entry(bound.to_bits()).or_insert((bound, 0.0)).1 += count;
        }
        Self(buckets.into_values().collect())
    }

    /// What was counted after `earlier`, bucket by bucket.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        Self(
            self.0
                .iter()
                .map(|&(bound, count)| {
                    let before = earlier
                        .0
                        .iter()
                        .find(|(earlier_bound, _)| *earlier_bound == bound)
                        .map_or(0.0, |(_, count)| *count);
                    (bound, count - before)
                })
                .collect(),
        )
    }

    /// Observations counted.
    pub fn count(&self) -> f64 {
        self.0.last().map_or(0.0, |(_, count)| *count)
    }

    /// The `q` quantile in seconds, interpolated inside its bucket as Prometheus's
    /// `histogram_quantile` does; `None` without observations. A quantile in the `+Inf` bucket is
    /// the largest finite bound: the lag was at least that.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for &(bound, count) in &self.0 {
            if count >= rank {
                if bound.is_infinite() {
                    return Some(lower);
                }
                let share = (rank - below) / (count - below).max(f64::MIN_POSITIVE);
                return Some(lower + (bound - lower) * share);
            }
            (lower, below) = (bound, count);
        }
        Some(lower)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(counts: [u32; 4]) -> String {
        let [a, b, c, inf] = counts;
        format!(
            "# TYPE messaging_event_delivery_lag_seconds histogram\n\
             messaging_event_delivery_lag_seconds_bucket{{queue=\"q\",le=\"0.01\"}} {a}\n\
             messaging_event_delivery_lag_seconds_bucket{{queue=\"q\",le=\"0.1\"}} {b}\n\
             messaging_event_delivery_lag_seconds_bucket{{queue=\"q\",le=\"1\"}} {c}\n\
             messaging_event_delivery_lag_seconds_bucket{{queue=\"q\",le=\"+Inf\"}} {inf}\n\
             messaging_event_delivery_lag_seconds_count{{queue=\"q\"}} {inf}\n\
             http_server_requests_total 7\n"
        )
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let lag = Histogram::parse(&exposition([50, 90, 100, 100]));
        assert_eq!(lag.count(), 100.0);
        assert!((lag.quantile(0.5).unwrap() - 0.01).abs() < 1e-9);
        // The 99th of 100 lies in (0.1, 1]: 9 of its 10 observations below it.
        assert!((lag.quantile(0.99).unwrap() - 0.91).abs() < 1e-9);
    }

    #[test]
    fn the_difference_counts_only_what_came_after() {
        let before = Histogram::parse(&exposition([1000, 1000, 1000, 1000]));
        let after = Histogram::parse(&exposition([1000, 1000, 1000, 1010]));
        let measured = after.since(&before);
        assert_eq!(measured.count(), 10.0);
        // Everything measured was over the largest bound: at least 1 s.
        assert_eq!(measured.quantile(0.5), Some(1.0));
        assert_eq!(Histogram::parse("").quantile(0.5), None);
        assert_eq!(before.since(&before).quantile(0.99), None);
    }
}
