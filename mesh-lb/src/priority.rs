//! Priority load distribution and panic mode (SEMANTICS.md §4.2; Envoy
//! `LoadBalancerBase::recalculatePerPriorityState` and `recalculatePerPriorityPanic`).
//!
//! With `OPF` the overprovisioning factor in percent (default 140):
//! `health[P] = min(100, OPF × healthy / hosts)`, `degraded[P]` likewise; the normalised
//! total availability `NTA = min(100, Σ health + degraded)`; healthy load is handed out in
//! priority order as `min(remaining, health[P] × 100 / NTA)`, then degraded load the same
//! way, and the rounding remainder goes to the first priority with any health (else any
//! degraded host). A priority is in panic when `100 × (healthy + degraded) / hosts` is below
//! the panic threshold (never when NTA is 100); when every priority is, load is split by host
//! counts instead.
//!
//! ```
//! use mesh_lb::priority::{Availability, LevelCounts, PriorityLoad};
//! // 10 hosts at P0 of which 7 healthy ⇒ 98 % stays at P0, 2 % spills to P1.
//! let l = PriorityLoad::compute(&[LevelCounts::new(10, 7, 0), LevelCounts::new(10, 10, 0)], 140, 50);
//! assert_eq!(l.healthy, [98, 2]);
//! assert_eq!(l.choose(97), Some((0, Availability::Healthy)));  // 97 % 100 + 1 = 98
//! assert_eq!(l.choose(98), Some((1, Availability::Healthy)));
//! ```

/// Host counts of one priority level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LevelCounts {
    /// Hosts (excluded hosts not counted).
    pub hosts: u32,
    /// Healthy hosts.
    pub healthy: u32,
    /// Degraded hosts.
    pub degraded: u32,
}

impl LevelCounts {
    /// Counts for one level.
    pub const fn new(hosts: u32, healthy: u32, degraded: u32) -> Self {
        Self {
            hosts,
            healthy,
            degraded,
        }
    }
}

/// Which host source of the chosen priority serves a pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// The healthy hosts.
    Healthy,
    /// The degraded hosts.
    Degraded,
}

/// Per-priority load percentages and panic flags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PriorityLoad {
    /// Percent of requests for each priority's healthy hosts.
    pub healthy: Vec<u32>,
    /// Percent of requests for each priority's degraded hosts.
    pub degraded: Vec<u32>,
    /// Whether each priority is in panic (serves from all its hosts).
    pub panic: Vec<bool>,
    /// Whether every priority is in panic.
    pub total_panic: bool,
}

