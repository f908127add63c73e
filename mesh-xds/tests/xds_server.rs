//! The management server against scripted clients (tonic's generated ADS client, requests
//! written by hand): push order, NACKs not re-sent, stale nonces, incremental subscriptions
//! and resumption, and views shared between nodes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node as PbNode;
use envoy_types::pb::envoy::service::discovery::v3 as ds;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::rpc;
use mesh_core::config::*;
use mesh_xds::xds::resource::{Resource, ResourceType};
use mesh_xds::xds::server::{Snapshot, SnapshotCache, XdsServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

async fn server(cache: Arc<SnapshotCache>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(XdsServer::new(cache).serve(listener, std::future::pending()));
    addr
}

async fn client(addr: SocketAddr) -> AggregatedDiscoveryServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    AggregatedDiscoveryServiceClient::new(channel)
}

fn node(id: &str) -> Option<PbNode> {
    Some(PbNode {
        id: id.into(),
        ..PbNode::default()
    })
}

fn view(port: u16, route_cluster: &str) -> Vec<Resource> {
    let la = Cluster::new_static("web", [SocketAddr::from(([127, 0, 0, 1], port))])
        .load_assignment
        .unwrap();
    vec![
        Resource::Cluster(Cluster {
            name: "web".into(),
            discovery_type: DiscoveryType::Eds,
            ..Cluster::default()
        }),
        Resource::Endpoints(la),
        Resource::Listener(Listener::http(
            "http",
            "127.0.0.1:0".parse().unwrap(),
            HttpConnectionManager {
                route: RouteSource::Rds("routes".into()),
                ..HttpConnectionManager::default()
            },
        )),
        Resource::Route(RouteConfiguration::new("routes").with_virtual_host(
            VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", route_cluster)),
        )),
    ]
}

/// A state-of-the-world stream driven by hand.
struct Sotw {
    tx: mpsc::UnboundedSender<ds::DiscoveryRequest>,
    rx: tonic::Streaming<ds::DiscoveryResponse>,
}

impl Sotw {
    async fn open(addr: SocketAddr) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = client(addr)
            .await
            .stream_aggregated_resources(UnboundedReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Self { tx, rx }
    }

    fn ask(&self, id: &str, t: ResourceType, names: &[&str], version: &str, nonce: &str) {
        self.tx
            .send(ds::DiscoveryRequest {
                version_info: version.into(),
                node: node(id),
                resource_names: names.iter().map(|s| s.to_string()).collect(),
                type_url: t.type_url().into(),
                response_nonce: nonce.into(),
                ..ds::DiscoveryRequest::default()
            })
            .unwrap();
    }

    fn nack(&self, t: ResourceType, names: &[&str], version: &str, nonce: &str) {
        self.tx
            .send(ds::DiscoveryRequest {
                version_info: version.into(),
                resource_names: names.iter().map(|s| s.to_string()).collect(),
                type_url: t.type_url().into(),
                response_nonce: nonce.into(),
                error_detail: Some(rpc::Status {
                    code: 3,
                    message: "listener \"http\": no".into(),
                    details: Vec::new(),
                }),
                ..ds::DiscoveryRequest::default()
            })
            .unwrap();
    }

    async fn next(&mut self) -> ds::DiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(10), self.rx.message())
            .await
            .expect("a response in time")
            .unwrap()
            .expect("the stream is open")
    }
}

fn kind(r: &ds::DiscoveryResponse) -> ResourceType {
    ResourceType::from_type_url(&r.type_url).unwrap()
}

/// Subscribes to every type and ACKs the first responses.
async fn subscribed(cache: &Arc<SnapshotCache>, id: &str) -> Sotw {
    let addr = server(cache.clone()).await;
    let mut s = Sotw::open(addr).await;
    for (t, names) in [
        (ResourceType::Cluster, vec![]),
        (ResourceType::Endpoints, vec!["web"]),
        (ResourceType::Listener, vec![]),
        (ResourceType::Route, vec!["routes"]),
    ] {
        s.ask(id, t, &names, "", "");
        let r = s.next().await;
        assert_eq!(kind(&r), t);
        assert_eq!(r.resources.len(), 1);
        s.ask(id, t, &names, &r.version_info, &r.nonce);
    }
    s
}

