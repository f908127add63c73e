//! The HTTP connection manager: one request from arrival to the last response byte.
//!
//! Header rules (forwarding headers, request id, trust), the filter chain, the router, local
//! replies, stats and the access log. One config snapshot is loaded per request and used to
//! the end.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use mesh_core::config::UnderscoresAction;
use mesh_core::filter::{FilterContext, Flow, LocalReply};
use mesh_core::flags::ResponseFlags;
use mesh_core::stats::Registry;
use mesh_core::store::{ConfigStore, Versioned};
use tokio::time::Instant;

use crate::access_log::LogRecord;
use crate::body::{self, ProxyBody, Tracked};
use crate::compile::{ChainRt, Compiled};
use crate::headers::{self, X_ENVOY_ORIGINAL_PATH};
use crate::random;
use crate::router;

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<ConfigStore<Compiled>>,
    pub(crate) stats: Arc<Registry>,
    /// Time zero for outlier detection's clock.
    pub(crate) epoch: Instant,
    /// The request path's random draws.
    pub(crate) random: random::Source,
    /// Answers upstream requests in process instead of the network.
    pub(crate) upstream: Option<Arc<dyn crate::UpstreamService>>,
    /// Which client sends HTTP/1.1 upstream requests.
    pub(crate) http1_client: crate::Http1Client,
    /// Which server reads HTTP/1.x downstream.
    pub(crate) http1_server: crate::Http1Server,
    /// Downstream connections open on every listener, for the overload manager's limit.
    pub(crate) downstream_cx: AtomicU64,
    /// The runtime's admin layer (`POST /runtime_modify`).
    pub(crate) admin_runtime: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// The access-log files every config's logs write to.
    pub(crate) log_files: crate::access_log::LogFiles,
}

impl std::fmt::Debug for dyn crate::UpstreamService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamService")
    }
}

/// Per-connection state the connection task watches.
///
/// Nothing here wakes the connection task per request: the idle timer reads `idle_since`
/// when it fires and re-arms itself, and the request header timeout runs inside the
/// connection's I/O. Only a request to close the connection wakes it, through `waker`.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub(crate) active: AtomicUsize,
    pub(crate) requests: AtomicU64,
    /// The connection should close gracefully (a refused request, the requests-per-
    /// connection limit, or the listener draining).
    pub(crate) close: AtomicBool,
    /// HTTP/1: bytes of a request head have arrived and its headers are not complete yet
    /// (the request header timeout runs).
    pub(crate) head_pending: AtomicBool,
    /// The connection task's waker, woken when `close` is set.
    pub(crate) waker: std::sync::Mutex<Option<std::task::Waker>>,
    /// When the connection was opened: the origin of `idle_since`.
    base: Instant,
    /// Milliseconds after `base` when the last active stream ended (or the connection opened).
    idle_since: AtomicU64,
}

impl Default for ConnState {
    fn default() -> Self {
        Self {
            active: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            close: AtomicBool::new(false),
            head_pending: AtomicBool::new(false),
            waker: std::sync::Mutex::new(None),
            base: Instant::now(),
            idle_since: AtomicU64::new(0),
        }
    }
}

impl ConnState {
    fn begin(self: &Arc<Self>) -> ActiveStream {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.head_pending.store(false, Ordering::Release);
        ActiveStream(Arc::clone(self), None)
    }

    /// Asks the connection task to close the connection gracefully.
    pub(crate) fn close(&self) {
        self.close.store(true, Ordering::SeqCst);
        let waker = self.waker.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = waker.as_ref() {
            w.wake_by_ref();
        }
    }

    /// When the connection last became idle; `None` while a stream is active.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        let ms = self.idle_since.load(Ordering::Acquire);
        Some(self.base + Duration::from_millis(ms))
    }
}

/// Counts a stream as active until dropped (or ended with [`ActiveStream::end_at`]).
#[derive(Debug)]
struct ActiveStream(Arc<ConnState>, Option<Instant>);

impl ActiveStream {
    /// Ends the stream at `now`, a time its caller read anyway.
    fn end_at(mut self, now: Instant) {
        self.1 = Some(now);
    }
}

impl Drop for ActiveStream {
    fn drop(&mut self) {
        let s = &self.0;
        // Rounded up, so the idle timer never fires early.
        let ms = self
            .1
            .unwrap_or_else(Instant::now)
            .duration_since(s.base)
            .as_nanos()
            .div_ceil(1_000_000);
        s.idle_since
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Release);
        s.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One accepted connection.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    pub(crate) remote: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) listener: Arc<str>,
    pub(crate) chain: usize,
    pub(crate) state: Arc<ConnState>,
    /// The TLS session, when the chain terminates TLS.
    pub(crate) tls: Option<crate::tls::TlsInfo>,
}

