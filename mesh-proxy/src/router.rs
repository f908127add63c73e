//! The router: route match, cluster and host choice, the upstream call with its timeout, and
//! the mapping of failures to Envoy's local replies (SEMANTICS.md §3.12).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode, Uri};
use mesh_core::config::UpstreamProtocol;
use mesh_core::flags::ResponseFlags;
use mesh_lb::PickContext;
use mesh_route::{Forward, Hit, RequestInfo};
use tokio::time::Instant;

use crate::body::{self, ProxyBody, Tracked, UpstreamBody};
use crate::compile::ClusterRt;
use crate::conn_manager::{RequestCtx, authority, local_reply, note_original_path, reply};
use crate::error::Kind;
use crate::headers::{self, X_ENVOY_OVERLOADED, X_ENVOY_UPSTREAM_SERVICE_TIME};

mod decision;
mod mirror;
mod outcome;
mod retry;
mod timeout;

use decision::Decision;
pub(crate) use retry::RetryRt;
use retry::{Replay, Retry, X_ENVOY_ATTEMPT_COUNT};

static X_ENVOY_IS_TIMEOUT_RETRY: http::HeaderName =
    http::HeaderName::from_static("x-envoy-is-timeout-retry");

const CONNECT_ERROR: &str = "upstream connect error or disconnect/reset before headers. ";

