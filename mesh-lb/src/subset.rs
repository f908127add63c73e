//! Envoy's subset load balancer (`lb_subset_config`, SEMANTICS.md §4.10).
//!
//! Hosts are partitioned by their `envoy.lb` endpoint metadata: for each selector (a set of
//! keys) every distinct combination of values among the hosts that carry all those keys is a
//! subset. A request's route `metadata_match` selects the subset whose key/value pairs equal
//! it exactly; each subset balances with the cluster's policy, priorities and panic mode.
//!
//! When no subset matches, the fallback applies: the selector whose keys equal the request's
//! keys decides first (its `fallback_policy`, or `KEYS_SUBSET` to retry with fewer keys); if
//! it says nothing, or no selector has those keys, or the request has no `metadata_match`, the
//! top-level [`FallbackPolicy`]: `NO_FALLBACK` (no host: 503), `ANY_ENDPOINT` (all hosts) or
//! `DEFAULT_SUBSET` (hosts matching `default_subset`; an empty `default_subset` matches every
//! host, and one that matches none behaves as `NO_FALLBACK`).
//!
//! A [`ClusterLb`] built from a cluster with `lb_subset_config` holds a [`SubsetLb`] and serves
//! [`ClusterLb::pick_index_matching`] from it; one can also be built by hand from a
//! [`ClusterLb`] and a [`SubsetConfig`], as below. Subsets do not balance by locality weight
//! (Envoy's `locality_weight_aware` is not supported).
//!
//! ```
//! # use std::collections::BTreeMap;
//! use mesh_lb::subset::{FallbackPolicy, SubsetConfig, SubsetLb, SubsetSelector};
//! # let mut cluster = mesh_core::config::Cluster::new_static("web", ["10.0.0.1:80".parse().unwrap(), "10.0.0.2:80".parse().unwrap()]);
//! # for (i, v) in ["v1", "v2"].iter().enumerate() {
//! #     let ep = &mut cluster.load_assignment.as_mut().unwrap().endpoints[0].lb_endpoints[i];
//! #     ep.metadata.entry("envoy.lb".into()).or_default().insert("version".into(), (*v).into());
//! # }
//! let lb = mesh_lb::ClusterLb::new(&cluster).unwrap();
//! let subsets = SubsetLb::new(&lb, SubsetConfig {
//!     fallback_policy: FallbackPolicy::NoFallback,
//!     default_subset: BTreeMap::new(),
//!     subset_selectors: vec![SubsetSelector::new(["version"])],
//! });
//! let want: BTreeMap<String, serde_json::Value> = [("version".to_owned(), "v2".into())].into();
//! let i = subsets.pick_index(&want, &mesh_lb::PickContext::new(1)).unwrap();
//! assert_eq!(lb.hosts()[i].address().host, "10.0.0.2");
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mesh_core::config::{LbSubsetConfig, LbSubsetFallbackPolicy, LbSubsetSelectorFallbackPolicy};
use serde_json::Value;

use crate::cluster::{LbCore, LbStats};
use crate::{ClusterLb, Host, PickContext};

/// The metadata namespace subsets are built from.
pub const LB_METADATA: &str = "envoy.lb";

/// Top-level fallback when no subset matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FallbackPolicy {
    /// No host (Envoy's default).
    #[default]
    NoFallback,
    /// Any host of the cluster.
    AnyEndpoint,
    /// The hosts matching `default_subset`.
    DefaultSubset,
}

/// A selector's own fallback.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SelectorFallback {
    /// Use the top-level policy (default).
    #[default]
    NotDefined,
    /// No host.
    NoFallback,
    /// Any host of the cluster.
    AnyEndpoint,
    /// The default subset.
    DefaultSubset,
    /// Retry with only these keys of the request's `metadata_match`.
    KeysSubset(Vec<String>),
}

/// One subset selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubsetSelector {
    /// The metadata keys that define the subsets.
    pub keys: Vec<String>,
    /// What to do when a request with exactly these keys matches no subset.
    pub fallback_policy: SelectorFallback,
}

impl SubsetSelector {
    /// A selector over `keys` with no fallback of its own.
    pub fn new<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            keys: keys.into_iter().map(Into::into).collect(),
            fallback_policy: SelectorFallback::NotDefined,
        }
    }
}

