//! The captured sidecar (SEMANTICS.md §10): Istio's listener layout for a proxy behind the
//! iptables capture, names included, so that a config dump reads like `istioctl proxy-config
//! listener`.
//!
//! - `virtualOutbound` (0.0.0.0:15001, `use_original_dst`): hands each connection to the
//!   listener for its original destination; keeps the rest: `virtualOutbound-blackhole` for
//!   destination port 15001 (a loop), `virtualOutbound-catchall-tcp` to `PassthroughCluster`
//!   (ALLOW_ANY) or `BlackHoleCluster` (REGISTRY_ONLY).
//! - `0.0.0.0_<port>` per HTTP service port (not bound): the connection manager with route
//!   configuration `<port>` (a virtual host per service on the port, the catch-all `allow_any`
//!   or `block_all` last).
//! - `<VIP>_<port>` per TCP service port with a virtual IP, else `0.0.0.0_<port>` (not bound):
//!   `tcp_proxy` to `outbound|<port>||<host>`, or a chain per VirtualService `tcp[]` match
//!   (destination subnets, weighted destinations).
//! - `virtualInbound` (0.0.0.0:15006, `original_dst`): a chain per port of the workload the
//!   proxy's labels select (`0.0.0.0_<targetPort>`, to `inbound|<targetPort>||`, an
//!   `ORIGINAL_DST` cluster connecting from 127.0.0.6), `virtualInbound-blackhole` for port
//!   15006, and `virtualInbound` passing the rest through (`InboundPassthroughClusterIpv4`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use mesh_core::config::{
    Action, Cluster, ClusterLoadAssignment, CommonTlsContext, DataSource, DirectResponseAction,
    DiscoveryType, DownstreamTlsContext, FilterChain, FilterChainMatch, HttpConnectionManager,
    LbPolicy, Listener, ListenerFilter, ListenerFilterKind, PathMatch, PortRange, Route,
    RouteAction, RouteConfiguration, RouteMatch, TcpProxy, TlsCertificate, ValidationContext,
    VirtualHost,
};

use super::route::{outbound_hcm, sidecar_routes};
use super::{CONNECT_TIMEOUT, Registry};
use crate::envoy::Cx;
use crate::istio::{
    L4Match, MtlsMode, OutboundTrafficPolicy, VirtualService, cidr, effective_mode, fqdn,
};

/// Istio's outbound capture port.
pub(super) const OUTBOUND_PORT: u16 = 15001;
/// Istio's inbound capture port.
pub(super) const INBOUND_PORT: u16 = 15006;
const PASSTHROUGH: &str = "PassthroughCluster";
const BLACKHOLE: &str = "BlackHoleCluster";
const INBOUND_PASSTHROUGH: &str = "InboundPassthroughClusterIpv4";
/// The source address of the proxy's inbound connections, which the capture lets through.
const INBOUND_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6));
const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// Istio's root namespace: a PeerAuthentication there without a selector is mesh-wide.
const ROOT_NAMESPACE: &str = "istio-system";

