//! Envoy's runtime: layered key/value overrides of config defaults (`layered_runtime`).
//!
//! Layers are read in order and a later layer's value replaces an earlier one's: static layers
//! from the bootstrap, and an admin layer that `POST /runtime_modify` changes while the proxy
//! runs. Nested maps in a static layer flatten into dotted keys (`health_check.min_interval`),
//! except a map with a `numerator`, which is a fractional percent.
//!
//! What reads the runtime here, with Envoy's keys:
//! - a route match's `runtime_fraction.runtime_key` (an integer percent, or a fractional
//!   percent);
//! - a mirror policy's `runtime_fraction.runtime_key`;
//! - weighted clusters' `runtime_key_prefix` (`<prefix>.<cluster>` holds a weight);
//! - HTTP filters, each for its own keys: [`Runtime::apply`] hands every filter config to a
//!   callback (mesh-proxy's fault filter reads Envoy's `fault.http.*` keys there).
//!
//! [`Runtime::apply`] writes the values into a config before it is compiled, so the request
//! path reads nothing at run time: a runtime change recompiles the config, as a reload does.
//!
//! ```
//! use mesh_core::config::*;
//! use mesh_core::runtime::Runtime;
//!
//! let layered = LayeredRuntime {
//!     layers: vec![RuntimeLayer::static_layer(
//!         "base",
//!         serde_json::json!({"routing": {"canary": 25}}),
//!     )],
//! };
//! let rt = Runtime::new(&layered, &Default::default());
//! assert_eq!(rt.get("routing.canary"), Some("25"));
//! assert_eq!(
//!     rt.fraction("routing.canary", FractionalPercent::percent(0)),
//!     FractionalPercent::percent(25)
//! );
//! ```

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{
    Action, Bootstrap, Denominator, FractionalPercent, LayeredRuntime, RouteConfiguration,
    RouteSource, RuntimeFraction, RuntimeLayerKind,
};

/// One HTTP filter's config, handed to [`Runtime::apply`]'s callback.
#[derive(Debug)]
pub struct FilterConfig<'a> {
    /// The filter's name (a per-route config's key).
    pub name: &'a str,
    /// Its type URL, when given.
    pub type_url: Option<&'a str>,
    /// Its config, to apply runtime values to.
    pub config: &'a mut Value,
}

/// One runtime value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeValue {
    /// A scalar, as text (numbers and booleans as Envoy prints them).
    Text(String),
    /// A fractional percent (a map with `numerator` and `denominator`).
    Fraction(FractionalPercent),
}

/// The runtime's values: every layer merged, later layers winning.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Runtime {
    values: BTreeMap<String, RuntimeValue>,
    /// Per key, its value in each layer (in layer order), for `GET /runtime`.
    layer_values: BTreeMap<String, Vec<Option<String>>>,
    layer_names: Vec<String>,
}

impl Runtime {
    /// The runtime of `layered`, with `admin` as the admin layer's values (an empty
    /// `layered` has one admin layer, as Envoy's default runtime does).
    pub fn new(layered: &LayeredRuntime, admin: &BTreeMap<String, String>) -> Self {
        let mut rt = Runtime::default();
        let implicit;
        let layers = if layered.layers.is_empty() {
            implicit = [crate::config::RuntimeLayer {
                name: String::new(),
                kind: RuntimeLayerKind::Admin,
            }];
            &implicit[..]
        } else {
            &layered.layers[..]
        };
        let n = layers.len();
        for (i, layer) in layers.iter().enumerate() {
            rt.layer_names.push(layer.name.clone());
            let mut flat = BTreeMap::new();
            match &layer.kind {
                RuntimeLayerKind::Static(v) => flatten("", v, &mut flat),
                RuntimeLayerKind::Admin => {
                    for (k, v) in admin {
                        flat.insert(k.clone(), RuntimeValue::Text(v.clone()));
                    }
                }
            }
            for (k, v) in flat {
                let shown = match &v {
                    RuntimeValue::Text(t) => t.clone(),
                    RuntimeValue::Fraction(f) => {
                        format!("{}/{}", f.numerator, f.denominator.value())
                    }
                };
                rt.layer_values
                    .entry(k.clone())
                    .or_insert_with(|| vec![None; n])[i] = Some(shown);
                rt.values.insert(k, v);
            }
        }
        rt
    }

