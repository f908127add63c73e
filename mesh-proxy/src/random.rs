//! A fast per-thread random source for stream ids, weighted picks and request ids.
//!
//! Not cryptographic: request ids and balancing need spread, not secrecy.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    static STATE: Cell<u64> = Cell::new({
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x9e37_79b9_7f4a_7c15);
        h.finish() | 1
    });
}

/// A random `u64` (xorshift64*).
pub(crate) fn next_u64() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// The proxy's random source: the per-thread one, or one seeded sequence shared by every
/// thread (`ProxyBuilder::random_seed`), for reproducible runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Source(Option<Arc<AtomicU64>>);

impl Source {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        Self(seed.map(|s| Arc::new(AtomicU64::new(s))))
    }

    /// The next draw.
    pub(crate) fn next_u64(&self) -> u64 {
        match &self.0 {
            None => next_u64(),
            // splitmix64 over a shared counter: every draw distinct, in a fixed order.
            Some(state) => {
                mesh_lb::mix64(state.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed))
            }
        }
    }
}

/// A random version-4 UUID in its hyphenated lower-case form.
pub(crate) fn uuid_v4() -> http::HeaderValue {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&next_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&next_u64().to_le_bytes());
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let s = id.hyphenated().encode_lower(&mut buf);
    crate::headers::generated(s.as_bytes()).expect("a hyphenated UUID is a valid header value")
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuids_are_v4_and_distinct() {
        let a = super::uuid_v4();
        let b = super::uuid_v4();
        assert_ne!(a, b);
        let s = a.to_str().unwrap();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
    }
}
