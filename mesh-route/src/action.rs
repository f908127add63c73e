//! Route actions (SEMANTICS §3.1–§3.6): cluster choice, weighted clusters, redirects, direct
//! responses, path and host rewrites.
//!
//! - `cluster_header` names the cluster by the header's first value; a missing, empty or
//!   non-UTF-8 value gives [`HitAction::ClusterNotFound`] with the route's
//!   `cluster_not_found_response_code`.
//! - Weighted clusters pick `value % total` over cumulative ranges in config order, where
//!   `value` is the random value, or the `header_name` header when it is present exactly once
//!   and parses as `u64`. Weight-0 entries are never picked.
//! - Redirect URIs follow Envoy's `Http::Utility::newUri`: the redirect's path rewrite runs
//!   first, then scheme, port, host (a request port is dropped when `port_redirect` is set, or
//!   when the scheme changes and the port is the default of the request's `x-forwarded-proto`),
//!   path (`path_redirect` keeps the request query unless it has its own `?`), `strip_query`.

use http::StatusCode;
use http::header::{HeaderMap, HeaderName};
use http::request::Parts;
use mesh_core::config::{
    Action, ClusterSpecifier, ClusterWeight, HostRewrite, PathRedirect, RedirectAction, Route,
    RouteAction,
};
use std::borrow::Cow;

use crate::matcher::path::PathMatcher;
use crate::matcher::{RequestView, authority, forwarded_proto, remove_query_and_fragment, scheme};
use crate::rewrite::{Mutations, PathRewrite, RegexSubst, RequestInfo};
use crate::table::{BuildError, Ctx};

/// What to do with a request that matched a route.
#[derive(Debug, Clone)]
pub enum HitAction<'a> {
    /// Forward upstream; the cluster is chosen and rewrites can be computed.
    Forward(Forward<'a>),
    /// Answer with a redirect: the `Location` value and the status.
    Redirect(String, StatusCode),
    /// Answer with a fixed status and optional body. A `Location` header is due for 201 and
    /// 3xx statuses: see [`Hit::location`](crate::Hit::location).
    DirectResponse(StatusCode, Option<&'a str>),
    /// `cluster_header` named no cluster: answer with this status (flag `NC`).
    ClusterNotFound(StatusCode),
}

/// Where a forwarded request's cluster name lives.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ClusterRef<'a> {
    /// In the config.
    Static(&'a str),
    /// In this request header (present and non-empty when the hit was made).
    Header(&'a ClusterHeader),
}

/// The header a `cluster_header` names: a regular header, or a pseudo-header (Envoy's own
/// router_check suite routes on `:authority`).
#[derive(Debug, Clone)]
pub(crate) enum ClusterHeader {
    Authority,
    Path,
    Method,
    Scheme,
    Name(HeaderName),
}

impl ClusterHeader {
    fn compile(name: &str, field: &str) -> Result<Self, BuildError> {
        Ok(match name.to_ascii_lowercase().as_str() {
            ":authority" => Self::Authority,
            ":path" => Self::Path,
            ":method" => Self::Method,
            ":scheme" => Self::Scheme,
            _ => Self::Name(header_name(name, field)?),
        })
    }

    /// The header's first value, when present, non-empty and UTF-8.
    fn value<'r>(&self, req: &'r Parts) -> Option<&'r str> {
        let v = match self {
            Self::Authority => std::str::from_utf8(crate::matcher::authority(req)?).ok(),
            Self::Path => crate::matcher::request_path(req),
            Self::Method => Some(req.method.as_str()),
            Self::Scheme => crate::matcher::scheme(req),
            Self::Name(n) => return first_value(req, n),
        };
        v.filter(|v| !v.is_empty())
    }
}

/// A request forwarded upstream: the chosen cluster and the route's forwarding parameters.
#[derive(Debug, Clone, Copy)]
pub struct Forward<'a> {
    pub(crate) ctx: Ctx<'a>,
    pub(crate) route: &'a CompiledForward,
    pub(crate) action: &'a RouteAction,
    pub(crate) cluster: ClusterRef<'a>,
    pub(crate) weighted: Option<(&'a WeightedEntry, &'a ClusterWeight)>,
}