    /// Whether the runtime has an admin layer (`POST /runtime_modify` needs one).
    pub fn has_admin_layer(layered: &LayeredRuntime) -> bool {
        layered.layers.is_empty()
            || layered
                .layers
                .iter()
                .any(|l| matches!(l.kind, RuntimeLayerKind::Admin))
    }

    /// A key's value as text (a fractional percent as `numerator/denominator`).
    pub fn get(&self, key: &str) -> Option<&str> {
        match self.values.get(key)? {
            RuntimeValue::Text(t) => Some(t),
            RuntimeValue::Fraction(_) => None,
        }
    }

    /// A key's value as an unsigned integer.
    pub fn u64(&self, key: &str) -> Option<u64> {
        let t = self.get(key)?;
        t.parse::<u64>().ok().or_else(|| {
            t.parse::<f64>()
                .ok()
                .filter(|f| *f >= 0.0)
                .map(|f| f as u64)
        })
    }

    /// Envoy's `featureEnabled` value for `key`: a fractional percent, or an integer percent
    /// (over 100 means always); `default` when the key has no usable value.
    pub fn fraction(&self, key: &str, default: FractionalPercent) -> FractionalPercent {
        match self.values.get(key) {
            Some(RuntimeValue::Fraction(f)) => *f,
            Some(RuntimeValue::Text(_)) => match self.u64(key) {
                Some(n) => FractionalPercent::percent(u32::try_from(n.min(100)).unwrap_or(100)),
                None => default,
            },
            None => default,
        }
    }

    /// The layers' names, in order.
    pub fn layer_names(&self) -> &[String] {
        &self.layer_names
    }

