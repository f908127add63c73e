//! The built-in HTTP/1.x server of downstream connections, for the requests it covers.
//!
//! The connection's task parses request heads with `httparse`, calls the connection manager,
//! and writes the response itself: no hyper dispatcher between the socket and the proxy, one
//! small read buffer that is released while the connection idles, and the response head and
//! its first body bytes in one write.
//!
//! It covers requests without a body (no `Transfer-Encoding`, a `Content-Length` of 0 or
//! none), with no `Expect` and no upgrade: most GETs. The first request it does not cover (a
//! body to stream, an upgrade, an HTTP/2 preface, a malformed or oversized head) hands the
//! connection to hyper, with the bytes read so far replayed first, so hyper serves that
//! request and every later one on the connection (and answers a bad head as it always does).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::body::ProxyBody;
use crate::conn_manager::{self, ConnInfo, Shared};
use crate::h1::poll_read_more;

/// Headers the fast path parses; a request with more goes to hyper.
const MAX_HEADERS: usize = 100;
/// The read buffer's first size: a small request head fits, and a buffer this size comes
/// from the allocator's per-thread cache.
const READ_SIZE: usize = 1024;

/// What the fast path needs of the connection.
pub(crate) struct Fast {
    pub(crate) info: Arc<ConnInfo>,
    pub(crate) shared: Arc<Shared>,
    /// A head may not grow past this many bytes (hyper's limit on the same connection).
    pub(crate) max_head: usize,
}

/// How the fast path left a connection.
pub(crate) enum Handoff<T> {
    /// The connection is over (closed by either side, or after a response that closes it).
    Closed,
    /// A request it does not cover: hyper takes the connection, starting with these bytes.
    ToHyper(T, Bytes),
}

/// A parsed request head, as the request the connection manager takes.
struct Head {
    /// Its length in the read buffer.
    len: usize,
    request: Request<http_body_util::Empty<Bytes>>,
    keep_alive: bool,
}

/// A short-lived value, once per request: boxing the head would cost an allocation.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    Complete(Head),
    Partial,
    /// Not for the fast path: hyper answers it.
    Hyper,
}

fn parse(buf: &[u8]) -> Parsed {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Hyper,
    };
    let Some(method) = req
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
    else {
        return Parsed::Hyper;
    };
    if method == Method::CONNECT {
        return Parsed::Hyper;
    }
    let version = match req.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => return Parsed::Hyper,
    };
    // The head is copied out once: the request's URI and header values share the copy, and
    // the read buffer is never shared, so it is reused as it is.
    let copy = Bytes::copy_from_slice(&buf[..len]);
    let base = buf.as_ptr() as usize;
    let Some(uri) = req.path.and_then(|p| {
        let at = (p.as_ptr() as usize).wrapping_sub(base);
        Uri::from_maybe_shared(copy.slice(at..at + p.len())).ok()
    }) else {
        return Parsed::Hyper;
    };
    let mut connection = crate::h1::ConnectionTokens::default();
    // Room for the headers the proxy adds.
    let mut headers = HeaderMap::with_capacity(req.headers.len() + 5);
    for h in req.headers.iter() {
        let Some((name, value)) = crate::h1::header_from(h, &copy, base) else {
            return Parsed::Hyper;
        };
        if name == header::TRANSFER_ENCODING
            || name == header::EXPECT
            || name == header::UPGRADE
            || (name == header::CONTENT_LENGTH && h.value.trim_ascii() != b"0")
        {
            return Parsed::Hyper;
        }
        if name == header::CONNECTION {
            connection.read(h.value);
        }
        headers.append(name, value);
    }
    if connection.upgrade {
        return Parsed::Hyper;
    }
    // Any `close` token closes, whatever else the header says; HTTP/1.0 closes unless asked.
    let keep_alive = !connection.close && (version == Version::HTTP_11 || connection.keep_alive);
    let mut request = Request::new(http_body_util::Empty::new());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Parsed::Complete(Head {
        len,
        request,
        keep_alive,
    })
}

