//! Retries end to end: conditions, limits, host selection, per-try timeouts, body replay.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, StatusCode};
use mesh_core::config::*;
use mesh_core::stats::StatName;
use mesh_proxy::RunningProxy;
use mesh_proxy::body;
use mesh_proxy::test_util::{Behavior, Client, Upstream};

async fn start(
    ups: &[&Upstream],
    policy: RetryPolicy,
    vhost: impl FnOnce(&mut VirtualHost),
) -> (RunningProxy, SocketAddr) {
    let mut route = Route::prefix("/", "svc");
    if let Action::Route(a) = &mut route.action {
        a.retry_policy = Some(policy);
    }
    let mut vh = VirtualHost::new("all", ["*"]).with_route(route);
    vhost(&mut vh);
    let boot = Bootstrap::default()
        .with_listener(Listener::http(
            "http",
            "127.0.0.1:0".parse().unwrap(),
            HttpConnectionManager::with_routes(RouteConfiguration::new("r").with_virtual_host(vh)),
        ))
        .with_cluster(Cluster::new_static("svc", ups.iter().map(|u| u.addr())));
    let p = mesh_proxy::test_util::start(boot).await;
    let addr = p.listener_addr("http").unwrap();
    (p, addr)
}

fn policy(on: &str, n: u32) -> RetryPolicy {
    RetryPolicy {
        retry_on: on.into(),
        num_retries: n,
        retry_host_predicate: vec!["envoy.retry_host_predicates.previous_hosts".into()],
        host_selection_retry_max_attempts: 5,
        ..RetryPolicy::default()
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_5xx_is_retried_on_another_host() {
    let bad = Upstream::start("bad", Behavior::Status(503)).await;
    let good = Upstream::start("good", Behavior::Identify).await;
    let (p, addr) = start(&[&bad, &good], policy("5xx", 1), |_| {}).await;
    let c = Client::http1();
    for _ in 0..10 {
        let r = c.get(addr, "/", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("x-upstream"), "good");
    }
    let retries = p
        .stats()
        .counter(StatName::cluster("svc", "upstream_rq_retry"))
        .get();
    assert_eq!(
        retries as usize,
        bad.requests(),
        "each failure was retried once"
    );
    assert!(
        retries >= 4,
        "round robin sent about half the first attempts to the bad host"
    );
    assert_eq!(
        p.stats()
            .counter(StatName::cluster("svc", "upstream_rq_retry_success"))
            .get(),
        retries
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn retries_stop_at_num_retries_and_count_attempts() {
    let ups = [
        Upstream::start("a", Behavior::Status(503)).await,
        Upstream::start("b", Behavior::Status(503)).await,
        Upstream::start("c", Behavior::Status(503)).await,
    ];
    let (p, addr) = start(
        &ups.iter().collect::<Vec<_>>(),
        policy("gateway-error", 2),
        |vh| {
            vh.include_attempt_count_in_response = true;
        },
    )
    .await;
    let r = Client::http1().get(addr, "/", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("x-envoy-attempt-count"), "3");
    let hosts_hit: Vec<usize> = ups.iter().map(Upstream::requests).collect();
    assert_eq!(
        hosts_hit,
        [1, 1, 1],
        "previous_hosts spread the three attempts"
    );
    assert_eq!(
        p.stats()
            .counter(StatName::cluster("svc", "upstream_rq_retry_limit_exceeded"))
            .get(),
        1
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_third_attempt_carries_its_count_upstream() {
    let bad1 = Upstream::start("b1", Behavior::Status(500)).await;
    let bad2 = Upstream::start("b2", Behavior::Status(500)).await;
    let good = Upstream::start("good", Behavior::Identify).await;
    let (p, addr) = start(&[&bad1, &bad2, &good], policy("5xx", 2), |vh| {
        vh.include_request_attempt_count = true;
    })
    .await;
    // Wherever round robin starts, within two requests one starts at b1 and needs three
    // attempts (b1, b2, then good); every request ends on the good host.
    let mut counts = Vec::new();
    for _ in 0..2 {
        let r = Client::http1().get(addr, "/", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        counts.push(r.header("x-seen-attempt-count").to_owned());
    }
    assert!(counts.iter().any(|c| c == "3"), "{counts:?}");
    p.shutdown().await;
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    let good = Upstream::start("good", Behavior::Identify).await;
    let (refused, _reserved) = mesh_proxy::test_util::refused_addr();
    let mut route = Route::prefix("/", "svc");
    if let Action::Route(a) = &mut route.action {
        a.retry_policy = Some(policy("connect-failure", 1));
    }
    let boot = Bootstrap::default()
        .with_listener(Listener::http(
            "http",
            "127.0.0.1:0".parse().unwrap(),
            HttpConnectionManager::with_routes(
                RouteConfiguration::new("r")
                    .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(route)),
            ),
        ))
        .with_cluster(Cluster::new_static("svc", [refused, good.addr()]));
    let p = mesh_proxy::test_util::start(boot).await;
    let addr = p.listener_addr("http").unwrap();
    for _ in 0..4 {
        assert_eq!(
            Client::http1().get(addr, "/", &[]).await.status,
            StatusCode::OK
        );
    }
    p.shutdown().await;
}

/// Least request and random draw a new random value for each retry and each re-pick: with the
/// first try's value they would pick the refusing host again and again, and every request
/// that first landed there would fail after its retries.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn retries_leave_a_refusing_host_under_every_random_balancer() {
    for lb_policy in [LbPolicy::LeastRequest, LbPolicy::Random] {
        let a = Upstream::start("a", Behavior::Identify).await;
        let b = Upstream::start("b", Behavior::Identify).await;
        let (refused, _reserved) = mesh_proxy::test_util::refused_addr();
        let mut route = Route::prefix("/", "svc");
        if let Action::Route(r) = &mut route.action {
            r.retry_policy = Some(policy("connect-failure", 2));
        }
        let mut cluster = Cluster::new_static("svc", [refused, a.addr(), b.addr()]);
        cluster.lb_policy = lb_policy;
        let boot = Bootstrap::default()
            .with_listener(Listener::http(
                "http",
                "127.0.0.1:0".parse().unwrap(),
                HttpConnectionManager::with_routes(
                    RouteConfiguration::new("r")
                        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(route)),
                ),
            ))
            .with_cluster(cluster);
        let p = mesh_proxy::test_util::start(boot).await;
        let addr = p.listener_addr("http").unwrap();
        for _ in 0..60 {
            assert_eq!(
                Client::http1().get(addr, "/", &[]).await.status,
                StatusCode::OK,
                "{lb_policy:?}"
            );
        }
        let retries = p
            .stats()
            .counter(StatName::cluster("svc", "upstream_rq_retry"))
            .get();
        assert!(
            retries > 0,
            "{lb_policy:?}: the refusing host was never picked"
        );
        p.shutdown().await;
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_hung_host_hits_the_per_try_timeout_and_the_retry_succeeds() {
    let hung = Upstream::start("hung", Behavior::Stall).await;
    let good = Upstream::start("good", Behavior::Identify).await;
    let mut pol = policy("reset", 1);
    pol.per_try_timeout = Some(Duration::from_secs(1));
    let (p, addr) = start(&[&hung, &good], pol, |_| {}).await;
    // Within two requests one starts at the hung host: it waits the per-try timeout, then
    // the retry answers; no request waits longer.
    let mut waits = Vec::new();
    for _ in 0..2 {
        let started = tokio::time::Instant::now();
        let r = Client::http1().get(addr, "/", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("x-upstream"), "good");
        let waited = started.elapsed();
        // A retry after a per-try timeout says so upstream.
        let timeout_retry = if waited >= Duration::from_secs(1) {
            "true"
        } else {
            ""
        };
        assert_eq!(r.header("x-seen-timeout-retry"), timeout_retry);
        waits.push(waited);
    }
    assert!(
        waits.iter().any(|w| *w >= Duration::from_secs(1)),
        "{waits:?}"
    );
    assert!(
        waits.iter().all(|w| *w < Duration::from_secs(2)),
        "{waits:?}"
    );
    assert_eq!(hung.requests(), 1);
    p.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_route_timeout_bounds_all_attempts() {
    let hung1 = Upstream::start("h1", Behavior::Stall).await;
    let hung2 = Upstream::start("h2", Behavior::Stall).await;
    let mut pol = policy("reset", 5);
    pol.per_try_timeout = Some(Duration::from_secs(2));
    let mut route = Route::prefix("/", "svc");
    if let Action::Route(a) = &mut route.action {
        a.retry_policy = Some(pol);
        a.timeout = Some(Duration::from_secs(3));
    }
    let boot = Bootstrap::default()
        .with_listener(Listener::http(
            "http",
            "127.0.0.1:0".parse().unwrap(),
            HttpConnectionManager::with_routes(
                RouteConfiguration::new("r")
                    .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(route)),
            ),
        ))
        .with_cluster(Cluster::new_static("svc", [hung1.addr(), hung2.addr()]));
    let p = mesh_proxy::test_util::start(boot).await;
    let addr = p.listener_addr("http").unwrap();
    let started = tokio::time::Instant::now();
    let r = Client::http1().get(addr, "/", &[]).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_request_body_is_replayed_on_retry() {
    let bad = Upstream::start("bad", Behavior::Status(503)).await;
    let echo = Upstream::start("echo", Behavior::Echo).await;
    let (p, addr) = start(&[&bad, &echo], policy("5xx", 1), |_| {}).await;
    for i in 0..4 {
        let payload = format!("payload {i} {}", "x".repeat(10_000));
        let req = Request::post(format!("http://{addr}/"))
            .body(body::full(payload.clone()))
            .unwrap();
        let r = Client::http1().send(req).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.text(), payload);
    }
    assert!(bad.requests() > 0);
    p.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_response_with_a_retriable_header_is_retried() {
    // Status(200) answers with `x-upstream: <name>`, so "bad" marks its responses retriable.
    let bad = Upstream::start("bad", Behavior::Status(200)).await;
    let good = Upstream::start("good", Behavior::Identify).await;
    let mut pol = policy("retriable-headers", 1);
    pol.retriable_headers
        .push(HeaderMatcher::exact("x-upstream", "bad"));
    let (p, addr) = start(&[&bad, &good], pol, |_| {}).await;
    for _ in 0..4 {
        let r = Client::http1().get(addr, "/", &[]).await;
        assert_eq!(r.header("x-upstream"), "good");
    }
    assert!(bad.requests() > 0);
    p.shutdown().await;
}

/// Waits until one of two gated hosts has the first attempt and the other the second;
/// returns them in that order.
async fn first_then_second<'u>(a: &'u Upstream, b: &'u Upstream) -> (&'u Upstream, &'u Upstream) {
    let (first, second) = tokio::select! {
        () = a.wait_requests(1) => (a, b),
        () = b.wait_requests(1) => (b, a),
    };
    second.wait_requests(1).await;
    (first, second)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn hedging_keeps_the_late_attempt_and_takes_the_first_answer() {
    let a = Upstream::start("a", Behavior::Gated).await;
    let b = Upstream::start("b", Behavior::Gated).await;
    let mut pol = policy("5xx", 1);
    pol.per_try_timeout = Some(Duration::from_secs(1));
    let (p, addr) = start(&[&a, &b], pol, |vh| {
        vh.hedge_policy = Some(HedgePolicy {
            hedge_on_per_try_timeout: true,
        });
    })
    .await;
    let started = tokio::time::Instant::now();
    let call = tokio::spawn(async move { Client::http1().get(addr, "/", &[]).await });
    // The other host gets the hedged attempt after the per-try timeout; then only the first
    // host's gate opens.
    let (first, _second) = first_then_second(&a, &b).await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(first.requests(), 1, "the late attempt was not sent again");
    first.open_gate();
    let r = call.await.unwrap();
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the late attempt answered: {}",
        r.text()
    );
    assert_eq!(
        r.header("x-upstream"),
        if std::ptr::eq(first, &a) { "a" } else { "b" }
    );
    let stat = |n: &str| p.stats().counter(StatName::cluster("svc", n)).get();
    assert_eq!(stat("upstream_rq_per_try_timeout"), 1);
    assert_eq!(stat("upstream_rq_retry"), 1);
    p.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn without_hedging_the_timed_out_attempt_is_cancelled() {
    let a = Upstream::start("a", Behavior::Gated).await;
    let b = Upstream::start("b", Behavior::Gated).await;
    let mut pol = policy("5xx", 1);
    pol.per_try_timeout = Some(Duration::from_secs(1));
    let (p, addr) = start(&[&a, &b], pol, |_| {}).await;
    let started = tokio::time::Instant::now();
    let call = tokio::spawn(async move { Client::http1().get(addr, "/", &[]).await });
    let (first, _second) = first_then_second(&a, &b).await;
    // The first attempt was reset at its per-try timeout: opening its gate changes nothing,
    // and the retry (held by its gate) runs into its own per-try timeout: 504.
    first.open_gate();
    let r = call.await.unwrap();
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(first.requests(), 1);
    p.shutdown().await;
}

/// Every test above again, over hyper's HTTP/1.1 server and client in place of the built-in
/// ones.
#[test]
fn the_suite_holds_over_hyper() {
    mesh_proxy::test_util::rerun_over_hyper("the_suite_holds_over_hyper");
}
