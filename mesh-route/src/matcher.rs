//! Route conditions (Envoy's `RouteMatch`): path, headers, query parameters, runtime fraction,
//! gRPC and TLS context.
//!
//! Conditions are evaluated in Envoy's order (`RouteEntryImplBase::matchRoute`, SEMANTICS §2.2):
//! runtime fraction, gRPC, headers, query parameters, TLS context, then the path specifier. All
//! must hold. Every check is a small pure function over a [`RequestView`], so an index can reuse
//! them; none of them allocates except when a header really has several values to join.

pub(crate) mod header;
pub(crate) mod path;
pub(crate) mod query;

use http::request::Parts;
use mesh_core::config::{
    FractionalPercent, RouteMatch, StringMatcher, StringPattern, TlsContextMatch,
};
use regex::Regex;

use self::header::HeaderMatch;
use self::path::PathMatcher;
use self::query::QueryMatch;
use crate::table::BuildError;

/// Facts about the downstream TLS connection, read by routes with a `tls_context` match.
///
/// The proxy inserts one into the request's [`http::Extensions`]; a request without it is
/// treated as plaintext (no certificate presented or validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DownstreamTls {
    /// The peer presented a certificate.
    pub presented: bool,
    /// The peer's certificate was validated.
    pub validated: bool,
}

// === impl RequestView ===

/// The parts of a request that matching reads, split once per lookup. Borrowed, never owned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestView<'a> {
    pub(crate) parts: &'a Parts,
    /// `:path` including the query; `None` for authority-form (CONNECT) requests.
    pub(crate) path: Option<&'a str>,
    /// The path compared by path specifiers: query and fragment removed, and truncated at the
    /// first `;` when `ignore_path_parameters_in_path_matching` is set.
    pub(crate) match_path: Option<&'a str>,
    /// The query string (after `?`, before `#`), if any.
    pub(crate) query: Option<&'a str>,
}

impl<'a> RequestView<'a> {
    pub(crate) fn new(parts: &'a Parts, ignore_path_parameters: bool) -> Self {
        // `http` has already found the query (and dropped any fragment) while parsing the
        // target: its offsets spare a second scan of the path per request.
        let (path, path_only, query) = match parts.uri.path_and_query() {
            Some(pq) => {
                let all = pq.as_str();
                let query = pq.query();
                let path_only = query.map_or(all, |q| &all[..all.len() - q.len() - 1]);
                (Some(all), Some(path_only), query)
            }
            None => {
                let path = request_path(parts);
                (path, path.map(remove_query_and_fragment), None)
            }
        };
        let match_path = path_only.map(|p| {
            if ignore_path_parameters {
                p.split_once(';').map_or(p, |(head, _)| head)
            } else {
                p
            }
        });
        Self {
            parts,
            path,
            match_path,
            query,
        }
    }
}

/// The request's `:path` (with query), or `None` when it has none (authority-form CONNECT).
pub(crate) fn request_path(parts: &Parts) -> Option<&str> {
    match parts.uri.path_and_query() {
        Some(pq) => Some(pq.as_str()),
        // `http://host` in absolute form: Envoy normalises the path to `/`.
        None if parts.uri.scheme().is_some() && parts.method != http::Method::CONNECT => Some("/"),
        None => None,
    }
}

/// The request's `:authority`: the URI authority (HTTP/2, absolute-form) without userinfo, else
/// the first `host` header.
pub(crate) fn authority(parts: &Parts) -> Option<&[u8]> {
    match parts.uri.authority() {
        Some(a) => {
            let a = a.as_str();
            Some(a.rsplit_once('@').map_or(a, |(_, host)| host).as_bytes())
        }
        None => parts
            .headers
            .get(http::header::HOST)
            .map(http::HeaderValue::as_bytes),
    }
}

/// The request's `:scheme`: the URI scheme, else the first `x-forwarded-proto` header.
pub(crate) fn scheme(parts: &Parts) -> Option<&str> {
    parts.uri.scheme_str().or_else(|| forwarded_proto(parts))
}

