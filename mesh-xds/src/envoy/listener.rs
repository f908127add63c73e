//! Envoy's `Listener`, filter chains and the HTTP connection manager.

use std::net::{IpAddr, SocketAddr};

use mesh_core::config::{
    AccessLog, AccessLogSink, CidrRange, CodecType, DEFAULT_LISTENER_FILTERS_TIMEOUT,
    EscapedSlashesAction, FilterChain, FilterChainMatch, HttpConnectionManager, HttpFilterConfig,
    Listener, ListenerFilter, ListenerFilterKind, NetworkFilter, PortRange, ROUTER_FILTER,
    RouteSource, SourceType, TcpCluster, TcpProxy, Tracing, UnderscoresAction,
};
use serde_json::Value;

use super::{Cx, Obj, Remap, UNKNOWN, endpoint, join, peek, route, show, type_name};

const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const HCM_NAME: &str = "envoy.filters.network.http_connection_manager";
const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";
const STDOUT_LOG: &str = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
const STDERR_LOG: &str = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog";
const FILE_LOG: &str = "envoy.extensions.access_loggers.file.v3.FileAccessLog";

const TCP_PROXY: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const TCP_PROXY_NAME: &str = "envoy.filters.network.tcp_proxy";

/// The listener filters the proxy runs: names and type names.
const LISTENER_FILTERS: &[(&str, &str, ListenerFilterKind)] = &[
    (
        "envoy.filters.listener.original_dst",
        "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
        ListenerFilterKind::OriginalDst,
    ),
    (
        "envoy.filters.listener.http_inspector",
        "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
        ListenerFilterKind::HttpInspector,
    ),
    (
        "envoy.filters.listener.tls_inspector",
        "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
        ListenerFilterKind::TlsInspector,
    ),
];

/// A `config.listener.v3.Listener`; `path` is `listeners[i]`.
pub(crate) fn listener(
    cx: &mut Cx,
    v: &Value,
    path: String,
    remap: &mut Remap,
) -> Option<Listener> {
    let mut o = Obj::new(cx, v, path)?;
    let name = o.string(cx, "name");
    let address = o
        .required(cx, "address")
        .and_then(|(av, ap)| ip_address(cx, av, ap));
    let lp = o.path().to_owned();
    let mut filter_chains = Vec::new();
    for (cv, cp) in o.list(cx, "filter_chains") {
        if let Some(fc) = filter_chain(cx, cv, cp.clone()) {
            remap.add(at_chain(&lp, filter_chains.len()), cp);
            filter_chains.push(fc);
        }
    }
    let default_filter_chain = o
        .value(cx, "default_filter_chain")
        .and_then(|(cv, cp)| filter_chain(cx, cv, cp))
        .map(Box::new);
    let mut listener_filters = Vec::new();
    for (fv, fp) in o.list(cx, "listener_filters") {
        if let Some(f) = listener_filter(cx, fv, fp) {
            listener_filters.push(f);
        }
    }
    let bind_to_port = o.bool(cx, "bind_to_port").unwrap_or(true);
    let use_original_dst = o.bool(cx, "use_original_dst").unwrap_or(false);
    let listener_filters_timeout = o
        .duration(cx, "listener_filters_timeout")
        .unwrap_or(DEFAULT_LISTENER_FILTERS_TIMEOUT);
    let continue_on_listener_filters_timeout = o
        .bool(cx, "continue_on_listener_filters_timeout")
        .unwrap_or(false);
    // Istio writes these; they change nothing the proxy does.
    o.ignore(cx, "traffic_direction");
    o.unsupported(
        cx,
        "per_connection_buffer_limit_bytes",
        "ignored: connections are buffered per read",
    );
    if o.bool(cx, "transparent") == Some(true) {
        cx.error(
            o.child("transparent"),
            "transparent (TPROXY) listeners are not supported; capture with iptables REDIRECT",
        );
    }
    o.reject(cx, "udp_listener_config", "UDP listeners are not supported");
    o.reject(
        cx,
        "internal_listener",
        "internal listeners are not supported",
    );
    o.reject(cx, "api_listener", "API listeners are not supported");
    o.finish(cx);
    let address = address?;
    let mut l = Listener::new(
        // Envoy names unnamed listeners itself; the address is unique among listeners.
        name.filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{}_{}", address.ip(), address.port())),
        address,
        filter_chains,
    );
    l.default_filter_chain = default_filter_chain;
    l.bind_to_port = bind_to_port;
    l.use_original_dst = use_original_dst;
    l.listener_filters = listener_filters;
    l.listener_filters_timeout = listener_filters_timeout;
    l.continue_on_listener_filters_timeout = continue_on_listener_filters_timeout;
    Some(l)
}

