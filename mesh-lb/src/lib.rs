//! Clusters and load balancing with Envoy's semantics, pure and synchronous.
//!
//! A [`ClusterLb`] is built from a [`mesh_core::config::Cluster`]; the proxy asks it for a
//! [`Host`] per request with [`ClusterLb::pick`] (or [`ClusterLb::pick_with`] when it has a
//! request hash or a retry attempt). Nothing here does I/O: time comes in as explicit `now`
//! arguments (a monotonic [`Duration`](std::time::Duration) since any fixed origin) and
//! randomness through the per-pick random value of the context or an injected [`Random`].
//!
//! What is inside (SEMANTICS.md §4–§6):
//!
//! | Concern | Where |
//! |---|---|
//! | Balancers (`lb_policy`): weighted round robin (EDF), least request, random, ring hash, Maglev | [`balancer`] |
//! | Priority levels, overprovisioning factor, panic threshold, degraded hosts | [`priority`], [`ClusterLb`] |
//! | Locality-weighted balancing (`locality_weighted_lb_config`) | [`priority::locality_effective_weights`], [`ClusterLb`] |
//! | Request hash policies (header, cookie, source IP, query parameter) | [`hash`] |
//! | Envoy's subset load balancer (`lb_subset_config`), picked by a route's `metadata_match` | [`subset`], [`ClusterLb::pick_index_matching`] |
//! | Circuit breakers with RAII permits | [`breaker`] |
//! | Outlier detection (consecutive errors, success rate, failure percentage) | [`outlier`] |
//! | Active health-check state machine and EDS health mapping | [`health`] |
//!
//! The pick path takes no lock: health-derived state (priority loads, per-priority balancers)
//! is rebuilt when a host's health flags change and published through an `ArcSwap`.
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

pub mod balancer;
pub mod breaker;
mod cluster;
pub mod hash;
pub mod health;
mod host;
pub mod outlier;
pub mod priority;
mod random;
pub mod subset;

pub use cluster::{ClusterLb, ClusterLbBuilder};
pub use host::{ActiveRequest, Host};
pub use random::{Random, SeededRandom, mix64};

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
    /// A balancer setting is out of range.
    #[error("cluster {cluster:?}: invalid {field}: {reason}")]
    InvalidLbConfig {
        /// The cluster.
        cluster: String,
        /// The offending field.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
}

/// What a balancer may look at for one pick: the request's random value.
///
/// Kept with its single public field so `LbContext { random }` keeps compiling; richer picks
/// (request hash, retry attempt) use [`PickContext`], which converts from this type.
#[derive(Debug, Clone, Copy, Default)]
pub struct LbContext {
    /// A random value for balancers that need one.
    pub random: u64,
}

impl LbContext {
    /// A context with the request's random value.
    pub const fn new(random: u64) -> Self {
        Self { random }
    }
}

/// Everything one pick may use: a random value, the request hash (hashing balancers and
/// priority choice) and the attempt number (retries move hashing balancers to another host).
///
/// ```
/// let cx = mesh_lb::PickContext::new(42).with_hash(Some(7)).with_attempt(1);
/// assert_eq!((cx.random(), cx.hash(), cx.attempt()), (42, Some(7), 1));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PickContext {
    random: u64,
    hash: Option<u64>,
    attempt: u32,
}

impl PickContext {
    /// A context with a random value, no hash and attempt 0.
    pub const fn new(random: u64) -> Self {
        Self {
            random,
            hash: None,
            attempt: 0,
        }
    }

    /// Sets the request hash (from [`hash::HashPolicies`]); `None` makes hashing balancers
    /// pick at random, as Envoy does.
    pub const fn with_hash(mut self, hash: Option<u64>) -> Self {
        self.hash = hash;
        self
    }

    /// Sets the attempt number (0 for the first try, 1 for the first retry…).
    pub const fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The random value.
    pub const fn random(&self) -> u64 {
        self.random
    }

    /// The request hash, if any.
    pub const fn hash(&self) -> Option<u64> {
        self.hash
    }

    /// The attempt number.
    pub const fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The `i`-th independent random value derived from the context's random value.
    pub fn random_n(&self, i: u64) -> u64 {
        mix64(
            self.random
                .wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        )
    }
}

impl From<LbContext> for PickContext {
    fn from(cx: LbContext) -> Self {
        Self::new(cx.random)
    }
}

impl From<&LbContext> for PickContext {
    fn from(cx: &LbContext) -> Self {
        Self::new(cx.random)
    }
}
