//! The supported subset of Envoy's v3 API converts field by field.

use std::time::Duration;

use mesh_core::config::*;
use mesh_xds::envoy::{parse_bootstrap, parse_route_configuration};
use serde_json::json;

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

fn bootstrap(yaml: &str) -> Bootstrap {
    let loaded = parse_bootstrap(yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.warnings, []);
    loaded.value
}

fn routes(yaml: &str) -> RouteConfiguration {
    let loaded = parse_route_configuration(yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.warnings, []);
    loaded.value
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn connection_manager_settings() {
    let b = bootstrap(&format!(
        r#"
static_resources:
  listeners:
  - name: edge
    address: {{ socket_address: {{ address: "::", port_value: 443 }} }}
    filter_chains:
    - filter_chain_match:
        destination_port: {{ value: 443 }}
        server_names: [example.com]
        transport_protocol: raw_buffer
        application_protocols: [h2, http/1.1]
      filters:
      - name: hcm
        typed_config:
          "@type": {HCM_TYPE}
          stat_prefix: edge
          codec_type: HTTP2
          max_request_headers_kb: {{ value: 96 }}
          request_headers_timeout: 4s
          request_timeout: 30s
          stream_idle_timeout: 0s
          common_http_protocol_options:
            idle_timeout: 900s
            max_requests_per_connection: 1000
            max_connection_duration: 3600s
            max_headers_count: 50
            headers_with_underscores_action: REJECT_REQUEST
          normalize_path: {{ value: true }}
          tracing: {{ random_sampling: {{ value: 5 }} }}
          merge_slashes: true
          path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT
          http_protocol_options: {{ accept_http_10: true, default_host_for_http_10: legacy.example }}
          http2_protocol_options: {{ max_concurrent_streams: 100, initial_stream_window_size: 65535, initial_connection_window_size: 1048576 }}
          use_remote_address: {{ value: true }}
          xff_num_trusted_hops: 2
          internal_address_config:
            cidr_ranges: [{{ address_prefix: 10.0.0.0, prefix_len: 8 }}, {{ address_prefix: "fd00::", prefix_len: {{ value: 8 }} }}]
          preserve_external_request_id: true
          generate_request_id: false
          upgrade_configs: [{{ upgrade_type: websocket }}, {{ upgrade_type: CONNECT, enabled: false }}]
          strip_any_host_port: true
          strip_matching_host_port: true
          server_name: mesh
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: {{ text_format_source: {{ inline_string: "%START_TIME% %REQ(:PATH)%\n" }} }}
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: /var/log/access.log
              log_format: {{ text_format: "%RESPONSE_CODE%\n" }}
          - name: envoy.access_loggers.stderr
          rds: null
          route_config:
            name: r
            virtual_hosts: []
          http_filters:
          - name: acme.api_key
            typed_config:
              "@type": type.googleapis.com/xds.type.v3.TypedStruct
              type_url: acme.ApiKey
              value: {{ header: x-api-key, keys: [a, b] }}
          - name: acme.legacy
            disabled: true
            typed_config:
              "@type": type.googleapis.com/udpa.type.v1.TypedStruct
              type_url: acme.Legacy
          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort: {{ http_status: 503, percentage: {{ numerator: 10 }} }}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              suppress_envoy_headers: true
"#
    ));
    let l = &b.listeners[0];
    assert_eq!(l.address, "[::]:443".parse().unwrap());
    let fc = &l.filter_chains[0];
    assert_eq!(
        fc.filter_chain_match,
        FilterChainMatch {
            destination_port: Some(443),
            server_names: vec!["example.com".into()],
            transport_protocol: Some("raw_buffer".into()),
            application_protocols: vec!["h2".into(), "http/1.1".into()],
            ..FilterChainMatch::default()
        }
    );
    let h = fc.hcm().unwrap();
    let expected = HttpConnectionManager {
        stat_prefix: "edge".into(),
        codec_type: CodecType::Http2,
        route: RouteSource::RouteConfig(RouteConfiguration::new("r")),
        http_filters: vec![
            HttpFilterConfig {
                name: "acme.api_key".into(),
                config: json!({"header": "x-api-key", "keys": ["a", "b"]}),
                type_url: Some("acme.ApiKey".into()),
                disabled: false,
                is_optional: false,
            },
            HttpFilterConfig {
                name: "acme.legacy".into(),
                config: json!({}),
                type_url: Some("acme.Legacy".into()),
                disabled: true,
                is_optional: false,
            },
            HttpFilterConfig {
                name: "envoy.filters.http.fault".into(),
                config: json!({"abort": {"http_status": 503, "percentage": {"numerator": 10}}}),
                type_url: Some(
                    "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault".into(),
                ),
                disabled: false,
                is_optional: false,
            },
        ],
        max_request_headers_kb: 96,
        request_headers_timeout: Some(secs(4.0)),
        request_timeout: Some(secs(30.0)),
        stream_idle_timeout: Duration::ZERO,
        idle_timeout: secs(900.0),
        max_requests_per_connection: Some(1000),
        max_connection_duration: Some(secs(3600.0)),
        max_headers_count: 50,
        headers_with_underscores_action: UnderscoresAction::RejectRequest,
        normalize_path: true,
        merge_slashes: true,
        path_with_escaped_slashes_action: EscapedSlashesAction::UnescapeAndRedirect,
        accept_http_10: true,
        default_host_for_http_10: Some("legacy.example".into()),
        tracing: Some(Tracing {
            random_sampling: 5.0,
            ..Tracing::default()
        }),
        http2: Http2Options {
            max_concurrent_streams: 100,
            initial_stream_window_size: 65535,
            initial_connection_window_size: 1048576,
        },
        use_remote_address: true,
        xff_num_trusted_hops: 2,
        internal_address_config: InternalAddressConfig {
            cidr_ranges: vec![
                CidrRange {
                    address_prefix: "10.0.0.0".parse().unwrap(),
                    prefix_len: 8,
                },
                CidrRange {
                    address_prefix: "fd00::".parse().unwrap(),
                    prefix_len: 8,
                },
            ],
        },
        preserve_external_request_id: true,
        generate_request_id: false,
        upgrade_configs: vec![
            UpgradeConfig::websocket(),
            UpgradeConfig {
                upgrade_type: "CONNECT".into(),
                enabled: false,
            },
        ],
        strip_any_host_port: true,
        strip_matching_host_port: true,
        access_log: vec![
            AccessLog {
                sink: AccessLogSink::Stdout,
                format: Some("%START_TIME% %REQ(:PATH)%\n".into()),
            },
            AccessLog {
                sink: AccessLogSink::File("/var/log/access.log".into()),
                format: Some("%RESPONSE_CODE%\n".into()),
            },
            AccessLog {
                sink: AccessLogSink::Stderr,
                format: None,
            },
        ],
        suppress_envoy_headers: true,
        server_name: "mesh".into(),
    };
    assert_eq!(*h, expected);
    // Every setting survives the dump.
    let back = parse_bootstrap(&mesh_xds::envoy::dump::bootstrap(&b).to_string()).unwrap();
    assert_eq!(
        *back.value.listeners[0].filter_chains[0].hcm().unwrap(),
        expected
    );
}

#[test]
fn routes_matches_and_actions() {
    let rc = routes(
        r#"
name: main
validate_clusters: { value: false }
ignore_port_in_host_matching: true
ignore_path_parameters_in_path_matching: true
most_specific_header_mutations_wins: true
max_direct_response_body_size_bytes: 8192
request_mirror_policies: [{ cluster: shadow }]
request_headers_to_add:
- header: { key: x-a, value: "1" }
  append: false
- header: { key: x-b, raw_value: aGk= }
  append_action: ADD_IF_ABSENT
  keep_empty_value: true
request_headers_to_remove: [x-c]
virtual_hosts:
- name: api
  domains: [api.example.com, "*.api.example.com"]
  require_tls: EXTERNAL_ONLY
  include_request_attempt_count: true
  include_attempt_count_in_response: true
  per_request_buffer_limit_bytes: { value: 65536 }
  retry_policy: { retry_on: "5xx", num_retries: { value: 3 } }
  hedge_policy: { hedge_on_per_try_timeout: true }
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
  routes:
  - name: regex
    match:
      safe_regex: { google_re2: {}, regex: "^/v[0-9]+/.*" }
      case_sensitive: { value: false }
      runtime_fraction: { default_value: { numerator: 25, denominator: TEN_THOUSAND }, runtime_key: k }
      query_parameters: [{ name: debug, present_match: true }, { name: v, string_match: { exact: "2" } }]
      tls_context: { presented: { value: true } }
      grpc: {}
    route:
      weighted_clusters:
        total_weight: 100
        runtime_key_prefix: w
        header_name: x-pick
        use_hash_policy: true
        clusters:
        - name: a
          weight: 70
          request_headers_to_add: [{ header: { key: x-w, value: a } }]
          host_rewrite_literal: a.internal
          typed_per_filter_config:
            f: { "@type": type.googleapis.com/a.B, x: 1 }
        - { name: b, weight: { value: 30 } }
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
        retry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts, typed_config: { "@type": x } }]
        host_selection_retry_max_attempts: "5"
      request_mirror_policy: { cluster: mirror, runtime_fraction: { default_value: { numerator: 50 } } }
      hash_policy:
      - header: { header_name: x-user }
      - cookie: { name: sticky, ttl: 3600s, path: / }
        terminal: true
      - connection_properties: { source_ip: true }
      - query_parameter: { name: q }
      - filter_state: { key: k }
      upgrade_configs: [{ upgrade_type: websocket, enabled: { value: true } }]
      max_grpc_timeout: 30s
      grpc_timeout_offset: 0.05s
      priority: HIGH
  - match: { path_separated_prefix: /api }
    route:
      cluster_header: x-cluster
      regex_rewrite: { pattern: { regex: "^/api/(.*)" }, substitution: /\1 }
      host_rewrite_path_regex: { pattern: { regex: "^/(.+)/.*" }, substitution: \1 }
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
  - match: { prefix: /ping }
    direct_response: { status: 200, body: { inline_bytes: cG9uZw== } }
    response_headers_to_add: [{ header: { key: x-ping, value: pong }, append_action: OVERWRITE_IF_EXISTS }]
    response_headers_to_remove: [server]
    per_request_buffer_limit_bytes: 1024
  - match: { prefix: / }
    route: { cluster: default }
"#,
    );
    assert_eq!(rc.name, "main");
    assert_eq!(rc.validate_clusters, Some(false));
    assert!(rc.ignore_port_in_host_matching && rc.ignore_path_parameters_in_path_matching);
    assert!(rc.most_specific_header_mutations_wins);
    assert_eq!(rc.max_direct_response_body_size_bytes, 8192);
    assert_eq!(rc.request_mirror_policies[0].cluster, "shadow");
    assert_eq!(
        rc.headers.request_headers_to_add,
        [
            HeaderValueOption::set("x-a", "1"),
            HeaderValueOption {
                key: "x-b".into(),
                value: "hi".into(),
                append_action: AppendAction::AddIfAbsent,
                keep_empty_value: true,
            }
        ]
    );
    assert_eq!(rc.headers.request_headers_to_remove, ["x-c"]);

    let vh = &rc.virtual_hosts[0];
    assert_eq!(vh.require_tls, TlsRequirement::ExternalOnly);
    assert!(vh.include_request_attempt_count && vh.include_attempt_count_in_response);
    assert_eq!(vh.per_request_buffer_limit_bytes, Some(65536));
    assert_eq!(vh.retry_policy.as_ref().unwrap().num_retries, 3);
    assert_eq!(
        vh.hedge_policy,
        Some(HedgePolicy {
            hedge_on_per_try_timeout: true
        })
    );
    assert_eq!(
        vh.typed_per_filter_config["acme.api_key"],
        json!({"disabled": true})
    );
    assert_eq!(
        vh.typed_per_filter_config["envoy.filters.http.fault"],
        json!({"delay": {"fixed_delay": "1s"}})
    );
    assert_eq!(
        vh.virtual_clusters[0].headers,
        [
            HeaderMatcher::new(
                ":path",
                HeaderMatchSpec::String(StringMatcher {
                    pattern: StringPattern::SafeRegex("^/rides$".into()),
                    ignore_case: false
                })
            ),
            HeaderMatcher::exact(":method", "POST"),
        ]
    );

    let r = &vh.routes[0];
    assert_eq!(r.name, "regex");
    let m = &r.route_match;
    assert_eq!(m.path, PathMatch::SafeRegex("^/v[0-9]+/.*".into()));
    assert!(!m.case_sensitive);
    assert_eq!(
        m.runtime_fraction,
        Some(RuntimeFraction {
            default_value: FractionalPercent {
                numerator: 25,
                denominator: Denominator::TenThousand
            },
            runtime_key: "k".into()
        })
    );
    assert_eq!(
        m.query_parameters,
        [
            QueryParameterMatcher {
                name: "debug".into(),
                string_match: None
            },
            QueryParameterMatcher {
                name: "v".into(),
                string_match: Some(StringMatcher::exact("2"))
            }
        ]
    );
    assert_eq!(
        m.tls_context,
        Some(TlsContextMatch {
            presented: Some(true),
            validated: None
        })
    );
    assert!(m.grpc);
    let Action::Route(a) = &r.action else {
        panic!()
    };
    let ClusterSpecifier::WeightedClusters(w) = &a.cluster else {
        panic!()
    };
    assert_eq!(w.runtime_key_prefix, "w");
    assert_eq!(w.header_name.as_deref(), Some("x-pick"));
    assert!(w.use_hash_policy);
    assert_eq!(
        w.clusters[0],
        ClusterWeight {
            name: "a".into(),
            cluster_header: None,
            weight: 70,
            headers: HeaderMutations {
                request_headers_to_add: vec![HeaderValueOption::append("x-w", "a")],
                ..HeaderMutations::default()
            },
            host_rewrite_literal: Some("a.internal".into()),
            typed_per_filter_config: [("f".to_owned(), json!({"x": 1}))].into(),
        }
    );
    assert_eq!(w.clusters[1].weight, 30);
    assert_eq!(a.timeout, Some(secs(2.5)));
    assert_eq!(a.idle_timeout, Some(secs(60.0)));
    assert_eq!(a.prefix_rewrite.as_deref(), Some("/v2/"));
    assert_eq!(a.host_rewrite, Some(HostRewrite::Auto));
    assert!(a.append_x_forwarded_host);
    assert_eq!(a.cluster_not_found_response_code, 404);
    assert_eq!(
        a.metadata_match,
        [
            ("canary".to_owned(), json!(true)),
            ("version".to_owned(), json!("v2"))
        ]
        .into()
    );
    let rp = a.retry_policy.as_ref().unwrap();
    assert_eq!(
        *rp,
        RetryPolicy {
            retry_on: "5xx,reset,retriable-status-codes".into(),
            num_retries: 4,
            per_try_timeout: Some(secs(0.5)),
            per_try_idle_timeout: Some(secs(0.2)),
            retry_back_off: Some(BackOff {
                base_interval: secs(0.01),
                max_interval: Some(secs(0.1))
            }),
            retriable_status_codes: vec![409, 429],
            retriable_headers: vec![HeaderMatcher::exact("x-retry", "yes")],
            retriable_request_headers: vec![HeaderMatcher::exact(":method", "GET")],
            retry_host_predicate: vec!["envoy.retry_host_predicates.previous_hosts".into()],
            host_selection_retry_max_attempts: 5,
        }
    );
    assert_eq!(
        a.request_mirror_policies,
        [RequestMirrorPolicy {
            cluster: "mirror".into(),
            runtime_fraction: Some(RuntimeFraction {
                default_value: FractionalPercent::percent(50),
                runtime_key: String::new()
            }),
            ..RequestMirrorPolicy::default()
        }]
    );
    assert_eq!(
        a.hash_policy,
        [
            HashPolicy {
                policy: HashOn::Header {
                    header_name: "x-user".into()
                },
                terminal: false
            },
            HashPolicy {
                policy: HashOn::Cookie {
                    name: "sticky".into(),
                    ttl: Some(secs(3600.0)),
                    path: "/".into()
                },
                terminal: true
            },
            HashPolicy {
                policy: HashOn::SourceIp,
                terminal: false
            },
            HashPolicy {
                policy: HashOn::QueryParameter { name: "q".into() },
                terminal: false
            },
            HashPolicy {
                policy: HashOn::FilterState { key: "k".into() },
                terminal: false
            },
        ]
    );
    assert_eq!(a.upgrade_configs, [UpgradeConfig::websocket()]);
    assert_eq!(a.max_grpc_timeout, Some(secs(30.0)));
    assert_eq!(a.grpc_timeout_offset, Some(secs(0.05)));
    assert_eq!(a.priority, RoutingPriority::High);

    let r = &vh.routes[1];
    assert_eq!(
        r.route_match.path,
        PathMatch::PathSeparatedPrefix("/api".into())
    );
    let Action::Route(a) = &r.action else {
        panic!()
    };
    assert_eq!(
        a.cluster,
        ClusterSpecifier::ClusterHeader("x-cluster".into())
    );
    assert_eq!(
        a.regex_rewrite,
        Some(RegexRewrite {
            pattern: "^/api/(.*)".into(),
            substitution: "/\\1".into()
        })
    );
    assert_eq!(
        a.host_rewrite,
        Some(HostRewrite::PathRegex(RegexRewrite {
            pattern: "^/(.+)/.*".into(),
            substitution: "\\1".into()
        }))
    );

    assert_eq!(vh.routes[2].route_match.path, PathMatch::ConnectMatcher);
    let Action::Route(a) = &vh.routes[2].action else {
        panic!()
    };
    assert_eq!(a.host_rewrite, Some(HostRewrite::Header("x-host".into())));

    assert_eq!(
        vh.routes[3].route_match.path,
        PathMatch::PathTemplate("/books/{id}/**".into())
    );
    let Action::Route(a) = &vh.routes[3].action else {
        panic!()
    };
    assert_eq!(
        a.host_rewrite,
        Some(HostRewrite::Literal("books.internal".into()))
    );
    assert_eq!(a.max_grpc_timeout, Some(secs(7.0)));

    assert_eq!(
        vh.routes[4].action,
        Action::Redirect(RedirectAction {
            scheme_redirect: Some("https".into()),
            host_redirect: Some("new.example.com".into()),
            port_redirect: Some(8443),
            path_redirect: Some(PathRedirect::Path("/new".into())),
            response_code: RedirectCode::PermanentRedirect,
            strip_query: true,
        })
    );
    assert_eq!(
        vh.routes[5].action,
        Action::Redirect(RedirectAction {
            scheme_redirect: Some("http".into()),
            path_redirect: Some(PathRedirect::Regex(RegexRewrite {
                pattern: "^/re(.*)".into(),
                substitution: "/\\1".into()
            })),
            response_code: RedirectCode::Found,
            ..RedirectAction::default()
        })
    );
    let ping = &vh.routes[6];
    assert_eq!(
        ping.action,
        Action::DirectResponse(DirectResponseAction {
            status: 200,
            body: Some("pong".into())
        })
    );
    assert_eq!(
        ping.headers.response_headers_to_add[0].append_action,
        AppendAction::OverwriteIfExists
    );
    assert_eq!(ping.headers.response_headers_to_remove, ["server"]);
    assert_eq!(ping.per_request_buffer_limit_bytes, Some(1024));
}

