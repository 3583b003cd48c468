//! Metrics in the Prometheus text exposition format (version 0.0.4), built
//! at scrape time from counters the services keep: no registry, no
//! allocation on the request path beyond a map entry per new (operation,
//! status) pair.

use alloc::collections::BTreeMap;
use alloc::string::String;
use core::fmt::Write;

use spin::Mutex;

/// Upper bounds of the latency buckets, in milliseconds.
pub const LATENCY_BUCKETS_MS: [u64; 13] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative here).
    buckets: [u64; LATENCY_BUCKETS_MS.len()],
    count: u64,
    sum_ms: u64,
}

impl Histogram {
    pub fn observe(&mut self, ms: u64) {
        if let Some(i) = LATENCY_BUCKETS_MS.iter().position(|&bound| ms <= bound) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_ms += ms;
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Requests by operation and status, and latency by operation.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    by_status: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
}

impl RequestMetrics {
    pub fn record(&self, operation: &'static str, status: u16, ms: u64) {
        *self.by_status.lock().entry((operation, status)).or_default() += 1;
        self.latency.lock().entry(operation).or_default().observe(ms);
    }

    /// Responses with a 4xx and with a 5xx status.
    pub fn errors(&self) -> (u64, u64) {
        let by_status = self.by_status.lock();
        let sum = |range: core::ops::Range<u16>| {
            by_status.iter().filter(|((_, status), _)| range.contains(status)).map(|(_, count)| count).sum()
        };
        (sum(400..500), sum(500..600))
    }

    pub fn write(&self, out: &mut Exposition) {
        out.family("rustcore_s3_requests_total", "counter", "S3 requests by operation and HTTP status.");
        for ((operation, status), count) in self.by_status.lock().iter() {
            let status = alloc::format!("{status}");
            out.sample("rustcore_s3_requests_total", &[("op", operation), ("status", &status)], *count);
        }
        out.family("rustcore_s3_request_duration_seconds", "histogram", "S3 request latency by operation.");
        for (operation, histogram) in self.latency.lock().iter() {
            let mut cumulative = 0;
            for (bound, count) in LATENCY_BUCKETS_MS.iter().zip(histogram.buckets) {
                cumulative += count;
                let le = alloc::format!("{}", *bound as f64 / 1000.0);
                out.sample(
                    "rustcore_s3_request_duration_seconds_bucket",
                    &[("op", operation), ("le", &le)],
                    cumulative,
                );
            }
            let op = [("op", *operation)];
            out.sample(
                "rustcore_s3_request_duration_seconds_bucket",
                &[("op", operation), ("le", "+Inf")],
                histogram.count,
            );
            out.sample_f("rustcore_s3_request_duration_seconds_sum", &op, histogram.sum_ms as f64 / 1000.0);
            out.sample("rustcore_s3_request_duration_seconds_count", &op, histogram.count);
        }
    }
}

/// The text being built.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// `# HELP` and `# TYPE` of a metric family, once before its samples.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"");
                for c in value.chars() {
                    match c {
                        '\\' => self.text.push_str("\\\\"),
                        '"' => self.text.push_str("\\\""),
                        '\n' => self.text.push_str("\\n"),
                        c => self.text.push(c),
                    }
                }
                self.text.push('"');
            }
            self.text.push('}');
        }
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.labels(name, labels);
        let _ = writeln!(self.text, " {value}");
    }

    pub fn sample_f(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.labels(name, labels);
        let _ = writeln!(self.text, " {value}");
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_is_prometheus_text() {
        let metrics = RequestMetrics::default();
        metrics.record("GetObject", 200, 3);
        metrics.record("GetObject", 200, 700);
        metrics.record("GetObject", 404, 1);
        let mut out = Exposition::new();
        metrics.write(&mut out);
        out.single("rustcore_heap_bytes_in_use", "gauge", "Heap bytes in use.", 42);
        let text = out.into_text();
        assert!(text.contains("rustcore_s3_requests_total{op=\"GetObject\",status=\"200\"} 2\n"), "{text}");
        assert!(text.contains("rustcore_s3_requests_total{op=\"GetObject\",status=\"404\"} 1\n"));
        assert!(
            text.contains("rustcore_s3_request_duration_seconds_bucket{op=\"GetObject\",le=\"0.005\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("rustcore_s3_request_duration_seconds_bucket{op=\"GetObject\",le=\"1\"} 3\n"));
        assert!(text.contains("rustcore_s3_request_duration_seconds_bucket{op=\"GetObject\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("rustcore_s3_request_duration_seconds_sum{op=\"GetObject\"} 0.704\n"));
        assert!(text.contains("# TYPE rustcore_heap_bytes_in_use gauge\nrustcore_heap_bytes_in_use 42\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::new();
        out.sample("m", &[("bucket", "a\"b\\c\nd")], 1);
        assert_eq!(out.into_text(), "m{bucket=\"a\\\"b\\\\c\\nd\"} 1\n");
    }
}
