//! Listeners: accept loops, and per-connection serving with the connection manager's limits.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use mesh_core::config::{CodecType, HttpConnectionManager};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::conn_manager::{self, ConnInfo, ConnState, Shared};

/// Far enough in the future to mean "never".
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The first pause after an accept error that a retry cannot cure at once (out of file
/// descriptors or memory); it doubles up to [`ACCEPT_BACKOFF_MAX`] while the errors go on.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest pause between accepts while resources are exhausted.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Accept errors are logged at most once per this interval, with the count since the last line.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// An accept loop's error handling: a connection-level error (the peer reset before the
/// accept) is skipped at once; a resource error (EMFILE, ENFILE, ENOBUFS, ENOMEM) pauses the
/// loop with a growing backoff instead of spinning a core, as production servers do, and the
/// loop recovers when descriptors free up. Every error is counted; a log line is written at
/// most once per [`ACCEPT_LOG_INTERVAL`].
#[derive(Debug)]
pub(crate) struct Acceptor {
    listener: TcpListener,
    name: Arc<str>,
    errors: Arc<mesh_core::stats::Counter>,
    backoff: Duration,
    unlogged: u64,
    last_log: Option<Instant>,
}

impl Acceptor {
    /// `name` labels the log lines; `errors` counts every failed accept.
    pub(crate) fn new(
        listener: TcpListener,
        name: Arc<str>,
        errors: Arc<mesh_core::stats::Counter>,
    ) -> Self {
        Self {
            listener,
            name,
            errors,
            backoff: ACCEPT_BACKOFF_MIN,
            unlogged: 0,
            last_log: None,
        }
    }

    /// The next connection. Cancel-safe: dropping the future loses no connection.
    pub(crate) async fn accept(&mut self) -> (TcpStream, std::net::SocketAddr) {
        loop {
            let e = match self.listener.accept().await {
                Ok(conn) => {
                    self.backoff = ACCEPT_BACKOFF_MIN;
                    return conn;
                }
                Err(e) => e,
            };
            self.errors.inc();
            self.unlogged += 1;
            let now = Instant::now();
            if self
                .last_log
                .is_none_or(|t| now.duration_since(t) >= ACCEPT_LOG_INTERVAL)
            {
                tracing::warn!(
                    listener = %self.name,
                    error = %e,
                    errors = self.unlogged,
                    "accept failed"
                );
                self.last_log = Some(now);
                self.unlogged = 0;
            }
            if is_connection_error(&e) {
                continue;
            }
            tokio::time::sleep(self.backoff).await;
            self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
        }
    }
}

/// One open downstream connection, counted against the overload manager's limit until it
/// is dropped.
#[derive(Debug)]
struct ConnSlot(Arc<Shared>);

impl ConnSlot {
    /// Counts a new connection, or refuses it when the limit is reached.
    fn take(shared: &Arc<Shared>) -> Option<Self> {
        let limit = shared
            .store
            .load()
            .value
            .bootstrap
            .overload_manager
            .max_active_downstream_connections
            .unwrap_or(u64::MAX);
        shared
            .downstream_cx
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(Arc::clone(shared)))
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.downstream_cx.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Errors about one connection that the next accept does not repeat.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}

/// Accepts connections until `shutdown` flips to true, then drains them for up to
/// `drain_time` and aborts what is left.
pub(crate) async fn run(
    listener: TcpListener,
    name: Arc<str>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    drain_time: Duration,
) {
    let mut conns = JoinSet::new();
    // The open connections' states, to close them when the listener drains.
    let mut states: Vec<std::sync::Weak<ConnState>> = Vec::new();
    let address = listener
        .local_addr()
        .map_or_else(|_| name.to_string(), |a| a.to_string());
    let errors = shared.stats.counter(mesh_core::stats::StatName::listener(
        &address,
        "downstream_cx_accept_error",
    ));
    let overflow = shared.stats.counter(mesh_core::stats::StatName::listener(
        &address,
        "downstream_global_cx_overflow",
    ));
    let no_match = shared.stats.counter(mesh_core::stats::StatName::listener(
        &address,
        "no_filter_chain_match",
    ));
    let tls_stats = crate::tls::TlsStats::new(&shared.stats, &address);
    // Envoy's per-worker listener stat, when this loop runs on a worker.
    let worker_cx = crate::workers::current().map(|w| {
        let stat = mesh_core::stats::StatName::listener_worker(&address, w, "downstream_cx_total");
        shared.stats.counter(stat)
    });
    let mut listener = Acceptor::new(listener, Arc::clone(&name), errors);
    loop {
        tokio::select! {
            (stream, remote) = listener.accept() => {
                // The overload manager's global limit: a connection over it is closed at
                // once (Envoy's global_downstream_max_connections).
                let Some(slot) = ConnSlot::take(&shared) else {
                    overflow.inc();
                    drop(stream);
                    continue;
                };
                if let Some(c) = &worker_cx {
                    c.inc();
                }
                while conns.try_join_next().is_some() {}
                let shared = Arc::clone(&shared);
                let name = Arc::clone(&name);
                let no_match = Arc::clone(&no_match);
                let tls_stats = tls_stats.clone();
                let state = Arc::new(ConnState::default());
                if states.len() >= 64 && states.len() > 2 * conns.len() {
                    states.retain(|s| s.strong_count() > 0);
                }
                states.push(Arc::downgrade(&state));
                conns.spawn(async move {
                    let _slot = slot;
                    dispatch(stream, remote, name, shared, state, &no_match, &tls_stats).await;
                });
            }
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    drop(listener);
    for s in states.iter().filter_map(std::sync::Weak::upgrade) {
        s.close();
    }
    let drained = tokio::time::timeout(drain_time, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.abort_all();
    }
}

/// Runs the listener's filters on a new connection, hands it to the listener for its original
/// destination (with `use_original_dst`), chooses the filter chain and serves the connection
/// with it.
async fn dispatch(
    mut stream: TcpStream,
    remote: std::net::SocketAddr,
    name: Arc<str>,
    shared: Arc<Shared>,
    state: Arc<ConnState>,
    no_match: &mesh_core::stats::Counter,
    tls_stats: &crate::tls::TlsStats,
) {
    use mesh_core::config::ListenerFilterKind as Kind;
    let local = stream.local_addr().unwrap_or(remote);
    let snapshot = shared.store.load_full();
    let Some(mut l) = snapshot.value.listener(&name) else {
        return;
    };
    let runs = |l: &crate::compile::ListenerRt, kind: Kind, port: u16| {
        l.listener_filters
            .iter()
            .any(|f| f.kind == kind && f.runs_for(port))
    };
    let restore = l.use_original_dst || runs(l, Kind::OriginalDst, local.port());
    let destination = if restore {
        crate::inspect::original_dst(&stream, local).unwrap_or(local)
    } else {
        local
    };
    if l.use_original_dst
        && destination != local
        && let Some(target) = snapshot.value.listener_for(destination)
    {
        l = target;
    }
    let mut conn = mesh_core::config::Connection::new(remote, destination);
    let http = runs(l, Kind::HttpInspector, destination.port());
    let tls = runs(l, Kind::TlsInspector, destination.port());
    let mut prefix = bytes::Bytes::new();
    if http || tls {
        let found = crate::inspect::inspect(
            &mut stream,
            http,
            tls,
            l.filters_timeout,
            l.continue_on_timeout,
        )
        .await;
        let Some(found) = found else {
            return;
        };
        if let Some(hello) = found.tls {
            conn.transport_protocol = "tls";
            conn.server_name = hello.server_name;
            conn.application_protocols = hello.alpn;
        } else if let Some(p) = found.http {
            conn.application_protocols = vec![p.to_owned()];
        }
        prefix = found.prefix;
    }
    let Some((index, chain)) = l.chain_for(&conn) else {
        no_match.inc();
        tracing::debug!(listener = %l.name, remote = %remote, destination = %destination, "no filter chain matches the connection");
        return;
    };
    let chain = chain.clone();
    let tls = l.tls.get(index).cloned().flatten();
    let name: Arc<str> = if l.name.as_str() == &*name {
        name
    } else {
        l.name.as_str().into()
    };
    drop(snapshot);
    let conn = Accepted {
        remote,
        local: destination,
        listener: name,
        index,
        tls: None,
    };
    let _ = stream.set_nodelay(true);
    let io = crate::h1_server::Rewind::new(prefix, stream);
    let Some(tls) = tls else {
        serve_chain(io, conn, chain, shared, state).await;
        return;
    };
    // TLS is served from a boxed future: inline, its handshake and stream made every
    // connection's task 9.9 KB, TLS or not (an idle plaintext connection held 16.7 KiB).
    Box::pin(serve_tls(io, conn, tls, chain, shared, state, tls_stats)).await;
}

/// Terminates TLS on a connection, then serves it with its chain.
async fn serve_tls(
    io: crate::h1_server::Rewind<TcpStream>,
    mut conn: Accepted,
    tls: crate::tls::ServerTls,
    chain: crate::compile::Chain,
    shared: Arc<Shared>,
    state: Arc<ConnState>,
    tls_stats: &crate::tls::TlsStats,
) {
    let remote = conn.remote;
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::clone(&tls.config));
    match tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(tls_stream)) => {
            let peer = tls_stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first());
            if !tls.accepts_peer(peer) {
                tls_stats.connection_error.inc();
                tls_stats.fail_verify_san.inc();
                tracing::debug!(listener = %conn.listener, remote = %remote, "client certificate names no accepted subject alternative name");
                return;
            }
            tls_stats.handshake.inc();
            conn.tls = Some(crate::tls::TlsInfo::of(tls_stream.get_ref().1));
            serve_chain(tls_stream, conn, chain, shared, state).await;
        }
        Ok(Err(e)) => {
            tls_stats.failed(&e);
            tracing::debug!(listener = %conn.listener, remote = %remote, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            tls_stats.connection_error.inc();
            tracing::debug!(listener = %conn.listener, remote = %remote, "TLS handshake timed out");
        }
    }
}

