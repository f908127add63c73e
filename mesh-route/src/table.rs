//! The compiled route table: [`RouteTable::compile`], [`RouteTable::find`] and [`Hit`].
//!
//! `find` follows Envoy's `RouteMatcher::route`: select the virtual host (§1.2), enforce its
//! `require_tls` (§1.4), then take the first route, in declaration order, whose conditions all
//! hold (§2), and resolve its action (§3). The routes are not scanned: each virtual host's
//! [`RouteIndex`] yields the candidates whose path specifier can hold, in declaration order, and
//! each candidate's full matcher decides, so the result is the scan's.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use http::header::HeaderMap;
use http::request::Parts;
use mesh_core::config::{
    Action, HedgePolicy, RequestMirrorPolicy, RetryPolicy, Route, RouteConfiguration,
    TlsRequirement,
};

use crate::action::{CompiledAction, HitAction};
use crate::index::{self, RouteIndex};
use crate::matcher::header::HeaderMatch;
use crate::matcher::path::PathMatcher;
use crate::matcher::{RequestView, RouteMatcher, authority, forwarded_proto};
use crate::rewrite::Mutations;
use crate::rewrite::RequestInfo;
use crate::vhost::{DomainIndex, VirtualHostInfo};

/// One per-filter config override as the table holds it: what the filter made of its JSON
/// when the table was compiled ([`RouteTable::compile_with`]), or the JSON itself (a
/// `serde_json::Value`) when nothing parsed it.
pub type FilterConfig = mesh_core::filter::RouteConfig;

/// Per-filter config overrides, keyed by filter name (see [`Hit::typed_per_filter_config`]).
pub type FilterConfigs = BTreeMap<String, FilterConfig>;

/// Parses one `typed_per_filter_config` entry, given the filter's name and its JSON, into what
/// the filter reads per request; `Err` is a message naming what is wrong.
pub type FilterConfigParser<'p> =
    &'p dyn Fn(&str, &serde_json::Value) -> Result<FilterConfig, String>;

