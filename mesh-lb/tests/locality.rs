//! Locality-weighted balancing (`locality_weighted_lb`, SEMANTICS.md §4.3): after the priority,
//! a locality is chosen by `weight × min(100, OPF × healthy / hosts)` with the pick's random
//! value, then a host within it. Proportions are checked with a seeded random source.

use std::net::SocketAddr;

use mesh_core::config::{Cluster, HealthStatus, LbPolicy, Locality, LocalityLbEndpoints};
use mesh_lb::{ClusterLb, PickContext, Random, SeededRandom};

const PICKS: usize = 30_000;

/// Localities `(zone, weight, hosts)` at priority 0; host ports count up from 9000.
fn cluster(localities: &[(&str, Option<u32>, u16)]) -> Cluster {
    let mut c = Cluster::new_static("l", []);
    let la = c.load_assignment.as_mut().unwrap();
    la.endpoints.clear();
    let mut port = 9000;
    for &(zone, weight, n) in localities {
        let addrs = (port..port + n).map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        port += n;
        la.endpoints.push(LocalityLbEndpoints {
            locality: Locality {
                zone: zone.into(),
                ..Locality::default()
            },
            lb_endpoints: Cluster::new_static("x", addrs)
                .load_assignment
                .unwrap()
                .endpoints
                .remove(0)
                .lb_endpoints,
            load_balancing_weight: weight,
            priority: 0,
        });
    }
    c.locality_weighted_lb = true;
    c
}

fn mark_unhealthy(c: &mut Cluster, locality: usize, count: usize) {
    let eps = &mut c.load_assignment.as_mut().unwrap().endpoints[locality].lb_endpoints;
    for ep in eps.iter_mut().take(count) {
        ep.health_status = HealthStatus::Unhealthy;
    }
}

/// Percent of picks per zone, with a fixed seed.
fn shares(c: &Cluster) -> Vec<(String, f64)> {
    let lb = ClusterLb::new(c).unwrap();
    let rng = SeededRandom::new(42);
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..PICKS {
        let i = lb
            .pick_index_with(&PickContext::new(rng.next_u64()))
            .expect("some host is healthy");
        *counts
            .entry(lb.hosts()[i].locality().zone.clone())
            .or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(z, n)| (z, 100.0 * n as f64 / PICKS as f64))
        .collect()
}

fn assert_near(shares: &[(String, f64)], zone: &str, want: f64) {
    let got = shares
        .iter()
        .find(|(z, _)| z == zone)
        .map_or(0.0, |(_, s)| *s);
    assert!(
        (got - want).abs() <= 1.5,
        "zone {zone}: {got:.2} % of picks, want {want} % ± 1.5 ({shares:?})"
    );
}

#[test]
fn localities_share_by_weight() {
    // X weight 1, Y weight 2, both fully healthy: 33 % / 67 %, though X has more hosts.
    let c = cluster(&[("x", Some(1), 12), ("y", Some(2), 6)]);
    let s = shares(&c);
    assert_near(&s, "x", 33.3);
    assert_near(&s, "y", 66.7);
}

#[test]
fn envoy_locality_weight_table() {
    // Envoy's table: X weight 1, Y weight 2 fully healthy; X healthy 100/70/50/0 % ⇒
    // 33/33/26/0 % of traffic. 20 hosts per locality keep the cluster out of panic.
    for (unhealthy_x, want_x) in [(0, 33.3), (6, 33.0), (10, 25.9), (20, 0.0)] {
        let mut c = cluster(&[("x", Some(1), 20), ("y", Some(2), 20)]);
        mark_unhealthy(&mut c, 0, unhealthy_x);
        let s = shares(&c);
        assert_near(&s, "x", want_x);
        assert_near(&s, "y", 100.0 - want_x);
    }
}

#[test]
fn a_locality_without_weight_gets_no_traffic() {
    let c = cluster(&[("x", None, 5), ("y", Some(3), 5), ("z", Some(1), 5)]);
    let s = shares(&c);
    assert_near(&s, "x", 0.0);
    assert_near(&s, "y", 75.0);
    assert_near(&s, "z", 25.0);
}

#[test]
fn without_the_switch_localities_are_ignored() {
    let mut c = cluster(&[("x", Some(1), 10), ("y", Some(3), 10)]);
    c.locality_weighted_lb = false;
    let s = shares(&c);
    assert_near(&s, "x", 50.0);
    assert_near(&s, "y", 50.0);
}

#[test]
fn hosts_within_a_locality_use_the_cluster_balancer() {
    // Round robin inside the chosen locality: every host of Y gets an equal share of Y's
    // traffic; host weights still count within a locality.
    let mut c = cluster(&[("x", Some(1), 2), ("y", Some(1), 2)]);
    c.load_assignment.as_mut().unwrap().endpoints[1].lb_endpoints[0].load_balancing_weight = 3;
    c.lb_policy = LbPolicy::RoundRobin;
    let lb = ClusterLb::new(&c).unwrap();
    let rng = SeededRandom::new(7);
    let mut counts = [0usize; 4];
    for _ in 0..PICKS {
        counts[lb
            .pick_index_with(&PickContext::new(rng.next_u64()))
            .unwrap()] += 1;
    }
    let pct = |n: usize| 100.0 * n as f64 / PICKS as f64;
    for (i, want) in [(0, 25.0), (1, 25.0), (2, 37.5), (3, 12.5)] {
        assert!((pct(counts[i]) - want).abs() <= 1.5, "host {i}: {counts:?}");
    }
}

#[test]
fn degraded_hosts_are_split_by_locality_too() {
    // Every host degraded: all load goes to the degraded sources, weighted 1 : 3.
    let mut c = cluster(&[("x", Some(1), 4), ("y", Some(3), 4)]);
    for l in &mut c.load_assignment.as_mut().unwrap().endpoints {
        for ep in &mut l.lb_endpoints {
            ep.health_status = HealthStatus::Degraded;
        }
    }
    let s = shares(&c);
    assert_near(&s, "x", 25.0);
    assert_near(&s, "y", 75.0);
}

#[test]
fn a_priority_in_panic_ignores_locality_weights() {
    // 2 of 20 hosts healthy (10 % < 50 %): panic serves every host of the priority, including
    // the locality without weight.
    let mut c = cluster(&[("x", Some(1), 10), ("y", None, 10)]);
    mark_unhealthy(&mut c, 0, 8);
    mark_unhealthy(&mut c, 1, 10);
    let s = shares(&c);
    assert_near(&s, "x", 50.0);
    assert_near(&s, "y", 50.0);
}
