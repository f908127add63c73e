//! Circuit breakers (SEMANTICS.md §5): per cluster and routing priority, limits on
//! connections, pending requests, active requests and active retries.
//!
//! Each admission returns a [`Permit`] that holds one slot and gives it back when dropped, so
//! a slot can never leak, whatever path the request takes. Counts are atomics and admission is
//! a compare-and-swap loop: no lock, and a limit is never exceeded even under contention. An
//! overflow reports its [`Overflow`] reason and bumps Envoy's counter.
//!
//! ```
//! # use mesh_core::config::{Cluster, RoutingPriority};
//! let mut cluster = Cluster::new_static("web", []);
//! cluster.circuit_breakers.thresholds.push(mesh_core::config::Thresholds { max_requests: 1, ..Default::default() });
//! let breakers = mesh_lb::breaker::CircuitBreakers::new(&cluster, None);
//! let limits = breakers.for_priority(RoutingPriority::Default);
//! let permit = limits.try_request().unwrap();
//! assert_eq!(limits.try_request().unwrap_err(), mesh_lb::breaker::Overflow::Requests);
//! drop(permit);
//! assert!(limits.try_request().is_ok());
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mesh_core::config::{Cluster, RetryBudget, RoutingPriority, Thresholds};
use mesh_core::stats::{Counter, Gauge, Registry, StatName};

/// Why an admission was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Overflow {
    /// `max_connections` reached (`upstream_cx_overflow`).
    #[error("max_connections reached")]
    Connections,
    /// `max_pending_requests` reached (`upstream_rq_pending_overflow`).
    #[error("max_pending_requests reached")]
    PendingRequests,
    /// `max_requests` reached (counted as `upstream_rq_pending_overflow`, as Envoy's docs say).
    #[error("max_requests reached")]
    Requests,
    /// `max_retries` or the retry budget reached (`upstream_rq_retry_overflow`).
    #[error("max_retries reached")]
    Retries,
}

/// The resource a [`Permit`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// One upstream connection.
    Connection,
    /// One request waiting for a connection.
    PendingRequest,
    /// One active request.
    Request,
    /// One active retry.
    Retry,
}

#[derive(Debug)]
struct Stats {
    cx_overflow: Arc<Counter>,
    rq_pending_overflow: Arc<Counter>,
    rq_retry_overflow: Arc<Counter>,
    /// Requests waiting for a connection now (`upstream_rq_pending_active`).
    rq_pending_active: Arc<Gauge>,
    /// Requests that ever waited for a connection (`upstream_rq_pending_total`).
    rq_pending_total: Arc<Counter>,
}

/// Envoy's per-priority breaker gauges, `circuit_breakers.<priority>.*`: whether each
/// resource is at its limit (`cx_open`, `rq_pending_open`, `rq_open`, `rq_retry_open`) and
/// how many slots are left (`remaining_cx`, `remaining_pending`, `remaining_rq`,
/// `remaining_retries`).
#[derive(Debug, Default)]
struct Gauges {
    open: [Arc<Gauge>; 4],
    remaining: [Arc<Gauge>; 4],
}

impl Gauges {
    fn new(registry: Option<&Registry>, cluster: &str, priority: RoutingPriority) -> Self {
        let Some(r) = registry else {
            return Self::default();
        };
        let p = match priority {
            RoutingPriority::Default => "default",
            RoutingPriority::High => "high",
        };
        let g = |s: &str| {
            r.gauge(StatName::cluster(
                cluster,
                &format!("circuit_breakers.{p}.{s}"),
            ))
        };
        Self {
            open: ["cx_open", "rq_pending_open", "rq_open", "rq_retry_open"].map(g),
            remaining: [
                "remaining_cx",
                "remaining_pending",
                "remaining_rq",
                "remaining_retries",
            ]
            .map(g),
        }
    }
}

fn index(r: Resource) -> usize {
    match r {
        Resource::Connection => 0,
        Resource::PendingRequest => 1,
        Resource::Request => 2,
        Resource::Retry => 3,
    }
}

/// The breakers of one cluster: one [`Limits`] per routing priority.
#[derive(Debug)]
pub struct CircuitBreakers {
    default: Arc<Limits>,
    high: Arc<Limits>,
}

impl CircuitBreakers {
    /// Breakers with the cluster's thresholds (first entry per priority, else Envoy's
    /// defaults 1024/1024/1024/3). Overflow counters are registered when `registry` is given.
    pub fn new(cluster: &Cluster, registry: Option<&Registry>) -> Self {
        Self::carry_over(cluster, registry, None)
    }

