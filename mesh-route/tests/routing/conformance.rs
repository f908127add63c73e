//! Hand-built equivalents of Envoy router-check configs in
//! `shared/conformance/envoy-router-check/` (TestRoutes, HeaderMatchedRouting, ContentType), with
//! the golden expectations.

use mesh_core::config::*;
use mesh_route::HitAction;

use crate::support::*;

fn rewrite(
    m: RouteMatch,
    cluster: &str,
    prefix_rewrite: Option<&str>,
    host: Option<&str>,
) -> Route {
    let mut a = RouteAction::cluster(cluster);
    a.prefix_rewrite = prefix_rewrite.map(str::to_owned);
    a.host_rewrite = host.map(|h| HostRewrite::Literal(h.to_owned()));
    route_with(m, a)
}

fn ci(mut m: RouteMatch) -> RouteMatch {
    m.case_sensitive = false;
    m
}

fn vcluster(name: &str, path_re: &str, method: &str) -> VirtualCluster {
    VirtualCluster {
        name: name.into(),
        headers: vec![
            regex_header(":path", path_re),
            HeaderMatcher::exact(":method", method),
        ],
    }
}

fn test_routes() -> RouteConfiguration {
    let www2 = VirtualHost::new(
        "www2",
        [
            "lyft.com",
            "www.lyft.com",
            "w.lyft.com",
            "ww.lyft.com",
            "wwww.lyft.com",
        ],
    )
    .with_route(rewrite(
        prefix("/new_endpoint"),
        "www2",
        Some("/api/new_endpoint"),
        None,
    ))
    .with_route({
        let mut r = Route::new(
            prefix("/ping"),
            Action::DirectResponse(DirectResponseAction {
                status: 200,
                body: Some("{ 'message': 'Success!' }".into()),
            }),
        );
        r.headers.response_headers_to_add =
            vec![HeaderValueOption::append("x-ping-response", "yes")];
        r
    })
    .with_route(route(exact_path("/"), "root_www2"))
    .with_route(route(prefix("/"), "www2"));
    let staging = VirtualHost::new(
        "www2_staging",
        ["www-staging.lyft.net", "www-staging-orca.lyft.com"],
    )
    .with_route(route(prefix("/"), "www2_staging"));
    let mut default = VirtualHost::new("default", ["*"])
        .with_route(route(prefix("/api/application_data"), "ats"))
        .with_route(rewrite(
            ci(exact_path("/api/locations")),
            "locations",
            Some("/rewrote"),
            None,
        ))
        .with_route(route(prefix("/api/leads/me"), "ats"))
        .with_route(rewrite(
            prefix("/host/rewrite/me"),
            "ats",
            None,
            Some("new_host"),
        ))
        .with_route(rewrite(
            prefix("/oldhost/rewrite/me"),
            "ats",
            None,
            Some("new_oldhost"),
        ))
        .with_route(rewrite(
            exact_path("/foo"),
            "instant-server",
            Some("/bar"),
            None,
        ))
        .with_route(rewrite(
            ci(exact_path("/tar")),
            "instant-server",
            Some("/car"),
            None,
        ))
        .with_route(rewrite(
            ci(prefix("/newhost/rewrite/me")),
            "ats",
            None,
            Some("new_host"),
        ))
        .with_route(rewrite(
            ci(exact_path("/FOOD")),
            "ats",
            Some("/cAndy"),
            None,
        ))
        .with_route(rewrite(
            exact_path("/ApplEs"),
            "instant-server",
            Some("/oranGES"),
            None,
        ))
        .with_route({
            let mut r = rewrite(prefix("/customheaders"), "ats", None, Some("new_host"));
            r.headers.request_headers_to_add = vec![HeaderValueOption::append(
                "X-Client-IP",
                "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
            )];
            r
        })
        .with_route(route(prefix("/"), "instant-server"));
    default.virtual_clusters = vec![
        vcluster("ride_request", "^/rides$", "POST"),
        vcluster("update_ride", r"^/rides/\d+$", "PUT"),
        vcluster("cc_add", r"^/users/\d+/chargeaccounts$", "POST"),
        vcluster(
            "cc_add",
            r"^/users/\d+/chargeaccounts/[^validate]\w+$",
            "PUT",
        ),
        vcluster("create_user_login", "^/users$", "POST"),
        vcluster("update_user", r"^/users/\d+$", "PUT"),
        vcluster("ulu", r"^/users/\d+/location$", "POST"),
    ];
    let mut cfg = RouteConfiguration::new("test_routes")
        .with_virtual_host(www2)
        .with_virtual_host(staging)
        .with_virtual_host(default);
    cfg.internal_only_headers = vec!["x-lyft-user-id".into()];
    cfg.headers.response_headers_to_add =
        vec![HeaderValueOption::append("x-envoy-upstream-canary", "true")];
    cfg.headers.response_headers_to_remove = vec![
        "x-envoy-upstream-canary".into(),
        "x-envoy-virtual-cluster".into(),
    ];
    cfg
}

