//! Envoy v3 JSON output: what `mesh_xds::envoy::dump` writes reads back through the reader into
//! the same model, with no warnings; and a few exact outputs.

#[path = "support/conformance.rs"]
mod conformance;

use std::collections::BTreeMap;
use std::time::Duration;

use mesh_core::config::*;
use mesh_xds::envoy::{dump, parse_bootstrap, parse_route_configuration};
use mesh_xds::xds::resource::{self, Resource};
use serde_json::{Value, json};

// === round-trip helpers ===

/// Dumps `b`, reads the JSON back and checks that the model is unchanged and that dumping it
/// again gives the same JSON.
fn round_trip(b: &Bootstrap) -> Value {
    let json = dump::bootstrap(b);
    let text = serde_json::to_string(&json).unwrap();
    let back = parse_bootstrap(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back.warnings, [], "{text}");
    if back.value != *b {
        let a = format!("{b:#?}");
        let c = format!("{:#?}", back.value);
        let diff: Vec<_> = a
            .lines()
            .zip(c.lines())
            .enumerate()
            .filter(|(_, (x, y))| x != y)
            .take(5)
            .collect();
        panic!("changed through the file: {diff:#?}");
    }
    assert_eq!(dump::bootstrap(&back.value), json);
    for l in &b.listeners {
        wire_round_trip(Resource::Listener(l.clone()));
    }
    for c in &b.clusters {
        wire_round_trip(Resource::Cluster(c.clone()));
        if let Some(la) = &c.load_assignment {
            // Over EDS, endpoints name their cluster.
            let mut la = la.clone();
            if la.cluster_name.is_empty() {
                la.cluster_name.clone_from(&c.name);
            }
            wire_round_trip(Resource::Endpoints(la));
        }
    }
    json
}

/// Encodes a resource as protobuf, as a control plane sends it, and checks that it decodes into
/// the same model without a warning.
///
/// Protobuf's proto3 fields cannot tell a value at its zero from a value not set, where the model
/// (like Envoy's JSON) can: those values are set to what an unset field reads as first.
fn wire_round_trip(mut r: Resource) {
    fn routes(rc: &mut RouteConfiguration) {
        for vh in &mut rc.virtual_hosts {
            if let Some(p) = &mut vh.retry_policy {
                wire_retry(p);
            }
            for route in &mut vh.routes {
                match &mut route.action {
                    Action::Redirect(r) if r.host_redirect.as_deref() == Some("") => {
                        r.host_redirect = None
                    }
                    Action::Route(a) => {
                        if let Some(p) = &mut a.retry_policy {
                            wire_retry(p);
                        }
                        if a.prefix_rewrite.as_deref() == Some("") {
                            a.prefix_rewrite = None;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    fn wire_retry(p: &mut RetryPolicy) {
        if p.host_selection_retry_max_attempts == 0 {
            p.host_selection_retry_max_attempts = 1;
        }
    }
    match &mut r {
        Resource::Route(rc) => routes(rc),
        Resource::Listener(l) => {
            for h in l.hcms_mut() {
                if h.server_name.is_empty() {
                    h.server_name = "envoy".into();
                }
                if let RouteSource::RouteConfig(rc) = &mut h.route {
                    routes(rc);
                }
            }
        }
        _ => {}
    }
    let json = r.to_json();
    let any =
        resource::encode_json(r.resource_type(), &json).unwrap_or_else(|e| panic!("{e}\n{json:#}"));
    let back = resource::decode(&any).unwrap_or_else(|e| panic!("{e}\n{json:#}"));
    assert_eq!(back.warnings, [], "{json:#}");
    if back.value != r {
        let diff: Vec<String> = diff_json("", &json, &back.value.to_json());
        panic!("changed on the wire: {diff:#?}");
    }
}

fn round_trip_routes(rc: &RouteConfiguration, what: &str) -> Value {
    let json = dump::route_configuration(rc);
    let text = serde_json::to_string_pretty(&json).unwrap();
    let back = parse_route_configuration(&text).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
    assert_eq!(back.warnings, [], "{what}: {text}");
    assert_eq!(back.value, *rc, "{what}: {text}");
    // Over RDS, a route configuration has a name.
    let mut named = rc.clone();
    if named.name.is_empty() {
        named.name = "rds".into();
    }
    wire_round_trip(Resource::Route(named));
    json
}

fn load(yaml: &str) -> Bootstrap {
    let loaded = parse_bootstrap(yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.warnings, []);
    loaded.value
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn diff_json(path: &str, a: &Value, b: &Value) -> Vec<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter()
                .flat_map(|k| {
                    diff_json(
                        &format!("{path}.{k}"),
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                    )
                })
                .collect()
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .flat_map(|(i, (a, b))| diff_json(&format!("{path}[{i}]"), a, b))
            .collect(),
        _ if a == b => Vec::new(),
        _ => vec![format!("{path}: {a} -> {b}")],
    }
}

// === the front proxy ===

/// Envoy's front-proxy example (examples/front-proxy), as in `front_proxy.rs`.
const FRONT_PROXY_YAML: &str = include_str!("fixtures/front_proxy.yaml");

#[test]
fn front_proxy_round_trips() {
    let json = round_trip(&load(FRONT_PROXY_YAML));
    // What Envoy's own dump of this file holds, defaults left out.
    assert_eq!(
        json,
        json!({
            "static_resources": {
                "listeners": [{
                    "name": "0.0.0.0_8080",
                    "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8080}},
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "ingress_http",
                            "route_config": {
                                "name": "local_route",
                                "virtual_hosts": [
                                    {"name": "service1", "domains": ["service1.example.com"],
                                     "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "service1"}}]},
                                    {"name": "backend", "domains": ["*"],
                                     "routes": [
                                        {"match": {"prefix": "/service/1"}, "route": {"cluster": "service1"}},
                                        {"match": {"prefix": "/service/2"}, "route": {"cluster": "service2"}}
                                     ]}
                                ]
                            },
                            "http_filters": [{
                                "name": "envoy.filters.http.router",
                                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                            }]
                        }
                    }]}]
                }],
                "clusters": [
                    {"name": "service1", "type": "STRICT_DNS", "connect_timeout": "0.25s",
                     "load_assignment": {"cluster_name": "service1", "endpoints": [{"locality": {}, "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": "service1", "port_value": 8000}}}}]}]}},
                    {"name": "service2", "type": "STRICT_DNS", "connect_timeout": "0.25s",
                     "load_assignment": {"cluster_name": "service2", "endpoints": [{"locality": {}, "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": "service2", "port_value": 8000}}}}]}]}}
                ]
            },
            "admin": {"address": {"socket_address": {"address": "0.0.0.0", "port_value": 8001}}}
        })
    );
}

// === a config with every field kind, written as Envoy YAML ===

