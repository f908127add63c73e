//! Header rules of the HTTP connection manager: hop-by-hop removal, forwarding headers,
//! request ids and the trust rules for `x-envoy-*` control headers (SEMANTICS.md §3.13).

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use mesh_core::config::HttpConnectionManager;

/// Control headers removed from every request that is not internal (Envoy's
/// `mutateRequestHeaders`).
static UNTRUSTED_CONTROL: [HeaderName; 14] = [
    HeaderName::from_static("x-envoy-retriable-status-codes"),
    HeaderName::from_static("x-envoy-retriable-header-names"),
    HeaderName::from_static("x-envoy-retry-on"),
    HeaderName::from_static("x-envoy-retry-grpc-on"),
    HeaderName::from_static("x-envoy-max-retries"),
    HeaderName::from_static("x-envoy-upstream-alt-stat-name"),
    HeaderName::from_static("x-envoy-upstream-rq-timeout-ms"),
    HeaderName::from_static("x-envoy-upstream-rq-per-try-timeout-ms"),
    HeaderName::from_static("x-envoy-upstream-rq-timeout-alt-response"),
    HeaderName::from_static("x-envoy-expected-rq-timeout-ms"),
    HeaderName::from_static("x-envoy-force-trace"),
    HeaderName::from_static("x-envoy-ip-tags"),
    HeaderName::from_static("x-envoy-original-url"),
    HeaderName::from_static("x-envoy-hedge-on-per-try-timeout"),
];

/// Removed from edge requests as well.
static EDGE_ONLY: [HeaderName; 3] = [
    HeaderName::from_static("x-envoy-decorator-operation"),
    HeaderName::from_static("x-envoy-downstream-service-cluster"),
    HeaderName::from_static("x-envoy-downstream-service-node"),
];

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
// Looked up on every request: a `HeaderName` is hashed as it is, where a `&str` key would be
// parsed and validated first on each lookup (a tenth of the request path's instructions).
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) static X_ENVOY_INTERNAL: HeaderName = HeaderName::from_static("x-envoy-internal");
pub(crate) static X_ENVOY_EXTERNAL_ADDRESS: HeaderName =
    HeaderName::from_static("x-envoy-external-address");
pub(crate) static X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");
pub(crate) static X_ENVOY_ORIGINAL_PATH: HeaderName =
    HeaderName::from_static("x-envoy-original-path");
pub(crate) static X_ENVOY_OVERLOADED: HeaderName = HeaderName::from_static("x-envoy-overloaded");

/// Up to this many names, comparing a map's names costs less than hashing a name to look it
/// up (a request's map holds about six).
const SCAN_MAX: usize = 8;

/// Whether `headers` holds `name`: its names compared one by one when the map is small
/// (most lookups on the request path are for headers that most requests do not carry, and
/// each hashed lookup costs more than the comparisons), else looked up.
pub(crate) fn has(headers: &HeaderMap, name: &HeaderName) -> bool {
    if headers.keys_len() <= SCAN_MAX {
        headers.keys().any(|n| n == name)
    } else {
        headers.contains_key(name)
    }
}

/// `headers.get(name)`, with no hashing when the map is small and `name` is not in it (see
/// [`has`]).
pub(crate) fn get<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    if has(headers, name) {
        headers.get(name)
    } else {
        None
    }
}

/// What [`sanitize_request`] found out about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Downstream {
    /// Internal: it carries `x-envoy-internal: true` and keeps its control headers. For any
    /// other request they are gone, so later stages can trust what is left.
    pub(crate) internal: bool,
    /// The trusted client address: the peer, or the entry of `x-forwarded-for` that
    /// `xff_num_trusted_hops` points at.
    pub(crate) client: IpAddr,
}