    /// Breakers for `cluster` replacing `previous` (a config update): a priority whose
    /// thresholds did not change keeps its [`Limits`], live counts and all, so in-flight
    /// requests and connections still count against the limit; changed thresholds start
    /// fresh counts.
    pub fn carry_over(
        cluster: &Cluster,
        registry: Option<&Registry>,
        previous: Option<&CircuitBreakers>,
    ) -> Self {
        let counter = |s: &str| match registry {
            Some(r) => r.counter(StatName::cluster(&cluster.name, s)),
            None => Arc::default(),
        };
        let stats = Arc::new(Stats {
            cx_overflow: counter("upstream_cx_overflow"),
            rq_pending_overflow: counter("upstream_rq_pending_overflow"),
            rq_retry_overflow: counter("upstream_rq_retry_overflow"),
            rq_pending_active: match registry {
                Some(r) => r.gauge(StatName::cluster(
                    &cluster.name,
                    "upstream_rq_pending_active",
                )),
                None => Arc::default(),
            },
            rq_pending_total: counter("upstream_rq_pending_total"),
        });
        let limits = |p| {
            let t = cluster.thresholds(p);
            match previous.map(|b| b.for_priority(p)) {
                Some(old) if old.thresholds == t => Arc::clone(old),
                _ => {
                    let gauges = Gauges::new(registry, &cluster.name, p);
                    let l = Arc::new(Limits::new(&t, Arc::clone(&stats), gauges));
                    for r in [
                        Resource::Connection,
                        Resource::PendingRequest,
                        Resource::Request,
                        Resource::Retry,
                    ] {
                        l.update_gauges(r);
                    }
                    l
                }
            }
        };
        Self {
            default: limits(RoutingPriority::Default),
            high: limits(RoutingPriority::High),
        }
    }

    /// The limits of a routing priority.
    pub fn for_priority(&self, priority: RoutingPriority) -> &Arc<Limits> {
        match priority {
            RoutingPriority::Default => &self.default,
            RoutingPriority::High => &self.high,
        }
    }
}

#[derive(Debug)]
struct Slot {
    max: u64,
    current: AtomicU64,
}

impl Slot {
    fn new(max: u32) -> Self {
        Self {
            max: u64::from(max),
            current: AtomicU64::new(0),
        }
    }

    fn try_acquire(&self, max: u64) -> bool {
        self.current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c < max).then_some(c + 1)
            })
            .is_ok()
    }
}

/// The limits and live counts of one cluster and routing priority.
#[derive(Debug)]
pub struct Limits {
    connections: Slot,
    pending: Slot,
    requests: Slot,
    retries: Slot,
    retry_budget: Option<RetryBudget>,
    stats: Arc<Stats>,
    gauges: Gauges,
    thresholds: Thresholds,
}

impl Limits {
    fn new(t: &Thresholds, stats: Arc<Stats>, gauges: Gauges) -> Self {
        Self {
            thresholds: t.clone(),
            connections: Slot::new(t.max_connections),
            pending: Slot::new(t.max_pending_requests),
            requests: Slot::new(t.max_requests),
            retries: Slot::new(t.max_retries),
            retry_budget: t.retry_budget,
            stats,
            gauges,
        }
    }

    /// Sets the open and remaining gauges of `r` from its live count.
    fn update_gauges(&self, r: Resource) {
        let (max, current) = (self.max(r), self.current(r));
        let i = index(r);
        self.gauges.open[i].set(i64::from(current >= max));
        self.gauges.remaining[i]
            .set(i64::try_from(max.saturating_sub(current)).unwrap_or(i64::MAX));
    }

    fn slot(&self, r: Resource) -> &Slot {
        match r {
            Resource::Connection => &self.connections,
            Resource::PendingRequest => &self.pending,
            Resource::Request => &self.requests,
            Resource::Retry => &self.retries,
        }
    }

    /// The limit for a resource now. With a retry budget the retry limit is
    /// `max(min_retry_concurrency, budget_percent / 100 × (active + pending requests))`.
    pub fn max(&self, r: Resource) -> u64 {
        match (r, &self.retry_budget) {
            (Resource::Retry, Some(b)) => {
                let active = self.requests.current.load(Ordering::Acquire)
                    + self.pending.current.load(Ordering::Acquire);
                ((b.budget_percent / 100.0 * active as f64) as u64)
                    .max(u64::from(b.min_retry_concurrency))
            }
            _ => self.slot(r).max,
        }
    }

    /// Slots of a resource in use.
    pub fn current(&self, r: Resource) -> u64 {
        self.slot(r).current.load(Ordering::Acquire)
    }