/// The connection-manager, route and cluster settings of `features.rs` in one bootstrap: every
/// field the reader supports, most of them away from their defaults.
const RICH_YAML: &str = r#"
static_resources:
  listeners:
  - name: edge
    address: { socket_address: { address: "::", port_value: 443 } }
    filter_chains:
    - filter_chain_match:
        destination_port: { value: 443 }
        server_names: [example.com]
        transport_protocol: raw_buffer
        application_protocols: [h2, http/1.1]
      filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: edge
          codec_type: HTTP2
          max_request_headers_kb: { value: 96 }
          request_headers_timeout: 10s
          stream_idle_timeout: 0s
          common_http_protocol_options:
            idle_timeout: 900s
            max_requests_per_connection: 1000
            max_connection_duration: 3600s
          use_remote_address: { value: true }
          xff_num_trusted_hops: 2
          internal_address_config:
            cidr_ranges: [{ address_prefix: 10.0.0.0, prefix_len: 8 }, { address_prefix: "fd00::", prefix_len: { value: 8 } }]
          preserve_external_request_id: true
          generate_request_id: false
          upgrade_configs: [{ upgrade_type: websocket }, { upgrade_type: CONNECT, enabled: false }]
          strip_any_host_port: true
          strip_matching_host_port: true
          server_name: mesh
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: { text_format_source: { inline_string: "%START_TIME% %REQ(:PATH)%\n" } }
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: /var/log/access.log
              log_format: { text_format: "%RESPONSE_CODE%\n" }
          - name: envoy.access_loggers.stderr
          http_filters:
          - name: acme.api_key
            typed_config:
              "@type": type.googleapis.com/xds.type.v3.TypedStruct
              type_url: acme.ApiKey
              value: { header: x-api-key, keys: [a, b] }
          - name: acme.legacy
            disabled: true
            typed_config:
              "@type": type.googleapis.com/udpa.type.v1.TypedStruct
              type_url: acme.Legacy
          - name: acme.bare
          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort: { http_status: 503, percentage: { numerator: 10 } }
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              suppress_envoy_headers: true
          route_config:
            name: main
            validate_clusters: { value: false }
            ignore_port_in_host_matching: true
            ignore_path_parameters_in_path_matching: true
            most_specific_header_mutations_wins: true
            max_direct_response_body_size_bytes: 8192
            internal_only_headers: [x-internal]
            request_mirror_policies: [{ cluster: shadow }]
            request_headers_to_add:
            - header: { key: x-a, value: "1" }
              append: false
            - header: { key: x-b, raw_value: aGk= }
              append_action: ADD_IF_ABSENT
              keep_empty_value: true
            - header: { key: x-empty }
              keep_empty_value: true
            request_headers_to_remove: [x-c]
            response_headers_to_add: [{ header: { key: x-served-by, value: mesh }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }]
            response_headers_to_remove: [x-powered-by]
            virtual_hosts:
            - name: api
              domains: [api.example.com, "*.api.example.com"]
              require_tls: EXTERNAL_ONLY
              include_request_attempt_count: true
              include_attempt_count_in_response: true
              per_request_buffer_limit_bytes: { value: 65536 }
              retry_policy: { retry_on: "5xx", num_retries: { value: 3 } }
              hedge_policy: { hedge_on_per_try_timeout: true }
              request_mirror_policies:
              - { cluster_header: x-mirror, disable_shadow_host_suffix_append: true }
              request_headers_to_add: [{ header: { key: x-vh, value: api } }]
              typed_per_filter_config:
                acme.api_key:
                  "@type": type.googleapis.com/xds.type.v3.TypedStruct
                  type_url: acme.ApiKey
                  value: { disabled: true }
                envoy.filters.http.fault:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
                  delay: { fixed_delay: 1s }
              virtual_clusters:
              - name: legacy
                pattern: ^/rides$
                method: POST
              - name: modern
                headers: [{ name: ":path", string_match: { prefix: /v2/ } }]
              routes:
              - name: regex
                match:
                  safe_regex: { google_re2: {}, regex: "^/v[0-9]+/.*" }
                  case_sensitive: { value: false }
                  runtime_fraction: { default_value: { numerator: 25, denominator: TEN_THOUSAND }, runtime_key: k }
                  query_parameters: [{ name: debug, present_match: true }, { name: v, string_match: { exact: "2" } }]
                  tls_context: { presented: { value: true }, validated: false }
                  grpc: {}
                  headers:
                  - { name: a, exact_match: "" }
                  - { name: b, exact_match: x }
                  - { name: c, prefix_match: p }
                  - { name: d, suffix_match: s }
                  - { name: e, contains_match: c }
                  - { name: f, safe_regex_match: { google_re2: {}, regex: "^x$" } }
                  - { name: g, present_match: false }
                  - { name: h, range_match: { start: "1", end: 10 } }
                  - { name: i, string_match: { prefix: q, ignore_case: true }, invert_match: true }
                  - { name: j, treat_missing_header_as_empty: true, string_match: { exact: "" } }
                  - { name: k, range_match: { start: -5, end: 0 } }
                route:
                  weighted_clusters:
                    total_weight: 100
                    runtime_key_prefix: w
                    header_name: x-pick
                    clusters:
                    - name: a
                      weight: 70
                      request_headers_to_add: [{ header: { key: x-w, value: a } }]
                      response_headers_to_remove: [x-w]
                      host_rewrite_literal: a.internal
                      typed_per_filter_config:
                        f: { "@type": type.googleapis.com/a.B, x: 1 }
                    - { name: b, weight: { value: 30 } }
                    - { cluster_header: x-c, weight: 0 }
                  timeout: 2.5s
                  idle_timeout: { seconds: 60 }
                  prefix_rewrite: /v2/
                  auto_host_rewrite: { value: true }
                  append_x_forwarded_host: true
                  cluster_not_found_response_code: NOT_FOUND
                  metadata_match: { filter_metadata: { envoy.lb: { version: v2, canary: true } } }
                  retry_policy:
                    retry_on: 5xx,reset,retriable-status-codes
                    num_retries: 4
                    per_try_timeout: 0.5s
                    per_try_idle_timeout: 0.2s
                    retry_back_off: { base_interval: 0.01s, max_interval: 0.1s }
                    retriable_status_codes: [409, "429"]
                    retriable_headers: [{ name: x-retry, exact_match: "yes" }]
                    retriable_request_headers: [{ name: ":method", string_match: { exact: GET } }]
                    retry_host_predicate:
                    - { name: envoy.retry_host_predicates.previous_hosts, typed_config: { "@type": x } }
                    - { name: acme.retry_host_predicates.custom }
                    host_selection_retry_max_attempts: "5"
                  hedge_policy: {}
                  request_mirror_policy: { cluster: mirror, runtime_fraction: { default_value: { numerator: 50 } } }
                  hash_policy:
                  - header: { header_name: x-user }
                  - cookie: { name: sticky, ttl: 3600s, path: / }
                    terminal: true
                  - cookie: { name: plain }
                  - connection_properties: { source_ip: true }
                  - query_parameter: { name: q }
                  - filter_state: { key: k }
                  upgrade_configs: [{ upgrade_type: websocket, enabled: { value: true } }, { upgrade_type: h2c, enabled: false }]
                  max_grpc_timeout: 30s
                  grpc_timeout_offset: 0.05s
                  priority: HIGH
              - match: { path_separated_prefix: /api }
                route:
                  cluster_header: x-cluster
                  regex_rewrite: { pattern: { regex: "^/api/(.*)" }, substitution: /\1 }
                  host_rewrite_path_regex: { pattern: { regex: "^/(.+)/.*" }, substitution: \1 }
                  cluster_not_found_response_code: INTERNAL_SERVER_ERROR
                  timeout: 0s
              - match: { connect_matcher: {} }
                route: { cluster: tunnel, host_rewrite_header: x-host }
              - match:
                  path_match_policy:
                    name: envoy.path.match.uri_template.uri_template_matcher
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig
                      path_template: "/books/{id}/**"
                route: { cluster: books, host_rewrite_literal: books.internal, max_stream_duration: { grpc_timeout_header_max: 7s } }
              - match: { path: /old }
                redirect: { https_redirect: true, host_redirect: new.example.com, port_redirect: 8443, path_redirect: /new, response_code: PERMANENT_REDIRECT, strip_query: true }
              - match: { prefix: /re }
                redirect: { scheme_redirect: http, regex_rewrite: { pattern: { regex: "^/re(.*)" }, substitution: "/\\1" }, response_code: FOUND }
              - match: { prefix: /moved }
                redirect: { prefix_rewrite: /new-home, response_code: SEE_OTHER }
              - match: { prefix: /temp }
                redirect: { host_redirect: temp.example.com, response_code: TEMPORARY_REDIRECT }
              - match: { prefix: /perm }
                redirect: { path_redirect: /permanent }
              - match: { prefix: /ping }
                direct_response: { status: 200, body: { inline_bytes: cG9uZw== } }
                response_headers_to_add: [{ header: { key: x-ping, value: pong }, append_action: OVERWRITE_IF_EXISTS }]
                response_headers_to_remove: [server]
                per_request_buffer_limit_bytes: 1024
                typed_per_filter_config:
                  acme.api_key: { "@type": type.googleapis.com/xds.type.v3.TypedStruct, value: { skip: true } }
              - match: { prefix: /gone }
                direct_response: { status: 410 }
              - match: { prefix: "" }
                route: { cluster: default }
            - name: all
              domains: ["*"]
              require_tls: ALL
              routes:
              - match: { prefix: / }
                route: { cluster: default, timeout: 1.5s }
  clusters:
  - name: full
    type: STATIC
    connect_timeout: 1s
    lb_policy: LEAST_REQUEST
    least_request_lb_config: { choice_count: { value: 3 }, active_request_bias: { default_value: 0.5, runtime_key: b } }
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
        common_http_protocol_options: { idle_timeout: 30s, max_requests_per_connection: 100 }
    circuit_breakers:
      thresholds:
      - { max_connections: { value: 10 }, max_pending_requests: 20, max_requests: "30", max_retries: 4, track_remaining: true }
      - priority: HIGH
        retry_budget: { budget_percent: { value: 25.0 }, min_retry_concurrency: 5 }
      - priority: HIGH
        retry_budget: {}
    outlier_detection:
      consecutive_5xx: { value: 7 }
      consecutive_gateway_failure: 3
      consecutive_local_origin_failure: 2
      interval: 5s
      base_ejection_time: 10s
      max_ejection_time: 100s
      max_ejection_percent: 50
      enforcing_consecutive_5xx: 90
      enforcing_consecutive_gateway_failure: 80
      enforcing_consecutive_local_origin_failure: 70
      enforcing_success_rate: 60
      success_rate_minimum_hosts: 4
      success_rate_request_volume: 40
      success_rate_stdev_factor: 1500
      failure_percentage_threshold: 75
      enforcing_failure_percentage: 20
      failure_percentage_minimum_hosts: 3
      failure_percentage_request_volume: 30
      split_external_local_origin_errors: true
    health_checks:
    - timeout: 1s
      interval: 5s
      unhealthy_threshold: { value: 3 }
      healthy_threshold: 2
      http_health_check: { path: /healthz, host: health.local, expected_statuses: [{ start: 200, end: 300 }] }
    - { timeout: 2s, interval: 10s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} }
    - { timeout: 0.5s, interval: 1s, unhealthy_threshold: 0, healthy_threshold: 0, http_health_check: { path: / } }
    common_lb_config: { healthy_panic_threshold: { value: 25.5 } }
    load_assignment:
      cluster_name: full
      policy: { overprovisioning_factor: { value: 200 } }
      endpoints:
      - locality: { region: eu, zone: eu-1, sub_zone: a }
        priority: 1
        load_balancing_weight: 5
        lb_endpoints:
        - endpoint: { address: { socket_address: { address: "::1", port_value: 8080 } }, hostname: one.local }
          health_status: DRAINING
          load_balancing_weight: 3
          metadata: { filter_metadata: { envoy.lb: { version: v1 }, istio: { workload: w } } }
        - endpoint: { address: { socket_address: { address: 10.0.0.2, port_value: 8080 } } }
          health_status: HEALTHY
      - locality: { zone: eu-2 }
        lb_endpoints:
        - endpoint: { address: { socket_address: { address: 10.0.0.3, port_value: 8080 } } }
          health_status: DEGRADED
  - name: hashing
    type: STRICT_DNS
    lb_policy: RING_HASH
    dns_refresh_rate: 30s
    ring_hash_lb_config: { minimum_ring_size: 2048, maximum_ring_size: "4096" }
    http2_protocol_options: {}
    max_requests_per_connection: 7
    hosts: [{ socket_address: { address: dns.example.com, port_value: 80 } }]
  - name: maglev
    lb_policy: MAGLEV
    maglev_lb_config: { table_size: 5 }
    common_http_protocol_options: { idle_timeout: 2s }
    load_assignment: { cluster_name: maglev, endpoints: [] }
    outlier_detection: {}
  - name: random
    lb_policy: RANDOM
    connect_timeout: 0.001s
    load_assignment: { cluster_name: random }
    common_lb_config: { healthy_panic_threshold: { value: 0 } }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 9901 } }