fn at_chain(listener: &str, k: usize) -> String {
    format!("{listener}.filter_chains[{k}]")
}

/// A listener filter; one the proxy cannot run is an error (it would misread the bytes it
/// expects to consume, or skip what it enforces).
fn listener_filter(cx: &mut Cx, v: &Value, path: String) -> Option<ListenerFilter> {
    let mut o = Obj::new(cx, v, path)?;
    let name = o.string(cx, "name").unwrap_or_default();
    let ty = o
        .value(cx, "typed_config")
        .and_then(|(tv, _)| type_name(tv))
        .map(str::to_owned);
    let kind = LISTENER_FILTERS
        .iter()
        .find(|(n, t, _)| ty.as_deref().map_or(*n == name, |ty| ty == *t))
        .map(|(_, _, k)| *k);
    let mut disabled_ports = Vec::new();
    if let Some((dv, dp)) = o.value(cx, "filter_disabled") {
        port_predicate(cx, dv, dp, &mut disabled_ports);
    }
    let at = o.path().to_owned();
    o.finish(cx);
    match kind {
        Some(kind) => Some(ListenerFilter {
            kind,
            disabled_ports,
        }),
        None => {
            cx.error(
                at,
                format!(
                    "listener filter {:?} is not supported (original_dst, http_inspector and tls_inspector are)",
                    ty.as_deref().unwrap_or(&name)
                ),
            );
            None
        }
    }
}

/// A `ListenerFilterChainMatchPredicate` made of destination port ranges (alone or in an
/// `or_match`), the form Istio writes.
fn port_predicate(cx: &mut Cx, v: &Value, path: String, out: &mut Vec<PortRange>) {
    let Some(mut o) = Obj::new(cx, v, path) else {
        return;
    };
    if let Some(mut r) = o.obj(cx, "destination_port_range") {
        let start = r.u32(cx, "start").unwrap_or(0);
        let end = r.u32(cx, "end").unwrap_or(0);
        r.finish(cx);
        out.push(PortRange { start, end });
    } else if let Some(mut m) = o.obj(cx, "or_match") {
        for (rv, rp) in m.list(cx, "rules") {
            port_predicate(cx, rv, rp, out);
        }
        m.finish(cx);
    } else {
        cx.error(
            o.path().to_owned(),
            "only destination_port_range predicates, alone or in or_match, are supported",
        );
        return;
    }
    o.finish(cx);
}

/// An `Address` whose `socket_address` must hold an IP literal.
pub(crate) fn ip_address(cx: &mut Cx, v: &Value, path: String) -> Option<SocketAddr> {
    let a = endpoint::socket_address(cx, v, path.clone())?;
    match a.host.parse::<IpAddr>() {
        Ok(ip) => Some(SocketAddr::new(ip, a.port)),
        Err(_) => {
            cx.error(
                join(&path, "socket_address.address"),
                format!("{:?} is not an IP address", a.host),
            );
            None
        }
    }
}

/// The terminal network filters the proxy runs.
#[derive(Clone, Copy, PartialEq)]
enum Terminal {
    Http,
    Tcp,
}

fn terminal(v: &Value) -> Option<Terminal> {
    let name = peek(v, "name").and_then(Value::as_str).unwrap_or("");
    match peek(v, "typed_config").and_then(type_name) {
        Some(HCM) => Some(Terminal::Http),
        Some(TCP_PROXY) => Some(Terminal::Tcp),
        Some(_) => None,
        None if name == HCM_NAME => Some(Terminal::Http),
        None if name == TCP_PROXY_NAME => Some(Terminal::Tcp),
        None => None,
    }
}

