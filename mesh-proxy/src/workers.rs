//! Per-core workers: nginx's and Envoy's threading model on tokio.
//!
//! Each worker is a thread running its own single-threaded runtime. Every listener is bound
//! once per worker, on sockets that share the address through `SO_REUSEPORT`, so the kernel
//! spreads connections across the workers; a connection is then served, and its upstream
//! connections driven, on the thread that accepted it, with no wake-ups across threads on
//! the request path.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    /// The index of the worker this thread is (`None` off the worker threads).
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The worker the calling thread is, if it is one: upstream pools keep the connections a
/// worker opened for that worker.
pub(crate) fn current() -> Option<usize> {
    WORKER.with(Cell::get)
}

/// The worker threads of a running proxy. Dropping it stops them: each runtime ends, and
/// with it every task still on it.
#[derive(Debug)]
pub(crate) struct Workers {
    handles: Vec<Handle>,
    stops: Mutex<Vec<oneshot::Sender<()>>>,
}

impl Workers {
    /// Starts `n` workers.
    ///
    /// # Errors
    /// When a thread or its runtime cannot be created.
    pub(crate) fn start(n: usize) -> std::io::Result<Self> {
        let mut handles = Vec::with_capacity(n);
        let mut stops = Vec::with_capacity(n);
        for index in 0..n {
            let (stop, stopped) = oneshot::channel::<()>();
            let (ready, handle) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("mesh-worker-{index}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    WORKER.with(|w| w.set(Some(index)));
                    let _ = ready.send(Ok(rt.handle().clone()));
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
            let handle = handle
                .recv()
                .map_err(|_| std::io::Error::other("worker thread ended at start"))??;
            handles.push(handle);
            stops.push(stop);
        }
        Ok(Self {
            handles,
            stops: Mutex::new(stops),
        })
    }

    /// The workers' runtimes.
    pub(crate) fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Stops every worker (what is left on them is dropped).
    pub(crate) fn stop(&self) {
        self.stops.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `n` listening sockets to `addr` with `SO_REUSEPORT` (port 0: one port chosen for
/// all), as std listeners to be registered on each worker's runtime.
///
/// # Errors
/// The first bind error.
pub(crate) fn bind_shared(
    addr: SocketAddr,
    n: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    // SO_REUSEPORT would let these sockets share a port that another process (or another
    // listener of this proxy) already serves, splitting its connections silently: a plain
    // bind first finds such a conflict, as a bind without workers would.
    if addr.port() != 0 {
        drop(std::net::TcpListener::bind(addr)?);
    }
    let mut out = Vec::with_capacity(n);
    let mut at = addr;
    for _ in 0..n {
        let socket = if at.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(at)?;
        let l: TcpListener = socket.listen(1024)?;
        at = l.local_addr()?;
        out.push(l.into_std()?);
    }
    Ok(out)
}
