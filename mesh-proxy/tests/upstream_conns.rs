//! Upstream connections as Envoy manages them (issue #11, found with Istio's circuit-breaking
//! task): requests per connection, connection lifetime and idle timeout, the pending queue,
//! and what an upstream's framing may not do.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use mesh_core::config::*;
use mesh_core::stats::StatName;
use mesh_proxy::RunningProxy;
use mesh_proxy::test_util::{Behavior, Client, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

async fn start(cluster: Cluster) -> (RunningProxy, SocketAddr) {
    mesh_proxy::test_util::start_for_cluster(cluster).await
}

fn gauge(p: &RunningProxy, cluster: &str, name: &str) -> i64 {
    p.stats().gauge(StatName::cluster(cluster, name)).get()
}

/// Regression: `max_requests_per_connection` (Istio's `maxRequestsPerConnection`) was
/// ignored and one upstream connection carried every request.
#[tokio::test]
async fn max_requests_per_connection_opens_new_connections() {
    let up = Upstream::start("up", Behavior::Identify).await;
    let mut c = Cluster::new_static("up", [up.addr()]);
    c.max_requests_per_connection = Some(2);
    let (_p, addr) = start(c).await;
    let client = Client::http1();
    for _ in 0..5 {
        assert_eq!(client.get(addr, "/", &[]).await.status, StatusCode::OK);
    }
    assert_eq!(up.accepted(), 3, "2 + 2 + 1 requests");
}

/// Upstream connections expire: idle ones after the cluster's `idle_timeout`, and any after
/// `max_connection_duration`.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn idle_and_old_upstream_connections_close() {
    for (idle, max_age) in [
        (Duration::from_secs(5), None),
        (Duration::from_secs(3600), Some(Duration::from_secs(5))),
    ] {
        let up = Upstream::start("up", Behavior::Identify).await;
        let mut c = Cluster::new_static("up", [up.addr()]);
        c.idle_timeout = idle;
        c.max_connection_duration = max_age;
        let (p, addr) = start(c).await;
        let client = Client::http1();
        assert_eq!(client.get(addr, "/", &[]).await.status, StatusCode::OK);
        assert_eq!(gauge(&p, "up", "upstream_cx_active"), 1);
        // Swept every second of the proxy's clock.
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert_eq!(
            gauge(&p, "up", "upstream_cx_active"),
            0,
            "closed with idle {idle:?}, max age {max_age:?}"
        );
        assert_eq!(client.get(addr, "/", &[]).await.status, StatusCode::OK);
        assert_eq!(up.accepted(), 2);
        p.shutdown().await;
    }
}

/// An upstream that answers each request only when the test releases it, and tells the test
/// when a request has arrived.
async fn held_upstream() -> (
    SocketAddr,
    mpsc::UnboundedReceiver<()>,
    mpsc::UnboundedSender<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (arrived_tx, arrived) = mpsc::unbounded_channel();
    let (release, release_rx) = mpsc::unbounded_channel::<()>();
    let release_rx = std::sync::Arc::new(tokio::sync::Mutex::new(release_rx));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let arrived_tx = arrived_tx.clone();
            let release_rx = std::sync::Arc::clone(&release_rx);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let arrived_tx = arrived_tx.clone();
                    let release_rx = std::sync::Arc::clone(&release_rx);
                    async move {
                        let _ = arrived_tx.send(());
                        release_rx.lock().await.recv().await;
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            mesh_proxy::body::full("done"),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, arrived, release)
}

/// Regression: a request queued at `max_pending_requests` kept its pending slot after it got
/// a connection, so the next request got an immediate 503 where Envoy would queue it.
#[tokio::test]
async fn a_request_leaves_the_pending_queue_when_it_gets_a_connection() {
    let (up, mut arrived, release) = held_upstream().await;
    let mut c = Cluster::new_static("up", [up]);
    c.circuit_breakers.thresholds.push(Thresholds {
        max_connections: 1,
        max_pending_requests: 1,
        ..Thresholds::default()
    });
    let (p, addr) = start(c).await;
    let client = Client::http1();
    let send = || {
        let client = client.clone();
        tokio::spawn(async move { client.get(addr, "/", &[]).await.status })
    };
    let a = send();
    arrived.recv().await.unwrap(); // A holds the one connection.
    let b = send();
    let pending_active = || gauge(&p, "up", "upstream_rq_pending_active");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pending_active() != 1 {
        assert!(tokio::time::Instant::now() < deadline, "B never queued");
        tokio::task::yield_now().await;
    }
    release.send(()).unwrap(); // A is answered; B takes the connection.
    assert_eq!(a.await.unwrap(), StatusCode::OK);
    arrived.recv().await.unwrap(); // B is at the upstream, no longer pending.
    assert_eq!(pending_active(), 0);
    let c3 = send();
    while pending_active() != 1 {
        assert!(!c3.is_finished(), "C was refused instead of queued");
        assert!(tokio::time::Instant::now() < deadline, "C never queued");
        tokio::task::yield_now().await;
    }
    release.send(()).unwrap();
    release.send(()).unwrap();
    assert_eq!(b.await.unwrap(), StatusCode::OK);
    assert_eq!(c3.await.unwrap(), StatusCode::OK);
    assert_eq!(
        p.stats()
            .counter(StatName::cluster("up", "upstream_rq_pending_total"))
            .get(),
        3,
        "every request waited for a connection, A while it was opened"
    );
    assert_eq!(
        p.stats()
            .counter(StatName::cluster("up", "upstream_rq_pending_overflow"))
            .get(),
        0
    );
}

/// A raw upstream that answers every request on a connection with `response`, then closes
/// if `close` says so.
async fn raw_upstream(response: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        if s.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn raw_get(addr: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Read one response: the head, then a body of its Content-Length.
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let len = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if out.len() >= head_end + 4 + len || n == 0 {
                return text;
            }
        }
        if n == 0 {
            return text;
        }
    }
}

/// Regression: an HTTP/1.0 upstream response reached an HTTP/1.1 client as `HTTP/1.0`, and
/// the client lost keep-alive. The proxy answers in the downstream's protocol version.
#[tokio::test]
async fn an_http_10_upstream_answer_reaches_the_client_as_http_11() {
    let up = raw_upstream("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let (_p, addr) = start(Cluster::new_static("up", [up])).await;
    let resp = raw_get(addr).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        !resp.to_ascii_lowercase().contains("connection: close"),
        "{resp}"
    );
}

/// Regression: a response with both Content-Length and Transfer-Encoding was truncated to
/// the Content-Length and served as 200; Envoy treats it as a protocol error (502).
#[tokio::test]
async fn content_length_with_transfer_encoding_is_a_502() {
    let up = raw_upstream(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let (p, addr) = start(Cluster::new_static("up", [up])).await;
    let r = Client::http1().get(addr, "/", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert!(
        p.stats()
            .counter(StatName::cluster("up", "upstream_cx_protocol_error"))
            .get()
            >= 1
    );
}

/// Every test above again, over hyper's HTTP/1.1 server and client in place of the built-in
/// ones.
#[test]
fn the_suite_holds_over_hyper() {
    mesh_proxy::test_util::rerun_over_hyper("the_suite_holds_over_hyper");
}
