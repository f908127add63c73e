//! The built-in HTTP/1.1 client of upstream connections: the request's own task writes the
//! request and reads the response, with no connection task, channel or wake-up between them.
//!
//! It covers requests whose body is complete with the head (a GET, a HEAD, an empty POST):
//! the head goes out in one write, and the response is parsed with `httparse` into a head
//! and a body that reads the socket as the downstream side polls it. Requests with a body to
//! stream, and upgrades, go through hyper's client, whose connection task writes the body
//! while the response arrives.
//!
//! Response framing follows RFC 9112 §6.3: no body for a HEAD request or a 1xx, 204 or 304
//! status; `Transfer-Encoding` ending in `chunked` is decoded; `Content-Length` gives the
//! length; otherwise the body runs until the upstream closes. A response with both framing
//! headers, differing lengths, a malformed head or chunk is a protocol error. A connection
//! goes back to its pool only when its response ended cleanly on a message boundary and
//! neither side asked to close.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::body::ProxyBody;

/// Most headers a response head may have.
const MAX_HEADERS: usize = 100;
/// Largest response head (status line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Largest chunk-size line, extensions included, and largest trailer block.
const MAX_LINE: usize = 4096;
/// What a read asks the socket for at least.
const READ_SIZE: usize = 8192;

/// What went wrong on a connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum H1Error {
    /// The socket failed, or closed before the response was complete.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The upstream broke HTTP/1.1 (a malformed head or chunk, ambiguous framing).
    #[error("upstream protocol error: {0}")]
    Protocol(&'static str),
    /// The connection closed or failed before a byte of the response arrived.
    #[error("upstream connection closed before a response: {0}")]
    ClosedBeforeResponse(io::Error),
}

impl H1Error {
    pub(crate) fn is_protocol(&self) -> bool {
        matches!(self, Self::Protocol(_))
    }
}

/// An HTTP/1.1 connection to an upstream host, between requests.
#[derive(Debug)]
pub(crate) struct Conn {
    io: TcpStream,
    /// Bytes read and not consumed yet. Never shared while idle (response heads are copied
    /// out), so it is reused without reallocating.
    buf: BytesMut,
    /// Request heads are encoded here.
    out: Vec<u8>,
    /// It carried a request before.
    used: bool,
}

/// The request could not be written on this connection, and nothing of it was sent: it can
/// go on another connection.
pub(crate) struct NotSent(pub(crate) Request<ProxyBody>, pub(crate) io::Error);

