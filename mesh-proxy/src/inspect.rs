//! Listener filters that read a new connection's first bytes before a filter chain is chosen:
//! Envoy's `http_inspector` and `tls_inspector`, and `original_dst`.
//!
//! The inspectors read (rather than peek: a peek that finds too few bytes would be woken again
//! at once by the same bytes) and the bytes read are handed on to the chosen chain, which sees
//! them first.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// What one inspector makes of the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sniff<T> {
    /// Not enough bytes to tell.
    More,
    /// The protocol, and what the inspector learned.
    Found(T),
    /// Not this protocol.
    Not,
}

/// The HTTP/2 connection preface a client with prior knowledge sends.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The longest request line the HTTP inspector waits for.
const MAX_REQUEST_LINE: usize = 8 * 1024;

/// Envoy's HTTP inspector: `h2c` for the HTTP/2 preface, `http/1.1` or `http/1.0` for an
/// HTTP/1 request line.
pub(crate) fn http_protocol(buf: &[u8]) -> Sniff<&'static str> {
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return if n == H2_PREFACE.len() {
            Sniff::Found("h2c")
        } else {
            Sniff::More
        };
    }
    let line_end = buf.iter().position(|&b| b == b'\n');
    let line = &buf[..line_end.unwrap_or(buf.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // The method: a token; then one space, a target without spaces or controls, one space.
    let method_len = line.iter().take_while(|b| is_token(**b)).count();
    if method_len == 0 && !line.is_empty() {
        return Sniff::Not;
    }
    if method_len < line.len() && line[method_len] != b' ' {
        return Sniff::Not;
    }
    let rest = line.get(method_len + 1..).unwrap_or(&[]);
    let target_len = rest
        .iter()
        .take_while(|b| **b > b' ' && **b != 0x7f)
        .count();
    if target_len < rest.len() && rest[target_len] != b' ' {
        return Sniff::Not;
    }
    let version = rest.get(target_len + 1..).unwrap_or(&[]);
    if line_end.is_none() {
        let plausible = b"HTTP/1.1".starts_with(version) || b"HTTP/1.0".starts_with(version);
        return if plausible && buf.len() < MAX_REQUEST_LINE {
            Sniff::More
        } else {
            Sniff::Not
        };
    }
    match version {
        b"HTTP/1.1" if target_len > 0 => Sniff::Found("http/1.1"),
        b"HTTP/1.0" if target_len > 0 => Sniff::Found("http/1.0"),
        _ => Sniff::Not,
    }
}

/// RFC 9110 `tchar`.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What the TLS inspector reads from a ClientHello.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ClientHello {
    /// The `server_name` extension's host name.
    pub(crate) server_name: Option<String>,
    /// The `application_layer_protocol_negotiation` extension's protocols.
    pub(crate) alpn: Vec<String>,
}

/// The largest TLS record (2^14 bytes of plaintext plus expansion allowed by RFC 8446).
const MAX_RECORD: usize = (1 << 14) + 256;

/// Envoy's TLS inspector: a TLS handshake record holding a ClientHello, with its server name
/// and offered ALPN protocols. Only the first record is read: a ClientHello split over
/// several records counts as TLS without a name.
pub(crate) fn client_hello(buf: &[u8]) -> Sniff<ClientHello> {
    // A handshake record of TLS 1.x (record versions 3.1 to 3.3; 3.0 would be SSL 3).
    match buf {
        [] => return Sniff::More,
        [0x16] | [0x16, 0x03] => return Sniff::More,
        [0x16, 0x03, minor, ..] if (1..=3).contains(minor) => {}
        _ => return Sniff::Not,
    }
    if buf.len() < 5 {
        return Sniff::More;
    }
    let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    if len > MAX_RECORD {
        return Sniff::Not;
    }
    if buf.len() < 5 + len {
        return Sniff::More;
    }
    let record = &buf[5..5 + len];
    if record.first() != Some(&1) {
        return Sniff::Not; // not a ClientHello
    }
    Sniff::Found(parse_hello(record.get(4..).unwrap_or(&[])).unwrap_or_default())
}

