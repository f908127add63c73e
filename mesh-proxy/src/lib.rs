//! The mesh proxy runtime: listeners, the HTTP connection manager, the filter chain, the
//! router and upstream connection pools; and the same machinery in process, as a
//! [`tower::Service`] ([`Client`]).
//!
//! # A proxy from a file
//!
//! Read an Envoy v3 bootstrap (YAML or JSON) with `mesh_xds::envoy` (or build one in code
//! with the [`mesh_core::config`] builders), build a [`Proxy`], and start it:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! // An upstream to proxy to: a plain hyper server on a free loopback port.
//! let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let port = upstream.local_addr()?.port();
//! tokio::spawn(async move {
//!     while let Ok((conn, _)) = upstream.accept().await {
//!         let hello = hyper::service::service_fn(|_req| async {
//!             let body = http_body_util::Full::new(bytes::Bytes::from("hello from web"));
//!             Ok::<_, std::convert::Infallible>(http::Response::new(body))
//!         });
//!         let conn = hyper::server::conn::http1::Builder::new()
//!             .serve_connection(hyper_util::rt::TokioIo::new(conn), hello);
//!         tokio::spawn(conn);
//!     }
//! });
//! let bootstrap = mesh_xds::envoy::parse_bootstrap(&format!(r#"
//! static_resources:
//!   listeners:
//!   - name: http
//!     address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
//!     filter_chains:
//!     - filters:
//!       - name: envoy.filters.network.http_connection_manager
//!         typed_config:
//!           "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
//!           stat_prefix: http
//!           route_config:
//!             virtual_hosts:
//!             - name: all
//!               domains: ["*"]
//!               routes:
//!               - match: {{ prefix: / }}
//!                 route: {{ cluster: web, retry_policy: {{ retry_on: 5xx, num_retries: 2 }} }}
//!   clusters:
//!   - name: web
//!     type: STATIC
//!     load_assignment:
//!       cluster_name: web
//!       endpoints:
//!       - lb_endpoints:
//!         - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}
//! "#, port))?.value;
//!
//! let running = mesh_proxy::Proxy::builder(bootstrap).build()?.start().await?;
//! let addr = running.listener_addr("http").expect("bound");
//!
//! let mut conn = tokio::net::TcpStream::connect(addr).await?;
//! conn.write_all(b"GET / HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n").await?;
//! let mut response = String::new();
//! conn.read_to_string(&mut response).await?;
//! assert!(response.starts_with("HTTP/1.1 200"), "{response}");
//! assert!(response.ends_with("hello from web"));
//!
//! running.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! [`Proxy::run`] does the same until a signal (`mesh-proxy` the binary is little more than
//! that); [`RunningProxy::reload`] and [`RunningProxy::follow`] replace the config while it
//! runs.
//!
//! # A filter of your own
//!
//! An [`HttpFilter`] sees each request's and response's head
//! (and, when it asks, their bodies frame by frame); it is registered by name, with its config
//! a serde type, and a bootstrap names it as Envoy would name a built-in:
//!
//! ```
//! use async_trait::async_trait;
//! use mesh_core::filter::{FilterContext, Flow, HttpFilter, RequestHead};
//!
//! #[derive(Debug, serde::Deserialize)]
//! struct TagConfig { value: String }
//!
//! /// Adds `x-tag: <value>` to every request it forwards.
//! #[derive(Debug)]
//! struct Tag(http::HeaderValue);
//!
//! #[async_trait]
//! impl HttpFilter for Tag {
//!     async fn on_request(&self, req: &mut RequestHead, _cx: &mut FilterContext) -> Flow {
//!         req.headers.insert("x-tag", self.0.clone());
//!         Flow::Continue
//!     }
//! }
//!
//! # fn demo(bootstrap: mesh_core::config::Bootstrap) -> Result<(), mesh_proxy::Error> {
//! let proxy = mesh_proxy::Proxy::builder(bootstrap)
//!     .filter_typed("acme.tag", |c: TagConfig| {
//!         http::HeaderValue::try_from(c.value).map(Tag)
//!     })
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! `examples/custom-filter` runs a whole one; `tests/embedding.rs` has a body-rewriting filter
//! and one that sees each attempt's upstream host.
//!
//! # In process: the proxyless client
//!
//! A [`Client`] is the proxy as a [`tower::Service`] for a service's own outbound calls: route
//! matching, balancing, retries, timeouts, circuit breakers and outlier detection run in the
//! caller's process, with no sidecar hop. It mounts in axum or hyper as a service, too (see
//! [`Client`]). Its upstream can be the network or any [`tower::Service`]:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mesh_core::config::*;
//! use tower::Service;
//!
//! let routes = RouteConfiguration::new("out").with_virtual_host(
//!     VirtualHost::new("reviews", ["reviews"]).with_route(Route::prefix("/", "reviews")),
//! );
//! let bootstrap = Bootstrap::default()
//!     .with_listener(Listener::http("out", "127.0.0.1:0".parse()?, HttpConnectionManager::with_routes(routes)))
//!     .with_cluster(Cluster::new_static("reviews", ["10.0.0.1:9080".parse()?, "10.0.0.2:9080".parse()?]));
//!
//! // An in-memory upstream that names the host the balancer picked.
//! let upstream = tower::service_fn(|req: http::Request<mesh_proxy::body::ProxyBody>| async move {
//!     let host = req.uri().authority().map(|a| a.to_string()).unwrap_or_default();
//!     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::from(host))))
//! });
//! let builder = mesh_proxy::Proxy::builder(bootstrap).upstream_tower(upstream);
//! let mut client = mesh_proxy::Client::start(builder, "out").await?;
//!
//! let mut hosts = std::collections::BTreeSet::new();
//! for _ in 0..4 {
//!     let req = http::Request::get("http://reviews/reviews/0").body(http_body_util::Empty::<bytes::Bytes>::new())?;
//!     let resp = client.call(req).await?;
//!     let body = http_body_util::BodyExt::collect(resp.into_body()).await.map_err(|e| e.to_string())?.to_bytes();
//!     hosts.insert(String::from_utf8(body.to_vec())?);
//! }
//! // Round robin over both hosts.
//! assert_eq!(hosts.into_iter().collect::<Vec<_>>(), ["10.0.0.1:9080", "10.0.0.2:9080"]);
//! client.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Each request loads the compiled config once from a [`ConfigStore`] and uses that snapshot
//! to the end. Config is validated and compiled before it is published; an invalid config is
//! rejected whole with every error and its field path.
//!
//! # Cancel safety
//! [`RunningProxy::shutdown`] stops accepting at once and then waits for in-flight requests
//! up to the drain time; dropping its future early leaves the drain running in the background.
#![forbid(unsafe_code)]
#![deny(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod access_log;
mod admin;
pub mod body;
mod client;
mod compile;
mod conn_manager;
mod error;
mod filters;
mod h1;
mod h1_server;
mod headers;
mod health_check;
mod in_process;
mod inspect;
mod listener;
mod load;
mod original_dst;
mod path;
mod random;
mod router;
pub mod source;
mod tcp_proxy;
mod tls;
mod trace;
mod upstream;
mod workers;

