//! Request hashing for the consistent-hash balancers (SEMANTICS.md §4.9; Envoy
//! `hash_policy.cc`).
//!
//! Policies are evaluated in order; each may yield a 64-bit hash, combined as
//! `h = rotl1(h_prev) ^ h_new`. A `terminal` policy that leaves a hash stops the walk. No hash
//! at all means the balancer picks at random.
//!
//! | Policy | Hash |
//! |---|---|
//! | header | all values of the header, sorted, chained through xxHash64 (each value hashed with the previous hash as seed) |
//! | cookie | xxHash64 of the cookie value; when absent and a `ttl` is set, a value is generated (see [`GeneratedCookie`]) |
//! | source IP | xxHash64 of the downstream IP as text, no port |
//! | query parameter | xxHash64 of the first value, not percent-decoded |
//! | filter state | never (there is no filter state here) |
//!
//! ```
//! use mesh_core::config::{HashOn, HashPolicy};
//! let policies = mesh_lb::hash::HashPolicies::new(&[HashPolicy {
//!     policy: HashOn::Header { header_name: "x-user".into() },
//!     terminal: false,
//! }]);
//! let (parts, _) = http::Request::builder().header("x-user", "alice").body(()).unwrap().into_parts();
//! let h = policies.hash(&parts, None).hash;
//! assert_eq!(h, Some(mesh_lb::hash::xxhash64(b"alice", 0)));
//! ```

use std::net::IpAddr;
use std::time::Duration;

use http::HeaderName;
use http::request::Parts;
use mesh_core::config::{HashOn, HashPolicy};

/// xxHash64 of `bytes` with `seed` (Envoy's `HashUtil::xxHash64`).
pub fn xxhash64(bytes: &[u8], seed: u64) -> u64 {
    twox_hash::XxHash64::oneshot(seed, bytes)
}

/// Hash policies compiled for one route.
#[derive(Debug, Clone, Default)]
pub struct HashPolicies {
    policies: Vec<(Compiled, bool)>,
}

#[derive(Debug, Clone)]
enum Compiled {
    Header(HeaderName),
    Cookie {
        name: String,
        ttl: Option<Duration>,
        path: String,
    },
    SourceIp,
    Query(String),
    Never,
}

/// A cookie Envoy would add to the response so the client sticks to its host: asked for by a
/// cookie policy with a `ttl` when the request had no such cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedCookie {
    /// Cookie name.
    pub name: String,
    /// Generated value (hex of a hash of the downstream address).
    pub value: String,
    /// Lifetime; zero makes a session cookie.
    pub ttl: Duration,
    /// Path attribute (empty: none).
    pub path: String,
}

impl GeneratedCookie {
    /// The `Set-Cookie` header value.
    pub fn header_value(&self) -> String {
        let mut s = format!("{}=\"{}\"", self.name, self.value);
        if !self.ttl.is_zero() {
            s.push_str(&format!("; Max-Age={}", self.ttl.as_secs()));
        }
        if !self.path.is_empty() {
            s.push_str(&format!("; Path={}", self.path));
        }
        s.push_str("; HttpOnly");
        s
    }
}

/// The outcome of hashing a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHash {
    /// The combined hash, if any policy produced one.
    pub hash: Option<u64>,
    /// A cookie to set on the response (cookie policy with `ttl`, cookie absent).
    pub set_cookie: Option<GeneratedCookie>,
}

impl HashPolicies {
    /// Compiles a route's policies. Header names that are not valid never hash.
    pub fn new(policies: &[HashPolicy]) -> Self {
        Self {
            policies: policies
                .iter()
                .map(|p| {
                    let c = match &p.policy {
                        HashOn::Header { header_name } => {
                            match HeaderName::from_bytes(header_name.as_bytes()) {
                                Ok(h) => Compiled::Header(h),
                                Err(_) => Compiled::Never,
                            }
                        }
                        HashOn::Cookie { name, ttl, path } => Compiled::Cookie {
                            name: name.clone(),
                            ttl: *ttl,
                            path: path.clone(),
                        },
                        HashOn::SourceIp => Compiled::SourceIp,
                        HashOn::QueryParameter { name } => Compiled::Query(name.clone()),
                        HashOn::FilterState { .. } => Compiled::Never,
                    };
                    (c, p.terminal)
                })
                .collect(),
        }
    }

