//! VirtualService rules → routes; virtual hosts and listeners for sidecars and gateways
//! (SEMANTICS.md §8.2–8.6, §8.8).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use mesh_core::config::{
    Action, AppendAction, BackOff, ClusterSpecifier, ClusterWeight, DataSource, Denominator,
    DirectResponseAction, DownstreamTlsContext, FilterChain, FractionalPercent, HeaderMatchSpec,
    HeaderMatcher, HeaderMutations, HeaderValueOption, HostRewrite, HttpConnectionManager,
    HttpFilterConfig, Listener, ListenerFilter, ListenerFilterKind, PathMatch, PathRedirect,
    QueryParameterMatcher, RedirectAction, RedirectCode, RegexRewrite, RequestMirrorPolicy,
    RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, RuntimeFraction,
    StringMatcher, StringPattern, TcpProxy, TlsCertificate, TlsRequirement, UpgradeConfig,
    VirtualHost, WeightedClusters,
};
use serde_json::{Value, json};

use super::{Registry, resolve_gateway, wildcard_covers};
use crate::envoy::Cx;
use crate::istio::{
    AbortStatus, CorsPolicy, Fault, Gateway, HeaderOperations, Headers, HttpMatch, HttpRoute,
    StringMatch, VirtualService, fqdn,
};

const FAULT_FILTER: &str = "envoy.filters.http.fault";
const CORS_FILTER: &str = "envoy.filters.http.cors";
const PREVIOUS_HOSTS: &str = "envoy.retry_host_predicates.previous_hosts";
const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
/// Istio's direct-response body limit (1 MiB).
const MAX_DIRECT_RESPONSE_BODY: u32 = 1 << 20;

/// Where routes are being generated: the gateway (`ns/name`, or `mesh` for sidecars), the
/// listener port, and the proxy's identity.
struct Context<'r> {
    gateway: String,
    port: u16,
    labels: &'r BTreeMap<String, String>,
    namespace: &'r str,
}

// === sidecar ===

/// The sidecar's one outbound listener (see the module docs of `istio` for the domains).
pub(super) fn sidecar(
    cx: &mut Cx,
    reg: &Registry<'_>,
    outbound_port: u16,
    labels: &BTreeMap<String, String>,
) -> Listener {
    let opts = reg.opts;
    let rc = sidecar_routes(cx, reg, labels, outbound_port.to_string(), None);
    Listener::http(
        format!("{}_{outbound_port}", opts.bind_address),
        SocketAddr::new(opts.bind_address, outbound_port),
        outbound_hcm(rc, format!("outbound_{outbound_port}")),
    )
}

/// A sidecar's outbound connection manager for `rc`.
pub(super) fn outbound_hcm(rc: RouteConfiguration, stat_prefix: String) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix,
        http_filters: filters_for(&rc),
        upgrade_configs: vec![UpgradeConfig::websocket()],
        // meshConfig.pathNormalization's default (BASE): RFC 3986 normalisation, escaped
        // slashes kept, as pilot sets it on every connection manager.
        normalize_path: true,
        tracing: Some(istio_tracing()),
        ..HttpConnectionManager::with_routes(rc)
    }
}

