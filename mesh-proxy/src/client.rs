//! The proxy as a [`tower::Service`]: a proxyless [`Client`] for an application's outbound
//! calls, and the same service mounted in a server (hyper, axum) to proxy what it receives.
//!
//! A [`Client`] is a started proxy whose listeners bind nothing: requests given to it run
//! through the listener's connection manager, filters and router (route matching, load
//! balancing, circuit breakers, retries, hedging, timeouts, fault injection, mirroring,
//! outlier detection) and out to the upstream hosts over the proxy's pools, or to an
//! in-process [`UpstreamService`](crate::UpstreamService). Its background work (outlier
//! sweeps, active health checks, and config updates from a
//! [`ConfigSource`](crate::source::ConfigSource) it [`follow`](Client::follow)s) runs until
//! [`Client::shutdown`] or until the last clone is dropped.
//!
//! ```
//! use mesh_core::config::*;
//! use tower::Service;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // One route to a cluster whose only host refuses connections: the client's answer is the
//! // proxy's 503, after its retries.
//! let routes = RouteConfiguration::new("out").with_virtual_host(
//!     VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "web")),
//! );
//! let bootstrap = Bootstrap::default()
//!     .with_listener(Listener::http(
//!         "outbound",
//!         "127.0.0.1:0".parse()?,
//!         HttpConnectionManager::with_routes(routes),
//!     ))
//!     .with_cluster(Cluster::new_static("web", ["127.0.0.1:1".parse()?]));
//! let client = mesh_proxy::Client::start(mesh_proxy::Proxy::builder(bootstrap), "outbound").await?;
//! let req = http::Request::get("http://web/").body(http_body_util::Empty::<bytes::Bytes>::new())?;
//! let resp = client.clone().call(req).await?;
//! assert_eq!(resp.status(), 503);
//! client.shutdown().await;
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use mesh_core::BoxError;
use mesh_core::config::Bootstrap;
use tokio::task::JoinHandle;

use crate::body::{self, ProxyBody};
use crate::source::{ConfigSource, ConfigUpdate};
use crate::{Error, ProxyBuilder, RunningProxy};

/// A proxyless client: a listener of a started proxy, as a `tower::Service` of requests with
/// any body. Cheap to clone; every clone shares the proxy.
///
/// Requests are handled as if they had arrived on the listener from 127.0.0.1 (the
/// application itself): `x-forwarded-for` and the access log say so. Errors are responses
/// (the proxy's local replies), so the service's error type is [`Infallible`], as hyper and
/// axum want.
#[derive(Clone, Debug)]
pub struct Client {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    proxy: RunningProxy,
    listener: Arc<str>,
    remote: SocketAddr,
    follower: Mutex<Option<AbortOnDrop>>,
}

/// A background task that stops with its owner.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Makes every listener of `b` a listener that binds nothing.
fn unbound(mut b: Bootstrap) -> Bootstrap {
    for l in &mut b.listeners {
        l.bind_to_port = false;
    }
    b
}

impl Client {
    /// Starts the proxy `builder` configures, binding none of its listeners, and serves
    /// requests as listener `listener` (a name in its bootstrap) does. Must run within a
    /// tokio runtime: the background tasks start on it.
    ///
    /// # Errors
    /// What [`ProxyBuilder::build`] and [`crate::Proxy::start`] report, and a config error
    /// when the bootstrap has no listener `listener` and does not take its listeners over
    /// LDS (`dynamic_resources.lds`: then the listener may come later, and calls made before
    /// it has come are answered 503).
    pub async fn start(
        mut builder: ProxyBuilder,
        listener: impl Into<String>,
    ) -> Result<Self, Error> {
        let listener = listener.into();
        builder.bootstrap = unbound(std::mem::take(&mut builder.bootstrap));
        // Over LDS the listener arrives later ([`Client::follow`] an xDS source); until then
        // calls are answered 503.
        let lds = builder
            .bootstrap
            .dynamic_resources
            .as_ref()
            .is_some_and(|d| d.lds);
        if !lds
            && !builder
                .bootstrap
                .listeners
                .iter()
                .any(|l| l.name == listener)
        {
            return Err(Error::new(
                crate::error::Kind::Config,
                Some(format!("no listener named {listener:?}").into()),
            ));
        }
        let proxy = builder.build()?.start().await?;
        Ok(Self {
            shared: Arc::new(Shared {
                proxy,
                listener: listener.into(),
                remote: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                follower: Mutex::new(None),
            }),
        })
    }

    /// Applies a new config, as [`RunningProxy::reload`] does (its listeners bind nothing).
    ///
    /// # Errors
    /// As [`RunningProxy::reload`]: an invalid config is rejected and the old one keeps
    /// serving.
    pub async fn reload(&self, bootstrap: Bootstrap) -> Result<u64, Error> {
        self.shared.proxy.reload(unbound(bootstrap)).await
    }

    /// Follows a config source (files, Istio YAML, xDS) until the client stops: each update is
    /// applied as [`Client::reload`] applies it. A second call replaces the first source.
    pub fn follow(&self, source: impl ConfigSource) {
        let task = self.shared.proxy.follow(Unbound(source));
        let old = self
            .shared
            .follower
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(AbortOnDrop(task));
        drop(old);
    }

    /// The proxy underneath (stats, config, `listener_addrs`).
    pub fn proxy(&self) -> &RunningProxy {
        &self.shared.proxy
    }

    /// Stops the background tasks and lets in-flight requests finish (up to the drain
    /// time). Other clones keep a stopped client: their requests still run, without
    /// background work.
    pub async fn shutdown(self) {
        drop(
            self.shared
                .follower
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        if let Ok(shared) = Arc::try_unwrap(self.shared) {
            let Shared { proxy, .. } = shared;
            proxy.shutdown().await;
        }
    }

    /// Handles one request (what [`tower::Service::call`] does).
    pub async fn send<B>(&self, req: Request<B>) -> Response<ProxyBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // A body already at its end (a GET's) is replaced by the empty body, which costs no
        // allocation; any other is boxed as it is.
        let mut req = req.map(|b| {
            if b.is_end_stream() {
                body::empty()
            } else {
                body::boxed_unsync(b)
            }
        });
        // As an HTTP/1.1 client does: the Host is the URI's authority when not given.
        if !req.headers().contains_key(http::header::HOST)
            && let Some(a) = req.uri().authority()
            && let Ok(v) = http::HeaderValue::from_str(a.as_str())
        {
            req.headers_mut().insert(http::header::HOST, v);
        }
        match self
            .shared
            .proxy
            .handle_named(&self.shared.listener, self.shared.remote, req)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                // The only error: the listener is not (or no longer, or not yet) in the
                // config, as a connection refused would be for a sidecar.
                tracing::warn!(error = %e, "in-process request failed");
                let mut r = Response::new(body::full(e.to_string()));
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                r
            }
        }
    }
}

/// A config source whose updates bind no listener.
struct Unbound<S>(S);

#[async_trait::async_trait]
impl<S: ConfigSource> ConfigSource for Unbound<S> {
    async fn next(&mut self) -> Option<ConfigUpdate> {
        let mut u = self.0.next().await?;
        u.bootstrap = unbound(std::mem::take(&mut u.bootstrap));
        Some(u)
    }

    fn dynamic_state(
        &self,
    ) -> Option<tokio::sync::watch::Receiver<mesh_xds::xds::client::XdsState>> {
        self.0.dynamic_state()
    }
}

impl<B> tower::Service<Request<B>> for Client
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.send(req).await) })
    }
}
