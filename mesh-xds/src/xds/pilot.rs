//! A control plane from Istio YAML: each connecting proxy gets its own view, chosen as istiod
//! chooses it, from the node it names.
//!
//! - The node id's type (`sidecar~IP~POD.NS~NS.svc.cluster.local`, `router~…`) picks the
//!   sidecar or the gateway translation; the node metadata gives the namespace (`NAMESPACE`,
//!   else the id's `POD.NS`) and the workload's labels (`LABELS`), which select the Gateways
//!   a gateway serves and the `sourceLabels` rules a sidecar applies.
//! - A node whose metadata says `GENERATOR: grpc` is a proxyless gRPC client: it is served
//!   `ApiListener`s named `<host>:<port>` for every service port (fully qualified, and the
//!   short forms users type: `reviews:9080`), with the sidecar's routes, clusters and
//!   endpoints, so `xds:///reviews.default.svc.cluster.local:9080` resolves.
//! - A sidecar whose metadata says `INTERCEPTION_MODE: REDIRECT` (as Istio's agent writes it
//!   for a pod behind `istio-iptables`) and names no `MESH_OUTBOUND_PORT` gets the captured
//!   layout (`virtualOutbound` on 15001, `virtualInbound` on 15006, a listener per service
//!   port); its `LABELS` select the workload whose ports it serves inbound.
//! - Two extensions for running on a laptop: `MESH_OUTBOUND_PORT` (the sidecar's outbound
//!   listener port, default 15001) and `MESH_PORT_MAP` (`"80=18080,443=18443"`: a gateway
//!   binds a server port elsewhere, as a Kubernetes Service's targetPort would).
//!
//! Views are cached by what selects them (kind, namespace, labels, ports): proxies that share
//! them share one snapshot, computed once. Clusters are served as EDS clusters with their
//! endpoints apart and listeners' routes over RDS, so a change to a service's endpoints
//! pushes EDS only.
//!
//! ```
//! use mesh_core::config::Node;
//! use mesh_xds::xds::pilot::{NodeView, ProxyKind};
//!
//! let mut node = Node {
//!     id: "router~10.0.0.9~ingress-7d.istio-system~istio-system.svc.cluster.local".into(),
//!     ..Node::default()
//! };
//! node.metadata.insert("LABELS".into(), serde_json::json!({"istio": "ingressgateway"}));
//! let view = NodeView::of(&node);
//! assert_eq!(view.kind, ProxyKind::Gateway);
//! assert_eq!(view.namespace, "istio-system");
//! assert_eq!(view.labels["istio"], "ingressgateway");
//!
//! // A pod's sidecar behind istio-iptables: Istio's listener layout.
//! let mut node = Node {
//!     id: "sidecar~10.1.0.1~productpage-v1-7d.default~default.svc.cluster.local".into(),
//!     ..Node::default()
//! };
//! node.metadata.insert("INTERCEPTION_MODE".into(), "REDIRECT".into());
//! node.metadata.insert("LABELS".into(), serde_json::json!({"app": "productpage"}));
//! let view = NodeView::of(&node);
//! assert!(view.captured);
//! let resources = mesh_xds::istio::Resources::default();
//! let (snapshot, _) = mesh_xds::xds::pilot::view(&resources, &view).unwrap();
//! let listeners: Vec<&str> =
//!     snapshot.names(mesh_xds::xds::resource::ResourceType::Listener).collect();
//! assert!(listeners.contains(&"virtualOutbound") && listeners.contains(&"virtualInbound"));
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use mesh_core::config::{
    Bootstrap, ClusterLoadAssignment, DiscoveryType, LbPolicy, Node, RouteConfiguration,
    RouteSource,
};
use serde_json::{Value, json};

use super::resource::{self, Resource, ResourceType};
use super::server::{Snapshot, SnapshotCache};
use crate::LoadError;
use crate::envoy::Warning;
use crate::istio::{self, Options, Resources, Role};

