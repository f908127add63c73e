//! The vocabulary of the mesh toolkit.
//!
//! Every other crate speaks these types:
//!
//! | module | what |
//! |---|---|
//! | [`config`] | the declarative config model ([`config::Bootstrap`]) with validation |
//! | [`filter`] | the HTTP filter API and the registry of named filter factories |
//! | [`stats`] | counters, gauges, histograms; Envoy text and Prometheus rendering |
//! | [`store`] | [`store::ConfigStore`], the lock-free holder of the compiled config |
//! | [`flags`] | Envoy's response flags |
//! | [`error`] | [`error::BoxError`] and helpers to classify error chains |
//!
//! Nothing here does I/O.
//!
//! # A config, checked
//!
//! The model is plain data with builders; [`config::Bootstrap::validate`] reports every
//! problem with the path of the field at fault, as Envoy's field names spell it:
//!
//! ```
//! use mesh_core::config::*;
//!
//! let routes = RouteConfiguration::new("local")
//!     .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "web")));
//! let hcm = HttpConnectionManager::with_routes(routes);
//! let bootstrap = Bootstrap::default()
//!     .with_listener(Listener::http("http", "127.0.0.1:0".parse().unwrap(), hcm));
//! // No cluster "web": the route names one that does not exist.
//! let err = bootstrap.validate().unwrap_err();
//! assert!(err.to_string().contains("routes[0]"), "{err}");
//!
//! let fixed = bootstrap.with_cluster(Cluster::new_static("web", ["127.0.0.1:8081".parse().unwrap()]));
//! fixed.validate().unwrap();
//! ```
//!
//! # A filter, from its config
//!
//! A filter implements [`filter::HttpFilter`] (every hook has a no-op default) and is
//! registered by name; its config is a serde type, so a config that does not fit is an error
//! naming the field before the filter is built:
//!
//! ```
//! use async_trait::async_trait;
//! use mesh_core::filter::{FilterContext, FilterRegistry, Flow, HttpFilter, LocalReply, RequestHead};
//!
//! #[derive(Debug, serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config { max_path: usize }
//!
//! /// Answers 414 to a path longer than `max_path`.
//! #[derive(Debug)]
//! struct PathLimit(Config);
//!
//! #[async_trait]
//! impl HttpFilter for PathLimit {
//!     async fn on_request(&self, req: &mut RequestHead, _cx: &mut FilterContext) -> Flow {
//!         if req.uri.path().len() > self.0.max_path {
//!             return Flow::Reply(LocalReply::new(http::StatusCode::URI_TOO_LONG));
//!         }
//!         Flow::Continue
//!     }
//! }
//!
//! let mut registry = FilterRegistry::new();
//! registry.register_typed("acme.path_limit", |c: Config| Ok::<_, mesh_core::BoxError>(PathLimit(c)));
//!
//! let good = mesh_core::config::HttpFilterConfig::new("acme.path_limit", serde_json::json!({"max_path": 64}));
//! assert!(registry.build(&good).is_ok());
//! let bad = mesh_core::config::HttpFilterConfig::new("acme.path_limit", serde_json::json!({"max_path": "64"}));
//! let err = registry.build(&bad).unwrap_err().to_string();
//! assert!(err.contains("max_path: invalid type: string"), "{err}");
//! ```
//!
//! `mesh-proxy` runs such filters in its connection manager, in the order the listener's
//! `http_filters` name them.
#![forbid(unsafe_code)]
#![deny(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

pub mod config;
pub mod error;
pub mod filter;
pub mod flags;
pub mod runtime;
pub mod stats;
pub mod store;

pub use error::BoxError;