/// Why a route configuration could not be compiled. Every variant names the field at fault,
/// e.g. `virtual_hosts[0].routes[3].match.safe_regex`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A regex does not compile (the `regex` crate has no lookaround or backreferences).
    #[error("invalid regex {pattern:?} in {field}: {reason}")]
    InvalidRegex {
        /// The field holding the regex.
        field: String,
        /// The pattern.
        pattern: String,
        /// The compiler's message.
        reason: String,
    },
    /// A domain appears twice (across all virtual hosts, after lower-casing).
    #[error("duplicate domain {domain:?} in {field}: only unique values for domains are permitted")]
    DuplicateDomain {
        /// The second occurrence.
        field: String,
        /// The domain as configured.
        domain: String,
    },
    /// A `typed_per_filter_config` entry its filter rejected.
    #[error("invalid config for filter {filter:?} in {field}: {message}")]
    FilterConfig {
        /// The `typed_per_filter_config` field.
        field: String,
        /// The filter's name (the entry's key).
        filter: String,
        /// The filter's message.
        message: String,
    },
    /// A second `*` domain.
    #[error("second `*` domain in {field}: only a single wildcard domain is permitted")]
    MultipleWildcards {
        /// The second occurrence.
        field: String,
    },
    /// Weighted clusters whose weights sum to 0 or to more than `u32::MAX`.
    #[error("total weight {total} of {field} must be in 1..=4294967295")]
    InvalidTotalWeight {
        /// The `weighted_clusters` field.
        field: String,
        /// The sum of the weights.
        total: u64,
    },
    /// A URI template that does not parse.
    #[error("invalid path template {template:?} in {field}: {reason}")]
    PathTemplate {
        /// The template field.
        field: String,
        /// The template.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Any other invalid value.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl BuildError {
    /// The path of the field at fault.
    pub fn field(&self) -> &str {
        match self {
            Self::InvalidRegex { field, .. }
            | Self::DuplicateDomain { field, .. }
            | Self::MultipleWildcards { field }
            | Self::InvalidTotalWeight { field, .. }
            | Self::PathTemplate { field, .. }
            | Self::FilterConfig { field, .. }
            | Self::Invalid { field, .. } => field,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn regex(field: &str, pattern: &str, e: &regex::Error) -> Self {
        Self::InvalidRegex {
            field: field.to_owned(),
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        }
    }
}

/// One compiled route.
#[derive(Debug)]
pub(crate) struct CompiledRoute {
    pub(crate) matcher: RouteMatcher,
    pub(crate) action: CompiledAction,
    pub(crate) mutations: Mutations,
    /// The route's per-filter configs merged over the vhost's.
    pub(crate) filter_configs: Option<Arc<FilterConfigs>>,
}

/// A compiled route configuration.
///
/// Build it once per config version with [`compile`](Self::compile) and share it (it is
/// `Send + Sync`); [`find`](Self::find) is a pure lookup.
#[derive(Debug)]
pub struct RouteTable {
    name: String,
    vhosts: Vec<VirtualHostInfo>,
    domains: DomainIndex,
    mutations: Mutations,
    most_specific_wins: bool,
    ignore_port: bool,
    ignore_path_parameters: bool,
    internal_only_headers: Vec<String>,
    mirror_policies: Vec<RequestMirrorPolicy>,
}

/// `over` (parsed) merged over `base`; `field` is where `over` is configured.
fn merge(
    base: Option<&Arc<FilterConfigs>>,
    over: &BTreeMap<String, serde_json::Value>,
    field: &str,
    parse: FilterConfigParser<'_>,
) -> Result<Option<Arc<FilterConfigs>>, BuildError> {
    if over.is_empty() {
        return Ok(base.cloned());
    }
    let mut merged = base.map(|b| (**b).clone()).unwrap_or_default();
    for (name, cfg) in over {
        let parsed = parse(name, cfg).map_err(|message| BuildError::FilterConfig {
            field: format!("{field}.typed_per_filter_config"),
            filter: name.clone(),
            message,
        })?;
        merged.insert(name.clone(), parsed);
    }
    Ok(Some(Arc::new(merged)))
}

/// Keeps a per-filter config as its JSON.
fn keep_json(_: &str, cfg: &serde_json::Value) -> Result<FilterConfig, String> {
    Ok(Arc::new(cfg.clone()))
}

impl RouteTable {
    /// Compiles a route configuration.
    ///
    /// # Errors
    /// A [`BuildError`] naming the first invalid field: a regex or URI template that does not
    /// compile, a duplicate domain or second `*`, weighted clusters with a zero total, an
    /// invalid header name or value in header mutations, a direct response out of range, ...
    pub fn compile(cfg: &RouteConfiguration) -> Result<Self, BuildError> {
        Self::compile_with(cfg, &keep_json)
    }

    /// Compiles a route configuration, parsing every `typed_per_filter_config` entry once with
    /// `parse` (so a filter reads its per-route config without parsing JSON per request).
    ///
    /// # Errors
    /// As [`compile`](Self::compile), and [`BuildError::FilterConfig`] when `parse` rejects an
    /// entry.
    pub fn compile_with(
        cfg: &RouteConfiguration,
        parse: FilterConfigParser<'_>,
    ) -> Result<Self, BuildError> {
        let domains = DomainIndex::build(&cfg.virtual_hosts)?;
        let mut vhosts = Vec::with_capacity(cfg.virtual_hosts.len());
        for (vi, vh) in cfg.virtual_hosts.iter().enumerate() {
            let vfield = format!("virtual_hosts[{vi}]");
            let vh_filters = merge(None, &vh.typed_per_filter_config, &vfield, parse)?;
            let mut routes = Vec::with_capacity(vh.routes.len());
            for (ri, r) in vh.routes.iter().enumerate() {
                routes.push(compile_route(
                    r,
                    &format!("{vfield}.routes[{ri}]"),
                    vh_filters.as_ref(),
                    cfg.max_direct_response_body_size_bytes,
                    parse,
                )?);
            }
            let virtual_clusters = vh
                .virtual_clusters
                .iter()
                .enumerate()
                .map(|(ci, vc)| {
                    let headers = vc
                        .headers
                        .iter()
                        .enumerate()
                        .map(|(hi, h)| {
                            HeaderMatch::compile(
                                h,
                                &format!("{vfield}.virtual_clusters[{ci}].headers[{hi}]"),
                            )
                        })
                        .collect::<Result<_, _>>()?;
                    Ok((vc.name.clone(), headers))
                })
                .collect::<Result<_, BuildError>>()?;
            vhosts.push(VirtualHostInfo {
                index: vi,
                config: vh.clone(),
                route_index: RouteIndex::build(&routes),
                routes,
                virtual_clusters,
                mutations: Mutations::compile(&vh.headers, &vfield)?,
                filter_configs: vh_filters,
            });
        }
        Ok(Self {
            name: cfg.name.clone(),
            vhosts,
            domains,
            mutations: Mutations::compile(&cfg.headers, "route_config")?,
            most_specific_wins: cfg.most_specific_header_mutations_wins,
            ignore_port: cfg.ignore_port_in_host_matching,
            ignore_path_parameters: cfg.ignore_path_parameters_in_path_matching,
            internal_only_headers: cfg.internal_only_headers.clone(),
            mirror_policies: cfg.request_mirror_policies.clone(),
        })
    }

    /// The route configuration's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The compiled virtual hosts, in config order.
    pub fn virtual_hosts(&self) -> &[VirtualHostInfo] {
        &self.vhosts
    }

    /// `internal_only_headers`, which the proxy strips from external requests.
    pub fn internal_only_headers(&self) -> &[String] {
        &self.internal_only_headers
    }

    /// The route configuration's mirror policies (used when neither route nor vhost has any).
    pub fn request_mirror_policies(&self) -> &[RequestMirrorPolicy] {
        &self.mirror_policies
    }

    /// The virtual host selected by the request's `:authority` (SEMANTICS §1.2).
    pub fn virtual_host_for(&self, req: &Parts) -> Option<&VirtualHostInfo> {
        self.domains
            .find(authority(req), self.ignore_port)
            .map(|i| &self.vhosts[i])
    }

    /// Finds the route for a request: `None` means no virtual host or no route (404, `NR`).
    ///
    /// `random` is the stream's random value, used by `runtime_fraction` and weighted clusters.
    /// A virtual host with `require_tls` answers a plaintext request with a 301 to `https`
    /// (and finds nothing when `x-forwarded-proto` is absent, as Envoy does).
    ///
    /// The route is the first, in declaration order, whose conditions all hold, as in Envoy's
    /// linear scan; an index (exact paths, a prefix trie, regex sets) narrows the routes to
    /// evaluate, so the cost grows with the candidates for the path rather than with the
    /// number of routes. Finding a forwarding route allocates nothing, unless a header
    /// condition has to join several values of one header; redirects and direct responses
    /// allocate their `Location`.
    pub fn find<'a>(&'a self, req: &Parts, random: u64) -> Option<Hit<'a>> {
        self.find_with(req, random, |vhost, view| {
            vhost.route_index.find(&vhost.routes, view, random)
        })
    }

    /// [`find`](Self::find) by Envoy's linear scan of the routes, without the index.
    ///
    /// Gives the same result as `find`; kept as a test oracle and a benchmark baseline.
    #[doc(hidden)]
    pub fn find_linear<'a>(&'a self, req: &Parts, random: u64) -> Option<Hit<'a>> {
        self.find_with(req, random, |vhost, view| {
            index::linear(&vhost.routes, view, random)
        })
    }

    /// The lookup around a route selection: virtual host, `require_tls`, then the route that
    /// `select` picks and its action.
    fn find_with<'a>(
        &'a self,
        req: &Parts,
        random: u64,
        select: impl FnOnce(&'a VirtualHostInfo, &RequestView<'_>) -> Option<usize>,
    ) -> Option<Hit<'a>> {
        let vhost = self.virtual_host_for(req)?;
        let view = RequestView::new(req, self.ignore_path_parameters);
        let mut ctx = Ctx {
            table: self,
            vhost,
            route: None,
            route_index: None,
        };
        if vhost.require_tls() != TlsRequirement::None {
            let proto = forwarded_proto(req)?;
            let internal = req
                .headers
                .get("x-envoy-internal")
                .is_some_and(|v| v.as_bytes() == b"true");
            let exempt = vhost.require_tls() == TlsRequirement::ExternalOnly && internal;
            if !proto.eq_ignore_ascii_case("https") && !exempt {
                let host = String::from_utf8_lossy(authority(req).unwrap_or_default());
                let location = format!("https://{host}{}", view.path.unwrap_or(""));
                return Some(Hit {
                    ctx,
                    action: HitAction::Redirect(location.clone(), StatusCode::MOVED_PERMANENTLY),
                    location: Some(location),
                });
            }
        }
        let ri = select(vhost, &view)?;
        let route = &vhost.routes[ri];
        ctx.route = Some(route);
        ctx.route_index = Some(ri);
        let (action, location) = route
            .action
            .resolve(ctx, &vhost.config.routes[ri], random, &view);
        Some(Hit {
            ctx,
            action,
            location,
        })
    }
}

