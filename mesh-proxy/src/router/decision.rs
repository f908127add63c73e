//! The routing decision (SEMANTICS §3.1–3.10): everything about a request that is settled
//! before its first byte goes upstream, decided synchronously from the route table, the
//! cluster, its circuit breakers and the request's trusted headers. The attempt loop in
//! `router.rs` then carries it out.

use std::sync::Arc;
use std::time::Duration;

use http::Response;
use http::StatusCode;
use http::request::Parts;
use mesh_core::flags::ResponseFlags;
use mesh_lb::PickContext;
use mesh_lb::breaker::{Limits, Permit};
use mesh_lb::hash::GeneratedCookie;
use mesh_route::{Forward, Hit, HitAction};

use super::retry::{self, Retry};
use super::{failure, request_info, timeout, upgrade_allowed};
use crate::body::ProxyBody;
use crate::compile::{ChainRt, ClusterRt};
use crate::conn_manager::{RequestCtx, local_reply, reply};
use crate::error::Kind;
use crate::headers;

/// What is settled about a request before it goes upstream.
pub(super) struct Decision<'h> {
    /// The route it matched.
    pub(super) hit: Hit<'h>,
    /// The route's forwarding action.
    pub(super) fwd: Forward<'h>,
    /// The cluster it goes to.
    pub(super) cluster: Arc<ClusterRt>,
    /// The upgrade it asks for (a WebSocket), when the route allows it.
    pub(super) upgrade: Option<String>,
    /// The cluster's circuit breakers at the route's priority.
    pub(super) limits: Arc<Limits>,
    /// Its `max_requests` slot, held until the response ends.
    pub(super) rq_slot: Permit,
    /// How hosts are picked (the consistent hash, when the cluster hashes).
    pub(super) pick: PickContext,
    /// The cookie a cookie hash policy sets on the response.
    pub(super) set_cookie: Option<GeneratedCookie>,
    /// The global timeout (the route's, or a trusted header's).
    pub(super) timeout: Option<Duration>,
    /// The retry policy, when anything may be retried.
    pub(super) retry: Option<Retry<'h>>,
}

/// Decides where and how `parts` goes, consuming the trusted `x-envoy-*` headers that steer
/// it (timeouts, retries) and adding `x-envoy-expected-rq-timeout-ms`; or answers locally:
/// no route (404), a redirect or direct response, no cluster, a refused upgrade (403), or
/// the cluster's `max_requests` reached (503).
// The local reply is returned once per request, by value as the router returns it; boxing
// it would cost an allocation.
#[allow(clippy::result_large_err)]
pub(super) fn decide<'h>(
    cx: &mut RequestCtx,
    chain: &'h ChainRt,
    parts: &mut Parts,
    hit: Option<Hit<'h>>,
) -> Result<Decision<'h>, Response<ProxyBody>> {
    let random = cx.random;
    let Some(hit) = hit else {
        return Err(local_reply(
            cx,
            reply(StatusCode::NOT_FOUND, "", ResponseFlags::NO_ROUTE_FOUND),
        ));
    };
    if let Some(log) = &mut cx.log {
        log.route_name = Some(hit.route_name().to_owned());
    }
    let fwd = match hit.action() {
        HitAction::Forward(f) => f,
        HitAction::Redirect(_, status) => {
            // `apply_response_headers` sets `Location` before the route's own mutations.
            let mut r = reply(status, "", ResponseFlags::empty());
            hit.apply_response_headers_with(&mut r.headers, &request_info(cx, parts.version));
            return Err(local_reply(cx, r));
        }
        HitAction::DirectResponse(status, body) => {
            let mut r = reply(status, body.unwrap_or(""), ResponseFlags::empty());
            hit.apply_response_headers_with(&mut r.headers, &request_info(cx, parts.version));
            return Err(local_reply(cx, r));
        }
        HitAction::ClusterNotFound(status) => {
            return Err(local_reply(
                cx,
                reply(status, "", ResponseFlags::NO_CLUSTER_FOUND),
            ));
        }
    };
    let cluster_name = fwd.cluster(&*parts);
    if let Some(log) = &mut cx.log {
        log.upstream_cluster = Some(cluster_name.to_owned());
    }
    let Some(cluster) = cx.snapshot.value.clusters.get(cluster_name).cloned() else {
        let status = StatusCode::from_u16(fwd.action().cluster_not_found_response_code)
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Err(local_reply(
            cx,
            reply(status, "", ResponseFlags::NO_CLUSTER_FOUND),
        ));
    };

    // Upgrades (WebSocket) pass only when the connection manager or the route allows them.
    let upgrade = headers::requested_upgrade(&parts.headers);
    if let Some(kind) = &upgrade
        && !upgrade_allowed(cx, &fwd, kind)
    {
        return Err(local_reply(
            cx,
            reply(StatusCode::FORBIDDEN, "", ResponseFlags::empty()),
        ));
    }

    // max_requests: a request over the limit fails fast (503, x-envoy-overloaded, UO).
    let limits = Arc::clone(cluster.lb.breakers(fwd.action().priority));
    let rq_slot = match limits.try_request() {
        Ok(p) => p,
        Err(o) => {
            return Err(failure(
                cx,
                &cluster,
                crate::Error::new(Kind::Overflow, Some(o.into())),
            ));
        }
    };

    // Consistent-hash clusters pick by the route's hash policies (random without a key).
    let mut set_cookie = None;
    let mut pick = PickContext::new(random);
    if cluster.lb.policy().uses_hash()
        && let Some(policies) = chain.hash_policies(hit.virtual_host().index(), hit.route_index())
    {
        let h = policies.hash(&*parts, Some(cx.filter_cx.downstream_remote().ip()));
        pick = pick.with_hash(h.hash);
        set_cookie = h.set_cookie;
    }
    // A trusted x-envoy-upstream-rq-timeout-ms replaces the route timeout (external requests
    // lost the header in sanitizing); 0 disables it. The alt-response header turns the 504
    // into a 204.
    let envoy_headers = retry::has_envoy_headers(&parts.headers);
    let (timeout, alt_response) = timeout::route_timeout(
        fwd.action().effective_timeout(),
        &mut parts.headers,
        envoy_headers,
    );
    cx.timeout_alt_response |= alt_response;
    // Retry headers are consumed (and removed) even when nothing will be retried.
    let retry_rt = chain
        .route_rt(hit.virtual_host().index(), hit.route_index())
        .and_then(|r| r.retry.as_ref());
    let mut retry = Retry::new(retry_rt, hit.hedge_policy(), parts, timeout, envoy_headers);
    if let Some(t) = timeout
        && !cx.chain.hcm.suppress_envoy_headers
    {
        timeout::tell_upstream(&mut parts.headers, t);
    }
    if upgrade.is_some() {
        retry = None;
    }
    Ok(Decision {
        hit,
        fwd,
        cluster,
        upgrade,
        limits,
        rq_slot,
        pick,
        set_cookie,
        timeout,
        retry,
    })
}
