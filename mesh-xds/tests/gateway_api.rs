//! The Gateway API reader and its translation: errors that name the field, the API's match
//! precedence in the routes made, Istio and Gateway API resources side by side, and the mesh
//! (GAMMA) routes of a sidecar. Requests through these configs are the conformance suite's
//! business (mesh-proxy/tests/gateway_api.rs); here the config itself is checked.

use mesh_core::config::{Action, Bootstrap, NetworkFilter, PathMatch, Route, RouteSource};
use mesh_xds::istio::{self, Options, gateway_api};

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: shop, namespace: infra }
spec: { ports: [{ name: http, port: 8080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: cart, namespace: infra }
spec: { ports: [{ name: http, port: 8080 }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: web, namespace: infra }
spec:
  gatewayClassName: mesh
  listeners: [{ name: http, port: 80, protocol: HTTP }]
"#;

fn gateway() -> Options {
    Options::gateway([(gateway_api::GATEWAY_NAME_LABEL, "web")])
        .namespace("infra")
        .map_port(80, 18080)
}

fn routes(b: &Bootstrap, host: &str) -> Vec<Route> {
    for l in &b.listeners {
        for fc in l.chains() {
            if let NetworkFilter::HttpConnectionManager(h) = &fc.filter
                && let RouteSource::RouteConfig(rc) = &h.route
                && let Some(vh) = rc
                    .virtual_hosts
                    .iter()
                    .find(|v| v.name == host || v.domains.iter().any(|d| d == host))
            {
                return vh.routes.clone();
            }
        }
    }
    panic!("no virtual host {host}");
}

fn cluster_of(r: &Route) -> String {
    match &r.action {
        Action::Route(a) => format!("{:?}", a.cluster),
        other => format!("{other:?}"),
    }
}

#[test]
fn bad_values_are_errors_naming_the_field() {
    let yaml = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: shop, namespace: infra }
spec:
  parentRefs: [{ name: web }]
  rules:
  - matches: [{ path: { type: RegularExpression, value: "(" } }]
    filters:
    - type: RequestRedirect
      requestRedirect: { statusCode: 399 }
    backendRefs: [{ name: shop }]
"#;
    let err = istio::parse_str(yaml, "bad.yaml", "default")
        .unwrap_err()
        .to_string();
    for field in [
        "shop.infra HTTPRoute: spec.rules[0].matches[0].path.value",
        "shop.infra HTTPRoute: spec.rules[0].filters[0].requestRedirect.statusCode",
        "shop.infra HTTPRoute: spec.rules[0].backendRefs[0].port",
    ] {
        assert!(err.contains(field), "{field} missing from:\n{err}");
    }
}

#[test]
fn security_a_listener_cannot_honour_and_invalid_filter_sets_are_errors() {
    let yaml = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: web, namespace: infra }
spec:
  gatewayClassName: mesh
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    tls:
      certificateRefs: [{ name: cert }]
      frontendValidation: { caCertificateRefs: [{ kind: ConfigMap, name: ca }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: shop, namespace: infra }
spec:
  parentRefs: [{ name: web }]
  rules:
  - matches: [{ path: { type: Exact, value: /a } }]
    filters:
    - type: URLRewrite
      urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /b } }
    - type: RequestRedirect
      requestRedirect: { hostname: example.com }
    backendRefs: [{ name: shop, port: 80 }]
"#;
    let err = istio::parse_str(yaml, "bad.yaml", "default")
        .unwrap_err()
        .to_string();
    for (field, why) in [
        (
            "web.infra Gateway: spec.listeners[0].tls.frontendValidation",
            "would accept any client",
        ),
        ("shop.infra HTTPRoute: spec.rules[0].filters", "PathPrefix"),
        (
            "shop.infra HTTPRoute: spec.rules[0].filters",
            "cannot be used together",
        ),
    ] {
        assert!(
            err.lines().any(|l| l.contains(field) && l.contains(why)),
            "{field}: {why} missing from:\n{err}"
        );
    }
}

