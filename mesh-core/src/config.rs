//! The declarative config model: what a bootstrap file, Istio YAML or xDS says.
//!
//! Every config source translates into [`Bootstrap`]; the runtime crates compile from it. The
//! types are plain data (`Clone + Debug + PartialEq`, public fields, serde) with constructors
//! and builder-style helpers for embedders. Field names and defaults follow Envoy's v3 API.
//!
//! ```
//! use mesh_core::config::*;
//! # use std::net::SocketAddr;
//! let upstream: SocketAddr = "127.0.0.1:8081".parse().unwrap();
//! let routes = RouteConfiguration::new("local")
//!     .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "web")));
//! let bootstrap = Bootstrap::default()
//!     .with_listener(Listener::http(
//!         "http",
//!         "127.0.0.1:0".parse().unwrap(),
//!         HttpConnectionManager::with_routes(routes),
//!     ))
//!     .with_cluster(Cluster::new_static("web", [upstream]));
//! bootstrap.validate().unwrap();
//! ```
//!
//! # Loading from YAML or JSON
//!
//! The serde form of these types is the model's own (snapshots, tests), not Envoy's: Envoy's
//! `match: { prefix: / }` is not the model's shape, and serde would report a misleading missing
//! field. Envoy v3 and Istio documents are read by `mesh-xds`, which names the file's field at
//! fault: `mesh_xds::envoy::parse_bootstrap`, `parse_route_configuration`, `parse_cluster`, and
//! `mesh_xds::istio` for Istio YAML. With `default-features = false`, `mesh-xds` is those
//! readers alone (no gRPC), for a program that uses `mesh-route` or `mesh-lb` by itself.

mod chain_select;
pub mod cluster;
pub mod duration;
pub mod endpoint;
pub mod listener;
pub mod route;
pub mod tls;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub use self::chain_select::{Connection, select_chain};
pub use self::cluster::*;
pub use self::endpoint::*;
pub use self::listener::*;
pub use self::route::*;
pub use self::tls::*;
pub use self::validate::{FieldError, ValidationError};

/// The root of the config model.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Bootstrap {
    /// Listeners.
    pub listeners: Vec<Listener>,
    /// Clusters.
    pub clusters: Vec<Cluster>,
    /// Route configurations referenced by name (`RouteSource::Rds`).
    pub route_configs: Vec<RouteConfiguration>,
    /// The admin server, off when `None`.
    pub admin: Option<Admin>,
    /// Limits on the whole proxy's resources (Envoy's overload manager).
    pub overload_manager: OverloadManager,
    /// Envoy's runtime layers (see [`crate::runtime`]).
    pub layered_runtime: LayeredRuntime,
    /// Who this proxy is, as it tells a control plane.
    pub node: Node,
    /// Where listeners, clusters and their routes and endpoints come from when a control plane
    /// serves them (xDS); `None` for a static config.
    pub dynamic_resources: Option<DynamicResources>,
}

/// Envoy's `config.core.v3.Node`: the identity a proxy gives its control plane in every
/// discovery request, from which the control plane chooses what to serve it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Node {
    /// The node id (Istio: `sidecar~10.0.0.1~reviews-v1-abc.default~default.svc.cluster.local`).
    pub id: String,
    /// The service cluster the node belongs to.
    pub cluster: String,
    /// Free-form metadata (Istio reads `NAMESPACE`, `LABELS`, …), a protobuf `Struct`.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Where the node runs.
    pub locality: Locality,
}

/// Envoy's `dynamic_resources`: listeners and clusters over an aggregated discovery service
/// (ADS) stream to a control plane reached through a static cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynamicResources {
    /// The ADS stream.
    pub ads: AdsConfig,
    /// Listeners come over ADS (`lds_config: {ads: {}}`).
    pub lds: bool,
    /// Clusters come over ADS (`cds_config: {ads: {}}`).
    pub cds: bool,
    /// How long a resource waits for its first update before it is used without one
    /// (`initial_fetch_timeout` of the config sources; Envoy's default 15 s; zero waits forever).
    pub initial_fetch_timeout: std::time::Duration,
}

impl DynamicResources {
    /// Listeners and clusters over a state-of-the-world ADS stream to the control plane that
    /// the static cluster `cluster_name` reaches: what Istio's bootstrap asks (the node sent
    /// on a stream's first request only, Envoy's default `initial_fetch_timeout`).
    pub fn over_ads(cluster_name: impl Into<String>) -> Self {
        Self {
            ads: AdsConfig {
                api_type: AdsApiType::Grpc,
                cluster_name: cluster_name.into(),
                set_node_on_first_message_only: true,
            },
            lds: true,
            cds: true,
            initial_fetch_timeout: DEFAULT_INITIAL_FETCH_TIMEOUT,
        }
    }
}

