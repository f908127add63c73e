//! The balancing state of one cluster: hosts, priority levels, per-source balancers, circuit
//! breakers and outlier detection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use mesh_core::config::{Cluster, DiscoveryType, Locality, RoutingPriority};
use mesh_core::stats::{Counter, Gauge, Registry, StatName};

use crate::balancer::{Balancer, Policy};
use crate::breaker::CircuitBreakers;
use crate::health::{HostHealth, eds_flags};
use crate::outlier::OutlierDetector;
use crate::priority::{Availability, LevelCounts, PriorityLoad, locality_effective_weights};
use crate::subset::{SubsetConfig, SubsetLb};
use crate::{BuildError, Host, LbContext, PickContext, Random, SeededRandom};

// === impl ClusterLb ===

/// The balancing state of one cluster.
///
/// Hosts are fixed at build time (a new config builds a new `ClusterLb`); their health flags
/// change at run time. Priority loads and the per-priority balancers are derived from health
/// and rebuilt when any host's flags change (noticed on the next pick, or at once with
/// [`ClusterLb::refresh`]), then swapped in with `ArcSwap`; a pick takes no lock.
#[derive(Debug)]
pub struct ClusterLb {
    name: Arc<str>,
    core: LbCore,
    subsets: Option<SubsetLb>,
    breakers: CircuitBreakers,
    outlier: Option<OutlierDetector>,
}

/// Builds a [`ClusterLb`] with injected parts.
///
/// ```
/// # use mesh_core::config::Cluster;
/// let registry = mesh_core::stats::Registry::new();
/// let cluster = Cluster::new_static("web", ["127.0.0.1:8081".parse().unwrap()]);
/// let lb = mesh_lb::ClusterLb::builder(&cluster).stats(&registry).seed(7).build().unwrap();
/// assert_eq!(lb.hosts().len(), 1);
/// assert!(registry.render_text().contains("cluster.web.membership_total: 1"));
/// ```
#[derive(Debug)]
pub struct ClusterLbBuilder<'a> {
    cluster: &'a Cluster,
    stats: Option<&'a Registry>,
    seed: u64,
    random: Option<Arc<dyn Random>>,
    previous: Option<&'a ClusterLb>,
}

impl<'a> ClusterLbBuilder<'a> {
    /// Registers the cluster's stats in `registry` (default: stats are kept but not
    /// registered).
    pub fn stats(mut self, registry: &'a Registry) -> Self {
        self.stats = Some(registry);
        self
    }

    /// Seed for round-robin starting points (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Random source for outlier-detection enforcement draws (default: seeded from the
    /// process's hash randomness).
    pub fn random(mut self, random: Arc<dyn Random>) -> Self {
        self.random = Some(random);
        self
    }

    /// The balancer this one replaces (a config update of the same cluster). Hosts that stay
    /// (same address, weight, priority, locality, hostname and metadata) are the same [`Host`]
    /// objects, so they keep their active-request counts, health flags and ejection; their
    /// outlier-detection counters and ejection times carry over too, and circuit-breaker counts
    /// carry over for priorities whose thresholds are unchanged. Default: none.
    pub fn previous(mut self, previous: &'a ClusterLb) -> Self {
        self.previous = Some(previous);
        self
    }