/// A ClientHello body's server name and ALPN, or `None` when it is cut short or malformed.
fn parse_hello(body: &[u8]) -> Option<ClientHello> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // version, random
    let n = usize::from(r.u8()?);
    r.take(n)?; // session id
    let n = usize::from(r.u16()?);
    r.take(n)?; // cipher suites
    let n = usize::from(r.u8()?);
    r.take(n)?; // compression methods
    let mut hello = ClientHello::default();
    if r.0.is_empty() {
        return Some(hello); // no extensions
    }
    let n = usize::from(r.u16()?);
    let mut exts = Reader(r.take(n)?);
    while !exts.0.is_empty() {
        let ty = exts.u16()?;
        let n = usize::from(exts.u16()?);
        let mut data = Reader(exts.take(n)?);
        match ty {
            0 => {
                let n = usize::from(data.u16()?);
                let mut names = Reader(data.take(n)?);
                while !names.0.is_empty() {
                    let kind = names.u8()?;
                    let n = usize::from(names.u16()?);
                    let name = names.take(n)?;
                    if kind == 0 {
                        let name = std::str::from_utf8(name).ok()?;
                        hello.server_name = Some(name.to_ascii_lowercase());
                    }
                }
            }
            16 => {
                let n = usize::from(data.u16()?);
                let mut protos = Reader(data.take(n)?);
                while !protos.0.is_empty() {
                    let n = usize::from(protos.u8()?);
                    let p = protos.take(n)?;
                    hello.alpn.push(String::from_utf8_lossy(p).into_owned());
                }
            }
            _ => {}
        }
    }
    Some(hello)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

/// What the inspectors found, and the bytes they read.
#[derive(Debug, Default)]
pub(crate) struct Inspected {
    pub(crate) prefix: Bytes,
    pub(crate) tls: Option<ClientHello>,
    pub(crate) http: Option<&'static str>,
}

