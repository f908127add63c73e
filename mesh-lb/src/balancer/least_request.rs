//! Least request (SEMANTICS.md §4.5).
//!
//! Equal weights: the power of N choices (Mitzenmacher, "The Power of Two Choices in
//! Randomized Load Balancing", 2001) — sample `choice_count` hosts uniformly with replacement
//! and keep the one with the fewest active requests (ties keep the earlier sample), exactly as
//! Envoy's `LeastRequestLoadBalancer::unweightedHostPick`.
//!
//! Different weights: Envoy's effective weight `weight / (active + 1)^bias`. Envoy feeds it to
//! a shared EDF scheduler, which needs a lock; here a pick draws a host in proportion to its
//! static weight (from the precomputed EDF table, O(1)) and accepts it with probability
//! `1 / (active + 1)^bias`, which selects each host with probability proportional to its
//! effective weight — the same long-run share as Envoy's, without a lock. After 16 rejected
//! draws the drawn host with the highest effective weight is taken. A bias of 0 is plain
//! weighted round robin, as in Envoy.

use std::sync::Arc;

use super::round_robin::{RoundRobin, edf_cycle};
use super::{Balancer, Load};
use crate::{Host, PickContext};

const MAX_DRAWS: u64 = 16;

/// Least-request balancing over a fixed host list.
#[derive(Debug)]
pub struct LeastRequest {
    hosts: Vec<Arc<Host>>,
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Choices(u32),
    Weighted { table: Vec<u32>, bias: f64 },
    RoundRobin(RoundRobin),
}

impl LeastRequest {
    /// A balancer over `hosts` (`choice_count` below 2 counts as 2).
    pub fn new(
        hosts: Vec<Arc<Host>>,
        choice_count: u32,
        active_request_bias: f64,
        seed: u64,
    ) -> Self {
        let weights: Vec<u32> = hosts.iter().map(|h| h.weight()).collect();
        let equal = weights.windows(2).all(|w| w[0] == w[1]);
        let mode = if equal {
            Mode::Choices(choice_count.max(2))
        } else if active_request_bias == 0.0 {
            Mode::RoundRobin(RoundRobin::new(&weights, seed))
        } else {
            Mode::Weighted {
                table: edf_cycle(&weights),
                bias: active_request_bias,
            }
        };
        Self { hosts, mode }
    }

    fn effective(&self, i: usize, bias: f64) -> f64 {
        let h = &self.hosts[i];
        f64::from(h.weight()) * penalty(h.load(), bias)
    }
}

/// `1 / (active + 1)^bias`.
fn penalty(active: u64, bias: f64) -> f64 {
    let a = active as f64 + 1.0;
    if bias == 1.0 { 1.0 / a } else { a.powf(-bias) }
}

impl Balancer for LeastRequest {
    fn pick(&self, cx: &PickContext) -> Option<usize> {
        let n = self.hosts.len();
        if n == 0 {
            return None;
        }
        match &self.mode {
            Mode::Choices(count) => {
                let mut best = (cx.random_n(1) % n as u64) as usize;
                let mut best_load = self.hosts[best].load();
                for k in 1..u64::from(*count) {
                    let c = (cx.random_n(1 + k) % n as u64) as usize;
                    let l = self.hosts[c].load();
                    if l < best_load {
                        best = c;
                        best_load = l;
                    }
                }
                Some(best)
            }
            Mode::RoundRobin(rr) => rr.pick(cx),
            Mode::Weighted { table, bias } => {
                let mut best: Option<(usize, f64)> = None;
                for k in 0..MAX_DRAWS {
                    let c = table[(cx.random_n(1 + 2 * k) % table.len() as u64) as usize] as usize;
                    let p = penalty(self.hosts[c].load(), *bias);
                    // Accept with probability p (uniform in [0, 1) from the top 53 bits).
                    let u = (cx.random_n(2 + 2 * k) >> 11) as f64 / (1u64 << 53) as f64;
                    if u < p {
                        return Some(c);
                    }
                    let e = self.effective(c, *bias);
                    if best.is_none_or(|(_, b)| e > b) {
                        best = Some((c, e));
                    }
                }
                best.map(|(c, _)| c)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Random;
    use crate::SeededRandom;
    use mesh_core::config::Address;

    fn hosts(weights: &[u32]) -> Vec<Arc<Host>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                Arc::new(Host::new(
                    Address {
                        host: "10.0.0.1".into(),
                        port: 1000 + i as u16,
                    },
                    w,
                    true,
                    Default::default(),
                    None,
                ))
            })
            .collect()
    }

    fn run(lb: &LeastRequest, n: usize, picks: usize, seed: u64) -> Vec<f64> {
        let rng = SeededRandom::new(seed);
        let mut c = vec![0.0; n];
        for _ in 0..picks {
            c[lb.pick(&PickContext::new(rng.next_u64())).unwrap()] += 1.0;
        }
        c.iter().map(|x| x / picks as f64).collect()
    }

    #[test]
    fn two_choices_avoid_the_loaded_host() {
        let hs = hosts(&[1; 4]);
        let _busy: Vec<_> = (0..5).map(|_| hs[0].start_request()).collect();
        let lb = LeastRequest::new(hs, 2, 1.0, 0);
        let share = run(&lb, 4, 40_000, 1);
        // Host 0 wins only when both samples are it: 1/16.
        assert!((share[0] - 1.0 / 16.0).abs() < 0.01, "{share:?}");
        for s in &share[1..] {
            assert!((s - 5.0 / 16.0).abs() < 0.015, "{share:?}");
        }
    }

    #[test]
    fn choice_count_sharpens() {
        let hs = hosts(&[1; 4]);
        let _busy = hs[0].start_request();
        let lb = LeastRequest::new(hs, 3, 1.0, 0);
        let share = run(&lb, 4, 40_000, 2);
        assert!((share[0] - 1.0 / 64.0).abs() < 0.006, "{share:?}");
    }

    #[test]
    fn weighted_idle_follows_weights() {
        let lb = LeastRequest::new(hosts(&[1, 2, 5]), 2, 1.0, 0);
        let share = run(&lb, 3, 80_000, 3);
        for (s, w) in share.iter().zip([1.0, 2.0, 5.0]) {
            assert!((s - w / 8.0).abs() < 0.01, "{share:?}");
        }
    }

    #[test]
    fn weighted_penalises_active_requests() {
        let hs = hosts(&[2, 1]);
        // Host 0: 2 / (3 + 1) = 0.5; host 1: 1 / 1 = 1 ⇒ shares 1/3, 2/3.
        let _busy: Vec<_> = (0..3).map(|_| hs[0].start_request()).collect();
        let lb = LeastRequest::new(hs, 2, 1.0, 0);
        let share = run(&lb, 2, 80_000, 4);
        assert!((share[0] - 1.0 / 3.0).abs() < 0.01, "{share:?}");
        // Bias 0 ignores load: plain weighted round robin 2:1.
        let hs = hosts(&[2, 1]);
        let _busy: Vec<_> = (0..3).map(|_| hs[0].start_request()).collect();
        let lb = LeastRequest::new(hs, 2, 0.0, 0);
        let share = run(&lb, 2, 3_000, 5);
        assert_eq!(share, [2.0 / 3.0, 1.0 / 3.0]);
    }
}
