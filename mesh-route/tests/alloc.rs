//! Matching does not allocate for routes without rewrites (a counting global allocator).
// A counting allocator needs `unsafe impl GlobalAlloc`; this test binary is the only place in
// the crate that does so, and it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use mesh_core::config::*;
use mesh_route::{HitAction, RouteTable};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded unchanged to `System`; counting has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn find_does_not_allocate() {
    let mut header_route = Route::prefix("/h", "headers");
    header_route.route_match.headers = vec![
        HeaderMatcher::exact("x-env", "prod"),
        HeaderMatcher::exact(":method", "GET"),
        HeaderMatcher::new("x-n", HeaderMatchSpec::Range { start: 0, end: 9 }),
    ];
    let mut query_route = Route::prefix("/q", "query");
    query_route.route_match.query_parameters = vec![QueryParameterMatcher {
        name: "v".into(),
        string_match: Some(StringMatcher::exact("1")),
    }];
    let mut ci = Route::path("/CASE", "case");
    ci.route_match.case_sensitive = false;
    let regex = Route::new(
        RouteMatch::new(PathMatch::SafeRegex("/re/[0-9]+".into())),
        Action::Route(RouteAction::cluster("regex")),
    );
    let weighted = Route::new(
        RouteMatch::new(PathMatch::PathSeparatedPrefix("/w".into())),
        Action::Route(RouteAction::new(ClusterSpecifier::WeightedClusters(
            WeightedClusters {
                clusters: vec![
                    ClusterWeight {
                        name: "w1".into(),
                        weight: 1,
                        ..ClusterWeight::default()
                    },
                    ClusterWeight {
                        name: "w2".into(),
                        weight: 1,
                        ..ClusterWeight::default()
                    },
                ],
                ..WeightedClusters::default()
            },
        ))),
    );
    let by_header = Route::new(
        RouteMatch::new(PathMatch::Prefix("/c".into())),
        Action::Route(RouteAction::new(ClusterSpecifier::ClusterHeader(
            "x-cluster".into(),
        ))),
    );
    let mut vh = VirtualHost::new("vh", ["example.com", "*.example.com", "www.*"]);
    vh.routes = vec![
        header_route,
        query_route,
        ci,
        regex,
        weighted,
        by_header,
        Route::prefix("/", "default"),
    ];
    let mut cfg = RouteConfiguration::new("rc").with_virtual_host(vh);
    cfg.ignore_port_in_host_matching = true;
    let table = RouteTable::compile(&cfg).unwrap();

    let requests: Vec<(http::request::Parts, &str)> = [
        ("/h/x", "headers"),
        ("/q?a=b&v=1", "query"),
        ("/case", "case"),
        ("/re/42", "regex"),
        ("/w/x", "w2"),
        ("/c", "blue"),
        ("/other", "default"),
    ]
    .into_iter()
    .map(|(path, want)| {
        let p = http::Request::get(path)
            .header("host", "API.Example.com:8080")
            .header("x-env", "prod")
            .header("x-n", "3")
            .header("x-cluster", "blue")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        (p, want)
    })
    .collect();

    // The regex crate allocates its matching cache on a thread's first use of each regex.
    for (p, _) in &requests {
        table.find(p, 1);
    }
    for (p, want) in &requests {
        let mut got = false;
        let n = allocations_during(|| {
            let hit = table.find(p, 1).expect("a route");
            if let HitAction::Forward(f) = hit.action() {
                got = f.cluster(p) == *want;
            }
        });
        assert!(got, "{} did not route to {want}", p.uri);
        assert_eq!(n, 0, "{} allocated {n} times", p.uri);
    }
}

/// A 10,000-route table of every indexed kind: lookups through the exact-path map, the prefix
/// trie, literal-prefixed and prefix-less regexes (regex sets), templates and misses allocate
/// nothing either.
#[test]
fn large_indexed_table_does_not_allocate() {
    let n = 10_000;
    let mut routes = Vec::with_capacity(n);
    for i in 0..n {
        let cluster = format!("c{i}");
        let route = match i % 10 {
            0..=2 => Route::path(format!("/e/{i}/items"), cluster),
            3 => {
                let mut r = Route::path(format!("/E/{i}/Mixed"), cluster);
                r.route_match.case_sensitive = false;
                r
            }
            4 | 5 => Route::prefix(format!("/p/{i}/"), cluster),
            6 => Route::new(
                RouteMatch::new(PathMatch::PathSeparatedPrefix(format!("/s/{i}"))),
                Action::Route(RouteAction::cluster(cluster)),
            ),
            7 => Route::new(
                RouteMatch::new(PathMatch::SafeRegex(if i % 20 == 7 {
                    format!("(?i)/nr/{i}/[a-z]+")
                } else {
                    format!("/r/{i}/[0-9]+")
                })),
                Action::Route(RouteAction::cluster(cluster)),
            ),
            8 => Route::prefix(format!("/h/{i}/"), cluster)
                .with_header(HeaderMatcher::exact("x-tenant", format!("t{i}"))),
            _ => {
                let mut m = RouteMatch::new(PathMatch::PathTemplate(format!("/t/{i}/{{id}}")));
                m.runtime_fraction = Some(RuntimeFraction {
                    default_value: FractionalPercent::percent(50),
                    runtime_key: String::new(),
                });
                Route::new(m, Action::Route(RouteAction::cluster(cluster)))
            }
        };
        routes.push(route);
    }
    let mut vh = VirtualHost::new("big", ["big.example.com"]);
    vh.routes = routes;
    let cfg = RouteConfiguration::new("rc")
        .with_virtual_host(vh)
        .with_virtual_host(VirtualHost::new("other", ["*"]).with_route(Route::prefix("/", "o")));
    let table = RouteTable::compile(&cfg).unwrap();

    let requests: Vec<(http::request::Parts, Option<&str>)> = [
        ("/e/5000/items", Some("c5000")),
        ("/e/5003/mixed", Some("c5003")),
        ("/p/9995/x", Some("c9995")),
        ("/s/9996/", Some("c9996")),
        ("/r/9997/42", Some("c9997")),
        ("/nr/9987/ABC", Some("c9987")),
        ("/h/9998/x", Some("c9998")),
        ("/t/9999/abc", Some("c9999")),
        ("/nothing/here", None),
    ]
    .into_iter()
    .map(|(path, want)| {
        let p = http::Request::get(path)
            .header("host", "big.example.com")
            .header("x-tenant", "t9998")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        (p, want)
    })
    .collect();

    for (p, _) in &requests {
        table.find(p, 1);
    }
    for (p, want) in &requests {
        let mut got = false;
        let n = allocations_during(|| {
            got = match table.find(p, 1) {
                None => want.is_none(),
                Some(hit) => {
                    matches!(hit.action(), HitAction::Forward(f) if Some(f.cluster(p)) == *want)
                }
            };
        });
        assert!(got, "{} did not route to {want:?}", p.uri);
        assert_eq!(n, 0, "{} allocated {n} times", p.uri);
    }
}
