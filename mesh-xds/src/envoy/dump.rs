//! The config model written back as Envoy v3 JSON, the way Envoy's `/config_dump` prints it.
//!
//! Each function turns one model type into the JSON of the Envoy message it came from, so that
//! tools written for Envoy's admin output (and Envoy itself) can read what mesh runs:
//!
//! | function | Envoy message |
//! |---|---|
//! | [`bootstrap`] | `config.bootstrap.v3.Bootstrap` (`static_resources`, `admin`) |
//! | [`listener`] | `config.listener.v3.Listener`, with the HTTP connection manager as its `typed_config` |
//! | [`route_configuration`] | `config.route.v3.RouteConfiguration` |
//! | [`cluster`] | `config.cluster.v3.Cluster` |
//! | [`cluster_load_assignment`] | `config.endpoint.v3.ClusterLoadAssignment` |
//!
//! The output follows protobuf's JSON mapping as Envoy prints it:
//!
//! - field names in `snake_case`; enums by name (`"STRICT_DNS"`); durations as seconds with an
//!   `s` suffix (`"0.25s"`); 64-bit integers (`int64`, `UInt64Value`) as strings; wrapper
//!   types (`UInt32Value`, `BoolValue`) bare; `type.v3.Percent` as `{"value": 25.5}`;
//! - `Any` fields carry `@type`: the connection manager, the router, access loggers, HTTP
//!   protocol options. User HTTP filters are written as a `xds.type.v3.TypedStruct` holding the
//!   filter's `type_url` and config; filters whose type is one of Envoy's own extensions
//!   (`type.googleapis.com/envoy.…`) are written as that typed message;
//! - a field at its default is left out, as Envoy leaves out proto3 defaults. Where the model
//!   cannot tell "unset" from "set to the default" (Envoy's wrapper types), the field is printed
//!   only when it differs from Envoy's default. `oneof` members are printed whenever set (a
//!   `prefix: ""` match, `present_match: false`, `port_value: 0`), as protobuf does. `Cluster.type` and
//!   `connect_timeout` are always printed.
//!
//! The output is deterministic: objects are `serde_json::Map`s, which keep their keys sorted.
//!
//! What the model does not keep cannot be printed: the `@type` of a per-filter config
//! (`typed_per_filter_config` entries become a `TypedStruct` holding only the config), a
//! `config_source` (RDS and EDS point at ADS), and the [`Bootstrap::route_configs`] that RDS
//! listeners name (Envoy's bootstrap has no place for them; the admin endpoint lists them among
//! the route configurations). Everything else reads back through
//! [`parse_bootstrap`](super::parse_bootstrap) into the same model without a warning (EDS
//! clusters and RDS listeners excepted, which the reader reports as unsupported).
//!
//! # Examples
//!
//! ```
//! use mesh_core::config::Cluster;
//! use mesh_xds::envoy::dump;
//!
//! let c = Cluster::new_static("web", ["127.0.0.1:8081".parse().unwrap()]);
//! let json = dump::cluster(&c);
//! assert_eq!(json["type"], "STATIC");
//! assert_eq!(json["connect_timeout"], "5s");
//! let address = &json["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
//! assert_eq!(address["socket_address"]["port_value"], 8081);
//! // Round robin is Envoy's default policy: not printed.
//! assert!(json.get("lb_policy").is_none());
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use mesh_core::config::{
    AccessLog, AccessLogSink, Action, Address, AppendAction, Bootstrap, ClusterLoadAssignment,
    ClusterSpecifier, ClusterWeight, CodecType, DEFAULT_REQUEST_HEADERS_TIMEOUT, Denominator,
    DirectResponseAction, DiscoveryType, FilterChain, FilterChainMatch, FractionalPercent, HashOn,
    HashPolicy, HeaderMatchSpec, HeaderMatcher, HeaderMutations, HeaderValueOption, HealthCheck,
    HealthChecker, HealthStatus, HedgePolicy, HostRewrite, HttpConnectionManager, HttpFilterConfig,
    LbEndpoint, LbPolicy, Listener, LocalityLbEndpoints, Metadata, OutlierDetection, PathMatch,
    PathRedirect, QueryParameterMatcher, RedirectAction, RedirectCode, RegexRewrite,
    RequestMirrorPolicy, RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch,
    RouteSource, RoutingPriority, RuntimeFraction, StringMatcher, StringPattern, Thresholds,
    TlsRequirement, UpgradeConfig, UpstreamProtocol, VirtualCluster, VirtualHost, WeightedClusters,
    duration,
};
use mesh_core::config::{
    CidrRange, Cluster, CommonTlsContext, DEFAULT_LISTENER_FILTERS_TIMEOUT, DataSource,
    DownstreamTlsContext, EscapedSlashesAction, Http2Options, LbSubsetConfig,
    LbSubsetFallbackPolicy, LbSubsetSelectorFallbackPolicy, ListenerFilter, ListenerFilterKind,
    NetworkFilter, PortRange, ROUTER_FILTER, SanType, SourceType, TcpProxy, TlsVersion,
    UnderscoresAction,
};
use serde_json::{Map, Value};

const TYPE_PREFIX: &str = "type.googleapis.com/";
const HCM_NAME: &str = "envoy.filters.network.http_connection_manager";
const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";
const TCP_PROXY_NAME: &str = "envoy.filters.network.tcp_proxy";
const TCP_PROXY: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const TYPED_STRUCT: &str = "xds.type.v3.TypedStruct";
const STDOUT_LOG: &str = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
const STDERR_LOG: &str = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog";
const FILE_LOG: &str = "envoy.extensions.access_loggers.file.v3.FileAccessLog";
const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const GLOBAL_DOWNSTREAM_MAX_CONNECTIONS: &str =
    "envoy.resource_monitors.global_downstream_max_connections";
const DOWNSTREAM_CONNECTIONS_CONFIG: &str =
    "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig";
const URI_TEMPLATE_NAME: &str = "envoy.path.match.uri_template.uri_template_matcher";
const URI_TEMPLATE: &str = "envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig";

/// Envoy's defaults, where the model's equal them and they are therefore not printed.
const DEFAULT_MAX_REQUEST_HEADERS_KB: u32 = 60;
const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
const DEFAULT_SERVER_NAME: &str = "envoy";
const DEFAULT_MAX_DIRECT_RESPONSE_BODY: u32 = 4096;
const DEFAULT_DNS_REFRESH_RATE: Duration = Duration::from_secs(5);
const DEFAULT_OVERPROVISIONING_FACTOR: u32 = 140;

// ---------------------------------------------------------------------------------------------
// Bootstrap and listeners
// ---------------------------------------------------------------------------------------------

