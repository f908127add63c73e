//! End to end over loopback: real upstreams, the proxy in front, real hyper clients.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use mesh_core::config::*;
use mesh_proxy::RunningProxy;
use mesh_proxy::body;
use mesh_proxy::test_util::{Behavior, Client, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn listener(routes: RouteConfiguration) -> Listener {
    Listener::http(
        "http",
        "127.0.0.1:0".parse().unwrap(),
        HttpConnectionManager::with_routes(routes),
    )
}

/// One raw HTTP/1.1 client connection; the handle completes when the connection closes.
async fn h1_connection<B>(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<B>,
    tokio::task::JoinHandle<hyper::Result<()>>,
)
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    (sender, tokio::spawn(conn))
}

async fn start(b: Bootstrap) -> (RunningProxy, SocketAddr) {
    let running = mesh_proxy::test_util::start(b).await;
    let addr = running.listener_addr("http").unwrap();
    (running, addr)
}

/// Two upstreams, routed by path prefix and by header.
async fn two_services(
    protocol: UpstreamProtocol,
) -> (Upstream, Upstream, RunningProxy, SocketAddr) {
    two_services_with(protocol, |_| {}).await
}

/// [`two_services`] with connection manager settings of the test's own.
async fn two_services_with(
    protocol: UpstreamProtocol,
    hcm: impl FnOnce(&mut HttpConnectionManager),
) -> (Upstream, Upstream, RunningProxy, SocketAddr) {
    let a = Upstream::start("a", Behavior::Identify).await;
    let b = Upstream::start("b", Behavior::Identify).await;
    let routes = RouteConfiguration::new("r").with_virtual_host(
        VirtualHost::new("all", ["*"])
            .with_route(
                Route::prefix("/", "b").with_header(HeaderMatcher::exact("x-canary", "yes")),
            )
            .with_route(Route::prefix("/a", "a"))
            .with_route(Route::prefix("/b", "b")),
    );
    let mut l = listener(routes);
    hcm(l.filter_chains[0].hcm_mut().unwrap());
    let boot = Bootstrap::default()
        .with_listener(l)
        .with_cluster(Cluster::new_static("a", [a.addr()]).with_protocol(protocol))
        .with_cluster(Cluster::new_static("b", [b.addr()]).with_protocol(protocol));
    let (p, addr) = start(boot).await;
    (a, b, p, addr)
}

