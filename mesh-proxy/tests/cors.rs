//! The CORS filter with a per-route policy.

use http::{Method, Request, StatusCode};
use mesh_core::config::*;
use mesh_proxy::body;
use mesh_proxy::test_util::{Behavior, Client, Upstream};
use serde_json::json;

#[tokio::test]
async fn preflights_are_answered_and_allowed_origins_get_headers() {
    let up = Upstream::start("up", Behavior::Identify).await;
    let mut route = Route::prefix("/", "up");
    route.typed_per_filter_config.insert(
        "envoy.filters.http.cors".into(),
        json!({
            "allow_origin_string_match": [{"exact": "https://a.example"}, {"suffix": ".trusted.example"}],
            "allow_methods": "GET,POST",
            "allow_headers": "x-token",
            "expose_headers": "x-trace",
            "max_age": "600",
            "allow_credentials": true,
        }),
    );
    let mut hcm = HttpConnectionManager::with_routes(
        RouteConfiguration::new("r")
            .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(route)),
    );
    hcm.http_filters.push(HttpFilterConfig::new(
        "envoy.filters.http.cors",
        serde_json::Value::Null,
    ));
    let boot = Bootstrap::default()
        .with_listener(Listener::http("http", "127.0.0.1:0".parse().unwrap(), hcm))
        .with_cluster(Cluster::new_static("up", [up.addr()]));
    let p = mesh_proxy::Proxy::builder(boot)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let addr = p.listener_addr("http").unwrap();
    let c = Client::http1();
    let preflight = |origin: &'static str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri(format!("http://{addr}/api"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(body::empty())
            .unwrap()
    };

    let r = c.send(preflight("https://a.example")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("access-control-allow-origin"), "https://a.example");
    assert_eq!(r.header("access-control-allow-methods"), "GET,POST");
    assert_eq!(r.header("access-control-allow-headers"), "x-token");
    assert_eq!(r.header("access-control-max-age"), "600");
    assert_eq!(r.header("access-control-allow-credentials"), "true");
    assert_eq!(up.requests(), 0, "the preflight was answered by the proxy");

    let r = c.send(preflight("https://evil.example")).await;
    assert_eq!(r.header("x-upstream"), "up", "other origins pass through");
    assert!(r.headers.get("access-control-allow-origin").is_none());

    let r = c
        .get(addr, "/api", &[("origin", "https://x.trusted.example")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("access-control-allow-origin"),
        "https://x.trusted.example"
    );
    assert_eq!(r.header("access-control-expose-headers"), "x-trace");
    let r = c.get(addr, "/api", &[]).await;
    assert!(
        r.headers.get("access-control-allow-origin").is_none(),
        "no origin, no CORS"
    );
    p.shutdown().await;
}

#[tokio::test]
async fn an_invalid_policy_is_a_config_error() {
    let mut hcm = HttpConnectionManager::with_routes(RouteConfiguration::new("r"));
    hcm.http_filters.push(HttpFilterConfig::new(
        "envoy.filters.http.cors",
        json!({"allow_origin": ["*"]}),
    ));
    let boot = Bootstrap::default().with_listener(Listener::http(
        "http",
        "127.0.0.1:0".parse().unwrap(),
        hcm,
    ));
    let err = mesh_proxy::Proxy::builder(boot).build().unwrap_err();
    let msg = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        msg.contains("allow_origin: unknown field `allow_origin`"),
        "{msg}"
    );
}
