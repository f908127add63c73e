//! Upstream connections: a keep-alive pool per host, HTTP/1.1 or HTTP/2.
//!
//! HTTP/1.1: idle connections wait in a stack; a request takes the most recently used one that
//! is still open, or connects. A connection goes back to the stack when its response body has
//! been read to the end (a body dropped early leaves the connection to close).
//! HTTP/2: one shared connection per host, multiplexed; re-established when it closes.
//!
//! A connection serves at most the cluster's `max_requests_per_connection` requests and lives
//! at most its `max_connection_duration`: past either it takes no new request and closes once
//! its last one is done. One idle longer than the cluster's `idle_timeout` (1 h by default) is
//! closed by [`HostPool::expire`], which the proxy runs every second.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use mesh_core::config::{Address, UpstreamProtocol};
use mesh_core::stats::{Counter, Gauge};
use tokio::net::TcpStream;

use crate::body::{ProxyBody, UpstreamBody};
use mesh_lb::breaker::{Limits, Overflow, Permit};

use crate::error::{Error, Kind};

/// Per-cluster connection stats.
#[derive(Debug)]
pub(crate) struct PoolStats {
    pub(crate) cx_total: Arc<Counter>,
    pub(crate) cx_active: Arc<Gauge>,
    pub(crate) cx_connect_fail: Arc<Counter>,
    pub(crate) cx_connect_timeout: Arc<Counter>,
    pub(crate) cx_protocol_error: Arc<Counter>,
    /// `ssl.handshake`, `ssl.connection_error`, `ssl.fail_verify_error`,
    /// `ssl.fail_verify_san` of TLS clusters.
    pub(crate) ssl_handshake: Arc<Counter>,
    pub(crate) ssl_connection_error: Arc<Counter>,
    pub(crate) ssl_fail_verify_error: Arc<Counter>,
    pub(crate) ssl_fail_verify_san: Arc<Counter>,
}

impl PoolStats {
    /// Counts a failed upstream handshake by its cause.
    fn ssl_failed(&self, e: &std::io::Error) {
        self.ssl_connection_error.inc();
        let cause = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        match cause {
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)) => {
                self.ssl_fail_verify_san.inc();
            }
            Some(rustls::Error::InvalidCertificate(_)) => self.ssl_fail_verify_error.inc(),
            _ => {}
        }
    }

    /// The stats of cluster `name`.
    pub(crate) fn new(r: &mesh_core::stats::Registry, name: &str) -> Self {
        use mesh_core::stats::StatName;
        let c = |s: &str| r.counter(StatName::cluster(name, s));
        Self {
            cx_total: c("upstream_cx_total"),
            cx_active: r.gauge(StatName::cluster(name, "upstream_cx_active")),
            cx_connect_fail: c("upstream_cx_connect_fail"),
            cx_connect_timeout: c("upstream_cx_connect_timeout"),
            cx_protocol_error: c("upstream_cx_protocol_error"),
            ssl_handshake: c("ssl.handshake"),
            ssl_connection_error: c("ssl.connection_error"),
            ssl_fail_verify_error: c("ssl.fail_verify_error"),
            ssl_fail_verify_san: c("ssl.fail_verify_san"),
        }
    }
}

/// Per-host counters, shown by the admin `/clusters` endpoint.
#[derive(Debug, Default)]
pub(crate) struct HostStats {
    pub(crate) cx_total: AtomicU64,
    pub(crate) cx_active: AtomicU64,
    pub(crate) cx_connect_fail: AtomicU64,
    pub(crate) rq_total: AtomicU64,
    pub(crate) rq_success: AtomicU64,
    pub(crate) rq_error: AtomicU64,
    pub(crate) rq_timeout: AtomicU64,
}

/// The lifetime limits of a pool's connections (the cluster's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnLimits {
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_requests: Option<u32>,
    pub(crate) max_age: Option<Duration>,
    /// The local address connections are made from (`upstream_bind_config`).
    pub(crate) source: Option<std::net::IpAddr>,
}

impl ConnLimits {
    pub(crate) fn of(c: &mesh_core::config::Cluster) -> Self {
        Self {
            connect_timeout: c.connect_timeout,
            idle_timeout: c.idle_timeout,
            max_requests: c.max_requests_per_connection.filter(|n| *n > 0),
            max_age: c.max_connection_duration,
            source: c.upstream_bind_config,
        }
    }
}

