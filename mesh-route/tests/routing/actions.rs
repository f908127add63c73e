//! Route actions (SEMANTICS §1.4, §3.1–§3.6).

use mesh_core::config::*;
use mesh_route::HitAction;

use crate::support::*;

fn weighted(entries: &[(&str, u32)]) -> WeightedClusters {
    WeightedClusters {
        clusters: entries
            .iter()
            .map(|(n, w)| ClusterWeight {
                name: (*n).into(),
                weight: *w,
                ..ClusterWeight::default()
            })
            .collect(),
        ..WeightedClusters::default()
    }
}

fn weighted_route(w: WeightedClusters) -> Route {
    route_with(
        prefix("/"),
        RouteAction::new(ClusterSpecifier::WeightedClusters(w)),
    )
}

#[test]
fn cluster_header() {
    let mut custom = RouteAction::new(ClusterSpecifier::ClusterHeader("x-cluster".into()));
    custom.cluster_not_found_response_code = 404;
    let t = table(&one_vhost(vec![
        route_with(exact_path("/custom"), custom),
        route_with(
            prefix("/"),
            RouteAction::new(ClusterSpecifier::ClusterHeader("X-Cluster".into())),
        ),
    ]));
    let cases: &[(&str, Headers<'_>, Outcome)] = &[
        ("/", &[("x-cluster", "blue")], cluster("blue")),
        (
            "/",
            &[("x-cluster", "blue"), ("x-cluster", "green")],
            cluster("blue"),
        ),
        ("/", &[], Outcome::NotFound(503)),
        ("/", &[("x-cluster", "")], Outcome::NotFound(503)),
        ("/custom", &[], Outcome::NotFound(404)),
    ];
    for (path, headers, want) in cases {
        assert_eq!(
            outcome(&t, &get_with("h", path, headers), 0),
            *want,
            "{headers:?}"
        );
    }
}

/// Regression (issue #11): `cluster_header: ":authority"` was refused as "not a valid header
/// name"; Envoy routes on pseudo-headers there (its router_check suite names `:authority`).
#[test]
fn cluster_header_may_name_a_pseudo_header() {
    let t = table(&one_vhost(vec![
        route_with(
            prefix("/by-path"),
            RouteAction::new(ClusterSpecifier::ClusterHeader(":path".into())),
        ),
        route_with(
            prefix("/"),
            RouteAction::new(ClusterSpecifier::ClusterHeader(":authority".into())),
        ),
    ]));
    assert_eq!(
        outcome(&t, &get_with("cluster.example", "/", &[]), 0),
        cluster("cluster.example")
    );
    assert_eq!(
        outcome(&t, &get_with("h", "/by-path", &[]), 0),
        cluster("/by-path")
    );
}

/// Weighted.yaml from the Envoy router-check conformance set.
#[test]
fn weighted_clusters_conformance() {
    let t = table(&one_vhost(vec![weighted_route(weighted(&[
        ("cluster1", 30),
        ("cluster2", 30),
        ("cluster3", 40),
    ]))]));
    for (random, want) in [
        (115, "cluster1"),
        (445, "cluster2"),
        (560, "cluster3"),
        (10, "cluster1"),
        (30, "cluster2"),
        (70, "cluster3"),
        (29, "cluster1"),
        (59, "cluster2"),
        (60, "cluster3"),
        (99, "cluster3"),
    ] {
        assert_eq!(
            outcome(&t, &get("h", "/"), random),
            cluster(want),
            "random {random}"
        );
    }
}

#[test]
fn weighted_zero_weight_and_header_override() {
    let mut w = weighted(&[("never", 0), ("a", 1), ("also-never", 0), ("b", 3)]);
    w.header_name = Some("x-pick".into());
    let t = table(&one_vhost(vec![weighted_route(w)]));
    let cases: &[(Headers<'_>, u64, &str)] = &[
        (&[], 0, "a"),
        (&[], 1, "b"),
        (&[], 3, "b"),
        (&[], 4, "a"),
        (&[("x-pick", "0")], 1, "a"),
        (&[("x-pick", "5")], 0, "b"),
        // Present twice: ignored, the random value is used.
        (&[("x-pick", "0"), ("x-pick", "0")], 1, "b"),
        (&[("x-pick", "nope")], 1, "b"),
        (&[("x-pick", "-1")], 1, "b"),
        (&[("x-pick", "18446744073709551615")], 0, "b"), // u64::MAX % 4 = 3
    ];
    for (headers, random, want) in cases {
        let got = outcome(&t, &get_with("h", "/", headers), *random);
        assert_eq!(got, cluster(want), "{headers:?} random {random}");
    }
    // Weight-0 entries are never picked over the whole range.
    for r in 0..100 {
        let got = outcome(&t, &get("h", "/"), r);
        assert!(got == cluster("a") || got == cluster("b"), "{r}: {got:?}");
    }
}

#[test]
fn weighted_entry_cluster_header_and_host_rewrite() {
    let w = WeightedClusters {
        clusters: vec![
            ClusterWeight {
                cluster_header: Some("x-c".into()),
                weight: 1,
                host_rewrite_literal: Some("entry-host".into()),
                ..ClusterWeight::default()
            },
            ClusterWeight {
                name: "static".into(),
                weight: 1,
                host_rewrite_literal: Some("entry-host".into()),
                ..ClusterWeight::default()
            },
        ],
        ..WeightedClusters::default()
    };
    let mut with_route_host = RouteAction::new(ClusterSpecifier::WeightedClusters(w.clone()));
    with_route_host.host_rewrite = Some(HostRewrite::Literal("route-host".into()));
    let mut with_header_host = RouteAction::new(ClusterSpecifier::WeightedClusters(w.clone()));
    with_header_host.host_rewrite = Some(HostRewrite::Header("x-host".into()));
    let t = table(&one_vhost(vec![
        route_with(prefix("/route"), with_route_host),
        route_with(prefix("/header"), with_header_host),
        weighted_route(w),
    ]));
    assert_eq!(
        outcome(&t, &get_with("h", "/", &[("x-c", "dyn")]), 0),
        cluster("dyn")
    );
    assert_eq!(outcome(&t, &get("h", "/"), 0), Outcome::NotFound(503));
    assert_eq!(outcome(&t, &get("h", "/"), 1), cluster("static"));

    let host = |path: &str, headers: &[(&str, &str)]| {
        let p = get_with("h", path, headers);
        let hit = t.find(&p, 1).unwrap();
        let HitAction::Forward(f) = hit.action() else {
            panic!("not forwarded")
        };
        assert_eq!(
            f.weighted_cluster().map(|c| c.name.as_str()),
            Some("static")
        );
        f.host_rewrite(&p)
    };
    assert_eq!(host("/", &[]).as_deref(), Some("entry-host"));
    assert_eq!(
        host("/route", &[]).as_deref(),
        Some("route-host"),
        "route level wins"
    );
    assert_eq!(
        host("/header", &[("x-host", "hdr")]).as_deref(),
        Some("hdr")
    );
    assert_eq!(
        host("/header", &[]).as_deref(),
        Some("entry-host"),
        "route level left the host unchanged"
    );
}

fn redirect_route(m: RouteMatch, r: RedirectAction) -> Route {
    Route::new(m, Action::Redirect(r))
}

struct RedirectCase {
    redirect: RedirectAction,
    route_path: PathMatch,
    host: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    want: &'static str,
    code: u16,
}

impl RedirectCase {
    fn run(&self) {
        let t = table(&one_vhost(vec![redirect_route(
            RouteMatch::new(self.route_path.clone()),
            self.redirect.clone(),
        )]));
        let p = get_with(self.host, self.path, self.headers);
        assert_eq!(
            outcome(&t, &p, 0),
            redirect(self.want, self.code),
            "{:?} for {}{} {:?}",
            self.redirect,
            self.host,
            self.path,
            self.headers
        );
        let hit = t.find(&p, 0).unwrap();
        assert_eq!(hit.location(), Some(self.want));
        let mut resp = http::HeaderMap::new();
        hit.apply_response_headers(&mut resp);
        assert_eq!(values(&resp, "location"), [self.want]);
    }
}

fn rc(redirect: RedirectAction, host: &'static str, path: &'static str) -> RedirectCase {
    RedirectCase {
        redirect,
        route_path: PathMatch::Prefix("/".into()),
        host,
        path,
        headers: &[("x-forwarded-proto", "http")],
        want: "",
        code: 301,
    }
}

impl RedirectCase {
    fn want(mut self, want: &'static str) -> Self {
        self.want = want;
        self
    }
    fn headers(mut self, headers: &'static [(&'static str, &'static str)]) -> Self {
        self.headers = headers;
        self
    }
    fn code(mut self, code: u16) -> Self {
        self.code = code;
        self
    }
    fn route(mut self, p: PathMatch) -> Self {
        self.route_path = p;
        self
    }
}

fn r() -> RedirectAction {
    RedirectAction::default()
}

#[test]
fn redirects() {
    let https = RedirectAction {
        scheme_redirect: Some("https".into()),
        ..r()
    };
    let xfp_https: &[(&str, &str)] = &[("x-forwarded-proto", "https")];
    let cases = [
        // Redirect.yaml conformance.
        rc(
            RedirectAction {
                host_redirect: Some("new.lyft.com".into()),
                ..r()
            },
            "redirect.lyft.com",
            "/foo",
        )
        .want("http://new.lyft.com/foo"),
        rc(
            RedirectAction {
                path_redirect: Some(PathRedirect::Path("/new_bar".into())),
                ..r()
            },
            "redirect.lyft.com",
            "/bar",
        )
        .headers(xfp_https)
        .want("https://redirect.lyft.com/new_bar"),
        rc(
            RedirectAction {
                host_redirect: Some("new.lyft.com".into()),
                path_redirect: Some(PathRedirect::Path("/new_baz".into())),
                ..r()
            },
            "redirect.lyft.com",
            "/baz",
        )
        .headers(xfp_https)
        .want("https://new.lyft.com/new_baz"),
        rc(
            RedirectAction {
                path_redirect: Some(PathRedirect::Prefix("/blah".into())),
                ..r()
            },
            "redirect.lyft.com",
            "/rewrite/x?q=1",
        )
        .route(PathMatch::Prefix("/rewrite".into()))
        .want("http://redirect.lyft.com/blah/x?q=1"),
        // Scheme change drops the default port of the request's protocol.
        rc(https.clone(), "example.com:80", "/a").want("https://example.com/a"),
        rc(https.clone(), "example.com:8080", "/a").want("https://example.com:8080/a"),
        rc(
            RedirectAction {
                scheme_redirect: Some("http".into()),
                ..r()
            },
            "example.com:443",
            "/a",
        )
        .headers(xfp_https)
        .want("http://example.com/a"),
        // Same scheme: the port stays.
        rc(r(), "example.com:80", "/a").want("http://example.com:80/a"),
        rc(https.clone(), "example.com:443", "/a")
            .headers(xfp_https)
            .want("https://example.com:443/a"),
        // port_redirect replaces the request port; 0 means unset.
        rc(
            RedirectAction {
                port_redirect: Some(8443),
                ..https.clone()
            },
            "example.com:80",
            "/a",
        )
        .want("https://example.com:8443/a"),
        rc(
            RedirectAction {
                port_redirect: Some(8443),
                ..r()
            },
            "example.com",
            "/a",
        )
        .want("http://example.com:8443/a"),
        rc(
            RedirectAction {
                port_redirect: Some(0),
                ..r()
            },
            "example.com:81",
            "/a",
        )
        .want("http://example.com:81/a"),
        rc(
            RedirectAction {
                port_redirect: Some(9),
                ..r()
            },
            "[::1]:81",
            "/a",
        )
        .want("http://[::1]:9/a"),
        rc(https.clone(), "[::1]:80", "/a").want("https://[::1]/a"),
        rc(https.clone(), "[::1]", "/a").want("https://[::1]/a"),
        // host_redirect never carries the request port.
        rc(
            RedirectAction {
                host_redirect: Some("b.com".into()),
                ..r()
            },
            "a.com:8080",
            "/a",
        )
        .want("http://b.com/a"),
        rc(
            RedirectAction {
                host_redirect: Some("b.com".into()),
                port_redirect: Some(1),
                ..r()
            },
            "a.com:8080",
            "/a",
        )
        .want("http://b.com:1/a"),
        // path_redirect without `?` keeps the request query; with `?` it replaces it.
        rc(
            RedirectAction {
                path_redirect: Some(PathRedirect::Path("/n".into())),
                ..r()
            },
            "h",
            "/o?x=1",
        )
        .want("http://h/n?x=1"),
        rc(
            RedirectAction {
                path_redirect: Some(PathRedirect::Path("/n?y=2".into())),
                ..r()
            },
            "h",
            "/o?x=1",
        )
        .want("http://h/n?y=2"),
        rc(
            RedirectAction {
                path_redirect: Some(PathRedirect::Path("/n?y=2".into())),
                strip_query: true,
                ..r()
            },
            "h",
            "/o?x=1",
        )
        .want("http://h/n?y=2"),
        rc(
            RedirectAction {
                path_redirect: Some(PathRedirect::Path("/n".into())),
                strip_query: true,
                ..r()
            },
            "h",
            "/o?x=1",
        )
        .want("http://h/n"),
        rc(
            RedirectAction {
                strip_query: true,
                ..r()
            },
            "h",
            "/o?x=1",
        )
        .want("http://h/o"),
        // A leading `/` is added.
        rc(
            RedirectAction {
                path_redirect: Some(PathRedirect::Path("n".into())),
                ..r()
            },
            "h",
            "/o",
        )
        .want("http://h/n"),
        // Regex path rewrite in a redirect.
        rc(
            RedirectAction {
                path_redirect: Some(PathRedirect::Regex(RegexRewrite {
                    pattern: "^/v1/(.*)$".into(),
                    substitution: r"/v2/\1".into(),
                })),
                ..r()
            },
            "h",
            "/v1/a/b?c=d",
        )
        .want("http://h/v2/a/b?c=d"),
        // Response codes.
        rc(
            RedirectAction {
                response_code: RedirectCode::Found,
                ..r()
            },
            "h",
            "/",
        )
        .want("http://h/")
        .code(302),
        rc(
            RedirectAction {
                response_code: RedirectCode::SeeOther,
                ..r()
            },
            "h",
            "/",
        )
        .want("http://h/")
        .code(303),
        rc(
            RedirectAction {
                response_code: RedirectCode::TemporaryRedirect,
                ..r()
            },
            "h",
            "/",
        )
        .want("http://h/")
        .code(307),
        rc(
            RedirectAction {
                response_code: RedirectCode::PermanentRedirect,
                ..r()
            },
            "h",
            "/",
        )
        .want("http://h/")
        .code(308),
        // No x-forwarded-proto and no URI scheme: http.
        rc(r(), "h", "/p").headers(&[]).want("http://h/p"),
    ];
    for c in cases {
        c.run();
    }

    // A case-insensitive prefix is replaced by its length.
    let mut m = prefix("/old");
    m.case_sensitive = false;
    let t = table(&one_vhost(vec![redirect_route(
        m,
        RedirectAction {
            path_redirect: Some(PathRedirect::Prefix("/new".into())),
            ..r()
        },
    )]));
    assert_eq!(
        outcome(&t, &get("h", "/OLD/x"), 0),
        redirect("http://h/new/x", 301)
    );
}

#[test]
fn require_tls() {
    let mut all = VirtualHost::new("all", ["www.lyft.com"]).with_route(Route::prefix("/", "www2"));
    all.require_tls = TlsRequirement::All;
    let mut ext = VirtualHost::new("api", ["api.lyft.com"]).with_route(Route::prefix("/", "www2"));
    ext.require_tls = TlsRequirement::ExternalOnly;
    let t = table(
        &RouteConfiguration::new("rc")
            .with_virtual_host(all)
            .with_virtual_host(ext),
    );
    let https: &[(&str, &str)] = &[("x-forwarded-proto", "https")];
    let http: &[(&str, &str)] = &[("x-forwarded-proto", "http")];
    let http_internal: &[(&str, &str)] =
        &[("x-forwarded-proto", "http"), ("x-envoy-internal", "true")];
    let cases: &[(&str, &str, Headers<'_>, Outcome)] = &[
        ("www.lyft.com", "/foo", https, cluster("www2")),
        (
            "www.lyft.com",
            "/foo?x=1",
            http,
            redirect("https://www.lyft.com/foo?x=1", 301),
        ),
        (
            "www.lyft.com",
            "/foo",
            http_internal,
            redirect("https://www.lyft.com/foo", 301),
        ),
        ("www.lyft.com", "/foo", &[], Outcome::NoRoute),
        (
            "api.lyft.com",
            "/foo",
            http,
            redirect("https://api.lyft.com/foo", 301),
        ),
        ("api.lyft.com", "/foo", http_internal, cluster("www2")),
        ("api.lyft.com", "/foo", https, cluster("www2")),
        ("api.lyft.com:8080", "/foo", http, Outcome::NoRoute),
    ];
    for (host, path, headers, want) in cases {
        let p = get_with(host, path, headers);
        assert_eq!(outcome(&t, &p, 0), *want, "{host}{path} {headers:?}");
    }
    let p = get_with("www.lyft.com", "/foo", http);
    let hit = t.find(&p, 0).unwrap();
    assert_eq!(hit.route_index(), None);
    assert_eq!(hit.route_name(), "");
}

#[test]
fn direct_responses() {
    let direct = |status: u16, body: Option<&str>| {
        Action::DirectResponse(DirectResponseAction {
            status,
            body: body.map(str::to_owned),
        })
    };
    let t = table(&one_vhost(vec![
        Route::new(exact_path("/ping"), direct(200, Some("pong"))),
        Route::new(exact_path("/created"), direct(201, None)),
        Route::new(exact_path("/moved"), direct(301, None)),
        Route::new(prefix("/"), direct(503, Some("down"))),
    ]));
    let hdr: &[(&str, &str)] = &[("x-forwarded-proto", "http")];
    let cases: &[(&str, Outcome, Option<&str>)] = &[
        ("/ping", Outcome::Direct(200, Some("pong".into())), None),
        (
            "/created?id=1",
            Outcome::Direct(201, None),
            Some("http://h:80/created?id=1"),
        ),
        (
            "/moved",
            Outcome::Direct(301, None),
            Some("http://h:80/moved"),
        ),
        ("/x", Outcome::Direct(503, Some("down".into())), None),
    ];
    for (path, want, location) in cases {
        let p = get_with("h:80", path, hdr);
        assert_eq!(outcome(&t, &p, 0), *want, "{path}");
        let hit = t.find(&p, 0).unwrap();
        assert_eq!(hit.location(), *location, "{path}");
        let mut resp = http::HeaderMap::new();
        hit.apply_response_headers(&mut resp);
        assert_eq!(resp.get("location").map(|v| v.to_str().unwrap()), *location);
    }
}

fn forward<'a>(
    t: &'a mesh_route::RouteTable,
    p: &'a http::request::Parts,
) -> mesh_route::Forward<'a> {
    match t.find(p, 0).expect("a route").action() {
        HitAction::Forward(f) => f,
        other => panic!("not forwarded: {other:?}"),
    }
}

#[test]
fn path_rewrites() {
    let rewrite = |m: RouteMatch, prefix: Option<&str>, regex: Option<(&str, &str)>| {
        let mut a = RouteAction::cluster("c");
        a.prefix_rewrite = prefix.map(str::to_owned);
        a.regex_rewrite = regex.map(|(p, s)| RegexRewrite {
            pattern: p.into(),
            substitution: s.into(),
        });
        route_with(m, a)
    };
    let ci = |mut m: RouteMatch| {
        m.case_sensitive = false;
        m
    };
    let t = table(&one_vhost(vec![
        rewrite(prefix("/new_endpoint"), Some("/api/new_endpoint"), None),
        rewrite(ci(exact_path("/api/locations")), Some("/rewrote"), None),
        rewrite(ci(exact_path("/FOOD")), Some("/cAndy"), None),
        rewrite(
            RouteMatch::new(PathMatch::PathSeparatedPrefix("/sep".into())),
            Some("/s"),
            None,
        ),
        rewrite(
            RouteMatch::new(PathMatch::SafeRegex("/re/.*".into())),
            Some("/whole"),
            None,
        ),
        rewrite(prefix("/one"), None, Some((r"^(.*?)one(.*)$", r"\1two\2"))),
        rewrite(
            prefix("/svc"),
            None,
            Some((r"^/svc/([^/]+)(/.*)$", r"\2/instance/\1")),
        ),
        rewrite(prefix("/strip/"), Some("/"), None),
        route(prefix("/"), "plain"),
    ]));
    let cases = [
        ("/new_endpoint/foo", Some("/api/new_endpoint/foo")),
        ("/api/locations?works=true", Some("/rewrote?works=true")),
        ("/API/locations?works=true", Some("/rewrote?works=true")),
        ("/fooD", Some("/cAndy")),
        ("/sep/x?y", Some("/s/x?y")),
        ("/sep", Some("/s")),
        ("/re/a/b?q", Some("/whole?q")),
        ("/one/one?one", Some("/two/one?one")),
        ("/svc/foo/v1/api?x", Some("/v1/api/instance/foo?x")),
        ("/strip/etc", Some("/etc")),
        ("/FOO", None),
    ];
    for (path, want) in cases {
        let p = get("h", path);
        assert_eq!(
            forward(&t, &p).rewritten_path(&p).as_deref(),
            want,
            "{path}"
        );
    }
}

#[test]
fn host_rewrites() {
    let with = |path: &str, h: HostRewrite| {
        let mut a = RouteAction::cluster("c");
        a.host_rewrite = Some(h);
        route_with(prefix(path), a)
    };
    let t = table(&one_vhost(vec![
        with("/lit", HostRewrite::Literal("new_host".into())),
        with("/hdr", HostRewrite::Header("x-host".into())),
        with("/auto", HostRewrite::Auto),
        with(
            "/re",
            HostRewrite::PathRegex(RegexRewrite {
                pattern: r"^/re/([^/]+)/.*$".into(),
                substitution: r"\1.internal".into(),
            }),
        ),
        route(prefix("/"), "plain"),
    ]));
    let host = |path: &str, headers: &[(&str, &str)]| {
        let p = get_with("api.lyft.com", path, headers);
        let f = forward(&t, &p);
        (f.host_rewrite(&p), f.auto_host_rewrite())
    };
    assert_eq!(host("/lit", &[]), (Some("new_host".into()), false));
    assert_eq!(
        host("/hdr", &[("x-host", "a"), ("x-host", "b")]),
        (Some("a".into()), false)
    );
    assert_eq!(host("/hdr", &[("x-host", "")]), (None, false));
    assert_eq!(host("/hdr", &[]), (None, false));
    assert_eq!(host("/auto", &[]), (None, true));
    assert_eq!(
        host("/re/svc/x?q=1", &[]),
        (Some("svc.internal".into()), false)
    );
    assert_eq!(host("/", &[]), (None, false));
}

#[test]
fn forward_exposes_the_route_action() {
    let mut a = RouteAction::cluster("c");
    a.timeout = Some(std::time::Duration::from_secs(30));
    a.retry_policy = Some(RetryPolicy {
        retry_on: "5xx".into(),
        ..RetryPolicy::default()
    });
    let mut vh = VirtualHost::new("vh", ["*"]).with_route(route_with(prefix("/a"), a));
    vh.routes[0].name = "named".into();
    vh.routes.push(Route::prefix("/", "d"));
    vh.retry_policy = Some(RetryPolicy {
        retry_on: "reset".into(),
        ..RetryPolicy::default()
    });
    vh.request_mirror_policies = vec![RequestMirrorPolicy {
        cluster: "shadow".into(),
        ..RequestMirrorPolicy::default()
    }];
    let t = table(&RouteConfiguration::new("rc").with_virtual_host(vh));
    assert_eq!(t.name(), "rc");
    let p = get("h", "/a");
    let hit = t.find(&p, 0).unwrap();
    assert_eq!(hit.route_name(), "named");
    assert_eq!(hit.route_index(), Some(0));
    assert_eq!(hit.retry_policy().map(|r| r.retry_on.as_str()), Some("5xx"));
    assert_eq!(hit.request_mirror_policies()[0].cluster, "shadow");
    let f = forward(&t, &p);
    assert_eq!(
        f.action().effective_timeout(),
        Some(std::time::Duration::from_secs(30))
    );
    let p = get("h", "/b");
    let hit = t.find(&p, 0).unwrap();
    assert_eq!(
        hit.retry_policy().map(|r| r.retry_on.as_str()),
        Some("reset")
    );
    assert_eq!(hit.route_index(), Some(1));
}