/// A filter chain, or `None` (with a warning) when it cannot be served here.
fn filter_chain(cx: &mut Cx, v: &Value, path: String) -> Option<FilterChain> {
    let mut o = Obj::new(cx, v, path)?;
    let filters = o.list(cx, "filters");
    // Classify first: a chain with a network filter other than the connection manager or the
    // TCP proxy is skipped whole, with one warning per such filter and nothing else reported
    // inside it.
    let mut skip = false;
    for (fv, fp) in &filters {
        if terminal(fv).is_none() {
            let name = peek(fv, "name").and_then(Value::as_str).unwrap_or("");
            let ty = peek(fv, "typed_config").and_then(type_name);
            cx.warn(
                fp.clone(),
                format!(
                    "network filter {:?} is not supported yet (only the HTTP connection manager and tcp_proxy are); filter chain skipped",
                    ty.unwrap_or(name)
                ),
            );
            skip = true;
        }
    }
    if filters.len() > 1 && !skip {
        cx.error(
            o.child("filters"),
            "a filter chain takes one terminal filter (an HTTP connection manager or a tcp_proxy)",
        );
    }
    if skip {
        return None;
    }
    let Some((fv, fp)) = filters.into_iter().next() else {
        cx.warn(
            o.child("filters"),
            "a filter chain without a network filter serves nothing; filter chain skipped",
        );
        return None;
    };
    let filter_chain_match = match o.obj(cx, "filter_chain_match") {
        Some(m) => chain_match(cx, m),
        None => FilterChainMatch::default(),
    };
    let transport_socket = o
        .value(cx, "transport_socket")
        .and_then(|(v, p)| super::tls::downstream_socket(cx, v, p));
    let name = o.string(cx, "name").unwrap_or_default();
    o.finish(cx);

    let kind = terminal(fv);
    let mut f = Obj::new(cx, fv, fp)?;
    f.ignore(cx, "name");
    let filter = match f.value(cx, "typed_config") {
        Some((tv, tp)) if kind == Some(Terminal::Tcp) => {
            tcp_proxy(cx, tv, tp).map(NetworkFilter::TcpProxy)
        }
        Some((tv, tp)) => http_connection_manager(cx, tv, tp)
            .map(|h| NetworkFilter::HttpConnectionManager(Box::new(h))),
        None => {
            cx.error(f.child("typed_config"), "typed_config is required");
            None
        }
    };
    f.finish(cx);
    Some(FilterChain {
        name,
        filter_chain_match,
        filter: filter?,
        transport_socket,
    })
}

/// `envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`.
fn tcp_proxy(cx: &mut Cx, v: &Value, path: String) -> Option<TcpProxy> {
    let mut o = Obj::new(cx, v, path)?;
    o.ignore(cx, "@type");
    let mut t = TcpProxy {
        stat_prefix: o.string(cx, "stat_prefix").unwrap_or_default(),
        ..TcpProxy::default()
    };
    if let Some(c) = o.string(cx, "cluster") {
        t.clusters.push(TcpCluster { name: c, weight: 1 });
    }
    if let Some(mut w) = o.obj(cx, "weighted_clusters") {
        if !t.clusters.is_empty() {
            cx.error(
                w.path().to_owned(),
                "give cluster or weighted_clusters, not both",
            );
        }
        for (cv, cp) in w.list(cx, "clusters") {
            let Some(mut c) = Obj::new(cx, cv, cp) else {
                continue;
            };
            let name = c.string(cx, "name").unwrap_or_default();
            let weight = c.u32(cx, "weight").unwrap_or(0);
            c.reject(
                cx,
                "metadata_match",
                "subset selection in tcp_proxy is not supported",
            );
            c.finish(cx);
            t.clusters.push(TcpCluster { name, weight });
        }
        w.finish(cx);
    }
    if let Some(d) = o.duration(cx, "idle_timeout") {
        t.idle_timeout = d;
    }
    if let Some(n) = o.u32(cx, "max_connect_attempts") {
        t.max_connect_attempts = n;
    }
    for (lv, lp) in o.list(cx, "access_log") {
        if let Some(l) = access_log(cx, lv, lp) {
            t.access_log.push(l);
        }
    }
    o.reject(
        cx,
        "metadata_match",
        "subset selection in tcp_proxy is not supported",
    );
    o.reject(
        cx,
        "tunneling_config",
        "tunneling TCP over HTTP is not supported",
    );
    o.finish(cx);
    Some(t)
}

