//! Header conditions (Envoy's `HeaderMatcher`, `HeaderUtility::matchHeaders`; SEMANTICS §2.4).
//!
//! - Names are case-insensitive; `:method`, `:path`, `:authority` and `:scheme` are read from the
//!   request parts (other pseudo-headers are always missing); `host` is read as `:authority`,
//!   since HTTP/2 requests carry no `host` header.
//! - Several instances of a header are joined with `,` before matching (the only case that
//!   allocates).
//! - A missing header (without `treat_missing_header_as_empty`) matches only `present_match:
//!   false`, or `present_match: true` with `invert_match`; every other specifier is false, inverted
//!   or not. With `treat_missing_header_as_empty` it is evaluated as `""`.
//! - `invert_match` flips the result after evaluation.
//! - A value that is not UTF-8 never satisfies a string or range specifier.

use std::borrow::Cow;

use http::header::{HeaderMap, HeaderName};
use http::request::Parts;
use mesh_core::config::{HeaderMatchSpec, HeaderMatcher};

use super::StringMatch;
use crate::table::BuildError;

/// A compiled [`HeaderMatcher`], usable on request parts or on any header map (retry policies
/// match response headers with the same rules).
///
/// # Examples
///
/// ```
/// use mesh_core::config::HeaderMatcher;
/// use mesh_route::HeaderMatch;
///
/// let m = HeaderMatch::new(&HeaderMatcher::exact("x-env", "prod")).unwrap();
/// let mut headers = http::HeaderMap::new();
/// headers.append("x-env", "prod".parse().unwrap());
/// assert!(m.matches_headers(&headers));
/// headers.append("x-env", "dev".parse().unwrap()); // joined as "prod,dev"
/// assert!(!m.matches_headers(&headers));
/// ```
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    key: Key,
    spec: Spec,
    invert: bool,
    treat_missing_as_empty: bool,
}

#[derive(Debug, Clone)]
enum Key {
    Method,
    Path,
    Authority,
    Scheme,
    /// A pseudo-header we do not know, or a name that is not a valid header name: never present.
    Absent,
    Name(HeaderName),
}

#[derive(Debug, Clone)]
enum Spec {
    String(StringMatch),
    Range { start: i64, end: i64 },
    Present(bool),
}

impl HeaderMatch {
    /// Compiles a header condition.
    ///
    /// # Errors
    /// [`BuildError`] when a regex does not compile or a prefix/suffix/contains pattern is empty.
    pub fn new(m: &HeaderMatcher) -> Result<Self, BuildError> {
        Self::compile(m, "headers")
    }

    pub(crate) fn compile(m: &HeaderMatcher, field: &str) -> Result<Self, BuildError> {
        let name = m.name.to_ascii_lowercase();
        let key = match name.as_str() {
            ":method" => Key::Method,
            ":path" => Key::Path,
            ":authority" | "host" => Key::Authority,
            ":scheme" => Key::Scheme,
            n if n.starts_with(':') => Key::Absent,
            n => HeaderName::from_bytes(n.as_bytes()).map_or(Key::Absent, Key::Name),
        };
        let spec = match &m.spec {
            HeaderMatchSpec::String(s) => {
                Spec::String(StringMatch::compile(s, &format!("{field}.string_match"))?)
            }
            HeaderMatchSpec::Range { start, end } => Spec::Range {
                start: *start,
                end: *end,
            },
            HeaderMatchSpec::Present(p) => Spec::Present(*p),
        };
        Ok(Self {
            key,
            spec,
            invert: m.invert_match,
            treat_missing_as_empty: m.treat_missing_header_as_empty,
        })
    }

    /// Evaluates the condition on a request (pseudo-headers come from the parts).
    pub fn matches(&self, parts: &Parts) -> bool {
        let value = match &self.key {
            Key::Method => Some(Cow::Borrowed(parts.method.as_str().as_bytes())),
            Key::Path => super::request_path(parts).map(|p| Cow::Borrowed(p.as_bytes())),
            Key::Authority => super::authority(parts).map(Cow::Borrowed),
            Key::Scheme => super::scheme(parts).map(|s| Cow::Borrowed(s.as_bytes())),
            Key::Absent => None,
            Key::Name(n) => joined(&parts.headers, n),
        };
        self.evaluate(value.as_deref())
    }

    /// Evaluates the condition on a plain header map: pseudo-headers are missing, except that
    /// `:authority` reads `host`.
    pub fn matches_headers(&self, headers: &HeaderMap) -> bool {
        let value = match &self.key {
            Key::Authority => joined(headers, &http::header::HOST),
            Key::Name(n) => joined(headers, n),
            Key::Method | Key::Path | Key::Scheme | Key::Absent => None,
        };
        self.evaluate(value.as_deref())
    }

    /// The decision table of SEMANTICS §2.4 on an already looked-up value.
    fn evaluate(&self, value: Option<&[u8]>) -> bool {
        if let Spec::Present(want) = self.spec {
            return (value.is_some() == want) != self.invert;
        }
        let value = match value {
            Some(v) => v,
            None if self.treat_missing_as_empty => b"",
            None => return false,
        };
        let result = match &self.spec {
            Spec::String(s) => std::str::from_utf8(value).is_ok_and(|v| s.matches(v)),
            Spec::Range { start, end } => std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| *start <= v && v < *end),
            Spec::Present(_) => unreachable!("handled above"),
        };
        result != self.invert
    }
}