/// What [`HostPool::send_on`] gives: the exchange's outcome, or the request back when none
/// of it was sent.
type SendOn = Result<
    Result<(Response<UpstreamBody>, Option<Lease>), Error>,
    (Request<ProxyBody>, mesh_core::BoxError),
>;

/// How an HTTP/1.1 connection is driven.
#[derive(Debug)]
enum Link {
    /// hyper's client: a task of its own drives the connection.
    Hyper(http1::SendRequest<ProxyBody>),
    /// The built-in client ([`crate::h1`]): the request's task drives it. `Live` holds its
    /// circuit-breaker slot and active count while it is open.
    Native(crate::h1::Conn, Live),
}

/// An open built-in connection's share of the pool: its `max_connections` slot and the
/// active-connection stats, given back when it closes (is dropped).
#[derive(Debug)]
struct Live {
    pool: std::sync::Weak<HostPool>,
    stats: Arc<PoolStats>,
    _slot: Permit,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stats.cx_active.dec();
        if let Some(pool) = self.pool.upgrade() {
            pool.host_stats.cx_active.fetch_sub(1, Ordering::Relaxed);
            pool.released.notify_waiters();
        }
    }
}

/// Which HTTP/1.1 client sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Hyper,
    Native,
}

/// An HTTP/1.1 connection with what its limits need.
#[derive(Debug)]
struct H1Conn {
    link: Link,
    /// Requests sent on it so far.
    requests: u32,
    born: Instant,
    /// When it last went idle.
    idle_since: Instant,
    /// The worker whose runtime drives it (see [`crate::workers`]).
    worker: Option<usize>,
}

/// An HTTP/1.1 connection's bookkeeping apart from its link: what a send keeps while the
/// link is lent to the request, to put the connection back together for the pool.
#[derive(Debug, Clone, Copy)]
struct ConnMeta {
    requests: u32,
    born: Instant,
    idle_since: Instant,
    worker: Option<usize>,
}

impl H1Conn {
    fn split(self) -> (Link, ConnMeta) {
        let Self {
            link,
            requests,
            born,
            idle_since,
            worker,
        } = self;
        let meta = ConnMeta {
            requests,
            born,
            idle_since,
            worker,
        };
        (link, meta)
    }

    fn join(link: Link, m: ConnMeta) -> Self {
        Self {
            link,
            requests: m.requests,
            born: m.born,
            idle_since: m.idle_since,
            worker: m.worker,
        }
    }

    fn is_closed(&self) -> bool {
        match &self.link {
            Link::Hyper(s) => s.is_closed(),
            Link::Native(c, _) => c.is_closed(),
        }
    }

    fn client(&self) -> Client {
        match self.link {
            Link::Hyper(_) => Client::Hyper,
            Link::Native(..) => Client::Native,
        }
    }
}

/// The shared HTTP/2 connection.
#[derive(Debug)]
struct H2Conn {
    sender: http2::SendRequest<ProxyBody>,
    streams: u32,
    born: Instant,
    last_used: Instant,
}

impl ConnLimits {
    /// Whether a connection born at `born` that carried `requests` may take another.
    fn reusable(&self, requests: u32, born: Instant, now: Instant) -> bool {
        self.max_requests.is_none_or(|m| requests < m)
            && self.max_age.is_none_or(|a| now.duration_since(born) < a)
    }
}

/// The connection pool of one upstream host.
#[derive(Debug)]
pub(crate) struct HostPool {
    pub(crate) host_stats: HostStats,
    address: Address,
    protocol: UpstreamProtocol,
    limits: ConnLimits,
    idle: Mutex<Vec<H1Conn>>,
    h2: tokio::sync::Mutex<Option<H2Conn>>,
    stats: Arc<PoolStats>,
    /// TLS to the host, when the cluster originates it.
    tls: Option<Arc<crate::tls::ClientTls>>,
    /// Woken when a connection goes back to the pool or closes (a request waiting at
    /// `max_connections` may proceed).
    released: tokio::sync::Notify,
}

/// A sent request's connection, handed back to the pool once the response is done.
///
/// Only hyper's client leases its connections (the built-in one hands its connection back
/// from the response body), so the connection is boxed: every request's send result has
/// room for a lease, and moving 184 bytes of nothing through the attempt loop cost more
/// than this allocation on hyper's path.
#[derive(Debug)]
pub(crate) struct Lease {
    pool: Arc<HostPool>,
    conn: Option<Box<H1Conn>>,
}