impl<'a> Forward<'a> {
    /// The upstream cluster: the static name, the `cluster_header` value or the weighted pick.
    ///
    /// `req` is the request the route was found for (a `cluster_header` names the cluster
    /// there; reading it again allocates nothing).
    pub fn cluster<'r>(&'r self, req: &'r Parts) -> &'r str {
        match self.cluster {
            ClusterRef::Static(c) => c,
            ClusterRef::Header(h) => h.value(req).unwrap_or_default(),
        }
    }

    /// The route's forwarding parameters (timeouts, retry policy, hash policy, ...).
    pub fn action(&self) -> &'a RouteAction {
        self.action
    }

    /// The picked weighted-cluster entry, when the route uses `weighted_clusters`.
    pub fn weighted_cluster(&self) -> Option<&'a ClusterWeight> {
        self.weighted.map(|(_, cfg)| cfg)
    }

    /// The `:path` after `prefix_rewrite` or `regex_rewrite` (query kept); `None` when the route
    /// rewrites nothing or the request has no path.
    ///
    /// `req` is the request the route was found for.
    pub fn rewritten_path(&self, req: &Parts) -> Option<String> {
        let rewrite = self.route.path_rewrite.as_ref()?;
        let path = self.ctx.view(req).path?;
        let matched = self
            .ctx
            .path_matcher()
            .matched_len(remove_query_and_fragment(path))?;
        Some(rewrite.apply(path, matched))
    }

    /// The new `:authority`: the route's `host_rewrite_literal`, its `host_rewrite_header`
    /// (first value, when non-empty), or its `host_rewrite_path_regex`; else the picked
    /// weighted entry's `host_rewrite_literal`. `None` leaves the host unchanged (and is what
    /// `auto_host_rewrite` gives: see [`auto_host_rewrite`](Self::auto_host_rewrite)).
    ///
    /// `req` is the request the route was found for.
    pub fn host_rewrite(&self, req: &Parts) -> Option<String> {
        let route_level = match &self.route.host_rewrite {
            Some(HostRewriteSpec::Literal(h)) => Some(h.clone()),
            Some(HostRewriteSpec::Header(name)) => first_value(req, name).map(str::to_owned),
            Some(HostRewriteSpec::PathRegex(re)) => self
                .ctx
                .view(req)
                .path
                .map(|p| re.replace_all(remove_query_and_fragment(p)).into_owned()),
            Some(HostRewriteSpec::Auto) | None => None,
        };
        route_level.or_else(|| self.weighted.and_then(|(w, _)| w.host_literal.clone()))
    }

    /// True when the route asks for the upstream host's hostname as `:authority`
    /// (`auto_host_rewrite`), which only the proxy can know.
    pub fn auto_host_rewrite(&self) -> bool {
        matches!(self.route.host_rewrite, Some(HostRewriteSpec::Auto))
    }

    /// Applies the request header mutations: the weighted entry's, then the route's, vhost's and
    /// route configuration's (reversed by `most_specific_header_mutations_wins`).
    pub fn apply_request_headers(&self, headers: &mut HeaderMap) {
        self.apply_request_headers_with(headers, &RequestInfo::default());
    }

    /// The same, with what `%OPERATOR%` values read.
    pub fn apply_request_headers_with(&self, headers: &mut HeaderMap, info: &RequestInfo<'_>) {
        let weighted = self.weighted.map(|(w, _)| &w.mutations);
        self.ctx
            .apply_levels(weighted, headers, info, Mutations::apply_request);
    }

    /// Applies the response header mutations, in the same level order as the request ones.
    pub fn apply_response_headers(&self, headers: &mut HeaderMap) {
        self.apply_response_headers_with(headers, &RequestInfo::default());
    }

    /// The same, with what `%OPERATOR%` values read.
    pub fn apply_response_headers_with(&self, headers: &mut HeaderMap, info: &RequestInfo<'_>) {
        let weighted = self.weighted.map(|(w, _)| &w.mutations);
        self.ctx
            .apply_levels(weighted, headers, info, Mutations::apply_response);
    }
}

