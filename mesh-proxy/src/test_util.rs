//! Test helpers: upstream servers on 127.0.0.1:0 that identify themselves, count
//! connections, echo, stall or upgrade; and a small HTTP client. Enabled by the `test-util`
//! feature, for this crate's tests and other crates' tests and benches.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::body::{self, ProxyBody};

/// How a test upstream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// 200 with body `"<name> <method> <path>"`, headers `x-upstream: <name>` and the request's
    /// `x-request-id`, `x-forwarded-for` and `host` echoed back as `x-seen-*`.
    Identify,
    /// 200 streaming the request body back.
    Echo,
    /// Reads the whole request body first, then answers 200 with its length (as most
    /// servers do for a form or an upload); 400 when the body fails.
    Collect,
    /// Never answers (for timeout tests).
    Stall,
    /// Answers like `Identify` once the test opens the gate ([`Upstream::open_gate`]); until
    /// then requests are held open.
    Gated,
    /// Answers with this status and an empty body.
    Status(u16),
}

/// A running test upstream.
#[derive(Debug)]
pub struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    requests: Arc<tokio::sync::watch::Sender<usize>>,
    last_host: Arc<std::sync::Mutex<Option<String>>>,
    health: Arc<std::sync::atomic::AtomicBool>,
    gate: Arc<tokio::sync::watch::Sender<bool>>,
    _stop: oneshot::Sender<()>,
}

impl Upstream {
    /// Starts an upstream on 127.0.0.1:0 that serves HTTP/1.1 and HTTP/2 (prior knowledge).
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(name: &str, behavior: Behavior) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(tokio::sync::watch::channel(0usize).0);
        let (stop, mut stopped) = oneshot::channel::<()>();
        let name: Arc<str> = name.into();
        let (acc, reqs) = (Arc::clone(&accepted), Arc::clone(&requests));
        let last_host: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let last = Arc::clone(&last_host);
        let health = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let healthy = Arc::clone(&health);
        let gate = Arc::new(tokio::sync::watch::channel(false).0);
        let gate_rx = gate.subscribe();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
                    _ = &mut stopped => return,
                };
                acc.fetch_add(1, Ordering::SeqCst);
                let name = Arc::clone(&name);
                let reqs = Arc::clone(&reqs);
                let gate_rx = gate_rx.clone();
                let last = Arc::clone(&last);
                let healthy = Arc::clone(&healthy);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let probe = (req.uri().path() == "/healthz")
                            .then(|| healthy.load(Ordering::SeqCst));
                        let host = req
                            .headers()
                            .get("host")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                            .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
                        if probe.is_none() {
                            *last.lock().unwrap_or_else(|p| p.into_inner()) = host;
                            reqs.send_modify(|n| *n += 1);
                        }
                        let mut gate = gate_rx.clone();
                        let name = Arc::clone(&name);
                        async move {
                            if let Some(ok) = probe {
                                let mut r = Response::new(body::empty());
                                if !ok {
                                    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                                }
                                return Ok(r);
                            }
                            if behavior == Behavior::Gated {
                                let _ = gate.wait_for(|open| *open).await;
                            }
                            handle(name, behavior, req).await
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            accepted,
            requests,
            last_host,
            health,
            gate,
            _stop: stop,
        }
    }

    /// What `GET /healthz` answers from now on: 200 when true, 503 when false (default 200).
    /// Health probes are not counted in [`Upstream::requests`].
    pub fn set_healthy(&self, healthy: bool) {
        self.health.store(healthy, Ordering::SeqCst);
    }

    /// The `Host` (or `:authority`) of the last request received.
    pub fn last_host(&self) -> Option<String> {
        self.last_host
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Lets held requests of a [`Behavior::Gated`] upstream (and all later ones) through.
    pub fn open_gate(&self) {
        let _ = self.gate.send(true);
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        *self.requests.borrow()
    }

    /// Waits until at least `n` requests have been received (a readiness signal for tests,
    /// instead of sleeping).
    pub async fn wait_requests(&self, n: usize) {
        let _ = self.requests.subscribe().wait_for(|seen| *seen >= n).await;
    }
}

async fn handle(
    name: Arc<str>,
    behavior: Behavior,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    match behavior {
        Behavior::Status(code) => {
            let mut resp = Response::new(body::empty());
            *resp.status_mut() =
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            resp.headers_mut()
                .insert("x-upstream", name.parse().expect("names are header-safe"));
            Ok(resp)
        }
        Behavior::Identify | Behavior::Gated => {
            let mut resp = Response::new(body::full(format!(
                "{name} {} {}",
                req.method(),
                req.uri().path_and_query().map_or("/", |p| p.as_str())
            )));
            let h = resp.headers_mut();
            h.insert("x-upstream", name.parse().expect("names are header-safe"));
            h.insert(
                "x-seen-version",
                format!("{:?}", req.version())
                    .parse()
                    .expect("version is header-safe"),
            );
            for (from, to) in [
                ("x-request-id", "x-seen-request-id"),
                ("x-forwarded-for", "x-seen-forwarded-for"),
                ("x-forwarded-proto", "x-seen-forwarded-proto"),
                ("x-envoy-external-address", "x-seen-external-address"),
                ("x_underscore", "x-seen-underscore"),
                ("host", "x-seen-host"),
                ("x-envoy-original-path", "x-seen-original-path"),
                ("x-client-ip", "x-seen-client-ip"),
                ("traceparent", "x-seen-traceparent"),
                ("x-envoy-attempt-count", "x-seen-attempt-count"),
                ("x-envoy-is-timeout-retry", "x-seen-timeout-retry"),
                ("tracestate", "x-seen-tracestate"),
                ("x-b3-traceid", "x-seen-b3-traceid"),
                ("x-b3-parentspanid", "x-seen-b3-parentspanid"),
            ] {
                if let Some(v) = req.headers().get(from) {
                    h.insert(to, v.clone());
                }
            }
            if let Some(a) = req.uri().authority() {
                h.insert(
                    "x-seen-authority",
                    a.as_str().parse().expect("authority is header-safe"),
                );
            }
            Ok(resp)
        }
        Behavior::Echo => Ok(Response::new(body::boxed(req.into_body()))),
        Behavior::Collect => {
            let mut resp = Response::new(body::empty());
            match req.into_body().collect().await {
                Ok(b) => *resp.body_mut() = body::full(b.to_bytes().len().to_string()),
                Err(_) => *resp.status_mut() = StatusCode::BAD_REQUEST,
            }
            Ok(resp)
        }
        Behavior::Stall => {
            std::future::pending::<()>().await;
            unreachable!("pending never completes")
        }
    }
}

