//! `VirtualService` (networking.istio.io): hosts, gateways and ordered HTTP rules.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{Meta, StringMatch, port_selector, string_map, string_match};
use crate::envoy::{Cx, Obj, as_string, base64_decode};

/// A VirtualService.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VirtualService {
    /// Name, namespace, source.
    pub meta: Meta,
    /// `spec.hosts`, as written.
    pub hosts: Vec<String>,
    /// `spec.gateways`, as written (empty means `mesh`).
    pub gateways: Vec<String>,
    /// `spec.http`, in order.
    pub http: Vec<HttpRoute>,
    /// `spec.tcp`, in order (served by the captured sidecar layout).
    pub tcp: Vec<TcpRoute>,
    /// `spec.tls`, in order: routes of TLS passed through, matched on SNI (served by
    /// gateways' PASSTHROUGH servers).
    pub tls: Vec<TcpRoute>,
}

/// One `tcp[]` rule: layer-4 matches (OR of blocks; empty matches every connection) and the
/// weighted destinations a matching connection goes to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TcpRoute {
    /// `match[]`.
    pub matches: Vec<L4Match>,
    /// `route[]`.
    pub route: Vec<RouteDestination>,
}

/// A `tcp[].match[]` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct L4Match {
    /// `destinationSubnets`: IPv4 or IPv6 addresses or CIDRs.
    pub destination_subnets: Vec<String>,
    /// `port` (0 or absent: any).
    pub port: Option<u16>,
    /// `sourceLabels`.
    pub source_labels: BTreeMap<String, String>,
    /// `sourceNamespace`.
    pub source_namespace: Option<String>,
    /// `gateways`.
    pub gateways: Vec<String>,
    /// `sniHosts` (`tls[]` matches only).
    pub sni_hosts: Vec<String>,
}

/// One `http[]` rule.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpRoute {
    /// `name`.
    pub name: String,
    /// `match[]`: OR of blocks; empty matches everything.
    pub matches: Vec<HttpMatch>,
    /// `route[]` destinations.
    pub route: Vec<RouteDestination>,
    /// `redirect`.
    pub redirect: Option<Redirect>,
    /// `directResponse`.
    pub direct_response: Option<DirectResponse>,
    /// `rewrite`.
    pub rewrite: Rewrite,
    /// `timeout` (unset ⇒ disabled).
    pub timeout: Option<Duration>,
    /// `retries` (unset ⇒ Istio's default policy).
    pub retries: Option<Retries>,
    /// `fault`.
    pub fault: Option<Fault>,
    /// `mirror` + `mirrorPercentage` and `mirrors[]`, in that order.
    pub mirrors: Vec<Mirror>,
    /// `corsPolicy`.
    pub cors: Option<CorsPolicy>,
    /// `headers`.
    pub headers: Headers,
}

/// One `match[]` block (all conditions ANDed).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpMatch {
    /// `name`.
    pub name: String,
    /// `uri`.
    pub uri: Option<StringMatch>,
    /// `scheme`.
    pub scheme: Option<StringMatch>,
    /// `method`.
    pub method: Option<StringMatch>,
    /// `authority`.
    pub authority: Option<StringMatch>,
    /// `headers`.
    pub headers: BTreeMap<String, StringMatch>,
    /// `withoutHeaders`.
    pub without_headers: BTreeMap<String, StringMatch>,
    /// `queryParams`.
    pub query_params: BTreeMap<String, StringMatch>,
    /// `port`.
    pub port: Option<u16>,
    /// `ignoreUriCase`.
    pub ignore_uri_case: bool,
    /// `sourceLabels`.
    pub source_labels: BTreeMap<String, String>,
    /// `sourceNamespace`.
    pub source_namespace: Option<String>,
    /// `gateways` (override the VirtualService's list for this block).
    pub gateways: Vec<String>,
    /// Conditions that cannot be evaluated here (JWT claim matches), by key. A block with any
    /// never matches: dropping the condition would widen the match.
    pub unsupported: Vec<String>,
}

/// A `Destination`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Destination {
    /// `host`, as written.
    pub host: String,
    /// `subset`.
    pub subset: Option<String>,
    /// `port.number`.
    pub port: Option<u16>,
}

