//! Stats: counters, gauges and histograms on atomics, and a registry that renders them.
//!
//! Handles are resolved once, when config is compiled (`registry.counter(...)` returns an
//! `Arc<Counter>` the request path keeps), never looked up by name per request. Each stat has
//! an Envoy name (`cluster.web.upstream_rq_total`) and a Prometheus form with the tag pulled
//! out as a label (`envoy_cluster_upstream_rq_total{envoy_cluster_name="web"}`), as Envoy's
//! `/stats/prometheus` does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Envoy's default histogram bucket bounds (milliseconds for timing stats).
pub const DEFAULT_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// A histogram with fixed buckets (Envoy's defaults).
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; DEFAULT_BUCKETS.len()],
    count: AtomicU64,
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one value (e.g. milliseconds).
    pub fn record(&self, v: u64) {
        let i = DEFAULT_BUCKETS.partition_point(|&b| b < v as f64);
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of values recorded.
    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    /// Cumulative counts per bucket bound (`le` semantics).
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        DEFAULT_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(&b, c)| {
                acc += c.load(Ordering::Relaxed);
                (b, acc)
            })
            .collect()
    }
}

/// The name of a stat: its Envoy form and its Prometheus form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatName {
    /// Envoy's dotted name, e.g. `cluster.web.upstream_rq_total`.
    pub envoy: String,
    /// Prometheus metric name, e.g. `envoy_cluster_upstream_rq_total`.
    pub prometheus: String,
    /// Prometheus labels.
    pub labels: Vec<(String, String)>,
}

impl StatName {
    /// A stat without a tag: `server.live` becomes `envoy_server_live`.
    pub fn plain(name: &str) -> Self {
        Self {
            envoy: name.to_owned(),
            prometheus: prom_name(&format!("envoy_{name}")),
            labels: Vec::new(),
        }
    }

    /// A cluster stat: `cluster.<cluster>.<stat>`.
    pub fn cluster(cluster: &str, stat: &str) -> Self {
        Self::tagged("cluster", "envoy_cluster_name", cluster, stat)
    }

    /// A TCP proxy stat: `tcp.<stat_prefix>.<stat>`.
    pub fn tcp(stat_prefix: &str, stat: &str) -> Self {
        Self::tagged("tcp", "envoy_tcp_prefix", stat_prefix, stat)
    }

    /// An HTTP connection manager stat: `http.<stat_prefix>.<stat>`.
    pub fn http(stat_prefix: &str, stat: &str) -> Self {
        Self::tagged("http", "envoy_http_conn_manager_prefix", stat_prefix, stat)
    }

    /// A listener stat: `listener.<address>.<stat>`.
    pub fn listener(address: &str, stat: &str) -> Self {
        Self::tagged("listener", "envoy_listener_address", address, stat)
    }

    /// A listener's per-worker stat: `listener.<address>.worker_<id>.<stat>`, in Prometheus
    /// `envoy_listener_worker_<stat>` with the worker id as a label.
    pub fn listener_worker(address: &str, worker: usize, stat: &str) -> Self {
        Self {
            envoy: format!("listener.{address}.worker_{worker}.{stat}"),
            prometheus: prom_name(&format!("envoy_listener_worker_{stat}")),
            labels: vec![
                ("envoy_listener_address".to_owned(), address.to_owned()),
                ("envoy_worker_id".to_owned(), worker.to_string()),
            ],
        }
    }

    /// `<scope>.<tag_value>.<stat>` with the tag value as a Prometheus label.
    pub fn tagged(scope: &str, label: &str, tag_value: &str, stat: &str) -> Self {
        Self {
            envoy: format!("{scope}.{tag_value}.{stat}"),
            prometheus: prom_name(&format!("envoy_{scope}_{stat}")),
            labels: vec![(label.to_owned(), tag_value.to_owned())],
        }
    }
}

fn prom_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A stat's value at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatValue {
    /// A counter.
    Counter(u64),
    /// A gauge.
    Gauge(i64),
    /// A histogram's count and sum.
    Histogram {
        /// Values recorded.
        count: u64,
        /// Their sum.
        sum: u64,
    },
}

impl StatValue {
    /// Whether the stat was never touched (zero counter, gauge or empty histogram); Envoy's
    /// `usedonly` leaves these out.
    pub fn is_zero(&self) -> bool {
        matches!(
            self,
            Self::Counter(0) | Self::Gauge(0) | Self::Histogram { count: 0, .. }
        )
    }
}

impl std::fmt::Display for StatValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Counter(v) => write!(f, "{v}"),
            Self::Gauge(v) => write!(f, "{v}"),
            Self::Histogram { count, sum } => write!(f, "count={count} sum={sum}"),
        }
    }
}

#[derive(Debug, Clone)]
enum Metric {
    Counter(Arc<Counter>),
    Gauge(Arc<Gauge>),
    Histogram(Arc<Histogram>),
}

/// The set of all stats, keyed by name. Registration takes a lock; updates do not.
#[derive(Debug, Default)]
pub struct Registry {
    metrics: Mutex<BTreeMap<StatName, Metric>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn get_or_insert(&self, name: StatName, make: impl FnOnce() -> Metric) -> Metric {
        let mut m = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(name).or_insert_with(make).clone()
    }