/// Looked up per request: as a `HeaderName`, hashed without being parsed first.
static X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");

/// The first `x-forwarded-proto` value, when it is valid UTF-8.
pub(crate) fn forwarded_proto(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(&X_FORWARDED_PROTO)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
}

/// Envoy's `PathUtil::removeQueryAndFragment`.
pub(crate) fn remove_query_and_fragment(path: &str) -> &str {
    // A byte scan: `str::find` with a set of chars decodes UTF-8 as it goes.
    path.bytes()
        .position(|b| b == b'?' || b == b'#')
        .map_or(path, |i| &path[..i])
}

/// The query string of a path: after the first `?`, up to a `#`. The model
/// [`RequestView::new`] is tested against.
#[cfg(test)]
pub(crate) fn query_string(path: &str) -> Option<&str> {
    let (_, rest) = path.split_once('?')?;
    Some(rest.split_once('#').map_or(rest, |(q, _)| q))
}

// === impl StringMatch ===

/// A compiled [`StringMatcher`].
#[derive(Debug, Clone)]
pub(crate) struct StringMatch {
    pattern: Pattern,
    ignore_case: bool,
}

#[derive(Debug, Clone)]
enum Pattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(Regex),
}

impl StringMatch {
    /// Compiles `m`; `field` names it in errors (e.g. `...headers[0].string_match`).
    pub(crate) fn compile(m: &StringMatcher, field: &str) -> Result<Self, BuildError> {
        let non_empty = |s: &String, kind: &str| {
            if s.is_empty() {
                Err(BuildError::invalid(
                    format!("{field}.{kind}"),
                    "must not be empty",
                ))
            } else {
                Ok(s.clone())
            }
        };
        let pattern = match &m.pattern {
            StringPattern::Exact(s) => Pattern::Exact(s.clone()),
            StringPattern::Prefix(s) => Pattern::Prefix(non_empty(s, "prefix")?),
            StringPattern::Suffix(s) => Pattern::Suffix(non_empty(s, "suffix")?),
            StringPattern::Contains(s) => Pattern::Contains(non_empty(s, "contains")?),
            StringPattern::SafeRegex(r) => {
                Pattern::Regex(full_match_regex(r, &format!("{field}.safe_regex"))?)
            }
        };
        Ok(Self {
            pattern,
            ignore_case: m.ignore_case,
        })
    }

    /// Envoy's `StringMatcherImpl::match`; `ignore_case` is ASCII-only and ignored for regexes.
    pub(crate) fn matches(&self, value: &str) -> bool {
        let ic = self.ignore_case;
        match &self.pattern {
            Pattern::Exact(s) => {
                if ic {
                    value.eq_ignore_ascii_case(s)
                } else {
                    value == s
                }
            }
            Pattern::Prefix(s) => starts_with(value, s, !ic),
            Pattern::Suffix(s) => ends_with(value, s, !ic),
            Pattern::Contains(s) => {
                if ic {
                    contains_ignore_ascii_case(value.as_bytes(), s.as_bytes())
                } else {
                    value.contains(s.as_str())
                }
            }
            Pattern::Regex(re) => re.is_match(value),
        }
    }
}

/// `value` starts with `prefix`, ASCII case-insensitively unless `case_sensitive`.
pub(crate) fn starts_with(value: &str, prefix: &str, case_sensitive: bool) -> bool {
    if case_sensitive {
        value.starts_with(prefix)
    } else {
        value
            .as_bytes()
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    }
}

fn ends_with(value: &str, suffix: &str, case_sensitive: bool) -> bool {
    if case_sensitive {
        value.ends_with(suffix)
    } else {
        let (v, s) = (value.as_bytes(), suffix.as_bytes());
        v.len() >= s.len() && v[v.len() - s.len()..].eq_ignore_ascii_case(s)
    }
}

fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Compiles an RE2-style pattern so that only a match of the whole input counts (Envoy's
/// `safe_regex` is a full match). A pattern the `regex` crate rejects (lookaround,
/// backreferences, ...) is a [`BuildError::InvalidRegex`] naming `field`.
pub(crate) fn full_match_regex(pattern: &str, field: &str) -> Result<Regex, BuildError> {
    // Validate the pattern alone first, so that an unbalanced `)` cannot close our group.
    Regex::new(pattern).map_err(|e| BuildError::regex(field, pattern, &e))?;
    Regex::new(&format!(r"\A(?:{pattern})\z")).map_err(|e| BuildError::regex(field, pattern, &e))
}

/// The pattern a [`full_match_regex`] was compiled from, without the anchors it added (`""`
/// for a regex compiled otherwise).
pub(crate) fn full_match_inner(re: &Regex) -> &str {
    re.as_str()
        .strip_prefix(r"\A(?:")
        .and_then(|p| p.strip_suffix(r")\z"))
        .unwrap_or("")
}

/// Compiles an RE2-style pattern for search-and-replace (no anchoring).
pub(crate) fn search_regex(pattern: &str, field: &str) -> Result<Regex, BuildError> {
    Regex::new(pattern).map_err(|e| BuildError::regex(field, pattern, &e))
}

// === impl RouteMatcher ===

/// All the conditions of one route.
#[derive(Debug, Clone)]
pub(crate) struct RouteMatcher {
    pub(crate) path: PathMatcher,
    runtime_fraction: Option<FractionalPercent>,
    grpc: bool,
    headers: Vec<HeaderMatch>,
    query: Vec<QueryMatch>,
    tls: Option<TlsContextMatch>,
}

impl RouteMatcher {
    /// Compiles `m`; `field` is the route's match path, e.g. `virtual_hosts[0].routes[3].match`.
    pub(crate) fn compile(m: &RouteMatch, field: &str) -> Result<Self, BuildError> {
        let path = PathMatcher::compile(&m.path, m.case_sensitive, field)?;
        let headers = m
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| HeaderMatch::compile(h, &format!("{field}.headers[{i}]")))
            .collect::<Result<_, _>>()?;
        let query = m
            .query_parameters
            .iter()
            .enumerate()
            .map(|(i, q)| QueryMatch::compile(q, &format!("{field}.query_parameters[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            path,
            runtime_fraction: m.runtime_fraction.as_ref().map(|f| f.default_value),
            grpc: m.grpc,
            headers,
            query,
            tls: m.tls_context,
        })
    }

    /// True when every condition holds, in Envoy's evaluation order.
    pub(crate) fn matches(&self, req: &RequestView<'_>, random: u64) -> bool {
        self.runtime_fraction.is_none_or(|f| f.enabled(random))
            && (!self.grpc || is_grpc(req.parts))
            && self.headers.iter().all(|h| h.matches(req.parts))
            && self.query.iter().all(|q| q.matches(req.query))
            && self.tls.is_none_or(|t| tls_matches(&t, req.parts))
            && self.path.matches(req)
    }
}

/// Envoy's `Grpc::Common::hasGrpcContentType`: `application/grpc` exactly or followed by `+`.
pub(crate) fn is_grpc(parts: &Parts) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .map(http::HeaderValue::as_bytes)
        .is_some_and(|ct| {
            ct.starts_with(GRPC) && (ct.len() == GRPC.len() || ct[GRPC.len()] == b'+')
        })
}

