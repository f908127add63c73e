//! Route matching (SEMANTICS §2): path specifiers, headers, query parameters, runtime fraction,
//! gRPC, TLS context, ordering.

use mesh_core::config::*;
use mesh_route::DownstreamTls;

use crate::support::*;

struct PathCase {
    spec: PathMatch,
    case_sensitive: bool,
    path: &'static str,
    matches: bool,
}

impl PathCase {
    fn run(&self, ignore_params: bool) {
        let mut m = RouteMatch::new(self.spec.clone());
        m.case_sensitive = self.case_sensitive;
        let mut cfg = one_vhost(vec![route(m, "hit")]);
        cfg.ignore_path_parameters_in_path_matching = ignore_params;
        let t = table(&cfg);
        let got = outcome(&t, &get("h", self.path), 0) == cluster("hit");
        assert_eq!(
            got, self.matches,
            "{:?} cs={} params={ignore_params} on {:?}",
            self.spec, self.case_sensitive, self.path
        );
    }
}

fn pc(spec: PathMatch, case_sensitive: bool, path: &'static str, matches: bool) -> PathCase {
    PathCase {
        spec,
        case_sensitive,
        path,
        matches,
    }
}

#[test]
fn path_specifiers_ignore_query_and_fragment() {
    use PathMatch::*;
    for c in [
        pc(Prefix("/api".into()), true, "/api/x?y=1", true),
        pc(Prefix("/api?".into()), true, "/api?x", false),
        pc(Prefix("/API".into()), false, "/api/x", true),
        pc(Path("/api".into()), true, "/api?x=1", true),
        pc(Path("/api".into()), true, "/api/", false),
        pc(Path("/Api".into()), false, "/aPI?x", true),
        pc(SafeRegex("/api/[0-9]+".into()), true, "/api/12?q=x", true),
        pc(SafeRegex("/api/[0-9]+".into()), true, "/api/12/x", false),
        pc(SafeRegex("/api".into()), false, "/API", false), // case_sensitive ignored
        pc(
            PathSeparatedPrefix("/api/dev".into()),
            true,
            "/api/dev",
            true,
        ),
        pc(
            PathSeparatedPrefix("/api/dev".into()),
            true,
            "/api/dev/",
            true,
        ),
        pc(
            PathSeparatedPrefix("/api/dev".into()),
            true,
            "/api/dev/v1",
            true,
        ),
        pc(
            PathSeparatedPrefix("/api/dev".into()),
            true,
            "/api/dev?x=1",
            true,
        ),
        pc(
            PathSeparatedPrefix("/api/dev".into()),
            true,
            "/api/developer",
            false,
        ),
        pc(
            PathSeparatedPrefix("/api/dev".into()),
            false,
            "/API/DEV/x",
            true,
        ),
        pc(
            PathTemplate("/users/{id}/**".into()),
            true,
            "/users/7/a/b?x",
            true,
        ),
        pc(
            PathTemplate("/users/{id}".into()),
            true,
            "/users/7/a",
            false,
        ),
        pc(Path("/a;b".into()), true, "/a;b", true),
    ] {
        c.run(false);
    }
}

#[test]
fn ignore_path_parameters() {
    use PathMatch::*;
    for c in [
        pc(Path("/a".into()), true, "/a;jsessionid=1?x", true),
        pc(Path("/a;b".into()), true, "/a;b", false),
        pc(PathSeparatedPrefix("/a".into()), true, "/a;p/b", true),
        pc(SafeRegex("/a".into()), true, "/a;p", true),
    ] {
        c.run(true);
    }
}

#[test]
fn connect_requests() {
    let cfg = one_vhost(vec![
        route(prefix("/"), "path-route"),
        route(RouteMatch::new(PathMatch::ConnectMatcher), "connect"),
    ]);
    let t = table(&cfg);
    let connect = http::Request::connect("example.com:443")
        .header("host", "example.com:443")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert!(connect.uri.path_and_query().is_none());
    assert_eq!(
        outcome(&t, &connect, 0),
        cluster("connect"),
        "path routes skip pathless requests"
    );
    assert_eq!(outcome(&t, &get("h", "/"), 0), cluster("path-route"));

    let only_connect = table(&one_vhost(vec![route(
        RouteMatch::new(PathMatch::ConnectMatcher),
        "connect",
    )]));
    assert_eq!(outcome(&only_connect, &get("h", "/"), 0), Outcome::NoRoute);
}

#[test]
fn first_match_wins_in_declaration_order() {
    let t = table(&one_vhost(vec![
        route(prefix("/"), "catch-all"),
        route(exact_path("/specific"), "specific"),
    ]));
    assert_eq!(outcome(&t, &get("h", "/specific"), 0), cluster("catch-all"));
}