fn chain_match(cx: &mut Cx, mut o: Obj<'_>) -> FilterChainMatch {
    let mut ranges = |o: &mut Obj<'_>, key: &str| -> Vec<CidrRange> {
        o.list(cx, key)
            .into_iter()
            .filter_map(|(v, p)| cidr_range(cx, v, p))
            .collect()
    };
    let prefix_ranges = ranges(&mut o, "prefix_ranges");
    let direct_source_prefix_ranges = ranges(&mut o, "direct_source_prefix_ranges");
    let source_prefix_ranges = ranges(&mut o, "source_prefix_ranges");
    let source_ports = o
        .list(cx, "source_ports")
        .into_iter()
        .filter_map(|(v, p)| {
            super::as_u64(cx, v, &p, u64::from(u16::MAX)).and_then(|n| u16::try_from(n).ok())
        })
        .collect();
    let m = FilterChainMatch {
        destination_port: o.u16(cx, "destination_port"),
        prefix_ranges,
        server_names: o.strings(cx, "server_names"),
        transport_protocol: o.string(cx, "transport_protocol"),
        application_protocols: o.strings(cx, "application_protocols"),
        direct_source_prefix_ranges,
        source_type: o
            .enumeration(cx, "source_type", SOURCE_TYPES)
            .unwrap_or_default(),
        source_prefix_ranges,
        source_ports,
    };
    o.finish(cx);
    m
}

const SOURCE_TYPES: &[(&str, SourceType)] = &[
    ("ANY", SourceType::Any),
    ("SAME_IP_OR_LOOPBACK", SourceType::SameIpOrLoopback),
    ("EXTERNAL", SourceType::External),
];

const UNDERSCORES: &[(&str, UnderscoresAction)] = &[
    ("ALLOW", UnderscoresAction::Allow),
    ("REJECT_REQUEST", UnderscoresAction::RejectRequest),
    ("DROP_HEADER", UnderscoresAction::DropHeader),
];

/// `IMPLEMENTATION_SPECIFIC_DEFAULT` is Envoy's runtime default: keep them.
const ESCAPED_SLASHES: &[(&str, EscapedSlashesAction)] = &[
    (
        "IMPLEMENTATION_SPECIFIC_DEFAULT",
        EscapedSlashesAction::KeepUnchanged,
    ),
    ("KEEP_UNCHANGED", EscapedSlashesAction::KeepUnchanged),
    ("REJECT_REQUEST", EscapedSlashesAction::RejectRequest),
    (
        "UNESCAPE_AND_REDIRECT",
        EscapedSlashesAction::UnescapeAndRedirect,
    ),
    (
        "UNESCAPE_AND_FORWARD",
        EscapedSlashesAction::UnescapeAndForward,
    ),
];

const CODECS: &[(&str, CodecType)] = &[
    ("AUTO", CodecType::Auto),
    ("HTTP1", CodecType::Http1),
    ("HTTP2", CodecType::Http2),
];

