//! An ADS client: a proxy's config from a control plane, over one gRPC stream.
//!
//! [`AdsClient::start`] connects to the control plane named by a bootstrap's
//! `dynamic_resources` (through its static cluster) and runs the protocol as Envoy's xDS spec
//! describes it, in either variant (state of the world, `GRPC`, or incremental, `DELTA_GRPC`):
//!
//! - LDS and CDS are wildcard subscriptions; RDS and EDS subscribe to the route configurations
//!   that accepted listeners name and the endpoints that accepted EDS clusters need, and follow
//!   them as they change (what no longer is needed is unsubscribed and dropped).
//! - Each response is read through the file readers, merged with what was accepted before and
//!   with the bootstrap's static resources, validated whole, and offered to the proxy as an
//!   [`XdsUpdate`]. The proxy's answer decides the ACK or the NACK: a NACK carries the error,
//!   naming the resource and the field, and keeps the last accepted version.
//! - Warming: an EDS cluster is left out until its endpoints arrive, and a listener until its
//!   route configuration arrives, or until `initial_fetch_timeout` passes (then the cluster is
//!   used with no endpoints and the listener answers 404s, as Envoy's do).
//! - A lost stream is reconnected with jittered exponential backoff; the new stream resumes
//!   with the versions (and, incrementally, the resources) already accepted. While
//!   disconnected, nothing changes: the last good config keeps serving.
//!
//! Stats (Envoy's names): `control_plane.connected_state`, `control_plane.rate_limit_enforced`
//! (never), `cluster_manager.cds.update_*`, `listener_manager.lds.update_*`,
//! `rds.<name>.update_*`, `cluster.<name>.update_*` for EDS (`update_attempt`,
//! `update_success`, `update_rejected`), `control_plane.stream_errors`, `control_plane.bad_messages`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use envoy_types::pb::envoy::service::discovery::v3 as ds;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::rpc;
use mesh_core::config::{
    AdsApiType, Bootstrap, ClusterLoadAssignment, DiscoveryType, FieldError, RouteSource,
};
use mesh_core::stats::{Counter, Gauge, Registry, StatName};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::node;
use super::resource::{self, Resource, ResourceType};

/// A new config from the control plane, for the proxy to apply.
#[derive(Debug)]
pub struct XdsUpdate {
    /// The whole config: the bootstrap's static resources and the accepted dynamic ones.
    pub bootstrap: Bootstrap,
    /// Only endpoints changed (EDS): route tables and connection pools can stay as they are.
    pub endpoints_only: bool,
    reply: Option<oneshot::Sender<Result<(), String>>>,
}

impl XdsUpdate {
    /// Tells the client whether the proxy applied the update: `Ok` is ACKed, `Err` NACKed with
    /// the message. An update dropped without a reply was not applied.
    pub fn reply(mut self, result: Result<(), String>) {
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(result);
        }
    }
}

impl Drop for XdsUpdate {
    fn drop(&mut self) {
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(Err("the update was dropped before it was applied".into()));
        }
    }
}

/// One accepted dynamic resource, as the admin's config dump shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicResource {
    /// The resource.
    pub resource: Resource,
    /// The `version_info` of the response that brought it (incremental: the resource's
    /// version).
    pub version_info: String,
    /// When it was accepted.
    pub last_updated: SystemTime,
    /// Waiting for what it depends on (a cluster's endpoints, a listener's routes).
    pub warming: bool,
}

/// What the client holds: every accepted dynamic resource by type, for config dumps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct XdsState {
    /// Connected to the control plane now.
    pub connected: bool,
    /// The initial fetch is over (Envoy's init manager): LDS and CDS have answered and nothing
    /// warms any more, or waited out its `initial_fetch_timeout`. Until then a proxy is not
    /// ready.
    pub initialized: bool,
    /// Accepted resources, by type and name.
    pub resources: BTreeMap<ResourceType, BTreeMap<String, DynamicResource>>,
    /// The last accepted `version_info` per type (state of the world).
    pub versions: BTreeMap<ResourceType, String>,
}

impl XdsState {
    /// Whether the client holds exactly what `snapshot` serves, every resource accepted and
    /// none warming (for a client that subscribes to every resource of the snapshot, as a
    /// proxy given a whole view does): the push of that snapshot has been applied.
    pub fn holds(&self, snapshot: &super::server::Snapshot) -> bool {
        ResourceType::ALL.into_iter().all(|t| {
            let empty = BTreeMap::new();
            let have = self.resources.get(&t).unwrap_or(&empty);
            have.len() == snapshot.len(t)
                && snapshot.resources(t).all(|(name, any)| {
                    have.get(name).is_some_and(|r| {
                        !r.warming && resource::decode(any).is_ok_and(|d| d.value == r.resource)
                    })
                })
        })
    }
}

