//! Reading Istio YAML: kinds and versions, metadata, diagnostics with resource paths.

use mesh_xds::istio::{self, Options, Resolution, Role, StringMatch};

#[test]
fn versions_kinds_and_namespaces() {
    let text = r#"
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: { name: a, namespace: edge, labels: { team: x } }
spec: { selector: { istio: ingressgateway }, servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ["*"] }] }
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: b }
spec: { hosts: [b.example.com], ports: [{ number: 80, name: http }], resolution: DNS }
---
apiVersion: networking.k8s.io/v1
kind: Gateway
metadata: { name: c }
---
apiVersion: networking.istio.io/v2
kind: VirtualService
metadata: { name: d }
---
"#;
    let l = istio::parse_str(text, "in.yaml", "ns1").unwrap();
    assert_eq!(l.value.gateways.len(), 1);
    let g = &l.value.gateways[0];
    assert_eq!(
        (g.meta.name.as_str(), g.meta.namespace.as_str()),
        ("a", "edge")
    );
    assert_eq!(g.meta.labels["team"], "x");
    assert_eq!(g.meta.source, "in.yaml[0]");
    let se = &l.value.service_entries[0];
    assert_eq!(se.meta.namespace, "ns1");
    assert_eq!(se.resolution, Resolution::Dns);
    let skipped: Vec<&str> = l.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(skipped, ["in.yaml[2]", "in.yaml[3]"]);
    assert!(l.warnings[0].message.contains("networking.k8s.io/v1"));
}

#[test]
fn every_error_of_a_file_is_listed_with_its_resource() {
    let text = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { namespace: x }
spec: { hosts: [a], http: [{ route: [{ destination: { host: a } }], timeout: x }] }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: dr }
spec:
  host: a
  subsets: [{ name: v1 }, { name: v1 }]
  trafficPolicy: { outlierDetection: { interval: 0s, maxEjectionPercent: 150 } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: se }
spec: { hosts: [], ports: [{ number: 0 }], resolution: SOMETIMES }
"#;
    let e = istio::parse_str(text, "f.yaml", "default").unwrap_err();
    let got: Vec<String> = e.field_errors().iter().map(|e| e.path.clone()).collect();
    assert_eq!(
        got,
        [
            "f.yaml[0] VirtualService: metadata.name",
            "f.yaml[0] VirtualService: spec.http[0].timeout",
            "dr.default DestinationRule: spec.trafficPolicy.outlierDetection.maxEjectionPercent",
            "dr.default DestinationRule: spec.trafficPolicy.outlierDetection.interval",
            "dr.default DestinationRule: spec.subsets[1].name",
            "se.default ServiceEntry: spec.hosts",
            "se.default ServiceEntry: spec.ports[0].number",
            "se.default ServiceEntry: spec.ports[0].name",
            "se.default ServiceEntry: spec.resolution",
        ]
    );
}

#[test]
fn json_documents_and_string_matches() {
    let text = r#"{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
      "metadata": {"name": "j"},
      "spec": {"hosts": ["a"], "http": [{"match": [{"uri": {"regex": "*"}, "headers": {"x": {"prefix": ""}}}],
               "route": [{"destination": {"host": "a"}}]}]}}"#;
    let l = istio::parse_str(text, "j.json", "default").unwrap();
    let m = &l.value.virtual_services[0].http[0].matches[0];
    assert_eq!(m.uri, Some(StringMatch::Present));
    assert_eq!(m.headers["x"], StringMatch::Present);
}

#[test]
fn unusable_workload_entries_are_skipped_with_a_warning() {
    let text = r#"
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: sock }
spec: { address: "unix:///var/run/app.sock" }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: vm, labels: { app: vm } }
spec: { address: 10.0.0.1 }
"#;
    let l = istio::parse_str(text, "w", "default").unwrap();
    assert_eq!(l.value.workload_entries.len(), 1);
    assert_eq!(l.value.workload_entries[0].spec.labels["app"], "vm");
    assert_eq!(
        l.warnings[0].path,
        "sock.default WorkloadEntry: spec.address"
    );
    assert!(l.strict().is_err());
}

#[test]
fn syntax_errors_are_syntax_errors() {
    let e = istio::parse_str("a: [1,\n", "bad", "default").unwrap_err();
    assert!(e.is_syntax());
}

#[test]
fn options_constructors() {
    let o = Options::sidecar(15001)
        .namespace("prod")
        .labels([("app", "web")]);
    assert_eq!(o.namespace, "prod");
    assert_eq!(o.domain_suffix, "cluster.local");
    assert_eq!(o.bind_address.to_string(), "127.0.0.1");
    let Role::Sidecar {
        outbound_port,
        labels,
    } = &o.role
    else {
        panic!("sidecar expected");
    };
    assert_eq!((*outbound_port, labels["app"].as_str()), (15001, "web"));
    let g = Options::gateway([("istio", "ingressgateway")]).map_port(80, 18080);
    let Role::Gateway { port_map, .. } = &g.role else {
        panic!("gateway expected");
    };
    assert_eq!(port_map[&80], 18080);
}

#[test]
fn retry_conditions_and_claim_matches_are_checked() {
    let vs = |http: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{ name: r }}\nspec:\n  hosts: [a]\n  http:\n{http}"
        )
    };
    let e = istio::parse_str(
        &vs("  - retries: { attempts: 2, retryOn: \"5xx,sometimes\" }\n    route: [{ destination: { host: a } }]\n"),
        "f",
        "default",
    )
    .unwrap_err();
    assert_eq!(
        e.field_errors()[0].to_string(),
        "r.default VirtualService: spec.http[0].retries.retryOn: \"sometimes\" is not a valid retryOn condition"
    );
    let l = istio::parse_str(
        &vs("  - match: [{ headers: { \"@request.auth.claims.group\": { exact: a } } }]\n    retries: { attempts: 2, retryOn: \"envoy-ratelimited,503\" }\n    route: [{ destination: { host: a } }]\n"),
        "f",
        "default",
    )
    .unwrap();
    let paths: Vec<&str> = l.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "r.default VirtualService: spec.http[0].match[0].headers.@request.auth.claims.group",
            "r.default VirtualService: spec.http[0].retries.retryOn"
        ]
    );
}