    /// Builds the balancer.
    ///
    /// # Errors
    /// [`BuildError::BadAddress`] when a STATIC cluster names a host that is not an IP
    /// literal; [`BuildError::InvalidLbConfig`] for out-of-range balancer settings.
    pub fn build(self) -> Result<ClusterLb, BuildError> {
        let c = self.cluster;
        let policy = Policy::from_cluster(c);
        policy.validate(&c.name)?;
        // Hosts carried over keep signalling health changes on the previous epoch, so the
        // new balancer shares it.
        let epoch = self.previous.map_or_else(
            || Arc::new(AtomicU64::new(0)),
            |p| Arc::clone(&p.core.epoch),
        );
        let mut hosts: Vec<Arc<Host>> = Vec::new();
        // (previous index, new index) of every host that stays.
        let mut kept: Vec<(usize, usize)> = Vec::new();
        let mut opf = 140;
        let mut localities: LocalityWeights = BTreeMap::new();
        if let Some(la) = &c.load_assignment {
            if la.overprovisioning_factor > 0 {
                opf = la.overprovisioning_factor;
            }
            for l in &la.endpoints {
                // An unset locality weight is 0, as in Envoy: the locality takes no traffic.
                *localities
                    .entry((l.priority, l.locality.clone()))
                    .or_default() += l.load_balancing_weight.unwrap_or(0);
            }
            for (loc, ep) in la.lb_endpoints() {
                if c.discovery_type == DiscoveryType::Static && ep.address.socket_addr().is_none() {
                    return Err(BuildError::BadAddress {
                        cluster: c.name.clone(),
                        address: ep.address.to_string(),
                    });
                }
                let (failed, degraded) = eds_flags(ep.health_status);
                let same = |h: &Arc<Host>| {
                    h.address() == &ep.address
                        && h.weight() == ep.load_balancing_weight.max(1)
                        && h.priority() == loc.priority
                        && h.locality() == &loc.locality
                        && h.hostname() == ep.hostname.as_deref()
                        && h.metadata() == &ep.metadata
                };
                if let Some((i, h)) = self
                    .previous
                    .and_then(|p| p.hosts().iter().enumerate().find(|(_, h)| same(h)))
                    .filter(|(i, _)| !kept.iter().any(|(k, _)| k == i))
                {
                    h.set_flag(crate::health::HealthFlag::FailedEdsHealth, failed);
                    h.set_flag(crate::health::HealthFlag::DegradedEdsHealth, degraded);
                    kept.push((i, hosts.len()));
                    hosts.push(Arc::clone(h));
                    continue;
                }
                let host = Host::new(
                    ep.address.clone(),
                    ep.load_balancing_weight,
                    !failed,
                    loc.locality.clone(),
                    ep.hostname.clone(),
                )
                .with_metadata(ep.metadata.clone())
                .with_priority(loc.priority)
                .with_epoch(Arc::clone(&epoch));
                if degraded {
                    host.set_flag(crate::health::HealthFlag::DegradedEdsHealth, true);
                }
                hosts.push(Arc::new(host));
            }
        }
        let stats = Arc::new(LbStats::new(self.stats, &c.name));
        let settings = Settings {
            policy,
            opf,
            panic_threshold: if c.healthy_panic_threshold.is_finite() {
                c.healthy_panic_threshold.clamp(0.0, 100.0) as u32
            } else {
                50
            },
            seed: self.seed,
            localities: c.locality_weighted_lb.then(|| Arc::new(localities)),
        };
        let random = self
            .random
            .unwrap_or_else(|| Arc::new(SeededRandom::from_entropy()));
        let outlier = c.outlier_detection.as_ref().map(|od| {
            let d = OutlierDetector::new(od.clone(), hosts.clone(), random, self.stats, &c.name);
            if let Some(prev) = self.previous.and_then(ClusterLb::outlier) {
                d.carry_over(prev, &kept);
            }
            d
        });
        let mut lb = ClusterLb {
            name: c.name.as_str().into(),
            core: LbCore::new(hosts, None, epoch, Arc::new(settings), stats),
            subsets: None,
            breakers: CircuitBreakers::carry_over(
                c,
                self.stats,
                self.previous.map(|p| &p.breakers),
            ),
            outlier,
        };
        if let Some(sc) = &c.lb_subset_config {
            lb.subsets = Some(SubsetLb::new(&lb, SubsetConfig::from(sc)));
        }
        Ok(lb)
    }
}

impl ClusterLb {
    /// Builds the balancer for a cluster, with unregistered stats.
    ///
    /// # Errors
    /// As [`ClusterLbBuilder::build`].
    pub fn new(cluster: &Cluster) -> Result<Self, BuildError> {
        Self::builder(cluster).build()
    }

    /// Builds the balancer and registers its stats (`lb_healthy_panic`,
    /// `membership_healthy`, `membership_total`, breaker overflows, outlier ejections) in
    /// `registry` under `cluster.<name>.`.
    ///
    /// # Errors
    /// As [`ClusterLbBuilder::build`].
    pub fn with_stats(cluster: &Cluster, registry: &Registry) -> Result<Self, BuildError> {
        Self::builder(cluster).stats(registry).build()
    }