#[cfg(feature = "test-util")]
pub mod test_util;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mesh_core::BoxError;
use mesh_core::config::{Bootstrap, Listener};
use mesh_core::filter::{FilterRegistry, HttpFilter};
use mesh_core::stats::{Counter, Gauge, Registry, StatName};
use mesh_core::store::ConfigStore;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use access_log::DEFAULT_FILE_FLUSH_INTERVAL;
pub use access_log::DEFAULT_FORMAT as DEFAULT_ACCESS_LOG_FORMAT;
pub use client::Client;
pub use error::Error;
pub use in_process::{TowerUpstream, UpstreamFuture, UpstreamService};

use compile::Compiled;
use conn_manager::Shared;
use error::Kind;

/// Default time in-flight requests get to finish on shutdown.
pub const DEFAULT_DRAIN_TIME: Duration = Duration::from_secs(10);

/// Configures a [`Proxy`].
#[derive(Debug)]
pub struct ProxyBuilder {
    bootstrap: Bootstrap,
    registry: FilterRegistry,
    drain_time: Duration,
    stats: Arc<Registry>,
    admin: Option<SocketAddr>,
    log_level: LogLevelControl,
    pages: AdminPages,
    seed: Option<u64>,
    upstream: Option<Arc<dyn UpstreamService>>,
    workers: usize,
    http1_client: Http1Client,
    http1_server: Http1Server,
    file_flush_interval: Duration,
}

/// Which server reads HTTP/1.x requests from downstream connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Http1Server {
    /// The built-in server while requests have no body and ask no upgrade (most GETs): the
    /// connection's task parses and writes HTTP/1.x itself, with a small read buffer released
    /// while the connection idles. The first request it does not cover hands the connection
    /// to hyper for good.
    #[default]
    Builtin,
    /// hyper's server for every connection.
    Hyper,
}

/// Which client sends HTTP/1.1 requests to upstream hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Http1Client {
    /// The built-in client for requests whose body is complete with the head (most GETs):
    /// the task serving the downstream request writes the request and reads the response
    /// itself, with no connection task and no channel between them. Requests with a body to
    /// stream, and upgrades, go through hyper's client.
    #[default]
    Builtin,
    /// hyper's client for every request: a task per connection drives it.
    Hyper,
}

/// What the admin API's `/logging?level=` calls (the embedder owns the log subscriber).
#[derive(Clone, Default)]
struct LogLevelControl(Option<Arc<SetLevel>>);

type SetLevel = dyn Fn(&str) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for LogLevelControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "LogLevelControl(set)"
        } else {
            "LogLevelControl(none)"
        })
    }
}

/// Pages the embedder adds to the admin API: (path, help, what it shows).
#[derive(Clone, Default)]
pub(crate) struct AdminPages(pub(crate) Vec<(String, String, Arc<PageFn>)>);

type PageFn = dyn Fn() -> String + Send + Sync;

