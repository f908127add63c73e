//! Path normalisation of the HTTP connection manager, as Envoy does it before routing
//! (`normalize_path`, `merge_slashes`, `path_with_escaped_slashes_action`).
//!
//! The steps, in Envoy's order, on the part of the path before the first `?` (the query is
//! never touched):
//!
//! 1. Escaped slashes: `%2F`, `%2f` become `/` and `%5C`, `%5c` become `\`, unless the action
//!    keeps them; the action may instead refuse the request or redirect it.
//! 2. `normalize_path`: RFC 3986 §5.2.4 dot-segment removal (never above the root; `%2e`
//!    counts as a dot), `\` becomes `/`, escaped unreserved characters (`A-Z a-z 0-9 - . _ ~`)
//!    are decoded, `%00` refuses the request, other escapes are kept as they are (case
//!    included), and the characters a path may not hold raw (space, `"`, `<`, `>`, `^`, `` ` ``,
//!    `{`, `|`, `}`, controls and bytes ≥ 0x80) are percent-encoded.
//! 3. `merge_slashes`: runs of `/` become one.
//!
//! Routing, filters and the upstream request all see the result, so that `/public/../admin`,
//! `//admin` and `/%61dmin` cannot slip past a route that guards `/admin`.

use mesh_core::config::{EscapedSlashesAction, HttpConnectionManager};

/// What normalisation made of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Normalized {
    /// Nothing to change.
    Unchanged,
    /// Forward (and route) this path instead.
    Changed(String),
    /// Refuse the request with 400.
    Reject,
    /// Redirect the client (307) to this path.
    Redirect(String),
}

/// Whether any normalisation is configured.
pub(crate) fn enabled(hcm: &HttpConnectionManager) -> bool {
    hcm.normalize_path
        || hcm.merge_slashes
        || hcm.path_with_escaped_slashes_action != EscapedSlashesAction::KeepUnchanged
}

/// Normalises `path_and_query` as `hcm` says.
pub(crate) fn normalize(path_and_query: &str, hcm: &HttpConnectionManager) -> Normalized {
    let (path, query) = match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    };
    // Fast path: nothing any step would change.
    let special = |b: &u8| {
        matches!(b, b'%' | b'.' | b'\\' | b';') || !b.is_ascii_graphic() || b"\"<>^`{|}".contains(b)
    };
    if !(path.as_bytes().iter().any(special) || hcm.merge_slashes && path.contains("//")) {
        return Normalized::Unchanged;
    }
    let mut out = std::borrow::Cow::Borrowed(path);
    let mut redirect = false;
    match hcm.path_with_escaped_slashes_action {
        EscapedSlashesAction::KeepUnchanged => {}
        action => {
            if let Some(unescaped) = unescape_slashes(&out) {
                match action {
                    EscapedSlashesAction::RejectRequest => return Normalized::Reject,
                    EscapedSlashesAction::UnescapeAndRedirect => redirect = true,
                    _ => {}
                }
                out = unescaped.into();
            }
        }
    }
    if hcm.normalize_path {
        match canonical_path(&out) {
            Some(p) => out = p.into(),
            None => return Normalized::Reject,
        }
    }
    if hcm.merge_slashes
        && let Some(m) = merge_slashes(&out)
    {
        out = m.into();
    }
    let changed = out != path;
    let full = || format!("{out}{query}");
    match (redirect, changed) {
        (true, _) => Normalized::Redirect(full()),
        (false, true) => Normalized::Changed(full()),
        (false, false) => Normalized::Unchanged,
    }
}