"#;

#[test]
fn every_field_kind_round_trips() {
    let b = load(RICH_YAML);
    // The file does hold what it claims to: a spot check of each kind.
    let hcm = b.listeners[0].filter_chains[0].hcm().unwrap();
    assert_eq!(hcm.http_filters.len(), 4);
    assert_eq!(hcm.access_log.len(), 3);
    let RouteSource::RouteConfig(rc) = &hcm.route else {
        panic!("inline routes")
    };
    let routes = &rc.virtual_hosts[0].routes;
    assert!(matches!(routes[0].action, Action::Route(_)));
    assert!(matches!(routes[4].action, Action::Redirect(_)));
    assert!(matches!(routes[9].action, Action::DirectResponse(_)));
    assert_eq!(b.clusters[0].protocol, UpstreamProtocol::Http2);
    assert_eq!(b.clusters[1].discovery_type, DiscoveryType::StrictDns);
    assert!(b.clusters[2].outlier_detection.is_some());
    assert_eq!(b.clusters[3].healthy_panic_threshold, 0.0);

    let json = round_trip(&b);

    // Spot checks of Envoy's JSON mapping in the output.
    let hcm =
        &json["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["codec_type"], "HTTP2");
    assert_eq!(hcm["stream_idle_timeout"], "0s");
    assert_eq!(hcm["max_request_headers_kb"], 96);
    assert_eq!(hcm["common_http_protocol_options"]["idle_timeout"], "900s");
    let filters = hcm["http_filters"].as_array().unwrap();
    assert_eq!(
        filters[0],
        json!({"name": "acme.api_key", "typed_config": {
            "@type": "type.googleapis.com/xds.type.v3.TypedStruct",
            "type_url": "acme.ApiKey",
            "value": {"header": "x-api-key", "keys": ["a", "b"]}
        }})
    );
    assert_eq!(filters[2], json!({"name": "acme.bare"}));
    // One of Envoy's own filters keeps its typed form.
    assert_eq!(
        filters[3]["typed_config"],
        json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
            "abort": {"http_status": 503, "percentage": {"numerator": 10}}
        })
    );
    assert_eq!(
        filters[4],
        json!({"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
            "suppress_envoy_headers": true
        }})
    );
    let rc = &hcm["route_config"];
    let route = &rc["virtual_hosts"][0]["routes"][0];
    assert_eq!(route["match"]["case_sensitive"], false);
    assert_eq!(
        route["match"]["headers"][7]["range_match"],
        json!({"start": "1", "end": "10"})
    );
    assert_eq!(
        route["route"]["retry_policy"]["host_selection_retry_max_attempts"],
        "5"
    );
    assert_eq!(
        route["route"]["max_stream_duration"],
        json!({"grpc_timeout_header_max": "30s", "grpc_timeout_header_offset": "0.05s"})
    );
    let cluster = &json["static_resources"]["clusters"][0];
    assert_eq!(cluster["lb_policy"], "LEAST_REQUEST");
    assert_eq!(
        cluster["common_lb_config"],
        json!({"healthy_panic_threshold": {"value": 25.5}})
    );
    assert_eq!(
        cluster["circuit_breakers"]["thresholds"][1],
        json!({"priority": "HIGH", "retry_budget": {"budget_percent": {"value": 25}, "min_retry_concurrency": 5}})
    );
    assert_eq!(
        json["static_resources"]["clusters"][1]["ring_hash_lb_config"],
        json!({"minimum_ring_size": "2048", "maximum_ring_size": "4096"})
    );
}

// === a config built in Rust ===

fn string_header(name: &str, pattern: StringPattern, ignore_case: bool) -> HeaderMatcher {
    HeaderMatcher::new(
        name,
        HeaderMatchSpec::String(StringMatcher {
            pattern,
            ignore_case,
        }),
    )
}

/// A bootstrap built with the model's own constructors, with the variants the YAML above does
/// not reach.
fn built() -> Bootstrap {
    let mut matched = RouteMatch::new(PathMatch::Prefix("/m".into()));
    matched.headers = vec![
        HeaderMatcher::new("r", HeaderMatchSpec::Range { start: 0, end: 1 }),
        HeaderMatcher::new("gone", HeaderMatchSpec::Present(false)),
        string_header("s", StringPattern::Suffix(".png".into()), true),
        string_header("c", StringPattern::Contains("mid".into()), false),
        string_header("x", StringPattern::SafeRegex("a|b".into()), false),
        HeaderMatcher {
            treat_missing_header_as_empty: true,
            invert_match: true,
            ..HeaderMatcher::exact("e", "")
        },
    ];
    matched.tls_context = Some(TlsContextMatch::default());
    matched.runtime_fraction = Some(RuntimeFraction {
        default_value: FractionalPercent {
            numerator: 0,
            denominator: Denominator::Million,
        },
        runtime_key: String::new(),
    });
    let mut action = RouteAction::cluster("web");
    action.cluster_not_found_response_code = 500;
    action.retry_policy = Some(RetryPolicy::default());
    action.hedge_policy = Some(HedgePolicy::default());
    action.request_mirror_policies = vec![
        RequestMirrorPolicy {
            cluster: "web".into(),
            ..RequestMirrorPolicy::default()
        },
        RequestMirrorPolicy {
            cluster_header: Some("x-mirror".into()),
            disable_shadow_host_suffix_append: true,
            ..RequestMirrorPolicy::default()
        },
    ];
    action.hash_policy = vec![HashPolicy {
        policy: HashOn::Header {
            header_name: "x-h".into(),
        },
        terminal: true,
    }];
    action.idle_timeout = Some(Duration::ZERO);
    action.timeout = Some(secs(0.125));
    let mut route = Route::new(matched, Action::Route(action));
    route.name = "built".into();
    route.headers.request_headers_to_add = vec![
        HeaderValueOption::set("x-set", "1"),
        HeaderValueOption::append("x-add", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ];
    let mut weighted = RouteAction::new(ClusterSpecifier::WeightedClusters(WeightedClusters {
        clusters: vec![
            ClusterWeight {
                name: "web".into(),
                weight: 1,
                ..ClusterWeight::default()
            },
            ClusterWeight {
                name: "grpc".into(),
                weight: 3,
                ..ClusterWeight::default()
            },
        ],
        ..WeightedClusters::default()
    }));
    weighted.upgrade_configs = vec![UpgradeConfig::websocket()];
    let mut vh = VirtualHost::new("built", ["*", "built.example.com:8080"])
        .with_route(route)
        .with_route(Route::new(
            RouteMatch::new(PathMatch::Path("/w".into())),
            Action::Route(weighted),
        ))
        .with_route(Route::new(
            RouteMatch::new(PathMatch::Prefix("/redirect".into())),
            Action::Redirect(RedirectAction::default()),
        ))
        .with_route(Route::new(
            RouteMatch::new(PathMatch::Prefix("/empty".into())),
            Action::DirectResponse(DirectResponseAction {
                status: 204,
                body: Some(String::new()),
            }),
        ))
        .with_route(Route::prefix("/", "web"));
    // Zeros where the model's defaults are 1 (found by the generated round trip below).
    vh.retry_policy = Some(RetryPolicy {
        num_retries: 0,
        host_selection_retry_max_attempts: 0,
        ..RetryPolicy::default()
    });
    vh.virtual_clusters = vec![VirtualCluster {
        name: "all".into(),
        headers: vec![HeaderMatcher::present(":path")],
    }];
    vh.typed_per_filter_config
        .insert("acme.auth".into(), json!({"mode": "off", "n": 1.5}));
    let mut rc = RouteConfiguration::new("built").with_virtual_host(vh);
    rc.validate_clusters = Some(true);

    let mut hcm = HttpConnectionManager::with_routes(rc);
    hcm.codec_type = CodecType::Http1;
    hcm.server_name = String::new();
    hcm.http_filters = vec![
        HttpFilterConfig::new("acme.auth", json!({"realm": "mesh"})),
        HttpFilterConfig {
            type_url: Some("type.googleapis.com/acme.Log".into()),
            ..HttpFilterConfig::new("acme.log", json!({"level": 2}))
        },
    ];
    hcm.access_log = vec![AccessLog {
        sink: AccessLogSink::File("/tmp/access.log".into()),
        format: None,
    }];

    let mut web = Cluster::new_static(
        "web",
        [
            "127.0.0.1:8081".parse().unwrap(),
            "[::1]:8082".parse().unwrap(),
        ],
    );
    web.circuit_breakers.thresholds = vec![Thresholds::default()];
    web.outlier_detection = Some(OutlierDetection::default());
    web.health_checks = vec![HealthCheck {
        timeout: secs(1.0),
        interval: secs(2.0),
        unhealthy_threshold: 2,
        healthy_threshold: 1,
        checker: HealthChecker::Http {
            path: "/ready".into(),
            host: None,
            expected_statuses: vec![(200, 201), (204, 205)],
        },
    }];
    web.idle_timeout = secs(90.0);
    web.eds_service_name = None;
    web.locality_weighted_lb = true;
    web.lb_subset_config = Some(LbSubsetConfig {
        fallback_policy: LbSubsetFallbackPolicy::DefaultSubset,
        default_subset: [("version".to_owned(), json!("v1"))].into(),
        subset_selectors: vec![
            LbSubsetSelector {
                keys: vec!["version".into()],
                ..LbSubsetSelector::default()
            },
            LbSubsetSelector {
                keys: vec!["version".into(), "stage".into()],
                fallback_policy: LbSubsetSelectorFallbackPolicy::KeysSubset,
                fallback_keys_subset: vec!["version".into()],
            },
            LbSubsetSelector {
                keys: vec!["canary".into()],
                fallback_policy: LbSubsetSelectorFallbackPolicy::AnyEndpoint,
                ..LbSubsetSelector::default()
            },
        ],
    });
    let mut grpc = Cluster::new_static("grpc", ["10.1.2.3:9000".parse().unwrap()])
        .with_protocol(UpstreamProtocol::Http2);
    grpc.lb_policy = LbPolicy::RingHash;
    grpc.ring_hash.maximum_ring_size = 1 << 40;
    grpc.connect_timeout = secs(0.000_000_5);
    let mut dns = Cluster {
        name: "dns".into(),
        discovery_type: DiscoveryType::StrictDns,
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: "dns".into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    load_balancing_weight: 10,
                    health_status: HealthStatus::Timeout,
                    ..LbEndpoint::new(Address {
                        host: "upstream.internal".into(),
                        port: 443,
                    })
                }],
                load_balancing_weight: Some(1),
                priority: 0,
                ..LocalityLbEndpoints::default()
            }],
            overprovisioning_factor: 100,
        }),
        ..Cluster::default()
    };
    dns.dns_refresh_rate = secs(0.5);
    dns.least_request.choice_count = 5;

    let mut b = Bootstrap::default()
        .with_listener(Listener::http("built", "[::1]:0".parse().unwrap(), hcm))
        .with_cluster(web)
        .with_cluster(grpc)
        .with_cluster(dns);
    b.admin = Some(Admin {
        address: "127.0.0.1:0".parse().unwrap(),
    });
    b
}