/// Routes a request whose filters have run, and returns the response head with its body.
/// `cached` is the route chosen before the filters ran, when it still holds.
pub(crate) async fn route(
    cx: &mut RequestCtx,
    mut parts: Parts,
    req_body: ProxyBody,
    cached: Option<Hit<'_>>,
) -> Response<ProxyBody> {
    let chain = Arc::clone(&cx.chain);
    let random = cx.random;
    let hit = match cached {
        Some(h) => Some(h),
        None => chain.routes.find(&parts, random),
    };
    let Decision {
        hit,
        fwd,
        cluster,
        upgrade,
        limits,
        rq_slot,
        pick,
        set_cookie,
        timeout,
        mut retry,
    } = match decision::decide(cx, &chain, &mut parts, hit) {
        Ok(d) => d,
        Err(reply) => return reply,
    };
    // A retried request's body is kept for replay, up to the buffer limit; a larger one is
    // sent once and not retried.
    let mut once_body = Some(req_body);
    let mut replay = None;
    if retry.is_some() {
        let limit = buffer_limit(&hit);
        match Replay::read(once_body.take().unwrap_or_else(body::empty), limit).await {
            r @ Replay::Whole(_) => replay = Some(r),
            Replay::Once(b) => {
                retry = None;
                once_body = Some(b);
            }
        }
    }
    // Mirrors (SEMANTICS §3.8): the route's policies (else the vhost's, else the config's),
    // each with its fraction of the stream's random value. A mirrored body is kept whole; one
    // over the buffer limit abandons the mirrors.
    let mut mirrors = if upgrade.is_none() {
        mirror::policies(&hit, random)
    } else {
        Vec::new()
    };
    if !mirrors.is_empty() && replay.is_none() {
        let limit = buffer_limit(&hit);
        match Replay::read(once_body.take().unwrap_or_else(body::empty), limit).await {
            r @ Replay::Whole(_) => replay = Some(r),
            Replay::Once(b) => {
                mirrors.clear();
                once_body = Some(b);
            }
        }
    }
    // A body that failed while it was read for replay is the client's fault: nothing is
    // sent upstream (a truncated body must not pass as a whole one).
    if let Some(fault) = cx.exchange.fault.get() {
        return downstream_failure(cx, fault);
    }
    if let Some(r) = &replay {
        for m in mirrors {
            mirror::shadow(cx, &hit, &fwd, &parts, r, m, timeout);
        }
    }
    let version = parts.version;
    let downstream_upgrade = upgrade
        .as_ref()
        .and_then(|_| parts.extensions.remove::<hyper::upgrade::OnUpgrade>());
    let vhost = hit.virtual_host().config();
    let global = timeout::global(timeout.map(|t| (t, Arc::clone(&cx.exchange))));
    tokio::pin!(global);

    // Attempts (SEMANTICS §3.10): normally one at a time; with hedging, a per-try timeout
    // starts another attempt and leaves the late one running, and the first response that is
    // not retried wins. Dropping `attempts` cancels whatever is still in flight.
    let hedge = retry.as_ref().is_some_and(|r| r.hedge) && replay.is_some();
    // The first attempt takes the request head; a retry rebuilds it from this snapshot.
    let snapshot = retry
        .as_ref()
        .and(replay.as_ref())
        .map(|_| HeadSnapshot::of(&parts));
    // The per-try timeout, and the per-try idle timeout while no response has come.
    let per_try = timeout::per_try(
        retry.as_ref().and_then(|r| r.per_try),
        retry.as_ref().and_then(Retry::per_try_idle),
    );
    let mut attempt: u32 = 0;
    // Hosts tried so far, for previous_hosts (only a retried request needs them).
    let mut tried = Tried::default();
    let mut retry_slots = Vec::new();
    let mut attempts: Vec<Attempt> = Vec::with_capacity(1);
    let mut backoff: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut start = true;
    // The pending retry follows a per-try timeout.
    let mut timeout_retry = false;
    let (pool, result, sent_at, _active) = loop {
        if std::mem::take(&mut start) {
            attempt += 1;
            let Some(index) = pick_host(
                &cluster,
                &pick.with_attempt(attempt - 1),
                &fwd.action().metadata_match,
                &tried,
                retry.as_ref(),
            ) else {
                if !attempts.is_empty() {
                    // A hedged attempt is still running: it may yet answer.
                    continue;
                }
                cluster.stats.no_healthy.inc();
                return local_reply(
                    cx,
                    reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no healthy upstream",
                        ResponseFlags::NO_HEALTHY_UPSTREAM,
                    ),
                );
            };
            if retry.is_some() {
                tried.push(index);
            }
            let host = Arc::clone(&cluster.lb.hosts()[index]);
            let pool = Arc::clone(&cluster.pools[index]);
            if let Some(log) = &mut cx.log {
                log.upstream_host = Some(pool.address().to_string());
            }
            let (p, body) = match &replay {
                Some(r) => (
                    match &snapshot {
                        Some(s) if attempt > 1 => s.parts(),
                        _ => parts_take(&mut parts),
                    },
                    r.body().unwrap_or_else(body::empty),
                ),
                None => (
                    parts_take(&mut parts),
                    once_body.take().unwrap_or_else(body::empty),
                ),
            };
            let mut upstream_req =
                build_request(cx, &hit, &fwd, &cluster, &host, p, body, upgrade.is_some());
            if vhost.include_request_attempt_count {
                upstream_req
                    .headers_mut()
                    .insert(X_ENVOY_ATTEMPT_COUNT.clone(), HeaderValue::from(attempt));
            }
            // A retry after a per-try timeout says so upstream (Envoy's
            // x-envoy-is-timeout-retry), unless Envoy's headers are suppressed.
            if timeout_retry && !cx.chain.hcm.suppress_envoy_headers {
                upstream_req.headers_mut().insert(
                    X_ENVOY_IS_TIMEOUT_RETRY.clone(),
                    HeaderValue::from_static("true"),
                );
            }
            cluster.stats.rq_total.inc();
            cluster.stats.rq_active.inc();
            let send = send(cx, &pool, &limits, upstream_req, upgrade.is_some());
            attempts.push(Attempt {
                index,
                active: host.start_request(),
                sent_at: Instant::now(),
                send,
                per_try: per_try.map(|d| Box::pin(tokio::time::sleep(d))),
                hedged: false,
                pool,
            });
        }

        let event = std::future::poll_fn(|tcx| {
            for (i, a) in attempts.iter_mut().enumerate() {
                if let Poll::Ready(r) = a.send.as_mut().poll(tcx) {
                    return Poll::Ready(Event::Done(i, r));
                }
                if let Some(t) = &mut a.per_try
                    && t.as_mut().poll(tcx).is_ready()
                {
                    a.per_try = None;
                    return Poll::Ready(Event::PerTry(i));
                }
            }
            if let Some(b) = &mut backoff
                && b.as_mut().poll(tcx).is_ready()
            {
                backoff = None;
                return Poll::Ready(Event::Backoff);
            }
            if global.as_mut().poll(tcx).is_ready() {
                return Poll::Ready(Event::Global);
            }
            Poll::Pending
        })
        .await;

        let (a, result, per_try_fired) = match event {
            Event::Backoff => {
                start = true;
                continue;
            }
            Event::Global => {
                let timeout = || Err(crate::Error::new(Kind::Timeout, None));
                for a in attempts.drain(..) {
                    cluster.stats.rq_active.dec();
                    if !a.hedged {
                        outcome::report_outlier(cx, &cluster, a.index, &timeout());
                    }
                    outcome::record_host(&a.pool, outcome::HostResult::Timeout);
                }
                return failure(cx, &cluster, crate::Error::new(Kind::Timeout, None));
            }
            Event::PerTry(i) => {
                cluster.stats.rq_per_try_timeout.inc();
                if hedge {
                    // Hedging: the late attempt keeps running; its host is charged the
                    // timeout now, and another attempt starts if the policy allows one.
                    let a = &mut attempts[i];
                    a.hedged = true;
                    let index = a.index;
                    outcome::report_outlier(
                        cx,
                        &cluster,
                        index,
                        &Err(crate::Error::new(Kind::Timeout, None)),
                    );
                    if backoff.is_some() {
                        continue; // a retry is already on its way
                    }
                    if let Some(r) = retry.as_mut()
                        && take_retry(cx, &cluster, r, &limits, &mut retry_slots)
                    {
                        backoff = Some(Box::pin(tokio::time::sleep(
                            r.next_backoff(cx.filter_cx.random_u64()),
                        )));
                        timeout_retry = true;
                        continue;
                    }
                    // No retry left: the attempt is given up, as without hedging.
                }
                let a = attempts.swap_remove(i);
                cluster.stats.rq_active.dec();
                let e = crate::Error::new(Kind::Timeout, Some("per-try timeout".into()));
                (a, Err(e), true)
            }
            Event::Done(i, r) => {
                let a = attempts.swap_remove(i);
                cluster.stats.rq_active.dec();
                (a, r, false)
            }
        };
        // An attempt that failed because the downstream body did is the client's fault: no
        // outlier report, no retry, no error charged to the host.
        if result.is_err()
            && let Some(fault) = cx.exchange.fault.get()
        {
            for _ in attempts.drain(..) {
                cluster.stats.rq_active.dec();
            }
            return downstream_failure(cx, fault);
        }
        // A hedged attempt's host was charged its timeout already.
        if !(a.hedged && per_try_fired) {
            outcome::report_outlier(cx, &cluster, a.index, &result);
        }
        let retriable = match (&retry, &result) {
            (Some(r), Ok((resp, _))) => r.retriable_response(resp.status(), resp.headers()),
            (Some(r), Err(e)) => r.retriable_error(e.kind(), per_try_fired),
            (None, _) => false,
        };
        if !retriable {
            if attempt > 1
                && result
                    .as_ref()
                    .is_ok_and(|(resp, _)| !resp.status().is_server_error())
            {
                cluster.stats.rq_retry_success.inc();
            }
            break (a.pool, result, a.sent_at, a.active);
        }
        let Some(r) = retry.as_mut() else {
            break (a.pool, result, a.sent_at, a.active);
        };
        let waiting = !attempts.is_empty() || backoff.is_some();
        if waiting || take_retry(cx, &cluster, r, &limits, &mut retry_slots) {
            // Retried, or (hedging) another attempt may still answer: this result is dropped.
            outcome::record_host(&a.pool, outcome::HostResult::Error);
            drop(result);
            if !waiting {
                backoff = Some(Box::pin(tokio::time::sleep(
                    r.next_backoff(cx.filter_cx.random_u64()),
                )));
                timeout_retry = per_try_fired;
            }
            continue;
        }
        break (a.pool, result, a.sent_at, a.active);
    };
    drop(attempts);
    drop(parts);
    let host_attempts = attempt;
    let per_try_idle = retry.as_ref().and_then(Retry::per_try_idle);

    outcome::record_host(&pool, outcome::HostResult::of(&result));
    let (resp, lease) = match result {
        Ok(r) => r,
        Err(e) => return failure(cx, &cluster, e),
    };
    let upstream_ms = u64::try_from(sent_at.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (mut head, resp_body) = resp.into_parts();
    // Room for the headers the proxy adds (service time, server, attempt count, cookie).
    head.headers.reserve(4);
    // The downstream hears its own protocol version, whatever the upstream spoke (an
    // HTTP/1.0 answer would otherwise cost an HTTP/1.1 client its keep-alive).
    head.version = version;
    cluster.stats.rq_class.record(head.status.as_u16());
    cluster.stats.rq_time.record(upstream_ms);

    if head.status == StatusCode::SWITCHING_PROTOCOLS {
        let upstream_upgrade = hyper::upgrade::on(Response::from_parts(head.clone(), resp_body));
        if let Some(down) = downstream_upgrade {
            tokio::spawn(tunnel(down, upstream_upgrade));
        }
        headers::strip_hop_by_hop(&mut head.headers, true);
        head.headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        hit.apply_response_headers_with(&mut head.headers, &request_info(cx, version));
        return Response::from_parts(head, body::empty());
    }

    headers::strip_hop_by_hop(&mut head.headers, false);
    if !cx.chain.hcm.suppress_envoy_headers {
        head.headers.insert(
            X_ENVOY_UPSTREAM_SERVICE_TIME.clone(),
            HeaderValue::from(upstream_ms),
        );
    }
    hit.apply_response_headers_with(&mut head.headers, &request_info(cx, version));
    if let Some(cookie) = set_cookie
        && let Ok(v) = HeaderValue::from_str(&cookie.header_value())
    {
        head.headers.append(header::SET_COOKIE, v);
    }
    if vhost.include_attempt_count_in_response {
        head.headers.insert(
            X_ENVOY_ATTEMPT_COUNT.clone(),
            HeaderValue::from(host_attempts),
        );
    }

    // The global timeout runs until the response is complete: the body gets what is left.
    let deadline = timeout.and_then(|t| cx.exchange.request_done_at().map(|at| at + t));
    let body = Tracked::new(resp_body)
        .deadline(deadline)
        .idle_timeout(match (per_try_idle, stream_idle(cx, &fwd)) {
            // A zero stream idle timeout is disabled; the per-try one still applies.
            (Some(p), s) if s.is_zero() => p,
            (Some(p), s) => p.min(s),
            (None, s) => s,
        })
        .on_end(move |complete| {
            drop(rq_slot);
            if complete && let Some(lease) = lease {
                lease.release();
            }
        });
    Response::from_parts(head, body::boxed(body))
}

