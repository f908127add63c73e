//! The xDS protocol: Envoy's discovery services over gRPC.
//!
//! - [`resource`]: resources on the wire to and from the config model.

pub mod resource;
