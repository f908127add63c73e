//! Listeners and the HTTP connection manager (Envoy's `Listener` and `HttpConnectionManager`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::route::{RouteConfiguration, UpgradeConfig};

/// A listening socket and the filter chains that serve its connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listener {
    /// Unique name.
    pub name: String,
    /// Address to bind (port 0 picks a free port).
    pub address: SocketAddr,
    /// Filter chains; the most specific whose match fits the connection serves it (Envoy's
    /// order, see [`FilterChainMatch`]).
    pub filter_chains: Vec<FilterChain>,
    /// The chain for connections no chain matches (default none: such a connection is
    /// closed).
    #[serde(default)]
    pub default_filter_chain: Option<Box<FilterChain>>,
    /// Whether to bind [`Listener::address`] (default true). A listener that does not bind is
    /// reached only by hand-off from a listener with [`Listener::use_original_dst`].
    #[serde(default = "yes")]
    pub bind_to_port: bool,
    /// Hand each connection to the listener configured for its original destination (the
    /// address before an iptables `REDIRECT`), when there is one (default false). Implies the
    /// `original_dst` listener filter.
    #[serde(default)]
    pub use_original_dst: bool,
    /// Listener filters, run in order on each accepted connection before a chain is chosen.
    #[serde(default)]
    pub listener_filters: Vec<ListenerFilter>,
    /// Time the listener filters may wait for the connection's first bytes (default 15 s;
    /// zero waits for ever).
    #[serde(default = "listener_filters_timeout", with = "super::duration")]
    pub listener_filters_timeout: Duration,
    /// When the listener filters time out, choose a chain with what they found so far instead
    /// of closing the connection (default false).
    #[serde(default)]
    pub continue_on_listener_filters_timeout: bool,
}

fn yes() -> bool {
    true
}

fn listener_filters_timeout() -> Duration {
    DEFAULT_LISTENER_FILTERS_TIMEOUT
}

/// Envoy's default [`Listener::listener_filters_timeout`].
pub const DEFAULT_LISTENER_FILTERS_TIMEOUT: Duration = Duration::from_secs(15);

impl Listener {
    /// A listener with these chains and every other setting at its default.
    pub fn new(
        name: impl Into<String>,
        address: SocketAddr,
        filter_chains: Vec<FilterChain>,
    ) -> Self {
        Self {
            name: name.into(),
            address,
            filter_chains,
            default_filter_chain: None,
            bind_to_port: true,
            use_original_dst: false,
            listener_filters: Vec::new(),
            listener_filters_timeout: DEFAULT_LISTENER_FILTERS_TIMEOUT,
            continue_on_listener_filters_timeout: false,
        }
    }

    /// An HTTP listener with one filter chain using `hcm`.
    pub fn http(name: impl Into<String>, address: SocketAddr, hcm: HttpConnectionManager) -> Self {
        Self::new(name, address, vec![FilterChain::http(hcm)])
    }

    /// The chains a connection may be given: the filter chains, then the default one.
    pub fn chains(&self) -> impl Iterator<Item = &FilterChain> {
        self.filter_chains
            .iter()
            .chain(self.default_filter_chain.as_deref())
    }

    /// The chains, to change them.
    pub fn chains_mut(&mut self) -> impl Iterator<Item = &mut FilterChain> {
        self.filter_chains
            .iter_mut()
            .chain(self.default_filter_chain.as_deref_mut())
    }

    /// The HTTP connection managers of [`Listener::chains`].
    pub fn hcms(&self) -> impl Iterator<Item = &HttpConnectionManager> {
        self.chains().filter_map(FilterChain::hcm)
    }

    /// The HTTP connection managers, to change them.
    pub fn hcms_mut(&mut self) -> impl Iterator<Item = &mut HttpConnectionManager> {
        self.chains_mut().filter_map(FilterChain::hcm_mut)
    }
}

/// A listener filter: it looks at a new connection before a filter chain is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerFilter {
    /// Which filter.
    pub kind: ListenerFilterKind,
    /// Destination ports the filter does not run for (Envoy's `filter_disabled` with
    /// `destination_port_range` predicates, as Istio writes them for its inspectors).
    #[serde(default)]
    pub disabled_ports: Vec<PortRange>,
}

