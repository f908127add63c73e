//! Garbage in gives an error (or, for harmless input, a value), never a panic: neither the Istio
//! reader nor the translator, in either role.

#[path = "support/junk.rs"]
mod junk;

use mesh_xds::istio::{self, Options};
use proptest::prelude::*;

fn all(text: &str) {
    if let Ok(loaded) = istio::parse_str(text, "fuzz", "default") {
        let _ = istio::translate(&loaded.value, &Options::sidecar(15001));
        let gw = Options::gateway([("istio", "ingressgateway")]).map_port(80, 18080);
        let _ = istio::translate(&loaded.value, &gw);
    }
}

#[test]
fn random_bytes() {
    for text in junk::pseudo_random_texts() {
        all(&text);
    }
}

#[test]
fn deeply_nested_junk_and_alias_bombs() {
    for depth in [200usize, 10_000] {
        all(&"[".repeat(depth));
        all(&"{a: ".repeat(depth));
        all(&"- ".repeat(depth));
    }
    let bomb = r#"
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"#;
    assert!(istio::parse_str(bomb, "bomb", "default").is_err());
}

const KINDS: &[&str] = &[
    "VirtualService",
    "DestinationRule",
    "Gateway",
    "ServiceEntry",
    "WorkloadEntry",
];

/// Field names the reader knows, so random specs reach deep into the converters.
const KEYS: &[&str] = &[
    "hosts",
    "gateways",
    "http",
    "match",
    "route",
    "destination",
    "host",
    "subset",
    "port",
    "number",
    "weight",
    "uri",
    "exact",
    "prefix",
    "regex",
    "headers",
    "request",
    "set",
    "add",
    "remove",
    "timeout",
    "retries",
    "attempts",
    "retryOn",
    "perTryTimeout",
    "fault",
    "delay",
    "fixedDelay",
    "percentage",
    "value",
    "abort",
    "httpStatus",
    "grpcStatus",
    "mirror",
    "mirrors",
    "mirrorPercentage",
    "rewrite",
    "authority",
    "uriRegexRewrite",
    "redirect",
    "redirectCode",
    "directResponse",
    "status",
    "body",
    "string",
    "bytes",
    "corsPolicy",
    "allowOrigins",
    "allowMethods",
    "maxAge",
    "trafficPolicy",
    "loadBalancer",
    "simple",
    "consistentHash",
    "httpHeaderName",
    "ringHash",
    "maglev",
    "connectionPool",
    "tcp",
    "maxConnections",
    "connectTimeout",
    "outlierDetection",
    "consecutive5xxErrors",
    "portLevelSettings",
    "subsets",
    "name",
    "labels",
    "selector",
    "servers",
    "protocol",
    "tls",
    "httpsRedirect",
    "ports",
    "resolution",
    "endpoints",
    "address",
    "locality",
    "workloadSelector",
    "sourceLabels",
    "withoutHeaders",
    "queryParams",
    "ignoreUriCase",
];

const STRINGS: &[&str] = &[
    "",
    "*",
    "mesh",
    "reviews",
    "a.b.c",
    "v1",
    "STATIC",
    "DNS",
    "NONE",
    "HTTP",
    "TCP",
    "ROUND_ROBIN",
    "1.5s",
    "-1s",
    "0s",
    "999999999999999s",
    "/",
    "UNAVAILABLE",
    "127.0.0.1",
    "unix:///x",
    "ns/gw",
    "./gw",
    "*.com",
    "\u{0}",
];

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    junk::json_value(KEYS, STRINGS, 0u64..70_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        all(&text);
    }

    #[test]
    fn arbitrary_specs_never_panic(
        kinds in proptest::collection::vec(proptest::sample::select(KINDS), 1..4),
        specs in proptest::collection::vec(json_value(), 1..4),
    ) {
        let docs: Vec<String> = kinds
            .iter()
            .zip(specs.iter().cycle())
            .enumerate()
            .map(|(i, (kind, spec))| {
                format!(
                    "{{\"apiVersion\": \"networking.istio.io/v1\", \"kind\": \"{kind}\", \"metadata\": {{\"name\": \"r{i}\"}}, \"spec\": {spec}}}"
                )
            })
            .collect();
        all(&docs.join("\n---\n"));
    }
}

