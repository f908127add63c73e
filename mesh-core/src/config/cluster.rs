//! Upstream clusters (Envoy's `Cluster`): discovery, balancing, breakers, outlier detection,
//! health checks.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RoutingPriority;
use super::endpoint::ClusterLoadAssignment;

/// An upstream cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cluster {
    /// Unique name.
    pub name: String,
    /// How endpoints are found.
    pub discovery_type: DiscoveryType,
    /// TCP connect timeout (default 5 s).
    #[serde(with = "super::duration")]
    pub connect_timeout: Duration,
    /// Balancing policy (default round robin).
    pub lb_policy: LbPolicy,
    /// Endpoints: of static and DNS clusters, from the config; of EDS clusters, what EDS
    /// delivered (`None` until it did).
    pub load_assignment: Option<ClusterLoadAssignment>,
    /// Upstream HTTP version.
    pub protocol: UpstreamProtocol,
    /// Circuit-breaker thresholds.
    pub circuit_breakers: CircuitBreakers,
    /// Passive health checking.
    pub outlier_detection: Option<OutlierDetection>,
    /// Active health checks.
    pub health_checks: Vec<HealthCheck>,
    /// Panic threshold in percent (default 50).
    pub healthy_panic_threshold: f64,
    /// Idle timeout of pooled upstream connections (default 1 h).
    #[serde(with = "super::duration")]
    pub idle_timeout: Duration,
    /// Requests per upstream connection (default unlimited).
    pub max_requests_per_connection: Option<u32>,
    /// Age after which an upstream connection takes no new request and closes once idle
    /// (default unlimited).
    #[serde(with = "super::duration::option")]
    pub max_connection_duration: Option<Duration>,
    /// DNS refresh interval for DNS clusters (default 5 s).
    #[serde(with = "super::duration")]
    pub dns_refresh_rate: Duration,
    /// EDS service name (EDS clusters).
    pub eds_service_name: Option<String>,
    /// Least-request settings.
    pub least_request: LeastRequestConfig,
    /// Ring-hash settings.
    pub ring_hash: RingHashConfig,
    /// Maglev table size (default 65537).
    pub maglev_table_size: u64,
    /// Envoy's subset load balancer (`lb_subset_config`; default none).
    pub lb_subset_config: Option<LbSubsetConfig>,
    /// Locality-weighted balancing (Envoy's `common_lb_config.locality_weighted_lb_config`;
    /// default off): after the priority, a locality is chosen by its effective weight, then a
    /// host within it.
    pub locality_weighted_lb: bool,
    /// The local address upstream connections are made from (Envoy's
    /// `upstream_bind_config.source_address`; default the kernel's choice). Istio's inbound
    /// passthrough clusters connect from 127.0.0.6, which its iptables rules leave alone.
    pub upstream_bind_config: Option<std::net::IpAddr>,
    /// TLS to the hosts (`transport_socket` `envoy.transport_sockets.tls`; default plain).
    pub transport_socket: Option<super::tls::UpstreamTlsContext>,
    /// Per-host transport sockets by endpoint metadata (Istio's auto mutual TLS); hosts no
    /// match takes use `transport_socket`.
    pub transport_socket_matches: Vec<super::tls::TransportSocketMatch>,
}

impl Default for Cluster {
    fn default() -> Self {
        Self {
            name: String::new(),
            discovery_type: DiscoveryType::Static,
            connect_timeout: Duration::from_secs(5),
            lb_policy: LbPolicy::RoundRobin,
            load_assignment: None,
            protocol: UpstreamProtocol::Http1,
            circuit_breakers: CircuitBreakers::default(),
            outlier_detection: None,
            health_checks: Vec::new(),
            healthy_panic_threshold: 50.0,
            idle_timeout: Duration::from_secs(3600),
            max_requests_per_connection: None,
            max_connection_duration: None,
            dns_refresh_rate: Duration::from_secs(5),
            eds_service_name: None,
            least_request: LeastRequestConfig::default(),
            ring_hash: RingHashConfig::default(),
            maglev_table_size: 65537,
            lb_subset_config: None,
            locality_weighted_lb: false,
            upstream_bind_config: None,
            transport_socket: None,
            transport_socket_matches: Vec::new(),
        }
    }
}

impl Cluster {
    /// A static cluster with the given endpoint addresses, each of weight 1.
    pub fn new_static<I>(name: impl Into<String>, addrs: I) -> Self
    where
        I: IntoIterator<Item = std::net::SocketAddr>,
    {
        let name = name.into();
        Self {
            load_assignment: Some(ClusterLoadAssignment::from_addrs(&name, addrs)),
            name,
            ..Self::default()
        }
    }

