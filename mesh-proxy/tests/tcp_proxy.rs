//! Envoy's `tcp_proxy` and filter-chain choice on loopback (issue #14): bytes stream both
//! ways with half-close, the HTTP inspector sends HTTP to the connection manager and the rest
//! to the TCP proxy, chains match on the client's address, and the idle timeout closes quiet
//! connections.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use mesh_core::config::*;
use mesh_core::stats::StatName;
use mesh_proxy::RunningProxy;
use mesh_proxy::test_util::{Behavior, Client, Upstream};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// A line-echo server: each line comes back upper-cased; at the client's end of stream it
/// writes `bye\n` and closes (so a half-closed client still reads the answer).
async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let out = format!("{}\n", line.to_uppercase());
                    if w.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
                let _ = w.write_all(b"bye\n").await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

fn tcp(prefix: &str, cluster: &str) -> FilterChain {
    FilterChain::tcp(TcpProxy::to_cluster(prefix, cluster))
}

fn counter(p: &RunningProxy, name: StatName) -> u64 {
    p.stats().counter(name).get()
}

async fn start(listener: Listener, clusters: Vec<Cluster>) -> (RunningProxy, SocketAddr) {
    let mut b = Bootstrap::default().with_listener(listener);
    for c in clusters {
        b = b.with_cluster(c);
    }
    let p = mesh_proxy::test_util::start(b).await;
    let addr = p.listener_addr("l").unwrap();
    (p, addr)
}

/// Asserts the proxy closes the connection without a byte: an end of stream, or a reset (the
/// kernel resets a connection closed with unread bytes).
async fn assert_closed(s: &mut TcpStream) {
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf).await {
        Ok(_) => assert_eq!(buf, b""),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
}

/// Reads everything until the peer closes.
async fn read_to_end(s: &mut TcpStream) -> String {
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn bytes_stream_both_ways_and_a_half_close_passes_through() {
    let echo = echo_server().await;
    let l = Listener::new(
        "l",
        "127.0.0.1:0".parse().unwrap(),
        vec![tcp("echo", "echo")],
    );
    let (p, addr) = start(l, vec![Cluster::new_static("echo", [echo])]).await;

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"hello\n").await.unwrap();
    let mut buf = [0u8; 6];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HELLO\n");
    // A large write in pieces, then the client's end of stream: the upstream sees it, answers,
    // and the answer still reaches the half-closed client.
    let big = "x".repeat(100_000) + "\n";
    s.write_all(big.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
    let rest = read_to_end(&mut s).await;
    assert_eq!(rest, big.to_uppercase() + "bye\n");

    let sent = 6 + big.len() as u64;
    let received = 6 + big.len() as u64 + 4;
    assert_eq!(counter(&p, StatName::tcp("echo", "downstream_cx_total")), 1);
    assert_eq!(
        counter(&p, StatName::tcp("echo", "downstream_cx_rx_bytes_total")),
        sent
    );
    // Bytes are counted as they are read, before they are passed on.
    for (stat, n) in [
        (
            StatName::tcp("echo", "downstream_cx_tx_bytes_total"),
            received,
        ),
        (
            StatName::cluster("echo", "upstream_cx_rx_bytes_total"),
            received,
        ),
        (
            StatName::cluster("echo", "upstream_cx_tx_bytes_total"),
            sent,
        ),
    ] {
        assert_eq!(counter(&p, stat), n);
    }
    assert_eq!(
        counter(&p, StatName::cluster("echo", "upstream_cx_total")),
        1
    );
}

/// One listener, two chains: the HTTP inspector sends an HTTP request to the connection
/// manager and anything else (a line protocol) to the TCP proxy; the bytes it read reach both.
#[tokio::test]
async fn the_http_inspector_splits_http_from_other_protocols() {
    let echo = echo_server().await;
    let up = Upstream::start("web", Behavior::Identify).await;
    let routes = RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "web")));
    let mut http = FilterChain::http(HttpConnectionManager::with_routes(routes));
    http.filter_chain_match.application_protocols = vec!["http/1.1".into(), "h2c".into()];
    let mut l = Listener::new("l", "127.0.0.1:0".parse().unwrap(), vec![http]);
    l.default_filter_chain = Some(Box::new(tcp("echo", "echo")));
    l.listener_filters = vec![ListenerFilter::new(ListenerFilterKind::HttpInspector)];
    let (p, addr) = start(
        l,
        vec![
            Cluster::new_static("echo", [echo]),
            Cluster::new_static("web", [up.addr()]),
        ],
    )
    .await;

    // HTTP/1.1 and HTTP/2 prior knowledge reach the route.
    let r = Client::http1().get(addr, "/h1", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-upstream"), "web");
    let r = Client::http2().get(addr, "/h2", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    // A line protocol goes to the echo server, its first line included.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"ping\n").await.unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut s).await, "PING\nbye\n");
    assert_eq!(counter(&p, StatName::tcp("echo", "downstream_cx_total")), 1);
    assert_eq!(up.requests(), 2);
}

/// Chains matched on the client's address (Envoy's `source_prefix_ranges`), and a connection
/// no chain matches is closed and counted.
#[tokio::test]
async fn chains_match_on_the_source_and_an_unmatched_connection_is_closed() {
    let echo = echo_server().await;
    let mut from_2 = tcp("two", "echo");
    from_2.filter_chain_match.source_prefix_ranges = vec![CidrRange {
        address_prefix: "127.0.0.2".parse().unwrap(),
        prefix_len: 32,
    }];
    let mut from_3 = tcp("three", "echo");
    from_3.filter_chain_match.source_prefix_ranges = vec![CidrRange {
        address_prefix: "127.0.0.0".parse().unwrap(),
        prefix_len: 24,
    }];
    let l = Listener::new("l", "127.0.0.1:0".parse().unwrap(), vec![from_2, from_3]);
    let (p, addr) = start(l, vec![Cluster::new_static("echo", [echo])]).await;

    let from = |ip: &str| {
        let s = TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(ip.parse().unwrap(), 0)).unwrap();
        s
    };
    for (ip, prefix) in [("127.0.0.2", "two"), ("127.0.0.3", "three")] {
        let mut s = from(ip).connect(addr).await.unwrap();
        s.write_all(b"a\n").await.unwrap();
        s.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut s).await, "A\nbye\n");
        assert_eq!(
            counter(&p, StatName::tcp(prefix, "downstream_cx_total")),
            1,
            "{ip}"
        );
    }
    // 127.0.1.1 is in neither range.
    let mut s = from("127.0.1.1").connect(addr).await.unwrap();
    let _ = s.write_all(b"a\n").await;
    assert_closed(&mut s).await;
    let address = addr.to_string();
    assert_eq!(
        counter(&p, StatName::listener(&address, "no_filter_chain_match")),
        1
    );
}

