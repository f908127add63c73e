//! Outlier detection, passive health checking (SEMANTICS.md §6; Envoy
//! `outlier_detection_impl.cc`).
//!
//! The proxy reports each attempt's [`Outcome`] with [`OutlierDetector::report`] and calls
//! [`OutlierDetector::sweep`] every `interval`; both take `now`, a monotonic
//! [`Duration`] since any fixed origin, so tests drive time by hand.
//!
//! - Consecutive 5xx, consecutive gateway failure (502/503/504) and, with
//!   `split_external_local_origin_errors`, consecutive local-origin failure eject inline when a
//!   counter reaches its threshold.
//! - Success rate and failure percentage are evaluated at each sweep over the last interval's
//!   counts (hosts with enough volume, enough such hosts).
//! - An ejection is allowed while `100 × ejected / hosts < max_ejection_percent`, then
//!   enforced when a draw from the injected [`Random`] falls under the type's `enforcing_*`
//!   percentage (else only "detected").
//! - Ejection time is `min(base_ejection_time × backoff, max(max_ejection_time, base))`;
//!   `backoff` grows by one per ejection while `backoff × base < max + base` and shrinks by
//!   one at each sweep at least an interval after the host came back. Hosts come back at the
//!   first sweep after their time is up, with their consecutive counters reset.
//!
//! Ejection sets [`HealthFlag::FailedOutlierCheck`], which the balancers see at their next
//! pick. Reports take no lock unless a consecutive counter fires; sweeps lock the ejection
//! bookkeeping.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_core::config::OutlierDetection;
use mesh_core::stats::{Counter, Gauge, Registry, StatName};

use crate::health::HealthFlag;
use crate::{Host, Random};

/// What happened to one attempt on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status.
    Http(u16),
    /// Connecting failed or the connection was reset (not for breaker overflow).
    ConnectFailed,
    /// The attempt timed out.
    Timeout,
    /// The connection was established (the response is reported separately).
    ConnectSuccess,
}

/// Why a host was ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EjectionType {
    /// `consecutive_5xx`.
    Consecutive5xx,
    /// `consecutive_gateway_failure`.
    ConsecutiveGatewayFailure,
    /// `consecutive_local_origin_failure`.
    ConsecutiveLocalOriginFailure,
    /// Success rate (external origin).
    SuccessRate,
    /// Failure percentage (external origin).
    FailurePercentage,
    /// Success rate (local origin, split mode).
    SuccessRateLocalOrigin,
    /// Failure percentage (local origin, split mode).
    FailurePercentageLocalOrigin,
}

const TYPES: [EjectionType; 7] = [
    EjectionType::Consecutive5xx,
    EjectionType::ConsecutiveGatewayFailure,
    EjectionType::ConsecutiveLocalOriginFailure,
    EjectionType::SuccessRate,
    EjectionType::FailurePercentage,
    EjectionType::SuccessRateLocalOrigin,
    EjectionType::FailurePercentageLocalOrigin,
];

impl EjectionType {
    /// Envoy's stat suffix (`ejections_enforced_<suffix>`).
    pub const fn stat_suffix(self) -> &'static str {
        match self {
            Self::Consecutive5xx => "consecutive_5xx",
            Self::ConsecutiveGatewayFailure => "consecutive_gateway_failure",
            Self::ConsecutiveLocalOriginFailure => "consecutive_local_origin_failure",
            Self::SuccessRate => "success_rate",
            Self::FailurePercentage => "failure_percentage",
            Self::SuccessRateLocalOrigin => "local_origin_success_rate",
            Self::FailurePercentageLocalOrigin => "local_origin_failure_percentage",
        }
    }

    fn index(self) -> usize {
        TYPES.iter().position(|&t| t == self).unwrap_or(0)
    }
}

#[derive(Debug, Default)]
struct Monitor {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local: AtomicU32,
    ext_total: AtomicU64,
    ext_success: AtomicU64,
    local_total: AtomicU64,
    local_success: AtomicU64,
}

impl Monitor {
    fn copy_from(&self, other: &Monitor) {
        let c = |to: &AtomicU32, from: &AtomicU32| {
            to.store(from.load(Ordering::Relaxed), Ordering::Relaxed)
        };
        let c64 = |to: &AtomicU64, from: &AtomicU64| {
            to.store(from.load(Ordering::Relaxed), Ordering::Relaxed)
        };
        c(&self.consecutive_5xx, &other.consecutive_5xx);
        c(&self.consecutive_gateway, &other.consecutive_gateway);
        c(&self.consecutive_local, &other.consecutive_local);
        c64(&self.ext_total, &other.ext_total);
        c64(&self.ext_success, &other.ext_success);
        c64(&self.local_total, &other.local_total);
        c64(&self.local_success, &other.local_success);
    }