#[test]
fn cluster_settings() {
    let b = bootstrap(
        r#"
static_resources:
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
  - name: random
    lb_policy: RANDOM
    load_assignment: { cluster_name: random }
"#,
    );
    let c = &b.clusters[0];
    assert_eq!(c.discovery_type, DiscoveryType::Static);
    assert_eq!(c.connect_timeout, secs(1.0));
    assert_eq!(c.lb_policy, LbPolicy::LeastRequest);
    assert_eq!(
        c.least_request,
        LeastRequestConfig {
            choice_count: 3,
            active_request_bias: 0.5
        }
    );
    assert_eq!(c.protocol, UpstreamProtocol::Http2);
    assert_eq!(c.idle_timeout, secs(30.0));
    assert_eq!(c.max_requests_per_connection, Some(100));
    assert_eq!(
        c.circuit_breakers.thresholds,
        [
            Thresholds {
                max_connections: 10,
                max_pending_requests: 20,
                max_requests: 30,
                max_retries: 4,
                track_remaining: true,
                ..Thresholds::default()
            },
            Thresholds {
                priority: RoutingPriority::High,
                retry_budget: Some(RetryBudget {
                    budget_percent: 25.0,
                    min_retry_concurrency: 5
                }),
                ..Thresholds::default()
            }
        ]
    );
    assert_eq!(
        c.outlier_detection,
        Some(OutlierDetection {
            consecutive_5xx: 7,
            consecutive_gateway_failure: 3,
            consecutive_local_origin_failure: 2,
            interval: secs(5.0),
            base_ejection_time: secs(10.0),
            max_ejection_time: secs(100.0),
            max_ejection_percent: 50,
            enforcing_consecutive_5xx: 90,
            enforcing_consecutive_gateway_failure: 80,
            enforcing_consecutive_local_origin_failure: 70,
            enforcing_success_rate: 60,
            success_rate_minimum_hosts: 4,
            success_rate_request_volume: 40,
            success_rate_stdev_factor: 1500,
            failure_percentage_threshold: 75,
            enforcing_failure_percentage: 20,
            failure_percentage_minimum_hosts: 3,
            failure_percentage_request_volume: 30,
            split_external_local_origin_errors: true,
        })
    );
    assert_eq!(
        c.health_checks,
        [
            HealthCheck {
                timeout: secs(1.0),
                interval: secs(5.0),
                unhealthy_threshold: 3,
                healthy_threshold: 2,
                checker: HealthChecker::Http {
                    path: "/healthz".into(),
                    host: Some("health.local".into()),
                    expected_statuses: vec![(200, 300)]
                }
            },
            HealthCheck {
                timeout: secs(2.0),
                interval: secs(10.0),
                unhealthy_threshold: 1,
                healthy_threshold: 1,
                checker: HealthChecker::Tcp
            }
        ]
    );
    assert_eq!(c.healthy_panic_threshold, 25.5);
    let la = c.load_assignment.as_ref().unwrap();
    assert_eq!(la.overprovisioning_factor, 200);
    let loc = &la.endpoints[0];
    assert_eq!(
        loc.locality,
        Locality {
            region: "eu".into(),
            zone: "eu-1".into(),
            sub_zone: "a".into()
        }
    );
    assert_eq!((loc.priority, loc.load_balancing_weight), (1, Some(5)));
    let e = &loc.lb_endpoints[0];
    assert_eq!(e.address.socket_addr(), Some("[::1]:8080".parse().unwrap()));
    assert_eq!(e.hostname.as_deref(), Some("one.local"));
    assert_eq!(e.health_status, HealthStatus::Draining);
    assert_eq!(e.load_balancing_weight, 3);
    assert_eq!(e.metadata["envoy.lb"]["version"], json!("v1"));
    assert_eq!(e.metadata["istio"]["workload"], json!("w"));

    let c = &b.clusters[1];
    assert_eq!(c.discovery_type, DiscoveryType::StrictDns);
    assert_eq!(c.lb_policy, LbPolicy::RingHash);
    assert_eq!(c.dns_refresh_rate, secs(30.0));
    assert_eq!(
        c.ring_hash,
        RingHashConfig {
            minimum_ring_size: 2048,
            maximum_ring_size: 4096
        }
    );
    assert_eq!(c.protocol, UpstreamProtocol::Http2);
    assert_eq!(c.max_requests_per_connection, Some(7));
    let la = c.load_assignment.as_ref().unwrap();
    assert_eq!(la.cluster_name, "hashing");
    assert_eq!(
        la.endpoints[0].lb_endpoints,
        [LbEndpoint::new(Address {
            host: "dns.example.com".into(),
            port: 80
        })]
    );

    let c = &b.clusters[2];
    assert_eq!((c.lb_policy, c.maglev_table_size), (LbPolicy::Maglev, 5));
    assert_eq!(c.idle_timeout, secs(2.0));
    assert_eq!(b.clusters[3].lb_policy, LbPolicy::Random);
}

