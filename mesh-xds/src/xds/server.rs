//! A management server: ADS (state of the world and incremental) over tonic, backed by a
//! snapshot cache keyed by node, the way go-control-plane serves Go control planes.
//!
//! A control plane computes a [`Snapshot`] (every listener, route configuration, cluster and
//! cluster load assignment one proxy should have) and hands it to the [`SnapshotCache`] under a
//! key; every stream whose node maps to that key is sent what changed for it. Nodes that share
//! a view share one key and one snapshot, so a view is encoded once however many proxies use it.
//!
//! - Versions are content hashes: per resource for incremental streams, per requested set for
//!   state-of-the-world ones. Setting a snapshot in which only endpoints changed sends EDS
//!   responses and nothing else; setting an equal snapshot sends nothing.
//! - Responses go out in the order that avoids traffic loss: clusters, endpoints, listeners,
//!   routes.
//! - ACKs and NACKs are tracked per node and type ([`SnapshotCache::status`]); a NACKed version
//!   is logged and kept in the status, not sent again.
//!
//! # Examples
//!
//! ```no_run
//! use std::sync::Arc;
//! use mesh_core::config::Cluster;
//! use mesh_xds::xds::resource::Resource;
//! use mesh_xds::xds::server::{Snapshot, SnapshotCache, XdsServer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = Arc::new(SnapshotCache::new());
//! let web = Cluster::new_static("web", ["127.0.0.1:8081".parse().unwrap()]);
//! cache.set_snapshot("front", Snapshot::new([Resource::Cluster(web)]));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:18000").await?;
//! XdsServer::new(cache).serve(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hasher as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use envoy_types::pb::envoy::service::cluster::v3::cluster_discovery_service_server::{
    ClusterDiscoveryService, ClusterDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3 as ds;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_server::{
    EndpointDiscoveryService, EndpointDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::listener::v3::listener_discovery_service_server::{
    ListenerDiscoveryService, ListenerDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::route::v3::route_discovery_service_server::{
    RouteDiscoveryService, RouteDiscoveryServiceServer,
};
use envoy_types::pb::google::protobuf::Any;
use futures_util::Stream;
use mesh_core::config::Node;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status, Streaming};

use super::node;
use super::resource::{self, Resource, ResourceType};

/// One encoded resource and its version (a hash of its bytes).
#[derive(Debug, Clone)]
struct Entry {
    any: Any,
    version: String,
}

/// Everything one view of the mesh holds, encoded once.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    types: [BTreeMap<String, Entry>; 4],
}

fn index(t: ResourceType) -> usize {
    match t {
        ResourceType::Cluster => 0,
        ResourceType::Endpoints => 1,
        ResourceType::Listener => 2,
        ResourceType::Route => 3,
    }
}

fn hash_hex(parts: impl IntoIterator<Item = impl AsRef<[u8]>>) -> String {
    let mut h = twox_hash::XxHash64::with_seed(0);
    for p in parts {
        let p = p.as_ref();
        h.write_u64(p.len() as u64);
        h.write(p);
    }
    format!("{:016x}", h.finish())
}

impl Snapshot {
    /// Encodes `resources` (a later resource of the same type and name replaces an earlier).
    pub fn new(resources: impl IntoIterator<Item = Resource>) -> Self {
        let mut s = Snapshot::default();
        for r in resources {
            // The version hashes the resource's canonical JSON (sorted keys), not its protobuf
            // bytes: protobuf writes map fields in no fixed order, so equal resources could
            // encode differently and be pushed again for nothing.
            let json = r.to_json();
            let version = hash_hex([serde_json::to_vec(&json).unwrap_or_default()]);
            let any = resource::encode_dumped(&r, &json);
            s.types[index(r.resource_type())].insert(r.name().to_owned(), Entry { any, version });
        }
        s
    }

    /// Adds an already encoded resource (its type from the `Any`'s type URL).
    ///
    /// # Errors
    /// A [`resource::ResourceError`] when the type URL is not one of the four ADS types.
    pub fn insert_encoded(
        &mut self,
        name: impl Into<String>,
        any: Any,
    ) -> Result<(), resource::ResourceError> {
        let t = ResourceType::from_type_url(&any.type_url).ok_or_else(|| {
            resource::ResourceError::whole(
                None,
                format!("unknown resource type {:?}", any.type_url),
            )
        })?;
        let version = hash_hex([&any.value]);
        self.types[index(t)].insert(name.into(), Entry { any, version });
        Ok(())
    }

