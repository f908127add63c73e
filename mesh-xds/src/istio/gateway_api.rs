//! The Kubernetes Gateway API (`gateway.networking.k8s.io` v1 and v1beta1): `GatewayClass`,
//! `Gateway`, `HTTPRoute`, `GRPCRoute` and `ReferenceGrant`, with Kubernetes `Service`,
//! `EndpointSlice` and `Namespace` objects for the services routes name.
//!
//! These are read by [`parse_str`](super::parse_str) and [`load_paths`](super::load_paths)
//! beside the Istio kinds (one directory may hold both, as a cluster does) into
//! [`Resources::gateway_api`](super::Resources::gateway_api), and [`translate`](super::translate)
//! serves them as Istio does: each Gateway listener becomes a gateway server, the routes
//! attached to it become per-host routes sorted by the Gateway API's precedence, and routes
//! whose parent is a `Service` (GAMMA) route that service's traffic in sidecars.
//!
//! # Which proxy serves a Gateway
//!
//! A gateway proxy serves the Gateway named by its label `gateway.networking.k8s.io/gateway-name`
//! in its own namespace ([`Options::namespace`](super::Options::namespace)), the label
//! Kubernetes Gateway deployments carry; `mesh-proxy --gateway NAME.NS` sets both.
//!
//! # Semantics (the Gateway API's, not VirtualService's)
//!
//! - A route attaches to the listeners its `parentRefs` select (`sectionName`, `port`) that
//!   allow it (`allowedRoutes`: namespaces `Same`, `All` or a label `Selector` over `Namespace`
//!   objects; kinds) and whose hostname intersects the route's (wildcards on both sides).
//! - Across the routes of one listener host, matches are ordered: exact path, then regular
//!   expression, then the longest prefix; a method match; more header matches; more query
//!   matches; the older route (`creationTimestamp`, else file order); `namespace/name`; then
//!   rule and match order within the route.
//! - `PathPrefix` is segment-aware: `/foo` matches `/foo` and `/foo/bar`, not `/foobar`.
//! - A backend that does not exist, is of an unknown kind, or sits in another namespace without
//!   a `ReferenceGrant` keeps its weight and answers 500; a rule with no backends answers 500.
//! - [`status`] reports each route's `Accepted` and `ResolvedRefs` conditions per parent as
//!   the API defines them.
//!
//! # Examples
//!
//! ```
//! use mesh_xds::istio::{self, Options};
//! let yaml = r#"
//! apiVersion: gateway.networking.k8s.io/v1
//! kind: Gateway
//! metadata: { name: web, namespace: infra }
//! spec:
//!   gatewayClassName: mesh
//!   listeners: [{ name: http, port: 80, protocol: HTTP }]
//! ---
//! apiVersion: gateway.networking.k8s.io/v1
//! kind: HTTPRoute
//! metadata: { name: shop, namespace: infra }
//! spec:
//!   parentRefs: [{ name: web }]
//!   hostnames: [shop.example.com]
//!   rules:
//!   - matches: [{ path: { type: PathPrefix, value: /cart } }]
//!     backendRefs: [{ name: cart, port: 8080 }]
//! ---
//! apiVersion: v1
//! kind: Service
//! metadata: { name: cart, namespace: infra }
//! spec: { ports: [{ name: http, port: 8080 }] }
//! "#;
//! let resources = istio::parse_str(yaml, "inline", "default")?.value;
//! let opts = Options::gateway([("gateway.networking.k8s.io/gateway-name", "web")])
//!     .namespace("infra")
//!     .map_port(80, 18080);
//! let bootstrap = istio::translate(&resources, &opts)?.value;
//! assert!(bootstrap.cluster("outbound|8080||cart.infra.svc.cluster.local").is_some());
//! let status = istio::gateway_api::status(&resources, &opts);
//! assert_eq!(status[0].parents[0].conditions[0].reason, "Accepted");
//! # Ok::<(), mesh_xds::LoadError>(())
//! ```

mod convert;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

pub use self::convert::{
    CONTROLLER_NAME, Condition, GatewayStatus, ListenerStatus, ParentStatus, RouteStatus,
    gateway_status, status, status_yaml,
};
pub(crate) use self::convert::{INVALID_BACKEND, convert};
use super::{Meta, string_map};
use crate::envoy::{Cx, Obj, as_string};

/// The Gateway API group.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// The pod label naming the Gateway a gateway proxy serves.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// The Gateway API objects (and the Kubernetes objects they refer to) read from files.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GatewayApi {
    /// GatewayClasses.
    pub gateway_classes: Vec<GatewayClass>,
    /// Gateways.
    pub gateways: Vec<Gateway>,
    /// HTTPRoutes and GRPCRoutes, in file order.
    pub routes: Vec<Route>,
    /// ReferenceGrants.
    pub reference_grants: Vec<ReferenceGrant>,
    /// Kubernetes Services.
    pub services: Vec<Service>,
    /// Kubernetes EndpointSlices.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Kubernetes Namespaces (their labels select routes for `allowedRoutes`).
    pub namespaces: Vec<Namespace>,
}

impl GatewayApi {
    /// Whether nothing was read.
    pub fn is_empty(&self) -> bool {
        self.gateway_classes.is_empty()
            && self.gateways.is_empty()
            && self.routes.is_empty()
            && self.reference_grants.is_empty()
            && self.services.is_empty()
            && self.endpoint_slices.is_empty()
            && self.namespaces.is_empty()
    }

