//! The compiled snapshot: what a request reads from the [`ConfigStore`](mesh_core::store::ConfigStore).
//!
//! Built from a validated [`Bootstrap`] off the request path: route tables compiled, filters
//! built by name, balancers and connection pools created, stats handles resolved.

use std::sync::Arc;

use http::HeaderName;
use std::net::SocketAddr;

use mesh_core::config::{
    Bootstrap, Cluster, FieldError, FilterChainMatch, HttpConnectionManager, ListenerFilter,
    NetworkFilter, ROUTER_FILTER, RouteConfiguration, RouteSource, UpstreamProtocol,
    ValidationError,
};
use mesh_core::filter::{FilterRegistry, HttpFilter};
use mesh_core::stats::{Counter, Gauge, Histogram, Registry, StatName};
use mesh_lb::ClusterLb;
use mesh_lb::hash::HashPolicies;
use mesh_route::RouteTable;

use crate::access_log::AccessLogger;
use crate::upstream::{HostPool, PoolStats};

/// Clusters by name, looked up per request: the names come from config, so a fast seeded
/// hasher.
pub(crate) type ClusterMap =
    std::collections::HashMap<String, Arc<ClusterRt>, foldhash::fast::RandomState>;

/// The compiled form of a [`Bootstrap`].
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) listeners: Vec<ListenerRt>,
    pub(crate) clusters: ClusterMap,
    #[allow(dead_code)] // read by config dumps (admin issue)
    pub(crate) bootstrap: Arc<Bootstrap>,
}

impl Compiled {
    /// The listener named `name`.
    pub(crate) fn listener(&self, name: &str) -> Option<&ListenerRt> {
        self.listeners.iter().find(|l| l.name == name)
    }