impl ListenerFilter {
    /// The filter, enabled on every port.
    pub fn new(kind: ListenerFilterKind) -> Self {
        Self {
            kind,
            disabled_ports: Vec::new(),
        }
    }

    /// Whether the filter runs for a connection to `port`.
    pub fn runs_for(&self, port: u16) -> bool {
        !self.disabled_ports.iter().any(|r| r.contains(port))
    }
}

/// A range of ports, `start` included, `end` excluded (Envoy's `Int32Range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    /// The first port in the range.
    pub start: u32,
    /// The first port after it.
    pub end: u32,
}

impl PortRange {
    /// Whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.start..self.end).contains(&u32::from(port))
    }
}

/// The listener filters the proxy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerFilterKind {
    /// `envoy.filters.listener.original_dst`: the connection's destination becomes the one it
    /// had before an iptables `REDIRECT` (`SO_ORIGINAL_DST`).
    OriginalDst,
    /// `envoy.filters.listener.http_inspector`: reads the first bytes to tell HTTP/1.x and
    /// HTTP/2 prior knowledge (ALPN `http/1.0`, `http/1.1`, `h2c`) from anything else.
    HttpInspector,
    /// `envoy.filters.listener.tls_inspector`: reads a TLS ClientHello for the transport
    /// protocol (`tls`), the server name and the offered ALPN protocols.
    TlsInspector,
}

/// A filter chain: which connections it serves, and the network filter that serves them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterChain {
    /// The chain's name (Istio names them, e.g. `0.0.0.0_9080`); may be empty.
    #[serde(default)]
    pub name: String,
    /// Which connections this chain serves (empty matches all).
    #[serde(default)]
    pub filter_chain_match: FilterChainMatch,
    /// The terminal network filter.
    pub filter: NetworkFilter,
    /// TLS the chain terminates before its filter sees the bytes (`transport_socket`
    /// `envoy.transport_sockets.tls`; default none: plain text).
    #[serde(default)]
    pub transport_socket: Option<super::tls::DownstreamTlsContext>,
}

impl FilterChain {
    /// A chain serving every connection with `hcm`.
    pub fn http(hcm: HttpConnectionManager) -> Self {
        Self {
            name: String::new(),
            filter_chain_match: FilterChainMatch::default(),
            filter: NetworkFilter::HttpConnectionManager(Box::new(hcm)),
            transport_socket: None,
        }
    }

    /// A chain serving every connection with `tcp`.
    pub fn tcp(tcp: TcpProxy) -> Self {
        Self {
            name: String::new(),
            filter_chain_match: FilterChainMatch::default(),
            filter: NetworkFilter::TcpProxy(tcp),
            transport_socket: None,
        }
    }

    /// The chain's HTTP connection manager, when it has one.
    pub fn hcm(&self) -> Option<&HttpConnectionManager> {
        match &self.filter {
            NetworkFilter::HttpConnectionManager(h) => Some(h),
            NetworkFilter::TcpProxy(_) => None,
        }
    }

    /// The chain's HTTP connection manager, to change it.
    pub fn hcm_mut(&mut self) -> Option<&mut HttpConnectionManager> {
        match &mut self.filter {
            NetworkFilter::HttpConnectionManager(h) => Some(h),
            NetworkFilter::TcpProxy(_) => None,
        }
    }
}

/// The network filter that serves a chain's connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkFilter {
    /// `envoy.filters.network.http_connection_manager`.
    HttpConnectionManager(Box<HttpConnectionManager>),
    /// `envoy.filters.network.tcp_proxy`.
    TcpProxy(TcpProxy),
}

/// Envoy's `tcp_proxy`: each connection is streamed, both ways, to a host of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TcpProxy {
    /// Stats prefix: stats are `tcp.<stat_prefix>.*`.
    pub stat_prefix: String,
    /// The upstream cluster, or clusters with weights (one is picked per connection).
    pub clusters: Vec<TcpCluster>,
    /// Close both sides after this long without a byte either way (default 1 h; zero
    /// disables).
    #[serde(with = "super::duration")]
    pub idle_timeout: Duration,
    /// Connection attempts before giving up (default 1).
    pub max_connect_attempts: u32,
    /// Access logs, written when the connection closes.
    pub access_log: Vec<AccessLog>,
}