impl PriorityLoad {
    /// Computes the distribution. `opf` is the overprovisioning factor in percent,
    /// `panic_threshold` the healthy panic threshold in percent (0 disables panic).
    pub fn compute(levels: &[LevelCounts], opf: u32, panic_threshold: u32) -> Self {
        let n = levels.len();
        let pct = |count: u32, hosts: u32| -> u32 {
            if hosts == 0 {
                0
            } else {
                (u64::from(opf) * u64::from(count) / u64::from(hosts)).min(100) as u32
            }
        };
        let health: Vec<u32> = levels.iter().map(|l| pct(l.healthy, l.hosts)).collect();
        let degraded: Vec<u32> = levels.iter().map(|l| pct(l.degraded, l.hosts)).collect();
        let nta = health
            .iter()
            .zip(&degraded)
            .map(|(h, d)| h + d)
            .sum::<u32>()
            .min(100);
        let mut out = Self {
            healthy: vec![0; n],
            degraded: vec![0; n],
            panic: vec![false; n],
            total_panic: false,
        };
        if n == 0 {
            return out;
        }
        if let Some(nz) = std::num::NonZeroU32::new(nta) {
            let mut remaining = 100u32;
            let mut first: Option<usize> = None;
            for (p, (&h, out_h)) in health.iter().zip(out.healthy.iter_mut()).enumerate() {
                if first.is_none() && h > 0 {
                    first = Some(p);
                }
                *out_h = remaining.min(h * 100 / nz);
                remaining -= *out_h;
            }
            for (p, (&d, out_d)) in degraded.iter().zip(out.degraded.iter_mut()).enumerate() {
                if first.is_none() && d > 0 {
                    first = Some(p);
                }
                *out_d = remaining.min(d * 100 / nz);
                remaining -= *out_d;
            }
            debug_assert!(remaining < 100, "some load was handed out when NTA > 0");
            if remaining > 0
                && let Some(f) = first
            {
                if health[f] > 0 {
                    out.healthy[f] += remaining;
                } else {
                    out.degraded[f] += remaining;
                }
            }
        }
        if panic_threshold == 0 {
            if nta == 0 {
                // Panic disabled and nothing available: P0 takes everything and fails.
                out.healthy[0] = 100;
            }
            return out;
        }
        let mut total = true;
        for (p, l) in levels.iter().enumerate() {
            let in_panic = nta != 100 && {
                let avail = if l.hosts == 0 {
                    0.0
                } else {
                    100.0 * f64::from(l.healthy + l.degraded) / f64::from(l.hosts)
                };
                avail < f64::from(panic_threshold)
            };
            out.panic[p] = in_panic;
            total &= in_panic;
        }
        if total {
            out.total_panic = true;
            let all: u64 = levels.iter().map(|l| u64::from(l.hosts)).sum();
            out.degraded.iter_mut().for_each(|d| *d = 0);
            if all == 0 {
                out.healthy.iter_mut().for_each(|h| *h = 0);
                out.healthy[0] = 100;
                return out;
            }
            let mut remaining = 100u32;
            let mut first = None;
            for (p, l) in levels.iter().enumerate() {
                if first.is_none() && l.hosts > 0 {
                    first = Some(p);
                }
                out.healthy[p] = (100 * u64::from(l.hosts) / all) as u32;
                remaining -= out.healthy[p];
            }
            if let Some(f) = first {
                out.healthy[f] += remaining;
            }
        }
        out
    }

    /// The priority and source for a hash or random value: `h = hash % 100 + 1`, walking the
    /// cumulative healthy loads, then the degraded loads.
    pub fn choose(&self, hash: u64) -> Option<(usize, Availability)> {
        let h = (hash % 100) as u32 + 1;
        let mut acc = 0;
        for (p, &l) in self.healthy.iter().enumerate() {
            acc += l;
            if l > 0 && h <= acc {
                return Some((p, Availability::Healthy));
            }
        }
        for (p, &l) in self.degraded.iter().enumerate() {
            acc += l;
            if l > 0 && h <= acc {
                return Some((p, Availability::Degraded));
            }
        }
        None
    }
}