/// `%2F`/`%2f` → `/`, `%5C`/`%5c` → `\`; `None` when there is none.
pub(crate) fn unescape_slashes(path: &str) -> Option<String> {
    let b = path.as_bytes();
    let is_slash = |i: usize| {
        b.get(i) == Some(&b'%')
            && matches!(
                (b.get(i + 1), b.get(i + 2)),
                (Some(b'2'), Some(b'f' | b'F')) | (Some(b'5'), Some(b'c' | b'C'))
            )
    };
    if !(0..b.len()).any(is_slash) {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if is_slash(i) {
            out.push(if b[i + 1] == b'2' { '/' } else { '\\' });
            i += 3;
        } else {
            let ch = path[i..].chars().next().expect("i is on a char boundary");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    Some(out)
}

/// RFC 3986 normalisation of a path (no query) as Envoy's `normalize_path` does it; `None` when
/// the path must be refused (`%00`).
pub(crate) fn canonical_path(path: &str) -> Option<String> {
    // Pass 1: escapes and characters, `\` → `/`.
    let b = path.as_bytes();
    let mut flat = String::with_capacity(path.len() + 1);
    if !matches!(b.first(), Some(b'/' | b'\\')) {
        flat.push('/');
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|x| hex(*x)),
                b.get(i + 2).and_then(|x| hex(*x)),
            )
        {
            let v = h * 16 + l;
            if v == 0 {
                return None;
            }
            if is_unreserved(v) {
                flat.push(char::from(v));
            } else {
                flat.push_str(&path[i..i + 3]);
            }
            i += 3;
            continue;
        }
        match c {
            0 => return None,
            b'\\' => flat.push('/'),
            c if !(0x21..0x7f).contains(&c) || b"\"<>^`{|}".contains(&c) => {
                flat.push_str(&format!("%{c:02X}"));
            }
            c => flat.push(char::from(c)),
        }
        i += 1;
    }
    // Pass 2: dot segments (`..;params` and `.;params` count as dots, as in Envoy).
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing = false;
    let segments: Vec<&str> = flat[1..].split('/').collect();
    let last = segments.len() - 1;
    for (k, seg) in segments.into_iter().enumerate() {
        let dots = match seg {
            "." => 1,
            ".." => 2,
            s if s.starts_with("..;") => 2,
            s if s.starts_with(".;") => 1,
            _ => 0,
        };
        match dots {
            1 => trailing = k == last,
            2 => {
                stack.pop();
                trailing = k == last;
            }
            _ => {
                stack.push(seg);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(flat.len());
    out.push('/');
    out.push_str(&stack.join("/"));
    if trailing && !stack.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// Runs of `/` become one; `None` when there is no `//`.
pub(crate) fn merge_slashes(path: &str) -> Option<String> {
    if !path.contains("//") {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    if path.starts_with('/') {
        out.push('/');
    }
    out.push_str(
        &path
            .split('/')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/"),
    );
    if path.ends_with('/') && out.len() > 1 {
        out.push('/');
    }
    Some(out)
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hcm(normalize: bool, merge: bool, escaped: EscapedSlashesAction) -> HttpConnectionManager {
        HttpConnectionManager {
            normalize_path: normalize,
            merge_slashes: merge,
            path_with_escaped_slashes_action: escaped,
            ..HttpConnectionManager::default()
        }
    }

    /// Envoy's `path_utility_test.cc` cases for `canonicalPath`, and the findings of issue #11.
    #[test]
    fn canonical_paths() {
        for (input, want) in [
            ("/a/b/../c", "/a/c"),
            ("/a/b/./c", "/a/b/c"),
            ("a/b/../c", "/a/c"),
            ("/a/b/../../../../c", "/c"),
            ("/a/..\\c", "/c"),
            ("/%c0%af", "/%c0%af"),
            ("/%5c%25", "/%5c%25"),
            ("/a/b/%2E%2E/c", "/a/c"),
            ("/a/b/%2e%2e/c", "/a/c"),
            ("/a/%2F%2f/c", "/a/%2F%2f/c"),
            ("/A/B/C", "/A/B/C"),
            ("/xyz/..;foo=bar/abc", "/abc"),
            ("/xyz/.;foo=bar", "/xyz/"),
            ("/xyz/..;foo=bar/.;fff=zzz", "/"),
            (
                "/xyz/..;foo=bar/.;fff=zzz/remain;blah-bluh",
                "/remain;blah-bluh",
            ),
            ("/public/../admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/%41%7e%2D%5f", "/A~-_"),
            ("/..", "/"),
            ("/a/b/../../..", "/"),
            ("/a/./b", "/a/b"),
            ("/a/%2e/b", "/a/b"),
            ("/a/..", "/"),
            ("/a/.", "/a/"),
            ("/a/b/..", "/a/"),
            ("/a/..b", "/a/..b"),
            ("/a/.b", "/a/.b"),
            ("/%2e%2e/x", "/x"),
            ("/%2E./x", "/x"),
            ("//admin", "//admin"),
            ("//admin/../x", "//x"),
            (
                "/path\\with%5Cback%5Cslashes",
                "/path/with%5Cback%5Cslashes",
            ),
            (
                "/path/with%3bmixed%5Ccase%Fesequences",
                "/path/with%3bmixed%5Ccase%Fesequences",
            ),
            (
                "/path%Z%30with%XYbad%7Jencoding%",
                "/path%Z0with%XYbad%7Jencoding%",
            ),
            ("/a b\"<>^`{|}", "/a%20b%22%3C%3E%5E%60%7B%7C%7D"),
            ("/foo/bar/../%23boom", "/foo/%23boom"),
            ("/", "/"),
        ] {
            assert_eq!(canonical_path(input).as_deref(), Some(want), "{input}");
        }
        for refused in [
            "/xyz/.%00../abc",
            "/xyz/%00.%00./abc",
            "/xyz/AAAAA%%0000/abc",
        ] {
            assert_eq!(canonical_path(refused), None, "{refused}");
        }
    }

    #[test]
    fn unescaping_slashes() {
        assert_eq!(unescape_slashes("%2f%2F").as_deref(), Some("//"));
        assert_eq!(unescape_slashes("/a%2Fb%2fc/").as_deref(), Some("/a/b/c/"));
        for none in ["%2b", "%2", "%", "/abc%2", "foo%"] {
            assert_eq!(unescape_slashes(none), None, "{none}");
        }
        assert_eq!(unescape_slashes("%%2fa/").as_deref(), Some("%/a/"));
        assert_eq!(
            unescape_slashes("/a%5Cb%5cc/").as_deref(),
            Some("/a\\b\\c/")
        );
    }

    #[test]
    fn merging_slashes() {
        for (input, want) in [
            ("a//b/c", "a/b/c"),
            ("/a//b/c/", "/a/b/c/"),
            ("//a/b/c", "/a/b/c"),
            ("/a/b/c//", "/a/b/c/"),
            ("/a////b/c", "/a/b/c"),
        ] {
            assert_eq!(merge_slashes(input).as_deref(), Some(want), "{input}");
        }
        assert_eq!(merge_slashes("/a/b"), None);
    }

    /// Envoy's `conn_manager_utility_test.cc` cases for the three settings together.
    #[test]
    fn settings_together() {
        use EscapedSlashesAction::*;
        use Normalized::*;
        let changed = |s: &str| Changed(s.to_owned());
        for (h, input, want) in [
            (hcm(false, false, KeepUnchanged), "/xyz/../a", Unchanged),
            (
                hcm(true, false, KeepUnchanged),
                "/xyz/../abc",
                changed("/abc"),
            ),
            (hcm(true, false, KeepUnchanged), "/xyz///abc", Unchanged),
            (
                hcm(true, true, KeepUnchanged),
                "/xyz///abc",
                changed("/xyz/abc"),
            ),
            (
                hcm(false, true, KeepUnchanged),
                "/xyz/..//abc",
                changed("/xyz/../abc"),
            ),
            (
                hcm(false, false, KeepUnchanged),
                "/xyz%2fabc%5Cqrt",
                Unchanged,
            ),
            (hcm(false, false, RejectRequest), "/xyz%2F..//abc", Reject),
            (hcm(false, false, RejectRequest), "/xyz%EA/abc", Unchanged),
            (
                hcm(false, false, UnescapeAndRedirect),
                "/xyz%2F../%5cabc",
                Redirect("/xyz/../\\abc".into()),
            ),
            (
                hcm(false, false, UnescapeAndRedirect),
                "/xyz%30..//abc",
                Unchanged,
            ),
            (
                hcm(false, false, UnescapeAndForward),
                "/xyz%2F../%5Cabc",
                changed("/xyz/../\\abc"),
            ),
            (
                hcm(true, false, UnescapeAndForward),
                "/xyz%2f../%5Cabc",
                changed("//abc"),
            ),
            (
                hcm(true, false, UnescapeAndRedirect),
                "/xyz%2f../%5Cabc%00",
                Reject,
            ),
            (
                hcm(true, true, UnescapeAndForward),
                "/xyz%2f..%5c/%2Fabc",
                changed("/abc"),
            ),
            (
                hcm(true, true, UnescapeAndRedirect),
                "/xyz%2f..%5c/%2Fabc",
                Redirect("/abc".into()),
            ),
            (
                hcm(true, false, KeepUnchanged),
                "/a/../b?x=/../y",
                changed("/b?x=/../y"),
            ),
            (
                hcm(true, true, KeepUnchanged),
                "/a//b?a=///c",
                changed("/a/b?a=///c"),
            ),
            (
                hcm(true, false, KeepUnchanged),
                "/plain/path?q=%2e%2e",
                Unchanged,
            ),
        ] {
            assert_eq!(normalize(input, &h), want, "{input}");
        }
    }
}