#[test]
fn deprecated_router_name_without_typed_config_and_missing_router() {
    let b = parse_bootstrap(&format!(
        r#"
static_resources:
  listeners:
  - name: a
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 1 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM_TYPE}
          stat_prefix: a
          route_config: {{}}
          http_filters: [{{ name: envoy.filters.http.router }}]
  - name: b
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 2 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM_TYPE}
          stat_prefix: b
          route_config: {{}}
          http_filters: [{{ name: acme.x }}]
"#
    ))
    .unwrap();
    assert!(
        b.value.listeners[0].filter_chains[0]
            .hcm()
            .unwrap()
            .http_filters
            .is_empty()
    );
    assert_eq!(
        b.warnings
            .iter()
            .map(|w| w.path.as_str())
            .collect::<Vec<_>>(),
        ["listeners[1].filter_chains[0].filters[0].typed_config.http_filters"]
    );
}

#[test]
fn router_must_be_last() {
    let err = parse_bootstrap(&format!(
        r#"
static_resources:
  listeners:
  - name: a
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 1 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM_TYPE}
          stat_prefix: a
          route_config: {{}}
          http_filters: [{{ name: envoy.filters.http.router }}, {{ name: acme.x }}]
"#
    ))
    .unwrap_err();
    assert_eq!(
        err.field_errors()[0].path,
        "listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0]"
    );
}