// === compiled actions ===

/// A compiled route action.
#[derive(Debug, Clone)]
pub(crate) enum CompiledAction {
    Forward(CompiledForward),
    Redirect(Redirect),
    Direct {
        status: StatusCode,
        body: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledForward {
    cluster: ClusterChoice,
    not_found: StatusCode,
    path_rewrite: Option<PathRewrite>,
    host_rewrite: Option<HostRewriteSpec>,
}

#[derive(Debug, Clone)]
enum ClusterChoice {
    Static(String),
    Header(ClusterHeader),
    Weighted(Weighted),
}

#[derive(Debug, Clone)]
struct Weighted {
    entries: Vec<WeightedEntry>,
    total: u64,
    header: Option<HeaderName>,
}

/// One compiled weighted-cluster entry.
#[derive(Debug, Clone)]
pub(crate) struct WeightedEntry {
    index: usize,
    cluster: EntryCluster,
    weight: u32,
    pub(crate) mutations: Mutations,
    host_literal: Option<String>,
    /// The entry's per-filter configs merged over the route's, when it has any.
    pub(crate) filter_configs: Option<std::sync::Arc<crate::table::FilterConfigs>>,
}

#[derive(Debug, Clone)]
enum EntryCluster {
    Static(String),
    Header(ClusterHeader),
}

#[derive(Debug, Clone)]
enum HostRewriteSpec {
    Literal(String),
    Auto,
    Header(HeaderName),
    PathRegex(RegexSubst),
}

#[derive(Debug, Clone)]
pub(crate) struct Redirect {
    scheme: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    path: Option<RedirectPath>,
    strip_query: bool,
    code: StatusCode,
}

#[derive(Debug, Clone)]
enum RedirectPath {
    Path { value: String, has_query: bool },
    Rewrite(PathRewrite),
}

fn header_name(name: &str, field: &str) -> Result<HeaderName, BuildError> {
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|_| BuildError::invalid(field, format!("{name:?} is not a valid header name")))
}

fn status(code: u16, field: &str) -> Result<StatusCode, BuildError> {
    StatusCode::from_u16(code)
        .map_err(|_| BuildError::invalid(field, format!("{code} is not an HTTP status code")))
}

fn path_rewrite(
    prefix: Option<&String>,
    regex: Option<&mesh_core::config::RegexRewrite>,
    path: &PathMatcher,
    field: &str,
) -> Result<Option<PathRewrite>, BuildError> {
    match (prefix, regex) {
        (Some(_), Some(_)) => Err(BuildError::invalid(
            field,
            "cannot specify both prefix_rewrite and regex_rewrite",
        )),
        (Some(_), None) if matches!(path, PathMatcher::Template(_)) => Err(BuildError::invalid(
            format!("{field}.prefix_rewrite"),
            "cannot be used with a path template",
        )),
        (Some(p), None) => Ok(Some(PathRewrite::Prefix(p.clone()))),
        (None, Some(r)) => Ok(Some(PathRewrite::Regex(RegexSubst::compile(
            r,
            &format!("{field}.regex_rewrite"),
        )?))),
        (None, None) => Ok(None),
    }
}

impl CompiledAction {
    /// Compiles the action of `route`; `field` is the route's path
    /// (`virtual_hosts[i].routes[j]`), `max_body` the direct-response body limit.
    pub(crate) fn compile(
        route: &Route,
        path: &PathMatcher,
        field: &str,
        max_body: u32,
    ) -> Result<Self, BuildError> {
        match &route.action {
            Action::Route(a) => Ok(Self::Forward(compile_forward(
                a,
                path,
                &format!("{field}.route"),
            )?)),
            Action::Redirect(r) => Ok(Self::Redirect(compile_redirect(
                r,
                path,
                &format!("{field}.redirect"),
            )?)),
            Action::DirectResponse(d) => {
                let field = format!("{field}.direct_response");
                if !(200..600).contains(&d.status) {
                    return Err(BuildError::invalid(
                        format!("{field}.status"),
                        format!("{} is not in [200, 600)", d.status),
                    ));
                }
                if let Some(body) = &d.body
                    && body.len() > max_body as usize
                {
                    return Err(BuildError::invalid(
                        format!("{field}.body"),
                        format!(
                            "{} bytes exceed max_direct_response_body_size_bytes ({max_body})",
                            body.len()
                        ),
                    ));
                }
                Ok(Self::Direct {
                    status: status(d.status, &format!("{field}.status"))?,
                    body: d.body.clone(),
                })
            }
        }
    }
}

fn compile_forward(
    a: &RouteAction,
    path: &PathMatcher,
    field: &str,
) -> Result<CompiledForward, BuildError> {
    let cluster = match &a.cluster {
        ClusterSpecifier::Cluster(name) => {
            if name.is_empty() {
                return Err(BuildError::invalid(
                    format!("{field}.cluster"),
                    "must not be empty",
                ));
            }
            ClusterChoice::Static(name.clone())
        }
        ClusterSpecifier::ClusterHeader(h) => ClusterChoice::Header(ClusterHeader::compile(
            h,
            &format!("{field}.cluster_header"),
        )?),
        ClusterSpecifier::WeightedClusters(w) => {
            let wfield = format!("{field}.weighted_clusters");
            let mut entries = Vec::with_capacity(w.clusters.len());
            let mut total = 0u64;
            for (i, c) in w.clusters.iter().enumerate() {
                let efield = format!("{wfield}.clusters[{i}]");
                let cluster = match (&c.cluster_header, c.name.is_empty()) {
                    (Some(h), true) => EntryCluster::Header(ClusterHeader::compile(
                        h,
                        &format!("{efield}.cluster_header"),
                    )?),
                    (None, false) => EntryCluster::Static(c.name.clone()),
                    _ => {
                        return Err(BuildError::invalid(
                            efield,
                            "exactly one of name and cluster_header is required",
                        ));
                    }
                };
                total += u64::from(c.weight);
                entries.push(WeightedEntry {
                    index: i,
                    cluster,
                    weight: c.weight,
                    mutations: Mutations::compile(&c.headers, &efield)?,
                    host_literal: c.host_rewrite_literal.clone(),
                    filter_configs: None, // merged by the table, which knows the route's
                });
            }
            if total == 0 || total > u64::from(u32::MAX) {
                return Err(BuildError::InvalidTotalWeight {
                    field: wfield,
                    total,
                });
            }
            let header = w
                .header_name
                .as_deref()
                .map(|h| header_name(h, &format!("{wfield}.header_name")))
                .transpose()?;
            ClusterChoice::Weighted(Weighted {
                entries,
                total,
                header,
            })
        }
    };
    let host_rewrite = match &a.host_rewrite {
        None => None,
        Some(HostRewrite::Literal(h)) => Some(HostRewriteSpec::Literal(h.clone())),
        Some(HostRewrite::Auto) => Some(HostRewriteSpec::Auto),
        Some(HostRewrite::Header(h)) => Some(HostRewriteSpec::Header(header_name(
            h,
            &format!("{field}.host_rewrite_header"),
        )?)),
        Some(HostRewrite::PathRegex(r)) => Some(HostRewriteSpec::PathRegex(RegexSubst::compile(
            r,
            &format!("{field}.host_rewrite_path_regex"),
        )?)),
    };
    Ok(CompiledForward {
        cluster,
        not_found: status(
            a.cluster_not_found_response_code,
            &format!("{field}.cluster_not_found_response_code"),
        )?,
        path_rewrite: path_rewrite(
            a.prefix_rewrite.as_ref(),
            a.regex_rewrite.as_ref(),
            path,
            field,
        )?,
        host_rewrite,
    })
}

fn compile_redirect(
    r: &RedirectAction,
    path: &PathMatcher,
    field: &str,
) -> Result<Redirect, BuildError> {
    let path = match &r.path_redirect {
        None => None,
        Some(PathRedirect::Path(p)) => Some(RedirectPath::Path {
            value: p.clone(),
            has_query: p.contains('?'),
        }),
        Some(PathRedirect::Prefix(p)) => {
            path_rewrite(Some(p), None, path, field)?.map(RedirectPath::Rewrite)
        }
        Some(PathRedirect::Regex(re)) => {
            path_rewrite(None, Some(re), path, field)?.map(RedirectPath::Rewrite)
        }
    };
    Ok(Redirect {
        scheme: r.scheme_redirect.clone().filter(|s| !s.is_empty()),
        host: r.host_redirect.clone().filter(|s| !s.is_empty()),
        port: r.port_redirect.filter(|p| *p != 0),
        path,
        strip_query: r.strip_query,
        code: status(r.response_code.status(), &format!("{field}.response_code"))?,
    })
}

// === resolution at request time ===

/// The first value of a header when it is non-empty UTF-8.
fn first_value<'r>(req: &'r Parts, name: &HeaderName) -> Option<&'r str> {
    req.headers
        .get(name)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .filter(|v| !v.is_empty())
}