    pub(crate) fn extend(&mut self, other: GatewayApi) {
        self.gateway_classes.extend(other.gateway_classes);
        self.gateways.extend(other.gateways);
        self.routes.extend(other.routes);
        self.reference_grants.extend(other.reference_grants);
        self.services.extend(other.services);
        self.endpoint_slices.extend(other.endpoint_slices);
        self.namespaces.extend(other.namespaces);
    }
}

/// [`Resources::apply`](super::Resources::apply) for the Gateway API objects.
pub(crate) fn apply(into: &mut GatewayApi, other: GatewayApi, warnings: &mut Vec<super::Warning>) {
    use super::apply_list;
    apply_list(
        &mut into.gateway_classes,
        other.gateway_classes,
        |r| &r.meta,
        "GatewayClass",
        warnings,
    );
    apply_list(
        &mut into.gateways,
        other.gateways,
        |r| &r.meta,
        "Gateway",
        warnings,
    );
    for kind in [RouteKind::Http, RouteKind::Grpc] {
        let (mut same, rest): (Vec<Route>, Vec<Route>) = std::mem::take(&mut into.routes)
            .into_iter()
            .partition(|r| r.kind == kind);
        let new = other
            .routes
            .iter()
            .filter(|r| r.kind == kind)
            .cloned()
            .collect();
        apply_list(&mut same, new, |r| &r.meta, kind.name(), warnings);
        into.routes = rest.into_iter().chain(same).collect();
    }
    apply_list(
        &mut into.reference_grants,
        other.reference_grants,
        |r| &r.meta,
        "ReferenceGrant",
        warnings,
    );
    apply_list(
        &mut into.services,
        other.services,
        |r| &r.meta,
        "Service",
        warnings,
    );
    apply_list(
        &mut into.endpoint_slices,
        other.endpoint_slices,
        |r| &r.meta,
        "EndpointSlice",
        warnings,
    );
    for n in other.namespaces {
        match into.namespaces.iter_mut().find(|x| x.name == n.name) {
            Some(old) => *old = n,
            None => into.namespaces.push(n),
        }
    }
}

/// A GatewayClass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatewayClass {
    /// Name and source.
    pub meta: Meta,
    /// `spec.controllerName`.
    pub controller_name: String,
}

/// A Gateway.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Gateway {
    /// Name, namespace, source.
    pub meta: Meta,
    /// `spec.gatewayClassName`.
    pub class_name: String,
    /// `spec.listeners`.
    pub listeners: Vec<Listener>,
}

/// A Gateway listener.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listener {
    /// `name` (its `sectionName`).
    pub name: String,
    /// `hostname` (`None`: every host).
    pub hostname: Option<String>,
    /// `port`.
    pub port: u16,
    /// `protocol` (`HTTP`, `HTTPS`, …).
    pub protocol: String,
    /// `tls`.
    pub tls: Option<ListenerTls>,
    /// `allowedRoutes`.
    pub allowed_routes: AllowedRoutes,
}

/// A listener's `tls`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListenerTls {
    /// `mode` (`Terminate` by default).
    pub mode: String,
    /// `certificateRefs`.
    pub certificate_refs: Vec<ObjectRef>,
}

/// A reference to another object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectRef {
    /// `group` (`""`: the core group).
    pub group: String,
    /// `kind`.
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `namespace` (`None`: the referring object's).
    pub namespace: Option<String>,
}

/// A listener's `allowedRoutes`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowedRoutes {
    /// `namespaces.from`.
    pub from: RouteNamespaces,
    /// `kinds` (`(group, kind)`; empty: the kinds the protocol carries).
    pub kinds: Vec<(String, String)>,
}

/// `allowedRoutes.namespaces`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RouteNamespaces {
    /// `Same` (the default): the Gateway's namespace.
    #[default]
    Same,
    /// `All`.
    All,
    /// `Selector`: namespaces whose labels the selector matches.
    Selector(LabelSelector),
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// `matchLabels`.
    pub match_labels: BTreeMap<String, String>,
    /// `matchExpressions`: `(key, operator, values)`.
    pub match_expressions: Vec<(String, String, Vec<String>)>,
}

impl LabelSelector {
    /// Whether the selector matches these labels.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|(k, op, values)| {
                let v = labels.get(k);
                match op.as_str() {
                    "In" => v.is_some_and(|v| values.contains(v)),
                    "NotIn" => v.is_none_or(|v| !values.contains(v)),
                    "Exists" => v.is_some(),
                    "DoesNotExist" => v.is_none(),
                    _ => false,
                }
            })
    }
}

/// Which route kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteKind {
    /// `HTTPRoute`.
    #[default]
    Http,
    /// `GRPCRoute`.
    Grpc,
}

impl RouteKind {
    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http => "HTTPRoute",
            Self::Grpc => "GRPCRoute",
        }
    }
}

/// An HTTPRoute or a GRPCRoute.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Route {
    /// Which kind.
    pub kind: RouteKind,
    /// Name, namespace, source.
    pub meta: Meta,
    /// `metadata.creationTimestamp` (RFC 3339), when given.
    pub creation_timestamp: Option<String>,
    /// `spec.parentRefs`.
    pub parent_refs: Vec<ParentRef>,
    /// `spec.hostnames`.
    pub hostnames: Vec<String>,
    /// `spec.rules`.
    pub rules: Vec<Rule>,
}