/// A `route[]` entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteDestination {
    /// `destination`.
    pub destination: Destination,
    /// `weight` (0 when absent).
    pub weight: u32,
    /// `headers` applied when this destination is picked.
    pub headers: Headers,
}

/// `headers`: request and response manipulation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    /// `request`.
    pub request: HeaderOperations,
    /// `response`.
    pub response: HeaderOperations,
}

/// `set`, `add`, `remove`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderOperations {
    /// Overwrite.
    pub set: BTreeMap<String, String>,
    /// Append.
    pub add: BTreeMap<String, String>,
    /// Remove.
    pub remove: Vec<String>,
}

/// `retries`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Retries {
    /// `attempts` (≤ 0 ⇒ retries off).
    pub attempts: i64,
    /// `perTryTimeout`.
    pub per_try_timeout: Option<Duration>,
    /// `retryOn`.
    pub retry_on: Option<String>,
    /// `retryRemoteLocalities`.
    pub retry_remote_localities: bool,
    /// `retryIgnorePreviousHosts`.
    pub retry_ignore_previous_hosts: Option<bool>,
    /// `backoff`.
    pub backoff: Option<Duration>,
}

/// `fault`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fault {
    /// `delay` (fixed delays only).
    pub delay: Option<FaultDelay>,
    /// `abort`.
    pub abort: Option<FaultAbort>,
}

/// `fault.delay`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultDelay {
    /// `fixedDelay`.
    pub fixed_delay: Duration,
    /// `percentage.value` (0–100), or the deprecated integer `percent`.
    pub percentage: Option<f64>,
}

/// `fault.abort`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultAbort {
    /// What to answer.
    pub status: AbortStatus,
    /// `percentage.value` (unset ⇒ never, as Istio reads it).
    pub percentage: Option<f64>,
}

/// The answer of an abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortStatus {
    /// `httpStatus`.
    Http(u16),
    /// `grpcStatus`, as its numeric code.
    Grpc(u32),
}

/// A mirror target.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    /// Where to.
    pub destination: Destination,
    /// Percent mirrored (unset ⇒ 100).
    pub percentage: Option<f64>,
    /// Where the destination was written, relative to the rule (`mirror`,
    /// `mirrors[1].destination`), for messages.
    pub field: String,
}

/// `rewrite`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rewrite {
    /// `uri` ⇒ prefix rewrite.
    pub uri: Option<String>,
    /// `authority` ⇒ host rewrite.
    pub authority: Option<String>,
    /// `uriRegexRewrite` (`match`, `rewrite`).
    pub uri_regex: Option<(String, String)>,
}

/// `redirect`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Redirect {
    /// `uri`.
    pub uri: Option<String>,
    /// `prefixRewrite`.
    pub prefix_rewrite: Option<String>,
    /// `authority`.
    pub authority: Option<String>,
    /// `port`.
    pub port: Option<u16>,
    /// `derivePort: FROM_REQUEST_PORT`.
    pub port_from_request: bool,
    /// `scheme`.
    pub scheme: Option<String>,
    /// `redirectCode` (301 default).
    pub code: u16,
    /// A regex substitution on the path (`pattern`, `substitution`); no Istio field, set by
    /// the Gateway API reader for prefix replacements Envoy's prefix rewrite cannot express.
    pub uri_regex: Option<(String, String)>,
}

/// `directResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectResponse {
    /// `status`.
    pub status: u16,
    /// `body.string` (or `body.bytes` decoded as UTF-8).
    pub body: Option<String>,
}

/// `corsPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsPolicy {
    /// `allowOrigins` (and the legacy `allowOrigin` as exact matches).
    pub allow_origins: Vec<StringMatch>,
    /// `allowMethods`.
    pub allow_methods: Vec<String>,
    /// `allowHeaders`.
    pub allow_headers: Vec<String>,
    /// `exposeHeaders`.
    pub expose_headers: Vec<String>,
    /// `maxAge`.
    pub max_age: Option<Duration>,
    /// `allowCredentials`.
    pub allow_credentials: Option<bool>,
}

