//! Request builders and a comparable summary of a lookup.

use http::request::Parts;
use mesh_core::config::*;
use mesh_route::{HitAction, RouteTable};

/// A request with a `host` header (HTTP/1 style) and extra headers.
pub(crate) fn req(method: &str, host: Option<&str>, path: &str, headers: &[(&str, &str)]) -> Parts {
    let mut b = http::Request::builder().method(method).uri(path);
    if let Some(h) = host {
        b = b.header("host", h);
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

/// `GET path` for `host`.
pub(crate) fn get(host: &str, path: &str) -> Parts {
    req("GET", Some(host), path, &[])
}

/// `GET path` for `host` with headers.
pub(crate) fn get_with(host: &str, path: &str, headers: &[(&str, &str)]) -> Parts {
    req("GET", Some(host), path, headers)
}

pub(crate) fn table(cfg: &RouteConfiguration) -> RouteTable {
    RouteTable::compile(cfg).unwrap_or_else(|e| panic!("compile: {e}"))
}

/// A config with one catch-all vhost holding `routes`.
pub(crate) fn one_vhost(routes: Vec<Route>) -> RouteConfiguration {
    let mut vh = VirtualHost::new("vh", ["*"]);
    vh.routes = routes;
    RouteConfiguration::new("rc").with_virtual_host(vh)
}

/// What a lookup did, in a form tests can compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    NoRoute,
    Cluster(String),
    Redirect(String, u16),
    Direct(u16, Option<String>),
    NotFound(u16),
}

pub(crate) fn cluster(name: &str) -> Outcome {
    Outcome::Cluster(name.to_owned())
}

pub(crate) fn redirect(location: &str, code: u16) -> Outcome {
    Outcome::Redirect(location.to_owned(), code)
}

pub(crate) fn outcome(t: &RouteTable, p: &Parts, random: u64) -> Outcome {
    let Some(hit) = t.find(p, random) else {
        return Outcome::NoRoute;
    };
    match hit.action() {
        HitAction::Forward(f) => Outcome::Cluster(f.cluster(p).to_owned()),
        HitAction::Redirect(l, s) => Outcome::Redirect(l, s.as_u16()),
        HitAction::DirectResponse(s, b) => Outcome::Direct(s.as_u16(), b.map(str::to_owned)),
        HitAction::ClusterNotFound(s) => Outcome::NotFound(s.as_u16()),
    }
}

/// A route with a match and a cluster.
pub(crate) fn route(m: RouteMatch, cluster: &str) -> Route {
    Route::new(m, Action::Route(RouteAction::cluster(cluster)))
}

/// A route forwarding with a custom action.
pub(crate) fn route_with(m: RouteMatch, action: RouteAction) -> Route {
    Route::new(m, Action::Route(action))
}

pub(crate) fn prefix(p: &str) -> RouteMatch {
    RouteMatch::new(PathMatch::Prefix(p.into()))
}

pub(crate) fn exact_path(p: &str) -> RouteMatch {
    RouteMatch::new(PathMatch::Path(p.into()))
}

pub(crate) fn string_match(pattern: StringPattern) -> StringMatcher {
    StringMatcher {
        pattern,
        ignore_case: false,
    }
}

pub(crate) fn regex_header(name: &str, re: &str) -> HeaderMatcher {
    HeaderMatcher::new(
        name,
        HeaderMatchSpec::String(string_match(StringPattern::SafeRegex(re.into()))),
    )
}

/// The values of a header, as strings.
pub(crate) fn values(h: &http::HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// A list of request headers.
pub(crate) type Headers<'a> = &'a [(&'a str, &'a str)];
