//! Resilience driven by mesh-lb: circuit breakers and outlier ejection, end to end.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use mesh_core::config::*;
use mesh_core::stats::StatName;
use mesh_proxy::RunningProxy;
use mesh_proxy::test_util::{Behavior, Client, Upstream};

async fn start(cluster: Cluster) -> (RunningProxy, SocketAddr) {
    mesh_proxy::test_util::start_for_cluster(cluster).await
}

#[tokio::test]
async fn breaker_overflow_fails_fast_and_slots_come_back() {
    let up = Upstream::start("held", Behavior::Gated).await;
    let mut c = Cluster::new_static("held", [up.addr()]);
    c.circuit_breakers.thresholds.push(Thresholds {
        max_requests: 1,
        max_pending_requests: 1,
        ..Thresholds::default()
    });
    let (p, addr) = start(c).await;
    let client = Client::http1();
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.get(addr, "/first", &[]).await }
    });
    // The first request is held open by the upstream.
    while up.requests() == 0 {
        tokio::task::yield_now().await;
    }
    for _ in 0..3 {
        let r = client.get(addr, "/more", &[]).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.header("x-envoy-overloaded"), "true");
        assert_eq!(
            r.text(),
            "upstream connect error or disconnect/reset before headers. reset reason: overflow"
        );
    }
    assert_eq!(
        up.requests(),
        1,
        "overflowing requests never reached the upstream"
    );
    assert_eq!(
        p.stats()
            .counter(StatName::cluster("held", "upstream_rq_pending_overflow"))
            .get(),
        3
    );
    up.open_gate();
    assert_eq!(first.await.unwrap().status, StatusCode::OK);
    // The slot came back: the next request goes through.
    assert_eq!(client.get(addr, "/after", &[]).await.status, StatusCode::OK);
    p.shutdown().await;
}

