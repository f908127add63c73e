//! `DestinationRule` (networking.istio.io): traffic policy and subsets of a host.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{Meta, port_selector, string_map};
use crate::envoy::{Cx, Obj};

/// A DestinationRule.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DestinationRule {
    /// Name, namespace, source.
    pub meta: Meta,
    /// `host`, as written.
    pub host: String,
    /// `trafficPolicy`.
    pub traffic_policy: Option<TrafficPolicy>,
    /// `subsets`.
    pub subsets: Vec<Subset>,
}

/// `trafficPolicy`: the settings, and per-port replacements.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrafficPolicy {
    /// The top-level settings.
    pub policy: Policy,
    /// `portLevelSettings`: port → settings that replace `policy` wholesale on that port.
    pub port_level: Vec<(u16, Policy)>,
}

impl TrafficPolicy {
    /// The port-level entry for `port`, if any.
    pub fn port(&self, port: u16) -> Option<&Policy> {
        self.port_level
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, pol)| pol)
    }
}

/// The four policy fields that port-level settings and subsets override.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    /// `loadBalancer`.
    pub load_balancer: Option<LoadBalancer>,
    /// `connectionPool`.
    pub connection_pool: Option<ConnectionPool>,
    /// `outlierDetection`.
    pub outlier_detection: Option<OutlierDetection>,
    /// `tls`.
    pub tls: Option<ClientTls>,
}

/// `trafficPolicy.tls`: TLS the sidecar originates to the destination.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientTls {
    /// `mode`: `DISABLE`, `SIMPLE`, `MUTUAL` or `ISTIO_MUTUAL`.
    pub mode: String,
    /// `clientCertificate` (MUTUAL): a PEM file.
    pub client_certificate: Option<String>,
    /// `privateKey` (MUTUAL): a PEM file.
    pub private_key: Option<String>,
    /// `caCertificates`: a PEM file of trusted CAs.
    pub ca_certificates: Option<String>,
    /// `subjectAltNames`: the server certificate must carry one.
    pub subject_alt_names: Vec<String>,
    /// `sni`.
    pub sni: Option<String>,
    /// `insecureSkipVerify`.
    pub insecure_skip_verify: bool,
    /// `credentialName`.
    pub credential_name: Option<String>,
}

/// `loadBalancer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadBalancer {
    /// `simple`.
    Simple(SimpleLb),
    /// `consistentHash`.
    ConsistentHash(ConsistentHash),
}

/// `loadBalancer.simple`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimpleLb {
    /// `UNSPECIFIED`: Istio's default (least request).
    Unspecified,
    /// `LEAST_REQUEST` / `LEAST_CONN`.
    LeastRequest,
    /// `ROUND_ROBIN`.
    RoundRobin,
    /// `RANDOM`.
    Random,
    /// `PASSTHROUGH` (original destination; not supported here).
    Passthrough,
}

/// `loadBalancer.consistentHash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistentHash {
    /// What is hashed.
    pub key: HashKey,
    /// `maglev` (else ring hash).
    pub maglev: Option<u64>,
    /// Ring size (`ringHash.minimumRingSize` or the deprecated `minimumRingSize`).
    pub minimum_ring_size: Option<u64>,
}

/// The hash key of a consistent-hash balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// `httpHeaderName`.
    Header(String),
    /// `httpCookie`.
    Cookie {
        /// `name`.
        name: String,
        /// `path`.
        path: String,
        /// `ttl`.
        ttl: Option<Duration>,
    },
    /// `useSourceIp`.
    SourceIp,
    /// `httpQueryParameterName`.
    QueryParameter(String),
    /// None given.
    None,
}

/// `connectionPool` (0 means unset, as in Istio).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionPool {
    /// `tcp.maxConnections`.
    pub max_connections: Option<u32>,
    /// `tcp.connectTimeout`.
    pub connect_timeout: Option<Duration>,
    /// `tcp.idleTimeout`.
    pub tcp_idle_timeout: Option<Duration>,
    /// `http.http1MaxPendingRequests`.
    pub http1_max_pending_requests: Option<u32>,
    /// `http.http2MaxRequests`.
    pub http2_max_requests: Option<u32>,
    /// `http.maxRequestsPerConnection`.
    pub max_requests_per_connection: Option<u32>,
    /// `http.maxRetries`.
    pub max_retries: Option<u32>,
    /// `http.idleTimeout`.
    pub idle_timeout: Option<Duration>,
    /// `http.h2UpgradePolicy: UPGRADE`.
    pub h2_upgrade: bool,
}