/// A random but well-formed set of resources: a few services, rules and subsets drawn from
/// small pools so that names collide, subsets go missing and hosts overlap.
fn resources() -> impl Strategy<Value = String> {
    let host = proptest::sample::select(vec!["a", "b", "c.example.com", "*.example.com", "*"]);
    let subset = proptest::sample::select(vec!["", "v1", "v2", "v3"]);
    let dest = (
        host.clone(),
        subset.clone(),
        0u32..120,
        proptest::option::of(1u16..4),
    );
    let uri = proptest::sample::select(vec![
        "",
        "{ exact: /x }",
        "{ prefix: / }",
        "{ prefix: /p }",
        "{ regex: \"/r.*\" }",
    ]);
    let rule = (
        proptest::collection::vec(dest, 1..4),
        uri,
        any::<bool>(),
        proptest::sample::select(vec![
            "",
            "timeout: 1s",
            "retries: { attempts: 0 }",
            "fault: { abort: { httpStatus: 503, percentage: { value: 50 } } }",
            "mirror: { host: a }",
            "corsPolicy: { allowOrigins: [{ exact: x }] }",
        ]),
    );
    let vs = (
        proptest::collection::vec(host.clone(), 1..3),
        proptest::sample::select(vec!["", "gateways: [gw]", "gateways: [mesh, gw]"]),
        proptest::collection::vec(rule, 1..4),
    );
    (
        proptest::collection::vec(vs, 0..4),
        proptest::collection::vec((host, proptest::collection::vec(subset, 0..3), any::<bool>()), 0..3),
        proptest::sample::select(vec!["STATIC", "DNS", "NONE"]),
    )
        .prop_map(|(vss, drs, resolution)| {
            let mut docs = Vec::new();
            for (i, h) in ["a", "b", "c.example.com"].iter().enumerate() {
                docs.push(format!(
                    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{ name: se{i} }}\nspec:\n  hosts: [\"{h}\"]\n  ports: [{{ number: 1, name: http }}, {{ number: 2, name: http-2 }}, {{ number: 3, name: tcp }}]\n  resolution: {resolution}\n  endpoints: [{{ address: 127.0.0.1, labels: {{ version: v1 }} }}, {{ address: 127.0.0.2, ports: {{ http: 9 }}, labels: {{ version: v2 }} }}]\n"
                ));
            }
            docs.push("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: { name: gw }\nspec:\n  selector: { istio: ingressgateway }\n  servers: [{ port: { number: 1, name: http, protocol: HTTP }, hosts: [\"*\"] }, { port: { number: 2, name: http, protocol: HTTP }, hosts: [\"*.example.com\"], tls: { httpsRedirect: true } }]\n".into());
            for (i, (h, subsets, hash)) in drs.iter().enumerate() {
                let subsets: Vec<String> = subsets
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| format!("{{ name: {s}, labels: {{ version: {s} }} }}"))
                    .collect();
                let lb = if *hash { "trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: x } } }" } else { "" };
                docs.push(format!(
                    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{ name: dr{i} }}\nspec:\n  host: \"{h}\"\n  subsets: [{}]\n  {lb}\n",
                    subsets.join(", ")
                ));
            }
            for (i, (hosts, gateways, rules)) in vss.iter().enumerate() {
                let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
                let mut http = String::new();
                for (dests, uri, with_match, extra) in rules {
                    http.push_str("  - ");
                    if *with_match && !uri.is_empty() {
                        http.push_str(&format!("match: [{{ uri: {uri} }}]\n    "));
                    }
                    if !extra.is_empty() {
                        http.push_str(&format!("{extra}\n    "));
                    }
                    http.push_str("route:\n");
                    for (h, s, w, p) in dests {
                        let h = h.trim_start_matches("*.");
                        let s = if s.is_empty() { String::new() } else { format!(", subset: {s}") };
                        let p = p.map_or(String::new(), |p| format!(", port: {{ number: {p} }}"));
                        http.push_str(&format!("    - {{ destination: {{ host: \"{h}\"{s}{p} }}, weight: {w} }}\n"));
                    }
                }
                docs.push(format!(
                    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{ name: vs{i} }}\nspec:\n  hosts: [{}]\n  {gateways}\n  http:\n{http}",
                    hosts.join(", ")
                ));
            }
            docs.join("---\n")
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A translation either fails or yields a config that validates and compiles: never a
    /// partial, inconsistent one.
    #[test]
    fn translations_are_consistent_or_rejected(text in resources()) {
        // Generated rules may be invalid (a duplicate subset): then there is nothing to check.
        let Ok(loaded) = istio::parse_str(&text, "gen", "default") else {
            return Ok(());
        };
        for opts in [
            Options::sidecar(15001),
            Options::gateway([("istio", "ingressgateway")]).map_port(1, 18001),
        ] {
            if let Ok(b) = istio::translate(&loaded.value, &opts) {
                b.value.validate().unwrap_or_else(|e| panic!("{e}\n{text}"));
                for l in &b.value.listeners {
                    if let mesh_core::config::RouteSource::RouteConfig(rc) =
                        &l.filter_chains[0].hcm().unwrap().route
                    {
                        mesh_route::RouteTable::compile(rc).unwrap_or_else(|e| panic!("{e}\n{text}"));
                    }
                }
                for c in &b.value.clusters {
                    mesh_lb::ClusterLb::builder(c).build().unwrap_or_else(|e| panic!("{e}\n{text}"));
                }
            }
        }
    }
}