/// Serves a connection (plain or TLS) with its chain.
async fn serve_chain<T>(
    io: T,
    conn: Accepted,
    chain: crate::compile::Chain,
    shared: Arc<Shared>,
    state: Arc<ConnState>,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match chain {
        crate::compile::Chain::Http(chain) => serve_conn(io, conn, chain, shared, state).await,
        crate::compile::Chain::Tcp(chain) => {
            let down = crate::tcp_proxy::Downstream {
                stream: io,
                remote: conn.remote,
                local: conn.local,
                tls: conn.tls,
            };
            crate::tcp_proxy::serve(down, chain, shared).await;
        }
    }
}

/// Where a connection is served: its peers and the listener chain that took it.
struct Accepted {
    remote: std::net::SocketAddr,
    /// The destination (the original one, when restored).
    local: std::net::SocketAddr,
    /// The listener serving it (after any hand-off).
    listener: Arc<str>,
    /// The chain's index in the listener.
    index: usize,
    /// The TLS session, when the chain terminates TLS.
    tls: Option<crate::tls::TlsInfo>,
}

/// hyper's HTTP/1 header limit when none is set.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// A connection's server: the built-in HTTP/1 one, then (or from the start) hyper's.
enum Phase<F, H> {
    Fast(std::pin::Pin<Box<F>>),
    Hyper(std::pin::Pin<Box<H>>),
}

