//! The xDS protocol: Envoy's discovery services over gRPC.
//!
//! - [`resource`]: resources on the wire to and from the config model.
//! - [`client`]: an ADS client, the proxy's side.
//! - [`server`]: a management server (ADS) over a snapshot cache.
//! - [`pilot`]: a control plane over Istio YAML, a view per node.
//! - [`node`]: the node a proxy names itself with.

pub mod client;
pub mod node;
pub mod pilot;
pub mod resource;
pub mod server;