#[test]
fn a_model_built_in_rust_round_trips() {
    let b = built();
    b.validate().unwrap();
    let json = round_trip(&b);
    let l = &json["static_resources"]["listeners"][0];
    // `port_value` is in a oneof: printed even when 0, as protobuf prints a set oneof member.
    assert_eq!(
        l["address"],
        json!({"socket_address": {"address": "::1", "port_value": 0}})
    );
    let hcm = &l["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["server_name"], "");
    assert_eq!(
        hcm["http_filters"][1]["typed_config"],
        json!({
            "@type": "type.googleapis.com/xds.type.v3.TypedStruct",
            "type_url": "type.googleapis.com/acme.Log",
            "value": {"level": 2}
        })
    );
    assert_eq!(
        hcm["access_log"][0],
        json!({"name": "envoy.access_loggers.file", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": "/tmp/access.log"
        }})
    );
    let route = &hcm["route_config"]["virtual_hosts"][0]["routes"][0];
    assert_eq!(
        route["match"]["headers"][0],
        json!({"name": "r", "range_match": {"end": "1"}})
    );
    assert_eq!(
        route["match"]["runtime_fraction"],
        json!({"default_value": {"denominator": "MILLION"}})
    );
    assert_eq!(route["route"]["retry_policy"], json!({}));
    assert_eq!(
        hcm["route_config"]["virtual_hosts"][0]["retry_policy"],
        json!({"num_retries": 0, "host_selection_retry_max_attempts": "0"})
    );
    assert_eq!(route["route"]["idle_timeout"], "0s");
    let web = &json["static_resources"]["clusters"][0];
    assert_eq!(
        web["common_lb_config"],
        json!({"locality_weighted_lb_config": {}})
    );
    assert_eq!(
        web["lb_subset_config"],
        json!({
            "fallback_policy": "DEFAULT_SUBSET",
            "default_subset": {"version": "v1"},
            "subset_selectors": [
                {"keys": ["version"]},
                {"keys": ["version", "stage"], "fallback_policy": "KEYS_SUBSET",
                 "fallback_keys_subset": ["version"]},
                {"keys": ["canary"], "fallback_policy": "ANY_ENDPOINT"},
            ]
        })
    );
    let grpc = &json["static_resources"]["clusters"][1];
    assert_eq!(grpc["connect_timeout"], "0.0000005s");
    assert_eq!(
        grpc["ring_hash_lb_config"],
        json!({"maximum_ring_size": "1099511627776"})
    );
    // Envoy's lb_config is a oneof: only the ring hash policy's own config.
    assert!(grpc.get("least_request_lb_config").is_none());
}

#[test]
fn eds_clusters_round_trip_with_the_readers_one_warning() {
    let mut c = Cluster {
        name: "eds".into(),
        discovery_type: DiscoveryType::Eds,
        eds_service_name: Some("eds-service".into()),
        ..Cluster::default()
    };
    let b = Bootstrap::default().with_cluster(c.clone());
    let json = dump::bootstrap(&b);
    assert_eq!(
        json["static_resources"]["clusters"][0],
        json!({
            "name": "eds",
            "type": "EDS",
            "connect_timeout": "5s",
            "eds_cluster_config": {
                "eds_config": {"ads": {}, "resource_api_version": "V3"},
                "service_name": "eds-service"
            }
        })
    );
    let back = parse_bootstrap(&json.to_string()).unwrap();
    assert_eq!(back.value, b);
    let paths: Vec<&str> = back.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(paths, ["clusters[0].type"]);

    c.eds_service_name = None;
    assert_eq!(
        dump::cluster(&c)["eds_cluster_config"],
        json!({"eds_config": {"ads": {}, "resource_api_version": "V3"}})
    );
}

#[test]
fn rds_listeners_name_their_route_configuration() {
    let hcm = HttpConnectionManager {
        route: RouteSource::Rds("routes".into()),
        ..HttpConnectionManager::default()
    };
    let l = Listener::http("rds", "127.0.0.1:80".parse().unwrap(), hcm);
    let json = dump::listener(&l);
    assert_eq!(
        json["filter_chains"][0]["filters"][0]["typed_config"]["rds"],
        json!({
            "route_config_name": "routes",
            "config_source": {"ads": {}, "resource_api_version": "V3"}
        })
    );
}

// === Envoy's router_check_tool route configurations ===

#[test]
fn router_check_route_configurations_round_trip() {
    let Some(files) = conformance::router_check_yaml_files() else {
        return;
    };
    for file in &files {
        let loaded = mesh_xds::envoy::load_route_configuration(file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(loaded.warnings, [], "{}", file.display());
        round_trip_routes(&loaded.value, &file.display().to_string());
    }
}

// === exact output for small inputs ===

#[test]
fn a_static_cluster_prints_as_envoy_does() {
    let c = Cluster::new_static("web", ["127.0.0.1:8081".parse().unwrap()]);
    assert_eq!(
        dump::cluster(&c),
        json!({
            "name": "web",
            "type": "STATIC",
            "connect_timeout": "5s",
            "load_assignment": {
                "cluster_name": "web",
                "endpoints": [{"locality": {}, "lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                    "address": "127.0.0.1",
                    "port_value": 8081
                }}}}]}]
            }
        })
    );
}

#[test]
fn an_http2_cluster_with_breakers_and_health_checks() {
    let mut c = Cluster::new_static("api", ["10.0.0.1:443".parse().unwrap()])
        .with_protocol(UpstreamProtocol::Http2);
    c.connect_timeout = secs(1.5);
    c.lb_policy = LbPolicy::Maglev;
    c.maglev_table_size = 101;
    c.max_requests_per_connection = Some(50);
    c.circuit_breakers.thresholds = vec![Thresholds {
        max_requests: 10,
        ..Thresholds::default()
    }];
    c.outlier_detection = Some(OutlierDetection {
        consecutive_5xx: 3,
        interval: secs(0.5),
        ..OutlierDetection::default()
    });
    c.health_checks = vec![HealthCheck {
        timeout: secs(1.0),
        interval: secs(10.0),
        unhealthy_threshold: 3,
        healthy_threshold: 2,
        checker: HealthChecker::Tcp,
    }];
    c.healthy_panic_threshold = 0.0;
    let mut json = dump::cluster(&c);
    json.as_object_mut().unwrap().remove("load_assignment");
    assert_eq!(
        json,
        json!({
            "name": "api",
            "type": "STATIC",
            "connect_timeout": "1.5s",
            "lb_policy": "MAGLEV",
            "maglev_lb_config": {"table_size": "101"},
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                    "common_http_protocol_options": {"max_requests_per_connection": 50}
                }
            },
            "circuit_breakers": {"thresholds": [{"max_requests": 10}]},
            "outlier_detection": {"consecutive_5xx": 3, "interval": "0.5s"},
            "health_checks": [{
                "timeout": "1s",
                "interval": "10s",
                "unhealthy_threshold": 3,
                "healthy_threshold": 2,
                "tcp_health_check": {}
            }],
            "common_lb_config": {"healthy_panic_threshold": {"value": 0}}
        })
    );
}

