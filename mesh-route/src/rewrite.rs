//! Rewrites: path rewrites (SEMANTICS §3.5), regex substitutions and header mutations (§3.7).
//!
//! **Regex substitutions** use RE2's rewrite syntax (`\0`–`\9` for groups, `\\` for a
//! backslash). They are translated once, at build time, into the `regex` crate's replacement
//! syntax (`${1}`, `$$` for a literal `$`), so `\1x` never turns into the group named `1x`.
//! Replacement is global (RE2 `GlobalReplace`), on the path without query and fragment; the
//! query is kept.
//!
//! **Header mutations** are applied per level: removals first, then additions, where additions
//! are decided against the map as it was after the removals (Envoy's `HeaderParser`): overwrites
//! are applied before appends. `keep_empty_value: false` skips empty values. Values are used
//! verbatim (`%VAR%` substitutions are not expanded yet). Appending always adds another header
//! instance.

use std::borrow::Cow;
use std::net::SocketAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use mesh_core::config::{AppendAction, HeaderMutations, HeaderValueOption, RegexRewrite};
use regex::Regex;

use crate::matcher::{remove_query_and_fragment, search_regex};
use crate::table::BuildError;

// === impl RegexSubst ===

/// A compiled `{pattern, substitution}` pair.
#[derive(Debug, Clone)]
pub(crate) struct RegexSubst {
    regex: Regex,
    /// The substitution in the `regex` crate's syntax.
    replacement: String,
}

impl RegexSubst {
    /// Compiles `r`; `field` names it in errors (e.g. `...route.regex_rewrite`).
    pub(crate) fn compile(r: &RegexRewrite, field: &str) -> Result<Self, BuildError> {
        let regex = search_regex(&r.pattern, &format!("{field}.pattern"))?;
        let groups = regex.captures_len() - 1;
        let replacement = translate_substitution(&r.substitution, groups)
            .map_err(|reason| BuildError::invalid(format!("{field}.substitution"), reason))?;
        Ok(Self { regex, replacement })
    }

    /// Replaces every match in `s`.
    pub(crate) fn replace_all<'s>(&self, s: &'s str) -> Cow<'s, str> {
        self.regex.replace_all(s, self.replacement.as_str())
    }

    /// Applies the substitution to the path without query and fragment, keeping the rest.
    pub(crate) fn rewrite_path(&self, path: &str) -> String {
        let just_path = remove_query_and_fragment(path);
        let mut out = self.replace_all(just_path).into_owned();
        out.push_str(&path[just_path.len()..]);
        out
    }
}

/// Translates an RE2 rewrite string (`\N`, `\\`) into `regex` replacement syntax.
///
/// # Errors
/// A message when a `\` is followed by anything else or a group does not exist (RE2 rejects
/// such rewrites too).
pub(crate) fn translate_substitution(re2: &str, groups: usize) -> Result<String, String> {
    let mut out = String::with_capacity(re2.len() + 8);
    let mut chars = re2.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\') => out.push('\\'),
                Some(d @ '0'..='9') => {
                    let n = d as usize - '0' as usize;
                    if n > groups {
                        return Err(format!(
                            "substitution refers to group \\{n} but the pattern has {groups}"
                        ));
                    }
                    out.push_str("${");
                    out.push(d);
                    out.push('}');
                }
                Some(other) => return Err(format!("invalid escape \\{other} in substitution")),
                None => return Err("substitution ends with a lone '\\'".into()),
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    Ok(out)
}

// === impl PathRewrite ===

/// `prefix_rewrite` or `regex_rewrite` of a route (or of a redirect).
#[derive(Debug, Clone)]
pub(crate) enum PathRewrite {
    /// Replace the first `matched_len` bytes with this.
    Prefix(String),
    /// Regex substitution on the path without query.
    Regex(RegexSubst),
}

impl PathRewrite {
    /// The rewritten `:path` (query kept). `matched_len` is the length of the matched prefix
    /// (see `PathMatcher::matched_len`); a prefix that does not fall on a character boundary
    /// leaves the path unchanged.
    pub(crate) fn apply(&self, path: &str, matched_len: usize) -> String {
        match self {
            Self::Prefix(new) => match (path.get(..matched_len), path.get(matched_len..)) {
                (Some(_), Some(rest)) => {
                    let mut out = String::with_capacity(new.len() + rest.len());
                    out.push_str(new);
                    out.push_str(rest);
                    out
                }
                _ => path.to_owned(),
            },
            Self::Regex(r) => r.rewrite_path(path),
        }
    }
}