/// A sidecar's outbound routes: a virtual host per service and HTTP port, the mesh-bound
/// VirtualServices' routes or a default route in each. With `only_port` (the captured layout's
/// route configuration of one port), only that port's virtual hosts, their domains without
/// ports (the configuration ignores the port in `Host`) plus the services' virtual IPs;
/// without it, every port's, with `host:port` domains.
pub(super) fn sidecar_routes(
    cx: &mut Cx,
    reg: &Registry<'_>,
    labels: &BTreeMap<String, String>,
    name: String,
    only_port: Option<u16>,
) -> RouteConfiguration {
    let opts = reg.opts;
    let mesh: Vec<&VirtualService> = reg
        .res
        .virtual_services
        .iter()
        .filter(|vs| vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh"))
        .collect();
    // Each VS host, resolved; the first VS per exact host wins (as pilot does for sidecars).
    let mut exact: BTreeMap<String, &VirtualService> = BTreeMap::new();
    let mut wild: Vec<(String, &VirtualService)> = Vec::new();
    for vs in &mesh {
        for (i, h) in vs.hosts.iter().enumerate() {
            let host = fqdn(h, &vs.meta.namespace, &opts.domain_suffix);
            let taken = if host.contains('*') {
                wild.iter().any(|(w, _)| *w == host)
            } else {
                exact.contains_key(&host)
            };
            if taken {
                cx.warn(
                    vs.meta.path("VirtualService", &format!("spec.hosts[{i}]")),
                    format!(
                        "host {host} is already routed by another mesh VirtualService; ignored here"
                    ),
                );
            } else if host.contains('*') {
                wild.push((host, vs));
            } else {
                exact.insert(host, vs);
            }
        }
    }
    let mut rc = RouteConfiguration::new(name);
    rc.ignore_port_in_host_matching = only_port.is_some();
    rc.validate_clusters = Some(false);
    rc.max_direct_response_body_size_bytes = MAX_DIRECT_RESPONSE_BODY;
    let mut domains = HashSet::new();
    let mut add_vhost = |cx: &mut Cx, rc: &mut RouteConfiguration, mut vh: VirtualHost| {
        vh.domains.retain(|d| {
            let fresh = domains.insert(d.to_ascii_lowercase());
            if !fresh {
                cx.warn(
                    format!("sidecar route configuration: virtual host {}", vh.name),
                    format!("domain {d} is already served by another virtual host; dropped"),
                );
            }
            fresh
        });
        if !vh.domains.is_empty() {
            rc.virtual_hosts.push(vh);
        }
    };
    for s in &reg.services {
        let mut http: Vec<u16> = s.http_ports().map(|p| p.number).collect();
        let Some(&first) = http.first() else {
            continue;
        };
        let default_port = if http.contains(&80) { 80 } else { first };
        let mut names = alt_names(&s.host, &opts.namespace, &opts.domain_suffix);
        if let Some(p) = only_port {
            http.retain(|n| *n == p);
            names.extend(s.se.addresses.iter().filter(|a| !a.contains('/')).cloned());
        }
        let vs = exact.get(&s.host).copied().or_else(|| {
            wild.iter()
                .filter(|(w, _)| wildcard_covers(w, &s.host))
                .max_by_key(|(w, _)| w.len())
                .map(|(_, vs)| *vs)
        });
        for &port in &http {
            let mut vh = VirtualHost::new(format!("{}:{port}", s.host), Vec::<String>::new());
            if port == default_port || only_port.is_some() {
                vh.domains.extend(names.iter().cloned());
            }
            if only_port.is_none() {
                vh.domains
                    .extend(names.iter().map(|n| format!("{n}:{port}")));
            }
            let ctx = Context {
                gateway: "mesh".into(),
                port,
                labels,
                namespace: &opts.namespace,
            };
            vh.routes = match vs {
                Some(vs) => vs_routes(reg, vs, &ctx),
                None => vec![default_route(reg, &s.host, port)],
            };
            add_vhost(cx, &mut rc, vh);
        }
    }
    // VirtualService hosts with no ServiceEntry: port 80 only, as pilot does.
    if only_port.is_some_and(|p| p != 80) {
        return rc;
    }
    let ctx = Context {
        gateway: "mesh".into(),
        port: 80,
        labels,
        namespace: &opts.namespace,
    };
    for (host, vs) in exact
        .iter()
        .map(|(h, v)| (h, *v))
        .chain(wild.iter().map(|(h, v)| (h, *v)))
    {
        if reg.service(host).is_some()
            || (host.contains('*') && reg.services.iter().any(|s| wildcard_covers(host, &s.host)))
        {
            continue;
        }
        let mut vh = VirtualHost::new(format!("{host}:80"), [host.clone()]);
        if host != "*" && only_port.is_none() {
            vh.domains.push(format!("{host}:80"));
        }
        vh.routes = vs_routes(reg, vs, &ctx);
        add_vhost(cx, &mut rc, vh);
    }
    rc
}

/// The names a sidecar uses for a host: the FQDN, and for `name.ns.svc.<suffix>` hosts
/// `name.ns`, `name.ns.svc` (and `name` in the proxy's own namespace).
fn alt_names(host: &str, proxy_ns: &str, suffix: &str) -> Vec<String> {
    let mut out = vec![host.to_owned()];
    if let Some(short) = host.strip_suffix(&format!(".svc.{suffix}")) {
        let mut parts = short.splitn(2, '.');
        if let (Some(name), Some(ns)) = (parts.next(), parts.next())
            && !ns.contains('.')
        {
            if ns == proxy_ns {
                out.push(name.to_owned());
            }
            out.push(format!("{name}.{ns}"));
            out.push(format!("{name}.{ns}.svc"));
        }
    }
    out
}

/// A service without a VirtualService: `/` → `outbound|port||host`, timeout 0 s, the default
/// retry policy, and the DestinationRule's hash policy.
fn default_route(reg: &Registry<'_>, host: &str, port: u16) -> Route {
    let d = crate::istio::Destination {
        host: host.to_owned(),
        subset: None,
        port: Some(port),
    };
    let mut a = RouteAction::cluster(format!("outbound|{port}||{host}"));
    a.timeout = Some(Duration::ZERO);
    a.max_grpc_timeout = Some(Duration::ZERO);
    let hash = reg.hash_policy(&d, "", port);
    a.retry_policy = Some(default_retry(hash.is_none()));
    a.hash_policy.extend(hash);
    let mut r = Route::new(
        RouteMatch::new(PathMatch::Prefix("/".into())),
        Action::Route(a),
    );
    r.name = "default".into();
    r
}

// === gateways ===

/// The listeners of the Gateways whose selector matches `labels`.
pub(super) fn gateways(
    cx: &mut Cx,
    reg: &Registry<'_>,
    labels: &BTreeMap<String, String>,
    port_map: &BTreeMap<u16, u16>,
) -> Vec<Listener> {
    let opts = reg.opts;
    let selected: Vec<&Gateway> = reg
        .res
        .gateways
        .iter()
        .filter(|g| g.selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
        .collect();
    // Server port → the (gateway, server index) pairs on it.
    let mut ports: BTreeMap<u16, Vec<(&Gateway, usize)>> = BTreeMap::new();
    // Servers that terminate TLS (HTTPS with SIMPLE, MUTUAL or OPTIONAL_MUTUAL).
    let mut tls_ports: BTreeMap<u16, Vec<(&Gateway, usize)>> = BTreeMap::new();
    // Servers that pass TLS through to a backend chosen by SNI.
    let mut pass_ports: BTreeMap<u16, Vec<(&Gateway, usize)>> = BTreeMap::new();
    for g in &selected {
        for (i, s) in g.servers.iter().enumerate() {
            let p = g.meta.path("Gateway", &format!("spec.servers[{i}]"));
            let terminates = matches!(
                s.tls_mode.as_deref(),
                Some("SIMPLE" | "MUTUAL" | "OPTIONAL_MUTUAL")
            );
            if s.protocol == "HTTPS" && terminates {
                tls_ports.entry(s.port).or_default().push((g, i));
                continue;
            }
            if matches!(s.protocol.as_str(), "HTTPS" | "TLS")
                && s.tls_mode.as_deref() == Some("PASSTHROUGH")
            {
                pass_ports.entry(s.port).or_default().push((g, i));
                continue;
            }
            if !s.is_http() {
                cx.warn(
                    p,
                    format!(
                        "{} servers are not supported here (only HTTP, and HTTPS that terminates TLS with SIMPLE or MUTUAL), skipped",
                        if s.protocol.is_empty() { "protocol-less" } else { &s.protocol }
                    ),
                );
                continue;
            }
            if s.tls_mode.is_some() && !s.https_redirect {
                cx.warn(
                    format!("{p}.tls"),
                    "TLS settings on an HTTP server are ignored",
                );
            }
            ports.entry(s.port).or_default().push((g, i));
        }
    }
    let mut out = Vec::new();
    // Server ports already taken (a port serves one kind of server).
    let mut taken: HashSet<u16> = ports.keys().copied().collect();
    for (port, servers) in ports {
        let local = port_map.get(&port).copied().unwrap_or(port);
        let rc = server_routes(cx, reg, labels, &servers, port, format!("http.{port}"));
        let hcm = gateway_hcm(rc, format!("outbound_{}_{local}", opts.bind_address));
        out.push(Listener::http(
            listener_name(opts.bind_address, port, local),
            SocketAddr::new(opts.bind_address, local),
            hcm,
        ));
    }
    for (port, servers) in tls_ports {
        let local = port_map.get(&port).copied().unwrap_or(port);
        let address = SocketAddr::new(opts.bind_address, local);
        if !taken.insert(port) {
            for (g, i) in &servers {
                cx.warn(
                    g.meta.path("Gateway", &format!("spec.servers[{i}]")),
                    format!(
                        "port {port} also has plain HTTP servers; this HTTPS server is not served"
                    ),
                );
            }
            continue;
        }
        let mut chains = Vec::new();
        for (g, i) in &servers {
            let srv = &g.servers[*i];
            let path = g.meta.path("Gateway", &format!("spec.servers[{i}].tls"));
            let Some(tls) = server_tls(cx, reg, srv, &g.meta.namespace, &path) else {
                continue;
            };
            let name = format!(
                "https.{port}.{}.{}.{}",
                srv.port_name, g.meta.name, g.meta.namespace
            );
            let rc = server_routes(cx, reg, labels, &[(*g, *i)], port, name);
            let mut chain = FilterChain::http(gateway_hcm(
                rc,
                format!("outbound_{}_{local}", opts.bind_address),
            ));
            let mut names: Vec<String> = srv
                .hosts
                .iter()
                .map(|h| strip_ns(h).to_ascii_lowercase())
                .collect();
            names.sort();
            names.dedup();
            if !names.iter().any(|n| n == "*") {
                chain.filter_chain_match.server_names = names;
            }
            chain.transport_socket = Some(tls);
            chains.push(chain);
        }
        if chains.is_empty() {
            continue;
        }
        let mut l = Listener::new(
            listener_name(opts.bind_address, port, local),
            address,
            chains,
        );
        if l.filter_chains
            .iter()
            .any(|c| !c.filter_chain_match.server_names.is_empty())
        {
            l.listener_filters = vec![ListenerFilter::new(ListenerFilterKind::TlsInspector)];
        }
        out.push(l);
    }

    for (port, servers) in pass_ports {
        let local = port_map.get(&port).copied().unwrap_or(port);
        let address = SocketAddr::new(opts.bind_address, local);
        if !taken.insert(port) {
            for (g, i) in &servers {
                cx.warn(
                    g.meta.path("Gateway", &format!("spec.servers[{i}]")),
                    format!(
                        "port {port} also has other servers; this PASSTHROUGH server is not served"
                    ),
                );
            }
            continue;
        }
        let chains = passthrough_chains(reg, &servers, port);
        if chains.is_empty() {
            for (g, i) in &servers {
                cx.warn(
                    g.meta.path("Gateway", &format!("spec.servers[{i}]")),
                    "no VirtualService tls[] route is bound to this PASSTHROUGH server; nothing is served on it",
                );
            }
            continue;
        }
        let mut l = Listener::new(
            listener_name(opts.bind_address, port, local),
            address,
            chains,
        );
        l.listener_filters = vec![ListenerFilter::new(ListenerFilterKind::TlsInspector)];
        out.push(l);
    }
    if selected.is_empty() {
        cx.warn(
            "gateway",
            "no Gateway selects these labels: the gateway has no listeners",
        );
    }
    out
}

/// The route configuration `name` of gateway `servers` on `port`: a virtual host per host the
/// servers and their VirtualServices share.
fn server_routes(
    cx: &mut Cx,
    reg: &Registry<'_>,
    labels: &BTreeMap<String, String>,
    servers: &[(&Gateway, usize)],
    port: u16,
    name: String,
) -> RouteConfiguration {
    let opts = reg.opts;
    let mut rc = RouteConfiguration::new(name);
    rc.validate_clusters = Some(false);
    rc.ignore_port_in_host_matching = true;
    rc.max_direct_response_body_size_bytes = MAX_DIRECT_RESPONSE_BODY;
    // host → (vhost, the VirtualServices that filled it).
    let mut vhosts: Vec<(VirtualHost, Vec<String>)> = Vec::new();
    for (g, i) in servers {
        let srv = &g.servers[*i];
        if srv.https_redirect {
            for h in &srv.hosts {
                let host = strip_ns(h).to_ascii_lowercase();
                let vh = vhost_entry(&mut vhosts, &host, port);
                vh.require_tls = TlsRequirement::All;
            }
        }
    }
    for vs in &reg.res.virtual_services {
        let ns = &vs.meta.namespace;
        for (g, i) in servers {
            let gname = format!("{}/{}", g.meta.namespace, g.meta.name);
            if !vs.gateways.iter().any(|x| resolve_gateway(x, ns) == gname) {
                continue;
            }
            let srv = &g.servers[*i];
            let ctx = Context {
                gateway: gname.clone(),
                port,
                labels,
                namespace: &opts.namespace,
            };
            let routes = vs_routes(reg, vs, &ctx);
            for (k, vh_host) in vs.hosts.iter().enumerate() {
                let vh_host = fqdn(vh_host, ns, &opts.domain_suffix);
                for sh in &srv.hosts {
                    let Some(host) = server_host_match(sh, &g.meta.namespace, &vh_host, ns) else {
                        continue;
                    };
                    let id = format!("{}.{}", vs.meta.name, ns);
                    let idx = match vhosts.iter().position(|(v, _)| v.domains[0] == host) {
                        Some(idx) => idx,
                        None => {
                            vhost_entry(&mut vhosts, &host, port);
                            vhosts.len() - 1
                        }
                    };
                    let (vh, owners) = &mut vhosts[idx];
                    if owners.contains(&id) {
                        continue;
                    }
                    if let Some(o) = owners.first() {
                        cx.warn(
                            vs.meta.path("VirtualService", &format!("spec.hosts[{k}]")),
                            format!("host {host} on gateway {gname} port {port} is also routed by VirtualService {o}; the routes are merged (catch-all routes last)"),
                        );
                    }
                    owners.push(id);
                    vh.routes.extend(routes.iter().cloned());
                }
            }
        }
    }
    let mut seen = HashSet::new();
    for (mut vh, _) in vhosts {
        if !seen.insert(vh.domains[0].clone()) {
            continue;
        }
        // Merged VirtualServices: catch-all routes move to the end (pilot's SortVHostRoutes).
        let (catch_all, rest): (Vec<Route>, Vec<Route>) =
            vh.routes.into_iter().partition(is_catch_all);
        vh.routes = rest.into_iter().chain(catch_all).collect();
        rc.virtual_hosts.push(vh);
    }
    if rc.virtual_hosts.is_empty() {
        rc.virtual_hosts
            .push(VirtualHost::new(format!("blackhole:{port}"), ["*"]));
    }
    rc
}

/// The chains of PASSTHROUGH `servers` on `port`: one per VirtualService `tls[]` match bound
/// to them, on its `sniHosts` that the server's hosts admit, to a TCP proxy of its
/// destinations. An SNI name already taken on the port is skipped (pilot's rule).
fn passthrough_chains(
    reg: &Registry<'_>,
    servers: &[(&Gateway, usize)],
    port: u16,
) -> Vec<FilterChain> {
    let mut chains = Vec::new();
    let mut taken = HashSet::new();
    for vs in &reg.res.virtual_services {
        let ns = &vs.meta.namespace;
        for (g, i) in servers {
            let gname = format!("{}/{}", g.meta.namespace, g.meta.name);
            if !vs.gateways.iter().any(|x| resolve_gateway(x, ns) == gname) {
                continue;
            }
            let srv = &g.servers[*i];
            for rule in &vs.tls {
                for m in &rule.matches {
                    let other_gateway = !m.gateways.is_empty()
                        && !m.gateways.iter().any(|x| resolve_gateway(x, ns) == gname);
                    if m.port.is_some_and(|p| p != port) || other_gateway {
                        continue;
                    }
                    let names: Vec<String> = m
                        .sni_hosts
                        .iter()
                        .filter(|h| {
                            srv.hosts
                                .iter()
                                .any(|sh| server_host_match(sh, &g.meta.namespace, h, ns).is_some())
                        })
                        .filter(|h| taken.insert((*h).clone()))
                        .cloned()
                        .collect();
                    if names.is_empty() {
                        continue;
                    }
                    let clusters = super::tcp_clusters(reg, &rule.route, ns, port);
                    let mut chain = FilterChain::tcp(TcpProxy {
                        stat_prefix: clusters.first().map(|c| c.name.clone()).unwrap_or_default(),
                        clusters,
                        ..TcpProxy::default()
                    });
                    chain.filter_chain_match.server_names = names;
                    chains.push(chain);
                }
            }
        }
    }
    chains
}

/// A gateway listener's name: `<bind>_<local port>`, or `<bind>_<server port>` when the local
/// port is 0 (chosen at bind time, so several servers may map there).
fn listener_name(bind: std::net::IpAddr, port: u16, local: u16) -> String {
    format!("{bind}_{}", if local == 0 { port } else { local })
}

/// A gateway's connection manager for `rc`.
fn gateway_hcm(rc: RouteConfiguration, stat_prefix: String) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix,
        use_remote_address: true,
        http_filters: filters_for(&rc),
        upgrade_configs: vec![UpgradeConfig::websocket()],
        normalize_path: true,
        tracing: Some(istio_tracing()),
        ..HttpConnectionManager::with_routes(rc)
    }
}