/// `outlierDetection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutlierDetection {
    /// `consecutive5xxErrors`.
    pub consecutive_5xx_errors: Option<u32>,
    /// `consecutiveGatewayErrors`.
    pub consecutive_gateway_errors: Option<u32>,
    /// `interval`.
    pub interval: Option<Duration>,
    /// `baseEjectionTime`.
    pub base_ejection_time: Option<Duration>,
    /// `maxEjectionPercent`.
    pub max_ejection_percent: Option<u32>,
    /// `minHealthPercent`.
    pub min_health_percent: Option<u32>,
    /// `splitExternalLocalOriginErrors`.
    pub split_external_local_origin_errors: bool,
    /// `consecutiveLocalOriginFailures`.
    pub consecutive_local_origin_failures: Option<u32>,
}

/// A subset.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Subset {
    /// `name`.
    pub name: String,
    /// `labels`.
    pub labels: BTreeMap<String, String>,
    /// `trafficPolicy`.
    pub traffic_policy: Option<TrafficPolicy>,
}

pub(crate) fn parse(cx: &mut Cx, s: &mut Obj<'_>, meta: Meta) -> DestinationRule {
    let mut dr = DestinationRule::default();
    match s.string(cx, "host") {
        Some(h) if !h.is_empty() => {
            if let Err(e) = super::rules::wildcard_domain(&h) {
                cx.error(s.child("host"), e);
            }
            dr.host = h;
        }
        _ => cx.error(s.child("host"), "host is required"),
    }
    if let Some((v, p)) = s.value(cx, "trafficPolicy") {
        dr.traffic_policy = traffic_policy(cx, v, p, true);
    }
    let mut seen = Vec::new();
    for (v, p) in s.list(cx, "subsets") {
        let Some(mut o) = Obj::new(cx, v, p) else {
            continue;
        };
        let name = o.string(cx, "name").unwrap_or_default();
        if let Err(e) = super::rules::subset_name(&name) {
            cx.error(o.child("name"), e);
        } else if seen.contains(&name) {
            cx.error(o.child("name"), format!("duplicate subset names: {name}"));
        }
        seen.push(name.clone());
        let labels = match o.value(cx, "labels") {
            Some((v, p)) => {
                let labels = string_map(cx, v, &p);
                for e in super::rules::labels(&labels) {
                    cx.error(p.clone(), e);
                }
                labels
            }
            None => BTreeMap::new(),
        };
        let traffic_policy = match o.value(cx, "trafficPolicy") {
            Some((v, p)) => traffic_policy(cx, v, p, true),
            None => None,
        };
        o.finish(cx);
        dr.subsets.push(Subset {
            name,
            labels,
            traffic_policy,
        });
    }
    super::rules::export_to(cx, s, false);
    if let Some(mut ws) = s.obj(cx, "workloadSelector") {
        if let Some((v, p)) = ws.value(cx, "matchLabels") {
            let labels = string_map(cx, v, &p);
            for e in super::rules::selector(&labels) {
                cx.error(p.clone(), e);
            }
        }
        cx.warn(
            ws.path(),
            "workloadSelector is not supported: the rule applies to every proxy",
        );
        ws.finish(cx);
    }
    dr.meta = meta;
    dr
}