impl Conn {
    pub(crate) fn new(io: TcpStream) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            out: Vec::new(),
            used: false,
        }
    }

    /// Whether the upstream closed the connection (or sent something unasked) while it was
    /// idle. Costs a system call only when the socket reported readiness since the last read.
    pub(crate) fn is_closed(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => false,
            Poll::Ready(Err(_)) => true,
            Poll::Ready(Ok(())) => !matches!(
                self.io.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            ),
        }
    }

    /// Whether this client can send `req` (its body is complete with the head).
    pub(crate) fn accepts(req: &Request<ProxyBody>) -> bool {
        req.body().is_end_stream()
    }

    /// Writes the request head (the body is empty: see [`Conn::accepts`]) and reads the
    /// response head. The response's body reads on from this connection.
    ///
    /// Not an `async fn`: the head is encoded before the future exists, which then holds the
    /// connection and the request's parts once (an `async fn` keeps its arguments and their
    /// moved-into locals side by side, hundreds of bytes copied at each move of the future).
    pub(crate) fn send(
        mut self,
        req: Request<ProxyBody>,
    ) -> impl Future<Output = Result<Result<http::Response<ResponseBody>, H1Error>, NotSent>>
    + Send
    + 'static {
        let (parts, body) = req.into_parts();
        let close_asked = encode_head(&mut self.out, &parts);
        async move {
            // Under load, the requests that arrived together reach the upstream together,
            // with one wake-up of it rather than one each; unloaded, at once. (This request
            // is one of those in flight.)
            crate::load::defer_write(1).await;
            // Nothing is sent until the first byte is written: a connection that fails there
            // (closed by the upstream while idle) gives the request back.
            let written = match self.io.write(&self.out).await {
                Ok(0) => {
                    let e = io::Error::from(io::ErrorKind::WriteZero);
                    return Err(NotSent(Request::from_parts(parts, body), e));
                }
                Ok(n) => n,
                Err(e) => return Err(NotSent(Request::from_parts(parts, body), e)),
            };
            if let Err(e) = self.io.write_all(&self.out[written..]).await {
                return Ok(Err(e.into()));
            }
            let head_only = parts.method == Method::HEAD;
            let reused = std::mem::replace(&mut self.used, true);
            match self.read_response(head_only, close_asked).await {
                // A reused connection the upstream closed as the request went out (its idle
                // close crossed the request): nothing was answered, and an idempotent
                // request may go again (RFC 9110 §9.2.2).
                Err(H1Error::ClosedBeforeResponse(e)) if reused && is_idempotent(&parts.method) => {
                    Err(NotSent(Request::from_parts(parts, body), e))
                }
                r => Ok(r),
            }
        }
    }

    /// The response to the request just written. (An async block for the reason
    /// [`Conn::send`] gives.)
    // An `async fn` would store the connection (96 bytes) twice, as its argument and as the
    // binding it moves into; this block stores it once.
    #[allow(clippy::manual_async_fn)]
    fn read_response(
        mut self,
        head_only: bool,
        close_asked: bool,
    ) -> impl Future<Output = Result<http::Response<ResponseBody>, H1Error>> + Send + 'static {
        async move {
            loop {
                if let Some(parsed) = parse_head(&mut self.buf)? {
                    let (resp, framing, closes) = parsed;
                    if resp.status().is_informational() {
                        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                            return Err(H1Error::Protocol(
                                "101 to a request that asked no upgrade",
                            ));
                        }
                        // 100 Continue and other interim responses are not forwarded.
                        continue;
                    }
                    let keep_alive = !close_asked && !closes;
                    let framing = if head_only
                        || resp.status() == StatusCode::NO_CONTENT
                        || resp.status() == StatusCode::NOT_MODIFIED
                    {
                        Framing::Length(0)
                    } else {
                        framing
                    };
                    let decoder = match framing {
                        // No body: over before anyone polls it.
                        Framing::Length(0) => Decoder::Done,
                        Framing::Length(n) => Decoder::Length(n),
                        Framing::Chunked => Decoder::Chunked(Chunk::Size),
                        Framing::Close => Decoder::Eof,
                    };
                    let reusable = keep_alive && !matches!(decoder, Decoder::Eof);
                    let body = ResponseBody {
                        conn: Some(self),
                        decoder,
                        reusable,
                        done: None,
                    };
                    let (head, ()) = resp.into_parts();
                    return Ok(http::Response::from_parts(head, body));
                }
                if self.buf.len() >= MAX_HEAD {
                    return Err(H1Error::Protocol("response head too large"));
                }
                let nothing = self.buf.is_empty();
                match read_more(&mut self.io, &mut self.buf).await {
                    Ok(0) if nothing => {
                        return Err(H1Error::ClosedBeforeResponse(
                            io::ErrorKind::UnexpectedEof.into(),
                        ));
                    }
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "upstream closed the connection mid-head",
                        )
                        .into());
                    }
                    Ok(_) => {}
                    Err(e) if nothing => return Err(H1Error::ClosedBeforeResponse(e)),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// Reads once into `buf`.
async fn read_more(io: &mut TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    std::future::poll_fn(|cx| poll_read_more(io, buf, READ_SIZE, cx)).await
}