    /// A builder for injected stats, seed and random source.
    pub fn builder(cluster: &Cluster) -> ClusterLbBuilder<'_> {
        ClusterLbBuilder {
            cluster,
            stats: None,
            seed: 0,
            random: None,
            previous: None,
        }
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// All hosts, in config order.
    pub fn hosts(&self) -> &[Arc<Host>] {
        &self.core.hosts
    }

    /// The balancing policy.
    pub fn policy(&self) -> &Policy {
        &self.core.settings.policy
    }

    /// Picks a host, or `None` when no host can serve (no hosts, or panic disabled and none
    /// healthy, or a subset cluster whose fallback gives no host).
    pub fn pick(&self, cx: &LbContext) -> Option<&Arc<Host>> {
        self.pick_index(cx).map(|i| &self.core.hosts[i])
    }

    /// Picks a host and returns its index in [`ClusterLb::hosts`]. Callers that keep
    /// per-host state in a parallel array use this.
    pub fn pick_index(&self, cx: &LbContext) -> Option<usize> {
        self.pick_index_with(&PickContext::from(cx))
    }

    /// Picks a host with a request hash and attempt number.
    pub fn pick_with(&self, cx: &PickContext) -> Option<&Arc<Host>> {
        self.pick_index_with(cx).map(|i| &self.core.hosts[i])
    }

    /// Like [`ClusterLb::pick_with`], returning the index in [`ClusterLb::hosts`].
    ///
    /// A request with no `metadata_match`: on a cluster with `lb_subset_config` the subset
    /// fallback policy decides, as in Envoy (see [`ClusterLb::pick_index_matching`]).
    pub fn pick_index_with(&self, cx: &PickContext) -> Option<usize> {
        match &self.subsets {
            Some(s) => s.pick_index(&BTreeMap::new(), cx),
            None => self.core.pick(cx),
        }
    }

    /// Picks a host for a route's `metadata_match` (its `envoy.lb` key/value map) and returns
    /// its index in [`ClusterLb::hosts`].
    ///
    /// On a cluster with `lb_subset_config` the subset whose metadata equals `metadata_match`
    /// serves the pick, else the fallback policies decide ([`SubsetLb`]); `None` means the
    /// fallback gives no host (Envoy answers 503). A cluster without subsets ignores
    /// `metadata_match`, as Envoy does.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// use mesh_core::config::{Cluster, LbSubsetConfig, LbSubsetSelector};
    /// let mut cluster = Cluster::new_static("web", ["10.0.0.1:80".parse().unwrap(), "10.0.0.2:80".parse().unwrap()]);
    /// for (i, v) in ["v1", "v2"].iter().enumerate() {
    ///     let ep = &mut cluster.load_assignment.as_mut().unwrap().endpoints[0].lb_endpoints[i];
    ///     ep.metadata.entry("envoy.lb".into()).or_default().insert("version".into(), (*v).into());
    /// }
    /// cluster.lb_subset_config = Some(LbSubsetConfig {
    ///     subset_selectors: vec![LbSubsetSelector { keys: vec!["version".into()], ..Default::default() }],
    ///     ..Default::default()
    /// });
    /// let lb = mesh_lb::ClusterLb::new(&cluster).unwrap();
    /// let want: BTreeMap<String, serde_json::Value> = [("version".to_owned(), "v2".into())].into();
    /// let i = lb.pick_index_matching(&want, &mesh_lb::PickContext::new(1)).unwrap();
    /// assert_eq!(lb.hosts()[i].address().host, "10.0.0.2");
    /// // No metadata_match: the default NO_FALLBACK policy gives no host.
    /// assert_eq!(lb.pick_index_with(&mesh_lb::PickContext::new(1)), None);
    /// ```
    pub fn pick_index_matching(
        &self,
        metadata_match: &BTreeMap<String, serde_json::Value>,
        cx: &PickContext,
    ) -> Option<usize> {
        match &self.subsets {
            Some(s) => s.pick_index(metadata_match, cx),
            None => self.core.pick(cx),
        }
    }

    /// The subset load balancer, when the cluster sets `lb_subset_config`.
    pub fn subsets(&self) -> Option<&SubsetLb> {
        self.subsets.as_ref()
    }

    /// Rebuilds the health-derived state now if any host's health changed (otherwise the
    /// next pick does it).
    pub fn refresh(&self) {
        self.core.refresh();
    }

    /// The current priority load distribution.
    pub fn priority_load(&self) -> PriorityLoad {
        self.core.current().load.clone()
    }

