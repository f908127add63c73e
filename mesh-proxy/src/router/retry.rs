//! Retries as Envoy's router does them (SEMANTICS.md §3.10): which results are retried, how
//! many times, with what backoff, and the request body kept for replay.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, StatusCode};
use http_body_util::BodyExt;
use mesh_core::config::{HedgePolicy, RetryPolicy};

use crate::body::{self, ProxyBody};
use crate::error::Kind;

pub(crate) static X_ENVOY_RETRY_ON: HeaderName = HeaderName::from_static("x-envoy-retry-on");
pub(crate) static X_ENVOY_RETRY_GRPC_ON: HeaderName =
    HeaderName::from_static("x-envoy-retry-grpc-on");
pub(crate) static X_ENVOY_MAX_RETRIES: HeaderName = HeaderName::from_static("x-envoy-max-retries");
pub(crate) static X_ENVOY_RETRIABLE_STATUS_CODES: HeaderName =
    HeaderName::from_static("x-envoy-retriable-status-codes");
pub(crate) static X_ENVOY_RETRIABLE_HEADER_NAMES: HeaderName =
    HeaderName::from_static("x-envoy-retriable-header-names");
pub(crate) static X_ENVOY_PER_TRY_TIMEOUT: HeaderName =
    HeaderName::from_static("x-envoy-upstream-rq-per-try-timeout-ms");
pub(crate) static X_ENVOY_HEDGE_ON_PER_TRY_TIMEOUT: HeaderName =
    HeaderName::from_static("x-envoy-hedge-on-per-try-timeout");
pub(crate) static X_ENVOY_ATTEMPT_COUNT: HeaderName =
    HeaderName::from_static("x-envoy-attempt-count");

/// Envoy's default retry backoff base.
const DEFAULT_BASE: Duration = Duration::from_millis(25);

#[derive(Debug, Default, Clone, Copy)]
struct On {
    five_xx: bool,
    gateway_error: bool,
    reset: bool,
    connect_failure: bool,
    retriable_4xx: bool,
    retriable_status_codes: bool,
    retriable_headers: bool,
    grpc: [bool; 5],
}

/// gRPC codes for `cancelled`, `deadline-exceeded`, `resource-exhausted`, `internal`,
/// `unavailable`.
const GRPC: [(&str, &str); 5] = [
    ("cancelled", "1"),
    ("deadline-exceeded", "4"),
    ("resource-exhausted", "8"),
    ("internal", "13"),
    ("unavailable", "14"),
];

impl On {
    fn parse(&mut self, list: &str) {
        for t in list.split(',').map(str::trim) {
            match t {
                "5xx" => self.five_xx = true,
                "gateway-error" => self.gateway_error = true,
                "reset" | "reset-before-request" | "refused-stream" => self.reset = true,
                "connect-failure" => self.connect_failure = true,
                "retriable-4xx" => self.retriable_4xx = true,
                "retriable-status-codes" => self.retriable_status_codes = true,
                "retriable-headers" => self.retriable_headers = true,
                t => {
                    if let Some(i) = GRPC.iter().position(|(name, _)| *name == t) {
                        self.grpc[i] = true;
                    }
                    // Unknown tokens are ignored, as Envoy does.
                }
            }
        }
    }

    fn any(&self) -> bool {
        self.five_xx
            || self.gateway_error
            || self.reset
            || self.connect_failure
            || self.retriable_4xx
            || self.retriable_status_codes
            || self.retriable_headers
            || self.grpc.iter().any(|g| *g)
    }
}

/// A route's retry policy, compiled once per config: the parsed `retry_on`, the status
/// codes, the header matchers and the backoff.
#[derive(Debug)]
pub(crate) struct RetryRt {
    on: On,
    num_retries: u32,
    codes: Vec<u16>,
    header_matchers: Vec<mesh_route::HeaderMatch>,
    /// `retriable_request_headers`: only matching requests are retried.
    request_matchers: Vec<mesh_route::HeaderMatch>,
    base: Duration,
    max: Option<Duration>,
    per_try: Option<Duration>,
    per_try_idle: Option<Duration>,
    previous_hosts: bool,
    host_attempts: u32,
}