/// Reads once into `buf`, first making room for about `size` bytes when less than half of
/// that is free (an empty buffer gets `size`; a partly filled one doubles).
pub(crate) fn poll_read_more<T: AsyncRead + Unpin>(
    io: &mut T,
    buf: &mut BytesMut,
    size: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < size / 2 {
        buf.reserve(if buf.is_empty() {
            size
        } else {
            buf.len().max(size)
        });
    }
    // tokio's own read: a read that does not fill the buffer clears the socket's readiness
    // (the kernel buffer is drained), so an idle check later costs no system call.
    let read = io.read_buf(buf);
    std::pin::pin!(read).poll(cx)
}

/// One parsed header as a name and a value sharing `copy`, the copy of the parsed bytes
/// that began at address `base` (httparse's slices point into those bytes).
pub(crate) fn header_from(
    h: &httparse::Header<'_>,
    copy: &Bytes,
    base: usize,
) -> Option<(HeaderName, HeaderValue)> {
    let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
    let at = (h.value.as_ptr() as usize).wrapping_sub(base);
    let value = HeaderValue::from_maybe_shared(copy.slice(at..at + h.value.len())).ok()?;
    Some((name, value))
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// What a message's `Connection` header values say (RFC 9112 §9.6): tokens are
/// case-insensitive and comma-separated, over any number of header lines.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ConnectionTokens {
    pub(crate) close: bool,
    pub(crate) keep_alive: bool,
    pub(crate) upgrade: bool,
}

impl ConnectionTokens {
    /// Whether a message of `version` with these tokens closes its connection after it: any
    /// `close` does; HTTP/1.0 does unless asked to keep it alive.
    pub(crate) fn closes(self, version: Version) -> bool {
        self.close || (version == Version::HTTP_10 && !self.keep_alive)
    }

    /// Adds one header value's tokens.
    pub(crate) fn read(&mut self, value: &[u8]) {
        for token in value.split(|b| *b == b',') {
            let t = token.trim_ascii();
            if t.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if t.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if t.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            }
        }
    }
}

/// Encodes a request head with an empty body: the request line in origin form and the
/// headers as they are (the router already set `Host` and removed hop-by-hop headers).
/// Returns whether the request asks to close the connection after its response (read on
/// the way: a lookup would hash the name again).
fn encode_head(out: &mut Vec<u8>, parts: &http::request::Parts) -> bool {
    let mut connection = ConnectionTokens::default();
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if path.is_empty() {
        b"/"
    } else {
        path.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        // An empty body is sent without chunked framing.
        if name == header::TRANSFER_ENCODING {
            continue;
        }
        if name == header::CONNECTION {
            connection.read(value.as_bytes());
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    connection.closes(parts.version)
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    Close,
}

/// A response head, how its body is delimited, and whether it closes the connection.
type Parsed = (http::Response<()>, Framing, bool);

/// Parses a complete response head at the start of `buf` and consumes it; `None` when more
/// bytes are needed.
fn parse_head(buf: &mut BytesMut) -> Result<Option<Parsed>, H1Error> {
    if buf.is_empty() {
        return Ok(None);
    }
    // Uninitialised slots: initialising 100 headers cost more than parsing a small head.
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(H1Error::Protocol("too many response headers"));
        }
        Err(_) => return Err(H1Error::Protocol("malformed response head")),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(H1Error::Protocol("invalid status code"))?;
    let version = if resp.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // One small copy of the head for the header values to share, so the read buffer is
    // never shared and is reused as it is.
    let head = Bytes::copy_from_slice(&buf[..len]);
    let base = buf.as_ptr() as usize;
    // Room for the headers the proxy adds, so adding them does not grow the map and hash it
    // again.
    let mut headers =
        HeaderMap::with_capacity(resp.headers.len() + crate::headers::ADDED_RESPONSE_HEADERS);
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut connection = ConnectionTokens::default();
    for h in resp.headers.iter() {
        let (name, value) =
            header_from(h, &head, base).ok_or(H1Error::Protocol("invalid header"))?;
        if name == header::CONTENT_LENGTH {
            let n = parse_length(h.value)?;
            if length.is_some_and(|l| l != n) {
                return Err(H1Error::Protocol("differing content-length values"));
            }
            length = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            // The last coding decides: chunked, or the body runs to the close.
            chunked = Some(
                h.value
                    .rsplit(|b| *b == b',')
                    .next()
                    .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked")),
            );
        } else if name == header::CONNECTION {
            connection.read(h.value);
        }
        headers.append(name, value);
    }
    buf.advance(len);
    let framing = match (chunked, length) {
        (Some(_), Some(_)) => {
            return Err(H1Error::Protocol(
                "both content-length and transfer-encoding",
            ));
        }
        (Some(true), None) if version == Version::HTTP_11 => Framing::Chunked,
        (Some(_), None) => Framing::Close,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::Close,
    };
    let mut r = http::Response::new(());
    *r.status_mut() = status;
    *r.version_mut() = version;
    *r.headers_mut() = headers;
    Ok(Some((r, framing, connection.closes(version))))
}

fn parse_length(v: &[u8]) -> Result<u64, H1Error> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(H1Error::Protocol("invalid content-length"));
    }
    Ok(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Where a body decoder is.
#[derive(Debug)]
enum Decoder {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes.
    Eof,
    Done,
}

/// Where a chunked decoder is.
#[derive(Debug, Clone, Copy)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// In a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailers up to an empty line.
    Trailers,
}