#[test]
fn routes_print_matchers_actions_and_header_mutations() {
    let mut r = Route::prefix("/api", "api").with_header(HeaderMatcher::new(
        "x-version",
        HeaderMatchSpec::Range {
            start: 2,
            end: 10_000_000_000,
        },
    ));
    r.route_match.case_sensitive = false;
    r.headers.request_headers_to_add = vec![
        HeaderValueOption::append("x-a", "1"),
        HeaderValueOption {
            keep_empty_value: true,
            ..HeaderValueOption::set("x-b", "")
        },
    ];
    let Action::Route(a) = &mut r.action else {
        unreachable!()
    };
    a.timeout = Some(secs(1.5));
    a.prefix_rewrite = Some("/".into());
    a.retry_policy = Some(RetryPolicy {
        retry_on: "5xx".into(),
        num_retries: 3,
        retry_back_off: Some(BackOff {
            base_interval: secs(0.025),
            max_interval: None,
        }),
        retry_host_predicate: vec!["envoy.retry_host_predicates.previous_hosts".into()],
        ..RetryPolicy::default()
    });
    let redirect = Route::new(
        RouteMatch::new(PathMatch::Path("/old".into())),
        Action::Redirect(RedirectAction {
            scheme_redirect: Some("https".into()),
            path_redirect: Some(PathRedirect::Prefix("/new".into())),
            response_code: RedirectCode::Found,
            ..RedirectAction::default()
        }),
    );
    let direct = Route::new(
        RouteMatch::new(PathMatch::PathSeparatedPrefix("/health".into())),
        Action::DirectResponse(DirectResponseAction {
            status: 200,
            body: Some("ok".into()),
        }),
    );
    let rc = RouteConfiguration::new("r").with_virtual_host(
        VirtualHost::new("all", ["*"])
            .with_route(r)
            .with_route(redirect)
            .with_route(direct),
    );
    let json = round_trip_routes(&rc, "routes");
    assert_eq!(
        json,
        json!({
            "name": "r",
            "virtual_hosts": [{
                "name": "all",
                "domains": ["*"],
                "routes": [
                    {
                        "match": {
                            "prefix": "/api",
                            "case_sensitive": false,
                            "headers": [{"name": "x-version", "range_match": {"start": "2", "end": "10000000000"}}]
                        },
                        "route": {
                            "cluster": "api",
                            "prefix_rewrite": "/",
                            "timeout": "1.5s",
                            "retry_policy": {
                                "retry_on": "5xx",
                                "num_retries": 3,
                                "retry_back_off": {"base_interval": "0.025s"},
                                "retry_host_predicate": [{
                                    "name": "envoy.retry_host_predicates.previous_hosts",
                                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}
                                }]
                            }
                        },
                        "request_headers_to_add": [
                            {"header": {"key": "x-a", "value": "1"}},
                            {"header": {"key": "x-b"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD", "keep_empty_value": true}
                        ]
                    },
                    {
                        "match": {"path": "/old"},
                        "redirect": {"scheme_redirect": "https", "prefix_rewrite": "/new", "response_code": "FOUND"}
                    },
                    {
                        "match": {"path_separated_prefix": "/health"},
                        "direct_response": {"status": 200, "body": {"inline_string": "ok"}}
                    }
                ]
            }]
        })
    );
}

#[test]
fn a_listener_prints_its_connection_manager() {
    let mut hcm = HttpConnectionManager::with_routes(RouteConfiguration::new("local"));
    hcm.use_remote_address = true;
    hcm.request_headers_timeout = Some(secs(5.0));
    hcm.access_log = vec![AccessLog {
        sink: AccessLogSink::Stdout,
        format: Some("%REQ(:PATH)%\n".into()),
    }];
    hcm.http_filters = vec![HttpFilterConfig::new("acme.tag", json!({"tag": "a"}))];
    let mut l = Listener::http("http", "0.0.0.0:8080".parse().unwrap(), hcm);
    l.filter_chains[0].filter_chain_match.destination_port = Some(8080);
    assert_eq!(
        dump::listener(&l),
        json!({
            "name": "http",
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8080}},
            "filter_chains": [{
                "filter_chain_match": {"destination_port": 8080},
                "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress_http",
                        "route_config": {"name": "local"},
                        "http_filters": [
                            {"name": "acme.tag", "typed_config": {
                                "@type": "type.googleapis.com/xds.type.v3.TypedStruct",
                                "value": {"tag": "a"}
                            }},
                            {"name": "envoy.filters.http.router", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                            }}
                        ],
                        "request_headers_timeout": "5s",
                        "use_remote_address": true,
                        "access_log": [{
                            "name": "envoy.access_loggers.stdout",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                                "log_format": {"text_format_source": {"inline_string": "%REQ(:PATH)%\n"}}
                            }
                        }]
                    }
                }]
            }]
        })
    );
}

#[test]
fn endpoints_print_locality_health_weight_and_metadata() {
    let mut md = Metadata::new();
    md.insert(
        "envoy.lb".into(),
        [("version".to_owned(), json!("v1"))].into_iter().collect(),
    );
    let la = ClusterLoadAssignment {
        cluster_name: "web".into(),
        endpoints: vec![LocalityLbEndpoints {
            locality: Locality {
                region: "eu".into(),
                ..Locality::default()
            },
            lb_endpoints: vec![LbEndpoint {
                health_status: HealthStatus::Unhealthy,
                load_balancing_weight: 2,
                metadata: md,
                hostname: Some("a.local".into()),
                ..LbEndpoint::new(Address {
                    host: "10.0.0.1".into(),
                    port: 80,
                })
            }],
            load_balancing_weight: Some(7),
            priority: 2,
        }],
        overprovisioning_factor: 140,
    };
    assert_eq!(
        dump::cluster_load_assignment(&la),
        json!({
            "cluster_name": "web",
            "endpoints": [{
                "locality": {"region": "eu"},
                "lb_endpoints": [{
                    "endpoint": {
                        "address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}},
                        "hostname": "a.local"
                    },
                    "health_status": "UNHEALTHY",
                    "load_balancing_weight": 2,
                    "metadata": {"filter_metadata": {"envoy.lb": {"version": "v1"}}}
                }],
                "load_balancing_weight": 7,
                "priority": 2
            }]
        })
    );
}

#[test]
fn output_is_deterministic() {
    let b = built();
    let a = serde_json::to_string(&dump::bootstrap(&b)).unwrap();
    let again = serde_json::to_string(&dump::bootstrap(&b.clone())).unwrap();
    assert_eq!(a, again);
    // Map keys come out sorted, whatever order the model holds them in.
    let mut vh = VirtualHost::new("v", ["*"]);
    vh.typed_per_filter_config =
        BTreeMap::from([("z".to_owned(), json!({})), ("a".to_owned(), json!({}))]);
    let text = serde_json::to_string(&dump::route_configuration(
        &RouteConfiguration::new("r").with_virtual_host(vh),
    ))
    .unwrap();
    assert!(
        text.find("\"a\"").unwrap() < text.find("\"z\"").unwrap(),
        "{text}"
    );
}
/// Regression: the reader read `"1.5s"` through `f64`, so the nanoseconds of long durations
/// came back rounded and protobuf's largest duration was refused as out of range.
#[test]
fn durations_round_trip_to_the_nanosecond() {
    for d in [
        Duration::new(31_536_000, 123_456_789),
        Duration::new(1_234_567, 1),
        Duration::new(0, 999_999_999),
        Duration::new(0, 1),
        Duration::new(315_576_000_000, 999_999_999),
    ] {
        let mut a = RouteAction::cluster("c");
        a.timeout = Some(d);
        let rc = RouteConfiguration::new("r").with_virtual_host(
            VirtualHost::new("v", ["*"]).with_route(Route::new(
                RouteMatch::new(PathMatch::Prefix("/".into())),
                Action::Route(a),
            )),
        );
        round_trip_routes(&rc, &format!("{d:?}"));
    }
}

// === generated route configurations ===

mod generated {
    use super::*;
    use proptest::option;
    use proptest::prelude::*;
    use proptest::sample::select;

