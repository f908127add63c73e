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
        // Most requests ended with their head: no waiter to set up (enabling one, and
        // dropping it, cost about 200 instructions a request).
        if let Some(at) = self.request_done_at() {
            return at;
        }
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

/// What an upstream response's body keeps until it ends: the cluster's request slot (its
/// circuit breaker counts the request until then) and the connection, which goes back to its
/// pool when the body was read to its end.
pub(crate) struct UpstreamHold {
    pub(crate) slot: mesh_lb::breaker::Permit,
    pub(crate) lease: Option<crate::upstream::Lease>,
}

/// What runs once when a tracked body's stream ends: `complete` is true when it reached its
/// end, `now` is when (read once for the body's hold and this).
pub(crate) trait OnEnd: Send + Sync + Unpin + 'static {
    /// The stream ended.
    fn ended(self, complete: bool, now: Instant);
}

/// Nothing runs.
impl OnEnd for () {
    fn ended(self, _: bool, _: Instant) {}
}

/// Wraps a body: counts data bytes into its [`Exchange`], lets go of what it holds upstream
/// and then runs its [`OnEnd`], once, when the stream ends (or the body is dropped before it
/// ends), and fails the stream when `idle` passes without a frame or `deadline` passes.
///
/// An upstream response has one of these from the router to the downstream: the router
/// sets its timeouts and hold, the connection manager its role and end (two wrappers, each
/// boxed, cost two allocations and a layer of dynamic calls per frame). The end is a type,
/// not a boxed closure, for the same reason.
pub(crate) struct Tracked<B, E: OnEnd = ()> {
    // Declared first so that it is dropped first: a body dropped before its end finishes
    // its stream (the hold, the end) before the inner body goes.
    track: Track<E>,
    inner: B,
}

/// A tracked body's state, apart from the body: the part with a `Drop`, so that the body can
/// be moved out of a [`Tracked`] to give it another end.
struct Track<E: OnEnd> {
    role: Role,
    hold: Option<UpstreamHold>,
    on_end: Option<E>,
    /// The idle timeout, and its timer once armed: timers are created only when the body
    /// first waits (most bodies end without waiting: an empty request body, a small
    /// response), since each costs an allocation and a timer-wheel entry.
    idle: Option<(std::time::Duration, Option<Pin<Box<Sleep>>>)>,
    deadline: Option<(Instant, Option<Pin<Box<Sleep>>>)>,
}

impl<B> Tracked<B> {
    /// A body that counts nothing (add timeouts and an end).
    pub(crate) fn new(inner: B) -> Self {
        Self {
            track: Track {
                role: Role::None,
                hold: None,
                on_end: None,
                idle: None,
                deadline: None,
            },
            inner,
        }
    }

    /// Runs `end` when the stream ends.
    pub(crate) fn on_end<E: OnEnd>(self, end: E) -> Tracked<B, E> {
        let Self { mut track, inner } = self;
        // What is taken leaves `track` with nothing to do when it drops.
        Tracked {
            track: Track {
                role: std::mem::replace(&mut track.role, Role::None),
                hold: track.hold.take(),
                on_end: Some(end),
                idle: track.idle.take(),
                deadline: track.deadline.take(),
            },
            inner,
        }
    }
}

impl<B, E: OnEnd> Tracked<B, E> {
    /// The downstream request body of `ex`.
    pub(crate) fn request_of(mut self, ex: Arc<Exchange>) -> Self {
        self.track.role = Role::Request(ex);
        self
    }

    /// The downstream response body of `ex`.
    pub(crate) fn response_of(mut self, ex: Arc<Exchange>) -> Self {
        self.track.role = Role::Response(ex);
        self
    }

    /// Keeps `hold` until the stream ends.
    pub(crate) fn holding(mut self, hold: UpstreamHold) -> Self {
        self.track.hold = Some(hold);
        self
    }

    /// Fails the stream when no frame arrives for `d` (zero disables).
    pub(crate) fn idle_timeout(mut self, d: std::time::Duration) -> Self {
        if !d.is_zero() {
            self.track.idle = Some((d, None));
        }
        self
    }

