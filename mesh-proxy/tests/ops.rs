//! Operating the proxy: the admin API, hot reload and draining.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, StatusCode};
use mesh_core::config::*;
use mesh_proxy::body;
use mesh_proxy::test_util::{Behavior, Client, Upstream};
use mesh_proxy::{Proxy, RunningProxy};

fn routes_to(cluster: &str) -> RouteConfiguration {
    RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", cluster)))
}

fn bootstrap(listener: &str, addr: &str, cluster: &str, upstream: SocketAddr) -> Bootstrap {
    let mut b = Bootstrap::default()
        .with_listener(Listener::http(
            listener,
            addr.parse().unwrap(),
            HttpConnectionManager::with_routes(routes_to(cluster)),
        ))
        .with_cluster(Cluster::new_static(cluster, [upstream]));
    b.admin = Some(Admin {
        address: "127.0.0.1:0".parse().unwrap(),
    });
    b
}

async fn start(b: Bootstrap) -> RunningProxy {
    Proxy::builder(b).build().unwrap().start().await.unwrap()
}

async fn admin(p: &RunningProxy, method: &str, path: &str) -> mesh_proxy::test_util::Collected {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", p.admin_addr().unwrap()))
        .body(body::empty())
        .unwrap();
    Client::http1().send(req).await
}