/// Effective locality weights for locality-weighted balancing (SEMANTICS.md §4.3):
/// `locality_weight × min(100, OPF × healthy / hosts)` per `(locality_weight, healthy, hosts)`.
///
/// [`ClusterLb`](crate::ClusterLb) uses this weighting when the cluster sets
/// `locality_weighted_lb` (healthy and degraded hosts apart), choosing a locality with the
/// pick's random value after the priority, unless the policy hashes or the priority panics.
///
/// ```
/// // Envoy's example: X weight 1, Y weight 2 fully healthy; X 70 % healthy ⇒ 98 / 298 ≈ 33 %.
/// let w = mesh_lb::priority::locality_effective_weights(&[(1, 70, 100), (2, 10, 10)], 140);
/// assert_eq!(w, [98, 200]);
/// ```
pub fn locality_effective_weights(localities: &[(u32, u32, u32)], opf: u32) -> Vec<u64> {
    localities
        .iter()
        .map(|&(weight, healthy, hosts)| {
            let avail = if hosts == 0 {
                0
            } else {
                (u64::from(opf) * u64::from(healthy) / u64::from(hosts)).min(100)
            };
            u64::from(weight) * avail
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(levels: &[(u32, u32, u32)]) -> Vec<LevelCounts> {
        levels
            .iter()
            .map(|&(h, ok, d)| LevelCounts::new(h, ok, d))
            .collect()
    }

    #[test]
    fn envoy_example_health_and_degraded() {
        // health 10/20/10 and degraded 20/10/0 with OPF 100 on 100 hosts each.
        let l = PriorityLoad::compute(
            &counts(&[(100, 10, 20), (100, 20, 10), (100, 10, 0)]),
            100,
            0,
        );
        assert_eq!(l.healthy, [16, 28, 14]);
        assert_eq!(l.degraded, [28, 14, 0]);
    }

    #[test]
    fn spill_over_at_exact_thresholds() {
        // OPF 140: 72 of 100 healthy ⇒ 100.8 ⇒ 100 %; 71 ⇒ 99 %.
        let l = PriorityLoad::compute(&counts(&[(100, 72, 0), (10, 10, 0)]), 140, 50);
        assert_eq!(l.healthy, [100, 0]);
        let l = PriorityLoad::compute(&counts(&[(100, 71, 0), (10, 10, 0)]), 140, 50);
        assert_eq!(l.healthy, [99, 1]);
        // Nothing at P0 ⇒ all at P1.
        let l = PriorityLoad::compute(&counts(&[(10, 0, 0), (10, 10, 0)]), 140, 50);
        assert_eq!(l.healthy, [0, 100]);
        assert_eq!(l.panic, [false, false], "NTA 100 ⇒ no panic");
    }

    #[test]
    fn panic_at_exact_threshold() {
        // 5 of 10 healthy = 50 %: not below 50 ⇒ no panic; 70 % scaled to 100.
        let l = PriorityLoad::compute(&counts(&[(10, 5, 0)]), 140, 50);
        assert_eq!(
            (l.healthy.as_slice(), l.panic.as_slice()),
            (&[100][..], &[false][..])
        );
        // 4 of 10 = 40 % < 50 ⇒ panic.
        let l = PriorityLoad::compute(&counts(&[(10, 4, 0)]), 140, 50);
        assert!(l.panic[0] && l.total_panic);
        assert_eq!(l.healthy, [100]);
        // Threshold 0 disables panic; nothing healthy ⇒ P0 gets all load, with no host.
        let l = PriorityLoad::compute(&counts(&[(10, 0, 0)]), 140, 0);
        assert_eq!(
            (l.healthy.as_slice(), l.panic.as_slice()),
            (&[100][..], &[false][..])
        );
    }

    #[test]
    fn total_panic_splits_by_host_count() {
        let l = PriorityLoad::compute(&counts(&[(10, 1, 0), (20, 2, 0), (30, 0, 0)]), 140, 50);
        assert!(l.total_panic);
        assert_eq!(l.healthy, [17, 33, 50]);
        // One level in panic, the other not: normal distribution, panic only at P0.
        let l = PriorityLoad::compute(&counts(&[(10, 3, 0), (10, 10, 0)]), 140, 50);
        assert_eq!(l.panic, [false, false], "NTA = 42 + 100 ⇒ 100");
        // 14 + 70 = 84 ⇒ NTA 84: P0 (10 %) panics, P1 (50 %) does not.
        let l = PriorityLoad::compute(&counts(&[(10, 1, 0), (10, 5, 0)]), 140, 50);
        assert_eq!(l.panic, [true, false]);
        assert!(!l.total_panic);
        assert_eq!(l.healthy, [17, 83]);
    }

    #[test]
    fn degraded_absorbs_load() {
        let l = PriorityLoad::compute(&counts(&[(10, 5, 5)]), 140, 50);
        assert_eq!((l.healthy[0], l.degraded[0]), (70, 30));
        assert_eq!(l.choose(69), Some((0, Availability::Healthy)));
        assert_eq!(l.choose(70), Some((0, Availability::Degraded)));
    }

    #[test]
    fn locality_weights_envoy_example() {
        // X weight 1 (100 hosts, varying health), Y weight 2 fully healthy.
        let share = |healthy: u32| {
            let w = locality_effective_weights(&[(1, healthy, 100), (2, 10, 10)], 140);
            (100.0 * w[0] as f64 / (w[0] + w[1]) as f64).round() as u32
        };
        assert_eq!([100, 70, 69, 50, 25, 0].map(share), [33, 33, 32, 26, 15, 0]);
    }
}