/// The ADS stream of [`DynamicResources`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdsConfig {
    /// State of the world or incremental.
    pub api_type: AdsApiType,
    /// The static cluster that reaches the control plane (`envoy_grpc.cluster_name`).
    pub cluster_name: String,
    /// Send the node only on a stream's first request (`set_node_on_first_message_only`).
    pub set_node_on_first_message_only: bool,
}

/// The xDS protocol variant of an [`AdsConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AdsApiType {
    /// State of the world: every response carries every resource of its type (`GRPC`).
    #[default]
    Grpc,
    /// Incremental: responses carry what changed and what was removed (`DELTA_GRPC`).
    DeltaGrpc,
}

/// Envoy's default `initial_fetch_timeout`.
pub const DEFAULT_INITIAL_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Envoy's `layered_runtime`: layers read in order, later ones winning. Empty means Envoy's
/// default runtime, which has one admin layer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LayeredRuntime {
    /// The layers.
    pub layers: Vec<RuntimeLayer>,
}

/// One runtime layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeLayer {
    /// Its name, shown by `GET /runtime`.
    pub name: String,
    /// What it holds.
    pub kind: RuntimeLayerKind,
}

impl RuntimeLayer {
    /// A static layer.
    pub fn static_layer(name: impl Into<String>, values: serde_json::Value) -> Self {
        Self {
            name: name.into(),
            kind: RuntimeLayerKind::Static(values),
        }
    }

    /// The admin layer (`POST /runtime_modify`).
    pub fn admin(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: RuntimeLayerKind::Admin,
        }
    }
}

/// What a runtime layer holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeLayerKind {
    /// Fixed values from the bootstrap (`static_layer`).
    Static(serde_json::Value),
    /// Values set through the admin API (`admin_layer`).
    Admin,
}

/// Envoy's overload manager, for the resource monitors the proxy implements.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OverloadManager {
    /// The most downstream connections open at once across every listener (the
    /// `envoy.resource_monitors.global_downstream_max_connections` monitor); a connection
    /// over it is closed as soon as it is accepted. Default: no limit, as in Envoy.
    pub max_active_downstream_connections: Option<u64>,
}

impl Bootstrap {
    /// Adds a listener (builder style).
    pub fn with_listener(mut self, l: Listener) -> Self {
        self.listeners.push(l);
        self
    }

    /// Adds a cluster (builder style).
    pub fn with_cluster(mut self, c: Cluster) -> Self {
        self.clusters.push(c);
        self
    }

    /// Finds a cluster by name.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// Checks the whole config and reports every problem with the path of the field at fault.
    ///
    /// # Errors
    /// A [`ValidationError`] listing each [`FieldError`].
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate::bootstrap(self)
    }
}

/// The admin server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admin {
    /// Where it listens.
    pub address: SocketAddr,
}

/// Endpoint or route metadata: filter name → key → value (Envoy's `Metadata.filter_metadata`).
pub type Metadata = BTreeMap<String, serde_json::Map<String, serde_json::Value>>;

/// Envoy's routing priority, which selects circuit-breaker thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RoutingPriority {
    /// Default priority.
    #[default]
    Default,
    /// High priority.
    High,
}

/// A fraction: `numerator` out of `denominator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FractionalPercent {
    /// Numerator.
    pub numerator: u32,
    /// Denominator.
    #[serde(default)]
    pub denominator: Denominator,
}

impl FractionalPercent {
    /// `n` percent.
    pub const fn percent(n: u32) -> Self {
        Self {
            numerator: n,
            denominator: Denominator::Hundred,
        }
    }

    /// Envoy's `featureEnabled`: true iff `random % denominator < numerator`.
    pub fn enabled(&self, random: u64) -> bool {
        random % self.denominator.value() < u64::from(self.numerator)
    }
}

/// Denominator of a [`FractionalPercent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Denominator {
    /// 100 (default).
    #[default]
    Hundred,
    /// 10 000.
    TenThousand,
    /// 1 000 000.
    Million,
}

impl Denominator {
    /// The number.
    pub const fn value(self) -> u64 {
        match self {
            Self::Hundred => 100,
            Self::TenThousand => 10_000,
            Self::Million => 1_000_000,
        }
    }
}