    /// The counter with this name, created at zero on first use.
    ///
    /// # Panics
    /// If the name is already registered as another kind of stat (a programming error).
    pub fn counter(&self, name: StatName) -> Arc<Counter> {
        match self.get_or_insert(name, || Metric::Counter(Arc::default())) {
            Metric::Counter(c) => c,
            other => panic!("stat registered twice with different kinds: {other:?}"),
        }
    }

    /// The gauge with this name, created at zero on first use.
    ///
    /// # Panics
    /// If the name is already registered as another kind of stat.
    pub fn gauge(&self, name: StatName) -> Arc<Gauge> {
        match self.get_or_insert(name, || Metric::Gauge(Arc::default())) {
            Metric::Gauge(g) => g,
            other => panic!("stat registered twice with different kinds: {other:?}"),
        }
    }

    /// The histogram with this name, created empty on first use.
    ///
    /// # Panics
    /// If the name is already registered as another kind of stat.
    pub fn histogram(&self, name: StatName) -> Arc<Histogram> {
        match self.get_or_insert(name, || Metric::Histogram(Arc::default())) {
            Metric::Histogram(h) => h,
            other => panic!("stat registered twice with different kinds: {other:?}"),
        }
    }

    /// Visits every stat in name order with its current value.
    pub fn for_each(&self, mut f: impl FnMut(&StatName, StatValue)) {
        let m = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
        for (n, v) in m.iter() {
            let value = match v {
                Metric::Counter(c) => StatValue::Counter(c.get()),
                Metric::Gauge(g) => StatValue::Gauge(g.get()),
                Metric::Histogram(h) => StatValue::Histogram {
                    count: h.count(),
                    sum: h.sum(),
                },
            };
            f(n, value);
        }
    }

    /// Envoy's `/stats` text: `name: value` per line, sorted by name.
    pub fn render_text(&self) -> String {
        let m = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<(String, String)> = m
            .iter()
            .map(|(n, v)| {
                let val = match v {
                    Metric::Counter(c) => c.get().to_string(),
                    Metric::Gauge(g) => g.get().to_string(),
                    Metric::Histogram(h) => format!("count={} sum={}", h.count(), h.sum()),
                };
                (n.envoy.clone(), val)
            })
            .collect();
        rows.sort();
        rows.into_iter()
            .map(|(n, v)| format!("{n}: {v}\n"))
            .collect()
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        self.render_prometheus_filtered(|_| true)
    }

    /// The Prometheus text of the stats whose Envoy name `keep` accepts.
    pub fn render_prometheus_filtered(&self, keep: impl Fn(&StatName) -> bool) -> String {
        let m = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_name: BTreeMap<&str, Vec<(&StatName, &Metric)>> = BTreeMap::new();
        for (n, v) in m.iter().filter(|(n, _)| keep(n)) {
            by_name
                .entry(n.prometheus.as_str())
                .or_default()
                .push((n, v));
        }
        let mut out = String::new();
        for (name, series) in by_name {
            let kind = match series[0].1 {
                Metric::Counter(_) => "counter",
                Metric::Gauge(_) => "gauge",
                Metric::Histogram(_) => "histogram",
            };
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (n, v) in series {
                match v {
                    Metric::Counter(c) => {
                        let _ = writeln!(out, "{name}{} {}", labels(&n.labels, None), c.get());
                    }
                    Metric::Gauge(g) => {
                        let _ = writeln!(out, "{name}{} {}", labels(&n.labels, None), g.get());
                    }
                    Metric::Histogram(h) => {
                        for (le, c) in h.cumulative() {
                            let le = format!("{le}");
                            let _ =
                                writeln!(out, "{name}_bucket{} {c}", labels(&n.labels, Some(&le)));
                        }
                        let l = labels(&n.labels, Some("+Inf"));
                        let _ = writeln!(out, "{name}_bucket{l} {}", h.count());
                        let l = labels(&n.labels, None);
                        let _ = writeln!(out, "{name}_sum{l} {}", h.sum());
                        let _ = writeln!(out, "{name}_count{l} {}", h.count());
                    }
                }
            }
        }
        out
    }
}

fn labels(l: &[(String, String)], le: Option<&str>) -> String {
    if l.is_empty() && le.is_none() {
        return String::new();
    }
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    format!("{{{}}}", parts.join(","))
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_share_state_and_render() {
        let r = Registry::new();
        let c = r.counter(StatName::cluster("web", "upstream_rq_total"));
        c.inc();
        r.counter(StatName::cluster("web", "upstream_rq_total"))
            .add(2);
        r.gauge(StatName::plain("server.live")).set(1);
        let h = r.histogram(StatName::cluster("web", "upstream_rq_time"));
        h.record(3);
        h.record(700);
        assert_eq!(c.get(), 3);
        let text = r.render_text();
        assert!(
            text.contains("cluster.web.upstream_rq_total: 3\n"),
            "{text}"
        );
        let prom = r.render_prometheus();
        assert!(prom.contains("# TYPE envoy_cluster_upstream_rq_total counter\n"));
        assert!(prom.contains("envoy_cluster_upstream_rq_total{envoy_cluster_name=\"web\"} 3\n"));
        assert!(prom.contains("envoy_server_live 1\n"));
        assert!(prom.contains(
            "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"5\"} 1\n"
        ));
        assert!(prom.contains(
            "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"+Inf\"} 2\n"
        ));
        assert!(
            prom.contains("envoy_cluster_upstream_rq_time_sum{envoy_cluster_name=\"web\"} 703\n")
        );
    }
}