    /// The listener configured for `destination`, where a listener with `use_original_dst`
    /// hands a connection: the one with that exact address, else one on the unspecified
    /// address of the same family and port, else one on any unspecified address and port.
    pub(crate) fn listener_for(&self, destination: SocketAddr) -> Option<&ListenerRt> {
        let ip = destination.ip().to_canonical();
        let port = destination.port();
        let on_port = |l: &&ListenerRt| l.address.port() == port;
        let listeners = || self.listeners.iter().filter(on_port);
        listeners()
            .find(|l| l.address.ip().to_canonical() == ip)
            .or_else(|| {
                listeners().find(|l| {
                    l.address.ip().is_unspecified() && l.address.is_ipv4() == ip.is_ipv4()
                })
            })
            .or_else(|| listeners().find(|l| l.address.ip().is_unspecified()))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ListenerRt {
    pub(crate) name: String,
    /// The configured address (port 0 when the kernel picks it).
    pub(crate) address: SocketAddr,
    /// The chains in [`Listener::chains`] order (the default chain last), aligned with
    /// `matches`.
    pub(crate) chains: Vec<Chain>,
    /// Each filter chain's match (the default chain has none).
    pub(crate) matches: Vec<FilterChainMatch>,
    /// Whether the last of `chains` is the default chain.
    pub(crate) has_default: bool,
    /// Each chain's TLS, when it terminates TLS (aligned with `chains`).
    pub(crate) tls: Vec<Option<crate::tls::ServerTls>>,
    pub(crate) use_original_dst: bool,
    pub(crate) listener_filters: Vec<ListenerFilter>,
    pub(crate) filters_timeout: std::time::Duration,
    pub(crate) continue_on_timeout: bool,
}

impl ListenerRt {
    /// The chain (and its index) that serves `conn`: the most specific match, else the
    /// default chain.
    pub(crate) fn chain_for(
        &self,
        conn: &mesh_core::config::Connection,
    ) -> Option<(usize, &Chain)> {
        let i = mesh_core::config::select_chain(&self.matches, conn)
            .or_else(|| self.has_default.then(|| self.chains.len() - 1))?;
        self.chains.get(i).map(|c| (i, c))
    }

    /// The HTTP chain at `i`.
    pub(crate) fn http_chain(&self, i: usize) -> Option<&Arc<ChainRt>> {
        match self.chains.get(i)? {
            Chain::Http(c) => Some(c),
            Chain::Tcp(_) => None,
        }
    }
}

/// A compiled filter chain: an HTTP connection manager or a TCP proxy.
#[derive(Debug, Clone)]
pub(crate) enum Chain {
    Http(Arc<ChainRt>),
    Tcp(Arc<crate::tcp_proxy::TcpChainRt>),
}

/// Everything one filter chain's HTTP connection manager needs per request.
#[derive(Debug)]
pub(crate) struct ChainRt {
    pub(crate) hcm: HttpConnectionManager,
    pub(crate) routes: RouteTable,
    pub(crate) filters: Vec<Arc<dyn HttpFilter>>,
    pub(crate) internal_only: Vec<HeaderName>,
    pub(crate) access_logs: Vec<AccessLogger>,
    pub(crate) stats: HcmStats,
    /// What each route needs compiled, by virtual-host and route index, so a request never
    /// compiles it.
    pub(crate) per_route: Vec<Vec<RouteRt>>,
    /// The `server` header of responses (`server_name`), made once: `None` when empty.
    pub(crate) server_header: Option<http::HeaderValue>,
}

/// A route's compiled hash and retry policies.
#[derive(Debug, Default)]
pub(crate) struct RouteRt {
    /// The route's hash policies, when it has any.
    pub(crate) hash: Option<HashPolicies>,
    /// The retry policy in force (the route's, else its virtual host's).
    pub(crate) retry: Option<crate::router::RetryRt>,
}

impl ChainRt {
    /// The compiled policies of the route a hit matched.
    pub(crate) fn route_rt(&self, vhost: usize, route: Option<usize>) -> Option<&RouteRt> {
        self.per_route.get(vhost)?.get(route?)
    }

    /// The compiled hash policies of the route a hit matched.
    pub(crate) fn hash_policies(
        &self,
        vhost: usize,
        route: Option<usize>,
    ) -> Option<&HashPolicies> {
        self.route_rt(vhost, route)?.hash.as_ref()
    }
}

/// Compiles every route's hash and retry policies.
fn compile_routes(rc: &RouteConfiguration) -> Vec<Vec<RouteRt>> {
    rc.virtual_hosts
        .iter()
        .map(|vh| {
            vh.routes
                .iter()
                .map(|r| match &r.action {
                    mesh_core::config::Action::Route(a) => RouteRt {
                        hash: (!a.hash_policy.is_empty())
                            .then(|| HashPolicies::new(&a.hash_policy)),
                        retry: a
                            .retry_policy
                            .as_ref()
                            .or(vh.retry_policy.as_ref())
                            .map(crate::router::RetryRt::new),
                    },
                    _ => RouteRt::default(),
                })
                .collect()
        })
        .collect()
}

#[derive(Debug)]
pub(crate) struct HcmStats {
    pub(crate) cx_total: Arc<Counter>,
    pub(crate) cx_active: Arc<Gauge>,
    pub(crate) rq_total: Arc<Counter>,
    pub(crate) rq_class: StatusClasses,
    pub(crate) rq_time: Arc<Histogram>,
    pub(crate) rq_timeout: Arc<Counter>,
    /// Connections closed because a request head did not arrive in time.
    pub(crate) rq_header_timeout: Arc<Counter>,
    pub(crate) rq_failed_path_normalization: Arc<Counter>,
    /// Envoy's codec stats `http1.dropped_headers_with_underscores` and
    /// `http1.requests_rejected_with_underscores_in_headers` (one pair for every protocol).
    pub(crate) dropped_underscores: Arc<Counter>,
    pub(crate) rq_rejected_underscores: Arc<Counter>,
    pub(crate) rq_redirected_normalized_path: Arc<Counter>,
}

/// `<prefix>_2xx` … `<prefix>_5xx` counters.
#[derive(Debug)]
pub(crate) struct StatusClasses([Arc<Counter>; 4]);

impl StatusClasses {
    fn new(counter: impl Fn(&str) -> Arc<Counter>, prefix: &str) -> Self {
        Self([2, 3, 4, 5].map(|c| counter(&format!("{prefix}_{c}xx"))))
    }

    /// Counts a response status in its class.
    pub(crate) fn record(&self, status: u16) {
        if let Some(c) = (status / 100)
            .checked_sub(2)
            .and_then(|i| self.0.get(usize::from(i)))
        {
            c.inc();
        }
    }
}

impl HcmStats {
    fn new(r: &Registry, prefix: &str) -> Self {
        let c = |s: &str| r.counter(StatName::http(prefix, s));
        Self {
            cx_total: c("downstream_cx_total"),
            cx_active: r.gauge(StatName::http(prefix, "downstream_cx_active")),
            rq_total: c("downstream_rq_total"),
            rq_class: StatusClasses::new(c, "downstream_rq"),
            rq_time: r.histogram(StatName::http(prefix, "downstream_rq_time")),
            rq_timeout: c("downstream_rq_timeout"),
            rq_header_timeout: c("downstream_rq_header_timeout"),
            rq_failed_path_normalization: c("downstream_rq_failed_path_normalization"),
            dropped_underscores: r
                .counter(StatName::plain("http1.dropped_headers_with_underscores")),
            rq_rejected_underscores: r.counter(StatName::plain(
                "http1.requests_rejected_with_underscores_in_headers",
            )),
            rq_redirected_normalized_path: c("downstream_rq_redirected_with_normalized_path"),
        }
    }
}

/// A cluster's runtime: balancer, one pool per host (same order as the balancer's hosts), stats.
#[derive(Debug)]
pub(crate) struct ClusterRt {
    pub(crate) config: Cluster,
    pub(crate) lb: ClusterLb,
    pub(crate) pools: Vec<Arc<HostPool>>,
    /// The hosts of an `ORIGINAL_DST` cluster, one per destination.
    pub(crate) original_dst: Option<crate::original_dst::OriginalDstHosts>,
    /// The connection stats every host's pool shares (and the TCP proxy counts into).
    pub(crate) pool_stats: Arc<PoolStats>,
    pub(crate) stats: ClusterStats,
    /// When outlier detection last swept, in ms of the proxy's clock.
    pub(crate) last_sweep: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
pub(crate) struct ClusterStats {
    pub(crate) rq_total: Arc<Counter>,
    pub(crate) rq_active: Arc<Gauge>,
    pub(crate) rq_class: StatusClasses,
    pub(crate) rq_time: Arc<Histogram>,
    pub(crate) rq_timeout: Arc<Counter>,
    pub(crate) no_healthy: Arc<Counter>,
    pub(crate) rq_retry: Arc<Counter>,
    pub(crate) rq_retry_success: Arc<Counter>,
    pub(crate) rq_retry_limit_exceeded: Arc<Counter>,
    pub(crate) rq_per_try_timeout: Arc<Counter>,
    /// Bytes read from and written to upstream connections (counted by the TCP proxy).
    pub(crate) cx_rx_bytes: Arc<Counter>,
    pub(crate) cx_tx_bytes: Arc<Counter>,
}

impl ClusterStats {
    fn new(r: &Registry, name: &str) -> Self {
        let c = |s: &str| r.counter(StatName::cluster(name, s));
        Self {
            rq_total: c("upstream_rq_total"),
            rq_active: r.gauge(StatName::cluster(name, "upstream_rq_active")),
            rq_class: StatusClasses::new(c, "upstream_rq"),
            rq_time: r.histogram(StatName::cluster(name, "upstream_rq_time")),
            rq_timeout: c("upstream_rq_timeout"),
            no_healthy: c("upstream_cx_none_healthy"),
            rq_retry: c("upstream_rq_retry"),
            rq_retry_success: c("upstream_rq_retry_success"),
            rq_retry_limit_exceeded: c("upstream_rq_retry_limit_exceeded"),
            rq_per_try_timeout: c("upstream_rq_per_try_timeout"),
            cx_rx_bytes: c("upstream_cx_rx_bytes_total"),
            cx_tx_bytes: c("upstream_cx_tx_bytes_total"),
        }
    }
}

/// Validates and compiles a bootstrap. Every problem is reported, each with its path.
///
/// With `previous`, hosts that stay in a cluster keep their connection pool (and its idle
/// connections) across the swap.
///
/// The runtime (the bootstrap's layers, with `admin_runtime` as the admin layer) is written
/// into the config first; [`Compiled::bootstrap`] keeps the config as given.
pub(crate) fn compile(
    given: &Bootstrap,
    registry: &FilterRegistry,
    stats: &Registry,
    previous: Option<&Compiled>,
    admin_runtime: &std::collections::BTreeMap<String, String>,
    log_files: &crate::access_log::LogFiles,
) -> Result<Compiled, ValidationError> {
    let runtime = mesh_core::runtime::Runtime::new(&given.layered_runtime, admin_runtime);
    let with_runtime;
    let bootstrap = if runtime.entries().next().is_some() {
        let mut b = given.clone();
        runtime.apply(&mut b, crate::filters::fault::apply_runtime);
        with_runtime = b;
        &with_runtime
    } else {
        given
    };
    let mut errors = match bootstrap.validate() {
        Ok(()) => Vec::new(),
        Err(e) => e.errors,
    };
    let mut err = |path: String, message: String| errors.push(FieldError { path, message });

    let mut clusters = ClusterMap::default();
    for (i, c) in bootstrap.clusters.iter().enumerate() {
        let prev = previous
            .and_then(|p| p.clusters.get(&c.name))
            .map(|rt| &**rt);
        match compile_cluster(c, stats, prev) {
            Ok(rt) => {
                clusters.insert(c.name.clone(), Arc::new(rt));
            }
            Err((at, message)) => err(format!("clusters[{i}]{at}"), message),
        }
    }

    let mut listeners = Vec::new();
    for (i, l) in bootstrap.listeners.iter().enumerate() {
        let mut chains = Vec::new();
        let mut tls = Vec::new();
        for (k, fc) in l.chains().enumerate() {
            let chain_path = if k < l.filter_chains.len() {
                format!("listeners[{i}].filter_chains[{k}]")
            } else {
                format!("listeners[{i}].default_filter_chain")
            };
            let p = format!("{chain_path}.filters[0].typed_config");
            tls.push(fc.transport_socket.as_ref().and_then(|t| {
                crate::tls::ServerTls::new(t)
                    .map_err(|e| {
                        err(
                            format!("{chain_path}.transport_socket.typed_config.{}", e.field),
                            e.message,
                        );
                    })
                    .ok()
            }));
            let hcm = match &fc.filter {
                NetworkFilter::HttpConnectionManager(h) => h,
                NetworkFilter::TcpProxy(t) => {
                    match crate::tcp_proxy::TcpChainRt::new(t, stats, log_files) {
                        Ok(rt) => chains.push(Chain::Tcp(Arc::new(rt))),
                        Err(e) => err(format!("{p}.access_log"), e.to_string()),
                    }
                    continue;
                }
            };
            let rc: Option<&RouteConfiguration> = match &hcm.route {
                RouteSource::RouteConfig(rc) => Some(rc),
                RouteSource::Rds(name) => bootstrap.route_configs.iter().find(|r| &r.name == name),
            };
            // The router runs after the chain; a router entry (allowed last) is not a filter.
            let mut filters = Vec::new();
            let mut names = Vec::new();
            for (j, f) in hcm.http_filters.iter().enumerate() {
                let is_router = f.name == ROUTER_FILTER
                    || f.type_url.as_deref().is_some_and(|t| {
                        t.ends_with("envoy.extensions.filters.http.router.v3.Router")
                    });
                if is_router || f.disabled {
                    continue;
                }
                match registry.build(f) {
                    Ok(filter) => {
                        filters.push(filter);
                        names.push(f.name.as_str());
                    }
                    Err(mesh_core::filter::FilterError::Unknown { .. })
                        if f.is_optional && !asks_for_authorization(f) =>
                    {
                        tracing::warn!(
                            filter = %f.name,
                            path = %format!("{p}.http_filters[{j}]"),
                            "optional HTTP filter has no factory; skipped"
                        );
                    }
                    Err(e @ mesh_core::filter::FilterError::Unknown { .. }) if f.is_optional => {
                        err(
                            format!("{p}.http_filters[{j}]"),
                            format!(
                                "{e}; it authorizes or authenticates requests, so it cannot be skipped even with is_optional"
                            ),
                        );
                    }
                    Err(e) => err(format!("{p}.http_filters[{j}]"), e.to_string()),
                }
            }
            // Each per-route filter config is parsed once, by the filter it names.
            let parse =
                |name: &str, cfg: &serde_json::Value| match names.iter().position(|n| *n == name) {
                    Some(i) => filters[i]
                        .parse_route_config(cfg)
                        .map_err(|e| e.to_string()),
                    None => Ok(Arc::new(cfg.clone()) as mesh_core::filter::RouteConfig),
                };
            let routes = match rc.map(|rc| RouteTable::compile_with(rc, &parse)) {
                Some(Ok(t)) => Some(t),
                Some(Err(e)) => {
                    err(format!("{p}.route_config"), e.to_string());
                    None
                }
                None => None, // reported by validation
            };
            let mut access_logs = Vec::new();
            for (j, a) in hcm.access_log.iter().enumerate() {
                match AccessLogger::new(a, log_files) {
                    Ok(l) => access_logs.push(l),
                    Err(e) => err(format!("{p}.access_log[{j}]"), e.to_string()),
                }
            }
            let internal_only = rc
                .map(|rc| {
                    rc.internal_only_headers
                        .iter()
                        .filter_map(|h| {
                            HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok()
                        })
                        .collect()
                })
                .unwrap_or_default();
            if let (Some(routes), Some(rc)) = (routes, rc) {
                chains.push(Chain::Http(Arc::new(ChainRt {
                    per_route: compile_routes(rc),
                    hcm: (**hcm).clone(),
                    routes,
                    filters,
                    internal_only,
                    access_logs,
                    stats: HcmStats::new(stats, &hcm.stat_prefix),
                    server_header: Some(hcm.server_name.as_str())
                        .filter(|n| !n.is_empty())
                        .and_then(|n| http::HeaderValue::from_str(n).ok()),
                })));
            }
        }
        listeners.push(ListenerRt {
            name: l.name.clone(),
            address: l.address,
            chains,
            matches: l
                .filter_chains
                .iter()
                .map(|fc| fc.filter_chain_match.clone())
                .collect(),
            has_default: l.default_filter_chain.is_some(),
            tls,
            use_original_dst: l.use_original_dst,
            listener_filters: l.listener_filters.clone(),
            filters_timeout: l.listener_filters_timeout,
            continue_on_timeout: l.continue_on_listener_filters_timeout,
        });
    }

    if errors.is_empty() {
        Ok(Compiled {
            listeners,
            clusters,
            bootstrap: Arc::new(given.clone()),
        })
    } else {
        Err(ValidationError { errors })
    }
}

/// Compiles a bootstrap that differs from `previous` only in clusters' endpoints (an EDS
/// update): listeners, route tables and filters are kept as they are, clusters whose config did
/// not change are kept whole, and the others are rebuilt keeping their hosts' pools and state.
/// Returns `None` when more than endpoints changed (the caller compiles it all).
pub(crate) fn compile_endpoints(
    given: &Bootstrap,
    stats: &Registry,
    previous: &Compiled,
) -> Option<Result<Compiled, ValidationError>> {
    let before = &previous.bootstrap;
    let same_shape = given.listeners == before.listeners
        && given.route_configs == before.route_configs
        && given.layered_runtime == before.layered_runtime
        && given.clusters.len() == before.clusters.len()
        && given.clusters.iter().zip(&before.clusters).all(|(a, b)| {
            a.name == b.name
                && Cluster {
                    load_assignment: None,
                    ..a.clone()
                } == Cluster {
                    load_assignment: None,
                    ..b.clone()
                }
        });
    if !same_shape {
        return None;
    }
    if let Err(e) = given.validate() {
        return Some(Err(e));
    }
    let mut errors = Vec::new();
    let mut clusters = ClusterMap::default();
    for ((i, c), old) in given.clusters.iter().enumerate().zip(&before.clusters) {
        let prev = previous.clusters.get(&c.name);
        let rt = match prev {
            Some(rt) if c == old => Ok(rt.clone()),
            _ => compile_cluster(c, stats, prev.map(|rt| &**rt)).map(Arc::new),
        };
        match rt {
            Ok(rt) => {
                clusters.insert(c.name.clone(), rt);
            }
            Err((at, message)) => errors.push(FieldError {
                path: format!("clusters[{i}]{at}"),
                message,
            }),
        }
    }
    Some(if errors.is_empty() {
        Ok(Compiled {
            listeners: previous.listeners.clone(),
            clusters,
            bootstrap: Arc::new(given.clone()),
        })
    } else {
        Err(ValidationError { errors })
    })
}

/// A cluster's runtime, or the problem: the path below `clusters[i]` and the message.
fn compile_cluster(
    c: &Cluster,
    stats: &Registry,
    previous: Option<&ClusterRt>,
) -> Result<ClusterRt, (String, String)> {
    let http2 = c.protocol == UpstreamProtocol::Http2;
    let client_tls = |t: &Option<mesh_core::config::UpstreamTlsContext>, at: &str| match t {
        None => Ok(None),
        Some(t) => crate::tls::ClientTls::new(t, http2)
            .map(|t| Some(Arc::new(t)))
            .map_err(|e| (format!("{at}.typed_config.{}", e.field), e.message)),
    };
    let tls = client_tls(&c.transport_socket, ".transport_socket")?;
    // Per-host sockets by endpoint metadata: the first match a host takes, else the cluster's.
    let mut matches = Vec::new();
    for (i, m) in c.transport_socket_matches.iter().enumerate() {
        let at = format!(".transport_socket_matches[{i}].transport_socket");
        matches.push((m, client_tls(&m.transport_socket, &at)?));
    }
    let tls_for = |h: &mesh_lb::Host| {
        matches
            .iter()
            .find(|(m, _)| m.matches(h.metadata()))
            .map_or_else(|| tls.clone(), |(_, t)| t.clone())
    };
    // The balancer registers its own stats (membership_*, lb_healthy_panic, breakers,
    // outlier); hosts that stay keep their state (active requests, health, ejection).
    let mut builder = ClusterLb::builder(c).stats(stats);
    if let Some(p) = previous {
        builder = builder.previous(&p.lb);
    }
    let lb = builder
        .build()
        .map_err(|e| (String::new(), e.to_string()))?;
    let previous_sweep = previous.map_or(0, |p| {
        p.last_sweep.load(std::sync::atomic::Ordering::Relaxed)
    });
    let original_dst_previous = previous.and_then(|p| p.original_dst.as_ref());
    let previous: &[Arc<HostPool>] = previous.map_or(&[], |p| &p.pools);
    let pool_stats = Arc::new(PoolStats::new(stats, &c.name));
    let pools = lb
        .hosts()
        .iter()
        .map(|h| {
            let tls = tls_for(h);
            previous
                .iter()
                .find(|p| {
                    p.address() == h.address()
                        && p.reusable_for(
                            c.protocol,
                            crate::upstream::ConnLimits::of(c),
                            tls.as_deref(),
                        )
                })
                .cloned()
                .unwrap_or_else(|| {
                    Arc::new(HostPool::new(
                        h.address().clone(),
                        c.protocol,
                        crate::upstream::ConnLimits::of(c),
                        Arc::clone(&pool_stats),
                        tls,
                    ))
                })
        })
        .collect();
    Ok(ClusterRt {
        config: c.clone(),
        lb,
        pools,
        original_dst: (c.discovery_type == mesh_core::config::DiscoveryType::OriginalDst).then(
            || {
                crate::original_dst::OriginalDstHosts::new(
                    c,
                    Arc::clone(&pool_stats),
                    original_dst_previous,
                    tls.clone(),
                )
            },
        ),
        pool_stats,
        stats: ClusterStats::new(stats, &c.name),
        last_sweep: std::sync::atomic::AtomicU64::new(previous_sweep),
    })
}

/// Envoy's HTTP filters that authorize or authenticate requests: one the proxy cannot run is
/// an error even when marked `is_optional`, since skipping it would let through what the
/// config refuses.
const AUTHORIZATION_FILTERS: &[&str] = &[
    "envoy.filters.http.rbac",
    "envoy.filters.http.ext_authz",
    "envoy.filters.http.jwt_authn",
    "envoy.filters.http.oauth2",
    "envoy.filters.http.basic_auth",
    "envoy.filters.http.api_key_auth",
    "envoy.extensions.filters.http.rbac.v3.RBAC",
    "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
    "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
    "envoy.extensions.filters.http.oauth2.v3.OAuth2",
    "envoy.extensions.filters.http.basic_auth.v3.BasicAuth",
    "envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
];

fn asks_for_authorization(f: &mesh_core::config::HttpFilterConfig) -> bool {
    let type_name = f
        .type_url
        .as_deref()
        .map(|t| t.rsplit('/').next().unwrap_or(t));
    AUTHORIZATION_FILTERS
        .iter()
        .any(|n| *n == f.name || Some(*n) == type_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::config::{Cluster, HttpConnectionManager, Listener, Route, VirtualHost};

    fn bootstrap(ports: &[u16]) -> Bootstrap {
        let routes = RouteConfiguration::new("r").with_virtual_host(
            VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "web")),
        );
        Bootstrap::default()
            .with_listener(Listener::http(
                "http",
                "127.0.0.1:0".parse().unwrap(),
                HttpConnectionManager::with_routes(routes),
            ))
            .with_cluster(Cluster::new_static(
                "web",
                ports
                    .iter()
                    .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], *p))),
            ))
            .with_cluster(Cluster::new_static(
                "other",
                ["127.0.0.1:9".parse().unwrap()],
            ))
    }

    #[test]
    fn an_endpoint_update_keeps_route_tables_and_unchanged_clusters() {
        let registry = FilterRegistry::new();
        let stats = Registry::new();
        let none = std::collections::BTreeMap::new();
        let files = crate::access_log::LogFiles::new(std::time::Duration::ZERO);
        let first = compile(&bootstrap(&[1]), &registry, &stats, None, &none, &files).unwrap();
        let next = compile_endpoints(&bootstrap(&[1, 2]), &stats, &first)
            .expect("only endpoints changed")
            .unwrap();
        // The connection manager, its route table and filters: the same objects.
        assert!(Arc::ptr_eq(
            first.listeners[0].http_chain(0).unwrap(),
            next.listeners[0].http_chain(0).unwrap()
        ));
        // The cluster that did not change is the same; the one that did keeps host 1's pool.
        assert!(Arc::ptr_eq(
            &first.clusters["other"],
            &next.clusters["other"]
        ));
        assert_eq!(next.clusters["web"].pools.len(), 2);
        assert!(Arc::ptr_eq(
            &first.clusters["web"].pools[0],
            &next.clusters["web"].pools[0]
        ));
        // More than endpoints: the caller compiles it all.
        let mut changed = bootstrap(&[1, 2]);
        changed.clusters[0].connect_timeout = std::time::Duration::from_secs(1);
        assert!(compile_endpoints(&changed, &stats, &first).is_none());
    }
}