    /// Every key with its final value and its value in each layer.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Option<&str>, &[Option<String>])> {
        self.layer_values.iter().map(|(k, per_layer)| {
            let last = per_layer.iter().rev().find_map(|v| v.as_deref());
            (k.as_str(), last, per_layer.as_slice())
        })
    }

    /// Writes the runtime's values into `b` where Envoy would read them (see the module
    /// docs). Keys without a value leave the config as it is. Each HTTP filter config (the
    /// connection managers' and the per-route ones) is handed to `filter`, with the filter's
    /// name and type URL, for the filter to apply its own runtime keys.
    pub fn apply(&self, b: &mut Bootstrap, mut filter: impl FnMut(&Self, FilterConfig<'_>)) {
        if self.values.is_empty() {
            return;
        }
        for l in &mut b.listeners {
            for hcm in l.hcms_mut() {
                for f in &mut hcm.http_filters {
                    filter(
                        self,
                        FilterConfig {
                            name: &f.name,
                            type_url: f.type_url.as_deref(),
                            config: &mut f.config,
                        },
                    );
                }
                if let RouteSource::RouteConfig(rc) = &mut hcm.route {
                    self.apply_routes(rc, &mut filter);
                }
            }
        }
        for rc in &mut b.route_configs {
            self.apply_routes(rc, &mut filter);
        }
    }

    fn apply_fraction(&self, f: &mut Option<RuntimeFraction>) {
        if let Some(f) = f
            && !f.runtime_key.is_empty()
        {
            f.default_value = self.fraction(&f.runtime_key, f.default_value);
        }
    }

    fn apply_routes(
        &self,
        rc: &mut RouteConfiguration,
        filter: &mut impl FnMut(&Self, FilterConfig<'_>),
    ) {
        for m in &mut rc.request_mirror_policies {
            self.apply_fraction(&mut m.runtime_fraction);
        }
        for vh in &mut rc.virtual_hosts {
            for m in &mut vh.request_mirror_policies {
                self.apply_fraction(&mut m.runtime_fraction);
            }
            self.per_route(&mut vh.typed_per_filter_config, filter);
            for r in &mut vh.routes {
                self.apply_fraction(&mut r.route_match.runtime_fraction);
                self.per_route(&mut r.typed_per_filter_config, filter);
                if let Action::Route(a) = &mut r.action {
                    for m in &mut a.request_mirror_policies {
                        self.apply_fraction(&mut m.runtime_fraction);
                    }
                    if let crate::config::ClusterSpecifier::WeightedClusters(w) = &mut a.cluster
                        && !w.runtime_key_prefix.is_empty()
                    {
                        for c in &mut w.clusters {
                            let key = format!("{}.{}", w.runtime_key_prefix, c.name);
                            if let Some(n) = self.u64(&key) {
                                c.weight = u32::try_from(n).unwrap_or(u32::MAX);
                            }
                        }
                    }
                }
            }
        }
    }

    fn per_route(
        &self,
        configs: &mut BTreeMap<String, Value>,
        filter: &mut impl FnMut(&Self, FilterConfig<'_>),
    ) {
        for (name, v) in configs.iter_mut() {
            let type_url = v.get("@type").and_then(Value::as_str).map(str::to_owned);
            filter(
                self,
                FilterConfig {
                    name,
                    type_url: type_url.as_deref(),
                    config: v,
                },
            );
        }
    }
}

/// Flattens a static layer into dotted keys; a map with `numerator` is a fraction.
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, RuntimeValue>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(m) if m.contains_key("numerator") && !prefix.is_empty() => {
            let numerator = m
                .get("numerator")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0);
            let denominator = match m.get("denominator").and_then(Value::as_str) {
                Some("TEN_THOUSAND") => Denominator::TenThousand,
                Some("MILLION") => Denominator::Million,
                _ => Denominator::Hundred,
            };
            out.insert(
                prefix.to_owned(),
                RuntimeValue::Fraction(FractionalPercent {
                    numerator,
                    denominator,
                }),
            );
        }
        Value::Object(m) => {
            for (k, v) in m {
                flatten(&key(k), v, out);
            }
        }
        Value::Null => {}
        Value::String(s) => {
            out.insert(prefix.to_owned(), RuntimeValue::Text(s.clone()));
        }
        other => {
            out.insert(prefix.to_owned(), RuntimeValue::Text(other.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuntimeLayer;

    #[test]
    fn later_layers_win_and_maps_flatten() {
        let layered = LayeredRuntime {
            layers: vec![
                RuntimeLayer::static_layer(
                    "base",
                    serde_json::json!({"a": {"b": 1, "c": "x"}, "f": {"numerator": 5, "denominator": "TEN_THOUSAND"}}),
                ),
                RuntimeLayer::static_layer("override", serde_json::json!({"a.b": 2})),
                RuntimeLayer::admin("admin"),
            ],
        };
        let admin = BTreeMap::from([("a.c".to_owned(), "y".to_owned())]);
        let rt = Runtime::new(&layered, &admin);
        assert_eq!(rt.get("a.b"), Some("2"));
        assert_eq!(rt.get("a.c"), Some("y"));
        assert_eq!(
            rt.fraction("f", FractionalPercent::percent(0)),
            FractionalPercent {
                numerator: 5,
                denominator: Denominator::TenThousand
            }
        );
        assert_eq!(
            rt.fraction("a.b", FractionalPercent::percent(0)),
            FractionalPercent::percent(2)
        );
        assert_eq!(
            rt.fraction("missing", FractionalPercent::percent(7)),
            FractionalPercent::percent(7)
        );
        let entries: Vec<_> = rt.entries().map(|(k, v, _)| (k, v)).collect();
        assert!(entries.contains(&("a.b", Some("2"))));
        assert!(Runtime::has_admin_layer(&layered));
        assert!(Runtime::has_admin_layer(&LayeredRuntime::default()));
    }

    #[test]
    fn over_one_hundred_percent_is_always() {
        let admin = BTreeMap::from([("k".to_owned(), "150".to_owned())]);
        let rt = Runtime::new(&LayeredRuntime::default(), &admin);
        assert_eq!(
            rt.fraction("k", FractionalPercent::percent(0)),
            FractionalPercent::percent(100)
        );
    }
}
