//! Where a running proxy's config comes from after it starts.
//!
//! A [`ConfigSource`] yields whole configs ([`ConfigUpdate`]s); [`RunningProxy::follow`]
//! applies each one as a reload (validated and compiled off the request path; a config that
//! fails is refused whole and the running one keeps serving) and tells the source what
//! happened. The toolkit has two:
//!
//! - [`PollSource`]: files on disk (an Envoy bootstrap, an Istio directory, anything a closure
//!   can load), loaded again when their stamp changes or when asked to (SIGHUP);
//! - [`XdsSource`]: a control plane over ADS, from a bootstrap's `dynamic_resources`; its
//!   replies are the ACKs and NACKs, and EDS-only updates keep route tables and pooled
//!   connections as they are.
//!
//! An embedder's own source (a database, a feature-flag service) implements the trait.
//!
//! ```no_run
//! # async fn demo(bootstrap: mesh_core::config::Bootstrap) -> Result<(), Box<dyn std::error::Error>> {
//! // A bootstrap with dynamic_resources: start with its static part, then follow the control
//! // plane.
//! let proxy = mesh_proxy::Proxy::builder(bootstrap.clone()).build()?;
//! let running = proxy.start().await?;
//! let source = mesh_proxy::source::XdsSource::connect(&bootstrap, running.stats().clone())?;
//! let _follower = running.follow(source);
//! # Ok(()) }
//! ```
//!
//! [`RunningProxy::follow`]: crate::RunningProxy::follow

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mesh_core::config::Bootstrap;
use mesh_core::stats::Registry;
use mesh_xds::xds::client::{AdsClient, ClientConfig, XdsState};
use tokio::sync::{Notify, watch};

use crate::Error;

/// A source of configs for a running proxy.
#[async_trait]
pub trait ConfigSource: Send + 'static {
    /// Waits for the next config; `None` when the source has ended.
    async fn next(&mut self) -> Option<ConfigUpdate>;

    /// The dynamic resources the source holds, for the admin's config dump (xDS sources).
    fn dynamic_state(&self) -> Option<watch::Receiver<XdsState>> {
        None
    }
}

type Reply = Box<dyn FnOnce(&Result<u64, Error>) + Send>;

/// A whole config to apply, and what to do with the outcome.
pub struct ConfigUpdate {
    /// The config.
    pub bootstrap: Bootstrap,
    /// Only clusters' endpoints differ from the running config: the proxy keeps its listeners,
    /// route tables and filters, and rebuilds only the clusters whose endpoints changed.
    pub endpoints_only: bool,
    reply: Option<Reply>,
}

impl std::fmt::Debug for ConfigUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigUpdate")
            .field("endpoints_only", &self.endpoints_only)
            .finish_non_exhaustive()
    }
}

impl ConfigUpdate {
    /// A whole config.
    pub fn new(bootstrap: Bootstrap) -> Self {
        Self {
            bootstrap,
            endpoints_only: false,
            reply: None,
        }
    }

    /// Calls `f` with the outcome: the new config version, or why the config was refused.
    pub fn on_applied(mut self, f: impl FnOnce(&Result<u64, Error>) + Send + 'static) -> Self {
        self.reply = Some(Box::new(f));
        self
    }

    pub(crate) fn finish(mut self, result: &Result<u64, Error>) {
        if let Some(f) = self.reply.take() {
            f(result);
        }
    }
}

/// The stamp of what was last loaded (file times and hashes, any fingerprint), and when a new
/// one should be loaded: once two checks in a row see it, so a file caught half written is
/// not read.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled<T> {
    last: T,
    settling: Option<T>,
}

impl<T: PartialEq> Settled<T> {
    /// Starts from the stamp of what is loaded now.
    pub fn new(loaded: T) -> Self {
        Self {
            last: loaded,
            settling: None,
        }
    }

    /// A check: `true` when `now` differs from what was loaded and the previous check saw it
    /// too; it then counts as loaded.
    pub fn changed(&mut self, now: T) -> bool {
        if now == self.last {
            self.settling = None;
            return false;
        }
        if self.settling.as_ref() != Some(&now) {
            self.settling = Some(now);
            return false;
        }
        self.settling = None;
        self.last = now;
        true
    }