/// The captured sidecar's listeners and the clusters they add to the services'.
pub(super) fn captured(
    cx: &mut Cx,
    reg: &Registry<'_>,
    labels: &BTreeMap<String, String>,
) -> (Vec<Listener>, Vec<Cluster>) {
    let policy = reg.opts.outbound_traffic_policy;
    let catchall = match policy {
        OutboundTrafficPolicy::AllowAny => PASSTHROUGH,
        OutboundTrafficPolicy::RegistryOnly => BLACKHOLE,
    };
    let mut listeners = vec![virtual_outbound(catchall)];

    // HTTP ports: one listener each, every service on the port in its routes.
    let http_ports: BTreeSet<u16> = reg
        .services
        .iter()
        .flat_map(|s| s.se.ports.iter())
        .filter(|p| p.is_http() && !p.is_sniffed())
        .map(|p| p.number)
        .collect();
    for &port in &http_ports {
        let mut rc = sidecar_routes(cx, reg, labels, port.to_string(), Some(port));
        rc.virtual_hosts.push(catchall_vhost(policy));
        let mut chain = FilterChain::http(outbound_hcm(rc, format!("outbound_0.0.0.0_{port}")));
        chain.name = format!("0.0.0.0_{port}");
        let mut l = Listener::new(
            format!("0.0.0.0_{port}"),
            SocketAddr::new(ANY, port),
            vec![chain],
        );
        l.bind_to_port = false;
        listeners.push(l);
    }

    // TCP ports, and ports whose protocol is sniffed: by virtual IP, else on the port.
    let mut taken: BTreeSet<SocketAddr> = http_ports
        .iter()
        .map(|p| SocketAddr::new(ANY, *p))
        .collect();
    for s in &reg.services {
        let vips: Vec<IpAddr> =
            s.se.addresses
                .iter()
                .filter_map(|a| cidr(a))
                .filter(|c| c.address_prefix.is_ipv4() && c.prefix_len == 32)
                .map(|c| c.address_prefix)
                .collect();
        let vs = mesh_vs(reg, &s.host);
        for port in s.se.ports.iter().filter(|p| !p.is_http() || p.is_sniffed()) {
            let addrs: Vec<IpAddr> = if vips.is_empty() {
                vec![ANY]
            } else {
                vips.clone()
            };
            for ip in addrs {
                let address = SocketAddr::new(ip, port.number);
                if !taken.insert(address) {
                    cx.warn(
                        s.se.meta.path("ServiceEntry", "spec.ports"),
                        format!(
                            "{address} already has an outbound listener; TCP port {} of {} is not served there",
                            port.number, s.host
                        ),
                    );
                    continue;
                }
                let default = format!("outbound|{}||{}", port.number, s.host);
                let chains = match vs {
                    Some(vs) => tcp_chains(reg, vs, port.number, labels),
                    None => Vec::new(),
                };
                let mut chains = if chains.is_empty() {
                    vec![FilterChain::tcp(TcpProxy::to_cluster(&default, &default))]
                } else {
                    chains
                };
                let name = format!("{ip}_{}", port.number);
                let mut filters = Vec::new();
                if port.is_sniffed() {
                    // HTTP, told by the inspector, goes to the port's routes.
                    let mut rc = sidecar_routes(
                        cx,
                        reg,
                        labels,
                        format!("{}:{}", s.host, port.number),
                        Some(port.number),
                    );
                    rc.virtual_hosts.push(catchall_vhost(policy));
                    let mut http = FilterChain::http(outbound_hcm(
                        rc,
                        format!("outbound_{ip}_{}", port.number),
                    ));
                    http.name.clone_from(&name);
                    http.filter_chain_match.application_protocols = http_alpn();
                    chains.insert(0, http);
                    filters.push(ListenerFilter::new(ListenerFilterKind::HttpInspector));
                }
                let mut l = Listener::new(name, address, chains);
                l.bind_to_port = false;
                l.listener_filters = filters;
                listeners.push(l);
            }
        }
    }

    // Inbound: the ports of the workload the labels select.
    let mut inbound: BTreeMap<u16, Proto> = BTreeMap::new();
    if !labels.is_empty() {
        for s in &reg.services {
            for e in &s.endpoints {
                if !labels.iter().all(|(k, v)| e.labels.get(k) == Some(v)) {
                    continue;
                }
                for port in &s.se.ports {
                    let target = e
                        .ports
                        .get(&port.name)
                        .copied()
                        .or(port.target_port)
                        .unwrap_or(port.number);
                    let proto = if port.is_sniffed() {
                        Proto::Sniffed
                    } else if port.is_http() {
                        Proto::Http
                    } else {
                        Proto::Tcp
                    };
                    inbound.entry(target).or_insert(proto);
                }
            }
        }
    }
    listeners.push(virtual_inbound(reg, labels, &inbound));

    let mut clusters = vec![
        original_dst(PASSTHROUGH, None),
        Cluster {
            name: BLACKHOLE.into(),
            connect_timeout: CONNECT_TIMEOUT,
            load_assignment: Some(ClusterLoadAssignment {
                cluster_name: BLACKHOLE.into(),
                endpoints: Vec::new(),
                overprovisioning_factor: 140,
            }),
            ..Cluster::default()
        },
        original_dst(INBOUND_PASSTHROUGH, Some(INBOUND_SOURCE)),
    ];
    for port in inbound.keys() {
        clusters.push(original_dst(&inbound_cluster(*port), Some(INBOUND_SOURCE)));
    }
    (listeners, clusters)
}