// === impl Mutations ===

/// One level of compiled header mutations.
#[derive(Debug, Clone, Default)]
pub(crate) struct Mutations {
    request: Level,
    response: Level,
}

#[derive(Debug, Clone, Default)]
struct Level {
    remove: Vec<HeaderName>,
    add: Vec<Add>,
}

#[derive(Debug, Clone)]
struct Add {
    name: HeaderName,
    value: AddValue,
    action: AppendAction,
    keep_empty: bool,
}

/// A header value: fixed, or a template with Envoy's `%OPERATOR%` substitutions.
#[derive(Debug, Clone)]
enum AddValue {
    Fixed(HeaderValue),
    Template(Vec<Part>),
}

#[derive(Debug, Clone)]
enum Part {
    Lit(String),
    RemoteAddress,
    RemoteAddressWithoutPort,
    RemotePort,
    LocalAddress,
    LocalAddressWithoutPort,
    LocalPort,
    Protocol,
    Req(HeaderName),
}

/// What `%OPERATOR%` header values can read about the request. Fields left `None` render as
/// the empty string (and an empty header is not added unless `keep_empty_value`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestInfo<'a> {
    /// The downstream peer (`%DOWNSTREAM_REMOTE_ADDRESS%` and friends).
    pub downstream_remote: Option<SocketAddr>,
    /// The address the request arrived on (`%DOWNSTREAM_LOCAL_ADDRESS%` and friends).
    pub downstream_local: Option<SocketAddr>,
    /// `HTTP/1.1`, `HTTP/2` … (`%PROTOCOL%`).
    pub protocol: Option<&'a str>,
    /// The request's headers, for `%REQ(name)%` in response headers (request-header values
    /// read the request being changed).
    pub request_headers: Option<&'a HeaderMap>,
}

fn compile_template(value: &str, field: &str) -> Result<AddValue, BuildError> {
    if !value.contains('%') {
        return HeaderValue::from_str(value)
            .map(AddValue::Fixed)
            .map_err(|_| {
                BuildError::invalid(field, format!("{value:?} is not a valid header value"))
            });
    }
    let mut parts = Vec::new();
    let mut rest = value;
    while let Some(i) = rest.find('%') {
        if i > 0 {
            parts.push(Part::Lit(rest[..i].to_owned()));
        }
        let after = &rest[i + 1..];
        let Some(j) = after.find('%') else {
            return Err(BuildError::invalid(
                field,
                format!("{value:?}: unterminated %OPERATOR% (write %% for a literal %)"),
            ));
        };
        let op = &after[..j];
        rest = &after[j + 1..];
        let part = match op {
            "" => Part::Lit("%".into()),
            "DOWNSTREAM_REMOTE_ADDRESS" => Part::RemoteAddress,
            "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Part::RemoteAddressWithoutPort,
            "DOWNSTREAM_REMOTE_PORT" => Part::RemotePort,
            "DOWNSTREAM_LOCAL_ADDRESS" => Part::LocalAddress,
            "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => Part::LocalAddressWithoutPort,
            "DOWNSTREAM_LOCAL_PORT" => Part::LocalPort,
            "PROTOCOL" => Part::Protocol,
            op if op.starts_with("REQ(") && op.ends_with(')') => {
                let name = &op[4..op.len() - 1];
                Part::Req(
                    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
                        BuildError::invalid(field, format!("%REQ({name})%: invalid header name"))
                    })?,
                )
            }
            op => {
                return Err(BuildError::invalid(
                    field,
                    format!("unsupported header value operator %{op}%"),
                ));
            }
        };
        parts.push(part);
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_owned()));
    }
    Ok(AddValue::Template(parts))
}