impl RetryRt {
    /// Compiles `p` (matchers that do not compile are dropped; validation reported them).
    pub(crate) fn new(p: &RetryPolicy) -> Self {
        let mut on = On::default();
        on.parse(&p.retry_on);
        let matchers = |ms: &[mesh_core::config::HeaderMatcher]| {
            ms.iter()
                .filter_map(|m| mesh_route::HeaderMatch::new(m).ok())
                .collect()
        };
        let base = p.retry_back_off.map_or(DEFAULT_BASE, |b| {
            b.base_interval.max(Duration::from_millis(1))
        });
        Self {
            on,
            num_retries: p.num_retries,
            codes: p.retriable_status_codes.clone(),
            header_matchers: matchers(&p.retriable_headers),
            request_matchers: matchers(&p.retriable_request_headers),
            base,
            max: p.retry_back_off.and_then(|b| b.max_interval),
            per_try: p.per_try_timeout.filter(|d| !d.is_zero()),
            per_try_idle: p.per_try_idle_timeout.filter(|d| !d.is_zero()),
            previous_hosts: p
                .retry_host_predicate
                .iter()
                .any(|n| n == "envoy.retry_host_predicates.previous_hosts"),
            host_attempts: p.host_selection_retry_max_attempts,
        }
    }
}

/// The retry state of one request.
#[derive(Debug)]
pub(crate) struct Retry<'a> {
    rt: Option<&'a RetryRt>,
    on: On,
    pub(crate) remaining: u32,
    /// Codes from `x-envoy-retriable-status-codes`, beside the policy's.
    extra_codes: Vec<u16>,
    /// Names from `x-envoy-retriable-header-names`.
    header_names: Vec<HeaderName>,
    max: Duration,
    interval: Duration,
    /// Per-try timeout (none when unset or not below the global timeout).
    pub(crate) per_try: Option<Duration>,
    /// `hedge_on_per_try_timeout`: a per-try timeout starts another attempt and leaves the
    /// late one running; the first good response wins.
    pub(crate) hedge: bool,
}

/// The trusted `x-envoy-*` retry headers of a request (removed from it).
#[derive(Default)]
struct RetryHeaders {
    retry_on: Option<String>,
    grpc_on: Option<String>,
    max_retries: Option<u32>,
    codes: Option<String>,
    names: Option<String>,
    per_try: Option<Duration>,
    hedge: Option<String>,
}

impl RetryHeaders {
    /// `any`: whether the request may have any (see [`has_envoy_headers`]).
    fn take(headers: &mut HeaderMap, any: bool) -> Self {
        if !any {
            return Self::default();
        }
        let mut take = |n: &HeaderName| {
            headers
                .remove(n)
                .and_then(|v| v.to_str().ok().map(str::to_owned))
        };
        Self {
            retry_on: take(&X_ENVOY_RETRY_ON),
            grpc_on: take(&X_ENVOY_RETRY_GRPC_ON),
            max_retries: take(&X_ENVOY_MAX_RETRIES).and_then(|v| v.trim().parse().ok()),
            codes: take(&X_ENVOY_RETRIABLE_STATUS_CODES),
            names: take(&X_ENVOY_RETRIABLE_HEADER_NAMES),
            per_try: take(&X_ENVOY_PER_TRY_TIMEOUT)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_millis),
            hedge: take(&X_ENVOY_HEDGE_ON_PER_TRY_TIMEOUT),
        }
    }
}

/// Whether any header is an `x-envoy-*` one. Most requests carry none (sanitizing removes
/// them from external ones): one pass over the names saves a lookup per control header.
pub(crate) fn has_envoy_headers(headers: &HeaderMap) -> bool {
    headers.keys().any(|k| k.as_str().starts_with("x-envoy-"))
}