/// How to reach the control plane and what to ask it for.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The bootstrap: its node, its `dynamic_resources`, and the static resources every
    /// update keeps.
    pub bootstrap: Bootstrap,
    /// The control plane's address (from the static cluster the ADS config names).
    pub server: SocketAddr,
    /// The first reconnect delay; doubled up to [`ClientConfig::max_backoff`], each delay
    /// jittered to a random fraction of itself (Envoy's full jitter).
    pub base_backoff: Duration,
    /// The longest reconnect delay.
    pub max_backoff: Duration,
    /// The largest response accepted; a larger one ends the stream (and is counted in
    /// `control_plane.bad_messages`). Default 64 MiB.
    pub max_response_bytes: usize,
}

impl ClientConfig {
    /// The client of a bootstrap with `dynamic_resources`: the control plane is the first
    /// endpoint of the static cluster that `ads_config` names. Envoy's backoff: 500 ms to 30 s.
    ///
    /// # Errors
    /// A message when the bootstrap has no `dynamic_resources`, or its cluster has no endpoint
    /// with an IP address.
    pub fn from_bootstrap(bootstrap: &Bootstrap) -> Result<Self, String> {
        let d = bootstrap
            .dynamic_resources
            .as_ref()
            .ok_or("the bootstrap has no dynamic_resources")?;
        let cluster = bootstrap.cluster(&d.ads.cluster_name).ok_or_else(|| {
            format!(
                "dynamic_resources.ads_config: unknown cluster {:?}",
                d.ads.cluster_name
            )
        })?;
        let server = cluster
            .load_assignment
            .iter()
            .flat_map(|la| &la.endpoints)
            .flat_map(|l| &l.lb_endpoints)
            .find_map(|e| {
                let host = e.address.host.trim_start_matches('[').trim_end_matches(']');
                host.parse()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, e.address.port))
            })
            .ok_or_else(|| {
                format!(
                    "cluster {:?} has no endpoint with an IP address to reach the control plane",
                    cluster.name
                )
            })?;
        Ok(Self {
            bootstrap: bootstrap.clone(),
            server,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_response_bytes: MAX_RESPONSE_BYTES,
        })
    }
}

/// A running ADS client; dropping it stops the stream.
#[derive(Debug)]
pub struct AdsClient {
    updates: mpsc::Receiver<XdsUpdate>,
    state: watch::Receiver<XdsState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AdsClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AdsClient {
    /// Starts the client (on the current tokio runtime); stats go to `stats`.
    pub fn start(config: ClientConfig, stats: Arc<Registry>) -> Self {
        let (tx, updates) = mpsc::channel(1);
        let (state_tx, state) = watch::channel(XdsState::default());
        let worker = Worker::new(config, stats, tx, state_tx);
        let task = tokio::spawn(worker.run());
        Self {
            updates,
            state,
            task,
        }
    }

    /// The next update to apply; `None` once the client has stopped.
    pub async fn next(&mut self) -> Option<XdsUpdate> {
        self.updates.recv().await
    }

    /// What the client holds now, and a way to wait for changes.
    pub fn state(&self) -> watch::Receiver<XdsState> {
        self.state.clone()
    }
}

struct Stats {
    registry: Arc<Registry>,
    connected: Arc<Gauge>,
    stream_errors: Arc<Counter>,
    bad_messages: Arc<Counter>,
}

impl Stats {
    fn update(&self, t: ResourceType, name: Option<&str>, what: &str) {
        let stat = match (t, name) {
            (ResourceType::Cluster, _) => StatName::plain(&format!("cluster_manager.cds.{what}")),
            (ResourceType::Listener, _) => StatName::plain(&format!("listener_manager.lds.{what}")),
            (ResourceType::Route, Some(n)) => StatName::plain(&format!("rds.{n}.{what}")),
            (ResourceType::Route, None) => StatName::plain(&format!("rds.{what}")),
            (ResourceType::Endpoints, Some(n)) => StatName::cluster(n, what),
            (ResourceType::Endpoints, None) => StatName::plain(&format!("eds.{what}")),
        };
        self.registry.counter(stat).inc();
    }
}

/// One type's protocol state.
#[derive(Default, Clone)]
struct TypeState {
    /// Accepted resources by name, with the version that brought each.
    accepted: BTreeMap<String, (Resource, String, SystemTime)>,
    /// The last accepted `version_info`.
    version: String,
    /// The nonce of the last response.
    nonce: String,
    /// Subscribed names (RDS and EDS); LDS and CDS are wildcard.
    names: BTreeSet<String>,
    /// Names the server has been told about (incremental).
    told: BTreeSet<String>,
}

struct Worker {
    config: ClientConfig,
    stats: Stats,
    updates: mpsc::Sender<XdsUpdate>,
    state_tx: watch::Sender<XdsState>,
    types: BTreeMap<ResourceType, TypeState>,
    /// When each warming resource started waiting (type, name).
    warming_since: BTreeMap<(ResourceType, String), Instant>,
    /// The config the proxy runs now: while a new version of a listener warms, its previous
    /// version keeps serving from here.
    applied: Option<Bootstrap>,
    /// The types that have had a response accepted.
    answered: BTreeSet<ResourceType>,
    /// When the client started: the initial fetch is over `initial_fetch_timeout` after it at
    /// the latest.
    started: Instant,
    /// Warming resources whose timeout has been acted on.
    expired: BTreeSet<(ResourceType, String)>,
    /// The initial fetch's timeout has been acted on.
    initial_expired: bool,
    rng: u64,
}

/// A message to the server, either variant.
enum Outgoing {
    Sotw(ds::DiscoveryRequest),
    Delta(ds::DeltaDiscoveryRequest),
}

/// The largest response accepted from a control plane by default.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

impl Worker {
    fn new(
        config: ClientConfig,
        registry: Arc<Registry>,
        updates: mpsc::Sender<XdsUpdate>,
        state_tx: watch::Sender<XdsState>,
    ) -> Self {
        let stats = Stats {
            connected: registry.gauge(StatName::plain("control_plane.connected_state")),
            stream_errors: registry.counter(StatName::plain("control_plane.stream_errors")),
            bad_messages: registry.counter(StatName::plain("control_plane.bad_messages")),
            registry,
        };
        let _ = stats
            .registry
            .counter(StatName::plain("control_plane.rate_limit_enforced"));
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        let mut types = BTreeMap::new();
        for t in ResourceType::ALL {
            types.insert(t, TypeState::default());
        }
        Self {
            config,
            stats,
            updates,
            state_tx,
            types,
            warming_since: BTreeMap::new(),
            applied: None,
            answered: BTreeSet::new(),
            started: Instant::now(),
            expired: BTreeSet::new(),
            initial_expired: false,
            rng: seed,
        }
    }

