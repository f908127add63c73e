//! Upstream connections: a keep-alive pool per host, HTTP/1.1 or HTTP/2.
//!
//! HTTP/1.1: idle connections wait in a stack; a request takes the most recently used one that
//! is still open, or connects. A connection goes back to the stack when its response body has
//! been read to the end (a body dropped early leaves the connection to close).
//! HTTP/2: one shared connection per host, multiplexed; re-established when it closes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use mesh_core::config::{Address, UpstreamProtocol};
use mesh_core::stats::{Counter, Gauge};
use tokio::net::TcpStream;

use crate::body::ProxyBody;
use mesh_lb::breaker::{Limits, Overflow, Permit};

use crate::error::{Error, Kind};

/// Per-cluster connection stats.
#[derive(Debug)]
pub(crate) struct PoolStats {
    pub(crate) cx_total: Arc<Counter>,
    pub(crate) cx_active: Arc<Gauge>,
    pub(crate) cx_connect_fail: Arc<Counter>,
    pub(crate) cx_connect_timeout: Arc<Counter>,
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

/// The connection pool of one upstream host.
#[derive(Debug)]
pub(crate) struct HostPool {
    pub(crate) host_stats: HostStats,
    address: Address,
    protocol: UpstreamProtocol,
    connect_timeout: Duration,
    idle: Mutex<Vec<http1::SendRequest<ProxyBody>>>,
    h2: tokio::sync::Mutex<Option<http2::SendRequest<ProxyBody>>>,
    stats: Arc<PoolStats>,
    /// Woken when a connection goes back to the pool or closes (a request waiting at
    /// `max_connections` may proceed).
    released: tokio::sync::Notify,
}

/// A sent request's connection, handed back to the pool once the response is done.
#[derive(Debug)]
pub(crate) struct Lease {
    pool: Arc<HostPool>,
    sender: Option<http1::SendRequest<ProxyBody>>,
}

impl Lease {
    /// Returns the connection to the pool (call when the response body ended cleanly).
    pub(crate) fn release(mut self) {
        if let Some(s) = self.sender.take()
            && !s.is_closed()
        {
            let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.push(s);
            drop(idle);
            self.pool.released.notify_one();
        }
    }
}

impl HostPool {
    pub(crate) fn new(
        address: Address,
        protocol: UpstreamProtocol,
        connect_timeout: Duration,
        stats: Arc<PoolStats>,
    ) -> Self {
        Self {
            host_stats: HostStats::default(),
            address,
            protocol,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
            h2: tokio::sync::Mutex::new(None),
            stats,
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
        connect_timeout: Duration,
    ) -> bool {
        self.protocol == protocol && self.connect_timeout == connect_timeout
    }

    async fn connect(&self) -> Result<TokioIo<TcpStream>, Error> {
        let connect = TcpStream::connect((self.address.host.as_str(), self.address.port));
        let stream = match tokio::time::timeout(self.connect_timeout, connect).await {
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

    async fn pooled_h1(&self) -> Option<http1::SendRequest<ProxyBody>> {
        loop {
            let mut s = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.pop()?
            };
            if !s.is_closed() && s.ready().await.is_ok() {
                return Some(s);
            }
        }
    }

    async fn new_h1(
        self: &Arc<Self>,
        slot: Permit,
    ) -> Result<http1::SendRequest<ProxyBody>, Error> {
        let io = self.connect().await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| Error::new(Kind::Upstream, Some(e.into())))?;
        self.spawn_conn(conn.with_upgrades(), slot);
        Ok(sender)
    }

    async fn h2_sender(
        self: &Arc<Self>,
        limits: &Arc<Limits>,
    ) -> Result<http2::SendRequest<ProxyBody>, Error> {
        let mut h2 = self.h2.lock().await;
        if let Some(s) = h2.as_ref()
            && !s.is_closed()
        {
            return Ok(s.clone());
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
        *h2 = Some(sender.clone());
        Ok(sender)
    }

    /// Sends a request on a pooled (or new) connection, within the cluster's circuit-breaker
    /// `limits`: a request with no idle connection is pending (`max_pending_requests`); at
    /// `max_connections` it waits for a connection to come back. `upgrade` requests always use
    /// a fresh HTTP/1.1 connection that is never pooled.
    pub(crate) async fn send(
        self: &Arc<Self>,
        req: Request<ProxyBody>,
        upgrade: bool,
        limits: &Arc<Limits>,
    ) -> Result<(Response<hyper::body::Incoming>, Option<Lease>), Error> {
        let upstream_err = |e: hyper::Error| Error::new(Kind::Upstream, Some(e.into()));
        if upgrade {
            let slot = limits.try_connection().map_err(overflow)?;
            let io = self.connect().await?;
            let (mut sender, conn) = http1::Builder::new()
                .handshake(io)
                .await
                .map_err(upstream_err)?;
            self.spawn_conn(conn.with_upgrades(), slot);
            let resp = sender.send_request(req).await.map_err(upstream_err)?;
            return Ok((resp, None));
        }
        if self.protocol == UpstreamProtocol::Http2 {
            let mut sender = self.h2_sender(limits).await?;
            let resp = sender.send_request(req).await.map_err(upstream_err)?;
            return Ok((resp, None));
        }
        let mut req = req;
        let mut pending = None;
        loop {
            // Registered before looking, so a connection released meanwhile is not missed.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            // A pooled connection may have been closed by the upstream while idle; when the
            // request was not sent on it, try the next one or a new connection.
            while let Some(mut sender) = self.pooled_h1().await {
                match sender.try_send_request(req).await {
                    Ok(resp) => {
                        let lease = Lease {
                            pool: Arc::clone(self),
                            sender: Some(sender),
                        };
                        return Ok((resp, Some(lease)));
                    }
                    Err(mut e) => match e.take_message() {
                        Some(back) => req = back,
                        None => return Err(upstream_err(e.into_error())),
                    },
                }
            }
            if pending.is_none() {
                pending = Some(limits.try_pending().map_err(overflow)?);
            }
            match limits.try_connection() {
                Ok(slot) => {
                    let mut sender = self.new_h1(slot).await?;
                    drop(pending);
                    let resp = sender.send_request(req).await.map_err(upstream_err)?;
                    let lease = Lease {
                        pool: Arc::clone(self),
                        sender: Some(sender),
                    };
                    return Ok((resp, Some(lease)));
                }
                Err(_) => released.await,
            }
        }
    }
}

fn overflow(o: Overflow) -> Error {
    Error::new(Kind::Overflow, Some(o.into()))
}