    /// The names of the resources of a type.
    pub fn names(&self, t: ResourceType) -> impl Iterator<Item = &str> {
        self.types[index(t)].keys().map(String::as_str)
    }

    /// The encoded resources of a type, by name.
    pub fn resources(&self, t: ResourceType) -> impl Iterator<Item = (&str, &Any)> {
        self.types[index(t)]
            .iter()
            .map(|(n, e)| (n.as_str(), &e.any))
    }

    /// How many resources of a type it holds.
    pub fn len(&self, t: ResourceType) -> usize {
        self.types[index(t)].len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.types.iter().all(BTreeMap::is_empty)
    }

    /// The version of a type's resources (all of them), a hash of their contents.
    pub fn version(&self, t: ResourceType) -> String {
        self.version_of(t, None)
    }

    fn version_of(&self, t: ResourceType, names: Option<&BTreeSet<String>>) -> String {
        let entries = self.types[index(t)]
            .iter()
            .filter(|(n, _)| names.is_none_or(|s| s.contains(n.as_str())));
        hash_hex(entries.flat_map(|(n, e)| [n.as_bytes(), e.version.as_bytes()]))
    }

    fn get(&self, t: ResourceType, name: &str) -> Option<&Entry> {
        self.types[index(t)].get(name)
    }
}

/// What one node did with what it was sent, per type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeStatus {
    /// The version last sent.
    pub sent_version: Option<String>,
    /// The version last acknowledged.
    pub acked_version: Option<String>,
    /// The last rejection: the version and the client's error detail.
    pub nack: Option<(String, String)>,
    /// Responses sent on every stream of the node.
    pub responses: u64,
}

/// What the cache knows about one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// Streams open now.
    pub streams: usize,
    /// Per resource type.
    pub types: BTreeMap<ResourceType, TypeStatus>,
}

type KeyFn = dyn Fn(&Node) -> String + Send + Sync;
type MissFn = dyn Fn(&str, &Node) -> Option<Snapshot> + Send + Sync;

/// One view: its snapshot (to every stream watching it), and whether `on_miss` computed it
/// (such a view goes when its last stream does; one set by the control plane stays).
struct View {
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    computed: bool,
}

/// Snapshots keyed by view, and the status of every node connected now.
pub struct SnapshotCache {
    views: Mutex<HashMap<String, View>>,
    status: Mutex<BTreeMap<String, NodeStatus>>,
    changed: watch::Sender<u64>,
    key: Box<KeyFn>,
    on_miss: Option<Arc<MissFn>>,
}

impl std::fmt::Debug for SnapshotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCache")
            .field("views", &lock(&self.views).len())
            .finish_non_exhaustive()
    }
}

impl Default for SnapshotCache {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SnapshotCache {
    /// A cache keyed by node id.
    pub fn new() -> Self {
        Self::with_key(|n| n.id.clone())
    }

    /// A cache keyed by what `key` makes of a node: nodes with the same key share a snapshot.
    pub fn with_key(key: impl Fn(&Node) -> String + Send + Sync + 'static) -> Self {
        Self {
            views: Mutex::new(HashMap::new()),
            status: Mutex::new(BTreeMap::new()),
            changed: watch::channel(0).0,
            key: Box::new(key),
            on_miss: None,
        }
    }

    /// Calls `f(key, node)` (on a blocking thread) when a stream opens for a key that has no
    /// snapshot yet, so a control plane computes views on demand; the snapshot it returns is
    /// set for the key unless one was set meanwhile. A view computed this way is dropped when
    /// its last stream closes.
    pub fn on_miss(
        mut self,
        f: impl Fn(&str, &Node) -> Option<Snapshot> + Send + Sync + 'static,
    ) -> Self {
        self.on_miss = Some(Arc::new(f));
        self
    }

    /// The key a node's view is stored under.
    pub fn key_of(&self, node: &Node) -> String {
        (self.key)(node)
    }

    fn view(&self, key: &str) -> watch::Receiver<Option<Arc<Snapshot>>> {
        lock(&self.views)
            .entry(key.to_owned())
            .or_insert_with(|| View {
                tx: watch::channel(None).0,
                computed: self.on_miss.is_some(),
            })
            .tx
            .subscribe()
    }

    /// Sets the snapshot of a view and sends what changed to every stream that watches it.
    pub fn set_snapshot(&self, key: &str, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        let mut views = lock(&self.views);
        match views.get_mut(key) {
            Some(v) => {
                v.computed = false;
                v.tx.send_replace(Some(snapshot));
            }
            None => {
                views.insert(
                    key.to_owned(),
                    View {
                        tx: watch::channel(Some(snapshot)).0,
                        computed: false,
                    },
                );
            }
        }
    }