pub(crate) fn parse(cx: &mut Cx, s: &mut Obj<'_>, meta: Meta) -> VirtualService {
    let mut vs = VirtualService {
        hosts: s.strings(cx, "hosts"),
        gateways: s.strings(cx, "gateways"),
        ..VirtualService::default()
    };
    if vs.hosts.is_empty() {
        cx.error(s.child("hosts"), "at least one host is required");
    }
    // Bound to the mesh unless its gateways leave `mesh` out.
    let mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
    for (i, h) in vs.hosts.iter().enumerate() {
        let p = format!("{}[{i}]", s.child("hosts"));
        if h.contains('/') || h.is_empty() {
            cx.error(p, format!("invalid host {h:?}"));
        } else if let Err(e) = super::rules::wildcard_domain(h)
            && super::rules::ip(h).is_err()
        {
            cx.error(p, e);
        } else if h == "*" && mesh {
            cx.error(
                p,
                "wildcard host * is not allowed for virtual services bound to the mesh gateway",
            );
        }
    }
    // Two hosts of which one covers the other (equal, or a wildcard suffix of the other).
    'pairs: for (i, a) in vs.hosts.iter().enumerate() {
        for b in &vs.hosts[i + 1..] {
            if hosts_overlap(a, b) {
                cx.error(
                    s.child("hosts"),
                    format!("duplicate hosts in virtual service: {a} & {b}"),
                );
                break 'pairs;
            }
        }
    }
    if !(s.has("http") || s.has("tcp") || s.has("tls")) {
        cx.error(
            s.path(),
            "http, tcp or tls must be provided in virtual service",
        );
    }
    super::rules::export_to(cx, s, false);
    for (v, p) in s.list(cx, "http") {
        if v.is_null() {
            cx.error(p, "http route may not be null");
            continue;
        }
        if let Some(r) = http_route(cx, v, p) {
            vs.http.push(r);
        }
    }
    for (v, p) in s.list(cx, "tcp") {
        if let Some(r) = tcp_route(cx, v, p) {
            vs.tcp.push(r);
        }
    }
    for (v, p) in s.list(cx, "tls") {
        if let Some(r) = tls_route(cx, v, p) {
            vs.tls.push(r);
        }
    }
    if let Some((_, p)) = s.value(cx, "delegate") {
        cx.warn(p, "delegate VirtualServices are not supported, ignored");
    }
    vs.meta = meta;
    vs
}

/// A `tls[]` rule: a `tcp[]` rule whose matches must name `sniHosts`.
fn tls_route(cx: &mut Cx, v: &Value, path: String) -> Option<TcpRoute> {
    let r = tcp_route(cx, v, path.clone())?;
    if r.matches.is_empty() {
        cx.error(
            format!("{path}.match"),
            "TLS route must have at least one match condition",
        );
    }
    for (i, m) in r.matches.iter().enumerate() {
        if m.sni_hosts.is_empty() {
            cx.error(
                format!("{path}.match[{i}].sniHosts"),
                "TLS match must have at least one SNI host",
            );
        }
    }
    Some(r)
}

fn tcp_route(cx: &mut Cx, v: &Value, path: String) -> Option<TcpRoute> {
    let mut o = Obj::new(cx, v, path)?;
    let mut r = TcpRoute::default();
    for (mv, mp) in o.list(cx, "match") {
        let Some(mut m) = Obj::new(cx, mv, mp) else {
            continue;
        };
        let mut l4 = L4Match {
            destination_subnets: m.strings(cx, "destinationSubnets"),
            sni_hosts: m
                .strings(cx, "sniHosts")
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            ..L4Match::default()
        };
        for (i, subnet) in l4.destination_subnets.iter().enumerate() {
            if super::cidr(subnet).is_none() {
                cx.error(
                    format!("{}[{i}]", m.child("destinationSubnets")),
                    format!("{subnet:?} is not an IP address or CIDR"),
                );
            }
        }
        if let Some(n) = m.u64(cx, "port").filter(|n| *n != 0) {
            match super::rules::port(n) {
                Ok(()) => l4.port = Some(n as u16),
                Err(e) => cx.error(m.child("port"), e),
            }
        }
        if let Some((v, p)) = m.value(cx, "sourceLabels") {
            l4.source_labels = string_map(cx, v, &p);
        }
        l4.source_namespace = m.string(cx, "sourceNamespace");
        l4.gateways = m.strings(cx, "gateways");
        m.finish(cx);
        r.matches.push(l4);
    }
    for (dv, dp) in o.list(cx, "route") {
        if let Some(d) = route_destination(cx, dv, dp, false) {
            r.route.push(d);
        }
    }
    if r.route.is_empty() {
        cx.error(o.child("route"), "TCP route is required");
    }
    o.finish(cx);
    Some(r)
}

