//! Istio resources → [`Bootstrap`] (SEMANTICS.md §8): the service registry, cross-resource
//! checks and clusters. Routes, virtual hosts and listeners are in [`route`].

mod route;
mod sidecar;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use mesh_core::config::{
    Bootstrap, CircuitBreakers, Cluster, ClusterLoadAssignment, CommonTlsContext, DataSource,
    DiscoveryType, FieldError, HashOn, HashPolicy, LbEndpoint, LbPolicy, Locality,
    LocalityLbEndpoints, NetworkFilter, SanMatcher, SanType, StringMatcher, Thresholds,
    TlsCertificate, UpstreamProtocol, UpstreamTlsContext, ValidationContext,
};

use super::{
    Destination, DestinationRule, HashKey, LoadBalancer, Loaded, Options, Policy, Resolution,
    Resources, Role, ServiceEntry, ServicePort, SimpleLb, Subset, VirtualService, fqdn,
};
use crate::envoy::Cx;
use crate::error::LoadError;

/// Istio's connect timeout (meshConfig `connectTimeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Istio's circuit-breaker limits: 2³²−1.
const UNLIMITED: u32 = u32::MAX;

/// Translates Istio resources into the config of one proxy (SEMANTICS.md §8).
///
/// The result passes [`Bootstrap::validate`]. Warnings list what was dropped or cannot be
/// honoured (services with `resolution: NONE`, destinations without a ServiceEntry, duplicate
/// hosts and domains, non-HTTP gateway servers).
///
/// # Errors
/// [`LoadError::Invalid`] when the resources are inconsistent (a route to an undefined subset,
/// a reference to a Gateway that does not exist, weights that add up to 0, a STATIC endpoint
/// that is not an IP address), each problem with its resource and field path; also when the
/// translated config fails [`Bootstrap::validate`] (paths prefixed `translated config:`).
pub fn translate(res: &Resources, opts: &Options) -> Result<Loaded<Bootstrap>, LoadError> {
    let mut cx = Cx::default();
    // Gateway API objects are served as the Istio resources they stand for.
    let merged;
    let res = if res.gateway_api.is_empty() {
        res
    } else {
        let c = super::gateway_api::convert(&mut cx, res, opts);
        let mut m = res.clone();
        m.gateways.extend(c.gateways);
        m.virtual_services.extend(c.virtual_services);
        m.service_entries.extend(c.service_entries);
        m.secrets.extend(c.secrets);
        merged = m;
        &merged
    };
    let reg = Registry::build(&mut cx, res, opts);
    reg.check(&mut cx);
    let mut b = Bootstrap {
        clusters: reg.clusters(&mut cx),
        ..Bootstrap::default()
    };
    match &opts.role {
        Role::Sidecar {
            outbound_port,
            labels,
        } => b
            .listeners
            .push(route::sidecar(&mut cx, &reg, *outbound_port, labels)),
        Role::CapturedSidecar { labels } => {
            let (listeners, clusters) = sidecar::captured(&mut cx, &reg, labels);
            b.listeners = listeners;
            b.clusters.extend(clusters);
        }
        Role::Gateway { labels, port_map } => {
            b.listeners = route::gateways(&mut cx, &reg, labels, port_map);
        }
    }
    if let Some(sink) = &opts.access_log {
        let log = mesh_core::config::AccessLog {
            sink: sink.clone(),
            format: Some(super::ISTIO_ACCESS_LOG_FORMAT.into()),
        };
        for fc in b.listeners.iter_mut().flat_map(|l| l.chains_mut()) {
            match &mut fc.filter {
                NetworkFilter::HttpConnectionManager(h) => h.access_log.push(log.clone()),
                NetworkFilter::TcpProxy(t) => t.access_log.push(log.clone()),
            }
        }
    }
    if !matches!(opts.role, Role::CapturedSidecar { .. }) {
        // Only the captured layout has listeners per virtual IP and TCP proxies.
        for se in &res.service_entries {
            if !se.addresses.is_empty() {
                cx.warn(
                    se.meta.path("ServiceEntry", "spec.addresses"),
                    "addresses (virtual IPs) serve only the captured sidecar (--role sidecar without --outbound-port); here services are matched by Host",
                );
            }
        }
        for vs in &res.virtual_services {
            if !vs.tcp.is_empty() {
                cx.warn(
                    vs.meta.path("VirtualService", "spec.tcp"),
                    "TCP routes serve only the captured sidecar (--role sidecar without --outbound-port), ignored here",
                );
            }
        }
    }
    if !matches!(opts.role, Role::Gateway { .. }) {
        for vs in &res.virtual_services {
            if !vs.tls.is_empty() {
                cx.warn(
                    vs.meta.path("VirtualService", "spec.tls"),
                    "TLS routes serve only gateways' PASSTHROUGH servers here, ignored",
                );
            }
        }
    }
    if !cx.errors.is_empty() {
        return Err(LoadError::Invalid { errors: cx.errors });
    }
    if let Err(e) = b.validate() {
        return Err(LoadError::Invalid {
            errors: e
                .errors
                .into_iter()
                .map(|fe| FieldError {
                    path: format!("translated config: {}", fe.path),
                    message: fe.message,
                })
                .collect(),
        });
    }
    Ok(Loaded {
        value: b,
        warnings: cx.warnings,
    })
}