    fn delta(&self) -> bool {
        self.config
            .bootstrap
            .dynamic_resources
            .as_ref()
            .is_some_and(|d| d.ads.api_type == AdsApiType::DeltaGrpc)
    }

    fn initial_fetch_timeout(&self) -> Duration {
        self.config
            .bootstrap
            .dynamic_resources
            .as_ref()
            .map_or(Duration::ZERO, |d| d.initial_fetch_timeout)
    }

    /// The types subscribed to, in the order Envoy sends its first requests.
    fn subscribed(&self) -> Vec<ResourceType> {
        let d = self.config.bootstrap.dynamic_resources.as_ref();
        let mut v = Vec::new();
        if d.is_some_and(|d| d.cds) {
            v.push(ResourceType::Cluster);
        }
        v.push(ResourceType::Endpoints);
        if d.is_some_and(|d| d.lds) {
            v.push(ResourceType::Listener);
        }
        v.push(ResourceType::Route);
        v
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        // xorshift64: a jitter needs no cryptographic randomness.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let fraction = (self.rng % 1000) as f64 / 1000.0;
        d.mul_f64(fraction).max(Duration::from_millis(1))
    }

    async fn run(mut self) {
        // The static resources may name RDS routes and EDS endpoints of their own.
        self.refresh_names();
        let mut backoff = self.config.base_backoff;
        loop {
            let started = Instant::now();
            match self.session().await {
                Ok(()) => {
                    tracing::warn!(server = %self.config.server, "xds stream closed by the control plane")
                }
                Err(e) => {
                    tracing::warn!(server = %self.config.server, error = %e, "xds stream failed")
                }
            }
            self.stats.connected.set(0);
            self.state_tx.send_modify(|s| s.connected = false);
            if self.updates.is_closed() {
                return;
            }
            if started.elapsed() > self.config.max_backoff {
                backoff = self.config.base_backoff;
            }
            let delay = self.jitter(backoff);
            backoff = (backoff * 2).min(self.config.max_backoff);
            // Warming deadlines keep running while disconnected.
            let until = Instant::now() + delay;
            loop {
                let deadline = self.next_warming_deadline();
                tokio::select! {
                    () = tokio::time::sleep_until(until) => break,
                    () = sleep_until_opt(deadline) => self.warming_deadline().await,
                }
            }
        }
    }

    /// One stream, from connect to its end.
    async fn session(&mut self) -> Result<(), String> {
        let uri = format!("http://{}", self.config.server);
        let endpoint = tonic::transport::Endpoint::from_shared(uri)
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let channel = endpoint.connect().await.map_err(|e| {
            self.stats.stream_errors.inc();
            format!("connect: {e}")
        })?;
        let mut client = AggregatedDiscoveryServiceClient::new(channel)
            .max_decoding_message_size(self.config.max_response_bytes);
        let (req_tx, req_rx) = mpsc::unbounded_channel::<Outgoing>();
        let delta = self.delta();
        let mut first = true;
        for t in self.subscribed() {
            if t.is_wildcard() || !self.types[&t].names.is_empty() {
                req_tx
                    .send(self.initial_request(t, first))
                    .map_err(|_| "stream closed")?;
                first = false;
            }
        }
        if delta {
            let (dtx, drx) = mpsc::unbounded_channel();
            let fwd = tokio::spawn(forward(req_rx, dtx, |o| match o {
                Outgoing::Delta(r) => Some(r),
                Outgoing::Sotw(_) => None,
            }));
            let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(drx);
            let result = match client.delta_aggregated_resources(stream).await {
                Ok(r) => {
                    self.connected();
                    self.delta_loop(&mut r.into_inner(), &req_tx).await
                }
                Err(e) => Err(format!("stream: {}", e.message())),
            };
            fwd.abort();
            result
        } else {
            let (stx, srx) = mpsc::unbounded_channel();
            let fwd = tokio::spawn(forward(req_rx, stx, |o| match o {
                Outgoing::Sotw(r) => Some(r),
                Outgoing::Delta(_) => None,
            }));
            let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(srx);
            let result = match client.stream_aggregated_resources(stream).await {
                Ok(r) => {
                    self.connected();
                    self.sotw_loop(&mut r.into_inner(), &req_tx).await
                }
                Err(e) => Err(format!("stream: {}", e.message())),
            };
            fwd.abort();
            result
        }
    }

