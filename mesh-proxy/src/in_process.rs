//! The proxy without sockets: requests handed to [`Proxy::handle`](crate::Proxy::handle), and
//! upstream hosts answered by an [`UpstreamService`] instead of the network.
//!
//! Everything between the two runs as it does behind a listener: the HTTP connection
//! manager's header rules, the filter chain, route matching, the router's cluster and host
//! choice, retries, timeouts, circuit breakers and outlier detection. That makes the same
//! routing and balancing usable inside an application, and lets tests and benchmarks drive
//! the request path with no kernel in the way.

use std::future::Future;
use std::pin::Pin;

use http::{Request, Response};
use mesh_core::BoxError;
use mesh_core::config::Address;

use crate::body::ProxyBody;

/// The future an [`UpstreamService`] returns.
pub type UpstreamFuture =
    Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, BoxError>> + Send + 'static>>;

/// Answers the requests the router sends to upstream hosts, in place of connecting to them.
///
/// `host` is the endpoint the load balancer picked (its cluster's address as configured). An
/// error is an upstream reset: it is retried per `retry_on: reset` and reported to outlier
/// detection like a connection that failed mid-request.
///
/// Any `Fn(&Address, Request<ProxyBody>) -> impl Future<Output = Result<Response<ProxyBody>,
/// BoxError>>` closure is an `UpstreamService`.
pub trait UpstreamService: Send + Sync + 'static {
    /// Answers `req`, sent to `host`.
    fn call(&self, host: &Address, req: Request<ProxyBody>) -> UpstreamFuture;
}

impl<F, Fut> UpstreamService for F
where
    F: Fn(&Address, Request<ProxyBody>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<ProxyBody>, BoxError>> + Send + 'static,
{
    fn call(&self, host: &Address, req: Request<ProxyBody>) -> UpstreamFuture {
        Box::pin(self(host, req))
    }
}