/// A service: one host of a ServiceEntry.
#[derive(Debug)]
struct Service<'a> {
    host: String,
    se: &'a ServiceEntry,
    endpoints: Vec<Endpoint>,
    dr: Option<&'a DestinationRule>,
}

impl Service<'_> {
    fn http_ports(&self) -> impl Iterator<Item = &ServicePort> {
        self.se.ports.iter().filter(|p| p.is_http())
    }
}

#[derive(Debug, Clone)]
struct Endpoint {
    address: String,
    ports: BTreeMap<String, u16>,
    labels: BTreeMap<String, String>,
    weight: u32,
    locality: String,
    path: String,
}

/// Everything translation looks things up in.
#[derive(Debug)]
pub(super) struct Registry<'a> {
    res: &'a Resources,
    opts: &'a Options,
    services: Vec<Service<'a>>,
    by_host: HashMap<String, usize>,
    /// DestinationRules by resolved host (the first per host).
    drs: Vec<(String, &'a DestinationRule)>,
}

impl<'a> Registry<'a> {
    fn build(cx: &mut Cx, res: &'a Resources, opts: &'a Options) -> Self {
        let suffix = &opts.domain_suffix;
        let mut drs: Vec<(String, &DestinationRule)> = Vec::new();
        for dr in &res.destination_rules {
            let host = fqdn(&dr.host, &dr.meta.namespace, suffix);
            if let Some((_, first)) = drs.iter().find(|(h, _)| *h == host) {
                cx.warn(
                    dr.meta.path("DestinationRule", "spec.host"),
                    format!(
                        "host {host} already has DestinationRule {}.{}; this one is ignored",
                        first.meta.name, first.meta.namespace
                    ),
                );
                continue;
            }
            drs.push((host, dr));
        }
        let mut reg = Registry {
            res,
            opts,
            services: Vec::new(),
            by_host: HashMap::new(),
            drs,
        };
        for se in &res.service_entries {
            let kind = "ServiceEntry";
            let mut endpoints: Vec<Endpoint> = se
                .endpoints
                .iter()
                .enumerate()
                .map(|(i, w)| Endpoint {
                    address: w.address.clone(),
                    ports: w.ports.clone(),
                    labels: w.labels.clone(),
                    weight: w.weight.max(1),
                    locality: w.locality.clone(),
                    path: se.meta.path(kind, &format!("spec.endpoints[{i}].address")),
                })
                .collect();
            if let Some(sel) = &se.workload_selector {
                for we in &res.workload_entries {
                    if we.meta.namespace == se.meta.namespace
                        && sel.iter().all(|(k, v)| we.spec.labels.get(k) == Some(v))
                    {
                        endpoints.push(Endpoint {
                            address: we.spec.address.clone(),
                            ports: we.spec.ports.clone(),
                            labels: we.spec.labels.clone(),
                            weight: we.spec.weight.max(1),
                            locality: we.spec.locality.clone(),
                            path: we.meta.path("WorkloadEntry", "spec.address"),
                        });
                    }
                }
            }
            if se.resolution == Resolution::None {
                cx.warn(
                    se.meta.path(kind, "spec.resolution"),
                    if endpoints.is_empty() {
                        "resolution NONE (original destination) is not supported: its clusters have no endpoints and answer 503"
                    } else {
                        "resolution NONE (original destination) is not supported: the listed endpoints are used as STATIC"
                    },
                );
            }
            if se.resolution == Resolution::DnsRoundRobin {
                cx.warn(
                    se.meta.path(kind, "spec.resolution"),
                    "DNS_ROUND_ROBIN is treated as DNS (STRICT_DNS)",
                );
            }
            for (i, h) in se.hosts.iter().enumerate() {
                let host = fqdn(h, &se.meta.namespace, suffix);
                if let Some(&j) = reg.by_host.get(&host) {
                    let first = reg.services[j].se;
                    cx.warn(
                        se.meta.path(kind, &format!("spec.hosts[{i}]")),
                        format!(
                            "host {host} is already defined by ServiceEntry {}.{}; ignored here",
                            first.meta.name, first.meta.namespace
                        ),
                    );
                    continue;
                }
                let dr = reg.dr_for(&host);
                reg.by_host.insert(host.clone(), reg.services.len());
                reg.services.push(Service {
                    host,
                    se,
                    endpoints: endpoints.clone(),
                    dr,
                });
            }
        }
        reg
    }