impl Default for TcpProxy {
    fn default() -> Self {
        Self {
            stat_prefix: String::new(),
            clusters: Vec::new(),
            idle_timeout: Duration::from_secs(3600),
            max_connect_attempts: 1,
            access_log: Vec::new(),
        }
    }
}

impl TcpProxy {
    /// A TCP proxy to one cluster, stats under `tcp.<stat_prefix>`.
    pub fn to_cluster(stat_prefix: impl Into<String>, cluster: impl Into<String>) -> Self {
        Self {
            stat_prefix: stat_prefix.into(),
            clusters: vec![TcpCluster {
                name: cluster.into(),
                weight: 1,
            }],
            ..Self::default()
        }
    }
}

/// A `tcp_proxy` upstream cluster and its weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpCluster {
    /// The cluster's name.
    pub name: String,
    /// Relative weight (1 when the proxy names a single cluster).
    pub weight: u32,
}

/// Envoy's `FilterChainMatch`. Criteria are compared in Envoy's order, each keeping only the
/// most specific chains that fit: destination port, destination IP, server name, transport
/// protocol, application protocols, direct source IP, source type, source IP, source port. A
/// criterion a chain sets and the connection does not fit rules the chain out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FilterChainMatch {
    /// Original destination port.
    pub destination_port: Option<u16>,
    /// Original destination IP ranges (`prefix_ranges`); the longest prefix wins.
    pub prefix_ranges: Vec<CidrRange>,
    /// SNI names: exact, or `*.` wildcards (the longest suffix wins).
    pub server_names: Vec<String>,
    /// `raw_buffer` or `tls`.
    pub transport_protocol: Option<String>,
    /// ALPN protocols (from the TLS inspector, or `http/1.1`/`h2c` from the HTTP inspector).
    pub application_protocols: Vec<String>,
    /// The peer's IP ranges, before any proxy protocol.
    pub direct_source_prefix_ranges: Vec<CidrRange>,
    /// Local or external peers.
    pub source_type: SourceType,
    /// The client's IP ranges.
    pub source_prefix_ranges: Vec<CidrRange>,
    /// The client's ports.
    pub source_ports: Vec<u16>,
}

/// `FilterChainMatch.source_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceType {
    /// Any peer (default).
    #[default]
    Any,
    /// The peer is this host: its address is the local address or a loopback one.
    SameIpOrLoopback,
    /// Any other peer.
    External,
}

/// Which HTTP versions the connection manager accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CodecType {
    /// HTTP/1.1 and HTTP/2 (prior knowledge) detected per connection (default).
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only.
    Http2,
}

/// Where the connection manager's route table comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteSource {
    /// Inline.
    RouteConfig(RouteConfiguration),
    /// By name from RDS (or from `Bootstrap::route_configs`).
    Rds(String),
}

/// The default [`HttpConnectionManager::request_headers_timeout`]: 10 s, where Envoy has none
/// (a client sending one header byte at a time would otherwise hold its connection forever).
pub const DEFAULT_REQUEST_HEADERS_TIMEOUT: Duration = Duration::from_secs(10);

