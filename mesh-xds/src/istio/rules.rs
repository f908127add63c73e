//! The field rules of Istio's config validation (istiod's admission webhook,
//! `pkg/config/validation`) that several kinds share, with istiod's wording where it helps a
//! user find the rule. Each returns the problem as a message, or nothing.

use std::collections::BTreeMap;
use std::time::Duration;

/// `IsDNS1123Label`: 1 to 63 of `[a-zA-Z0-9-]`, starting and ending alphanumeric.
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// `IsWildcardDNS1123Label`: `*`, or a label with an optional `*` or `*-` prefix.
fn is_wildcard_dns1123_label(s: &str) -> bool {
    if s == "*" {
        return true;
    }
    let rest = s
        .strip_prefix("*-")
        .or_else(|| s.strip_prefix('*'))
        .unwrap_or(s);
    s.len() <= 63 && is_dns1123_label(rest)
}

fn preconditions(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("empty domain name not allowed".into());
    }
    if domain.len() > 255 {
        return Err(format!("domain name {domain:?} too long (max 255)"));
    }
    Ok(())
}

/// `ValidateDNS1123Labels`: every label valid (a trailing dot allowed), and the last one not
/// all-numeric.
fn dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let last = parts[parts.len() - 1];
    if !last.is_empty()
        && last
            .trim_start_matches(['+', '-'])
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {last:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() && parts.len() > 1 {
            continue;
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// `ValidateFQDN`: no wildcards; short names allowed.
pub(crate) fn fqdn(host: &str) -> Result<(), String> {
    preconditions(host)?;
    dns1123_labels(host)
}

/// `ValidateWildcardDomain`: the first label may be a wildcard (`*`, `*.example.com`,
/// `*foo.example.com`), the rest must be DNS labels.
pub(crate) fn wildcard_domain(host: &str) -> Result<(), String> {
    preconditions(host)?;
    let (first, rest) = match host.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (host, None),
    };
    if !is_wildcard_dns1123_label(first) {
        return Err(format!(
            "domain name {host:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        // A trailing dot (`foo.`) is an absolute name.
        Some("") | None => Ok(()),
        Some(r) => dns1123_labels(r),
    }
}

/// `ValidateIPSubnet`: an IP address, or with one `/` a CIDR block.
pub(crate) fn ip_or_cidr(s: &str) -> Result<(), String> {
    match s.split_once('/') {
        Some((ip, len)) => {
            let ok = ip.parse::<std::net::IpAddr>().is_ok_and(|ip| {
                len.parse::<u8>()
                    .is_ok_and(|l| l <= if ip.is_ipv4() { 32 } else { 128 })
            });
            if ok {
                Ok(())
            } else {
                Err(format!("{s} is not a valid CIDR block"))
            }
        }
        None => ip(s),
    }
}

/// `ValidateIPAddress` (an IPv6 zone is allowed; IPv4 leading zeros are not).
pub(crate) fn ip(s: &str) -> Result<(), String> {
    let bare = s.split_once('%').map_or(s, |(a, _)| a);
    if bare.parse::<std::net::IpAddr>().is_ok() {
        Ok(())
    } else {
        Err(format!("{s} is not a valid IP"))
    }
}

/// `ValidatePort`.
pub(crate) fn port(n: u64) -> Result<(), String> {
    if (1..=65535).contains(&n) {
        Ok(())
    } else {
        Err(format!("port number {n} must be in the range 1..65535"))
    }
}

/// `ValidatePortName`.
pub(crate) fn port_name(name: &str) -> Result<(), String> {
    if is_dns1123_label(name) {
        Ok(())
    } else {
        Err(format!("invalid port name: {name}"))
    }
}

/// The protocols Istio knows (`ValidateProtocol`; empty means sniffing).
pub(crate) fn protocol(p: &str) -> Result<(), String> {
    const KNOWN: &[&str] = &[
        "TCP",
        "UDP",
        "GRPC",
        "GRPC-WEB",
        "HTTP",
        "HTTP_PROXY",
        "HTTP2",
        "HTTPS",
        "TLS",
        "MONGO",
        "REDIS",
        "MYSQL",
    ];
    if p.is_empty() || KNOWN.iter().any(|k| k.eq_ignore_ascii_case(p)) {
        Ok(())
    } else {
        Err(format!("unsupported protocol: {p}"))
    }
}

/// `ValidateDuration`: at least 1 ms, in whole milliseconds.
pub(crate) fn duration(d: Duration) -> Result<(), String> {
    if d < Duration::from_millis(1) {
        return Err("duration must be greater than 1ms".into());
    }
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return Err("only durations to ms precision are supported".into());
    }
    Ok(())
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `labels.Instance.Validate`: every key `[prefix/]name`, every value empty or a label value;
/// one message per bad entry.
pub(crate) fn labels(map: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in map {
        let (prefix, name) = match k.split_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k.as_str()),
        };
        if let Some(p) = prefix {
            if p.len() > 253 {
                out.push(format!("invalid tag key: {k:?} (DNS prefix is too long)"));
                continue;
            }
            if p.split('.').any(|l| !is_dns1123_label(l)) {
                out.push(format!("invalid tag key: {k:?}"));
                continue;
            }
        }
        if name.len() > 63 {
            out.push(format!("invalid tag key: {k:?} (name is too long)"));
        } else if !is_label_name(name) {
            out.push(format!("invalid tag key: {k:?}"));
        }
        if !v.is_empty() && !is_label_name_unbounded(v) {
            out.push(format!("invalid tag value: {v:?}"));
        }
    }
    out
}

fn is_label_name_unbounded(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A workload selector's entries: no empty key, no wildcard in a key or a value.
pub(crate) fn selector(map: &BTreeMap<String, String>) -> Vec<String> {
    map.iter()
        .filter_map(|(k, v)| {
            if k.is_empty() {
                Some(format!(
                    "empty key is not supported in selector: \"{k}={v}\""
                ))
            } else if k.contains('*') || v.contains('*') {
                Some(format!(
                    "wildcard is not supported in selector: \"{k}={v}\""
                ))
            } else {
                None
            }
        })
        .collect()
}

/// `exportTo` (`validateExportTo`): `.`, `*` or namespaces, no duplicates, `*` alone; `~`
/// (exported to nobody) only for a ServiceEntry and alone. The proxy does not enforce
/// visibility (every resource is visible to it), which a warning says.
pub(crate) fn export_to(
    cx: &mut crate::envoy::Cx,
    s: &mut crate::envoy::Obj<'_>,
    service_entry: bool,
) {
    let Some((v, p)) = s.value(cx, "exportTo") else {
        return;
    };
    let list: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    for (i, e) in list.iter().enumerate() {
        let ep = format!("{p}[{i}]");
        if !seen.insert(*e) {
            cx.error(ep, format!("duplicate entries in exportTo for entry {e}"));
            continue;
        }
        match *e {
            "." | "*" => {}
            "~" if service_entry => {}
            "~" => cx.error(
                ep,
                "exportTo ~ (none) is not allowed for Istio configuration objects",
            ),
            ns if !is_dns1123_label(ns) => cx.error(
                ep,
                "only .,*, or a valid DNS 1123 label is allowed as exportTo entry",
            ),
            _ => {}
        }
    }
    if list.len() > 1 && seen.contains("*") {
        cx.error(
            p.clone(),
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
    if list.len() > 1 && seen.contains("~") {
        cx.error(
            p.clone(),
            "cannot export service entry to no one (~) and someone",
        );
    }
    cx.warn(
        p,
        "exportTo is not enforced: every resource is visible to every proxy",
    );
}

/// `validateSubsetName`.
pub(crate) fn subset_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("subset name cannot be empty".into())
    } else if !is_dns1123_label(name) {
        Err(format!("subset name is invalid: {name}"))
    } else {
        Ok(())
    }
}

/// `ValidateUnixAddress` (the path after `unix://`).
pub(crate) fn unix_address(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("unix address must not be empty".into());
    }
    if path.starts_with('@') || (path.starts_with('/') && !path.ends_with('/')) {
        Ok(())
    } else {
        Err(format!("{path} is not an absolute path to a file"))
    }
}

/// Maglev table sizes are primes below 5000011, as Envoy requires.
pub(crate) fn maglev_table_size(n: u64) -> Result<(), String> {
    if n == 0 {
        return Err("tableSize must be set for maglev".into());
    }
    if n >= 5_000_011 {
        return Err("tableSize must be less than 5000011 for maglev".into());
    }
    let prime = n < 4
        || (!n.is_multiple_of(2)
            && (3..)
                .step_by(2)
                .take_while(|f| f * f <= n)
                .all(|f| !n.is_multiple_of(f)));
    if prime {
        Ok(())
    } else {
        Err("tableSize must be a prime number for maglev".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "*",
            "*.foo.com",
            "*foo.com",
            "*-x.foo.com",
            "reviews",
            "foo.",
            "123",
        ] {
            assert_eq!(wildcard_domain(ok), Ok(()), "{ok}");
        }
        for bad in ["foo.*.com", "foo*", "1.2.3.4", "a..b", "", "foo_bar"] {
            assert!(wildcard_domain(bad).is_err(), "{bad}");
        }
        assert!(fqdn("*.foo.com").is_err());
        assert_eq!(fqdn("reviews.default.svc.cluster.local"), Ok(()));
    }

    #[test]
    fn addresses() {
        for ok in [
            "1.2.3.4",
            "001:db8::",
            "fe80::1%eth0",
            "10.0.0.0/8",
            "2001:db8::/32",
        ] {
            assert_eq!(ip_or_cidr(ok), Ok(()), "{ok}");
        }
        for bad in ["1.2.3", "1.2.3.4/33", "host", "010.1.1.1"] {
            assert!(ip_or_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_and_selectors() {
        let m = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(labels(&m("app", "web")).is_empty());
        assert!(labels(&m("example.com/app", "")).is_empty());
        assert_eq!(labels(&m("-app", "x")).len(), 1);
        assert_eq!(labels(&m("app", "a b")).len(), 1);
        assert_eq!(selector(&m("app", "*")).len(), 1);
        assert_eq!(selector(&m("", "x")).len(), 1);
    }

    #[test]
    fn maglev_sizes() {
        assert_eq!(maglev_table_size(65537), Ok(()));
        assert!(maglev_table_size(65536).is_err());
        assert!(maglev_table_size(0).is_err());
        assert!(maglev_table_size(5_000_011).is_err());
    }
}
