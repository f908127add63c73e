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
