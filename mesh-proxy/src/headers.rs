//! Header rules of the HTTP connection manager: hop-by-hop removal, forwarding headers,
//! request ids and the trust rules for `x-envoy-*` control headers (SEMANTICS.md §3.13).

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use mesh_core::config::HttpConnectionManager;

/// Control headers removed from every request that is not internal (Envoy's
/// `mutateRequestHeaders`).
const UNTRUSTED_CONTROL: &[&str] = &[
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-ip-tags",
    "x-envoy-original-url",
    "x-envoy-hedge-on-per-try-timeout",
];

/// Removed from edge requests as well.
const EDGE_ONLY: &[&str] = &[
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
];

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) static X_ENVOY_INTERNAL: HeaderName = HeaderName::from_static("x-envoy-internal");
pub(crate) static X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");
pub(crate) static X_ENVOY_ORIGINAL_PATH: HeaderName =
    HeaderName::from_static("x-envoy-original-path");
pub(crate) static X_ENVOY_OVERLOADED: HeaderName = HeaderName::from_static("x-envoy-overloaded");

/// Applies the connection manager's header rules to a downstream request. Returns whether the
/// request is internal (then it carries `x-envoy-internal: true` and keeps its control
/// headers; otherwise they are gone, so later stages can trust what is left).
pub(crate) fn sanitize_request(
    headers: &mut HeaderMap,
    hcm: &HttpConnectionManager,
    internal_only: &[HeaderName],
    remote: SocketAddr,
    scheme: &'static str,
    new_request_id: impl FnOnce() -> HeaderValue,
) -> bool {
    let had_xff = headers.contains_key(&X_FORWARDED_FOR);
    let internal = hcm.use_remote_address
        && !had_xff
        && hcm
            .internal_address_config
            .cidr_ranges
            .iter()
            .any(|r| r.contains(remote.ip()));
    let edge = hcm.use_remote_address && !internal;

    if hcm.use_remote_address {
        let ip = remote.ip().to_canonical().to_string();
        let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) if !prev.is_empty() => format!("{prev},{ip}"),
            _ => ip,
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
    } else if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
    }

    if internal {
        headers.insert(X_ENVOY_INTERNAL.clone(), HeaderValue::from_static("true"));
    } else {
        headers.remove(&X_ENVOY_INTERNAL);
        for name in UNTRUSTED_CONTROL {
            headers.remove(*name);
        }
        for name in internal_only {
            headers.remove(name);
        }
    }
    if edge {
        for name in EDGE_ONLY {
            headers.remove(*name);
        }
    }

    let regenerate = edge && !hcm.preserve_external_request_id;
    if regenerate || (hcm.generate_request_id && !headers.contains_key(&X_REQUEST_ID)) {
        headers.insert(X_REQUEST_ID.clone(), new_request_id());
    }
    internal
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): `connection` and the headers it names,
/// `keep-alive`, `proxy-connection`, `transfer-encoding`, `te` (except `trailers`) and, unless
/// an upgrade is being forwarded, `upgrade`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
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
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
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

/// The upgrade a request asks for (`Connection: upgrade` plus `Upgrade: X`), lower-cased.
pub(crate) fn requested_upgrade(headers: &HeaderMap) -> Option<String> {
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
        let internal = sanitize_request(&mut h, &hcm, &[], remote(), "http", || {
            HeaderValue::from_static("new-id")
        });
        assert!(!internal);
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
        let internal = sanitize_request(&mut h, &hcm, &[], remote(), "http", || unreachable!());
        assert!(internal);
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
        sanitize_request(&mut h, &hcm, &[], remote(), "http", || {
            HeaderValue::from_static("generated")
        });
        assert_eq!(h["x-forwarded-for"], "1.1.1.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert!(!h.contains_key("x-envoy-max-retries"));
        assert_eq!(h["x-request-id"], "generated");
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
