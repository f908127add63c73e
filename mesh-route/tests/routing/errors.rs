//! Build errors name the field at fault; nothing panics on odd configs or requests.

use mesh_core::config::*;
use mesh_route::{BuildError, RouteTable};

use crate::support::*;

fn err(cfg: &RouteConfiguration) -> BuildError {
    RouteTable::compile(cfg).expect_err("config should be rejected")
}

/// A config whose second vhost has `routes` after one valid route.
fn in_route(r: Route) -> RouteConfiguration {
    let mut vh = VirtualHost::new("second", ["b.com"]).with_route(Route::prefix("/ok", "c"));
    vh.routes.push(r);
    RouteConfiguration::new("rc")
        .with_virtual_host(VirtualHost::new("first", ["a.com"]).with_route(Route::prefix("/", "c")))
        .with_virtual_host(vh)
}

#[test]
fn fields_are_named() {
    let regex_path = |re: &str| route(RouteMatch::new(PathMatch::SafeRegex(re.into())), "c");
    let mut rewrite = RouteAction::cluster("c");
    rewrite.regex_rewrite = Some(RegexRewrite {
        pattern: "(?!x)".into(),
        substitution: String::new(),
    });
    let mut bad_subst = RouteAction::cluster("c");
    bad_subst.regex_rewrite = Some(RegexRewrite {
        pattern: "(a)".into(),
        substitution: r"\2".into(),
    });
    let mut query = prefix("/");
    query.query_parameters = vec![QueryParameterMatcher {
        name: "q".into(),
        string_match: Some(string_match(StringPattern::SafeRegex("(".into()))),
    }];
    let mut both = RouteAction::cluster("c");
    both.prefix_rewrite = Some("/x".into());
    both.regex_rewrite = Some(RegexRewrite {
        pattern: "a".into(),
        substitution: "b".into(),
    });
    let mut template_prefix = RouteAction::cluster("c");
    template_prefix.prefix_rewrite = Some("/x".into());
    let mut bad_code = RouteAction::cluster("c");
    bad_code.cluster_not_found_response_code = 42;

    let cases: Vec<(RouteConfiguration, &str)> = vec![
        (
            in_route(regex_path("a(?=b)")),
            "virtual_hosts[1].routes[1].match.safe_regex",
        ),
        (
            in_route(regex_path(r"(a)\1")),
            "virtual_hosts[1].routes[1].match.safe_regex",
        ),
        (
            in_route(route(
                prefix("/").tap(|m| m.headers.push(regex_header("x", "["))),
                "c",
            )),
            "virtual_hosts[1].routes[1].match.headers[0].string_match.safe_regex",
        ),
        (
            in_route(route(query, "c")),
            "virtual_hosts[1].routes[1].match.query_parameters[0].string_match.safe_regex",
        ),
        (
            in_route(route_with(prefix("/"), rewrite)),
            "virtual_hosts[1].routes[1].route.regex_rewrite.pattern",
        ),
        (
            in_route(route_with(prefix("/"), bad_subst)),
            "virtual_hosts[1].routes[1].route.regex_rewrite.substitution",
        ),
        (
            in_route(route_with(prefix("/"), both)),
            "virtual_hosts[1].routes[1].route",
        ),
        (
            in_route(route_with(
                RouteMatch::new(PathMatch::PathTemplate("/{x}".into())),
                template_prefix,
            )),
            "virtual_hosts[1].routes[1].route.prefix_rewrite",
        ),
        (
            in_route(route(
                RouteMatch::new(PathMatch::PathTemplate("/**/*".into())),
                "c",
            )),
            "virtual_hosts[1].routes[1].match.path_match_policy.path_template",
        ),
        (
            in_route(route_with(
                prefix("/"),
                RouteAction::new(ClusterSpecifier::WeightedClusters(WeightedClusters {
                    clusters: vec![ClusterWeight {
                        name: "a".into(),
                        weight: 0,
                        ..ClusterWeight::default()
                    }],
                    ..WeightedClusters::default()
                })),
            )),
            "virtual_hosts[1].routes[1].route.weighted_clusters",
        ),
        (
            in_route(route_with(prefix("/"), bad_code)),
            "virtual_hosts[1].routes[1].route.cluster_not_found_response_code",
        ),
        (
            in_route(Route::new(
                prefix("/"),
                Action::DirectResponse(DirectResponseAction {
                    status: 600,
                    body: None,
                }),
            )),
            "virtual_hosts[1].routes[1].direct_response.status",
        ),
        (
            in_route(Route::new(
                prefix("/"),
                Action::DirectResponse(DirectResponseAction {
                    status: 200,
                    body: Some("x".repeat(4097)),
                }),
            )),
            "virtual_hosts[1].routes[1].direct_response.body",
        ),
        (
            in_route(Route::prefix("/", "c").tap_route(|r| {
                r.headers.response_headers_to_add = vec![HeaderValueOption::set(":status", "1")];
            })),
            "virtual_hosts[1].routes[1].response_headers_to_add[0]",
        ),
        (
            RouteConfiguration::new("rc")
                .with_virtual_host(VirtualHost::new("a", ["x.com", "*"]))
                .with_virtual_host(VirtualHost::new("b", ["X.com"])),
            "virtual_hosts[1].domains[0]",
        ),
        (
            RouteConfiguration::new("rc")
                .with_virtual_host(VirtualHost::new("a", ["*"]))
                .with_virtual_host(VirtualHost::new("b", ["y.com", "*"])),
            "virtual_hosts[1].domains[1]",
        ),
        (
            {
                let mut vh = VirtualHost::new("a", ["*"]);
                vh.virtual_clusters = vec![VirtualCluster {
                    name: "vc".into(),
                    headers: vec![regex_header(":path", "(")],
                }];
                RouteConfiguration::new("rc").with_virtual_host(vh)
            },
            "virtual_hosts[0].virtual_clusters[0].headers[0].string_match.safe_regex",
        ),
        (
            {
                let mut cfg = one_vhost(vec![]);
                cfg.headers.request_headers_to_remove = vec!["host".into()];
                cfg
            },
            "route_config.request_headers_to_remove[0]",
        ),
    ];
    for (cfg, field) in cases {
        let e = err(&cfg);
        assert_eq!(e.field(), field, "{e}");
        assert!(e.to_string().contains(field), "{e}");
    }
}

