//! Gateway API objects → the Istio model the translation serves (what pilot's Gateway API
//! controller does): a gateway server per listener, a VirtualService per listener port and
//! host with the attached routes' matches in the API's precedence, a mesh VirtualService per
//! Service that routes have as parent, and a ServiceEntry per Kubernetes Service.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    BackendRef, Filter, GATEWAY_NAME_LABEL, GROUP, Gateway, GatewayApi, HeaderModifier, Listener,
    ParentRef, PathMatch, PathModifier, Route, RouteKind, RouteMatch, RouteNamespaces, Rule,
    ValueMatch,
};
use crate::envoy::Cx;
use crate::istio::{
    self, Destination, DirectResponse, HeaderOperations, Headers, HttpMatch, HttpRoute, Meta,
    Mirror, Options, Redirect, Resources, Retries, Rewrite, Role, RouteDestination, Server,
    ServerTlsSettings, ServiceEntry, StringMatch, TlsSecret, VirtualService, WorkloadSpec,
};

/// The destination host of a backend that cannot be used (missing, of an unknown kind, or not
/// permitted): its share of the traffic answers 500.
pub(crate) const INVALID_BACKEND: &str = "invalid-backend.gateway-api.invalid";

/// What the Gateway API objects add to the Istio resources.
#[derive(Debug, Default)]
pub(crate) struct Converted {
    pub(crate) gateways: Vec<istio::Gateway>,
    pub(crate) virtual_services: Vec<VirtualService>,
    pub(crate) service_entries: Vec<ServiceEntry>,
    pub(crate) secrets: Vec<TlsSecret>,
}

/// One condition of a route's status for one parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// `type`: `Accepted` or `ResolvedRefs`.
    pub kind: &'static str,
    /// `status`.
    pub status: bool,
    /// `reason`.
    pub reason: &'static str,
    /// `message`.
    pub message: String,
}

/// A route's status for one of its `parentRefs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentStatus {
    /// The parent, as referenced.
    pub parent_ref: ParentRef,
    /// `Accepted`, then `ResolvedRefs`.
    pub conditions: Vec<Condition>,
}

/// The status of one HTTPRoute or GRPCRoute, as a controller would write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStatus {
    /// The route's kind.
    pub kind: RouteKind,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `status.parents`.
    pub parents: Vec<ParentStatus>,
}

impl RouteStatus {
    /// The condition of `kind` for the parent named `parent` (`NS/NAME`), if reported.
    pub fn condition(&self, parent: &str, kind: &str) -> Option<&Condition> {
        self.parents
            .iter()
            .find(|p| {
                let ns = p.parent_ref.namespace.as_deref().unwrap_or(&self.namespace);
                format!("{ns}/{}", p.parent_ref.name) == parent
            })
            .and_then(|p| p.conditions.iter().find(|c| c.kind == kind))
    }
}

/// A Gateway listener's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// `attachedRoutes`: the routes attached to it.
    pub attached_routes: usize,
    /// `supportedKinds`: the route kinds it admits and the proxy serves.
    pub supported_kinds: Vec<&'static str>,
    /// `Accepted`, `ResolvedRefs`, `Programmed`.
    pub conditions: Vec<Condition>,
}

/// A Gateway's status, as a controller would write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayStatus {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `Accepted` and `Programmed`.
    pub conditions: Vec<Condition>,
    /// `status.listeners`.
    pub listeners: Vec<ListenerStatus>,
}

fn condition(kind: &'static str, ok: Result<(), Problem>, good: &'static str) -> Condition {
    match ok {
        Ok(()) => Condition {
            kind,
            status: true,
            reason: good,
            message: String::new(),
        },
        Err((reason, message)) => Condition {
            kind,
            status: false,
            reason,
            message,
        },
    }
}

/// Every Gateway's status: its listeners, whether the proxy serves them, and how many routes
/// each has attached.
pub fn gateway_status(res: &Resources, opts: &Options) -> Vec<GatewayStatus> {
    let cx = Ctx::new(res, opts);
    cx.api
        .gateways
        .iter()
        .map(|g| {
            let mut attached = vec![0usize; g.listeners.len()];
            for r in &cx.api.routes {
                for p in r.parent_refs.iter().filter(|p| !p.is_service()) {
                    if let Ok((pg, ls)) = cx.attach(r, p)
                        && std::ptr::eq(pg, g)
                    {
                        for (i, _) in ls {
                            attached[i] += 1;
                        }
                    }
                }
            }
            let listeners: Vec<ListenerStatus> = g
                .listeners
                .iter()
                .zip(attached)
                .map(|(l, n)| cx.listener_status(g, l, n))
                .collect();
            let any = listeners
                .iter()
                .any(|l| l.conditions.iter().all(|c| c.status));
            let programmed = if any {
                Ok(())
            } else {
                Err(("Invalid", "no listener is served".to_owned()))
            };
            GatewayStatus {
                name: g.meta.name.clone(),
                namespace: g.meta.namespace.clone(),
                conditions: vec![
                    condition("Accepted", Ok(()), "Accepted"),
                    condition("Programmed", programmed, "Programmed"),
                ],
                listeners,
            }
        })
        .collect()
}

/// The name the proxy's controller writes in `status.parents[].controllerName`.
pub const CONTROLLER_NAME: &str = "mesh-toolkit.dev/gateway-controller";

/// Every route's status (`Accepted` and `ResolvedRefs` per parent).
pub fn status(res: &Resources, opts: &Options) -> Vec<RouteStatus> {
    let cx = Ctx::new(res, opts);
    cx.api
        .routes
        .iter()
        .map(|r| RouteStatus {
            kind: r.kind,
            name: r.meta.name.clone(),
            namespace: r.meta.namespace.clone(),
            parents: r
                .parent_refs
                .iter()
                .map(|p| ParentStatus {
                    parent_ref: p.clone(),
                    conditions: cx.conditions(r, p),
                })
                .collect(),
        })
        .collect()
}

