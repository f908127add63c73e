//! Shared error helpers.

use std::error::Error as StdError;

/// A boxed error that can cross task boundaries; what middleware passes through.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Whether `err` or any error in its `source()` chain is an `E`.
///
/// # Examples
/// ```
/// use mesh_core::error::is_caused_by;
/// let e = std::io::Error::other("boom");
/// assert!(is_caused_by::<std::io::Error>(&e));
/// assert!(!is_caused_by::<std::fmt::Error>(&e));
/// ```
pub fn is_caused_by<E: StdError + 'static>(err: &(dyn StdError + 'static)) -> bool {
    cause_ref::<E>(err).is_some()
}

/// The first `E` in `err`'s `source()` chain, `err` included.
pub fn cause_ref<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        cur = e.source();
    }
    None
}
