//! The fault-injection filter end to end: delays, aborts, fractions, header control,
//! per-route overrides and max_active_faults.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use mesh_core::config::*;
use mesh_proxy::RunningProxy;
use mesh_proxy::test_util::{Behavior, Client, Upstream};
use serde_json::json;

async fn with_fault(
    fault: serde_json::Value,
    routes: RouteConfiguration,
    up: &Upstream,
) -> (RunningProxy, SocketAddr) {
    with_fault_seeded(fault, routes, up, None).await
}

async fn with_fault_seeded(
    fault: serde_json::Value,
    routes: RouteConfiguration,
    up: &Upstream,
    seed: Option<u64>,
) -> (RunningProxy, SocketAddr) {
    let mut hcm = HttpConnectionManager::with_routes(routes);
    hcm.http_filters.push(HttpFilterConfig {
        name: "envoy.filters.http.fault".into(),
        config: fault,
        type_url: Some(
            "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault".into(),
        ),
        disabled: false,
        is_optional: false,
    });
    let boot = Bootstrap::default()
        .with_listener(Listener::http("http", "127.0.0.1:0".parse().unwrap(), hcm))
        .with_cluster(Cluster::new_static("up", [up.addr()]));
    let mut b = mesh_proxy::test_util::builder(boot);
    if let Some(seed) = seed {
        b = b.random_seed(seed);
    }
    let p = b.build().unwrap().start().await.unwrap();
    let addr = p.listener_addr("http").unwrap();
    (p, addr)
}

fn to_up() -> RouteConfiguration {
    RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "up")))
}

fn stat(p: &RunningProxy, name: &str) -> u64 {
    p.stats()
        .counter(mesh_core::stats::StatName::plain(name))
        .get()
}