type SendResult = Result<(Response<UpstreamBody>, Option<crate::upstream::Lease>), crate::Error>;

/// Sends one upstream request: over the host's connection pool, or to the in-process
/// upstream service when the proxy has one.
fn send(
    cx: &RequestCtx,
    pool: &Arc<crate::upstream::HostPool>,
    limits: &Arc<mesh_lb::breaker::Limits>,
    req: Request<ProxyBody>,
    upgrade: bool,
) -> Pin<Box<dyn Future<Output = SendResult> + Send>> {
    match &cx.upstream {
        None => {
            let (pool, limits) = (Arc::clone(pool), Arc::clone(limits));
            let builtin = cx.http1_client == crate::Http1Client::Builtin;
            Box::pin(async move { pool.send(req, upgrade, &limits, builtin).await })
        }
        Some(service) => {
            let call = service.call(pool.address(), req);
            Box::pin(async move {
                match call.await {
                    Ok(resp) => Ok((resp.map(UpstreamBody::Mem), None)),
                    Err(e) => Err(crate::Error::new(Kind::Upstream, Some(e))),
                }
            })
        }
    }
}

/// One upstream attempt in flight.
struct Attempt {
    index: usize,
    pool: Arc<crate::upstream::HostPool>,
    active: mesh_lb::ActiveRequest,
    sent_at: Instant,
    send: Pin<Box<dyn Future<Output = SendResult> + Send>>,
    /// The per-try (or per-try idle) timer, until it fires.
    per_try: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Its per-try timeout fired and, hedging, another attempt was started beside it.
    hedged: bool,
}

