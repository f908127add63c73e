//! Request mirroring, and the trusted timeout headers.

use std::time::Duration;

use http::StatusCode;
use mesh_core::config::*;
use mesh_proxy::test_util::{Behavior, Client, Upstream};

fn routes(mirrors: Vec<RequestMirrorPolicy>) -> RouteConfiguration {
    let mut route = Route::prefix("/", "main");
    if let Action::Route(a) = &mut route.action {
        a.request_mirror_policies = mirrors;
    }
    RouteConfiguration::new("r").with_virtual_host(VirtualHost::new("all", ["*"]).with_route(route))
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !f() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test]
async fn copies_go_to_the_shadow_with_a_suffixed_host() {
    let main = Upstream::start("main", Behavior::Identify).await;
    let shadow = Upstream::start("shadow", Behavior::Identify).await;
    let (refused, _reserved) = mesh_proxy::test_util::refused_addr();
    let mirror = |c: &str| RequestMirrorPolicy {
        cluster: c.into(),
        ..RequestMirrorPolicy::default()
    };
    let never = RequestMirrorPolicy {
        runtime_fraction: Some(RuntimeFraction {
            default_value: FractionalPercent::percent(0),
            runtime_key: String::new(),
        }),
        ..mirror("never")
    };
    let boot = Bootstrap::default()
        .with_listener(Listener::http(
            "http",
            "127.0.0.1:0".parse().unwrap(),
            HttpConnectionManager::with_routes(routes(vec![
                mirror("shadow"),
                mirror("dead"),
                never,
            ])),
        ))
        .with_cluster(Cluster::new_static("main", [main.addr()]))
        .with_cluster(Cluster::new_static("shadow", [shadow.addr()]))
        .with_cluster(Cluster::new_static("dead", [refused]))
        .with_cluster(Cluster::new_static("never", [shadow.addr()]));
    let p = mesh_proxy::test_util::start(boot).await;
    let addr = p.listener_addr("http").unwrap();
    for _ in 0..5 {
        let r = Client::http1()
            .get(addr, "/m", &[("host", "example.com")])
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "a dead mirror never fails the request"
        );
        assert_eq!(r.header("x-upstream"), "main");
    }
    until("five copies", || shadow.requests() == 5).await;
    assert_eq!(shadow.last_host().as_deref(), Some("example.com-shadow"));
    assert_eq!(main.requests(), 5);
    p.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn trusted_timeout_headers_override_the_route_timeout() {
    let slow = Upstream::start("slow", Behavior::Stall).await;
    let mut hcm =
        HttpConnectionManager::with_routes(RouteConfiguration::new("r").with_virtual_host(
            VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "slow")),
        ));
    hcm.use_remote_address = true;
    hcm.internal_address_config.cidr_ranges.push(CidrRange {
        address_prefix: "127.0.0.0".parse().unwrap(),
        prefix_len: 8,
    });
    let boot = Bootstrap::default()
        .with_listener(Listener::http("http", "127.0.0.1:0".parse().unwrap(), hcm))
        .with_cluster(Cluster::new_static("slow", [slow.addr()]));
    let p = mesh_proxy::test_util::start(boot).await;
    let addr = p.listener_addr("http").unwrap();
    let c = Client::http1();
    let started = tokio::time::Instant::now();
    let r = c
        .get(addr, "/", &[("x-envoy-upstream-rq-timeout-ms", "1500")])
        .await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    let r = c
        .get(
            addr,
            "/",
            &[
                ("x-envoy-upstream-rq-timeout-ms", "100"),
                ("x-envoy-upstream-rq-timeout-alt-response", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    p.shutdown().await;
}

/// Every test above again, over hyper's HTTP/1.1 server and client in place of the built-in
/// ones.
#[test]
fn the_suite_holds_over_hyper() {
    mesh_proxy::test_util::rerun_over_hyper("the_suite_holds_over_hyper");
}
