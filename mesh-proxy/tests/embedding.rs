//! Embedding: the proxyless [`Client`] under a failing host, the proxy mounted in an axum
//! router, any tower service as the upstream, and filters that rewrite a streamed body or
//! look at the host the balancer picked.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty, StreamBody};
use mesh_core::config::*;
use mesh_core::filter::{
    BodyFilter, BoxError, Buffered, HttpFilter, RequestHead, ResponseHead, UpstreamInfo,
};
use mesh_core::stats::StatName;
use mesh_proxy::test_util::{Behavior, Upstream};
use mesh_proxy::{Client, Proxy};
use tower::Service;

fn routes(route: Route) -> RouteConfiguration {
    RouteConfiguration::new("out")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(route))
}

fn bootstrap(route: Route, cluster: Cluster) -> Bootstrap {
    Bootstrap::default()
        .with_listener(Listener::http(
            "outbound",
            "127.0.0.1:0".parse().unwrap(),
            HttpConnectionManager::with_routes(routes(route)),
        ))
        .with_cluster(cluster)
}

async fn get(client: &Client, path: &str) -> (StatusCode, http::HeaderMap, String) {
    let req = http::Request::get(path)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = client.clone().call(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_client_retries_away_from_a_failing_host_ejects_it_and_takes_it_back() {
    let good = Upstream::start("good", Behavior::Identify).await;
    let bad = Upstream::start("bad", Behavior::Status(503)).await;
    let mut c = Cluster::new_static("svc", [good.addr(), bad.addr()]);
    c.outlier_detection = Some(OutlierDetection {
        consecutive_5xx: 2,
        max_ejection_percent: 100,
        ..OutlierDetection::default()
    });
    let mut route = Route::prefix("/", "svc");
    if let Action::Route(a) = &mut route.action {
        a.retry_policy = Some(RetryPolicy {
            retry_on: "5xx".into(),
            num_retries: 2,
            retry_host_predicate: vec!["envoy.retry_host_predicates.previous_hosts".into()],
            ..RetryPolicy::default()
        });
    }
    let client = Client::start(Proxy::builder(bootstrap(route, c)), "outbound")
        .await
        .unwrap();
    // Every call succeeds: a 503 from the bad host is retried on the other one.
    for _ in 0..10 {
        let (status, headers, _) = get(&client, "http://svc/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-upstream"], "good");
    }
    let ejected = || {
        client
            .proxy()
            .stats()
            .gauge(StatName::cluster(
                "svc",
                "outlier_detection.ejections_active",
            ))
            .get()
    };
    assert_eq!(ejected(), 1, "two consecutive 5xx eject the bad host");
    let hits = bad.requests();
    for _ in 0..10 {
        get(&client, "http://svc/").await;
    }
    assert_eq!(bad.requests(), hits, "an ejected host gets no traffic");
    // base_ejection_time 30 s, swept every 10 s by the client's own background task.
    tokio::time::sleep(Duration::from_secs(41)).await;
    assert_eq!(ejected(), 0, "the sweep brought the host back");
    for _ in 0..4 {
        get(&client, "http://svc/").await;
    }
    assert!(bad.requests() > hits, "the host gets traffic again");
    client.shutdown().await;
}

/// The proxy behind an axum router: the app's own routes first, everything else (the proxy
/// routes `/api`) through the mesh.
#[tokio::test]
async fn the_proxy_mounts_in_an_axum_router() {
    let up = Upstream::start("api", Behavior::Echo).await;
    let client = Client::start(
        Proxy::builder(bootstrap(
            Route::prefix("/api", "api"),
            Cluster::new_static("api", [up.addr()]),
        )),
        "outbound",
    )
    .await
    .unwrap();
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .fallback_service(client.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = mesh_proxy::test_util::Client::http1();
    assert_eq!(http.get(addr, "/health", &[]).await.text(), "ok");
    // A streamed request body (axum's, which is not Sync) goes through and back.
    let req = http::Request::post(format!("http://{addr}/api/echo"))
        .header("host", "shop")
        .body(mesh_proxy::body::full("ping"))
        .unwrap();
    let resp = http.send(req).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.text(), "ping");
    client.shutdown().await;
}

/// The upstream is any tower service: here hyper-util's client, connecting to the host the
/// balancer picked.
#[tokio::test]
async fn any_tower_service_is_the_upstream() {
    let a = Upstream::start("a", Behavior::Identify).await;
    let b = Upstream::start("b", Behavior::Identify).await;
    let hyper_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<mesh_proxy::body::ProxyBody>();
    let builder = Proxy::builder(bootstrap(
        Route::prefix("/", "svc"),
        Cluster::new_static("svc", [a.addr(), b.addr()]),
    ))
    .upstream_tower(hyper_client);
    let client = Client::start(builder, "outbound").await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (status, headers, _) = get(&client, "http://svc/").await;
        assert_eq!(status, StatusCode::OK);
        seen.push(headers["x-upstream"].to_str().unwrap().to_owned());
    }
    seen.sort();
    assert_eq!(seen, ["a", "a", "b", "b"], "round robin over both hosts");
    client.shutdown().await;
}