/// Envoy's HTTP connection manager settings, with Envoy's names and defaults (except
/// [`HttpConnectionManager::request_headers_timeout`], which is safer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConnectionManager {
    /// Stats prefix.
    pub stat_prefix: String,
    /// Accepted HTTP versions.
    pub codec_type: CodecType,
    /// The route table.
    pub route: RouteSource,
    /// HTTP filters in order; the router runs after them.
    pub http_filters: Vec<HttpFilterConfig>,
    /// Largest request header block in KiB (default 60).
    pub max_request_headers_kb: u32,
    /// Time allowed to receive the request headers, from the connection's first byte or the
    /// previous response (default 10 s, safer than Envoy's none: the value of Envoy's edge
    /// proxy guide; `None`, or zero in a file, disables it).
    #[serde(with = "super::duration::option")]
    pub request_headers_timeout: Option<Duration>,
    /// Time allowed to receive the whole request, headers and body (default none). When it
    /// passes before the request is complete the client gets 408.
    #[serde(with = "super::duration::option")]
    pub request_timeout: Option<Duration>,
    /// Per-stream idle timeout (default 5 min; zero disables).
    #[serde(with = "super::duration")]
    pub stream_idle_timeout: Duration,
    /// Connection idle timeout with no active streams (default 1 h; zero disables).
    #[serde(with = "super::duration")]
    pub idle_timeout: Duration,
    /// Close a connection after this many requests (default unlimited).
    pub max_requests_per_connection: Option<u32>,
    /// Close a connection after this long (default unlimited).
    #[serde(with = "super::duration::option")]
    pub max_connection_duration: Option<Duration>,
    /// Use the peer address as the client address and append it to `x-forwarded-for`.
    pub use_remote_address: bool,
    /// Trusted hops in `x-forwarded-for` when `use_remote_address` is false.
    pub xff_num_trusted_hops: u32,
    /// Which peers are internal.
    pub internal_address_config: InternalAddressConfig,
    /// Keep an external request's `x-request-id` (default false: regenerated at the edge).
    pub preserve_external_request_id: bool,
    /// Generate `x-request-id` when absent (default true).
    pub generate_request_id: bool,
    /// Allowed upgrades (e.g. WebSocket).
    pub upgrade_configs: Vec<UpgradeConfig>,
    /// Remove any port from `Host`.
    pub strip_any_host_port: bool,
    /// Remove the port from `Host` when it equals the listener's.
    pub strip_matching_host_port: bool,
    /// Access logs.
    pub access_log: Vec<AccessLog>,
    /// Do not add `x-envoy-*` headers (router `suppress_envoy_headers`).
    pub suppress_envoy_headers: bool,
    /// `server` response header value (default `envoy`).
    pub server_name: String,
    /// RFC 3986 path normalisation before routing and for the forwarded path: dot segments
    /// removed, `\` made `/`, escaped unreserved characters decoded, `%00` refused (default
    /// false, as in Envoy; Istio turns it on).
    pub normalize_path: bool,
    /// Merge repeated slashes in the path (default false).
    pub merge_slashes: bool,
    /// What to do with `%2F` and `%5C` in a path (default keep them).
    pub path_with_escaped_slashes_action: EscapedSlashesAction,
    /// What to do with request header names that contain `_` (default allow).
    pub headers_with_underscores_action: UnderscoresAction,
    /// Most request headers (default 100); a request with more gets 431.
    pub max_headers_count: u32,
    /// Serve HTTP/1.0 requests (default false: they get 426, as in Envoy).
    pub accept_http_10: bool,
    /// The Host given to an HTTP/1.0 request that has none (only with `accept_http_10`).
    pub default_host_for_http_10: Option<String>,
    /// HTTP/2 limits.
    pub http2: Http2Options,
    /// Tracing. Trace context (`traceparent`, `x-b3-*`) is read, continued and written only
    /// when this is set, as in Envoy (default none).
    pub tracing: Option<Tracing>,
}

/// Envoy's connection manager `tracing`: the proxy continues an incoming trace (a child span
/// in W3C and B3 headers) or starts one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tracing {
    /// Percent of requests that carry `x-client-trace-id` to trace (default 100).
    pub client_sampling: f64,
    /// Percent of new traces to sample (default 100).
    pub random_sampling: f64,
    /// Percent of all traced requests to sample, after the others (default 100).
    pub overall_sampling: f64,
}

impl Default for Tracing {
    fn default() -> Self {
        Self {
            client_sampling: 100.0,
            random_sampling: 100.0,
            overall_sampling: 100.0,
        }
    }
}

/// `path_with_escaped_slashes_action`: what a path with `%2F`, `%2f`, `%5C` or `%5c` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EscapedSlashesAction {
    /// Forwarded as it is (Envoy's default).
    #[default]
    KeepUnchanged,
    /// 400.
    RejectRequest,
    /// Unescaped, and the client redirected (307) to the normalised path.
    UnescapeAndRedirect,
    /// Unescaped and forwarded.
    UnescapeAndForward,
}

/// `headers_with_underscores_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnderscoresAction {
    /// Allowed (Envoy's default).
    #[default]
    Allow,
    /// The request is refused with 400.
    RejectRequest,
    /// The header is dropped.
    DropHeader,
}

/// `http2_protocol_options`: the limits of a downstream HTTP/2 connection, with Envoy's
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Http2Options {
    /// Concurrent streams per connection (default 1024).
    pub max_concurrent_streams: u32,
    /// Initial stream flow-control window in bytes (default 16 MiB).
    pub initial_stream_window_size: u32,
    /// Initial connection flow-control window in bytes (default 24 MiB).
    pub initial_connection_window_size: u32,
}

