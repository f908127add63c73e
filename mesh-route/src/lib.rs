//! Envoy route tables: virtual-host selection, route matching and route actions.
//!
//! [`RouteTable::compile`] turns a [`mesh_core::config::RouteConfiguration`] into a table;
//! [`RouteTable::find`] selects the virtual host by `:authority`/`Host` and the first route (in
//! declaration order) whose conditions all hold, as Envoy does. Unlike Envoy it does not scan
//! the routes: an index by exact path, prefix trie and regex set narrows them to the candidates
//! whose path can match, and only those are evaluated, in order, so the result is the same.
//! Matching is pure, synchronous and allocation-free for forwarding routes without rewrites:
//! the random value used by runtime fractions and weighted clusters is passed in.
//!
//! ```
//! use mesh_core::config::*;
//! use mesh_route::{HitAction, RouteTable};
//!
//! let cfg = RouteConfiguration::new("local").with_virtual_host(
//!     VirtualHost::new("web", ["example.com", "*.example.com"])
//!         .with_route(Route::prefix("/api", "api"))
//!         .with_route(Route::prefix("/", "web")),
//! );
//! let table = RouteTable::compile(&cfg).unwrap();
//!
//! let (parts, ()) = http::Request::get("/api/users?id=1")
//!     .header("host", "www.example.com")
//!     .body(())
//!     .unwrap()
//!     .into_parts();
//! let hit = table.find(&parts, 42).expect("a route");
//! assert_eq!(hit.virtual_host().name(), "web");
//! let HitAction::Forward(fwd) = hit.action() else { panic!("not forwarded") };
//! assert_eq!(fwd.cluster(&parts), "api");
//! ```
//!
//! The config types are re-exported as [`config`], and the `http` crate as [`http`], so a
//! program needs no other crate of the toolkit. To load a route configuration from Envoy YAML or
//! JSON, use `mesh_xds::envoy::parse_route_configuration` (with `mesh-xds`'s default features
//! off, it is the file readers alone); its errors name the field at fault
//! (`virtual_hosts[0].routes[1].route.prefix_rewrit: unknown field`).
//!
//! The random value drives weighted clusters and runtime fractions: draw a fresh one per
//! request (a constant sends every request to the same weighted cluster).
//!
//! # What is read from the request
//!
//! | input | source |
//! |---|---|
//! | `:authority` | `parts.uri.authority()` (HTTP/2, absolute-form), else the `host` header |
//! | `:path` | `parts.uri.path_and_query()`; absent for authority-form (CONNECT) requests |
//! | `:scheme` | `parts.uri.scheme()`, else the `x-forwarded-proto` header |
//! | `:method` | `parts.method` |
//! | downstream TLS (for `tls_context` matches) | a [`DownstreamTls`] in `parts.extensions`; absent means plaintext |
//!
//! The behaviour follows `SEMANTICS.md` §1–§3 (Envoy's `config_impl.cc`). Module docs give the
//! details of each step:
//!
//! | module | what |
//! |---|---|
//! | `table` | [`RouteTable`], [`Hit`], [`BuildError`]; the lookup and `require_tls` |
//! | `index` | the per-virtual-host route index that finds the first matching route without scanning every route |
//! | `vhost` | [`VirtualHostInfo`], domain classification and selection |
//! | `matcher` (`path`, `header`, `query`) | route conditions; [`HeaderMatch`] is public for retry policies |
//! | `action` | [`HitAction`], [`Forward`]: clusters, weighted picks, redirects, direct responses |
//! | `rewrite` | path and host rewrites, RE2 substitutions, header mutations |
//!
//! # Not implemented yet
//!
//! `%VAR%` substitutions in header values (kept verbatim), runtime overrides
//! (`runtime_key`, `runtime_key_prefix`: the configured defaults are used), weighted-cluster
//! `use_hash_policy` (the random value is used), `validate_clusters` (needs the cluster set).
#![forbid(unsafe_code)]
#![deny(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod action;
/// The maps read per request (domains, exact paths): keyed by config, so a fast seeded hasher.
type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
mod index;
mod matcher;
mod rewrite;
mod table;
mod vhost;

pub use action::{Forward, HitAction};
/// The `http` crate, whose request types this crate's API takes.
pub use http;
pub use matcher::DownstreamTls;
pub use matcher::header::HeaderMatch;
/// The config model this crate takes (re-exported from `mesh-core`), so a program that uses
/// this crate alone needs no other; `mesh_xds::envoy` (with `default-features = false`, the
/// file readers alone) loads it from Envoy YAML or JSON.
pub use mesh_core::config;
pub use rewrite::RequestInfo;
pub use table::{BuildError, FilterConfig, FilterConfigParser, FilterConfigs, Hit, RouteTable};
pub use vhost::VirtualHostInfo;
