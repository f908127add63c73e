//! Path specifiers (SEMANTICS §2.3): `prefix`, `path`, `safe_regex`, `path_separated_prefix`,
//! `connect_matcher` and URI templates.
//!
//! Paths are compared with the query and fragment removed (and parameters after `;` when the
//! route configuration says so). `case_sensitive: false` compares ASCII case-insensitively and is
//! ignored by regexes and templates. Routes other than `connect_matcher` never match a request
//! without a path; `connect_matcher` matches only `CONNECT`.
//!
//! URI templates follow Envoy's `uri_template` extension (`uri_template_internal.cc`): the
//! template is parsed, validated and turned into a regex that must match the whole path.
//! `*` is one segment of path characters, `**` any number of segments (nothing may glob after
//! it), `{name}`/`{name=*}` a named segment, `{name=a/*}` a multi-segment capture and
//! `{name=**}` a capture of the rest; a literal suffix may follow the last operator
//! (`/{file}.jpg`).

use std::collections::HashSet;

use http::Method;
use mesh_core::config::PathMatch;
use regex::Regex;

use super::{RequestView, full_match_regex, starts_with};
use crate::table::BuildError;

/// A compiled path specifier.
#[derive(Debug, Clone)]
pub(crate) enum PathMatcher {
    /// The path starts with `prefix`.
    Prefix {
        prefix: String,
        case_sensitive: bool,
    },
    /// The path equals `path`.
    Exact { path: String, case_sensitive: bool },
    /// The whole path matches.
    Regex(Regex),
    /// The path equals `prefix` or continues with `/` after it.
    SeparatedPrefix {
        prefix: String,
        case_sensitive: bool,
    },
    /// `CONNECT` requests only.
    Connect,
    /// A URI template compiled to a full-match regex.
    Template(Regex),
}

impl PathMatcher {
    /// Compiles a path specifier; `field` is the route's `match` path.
    pub(crate) fn compile(
        spec: &PathMatch,
        case_sensitive: bool,
        field: &str,
    ) -> Result<Self, BuildError> {
        Ok(match spec {
            PathMatch::Prefix(p) => Self::Prefix {
                prefix: p.clone(),
                case_sensitive,
            },
            PathMatch::Path(p) => Self::Exact {
                path: p.clone(),
                case_sensitive,
            },
            PathMatch::SafeRegex(r) => {
                Self::Regex(full_match_regex(r, &format!("{field}.safe_regex"))?)
            }
            PathMatch::PathSeparatedPrefix(p) => {
                if !is_valid_separated_prefix(p) {
                    return Err(BuildError::invalid(
                        format!("{field}.path_separated_prefix"),
                        format!("{p:?} must match ^[^?#]+[^?#/]$"),
                    ));
                }
                Self::SeparatedPrefix {
                    prefix: p.clone(),
                    case_sensitive,
                }
            }
            PathMatch::ConnectMatcher => Self::Connect,
            PathMatch::PathTemplate(t) => {
                let field = format!("{field}.path_match_policy.path_template");
                let re = template_regex(t).map_err(|reason| BuildError::PathTemplate {
                    field: field.clone(),
                    template: t.clone(),
                    reason,
                })?;
                Self::Template(full_match_regex(&re, &field)?)
            }
        })
    }

    /// True when the request satisfies the specifier.
    pub(crate) fn matches(&self, req: &RequestView<'_>) -> bool {
        if let Self::Connect = self {
            return req.parts.method == Method::CONNECT;
        }
        req.match_path.is_some_and(|p| self.matches_path(p))
    }