/// A terminating server's TLS (SIMPLE, MUTUAL, OPTIONAL_MUTUAL): its certificate from
/// `serverCertificate`/`privateKey`, or `credentialName`: a Kubernetes TLS Secret of that name
/// in the gateway's namespace, else files in the credentials directory (`<name>.crt`,
/// `<name>.key`, `<name>-ca.crt`); a MUTUAL server's client CA and SANs.
fn server_tls(
    cx: &mut Cx,
    reg: &Registry<'_>,
    srv: &crate::istio::Server,
    gw_ns: &str,
    path: &str,
) -> Option<DownstreamTlsContext> {
    let t = &srv.tls;
    let mode = srv.tls_mode.as_deref().unwrap_or("PASSTHROUGH");
    let dir = reg.opts.credentials_dir.trim_end_matches('/');
    let file = |f: String| DataSource::Filename(f);
    let secret = |name: &str| {
        reg.res
            .secrets
            .iter()
            .find(|s| s.meta.name == name && s.meta.namespace == gw_ns)
    };
    let inline = |pem: &Option<String>| pem.clone().map(DataSource::InlineString);
    let (cert, key, ca) = match (&t.credential_name, &t.server_certificate, &t.private_key) {
        // A Secret of that name in the gateway's namespace (its CA in the Secret, or in
        // `<name>-cacert`, as Istio reads them), else the credentials directory.
        (Some(name), _, _) if secret(name).is_some() => {
            let s = secret(name).expect("found above");
            let (Some(cert), Some(key)) = (inline(&s.certificate), inline(&s.private_key)) else {
                cx.error(
                    s.meta.path("Secret", "data"),
                    "a Gateway credential needs tls.crt and tls.key",
                );
                return None;
            };
            let ca = inline(&s.ca_certificate).or_else(|| {
                secret(&format!("{name}-cacert")).and_then(|c| inline(&c.ca_certificate))
            });
            (cert, key, ca)
        }
        (Some(name), _, _) => (
            file(format!("{dir}/{name}.crt")),
            file(format!("{dir}/{name}.key")),
            Some(file(format!("{dir}/{name}-ca.crt"))),
        ),
        (None, Some(c), Some(k)) => (
            file(c.clone()),
            file(k.clone()),
            t.ca_certificates.clone().map(file),
        ),
        _ => {
            cx.error(
                path.to_owned(),
                "a certificate (serverCertificate and privateKey, or credentialName) is required",
            );
            return None;
        }
    };
    let mut ctx = DownstreamTlsContext::default();
    let c = &mut ctx.common_tls_context;
    c.tls_certificates.push(TlsCertificate {
        certificate_chain: cert,
        private_key: key,
    });
    c.alpn_protocols = vec!["h2".into(), "http/1.1".into()];
    let version = |v: &Option<String>| match v.as_deref() {
        Some("TLSV1_3") => Some(mesh_core::config::TlsVersion::V1_3),
        Some("TLSV1_2") => Some(mesh_core::config::TlsVersion::V1_2),
        _ => None,
    };
    c.tls_params.minimum_protocol_version = version(&t.min_protocol_version);
    c.tls_params.maximum_protocol_version = version(&t.max_protocol_version);
    c.tls_params.cipher_suites.clone_from(&t.cipher_suites);
    if matches!(mode, "MUTUAL" | "OPTIONAL_MUTUAL") {
        c.validation_context = Some(mesh_core::config::ValidationContext {
            trusted_ca: ca,
            match_typed_subject_alt_names: super::istio_sans(&t.subject_alt_names),
        });
        ctx.require_client_certificate = mode == "MUTUAL";
    }
    Some(ctx)
}