/// Envoy's `lb_subset_config` (the parts implemented).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubsetConfig {
    /// Top-level fallback.
    pub fallback_policy: FallbackPolicy,
    /// Metadata of the default subset.
    pub default_subset: BTreeMap<String, Value>,
    /// Selectors.
    pub subset_selectors: Vec<SubsetSelector>,
}

impl From<&LbSubsetConfig> for SubsetConfig {
    fn from(c: &LbSubsetConfig) -> Self {
        Self {
            fallback_policy: match c.fallback_policy {
                LbSubsetFallbackPolicy::NoFallback => FallbackPolicy::NoFallback,
                LbSubsetFallbackPolicy::AnyEndpoint => FallbackPolicy::AnyEndpoint,
                LbSubsetFallbackPolicy::DefaultSubset => FallbackPolicy::DefaultSubset,
            },
            default_subset: c.default_subset.clone(),
            subset_selectors: c
                .subset_selectors
                .iter()
                .map(|s| SubsetSelector {
                    keys: s.keys.clone(),
                    fallback_policy: match s.fallback_policy {
                        LbSubsetSelectorFallbackPolicy::NotDefined => SelectorFallback::NotDefined,
                        LbSubsetSelectorFallbackPolicy::NoFallback => SelectorFallback::NoFallback,
                        LbSubsetSelectorFallbackPolicy::AnyEndpoint => {
                            SelectorFallback::AnyEndpoint
                        }
                        LbSubsetSelectorFallbackPolicy::DefaultSubset => {
                            SelectorFallback::DefaultSubset
                        }
                        LbSubsetSelectorFallbackPolicy::KeysSubset => {
                            SelectorFallback::KeysSubset(s.fallback_keys_subset.clone())
                        }
                    },
                })
                .collect(),
        }
    }
}

/// Canonical key of a subset: sorted `(key, JSON text of value)` pairs.
type SubsetKey = Vec<(String, String)>;

/// Subsets of one cluster, each balanced on its own.
#[derive(Debug)]
pub struct SubsetLb {
    subsets: BTreeMap<SubsetKey, LbCore>,
    selectors: BTreeMap<BTreeSet<String>, SelectorFallback>,
    fallback: Option<LbCore>,
    any: LbCore,
    top: FallbackPolicy,
}

fn canonical<'a>(pairs: impl Iterator<Item = (&'a String, &'a Value)>) -> SubsetKey {
    let mut k: SubsetKey = pairs.map(|(k, v)| (k.clone(), v.to_string())).collect();
    k.sort();
    k
}

fn lb_meta(h: &Host) -> Option<&serde_json::Map<String, Value>> {
    h.metadata().get(LB_METADATA)
}

impl SubsetLb {
    /// Builds the subsets of `lb`'s hosts. Picks return indexes into [`ClusterLb::hosts`].
    pub fn new(lb: &ClusterLb, config: SubsetConfig) -> Self {
        let hosts = lb.hosts();
        let core = lb.core();
        // Subsets balance without locality weights (no `locality_weight_aware`).
        let settings = Arc::new(crate::cluster::Settings {
            localities: None,
            ..(**core.settings()).clone()
        });
        let make = |members: Vec<usize>| {
            LbCore::new(
                members.iter().map(|&i| Arc::clone(&hosts[i])).collect(),
                Some(members),
                Arc::clone(core.epoch()),
                Arc::clone(&settings),
                Arc::new(LbStats::unregistered()),
            )
        };
        let mut groups: BTreeMap<SubsetKey, Vec<usize>> = BTreeMap::new();
        let mut selectors = BTreeMap::new();
        for sel in &config.subset_selectors {
            let keys: BTreeSet<String> = sel.keys.iter().cloned().collect();
            for (i, h) in hosts.iter().enumerate() {
                let Some(meta) = lb_meta(h) else { continue };
                let pairs: Option<Vec<(&String, &Value)>> = keys
                    .iter()
                    .map(|k| meta.get_key_value(k.as_str()))
                    .collect();
                if let Some(pairs) = pairs {
                    let g = groups.entry(canonical(pairs.into_iter())).or_default();
                    if !g.contains(&i) {
                        g.push(i);
                    }
                }
            }
            selectors
                .entry(keys)
                .or_insert_with(|| sel.fallback_policy.clone());
        }
        let default_members: Vec<usize> = (0..hosts.len())
            .filter(|&i| {
                config
                    .default_subset
                    .iter()
                    .all(|(k, v)| lb_meta(&hosts[i]).and_then(|m| m.get(k)) == Some(v))
            })
            .collect();
        let uses_default = config.fallback_policy == FallbackPolicy::DefaultSubset
            || selectors
                .values()
                .any(|f| *f == SelectorFallback::DefaultSubset);
        Self {
            subsets: groups.into_iter().map(|(k, m)| (k, make(m))).collect(),
            selectors,
            fallback: (uses_default && !default_members.is_empty()).then(|| make(default_members)),
            any: make((0..hosts.len()).collect()),
            top: config.fallback_policy,
        }
    }