impl<'a> Retry<'a> {
    /// The request's retry state: the route's (or vhost's) compiled policy, with the trusted
    /// `x-envoy-*` headers merged in (they only survive header sanitizing on internal
    /// requests). `None` when nothing may be retried. The headers are removed either way.
    /// `envoy_headers` says whether the request may have any ([`has_envoy_headers`]).
    pub(crate) fn new(
        rt: Option<&'a RetryRt>,
        hedge: Option<&HedgePolicy>,
        parts: &mut http::request::Parts,
        global_timeout: Option<Duration>,
        envoy_headers: bool,
    ) -> Option<Self> {
        let h = RetryHeaders::take(&mut parts.headers, envoy_headers);
        let mut on = rt.map(|r| r.on).unwrap_or_default();
        if let Some(v) = &h.retry_on {
            on.parse(v);
        }
        if let Some(v) = &h.grpc_on {
            on.parse(v);
        }
        if !on.any() {
            return None;
        }
        // With retriable_request_headers, only requests matching one of them are retried.
        if let Some(r) = rt.filter(|r| !r.request_matchers.is_empty())
            && !r.request_matchers.iter().any(|m| m.matches(parts))
        {
            return None;
        }
        let header_names = h
            .names
            .map(|names| {
                names
                    .split(',')
                    .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
                    .collect()
            })
            .unwrap_or_default();
        let extra_codes = h
            .codes
            .map(|c| c.split(',').filter_map(|c| c.trim().parse().ok()).collect())
            .unwrap_or_default();
        let base = rt.map_or(DEFAULT_BASE, |r| r.base);
        let max = rt.and_then(|r| r.max).unwrap_or(base * 10).max(base);
        let per_try = h
            .per_try
            .filter(|d| !d.is_zero())
            .or_else(|| rt.and_then(|r| r.per_try))
            // Ignored when not below the global timeout (SEMANTICS §3.9).
            .filter(|d| global_timeout.is_none_or(|g| *d < g));
        Some(Self {
            rt,
            on,
            remaining: h
                .max_retries
                .unwrap_or_else(|| rt.map_or(1, |r| r.num_retries)),
            extra_codes,
            header_names,
            max,
            interval: base,
            per_try,
            // The trusted header wins over the route's policy, as in Envoy.
            hedge: match h.hedge.as_deref().map(str::trim) {
                Some("true") => true,
                Some("false") => false,
                _ => hedge.is_some_and(|h| h.hedge_on_per_try_timeout),
            },
        })
    }

    /// Per-try idle timeout: an attempt with no response progress for this long is reset.
    pub(crate) fn per_try_idle(&self) -> Option<Duration> {
        self.rt.and_then(|r| r.per_try_idle)
    }

    /// Extra picks to avoid hosts already tried (`envoy.retry_host_predicates.previous_hosts`
    /// with `host_selection_retry_max_attempts`); 0 without the predicate.
    pub(crate) fn host_reselects(&self) -> u32 {
        self.rt
            .filter(|r| r.previous_hosts)
            .map_or(0, |r| r.host_attempts)
    }

    /// Whether a response should be retried.
    pub(crate) fn retriable_response(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        let s = status.as_u16();
        let codes = self.rt.map_or(&[][..], |r| &r.codes[..]);
        let header_matchers = self.rt.map_or(&[][..], |r| &r.header_matchers[..]);
        let retriable = (self.on.five_xx && status.is_server_error())
            || (self.on.gateway_error && matches!(s, 502..=504))
            || (self.on.retriable_4xx && s == 409)
            || (self.on.retriable_status_codes
                && (codes.contains(&s) || self.extra_codes.contains(&s)))
            || (self.on.retriable_headers
                && (header_matchers.iter().any(|m| m.matches_headers(headers))
                    || self.header_names.iter().any(|n| headers.contains_key(n))))
            || (self.on.grpc.iter().any(|g| *g)
                && headers
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|g| {
                        GRPC.iter()
                            .zip(self.on.grpc)
                            .any(|((_, code), on)| on && *code == g.trim())
                    }));
        // A rate-limited answer is never retried.
        retriable && !headers.contains_key("x-envoy-ratelimited")
    }

    /// Whether a failure before a response should be retried (breaker overflow never is).
    pub(crate) fn retriable_error(&self, kind: Kind, per_try_timeout: bool) -> bool {
        let reset = self.on.five_xx || self.on.gateway_error || self.on.reset;
        match kind {
            Kind::Overflow => false,
            _ if per_try_timeout => reset,
            Kind::UpstreamConnect | Kind::UpstreamConnectTimeout => {
                reset || self.on.connect_failure
            }
            Kind::Upstream => reset,
            _ => false,
        }
    }

    /// The next backoff: uniform in `[0, interval)` ms with the interval doubling up to the cap
    /// (Envoy's full jitter, SEMANTICS §3.10).
    pub(crate) fn next_backoff(&mut self, random: u64) -> Duration {
        let ms = u64::try_from(self.interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.interval = (self.interval * 2).min(self.max);
        Duration::from_millis(random % ms)
    }
}