fn vhost_entry<'v>(
    vhosts: &'v mut Vec<(VirtualHost, Vec<String>)>,
    host: &str,
    port: u16,
) -> &'v mut VirtualHost {
    let idx = match vhosts.iter().position(|(v, _)| v.domains[0] == host) {
        Some(i) => i,
        None => {
            vhosts.push((
                VirtualHost::new(format!("{host}:{port}"), [host]),
                Vec::new(),
            ));
            vhosts.len() - 1
        }
    };
    &mut vhosts[idx].0
}

fn strip_ns(h: &str) -> &str {
    h.split_once('/').map_or(h, |(_, host)| host)
}

/// The host a server host and a VirtualService host share, if any: the more specific of the
/// two (wildcards both ways). A server host `ns/host` admits only VirtualServices of `ns`.
fn server_host_match(server: &str, gw_ns: &str, vs_host: &str, vs_ns: &str) -> Option<String> {
    let (ns, sh) = server.split_once('/').unwrap_or(("*", server));
    let ns = if ns == "." { gw_ns } else { ns };
    if ns != "*" && ns != vs_ns {
        return None;
    }
    let sh = sh.to_ascii_lowercase();
    let vh = vs_host.to_ascii_lowercase();
    if sh == vh {
        Some(sh)
    } else if wildcard_covers(&sh, &vh) {
        Some(vh)
    } else if wildcard_covers(&vh, &sh) {
        Some(sh)
    } else {
        None
    }
}