    /// The circuit breakers of a routing priority.
    pub fn breakers(&self, priority: RoutingPriority) -> &Arc<crate::breaker::Limits> {
        self.breakers.for_priority(priority)
    }

    /// Outlier detection, when the cluster configures it.
    pub fn outlier(&self) -> Option<&OutlierDetector> {
        self.outlier.as_ref()
    }

    pub(crate) fn core(&self) -> &LbCore {
        &self.core
    }
}

// === impl LbCore ===

/// Configured locality weights by `(priority, locality)`.
pub(crate) type LocalityWeights = BTreeMap<(u32, Locality), u32>;

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) policy: Policy,
    pub(crate) opf: u32,
    pub(crate) panic_threshold: u32,
    pub(crate) seed: u64,
    /// Locality weights when locality-weighted balancing is on.
    pub(crate) localities: Option<Arc<LocalityWeights>>,
}

#[derive(Debug)]
pub(crate) struct LbStats {
    healthy_panic: Arc<Counter>,
    membership_healthy: Arc<Gauge>,
    membership_degraded: Arc<Gauge>,
    membership_total: Arc<Gauge>,
}

impl LbStats {
    pub(crate) fn new(registry: Option<&Registry>, cluster: &str) -> Self {
        match registry {
            Some(r) => Self {
                healthy_panic: r.counter(StatName::cluster(cluster, "lb_healthy_panic")),
                membership_healthy: r.gauge(StatName::cluster(cluster, "membership_healthy")),
                membership_degraded: r.gauge(StatName::cluster(cluster, "membership_degraded")),
                membership_total: r.gauge(StatName::cluster(cluster, "membership_total")),
            },
            None => Self::unregistered(),
        }
    }

    pub(crate) fn unregistered() -> Self {
        Self {
            healthy_panic: Arc::default(),
            membership_healthy: Arc::default(),
            membership_degraded: Arc::default(),
            membership_total: Arc::default(),
        }
    }
}

/// Priority-aware balancing over a fixed host list (a cluster, or one subset of it).
#[derive(Debug)]
pub(crate) struct LbCore {
    hosts: Vec<Arc<Host>>,
    /// Cluster index of each host (subsets); `None` is the identity.
    global: Option<Vec<usize>>,
    settings: Arc<Settings>,
    epoch: Arc<AtomicU64>,
    state: ArcSwap<LbState>,
    rebuilding: AtomicBool,
    stats: Arc<LbStats>,
}

#[derive(Debug)]
struct LbState {
    epoch: u64,
    load: PriorityLoad,
    levels: Vec<Level>,
}

#[derive(Debug, Default)]
struct Level {
    healthy: Option<Arc<Source>>,
    degraded: Option<Arc<Source>>,
    all: Option<Arc<Source>>,
    /// Locality-weighted balancing: the healthy hosts of each locality with a positive
    /// effective weight, and the sum of those weights.
    healthy_localities: Localities,
    /// Likewise for degraded hosts.
    degraded_localities: Localities,
}

#[derive(Debug, Default)]
struct Localities {
    total: u64,
    sources: Vec<(u64, Arc<Source>)>,
}

impl Localities {
    /// The locality for a random value, by effective weight; `None` when no locality has
    /// weight (the whole source serves then, as in Envoy).
    fn choose(&self, random: u64) -> Option<&Arc<Source>> {
        if self.total == 0 {
            return None;
        }
        let mut r = random % self.total;
        for (w, s) in &self.sources {
            if r < *w {
                return Some(s);
            }
            r -= w;
        }
        debug_assert!(false, "weights sum to total");
        None
    }
}

#[derive(Debug)]
struct Source {
    /// Positions in `LbCore::hosts`.
    members: Vec<u32>,
    lb: Box<dyn Balancer>,
}

impl LbCore {
    pub(crate) fn new(
        hosts: Vec<Arc<Host>>,
        global: Option<Vec<usize>>,
        epoch: Arc<AtomicU64>,
        settings: Arc<Settings>,
        stats: Arc<LbStats>,
    ) -> Self {
        let e = epoch.load(Ordering::Acquire);
        let state = build_state(&hosts, &settings, &stats, e);
        Self {
            hosts,
            global,
            settings,
            epoch,
            state: ArcSwap::from_pointee(state),
            rebuilding: AtomicBool::new(false),
            stats,
        }
    }