    /// Sets the upstream protocol (builder style).
    pub fn with_protocol(mut self, protocol: UpstreamProtocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// The thresholds for a routing priority: the first configured entry, else the defaults.
    pub fn thresholds(&self, priority: RoutingPriority) -> Thresholds {
        self.circuit_breakers
            .thresholds
            .iter()
            .find(|t| t.priority == priority)
            .cloned()
            .unwrap_or_else(|| Thresholds {
                priority,
                ..Thresholds::default()
            })
    }
}

/// How a cluster finds its endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscoveryType {
    /// Fixed IP addresses (default).
    #[default]
    Static,
    /// Host names resolved continuously; every address becomes a host.
    StrictDns,
    /// Endpoints from EDS.
    Eds,
    /// No endpoints of its own: each connection goes where the downstream connection was
    /// going, its original destination (Envoy's `ORIGINAL_DST`, Istio's
    /// `PassthroughCluster`).
    OriginalDst,
}

/// Balancing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LbPolicy {
    /// Weighted round robin (default).
    #[default]
    RoundRobin,
    /// Least request.
    LeastRequest,
    /// Random.
    Random,
    /// Ring hash.
    RingHash,
    /// Maglev.
    Maglev,
    /// The cluster chooses the host itself (`CLUSTER_PROVIDED`, for `ORIGINAL_DST`).
    ClusterProvided,
}

/// Upstream HTTP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive (default).
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c).
    Http2,
}

/// Circuit-breaker settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CircuitBreakers {
    /// One entry per routing priority; the first per priority wins.
    pub thresholds: Vec<Thresholds>,
}

/// Circuit-breaker thresholds for one routing priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// Which priority.
    pub priority: RoutingPriority,
    /// Connections to all hosts (default 1024).
    pub max_connections: u32,
    /// Requests waiting for a connection (default 1024).
    pub max_pending_requests: u32,
    /// Concurrent requests (default 1024).
    pub max_requests: u32,
    /// Concurrent retries (default 3).
    pub max_retries: u32,
    /// Retry budget, replacing `max_retries` when set.
    pub retry_budget: Option<RetryBudget>,
    /// Publish `remaining_*` gauges.
    pub track_remaining: bool,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            priority: RoutingPriority::Default,
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
            retry_budget: None,
            track_remaining: false,
        }
    }
}

/// A retry budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryBudget {
    /// Percent of active plus pending requests (default 20).
    pub budget_percent: f64,
    /// Floor of concurrent retries (default 3).
    pub min_retry_concurrency: u32,
}

impl Eq for RetryBudget {}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            budget_percent: 20.0,
            min_retry_concurrency: 3,
        }
    }
}

/// Outlier detection settings with Envoy's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutlierDetection {
    /// Consecutive 5xx before ejection (default 5).
    pub consecutive_5xx: u32,
    /// Consecutive 502/503/504 before ejection (default 5).
    pub consecutive_gateway_failure: u32,
    /// Consecutive local-origin failures (default 5).
    pub consecutive_local_origin_failure: u32,
    /// Sweep interval (default 10 s).
    #[serde(with = "super::duration")]
    pub interval: Duration,
    /// Base ejection time (default 30 s).
    #[serde(with = "super::duration")]
    pub base_ejection_time: Duration,
    /// Longest ejection (default 300 s).
    #[serde(with = "super::duration")]
    pub max_ejection_time: Duration,
    /// Most hosts ejected at once, percent (default 10).
    pub max_ejection_percent: u32,
    /// Enforcement of consecutive 5xx, percent (default 100).
    pub enforcing_consecutive_5xx: u32,
    /// Enforcement of consecutive gateway failures, percent (default 0).
    pub enforcing_consecutive_gateway_failure: u32,
    /// Enforcement of consecutive local-origin failures, percent (default 100).
    pub enforcing_consecutive_local_origin_failure: u32,
    /// Enforcement of success-rate ejection, percent (default 100).
    pub enforcing_success_rate: u32,
    /// Hosts needed for success-rate ejection (default 5).
    pub success_rate_minimum_hosts: u32,
    /// Requests per interval needed for success rate (default 100).
    pub success_rate_request_volume: u32,
    /// Standard-deviation factor ×1000 (default 1900).
    pub success_rate_stdev_factor: u32,
    /// Failure percentage threshold (default 85).
    pub failure_percentage_threshold: u32,
    /// Enforcement of failure-percentage ejection (default 0).
    pub enforcing_failure_percentage: u32,
    /// Hosts needed for failure-percentage ejection (default 5).
    pub failure_percentage_minimum_hosts: u32,
    /// Requests needed for failure percentage (default 50).
    pub failure_percentage_request_volume: u32,
    /// Count local-origin errors apart (default false).
    pub split_external_local_origin_errors: bool,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 5,
            consecutive_local_origin_failure: 5,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            enforcing_consecutive_5xx: 100,
            enforcing_consecutive_gateway_failure: 0,
            enforcing_consecutive_local_origin_failure: 100,
            enforcing_success_rate: 100,
            success_rate_minimum_hosts: 5,
            success_rate_request_volume: 100,
            success_rate_stdev_factor: 1900,
            failure_percentage_threshold: 85,
            enforcing_failure_percentage: 0,
            failure_percentage_minimum_hosts: 5,
            failure_percentage_request_volume: 50,
            split_external_local_origin_errors: false,
        }
    }
}