    /// Slots of a resource left (Envoy's `remaining_*` gauges).
    pub fn remaining(&self, r: Resource) -> u64 {
        self.max(r).saturating_sub(self.current(r))
    }

    /// Takes a slot of `r`.
    ///
    /// # Errors
    /// The [`Overflow`] for `r` when its limit is reached; the matching counter is bumped.
    pub fn try_acquire(self: &Arc<Self>, r: Resource) -> Result<Permit, Overflow> {
        if self.slot(r).try_acquire(self.max(r)) {
            if r == Resource::PendingRequest {
                self.stats.rq_pending_active.inc();
                self.stats.rq_pending_total.inc();
            }
            self.update_gauges(r);
            return Ok(Permit {
                limits: Arc::clone(self),
                resource: r,
            });
        }
        Err(match r {
            Resource::Connection => {
                self.stats.cx_overflow.inc();
                Overflow::Connections
            }
            Resource::PendingRequest => {
                self.stats.rq_pending_overflow.inc();
                Overflow::PendingRequests
            }
            Resource::Request => {
                self.stats.rq_pending_overflow.inc();
                Overflow::Requests
            }
            Resource::Retry => {
                self.stats.rq_retry_overflow.inc();
                Overflow::Retries
            }
        })
    }

    /// Takes a connection slot.
    ///
    /// # Errors
    /// [`Overflow::Connections`].
    pub fn try_connection(self: &Arc<Self>) -> Result<Permit, Overflow> {
        self.try_acquire(Resource::Connection)
    }

    /// Takes a pending-request slot.
    ///
    /// # Errors
    /// [`Overflow::PendingRequests`].
    pub fn try_pending(self: &Arc<Self>) -> Result<Permit, Overflow> {
        self.try_acquire(Resource::PendingRequest)
    }

    /// Takes an active-request slot.
    ///
    /// # Errors
    /// [`Overflow::Requests`].
    pub fn try_request(self: &Arc<Self>) -> Result<Permit, Overflow> {
        self.try_acquire(Resource::Request)
    }

    /// Takes an active-retry slot.
    ///
    /// # Errors
    /// [`Overflow::Retries`].
    pub fn try_retry(self: &Arc<Self>) -> Result<Permit, Overflow> {
        self.try_acquire(Resource::Retry)
    }
}

/// One slot of a breaker resource, returned when dropped.
#[derive(Debug)]
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct Permit {
    limits: Arc<Limits>,
    resource: Resource,
}