/// Called with the connection when a response body ended cleanly and the connection can
/// carry another request.
pub(crate) type Release = Box<dyn FnOnce(Conn) + Send + Sync>;

/// A response body read from its connection by whoever polls it.
pub(crate) struct ResponseBody {
    conn: Option<Conn>,
    decoder: Decoder,
    reusable: bool,
    done: Option<Release>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("decoder", &self.decoder)
            .finish_non_exhaustive()
    }
}

impl ResponseBody {
    /// Hands the connection to `f` when the body ends cleanly and the connection is reusable.
    pub(crate) fn on_reusable(&mut self, f: Release) {
        if matches!(self.decoder, Decoder::Done) {
            // Already over (an empty body): release now.
            self.finish_into(f);
        } else {
            self.done = Some(f);
        }
    }

    fn finish_into(&mut self, f: Release) {
        if let Some(conn) = self.conn.take()
            && self.reusable
            && conn.buf.is_empty()
        {
            f(conn);
        }
    }

    fn finish(&mut self) {
        self.decoder = Decoder::Done;
        match self.done.take() {
            Some(f) => self.finish_into(f),
            None => {
                // Nobody takes it back yet ([`ResponseBody::on_reusable`] releases it then).
            }
        }
    }

    fn eof() -> H1Error {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "upstream closed the connection mid-body",
        )
        .into()
    }

    fn poll_decode(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, H1Error>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut self.decoder {
                Decoder::Done => return Poll::Ready(None),
                Decoder::Length(0) => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Decoder::Length(left) => {
                    let data = ready!(poll_take(conn, *left, cx))?;
                    *left -= data.len() as u64;
                    if *left == 0 {
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decoder::Eof => {
                    if conn.buf.is_empty()
                        && ready!(poll_read_more(&mut conn.io, &mut conn.buf, READ_SIZE, cx))? == 0
                    {
                        self.finish();
                        return Poll::Ready(None);
                    }
                    let data = conn.buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decoder::Chunked(state) => match *state {
                    Chunk::Size => match find_crlf(&conn.buf) {
                        Some(end) => {
                            let size = parse_chunk_size(&conn.buf[..end])?;
                            conn.buf.advance(end + 2);
                            *state = if size == 0 {
                                Chunk::Trailers
                            } else {
                                Chunk::Data(size)
                            };
                        }
                        None => {
                            if conn.buf.len() > MAX_LINE {
                                return Poll::Ready(Some(Err(H1Error::Protocol(
                                    "chunk size line too long",
                                ))));
                            }
                            if ready!(poll_read_more(&mut conn.io, &mut conn.buf, READ_SIZE, cx))?
                                == 0
                            {
                                return Poll::Ready(Some(Err(Self::eof())));
                            }
                        }
                    },
                    Chunk::Data(left) => {
                        let data = ready!(poll_take(conn, left, cx))?;
                        let left = left - data.len() as u64;
                        *state = if left == 0 {
                            Chunk::DataEnd
                        } else {
                            Chunk::Data(left)
                        };
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Chunk::DataEnd => {
                        if conn.buf.len() < 2 {
                            if ready!(poll_read_more(&mut conn.io, &mut conn.buf, READ_SIZE, cx))?
                                == 0
                            {
                                return Poll::Ready(Some(Err(Self::eof())));
                            }
                            continue;
                        }
                        if &conn.buf[..2] != b"\r\n" {
                            return Poll::Ready(Some(Err(H1Error::Protocol(
                                "chunk data not followed by CRLF",
                            ))));
                        }
                        conn.buf.advance(2);
                        *state = Chunk::Size;
                    }
                    Chunk::Trailers => {
                        if conn.buf.starts_with(b"\r\n") {
                            conn.buf.advance(2);
                            self.finish();
                            return Poll::Ready(None);
                        }
                        match find_blank_line(&conn.buf) {
                            Some(end) => {
                                let block = conn.buf.split_to(end + 4).freeze();
                                let trailers = parse_trailers(&block)?;
                                self.finish();
                                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                            }
                            None => {
                                if conn.buf.len() > MAX_LINE {
                                    return Poll::Ready(Some(Err(H1Error::Protocol(
                                        "trailers too large",
                                    ))));
                                }
                                if ready!(poll_read_more(
                                    &mut conn.io,
                                    &mut conn.buf,
                                    READ_SIZE,
                                    cx
                                ))? == 0
                                {
                                    return Poll::Ready(Some(Err(Self::eof())));
                                }
                            }
                        }
                    }
                },
            }
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = H1Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, H1Error>>> {
        let this = self.get_mut();
        let r = ready!(this.poll_decode(cx));
        if let Some(Err(_)) = &r {
            // A broken body leaves its connection closed.
            this.conn = None;
            this.decoder = Decoder::Done;
        }
        Poll::Ready(r)
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.decoder, Decoder::Done | Decoder::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Length(n) => SizeHint::with_exact(n),
            Decoder::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// Up to `left` bytes of a body, reading when nothing is buffered; the end of the stream
/// before them is an error.
fn poll_take(conn: &mut Conn, left: u64, cx: &mut Context<'_>) -> Poll<Result<Bytes, H1Error>> {
    if conn.buf.is_empty()
        && ready!(poll_read_more(&mut conn.io, &mut conn.buf, READ_SIZE, cx))? == 0
    {
        return Poll::Ready(Err(ResponseBody::eof()));
    }
    let take = conn
        .buf
        .len()
        .min(usize::try_from(left).unwrap_or(usize::MAX));
    Poll::Ready(Ok(conn.buf.split_to(take).freeze()))
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

fn find_blank_line(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n")
}

/// A chunk-size line: hex digits, then optional `;extensions` (ignored).
fn parse_chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    let digits = line
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(H1Error::Protocol("invalid chunk size"));
    }
    let mut n = 0u64;
    for d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return Err(H1Error::Protocol("invalid chunk size")),
        };
        n = n * 16 + u64::from(v);
    }
    Ok(n)
}

fn parse_trailers(block: &Bytes) -> Result<HeaderMap, H1Error> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let parsed = match httparse::parse_headers(block, &mut slots) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        _ => return Err(H1Error::Protocol("malformed trailers")),
    };
    let mut map = HeaderMap::with_capacity(parsed.len());
    let base = block.as_ptr() as usize;
    for h in parsed {
        let (name, value) =
            header_from(h, block, base).ok_or(H1Error::Protocol("invalid trailer"))?;
        map.append(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8]) -> Result<Option<Parsed>, H1Error> {
        parse_head(&mut BytesMut::from(bytes))
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let framing = |b: &[u8]| head(b).unwrap().unwrap().1;
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
            Framing::Length(5)
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n"),
            Framing::Chunked
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n"),
            Framing::Close
        );
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\n\r\n"), Framing::Close);
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\n"),
            Framing::Length(5)
        );
        assert!(head(b"HTTP/1.1 200 OK\r\n").unwrap().is_none(), "partial");
    }

    #[test]
    fn ambiguous_or_malformed_heads_are_protocol_errors() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            b"SIP/2.0 200 OK\r\n\r\n",
        ] {
            let e = head(bad)
                .err()
                .unwrap_or_else(|| panic!("accepted {:?}", String::from_utf8_lossy(bad)));
            assert!(e.is_protocol(), "{e}");
        }
    }

    /// Sends a GET through a built-in connection to an upstream that answers `response`, and
    /// reads the response body's frames.
    async fn exchange(response: &'static [u8]) -> (http::response::Parts, Vec<Frame<Bytes>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            s.write_all(response).await.unwrap();
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
        });
        let conn = Conn::new(TcpStream::connect(addr).await.unwrap());
        let req = Request::get("/").body(crate::body::empty()).unwrap();
        let Ok(Ok(resp)) = conn.send(req).await else {
            panic!("no response");
        };
        let (head, mut body) = resp.into_parts();
        let mut frames = Vec::new();
        while let Some(f) = http_body_util::BodyExt::frame(&mut body).await {
            frames.push(f.unwrap());
        }
        (head, frames)
    }

    #[tokio::test]
    async fn chunked_bodies_carry_their_trailers() {
        let (head, frames) = exchange(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-sum: 7\r\n\r\n",
        )
        .await;
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(frames[0].data_ref().unwrap(), "abc");
        assert_eq!(frames[1].trailers_ref().unwrap()["x-sum"], "7");
        assert_eq!(frames.len(), 2);
    }

    #[tokio::test]
    async fn a_body_split_across_reads_is_reassembled() {
        let (_, frames) = exchange(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nxyz").await;
        let body: Vec<u8> = frames
            .iter()
            .filter_map(|f| f.data_ref())
            .flat_map(|d| d.to_vec())
            .collect();
        assert_eq!(body, b"xyz");
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"FF;name=value").unwrap(), 255);
        assert!(parse_chunk_size(b"").is_err());
        assert!(parse_chunk_size(b"g").is_err());
        assert!(parse_chunk_size(b"1234567890abcdef0").is_err());
    }

    #[test]
    fn request_heads_are_origin_form_without_chunked_framing() {
        let req = Request::post("/a?b=1")
            .header("host", "up")
            .header("transfer-encoding", "chunked")
            .header("x-a", "1")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        assert!(!encode_head(&mut out, &parts), "nothing asks to close");
        assert_eq!(out, b"POST /a?b=1 HTTP/1.1\r\nhost: up\r\nx-a: 1\r\n\r\n");
    }

    #[test]
    fn connection_tokens_decide_whether_the_connection_is_reused() {
        let closes = |b: &[u8]| head(b).unwrap().unwrap().2;
        assert!(!closes(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(closes(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nconnection: x, CLOSE\r\n\r\n"
        ));
        assert!(closes(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(!closes(
            b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\nconnection: Keep-Alive\r\n\r\n"
        ));

        let asks = |version, connection: Option<&str>| {
            let mut req = Request::get("/").version(version);
            if let Some(c) = connection {
                req = req.header("connection", c);
            }
            let (parts, ()) = req.body(()).unwrap().into_parts();
            encode_head(&mut Vec::new(), &parts)
        };
        assert!(!asks(Version::HTTP_11, None));
        assert!(asks(Version::HTTP_11, Some("close")));
        assert!(asks(Version::HTTP_10, None));
        assert!(!asks(Version::HTTP_10, Some("keep-alive")));
    }
}