/// A `route[]` entry: its destination, weight (0 when absent) and, for HTTP rules, headers.
fn route_destination(cx: &mut Cx, v: &Value, path: String, http: bool) -> Option<RouteDestination> {
    let mut d = Obj::new(cx, v, path)?;
    let destination = match d.required(cx, "destination") {
        Some((v, p)) => destination(cx, v, p).unwrap_or_default(),
        None => Destination::default(),
    };
    let weight = match d.i64(cx, "weight") {
        Some(w) if w < 0 => {
            cx.error(d.child("weight"), format!("weight {w} < 0"));
            0
        }
        Some(w) => u32::try_from(w).unwrap_or(u32::MAX),
        None => 0,
    };
    // A TCP rule's `headers` are not read, so they are reported as unknown.
    let headers = match http.then(|| d.value(cx, "headers")).flatten() {
        Some((v, p)) => headers(cx, v, p),
        None => Headers::default(),
    };
    d.finish(cx);
    Some(RouteDestination {
        destination,
        weight,
        headers,
    })
}

fn http_route(cx: &mut Cx, v: &Value, path: String) -> Option<HttpRoute> {
    let mut o = Obj::new(cx, v, path)?;
    let mut r = HttpRoute {
        name: o.string(cx, "name").unwrap_or_default(),
        ..HttpRoute::default()
    };
    for (mv, mp) in o.list(cx, "match") {
        if let Some(m) = http_match(cx, mv, mp) {
            r.matches.push(m);
        }
    }
    for (dv, dp) in o.list(cx, "route") {
        if let Some(d) = route_destination(cx, dv, dp, true) {
            r.route.push(d);
        }
    }
    if r.route.len() > 1 && r.route.iter().all(|d| d.weight == 0) && o.has("route") {
        let all_given = v
            .get("route")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().all(|d| d.get("weight").is_some()));
        if all_given {
            cx.error(o.child("route"), "total destination weight = 0");
        }
    }
    if let Some(mut rd) = o.obj(cx, "redirect") {
        r.redirect = Some(redirect(cx, &mut rd));
        rd.finish(cx);
    }
    if let Some(mut dr) = o.obj(cx, "directResponse") {
        r.direct_response = direct_response(cx, &mut dr);
        dr.finish(cx);
    }
    o.unsupported(
        cx,
        "delegate",
        "delegate VirtualServices are not supported, rule ignored",
    );
    for (a, b, message) in [
        (
            "redirect",
            "fault",
            "HTTP route cannot contain both fault and redirect",
        ),
        (
            "redirect",
            "rewrite",
            "HTTP route rule cannot contain both rewrite and redirect",
        ),
        (
            "directResponse",
            "fault",
            "HTTP route cannot contain both fault and direct_response",
        ),
        (
            "directResponse",
            "rewrite",
            "HTTP route rule cannot contain both rewrite and direct_response",
        ),
        (
            "mirror",
            "mirrors",
            "HTTP route cannot contain both mirror and mirrors",
        ),
    ] {
        if o.has(a) && o.has(b) {
            cx.error(o.path(), message);
        }
    }
    let actions = usize::from(!r.route.is_empty())
        + usize::from(r.redirect.is_some())
        + usize::from(r.direct_response.is_some());
    if actions > 1 {
        cx.error(
            o.path(),
            "only one of route, redirect and directResponse may be set",
        );
    } else if actions == 0 && !o.has("delegate") {
        cx.error(
            o.path(),
            "one of route, redirect or directResponse is required",
        );
    }
    if let Some(mut rw) = o.obj(cx, "rewrite") {
        r.rewrite.uri = rw.string(cx, "uri");
        r.rewrite.authority = rw.string(cx, "authority");
        if let Some(mut rr) = rw.obj(cx, "uriRegexRewrite") {
            let m = rr.string(cx, "match").unwrap_or_default();
            let s = rr.string(cx, "rewrite").unwrap_or_default();
            rr.finish(cx);
            r.rewrite.uri_regex = Some((m, s));
        }
        if r.rewrite.uri.is_some() && r.rewrite.uri_regex.is_some() {
            cx.error(rw.path(), "only one of uri and uriRegexRewrite may be set");
        }
        if r.rewrite.uri.is_none() && r.rewrite.uri_regex.is_none() && r.rewrite.authority.is_none()
        {
            cx.error(
                rw.path(),
                "rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified",
            );
        }
        if let Some((m, s)) = &r.rewrite.uri_regex
            && (m.is_empty() || s.is_empty())
        {
            cx.error(
                format!("{}.uriRegexRewrite", rw.path()),
                "UriRegexRewrite requires both Rewrite and Match fields to be specified",
            );
        }
        rw.finish(cx);
    }
    r.timeout = o.duration(cx, "timeout");
    if let Some(Err(e)) = r.timeout.map(super::rules::duration) {
        cx.error(o.child("timeout"), e);
    }
    if let Some(mut rt) = o.obj(cx, "retries") {
        let retries = Retries {
            attempts: rt.i64(cx, "attempts").unwrap_or(0),
            per_try_timeout: rt.duration(cx, "perTryTimeout"),
            retry_on: retry_on(cx, &mut rt),
            retry_remote_localities: rt.bool(cx, "retryRemoteLocalities").unwrap_or(false),
            retry_ignore_previous_hosts: rt.bool(cx, "retryIgnorePreviousHosts"),
            backoff: rt.duration(cx, "backoff"),
        };
        if retries.attempts < 0 {
            cx.error(rt.child("attempts"), "attempts cannot be negative");
        } else if retries.attempts == 0
            && (retries.per_try_timeout.is_some()
                || retries.retry_on.as_deref().is_some_and(|s| !s.is_empty())
                || retries.retry_remote_localities)
        {
            cx.error(
                rt.child("attempts"),
                "http retry policy configured when attempts are set to 0 (disabled)",
            );
        }
        for (k, d) in [
            ("perTryTimeout", retries.per_try_timeout),
            ("backoff", retries.backoff),
        ] {
            if let Some(Err(e)) = d.map(super::rules::duration) {
                cx.error(rt.child(k), e);
            }
        }
        r.retries = Some(retries);
        rt.finish(cx);
    }
    if let Some(mut f) = o.obj(cx, "fault") {
        r.fault = Some(fault(cx, &mut f));
        f.finish(cx);
    }
    // mirror + mirrorPercentage / mirrorPercent, then mirrors[].
    let mirror = match o.value(cx, "mirror") {
        Some((v, p)) => destination(cx, v, p),
        None => None,
    };
    let pct = percentage(cx, &mut o, "mirrorPercentage");
    let legacy = o.u32(cx, "mirrorPercent");
    if let Some(d) = mirror {
        r.mirrors.push(Mirror {
            destination: d,
            percentage: pct.or(legacy.map(f64::from)),
            field: "mirror".into(),
        });
    }
    for (k, (mv, mp)) in o.list(cx, "mirrors").into_iter().enumerate() {
        let Some(mut m) = Obj::new(cx, mv, mp) else {
            continue;
        };
        let d = match m.required(cx, "destination") {
            Some((v, p)) => destination(cx, v, p),
            None => None,
        };
        let percentage = percentage(cx, &mut m, "percentage");
        m.finish(cx);
        if let Some(destination) = d {
            r.mirrors.push(Mirror {
                destination,
                percentage,
                field: format!("mirrors[{k}].destination"),
            });
        }
    }
    if let Some(mut c) = o.obj(cx, "corsPolicy") {
        r.cors = Some(cors(cx, &mut c));
        c.finish(cx);
    }
    if let Some((v, p)) = o.value(cx, "headers") {
        r.headers = headers(cx, v, p);
    }
    o.unsupported(
        cx,
        "websocketUpgrade",
        "deprecated and ignored: WebSocket upgrades are always allowed",
    );
    o.unsupported(
        cx,
        "mirrorPercent",
        "deprecated; use mirrorPercentage (value was used)",
    );
    o.finish(cx);
    Some(r)
}