/// What the attempt loop woke up for. A short-lived value on the loop's stack: boxing the
/// large `Done` would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Event {
    Done(usize, SendResult),
    PerTry(usize),
    Backoff,
    Global,
}

/// Takes one retry when the policy and the cluster's `max_retries` / retry budget allow it,
/// counting it; otherwise records why not (URX or UO) and returns false.
fn take_retry(
    cx: &mut RequestCtx,
    cluster: &ClusterRt,
    r: &mut Retry<'_>,
    limits: &Arc<mesh_lb::breaker::Limits>,
    slots: &mut Vec<mesh_lb::breaker::Permit>,
) -> bool {
    if r.remaining == 0 {
        cx.filter_cx
            .set_flag(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
        cluster.stats.rq_retry_limit_exceeded.inc();
        return false;
    }
    let Ok(slot) = limits.try_retry() else {
        // max_retries / the retry budget: the last failure is returned.
        cx.filter_cx.set_flag(ResponseFlags::UPSTREAM_OVERFLOW);
        return false;
    };
    slots.push(slot);
    r.remaining -= 1;
    cluster.stats.rq_retry.inc();
    true
}

/// Envoy's per-connection buffer default, used when neither the route nor the vhost sets
/// `per_request_buffer_limit_bytes`.
const DEFAULT_BUFFER_LIMIT: usize = 1024 * 1024;

fn buffer_limit(hit: &Hit<'_>) -> usize {
    hit.route()
        .and_then(|r| r.per_request_buffer_limit_bytes)
        .or(hit.virtual_host().config().per_request_buffer_limit_bytes)
        .map_or(DEFAULT_BUFFER_LIMIT, |l| l as usize)
}

/// The hosts a request has tried. The first is kept inline: a request that is never retried
/// allocates nothing for it.
#[derive(Default)]
struct Tried {
    first: Option<usize>,
    more: Vec<usize>,
}

impl Tried {
    fn push(&mut self, index: usize) {
        if self.first.is_none() {
            self.first = Some(index);
        } else {
            self.more.push(index);
        }
    }

    fn contains(&self, index: usize) -> bool {
        self.first == Some(index) || self.more.contains(&index)
    }
}

/// Picks a host; with `previous_hosts`, re-picks up to `host_selection_retry_max_attempts`
/// times to avoid hosts this request already tried, then takes the last pick.
/// A route's `metadata_match` selects a subset of a cluster with `lb_subset_config`.
fn pick_host(
    cluster: &ClusterRt,
    pick: &PickContext,
    metadata_match: &std::collections::BTreeMap<String, serde_json::Value>,
    tried: &Tried,
    retry: Option<&Retry<'_>>,
) -> Option<usize> {
    let once = || {
        if metadata_match.is_empty() {
            cluster.lb.pick_index_with(pick)
        } else {
            cluster.lb.pick_index_matching(metadata_match, pick)
        }
    };
    let mut index = once()?;
    if let Some(r) = retry {
        for _ in 0..r.host_reselects() {
            if !tried.contains(index) {
                break;
            }
            index = once()?;
        }
    }
    Some(index)
}

/// What `%OPERATOR%` header values read about this request.
fn request_info(cx: &RequestCtx, version: http::Version) -> RequestInfo<'static> {
    RequestInfo {
        downstream_remote: Some(cx.filter_cx.downstream_remote()),
        downstream_local: Some(cx.filter_cx.downstream_local()),
        protocol: Some(match version {
            http::Version::HTTP_2 => "HTTP/2",
            http::Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        }),
        request_headers: None,
    }
}

