//! The attempt loop (SEMANTICS §3.10): picks a host, sends, waits for the response, a
//! per-try timeout, a retry's backoff or the global timeout, and decides what each outcome
//! leads to. Normally one attempt runs at a time; with hedging, a per-try timeout starts
//! another attempt beside the late one, and the first response that is not retried wins.
//! The loop owns its state ([`Attempts`]); dropping it cancels whatever is still in flight.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode, Uri};
use mesh_core::flags::ResponseFlags;
use mesh_lb::PickContext;
use mesh_lb::breaker::{Limits, Permit};
use mesh_route::{Forward, Hit};
use tokio::time::Instant;

use super::retry::{Replay, Retry, X_ENVOY_ATTEMPT_COUNT};
use super::{
    SendResult, X_ENVOY_IS_TIMEOUT_RETRY, build_request, downstream_failure, failure, outcome,
    send, timeout,
};
use crate::body::{self, ProxyBody};
use crate::compile::ClusterRt;
use crate::conn_manager::{RequestCtx, local_reply, reply};
use crate::error::Kind;
use crate::upstream::HostPool;

/// Where a request's attempts go: the routing decision's parts the loop reads.
pub(super) struct Target<'r, 'h> {
    pub(super) hit: &'r Hit<'h>,
    pub(super) fwd: &'r Forward<'h>,
    pub(super) cluster: &'r Arc<ClusterRt>,
    pub(super) limits: &'r Arc<Limits>,
    pub(super) pick: PickContext,
    /// The request asks for an upgrade (never retried).
    pub(super) upgrade: bool,
}

/// How the loop ended. Returned once per request, by value: boxing the larger variant would
/// cost an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Settled {
    /// The attempt whose result stands: a response to forward, or the error to answer.
    Done {
        pool: Arc<HostPool>,
        result: SendResult,
        sent_at: Instant,
        /// Attempts started, this one included.
        attempts: u32,
        /// The host's active-request count, held until the caller is done.
        active: mesh_lb::ActiveRequest,
    },
    /// The request ends with this local reply (no healthy host, the global timeout, the
    /// downstream body failed).
    Reply(Response<ProxyBody>),
}

/// The attempt loop's state.
pub(super) struct Attempts<'r, 'h> {
    t: Target<'r, 'h>,
    retry: Option<Retry<'h>>,
    /// The request head, taken by the first attempt.
    parts: Parts,
    /// The body when it is not kept for replay (sent once).
    once_body: Option<ProxyBody>,
    replay: Option<&'r Replay>,
    /// The head a retry rebuilds its request from.
    snapshot: Option<HeadSnapshot>,
    hedge: bool,
    /// The per-try limit before a response starts.
    per_try: Option<Duration>,
    /// Attempts started.
    attempt: u32,
    /// Hosts tried so far, for previous_hosts (only a retried request needs them).
    tried: Tried,
    retry_slots: Vec<Permit>,
    /// One inline: a request that is not hedged never has more, and a `Vec` would cost it an
    /// allocation.
    in_flight: smallvec::SmallVec<[Attempt; 1]>,
    backoff: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The pending retry follows a per-try timeout.
    timeout_retry: bool,
}

impl<'r, 'h> Attempts<'r, 'h> {
    pub(super) fn new(
        t: Target<'r, 'h>,
        retry: Option<Retry<'h>>,
        parts: Parts,
        once_body: Option<ProxyBody>,
        replay: Option<&'r Replay>,
    ) -> Self {
        let hedge = retry.as_ref().is_some_and(|r| r.hedge) && replay.is_some();
        // The first attempt takes the request head; a retry rebuilds it from this snapshot.
        let snapshot = retry.as_ref().and(replay).map(|_| HeadSnapshot::of(&parts));
        // The per-try timeout, and the per-try idle timeout while no response has come.
        let per_try = timeout::per_try(
            retry.as_ref().and_then(|r| r.per_try),
            retry.as_ref().and_then(Retry::per_try_idle),
        );
        Self {
            t,
            retry,
            parts,
            once_body,
            replay,
            snapshot,
            hedge,
            per_try,
            attempt: 0,
            tried: Tried::default(),
            retry_slots: Vec::new(),
            in_flight: smallvec::SmallVec::new(),
            backoff: None,
            timeout_retry: false,
        }
    }

    fn done(&self, a: Attempt, result: SendResult) -> Settled {
        Settled::Done {
            pool: a.pool,
            result,
            sent_at: a.sent_at,
            attempts: self.attempt,
            active: a.active,
        }
    }