/// Applies the connection manager's header rules to a downstream request (Envoy's
/// `ConnectionManagerUtility::mutateRequestHeaders`).
pub(crate) fn sanitize_request(
    headers: &mut HeaderMap,
    hcm: &HttpConnectionManager,
    internal_only: &[HeaderName],
    remote: SocketAddr,
    scheme: &'static str,
    new_request_id: impl FnOnce() -> HeaderValue,
) -> Downstream {
    let peer = remote.ip().to_canonical();
    let prior: Option<String> = get(headers, &X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .map(str::to_owned);
    let hops = hcm.xff_num_trusted_hops as usize;
    // The address `n` entries from the right of the incoming XFF (1 is the last), if valid.
    let from_right = |n: usize| -> Option<IpAddr> {
        let list: Vec<&str> = prior.as_deref()?.split(',').map(str::trim).collect();
        let i = list.len().checked_sub(n)?;
        list[i].parse().ok()
    };
    let client = if hcm.use_remote_address {
        if hops > 0 {
            from_right(hops).unwrap_or(peer)
        } else {
            peer
        }
    } else {
        from_right(hops + 1).unwrap_or(peer)
    };
    let internal = hcm.use_remote_address
        && prior.is_none()
        && hcm
            .internal_address_config
            .cidr_ranges
            .iter()
            .any(|r| r.contains(peer));
    let edge = hcm.use_remote_address && !internal;

    if hcm.use_remote_address {
        let value = match &prior {
            Some(prev) => format!("{prev},{peer}"),
            None => peer.to_string(),
        };
        if let Some(v) = generated(value.as_bytes()) {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
    }
    // A prior hop's x-forwarded-proto is trusted only with trusted hops.
    if hops == 0 || !has(headers, &X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
    }

    if internal {
        headers.insert(X_ENVOY_INTERNAL.clone(), HeaderValue::from_static("true"));
    } else {
        if has(headers, &X_ENVOY_INTERNAL) {
            headers.remove(&X_ENVOY_INTERNAL);
        }
        // Most requests carry no control header: one pass over their names spares a lookup
        // per control header.
        if has_envoy_header(headers) {
            for name in &UNTRUSTED_CONTROL {
                headers.remove(name);
            }
        }
        for name in internal_only {
            headers.remove(name);
        }
    }
    if edge {
        if has_envoy_header(headers) {
            for name in &EDGE_ONLY {
                headers.remove(name);
            }
        }
        if let Some(v) = generated(client.to_string().as_bytes()) {
            headers.insert(X_ENVOY_EXTERNAL_ADDRESS.clone(), v);
        }
    }

    let regenerate = edge && !hcm.preserve_external_request_id;
    if regenerate || (hcm.generate_request_id && !has(headers, &X_REQUEST_ID)) {
        headers.insert(X_REQUEST_ID.clone(), new_request_id());
    }
    Downstream { internal, client }
}

/// How many headers [`sanitize_request`] and the router add to a request under `hcm`, at
/// most: `x-forwarded-proto`; with `use_remote_address`, `x-forwarded-for` and
/// `x-envoy-external-address` or `x-envoy-internal`; `x-request-id`;
/// `x-envoy-expected-rq-timeout-ms`; and `host` for an HTTP/2 request, which carries its
/// authority in the URI.
pub(crate) fn added_request_headers(
    hcm: &mesh_core::config::HttpConnectionManager,
    version: http::Version,
) -> usize {
    1 + 2 * usize::from(hcm.use_remote_address)
        + usize::from(hcm.generate_request_id || hcm.use_remote_address)
        + usize::from(!hcm.suppress_envoy_headers)
        + usize::from(version == http::Version::HTTP_2)
}

/// How many headers the proxy adds to every upstream response, at most:
/// `x-envoy-upstream-service-time` and `server`. Maps are reserved for these and no more:
/// the attempt count and a cookie, added only when configured, grow the map themselves,
/// since reserving for them would double a small map's table (a 1.2 KB reallocation) every
/// time.
pub(crate) const ADDED_RESPONSE_HEADERS: usize = 2;

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): `connection` and the headers it names,
/// `keep-alive`, `proxy-connection`, `transfer-encoding`, `te` (except `trailers`) and, unless
/// an upgrade is being forwarded, `upgrade`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if !has_hop_by_hop(headers) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == header::UPGRADE))
        .collect();
    for n in listed {
        headers.remove(n);
    }
    headers.remove(header::CONNECTION);
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(header::TRANSFER_ENCODING);
    if !keep_upgrade {
        headers.remove(header::UPGRADE);
    }
    let te_trailers = headers.get_all(header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    });
    headers.remove(header::TE);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Whether any header name starts with `x-envoy-`.
