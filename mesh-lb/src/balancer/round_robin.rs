//! Weighted round robin (SEMANTICS.md §4.4).
//!
//! Equal weights: `hosts[idx++ % n]`. Different weights: Envoy's earliest-deadline-first
//! scheduler — each host has deadline `k / weight` for its k-th pick, the smallest deadline
//! wins, ties go to the entry inserted first. The EDF order is periodic with period
//! `Σ weight / gcd`, so it is computed once at build time into a table and a pick is one
//! atomic increment and one load: exact proportions over every full cycle, smooth within it,
//! and no lock. Deadlines are compared as exact rationals, not floats.
//!
//! A cycle longer than [`MAX_TABLE`] entries (huge, coprime weights) is scaled down to fit,
//! which keeps proportions to within one pick per host per cycle.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Balancer;
use crate::PickContext;

/// Longest EDF cycle kept as a table.
pub const MAX_TABLE: u64 = 1 << 18;

/// Weighted round robin over a fixed host list.
#[derive(Debug)]
pub struct RoundRobin {
    next: AtomicUsize,
    order: Order,
}

#[derive(Debug)]
enum Order {
    Rotation(usize),
    Table(Vec<u32>),
}

impl RoundRobin {
    /// A balancer for hosts of these weights (0 counts as 1); the first pick is at cycle
    /// position `seed` (Envoy pre-advances its scheduler by a seed the same way).
    pub fn new(weights: &[u32], seed: u64) -> Self {
        let n = weights.len();
        let equal = weights.windows(2).all(|w| w[0].max(1) == w[1].max(1));
        let order = if equal {
            Order::Rotation(n)
        } else {
            Order::Table(edf_cycle(weights))
        };
        let len = match &order {
            Order::Rotation(n) => *n,
            Order::Table(t) => t.len(),
        };
        let start = if len == 0 {
            0
        } else {
            (seed % len as u64) as usize
        };
        Self {
            next: AtomicUsize::new(start),
            order,
        }
    }

    /// Length of one full cycle.
    pub fn cycle_len(&self) -> usize {
        match &self.order {
            Order::Rotation(n) => *n,
            Order::Table(t) => t.len(),
        }
    }
}

impl Balancer for RoundRobin {
    fn pick(&self, _cx: &PickContext) -> Option<usize> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        match &self.order {
            Order::Rotation(0) => None,
            Order::Rotation(n) => Some(i % n),
            Order::Table(t) if t.is_empty() => None,
            Order::Table(t) => Some(t[i % t.len()] as usize),
        }
    }
}

#[derive(PartialEq, Eq)]
struct Entry {
    /// Deadline `k / w`.
    k: u64,
    w: u64,
    seq: u64,
    host: u32,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        // BinaryHeap is a max-heap: reverse so the smallest deadline, then the smallest
        // insertion sequence, comes out first.
        let a = u128::from(self.k) * u128::from(other.w);
        let b = u128::from(other.k) * u128::from(self.w);
        b.cmp(&a).then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// One full EDF cycle for these weights: host positions in pick order. Each host appears
/// `weight / gcd` times (after scaling when the cycle would exceed [`MAX_TABLE`]).
pub fn edf_cycle(weights: &[u32]) -> Vec<u32> {
    let mut w: Vec<u64> = weights.iter().map(|&w| u64::from(w.max(1))).collect();
    let g = w.iter().copied().fold(0, gcd).max(1);
    w.iter_mut().for_each(|x| *x /= g);
    let mut total: u64 = w.iter().sum();
    if total > MAX_TABLE {
        let scale = MAX_TABLE as f64 / total as f64;
        w.iter_mut()
            .for_each(|x| *x = ((*x as f64 * scale).round() as u64).max(1));
        let g = w.iter().copied().fold(0, gcd).max(1);
        w.iter_mut().for_each(|x| *x /= g);
        total = w.iter().sum();
    }
    let mut heap: BinaryHeap<Entry> = w
        .iter()
        .enumerate()
        .map(|(i, &w)| Entry {
            k: 1,
            w,
            seq: i as u64,
            host: i as u32,
        })
        .collect();
    let mut seq = w.len() as u64;
    let mut out = Vec::with_capacity(total as usize);
    while (out.len() as u64) < total {
        let Some(mut e) = heap.pop() else { break };
        out.push(e.host);
        e.k += 1;
        e.seq = seq;
        seq += 1;
        heap.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(rr: &RoundRobin, n: usize, picks: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for _ in 0..picks {
            c[rr.pick(&PickContext::default()).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn equal_weights_rotate() {
        let rr = RoundRobin::new(&[1, 1, 1], 0);
        let seq: Vec<_> = (0..6)
            .map(|_| rr.pick(&PickContext::default()).unwrap())
            .collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weighted_exact_over_full_cycles() {
        let rr = RoundRobin::new(&[1, 2, 3], 0);
        assert_eq!(rr.cycle_len(), 6);
        assert_eq!(counts(&rr, 3, 600), [100, 200, 300]);
        // gcd is taken out: 10:20:30 has the same 6-pick cycle.
        let rr = RoundRobin::new(&[10, 20, 30], 5);
        assert_eq!(rr.cycle_len(), 6);
        assert_eq!(counts(&rr, 3, 6), [1, 2, 3]);
        let rr = RoundRobin::new(&[5, 1, 1, 3, 7], 3);
        assert_eq!(counts(&rr, 5, 17 * 11), [55, 11, 11, 33, 77]);
    }

    #[test]
    fn weighted_is_smooth_and_ties_fifo() {
        // Deadlines: a 1/3, 2/3, 1; b 1. At the tie b was inserted before a's re-insert.
        assert_eq!(edf_cycle(&[3, 1]), [0, 0, 1, 0]);
        // 2:1: a 1/2, 1; b 1 ⇒ a, then the tie a(1, reinserted later) vs b(1, seq 1) ⇒ b, a.
        assert_eq!(edf_cycle(&[2, 1]), [0, 1, 0]);
        // 5:1:1 never gives the heavy host more than 5 picks in a row.
        let c = edf_cycle(&[5, 1, 1]);
        assert_eq!(c.len(), 7);
        assert_eq!(c.iter().filter(|&&h| h == 0).count(), 5);
    }

    #[test]
    fn huge_cycles_are_scaled() {
        let c = edf_cycle(&[1_000_003, 999_983, 7]);
        assert!(c.len() as u64 <= MAX_TABLE + 3);
        let n0 = c.iter().filter(|&&h| h == 0).count() as f64;
        let n1 = c.iter().filter(|&&h| h == 1).count() as f64;
        assert!((n0 / n1 - 1_000_003.0 / 999_983.0).abs() < 0.001);
        assert!(c.contains(&2));
    }
}
