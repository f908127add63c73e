//! A bounded fuzz of `find`: random bytes as path, host and header values against random
//! tables. Nothing may panic and the index must agree with the linear scan. Set
//! `MESH_FUZZ_CASES` to run longer (default 256 tables).
//!
//! No run has found a failing input yet (the longest: 4,000 tables with up to 16 requests
//! each). Hand-picked hostile inputs are kept below as named tests; an input the fuzz finds
//! belongs there too, named for the bug.

use http::request::Parts;
use http::{HeaderValue, Uri};
use mesh_core::config::*;
use mesh_route::{HitAction, RouteTable};
use proptest::prelude::*;

use crate::generate::{Mix, table};

/// Header names the generated tables look at, plus ones the lookup itself reads.
const NAMES: &[&str] = &[
    "x-a",
    "x-b",
    "content-type",
    "x-forwarded-proto",
    "x-envoy-internal",
];

/// `bytes` as an origin-form request target: as is when `http` accepts it, else with every
/// byte outside a conservative set percent-encoded.
fn uri(bytes: &[u8]) -> Uri {
    let mut raw = vec![b'/'];
    raw.extend_from_slice(bytes);
    Uri::try_from(raw.clone()).unwrap_or_else(|_| {
        let mut escaped = String::new();
        for &b in &raw {
            if b.is_ascii_alphanumeric() || b"/?&=;.-_~".contains(&b) {
                escaped.push(char::from(b));
            } else {
                escaped.push_str(&format!("%{b:02X}"));
            }
        }
        escaped.parse().expect("percent-encoded targets parse")
    })
}

/// `bytes` as a header value, without the bytes a header value cannot hold.
fn value(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).unwrap_or_else(|_| {
        let kept: Vec<u8> = bytes
            .iter()
            .copied()
            .filter(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
            .collect();
        HeaderValue::from_bytes(&kept).expect("filtered values are valid")
    })
}

fn parts(path: &[u8], host: Option<&[u8]>, headers: &[(usize, Vec<u8>)]) -> Parts {
    let mut p = http::Request::get(uri(path))
        .body(())
        .unwrap()
        .into_parts()
        .0;
    if let Some(h) = host {
        p.headers.insert(http::header::HOST, value(h));
    }
    for (name, v) in headers {
        p.headers.append(NAMES[name % NAMES.len()], value(v));
    }
    p
}

/// Looks `p` up with and without the index; both must agree, and resolving the action (and
/// the header mutations) must not panic.
fn run(t: &RouteTable, p: &Parts, random: u64) {
    let indexed = t.find(p, random);
    let linear = t.find_linear(p, random);
    let key = |h: &Option<mesh_route::Hit<'_>>| {
        h.as_ref()
            .map(|h| (h.virtual_host().index(), h.route_index()))
    };
    assert_eq!(key(&indexed), key(&linear), "{:?}", p);
    if let Some(hit) = indexed {
        if let HitAction::Forward(f) = hit.action() {
            let _ = f.cluster(p);
            let _ = f.rewritten_path(p);
            let _ = f.host_rewrite(p);
        }
        let mut headers = p.headers.clone();
        hit.apply_request_headers(&mut headers);
        hit.apply_response_headers(&mut headers);
    }
}

/// Hosts the generated tables know (`a.com`) and do not.
const HOSTS: &[&[u8]] = &[b"a.com", b"A.COM", b"b.com:80"];

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Random bytes, or bytes biased towards what the generated routes look at.
fn path_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(48),
        prop::collection::vec(
            prop::sample::select(&b"aAbB1/.-;?=&%#xX\xff\x00 "[..]),
            0..24
        ),
    ]
}

fn fuzz_cases() -> u32 {
    std::env::var("MESH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases()))]

    #[test]
    fn random_bytes_never_panic_and_agree_with_the_scan(
        cfg in table(Mix::Every, 0..32),
        reqs in prop::collection::vec(
            (
                path_bytes(),
                prop::option::weighted(0.9, prop_oneof![
                    prop::sample::select(HOSTS)
                        .prop_map(<[u8]>::to_vec),
                    bytes(300),
                ]),
                prop::collection::vec((any::<usize>(), bytes(16)), 0..4),
                any::<u64>(),
            ),
            1..16,
        ),
    ) {
        let t = RouteTable::compile(&cfg).unwrap();
        for (path, host, headers, random) in &reqs {
            run(&t, &parts(path, host.as_deref(), headers), *random);
        }
    }
}

// === hostile inputs ===

/// A table with every kind of route, used by the tests below.
fn mixed_table() -> RouteTable {
    let mut ci = Route::prefix("/A", "ci");
    ci.route_match.case_sensitive = false;
    let mut vh = VirtualHost::new("vh", ["*"]);
    vh.routes = vec![
        Route::path("/", "root"),
        ci,
        Route::new(
            RouteMatch::new(PathMatch::SafeRegex("(?i)/x.*".into())),
            Action::Route(RouteAction::cluster("re")),
        ),
        Route::new(
            RouteMatch::new(PathMatch::PathTemplate("/{x}/**".into())),
            Action::Route(RouteAction::cluster("tpl")),
        ),
        Route::prefix("/", "default").with_header(HeaderMatcher::exact("x-a", "\u{7f}")),
    ];
    RouteTable::compile(&RouteConfiguration::new("rc").with_virtual_host(vh)).unwrap()
}

/// Non-UTF-8 and control bytes in path, host and headers: no panic, same answer.
#[test]
fn non_utf8_and_control_bytes() {
    let t = mixed_table();
    for path in [&b"\xff\xfe"[..], b"\x00", b"%ZZ", b"a\xc3", b"??##", b""] {
        for host in [None, Some(&b"\xff"[..]), Some(&b"a.com:99999999999"[..])] {
            run(&t, &parts(path, host, &[(0, b"\xff\x7f".to_vec())]), 7);
        }
    }
}