impl Weighted {
    /// SEMANTICS §3.2 selection.
    fn pick(&self, req: &Parts, random: u64) -> &WeightedEntry {
        let mut value = random;
        if let Some(h) = &self.header {
            let mut values = req.headers.get_all(h).iter();
            if let (Some(v), None) = (values.next(), values.next())
                && let Some(n) = std::str::from_utf8(v.as_bytes())
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
            {
                value = n;
            }
        }
        let selected = value % self.total;
        let mut end = 0u64;
        for e in &self.entries {
            end += u64::from(e.weight);
            if selected < end {
                return e;
            }
        }
        unreachable!("selected < total == sum of weights")
    }
}

impl CompiledForward {
    pub(crate) fn weighted_entries_mut(&mut self) -> &mut [WeightedEntry] {
        match &mut self.cluster {
            ClusterChoice::Weighted(w) => &mut w.entries,
            _ => &mut [],
        }
    }
}

impl CompiledAction {
    /// Resolves the action for one request.
    pub(crate) fn resolve<'a>(
        &'a self,
        ctx: Ctx<'a>,
        route: &'a Route,
        random: u64,
        view: &RequestView<'_>,
    ) -> (HitAction<'a>, Option<String>) {
        match self {
            Self::Forward(f) => {
                let Action::Route(action) = &route.action else {
                    unreachable!("compiled from a route action")
                };
                let req = view.parts;
                let from_header =
                    |h: &'a ClusterHeader| h.value(req).map(|_| ClusterRef::Header(h));
                let (cluster, weighted) = match &f.cluster {
                    ClusterChoice::Static(c) => (Some(ClusterRef::Static(c.as_str())), None),
                    ClusterChoice::Header(h) => (from_header(h), None),
                    ClusterChoice::Weighted(w) => {
                        let e = w.pick(req, random);
                        let cfg = match &action.cluster {
                            ClusterSpecifier::WeightedClusters(wc) => &wc.clusters[e.index],
                            _ => unreachable!("compiled from weighted clusters"),
                        };
                        let cluster = match &e.cluster {
                            EntryCluster::Static(c) => Some(ClusterRef::Static(c.as_str())),
                            EntryCluster::Header(h) => from_header(h),
                        };
                        (cluster, Some((e, cfg)))
                    }
                };
                let action = match cluster {
                    Some(cluster) => HitAction::Forward(Forward {
                        ctx,
                        route: f,
                        action,
                        cluster,
                        weighted,
                    }),
                    None => HitAction::ClusterNotFound(f.not_found),
                };
                (action, None)
            }
            Self::Redirect(r) => {
                let location = new_uri(Some(r), ctx.path_matcher(), view);
                (
                    HitAction::Redirect(location.clone(), r.code),
                    Some(location),
                )
            }
            Self::Direct { status, body } => {
                let wants_location = *status == StatusCode::CREATED || status.is_redirection();
                let location = (wants_location && view.path.is_some())
                    .then(|| new_uri(None, ctx.path_matcher(), view));
                (
                    HitAction::DirectResponse(*status, body.as_deref()),
                    location,
                )
            }
        }
    }
}