fn http_connection_manager(cx: &mut Cx, v: &Value, path: String) -> Option<HttpConnectionManager> {
    let mut o = Obj::new(cx, v, path)?;
    o.ignore(cx, "@type");
    let mut h = HttpConnectionManager::default();
    match o.string(cx, "stat_prefix") {
        Some(s) if !s.is_empty() => h.stat_prefix = s,
        _ => cx.error(o.child("stat_prefix"), "stat_prefix is required"),
    }
    if let Some((cv, cp)) = o.value(cx, "codec_type") {
        if cv.as_str() == Some("HTTP3") {
            cx.error(cp, "HTTP/3 is not supported");
        } else if let Some(c) = super::as_enum(cx, cv, &cp, CODECS) {
            h.codec_type = c;
        }
    }
    let route_config = o.value(cx, "route_config");
    let rds = o.obj(cx, "rds");
    o.reject(cx, "scoped_routes", "scoped routes are not supported");
    match (route_config, rds) {
        (Some((rv, rp)), None) => {
            h.route = RouteSource::RouteConfig(route::route_configuration(cx, rv, &rp));
        }
        (None, Some(mut rds)) => {
            let name = rds.string(cx, "route_config_name").unwrap_or_default();
            if let Some(cs) = rds.obj(cx, "config_source") {
                super::bootstrap::config_source(cx, cs);
            }
            rds.finish(cx);
            h.route = RouteSource::Rds(name);
        }
        (Some(_), Some(_)) => cx.error(o.path(), "route_config and rds are both set"),
        (None, None) => {
            if !o.has("scoped_routes") {
                cx.error(o.path(), "one of route_config or rds is required");
            }
        }
    }
    http_filters(cx, &mut o, &mut h);
    if let Some(n) = o.u32(cx, "max_request_headers_kb") {
        h.max_request_headers_kb = n;
    }
    // Zero disables the timeout, as in Envoy; absent keeps the (safer) default.
    if let Some(d) = o.duration(cx, "request_headers_timeout") {
        h.request_headers_timeout = (!d.is_zero()).then_some(d);
    }
    if let Some(d) = o.duration(cx, "request_timeout") {
        h.request_timeout = (!d.is_zero()).then_some(d);
    }
    if let Some(d) = o.duration(cx, "stream_idle_timeout") {
        h.stream_idle_timeout = d;
    }
    if let Some(mut c) = o.obj(cx, "common_http_protocol_options") {
        if let Some(d) = c.duration(cx, "idle_timeout") {
            h.idle_timeout = d;
        }
        h.max_requests_per_connection = c.u32(cx, "max_requests_per_connection");
        h.max_connection_duration = c.duration(cx, "max_connection_duration");
        if let Some(n) = c.u32(cx, "max_headers_count") {
            if n == 0 {
                cx.error(c.child("max_headers_count"), "must be at least 1");
            } else {
                h.max_headers_count = n;
            }
        }
        if let Some(a) = c.enumeration(cx, "headers_with_underscores_action", UNDERSCORES) {
            h.headers_with_underscores_action = a;
        }
        c.finish(cx);
    }
    h.normalize_path = o.bool(cx, "normalize_path").unwrap_or(false);
    h.merge_slashes = o.bool(cx, "merge_slashes").unwrap_or(false);
    if let Some(a) = o.enumeration(cx, "path_with_escaped_slashes_action", ESCAPED_SLASHES) {
        h.path_with_escaped_slashes_action = a;
    }
    if let Some(mut p) = o.obj(cx, "http_protocol_options") {
        h.accept_http_10 = p.bool(cx, "accept_http_10").unwrap_or(false);
        h.default_host_for_http_10 = p
            .string(cx, "default_host_for_http_10")
            .filter(|s| !s.is_empty());
        p.finish(cx);
    }
    if let Some(mut p) = o.obj(cx, "http2_protocol_options") {
        if let Some(n) = p.u32(cx, "max_concurrent_streams") {
            if n == 0 || n > i32::MAX as u32 {
                cx.error(
                    p.child("max_concurrent_streams"),
                    "must be in 1..=2147483647",
                );
            } else {
                h.http2.max_concurrent_streams = n;
            }
        }
        for (key, slot) in [
            (
                "initial_stream_window_size",
                &mut h.http2.initial_stream_window_size,
            ),
            (
                "initial_connection_window_size",
                &mut h.http2.initial_connection_window_size,
            ),
        ] {
            if let Some(n) = p.u32(cx, key) {
                if (65535..=i32::MAX as u32).contains(&n) {
                    *slot = n;
                } else {
                    cx.error(p.child(key), "must be in 65535..=2147483647");
                }
            }
        }
        p.finish(cx);
    }
    h.use_remote_address = o.bool(cx, "use_remote_address").unwrap_or(false);
    h.xff_num_trusted_hops = o.u32(cx, "xff_num_trusted_hops").unwrap_or(0);
    if let Some(mut iac) = o.obj(cx, "internal_address_config") {
        for (rv, rp) in iac.list(cx, "cidr_ranges") {
            if let Some(r) = cidr_range(cx, rv, rp) {
                h.internal_address_config.cidr_ranges.push(r);
            }
        }
        iac.unsupported(
            cx,
            "unix_sockets",
            "Unix domain sockets are not supported, ignored",
        );
        iac.finish(cx);
    }
    h.preserve_external_request_id = o.bool(cx, "preserve_external_request_id").unwrap_or(false);
    h.generate_request_id = o.bool(cx, "generate_request_id").unwrap_or(true);
    h.upgrade_configs = route::upgrade_configs(cx, &mut o);
    h.strip_any_host_port = o.bool(cx, "strip_any_host_port").unwrap_or(false);
    h.strip_matching_host_port = o.bool(cx, "strip_matching_host_port").unwrap_or(false);
    if let Some(s) = o.string(cx, "server_name") {
        h.server_name = s;
    }
    for (lv, lp) in o.list(cx, "access_log") {
        if let Some(l) = access_log(cx, lv, lp) {
            h.access_log.push(l);
        }
    }
    if let Some(mut t) = o.obj(cx, "tracing") {
        let mut tracing = Tracing::default();
        for (key, slot) in [
            ("client_sampling", &mut tracing.client_sampling),
            ("random_sampling", &mut tracing.random_sampling),
            ("overall_sampling", &mut tracing.overall_sampling),
        ] {
            if let Some(v) = t.f64(cx, key) {
                if (0.0..=100.0).contains(&v) {
                    *slot = v;
                } else {
                    cx.error(t.child(key), "must be a percentage in [0, 100]");
                }
            }
        }
        t.unsupported(
            cx,
            "provider",
            "trace spans are not reported to a tracer yet; trace context is propagated",
        );
        for key in [
            "custom_tags",
            "max_path_tag_length",
            "verbose",
            "spawn_upstream_span",
        ] {
            t.unsupported(cx, key, "ignored: no spans are reported");
        }
        t.finish(cx);
        h.tracing = Some(tracing);
    }
    o.finish(cx);
    Some(h)
}