/// A [`Bootstrap`] as Envoy's `config.bootstrap.v3.Bootstrap`: `static_resources` with the
/// listeners and clusters, and `admin` with its address.
///
/// [`Bootstrap::route_configs`] are not part of it (Envoy's bootstrap has no static route
/// configurations); dump them with [`route_configuration`].
///
/// # Examples
///
/// ```
/// use mesh_core::config::*;
/// use mesh_xds::envoy::{dump, parse_bootstrap};
///
/// let routes = RouteConfiguration::new("local")
///     .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "web")));
/// let b = Bootstrap::default()
///     .with_listener(Listener::http(
///         "http",
///         "127.0.0.1:8080".parse().unwrap(),
///         HttpConnectionManager::with_routes(routes),
///     ))
///     .with_cluster(Cluster::new_static("web", ["127.0.0.1:8081".parse().unwrap()]));
/// let json = dump::bootstrap(&b);
/// assert_eq!(
///     json["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"],
///     8080
/// );
/// // The reader gives back the same model.
/// let back = parse_bootstrap(&json.to_string())?;
/// assert!(back.warnings.is_empty());
/// assert_eq!(back.value, b);
/// # Ok::<(), mesh_xds::LoadError>(())
/// ```
pub fn bootstrap(b: &Bootstrap) -> Value {
    let mut out = Obj::new();
    let mut sr = Obj::new();
    sr.list("listeners", b.listeners.iter().map(listener));
    sr.list("clusters", b.clusters.iter().map(cluster));
    out.message("static_resources", sr);
    if let Some(admin) = &b.admin {
        out.set(
            "admin",
            json_obj([("address", socket_address(admin.address))]),
        );
    }
    if !b.layered_runtime.layers.is_empty() {
        let layers = b.layered_runtime.layers.iter().map(|l| {
            let (key, value) = match &l.kind {
                mesh_core::config::RuntimeLayerKind::Static(v) => ("static_layer", v.clone()),
                mesh_core::config::RuntimeLayerKind::Admin => {
                    ("admin_layer", Value::Object(Map::new()))
                }
            };
            json_obj([("name", l.name.as_str().into()), (key, value)])
        });
        out.set(
            "layered_runtime",
            json_obj([("layers", Value::Array(layers.collect()))]),
        );
    }
    let n = &b.node;
    if *n != mesh_core::config::Node::default() {
        let mut node = Obj::new();
        node.str("id", &n.id);
        node.str("cluster", &n.cluster);
        if !n.metadata.is_empty() {
            node.set("metadata", Value::Object(n.metadata.clone()));
        }
        let mut locality = Obj::new();
        locality.str("region", &n.locality.region);
        locality.str("zone", &n.locality.zone);
        locality.str("sub_zone", &n.locality.sub_zone);
        if !locality.is_empty() {
            node.set("locality", locality);
        }
        out.set("node", node);
    }
    if let Some(d) = &b.dynamic_resources {
        let mut dr = Obj::new();
        let mut ads = Obj::new();
        ads.str(
            "api_type",
            match d.ads.api_type {
                mesh_core::config::AdsApiType::Grpc => "GRPC",
                mesh_core::config::AdsApiType::DeltaGrpc => "DELTA_GRPC",
            },
        );
        ads.str("transport_api_version", "V3");
        ads.set(
            "grpc_services",
            Value::Array(vec![json_obj([(
                "envoy_grpc",
                json_obj([("cluster_name", d.ads.cluster_name.as_str().into())]),
            )])]),
        );
        if d.ads.set_node_on_first_message_only {
            ads.set("set_node_on_first_message_only", true);
        }
        dr.set("ads_config", ads);
        let source = || {
            let mut s = ads_config_source();
            if d.initial_fetch_timeout != mesh_core::config::DEFAULT_INITIAL_FETCH_TIMEOUT
                && let Value::Object(m) = &mut s
            {
                m.insert("initial_fetch_timeout".into(), dur(d.initial_fetch_timeout));
            }
            s
        };
        if d.lds {
            dr.set("lds_config", source());
        }
        if d.cds {
            dr.set("cds_config", source());
        }
        out.set("dynamic_resources", dr);
    }
    if let Some(max) = b.overload_manager.max_active_downstream_connections {
        let mut monitor = Obj::typed(DOWNSTREAM_CONNECTIONS_CONFIG);
        monitor.set("max_active_downstream_connections", max);
        out.set(
            "overload_manager",
            json_obj([(
                "resource_monitors",
                Value::Array(vec![json_obj([
                    ("name", GLOBAL_DOWNSTREAM_MAX_CONNECTIONS.into()),
                    ("typed_config", monitor.into()),
                ])]),
            )]),
        );
    }
    out.into()
}

/// A [`Listener`] as Envoy's `config.listener.v3.Listener`: `name`,
/// `address.socket_address`, and one filter chain per model chain whose only network filter is
/// the HTTP connection manager (`typed_config` with its `@type`).
///
/// # Examples
///
/// ```
/// use mesh_core::config::*;
/// use mesh_xds::envoy::dump;
///
/// let l = Listener::http(
///     "http",
///     "0.0.0.0:8080".parse().unwrap(),
///     HttpConnectionManager::with_routes(RouteConfiguration::new("local")),
/// );
/// let json = dump::listener(&l);
/// let hcm = &json["filter_chains"][0]["filters"][0];
/// assert_eq!(hcm["name"], "envoy.filters.network.http_connection_manager");
/// assert_eq!(hcm["typed_config"]["stat_prefix"], "ingress_http");
/// // The router is always the last HTTP filter.
/// assert_eq!(hcm["typed_config"]["http_filters"][0]["name"], "envoy.filters.http.router");
/// ```
pub fn listener(l: &Listener) -> Value {
    let mut out = Obj::new();
    out.str("name", &l.name);
    out.set("address", socket_address(l.address));
    out.list("filter_chains", l.filter_chains.iter().map(filter_chain));
    if let Some(fc) = &l.default_filter_chain {
        out.set("default_filter_chain", filter_chain(fc));
    }
    if !l.bind_to_port {
        out.set("bind_to_port", false);
    }
    out.flag("use_original_dst", l.use_original_dst);
    out.list(
        "listener_filters",
        l.listener_filters.iter().map(listener_filter),
    );
    if l.listener_filters_timeout != DEFAULT_LISTENER_FILTERS_TIMEOUT {
        out.set("listener_filters_timeout", dur(l.listener_filters_timeout));
    }
    out.flag(
        "continue_on_listener_filters_timeout",
        l.continue_on_listener_filters_timeout,
    );
    out.into()
}

fn listener_filter(f: &ListenerFilter) -> Value {
    let (name, ty) = match f.kind {
        ListenerFilterKind::OriginalDst => (
            "envoy.filters.listener.original_dst",
            "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
        ),
        ListenerFilterKind::HttpInspector => (
            "envoy.filters.listener.http_inspector",
            "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
        ),
        ListenerFilterKind::TlsInspector => (
            "envoy.filters.listener.tls_inspector",
            "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
        ),
    };
    let mut out = Obj::new();
    out.str("name", name);
    out.set("typed_config", Obj::typed(ty));
    let range = |r: &PortRange| {
        json_obj([(
            "destination_port_range",
            json_obj([("start", r.start.into()), ("end", r.end.into())]),
        )])
    };
    match f.disabled_ports.as_slice() {
        [] => {}
        [one] => out.set("filter_disabled", range(one)),
        many => out.set(
            "filter_disabled",
            json_obj([(
                "or_match",
                json_obj([("rules", Value::Array(many.iter().map(range).collect()))]),
            )]),
        ),
    }
    out.into()
}

fn socket_address(a: SocketAddr) -> Value {
    address(&a.ip().to_string(), a.port())
}

/// `config.core.v3.Address` with a `socket_address`.
fn address(host: &str, port: u16) -> Value {
    let mut sa = Obj::new();
    sa.str("address", host);
    // `port_value` is a oneof member: printed even when 0.
    sa.set("port_value", port);
    json_obj([("socket_address", sa.into())])
}

fn filter_chain(fc: &FilterChain) -> Value {
    let mut out = Obj::new();
    out.str("name", &fc.name);
    out.message("filter_chain_match", chain_match(&fc.filter_chain_match));
    let mut f = Obj::new();
    match &fc.filter {
        NetworkFilter::HttpConnectionManager(h) => {
            f.set("name", HCM_NAME);
            f.set("typed_config", http_connection_manager(h));
        }
        NetworkFilter::TcpProxy(t) => {
            f.set("name", TCP_PROXY_NAME);
            f.set("typed_config", tcp_proxy(t));
        }
    }
    out.set("filters", Value::Array(vec![f.into()]));
    if let Some(t) = &fc.transport_socket {
        out.set(
            "transport_socket",
            json_obj([
                ("name", "envoy.transport_sockets.tls".into()),
                ("typed_config", downstream_tls(t)),
            ]),
        );
    }
    out.into()
}

fn upstream_tls(t: &mesh_core::config::UpstreamTlsContext) -> Value {
    let mut u = Obj::typed("envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext");
    u.message("common_tls_context", common_tls(&t.common_tls_context));
    u.opt_str("sni", t.sni.as_deref());
    json_obj([
        ("name", "envoy.transport_sockets.tls".into()),
        ("typed_config", u.into()),
    ])
}

fn downstream_tls(t: &DownstreamTlsContext) -> Value {
    let mut out = Obj::typed("envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext");
    out.message("common_tls_context", common_tls(&t.common_tls_context));
    out.flag("require_client_certificate", t.require_client_certificate);
    out.flag(
        "disable_stateless_session_resumption",
        t.disable_stateless_session_resumption,
    );
    out.flag(
        "disable_stateful_session_resumption",
        t.disable_stateful_session_resumption,
    );
    out.into()
}

