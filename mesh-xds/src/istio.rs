//! Istio networking YAML (`networking.istio.io` VirtualService, DestinationRule, Gateway,
//! ServiceEntry, WorkloadEntry) and its translation into the [`mesh_core::config`] model.
//! Kubernetes Gateway API objects in the same files are read too and served as Istio serves
//! them ([`gateway_api`]).
//!
//! Two steps, as pilot takes them:
//!
//! 1. [`parse_str`] / [`load_paths`] read multi-document Kubernetes YAML (or JSON) into typed
//!    [`Resources`]. Every problem names the resource and the field, the way `istioctl analyze`
//!    does: `reviews.default VirtualService: spec.http[0].route[1].weight`. Unknown fields and
//!    settings the proxy cannot honour are [`Warning`]s with their path; bad values (durations,
//!    negative weights, wrong types) are errors, and a file with any error is rejected with
//!    [`LoadError::Invalid`] listing all of them. Other kinds and other API groups are skipped
//!    with a warning.
//! 2. [`translate`] builds a [`Bootstrap`](mesh_core::config::Bootstrap) for one proxy, a sidecar or a gateway
//!    ([`Options`], [`Role`]), following SEMANTICS.md §8: clusters named
//!    `outbound|PORT|SUBSET|FQDN` (one per service port and per DestinationRule subset, the
//!    endpoints filtered by subset labels as pilot does), routes per VirtualService `http[]`
//!    rule and match block, the fault and CORS filters configured per route, Istio's defaults
//!    for timeouts (0 s), retries (2 attempts), circuit breakers (2³²−1) and connect timeouts
//!    (10 s). Cross-resource checks (an undefined subset, a gateway that does not exist) are
//!    errors; the result passes [`Bootstrap::validate`](mesh_core::config::Bootstrap::validate) or the translation fails.
//!
//! # Sidecar and ports
//!
//! A real sidecar has one listener per service port behind iptables. Here one outbound HTTP
//! listener (on [`Options::bind_address`] and [`Role::Sidecar::outbound_port`]) serves every
//! service, so its one route configuration (named by the outbound port) keeps the ports in the
//! domains: each HTTP port of a service is a virtual host named `FQDN:PORT` (pilot's naming)
//! with domains `FQDN:PORT`, and for services in the proxy's namespace also `name:PORT`,
//! `name.ns:PORT`, `name.ns.svc:PORT`. Port matching is therefore **not** ignored (pilot sets
//! `ignore_port_in_host_matching`; it can because its listener knows the port). A `Host`
//! without a port has lost which port it targeted: the port-less names go to port 80 when the
//! service has it, else to its first HTTP port. A domain already used by another virtual host is
//! dropped with a warning (Envoy rejects duplicates).
//!
//! # Decisions where Istio had no answer for this setting
//!
//! - ServiceEntry hosts are resolved like every other host (a short name `reviews` in namespace
//!   `default` is `reviews.default.svc.cluster.local`), so a ServiceEntry can stand in for a
//!   Kubernetes Service. When two ServiceEntries define a host, the first wins (warning).
//! - `resolution: NONE` needs original-destination clusters, which the model does not have: the
//!   cluster is STATIC with the listed endpoints, if any, else none (503); a warning says so.
//!   `DNS_ROUND_ROBIN` is read as `DNS` (STRICT_DNS).
//! - Ports with protocol HTTP, HTTP2, GRPC, GRPC-WEB, or no protocol and a name that is not a
//!   known TCP protocol, are HTTP (Istio would sniff). Other ports get clusters but no routes.
//! - A destination host without a ServiceEntry still yields its cluster name (pilot does too;
//!   requests get 503) and a warning; an undefined subset is an error.
//! - Two mesh VirtualServices for one host: the first wins, the second is warned about. Two
//!   VirtualServices for one host on one gateway port: routes merged, catch-alls last, warning.
//! - Gateways: the listener is named `<bind>_<local port>` (what it binds); the route
//!   configuration `http.<server port>` and virtual hosts `<host>:<server port>` keep pilot's
//!   names. Two server ports mapped to one local port fail validation.
//! - Route configurations are inline (not RDS) with `validate_clusters: false`, as pilot sets.
//!
//! # Not supported (a warning with the field's path)
//!
//! TLS everywhere (DestinationRule `tls` other than `DISABLE`, HTTPS/TLS gateway servers), TCP
//! and TLS routes, delegate VirtualServices, `exportTo`, DestinationRule `workloadSelector`,
//! locality load-balancer settings, warmup, `PASSTHROUGH`, TCP keepalive and connection
//! duration, HTTP/2 stream settings, `retryRemoteLocalities`, `exponentialDelay`,
//! `http2Error` aborts, ServiceEntry `addresses`, unix-socket endpoints, gateway server `bind`,
//! the retry conditions `envoy-ratelimited` and `http3-post-connect-failure`, and every kind
//! other than the five above (PeerAuthentication, Sidecar, …: skipped). A match block with a
//! JWT claim condition (`@request.auth.claims.*`) never matches (warning): dropping only the
//! condition would widen the match.
//!
//! # Examples
//!
//! ```
//! use mesh_xds::istio::{self, Options};
//! let yaml = r#"
//! apiVersion: networking.istio.io/v1
//! kind: ServiceEntry
//! metadata: { name: reviews }
//! spec:
//!   hosts: [reviews]
//!   ports: [{ number: 9080, name: http, protocol: HTTP }]
//!   resolution: STATIC
//!   endpoints:
//!   - { address: 127.0.0.1, ports: { http: 19081 }, labels: { version: v1 } }
//! ---
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: { name: reviews }
//! spec:
//!   hosts: [reviews]
//!   http:
//!   - route: [{ destination: { host: reviews } }]
//!     timeout: 2s
//! "#;
//! let resources = istio::parse_str(yaml, "inline", "default")?.value;
//! let bootstrap = istio::translate(&resources, &Options::sidecar(15001))?.value;
//! assert!(bootstrap.cluster("outbound|9080||reviews.default.svc.cluster.local").is_some());
//! # Ok::<(), mesh_xds::LoadError>(())
//! ```

