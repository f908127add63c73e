//! Virtual hosts and their selection by `:authority`/`Host` (SEMANTICS §1.1, §1.2).
//!
//! Domains are lower-cased and classified as in Envoy's `RouteMatcher`: exactly `*` is the
//! default host; a leading `*` makes a suffix wildcard (checked before a trailing `*`, so `*foo*`
//! is a suffix wildcard with key `foo*`); a trailing `*` a prefix wildcard; anything else is
//! exact. Wildcards are bucketed by key length and tried longest first; the `*` must stand for
//! at least one character. Precedence: exact > longest suffix > longest prefix > `*`.
//!
//! Lookup lower-cases the host into a stack buffer (hosts longer than 256 bytes allocate), so
//! selection does not allocate.

use std::collections::BTreeMap;

use crate::FastMap as HashMap;
use std::sync::Arc;

use http::request::Parts;
use mesh_core::config::{TlsRequirement, VirtualHost};

use crate::index::RouteIndex;
use crate::matcher::header::HeaderMatch;
use crate::rewrite::Mutations;
use crate::table::{BuildError, CompiledRoute, FilterConfigs};

/// A compiled virtual host: its config, its routes and its virtual clusters.
#[derive(Debug)]
pub struct VirtualHostInfo {
    pub(crate) index: usize,
    pub(crate) config: VirtualHost,
    pub(crate) routes: Vec<CompiledRoute>,
    /// Candidate index over `routes`.
    pub(crate) route_index: RouteIndex,
    pub(crate) virtual_clusters: Vec<(String, Vec<HeaderMatch>)>,
    pub(crate) mutations: Mutations,
    pub(crate) filter_configs: Option<Arc<FilterConfigs>>,
}

impl VirtualHostInfo {
    /// The virtual host's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Its index in the route configuration's `virtual_hosts`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The declarative config it was compiled from (retry and hedge policies, mirror policies,
    /// attempt-count flags, buffer limits, ...).
    pub fn config(&self) -> &VirtualHost {
        &self.config
    }

    /// The TLS requirement.
    pub fn require_tls(&self) -> TlsRequirement {
        self.config.require_tls
    }

    /// The name of the first virtual cluster whose header conditions all hold, as Envoy
    /// classifies requests for `vhost.<vh>.vcluster.<vc>` stats.
    pub fn virtual_cluster(&self, req: &Parts) -> Option<&str> {
        self.virtual_clusters
            .iter()
            .find(|(_, headers)| headers.iter().all(|h| h.matches(req)))
            .map(|(name, _)| name.as_str())
    }
}

// === impl DomainIndex ===

/// Keys of one wildcard kind, bucketed by key length, longest first.
type Buckets = Vec<(usize, HashMap<Box<[u8]>, usize>)>;

/// The domain → virtual-host index of one route configuration.
#[derive(Debug, Default)]
pub(crate) struct DomainIndex {
    exact: HashMap<Box<[u8]>, usize>,
    suffix: Buckets,
    prefix: Buckets,
    default: Option<usize>,
}

