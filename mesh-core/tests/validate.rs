//! Every validation rule reports its problem with the path of the field at fault, and all
//! problems are reported at once.

use mesh_core::config::*;

fn listener(routes: RouteConfiguration) -> Listener {
    Listener::http(
        "http",
        "127.0.0.1:8080".parse().unwrap(),
        HttpConnectionManager::with_routes(routes),
    )
}

fn errors(b: &Bootstrap) -> Vec<(String, String)> {
    b.validate()
        .unwrap_err()
        .errors
        .into_iter()
        .map(|e| (e.path, e.message))
        .collect()
}

fn has(errs: &[(String, String)], path: &str, needle: &str) -> bool {
    errs.iter().any(|(p, m)| p == path && m.contains(needle))
}

const RC: &str = "listeners[0].filter_chains[0].filters[0].typed_config.route_config";

#[test]
fn a_valid_config_passes() {
    let routes = RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "web")));
    let b = Bootstrap::default()
        .with_listener(listener(routes))
        .with_cluster(Cluster::new_static(
            "web",
            ["127.0.0.1:9000".parse().unwrap()],
        ));
    b.validate().unwrap();
}

#[test]
fn unknown_cluster_referenced_by_a_route() {
    let routes = RouteConfiguration::new("r").with_virtual_host(
        VirtualHost::new("all", ["*"])
            .with_route(Route::prefix("/", "web"))
            .with_route(Route::path("/x", "nope")),
    );
    let b = Bootstrap::default()
        .with_listener(listener(routes))
        .with_cluster(Cluster::new_static(
            "web",
            ["127.0.0.1:9000".parse().unwrap()],
        ));
    let e = errors(&b);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        has(
            &e,
            &format!("{RC}.virtual_hosts[0].routes[1].route.cluster"),
            "unknown cluster \"nope\""
        ),
        "{e:?}"
    );
}

#[test]
fn rds_route_configs_do_not_validate_clusters_by_default() {
    let hcm = HttpConnectionManager {
        route: RouteSource::Rds("dyn".into()),
        ..HttpConnectionManager::default()
    };
    let mut b = Bootstrap::default().with_listener(Listener::http(
        "l",
        "127.0.0.1:1".parse().unwrap(),
        hcm,
    ));
    b.route_configs.push(
        RouteConfiguration::new("dyn").with_virtual_host(
            VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "later")),
        ),
    );
    b.validate().unwrap();
}

#[test]
fn duplicate_names_and_domains() {
    let routes = RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("a", ["*", "Foo.com"]))
        .with_virtual_host(VirtualHost::new("a", ["*", "foo.com"]));
    let c = || Cluster::new_static("web", ["127.0.0.1:9000".parse().unwrap()]);
    let b = Bootstrap::default()
        .with_listener(listener(routes.clone()))
        .with_listener(listener(routes))
        .with_cluster(c())
        .with_cluster(c());
    let e = errors(&b);
    assert!(
        has(&e, "listeners[1].name", "duplicate listener name"),
        "{e:?}"
    );
    assert!(
        has(&e, "listeners[1].address", "already used by listeners[0]"),
        "{e:?}"
    );
    assert!(
        has(&e, "clusters[1].name", "duplicate cluster name \"web\""),
        "{e:?}"
    );
    assert!(
        has(
            &e,
            &format!("{RC}.virtual_hosts[1].name"),
            "duplicate virtual host name"
        ),
        "{e:?}"
    );
    assert!(
        has(
            &e,
            &format!("{RC}.virtual_hosts[1].domains[0]"),
            "only a single wildcard"
        ),
        "{e:?}"
    );
    assert!(
        has(
            &e,
            &format!("{RC}.virtual_hosts[1].domains[1]"),
            "duplicate domain"
        ),
        "{e:?}"
    );
}

#[test]
fn zero_weight_totals() {
    let wc = WeightedClusters {
        clusters: vec![
            ClusterWeight {
                name: "web".into(),
                weight: 0,
                ..ClusterWeight::default()
            },
            ClusterWeight {
                name: "web".into(),
                weight: 0,
                ..ClusterWeight::default()
            },
        ],
        ..WeightedClusters::default()
    };
    let route = Route::new(
        RouteMatch::new(PathMatch::Prefix("/".into())),
        Action::Route(RouteAction::new(ClusterSpecifier::WeightedClusters(wc))),
    );
    let routes = RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(route));
    let b = Bootstrap::default()
        .with_listener(listener(routes))
        .with_cluster(Cluster::new_static(
            "web",
            ["127.0.0.1:9000".parse().unwrap()],
        ));
    let e = errors(&b);
    assert!(
        has(
            &e,
            &format!("{RC}.virtual_hosts[0].routes[0].route.weighted_clusters.clusters"),
            "sum of weights must be greater than 0"
        ),
        "{e:?}"
    );
}

