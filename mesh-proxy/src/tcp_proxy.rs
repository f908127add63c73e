//! Envoy's `tcp_proxy` network filter: each downstream connection is streamed, both ways, to
//! a host of a cluster.
//!
//! The cluster is the chain's (or one of its weighted clusters, drawn per connection). Its
//! balancer picks the host; an `ORIGINAL_DST` cluster connects where the downstream connection
//! was going (its original destination). Bytes are copied in both directions until both have
//! ended: an end of stream one way is passed on as a half-close (`shutdown(SHUT_WR)`) and the
//! other way keeps flowing, as Envoy does. The idle timeout closes both sides after a period
//! with no byte either way.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use mesh_core::config::{DiscoveryType, TcpProxy};
use mesh_core::flags::ResponseFlags;
use mesh_core::stats::{Counter, Registry, StatName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

mod pipe;

use crate::access_log::{AccessLogger, FormatError, LogRecord};
use crate::compile::ClusterRt;
use crate::conn_manager::Shared;

/// A compiled `tcp_proxy`.
#[derive(Debug)]
pub(crate) struct TcpChainRt {
    config: TcpProxy,
    stats: TcpStats,
    access_logs: Vec<AccessLogger>,
}

/// `tcp.<stat_prefix>.*`.
#[derive(Debug)]
struct TcpStats {
    cx_total: Arc<Counter>,
    no_route: Arc<Counter>,
    rx_bytes: Arc<Counter>,
    tx_bytes: Arc<Counter>,
    idle_timeout: Arc<Counter>,
}

impl TcpChainRt {
    pub(crate) fn new(
        config: &TcpProxy,
        stats: &Registry,
        log_files: &crate::access_log::LogFiles,
    ) -> Result<Self, FormatError> {
        let c = |name: &str| stats.counter(StatName::tcp(&config.stat_prefix, name));
        Ok(Self {
            stats: TcpStats {
                cx_total: c("downstream_cx_total"),
                no_route: c("downstream_cx_no_route"),
                rx_bytes: c("downstream_cx_rx_bytes_total"),
                tx_bytes: c("downstream_cx_tx_bytes_total"),
                idle_timeout: c("idle_timeout"),
            },
            access_logs: config
                .access_log
                .iter()
                .map(|a| AccessLogger::new(a, log_files))
                .collect::<Result<_, _>>()?,
            config: config.clone(),
        })
    }

    /// The cluster for one connection: the only one, or one drawn by weight.
    fn cluster(&self, random: u64) -> Option<&str> {
        let total: u64 = self
            .config
            .clusters
            .iter()
            .map(|c| u64::from(c.weight))
            .sum();
        if total == 0 {
            return self.config.clusters.first().map(|c| c.name.as_str());
        }
        let mut at = random % total;
        for c in &self.config.clusters {
            if at < u64::from(c.weight) {
                return Some(&c.name);
            }
            at -= u64::from(c.weight);
        }
        None
    }
}

/// A downstream connection as the listener hands it over (plain or TLS; bytes the listener
/// filters read are replayed by the stream itself).
#[derive(Debug)]
pub(crate) struct Downstream<S> {
    pub(crate) stream: S,
    /// The client.
    pub(crate) remote: SocketAddr,
    /// Where the client was going: the original destination when it was restored.
    pub(crate) local: SocketAddr,
    /// The TLS session, when the chain terminates TLS.
    pub(crate) tls: Option<crate::tls::TlsInfo>,
}

/// Proxies one connection until both directions have ended or the idle timeout passes.
pub(crate) async fn serve<S>(down: Downstream<S>, chain: Arc<TcpChainRt>, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    chain.stats.cx_total.inc();
    let start = SystemTime::now();
    let began = Instant::now();
    let mut log = LogRecord {
        start: Some(start),
        downstream_remote: Some(down.remote),
        downstream_local: Some(down.local),
        tls: down.tls.clone(),
        ..LogRecord::default()
    };
    let snapshot = shared.store.load_full();
    let picked = chain
        .cluster(shared.random.next_u64())
        .and_then(|name| snapshot.value.clusters.get(name));
    let Some(cluster) = picked else {
        chain.stats.no_route.inc();
        log.flags |= ResponseFlags::NO_CLUSTER_FOUND;
        finish(&chain, &mut log, began);
        return;
    };
    log.upstream_cluster = Some(cluster.config.name.clone());
    // The cluster's max_connections, as Envoy's tcp_proxy honours it: the slot is held for
    // the connection's life.
    let breakers = cluster
        .lb
        .breakers(mesh_core::config::RoutingPriority::Default);
    let Ok(_slot) = breakers.try_connection() else {
        log.flags |= ResponseFlags::UPSTREAM_OVERFLOW;
        finish(&chain, &mut log, began);
        return;
    };
    let mut upstream = None;
    for _ in 0..chain.config.max_connect_attempts.max(1) {
        let Some(target) = target(cluster, down.local, &shared) else {
            cluster.stats.no_healthy.inc();
            log.flags |= ResponseFlags::NO_HEALTHY_UPSTREAM;
            break;
        };
        log.upstream_host = Some(target.to_string());
        match connect(cluster, target).await {
            Ok(s) => {
                upstream = Some(s);
                break;
            }
            Err(e) => {
                tracing::debug!(cluster = %cluster.config.name, upstream = %target, error = %e, "tcp_proxy connect failed");
                log.flags |= ResponseFlags::UPSTREAM_CONNECTION_FAILURE;
            }
        }
    }
    let Some(upstream) = upstream else {
        finish(&chain, &mut log, began);
        return;
    };
    log.flags = ResponseFlags::default();
    cluster.pool_stats.cx_active.inc();
    let activity = Arc::new(AtomicU64::new(0));
    // Bytes are counted as they are read: from downstream, into the chain's received and the
    // cluster's sent totals; from upstream, the other way round.
    let mut down_io = Counted {
        inner: down.stream,
        read: AtomicU64::new(0),
        counters: [
            Arc::clone(&chain.stats.rx_bytes),
            Arc::clone(&cluster.stats.cx_tx_bytes),
        ],
        activity: Arc::clone(&activity),
        epoch: began,
    };
    let mut up_io = Counted {
        inner: upstream,
        read: AtomicU64::new(0),
        counters: [
            Arc::clone(&cluster.stats.cx_rx_bytes),
            Arc::clone(&chain.stats.tx_bytes),
        ],
        activity: Arc::clone(&activity),
        epoch: began,
    };
    let timed_out = copy_both(
        &mut down_io,
        &mut up_io,
        chain.config.idle_timeout,
        &activity,
        began,
    )
    .await;
    if timed_out {
        chain.stats.idle_timeout.inc();
    }
    cluster.pool_stats.cx_active.dec();
    log.bytes_received = down_io.read.load(Ordering::Relaxed);
    log.bytes_sent = up_io.read.load(Ordering::Relaxed);
    finish(&chain, &mut log, began);
}

fn finish(chain: &TcpChainRt, log: &mut LogRecord, began: Instant) {
    log.duration = began.elapsed();
    for l in &chain.access_logs {
        l.log(log);
    }
}

/// The host for one attempt: the original destination for an `ORIGINAL_DST` cluster, else the
/// balancer's pick.
fn target(cluster: &ClusterRt, original: SocketAddr, shared: &Shared) -> Option<SocketAddr> {
    if cluster.config.discovery_type == DiscoveryType::OriginalDst {
        return Some(original);
    }
    let i = cluster
        .lb
        .pick_index_with(&mesh_lb::PickContext::new(shared.random.next_u64()))?;
    let a = cluster.pools.get(i)?.address();
    // Static and EDS hosts are IP literals; a DNS cluster's hosts are resolved addresses too.
    a.socket_addr()
}

/// Connects to `target` within the cluster's connect timeout, from its source address if it
/// has one, counting the attempt in the cluster's stats.
async fn connect(cluster: &ClusterRt, target: SocketAddr) -> std::io::Result<TcpStream> {
    let stats = &cluster.pool_stats;
    let attempt = connect_from(target, cluster.config.upstream_bind_config);
    let r = match tokio::time::timeout(cluster.config.connect_timeout, attempt).await {
        Ok(r) => r,
        Err(_) => {
            stats.cx_connect_timeout.inc();
            Err(std::io::ErrorKind::TimedOut.into())
        }
    };
    match &r {
        Ok(s) => {
            let _ = s.set_nodelay(true);
            stats.cx_total.inc();
        }
        Err(_) => stats.cx_connect_fail.inc(),
    }
    r
}

/// A TCP connection to `target`, bound first to `source` (any port) when given.
pub(crate) async fn connect_from(
    target: SocketAddr,
    source: Option<IpAddr>,
) -> std::io::Result<TcpStream> {
    let Some(ip) = source else {
        return TcpStream::connect(target).await;
    };
    let socket = if target.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(target).await
}

/// A stream that counts the bytes read from it and stamps the time of the last byte either
/// way.
struct Counted<S> {
    inner: S,
    read: AtomicU64,
    counters: [Arc<Counter>; 2],
    /// Milliseconds since `epoch` of the last byte read or written.
    activity: Arc<AtomicU64>,
    epoch: Instant,
}

impl<S> Counted<S> {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.store(ms, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.read.fetch_add(n, Ordering::Relaxed);
            for c in &self.counters {
                c.add(n);
            }
            self.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Copies both ways until both directions end, or the connection idles past `idle` (zero:
/// never). Returns whether the idle timeout ended it.
///
/// A drain does not end it: as in Envoy, a draining listener's TCP connections run on until
/// the drain time is over.
async fn copy_both<S>(
    down: &mut Counted<S>,
    up: &mut Counted<TcpStream>,
    idle: Duration,
    activity: &AtomicU64,
    began: Instant,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let copy = pipe::copy_both(down, up);
    tokio::pin!(copy);
    let idle_at = |last_ms: u64| began + Duration::from_millis(last_ms) + idle;
    let timer = tokio::time::sleep_until(idle_at(0));
    tokio::pin!(timer);
    loop {
        tokio::select! {
            _ = &mut copy => return false,
            _ = &mut timer, if !idle.is_zero() => {
                let at = idle_at(activity.load(Ordering::Relaxed));
                if Instant::now() >= at {
                    return true;
                }
                timer.as_mut().reset(at);
            }
        }
    }
}