    fn connected(&mut self) {
        tracing::info!(server = %self.config.server, "xds stream connected");
        self.stats.connected.set(1);
        self.state_tx.send_modify(|s| s.connected = true);
    }

    fn node(&self, first: bool) -> Option<envoy_types::pb::envoy::config::core::v3::Node> {
        let only_first = self
            .config
            .bootstrap
            .dynamic_resources
            .as_ref()
            .is_some_and(|d| d.ads.set_node_on_first_message_only);
        (first || !only_first).then(|| node::to_proto(&self.config.bootstrap.node))
    }

    fn initial_request(&mut self, t: ResourceType, first: bool) -> Outgoing {
        let node = self.node(first);
        let delta = self.delta();
        let ts = self.types.get_mut(&t).expect("every type has a state");
        // A new stream: the last one's nonce means nothing to this server.
        ts.nonce.clear();
        if delta {
            ts.told = ts.names.clone();
            Outgoing::Delta(ds::DeltaDiscoveryRequest {
                node,
                type_url: t.type_url().into(),
                resource_names_subscribe: ts.names.iter().cloned().collect(),
                initial_resource_versions: ts
                    .accepted
                    .iter()
                    .map(|(n, (_, v, _))| (n.clone(), v.clone()))
                    .collect(),
                ..ds::DeltaDiscoveryRequest::default()
            })
        } else {
            // Resuming: the versions already accepted, no nonce (a new stream).
            Outgoing::Sotw(ds::DiscoveryRequest {
                version_info: ts.version.clone(),
                node,
                resource_names: ts.names.iter().cloned().collect(),
                type_url: t.type_url().into(),
                ..ds::DiscoveryRequest::default()
            })
        }
    }

    fn sotw_request(&self, t: ResourceType, error: Option<String>) -> Outgoing {
        let ts = &self.types[&t];
        Outgoing::Sotw(ds::DiscoveryRequest {
            version_info: ts.version.clone(),
            node: self.node(false),
            resource_names: ts.names.iter().cloned().collect(),
            type_url: t.type_url().into(),
            response_nonce: ts.nonce.clone(),
            error_detail: error.map(|message| rpc::Status {
                code: tonic::Code::InvalidArgument as i32,
                message,
                details: Vec::new(),
            }),
            ..ds::DiscoveryRequest::default()
        })
    }

    /// The next response of a type ADS carries, acting on warming deadlines while waiting;
    /// responses of other types are counted and skipped. `None` when the server ended the
    /// stream.
    async fn next_response<T>(
        &mut self,
        responses: &mut tonic::Streaming<T>,
        type_url: impl Fn(&T) -> &String,
    ) -> Result<Option<(T, ResourceType)>, String> {
        loop {
            let deadline = self.next_warming_deadline();
            let msg = tokio::select! {
                m = responses.message() => m,
                () = sleep_until_opt(deadline) => {
                    self.warming_deadline().await;
                    continue;
                }
            };
            let resp = match msg {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(None),
                Err(e) => {
                    self.stream_error(&e);
                    return Err(e.message().to_owned());
                }
            };
            match ResourceType::from_type_url(type_url(&resp)) {
                Some(t) => return Ok(Some((resp, t))),
                None => {
                    self.stats.bad_messages.inc();
                    tracing::warn!(type_url = %type_url(&resp), "xds response of an unknown type ignored");
                }
            }
        }
    }

    async fn sotw_loop(
        &mut self,
        responses: &mut tonic::Streaming<ds::DiscoveryResponse>,
        req_tx: &mpsc::UnboundedSender<Outgoing>,
    ) -> Result<(), String> {
        loop {
            let Some((resp, t)) = self.next_response(responses, |r| &r.type_url).await? else {
                return Ok(());
            };
            self.types.get_mut(&t).expect("state").nonce = resp.nonce.clone();
            let decoded = self.decode(t, resp.resources.iter().map(|a| (None, a)));
            let result = match decoded {
                Ok(list) => {
                    let changed: Vec<String> = list.iter().map(|r| r.name().to_owned()).collect();
                    let mut next = self.types[&t].clone();
                    let now = SystemTime::now();
                    if t.is_wildcard() {
                        next.accepted.clear();
                    }
                    for r in list {
                        next.accepted
                            .insert(r.name().to_owned(), (r, resp.version_info.clone(), now));
                    }
                    next.version = resp.version_info.clone();
                    self.commit(t, next, &changed).await
                }
                Err(e) => Err(e),
            };
            let reply = match result {
                Ok(()) => {
                    self.stats.update(t, None, "update_success");
                    None
                }
                Err(e) => {
                    self.reject(t, &resp.version_info, &e);
                    Some(e)
                }
            };
            req_tx
                .send(self.sotw_request(t, reply))
                .map_err(|_| "stream closed")?;
            self.follow_names(req_tx)?;
        }
    }