#[test]
fn matches_follow_the_api_precedence_across_routes() {
    // File order: a prefix route, then (older by timestamp) a route with a header match, then
    // an exact path; the API orders exact, longest prefix, then header count, then age.
    let yaml = format!(
        "{SERVICES}{}",
        r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: b-prefix, namespace: infra, creationTimestamp: "2026-01-02T00:00:00Z" }
spec:
  parentRefs: [{ name: web }]
  rules:
  - matches: [{ path: { type: PathPrefix, value: /shop } }]
    backendRefs: [{ name: shop, port: 8080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: a-header, namespace: infra, creationTimestamp: "2026-01-01T00:00:00Z" }
spec:
  parentRefs: [{ name: web }]
  rules:
  - matches: [{ path: { type: PathPrefix, value: /shop }, headers: [{ name: Version, value: two }] }]
    backendRefs: [{ name: cart, port: 8080 }]
  - matches: [{ path: { type: PathPrefix, value: /shop/ } }]
    backendRefs: [{ name: cart, port: 8080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: c-exact, namespace: infra }
spec:
  parentRefs: [{ name: web }]
  rules:
  - matches: [{ path: { type: Exact, value: /shop/list } }]
    backendRefs: [{ name: cart, port: 8080 }]
"#
    );
    let res = istio::parse_str(&yaml, "routes.yaml", "default")
        .unwrap()
        .value;
    let b = istio::translate(&res, &gateway()).unwrap().value;
    let rs = routes(&b, "*");
    let names: Vec<&str> = rs.iter().map(|r| r.name.as_str()).collect();
    // The header match and the `/shop/` prefix (the same segment prefix as `/shop`, a header
    // more) of a-header come before b-prefix's `/shop`; rule order breaks the tie of equal
    // prefixes within a-header.
    assert_eq!(
        names,
        [
            "infra.c-exact.0",
            "infra.a-header.0",
            "infra.a-header.1",
            "infra.b-prefix.0"
        ]
    );
    assert_eq!(rs[0].route_match.path, PathMatch::Path("/shop/list".into()));
    assert_eq!(
        rs[3].route_match.path,
        PathMatch::PathSeparatedPrefix("/shop".into())
    );
}

#[test]
fn istio_and_gateway_api_resources_mix_in_one_directory() {
    let yaml = format!(
        "{SERVICES}{}",
        r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: shop, namespace: infra }
spec:
  parentRefs: [{ name: web }]
  hostnames: [shop.example.com]
  rules: [{ backendRefs: [{ name: shop, port: 8080 }] }]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: legacy, namespace: infra }
spec:
  selector: { gateway.networking.k8s.io/gateway-name: web }
  servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: [legacy.example.com] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: legacy, namespace: infra }
spec:
  hosts: [legacy.example.com]
  gateways: [legacy]
  http: [{ route: [{ destination: { host: cart, port: { number: 8080 } } }] }]
"#
    );
    let res = istio::parse_str(&yaml, "mixed.yaml", "default")
        .unwrap()
        .value;
    let b = istio::translate(&res, &gateway()).unwrap().value;
    assert!(cluster_of(&routes(&b, "shop.example.com")[0]).contains("shop.infra"));
    assert!(cluster_of(&routes(&b, "legacy.example.com")[0]).contains("cart.infra"));
}

#[test]
fn a_gateway_of_another_namespace_is_not_served() {
    let res = istio::parse_str(SERVICES, "s.yaml", "default")
        .unwrap()
        .value;
    let opts = Options::gateway([(gateway_api::GATEWAY_NAME_LABEL, "web")]).namespace("other");
    let b = istio::translate(&res, &opts).unwrap();
    assert!(b.value.listeners.is_empty());
}