/// What kind of proxy a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProxyKind {
    /// A sidecar (`sidecar~…`, and any node that does not say otherwise).
    Sidecar,
    /// A gateway (`router~…`).
    Gateway,
    /// A proxyless gRPC client (`GENERATOR: grpc`).
    Grpc,
}

/// What selects a node's view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeView {
    /// The kind of proxy.
    pub kind: ProxyKind,
    /// Its namespace.
    pub namespace: String,
    /// Its workload's labels.
    pub labels: BTreeMap<String, String>,
    /// The sidecar's outbound listener port (`MESH_OUTBOUND_PORT`, default 15001).
    pub outbound_port: u16,
    /// Gateway server port → port bound (`MESH_PORT_MAP`).
    pub port_map: BTreeMap<u16, u16>,
    /// A sidecar behind the iptables capture (`INTERCEPTION_MODE: REDIRECT`, no
    /// `MESH_OUTBOUND_PORT`): Istio's listener layout.
    pub captured: bool,
}

/// The sidecar outbound port when the node does not name one (Istio's).
pub const DEFAULT_OUTBOUND_PORT: u16 = 15001;

impl NodeView {
    /// The view a node selects.
    pub fn of(node: &Node) -> Self {
        let mut parts = node.id.split('~');
        let kind_part = parts.next().unwrap_or("");
        let _ip = parts.next();
        let pod = parts.next().unwrap_or("");
        let meta_str = |k: &str| node.metadata.get(k).and_then(Value::as_str);
        let kind = if meta_str("GENERATOR") == Some("grpc") {
            ProxyKind::Grpc
        } else if kind_part == "router" {
            ProxyKind::Gateway
        } else {
            ProxyKind::Sidecar
        };
        let namespace = meta_str("NAMESPACE")
            .map(str::to_owned)
            .or_else(|| pod.split_once('.').map(|(_, ns)| ns.to_owned()))
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".into());
        let labels = node
            .metadata
            .get("LABELS")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let port = |v: &Value| match v {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        let named_port = node.metadata.get("MESH_OUTBOUND_PORT").and_then(port);
        let captured = kind == ProxyKind::Sidecar
            && named_port.is_none()
            && meta_str("INTERCEPTION_MODE") == Some("REDIRECT");
        let outbound_port = named_port.unwrap_or(DEFAULT_OUTBOUND_PORT);
        let port_map = meta_str("MESH_PORT_MAP")
            .map(|s| {
                s.split(',')
                    .filter_map(|pair| {
                        let (a, b) = pair.trim().split_once('=')?;
                        Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            kind,
            namespace,
            labels,
            outbound_port,
            port_map,
            captured,
        }
    }

    /// The key its snapshot is cached under.
    pub fn key(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let ports: Vec<String> = self
            .port_map
            .iter()
            .map(|(a, b)| format!("{a}={b}"))
            .collect();
        format!(
            "{:?}|{}|{}|{}|{}|{}",
            self.kind,
            self.namespace,
            labels.join(","),
            self.outbound_port,
            ports.join(","),
            self.captured
        )
    }

    fn options(&self) -> Options {
        let role = match self.kind {
            ProxyKind::Sidecar if self.captured => Role::CapturedSidecar {
                labels: self.labels.clone(),
            },
            ProxyKind::Sidecar | ProxyKind::Grpc => Role::Sidecar {
                outbound_port: self.outbound_port,
                labels: self.labels.clone(),
            },
            ProxyKind::Gateway => Role::Gateway {
                labels: self.labels.clone(),
                port_map: self.port_map.clone(),
            },
        };
        Options::with_role(role).namespace(self.namespace.clone())
    }
}

/// A view's resources: the translation for the node, served as xDS.
///
/// # Errors
/// The translation's error (an Istio config it refuses).
pub fn view(resources: &Resources, view: &NodeView) -> Result<(Snapshot, Vec<Warning>), LoadError> {
    let translated = istio::translate(resources, &view.options())?;
    let split = split(&translated.value);
    let snapshot = if view.kind == ProxyKind::Grpc {
        grpc_view(&translated.value, &split)
    } else {
        Snapshot::new(split)
    };
    Ok((snapshot, translated.warnings))
}

/// A config as xDS serves it: static clusters become EDS clusters with their endpoints apart,
/// and listeners' inline routes are served over RDS (named by the route configuration, else by
/// the listener).
pub fn split(b: &Bootstrap) -> Vec<Resource> {
    let mut out = Vec::new();
    for c in &b.clusters {
        let mut c = c.clone();
        if c.discovery_type == DiscoveryType::Static
            && let Some(la) = c.load_assignment.take()
        {
            c.discovery_type = DiscoveryType::Eds;
            c.eds_service_name = None;
            let mut la = ClusterLoadAssignment {
                cluster_name: c.name.clone(),
                ..la
            };
            // gRPC clients ignore localities without a weight; Envoy ignores the weights
            // unless the cluster asks for locality-weighted balancing.
            for l in &mut la.endpoints {
                l.load_balancing_weight.get_or_insert(1);
            }
            out.push(Resource::Endpoints(la));
        }
        out.push(Resource::Cluster(c));
    }
    let mut routes: BTreeMap<String, RouteConfiguration> = BTreeMap::new();
    for l in &b.listeners {
        let mut l = l.clone();
        let name = l.name.clone();
        for (i, hcm) in l.hcms_mut().enumerate() {
            if let RouteSource::RouteConfig(rc) = &hcm.route {
                let mut rc = rc.clone();
                if rc.name.is_empty() || routes.get(&rc.name).is_some_and(|r| *r != rc) {
                    rc.name = if i == 0 {
                        name.clone()
                    } else {
                        format!("{name}_{i}")
                    };
                }
                // Over RDS, Envoy does not check cluster names (the clusters may come later).
                rc.validate_clusters = None;
                hcm.route = RouteSource::Rds(rc.name.clone());
                routes.insert(rc.name.clone(), rc);
            }
        }
        out.push(Resource::Listener(l));
    }
    for rc in &b.route_configs {
        routes.entry(rc.name.clone()).or_insert_with(|| rc.clone());
    }
    out.extend(routes.into_values().map(Resource::Route));
    out
}

/// The view of a proxyless gRPC client: an `ApiListener` per `host:port` the sidecar's routes
/// serve, pointing at the sidecar's route configuration, with its clusters and endpoints.
fn grpc_view(b: &Bootstrap, split: &[Resource]) -> Snapshot {
    // gRPC balances round robin or by ring hash (as istiod's gRPC generator serves it): other
    // policies (Istio's default LEAST_REQUEST among them) become round robin.
    let mut snapshot = Snapshot::new(
        split
            .iter()
            .filter(|r| r.resource_type() != ResourceType::Listener)
            .cloned()
            .map(|r| match r {
                Resource::Cluster(mut c) => {
                    if !matches!(c.lb_policy, LbPolicy::RoundRobin | LbPolicy::RingHash) {
                        c.lb_policy = LbPolicy::RoundRobin;
                    }
                    Resource::Cluster(c)
                }
                r => r,
            }),
    );
    for l in &b.listeners {
        for hcm in l.hcms() {
            let RouteSource::RouteConfig(rc) = &hcm.route else {
                continue;
            };
            let route_name = if rc.name.is_empty() {
                l.name.clone()
            } else {
                rc.name.clone()
            };
            // The connection manager as the sidecar has it, its routes over RDS.
            let mut typed = crate::envoy::dump::http_connection_manager(hcm);
            if let Value::Object(m) = &mut typed {
                m.remove("route_config");
                m.insert(
                    "rds".into(),
                    json!({"route_config_name": route_name, "config_source": {"ads": {}, "resource_api_version": "V3"}}),
                );
            }
            for vh in &rc.virtual_hosts {
                for domain in &vh.domains {
                    // Only host:port forms name a target (`xds:///reviews:9080`).
                    let Some((host, port)) = domain.rsplit_once(':') else {
                        continue;
                    };
                    if host.is_empty() || host.contains('*') || port.parse::<u16>().is_err() {
                        continue;
                    }
                    let listener = json!({
                        "name": domain,
                        "api_listener": {"api_listener": typed},
                    });
                    match resource::encode_schema_only(ResourceType::Listener, &listener) {
                        Ok(any) => {
                            let _ = snapshot.insert_encoded(domain.clone(), any);
                        }
                        Err(e) => {
                            tracing::warn!(listener = %domain, error = %e, "api listener not served")
                        }
                    }
                }
            }
        }
    }
    snapshot
}

/// A control plane over Istio YAML: a [`SnapshotCache`] that computes each node's view the
/// first time one of its proxies connects, and recomputes every view when the YAML changes.
pub struct Pilot {
    cache: Arc<SnapshotCache>,
    state: Arc<PilotState>,
}

impl std::fmt::Debug for Pilot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pilot")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

struct PilotState {
    resources: RwLock<Arc<Resources>>,
    views: Mutex<BTreeMap<String, NodeView>>,
}

impl PilotState {
    /// A view's snapshot from the resources now; `Err` (logged) when the translation refuses
    /// them, and the view keeps what it had.
    fn compute(&self, key: &str, v: &NodeView) -> Result<Snapshot, LoadError> {
        let resources = self
            .resources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match view(&resources, v) {
            Ok((snapshot, warnings)) => {
                for w in warnings {
                    tracing::debug!(view = %key, path = %w.path, "istio field ignored: {}", w.message);
                }
                Ok(snapshot)
            }
            Err(e) => {
                tracing::warn!(view = %key, error = %e, "view not computed; it keeps what it had");
                Err(e)
            }
        }
    }
}

impl Pilot {
    /// A control plane serving `resources`.
    pub fn new(resources: Resources) -> Self {
        let state = Arc::new(PilotState {
            resources: RwLock::new(Arc::new(resources)),
            views: Mutex::new(BTreeMap::new()),
        });
        let miss_state = state.clone();
        let cache = SnapshotCache::with_key(|n| NodeView::of(n).key()).on_miss(move |key, node| {
            let v = NodeView::of(node);
            // Registered before it is computed: an update meanwhile recomputes it too, and the
            // cache keeps the newer snapshot.
            miss_state
                .views
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.to_owned(), v.clone());
            tracing::info!(view = %key, node = %node.id, "view computed");
            miss_state.compute(key, &v).ok()
        });
        Self {
            cache: Arc::new(cache),
            state,
        }
    }

    /// The cache to serve (with [`super::server::XdsServer`]).
    pub fn cache(&self) -> &Arc<SnapshotCache> {
        &self.cache
    }

    /// Replaces the Istio resources and recomputes every view that proxies use (views nobody
    /// is connected to any more are forgotten); each stream is sent only what changed for it.
    /// A view whose translation fails keeps its last snapshot.
    ///
    /// # Errors
    /// Each view that could not be computed, with its key and the translation's error.
    pub fn update(&self, resources: Resources) -> Result<(), Vec<(String, LoadError)>> {
        *self
            .state
            .resources
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(resources);
        let live = self.cache.keys();
        let views = {
            let mut views = self.state.views.lock().unwrap_or_else(|p| p.into_inner());
            views.retain(|k, _| live.contains(k));
            views.clone()
        };
        let mut errors = Vec::new();
        for (key, v) in views {
            match self.state.compute(&key, &v) {
                Ok(snapshot) => self.cache.update_computed(&key, snapshot),
                Err(e) => errors.push((key, e)),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The views computed so far, by key.
    pub fn views(&self) -> BTreeMap<String, NodeView> {
        self.state
            .views
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