    /// The DestinationRule of a host: exact host first, else the longest matching wildcard.
    fn dr_for(&self, host: &str) -> Option<&'a DestinationRule> {
        if let Some((_, dr)) = self.drs.iter().find(|(h, _)| h == host) {
            return Some(dr);
        }
        self.drs
            .iter()
            .filter(|(h, _)| wildcard_covers(h, host))
            .max_by_key(|(h, _)| h.len())
            .map(|(_, dr)| *dr)
    }

    fn service(&self, host: &str) -> Option<&Service<'a>> {
        self.by_host.get(host).map(|&i| &self.services[i])
    }

    /// The cluster name of a destination, with the port rules of SEMANTICS.md §8.4.
    fn cluster_name(&self, d: &Destination, ns: &str, listener_port: u16) -> String {
        let host = fqdn(&d.host, ns, &self.opts.domain_suffix);
        let port = self.dest_port(d, &host, listener_port);
        format!(
            "outbound|{port}|{}|{host}",
            d.subset.as_deref().unwrap_or("")
        )
    }

    fn dest_port(&self, d: &Destination, host: &str, listener_port: u16) -> u16 {
        d.port.unwrap_or_else(|| match self.service(host) {
            Some(s) if s.se.ports.len() == 1 => s.se.ports[0].number,
            _ => listener_port,
        })
    }

    /// The route hash policy for a destination, from its DestinationRule (§8.4).
    fn hash_policy(&self, d: &Destination, ns: &str, listener_port: u16) -> Option<HashPolicy> {
        let host = fqdn(&d.host, ns, &self.opts.domain_suffix);
        let port = self.dest_port(d, &host, listener_port);
        let dr = self
            .service(&host)
            .and_then(|s| s.dr)
            .or_else(|| self.dr_for(&host))?;
        let subset = d
            .subset
            .as_deref()
            .and_then(|n| dr.subsets.iter().find(|s| s.name == n));
        let Some(LoadBalancer::ConsistentHash(ch)) =
            effective(Some(dr), port, subset).load_balancer
        else {
            return None;
        };
        let policy = match ch.key {
            HashKey::Header(h) => HashOn::Header { header_name: h },
            HashKey::Cookie { name, path, ttl } => HashOn::Cookie { name, ttl, path },
            HashKey::SourceIp => HashOn::SourceIp,
            HashKey::QueryParameter(name) => HashOn::QueryParameter { name },
            HashKey::None => return None,
        };
        Some(HashPolicy {
            policy,
            terminal: false,
        })
    }

    /// Cross-resource checks, once per resource (as `istioctl analyze` reports them).
    fn check(&self, cx: &mut Cx) {
        let kind = "VirtualService";
        let mut unknown_hosts: Vec<String> = Vec::new();
        for vs in &self.res.virtual_services {
            let ns = &vs.meta.namespace;
            let mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
            for (i, h) in vs.hosts.iter().enumerate() {
                if mesh && h == "*" {
                    cx.error(
                        vs.meta.path(kind, &format!("spec.hosts[{i}]")),
                        "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                    );
                }
            }
            for (i, g) in vs.gateways.iter().enumerate() {
                self.check_gateway(cx, vs, g, &format!("spec.gateways[{i}]"));
            }
            for (i, rule) in vs.http.iter().enumerate() {
                for (j, m) in rule.matches.iter().enumerate() {
                    for (k, g) in m.gateways.iter().enumerate() {
                        self.check_gateway(
                            cx,
                            vs,
                            g,
                            &format!("spec.http[{i}].match[{j}].gateways[{k}]"),
                        );
                    }
                }
                let dests = rule
                    .route
                    .iter()
                    .enumerate()
                    .map(|(j, r)| {
                        (
                            &r.destination,
                            format!("spec.http[{i}].route[{j}].destination"),
                        )
                    })
                    .chain(
                        rule.mirrors
                            .iter()
                            .map(|m| (&m.destination, format!("spec.http[{i}].{}", m.field))),
                    );
                for (d, p) in dests {
                    let host = fqdn(&d.host, ns, &self.opts.domain_suffix);
                    if d.host.is_empty() || d.host == super::gateway_api::INVALID_BACKEND {
                        continue; // reported by the Gateway API reader
                    }
                    if host.contains('*') {
                        cx.error(
                            vs.meta.path(kind, &format!("{p}.host")),
                            format!("destination host {host:?} must not be a wildcard"),
                        );
                        continue;
                    }
                    if self.service(&host).is_none() && !unknown_hosts.contains(&host) {
                        unknown_hosts.push(host.clone());
                        cx.warn(
                            vs.meta.path(kind, &format!("{p}.host")),
                            format!(
                                "no ServiceEntry defines host {host}: requests routed there get 503"
                            ),
                        );
                    }
                    if let Some(subset) = &d.subset {
                        let dr = self
                            .service(&host)
                            .and_then(|s| s.dr)
                            .or_else(|| self.dr_for(&host));
                        let defined =
                            dr.is_some_and(|dr| dr.subsets.iter().any(|s| &s.name == subset));
                        // Valid to istiod (a DestinationRule may come later): the route
                        // names a cluster that does not exist, and Envoy answers 503 (NC).
                        if !defined {
                            cx.warn(
                                vs.meta.path(kind, &format!("{p}.subset")),
                                match dr {
                                    Some(dr) => format!(
                                        "subset {subset:?} is not defined by DestinationRule {}.{} for host {host}: requests routed there get 503",
                                        dr.meta.name, dr.meta.namespace
                                    ),
                                    None => format!(
                                        "subset {subset:?} is not defined: no DestinationRule for host {host}: requests routed there get 503"
                                    ),
                                },
                            );
                        }
                    }
                }
                if rule.route.len() > 1 {
                    let total: u64 = rule.route.iter().map(|r| u64::from(r.weight)).sum();
                    let p = vs.meta.path(kind, &format!("spec.http[{i}].route"));
                    if total == 0 {
                        cx.error(
                            p,
                            "with more than one destination the weights must add up to more than 0",
                        );
                    } else if total != 100 {
                        cx.warn(
                            p,
                            format!("weights add up to {total}, not 100: each destination gets weight/{total}"),
                        );
                    }
                }
                if let Some(r) = &rule.retries
                    && r.retry_remote_localities
                {
                    cx.warn(
                        vs.meta.path(
                            kind,
                            &format!("spec.http[{i}].retries.retryRemoteLocalities"),
                        ),
                        "retrying in other localities is not supported, ignored",
                    );
                }
            }
        }
    }

    fn check_gateway(&self, cx: &mut Cx, vs: &VirtualService, g: &str, field: &str) {
        if g == "mesh" {
            return;
        }
        let name = resolve_gateway(g, &vs.meta.namespace);
        let exists = self
            .res
            .gateways
            .iter()
            .any(|gw| format!("{}/{}", gw.meta.namespace, gw.meta.name) == name);
        if !exists {
            cx.error(
                vs.meta.path("VirtualService", field),
                format!("gateway {name} is not defined"),
            );
        }
    }

    /// One cluster per service port, and one per DestinationRule subset and port.
    fn clusters(&self, cx: &mut Cx) -> Vec<Cluster> {
        let mut out = Vec::new();
        for s in &self.services {
            for port in &s.se.ports {
                let name = format!("outbound|{}||{}", port.number, s.host);
                out.push(self.cluster(cx, s, port, name, None));
                for subset in s.dr.map_or(&[][..], |dr| &dr.subsets[..]) {
                    let name = format!("outbound|{}|{}|{}", port.number, subset.name, s.host);
                    out.push(self.cluster(cx, s, port, name, Some(subset)));
                }
            }
        }
        out
    }

    fn cluster(
        &self,
        cx: &mut Cx,
        s: &Service<'_>,
        port: &ServicePort,
        name: String,
        subset: Option<&Subset>,
    ) -> Cluster {
        let policy = effective(s.dr, port.number, subset);
        let dns = matches!(s.se.resolution, Resolution::Dns | Resolution::DnsRoundRobin);
        let mut c = Cluster {
            name: name.clone(),
            discovery_type: if dns {
                DiscoveryType::StrictDns
            } else {
                DiscoveryType::Static
            },
            ..Cluster::default()
        };
        apply_policy(&mut c, &policy);
        if let Some(t) = &policy.tls {
            c.transport_socket = self.upstream_tls(t, s, port, subset);
        }
        // Istio's auto mutual TLS, where no DestinationRule says otherwise and mutual TLS is in
        // use (some PeerAuthentication): endpoints labelled `security.istio.io/tlsMode: istio`
        // (they have a sidecar) are reached with ISTIO_MUTUAL, the others in plain text.
        let auto_mtls = policy.tls.is_none() && !self.res.peer_authentications.is_empty();
        if auto_mtls {
            let tls_mode = serde_json::json!({"tlsMode": "istio"});
            let tls_mode = tls_mode.as_object().cloned().unwrap_or_default();
            c.transport_socket_matches = vec![
                mesh_core::config::TransportSocketMatch {
                    name: "tlsMode-istio".into(),
                    match_metadata: tls_mode,
                    transport_socket: Some(self.istio_mutual(s, port, subset, &[])),
                },
                mesh_core::config::TransportSocketMatch {
                    name: "tlsMode-disabled".into(),
                    ..Default::default()
                },
            ];
        }
        if port.is_http2() {
            c.protocol = UpstreamProtocol::Http2;
        }
        // Endpoints: pilot filters them per subset (no Envoy subset LB).
        let mut groups: Vec<LocalityLbEndpoints> = Vec::new();
        let selected = s.endpoints.iter().filter(|e| {
            subset.is_none_or(|ss| ss.labels.iter().all(|(k, v)| e.labels.get(k) == Some(v)))
        });
        let mut any = false;
        for e in selected {
            any = true;
            let ep_port = e
                .ports
                .get(&port.name)
                .copied()
                .or(port.target_port)
                .unwrap_or(port.number);
            if !dns && e.address.parse::<IpAddr>().is_err() {
                // Reported once, on the port-level cluster.
                if subset.is_none() && port == &s.se.ports[0] {
                    cx.error(
                        &e.path,
                        format!(
                            "{:?} is not an IP address (resolution STATIC needs IP addresses; use DNS for names)",
                            e.address
                        ),
                    );
                }
                continue;
            }
            let mut lb = LbEndpoint::new(mesh_core::config::Address {
                host: e.address.clone(),
                port: ep_port,
            });
            lb.load_balancing_weight = e.weight;
            if auto_mtls
                && e.labels
                    .get("security.istio.io/tlsMode")
                    .map(String::as_str)
                    == Some("istio")
            {
                lb.metadata.insert(
                    "envoy.transport_socket_match".into(),
                    serde_json::json!({"tlsMode": "istio"})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            push_endpoint(&mut groups, locality(&e.locality), lb);
        }
        if dns && !any && s.endpoints.is_empty() {
            if s.host.contains('*') {
                cx.warn(
                    s.se.meta.path("ServiceEntry", "spec.hosts"),
                    format!("wildcard host {} cannot be resolved by DNS: cluster {name} has no endpoints", s.host),
                );
            } else {
                let lb = LbEndpoint::new(mesh_core::config::Address {
                    host: s.host.clone(),
                    port: port.target_port.unwrap_or(port.number),
                });
                push_endpoint(&mut groups, Locality::default(), lb);
            }
        }
        c.load_assignment = Some(ClusterLoadAssignment {
            cluster_name: name,
            endpoints: groups,
            overprovisioning_factor: 140,
        });
        c
    }
}

impl Registry<'_> {
    /// Istio's mutual TLS to a sidecar: the workload identity, SNI
    /// `outbound_.<port>_.<subset>_.<host>` and Istio's ALPN.
    fn istio_mutual(
        &self,
        s: &Service<'_>,
        port: &ServicePort,
        subset: Option<&Subset>,
        sans: &[String],
    ) -> UpstreamTlsContext {
        let dir = self.opts.identity_dir.trim_end_matches('/');
        let file = |f: &str| DataSource::Filename(format!("{dir}/{f}"));
        let mut ctx = CommonTlsContext::default();
        ctx.tls_certificates.push(TlsCertificate {
            certificate_chain: file("cert-chain.pem"),
            private_key: file("key.pem"),
        });
        ctx.validation_context = Some(ValidationContext {
            trusted_ca: Some(file("root-cert.pem")),
            match_typed_subject_alt_names: istio_sans(sans),
        });
        ctx.alpn_protocols = if port.is_http2() {
            vec!["istio-peer-exchange".into(), "istio".into(), "h2".into()]
        } else {
            vec!["istio-peer-exchange".into(), "istio".into()]
        };
        UpstreamTlsContext {
            common_tls_context: ctx,
            sni: Some(format!(
                "outbound_.{}_.{}_.{}",
                port.number,
                subset.map_or("", |x| x.name.as_str()),
                s.host
            )),
        }
    }

    /// A DestinationRule's `tls` as the cluster's transport socket (SEMANTICS.md §8.5):
    /// `DISABLE` none; `SIMPLE` the server checked against `caCertificates` (else the system
    /// bundle) and `subjectAltNames`, unless `insecureSkipVerify`; `MUTUAL` with the client
    /// certificate; `ISTIO_MUTUAL` with the workload identity, SNI
    /// `outbound_.<port>_.<subset>_.<host>` and Istio's ALPN.
    fn upstream_tls(
        &self,
        t: &super::ClientTls,
        s: &Service<'_>,
        port: &ServicePort,
        subset: Option<&Subset>,
    ) -> Option<UpstreamTlsContext> {
        let file = |f: &str| DataSource::Filename(f.to_owned());
        let mut ctx = CommonTlsContext::default();
        let sni;
        match t.mode.as_str() {
            "SIMPLE" | "MUTUAL" => {
                if !t.insecure_skip_verify {
                    ctx.validation_context = Some(ValidationContext {
                        trusted_ca: Some(file(
                            t.ca_certificates
                                .as_deref()
                                .unwrap_or(super::SYSTEM_CA_BUNDLE),
                        )),
                        match_typed_subject_alt_names: istio_sans(&t.subject_alt_names),
                    });
                }
                if t.mode == "MUTUAL"
                    && let (Some(cert), Some(key)) = (&t.client_certificate, &t.private_key)
                {
                    ctx.tls_certificates.push(TlsCertificate {
                        certificate_chain: file(cert),
                        private_key: file(key),
                    });
                }
                sni = t.sni.clone().or_else(|| Some(s.host.clone()));
            }
            "ISTIO_MUTUAL" => {
                return Some(self.istio_mutual(s, port, subset, &t.subject_alt_names));
            }
            _ => return None,
        }
        Some(UpstreamTlsContext {
            common_tls_context: ctx,
            sni,
        })
    }
}

/// Istio's `subjectAltNames` as SAN matchers: `spiffe://` names are URI SANs, others DNS.
pub(super) fn istio_sans(names: &[String]) -> Vec<SanMatcher> {
    names
        .iter()
        .map(|n| SanMatcher {
            san_type: if n.starts_with("spiffe://") {
                SanType::Uri
            } else {
                SanType::Dns
            },
            matcher: StringMatcher::exact(n.clone()),
        })
        .collect()
}

/// The clusters of a `tcp[]` or `tls[]` rule's destinations, weighted when there are several.
pub(super) fn tcp_clusters(
    reg: &Registry<'_>,
    route: &[super::RouteDestination],
    ns: &str,
    port: u16,
) -> Vec<mesh_core::config::TcpCluster> {
    route
        .iter()
        .map(|d| mesh_core::config::TcpCluster {
            name: reg.cluster_name(&d.destination, ns, port),
            weight: if route.len() == 1 { 1 } else { d.weight.max(1) },
        })
        .collect()
}

fn push_endpoint(groups: &mut Vec<LocalityLbEndpoints>, loc: Locality, e: LbEndpoint) {
    match groups.iter_mut().find(|g| g.locality == loc) {
        Some(g) => g.lb_endpoints.push(e),
        None => groups.push(LocalityLbEndpoints {
            locality: loc,
            lb_endpoints: vec![e],
            ..LocalityLbEndpoints::default()
        }),
    }
}

/// `region/zone/subzone`.
fn locality(s: &str) -> Locality {
    let mut parts = s.splitn(3, '/');
    Locality {
        region: parts.next().unwrap_or("").to_owned(),
        zone: parts.next().unwrap_or("").to_owned(),
        sub_zone: parts.next().unwrap_or("").to_owned(),
    }
}

/// The policy of a cluster for port `port` and an optional subset (SEMANTICS.md §8.7).
fn effective(dr: Option<&DestinationRule>, port: u16, subset: Option<&Subset>) -> Policy {
    let mut base = dr
        .and_then(|d| d.traffic_policy.as_ref())
        .map(|tp| tp.port(port).unwrap_or(&tp.policy).clone())
        .unwrap_or_default();
    if let Some(sp) = subset.and_then(|s| s.traffic_policy.as_ref()) {
        if let Some(pl) = sp.port(port) {
            base = pl.clone();
        } else {
            let p = &sp.policy;
            if p.load_balancer.is_some() {
                base.load_balancer.clone_from(&p.load_balancer);
            }
            if p.connection_pool.is_some() {
                base.connection_pool = p.connection_pool;
            }
            if p.outlier_detection.is_some() {
                base.outlier_detection = p.outlier_detection;
            }
            if p.tls.is_some() {
                base.tls.clone_from(&p.tls);
            }
        }
    }
    base
}

fn apply_policy(c: &mut Cluster, p: &Policy) {
    let cp = p.connection_pool.unwrap_or_default();
    c.connect_timeout = cp.connect_timeout.unwrap_or(CONNECT_TIMEOUT);
    c.circuit_breakers = CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: cp.max_connections.unwrap_or(UNLIMITED),
            max_pending_requests: cp.http1_max_pending_requests.unwrap_or(UNLIMITED),
            max_requests: cp.http2_max_requests.unwrap_or(UNLIMITED),
            max_retries: cp.max_retries.unwrap_or(UNLIMITED),
            retry_budget: None,
            track_remaining: true,
            ..Thresholds::default()
        }],
    };
    if let Some(idle) = cp.idle_timeout.or(cp.tcp_idle_timeout) {
        c.idle_timeout = idle;
    }
    c.max_requests_per_connection = cp.max_requests_per_connection;
    if cp.h2_upgrade {
        c.protocol = UpstreamProtocol::Http2;
    }
    c.lb_policy = LbPolicy::LeastRequest;
    match &p.load_balancer {
        Some(LoadBalancer::Simple(SimpleLb::RoundRobin)) => c.lb_policy = LbPolicy::RoundRobin,
        Some(LoadBalancer::Simple(SimpleLb::Random)) => c.lb_policy = LbPolicy::Random,
        Some(LoadBalancer::ConsistentHash(ch)) => {
            if let Some(table) = ch.maglev {
                c.lb_policy = LbPolicy::Maglev;
                if table > 0 {
                    c.maglev_table_size = table;
                }
            } else {
                c.lb_policy = LbPolicy::RingHash;
                c.ring_hash.minimum_ring_size = ch.minimum_ring_size.unwrap_or(1024);
                c.ring_hash.maximum_ring_size = c
                    .ring_hash
                    .maximum_ring_size
                    .max(c.ring_hash.minimum_ring_size);
            }
        }
        _ => {}
    }
    if let Some(od) = &p.outlier_detection {
        let mut o = mesh_core::config::OutlierDetection {
            enforcing_success_rate: 0,
            ..Default::default()
        };
        if let Some(n) = od.consecutive_5xx_errors {
            o.consecutive_5xx = n;
            o.enforcing_consecutive_5xx = if n == 0 { 0 } else { 100 };
        }
        if let Some(n) = od.consecutive_gateway_errors {
            o.consecutive_gateway_failure = n;
            o.enforcing_consecutive_gateway_failure = if n == 0 { 0 } else { 100 };
        }
        if let Some(d) = od.interval {
            o.interval = d;
        }
        if let Some(d) = od.base_ejection_time {
            o.base_ejection_time = d;
        }
        o.max_ejection_time = o.max_ejection_time.max(o.base_ejection_time);
        if let Some(n) = od.max_ejection_percent.filter(|n| *n > 0) {
            o.max_ejection_percent = n;
        }
        if od.split_external_local_origin_errors {
            o.split_external_local_origin_errors = true;
            if let Some(n) = od.consecutive_local_origin_failures.filter(|n| *n > 0) {
                o.consecutive_local_origin_failure = n;
                o.enforcing_consecutive_local_origin_failure = 100;
            }
        }
        c.outlier_detection = Some(o);
        c.healthy_panic_threshold = f64::from(od.min_health_percent.unwrap_or(0));
    }
}