/// One router-check test: the fields left `None` are not checked.
#[derive(Default)]
struct Check {
    authority: &'static str,
    path: &'static str,
    method: &'static str,
    cluster: Option<&'static str>,
    vhost: Option<&'static str>,
    vcluster: Option<&'static str>,
    path_rewrite: Option<&'static str>,
    host_rewrite: Option<&'static str>,
}

impl Check {
    fn run(&self, t: &mesh_route::RouteTable) {
        let p = req(self.method, Some(self.authority), self.path, &[]);
        let hit = t.find(&p, 0).expect("a route");
        let label = format!("{} {}{}", self.method, self.authority, self.path);
        if let Some(v) = self.vhost {
            assert_eq!(hit.virtual_host().name(), v, "{label}");
        }
        if let Some(vc) = self.vcluster {
            // router-check prints "other" when no virtual cluster matches.
            let got = hit.virtual_host().virtual_cluster(&p).unwrap_or("other");
            assert_eq!(got, vc, "{label}");
        }
        let HitAction::Forward(f) = hit.action() else {
            panic!("{label}: not forwarded");
        };
        if let Some(c) = self.cluster {
            assert_eq!(f.cluster(&p), c, "{label}");
        }
        if let Some(pr) = self.path_rewrite {
            assert_eq!(
                f.rewritten_path(&p).as_deref().unwrap_or(self.path),
                pr,
                "{label}"
            );
        }
        if let Some(hr) = self.host_rewrite {
            assert_eq!(
                f.host_rewrite(&p).as_deref().unwrap_or(self.authority),
                hr,
                "{label}"
            );
        }
    }
}

#[test]
fn test_routes_golden() {
    let t = table(&test_routes());
    let api = "api.lyft.com";
    let c = |path, cluster| Check {
        authority: api,
        path,
        method: "GET",
        cluster: Some(cluster),
        ..Check::default()
    };
    let rw = |path, want| Check {
        authority: api,
        path,
        method: "GET",
        path_rewrite: Some(want),
        ..Check::default()
    };
    let hr = |path, want| Check {
        authority: api,
        path,
        method: "GET",
        host_rewrite: Some(want),
        ..Check::default()
    };
    let vc = |path, method, want| Check {
        authority: api,
        path,
        method,
        vcluster: Some(want),
        ..Check::default()
    };
    let checks = [
        Check {
            vhost: Some("default"),
            vcluster: Some("other"),
            path_rewrite: Some("/"),
            host_rewrite: Some(api),
            ..c("/", "instant-server")
        },
        c("/api/leads/me", "ats"),
        c("/api/locations?works=true", "locations"),
        c("/api/locations", "locations"),
        Check {
            authority: "lyft.com",
            ..c("/foo", "www2")
        },
        Check {
            authority: "wwww.lyft.com",
            ..c("/", "root_www2")
        },
        Check {
            authority: "www.lyft.com",
            vhost: Some("www2"),
            ..c("/new_endpoint/foo", "www2")
        },
        Check {
            authority: "www.lyft.com",
            ..rw("/new_endpoint/foo", "/api/new_endpoint/foo")
        },
        rw("/api/locations?works=true", "/rewrote?works=true"),
        rw("/foo", "/bar"),
        hr("/host/rewrite/me", "new_host"),
        rw("/API/locations?works=true", "/rewrote?works=true"),
        rw("/fooD", "/cAndy"),
        rw("/FOO", "/FOO"),
        rw("/ApPles", "/ApPles"),
        hr("/oLDhost/rewrite/me", api),
        rw("/Tart", "/Tart"),
        hr("/newhost/rewrite/me", "new_host"),
        vc("/rides", "GET", "other"),
        vc("/rides/blah", "POST", "other"),
        vc("/rides", "POST", "ride_request"),
        vc("/rides/123", "PUT", "update_ride"),
        vc("/users/123/chargeaccounts", "POST", "cc_add"),
        vc("/users/123/chargeaccounts/hello123", "PUT", "cc_add"),
        vc("/users/123/chargeaccounts/validate", "PUT", "other"),
        vc("/foo/bar", "PUT", "other"),
        vc("/users", "POST", "create_user_login"),
        vc("/users/123", "PUT", "update_user"),
        vc("/users/123/location", "POST", "ulu"),
        vc("/something/else", "GET", "other"),
    ];
    for check in &checks {
        check.run(&t);
    }

    // ResponseHeaderMatches: the direct response carries the route's response header; the
    // config level removes then re-adds the canary header.
    let p = get("www.lyft.com", "/ping");
    let hit = t.find(&p, 0).unwrap();
    assert!(matches!(hit.action(), HitAction::DirectResponse(s, Some(_)) if s == 200));
    let mut resp = http::HeaderMap::new();
    resp.insert(
        "x-envoy-upstream-canary",
        http::HeaderValue::from_static("false"),
    );
    hit.apply_response_headers(&mut resp);
    assert_eq!(values(&resp, "x-ping-response"), ["yes"]);
    assert!(resp.get("x-pong-response").is_none());
    assert_eq!(values(&resp, "x-envoy-upstream-canary"), ["true"]);
    assert_eq!(t.internal_only_headers(), ["x-lyft-user-id"]);

    // `%OPERATOR%` values render from the request's connection; without one they are empty
    // and the header is not added.
    let p = get(api, "/customheaders");
    let hit = t.find(&p, 0).unwrap();
    let mut h = http::HeaderMap::new();
    hit.apply_request_headers(&mut h);
    assert!(h.get("x-client-ip").is_none());
    let info = mesh_route::RequestInfo {
        downstream_remote: Some("127.0.0.1:5555".parse().unwrap()),
        ..Default::default()
    };
    hit.apply_request_headers_with(&mut h, &info);
    assert_eq!(values(&h, "x-client-ip"), ["127.0.0.1"]);
}