#[test]
fn camel_case_typed_config_is_recognised_whatever_the_filter_name() {
    let b = parse_bootstrap(&format!(
        r#"{{"staticResources": {{"listeners": [{{"name": "a",
          "address": {{"socketAddress": {{"address": "127.0.0.1", "portValue": 1}}}},
          "filterChains": [{{"filters": [{{"name": "my-hcm", "typedConfig": {{
            "@type": "{HCM_TYPE}", "statPrefix": "a", "routeConfig": {{}},
            "httpFilters": [{{"name": "x", "typedConfig": {{
              "@type": "type.googleapis.com/xds.type.v3.TypedStruct",
              "typeUrl": "acme.X", "value": {{"some_key": 1, "otherKey": 2}}}}}}]}}}}]}}]}}]}}}}"#
    ))
    .unwrap();
    // Only the missing router is worth a warning.
    assert_eq!(b.warnings.len(), 1, "{:?}", b.warnings);
    assert!(b.warnings[0].path.ends_with("typed_config.http_filters"));
    let f = &b.value.listeners[0].filter_chains[0]
        .hcm()
        .unwrap()
        .http_filters[0];
    assert_eq!(f.type_url.as_deref(), Some("acme.X"));
    // User data keeps its keys as written.
    assert_eq!(f.config, json!({"some_key": 1, "otherKey": 2}));
}

