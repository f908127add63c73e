//! Ring hash, "ketama" (SEMANTICS.md §4.7; Envoy `ring_hash_lb.cc`).
//!
//! Build: host weights are normalised to sum 1; with `min_w` the smallest,
//! `scale = min(ceil(min_w × minimum_ring_size) / min_w, maximum_ring_size)` and the ring has
//! `ceil(scale)` entries. Walking the hosts in order with running sums
//! `target += scale × w_i`, each host inserts `xxHash64("<key>_<i>")` for `i = 0, 1, …` while
//! `current < target`. Entries are sorted by hash.
//!
//! Lookup: the first entry whose hash is ≥ the request hash, wrapping to entry 0; retry
//! attempt `a` moves `a` entries on. Removing one of N equal hosts remaps about 1/N of keys.

use std::sync::Arc;

use super::{Balancer, request_hash};
use crate::hash::xxhash64;
use crate::{Host, PickContext};

/// A ketama ring.
#[derive(Debug, Clone)]
pub struct RingHash {
    hashes: Vec<u64>,
    hosts: Vec<u32>,
}

impl RingHash {
    /// Builds the ring over `hosts` (placed by [`Host::hash_key`] and weighted by
    /// [`Host::weight`]).
    pub fn new(hosts: &[Arc<Host>], minimum_ring_size: u64, maximum_ring_size: u64) -> Self {
        let keyed: Vec<(&str, u32)> = hosts.iter().map(|h| (h.hash_key(), h.weight())).collect();
        Self::from_keys(&keyed, minimum_ring_size, maximum_ring_size)
    }

    /// Builds the ring from `(key, weight)` pairs.
    pub fn from_keys(keys: &[(&str, u32)], minimum_ring_size: u64, maximum_ring_size: u64) -> Self {
        if keys.is_empty() {
            return Self {
                hashes: Vec::new(),
                hosts: Vec::new(),
            };
        }
        let sum: f64 = keys.iter().map(|&(_, w)| f64::from(w.max(1))).sum();
        let min_w = keys
            .iter()
            .map(|&(_, w)| f64::from(w.max(1)) / sum)
            .fold(1.0, f64::min);
        let scale =
            ((min_w * minimum_ring_size as f64).ceil() / min_w).min(maximum_ring_size as f64);
        let ring_size = scale.ceil() as usize;
        let mut ring: Vec<(u64, u32)> = Vec::with_capacity(ring_size);
        let mut current = 0.0f64;
        let mut target = 0.0f64;
        let mut buf = String::new();
        for (pos, &(key, w)) in keys.iter().enumerate() {
            target += scale * (f64::from(w.max(1)) / sum);
            let mut i = 0u64;
            while current < target {
                buf.clear();
                buf.push_str(key);
                buf.push('_');
                buf.push_str(itoa(i, &mut [0u8; 20]));
                ring.push((xxhash64(buf.as_bytes(), 0), pos as u32));
                i += 1;
                current += 1.0;
            }
        }
        ring.sort_unstable();
        let (hashes, hosts) = ring.into_iter().unzip();
        Self { hashes, hosts }
    }

    /// Number of ring entries.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The host position for a hash and attempt.
    pub fn lookup(&self, hash: u64, attempt: u32) -> Option<usize> {
        if self.hashes.is_empty() {
            return None;
        }
        let mut i = self.hashes.partition_point(|&x| x < hash);
        if i == self.hashes.len() {
            i = 0;
        }
        if attempt > 0 {
            i = (i + attempt as usize) % self.hashes.len();
        }
        Some(self.hosts[i] as usize)
    }
}

fn itoa(mut v: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("ascii digits are utf-8")
}

impl Balancer for RingHash {
    fn pick(&self, cx: &PickContext) -> Option<usize> {
        self.lookup(request_hash(cx), cx.attempt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("10.0.{}.{}:8080", i / 250, i % 250))
            .collect()
    }

    #[test]
    fn sizes_follow_envoy() {
        let k = keys(3);
        let kw: Vec<_> = k.iter().map(|s| (s.as_str(), 1)).collect();
        // min_w 1/3: ceil(1024/3) = 342 per host ⇒ 1026 entries.
        assert_eq!(RingHash::from_keys(&kw, 1024, 8 << 20).len(), 1026);
        assert_eq!(RingHash::from_keys(&kw, 1024, 100).len(), 100);
        let kw = [(k[0].as_str(), 1), (k[1].as_str(), 3)];
        let r = RingHash::from_keys(&kw, 1024, 8 << 20);
        // min_w 1/4: 256 × 4 = 1024 entries, 256 and 768.
        assert_eq!(r.len(), 1024);
        assert_eq!(r.hosts.iter().filter(|&&h| h == 1).count(), 768);
    }

    #[test]
    fn itoa_works() {
        assert_eq!(itoa(0, &mut [0; 20]), "0");
        assert_eq!(itoa(1234567, &mut [0; 20]), "1234567");
        assert_eq!(itoa(u64::MAX, &mut [0; 20]), u64::MAX.to_string());
    }

    #[test]
    fn lookup_wraps_and_retries_move() {
        let k = keys(4);
        let kw: Vec<_> = k.iter().map(|s| (s.as_str(), 1)).collect();
        let r = RingHash::from_keys(&kw, 1024, 8 << 20);
        assert_eq!(r.lookup(u64::MAX, 0), Some(r.hosts[0] as usize));
        assert_eq!(r.lookup(0, 0), Some(r.hosts[0] as usize));
        let h = r.hashes[10];
        assert_eq!(r.lookup(h, 0), Some(r.hosts[10] as usize));
        assert_eq!(r.lookup(h, 3), Some(r.hosts[13] as usize));
    }
}