    fn reset_consecutive(&self) {
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
        self.consecutive_local.store(0, Ordering::Relaxed);
    }
}

#[derive(Debug, Default, Clone)]
struct Ejection {
    ejected_at: Option<Duration>,
    last_unejected: Option<Duration>,
    backoff: u32,
    times: u32,
}

#[derive(Debug)]
struct Stats {
    active: Arc<Gauge>,
    enforced_total: Arc<Counter>,
    overflow: Arc<Counter>,
    enforced: Vec<Arc<Counter>>,
    detected: Vec<Arc<Counter>>,
}

/// A host's outlier bookkeeping, for inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostOutlierState {
    /// Whether the host is ejected now.
    pub ejected: bool,
    /// Current backoff multiplier.
    pub backoff: u32,
    /// Ejections so far.
    pub times_ejected: u32,
}

/// Outlier detection for the hosts of one cluster.
#[derive(Debug)]
pub struct OutlierDetector {
    config: OutlierDetection,
    hosts: Vec<Arc<Host>>,
    monitors: Vec<Monitor>,
    ejections: Mutex<Vec<Ejection>>,
    random: Arc<dyn Random>,
    stats: Stats,
}

/// Envoy's defaults for settings the config model does not carry yet.
const ENFORCING_LOCAL_ORIGIN_SUCCESS_RATE: u32 = 100;
const ENFORCING_FAILURE_PERCENTAGE_LOCAL_ORIGIN: u32 = 0;

impl OutlierDetector {
    /// A detector over `hosts` (their positions are the indexes [`OutlierDetector::report`]
    /// takes). Stats are registered under `cluster.<cluster>.outlier_detection.` when a
    /// registry is given.
    pub fn new(
        config: OutlierDetection,
        hosts: Vec<Arc<Host>>,
        random: Arc<dyn Random>,
        registry: Option<&Registry>,
        cluster: &str,
    ) -> Self {
        let name = |s: &str| StatName::cluster(cluster, &format!("outlier_detection.{s}"));
        let counter = |s: &str| match registry {
            Some(r) => r.counter(name(s)),
            None => Arc::default(),
        };
        let stats = Stats {
            active: match registry {
                Some(r) => r.gauge(name("ejections_active")),
                None => Arc::default(),
            },
            enforced_total: counter("ejections_enforced_total"),
            overflow: counter("ejections_overflow"),
            enforced: TYPES
                .iter()
                .map(|t| counter(&format!("ejections_enforced_{}", t.stat_suffix())))
                .collect(),
            detected: TYPES
                .iter()
                .map(|t| counter(&format!("ejections_detected_{}", t.stat_suffix())))
                .collect(),
        };
        let n = hosts.len();
        Self {
            config,
            monitors: (0..n).map(|_| Monitor::default()).collect(),
            ejections: Mutex::new(vec![Ejection::default(); n]),
            hosts,
            random,
            stats,
        }
    }

    /// Takes over the state of hosts that stayed across a config update: `kept` pairs each
    /// host's index in `previous` with its index here. Consecutive counters, success-rate
    /// accumulators, ejection times and backoff carry over, so an ejected host is un-ejected
    /// on schedule rather than stuck.
    pub fn carry_over(&self, previous: &OutlierDetector, kept: &[(usize, usize)]) {
        let old = previous.lock().clone();
        let mut new = self.lock();
        for &(from, to) in kept {
            let (Some(m_from), Some(m_to)) = (previous.monitors.get(from), self.monitors.get(to))
            else {
                continue;
            };
            m_to.copy_from(m_from);
            if let (Some(e), Some(slot)) = (old.get(from), new.get_mut(to)) {
                *slot = e.clone();
            }
        }
        let active = new.iter().filter(|e| e.ejected_at.is_some()).count();
        self.stats
            .active
            .set(i64::try_from(active).unwrap_or(i64::MAX));
    }

    /// The settings.
    pub fn config(&self) -> &OutlierDetection {
        &self.config
    }

    /// The state of host `index`.
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn host_state(&self, index: usize) -> HostOutlierState {
        let e = &self.lock()[index];
        HostOutlierState {
            ejected: e.ejected_at.is_some(),
            backoff: e.backoff,
            times_ejected: e.times,
        }
    }

