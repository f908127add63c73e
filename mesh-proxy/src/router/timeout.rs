//! The router's timeouts (SEMANTICS §3.9): the route's global timeout and what a trusted
//! request may say about it, the per-try limit, and the timer that runs from the end of the
//! downstream request.

use std::sync::Arc;
use std::time::Duration;

use crate::body::Exchange;
use crate::headers;

static X_ENVOY_RQ_TIMEOUT: http::HeaderName =
    http::HeaderName::from_static("x-envoy-upstream-rq-timeout-ms");
static X_ENVOY_TIMEOUT_ALT: http::HeaderName =
    http::HeaderName::from_static("x-envoy-upstream-rq-timeout-alt-response");
static X_ENVOY_EXPECTED_TIMEOUT: http::HeaderName =
    http::HeaderName::from_static("x-envoy-expected-rq-timeout-ms");

/// Removes a header and returns its value as text.
fn take_header(h: &mut http::HeaderMap, n: &http::HeaderName) -> Option<String> {
    h.remove(n).and_then(|v| v.to_str().ok().map(str::to_owned))
}

/// The route's timeout for this request, and whether a timeout should answer 204: a trusted
/// request's `x-envoy-upstream-rq-timeout-ms` replaces `route` (0 disables it), and its
/// `x-envoy-upstream-rq-timeout-alt-response` asks for the 204. Both headers are removed.
/// `trusted` says whether the request may carry Envoy's headers at all (an external request
/// lost them when the connection manager sanitized it).
pub(super) fn route_timeout(
    route: Option<Duration>,
    headers: &mut http::HeaderMap,
    trusted: bool,
) -> (Option<Duration>, bool) {
    if !trusted {
        return (route, false);
    }
    let timeout = match take_header(headers, &X_ENVOY_RQ_TIMEOUT)
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        Some(ms) => (ms > 0).then(|| Duration::from_millis(ms)),
        None => route,
    };
    let alt = take_header(headers, &X_ENVOY_TIMEOUT_ALT).is_some();
    (timeout, alt)
}

/// Tells the upstream the time it has (`x-envoy-expected-rq-timeout-ms`).
pub(super) fn tell_upstream(h: &mut http::HeaderMap, t: Duration) {
    h.insert(
        X_ENVOY_EXPECTED_TIMEOUT.clone(),
        headers::generated_u64(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
    );
}

/// An attempt's limit before its response starts: the shorter of the per-try timeout and the
/// per-try idle timeout.
pub(super) fn per_try(per_try: Option<Duration>, idle: Option<Duration>) -> Option<Duration> {
    match (per_try, idle) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Completes when the route's global timeout expires: `timeout` after the downstream request
/// is complete; never when the timeout is disabled.
pub(super) async fn global(timeout: Option<(Duration, Arc<Exchange>)>) {
    let Some((t, exchange)) = timeout else {
        return std::future::pending().await;
    };
    let at = exchange.request_done().await;
    tokio::time::sleep_until(at + t).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(headers: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn trusted_headers_replace_or_disable_the_route_timeout() {
        let route = Some(Duration::from_secs(15));
        let mut h = with(&[("x-envoy-upstream-rq-timeout-ms", "250")]);
        assert_eq!(
            route_timeout(route, &mut h, true),
            (Some(Duration::from_millis(250)), false)
        );
        assert!(h.is_empty(), "the header is consumed");
        let mut h = with(&[("x-envoy-upstream-rq-timeout-ms", "0")]);
        assert_eq!(
            route_timeout(route, &mut h, true),
            (None, false),
            "0 disables"
        );
        let mut h = with(&[("x-envoy-upstream-rq-timeout-ms", "soon")]);
        assert_eq!(
            route_timeout(route, &mut h, true),
            (route, false),
            "unreadable: ignored"
        );
        let mut h = with(&[("x-envoy-upstream-rq-timeout-alt-response", "")]);
        assert_eq!(route_timeout(route, &mut h, true), (route, true));
        let mut h = with(&[("x-envoy-upstream-rq-timeout-ms", "1")]);
        assert_eq!(
            route_timeout(route, &mut h, false),
            (route, false),
            "untrusted"
        );
    }

    #[test]
    fn the_per_try_limit_is_the_shorter_one() {
        let s = Duration::from_secs;
        assert_eq!(per_try(Some(s(2)), Some(s(1))), Some(s(1)));
        assert_eq!(per_try(None, Some(s(3))), Some(s(3)));
        assert_eq!(per_try(Some(s(2)), None), Some(s(2)));
        assert_eq!(per_try(None, None), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_global_timer_runs_from_the_end_of_the_request() {
        let start = tokio::time::Instant::now();
        let ex = Arc::new(Exchange::new(start, false));
        let timer = tokio::spawn(global(Some((Duration::from_secs(5), Arc::clone(&ex)))));
        // The request body takes 3 s; the 5 s start then.
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(crate::body::Tracked::new(crate::body::empty()).request_of(ex));
        timer.await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(8));
    }
}