/// `{value: 12.5}` at `key`, checked to be within 0–100.
fn percentage(cx: &mut Cx, o: &mut Obj<'_>, key: &str) -> Option<f64> {
    let mut p = o.obj(cx, key)?;
    let v = p.f64(cx, "value").unwrap_or(0.0);
    if !(0.0..=100.0).contains(&v) {
        cx.error(
            p.child("value"),
            format!("must be within 0 and 100, got {v}"),
        );
    }
    p.finish(cx);
    Some(v.clamp(0.0, 100.0))
}

/// `retries.retryOn`, checked as Istio's validation does: Envoy conditions and HTTP status
/// codes. Conditions Envoy knows but the proxy does not honour are warnings.
fn retry_on(cx: &mut Cx, o: &mut Obj<'_>) -> Option<String> {
    const HONOURED: [&str; 14] = [
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "refused-stream",
        "connect-failure",
        "retriable-4xx",
        "retriable-status-codes",
        "retriable-headers",
        "cancelled",
        "deadline-exceeded",
        "resource-exhausted",
        "internal",
        "unavailable",
    ];
    const IGNORED: [&str; 2] = ["envoy-ratelimited", "http3-post-connect-failure"];
    let list = o.string(cx, "retryOn")?;
    let path = o.child("retryOn");
    for t in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if HONOURED.contains(&t) || t.parse::<u16>().is_ok_and(|c| (100..600).contains(&c)) {
            continue;
        }
        if IGNORED.contains(&t) {
            cx.warn(
                &path,
                format!("retry condition {t:?} is not supported, ignored"),
            );
        } else {
            cx.error(&path, format!("{t:?} is not a valid retryOn condition"));
        }
    }
    Some(list)
}

