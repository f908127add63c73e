//! Trace context: W3C `traceparent` / `tracestate` and B3 (`x-b3-*`) headers, handled only
//! when the connection manager has a `tracing` config (as in Envoy: without one, trace
//! headers pass through untouched and none are invented).
//!
//! A request that arrives with a trace keeps its trace id; the proxy becomes a child span (a
//! new span id, the incoming one as parent) and writes both formats, so W3C and Zipkin
//! upstreams see the same trace. A request without one starts a trace whose id is its
//! `x-request-id` (a UUID's 32 hex digits are a valid trace id), which ties the two together.
//! `tracestate` passes through unchanged; the sampling decision is kept, new traces are
//! sampled.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::headers::{X_REQUEST_ID, generated};
use crate::random;

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
static B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
static B3_PARENT: HeaderName = HeaderName::from_static("x-b3-parentspanid");
static B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
static B3_SINGLE: HeaderName = HeaderName::from_static("b3");

/// An incoming trace: 32 hex digits of trace id, the parent span, and whether it is sampled.
struct Incoming {
    trace_id: [u8; 32],
    parent: Option<[u8; 16]>,
    sampled: bool,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0')
}

/// `s` (hex, at most `N` digits) lower-cased and left-padded with zeros to `N` digits.
fn hex_id<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b'0'; N];
    let s = &s.as_bytes()[s.len().saturating_sub(N)..];
    out[N - s.len()..].copy_from_slice(s);
    out.make_ascii_lowercase();
    out
}

/// `v` as 16 lower-case hex digits.
fn hex16(v: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

fn header<'a>(h: &'a HeaderMap, n: &HeaderName) -> Option<&'a str> {
    h.get(n).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// `00-<trace 32>-<parent 16>-<flags 2>`; other versions are read by the same layout.