/// hyper's read buffer limit for a connection manager: past it, a head is refused (431).
fn hyper_max_buf(hcm: &HttpConnectionManager) -> usize {
    let header_bytes = (hcm.max_request_headers_kb as usize).saturating_mul(1024);
    (header_bytes + 4 * hcm.max_headers_count as usize + 8192).max(8192)
}

/// Time allowed for an HTTP/1 request head from its first byte: the request headers timeout,
/// or the request timeout when that is shorter.
fn header_timeout(hcm: &HttpConnectionManager) -> Option<Duration> {
    match (hcm.request_headers_timeout, hcm.request_timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn builder(hcm: &HttpConnectionManager) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    let header_bytes = (hcm.max_request_headers_kb as usize).saturating_mul(1024);
    let max_buf = hyper_max_buf(hcm);
    // hyper's header timeout would also run while a keep-alive connection waits for its next
    // request, closing idle connections long before `idle_timeout`: the connection task runs
    // Envoy's (from the first byte of a head) instead.
    // hyper's own limits sit above the connection manager's, which are exact (Envoy counts
    // name and value bytes and the URL; hyper counts separators and CRLFs too, and HPACK adds
    // 32 bytes an entry): the connection manager answers 431 past them.
    let count = hcm.max_headers_count as usize;
    let mut h1 = b.http1();
    h1.timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(max_buf)
        .keep_alive(true);
    // hyper's own limit is 100 headers, kept on the stack; a larger limit costs every
    // connection a heap array (6.8 KiB measured), so it is raised only when needed.
    if count > HYPER_DEFAULT_MAX_HEADERS {
        h1.max_headers(count.saturating_add(1));
    }
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(hcm.http2.max_concurrent_streams)
        .initial_stream_window_size(hcm.http2.initial_stream_window_size)
        .initial_connection_window_size(hcm.http2.initial_connection_window_size)
        .max_header_list_size(u32::try_from(header_bytes + 32 * count + 8192).unwrap_or(u32::MAX));
    match hcm.codec_type {
        CodecType::Auto => b,
        CodecType::Http1 => b.http1_only(),
        CodecType::Http2 => b.http2_only(),
    }
}

async fn serve_conn<T>(
    stream: T,
    accepted: Accepted,
    chain: Arc<crate::compile::ChainRt>,
    shared: Arc<Shared>,
    state: Arc<ConnState>,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Accepted {
        remote,
        local,
        listener,
        index,
        tls,
    } = accepted;
    chain.stats.cx_total.inc();
    chain.stats.cx_active.inc();
    let hcm = &chain.hcm;
    let info = Arc::new(ConnInfo {
        remote,
        local,
        listener,
        chain: index,
        state: Arc::clone(&state),
        tls,
    });
    let svc_shared = Arc::clone(&shared);
    let fast = (shared.http1_server == crate::Http1Server::Builtin
        && hcm.codec_type != CodecType::Http2
        && hcm.max_headers_count as usize <= HYPER_DEFAULT_MAX_HEADERS)
        .then(|| crate::h1_server::Fast {
            info: Arc::clone(&info),
            shared: Arc::clone(&shared),
            max_head: hyper_max_buf(hcm),
        });
    // The request's future is boxed: hyper keeps room for the service's future in every
    // connection, idle or not, and the whole request path is about 4 KiB of it.
    let service = service_fn(move |req| {
        Box::pin(conn_manager::serve(
            req,
            Arc::clone(&info),
            Arc::clone(&svc_shared),
        ))
    });
    let b = builder(hcm);
    let io = HeadWatch {
        inner: stream,
        state: Arc::clone(&state),
        timeout: header_timeout(hcm),
        watched: true,
        first: true,
        started: None,
        sleep: None,
        timeouts: Arc::clone(&chain.stats.rq_header_timeout),
    };
    // The built-in server takes the connection first, when enabled; hyper takes it over
    // at the first request the built-in one does not cover (see `h1_server`).
    let mut phase = match &fast {
        Some(f) => Phase::Fast(Box::pin(crate::h1_server::serve(io, f))),
        None => Phase::Hyper(Box::pin(b.serve_connection_with_upgrades(
            TokioIo::new(crate::h1_server::Rewind::new(bytes::Bytes::new(), io)),
            service.clone(),
        ))),
    };

    // One timer serves the idle timeout and the connection's maximum age. It fires at most
    // once per idle period: requests do not touch it, and it re-arms itself from
    // `ConnState::idle_since` when it finds the connection was used meanwhile.
    let idle = (!hcm.idle_timeout.is_zero()).then_some(hcm.idle_timeout);
    let max_age = hcm
        .max_connection_duration
        .filter(|d| !d.is_zero())
        .map(|d| Instant::now() + d);
    let next_check = |now: Instant| {
        let idle_at = idle.map(|t| state.idle_since().map_or(now + t, |since| since + t));
        match (idle_at, max_age) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => now + NEVER,
        }
    };
    let timer = tokio::time::sleep_until(next_check(Instant::now()));
    tokio::pin!(timer);
    let mut closing = false;
    let mut registered: Option<std::task::Waker> = None;
    // The timer was polled with this task's waker since it was last armed. Then a wake-up
    // that is not the timer's needs only a look at whether it fired: a poll would register
    // the waker again (its atomics, at every wake-up of a busy connection).
    let mut timer_polled = false;

    // One poll function rather than a select: a wake-up of the connection (its sockets, its
    // streams) polls hyper's connection and the one timer, and reads two flags; nothing here
    // takes a lock per wake-up.
    std::future::poll_fn(|cx| {
        if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *state.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
            registered = Some(cx.waker().clone());
            timer_polled = false;
        }
        loop {
            // Read after the waker is registered: a close set meanwhile wakes this task.
            if !closing && state.close.load(Ordering::SeqCst) {
                closing = true;
                if let Phase::Hyper(conn) = &mut phase {
                    conn.as_mut().graceful_shutdown();
                }
            }
            match &mut phase {
                Phase::Fast(f) => match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(crate::h1_server::Handoff::Closed) => {
                        return std::task::Poll::Ready(());
                    }
                    std::task::Poll::Ready(crate::h1_server::Handoff::ToHyper(io, prefix)) => {
                        let mut conn = Box::pin(b.serve_connection_with_upgrades(
                            TokioIo::new(crate::h1_server::Rewind::new(prefix, io)),
                            service.clone(),
                        ));
                        if closing {
                            conn.as_mut().graceful_shutdown();
                        }
                        phase = Phase::Hyper(conn);
                        continue;
                    }
                    std::task::Poll::Pending => {}
                },
                Phase::Hyper(conn) => {
                    if conn.as_mut().poll(cx).is_ready() {
                        return std::task::Poll::Ready(());
                    }
                }
            }
            if closing {
                return std::task::Poll::Pending;
            }
            if timer_polled && !timer.is_elapsed() {
                return std::task::Poll::Pending;
            }
            timer_polled = true;
            if timer.as_mut().poll(cx).is_pending() {
                return std::task::Poll::Pending;
            }
            let now = Instant::now();
            let aged = max_age.is_some_and(|at| now >= at);
            let idled =
                idle.is_some_and(|t| state.idle_since().is_some_and(|since| now >= since + t));
            if aged || idled {
                closing = true;
                // The built-in server reads the flag; hyper is told.
                state.close.store(true, Ordering::SeqCst);
                if let Phase::Hyper(conn) = &mut phase {
                    conn.as_mut().graceful_shutdown();
                }
            } else {
                timer.as_mut().reset(next_check(now));
                timer_polled = false;
            }
        }
    })
    .await;
    chain.stats.cx_active.dec();
}