#[test]
fn header_matched_routing_golden() {
    let with = |headers: Vec<HeaderMatcher>, grpc: bool, cluster: &str| {
        let mut m = prefix("/");
        m.headers = headers;
        m.grpc = grpc;
        route(m, cluster)
    };
    let t = table(&one_vhost(vec![
        with(
            vec![HeaderMatcher::exact("test_header", "test")],
            false,
            "local_service_with_headers",
        ),
        with(
            vec![
                HeaderMatcher::exact("test_header_multiple1", "test1"),
                HeaderMatcher::exact("test_header_multiple2", "test2"),
            ],
            false,
            "local_service_with_multiple_headers",
        ),
        with(
            vec![HeaderMatcher::present("test_header_presence")],
            false,
            "local_service_with_empty_headers",
        ),
        with(
            vec![regex_header("test_header_pattern", r"^user=test-\d+$")],
            false,
            "local_service_with_header_pattern_set_regex",
        ),
        with(
            vec![HeaderMatcher::exact(
                "test_header_pattern",
                r"^customer=test-\d+$",
            )],
            false,
            "local_service_with_header_pattern_unset_regex",
        ),
        with(
            vec![HeaderMatcher::exact("test_header", "some_value")],
            true,
            "local_service_with_grpc_and_other_header",
        ),
        with(vec![], true, "local_service_with_grpc"),
        with(vec![], false, "local_service_without_headers"),
    ]));
    let grpc = ("content-type", "application/grpc+proto");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "local_service_without_headers"),
        (&[("test_header", "test")], "local_service_with_headers"),
        (
            &[
                ("test_header_multiple1", "test1"),
                ("test_header_multiple2", "test2"),
            ],
            "local_service_with_multiple_headers",
        ),
        (
            &[("non_existent_header", "foo")],
            "local_service_without_headers",
        ),
        (
            &[("test_header_presence", "test")],
            "local_service_with_empty_headers",
        ),
        (
            &[("test_header_pattern", "user=test-1223")],
            "local_service_with_header_pattern_set_regex",
        ),
        (
            &[("test_header_pattern", "customer=test-1223")],
            "local_service_without_headers",
        ),
        (&[grpc], "local_service_with_grpc"),
        (
            &[grpc, ("test_header", "some_value")],
            "local_service_with_grpc_and_other_header",
        ),
    ];
    for (headers, want) in cases {
        let p = get_with("www.lyft.com", "/", headers);
        assert_eq!(outcome(&t, &p, 0), cluster(want), "{headers:?}");
    }
}

#[test]
fn content_type_golden() {
    let mut m = prefix("/");
    m.headers = vec![HeaderMatcher::exact("content-type", "application/grpc")];
    let t = table(&one_vhost(vec![
        route(m, "local_service_grpc"),
        route(prefix("/"), "local_service"),
    ]));
    for (ct, want) in [
        (None, "local_service"),
        (Some("application/grpc"), "local_service_grpc"),
        (Some("foo"), "local_service"),
    ] {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
        assert_eq!(
            outcome(&t, &get_with("www.lyft.com", "/", &headers), 0),
            cluster(want)
        );
    }
}