#[test]
fn bad_addresses() {
    let mut c = Cluster::new_static(
        "web",
        [
            "127.0.0.1:9000".parse().unwrap(),
            "127.0.0.1:9001".parse().unwrap(),
        ],
    );
    let la = c.load_assignment.as_mut().unwrap();
    la.endpoints[0].lb_endpoints[0].address.host = "backend.local".into();
    la.endpoints[0].lb_endpoints[1].address.port = 0;
    let mut dns = Cluster::new_static("dns", []);
    dns.discovery_type = DiscoveryType::StrictDns;
    dns.load_assignment.as_mut().unwrap().endpoints[0]
        .lb_endpoints
        .push(LbEndpoint::new(Address {
            host: "bad host!".into(),
            port: 80,
        }));
    let mut none = Cluster::new_static("none", []);
    none.load_assignment = None;
    let b = Bootstrap::default()
        .with_cluster(c)
        .with_cluster(dns)
        .with_cluster(none);
    let e = errors(&b);
    let ep = "clusters[0].load_assignment.endpoints[0].lb_endpoints";
    assert!(
        has(
            &e,
            &format!("{ep}[0].endpoint.address.socket_address.address"),
            "not an IP address"
        ),
        "{e:?}"
    );
    assert!(
        has(
            &e,
            &format!("{ep}[1].endpoint.address.socket_address.port_value"),
            "port must not be 0"
        ),
        "{e:?}"
    );
    assert!(
        has(
            &e,
            "clusters[1].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address",
            "not a valid host name"
        ),
        "{e:?}"
    );
    assert!(
        has(&e, "clusters[2].load_assignment", "need a load_assignment"),
        "{e:?}"
    );
}

#[test]
fn route_level_rules() {
    let mut direct = Route::new(
        RouteMatch::new(PathMatch::PathSeparatedPrefix("/api/".into())),
        Action::DirectResponse(DirectResponseAction {
            status: 99,
            body: Some("x".repeat(5000)),
        }),
    );
    direct.route_match.headers.push(HeaderMatcher::new(
        "x",
        HeaderMatchSpec::Range { start: 5, end: 5 },
    ));
    let routes = RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(direct));
    let b = Bootstrap::default().with_listener(listener(routes));
    let e = errors(&b);
    let r = format!("{RC}.virtual_hosts[0].routes[0]");
    assert!(
        has(
            &e,
            &format!("{r}.match.path_separated_prefix"),
            "must not end with '/'"
        ),
        "{e:?}"
    );
    assert!(
        has(
            &e,
            &format!("{r}.match.headers[0].range_match"),
            "start 5 must be below end 5"
        ),
        "{e:?}"
    );
    assert!(
        has(
            &e,
            &format!("{r}.direct_response.status"),
            "outside [200, 600)"
        ),
        "{e:?}"
    );
    assert!(
        has(
            &e,
            &format!("{r}.direct_response.body"),
            "exceeds max_direct_response_body_size_bytes"
        ),
        "{e:?}"
    );
}

#[test]
fn router_must_be_last_and_listeners_need_chains() {
    let hcm = HttpConnectionManager {
        http_filters: vec![
            HttpFilterConfig::new(ROUTER_FILTER, serde_json::Value::Null),
            HttpFilterConfig::new("acme.after", serde_json::Value::Null),
        ],
        ..HttpConnectionManager::default()
    };
    let mut l = Listener::http("l", "127.0.0.1:1".parse().unwrap(), hcm);
    let empty = Listener::new("e", "127.0.0.1:2".parse().unwrap(), vec![]);
    l.filter_chains[0].hcm_mut().unwrap().max_request_headers_kb = 0;
    let b = Bootstrap::default().with_listener(l).with_listener(empty);
    let e = errors(&b);
    let h = "listeners[0].filter_chains[0].filters[0].typed_config";
    assert!(
        has(
            &e,
            &format!("{h}.http_filters[0]"),
            "router filter must be the last"
        ),
        "{e:?}"
    );
    assert!(
        has(
            &e,
            &format!("{h}.max_request_headers_kb"),
            "must be in 1..=8192"
        ),
        "{e:?}"
    );
    assert!(
        has(
            &e,
            "listeners[1].filter_chains",
            "at least one filter chain"
        ),
        "{e:?}"
    );
}

#[test]
fn config_round_trips_through_serde() {
    let routes = RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "web")));
    let b = Bootstrap::default()
        .with_listener(listener(routes))
        .with_cluster(Cluster::new_static(
            "web",
            ["127.0.0.1:9000".parse().unwrap()],
        ));
    let json = serde_json::to_string(&b).unwrap();
    let back: Bootstrap = serde_json::from_str(&json).unwrap();
    assert_eq!(back, b);
    assert!(json.contains("\"stream_idle_timeout\":\"300s\""), "{json}");
}