fn has_envoy_header(headers: &HeaderMap) -> bool {
    headers.keys().any(|k| k.as_str().starts_with("x-envoy-"))
}

/// Whether `headers` hold any hop-by-hop header (the common case on the request path, once
/// the connection manager has stripped them, is none: a few lookups and nothing else).
fn has_hop_by_hop(headers: &HeaderMap) -> bool {
    // A few names compare faster than six hashed lookups.
    if headers.keys_len() <= SCAN_MAX {
        return headers.keys().any(|n| {
            n == header::CONNECTION
                || n == header::TRANSFER_ENCODING
                || n == header::TE
                || n == header::UPGRADE
                || n == KEEP_ALIVE
                || n == PROXY_CONNECTION
        });
    }
    headers.contains_key(header::CONNECTION)
        || headers.contains_key(header::TRANSFER_ENCODING)
        || headers.contains_key(header::TE)
        || headers.contains_key(header::UPGRADE)
        || headers.contains_key(&KEEP_ALIVE)
        || headers.contains_key(&PROXY_CONNECTION)
}

/// Removes a downstream request's hop-by-hop headers as it arrives, before the connection
/// manager adds its own (Envoy strips them in its codec). An upgrade request keeps
/// `Upgrade` and `Connection: upgrade` for the router to forward. `Host` and
/// `Content-Length` stay even when `Connection` names them: the request cannot be routed or
/// framed without them.
pub(crate) fn strip_downstream_hop_by_hop(headers: &mut HeaderMap) {
    if !has_hop_by_hop(headers) {
        return;
    }
    let upgrade = requested_upgrade(headers).is_some();
    let host = headers.get(header::HOST).cloned();
    let length = headers.get(header::CONTENT_LENGTH).cloned();
    strip_hop_by_hop(headers, upgrade);
    for (name, value) in [(header::HOST, host), (header::CONTENT_LENGTH, length)] {
        if let Some(v) = value
            && !headers.contains_key(&name)
        {
            headers.insert(name, v);
        }
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Why a downstream request head is refused before it is routed, as Envoy's codec and
/// connection manager refuse it (a 400 with this text): `None` when it may go on.
///
/// - two `Host` headers (RFC 9112 §3.2: a server must answer 400);
/// - no authority at all, neither a `Host` header nor an absolute-form target or
///   `:authority` (an HTTP/1.1 request must carry Host);
/// - an authority with userinfo (`user:pw@host`, which the proxy would otherwise forward as
///   part of Host) or with a character no authority has (space, `/`, `\`, a control byte).
pub(crate) fn check_request(parts: &http::request::Parts) -> Option<&'static str> {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Some("multiple host headers");
    }
    if let Some(a) = parts.uri.authority()
        && !valid_authority(a.as_str().as_bytes())
    {
        return Some("invalid authority in the request target");
    }
    match host {
        Some(h) if !valid_authority(h.as_bytes()) => Some("invalid host header"),
        Some(_) => None,
        None if parts.uri.authority().is_none() => Some("missing host header"),
        None => None,
    }
}

/// An RFC 3986 authority without userinfo: `host[:port]`, the host a reg-name (unreserved,
/// percent-encoded and sub-delim characters), an IPv4 address or a bracketed IP literal.
fn valid_authority(a: &[u8]) -> bool {
    !a.is_empty()
        && a.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'['
                        | b']'
                )
        })
}

/// The upgrade a request asks for (`Connection: upgrade` plus `Upgrade: X`), lower-cased.
pub(crate) fn requested_upgrade(headers: &HeaderMap) -> Option<String> {
    if !has(headers, &header::CONNECTION) {
        return None;
    }
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return None;
    }
    let up = headers.get(header::UPGRADE)?.to_str().ok()?;
    Some(up.trim().to_ascii_lowercase())
}

