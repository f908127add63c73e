//! Runnable examples of the mesh toolkit, and the pieces the `mesh-proxy` binary's demo uses.
//!
//! - [`demo`]: small upstream services on loopback and the embedded demo config;
//! - [`bookinfo`]: Istio's Bookinfo demo (six workloads, a sidecar and an ingress gateway
//!   from Istio YAML) and its scenarios;
//! - [`files`]: stamps of config files, for watchers;
//! - [`iptables`]: the traffic capture of Istio's sidecar (`mesh-proxy iptables`);
//! - [`api_key`]: the filter of the `custom-filter` example (a user's own filter, registered by
//!   name and configured from YAML);
//! - [`body_filters`]: the example's body-rewriting and upstream-aware filters;
//! - [`route_check`]: the `mesh-route-check` tool, which runs Envoy `router_check_tool` test
//!   files against a route configuration.
#![forbid(unsafe_code)]
#![deny(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

/// The README's Rust snippets, compiled and run as this crate's doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub mod api_key;
pub mod body_filters;
pub mod bookinfo;
pub mod demo;
pub mod files;
pub mod iptables;
pub mod route_check;