fn http_match(cx: &mut Cx, v: &Value, path: String) -> Option<HttpMatch> {
    let mut o = Obj::new(cx, v, path)?;
    let mut m = HttpMatch {
        name: o.string(cx, "name").unwrap_or_default(),
        ..HttpMatch::default()
    };
    let sm = |cx: &mut Cx, o: &mut Obj<'_>, key: &str| -> Option<StringMatch> {
        let (v, p) = o.value(cx, key)?;
        string_match(cx, v, &p)
    };
    m.uri = sm(cx, &mut o, "uri");
    m.scheme = sm(cx, &mut o, "scheme");
    m.method = sm(cx, &mut o, "method");
    m.authority = sm(cx, &mut o, "authority");
    if let Some(StringMatch::Regex(r) | StringMatch::Prefix(r) | StringMatch::Exact(r)) = &m.uri
        && r.is_empty()
    {
        cx.error(o.child("uri"), "must not be empty");
    }
    for (key, target) in [
        ("headers", &mut m.headers),
        ("withoutHeaders", &mut m.without_headers),
        ("queryParams", &mut m.query_params),
    ] {
        if let Some(mut h) = o.obj(cx, key) {
            let path = h.path().to_owned();
            for (k, v) in h.take_all() {
                let p = crate::envoy::join(&path, &k);
                if key != "queryParams" && k.starts_with('@') {
                    cx.warn(
                        &p,
                        "JWT claim matches (@request.auth.claims) are not supported: this match block never matches",
                    );
                    m.unsupported.push(k);
                    continue;
                }
                if key != "queryParams"
                    && (k.is_empty() || k.bytes().any(|b| b.is_ascii_uppercase()))
                {
                    cx.error(&p, "header names must be lower-case");
                    continue;
                }
                if let Some(s) = string_match(cx, &v, &p) {
                    target.insert(k, s);
                }
            }
        }
    }
    if let Some(n) = o.u64(cx, "port").filter(|n| *n != 0) {
        match super::rules::port(n) {
            Ok(()) => m.port = Some(n as u16),
            Err(e) => cx.error(o.child("port"), e),
        }
    }
    m.ignore_uri_case = o.bool(cx, "ignoreUriCase").unwrap_or(false);
    if let Some((v, p)) = o.value(cx, "sourceLabels") {
        m.source_labels = string_map(cx, v, &p);
        for e in super::rules::labels(&m.source_labels) {
            cx.error(p.clone(), e);
        }
    }
    m.source_namespace = o.string(cx, "sourceNamespace");
    if let Some(ns) = m.source_namespace.as_deref()
        && !ns.is_empty()
        && !super::rules::is_dns1123_label(ns)
    {
        cx.error(
            o.child("sourceNamespace"),
            format!("sourceNamespace match {ns} is invalid"),
        );
    }
    m.gateways = o.strings(cx, "gateways");
    o.unsupported(
        cx,
        "statPrefix",
        "per-route stat prefixes are not supported, ignored",
    );
    o.finish(cx);
    Some(m)
}

