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

/// Any [`tower::Service`] as the proxy's upstream: a hyper-util client, a tower stack, an
/// in-memory service. Each request's URI is made absolute to the host the load balancer
/// picked (`http://10.0.0.7:8080/path`), so a client service connects where the proxy
/// decided; an in-memory service can read the host from the URI. Set it with
/// [`ProxyBuilder::upstream_tower`](crate::ProxyBuilder::upstream_tower).
#[derive(Debug, Clone)]
pub struct TowerUpstream<S>(pub S);

impl<S, B> UpstreamService for TowerUpstream<S>
where
    S: tower::Service<Request<ProxyBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    fn call(&self, host: &Address, req: Request<ProxyBody>) -> UpstreamFuture {
        let svc = self.0.clone();
        let (mut parts, body) = req.into_parts();
        let authority = if host.host.contains(':') {
            format!("[{}]:{}", host.host, host.port)
        } else {
            format!("{}:{}", host.host, host.port)
        };
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        match format!("http://{authority}{path}").parse::<http::Uri>() {
            Ok(uri) => parts.uri = uri,
            Err(e) => return Box::pin(std::future::ready(Err(e.into()))),
        }
        let call = Box::pin(tower::ServiceExt::oneshot(
            svc,
            Request::from_parts(parts, body),
        ));
        Box::pin(Answer { call })
    }
}

/// The future of a [`TowerUpstream`] call: the service's response with its body boxed. A
/// named future rather than an `async` block, whose `Send` rustc cannot prove for every
/// service future here.
struct Answer<F> {
    call: F,
}

impl<F, B, E> Future for Answer<F>
where
    F: Future<Output = Result<Response<B>, E>> + Unpin,
    E: Into<BoxError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<ProxyBody>, BoxError>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        Pin::new(&mut self.call).poll(cx).map(|r| {
            r.map(|resp| resp.map(crate::body::boxed_unsync))
                .map_err(Into::into)
        })
    }
}
