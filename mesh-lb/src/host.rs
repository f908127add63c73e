//! An upstream host and its live state.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use mesh_core::config::{Address, Locality, Metadata};

use crate::health::{HealthFlag, HostHealth};

/// One upstream host of a cluster, with state the proxy updates as requests come and go.
///
/// Health is a set of [`HealthFlag`]s (EDS status, active health checking, outlier
/// ejection); any `Failed*` flag makes the host unhealthy, a `Degraded*` flag degraded.
/// Changing a flag bumps a change counter shared with the cluster, which rebuilds its
/// balancing state on the next pick.
#[derive(Debug)]
pub struct Host {
    address: Address,
    weight: u32,
    flags: AtomicU8,
    locality: Locality,
    hostname: Option<String>,
    active_requests: AtomicU64,
    metadata: Metadata,
    priority: u32,
    hash_key: String,
    epoch: Arc<AtomicU64>,
}

impl Host {
    /// A host. A weight of 0 counts as 1; `healthy: false` sets
    /// [`HealthFlag::FailedEdsHealth`].
    pub fn new(
        address: Address,
        weight: u32,
        healthy: bool,
        locality: Locality,
        hostname: Option<String>,
    ) -> Self {
        let hash_key = address.to_string();
        Self {
            address,
            weight: weight.max(1),
            flags: AtomicU8::new(if healthy {
                0
            } else {
                HealthFlag::FailedEdsHealth.bit()
            }),
            locality,
            hostname,
            active_requests: AtomicU64::new(0),
            metadata: Metadata::default(),
            priority: 0,
            hash_key,
            epoch: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Sets the endpoint metadata (builder style). An `envoy.lb` `hash_key` string becomes the
    /// key the hashing balancers place the host by.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        if let Some(k) = metadata
            .get("envoy.lb")
            .and_then(|m| m.get("hash_key"))
            .and_then(|v| v.as_str())
        {
            self.hash_key = k.to_owned();
        }
        self.metadata = metadata;
        self
    }

    /// Sets the priority level (builder style; 0 is highest and the default).
    pub fn with_priority(mut self, priority: u32) -> Self {
        self.priority = priority;
        self
    }

    pub(crate) fn with_epoch(mut self, epoch: Arc<AtomicU64>) -> Self {
        self.epoch = epoch;
        self
    }

    /// Where to connect.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Load-balancing weight (at least 1).
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Locality.
    pub fn locality(&self) -> &Locality {
        &self.locality
    }

    /// Priority level (0 is highest).
    pub fn priority(&self) -> u32 {
        self.priority
    }

    /// Endpoint metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The key hashing balancers place this host by: `envoy.lb` `hash_key`, else the
    /// address as `ip:port`.
    pub fn hash_key(&self) -> &str {
        &self.hash_key
    }

    /// Hostname (for auto host rewrite): the endpoint's `hostname`, or the DNS name it was
    /// configured with.
    pub fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    /// The host's health from its flags.
    pub fn health(&self) -> HostHealth {
        HostHealth::from_bits(self.flags.load(Ordering::Acquire))
    }

    /// Whether the host is fully healthy (no failed and no degraded flag).
    pub fn is_healthy(&self) -> bool {
        self.health() == HostHealth::Healthy
    }

    /// Whether the host is degraded (no failed flag, some degraded flag).
    pub fn is_degraded(&self) -> bool {
        self.health() == HostHealth::Degraded
    }

    /// Whether a health flag is set.
    pub fn has_flag(&self, flag: HealthFlag) -> bool {
        self.flags.load(Ordering::Acquire) & flag.bit() != 0
    }

    /// Sets or clears a health flag; returns whether the flag changed.
    pub fn set_flag(&self, flag: HealthFlag, on: bool) -> bool {
        let old = if on {
            self.flags.fetch_or(flag.bit(), Ordering::AcqRel)
        } else {
            self.flags.fetch_and(!flag.bit(), Ordering::AcqRel)
        };
        let changed = (old & flag.bit() != 0) != on;
        if changed {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        changed
    }

    /// Marks the host healthy or not as far as the config source (EDS) is concerned: clears
    /// or sets [`HealthFlag::FailedEdsHealth`].
    pub fn set_healthy(&self, healthy: bool) {
        self.set_flag(HealthFlag::FailedEdsHealth, !healthy);
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
