//! Header mutations across levels (SEMANTICS §3.7) and per-filter config merging.

use std::collections::BTreeMap;

use mesh_core::config::*;

use crate::support::*;

fn set(key: &str, value: &str) -> HeaderMutations {
    HeaderMutations {
        request_headers_to_add: vec![HeaderValueOption::set(key, value)],
        response_headers_to_add: vec![HeaderValueOption::set(key, value)],
        ..HeaderMutations::default()
    }
}

fn append(key: &str, value: &str) -> HeaderMutations {
    HeaderMutations {
        request_headers_to_add: vec![HeaderValueOption::append(key, value)],
        response_headers_to_add: vec![HeaderValueOption::append(key, value)],
        ..HeaderMutations::default()
    }
}

/// Config with a weighted route (entry level), a route level, a vhost level and a config level,
/// each setting `x-level` (overwrite) and appending its name to `x-trace`.
fn layered(most_specific_wins: bool) -> RouteConfiguration {
    let both = |name: &str| {
        let mut m = set("x-level", name);
        m.request_headers_to_add
            .push(HeaderValueOption::append("x-trace", name));
        m.response_headers_to_add
            .push(HeaderValueOption::append("x-trace", name));
        m
    };
    let weighted = WeightedClusters {
        clusters: vec![ClusterWeight {
            name: "c".into(),
            weight: 1,
            headers: both("weighted"),
            ..ClusterWeight::default()
        }],
        ..WeightedClusters::default()
    };
    let mut r = route_with(
        prefix("/w"),
        RouteAction::new(ClusterSpecifier::WeightedClusters(weighted)),
    );
    r.headers = both("route");
    let mut plain = Route::prefix("/p", "c");
    plain.headers = both("route");
    let mut redirect = Route::new(
        prefix("/r"),
        Action::Redirect(RedirectAction {
            host_redirect: Some("x".into()),
            ..RedirectAction::default()
        }),
    );
    redirect.headers = both("route");
    let mut direct = Route::new(
        prefix("/d"),
        Action::DirectResponse(DirectResponseAction {
            status: 200,
            body: None,
        }),
    );
    direct.headers = both("route");
    let mut vh = VirtualHost::new("vh", ["*"])
        .with_route(r)
        .with_route(plain)
        .with_route(redirect)
        .with_route(direct);
    vh.headers = both("vhost");
    let mut cfg = RouteConfiguration::new("rc").with_virtual_host(vh);
    cfg.headers = both("config");
    cfg.most_specific_header_mutations_wins = most_specific_wins;
    cfg
}

#[test]
fn level_order() {
    struct Case {
        most_specific_wins: bool,
        path: &'static str,
        level: &'static str,
        trace: &'static [&'static str],
    }
    for c in [
        Case {
            most_specific_wins: false,
            path: "/w",
            level: "config",
            trace: &["weighted", "route", "vhost", "config"],
        },
        Case {
            most_specific_wins: true,
            path: "/w",
            level: "route",
            trace: &["weighted", "config", "vhost", "route"],
        },
        Case {
            most_specific_wins: false,
            path: "/p",
            level: "config",
            trace: &["route", "vhost", "config"],
        },
        Case {
            most_specific_wins: true,
            path: "/p",
            level: "route",
            trace: &["config", "vhost", "route"],
        },
    ] {
        let t = table(&layered(c.most_specific_wins));
        let p = get("h", c.path);
        let hit = t.find(&p, 0).unwrap();
        let mut req = http::HeaderMap::new();
        hit.apply_request_headers(&mut req);
        assert_eq!(
            values(&req, "x-level"),
            [c.level],
            "{} {}",
            c.path,
            c.most_specific_wins
        );
        assert_eq!(values(&req, "x-trace"), c.trace);
        let mut resp = http::HeaderMap::new();
        hit.apply_response_headers(&mut resp);
        assert_eq!(values(&resp, "x-level"), [c.level]);
        assert_eq!(values(&resp, "x-trace"), c.trace);
        assert!(resp.get("location").is_none());
    }
}

#[test]
fn local_replies_get_route_level_response_headers() {
    let t = table(&layered(false));
    for path in ["/r", "/d"] {
        let p = get("h", path);
        let hit = t.find(&p, 0).unwrap();
        let mut resp = http::HeaderMap::new();
        hit.apply_response_headers(&mut resp);
        assert_eq!(
            values(&resp, "x-trace"),
            ["route", "vhost", "config"],
            "{path}"
        );
    }
    let p = get("h", "/r");
    let mut resp = http::HeaderMap::new();
    t.find(&p, 0).unwrap().apply_response_headers(&mut resp);
    assert_eq!(values(&resp, "location"), ["http://x/r"]);
}