    async fn delta_loop(
        &mut self,
        responses: &mut tonic::Streaming<ds::DeltaDiscoveryResponse>,
        req_tx: &mpsc::UnboundedSender<Outgoing>,
    ) -> Result<(), String> {
        loop {
            let Some((resp, t)) = self.next_response(responses, |r| &r.type_url).await? else {
                return Ok(());
            };
            let anys: Vec<_> = resp
                .resources
                .iter()
                .filter_map(|r| {
                    r.resource
                        .as_ref()
                        .map(|a| (Some((r.name.as_str(), r.version.as_str())), a))
                })
                .collect();
            let decoded = self.decode(t, anys.iter().map(|(n, a)| (n.map(|x| x.0), *a)));
            let result = match decoded {
                Ok(list) => {
                    let changed: Vec<String> = list.iter().map(|r| r.name().to_owned()).collect();
                    let mut next = self.types[&t].clone();
                    let now = SystemTime::now();
                    for (r, (meta, _)) in list.into_iter().zip(&anys) {
                        let version = meta.map(|m| m.1.to_owned()).unwrap_or_default();
                        next.accepted.insert(r.name().to_owned(), (r, version, now));
                    }
                    for n in &resp.removed_resources {
                        next.accepted.remove(n);
                    }
                    next.version = resp.system_version_info.clone();
                    self.commit(t, next, &changed).await
                }
                Err(e) => Err(e),
            };
            let error_detail = match result {
                Ok(()) => {
                    self.stats.update(t, None, "update_success");
                    None
                }
                Err(e) => {
                    self.reject(t, &resp.system_version_info, &e);
                    Some(rpc::Status {
                        code: tonic::Code::InvalidArgument as i32,
                        message: e,
                        details: Vec::new(),
                    })
                }
            };
            req_tx
                .send(Outgoing::Delta(ds::DeltaDiscoveryRequest {
                    node: self.node(false),
                    type_url: t.type_url().into(),
                    response_nonce: resp.nonce.clone(),
                    error_detail,
                    ..ds::DeltaDiscoveryRequest::default()
                }))
                .map_err(|_| "stream closed")?;
            self.follow_names(req_tx)?;
        }
    }

    fn stream_error(&self, e: &tonic::Status) {
        self.stats.stream_errors.inc();
        if matches!(
            e.code(),
            tonic::Code::Internal
                | tonic::Code::ResourceExhausted
                | tonic::Code::OutOfRange
                | tonic::Code::Unknown
        ) {
            // Truncated, oversized or undecodable messages surface here.
            self.stats.bad_messages.inc();
        }
    }