    /// Fails the stream at `at`.
    pub(crate) fn deadline(mut self, at: Option<Instant>) -> Self {
        self.track.deadline = at.map(|at| (at, None));
        self
    }
}

impl<E: OnEnd> Track<E> {
    fn finish(&mut self, complete: bool) {
        if let Role::Request(ex) = &self.role {
            ex.mark_request_done();
        }
        // The clock is read once, and only when something needs the time.
        let mut now = None;
        let mut now = || *now.get_or_insert_with(Instant::now);
        if let Some(UpstreamHold { slot, lease }) = self.hold.take() {
            drop(slot);
            if complete && let Some(lease) = lease {
                lease.release(now());
            }
        }
        if let Some(end) = self.on_end.take() {
            end.ended(complete, now());
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

impl<E: OnEnd> Drop for Track<E> {
    fn drop(&mut self) {
        self.finish(false);
    }
}

impl<B, E> Body for Tracked<B, E>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    E: OnEnd,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Self { track, inner } = self.get_mut();
        match Pin::new(&mut *inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    track.count(d.len());
                }
                if let Some((d, Some(sleep))) = &mut track.idle {
                    sleep.as_mut().reset(Instant::now() + *d);
                }
                if inner.is_end_stream() {
                    track.finish(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                track.finish(false);
                let e = e.into();
                track.fault(|| classify(&e));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                track.finish(true);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Some((at, dl)) = &mut track.deadline
                    && dl
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(*at)))
                        .as_mut()
                        .poll(cx)
                        .is_ready()
                {
                    track.finish(false);
                    // A request body's deadline is the request timeout.
                    if track.fault(|| DownstreamFault::RequestTimeout) {
                        return Poll::Ready(Some(Err(BodyTimeout("request timeout").into())));
                    }
                    return Poll::Ready(Some(Err(BodyTimeout("upstream request timeout").into())));
                }
                // Armed at the first wait: the idle time counts from the last frame (or the
                // start), which was at most this poll ago.
                if let Some((d, sleep)) = &mut track.idle
                    && sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(*d)))
                        .as_mut()
                        .poll(cx)
                        .is_ready()
                {
                    track.finish(false);
                    track.fault(|| DownstreamFault::IdleTimeout);
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records how each stream ended.
    #[derive(Clone, Default)]
    struct Ends(Arc<Mutex<Vec<bool>>>);

    impl OnEnd for Ends {
        fn ended(self, complete: bool, _: Instant) {
            self.0.lock().unwrap().push(complete);
        }
    }

    fn two_chunks() -> ProxyBody {
        let frames = [
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"ab"))),
            Ok(Frame::data(Bytes::from_static(b"cde"))),
        ];
        boxed_unsync(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
    }

    #[tokio::test]
    async fn an_end_given_later_runs_once_and_the_counting_role_carries_over() {
        let ex = Arc::new(Exchange::new(Instant::now(), true));
        let ends = Ends::default();
        let body = Tracked::new(two_chunks())
            .idle_timeout(std::time::Duration::from_secs(5))
            .on_end(ends.clone())
            .response_of(Arc::clone(&ex));
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], b"abcde");
        assert_eq!(ex.bytes_sent.load(Ordering::Relaxed), 5);
        assert_eq!(*ends.0.lock().unwrap(), [true], "ended once, complete");
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_ends_incomplete() {
        let ends = Ends::default();
        let mut body = Tracked::new(two_chunks()).on_end(ends.clone());
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "ab");
        assert!(ends.0.lock().unwrap().is_empty());
        drop(body);
        assert_eq!(*ends.0.lock().unwrap(), [false]);
        // Moving the body to its end does not end the stream it came from.
        let moved = Tracked::new(two_chunks()).on_end(());
        let ends = Ends::default();
        drop(moved.on_end(ends.clone()));
        assert_eq!(
            *ends.0.lock().unwrap(),
            [false],
            "one end, the last one given"
        );
    }
}
