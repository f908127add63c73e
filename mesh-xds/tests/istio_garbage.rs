//! Garbage in gives an error (or, for harmless input, a value), never a panic: neither the Istio
//! reader nor the translator, in either role.

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
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for len in [0usize, 1, 7, 64, 512, 4096] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        all(&String::from_utf8_lossy(&bytes));
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
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0u64..70_000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        proptest::sample::select(STRINGS).prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(8, 256, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(proptest::sample::select(KEYS), inner, 0..6).prop_map(
                |m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            ),
        ]
    })
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