    /// The path part of [`matches`](Self::matches), on a path without query.
    pub(crate) fn matches_path(&self, path: &str) -> bool {
        match self {
            Self::Prefix {
                prefix,
                case_sensitive,
            } => starts_with(path, prefix, *case_sensitive),
            Self::Exact {
                path: want,
                case_sensitive,
            } => {
                if *case_sensitive {
                    path == want
                } else {
                    path.eq_ignore_ascii_case(want)
                }
            }
            Self::Regex(re) | Self::Template(re) => re.is_match(path),
            Self::SeparatedPrefix {
                prefix,
                case_sensitive,
            } => {
                starts_with(path, prefix, *case_sensitive)
                    && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
            }
            Self::Connect => false,
        }
    }

    /// How many leading bytes of `:path` `prefix_rewrite` replaces (Envoy's "matched path"):
    /// the configured prefix or path, or the whole path without query for regex and CONNECT
    /// routes. `None` for templates, which cannot be combined with `prefix_rewrite`.
    pub(crate) fn matched_len(&self, path_without_query: &str) -> Option<usize> {
        match self {
            Self::Prefix { prefix, .. } | Self::SeparatedPrefix { prefix, .. } => {
                Some(prefix.len())
            }
            Self::Exact { path, .. } => Some(path.len()),
            Self::Regex(_) | Self::Connect => Some(path_without_query.len()),
            Self::Template(_) => None,
        }
    }
}

/// `^[^?#]+[^?#/]$`.
fn is_valid_separated_prefix(p: &str) -> bool {
    p.len() >= 2 && !p.contains(['?', '#']) && !p.ends_with('/')
}

// === URI templates ===

const MAX_VARIABLES: usize = 5;
const MAX_VARIABLE_NAME_LEN: usize = 16;
/// Envoy's `kLiteral` (RFC 3986 pchar less `*` and `=`), as a regex class body.
const PATH_CHARS: &str = r"a-zA-Z0-9\-._~%!$&'()+,;:@";

#[derive(Debug)]
enum Segment<'t> {
    Literal(&'t str),
    /// `*` (false) or `**` (true).
    Glob(bool),
    Variable {
        name: &'t str,
        /// Empty means `*`.
        parts: Vec<Segment<'t>>,
    },
}

fn is_literal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~%!$&'()+,;:@".contains(c)
}

/// Consumes a literal up to the next `/`.
fn literal(s: &str) -> Result<(&str, &str), String> {
    let end = s.find('/').unwrap_or(s.len());
    let (lit, rest) = s.split_at(end);
    if lit.is_empty() || !lit.chars().all(is_literal_char) {
        return Err(format!("invalid literal {lit:?}"));
    }
    Ok((lit, rest))
}

fn glob(s: &str) -> (Segment<'_>, &str) {
    match s.strip_prefix("**") {
        Some(rest) => (Segment::Glob(true), rest),
        None => (Segment::Glob(false), &s[1..]),
    }
}

fn variable(s: &str) -> Result<(Segment<'_>, &str), String> {
    let body = &s[1..];
    let (inner, rest) = body
        .split_once('}')
        .ok_or_else(|| "unmatched variable bracket".to_owned())?;
    let (name, pattern) = match inner.split_once('=') {
        Some((n, p)) => (n, Some(p)),
        None => (inner, None),
    };
    let mut chars = name.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!("invalid variable name {name:?}"));
    }
    let mut parts = Vec::new();
    if let Some(mut p) = pattern {
        if p.is_empty() {
            return Err(format!("empty match for variable {name:?}"));
        }
        while !p.is_empty() {
            let (seg, after) = if p.starts_with('*') {
                glob(p)
            } else {
                let (lit, after) = literal(p)?;
                (Segment::Literal(lit), after)
            };
            parts.push(seg);
            p = after;
            if !p.is_empty() {
                if !p.starts_with('/') || p.len() == 1 {
                    return Err(format!("invalid match for variable {name:?}"));
                }
                p = &p[1..];
            }
        }
    }
    Ok((Segment::Variable { name, parts }, rest))
}