    /// Whether there are no policies.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Hashes a request; `source` is the downstream IP.
    pub fn hash(&self, parts: &Parts, source: Option<IpAddr>) -> RequestHash {
        let mut out = RequestHash::default();
        for (policy, terminal) in &self.policies {
            let new = match policy {
                Compiled::Header(name) => {
                    let mut values: Vec<&[u8]> = parts
                        .headers
                        .get_all(name)
                        .iter()
                        .map(|v| v.as_bytes())
                        .collect();
                    if values.is_empty() {
                        None
                    } else {
                        values.sort_unstable();
                        Some(values.iter().fold(0, |h, v| xxhash64(v, h)))
                    }
                }
                Compiled::Cookie { name, ttl, path } => match cookie(parts, name) {
                    Some(v) => Some(xxhash64(v.as_bytes(), 0)),
                    None => ttl.map(|ttl| {
                        let src = source.map(|ip| ip.to_string()).unwrap_or_default();
                        let value = format!("{:016x}", xxhash64(src.as_bytes(), 0));
                        let h = xxhash64(value.as_bytes(), 0);
                        out.set_cookie = Some(GeneratedCookie {
                            name: name.clone(),
                            value,
                            ttl,
                            path: path.clone(),
                        });
                        h
                    }),
                },
                Compiled::SourceIp => source.map(|ip| xxhash64(ip.to_string().as_bytes(), 0)),
                Compiled::Query(name) => {
                    query_param(parts, name).map(|v| xxhash64(v.as_bytes(), 0))
                }
                Compiled::Never => None,
            };
            if let Some(n) = new {
                out.hash = Some(out.hash.map_or(0, |h| h.rotate_left(1)) ^ n);
            }
            if *terminal && out.hash.is_some() {
                break;
            }
        }
        out
    }
}

/// The first value of cookie `name` in the `Cookie` headers, without surrounding quotes.
fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
        })
}

/// The first value of query parameter `name`, as written (no percent-decoding).
fn query_param<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn policy(p: HashOn, terminal: bool) -> HashPolicy {
        HashPolicy {
            policy: p,
            terminal,
        }
    }

    fn header(name: &str) -> HashOn {
        HashOn::Header {
            header_name: name.into(),
        }
    }

    #[test]
    fn xxhash_known_values() {
        // Reference values of XXH64 with seed 0.
        assert_eq!(xxhash64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxhash64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
    }

    #[test]
    fn header_values_sorted() {
        let p = HashPolicies::new(&[policy(header("x-k"), false)]);
        let a = p
            .hash(&parts("/", &[("x-k", "b"), ("x-k", "a")]), None)
            .hash;
        let b = p
            .hash(&parts("/", &[("x-k", "a"), ("x-k", "b")]), None)
            .hash;
        assert_eq!(a, b);
        assert_eq!(a, Some(xxhash64(b"b", xxhash64(b"a", 0))));
        assert_eq!(p.hash(&parts("/", &[]), None).hash, None);
    }

    #[test]
    fn combine_and_terminal() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let ph = xxhash64(b"v", 0);
        let pi = xxhash64(b"10.1.2.3", 0);
        let two = HashPolicies::new(&[
            policy(header("x-k"), false),
            policy(HashOn::SourceIp, false),
        ]);
        let r = parts("/", &[("x-k", "v")]);
        assert_eq!(two.hash(&r, Some(ip)).hash, Some(ph.rotate_left(1) ^ pi));
        let term =
            HashPolicies::new(&[policy(header("x-k"), true), policy(HashOn::SourceIp, false)]);
        assert_eq!(term.hash(&r, Some(ip)).hash, Some(ph));
        // A terminal policy without a hash does not stop the walk.
        assert_eq!(term.hash(&parts("/", &[]), Some(ip)).hash, Some(pi));
    }

    #[test]
    fn cookie_and_query() {
        let c = HashPolicies::new(&[policy(
            HashOn::Cookie {
                name: "s".into(),
                ttl: None,
                path: String::new(),
            },
            false,
        )]);
        let r = parts("/", &[("cookie", "a=1; s=\"xyz\""), ("cookie", "s=other")]);
        assert_eq!(c.hash(&r, None).hash, Some(xxhash64(b"xyz", 0)));
        assert_eq!(c.hash(&parts("/", &[]), None), RequestHash::default());
        let generated = HashPolicies::new(&[policy(
            HashOn::Cookie {
                name: "s".into(),
                ttl: Some(Duration::from_secs(60)),
                path: "/".into(),
            },
            false,
        )]);
        let out = generated.hash(&parts("/", &[]), Some("10.0.0.9".parse().unwrap()));
        let ck = out.set_cookie.unwrap();
        assert_eq!(out.hash, Some(xxhash64(ck.value.as_bytes(), 0)));
        assert!(ck.header_value().contains("Max-Age=60; Path=/; HttpOnly"));
        let q = HashPolicies::new(&[policy(HashOn::QueryParameter { name: "u".into() }, false)]);
        assert_eq!(
            q.hash(&parts("/p?x=1&u=a%20b&u=c", &[]), None).hash,
            Some(xxhash64(b"a%20b", 0))
        );
        assert_eq!(q.hash(&parts("/p?x=1", &[]), None).hash, None);
        assert_eq!(
            q.hash(&parts("/p?u", &[]), None).hash,
            Some(xxhash64(b"", 0))
        );
    }
}