#[test]
fn header_conditions_on_routes() {
    let with = |m: HeaderMatcher| prefix("/").tap_header(m);
    let t = table(&one_vhost(vec![
        route(with(HeaderMatcher::exact(":method", "POST")), "post"),
        route(
            with(HeaderMatcher::new(
                "x-version",
                HeaderMatchSpec::Range { start: 2, end: 5 },
            )),
            "v2-4",
        ),
        route(
            with(HeaderMatcher {
                invert_match: true,
                ..HeaderMatcher::present("x-user")
            }),
            "anonymous",
        ),
        route(prefix("/"), "fallback"),
    ]));
    let cases: &[(&str, Headers<'_>, &str)] = &[
        ("GET", &[("x-user", "u")], "fallback"),
        ("POST", &[("x-user", "u")], "post"),
        ("GET", &[("x-user", "u"), ("x-version", "3")], "v2-4"),
        ("GET", &[("x-user", "u"), ("x-version", "5")], "fallback"),
        ("GET", &[], "anonymous"),
    ];
    for (method, headers, want) in cases {
        let p = req(method, Some("h"), "/", headers);
        assert_eq!(outcome(&t, &p, 0), cluster(want), "{method} {headers:?}");
    }
}

trait TapHeader {
    fn tap_header(self, m: HeaderMatcher) -> Self;
}

impl TapHeader for RouteMatch {
    fn tap_header(mut self, m: HeaderMatcher) -> Self {
        self.headers.push(m);
        self
    }
}

#[test]
fn query_parameters() {
    let mut m = prefix("/");
    m.query_parameters = vec![
        QueryParameterMatcher {
            name: "debug".into(),
            string_match: None,
        },
        QueryParameterMatcher {
            name: "v".into(),
            string_match: Some(string_match(StringPattern::Prefix("1.".into()))),
        },
    ];
    let t = table(&one_vhost(vec![route(m, "q"), route(prefix("/"), "other")]));
    for (path, want) in [
        ("/?debug&v=1.2", "q"),
        ("/?v=1.2&debug=", "q"),
        ("/?v=2.0&debug&v=1.2", "other"), // first value only
        ("/?v=1.2", "other"),
        ("/?Debug&v=1.2", "other"), // names are case-sensitive
        ("/x?debug&v=1.2#frag", "q"),
        ("/", "other"),
    ] {
        assert_eq!(outcome(&t, &get("h", path), 0), cluster(want), "{path}");
    }
}

#[test]
fn runtime_fraction_uses_the_random_value() {
    let mut m = prefix("/");
    m.runtime_fraction = Some(RuntimeFraction {
        default_value: FractionalPercent::percent(30),
        runtime_key: "k".into(),
    });
    let mut m2 = prefix("/");
    m2.runtime_fraction = Some(RuntimeFraction {
        default_value: FractionalPercent {
            numerator: 1,
            denominator: Denominator::TenThousand,
        },
        runtime_key: String::new(),
    });
    let t = table(&one_vhost(vec![
        route(m2, "tiny"),
        route(m, "canary"),
        route(prefix("/"), "stable"),
    ]));
    // tiny: random % 10000 < 1; canary: random % 100 < 30 (strict `<`).
    for (random, want) in [
        (0, "tiny"),
        (10_000, "tiny"),
        (1, "canary"),
        (29, "canary"),
        (30, "stable"),
        (100, "canary"),
        (129, "canary"),
        (130, "stable"),
        (10_030, "stable"),
    ] {
        assert_eq!(
            outcome(&t, &get("h", "/"), random),
            cluster(want),
            "random {random}"
        );
    }
}

#[test]
fn grpc_content_type() {
    let mut m = prefix("/");
    m.grpc = true;
    let t = table(&one_vhost(vec![
        route(m, "grpc"),
        route(prefix("/"), "http"),
    ]));
    for (ct, want) in [
        (Some("application/grpc"), "grpc"),
        (Some("application/grpc+proto"), "grpc"),
        (Some("application/grpc-web"), "http"),
        (Some("application/grpcx"), "http"),
        (Some("application/json"), "http"),
        (None, "http"),
    ] {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
        let p = req("POST", Some("h"), "/svc/M", &headers);
        assert_eq!(outcome(&t, &p, 0), cluster(want), "{ct:?}");
    }
}

#[test]
fn tls_context() {
    let mut m = prefix("/");
    m.tls_context = Some(TlsContextMatch {
        presented: Some(true),
        validated: None,
    });
    let mut plain = prefix("/");
    plain.tls_context = Some(TlsContextMatch {
        presented: Some(false),
        validated: Some(false),
    });
    let t = table(&one_vhost(vec![route(m, "mtls"), route(plain, "plain")]));
    let mut p = get("h", "/");
    assert_eq!(outcome(&t, &p, 0), cluster("plain"));
    p.extensions.insert(DownstreamTls {
        presented: true,
        validated: false,
    });
    assert_eq!(outcome(&t, &p, 0), cluster("mtls"));
    p.extensions.insert(DownstreamTls {
        presented: false,
        validated: true,
    });
    assert_eq!(outcome(&t, &p, 0), Outcome::NoRoute);
}

#[test]
fn virtual_clusters() {
    let mut vh = VirtualHost::new("vh", ["*"]).with_route(Route::prefix("/", "c"));
    vh.virtual_clusters = vec![
        VirtualCluster {
            name: "test_virtual_cluster".into(),
            headers: vec![
                regex_header(":path", r"^/test/\d+$"),
                HeaderMatcher::exact(":method", "GET"),
            ],
        },
        VirtualCluster {
            name: "posts".into(),
            headers: vec![HeaderMatcher::exact(":method", "POST")],
        },
    ];
    let t = table(&RouteConfiguration::new("rc").with_virtual_host(vh));
    let vc = |p: &http::request::Parts| {
        t.find(p, 0)
            .and_then(|h| h.virtual_host().virtual_cluster(p))
            .map(str::to_owned)
    };
    assert_eq!(
        vc(&get("h", "/test/123")).as_deref(),
        Some("test_virtual_cluster")
    );
    assert_eq!(
        vc(&get("h", "/test/123?x=1")),
        None,
        ":path includes the query"
    );
    assert_eq!(
        vc(&req("POST", Some("h"), "/test/1", &[])).as_deref(),
        Some("posts")
    );
    assert_eq!(vc(&get("h", "/other")), None);
}