/// A `parentRefs[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParentRef {
    /// `group` (default `gateway.networking.k8s.io`; `""` or `core` for a Service).
    pub group: String,
    /// `kind` (default `Gateway`).
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `namespace` (`None`: the route's).
    pub namespace: Option<String>,
    /// `sectionName`.
    pub section_name: Option<String>,
    /// `port`.
    pub port: Option<u16>,
}

impl ParentRef {
    /// Whether the parent is a Service (the mesh role).
    pub fn is_service(&self) -> bool {
        self.kind == "Service" && matches!(self.group.as_str(), "" | "core")
    }
}

/// A `rules[]` entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rule {
    /// `name`.
    pub name: Option<String>,
    /// `matches` (empty: every request).
    pub matches: Vec<RouteMatch>,
    /// `filters`.
    pub filters: Vec<Filter>,
    /// `backendRefs`.
    pub backend_refs: Vec<BackendRef>,
    /// `timeouts.request`.
    pub request_timeout: Option<Duration>,
    /// `timeouts.backendRequest`.
    pub backend_request_timeout: Option<Duration>,
    /// `retry` (experimental).
    pub retry: Option<Retry>,
}

/// A `matches[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteMatch {
    /// `path` (HTTPRoute; absent: prefix `/`).
    pub path: Option<PathMatch>,
    /// `headers`: `(lower-cased name, value)`.
    pub headers: Vec<(String, ValueMatch)>,
    /// `queryParams`.
    pub query_params: Vec<(String, ValueMatch)>,
    /// `method` (HTTPRoute).
    pub method: Option<String>,
    /// `method` (GRPCRoute).
    pub grpc: Option<GrpcMethodMatch>,
}

/// An HTTPRoute path match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// `Exact`.
    Exact(String),
    /// `PathPrefix` (segment-aware).
    Prefix(String),
    /// `RegularExpression`.
    Regex(String),
}

/// A header or query parameter match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    /// `Exact`.
    Exact(String),
    /// `RegularExpression`.
    Regex(String),
}

/// A GRPCRoute `method` match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrpcMethodMatch {
    /// `type: RegularExpression`.
    pub regex: bool,
    /// `service`.
    pub service: Option<String>,
    /// `method`.
    pub method: Option<String>,
}

/// A route or backend filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `RequestHeaderModifier`.
    RequestHeaderModifier(HeaderModifier),
    /// `ResponseHeaderModifier`.
    ResponseHeaderModifier(HeaderModifier),
    /// `RequestRedirect`.
    RequestRedirect(RequestRedirect),
    /// `URLRewrite`.
    UrlRewrite(UrlRewrite),
    /// `RequestMirror`.
    RequestMirror(RequestMirror),
    /// A filter type this proxy does not implement (`ExtensionRef`, `CORS`, …): the rule
    /// answers 500, as the API requires for a filter that cannot be honoured.
    Unsupported(String),
}

/// `requestHeaderModifier` / `responseHeaderModifier`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderModifier {
    /// `set`.
    pub set: Vec<(String, String)>,
    /// `add`.
    pub add: Vec<(String, String)>,
    /// `remove`.
    pub remove: Vec<String>,
}

/// A path modifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathModifier {
    /// `ReplaceFullPath`.
    Full(String),
    /// `ReplacePrefixMatch`.
    Prefix(String),
}

/// `requestRedirect`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestRedirect {
    /// `scheme`.
    pub scheme: Option<String>,
    /// `hostname`.
    pub hostname: Option<String>,
    /// `path`.
    pub path: Option<PathModifier>,
    /// `port`.
    pub port: Option<u16>,
    /// `statusCode` (default 302).
    pub status_code: u16,
}

/// `urlRewrite`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlRewrite {
    /// `hostname`.
    pub hostname: Option<String>,
    /// `path`.
    pub path: Option<PathModifier>,
}

/// `requestMirror`.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMirror {
    /// `backendRef`.
    pub backend: BackendRef,
    /// `percent`, or `fraction` as a percentage (`None`: every request).
    pub percent: Option<f64>,
}

/// A `backendRefs[]` entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BackendRef {
    /// `group` (default `""`).
    pub group: String,
    /// `kind` (default `Service`).
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `namespace` (`None`: the route's).
    pub namespace: Option<String>,
    /// `port`.
    pub port: Option<u16>,
    /// `weight` (default 1).
    pub weight: u32,
    /// `filters`.
    pub filters: Vec<Filter>,
}

/// `retry` (experimental).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Retry {
    /// `attempts`.
    pub attempts: Option<u32>,
    /// `codes`.
    pub codes: Vec<u16>,
    /// `backoff`.
    pub backoff: Option<Duration>,
}

/// A ReferenceGrant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReferenceGrant {
    /// Name, namespace (the namespace it grants access into), source.
    pub meta: Meta,
    /// `from`: `(group, kind, namespace)`.
    pub from: Vec<(String, String, String)>,
    /// `to`: `(group, kind, name)` (`None`: every object of the kind).
    pub to: Vec<(String, String, Option<String>)>,
}

/// A Kubernetes Service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Service {
    /// Name, namespace, source.
    pub meta: Meta,
    /// `spec.clusterIP` (unless `None`).
    pub cluster_ip: Option<String>,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
}

/// A Service port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServicePort {
    /// `name`.
    pub name: String,
    /// `port`.
    pub port: u16,
    /// `targetPort` when a number.
    pub target_port: Option<u16>,
    /// `appProtocol`.
    pub app_protocol: Option<String>,
}

