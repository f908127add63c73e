//! A deliberately naive linear matcher, written from SEMANTICS §1.2 and §2 without the crate's
//! matcher code: every route is checked in order, every rule is spelled out plainly, and
//! strings are copied freely. It covers the path specifiers `prefix`, `path`, `safe_regex` and
//! `path_separated_prefix`, header and query conditions, runtime fractions and gRPC.

use std::cell::RefCell;
use std::collections::HashMap;

use mesh_core::config::*;
use regex::Regex;

use crate::generate::Req;

/// `(virtual host index, route index)` of the first route that matches, as Envoy scans.
pub(crate) fn find(cfg: &RouteConfiguration, req: &Req) -> Option<(usize, usize)> {
    // The generated tables have the domains `a.com` and `*` only.
    let vh = if req.host.eq_ignore_ascii_case("a.com") {
        0
    } else {
        1
    };
    let routes = &cfg.virtual_hosts[vh].routes;
    for (i, route) in routes.iter().enumerate() {
        if route_matches(cfg, &route.route_match, req) {
            return Some((vh, i));
        }
    }
    None
}

fn route_matches(cfg: &RouteConfiguration, m: &RouteMatch, req: &Req) -> bool {
    if let Some(f) = &m.runtime_fraction {
        assert_eq!(f.default_value.denominator, Denominator::Hundred);
        if req.random % 100 >= u64::from(f.default_value.numerator) {
            return false;
        }
    }
    if m.grpc {
        let ct = req.content_type.unwrap_or("");
        if !(ct == "application/grpc" || ct.starts_with("application/grpc+")) {
            return false;
        }
    }
    for h in &m.headers {
        if !header_matches(h, req) {
            return false;
        }
    }
    for q in &m.query_parameters {
        if !query_matches(q, &req.path) {
            return false;
        }
    }
    assert!(m.tls_context.is_none(), "the reference has no TLS");
    path_matches(cfg, m, &req.path)
}

fn path_matches(cfg: &RouteConfiguration, m: &RouteMatch, full_path: &str) -> bool {
    let mut path = full_path.to_owned();
    if let Some(i) = path.find('?') {
        path.truncate(i);
    }
    if let Some(i) = path.find('#') {
        path.truncate(i);
    }
    if cfg.ignore_path_parameters_in_path_matching
        && let Some(i) = path.find(';')
    {
        path.truncate(i);
    }
    let fold = |s: &str| {
        if m.case_sensitive {
            s.to_owned()
        } else {
            s.to_ascii_lowercase()
        }
    };
    match &m.path {
        PathMatch::Prefix(p) => fold(&path).starts_with(&fold(p)),
        PathMatch::Path(p) => fold(&path) == fold(p),
        PathMatch::SafeRegex(r) => full_match(r, &path),
        PathMatch::PathSeparatedPrefix(p) => {
            fold(&path).starts_with(&fold(p))
                && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
        }
        other => panic!("the reference does not handle {other:?}"),
    }
}

thread_local! {
    /// Compiled regexes by pattern (compiling per evaluation made the tests slow).
    static REGEXES: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
}

fn full_match(pattern: &str, value: &str) -> bool {
    REGEXES.with(|cache| {
        cache
            .borrow_mut()
            .entry(pattern.to_owned())
            .or_insert_with(|| {
                Regex::new(&format!("^(?:{pattern})$")).expect("generated regexes compile")
            })
            .is_match(value)
    })
}

fn header_matches(h: &HeaderMatcher, req: &Req) -> bool {
    let name = h.name.to_ascii_lowercase();
    let value: Option<String> = if name == ":method" {
        Some(req.method.to_owned())
    } else {
        let values: Vec<&str> = req
            .headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .collect();
        if values.is_empty() {
            None
        } else {
            Some(values.join(","))
        }
    };
    if let HeaderMatchSpec::Present(want) = h.spec {
        return (value.is_some() == want) != h.invert_match;
    }
    let value = match value {
        Some(v) => v,
        None if h.treat_missing_header_as_empty => String::new(),
        None => return false,
    };
    let result = match &h.spec {
        HeaderMatchSpec::String(s) => string_matches(s, &value),
        HeaderMatchSpec::Range { start, end } => match value.parse::<i64>() {
            Ok(v) => *start <= v && v < *end,
            Err(_) => false,
        },
        HeaderMatchSpec::Present(_) => unreachable!(),
    };
    result != h.invert_match
}

fn string_matches(s: &StringMatcher, value: &str) -> bool {
    let fold = |x: &str| {
        if s.ignore_case {
            x.to_ascii_lowercase()
        } else {
            x.to_owned()
        }
    };
    match &s.pattern {
        StringPattern::Exact(e) => fold(value) == fold(e),
        StringPattern::Prefix(p) => fold(value).starts_with(&fold(p)),
        StringPattern::Suffix(p) => fold(value).ends_with(&fold(p)),
        StringPattern::Contains(p) => fold(value).contains(&fold(p)),
        StringPattern::SafeRegex(r) => full_match(r, value),
    }
}

fn query_matches(q: &QueryParameterMatcher, full_path: &str) -> bool {
    let Some((_, query)) = full_path.split_once('?') else {
        return false;
    };
    let mut found = None;
    for pair in query.split('&') {
        let (k, v) = match pair.split_once('=') {
            Some((k, v)) => (k, v),
            None => (pair, ""),
        };
        if k == q.name {
            found = Some(v);
            break;
        }
    }
    match (found, &q.string_match) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(v), Some(s)) => string_matches(s, v),
    }
}
