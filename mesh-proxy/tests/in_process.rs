//! The proxy without sockets: `Proxy::handle` in, an `UpstreamService` out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mesh_core::config::*;
use mesh_proxy::{Proxy, body};

fn config(retry: bool) -> Bootstrap {
    let mut route = Route::prefix("/", "svc");
    if let Action::Route(a) = &mut route.action
        && retry
    {
        a.retry_policy = Some(RetryPolicy {
            retry_on: "reset".into(),
            num_retries: 1,
            retry_host_predicate: vec!["envoy.retry_host_predicates.previous_hosts".into()],
            host_selection_retry_max_attempts: 5,
            ..RetryPolicy::default()
        });
    }
    Bootstrap::default()
        .with_listener(Listener::http(
            "in",
            "127.0.0.1:10000".parse().unwrap(),
            HttpConnectionManager::with_routes(
                RouteConfiguration::new("r")
                    .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(route)),
            ),
        ))
        .with_cluster(Cluster::new_static(
            "svc",
            [
                "10.0.0.1:80".parse().unwrap(),
                "10.0.0.2:80".parse().unwrap(),
            ],
        ))
}

fn get(path: &str) -> Request<body::ProxyBody> {
    Request::builder()
        .uri(path)
        .header("host", "svc")
        .body(body::empty())
        .unwrap()
}

#[tokio::test]
async fn a_request_is_routed_and_answered_in_process() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let proxy = Proxy::builder(config(false))
        .upstream_service(move |host: &Address, req: Request<body::ProxyBody>| {
            seen.fetch_add(1, Ordering::SeqCst);
            let text = format!(
                "{host} {} {}",
                req.uri().path(),
                req.headers()["x-forwarded-proto"].to_str().unwrap()
            );
            async move { Ok(Response::new(body::full(text))) }
        })
        .build()
        .unwrap();
    let remote = "192.0.2.7:5555".parse().unwrap();
    let resp = proxy.handle("in", remote, get("/hello")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["server"], "envoy");
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.starts_with("10.0.0."), "{text}");
    assert!(text.ends_with(" /hello http"), "{text}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let e = proxy.handle("nope", remote, get("/")).await.unwrap_err();
    assert!(e.is_config(), "{e}");
}

#[tokio::test]
async fn an_upstream_error_is_a_reset_and_is_retried_on_the_other_host() {
    let proxy = Proxy::builder(config(true))
        .upstream_service(|host: &Address, _req: Request<body::ProxyBody>| {
            let bad = host.host == "10.0.0.1";
            let host = host.to_string();
            async move {
                if bad {
                    Err("connection reset".into())
                } else {
                    Ok(Response::new(body::full(host)))
                }
            }
        })
        .build()
        .unwrap();
    let remote = "192.0.2.7:5555".parse().unwrap();
    for _ in 0..4 {
        let resp = proxy.handle("in", remote, get("/")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let text = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&text[..], b"10.0.0.2:80");
    }
}