// === routes ===

/// The HTTP filters the routes of `rc` need, before the router: CORS, then fault (Istio's order).
fn filters_for(rc: &RouteConfiguration) -> Vec<HttpFilterConfig> {
    let uses = |name: &str| {
        rc.virtual_hosts
            .iter()
            .flat_map(|v| &v.routes)
            .any(|r| r.typed_per_filter_config.contains_key(name))
    };
    let mut out = Vec::new();
    for name in [CORS_FILTER, FAULT_FILTER] {
        if uses(name) {
            out.push(HttpFilterConfig::new(name, json!({})));
        }
    }
    out
}

fn is_catch_all(r: &Route) -> bool {
    let m = &r.route_match;
    let path = match &m.path {
        PathMatch::Prefix(p) | PathMatch::PathSeparatedPrefix(p) => p == "/",
        PathMatch::SafeRegex(re) => re == ".*",
        _ => false,
    };
    path && m.headers.is_empty() && m.query_parameters.is_empty() && m.runtime_fraction.is_none()
}

/// The routes of one VirtualService in a context (SEMANTICS.md §8.2).
fn vs_routes(reg: &Registry<'_>, vs: &VirtualService, ctx: &Context<'_>) -> Vec<Route> {
    let mut out = Vec::new();
    for rule in &vs.http {
        if rule.route.is_empty() && rule.redirect.is_none() && rule.direct_response.is_none() {
            continue; // a delegate rule, reported as unsupported when read
        }
        let base = rule_route(reg, vs, rule, ctx);
        if rule.matches.is_empty() {
            let mut r = base;
            r.name.clone_from(&rule.name);
            out.push(r);
            return out;
        }
        for m in &rule.matches {
            if skip_match(m, vs, ctx) {
                continue;
            }
            let mut r = base.clone();
            // Pilot's naming: the rule's name, `.` and the match's name when both are set; a
            // match name alone names nothing.
            r.name = if rule.name.is_empty() || m.name.is_empty() {
                rule.name.clone()
            } else {
                format!("{}.{}", rule.name, m.name)
            };
            r.route_match = route_match(m);
            let stop = is_catch_all(&r);
            out.push(r);
            if stop {
                return out;
            }
        }
    }
    out
}