/// Serves requests on `io` until the connection ends or a request needs hyper. `closing`
/// tells it to finish: between requests it stops, and a response in progress is the last.
pub(crate) async fn serve<T>(mut io: T, fast: &Fast) -> Handoff<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let state = &fast.info.state;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut first = true;
    loop {
        // A request head.
        let head = loop {
            if !buf.is_empty() {
                if first && (buf.starts_with(b"PRI ") || b"PRI ".starts_with(&buf)) {
                    if buf.len() >= 4 {
                        // HTTP/2 with prior knowledge.
                        return Handoff::ToHyper(io, buf.freeze());
                    }
                } else {
                    match parse(&buf) {
                        Parsed::Complete(h) => break h,
                        Parsed::Hyper => return Handoff::ToHyper(io, buf.freeze()),
                        Parsed::Partial if buf.len() > fast.max_head => {
                            return Handoff::ToHyper(io, buf.freeze());
                        }
                        Parsed::Partial => {}
                    }
                }
            }
            // Bytes of the next head that came with the last request: the request header
            // timeout runs for them too (the connection's I/O saw them arrive mid-request).
            if !buf.is_empty() && state.active.load(Ordering::Acquire) == 0 {
                state.head_pending.store(true, Ordering::Release);
            }
            let read = std::future::poll_fn(|cx| poll_fill(&mut io, &mut buf, state, cx)).await;
            match read {
                Ok(0) | Err(_) => return Handoff::Closed,
                Ok(_) => {}
            }
        };
        first = false;
        buf.advance(head.len);
        let req = head.request;
        let (method, version) = (req.method().clone(), req.version());
        // Not boxed: this future is the connection's, allocated once; a box per request of
        // the request path's ~4 KiB future would cost the allocator's slow path each time.
        let serve = conn_manager::serve(req, Arc::clone(&fast.info), Arc::clone(&fast.shared));
        let mut serve = std::pin::pin!(serve);
        // While the request is served, the socket is watched as hyper does: a client that
        // closes cancels its request (dropping it resets the upstream side); what a
        // pipelining client sends meanwhile is kept for the next request.
        let mut watching = true;
        let resp = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = serve.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            while watching {
                if buf.len() >= fast.max_head {
                    watching = false;
                    break;
                }
                match poll_read_more(&mut io, &mut buf, READ_SIZE, cx) {
                    Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(None),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => break,
                }
            }
            Poll::Pending
        })
        .await;
        let resp = match resp {
            Some(Ok(r)) => r,
            Some(Err(never)) => match never {},
            None => return Handoff::Closed,
        };
        let keep_alive = head.keep_alive && !state.close.load(Ordering::Acquire);
        match write_response(&mut io, &mut out, resp, &method, version, keep_alive).await {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                let _ = io.shutdown().await;
                return Handoff::Closed;
            }
        }
    }
}

/// Reads into `buf`. While nothing is buffered and the socket has nothing either, the
/// buffer is released (an idle connection holds none), and a close the connection task
/// asked for ends the connection.
fn poll_fill<T: AsyncRead + Unpin>(
    io: &mut T,
    buf: &mut BytesMut,
    state: &conn_manager::ConnState,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    // Between requests (a partial head is not a request yet), a close ends the connection.
    if state.close.load(Ordering::Acquire) {
        return Poll::Ready(Ok(0));
    }
    let r = poll_read_more(io, buf, READ_SIZE, cx);
    if r.is_pending() && buf.is_empty() {
        *buf = BytesMut::new();
    }
    r
}

