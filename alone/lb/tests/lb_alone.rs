//! mesh-lb by itself: a cluster loaded from Envoy YAML through `mesh_xds::envoy` (its file
//! readers, without gRPC), balanced with contexts that cannot silently be constant.

use std::collections::BTreeMap;

use mesh_lb::config::{Cluster, LbPolicy};
use mesh_lb::{ClusterLb, LbContext, SeededRandom};

const CLUSTER: &str = r#"
name: reviews
type: STATIC
lb_policy: LEAST_REQUEST
load_assignment:
  cluster_name: reviews
  endpoints:
  - lb_endpoints:
    - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9081 } } }
    - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9082 } } }
    - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9083 } } }
"#;

fn spread(lb: &ClusterLb, n: usize, cx: impl Fn() -> LbContext) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        *counts
            .entry(lb.pick(&cx()).unwrap().address().port)
            .or_default() += 1;
    }
    counts
}

#[test]
fn a_cluster_loads_from_envoy_yaml_and_spreads_its_picks() {
    let loaded = mesh_xds::envoy::parse_cluster(CLUSTER).expect("a valid cluster");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.value.lb_policy, LbPolicy::LeastRequest);
    let lb = ClusterLb::new(&loaded.value).expect("builds");

    // The default context draws a fresh random value: every host gets a share.
    let counts = spread(&lb, 3000, LbContext::default);
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&c| c > 600), "{counts:?}");

    // A seeded generator spreads them too, and repeats exactly.
    let (a, b) = (SeededRandom::new(1), SeededRandom::new(1));
    let first = spread(&lb, 300, || LbContext::from_rng(&a));
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(first, spread(&lb, 300, || LbContext::from_rng(&b)));
}

#[test]
fn least_request_avoids_a_busy_host() {
    let cluster = mesh_xds::envoy::parse_cluster(CLUSTER).unwrap().value;
    let lb = ClusterLb::new(&cluster).unwrap();
    let busy = lb.hosts()[0].clone();
    let _held: Vec<_> = (0..50).map(|_| busy.start_request()).collect();
    // Envoy's power of two choices draws two hosts (with replacement) and keeps the less
    // loaded: the busy host is picked only when both draws land on it, 1 time in 9.
    let counts = spread(&lb, 1800, LbContext::default);
    let busy_picks = counts[&busy.address().port];
    assert!((100..=320).contains(&busy_picks), "{counts:?}");
}

#[test]
fn a_mistake_in_the_yaml_is_named_by_its_path() {
    let err = mesh_xds::envoy::parse_cluster(&CLUSTER.replace("port_value", "port_valu"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_valu"
        ),
        "{err}"
    );
}

#[test]
fn the_builders_need_no_other_crate() {
    let hosts = ["127.0.0.1:8081", "127.0.0.1:8082"].map(|a| a.parse().unwrap());
    let lb = ClusterLb::new(&Cluster::new_static("web", hosts)).unwrap();
    assert_eq!(spread(&lb, 10, LbContext::default).len(), 2);
}