/// Envoy's `Http::Utility::newUri` (SEMANTICS §3.3), with the redirect's path rewrite applied
/// first.
pub(crate) fn new_uri(
    r: Option<&Redirect>,
    matcher: &PathMatcher,
    view: &RequestView<'_>,
) -> String {
    let req = view.parts;
    let final_scheme = r
        .and_then(|r| r.scheme.as_deref())
        .or_else(|| scheme(req))
        .unwrap_or("http");
    let port = r.and_then(|r| r.port);
    let host: Cow<'_, str> = match r.and_then(|r| r.host.as_deref()) {
        Some(h) => Cow::Borrowed(h),
        None => request_host(req, final_scheme, port.is_some()),
    };

    let request_path = view.path.unwrap_or("");
    let mut keep_query = false;
    let mut path: Cow<'_, str> = match r.and_then(|r| r.path.as_ref()) {
        None => Cow::Borrowed(request_path),
        Some(RedirectPath::Path {
            value,
            has_query: true,
        }) => {
            keep_query = true;
            Cow::Borrowed(value)
        }
        Some(RedirectPath::Path { value, .. }) => match request_path.find('?') {
            Some(q) => Cow::Owned(format!("{value}{}", &request_path[q..])),
            None => Cow::Borrowed(value),
        },
        Some(RedirectPath::Rewrite(rw)) => {
            match matcher.matched_len(remove_query_and_fragment(request_path)) {
                Some(len) => Cow::Owned(rw.apply(request_path, len)),
                None => Cow::Borrowed(request_path),
            }
        }
    };
    if !path.starts_with('/') {
        path = Cow::Owned(format!("/{path}"));
    }
    if r.is_some_and(|r| r.strip_query)
        && !keep_query
        && let Some(q) = path.find('?')
    {
        path = Cow::Owned(path[..q].to_owned());
    }
    match port {
        Some(p) => format!("{final_scheme}://{host}:{p}{path}"),
        None => format!("{final_scheme}://{host}{path}"),
    }
}

/// Envoy's `processRequestHost`: the request host, without its port when a new port is set, or
/// when the scheme changes and the port is the default one of the request's protocol
/// (`x-forwarded-proto`, else the URI scheme).
fn request_host<'r>(req: &'r Parts, new_scheme: &str, new_port: bool) -> Cow<'r, str> {
    let host = String::from_utf8_lossy(authority(req).unwrap_or_default());
    let host_end = if host.starts_with('[') {
        host.rfind("]:").map(|i| i + 1)
    } else {
        host.rfind(':')
    };
    let Some(end) = host_end else {
        return host;
    };
    let request_port = &host[end..];
    let protocol = forwarded_proto(req)
        .or_else(|| req.uri.scheme_str())
        .unwrap_or("");
    let mut remove = new_port;
    if new_scheme != protocol {
        remove |= protocol.eq_ignore_ascii_case("https") && request_port == ":443";
        remove |= protocol.eq_ignore_ascii_case("http") && request_port == ":80";
    }
    if !remove {
        return host;
    }
    match host {
        Cow::Borrowed(h) => Cow::Borrowed(&h[..end]),
        Cow::Owned(mut h) => {
            h.truncate(end);
            Cow::Owned(h)
        }
    }
}