/// A response read to the end.
#[derive(Debug)]
pub struct Collected {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Collected {
    /// The body as UTF-8 (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as a string, or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A keep-alive HTTP client for tests (HTTP/1.1, or HTTP/2 with prior knowledge).
#[derive(Debug, Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        ProxyBody,
    >,
}

impl Client {
    /// An HTTP/1.1 client.
    pub fn http1() -> Self {
        Self {
            inner: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// An HTTP/2 client (prior knowledge, h2c).
    pub fn http2() -> Self {
        Self {
            inner: hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
        }
    }

    /// Sends a request and reads the whole response.
    ///
    /// # Panics
    /// If the request fails at the transport level (tests want to see that).
    pub async fn send(&self, req: Request<ProxyBody>) -> Collected {
        let resp = self
            .inner
            .request(req)
            .await
            .expect("request to the proxy failed");
        let (head, body) = resp.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        Collected {
            status: head.status,
            headers: head.headers,
            body,
        }
    }

    /// GET `http://{addr}{path}` with extra headers.
    pub async fn get(&self, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Collected {
        let mut b = Request::get(format!("http://{addr}{path}"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(body::empty()).expect("valid request"))
            .await
    }
}

/// Starts a proxy whose one listener (`http`, on 127.0.0.1:0) routes every request to
/// `cluster`, and returns it with the listener's address.
///
/// # Panics
/// If the config does not build or the listener cannot bind.
pub async fn start_for_cluster(
    cluster: mesh_core::config::Cluster,
) -> (crate::RunningProxy, SocketAddr) {
    use mesh_core::config::{
        Bootstrap, HttpConnectionManager, Listener, Route, RouteConfiguration, VirtualHost,
    };
    let routes = RouteConfiguration::new("r").with_virtual_host(
        VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", cluster.name.clone())),
    );
    let boot = Bootstrap::default()
        .with_listener(Listener::http(
            "http",
            "127.0.0.1:0".parse().expect("a valid address"),
            HttpConnectionManager::with_routes(routes),
        ))
        .with_cluster(cluster);
    let p = start(boot).await;
    let addr = p.listener_addr("http").expect("the listener is named http");
    (p, addr)
}

/// The environment variable that makes [`builder`] use hyper's HTTP/1.1 server and client
/// in place of the built-in ones.
pub const HTTP1_ENV: &str = "MESH_TEST_HTTP1";

/// [`crate::Proxy::builder`] with the HTTP/1.1 server and upstream client the test run asks
/// for: the built-in ones, or hyper's when [`HTTP1_ENV`] is `hyper` (see
/// [`rerun_over_hyper`]).
pub fn builder(bootstrap: mesh_core::config::Bootstrap) -> crate::ProxyBuilder {
    let b = crate::Proxy::builder(bootstrap);
    match std::env::var(HTTP1_ENV).as_deref() {
        Ok("hyper") => b
            .http1_client(crate::Http1Client::Hyper)
            .http1_server(crate::Http1Server::Hyper),
        _ => b,
    }
}

/// Runs the calling test binary again with hyper's HTTP/1.1 server and upstream client,
/// every test but `this` (the test that calls it), so a suite holds over the built-in fast
/// paths and over hyper. Does nothing in the second run.
///
/// # Panics
/// When a test fails in the second run (with its output), or the binary cannot run.
pub fn rerun_over_hyper(this: &str) {
    if std::env::var_os(HTTP1_ENV).is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(exe)
        .env(HTTP1_ENV, "hyper")
        .args(["--skip", this, "--test-threads", "2"])
        .output()
        .expect("run the test binary again");
    assert!(
        out.status.success(),
        "the suite fails over hyper's HTTP/1.1 server and client:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An address whose connections are refused: a socket bound to a loopback port and never
/// listening. The port stays reserved while the returned socket lives, so no listener
/// another test binds meanwhile can take it (a port freed by dropping a listener can be).
///
/// # Panics
/// If no loopback socket can be bound.
pub fn refused_addr() -> (SocketAddr, tokio::net::TcpSocket) {
    let s = tokio::net::TcpSocket::new_v4().expect("a socket");
    s.bind("127.0.0.1:0".parse().expect("an address"))
        .expect("bind 127.0.0.1:0");
    (s.local_addr().expect("a bound address"), s)
}

/// Builds and starts a proxy for `bootstrap` with [`builder`].
///
/// # Panics
/// If the config does not build or a listener cannot bind.
pub async fn start(bootstrap: mesh_core::config::Bootstrap) -> crate::RunningProxy {
    builder(bootstrap)
        .build()
        .expect("a valid config")
        .start()
        .await
        .expect("listeners bound")
}
