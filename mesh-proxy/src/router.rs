//! The router: route match, cluster and host choice, the upstream call with its timeout, and
//! the mapping of failures to Envoy's local replies (SEMANTICS.md §3.12).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode, Uri};
use mesh_core::config::UpstreamProtocol;
use mesh_core::flags::ResponseFlags;
use mesh_route::{Forward, Hit, RequestInfo};

use crate::body::{self, ProxyBody, Tracked, UpstreamBody, UpstreamHold};
use crate::compile::ClusterRt;
use crate::conn_manager::{RequestCtx, authority, local_reply, note_original_path, reply};
use crate::error::Kind;
use crate::headers::{self, X_ENVOY_OVERLOADED, X_ENVOY_UPSTREAM_SERVICE_TIME};

mod attempts;
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
) -> Routed {
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
        Err(reply) => return routed(reply),
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
        return routed(downstream_failure(cx, fault));
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

    // The per-try idle timeout also bounds the response body (below).
    let per_try_idle = retry.as_ref().and_then(Retry::per_try_idle);
    let target = attempts::Target {
        hit: &hit,
        fwd: &fwd,
        cluster: &cluster,
        limits: &limits,
        pick,
        upgrade: upgrade.is_some(),
    };
    let mut attempts = attempts::Attempts::new(target, retry, parts, once_body, replay.as_ref());
    let settled = attempts.run(cx, global.as_mut()).await;
    // Whatever is still in flight (a hedged attempt) is cancelled now.
    drop(attempts);
    let (pool, result, sent_at, host_attempts, _active) = match settled {
        attempts::Settled::Done {
            pool,
            result,
            sent_at,
            attempts,
            active,
        } => (pool, result, sent_at, attempts, active),
        attempts::Settled::Reply(r) => return routed(r),
    };

    outcome::record_host(&pool, outcome::HostResult::of(&result));
    let (resp, lease) = match result {
        Ok(r) => r,
        Err(e) => return routed(failure(cx, &cluster, e)),
    };
    let upstream_ms = u64::try_from(sent_at.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (mut head, resp_body) = resp.into_parts();
    // Room for the headers the proxy adds (a no-op for the built-in client's map, sized so
    // at its parse).
    head.headers.reserve(headers::ADDED_RESPONSE_HEADERS);
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
        return routed(Response::from_parts(head, body::empty()));
    }

    headers::strip_hop_by_hop(&mut head.headers, false);
    if !cx.chain.hcm.suppress_envoy_headers {
        head.headers.insert(
            X_ENVOY_UPSTREAM_SERVICE_TIME.clone(),
            headers::generated_u64(upstream_ms),
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
        .holding(UpstreamHold {
            slot: rq_slot,
            lease,
        });
    Response::from_parts(head, body)
}

/// A routed response: its body is tracked from the router to the downstream in one wrapper
/// (the connection manager adds its part to it, [`Tracked`]).
pub(crate) type Routed = Response<Tracked<UpstreamBody>>;

/// A local reply (or a response from a filter) as a routed response.
pub(crate) fn routed(resp: Response<ProxyBody>) -> Routed {
    resp.map(|b| Tracked::new(UpstreamBody::Mem(b)))
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
            let builtin = cx.http1_client == crate::Http1Client::Builtin;
            Box::pin(Arc::clone(pool).send(req, upgrade, Arc::clone(limits), builtin))
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

/// Envoy's per-connection buffer default, used when neither the route nor the vhost sets
/// `per_request_buffer_limit_bytes`.
const DEFAULT_BUFFER_LIMIT: usize = 1024 * 1024;

fn buffer_limit(hit: &Hit<'_>) -> usize {
    hit.route()
        .and_then(|r| r.per_request_buffer_limit_bytes)
        .or(hit.virtual_host().config().per_request_buffer_limit_bytes)
        .map_or(DEFAULT_BUFFER_LIMIT, |l| l as usize)
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
    // A new authority only where the route rewrites it; otherwise the request's stands.
    let rewritten_authority = if let Some(new) = fwd.host_rewrite(&parts) {
        Some(new)
    } else if fwd.auto_host_rewrite()
        && let Some(h) = host.hostname()
    {
        Some(h.to_owned())
    } else {
        None
    };
    let rewritten = fwd.rewritten_path(&parts);

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
        let authority =
            rewritten_authority.unwrap_or_else(|| authority(&parts).unwrap_or_default().to_owned());
        parts.headers.remove(header::HOST);
        parts.version = http::Version::HTTP_2;
        parts.uri = Uri::builder()
            .scheme("http")
            .authority(authority.as_str())
            .path_and_query(path)
            .build()
            .unwrap_or_else(|_| Uri::from_static("/"));
    } else {
        // The Host header: a rewritten authority; else the request's own (the URI's
        // authority, of an absolute-form or HTTP/2 request, over a Host header that differs);
        // an unchanged Host header is kept as it is, without a copy.
        let new_host = match &rewritten_authority {
            Some(a) => Some(a.as_str()),
            None => match parts.uri.authority() {
                Some(a)
                    if parts.headers.get(header::HOST).map(HeaderValue::as_bytes)
                        != Some(a.as_str().as_bytes()) =>
                {
                    Some(a.as_str())
                }
                Some(_) => None,
                None if headers::has(&parts.headers, &header::HOST) => None,
                None => Some(""),
            },
        };
        if let Some(a) = new_host
            && let Ok(v) = HeaderValue::from_str(a)
        {
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