impl Lease {
    /// Returns the connection to the pool (call when the response body ended cleanly), unless
    /// it has served its requests or its time (as of `now`): then it is dropped, which
    /// closes it.
    pub(crate) fn release(mut self, now: Instant) {
        if let Some(c) = self.conn.take() {
            self.pool.put_back(*c, now);
        }
    }
}

impl HostPool {
    pub(crate) fn new(
        address: Address,
        protocol: UpstreamProtocol,
        limits: ConnLimits,
        stats: Arc<PoolStats>,
        tls: Option<Arc<crate::tls::ClientTls>>,
    ) -> Self {
        Self {
            host_stats: HostStats::default(),
            address,
            protocol,
            limits,
            idle: Mutex::new(Vec::new()),
            h2: tokio::sync::Mutex::new(None),
            stats,
            tls,
            released: tokio::sync::Notify::new(),
        }
    }

    pub(crate) fn address(&self) -> &Address {
        &self.address
    }

    /// Whether this pool can serve a cluster with these settings after a reload.
    pub(crate) fn reusable_for(
        &self,
        protocol: UpstreamProtocol,
        limits: ConnLimits,
        tls: Option<&crate::tls::ClientTls>,
    ) -> bool {
        self.protocol == protocol
            && self.limits == limits
            && self.tls.as_deref().map(|t| &t.context) == tls.map(|t| &t.context)
    }

    /// Closes the idle connections that have been idle for `idle_timeout` or outlived
    /// `max_connection_duration` (an HTTP/2 connection: its pool handle, so the connection
    /// closes when its last stream ends).
    pub(crate) fn expire(&self, now: Instant) {
        let limits = self.limits;
        let fresh = |born: Instant, since: Instant| {
            now.duration_since(since) < limits.idle_timeout
                && limits.max_age.is_none_or(|a| now.duration_since(born) < a)
        };
        {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.retain(|c| !c.is_closed() && fresh(c.born, c.idle_since));
        }
        if let Ok(mut h2) = self.h2.try_lock()
            && h2
                .as_ref()
                .is_some_and(|c| c.sender.is_closed() || !fresh(c.born, c.last_used))
        {
            *h2 = None;
        }
    }

    async fn connect(&self) -> Result<TokioIo<UpIo>, Error> {
        let stream = self.connect_tcp().await?;
        let Some(tls) = &self.tls else {
            return Ok(TokioIo::new(UpIo::Plain(stream.into_inner())));
        };
        let name = tls.sni.clone().unwrap_or_else(|| {
            // No SNI: an IP address as the name sends none.
            let ip = stream
                .inner()
                .peer_addr()
                .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
            rustls_pki_types::ServerName::IpAddress(ip.into())
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
        let handshake = connector.connect(name, stream.into_inner());
        match tokio::time::timeout(self.limits.connect_timeout, handshake).await {
            Ok(Ok(s)) => {
                self.stats.ssl_handshake.inc();
                Ok(TokioIo::new(UpIo::Tls(Box::new(s))))
            }
            Ok(Err(e)) => {
                self.stats.ssl_failed(&e);
                self.stats.cx_connect_fail.inc();
                self.host_stats
                    .cx_connect_fail
                    .fetch_add(1, Ordering::Relaxed);
                Err(Error::new(Kind::UpstreamConnect, Some(e.into())))
            }
            Err(_) => {
                self.stats.ssl_connection_error.inc();
                self.stats.cx_connect_timeout.inc();
                self.stats.cx_connect_fail.inc();
                Err(Error::new(Kind::UpstreamConnectTimeout, None))
            }
        }
    }

    async fn connect_tcp(&self) -> Result<TokioIo<TcpStream>, Error> {
        let connect = async {
            match self.address.socket_addr() {
                Some(a) => crate::tcp_proxy::connect_from(a, self.limits.source).await,
                None => TcpStream::connect((self.address.host.as_str(), self.address.port)).await,
            }
        };
        let stream = match tokio::time::timeout(self.limits.connect_timeout, connect).await {
            Err(_) => {
                self.stats.cx_connect_timeout.inc();
                self.stats.cx_connect_fail.inc();
                self.host_stats
                    .cx_connect_fail
                    .fetch_add(1, Ordering::Relaxed);
                return Err(Error::new(Kind::UpstreamConnectTimeout, None));
            }
            Ok(Err(e)) => {
                self.stats.cx_connect_fail.inc();
                self.host_stats
                    .cx_connect_fail
                    .fetch_add(1, Ordering::Relaxed);
                return Err(Error::new(Kind::UpstreamConnect, Some(e.into())));
            }
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        self.stats.cx_total.inc();
        self.host_stats.cx_total.fetch_add(1, Ordering::Relaxed);
        Ok(TokioIo::new(stream))
    }

    /// Drives a connection; it holds its breaker slot (`max_connections`) until it closes.
    fn spawn_conn<F>(self: &Arc<Self>, conn: F, slot: Permit)
    where
        F: std::future::Future + Send + 'static,
    {
        let pool = Arc::clone(self);
        pool.stats.cx_active.inc();
        pool.host_stats.cx_active.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
            pool.stats.cx_active.dec();
            pool.host_stats.cx_active.fetch_sub(1, Ordering::Relaxed);
            pool.released.notify_waiters();
        });
    }

    /// The most recently used idle connection of this worker (Envoy's pools are per worker:
    /// a connection is driven by the thread that opened it); with `steal`, another worker's
    /// when this one has none.
    async fn pooled_h1(&self, steal: bool, client: Client) -> Option<H1Conn> {
        let me = crate::workers::current();
        loop {
            let mut c = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                let at = match idle
                    .iter()
                    .rposition(|c| c.worker == me && c.client() == client)
                {
                    Some(at) => at,
                    None if steal => idle.iter().rposition(|c| c.client() == client)?,
                    None => return None,
                };
                idle.remove(at)
            };
            let now = Instant::now();
            let expired = now.duration_since(c.idle_since) >= self.limits.idle_timeout
                || !self.limits.reusable(c.requests, c.born, now);
            if expired || c.is_closed() {
                continue;
            }
            if let Link::Hyper(s) = &mut c.link
                && s.ready().await.is_err()
            {
                continue;
            }
            return Some(c);
        }
    }