fn compile_route(
    r: &Route,
    field: &str,
    vh_filters: Option<&Arc<FilterConfigs>>,
    max_body: u32,
    parse: FilterConfigParser<'_>,
) -> Result<CompiledRoute, BuildError> {
    let matcher = RouteMatcher::compile(&r.route_match, &format!("{field}.match"))?;
    let mut action = CompiledAction::compile(r, &matcher.path, field, max_body)?;
    let filter_configs = merge(vh_filters, &r.typed_per_filter_config, field, parse)?;
    if let (CompiledAction::Forward(f), Action::Route(cfg)) = (&mut action, &r.action)
        && let mesh_core::config::ClusterSpecifier::WeightedClusters(w) = &cfg.cluster
    {
        for (i, (e, c)) in f
            .weighted_entries_mut()
            .iter_mut()
            .zip(&w.clusters)
            .enumerate()
        {
            if !c.typed_per_filter_config.is_empty() {
                let cfield = format!("{field}.route.weighted_clusters.clusters[{i}]");
                e.filter_configs = merge(
                    filter_configs.as_ref(),
                    &c.typed_per_filter_config,
                    &cfield,
                    parse,
                )?;
            }
        }
    }
    Ok(CompiledRoute {
        matcher,
        action,
        mutations: Mutations::compile(&r.headers, field)?,
        filter_configs,
    })
}