fn traffic_policy(cx: &mut Cx, v: &Value, path: String, top: bool) -> Option<TrafficPolicy> {
    const FIELDS: [&str; 8] = [
        "outlierDetection",
        "connectionPool",
        "loadBalancer",
        "tls",
        "portLevelSettings",
        "tunnel",
        "proxyProtocol",
        "retryBudget",
    ];
    if !FIELDS
        .iter()
        .any(|f| v.get(f).is_some_and(|x| !x.is_null()))
    {
        cx.error(path.clone(), "traffic policy must have at least one field");
    }
    if v.get("tunnel").is_some() && v.get("proxyProtocol").is_some() {
        cx.error(
            path.clone(),
            "tunnel and proxyProtocol must not be set together",
        );
    }
    let mut o = Obj::new(cx, v, path)?;
    let mut tp = TrafficPolicy {
        policy: policy(cx, &mut o),
        port_level: Vec::new(),
    };
    if top {
        for (v, p) in o.list(cx, "portLevelSettings") {
            if v.is_null() {
                cx.error(p, "traffic policy may not be null");
                continue;
            }
            if !["outlierDetection", "connectionPool", "loadBalancer", "tls"]
                .iter()
                .any(|f| v.get(f).is_some_and(|x| !x.is_null()))
            {
                cx.error(
                    p.clone(),
                    "port traffic policy must have at least one field",
                );
            }
            let Some(mut po) = Obj::new(cx, v, p) else {
                continue;
            };
            let port = match po.required(cx, "port") {
                Some((v, p)) => port_selector(cx, v, &p),
                None => None,
            };
            let pol = policy(cx, &mut po);
            po.finish(cx);
            if let Some(port) = port {
                tp.port_level.push((port, pol));
            }
        }
        for key in ["tunnel", "proxyProtocol", "retryBudget"] {
            o.unsupported(cx, key, "not supported, ignored");
        }
    }
    o.finish(cx);
    Some(tp)
}