impl AddValue {
    /// The value for one request (`None` when it renders empty or invalid).
    fn render(&self, info: &RequestInfo<'_>, req: Option<&HeaderMap>) -> Option<HeaderValue> {
        let parts = match self {
            Self::Fixed(v) => return Some(v.clone()),
            Self::Template(parts) => parts,
        };
        let mut out = String::new();
        for p in parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::RemoteAddress => {
                    if let Some(a) = info.downstream_remote {
                        out.push_str(&a.to_string());
                    }
                }
                Part::RemoteAddressWithoutPort => {
                    if let Some(a) = info.downstream_remote {
                        out.push_str(&a.ip().to_string());
                    }
                }
                Part::RemotePort => {
                    if let Some(a) = info.downstream_remote {
                        out.push_str(&a.port().to_string());
                    }
                }
                Part::LocalAddress => {
                    if let Some(a) = info.downstream_local {
                        out.push_str(&a.to_string());
                    }
                }
                Part::LocalAddressWithoutPort => {
                    if let Some(a) = info.downstream_local {
                        out.push_str(&a.ip().to_string());
                    }
                }
                Part::LocalPort => {
                    if let Some(a) = info.downstream_local {
                        out.push_str(&a.port().to_string());
                    }
                }
                Part::Protocol => out.push_str(info.protocol.unwrap_or("")),
                Part::Req(name) => {
                    if let Some(v) = req.and_then(|h| h.get(name)).and_then(|v| v.to_str().ok()) {
                        out.push_str(v);
                    }
                }
            }
        }
        HeaderValue::from_str(&out).ok()
    }
}

impl Mutations {
    /// Compiles `m`; `field` is the path of the object holding it (names are reported as
    /// `{field}.request_headers_to_add[i]` and so on).
    pub(crate) fn compile(m: &HeaderMutations, field: &str) -> Result<Self, BuildError> {
        Ok(Self {
            request: Level::compile(
                &m.request_headers_to_remove,
                &m.request_headers_to_add,
                field,
                "request",
            )?,
            response: Level::compile(
                &m.response_headers_to_remove,
                &m.response_headers_to_add,
                field,
                "response",
            )?,
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }

    pub(crate) fn apply_request(&self, headers: &mut HeaderMap, info: &RequestInfo<'_>) {
        self.request.apply(headers, info, true);
    }

    pub(crate) fn apply_response(&self, headers: &mut HeaderMap, info: &RequestInfo<'_>) {
        self.response.apply(headers, info, false);
    }
}

fn header_name(name: &str, field: &str) -> Result<HeaderName, BuildError> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with(':') || lower == "host" {
        return Err(BuildError::invalid(
            field,
            format!("{name:?}: pseudo-headers and host cannot be modified"),
        ));
    }
    HeaderName::from_bytes(lower.as_bytes())
        .map_err(|_| BuildError::invalid(field, format!("{name:?} is not a valid header name")))
}

impl Level {
    fn compile(
        remove: &[String],
        add: &[HeaderValueOption],
        field: &str,
        which: &str,
    ) -> Result<Self, BuildError> {
        let remove = remove
            .iter()
            .enumerate()
            .map(|(i, n)| header_name(n, &format!("{field}.{which}_headers_to_remove[{i}]")))
            .collect::<Result<_, _>>()?;
        let mut adds = Vec::with_capacity(add.len());
        for (i, h) in add.iter().enumerate() {
            let f = format!("{field}.{which}_headers_to_add[{i}]");
            let name = header_name(&h.key, &f)?;
            if h.value.is_empty() && !h.keep_empty_value {
                // Envoy skips empty values unless asked to keep them.
                continue;
            }
            let value = compile_template(&h.value, &f)?;
            adds.push(Add {
                name,
                value,
                action: h.append_action,
                keep_empty: h.keep_empty_value,
            });
        }
        Ok(Self { remove, add: adds })
    }

    fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    /// Applies the level. `request` says whether `headers` are the request's own (then
    /// `%REQ()%` reads them, before any change).
    fn apply(&self, headers: &mut HeaderMap, info: &RequestInfo<'_>, request: bool) {
        if self.add.is_empty() {
            for name in &self.remove {
                headers.remove(name);
            }
            return;
        }
        // Values first, against the headers as they arrived.
        let req = if request {
            Some(&*headers)
        } else {
            info.request_headers
        };
        let values: Vec<Option<HeaderValue>> = self
            .add
            .iter()
            .map(|a| {
                a.value
                    .render(info, req)
                    .filter(|v| a.keep_empty || !v.is_empty())
            })
            .collect();
        for name in &self.remove {
            headers.remove(name);
        }
        // Decide every addition against the map after removals, then overwrite, then append.
        let decisions: Vec<Decision> = self
            .add
            .iter()
            .zip(&values)
            .map(|(a, v)| match a.action {
                _ if v.is_none() => Decision::Skip,
                AppendAction::AppendIfExistsOrAdd => Decision::Append,
                AppendAction::AddIfAbsent if headers.contains_key(&a.name) => Decision::Skip,
                AppendAction::AddIfAbsent => Decision::Append,
                AppendAction::OverwriteIfExists if !headers.contains_key(&a.name) => Decision::Skip,
                AppendAction::OverwriteIfExists | AppendAction::OverwriteIfExistsOrAdd => {
                    Decision::Overwrite
                }
            })
            .collect();
        for ((a, d), v) in self.add.iter().zip(&decisions).zip(&values) {
            if let (Decision::Overwrite, Some(v)) = (d, v) {
                headers.insert(a.name.clone(), v.clone());
            }
        }
        for ((a, d), v) in self.add.iter().zip(&decisions).zip(values) {
            if let (Decision::Append, Some(v)) = (d, v) {
                headers.append(a.name.clone(), v);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Skip,
    Overwrite,
    Append,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_value_operators() {
        let info = RequestInfo {
            downstream_remote: Some("10.0.0.7:4321".parse().unwrap()),
            downstream_local: Some("[::1]:8080".parse().unwrap()),
            protocol: Some("HTTP/2"),
            request_headers: None,
        };
        let mut req = HeaderMap::new();
        req.insert("x-user", HeaderValue::from_static("ann"));
        let render = |v: &str| {
            compile_template(v, "f")
                .unwrap()
                .render(&info, Some(&req))
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            render("%DOWNSTREAM_REMOTE_ADDRESS%").unwrap(),
            "10.0.0.7:4321"
        );
        assert_eq!(
            render("ip=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%;").unwrap(),
            "ip=10.0.0.7;"
        );
        assert_eq!(
            render("%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%:%DOWNSTREAM_LOCAL_PORT%").unwrap(),
            "::1:8080"
        );
        assert_eq!(
            render("%PROTOCOL% %REQ(X-User)% 100%%").unwrap(),
            "HTTP/2 ann 100%"
        );
        assert_eq!(render("%REQ(x-missing)%").unwrap(), "");
        let e = compile_template("%UPSTREAM_METADATA([\"a\"])%", "h[0]").unwrap_err();
        assert!(
            e.to_string().contains("unsupported header value operator"),
            "{e}"
        );
        assert!(compile_template("50%", "h[0]").is_err());
    }

    fn subst(pattern: &str, substitution: &str) -> RegexSubst {
        RegexSubst::compile(
            &RegexRewrite {
                pattern: pattern.into(),
                substitution: substitution.into(),
            },
            "r",
        )
        .unwrap()
    }

    #[test]
    fn regex_rewrites() {
        let cases = [
            // SEMANTICS §3.5: replaces the first occurrence only.
            (
                r"^(.*?)one(.*)$",
                r"\1two\2",
                "/one/one?q=one",
                "/two/one?q=one",
            ),
            // replace-all
            ("one", "two", "/one/one?q=one", "/two/two?q=one"),
            (
                r"^/service/([^/]+)(/.*)$",
                r"\2/instance/\1",
                "/service/foo/v1/api",
                "/v1/api/instance/foo",
            ),
            // `\1x` is group 1 followed by `x`, not a group named `1x`.
            ("^/(a)", r"/\1x", "/abc", "/axbc"),
            // `$` is literal in RE2 rewrites; `\\` is a backslash; `\0` the whole match.
            ("b", r"$1\\\0", "/abc", r"/a$1\bc"),
            ("^/", "/", "/x#frag", "/x#frag"),
        ];
        for (p, s, input, want) in cases {
            assert_eq!(
                subst(p, s).rewrite_path(input),
                want,
                "{p} -> {s} on {input}"
            );
        }
    }

    #[test]
    fn bad_substitutions() {
        assert!(translate_substitution(r"\2", 1).is_err());
        assert!(translate_substitution(r"\x", 3).is_err());
        assert!(translate_substitution("\\", 3).is_err());
        assert_eq!(translate_substitution(r"a\1$", 1).unwrap(), "a${1}$$");
        let e = RegexSubst::compile(
            &RegexRewrite {
                pattern: "(?<=a)b".into(),
                substitution: String::new(),
            },
            "x.regex_rewrite",
        )
        .unwrap_err();
        assert_eq!(e.field(), "x.regex_rewrite.pattern");
    }

    #[test]
    fn prefix_rewrite() {
        let r = PathRewrite::Prefix("/new".into());
        assert_eq!(r.apply("/old/x?y=1", 4), "/new/x?y=1");
        assert_eq!(r.apply("/OLD", 4), "/new");
        assert_eq!(r.apply("/é", 2), "/é", "not a char boundary: unchanged");
    }

    fn mutations(adds: Vec<HeaderValueOption>, removes: &[&str]) -> Mutations {
        Mutations::compile(
            &HeaderMutations {
                request_headers_to_add: adds,
                request_headers_to_remove: removes.iter().map(|s| (*s).to_owned()).collect(),
                ..HeaderMutations::default()
            },
            "h",
        )
        .unwrap()
    }

    fn values(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    fn opt(key: &str, value: &str, action: AppendAction) -> HeaderValueOption {
        HeaderValueOption {
            key: key.into(),
            value: value.into(),
            append_action: action,
            keep_empty_value: false,
        }
    }

    #[test]
    fn append_actions() {
        use AppendAction::*;
        // (action, existing values, expected values)
        let cases: &[(AppendAction, &[&str], &[&str])] = &[
            (AppendIfExistsOrAdd, &[], &["new"]),
            (AppendIfExistsOrAdd, &["old"], &["old", "new"]),
            (AddIfAbsent, &[], &["new"]),
            (AddIfAbsent, &["old"], &["old"]),
            (OverwriteIfExistsOrAdd, &[], &["new"]),
            (OverwriteIfExistsOrAdd, &["a", "b"], &["new"]),
            (OverwriteIfExists, &[], &[]),
            (OverwriteIfExists, &["old"], &["new"]),
        ];
        for (action, existing, want) in cases {
            let mut h = HeaderMap::new();
            for v in *existing {
                h.append("x-h", HeaderValue::from_static(v));
            }
            mutations(vec![opt("X-H", "new", *action)], &[])
                .apply_request(&mut h, &RequestInfo::default());
            assert_eq!(values(&h, "x-h"), *want, "{action:?} on {existing:?}");
        }
    }

    #[test]
    fn removals_before_additions_and_empty_values() {
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("old"));
        h.insert("x-b", HeaderValue::from_static("keep"));
        let m = mutations(
            vec![
                opt("x-a", "new", AppendAction::AddIfAbsent),
                opt("x-b", "", AppendAction::OverwriteIfExistsOrAdd),
                HeaderValueOption {
                    keep_empty_value: true,
                    ..opt("x-c", "", AppendAction::AppendIfExistsOrAdd)
                },
            ],
            &["x-a"],
        );
        m.apply_request(&mut h, &RequestInfo::default());
        assert_eq!(values(&h, "x-a"), ["new"], "removed, then absent, so added");
        assert_eq!(values(&h, "x-b"), ["keep"], "empty value skipped");
        assert_eq!(values(&h, "x-c"), [""], "kept empty value");

        // Within a level, conditions see the map before this level's additions, and
        // overwrites happen before appends.
        let mut h = HeaderMap::new();
        mutations(
            vec![
                opt("x-d", "1", AppendAction::AppendIfExistsOrAdd),
                opt("x-d", "2", AppendAction::OverwriteIfExistsOrAdd),
                opt("x-e", "1", AppendAction::AddIfAbsent),
                opt("x-e", "2", AppendAction::AddIfAbsent),
            ],
            &[],
        )
        .apply_request(&mut h, &RequestInfo::default());
        assert_eq!(values(&h, "x-d"), ["2", "1"]);
        assert_eq!(values(&h, "x-e"), ["1", "2"]);
    }

    #[test]
    fn invalid_mutations() {
        for (adds, removes) in [
            (vec![HeaderValueOption::set(":path", "/")], vec![]),
            (vec![HeaderValueOption::set("host", "x")], vec![]),
            (vec![HeaderValueOption::set("bad name", "x")], vec![]),
            (vec![HeaderValueOption::set("x", "a\nb")], vec![]),
            (vec![], vec![":authority".to_owned()]),
        ] {
            let m = HeaderMutations {
                request_headers_to_add: adds,
                request_headers_to_remove: removes,
                ..HeaderMutations::default()
            };
            assert!(Mutations::compile(&m, "h").is_err(), "{m:?}");
        }
    }
}
