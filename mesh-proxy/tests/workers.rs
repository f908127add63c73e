//! Per-core workers (`ProxyBuilder::workers`, the binary's `--concurrency`): listeners bound
//! once per worker with `SO_REUSEPORT`, each worker a thread with its own runtime and its own
//! upstream connections.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, StatusCode};
use mesh_core::config::*;
use mesh_core::stats::StatName;
use mesh_proxy::test_util::{Behavior, Client, Upstream};
use mesh_proxy::{Proxy, RunningProxy, body};

const WORKERS: usize = 2;
/// Enough downstream connections that the kernel's hash puts some on every worker (all on
/// one of two workers: one chance in 2^15).
const CONNECTIONS: usize = 16;
/// A bound on every test, so a lost wake-up fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(20);

fn boot(upstream: SocketAddr, thresholds: Option<Thresholds>) -> Bootstrap {
    let mut cluster = Cluster::new_static("up", [upstream]);
    if let Some(t) = thresholds {
        cluster.circuit_breakers.thresholds.push(t);
    }
    Bootstrap::default()
        .with_listener(Listener::http(
            "http",
            "127.0.0.1:0".parse().unwrap(),
            HttpConnectionManager::with_routes(RouteConfiguration::new("r").with_virtual_host(
                VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "up")),
            )),
        ))
        .with_cluster(cluster)
}

async fn start(b: Bootstrap) -> (RunningProxy, SocketAddr) {
    let running = Proxy::builder(b)
        .workers(WORKERS)
        .drain_time(Duration::from_secs(5))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let addr = running.listener_addr("http").unwrap();
    (running, addr)
}

/// Why a proxy with workers for `b` does not start.
async fn start_error(b: Bootstrap) -> mesh_proxy::Error {
    Proxy::builder(b)
        .workers(WORKERS)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap_err()
}

/// Sends `n` requests, one after another, on one new HTTP/1.1 connection.
async fn requests_on_one_connection(addr: SocketAddr, n: usize) -> Vec<StatusCode> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut out = Vec::new();
    for _ in 0..n {
        let req = Request::get("/")
            .header("host", "x")
            .body(body::empty())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap();
        out.push(status);
    }
    out
}

async fn many_connections(addr: SocketAddr, each: usize) -> Vec<StatusCode> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        set.spawn(requests_on_one_connection(addr, each));
    }
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        all.extend(r.unwrap());
    }
    all
}

#[tokio::test]
async fn workers_serve_http1_and_h2c_and_drain_on_shutdown() {
    tokio::time::timeout(LIMIT, async {
        let up = Upstream::start("up", Behavior::Identify).await;
        let (proxy, addr) = start(boot(up.addr(), None)).await;
        let statuses = many_connections(addr, 3).await;
        assert_eq!(statuses.len(), CONNECTIONS * 3);
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
        let r = Client::http2().get(addr, "/", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.text(), "up GET /");
        // The kernel spread the connections: every worker accepted some (Envoy's
        // `listener.<address>.worker_<id>.downstream_cx_total`).
        for w in 0..WORKERS {
            let stat = StatName::listener_worker(&addr.to_string(), w, "downstream_cx_total");
            let n = proxy.stats().counter(stat).get();
            assert!(n > 0, "worker {w} accepted {n} connections");
        }
        // Upstream connections are kept per worker and reused: at most one per downstream
        // connection, since each sent its requests one at a time.
        assert!(up.accepted() <= CONNECTIONS + 1, "{}", up.accepted());
        proxy.shutdown().await;
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "no worker accepts after shutdown"
        );
    })
    .await
    .expect("within the limit");
}

/// The cluster's `max_connections` counts every worker's connections: with one allowed, the
/// workers share it, and requests on a worker that did not open it are served on it rather
/// than waiting for a connection of their own.
#[tokio::test]
async fn max_connections_holds_across_workers() {
    tokio::time::timeout(LIMIT, async {
        let up = Upstream::start("up", Behavior::Identify).await;
        let t = Thresholds {
            max_connections: 1,
            ..Thresholds::default()
        };
        let (proxy, addr) = start(boot(up.addr(), Some(t))).await;
        let statuses = many_connections(addr, 2).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
        assert_eq!(up.accepted(), 1, "one upstream connection for all workers");
        proxy.shutdown().await;
    })
    .await
    .expect("within the limit");
}

#[tokio::test]
async fn a_reload_adds_a_listener_on_every_worker() {
    tokio::time::timeout(LIMIT, async {
        let up = Upstream::start("up", Behavior::Identify).await;
        let first = boot(up.addr(), None);
        let (proxy, _) = start(first.clone()).await;
        let mut second = first.clone();
        let mut l = second.listeners[0].clone();
        l.name = "second".into();
        second.listeners.push(l);
        proxy.reload(second).await.unwrap();
        let addr = proxy.listener_addr("second").unwrap();
        let statuses = many_connections(addr, 1).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
        proxy.shutdown().await;
    })
    .await
    .expect("within the limit");
}

#[tokio::test]
async fn a_port_in_use_is_a_bind_error_with_workers() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut b = boot("127.0.0.1:1".parse().unwrap(), None);
    b.listeners[0].address = taken.local_addr().unwrap();
    let err = start_error(b).await;
    assert!(err.is_bind(), "{err}");
}

/// A port another process serves with `SO_REUSEPORT` is not shared silently.
#[tokio::test]
async fn a_port_shared_with_reuseport_elsewhere_is_a_bind_error() {
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.set_reuseport(true).unwrap();
    other.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = other.local_addr().unwrap();
    let _other = other.listen(16).unwrap();
    let mut b = boot("127.0.0.1:1".parse().unwrap(), None);
    b.listeners[0].address = addr;
    let err = start_error(b).await;
    assert!(err.is_bind(), "{err}");
}