/// A filter (configured through `register_typed`) that upper-cases response bodies as they
/// stream, and one that replaces the request body once it has it whole.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ShoutConfig {
    /// Only responses of this content type.
    content_type: String,
}

#[derive(Debug)]
struct Shout(ShoutConfig);

struct Upper;

impl BodyFilter for Upper {
    fn on_data(&mut self, data: Bytes, _end: bool) -> Result<Bytes, BoxError> {
        Ok(Bytes::from(data.to_ascii_uppercase()))
    }
}

#[async_trait]
impl HttpFilter for Shout {
    fn request_body(
        &self,
        _req: &RequestHead,
        _cx: &mesh_core::filter::FilterContext,
    ) -> Option<Box<dyn BodyFilter>> {
        Some(Box::new(Buffered::new(1024, |body: Bytes| {
            Ok(Bytes::from(format!("<{}>", String::from_utf8_lossy(&body))))
        })))
    }

    fn response_body(
        &self,
        resp: &ResponseHead,
        _cx: &mesh_core::filter::FilterContext,
    ) -> Option<Box<dyn BodyFilter>> {
        let ct = resp.headers.get("content-type")?.to_str().ok()?;
        (ct == self.0.content_type).then(|| Box::new(Upper) as Box<dyn BodyFilter>)
    }
}

#[tokio::test]
async fn a_body_filter_rewrites_a_streamed_response() {
    // The upstream streams three chunks; the filter upper-cases each as it passes.
    let upstream = |_host: &Address, req: http::Request<mesh_proxy::body::ProxyBody>| async move {
        let prefix = req.into_body().collect().await?.to_bytes();
        let chunks = [prefix, Bytes::from(" one"), Bytes::from(" two")]
            .into_iter()
            .map(|c| Ok::<_, Infallible>(http_body::Frame::data(c)));
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        Ok::<_, BoxError>(
            http::Response::builder()
                .header("content-type", "text/plain")
                .header("content-length", "999")
                .body(mesh_proxy::body::boxed_unsync(body))
                .unwrap(),
        )
    };
    let mut hcm = HttpConnectionManager::with_routes(routes(Route::prefix("/", "svc")));
    hcm.http_filters.insert(
        0,
        HttpFilterConfig::new(
            "acme.shout",
            serde_json::json!({"content_type": "text/plain"}),
        ),
    );
    let boot = Bootstrap::default()
        .with_listener(Listener::http(
            "outbound",
            "127.0.0.1:0".parse().unwrap(),
            hcm,
        ))
        .with_cluster(Cluster::new_static("svc", ["127.0.0.1:9".parse().unwrap()]));
    let mut builder = Proxy::builder(boot.clone()).upstream_service(upstream);
    builder = builder.filter_typed("acme.shout", |c: ShoutConfig| Ok::<_, BoxError>(Shout(c)));
    let client = Client::start(builder, "outbound").await.unwrap();
    let req = http::Request::post("http://svc/")
        .body(mesh_proxy::body::full("hi"))
        .unwrap();
    let resp = client.clone().call(req).await.unwrap();
    assert!(
        resp.headers().get("content-length").is_none(),
        "the length changed"
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "<HI> ONE TWO");
    client.shutdown().await;

    // A config that does not fit the filter's type is an error naming the field.
    let mut bad = boot;
    if let Some(NetworkFilter::HttpConnectionManager(h)) =
        bad.listeners[0].chains_mut().next().map(|c| &mut c.filter)
    {
        h.http_filters[0].config = serde_json::json!({"content_typ": "x"});
    }
    let err = Proxy::builder(bad)
        .filter_typed("acme.shout", |c: ShoutConfig| Ok::<_, BoxError>(Shout(c)))
        .build()
        .unwrap_err();
    let text = format!("{err}: {:?}", std::error::Error::source(&err));
    assert!(text.contains("content_typ"), "{text}");
}