    /// Runs attempts until one result stands or the request ends here; `global` is the
    /// route's global timer.
    pub(super) async fn run(
        &mut self,
        cx: &mut RequestCtx,
        mut global: Pin<&mut impl Future<Output = ()>>,
    ) -> Settled {
        let mut start = true;
        loop {
            if std::mem::take(&mut start) {
                self.attempt += 1;
                let picked = match &self.t.cluster.original_dst {
                    // ORIGINAL_DST: where the downstream connection was going.
                    Some(hosts) => {
                        let e = hosts.get(cx.filter_cx.downstream_local());
                        Some((NO_INDEX, Arc::clone(&e.host), Arc::clone(&e.pool)))
                    }
                    None => pick_host(
                        self.t.cluster,
                        &self.t.pick.with_attempt(self.attempt - 1),
                        &self.t.fwd.action().metadata_match,
                        &self.tried,
                        self.retry.as_ref(),
                    )
                    .map(|i| {
                        let c = self.t.cluster;
                        (i, Arc::clone(&c.lb.hosts()[i]), Arc::clone(&c.pools[i]))
                    }),
                };
                let Some((index, host, pool)) = picked else {
                    if !self.in_flight.is_empty() {
                        // A hedged attempt is still running: it may yet answer.
                        continue;
                    }
                    self.t.cluster.stats.no_healthy.inc();
                    return Settled::Reply(local_reply(
                        cx,
                        reply(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "no healthy upstream",
                            ResponseFlags::NO_HEALTHY_UPSTREAM,
                        ),
                    ));
                };
                if self.retry.is_some() {
                    self.tried.push(index);
                }
                if let Some(log) = &mut cx.log {
                    log.upstream_host = Some(pool.address().to_string());
                }
                let (p, body) = match self.replay {
                    Some(r) => (
                        match &self.snapshot {
                            Some(s) if self.attempt > 1 => s.parts(),
                            _ => parts_take(&mut self.parts),
                        },
                        r.body().unwrap_or_else(body::empty),
                    ),
                    None => (
                        parts_take(&mut self.parts),
                        self.once_body.take().unwrap_or_else(body::empty),
                    ),
                };
                let mut upstream_req = build_request(
                    cx,
                    self.t.hit,
                    self.t.fwd,
                    self.t.cluster,
                    &host,
                    p,
                    body,
                    self.t.upgrade,
                );
                if self
                    .t
                    .hit
                    .virtual_host()
                    .config()
                    .include_request_attempt_count
                {
                    upstream_req.headers_mut().insert(
                        X_ENVOY_ATTEMPT_COUNT.clone(),
                        HeaderValue::from(self.attempt),
                    );
                }
                // A retry after a per-try timeout says so upstream (Envoy's
                // x-envoy-is-timeout-retry), unless Envoy's headers are suppressed.
                if self.timeout_retry && !cx.chain.hcm.suppress_envoy_headers {
                    upstream_req.headers_mut().insert(
                        X_ENVOY_IS_TIMEOUT_RETRY.clone(),
                        HeaderValue::from_static("true"),
                    );
                }
                if !cx.chain.filters.is_empty() {
                    // Filters that look at (or change) the request the picked host gets.
                    let (mut head, body) = upstream_req.into_parts();
                    let info = mesh_core::filter::UpstreamInfo::new(
                        &self.t.cluster.config.name,
                        pool.address(),
                        self.attempt,
                    );
                    for f in &cx.chain.filters {
                        f.on_upstream_request(&mut head, &info);
                    }
                    upstream_req = http::Request::from_parts(head, body);
                }
                self.t.cluster.stats.rq_total.inc();
                self.t.cluster.stats.rq_active.inc();
                let send = send(cx, &pool, self.t.limits, upstream_req, self.t.upgrade);
                self.in_flight.push(Attempt {
                    index,
                    active: host.start_request(),
                    sent_at: Instant::now(),
                    send,
                    per_try: self.per_try.map(|d| Box::pin(tokio::time::sleep(d))),
                    hedged: false,
                    pool,
                });
            }

            let event = std::future::poll_fn(|tcx| {
                for (i, a) in self.in_flight.iter_mut().enumerate() {
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
                if let Some(b) = &mut self.backoff
                    && b.as_mut().poll(tcx).is_ready()
                {
                    self.backoff = None;
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
                    for a in self.in_flight.drain(..) {
                        self.t.cluster.stats.rq_active.dec();
                        if !a.hedged {
                            outcome::report_outlier(cx, self.t.cluster, a.index, &timeout());
                        }
                        outcome::record_host(&a.pool, outcome::HostResult::Timeout);
                    }
                    return Settled::Reply(failure(
                        cx,
                        self.t.cluster,
                        crate::Error::new(Kind::Timeout, None),
                    ));
                }
                Event::PerTry(i) => {
                    self.t.cluster.stats.rq_per_try_timeout.inc();
                    if self.hedge {
                        // Hedging: the late attempt keeps running; its host is charged the
                        // timeout now, and another attempt starts if the policy allows one.
                        let a = &mut self.in_flight[i];
                        a.hedged = true;
                        let index = a.index;
                        outcome::report_outlier(
                            cx,
                            self.t.cluster,
                            index,
                            &Err(crate::Error::new(Kind::Timeout, None)),
                        );
                        if self.backoff.is_some() {
                            continue; // a retry is already on its way
                        }
                        if let Some(r) = self.retry.as_mut()
                            && take_retry(
                                cx,
                                self.t.cluster,
                                r,
                                self.t.limits,
                                &mut self.retry_slots,
                            )
                        {
                            self.backoff = Some(Box::pin(tokio::time::sleep(
                                r.next_backoff(cx.filter_cx.random_u64()),
                            )));
                            self.timeout_retry = true;
                            continue;
                        }
                        // No retry left: the attempt is given up, as without hedging.
                    }
                    let a = self.in_flight.swap_remove(i);
                    self.t.cluster.stats.rq_active.dec();
                    let e = crate::Error::new(Kind::Timeout, Some("per-try timeout".into()));
                    (a, Err(e), true)
                }
                Event::Done(i, r) => {
                    let a = self.in_flight.swap_remove(i);
                    self.t.cluster.stats.rq_active.dec();
                    (a, r, false)
                }
            };
            // An attempt that failed because the downstream body did is the client's fault: no
            // outlier report, no retry, no error charged to the host.
            if result.is_err()
                && let Some(fault) = cx.exchange.fault.get()
            {
                for _ in self.in_flight.drain(..) {
                    self.t.cluster.stats.rq_active.dec();
                }
                return Settled::Reply(downstream_failure(cx, fault));
            }
            // A hedged attempt's host was charged its timeout already.
            if !(a.hedged && per_try_fired) {
                outcome::report_outlier(cx, self.t.cluster, a.index, &result);
            }
            let retriable = match (&self.retry, &result) {
                (Some(r), Ok((resp, _))) => r.retriable_response(resp.status(), resp.headers()),
                (Some(r), Err(e)) => r.retriable_error(e.kind(), per_try_fired),
                (None, _) => false,
            };
            if !retriable {
                if self.attempt > 1
                    && result
                        .as_ref()
                        .is_ok_and(|(resp, _)| !resp.status().is_server_error())
                {
                    self.t.cluster.stats.rq_retry_success.inc();
                }
                return self.done(a, result);
            }
            let Some(r) = self.retry.as_mut() else {
                return self.done(a, result);
            };
            let waiting = !self.in_flight.is_empty() || self.backoff.is_some();
            if waiting || take_retry(cx, self.t.cluster, r, self.t.limits, &mut self.retry_slots) {
                // Retried, or (hedging) another attempt may still answer: this result is dropped.
                outcome::record_host(&a.pool, outcome::HostResult::Error);
                drop(result);
                if !waiting {
                    self.backoff = Some(Box::pin(tokio::time::sleep(
                        r.next_backoff(cx.filter_cx.random_u64()),
                    )));
                    self.timeout_retry = per_try_fired;
                }
                continue;
            }
            return self.done(a, result);
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

/// The index of a host that is not one of the balancer's (an `ORIGINAL_DST` cluster's).
pub(super) const NO_INDEX: usize = usize::MAX;

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
    let once = |cx: &PickContext| {
        if metadata_match.is_empty() {
            cluster.lb.pick_index_with(cx)
        } else {
            cluster.lb.pick_index_matching(metadata_match, cx)
        }
    };
    // Each retry, and each re-pick within one, draws its own random value (derived from the
    // request's, so a seeded proxy stays reproducible): with the first try's value a
    // least-request or random balancer would land on the host that just failed every time.
    let salt = 0x100 + u64::from(pick.attempt()) * 0x40;
    let mut cx = if pick.attempt() == 0 {
        *pick
    } else {
        pick.with_random(pick.random_n(salt))
    };
    let mut index = once(&cx)?;
    if let Some(r) = retry {
        for k in 0..r.host_reselects() {
            if !tried.contains(index) {
                break;
            }
            cx = cx.with_random(pick.random_n(salt + 1 + u64::from(k)));
            index = once(&cx)?;
        }
    }
    Some(index)
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
