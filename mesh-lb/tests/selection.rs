//! Selection through `ClusterLb`: weighted proportions, priority spill-over and panic at the
//! exact thresholds, degraded hosts.

use std::net::SocketAddr;

use mesh_core::config::{Cluster, HealthStatus, LbPolicy, LocalityLbEndpoints};
use mesh_lb::{ClusterLb, PickContext, Random, SeededRandom};

/// Priorities given as host counts; host ports count up from 9000 across priorities.
fn cluster(levels: &[usize], policy: LbPolicy) -> Cluster {
    let mut c = Cluster::new_static("s", []);
    let la = c.load_assignment.as_mut().unwrap();
    la.endpoints.clear();
    let mut port = 9000;
    for (p, &n) in levels.iter().enumerate() {
        let eps = Cluster::new_static(
            "x",
            (0..n).map(|_| {
                port += 1;
                SocketAddr::from(([127, 0, 0, 1], port - 1))
            }),
        )
        .load_assignment
        .unwrap()
        .endpoints
        .remove(0)
        .lb_endpoints;
        la.endpoints.push(LocalityLbEndpoints {
            lb_endpoints: eps,
            priority: p as u32,
            ..Default::default()
        });
    }
    c.lb_policy = policy;
    c
}

fn set_status(c: &mut Cluster, priority: usize, count: usize, status: HealthStatus) {
    let eps = &mut c.load_assignment.as_mut().unwrap().endpoints[priority].lb_endpoints;
    for ep in eps.iter_mut().take(count) {
        ep.health_status = status;
    }
}

/// Share of picks per priority level (by port range).
fn level_share(lb: &ClusterLb, levels: &[usize], picks: usize) -> Vec<f64> {
    let rng = SeededRandom::new(3);
    let mut c = vec![0.0; levels.len()];
    for _ in 0..picks {
        let port = lb
            .pick_with(&PickContext::new(rng.next_u64()))
            .unwrap()
            .address()
            .port as usize;
        let mut start = 9000;
        for (p, &n) in levels.iter().enumerate() {
            if port < start + n {
                c[p] += 1.0;
                break;
            }
            start += n;
        }
    }
    c.iter().map(|x| x / picks as f64).collect()
}

#[test]
fn weighted_round_robin_exact_per_cycle() {
    let mut c = cluster(&[4], LbPolicy::RoundRobin);
    for (i, ep) in c.load_assignment.as_mut().unwrap().endpoints[0]
        .lb_endpoints
        .iter_mut()
        .enumerate()
    {
        ep.load_balancing_weight = [1, 2, 3, 4][i];
    }
    let lb = ClusterLb::builder(&c).seed(12345).build().unwrap();
    for _cycle in 0..5 {
        let mut counts = [0; 4];
        for _ in 0..10 {
            counts[(lb.pick_with(&PickContext::new(0)).unwrap().address().port - 9000) as usize] +=
                1;
        }
        assert_eq!(counts, [1, 2, 3, 4]);
    }
}

#[test]
fn random_and_least_request_are_uniform_chi_squared() {
    for policy in [LbPolicy::Random, LbPolicy::LeastRequest] {
        let lb = ClusterLb::new(&cluster(&[8], policy)).unwrap();
        let rng = SeededRandom::new(17);
        let picks = 80_000;
        let mut counts = [0f64; 8];
        for _ in 0..picks {
            counts[lb
                .pick_index_with(&PickContext::new(rng.next_u64()))
                .unwrap()] += 1.0;
        }
        let e = picks as f64 / 8.0;
        let chi2: f64 = counts.iter().map(|o| (o - e).powi(2) / e).sum();
        // 7 degrees of freedom, p = 0.001 at 24.32.
        assert!(chi2 < 24.32, "{policy:?}: chi2 {chi2} {counts:?}");
    }
}

#[test]
fn spill_over_follows_overprovisioning() {
    let levels = [10, 10];
    // 8 of 10 healthy: 140 × 0.8 = 112 ⇒ P0 keeps 100 %.
    let mut c = cluster(&levels, LbPolicy::RoundRobin);
    set_status(&mut c, 0, 2, HealthStatus::Unhealthy);
    let lb = ClusterLb::new(&c).unwrap();
    assert_eq!(lb.priority_load().healthy, [100, 0]);
    assert_eq!(level_share(&lb, &levels, 2000), [1.0, 0.0]);
    // 7 of 10: 98 % / 2 %.
    set_status(&mut c, 0, 3, HealthStatus::Unhealthy);
    let lb = ClusterLb::new(&c).unwrap();
    assert_eq!(lb.priority_load().healthy, [98, 2]);
    let s = level_share(&lb, &levels, 50_000);
    assert!((s[1] - 0.02).abs() < 0.004, "{s:?}");
    // 3 of 10: 42 % / 58 %.
    set_status(&mut c, 0, 7, HealthStatus::Unhealthy);
    let lb = ClusterLb::new(&c).unwrap();
    assert_eq!(lb.priority_load().healthy, [42, 58]);
}

#[test]
fn panic_mode_at_the_threshold() {
    let levels = [10];
    let mut c = cluster(&levels, LbPolicy::Random);
    // 5 of 10 healthy (50 %): not in panic, only healthy hosts.
    set_status(&mut c, 0, 5, HealthStatus::Unhealthy);
    let registry = mesh_core::stats::Registry::new();
    let lb = ClusterLb::with_stats(&c, &registry).unwrap();
    assert!(!lb.priority_load().panic[0]);
    for r in 0..500 {
        assert!(lb.pick_with(&PickContext::new(r)).unwrap().is_healthy());
    }
    // 4 of 10 (40 %): panic, every host, counted.
    set_status(&mut c, 0, 6, HealthStatus::Unhealthy);
    let lb = ClusterLb::with_stats(&c, &registry).unwrap();
    assert!(lb.priority_load().panic[0]);
    let unhealthy = (0..1000)
        .filter(|&r| !lb.pick_with(&PickContext::new(r)).unwrap().is_healthy())
        .count();
    assert!((500..700).contains(&unhealthy), "{unhealthy}");
    assert!(
        registry
            .render_text()
            .contains("cluster.s.lb_healthy_panic: 1000")
    );
    // The threshold is configurable: 30 % takes 40 % out of panic.
    c.healthy_panic_threshold = 30.0;
    let lb = ClusterLb::new(&c).unwrap();
    assert!(!lb.priority_load().panic[0]);
}

#[test]
fn degraded_hosts_take_load_healthy_ones_cannot() {
    let levels = [10];
    let mut c = cluster(&levels, LbPolicy::RoundRobin);
    // 5 healthy (70 %), 5 degraded (70 % capped to the remaining 30 %).
    set_status(&mut c, 0, 5, HealthStatus::Degraded);
    let lb = ClusterLb::new(&c).unwrap();
    let l = lb.priority_load();
    assert_eq!((l.healthy[0], l.degraded[0]), (70, 30));
    let rng = SeededRandom::new(8);
    let degraded = (0..20_000)
        .filter(|_| {
            lb.pick_with(&PickContext::new(rng.next_u64()))
                .unwrap()
                .is_degraded()
        })
        .count();
    assert!((5600..6400).contains(&degraded), "{degraded}");
}