#[test]
fn error_kinds() {
    let regex = err(&in_route(route(
        RouteMatch::new(PathMatch::SafeRegex("(?<=a)b".into())),
        "c",
    )));
    assert!(matches!(regex, BuildError::InvalidRegex { .. }), "{regex}");
    let dup = err(&RouteConfiguration::new("rc")
        .with_virtual_host(VirtualHost::new("a", ["*.x.com"]))
        .with_virtual_host(VirtualHost::new("b", ["*.X.com"])));
    assert!(matches!(dup, BuildError::DuplicateDomain { .. }), "{dup}");
}

trait Tap: Sized {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
    fn tap_route(self, f: impl FnOnce(&mut Self)) -> Self {
        self.tap(f)
    }
}

impl Tap for RouteMatch {}
impl Tap for Route {}

/// Odd but valid configs and odd requests: lookups never panic.
#[test]
fn no_panics() {
    let nasty_paths = [
        "/",
        "*",
        "/%",
        "/;",
        "/?",
        "/#",
        "/a?b=%zz&&=&c",
        "/é",
        "/a/../b",
        "//",
        "/a;b;c?d#e",
    ];
    let mut routes = vec![];
    for (i, p) in ["", "/", "/é", "/a;", "%"].iter().enumerate() {
        let mut a = RouteAction::cluster("c");
        a.prefix_rewrite = Some(format!("/r{i}"));
        let mut m = prefix(p);
        m.case_sensitive = i % 2 == 0;
        m.headers = vec![
            HeaderMatcher::new(
                "x-r",
                HeaderMatchSpec::Range {
                    start: i64::MIN,
                    end: i64::MAX,
                },
            ),
            HeaderMatcher {
                invert_match: true,
                treat_missing_header_as_empty: true,
                ..regex_header(":path", ".*é.*")
            },
        ];
        routes.push(route_with(m, a));
    }
    let mut redirect = RedirectAction {
        path_redirect: Some(PathRedirect::Prefix(String::new())),
        ..RedirectAction::default()
    };
    redirect.port_redirect = Some(u16::MAX);
    routes.push(Route::new(prefix("/"), Action::Redirect(redirect)));
    let mut cfg = one_vhost(routes);
    cfg.ignore_path_parameters_in_path_matching = true;
    cfg.ignore_port_in_host_matching = true;
    let t = table(&cfg);
    for path in nasty_paths {
        for host in ["", ":", "[", "[::1", "]:1", "a:b:c", "é"] {
            for headers in [
                &[][..],
                &[("x-r", "1"), ("x-r", "2")][..],
                &[("x-r", "")][..],
            ] {
                let Ok(uri) = path.parse::<http::Uri>() else {
                    continue;
                };
                let mut b = http::Request::builder().uri(uri);
                if let Ok(v) = http::HeaderValue::from_str(host) {
                    b = b.header("host", v);
                }
                for (k, v) in headers {
                    b = b.header(*k, *v);
                }
                let p = b.body(()).unwrap().into_parts().0;
                for random in [0, 1, u64::MAX] {
                    if let Some(hit) = t.find(&p, random) {
                        let mut h = http::HeaderMap::new();
                        hit.apply_request_headers(&mut h);
                        hit.apply_response_headers(&mut h);
                        if let mesh_route::HitAction::Forward(f) = hit.action() {
                            let _ = (f.rewritten_path(&p), f.host_rewrite(&p));
                        }
                    }
                }
            }
        }
    }
}
