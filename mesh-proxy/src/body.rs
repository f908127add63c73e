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

/// Boxes any body, `Sync` or not (axum's and tonic's bodies are not): the body is kept in a
/// mutex only to make the box `Sync`; polling has `&mut self` and never locks.
pub fn boxed_unsync<B>(b: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    SyncBody(std::sync::Mutex::new(Box::pin(b))).boxed()
}

struct SyncBody<B>(std::sync::Mutex<Pin<Box<B>>>);

impl<B> Body for SyncBody<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.as_mut().poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .size_hint()
    }
}

/// A body passed through a filter's [`BodyFilter`](mesh_core::filter::BodyFilter): each data
/// frame is replaced by what the filter returns (empty results are skipped), trailers pass,
/// and what `on_end` returns comes last.
pub(crate) struct Filtered {
    inner: ProxyBody,
    /// In a mutex only to be `Sync` as a [`ProxyBody`] must (a filter need not be): polling
    /// has `&mut self`, so it never locks.
    filter: std::sync::Mutex<Box<dyn mesh_core::filter::BodyFilter>>,
    /// A trailers frame held back until the filter's end bytes are out.
    trailers: Option<http::HeaderMap>,
    ended: bool,
}

impl Filtered {
    pub(crate) fn new(inner: ProxyBody, filter: Box<dyn mesh_core::filter::BodyFilter>) -> Self {
        Self {
            inner,
            filter: std::sync::Mutex::new(filter),
            trailers: None,
            ended: false,
        }
    }
}

impl Body for Filtered {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let filter = this
            .filter
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if this.ended {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let end = this.inner.is_end_stream();
                        match filter.on_data(data, end) {
                            Ok(out) if out.is_empty() => {}
                            Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                            Err(e) => return Poll::Ready(Some(Err(e))),
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            this.trailers = Some(t);
                        }
                    }
                },
                Poll::Ready(None) => {
                    this.ended = true;
                    match filter.on_end() {
                        Ok(out) if out.is_empty() => {}
                        Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
            }
        }
    }
}

/// An upstream response body: from a connection, or from an in-process
/// [`UpstreamService`](crate::UpstreamService).
pub(crate) enum UpstreamBody {
    Net(hyper::body::Incoming),
    /// From the built-in HTTP/1.1 client.
    Native(crate::h1::ResponseBody),
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
            Self::Native(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Self::Mem(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Net(b) => b.is_end_stream(),
            Self::Native(b) => b.is_end_stream(),
            Self::Mem(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Net(b) => b.size_hint(),
            Self::Native(b) => b.size_hint(),
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

/// What a request and its response share, allocated once per request: the bytes each body
/// carried, how the downstream request body failed, and when it ended.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub(crate) bytes_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    /// How the downstream request body failed, if it did (the client's fault).
    pub(crate) fault: FaultCell,
    start: Instant,
    /// Nanoseconds after `start`, plus one, when the request body ended; 0 until then.
    done: AtomicU64,
    /// Someone waits in [`Exchange::request_done`]: the end must notify.
    waiting: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Exchange {
    /// A request that arrived at `start`; `ended` when its body was complete with the head.
    pub(crate) fn new(start: Instant, ended: bool) -> Self {
        Self {
            bytes_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            fault: FaultCell::default(),
            start,
            done: AtomicU64::new(u64::from(ended)),
            waiting: std::sync::atomic::AtomicBool::new(false),
            notify: tokio::sync::Notify::new(),
        }
    }

    /// When the request body ended (completely or not), if it has.
    pub(crate) fn request_done_at(&self) -> Option<Instant> {
        match self.done.load(Ordering::SeqCst) {
            0 => None,
            n => Some(self.start + std::time::Duration::from_nanos(n - 1)),
        }
    }

    /// Waits until the request body has ended; when it did.
    pub(crate) async fn request_done(&self) -> Instant {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            // SeqCst on both sides: either this load sees the end, or the end sees `waiting`.
            self.waiting.store(true, Ordering::SeqCst);
            if let Some(at) = self.request_done_at() {
                return at;
            }
            notified.await;
        }
    }

    fn mark_request_done(&self) {
        // A body that ended with its head (most requests) was done from the start: no clock
        // read for it.
        if self.done.load(Ordering::SeqCst) != 0 {
            return;
        }
        let n = Instant::now().duration_since(self.start).as_nanos();
        let n = u64::try_from(n).unwrap_or(u64::MAX - 1) + 1;
        if self
            .done
            .compare_exchange(0, n, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
            && self.waiting.load(Ordering::SeqCst)
        {
            self.notify.notify_waiters();
        }
    }
}

/// Which side of an [`Exchange`] a tracked body is.
enum Role {
    /// Not part of an exchange: nothing is counted.
    None,
    /// The downstream request body: counts `bytes_received`, records its fault, marks the
    /// request done when it ends.
    Request(Arc<Exchange>),
    /// The downstream response body: counts `bytes_sent`.
    Response(Arc<Exchange>),
}

/// Wraps a body: counts data bytes into its [`Exchange`], calls `on_end` once when the stream
/// ends (or the body is dropped before it ends), and fails the stream when `idle` passes
/// without a frame or `deadline` passes.
pub(crate) struct Tracked<B> {
    inner: B,
    role: Role,
    on_end: Option<Box<dyn FnOnce(bool) + Send + Sync>>,
    /// The idle timeout, and its timer once armed: timers are created only when the body
    /// first waits (most bodies end without waiting: an empty request body, a small
    /// response), since each costs an allocation and a timer-wheel entry.
    idle: Option<(std::time::Duration, Option<Pin<Box<Sleep>>>)>,
    deadline: Option<(Instant, Option<Pin<Box<Sleep>>>)>,
}

impl<B> Tracked<B> {
    /// A body that counts nothing (add timeouts and `on_end`).
    pub(crate) fn new(inner: B) -> Self {
        Self {
            inner,
            role: Role::None,
            on_end: None,
            idle: None,
            deadline: None,
        }
    }

    /// The downstream request body of `ex`.
    pub(crate) fn request_of(mut self, ex: Arc<Exchange>) -> Self {
        self.role = Role::Request(ex);
        self
    }

    /// The downstream response body of `ex`.
    pub(crate) fn response_of(mut self, ex: Arc<Exchange>) -> Self {
        self.role = Role::Response(ex);
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
        if let Role::Request(ex) = &self.role {
            ex.mark_request_done();
        }
        if let Some(f) = self.on_end.take() {
            f(complete);
        }
    }

    fn count(&self, n: usize) {
        match &self.role {
            Role::None => {}
            Role::Request(ex) => {
                ex.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
            }
            Role::Response(ex) => {
                ex.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }

    fn fault(&self, f: impl FnOnce() -> DownstreamFault) -> bool {
        match &self.role {
            Role::Request(ex) => {
                ex.fault.set(f());
                true
            }
            _ => false,
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
                    this.count(d.len());
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
                this.fault(|| classify(&e));
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
                    // A request body's deadline is the request timeout.
                    if this.fault(|| DownstreamFault::RequestTimeout) {
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
                    this.fault(|| DownstreamFault::IdleTimeout);
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