#[tokio::test]
async fn a_change_to_every_type_goes_out_clusters_first_routes_last() {
    let cache = Arc::new(SnapshotCache::new());
    cache.set_snapshot("n", Snapshot::new(view(1, "web")));
    let mut s = subscribed(&cache, "n").await;
    let mut changed = view(2, "web");
    if let Resource::Cluster(c) = &mut changed[0] {
        c.connect_timeout = Duration::from_secs(2);
    }
    if let Resource::Listener(l) = &mut changed[2] {
        l.filter_chains[0].hcm_mut().unwrap().stat_prefix = "changed".into();
    }
    changed[3] =
        Resource::Route(RouteConfiguration::new("routes").with_virtual_host(
            VirtualHost::new("all", ["*"]).with_route(Route::prefix("/v2", "web")),
        ));
    cache.set_snapshot("n", Snapshot::new(changed));
    let order: Vec<ResourceType> = [
        s.next().await,
        s.next().await,
        s.next().await,
        s.next().await,
    ]
    .iter()
    .map(kind)
    .collect();
    assert_eq!(
        order,
        ResourceType::ALL,
        "clusters, endpoints, listeners, routes"
    );
}

#[tokio::test]
async fn a_nacked_version_is_recorded_and_not_sent_again() {
    let cache = Arc::new(SnapshotCache::new());
    cache.set_snapshot("n", Snapshot::new(view(1, "web")));
    let mut s = subscribed(&cache, "n").await;
    // A new listener version, NACKed.
    let mut next = view(1, "web");
    if let Resource::Listener(l) = &mut next[2] {
        l.filter_chains[0].hcm_mut().unwrap().stat_prefix = "bad".into();
    }
    cache.set_snapshot("n", Snapshot::new(next.clone()));
    let r = s.next().await;
    assert_eq!(kind(&r), ResourceType::Listener);
    let acked = cache.status("n").unwrap().types[&ResourceType::Listener]
        .acked_version
        .clone()
        .unwrap();
    s.nack(ResourceType::Listener, &[], &acked, &r.nonce);
    let mut changes = cache.status_changes();
    tokio::time::timeout(Duration::from_secs(10), async {
        while cache.status("n").unwrap().types[&ResourceType::Listener]
            .nack
            .is_none()
        {
            changes.changed().await.unwrap();
        }
    })
    .await
    .unwrap();
    let status = cache.status("n").unwrap().types[&ResourceType::Listener].clone();
    let (version, message) = status.nack.unwrap();
    assert_eq!(version, r.version_info, "the rejected version is reported");
    assert!(message.contains("listener \"http\""));
    assert_eq!(status.acked_version.as_deref(), Some(acked.as_str()));

    // The same snapshot set again is not re-sent; the next response is the next change (EDS).
    cache.set_snapshot("n", Snapshot::new(next.clone()));
    next[1] = view(7, "web").remove(1);
    cache.set_snapshot("n", Snapshot::new(next));
    let r = s.next().await;
    assert_eq!(
        kind(&r),
        ResourceType::Endpoints,
        "the NACKed listener was not re-sent"
    );
}

#[tokio::test]
async fn a_stale_nonce_is_ignored_and_new_names_are_answered() {
    let cache = Arc::new(SnapshotCache::new());
    let mut resources = view(1, "web");
    resources.push(Resource::Route(RouteConfiguration::new("other")));
    cache.set_snapshot("n", Snapshot::new(resources));
    let mut s = subscribed(&cache, "n").await;
    // A request that answers a superseded response changes nothing ...
    // (were it taken, the next response would hold "other" alone)
    s.ask("n", ResourceType::Route, &["other"], "", "stale");
    // ... and one that answers the current response, with a new name, is answered with both
    // (the RDS response was the fourth of the stream).
    s.ask("n", ResourceType::Route, &["routes", "other"], "", "4");
    let r = s.next().await;
    assert_eq!(kind(&r), ResourceType::Route);
    assert_eq!(r.resources.len(), 2);
}

