//! Endpoints (Envoy's `ClusterLoadAssignment`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::Metadata;

/// The endpoints of a cluster, grouped by locality and priority.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterLoadAssignment {
    /// The cluster (or EDS service) these endpoints belong to.
    pub cluster_name: String,
    /// Locality groups.
    pub endpoints: Vec<LocalityLbEndpoints>,
    /// Overprovisioning factor in percent (default 140).
    pub overprovisioning_factor: u32,
}

impl ClusterLoadAssignment {
    /// One locality group at priority 0 holding `addrs`, each of weight 1.
    pub fn from_addrs<I>(cluster_name: &str, addrs: I) -> Self
    where
        I: IntoIterator<Item = SocketAddr>,
    {
        Self {
            cluster_name: cluster_name.to_owned(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: addrs
                    .into_iter()
                    .map(|a| LbEndpoint::new(Address::from(a)))
                    .collect(),
                ..LocalityLbEndpoints::default()
            }],
            overprovisioning_factor: 140,
        }
    }

    /// Every endpoint, in order.
    pub fn lb_endpoints(&self) -> impl Iterator<Item = (&LocalityLbEndpoints, &LbEndpoint)> {
        self.endpoints
            .iter()
            .flat_map(|l| l.lb_endpoints.iter().map(move |e| (l, e)))
    }
}

/// Endpoints that share a locality and priority.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LocalityLbEndpoints {
    /// Where they are.
    pub locality: Locality,
    /// The endpoints.
    pub lb_endpoints: Vec<LbEndpoint>,
    /// Locality weight for locality-weighted balancing.
    pub load_balancing_weight: Option<u32>,
    /// Priority (0 is highest).
    pub priority: u32,
}

/// Region / zone / sub-zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Locality {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Sub-zone.
    pub sub_zone: String,
}

/// One upstream endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LbEndpoint {
    /// Where to connect.
    pub address: Address,
    /// Health reported by the config source.
    #[serde(default)]
    pub health_status: HealthStatus,
    /// Weight (default 1).
    #[serde(default = "one")]
    pub load_balancing_weight: u32,
    /// Metadata (`envoy.lb` labels for subsets, `istio` …).
    #[serde(default)]
    pub metadata: Metadata,
    /// Hostname, used for auto host rewrite.
    #[serde(default)]
    pub hostname: Option<String>,
}

fn one() -> u32 {
    1
}

impl LbEndpoint {
    /// A healthy endpoint of weight 1.
    pub fn new(address: Address) -> Self {
        Self {
            address,
            health_status: HealthStatus::Unknown,
            load_balancing_weight: 1,
            metadata: Metadata::default(),
            hostname: None,
        }
    }
}

/// A socket address whose host is an IP literal (static clusters) or a DNS name (DNS clusters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address {
    /// IP literal or host name.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Address {
    /// The address as a socket address, when the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let ip = self
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        Some(SocketAddr::new(ip, self.port))
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Self {
        Self {
            host: a.ip().to_string(),
            port: a.port(),
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') && !self.host.starts_with('[') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Endpoint health as a config source reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthStatus {
    /// Unknown: treated as healthy (default).
    #[default]
    Unknown,
    /// Healthy.
    Healthy,
    /// Unhealthy.
    Unhealthy,
    /// Draining: treated as unhealthy.
    Draining,
    /// Timed out: treated as unhealthy.
    Timeout,
    /// Degraded.
    Degraded,
}