pub(crate) fn destination(cx: &mut Cx, v: &Value, path: String) -> Option<Destination> {
    let mut o = Obj::new(cx, v, path)?;
    let host = match o.required(cx, "host") {
        Some((v, p)) => as_string(cx, v, &p).unwrap_or_default(),
        None => String::new(),
    };
    if host == "*" {
        cx.error(o.child("host"), "invalid destination host *");
    } else if !host.is_empty()
        && let Err(e) = super::rules::wildcard_domain(&host)
    {
        cx.error(o.child("host"), e);
    }
    let subset = o.string(cx, "subset").filter(|s| !s.is_empty());
    if let Some(Err(e)) = subset.as_deref().map(super::rules::subset_name) {
        cx.error(o.child("subset"), e);
    }
    let port = match o.value(cx, "port") {
        Some((v, p)) => port_selector(cx, v, &p),
        None => None,
    };
    o.finish(cx);
    Some(Destination {
        host,
        subset,
        port: port.filter(|p| *p != 0),
    })
}

fn headers(cx: &mut Cx, v: &Value, path: String) -> Headers {
    let mut h = Headers::default();
    let Some(mut o) = Obj::new(cx, v, path) else {
        return h;
    };
    for (key, ops) in [("request", &mut h.request), ("response", &mut h.response)] {
        if let Some(mut r) = o.obj(cx, key) {
            if let Some((v, p)) = r.value(cx, "set") {
                ops.set = string_map(cx, v, &p);
            }
            if let Some((v, p)) = r.value(cx, "add") {
                ops.add = string_map(cx, v, &p);
            }
            ops.remove = r.strings(cx, "remove");
            r.finish(cx);
        }
    }
    o.finish(cx);
    h
}

fn redirect(cx: &mut Cx, o: &mut Obj<'_>) -> Redirect {
    let mut r = Redirect {
        uri: o.string(cx, "uri"),
        prefix_rewrite: o.string(cx, "prefixRewrite"),
        authority: o.string(cx, "authority"),
        port: o.u16(cx, "port"),
        scheme: o.string(cx, "scheme"),
        code: 301,
        ..Redirect::default()
    };
    if let Some(s) = r.scheme.as_deref()
        && !matches!(s, "" | "http" | "https")
    {
        cx.error(
            o.child("scheme"),
            "invalid redirect scheme, must be \"http\" or \"https\"",
        );
    }
    if r.uri.is_some() && r.prefix_rewrite.is_some() {
        cx.error(
            o.path(),
            "redirect may only specify one of uri or prefix_rewrite",
        );
    }
    if let Some(d) = o.enumeration(
        cx,
        "derivePort",
        &[
            ("FROM_PROTOCOL_DEFAULT", false),
            ("FROM_REQUEST_PORT", true),
        ],
    ) {
        r.port_from_request = d;
    }
    if let Some(c) = o.u32(cx, "redirectCode") {
        match c {
            0 | 301 => {}
            302 | 303 | 307 | 308 => r.code = c as u16,
            _ => cx.error(
                o.child("redirectCode"),
                format!("redirect code {c} is not one of 301, 302, 303, 307, 308"),
            ),
        }
    }
    r
}

fn direct_response(cx: &mut Cx, o: &mut Obj<'_>) -> Option<DirectResponse> {
    let status = match o.required(cx, "status") {
        Some((v, p)) => {
            let s = crate::envoy::as_u64(cx, v, &p, 599)?;
            if s < 200 {
                cx.error(p, format!("status {s} is outside [200, 600)"));
                return None;
            }
            s as u16
        }
        None => return None,
    };
    let mut body = None;
    if let Some(mut b) = o.obj(cx, "body") {
        body = b.string(cx, "string");
        if let Some((v, p)) = b.value(cx, "bytes") {
            match as_string(cx, v, &p).map(|s| base64_decode(&s).map(String::from_utf8)) {
                Some(Some(Ok(s))) => body = Some(s),
                Some(Some(Err(_))) => cx.error(
                    p,
                    "binary bodies are not supported (the body must be UTF-8)",
                ),
                Some(None) => cx.error(p, "invalid base64"),
                None => {}
            }
        }
        b.finish(cx);
    }
    if body.as_ref().is_some_and(|b| b.len() > 1 << 20) {
        cx.error(
            o.child("body"),
            "large direct_responses may impact control plane performance, must be less than 1MB",
        );
    } else if body.as_ref().is_some_and(|b| b.len() > 100 << 10) {
        cx.warn(
            o.child("body"),
            "large direct_responses may impact control plane performance",
        );
    }
    Some(DirectResponse { status, body })
}