impl std::fmt::Debug for AdminPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(p, _, _)| p))
            .finish()
    }
}

impl ProxyBuilder {
    /// Adds a read-only page to the admin API: `GET path` answers what `page` returns at that
    /// moment, as text (the help page lists it with `help`). Built-in endpoints keep their
    /// paths; a page may not replace one.
    ///
    /// ```
    /// use mesh_core::config::Bootstrap;
    /// let builder = mesh_proxy::Proxy::builder(Bootstrap::default())
    ///     .admin_page("/my_state", "what my embedding thinks", || "all good\n".to_owned());
    /// # let _ = builder;
    /// ```
    pub fn admin_page(
        mut self,
        path: impl Into<String>,
        help: impl Into<String>,
        page: impl Fn() -> String + Send + Sync + 'static,
    ) -> Self {
        self.pages
            .0
            .push((path.into(), help.into(), Arc::new(page)));
        self
    }

    /// Lets the admin API's `POST /logging?level=LEVEL` change the log level: `f` gets the
    /// level and applies it to the embedder's log subscriber. Default: none, and `/logging`
    /// answers that level control is not available.
    pub fn log_level_control(
        mut self,
        f: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.log_level = LogLevelControl(Some(Arc::new(f)));
        self
    }

    /// Registers a filter factory under `name`; a bootstrap's `http_filters` entry whose name
    /// (or `TypedStruct` `type_url`) is `name` gets a filter built by `factory` from its config.
    /// Built-in filters (`envoy.filters.http.fault`) are registered the same way; registering
    /// a factory under the same name replaces the built-in.
    pub fn filter<F, T, E>(mut self, name: impl Into<String>, factory: F) -> Self
    where
        F: Fn(&serde_json::Value) -> Result<T, E> + Send + Sync + 'static,
        T: HttpFilter,
        E: Into<BoxError>,
    {
        self.registry.register(name, factory);
        self
    }

    /// Registers a filter whose config is a serde type (see
    /// [`FilterRegistry::register_typed`](mesh_core::filter::FilterRegistry::register_typed)):
    /// a config that does not deserialize into `C` is a config error naming the field.
    pub fn filter_typed<C, F, T, E>(mut self, name: impl Into<String>, factory: F) -> Self
    where
        C: serde::de::DeserializeOwned,
        F: Fn(C) -> Result<T, E> + Send + Sync + 'static,
        T: HttpFilter,
        E: Into<BoxError>,
    {
        self.registry.register_typed(name, factory);
        self
    }

    /// How long in-flight requests may run after shutdown begins. Default is 10 seconds.
    pub fn drain_time(mut self, d: Duration) -> Self {
        self.drain_time = d;
        self
    }

    /// How long an access-log line may wait in its file's buffer (Envoy's
    /// `--file-flush-interval-msec`). Lines to a file are written by a thread per file, every
    /// `d` or as soon as 64 KiB are waiting, and at [`RunningProxy::shutdown`]; no request
    /// waits for the disk. Zero writes each line as it comes. Default
    /// [`DEFAULT_FILE_FLUSH_INTERVAL`], Envoy's 10 seconds. Standard output and error are
    /// written line by line.
    pub fn file_flush_interval(mut self, d: Duration) -> Self {
        self.file_flush_interval = d;
        self
    }

    /// Serves the admin API on `addr`, overriding the bootstrap's `admin` block. Default: the
    /// bootstrap's `admin` address, or no admin server when it has none.
    pub fn admin(mut self, addr: SocketAddr) -> Self {
        self.admin = Some(addr);
        self
    }

    /// Makes the request path's sampling draws (fault and mirror fractions, weighted clusters,
    /// host picks, retry backoff jitter, filters' [`FilterContext::random_u64`]) come from one
    /// sequence started at `seed`, so the same requests in the same order draw the same
    /// numbers. Request and trace ids stay random. Default: unseeded, a fast per-thread source.
    ///
    /// [`FilterContext::random_u64`]: mesh_core::filter::FilterContext::random_u64
    pub fn random_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Serves the listeners on `n` worker threads, each with its own single-threaded tokio
    /// runtime and its own `SO_REUSEPORT` socket per listener (Envoy's `--concurrency`, nginx's
    /// worker processes): the kernel spreads connections across the workers, and a connection
    /// is served, and its upstream connections pooled and driven, on the thread that accepted
    /// it, so nothing on the request path wakes another thread. The admin server, config
    /// sources and health checks stay on the runtime that starts the proxy.
    ///
    /// Default 0: listeners are served on the runtime that calls [`Proxy::start`], whatever
    /// its kind (an embedder's multi-threaded runtime, say).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Which client sends HTTP/1.1 requests upstream (default: [`Http1Client::Builtin`]).
    pub fn http1_client(mut self, client: Http1Client) -> Self {
        self.http1_client = client;
        self
    }

    /// Which server reads HTTP/1.x downstream (default: [`Http1Server::Builtin`]).
    pub fn http1_server(mut self, server: Http1Server) -> Self {
        self.http1_server = server;
        self
    }