fn from_traceparent(h: &HeaderMap) -> Option<Incoming> {
    let v = header(h, &TRACEPARENT)?;
    let mut it = v.split('-');
    let (version, trace, parent, flags) = (it.next()?, it.next()?, it.next()?, it.next()?);
    let version_ok = version.len() == 2
        && version.bytes().all(|b| b.is_ascii_hexdigit())
        && !version.eq_ignore_ascii_case("ff");
    if !version_ok {
        return None;
    }
    if !is_hex(trace, 32) || !is_hex(parent, 16) || flags.len() != 2 {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(Incoming {
        trace_id: hex_id(trace),
        parent: Some(hex_id(parent)),
        sampled: flags & 1 == 1,
    })
}

/// Multi-header B3, or the single `b3: trace-span[-sampled[-parent]]` header.
fn from_b3(h: &HeaderMap) -> Option<Incoming> {
    if let Some(t) = header(h, &B3_TRACE_ID)
        && (is_hex(t, 32) || is_hex(t, 16))
    {
        let span = header(h, &B3_SPAN_ID).filter(|s| is_hex(s, 16));
        let sampled = header(h, &B3_SAMPLED).is_none_or(|s| s == "1" || s == "true");
        return Some(Incoming {
            trace_id: hex_id(t),
            parent: span.map(hex_id),
            sampled,
        });
    }
    let single = header(h, &B3_SINGLE)?;
    let mut it = single.split('-');
    let (t, span) = (it.next()?, it.next()?);
    if !(is_hex(t, 32) || is_hex(t, 16)) || !is_hex(span, 16) {
        return None;
    }
    let sampled = it.next().is_none_or(|s| s == "1" || s == "d");
    Some(Incoming {
        trace_id: hex_id(t),
        parent: Some(hex_id(span)),
        sampled,
    })
}

/// The 32 hex digits of a UUID-shaped `x-request-id`, when it has them and they are not all
/// zero.
fn from_request_id(h: &HeaderMap) -> Option<[u8; 32]> {
    let id = header(h, &X_REQUEST_ID)?;
    let mut out = [0u8; 32];
    let mut n = 0;
    for b in id.bytes().filter(|b| *b != b'-') {
        if n == 32 || !b.is_ascii_hexdigit() {
            return None;
        }
        out[n] = b.to_ascii_lowercase();
        n += 1;
    }
    (n == 32 && out.iter().any(|b| *b != b'0')).then_some(out)
}

/// Propagates or starts the trace on a request about to be routed.
pub(crate) fn propagate(h: &mut HeaderMap, sample_percent: f64) {
    let incoming = from_traceparent(h).or_else(|| from_b3(h));
    let (trace_id, parent, sampled) = match incoming {
        Some(i) => (i.trace_id, i.parent, i.sampled),
        None => {
            let id = from_request_id(h).unwrap_or_else(|| {
                let mut id = [0u8; 32];
                id[..16].copy_from_slice(&hex16(random::next_u64()));
                id[16..].copy_from_slice(&hex16(random::next_u64()));
                id
            });
            // A new trace is sampled with the configured probability.
            let draw = (random::next_u64() % 10_000) as f64 / 100.0;
            (id, None, draw < sample_percent)
        }
    };
    let span = hex16(random::next_u64() | 1);
    let mut tp = [0u8; 55];
    tp[..3].copy_from_slice(b"00-");
    tp[3..35].copy_from_slice(&trace_id);
    tp[35] = b'-';
    tp[36..52].copy_from_slice(&span);
    tp[52..].copy_from_slice(if sampled { b"-01" } else { b"-00" });
    let set = |h: &mut HeaderMap, n: &HeaderName, v: &[u8]| {
        if let Some(v) = generated(v) {
            h.insert(n.clone(), v);
        }
    };
    set(h, &TRACEPARENT, &tp);
    set(h, &B3_TRACE_ID, &trace_id);
    set(h, &B3_SPAN_ID, &span);
    match parent {
        Some(p) => set(h, &B3_PARENT, &p),
        None => {
            h.remove(&B3_PARENT);
        }
    }
    h.insert(
        B3_SAMPLED.clone(),
        HeaderValue::from_static(if sampled { "1" } else { "0" }),
    );
    h.remove(&B3_SINGLE);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(h: &HeaderMap, n: &str) -> String {
        h.get(n)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn a_new_trace_takes_the_request_id() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-request-id",
            HeaderValue::from_static("0af76519-16cd-43dd-8448-eb211c80319c"),
        );
        propagate(&mut h, 100.0);
        let tp = get(&h, "traceparent");
        assert!(
            tp.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
            "{tp}"
        );
        assert!(tp.ends_with("-01"));
        assert_eq!(get(&h, "x-b3-traceid"), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(&tp[36..52], get(&h, "x-b3-spanid"));
        assert!(h.get("x-b3-parentspanid").is_none());
    }

    #[test]
    fn an_incoming_w3c_trace_continues_as_a_child() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        );
        h.insert("tracestate", HeaderValue::from_static("congo=t61rcWkgMzE"));
        propagate(&mut h, 100.0);
        let tp = get(&h, "traceparent");
        assert!(
            tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{tp}"
        );
        assert!(!tp.contains("00f067aa0ba902b7"), "a new span id: {tp}");
        assert!(tp.ends_with("-00"), "the sampling decision is kept");
        assert_eq!(get(&h, "x-b3-parentspanid"), "00f067aa0ba902b7");
        assert_eq!(get(&h, "x-b3-sampled"), "0");
        assert_eq!(get(&h, "tracestate"), "congo=t61rcWkgMzE");
    }

    #[test]
    fn an_incoming_b3_trace_continues_and_gains_w3c() {
        let mut h = HeaderMap::new();
        h.insert("x-b3-traceid", HeaderValue::from_static("80f198ee56343ba8"));
        h.insert("x-b3-spanid", HeaderValue::from_static("e457b5a2e4d86bd1"));
        h.insert("x-b3-sampled", HeaderValue::from_static("1"));
        propagate(&mut h, 100.0);
        assert_eq!(get(&h, "x-b3-traceid"), "000000000000000080f198ee56343ba8");
        assert_eq!(get(&h, "x-b3-parentspanid"), "e457b5a2e4d86bd1");
        assert_ne!(get(&h, "x-b3-spanid"), "e457b5a2e4d86bd1");
        assert!(get(&h, "traceparent").starts_with("00-000000000000000080f198ee56343ba8-"));
    }

    #[test]
    fn garbage_trace_headers_start_a_new_trace() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-zz-00f067aa0ba902b7-01"),
        );
        h.insert(
            "x-b3-traceid",
            HeaderValue::from_static("00000000000000000000000000000000"),
        );
        propagate(&mut h, 100.0);
        let tp = get(&h, "traceparent");
        assert_eq!(tp.len(), 55, "{tp}");
        assert!(!tp.contains("zz"));
    }
}
