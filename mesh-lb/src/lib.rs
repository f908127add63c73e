//! Clusters and load balancing with Envoy's semantics, pure and synchronous.
//!
//! A [`ClusterLb`] is built from a [`mesh_core::config::Cluster`]; the proxy asks it for a
//! [`Host`] per request with [`ClusterLb::pick`]. Nothing here does I/O: time and randomness
//! come in through the caller.
//!
//! This first version balances by round robin over the healthy hosts of the highest priority
//! that has any (all hosts when none is healthy, as Envoy's panic mode would). Weighted
//! scheduling, the other policies, subsets, breakers and outlier detection build on the same
//! types.
//!
//! ```
//! use mesh_core::config::Cluster;
//! let cluster = Cluster::new_static("web", ["127.0.0.1:8081".parse().unwrap(), "127.0.0.1:8082".parse().unwrap()]);
//! let lb = mesh_lb::ClusterLb::new(&cluster).unwrap();
//! let a = lb.pick(&mesh_lb::LbContext::default()).unwrap().address().port;
//! let b = lb.pick(&mesh_lb::LbContext::default()).unwrap().address().port;
//! assert_ne!(a, b);
//! ```
#![forbid(unsafe_code)]
#![deny(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod host;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mesh_core::config::{Cluster, DiscoveryType, HealthStatus};

pub use host::{ActiveRequest, Host};

/// A cluster could not be turned into a balancer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An endpoint address is not usable for the cluster's discovery type.
    #[error("cluster {cluster:?}: endpoint {address:?} is not an IP address")]
    BadAddress {
        /// The cluster.
        cluster: String,
        /// The address as written.
        address: String,
    },
}

/// What a balancer may look at for one pick (hash keys come with the hashing balancers).
#[derive(Debug, Clone, Copy, Default)]
pub struct LbContext {
    /// A random value for balancers that need one.
    pub random: u64,
}

/// The balancing state of one cluster.
#[derive(Debug)]
pub struct ClusterLb {
    name: Arc<str>,
    hosts: Vec<Arc<Host>>,
    /// Per priority, the indexes into `hosts` (priority order, 0 first).
    priorities: Vec<Vec<usize>>,
    next: AtomicUsize,
}

impl ClusterLb {
    /// Builds the balancer for a cluster.
    ///
    /// # Errors
    /// [`BuildError::BadAddress`] when a STATIC cluster names a host that is not an IP literal.
    pub fn new(cluster: &Cluster) -> Result<Self, BuildError> {
        let mut hosts = Vec::new();
        let mut priorities: Vec<Vec<usize>> = Vec::new();
        if let Some(la) = &cluster.load_assignment {
            for (loc, ep) in la.lb_endpoints() {
                if cluster.discovery_type == DiscoveryType::Static
                    && ep.address.socket_addr().is_none()
                {
                    return Err(BuildError::BadAddress {
                        cluster: cluster.name.clone(),
                        address: ep.address.to_string(),
                    });
                }
                let p = loc.priority as usize;
                if priorities.len() <= p {
                    priorities.resize_with(p + 1, Vec::new);
                }
                priorities[p].push(hosts.len());
                hosts.push(Arc::new(Host::new(
                    ep.address.clone(),
                    ep.load_balancing_weight,
                    !matches!(
                        ep.health_status,
                        HealthStatus::Unhealthy | HealthStatus::Draining | HealthStatus::Timeout
                    ),
                    loc.locality.clone(),
                    ep.hostname.clone(),
                )));
            }
        }
        Ok(Self {
            name: cluster.name.as_str().into(),
            hosts,
            priorities,
            next: AtomicUsize::new(0),
        })
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// All hosts, in config order.
    pub fn hosts(&self) -> &[Arc<Host>] {
        &self.hosts
    }

    /// Picks a host, or `None` when the cluster has no hosts.
    pub fn pick(&self, cx: &LbContext) -> Option<&Arc<Host>> {
        self.pick_index(cx).map(|i| &self.hosts[i])
    }

    /// Picks a host and returns its index in [`ClusterLb::hosts`], or `None` when the cluster
    /// has no hosts. Callers that keep per-host state in a parallel array use this.
    pub fn pick_index(&self, _cx: &LbContext) -> Option<usize> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        for level in &self.priorities {
            let healthy = level
                .iter()
                .filter(|&&i| self.hosts[i].is_healthy())
                .count();
            if healthy > 0 {
                let k = n % healthy;
                return level
                    .iter()
                    .copied()
                    .filter(|&i| self.hosts[i].is_healthy())
                    .nth(k);
            }
        }
        // No healthy host anywhere: panic mode spreads over every host of priority 0.
        let level = self.priorities.first().filter(|l| !l.is_empty())?;
        Some(level[n % level.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::config::Cluster;

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
    fn unhealthy_hosts_are_skipped_until_all_are_unhealthy() {
        let mut c = cluster(2);
        let la = c.load_assignment.as_mut().unwrap();
        la.endpoints[0].lb_endpoints[0].health_status = HealthStatus::Unhealthy;
        let lb = ClusterLb::new(&c).unwrap();
        for _ in 0..10 {
            assert_eq!(lb.pick(&LbContext::default()).unwrap().address().port, 9001);
        }
        c.load_assignment.as_mut().unwrap().endpoints[0].lb_endpoints[1].health_status =
            HealthStatus::Draining;
        let lb = ClusterLb::new(&c).unwrap();
        let picks: std::collections::HashSet<_> = (0..10)
            .map(|_| lb.pick(&LbContext::default()).unwrap().address().port)
            .collect();
        assert_eq!(picks.len(), 2, "panic mode uses every host");
    }
}