/// Per-request facts the router and the access log need.
pub(crate) struct RequestCtx {
    pub(crate) snapshot: Arc<Versioned<Compiled>>,
    pub(crate) chain: Arc<ChainRt>,
    pub(crate) filter_cx: FilterContext,
    /// The access-log record, when the chain has an access log. Boxed: without a log the
    /// context (moved at each step of a request) would still carry its 512 bytes.
    pub(crate) log: Option<Box<LogRecord>>,
    pub(crate) start: Instant,
    /// The byte counts, the request body's fault and its end.
    pub(crate) exchange: Arc<body::Exchange>,
    pub(crate) random: u64,
    pub(crate) epoch: Instant,
    /// `x-envoy-upstream-rq-timeout-alt-response` was sent: a timeout answers 204.
    pub(crate) timeout_alt_response: bool,
    /// The request is gRPC (`content-type: application/grpc[+…]`).
    pub(crate) grpc: bool,
    /// [`Shared::upstream`].
    pub(crate) upstream: Option<Arc<dyn crate::UpstreamService>>,
    /// [`Shared::http1_client`].
    pub(crate) http1_client: crate::Http1Client,
}

/// The connection manager's entry point: hyper's service for a connection, and
/// [`crate::Proxy::handle`] in process.
pub(crate) async fn serve<B>(
    req: Request<B>,
    conn: Arc<ConnInfo>,
    shared: Arc<Shared>,
) -> Result<Response<ProxyBody>, Infallible>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<mesh_core::BoxError>,
{
    let _in_flight = crate::load::InFlight::enter();
    let stream = conn.state.begin();
    let n = conn.state.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let snapshot = shared.store.load_full();
    let Some(chain) = snapshot
        .value
        .listener(&conn.listener)
        .and_then(|l| l.http_chain(conn.chain))
        .cloned()
    else {
        let mut resp = Response::new(body::full("listener removed"));
        *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return Ok(resp);
    };
    if chain
        .hcm
        .max_requests_per_connection
        .is_some_and(|max| n >= u64::from(max))
    {
        conn.state.close();
    }
    chain.stats.rq_total.inc();

    let start = Instant::now();
    let (mut parts, body) = req.into_parts();
    let protocol = match parts.version {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };

    let refused = admit(&mut parts, &chain, &conn);
    // Host port stripping happens before anything reads the authority.
    if chain.hcm.strip_any_host_port || chain.hcm.strip_matching_host_port {
        strip_host_port(&mut parts, &chain, conn.local.port());
    }
    // The client's hop-by-hop headers go before the proxy adds its own: a header the
    // client names in `Connection` must not take the proxy's forwarding headers with it.
    headers::strip_downstream_hop_by_hop(&mut parts.headers);
    // Room at once for the headers the proxy will add is at most one rehash of the map
    // instead of one per doubling; no more than it will add, so that a map with room to
    // spare is not grown for nothing.
    parts
        .headers
        .reserve(headers::added_request_headers(&chain.hcm, parts.version));
    let downstream = headers::sanitize_request(
        &mut parts.headers,
        &chain.hcm,
        &chain.internal_only,
        conn.remote,
        if conn.tls.is_some() { "https" } else { "http" },
        random::uuid_v4,
    );
    // Trace context only where the connection manager traces (Envoy's `tracing`).
    if let Some(t) = &chain.hcm.tracing {
        let sample = t.random_sampling * t.overall_sampling / 100.0;
        crate::trace::propagate(&mut parts.headers, sample);
    }

    let body_end_stream = http_body::Body::is_end_stream(&body);
    let exchange = Arc::new(body::Exchange::new(start, body_end_stream));
    // A body that ended with its head has nothing to count, time or wait for (the exchange
    // marks the request done already): an empty body stands in for it, with no allocation.
    let req_body = if body_end_stream {
        drop(body);
        body::empty()
    } else {
        body::boxed(
            Tracked::new(body)
                .request_of(Arc::clone(&exchange))
                .deadline(chain.hcm.request_timeout.map(|t| start + t))
                .idle_timeout(chain.hcm.stream_idle_timeout),
        )
    };

    // Only access logs read these: build them only when there is a log.
    let log = (!chain.access_logs.is_empty()).then(|| {
        Box::new(LogRecord {
            request_headers: parts.headers.clone(),
            start: Some(SystemTime::now()),
            method: parts.method.as_str().to_owned(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
            authority: authority(&parts).unwrap_or_default().to_owned(),
            protocol,
            downstream_remote: Some(if downstream.client == conn.remote.ip().to_canonical() {
                conn.remote
            } else {
                SocketAddr::new(downstream.client, 0)
            }),
            downstream_local: Some(conn.local),
            tls: conn.tls.clone(),
            ..LogRecord::default()
        })
    });
    let mut cx = RequestCtx {
        snapshot,
        chain: Arc::clone(&chain),
        filter_cx: FilterContext::new(conn.remote, conn.local)
            .with_random_seed(shared.random.next_u64()),
        log,
        start,
        exchange,
        random: shared.random.next_u64(),
        epoch: shared.epoch,
        timeout_alt_response: false,
        upstream: shared.upstream.clone(),
        http1_client: shared.http1_client,
        grpc: headers::get(&parts.headers, &header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c == "application/grpc" || c.starts_with("application/grpc+")),
    };

    if let Some(r) = refused {
        let resp = router::routed(local_reply(&mut cx, r));
        return Ok(finish(cx, resp, stream));
    }

    // The route is chosen once, before the filters run (their per-route config depends on
    // it), and kept for the router unless a filter clears it (Envoy's route cache).
    let hit = if chain.filters.is_empty() {
        None
    } else {
        chain.routes.find(&parts, cx.random)
    };
    if let Some(hit) = &hit {
        cx.filter_cx
            .set_route_overrides(hit.typed_per_filter_config().cloned());
    }

    let mut ran = 0;
    let mut reply = None;
    for f in &chain.filters {
        ran += 1;
        if let Flow::Reply(r) = f.on_request(&mut parts, &mut cx.filter_cx).await {
            reply = Some(r);
            break;
        }
    }

    let resp = match reply {
        Some(r) => router::routed(local_reply(&mut cx, r)),
        None => {
            ran = chain.filters.len();
            let hit = hit.filter(|_| !cx.filter_cx.route_cache_cleared());
            let mut req_body = req_body;
            for f in &chain.filters {
                if let Some(bf) = f.request_body(&parts, &cx.filter_cx) {
                    // The filter may change the length.
                    parts.headers.remove(header::CONTENT_LENGTH);
                    req_body = body::boxed(body::Filtered::new(req_body, bf));
                }
            }
            router::route(&mut cx, parts, req_body, hit).await
        }
    };
    // Without filters there is nothing to await: the response is finished in place, with
    // no future for it (the request's context would be moved into one).
    let resp = if ran == 0 {
        resp
    } else {
        let (mut head, body) = resp.into_parts();
        let body_filters = response_filters(&mut cx, &mut head, ran).await;
        if body_filters.is_empty() {
            // The body as the router gave it: one wrapper still (see `router::Routed`).
            Response::from_parts(head, body)
        } else {
            let mut body = body::boxed(body);
            for bf in body_filters {
                body = body::boxed(body::Filtered::new(body, bf));
            }
            router::routed(Response::from_parts(head, body))
        }
    };
    Ok(finish(cx, resp, stream))
}

/// Runs the response side of the first `ran` filters (those that saw the request), last
/// first, and returns the body filters they asked for, innermost first (the body is wrapped
/// only when one did).
async fn response_filters(
    cx: &mut RequestCtx,
    head: &mut http::response::Parts,
    ran: usize,
) -> Vec<Box<dyn mesh_core::filter::BodyFilter>> {
    let mut body_filters = Vec::new();
    for f in cx.chain.filters[..ran].iter().rev() {
        f.on_response(head, &mut cx.filter_cx).await;
        if let Some(bf) = f.response_body(head, &cx.filter_cx) {
            head.headers.remove(header::CONTENT_LENGTH);
            body_filters.push(bf);
        }
    }
    body_filters
}

/// Records stats and arranges the access log for when the body ends (the response filters
/// have run).
fn finish(mut cx: RequestCtx, resp: router::Routed, stream: ActiveStream) -> Response<ProxyBody> {
    let (mut head, body) = resp.into_parts();
    if let Some(v) = &cx.chain.server_header {
        head.headers.insert(header::SERVER, v.clone());
    }
    let status = head.status.as_u16();
    cx.chain.stats.rq_class.record(status);

    let mut log = cx.log.take();
    if let Some(log) = &mut log {
        log.status = status;
        log.flags = cx.filter_cx.flags();
        log.response_headers = head.headers.clone();
    }
    let body = body
        .response_of(Arc::clone(&cx.exchange))
        .on_end(StreamEnd {
            chain: cx.chain,
            start: cx.start,
            exchange: cx.exchange,
            filter_cx: cx.filter_cx,
            log,
            stream,
        });
    Response::from_parts(head, body::boxed(body))
}

/// What a request's end does, when its response body ends: the request time, the filters'
/// `on_log`, the access log, the stream's end on its connection.
struct StreamEnd {
    chain: Arc<ChainRt>,
    start: Instant,
    exchange: Arc<body::Exchange>,
    filter_cx: FilterContext,
    log: Option<Box<LogRecord>>,
    stream: ActiveStream,
}

impl body::OnEnd for StreamEnd {
    fn ended(self, _complete: bool, now: Instant) {
        let Self {
            chain,
            start,
            exchange,
            filter_cx,
            log,
            stream,
        } = self;
        let elapsed = now.duration_since(start);
        chain.stats.rq_time.record(elapsed.as_millis() as u64);
        for f in &chain.filters {
            f.on_log(&filter_cx);
        }
        if let Some(mut log) = log {
            log.duration = elapsed;
            log.bytes_sent = exchange.bytes_sent.load(Ordering::Relaxed);
            log.bytes_received = exchange.bytes_received.load(Ordering::Relaxed);
            for l in &chain.access_logs {
                l.log(&log);
            }
        }
        stream.end_at(now);
    }
}

/// Builds the response for a local reply and records its flags.
pub(crate) fn local_reply(cx: &mut RequestCtx, r: LocalReply) -> Response<ProxyBody> {
    cx.filter_cx.set_flag(r.flags);
    // gRPC clients read errors from grpc-status: a gRPC request gets a trailers-only reply
    // (HTTP 200) with the status mapped as Envoy does, unless the reply is already gRPC.
    if cx.grpc && !r.headers.contains_key("grpc-status") {
        let mut resp = Response::new(body::empty());
        *resp.headers_mut() = r.headers;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert("grpc-status", HeaderValue::from(grpc_status(r.status)));
        if !r.body.is_empty()
            && let Ok(m) = HeaderValue::from_bytes(&r.body)
        {
            h.insert("grpc-message", m);
        }
        return resp;
    }
    let mut resp = Response::new(body::full(r.body.clone()));
    *resp.status_mut() = r.status;
    *resp.headers_mut() = r.headers;
    if !r.body.is_empty() {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    resp
}

/// Envoy's `Grpc::Utility::httpToGrpcStatus`.
pub(crate) fn grpc_status(status: StatusCode) -> u16 {
    match status.as_u16() {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    }
}

/// A local reply with a body and a flag.
pub(crate) fn reply(status: StatusCode, body: &str, flag: ResponseFlags) -> LocalReply {
    LocalReply::new(status)
        .with_body(bytes::Bytes::copy_from_slice(body.as_bytes()))
        .with_flag(flag)
}

/// The request's authority: the URI's (HTTP/2) or the `Host` header (HTTP/1).
pub(crate) fn authority(parts: &http::request::Parts) -> Option<&str> {
    parts.uri.authority().map(|a| a.as_str()).or_else(|| {
        parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

/// The connection manager's checks of a request head before anything else reads it, in
/// Envoy's order: the HTTP version, the header count and size, underscores in header names,
/// the authority, then path normalisation (which may rewrite the path). The local reply when
/// the request is refused (a refusal that leaves the connection in doubt also closes it).
fn admit(parts: &mut http::request::Parts, chain: &ChainRt, conn: &ConnInfo) -> Option<LocalReply> {
    let hcm = &chain.hcm;
    let close = || conn.state.close();
    if parts.version == http::Version::HTTP_10 || parts.version == http::Version::HTTP_09 {
        if !hcm.accept_http_10 {
            close();
            return Some(reply(
                StatusCode::UPGRADE_REQUIRED,
                "Upgrade Required",
                ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR,
            ));
        }
        if let Some(host) = &hcm.default_host_for_http_10
            && parts.uri.authority().is_none()
            && !parts.headers.contains_key(header::HOST)
            && let Ok(v) = HeaderValue::from_str(host)
        {
            parts.headers.insert(header::HOST, v);
        }
    }
    // Envoy's limits: header lines and name plus value bytes, with the URL for HTTP/1 and
    // the pseudo-headers (name and value) for HTTP/2.
    let path = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    let (pseudo_count, pseudo_bytes) = if parts.version == http::Version::HTTP_2 {
        let authority = parts.uri.authority().map(|a| a.as_str().len());
        let scheme = parts.uri.scheme_str().map_or(0, |s| s.len() + 7);
        (
            2 + usize::from(authority.is_some()) + usize::from(scheme > 0),
            7 + parts.method.as_str().len() + scheme + authority.map_or(0, |a| a + 10) + 5 + path,
        )
    } else {
        (0, path)
    };
    let too_large = parts.headers.len() + pseudo_count > hcm.max_headers_count as usize || {
        let limit = (hcm.max_request_headers_kb as usize).saturating_mul(1024);
        let bytes = parts
            .headers
            .iter()
            .fold(pseudo_bytes, |n, (k, v)| n + k.as_str().len() + v.len());
        bytes > limit
    };
    if too_large {
        close();
        return Some(reply(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large",
            ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR,
        ));
    }
    if hcm.headers_with_underscores_action != UnderscoresAction::Allow
        && parts.headers.keys().any(|k| k.as_str().contains('_'))
    {
        if hcm.headers_with_underscores_action == UnderscoresAction::RejectRequest {
            chain.stats.rq_rejected_underscores.inc();
            close();
            return Some(reply(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR,
            ));
        }
        let drop: Vec<header::HeaderName> = parts
            .headers
            .keys()
            .filter(|k| k.as_str().contains('_'))
            .cloned()
            .collect();
        for k in drop {
            chain.stats.dropped_underscores.inc();
            parts.headers.remove(k);
        }
    }
    if let Some(why) = headers::check_request(parts) {
        return Some(reply(
            StatusCode::BAD_REQUEST,
            why,
            ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR,
        ));
    }
    if crate::path::enabled(hcm) {
        return normalize_path(parts, chain);
    }
    None
}

/// Normalises the request path as the connection manager is configured to (see
/// [`crate::path`]); the local reply when the request is refused or redirected instead.
fn normalize_path(parts: &mut http::request::Parts, chain: &ChainRt) -> Option<LocalReply> {
    use crate::path::Normalized;
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    match crate::path::normalize(pq, &chain.hcm) {
        Normalized::Unchanged => None,
        Normalized::Changed(p) => {
            let mut u = std::mem::take(&mut parts.uri).into_parts();
            match p.parse() {
                Ok(pq) => {
                    u.path_and_query = Some(pq);
                    parts.uri = http::Uri::from_parts(u).unwrap_or_default();
                    None
                }
                Err(_) => Some(path_refused(chain)),
            }
        }
        Normalized::Reject => Some(path_refused(chain)),
        Normalized::Redirect(p) => {
            let grpc = parts
                .headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
            match HeaderValue::from_str(&p) {
                Ok(location) if !grpc => {
                    chain.stats.rq_redirected_normalized_path.inc();
                    let mut r = LocalReply::new(StatusCode::TEMPORARY_REDIRECT);
                    r.headers.insert(header::LOCATION, location);
                    Some(r)
                }
                _ => Some(path_refused(chain)),
            }
        }
    }
}

fn path_refused(chain: &ChainRt) -> LocalReply {
    chain.stats.rq_failed_path_normalization.inc();
    reply(
        StatusCode::BAD_REQUEST,
        "",
        ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR,
    )
}

fn strip_host_port(parts: &mut http::request::Parts, chain: &ChainRt, local_port: u16) {
    let Some(auth) = authority(parts).map(str::to_owned) else {
        return;
    };
    let (host, port) = headers::strip_port(&auth);
    let Some(port) = port else { return };
    let strip = chain.hcm.strip_any_host_port || port.parse::<u16>().ok() == Some(local_port);
    if !strip {
        return;
    }
    let Ok(v) = HeaderValue::from_str(host) else {
        return;
    };
    if parts.uri.authority().is_some() {
        let mut p = std::mem::take(&mut parts.uri).into_parts();
        p.authority = host.parse().ok();
        if let Ok(u) = http::Uri::from_parts(p) {
            parts.uri = u;
        }
    }
    if parts.headers.contains_key(header::HOST) {
        parts.headers.insert(header::HOST, v);
    }
}

/// Records the original path before a rewrite (unless Envoy headers are suppressed).
pub(crate) fn note_original_path(cx: &RequestCtx, parts: &mut http::request::Parts) {
    if !cx.chain.hcm.suppress_envoy_headers
        && let Some(pq) = parts.uri.path_and_query()
        && let Ok(v) = HeaderValue::from_str(pq.as_str())
    {
        parts.headers.insert(X_ENVOY_ORIGINAL_PATH.clone(), v);
    }
}