    /// Answers every upstream request in process with `service` instead of connecting to
    /// the hosts (see [`Proxy::handle`]). Active health checks still probe the network.
    pub fn upstream_service(mut self, service: impl UpstreamService) -> Self {
        self.upstream = Some(Arc::new(service));
        self
    }

    /// Sends every upstream request through `service`, any [`tower::Service`] of
    /// `http::Request<ProxyBody>` (a hyper-util client, a tower stack with its own layers, an
    /// in-memory service), with the URI made absolute to the host the load balancer picked
    /// (see [`TowerUpstream`]).
    pub fn upstream_tower<S, B>(self, service: S) -> Self
    where
        S: tower::Service<http::Request<body::ProxyBody>, Response = http::Response<B>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<mesh_core::BoxError>,
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<mesh_core::BoxError>,
    {
        self.upstream_service(TowerUpstream(service))
    }

    /// Runs every check [`ProxyBuilder::build`] runs (validation, and compiling the route
    /// tables, clusters, filters and access logs with the registered filters) without building
    /// anything: what `mesh-proxy validate` reports.
    ///
    /// # Errors
    /// Every problem, each with its path.
    pub fn check(&self) -> Result<(), mesh_core::config::ValidationError> {
        compile::compile(
            &self.bootstrap,
            &self.registry,
            &Registry::new(),
            None,
            &Default::default(),
            &access_log::LogFiles::new(Duration::ZERO),
        )
        .map(drop)
    }

    /// Validates and compiles the config.
    ///
    /// # Errors
    /// An [`Error`] with [`Error::is_config`] whose source is a
    /// [`mesh_core::config::ValidationError`] listing every problem with its path.
    pub fn build(self) -> Result<Proxy, Error> {
        let log_files = access_log::LogFiles::new(self.file_flush_interval);
        let compiled = compile::compile(
            &self.bootstrap,
            &self.registry,
            &self.stats,
            None,
            &Default::default(),
            &log_files,
        )
        .map_err(|e| Error::new(Kind::Config, Some(e.into())))?;
        let admin = self.admin.or(self.bootstrap.admin.map(|a| a.address));
        let store = Arc::new(ConfigStore::new(compiled));
        let shared = Arc::new(Shared {
            store: Arc::clone(&store),
            stats: Arc::clone(&self.stats),
            epoch: tokio::time::Instant::now(),
            random: random::Source::new(self.seed),
            upstream: self.upstream,
            http1_client: self.http1_client,
            http1_server: self.http1_server,
            downstream_cx: AtomicU64::new(0),
            admin_runtime: std::sync::Mutex::default(),
            log_files,
        });
        Ok(Proxy {
            store,
            stats: self.stats,
            registry: self.registry,
            drain_time: self.drain_time,
            admin,
            log_level: self.log_level,
            pages: self.pages,
            shared,
            workers: self.workers,
        })
    }
}

/// A compiled proxy, ready to bind its listeners.
#[derive(Debug)]
pub struct Proxy {
    store: Arc<ConfigStore<Compiled>>,
    stats: Arc<Registry>,
    registry: FilterRegistry,
    drain_time: Duration,
    admin: Option<SocketAddr>,
    log_level: LogLevelControl,
    pages: AdminPages,
    shared: Arc<Shared>,
    workers: usize,
}

/// [`Proxy::handle`] and [`RunningProxy::handle`].
async fn handle_in_process(
    shared: &Arc<Shared>,
    listener: &str,
    remote: SocketAddr,
    req: http::Request<body::ProxyBody>,
) -> Result<http::Response<body::ProxyBody>, Error> {
    handle_named(shared, &Arc::from(listener), remote, req).await
}

/// [`handle_in_process`] with the listener's name already shared (a [`Client`] keeps it, so
/// a call does not allocate it).
async fn handle_named(
    shared: &Arc<Shared>,
    listener: &Arc<str>,
    remote: SocketAddr,
    req: http::Request<body::ProxyBody>,
) -> Result<http::Response<body::ProxyBody>, Error> {
    let local = shared
        .store
        .load()
        .value
        .bootstrap
        .listeners
        .iter()
        .find(|l| *l.name == **listener)
        .map(|l| l.address)
        .ok_or_else(|| {
            Error::new(
                Kind::Config,
                Some(format!("no listener named {listener:?}").into()),
            )
        })?;
    let conn = Arc::new(conn_manager::ConnInfo {
        remote,
        local,
        listener: Arc::clone(listener),
        chain: 0,
        state: Arc::default(),
        tls: None,
    });
    let Ok(resp) = conn_manager::serve(req, conn, Arc::clone(shared)).await;
    Ok(resp)
}

/// Config-level stats (Envoy's `server.*` and the reload counters).
#[derive(Debug)]
struct ServerStats {
    config_reload: Arc<Counter>,
    config_reload_rejected: Arc<Counter>,
    version: Arc<Gauge>,
    live: Arc<Gauge>,
}