#[tokio::test]
async fn max_connections_makes_requests_wait_for_a_connection() {
    let up = Upstream::start("held", Behavior::Gated).await;
    let mut c = Cluster::new_static("held", [up.addr()]);
    c.circuit_breakers.thresholds.push(Thresholds {
        max_connections: 1,
        ..Thresholds::default()
    });
    let (p, addr) = start(c).await;
    let client = Client::http1();
    let requests: Vec<_> = (0..3)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.get(addr, &format!("/{i}"), &[]).await })
        })
        .collect();
    while up.requests() == 0 {
        tokio::task::yield_now().await;
    }
    up.open_gate();
    for r in requests {
        assert_eq!(r.await.unwrap().status, StatusCode::OK);
    }
    assert_eq!(
        up.accepted(),
        1,
        "the queued requests reused the one allowed connection"
    );
    assert!(
        p.stats()
            .counter(StatName::cluster("held", "upstream_cx_overflow"))
            .get()
            > 0
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failing_host_is_ejected_and_returns_after_the_ejection_time() {
    let good1 = Upstream::start("good1", Behavior::Identify).await;
    let good2 = Upstream::start("good2", Behavior::Identify).await;
    let bad = Upstream::start("bad", Behavior::Status(500)).await;
    let mut c = Cluster::new_static("svc", [good1.addr(), bad.addr(), good2.addr()]);
    c.outlier_detection = Some(OutlierDetection {
        consecutive_5xx: 3,
        max_ejection_percent: 100,
        ..OutlierDetection::default()
    });
    let (p, addr) = start(c).await;
    let client = Client::http1();
    // Round robin: every third request lands on the bad host until it is ejected.
    let mut failures = 0;
    for _ in 0..9 {
        if client.get(addr, "/", &[]).await.status == StatusCode::INTERNAL_SERVER_ERROR {
            failures += 1;
        }
    }
    assert_eq!(failures, 3, "three consecutive 5xx eject the host");
    let hits_before = bad.requests();
    for _ in 0..30 {
        assert_eq!(client.get(addr, "/", &[]).await.status, StatusCode::OK);
    }
    assert_eq!(
        bad.requests(),
        hits_before,
        "an ejected host gets no traffic"
    );
    assert_eq!(
        p.stats()
            .gauge(StatName::cluster(
                "svc",
                "outlier_detection.ejections_active"
            ))
            .get(),
        1
    );
    // base_ejection_time 30 s, swept every 10 s: back in service by 40 s.
    tokio::time::sleep(Duration::from_secs(41)).await;
    for _ in 0..9 {
        client.get(addr, "/", &[]).await;
    }
    assert!(
        bad.requests() > hits_before,
        "the host returned after its ejection time"
    );
    p.shutdown().await;
}

/// Envoy's subset load balancer: upstreams labelled `version: v1` / `v2` in `envoy.lb`
/// metadata, a selector on `version`, and routes whose `metadata_match` picks the subset.
#[tokio::test]
async fn route_metadata_match_selects_a_subset() {
    let ups = [
        Upstream::start("v1-a", Behavior::Identify).await,
        Upstream::start("v1-b", Behavior::Identify).await,
        Upstream::start("v2-a", Behavior::Identify).await,
        Upstream::start("v2-b", Behavior::Identify).await,
    ];
    let mut c = Cluster::new_static("versioned", ups.iter().map(Upstream::addr));
    let eps = &mut c.load_assignment.as_mut().unwrap().endpoints[0].lb_endpoints;
    for (ep, version) in eps.iter_mut().zip(["v1", "v1", "v2", "v2"]) {
        ep.metadata
            .entry("envoy.lb".into())
            .or_default()
            .insert("version".into(), version.into());
    }
    c.lb_subset_config = Some(LbSubsetConfig {
        subset_selectors: vec![LbSubsetSelector {
            keys: vec!["version".into()],
            ..LbSubsetSelector::default()
        }],
        ..LbSubsetConfig::default()
    });
    let subset_route = |prefix: &str, version: &str| {
        let mut r = Route::prefix(prefix, "versioned");
        if let Action::Route(a) = &mut r.action {
            a.metadata_match = [("version".to_owned(), version.into())].into();
        }
        r
    };
    let routes = RouteConfiguration::new("r").with_virtual_host(
        VirtualHost::new("all", ["*"])
            .with_route(subset_route("/v2", "v2"))
            .with_route(subset_route("/v1", "v1"))
            .with_route(Route::prefix("/", "versioned")),
    );
    let boot = Bootstrap::default()
        .with_listener(Listener::http(
            "http",
            "127.0.0.1:0".parse().unwrap(),
            HttpConnectionManager::with_routes(routes),
        ))
        .with_cluster(c);
    let p = mesh_proxy::test_util::start(boot).await;
    let addr = p.listener_addr("http").unwrap();
    let client = Client::http1();

    let mut seen = std::collections::BTreeSet::new();
    for i in 0..20 {
        let r = client.get(addr, &format!("/v2/{i}"), &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        seen.insert(r.header("x-upstream").to_owned());
    }
    assert_eq!(
        seen,
        ["v2-a", "v2-b"].map(String::from).into(),
        "only v2 upstreams, both of them"
    );
    let r = client.get(addr, "/v1/x", &[]).await;
    assert!(r.header("x-upstream").starts_with("v1-"), "{r:?}");
    assert_eq!(ups[0].requests() + ups[1].requests(), 1);

    // No metadata_match: the default NO_FALLBACK policy gives no host.
    let r = client.get(addr, "/other", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.text(), "no healthy upstream");
    p.shutdown().await;
}

#[tokio::test]
async fn admin_clusters_shows_an_ejected_host() {
    let good = Upstream::start("good", Behavior::Identify).await;
    let bad = Upstream::start("bad", Behavior::Status(502)).await;
    let mut c = Cluster::new_static("svc", [good.addr(), bad.addr()]);
    c.outlier_detection = Some(OutlierDetection {
        consecutive_5xx: 2,
        max_ejection_percent: 100,
        ..OutlierDetection::default()
    });
    let routes = RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "svc")));
    let mut boot = Bootstrap::default()
        .with_listener(Listener::http(
            "http",
            "127.0.0.1:0".parse().unwrap(),
            HttpConnectionManager::with_routes(routes),
        ))
        .with_cluster(c);
    boot.admin = Some(Admin {
        address: "127.0.0.1:0".parse().unwrap(),
    });
    let p = mesh_proxy::test_util::start(boot).await;
    let addr = p.listener_addr("http").unwrap();
    let client = Client::http1();
    while bad.requests() < 2 {
        client.get(addr, "/", &[]).await;
    }
    let clusters = client
        .get(p.admin_addr().unwrap(), "/clusters", &[])
        .await
        .text();
    assert!(
        clusters.contains(&format!(
            "svc::{}::health_flags::/failed_outlier_check\n",
            bad.addr()
        )),
        "{clusters}"
    );
    assert!(
        clusters.contains(&format!("svc::{}::health_flags::healthy\n", good.addr())),
        "{clusters}"
    );
    let json: serde_json::Value = serde_json::from_slice(
        &client
            .get(p.admin_addr().unwrap(), "/clusters?format=json", &[])
            .await
            .body,
    )
    .unwrap();
    let hosts = json["cluster_statuses"][0]["host_statuses"]
        .as_array()
        .unwrap();
    assert!(
        hosts
            .iter()
            .any(|h| h["health_status"]["failed_outlier_check"] == true)
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn active_health_checks_take_a_failing_host_out_and_back() {
    let a = Upstream::start("a", Behavior::Identify).await;
    let b = Upstream::start("b", Behavior::Identify).await;
    let mut c = Cluster::new_static("svc", [a.addr(), b.addr()]);
    c.health_checks.push(HealthCheck {
        timeout: Duration::from_millis(500),
        interval: Duration::from_secs(1),
        unhealthy_threshold: 2,
        healthy_threshold: 2,
        checker: HealthChecker::Http {
            path: "/healthz".into(),
            host: None,
            expected_statuses: vec![],
        },
    });
    let (p, addr) = start(c).await;
    let client = Client::http1();
    let spread = |n: usize| {
        let client = client.clone();
        async move {
            let mut seen = std::collections::HashSet::new();
            for _ in 0..n {
                seen.insert(
                    client
                        .get(addr, "/", &[])
                        .await
                        .header("x-upstream")
                        .to_owned(),
                );
            }
            seen
        }
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(spread(6).await.len(), 2, "both hosts healthy");

    a.set_healthy(false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = spread(8).await;
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["b"],
        "a failed its checks"
    );

    a.set_healthy(true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(spread(6).await.len(), 2, "a passed again");
    p.shutdown().await;
}

/// Every test above again, over hyper's HTTP/1.1 server and client in place of the built-in
/// ones.
#[test]
fn the_suite_holds_over_hyper() {
    mesh_proxy::test_util::rerun_over_hyper("the_suite_holds_over_hyper");
}