/// [`status`] as Kubernetes YAML documents, the way `kubectl get httproute -o yaml` shows them.
pub fn status_yaml(res: &Resources, opts: &Options) -> String {
    let mut out = String::new();
    let conditions = |cs: &[Condition]| {
        cs.iter()
            .map(|c| {
                json!({
                    "type": c.kind,
                    "status": if c.status { "True" } else { "False" },
                    "reason": c.reason,
                    "message": c.message,
                })
            })
            .collect::<Vec<_>>()
    };
    for g in gateway_status(res, opts) {
        let listeners: Vec<Value> = g
            .listeners
            .iter()
            .map(|l| {
                json!({
                    "name": l.name,
                    "attachedRoutes": l.attached_routes,
                    "supportedKinds": l
                        .supported_kinds
                        .iter()
                        .map(|k| json!({"group": GROUP, "kind": k}))
                        .collect::<Vec<_>>(),
                    "conditions": conditions(&l.conditions),
                })
            })
            .collect();
        let doc = json!({
            "apiVersion": format!("{GROUP}/v1"),
            "kind": "Gateway",
            "metadata": {"name": g.name, "namespace": g.namespace},
            "status": {"conditions": conditions(&g.conditions), "listeners": listeners},
        });
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&doc).unwrap_or_default());
    }
    for s in status(res, opts) {
        let parents: Vec<Value> = s
            .parents
            .iter()
            .map(|p| {
                let r = &p.parent_ref;
                let mut pr = json!({
                    "group": r.group,
                    "kind": r.kind,
                    "name": r.name,
                    "namespace": r.namespace.as_deref().unwrap_or(&s.namespace),
                });
                if let Some(sn) = &r.section_name {
                    pr["sectionName"] = json!(sn);
                }
                if let Some(port) = r.port {
                    pr["port"] = json!(port);
                }
                json!({
                    "parentRef": pr,
                    "controllerName": CONTROLLER_NAME,
                    "conditions": conditions(&p.conditions),
                })
            })
            .collect();
        let doc = json!({
            "apiVersion": format!("{GROUP}/v1"),
            "kind": s.kind.name(),
            "metadata": {"name": s.name, "namespace": s.namespace},
            "status": {"parents": parents},
        });
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&doc).unwrap_or_default());
    }
    out
}

/// The Istio resources the Gateway API objects stand for, for the proxy `opts` describes.
pub(crate) fn convert(cx: &mut Cx, res: &Resources, opts: &Options) -> Converted {
    let c = Ctx::new(res, opts);
    let mut out = Converted {
        service_entries: c.service_entries(),
        ..Converted::default()
    };
    for r in &c.api.routes {
        for (i, rule) in r.rules.iter().enumerate() {
            for (j, b) in rule.backend_refs.iter().enumerate() {
                if let Err((reason, msg)) = c.backend(r, b) {
                    cx.warn(
                        r.meta
                            .path(r.kind.name(), &format!("spec.rules[{i}].backendRefs[{j}]")),
                        format!("{reason}: {msg}; its share of requests gets 500"),
                    );
                }
            }
        }
        for (i, p) in r.parent_refs.iter().enumerate() {
            if p.is_service() {
                continue;
            }
            if let Err((reason, msg)) = c.attach(r, p) {
                cx.warn(
                    r.meta.path(r.kind.name(), &format!("spec.parentRefs[{i}]")),
                    format!("not attached ({reason}): {msg}"),
                );
            }
        }
    }
    match &opts.role {
        Role::Gateway { labels, .. } => {
            if let Some(name) = labels.get(GATEWAY_NAME_LABEL)
                && let Some(g) = c
                    .api
                    .gateways
                    .iter()
                    .find(|g| g.meta.name == *name && g.meta.namespace == opts.namespace)
            {
                c.gateway(cx, g, &mut out);
            }
        }
        Role::Sidecar { .. } | Role::CapturedSidecar { .. } => c.mesh(&mut out),
    }
    out
}

/// Why a reference does not resolve or a route does not attach: the condition's reason and a
/// message.
type Problem = (&'static str, String);

/// The Gateway a parent reference names, and the listeners (index, shared hosts) it attaches to.
type Attached<'a> = (&'a Gateway, Vec<(usize, Vec<String>)>);

/// The routes whose parent is one Service: (file order, route, the parent's port).
type ServiceRoutes<'r> = Vec<(usize, &'r Route, Option<u16>)>;

/// Lookups over the objects read.
struct Ctx<'a> {
    api: &'a GatewayApi,
    res: &'a Resources,
    opts: &'a Options,
}

/// One match of one rule of one route, to be ordered among the others of its host.
struct Entry<'a> {
    route: &'a Route,
    /// The route's position in file order (its age when no timestamp says).
    order: usize,
    rule: usize,
    m: usize,
    matched: RouteMatch,
    /// The Service parent's port (mesh routes).
    port: Option<u16>,
}

impl<'a> Ctx<'a> {
    fn new(res: &'a Resources, opts: &'a Options) -> Self {
        Self {
            api: &res.gateway_api,
            res,
            opts,
        }
    }

    fn fqdn(&self, name: &str, ns: &str) -> String {
        format!("{name}.{ns}.svc.{}", self.opts.domain_suffix)
    }

    fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        let mut labels = self
            .api
            .namespaces
            .iter()
            .find(|n| n.name == ns)
            .map(|n| n.labels.clone())
            .unwrap_or_default();
        labels.insert("kubernetes.io/metadata.name".into(), ns.to_owned());
        labels
    }

    /// Whether a ReferenceGrant in `to_ns` lets `from_kind` objects of `from_ns` refer to
    /// `to_kind` `to_name`.
    fn granted(
        &self,
        from_kind: &str,
        from_ns: &str,
        to_group: &str,
        to_kind: &str,
        to_name: &str,
        to_ns: &str,
    ) -> bool {
        from_ns == to_ns
            || self.api.reference_grants.iter().any(|g| {
                g.meta.namespace == to_ns
                    && g.from
                        .iter()
                        .any(|(gr, k, ns)| gr == GROUP && k == from_kind && ns == from_ns)
                    && g.to.iter().any(|(gr, k, n)| {
                        gr == to_group && k == to_kind && n.as_deref().is_none_or(|n| n == to_name)
                    })
            })
    }

    fn service_exists(&self, name: &str, ns: &str) -> bool {
        let host = self.fqdn(name, ns);
        self.api
            .services
            .iter()
            .any(|s| s.meta.name == name && s.meta.namespace == ns)
            || self.res.service_entries.iter().any(|se| {
                se.hosts
                    .iter()
                    .any(|h| istio::fqdn(h, &se.meta.namespace, &self.opts.domain_suffix) == host)
            })
    }

    /// The destination of a backend, or why it cannot be used (`ResolvedRefs` reason).
    fn backend(&self, route: &Route, b: &BackendRef) -> Result<Destination, Problem> {
        if b.kind != "Service" || !matches!(b.group.as_str(), "" | "core") {
            return Err((
                "InvalidKind",
                format!(
                    "backend kind {}{} is not supported (only Service)",
                    if b.group.is_empty() {
                        String::new()
                    } else {
                        format!("{}/", b.group)
                    },
                    b.kind
                ),
            ));
        }
        let ns = b.namespace.as_deref().unwrap_or(&route.meta.namespace);
        // A mesh route may send to the Service it is attached to without a grant (GAMMA's
        // consumer routes live in the caller's namespace).
        let own_parent = route.parent_refs.iter().any(|p| {
            p.is_service()
                && p.name == b.name
                && p.namespace.as_deref().unwrap_or(&route.meta.namespace) == ns
        });
        if !own_parent
            && !self.granted(
                route.kind.name(),
                &route.meta.namespace,
                "",
                "Service",
                &b.name,
                ns,
            )
        {
            return Err((
                "RefNotPermitted",
                format!(
                    "no ReferenceGrant in namespace {ns} lets {} of {} refer to Service {}",
                    route.kind.name(),
                    route.meta.namespace,
                    b.name
                ),
            ));
        }
        if !self.service_exists(&b.name, ns) {
            return Err((
                "BackendNotFound",
                format!("Service {ns}/{} does not exist", b.name),
            ));
        }
        Ok(Destination {
            host: self.fqdn(&b.name, ns),
            subset: None,
            port: b.port,
        })
    }

    /// Whether listener `l` of `g` admits routes of `route`'s kind and namespace.
    fn allows(&self, g: &Gateway, l: &Listener, route: &Route) -> bool {
        let ns_ok = match &l.allowed_routes.from {
            RouteNamespaces::Same => route.meta.namespace == g.meta.namespace,
            RouteNamespaces::All => true,
            RouteNamespaces::Selector(sel) => {
                sel.matches(&self.namespace_labels(&route.meta.namespace))
            }
        };
        let kind = route.kind.name();
        let kind_ok = if l.allowed_routes.kinds.is_empty() {
            matches!(l.protocol.as_str(), "HTTP" | "HTTPS")
        } else {
            l.allowed_routes
                .kinds
                .iter()
                .any(|(gr, k)| gr == GROUP && k == kind)
        };
        ns_ok && kind_ok && served(l)
    }

    /// The listeners of a Gateway parent the route attaches to, with the hosts each shares
    /// with it; or why none (`Accepted` reason).
    fn attach(&self, route: &Route, p: &ParentRef) -> Result<Attached<'a>, Problem> {
        let ns = p.namespace.as_deref().unwrap_or(&route.meta.namespace);
        if p.group != GROUP || p.kind != "Gateway" {
            return Err((
                "NoMatchingParent",
                format!("parent kind {}/{} is not supported", p.group, p.kind),
            ));
        }
        let Some(g) = self
            .api
            .gateways
            .iter()
            .find(|g| g.meta.name == p.name && g.meta.namespace == ns)
        else {
            return Err((
                "NoMatchingParent",
                format!("Gateway {ns}/{} does not exist", p.name),
            ));
        };
        let listeners: Vec<(usize, &Listener)> = g
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| p.section_name.as_ref().is_none_or(|s| *s == l.name))
            .filter(|(_, l)| p.port.is_none_or(|port| port == l.port))
            .collect();
        if listeners.is_empty() {
            return Err((
                "NoMatchingParent",
                format!(
                    "Gateway {ns}/{} has no listener{}{}",
                    p.name,
                    p.section_name
                        .as_ref()
                        .map(|s| format!(" named {s}"))
                        .unwrap_or_default(),
                    p.port.map(|s| format!(" on port {s}")).unwrap_or_default()
                ),
            ));
        }
        let allowed: Vec<(usize, &Listener)> = listeners
            .into_iter()
            .filter(|(_, l)| self.allows(g, l, route))
            .collect();
        if allowed.is_empty() {
            return Err((
                "NotAllowedByListeners",
                format!(
                    "no listener of Gateway {ns}/{} admits {} from namespace {}",
                    p.name,
                    route.kind.name(),
                    route.meta.namespace
                ),
            ));
        }
        let attached: Vec<(usize, Vec<String>)> = allowed
            .into_iter()
            .filter_map(|(i, l)| {
                let hosts = intersect(l.hostname.as_deref(), &route.hostnames);
                (!hosts.is_empty()).then_some((i, hosts))
            })
            .collect();
        if attached.is_empty() {
            return Err((
                "NoMatchingListenerHostname",
                format!(
                    "no hostname of the route matches a listener hostname of Gateway {ns}/{}",
                    p.name
                ),
            ));
        }
        Ok((g, attached))
    }

    fn conditions(&self, route: &Route, p: &ParentRef) -> Vec<Condition> {
        let accepted = if p.is_service() {
            let ns = p.namespace.as_deref().unwrap_or(&route.meta.namespace);
            if self.service_exists(&p.name, ns) {
                Ok(())
            } else {
                Err((
                    "NoMatchingParent",
                    format!("Service {ns}/{} does not exist", p.name),
                ))
            }
        } else {
            self.attach(route, p).map(|_| ())
        };
        let accepted = match accepted {
            Ok(()) => Condition {
                kind: "Accepted",
                status: true,
                reason: "Accepted",
                message: "Route was valid".into(),
            },
            Err((reason, message)) => Condition {
                kind: "Accepted",
                status: false,
                reason,
                message,
            },
        };
        let mut problems = Vec::new();
        for rule in &route.rules {
            for b in &rule.backend_refs {
                if let Err(e) = self.backend(route, b) {
                    problems.push(e);
                }
            }
            for f in &rule.filters {
                if let Filter::RequestMirror(m) = f
                    && let Err(e) = self.backend(route, &m.backend)
                {
                    problems.push(e);
                }
            }
        }
        let resolved = match problems.first() {
            None => Condition {
                kind: "ResolvedRefs",
                status: true,
                reason: "ResolvedRefs",
                message: "All references resolved".into(),
            },
            Some((reason, _)) => Condition {
                kind: "ResolvedRefs",
                status: false,
                reason,
                message: problems
                    .iter()
                    .map(|(_, m)| m.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        };
        vec![accepted, resolved]
    }

    /// A ServiceEntry per Kubernetes Service, its endpoints from its EndpointSlices.
    fn service_entries(&self) -> Vec<ServiceEntry> {
        // Ports GRPCRoutes send to speak HTTP/2 even without an appProtocol.
        let mut grpc_ports: Vec<(String, u16)> = Vec::new();
        for r in self.api.routes.iter().filter(|r| r.kind == RouteKind::Grpc) {
            for b in r.rules.iter().flat_map(|x| &x.backend_refs) {
                if let Some(port) = b.port {
                    let ns = b.namespace.as_deref().unwrap_or(&r.meta.namespace);
                    grpc_ports.push((self.fqdn(&b.name, ns), port));
                }
            }
        }
        self.api
            .services
            .iter()
            .map(|s| {
                let host = self.fqdn(&s.meta.name, &s.meta.namespace);
                let ports: Vec<istio::ServicePort> = s
                    .ports
                    .iter()
                    .map(|p| {
                        let mut protocol = match p.app_protocol.as_deref() {
                            Some("kubernetes.io/h2c" | "http2") => "HTTP2",
                            Some("grpc") => "GRPC",
                            Some("http") => "HTTP",
                            Some("kubernetes.io/ws" | "kubernetes.io/wss") => "HTTP",
                            Some("https" | "tls") => "TLS",
                            Some("tcp") => "TCP",
                            _ => "",
                        }
                        .to_owned();
                        if protocol.is_empty() && grpc_ports.contains(&(host.clone(), p.port)) {
                            protocol = "GRPC".into();
                        }
                        istio::ServicePort {
                            number: p.port,
                            name: if p.name.is_empty() {
                                format!("port-{}", p.port)
                            } else {
                                p.name.clone()
                            },
                            protocol,
                            target_port: p.target_port,
                        }
                    })
                    .collect();
                let mut endpoints = Vec::new();
                for slice in
                    self.api.endpoint_slices.iter().filter(|e| {
                        e.service == s.meta.name && e.meta.namespace == s.meta.namespace
                    })
                {
                    let mut by_name = BTreeMap::new();
                    for (name, port) in &slice.ports {
                        if name.is_empty() && ports.len() == 1 {
                            by_name.insert(ports[0].name.clone(), *port);
                        } else {
                            by_name.insert(name.clone(), *port);
                        }
                    }
                    for a in &slice.addresses {
                        endpoints.push(WorkloadSpec {
                            address: a.clone(),
                            ports: by_name.clone(),
                            ..WorkloadSpec::default()
                        });
                    }
                }
                ServiceEntry {
                    meta: Meta {
                        name: s.meta.name.clone(),
                        namespace: s.meta.namespace.clone(),
                        labels: s.meta.labels.clone(),
                        source: s.meta.source.clone(),
                    },
                    hosts: vec![s.meta.name.clone()],
                    addresses: s.cluster_ip.iter().cloned().collect(),
                    ports,
                    location: istio::Location::MeshInternal,
                    resolution: istio::Resolution::Static,
                    endpoints,
                    workload_selector: None,
                }
            })
            .collect()
    }

    /// The status of listener `l` of `g`, with `attached` routes.
    fn listener_status(&self, g: &Gateway, l: &Listener, attached: usize) -> ListenerStatus {
        let accepted = if served(l) {
            Ok(())
        } else {
            Err((
                "UnsupportedProtocol",
                format!(
                    "{} listeners{} are not served",
                    l.protocol,
                    if l.protocol == "HTTPS" {
                        " that pass TLS through"
                    } else {
                        ""
                    }
                ),
            ))
        };
        let resolved = if l.protocol == "HTTPS" && served(l) {
            self.certificate(g, l).map(|_| ())
        } else {
            Ok(())
        };
        let programmed = match (&accepted, &resolved) {
            (Ok(()), Ok(())) => Ok(()),
            _ => Err(("Invalid", "the listener is not served".to_owned())),
        };
        let supported_kinds = if served(l) {
            ["HTTPRoute", "GRPCRoute"]
                .into_iter()
                .filter(|k| {
                    l.allowed_routes.kinds.is_empty()
                        || l.allowed_routes
                            .kinds
                            .iter()
                            .any(|(gr, kind)| gr == GROUP && kind == k)
                })
                .collect()
        } else {
            Vec::new()
        };
        ListenerStatus {
            name: l.name.clone(),
            attached_routes: attached,
            supported_kinds,
            conditions: vec![
                condition("Accepted", accepted, "Accepted"),
                condition("ResolvedRefs", resolved, "ResolvedRefs"),
                condition("Programmed", programmed, "Programmed"),
            ],
        }
    }

    /// The Secret (namespace, name) an HTTPS listener's certificate is, or why it cannot be
    /// used (the listener's `ResolvedRefs` reason).
    fn certificate(&self, g: &Gateway, l: &Listener) -> Result<(String, String), Problem> {
        let gw_ns = &g.meta.namespace;
        let Some(cert) = l.tls.as_ref().and_then(|t| t.certificate_refs.first()) else {
            return Err((
                "InvalidCertificateRef",
                "an HTTPS listener needs tls.certificateRefs".into(),
            ));
        };
        let ns = cert.namespace.as_deref().unwrap_or(gw_ns);
        if cert.kind != "Secret" || !matches!(cert.group.as_str(), "" | "core") {
            return Err((
                "InvalidCertificateRef",
                format!("certificate reference kind {} is not Secret", cert.kind),
            ));
        }
        if !self.granted("Gateway", gw_ns, "", "Secret", &cert.name, ns) {
            return Err((
                "RefNotPermitted",
                format!(
                    "no ReferenceGrant in namespace {ns} lets Gateways of {gw_ns} use Secret {}",
                    cert.name
                ),
            ));
        }
        let exists = self
            .res
            .secrets
            .iter()
            .any(|s| s.meta.name == cert.name && s.meta.namespace == ns);
        if !exists && ns != gw_ns {
            return Err((
                "InvalidCertificateRef",
                format!("Secret {ns}/{} does not exist", cert.name),
            ));
        }
        // A Secret of the Gateway's namespace not in the files may be in the credentials
        // directory (as for Istio's credentialName).
        Ok((ns.to_owned(), cert.name.clone()))
    }

    /// The servers and VirtualServices of Gateway `g`.
    fn gateway(&self, cx: &mut Cx, g: &Gateway, out: &mut Converted) {
        let gw_ns = &g.meta.namespace;
        for (i, l) in g.listeners.iter().enumerate() {
            let path = g.meta.path("Gateway", &format!("spec.listeners[{i}]"));
            if !served(l) {
                cx.warn(
                    path,
                    format!(
                        "{} listeners{} are not supported here (only HTTP, and HTTPS that terminates TLS), not served",
                        l.protocol,
                        if l.protocol == "HTTPS" { " that pass TLS through" } else { "" }
                    ),
                );
                continue;
            }
            let mut server = Server {
                port: l.port,
                port_name: l.name.clone(),
                protocol: l.protocol.clone(),
                hosts: vec![l.hostname.clone().unwrap_or_else(|| "*".into())],
                name: l.name.clone(),
                ..Server::default()
            };
            if l.protocol == "HTTPS" {
                let (ns, name) = match self.certificate(g, l) {
                    Ok(c) => c,
                    Err((_, message)) => {
                        cx.warn(format!("{path}.tls"), format!("{message}; not served"));
                        continue;
                    }
                };
                let cert = super::ObjectRef {
                    name,
                    ..super::ObjectRef::default()
                };
                let ns = ns.as_str();
                let credential = if ns == gw_ns {
                    cert.name.clone()
                } else {
                    // The Secret from the other namespace, under a name of the gateway's.
                    let name = format!("{ns}~{}", cert.name);
                    if let Some(s) = self
                        .res
                        .secrets
                        .iter()
                        .find(|s| s.meta.name == cert.name && s.meta.namespace == ns)
                    {
                        let mut copy = s.clone();
                        copy.meta.name.clone_from(&name);
                        copy.meta.namespace.clone_from(gw_ns);
                        out.secrets.push(copy);
                    }
                    name
                };
                server.tls_mode = Some("SIMPLE".into());
                server.tls = ServerTlsSettings {
                    credential_name: Some(credential),
                    ..ServerTlsSettings::default()
                };
            }
            out.gateways.push(istio::Gateway {
                meta: Meta {
                    name: listener_gateway(g, l),
                    namespace: gw_ns.clone(),
                    labels: BTreeMap::new(),
                    source: g.meta.source.clone(),
                },
                selector: BTreeMap::from([(GATEWAY_NAME_LABEL.to_owned(), g.meta.name.clone())]),
                servers: vec![server],
            });
        }
        // (port, host) → (listener gateways, entries).
        let mut buckets: BTreeMap<(u16, String), (Vec<String>, Vec<Entry<'_>>)> = BTreeMap::new();
        for (order, r) in self.api.routes.iter().enumerate() {
            for p in &r.parent_refs {
                if p.is_service() {
                    continue;
                }
                let Ok((pg, attached)) = self.attach(r, p) else {
                    continue;
                };
                if pg.meta.name != g.meta.name || pg.meta.namespace != g.meta.namespace {
                    continue;
                }
                for (li, hosts) in attached {
                    let l = &g.listeners[li];
                    let gname = format!("{gw_ns}/{}", listener_gateway(g, l));
                    for h in hosts {
                        if shadowed(g, li, &h) {
                            continue;
                        }
                        let (gws, entries) = buckets.entry((l.port, h)).or_default();
                        if !gws.contains(&gname) {
                            gws.push(gname.clone());
                        }
                        if entries
                            .iter()
                            .any(|e| std::ptr::eq(e.route, r) && e.port.is_none())
                        {
                            continue; // attached through another listener of the port
                        }
                        entries.extend(entries_of(r, order, None));
                    }
                }
            }
        }
        // Listener isolation: every listener hostname has its own virtual host, so a request
        // for a host a more specific listener owns never reaches a less specific one's routes
        // (without routes of its own, the virtual host answers 404).
        for l in g.listeners.iter().filter(|l| served(l)) {
            if let Some(h) = &l.hostname {
                let gname = format!("{gw_ns}/{}", listener_gateway(g, l));
                let (gws, _) = buckets.entry((l.port, h.clone())).or_default();
                if !gws.contains(&gname) {
                    gws.push(gname);
                }
            }
        }
        for ((port, host), (gateways, mut entries)) in buckets {
            sort(&mut entries);
            out.virtual_services.push(VirtualService {
                meta: Meta {
                    name: format!("{}~{port}~{host}", g.meta.name),
                    namespace: gw_ns.clone(),
                    labels: BTreeMap::new(),
                    source: g.meta.source.clone(),
                },
                hosts: vec![host],
                gateways,
                http: entries.iter().map(|e| self.http_route(e, port)).collect(),
                tcp: Vec::new(),
                tls: Vec::new(),
            });
        }
    }

    /// The mesh VirtualServices (GAMMA): per Service that routes have as parent, the routes
    /// of the proxy's namespace (consumer routes) if any, else those of the Service's own
    /// namespace (producer routes).
    fn mesh(&self, out: &mut Converted) {
        let mut by_service: BTreeMap<(String, String), ServiceRoutes<'_>> = BTreeMap::new();
        for (order, r) in self.api.routes.iter().enumerate() {
            for p in r.parent_refs.iter().filter(|p| p.is_service()) {
                let ns = p.namespace.as_deref().unwrap_or(&r.meta.namespace);
                if !self.service_exists(&p.name, ns) {
                    continue;
                }
                by_service
                    .entry((ns.to_owned(), p.name.clone()))
                    .or_default()
                    .push((order, r, p.port));
            }
        }
        for ((ns, name), routes) in by_service {
            let consumer: Vec<_> = routes
                .iter()
                .filter(|(_, r, _)| {
                    r.meta.namespace != ns && r.meta.namespace == self.opts.namespace
                })
                .collect();
            let chosen: Vec<_> = if consumer.is_empty() {
                routes
                    .iter()
                    .filter(|(_, r, _)| r.meta.namespace == ns)
                    .collect()
            } else {
                consumer
            };
            if chosen.is_empty() {
                continue;
            }
            let mut entries = Vec::new();
            for (order, r, port) in chosen {
                entries.extend(entries_of(r, *order, *port));
            }
            sort(&mut entries);
            let host = self.fqdn(&name, &ns);
            out.virtual_services.push(VirtualService {
                meta: Meta {
                    name: format!("gamma~{name}"),
                    namespace: ns.clone(),
                    labels: BTreeMap::new(),
                    source: entries
                        .first()
                        .map(|e| e.route.meta.source.clone())
                        .unwrap_or_default(),
                },
                hosts: vec![host],
                gateways: Vec::new(),
                http: entries.iter().map(|e| self.http_route(e, 0)).collect(),
                tcp: Vec::new(),
                tls: Vec::new(),
            });
        }
    }

    /// One sorted entry as a one-match VirtualService rule.
    fn http_route(&self, e: &Entry<'_>, _port: u16) -> HttpRoute {
        let route = e.route;
        let rule: &Rule = &route.rules[e.rule];
        let mut out = HttpRoute {
            name: match &rule.name {
                Some(n) => format!("{}.{}.{n}", route.meta.namespace, route.meta.name),
                None => format!("{}.{}.{}", route.meta.namespace, route.meta.name, e.rule),
            },
            matches: vec![http_match(&e.matched, e.port)],
            ..HttpRoute::default()
        };
        // The prefix a ReplacePrefixMatch replaces ("" for `/`).
        let prefix = match &e.matched.path {
            Some(PathMatch::Prefix(p)) => p.trim_end_matches('/').to_owned(),
            _ => String::new(),
        };
        let mut fail = false;
        for f in &rule.filters {
            match f {
                Filter::RequestHeaderModifier(h) => modify(&mut out.headers.request, h),
                Filter::ResponseHeaderModifier(h) => modify(&mut out.headers.response, h),
                Filter::RequestRedirect(r) => {
                    let mut rd = Redirect {
                        scheme: r.scheme.clone(),
                        authority: r.hostname.clone(),
                        port: r.port.or(match r.scheme.as_deref() {
                            Some("https") => Some(443),
                            Some("http") => Some(80),
                            _ => None,
                        }),
                        code: r.status_code,
                        ..Redirect::default()
                    };
                    rd.port_from_request = rd.port.is_none();
                    match &r.path {
                        Some(PathModifier::Full(p)) => rd.uri = Some(p.clone()),
                        Some(PathModifier::Prefix(p)) => match prefix_rewrite(&prefix, p) {
                            Ok(p) => rd.prefix_rewrite = Some(p),
                            Err(re) => rd.uri_regex = Some(re),
                        },
                        None => {}
                    }
                    out.redirect = Some(rd);
                }
                Filter::UrlRewrite(u) => {
                    let mut rw = Rewrite {
                        authority: u.hostname.clone(),
                        ..Rewrite::default()
                    };
                    match &u.path {
                        Some(PathModifier::Full(p)) => {
                            rw.uri_regex = Some(("^.*$".into(), p.clone()));
                        }
                        Some(PathModifier::Prefix(p)) => match prefix_rewrite(&prefix, p) {
                            Ok(p) => rw.uri = Some(p),
                            Err(re) => rw.uri_regex = Some(re),
                        },
                        None => {}
                    }
                    out.rewrite = rw;
                }
                Filter::RequestMirror(m) => {
                    if let Ok(d) = self.backend(route, &m.backend) {
                        out.mirrors.push(Mirror {
                            destination: d,
                            percentage: m.percent,
                            field: "requestMirror".into(),
                        });
                    }
                }
                Filter::Unsupported(_) => fail = true,
            }
        }
        if out.redirect.is_some() && !fail {
            return out;
        }
        let mut dests = Vec::new();
        for b in &rule.backend_refs {
            let destination = self.backend(route, b).unwrap_or_else(|_| Destination {
                host: INVALID_BACKEND.into(),
                subset: None,
                port: b.port,
            });
            let mut headers = Headers::default();
            for f in &b.filters {
                match f {
                    Filter::RequestHeaderModifier(h) => modify(&mut headers.request, h),
                    Filter::ResponseHeaderModifier(h) => modify(&mut headers.response, h),
                    _ => fail = true,
                }
            }
            dests.push(RouteDestination {
                destination,
                weight: b.weight,
                headers,
            });
        }
        let all_invalid = dests.iter().all(|d| d.destination.host == INVALID_BACKEND);
        let no_weight = dests.iter().all(|d| d.weight == 0);
        if fail || dests.is_empty() || all_invalid || no_weight {
            out.redirect = None;
            out.direct_response = Some(DirectResponse {
                status: 500,
                body: None,
            });
            return out;
        }
        if dests.len() == 1 {
            dests[0].weight = 100;
        }
        out.route = dests;
        out.timeout = rule.request_timeout;
        let mut retries = rule.retry.as_ref().map(|r| Retries {
            attempts: i64::from(r.attempts.unwrap_or(2)),
            retry_on: Some(
                ["connect-failure", "refused-stream", "reset"]
                    .into_iter()
                    .map(str::to_owned)
                    .chain(r.codes.iter().map(u16::to_string))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            backoff: r.backoff,
            ..Retries::default()
        });
        if let Some(t) = rule.backend_request_timeout {
            retries
                .get_or_insert_with(|| Retries {
                    attempts: 2,
                    ..Retries::default()
                })
                .per_try_timeout = Some(t);
        }
        out.retries = retries;
        out
    }
}

/// Whether the proxy serves a listener: HTTP, or HTTPS terminating TLS.
fn served(l: &Listener) -> bool {
    match l.protocol.as_str() {
        "HTTP" => true,
        "HTTPS" => l.tls.as_ref().is_none_or(|t| t.mode == "Terminate"),
        _ => false,
    }
}

/// Whether host `h` of a route attached to listener `li` belongs to a more specific listener of
/// the same port (requests for it are that listener's alone).
fn shadowed(g: &Gateway, li: usize, h: &str) -> bool {
    let l = &g.listeners[li];
    g.listeners.iter().enumerate().any(|(i, other)| {
        let Some(oh) = &other.hostname else {
            return false;
        };
        i != li
            && other.port == l.port
            && served(other)
            && (oh == h || covers(oh, h))
            && l.hostname.as_deref().is_none_or(|lh| covers(lh, oh))
    })
}

/// The Istio gateway standing for one listener.
fn listener_gateway(g: &Gateway, l: &Listener) -> String {
    format!("{}~{}", g.meta.name, l.name)
}

/// The hosts a listener and a route share (wildcards on both sides).
fn intersect(listener: Option<&str>, route: &[String]) -> Vec<String> {
    let mut out: Vec<String> = match listener {
        None if route.is_empty() => vec!["*".into()],
        None => route.to_vec(),
        Some(l) if route.is_empty() => vec![l.to_owned()],
        Some(l) => route
            .iter()
            .filter_map(|r| {
                if r == l || covers(l, r) {
                    Some(r.clone())
                } else if covers(r, l) {
                    Some(l.to_owned())
                } else {
                    None
                }
            })
            .collect(),
    };
    out.dedup();
    out
}

/// Whether wildcard `pattern` (`*.example.com`) covers `host` (one label or more).
fn covers(pattern: &str, host: &str) -> bool {
    pattern
        .strip_prefix('*')
        .is_some_and(|suffix| host.len() > suffix.len() && host.ends_with(suffix))
}

/// The entries of a route: one per match of each rule (a rule without matches matches `/`).
fn entries_of(r: &Route, order: usize, port: Option<u16>) -> Vec<Entry<'_>> {
    let mut out = Vec::new();
    for (i, rule) in r.rules.iter().enumerate() {
        let matches = if rule.matches.is_empty() {
            vec![RouteMatch::default()]
        } else {
            rule.matches.clone()
        };
        for (j, m) in matches.into_iter().enumerate() {
            out.push(Entry {
                route: r,
                order,
                rule: i,
                m: j,
                matched: m,
                port,
            });
        }
    }
    out
}

/// Orders entries by the Gateway API's precedence.
fn sort(entries: &mut [Entry<'_>]) {
    entries.sort_by(|a, b| precedence(a, b));
}

fn path_rank(m: &RouteMatch) -> (u8, usize) {
    if let Some(g) = &m.grpc {
        // GRPCRoute: an exact service and method first, then the longer service, then method.
        let len = g.service.as_ref().map_or(0, String::len);
        let both = g.service.is_some() && g.method.is_some();
        return (
            if both && !g.regex { 0 } else { 1 },
            usize::MAX - len - g.method.as_ref().map_or(0, String::len),
        );
    }
    match &m.path {
        Some(PathMatch::Exact(p)) => (0, usize::MAX - p.len()),
        Some(PathMatch::Regex(p)) => (1, usize::MAX - p.len()),
        Some(PathMatch::Prefix(p)) => (2, usize::MAX - p.trim_end_matches('/').len()),
        None if m.grpc.is_none() => (2, usize::MAX),
        None => (1, usize::MAX),
    }
}

fn precedence(a: &Entry<'_>, b: &Entry<'_>) -> Ordering {
    let (ma, mb) = (&a.matched, &b.matched);
    path_rank(ma)
        .cmp(&path_rank(mb))
        .then_with(|| mb.method.is_some().cmp(&ma.method.is_some()))
        .then_with(|| mb.headers.len().cmp(&ma.headers.len()))
        .then_with(|| mb.query_params.len().cmp(&ma.query_params.len()))
        .then_with(
            || match (&a.route.creation_timestamp, &b.route.creation_timestamp) {
                (Some(x), Some(y)) => x.cmp(y),
                _ => Ordering::Equal,
            },
        )
        .then_with(|| {
            let key = |e: &Entry<'_>| (e.route.meta.namespace.clone(), e.route.meta.name.clone());
            if a.route.creation_timestamp.is_none() || b.route.creation_timestamp.is_none() {
                a.order.cmp(&b.order).then_with(|| key(a).cmp(&key(b)))
            } else {
                key(a).cmp(&key(b))
            }
        })
        .then_with(|| a.rule.cmp(&b.rule))
        .then_with(|| a.m.cmp(&b.m))
}

fn value_match(v: &ValueMatch) -> StringMatch {
    match v {
        ValueMatch::Exact(s) => StringMatch::Exact(s.clone()),
        ValueMatch::Regex(s) => StringMatch::Regex(s.clone()),
    }
}

fn http_match(m: &RouteMatch, port: Option<u16>) -> HttpMatch {
    let uri = if let Some(g) = &m.grpc {
        let svc = g.service.as_deref();
        let method = g.method.as_deref();
        Some(match (g.regex, svc, method) {
            (false, Some(s), Some(me)) => StringMatch::Exact(format!("/{s}/{me}")),
            (false, Some(s), None) => StringMatch::Prefix(format!("/{s}/")),
            (false, None, Some(me)) => StringMatch::Regex(format!("/[^/]+/{}", regex::escape(me))),
            (true, s, me) => StringMatch::Regex(format!(
                "/{}/{}",
                s.unwrap_or("[^/]+"),
                me.unwrap_or("[^/]+")
            )),
            (false, None, None) => StringMatch::Prefix("/".into()),
        })
    } else {
        Some(match &m.path {
            None => StringMatch::Prefix("/".into()),
            Some(PathMatch::Exact(p)) => StringMatch::Exact(p.clone()),
            Some(PathMatch::Regex(p)) => StringMatch::Regex(p.clone()),
            Some(PathMatch::Prefix(p)) => {
                let p = p.trim_end_matches('/');
                if p.is_empty() {
                    StringMatch::Prefix("/".into())
                } else {
                    StringMatch::SegmentPrefix(p.to_owned())
                }
            }
        })
    };
    HttpMatch {
        uri,
        method: m.method.clone().map(StringMatch::Exact),
        headers: m
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), value_match(v)))
            .collect(),
        query_params: m
            .query_params
            .iter()
            .map(|(k, v)| (k.clone(), value_match(v)))
            .collect(),
        port,
        ..HttpMatch::default()
    }
}