impl ServerStats {
    fn new(r: &Registry) -> Self {
        Self {
            config_reload: r.counter(StatName::plain("server.config_reload")),
            config_reload_rejected: r.counter(StatName::plain("server.config_reload_rejected")),
            version: r.gauge(StatName::plain("server.version")),
            live: r.gauge(StatName::plain("server.live")),
        }
    }
}

/// One bound listener.
#[derive(Debug)]
struct ListenerHandle {
    config: Listener,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// One accept loop, or one per worker.
    tasks: Vec<JoinHandle<()>>,
}

/// A listener's bound sockets: one for the current runtime, or one per worker.
#[derive(Debug)]
enum Bound {
    One(tokio::net::TcpListener),
    PerWorker(Vec<std::net::TcpListener>),
    /// `bind_to_port: false`: reached only by hand-off from a `use_original_dst` listener.
    Unbound,
}

impl Bound {
    fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::One(l) => l.local_addr().ok(),
            Self::PerWorker(ls) => ls.first().and_then(|l| l.local_addr().ok()),
            Self::Unbound => None,
        }
    }
}

/// What the running proxy, its admin server and reloads share.
#[derive(Debug)]
pub(crate) struct Inner {
    shared: Arc<Shared>,
    registry: FilterRegistry,
    drain_time: Duration,
    listeners: Mutex<Vec<ListenerHandle>>,
    draining: Mutex<Vec<JoinHandle<()>>>,
    reload: tokio::sync::Mutex<()>,
    server: ServerStats,
    quit: Notify,
    quit_requested: AtomicBool,
    healthcheck_failed: AtomicBool,
    started: SystemTime,
    last_updated: Mutex<SystemTime>,
    log_level: LogLevelControl,
    pages: AdminPages,
    /// The dynamic resources of the source being followed (xDS), for config dumps.
    pub(crate) dynamic: Mutex<Option<watch::Receiver<mesh_xds::xds::client::XdsState>>>,
    /// The worker threads, when listeners are served per worker.
    workers: Option<workers::Workers>,
}

impl Inner {
    /// [`RunningProxy::reload`]; also what a runtime change through the admin API runs.
    pub(crate) async fn reload(&self, bootstrap: Bootstrap) -> Result<u64, Error> {
        self.reload_with(bootstrap, false).await
    }

    /// A reload; with `endpoints_only` (an EDS update, where nothing but clusters' endpoints
    /// changed), listeners, route tables and filters are kept and only the clusters whose
    /// endpoints changed are rebuilt, keeping their pooled connections.
    pub(crate) async fn reload_with(
        &self,
        bootstrap: Bootstrap,
        endpoints_only: bool,
    ) -> Result<u64, Error> {
        let inner = self;
        let _serial = inner.reload.lock().await;
        let rejected = |e: Error| {
            inner.server.config_reload_rejected.inc();
            e
        };
        let previous = inner.shared.store.load_full();
        let admin_runtime = inner
            .shared
            .admin_runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let fast = (endpoints_only
            && admin_runtime.is_empty()
            && bootstrap.layered_runtime.layers.is_empty())
        .then(|| compile::compile_endpoints(&bootstrap, &inner.shared.stats, &previous.value))
        .flatten();
        let compiled = match fast {
            Some(result) => result,
            None => compile::compile(
                &bootstrap,
                &inner.registry,
                &inner.shared.stats,
                Some(&previous.value),
                &admin_runtime,
                &inner.shared.log_files,
            ),
        }
        .map_err(|e| rejected(Error::new(Kind::Config, Some(e.into()))))?;

        // Bind what is new before publishing, so a bind failure rejects the whole reload.
        let (keep, mut fresh) = {
            let current = inner.lock_listeners();
            let mut keep = Vec::new();
            let mut fresh = Vec::new();
            for l in &bootstrap.listeners {
                match current.iter().find(|h| h.config.name == l.name) {
                    Some(h)
                        if h.config.bind_to_port == l.bind_to_port
                            && (h.config.address == l.address || h.addr == l.address) =>
                    {
                        keep.push(l.name.clone());
                    }
                    _ => fresh.push(l.clone()),
                }
            }
            (keep, fresh)
        };
        let mut bound = Vec::new();
        for l in fresh.drain(..) {
            // A listener that moves to a new address releases the old one first only after
            // the swap; binding the same address twice would fail, so rebinds are rejected.
            bound.push((bind(&l, inner.worker_count()).map_err(rejected)?, l));
        }

        let version = inner.shared.store.publish(compiled);
        inner.server.config_reload.inc();
        inner
            .server
            .version
            .set(i64::try_from(version).unwrap_or(i64::MAX));
        *inner.last_updated.lock().unwrap_or_else(|p| p.into_inner()) = SystemTime::now();

        let mut current = inner.lock_listeners();
        let mut draining = inner.draining.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = Vec::new();
        for h in current.drain(..) {
            match bootstrap.listeners.iter().find(|l| l.name == h.config.name) {
                Some(l) if keep.contains(&h.config.name) => next.push(ListenerHandle {
                    config: l.clone(),
                    ..h
                }),
                _ => {
                    let _ = h.stop.send(true);
                    draining.extend(h.tasks);
                }
            }
        }
        for (l, c) in bound {
            next.push(inner.spawn_listener(l, c));
        }
        *current = next;
        Ok(version)
    }

