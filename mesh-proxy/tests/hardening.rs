//! What an attacker or a careless client can do to the proxy, and what it must not achieve
//! (issue #11): each test is a finding that was reproduced, and fails without its fix.

use std::net::SocketAddr;

use http::{Request, StatusCode};
use mesh_core::config::*;
use mesh_proxy::RunningProxy;
use mesh_proxy::body;
use mesh_proxy::test_util::{Behavior, Client, Upstream};

fn listener(hcm: HttpConnectionManager) -> Listener {
    Listener::http("http", "127.0.0.1:0".parse().unwrap(), hcm)
}

fn to(cluster: &str) -> RouteConfiguration {
    RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", cluster)))
}

async fn start(b: Bootstrap) -> (RunningProxy, SocketAddr) {
    let running = mesh_proxy::test_util::start(b).await;
    let addr = running.listener_addr("http").unwrap();
    (running, addr)
}

/// A proxy with `hcm`'s settings in front of one `Identify` upstream.
async fn identify(mut hcm: HttpConnectionManager) -> (Upstream, RunningProxy, SocketAddr) {
    let up = Upstream::start("up", Behavior::Identify).await;
    hcm.route = RouteSource::RouteConfig(to("up"));
    let boot = Bootstrap::default()
        .with_listener(listener(hcm))
        .with_cluster(Cluster::new_static("up", [up.addr()]));
    let (p, addr) = start(boot).await;
    (up, p, addr)
}

/// Regression: naming the proxy's own headers in `Connection` removed them after the
/// connection manager had added them (the router stripped hop-by-hop headers last).
#[tokio::test]
async fn connection_header_cannot_strip_the_proxys_own_headers() {
    let hcm = HttpConnectionManager {
        use_remote_address: true,
        ..HttpConnectionManager::default()
    };
    let (_up, _proxy, addr) = identify(hcm).await;
    let req = Request::get(format!("http://{addr}/"))
        .header(
            "connection",
            "x-forwarded-for, x-request-id, x-envoy-external-address, x-forwarded-proto, host",
        )
        .header("x-forwarded-for", "203.0.113.9")
        .body(body::empty())
        .unwrap();
    let r = Client::http1().send(req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-seen-forwarded-for"), "127.0.0.1");
    assert_eq!(r.header("x-seen-external-address"), "127.0.0.1");
    assert_eq!(r.header("x-seen-forwarded-proto"), "http");
    assert!(!r.header("x-seen-request-id").is_empty());
    assert_eq!(r.header("x-seen-host"), addr.to_string());
}

/// Writes `request` on a fresh connection and reads until the proxy closes it (every
/// request here says `Connection: close` or is refused) or 10 s pass.
async fn raw(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out));
    let _ = read.await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> &str {
    response.split(' ').nth(1).unwrap_or("")
}