/// `*.foo.com` covers `a.foo.com`; `*` covers everything.
fn wildcard_covers(pattern: &str, host: &str) -> bool {
    pattern == "*"
        || pattern
            .strip_prefix('*')
            .is_some_and(|suffix| host.len() > suffix.len() && host.ends_with(suffix))
}

/// A gateway reference as `ns/name` (SEMANTICS.md §8.1).
fn resolve_gateway(g: &str, vs_ns: &str) -> String {
    if let Some(name) = g.strip_prefix("./") {
        return format!("{vs_ns}/{name}");
    }
    if g.contains('/') {
        return g.to_owned();
    }
    // Legacy `name.ns.svc.cluster.local` ⇒ `ns/name`.
    let parts: Vec<&str> = g.split('.').collect();
    if parts.len() >= 2 {
        return format!("{}/{}", parts[1], parts[0]);
    }
    format!("{vs_ns}/{g}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_references() {
        assert_eq!(resolve_gateway("gw", "ns1"), "ns1/gw");
        assert_eq!(resolve_gateway("./gw", "ns1"), "ns1/gw");
        assert_eq!(resolve_gateway("istio-system/gw", "ns1"), "istio-system/gw");
        assert_eq!(
            resolve_gateway("gw.istio-system.svc.cluster.local", "ns1"),
            "istio-system/gw"
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_covers("*.foo.com", "a.foo.com"));
        assert!(!wildcard_covers("*.foo.com", "foo.com"));
        assert!(wildcard_covers("*", "x"));
    }
}