    /// Counts `now` as loaded at once (a reload asked for, not seen by a check).
    pub fn loaded(&mut self, now: T) {
        self.settling = None;
        self.last = now;
    }
}

/// Files (or anything else) loaded again when their stamp changes, or when
/// [`PollSource::trigger`] asks.
pub struct PollSource<S, L> {
    stamp: S,
    load: L,
    stamp_seen: Settled<String>,
    interval: Option<Duration>,
    tick: Option<tokio::time::Interval>,
    trigger: Arc<Notify>,
}

impl<S, L> std::fmt::Debug for PollSource<S, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollSource")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl<S, L> PollSource<S, L>
where
    S: FnMut() -> String + Send + 'static,
    L: FnMut() -> Option<ConfigUpdate> + Send + 'static,
{
    /// A source that calls `load` when `stamp` (a fingerprint of the files: times, sizes,
    /// hashes) differs from the one taken at the last load, checked every `interval` (`None`:
    /// only when triggered). A changed stamp is loaded once two checks in a row see it, so a
    /// file caught half written is not loaded. `initial` is the stamp of what the proxy was started with.
    /// `load` returns `None` when it could not load (having said why): the stamp is kept, so
    /// the files are not loaded again until they change.
    pub fn new(initial: String, interval: Option<Duration>, stamp: S, load: L) -> Self {
        Self {
            stamp,
            load,
            stamp_seen: Settled::new(initial),
            interval,
            tick: None,
            trigger: Arc::new(Notify::new()),
        }
    }

    /// A handle that makes the source load again at once (what SIGHUP does).
    pub fn trigger(&self) -> Arc<Notify> {
        self.trigger.clone()
    }
}

#[async_trait]
impl<S, L> ConfigSource for PollSource<S, L>
where
    S: FnMut() -> String + Send + 'static,
    L: FnMut() -> Option<ConfigUpdate> + Send + 'static,
{
    async fn next(&mut self) -> Option<ConfigUpdate> {
        if self.tick.is_none()
            && let Some(every) = self.interval
        {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            self.tick = Some(tick);
        }
        loop {
            let triggered = tokio::select! {
                () = self.trigger.notified() => true,
                _ = async {
                    match &mut self.tick {
                        Some(t) => t.tick().await,
                        None => std::future::pending().await,
                    }
                } => false,
            };
            let now = (self.stamp)();
            if triggered {
                self.stamp_seen.loaded(now);
            } else if !self.stamp_seen.changed(now) {
                continue;
            }
            if let Some(update) = (self.load)() {
                return Some(update);
            }
        }
    }
}

/// A control plane over ADS: the source of a bootstrap with `dynamic_resources`.
#[derive(Debug)]
pub struct XdsSource {
    client: AdsClient,
}

impl XdsSource {
    /// Connects to the control plane the bootstrap names (through its static cluster) and
    /// subscribes; stats (`control_plane.*`, `cluster_manager.cds.*`, …) go to `stats`. Call on
    /// a tokio runtime.
    ///
    /// # Errors
    /// A message when the bootstrap has no `dynamic_resources` or its cluster has no address.
    pub fn connect(bootstrap: &Bootstrap, stats: Arc<Registry>) -> Result<Self, String> {
        let config = ClientConfig::from_bootstrap(bootstrap)?;
        Ok(Self::with_config(config, stats))
    }

    /// A source with client settings of one's own (backoff, the server's address).
    pub fn with_config(config: ClientConfig, stats: Arc<Registry>) -> Self {
        Self {
            client: AdsClient::start(config, stats),
        }
    }
}

#[async_trait]
impl ConfigSource for XdsSource {
    async fn next(&mut self) -> Option<ConfigUpdate> {
        let mut update = self.client.next().await?;
        let bootstrap = std::mem::take(&mut update.bootstrap);
        let endpoints_only = update.endpoints_only;
        let mut u = ConfigUpdate::new(bootstrap).on_applied(move |r| {
            update.reply(match r {
                Ok(_) => Ok(()),
                Err(e) => Err(error_text(e)),
            });
        });
        u.endpoints_only = endpoints_only;
        Some(u)
    }

    fn dynamic_state(&self) -> Option<watch::Receiver<XdsState>> {
        Some(self.client.state())
    }
}

/// An error with its causes, as one line (what a NACK carries).
fn error_text(e: &Error) -> String {
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