/// Writes a response; `Ok(true)` when the connection stays open for another request.
async fn write_response<T>(
    io: &mut T,
    out: &mut Vec<u8>,
    resp: http::Response<ProxyBody>,
    method: &Method,
    version: Version,
    keep_alive: bool,
) -> io::Result<bool>
where
    T: AsyncWrite + Unpin,
{
    let (parts, mut body) = resp.into_parts();
    let status = parts.status;
    let bodiless = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let headers = parts.headers;
    // One pass over the names for what framing needs (lookups would hash each name); what
    // the server adds is written after the headers the response has, not inserted into its
    // map (each insert hashes too).
    let mut given = None;
    let mut has_date = false;
    for (name, value) in &headers {
        if name == header::CONTENT_LENGTH {
            given = given.or(Some(value)); // the first, as a lookup would give
        } else if name == header::DATE {
            has_date = true;
        }
    }
    let given_length = given
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // Framing: the length given, else the body's exact size, else chunks (HTTP/1.1) or the
    // close (HTTP/1.0).
    let mut framing = Framing::Length(0);
    let mut length_added = None;
    let mut keep_alive = keep_alive;
    if !bodiless {
        framing = if let Some(n) = given_length {
            Framing::Length(n)
        } else if let Some(n) = body.size_hint().exact() {
            length_added = Some(n);
            Framing::Length(n)
        } else if version == Version::HTTP_11 {
            Framing::Chunked
        } else {
            keep_alive = false;
            Framing::Close
        };
    }
    // A header the server writes replaces the response's own; a length that does not frame
    // the body (unreadable) is not sent.
    let own_length = !bodiless && given.is_some() && given_length.is_none();
    let own_connection = !keep_alive || version == Version::HTTP_10;
    let chunked = framing == Framing::Chunked;

    out.clear();
    out.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &headers {
        if (own_length && name == header::CONTENT_LENGTH)
            || (chunked && name == header::TRANSFER_ENCODING)
            || (own_connection && name == header::CONNECTION)
        {
            continue;
        }
        line(out, name.as_str(), value.as_bytes());
    }
    drop(headers);
    if let Some(n) = length_added {
        line(
            out,
            "content-length",
            itoa::Buffer::new().format(n).as_bytes(),
        );
    }
    if chunked {
        line(out, "transfer-encoding", b"chunked");
    }
    if !has_date {
        line(out, "date", date().as_bytes());
    }
    if !keep_alive {
        line(out, "connection", b"close");
    } else if version == Version::HTTP_10 {
        line(out, "connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");

    // Under load, the responses finished together go out together (h2load, one core: 12%
    // less CPU per request); unloaded, at once.
    crate::load::defer_write(0).await;
    if bodiless {
        io.write_all(out).await?;
        return Ok(keep_alive);
    }
    let mut left = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    // Body frames go out as they come; what is ready with the head shares its write.
    loop {
        let frame = std::future::poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Pending if !out.is_empty() => Poll::Ready(Some(Err(None))),
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Some(e)))),
        })
        .await;
        match frame {
            // Nothing more yet: send what is buffered, then wait.
            Some(Err(None)) => {
                io.write_all(out).await?;
                out.clear();
            }
            Some(Err(Some(_))) => {
                // The body failed: the response cannot be completed.
                return Ok(false);
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers are not sent over HTTP/1.1 here
                };
                if data.is_empty() {
                    continue;
                }
                if let Some(l) = &mut left {
                    let n = data.len() as u64;
                    if n > *l {
                        return Ok(false);
                    }
                    *l -= n;
                }
                match framing {
                    Framing::Chunked => {
                        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                        out.extend_from_slice(&data);
                        out.extend_from_slice(b"\r\n");
                    }
                    _ => out.extend_from_slice(&data),
                }
                if out.len() >= 64 * 1024 {
                    io.write_all(out).await?;
                    out.clear();
                }
            }
            None => {
                if framing == Framing::Chunked {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                if !out.is_empty() {
                    io.write_all(out).await?;
                    out.clear();
                }
                if left.is_some_and(|l| l > 0) {
                    // Shorter than its length: the client must not take it as whole.
                    return Ok(false);
                }
                return Ok(keep_alive && framing != Framing::Close);
            }
        }
    }
}

/// Writes one header line.
fn line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    Close,
}

/// The `Date` header, formatted once per second per thread.
fn date() -> HeaderValue {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHE: RefCell<(u64, Option<HeaderValue>)> = const { RefCell::new((0, None)) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs || c.1.is_none() {
            let v = HeaderValue::from_str(&httpdate::fmt_http_date(now))
                .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
            *c = (secs, Some(v));
        }
        c.1.clone()
            .unwrap_or_else(|| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
    })
}