// === impl Ctx ===

/// Everything a hit refers to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) table: &'a RouteTable,
    pub(crate) vhost: &'a VirtualHostInfo,
    pub(crate) route: Option<&'a CompiledRoute>,
    pub(crate) route_index: Option<usize>,
}

impl<'a> Ctx<'a> {
    /// A view of `req` with this table's path options.
    pub(crate) fn view<'r>(&self, req: &'r Parts) -> RequestView<'r> {
        RequestView::new(req, self.table.ignore_path_parameters)
    }

    /// The matched route's path specifier.
    ///
    /// # Panics
    /// When there is no route; actions are only resolved for a matched route.
    pub(crate) fn path_matcher(&self) -> &'a PathMatcher {
        &self
            .route
            .expect("actions are resolved only for a matched route")
            .matcher
            .path
    }

    fn config_route(&self) -> Option<&'a Route> {
        self.route_index.map(|i| &self.vhost.config.routes[i])
    }

    /// Applies header mutations level by level (SEMANTICS §3.7).
    pub(crate) fn apply_levels(
        &self,
        weighted: Option<&Mutations>,
        headers: &mut HeaderMap,
        info: &RequestInfo<'_>,
        apply: fn(&Mutations, &mut HeaderMap, &RequestInfo<'_>),
    ) {
        if let Some(w) = weighted {
            apply(w, headers, info);
        }
        let route = self.route.map(|r| &r.mutations);
        let vhost = Some(&self.vhost.mutations);
        let config = Some(&self.table.mutations);
        let order = if self.table.most_specific_wins {
            [config, vhost, route]
        } else {
            [route, vhost, config]
        };
        for m in order.into_iter().flatten() {
            if !m.is_empty() {
                apply(m, headers, info);
            }
        }
    }
}

// === impl Hit ===

/// The result of a successful [`RouteTable::find`].
#[derive(Debug, Clone)]
pub struct Hit<'a> {
    ctx: Ctx<'a>,
    action: HitAction<'a>,
    location: Option<String>,
}

