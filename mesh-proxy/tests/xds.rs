//! The proxy configured over ADS by the toolkit's management server, on loopback: it serves
//! what it is sent, an endpoint-only push keeps its pooled connections, a config it refuses is
//! NACKed, and the admin API shows the dynamic resources as Envoy's does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::config::*;
use mesh_proxy::source::XdsSource;
use mesh_proxy::test_util::{Behavior, Client, Upstream};
use mesh_xds::xds::resource::{Resource, ResourceType};
use mesh_xds::xds::server::{NodeStatus, Snapshot, SnapshotCache, XdsServer};

const NODE: &str = "sidecar~127.0.0.1~web-1.default~default.svc.cluster.local";

async fn control_plane(cache: Arc<SnapshotCache>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(XdsServer::new(cache).serve(listener, std::future::pending()));
    addr
}

fn bootstrap(server: SocketAddr, api_type: AdsApiType) -> Bootstrap {
    let mut b = Bootstrap::default()
        .with_cluster(Cluster::new_static("xds", [server]).with_protocol(UpstreamProtocol::Http2));
    b.node.id = NODE.into();
    b.admin = Some(Admin {
        address: "127.0.0.1:0".parse().unwrap(),
    });
    let mut dynamic = DynamicResources::over_ads("xds");
    dynamic.ads.api_type = api_type;
    b.dynamic_resources = Some(dynamic);
    b
}

fn view(upstreams: &[SocketAddr], cluster: &str) -> Vec<Resource> {
    let la = Cluster::new_static("web", upstreams.iter().copied())
        .load_assignment
        .unwrap();
    let hcm = HttpConnectionManager {
        route: RouteSource::Rds("routes".into()),
        ..HttpConnectionManager::default()
    };
    vec![
        Resource::Cluster(Cluster {
            name: "web".into(),
            discovery_type: DiscoveryType::Eds,
            ..Cluster::default()
        }),
        Resource::Endpoints(la),
        Resource::Listener(Listener::http("http", "127.0.0.1:0".parse().unwrap(), hcm)),
        Resource::Route(RouteConfiguration::new("routes").with_virtual_host(
            VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", cluster)),
        )),
    ]
}

async fn status_until(cache: &SnapshotCache, done: impl Fn(&NodeStatus) -> bool) -> NodeStatus {
    let mut changes = cache.status_changes();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(s) = cache.status(NODE).filter(|s| done(s)) {
                return s;
            }
            changes.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("status never matched: {:#?}", cache.status(NODE)))
}

fn acked(s: &NodeStatus, t: ResourceType) -> bool {
    s.types
        .get(&t)
        .is_some_and(|ts| ts.acked_version.is_some() && ts.acked_version == ts.sent_version)
}

fn all_acked(s: &NodeStatus) -> bool {
    ResourceType::ALL.iter().all(|t| acked(s, *t))
}