/// How an inbound port is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Http,
    Tcp,
    /// Told apart per connection by the HTTP inspector.
    Sniffed,
}

/// The protocols the HTTP inspector reports for HTTP.
fn http_alpn() -> Vec<String> {
    vec!["http/1.1".into(), "h2c".into(), "http/1.0".into()]
}

/// The ports not in `ports`, as ranges (where a listener filter is disabled).
fn other_ports(ports: &BTreeSet<u16>) -> Vec<PortRange> {
    let mut out = Vec::new();
    let mut start = 0u32;
    for &p in ports {
        if u32::from(p) > start {
            out.push(PortRange {
                start,
                end: u32::from(p),
            });
        }
        start = u32::from(p) + 1;
    }
    if start < 65536 {
        out.push(PortRange { start, end: 65536 });
    }
    out
}

fn inbound_cluster(port: u16) -> String {
    format!("inbound|{port}||")
}

fn original_dst(name: &str, source: Option<IpAddr>) -> Cluster {
    Cluster {
        name: name.into(),
        discovery_type: DiscoveryType::OriginalDst,
        lb_policy: LbPolicy::ClusterProvided,
        connect_timeout: CONNECT_TIMEOUT,
        upstream_bind_config: source,
        ..Cluster::default()
    }
}

fn tcp_chain(name: &str, cluster: &str) -> FilterChain {
    let mut c = FilterChain::tcp(TcpProxy::to_cluster(cluster, cluster));
    c.name = name.into();
    c
}

fn virtual_outbound(catchall: &str) -> Listener {
    let mut blackhole = tcp_chain("virtualOutbound-blackhole", BLACKHOLE);
    blackhole.filter_chain_match.destination_port = Some(OUTBOUND_PORT);
    let chains = vec![
        blackhole,
        tcp_chain("virtualOutbound-catchall-tcp", catchall),
    ];
    let mut l = Listener::new(
        "virtualOutbound",
        SocketAddr::new(ANY, OUTBOUND_PORT),
        chains,
    );
    l.use_original_dst = true;
    l
}

/// The TLS an inbound chain terminates for mutual TLS: the workload identity (Istio's
/// agent's files), clients with a certificate from the mesh root.
fn inbound_mtls(reg: &Registry<'_>) -> DownstreamTlsContext {
    let dir = reg.opts.identity_dir.trim_end_matches('/');
    let file = |f: &str| DataSource::Filename(format!("{dir}/{f}"));
    DownstreamTlsContext {
        common_tls_context: CommonTlsContext {
            tls_certificates: vec![TlsCertificate {
                certificate_chain: file("cert-chain.pem"),
                private_key: file("key.pem"),
            }],
            validation_context: Some(ValidationContext {
                trusted_ca: Some(file("root-cert.pem")),
                match_typed_subject_alt_names: Vec::new(),
            }),
            ..CommonTlsContext::default()
        },
        require_client_certificate: true,
        ..DownstreamTlsContext::default()
    }
}