mod destination_rule;
mod gateway;
pub mod gateway_api;
mod peer_authentication;
mod rules;
mod service_entry;
mod translate;
mod virtual_service;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use self::destination_rule::*;
pub use self::gateway::*;
pub use self::peer_authentication::*;
pub use self::service_entry::*;
pub use self::translate::translate;
pub use self::virtual_service::*;
use crate::envoy::{Cx, Obj, as_string};
pub use crate::envoy::{Loaded, Warning};
pub use crate::error::LoadError;

/// The Istio networking resources read from one or more files.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resources {
    /// VirtualServices, in file order.
    pub virtual_services: Vec<VirtualService>,
    /// DestinationRules, in file order.
    pub destination_rules: Vec<DestinationRule>,
    /// Gateways, in file order.
    pub gateways: Vec<Gateway>,
    /// ServiceEntries, in file order.
    pub service_entries: Vec<ServiceEntry>,
    /// WorkloadEntries, in file order.
    pub workload_entries: Vec<WorkloadEntry>,
    /// PeerAuthentications (security.istio.io), in file order.
    pub peer_authentications: Vec<PeerAuthentication>,
    /// Kubernetes TLS Secrets (`v1` `Secret`): Gateway `credentialName`s.
    pub secrets: Vec<TlsSecret>,
    /// The Kubernetes Gateway API objects, with the Services and EndpointSlices they name.
    pub gateway_api: gateway_api::GatewayApi,
}

/// A Kubernetes Secret holding TLS credentials, as a Gateway's `credentialName` names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSecret {
    /// Name, namespace, source.
    pub meta: Meta,
    /// `tls.crt` (PEM).
    pub certificate: Option<String>,
    /// `tls.key` (PEM).
    pub private_key: Option<String>,
    /// `ca.crt` (PEM): the CA a MUTUAL server checks clients against.
    pub ca_certificate: Option<String>,
}