/// A Kubernetes EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointSlice {
    /// Name, namespace, source.
    pub meta: Meta,
    /// The label `kubernetes.io/service-name`: the Service it belongs to.
    pub service: String,
    /// `ports`: `(name, port)`.
    pub ports: Vec<(String, u16)>,
    /// `endpoints`: ready addresses.
    pub addresses: Vec<String>,
}

/// A Kubernetes Namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Namespace {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
}

/// Whether the object is one this module reads.
pub(crate) fn is_kind(api: &str, kind: &str) -> bool {
    let (group, version) = api.split_once('/').unwrap_or(("", api));
    (group == GROUP
        && matches!(version, "v1" | "v1beta1" | "v1alpha2")
        && matches!(
            kind,
            "GatewayClass" | "Gateway" | "HTTPRoute" | "GRPCRoute" | "ReferenceGrant"
        ))
        || (api == "v1" && matches!(kind, "Service" | "Namespace"))
        || (api == "discovery.k8s.io/v1" && kind == "EndpointSlice")
}

/// Reads one object of a kind [`is_kind`] accepts (`o` is the whole document).
pub(crate) fn parse(
    cx: &mut Cx,
    doc: &Value,
    o: &mut Obj<'_>,
    kind: &str,
    meta: Meta,
    out: &mut GatewayApi,
) {
    let errors_before = cx.errors.len();
    if kind == "Namespace" {
        o.take_all();
        out.namespaces.push(Namespace {
            name: meta.name,
            labels: meta.labels,
        });
        return;
    }
    let root = meta.path(kind, "spec");
    o.ignore(cx, "status");
    let null = Value::Null;
    let spec = o.value(cx, "spec").map_or(&null, |(v, _)| v);
    if kind == "EndpointSlice" {
        // An EndpointSlice keeps its fields at the top level.
        let service = meta
            .labels
            .get("kubernetes.io/service-name")
            .cloned()
            .unwrap_or_default();
        let slice = endpoint_slice(cx, o, meta, service);
        if cx.errors.len() == errors_before {
            out.endpoint_slices.push(slice);
        }
        return;
    }
    let Some(mut s) = Obj::new(cx, spec, root) else {
        return;
    };
    match kind {
        "GatewayClass" => {
            let controller_name = s.string(cx, "controllerName").unwrap_or_default();
            s.take_all();
            out.gateway_classes.push(GatewayClass {
                meta,
                controller_name,
            });
        }
        "Gateway" => {
            let g = gateway(cx, &mut s, meta);
            s.finish(cx);
            if cx.errors.len() == errors_before {
                out.gateways.push(g);
            }
        }
        "HTTPRoute" | "GRPCRoute" => {
            let route_kind = if kind == "HTTPRoute" {
                RouteKind::Http
            } else {
                RouteKind::Grpc
            };
            let created = doc
                .get("metadata")
                .and_then(|m| m.get("creationTimestamp"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let r = route(cx, &mut s, meta, route_kind, created);
            s.finish(cx);
            if cx.errors.len() == errors_before {
                out.routes.push(r);
            }
        }
        "ReferenceGrant" => {
            let g = reference_grant(cx, &mut s, meta);
            s.finish(cx);
            if cx.errors.len() == errors_before {
                out.reference_grants.push(g);
            }
        }
        _ => {
            let svc = service(cx, &mut s, meta);
            if cx.errors.len() == errors_before {
                out.services.push(svc);
            }
        }
    }
}

fn gateway(cx: &mut Cx, s: &mut Obj<'_>, meta: Meta) -> Gateway {
    let mut g = Gateway {
        class_name: s.string(cx, "gatewayClassName").unwrap_or_default(),
        ..Gateway::default()
    };
    if g.class_name.is_empty() {
        cx.error(s.child("gatewayClassName"), "gatewayClassName is required");
    }
    s.unsupported(
        cx,
        "addresses",
        "Gateway addresses are not honoured here: the proxy binds its listeners as configured",
    );
    s.ignore(cx, "infrastructure");
    for (v, p) in s.list(cx, "listeners") {
        let Some(mut o) = Obj::new(cx, v, p.clone()) else {
            continue;
        };
        let mut l = Listener {
            name: o.string(cx, "name").unwrap_or_default(),
            hostname: o.string(cx, "hostname").map(|h| h.to_ascii_lowercase()),
            port: o.u16(cx, "port").unwrap_or(0),
            protocol: o.string(cx, "protocol").unwrap_or_default(),
            ..Listener::default()
        };
        if l.name.is_empty() {
            cx.error(o.child("name"), "a listener name is required");
        }
        if g.listeners.iter().any(|x| x.name == l.name) {
            cx.error(
                o.child("name"),
                format!("listener name {:?} is used twice", l.name),
            );
        }
        if l.port == 0 {
            cx.error(o.child("port"), "a port (1-65535) is required");
        }
        if let Some(h) = &l.hostname
            && let Err(e) = super::rules::wildcard_domain(h)
        {
            cx.error(o.child("hostname"), e);
        }
        if let Some(mut t) = o.obj(cx, "tls") {
            let mut tls = ListenerTls {
                mode: t.string(cx, "mode").unwrap_or_else(|| "Terminate".into()),
                ..ListenerTls::default()
            };
            for (v, p) in t.list(cx, "certificateRefs") {
                if let Some(r) = object_ref(cx, v, p, "", "Secret") {
                    tls.certificate_refs.push(r);
                }
            }
            // Both ask for security the proxy would not give: errors, not warnings.
            if let Some((v, p)) = t.value(cx, "options")
                && v.as_object().is_some_and(|o| !o.is_empty())
            {
                cx.error(
                    p,
                    "listener TLS options are not supported here; the listener would be served without them",
                );
            }
            t.reject(
                cx,
                "frontendValidation",
                "client certificate validation of a Gateway listener is not supported here; the listener would accept any client",
            );
            t.finish(cx);
            l.tls = Some(tls);
        }
        if let Some(mut a) = o.obj(cx, "allowedRoutes") {
            if let Some(mut n) = a.obj(cx, "namespaces") {
                let from = n.string(cx, "from").unwrap_or_else(|| "Same".into());
                l.allowed_routes.from = match from.as_str() {
                    "Same" => RouteNamespaces::Same,
                    "All" => RouteNamespaces::All,
                    "Selector" => match n.value(cx, "selector") {
                        Some((v, p)) => RouteNamespaces::Selector(label_selector(cx, v, p)),
                        None => {
                            cx.error(n.child("selector"), "from: Selector needs a selector");
                            RouteNamespaces::Same
                        }
                    },
                    other => {
                        cx.error(
                            n.child("from"),
                            format!("{other:?} is not All, Same or Selector"),
                        );
                        RouteNamespaces::Same
                    }
                };
                n.finish(cx);
            }
            for (v, p) in a.list(cx, "kinds") {
                let Some(mut k) = Obj::new(cx, v, p) else {
                    continue;
                };
                let group = k.string(cx, "group").unwrap_or_else(|| GROUP.into());
                let kind = k.string(cx, "kind").unwrap_or_default();
                k.finish(cx);
                l.allowed_routes.kinds.push((group, kind));
            }
            a.finish(cx);
        }
        o.finish(cx);
        g.listeners.push(l);
    }
    if g.listeners.is_empty() {
        cx.error(
            s.child("listeners"),
            "a Gateway needs at least one listener",
        );
    }
    g.meta = meta;
    g
}

fn label_selector(cx: &mut Cx, v: &Value, p: String) -> LabelSelector {
    let mut sel = LabelSelector::default();
    let Some(mut o) = Obj::new(cx, v, p) else {
        return sel;
    };
    if let Some((v, p)) = o.value(cx, "matchLabels") {
        sel.match_labels = string_map(cx, v, &p);
    }
    for (v, p) in o.list(cx, "matchExpressions") {
        let Some(mut e) = Obj::new(cx, v, p) else {
            continue;
        };
        let key = e.string(cx, "key").unwrap_or_default();
        let op = e.string(cx, "operator").unwrap_or_default();
        if !matches!(op.as_str(), "In" | "NotIn" | "Exists" | "DoesNotExist") {
            cx.error(
                e.child("operator"),
                format!("{op:?} is not In, NotIn, Exists or DoesNotExist"),
            );
        }
        let values = e.strings(cx, "values");
        e.finish(cx);
        sel.match_expressions.push((key, op, values));
    }
    o.finish(cx);
    sel
}

fn object_ref(
    cx: &mut Cx,
    v: &Value,
    p: String,
    default_group: &str,
    default_kind: &str,
) -> Option<ObjectRef> {
    let mut o = Obj::new(cx, v, p)?;
    let r = ObjectRef {
        group: o
            .string(cx, "group")
            .unwrap_or_else(|| default_group.into()),
        kind: o.string(cx, "kind").unwrap_or_else(|| default_kind.into()),
        name: o.string(cx, "name").unwrap_or_default(),
        namespace: o.string(cx, "namespace"),
    };
    if r.name.is_empty() {
        cx.error(o.child("name"), "name is required");
    }
    o.finish(cx);
    Some(r)
}

fn route(
    cx: &mut Cx,
    s: &mut Obj<'_>,
    meta: Meta,
    kind: RouteKind,
    creation_timestamp: Option<String>,
) -> Route {
    let mut r = Route {
        kind,
        creation_timestamp,
        ..Route::default()
    };
    for (v, p) in s.list(cx, "parentRefs") {
        let Some(mut o) = Obj::new(cx, v, p) else {
            continue;
        };
        let pr = ParentRef {
            group: o.string(cx, "group").unwrap_or_else(|| GROUP.into()),
            kind: o.string(cx, "kind").unwrap_or_else(|| "Gateway".into()),
            name: o.string(cx, "name").unwrap_or_default(),
            namespace: o.string(cx, "namespace"),
            section_name: o.string(cx, "sectionName"),
            port: o.u16(cx, "port"),
        };
        if pr.name.is_empty() {
            cx.error(o.child("name"), "name is required");
        }
        o.finish(cx);
        r.parent_refs.push(pr);
    }
    for (v, p) in s.list(cx, "hostnames") {
        if let Some(h) = as_string(cx, v, &p) {
            if let Err(e) = super::rules::wildcard_domain(&h) {
                cx.error(p, e);
            }
            r.hostnames.push(h.to_ascii_lowercase());
        }
    }
    for (v, p) in s.list(cx, "rules") {
        let Some(mut o) = Obj::new(cx, v, p) else {
            continue;
        };
        r.rules.push(rule(cx, &mut o, kind));
        o.finish(cx);
    }
    r.meta = meta;
    r
}

fn rule(cx: &mut Cx, o: &mut Obj<'_>, kind: RouteKind) -> Rule {
    let mut rule = Rule {
        name: o.string(cx, "name"),
        ..Rule::default()
    };
    for (v, p) in o.list(cx, "matches") {
        let Some(mut m) = Obj::new(cx, v, p) else {
            continue;
        };
        rule.matches.push(route_match(cx, &mut m, kind));
        m.finish(cx);
    }
    for (v, p) in o.list(cx, "filters") {
        if let Some(f) = filter(cx, v, p) {
            rule.filters.push(f);
        }
    }
    for (v, p) in o.list(cx, "backendRefs") {
        let Some(mut b) = Obj::new(cx, v, p) else {
            continue;
        };
        let mut br = backend_ref(cx, &mut b);
        br.weight = b.u32(cx, "weight").unwrap_or(1);
        for (v, p) in b.list(cx, "filters") {
            if let Some(f) = filter(cx, v, p) {
                br.filters.push(f);
            }
        }
        b.finish(cx);
        rule.backend_refs.push(br);
    }
    if let Some(mut t) = o.obj(cx, "timeouts") {
        rule.request_timeout = t.duration(cx, "request");
        rule.backend_request_timeout = t.duration(cx, "backendRequest");
        if let (Some(req), Some(be)) = (rule.request_timeout, rule.backend_request_timeout)
            && !req.is_zero()
            && be > req
        {
            cx.error(
                t.child("backendRequest"),
                "backendRequest must not be longer than request",
            );
        }
        t.finish(cx);
    }
    if let Some(mut t) = o.obj(cx, "retry") {
        let mut retry = Retry {
            attempts: t.u32(cx, "attempts"),
            backoff: t.duration(cx, "backoff"),
            ..Retry::default()
        };
        for (v, p) in t.list(cx, "codes") {
            match v.as_u64().and_then(|c| u16::try_from(c).ok()) {
                Some(c) if (400..600).contains(&c) => retry.codes.push(c),
                _ => cx.error(p, "a retry code is an HTTP status from 400 to 599"),
            }
        }
        t.finish(cx);
        rule.retry = Some(retry);
    }
    o.unsupported(
        cx,
        "sessionPersistence",
        "session persistence is not supported here, ignored",
    );
    // The API server's own rules (CEL) for a rule's filters.
    let prefix_replaced = rule.filters.iter().any(|f| {
        matches!(
            f,
            Filter::RequestRedirect(RequestRedirect {
                path: Some(PathModifier::Prefix(_)),
                ..
            }) | Filter::UrlRewrite(UrlRewrite {
                path: Some(PathModifier::Prefix(_)),
                ..
            })
        )
    });
    if prefix_replaced
        && rule
            .matches
            .iter()
            .any(|m| matches!(m.path, Some(PathMatch::Exact(_) | PathMatch::Regex(_))))
    {
        cx.error(
            o.child("filters"),
            "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match",
        );
    }
    let has = |ty: fn(&Filter) -> bool| rule.filters.iter().filter(|f| ty(f)).count();
    if has(|f| matches!(f, Filter::RequestRedirect(_))) > 0
        && has(|f| matches!(f, Filter::UrlRewrite(_))) > 0
    {
        cx.error(
            o.child("filters"),
            "RequestRedirect and URLRewrite cannot be used together",
        );
    }
    for (name, n) in [
        (
            "RequestHeaderModifier",
            has(|f| matches!(f, Filter::RequestHeaderModifier(_))),
        ),
        (
            "ResponseHeaderModifier",
            has(|f| matches!(f, Filter::ResponseHeaderModifier(_))),
        ),
        (
            "RequestRedirect",
            has(|f| matches!(f, Filter::RequestRedirect(_))),
        ),
        ("URLRewrite", has(|f| matches!(f, Filter::UrlRewrite(_)))),
    ] {
        if n > 1 {
            cx.error(
                o.child("filters"),
                format!("{name} may appear at most once in a rule's filters"),
            );
        }
    }
    rule
}

fn backend_ref(cx: &mut Cx, b: &mut Obj<'_>) -> BackendRef {
    let br = BackendRef {
        group: b.string(cx, "group").unwrap_or_default(),
        kind: b.string(cx, "kind").unwrap_or_else(|| "Service".into()),
        name: b.string(cx, "name").unwrap_or_default(),
        namespace: b.string(cx, "namespace"),
        port: b.u16(cx, "port"),
        weight: 1,
        filters: Vec::new(),
    };
    if br.name.is_empty() {
        cx.error(b.child("name"), "name is required");
    }
    if br.kind == "Service" && br.group.is_empty() && br.port.is_none() {
        cx.error(b.child("port"), "port is required for a Service backend");
    }
    br
}

fn value_match(cx: &mut Cx, m: &mut Obj<'_>) -> Option<(String, ValueMatch)> {
    let ty = m.string(cx, "type").unwrap_or_else(|| "Exact".into());
    let name = m.string(cx, "name").unwrap_or_default();
    let value = m.string(cx, "value").unwrap_or_default();
    if name.is_empty() {
        cx.error(m.child("name"), "name is required");
        return None;
    }
    match ty.as_str() {
        "Exact" => Some((name, ValueMatch::Exact(value))),
        "RegularExpression" => {
            if let Err(e) = regex::Regex::new(&value) {
                cx.error(m.child("value"), format!("not a regular expression: {e}"));
                return None;
            }
            Some((name, ValueMatch::Regex(value)))
        }
        other => {
            cx.error(
                m.child("type"),
                format!("{other:?} is not Exact or RegularExpression"),
            );
            None
        }
    }
}

fn route_match(cx: &mut Cx, m: &mut Obj<'_>, kind: RouteKind) -> RouteMatch {
    let mut out = RouteMatch::default();
    if kind == RouteKind::Http
        && let Some(mut p) = m.obj(cx, "path")
    {
        let ty = p.string(cx, "type").unwrap_or_else(|| "PathPrefix".into());
        let value = p.string(cx, "value").unwrap_or_else(|| "/".into());
        if !value.starts_with('/') {
            cx.error(p.child("value"), "a path must start with /");
        }
        out.path = match ty.as_str() {
            "Exact" => Some(PathMatch::Exact(value)),
            "PathPrefix" => Some(PathMatch::Prefix(value)),
            "RegularExpression" => match regex::Regex::new(&value) {
                Ok(_) => Some(PathMatch::Regex(value)),
                Err(e) => {
                    cx.error(p.child("value"), format!("not a regular expression: {e}"));
                    None
                }
            },
            other => {
                cx.error(
                    p.child("type"),
                    format!("{other:?} is not Exact, PathPrefix or RegularExpression"),
                );
                None
            }
        };
        p.finish(cx);
    }
    for (v, p) in m.list(cx, "headers") {
        let Some(mut h) = Obj::new(cx, v, p) else {
            continue;
        };
        if let Some((name, vm)) = value_match(cx, &mut h) {
            let name = name.to_ascii_lowercase();
            // The first match of a name counts (the API's rule for repeated names).
            if !out.headers.iter().any(|(n, _)| *n == name) {
                out.headers.push((name, vm));
            }
        }
        h.finish(cx);
    }
    if kind == RouteKind::Http {
        for (v, p) in m.list(cx, "queryParams") {
            let Some(mut h) = Obj::new(cx, v, p) else {
                continue;
            };
            if let Some((name, vm)) = value_match(cx, &mut h)
                && !out.query_params.iter().any(|(n, _)| *n == name)
            {
                out.query_params.push((name, vm));
            }
            h.finish(cx);
        }
        out.method = m.string(cx, "method");
    } else if let Some(mut g) = m.obj(cx, "method") {
        let ty = g.string(cx, "type").unwrap_or_else(|| "Exact".into());
        let gm = GrpcMethodMatch {
            regex: ty == "RegularExpression",
            service: g.string(cx, "service"),
            method: g.string(cx, "method"),
        };
        if !matches!(ty.as_str(), "Exact" | "RegularExpression") {
            cx.error(
                g.child("type"),
                format!("{ty:?} is not Exact or RegularExpression"),
            );
        }
        if gm.service.is_none() && gm.method.is_none() {
            cx.error(g.path().to_owned(), "one of service and method is required");
        }
        g.finish(cx);
        out.grpc = Some(gm);
    }
    out
}

fn header_modifier(cx: &mut Cx, v: &Value, p: String) -> HeaderModifier {
    let mut h = HeaderModifier::default();
    let Some(mut o) = Obj::new(cx, v, p) else {
        return h;
    };
    for (key, list) in [("set", &mut h.set), ("add", &mut h.add)] {
        for (v, p) in o.list(cx, key) {
            let Some(mut e) = Obj::new(cx, v, p) else {
                continue;
            };
            let name = e.string(cx, "name").unwrap_or_default();
            let value = e.string(cx, "value").unwrap_or_default();
            if name.is_empty() {
                cx.error(e.child("name"), "name is required");
            }
            e.finish(cx);
            list.push((name.to_ascii_lowercase(), value));
        }
    }
    h.remove = o
        .strings(cx, "remove")
        .into_iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    o.finish(cx);
    h
}

fn path_modifier(cx: &mut Cx, o: &mut Obj<'_>) -> Option<PathModifier> {
    let mut p = o.obj(cx, "path")?;
    let ty = p.string(cx, "type").unwrap_or_default();
    let m = match ty.as_str() {
        "ReplaceFullPath" => p.string(cx, "replaceFullPath").map(PathModifier::Full),
        "ReplacePrefixMatch" => p.string(cx, "replacePrefixMatch").map(PathModifier::Prefix),
        other => {
            cx.error(
                p.child("type"),
                format!("{other:?} is not ReplaceFullPath or ReplacePrefixMatch"),
            );
            None
        }
    };
    if m.is_none() && matches!(ty.as_str(), "ReplaceFullPath" | "ReplacePrefixMatch") {
        let key = if ty == "ReplaceFullPath" {
            "replaceFullPath"
        } else {
            "replacePrefixMatch"
        };
        cx.error(p.child(key), format!("{key} is required for type {ty}"));
    }
    p.finish(cx);
    m
}

fn filter(cx: &mut Cx, v: &Value, p: String) -> Option<Filter> {
    let mut o = Obj::new(cx, v, p)?;
    let ty = o.string(cx, "type").unwrap_or_default();
    let f = match ty.as_str() {
        "RequestHeaderModifier" => {
            let (v, p) = o.required(cx, "requestHeaderModifier")?;
            Filter::RequestHeaderModifier(header_modifier(cx, v, p))
        }
        "ResponseHeaderModifier" => {
            let (v, p) = o.required(cx, "responseHeaderModifier")?;
            Filter::ResponseHeaderModifier(header_modifier(cx, v, p))
        }
        "RequestRedirect" => {
            let mut r = o.obj(cx, "requestRedirect")?;
            let f = RequestRedirect {
                scheme: r.string(cx, "scheme"),
                hostname: r.string(cx, "hostname"),
                path: path_modifier(cx, &mut r),
                port: r.u16(cx, "port"),
                status_code: r.u16(cx, "statusCode").unwrap_or(302),
            };
            if !matches!(f.status_code, 301 | 302 | 303 | 307 | 308) {
                cx.error(
                    r.child("statusCode"),
                    format!("{} is not 301, 302, 303, 307 or 308", f.status_code),
                );
            }
            if let Some(s) = &f.scheme
                && !matches!(s.as_str(), "http" | "https")
            {
                cx.error(r.child("scheme"), format!("{s:?} is not http or https"));
            }
            r.finish(cx);
            Filter::RequestRedirect(f)
        }
        "URLRewrite" => {
            let mut r = o.obj(cx, "urlRewrite")?;
            let f = UrlRewrite {
                hostname: r.string(cx, "hostname"),
                path: path_modifier(cx, &mut r),
            };
            r.finish(cx);
            Filter::UrlRewrite(f)
        }
        "RequestMirror" => {
            let mut r = o.obj(cx, "requestMirror")?;
            let backend = match r.obj(cx, "backendRef") {
                Some(mut b) => {
                    let br = backend_ref(cx, &mut b);
                    b.finish(cx);
                    br
                }
                None => {
                    cx.error(r.child("backendRef"), "backendRef is required");
                    return None;
                }
            };
            let mut percent = r.u32(cx, "percent").map(f64::from);
            if let Some(mut fr) = r.obj(cx, "fraction") {
                let num = fr.u32(cx, "numerator").unwrap_or(0);
                let den = fr.u32(cx, "denominator").unwrap_or(100);
                if den == 0 || num > den {
                    cx.error(fr.path().to_owned(), "numerator must be ≤ denominator > 0");
                } else {
                    percent = Some(f64::from(num) * 100.0 / f64::from(den));
                }
                fr.finish(cx);
            }
            r.finish(cx);
            Filter::RequestMirror(RequestMirror { backend, percent })
        }
        "" => {
            cx.error(o.child("type"), "type is required");
            return None;
        }
        other => {
            cx.warn(
                o.child("type"),
                format!("filter {other} is not supported here: requests this rule matches get 500"),
            );
            o.take_all();
            Filter::Unsupported(other.to_owned())
        }
    };
    o.finish(cx);
    Some(f)
}

fn reference_grant(cx: &mut Cx, s: &mut Obj<'_>, meta: Meta) -> ReferenceGrant {
    let mut g = ReferenceGrant::default();
    for (v, p) in s.list(cx, "from") {
        let Some(mut o) = Obj::new(cx, v, p) else {
            continue;
        };
        let group = o.string(cx, "group").unwrap_or_default();
        let kind = o.string(cx, "kind").unwrap_or_default();
        let namespace = o.string(cx, "namespace").unwrap_or_default();
        o.finish(cx);
        g.from.push((group, kind, namespace));
    }
    for (v, p) in s.list(cx, "to") {
        let Some(mut o) = Obj::new(cx, v, p) else {
            continue;
        };
        let group = o.string(cx, "group").unwrap_or_default();
        let kind = o.string(cx, "kind").unwrap_or_default();
        let name = o.string(cx, "name");
        o.finish(cx);
        g.to.push((group, kind, name));
    }
    g.meta = meta;
    g
}

fn service(cx: &mut Cx, s: &mut Obj<'_>, meta: Meta) -> Service {
    let mut svc = Service {
        cluster_ip: s.string(cx, "clusterIP").filter(|ip| ip != "None"),
        ..Service::default()
    };
    for (v, p) in s.list(cx, "ports") {
        let Some(mut o) = Obj::new(cx, v, p) else {
            continue;
        };
        let port = ServicePort {
            name: o.string(cx, "name").unwrap_or_default(),
            port: o.u16(cx, "port").unwrap_or(0),
            target_port: o
                .value(cx, "targetPort")
                .and_then(|(v, _)| v.as_u64())
                .and_then(|n| u16::try_from(n).ok()),
            app_protocol: o.string(cx, "appProtocol"),
        };
        if port.port == 0 {
            cx.error(o.child("port"), "a port (1-65535) is required");
        }
        // protocol (TCP, UDP), nodePort and the rest do not change HTTP routing.
        o.take_all();
        svc.ports.push(port);
    }
    // selector, type, sessionAffinity …: endpoints come from EndpointSlices here.
    s.take_all();
    svc.meta = meta;
    svc
}

fn endpoint_slice(cx: &mut Cx, o: &mut Obj<'_>, meta: Meta, service: String) -> EndpointSlice {
    let mut slice = EndpointSlice {
        service,
        ..EndpointSlice::default()
    };
    if slice.service.is_empty() {
        cx.warn(
            meta.path("EndpointSlice", "metadata.labels"),
            "no kubernetes.io/service-name label: the slice belongs to no Service, ignored",
        );
    }
    o.ignore(cx, "addressType");
    for (v, p) in o.list(cx, "ports") {
        let Some(mut po) = Obj::new(cx, v, p) else {
            continue;
        };
        let name = po.string(cx, "name").unwrap_or_default();
        let port = po.u16(cx, "port").unwrap_or(0);
        po.take_all();
        slice.ports.push((name, port));
    }
    for (v, p) in o.list(cx, "endpoints") {
        let Some(mut e) = Obj::new(cx, v, p) else {
            continue;
        };
        let addresses = e.strings(cx, "addresses");
        let ready = e
            .value(cx, "conditions")
            .and_then(|(c, _)| c.get("ready"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
        e.take_all();
        if ready {
            slice.addresses.extend(addresses);
        }
    }
    o.take_all();
    slice.meta = meta;
    slice
}
