//! The hosts of an `ORIGINAL_DST` cluster: made on demand, one per original destination a
//! request was going to, and dropped once unused (Envoy's `cleanup_interval`, 5 s).
//!
//! A destination already seen costs one lock-free map read; a new one takes a lock to add it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use mesh_core::config::{Address, Cluster, UpstreamProtocol};
use mesh_lb::Host;
use tokio::time::Instant;

use crate::upstream::{ConnLimits, HostPool, PoolStats};

/// How long a destination's host stays without a request (Envoy's default
/// `cleanup_interval`).
const CLEANUP_INTERVAL: Duration = Duration::from_secs(5);

/// One destination's host and connection pool.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) host: Arc<Host>,
    pub(crate) pool: Arc<HostPool>,
    /// Milliseconds since the hosts' epoch of the last request.
    last_used: AtomicU64,
}

/// The hosts of one `ORIGINAL_DST` cluster.
#[derive(Debug)]
pub(crate) struct OriginalDstHosts {
    map: ArcSwap<HashMap<SocketAddr, Arc<Entry>>>,
    add: Mutex<()>,
    protocol: UpstreamProtocol,
    limits: ConnLimits,
    stats: Arc<PoolStats>,
    tls: Option<Arc<crate::tls::ClientTls>>,
    epoch: Instant,
}

impl OriginalDstHosts {
    /// The hosts of `c`, keeping those of `previous` when their pools still fit.
    pub(crate) fn new(
        c: &Cluster,
        stats: Arc<PoolStats>,
        previous: Option<&OriginalDstHosts>,
        tls: Option<Arc<crate::tls::ClientTls>>,
    ) -> Self {
        let limits = ConnLimits::of(c);
        let same_tls = |p: &OriginalDstHosts| {
            p.tls.as_deref().map(|t| &t.context) == tls.as_deref().map(|t| &t.context)
        };
        let kept = previous
            .filter(|p| p.protocol == c.protocol && p.limits == limits && same_tls(p))
            .map(|p| (p.map.load_full(), p.epoch));
        let (map, epoch) = kept.unwrap_or_else(|| (Arc::default(), Instant::now()));
        Self {
            map: ArcSwap::new(map),
            add: Mutex::new(()),
            protocol: c.protocol,
            limits,
            stats,
            tls,
            epoch,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The host for `destination`, made when it is new.
    pub(crate) fn get(&self, destination: SocketAddr) -> Arc<Entry> {
        let now = self.now_ms();
        if let Some(e) = self.map.load().get(&destination) {
            e.last_used.store(now, Ordering::Relaxed);
            return Arc::clone(e);
        }
        let _adding = self.add.lock().unwrap_or_else(|p| p.into_inner());
        let map = self.map.load_full();
        if let Some(e) = map.get(&destination) {
            return Arc::clone(e);
        }
        let address = Address {
            host: destination.ip().to_string(),
            port: destination.port(),
        };
        let entry = Arc::new(Entry {
            host: Arc::new(Host::new(
                address.clone(),
                1,
                true,
                mesh_core::config::Locality::default(),
                None,
            )),
            pool: Arc::new(HostPool::new(
                address,
                self.protocol,
                self.limits,
                Arc::clone(&self.stats),
                self.tls.clone(),
            )),
            last_used: AtomicU64::new(now),
        });
        let mut next = (*map).clone();
        next.insert(destination, Arc::clone(&entry));
        self.map.store(Arc::new(next));
        entry
    }

    /// Expires the hosts' idle connections, and drops the hosts no request used for the
    /// cleanup interval and that have none in flight (their connections close with them).
    pub(crate) fn cleanup(&self, at: Instant) {
        for e in self.map.load().values() {
            e.pool.expire(at);
        }
        let now = self.now_ms();
        let limit = u64::try_from(CLEANUP_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        let stale = |e: &Entry| {
            e.host.active_requests() == 0
                && now.saturating_sub(e.last_used.load(Ordering::Relaxed)) >= limit
        };
        if !self.map.load().values().any(|e| stale(e)) {
            return;
        }
        let _adding = self.add.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = (*self.map.load_full()).clone();
        next.retain(|_, e| !stale(e));
        self.map.store(Arc::new(next));
    }

    /// How many destinations have a host now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.load().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> OriginalDstHosts {
        let c = Cluster {
            name: "PassthroughCluster".into(),
            discovery_type: mesh_core::config::DiscoveryType::OriginalDst,
            lb_policy: mesh_core::config::LbPolicy::ClusterProvided,
            ..Cluster::default()
        };
        let r = mesh_core::stats::Registry::new();
        OriginalDstHosts::new(&c, Arc::new(PoolStats::new(&r, &c.name)), None, None)
    }

    #[tokio::test(start_paused = true)]
    async fn a_destination_has_one_host_until_it_goes_unused() {
        let h = hosts();
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let first = h.get(a);
        assert!(Arc::ptr_eq(&first, &h.get(a)));
        assert_eq!(first.pool.address().to_string(), "10.0.0.1:80");
        h.get(b);
        assert_eq!(h.len(), 2);
        // A request in flight keeps its host; the unused one goes after the interval.
        let active = first.host.start_request();
        tokio::time::advance(CLEANUP_INTERVAL).await;
        h.cleanup(Instant::now());
        assert_eq!(h.len(), 1);
        drop(active);
        h.cleanup(Instant::now());
        assert_eq!(h.len(), 0);
        assert!(!Arc::ptr_eq(&first, &h.get(a)), "a new host after cleanup");
    }
}