impl Resources {
    /// Appends every resource of `other` (builder-free merge of several files).
    pub fn extend(&mut self, other: Resources) {
        self.virtual_services.extend(other.virtual_services);
        self.destination_rules.extend(other.destination_rules);
        self.gateways.extend(other.gateways);
        self.service_entries.extend(other.service_entries);
        self.workload_entries.extend(other.workload_entries);
        self.peer_authentications.extend(other.peer_authentications);
        self.secrets.extend(other.secrets);
        self.gateway_api.extend(other.gateway_api);
    }

    /// Adds the resources of `other` as successive `kubectl apply`s would: one with the kind,
    /// namespace and name of a resource already here replaces it (keeping its place, as an
    /// update keeps an object's creation time, which orders VirtualServices for one host);
    /// the others are appended. Returns a warning for each replacement, naming both sources.
    pub fn apply(&mut self, other: Resources) -> Vec<Warning> {
        let mut warnings = Vec::new();
        apply_list(
            &mut self.virtual_services,
            other.virtual_services,
            |r| &r.meta,
            "VirtualService",
            &mut warnings,
        );
        apply_list(
            &mut self.destination_rules,
            other.destination_rules,
            |r| &r.meta,
            "DestinationRule",
            &mut warnings,
        );
        apply_list(
            &mut self.gateways,
            other.gateways,
            |r| &r.meta,
            "Gateway",
            &mut warnings,
        );
        apply_list(
            &mut self.service_entries,
            other.service_entries,
            |r| &r.meta,
            "ServiceEntry",
            &mut warnings,
        );
        apply_list(
            &mut self.workload_entries,
            other.workload_entries,
            |r| &r.meta,
            "WorkloadEntry",
            &mut warnings,
        );
        apply_list(
            &mut self.peer_authentications,
            other.peer_authentications,
            |r| &r.meta,
            "PeerAuthentication",
            &mut warnings,
        );
        apply_list(
            &mut self.secrets,
            other.secrets,
            |r| &r.meta,
            "Secret",
            &mut warnings,
        );
        gateway_api::apply(&mut self.gateway_api, other.gateway_api, &mut warnings);
        warnings
    }

    /// Whether no resource was read.
    pub fn is_empty(&self) -> bool {
        self.virtual_services.is_empty()
            && self.destination_rules.is_empty()
            && self.gateways.is_empty()
            && self.service_entries.is_empty()
            && self.workload_entries.is_empty()
            && self.peer_authentications.is_empty()
            && self.secrets.is_empty()
            && self.gateway_api.is_empty()
    }
}

/// [`Resources::apply`] for one kind.
fn apply_list<T>(
    list: &mut Vec<T>,
    items: Vec<T>,
    meta: fn(&T) -> &Meta,
    kind: &str,
    warnings: &mut Vec<Warning>,
) {
    for item in items {
        let m = meta(&item);
        match list
            .iter_mut()
            .find(|r| meta(r).name == m.name && meta(r).namespace == m.namespace)
        {
            Some(old) => {
                warnings.push(Warning {
                    path: m.path(kind, "metadata.name"),
                    message: format!(
                        "{} replaces the definition from {}, as a later kubectl apply would",
                        m.source,
                        meta(old).source
                    ),
                });
                *old = item;
            }
            None => list.push(item),
        }
    }
}

/// The identity of a resource: `metadata.name`, `metadata.namespace` and where it was read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (the default namespace when absent).
    pub namespace: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// Where it came from: `<source name>[<document index>]`.
    pub source: String,
}

impl Meta {
    /// The path of a field of this resource in messages:
    /// `reviews.default VirtualService: spec.http[0]`.
    pub fn path(&self, kind: &str, field: &str) -> String {
        format!("{}.{} {kind}: {field}", self.name, self.namespace)
    }
}

