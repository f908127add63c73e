//! Warnings and errors carry the path of the field at fault.

use mesh_xds::LoadError;
use mesh_xds::envoy::{parse_bootstrap, parse_route_configuration};

const HCM: &str = "listeners[0].filter_chains[0].filters[0].typed_config";

/// A valid bootstrap sprinkled with fields this reader does not support.
const WITH_UNSUPPORTED: &str = r#"
node: { id: front, cluster: edge }
layered_runtime: { layers: [{ name: disk, disk_layer: { symlink_root: /srv } }] }
stats_flush_interval: 5s
static_resources:
  secrets: []
  listeners:
  - name: http
    per_connection_buffer_limit_bytes: 32768
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      filter_disabled: { destination_port_range: { start: 80, end: 81 } }
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              rate_limits: []
              routes:
              - match: { prefix: / }
                decorator: { operation: x }
                route: { cluster: web, cors: {} }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              start_child_span: true
    - filters:
      - name: envoy.filters.network.redis_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy
          stat_prefix: redis
  clusters:
  - name: web
    type: LOGICAL_DNS
    dns_lookup_family: V4_ONLY
    load_assignment:
      cluster_name: web
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: { socket_address: { address: web.internal, port_value: 80 } }
            health_check_config: { port_value: 81 }
          load_balancing_weight: { value: 2 }
  - name: eds
    type: EDS
    eds_cluster_config: { service_name: eds-svc, eds_config: { ads: {} } }
admin:
  access_log_path: /dev/null
  address: { socket_address: { address: 127.0.0.1, port_value: 9901 } }
"#;

#[test]
fn every_unsupported_field_warns_once_with_its_path() {
    let loaded = parse_bootstrap(WITH_UNSUPPORTED).unwrap();
    let mut paths: Vec<String> = loaded.warnings.iter().map(|w| w.path.clone()).collect();
    paths.sort();
    let mut expected: Vec<String> = [
        "layered_runtime.layers[0].disk_layer",
        "stats_flush_interval",
        "static_resources.secrets",
        "listeners[0].per_connection_buffer_limit_bytes",
        &format!("{HCM}.route_config.virtual_hosts[0].rate_limits"),
        &format!("{HCM}.route_config.virtual_hosts[0].routes[0].decorator"),
        &format!("{HCM}.route_config.virtual_hosts[0].routes[0].route.cors"),
        &format!("{HCM}.http_filters[0].typed_config.start_child_span"),
        "listeners[0].filter_chains[1].filters[0]",
        "clusters[0].type",
        "clusters[0].dns_lookup_family",
        "clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.health_check_config",
        "clusters[1].type",
        "admin.access_log_path",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    expected.sort();
    assert_eq!(paths, expected, "{:#?}", loaded.warnings);

    let msg = |path: &str| {
        loaded
            .warnings
            .iter()
            .find(|w| w.path == path)
            .unwrap()
            .message
            .clone()
    };
    assert!(msg("clusters[0].type").contains("treated as STRICT_DNS"));
    assert!(msg("clusters[1].type").contains("EDS"));
    assert!(msg("listeners[0].filter_chains[1].filters[0]").contains("filter chain skipped"));
    let w = loaded
        .warnings
        .iter()
        .find(|w| w.path == "stats_flush_interval")
        .unwrap();
    assert_eq!(
        w.to_string(),
        "stats_flush_interval: unknown or unsupported field, ignored"
    );
    assert_eq!(loaded.value.node.id, "front");

    // The model is still built: the TCP chain is gone, LOGICAL_DNS is STRICT_DNS, EDS kept.
    let b = &loaded.value;
    assert_eq!(b.listeners[0].filter_chains.len(), 1);
    assert_eq!(
        b.clusters[0].discovery_type,
        mesh_core::config::DiscoveryType::StrictDns
    );
    assert_eq!(
        b.clusters[1].discovery_type,
        mesh_core::config::DiscoveryType::Eds
    );
    assert_eq!(b.clusters[1].eds_service_name.as_deref(), Some("eds-svc"));
    assert_eq!(
        b.clusters[0].load_assignment.as_ref().unwrap().endpoints[0].lb_endpoints[0]
            .load_balancing_weight,
        2
    );

    // --strict: every warning becomes an error with the same path.
    let n = loaded.warnings.len();
    let err = loaded.strict().unwrap_err();
    let errors = err.field_errors();
    assert_eq!(errors.len(), n);
    let mut strict_paths: Vec<String> = errors.iter().map(|e| e.path.clone()).collect();
    strict_paths.sort();
    assert_eq!(strict_paths, paths);
}

#[test]
fn a_clean_route_configuration_is_strict() {
    let rc = parse_route_configuration(
        "virtual_hosts: [{name: a, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: c}}]}]",
    )
    .unwrap()
    .strict()
    .unwrap();
    assert_eq!(rc.virtual_hosts[0].routes.len(), 1);
}

#[test]
fn rds_warns_and_then_fails_validation() {
    let yaml = r#"
static_resources:
  listeners:
  - name: http
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          rds: { route_config_name: local, config_source: { ads: {} } }
"#;
    let err = parse_bootstrap(yaml).unwrap_err();
    // No route configuration of that name can exist without xDS.
    assert_eq!(
        paths(&err),
        [format!("{HCM}.rds.route_config_name")],
        "{err}"
    );
}

fn paths(err: &LoadError) -> Vec<String> {
    err.field_errors().iter().map(|e| e.path.clone()).collect()
}

fn message<'a>(err: &'a LoadError, path: &str) -> &'a str {
    &err.field_errors()
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no error at {path}: {err}"))
        .message
}

