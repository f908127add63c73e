//! The built-in HTTP/1.1 upstream client against upstreams that answer byte for byte what a
//! test scripts: response framings (length, chunked with trailers, until close, none),
//! interim responses, broken responses, and connections that close while pooled.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use mesh_core::config::*;
use mesh_proxy::{Http1Client, Proxy, RunningProxy, body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(10);

/// An upstream that answers each request head on a connection with the next scripted
/// response, then closes the connection when the script says so. Reports each accepted
/// connection and each request head it read.
struct Scripted {
    addr: SocketAddr,
    heads: mpsc::UnboundedReceiver<String>,
    accepted: mpsc::UnboundedReceiver<()>,
    /// One message per connection the proxy closed while the script waited on it.
    closed: mpsc::UnboundedReceiver<()>,
}

/// What the upstream does after a request head.
#[derive(Clone)]
enum Step {
    /// Writes these bytes and waits for the next request.
    Answer(&'static [u8]),
    /// Writes these bytes and closes the connection.
    AnswerAndClose(&'static [u8]),
    /// Never answers: waits for the proxy to close the connection, and reports it.
    Hang,
}

impl Scripted {
    /// Every connection plays `script` from its start.
    async fn start(script: Vec<Step>) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (head_tx, heads) = mpsc::unbounded_channel();
        let (acc_tx, accepted) = mpsc::unbounded_channel();
        let (closed_tx, closed) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = acc_tx.send(());
                let (script, head_tx, closed_tx) =
                    (script.clone(), head_tx.clone(), closed_tx.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    for step in script {
                        let Some(head) = read_head(&mut s, &mut buf).await else {
                            return;
                        };
                        let _ = head_tx.send(head);
                        match step {
                            Step::Answer(b) => s.write_all(b).await.unwrap(),
                            Step::AnswerAndClose(b) => {
                                s.write_all(b).await.unwrap();
                                return;
                            }
                            Step::Hang => {
                                let _ = s.read_to_end(&mut buf).await;
                                let _ = closed_tx.send(());
                                return;
                            }
                        }
                    }
                    // Script over: hold the connection until the peer closes it.
                    let _ = s.read_to_end(&mut buf).await;
                });
            }
        });
        Self {
            addr,
            heads,
            accepted,
            closed,
        }
    }

    fn accepted(&mut self) -> usize {
        let mut n = 0;
        while self.accepted.try_recv().is_ok() {
            n += 1;
        }
        n
    }
}

async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..end + 4).collect();
            return Some(String::from_utf8_lossy(&head).into_owned());
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn proxy_to(upstream: SocketAddr) -> (RunningProxy, SocketAddr) {
    proxy_to_cluster(Cluster::new_static("up", [upstream])).await
}

/// A proxy routing everything to `cluster` (named `up`).
async fn proxy_to_cluster(cluster: Cluster) -> (RunningProxy, SocketAddr) {
    let boot = Bootstrap::default()
        .with_listener(Listener::http(
            "http",
            "127.0.0.1:0".parse().unwrap(),
            HttpConnectionManager::with_routes(RouteConfiguration::new("r").with_virtual_host(
                VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "up")),
            )),
        ))
        .with_cluster(cluster);
    let p = Proxy::builder(boot)
        .http1_client(Http1Client::Builtin)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let addr = p.listener_addr("http").unwrap();
    (p, addr)
}

struct Got {
    status: StatusCode,
    body: String,
}

/// Sends requests one after another on one downstream connection.
struct Downstream(hyper::client::conn::http1::SendRequest<body::ProxyBody>);

impl Downstream {
    async fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
            .await
            .unwrap();
        tokio::spawn(conn);
        Self(sender)
    }

    async fn send(&mut self, method: Method, path: &str) -> Got {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "x")
            .body(body::empty())
            .unwrap();
        let resp = self.0.send_request(req).await.unwrap();
        let status = resp.status();
        let collected = resp.into_body().collect().await.unwrap();
        Got {
            status,
            body: String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        }
    }
}

