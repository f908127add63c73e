//! Body types and wrappers: the proxy's boxed body, and bodies that count bytes, watch
//! deadlines and report when a stream ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use mesh_core::BoxError;
use tokio::time::{Instant, Sleep};

/// The body type of every request and response the proxy sends.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// An empty body.
pub fn empty() -> ProxyBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Boxes any body whose error converts to a [`BoxError`].
pub fn boxed<B>(b: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    b.map_err(Into::into).boxed()
}

/// An upstream response body: from a connection, or from an in-process
/// [`UpstreamService`](crate::UpstreamService).
pub(crate) enum UpstreamBody {
    Net(hyper::body::Incoming),
    Mem(ProxyBody),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Net(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Self::Mem(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Net(b) => b.is_end_stream(),
            Self::Mem(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Net(b) => b.size_hint(),
            Self::Mem(b) => b.size_hint(),
        }
    }
}

/// The body timed out (a stream idle timeout or a deadline).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyTimeout(pub &'static str);

/// How a downstream request body failed, when it did: the client's fault, never the
/// upstream's. The router reads it to answer as Envoy does and to keep the failure away
/// from outlier detection and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DownstreamFault {
    /// The client went away before the body was complete (Envoy's DC).
    Closed,
    /// The body's framing was invalid, e.g. a bad chunk size (400, DPE).
    Malformed,
    /// No body data arrived within the stream idle timeout (408, SI).
    IdleTimeout,
    /// The request was not complete within the connection manager's `request_timeout`
    /// (408).
    RequestTimeout,
}

/// Where a request body records its [`DownstreamFault`]; the first one wins.
#[derive(Debug, Default)]
pub(crate) struct FaultCell(std::sync::atomic::AtomicU8);

impl FaultCell {
    fn set(&self, f: DownstreamFault) {
        let v = match f {
            DownstreamFault::Closed => 1,
            DownstreamFault::Malformed => 2,
            DownstreamFault::IdleTimeout => 3,
            DownstreamFault::RequestTimeout => 4,
        };
        let _ = self
            .0
            .compare_exchange(0, v, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The recorded fault, if any.
    pub(crate) fn get(&self) -> Option<DownstreamFault> {
        match self.0.load(Ordering::Acquire) {
            1 => Some(DownstreamFault::Closed),
            2 => Some(DownstreamFault::Malformed),
            3 => Some(DownstreamFault::IdleTimeout),
            4 => Some(DownstreamFault::RequestTimeout),
            _ => None,
        }
    }
}

/// Classifies a downstream body error: invalid framing (hyper reports a bad chunk as an
/// `InvalidInput` or `InvalidData` I/O error, a bad head as a parse error) is malformed;
/// anything else (an early EOF, a reset, a stream the client cancelled) is a close.
fn classify(e: &BoxError) -> DownstreamFault {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
    while let Some(err) = source {
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse)
        {
            return DownstreamFault::Malformed;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
            )
        {
            return DownstreamFault::Malformed;
        }
        source = err.source();
    }
    DownstreamFault::Closed
}

/// Wraps a body: counts data bytes into `counter`, calls `on_end` once when the stream ends
/// (or the body is dropped before it ends), and fails the stream when `idle` passes without a
/// frame or `deadline` passes.
pub(crate) struct Tracked<B> {
    inner: B,
    counter: Arc<AtomicU64>,
    on_end: Option<Box<dyn FnOnce(bool) + Send + Sync>>,
    /// The idle timeout, and its timer once armed: timers are created only when the body
    /// first waits (most bodies end without waiting: an empty request body, a small
    /// response), since each costs an allocation and a timer-wheel entry.
    idle: Option<(std::time::Duration, Option<Pin<Box<Sleep>>>)>,
    deadline: Option<(Instant, Option<Pin<Box<Sleep>>>)>,
    fault: Option<Arc<FaultCell>>,
}

impl<B> Tracked<B> {
    pub(crate) fn new(inner: B, counter: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            counter,
            on_end: None,
            idle: None,
            deadline: None,
            fault: None,
        }
    }

    /// Records how the body failed in `cell` (a downstream request body).
    pub(crate) fn fault_cell(mut self, cell: Arc<FaultCell>) -> Self {
        self.fault = Some(cell);
        self
    }

    /// Calls `f(complete)` once: `complete` is true when the stream reached its end.
    pub(crate) fn on_end(mut self, f: impl FnOnce(bool) + Send + Sync + 'static) -> Self {
        self.on_end = Some(Box::new(f));
        self
    }

    /// Fails the stream when no frame arrives for `d` (zero disables).
    pub(crate) fn idle_timeout(mut self, d: std::time::Duration) -> Self {
        if !d.is_zero() {
            self.idle = Some((d, None));
        }
        self
    }

    /// Fails the stream at `at`.
    pub(crate) fn deadline(mut self, at: Option<Instant>) -> Self {
        self.deadline = at.map(|at| (at, None));
        self
    }

    fn finish(&mut self, complete: bool) {
        if let Some(f) = self.on_end.take() {
            f(complete);
        }
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.finish(false);
    }
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.counter.fetch_add(d.len() as u64, Ordering::Relaxed);
                }
                if let Some((d, Some(sleep))) = &mut this.idle {
                    sleep.as_mut().reset(Instant::now() + *d);
                }
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(false);
                let e = e.into();
                if let Some(cell) = &this.fault {
                    cell.set(classify(&e));
                }
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(true);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Some((at, dl)) = &mut this.deadline
                    && dl
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(*at)))
                        .as_mut()
                        .poll(cx)
                        .is_ready()
                {
                    this.finish(false);
                    if let Some(cell) = &this.fault {
                        // A request body's deadline is the request timeout.
                        cell.set(DownstreamFault::RequestTimeout);
                        return Poll::Ready(Some(Err(BodyTimeout("request timeout").into())));
                    }
                    return Poll::Ready(Some(Err(BodyTimeout("upstream request timeout").into())));
                }
                // Armed at the first wait: the idle time counts from the last frame (or the
                // start), which was at most this poll ago.
                if let Some((d, sleep)) = &mut this.idle
                    && sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(*d)))
                        .as_mut()
                        .poll(cx)
                        .is_ready()
                {
                    this.finish(false);
                    if let Some(cell) = &this.fault {
                        cell.set(DownstreamFault::IdleTimeout);
                    }
                    return Poll::Ready(Some(Err(BodyTimeout("stream idle timeout").into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