/// Which proxy a translation is for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// A sidecar: one outbound HTTP listener on `bind_address:outbound_port` whose routes are
    /// the mesh-bound VirtualServices plus a default route for every other service.
    Sidecar {
        /// The port of the outbound listener.
        outbound_port: u16,
        /// The workload's labels (for `sourceLabels` matches).
        labels: BTreeMap<String, String>,
    },
    /// A sidecar behind the iptables capture (`mesh-proxy iptables`), in Istio's listener
    /// layout: `virtualOutbound` on 0.0.0.0:15001 hands each connection to the listener for
    /// its original destination (`0.0.0.0_<port>` for HTTP ports, `<VIP>_<port>` for TCP
    /// services, neither bound), else passes it through or drops it per
    /// [`Options::outbound_traffic_policy`]; `virtualInbound` on 0.0.0.0:15006 serves the
    /// ports of the workload `labels` select (`inbound|<port>||` clusters).
    CapturedSidecar {
        /// The workload's labels: they select its WorkloadEntries or ServiceEntry endpoints
        /// (the inbound ports) and `sourceLabels` matches.
        labels: BTreeMap<String, String>,
    },
    /// A gateway: listeners from the Gateways whose selector matches `labels`.
    Gateway {
        /// The gateway workload's labels (`istio: ingressgateway`).
        labels: BTreeMap<String, String>,
        /// Gateway server port → local port bound (80 ⇒ 18080); unmapped ports bind as is.
        port_map: BTreeMap<u16, u16>,
    },
}

/// What [`translate`] builds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Sidecar or gateway.
    pub role: Role,
    /// The proxy's namespace (default `default`): short names and `sourceNamespace`.
    pub namespace: String,
    /// The cluster's DNS suffix (default `cluster.local`).
    pub domain_suffix: String,
    /// The address listeners bind (default 127.0.0.1).
    pub bind_address: IpAddr,
    /// Where a captured sidecar sends connections to addresses no service owns (meshConfig
    /// `outboundTrafficPolicy.mode`, default `ALLOW_ANY`).
    pub outbound_traffic_policy: OutboundTrafficPolicy,
    /// meshConfig `accessLogFile`: every connection manager and TCP proxy logs there in
    /// [`ISTIO_ACCESS_LOG_FORMAT`] (default none).
    pub access_log: Option<mesh_core::config::AccessLogSink>,
    /// Where a Gateway's `credentialName` certificates are: `<name>.crt`, `<name>.key` and
    /// (MUTUAL) `<name>-ca.crt` (default `/etc/istio/credentials`).
    pub credentials_dir: String,
    /// Where the workload's identity is (`ISTIO_MUTUAL`): `cert-chain.pem`, `key.pem` and
    /// `root-cert.pem`, as Istio's agent writes them (default `/etc/certs`). The files are
    /// followed as they rotate.
    pub identity_dir: String,
}

/// The CA bundle that DestinationRules without `caCertificates` trust (Debian's system
/// bundle, as Istio verifies against the system's roots).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Istio's default access-log format, without the operators the proxy does not produce
/// (`%RESPONSE_CODE_DETAILS%`, `%CONNECTION_TERMINATION_DETAILS%`,
/// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`, `%UPSTREAM_LOCAL_ADDRESS%`,
/// `%REQUESTED_SERVER_NAME%`).
pub const ISTIO_ACCESS_LOG_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %ROUTE_NAME%\n";

/// meshConfig `outboundTrafficPolicy.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutboundTrafficPolicy {
    /// `ALLOW_ANY`: to where they were going (`PassthroughCluster`).
    #[default]
    AllowAny,
    /// `REGISTRY_ONLY`: refused (`BlackHoleCluster`; HTTP gets 502).
    RegistryOnly,
}

impl Options {
    /// A sidecar with its outbound listener on `outbound_port`, no labels, namespace
    /// `default`, suffix `cluster.local`, bound to 127.0.0.1.
    pub fn sidecar(outbound_port: u16) -> Self {
        Self::with_role(Role::Sidecar {
            outbound_port,
            labels: BTreeMap::new(),
        })
    }