#[tokio::test]
async fn framings_are_decoded_and_the_connection_is_reused() {
    tokio::time::timeout(LIMIT, async {
        let mut up = Scripted::start(vec![
            Step::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"),
            Step::Answer(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nx-checksum: 42\r\n\r\n",
            ),
            Step::Answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"),
            Step::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n"),
            Step::AnswerAndClose(b"HTTP/1.1 200 OK\r\n\r\nuntil close"),
        ])
        .await;
        let (p, addr) = proxy_to(up.addr).await;
        let mut d = Downstream::connect(addr).await;

        let a = d.send(Method::GET, "/length").await;
        assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "hello"));
        let b = d.send(Method::GET, "/chunked").await;
        assert_eq!((b.status, b.body.as_str()), (StatusCode::OK, "abcde"));
        let c = d.send(Method::GET, "/interim").await;
        assert_eq!((c.status, c.body.as_str()), (StatusCode::NO_CONTENT, ""));
        // A HEAD response has no body, whatever its content-length says.
        let h = d.send(Method::HEAD, "/head").await;
        assert_eq!((h.status, h.body.as_str()), (StatusCode::OK, ""));
        let e = d.send(Method::GET, "/eof").await;
        assert_eq!((e.status, e.body.as_str()), (StatusCode::OK, "until close"));
        assert_eq!(up.accepted(), 1, "one upstream connection served all five");

        // The request heads went out in origin form with the route's host.
        let first = up.heads.recv().await.unwrap();
        assert!(first.starts_with("GET /length HTTP/1.1\r\n"), "{first}");
        assert!(first.contains("host: x\r\n"), "{first}");
        p.shutdown().await;
    })
    .await
    .expect("within the limit");
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_pooled_is_not_used() {
    tokio::time::timeout(LIMIT, async {
        // Each connection answers once, keep-alive, then closes while idle.
        let mut up = Scripted::start(vec![Step::AnswerAndClose(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        )])
        .await;
        let (p, addr) = proxy_to(up.addr).await;
        let mut d = Downstream::connect(addr).await;
        for _ in 0..3 {
            // Wait until the upstream has closed the last connection (its FIN is in).
            let r = d.send(Method::GET, "/").await;
            assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
            tokio::task::yield_now().await;
        }
        assert_eq!(up.accepted(), 3, "a new connection each time");
        p.shutdown().await;
    })
    .await
    .expect("within the limit");
}

#[tokio::test]
async fn broken_responses_are_502_and_the_connection_is_dropped() {
    for bad in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\nok"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok",
        b"HTTP/1.1 two hundred\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    ] {
        tokio::time::timeout(LIMIT, async {
            let mut up = Scripted::start(vec![Step::Answer(bad)]).await;
            let (p, addr) = proxy_to(up.addr).await;
            let mut d = Downstream::connect(addr).await;
            let r = d.send(Method::GET, "/").await;
            assert_eq!(
                r.status,
                StatusCode::BAD_GATEWAY,
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert_eq!(up.accepted(), 1);
            p.shutdown().await;
        })
        .await
        .expect("within the limit");
    }
}

#[tokio::test]
async fn a_body_cut_short_resets_the_downstream_stream() {
    tokio::time::timeout(LIMIT, async {
        let up = Scripted::start(vec![Step::AnswerAndClose(
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
        )])
        .await;
        let (p, addr) = proxy_to(up.addr).await;
        let s = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, body::ProxyBody>(
            hyper_util::rt::TokioIo::new(s),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = Request::get("/")
            .header("host", "x")
            .body(body::empty())
            .unwrap();
        // The downstream sees the exchange fail (before or after the head), never a short
        // body that looks complete.
        if let Ok(resp) = sender.send_request(req).await {
            assert!(resp.into_body().collect().await.is_err());
        }
        p.shutdown().await;
    })
    .await
    .expect("within the limit");
}

/// A client that goes away cancels its request: the upstream connection carrying it is
/// closed, rather than left to the route's timeout (as hyper's server did it).
#[tokio::test]
async fn a_client_that_closes_cancels_its_upstream_request() {
    tokio::time::timeout(LIMIT, async {
        let mut up = Scripted::start(vec![Step::Hang]).await;
        let (p, addr) = proxy_to(up.addr).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        up.heads.recv().await.unwrap();
        drop(s);
        up.closed
            .recv()
            .await
            .expect("the upstream connection closes");
        p.shutdown().await;
    })
    .await
    .expect("within the limit (the route timeout is 15 s)");
}

/// At `max_connections`, an idle connection of hyper's client (left by a request with a
/// body) gives its slot to a request for the built-in client, and the other way round.
#[tokio::test]
async fn both_clients_share_max_connections() {
    tokio::time::timeout(LIMIT, async {
        let up =
            mesh_proxy::test_util::Upstream::start("up", mesh_proxy::test_util::Behavior::Identify)
                .await;
        let mut cluster = Cluster::new_static("up", [up.addr()]);
        cluster.circuit_breakers.thresholds.push(Thresholds {
            max_connections: 1,
            ..Thresholds::default()
        });
        let (p, addr) = proxy_to_cluster(cluster).await;
        let client = mesh_proxy::test_util::Client::http1();
        for i in 0..4 {
            let req = if i % 2 == 0 {
                Request::post(format!("http://{addr}/"))
                    .body(body::full("a body"))
                    .unwrap()
            } else {
                Request::get(format!("http://{addr}/"))
                    .body(body::empty())
                    .unwrap()
            };
            assert_eq!(client.send(req).await.status, StatusCode::OK, "request {i}");
        }
        p.shutdown().await;
    })
    .await
    .expect("within the limit");
}
