//! The ADS client against the management server, both variants, over real gRPC on loopback:
//! ACK, NACK, EDS-only pushes, warming, removal, and subscriptions that follow the config.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::config::*;
use mesh_core::stats::{Registry, StatName};
use mesh_xds::xds::client::{AdsClient, ClientConfig, XdsUpdate};
use mesh_xds::xds::resource::{Resource, ResourceType};
use mesh_xds::xds::server::{Snapshot, SnapshotCache, XdsServer};

const NODE: &str = "proxy-1";

async fn start_server(cache: Arc<SnapshotCache>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(XdsServer::new(cache).serve(listener, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

fn bootstrap(server: SocketAddr, api_type: AdsApiType) -> Bootstrap {
    let mut b = Bootstrap::default()
        .with_cluster(Cluster::new_static("xds", [server]).with_protocol(UpstreamProtocol::Http2));
    b.node.id = NODE.into();
    b.node.cluster = "test".into();
    let mut dynamic = DynamicResources::over_ads("xds");
    dynamic.ads.api_type = api_type;
    dynamic.ads.set_node_on_first_message_only = false;
    b.dynamic_resources = Some(dynamic);
    b
}

fn eds_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        discovery_type: DiscoveryType::Eds,
        ..Cluster::default()
    }
}

fn endpoints(name: &str, ports: &[u16]) -> ClusterLoadAssignment {
    let c = Cluster::new_static(
        name,
        ports.iter().map(|p| SocketAddr::from(([127, 0, 0, 1], *p))),
    );
    c.load_assignment.unwrap()
}

fn rds_listener(name: &str, routes: &str) -> Listener {
    let hcm = HttpConnectionManager {
        route: RouteSource::Rds(routes.into()),
        ..HttpConnectionManager::default()
    };
    Listener::http(name, "127.0.0.1:0".parse().unwrap(), hcm)
}

fn routes(name: &str, cluster: &str) -> RouteConfiguration {
    RouteConfiguration::new(name)
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", cluster)))
}

fn mesh(ports: &[u16]) -> Vec<Resource> {
    vec![
        Resource::Cluster(eds_cluster("web")),
        Resource::Endpoints(endpoints("web", ports)),
        Resource::Listener(rds_listener("http", "routes")),
        Resource::Route(routes("routes", "web")),
    ]
}

fn ports(b: &Bootstrap, cluster: &str) -> Vec<u16> {
    b.cluster(cluster)
        .and_then(|c| c.load_assignment.as_ref())
        .map(|la| {
            la.endpoints
                .iter()
                .flat_map(|l| &l.lb_endpoints)
                .map(|e| e.address.port)
                .collect()
        })
        .unwrap_or_default()
}

/// Takes updates (accepting each) until one satisfies `done`.
async fn until(client: &mut AdsClient, done: impl Fn(&XdsUpdate) -> bool) -> XdsUpdate {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let u = client.next().await.expect("the client runs");
            if done(&u) {
                return u;
            }
            u.reply(Ok(()));
        }
    })
    .await
    .expect("the update arrives")
}

/// Accepts every update until the client's state satisfies `done`.
async fn accept_until_state(
    client: &mut AdsClient,
    done: impl Fn(&mesh_xds::xds::client::XdsState) -> bool,
) {
    let mut state = client.state();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if done(&state.borrow_and_update()) {
                return;
            }
            tokio::select! {
                u = client.next() => u.expect("the client runs").reply(Ok(())),
                r = state.changed() => r.unwrap(),
            }
        }
    })
    .await
    .expect("the state is reached");
}

/// Waits until the server's status for the node satisfies `done`.
async fn status_until(
    cache: &SnapshotCache,
    done: impl Fn(&mesh_xds::xds::server::NodeStatus) -> bool,
) {
    let mut changes = cache.status_changes();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if cache.status(NODE).is_some_and(|s| done(&s)) {
                return;
            }
            changes.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("status never matched: {:#?}", cache.status(NODE)));
}

fn complete(u: &XdsUpdate) -> bool {
    u.bootstrap.listeners.iter().any(|l| l.name == "http") && !ports(&u.bootstrap, "web").is_empty()
}