#[test]
fn subset_and_locality_weighted_lb_settings() {
    let b = bootstrap(
        r#"
static_resources:
  clusters:
  - name: subsets
    common_lb_config: { locality_weighted_lb_config: {} }
    lb_subset_config:
      fallback_policy: DEFAULT_SUBSET
      default_subset: { version: v1, canary: false }
      subset_selectors:
      - keys: [version]
      - keys: [version, stage]
        fallback_policy: KEYS_SUBSET
        fallback_keys_subset: [version]
      - { keys: [canary], fallback_policy: NO_FALLBACK }
      - { keys: [zone], fallback_policy: ANY_ENDPOINT }
      - { keys: [team], fallback_policy: DEFAULT_SUBSET }
      - { keys: [tier], fallback_policy: NOT_DEFINED }
    load_assignment: { cluster_name: subsets }
  - name: plain
    load_assignment: { cluster_name: plain }
"#,
    );
    let c = &b.clusters[0];
    assert!(c.locality_weighted_lb);
    let sc = c.lb_subset_config.as_ref().unwrap();
    assert_eq!(sc.fallback_policy, LbSubsetFallbackPolicy::DefaultSubset);
    assert_eq!(
        sc.default_subset,
        [
            ("version".to_owned(), json!("v1")),
            ("canary".to_owned(), json!(false))
        ]
        .into()
    );
    let sel = |keys: &[&str], f, fallback_keys: &[&str]| LbSubsetSelector {
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        fallback_policy: f,
        fallback_keys_subset: fallback_keys.iter().map(|k| (*k).to_owned()).collect(),
    };
    use LbSubsetSelectorFallbackPolicy as F;
    assert_eq!(
        sc.subset_selectors,
        [
            sel(&["version"], F::NotDefined, &[]),
            sel(&["version", "stage"], F::KeysSubset, &["version"]),
            sel(&["canary"], F::NoFallback, &[]),
            sel(&["zone"], F::AnyEndpoint, &[]),
            sel(&["team"], F::DefaultSubset, &[]),
            sel(&["tier"], F::NotDefined, &[]),
        ]
    );
    let plain = &b.clusters[1];
    assert_eq!(
        (&plain.lb_subset_config, plain.locality_weighted_lb),
        (&None, false)
    );
}