    /// A gateway workload with these labels and no port mapping (other settings as
    /// [`Options::sidecar`]).
    ///
    /// ```
    /// use mesh_xds::istio::{self, Options};
    /// let yaml = r#"
    /// apiVersion: networking.istio.io/v1
    /// kind: Gateway
    /// metadata: { name: web }
    /// spec:
    ///   selector: { istio: ingressgateway }
    ///   servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ["*"] }]
    /// ---
    /// apiVersion: networking.istio.io/v1
    /// kind: VirtualService
    /// metadata: { name: web }
    /// spec:
    ///   hosts: ["*"]
    ///   gateways: [web]
    ///   http: [{ directResponse: { status: 200, body: { string: ok } } }]
    /// "#;
    /// let resources = istio::parse_str(yaml, "inline", "default")?.value;
    /// let opts = Options::gateway([("istio", "ingressgateway")]).map_port(80, 18080);
    /// let bootstrap = istio::translate(&resources, &opts)?.value;
    /// assert_eq!(bootstrap.listeners[0].name, "127.0.0.1_18080");
    /// # Ok::<(), mesh_xds::LoadError>(())
    /// ```
    pub fn gateway<I, K, V>(labels: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self::with_role(Role::Gateway {
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            port_map: BTreeMap::new(),
        })
    }

    /// A sidecar behind the iptables capture ([`Role::CapturedSidecar`]), no labels (other
    /// settings as [`Options::sidecar`]).
    pub fn captured_sidecar() -> Self {
        Self::with_role(Role::CapturedSidecar {
            labels: BTreeMap::new(),
        })
    }

    /// Options for a role with every other setting at its default.
    pub fn with_role(role: Role) -> Self {
        Self {
            role,
            namespace: "default".into(),
            domain_suffix: "cluster.local".into(),
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            outbound_traffic_policy: OutboundTrafficPolicy::AllowAny,
            access_log: None,
            identity_dir: "/etc/certs".into(),
            credentials_dir: "/etc/istio/credentials".into(),
        }
    }

    /// Sets the directory of Gateway `credentialName` files (builder style).
    pub fn credentials_dir(mut self, dir: impl Into<String>) -> Self {
        self.credentials_dir = dir.into();
        self
    }

    /// Sets the workload identity directory (builder style).
    pub fn identity_dir(mut self, dir: impl Into<String>) -> Self {
        self.identity_dir = dir.into();
        self
    }

    /// Sets meshConfig `accessLogFile` (builder style).
    pub fn access_log(mut self, sink: mesh_core::config::AccessLogSink) -> Self {
        self.access_log = Some(sink);
        self
    }

    /// Sets the outbound traffic policy (builder style; a captured sidecar's).
    pub fn outbound_traffic_policy(mut self, policy: OutboundTrafficPolicy) -> Self {
        self.outbound_traffic_policy = policy;
        self
    }

    /// Sets the proxy's namespace (builder style).
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = ns.into();
        self
    }

    /// Sets the bind address (builder style).
    pub fn bind_address(mut self, ip: IpAddr) -> Self {
        self.bind_address = ip;
        self
    }

    /// Sets the DNS suffix (builder style).
    pub fn domain_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.domain_suffix = suffix.into();
        self
    }

    /// Maps a gateway server port to the local port bound (builder style; no effect for a
    /// sidecar).
    pub fn map_port(mut self, server_port: u16, local_port: u16) -> Self {
        if let Role::Gateway { port_map, .. } = &mut self.role {
            port_map.insert(server_port, local_port);
        }
        self
    }

    /// Sets the workload labels (builder style).
    pub fn labels<I, K, V>(mut self, new: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let new = new.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        match &mut self.role {
            Role::Sidecar { labels, .. }
            | Role::CapturedSidecar { labels }
            | Role::Gateway { labels, .. } => *labels = new,
        }
        self
    }
}

const GROUP: &str = "networking.istio.io";
const VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];

/// Reads multi-document Kubernetes YAML (or JSON) holding Istio networking resources.
///
/// `source_name` names the text in messages (a file name); `default_namespace` is used for
/// resources without `metadata.namespace`.
///
/// # Errors
/// [`LoadError::Syntax`] when the text is not YAML; [`LoadError::Invalid`] listing every problem
/// of every document (each path names the resource and the field).
pub fn parse_str(
    text: &str,
    source_name: &str,
    default_namespace: &str,
) -> Result<Loaded<Resources>, LoadError> {
    let docs = documents(text)?;
    let mut cx = Cx::default();
    let mut out = Resources::default();
    for (i, doc) in docs.iter().enumerate() {
        document(
            &mut cx,
            doc,
            &format!("{source_name}[{i}]"),
            default_namespace,
            &mut out,
        );
    }
    if !cx.errors.is_empty() {
        return Err(LoadError::Invalid { errors: cx.errors });
    }
    let mut value = Resources::default();
    let mut warnings = cx.warnings;
    warnings.extend(value.apply(out));
    Ok(Loaded { value, warnings })
}