fn modify(ops: &mut HeaderOperations, h: &HeaderModifier) {
    for (k, v) in &h.set {
        ops.set.insert(k.clone(), v.clone());
    }
    for (k, v) in &h.add {
        ops.add.insert(k.clone(), v.clone());
    }
    ops.remove.extend(h.remove.iter().cloned());
}

/// `ReplacePrefixMatch` of the segment prefix `prefix` (without a trailing `/`; empty for `/`)
/// with `to`: a plain prefix rewrite where Envoy's gives the API's answer, else a regex rewrite
/// `(pattern, substitution)`.
fn prefix_rewrite(prefix: &str, to: &str) -> Result<String, (String, String)> {
    let to = to.trim_end_matches('/');
    if prefix.is_empty() {
        // `/foo` under prefix `/` becomes `<to>/foo`.
        return Err(("^/".into(), format!("{to}/")));
    }
    if to.is_empty() {
        // `/prefix/rest` → `/rest`, `/prefix` → `/`.
        return Err((format!("^{}/?", regex::escape(prefix)), "/".into()));
    }
    Ok(to.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_intersect_with_wildcards_on_both_sides() {
        let r = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(intersect(None, &[]), r(&["*"]));
        assert_eq!(intersect(Some("*.example.com"), &[]), r(&["*.example.com"]));
        assert_eq!(
            intersect(
                Some("*.example.com"),
                &r(&[
                    "foo.example.com",
                    "example.com",
                    "*.foo.example.com",
                    "bar.net"
                ])
            ),
            r(&["foo.example.com", "*.foo.example.com"])
        );
        assert_eq!(
            intersect(Some("very.specific.com"), &r(&["*.specific.com", "*.com"])),
            r(&["very.specific.com"])
        );
        assert!(intersect(Some("foo.com"), &r(&["bar.com"])).is_empty());
    }

    #[test]
    fn prefix_replacement_follows_the_api_table() {
        assert_eq!(prefix_rewrite("/foo", "/xyz"), Ok("/xyz".into()));
        assert_eq!(prefix_rewrite("/foo", "/xyz/"), Ok("/xyz".into()));
        assert_eq!(
            prefix_rewrite("/foo", "/"),
            Err(("^/foo/?".into(), "/".into()))
        );
        assert_eq!(
            prefix_rewrite("", "/xyz"),
            Err(("^/".into(), "/xyz/".into()))
        );
    }
}
