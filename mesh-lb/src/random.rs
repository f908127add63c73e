//! Injected randomness.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// A source of random numbers, shared by threads. Inject a [`SeededRandom`] in tests.
pub trait Random: Send + Sync + fmt::Debug {
    /// The next random value.
    fn next_u64(&self) -> u64;
}

/// SplitMix64 on an atomic counter: lock-free, deterministic for a seed in one thread.
///
/// ```
/// use mesh_lb::{Random, SeededRandom};
/// let a = SeededRandom::new(7);
/// let b = SeededRandom::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// ```
#[derive(Debug)]
pub struct SeededRandom(AtomicU64);

impl SeededRandom {
    /// A generator starting at `seed`.
    pub const fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }

    /// A generator seeded from the process's hash randomness (`RandomState`).
    pub fn from_entropy() -> Self {
        Self::new(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
    }
}

impl Random for SeededRandom {
    fn next_u64(&self) -> u64 {
        mix64(
            self.0
                .fetch_add(GOLDEN, Ordering::Relaxed)
                .wrapping_add(GOLDEN),
        )
    }
}

/// SplitMix64's finaliser: spreads the bits of `z` over the whole word.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

thread_local! {
    /// Each thread's generator for [`fresh`], seeded once from the process's hash randomness.
    static THREAD: std::cell::Cell<u64> = std::cell::Cell::new(SeededRandom::from_entropy().next_u64());
}

/// A fresh random value from this thread's generator (SplitMix64 seeded from entropy): what
/// `LbContext::default()` and `PickContext::default()` use, so a context made without thought
/// still spreads picks.
pub(crate) fn fresh() -> u64 {
    THREAD.with(|s| {
        let next = s.get().wrapping_add(GOLDEN);
        s.set(next);
        mix64(next)
    })
}