/// `virtualInbound`: per workload port, the chains its PeerAuthentication mode allows:
/// STRICT a mutual-TLS chain (the TLS inspector sees `tls`), DISABLE the plain-text chains,
/// PERMISSIVE both.
fn virtual_inbound(
    reg: &Registry<'_>,
    labels: &BTreeMap<String, String>,
    ports: &BTreeMap<u16, Proto>,
) -> Listener {
    // Without any PeerAuthentication, inbound is plain text: mutual TLS needs the workload
    // identity (`--identity-dir`), which a proxy run outside Istio may not have. With one,
    // Istio's rules apply (PERMISSIVE where none selects the workload).
    let mode = |port: u16| {
        if reg.res.peer_authentications.is_empty() {
            return MtlsMode::Disable;
        }
        effective_mode(
            &reg.res.peer_authentications,
            &reg.opts.namespace,
            labels,
            ROOT_NAMESPACE,
            port,
        )
    };
    let mut blackhole = tcp_chain("virtualInbound-blackhole", BLACKHOLE);
    blackhole.filter_chain_match.destination_port = Some(INBOUND_PORT);
    let mut chains = vec![blackhole];
    let mut plain_only = BTreeSet::new();
    let mut any_tls = false;
    let raw = |c: &mut FilterChain, both: bool| {
        if both {
            c.filter_chain_match.transport_protocol = Some("raw_buffer".into());
        }
    };
    for (&port, &proto) in ports {
        let m = mode(port);
        let (tls_ok, plain_ok) = (m != MtlsMode::Disable, m != MtlsMode::Strict);
        let cluster = inbound_cluster(port);
        let name = format!("0.0.0.0_{port}");
        if tls_ok {
            any_tls = true;
            let mut chain = if proto == Proto::Http {
                FilterChain::http(inbound_hcm(port, &cluster))
            } else {
                FilterChain::tcp(TcpProxy::to_cluster(&cluster, &cluster))
            };
            chain.name.clone_from(&name);
            chain.filter_chain_match.destination_port = Some(port);
            chain.filter_chain_match.transport_protocol = Some("tls".into());
            chain.transport_socket = Some(inbound_mtls(reg));
            chains.push(chain);
        } else {
            plain_only.insert(port);
        }
        if !plain_ok {
            continue;
        }
        if proto != Proto::Tcp {
            let mut chain = FilterChain::http(inbound_hcm(port, &cluster));
            chain.name.clone_from(&name);
            chain.filter_chain_match.destination_port = Some(port);
            if proto == Proto::Sniffed {
                chain.filter_chain_match.application_protocols = http_alpn();
            }
            raw(&mut chain, tls_ok);
            chains.push(chain);
        }
        if proto != Proto::Http {
            let mut chain = FilterChain::tcp(TcpProxy::to_cluster(&cluster, &cluster));
            chain.name = name;
            chain.filter_chain_match.destination_port = Some(port);
            raw(&mut chain, tls_ok);
            chains.push(chain);
        }
    }
    // Ports with no service: passed through, as the workload-wide mode allows.
    let m = mode(0);
    if m != MtlsMode::Disable {
        any_tls = true;
        let mut chain = tcp_chain("virtualInbound-tls", INBOUND_PASSTHROUGH);
        chain.filter_chain_match.transport_protocol = Some("tls".into());
        chain.transport_socket = Some(inbound_mtls(reg));
        chains.push(chain);
    }
    if m != MtlsMode::Strict {
        let mut chain = tcp_chain("virtualInbound", INBOUND_PASSTHROUGH);
        raw(&mut chain, m != MtlsMode::Disable);
        chains.push(chain);
    }
    let mut l = Listener::new("virtualInbound", SocketAddr::new(ANY, INBOUND_PORT), chains);
    l.listener_filters = vec![ListenerFilter::new(ListenerFilterKind::OriginalDst)];
    if any_tls {
        // Not where only plain text is served: a server-first protocol there would wait.
        l.listener_filters.push(ListenerFilter {
            kind: ListenerFilterKind::TlsInspector,
            disabled_ports: plain_only
                .iter()
                .map(|p| PortRange {
                    start: u32::from(*p),
                    end: u32::from(*p) + 1,
                })
                .collect(),
        });
    }
    let sniffed: BTreeSet<u16> = ports
        .iter()
        .filter(|(port, p)| **p == Proto::Sniffed && mode(**port) != MtlsMode::Strict)
        .map(|(port, _)| *port)
        .collect();
    if !sniffed.is_empty() {
        // Only where a port is sniffed: elsewhere the inspector would hold a connection whose
        // server speaks first.
        l.listener_filters.push(ListenerFilter {
            kind: ListenerFilterKind::HttpInspector,
            disabled_ports: other_ports(&sniffed),
        });
    }
    l
}

