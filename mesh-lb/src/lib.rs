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
/// The `http` crate, whose request types this crate's API takes.
pub use http;
/// The config model this crate takes (re-exported from `mesh-core`), so a program that uses
/// this crate alone needs no other; `mesh_xds::envoy` (with `default-features = false`, the
/// file readers alone) loads it from Envoy YAML or JSON.
pub use mesh_core::config;
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
///
/// The random value is where least-request, random, ring-hash and Maglev balancers (and the
/// choice among priorities and localities) get their randomness, so it must differ from pick to
/// pick: [`LbContext::default`] and [`LbContext::random`] draw a fresh one from a per-thread
/// generator, [`LbContext::from_rng`] from an injected [`Random`] (a [`SeededRandom`] in tests).
/// [`LbContext::new`] takes a fixed value, for tests that want one pick to be exactly repeatable.
///
/// ```
/// use mesh_core::config::{Cluster, LbPolicy};
/// use mesh_lb::{ClusterLb, LbContext, SeededRandom};
///
/// let hosts = (8081..8085).map(|p| format!("127.0.0.1:{p}").parse().unwrap());
/// let mut cluster = Cluster::new_static("web", hosts);
/// cluster.lb_policy = LbPolicy::Random;
/// let lb = ClusterLb::new(&cluster).unwrap();
///
/// // Every host gets picks: the default context is not a constant.
/// let mut seen = std::collections::BTreeSet::new();
/// for _ in 0..200 {
///     seen.insert(lb.pick(&LbContext::default()).unwrap().address().port);
/// }
/// assert_eq!(seen.len(), 4);
///
/// // A seeded generator makes the same sequence of picks every run.
/// let (a, b) = (SeededRandom::new(7), SeededRandom::new(7));
/// for _ in 0..10 {
///     let x = lb.pick(&LbContext::from_rng(&a)).unwrap().address();
///     let y = lb.pick(&LbContext::from_rng(&b)).unwrap().address();
///     assert_eq!(x, y);
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LbContext {
    /// A random value for balancers that need one.
    pub random: u64,
}

impl LbContext {
    /// A context with a fixed random value (tests that want a pick to be repeatable). A
    /// program should use [`LbContext::default`] or [`LbContext::from_rng`]: a constant here
    /// sends every least-request, random or hashing pick to the same host.
    pub const fn new(random: u64) -> Self {
        Self { random }
    }

    /// A context with a fresh random value from this thread's generator.
    pub fn random() -> Self {
        Self::new(random::fresh())
    }

    /// A context with the next value of `rng`.
    pub fn from_rng(rng: &(impl Random + ?Sized)) -> Self {
        Self::new(rng.next_u64())
    }
}

impl Default for LbContext {
    /// A fresh random value, as [`LbContext::random`].
    fn default() -> Self {
        Self::random()
    }
}

/// Everything one pick may use: a random value, the request hash (hashing balancers and
/// priority choice) and the attempt number (retries move hashing balancers to another host).
///
/// ```
/// let cx = mesh_lb::PickContext::new(42).with_hash(Some(7)).with_attempt(1);
/// assert_eq!((cx.random(), cx.hash(), cx.attempt()), (42, Some(7), 1));
/// ```
///
/// Like [`LbContext`], its [`Default`] draws a fresh random value; [`PickContext::new`] fixes
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// Replaces the random value (a retry's pick, or a re-pick that avoids a host already
    /// tried, draws a new one: with the same value a least-request or random balancer would
    /// pick the same host again).
    pub const fn with_random(mut self, random: u64) -> Self {
        self.random = random;
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

impl Default for PickContext {
    /// A fresh random value from this thread's generator, no hash, attempt 0.
    fn default() -> Self {
        Self::new(random::fresh())
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