    /// Sets a computed snapshot unless the view has one already (a newer one may have been
    /// set while it was computed).
    fn set_computed(&self, key: &str, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        let mut views = lock(&self.views);
        let v = views.entry(key.to_owned()).or_insert_with(|| View {
            tx: watch::channel(None).0,
            computed: true,
        });
        v.tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(snapshot);
                true
            } else {
                false
            }
        });
    }

    /// Replaces the snapshot of a view computed by `on_miss` (a control plane recomputing its
    /// views), keeping it one that goes with its last stream.
    pub fn update_computed(&self, key: &str, snapshot: Snapshot) {
        if let Some(v) = lock(&self.views).get(key) {
            v.tx.send_replace(Some(Arc::new(snapshot)));
        }
    }

    /// The snapshot of a view.
    pub fn snapshot(&self, key: &str) -> Option<Arc<Snapshot>> {
        lock(&self.views)
            .get(key)
            .and_then(|v| v.tx.borrow().clone())
    }

    /// The snapshot of a node's view, computed by `on_miss` (on a blocking thread) when there
    /// is none yet.
    async fn snapshot_or_compute(
        self: &Arc<Self>,
        key: &str,
        node: &Node,
    ) -> Option<Arc<Snapshot>> {
        if let Some(s) = self.snapshot(key) {
            return Some(s);
        }
        let f = self.on_miss.clone()?;
        let (k, n) = (key.to_owned(), node.clone());
        if let Ok(Some(computed)) = tokio::task::spawn_blocking(move || f(&k, &n)).await {
            self.set_computed(key, computed);
        }
        self.snapshot(key)
    }

    /// Drops a computed view nobody watches any more.
    fn release(&self, key: &str) {
        let mut views = lock(&self.views);
        if views
            .get(key)
            .is_some_and(|v| v.computed && v.tx.receiver_count() == 0)
        {
            views.remove(key);
        }
    }

    /// The keys that have a snapshot or a watcher.
    pub fn keys(&self) -> Vec<String> {
        lock(&self.views).keys().cloned().collect()
    }

    /// What a node (by id) was sent and what it acknowledged.
    pub fn status(&self, node_id: &str) -> Option<NodeStatus> {
        lock(&self.status).get(node_id).cloned()
    }

    /// Every node's status, by node id.
    pub fn statuses(&self) -> BTreeMap<String, NodeStatus> {
        lock(&self.status).clone()
    }

    /// Runs `f` over every node's status without copying them (for checks over thousands of
    /// nodes, such as "has every stream ACKed").
    pub fn with_statuses<R>(&self, f: impl FnOnce(&BTreeMap<String, NodeStatus>) -> R) -> R {
        f(&lock(&self.status))
    }

    /// A receiver that changes whenever a node acknowledges or rejects a response, or a stream
    /// opens or closes (to wait for a push to be taken up).
    pub fn status_changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn update_status(&self, node_id: &str, f: impl FnOnce(&mut NodeStatus)) {
        f(lock(&self.status).entry(node_id.to_owned()).or_default());
        self.changed.send_modify(|n| *n += 1);
    }

    /// A stream of the node closed: its status goes with its last stream.
    fn stream_closed(&self, node_id: &str) {
        {
            let mut status = lock(&self.status);
            if let Some(s) = status.get_mut(node_id) {
                s.streams = s.streams.saturating_sub(1);
                if s.streams == 0 {
                    status.remove(node_id);
                }
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }
}

/// The gRPC services over a [`SnapshotCache`].
#[derive(Debug, Clone)]
pub struct XdsServer {
    cache: Arc<SnapshotCache>,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl XdsServer {
    /// A server over `cache`.
    pub fn new(cache: Arc<SnapshotCache>) -> Self {
        Self { cache }
    }

    /// The ADS service, to add to a tonic router beside services of one's own.
    pub fn ads_service(&self) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Serves ADS and the per-type services (HTTP/2 without TLS) on `listener` until
    /// `shutdown` completes, then closes every stream.
    ///
    /// # Errors
    /// Never, today: accept errors are logged and retried after a pause. (The `Result` leaves
    /// room for setup errors.)
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use hyper_util::service::TowerToHyperService;
        let service = self.services();
        let mut conns = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "xds server accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            };
            let _ = stream.set_nodelay(true);
            let svc = TowerToHyperService::new(service.clone());
            conns.spawn(async move {
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc);
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "xds connection ended");
                }
            });
        }
    }
}