fn common_tls(c: &CommonTlsContext) -> Obj {
    let mut out = Obj::new();
    out.list(
        "tls_certificates",
        c.tls_certificates.iter().map(|cert| {
            json_obj([
                ("certificate_chain", data_source(&cert.certificate_chain)),
                ("private_key", data_source(&cert.private_key)),
            ])
        }),
    );
    out.list(
        "tls_certificate_sds_secret_configs",
        c.tls_certificate_sds_secret_configs.iter().map(|s| {
            json_obj([
                ("name", s.name.as_str().into()),
                (
                    "sds_config",
                    json_obj([(
                        "path_config_source",
                        json_obj([("path", s.path.as_str().into())]),
                    )]),
                ),
            ])
        }),
    );
    out.strings("alpn_protocols", &c.alpn_protocols);
    let version = |v: TlsVersion| match v {
        TlsVersion::V1_2 => "TLSv1_2",
        TlsVersion::V1_3 => "TLSv1_3",
    };
    let mut p = Obj::new();
    p.opt(
        "tls_minimum_protocol_version",
        c.tls_params.minimum_protocol_version.map(version),
    );
    p.opt(
        "tls_maximum_protocol_version",
        c.tls_params.maximum_protocol_version.map(version),
    );
    p.strings("cipher_suites", &c.tls_params.cipher_suites);
    out.message("tls_params", p);
    if let Some(v) = &c.validation_context {
        let mut vc = Obj::new();
        if let Some(ca) = &v.trusted_ca {
            vc.set("trusted_ca", data_source(ca));
        }
        vc.list(
            "match_typed_subject_alt_names",
            v.match_typed_subject_alt_names.iter().map(|m| {
                let t = match m.san_type {
                    SanType::Dns => "DNS",
                    SanType::Uri => "URI",
                    SanType::Email => "EMAIL",
                    SanType::IpAddress => "IP_ADDRESS",
                };
                json_obj([
                    ("san_type", t.into()),
                    ("matcher", string_matcher(&m.matcher)),
                ])
            }),
        );
        out.set("validation_context", vc);
    }
    out
}

fn data_source(d: &DataSource) -> Value {
    match d {
        DataSource::Filename(f) => json_obj([("filename", f.as_str().into())]),
        DataSource::InlineString(s) => json_obj([("inline_string", s.as_str().into())]),
    }
}

fn tcp_proxy(t: &TcpProxy) -> Value {
    let mut out = Obj::typed(TCP_PROXY);
    out.str("stat_prefix", &t.stat_prefix);
    match t.clusters.as_slice() {
        [one] if one.weight == 1 => out.str("cluster", &one.name),
        many => {
            let clusters = many.iter().map(|c| {
                json_obj([
                    ("name", c.name.as_str().into()),
                    ("weight", c.weight.into()),
                ])
            });
            out.set(
                "weighted_clusters",
                json_obj([("clusters", Value::Array(clusters.collect()))]),
            );
        }
    }
    if t.idle_timeout != TcpProxy::default().idle_timeout {
        out.set("idle_timeout", dur(t.idle_timeout));
    }
    if t.max_connect_attempts != 1 {
        out.set("max_connect_attempts", t.max_connect_attempts);
    }
    out.list("access_log", t.access_log.iter().map(access_log));
    out.into()
}

fn cidr(r: &CidrRange) -> Value {
    json_obj([
        ("address_prefix", r.address_prefix.to_string().into()),
        ("prefix_len", r.prefix_len.into()),
    ])
}

fn chain_match(m: &FilterChainMatch) -> Obj {
    let mut out = Obj::new();
    out.opt("destination_port", m.destination_port);
    out.list("prefix_ranges", m.prefix_ranges.iter().map(cidr));
    out.strings("server_names", &m.server_names);
    out.opt_str("transport_protocol", m.transport_protocol.as_deref());
    out.strings("application_protocols", &m.application_protocols);
    out.list(
        "direct_source_prefix_ranges",
        m.direct_source_prefix_ranges.iter().map(cidr),
    );
    match m.source_type {
        SourceType::Any => {}
        SourceType::SameIpOrLoopback => out.set("source_type", "SAME_IP_OR_LOOPBACK"),
        SourceType::External => out.set("source_type", "EXTERNAL"),
    }
    out.list(
        "source_prefix_ranges",
        m.source_prefix_ranges.iter().map(cidr),
    );
    out.list(
        "source_ports",
        m.source_ports.iter().map(|p| Value::from(*p)),
    );
    out
}

/// The `HttpConnectionManager` typed config, with its `@type`.
pub(crate) fn http_connection_manager(h: &HttpConnectionManager) -> Value {
    let mut out = Obj::typed(HCM);
    out.str("stat_prefix", &h.stat_prefix);
    match h.codec_type {
        CodecType::Auto => {}
        CodecType::Http1 => out.set("codec_type", "HTTP1"),
        CodecType::Http2 => out.set("codec_type", "HTTP2"),
    }
    match &h.route {
        RouteSource::RouteConfig(rc) => out.set("route_config", route_configuration(rc)),
        RouteSource::Rds(name) => {
            let mut rds = Obj::new();
            rds.str("route_config_name", name);
            rds.set("config_source", ads_config_source());
            out.set("rds", rds);
        }
    }
    let mut filters: Vec<Value> = h.http_filters.iter().map(http_filter).collect();
    let mut router = Obj::typed(ROUTER);
    router.flag("suppress_envoy_headers", h.suppress_envoy_headers);
    filters.push(json_obj([
        ("name", ROUTER_FILTER.into()),
        ("typed_config", router.into()),
    ]));
    out.set("http_filters", Value::Array(filters));
    out.unless(
        "max_request_headers_kb",
        h.max_request_headers_kb,
        DEFAULT_MAX_REQUEST_HEADERS_KB,
    );
    // Left out at mesh's default (10 s); "0s" is how Envoy's config says "none".
    if h.request_headers_timeout != Some(DEFAULT_REQUEST_HEADERS_TIMEOUT) {
        out.set(
            "request_headers_timeout",
            dur(h.request_headers_timeout.unwrap_or_default()),
        );
    }
    out.opt_duration("request_timeout", h.request_timeout);
    out.unless_duration(
        "stream_idle_timeout",
        h.stream_idle_timeout,
        DEFAULT_STREAM_IDLE_TIMEOUT,
    );
    let mut common = Obj::new();
    common.unless_duration("idle_timeout", h.idle_timeout, DEFAULT_IDLE_TIMEOUT);
    common.opt("max_requests_per_connection", h.max_requests_per_connection);
    common.opt_duration("max_connection_duration", h.max_connection_duration);
    common.unless("max_headers_count", h.max_headers_count, 100);
    match h.headers_with_underscores_action {
        UnderscoresAction::Allow => {}
        UnderscoresAction::RejectRequest => {
            common.set("headers_with_underscores_action", "REJECT_REQUEST");
        }
        UnderscoresAction::DropHeader => {
            common.set("headers_with_underscores_action", "DROP_HEADER");
        }
    }
    out.message("common_http_protocol_options", common);
    out.flag("use_remote_address", h.use_remote_address);
    out.nonzero("xff_num_trusted_hops", h.xff_num_trusted_hops);
    if !h.internal_address_config.cidr_ranges.is_empty() {
        let ranges = h.internal_address_config.cidr_ranges.iter().map(cidr);
        let mut iac = Obj::new();
        iac.list("cidr_ranges", ranges);
        out.set("internal_address_config", iac);
    }
    out.flag(
        "preserve_external_request_id",
        h.preserve_external_request_id,
    );
    if !h.generate_request_id {
        out.set("generate_request_id", false);
    }
    out.list(
        "upgrade_configs",
        h.upgrade_configs.iter().map(upgrade_config),
    );
    if let Some(t) = &h.tracing {
        let mut tr = Obj::new();
        for (key, v) in [
            ("client_sampling", t.client_sampling),
            ("random_sampling", t.random_sampling),
            ("overall_sampling", t.overall_sampling),
        ] {
            if v != 100.0 {
                tr.set(key, percent(v));
            }
        }
        out.set("tracing", tr);
    }
    out.flag("normalize_path", h.normalize_path);
    out.flag("merge_slashes", h.merge_slashes);
    let escaped = match h.path_with_escaped_slashes_action {
        EscapedSlashesAction::KeepUnchanged => None,
        EscapedSlashesAction::RejectRequest => Some("REJECT_REQUEST"),
        EscapedSlashesAction::UnescapeAndRedirect => Some("UNESCAPE_AND_REDIRECT"),
        EscapedSlashesAction::UnescapeAndForward => Some("UNESCAPE_AND_FORWARD"),
    };
    if let Some(a) = escaped {
        out.set("path_with_escaped_slashes_action", a);
    }
    let mut h1 = Obj::new();
    h1.flag("accept_http_10", h.accept_http_10);
    if let Some(host) = &h.default_host_for_http_10 {
        h1.set("default_host_for_http_10", host.as_str());
    }
    out.message("http_protocol_options", h1);
    let mut h2 = Obj::new();
    let d = Http2Options::default();
    h2.unless(
        "max_concurrent_streams",
        h.http2.max_concurrent_streams,
        d.max_concurrent_streams,
    );
    h2.unless(
        "initial_stream_window_size",
        h.http2.initial_stream_window_size,
        d.initial_stream_window_size,
    );
    h2.unless(
        "initial_connection_window_size",
        h.http2.initial_connection_window_size,
        d.initial_connection_window_size,
    );
    out.message("http2_protocol_options", h2);
    out.flag("strip_any_host_port", h.strip_any_host_port);
    out.flag("strip_matching_host_port", h.strip_matching_host_port);
    if h.server_name != DEFAULT_SERVER_NAME {
        // Printed even when empty: the model reads an empty name as "no `server` header".
        out.set("server_name", h.server_name.as_str());
    }
    out.list("access_log", h.access_log.iter().map(access_log));
    out.into()
}

