//! Maglev (SEMANTICS.md §4.8; Eisenbud et al., "Maglev: A Fast and Reliable Software
//! Network Load Balancer", NSDI 2016; Envoy `maglev_lb.cc`).
//!
//! Build: hosts sorted by key; per host `offset = xxHash64(key, 0) % M`,
//! `skip = xxHash64(key, 1) % (M − 1) + 1`. Rounds `r = 1, 2, …` walk the hosts until the
//! table is full; a host of normalised weight `w` takes part in round `r` only when
//! `r × w ≥ target`, then `target += max_w` and it takes the next free slot of its
//! permutation `(offset + skip × next) % M`. The permutation is advanced by addition, not
//! multiplication, so a build is a few milliseconds even for 1,000 hosts.
//!
//! Lookup: `table[hash % M]`; retry attempt `a > 0` first does `hash ^= !0 − a + 1`.

use std::sync::Arc;

use super::{Balancer, request_hash};
use crate::hash::xxhash64;
use crate::{Host, PickContext};

/// Envoy's default table size.
pub const DEFAULT_TABLE_SIZE: u64 = 65537;

/// A Maglev lookup table.
#[derive(Debug, Clone)]
pub struct Maglev {
    table: Vec<u32>,
}

impl Maglev {
    /// Builds the table over `hosts` (keys from [`Host::hash_key`], weights from
    /// [`Host::weight`]). `table_size` should be prime (see
    /// [`Policy::validate`](super::Policy::validate)).
    pub fn new(hosts: &[Arc<Host>], table_size: u64) -> Self {
        let keyed: Vec<(&str, u32)> = hosts.iter().map(|h| (h.hash_key(), h.weight())).collect();
        Self::from_keys(&keyed, table_size)
    }

    /// Builds the table from `(key, weight)` pairs; entries are positions in `keys`.
    pub fn from_keys(keys: &[(&str, u32)], table_size: u64) -> Self {
        let m = table_size.max(2);
        if keys.is_empty() {
            return Self { table: Vec::new() };
        }
        struct Entry {
            pos: u32,
            skip: u64,
            weight: f64,
            target: f64,
            /// The current permutation slot, `(offset + skip × next) % M`.
            slot: u64,
        }
        let sum: f64 = keys.iter().map(|&(_, w)| f64::from(w.max(1))).sum();
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| keys[a].0.cmp(keys[b].0).then(a.cmp(&b)));
        let mut entries: Vec<Entry> = order
            .into_iter()
            .map(|i| {
                let (key, w) = keys[i];
                let offset = xxhash64(key.as_bytes(), 0) % m;
                let skip = xxhash64(key.as_bytes(), 1) % (m - 1) + 1;
                Entry {
                    pos: i as u32,
                    skip,
                    weight: f64::from(w.max(1)) / sum,
                    target: 0.0,
                    slot: offset,
                }
            })
            .collect();
        let max_w = entries.iter().map(|e| e.weight).fold(0.0, f64::max);
        const EMPTY: u32 = u32::MAX;
        let mut table = vec![EMPTY; m as usize];
        let mut filled = 0u64;
        let mut round = 1u64;
        while filled < m {
            for e in entries.iter_mut() {
                if filled >= m {
                    break;
                }
                if (round as f64) * e.weight < e.target {
                    continue;
                }
                e.target += max_w;
                while table[e.slot as usize] != EMPTY {
                    e.slot += e.skip;
                    if e.slot >= m {
                        e.slot -= m;
                    }
                }
                table[e.slot as usize] = e.pos;
                e.slot += e.skip;
                if e.slot >= m {
                    e.slot -= m;
                }
                filled += 1;
            }
            round += 1;
        }
        Self { table }
    }

    /// The table size.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the table is empty (built from no host).
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// How many table entries each host position owns.
    pub fn counts(&self, hosts: usize) -> Vec<usize> {
        let mut c = vec![0; hosts];
        for &e in &self.table {
            c[e as usize] += 1;
        }
        c
    }

    /// The host position for a hash and attempt.
    pub fn lookup(&self, mut hash: u64, attempt: u32) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        if attempt > 0 {
            hash ^= (!0u64).wrapping_sub(u64::from(attempt)).wrapping_add(1);
        }
        Some(self.table[(hash % self.table.len() as u64) as usize] as usize)
    }
}

impl Balancer for Maglev {
    fn pick(&self, cx: &PickContext) -> Option<usize> {
        self.lookup(request_hash(cx), cx.attempt())
    }
}

/// Whether `n` is prime (trial division; table sizes are at most a few million).
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_one_to_two() {
        let t = Maglev::from_keys(
            &[("10.0.0.1:80", 1), ("10.0.0.2:80", 2)],
            DEFAULT_TABLE_SIZE,
        );
        assert_eq!(t.counts(2), [21846, 43691]);
    }

    #[test]
    fn equal_weights_are_even_and_order_free() {
        let keys: Vec<String> = (0..7).map(|i| format!("10.0.0.{i}:80")).collect();
        let kw: Vec<_> = keys.iter().map(|k| (k.as_str(), 1)).collect();
        let t = Maglev::from_keys(&kw, 65537);
        let c = t.counts(7);
        assert!(c.iter().all(|&x| x == 9362 || x == 9363), "{c:?}");
        // Host order does not change which key owns a slot.
        let mut rev = kw.clone();
        rev.reverse();
        let t2 = Maglev::from_keys(&rev, 65537);
        for h in [0u64, 1, 99, 65536, 123_456_789] {
            let a = kw[t.lookup(h, 0).unwrap()].0;
            let b = rev[t2.lookup(h, 0).unwrap()].0;
            assert_eq!(a, b);
        }
    }

    #[test]
    fn primes() {
        assert!(is_prime(65537) && is_prime(5_000_011) && is_prime(2) && is_prime(251));
        assert!(!is_prime(65536) && !is_prime(1) && !is_prime(9));
    }
}