/// Parses and validates a URI template and returns the equivalent regex (unanchored).
pub(crate) fn template_regex(template: &str) -> Result<String, String> {
    let Some(mut rest) = template.strip_prefix('/') else {
        return Err("must start with '/'".into());
    };
    if !rest.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must contain only printable characters".into());
    }
    let mut segments = Vec::new();
    let mut suffix = "";
    while !rest.is_empty() {
        let (seg, after) = if rest.starts_with('*') {
            glob(rest)
        } else if rest.starts_with('{') {
            variable(rest)?
        } else {
            let (lit, after) = literal(rest)?;
            (Segment::Literal(lit), after)
        };
        segments.push(seg);
        rest = after;
        if rest.is_empty() {
            break;
        }
        if rest == "/" {
            segments.push(Segment::Literal(""));
            break;
        }
        if let Some(after) = rest.strip_prefix('/') {
            rest = after;
        } else {
            let (lit, after) = literal(rest)?;
            if !after.is_empty() {
                return Err("a literal suffix may only end the template".into());
            }
            suffix = lit;
            break;
        }
    }
    validate(&segments)?;

    let mut re = String::with_capacity(template.len() * 4);
    for seg in &segments {
        re.push('/');
        push_regex(&mut re, seg);
    }
    if segments.is_empty() {
        re.push('/');
    }
    re.push_str(&regex::escape(suffix));
    Ok(re)
}