/// A request body kept for replay, or streamed once when it was too large to keep.
#[derive(Debug)]
pub(crate) enum Replay {
    /// The whole body.
    Whole(Bytes),
    /// Too large: the part read, then the rest; cannot be retried.
    Once(ProxyBody),
}

impl Replay {
    /// Reads `b` up to `limit` bytes.
    pub(crate) async fn read(mut b: ProxyBody, limit: usize) -> Replay {
        if http_body::Body::is_end_stream(&b) {
            return Replay::Whole(Bytes::new());
        }
        let mut buf = BytesMut::new();
        loop {
            match b.frame().await {
                None => return Replay::Whole(buf.freeze()),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        buf.extend_from_slice(&data);
                        if buf.len() > limit {
                            let head = http_body_util::Full::new(buf.freeze())
                                .map_err(|never| match never {});
                            let chained = http_body_util::BodyExt::boxed(Chain {
                                head: Some(head),
                                rest: b,
                            });
                            return Replay::Once(chained);
                        }
                    }
                    // Trailers are dropped from replayed bodies.
                }
                Some(Err(_)) => return Replay::Whole(buf.freeze()),
            }
        }
    }

    /// A body for one attempt.
    pub(crate) fn body(&self) -> Option<ProxyBody> {
        match self {
            Replay::Whole(b) if b.is_empty() => Some(body::empty()),
            Replay::Whole(b) => Some(body::full(b.clone())),
            Replay::Once(_) => None,
        }
    }
}

/// The read part of a body followed by the rest.
struct Chain<H> {
    head: Option<H>,
    rest: ProxyBody,
}