impl Default for Http2Options {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 1024,
            initial_stream_window_size: 16 * 1024 * 1024,
            initial_connection_window_size: 24 * 1024 * 1024,
        }
    }
}

impl Default for HttpConnectionManager {
    fn default() -> Self {
        Self {
            stat_prefix: "ingress_http".into(),
            codec_type: CodecType::Auto,
            route: RouteSource::RouteConfig(RouteConfiguration::new("local_route")),
            http_filters: Vec::new(),
            max_request_headers_kb: 60,
            request_headers_timeout: Some(DEFAULT_REQUEST_HEADERS_TIMEOUT),
            request_timeout: None,
            stream_idle_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(3600),
            max_requests_per_connection: None,
            max_connection_duration: None,
            use_remote_address: false,
            xff_num_trusted_hops: 0,
            internal_address_config: InternalAddressConfig::default(),
            preserve_external_request_id: false,
            generate_request_id: true,
            upgrade_configs: Vec::new(),
            strip_any_host_port: false,
            strip_matching_host_port: false,
            access_log: Vec::new(),
            suppress_envoy_headers: false,
            server_name: "envoy".into(),
            normalize_path: false,
            merge_slashes: false,
            path_with_escaped_slashes_action: EscapedSlashesAction::KeepUnchanged,
            headers_with_underscores_action: UnderscoresAction::Allow,
            max_headers_count: 100,
            accept_http_10: false,
            default_host_for_http_10: None,
            http2: Http2Options::default(),
            tracing: None,
        }
    }
}

impl HttpConnectionManager {
    /// A connection manager with an inline route table and every other setting at its default.
    pub fn with_routes(routes: RouteConfiguration) -> Self {
        Self {
            route: RouteSource::RouteConfig(routes),
            ..Self::default()
        }
    }
}

/// Which downstream peers count as internal.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct InternalAddressConfig {
    /// Internal CIDR ranges. Empty (Envoy ≥ 1.33's default) means no peer is internal.
    pub cidr_ranges: Vec<CidrRange>,
}

/// An IP prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CidrRange {
    /// The address.
    pub address_prefix: IpAddr,
    /// Prefix length in bits.
    pub prefix_len: u8,
}

impl CidrRange {
    /// Whether `ip` lies in this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, width: u32, len: u32) -> u128 {
            if len == 0 {
                0
            } else {
                let len = len.min(width);
                bits >> (width - len)
            }
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let len = u32::from(self.prefix_len);
        match (self.address_prefix, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                masked(u32::from(a).into(), 32, len) == masked(u32::from(b).into(), 32, len)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                masked(u128::from(a), 128, len) == masked(u128::from(b), 128, len)
            }
            _ => false,
        }
    }
}

/// An HTTP filter in the chain: a registered factory name and its config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpFilterConfig {
    /// The filter's name (e.g. `envoy.filters.http.router` or a user's own).
    pub name: String,
    /// The config handed to the factory (a `TypedStruct`'s `value`, or the typed config's fields).
    #[serde(default)]
    pub config: serde_json::Value,
    /// The factory to use when it differs from `name` (the `TypedStruct` `type_url` or `@type`).
    #[serde(default)]
    pub type_url: Option<String>,
    /// Present but not run unless enabled per route.
    #[serde(default)]
    pub disabled: bool,
    /// Envoy's `is_optional`: a filter no factory is registered for is skipped instead of
    /// rejecting the config. Never for a filter that authorizes or authenticates requests:
    /// skipping one would serve what the config meant to refuse.
    #[serde(default)]
    pub is_optional: bool,
}

impl HttpFilterConfig {
    /// A filter by name with a config.
    pub fn new(name: impl Into<String>, config: serde_json::Value) -> Self {
        Self {
            name: name.into(),
            config,
            type_url: None,
            disabled: false,
            is_optional: false,
        }
    }
}

/// The name of the terminal router filter.
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";

/// An access log sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLog {
    /// Where lines go.
    pub sink: AccessLogSink,
    /// Envoy format string; `None` is Envoy's default format.
    #[serde(default)]
    pub format: Option<String>,
}

/// Where access log lines are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogSink {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A file path.
    File(String),
}