    /// Puts a connection whose response ended cleanly back in the pool, unless it was closed
    /// or has served its requests or its time (then it is dropped, which closes it).
    fn put_back(&self, mut c: H1Conn, now: Instant) {
        if !c.is_closed() && self.limits.reusable(c.requests, c.born, now) {
            c.idle_since = now;
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.push(c);
            drop(idle);
            self.released.notify_one();
        }
    }

    async fn new_native(self: &Arc<Self>, slot: Permit) -> Result<H1Conn, Error> {
        let io = self.connect_tcp().await?.into_inner();
        self.stats.cx_active.inc();
        self.host_stats.cx_active.fetch_add(1, Ordering::Relaxed);
        let live = Live {
            pool: Arc::downgrade(self),
            stats: Arc::clone(&self.stats),
            _slot: slot,
        };
        let now = Instant::now();
        Ok(H1Conn {
            link: Link::Native(crate::h1::Conn::new(io), live),
            requests: 0,
            born: now,
            idle_since: now,
            worker: crate::workers::current(),
        })
    }

    async fn new_h1(self: &Arc<Self>, slot: Permit) -> Result<H1Conn, Error> {
        let io = self.connect().await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| Error::new(Kind::Upstream, Some(e.into())))?;
        self.spawn_conn(conn.with_upgrades(), slot);
        let now = Instant::now();
        Ok(H1Conn {
            link: Link::Hyper(sender),
            requests: 0,
            born: now,
            idle_since: now,
            worker: crate::workers::current(),
        })
    }

    async fn h2_sender(
        self: &Arc<Self>,
        limits: &Arc<Limits>,
    ) -> Result<http2::SendRequest<ProxyBody>, Error> {
        let mut h2 = self.h2.lock().await;
        let now = Instant::now();
        if let Some(c) = h2.as_mut()
            && !c.sender.is_closed()
            && self.limits.reusable(c.streams, c.born, now)
        {
            c.streams += 1;
            c.last_used = now;
            return Ok(c.sender.clone());
        }
        let _pending = limits.try_pending().map_err(overflow)?;
        let slot = limits.try_connection().map_err(overflow)?;
        let io = self.connect().await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|e| Error::new(Kind::Upstream, Some(e.into())))?;
        self.spawn_conn(conn, slot);
        *h2 = Some(H2Conn {
            sender: sender.clone(),
            streams: 1,
            born: now,
            last_used: now,
        });
        Ok(sender)
    }

    /// Sends a request on a pooled (or new) connection, within the cluster's circuit-breaker
    /// `limits`: a request with no idle connection is pending (`max_pending_requests`); at
    /// `max_connections` it waits for a connection to come back. `upgrade` requests always use
    /// a fresh HTTP/1.1 connection that is never pooled. With `builtin`, an HTTP/1.1 request
    /// whose body is complete goes through the built-in client ([`crate::h1`]), which hands
    /// its connection back to the pool itself when the response ends (no lease).
    ///
    /// Not an `async fn`, and taking its `Arc`s by value: the future owns what it uses, once.
    /// An `async fn` keeps each argument beside the local it is moved into, and this future
    /// is boxed per request (kept under the allocator's per-thread cache size it is cheap).
    pub(crate) fn send(
        self: Arc<Self>,
        mut req: Request<ProxyBody>,
        upgrade: bool,
        limits: Arc<Limits>,
        builtin: bool,
    ) -> impl Future<Output = Result<(Response<UpstreamBody>, Option<Lease>), Error>> + Send + 'static
    {
        // The built-in client speaks plain TCP; TLS connections go through hyper's.
        let client = if builtin && self.tls.is_none() && crate::h1::Conn::accepts(&req) {
            Client::Native
        } else {
            Client::Hyper
        };
        async move {
            // The paths other than a pooled HTTP/1.1 connection are boxed: inline, their futures
            // (connection set-up, hyper's) would make this one several kilobytes, copied at every
            // move of the common path's.
            if upgrade {
                return Box::pin(self.send_upgrade(req, &limits)).await;
            }
            if self.protocol == UpstreamProtocol::Http2 {
                return Box::pin(self.send_h2(req, &limits)).await;
            }
            let mut pending = None;
            let mut steal = false;
            loop {
                // A pooled connection may have been closed by the upstream while idle; when the
                // request was not sent on it, try the next one or a new connection.
                loop {
                    // (Not `while let`: its scrutinee would stay in the future beside the
                    // send it moved into.)
                    let Some(c) = self.pooled_h1(steal, client).await else {
                        break;
                    };
                    // The request has a connection: it is no longer pending.
                    drop(pending.take());
                    match self.send_on(c, req).await {
                        Ok(sent) => return sent,
                        Err((back, _closed)) => req = back,
                    }
                }
                if pending.is_none() {
                    pending = Some(limits.try_pending().map_err(overflow)?);
                }
                let slot = match limits.try_connection() {
                    Ok(slot) => slot,
                    Err(_) => {
                        // At max_connections: wait for a connection to come back or close. The
                        // waiter is registered before looking again, so a release in between is
                        // not missed (and a request that finds a connection never registers).
                        let released = self.released.notified();
                        tokio::pin!(released);
                        released.as_mut().enable();
                        // At the limit, another worker's idle connection serves rather than
                        // waiting for one of this worker's.
                        steal = true;
                        if self.has_idle(client) {
                            continue;
                        }
                        match limits.try_connection() {
                            Ok(slot) => slot,
                            Err(_) => {
                                // An idle connection of the other client holds a slot this
                                // request could use: close it, and wait for its slot.
                                drop(self.take_idle_other(client));
                                released.await;
                                continue;
                            }
                        }
                    }
                };
                let c = match client {
                    Client::Native => Box::pin(self.new_native(slot)).await?,
                    Client::Hyper => Box::pin(self.new_h1(slot)).await?,
                };
                drop(pending);
                return match self.send_on(c, req).await {
                    Ok(sent) => sent,
                    Err((_, e)) => Err(Error::new(Kind::Upstream, Some(e))),
                };
            }
        }
    }

    /// An upgrade (WebSocket): a connection of its own, through hyper's client.
    async fn send_upgrade(
        self: &Arc<Self>,
        req: Request<ProxyBody>,
        limits: &Arc<Limits>,
    ) -> Result<(Response<UpstreamBody>, Option<Lease>), Error> {
        let upstream_err = |e: hyper::Error| Error::new(Kind::Upstream, Some(e.into()));
        let slot = limits.try_connection().map_err(overflow)?;
        let io = self.connect().await?;
        let (mut sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(upstream_err)?;
        self.spawn_conn(conn.with_upgrades(), slot);
        let resp = sender.send_request(req).await.map_err(upstream_err)?;
        Ok((resp.map(UpstreamBody::Net), None))
    }

    /// A request to an HTTP/2 upstream, on its shared connection.
    async fn send_h2(
        self: &Arc<Self>,
        req: Request<ProxyBody>,
        limits: &Arc<Limits>,
    ) -> Result<(Response<UpstreamBody>, Option<Lease>), Error> {
        let mut sender = self.h2_sender(limits).await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| Error::new(Kind::Upstream, Some(e.into())))?;
        Ok((resp.map(UpstreamBody::Net), None))
    }

    /// Sends `req` on `c`; gives the request back when nothing of it was sent (the
    /// connection had closed), so it can go on another.
    ///
    /// The built-in client's future is built here and owns only what it needs after the
    /// head is out: an `async fn` would keep the connection and the request beside the
    /// futures they move into, for the life of the request. hyper's path is boxed.
    // The error gives the unsent request back, by value: boxing it would cost an allocation
    // on the path that retries another connection, for nothing on the common one.
    #[allow(clippy::result_large_err)]
    fn send_on<'a>(
        self: &'a Arc<Self>,
        c: H1Conn,
        req: Request<ProxyBody>,
    ) -> futures_util::future::Either<
        impl Future<Output = SendOn> + Send + 'a,
        Pin<Box<dyn Future<Output = SendOn> + Send + 'a>>,
    > {
        use futures_util::FutureExt;
        use futures_util::future::Either;
        let (link, mut meta) = c.split();
        meta.requests += 1;
        match link {
            Link::Hyper(sender) => Either::Right(Box::pin(self.send_on_hyper(sender, meta, req))),
            Link::Native(conn, live) => {
                // A combinator, not an async block: awaiting the send there would keep it
                // twice, as the block's capture and as what it awaits.
                Either::Left(conn.send(req).map(move |sent| match sent {
                    Err(crate::h1::NotSent(back, e)) => Err((back, e.into())),
                    Ok(Err(e)) => {
                        if e.is_protocol() {
                            self.stats.cx_protocol_error.inc();
                            Ok(Err(Error::new(Kind::UpstreamProtocol, Some(e.into()))))
                        } else {
                            Ok(Err(Error::new(Kind::Upstream, Some(e.into()))))
                        }
                    }
                    Ok(Ok(resp)) => {
                        let (head, mut body) = resp.into_parts();
                        let pool = Arc::clone(self);
                        body.on_reusable(Box::new(move |conn| {
                            let c = H1Conn::join(Link::Native(conn, live), meta);
                            pool.put_back(c, Instant::now());
                        }));
                        Ok(Ok((
                            Response::from_parts(head, UpstreamBody::Native(body)),
                            None,
                        )))
                    }
                }))
            }
        }
    }

    /// [`HostPool::send_on`] over hyper's client.
    async fn send_on_hyper(
        self: &Arc<Self>,
        mut sender: http1::SendRequest<ProxyBody>,
        meta: ConnMeta,
        req: Request<ProxyBody>,
    ) -> SendOn {
        match sender.try_send_request(req).await {
            Ok(resp) => Ok(self.framed(resp).map(|resp| {
                let lease = Lease {
                    pool: Arc::clone(self),
                    conn: Some(Box::new(H1Conn::join(Link::Hyper(sender), meta))),
                };
                (resp.map(UpstreamBody::Net), Some(lease))
            })),
            Err(mut e) => match e.take_message() {
                Some(back) => Err((back, e.into_error().into())),
                None => Ok(Err(Error::new(Kind::Upstream, Some(e.into_error().into())))),
            },
        }
    }

    /// Whether an idle connection of `client` waits in the pool.
    fn has_idle(&self, client: Client) -> bool {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|c| c.client() == client)
    }

    /// Takes the least recently used idle connection of the other client, to be closed.
    fn take_idle_other(&self, client: Client) -> Option<H1Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let at = idle.iter().position(|c| c.client() != client)?;
        Some(idle.remove(at))
    }
}

impl HostPool {
    /// An HTTP/1 response whose framing is ambiguous (both Content-Length and
    /// Transfer-Encoding: RFC 9112 §6.1 calls it a smuggling vector) is a protocol error, as in
    /// Envoy: a 502 for the client, and the connection is dropped with the response.
    fn framed<B>(&self, resp: Response<B>) -> Result<Response<B>, Error> {
        let h = resp.headers();
        if h.contains_key(http::header::CONTENT_LENGTH)
            && h.contains_key(http::header::TRANSFER_ENCODING)
        {
            self.stats.cx_protocol_error.inc();
            return Err(Error::new(
                Kind::UpstreamProtocol,
                Some("both content-length and transfer-encoding".into()),
            ));
        }
        Ok(resp)
    }
}

fn overflow(o: Overflow) -> Error {
    Error::new(Kind::Overflow, Some(o.into()))
}

/// An upstream connection: plain TCP, or TLS over it.
#[derive(Debug)]
pub(crate) enum UpIo {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl tokio::io::AsyncRead for UpIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for UpIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