/// Sees the host the balancer picked for every attempt, and tells the upstream.
#[derive(Debug, Default)]
struct Picked(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl HttpFilter for Picked {
    fn on_upstream_request(&self, req: &mut RequestHead, up: &UpstreamInfo<'_>) {
        let host = format!("{}:{}#{}", up.host.host, up.host.port, up.attempt);
        req.headers
            .insert("x-picked", http::HeaderValue::from_str(&host).unwrap());
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {host}", up.cluster));
    }
}

#[tokio::test]
async fn an_upstream_aware_filter_sees_each_attempts_host() {
    let bad = Upstream::start("bad", Behavior::Status(503)).await;
    let good = Upstream::start("good", Behavior::Identify).await;
    let mut route = Route::prefix("/", "svc");
    if let Action::Route(a) = &mut route.action {
        a.retry_policy = Some(RetryPolicy {
            retry_on: "5xx".into(),
            num_retries: 1,
            retry_host_predicate: vec!["envoy.retry_host_predicates.previous_hosts".into()],
            ..RetryPolicy::default()
        });
    }
    let mut hcm = HttpConnectionManager::with_routes(routes(route));
    hcm.http_filters.insert(
        0,
        HttpFilterConfig::new("acme.picked", serde_json::json!({})),
    );
    let boot = Bootstrap::default()
        .with_listener(Listener::http(
            "outbound",
            "127.0.0.1:0".parse().unwrap(),
            hcm,
        ))
        .with_cluster(Cluster::new_static("svc", [bad.addr(), good.addr()]));
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = Arc::clone(&log);
    let builder = Proxy::builder(boot).filter("acme.picked", move |_: &serde_json::Value| {
        Ok::<_, BoxError>(Picked(Arc::clone(&log2)))
    });
    let client = Client::start(builder, "outbound").await.unwrap();
    for _ in 0..4 {
        let (status, headers, _) = get(&client, "http://svc/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-upstream"], "good");
    }
    let host = |u: &Upstream| format!("{}:{}", u.addr().ip(), u.addr().port());
    let log = log.lock().unwrap().clone();
    // Round robin sends some first attempts to the bad host; each of those is retried, as
    // attempt 2, on the good one, and the filter saw both.
    let retried: Vec<usize> = (0..log.len()).filter(|&i| log[i].ends_with("#2")).collect();
    assert!(!retried.is_empty(), "{log:?}");
    for i in retried {
        assert_eq!(log[i - 1], format!("svc {}#1", host(&bad)), "{log:?}");
        assert_eq!(log[i], format!("svc {}#2", host(&good)), "{log:?}");
    }
    assert_eq!(
        log.iter().filter(|l| l.ends_with("#1")).count(),
        4,
        "{log:?}"
    );
    client.shutdown().await;
}