    /// Number of subsets.
    pub fn len(&self) -> usize {
        self.subsets.len()
    }

    /// Whether there are no subsets.
    pub fn is_empty(&self) -> bool {
        self.subsets.is_empty()
    }

    /// Picks a host for a route's `metadata_match` (the `envoy.lb` map); returns an index into
    /// the cluster's hosts, or `None` when the fallback policy gives no host.
    pub fn pick_index(
        &self,
        metadata_match: &BTreeMap<String, Value>,
        cx: &PickContext,
    ) -> Option<usize> {
        self.choose(metadata_match)?.pick(cx)
    }

    fn top_fallback(&self) -> Option<&LbCore> {
        match self.top {
            FallbackPolicy::NoFallback => None,
            FallbackPolicy::AnyEndpoint => Some(&self.any),
            FallbackPolicy::DefaultSubset => self.fallback.as_ref(),
        }
    }

    fn choose(&self, want: &BTreeMap<String, Value>) -> Option<&LbCore> {
        if want.is_empty() {
            return self.top_fallback();
        }
        if let Some(s) = self.subsets.get(&canonical(want.iter())) {
            return Some(s);
        }
        let keys: BTreeSet<String> = want.keys().cloned().collect();
        match self.selectors.get(&keys) {
            None | Some(SelectorFallback::NotDefined) => self.top_fallback(),
            Some(SelectorFallback::NoFallback) => None,
            Some(SelectorFallback::AnyEndpoint) => Some(&self.any),
            Some(SelectorFallback::DefaultSubset) => self.fallback.as_ref(),
            Some(SelectorFallback::KeysSubset(fewer)) => {
                let narrowed: BTreeMap<String, Value> = want
                    .iter()
                    .filter(|(k, _)| fewer.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                match self.subsets.get(&canonical(narrowed.iter())) {
                    Some(s) if !narrowed.is_empty() => Some(s),
                    _ => self.top_fallback(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::config::Cluster;

    /// Hosts: 0 v1/a, 1 v1/b, 2 v2/a, 3 (no metadata).
    fn lb() -> ClusterLb {
        let mut c = Cluster::new_static(
            "c",
            (0..4).map(|i| std::net::SocketAddr::from(([10, 0, 0, i + 1], 80))),
        );
        let eps = &mut c.load_assignment.as_mut().unwrap().endpoints[0].lb_endpoints;
        for (i, (v, s)) in [("v1", "a"), ("v1", "b"), ("v2", "a")].iter().enumerate() {
            let m = eps[i].metadata.entry(LB_METADATA.into()).or_default();
            m.insert("version".into(), (*v).into());
            m.insert("stage".into(), (*s).into());
        }
        ClusterLb::new(&c).unwrap()
    }

    fn want(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect()
    }

    fn picks(s: &SubsetLb, w: &BTreeMap<String, Value>) -> BTreeSet<Option<usize>> {
        (0..50)
            .map(|r| s.pick_index(w, &PickContext::new(r)))
            .collect()
    }

    fn set(v: &[Option<usize>]) -> BTreeSet<Option<usize>> {
        v.iter().copied().collect()
    }

    fn config(top: FallbackPolicy, selectors: Vec<SubsetSelector>) -> SubsetConfig {
        SubsetConfig {
            fallback_policy: top,
            default_subset: want(&[("stage", "a")]),
            subset_selectors: selectors,
        }
    }

    #[test]
    fn exact_subsets() {
        let lb = lb();
        let s = SubsetLb::new(
            &lb,
            config(
                FallbackPolicy::NoFallback,
                vec![
                    SubsetSelector::new(["version"]),
                    SubsetSelector::new(["version", "stage"]),
                ],
            ),
        );
        assert_eq!(s.len(), 5);
        assert_eq!(
            picks(&s, &want(&[("version", "v1")])),
            set(&[Some(0), Some(1)])
        );
        assert_eq!(
            picks(&s, &want(&[("version", "v1"), ("stage", "b")])),
            set(&[Some(1)])
        );
        assert_eq!(picks(&s, &want(&[("version", "v3")])), set(&[None]));
        assert_eq!(picks(&s, &want(&[])), set(&[None]));
    }

    #[test]
    fn top_level_fallbacks() {
        let lb = lb();
        let sel = || vec![SubsetSelector::new(["version"])];
        let any = SubsetLb::new(&lb, config(FallbackPolicy::AnyEndpoint, sel()));
        assert_eq!(
            picks(&any, &want(&[("version", "v9")])),
            set(&[Some(0), Some(1), Some(2), Some(3)])
        );
        let def = SubsetLb::new(&lb, config(FallbackPolicy::DefaultSubset, sel()));
        assert_eq!(
            picks(&def, &want(&[("version", "v9")])),
            set(&[Some(0), Some(2)])
        );
        assert_eq!(picks(&def, &want(&[])), set(&[Some(0), Some(2)]));
        // A default subset that matches no host behaves as NO_FALLBACK.
        let mut cfg = config(FallbackPolicy::DefaultSubset, sel());
        cfg.default_subset = want(&[("stage", "zzz")]);
        assert_eq!(
            picks(&SubsetLb::new(&lb, cfg), &want(&[("version", "v9")])),
            set(&[None])
        );
        // An empty default subset matches every host.
        let mut cfg = config(FallbackPolicy::DefaultSubset, sel());
        cfg.default_subset.clear();
        assert_eq!(picks(&SubsetLb::new(&lb, cfg), &want(&[])).len(), 4);
    }

    #[test]
    fn selector_fallbacks() {
        let lb = lb();
        let sel = |f| {
            vec![SubsetSelector {
                keys: vec!["version".into(), "stage".into()],
                fallback_policy: f,
            }]
        };
        let w = want(&[("version", "v2"), ("stage", "b")]);
        let s = SubsetLb::new(
            &lb,
            config(
                FallbackPolicy::AnyEndpoint,
                sel(SelectorFallback::NoFallback),
            ),
        );
        assert_eq!(picks(&s, &w), set(&[None]), "selector overrides top level");
        let s = SubsetLb::new(
            &lb,
            config(
                FallbackPolicy::NoFallback,
                sel(SelectorFallback::DefaultSubset),
            ),
        );
        assert_eq!(picks(&s, &w), set(&[Some(0), Some(2)]));
        let mut selectors = sel(SelectorFallback::KeysSubset(vec!["version".into()]));
        selectors.push(SubsetSelector::new(["version"]));
        let s = SubsetLb::new(&lb, config(FallbackPolicy::NoFallback, selectors));
        assert_eq!(picks(&s, &w), set(&[Some(2)]), "retried with version only");
        // Keys no selector has: top level.
        let s = SubsetLb::new(
            &lb,
            config(
                FallbackPolicy::AnyEndpoint,
                sel(SelectorFallback::NoFallback),
            ),
        );
        assert_eq!(picks(&s, &want(&[("version", "v1")])).len(), 4);
    }

    #[test]
    fn subsets_see_health_changes() {
        let lb = lb();
        let s = SubsetLb::new(
            &lb,
            config(
                FallbackPolicy::NoFallback,
                vec![SubsetSelector::new(["version"])],
            ),
        );
        lb.hosts()[0].set_healthy(false);
        // v1 = {0, 1}: one of two healthy is 50 %, not panic ⇒ only host 1.
        assert_eq!(picks(&s, &want(&[("version", "v1")])), set(&[Some(1)]));
    }
}