    fn reject(&self, t: ResourceType, version: &str, error: &str) {
        self.stats.update(t, None, "update_rejected");
        tracing::warn!(r#type = %t, version = %version, error = %error, "xds update rejected (NACK)");
    }

    /// Decodes a response's resources; any failure rejects the response.
    fn decode<'a>(
        &self,
        t: ResourceType,
        anys: impl Iterator<Item = (Option<&'a str>, &'a envoy_types::pb::google::protobuf::Any)>,
    ) -> Result<Vec<Resource>, String> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (wire_name, any) in anys {
            if any.type_url != t.type_url() && any.type_url != resource::RESOURCE_WRAPPER {
                errors.push(format!(
                    "{} {:?}: a resource of type {:?} in a {} response",
                    t.noun(),
                    wire_name.unwrap_or(""),
                    any.type_url,
                    t
                ));
                continue;
            }
            match resource::decode(any) {
                // A wrapper may hold anything: what it holds must be of the response's type.
                Ok(d) if d.value.resource_type() != t => errors.push(format!(
                    "{} {:?}: a {} in a {} response",
                    t.noun(),
                    d.value.name(),
                    d.value.resource_type().noun(),
                    t
                )),
                Ok(d) => {
                    for w in &d.warnings {
                        tracing::debug!(r#type = %t, name = %d.value.name(), path = %w.path, "xds resource field ignored: {}", w.message);
                    }
                    out.push(d.value);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        let mut seen = BTreeSet::new();
        for r in &out {
            if !seen.insert(r.name()) {
                errors.push(format!(
                    "{} {:?}: given twice in one response",
                    t.noun(),
                    r.name()
                ));
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors.join("; "))
        }
    }

    /// Applies a type's next state; commits it when the proxy takes it.
    /// Applies a type's next state; commits it when the proxy takes it. `changed` names the
    /// resources of the response (for the per-resource stats of RDS and EDS).
    async fn commit(
        &mut self,
        t: ResourceType,
        next: TypeState,
        changed: &[String],
    ) -> Result<(), String> {
        let previous = std::mem::replace(self.types.get_mut(&t).expect("state"), next);
        let per_resource = self.stat_names(t, changed);
        if t == ResourceType::Endpoints {
            for n in &per_resource {
                self.stats.update(t, Some(n), "update_attempt");
            }
        }
        let result = self.apply(Some(t)).await;
        let outcome = match &result {
            Ok(()) => {
                self.answered.insert(t);
                self.publish_state();
                "update_success"
            }
            Err(_) => {
                *self.types.get_mut(&t).expect("state") = previous;
                "update_rejected"
            }
        };
        for n in &per_resource {
            self.stats.update(t, Some(n), outcome);
        }
        result
    }

    /// The names RDS and EDS stats go under: route configurations by name; endpoints by the
    /// clusters that take them (EDS names a service; several clusters may share it).
    fn stat_names(&self, t: ResourceType, changed: &[String]) -> Vec<String> {
        match t {
            ResourceType::Route => changed.to_vec(),
            ResourceType::Endpoints => changed
                .iter()
                .flat_map(|service| {
                    let clusters: Vec<String> = self
                        .dynamic_clusters()
                        .filter(|c| c.discovery_type == DiscoveryType::Eds)
                        .filter(|c| Self::eds_name(c) == service)
                        .map(|c| c.name.clone())
                        .collect();
                    if clusters.is_empty() {
                        vec![service.clone()]
                    } else {
                        clusters
                    }
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    fn publish_state(&mut self) {
        let warming = self.warming();
        let mut resources = BTreeMap::new();
        for (t, ts) in &self.types {
            let mut m = BTreeMap::new();
            for (n, (r, v, at)) in &ts.accepted {
                m.insert(
                    n.clone(),
                    DynamicResource {
                        resource: r.clone(),
                        version_info: v.clone(),
                        last_updated: *at,
                        warming: warming.contains(&(*t, n.clone()))
                            && !self.timed_out(&(*t, n.clone())),
                    },
                );
            }
            resources.insert(*t, m);
        }
        let versions = self
            .types
            .iter()
            .map(|(t, ts)| (*t, ts.version.clone()))
            .collect();
        let answered =
            |t: ResourceType| !self.subscribed().contains(&t) || self.answered.contains(&t);
        let timeout = self.initial_fetch_timeout();
        let initialized = (answered(ResourceType::Cluster)
            && answered(ResourceType::Listener)
            && warming.iter().all(|k| self.timed_out(k)))
            || (!timeout.is_zero() && self.started.elapsed() >= timeout);
        self.state_tx.send_modify(|s| {
            s.resources = resources;
            s.versions = versions;
            s.initialized |= initialized;
        });
    }

    /// The EDS service name a cluster's endpoints come under.
    fn eds_name(c: &mesh_core::config::Cluster) -> &str {
        c.eds_service_name.as_deref().unwrap_or(&c.name)
    }

    fn dynamic_clusters(&self) -> impl Iterator<Item = &mesh_core::config::Cluster> {
        let static_ = self.config.bootstrap.clusters.iter();
        let dynamic = self.types[&ResourceType::Cluster]
            .accepted
            .values()
            .filter_map(|(r, _, _)| match r {
                Resource::Cluster(c) => Some(c),
                _ => None,
            });
        static_.chain(dynamic)
    }

    fn all_listeners(&self) -> impl Iterator<Item = &mesh_core::config::Listener> {
        let static_ = self.config.bootstrap.listeners.iter();
        let dynamic = self.types[&ResourceType::Listener]
            .accepted
            .values()
            .filter_map(|(r, _, _)| match r {
                Resource::Listener(l) => Some(l),
                _ => None,
            });
        static_.chain(dynamic)
    }

    /// Which resources wait for others, by (type, name).
    fn warming(&self) -> BTreeSet<(ResourceType, String)> {
        let eds = &self.types[&ResourceType::Endpoints].accepted;
        let rds = &self.types[&ResourceType::Route].accepted;
        let mut w = BTreeSet::new();
        for c in self.dynamic_clusters() {
            if c.discovery_type == DiscoveryType::Eds && !eds.contains_key(Self::eds_name(c)) {
                w.insert((ResourceType::Cluster, c.name.clone()));
            }
        }
        for l in self.all_listeners() {
            let waits = l.hcms().any(|hcm| match &hcm.route {
                RouteSource::Rds(n) => !rds.contains_key(n),
                RouteSource::RouteConfig(_) => false,
            });
            if waits {
                w.insert((ResourceType::Listener, l.name.clone()));
            }
        }
        w
    }

    /// When the next warming resource (or the initial fetch) waits its `initial_fetch_timeout`
    /// out. A deadline already passed but not yet acted on is returned as is (it fires at
    /// once): one that a slow update overtook must still take effect.
    fn next_warming_deadline(&mut self) -> Option<Instant> {
        let timeout = self.initial_fetch_timeout();
        if timeout.is_zero() {
            return None;
        }
        let warming = self.warming();
        let now = Instant::now();
        self.warming_since.retain(|k, _| warming.contains(k));
        self.expired.retain(|k| warming.contains(k));
        for k in warming {
            self.warming_since.entry(k).or_insert(now);
        }
        let initial = (!self.initial_expired && !self.state_tx.borrow().initialized)
            .then_some(self.started + timeout);
        self.warming_since
            .iter()
            .filter(|(k, _)| !self.expired.contains(*k))
            .map(|(_, since)| *since + timeout)
            .chain(initial)
            .min()
    }

    /// A warming deadline fired: offers the config with what waited its timeout out, and marks
    /// those deadlines as acted on.
    async fn warming_deadline(&mut self) {
        // What is due now, before the config is offered: the proxy may take its time to
        // answer, and a deadline passing meanwhile must fire again.
        let timeout = self.initial_fetch_timeout();
        let initial_due = self.started.elapsed() >= timeout;
        let due: Vec<_> = self
            .warming_since
            .keys()
            .filter(|k| self.timed_out(k))
            .cloned()
            .collect();
        let _ = self.apply(None).await;
        self.initial_expired |= initial_due;
        self.expired.extend(due);
        // Readiness may have changed even if the proxy refused the config.
        self.publish_state();
    }

    /// Whether a warming resource has waited its initial fetch timeout out.
    fn timed_out(&self, key: &(ResourceType, String)) -> bool {
        let timeout = self.initial_fetch_timeout();
        !timeout.is_zero()
            && self
                .warming_since
                .get(key)
                .is_some_and(|since| since.elapsed() >= timeout)
    }

    /// The whole config now: static resources, then the accepted dynamic ones that are warm.
    fn assemble(&self) -> Result<Bootstrap, String> {
        let mut b = self.config.bootstrap.clone();
        let static_clusters: BTreeSet<String> = b.clusters.iter().map(|c| c.name.clone()).collect();
        let static_listeners: BTreeSet<String> =
            b.listeners.iter().map(|l| l.name.clone()).collect();
        let eds = &self.types[&ResourceType::Endpoints].accepted;
        let rds = &self.types[&ResourceType::Route].accepted;
        let mut errors = Vec::new();
        let mut clusters = Vec::new();
        for (name, (r, _, _)) in &self.types[&ResourceType::Cluster].accepted {
            let Resource::Cluster(c) = r else { continue };
            if static_clusters.contains(name) {
                errors.push(format!(
                    "cluster {name:?}: a static cluster of that name exists"
                ));
                continue;
            }
            let mut c = c.clone();
            if c.discovery_type == DiscoveryType::Eds {
                match eds.get(Self::eds_name(&c)) {
                    Some((Resource::Endpoints(la), _, _)) => {
                        c.load_assignment = Some(ClusterLoadAssignment {
                            cluster_name: c.name.clone(),
                            ..la.clone()
                        });
                    }
                    _ if self.timed_out(&(ResourceType::Cluster, name.clone())) => {}
                    _ => continue,
                }
            }
            clusters.push(c);
        }
        // Static EDS clusters take their endpoints from EDS too.
        for c in &mut b.clusters {
            if c.discovery_type == DiscoveryType::Eds
                && let Some((Resource::Endpoints(la), _, _)) = eds.get(Self::eds_name(c))
            {
                c.load_assignment = Some(ClusterLoadAssignment {
                    cluster_name: c.name.clone(),
                    ..la.clone()
                });
            }
        }
        b.clusters.extend(clusters);
        let mut routes: Vec<mesh_core::config::RouteConfiguration> = Vec::new();
        let mut add_routes =
            |l: &mesh_core::config::Listener,
             from: &dyn Fn(&str) -> Option<mesh_core::config::RouteConfiguration>| {
                for hcm in l.hcms() {
                    if let RouteSource::Rds(n) = &hcm.route
                        && !routes.iter().any(|r| &r.name == n)
                    {
                        // Missing only when the listener waited its initial fetch timeout out: an
                        // empty table (every request a 404), as Envoy's.
                        routes.push(from(n).unwrap_or_else(|| {
                            mesh_core::config::RouteConfiguration::new(n.clone())
                        }));
                    }
                }
            };
        let accepted_routes = |n: &str| match rds.get(n) {
            Some((Resource::Route(rc), _, _)) => Some(rc.clone()),
            _ => None,
        };
        for l in &self.config.bootstrap.listeners {
            add_routes(l, &accepted_routes);
        }
        for (name, (r, _, _)) in &self.types[&ResourceType::Listener].accepted {
            let Resource::Listener(l) = r else { continue };
            if static_listeners.contains(name) {
                errors.push(format!(
                    "listener {name:?}: a static listener of that name exists"
                ));
                continue;
            }
            let warm = l.hcms().all(|hcm| match &hcm.route {
                RouteSource::Rds(n) => rds.contains_key(n),
                RouteSource::RouteConfig(_) => true,
            });
            if warm || self.timed_out(&(ResourceType::Listener, name.clone())) {
                add_routes(l, &accepted_routes);
                b.listeners.push(l.clone());
            } else if let Some(applied) = &self.applied
                && let Some(old) = applied.listeners.iter().find(|o| &o.name == name)
            {
                // The new version warms; the one in service keeps serving, with its routes.
                let applied_routes =
                    |n: &str| applied.route_configs.iter().find(|r| r.name == n).cloned();
                add_routes(old, &applied_routes);
                b.listeners.push(old.clone());
            }
        }
        b.route_configs.extend(routes);
        if let Err(e) = b.validate() {
            errors.extend(e.errors.iter().map(|fe| name_error(&b, fe)));
        }
        if errors.is_empty() {
            Ok(b)
        } else {
            Err(errors.join("; "))
        }
    }

    /// Assembles the config and offers it to the proxy; `t` is the type whose update this is
    /// (`None` when a warming timeout passed).
    async fn apply(&mut self, t: Option<ResourceType>) -> Result<(), String> {
        let bootstrap = self.assemble()?;
        let sent = bootstrap.clone();
        let (reply, answer) = oneshot::channel();
        let update = XdsUpdate {
            bootstrap,
            endpoints_only: t == Some(ResourceType::Endpoints),
            reply: Some(reply),
        };
        if self.updates.send(update).await.is_err() {
            return Err("the proxy stopped".into());
        }
        let result = answer
            .await
            .unwrap_or_else(|_| Err("the proxy stopped before it answered".into()));
        if result.is_ok() {
            self.applied = Some(sent);
            self.publish_state();
        }
        result
    }

    /// Recomputes the RDS and EDS names the accepted config needs; drops what is no longer
    /// needed.
    fn refresh_names(&mut self) -> [bool; 2] {
        let mut routes = BTreeSet::new();
        for l in self.all_listeners() {
            for hcm in l.hcms() {
                if let RouteSource::Rds(n) = &hcm.route {
                    routes.insert(n.clone());
                }
            }
        }
        let endpoints: BTreeSet<String> = self
            .dynamic_clusters()
            .filter(|c| c.discovery_type == DiscoveryType::Eds)
            .map(|c| Self::eds_name(c).to_owned())
            .collect();
        let mut changed = [false; 2];
        for (i, (t, names)) in [
            (ResourceType::Route, routes),
            (ResourceType::Endpoints, endpoints),
        ]
        .into_iter()
        .enumerate()
        {
            let ts = self.types.get_mut(&t).expect("state");
            if ts.names != names {
                ts.accepted.retain(|n, _| names.contains(n));
                ts.names = names;
                changed[i] = true;
            }
        }
        changed
    }

    /// Sends RDS and EDS subscription changes.
    fn follow_names(&mut self, req_tx: &mpsc::UnboundedSender<Outgoing>) -> Result<(), String> {
        let changed = self.refresh_names();
        for (i, t) in [ResourceType::Route, ResourceType::Endpoints]
            .into_iter()
            .enumerate()
        {
            if !changed[i] {
                continue;
            }
            let out = if self.delta() {
                let ts = self.types.get_mut(&t).expect("state");
                let subscribe: Vec<String> = ts.names.difference(&ts.told).cloned().collect();
                let unsubscribe: Vec<String> = ts.told.difference(&ts.names).cloned().collect();
                ts.told = ts.names.clone();
                Outgoing::Delta(ds::DeltaDiscoveryRequest {
                    node: None,
                    type_url: t.type_url().into(),
                    resource_names_subscribe: subscribe,
                    resource_names_unsubscribe: unsubscribe,
                    ..ds::DeltaDiscoveryRequest::default()
                })
            } else {
                self.sotw_request(t, None)
            };
            req_tx.send(out).map_err(|_| "stream closed")?;
        }
        Ok(())
    }
}

/// Forwards requests of one variant to the gRPC stream.
async fn forward<T>(
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    tx: mpsc::UnboundedSender<T>,
    pick: impl Fn(Outgoing) -> Option<T>,
) {
    while let Some(o) = rx.recv().await {
        if let Some(m) = pick(o)
            && tx.send(m).is_err()
        {
            return;
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A validation error with its resource named: `listeners[2].…` becomes
/// `listener "name": …`.
fn name_error(b: &Bootstrap, fe: &FieldError) -> String {
    let (noun, list, rest) = if let Some(r) = fe.path.strip_prefix("listeners[") {
        ("listener", 0, r)
    } else if let Some(r) = fe.path.strip_prefix("clusters[") {
        ("cluster", 1, r)
    } else if let Some(r) = fe.path.strip_prefix("route_configs[") {
        ("route configuration", 2, r)
    } else {
        return fe.to_string();
    };
    let Some((index, tail)) = rest.split_once(']') else {
        return fe.to_string();
    };
    let Ok(i) = index.parse::<usize>() else {
        return fe.to_string();
    };
    let name = match list {
        0 => b.listeners.get(i).map(|l| l.name.as_str()),
        1 => b.clusters.get(i).map(|c| c.name.as_str()),
        _ => b.route_configs.get(i).map(|r| r.name.as_str()),
    }
    .unwrap_or("");
    let tail = tail.strip_prefix('.').unwrap_or(tail);
    if tail.is_empty() {
        format!("{noun} {name:?}: {}", fe.message)
    } else {
        format!("{noun} {name:?}: {tail}: {}", fe.message)
    }
}