#[test]
fn removal_then_addition_per_level() {
    let mut route = Route::prefix("/", "c");
    route.headers = HeaderMutations {
        request_headers_to_remove: vec!["x-a".into(), "X-Gone".into()],
        request_headers_to_add: vec![HeaderValueOption {
            append_action: AppendAction::AddIfAbsent,
            ..HeaderValueOption::append("x-a", "route")
        }],
        response_headers_to_remove: vec!["server".into()],
        ..HeaderMutations::default()
    };
    let mut vh = VirtualHost::new("vh", ["*"]).with_route(route);
    // The vhost runs after the route: its removal wins over the route's addition.
    vh.headers = HeaderMutations {
        request_headers_to_remove: vec!["x-a".into()],
        request_headers_to_add: vec![HeaderValueOption {
            append_action: AppendAction::OverwriteIfExists,
            ..HeaderValueOption::append("x-a", "vhost")
        }],
        ..HeaderMutations::default()
    };
    let mut cfg = RouteConfiguration::new("rc").with_virtual_host(vh);
    cfg.headers = append("x-a", "config");
    let t = table(&cfg);
    let p = get("h", "/");
    let hit = t.find(&p, 0).unwrap();
    let mut h = http::HeaderMap::new();
    h.insert("x-a", http::HeaderValue::from_static("client"));
    h.insert("x-gone", http::HeaderValue::from_static("1"));
    hit.apply_request_headers(&mut h);
    assert_eq!(values(&h, "x-a"), ["config"]);
    assert!(h.get("x-gone").is_none());
    let mut resp = http::HeaderMap::new();
    resp.insert("server", http::HeaderValue::from_static("upstream"));
    hit.apply_response_headers(&mut resp);
    assert!(resp.get("server").is_none());
    assert_eq!(values(&resp, "x-a"), ["config"]);
}

#[test]
fn require_tls_redirect_has_no_mutations() {
    let mut cfg = layered(false);
    cfg.virtual_hosts[0].require_tls = TlsRequirement::All;
    let t = table(&cfg);
    let p = get_with("h", "/p", &[("x-forwarded-proto", "http")]);
    let hit = t.find(&p, 0).unwrap();
    let mut resp = http::HeaderMap::new();
    hit.apply_response_headers(&mut resp);
    assert_eq!(values(&resp, "location"), ["https://h/p"]);
    assert!(resp.get("x-trace").is_none());
}

#[test]
fn typed_per_filter_config_merging() {
    let map = |pairs: &[(&str, i64)]| -> BTreeMap<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::json!(v)))
            .collect()
    };
    let mut with_cfg = Route::prefix("/r", "c");
    with_cfg.typed_per_filter_config = map(&[("a", 2), ("b", 2)]);
    let mut weighted = route_with(
        prefix("/w"),
        RouteAction::new(ClusterSpecifier::WeightedClusters(WeightedClusters {
            clusters: vec![ClusterWeight {
                name: "c".into(),
                weight: 1,
                typed_per_filter_config: map(&[("b", 3)]),
                ..ClusterWeight::default()
            }],
            ..WeightedClusters::default()
        })),
    );
    weighted.typed_per_filter_config = map(&[("c", 2)]);
    let mut vh = VirtualHost::new("vh", ["v.com"])
        .with_route(with_cfg)
        .with_route(weighted)
        .with_route(Route::prefix("/", "c"));
    vh.typed_per_filter_config = map(&[("a", 1), ("v", 1)]);
    let bare = VirtualHost::new("bare", ["b.com"]).with_route(Route::prefix("/", "c"));
    let t = table(
        &RouteConfiguration::new("rc")
            .with_virtual_host(vh)
            .with_virtual_host(bare),
    );
    let cfg_of = |host: &str, path: &str| {
        let p = get(host, path);
        t.find(&p, 0).unwrap().typed_per_filter_config().map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let json = (**v).downcast_ref::<serde_json::Value>().unwrap();
                    (k.clone(), json.clone())
                })
                .collect::<std::collections::BTreeMap<_, _>>()
        })
    };
    assert_eq!(
        cfg_of("v.com", "/r"),
        Some(map(&[("a", 2), ("b", 2), ("v", 1)]))
    );
    assert_eq!(
        cfg_of("v.com", "/w"),
        Some(map(&[("a", 1), ("b", 3), ("c", 2), ("v", 1)]))
    );
    assert_eq!(cfg_of("v.com", "/"), Some(map(&[("a", 1), ("v", 1)])));
    assert_eq!(cfg_of("b.com", "/"), None);
}