/// A request head kept for retries. Taking it costs one allocation and a reference-count
/// increment per header (no hashing); the header map is rebuilt only when a retry happens.
struct HeadSnapshot {
    method: http::Method,
    uri: Uri,
    version: http::Version,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl HeadSnapshot {
    fn of(p: &Parts) -> Self {
        let mut headers = Vec::with_capacity(p.headers.len());
        headers.extend(p.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self {
            method: p.method.clone(),
            uri: p.uri.clone(),
            version: p.version,
            headers,
        }
    }

    fn parts(&self) -> Parts {
        let (mut p, ()) = Request::new(()).into_parts();
        p.method = self.method.clone();
        p.uri = self.uri.clone();
        p.version = self.version;
        p.headers.reserve(self.headers.len());
        for (k, v) in &self.headers {
            p.headers.append(k.clone(), v.clone());
        }
        p
    }
}

fn parts_take(parts: &mut Parts) -> Parts {
    let (mut p, ()) = Request::new(()).into_parts();
    p.method = parts.method.clone();
    p.uri = std::mem::take(&mut parts.uri);
    p.version = parts.version;
    p.headers = std::mem::take(&mut parts.headers);
    p
}

fn stream_idle(cx: &RequestCtx, fwd: &Forward<'_>) -> Duration {
    match fwd.action().idle_timeout {
        Some(d) => d,
        None => cx.chain.hcm.stream_idle_timeout,
    }
}

fn upgrade_allowed(cx: &RequestCtx, fwd: &Forward<'_>, kind: &str) -> bool {
    let find = |list: &[mesh_core::config::UpgradeConfig]| {
        list.iter()
            .find(|u| u.upgrade_type.eq_ignore_ascii_case(kind))
            .map(|u| u.enabled)
    };
    find(&fwd.action().upgrade_configs)
        .or_else(|| find(&cx.chain.hcm.upgrade_configs))
        .unwrap_or(false)
}

#[allow(clippy::too_many_arguments)]
fn build_request(
    cx: &RequestCtx,
    hit: &Hit<'_>,
    fwd: &Forward<'_>,
    cluster: &ClusterRt,
    host: &mesh_lb::Host,
    mut parts: Parts,
    body: ProxyBody,
    upgrade: bool,
) -> Request<ProxyBody> {
    let mut authority = authority(&parts).unwrap_or_default().to_owned();
    let rewritten = fwd.rewritten_path(&parts);
    if let Some(new) = fwd.host_rewrite(&parts) {
        authority = new;
    } else if fwd.auto_host_rewrite()
        && let Some(h) = host.hostname()
    {
        authority = h.to_owned();
    }

    let info = request_info(cx, parts.version);
    hit.apply_request_headers_with(&mut parts.headers, &info);
    // The path as the upstream sees it: the request's own (shared, not parsed again) unless a
    // rewrite made a new one.
    let path: http::uri::PathAndQuery = match rewritten {
        Some(p) => {
            note_original_path(cx, &mut parts);
            p.parse()
                .unwrap_or_else(|_| http::uri::PathAndQuery::from_static("/"))
        }
        None => parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    };

    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    if upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }

    let h2 = cluster.config.protocol == UpstreamProtocol::Http2 && !upgrade;
    if h2 {
        parts.headers.remove(header::HOST);
        parts.version = http::Version::HTTP_2;
        parts.uri = Uri::builder()
            .scheme("http")
            .authority(authority.as_str())
            .path_and_query(path)
            .build()
            .unwrap_or_else(|_| Uri::from_static("/"));
    } else {
        if let Ok(v) = HeaderValue::from_str(&authority) {
            parts.headers.insert(header::HOST, v);
        }
        parts.version = http::Version::HTTP_11;
        let mut origin = http::uri::Parts::default();
        origin.path_and_query = Some(path);
        parts.uri = Uri::from_parts(origin).unwrap_or_else(|_| Uri::from_static("/"));
    }
    Request::from_parts(parts, body)
}

/// The local reply for a request whose downstream body failed (Envoy: 400 for a malformed
/// body, 408 "stream timeout" when the body stalls, 408 "request timeout" when the request
/// takes longer than `request_timeout`, DC when the client went away; in the
/// last case nobody reads the reply, which only the stats and the access log see).
fn downstream_failure(
    cx: &mut RequestCtx,
    fault: crate::body::DownstreamFault,
) -> Response<ProxyBody> {
    use crate::body::DownstreamFault;
    let r = match fault {
        DownstreamFault::Malformed => reply(
            StatusCode::BAD_REQUEST,
            "malformed request body",
            ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR,
        ),
        DownstreamFault::IdleTimeout => reply(
            StatusCode::REQUEST_TIMEOUT,
            "stream timeout",
            ResponseFlags::STREAM_IDLE_TIMEOUT,
        ),
        DownstreamFault::RequestTimeout => {
            cx.chain.stats.rq_timeout.inc();
            reply(
                StatusCode::REQUEST_TIMEOUT,
                "request timeout",
                ResponseFlags::empty(),
            )
        }
        DownstreamFault::Closed => reply(
            StatusCode::BAD_REQUEST,
            "",
            ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION,
        ),
    };
    local_reply(cx, r)
}

/// Maps an upstream failure to Envoy's local reply.
fn failure(cx: &mut RequestCtx, cluster: &ClusterRt, e: crate::Error) -> Response<ProxyBody> {
    let source = std::error::Error::source(&e).map(ToString::to_string);
    let r = match e.kind() {
        Kind::Timeout => {
            cluster.stats.rq_timeout.inc();
            cx.chain.stats.rq_timeout.inc();
            if cx.timeout_alt_response {
                reply(
                    StatusCode::NO_CONTENT,
                    "",
                    ResponseFlags::UPSTREAM_REQUEST_TIMEOUT,
                )
            } else {
                reply(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream request timeout",
                    ResponseFlags::UPSTREAM_REQUEST_TIMEOUT,
                )
            }
        }
        Kind::Overflow => {
            let mut r = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{CONNECT_ERROR}reset reason: overflow"),
                ResponseFlags::UPSTREAM_OVERFLOW,
            );
            if !cx.chain.hcm.suppress_envoy_headers {
                r.headers
                    .insert(X_ENVOY_OVERLOADED.clone(), HeaderValue::from_static("true"));
            }
            r
        }
        Kind::UpstreamProtocol => reply(
            StatusCode::BAD_GATEWAY,
            &format!("{CONNECT_ERROR}reset reason: protocol error"),
            ResponseFlags::UPSTREAM_PROTOCOL_ERROR,
        ),
        Kind::UpstreamConnectTimeout => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{CONNECT_ERROR}reset reason: connection timeout"),
            ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
        ),
        Kind::UpstreamConnect => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "{CONNECT_ERROR}reset reason: remote connection failure, transport failure reason: {}",
                source.as_deref().unwrap_or("unknown")
            ),
            ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
        ),
        _ => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{CONNECT_ERROR}reset reason: connection termination"),
            ResponseFlags::UPSTREAM_CONNECTION_TERMINATION,
        ),
    };
    cluster.stats.rq_class.record(r.status.as_u16());
    local_reply(cx, r)
}

async fn tunnel(down: hyper::upgrade::OnUpgrade, up: hyper::upgrade::OnUpgrade) {
    let (Ok(down), Ok(up)) = (down.await, up.await) else {
        return;
    };
    let mut down = hyper_util::rt::TokioIo::new(down);
    let mut up = hyper_util::rt::TokioIo::new(up);
    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
}