/// The largest discovery request accepted (a request lists names, not resources).
const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The most resources of one type a stream may subscribe to by name.
const MAX_NAMES: usize = 100_000;

impl XdsServer {
    fn sotw(
        &self,
        request: Request<Streaming<ds::DiscoveryRequest>>,
        only: Option<ResourceType>,
    ) -> Response<ResponseStream<ds::DiscoveryResponse>> {
        let (tx, rx) = mpsc::channel(16);
        let cache = self.cache.clone();
        tokio::spawn(serve_stream(
            SotwStream::new(cache, tx, only),
            request.into_inner(),
        ));
        Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    fn delta(
        &self,
        request: Request<Streaming<ds::DeltaDiscoveryRequest>>,
        only: Option<ResourceType>,
    ) -> Response<ResponseStream<ds::DeltaDiscoveryResponse>> {
        let (tx, rx) = mpsc::channel(16);
        let cache = self.cache.clone();
        tokio::spawn(serve_stream(
            DeltaStream::new(cache, tx, only),
            request.into_inner(),
        ));
        Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    /// A unary fetch (the REST-like variant): what the node's view holds of one type now.
    async fn fetch(
        &self,
        request: Request<ds::DiscoveryRequest>,
        t: ResourceType,
    ) -> Result<Response<ds::DiscoveryResponse>, Status> {
        let req = request.into_inner();
        let n = req
            .node
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("a fetch names its node"))?;
        let node = node::from_proto(n);
        let key = self.cache.key_of(&node);
        let snapshot = self
            .cache
            .snapshot_or_compute(&key, &node)
            .await
            .ok_or_else(|| Status::unavailable("no view for the node"))?;
        let names: BTreeSet<String> = req.resource_names.iter().cloned().collect();
        let subset = (!names.is_empty()).then_some(&names);
        let version = snapshot.version_of(t, subset);
        if !req.version_info.is_empty() && req.version_info == version {
            // Envoy's REST protocol: nothing new is "304 Not Modified", a CANCELLED here.
            return Err(Status::cancelled("not modified"));
        }
        let resources = snapshot.types[index(t)]
            .iter()
            .filter(|(n, _)| subset.is_none_or(|s| s.contains(n.as_str())))
            .map(|(_, e)| e.any.clone())
            .collect();
        Ok(Response::new(ds::DiscoveryResponse {
            version_info: version,
            resources,
            type_url: t.type_url().into(),
            ..ds::DiscoveryResponse::default()
        }))
    }

    /// Every discovery service (ADS and the four per-type services) as one tower service that
    /// routes by gRPC path, to serve on one port (or mount beside services of one's own).
    pub fn services(&self) -> Services {
        Services {
            ads: self.ads_service(),
            lds: ListenerDiscoveryServiceServer::new(self.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            cds: ClusterDiscoveryServiceServer::new(self.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            rds: RouteDiscoveryServiceServer::new(self.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            eds: EndpointDiscoveryServiceServer::new(self.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        }
    }
}

/// ADS and the per-type discovery services behind one tower service, routed by gRPC path.
#[derive(Debug, Clone)]
pub struct Services {
    ads: AggregatedDiscoveryServiceServer<XdsServer>,
    lds: ListenerDiscoveryServiceServer<XdsServer>,
    cds: ClusterDiscoveryServiceServer<XdsServer>,
    rds: RouteDiscoveryServiceServer<XdsServer>,
    eds: EndpointDiscoveryServiceServer<XdsServer>,
}

impl<B> tower::Service<http::Request<B>> for Services
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
        match service {
            "envoy.service.discovery.v3.AggregatedDiscoveryService" => Box::pin(self.ads.call(req)),
            "envoy.service.listener.v3.ListenerDiscoveryService" => Box::pin(self.lds.call(req)),
            "envoy.service.cluster.v3.ClusterDiscoveryService" => Box::pin(self.cds.call(req)),
            "envoy.service.route.v3.RouteDiscoveryService" => Box::pin(self.rds.call(req)),
            "envoy.service.endpoint.v3.EndpointDiscoveryService" => Box::pin(self.eds.call(req)),
            _ => Box::pin(async { Ok(Status::unimplemented("no such service").into_http()) }),
        }
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for XdsServer {
    type StreamAggregatedResourcesStream = ResponseStream<ds::DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<ds::DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<ds::DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(self.sotw(request, None))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<ds::DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(self.delta(request, None))
    }
}

/// The per-type services: the same streams, one type each.
macro_rules! per_type_service {
    ($trait:ident, $t:expr, $stream:ident, $delta:ident, $fetch:ident, $sty:ident, $dty:ident) => {
        #[tonic::async_trait]
        impl $trait for XdsServer {
            type $sty = ResponseStream<ds::DiscoveryResponse>;
            type $dty = ResponseStream<ds::DeltaDiscoveryResponse>;

            async fn $stream(
                &self,
                request: Request<Streaming<ds::DiscoveryRequest>>,
            ) -> Result<Response<Self::$sty>, Status> {
                Ok(self.sotw(request, Some($t)))
            }

            async fn $delta(
                &self,
                request: Request<Streaming<ds::DeltaDiscoveryRequest>>,
            ) -> Result<Response<Self::$dty>, Status> {
                Ok(self.delta(request, Some($t)))
            }

            async fn $fetch(
                &self,
                request: Request<ds::DiscoveryRequest>,
            ) -> Result<Response<ds::DiscoveryResponse>, Status> {
                self.fetch(request, $t).await
            }
        }
    };
}

per_type_service!(
    ListenerDiscoveryService,
    ResourceType::Listener,
    stream_listeners,
    delta_listeners,
    fetch_listeners,
    StreamListenersStream,
    DeltaListenersStream
);
per_type_service!(
    ClusterDiscoveryService,
    ResourceType::Cluster,
    stream_clusters,
    delta_clusters,
    fetch_clusters,
    StreamClustersStream,
    DeltaClustersStream
);
per_type_service!(
    RouteDiscoveryService,
    ResourceType::Route,
    stream_routes,
    delta_routes,
    fetch_routes,
    StreamRoutesStream,
    DeltaRoutesStream
);
per_type_service!(
    EndpointDiscoveryService,
    ResourceType::Endpoints,
    stream_endpoints,
    delta_endpoints,
    fetch_endpoints,
    StreamEndpointsStream,
    DeltaEndpointsStream
);

/// The node of a stream, once its first request named it.
struct Peer {
    id: String,
    key: String,
    view: watch::Receiver<Option<Arc<Snapshot>>>,
}

async fn open_peer(
    cache: &Arc<SnapshotCache>,
    n: Option<&envoy_types::pb::envoy::config::core::v3::Node>,
) -> Result<Peer, Status> {
    let n =
        n.ok_or_else(|| Status::invalid_argument("the first request of a stream names its node"))?;
    let node = node::from_proto(n);
    let key = cache.key_of(&node);
    // Watch first, so a snapshot set while the view is computed is not missed.
    let view = cache.view(&key);
    cache.snapshot_or_compute(&key, &node).await;
    tracing::info!(node = %node.id, view = %key, "xds stream opened");
    cache.update_status(&node.id, |s| s.streams += 1);
    Ok(Peer {
        id: node.id,
        key,
        view,
    })
}

fn close_peer(cache: &SnapshotCache, peer: Option<Peer>, result: &Result<(), Status>) {
    if let Some(p) = peer {
        match result {
            Ok(()) => tracing::info!(node = %p.id, "xds stream closed"),
            Err(e) => tracing::info!(node = %p.id, error = %e.message(), "xds stream closed"),
        }
        let Peer { id, key, view } = p;
        drop(view);
        cache.stream_closed(&id);
        cache.release(&key);
    }
}

/// What every request does first: the stream's first request names the node (and opens the
/// peer), a per-type stream's type is checked, and a type ADS does not carry is ignored
/// (`None`). Returns the type and the node id.
async fn begin_request(
    cache: &Arc<SnapshotCache>,
    peer: &mut Option<Peer>,
    only: Option<ResourceType>,
    node: Option<&envoy_types::pb::envoy::config::core::v3::Node>,
    type_url: &mut String,
) -> Result<Option<(ResourceType, String)>, Status> {
    if peer.is_none() {
        *peer = Some(open_peer(cache, node).await?);
    }
    only_type(only, type_url)?;
    let Some(t) = ResourceType::from_type_url(type_url) else {
        tracing::warn!(type_url = %type_url, "xds request for an unknown type ignored");
        return Ok(None);
    };
    Ok(Some((
        t,
        peer.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
    )))
}

/// A per-type service's stream names its type: a request may leave `type_url` empty, and may
/// not name another.
fn only_type(only: Option<ResourceType>, type_url: &mut String) -> Result<(), Status> {
    if let Some(only) = only {
        if type_url.is_empty() {
            *type_url = only.type_url().into();
        } else if type_url != only.type_url() {
            return Err(Status::invalid_argument(format!(
                "a {only} stream cannot carry {type_url}"
            )));
        }
    }
    Ok(())
}

/// What a stream leaves when it ends: the cache, its node, and its way to the client.
type StreamParts<R> = (
    Arc<SnapshotCache>,
    Option<Peer>,
    mpsc::Sender<Result<R, Status>>,
);

/// What the two protocol variants' streams share: requests in, the view watched, responses out.
trait AdsStream: Send + Sized {
    type Request: Send + 'static;
    type Response: Send + 'static;
    fn peer(&mut self) -> &mut Option<Peer>;
    fn on_request(
        &mut self,
        req: Self::Request,
    ) -> impl std::future::Future<Output = Result<(), Status>> + Send;
    fn push_all(&mut self) -> impl std::future::Future<Output = Result<(), Status>> + Send;
    fn into_parts(self) -> StreamParts<Self::Response>;
}

/// Serves a stream until the client ends it, the view goes, or an error; then closes it.
async fn serve_stream<S: AdsStream>(mut s: S, mut requests: Streaming<S::Request>)
where
    S::Request: prost::Message + Default,
{
    let result = async {
        loop {
            let changed = async {
                match s.peer() {
                    Some(p) => p.view.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                req = requests.message() => match req? {
                    Some(req) => s.on_request(req).await?,
                    None => return Ok(()),
                },
                alive = changed => {
                    if !alive {
                        return Ok(());
                    }
                    s.push_all().await?;
                }
            }
        }
    }
    .await;
    let (cache, peer, tx) = s.into_parts();
    close_peer(&cache, peer, &result);
    if let Err(e) = result {
        let _ = tx.send(Err(e)).await;
    }
}

macro_rules! ads_stream {
    ($stream:ty, $req:ty, $resp:ty) => {
        impl AdsStream for $stream {
            type Request = $req;
            type Response = $resp;
            fn peer(&mut self) -> &mut Option<Peer> {
                &mut self.peer
            }
            async fn on_request(&mut self, req: Self::Request) -> Result<(), Status> {
                <$stream>::on_request(self, req).await
            }
            async fn push_all(&mut self) -> Result<(), Status> {
                <$stream>::push_all(self).await
            }
            fn into_parts(self) -> StreamParts<Self::Response> {
                (self.cache, self.peer, self.tx)
            }
        }
    };
}

ads_stream!(SotwStream, ds::DiscoveryRequest, ds::DiscoveryResponse);
ads_stream!(
    DeltaStream,
    ds::DeltaDiscoveryRequest,
    ds::DeltaDiscoveryResponse
);

/// The state-of-the-world subscription to one type.
#[derive(Default)]
struct SotwSub {
    wildcard: bool,
    names: BTreeSet<String>,
    sent_version: Option<String>,
    nonce: String,
}

struct SotwStream {
    cache: Arc<SnapshotCache>,
    tx: mpsc::Sender<Result<ds::DiscoveryResponse, Status>>,
    /// The type of a per-type service's stream (requests may leave `type_url` empty).
    only: Option<ResourceType>,
    peer: Option<Peer>,
    subs: BTreeMap<ResourceType, SotwSub>,
    nonce: u64,
}

impl SotwStream {
    fn new(
        cache: Arc<SnapshotCache>,
        tx: mpsc::Sender<Result<ds::DiscoveryResponse, Status>>,
        only: Option<ResourceType>,
    ) -> Self {
        Self {
            cache,
            tx,
            only,
            peer: None,
            subs: BTreeMap::new(),
            nonce: 0,
        }
    }

    async fn on_request(&mut self, mut req: ds::DiscoveryRequest) -> Result<(), Status> {
        let Some((t, id)) = begin_request(
            &self.cache,
            &mut self.peer,
            self.only,
            req.node.as_ref(),
            &mut req.type_url,
        )
        .await?
        else {
            return Ok(());
        };
        let first = !self.subs.contains_key(&t);
        let sub = self.subs.entry(t).or_default();
        if !first && !req.response_nonce.is_empty() && req.response_nonce != sub.nonce {
            // A request that answers an earlier response: superseded, nothing to do. (A
            // request without a nonce changes the subscription before any response arrived.)
            return Ok(());
        }
        if let Some(err) = &req.error_detail {
            let version = sub.sent_version.clone().unwrap_or_default();
            tracing::warn!(node = %id, r#type = %t, version = %version, error = %err.message, "xds update rejected (NACK)");
            let message = err.message.clone();
            self.cache.update_status(&id, |s| {
                s.types.entry(t).or_default().nack = Some((version, message));
            });
        } else if !req.response_nonce.is_empty() {
            let version = sub.sent_version.clone();
            self.cache.update_status(&id, |s| {
                let ts = s.types.entry(t).or_default();
                ts.acked_version = version;
                ts.nack = None;
            });
        }
        let mut names: BTreeSet<String> = req.resource_names.iter().cloned().collect();
        // Wildcard: LDS and CDS asked for with no names on the first request (or "*" named).
        // A subscription that named resources and later names none wants none.
        let wildcard =
            t.is_wildcard() && (names.remove("*") || (names.is_empty() && (first || sub.wildcard)));
        let changed = first || wildcard != sub.wildcard || names != sub.names;
        sub.wildcard = wildcard;
        sub.names = names;
        if changed {
            sub.sent_version = None;
            self.push(t, false).await?;
        }
        Ok(())
    }

    async fn push_all(&mut self) -> Result<(), Status> {
        let types: Vec<ResourceType> = self.subs.keys().copied().collect();
        for t in types {
            self.push(t, true).await?;
        }
        Ok(())
    }

    /// Sends the type's resources when what the subscription covers changed.
    async fn push(&mut self, t: ResourceType, all: bool) -> Result<(), Status> {
        let Some(snapshot) = self
            .peer
            .as_mut()
            // Only a push of every type marks a change seen: one type's push (after a
            // request) must leave the change for the others.
            .and_then(|p| {
                if all {
                    p.view.borrow_and_update().clone()
                } else {
                    p.view.borrow().clone()
                }
            })
        else {
            return Ok(());
        };
        let Some(sub) = self.subs.get_mut(&t) else {
            return Ok(());
        };
        let names = (!sub.wildcard).then_some(&sub.names);
        let version = snapshot.version_of(t, names);
        if sub.sent_version.as_deref() == Some(version.as_str()) {
            return Ok(());
        }
        let resources: Vec<Any> = match names {
            None => snapshot.types[index(t)]
                .values()
                .map(|e| e.any.clone())
                .collect(),
            Some(names) => names
                .iter()
                .filter_map(|n| snapshot.get(t, n))
                .map(|e| e.any.clone())
                .collect(),
        };
        if !t.is_wildcard() && resources.is_empty() && sub.sent_version.is_none() {
            // No route configuration or endpoints asked for exist yet: the client waits (and
            // warms) until they do. (An empty LDS or CDS answer says that nothing exists,
            // which a client that named its resources needs to hear.)
            return Ok(());
        }
        self.nonce += 1;
        sub.nonce = self.nonce.to_string();
        sub.sent_version = Some(version.clone());
        let response = ds::DiscoveryResponse {
            version_info: version.clone(),
            resources,
            type_url: t.type_url().to_owned(),
            nonce: sub.nonce.clone(),
            ..ds::DiscoveryResponse::default()
        };
        let id = self.peer.as_ref().map(|p| p.id.clone()).unwrap_or_default();
        tracing::debug!(node = %id, r#type = %t, version = %version, "xds response sent");
        self.cache.update_status(&id, |s| {
            let ts = s.types.entry(t).or_default();
            ts.sent_version = Some(version);
            ts.responses += 1;
        });
        self.tx
            .send(Ok(response))
            .await
            .map_err(|_| Status::cancelled("the client went away"))
    }
}

/// The incremental subscription to one type.
#[derive(Default)]
struct DeltaSub {
    wildcard: bool,
    names: BTreeSet<String>,
    /// What the client has, by name: the version it was sent (or told us it has).
    known: HashMap<String, String>,
    nonce: String,
    /// The nonce of the last response and the versions it carried, for the status.
    sent: Option<String>,
    /// A response has been sent.
    answered: bool,
}

struct DeltaStream {
    cache: Arc<SnapshotCache>,
    tx: mpsc::Sender<Result<ds::DeltaDiscoveryResponse, Status>>,
    /// The type of a per-type service's stream (requests may leave `type_url` empty).
    only: Option<ResourceType>,
    peer: Option<Peer>,
    subs: BTreeMap<ResourceType, DeltaSub>,
    nonce: u64,
}

impl DeltaStream {
    async fn push_all(&mut self) -> Result<(), Status> {
        let types: Vec<ResourceType> = self.subs.keys().copied().collect();
        for t in types {
            self.push(t, true).await?;
        }
        Ok(())
    }

    fn new(
        cache: Arc<SnapshotCache>,
        tx: mpsc::Sender<Result<ds::DeltaDiscoveryResponse, Status>>,
        only: Option<ResourceType>,
    ) -> Self {
        Self {
            cache,
            tx,
            only,
            peer: None,
            subs: BTreeMap::new(),
            nonce: 0,
        }
    }

    async fn on_request(&mut self, mut req: ds::DeltaDiscoveryRequest) -> Result<(), Status> {
        let Some((t, id)) = begin_request(
            &self.cache,
            &mut self.peer,
            self.only,
            req.node.as_ref(),
            &mut req.type_url,
        )
        .await?
        else {
            return Ok(());
        };
        let first = !self.subs.contains_key(&t);
        let sub = self.subs.entry(t).or_default();
        if first {
            sub.known = req.initial_resource_versions.clone().into_iter().collect();
            sub.wildcard = t.is_wildcard() && req.resource_names_subscribe.is_empty();
        }
        if !req.response_nonce.is_empty() {
            if req.response_nonce != sub.nonce {
                // Answers a superseded response; its subscription changes still count.
            } else if let Some(err) = &req.error_detail {
                let version = sub.sent.clone().unwrap_or_default();
                tracing::warn!(node = %id, r#type = %t, nonce = %req.response_nonce, error = %err.message, "xds update rejected (NACK)");
                let message = err.message.clone();
                self.cache.update_status(&id, |s| {
                    s.types.entry(t).or_default().nack = Some((version, message));
                });
            } else {
                let version = sub.sent.clone();
                self.cache.update_status(&id, |s| {
                    let ts = s.types.entry(t).or_default();
                    ts.acked_version = version;
                    ts.nack = None;
                });
            }
        }
        for n in &req.resource_names_subscribe {
            if n == "*" {
                sub.wildcard = true;
            } else {
                sub.names.insert(n.clone());
            }
        }
        if sub.names.len() > MAX_NAMES {
            return Err(Status::resource_exhausted(format!(
                "more than {MAX_NAMES} {t} resources subscribed on one stream"
            )));
        }
        for n in &req.resource_names_unsubscribe {
            if n == "*" {
                sub.wildcard = false;
            } else {
                sub.names.remove(n);
            }
            sub.known.remove(n);
        }
        self.push(t, false).await
    }

    /// Sends what the client lacks and what was removed, when there is any.
    async fn push(&mut self, t: ResourceType, all: bool) -> Result<(), Status> {
        let Some(snapshot) = self
            .peer
            .as_mut()
            // Only a push of every type marks a change seen: one type's push (after a
            // request) must leave the change for the others.
            .and_then(|p| {
                if all {
                    p.view.borrow_and_update().clone()
                } else {
                    p.view.borrow().clone()
                }
            })
        else {
            return Ok(());
        };
        let Some(sub) = self.subs.get_mut(&t) else {
            return Ok(());
        };
        let mut resources = Vec::new();
        let wanted = |n: &str| sub.wildcard || sub.names.contains(n);
        for (name, e) in &snapshot.types[index(t)] {
            if wanted(name) && sub.known.get(name) != Some(&e.version) {
                resources.push(ds::Resource {
                    name: name.clone(),
                    version: e.version.clone(),
                    resource: Some(e.any.clone()),
                    ..ds::Resource::default()
                });
            }
        }
        let removed: Vec<String> = sub
            .known
            .keys()
            .filter(|n| snapshot.get(t, n).is_none() && (sub.wildcard || sub.names.contains(*n)))
            .cloned()
            .collect();
        // A wildcard subscription's first request is always answered, even with nothing, so
        // the client knows its initial fetch is over.
        if resources.is_empty() && removed.is_empty() && (sub.answered || !sub.wildcard) {
            return Ok(());
        }
        sub.answered = true;
        for r in &resources {
            sub.known.insert(r.name.clone(), r.version.clone());
        }
        for n in &removed {
            sub.known.remove(n);
        }
        self.nonce += 1;
        sub.nonce = self.nonce.to_string();
        let version = snapshot.version(t);
        sub.sent = Some(version.clone());
        let id = self.peer.as_ref().map(|p| p.id.clone()).unwrap_or_default();
        tracing::debug!(node = %id, r#type = %t, changed = resources.len(), removed = removed.len(), "xds delta response sent");
        self.cache.update_status(&id, |s| {
            let ts = s.types.entry(t).or_default();
            ts.sent_version = Some(version.clone());
            ts.responses += 1;
        });
        let response = ds::DeltaDiscoveryResponse {
            system_version_info: version,
            resources,
            type_url: t.type_url().to_owned(),
            removed_resources: removed,
            nonce: sub.nonce.clone(),
            ..ds::DeltaDiscoveryResponse::default()
        };
        self.tx
            .send(Ok(response))
            .await
            .map_err(|_| Status::cancelled("the client went away"))
    }
}