/// All values of `name` joined with `,` (borrowed when there is just one).
pub(crate) fn joined<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<Cow<'a, [u8]>> {
    // Most header conditions ask for a header most requests lack. In a map of a few names
    // (a request has about six) comparing them costs less than hashing the one looked for:
    // the 100-route bench spent a tenth of its routing there.
    if headers.keys_len() <= 8 && !headers.keys().any(|k| k == name) {
        return None;
    }
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(Cow::Borrowed(first.as_bytes()));
    };
    let mut out = Vec::with_capacity(first.len() + second.len() + 16);
    out.extend_from_slice(first.as_bytes());
    for v in std::iter::once(second).chain(values) {
        out.push(b',');
        out.extend_from_slice(v.as_bytes());
    }
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::config::{StringMatcher, StringPattern};

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::post("https://example.com:8443/p/q?x=1");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn hm(spec: HeaderMatchSpec, invert: bool, missing_empty: bool) -> HeaderMatch {
        HeaderMatch::new(&HeaderMatcher {
            name: "X-Test".into(),
            spec,
            invert_match: invert,
            treat_missing_header_as_empty: missing_empty,
        })
        .unwrap()
    }

    fn exact(v: &str) -> HeaderMatchSpec {
        HeaderMatchSpec::String(StringMatcher::exact(v))
    }

    fn regex(v: &str) -> HeaderMatchSpec {
        HeaderMatchSpec::String(StringMatcher {
            pattern: StringPattern::SafeRegex(v.into()),
            ignore_case: false,
        })
    }

    fn range() -> HeaderMatchSpec {
        HeaderMatchSpec::Range { start: 0, end: 10 }
    }

    /// The missing-header / invert / treat-as-empty matrix of SEMANTICS §2.4.
    #[test]
    fn missing_header_matrix() {
        let missing = parts(&[]);
        // (spec, invert, treat_missing_as_empty, expected on a missing header)
        let cases = [
            (HeaderMatchSpec::Present(true), false, false, false),
            (HeaderMatchSpec::Present(true), true, false, true),
            (HeaderMatchSpec::Present(false), false, false, true),
            (HeaderMatchSpec::Present(false), true, false, false),
            (exact("a"), false, false, false),
            (exact("a"), true, false, false),
            (exact(""), false, true, true),
            (exact("a"), true, true, true),
            (range(), false, false, false),
            (range(), true, false, false),
            (range(), false, true, false),
            (range(), true, true, true),
            (regex("^$"), false, true, true),
            (regex("^$"), false, false, false),
        ];
        for (spec, invert, empty, want) in cases {
            let m = hm(spec.clone(), invert, empty);
            assert_eq!(
                m.matches(&missing),
                want,
                "{spec:?} invert={invert} empty={empty}"
            );
        }
    }

    #[test]
    fn present_header_cases() {
        type Case<'c> = (&'c [(&'c str, &'c str)], HeaderMatchSpec, bool, bool);
        let cases: &[Case<'_>] = &[
            (&[("x-test", "a")], exact("a"), false, true),
            (&[("x-test", "a")], exact("a"), true, false),
            (&[("x-test", "b")], exact("a"), true, true),
            (
                &[("x-test", "a"), ("x-test", "b")],
                exact("a,b"),
                false,
                true,
            ),
            (
                &[("x-test", "a"), ("x-test", "b")],
                exact("a"),
                false,
                false,
            ),
            (
                &[("x-test", "")],
                HeaderMatchSpec::Present(true),
                false,
                true,
            ),
            (
                &[("x-test", "")],
                HeaderMatchSpec::Present(false),
                false,
                false,
            ),
            (&[("x-test", "5")], range(), false, true),
            (&[("x-test", "-1")], range(), false, false),
            (&[("x-test", "+3")], range(), false, true),
            (&[("x-test", "10")], range(), false, false),
            (&[("x-test", "0")], range(), false, true),
            (&[("x-test", "9")], range(), true, false),
            (&[("x-test", "5x")], range(), false, false),
            (&[("x-test", " 5")], range(), false, false),
            (&[("x-test", "99999999999999999999")], range(), false, false),
            (&[("x-test", "")], range(), false, false),
        ];
        for (hs, spec, invert, want) in cases {
            let m = hm(spec.clone(), *invert, false);
            assert_eq!(
                m.matches(&parts(hs)),
                *want,
                "{hs:?} {spec:?} invert={invert}"
            );
        }
    }

    #[test]
    fn non_utf8_values_never_match_strings() {
        let mut p = parts(&[]);
        p.headers.insert(
            "x-test",
            http::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        assert!(!hm(regex(".*"), false, false).matches(&p));
        assert!(hm(regex(".*"), true, false).matches(&p));
        assert!(hm(HeaderMatchSpec::Present(true), false, false).matches(&p));
    }

    #[test]
    fn pseudo_headers() {
        let p = parts(&[("x-forwarded-proto", "http")]);
        let check = |name: &str, value: &str| {
            HeaderMatch::new(&HeaderMatcher::exact(name, value))
                .unwrap()
                .matches(&p)
        };
        assert!(check(":method", "POST"));
        assert!(check(":path", "/p/q?x=1"));
        assert!(check(":authority", "example.com:8443"));
        assert!(check(":scheme", "https"));
        assert!(!check(":protocol", ""));
        assert!(HeaderMatch::new(&HeaderMatcher::present(":protocol")).is_ok());

        let h1 = http::Request::get("/x")
            .header("host", "Foo.com")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let m = HeaderMatch::new(&HeaderMatcher::exact(":authority", "Foo.com")).unwrap();
        assert!(m.matches(&h1));
        let m = HeaderMatch::new(&HeaderMatcher::present(":scheme")).unwrap();
        assert!(!m.matches(&h1), "no scheme and no x-forwarded-proto");
    }
}