impl<H> http_body::Body for Chain<H>
where
    H: http_body::Body<Data = Bytes, Error = mesh_core::BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = mesh_core::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Some(h) = &mut self.head {
            match std::pin::Pin::new(h).poll_frame(cx) {
                std::task::Poll::Ready(None) => self.head = None,
                other => return other,
            }
        }
        std::pin::Pin::new(&mut self.rest).poll_frame(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(h: HeaderMap) -> http::request::Parts {
        let (mut p, ()) = http::Request::get("/").body(()).unwrap().into_parts();
        p.headers = h;
        p
    }

    /// A compiled policy that lives for the test.
    fn rt(p: &RetryPolicy) -> &'static RetryRt {
        Box::leak(Box::new(RetryRt::new(p)))
    }

    fn policy(on: &str) -> RetryPolicy {
        RetryPolicy {
            retry_on: on.into(),
            num_retries: 2,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn conditions() {
        let h = HeaderMap::new();
        let r = Retry::new(
            Some(rt(&policy("gateway-error,retriable-4xx,unavailable"))),
            None,
            &mut parts(HeaderMap::new()),
            None,
            true,
        )
        .unwrap();
        assert!(r.retriable_response(StatusCode::BAD_GATEWAY, &h));
        assert!(!r.retriable_response(StatusCode::INTERNAL_SERVER_ERROR, &h));
        assert!(r.retriable_response(StatusCode::CONFLICT, &h));
        let mut g = HeaderMap::new();
        g.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert!(r.retriable_response(StatusCode::OK, &g));
        assert!(r.retriable_error(Kind::UpstreamConnect, false));
        assert!(!r.retriable_error(Kind::Overflow, false));
        assert!(
            Retry::new(
                Some(rt(&policy(""))),
                None,
                &mut parts(HeaderMap::new()),
                None,
                true,
            )
            .is_none()
        );
    }

    #[test]
    fn retriable_headers_and_request_conditions() {
        use mesh_core::config::HeaderMatcher;
        let mut p = policy("retriable-headers");
        p.retriable_headers
            .push(HeaderMatcher::exact("x-upstream-retry", "yes"));
        let mut req = HeaderMap::new();
        req.insert(
            "x-envoy-retriable-header-names",
            http::HeaderValue::from_static("x-try-again"),
        );
        let r = Retry::new(Some(rt(&p)), None, &mut parts(req), None, true).unwrap();
        let mut resp = HeaderMap::new();
        assert!(!r.retriable_response(StatusCode::OK, &resp));
        resp.insert("x-upstream-retry", http::HeaderValue::from_static("yes"));
        assert!(r.retriable_response(StatusCode::OK, &resp));
        let mut resp = HeaderMap::new();
        resp.insert("x-try-again", http::HeaderValue::from_static("1"));
        assert!(r.retriable_response(StatusCode::OK, &resp));

        let mut p = policy("5xx");
        p.retriable_request_headers
            .push(HeaderMatcher::exact(":method", "POST"));
        assert!(
            Retry::new(Some(rt(&p)), None, &mut parts(HeaderMap::new()), None, true).is_none(),
            "a GET matches none of the retriable request headers"
        );
        p.retriable_request_headers
            .push(HeaderMatcher::exact(":method", "GET"));
        assert!(Retry::new(Some(rt(&p)), None, &mut parts(HeaderMap::new()), None, true).is_some());
    }

    #[test]
    fn headers_merge_and_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("x-envoy-retry-on", http::HeaderValue::from_static("5xx"));
        h.insert("x-envoy-max-retries", http::HeaderValue::from_static("4"));
        let mut p = parts(h);
        let r = Retry::new(None, None, &mut p, None, true).unwrap();
        assert_eq!(r.remaining, 4);
        assert!(r.retriable_response(StatusCode::SERVICE_UNAVAILABLE, &p.headers));
        assert!(p.headers.is_empty());
    }

    #[test]
    fn the_hedge_header_overrides_the_policy_and_is_removed() {
        let on = HedgePolicy {
            hedge_on_per_try_timeout: true,
        };
        let with = |v: Option<&'static str>, policy: Option<&HedgePolicy>| {
            let mut h = HeaderMap::new();
            if let Some(v) = v {
                h.insert(
                    "x-envoy-hedge-on-per-try-timeout",
                    http::HeaderValue::from_static(v),
                );
            }
            let mut p = parts(h);
            let r = Retry::new(Some(rt(&self::policy("5xx"))), policy, &mut p, None, true).unwrap();
            assert!(p.headers.is_empty());
            r.hedge
        };
        assert!(!with(None, None));
        assert!(with(None, Some(&on)));
        assert!(with(Some("true"), None));
        assert!(!with(Some("false"), Some(&on)));
        assert!(with(Some("junk"), Some(&on)));
    }

    #[test]
    fn backoff_is_full_jitter_doubling_to_ten_times_base() {
        let mut r = Retry::new(
            Some(rt(&policy("5xx"))),
            None,
            &mut parts(HeaderMap::new()),
            None,
            true,
        )
        .unwrap();
        // With the largest random value, each wait is just under the current interval.
        let waits: Vec<u64> = (0..6)
            .map(|_| r.next_backoff(u64::MAX - 1).as_millis() as u64)
            .collect();
        let caps = [25, 50, 100, 200, 250, 250];
        for (w, c) in waits.iter().zip(caps) {
            assert!(*w < c, "{waits:?}");
        }
    }

    #[test]
    fn per_try_timeouts_not_below_the_global_one_are_ignored() {
        let mut h = parts(HeaderMap::new());
        let mut p = policy("5xx");
        p.per_try_timeout = Some(Duration::from_secs(20));
        assert_eq!(
            Retry::new(
                Some(rt(&p)),
                None,
                &mut h,
                Some(Duration::from_secs(15)),
                true
            )
            .unwrap()
            .per_try,
            None
        );
        p.per_try_timeout = Some(Duration::from_secs(1));
        assert_eq!(
            Retry::new(
                Some(rt(&p)),
                None,
                &mut h,
                Some(Duration::from_secs(15)),
                true
            )
            .unwrap()
            .per_try,
            Some(Duration::from_secs(1))
        );
    }
}