/// An ADS `ConfigSource`: the model does not keep where RDS or EDS resources come from.
fn ads_config_source() -> Value {
    json_obj([
        ("ads", Value::Object(Map::new())),
        ("resource_api_version", "V3".into()),
    ])
}

/// A user HTTP filter. Envoy's own extensions (`type.googleapis.com/envoy.…`) are printed as
/// their typed message; other filters as a `TypedStruct` holding the type URL and the config.
fn http_filter(f: &HttpFilterConfig) -> Value {
    let mut out = Obj::new();
    out.set("name", f.name.as_str());
    let typed = match (&f.type_url, &f.config) {
        (Some(t), Value::Object(config))
            if t.starts_with(TYPE_PREFIX)
                && t[TYPE_PREFIX.len()..].starts_with("envoy.")
                && !config.contains_key("@type") =>
        {
            let mut m = Map::new();
            m.insert("@type".into(), t.as_str().into());
            m.extend(config.iter().map(|(k, v)| (k.clone(), v.clone())));
            Some(Value::Object(m))
        }
        (None, Value::Null) => None,
        (type_url, config) => Some(typed_struct(type_url.as_deref(), config)),
    };
    if let Some(t) = typed {
        out.set("typed_config", t);
    }
    out.flag("disabled", f.disabled);
    out.flag("is_optional", f.is_optional);
    out.into()
}

/// An `xds.type.v3.TypedStruct` holding `config` (left out when null).
fn typed_struct(type_url: Option<&str>, config: &Value) -> Value {
    let mut ts = Obj::typed(TYPED_STRUCT);
    ts.opt_str("type_url", type_url);
    if !config.is_null() {
        ts.set("value", config.clone());
    }
    ts.into()
}

fn access_log(l: &AccessLog) -> Value {
    let (name, ty) = match &l.sink {
        AccessLogSink::Stdout => ("envoy.access_loggers.stdout", STDOUT_LOG),
        AccessLogSink::Stderr => ("envoy.access_loggers.stderr", STDERR_LOG),
        AccessLogSink::File(_) => ("envoy.access_loggers.file", FILE_LOG),
    };
    let mut tc = Obj::typed(ty);
    if let AccessLogSink::File(path) = &l.sink {
        tc.set("path", path.as_str());
    }
    if let Some(format) = &l.format {
        tc.set(
            "log_format",
            json_obj([(
                "text_format_source",
                json_obj([("inline_string", format.as_str().into())]),
            )]),
        );
    }
    json_obj([("name", name.into()), ("typed_config", tc.into())])
}

fn upgrade_config(u: &UpgradeConfig) -> Value {
    let mut out = Obj::new();
    out.set("upgrade_type", u.upgrade_type.as_str());
    if !u.enabled {
        out.set("enabled", false);
    }
    out.into()
}

// ---------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------

/// A [`RouteConfiguration`] as Envoy's `config.route.v3.RouteConfiguration`: virtual hosts with
/// their routes (`match`, and `route`, `redirect` or `direct_response`), header mutations,
/// retry, hedge, mirror and hash policies, and every other field the model holds.
///
/// # Examples
///
/// ```
/// use mesh_core::config::*;
/// use mesh_xds::envoy::dump;
///
/// let rc = RouteConfiguration::new("local").with_virtual_host(
///     VirtualHost::new("all", ["*"])
///         .with_route(Route::path("/health", "web").with_header(HeaderMatcher::present("x-probe"))),
/// );
/// let json = dump::route_configuration(&rc);
/// assert_eq!(
///     json["virtual_hosts"][0]["routes"][0],
///     serde_json::json!({
///         "match": {"path": "/health", "headers": [{"name": "x-probe", "present_match": true}]},
///         "route": {"cluster": "web"}
///     })
/// );
/// ```
pub fn route_configuration(rc: &RouteConfiguration) -> Value {
    let mut out = Obj::new();
    out.str("name", &rc.name);
    out.list("virtual_hosts", rc.virtual_hosts.iter().map(virtual_host));
    out.strings("internal_only_headers", &rc.internal_only_headers);
    header_mutations(&mut out, &rc.headers);
    out.flag(
        "most_specific_header_mutations_wins",
        rc.most_specific_header_mutations_wins,
    );
    out.opt("validate_clusters", rc.validate_clusters);
    out.flag(
        "ignore_port_in_host_matching",
        rc.ignore_port_in_host_matching,
    );
    out.flag(
        "ignore_path_parameters_in_path_matching",
        rc.ignore_path_parameters_in_path_matching,
    );
    out.list(
        "request_mirror_policies",
        rc.request_mirror_policies.iter().map(mirror_policy),
    );
    out.unless(
        "max_direct_response_body_size_bytes",
        rc.max_direct_response_body_size_bytes,
        DEFAULT_MAX_DIRECT_RESPONSE_BODY,
    );
    out.into()
}

/// The four header-mutation fields every level has.
fn header_mutations(out: &mut Obj, h: &HeaderMutations) {
    out.list(
        "request_headers_to_add",
        h.request_headers_to_add.iter().map(header_value_option),
    );
    out.strings("request_headers_to_remove", &h.request_headers_to_remove);
    out.list(
        "response_headers_to_add",
        h.response_headers_to_add.iter().map(header_value_option),
    );
    out.strings("response_headers_to_remove", &h.response_headers_to_remove);
}

fn header_value_option(h: &HeaderValueOption) -> Value {
    let mut header = Obj::new();
    header.str("key", &h.key);
    header.str("value", &h.value);
    let mut out = Obj::new();
    out.set("header", header);
    let action = match h.append_action {
        AppendAction::AppendIfExistsOrAdd => None,
        AppendAction::AddIfAbsent => Some("ADD_IF_ABSENT"),
        AppendAction::OverwriteIfExistsOrAdd => Some("OVERWRITE_IF_EXISTS_OR_ADD"),
        AppendAction::OverwriteIfExists => Some("OVERWRITE_IF_EXISTS"),
    };
    out.opt("append_action", action);
    out.flag("keep_empty_value", h.keep_empty_value);
    out.into()
}

fn virtual_host(vh: &VirtualHost) -> Value {
    let mut out = Obj::new();
    out.str("name", &vh.name);
    out.strings("domains", &vh.domains);
    out.list("routes", vh.routes.iter().map(route));
    match vh.require_tls {
        TlsRequirement::None => {}
        TlsRequirement::ExternalOnly => out.set("require_tls", "EXTERNAL_ONLY"),
        TlsRequirement::All => out.set("require_tls", "ALL"),
    }
    out.list(
        "virtual_clusters",
        vh.virtual_clusters.iter().map(virtual_cluster),
    );
    header_mutations(&mut out, &vh.headers);
    if let Some(r) = &vh.retry_policy {
        out.set("retry_policy", retry_policy(r));
    }
    if let Some(h) = &vh.hedge_policy {
        out.set("hedge_policy", hedge_policy(h));
    }
    out.list(
        "request_mirror_policies",
        vh.request_mirror_policies.iter().map(mirror_policy),
    );
    typed_per_filter_config(&mut out, &vh.typed_per_filter_config);
    out.flag(
        "include_request_attempt_count",
        vh.include_request_attempt_count,
    );
    out.flag(
        "include_attempt_count_in_response",
        vh.include_attempt_count_in_response,
    );
    out.opt(
        "per_request_buffer_limit_bytes",
        vh.per_request_buffer_limit_bytes,
    );
    out.into()
}

fn virtual_cluster(vc: &VirtualCluster) -> Value {
    let mut out = Obj::new();
    out.str("name", &vc.name);
    out.list("headers", vc.headers.iter().map(header_matcher));
    out.into()
}

/// Per-filter configs: the model keeps the config but not its type, so each is a
/// `TypedStruct` holding the config alone.
fn typed_per_filter_config(out: &mut Obj, m: &BTreeMap<String, Value>) {
    if m.is_empty() {
        return;
    }
    let configs = m
        .iter()
        .map(|(k, v)| (k.clone(), typed_struct(None, v)))
        .collect();
    out.set("typed_per_filter_config", Value::Object(configs));
}