/// Envoy's zero means "no timeout"; an absent request_headers_timeout keeps the safer 10 s
/// default (issue #11).
#[test]
fn request_headers_timeout_defaults_to_ten_seconds_and_zero_disables_it() {
    let hcm = |extra: &str| {
        let b = bootstrap(&format!(
            r#"
static_resources:
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 80 }} }}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": {HCM_TYPE}
          stat_prefix: s
          route_config: {{ name: r }}
          {extra}
"#
        ));
        b.listeners[0].filter_chains[0].hcm().unwrap().clone()
    };
    assert_eq!(hcm("").request_headers_timeout, Some(secs(10.0)));
    assert_eq!(hcm("").request_timeout, None);
    assert_eq!(
        hcm("request_headers_timeout: 0s").request_headers_timeout,
        None
    );
    assert_eq!(hcm("request_timeout: 0s").request_timeout, None);
    // The dump says so explicitly, and reads back the same.
    let mut b = Bootstrap::default();
    let mut h = hcm("request_headers_timeout: 0s");
    h.route = RouteSource::RouteConfig(RouteConfiguration::new("r"));
    b.listeners
        .push(Listener::http("l", "127.0.0.1:80".parse().unwrap(), h));
    let json = mesh_xds::envoy::dump::bootstrap(&b);
    let back = parse_bootstrap(&json.to_string()).unwrap();
    assert_eq!(back.value, b);
}