async fn full_config_then_eds_only(api: AdsApiType) {
    let cache = Arc::new(SnapshotCache::new());
    cache.set_snapshot(NODE, Snapshot::new(mesh(&[9001])));
    let (addr, _stop) = start_server(cache.clone()).await;
    let stats = Arc::new(Registry::new());
    let mut client = AdsClient::start(
        ClientConfig::from_bootstrap(&bootstrap(addr, api)).unwrap(),
        stats.clone(),
    );

    // The listener comes with its routes, the cluster with its endpoints.
    let u = until(&mut client, complete).await;
    assert_eq!(ports(&u.bootstrap, "web"), [9001]);
    assert_eq!(u.bootstrap.route_configs[0].name, "routes");
    assert!(u.bootstrap.cluster("xds").is_some(), "static clusters stay");
    u.reply(Ok(()));
    status_until(&cache, |s| {
        ResourceType::ALL.iter().all(|t| {
            s.types
                .get(t)
                .is_some_and(|ts| ts.acked_version.is_some() && ts.acked_version == ts.sent_version)
        })
    })
    .await;
    assert_eq!(
        stats
            .gauge(StatName::plain("control_plane.connected_state"))
            .get(),
        1
    );
    let before = cache.status(NODE).unwrap();

    // The service scales out: only its endpoints change, and only EDS is sent.
    cache.set_snapshot(NODE, Snapshot::new(mesh(&[9001, 9002])));
    let u = until(&mut client, |u| ports(&u.bootstrap, "web").len() == 2).await;
    assert!(u.endpoints_only);
    u.reply(Ok(()));
    status_until(&cache, |s| {
        let eds = &s.types[&ResourceType::Endpoints];
        eds.acked_version == eds.sent_version
            && eds.responses > before.types[&ResourceType::Endpoints].responses
    })
    .await;
    let after = cache.status(NODE).unwrap();
    for t in [
        ResourceType::Cluster,
        ResourceType::Listener,
        ResourceType::Route,
    ] {
        assert_eq!(
            after.types[&t].responses, before.types[&t].responses,
            "{t} was sent again"
        );
    }
    assert_eq!(
        after.types[&ResourceType::Endpoints].responses,
        before.types[&ResourceType::Endpoints].responses + 1
    );

    // An equal snapshot sends nothing.
    cache.set_snapshot(NODE, Snapshot::new(mesh(&[9001, 9002])));
    cache.set_snapshot(NODE, Snapshot::new(mesh(&[9003])));
    let u = until(&mut client, |u| ports(&u.bootstrap, "web") == [9003]).await;
    u.reply(Ok(()));
    status_until(&cache, |s| {
        let eds = &s.types[&ResourceType::Endpoints];
        eds.responses == after.types[&ResourceType::Endpoints].responses + 1
            && eds.acked_version == eds.sent_version
    })
    .await;
    assert!(
        stats
            .counter(StatName::plain("cluster_manager.cds.update_success"))
            .get()
            >= 1
    );
    assert!(
        stats
            .counter(StatName::cluster("web", "update_success"))
            .get()
            >= 3,
        "{}",
        stats.render_text()
    );
}

#[tokio::test]
async fn state_of_the_world_full_config_then_eds_only() {
    full_config_then_eds_only(AdsApiType::Grpc).await;
}

#[tokio::test]
async fn incremental_full_config_then_eds_only() {
    full_config_then_eds_only(AdsApiType::DeltaGrpc).await;
}