fn fault(cx: &mut Cx, o: &mut Obj<'_>) -> Fault {
    let mut f = Fault::default();
    if let Some(mut d) = o.obj(cx, "delay") {
        let pct = percentage(cx, &mut d, "percentage");
        let legacy = d.u32(cx, "percent");
        if let Some(p) = legacy
            && p > 100
        {
            cx.error(d.child("percent"), "must be within 0 and 100");
        }
        d.unsupported(
            cx,
            "exponentialDelay",
            "exponential delays are not supported (Istio drops them too), ignored",
        );
        match d.duration(cx, "fixedDelay") {
            Some(fixed) if !fixed.is_zero() => {
                f.delay = Some(FaultDelay {
                    fixed_delay: fixed,
                    percentage: pct.or(legacy.map(f64::from)),
                });
            }
            Some(_) => cx.error(d.child("fixedDelay"), "must be greater than 0"),
            None => {}
        }
        d.finish(cx);
    }
    if let Some(mut a) = o.obj(cx, "abort") {
        let pct = percentage(cx, &mut a, "percentage");
        let http = a.u32(cx, "httpStatus");
        let grpc = a.string(cx, "grpcStatus");
        a.unsupported(
            cx,
            "http2Error",
            "HTTP/2 error aborts are not supported, ignored",
        );
        let status = match (http, grpc) {
            (Some(h), None) if (200..600).contains(&h) => Some(AbortStatus::Http(h as u16)),
            (Some(h), None) => {
                cx.error(
                    a.child("httpStatus"),
                    format!("status {h} is outside [200, 600)"),
                );
                None
            }
            (None, Some(g)) => match grpc_code(&g) {
                Some(c) => Some(AbortStatus::Grpc(c)),
                None => {
                    cx.error(a.child("grpcStatus"), format!("unknown gRPC status {g:?}"));
                    None
                }
            },
            (Some(_), Some(_)) => {
                cx.error(a.path(), "only one of httpStatus and grpcStatus may be set");
                None
            }
            (None, None) => None,
        };
        if let Some(status) = status {
            f.abort = Some(FaultAbort {
                status,
                percentage: pct,
            });
        }
        a.finish(cx);
    }
    f
}

fn grpc_code(name: &str) -> Option<u32> {
    const CODES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    CODES
        .iter()
        .position(|c| *c == name)
        .map(|i| i as u32)
        .or_else(|| name.parse().ok().filter(|n| *n < 17))
}

fn cors(cx: &mut Cx, o: &mut Obj<'_>) -> CorsPolicy {
    let mut c = CorsPolicy::default();
    for (v, p) in o.list(cx, "allowOrigins") {
        if let Some(m) = string_match(cx, v, &p) {
            c.allow_origins.push(m);
        }
    }
    for s in o.strings(cx, "allowOrigin") {
        c.allow_origins.push(StringMatch::Exact(s));
    }
    c.allow_methods = o.strings(cx, "allowMethods");
    c.allow_headers = o.strings(cx, "allowHeaders");
    c.expose_headers = o.strings(cx, "exposeHeaders");
    c.max_age = o.duration(cx, "maxAge");
    c.allow_credentials = o.bool(cx, "allowCredentials");
    if let Some((v, p)) = o.value(cx, "unmatchedPreflights")
        && v.as_str() == Some("IGNORE")
    {
        cx.warn(
            p,
            "unmatchedPreflights IGNORE is not supported: unmatched preflights are forwarded",
        );
    }
    c
}

/// Whether two VirtualService hosts cover each other (Istio's duplicate-host rule): equal, or
/// a wildcard whose suffix the other ends with.
fn hosts_overlap(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (None, None) => a == b,
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (Some(sa), Some(sb)) => sa.ends_with(sb) || sb.ends_with(sa),
    }
}