fn route(r: &Route) -> Value {
    let mut out = Obj::new();
    out.str("name", &r.name);
    out.set("match", route_match(&r.route_match));
    match &r.action {
        Action::Route(a) => out.set("route", route_action(a)),
        Action::Redirect(a) => out.set("redirect", redirect(a)),
        Action::DirectResponse(a) => out.set("direct_response", direct_response(a)),
    }
    header_mutations(&mut out, &r.headers);
    typed_per_filter_config(&mut out, &r.typed_per_filter_config);
    out.opt(
        "per_request_buffer_limit_bytes",
        r.per_request_buffer_limit_bytes,
    );
    out.into()
}

fn route_match(m: &RouteMatch) -> Value {
    let mut out = Obj::new();
    match &m.path {
        PathMatch::Prefix(s) => out.set("prefix", s.as_str()),
        PathMatch::Path(s) => out.set("path", s.as_str()),
        PathMatch::SafeRegex(r) => out.set("safe_regex", regex_matcher(r)),
        PathMatch::PathSeparatedPrefix(s) => out.set("path_separated_prefix", s.as_str()),
        PathMatch::ConnectMatcher => out.set("connect_matcher", Map::new()),
        PathMatch::PathTemplate(t) => {
            let mut tc = Obj::typed(URI_TEMPLATE);
            tc.set("path_template", t.as_str());
            out.set(
                "path_match_policy",
                json_obj([
                    ("name", URI_TEMPLATE_NAME.into()),
                    ("typed_config", tc.into()),
                ]),
            );
        }
    }
    if !m.case_sensitive {
        out.set("case_sensitive", false);
    }
    if let Some(f) = &m.runtime_fraction {
        out.set("runtime_fraction", runtime_fraction(f));
    }
    out.list("headers", m.headers.iter().map(header_matcher));
    out.list(
        "query_parameters",
        m.query_parameters.iter().map(query_parameter_matcher),
    );
    if m.grpc {
        out.set("grpc", Map::new());
    }
    if let Some(t) = &m.tls_context {
        let mut tc = Obj::new();
        tc.opt("presented", t.presented);
        tc.opt("validated", t.validated);
        out.set("tls_context", tc);
    }
    out.into()
}

/// A `type.matcher.v3.RegexMatcher`.
fn regex_matcher(regex: &str) -> Value {
    json_obj([("regex", regex.into())])
}

fn runtime_fraction(f: &RuntimeFraction) -> Value {
    let mut out = Obj::new();
    out.set("default_value", fractional_percent(f.default_value));
    out.str("runtime_key", &f.runtime_key);
    out.into()
}

fn fractional_percent(f: FractionalPercent) -> Value {
    let mut out = Obj::new();
    out.nonzero("numerator", f.numerator);
    match f.denominator {
        Denominator::Hundred => {}
        Denominator::TenThousand => out.set("denominator", "TEN_THOUSAND"),
        Denominator::Million => out.set("denominator", "MILLION"),
    }
    out.into()
}

fn header_matcher(h: &HeaderMatcher) -> Value {
    let mut out = Obj::new();
    out.set("name", h.name.as_str());
    match &h.spec {
        HeaderMatchSpec::String(s) => out.set("string_match", string_matcher(s)),
        HeaderMatchSpec::Range { start, end } => {
            let mut r = Obj::new();
            r.int64("start", *start);
            r.int64("end", *end);
            out.set("range_match", r);
        }
        HeaderMatchSpec::Present(p) => out.set("present_match", *p),
    }
    out.flag("invert_match", h.invert_match);
    out.flag(
        "treat_missing_header_as_empty",
        h.treat_missing_header_as_empty,
    );
    out.into()
}

fn string_matcher(s: &StringMatcher) -> Value {
    let mut out = Obj::new();
    match &s.pattern {
        StringPattern::Exact(v) => out.set("exact", v.as_str()),
        StringPattern::Prefix(v) => out.set("prefix", v.as_str()),
        StringPattern::Suffix(v) => out.set("suffix", v.as_str()),
        StringPattern::Contains(v) => out.set("contains", v.as_str()),
        StringPattern::SafeRegex(r) => out.set("safe_regex", regex_matcher(r)),
    }
    out.flag("ignore_case", s.ignore_case);
    out.into()
}

fn query_parameter_matcher(q: &QueryParameterMatcher) -> Value {
    let mut out = Obj::new();
    out.set("name", q.name.as_str());
    match &q.string_match {
        Some(s) => out.set("string_match", string_matcher(s)),
        None => out.set("present_match", true),
    }
    out.into()
}

fn route_action(a: &RouteAction) -> Value {
    let mut out = Obj::new();
    match &a.cluster {
        ClusterSpecifier::Cluster(c) => out.set("cluster", c.as_str()),
        ClusterSpecifier::ClusterHeader(h) => out.set("cluster_header", h.as_str()),
        ClusterSpecifier::WeightedClusters(w) => out.set("weighted_clusters", weighted_clusters(w)),
    }
    // Envoy's enum has these three codes; 503 (SERVICE_UNAVAILABLE) is its default.
    match a.cluster_not_found_response_code {
        404 => out.set("cluster_not_found_response_code", "NOT_FOUND"),
        500 => out.set("cluster_not_found_response_code", "INTERNAL_SERVER_ERROR"),
        _ => {}
    }
    if !a.metadata_match.is_empty() {
        let lb: Map<String, Value> = a
            .metadata_match
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.set(
            "metadata_match",
            json_obj([(
                "filter_metadata",
                json_obj([("envoy.lb", Value::Object(lb))]),
            )]),
        );
    }
    out.opt_str("prefix_rewrite", a.prefix_rewrite.as_deref());
    if let Some(r) = &a.regex_rewrite {
        out.set("regex_rewrite", regex_rewrite(r));
    }
    match &a.host_rewrite {
        None => {}
        Some(HostRewrite::Literal(h)) => out.set("host_rewrite_literal", h.as_str()),
        Some(HostRewrite::Auto) => out.set("auto_host_rewrite", true),
        Some(HostRewrite::Header(h)) => out.set("host_rewrite_header", h.as_str()),
        Some(HostRewrite::PathRegex(r)) => out.set("host_rewrite_path_regex", regex_rewrite(r)),
    }
    out.flag("append_x_forwarded_host", a.append_x_forwarded_host);
    out.opt_duration("timeout", a.timeout);
    out.opt_duration("idle_timeout", a.idle_timeout);
    if let Some(r) = &a.retry_policy {
        out.set("retry_policy", retry_policy(r));
    }
    if let Some(h) = &a.hedge_policy {
        out.set("hedge_policy", hedge_policy(h));
    }
    out.list(
        "request_mirror_policies",
        a.request_mirror_policies.iter().map(mirror_policy),
    );
    out.list("hash_policy", a.hash_policy.iter().map(hash_policy));
    out.list(
        "upgrade_configs",
        a.upgrade_configs.iter().map(upgrade_config),
    );
    let mut msd = Obj::new();
    msd.opt_duration("grpc_timeout_header_max", a.max_grpc_timeout);
    msd.opt_duration("grpc_timeout_header_offset", a.grpc_timeout_offset);
    out.message("max_stream_duration", msd);
    out.set_priority(a.priority);
    out.into()
}

fn weighted_clusters(w: &WeightedClusters) -> Value {
    let mut out = Obj::new();
    out.list("clusters", w.clusters.iter().map(cluster_weight));
    out.str("runtime_key_prefix", &w.runtime_key_prefix);
    // A oneof in Envoy's schema: the header wins.
    match &w.header_name {
        Some(h) => out.opt_str("header_name", Some(h)),
        None => out.flag("use_hash_policy", w.use_hash_policy),
    }
    out.into()
}

fn cluster_weight(c: &ClusterWeight) -> Value {
    let mut out = Obj::new();
    out.str("name", &c.name);
    out.opt_str("cluster_header", c.cluster_header.as_deref());
    out.set("weight", c.weight);
    header_mutations(&mut out, &c.headers);
    out.opt_str("host_rewrite_literal", c.host_rewrite_literal.as_deref());
    typed_per_filter_config(&mut out, &c.typed_per_filter_config);
    out.into()
}

/// A `type.matcher.v3.RegexMatchAndSubstitute`.
fn regex_rewrite(r: &RegexRewrite) -> Value {
    json_obj([
        ("pattern", regex_matcher(&r.pattern)),
        ("substitution", r.substitution.as_str().into()),
    ])
}