async fn serves_what_it_is_sent(api: AdsApiType) {
    let a = Upstream::start("a", Behavior::Identify).await;
    let b = Upstream::start("b", Behavior::Identify).await;
    let cache = Arc::new(SnapshotCache::new());
    cache.set_snapshot(NODE, Snapshot::new(view(&[a.addr()], "web")));
    let server = control_plane(cache.clone()).await;

    let boot = bootstrap(server, api);
    let running = mesh_proxy::Proxy::builder(boot.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let source = XdsSource::connect(&boot, running.stats().clone()).unwrap();
    let _follow = running.follow(source);

    // Every type ACKed means the proxy applied it: the listener is bound and routes to a.
    let before = status_until(&cache, all_acked).await;
    let addr = running
        .listener_addr("http")
        .expect("the listener from LDS");
    let client = Client::http1();
    let r = client.get(addr, "/x", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), "a");
    assert_eq!(a.accepted(), 1);

    // The service scales out: only EDS is pushed, and the pooled connection to a stays.
    cache.set_snapshot(NODE, Snapshot::new(view(&[a.addr(), b.addr()], "web")));
    let after = status_until(&cache, |s| {
        acked(s, ResourceType::Endpoints)
            && s.types[&ResourceType::Endpoints].responses
                > before.types[&ResourceType::Endpoints].responses
    })
    .await;
    for t in [
        ResourceType::Cluster,
        ResourceType::Listener,
        ResourceType::Route,
    ] {
        assert_eq!(
            after.types[&t].responses, before.types[&t].responses,
            "{t} resent"
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let r = client.get(addr, "/x", &[]).await;
        assert_eq!(r.status, 200);
        seen.insert(r.header("x-upstream").to_owned());
    }
    assert_eq!(seen.len(), 2, "both hosts serve: {seen:?}");
    assert_eq!(a.accepted(), 1, "the pooled connection to a was kept");

    // The admin API shows the dynamic resources and the hosts.
    let admin = running.admin_addr().unwrap();
    let dump = client.get(admin, "/config_dump", &[]).await;
    let dump: serde_json::Value = serde_json::from_str(&dump.text()).unwrap();
    let configs = dump["configs"].as_array().unwrap();
    let clusters = &configs[1];
    assert_eq!(clusters["static_clusters"].as_array().unwrap().len(), 1);
    let active = &clusters["dynamic_active_clusters"][0];
    assert_eq!(active["cluster"]["name"], "web");
    assert!(!active["version_info"].as_str().unwrap().is_empty());
    assert!(active["last_updated"].as_str().unwrap().ends_with('Z'));
    let listeners = &configs[2];
    assert_eq!(listeners["dynamic_listeners"][0]["name"], "http");
    assert!(listeners["dynamic_listeners"][0]["active_state"]["listener"].is_object());
    assert_eq!(
        configs[3]["dynamic_route_configs"][0]["route_config"]["name"],
        "routes"
    );
    let eps = &configs[4]["dynamic_endpoint_configs"][0]["endpoint_config"];
    assert_eq!(
        eps["endpoints"][0]["lb_endpoints"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let text = client.get(admin, "/clusters", &[]).await.text();
    assert!(text.contains("web::added_via_api::true"), "{text}");
    assert!(
        text.contains(&format!("web::{}::health_flags::healthy", b.addr())),
        "{text}"
    );
    let stats = client.get(admin, "/stats", &[]).await.text();
    assert!(
        stats.contains("control_plane.connected_state: 1"),
        "{stats}"
    );
    assert!(
        stats.contains("listener_manager.lds.update_success: 1"),
        "{stats}"
    );

    // A route to a cluster nobody has: Envoy's RDS does not check, and the proxy answers 503.
    cache.set_snapshot(NODE, Snapshot::new(view(&[a.addr(), b.addr()], "nowhere")));
    status_until(&cache, |s| {
        acked(s, ResourceType::Route)
            && s.types[&ResourceType::Route].responses > after.types[&ResourceType::Route].responses
    })
    .await;
    assert_eq!(client.get(addr, "/x", &[]).await.status, 503);

    // A listener the proxy cannot bind is NACKed; the running config keeps serving.
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut bad = view(&[a.addr(), b.addr()], "nowhere");
    bad.push(Resource::Listener(Listener::http(
        "clash",
        taken.local_addr().unwrap(),
        HttpConnectionManager::with_routes(RouteConfiguration::new("inline").with_virtual_host(
            VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "web")),
        )),
    )));
    cache.set_snapshot(NODE, Snapshot::new(bad));
    let s = status_until(&cache, |s| s.types[&ResourceType::Listener].nack.is_some()).await;
    let (_, message) = s.types[&ResourceType::Listener].nack.clone().unwrap();
    assert!(
        message.contains("bind") || message.contains("address"),
        "{message}"
    );
    assert_eq!(client.get(addr, "/x", &[]).await.status, 503);
    assert!(running.listener_addr("clash").is_none());
    let stats = client.get(admin, "/stats", &[]).await.text();
    assert!(
        stats.contains("listener_manager.lds.update_rejected: 1"),
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_of_the_world_serves_what_it_is_sent() {
    serves_what_it_is_sent(AdsApiType::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_serves_what_it_is_sent() {
    serves_what_it_is_sent(AdsApiType::DeltaGrpc).await;
}

/// As Envoy's init manager: a proxy following a control plane is not ready before its initial
/// fetch is over (here, a cluster waiting for its endpoints), even with a listener of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_initial_fetch_is_over() {
    let a = Upstream::start("a", Behavior::Identify).await;
    let cache = Arc::new(SnapshotCache::new());
    // The cluster, not its endpoints.
    let mut partial = view(&[a.addr()], "web");
    partial.remove(1);
    cache.set_snapshot(NODE, Snapshot::new(partial));
    let server = control_plane(cache.clone()).await;
    let mut boot = bootstrap(server, AdsApiType::Grpc);
    boot.listeners.push(Listener::http(
        "static",
        "127.0.0.1:0".parse().unwrap(),
        HttpConnectionManager::with_routes(RouteConfiguration::new("s").with_virtual_host(
            VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "xds")),
        )),
    ));
    let running = mesh_proxy::Proxy::builder(boot.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut state = {
        let source = XdsSource::connect(&boot, running.stats().clone()).unwrap();
        let state = mesh_proxy::source::ConfigSource::dynamic_state(&source).unwrap();
        let _follow = running.follow(source);
        state
    };
    let admin = running.admin_addr().unwrap();
    let client = Client::http1();
    status_until(&cache, |s| {
        acked(s, ResourceType::Cluster) && acked(s, ResourceType::Listener)
    })
    .await;
    assert!(!state.borrow().initialized);
    assert_eq!(client.get(admin, "/ready", &[]).await.status, 503);

    // The endpoints arrive: the initial fetch is over, and the proxy is ready.
    cache.set_snapshot(NODE, Snapshot::new(view(&[a.addr()], "web")));
    tokio::time::timeout(Duration::from_secs(10), async {
        while !state.borrow_and_update().initialized {
            state.changed().await.unwrap();
        }
    })
    .await
    .unwrap();
    assert_eq!(client.get(admin, "/ready", &[]).await.status, 200);
}
