//! mesh-route by itself: the config comes from Envoy YAML through `mesh_xds::envoy` (its file
//! readers, without gRPC) or from the builders re-exported as `mesh_route::config`; requests
//! are `mesh_route::http` types. Nothing else from the workspace is in scope.

use mesh_route::config::{Route, RouteConfiguration, VirtualHost};
use mesh_route::http::Request;
use mesh_route::{HitAction, RouteTable};

const ROUTES: &str = r#"
name: local
virtual_hosts:
- name: reviews
  domains: ["reviews", "reviews:9080"]
  routes:
  - match:
      prefix: /
      headers: [{ name: end-user, string_match: { exact: jason } }]
    route: { cluster: reviews-v2 }
  - match: { prefix: /api/ }
    route:
      prefix_rewrite: /
      weighted_clusters:
        clusters:
        - { name: reviews-v1, weight: 90 }
        - { name: reviews-v3, weight: 10 }
  - match: { prefix: / }
    route: { cluster: reviews-v1 }
"#;

fn parts(host: &str, path: &str, user: Option<&str>) -> mesh_route::http::request::Parts {
    let mut b = Request::get(path).header("host", host);
    if let Some(u) = user {
        b = b.header("end-user", u);
    }
    b.body(()).unwrap().into_parts().0
}

fn cluster(table: &RouteTable, p: &mesh_route::http::request::Parts, random: u64) -> String {
    let hit = table.find(p, random).expect("a route");
    let HitAction::Forward(fwd) = hit.action() else {
        panic!("not forwarded")
    };
    fwd.cluster(p).to_owned()
}

#[test]
fn a_route_configuration_loads_from_envoy_yaml_and_routes() {
    let loaded = mesh_xds::envoy::parse_route_configuration(ROUTES).expect("valid routes");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let table = RouteTable::compile(&loaded.value).expect("compiles");

    assert_eq!(
        cluster(&table, &parts("reviews", "/x", Some("jason")), 1),
        "reviews-v2"
    );
    assert_eq!(
        cluster(&table, &parts("reviews:9080", "/x", None), 1),
        "reviews-v1"
    );
    // The weighted split follows the random value: 90 of 100 buckets go to v1.
    let v3 = (0..100u64)
        .filter(|r| cluster(&table, &parts("reviews", "/api/r", None), *r) == "reviews-v3")
        .count();
    assert_eq!(v3, 10);
    let p = parts("reviews", "/api/ratings/1", None);
    let hit = table.find(&p, 0).unwrap();
    let HitAction::Forward(fwd) = hit.action() else {
        panic!("not forwarded")
    };
    assert_eq!(fwd.rewritten_path(&p).as_deref(), Some("/ratings/1"));
    // No virtual host for another authority.
    assert!(table.find(&parts("details", "/", None), 0).is_none());
}

#[test]
fn a_mistake_in_the_yaml_is_named_by_its_path() {
    let bad = ROUTES.replace("prefix_rewrite", "prefix_rewrit");
    let err = mesh_xds::envoy::parse_route_configuration(&bad).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("virtual_hosts[0].routes[1].route.prefix_rewrit"),
        "{text}"
    );
}

#[test]
fn the_builders_need_no_other_crate() {
    let cfg = RouteConfiguration::new("local").with_virtual_host(
        VirtualHost::new("web", ["example.com"])
            .with_route(Route::prefix("/api", "api"))
            .with_route(Route::prefix("/", "web")),
    );
    let table = RouteTable::compile(&cfg).unwrap();
    assert_eq!(
        cluster(&table, &parts("example.com", "/api/x", None), 0),
        "api"
    );
    assert_eq!(cluster(&table, &parts("example.com", "/", None), 0), "web");
}