/// A downstream connection's I/O that runs the request header timeout (Envoy's
/// `request_headers_timeout`): from the first byte of an HTTP/1 request head on an idle
/// connection until the connection manager sees the complete head, the connection may wait
/// for more bytes at most `timeout`; past it, reads fail and the connection closes.
///
/// The timer is created only when a head is still incomplete when a read would wait, so a
/// head that arrives in one piece costs no timer. An HTTP/2 connection (its preface starts
/// `PRI `) is never watched: its streams are not heads on the connection.
#[derive(Debug)]
struct HeadWatch<T> {
    inner: T,
    state: Arc<ConnState>,
    timeout: Option<Duration>,
    /// False once the connection is known to be HTTP/2.
    watched: bool,
    first: bool,
    /// When the pending head's first byte was seen waiting (set at the first read that would
    /// wait while a head is pending).
    started: Option<Instant>,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    timeouts: Arc<mesh_core::stats::Counter>,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for HeadWatch<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        let Some(timeout) = this.timeout.filter(|_| this.watched) else {
            return r;
        };
        let read = &buf.filled()[before..];
        if !read.is_empty() {
            if std::mem::take(&mut this.first) && read.starts_with(b"PRI ") {
                this.watched = false;
                return r;
            }
            let state = &this.state;
            if state.active.load(Ordering::Acquire) == 0
                && !state.head_pending.swap(true, Ordering::AcqRel)
            {
                this.started = Some(Instant::now());
            }
        }
        if r.is_pending() {
            if !this.state.head_pending.load(Ordering::Acquire) {
                this.started = None;
                return r;
            }
            let deadline = *this.started.get_or_insert_with(Instant::now) + timeout;
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            if sleep.as_mut().poll(cx).is_ready() {
                this.timeouts.inc();
                return std::task::Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "request header timeout",
                )));
            }
        }
        r
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for HeadWatch<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