async fn nack_keeps_the_last_good_config(api: AdsApiType) {
    let cache = Arc::new(SnapshotCache::new());
    cache.set_snapshot(NODE, Snapshot::new(mesh(&[9001])));
    let (addr, _stop) = start_server(cache.clone()).await;
    let stats = Arc::new(Registry::new());
    let mut client = AdsClient::start(
        ClientConfig::from_bootstrap(&bootstrap(addr, api)).unwrap(),
        stats.clone(),
    );
    until(&mut client, complete).await.reply(Ok(()));

    // A cluster the reader refuses: NACKed with its name and field; nothing reaches the proxy.
    let mut bad = Snapshot::new(mesh(&[9001]));
    let any = mesh_xds::xds::resource::encode_json(
        ResourceType::Cluster,
        &serde_json::json!({"name": "broken", "type": "STATIC", "connect_timeout": "1s"}),
    )
    .unwrap();
    // Valid protobuf with a value the reader refuses (a negative timeout).
    let mut raw = any.clone();
    raw.value = {
        use prost::Message;
        let mut c =
            envoy_types::pb::envoy::config::cluster::v3::Cluster::decode(any.value.as_slice())
                .unwrap();
        c.connect_timeout = Some(envoy_types::pb::google::protobuf::Duration {
            seconds: -1,
            nanos: 0,
        });
        c.encode_to_vec()
    };
    bad.insert_encoded("broken", raw).unwrap();
    cache.set_snapshot(NODE, bad);
    status_until(&cache, |s| s.types[&ResourceType::Cluster].nack.is_some()).await;
    let status = cache.status(NODE).unwrap();
    let (_, message) = status.types[&ResourceType::Cluster].nack.clone().unwrap();
    assert!(message.contains("cluster \"broken\""), "{message}");
    assert!(message.contains("connect_timeout"), "{message}");
    assert_ne!(
        status.types[&ResourceType::Cluster].acked_version,
        status.types[&ResourceType::Cluster].sent_version
    );
    assert_eq!(
        stats
            .counter(StatName::plain("cluster_manager.cds.update_rejected"))
            .get(),
        1
    );

    // The proxy refuses an update: NACKed with its message, and the client keeps what it had.
    cache.set_snapshot(NODE, Snapshot::new(mesh(&[9005])));
    let u = until(&mut client, |u| ports(&u.bootstrap, "web") == [9005]).await;
    u.reply(Err("port 9005 is cursed".into()));
    status_until(&cache, |s| {
        s.types[&ResourceType::Endpoints]
            .nack
            .as_ref()
            .is_some_and(|(_, m)| m.contains("cursed"))
    })
    .await;
    let state = client.state();
    let eds = &state.borrow().resources[&ResourceType::Endpoints];
    let Resource::Endpoints(la) = &eds["web"].resource else {
        panic!()
    };
    assert_eq!(la.endpoints[0].lb_endpoints[0].address.port, 9001);
}

#[tokio::test]
async fn state_of_the_world_nack_keeps_the_last_good_config() {
    nack_keeps_the_last_good_config(AdsApiType::Grpc).await;
}

#[tokio::test]
async fn incremental_nack_keeps_the_last_good_config() {
    nack_keeps_the_last_good_config(AdsApiType::DeltaGrpc).await;
}

async fn removal_and_followed_subscriptions(api: AdsApiType) {
    let cache = Arc::new(SnapshotCache::new());
    let mut resources = mesh(&[9001]);
    resources.push(Resource::Cluster(eds_cluster("api")));
    resources.push(Resource::Endpoints(endpoints("api", &[9100])));
    cache.set_snapshot(NODE, Snapshot::new(resources));
    let (addr, _stop) = start_server(cache.clone()).await;
    let mut client = AdsClient::start(
        ClientConfig::from_bootstrap(&bootstrap(addr, api)).unwrap(),
        Arc::new(Registry::new()),
    );
    let u = until(&mut client, |u| {
        complete(u) && ports(&u.bootstrap, "api") == [9100]
    })
    .await;
    u.reply(Ok(()));

    // The cluster goes: removed from the config, and its endpoints unsubscribed.
    cache.set_snapshot(NODE, Snapshot::new(mesh(&[9001])));
    let u = until(&mut client, |u| u.bootstrap.cluster("api").is_none()).await;
    assert!(u.bootstrap.cluster("web").is_some());
    u.reply(Ok(()));
    accept_until_state(&mut client, |s| {
        !s.resources[&ResourceType::Endpoints].contains_key("api")
    })
    .await;

    // The listener moves to other routes: the new ones are subscribed and served.
    let mut next = mesh(&[9001]);
    next[2] = Resource::Listener(rds_listener("http", "routes-v2"));
    next.push(Resource::Route(routes("routes-v2", "web")));
    cache.set_snapshot(NODE, Snapshot::new(next));
    let u = until(&mut client, |u| {
        u.bootstrap
            .route_configs
            .iter()
            .any(|r| r.name == "routes-v2")
    })
    .await;
    assert!(u.bootstrap.listeners.iter().any(|l| l.name == "http"));
    assert_eq!(
        u.bootstrap.route_configs.len(),
        1,
        "the old routes are dropped"
    );
    u.reply(Ok(()));

    // The listener goes.
    let mut next = mesh(&[9001]);
    next.remove(2);
    cache.set_snapshot(NODE, Snapshot::new(next));
    let u = until(&mut client, |u| u.bootstrap.listeners.is_empty()).await;
    u.reply(Ok(()));
}