#[tokio::test]
async fn routes_by_path_and_header() {
    let (_a, _b, proxy, addr) = two_services(UpstreamProtocol::Http1).await;
    let c = Client::http1();
    let r = c.get(addr, "/a/x?q=1", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "a GET /a/x?q=1");
    assert_eq!(c.get(addr, "/b", &[]).await.header("x-upstream"), "b");
    assert_eq!(
        c.get(addr, "/a", &[("x-canary", "yes")])
            .await
            .header("x-upstream"),
        "b"
    );
    assert_eq!(
        c.get(addr, "/a", &[("x-canary", "no")])
            .await
            .header("x-upstream"),
        "a"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn forwarding_headers_request_id_and_service_time() {
    let (_a, _b, proxy, addr) = two_services(UpstreamProtocol::Http1).await;
    let c = Client::http1();
    let r = c
        .get(
            addr,
            "/a",
            &[
                ("host", "example.com"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
            ],
        )
        .await;
    assert_eq!(
        r.header("x-seen-host"),
        "example.com",
        "the Host is forwarded as sent"
    );
    assert_eq!(r.header("x-seen-forwarded-proto"), "http");
    assert_eq!(
        r.header("x-seen-request-id").len(),
        36,
        "a request id is generated"
    );
    assert!(
        r.header("x-envoy-upstream-service-time")
            .parse::<u64>()
            .is_ok()
    );
    assert_eq!(r.header("server"), "envoy");
    let kept = c.get(addr, "/a", &[("x-request-id", "mine")]).await;
    assert_eq!(
        kept.header("x-seen-request-id"),
        "mine",
        "kept when present"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn http2_downstream_and_upstream() {
    let (a, _b, proxy, addr) = two_services(UpstreamProtocol::Http2).await;
    let c = Client::http2();
    for _ in 0..5 {
        let r = c.get(addr, "/a/h2", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.text(), "a GET /a/h2");
        assert_eq!(r.header("x-seen-version"), "HTTP/2.0");
        assert_eq!(r.header("x-seen-authority"), addr.to_string());
    }
    assert_eq!(a.accepted(), 1, "one multiplexed upstream connection");
    // An HTTP/1.1 client on the same port is served too.
    assert_eq!(
        Client::http1().get(addr, "/b", &[]).await.text(),
        "b GET /b"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn upstream_keep_alive_reuses_connections() {
    let (a, _b, proxy, addr) = two_services(UpstreamProtocol::Http1).await;
    let c = Client::http1();
    for _ in 0..20 {
        assert_eq!(c.get(addr, "/a", &[]).await.status, StatusCode::OK);
    }
    assert_eq!(a.requests(), 20);
    assert_eq!(
        a.accepted(),
        1,
        "sequential requests share one upstream connection"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn local_replies_carry_envoy_statuses() {
    // A port that refuses connections: bind, note the address, close.
    let (refused, _reserved) = mesh_proxy::test_util::refused_addr();
    let mut empty = Cluster::new_static("empty", []);
    empty.connect_timeout = Duration::from_secs(1);
    let routes = RouteConfiguration::new("r").with_virtual_host(
        VirtualHost::new("all", ["*"])
            .with_route(Route::prefix("/empty", "empty"))
            .with_route(Route::prefix("/refused", "refused")),
    );
    let boot = Bootstrap::default()
        .with_listener(listener(routes))
        .with_cluster(empty)
        .with_cluster(Cluster::new_static("refused", [refused]));
    let (proxy, addr) = start(boot).await;
    let c = Client::http1();
    let r = c.get(addr, "/nowhere", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = c.get(addr, "/empty", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.text(), "no healthy upstream");
    let r = c.get(addr, "/refused", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.text().starts_with("upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"),
        "{}",
        r.text()
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn route_timeout_gives_504() {
    let slow = Upstream::start("slow", Behavior::Stall).await;
    let mut route = Route::prefix("/", "slow");
    if let Action::Route(a) = &mut route.action {
        a.timeout = Some(Duration::from_secs(3));
    }
    let routes = RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(route));
    let boot = Bootstrap::default()
        .with_listener(listener(routes))
        .with_cluster(Cluster::new_static("slow", [slow.addr()]));
    let (proxy, addr) = start(boot).await;
    let started = tokio::time::Instant::now();
    let r = Client::http1().get(addr, "/", &[]).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.text(), "upstream request timeout");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert_eq!(slow.requests(), 1);
    assert_eq!(
        proxy
            .stats()
            .counter(mesh_core::stats::StatName::cluster(
                "slow",
                "upstream_rq_timeout"
            ))
            .get(),
        1
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let (_a, _b, proxy, addr) = two_services(UpstreamProtocol::Http1).await;
    let big = "x".repeat(70 * 1024);
    let req = Request::get(format!("http://{addr}/a"))
        .header("x-big", big)
        .body(body::empty())
        .unwrap();
    let r = Client::http1().send(req).await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn unfinished_headers_are_cut_at_request_headers_timeout() {
    let a = Upstream::start("a", Behavior::Identify).await;
    let mut hcm = HttpConnectionManager::with_routes(
        RouteConfiguration::new("r")
            .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "a"))),
    );
    hcm.request_headers_timeout = Some(Duration::from_secs(2));
    let (proxy, addr) = start_hcm(hcm, a.addr()).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert!(
        !String::from_utf8_lossy(&buf).contains("200"),
        "no response to half a request"
    );
    assert_eq!(a.requests(), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn websocket_upgrade_echoes_both_ways() {
    // A real WebSocket echo server upstream.
    let ws = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = ws.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = ws.accept().await {
            tokio::spawn(async move {
                let mut conn = tokio_tungstenite::accept_async(s).await.unwrap();
                while let Some(Ok(msg)) = conn.next().await {
                    if msg.is_text() || msg.is_binary() {
                        conn.send(msg).await.unwrap();
                    }
                }
            });
        }
    });
    let mut hcm = HttpConnectionManager::with_routes(
        RouteConfiguration::new("r")
            .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "ws"))),
    );
    hcm.upgrade_configs.push(UpgradeConfig::websocket());
    let boot = Bootstrap::default()
        .with_listener(Listener::http("http", "127.0.0.1:0".parse().unwrap(), hcm))
        .with_cluster(Cluster::new_static("ws", [ws_addr]));
    let (proxy, addr) = start(boot).await;

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut client, resp) = tokio_tungstenite::client_async(format!("ws://{addr}/chat"), stream)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for i in 0..3 {
        let text = format!("hello {i}");
        client.send(text.clone().into()).await.unwrap();
        let echoed = client.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    client.send(vec![0u8, 1, 2, 255].into()).await.unwrap();
    assert_eq!(
        client.next().await.unwrap().unwrap().into_data().as_ref(),
        &[0u8, 1, 2, 255]
    );
    client.close(None).await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn upgrades_not_configured_are_refused() {
    let (_a, _b, proxy, addr) = two_services(UpstreamProtocol::Http1).await;
    let r = Client::http1()
        .get(
            addr,
            "/a",
            &[("connection", "upgrade"), ("upgrade", "websocket")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    proxy.shutdown().await;
}

#[tokio::test]
async fn streams_a_large_body_both_ways() {
    let echo = Upstream::start("echo", Behavior::Echo).await;
    let routes = RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "echo")));
    let boot = Bootstrap::default()
        .with_listener(listener(routes))
        .with_cluster(Cluster::new_static("echo", [echo.addr()]));
    let (proxy, addr) = start(boot).await;
    let payload = bytes::Bytes::from(vec![7u8; 8 * 1024 * 1024]);
    let req = Request::post(format!("http://{addr}/up"))
        .body(body::full(payload.clone()))
        .unwrap();
    let r = Client::http1().send(req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), payload.len());
    assert!(r.body == payload);
    proxy.shutdown().await;
}

#[tokio::test]
async fn invalid_config_lists_every_error_with_its_path() {
    let routes = RouteConfiguration::new("r").with_virtual_host(
        VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "missing")),
    );
    let mut bad = Cluster::new_static("dup", ["127.0.0.1:1".parse().unwrap()]);
    bad.load_assignment.as_mut().unwrap().endpoints[0].lb_endpoints[0]
        .address
        .port = 0;
    let boot = Bootstrap::default()
        .with_listener(listener(routes))
        .with_cluster(bad)
        .with_cluster(Cluster::new_static("dup", []));
    let err = mesh_proxy::test_util::builder(boot).build().unwrap_err();
    assert!(err.is_config());
    let v = mesh_core::error::cause_ref::<ValidationError>(&err).expect("validation error inside");
    let paths: Vec<&str> = v.errors.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster"), "{paths:?}");
    assert!(paths.contains(&"clusters[1].name"), "{paths:?}");
    assert!(paths.contains(&"clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value"), "{paths:?}");
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_and_refuses_new_ones() {
    use http_body_util::BodyExt;
    let echo = Upstream::start("echo", Behavior::Echo).await;
    let routes = RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "echo")));
    let boot = Bootstrap::default()
        .with_listener(listener(routes))
        .with_cluster(Cluster::new_static("echo", [echo.addr()]));
    let (proxy, addr) = start(boot).await;

    // A request whose body is still being sent when shutdown begins.
    let (mut tx, rx) =
        http_body_util::channel::Channel::<bytes::Bytes, mesh_core::BoxError>::new(1);
    let (mut sender, _conn) = h1_connection(addr).await;
    let req = Request::post("/slow").header("host", "x").body(rx).unwrap();
    tx.send_data(bytes::Bytes::from_static(b"first "))
        .await
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let shutdown = tokio::spawn(proxy.shutdown());
    // New connections are refused once the listener is closed.
    let refused = async {
        loop {
            match tokio::net::TcpStream::connect(addr).await {
                Err(_) => break,
                Ok(_) => tokio::task::yield_now().await,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), refused)
        .await
        .expect("listener closes");
    assert!(
        !shutdown.is_finished(),
        "the in-flight request keeps the proxy draining"
    );

    tx.send_data(bytes::Bytes::from_static(b"and last"))
        .await
        .unwrap();
    drop(tx);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"first and last");
    shutdown.await.unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn access_log_lines_carry_envoy_flags() {
    let slow = Upstream::start("slow", Behavior::Stall).await;
    let ok = Upstream::start("ok", Behavior::Identify).await;
    let (refused, _reserved) = mesh_proxy::test_util::refused_addr();
    let mut timeout_route = Route::prefix("/slow", "slow");
    if let Action::Route(a) = &mut timeout_route.action {
        a.timeout = Some(Duration::from_secs(1));
    }
    let routes = RouteConfiguration::new("r").with_virtual_host(
        VirtualHost::new("all", ["*"])
            .with_route(timeout_route)
            .with_route(Route::prefix("/ok", "ok"))
            .with_route(Route::prefix("/empty", "empty"))
            .with_route(Route::prefix("/refused", "refused")),
    );
    let log_path = std::env::temp_dir().join(format!("mesh-proxy-e2e-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log_path);
    let mut hcm = HttpConnectionManager::with_routes(routes);
    hcm.access_log.push(AccessLog {
        sink: AccessLogSink::File(log_path.to_string_lossy().into_owned()),
        format: None,
    });
    let boot = Bootstrap::default()
        .with_listener(Listener::http("http", "127.0.0.1:0".parse().unwrap(), hcm))
        .with_cluster(Cluster::new_static("slow", [slow.addr()]))
        .with_cluster(Cluster::new_static("ok", [ok.addr()]))
        .with_cluster(Cluster::new_static("empty", []))
        .with_cluster(Cluster::new_static("refused", [refused]));
    let (proxy, addr) = start(boot).await;
    let c = Client::http1();
    for (path, status) in [
        ("/ok", 200),
        ("/nope", 404),
        ("/empty", 503),
        ("/refused", 503),
        ("/slow", 504),
    ] {
        assert_eq!(
            c.get(addr, path, &[("user-agent", "e2e")])
                .await
                .status
                .as_u16(),
            status,
            "{path}"
        );
    }
    proxy.shutdown().await;
    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 5, "{log}");
    for (line, (req, flags, host)) in lines.iter().zip([
        (
            "\"GET /ok HTTP/1.1\" 200 - 0 10 ",
            "-",
            ok.addr().to_string(),
        ),
        ("\"GET /nope HTTP/1.1\" 404 NR 0 0 ", "NR", "-".to_owned()),
        ("\"GET /empty HTTP/1.1\" 503 UH 0 19 ", "UH", "-".to_owned()),
        (
            "\"GET /refused HTTP/1.1\" 503 UF ",
            "UF",
            refused.to_string(),
        ),
        (
            "\"GET /slow HTTP/1.1\" 504 UT 0 24 ",
            "UT",
            slow.addr().to_string(),
        ),
    ]) {
        assert!(line.contains(req), "{line} lacks {req} ({flags})");
        assert!(line.contains("\"e2e\""), "user agent in {line}");
        assert!(
            line.ends_with(&format!("\"{host}\"")),
            "upstream host {host} in {line}"
        );
    }
}

#[tokio::test]
async fn max_requests_per_connection_closes_after_the_last_response() {
    let a = Upstream::start("a", Behavior::Identify).await;
    let mut hcm = HttpConnectionManager::with_routes(
        RouteConfiguration::new("r")
            .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "a"))),
    );
    hcm.max_requests_per_connection = Some(2);
    let (proxy, addr) = start_hcm(hcm, a.addr()).await;
    let (mut sender, conn) = h1_connection(addr).await;
    for _ in 0..2 {
        let req = Request::get("/")
            .header("host", "x")
            .body(body::empty())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the proxy closes the connection after two requests")
        .unwrap()
        .unwrap();
    proxy.shutdown().await;
}

/// Opens a connection, makes one request, and returns how long (virtual time) the proxy kept
/// the connection open afterwards.
async fn open_after_one_request(hcm: HttpConnectionManager, upstream: SocketAddr) -> Duration {
    let (proxy, addr) = start_hcm(hcm, upstream).await;
    let (mut sender, conn) = h1_connection(addr).await;
    let req = Request::get("/")
        .header("host", "x")
        .body(body::empty())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
    let idle_since = tokio::time::Instant::now();
    conn.await.unwrap().unwrap();
    let open = idle_since.elapsed();
    proxy.shutdown().await;
    open
}

/// A proxy with `hcm` on its listener `http` and the cluster `a` of `upstream`.
async fn start_hcm(hcm: HttpConnectionManager, upstream: SocketAddr) -> (RunningProxy, SocketAddr) {
    let boot = Bootstrap::default()
        .with_listener(Listener::http("http", "127.0.0.1:0".parse().unwrap(), hcm))
        .with_cluster(Cluster::new_static("a", [upstream]));
    start(boot).await
}

fn hcm_to_a() -> HttpConnectionManager {
    HttpConnectionManager::with_routes(
        RouteConfiguration::new("r")
            .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "a"))),
    )
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn idle_connections_close_at_idle_timeout() {
    let a = Upstream::start("a", Behavior::Identify).await;
    let mut hcm = hcm_to_a();
    hcm.idle_timeout = Duration::from_secs(30);
    let open = open_after_one_request(hcm, a.addr()).await;
    assert!(
        open >= Duration::from_secs(30) && open < Duration::from_secs(31),
        "{open:?}"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_partial_head_does_not_keep_an_idle_connection_open() {
    // A request, then the first byte of another that never completes, in one write: the
    // request header timeout (10 s by default) cuts it; without one, the idle timeout does.
    // Over hyper's server the header timeout does not see a head that came in one read with
    // the request before it (hyper holds the bytes; see the performance note): there only
    // the idle timeout is asserted.
    let over_hyper = std::env::var_os(mesh_proxy::test_util::HTTP1_ENV).is_some();
    for (headers_timeout, closes_at) in [
        (Some(Duration::from_secs(10)), Duration::from_secs(10)),
        (None, Duration::from_secs(30)),
    ] {
        if over_hyper && headers_timeout.is_some() {
            continue;
        }
        let a = Upstream::start("a", Behavior::Identify).await;
        let mut hcm = hcm_to_a();
        hcm.idle_timeout = Duration::from_secs(30);
        hcm.request_headers_timeout = headers_timeout;
        let (proxy, addr) = start_hcm(hcm, a.addr()).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\nG")
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(100), s.read_to_end(&mut buf))
            .await
            .expect("the connection closes")
            .unwrap();
        assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
        let open = started.elapsed();
        assert!(
            open >= closes_at && open < closes_at + Duration::from_secs(1),
            "{headers_timeout:?}: {open:?}"
        );
        proxy.shutdown().await;
    }
}

/// Holds tokio's paused clock still until dropped. A paused clock jumps to the next timer
/// whenever the runtime waits on the kernel, and on a loaded machine a loopback segment can
/// be late enough for that to happen mid-exchange (this test once saw its connection close at
/// 63 s instead of 50). A blocking task in flight keeps tokio from auto-advancing; `advance`
/// still moves the clock.
struct ClockHold(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

fn hold_clock() -> ClockHold {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = rx.recv();
    });
    ClockHold(tx)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_idle_timeout_counts_from_the_last_request() {
    // Requests at 0 s and 20 s on one connection, idle timeout 30 s: the connection is idle
    // from the second request's end, so it closes 30 s after it (at 50 s), not at 30 s.
    let a = Upstream::start("a", Behavior::Identify).await;
    let mut hcm = hcm_to_a();
    hcm.idle_timeout = Duration::from_secs(30);
    let (proxy, addr) = start_hcm(hcm, a.addr()).await;
    let (mut sender, conn) = h1_connection(addr).await;
    let mut conn = std::pin::pin!(conn);
    for i in 0..2 {
        let hold = hold_clock();
        let req = Request::get("/")
            .header("host", "x")
            .body(body::empty())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap();
        if i == 1 {
            // Idle from here: the clock moves only as the test says, so no late segment
            // shifts it.
            tokio::time::advance(Duration::from_millis(29_900)).await;
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert!(!conn.is_finished(), "closed before the idle timeout");
            tokio::time::advance(Duration::from_millis(200)).await;
            conn.await.unwrap().unwrap();
            drop(hold);
            break;
        }
        drop(hold);
        // The connection stays open for the next 20 s (longer than nothing, shorter than
        // the idle timeout).
        tokio::select! {
            r = conn.as_mut() => panic!("closed early: {r:?}"),
            () = tokio::time::sleep(Duration::from_secs(20)) => {}
        }
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn connections_close_at_max_connection_duration() {
    let a = Upstream::start("a", Behavior::Identify).await;
    let mut hcm = hcm_to_a();
    hcm.max_connection_duration = Some(Duration::from_secs(5));
    let open = open_after_one_request(hcm, a.addr()).await;
    assert!(
        open < Duration::from_secs(5) + Duration::from_millis(100),
        "{open:?}"
    );
    assert!(open > Duration::from_secs(4), "{open:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_stalled_request_body_is_cut_at_stream_idle_timeout() {
    let echo = Upstream::start("echo", Behavior::Echo).await;
    let mut hcm =
        HttpConnectionManager::with_routes(RouteConfiguration::new("r").with_virtual_host(
            VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "echo")),
        ));
    hcm.stream_idle_timeout = Duration::from_secs(7);
    let boot = Bootstrap::default()
        .with_listener(Listener::http("http", "127.0.0.1:0".parse().unwrap(), hcm))
        .with_cluster(Cluster::new_static("echo", [echo.addr()]));
    let (proxy, addr) = start(boot).await;
    let (mut tx, rx) =
        http_body_util::channel::Channel::<bytes::Bytes, mesh_core::BoxError>::new(1);
    let (mut sender, _conn) = h1_connection(addr).await;
    let req = Request::post("/").header("host", "x").body(rx).unwrap();
    tx.send_data(bytes::Bytes::from_static(b"partial"))
        .await
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let started = tokio::time::Instant::now();
    // The client never sends the rest (tx stays alive): the stream must be cut.
    let result = http_body_util::BodyExt::collect(resp.into_body()).await;
    let waited = started.elapsed();
    assert!(result.is_err(), "the response is reset, not completed");
    assert!(
        waited >= Duration::from_secs(6) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    drop(tx);
    proxy.shutdown().await;
}

#[tokio::test]
async fn ring_hash_clusters_keep_a_key_on_one_host() {
    let ups: Vec<Upstream> = futures_util::future::join_all(
        ["u0", "u1", "u2", "u3"].map(|n| Upstream::start(n, Behavior::Identify)),
    )
    .await;
    let mut cluster = Cluster::new_static("ring", ups.iter().map(Upstream::addr));
    cluster.lb_policy = LbPolicy::RingHash;
    let mut route = Route::prefix("/", "ring");
    if let Action::Route(a) = &mut route.action {
        a.hash_policy.push(HashPolicy {
            policy: HashOn::Header {
                header_name: "x-user".into(),
            },
            terminal: false,
        });
    }
    let routes = RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(route));
    let boot = Bootstrap::default()
        .with_listener(listener(routes))
        .with_cluster(cluster);
    let (proxy, addr) = start(boot).await;
    let c = Client::http1();
    let mut hosts_seen = std::collections::HashSet::new();
    for user in 0..40 {
        let key = format!("user-{user}");
        let first = c
            .get(addr, "/", &[("x-user", &key)])
            .await
            .header("x-upstream")
            .to_owned();
        for _ in 0..3 {
            let again = c.get(addr, "/", &[("x-user", &key)]).await;
            assert_eq!(again.header("x-upstream"), first, "{key} moved");
        }
        hosts_seen.insert(first);
    }
    assert_eq!(
        hosts_seen.len(),
        4,
        "40 keys spread over all 4 hosts: {hosts_seen:?}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn header_values_render_envoy_operators() {
    let a = Upstream::start("a", Behavior::Identify).await;
    let mut route = Route::prefix("/", "a");
    route
        .headers
        .request_headers_to_add
        .push(HeaderValueOption::set(
            "x-client-ip",
            "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
        ));
    route
        .headers
        .response_headers_to_add
        .push(HeaderValueOption::set("x-proto", "%PROTOCOL%"));
    let routes = RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(route));
    let boot = Bootstrap::default()
        .with_listener(listener(routes))
        .with_cluster(Cluster::new_static("a", [a.addr()]));
    let (proxy, addr) = start(boot).await;
    let r = Client::http1().get(addr, "/", &[]).await;
    assert_eq!(r.header("x-seen-client-ip"), "127.0.0.1");
    assert_eq!(r.header("x-proto"), "HTTP/1.1");
    proxy.shutdown().await;
}

#[tokio::test]
async fn trace_context_is_started_or_continued() {
    let (_a, _b, proxy, addr) = two_services_with(UpstreamProtocol::Http1, |h| {
        h.tracing = Some(Tracing::default());
    })
    .await;
    let c = Client::http1();
    // No trace: one starts, its id is the request id.
    let r = c
        .get(
            addr,
            "/a",
            &[("x-request-id", "0af76519-16cd-43dd-8448-eb211c80319c")],
        )
        .await;
    assert!(
        r.header("x-seen-traceparent")
            .starts_with("00-0af7651916cd43dd8448eb211c80319c-")
    );
    assert_eq!(
        r.header("x-seen-b3-traceid"),
        "0af7651916cd43dd8448eb211c80319c"
    );
    // A W3C trace continues: same trace id, the caller's span becomes the parent.
    let r = c
        .get(
            addr,
            "/a",
            &[
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
                ("tracestate", "congo=t61rcWkgMzE"),
            ],
        )
        .await;
    let tp = r.header("x-seen-traceparent");
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && !tp.contains("00f067aa0ba902b7"),
        "{tp}"
    );
    assert_eq!(r.header("x-seen-b3-parentspanid"), "00f067aa0ba902b7");
    assert_eq!(r.header("x-seen-tracestate"), "congo=t61rcWkgMzE");
    proxy.shutdown().await;
}

#[tokio::test]
async fn grpc_requests_get_grpc_local_replies() {
    let (_a, _b, proxy, addr) = two_services(UpstreamProtocol::Http2).await;
    let r = Client::http2()
        .get(addr, "/nowhere", &[("content-type", "application/grpc")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "trailers-only gRPC reply");
    assert_eq!(r.header("grpc-status"), "12", "404 maps to UNIMPLEMENTED");
    assert_eq!(r.header("content-type"), "application/grpc");
    let plain = Client::http2().get(addr, "/nowhere", &[]).await;
    assert_eq!(plain.status, StatusCode::NOT_FOUND);
    proxy.shutdown().await;
}

/// Every test above again, over hyper's HTTP/1.1 server and client in place of the built-in
/// ones.
#[test]
fn the_suite_holds_over_hyper() {
    mesh_proxy::test_util::rerun_over_hyper("the_suite_holds_over_hyper");
}