/// I/O that replays `prefix` before reading on from `inner` (what the fast path read before
/// it handed the connection to hyper).
#[derive(Debug)]
pub(crate) struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    pub(crate) fn new(prefix: Bytes, inner: T) -> Self {
        Self { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, b)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_heads_parse_and_the_rest_goes_to_hyper() {
        let Parsed::Complete(h) = parse(b"GET /a?b HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n") else {
            panic!("not parsed");
        };
        assert_eq!(h.request.method(), Method::GET);
        assert!(h.keep_alive);
        assert_eq!(h.request.headers().len(), 2);
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Parsed::Partial
        ));
        for hyper in [
            &b"POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc"[..],
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
            b"PUT / HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 0\r\n\r\n",
            b"CONNECT x:443 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            assert!(
                matches!(parse(hyper), Parsed::Hyper),
                "{}",
                String::from_utf8_lossy(hyper)
            );
        }
        let Parsed::Complete(h) = parse(b"GET / HTTP/1.0\r\n\r\n") else {
            panic!("not parsed");
        };
        assert!(!h.keep_alive, "HTTP/1.0 closes unless asked");
        let Parsed::Complete(h) = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") else {
            panic!("not parsed");
        };
        assert!(h.keep_alive);
        for close in [
            &b"GET / HTTP/1.1\r\nConnection: close, keep-alive\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n",
        ] {
            let Parsed::Complete(h) = parse(close) else {
                panic!("not parsed");
            };
            assert!(!h.keep_alive, "any close token closes");
        }
    }

    /// The bytes `write_response` sends for `resp`, and whether the connection stays open.
    async fn written(
        resp: http::Response<ProxyBody>,
        method: Method,
        version: Version,
        keep_alive: bool,
    ) -> (String, bool) {
        let mut io = Vec::new();
        let open = write_response(&mut io, &mut Vec::new(), resp, &method, version, keep_alive)
            .await
            .unwrap();
        (String::from_utf8(io).unwrap(), open)
    }

    fn response(headers: &[(&str, &str)], body: ProxyBody) -> http::Response<ProxyBody> {
        let mut r = http::Response::new(body);
        for (k, v) in headers {
            r.headers_mut().append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        r
    }

    fn unsized_body(chunks: &'static [&'static str]) -> ProxyBody {
        let frames = chunks.iter().map(|c| {
            Ok::<_, mesh_core::BoxError>(http_body::Frame::data(Bytes::from_static(c.as_bytes())))
        });
        crate::body::boxed_unsync(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
    }

    #[tokio::test]
    async fn responses_are_framed_and_the_server_headers_replace_the_responses_own() {
        const DATE: &str = "Thu, 01 Jan 2026 00:00:00 GMT";
        let given = |h: &[(&'static str, &'static str)]| {
            let mut h = h.to_vec();
            h.push(("date", DATE));
            h
        };
        let (v10, v11) = (Version::HTTP_10, Version::HTTP_11);
        let (get, head) = (Method::GET, Method::HEAD);
        // (why, the response's headers, its body, the request, whether the connection may
        // stay open, the bytes sent, whether it stays open)
        let cases = [
            (
                "the length given frames the body; the date given is kept",
                given(&[("content-length", "5")]),
                crate::body::full("hello"),
                (get.clone(), v11, true),
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: {date}\r\n\r\nhello",
                true,
            ),
            (
                "an unreadable length is replaced, not sent beside the real one",
                given(&[("content-length", "x")]),
                crate::body::full("abc"),
                (get.clone(), v11, true),
                "HTTP/1.1 200 OK\r\ndate: {date}\r\ncontent-length: 3\r\n\r\nabc",
                true,
            ),
            (
                "unknown size: chunks over HTTP/1.1, replacing a transfer-encoding given",
                given(&[("transfer-encoding", "gzip")]),
                unsized_body(&["ab", "cde"]),
                (get.clone(), v11, true),
                "HTTP/1.1 200 OK\r\ndate: {date}\r\ntransfer-encoding: chunked\r\n\r\n\
                 2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n",
                true,
            ),
            (
                "unknown size over HTTP/1.0: the close frames it, and says so once",
                given(&[("connection", "keep-alive")]),
                unsized_body(&["ab"]),
                (get.clone(), v10, true),
                "HTTP/1.0 200 OK\r\ndate: {date}\r\nconnection: close\r\n\r\nab",
                false,
            ),
            (
                "a kept-alive HTTP/1.0 connection says so",
                given(&[("content-length", "0")]),
                crate::body::empty(),
                (get.clone(), v10, true),
                "HTTP/1.0 200 OK\r\ncontent-length: 0\r\ndate: {date}\r\nconnection: keep-alive\r\n\r\n",
                true,
            ),
            (
                "a closing connection says close, in place of the response's own",
                given(&[("connection", "keep-alive"), ("content-length", "0")]),
                crate::body::empty(),
                (get.clone(), v11, false),
                "HTTP/1.1 200 OK\r\ncontent-length: 0\r\ndate: {date}\r\nconnection: close\r\n\r\n",
                false,
            ),
            (
                "a HEAD response keeps its headers as they are and sends no body",
                given(&[("content-length", "5")]),
                crate::body::empty(),
                (head, v11, true),
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: {date}\r\n\r\n",
                true,
            ),
        ];
        for (why, headers, body, (method, version, keep_alive), bytes, stays_open) in cases {
            let (out, open) = written(response(&headers, body), method, version, keep_alive).await;
            assert_eq!(out, bytes.replace("{date}", DATE), "{why}");
            assert_eq!(open, stays_open, "{why}");
        }
        // No length and no date: the body's exact size, and a date of now.
        let (out, _) = written(response(&[], crate::body::full("abc")), get, v11, true).await;
        assert!(
            out.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ndate: "),
            "{out}"
        );
        assert!(out.ends_with(" GMT\r\n\r\nabc"), "{out}");
    }
}