fn skip_match(m: &HttpMatch, vs: &VirtualService, ctx: &Context<'_>) -> bool {
    if !m.unsupported.is_empty() {
        return true;
    }
    if m.port.is_some_and(|p| p != ctx.port) {
        return true;
    }
    if !m.gateways.is_empty() {
        let ns = &vs.meta.namespace;
        let hit = m.gateways.iter().any(|g| {
            if ctx.gateway == "mesh" {
                g == "mesh"
            } else {
                g != "mesh" && resolve_gateway(g, ns) == ctx.gateway
            }
        });
        if !hit {
            return true;
        }
    } else if !m
        .source_labels
        .iter()
        .all(|(k, v)| ctx.labels.get(k) == Some(v))
    {
        return true;
    }
    m.source_namespace
        .as_deref()
        .is_some_and(|ns| ns != ctx.namespace)
}

fn string_matcher(m: &StringMatch, ignore_case: bool) -> Option<StringMatcher> {
    let pattern = match m {
        StringMatch::Exact(s) => StringPattern::Exact(s.clone()),
        StringMatch::Prefix(s) | StringMatch::SegmentPrefix(s) => StringPattern::Prefix(s.clone()),
        StringMatch::Regex(s) => StringPattern::SafeRegex(s.clone()),
        StringMatch::Present => return None,
    };
    Some(StringMatcher {
        pattern,
        ignore_case: ignore_case && !matches!(m, StringMatch::Regex(_)),
    })
}

fn header_matcher(name: &str, m: &StringMatch, invert: bool) -> HeaderMatcher {
    let mut h = match string_matcher(m, false) {
        Some(sm) => HeaderMatcher::new(name, HeaderMatchSpec::String(sm)),
        None => HeaderMatcher::present(name),
    };
    if invert {
        h.invert_match = true;
        h.treat_missing_header_as_empty = !matches!(m, StringMatch::Present);
    }
    h
}

/// `HTTPMatchRequest` → `RouteMatch` (SEMANTICS.md §8.3).
fn route_match(m: &HttpMatch) -> RouteMatch {
    let path = match &m.uri {
        None | Some(StringMatch::Present) => PathMatch::Prefix("/".into()),
        Some(StringMatch::Exact(p)) => PathMatch::Path(p.clone()),
        Some(StringMatch::Prefix(p)) => PathMatch::Prefix(p.clone()),
        Some(StringMatch::SegmentPrefix(p)) => PathMatch::PathSeparatedPrefix(p.clone()),
        Some(StringMatch::Regex(r)) => PathMatch::SafeRegex(r.clone()),
    };
    let mut rm = RouteMatch::new(path);
    rm.case_sensitive = !m.ignore_uri_case;
    let mut headers: Vec<HeaderMatcher> = Vec::new();
    for (k, v) in &m.headers {
        headers.push(header_matcher(k, v, false));
    }
    for (k, v) in &m.without_headers {
        headers.push(header_matcher(k, v, true));
    }
    for (name, v) in [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ] {
        if let Some(v) = v {
            headers.push(header_matcher(name, v, false));
        }
    }
    headers.sort_by(|a, b| a.name.cmp(&b.name));
    rm.headers = headers;
    rm.query_parameters = m
        .query_params
        .iter()
        .map(|(k, v)| QueryParameterMatcher {
            name: k.clone(),
            string_match: string_matcher(v, false),
        })
        .collect();
    rm
}

/// Istio's default retry policy (SEMANTICS.md §8.5).
fn default_retry(previous_hosts: bool) -> RetryPolicy {
    RetryPolicy {
        retry_on: DEFAULT_RETRY_ON.into(),
        num_retries: 2,
        retry_host_predicate: if previous_hosts {
            vec![PREVIOUS_HOSTS.into()]
        } else {
            Vec::new()
        },
        host_selection_retry_max_attempts: 5,
        ..RetryPolicy::default()
    }
}

fn retry_policy(r: Option<&crate::istio::Retries>, hashing: bool) -> Option<RetryPolicy> {
    let Some(r) = r else {
        return Some(default_retry(!hashing));
    };
    if r.attempts <= 0 {
        return None;
    }
    let mut p = default_retry(!hashing);
    p.num_retries = u32::try_from(r.attempts).unwrap_or(u32::MAX);
    if let Some(on) = &r.retry_on {
        let mut tokens = Vec::new();
        for t in on.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match t.parse::<u16>() {
                Ok(code) if (100..600).contains(&code) => p.retriable_status_codes.push(code),
                _ => tokens.push(t.to_owned()),
            }
        }
        if !p.retriable_status_codes.is_empty()
            && !tokens.iter().any(|t| t == "retriable-status-codes")
        {
            tokens.push("retriable-status-codes".into());
        }
        p.retry_on = tokens.join(",");
    }
    p.per_try_timeout = r.per_try_timeout.filter(|d| !d.is_zero());
    match r.retry_ignore_previous_hosts {
        Some(false) => p.retry_host_predicate.clear(),
        Some(true) if p.retry_host_predicate.is_empty() => {
            p.retry_host_predicate.push(PREVIOUS_HOSTS.into());
        }
        _ => {}
    }
    if let Some(b) = r.backoff.filter(|d| !d.is_zero()) {
        p.retry_back_off = Some(BackOff {
            base_interval: b,
            max_interval: None,
        });
    }
    Some(p)
}