/// The typed configs of Envoy's built-in retry host predicates, by name.
const HOST_PREDICATES: &[(&str, &str)] = &[
    (
        "envoy.retry_host_predicates.previous_hosts",
        "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
    ),
    (
        "envoy.retry_host_predicates.omit_canary_hosts",
        "envoy.extensions.retry.host.omit_canary_hosts.v3.OmitCanaryHostsPredicate",
    ),
    (
        "envoy.retry_host_predicates.omit_host_metadata",
        "envoy.extensions.retry.host.omit_host_metadata.v3.OmitHostMetadataConfig",
    ),
];

fn retry_policy(r: &RetryPolicy) -> Value {
    let mut out = Obj::new();
    out.str("retry_on", &r.retry_on);
    out.unless("num_retries", r.num_retries, 1);
    out.opt_duration("per_try_timeout", r.per_try_timeout);
    out.opt_duration("per_try_idle_timeout", r.per_try_idle_timeout);
    if let Some(b) = &r.retry_back_off {
        let mut bo = Obj::new();
        bo.set("base_interval", dur(b.base_interval));
        bo.opt_duration("max_interval", b.max_interval);
        out.set("retry_back_off", bo);
    }
    if !r.retriable_status_codes.is_empty() {
        out.set("retriable_status_codes", r.retriable_status_codes.clone());
    }
    out.list(
        "retriable_headers",
        r.retriable_headers.iter().map(header_matcher),
    );
    out.list(
        "retriable_request_headers",
        r.retriable_request_headers.iter().map(header_matcher),
    );
    out.list(
        "retry_host_predicate",
        r.retry_host_predicate.iter().map(|name| {
            let mut p = Obj::new();
            p.set("name", name.as_str());
            if let Some((_, ty)) = HOST_PREDICATES.iter().find(|(n, _)| n == name) {
                p.set("typed_config", Obj::typed(ty));
            }
            p.into()
        }),
    );
    if r.host_selection_retry_max_attempts != 1 {
        // An int64: a string, printed even when 0 (the model's default is 1).
        out.set(
            "host_selection_retry_max_attempts",
            r.host_selection_retry_max_attempts.to_string(),
        );
    }
    out.into()
}

fn hedge_policy(h: &HedgePolicy) -> Value {
    let mut out = Obj::new();
    out.flag("hedge_on_per_try_timeout", h.hedge_on_per_try_timeout);
    out.into()
}

fn mirror_policy(m: &RequestMirrorPolicy) -> Value {
    let mut out = Obj::new();
    out.str("cluster", &m.cluster);
    out.opt_str("cluster_header", m.cluster_header.as_deref());
    if let Some(f) = &m.runtime_fraction {
        out.set("runtime_fraction", runtime_fraction(f));
    }
    out.flag(
        "disable_shadow_host_suffix_append",
        m.disable_shadow_host_suffix_append,
    );
    out.into()
}

fn hash_policy(h: &HashPolicy) -> Value {
    let mut out = Obj::new();
    match &h.policy {
        HashOn::Header { header_name } => {
            let mut o = Obj::new();
            o.str("header_name", header_name);
            out.set("header", o);
        }
        HashOn::Cookie { name, ttl, path } => {
            let mut o = Obj::new();
            o.str("name", name);
            o.opt_duration("ttl", *ttl);
            o.str("path", path);
            out.set("cookie", o);
        }
        HashOn::SourceIp => out.set(
            "connection_properties",
            json_obj([("source_ip", true.into())]),
        ),
        HashOn::QueryParameter { name } => {
            let mut o = Obj::new();
            o.str("name", name);
            out.set("query_parameter", o);
        }
        HashOn::FilterState { key } => {
            let mut o = Obj::new();
            o.str("key", key);
            out.set("filter_state", o);
        }
    }
    out.flag("terminal", h.terminal);
    out.into()
}

fn redirect(r: &RedirectAction) -> Value {
    let mut out = Obj::new();
    out.opt_str("scheme_redirect", r.scheme_redirect.as_deref());
    out.opt_str("host_redirect", r.host_redirect.as_deref());
    out.opt("port_redirect", r.port_redirect.filter(|p| *p != 0));
    match &r.path_redirect {
        None => {}
        Some(PathRedirect::Path(p)) => out.set("path_redirect", p.as_str()),
        Some(PathRedirect::Prefix(p)) => out.set("prefix_rewrite", p.as_str()),
        Some(PathRedirect::Regex(re)) => out.set("regex_rewrite", regex_rewrite(re)),
    }
    let code = match r.response_code {
        RedirectCode::MovedPermanently => None,
        RedirectCode::Found => Some("FOUND"),
        RedirectCode::SeeOther => Some("SEE_OTHER"),
        RedirectCode::TemporaryRedirect => Some("TEMPORARY_REDIRECT"),
        RedirectCode::PermanentRedirect => Some("PERMANENT_REDIRECT"),
    };
    out.opt("response_code", code);
    out.flag("strip_query", r.strip_query);
    out.into()
}

fn direct_response(d: &DirectResponseAction) -> Value {
    let mut out = Obj::new();
    out.nonzero("status", d.status);
    if let Some(body) = &d.body {
        out.set("body", json_obj([("inline_string", body.as_str().into())]));
    }
    out.into()
}

// ---------------------------------------------------------------------------------------------
// Clusters and endpoints
// ---------------------------------------------------------------------------------------------

/// A [`Cluster`] as Envoy's `config.cluster.v3.Cluster`: `name`, `type`, `connect_timeout`,
/// `lb_policy` and its `*_lb_config`, `load_assignment`, HTTP/2 and connection settings as
/// `typed_extension_protocol_options` (`HttpProtocolOptions`), `circuit_breakers`,
/// `outlier_detection`, `health_checks`, `common_lb_config.healthy_panic_threshold`,
/// `dns_refresh_rate` and `eds_cluster_config`.
///
/// # Examples
///
/// ```
/// use mesh_core::config::*;
/// use mesh_xds::envoy::dump;
///
/// let c = Cluster::new_static("grpc", ["127.0.0.1:9000".parse().unwrap()])
///     .with_protocol(UpstreamProtocol::Http2);
/// let json = dump::cluster(&c);
/// let options = &json["typed_extension_protocol_options"]
///     ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
/// assert_eq!(
///     options["@type"],
///     "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
/// );
/// assert_eq!(options["explicit_http_config"]["http2_protocol_options"], serde_json::json!({}));
/// ```
pub fn cluster(c: &Cluster) -> Value {
    let mut out = Obj::new();
    out.str("name", &c.name);
    out.set(
        "type",
        match c.discovery_type {
            DiscoveryType::Static => "STATIC",
            DiscoveryType::StrictDns => "STRICT_DNS",
            DiscoveryType::Eds => "EDS",
            DiscoveryType::OriginalDst => "ORIGINAL_DST",
        },
    );
    out.set("connect_timeout", dur(c.connect_timeout));
    let policy = match c.lb_policy {
        LbPolicy::RoundRobin => None,
        LbPolicy::LeastRequest => Some("LEAST_REQUEST"),
        LbPolicy::Random => Some("RANDOM"),
        LbPolicy::RingHash => Some("RING_HASH"),
        LbPolicy::Maglev => Some("MAGLEV"),
        LbPolicy::ClusterProvided => Some("CLUSTER_PROVIDED"),
    };
    out.opt("lb_policy", policy);
    if let Some(la) = &c.load_assignment {
        out.set("load_assignment", cluster_load_assignment(la));
    }
    if let Some(t) = &c.transport_socket {
        out.set("transport_socket", upstream_tls(t));
    }
    out.list(
        "transport_socket_matches",
        c.transport_socket_matches.iter().map(|m| {
            let mut o = Obj::new();
            o.str("name", &m.name);
            if !m.match_metadata.is_empty() {
                o.set("match", Value::Object(m.match_metadata.clone()));
            }
            o.set(
                "transport_socket",
                match &m.transport_socket {
                    Some(t) => upstream_tls(t),
                    None => json_obj([("name", "envoy.transport_sockets.raw_buffer".into())]),
                },
            );
            o.into()
        }),
    );
    if let Some(ip) = c.upstream_bind_config {
        out.set(
            "upstream_bind_config",
            json_obj([(
                "source_address",
                json_obj([("address", ip.to_string().into()), ("port_value", 0.into())]),
            )]),
        );
    }
    if let Some(options) = http_protocol_options(c) {
        out.set(
            "typed_extension_protocol_options",
            json_obj([(HTTP_PROTOCOL_OPTIONS, options)]),
        );
    }
    if !c.circuit_breakers.thresholds.is_empty() {
        let mut cb = Obj::new();
        cb.list(
            "thresholds",
            c.circuit_breakers.thresholds.iter().map(thresholds),
        );
        out.set("circuit_breakers", cb);
    }
    if let Some(od) = &c.outlier_detection {
        out.set("outlier_detection", outlier_detection(od));
    }
    out.list("health_checks", c.health_checks.iter().map(health_check));
    let mut common = Obj::new();
    if c.healthy_panic_threshold != 50.0 {
        common.set(
            "healthy_panic_threshold",
            percent(c.healthy_panic_threshold),
        );
    }
    if c.locality_weighted_lb {
        common.set("locality_weighted_lb_config", Value::Object(Map::new()));
    }
    out.message("common_lb_config", common);
    if let Some(sc) = &c.lb_subset_config {
        out.set("lb_subset_config", lb_subset_config(sc));
    }
    // Envoy's lb_config is a oneof; the model keeps the three apart. The one the policy uses is
    // printed when it is not at its defaults, else the first of the others that is not (so a
    // config read from Envoy, which has at most one, prints as it was read).
    let lr = &c.least_request;
    let mut least = Obj::new();
    least.unless("choice_count", lr.choice_count, 2);
    if lr.active_request_bias != 1.0 {
        least.set(
            "active_request_bias",
            json_obj([
                ("default_value", double(lr.active_request_bias)),
                (
                    "runtime_key",
                    "upstream.least_request.active_request_bias".into(),
                ),
            ]),
        );
    }
    let mut ring = Obj::new();
    if c.ring_hash.minimum_ring_size != 1024 {
        ring.int64("minimum_ring_size", c.ring_hash.minimum_ring_size);
    }
    if c.ring_hash.maximum_ring_size != 8 * 1024 * 1024 {
        ring.int64("maximum_ring_size", c.ring_hash.maximum_ring_size);
    }
    let mut maglev = Obj::new();
    if c.maglev_table_size != 65537 {
        maglev.int64("table_size", c.maglev_table_size);
    }
    let mut configs = [
        (LbPolicy::LeastRequest, "least_request_lb_config", least),
        (LbPolicy::RingHash, "ring_hash_lb_config", ring),
        (LbPolicy::Maglev, "maglev_lb_config", maglev),
    ];
    configs.sort_by_key(|(policy, _, _)| *policy != c.lb_policy);
    if let Some((_, key, config)) = configs.into_iter().find(|(_, _, o)| !o.is_empty()) {
        out.set(key, config);
    }
    out.unless_duration(
        "dns_refresh_rate",
        c.dns_refresh_rate,
        DEFAULT_DNS_REFRESH_RATE,
    );
    if c.discovery_type == DiscoveryType::Eds || c.eds_service_name.is_some() {
        let mut eds = Obj::new();
        eds.set("eds_config", ads_config_source());
        eds.opt_str("service_name", c.eds_service_name.as_deref());
        out.set("eds_cluster_config", eds);
    }
    out.into()
}