enum DomainKind<'d> {
    Default,
    Suffix(&'d str),
    Prefix(&'d str),
    Exact(&'d str),
}

fn classify(domain: &str) -> DomainKind<'_> {
    if domain == "*" {
        DomainKind::Default
    } else if let Some(key) = domain.strip_prefix('*') {
        DomainKind::Suffix(key)
    } else if let Some(key) = domain.strip_suffix('*') {
        DomainKind::Prefix(key)
    } else {
        DomainKind::Exact(domain)
    }
}

impl DomainIndex {
    /// Builds the index; duplicate domains and a second `*` are errors.
    pub(crate) fn build(vhosts: &[VirtualHost]) -> Result<Self, BuildError> {
        let mut exact = HashMap::default();
        let mut suffix: BTreeMap<usize, HashMap<Box<[u8]>, usize>> = BTreeMap::new();
        let mut prefix: BTreeMap<usize, HashMap<Box<[u8]>, usize>> = BTreeMap::new();
        let mut default = None;
        for (vi, vh) in vhosts.iter().enumerate() {
            for (di, domain) in vh.domains.iter().enumerate() {
                let field = format!("virtual_hosts[{vi}].domains[{di}]");
                if domain.chars().any(char::is_control) {
                    return Err(BuildError::invalid(
                        field,
                        format!("{domain:?} contains control characters"),
                    ));
                }
                let lower = domain.to_ascii_lowercase();
                let duplicate = || BuildError::DuplicateDomain {
                    field: field.clone(),
                    domain: domain.clone(),
                };
                let fresh = match classify(&lower) {
                    DomainKind::Default => {
                        if default.is_some() {
                            return Err(BuildError::MultipleWildcards {
                                field: field.clone(),
                            });
                        }
                        default = Some(vi);
                        true
                    }
                    DomainKind::Suffix(key) => {
                        insert(suffix.entry(key.len()).or_default(), key, vi)
                    }
                    DomainKind::Prefix(key) => {
                        insert(prefix.entry(key.len()).or_default(), key, vi)
                    }
                    DomainKind::Exact(key) => insert(&mut exact, key, vi),
                };
                if !fresh {
                    return Err(duplicate());
                }
            }
        }
        Ok(Self {
            exact,
            suffix: suffix.into_iter().rev().collect(),
            prefix: prefix.into_iter().rev().collect(),
            default,
        })
    }

    /// The index of the virtual host for `host` (`None` when the request has no host).
    pub(crate) fn find(&self, host: Option<&[u8]>, ignore_port: bool) -> Option<usize> {
        if self.exact.is_empty() && self.suffix.is_empty() && self.prefix.is_empty() {
            return self.default;
        }
        let mut host = host?;
        if ignore_port {
            host = strip_port(host);
        }
        let mut stack = [0u8; 256];
        let heap;
        let lower: &[u8] = if host.len() <= stack.len() {
            let buf = &mut stack[..host.len()];
            buf.copy_from_slice(host);
            buf.make_ascii_lowercase();
            buf
        } else {
            heap = host.to_ascii_lowercase();
            &heap
        };
        self.find_lowercase(lower)
    }

    /// Steps 5–8 of SEMANTICS §1.2 on an already lower-cased host.
    pub(crate) fn find_lowercase(&self, h: &[u8]) -> Option<usize> {
        if let Some(&vi) = self.exact.get(h) {
            return Some(vi);
        }
        let wildcard = |buckets: &Buckets, suffix: bool| {
            buckets
                .iter()
                .filter(|(len, _)| *len < h.len())
                .find_map(|(len, keys)| {
                    let part = if suffix {
                        &h[h.len() - len..]
                    } else {
                        &h[..*len]
                    };
                    keys.get(part).copied()
                })
        };
        wildcard(&self.suffix, true)
            .or_else(|| wildcard(&self.prefix, false))
            .or(self.default)
    }
}

fn insert(map: &mut HashMap<Box<[u8]>, usize>, key: &str, vi: usize) -> bool {
    use std::collections::hash_map::Entry;
    match map.entry(key.as_bytes().into()) {
        Entry::Occupied(_) => false,
        Entry::Vacant(v) => {
            v.insert(vi);
            true
        }
    }
}

/// Removes `:port` from a host, as Envoy's `HeaderUtility::getPortStart`: the port starts at
/// the last `:` unless that is inside an IPv6 literal's brackets, and must be a number.
pub(crate) fn strip_port(host: &[u8]) -> &[u8] {
    let Some(colon) = host.iter().rposition(|&b| b == b':') else {
        return host;
    };
    if host
        .iter()
        .rposition(|&b| b == b']')
        .is_some_and(|close| close > colon)
    {
        return host;
    }
    let port = &host[colon + 1..];
    let numeric = !port.is_empty()
        && port.len() <= 10
        && port.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(port).is_ok_and(|p| p.parse::<u32>().is_ok());
    if numeric { &host[..colon] } else { host }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(vhosts: &[&[&str]]) -> DomainIndex {
        let vhosts: Vec<VirtualHost> = vhosts
            .iter()
            .enumerate()
            .map(|(i, d)| VirtualHost::new(format!("vh{i}"), d.iter().copied()))
            .collect();
        DomainIndex::build(&vhosts).unwrap()
    }

    #[test]
    fn precedence_and_wildcard_lengths() {
        let idx = index(&[
            &["www.foo.com"],                // 0 exact
            &["*.foo.com"],                  // 1 suffix, key ".foo.com"
            &["*-bar.foo.com"],              // 2 longer suffix
            &["www.*"],                      // 3 prefix
            &["www.foo.*"],                  // 4 longer prefix
            &["*"],                          // 5 default
            &["*foo*"],                      // 6 suffix wildcard with key "foo*"
            &["Mixed.Case.COM", "a.b:8080"], // 7 exact, lowered
        ]);
        let cases: &[(&str, Option<usize>)] = &[
            ("www.foo.com", Some(0)),
            ("WWW.FOO.COM", Some(0)),
            ("api.foo.com", Some(1)),
            ("x-bar.foo.com", Some(2)),
            ("-bar.foo.com", Some(1)), // `*` must match ≥ 1 char for bucket 2; bucket 1 matches
            (".foo.com", Some(5)),     // strict length: `*.foo.com` never matches `.foo.com`
            ("foo.com", Some(5)),
            ("www.foo.org", Some(4)),
            ("www.bar", Some(3)),
            ("www.", Some(5)), // strict length for prefix wildcards too
            ("www.foo.", Some(3)),
            ("xfoo*", Some(6)),
            ("foo*", Some(5)),
            ("mixed.case.com", Some(7)),
            ("a.b:8080", Some(7)),
            ("a.b", Some(5)),
            ("other", Some(5)),
        ];
        for (host, want) in cases {
            assert_eq!(idx.find(Some(host.as_bytes()), false), *want, "{host}");
        }
        assert_eq!(idx.find(None, false), None, "no host, non-trivial index");
    }

    #[test]
    fn suffix_beats_prefix_and_no_default() {
        let idx = index(&[&["foo.*"], &["*.com"]]);
        assert_eq!(idx.find(Some(b"foo.com"), false), Some(1));
        assert_eq!(idx.find(Some(b"foo.org"), false), Some(0));
        assert_eq!(idx.find(Some(b"bar.org"), false), None);
    }

    #[test]
    fn only_default_matches_without_host() {
        let idx = index(&[&["*"]]);
        assert_eq!(idx.find(None, false), Some(0));
        assert_eq!(idx.find(Some(b"x"), false), Some(0));
        assert_eq!(index(&[]).find(None, false), None);
    }

    #[test]
    fn ports() {
        let idx = index(&[&["example.com"], &["[::1]"], &["*"]]);
        assert_eq!(idx.find(Some(b"example.com:443"), false), Some(2));
        assert_eq!(idx.find(Some(b"example.com:443"), true), Some(0));
        assert_eq!(idx.find(Some(b"[::1]:80"), true), Some(1));
        assert_eq!(idx.find(Some(b"[::1]"), true), Some(1));
        assert_eq!(strip_port(b"[::1]"), b"[::1]");
        assert_eq!(strip_port(b"[::1]:8080"), b"[::1]");
        assert_eq!(strip_port(b"host:abc"), b"host:abc");
        assert_eq!(strip_port(b"host:"), b"host:");
        assert_eq!(strip_port(b"host:99999999999"), b"host:99999999999");
        assert_eq!(strip_port(b"host"), b"host");
    }

    #[test]
    fn long_hosts() {
        let long = format!("{}.example.com", "a".repeat(300));
        let idx = index(&[&["*.example.com"]]);
        assert_eq!(
            idx.find(Some(long.to_uppercase().as_bytes()), false),
            Some(0)
        );
    }

    #[test]
    fn build_errors() {
        let build = |vhosts: &[&[&str]]| {
            let vhosts: Vec<VirtualHost> = vhosts
                .iter()
                .map(|d| VirtualHost::new("v", d.iter().copied()))
                .collect();
            DomainIndex::build(&vhosts)
        };
        let e = build(&[&["*"], &["a", "*"]]).unwrap_err();
        assert!(matches!(e, BuildError::MultipleWildcards { .. }), "{e}");
        assert_eq!(e.field(), "virtual_hosts[1].domains[1]");
        let e = build(&[&["a.com"], &["A.com"]]).unwrap_err();
        assert!(matches!(e, BuildError::DuplicateDomain { .. }), "{e}");
        assert!(build(&[&["*.a.com"], &["*.a.com"]]).is_err());
        assert!(build(&[&["a.*"], &["a.*"]]).is_err());
        assert!(build(&[&["a\u{7}"]]).is_err());
        // The same key as exact and as wildcard is fine.
        assert!(build(&[&["a.com"], &["*a.com"], &["a.com*"]]).is_ok());
    }
}