/// The inbound connection manager of a port: every request to the workload (Istio's
/// `inbound|http|<port>` virtual host, timeout 0).
fn inbound_hcm(port: u16, cluster: &str) -> HttpConnectionManager {
    let mut a = RouteAction::cluster(cluster);
    a.timeout = Some(Duration::ZERO);
    a.max_grpc_timeout = Some(Duration::ZERO);
    let mut route = Route::new(
        RouteMatch::new(PathMatch::Prefix("/".into())),
        Action::Route(a),
    );
    route.name = "default".into();
    let mut rc = RouteConfiguration::new(format!("inbound|{port}||"));
    rc.validate_clusters = Some(false);
    rc.virtual_hosts
        .push(VirtualHost::new(format!("inbound|http|{port}"), ["*"]).with_route(route));
    HttpConnectionManager {
        stat_prefix: format!("inbound_0.0.0.0_{port}"),
        normalize_path: true,
        ..HttpConnectionManager::with_routes(rc)
    }
}

/// The last virtual host of an outbound route configuration: `allow_any` to
/// `PassthroughCluster`, or `block_all` answering 502.
fn catchall_vhost(policy: OutboundTrafficPolicy) -> VirtualHost {
    let (name, action) = match policy {
        OutboundTrafficPolicy::AllowAny => {
            let mut a = RouteAction::cluster(PASSTHROUGH);
            a.timeout = Some(Duration::ZERO);
            a.max_grpc_timeout = Some(Duration::ZERO);
            ("allow_any", Action::Route(a))
        }
        OutboundTrafficPolicy::RegistryOnly => (
            "block_all",
            Action::DirectResponse(DirectResponseAction {
                status: 502,
                body: None,
            }),
        ),
    };
    let mut route = Route::new(RouteMatch::new(PathMatch::Prefix("/".into())), action);
    route.name = name.into();
    VirtualHost::new(name, ["*"]).with_route(route)
}

/// The mesh-bound VirtualService that routes `host` (the first, as pilot takes it).
fn mesh_vs<'a>(reg: &Registry<'a>, host: &str) -> Option<&'a VirtualService> {
    reg.res.virtual_services.iter().find(|vs| {
        (vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh"))
            && !vs.tcp.is_empty()
            && vs.hosts.iter().any(|h| {
                let h = fqdn(h, &vs.meta.namespace, &reg.opts.domain_suffix);
                h == host || super::wildcard_covers(&h, host)
            })
    })
}

/// The chains of a VirtualService's `tcp[]` rules on `port`: one per match block that applies
/// to this sidecar (in order; a block without subnets ends the list, as it matches every
/// connection).
fn tcp_chains(
    reg: &Registry<'_>,
    vs: &VirtualService,
    port: u16,
    labels: &BTreeMap<String, String>,
) -> Vec<FilterChain> {
    let ns = &vs.meta.namespace;
    let mut out: Vec<FilterChain> = Vec::new();
    for rule in &vs.tcp {
        let clusters = super::tcp_clusters(reg, &rule.route, ns, port);
        let stat_prefix = clusters.first().map(|c| c.name.clone()).unwrap_or_default();
        let blocks: Vec<Option<&L4Match>> = if rule.matches.is_empty() {
            vec![None]
        } else {
            rule.matches.iter().map(Some).collect()
        };
        for m in blocks {
            if m.is_some_and(|m| !applies(m, port, labels, &reg.opts.namespace)) {
                continue;
            }
            let mut chain_match = FilterChainMatch::default();
            if let Some(m) = m {
                chain_match.prefix_ranges = m
                    .destination_subnets
                    .iter()
                    .filter_map(|s| cidr(s))
                    .collect();
            }
            if out
                .iter()
                .any(|c| c.filter_chain_match.same_rules(&chain_match))
            {
                continue; // an earlier rule already takes these connections
            }
            let catch_all = chain_match.prefix_ranges.is_empty();
            let mut chain = FilterChain::tcp(TcpProxy {
                stat_prefix: stat_prefix.clone(),
                clusters: clusters.clone(),
                ..TcpProxy::default()
            });
            chain.filter_chain_match = chain_match;
            out.push(chain);
            if catch_all {
                return out;
            }
        }
    }
    out
}

/// Whether a `tcp[].match[]` block applies to this sidecar's listener on `port`.
fn applies(m: &L4Match, port: u16, labels: &BTreeMap<String, String>, namespace: &str) -> bool {
    m.port.is_none_or(|p| p == port)
        && (m.gateways.is_empty() || m.gateways.iter().any(|g| g == "mesh"))
        && m.source_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        && m.source_namespace.as_deref().is_none_or(|n| n == namespace)
}
