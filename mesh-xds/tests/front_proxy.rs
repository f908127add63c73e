//! Envoy's front-proxy example, in YAML, JSON and lowerCamelCase JSON, converts to one model.

use std::time::Duration;

use mesh_core::config::*;
use mesh_xds::envoy::{Loaded, parse_bootstrap};

/// The front-proxy example in the form Envoy's docs give it (examples/front-proxy), with a
/// second virtual host.
const FRONT_PROXY_YAML: &str = include_str!("fixtures/front_proxy.yaml");

/// The same, written by hand as JSON.
const FRONT_PROXY_JSON: &str = r#"{
  "static_resources": {
    "listeners": [{
      "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8080}},
      "filter_chains": [{
        "filters": [{
          "name": "envoy.filters.network.http_connection_manager",
          "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "codec_type": "AUTO",
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
        }]
      }]
    }],
    "clusters": [
      {"name": "service1", "type": "STRICT_DNS", "lb_policy": "ROUND_ROBIN", "connect_timeout": "0.25s",
       "load_assignment": {"cluster_name": "service1", "endpoints": [{"lb_endpoints": [
         {"endpoint": {"address": {"socket_address": {"address": "service1", "port_value": 8000}}}}]}]}},
      {"name": "service2", "type": "STRICT_DNS", "lb_policy": "ROUND_ROBIN", "connect_timeout": "0.25s",
       "load_assignment": {"cluster_name": "service2", "endpoints": [{"lb_endpoints": [
         {"endpoint": {"address": {"socket_address": {"address": "service2", "port_value": 8000}}}}]}]}}
    ]
  },
  "admin": {"address": {"socket_address": {"address": "0.0.0.0", "port_value": 8001}}}
}"#;

/// The same again in lowerCamelCase, with protobuf wrappers and the proto duration form, as
/// `protoc`'s JSON printer and hand-converted configs write it. Tab-indented, which YAML
/// would reject.
const FRONT_PROXY_CAMEL: &str = "{
\t\"staticResources\": {
\t\t\"listeners\": [{
\t\t\t\"address\": {\"socketAddress\": {\"address\": \"0.0.0.0\", \"portValue\": 8080}},
\t\t\t\"filterChains\": [{
\t\t\t\t\"filters\": [{
\t\t\t\t\t\"name\": \"envoy.filters.network.http_connection_manager\",
\t\t\t\t\t\"typedConfig\": {
\t\t\t\t\t\t\"@type\": \"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\",
\t\t\t\t\t\t\"codecType\": \"AUTO\",
\t\t\t\t\t\t\"statPrefix\": \"ingress_http\",
\t\t\t\t\t\t\"routeConfig\": {
\t\t\t\t\t\t\t\"name\": \"local_route\",
\t\t\t\t\t\t\t\"virtualHosts\": [
\t\t\t\t\t\t\t\t{\"name\": \"service1\", \"domains\": [\"service1.example.com\"],
\t\t\t\t\t\t\t\t \"routes\": [{\"match\": {\"prefix\": \"/\"}, \"route\": {\"cluster\": \"service1\"}}]},
\t\t\t\t\t\t\t\t{\"name\": \"backend\", \"domains\": [\"*\"],
\t\t\t\t\t\t\t\t \"routes\": [
\t\t\t\t\t\t\t\t\t{\"match\": {\"prefix\": \"/service/1\", \"caseSensitive\": {\"value\": true}}, \"route\": {\"cluster\": \"service1\"}},
\t\t\t\t\t\t\t\t\t{\"match\": {\"prefix\": \"/service/2\"}, \"route\": {\"cluster\": \"service2\"}}
\t\t\t\t\t\t\t\t ]}
\t\t\t\t\t\t\t]
\t\t\t\t\t\t},
\t\t\t\t\t\t\"httpFilters\": [{
\t\t\t\t\t\t\t\"name\": \"envoy.filters.http.router\",
\t\t\t\t\t\t\t\"typedConfig\": {\"@type\": \"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\"}
\t\t\t\t\t\t}]
\t\t\t\t\t}
\t\t\t\t}]
\t\t\t}]
\t\t}],
\t\t\"clusters\": [
\t\t\t{\"name\": \"service1\", \"type\": \"STRICT_DNS\", \"lbPolicy\": \"ROUND_ROBIN\", \"connectTimeout\": {\"nanos\": 250000000},
\t\t\t \"loadAssignment\": {\"clusterName\": \"service1\", \"endpoints\": [{\"lbEndpoints\": [
\t\t\t\t{\"endpoint\": {\"address\": {\"socketAddress\": {\"address\": \"service1\", \"portValue\": \"8000\"}}}, \"loadBalancingWeight\": {\"value\": 1}}]}]}},
\t\t\t{\"name\": \"service2\", \"type\": \"STRICT_DNS\", \"lbPolicy\": \"ROUND_ROBIN\", \"connectTimeout\": \"0.250s\",
\t\t\t \"loadAssignment\": {\"clusterName\": \"service2\", \"endpoints\": [{\"lbEndpoints\": [
\t\t\t\t{\"endpoint\": {\"address\": {\"socketAddress\": {\"address\": \"service2\", \"portValue\": 8000}}}}]}]}}
\t\t]
\t},
\t\"admin\": {\"address\": {\"socketAddress\": {\"address\": \"0.0.0.0\", \"portValue\": 8001}}}
}";

fn strict_dns(name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        discovery_type: DiscoveryType::StrictDns,
        lb_policy: LbPolicy::RoundRobin,
        connect_timeout: Duration::from_millis(250),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint::new(Address {
                    host: name.into(),
                    port: 8000,
                })],
                ..LocalityLbEndpoints::default()
            }],
            overprovisioning_factor: 140,
        }),
        ..Cluster::default()
    }
}