/// `config.cluster.v3.Cluster.LbSubsetConfig`.
fn lb_subset_config(sc: &LbSubsetConfig) -> Value {
    let mut out = Obj::new();
    let fallback = match sc.fallback_policy {
        LbSubsetFallbackPolicy::NoFallback => None,
        LbSubsetFallbackPolicy::AnyEndpoint => Some("ANY_ENDPOINT"),
        LbSubsetFallbackPolicy::DefaultSubset => Some("DEFAULT_SUBSET"),
    };
    out.opt("fallback_policy", fallback);
    if !sc.default_subset.is_empty() {
        let m: Map<String, Value> = sc
            .default_subset
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.set("default_subset", Value::Object(m));
    }
    out.list(
        "subset_selectors",
        sc.subset_selectors.iter().map(|sel| {
            let mut s = Obj::new();
            s.strings("keys", &sel.keys);
            let fallback = match sel.fallback_policy {
                LbSubsetSelectorFallbackPolicy::NotDefined => None,
                LbSubsetSelectorFallbackPolicy::NoFallback => Some("NO_FALLBACK"),
                LbSubsetSelectorFallbackPolicy::AnyEndpoint => Some("ANY_ENDPOINT"),
                LbSubsetSelectorFallbackPolicy::DefaultSubset => Some("DEFAULT_SUBSET"),
                LbSubsetSelectorFallbackPolicy::KeysSubset => Some("KEYS_SUBSET"),
            };
            s.opt("fallback_policy", fallback);
            s.strings("fallback_keys_subset", &sel.fallback_keys_subset);
            s.into()
        }),
    );
    out.into()
}

/// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`, when anything is not Envoy's
/// default: HTTP/2, the upstream idle timeout, or a request cap per connection.
fn http_protocol_options(c: &Cluster) -> Option<Value> {
    let mut common = Obj::new();
    common.unless_duration("idle_timeout", c.idle_timeout, DEFAULT_IDLE_TIMEOUT);
    common.opt("max_requests_per_connection", c.max_requests_per_connection);
    common.opt_duration("max_connection_duration", c.max_connection_duration);
    if c.protocol == UpstreamProtocol::Http1 && common.is_empty() {
        return None;
    }
    let mut out = Obj::typed(HTTP_PROTOCOL_OPTIONS);
    let explicit = match c.protocol {
        UpstreamProtocol::Http1 => "http_protocol_options",
        UpstreamProtocol::Http2 => "http2_protocol_options",
    };
    out.set(
        "explicit_http_config",
        json_obj([(explicit, Value::Object(Map::new()))]),
    );
    out.message("common_http_protocol_options", common);
    Some(out.into())
}

fn thresholds(t: &Thresholds) -> Value {
    let d = Thresholds::default();
    let mut out = Obj::new();
    out.set_priority(t.priority);
    out.unless("max_connections", t.max_connections, d.max_connections);
    out.unless(
        "max_pending_requests",
        t.max_pending_requests,
        d.max_pending_requests,
    );
    out.unless("max_requests", t.max_requests, d.max_requests);
    out.unless("max_retries", t.max_retries, d.max_retries);
    if let Some(b) = &t.retry_budget {
        let mut rb = Obj::new();
        if b.budget_percent != 20.0 {
            rb.set("budget_percent", percent(b.budget_percent));
        }
        rb.unless("min_retry_concurrency", b.min_retry_concurrency, 3);
        out.set("retry_budget", rb);
    }
    out.flag("track_remaining", t.track_remaining);
    out.into()
}

fn outlier_detection(od: &OutlierDetection) -> Value {
    let d = OutlierDetection::default();
    let mut out = Obj::new();
    let counts = [
        ("consecutive_5xx", od.consecutive_5xx, d.consecutive_5xx),
        (
            "consecutive_gateway_failure",
            od.consecutive_gateway_failure,
            d.consecutive_gateway_failure,
        ),
        (
            "consecutive_local_origin_failure",
            od.consecutive_local_origin_failure,
            d.consecutive_local_origin_failure,
        ),
        (
            "max_ejection_percent",
            od.max_ejection_percent,
            d.max_ejection_percent,
        ),
        (
            "enforcing_consecutive_5xx",
            od.enforcing_consecutive_5xx,
            d.enforcing_consecutive_5xx,
        ),
        (
            "enforcing_consecutive_gateway_failure",
            od.enforcing_consecutive_gateway_failure,
            d.enforcing_consecutive_gateway_failure,
        ),
        (
            "enforcing_consecutive_local_origin_failure",
            od.enforcing_consecutive_local_origin_failure,
            d.enforcing_consecutive_local_origin_failure,
        ),
        (
            "enforcing_success_rate",
            od.enforcing_success_rate,
            d.enforcing_success_rate,
        ),
        (
            "success_rate_minimum_hosts",
            od.success_rate_minimum_hosts,
            d.success_rate_minimum_hosts,
        ),
        (
            "success_rate_request_volume",
            od.success_rate_request_volume,
            d.success_rate_request_volume,
        ),
        (
            "success_rate_stdev_factor",
            od.success_rate_stdev_factor,
            d.success_rate_stdev_factor,
        ),
        (
            "failure_percentage_threshold",
            od.failure_percentage_threshold,
            d.failure_percentage_threshold,
        ),
        (
            "enforcing_failure_percentage",
            od.enforcing_failure_percentage,
            d.enforcing_failure_percentage,
        ),
        (
            "failure_percentage_minimum_hosts",
            od.failure_percentage_minimum_hosts,
            d.failure_percentage_minimum_hosts,
        ),
        (
            "failure_percentage_request_volume",
            od.failure_percentage_request_volume,
            d.failure_percentage_request_volume,
        ),
    ];
    for (key, value, default) in counts {
        out.unless(key, value, default);
    }
    out.unless_duration("interval", od.interval, d.interval);
    out.unless_duration(
        "base_ejection_time",
        od.base_ejection_time,
        d.base_ejection_time,
    );
    out.unless_duration(
        "max_ejection_time",
        od.max_ejection_time,
        d.max_ejection_time,
    );
    out.flag(
        "split_external_local_origin_errors",
        od.split_external_local_origin_errors,
    );
    out.into()
}