fn policy(cx: &mut Cx, o: &mut Obj<'_>) -> Policy {
    let mut p = Policy::default();
    if let Some(mut lb) = o.obj(cx, "loadBalancer") {
        p.load_balancer = load_balancer(cx, &mut lb);
        lb.finish(cx);
    }
    if let Some(mut cp) = o.obj(cx, "connectionPool") {
        p.connection_pool = Some(connection_pool(cx, &mut cp));
        cp.finish(cx);
    }
    if let Some(mut od) = o.obj(cx, "outlierDetection") {
        p.outlier_detection = Some(outlier(cx, &mut od));
        od.finish(cx);
    }
    if let Some(mut t) = o.obj(cx, "tls") {
        let mode = t.string(cx, "mode").unwrap_or_else(|| "DISABLE".into());
        let read = |t: &Obj<'_>, k: &str| {
            t.value_of(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let tls = ClientTls {
            client_certificate: read(&t, "clientCertificate"),
            private_key: read(&t, "privateKey"),
            ca_certificates: read(&t, "caCertificates"),
            sni: read(&t, "sni"),
            credential_name: read(&t, "credentialName"),
            subject_alt_names: t
                .value_of("subjectAltNames")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            insecure_skip_verify: t
                .value_of("insecureSkipVerify")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            mode: mode.clone(),
        };
        if !matches!(
            mode.as_str(),
            "DISABLE" | "SIMPLE" | "MUTUAL" | "ISTIO_MUTUAL"
        ) {
            cx.error(t.child("mode"), format!("unknown TLS mode {mode:?}"));
        }
        // A credential from a Kubernetes Secret, or a revocation list, would change what the
        // sidecar trusts: what it cannot read is an error.
        if tls.credential_name.is_some() {
            cx.error(
                t.child("credentialName"),
                "credentialName is not supported for sidecars; give clientCertificate, privateKey and caCertificates files",
            );
        }
        if read(&t, "caCrl").is_some() {
            cx.error(
                t.child("caCrl"),
                "certificate revocation lists are not supported",
            );
        }
        tls_rules(cx, &mut t, &mode);
        t.finish(cx);
        p.tls = Some(tls);
    }
    p
}

/// Istio's `localityLbSetting` rules (`ValidateLocalityLbSetting`), the first failing one.
fn locality_rules(cx: &mut Cx, l: &Obj<'_>) {
    let path = l.path().to_owned();
    let list = |k: &str| {
        l.value_of(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (distribute, failover) = (list("distribute"), list("failover"));
    if !distribute.is_empty() && !failover.is_empty() {
        cx.error(
            path,
            "can not simultaneously specify 'distribute' and 'failover'",
        );
        return;
    }
    for (i, d) in distribute.iter().enumerate() {
        let to = d.get("to").and_then(Value::as_object);
        let weights: Vec<u64> = to
            .map(|m| m.values().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let p = format!("{path}.distribute[{i}].to");
        if weights.iter().any(|w| !(1..=100).contains(w)) {
            cx.error(p, "locality weight must be in range [1, 100]");
            return;
        }
        let total: u64 = weights.iter().sum();
        if total != 100 {
            cx.error(p, format!("total locality weight {total} != 100"));
            return;
        }
    }
    for (i, f) in failover.iter().enumerate() {
        let p = format!("{path}.failover[{i}]");
        let from = f.get("from").and_then(Value::as_str).unwrap_or("");
        let to = f.get("to").and_then(Value::as_str).unwrap_or("");
        if from == to {
            cx.error(
                p,
                "locality lb failover settings must specify different regions",
            );
        } else if from.contains('/') || to.contains('/') {
            cx.error(p, "locality lb failover only specify region");
        } else if from.contains('*') || to.contains('*') {
            cx.error(
                p,
                "locality lb failover region should not contain '*' wildcard",
            );
        }
    }
}

/// Istio's client TLS settings rules (`ValidateTLS`).
fn tls_rules(cx: &mut Cx, t: &mut Obj<'_>, mode: &str) {
    let mut set = |cx: &mut Cx, k: &str| t.string(cx, k).is_some_and(|v| !v.is_empty());
    let client_cert = set(cx, "clientCertificate");
    let key = set(cx, "privateKey");
    let ca = set(cx, "caCertificates");
    let credential = set(cx, "credentialName");
    let crl = set(cx, "caCrl");
    t.ignore(cx, "sni");
    let sans = t.has("subjectAltNames");
    t.ignore(cx, "subjectAltNames");
    let insecure = t.bool(cx, "insecureSkipVerify").unwrap_or(false);
    let path = t.path().to_owned();
    if insecure {
        if mode == "SIMPLE" && (ca || credential || sans) {
            cx.error(path.clone(), "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true");
        }
        if mode == "MUTUAL" && (ca || sans) {
            cx.error(
                path.clone(),
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
    }
    if matches!(mode, "SIMPLE" | "MUTUAL") && credential {
        if client_cert || ca || key || crl {
            cx.error(path, "cannot specify client certificates or CA certificate or CA CRL If credentialName is set");
        }
        return;
    }
    if mode == "MUTUAL" {
        if !client_cert {
            cx.error(
                format!("{path}.clientCertificate"),
                "client certificate required for mutual tls",
            );
        }
        if !key {
            cx.error(
                format!("{path}.privateKey"),
                "private key required for mutual tls",
            );
        }
    }
}

fn load_balancer(cx: &mut Cx, o: &mut Obj<'_>) -> Option<LoadBalancer> {
    let simple = o.enumeration(
        cx,
        "simple",
        &[
            ("UNSPECIFIED", SimpleLb::Unspecified),
            ("LEAST_CONN", SimpleLb::LeastRequest),
            ("LEAST_REQUEST", SimpleLb::LeastRequest),
            ("ROUND_ROBIN", SimpleLb::RoundRobin),
            ("RANDOM", SimpleLb::Random),
            ("PASSTHROUGH", SimpleLb::Passthrough),
        ],
    );
    if simple == Some(SimpleLb::Passthrough) {
        cx.warn(
            o.child("simple"),
            "PASSTHROUGH (original destination) is not supported: least request is used",
        );
    }
    let mut hash = None;
    if let Some(mut ch) = o.obj(cx, "consistentHash") {
        let mut key = HashKey::None;
        if let Some(h) = ch.string(cx, "httpHeaderName") {
            key = HashKey::Header(h.to_ascii_lowercase());
        }
        if let Some(mut c) = ch.obj(cx, "httpCookie") {
            let name = c.string(cx, "name").unwrap_or_default();
            if name.is_empty() {
                cx.error(c.child("name"), "name required for HttpCookie");
            }
            key = HashKey::Cookie {
                name,
                path: c.string(cx, "path").unwrap_or_default(),
                ttl: c.duration(cx, "ttl"),
            };
            c.unsupported(
                cx,
                "attributes",
                "cookie attributes are not supported, ignored",
            );
            c.finish(cx);
        }
        if ch.bool(cx, "useSourceIp") == Some(true) {
            key = HashKey::SourceIp;
        }
        if let Some(q) = ch.string(cx, "httpQueryParameterName") {
            key = HashKey::QueryParameter(q);
        }
        let mut min = ch.u64(cx, "minimumRingSize");
        let deprecated_min = min.is_some_and(|m| m > 0);
        if deprecated_min {
            cx.warn(
                ch.child("minimumRingSize"),
                "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead",
            );
            if ch.has("ringHash") || ch.has("maglev") {
                cx.error(
                    ch.child("minimumRingSize"),
                    "only one of MinimumRingSize or Maglev/Ringhash can be specified",
                );
            }
        }
        if let Some(mut r) = ch.obj(cx, "ringHash") {
            if let Some(m) = r.u64(cx, "minimumRingSize") {
                min = Some(m);
            }
            r.finish(cx);
        }
        let mut maglev = None;
        if let Some(mut m) = ch.obj(cx, "maglev") {
            let size = m.u64(cx, "tableSize").unwrap_or(0);
            if let Err(e) = super::rules::maglev_table_size(size) {
                cx.error(m.child("tableSize"), e);
            }
            maglev = Some(size);
            m.finish(cx);
        }
        ch.finish(cx);
        hash = Some(ConsistentHash {
            key,
            maglev,
            minimum_ring_size: min.filter(|m| *m > 0),
        });
    }
    if let Some(mut l) = o.obj(cx, "localityLbSetting") {
        locality_rules(cx, &l);
        cx.warn(
            l.path(),
            "locality load balancing settings are not supported, ignored",
        );
        l.take_all();
    }
    if let Some(mut w) = o.obj(cx, "warmup") {
        match w.duration(cx, "duration") {
            None => cx.error(w.child("duration"), "duration is required"),
            Some(d) => {
                if let Err(e) = super::rules::duration(d) {
                    cx.error(w.child("duration"), e);
                }
            }
        }
        if let Some(p) = w.f64(cx, "minimumPercent")
            && p > 100.0
        {
            cx.error(
                w.child("minimumPercent"),
                "minimumPercent value should be less than or equal to 100",
            );
        }
        if let Some(a) = w.f64(cx, "aggression")
            && a <= 0.0
        {
            cx.error(w.child("aggression"), "aggression should be greater than 0");
        }
        cx.warn(w.path(), "slow start (warmup) is not supported, ignored");
        w.finish(cx);
    }
    o.unsupported(
        cx,
        "warmupDurationSecs",
        "slow start (warmup) is not supported, ignored",
    );
    match (simple, hash) {
        (Some(_), Some(_)) => {
            cx.error(o.path(), "only one of simple and consistentHash may be set");
            None
        }
        (Some(s), None) => Some(LoadBalancer::Simple(s)),
        (None, Some(h)) => Some(LoadBalancer::ConsistentHash(h)),
        (None, None) => None,
    }
}

fn nonzero(v: Option<u32>) -> Option<u32> {
    v.filter(|n| *n > 0)
}

fn connection_pool(cx: &mut Cx, o: &mut Obj<'_>) -> ConnectionPool {
    let mut cp = ConnectionPool::default();
    if let Some(mut t) = o.obj(cx, "tcp") {
        cp.max_connections = nonzero(t.u32(cx, "maxConnections"));
        cp.connect_timeout = t.duration(cx, "connectTimeout");
        if let Some(Err(e)) = cp.connect_timeout.map(super::rules::duration) {
            cx.error(t.child("connectTimeout"), e);
        }
        cp.connect_timeout = cp.connect_timeout.filter(|d| !d.is_zero());
        cp.tcp_idle_timeout = t.duration(cx, "idleTimeout");
        // 0s means "disabled" here, as in Istio.
        if let Some(Err(e)) = cp
            .tcp_idle_timeout
            .filter(|d| d.as_millis() > 0)
            .map(super::rules::duration)
        {
            cx.error(t.child("idleTimeout"), e);
        }
        t.unsupported(
            cx,
            "tcpKeepalive",
            "TCP keepalive settings are not supported, ignored",
        );
        t.unsupported(
            cx,
            "maxConnectionDuration",
            "upstream maxConnectionDuration is not supported, ignored",
        );
        t.finish(cx);
    }
    if let Some(mut h) = o.obj(cx, "http") {
        cp.http1_max_pending_requests = nonzero(h.u32(cx, "http1MaxPendingRequests"));
        cp.http2_max_requests = nonzero(h.u32(cx, "http2MaxRequests"));
        cp.max_requests_per_connection = nonzero(h.u32(cx, "maxRequestsPerConnection"));
        cp.max_retries = nonzero(h.u32(cx, "maxRetries"));
        cp.idle_timeout = h.duration(cx, "idleTimeout");
        if let Some(Err(e)) = cp.idle_timeout.map(super::rules::duration) {
            cx.error(h.child("idleTimeout"), e);
        }
        if let Some(u) = h.enumeration(
            cx,
            "h2UpgradePolicy",
            &[
                ("DEFAULT", false),
                ("DO_NOT_UPGRADE", false),
                ("UPGRADE", true),
            ],
        ) {
            cp.h2_upgrade = u;
        }
        if cp.h2_upgrade && h.value_of("useClientProtocol").and_then(Value::as_bool) == Some(true) {
            cx.error(
                h.child("useClientProtocol"),
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
        h.unsupported(
            cx,
            "useClientProtocol",
            "useClientProtocol is not supported: the port protocol decides",
        );
        if let Some(mut k) = h.obj(cx, "http2KeepAlive") {
            for key in ["interval", "timeout"] {
                match k.duration(cx, key) {
                    None => cx.error(k.child(key), format!("http2 keepalive {key} is required")),
                    Some(d) => {
                        if let Err(e) = super::rules::duration(d) {
                            cx.error(k.child(key), e);
                        }
                    }
                }
            }
            cx.warn(k.path(), "HTTP/2 keepalive is not supported, ignored");
            k.take_all();
        }
        h.unsupported(
            cx,
            "maxConcurrentStreams",
            "maxConcurrentStreams is not supported, ignored",
        );

        h.finish(cx);
    }
    cp
}

fn outlier(cx: &mut Cx, o: &mut Obj<'_>) -> OutlierDetection {
    let od = OutlierDetection {
        consecutive_5xx_errors: o.u32(cx, "consecutive5xxErrors"),
        consecutive_gateway_errors: o.u32(cx, "consecutiveGatewayErrors"),
        interval: o.duration(cx, "interval"),
        base_ejection_time: o.duration(cx, "baseEjectionTime"),
        max_ejection_percent: o.u32(cx, "maxEjectionPercent"),
        min_health_percent: o.u32(cx, "minHealthPercent"),
        split_external_local_origin_errors: o
            .bool(cx, "splitExternalLocalOriginErrors")
            .unwrap_or(false),
        consecutive_local_origin_failures: o.u32(cx, "consecutiveLocalOriginFailures"),
    };
    for (k, v) in [
        ("maxEjectionPercent", od.max_ejection_percent),
        ("minHealthPercent", od.min_health_percent),
    ] {
        if v.is_some_and(|v| v > 100) {
            cx.error(o.child(k), "must be at most 100");
        }
    }
    for (k, d) in [
        ("interval", od.interval),
        ("baseEjectionTime", od.base_ejection_time),
    ] {
        if let Some(Err(e)) = d.map(super::rules::duration) {
            cx.error(o.child(k), e);
        }
    }
    if od.consecutive_local_origin_failures.is_some_and(|n| n > 0)
        && !od.split_external_local_origin_errors
    {
        cx.error(
            o.child("consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
    o.unsupported(
        cx,
        "consecutiveErrors",
        "deprecated and ignored by Istio; use consecutive5xxErrors",
    );
    o.unsupported(
        cx,
        "outlierDetectionHttpErrorCodes",
        "custom error codes are not supported, ignored",
    );
    od
}
