//! The xDS protocol: Envoy's discovery services over gRPC, both ends.
//!
//! - [`resource`]: resources on the wire (protobuf `Any`s) to and from the config model, read
//!   by the same readers as files, so a NACK names the field at fault as the file reader does.
//! - [`server`]: a management server (ADS in both variants, and the per-type services) over a
//!   snapshot cache keyed by view.
//! - [`client`]: an ADS client, the proxy's side: subscriptions that follow the config,
//!   warming, ACK/NACK from the proxy's answer, reconnection that resumes.
//! - [`pilot`]: a control plane over Istio YAML, a view per node as istiod chooses it.
//! - [`node`]: the node a proxy names itself with.
//!
//! A server and a client in one process, on loopback: the client's first update holds what the
//! server's snapshot serves, and its answer is the ACK.
//!
//! ```
//! use std::sync::Arc;
//! use mesh_core::config::*;
//! use mesh_core::stats::Registry;
//! use mesh_xds::xds::client::{AdsClient, ClientConfig};
//! use mesh_xds::xds::resource::Resource;
//! use mesh_xds::xds::server::{Snapshot, SnapshotCache, XdsServer};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // The control plane: one view, for the node "front".
//! let cache = Arc::new(SnapshotCache::new());
//! let web = Cluster::new_static("web", ["127.0.0.1:8081".parse().unwrap()]);
//! cache.set_snapshot("front", Snapshot::new([Resource::Cluster(web)]));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let addr = listener.local_addr().unwrap();
//! tokio::spawn(XdsServer::new(cache.clone()).serve(listener, std::future::pending()));
//!
//! // The proxy's side: a bootstrap that names its node and reaches the control plane.
//! let mut bootstrap = Bootstrap::default()
//!     .with_cluster(Cluster::new_static("xds", [addr]).with_protocol(UpstreamProtocol::Http2));
//! bootstrap.node.id = "front".into();
//! bootstrap.dynamic_resources = Some(DynamicResources::over_ads("xds"));
//! let mut client = AdsClient::start(
//!     ClientConfig::from_bootstrap(&bootstrap).unwrap(),
//!     Arc::new(Registry::new()),
//! );
//! let update = client.next().await.unwrap();
//! assert!(update.bootstrap.cluster("web").is_some());
//! update.reply(Ok(())); // ACK; Err(message) would NACK
//! # });
//! ```

pub mod client;
pub mod node;
pub mod pilot;
pub mod resource;
pub mod server;