/// Kubernetes Gateway API objects (and the Services they name), read beside the Istio kinds.
const GATEWAY_API_KINDS: &[(&str, &str)] = &[
    ("gateway.networking.k8s.io/v1", "Gateway"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("gateway.networking.k8s.io/v1", "GRPCRoute"),
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
    ("gateway.networking.k8s.io/v1", "GatewayClass"),
    ("v1", "Service"),
    ("v1", "Namespace"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
];

const GATEWAY_API_KEYS: &[&str] = &[
    "gatewayClassName",
    "listeners",
    "name",
    "hostname",
    "port",
    "protocol",
    "tls",
    "mode",
    "certificateRefs",
    "allowedRoutes",
    "namespaces",
    "from",
    "selector",
    "matchLabels",
    "kinds",
    "kind",
    "group",
    "namespace",
    "parentRefs",
    "sectionName",
    "hostnames",
    "rules",
    "matches",
    "path",
    "type",
    "value",
    "headers",
    "queryParams",
    "method",
    "service",
    "filters",
    "requestHeaderModifier",
    "responseHeaderModifier",
    "set",
    "add",
    "remove",
    "requestRedirect",
    "scheme",
    "statusCode",
    "urlRewrite",
    "replaceFullPath",
    "replacePrefixMatch",
    "requestMirror",
    "backendRef",
    "percent",
    "fraction",
    "numerator",
    "denominator",
    "backendRefs",
    "weight",
    "timeouts",
    "request",
    "backendRequest",
    "retry",
    "attempts",
    "codes",
    "backoff",
    "to",
    "ports",
    "targetPort",
    "appProtocol",
    "endpoints",
    "addresses",
];

const GATEWAY_API_STRINGS: &[&str] = &[
    "",
    "*",
    "r0",
    "r1",
    "default",
    "Gateway",
    "Service",
    "HTTPRoute",
    "HTTP",
    "HTTPS",
    "TLS",
    "Exact",
    "PathPrefix",
    "RegularExpression",
    "ReplaceFullPath",
    "ReplacePrefixMatch",
    "RequestHeaderModifier",
    "RequestRedirect",
    "URLRewrite",
    "RequestMirror",
    "ExtensionRef",
    "All",
    "Selector",
    "/",
    "/a/",
    "(",
    "*.example.com",
    "1s",
    "-1s",
    "\u{0}",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_gateway_api_objects_never_panic(
        kinds in proptest::collection::vec(proptest::sample::select(GATEWAY_API_KINDS), 1..5),
        specs in proptest::collection::vec(
            junk::json_value(GATEWAY_API_KEYS, GATEWAY_API_STRINGS, 0u64..70_000),
            1..5,
        ),
    ) {
        let docs: Vec<String> = kinds
            .iter()
            .zip(specs.iter().cycle())
            .enumerate()
            .map(|(i, ((api, kind), spec))| {
                let name = format!("r{}", i % 2);
                if *kind == "EndpointSlice" {
                    // An EndpointSlice keeps its fields at the top level.
                    let mut o = spec.as_object().cloned().unwrap_or_default();
                    o.insert("apiVersion".into(), (*api).into());
                    o.insert("kind".into(), (*kind).into());
                    o.insert("metadata".into(), serde_json::json!({"name": name, "labels": {"kubernetes.io/service-name": "r0"}}));
                    serde_json::Value::Object(o).to_string()
                } else {
                    format!(
                        "{{\"apiVersion\": \"{api}\", \"kind\": \"{kind}\", \"metadata\": {{\"name\": \"{name}\"}}, \"spec\": {spec}}}"
                    )
                }
            })
            .collect();
        let text = docs.join("\n---\n");
        all(&text);
        if let Ok(loaded) = istio::parse_str(&text, "fuzz", "default") {
            for name in ["r0", "r1"] {
                let gw = Options::gateway([(istio::gateway_api::GATEWAY_NAME_LABEL, name)])
                    .map_port(80, 18080);
                let _ = istio::translate(&loaded.value, &gw);
                let _ = istio::gateway_api::status_yaml(&loaded.value, &gw);
            }
        }
    }
}