#[tokio::test]
async fn incremental_subscribe_unsubscribe_remove_and_resume() {
    let cache = Arc::new(SnapshotCache::new());
    let mut resources = view(1, "web");
    resources.push(Resource::Cluster(Cluster::new_static(
        "api",
        [SocketAddr::from(([127, 0, 0, 1], 2))],
    )));
    cache.set_snapshot("n", Snapshot::new(resources));
    let addr = server(cache.clone()).await;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut responses = client(addr)
        .await
        .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    async fn next_of(
        r: &mut tonic::Streaming<ds::DeltaDiscoveryResponse>,
    ) -> ds::DeltaDiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(10), r.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    }
    // Wildcard CDS: both clusters, with their versions.
    tx.send(ds::DeltaDiscoveryRequest {
        node: node("n"),
        type_url: ResourceType::Cluster.type_url().into(),
        ..ds::DeltaDiscoveryRequest::default()
    })
    .unwrap();
    let r = next_of(&mut responses).await;
    let mut names: Vec<&str> = r.resources.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["api", "web"]);
    assert!(r.resources.iter().all(|r| !r.version.is_empty()));
    let versions: Vec<(String, String)> = r
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    tx.send(ds::DeltaDiscoveryRequest {
        type_url: ResourceType::Cluster.type_url().into(),
        response_nonce: r.nonce.clone(),
        ..ds::DeltaDiscoveryRequest::default()
    })
    .unwrap();

    // EDS by name: subscribe web, then unsubscribe it.
    tx.send(ds::DeltaDiscoveryRequest {
        type_url: ResourceType::Endpoints.type_url().into(),
        resource_names_subscribe: vec!["web".into()],
        ..ds::DeltaDiscoveryRequest::default()
    })
    .unwrap();
    let r = next_of(&mut responses).await;
    assert_eq!(r.resources.len(), 1);
    assert_eq!(r.resources[0].name, "web");

    // api goes: removed_resources says so.
    cache.set_snapshot("n", Snapshot::new(view(1, "web")));
    let r = next_of(&mut responses).await;
    assert_eq!(
        ResourceType::from_type_url(&r.type_url),
        Some(ResourceType::Cluster)
    );
    assert!(r.resources.is_empty(), "web did not change");
    assert_eq!(r.removed_resources, ["api"]);

    // A new stream that says what it has (web at its version) is sent only what differs.
    drop(tx);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut responses = client(addr)
        .await
        .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    cache.set_snapshot("n", {
        let mut v = view(1, "web");
        v.push(Resource::Cluster(Cluster::new_static(
            "new",
            [SocketAddr::from(([127, 0, 0, 1], 3))],
        )));
        Snapshot::new(v)
    });
    tx.send(ds::DeltaDiscoveryRequest {
        node: node("n"),
        type_url: ResourceType::Cluster.type_url().into(),
        initial_resource_versions: versions.into_iter().collect(),
        ..ds::DeltaDiscoveryRequest::default()
    })
    .unwrap();
    let r = next_of(&mut responses).await;
    let names: Vec<&str> = r.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["new"], "web is up to date");
    assert_eq!(
        r.removed_resources,
        ["api"],
        "api is gone since the client had it"
    );
}

#[tokio::test]
async fn nodes_that_share_a_view_share_one_snapshot() {
    let cache = Arc::new(
        SnapshotCache::with_key(|n| {
            n.metadata
                .get("VIEW")
                .and_then(|v| v.as_str())
                .unwrap_or("none")
                .to_owned()
        })
        .on_miss(|key, _| (key == "shared").then(|| Snapshot::new(view(1, "web")))),
    );
    let addr = server(cache.clone()).await;
    let mut streams = Vec::new();
    for id in ["a", "b", "c"] {
        let mut s = Sotw::open(addr).await;
        s.tx.send(ds::DiscoveryRequest {
            node: Some(PbNode {
                id: id.into(),
                metadata: Some(mesh_xds::xds::node::to_struct(
                    &serde_json::json!({"VIEW": "shared"})
                        .as_object()
                        .unwrap()
                        .clone(),
                )),
                ..PbNode::default()
            }),
            type_url: ResourceType::Cluster.type_url().into(),
            ..ds::DiscoveryRequest::default()
        })
        .unwrap();
        assert_eq!(s.next().await.resources.len(), 1);
        streams.push(s);
    }
    assert_eq!(cache.keys(), ["shared"]);
    assert_eq!(cache.statuses().len(), 3);
}