    pub(crate) fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    pub(crate) fn epoch(&self) -> &Arc<AtomicU64> {
        &self.epoch
    }

    fn current(&self) -> arc_swap::Guard<Arc<LbState>> {
        let s = self.state.load();
        if s.epoch == self.epoch.load(Ordering::Acquire) {
            return s;
        }
        drop(s);
        self.refresh();
        self.state.load()
    }

    pub(crate) fn refresh(&self) {
        if self.state.load().epoch == self.epoch.load(Ordering::Acquire) {
            return;
        }
        if self
            .rebuilding
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another thread is rebuilding; keep using the previous state meanwhile.
            return;
        }
        struct Reset<'a>(&'a AtomicBool);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _reset = Reset(&self.rebuilding);
        let e = self.epoch.load(Ordering::Acquire);
        let state = build_state(&self.hosts, &self.settings, &self.stats, e);
        self.state.store(Arc::new(state));
    }

    pub(crate) fn pick(&self, cx: &PickContext) -> Option<usize> {
        let state = self.current();
        let h = if self.settings.policy.uses_hash() {
            cx.hash().unwrap_or_else(|| cx.random_n(0))
        } else {
            cx.random_n(0)
        };
        let (p, avail) = state.load.choose(h)?;
        let level = &state.levels[p];
        let src = if state.load.panic[p] {
            self.stats.healthy_panic.inc();
            level.all.as_ref()
        } else {
            let (whole, localities) = match avail {
                Availability::Healthy => (level.healthy.as_ref(), &level.healthy_localities),
                Availability::Degraded => (level.degraded.as_ref(), &level.degraded_localities),
            };
            localities.choose(cx.random_n(1)).or(whole)
        }?;
        let i = src.members[src.lb.pick(cx)?] as usize;
        Some(match &self.global {
            Some(g) => g[i],
            None => i,
        })
    }
}

fn build_state(hosts: &[Arc<Host>], settings: &Settings, stats: &LbStats, epoch: u64) -> LbState {
    let levels_n = hosts
        .iter()
        .map(|h| h.priority() as usize + 1)
        .max()
        .unwrap_or(0);
    let mut all: Vec<Vec<u32>> = vec![Vec::new(); levels_n];
    let mut healthy: Vec<Vec<u32>> = vec![Vec::new(); levels_n];
    let mut degraded: Vec<Vec<u32>> = vec![Vec::new(); levels_n];
    for (i, h) in hosts.iter().enumerate() {
        let p = h.priority() as usize;
        all[p].push(i as u32);
        match h.health() {
            HostHealth::Healthy => healthy[p].push(i as u32),
            HostHealth::Degraded => degraded[p].push(i as u32),
            HostHealth::Unhealthy => {}
        }
    }
    let counts: Vec<LevelCounts> = (0..levels_n)
        .map(|p| {
            LevelCounts::new(
                all[p].len() as u32,
                healthy[p].len() as u32,
                degraded[p].len() as u32,
            )
        })
        .collect();
    let load = PriorityLoad::compute(&counts, settings.opf, settings.panic_threshold);
    stats.membership_total.set(hosts.len() as i64);
    stats
        .membership_healthy
        .set(healthy.iter().map(Vec::len).sum::<usize>() as i64);
    stats
        .membership_degraded
        .set(degraded.iter().map(Vec::len).sum::<usize>() as i64);
    let source = |members: Vec<u32>, salt: u64| -> Option<Arc<Source>> {
        if members.is_empty() {
            return None;
        }
        let subset: Vec<Arc<Host>> = members
            .iter()
            .map(|&i| Arc::clone(&hosts[i as usize]))
            .collect();
        let lb = settings
            .policy
            .build(&subset, settings.seed.wrapping_add(salt));
        Some(Arc::new(Source { members, lb }))
    };
    let levels = (0..levels_n)
        .map(|p| {
            // Only the sources a pick can reach are built: all hosts in panic, else the
            // healthy and degraded hosts that carry load.
            let mut level = Level::default();
            if load.panic[p] {
                level.all = source(std::mem::take(&mut all[p]), 3 * p as u64);
                return level;
            }
            if let Some(weights) = &settings.localities
                && !settings.policy.uses_hash()
            {
                let by_locality = |members: &[u32], salt: u64| {
                    locality_sources(hosts, weights, p as u32, &all[p], members, settings.opf)
                        .into_iter()
                        .enumerate()
                        .filter_map(|(j, (w, m))| {
                            let s = source(m, salt.wrapping_add((j as u64 + 1) << 32))?;
                            Some((w, s))
                        })
                        .collect::<Vec<_>>()
                };
                if load.healthy[p] > 0 {
                    let sources = by_locality(&healthy[p], 3 * p as u64 + 1);
                    level.healthy_localities = Localities {
                        total: sources.iter().map(|(w, _)| w).sum(),
                        sources,
                    };
                }
                if load.degraded[p] > 0 {
                    let sources = by_locality(&degraded[p], 3 * p as u64 + 2);
                    level.degraded_localities = Localities {
                        total: sources.iter().map(|(w, _)| w).sum(),
                        sources,
                    };
                }
            }
            if load.healthy[p] > 0 {
                level.healthy = source(std::mem::take(&mut healthy[p]), 3 * p as u64 + 1);
            }
            if load.degraded[p] > 0 {
                level.degraded = source(std::mem::take(&mut degraded[p]), 3 * p as u64 + 2);
            }
            level
        })
        .collect();
    LbState {
        epoch,
        load,
        levels,
    }
}