#[tokio::test]
async fn state_of_the_world_removal_and_followed_subscriptions() {
    removal_and_followed_subscriptions(AdsApiType::Grpc).await;
}

#[tokio::test]
async fn incremental_removal_and_followed_subscriptions() {
    removal_and_followed_subscriptions(AdsApiType::DeltaGrpc).await;
}

#[tokio::test]
async fn a_cluster_warms_until_its_endpoints_arrive_or_the_timeout_passes() {
    let cache = Arc::new(SnapshotCache::new());
    // The cluster and listener, but neither endpoints nor routes yet.
    cache.set_snapshot(
        NODE,
        Snapshot::new([
            Resource::Cluster(eds_cluster("web")),
            Resource::Listener(rds_listener("http", "routes")),
        ]),
    );
    let (addr, _stop) = start_server(cache.clone()).await;
    let mut b = bootstrap(addr, AdsApiType::Grpc);
    b.dynamic_resources.as_mut().unwrap().initial_fetch_timeout = Duration::from_secs(1);
    let mut client = AdsClient::start(
        ClientConfig::from_bootstrap(&b).unwrap(),
        Arc::new(Registry::new()),
    );

    // Updates before the timeout hold neither; the dump shows both warming.
    let first = client.next().await.unwrap();
    assert!(first.bootstrap.cluster("web").is_none());
    assert!(first.bootstrap.listeners.is_empty());
    first.reply(Ok(()));
    let warming = |s: &mesh_xds::xds::client::XdsState, t: ResourceType, n: &str| {
        s.resources
            .get(&t)
            .and_then(|m| m.get(n))
            .is_some_and(|r| r.warming)
    };
    accept_until_state(&mut client, |s| {
        warming(s, ResourceType::Cluster, "web") && warming(s, ResourceType::Listener, "http")
    })
    .await;

    // After initial_fetch_timeout: the cluster with no endpoints, the listener with no routes.
    let u = until(&mut client, |u| {
        u.bootstrap.cluster("web").is_some() && !u.bootstrap.listeners.is_empty()
    })
    .await;
    assert!(ports(&u.bootstrap, "web").is_empty());
    assert!(u.bootstrap.route_configs[0].virtual_hosts.is_empty());
    u.reply(Ok(()));

    // Then they arrive.
    cache.set_snapshot(NODE, Snapshot::new(mesh(&[9001])));
    let u = until(&mut client, |u| {
        complete(u) && u.bootstrap.route_configs[0].virtual_hosts.len() == 1
    })
    .await;
    assert_eq!(ports(&u.bootstrap, "web"), [9001]);
}

#[tokio::test]
async fn reconnects_and_resumes_while_the_last_config_stays() {
    let cache = Arc::new(SnapshotCache::new());
    cache.set_snapshot(NODE, Snapshot::new(mesh(&[9001])));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(XdsServer::new(cache.clone()).serve(listener, async {
        let _ = stopped.await;
    }));
    let stats = Arc::new(Registry::new());
    let mut cfg = ClientConfig::from_bootstrap(&bootstrap(addr, AdsApiType::Grpc)).unwrap();
    cfg.base_backoff = Duration::from_millis(20);
    cfg.max_backoff = Duration::from_millis(100);
    let mut client = AdsClient::start(cfg, stats.clone());
    until(&mut client, complete).await.reply(Ok(()));
    status_until(&cache, |s| s.streams == 1).await;

    // The control plane goes away: the client says so, and nothing is applied.
    let mut state = client.state();
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while state.borrow().connected {
            state.changed().await.unwrap();
        }
    })
    .await
    .unwrap();
    assert_eq!(
        stats
            .gauge(StatName::plain("control_plane.connected_state"))
            .get(),
        0
    );

    // It comes back on the same address with a new config: the client resumes and takes it.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    cache.set_snapshot(NODE, Snapshot::new(mesh(&[9009])));
    tokio::spawn(XdsServer::new(cache.clone()).serve(listener, std::future::pending()));
    let u = until(&mut client, |u| ports(&u.bootstrap, "web") == [9009]).await;
    u.reply(Ok(()));
    tokio::time::timeout(Duration::from_secs(10), async {
        while !state.borrow().connected {
            state.changed().await.unwrap();
        }
    })
    .await
    .unwrap();
    assert!(
        stats
            .counter(StatName::plain("control_plane.stream_errors"))
            .get()
            >= 1
    );
}
