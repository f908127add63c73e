//! The indexed `find` against the naive reference and the crate's linear scan.

use mesh_core::config::*;
use mesh_route::RouteTable;
use proptest::prelude::*;

use crate::generate::{Mix, Req, request, table};
use crate::reference;

/// `(virtual host, route)` picked by a lookup.
fn picked(hit: Option<mesh_route::Hit<'_>>) -> Option<(usize, usize)> {
    hit.map(|h| {
        (
            h.virtual_host().index(),
            h.route_index().expect("no require_tls in these tables"),
        )
    })
}

fn check(cfg: &RouteConfiguration, table: &RouteTable, req: &Req) -> Result<(), TestCaseError> {
    let parts = req.parts();
    let indexed = picked(table.find(&parts, req.random));
    let linear = picked(table.find_linear(&parts, req.random));
    prop_assert_eq!(indexed, linear, "find vs find_linear for {:?}", req);
    prop_assert_eq!(
        indexed,
        reference::find(cfg, req),
        "find vs the naive reference for {:?}",
        req
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Small tables (dense overlaps), many requests each.
    #[test]
    fn matches_the_naive_reference(
        cfg in table(Mix::Simple, 0..24),
        reqs in prop::collection::vec(request(), 1..48),
    ) {
        let table = RouteTable::compile(&cfg).unwrap();
        for req in &reqs {
            check(&cfg, &table, req)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Larger tables, so that long candidate lists and deep tries occur.
    #[test]
    fn matches_the_naive_reference_on_large_tables(
        cfg in table(Mix::Simple, 100..400),
        reqs in prop::collection::vec(request(), 64..160),
    ) {
        let table = RouteTable::compile(&cfg).unwrap();
        for req in &reqs {
            check(&cfg, &table, req)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Large tables of mostly prefix-less regexes: candidates come from several regex sets.
    #[test]
    fn matches_the_naive_reference_on_regex_heavy_tables(
        cfg in table(Mix::RegexHeavy, 60..300),
        reqs in prop::collection::vec(request(), 64..160),
    ) {
        let table = RouteTable::compile(&cfg).unwrap();
        for req in &reqs {
            check(&cfg, &table, req)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every path specifier (URI templates, `connect_matcher`) and TLS conditions, against the
    /// crate's own linear scan; CONNECT requests have no path.
    #[test]
    fn matches_the_linear_scan_with_every_specifier(
        cfg in table(Mix::Every, 0..48),
        reqs in prop::collection::vec((request(), prop::bool::weighted(0.1)), 1..48),
    ) {
        let table = RouteTable::compile(&cfg).unwrap();
        for (req, connect) in &reqs {
            let parts = if *connect {
                let mut p = req.parts();
                p.method = http::Method::CONNECT;
                p.uri = "a.com:443".parse().unwrap();
                p
            } else {
                req.parts()
            };
            let indexed = picked(table.find(&parts, req.random));
            let linear = picked(table.find_linear(&parts, req.random));
            prop_assert_eq!(indexed, linear, "{:?} connect={}", req, connect);
        }
    }
}

fn get(host: &str, path: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::get(path).header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn one_vhost(routes: Vec<Route>) -> RouteTable {
    let mut vh = VirtualHost::new("vh", ["*"]);
    vh.routes = routes;
    RouteTable::compile(&RouteConfiguration::new("rc").with_virtual_host(vh)).unwrap()
}

fn route_index(t: &RouteTable, p: &http::request::Parts, random: u64) -> Option<usize> {
    let indexed = t.find(p, random).and_then(|h| h.route_index());
    let linear = t.find_linear(p, random).and_then(|h| h.route_index());
    assert_eq!(indexed, linear, "{}", p.uri);
    indexed
}

/// More nested prefixes on one path than the index merges: the linear fallback answers.
#[test]
fn deeply_nested_prefixes_fall_back_to_the_scan() {
    let mut routes: Vec<Route> = (1..=40)
        .rev()
        .map(|n| {
            Route::prefix(format!("/{}", "a".repeat(n)), format!("c{n}"))
                .with_header(HeaderMatcher::present("x-deep"))
        })
        .collect();
    routes.push(Route::prefix("/a", "last"));
    let t = one_vhost(routes);
    let deep = format!("/{}", "a".repeat(45));
    assert_eq!(
        route_index(&t, &get("h", &deep, &[("x-deep", "1")]), 0),
        Some(0)
    );
    assert_eq!(route_index(&t, &get("h", &deep, &[]), 0), Some(40));
    assert_eq!(
        route_index(&t, &get("h", "/aaa", &[("x-deep", "1")]), 0),
        Some(37)
    );
}

/// Candidates from every source interleave in declaration order, and a failed header, query or
/// runtime-fraction condition moves on to the next candidate.
#[test]
fn candidates_merge_in_declaration_order() {
    let regex = |r: &str| {
        Route::new(
            RouteMatch::new(PathMatch::SafeRegex(r.into())),
            Action::Route(RouteAction::cluster("re")),
        )
    };
    let mut ci_exact = Route::path("/API/V1", "ci");
    ci_exact.route_match.case_sensitive = false;
    let mut fraction = Route::prefix("/api", "fraction");
    fraction.route_match.runtime_fraction = Some(RuntimeFraction {
        default_value: FractionalPercent::percent(50),
        runtime_key: String::new(),
    });
    let t = one_vhost(vec![
        Route::prefix("/api/", "canary").with_header(HeaderMatcher::exact("x-canary", "1")), // 0
        regex("(?i)/API/v[0-9]+/x"),                                                         // 1
        ci_exact,                                                                            // 2
        fraction,                                                                            // 3
        Route::path("/api/v1", "exact"),                                                     // 4
        regex("/api/[0-9]+"),                                                                // 5
        Route::new(
            RouteMatch::new(PathMatch::PathTemplate("/api/{x}".into())),
            Action::Route(RouteAction::cluster("tpl")),
        ), // 6
        Route::prefix("/", "default"),                                                       // 7
    ]);
    // (path, headers, random, expected route)
    type Case<'c> = (&'c str, &'c [(&'c str, &'c str)], u64, Option<usize>);
    let cases: &[Case<'_>] = &[
        ("/api/v1", &[("x-canary", "1")], 0, Some(0)),
        ("/api/v1/x", &[], 0, Some(1)),
        ("/API/V2/X", &[], 99, Some(1)),
        ("/Api/v1", &[], 0, Some(2)),
        ("/api/v1", &[], 10, Some(2)),
        ("/Api/x", &[], 0, Some(7)),
        ("/api/x", &[], 10, Some(3)),
        ("/api/12", &[], 60, Some(5)),
        ("/api/x", &[], 60, Some(6)),
        ("/apix", &[], 60, Some(7)),
        ("/other", &[], 0, Some(7)),
    ];
    for (path, headers, random, want) in cases {
        assert_eq!(
            route_index(&t, &get("h", path, headers), *random),
            *want,
            "{path} {headers:?} random={random}"
        );
    }
}

/// More than one regex set: prefix-less regexes beyond the first chunk are still found, in order.
#[test]
fn many_prefixless_regexes() {
    let mut routes: Vec<Route> = (0..100)
        .map(|i| {
            Route::new(
                RouteMatch::new(PathMatch::SafeRegex(format!("(?i)/r{i}/[a-z]+"))),
                Action::Route(RouteAction::cluster(format!("c{i}"))),
            )
        })
        .collect();
    routes.insert(
        70,
        Route::new(
            RouteMatch::new(PathMatch::SafeRegex(".*/shadow".into())),
            Action::Route(RouteAction::cluster("shadow")),
        ),
    );
    let t = one_vhost(routes);
    assert_eq!(route_index(&t, &get("h", "/R5/abc", &[]), 0), Some(5));
    assert_eq!(route_index(&t, &get("h", "/r99/x", &[]), 0), Some(100));
    assert_eq!(route_index(&t, &get("h", "/r80/shadow", &[]), 0), Some(70));
    assert_eq!(route_index(&t, &get("h", "/r69/shadow", &[]), 0), Some(69));
    assert_eq!(route_index(&t, &get("h", "/r69/1", &[]), 0), None);
}