    fn word() -> impl Strategy<Value = String> {
        select(&["a", "x-b", "v1", "Web", "mesh", "%REQ(:PATH)%", "é"][..]).prop_map(String::from)
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), word()]
    }

    fn dur() -> impl Strategy<Value = Duration> {
        (0u64..100_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n))
    }

    fn string_matcher() -> impl Strategy<Value = StringMatcher> {
        let pattern = prop_oneof![
            text().prop_map(StringPattern::Exact),
            word().prop_map(StringPattern::Prefix),
            word().prop_map(StringPattern::Suffix),
            word().prop_map(StringPattern::Contains),
            word().prop_map(StringPattern::SafeRegex),
        ];
        (pattern, any::<bool>()).prop_map(|(pattern, ignore_case)| StringMatcher {
            pattern,
            ignore_case,
        })
    }

    fn header_matcher() -> impl Strategy<Value = HeaderMatcher> {
        let spec = prop_oneof![
            string_matcher().prop_map(HeaderMatchSpec::String),
            (-5i64..5, 1i64..10).prop_map(|(start, len)| HeaderMatchSpec::Range {
                start,
                end: start + len
            }),
            any::<bool>().prop_map(HeaderMatchSpec::Present),
        ];
        (word(), spec, any::<bool>(), any::<bool>()).prop_map(|(name, spec, invert, missing)| {
            HeaderMatcher {
                name,
                spec,
                invert_match: invert,
                treat_missing_header_as_empty: missing,
            }
        })
    }

    fn fraction() -> impl Strategy<Value = RuntimeFraction> {
        (
            0u32..200,
            select(
                &[
                    Denominator::Hundred,
                    Denominator::TenThousand,
                    Denominator::Million,
                ][..],
            ),
            text(),
        )
            .prop_map(|(numerator, denominator, runtime_key)| RuntimeFraction {
                default_value: FractionalPercent {
                    numerator,
                    denominator,
                },
                runtime_key,
            })
    }

    fn route_match() -> impl Strategy<Value = RouteMatch> {
        let path = prop_oneof![
            text().prop_map(|s| PathMatch::Prefix(format!("/{s}"))),
            word().prop_map(|s| PathMatch::Path(format!("/{s}"))),
            word().prop_map(PathMatch::SafeRegex),
            word().prop_map(|s| PathMatch::PathSeparatedPrefix(format!("/{s}"))),
            Just(PathMatch::ConnectMatcher),
            word().prop_map(|s| PathMatch::PathTemplate(format!("/{s}/{{id}}"))),
        ];
        let query = (word(), option::of(string_matcher()))
            .prop_map(|(name, string_match)| QueryParameterMatcher { name, string_match });
        let tls = (option::of(any::<bool>()), option::of(any::<bool>())).prop_map(
            |(presented, validated)| TlsContextMatch {
                presented,
                validated,
            },
        );
        (
            path,
            any::<bool>(),
            option::of(fraction()),
            proptest::collection::vec(header_matcher(), 0..3),
            proptest::collection::vec(query, 0..2),
            any::<bool>(),
            option::of(tls),
        )
            .prop_map(|(path, cs, rf, headers, qp, grpc, tls)| RouteMatch {
                path,
                case_sensitive: cs,
                runtime_fraction: rf,
                headers,
                query_parameters: qp,
                grpc,
                tls_context: tls,
            })
    }

    fn header_value_option() -> impl Strategy<Value = HeaderValueOption> {
        (
            word(),
            text(),
            select(
                &[
                    AppendAction::AppendIfExistsOrAdd,
                    AppendAction::AddIfAbsent,
                    AppendAction::OverwriteIfExistsOrAdd,
                    AppendAction::OverwriteIfExists,
                ][..],
            ),
            any::<bool>(),
        )
            .prop_map(
                |(key, value, append_action, keep_empty_value)| HeaderValueOption {
                    key,
                    value,
                    append_action,
                    keep_empty_value,
                },
            )
    }

    fn header_mutations() -> impl Strategy<Value = HeaderMutations> {
        (
            proptest::collection::vec(header_value_option(), 0..2),
            proptest::collection::vec(word(), 0..2),
            proptest::collection::vec(header_value_option(), 0..2),
            proptest::collection::vec(word(), 0..2),
        )
            .prop_map(|(a, b, c, d)| HeaderMutations {
                request_headers_to_add: a,
                request_headers_to_remove: b,
                response_headers_to_add: c,
                response_headers_to_remove: d,
            })
    }

    fn retry_policy() -> impl Strategy<Value = RetryPolicy> {
        (
            text(),
            0u32..5,
            option::of(dur()),
            option::of(dur()),
            option::of((1u64..1000, option::of(0u64..1000))),
            proptest::collection::vec(100u16..600, 0..3),
            proptest::collection::vec(header_matcher(), 0..2),
            proptest::collection::vec(word(), 0..2),
            0u32..4,
        )
            .prop_map(
                |(on, n, per_try, idle, backoff, codes, headers, preds, attempts)| RetryPolicy {
                    retry_on: on,
                    num_retries: n,
                    per_try_timeout: per_try,
                    per_try_idle_timeout: idle,
                    retry_back_off: backoff.map(|(base, extra)| BackOff {
                        base_interval: Duration::from_millis(base),
                        max_interval: extra.map(|e| Duration::from_millis(base + e)),
                    }),
                    retriable_status_codes: codes,
                    retriable_headers: headers.clone(),
                    retriable_request_headers: headers,
                    retry_host_predicate: preds,
                    host_selection_retry_max_attempts: attempts,
                },
            )
    }

    fn hash_policy() -> impl Strategy<Value = HashPolicy> {
        let on = prop_oneof![
            text().prop_map(|header_name| HashOn::Header { header_name }),
            (text(), option::of(dur()), text()).prop_map(|(name, ttl, path)| HashOn::Cookie {
                name,
                ttl,
                path
            }),
            Just(HashOn::SourceIp),
            text().prop_map(|name| HashOn::QueryParameter { name }),
            text().prop_map(|key| HashOn::FilterState { key }),
        ];
        (on, any::<bool>()).prop_map(|(policy, terminal)| HashPolicy { policy, terminal })
    }

    fn mirror() -> impl Strategy<Value = RequestMirrorPolicy> {
        (
            word(),
            option::of(word()),
            option::of(fraction()),
            any::<bool>(),
        )
            .prop_map(|(cluster, cluster_header, runtime_fraction, disable)| {
                RequestMirrorPolicy {
                    cluster,
                    cluster_header,
                    runtime_fraction,
                    disable_shadow_host_suffix_append: disable,
                }
            })
    }

    fn regex_rewrite() -> impl Strategy<Value = RegexRewrite> {
        (word(), text()).prop_map(|(pattern, substitution)| RegexRewrite {
            pattern,
            substitution,
        })
    }

    fn route_action() -> impl Strategy<Value = RouteAction> {
        let weight = (
            word(),
            option::of(word()),
            1u32..100,
            header_mutations(),
            option::of(word()),
        )
            .prop_map(
                |(name, cluster_header, weight, headers, host)| ClusterWeight {
                    name,
                    cluster_header,
                    weight,
                    headers,
                    host_rewrite_literal: host,
                    typed_per_filter_config: BTreeMap::new(),
                },
            );
        let spec = prop_oneof![
            word().prop_map(ClusterSpecifier::Cluster),
            word().prop_map(ClusterSpecifier::ClusterHeader),
            (
                proptest::collection::vec(weight, 1..3),
                text(),
                option::of(word()),
                any::<bool>()
            )
                .prop_map(|(clusters, prefix, header_name, use_hash)| {
                    ClusterSpecifier::WeightedClusters(WeightedClusters {
                        clusters,
                        runtime_key_prefix: prefix,
                        // Envoy's schema has one or the other (a oneof).
                        use_hash_policy: use_hash && header_name.is_none(),
                        header_name,
                    })
                }),
        ];
        let host = option::of(prop_oneof![
            text().prop_map(HostRewrite::Literal),
            Just(HostRewrite::Auto),
            text().prop_map(HostRewrite::Header),
            regex_rewrite().prop_map(HostRewrite::PathRegex),
        ]);
        let rewrite = prop_oneof![
            Just((None, None)),
            text().prop_map(|p| (Some(p), None)),
            regex_rewrite().prop_map(|r| (None, Some(r))),
        ];
        let upgrade = (word(), any::<bool>()).prop_map(|(upgrade_type, enabled)| UpgradeConfig {
            upgrade_type,
            enabled,
        });
        (
            (
                spec,
                select(&[503u16, 404, 500][..]),
                proptest::collection::btree_map(word(), word().prop_map(Value::from), 0..2),
                rewrite,
                host,
                any::<bool>(),
                option::of(dur()),
                option::of(dur()),
            ),
            (
                option::of(retry_policy()),
                option::of(any::<bool>()),
                proptest::collection::vec(mirror(), 0..2),
                proptest::collection::vec(hash_policy(), 0..3),
                proptest::collection::vec(upgrade, 0..2),
                option::of(dur()),
                option::of(dur()),
                any::<bool>(),
            ),
        )
            .prop_map(|(a, b)| {
                let (spec, code, md, (prefix, regex), host, xfh, timeout, idle) = a;
                let (retry, hedge, mirrors, hashes, upgrades, max_grpc, offset, high) = b;
                RouteAction {
                    cluster: spec,
                    cluster_not_found_response_code: code,
                    metadata_match: md,
                    prefix_rewrite: prefix,
                    regex_rewrite: regex,
                    host_rewrite: host,
                    append_x_forwarded_host: xfh,
                    timeout,
                    idle_timeout: idle,
                    retry_policy: retry,
                    hedge_policy: hedge.map(|h| HedgePolicy {
                        hedge_on_per_try_timeout: h,
                    }),
                    request_mirror_policies: mirrors,
                    hash_policy: hashes,
                    upgrade_configs: upgrades,
                    max_grpc_timeout: max_grpc,
                    grpc_timeout_offset: offset,
                    priority: if high {
                        RoutingPriority::High
                    } else {
                        RoutingPriority::Default
                    },
                }
            })
    }

    fn action() -> impl Strategy<Value = Action> {
        let code = select(
            &[
                RedirectCode::MovedPermanently,
                RedirectCode::Found,
                RedirectCode::SeeOther,
                RedirectCode::TemporaryRedirect,
                RedirectCode::PermanentRedirect,
            ][..],
        );
        let path = option::of(prop_oneof![
            text().prop_map(PathRedirect::Path),
            text().prop_map(PathRedirect::Prefix),
            regex_rewrite().prop_map(PathRedirect::Regex),
        ]);
        let redirect = (
            option::of(text()),
            option::of(text()),
            option::of(1u16..),
            path,
            code,
            any::<bool>(),
        )
            .prop_map(|(scheme, host, port, path, code, strip)| RedirectAction {
                scheme_redirect: scheme,
                host_redirect: host,
                port_redirect: port,
                path_redirect: path,
                response_code: code,
                strip_query: strip,
            });
        let direct = (200u16..600, option::of(text()))
            .prop_map(|(status, body)| DirectResponseAction { status, body });
        prop_oneof![
            3 => route_action().prop_map(Action::Route),
            1 => redirect.prop_map(Action::Redirect),
            1 => direct.prop_map(Action::DirectResponse),
        ]
    }

    fn route() -> impl Strategy<Value = Route> {
        (
            text(),
            route_match(),
            action(),
            header_mutations(),
            option::of(any::<u32>()),
        )
            .prop_map(|(name, m, action, headers, limit)| Route {
                name,
                route_match: m,
                action,
                headers,
                typed_per_filter_config: BTreeMap::new(),
                per_request_buffer_limit_bytes: limit,
            })
    }

    fn route_configuration() -> impl Strategy<Value = RouteConfiguration> {
        let vh = (
            proptest::collection::vec(route(), 1..4),
            select(
                &[
                    TlsRequirement::None,
                    TlsRequirement::ExternalOnly,
                    TlsRequirement::All,
                ][..],
            ),
            header_mutations(),
            option::of(retry_policy()),
            proptest::collection::vec(mirror(), 0..2),
            any::<(bool, bool)>(),
            option::of(any::<u32>()),
        );
        (
            proptest::collection::vec(vh, 1..3),
            text(),
            header_mutations(),
            any::<(bool, bool, bool)>(),
            option::of(any::<bool>()),
            4096u32..10_000,
        )
            .prop_map(|(vhs, name, headers, flags, validate, max_body)| {
                let virtual_hosts = vhs
                    .into_iter()
                    .enumerate()
                    .map(
                        |(i, (routes, tls, headers, retry, mirrors, counts, limit))| VirtualHost {
                            name: format!("vh{i}"),
                            domains: vec![format!("host{i}.example.com")],
                            routes,
                            require_tls: tls,
                            headers,
                            retry_policy: retry,
                            request_mirror_policies: mirrors,
                            include_request_attempt_count: counts.0,
                            include_attempt_count_in_response: counts.1,
                            per_request_buffer_limit_bytes: limit,
                            ..VirtualHost::default()
                        },
                    )
                    .collect();
                RouteConfiguration {
                    name,
                    virtual_hosts,
                    internal_only_headers: vec![],
                    headers,
                    most_specific_header_mutations_wins: flags.0,
                    validate_clusters: validate,
                    ignore_port_in_host_matching: flags.1,
                    ignore_path_parameters_in_path_matching: flags.2,
                    request_mirror_policies: vec![],
                    max_direct_response_body_size_bytes: max_body,
                }
            })
    }

    fn endpoint() -> impl Strategy<Value = LbEndpoint> {
        let health = select(
            &[
                HealthStatus::Unknown,
                HealthStatus::Healthy,
                HealthStatus::Unhealthy,
                HealthStatus::Draining,
                HealthStatus::Timeout,
                HealthStatus::Degraded,
            ][..],
        );
        let md = proptest::collection::btree_map(
            word(),
            proptest::collection::btree_map(word(), word().prop_map(Value::from), 0..2)
                .prop_map(|m| m.into_iter().collect::<serde_json::Map<_, _>>()),
            0..2,
        );
        (
            select(&["10.0.0.1", "::1", "fe80::1:2"][..]),
            1u16..,
            health,
            1u32..1000,
            md,
            option::of(word()),
        )
            .prop_map(|(host, port, health_status, weight, metadata, hostname)| {
                LbEndpoint {
                    address: Address {
                        host: host.into(),
                        port,
                    },
                    health_status,
                    load_balancing_weight: weight,
                    metadata,
                    hostname,
                }
            })
    }

    fn load_assignment() -> impl Strategy<Value = ClusterLoadAssignment> {
        let locality = (
            text(),
            text(),
            text(),
            proptest::collection::vec(endpoint(), 0..3),
            option::of(1u32..10),
            0u32..3,
        )
            .prop_map(|(region, zone, sub_zone, lb_endpoints, weight, priority)| {
                LocalityLbEndpoints {
                    locality: Locality {
                        region,
                        zone,
                        sub_zone,
                    },
                    lb_endpoints,
                    load_balancing_weight: weight,
                    priority,
                }
            });
        (text(), proptest::collection::vec(locality, 0..3), 1u32..300).prop_map(
            |(cluster_name, endpoints, factor)| ClusterLoadAssignment {
                cluster_name,
                endpoints,
                overprovisioning_factor: factor,
            },
        )
    }

    fn thresholds() -> impl Strategy<Value = Thresholds> {
        let budget = (0u32..1000, any::<u32>()).prop_map(|(p, m)| RetryBudget {
            budget_percent: f64::from(p) / 10.0,
            min_retry_concurrency: m,
        });
        (
            any::<bool>(),
            any::<(u32, u32, u32, u32)>(),
            option::of(budget),
            any::<bool>(),
        )
            .prop_map(|(high, (c, p, r, rt), retry_budget, track)| Thresholds {
                priority: if high {
                    RoutingPriority::High
                } else {
                    RoutingPriority::Default
                },
                max_connections: c,
                max_pending_requests: p,
                max_requests: r,
                max_retries: rt,
                retry_budget,
                track_remaining: track,
            })
    }

    fn outlier() -> impl Strategy<Value = OutlierDetection> {
        (
            proptest::collection::vec(0u32..200, 14),
            0u32..=100,
            (dur(), dur(), dur()),
            any::<bool>(),
        )
            .prop_map(
                |(n, pct, (interval, base, extra), split)| OutlierDetection {
                    consecutive_5xx: n[0],
                    consecutive_gateway_failure: n[1],
                    consecutive_local_origin_failure: n[2],
                    interval,
                    base_ejection_time: base,
                    max_ejection_time: base + extra,
                    max_ejection_percent: pct,
                    enforcing_consecutive_5xx: n[3],
                    enforcing_consecutive_gateway_failure: n[4],
                    enforcing_consecutive_local_origin_failure: n[5],
                    enforcing_success_rate: n[6],
                    success_rate_minimum_hosts: n[7],
                    success_rate_request_volume: n[8],
                    success_rate_stdev_factor: n[9],
                    failure_percentage_threshold: n[10],
                    enforcing_failure_percentage: n[11],
                    failure_percentage_minimum_hosts: n[12],
                    failure_percentage_request_volume: n[13],
                    split_external_local_origin_errors: split,
                },
            )
    }

    fn health_check() -> impl Strategy<Value = HealthCheck> {
        let checker = prop_oneof![
            Just(HealthChecker::Tcp),
            (
                word(),
                option::of(word()),
                proptest::collection::vec((100u16..599, 1u16..10), 0..2)
            )
                .prop_map(|(path, host, ranges)| HealthChecker::Http {
                    path: format!("/{path}"),
                    host,
                    expected_statuses: ranges
                        .into_iter()
                        .map(|(s, l)| (s, (s + l).min(600)))
                        .collect(),
                }),
        ];
        (
            1u64..10_000,
            1u64..10_000,
            any::<u32>(),
            any::<u32>(),
            checker,
        )
            .prop_map(|(t, i, u, h, checker)| HealthCheck {
                timeout: Duration::from_millis(t),
                interval: Duration::from_millis(i),
                unhealthy_threshold: u,
                healthy_threshold: h,
                checker,
            })
    }

    fn cluster(i: usize) -> impl Strategy<Value = Cluster> {
        let lb = select(
            &[
                LbPolicy::RoundRobin,
                LbPolicy::LeastRequest,
                LbPolicy::Random,
                LbPolicy::RingHash,
                LbPolicy::Maglev,
            ][..],
        );
        (
            (
                any::<bool>(),
                1u64..100_000_000,
                lb,
                load_assignment(),
                any::<bool>(),
                proptest::collection::vec(thresholds(), 0..3),
                option::of(outlier()),
                proptest::collection::vec(health_check(), 0..2),
            ),
            (
                0u32..=1000,
                dur(),
                option::of(any::<u32>()),
                dur(),
                (0u32..5, 0u32..40),
                (1u64..1 << 40, 1u64..1 << 40),
                1u64..100_000,
            ),
        )
            .prop_map(move |(a, b)| {
                let (dns, connect, lb_policy, mut la, h2, thresholds, od, hcs) = a;
                let (panic, idle, max_rq, refresh, (choice, bias), (min_ring, max_ring), maglev) =
                    b;
                // Envoy's lb_config is a oneof: only the policy's own config is set.
                let (choice, bias) = if lb_policy == LbPolicy::LeastRequest {
                    (choice, bias)
                } else {
                    (2, 8)
                };
                let (min_ring, max_ring) = if lb_policy == LbPolicy::RingHash {
                    (min_ring, max_ring)
                } else {
                    (1024, 8 << 20)
                };
                let maglev = if lb_policy == LbPolicy::Maglev {
                    maglev
                } else {
                    65537
                };
                if dns {
                    for l in &mut la.endpoints {
                        for e in &mut l.lb_endpoints {
                            e.address.host = "upstream.example.com".into();
                        }
                    }
                }
                Cluster {
                    name: format!("c{i}"),
                    discovery_type: if dns {
                        DiscoveryType::StrictDns
                    } else {
                        DiscoveryType::Static
                    },
                    connect_timeout: Duration::from_micros(connect),
                    lb_policy,
                    load_assignment: Some(la),
                    protocol: if h2 {
                        UpstreamProtocol::Http2
                    } else {
                        UpstreamProtocol::Http1
                    },
                    circuit_breakers: CircuitBreakers { thresholds },
                    outlier_detection: od,
                    health_checks: hcs,
                    healthy_panic_threshold: f64::from(panic) / 10.0,
                    idle_timeout: idle,
                    max_requests_per_connection: max_rq,
                    max_connection_duration: None,
                    dns_refresh_rate: refresh,
                    eds_service_name: None,
                    least_request: LeastRequestConfig {
                        choice_count: choice,
                        active_request_bias: f64::from(bias) / 8.0,
                    },
                    ring_hash: RingHashConfig {
                        minimum_ring_size: min_ring,
                        maximum_ring_size: max_ring,
                    },
                    maglev_table_size: maglev,
                    lb_subset_config: None,
                    locality_weighted_lb: panic % 2 == 1,
                    upstream_bind_config: (panic % 3 == 0)
                        .then(|| std::net::IpAddr::from([127, 0, 0, 6])),
                    transport_socket_matches: if panic % 5 == 2 {
                        vec![
                            TransportSocketMatch {
                                name: "tlsMode-istio".into(),
                                match_metadata: serde_json::json!({"tlsMode": "istio"})
                                    .as_object()
                                    .unwrap()
                                    .clone(),
                                transport_socket: Some(UpstreamTlsContext {
                                    sni: Some("outbound_.80_._.a".into()),
                                    ..UpstreamTlsContext::default()
                                }),
                            },
                            TransportSocketMatch {
                                name: "tlsMode-disabled".into(),
                                ..TransportSocketMatch::default()
                            },
                        ]
                    } else {
                        Vec::new()
                    },
                    transport_socket: (panic % 4 == 1).then(|| UpstreamTlsContext {
                        sni: Some("upstream.example.com".into()),
                        common_tls_context: CommonTlsContext {
                            alpn_protocols: vec!["h2".into()],
                            validation_context: Some(ValidationContext {
                                trusted_ca: Some(DataSource::Filename("/ca.pem".into())),
                                match_typed_subject_alt_names: vec![SanMatcher {
                                    san_type: SanType::Uri,
                                    matcher: StringMatcher::exact("spiffe://x/ns/a/sa/b"),
                                }],
                            }),
                            ..CommonTlsContext::default()
                        },
                    }),
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn generated_clusters_round_trip(a in cluster(0), b in cluster(1)) {
            round_trip(&Bootstrap::default().with_cluster(a).with_cluster(b));
        }

        #[test]
        fn generated_route_configurations_round_trip(rc in route_configuration()) {
            round_trip_routes(&rc, "generated");
        }
    }
}

/// Istio's sidecar layout in Envoy's own words: a capturing listener that hands connections
/// on, a listener that does not bind, inspectors, chains matched on port, prefix, ALPN and
/// source, a TCP proxy, a default chain, and ORIGINAL_DST clusters.
const SIDECAR: &str = r#"
static_resources:
  listeners:
  - name: virtualOutbound
    address: { socket_address: { address: 0.0.0.0, port_value: 15001 } }
    use_original_dst: true
    traffic_direction: OUTBOUND
    filter_chains:
    - name: virtualOutbound-blackhole
      filter_chain_match: { destination_port: 15001 }
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: BlackHoleCluster
          cluster: BlackHoleCluster
    default_filter_chain:
      name: virtualOutbound-catchall-tcp
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: PassthroughCluster
          cluster: PassthroughCluster
          idle_timeout: 30s
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: { text_format: "%DOWNSTREAM_LOCAL_ADDRESS% %UPSTREAM_HOST%\n" }
  - name: 10.96.0.20_3306
    address: { socket_address: { address: 10.96.0.20, port_value: 3306 } }
    bind_to_port: false
    listener_filters:
    - name: envoy.filters.listener.http_inspector
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector }
      filter_disabled:
        or_match:
          rules:
          - destination_port_range: { start: 3306, end: 3307 }
          - destination_port_range: { start: 15021, end: 15022 }
    - name: envoy.filters.listener.tls_inspector
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector }
    listener_filters_timeout: 2s
    continue_on_listener_filters_timeout: true
    filter_chains:
    - filter_chain_match:
        prefix_ranges: [{ address_prefix: 10.96.0.0, prefix_len: 16 }]
        application_protocols: [http/1.1, h2c]
        source_type: SAME_IP_OR_LOOPBACK
        source_prefix_ranges: [{ address_prefix: 127.0.0.0, prefix_len: 8 }]
        direct_source_prefix_ranges: [{ address_prefix: 127.0.0.1, prefix_len: 32 }]
        source_ports: [5000, 5001]
        server_names: [db.example.com, "*.example.com"]
        transport_protocol: tls
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: outbound|3306||mysql
          weighted_clusters:
            clusters:
            - { name: PassthroughCluster, weight: 90 }
            - { name: InboundPassthroughClusterIpv4, weight: 10 }
          max_connect_attempts: 3
  clusters:
  - name: PassthroughCluster
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    connect_timeout: 10s
  - name: InboundPassthroughClusterIpv4
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    connect_timeout: 10s
    upstream_bind_config: { source_address: { address: 127.0.0.6, port_value: 0 } }
  - name: BlackHoleCluster
    type: STATIC
    connect_timeout: 10s
    load_assignment: { cluster_name: BlackHoleCluster }