/// The overload manager's global downstream connection limit is read; other monitors warn.
#[test]
fn overload_manager_connection_limit() {
    let loaded = parse_bootstrap(
        r#"
overload_manager:
  resource_monitors:
  - name: envoy.resource_monitors.global_downstream_max_connections
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
      max_active_downstream_connections: 5000
  - name: envoy.resource_monitors.fixed_heap
    typed_config: { max_heap_size_bytes: 1000 }
"#,
    )
    .unwrap();
    assert_eq!(
        loaded
            .value
            .overload_manager
            .max_active_downstream_connections,
        Some(5000)
    );
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0]
            .to_string()
            .contains("overload_manager.resource_monitors[1]")
    );
    let json = mesh_xds::envoy::dump::bootstrap(&loaded.value);
    let back = parse_bootstrap(&json.to_string()).unwrap();
    assert_eq!(back.value, loaded.value);

    let zero = parse_bootstrap(
        r#"
overload_manager:
  resource_monitors:
  - name: envoy.resource_monitors.global_downstream_max_connections
    typed_config: { max_active_downstream_connections: 0 }
"#,
    );
    let err = zero.unwrap_err().to_string();
    assert!(err.contains("max_active_downstream_connections"), "{err}");
}

/// `layered_runtime`: static and admin layers are read and dumped; other layer kinds warn.
#[test]
fn layered_runtime_layers() {
    let loaded = parse_bootstrap(
        r#"
layered_runtime:
  layers:
  - name: base
    static_layer: { fault: { http: { abort: { abort_percent: 5 } } }, routing.canary: 10 }
  - name: admin
    admin_layer: {}
  - name: disk
    disk_layer: { symlink_root: /srv/runtime }
"#,
    )
    .unwrap();
    let layers = &loaded.value.layered_runtime.layers;
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0].name, "base");
    assert!(matches!(layers[1].kind, RuntimeLayerKind::Admin));
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert_eq!(
        loaded.warnings[0].path,
        "layered_runtime.layers[2].disk_layer"
    );
    let rt = mesh_core::runtime::Runtime::new(&loaded.value.layered_runtime, &Default::default());
    assert_eq!(rt.u64("fault.http.abort.abort_percent"), Some(5));
    assert_eq!(rt.u64("routing.canary"), Some(10));
    let back =
        parse_bootstrap(&mesh_xds::envoy::dump::bootstrap(&loaded.value).to_string()).unwrap();
    assert_eq!(back.value, loaded.value);
}