/// One document with every kind of validation error the validator finds.
const INVALID: &str = r#"
static_resources:
  listeners:
  - name: http
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: /split }
                route:
                  weighted_clusters:
                    total_weight: 0
                    clusters: [{ name: a, weight: 0 }, { name: b, weight: { value: 0 } }]
              - match: { prefix: / }
                route: { cluster: nowhere }
  clusters:
  - name: a
    load_assignment:
      cluster_name: a
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } } }] }]
  - name: a
    load_assignment:
      cluster_name: a
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 10.0.0.2, port_value: 80 } } } }] }]
  - name: b
    type: STATIC
    load_assignment:
      cluster_name: b
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 10.0.0.3, port_value: 0 } } }
        - endpoint: { address: { socket_address: { address: b.example.com, port_value: 80 } } }
"#;

#[test]
fn every_validation_error_has_its_path() {
    let err = parse_bootstrap(INVALID).unwrap_err();
    assert!(err.is_invalid());
    let routes = format!("{HCM}.route_config.virtual_hosts[0].routes");
    let mut got = paths(&err);
    got.sort();
    let mut want = vec![
        format!("{routes}[0].route.weighted_clusters.clusters"),
        format!("{routes}[1].route.cluster"),
        "clusters[1].name".to_owned(),
        "clusters[2].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value".to_owned(),
        "clusters[2].load_assignment.endpoints[0].lb_endpoints[1].endpoint.address.socket_address.address".to_owned(),
    ];
    want.sort();
    assert_eq!(got, want, "{err}");
    assert!(
        message(&err, &format!("{routes}[1].route.cluster"))
            .contains("unknown cluster \"nowhere\"")
    );
    assert!(message(&err, "clusters[1].name").contains("duplicate cluster name"));
    assert!(
        message(
            &err,
            &format!("{routes}[0].route.weighted_clusters.clusters")
        )
        .contains("greater than 0")
    );
    // The error's Display lists every problem with its path.
    let text = err.to_string();
    for p in &want {
        assert!(text.contains(p.as_str()), "{text}");
    }
}

