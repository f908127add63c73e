//! Outlier detection wired into a cluster: ejected hosts are skipped by the balancer and come
//! back after their ejection time, all on a manual clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::config::{Cluster, LbPolicy, OutlierDetection};
use mesh_core::stats::Registry;
use mesh_lb::outlier::Outcome;
use mesh_lb::{ClusterLb, PickContext, SeededRandom};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn ejected_host_is_skipped_then_returns() {
    for policy in [
        LbPolicy::RoundRobin,
        LbPolicy::LeastRequest,
        LbPolicy::Maglev,
    ] {
        let mut c = Cluster::new_static(
            "od",
            (0..10).map(|i| SocketAddr::from(([10, 0, 0, i + 1], 80))),
        );
        c.lb_policy = policy;
        c.outlier_detection = Some(OutlierDetection::default());
        let registry = Registry::new();
        let lb = ClusterLb::builder(&c)
            .stats(&registry)
            .random(Arc::new(SeededRandom::new(1)))
            .build()
            .unwrap();
        let od = lb.outlier().unwrap();
        for _ in 0..5 {
            od.report(7, Outcome::Http(503), secs(0));
        }
        for r in 0..500 {
            let cx = PickContext::new(r).with_hash(Some(r.wrapping_mul(0x9E37_79B9)));
            assert_ne!(lb.pick_index_with(&cx), Some(7), "{policy:?}");
        }
        let text = registry.render_text();
        assert!(text.contains("cluster.od.membership_healthy: 9"), "{text}");
        assert!(
            text.contains("cluster.od.outlier_detection.ejections_active: 1"),
            "{text}"
        );
        od.sweep(secs(10));
        od.sweep(secs(20));
        od.sweep(secs(30));
        lb.refresh();
        assert!(registry.render_text().contains("membership_healthy: 10"));
        let back = (0..500u64).any(|r| {
            let cx = PickContext::new(r).with_hash(Some(r.wrapping_mul(0x9E37_79B9)));
            lb.pick_index_with(&cx) == Some(7)
        });
        assert!(back, "{policy:?}: host 7 serves again");
    }
}

/// Hosts that stay across an endpoint update keep their active requests, health flags and
/// ejection (which still ends on schedule); hosts that go are gone, new ones start fresh.
#[test]
fn hosts_that_stay_keep_their_state_across_an_update() {
    use mesh_core::config::{Cluster, OutlierDetection};
    use mesh_lb::ClusterLb;
    use mesh_lb::outlier::Outcome;
    use std::time::Duration;

    let addr = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
    let mut c = Cluster::new_static("c", [addr(1), addr(2), addr(3)]);
    c.outlier_detection = Some(OutlierDetection {
        consecutive_5xx: 2,
        max_ejection_percent: 100,
        ..OutlierDetection::default()
    });
    let before = ClusterLb::new(&c).unwrap();
    let _in_flight = before.hosts()[1].start_request();
    let od = before.outlier().unwrap();
    let t0 = Duration::from_secs(100);
    od.report(0, Outcome::Http(503), t0);
    od.report(0, Outcome::Http(503), t0);
    assert!(od.host_state(0).ejected);
    od.report(2, Outcome::Http(500), t0);

    // Host 3 goes, host 4 comes; 1 and 2 stay (in a different order).
    let mut next = Cluster::new_static("c", [addr(2), addr(1), addr(4)]);
    next.outlier_detection = c.outlier_detection.clone();
    let after = ClusterLb::builder(&next).previous(&before).build().unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &after.hosts()[1],
        &before.hosts()[0]
    ));
    assert!(std::sync::Arc::ptr_eq(
        &after.hosts()[0],
        &before.hosts()[1]
    ));
    assert_eq!(
        after.hosts()[0].active_requests(),
        1,
        "in-flight request still counted"
    );
    let od2 = after.outlier().unwrap();
    assert!(od2.host_state(1).ejected, "ejection carried over");
    assert!(!od2.host_state(2).ejected);
    for _ in 0..20 {
        let i = after.pick_index(&mesh_lb::LbContext::default()).unwrap();
        assert_ne!(i, 1, "the ejected host gets no traffic after the update");
    }
    // Un-ejected on schedule: base ejection time 30 s, swept at the 10 s interval.
    od2.sweep(t0 + Duration::from_secs(40));
    assert!(!od2.host_state(1).ejected);
    assert!(after.hosts()[1].is_healthy());
}

/// Circuit-breaker counts survive an update whose thresholds are unchanged.
#[test]
fn breaker_counts_carry_over_unchanged_thresholds() {
    use mesh_core::config::{Cluster, RoutingPriority, Thresholds};
    use mesh_lb::ClusterLb;

    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
    let mut c = Cluster::new_static("c", [addr]);
    c.circuit_breakers.thresholds.push(Thresholds {
        max_requests: 1,
        ..Thresholds::default()
    });
    let before = ClusterLb::new(&c).unwrap();
    let held = before
        .breakers(RoutingPriority::Default)
        .try_request()
        .unwrap();
    let after = ClusterLb::builder(&c).previous(&before).build().unwrap();
    assert!(
        after
            .breakers(RoutingPriority::Default)
            .try_request()
            .is_err(),
        "the in-flight request still counts"
    );
    drop(held);
    assert!(
        after
            .breakers(RoutingPriority::Default)
            .try_request()
            .is_ok()
    );

    c.circuit_breakers.thresholds[0].max_requests = 5;
    let changed = ClusterLb::builder(&c).previous(&after).build().unwrap();
    let permits: Vec<_> = (0..5)
        .map(|_| {
            changed
                .breakers(RoutingPriority::Default)
                .try_request()
                .unwrap()
        })
        .collect();
    assert!(
        changed
            .breakers(RoutingPriority::Default)
            .try_request()
            .is_err()
    );
    drop(permits);
}