/// A connection with no byte either way for the idle timeout is closed on both sides.
#[tokio::test(start_paused = true)]
async fn a_quiet_connection_is_closed_at_the_idle_timeout() {
    let echo = echo_server().await;
    let mut t = TcpProxy::to_cluster("echo", "echo");
    t.idle_timeout = Duration::from_secs(30);
    let l = Listener::new(
        "l",
        "127.0.0.1:0".parse().unwrap(),
        vec![FilterChain::tcp(t)],
    );
    let (p, addr) = start(l, vec![Cluster::new_static("echo", [echo])]).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"x\n").await.unwrap();
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf).await.unwrap();
    let before = tokio::time::Instant::now();
    // Nothing more is sent: the paused clock runs to the timeout and the proxy closes.
    assert_eq!(read_to_end(&mut s).await, "");
    assert!(before.elapsed() >= Duration::from_secs(30));
    assert_eq!(counter(&p, StatName::tcp("echo", "idle_timeout")), 1);
}

/// No host: the cluster has no endpoints (Istio's BlackHoleCluster); the connection is
/// closed and counted.
#[tokio::test]
async fn a_cluster_without_hosts_closes_the_connection() {
    let blackhole = Cluster::new_static("BlackHoleCluster", Vec::<SocketAddr>::new());
    let l = Listener::new(
        "l",
        "127.0.0.1:0".parse().unwrap(),
        vec![tcp("BlackHoleCluster", "BlackHoleCluster")],
    );
    let (p, addr) = start(l, vec![blackhole]).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(b"anyone?\n").await;
    assert_closed(&mut s).await;
    assert_eq!(
        counter(
            &p,
            StatName::cluster("BlackHoleCluster", "upstream_cx_none_healthy")
        ),
        1
    );
}

/// An upstream that refuses: the connection is closed and the failure counted.
#[tokio::test]
async fn a_refused_upstream_closes_the_connection() {
    let (refused, _hold) = mesh_proxy::test_util::refused_addr();
    let mut t = TcpProxy::to_cluster("down", "down");
    t.max_connect_attempts = 2;
    let l = Listener::new(
        "l",
        "127.0.0.1:0".parse().unwrap(),
        vec![FilterChain::tcp(t)],
    );
    let (p, addr) = start(l, vec![Cluster::new_static("down", [refused])]).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert_closed(&mut s).await;
    assert_eq!(
        counter(&p, StatName::cluster("down", "upstream_cx_connect_fail")),
        2
    );
}

/// The cluster's `max_connections` holds for TCP: a connection over it is closed and counted
/// (`upstream_cx_overflow`).
#[tokio::test]
async fn max_connections_limits_tcp_connections() {
    let echo = echo_server().await;
    let mut c = Cluster::new_static("echo", [echo]);
    c.circuit_breakers.thresholds = vec![Thresholds {
        max_connections: 1,
        ..Thresholds::default()
    }];
    let l = Listener::new(
        "l",
        "127.0.0.1:0".parse().unwrap(),
        vec![tcp("echo", "echo")],
    );
    let (p, addr) = start(l, vec![c]).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(b"a\n").await.unwrap();
    let mut buf = [0u8; 2];
    first.read_exact(&mut buf).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert_closed(&mut second).await;
    assert_eq!(
        counter(&p, StatName::cluster("echo", "upstream_cx_overflow")),
        1
    );
    // The first connection is unaffected.
    first.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut first).await, "bye\n");
}