fn validate(segments: &[Segment<'_>]) -> Result<(), String> {
    let mut names = HashSet::new();
    let mut seen_text_glob = false;
    for seg in segments {
        match seg {
            Segment::Literal(_) => {}
            Segment::Glob(text) => {
                if seen_text_glob {
                    return Err("no glob may follow '**'".into());
                }
                seen_text_glob = *text;
            }
            Segment::Variable { name, parts } => {
                if names.len() >= MAX_VARIABLES {
                    return Err(format!("more than {MAX_VARIABLES} variables"));
                }
                if name.len() > MAX_VARIABLE_NAME_LEN {
                    return Err(format!("variable name {name:?} is too long"));
                }
                if !names.insert(*name) {
                    return Err(format!("repeated variable name {name:?}"));
                }
                if parts.is_empty() && seen_text_glob {
                    return Err("no glob may follow '**'".into());
                }
                for p in parts {
                    if let Segment::Glob(text) = p {
                        if seen_text_glob {
                            return Err("no glob may follow '**'".into());
                        }
                        seen_text_glob = *text;
                    }
                }
            }
        }
    }
    Ok(())
}

fn push_regex(re: &mut String, seg: &Segment<'_>) {
    match seg {
        Segment::Literal(l) => re.push_str(&regex::escape(l)),
        Segment::Glob(false) => {
            re.push('[');
            re.push_str(PATH_CHARS);
            re.push_str("]+");
        }
        Segment::Glob(true) => {
            re.push('[');
            re.push_str(PATH_CHARS);
            re.push_str("/]*");
        }
        Segment::Variable { name, parts } => {
            re.push_str("(?P<");
            re.push_str(name);
            re.push('>');
            if parts.is_empty() {
                push_regex(re, &Segment::Glob(false));
            }
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    re.push('/');
                }
                push_regex(re, p);
            }
            re.push(')');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(spec: PathMatch, cs: bool) -> PathMatcher {
        PathMatcher::compile(&spec, cs, "m").unwrap()
    }

    #[test]
    fn prefix_path_and_regex() {
        use PathMatch::*;
        let cases: &[(PathMatch, bool, &str, bool)] = &[
            (Prefix("/api".into()), true, "/api", true),
            (Prefix("/api".into()), true, "/apix", true),
            (Prefix("/api".into()), true, "/API", false),
            (Prefix("/api".into()), false, "/API/x", true),
            (Prefix(String::new()), true, "/anything", true),
            (Prefix("/api".into()), true, "/ap", false),
            (Path("/foo".into()), true, "/foo", true),
            (Path("/foo".into()), true, "/foo/", false),
            (Path("/foo".into()), true, "/FOO", false),
            (Path("/foo".into()), false, "/FOO", true),
            (SafeRegex("/v[0-9]+/.*".into()), true, "/v1/x", true),
            (SafeRegex("/v[0-9]+".into()), true, "/v1/x", false),
            (SafeRegex("/v[0-9]+".into()), false, "/V1", false),
            (SafeRegex("(?i)/v[0-9]+".into()), true, "/V1", true),
        ];
        for (spec, cs, path, want) in cases {
            assert_eq!(
                matcher(spec.clone(), *cs).matches_path(path),
                *want,
                "{spec:?} cs={cs} {path:?}"
            );
        }
    }

    /// SEMANTICS §2.3: `/api/dev` matches `/api/dev`, `/api/dev/`, `/api/dev/v1`, `/api/dev?x=1`,
    /// not `/api/developer`.
    #[test]
    fn path_separated_prefix() {
        let m = matcher(PathMatch::PathSeparatedPrefix("/api/dev".into()), true);
        for (p, want) in [
            ("/api/dev", true),
            ("/api/dev/", true),
            ("/api/dev/v1", true),
            ("/api/developer", false),
            ("/api/de", false),
            ("/API/dev", false),
        ] {
            assert_eq!(m.matches_path(p), want, "{p}");
        }
        let ci = matcher(PathMatch::PathSeparatedPrefix("/api/dev".into()), false);
        assert!(ci.matches_path("/API/Dev/x"));
        for bad in ["/api/", "/a?b", "/a#b", "/", ""] {
            assert!(
                PathMatcher::compile(&PathMatch::PathSeparatedPrefix(bad.into()), true, "m")
                    .is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn templates_match() {
        let cases: &[(&str, &str, bool)] = &[
            ("/foo/*", "/foo/bar", true),
            ("/foo/*", "/foo/bar/baz", false),
            ("/foo/*", "/foo/", false),
            ("/foo/**", "/foo/bar/baz", true),
            ("/foo/**", "/foo/", true),
            ("/foo/**", "/foo", false),
            ("/{a}/{b}", "/x/y", true),
            ("/{a}/{b}", "/x/y/z", false),
            ("/{a=*}", "/x", true),
            ("/v/{rest=**}", "/v/a/b/c", true),
            ("/v/{p=a/*}/z", "/v/a/b/z", true),
            ("/v/{p=a/*}/z", "/v/c/b/z", false),
            ("/{file}.jpg", "/cat.jpg", true),
            ("/{file}.jpg", "/cat.png", false),
            (
                "/videos/*/{id}/{fmt}/{seg=**}.ts",
                "/videos/x/1/hd/a/b.ts",
                true,
            ),
            ("/a/", "/a/", true),
            ("/a/", "/a", false),
            ("/", "/", true),
            ("/a.b", "/aXb", false),
            ("/*", "/a%20b", true),
            ("/*", "/a b", false),
        ];
        for (t, p, want) in cases {
            let m = matcher(PathMatch::PathTemplate((*t).into()), true);
            assert_eq!(m.matches_path(p), *want, "{t} on {p}");
        }
    }

    #[test]
    fn bad_templates_are_build_errors() {
        for bad in [
            "foo",
            "/foo//bar",
            "/**/a/*",
            "/**/{x}",
            "/{x=**}/*",
            "/{a}/{a}",
            "/{1a}",
            "/{a",
            "/{a=}",
            "/{a=b/}",
            "/{a}/{b}/{c}/{d}/{e}/{f}",
            "/{abcdefghijklmnopq}",
            "/a*b",
            "/*.jpg/x",
            "/a b",
            "/a?b",
        ] {
            let err = PathMatcher::compile(&PathMatch::PathTemplate(bad.into()), true, "m")
                .expect_err(bad);
            assert!(
                matches!(err, BuildError::PathTemplate { .. }),
                "{bad}: {err}"
            );
        }
        // `**` last, with a suffix, is fine.
        assert!(template_regex("/a/**.m4s").is_ok());
    }
}