/// Removes the port from a `Host` value, honouring IPv6 literals.
pub(crate) fn strip_port(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let after = &rest[end + 1..];
            if let Some(port) = after.strip_prefix(':') {
                return (&host[..end + 2], Some(port));
            }
        }
        return (host, None);
    }
    match host.rfind(':') {
        Some(i) if host[..i].find(':').is_none() => (&host[..i], Some(&host[i + 1..])),
        _ => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::config::CidrRange;

    fn remote() -> SocketAddr {
        "10.1.2.3:5555".parse().unwrap()
    }

    #[test]
    fn the_reserved_room_covers_what_sanitizing_adds() {
        // The router adds one more (`x-envoy-expected-rq-timeout-ms`) unless Envoy's headers
        // are suppressed; HTTP/1.1 adds no Host.
        for (use_remote_address, generate_request_id, suppress) in [
            (false, true, false),
            (true, true, false),
            (true, false, true),
            (false, false, true),
        ] {
            let hcm = HttpConnectionManager {
                use_remote_address,
                generate_request_id,
                suppress_envoy_headers: suppress,
                ..HttpConnectionManager::default()
            };
            let mut h = HeaderMap::new();
            sanitize_request(&mut h, &hcm, &[], remote(), "http", || {
                HeaderValue::from_static("id")
            });
            let router = usize::from(!suppress);
            assert_eq!(
                h.len() + router,
                added_request_headers(&hcm, http::Version::HTTP_11),
                "{hcm:?}"
            );
        }
    }

    #[test]
    fn edge_appends_xff_and_strips_control_headers() {
        let hcm = HttpConnectionManager {
            use_remote_address: true,
            ..HttpConnectionManager::default()
        };
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.insert("x-envoy-retry-on", HeaderValue::from_static("5xx"));
        h.insert("x-envoy-internal", HeaderValue::from_static("true"));
        h.insert("x-request-id", HeaderValue::from_static("client-chosen"));
        let d = sanitize_request(&mut h, &hcm, &[], remote(), "http", || {
            HeaderValue::from_static("new-id")
        });
        assert!(!d.internal);
        assert_eq!(d.client.to_string(), "10.1.2.3");
        assert_eq!(h["x-envoy-external-address"], "10.1.2.3");
        assert_eq!(h["x-forwarded-for"], "1.1.1.1,10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert!(!h.contains_key("x-envoy-retry-on"));
        assert!(!h.contains_key("x-envoy-internal"));
        assert_eq!(h["x-request-id"], "new-id", "edge requests get a fresh id");
    }

    #[test]
    fn internal_peer_keeps_control_headers() {
        let mut hcm = HttpConnectionManager {
            use_remote_address: true,
            ..HttpConnectionManager::default()
        };
        hcm.internal_address_config.cidr_ranges.push(CidrRange {
            address_prefix: "10.0.0.0".parse().unwrap(),
            prefix_len: 8,
        });
        let mut h = HeaderMap::new();
        h.insert(
            "x-envoy-upstream-rq-timeout-ms",
            HeaderValue::from_static("100"),
        );
        h.insert("x-request-id", HeaderValue::from_static("keep-me"));
        let d = sanitize_request(&mut h, &hcm, &[], remote(), "http", || unreachable!());
        assert!(d.internal);
        assert!(!h.contains_key("x-envoy-external-address"));
        assert_eq!(h["x-envoy-internal"], "true");
        assert_eq!(h["x-envoy-upstream-rq-timeout-ms"], "100");
        assert_eq!(h["x-request-id"], "keep-me");
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
    }

    #[test]
    fn sidecar_default_keeps_xff_and_request_id_but_strips_control() {
        let hcm = HttpConnectionManager::default();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.insert("x-envoy-max-retries", HeaderValue::from_static("9"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let d = sanitize_request(&mut h, &hcm, &[], remote(), "http", || {
            HeaderValue::from_static("generated")
        });
        assert_eq!(
            d.client.to_string(),
            "1.1.1.1",
            "the last XFF entry is the client"
        );
        assert_eq!(h["x-forwarded-for"], "1.1.1.1");
        assert_eq!(
            h["x-forwarded-proto"], "http",
            "untrusted without trusted hops"
        );
        assert!(!h.contains_key("x-envoy-max-retries"));
        assert_eq!(h["x-request-id"], "generated");
    }

    #[test]
    fn trusted_hops_pick_the_client_from_xff_and_keep_xfp() {
        let hcm = HttpConnectionManager {
            use_remote_address: true,
            xff_num_trusted_hops: 1,
            ..HttpConnectionManager::default()
        };
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("9.9.9.9, 2.2.2.2"),
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let d = sanitize_request(&mut h, &hcm, &[], remote(), "http", || {
            HeaderValue::from_static("id")
        });
        assert_eq!(d.client.to_string(), "2.2.2.2");
        assert_eq!(h["x-envoy-external-address"], "2.2.2.2");
        assert_eq!(h["x-forwarded-for"], "9.9.9.9, 2.2.2.2,10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "https");

        let hcm = HttpConnectionManager {
            xff_num_trusted_hops: 1,
            ..HttpConnectionManager::default()
        };
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("9.9.9.9,2.2.2.2"),
        );
        let d = sanitize_request(&mut h, &hcm, &[], remote(), "http", || {
            HeaderValue::from_static("id")
        });
        assert_eq!(
            d.client.to_string(),
            "9.9.9.9",
            "(hops + 1)th from the right"
        );
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers, deflate"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 2);
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["x-keep"], "1");
    }

    #[test]
    fn ports_are_split_from_hosts() {
        assert_eq!(strip_port("a.com:80"), ("a.com", Some("80")));
        assert_eq!(strip_port("a.com"), ("a.com", None));
        assert_eq!(strip_port("[::1]:8080"), ("[::1]", Some("8080")));
        assert_eq!(strip_port("[::1]"), ("[::1]", None));
    }
}

/// Up to this many bytes, a generated header value lives in one allocation.
const INLINE: usize = 62;

/// The bytes of a short generated header value, inline.
struct Inline {
    len: u8,
    buf: [u8; INLINE],
}

impl AsRef<[u8]> for Inline {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// A header value the proxy generates (request and trace ids, `x-forwarded-for`, …), `None`
/// when `bytes` is not a valid value. A short one is one allocation whose clones share it:
/// a request kept for retries clones its headers for every attempt, and a value made with
/// `HeaderValue::from_str` would be copied into a new shared buffer on its first clone.
pub(crate) fn generated(bytes: &[u8]) -> Option<HeaderValue> {
    if bytes.len() <= INLINE {
        let mut buf = [0u8; INLINE];
        buf[..bytes.len()].copy_from_slice(bytes);
        let owner = Inline {
            len: bytes.len() as u8,
            buf,
        };
        HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(owner)).ok()
    } else {
        HeaderValue::from_bytes(bytes).ok()
    }
}

/// A generated header value holding `v` in decimal.
pub(crate) fn generated_u64(v: u64) -> HeaderValue {
    if let Some(s) = usize::try_from(v).ok().and_then(|i| SMALL.get(i)) {
        // No allocation for the values most requests carry (milliseconds of a local call).
        return HeaderValue::from_static(s);
    }
    // A route's timeout repeats request after request: this thread's last one is kept, and a
    // clone of it shares its bytes.
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u64, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((n, hv)) = &*last
            && *n == v
        {
            return hv.clone();
        }
        let mut buf = itoa::Buffer::new();
        let hv =
            generated(buf.format(v).as_bytes()).unwrap_or_else(|| HeaderValue::from_static("0"));
        *last = Some((v, hv.clone()));
        hv
    })
}

/// The decimal spellings of 0 to 99.
static SMALL: [&str; 100] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32",
    "33", "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48",
    "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61", "62", "63", "64",
    "65", "66", "67", "68", "69", "70", "71", "72", "73", "74", "75", "76", "77", "78", "79", "80",
    "81", "82", "83", "84", "85", "86", "87", "88", "89", "90", "91", "92", "93", "94", "95", "96",
    "97", "98", "99",
];

#[cfg(test)]
mod generated_tests {
    use super::*;

    #[test]
    fn generated_values_hold_their_bytes_and_share_clones() {
        let v = generated(b"10.1.2.3, 192.0.2.1").unwrap();
        assert_eq!(v, "10.1.2.3, 192.0.2.1");
        assert_eq!(v.clone().as_bytes().as_ptr(), v.as_bytes().as_ptr());
        assert!(generated(b"bad\nvalue").is_none());
        let long = "x".repeat(200);
        assert_eq!(generated(long.as_bytes()).unwrap(), long.as_str());
        assert_eq!(generated_u64(0), "0");
        assert_eq!(generated_u64(15000), "15000");
        assert_eq!(generated_u64(u64::MAX), "18446744073709551615");
    }
}
