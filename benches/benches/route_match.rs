//! Route matching: the indexed [`RouteTable::find`] against Envoy's linear scan
//! (`RouteTable::find_linear`) on the same tables and requests.
//!
//! Each table has one virtual host (`api.example.com`) with N = 10, 100, 1,000 or 10,000
//! routes of mixed kinds, in a repeating pattern of ten: 4 exact paths, 4 prefixes (without a
//! trailing `/`, so `/svc0/p1` overlaps `/svc0/p11`), 1 regex and 1 prefix guarded by a header
//! condition; paths are grouped under `/svc{i/50}/`. Nineteen more virtual hosts (exact,
//! suffix- and prefix-wildcard domains, five routes each) make about twenty in all.
//!
//! Requests: `first` hits route 0 (exact path), `middle` a regex route near N/2, `last` route
//! N-1 (header-conditioned prefix) and `miss` matches nothing.
//!
//! ```text
//! cargo bench -p mesh-benches --bench route_match
//! ```

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::request::Parts;
use mesh_core::config::*;
use mesh_route::RouteTable;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
const HOST: &str = "api.example.com";

fn group(i: usize) -> usize {
    i / 50
}

fn route(i: usize) -> Route {
    let g = group(i);
    let cluster = format!("c{i}");
    match i % 10 {
        0 | 2 | 5 | 7 => Route::path(format!("/svc{g}/e{i}/items"), cluster),
        1 | 3 | 6 | 8 => Route::prefix(format!("/svc{g}/p{i}"), cluster),
        4 => Route::new(
            RouteMatch::new(PathMatch::SafeRegex(format!("/svc{g}/r{i}/[0-9]+"))),
            Action::Route(RouteAction::cluster(cluster)),
        ),
        _ => Route::prefix(format!("/svc{g}/h{i}/"), cluster)
            .with_header(HeaderMatcher::exact("x-tenant", format!("t{i}"))),
    }
}

fn table(n: usize) -> RouteTable {
    let mut main = VirtualHost::new("api", [HOST]);
    main.routes = (0..n).map(route).collect();
    let mut cfg = RouteConfiguration::new("bench").with_virtual_host(main);
    for k in 0..19 {
        let domains = [
            format!("svc{k}.example.com"),
            format!("*.svc{k}.internal"),
            format!("www.svc{k}.*"),
        ];
        let mut vh = VirtualHost::new(format!("vh{k}"), domains);
        vh.routes = (0..5)
            .map(|r| Route::prefix(format!("/v{k}/{r}"), format!("vh{k}-{r}")))
            .collect();
        cfg = cfg.with_virtual_host(vh);
    }
    RouteTable::compile(&cfg).expect("bench tables compile")
}

fn request(path: &str, tenant: &str) -> Parts {
    http::Request::get(path)
        .header("host", HOST)
        .header("x-tenant", tenant)
        .header("user-agent", "bench")
        .body(())
        .expect("valid request")
        .into_parts()
        .0
}

/// `(case, request, expected route index)`.
fn cases(n: usize) -> Vec<(&'static str, Parts, Option<usize>)> {
    let middle = n / 2 - (n / 2) % 10 + 4;
    let last = n - 1;
    vec![
        ("first", request("/svc0/e0/items", "t0"), Some(0)),
        (
            "middle",
            request(&format!("/svc{}/r{middle}/42", group(middle)), "t0"),
            Some(middle),
        ),
        (
            "last",
            request(
                &format!("/svc{}/h{last}/users/7?page=2", group(last)),
                &format!("t{last}"),
            ),
            Some(last),
        ),
        ("miss", request("/svc0/nothing/here?x=1", "t0"), None),
    ]
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_match");
    for n in SIZES {
        let t = table(n);
        for (case, parts, want) in cases(n) {
            assert_eq!(
                t.find(&parts, 42).and_then(|h| h.route_index()),
                want,
                "{case} at {n}"
            );
            assert_eq!(
                t.find_linear(&parts, 42).and_then(|h| h.route_index()),
                want,
                "{case} at {n} (linear)"
            );
            g.bench_with_input(
                BenchmarkId::new(format!("indexed/{case}"), n),
                &parts,
                |b, p| b.iter(|| black_box(t.find(black_box(p), 42).and_then(|h| h.route_index()))),
            );
            g.bench_with_input(
                BenchmarkId::new(format!("linear/{case}"), n),
                &parts,
                |b, p| {
                    b.iter(|| {
                        black_box(
                            t.find_linear(black_box(p), 42)
                                .and_then(|h| h.route_index()),
                        )
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
