//! Config formats for the mesh toolkit.
//!
//! `mesh-xds` translates config into the [`mesh_core::config`] model and back out, from files
//! and over the wire:
//!
//! | module | what |
//! |---|---|
//! | [`envoy`] | reads Envoy v3 bootstrap files and bare route configurations (YAML or JSON) |
//! | [`envoy::dump`] | writes the model as Envoy v3 JSON (for `/config_dump`); it reads back unchanged |
//! | [`istio`] | reads Istio networking YAML and translates it for a sidecar or a gateway |
//! | [`istio::gateway_api`] | Kubernetes Gateway API YAML (Gateway, HTTPRoute, GRPCRoute, ReferenceGrant), served the same way, and its status |
//! | [`xds`] (feature `xds`, on by default) | the xDS protocol: resources on the wire, an ADS client, a management server, a control plane over Istio YAML |
//! | [`error`] | [`LoadError`], with the path of every problem |
//!
//! ```
//! let loaded = mesh_xds::envoy::parse_route_configuration(r#"
//! virtual_hosts:
//! - name: all
//!   domains: ["*"]
//!   routes:
//!   - match: { prefix: / }
//!     route: { cluster: web }
//! "#)?;
//! assert!(loaded.warnings.is_empty());
//! assert_eq!(loaded.value.virtual_hosts[0].name, "all");
//! # Ok::<(), mesh_xds::LoadError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

pub mod envoy;
pub mod error;
pub mod istio;
#[cfg(feature = "xds")]
pub mod xds;
mod yaml;

pub use error::LoadError;