    /// Hosts ejected now.
    pub fn ejected_count(&self) -> usize {
        self.lock()
            .iter()
            .filter(|e| e.ejected_at.is_some())
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Ejection>> {
        self.ejections.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reports an attempt's outcome on host `index` (an index into the hosts the detector was
    /// built with; out-of-range indexes are ignored).
    pub fn report(&self, index: usize, outcome: Outcome, now: Duration) {
        let Some(m) = self.monitors.get(index) else {
            return;
        };
        if self.config.split_external_local_origin_errors {
            match outcome {
                Outcome::Http(code) => self.put_http(index, m, code, now),
                Outcome::ConnectFailed | Outcome::Timeout => {
                    m.local_total.fetch_add(1, Ordering::Relaxed);
                    let c = m.consecutive_local.fetch_add(1, Ordering::AcqRel) + 1;
                    if c == self.config.consecutive_local_origin_failure {
                        self.consecutive(index, EjectionType::ConsecutiveLocalOriginFailure, now);
                    }
                }
                Outcome::ConnectSuccess => {
                    m.local_total.fetch_add(1, Ordering::Relaxed);
                    m.local_success.fetch_add(1, Ordering::Relaxed);
                    m.consecutive_local.store(0, Ordering::Relaxed);
                }
            }
        } else {
            match outcome {
                Outcome::Http(code) => self.put_http(index, m, code, now),
                Outcome::ConnectFailed => self.put_http(index, m, 503, now),
                Outcome::Timeout => self.put_http(index, m, 504, now),
                Outcome::ConnectSuccess => {}
            }
        }
    }

    fn put_http(&self, index: usize, m: &Monitor, code: u16, now: Duration) {
        m.ext_total.fetch_add(1, Ordering::Relaxed);
        if (500..600).contains(&code) {
            if matches!(code, 502..=504) {
                let c = m.consecutive_gateway.fetch_add(1, Ordering::AcqRel) + 1;
                if c == self.config.consecutive_gateway_failure {
                    self.consecutive(index, EjectionType::ConsecutiveGatewayFailure, now);
                }
            } else {
                m.consecutive_gateway.store(0, Ordering::Relaxed);
            }
            let c = m.consecutive_5xx.fetch_add(1, Ordering::AcqRel) + 1;
            if c == self.config.consecutive_5xx {
                self.consecutive(index, EjectionType::Consecutive5xx, now);
            }
        } else {
            m.ext_success.fetch_add(1, Ordering::Relaxed);
            m.consecutive_5xx.store(0, Ordering::Relaxed);
            m.consecutive_gateway.store(0, Ordering::Relaxed);
        }
    }

    fn consecutive(&self, index: usize, t: EjectionType, now: Duration) {
        let mut ej = self.lock();
        if !self.hosts[index].has_flag(HealthFlag::FailedOutlierCheck) {
            self.eject(&mut ej, index, t, now);
        }
        let m = &self.monitors[index];
        match t {
            EjectionType::Consecutive5xx => m.consecutive_5xx.store(0, Ordering::Relaxed),
            EjectionType::ConsecutiveGatewayFailure => {
                m.consecutive_gateway.store(0, Ordering::Relaxed)
            }
            _ => m.consecutive_local.store(0, Ordering::Relaxed),
        }
    }

    fn enforcing(&self, t: EjectionType) -> u32 {
        let c = &self.config;
        match t {
            EjectionType::Consecutive5xx => c.enforcing_consecutive_5xx,
            EjectionType::ConsecutiveGatewayFailure => c.enforcing_consecutive_gateway_failure,
            EjectionType::ConsecutiveLocalOriginFailure => {
                c.enforcing_consecutive_local_origin_failure
            }
            EjectionType::SuccessRate => c.enforcing_success_rate,
            EjectionType::FailurePercentage => c.enforcing_failure_percentage,
            EjectionType::SuccessRateLocalOrigin => ENFORCING_LOCAL_ORIGIN_SUCCESS_RATE,
            EjectionType::FailurePercentageLocalOrigin => ENFORCING_FAILURE_PERCENTAGE_LOCAL_ORIGIN,
        }
    }

    fn max_ejection_time(&self) -> Duration {
        self.config
            .max_ejection_time
            .max(self.config.base_ejection_time)
    }

    fn eject(&self, ej: &mut [Ejection], index: usize, t: EjectionType, now: Duration) {
        let active = ej.iter().filter(|e| e.ejected_at.is_some()).count();
        let percent = 100.0 * active as f64 / ej.len().max(1) as f64;
        if percent >= f64::from(self.config.max_ejection_percent) {
            self.stats.overflow.inc();
            return;
        }
        self.stats.detected[t.index()].inc();
        let enforcing = self.enforcing(t).min(100);
        if enforcing == 0 || self.random.next_u64() % 100 >= u64::from(enforcing) {
            return;
        }
        self.stats.enforced[t.index()].inc();
        self.stats.enforced_total.inc();
        self.stats.active.inc();
        let e = &mut ej[index];
        let base = self.config.base_ejection_time;
        if base * e.backoff < self.max_ejection_time() + base {
            e.backoff += 1;
        }
        e.times += 1;
        e.ejected_at = Some(now);
        self.hosts[index].set_flag(HealthFlag::FailedOutlierCheck, true);
    }

    /// Un-ejects host `index` now (a passing active health check does this when
    /// `successful_active_health_check_uneject_host` is on, Envoy's default).
    pub fn uneject(&self, index: usize, now: Duration) {
        let mut ej = self.lock();
        if let Some(e) = ej.get_mut(index)
            && e.ejected_at.is_some()
        {
            self.uneject_locked(e, index, now);
        }
    }

    fn uneject_locked(&self, e: &mut Ejection, index: usize, now: Duration) {
        e.ejected_at = None;
        e.last_unejected = Some(now);
        self.stats.active.dec();
        self.monitors[index].reset_consecutive();
        self.hosts[index].set_flag(HealthFlag::FailedOutlierCheck, false);
    }

    /// The periodic evaluation, due every `interval`: un-ejects hosts whose time is up,
    /// decays backoffs, then runs success-rate and failure-percentage ejection over the
    /// interval that just ended.
    pub fn sweep(&self, now: Duration) {
        let mut ej = self.lock();
        let base = self.config.base_ejection_time;
        let max = self.max_ejection_time();
        for (i, e) in ej.iter_mut().enumerate() {
            match e.ejected_at {
                Some(at) => {
                    if now.saturating_sub(at) >= (base * e.backoff).min(max) {
                        self.uneject_locked(e, i, now);
                    }
                }
                None => {
                    if e.backoff > 0
                        && e.last_unejected
                            .is_some_and(|u| now.saturating_sub(u) >= self.config.interval)
                    {
                        e.backoff -= 1;
                    }
                }
            }
        }
        let ext: Vec<(u64, u64)> = self
            .monitors
            .iter()
            .map(|m| {
                (
                    m.ext_total.swap(0, Ordering::AcqRel),
                    m.ext_success.swap(0, Ordering::AcqRel),
                )
            })
            .collect();
        let local: Vec<(u64, u64)> = self
            .monitors
            .iter()
            .map(|m| {
                (
                    m.local_total.swap(0, Ordering::AcqRel),
                    m.local_success.swap(0, Ordering::AcqRel),
                )
            })
            .collect();
        self.success_rate(
            &mut ej,
            &ext,
            EjectionType::SuccessRate,
            EjectionType::FailurePercentage,
            now,
        );
        if self.config.split_external_local_origin_errors {
            self.success_rate(
                &mut ej,
                &local,
                EjectionType::SuccessRateLocalOrigin,
                EjectionType::FailurePercentageLocalOrigin,
                now,
            );
        }
    }

    fn success_rate(
        &self,
        ej: &mut [Ejection],
        counts: &[(u64, u64)],
        sr_type: EjectionType,
        fp_type: EjectionType,
        now: Duration,
    ) {
        let c = &self.config;
        let mut sr_hosts = Vec::new();
        let mut fp_hosts = Vec::new();
        for (i, &(total, success)) in counts.iter().enumerate() {
            if ej[i].ejected_at.is_some() || total == 0 {
                continue;
            }
            let rate = 100.0 * success as f64 / total as f64;
            if total >= u64::from(c.success_rate_request_volume) {
                sr_hosts.push((i, rate));
            }
            if total >= u64::from(c.failure_percentage_request_volume) {
                fp_hosts.push((i, rate));
            }
        }
        if !sr_hosts.is_empty() && sr_hosts.len() >= c.success_rate_minimum_hosts as usize {
            let n = sr_hosts.len() as f64;
            let mean = sr_hosts.iter().map(|&(_, r)| r).sum::<f64>() / n;
            let var = sr_hosts
                .iter()
                .map(|&(_, r)| (r - mean).powi(2))
                .sum::<f64>()
                / n;
            let threshold = mean - f64::from(c.success_rate_stdev_factor) / 1000.0 * var.sqrt();
            for &(i, r) in &sr_hosts {
                if r < threshold && ej[i].ejected_at.is_none() {
                    self.eject(ej, i, sr_type, now);
                }
            }
        }
        if !fp_hosts.is_empty() && fp_hosts.len() >= c.failure_percentage_minimum_hosts as usize {
            for &(i, r) in &fp_hosts {
                if 100.0 - r >= f64::from(c.failure_percentage_threshold)
                    && ej[i].ejected_at.is_none()
                {
                    self.eject(ej, i, fp_type, now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRandom;
    use mesh_core::config::Address;

    fn hosts(n: usize) -> Vec<Arc<Host>> {
        (0..n)
            .map(|i| {
                Arc::new(Host::new(
                    Address {
                        host: "10.0.0.1".into(),
                        port: 1000 + i as u16,
                    },
                    1,
                    true,
                    Default::default(),
                    None,
                ))
            })
            .collect()
    }

    fn detector(n: usize, config: OutlierDetection, r: Option<&Registry>) -> OutlierDetector {
        OutlierDetector::new(config, hosts(n), Arc::new(SeededRandom::new(1)), r, "c")
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn fail(d: &OutlierDetector, i: usize, n: usize, code: u16, now: Duration) {
        for _ in 0..n {
            d.report(i, Outcome::Http(code), now);
        }
    }

    #[test]
    fn consecutive_5xx_ejects_and_returns() {
        let r = Registry::new();
        let d = detector(10, OutlierDetection::default(), Some(&r));
        fail(&d, 3, 4, 500, secs(0));
        d.report(3, Outcome::Http(200), secs(0));
        fail(&d, 3, 4, 500, secs(0));
        assert!(
            !d.hosts[3].has_flag(HealthFlag::FailedOutlierCheck),
            "reset by a 200"
        );
        d.report(3, Outcome::Http(503), secs(1));
        assert!(d.hosts[3].has_flag(HealthFlag::FailedOutlierCheck));
        assert!(!d.hosts[3].is_healthy());
        let t = r.render_text();
        assert!(
            t.contains("cluster.c.outlier_detection.ejections_active: 1"),
            "{t}"
        );
        assert!(
            t.contains("cluster.c.outlier_detection.ejections_enforced_total: 1"),
            "{t}"
        );
        // Ejected for base × 1 = 30 s, checked at sweeps.
        d.sweep(secs(10));
        d.sweep(secs(30));
        assert!(d.host_state(3).ejected, "29 s elapsed");
        d.sweep(secs(40));
        assert!(!d.host_state(3).ejected);
        assert!(d.hosts[3].is_healthy());
        assert!(r.render_text().contains("ejections_active: 0"));
    }

    #[test]
    fn gateway_failures_detected_but_not_enforced_by_default() {
        let r = Registry::new();
        let c = OutlierDetection {
            consecutive_5xx: 100,
            ..Default::default()
        };
        let d = detector(10, c, Some(&r));
        fail(&d, 0, 5, 502, secs(0));
        assert!(!d.host_state(0).ejected);
        let t = r.render_text();
        assert!(
            t.contains("ejections_detected_consecutive_gateway_failure: 1"),
            "{t}"
        );
        assert!(
            t.contains("ejections_enforced_consecutive_gateway_failure: 0"),
            "{t}"
        );
        let c = OutlierDetection {
            enforcing_consecutive_gateway_failure: 100,
            consecutive_5xx: 100,
            ..Default::default()
        };
        let d = detector(10, c, None);
        fail(&d, 0, 4, 503, secs(0));
        d.report(0, Outcome::Http(500), secs(0)); // resets the gateway streak
        fail(&d, 0, 4, 504, secs(0));
        assert!(!d.host_state(0).ejected);
        d.report(0, Outcome::ConnectFailed, secs(0)); // 503 in non-split mode
        assert!(d.host_state(0).ejected);
    }

    #[test]
    fn backoff_grows_caps_and_decays() {
        let c = OutlierDetection {
            max_ejection_percent: 100,
            base_ejection_time: secs(10),
            max_ejection_time: secs(25),
            interval: secs(10),
            ..Default::default()
        };
        let d = detector(2, c, None);
        let mut now = 0;
        let mut durations = Vec::new();
        for _ in 0..4 {
            fail(&d, 0, 5, 500, secs(now));
            assert!(d.host_state(0).ejected);
            let start = now;
            while d.host_state(0).ejected {
                now += 10;
                d.sweep(secs(now));
            }
            durations.push(now - start);
        }
        // base × 1, × 2, then capped at 25 (seen at the next 10 s tick: 30).
        assert_eq!(durations, [10, 20, 30, 30]);
        // 0→1→2→3→4, then no more: 4 × 10 ≥ 25 + 10.
        assert_eq!(d.host_state(0).backoff, 4);
        fail(&d, 0, 5, 500, secs(now));
        assert_eq!(
            d.host_state(0).backoff,
            4,
            "stops growing once backoff × base ≥ max + base"
        );
        while d.host_state(0).ejected {
            now += 10;
            d.sweep(secs(now));
        }
        // Each clean interval after the un-ejection takes one off.
        for k in 1..=4 {
            now += 10;
            d.sweep(secs(now));
            assert_eq!(d.host_state(0).backoff, 4 - k);
        }
        now += 10;
        d.sweep(secs(now));
        assert_eq!(d.host_state(0).backoff, 0);
    }

    #[test]
    fn max_ejection_percent_limits() {
        let r = Registry::new();
        let d = detector(20, OutlierDetection::default(), Some(&r));
        for h in 0..5 {
            fail(&d, h, 5, 500, secs(0));
        }
        // 10 % of 20: 0 and 5 % are below 10 ⇒ two ejections, then overflow.
        assert_eq!(d.ejected_count(), 2);
        assert!(
            r.render_text()
                .contains("outlier_detection.ejections_overflow: 3")
        );
        d.sweep(secs(30));
        assert_eq!(d.ejected_count(), 0);
        fail(&d, 4, 5, 500, secs(31));
        assert!(d.host_state(4).ejected);
    }

    #[test]
    fn enforcing_percentage_uses_the_random_source() {
        let c = OutlierDetection {
            enforcing_consecutive_5xx: 50,
            max_ejection_percent: 100,
            ..Default::default()
        };
        let d = detector(1000, c, None);
        for h in 0..1000 {
            fail(&d, h, 5, 500, secs(0));
        }
        let n = d.ejected_count();
        assert!((430..=570).contains(&n), "{n}");
    }

    #[test]
    fn success_rate_ejects_the_outlier() {
        let d = detector(5, OutlierDetection::default(), None);
        // Success rates 50, 100, 100, 100, 100: mean 90, stdev 20, threshold 52.
        for h in 0..5 {
            for k in 0..100 {
                let code = if h == 0 && k % 2 == 0 { 500 } else { 200 };
                d.report(h, Outcome::Http(code), secs(1));
            }
        }
        d.sweep(secs(10));
        assert!(d.host_state(0).ejected);
        assert_eq!(d.ejected_count(), 1);
        // Too little volume: nothing happens.
        let d = detector(5, OutlierDetection::default(), None);
        for h in 0..5 {
            fail(&d, h, 1, if h == 0 { 500 } else { 200 }, secs(1));
        }
        d.sweep(secs(10));
        assert_eq!(d.ejected_count(), 0);
    }

    #[test]
    fn failure_percentage() {
        let c = OutlierDetection {
            enforcing_failure_percentage: 100,
            enforcing_success_rate: 0,
            consecutive_5xx: 0,
            ..Default::default()
        };
        let d = detector(5, c, None);
        for h in 0..5 {
            for k in 0..50 {
                // Host 1 fails 86 % of the time.
                let code = if h == 1 && k < 43 { 500 } else { 200 };
                d.report(h, Outcome::Http(code), secs(1));
            }
        }
        d.sweep(secs(10));
        assert!(d.host_state(1).ejected);
        assert_eq!(d.ejected_count(), 1);
    }

    #[test]
    fn split_mode_counts_local_origin_apart() {
        let c = OutlierDetection {
            split_external_local_origin_errors: true,
            max_ejection_percent: 100,
            ..Default::default()
        };
        let d = detector(2, c, None);
        for _ in 0..4 {
            d.report(0, Outcome::ConnectFailed, secs(0));
            d.report(0, Outcome::Http(500), secs(0));
        }
        assert!(!d.host_state(0).ejected);
        d.report(0, Outcome::Timeout, secs(0));
        assert!(d.host_state(0).ejected, "five local-origin failures");
        d.uneject(0, secs(1));
        assert!(d.hosts[0].is_healthy());
    }
}