    fn lock_listeners(&self) -> std::sync::MutexGuard<'_, Vec<ListenerHandle>> {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn worker_count(&self) -> usize {
        self.workers.as_ref().map_or(0, |w| w.handles().len())
    }

    fn spawn_listener(&self, l: Bound, config: Listener) -> ListenerHandle {
        let addr = l.local_addr().unwrap_or(config.address);
        let (stop, rx) = watch::channel(false);
        let name: Arc<str> = config.name.as_str().into();
        let tasks = match (l, &self.workers) {
            (Bound::PerWorker(ls), Some(workers)) => ls
                .into_iter()
                .zip(workers.handles())
                .map(|(l, handle)| {
                    let shared = Arc::clone(&self.shared);
                    let (rx, name, drain) = (rx.clone(), Arc::clone(&name), self.drain_time);
                    handle.spawn(async move {
                        // Registered with this worker's reactor, so its connections live here.
                        match tokio::net::TcpListener::from_std(l) {
                            Ok(l) => listener::run(l, name, shared, rx, drain).await,
                            Err(e) => {
                                tracing::error!(listener = %name, error = %e, "cannot serve on a worker");
                            }
                        }
                    })
                })
                .collect(),
            (Bound::One(l), _) => vec![tokio::spawn(listener::run(
                l,
                name,
                Arc::clone(&self.shared),
                rx,
                self.drain_time,
            ))],
            (Bound::PerWorker(_), None) | (Bound::Unbound, _) => Vec::new(),
        };
        ListenerHandle {
            config,
            addr,
            stop,
            tasks,
        }
    }

    /// Stops accepting on every listener (they drain in the background).
    pub(crate) fn drain_listeners(&self) {
        let handles: Vec<_> = std::mem::take(&mut *self.lock_listeners());
        let mut draining = self.draining.lock().unwrap_or_else(|p| p.into_inner());
        for h in handles {
            let _ = h.stop.send(true);
            draining.extend(h.tasks);
        }
    }

    /// Asks the owner of the proxy to shut it down (`/quitquitquit`).
    pub(crate) fn request_quit(&self) {
        self.quit_requested.store(true, Ordering::Release);
        self.quit.notify_waiters();
    }

    /// Every listener's name and address, bound or not (the admin's `/listeners`, as Envoy's).
    pub(crate) fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.lock_listeners()
            .iter()
            .map(|h| (h.config.name.clone(), h.addr))
            .collect()
    }

    pub(crate) fn set_log_level(&self, level: &str) -> Result<(), String> {
        match &self.log_level.0 {
            Some(f) => f(level),
            None => Err("log level control is not available in this embedding".into()),
        }
    }

    pub(crate) fn set_healthcheck_failed(&self, failed: bool) {
        self.healthcheck_failed.store(failed, Ordering::Release);
    }

    /// What the followed xDS source holds now, if the proxy follows one.
    pub(crate) fn xds_state(&self) -> Option<mesh_xds::xds::client::XdsState> {
        self.dynamic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|rx| rx.borrow().clone())
    }

    pub(crate) fn is_ready(&self) -> bool {
        // Following a control plane: not before its initial fetch is over, as Envoy's init
        // manager holds the server.
        let initializing = self
            .dynamic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|rx| !rx.borrow().initialized);
        !self.healthcheck_failed.load(Ordering::Acquire)
            && !self.quit_requested.load(Ordering::Acquire)
            && !initializing
            && !self.lock_listeners().is_empty()
    }
}

impl Proxy {
    /// Starts configuring a proxy for `bootstrap`.
    pub fn builder(bootstrap: Bootstrap) -> ProxyBuilder {
        let stats = Arc::new(Registry::new());
        let mut registry = FilterRegistry::new();
        filters::register(&mut registry, &stats);
        ProxyBuilder {
            bootstrap,
            registry,
            drain_time: DEFAULT_DRAIN_TIME,
            stats,
            admin: None,
            log_level: LogLevelControl::default(),
            pages: AdminPages::default(),
            seed: None,
            upstream: None,
            workers: 0,
            http1_client: Http1Client::Builtin,
            http1_server: Http1Server::Builtin,
            file_flush_interval: DEFAULT_FILE_FLUSH_INTERVAL,
        }
    }

    /// The stats registry.
    pub fn stats(&self) -> &Arc<Registry> {
        &self.stats
    }

    /// Serves one request in process, as if it had arrived from `remote` on the listener
    /// named `listener` (its first filter chain), without binding anything: the connection
    /// manager, the filters and the router run as they do behind a socket. Upstream requests
    /// go to the [`ProxyBuilder::upstream_service`] when one is set, else to the network.
    ///
    /// Nothing runs in the background of a proxy that has not started: no outlier sweep (an
    /// ejected host never returns), no health checks, no config updates. For a service's
    /// outbound calls use a [`Client`], which starts them and stops them with itself; a
    /// started proxy serves in process with [`RunningProxy::handle`].
    ///
    /// # Errors
    /// [`Error::is_config`] when there is no listener of that name.
    pub async fn handle(
        &self,
        listener: &str,
        remote: SocketAddr,
        req: http::Request<body::ProxyBody>,
    ) -> Result<http::Response<body::ProxyBody>, Error> {
        handle_in_process(&self.shared, listener, remote, req).await
    }