/// Runs the enabled inspectors on `stream` until each has decided, the client stops sending,
/// or `timeout` passes (zero: no limit). `None` when the timeout passed and the listener does
/// not continue without the inspectors' verdict.
pub(crate) async fn inspect(
    stream: &mut TcpStream,
    http: bool,
    tls: bool,
    timeout: Duration,
    continue_on_timeout: bool,
) -> Option<Inspected> {
    let mut buf = BytesMut::new();
    let mut found = Inspected::default();
    let run = async {
        let (mut http_left, mut tls_left) = (http, tls);
        loop {
            if tls_left {
                match client_hello(&buf) {
                    Sniff::More => {}
                    Sniff::Found(h) => {
                        found.tls = Some(h);
                        tls_left = false;
                        http_left = false; // TLS is not plain HTTP
                    }
                    Sniff::Not => tls_left = false,
                }
            }
            if http_left {
                match http_protocol(&buf) {
                    Sniff::More => {}
                    Sniff::Found(p) => {
                        found.http = Some(p);
                        http_left = false;
                        tls_left = false;
                    }
                    Sniff::Not => http_left = false,
                }
            }
            if !(http_left || tls_left) {
                return;
            }
            buf.reserve(4096);
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let done = if timeout.is_zero() {
        run.await;
        true
    } else {
        tokio::time::timeout(timeout, run).await.is_ok()
    };
    if !done && !continue_on_timeout {
        return None;
    }
    found.prefix = buf.freeze();
    Some(found)
}

/// The connection's destination before an iptables `REDIRECT` (`SO_ORIGINAL_DST`), or `None`
/// when the kernel has none for it (the connection was not redirected).
pub(crate) fn original_dst(stream: &TcpStream, local: SocketAddr) -> Option<SocketAddr> {
    #[cfg(target_os = "linux")]
    {
        let sock = socket2::SockRef::from(stream);
        let addr = if local.is_ipv4() {
            sock.original_dst_v4()
        } else {
            sock.original_dst_v6()
        };
        addr.ok().and_then(|a| a.as_socket())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (stream, local);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_inspector_tells_http_from_the_rest() {
        assert_eq!(
            http_protocol(b"GET / HTTP/1.1\r\n"),
            Sniff::Found("http/1.1")
        );
        assert_eq!(
            http_protocol(b"POST /x?y HTTP/1.0\n"),
            Sniff::Found("http/1.0")
        );
        assert_eq!(http_protocol(H2_PREFACE), Sniff::Found("h2c"));
        // Cut short: wait for more.
        assert_eq!(http_protocol(b"PRI * HT"), Sniff::More);
        assert_eq!(http_protocol(b"GET /index.ht"), Sniff::More);
        assert_eq!(http_protocol(b"GET / HTTP/1"), Sniff::More);
        assert_eq!(http_protocol(b""), Sniff::More);
        // Not HTTP: a line protocol, TLS, a bad version, a space too many.
        assert_eq!(http_protocol(b"hello\n"), Sniff::Not);
        assert_eq!(http_protocol(b"\x16\x03\x01\x02\x00"), Sniff::Not);
        assert_eq!(http_protocol(b"GET / HTTP/2.0\r\n"), Sniff::Not);
        assert_eq!(http_protocol(b"GET  / HTTP/1.1\r\n"), Sniff::Not);
        assert_eq!(http_protocol(b"GET / SPDY"), Sniff::Not);
        assert_eq!(http_protocol(&[b'A'; MAX_REQUEST_LINE]), Sniff::Not);
    }

    /// A ClientHello record with `sni` and `alpn`, built field by field as RFC 8446 lays it
    /// out.
    fn hello(sni: Option<&str>, alpn: &[&str]) -> Vec<u8> {
        let mut exts = Vec::new();
        if let Some(name) = sni {
            let mut list = vec![0u8];
            list.extend((name.len() as u16).to_be_bytes());
            list.extend(name.as_bytes());
            exts.extend(0u16.to_be_bytes());
            exts.extend(((list.len() + 2) as u16).to_be_bytes());
            exts.extend((list.len() as u16).to_be_bytes());
            exts.extend(list);
        }
        if !alpn.is_empty() {
            let mut list = Vec::new();
            for p in alpn {
                list.push(p.len() as u8);
                list.extend(p.as_bytes());
            }
            exts.extend(16u16.to_be_bytes());
            exts.extend(((list.len() + 2) as u16).to_be_bytes());
            exts.extend((list.len() as u16).to_be_bytes());
            exts.extend(list);
        }
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend(2u16.to_be_bytes());
        body.extend([0x13, 0x01]);
        body.extend([1, 0]); // compression: null
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    #[test]
    fn tls_inspector_reads_the_server_name_and_alpn() {
        let rec = hello(Some("Reviews.Example.com"), &["h2", "http/1.1"]);
        assert_eq!(
            client_hello(&rec),
            Sniff::Found(ClientHello {
                server_name: Some("reviews.example.com".into()),
                alpn: vec!["h2".into(), "http/1.1".into()],
            })
        );
        assert_eq!(
            client_hello(&hello(None, &[])),
            Sniff::Found(ClientHello::default())
        );
        for cut in [1, 2, 4, 5, rec.len() - 1] {
            assert_eq!(client_hello(&rec[..cut]), Sniff::More, "cut at {cut}");
        }
        assert_eq!(client_hello(b"GET / HTTP/1.1\r\n"), Sniff::Not);
        assert_eq!(client_hello(&[0x16, 0x03, 0x00, 0, 1, 1]), Sniff::Not);
    }

    #[test]
    fn tls_inspector_survives_any_bytes() {
        // Every truncation and every single-byte corruption of a real hello: a verdict, no
        // panic.
        let rec = hello(Some("a.example"), &["h2"]);
        for i in 0..rec.len() {
            let _ = client_hello(&rec[..i]);
            for b in [0u8, 1, 0x7f, 0xff] {
                let mut bad = rec.clone();
                bad[i] = b;
                let _ = client_hello(&bad);
            }
        }
    }
}