"#;

#[test]
fn the_sidecar_listener_layout_round_trips() {
    let b = load(SIDECAR);
    let outbound = &b.listeners[0];
    assert!(outbound.use_original_dst && outbound.bind_to_port);
    assert_eq!(outbound.filter_chains[0].name, "virtualOutbound-blackhole");
    let catchall = outbound.default_filter_chain.as_deref().unwrap();
    let NetworkFilter::TcpProxy(t) = &catchall.filter else {
        panic!("tcp_proxy expected");
    };
    assert_eq!(
        t.clusters,
        [TcpCluster {
            name: "PassthroughCluster".into(),
            weight: 1
        }]
    );
    assert_eq!(t.idle_timeout, secs(30.0));
    let mysql = &b.listeners[1];
    assert!(!mysql.bind_to_port);
    assert_eq!(
        mysql.listener_filters[0],
        ListenerFilter {
            kind: ListenerFilterKind::HttpInspector,
            disabled_ports: vec![
                PortRange {
                    start: 3306,
                    end: 3307
                },
                PortRange {
                    start: 15021,
                    end: 15022
                }
            ],
        }
    );
    assert!(!mysql.listener_filters[0].runs_for(3306));
    assert!(mysql.listener_filters[0].runs_for(3307));
    let m = &mysql.filter_chains[0].filter_chain_match;
    assert_eq!(m.source_type, SourceType::SameIpOrLoopback);
    assert_eq!(m.source_ports, [5000, 5001]);
    assert_eq!(b.clusters[0].discovery_type, DiscoveryType::OriginalDst);
    assert_eq!(
        b.clusters[1].upstream_bind_config,
        Some([127, 0, 0, 6].into())
    );
    round_trip(&b);
}