/// The client configured only over xDS, from the toolkit's control plane serving Istio YAML:
/// it starts before its listener exists (calls are 503), takes the listener and cluster when
/// they come, and follows a change the control plane pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_takes_its_config_over_xds() {
    use mesh_xds::xds::pilot::{NodeView, Pilot};
    use mesh_xds::xds::server::XdsServer;

    let v1 = Upstream::start("reviews-v1", Behavior::Identify).await;
    let v2 = Upstream::start("reviews-v2", Behavior::Identify).await;
    let entry = |up: &Upstream| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
             metadata: {{ name: reviews, namespace: default }}\n\
             spec:\n  hosts: [reviews]\n  location: MESH_INTERNAL\n\
             \x20 ports: [{{ number: 9080, name: http, protocol: HTTP }}]\n\
             \x20 resolution: STATIC\n\
             \x20 endpoints: [{{ address: 127.0.0.1, ports: {{ http: {} }} }}]\n",
            up.addr().port()
        )
    };
    let parse = |yaml: &str| {
        mesh_xds::istio::parse_str(yaml, "reviews.yaml", "default")
            .unwrap()
            .value
    };
    let pilot = Pilot::new(parse(&entry(&v1)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let cache = pilot.cache().clone();
    tokio::spawn(async move {
        XdsServer::new(cache)
            .serve(listener, std::future::pending())
            .await
    });

    // A sidecar's node, with its outbound listener on port 0 (bound to nothing here).
    let mut node = Node {
        id: "sidecar~127.0.0.1~app-0.default~default.svc.cluster.local".into(),
        ..Node::default()
    };
    node.metadata.insert("NAMESPACE".into(), "default".into());
    node.metadata.insert("MESH_OUTBOUND_PORT".into(), 0.into());
    let view = NodeView::of(&node).key();
    let mut boot = Bootstrap::default().with_cluster(
        Cluster::new_static("xds-grpc", [server]).with_protocol(UpstreamProtocol::Http2),
    );
    boot.node = node;
    boot.dynamic_resources = Some(DynamicResources {
        initial_fetch_timeout: Duration::ZERO,
        ..DynamicResources::over_ads("xds-grpc")
    });
    // The listener's name is the translation's, as for a sidecar.
    let name =
        mesh_xds::istio::translate(&parse(&entry(&v1)), &mesh_xds::istio::Options::sidecar(0))
            .unwrap()
            .value
            .listeners[0]
            .name
            .clone();

    let client = Client::start(Proxy::builder(boot.clone()), name)
        .await
        .unwrap();
    // Nothing has come yet: no listener.
    assert_eq!(
        get(&client, "http://reviews:9080/reviews/1").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let source =
        mesh_proxy::source::XdsSource::connect(&boot, client.proxy().stats().clone()).unwrap();
    client.follow(source);
    let mut state = client.proxy().dynamic_state().expect("following xDS");
    let synced = |state: &mut tokio::sync::watch::Receiver<_>| {
        let cache = pilot.cache().clone();
        let view = view.clone();
        let mut state = state.clone();
        async move {
            loop {
                let holds = cache.snapshot(&view).is_some_and(|snap| {
                    mesh_xds::xds::client::XdsState::holds(&state.borrow_and_update(), &snap)
                });
                if holds {
                    return;
                }
                state.changed().await.expect("the xDS client runs");
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), synced(&mut state))
        .await
        .expect("the client takes the control plane's config");
    let (status, headers, _) = get(&client, "http://reviews:9080/reviews/1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-upstream"], "reviews-v1");

    // The control plane moves reviews to another endpoint: the client follows.
    pilot.update(parse(&entry(&v2))).unwrap();
    tokio::time::timeout(Duration::from_secs(30), synced(&mut state))
        .await
        .expect("the client takes the update");
    let (status, headers, _) = get(&client, "http://reviews:9080/reviews/1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-upstream"], "reviews-v2");
    client.shutdown().await;
}