fn cidr_range(cx: &mut Cx, v: &Value, path: String) -> Option<CidrRange> {
    let mut o = Obj::new(cx, v, path)?;
    let prefix = o.string(cx, "address_prefix");
    let len = o.u32(cx, "prefix_len").unwrap_or(0);
    let ap = o.child("address_prefix");
    let lp = o.child("prefix_len");
    o.finish(cx);
    let ip = match prefix.as_deref().map(str::parse::<IpAddr>) {
        Some(Ok(ip)) => ip,
        Some(Err(_)) => {
            cx.error(
                ap,
                format!("{:?} is not an IP address", prefix.unwrap_or_default()),
            );
            return None;
        }
        None => {
            cx.error(ap, "address_prefix is required");
            return None;
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len > max {
        cx.error(lp, format!("{len} is longer than the address ({max} bits)"));
        return None;
    }
    Some(CidrRange {
        address_prefix: ip,
        prefix_len: u8::try_from(len).ok()?,
    })
}

fn http_filters(cx: &mut Cx, o: &mut Obj<'_>, h: &mut HttpConnectionManager) {
    let Some((lv, lp)) = o.value(cx, "http_filters") else {
        return;
    };
    let list = super::as_list(cx, lv, &lp);
    let n = list.len();
    let mut saw_router = false;
    for (i, (fv, fp)) in list.into_iter().enumerate() {
        let Some(mut f) = Obj::new(cx, fv, fp) else {
            continue;
        };
        let name = f.string(cx, "name").unwrap_or_default();
        let disabled = f.bool(cx, "disabled").unwrap_or(false);
        let is_optional = f.bool(cx, "is_optional").unwrap_or(false);
        f.unsupported(
            cx,
            "config_discovery",
            "filter config discovery (ECDS) is not supported yet, ignored",
        );
        let tc = f.value(cx, "typed_config");
        let is_router = match tc {
            Some((tv, _)) => type_name(tv) == Some(ROUTER),
            None => name == ROUTER_FILTER,
        };
        if is_router {
            saw_router = true;
            if i + 1 != n {
                cx.error(f.path(), "the router filter must be the last HTTP filter");
            }
            if let Some((tv, tp)) = tc
                && let Some(mut r) = Obj::new(cx, tv, tp)
            {
                r.ignore(cx, "@type");
                h.suppress_envoy_headers = r.bool(cx, "suppress_envoy_headers").unwrap_or(false);
                r.finish(cx);
            }
            f.finish(cx);
            continue;
        }
        let (config, type_url) = match tc {
            Some((tv, tp)) => route::any_config(cx, tv, &tp).unwrap_or((Value::Null, None)),
            None => (Value::Null, None),
        };
        f.finish(cx);
        h.http_filters.push(HttpFilterConfig {
            name,
            config,
            type_url,
            disabled,
            is_optional,
        });
    }
    if !saw_router && n > 0 {
        cx.warn(
            lp,
            "no router filter (envoy.filters.http.router); the router runs after these filters anyway",
        );
    }
}

fn access_log(cx: &mut Cx, v: &Value, path: String) -> Option<AccessLog> {
    let mut o = Obj::new(cx, v, path)?;
    let name = o.string(cx, "name").unwrap_or_default();
    o.unsupported(
        cx,
        "filter",
        "access log filters are not supported yet; every request is logged",
    );
    let tc = o.value(cx, "typed_config");
    let p = o.path().to_owned();
    o.finish(cx);
    let kind = match tc {
        Some((tv, _)) => type_name(tv).unwrap_or("").to_owned(),
        None => match name.as_str() {
            "envoy.access_loggers.stdout" => STDOUT_LOG.to_owned(),
            "envoy.access_loggers.stderr" => STDERR_LOG.to_owned(),
            _ => name.clone(),
        },
    };
    if ![STDOUT_LOG, STDERR_LOG, FILE_LOG].contains(&kind.as_str()) {
        cx.warn(
            p,
            format!(
                "access logger {:?} is not supported (only stdout, stderr and file are); ignored",
                if kind.is_empty() { &name } else { &kind }
            ),
        );
        return None;
    }
    let mut format = None;
    let mut file = None;
    if let Some((tv, tp)) = tc {
        let mut t = Obj::new(cx, tv, tp)?;
        t.ignore(cx, "@type");
        if kind == FILE_LOG {
            file = t.string(cx, "path");
            format = t.string(cx, "format");
            t.unsupported(
                cx,
                "json_format",
                "JSON access log formats are not supported yet; using the default format",
            );
            t.unsupported(
                cx,
                "typed_json_format",
                "JSON access log formats are not supported yet; using the default format",
            );
        }
        if let Some(mut lf) = t.obj(cx, "log_format") {
            if let Some(f) = log_format(cx, &mut lf) {
                format = Some(f);
            }
            lf.finish(cx);
        }
        t.finish(cx);
    }
    let sink = match kind.as_str() {
        STDOUT_LOG => AccessLogSink::Stdout,
        STDERR_LOG => AccessLogSink::Stderr,
        _ => match file {
            Some(f) if !f.is_empty() => AccessLogSink::File(f),
            _ => {
                cx.error(join(&p, "typed_config.path"), "path is required");
                return None;
            }
        },
    };
    Some(AccessLog { sink, format })
}

/// A `SubstitutionFormatString`: the text format, when it has one.
fn log_format(cx: &mut Cx, o: &mut Obj<'_>) -> Option<String> {
    let mut out = o.string(cx, "text_format");
    if let Some(mut src) = o.obj(cx, "text_format_source") {
        if let Some(s) = src.string(cx, "inline_string") {
            out = Some(s);
        }
        src.unsupported(
            cx,
            "filename",
            "reading the format from a file is not supported; using the default format",
        );
        src.finish(cx);
    }
    o.unsupported(
        cx,
        "json_format",
        "JSON access log formats are not supported yet; using the default format",
    );
    o.unsupported(cx, "formatters", UNKNOWN);
    if let Some((ov, op)) = o.value(cx, "omit_empty_values")
        && ov.as_bool() == Some(true)
    {
        cx.warn(op, "omit_empty_values is not supported yet, ignored");
    }
    if let Some((cv, cp)) = o.value(cx, "content_type") {
        cx.warn(
            cp,
            format!("content_type {} is not used, ignored", show(cv)),
        );
    }
    out
}