impl Permit {
    /// The resource held.
    pub fn resource(&self) -> Resource {
        self.resource
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits
            .slot(self.resource)
            .current
            .fetch_sub(1, Ordering::AcqRel);
        if self.resource == Resource::PendingRequest {
            self.limits.stats.rq_pending_active.dec();
        }
        self.limits.update_gauges(self.resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(t: Thresholds, registry: Option<&Registry>) -> Arc<Limits> {
        let mut c = Cluster::new_static("c", []);
        c.circuit_breakers.thresholds.push(t);
        Arc::clone(CircuitBreakers::new(&c, registry).for_priority(RoutingPriority::Default))
    }

    /// Regression (issue #11): the gauges and counter Istio's circuit-breaking task reads.
    #[test]
    fn open_and_remaining_gauges_and_pending_total() {
        let registry = Registry::new();
        let l = limits(
            Thresholds {
                max_pending_requests: 1,
                max_connections: 2,
                ..Default::default()
            },
            Some(&registry),
        );
        let gauge = |s: &str| {
            registry
                .gauge(StatName::cluster(
                    "c",
                    &format!("circuit_breakers.default.{s}"),
                ))
                .get()
        };
        assert_eq!(
            (gauge("rq_pending_open"), gauge("remaining_pending")),
            (0, 1)
        );
        assert_eq!((gauge("cx_open"), gauge("remaining_cx")), (0, 2));
        assert_eq!(gauge("remaining_rq"), 1024);
        assert_eq!(gauge("remaining_retries"), 3);
        let p = l.try_pending().unwrap();
        assert_eq!(
            (gauge("rq_pending_open"), gauge("remaining_pending")),
            (1, 0)
        );
        let c1 = l.try_connection().unwrap();
        let c2 = l.try_connection().unwrap();
        assert_eq!((gauge("cx_open"), gauge("remaining_cx")), (1, 0));
        drop((p, c1, c2));
        assert_eq!(
            (gauge("rq_pending_open"), gauge("remaining_pending")),
            (0, 1)
        );
        assert_eq!((gauge("cx_open"), gauge("remaining_cx")), (0, 2));
        let _p = l.try_pending().unwrap();
        assert_eq!(
            registry
                .counter(StatName::cluster("c", "upstream_rq_pending_total"))
                .get(),
            2
        );
    }

    #[test]
    fn defaults_and_priorities() {
        let mut c = Cluster::new_static("c", []);
        c.circuit_breakers.thresholds.push(Thresholds {
            priority: RoutingPriority::High,
            max_retries: 9,
            ..Default::default()
        });
        let b = CircuitBreakers::new(&c, None);
        assert_eq!(
            b.for_priority(RoutingPriority::Default)
                .max(Resource::Retry),
            3
        );
        assert_eq!(
            b.for_priority(RoutingPriority::Default)
                .max(Resource::Connection),
            1024
        );
        assert_eq!(
            b.for_priority(RoutingPriority::High).max(Resource::Retry),
            9
        );
    }

    #[test]
    fn overflow_counts_by_reason() {
        let r = Registry::new();
        let l = limits(
            Thresholds {
                max_connections: 1,
                max_pending_requests: 1,
                max_requests: 1,
                max_retries: 1,
                ..Default::default()
            },
            Some(&r),
        );
        let _held: Vec<_> = [
            Resource::Connection,
            Resource::PendingRequest,
            Resource::Request,
            Resource::Retry,
        ]
        .into_iter()
        .map(|x| l.try_acquire(x).unwrap())
        .collect();
        assert_eq!(l.try_connection().unwrap_err(), Overflow::Connections);
        assert_eq!(l.try_pending().unwrap_err(), Overflow::PendingRequests);
        assert_eq!(l.try_request().unwrap_err(), Overflow::Requests);
        assert_eq!(l.try_retry().unwrap_err(), Overflow::Retries);
        let t = r.render_text();
        assert!(t.contains("cluster.c.upstream_cx_overflow: 1"), "{t}");
        assert!(
            t.contains("cluster.c.upstream_rq_pending_overflow: 2"),
            "{t}"
        );
        assert!(t.contains("cluster.c.upstream_rq_retry_overflow: 1"), "{t}");
    }

    #[test]
    fn retry_budget() {
        let l = limits(
            Thresholds {
                retry_budget: Some(RetryBudget {
                    budget_percent: 20.0,
                    min_retry_concurrency: 3,
                }),
                ..Default::default()
            },
            None,
        );
        assert_eq!(l.max(Resource::Retry), 3);
        let _rq: Vec<_> = (0..20).map(|_| l.try_request().unwrap()).collect();
        let _pending: Vec<_> = (0..5).map(|_| l.try_pending().unwrap()).collect();
        assert_eq!(l.max(Resource::Retry), 5);
        let _r: Vec<_> = (0..5).map(|_| l.try_retry().unwrap()).collect();
        assert_eq!(l.try_retry().unwrap_err(), Overflow::Retries);
    }

    #[test]
    fn pending_requests_are_a_gauge() {
        let registry = Registry::new();
        let l = limits(
            Thresholds {
                max_pending_requests: 2,
                ..Default::default()
            },
            Some(&registry),
        );
        let gauge = registry.gauge(StatName::cluster("c", "upstream_rq_pending_active"));
        let a = l.try_pending().unwrap();
        let b = l.try_pending().unwrap();
        assert!(l.try_pending().is_err());
        assert_eq!(gauge.get(), 2, "an overflow is not pending");
        drop(a);
        assert_eq!(gauge.get(), 1);
        drop(b);
        assert_eq!(gauge.get(), 0);
        let _r = l.try_request().unwrap();
        assert_eq!(gauge.get(), 0, "only pending requests count");
    }

    #[test]
    fn hammered_from_threads_never_exceeds_or_leaks() {
        let l = limits(
            Thresholds {
                max_requests: 7,
                ..Default::default()
            },
            None,
        );
        let peak = AtomicU64::new(0);
        let granted = AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (l, peak, granted) = (&l, &peak, &granted);
                s.spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..20_000u64 {
                        if let Ok(p) = l.try_request() {
                            granted.fetch_add(1, Ordering::Relaxed);
                            peak.fetch_max(l.current(Resource::Request), Ordering::Relaxed);
                            held.push(p);
                        }
                        // Release in a thread-dependent rhythm, sometimes all at once.
                        if (i + t) % 3 == 0 {
                            held.pop();
                        }
                        if i % 97 == 0 {
                            held.clear();
                        }
                    }
                });
            }
        });
        assert!(peak.load(Ordering::Relaxed) <= 7);
        assert!(granted.load(Ordering::Relaxed) > 1000);
        assert_eq!(l.current(Resource::Request), 0, "every slot came back");
    }
}