#[tokio::test]
async fn abort_at_100_percent_never_reaches_the_upstream() {
    let up = Upstream::start("up", Behavior::Identify).await;
    let (p, addr) = with_fault(
        json!({"abort": {"http_status": 503, "percentage": {"numerator": 100}}}),
        to_up(),
        &up,
    )
    .await;
    let r = Client::http1().get(addr, "/", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.text(), "fault filter abort");
    assert_eq!(up.requests(), 0);
    assert_eq!(stat(&p, "fault.aborts_injected"), 1);
    p.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn delay_at_100_percent_waits_then_forwards() {
    let up = Upstream::start("up", Behavior::Identify).await;
    let (p, addr) = with_fault(
        json!({"delay": {"fixed_delay": "7s", "percentage": {"numerator": 100}}}),
        to_up(),
        &up,
    )
    .await;
    let started = tokio::time::Instant::now();
    let r = Client::http1().get(addr, "/", &[]).await;
    let waited = started.elapsed();
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        waited >= Duration::from_secs(7) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    assert_eq!(stat(&p, "fault.delays_injected"), 1);
    p.shutdown().await;
}

#[tokio::test]
async fn a_fractional_abort_hits_about_that_fraction() {
    const N: usize = 1000;
    let up = Upstream::start("up", Behavior::Identify).await;
    let (p, addr) = with_fault(
        json!({"abort": {"http_status": 500, "percentage": {"numerator": 250000, "denominator": "MILLION"}}}),
        to_up(),
        &up,
    )
    .await;
    let c = Client::http1();
    let mut aborted = 0;
    for _ in 0..N {
        if c.get(addr, "/", &[]).await.status == StatusCode::INTERNAL_SERVER_ERROR {
            aborted += 1;
        }
    }
    // Binomial(1000, 0.25): mean 250, sd 13.7; 5 sd either side.
    assert!((182..=318).contains(&aborted), "{aborted} of {N} aborted");
    assert_eq!(up.requests(), N - aborted);
    p.shutdown().await;
}

/// Which of `n` sequential requests a seeded proxy aborts (true) or delays by `delay`.
async fn draws(
    fault: serde_json::Value,
    seed: u64,
    n: usize,
    delay: Option<Duration>,
) -> Vec<bool> {
    let up = Upstream::start("up", Behavior::Identify).await;
    let (p, addr) = with_fault_seeded(fault, to_up(), &up, Some(seed)).await;
    let c = Client::http1();
    let mut hit = Vec::with_capacity(n);
    for _ in 0..n {
        let started = tokio::time::Instant::now();
        let r = c.get(addr, "/", &[]).await;
        hit.push(match delay {
            Some(d) => {
                assert_eq!(r.status, StatusCode::OK);
                started.elapsed() >= d
            }
            None => r.status == StatusCode::SERVICE_UNAVAILABLE,
        });
    }
    p.shutdown().await;
    hit
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_seeded_proxy_draws_the_same_fractional_faults_every_run() {
    const N: usize = 400;
    let abort = json!({"abort": {"http_status": 503, "percentage": {"numerator": 30}}});
    let first = draws(abort.clone(), 7, N, None).await;
    let again = draws(abort.clone(), 7, N, None).await;
    assert_eq!(first, again, "the same seed draws the same aborts");
    let other = draws(abort, 8, N, None).await;
    assert_ne!(first, other, "another seed draws others");
    // Binomial(400, 0.3): mean 120, sd 9.2; 5 sd either side.
    let aborted = first.iter().filter(|h| **h).count();
    assert!((74..=166).contains(&aborted), "{aborted} of {N} aborted");

    // A fractional delay, on the paused clock: about half wait the whole second.
    let delay = json!({"delay": {"fixed_delay": "1s", "percentage": {"numerator": 50}}});
    let first = draws(delay.clone(), 11, N, Some(Duration::from_secs(1))).await;
    assert_eq!(
        first,
        draws(delay, 11, N, Some(Duration::from_secs(1))).await
    );
    // Binomial(400, 0.5): mean 200, sd 10; 5 sd either side.
    let delayed = first.iter().filter(|h| **h).count();
    assert!((150..=250).contains(&delayed), "{delayed} of {N} delayed");
}

#[tokio::test]
async fn header_controlled_faults_and_header_conditions() {
    let up = Upstream::start("up", Behavior::Identify).await;
    let (p, addr) = with_fault(
        json!({
            "abort": {"header_abort": {}, "percentage": {"numerator": 100}},
            "headers": [{"name": "x-chaos", "exact_match": "on"}],
        }),
        to_up(),
        &up,
    )
    .await;
    let c = Client::http1();
    let r = c
        .get(
            addr,
            "/",
            &[("x-chaos", "on"), ("x-envoy-fault-abort-request", "418")],
        )
        .await;
    assert_eq!(r.status, StatusCode::IM_A_TEAPOT);
    let r = c
        .get(addr, "/", &[("x-envoy-fault-abort-request", "418")])
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the header condition does not hold"
    );
    let r = c
        .get(
            addr,
            "/",
            &[
                ("x-chaos", "on"),
                ("x-envoy-fault-abort-request", "418"),
                ("x-envoy-fault-abort-request-percentage", "0"),
            ],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a header can lower the percentage"
    );
    let r = c
        .get(
            addr,
            "/",
            &[
                ("x-chaos", "on"),
                ("x-envoy-fault-abort-grpc-request", "14"),
            ],
        )
        .await;
    assert_eq!((r.status, r.header("grpc-status")), (StatusCode::OK, "14"));
    p.shutdown().await;
}

#[tokio::test]
async fn per_route_config_replaces_the_filters() {
    let up = Upstream::start("up", Behavior::Identify).await;
    let mut bad = Route::prefix("/bad", "up");
    bad.typed_per_filter_config.insert(
        "envoy.filters.http.fault".into(),
        json!({"abort": {"http_status": 502, "percentage": {"numerator": 100}}}),
    );
    let routes = RouteConfiguration::new("r").with_virtual_host(
        VirtualHost::new("all", ["*"])
            .with_route(bad)
            .with_route(Route::prefix("/", "up")),
    );
    // The listener-level filter config injects nothing (Istio's shape).
    let (p, addr) = with_fault(serde_json::Value::Null, routes, &up).await;
    let c = Client::http1();
    assert_eq!(
        c.get(addr, "/bad", &[]).await.status,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(c.get(addr, "/good", &[]).await.status, StatusCode::OK);
    p.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn max_active_faults_lets_requests_past_a_full_fault_budget() {
    let up = Upstream::start("up", Behavior::Identify).await;
    let (p, addr) = with_fault(
        json!({"delay": {"fixed_delay": "10s", "percentage": {"numerator": 100}}, "max_active_faults": 1}),
        to_up(),
        &up,
    )
    .await;
    let c = Client::http1();
    let delayed = tokio::spawn({
        let c = c.clone();
        async move { c.get(addr, "/", &[]).await }
    });
    // Wait until the first request is being delayed.
    while p
        .stats()
        .gauge(mesh_core::stats::StatName::plain("fault.active_faults"))
        .get()
        == 0
    {
        tokio::task::yield_now().await;
    }
    let started = tokio::time::Instant::now();
    let r = c.get(addr, "/", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "not delayed: {:?}",
        started.elapsed()
    );
    assert_eq!(stat(&p, "fault.faults_overflow"), 1);
    assert_eq!(delayed.await.unwrap().status, StatusCode::OK);
    p.shutdown().await;
}

#[tokio::test]
async fn invalid_fault_config_is_a_config_error_with_its_path() {
    let up = Upstream::start("up", Behavior::Identify).await;
    let mut hcm = HttpConnectionManager::with_routes(to_up());
    hcm.http_filters.push(HttpFilterConfig::new(
        "envoy.filters.http.fault",
        json!({"abort": {"http_status": 700}}),
    ));
    let boot = Bootstrap::default()
        .with_listener(Listener::http("http", "127.0.0.1:0".parse().unwrap(), hcm))
        .with_cluster(Cluster::new_static("up", [up.addr()]));
    let err = mesh_proxy::test_util::builder(boot).build().unwrap_err();
    let msg = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        msg.contains("http_filters[0]") && msg.contains("abort.http_status: must be in [200, 600)"),
        "{msg}"
    );
}

#[tokio::test]
async fn an_invalid_per_route_fault_config_rejects_the_config_with_its_path() {
    let up = Upstream::start("up", Behavior::Identify).await;
    let mut bad = Route::prefix("/bad", "up");
    bad.typed_per_filter_config.insert(
        "envoy.filters.http.fault".into(),
        json!({"delay": {"fixed_delay": "soon"}}),
    );
    let routes = RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(bad));
    let mut hcm = HttpConnectionManager::with_routes(routes);
    hcm.http_filters.push(HttpFilterConfig::new(
        "envoy.filters.http.fault",
        serde_json::Value::Null,
    ));
    let boot = Bootstrap::default()
        .with_listener(Listener::http("http", "127.0.0.1:0".parse().unwrap(), hcm))
        .with_cluster(Cluster::new_static("up", [up.addr()]));
    let err = mesh_proxy::test_util::builder(boot).build().unwrap_err();
    let msg = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        msg.contains("virtual_hosts[0].routes[0].typed_per_filter_config")
            && msg.contains("envoy.filters.http.fault")
            && msg.contains("fixed_delay"),
        "{msg}"
    );
}

/// Every test above again, over hyper's HTTP/1.1 server and client in place of the built-in
/// ones.
#[test]
fn the_suite_holds_over_hyper() {
    mesh_proxy::test_util::rerun_over_hyper("the_suite_holds_over_hyper");
}