#[test]
fn listener_filters_and_tcp_proxies_that_cannot_run_are_errors() {
    let yaml = SIDECAR
        .replace("envoy.filters.listener.tls_inspector", "envoy.filters.listener.proxy_protocol")
        .replace(
            "extensions.filters.listener.tls_inspector.v3.TlsInspector",
            "extensions.filters.listener.proxy_protocol.v3.ProxyProtocol",
        )
        .replace("cluster: BlackHoleCluster\n", "cluster: nowhere\n")
        .replace("type: ORIGINAL_DST\n    lb_policy: CLUSTER_PROVIDED\n    connect_timeout: 10s\n  - name: Inbound", "type: ORIGINAL_DST\n    connect_timeout: 10s\n  - name: Inbound");
    let err = parse_bootstrap(&yaml).unwrap_err();
    let mut paths: Vec<&str> = err.field_errors().iter().map(|e| e.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "clusters[0].lb_policy",
            "listeners[0].filter_chains[0].filters[0].typed_config.cluster",
            "listeners[1].listener_filters[1]",
        ],
        "{err}"
    );
    assert!(err.to_string().contains("proxy_protocol"), "{err}");
}

/// A filter chain that terminates TLS, in Envoy's words: read, dumped and read back, over the
/// file and the wire alike.
#[test]
fn a_downstream_tls_context_round_trips() {
    let yaml = r#"
static_resources:
  listeners:
  - name: https
    address: { socket_address: { address: 0.0.0.0, port_value: 8443 } }
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector }
    filter_chains:
    - filter_chain_match: { server_names: [www.example.com] }
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: /etc/certs/www.crt }
              private_key: { filename: /etc/certs/www.key }
            alpn_protocols: [h2, http/1.1]
            tls_params:
              tls_minimum_protocol_version: TLSv1_2
              tls_maximum_protocol_version: TLSv1_3
              cipher_suites: [ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256]
            validation_context:
              trusted_ca: { inline_string: "-----BEGIN CERTIFICATE-----\n" }
              match_typed_subject_alt_names:
              - { san_type: URI, matcher: { exact: "spiffe://cluster.local/ns/default/sa/web" } }
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: www
          cluster: www
    - filter_chain_match: { server_names: [sds.example.com] }
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificate_sds_secret_configs:
            - name: default
              sds_config: { path_config_source: { path: /etc/istio/sds.yaml } }
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: sds
          cluster: www
  clusters:
  - name: www
    connect_timeout: 1s
    load_assignment: { cluster_name: www }
"#;
    let b = load(yaml);
    let sds = b.listeners[0].filter_chains[1]
        .transport_socket
        .as_ref()
        .unwrap();
    assert_eq!(
        sds.common_tls_context.tls_certificate_sds_secret_configs,
        [SdsSecretConfig {
            name: "default".into(),
            path: "/etc/istio/sds.yaml".into()
        }]
    );
    let t = b.listeners[0].filter_chains[0]
        .transport_socket
        .as_ref()
        .unwrap();
    assert!(t.require_client_certificate);
    let c = &t.common_tls_context;
    assert_eq!(
        c.tls_certificates[0].certificate_chain,
        DataSource::Filename("/etc/certs/www.crt".into())
    );
    assert_eq!(c.alpn_protocols, ["h2", "http/1.1"]);
    assert_eq!(
        c.tls_params.minimum_protocol_version,
        Some(TlsVersion::V1_2)
    );
    let v = c.validation_context.as_ref().unwrap();
    assert_eq!(v.match_typed_subject_alt_names[0].san_type, SanType::Uri);
    round_trip(&b);
}

/// In a TLS context, a field the proxy does not read is an error (it may restrict whom to
/// trust), and so is a transport socket other than TLS.
#[test]
fn what_a_tls_context_asks_and_the_proxy_cannot_honour_is_an_error() {
    let yaml = r#"
static_resources:
  listeners:
  - name: https
    address: { socket_address: { address: 0.0.0.0, port_value: 8443 } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          ocsp_staple_policy: MUST_STAPLE
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: /c }
              private_key: { filename: /k }
            validation_context:
              trusted_ca: { filename: /ca }
              crl: { filename: /crl }
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: www
          cluster: www
    - transport_socket:
        name: envoy.transport_sockets.alts
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: www2
          cluster: www
  clusters:
  - name: www
    connect_timeout: 1s
    load_assignment: { cluster_name: www }
"#;
    let err = parse_bootstrap(yaml).unwrap_err();
    let paths: Vec<&str> = err.field_errors().iter().map(|e| e.path.as_str()).collect();
    let tls = "listeners[0].filter_chains[0].transport_socket.typed_config";
    for want in [
        format!("{tls}.ocsp_staple_policy"),
        format!("{tls}.common_tls_context.validation_context.crl"),
        "listeners[0].filter_chains[1].transport_socket".to_owned(),
    ] {
        assert!(paths.contains(&want.as_str()), "{want} in {paths:?}");
    }
}