/// Reads files, or directories (their `*.yaml`, `*.yml` and `*.json` files sorted by name), and
/// merges their resources in order as successive `kubectl apply`s would ([`Resources::apply`]:
/// a later definition of the same resource replaces the earlier one, with a warning).
///
/// # Errors
/// [`LoadError::Io`] when a file cannot be read; a syntax error names its file; otherwise
/// [`LoadError::Invalid`] listing the problems of every file.
pub fn load_paths(
    paths: &[PathBuf],
    default_namespace: &str,
) -> Result<Loaded<Resources>, LoadError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|source| LoadError::Io {
                path: p.clone(),
                source,
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| {
                    f.is_file()
                        && f.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let mut out = Loaded {
        value: Resources::default(),
        warnings: Vec::new(),
    };
    let mut errors = Vec::new();
    for f in files {
        let text = read(&f)?;
        let name = f.display().to_string();
        match parse_str(&text, &name, default_namespace) {
            Ok(l) => {
                out.warnings.extend(l.warnings);
                let replaced = out.value.apply(l.value);
                out.warnings.extend(replaced);
            }
            Err(LoadError::Invalid { errors: e }) => errors.extend(e),
            Err(LoadError::Syntax {
                message,
                line,
                column,
            }) => {
                return Err(LoadError::Syntax {
                    message: format!("{name}: {message}"),
                    line,
                    column,
                });
            }
            Err(e) => return Err(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(LoadError::Invalid { errors })
    }
}

fn read(path: &Path) -> Result<String, LoadError> {
    crate::envoy::read_config(path)
}

/// Every YAML document of the text (JSON is read as one document).
fn documents(text: &str) -> Result<Vec<Value>, LoadError> {
    let text = crate::envoy::prepare_text(text)?;
    if text.trim_start().starts_with('{')
        && let Ok(v) = serde_json::from_str::<Value>(text)
    {
        return Ok(vec![v]);
    }
    crate::yaml::documents(text).map_err(|e| LoadError::from_yaml(&e))
}

fn document(cx: &mut Cx, doc: &Value, source: &str, default_ns: &str, out: &mut Resources) {
    if doc.is_null() {
        return;
    }
    let Some(mut o) = Obj::new(cx, doc, source.to_owned()) else {
        return;
    };
    let api = o.string(cx, "apiVersion").unwrap_or_default();
    let kind = o.string(cx, "kind").unwrap_or_default();
    let (group, version) = api.split_once('/').unwrap_or(("", api.as_str()));
    const KINDS: [&str; 5] = [
        "VirtualService",
        "DestinationRule",
        "Gateway",
        "ServiceEntry",
        "WorkloadEntry",
    ];
    if gateway_api::is_kind(&api, &kind) {
        let meta = metadata(cx, &mut o, source, &kind, default_ns);
        gateway_api::parse(cx, doc, &mut o, &kind, meta, &mut out.gateway_api);
        o.finish(cx);
        return;
    }
    if api == "v1" && kind == "Secret" {
        let meta = metadata(cx, &mut o, source, &kind, default_ns);
        let mut secret = TlsSecret {
            meta,
            ..TlsSecret::default()
        };
        let path = secret.meta.path("Secret", "data");
        let data = o.value(cx, "data");
        let plain = o.value(cx, "stringData");
        let mut field = |key: &str| -> Option<String> {
            if let Some(v) = plain
                .as_ref()
                .and_then(|(v, _)| v.get(key))
                .and_then(Value::as_str)
            {
                return Some(v.to_owned());
            }
            let b64 = data
                .as_ref()
                .and_then(|(v, _)| v.get(key))
                .and_then(Value::as_str)?;
            match crate::envoy::base64_decode(b64).and_then(|b| String::from_utf8(b).ok()) {
                Some(pem) => Some(pem),
                None => {
                    cx.error(format!("{path}.{key}"), "not base64 of PEM text");
                    None
                }
            }
        };
        secret.certificate = field("tls.crt");
        secret.private_key = field("tls.key");
        secret.ca_certificate = field("ca.crt");
        o.take_all();
        out.secrets.push(secret);
        return;
    }
    let security = group == "security.istio.io"
        && matches!(version, "v1" | "v1beta1")
        && kind == "PeerAuthentication";
    if !security
        && (group != GROUP || !VERSIONS.contains(&version) || !KINDS.contains(&kind.as_str()))
    {
        let what = if kind.is_empty() { "<no kind>" } else { &kind };
        let api = if api.is_empty() {
            "<no apiVersion>"
        } else {
            &api
        };
        cx.warn(
            source,
            format!("{what} ({api}) is not a supported kind (networking.istio.io v1, v1beta1 or v1alpha3 VirtualService, DestinationRule, Gateway, ServiceEntry, WorkloadEntry; security.istio.io PeerAuthentication; gateway.networking.k8s.io v1 or v1beta1 GatewayClass, Gateway, HTTPRoute, GRPCRoute, ReferenceGrant; v1 Secret, Service, Namespace; discovery.k8s.io/v1 EndpointSlice), skipped"),
        );
        o.take_all();
        return;
    }
    let errors_before = cx.errors.len();
    let meta = metadata(cx, &mut o, source, &kind, default_ns);
    // Without a name the resource is named by where it is.
    let at = |field: &str| {
        if meta.name.is_empty() {
            format!("{source} {kind}: {field}")
        } else {
            meta.path(&kind, field)
        }
    };
    let root = at("spec");
    let spec = o.value(cx, "spec");
    o.ignore(cx, "status");
    let prefix = at("");
    let prefix = prefix.trim_end();
    if let Some(map) = doc.as_object() {
        for k in map.keys() {
            if !["apiVersion", "kind", "metadata", "spec", "status"].contains(&k.as_str()) {
                cx.warn(format!("{prefix} {k}"), crate::envoy::UNKNOWN);
            }
        }
    }
    let null = Value::Null;
    let spec_value = spec.map_or(&null, |(v, _)| v);
    let Some(mut s) = Obj::new(cx, spec_value, root) else {
        return;
    };
    match kind.as_str() {
        "VirtualService" => {
            let v = virtual_service::parse(cx, &mut s, meta);
            s.finish(cx);
            if cx.errors.len() == errors_before {
                out.virtual_services.push(v);
            }
        }
        "DestinationRule" => {
            let v = destination_rule::parse(cx, &mut s, meta);
            s.finish(cx);
            if cx.errors.len() == errors_before {
                out.destination_rules.push(v);
            }
        }
        "Gateway" => {
            let v = gateway::parse(cx, &mut s, meta);
            s.finish(cx);
            if cx.errors.len() == errors_before {
                out.gateways.push(v);
            }
        }
        "ServiceEntry" => {
            let v = service_entry::parse(cx, &mut s, meta);
            s.finish(cx);
            if cx.errors.len() == errors_before {
                out.service_entries.push(v);
            }
        }
        "PeerAuthentication" => {
            let v = peer_authentication::parse(cx, &mut s, meta);
            s.finish(cx);
            if cx.errors.len() == errors_before {
                out.peer_authentications.push(v);
            }
        }
        _ => {
            let v = service_entry::parse_workload_entry(cx, &mut s, meta);
            s.finish(cx);
            if let Some(v) = v
                && cx.errors.len() == errors_before
            {
                out.workload_entries.push(v);
            }
        }
    }
}

fn metadata(cx: &mut Cx, o: &mut Obj<'_>, source: &str, kind: &str, default_ns: &str) -> Meta {
    let mut meta = Meta {
        namespace: default_ns.to_owned(),
        source: source.to_owned(),
        ..Meta::default()
    };
    let mp = format!("{source} {kind}: metadata");
    let Some((mv, _)) = o.value(cx, "metadata") else {
        cx.error(format!("{mp}.name"), "metadata.name is required");
        return meta;
    };
    let Some(mut m) = Obj::new(cx, mv, mp.clone()) else {
        return meta;
    };
    match m.string(cx, "name") {
        Some(n) if !n.is_empty() => meta.name = n,
        _ => cx.error(format!("{mp}.name"), "metadata.name is required"),
    }
    if let Some(ns) = m.string(cx, "namespace").filter(|n| !n.is_empty()) {
        meta.namespace = ns;
    }
    if let Some((lv, lp)) = m.value(cx, "labels") {
        meta.labels = string_map(cx, lv, &lp);
    }
    // The rest of the object metadata (annotations, uid, resourceVersion …) has no meaning here.
    m.take_all();
    meta
}

// === shared field readers ===

/// A `map<string, string>` (labels, selectors).
pub(crate) fn string_map(cx: &mut Cx, v: &Value, path: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(mut o) = Obj::new(cx, v, path.to_owned()) else {
        return out;
    };
    for (k, v) in o.take_all() {
        let p = crate::envoy::join(path, &k);
        if let Some(s) = as_string(cx, &v, &p) {
            out.insert(k, s);
        }
    }
    out
}

/// Istio's `StringMatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// RE2 full match.
    Regex(String),
    /// Present with any value (`{}`, `regex: "*"` or an empty prefix).
    Present,
    /// A path that equals this or continues with `/` after it (the Gateway API's segment-aware
    /// `PathPrefix`; no Istio field reads as this).
    SegmentPrefix(String),
}

pub(crate) fn string_match(cx: &mut Cx, v: &Value, path: &str) -> Option<StringMatch> {
    let mut o = Obj::new(cx, v, path.to_owned())?;
    let e = o.string(cx, "exact");
    let p = o.string(cx, "prefix");
    let r = o.string(cx, "regex");
    o.finish(cx);
    match (e, p, r) {
        (Some(e), None, None) => Some(StringMatch::Exact(e)),
        (None, Some(p), None) if p.is_empty() => Some(StringMatch::Present),
        (None, Some(p), None) => Some(StringMatch::Prefix(p)),
        (None, None, Some(r)) if r == "*" || r.is_empty() => Some(StringMatch::Present),
        (None, None, Some(r)) => Some(StringMatch::Regex(r)),
        (None, None, None) => Some(StringMatch::Present),
        _ => {
            cx.error(path, "only one of exact, prefix and regex may be set");
            None
        }
    }
}

/// A `PortSelector` (`{number: 9080}`).
pub(crate) fn port_selector(cx: &mut Cx, v: &Value, path: &str) -> Option<u16> {
    let mut o = Obj::new(cx, v, path.to_owned())?;
    let n = o.u16(cx, "number");
    o.finish(cx);
    n
}

/// An IP address (a /32 or /128) or a CIDR, as Istio writes `destinationSubnets` and
/// ServiceEntry `addresses`.
pub(crate) fn cidr(s: &str) -> Option<mesh_core::config::CidrRange> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (s, None),
    };
    let address_prefix: IpAddr = ip.parse().ok()?;
    let max = if address_prefix.is_ipv4() { 32 } else { 128 };
    let prefix_len = match len {
        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max)?,
        None => max,
    };
    Some(mesh_core::config::CidrRange {
        address_prefix,
        prefix_len,
    })
}

/// Resolves a host per SEMANTICS.md §8.1: `*` and names with a dot unchanged (lower-cased), a
/// short name `n` ⇒ `n.<namespace>.svc.<suffix>`.
pub(crate) fn fqdn(host: &str, namespace: &str, suffix: &str) -> String {
    let h = host.to_ascii_lowercase();
    if h == "*" || h.contains('.') || h.parse::<IpAddr>().is_ok() {
        h
    } else {
        format!("{h}.{namespace}.svc.{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_with_the_rules_namespace() {
        assert_eq!(
            fqdn("reviews", "prod", "cluster.local"),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(fqdn("a.b", "prod", "cluster.local"), "a.b");
        assert_eq!(fqdn("*", "prod", "cluster.local"), "*");
    }
}