fn health_check(h: &HealthCheck) -> Value {
    let mut out = Obj::new();
    // All four are required by Envoy: printed even when zero.
    out.set("timeout", dur(h.timeout));
    out.set("interval", dur(h.interval));
    out.set("unhealthy_threshold", h.unhealthy_threshold);
    out.set("healthy_threshold", h.healthy_threshold);
    match &h.checker {
        HealthChecker::Http {
            path,
            host,
            expected_statuses,
        } => {
            let mut http = Obj::new();
            http.str("path", path);
            http.opt_str("host", host.as_deref().filter(|h| !h.is_empty()));
            http.list(
                "expected_statuses",
                expected_statuses.iter().map(|(start, end)| {
                    let mut r = Obj::new();
                    r.int64("start", *start);
                    r.int64("end", *end);
                    r.into()
                }),
            );
            out.set("http_health_check", http);
        }
        HealthChecker::Tcp => out.set("tcp_health_check", Map::new()),
    }
    out.into()
}

/// A [`ClusterLoadAssignment`] as Envoy's `config.endpoint.v3.ClusterLoadAssignment`:
/// `cluster_name`, `endpoints` (locality, priority, weight and `lb_endpoints` with address,
/// hostname, health status, weight and metadata) and `policy.overprovisioning_factor`.
///
/// # Examples
///
/// ```
/// use mesh_core::config::ClusterLoadAssignment;
/// use mesh_xds::envoy::dump;
///
/// let la = ClusterLoadAssignment::from_addrs("web", ["10.0.0.1:80".parse().unwrap()]);
/// assert_eq!(
///     dump::cluster_load_assignment(&la),
///     serde_json::json!({
///         "cluster_name": "web",
///         "endpoints": [{"locality": {}, "lb_endpoints": [{"endpoint": {"address": {"socket_address": {
///             "address": "10.0.0.1", "port_value": 80
///         }}}}]}]
///     })
/// );
/// ```
pub fn cluster_load_assignment(la: &ClusterLoadAssignment) -> Value {
    let mut out = Obj::new();
    out.str("cluster_name", &la.cluster_name);
    out.list("endpoints", la.endpoints.iter().map(locality_lb_endpoints));
    if la.overprovisioning_factor != DEFAULT_OVERPROVISIONING_FACTOR {
        out.set(
            "policy",
            json_obj([("overprovisioning_factor", la.overprovisioning_factor.into())]),
        );
    }
    out.into()
}

fn locality_lb_endpoints(l: &LocalityLbEndpoints) -> Value {
    let mut out = Obj::new();
    let mut loc = Obj::new();
    loc.str("region", &l.locality.region);
    loc.str("zone", &l.locality.zone);
    loc.str("sub_zone", &l.locality.sub_zone);
    // Always present, as Envoy prints it: gRPC's xDS client refuses endpoints without one.
    out.set("locality", loc);
    out.list("lb_endpoints", l.lb_endpoints.iter().map(lb_endpoint));
    out.opt("load_balancing_weight", l.load_balancing_weight);
    out.nonzero("priority", l.priority);
    out.into()
}

fn lb_endpoint(e: &LbEndpoint) -> Value {
    let mut endpoint = Obj::new();
    endpoint.set("address", endpoint_address(&e.address));
    endpoint.opt_str("hostname", e.hostname.as_deref().filter(|h| !h.is_empty()));
    let mut out = Obj::new();
    out.set("endpoint", endpoint);
    let health = match e.health_status {
        HealthStatus::Unknown => None,
        HealthStatus::Healthy => Some("HEALTHY"),
        HealthStatus::Unhealthy => Some("UNHEALTHY"),
        HealthStatus::Draining => Some("DRAINING"),
        HealthStatus::Timeout => Some("TIMEOUT"),
        HealthStatus::Degraded => Some("DEGRADED"),
    };
    out.opt("health_status", health);
    out.unless("load_balancing_weight", e.load_balancing_weight, 1);
    if !e.metadata.is_empty() {
        out.set("metadata", metadata(&e.metadata));
    }
    out.into()
}

fn endpoint_address(a: &Address) -> Value {
    let host = a
        .host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(&a.host);
    address(host, a.port)
}

/// `config.core.v3.Metadata` with its `filter_metadata`.
fn metadata(m: &Metadata) -> Value {
    let fm: Map<String, Value> = m
        .iter()
        .map(|(k, v)| (k.clone(), Value::Object(v.clone())))
        .collect();
    json_obj([("filter_metadata", Value::Object(fm))])
}

// ---------------------------------------------------------------------------------------------
// JSON building
// ---------------------------------------------------------------------------------------------

/// A duration in Envoy's JSON form (`"1.5s"`).
fn dur(d: Duration) -> Value {
    Value::String(duration::format(d))
}

/// A `double`, printed without a fraction when it has none (`25`, `25.5`), as protobuf does.
fn double(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        // Exact: integral and within the f64 mantissa.
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// A `type.v3.Percent`.
fn percent(f: f64) -> Value {
    json_obj([("value", double(f))])
}

fn json_obj<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// A JSON object under construction, with setters that leave defaults out.
#[derive(Debug, Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn new() -> Self {
        Self::default()
    }

    /// An `Any`: an object that starts with its `@type`.
    fn typed(type_name: &str) -> Self {
        let mut o = Self::new();
        o.set("@type", format!("{TYPE_PREFIX}{type_name}"));
        o
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn set(&mut self, key: &str, v: impl Into<Value>) {
        self.0.insert(key.to_owned(), v.into());
    }

    /// A `string`: left out when empty.
    fn str(&mut self, key: &str, s: &str) {
        if !s.is_empty() {
            self.set(key, s);
        }
    }

    /// An optional string: printed when set.
    fn opt_str(&mut self, key: &str, s: Option<&str>) {
        if let Some(s) = s {
            self.set(key, s);
        }
    }

    fn opt(&mut self, key: &str, v: Option<impl Into<Value>>) {
        if let Some(v) = v {
            self.set(key, v);
        }
    }

    /// A `bool`: left out when false.
    fn flag(&mut self, key: &str, b: bool) {
        if b {
            self.set(key, true);
        }
    }

    /// An integer: left out when zero.
    fn nonzero<T: Into<Value> + Default + PartialEq>(&mut self, key: &str, v: T) {
        if v != T::default() {
            self.set(key, v);
        }
    }

    /// A value: left out when it equals Envoy's default.
    fn unless<T: Into<Value> + PartialEq>(&mut self, key: &str, v: T, default: T) {
        if v != default {
            self.set(key, v);
        }
    }

    /// A 64-bit integer, which protobuf's JSON mapping writes as a string; left out when zero.
    fn int64<T: ToString + Default + PartialEq>(&mut self, key: &str, v: T) {
        if v != T::default() {
            self.set(key, v.to_string());
        }
    }

    fn opt_duration(&mut self, key: &str, d: Option<Duration>) {
        if let Some(d) = d {
            self.set(key, dur(d));
        }
    }

    fn unless_duration(&mut self, key: &str, d: Duration, default: Duration) {
        if d != default {
            self.set(key, dur(d));
        }
    }

    /// A routing priority: left out when `DEFAULT`.
    fn set_priority(&mut self, p: RoutingPriority) {
        if p == RoutingPriority::High {
            self.set("priority", "HIGH");
        }
    }

    /// A repeated field: left out when empty.
    fn list(&mut self, key: &str, items: impl Iterator<Item = Value>) {
        let items: Vec<Value> = items.collect();
        if !items.is_empty() {
            self.set(key, Value::Array(items));
        }
    }

    fn strings(&mut self, key: &str, items: &[String]) {
        self.list(key, items.iter().map(|s| Value::String(s.clone())));
    }

    /// A sub-message whose fields are all optional: left out when it has none.
    fn message(&mut self, key: &str, m: Obj) {
        if !m.is_empty() {
            self.set(key, m);
        }
    }
}

impl From<Obj> for Value {
    fn from(o: Obj) -> Self {
        Value::Object(o.0)
    }
}