fn tls_matches(m: &TlsContextMatch, parts: &Parts) -> bool {
    let tls = parts
        .extensions
        .get::<DownstreamTls>()
        .copied()
        .unwrap_or_default();
    m.presented.is_none_or(|p| p == tls.presented) && m.validated.is_none_or(|v| v == tls.validated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(pattern: StringPattern, ignore_case: bool) -> StringMatch {
        StringMatch::compile(
            &StringMatcher {
                pattern,
                ignore_case,
            },
            "f",
        )
        .unwrap()
    }

    #[test]
    fn string_matchers() {
        use StringPattern::*;
        let cases: &[(StringPattern, bool, &str, bool)] = &[
            (Exact("abc".into()), false, "abc", true),
            (Exact("abc".into()), false, "ABC", false),
            (Exact("abc".into()), true, "ABC", true),
            (Exact(String::new()), false, "", true),
            (Exact(String::new()), false, "x", false),
            (Prefix("ab".into()), false, "abc", true),
            (Prefix("AB".into()), true, "abc", true),
            (Prefix("AB".into()), false, "abc", false),
            (Prefix("abcd".into()), true, "abc", false),
            (Suffix("bc".into()), false, "abc", true),
            (Suffix("BC".into()), true, "abc", true),
            (Suffix("xabc".into()), true, "abc", false),
            (Contains("b".into()), false, "abc", true),
            (Contains("B".into()), true, "abc", true),
            (Contains("B".into()), false, "abc", false),
            (SafeRegex("a.c".into()), false, "abc", true),
            (SafeRegex("a.c".into()), false, "xabc", false),
            (SafeRegex("b".into()), false, "abc", false),
            (SafeRegex("A.C".into()), true, "abc", false),
            (SafeRegex("a|b".into()), false, "b", true),
            (
                SafeRegex(r"^user=test-\d+$".into()),
                false,
                "user=test-12",
                true,
            ),
        ];
        for (p, ic, v, want) in cases {
            assert_eq!(
                sm(p.clone(), *ic).matches(v),
                *want,
                "{p:?} ic={ic} on {v:?}"
            );
        }
    }

    #[test]
    fn empty_prefix_is_rejected_and_bad_regex_is_an_error() {
        let m = StringMatcher {
            pattern: StringPattern::Prefix(String::new()),
            ignore_case: false,
        };
        assert!(StringMatch::compile(&m, "f").is_err());
        for bad in ["(a", "a)", "(?=x)", r"(a)\1", "a{5,1}"] {
            let err = full_match_regex(bad, "x.safe_regex").unwrap_err();
            assert_eq!(err.field(), "x.safe_regex", "{bad}");
        }
    }

    #[test]
    fn request_paths() {
        let parts = |uri: &str, method: http::Method| {
            http::Request::builder()
                .method(method)
                .uri(uri)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let get = http::Method::GET;
        assert_eq!(request_path(&parts("/a?b", get.clone())), Some("/a?b"));
        assert_eq!(request_path(&parts("http://h", get.clone())), Some("/"));
        assert_eq!(
            request_path(&parts("http://h/x?y", get.clone())),
            Some("/x?y")
        );
        assert_eq!(request_path(&parts("h:443", http::Method::CONNECT)), None);
        let p = parts("http://u:p@h:1/", get);
        assert_eq!(authority(&p), Some(&b"h:1"[..]));
        let view = RequestView::new(&p, true);
        assert_eq!(view.match_path, Some("/"));
    }

    #[test]
    fn path_splitting() {
        assert_eq!(remove_query_and_fragment("/a?b#c"), "/a");
        assert_eq!(remove_query_and_fragment("/a#c?d"), "/a");
        assert_eq!(query_string("/a?b=1&c#frag"), Some("b=1&c"));
        assert_eq!(query_string("/a"), None);
        assert_eq!(query_string("/a?"), Some(""));
    }

    proptest::proptest! {
        /// The view's path parts, read from `http`'s parse of the target, agree with a scan of
        /// the target's text, for any target `http` accepts (`?`, `#` and `;` anywhere).
        #[test]
        fn view_agrees_with_a_scan_of_the_path(
            target in "[/?#;a%=]{0,3}(/[a-z;?#=&%.]{0,6}){0,4}",
            ignore in proptest::bool::ANY,
        ) {
            let Ok(uri) = target.parse::<http::Uri>() else { return Ok(()) };
            let (parts, ()) = http::Request::builder().uri(uri).body(()).unwrap().into_parts();
            let view = RequestView::new(&parts, ignore);
            let path = request_path(&parts);
            let mut want = path.map(remove_query_and_fragment);
            if ignore {
                want = want.map(|p| p.split_once(';').map_or(p, |(head, _)| head));
            }
            proptest::prop_assert_eq!(view.path, path);
            proptest::prop_assert_eq!(view.match_path, want);
            proptest::prop_assert_eq!(view.query, path.and_then(query_string));
        }
    }
}
