//! Garbage in gives an error (or, for harmless input, a value), never a panic.

#[path = "support/junk.rs"]
mod junk;

use mesh_xds::envoy::{parse_bootstrap, parse_route_configuration};
use proptest::prelude::*;

fn both(text: &str) {
    let _ = parse_bootstrap(text);
    let _ = parse_route_configuration(text);
}

#[test]
fn random_bytes() {
    for text in junk::pseudo_random_texts() {
        both(&text);
    }
}

#[test]
fn wrong_types_everywhere_are_errors() {
    for doc in [
        "42",
        "\"text\"",
        "[1, 2, 3]",
        "static_resources: 3",
        "static_resources: { listeners: {} }",
        "static_resources: { listeners: [1, \"x\", null, []] }",
        "static_resources: { clusters: [1, \"x\", [], { name: [] }] }",
        "static_resources: { clusters: [{ name: c, load_assignment: { endpoints: 7 } }] }",
        "static_resources: { clusters: [{ name: c, load_assignment: { endpoints: [{ lb_endpoints: [{ endpoint: 1 }] }] } }] }",
        "static_resources: { listeners: [{ address: [], filter_chains: [{ filters: [{ typed_config: 5 }] }] }] }",
        "admin: { address: { socket_address: { address: 1, port_value: {} } } }",
        "admin: { address: { socket_address: { address: 0.0.0.0, port_value: 70000 } } }",
    ] {
        let err = parse_bootstrap(doc).expect_err(doc);
        assert!(!err.to_string().is_empty());
    }
    for doc in [
        "virtual_hosts: 1",
        "virtual_hosts: [{ routes: [{ match: 1, route: [] }] }]",
        "virtual_hosts: [{ name: a, domains: [1], routes: [{ match: { headers: [{ name: 3 }] } }] }]",
        "virtual_hosts: [{ name: a, domains: ['*'], routes: [{ match: { prefix: / }, route: { cluster: c, timeout: -1s } }] }]",
        "virtual_hosts: [{ name: a, domains: ['*'], routes: [{ match: { prefix: / }, direct_response: { status: 200, body: { inline_bytes: '%%%' } } }] }]",
    ] {
        parse_route_configuration(doc).expect_err(doc);
    }
}

#[test]
fn deeply_nested_junk() {
    for depth in [200usize, 10_000, 100_000] {
        both(&"[".repeat(depth));
        both(&"{a: ".repeat(depth));
        both(&format!("{}1{}", "[".repeat(depth), "]".repeat(depth)));
        both(&format!("{}{}", "{\"a\":".repeat(depth), "}".repeat(depth)));
        both(&"- ".repeat(depth));
    }
    // Nesting within the parsers' limits, in a place that is user data.
    let nested = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    both(&format!(
        "virtual_hosts: [{{ name: a, domains: ['*'], typed_per_filter_config: {{ f: {{ '@type': x, v: {nested} }} }} }}]"
    ));
}

#[test]
fn alias_bombs_do_not_explode() {
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
    assert!(parse_bootstrap(bomb).is_err());
}

/// Keys that the reader knows, so random documents reach deep into the converters.
const KEYS: &[&str] = &[
    "static_resources",
    "listeners",
    "clusters",
    "admin",
    "address",
    "socket_address",
    "port_value",
    "filter_chains",
    "filters",
    "name",
    "typed_config",
    "@type",
    "route_config",
    "virtual_hosts",
    "domains",
    "routes",
    "match",
    "prefix",
    "route",
    "cluster",
    "weighted_clusters",
    "weight",
    "headers",
    "string_match",
    "exact_match",
    "safe_regex",
    "regex",
    "load_assignment",
    "endpoints",
    "lb_endpoints",
    "endpoint",
    "value",
    "seconds",
    "nanos",
    "timeout",
    "retry_policy",
    "retry_back_off",
    "type",
    "lb_policy",
    "health_checks",
    "http_filters",
    "redirect",
    "direct_response",
    "body",
    "inline_bytes",
    "hash_policy",
    "header",
    "metadata",
    "filter_metadata",
    "hosts",
    "typed_extension_protocol_options",
    "outlier_detection",
    "circuit_breakers",
    "thresholds",
    "request_headers_to_add",
    "append",
    "append_action",
    "access_log",
    "rds",
];

const STRINGS: &[&str] = &[
    "",
    "0.0.0.0",
    "::",
    "STRICT_DNS",
    "STATIC",
    "EDS",
    "MAGLEV",
    "1.5s",
    "-1s",
    "99999999999999s",
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "type.googleapis.com/xds.type.v3.TypedStruct",
    "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
    "envoy.filters.http.router",
    "/",
    "*",
    "aGk=",
    "\u{0}",
    "18446744073709551616",
];

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    junk::json_value(KEYS, STRINGS, any::<u64>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        both(&text);
    }

    #[test]
    fn yamlish_strings_never_panic(text in "[a-z_@:{}\\[\\], \n\"'&*!-]{0,200}") {
        both(&text);
    }

    #[test]
    fn arbitrary_documents_never_panic(doc in json_value()) {
        let text = serde_json::to_string(&doc).unwrap();
        both(&text);
        // The same document under the places where the converters live.
        both(&format!("{{\"static_resources\": {{\"clusters\": [{text}], \"listeners\": [{text}]}}}}"));
        both(&format!("{{\"virtual_hosts\": [{{\"name\": \"a\", \"domains\": [\"*\"], \"routes\": [{text}]}}]}}"));
    }
}
