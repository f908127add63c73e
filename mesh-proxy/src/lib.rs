//! The mesh proxy runtime: listeners, the HTTP connection manager, the filter chain, the
//! router and upstream connection pools.
//!
//! Build a [`Proxy`] from a [`mesh_core::config::Bootstrap`] (read from an Envoy file with
//! `mesh_xds::envoy::load_bootstrap`, or built in code), register filters of your own by name,
//! and run it:
//!
//! ```no_run
//! # async fn demo(bootstrap: mesh_core::config::Bootstrap) -> Result<(), mesh_proxy::Error> {
//! let proxy = mesh_proxy::Proxy::builder(bootstrap)
//!     .drain_time(std::time::Duration::from_secs(5))
//!     .build()?;
//! proxy.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
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
pub mod body;
mod compile;
mod conn_manager;
mod error;
mod headers;
mod listener;
mod random;
mod router;
mod upstream;

#[cfg(feature = "test-util")]
pub mod test_util;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::BoxError;
use mesh_core::config::Bootstrap;
use mesh_core::filter::{FilterRegistry, HttpFilter};
use mesh_core::stats::Registry;
use mesh_core::store::ConfigStore;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use access_log::DEFAULT_FORMAT as DEFAULT_ACCESS_LOG_FORMAT;
pub use error::Error;

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
}

impl ProxyBuilder {
    /// Registers a filter factory under `name`; a bootstrap's `http_filters` entry whose name
    /// (or `TypedStruct` `type_url`) is `name` gets a filter built by `factory` from its config.
    pub fn filter<F, T, E>(mut self, name: impl Into<String>, factory: F) -> Self
    where
        F: Fn(&serde_json::Value) -> Result<T, E> + Send + Sync + 'static,
        T: HttpFilter,
        E: Into<BoxError>,
    {
        self.registry.register(name, factory);
        self
    }

    /// How long in-flight requests may run after shutdown begins. Default is 10 seconds.
    pub fn drain_time(mut self, d: Duration) -> Self {
        self.drain_time = d;
        self
    }

    /// Validates and compiles the config.
    ///
    /// # Errors
    /// An [`Error`] with [`Error::is_config`] whose source is a
    /// [`mesh_core::config::ValidationError`] listing every problem with its path.
    pub fn build(self) -> Result<Proxy, Error> {
        let compiled = compile::compile(&self.bootstrap, &self.registry, &self.stats)
            .map_err(|e| Error::new(Kind::Config, Some(e.into())))?;
        Ok(Proxy {
            store: Arc::new(ConfigStore::new(compiled)),
            stats: self.stats,
            drain_time: self.drain_time,
        })
    }
}

/// A compiled proxy, ready to bind its listeners.
#[derive(Debug)]
pub struct Proxy {
    store: Arc<ConfigStore<Compiled>>,
    stats: Arc<Registry>,
    drain_time: Duration,
}

impl Proxy {
    /// Starts configuring a proxy for `bootstrap`.
    pub fn builder(bootstrap: Bootstrap) -> ProxyBuilder {
        ProxyBuilder {
            bootstrap,
            registry: FilterRegistry::new(),
            drain_time: DEFAULT_DRAIN_TIME,
            stats: Arc::new(Registry::new()),
        }
    }

    /// The stats registry.
    pub fn stats(&self) -> &Arc<Registry> {
        &self.stats
    }

    /// Binds every listener and starts serving.
    ///
    /// # Errors
    /// [`Error::is_bind`] when an address cannot be bound (nothing is left listening then).
    pub async fn start(self) -> Result<RunningProxy, Error> {
        let (tx, rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            store: Arc::clone(&self.store),
            stats: Arc::clone(&self.stats),
        });
        let mut bound = Vec::new();
        let mut addrs = Vec::new();
        {
            let snap = self.store.load();
            for l in &snap.value.listeners {
                let listener = tokio::net::TcpListener::bind(l.address)
                    .await
                    .map_err(|e| {
                        Error::new(
                            Kind::Bind,
                            Some(format!("listener {:?} on {}: {e}", l.name, l.address).into()),
                        )
                    })?;
                let addr = listener
                    .local_addr()
                    .map_err(|e| Error::new(Kind::Bind, Some(e.into())))?;
                addrs.push((l.name.clone(), addr));
                bound.push(listener);
            }
        }
        let mut tasks = JoinSet::new();
        for (i, l) in bound.into_iter().enumerate() {
            tasks.spawn(listener::run(
                l,
                i,
                Arc::clone(&shared),
                rx.clone(),
                self.drain_time,
            ));
        }
        Ok(RunningProxy {
            addrs,
            shutdown: tx,
            tasks,
            stats: self.stats,
        })
    }

    /// Starts, serves until `signal` completes, then drains and returns.
    ///
    /// # Errors
    /// As [`Proxy::start`].
    pub async fn run(self, signal: impl Future<Output = ()>) -> Result<(), Error> {
        let running = self.start().await?;
        signal.await;
        running.shutdown().await;
        Ok(())
    }
}

/// A proxy that is serving.
#[derive(Debug)]
pub struct RunningProxy {
    addrs: Vec<(String, SocketAddr)>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    stats: Arc<Registry>,
}

impl RunningProxy {
    /// Every listener's name and bound address (port 0 in the config is resolved here).
    pub fn listener_addrs(&self) -> &[(String, SocketAddr)] {
        &self.addrs
    }

    /// The bound address of the listener named `name`.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.addrs.iter().find(|(n, _)| n == name).map(|&(_, a)| a)
    }

    /// The stats registry.
    pub fn stats(&self) -> &Arc<Registry> {
        &self.stats
    }

    /// Stops accepting, lets in-flight requests finish (up to the drain time), and returns
    /// when every listener is closed.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}
