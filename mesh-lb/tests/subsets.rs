//! Subsets built from the cluster's `lb_subset_config` and picked with a route's
//! `metadata_match` through `ClusterLb::pick_index_matching` (SEMANTICS.md §4.10).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use mesh_core::config::{
    Cluster, LbSubsetConfig, LbSubsetFallbackPolicy, LbSubsetSelector,
    LbSubsetSelectorFallbackPolicy,
};
use mesh_lb::{ClusterLb, PickContext};
use serde_json::Value;

/// Hosts: 0 v1/blue, 1 v1/green, 2 v2/blue, 3 (no metadata).
fn cluster(config: LbSubsetConfig) -> ClusterLb {
    let mut c = Cluster::new_static(
        "s",
        (0..4).map(|i| SocketAddr::from(([10, 0, 0, i + 1], 80))),
    );
    let eps = &mut c.load_assignment.as_mut().unwrap().endpoints[0].lb_endpoints;
    for (i, (v, s)) in [("v1", "blue"), ("v1", "green"), ("v2", "blue")]
        .iter()
        .enumerate()
    {
        let m = eps[i].metadata.entry("envoy.lb".into()).or_default();
        m.insert("version".into(), (*v).into());
        m.insert("stage".into(), (*s).into());
    }
    c.lb_subset_config = Some(config);
    ClusterLb::new(&c).unwrap()
}

fn want(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect()
}

/// Every host 60 picks reach (`None` when a pick gives no host).
fn reached(lb: &ClusterLb, w: &BTreeMap<String, Value>) -> BTreeSet<Option<usize>> {
    (0..60)
        .map(|r| lb.pick_index_matching(w, &PickContext::new(r)))
        .collect()
}

fn hosts(v: &[usize]) -> BTreeSet<Option<usize>> {
    v.iter().map(|&i| Some(i)).collect()
}

fn none() -> BTreeSet<Option<usize>> {
    [None].into()
}

fn selector(keys: &[&str]) -> LbSubsetSelector {
    LbSubsetSelector {
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        ..LbSubsetSelector::default()
    }
}

fn config(fallback: LbSubsetFallbackPolicy, selectors: Vec<LbSubsetSelector>) -> LbSubsetConfig {
    LbSubsetConfig {
        fallback_policy: fallback,
        default_subset: want(&[("stage", "green")]),
        subset_selectors: selectors,
    }
}

#[test]
fn a_selector_hit_picks_only_that_subset() {
    let lb = cluster(config(
        LbSubsetFallbackPolicy::NoFallback,
        vec![selector(&["version"]), selector(&["version", "stage"])],
    ));
    assert_eq!(lb.subsets().map(|s| s.len()), Some(5));
    assert_eq!(reached(&lb, &want(&[("version", "v1")])), hosts(&[0, 1]));
    assert_eq!(reached(&lb, &want(&[("version", "v2")])), hosts(&[2]));
    assert_eq!(
        reached(&lb, &want(&[("stage", "blue"), ("version", "v1")])),
        hosts(&[0])
    );
}

#[test]
fn no_fallback_gives_no_host() {
    let lb = cluster(config(
        LbSubsetFallbackPolicy::NoFallback,
        vec![selector(&["version"])],
    ));
    assert_eq!(reached(&lb, &want(&[("version", "v3")])), none());
    // A key no selector has, and no metadata_match at all: the top-level policy.
    assert_eq!(reached(&lb, &want(&[("stage", "blue")])), none());
    assert_eq!(lb.pick_index_with(&PickContext::new(3)), None);
}

#[test]
fn any_endpoint_falls_back_to_every_host() {
    let lb = cluster(config(
        LbSubsetFallbackPolicy::AnyEndpoint,
        vec![selector(&["version"])],
    ));
    assert_eq!(
        reached(&lb, &want(&[("version", "v3")])),
        hosts(&[0, 1, 2, 3])
    );
    let all: BTreeSet<_> = (0..60)
        .map(|r| lb.pick_index_with(&PickContext::new(r)))
        .collect();
    assert_eq!(all, hosts(&[0, 1, 2, 3]), "no metadata_match ⇒ fallback");
}

#[test]
fn default_subset_falls_back_to_its_hosts() {
    let lb = cluster(config(
        LbSubsetFallbackPolicy::DefaultSubset,
        vec![selector(&["version"])],
    ));
    assert_eq!(reached(&lb, &want(&[("version", "v3")])), hosts(&[1]));
    // A default subset that matches no host behaves as NO_FALLBACK.
    let mut c = config(
        LbSubsetFallbackPolicy::DefaultSubset,
        vec![selector(&["version"])],
    );
    c.default_subset = want(&[("stage", "red")]);
    assert_eq!(reached(&cluster(c), &want(&[("version", "v3")])), none());
}

#[test]
fn selector_fallback_policies_override_the_top_level() {
    let w = want(&[("version", "v2"), ("stage", "green")]);
    let with = |f: LbSubsetSelectorFallbackPolicy, top| {
        let mut sel = selector(&["version", "stage"]);
        sel.fallback_policy = f;
        sel.fallback_keys_subset = vec!["version".into()];
        cluster(config(top, vec![sel, selector(&["version"])]))
    };
    use LbSubsetFallbackPolicy as Top;
    use LbSubsetSelectorFallbackPolicy as Sel;
    assert_eq!(
        reached(&with(Sel::NotDefined, Top::AnyEndpoint), &w),
        hosts(&[0, 1, 2, 3])
    );
    assert_eq!(
        reached(&with(Sel::NoFallback, Top::AnyEndpoint), &w),
        none()
    );
    assert_eq!(
        reached(&with(Sel::AnyEndpoint, Top::NoFallback), &w),
        hosts(&[0, 1, 2, 3])
    );
    assert_eq!(
        reached(&with(Sel::DefaultSubset, Top::NoFallback), &w),
        hosts(&[1])
    );
    assert_eq!(
        reached(&with(Sel::KeysSubset, Top::NoFallback), &w),
        hosts(&[2]),
        "retried with version only"
    );
}

#[test]
fn a_cluster_without_subsets_ignores_metadata_match() {
    let c = Cluster::new_static("plain", ["10.0.0.1:80".parse().unwrap()]);
    let lb = ClusterLb::new(&c).unwrap();
    assert!(lb.subsets().is_none());
    assert_eq!(
        lb.pick_index_matching(&want(&[("version", "v9")]), &PickContext::new(1)),
        Some(0)
    );
}