/// Regression: userinfo in Host, spaces, a missing Host (forwarded as an empty `host:`), two
/// Host headers and userinfo in an absolute-form target all reached the upstream.
#[tokio::test]
async fn invalid_host_is_refused_with_400() {
    let (up, _proxy, addr) = identify(HttpConnectionManager::default()).await;
    for (what, req) in [
        (
            "userinfo in Host",
            "GET / HTTP/1.1\r\nHost: good.example@evil.example\r\nConnection: close\r\n\r\n",
        ),
        (
            "a space in Host",
            "GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
        ),
        ("no Host", "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
        (
            "two Host headers",
            "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        ),
        (
            "userinfo in the target",
            "GET http://user:pw@evil.example/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        ),
    ] {
        let resp = raw(addr, req).await;
        assert_eq!(status_of(&resp), "400", "{what}: {resp}");
    }
    assert_eq!(up.requests(), 0, "nothing reached the upstream");
    // A valid request still goes through.
    let ok = raw(
        addr,
        "GET / HTTP/1.1\r\nHost: good.example:80\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&ok), "200", "{ok}");
}

/// Polls `check` every 10 ms until it holds, failing after 10 s with `what`.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Regression: a client that closed mid-body or sent an invalid chunk size was logged
/// `503 UC` and fed to outlier detection as an upstream 5xx; a dozen such requests ejected
/// both healthy hosts, and with `healthy_panic_threshold: 0` every request then got 503.
#[tokio::test]
async fn client_body_faults_never_eject_healthy_hosts() {
    use mesh_core::stats::StatName;
    use tokio::io::AsyncWriteExt;
    let a = Upstream::start("a", Behavior::Collect).await;
    let b = Upstream::start("b", Behavior::Collect).await;
    let mut c = Cluster::new_static("up", [a.addr(), b.addr()]);
    c.outlier_detection = Some(OutlierDetection {
        consecutive_5xx: 2,
        max_ejection_percent: 100,
        ..OutlierDetection::default()
    });
    c.healthy_panic_threshold = 0.0;
    let hcm = HttpConnectionManager::with_routes(to("up"));
    let boot = Bootstrap::default()
        .with_listener(listener(hcm))
        .with_cluster(c);
    let (proxy, addr) = start(boot).await;

    let stat = |name: &str| {
        proxy
            .stats()
            .counter(StatName::http("ingress_http", name))
            .get()
    };
    for i in 0..12 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            // Closes after 10 of 100 promised bytes.
            s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
                .await
                .unwrap();
        } else {
            // A chunk, then a chunk size that is not hexadecimal.
            s.write_all(
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
            )
            .await
            .unwrap();
        }
        // The upstream has the request head before the client gives up.
        let seen = a.requests() + b.requests();
        until("the upstream to see the request", || {
            a.requests() + b.requests() > seen
        })
        .await;
        drop(s);
    }
    until("all twelve requests to finish", || {
        stat("downstream_rq_4xx") + stat("downstream_rq_5xx") == 12
    })
    .await;
    assert_eq!(stat("downstream_rq_5xx"), 0, "no client fault is a 5xx");
    assert_eq!(
        proxy
            .stats()
            .gauge(StatName::cluster(
                "up",
                "outlier_detection.ejections_active"
            ))
            .get(),
        0
    );
    for _ in 0..4 {
        let r = Client::http1().get(addr, "/", &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
}

/// Regression: an invalid chunked body was answered 503 after part of it reached the
/// upstream; it is the client's error.
#[tokio::test]
async fn invalid_chunked_body_is_a_400() {
    let up = Upstream::start("up", Behavior::Collect).await;
    let hcm = HttpConnectionManager::with_routes(to("up"));
    let boot = Bootstrap::default()
        .with_listener(listener(hcm))
        .with_cluster(Cluster::new_static("up", [up.addr()]));
    let (_proxy, addr) = start(boot).await;
    let resp = raw(
        addr,
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
    )
    .await;
    assert_eq!(status_of(&resp), "400", "{resp}");
    // The upstream connection that carried part of the broken body is not reused.
    let ok = raw(
        addr,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    )
    .await;
    assert_eq!(status_of(&ok), "200", "{ok}");
    assert_eq!(
        up.accepted(),
        2,
        "a fresh upstream connection for the next request"
    );
}

/// Regression: the admin listener took cross-origin "simple" POSTs (`Origin:
/// http://evil.example`, `text/plain`), so a web page could fail health checks, drain or
/// quit the proxy; and a DNS-rebound name reached it too.
#[tokio::test]
async fn admin_refuses_mutations_a_web_page_could_send() {
    let up = Upstream::start("up", Behavior::Identify).await;
    let boot = Bootstrap::default()
        .with_listener(listener(HttpConnectionManager::with_routes(to("up"))))
        .with_cluster(Cluster::new_static("up", [up.addr()]));
    let proxy = mesh_proxy::test_util::builder(boot)
        .admin("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let admin = proxy.admin_addr().unwrap();
    let post = |host: String, origin: Option<&str>| {
        let mut req = format!(
            "POST /healthcheck/fail HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n"
        );
        if let Some(o) = origin {
            req.push_str(&format!("Origin: {o}\r\n"));
        }
        req.push_str("\r\n");
        async move { raw(admin, &req).await }
    };
    let ready = || async { Client::http1().get(admin, "/ready", &[]).await.status };

    let r = post(admin.to_string(), Some("http://evil.example")).await;
    assert_eq!(status_of(&r), "403", "{r}");
    let r = post(format!("evil.example:{}", admin.port()), None).await;
    assert_eq!(status_of(&r), "403", "{r}");
    let r = post(admin.to_string(), Some("null")).await;
    assert_eq!(status_of(&r), "403", "{r}");
    assert_eq!(ready().await, StatusCode::OK, "nothing was changed");

    // An operator's curl (no Origin), and the admin page's own origin, still work.
    let r = post(format!("localhost:{}", admin.port()), None).await;
    assert_eq!(status_of(&r), "200", "{r}");
    assert_eq!(ready().await, StatusCode::SERVICE_UNAVAILABLE);
    let r = post(admin.to_string(), Some(&format!("http://{admin}"))).await;
    assert_eq!(status_of(&r), "200", "{r}");
}

/// Regression: with no default header-read timeout, a client sending one header byte every
/// 5 s held its connection for as long as it liked. The default is now 10 s.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_slow_header_sender_is_cut_off_after_ten_seconds() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (up, _proxy, addr) = identify(HttpConnectionManager::default()).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let began = tokio::time::Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let closed_after = loop {
        tokio::select! {
            n = s.read(&mut buf) => {
                // Closed (or a 408 and then closed): either way the connection is over.
                if matches!(n, Ok(0) | Err(_)) {
                    break began.elapsed();
                }
            }
            () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {
                if s.write_all(b"a").await.is_err() {
                    break began.elapsed();
                }
            }
        }
        assert!(
            began.elapsed() < std::time::Duration::from_secs(65),
            "still open"
        );
    };
    assert!(
        closed_after >= std::time::Duration::from_secs(10)
            && closed_after < std::time::Duration::from_secs(11),
        "closed after {closed_after:?}"
    );
    assert_eq!(up.requests(), 0);
}

/// `request_timeout`: a request whose body is not complete in time gets 408, and its host is
/// not blamed.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn request_timeout_answers_408() {
    let up = Upstream::start("up", Behavior::Collect).await;
    let mut hcm = HttpConnectionManager::with_routes(to("up"));
    hcm.request_timeout = Some(std::time::Duration::from_secs(2));
    let boot = Bootstrap::default()
        .with_listener(listener(hcm))
        .with_cluster(Cluster::new_static("up", [up.addr()]));
    let (_proxy, addr) = start(boot).await;
    let began = tokio::time::Instant::now();
    let resp = raw(
        addr,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234",
    )
    .await;
    assert_eq!(status_of(&resp), "408", "{resp}");
    assert!(resp.ends_with("request timeout"), "{resp}");
    let took = began.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(2) && took < std::time::Duration::from_secs(3),
        "{took:?}"
    );
}

/// The overload manager's global connection limit: a connection over it is closed at once
/// and counted; one slot freed lets the next in.
#[tokio::test]
async fn downstream_connection_limit_closes_the_excess() {
    use mesh_core::stats::StatName;
    use tokio::io::AsyncReadExt;
    let up = Upstream::start("up", Behavior::Identify).await;
    let mut boot = Bootstrap::default()
        .with_listener(listener(HttpConnectionManager::with_routes(to("up"))))
        .with_cluster(Cluster::new_static("up", [up.addr()]));
    boot.overload_manager.max_active_downstream_connections = Some(3);
    let (proxy, addr) = start(boot).await;

    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let active = || {
        proxy
            .stats()
            .gauge(StatName::http("ingress_http", "downstream_cx_active"))
            .get()
    };
    until("three connections served", || active() == 3).await;
    let mut fourth = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), fourth.read(&mut buf))
        .await
        .expect("the fourth connection is closed, not held");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    let overflow = proxy
        .stats()
        .counter(StatName::listener(
            &addr.to_string(),
            "downstream_global_cx_overflow",
        ))
        .get();
    assert_eq!(overflow, 1);

    drop(held.pop());
    until("a slot to free", || active() == 2).await;
    let mut served = false;
    for _ in 0..100 {
        let r = raw(
            addr,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        if status_of(&r) == "200" {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(served, "a connection is served once a slot is free");
}

/// A proxy that refuses `/admin` (403) and sends everything else to an `Identify` upstream.
async fn guarded(hcm: HttpConnectionManager) -> (Upstream, RunningProxy, SocketAddr) {
    let up = Upstream::start("up", Behavior::Identify).await;
    let routes = RouteConfiguration::new("r").with_virtual_host(
        VirtualHost::new("all", ["*"])
            .with_route(Route {
                action: Action::DirectResponse(DirectResponseAction {
                    status: 403,
                    body: None,
                }),
                ..Route::prefix("/admin", "")
            })
            .with_route(Route::prefix("/", "up")),
    );
    let hcm = HttpConnectionManager {
        route: RouteSource::RouteConfig(routes),
        ..hcm
    };
    let boot = Bootstrap::default()
        .with_listener(listener(hcm))
        .with_cluster(Cluster::new_static("up", [up.addr()]));
    let (p, addr) = start(boot).await;
    (up, p, addr)
}

/// Regression: `normalize_path`, `merge_slashes` and `path_with_escaped_slashes_action` were
/// accepted and ignored, so `/public/../admin`, `//admin` and `/%61dmin` reached the
/// catch-all route while `prefix: /admin` answered 403.
#[tokio::test]
async fn normalized_paths_cannot_slip_past_a_route() {
    let hcm = HttpConnectionManager {
        normalize_path: true,
        merge_slashes: true,
        path_with_escaped_slashes_action: EscapedSlashesAction::RejectRequest,
        ..HttpConnectionManager::default()
    };
    let (up, _proxy, addr) = guarded(hcm).await;
    let get = |path: &'static str| async move {
        raw(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await
    };
    for path in [
        "/admin",
        "/public/../admin",
        "//admin",
        "/%61dmin",
        "/x/%2e%2e/admin/",
    ] {
        let r = get(path).await;
        assert_eq!(status_of(&r), "403", "{path}: {r}");
    }
    // Escaped slashes are refused; `%00` too.
    for path in ["/a%2Fadmin", "/a%00"] {
        let r = get(path).await;
        assert_eq!(status_of(&r), "400", "{path}: {r}");
    }
    assert_eq!(up.requests(), 0);
    // The upstream gets the normalised path, query untouched.
    let r = get("/a/./b//c/../d?x=/../y").await;
    assert_eq!(status_of(&r), "200", "{r}");
    assert!(r.ends_with("up GET /a/b/d?x=/../y"), "{r}");
}

/// Without normalisation (Envoy's default) the path is forwarded as it came, and a
/// redirect action sends the client to the normalised path.
#[tokio::test]
async fn escaped_slashes_redirect() {
    let hcm = HttpConnectionManager {
        normalize_path: true,
        path_with_escaped_slashes_action: EscapedSlashesAction::UnescapeAndRedirect,
        ..HttpConnectionManager::default()
    };
    let (up, _proxy, addr) = guarded(hcm).await;
    let r = raw(
        addr,
        "GET /a%2F..%2Fadmin?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&r), "307", "{r}");
    assert!(
        r.to_ascii_lowercase().contains("location: /admin?q=1\r\n"),
        "{r}"
    );
    assert_eq!(up.requests(), 0);
}

/// `headers_with_underscores_action`: dropped, or refused.
#[tokio::test]
async fn headers_with_underscores() {
    let drop = HttpConnectionManager {
        headers_with_underscores_action: UnderscoresAction::DropHeader,
        ..HttpConnectionManager::default()
    };
    let (_up, _proxy, addr) = identify(drop).await;
    let with_underscore =
        "GET / HTTP/1.1\r\nHost: x\r\nx_underscore: 1\r\nConnection: close\r\n\r\n";
    let r = raw(addr, with_underscore).await;
    assert_eq!(status_of(&r), "200", "{r}");
    assert!(!r.to_ascii_lowercase().contains("x-seen-underscore"), "{r}");
    let (_up, _proxy, allow) = identify(HttpConnectionManager::default()).await;
    let r = raw(allow, with_underscore).await;
    assert!(
        r.to_ascii_lowercase().contains("x-seen-underscore: 1"),
        "{r}"
    );
    let reject = HttpConnectionManager {
        headers_with_underscores_action: UnderscoresAction::RejectRequest,
        ..HttpConnectionManager::default()
    };
    let (up, _proxy, addr) = identify(reject).await;
    let r = raw(addr, "GET / HTTP/1.1\r\nHost: x\r\nx_y: 1\r\n\r\n").await;
    assert_eq!(status_of(&r), "400", "{r}");
    assert_eq!(up.requests(), 0);
}

/// Regression: HTTP/1.0 was served; Envoy answers 426 unless `accept_http_10` is set, and
/// then gives a Host-less request `default_host_for_http_10`.
#[tokio::test]
async fn http_10_needs_accept_http_10() {
    let (up, _proxy, addr) = identify(HttpConnectionManager::default()).await;
    let r = raw(addr, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert_eq!(status_of(&r), "426", "{r}");
    assert_eq!(up.requests(), 0);

    let accept = HttpConnectionManager {
        accept_http_10: true,
        default_host_for_http_10: Some("legacy.example".into()),
        ..HttpConnectionManager::default()
    };
    let (_up, _proxy, addr) = identify(accept).await;
    let r = raw(addr, "GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(status_of(&r), "200", "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("x-seen-host: legacy.example"),
        "{r}"
    );
}

/// Regression: `max_request_headers_kb: 60` admitted about 64 KiB, and HTTP/2 forwarded 500
/// headers where HTTP/1 stopped at 100. Both limits are exact now, for both protocols.
#[tokio::test]
async fn header_limits_are_exact() {
    let hcm = HttpConnectionManager {
        max_request_headers_kb: 1,
        max_headers_count: 10,
        ..HttpConnectionManager::default()
    };
    let (up, _proxy, addr) = identify(hcm).await;
    // Name plus value bytes, with the URL: "/" (1) + "host" "x" (5) + "x-pad" (5) + value.
    let with_pad = |n: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nx-pad: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(n)
        )
    };
    // "connection" "close" is 15 more: 1 + 5 + 5 + 15 = 26 bytes besides the value.
    let r = raw(addr, &with_pad(1024 - 26)).await;
    assert_eq!(status_of(&r), "200", "{r}");
    let r = raw(addr, &with_pad(1024 - 25)).await;
    assert_eq!(status_of(&r), "431", "{r}");

    // Over HTTP/2 the four pseudo-headers count, as in Envoy: 4 + 7 is one too many.
    let mut req = Request::get(format!("http://{addr}/"));
    for i in 0..7 {
        req = req.header(format!("x-h{i}"), "1");
    }
    let r = Client::http2().send(req.body(body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let seen = up.requests();
    let mut req = Request::get(format!("http://{addr}/"));
    for i in 0..6 {
        req = req.header(format!("x-h{i}"), "1");
    }
    let r = Client::http2().send(req.body(body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(up.requests(), seen + 1);
}

/// Regression: trace headers were invented for every request; Envoy touches trace context
/// only when the connection manager has a `tracing` config.
#[tokio::test]
async fn trace_headers_only_with_tracing() {
    let (_up, _proxy, addr) = identify(HttpConnectionManager::default()).await;
    let r = Client::http1().get(addr, "/", &[]).await;
    assert_eq!(r.header("x-seen-traceparent"), "");
    assert_eq!(r.header("x-seen-b3-traceid"), "");
    // Incoming ones pass through untouched.
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = Client::http1().get(addr, "/", &[("traceparent", tp)]).await;
    assert_eq!(r.header("x-seen-traceparent"), tp);

    let traced = HttpConnectionManager {
        tracing: Some(Tracing::default()),
        ..HttpConnectionManager::default()
    };
    let (_up, _proxy, addr) = identify(traced).await;
    let r = Client::http1().get(addr, "/", &[("traceparent", tp)]).await;
    let seen = r.header("x-seen-traceparent");
    assert!(
        seen.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "{seen}"
    );
    assert_ne!(seen, tp, "the proxy is a child span");
    assert_eq!(
        r.header("x-seen-b3-traceid"),
        "0af7651916cd43dd8448eb211c80319c"
    );
}

/// Every test above again, over hyper's HTTP/1.1 server and client in place of the built-in
/// ones.
#[test]
fn the_suite_holds_over_hyper() {
    mesh_proxy::test_util::rerun_over_hyper("the_suite_holds_over_hyper");
}