fn expected() -> Bootstrap {
    let routes = RouteConfiguration::new("local_route")
        .with_virtual_host(
            VirtualHost::new("service1", ["service1.example.com"])
                .with_route(Route::prefix("/", "service1")),
        )
        .with_virtual_host(
            VirtualHost::new("backend", ["*"])
                .with_route(Route::prefix("/service/1", "service1"))
                .with_route(Route::prefix("/service/2", "service2")),
        );
    let hcm = HttpConnectionManager {
        stat_prefix: "ingress_http".into(),
        codec_type: CodecType::Auto,
        ..HttpConnectionManager::with_routes(routes)
    };
    let mut b = Bootstrap::default()
        .with_listener(Listener::http(
            // Envoy names unnamed listeners; here the name is the address.
            "0.0.0.0_8080",
            "0.0.0.0:8080".parse().unwrap(),
            hcm,
        ))
        .with_cluster(strict_dns("service1"))
        .with_cluster(strict_dns("service2"));
    b.admin = Some(Admin {
        address: "0.0.0.0:8001".parse().unwrap(),
    });
    b
}

fn clean(loaded: Loaded<Bootstrap>) -> Bootstrap {
    assert_eq!(loaded.warnings, []);
    loaded.strict().unwrap()
}

#[test]
fn yaml_parses_into_the_expected_model() {
    assert_eq!(
        clean(parse_bootstrap(FRONT_PROXY_YAML).unwrap()),
        expected()
    );
}

#[test]
fn json_gives_the_same_model() {
    assert_eq!(
        clean(parse_bootstrap(FRONT_PROXY_JSON).unwrap()),
        expected()
    );
}

#[test]
fn camel_case_json_gives_the_same_model() {
    assert_eq!(
        clean(parse_bootstrap(FRONT_PROXY_CAMEL).unwrap()),
        expected()
    );
}

/// Converts every key of a JSON document to lowerCamelCase, as protobuf's JSON printer does.
fn camelize(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let mut out = String::new();
                    let mut up = false;
                    for c in k.chars() {
                        match c {
                            '_' => up = true,
                            c if up => {
                                out.extend(c.to_uppercase());
                                up = false;
                            }
                            c => out.push(c),
                        }
                    }
                    (out, camelize(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(camelize).collect()),
        other => other,
    }
}

#[test]
fn every_key_camel_cased_gives_the_same_model() {
    let doc: serde_json::Value = serde_yaml_ng::from_str(FRONT_PROXY_YAML).unwrap();
    let camel = serde_json::to_string_pretty(&camelize(doc)).unwrap();
    assert!(camel.contains("\"portValue\""));
    assert_eq!(clean(parse_bootstrap(&camel).unwrap()), expected());
}

#[test]
fn load_bootstrap_reads_a_file_and_names_a_missing_one() {
    let dir = std::env::temp_dir().join(format!("mesh-xds-front-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("envoy.yaml");
    std::fs::write(&file, FRONT_PROXY_YAML).unwrap();
    let loaded = mesh_xds::envoy::load_bootstrap(&file).unwrap();
    assert_eq!(clean(loaded), expected());
    std::fs::remove_dir_all(&dir).unwrap();

    let err = mesh_xds::envoy::load_bootstrap(dir.join("missing.yaml")).unwrap_err();
    assert!(matches!(err, mesh_xds::LoadError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.yaml"), "{err}");
}