#[test]
fn conversion_errors_are_all_reported_with_paths() {
    let yaml = r#"
static_resources:
  listeners:
  - name: pipe
    address: { pipe: { path: /tmp/envoy.sock } }
    filter_chains: []
  - name: http
    address: { socket_address: { address: localhost, port_value: "eighty" } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          codec_type: HTTP3
          stream_idle_timeout: 5
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: /, path: /x }
                route: { cluster: web, cluster_not_found_response_code: TEAPOT }
              - match: { prefix: / }
  clusters:
  - name: web
    type: REDIS_CLUSTER
    lb_policy: LOAD_BALANCING_POLICY_CONFIG
    connect_timeout: soon
    circuit_breakers: { thresholds: [{ max_connections: -1 }] }
    health_checks: [{ timeout: 1s, http_health_check: { path: /healthz } }]
"#;
    let err = parse_bootstrap(yaml).unwrap_err();
    let routes = "listeners[1].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes";
    let hcm = "listeners[1].filter_chains[0].filters[0].typed_config";
    for path in [
        "listeners[0].address.pipe",
        "listeners[1].address.socket_address.port_value",
        &format!("{hcm}.codec_type"),
        &format!("{hcm}.stream_idle_timeout"),
        &format!("{routes}[0].match"),
        &format!("{routes}[0].route.cluster_not_found_response_code"),
        &format!("{routes}[1]"),
        "clusters[0].type",
        "clusters[0].lb_policy",
        "clusters[0].connect_timeout",
        "clusters[0].circuit_breakers.thresholds[0].max_connections",
        "clusters[0].health_checks[0].interval",
        "clusters[0].health_checks[0].unhealthy_threshold",
        "clusters[0].health_checks[0].healthy_threshold",
    ] {
        message(&err, path);
    }
    assert!(message(&err, "listeners[0].address.pipe").contains("not supported"));
    assert!(message(&err, &format!("{hcm}.codec_type")).contains("HTTP/3"));
    assert!(message(&err, "clusters[0].type").contains("ORIGINAL_DST"));
    assert!(message(&err, "clusters[0].lb_policy").contains("CLUSTER_PROVIDED"));
}

#[test]
fn a_listener_address_must_be_an_ip() {
    let yaml = r#"
static_resources:
  listeners:
  - name: http
    address: { socket_address: { address: localhost, port_value: 80 } }
    filter_chains: []
"#;
    let err = parse_bootstrap(yaml).unwrap_err();
    assert_eq!(paths(&err), ["listeners[0].address.socket_address.address"]);
}

#[test]
fn validator_paths_follow_the_file_around_skipped_chains_and_hosts() {
    let yaml = r#"
static_resources:
  listeners:
  - name: http
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: tcp
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy }
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            virtual_hosts:
            - { name: all, domains: ["*"], routes: [{ match: { prefix: / }, route: { cluster: gone } }] }
  clusters:
  - name: legacy
    type: STATIC
    hosts:
    - socket_address: { address: 10.0.0.1, port_value: 80 }
    - socket_address: { address: not-an-ip, port_value: 80 }
"#;
    let err = parse_bootstrap(yaml).unwrap_err();
    let mut got = paths(&err);
    got.sort();
    assert_eq!(
        got,
        [
            "clusters[0].hosts[1].socket_address.address",
            "listeners[0].filter_chains[1].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster",
        ],
        "{err}"
    );
}

#[test]
fn route_configuration_errors_are_relative_to_it() {
    let err = parse_route_configuration(
        r#"
virtual_hosts:
- name: a
  domains: ["*"]
  routes:
  - match: { path_separated_prefix: /api/ }
    route: { cluster: x }
  - match: { prefix: / }
    direct_response: { status: 99 }
- name: a
  domains: ["*"]
"#,
    )
    .unwrap_err();
    let mut got = paths(&err);
    got.sort();
    assert_eq!(
        got,
        [
            "virtual_hosts[0].routes[0].match.path_separated_prefix",
            "virtual_hosts[0].routes[1].direct_response.status",
            "virtual_hosts[1].domains[0]",
            "virtual_hosts[1].name",
        ],
        "{err}"
    );
}