#[tokio::test]
async fn admin_endpoints_show_and_steer_the_proxy() {
    let a = Upstream::start("a", Behavior::Identify).await;
    let p = start(bootstrap("http", "127.0.0.1:0", "web", a.addr())).await;
    let addr = p.listener_addr("http").unwrap();
    for _ in 0..3 {
        assert_eq!(
            Client::http1().get(addr, "/x", &[]).await.status,
            StatusCode::OK
        );
    }

    let r = admin(&p, "GET", "/ready").await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "LIVE\n"));

    let dump: serde_json::Value =
        serde_json::from_slice(&admin(&p, "GET", "/config_dump").await.body).unwrap();
    let types: Vec<&str> = dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["@type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
            "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
        ]
    );
    assert_eq!(
        dump["configs"][1]["static_clusters"][0]["cluster"]["name"],
        "web"
    );
    assert_eq!(dump["configs"][1]["version_info"], "1");
    // The resources are Envoy v3 messages, as Envoy's own dump prints them.
    let listener = &dump["configs"][2]["static_listeners"][0]["listener"];
    assert_eq!(
        listener["@type"],
        "type.googleapis.com/envoy.config.listener.v3.Listener"
    );
    // The configured address (port 0 here); /listeners shows the bound one.
    assert_eq!(
        listener["address"]["socket_address"]["address"],
        "127.0.0.1"
    );
    assert_eq!(listener["address"]["socket_address"]["port_value"], 0);
    let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(
        hcm["@type"],
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    );
    assert_eq!(hcm["stat_prefix"], "ingress_http");
    assert_eq!(
        hcm["route_config"]["virtual_hosts"][0]["routes"][0],
        serde_json::json!({"match": {"prefix": "/"}, "route": {"cluster": "web"}})
    );
    assert_eq!(
        dump["configs"][0]["bootstrap"]["static_resources"]["clusters"][0]["type"],
        "STATIC"
    );
    assert_eq!(
        dump["configs"][3]["static_route_configs"][0]["route_config"]["@type"],
        "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
    );
    assert_eq!(
        dump["configs"][4]["static_endpoint_configs"][0]["endpoint_config"]["cluster_name"],
        "web"
    );
    let only: serde_json::Value = serde_json::from_slice(
        &admin(
            &p,
            "GET",
            "/config_dump?resource=static_clusters&mask=name,type,connect_timeout,lb_policy,load_assignment",
        )
        .await
        .body,
    )
    .unwrap();
    // Round robin is Envoy's default policy, so the masked cluster has no lb_policy.
    assert_eq!(
        only,
        serde_json::json!({"configs": [{
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "name": "web",
            "type": "STATIC",
            "connect_timeout": "5s",
            "load_assignment": {
                "cluster_name": "web",
                "endpoints": [{"locality": {}, "lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                    "address": "127.0.0.1",
                    "port_value": a.addr().port()
                }}}}]}]
            }
        }]})
    );

    let clusters = admin(&p, "GET", "/clusters").await.text();
    let host = format!("web::{}", a.addr());
    assert!(
        clusters.contains(&format!("{host}::rq_total::3\n")),
        "{clusters}"
    );
    assert!(
        clusters.contains(&format!("{host}::rq_success::3\n")),
        "{clusters}"
    );
    assert!(
        clusters.contains(&format!("{host}::cx_total::1\n")),
        "{clusters}"
    );
    assert!(
        clusters.contains(&format!("{host}::health_flags::healthy\n")),
        "{clusters}"
    );
    assert!(
        clusters.contains("web::default_priority::max_connections::1024\n"),
        "{clusters}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&admin(&p, "GET", "/clusters?format=json").await.body).unwrap();
    assert_eq!(
        json["cluster_statuses"][0]["host_statuses"][0]["address"]["socket_address"]["port_value"],
        a.addr().port()
    );

    let membership = admin(&p, "GET", "/stats?filter=membership_(healthy|total)")
        .await
        .text();
    assert_eq!(
        membership,
        "cluster.web.membership_healthy: 1\ncluster.web.membership_total: 1\n"
    );
    let stats = admin(&p, "GET", "/stats?filter=upstream_rq_total")
        .await
        .text();
    assert_eq!(stats, "cluster.web.upstream_rq_total: 3\n");
    let used = admin(&p, "GET", "/stats?usedonly").await.text();
    assert!(
        used.contains("http.ingress_http.downstream_rq_2xx: 3\n"),
        "{used}"
    );
    assert!(
        !used.contains("upstream_rq_timeout"),
        "zero stats are left out: {used}"
    );
    let prom = admin(&p, "GET", "/stats/prometheus").await;
    assert!(
        prom.text()
            .contains("envoy_cluster_upstream_rq_total{envoy_cluster_name=\"web\"} 3\n")
    );
    assert!(
        prom.text()
            .contains("# TYPE envoy_cluster_upstream_rq_time histogram\n")
    );
    assert!(prom.text().contains("envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress_http\",le=\"+Inf\"} "));
    assert_eq!(
        admin(&p, "GET", "/stats?filter=(").await.status,
        StatusCode::BAD_REQUEST
    );

    let listeners = admin(&p, "GET", "/listeners").await.text();
    assert_eq!(listeners, format!("http::{addr}\n"));
    let info: serde_json::Value =
        serde_json::from_slice(&admin(&p, "GET", "/server_info").await.body).unwrap();
    assert_eq!(info["state"], "LIVE");

    // Mutating endpoints want POST; unknown paths list the endpoints.
    assert_eq!(
        admin(&p, "GET", "/healthcheck/fail").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let unknown = admin(&p, "GET", "/nope").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.text().contains("/config_dump"));
    assert_eq!(
        admin(&p, "POST", "/logging?level=debug").await.status,
        StatusCode::BAD_REQUEST
    );

    assert_eq!(
        admin(&p, "POST", "/healthcheck/fail").await.status,
        StatusCode::OK
    );
    assert_eq!(
        admin(&p, "GET", "/ready").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        admin(&p, "POST", "/healthcheck/ok").await.status,
        StatusCode::OK
    );
    assert_eq!(admin(&p, "GET", "/ready").await.status, StatusCode::OK);

    assert_eq!(
        admin(&p, "POST", "/quitquitquit").await.status,
        StatusCode::OK
    );
    tokio::time::timeout(Duration::from_secs(10), p.quit_requested())
        .await
        .expect("quit requested");
    p.shutdown().await;
}

#[tokio::test]
async fn drain_listeners_stops_accepting() {
    let a = Upstream::start("a", Behavior::Identify).await;
    let p = start(bootstrap("http", "127.0.0.1:0", "web", a.addr())).await;
    let addr = p.listener_addr("http").unwrap();
    assert_eq!(
        admin(&p, "POST", "/drain_listeners").await.status,
        StatusCode::OK
    );
    let refused = async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), refused)
        .await
        .expect("listener closes");
    assert_eq!(
        admin(&p, "GET", "/ready").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    p.shutdown().await;
}