    /// Binds every listener (and the admin server, when configured) and starts serving.
    ///
    /// # Errors
    /// [`Error::is_bind`] when an address cannot be bound (nothing is left listening then).
    pub async fn start(self) -> Result<RunningProxy, Error> {
        let shared = Arc::clone(&self.shared);
        let configs: Vec<Listener> = self.store.load().value.bootstrap.listeners.clone();
        let workers = match self.workers {
            0 => None,
            n => Some(workers::Workers::start(n).map_err(|e| {
                Error::new(
                    Kind::Bind,
                    Some(format!("cannot start {n} workers: {e}").into()),
                )
            })?),
        };
        let mut bound = Vec::new();
        for l in configs {
            bound.push((bind(&l, self.workers)?, l));
        }
        let admin_listener =
            match self.admin {
                Some(a) => Some(tokio::net::TcpListener::bind(a).await.map_err(|e| {
                    Error::new(Kind::Bind, Some(format!("admin on {a}: {e}").into()))
                })?),
                None => None,
            };
        let server = ServerStats::new(&self.stats);
        server.version.set(1);
        server.live.set(1);
        let inner = Arc::new(Inner {
            shared,
            registry: self.registry,
            drain_time: self.drain_time,
            listeners: Mutex::new(Vec::new()),
            draining: Mutex::new(Vec::new()),
            reload: tokio::sync::Mutex::new(()),
            server,
            quit: Notify::new(),
            quit_requested: AtomicBool::new(false),
            healthcheck_failed: AtomicBool::new(false),
            started: SystemTime::now(),
            last_updated: Mutex::new(SystemTime::now()),
            dynamic: Mutex::new(None),
            log_level: self.log_level,
            pages: self.pages,
            workers,
        });
        {
            let handles: Vec<ListenerHandle> = bound
                .into_iter()
                .map(|(l, c)| inner.spawn_listener(l, c))
                .collect();
            *inner.lock_listeners() = handles;
        }
        let admin = admin_listener.map(|l| {
            let addr = l.local_addr().ok();
            (addr, tokio::spawn(admin::serve(l, Arc::clone(&inner))))
        });
        let sweeper = tokio::spawn(sweep_outliers(Arc::clone(&inner.shared)));
        let health = tokio::spawn(health_check::supervise(Arc::clone(&inner.shared)));
        Ok(RunningProxy {
            inner,
            admin,
            sweeper,
            health,
        })
    }

    /// Starts, serves until `signal` completes (or the admin API asks to quit), then drains and
    /// returns.
    ///
    /// # Errors
    /// As [`Proxy::start`].
    pub async fn run(self, signal: impl Future<Output = ()>) -> Result<(), Error> {
        let running = self.start().await?;
        tokio::select! {
            () = signal => {}
            () = running.quit_requested() => {}
        }
        running.shutdown().await;
        Ok(())
    }
}

/// Binds a listener's address: one socket, or one per worker (`workers` > 0).
fn bind(l: &Listener, workers: usize) -> Result<Bound, Error> {
    let bound = if !l.bind_to_port {
        Ok(Bound::Unbound)
    } else if workers == 0 {
        std::net::TcpListener::bind(l.address)
            .and_then(|s| {
                s.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(s)
            })
            .map(Bound::One)
    } else {
        workers::bind_shared(l.address, workers).map(Bound::PerWorker)
    };
    bound.map_err(|e| {
        Error::new(
            Kind::Bind,
            Some(format!("listener {:?} on {}: {e}", l.name, l.address).into()),
        )
    })
}

/// Runs the clusters' periodic work every second of the proxy's clock, on the current
/// snapshot (so reloads are followed): idle upstream connections past their idle timeout or
/// lifetime are closed, and outlier detection is swept once per its `interval`.
async fn sweep_outliers(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = shared.epoch.elapsed();
        let snap = shared.store.load_full();
        let at = tokio::time::Instant::now();
        for c in snap.value.clusters.values() {
            for p in &c.pools {
                p.expire(at);
            }
            if let Some(hosts) = &c.original_dst {
                hosts.cleanup(at);
            }
            let Some(od) = c.lb.outlier() else { continue };
            let last = Duration::from_millis(c.last_sweep.load(Ordering::Relaxed));
            if now.saturating_sub(last) >= od.config().interval {
                od.sweep(now);
                let ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
                c.last_sweep.store(ms, Ordering::Relaxed);
            }
        }
    }
}

/// A proxy that is serving.
#[derive(Debug)]
pub struct RunningProxy {
    inner: Arc<Inner>,
    admin: Option<(Option<SocketAddr>, JoinHandle<()>)>,
    sweeper: JoinHandle<()>,
    health: JoinHandle<()>,
}

