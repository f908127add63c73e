//! A gate that holds a workload's requests open until a test lets them through.

use std::sync::Arc;

use tokio::sync::watch;

/// Holds requests to one workload while it is closed, and counts how many it holds.
///
/// Gates start open. While closed, every request that reaches the workload waits at the gate
/// (it has been received and counted, but not answered); [`Gate::wait_held`] completes once a
/// number of them are waiting, so a test can build up concurrency without sleeping.
/// [`Gate::open`] releases them all (and lets later requests straight through).
#[derive(Debug, Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    open: watch::Sender<bool>,
    held: watch::Sender<usize>,
}

// === impl Gate ===

impl Gate {
    /// An open gate.
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                open: watch::channel(true).0,
                held: watch::channel(0).0,
            }),
        }
    }

    /// Closes the gate: requests arriving from now on are held until [`Gate::open`].
    pub fn close(&self) {
        self.inner.open.send_replace(false);
    }

    /// Opens the gate, releasing every held request.
    pub fn open(&self) {
        self.inner.open.send_replace(true);
    }

    /// Whether requests pass straight through.
    pub fn is_open(&self) -> bool {
        *self.inner.open.borrow()
    }

    /// How many requests are waiting at the gate now.
    pub fn held(&self) -> usize {
        *self.inner.held.borrow()
    }

    /// Completes once at least `n` requests are waiting at the gate.
    pub async fn wait_held(&self, n: usize) {
        let mut rx = self.inner.held.subscribe();
        // The sender lives as long as `self`, so the channel cannot close here.
        let _ = rx.wait_for(|held| *held >= n).await;
    }

    /// Waits (counted as held) while the gate is closed.
    pub(crate) async fn pass(&self) {
        let mut open = self.inner.open.subscribe();
        if *open.borrow_and_update() {
            return;
        }
        self.inner.held.send_modify(|n| *n += 1);
        // Decrements on every exit, including a dropped (cancelled) request.
        let _held = Held(&self.inner.held);
        let _ = open.wait_for(|open| *open).await;
    }
}

struct Held<'a>(&'a watch::Sender<usize>);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_gate_holds_and_counts_until_opened() {
        let gate = Gate::new();
        gate.pass().await;
        gate.close();
        let (a, b) = (gate.clone(), gate.clone());
        let t1 = tokio::spawn(async move { a.pass().await });
        let t2 = tokio::spawn(async move { b.pass().await });
        gate.wait_held(2).await;
        assert_eq!(gate.held(), 2);
        assert!(!gate.is_open());
        gate.open();
        t1.await.unwrap();
        t2.await.unwrap();
        assert_eq!(gate.held(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_request_is_no_longer_held() {
        let gate = Gate::new();
        gate.close();
        let g = gate.clone();
        let t = tokio::spawn(async move { g.pass().await });
        gate.wait_held(1).await;
        t.abort();
        let _ = t.await;
        assert_eq!(gate.held(), 0);
    }
}