#[tokio::test]
async fn the_per_type_services_stream_and_fetch() {
    use envoy_types::pb::envoy::service::cluster::v3::cluster_discovery_service_client::ClusterDiscoveryServiceClient;
    use envoy_types::pb::envoy::service::listener::v3::listener_discovery_service_client::ListenerDiscoveryServiceClient;
    let cache = Arc::new(SnapshotCache::new());
    cache.set_snapshot("n", Snapshot::new(view(1, "web")));
    let addr = server(cache.clone()).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    // CDS on its own service; the type may be left out of the request.
    let (tx, rx) = mpsc::unbounded_channel();
    let mut cds = ClusterDiscoveryServiceClient::new(channel.clone())
        .stream_clusters(UnboundedReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(ds::DiscoveryRequest {
        node: node("n"),
        ..ds::DiscoveryRequest::default()
    })
    .unwrap();
    let r = cds.message().await.unwrap().unwrap();
    assert_eq!(kind(&r), ResourceType::Cluster);
    assert_eq!(r.resources.len(), 1);

    // A unary fetch of listeners; asking again with that version is "not modified".
    let mut lds = ListenerDiscoveryServiceClient::new(channel);
    let r = lds
        .fetch_listeners(ds::DiscoveryRequest {
            node: node("n"),
            ..ds::DiscoveryRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kind(&r), ResourceType::Listener);
    assert_eq!(r.resources.len(), 1);
    let again = lds
        .fetch_listeners(ds::DiscoveryRequest {
            node: node("n"),
            version_info: r.version_info.clone(),
            ..ds::DiscoveryRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::Cancelled);
}

#[test]
fn versions_do_not_change_when_the_resource_does_not() {
    // Protobuf writes map fields in no fixed order: versions hash the canonical form.
    let mut rc = RouteConfiguration::new("routes")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "web")));
    for (i, f) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
        rc.virtual_hosts[0]
            .typed_per_filter_config
            .insert(format!("acme.{f}"), serde_json::json!({ "n": i }));
    }
    let first = Snapshot::new([Resource::Route(rc.clone())]).version(ResourceType::Route);
    for _ in 0..20 {
        assert_eq!(
            Snapshot::new([Resource::Route(rc.clone())]).version(ResourceType::Route),
            first
        );
    }
}

#[tokio::test]
async fn named_then_empty_unsubscribes_and_named_lds_is_answered_even_when_missing() {
    let cache = Arc::new(SnapshotCache::new());
    cache.set_snapshot("n", Snapshot::new(view(1, "web")));
    let addr = server(cache.clone()).await;
    let mut s = Sotw::open(addr).await;
    // A gRPC-style named LDS subscription to a listener that does not exist: answered empty.
    s.ask("n", ResourceType::Listener, &["missing:80"], "", "");
    let r = s.next().await;
    assert_eq!(kind(&r), ResourceType::Listener);
    assert!(r.resources.is_empty());
    // Naming the one that exists, then none: the last answer is empty, not everything.
    s.ask(
        "n",
        ResourceType::Listener,
        &["http"],
        &r.version_info,
        &r.nonce,
    );
    let r = s.next().await;
    assert_eq!(r.resources.len(), 1);
    s.ask("n", ResourceType::Listener, &[], &r.version_info, &r.nonce);
    let r = s.next().await;
    assert!(
        r.resources.is_empty(),
        "an emptied named subscription wants nothing"
    );
}

#[tokio::test]
async fn a_first_incremental_wildcard_request_is_answered_even_with_nothing() {
    let cache = Arc::new(SnapshotCache::new());
    cache.set_snapshot("n", Snapshot::default());
    let addr = server(cache.clone()).await;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut responses = client(addr)
        .await
        .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(ds::DeltaDiscoveryRequest {
        node: node("n"),
        type_url: ResourceType::Listener.type_url().into(),
        ..ds::DeltaDiscoveryRequest::default()
    })
    .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), responses.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(r.resources.is_empty() && r.removed_resources.is_empty());
    assert!(!r.nonce.is_empty());
}

#[tokio::test]
async fn a_computed_view_and_a_nodes_status_go_with_its_last_stream() {
    let cache = Arc::new(SnapshotCache::new().on_miss(|_, _| Some(Snapshot::new(view(1, "web")))));
    let addr = server(cache.clone()).await;
    let mut s = Sotw::open(addr).await;
    s.ask("n", ResourceType::Cluster, &[], "", "");
    assert_eq!(s.next().await.resources.len(), 1);
    assert_eq!(cache.keys(), ["n"]);
    assert!(cache.status("n").is_some());
    let mut changes = cache.status_changes();
    drop(s);
    tokio::time::timeout(Duration::from_secs(10), async {
        while cache.status("n").is_some() {
            changes.changed().await.unwrap();
        }
    })
    .await
    .unwrap();
    assert!(
        cache.keys().is_empty(),
        "the computed view went with its stream"
    );
}