/// Splits `members` (healthy or degraded hosts of priority `p`) by locality, with each
/// locality's effective weight `weight × min(100, OPF × members / hosts)` (SEMANTICS.md §4.3);
/// localities of weight 0 are left out. Ordered by locality.
fn locality_sources(
    hosts: &[Arc<Host>],
    weights: &LocalityWeights,
    p: u32,
    all: &[u32],
    members: &[u32],
    opf: u32,
) -> Vec<(u64, Vec<u32>)> {
    let mut groups: BTreeMap<&Locality, (u32, Vec<u32>)> = BTreeMap::new();
    for &i in all {
        groups.entry(hosts[i as usize].locality()).or_default().0 += 1;
    }
    for &i in members {
        groups
            .entry(hosts[i as usize].locality())
            .or_default()
            .1
            .push(i);
    }
    let input: Vec<(u32, u32, u32)> = groups
        .iter()
        .map(|(loc, (n, m))| {
            let w = weights.get(&(p, (*loc).clone())).copied().unwrap_or(0);
            (w, m.len() as u32, *n)
        })
        .collect();
    let effective = locality_effective_weights(&input, opf);
    groups
        .into_values()
        .zip(effective)
        .filter(|((_, m), w)| *w > 0 && !m.is_empty())
        .map(|((_, m), w)| (w, m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthFlag;
    use mesh_core::config::{HealthStatus, LbPolicy};

    fn cluster(n: u16) -> Cluster {
        Cluster::new_static(
            "c",
            (0..n).map(|i| std::net::SocketAddr::from(([127, 0, 0, 1], 9000 + i))),
        )
    }

    #[test]
    fn round_robin_visits_every_host_equally() {
        let lb = ClusterLb::new(&cluster(3)).unwrap();
        let mut counts = [0; 3];
        for _ in 0..300 {
            let h = lb.pick(&LbContext::default()).unwrap();
            counts[(h.address().port - 9000) as usize] += 1;
        }
        assert_eq!(counts, [100, 100, 100]);
    }

    #[test]
    fn empty_cluster_picks_nothing() {
        let lb = ClusterLb::new(&cluster(0)).unwrap();
        assert!(lb.pick(&LbContext::default()).is_none());
    }

    #[test]
    fn unhealthy_hosts_are_skipped_until_panic() {
        let mut c = cluster(2);
        let la = c.load_assignment.as_mut().unwrap();
        la.endpoints[0].lb_endpoints[0].health_status = HealthStatus::Unhealthy;
        // 1 of 2 healthy = 50 %: not in panic.
        let lb = ClusterLb::new(&c).unwrap();
        for r in 0..10 {
            assert_eq!(lb.pick(&LbContext::new(r)).unwrap().address().port, 9001);
        }
        c.load_assignment.as_mut().unwrap().endpoints[0].lb_endpoints[1].health_status =
            HealthStatus::Draining;
        let lb = ClusterLb::new(&c).unwrap();
        let picks: std::collections::HashSet<_> = (0..10)
            .map(|r| lb.pick(&LbContext::new(r)).unwrap().address().port)
            .collect();
        assert_eq!(picks.len(), 2, "panic mode uses every host");
    }

    #[test]
    fn health_changes_rebuild_state() {
        let registry = Registry::new();
        let lb = ClusterLb::with_stats(&cluster(4), &registry).unwrap();
        lb.hosts()[0].set_flag(HealthFlag::FailedOutlierCheck, true);
        for r in 0..40 {
            assert_ne!(lb.pick_index(&LbContext::new(r)), Some(0));
        }
        let text = registry.render_text();
        assert!(text.contains("cluster.c.membership_healthy: 3"), "{text}");
        // 1 of 4 healthy: panic ⇒ every host, counted.
        lb.hosts()[1].set_healthy(false);
        lb.hosts()[2].set_healthy(false);
        let seen: std::collections::HashSet<_> =
            (0..40).map(|r| lb.pick_index(&LbContext::new(r))).collect();
        assert_eq!(seen.len(), 4);
        assert!(
            registry
                .render_text()
                .contains("cluster.c.lb_healthy_panic: 40")
        );
    }

    #[test]
    fn priorities_and_panic_threshold_zero() {
        let mut c = cluster(4);
        let la = c.load_assignment.as_mut().unwrap();
        let second = la.endpoints[0].lb_endpoints.split_off(2);
        la.endpoints.push(mesh_core::config::LocalityLbEndpoints {
            lb_endpoints: second,
            priority: 1,
            ..Default::default()
        });
        c.healthy_panic_threshold = 0.0;
        let lb = ClusterLb::new(&c).unwrap();
        assert_eq!(lb.priority_load().healthy, [100, 0]);
        lb.hosts()[0].set_healthy(false);
        // P0: 1 of 2 ⇒ 70 %; P1 gets 30 %.
        assert_eq!(lb.priority_load().healthy, [70, 30]);
        for h in lb.hosts() {
            h.set_healthy(false);
        }
        assert_eq!(lb.pick_index(&LbContext::new(1)), None, "panic disabled");
    }

    #[test]
    fn hashing_cluster_is_sticky() {
        let mut c = cluster(5);
        c.lb_policy = LbPolicy::Maglev;
        let lb = ClusterLb::new(&c).unwrap();
        let cx = |r| PickContext::new(r).with_hash(Some(12345));
        let first = lb.pick_index_with(&cx(1));
        for r in 0..20 {
            assert_eq!(lb.pick_index_with(&cx(r)), first);
        }
        c.lb_policy = LbPolicy::RingHash;
        let lb = ClusterLb::new(&c).unwrap();
        let first = lb.pick_index_with(&cx(1));
        for r in 0..20 {
            assert_eq!(lb.pick_index_with(&cx(r)), first);
        }
    }

    #[test]
    fn bad_settings_are_rejected() {
        let mut c = cluster(1);
        c.lb_policy = LbPolicy::Maglev;
        c.maglev_table_size = 65536;
        assert!(matches!(
            ClusterLb::new(&c),
            Err(BuildError::InvalidLbConfig {
                field: "maglev_table_size",
                ..
            })
        ));
        c.lb_policy = LbPolicy::RingHash;
        c.ring_hash.minimum_ring_size = 10_000_000;
        assert!(ClusterLb::new(&c).is_err());
    }

    #[test]
    fn hash_key_from_envoy_lb_metadata() {
        let mut c = cluster(2);
        let ep = &mut c.load_assignment.as_mut().unwrap().endpoints[0].lb_endpoints[1];
        ep.metadata
            .entry("envoy.lb".into())
            .or_default()
            .insert("hash_key".into(), "stable-name".into());
        let lb = ClusterLb::new(&c).unwrap();
        assert_eq!(lb.hosts()[0].hash_key(), "127.0.0.1:9000");
        assert_eq!(lb.hosts()[1].hash_key(), "stable-name");
    }

    /// Compile-only: the traits are object safe and the shared types cross threads.
    #[allow(dead_code)]
    fn _obj_safe_and_send(_: &dyn Balancer, _: &dyn Random, _: &dyn crate::balancer::Load) {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<ClusterLb>();
        send_sync::<crate::breaker::Permit>();
        send_sync::<OutlierDetector>();
        send_sync::<crate::subset::SubsetLb>();
    }
}