#[tokio::test]
async fn reload_swaps_routes_adds_and_removes_listeners_and_rejects_bad_configs() {
    let a = Upstream::start("a", Behavior::Identify).await;
    let b = Upstream::start("b", Behavior::Identify).await;
    let p = start(bootstrap("http", "127.0.0.1:0", "web", a.addr())).await;
    let addr = p.listener_addr("http").unwrap();
    let c = Client::http1();
    assert_eq!(c.get(addr, "/", &[]).await.header("x-upstream"), "a");

    // Same listener (same address), route to b instead.
    let mut v2 = bootstrap("http", &addr.to_string(), "web", b.addr());
    v2.listeners.push(Listener::http(
        "extra",
        "127.0.0.1:0".parse().unwrap(),
        HttpConnectionManager::with_routes(routes_to("web")),
    ));
    assert_eq!(p.reload(v2.clone()).await.unwrap(), 2);
    assert_eq!(
        c.get(addr, "/", &[]).await.header("x-upstream"),
        "b",
        "existing connection, new routes"
    );
    assert_eq!(
        Client::http1()
            .get(addr, "/", &[])
            .await
            .header("x-upstream"),
        "b"
    );
    let extra = p.listener_addr("extra").expect("new listener bound");
    assert_eq!(
        Client::http1()
            .get(extra, "/", &[])
            .await
            .header("x-upstream"),
        "b"
    );

    // An invalid config is rejected with its errors; the running one keeps serving.
    let mut bad = v2.clone();
    bad.clusters[0].name = "renamed".into();
    let err = p.reload(bad).await.unwrap_err();
    assert!(err.is_config());
    let msg = std::error::Error::source(&err).unwrap().to_string();
    assert!(msg.contains("unknown cluster \"web\""), "{msg}");
    assert_eq!(p.config_version(), 2);
    assert_eq!(c.get(addr, "/", &[]).await.header("x-upstream"), "b");
    assert_eq!(
        p.stats()
            .counter(mesh_core::stats::StatName::plain(
                "server.config_reload_rejected"
            ))
            .get(),
        1
    );

    // Removing the extra listener drains it; the first one is untouched.
    let v3 = bootstrap("http", &addr.to_string(), "web", b.addr());
    assert_eq!(p.reload(v3).await.unwrap(), 3);
    assert!(p.listener_addr("extra").is_none());
    let closed = async {
        while tokio::net::TcpStream::connect(extra).await.is_ok() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("removed listener closes");
    assert_eq!(c.get(addr, "/", &[]).await.header("x-upstream"), "b");
    assert_eq!(
        b.accepted(),
        1,
        "the pooled upstream connection survived both reloads"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_swaps_under_load_never_fail_a_request() {
    const REQUESTS: usize = 20_000;
    const CONNECTIONS: usize = 16;
    const SWAPS: usize = 100;
    let a = Upstream::start("a", Behavior::Identify).await;
    let b = Upstream::start("b", Behavior::Identify).await;
    let p = std::sync::Arc::new(start(bootstrap("http", "127.0.0.1:0", "web-a", a.addr())).await);
    let addr = p.listener_addr("http").unwrap();
    let versions = [
        bootstrap("http", &addr.to_string(), "web-a", a.addr()),
        bootstrap("http", &addr.to_string(), "web-b", b.addr()),
    ];

    let mut load = tokio::task::JoinSet::new();
    for k in 0..CONNECTIONS {
        load.spawn(async move {
            let c = Client::http1();
            let (mut ok, mut seen) = (0usize, [0usize; 2]);
            for _ in 0..REQUESTS / CONNECTIONS {
                let r = c.get(addr, &format!("/c{k}"), &[]).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text());
                match r.header("x-upstream") {
                    "a" => seen[0] += 1,
                    "b" => seen[1] += 1,
                    other => panic!("response from unexpected upstream {other:?}"),
                }
                ok += 1;
            }
            (ok, seen)
        });
    }
    let swapper = {
        let p = std::sync::Arc::clone(&p);
        tokio::spawn(async move {
            for i in 0..SWAPS {
                p.reload(versions[(i + 1) % 2].clone()).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut total = 0;
    let mut seen = [0; 2];
    while let Some(r) = load.join_next().await {
        let (ok, s) = r.unwrap();
        total += ok;
        seen[0] += s[0];
        seen[1] += s[1];
    }
    swapper.await.unwrap();
    assert_eq!(total, REQUESTS);
    assert!(seen[0] > 0 && seen[1] > 0, "both versions served: {seen:?}");
    assert_eq!(p.config_version(), 1 + SWAPS as u64);
    std::sync::Arc::into_inner(p).unwrap().shutdown().await;
}
