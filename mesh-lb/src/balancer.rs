//! Host selection within one host source (the healthy, degraded or all hosts of a priority).
//!
//! A [`Balancer`] is built from a snapshot of hosts ([`Policy::build`]) and is read-only
//! afterwards except for atomics: picks take `&self` and no lock. Randomness comes from the
//! [`PickContext`]; the load a least-request balancer compares comes
//! through [`Load`].
//!
//! | `lb_policy` | Type | Envoy behaviour kept |
//! |---|---|---|
//! | `ROUND_ROBIN` | [`RoundRobin`] | rotation when weights are equal, EDF (smooth, exact per cycle) otherwise |
//! | `LEAST_REQUEST` | [`LeastRequest`] | N random choices (default 2) when weights are equal; `weight / (active+1)^bias` otherwise |
//! | `RANDOM` | [`UniformRandom`] | `random % n`, weights ignored |
//! | `RING_HASH` | [`RingHash`] | ketama ring of xxHash64(`key_i`), sized by `minimum/maximum_ring_size` |
//! | `MAGLEV` | [`Maglev`] | Envoy's weighted permutation table (default 65537 entries) |

pub mod least_request;
pub mod maglev;
pub mod random;
pub mod ring_hash;
pub mod round_robin;

use std::fmt;
use std::sync::Arc;

use mesh_core::config::{Cluster, LbPolicy};

pub use least_request::LeastRequest;
pub use maglev::Maglev;
pub use random::UniformRandom;
pub use ring_hash::RingHash;
pub use round_robin::RoundRobin;

use crate::{BuildError, Host, PickContext};

/// Picks one host of the source a balancer was built over.
pub trait Balancer: Send + Sync + fmt::Debug {
    /// The position of the chosen host in the slice the balancer was built from, or `None`
    /// when it was built from no host.
    fn pick(&self, cx: &PickContext) -> Option<usize>;
}

/// A load metric for least-request balancing (Envoy's `rq_active`).
pub trait Load {
    /// The current load; lower is better.
    fn load(&self) -> u64;
}

impl Load for Host {
    fn load(&self) -> u64 {
        self.active_requests()
    }
}

/// The balancing policy of a cluster with its settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Policy {
    /// Weighted round robin.
    RoundRobin,
    /// Least request.
    LeastRequest {
        /// Hosts sampled per pick when weights are equal (default 2, at least 2).
        choice_count: u32,
        /// Exponent of the active-request penalty when weights differ (default 1.0).
        active_request_bias: f64,
    },
    /// Uniform random.
    Random,
    /// Ring hash (ketama).
    RingHash {
        /// Smallest ring (default 1024).
        minimum_ring_size: u64,
        /// Largest ring (default 8M).
        maximum_ring_size: u64,
    },
    /// Maglev.
    Maglev {
        /// Lookup table size, a prime (default 65537).
        table_size: u64,
    },
}

/// Largest ring Envoy accepts.
pub const MAX_RING_SIZE: u64 = 8 * 1024 * 1024;
/// Largest Maglev table Envoy accepts.
pub const MAX_MAGLEV_TABLE_SIZE: u64 = 5_000_011;

impl Policy {
    /// The policy a cluster configures.
    pub fn from_cluster(c: &Cluster) -> Self {
        match c.lb_policy {
            // An ORIGINAL_DST cluster has no hosts to balance: the proxy connects where each
            // connection was going.
            LbPolicy::RoundRobin | LbPolicy::ClusterProvided => Self::RoundRobin,
            LbPolicy::LeastRequest => Self::LeastRequest {
                choice_count: c.least_request.choice_count,
                active_request_bias: c.least_request.active_request_bias,
            },
            LbPolicy::Random => Self::Random,
            LbPolicy::RingHash => Self::RingHash {
                minimum_ring_size: c.ring_hash.minimum_ring_size,
                maximum_ring_size: c.ring_hash.maximum_ring_size,
            },
            LbPolicy::Maglev => Self::Maglev {
                table_size: c.maglev_table_size,
            },
        }
    }

    /// Whether the policy hashes requests (ring hash, Maglev).
    pub fn uses_hash(&self) -> bool {
        matches!(self, Self::RingHash { .. } | Self::Maglev { .. })
    }

    /// Checks the settings as Envoy's config validation does.
    ///
    /// # Errors
    /// [`BuildError::InvalidLbConfig`] for `choice_count < 2`, a negative or non-finite bias,
    /// ring sizes of 0, above 8M or min > max, and a Maglev table size that is not a prime
    /// ≤ 5 000 011.
    pub fn validate(&self, cluster: &str) -> Result<(), BuildError> {
        let err = |field: &'static str, reason: String| {
            Err(BuildError::InvalidLbConfig {
                cluster: cluster.to_owned(),
                field,
                reason,
            })
        };
        match *self {
            Self::RoundRobin | Self::Random => Ok(()),
            Self::LeastRequest {
                choice_count,
                active_request_bias,
            } => {
                if choice_count < 2 {
                    return err("choice_count", format!("{choice_count} is below 2"));
                }
                if !active_request_bias.is_finite() || active_request_bias < 0.0 {
                    return err(
                        "active_request_bias",
                        format!("{active_request_bias} is not a finite value ≥ 0"),
                    );
                }
                Ok(())
            }
            Self::RingHash {
                minimum_ring_size: min,
                maximum_ring_size: max,
            } => {
                if min == 0 || max == 0 || min > MAX_RING_SIZE || max > MAX_RING_SIZE {
                    return err(
                        "ring_hash",
                        format!("ring sizes must be in 1..={MAX_RING_SIZE}"),
                    );
                }
                if min > max {
                    return err(
                        "minimum_ring_size",
                        format!("{min} is above maximum_ring_size {max}"),
                    );
                }
                Ok(())
            }
            Self::Maglev { table_size } => {
                if table_size > MAX_MAGLEV_TABLE_SIZE || !maglev::is_prime(table_size) {
                    return err(
                        "maglev_table_size",
                        format!("{table_size} is not a prime ≤ {MAX_MAGLEV_TABLE_SIZE}"),
                    );
                }
                Ok(())
            }
        }
    }

    /// Builds a balancer over `hosts` (positions in this slice are what it picks). `seed`
    /// de-synchronises round-robin starting points, as Envoy's per-worker seeds do.
    pub fn build(&self, hosts: &[Arc<Host>], seed: u64) -> Box<dyn Balancer> {
        match *self {
            Self::RoundRobin => Box::new(RoundRobin::new(
                &hosts.iter().map(|h| h.weight()).collect::<Vec<_>>(),
                seed,
            )),
            Self::LeastRequest {
                choice_count,
                active_request_bias,
            } => Box::new(LeastRequest::new(
                hosts.to_vec(),
                choice_count,
                active_request_bias,
                seed,
            )),
            Self::Random => Box::new(UniformRandom::new(hosts.len())),
            Self::RingHash {
                minimum_ring_size,
                maximum_ring_size,
            } => Box::new(RingHash::new(hosts, minimum_ring_size, maximum_ring_size)),
            Self::Maglev { table_size } => Box::new(Maglev::new(hosts, table_size)),
        }
    }
}

/// The hash a hashing balancer uses: the request hash, or a random value when the request
/// has none (Envoy falls back to random selection).
pub(crate) fn request_hash(cx: &PickContext) -> u64 {
    cx.hash().unwrap_or_else(|| cx.random_n(1))
}