#[test]
fn syntax_errors_have_a_location() {
    let err = parse_bootstrap("static_resources:\n  listeners: [\n").unwrap_err();
    let LoadError::Syntax { line, column, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(line.is_some() && column.is_some(), "{err}");
    assert!(err.to_string().starts_with("syntax error at line"), "{err}");

    let err = parse_bootstrap("{\"static_resources\": {,}}").unwrap_err();
    assert!(err.is_syntax(), "{err}");
}

#[test]
fn snake_and_camel_spelling_of_one_field_conflict() {
    let err = parse_route_configuration(
        "virtual_hosts: []\nvalidate_clusters: true\nvalidateClusters: false\n",
    )
    .unwrap_err();
    assert_eq!(paths(&err), ["validate_clusters"]);
}

#[test]
fn subset_config_problems_have_paths() {
    let yaml = r#"
static_resources:
  clusters:
  - name: s
    lb_subset_config:
      fallback_policy: SOMETIMES
      default_subset: [v1]
      panic_mode_any: true
      subset_selectors:
      - { keys: [version, stage], fallback_policy: KEYS_SUBSET }
      - { keys: [version], fallback_policy: KEYS_SUBSET, fallback_keys_subset: [stage] }
      - { keys: [zone], single_host_per_subset: true }
    load_assignment: { cluster_name: s }
"#;
    let err = parse_bootstrap(yaml).unwrap_err();
    let at = "clusters[0].lb_subset_config";
    let mut got = paths(&err);
    got.sort();
    assert_eq!(
        got,
        [
            format!("{at}.default_subset"),
            format!("{at}.fallback_policy"),
            format!("{at}.subset_selectors[0].fallback_keys_subset"),
            format!("{at}.subset_selectors[1].fallback_keys_subset"),
        ],
        "{err}"
    );
    assert!(
        message(
            &err,
            &format!("{at}.subset_selectors[1].fallback_keys_subset")
        )
        .contains("\"stage\""),
        "{err}"
    );
    // The unsupported options alone are warnings.
    let ok = r#"
static_resources:
  clusters:
  - name: s
    lb_subset_config:
      panic_mode_any: true
      subset_selectors: [{ keys: [zone], single_host_per_subset: true }]
    load_assignment: { cluster_name: s }
"#;
    let loaded = parse_bootstrap(ok).unwrap();
    let mut warned: Vec<&str> = loaded.warnings.iter().map(|w| w.path.as_str()).collect();
    warned.sort_unstable();
    assert_eq!(
        warned,
        [
            "clusters[0].lb_subset_config.panic_mode_any",
            "clusters[0].lb_subset_config.subset_selectors[0].single_host_per_subset",
        ]
    );
}

/// A config that asks for TLS is never served without it (issue #11): a TLS transport socket
/// without its context, on a filter chain or a cluster, is an error, not a warning.
#[test]
fn a_transport_socket_that_cannot_be_honoured_is_an_error() {
    let yaml = r#"
static_resources:
  listeners:
  - name: https
    address: { socket_address: { address: 127.0.0.1, port_value: 10443 } }
    filter_chains:
    - transport_socket: { name: envoy.transport_sockets.tls }
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          route_config: { virtual_hosts: [{ name: a, domains: ["*"], routes: [{ match: { prefix: / }, route: { cluster: web } }] }] }
  clusters:
  - name: web
    type: STATIC
    transport_socket: { name: envoy.transport_sockets.tls }
    load_assignment: { cluster_name: web, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 443 } } } }] }] }
"#;
    let Err(LoadError::Invalid { errors }) = parse_bootstrap(yaml) else {
        panic!("a transport socket must be rejected");
    };
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "listeners[0].filter_chains[0].transport_socket.typed_config",
            "clusters[0].transport_socket.typed_config"
        ]
    );
    assert!(
        errors[0]
            .message
            .contains("DownstreamTlsContext is required"),
        "{errors:?}"
    );
    assert!(
        errors[1].message.contains("UpstreamTlsContext is required"),
        "{errors:?}"
    );
}

/// Regression (issue #11): a misspelled field (`static_resources.clusterz`) was a warning and
/// `validate` said "ok". Envoy refuses a field its schema does not have; so does the reader,
/// with the field's path, the message it is not in, and the nearest name.
#[test]
fn a_field_envoy_does_not_have_is_an_error() {
    let yaml = r#"
static_resources:
  clusterz: []
  clusters:
  - name: web
    type: STATIC
    conect_timeout: 1s
    load_assignment:
      cluster_name: web
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 80 } } }
          load_balancing_weight: { value: 2, extra: 1 }
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          route_config: { virtual_hosts: [{ name: a, domains: ["*"], routes: [{ match: { prefix: /, fooBar: 1 }, route: { cluster: web } }] }] }
"#;
    let Err(LoadError::Invalid { errors }) = parse_bootstrap(yaml) else {
        panic!("typos must be refused");
    };
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "clusters[0].conect_timeout",
            "clusters[0].load_assignment.endpoints[0].lb_endpoints[0].load_balancing_weight.extra",
            "static_resources.clusterz",
            &format!("{HCM}.route_config.virtual_hosts[0].routes[0].match.fooBar"),
        ]
    );
    assert!(
        errors[2].message.contains("did you mean \"clusters\""),
        "{errors:?}"
    );
    assert!(
        errors[0]
            .message
            .contains("did you mean \"connect_timeout\""),
        "{errors:?}"
    );
}
