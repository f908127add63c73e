//! How busy this thread is: the requests in the connection manager on it. Writes are
//! deferred to the end of the runtime's pass only when there is other work to batch them
//! with; an unloaded proxy writes at once.

use std::cell::Cell;

thread_local! {
    static IN_FLIGHT: Cell<usize> = const { Cell::new(0) };
}

/// Counts a request as in flight on this thread until dropped.
#[derive(Debug)]
pub(crate) struct InFlight(());

impl InFlight {
    pub(crate) fn enter() -> Self {
        IN_FLIGHT.with(|n| n.set(n.get() + 1));
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // A task moved by a multi-threaded runtime leaves on another thread: saturate, the
        // count is a hint.
        IN_FLIGHT.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// Waits for the runtime's other ready tasks when this thread has more than `own` requests
/// in flight, as Envoy defers writes to the end of its event loop's pass: under load, the
/// writes that became ready together go out together, with one wake-up of their peer. With
/// nothing else in flight it returns at once.
pub(crate) async fn defer_write(own: usize) {
    if IN_FLIGHT.with(Cell::get) > own {
        tokio::task::yield_now().await;
    }
}