/// An active health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Probe timeout.
    #[serde(with = "super::duration")]
    pub timeout: Duration,
    /// Probe interval.
    #[serde(with = "super::duration")]
    pub interval: Duration,
    /// Failures before unhealthy.
    pub unhealthy_threshold: u32,
    /// Successes before healthy.
    pub healthy_threshold: u32,
    /// The probe.
    pub checker: HealthChecker,
}

/// What a health check sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthChecker {
    /// An HTTP GET.
    Http {
        /// Request path.
        path: String,
        /// Host header (default: the cluster name).
        #[serde(default)]
        host: Option<String>,
        /// Expected status ranges `[start, end)` (default 200..201).
        #[serde(default)]
        expected_statuses: Vec<(u16, u16)>,
    },
    /// A TCP connect.
    Tcp,
}

/// Least-request settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeastRequestConfig {
    /// Hosts sampled per pick (default 2).
    pub choice_count: u32,
    /// Active-request bias (default 1.0).
    pub active_request_bias: f64,
}

impl Eq for LeastRequestConfig {}

impl Default for LeastRequestConfig {
    fn default() -> Self {
        Self {
            choice_count: 2,
            active_request_bias: 1.0,
        }
    }
}

/// Ring-hash settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RingHashConfig {
    /// Smallest ring (default 1024).
    pub minimum_ring_size: u64,
    /// Largest ring (default 8M).
    pub maximum_ring_size: u64,
}

impl Default for RingHashConfig {
    fn default() -> Self {
        Self {
            minimum_ring_size: 1024,
            maximum_ring_size: 8 * 1024 * 1024,
        }
    }
}

/// Envoy's `lb_subset_config`: endpoints are partitioned by their `envoy.lb` metadata and a
/// route's `metadata_match` selects a subset (SEMANTICS.md §4.10).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LbSubsetConfig {
    /// What to do when no subset matches (default `NO_FALLBACK`).
    pub fallback_policy: LbSubsetFallbackPolicy,
    /// The `envoy.lb` key/value pairs of the default subset (`DEFAULT_SUBSET` fallback; empty
    /// matches every host).
    pub default_subset: BTreeMap<String, serde_json::Value>,
    /// The selectors: each set of keys defines subsets.
    pub subset_selectors: Vec<LbSubsetSelector>,
}

/// The top-level fallback of a subset load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LbSubsetFallbackPolicy {
    /// No host: the request fails as if no host were healthy (default).
    #[default]
    NoFallback,
    /// Any host of the cluster.
    AnyEndpoint,
    /// The hosts of `default_subset`.
    DefaultSubset,
}

/// One subset selector of [`LbSubsetConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LbSubsetSelector {
    /// The `envoy.lb` metadata keys that define the subsets.
    pub keys: Vec<String>,
    /// What to do when a request with exactly these keys matches no subset (default
    /// `NOT_DEFINED`: the top-level policy).
    pub fallback_policy: LbSubsetSelectorFallbackPolicy,
    /// The keys to retry with under `KEYS_SUBSET` (a subset of `keys`).
    pub fallback_keys_subset: Vec<String>,
}

/// A subset selector's own fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LbSubsetSelectorFallbackPolicy {
    /// Use the top-level fallback policy (default).
    #[default]
    NotDefined,
    /// No host.
    NoFallback,
    /// Any host of the cluster.
    AnyEndpoint,
    /// The default subset.
    DefaultSubset,
    /// Retry with only `fallback_keys_subset` of the request's keys.
    KeysSubset,
}