impl RunningProxy {
    /// Every bound listener's name and address (port 0 in the config is resolved here).
    /// Listeners with `bind_to_port: false` are not listed: they have no socket.
    pub fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.inner
            .lock_listeners()
            .iter()
            .filter(|h| h.config.bind_to_port)
            .map(|h| (h.config.name.clone(), h.addr))
            .collect()
    }

    /// The bound address of the listener named `name` (`None` when it has none, or does not
    /// bind).
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.inner
            .lock_listeners()
            .iter()
            .find(|h| h.config.name == name && h.config.bind_to_port)
            .map(|h| h.addr)
    }

    /// The admin server's bound address, when it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(a, _)| *a)
    }

    /// The stats registry.
    pub fn stats(&self) -> &Arc<Registry> {
        &self.inner.shared.stats
    }

    /// The version of the config being served (1 for the first, +1 per accepted reload).
    pub fn config_version(&self) -> u64 {
        self.inner.shared.store.load().version
    }

    /// Validates, compiles and swaps in a new config, atomically: a request sees the old
    /// config or the new one from start to end, never a mix. New listeners are bound first;
    /// removed listeners stop accepting and drain; listeners whose address is unchanged keep
    /// their socket and connections. Clusters and hosts that stay keep their pooled
    /// connections.
    ///
    /// # Errors
    /// [`Error::is_config`] (with every problem listed) or [`Error::is_bind`]; the running
    /// config keeps serving in both cases, and `server.config_reload_rejected` counts it.
    pub async fn reload(&self, bootstrap: Bootstrap) -> Result<u64, Error> {
        self.inner.reload(bootstrap).await
    }

    /// The dynamic resources of the xDS source being followed, if any.
    pub fn dynamic_state(&self) -> Option<watch::Receiver<mesh_xds::xds::client::XdsState>> {
        self.inner
            .dynamic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies every config `source` yields, as [`RunningProxy::reload`] does (an EDS-only
    /// update keeps route tables and pooled connections), and tells the source each outcome.
    /// Runs until the source ends or the returned task is aborted.
    pub fn follow(&self, mut source: impl source::ConfigSource) -> JoinHandle<()> {
        if let Some(state) = source.dynamic_state() {
            *self.inner.dynamic.lock().unwrap_or_else(|p| p.into_inner()) = Some(state);
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            while let Some(mut update) = source.next().await {
                let bootstrap = std::mem::take(&mut update.bootstrap);
                let endpoints_only = update.endpoints_only;
                let result = inner.reload_with(bootstrap, endpoints_only).await;
                match &result {
                    Ok(version) => tracing::info!(version, endpoints_only, "config applied"),
                    Err(e) => {
                        tracing::warn!(error = %e, "config rejected; the running config keeps serving")
                    }
                }
                update.finish(&result);
            }
        })
    }

    /// Serves one request in process, as [`Proxy::handle`] does, with the running config.
    ///
    /// # Errors
    /// [`Error::is_config`] when there is no listener of that name.
    pub async fn handle(
        &self,
        listener: &str,
        remote: SocketAddr,
        req: http::Request<body::ProxyBody>,
    ) -> Result<http::Response<body::ProxyBody>, Error> {
        handle_in_process(&self.inner.shared, listener, remote, req).await
    }

    /// [`RunningProxy::handle`] for a [`Client`], which keeps the listener's name shared.
    pub(crate) async fn handle_named(
        &self,
        listener: &Arc<str>,
        remote: SocketAddr,
        req: http::Request<body::ProxyBody>,
    ) -> Result<http::Response<body::ProxyBody>, Error> {
        handle_named(&self.inner.shared, listener, remote, req).await
    }

    /// Completes when the admin API's `/quitquitquit` asks the proxy to stop.
    pub async fn quit_requested(&self) {
        loop {
            let notified = self.inner.quit.notified();
            if self.inner.quit_requested.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Stops accepting, lets in-flight requests finish (up to the drain time), and returns
    /// when every listener is closed.
    pub async fn shutdown(self) {
        self.inner.drain_listeners();
        let tasks: Vec<_> = std::mem::take(
            &mut *self
                .inner
                .draining
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for t in tasks {
            let _ = t.await;
        }
        if let Some(w) = &self.inner.workers {
            w.stop();
        }
        if let Some((_, admin)) = &self.admin {
            admin.abort();
        }
        self.sweeper.abort();
        self.health.abort();
        // The requests have ended: their access-log lines are all buffered.
        self.inner.shared.log_files.flush();
        self.inner.server.live.set(0);
    }
}

/// Dropped without [`RunningProxy::shutdown`], the proxy stops at once: its listeners stop
/// accepting and its background tasks (outlier sweeps, health checks, admin) end. Requests in
/// flight finish on their own tasks.
impl Drop for RunningProxy {
    fn drop(&mut self) {
        self.inner.drain_listeners();
        if let Some((_, admin)) = &self.admin {
            admin.abort();
        }
        self.sweeper.abort();
        self.health.abort();
    }
}