#[test]
fn an_unsupported_filter_answers_500_and_is_reported() {
    let yaml = format!(
        "{SERVICES}{}",
        r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: shop, namespace: infra }
spec:
  parentRefs: [{ name: web }]
  rules:
  - filters: [{ type: ExtensionRef, extensionRef: { group: x, kind: Y, name: z } }]
    backendRefs: [{ name: shop, port: 8080 }]
"#
    );
    let loaded = istio::parse_str(&yaml, "f.yaml", "default").unwrap();
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.path.contains("spec.rules[0].filters[0].type")),
        "{:?}",
        loaded.warnings
    );
    let b = istio::translate(&loaded.value, &gateway()).unwrap().value;
    match &routes(&b, "*")[0].action {
        Action::DirectResponse(d) => assert_eq!(d.status, 500),
        other => panic!("expected a 500, got {other:?}"),
    }
}

#[test]
fn mesh_routes_are_the_consumers_own_else_the_producers() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: mesh }
spec: { ports: [{ name: http, port: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: echo-v2, namespace: mesh }
spec: { ports: [{ name: http, port: 80 }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: producer, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules: [{ backendRefs: [{ name: echo-v2, port: 80 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: consumer, namespace: client }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, namespace: mesh }]
  rules: [{ backendRefs: [{ name: echo, namespace: mesh, port: 80 }] }]
"#;
    let res = istio::parse_str(yaml, "mesh.yaml", "default")
        .unwrap()
        .value;
    let host = "echo.mesh.svc.cluster.local:80";
    let from = |ns: &str| {
        let b = istio::translate(&res, &Options::sidecar(15001).namespace(ns))
            .unwrap()
            .value;
        cluster_of(&routes(&b, host)[0])
    };
    assert!(from("mesh").contains("echo-v2.mesh"), "{}", from("mesh"));
    assert!(from("elsewhere").contains("echo-v2.mesh"));
    // The consumer route sends to echo itself, with no ReferenceGrant: it is the parent.
    assert!(from("client").contains("||echo.mesh"), "{}", from("client"));
    let status = gateway_api::status(&res, &Options::sidecar(15001));
    let consumer = status.iter().find(|s| s.name == "consumer").unwrap();
    assert!(
        consumer
            .condition("mesh/echo", "ResolvedRefs")
            .unwrap()
            .status
    );
}

#[test]
fn mesh_pilot_serves_a_kubernetes_gateway_to_the_node_its_labels_name() {
    use mesh_core::config::Node;
    use mesh_xds::xds::pilot::{self, NodeView};
    use mesh_xds::xds::resource::ResourceType;
    let yaml = format!(
        "{SERVICES}{}",
        r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: shop, namespace: infra }
spec:
  parentRefs: [{ name: web }]
  rules: [{ backendRefs: [{ name: shop, port: 8080 }] }]
"#
    );
    let res = istio::parse_str(&yaml, "pilot.yaml", "default")
        .unwrap()
        .value;
    let mut node = Node {
        id: "router~10.0.0.9~web-7d.infra~infra.svc.cluster.local".into(),
        ..Node::default()
    };
    node.metadata.insert(
        "LABELS".into(),
        serde_json::json!({ gateway_api::GATEWAY_NAME_LABEL: "web" }),
    );
    node.metadata
        .insert("MESH_PORT_MAP".into(), "80=18080".into());
    let (snapshot, _) = pilot::view(&res, &NodeView::of(&node)).unwrap();
    let listeners: Vec<&str> = snapshot.names(ResourceType::Listener).collect();
    assert_eq!(listeners, ["127.0.0.1_18080"]);
    let clusters: Vec<&str> = snapshot.names(ResourceType::Cluster).collect();
    assert!(
        clusters.contains(&"outbound|8080||shop.infra.svc.cluster.local"),
        "{clusters:?}"
    );
    // Another gateway's pod gets none of it.
    node.metadata.insert(
        "LABELS".into(),
        serde_json::json!({ gateway_api::GATEWAY_NAME_LABEL: "other" }),
    );
    let (snapshot, _) = pilot::view(&res, &NodeView::of(&node)).unwrap();
    assert_eq!(snapshot.names(ResourceType::Listener).count(), 0);
}