fn fraction(percent: f64) -> FractionalPercent {
    FractionalPercent {
        numerator: (percent.clamp(0.0, 100.0) * 10_000.0).round() as u32,
        denominator: Denominator::Million,
    }
}

fn percentage_json(p: f64) -> Value {
    let f = fraction(p);
    json!({"numerator": f.numerator, "denominator": "MILLION"})
}

/// The per-route config of `envoy.filters.http.fault` (SEMANTICS.md §7.2).
fn fault_config(f: &Fault) -> Option<Value> {
    let mut out = serde_json::Map::new();
    if let Some(d) = &f.delay {
        let mut v = json!({"fixed_delay": mesh_core::config::duration::format(d.fixed_delay)});
        if let Some(p) = d.percentage {
            v["percentage"] = percentage_json(p);
        }
        out.insert("delay".into(), v);
    }
    if let Some(a) = &f.abort {
        let mut v = match a.status {
            AbortStatus::Http(s) => json!({"http_status": s}),
            AbortStatus::Grpc(c) => json!({"grpc_status": c}),
        };
        if let Some(p) = a.percentage {
            v["percentage"] = percentage_json(p);
        }
        out.insert("abort".into(), v);
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// The per-route config of `envoy.filters.http.cors` (Envoy's `CorsPolicy`).
fn cors_config(c: &CorsPolicy) -> Value {
    let origins: Vec<Value> = c
        .allow_origins
        .iter()
        .map(|m| match m {
            StringMatch::Exact(s) => json!({"exact": s}),
            StringMatch::Prefix(s) | StringMatch::SegmentPrefix(s) => json!({"prefix": s}),
            StringMatch::Regex(s) => json!({"safe_regex": {"regex": s}}),
            StringMatch::Present => json!({"safe_regex": {"regex": ".*"}}),
        })
        .collect();
    let mut v = json!({
        "allow_origin_string_match": origins,
        "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
    });
    for (k, list) in [
        ("allow_methods", &c.allow_methods),
        ("allow_headers", &c.allow_headers),
        ("expose_headers", &c.expose_headers),
    ] {
        if !list.is_empty() {
            v[k] = json!(list.join(","));
        }
    }
    if let Some(age) = c.max_age {
        v["max_age"] = json!(age.as_secs().to_string());
    }
    if let Some(b) = c.allow_credentials {
        v["allow_credentials"] = json!(b);
    }
    v
}

fn is_authority(k: &str) -> bool {
    k.eq_ignore_ascii_case(":authority") || k.eq_ignore_ascii_case("host")
}

/// Header operations → mutations: `set` before `add`, each sorted by key; pseudo-headers and
/// `host` dropped (the authority becomes a host rewrite). Returns the authority, if set.
fn mutations(h: &Headers, out: &mut HeaderMutations) -> Option<String> {
    let keep = |k: &str| !k.starts_with(':') && !k.eq_ignore_ascii_case("host");
    let ops = |o: &HeaderOperations, add: &mut Vec<HeaderValueOption>, rm: &mut Vec<String>| {
        for (k, v) in o.set.iter().filter(|(k, _)| keep(k)) {
            add.push(HeaderValueOption::set(k.clone(), v.clone()));
        }
        for (k, v) in o.add.iter().filter(|(k, _)| keep(k)) {
            add.push(HeaderValueOption {
                append_action: AppendAction::AppendIfExistsOrAdd,
                ..HeaderValueOption::append(k.clone(), v.clone())
            });
        }
        rm.extend(o.remove.iter().filter(|k| keep(k)).cloned());
    };
    ops(
        &h.request,
        &mut out.request_headers_to_add,
        &mut out.request_headers_to_remove,
    );
    ops(
        &h.response,
        &mut out.response_headers_to_add,
        &mut out.response_headers_to_remove,
    );
    let find = |m: &BTreeMap<String, String>| {
        m.iter()
            .find(|(k, _)| is_authority(k))
            .map(|(_, v)| v.clone())
    };
    find(&h.request.set).or_else(|| find(&h.request.add))
}

/// The route of one rule, with a catch-all match (the caller sets the match and name).
fn rule_route(
    reg: &Registry<'_>,
    vs: &VirtualService,
    rule: &HttpRoute,
    ctx: &Context<'_>,
) -> Route {
    let ns = &vs.meta.namespace;
    let mut headers = HeaderMutations::default();
    let route_authority = mutations(&rule.headers, &mut headers);
    let action = if let Some(rd) = &rule.redirect {
        let mut a = RedirectAction {
            scheme_redirect: rd.scheme.clone(),
            host_redirect: rd.authority.clone(),
            port_redirect: rd.port.filter(|p| *p != 0),
            response_code: match rd.code {
                302 => RedirectCode::Found,
                303 => RedirectCode::SeeOther,
                307 => RedirectCode::TemporaryRedirect,
                308 => RedirectCode::PermanentRedirect,
                _ => RedirectCode::MovedPermanently,
            },
            ..RedirectAction::default()
        };
        if rd.port_from_request {
            a.port_redirect = Some(ctx.port);
        }
        let scheme = rd.scheme.as_deref();
        if (a.port_redirect == Some(80) && scheme.is_none_or(|s| s == "http"))
            || (a.port_redirect == Some(443) && scheme == Some("https"))
        {
            a.port_redirect = None;
        }
        a.path_redirect = match (&rd.prefix_rewrite, &rd.uri, &rd.uri_regex) {
            (Some(p), _, _) => Some(PathRedirect::Prefix(p.clone())),
            (None, Some(u), _) => Some(PathRedirect::Path(u.clone())),
            (None, None, Some((pattern, substitution))) => {
                Some(PathRedirect::Regex(RegexRewrite {
                    pattern: pattern.clone(),
                    substitution: substitution.clone(),
                }))
            }
            (None, None, None) => None,
        };
        Action::Redirect(a)
    } else if let Some(d) = &rule.direct_response {
        Action::DirectResponse(DirectResponseAction {
            status: d.status,
            body: d.body.clone(),
        })
    } else {
        let dests: Vec<_> = rule.route.iter().collect();
        let hashes: Vec<_> = dests
            .iter()
            .filter_map(|d| reg.hash_policy(&d.destination, ns, ctx.port))
            .collect();
        let cluster = if dests.len() == 1 {
            let d = dests[0];
            let authority = mutations(&d.headers, &mut headers);
            let spec = ClusterSpecifier::Cluster(reg.cluster_name(&d.destination, ns, ctx.port));
            (spec, authority)
        } else {
            let clusters = dests
                .iter()
                .filter(|d| d.weight > 0)
                .map(|d| {
                    let mut cw = ClusterWeight {
                        name: reg.cluster_name(&d.destination, ns, ctx.port),
                        weight: d.weight,
                        ..ClusterWeight::default()
                    };
                    cw.host_rewrite_literal = mutations(&d.headers, &mut cw.headers);
                    cw
                })
                .collect();
            (
                ClusterSpecifier::WeightedClusters(WeightedClusters {
                    clusters,
                    ..WeightedClusters::default()
                }),
                None,
            )
        };
        let mut a = RouteAction::new(cluster.0);
        if dests
            .iter()
            .any(|d| d.destination.host == crate::istio::gateway_api::INVALID_BACKEND)
        {
            // The Gateway API's answer for a backend that cannot be used.
            a.cluster_not_found_response_code = 500;
        }
        let timeout = rule.timeout.unwrap_or(Duration::ZERO);
        a.timeout = Some(timeout);
        a.max_grpc_timeout = Some(timeout);
        let hashing_single = dests.len() == 1 && !hashes.is_empty();
        a.retry_policy = retry_policy(rule.retries.as_ref(), hashing_single);
        for h in hashes {
            if !a.hash_policy.contains(&h) {
                a.hash_policy.push(h);
            }
        }
        for m in &rule.mirrors {
            if m.percentage == Some(0.0) {
                continue;
            }
            a.request_mirror_policies.push(RequestMirrorPolicy {
                cluster: reg.cluster_name(&m.destination, ns, ctx.port),
                runtime_fraction: m.percentage.map(|p| RuntimeFraction {
                    default_value: fraction(p),
                    runtime_key: String::new(),
                }),
                ..RequestMirrorPolicy::default()
            });
        }
        a.prefix_rewrite.clone_from(&rule.rewrite.uri);
        a.regex_rewrite = rule
            .rewrite
            .uri_regex
            .as_ref()
            .map(|(pattern, substitution)| RegexRewrite {
                pattern: pattern.clone(),
                substitution: substitution.clone(),
            });
        a.host_rewrite = rule
            .rewrite
            .authority
            .clone()
            .or(route_authority)
            .or(cluster.1)
            .map(HostRewrite::Literal);
        Action::Route(a)
    };
    let mut r = Route::new(RouteMatch::new(PathMatch::Prefix("/".into())), action);
    r.headers = headers;
    if let Some(f) = rule.fault.as_ref().and_then(fault_config) {
        r.typed_per_filter_config.insert(FAULT_FILTER.into(), f);
    }
    if let Some(c) = &rule.cors {
        r.typed_per_filter_config
            .insert(CORS_FILTER.into(), cors_config(c));
    }
    r
}

/// The tracing pilot configures on every connection manager when no Telemetry resource says
/// otherwise: meshConfig `enableTracing` (default true) with `PILOT_TRACE_SAMPLING`'s 1%.
fn istio_tracing() -> mesh_core::config::Tracing {
    mesh_core::config::Tracing {
        random_sampling: 1.0,
        ..mesh_core::config::Tracing::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_hosts_intersect_both_ways() {
        assert_eq!(
            server_host_match("*", "gw", "a.com", "ns").as_deref(),
            Some("a.com")
        );
        assert_eq!(
            server_host_match("*.a.com", "gw", "*", "ns").as_deref(),
            Some("*.a.com")
        );
        assert_eq!(server_host_match("other/*", "gw", "a.com", "ns"), None);
        assert_eq!(
            server_host_match("./a.com", "ns", "a.com", "ns").as_deref(),
            Some("a.com")
        );
    }

    #[test]
    fn alt_names_follow_namespaces() {
        assert_eq!(
            alt_names(
                "reviews.default.svc.cluster.local",
                "default",
                "cluster.local"
            ),
            [
                "reviews.default.svc.cluster.local",
                "reviews",
                "reviews.default",
                "reviews.default.svc"
            ]
        );
        assert_eq!(
            alt_names("reviews.prod.svc.cluster.local", "default", "cluster.local").len(),
            3
        );
        assert_eq!(
            alt_names("www.google.com", "default", "cluster.local").len(),
            1
        );
    }
}
