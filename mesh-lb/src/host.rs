//! An upstream host and its live state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mesh_core::config::{Address, Locality};

/// One upstream host of a cluster, with state the proxy updates as requests come and go.
#[derive(Debug)]
pub struct Host {
    address: Address,
    weight: u32,
    healthy: AtomicBool,
    locality: Locality,
    hostname: Option<String>,
    active_requests: AtomicU64,
}

impl Host {
    /// A host.
    pub fn new(
        address: Address,
        weight: u32,
        healthy: bool,
        locality: Locality,
        hostname: Option<String>,
    ) -> Self {
        Self {
            address,
            weight,
            healthy: AtomicBool::new(healthy),
            locality,
            hostname,
            active_requests: AtomicU64::new(0),
        }
    }

    /// Where to connect.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Load-balancing weight.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Locality.
    pub fn locality(&self) -> &Locality {
        &self.locality
    }

    /// Hostname (for auto host rewrite): the endpoint's `hostname`, or the DNS name it was
    /// configured with.
    pub fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    /// Whether the host may receive traffic.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Marks the host healthy or not.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Requests in flight to this host.
    pub fn active_requests(&self) -> u64 {
        self.active_requests.load(Ordering::Relaxed)
    }

    /// Counts a request as started; the guard counts it as finished when dropped.
    pub fn start_request(self: &Arc<Self>) -> ActiveRequest {
        self.active_requests.fetch_add(1, Ordering::Relaxed);
        ActiveRequest(Arc::clone(self))
    }
}

/// Decrements a host's active-request count when dropped.
#[derive(Debug)]
pub struct ActiveRequest(Arc<Host>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.active_requests.fetch_sub(1, Ordering::Relaxed);
    }
}