impl<'a> Hit<'a> {
    /// The selected virtual host.
    pub fn virtual_host(&self) -> &'a VirtualHostInfo {
        self.ctx.vhost
    }

    /// The index of the matched route within the virtual host; `None` for the `require_tls`
    /// redirect, which no route produced.
    pub fn route_index(&self) -> Option<usize> {
        self.ctx.route_index
    }

    /// The matched route's name (`""` when unnamed or for the `require_tls` redirect).
    pub fn route_name(&self) -> &'a str {
        self.ctx.config_route().map_or("", |r| r.name.as_str())
    }

    /// The matched route's config.
    pub fn route(&self) -> Option<&'a Route> {
        self.ctx.config_route()
    }

    /// What to do with the request.
    pub fn action(&self) -> HitAction<'a> {
        self.action.clone()
    }

    /// The `Location` of the local reply: the redirect target, or for a direct response with
    /// status 201 or 3xx the request's own URI (Envoy's `newUri` without redirect config).
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// Per-filter config overrides: the picked weighted entry's over the route's over the
    /// vhost's (the more specific wins per key); `None` when all are empty.
    pub fn typed_per_filter_config(&self) -> Option<&'a Arc<FilterConfigs>> {
        if let HitAction::Forward(f) = &self.action
            && let Some(c) = f.weighted.and_then(|(w, _)| w.filter_configs.as_ref())
        {
            return Some(c);
        }
        match self.ctx.route {
            Some(r) => r.filter_configs.as_ref(),
            None => self.ctx.vhost.filter_configs.as_ref(),
        }
    }

    /// The retry policy in force: the route's, else the vhost's (no merging).
    pub fn retry_policy(&self) -> Option<&'a RetryPolicy> {
        self.route_action()
            .and_then(|a| a.retry_policy.as_ref())
            .or(self.ctx.vhost.config.retry_policy.as_ref())
    }

    /// The hedge policy in force: the route's, else the vhost's.
    pub fn hedge_policy(&self) -> Option<&'a HedgePolicy> {
        self.route_action()
            .and_then(|a| a.hedge_policy.as_ref())
            .or(self.ctx.vhost.config.hedge_policy.as_ref())
    }

    /// The mirror policies in force: the route's if any, else the vhost's, else the route
    /// configuration's (no merging, SEMANTICS §3.8).
    pub fn request_mirror_policies(&self) -> &'a [RequestMirrorPolicy] {
        [
            self.route_action()
                .map_or(&[][..], |a| &a.request_mirror_policies),
            &self.ctx.vhost.config.request_mirror_policies,
            &self.ctx.table.mirror_policies,
        ]
        .into_iter()
        .find(|p| !p.is_empty())
        .unwrap_or(&[])
    }

    fn route_action(&self) -> Option<&'a mesh_core::config::RouteAction> {
        match &self.ctx.config_route()?.action {
            Action::Route(a) => Some(a),
            _ => None,
        }
    }

    /// Applies the request header mutations (weighted entry when forwarding, then route, vhost
    /// and route configuration; see [`Forward::apply_request_headers`](crate::Forward)).
    /// `%OPERATOR%` values that need the connection render empty; use
    /// [`Hit::apply_request_headers_with`] to supply it.
    pub fn apply_request_headers(&self, headers: &mut HeaderMap) {
        self.apply_request_headers_with(headers, &RequestInfo::default());
    }

    /// Applies the request header mutations with what `%OPERATOR%` values read.
    pub fn apply_request_headers_with(&self, headers: &mut HeaderMap, info: &RequestInfo<'_>) {
        match &self.action {
            HitAction::Forward(f) => f.apply_request_headers_with(headers, info),
            _ if self.ctx.route.is_none() => {}
            _ => self
                .ctx
                .apply_levels(None, headers, info, Mutations::apply_request),
        }
    }

    /// Finalises response headers as Envoy does: sets `Location` for redirects and 201/3xx
    /// direct responses, then applies the response header mutations (weighted entry when
    /// forwarding, then route, vhost and route configuration). The `require_tls` redirect gets
    /// only its `Location`.
    pub fn apply_response_headers(&self, headers: &mut HeaderMap) {
        self.apply_response_headers_with(headers, &RequestInfo::default());
    }

    /// The same, with what `%OPERATOR%` values read.
    pub fn apply_response_headers_with(&self, headers: &mut HeaderMap, info: &RequestInfo<'_>) {
        if let Some(loc) = &self.location
            && let Ok(v) = http::HeaderValue::from_str(loc)
        {
            headers.insert(http::header::LOCATION, v);
        }
        match &self.action {
            HitAction::Forward(f) => f.apply_response_headers_with(headers, info),
            _ if self.ctx.route.is_none() => {}
            _ => self
                .ctx
                .apply_levels(None, headers, info, Mutations::apply_response),
        }
    }
}
