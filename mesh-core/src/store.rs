//! [`ConfigStore`]: the published compiled config, read without locks.
//!
//! A writer compiles a whole snapshot off the request path and publishes it with one atomic
//! store; a request loads the current snapshot once and uses that one version from start to
//! end. An invalid config never reaches the store, so the last good snapshot keeps serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

/// A published snapshot and its version.
#[derive(Debug)]
pub struct Versioned<T> {
    /// Monotonic version, starting at 1 for the first published snapshot.
    pub version: u64,
    /// The compiled config.
    pub value: T,
}

/// Holds the current compiled config in an [`ArcSwap`].
///
/// # Examples
/// ```
/// use mesh_core::store::ConfigStore;
/// let store = ConfigStore::new("v1");
/// assert_eq!(store.load().value, "v1");
/// store.publish("v2");
/// let snap = store.load();
/// assert_eq!((snap.version, snap.value), (2, "v2"));
/// ```
#[derive(Debug)]
pub struct ConfigStore<T> {
    current: ArcSwap<Versioned<T>>,
    next_version: AtomicU64,
}

impl<T> ConfigStore<T> {
    /// A store holding `initial` as version 1.
    pub fn new(initial: T) -> Self {
        Self {
            current: ArcSwap::from_pointee(Versioned {
                version: 1,
                value: initial,
            }),
            next_version: AtomicU64::new(2),
        }
    }

    /// The current snapshot. Take it once per request; do not hold it across `.await`
    /// (use [`ConfigStore::load_full`] there).
    pub fn load(&self) -> arc_swap::Guard<Arc<Versioned<T>>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc`, safe to hold across `.await`.
    pub fn load_full(&self) -> Arc<Versioned<T>> {
        self.current.load_full()
    }

    /// Publishes a new snapshot and returns its version.
    pub fn publish(&self, value: T) -> u64 {
        let version = self.next_version.fetch_add(1, Ordering::Relaxed);
        self.current.store(Arc::new(Versioned { version, value }));
        version
    }
}
