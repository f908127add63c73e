//! Envoy's `RouteConfiguration`, `VirtualHost`, `Route` and the matchers and actions in them.

use std::collections::BTreeMap;

use mesh_core::config::{
    Action, AppendAction, BackOff, ClusterSpecifier, ClusterWeight, Denominator,
    DirectResponseAction, FieldError, FractionalPercent, HashOn, HashPolicy, HeaderMatchSpec,
    HeaderMatcher, HeaderMutations, HeaderValueOption, HedgePolicy, HostRewrite, PathMatch,
    PathRedirect, QueryParameterMatcher, RedirectAction, RedirectCode, RegexRewrite,
    RequestMirrorPolicy, RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch,
    RuntimeFraction, StringMatcher, StringPattern, TlsContextMatch, TlsRequirement, UpgradeConfig,
    VirtualCluster, VirtualHost, WeightedClusters,
};
use serde_json::{Map, Value};

use super::cluster::PRIORITIES;
use super::{Cx, Obj, as_string, as_u64, base64_decode, endpoint, join, type_name};
use crate::error::LoadError;

const TYPED_STRUCTS: &[&str] = &["xds.type.v3.TypedStruct", "udpa.type.v1.TypedStruct"];
const FILTER_CONFIG: &str = "envoy.config.route.v3.FilterConfig";
const URI_TEMPLATE: &str = "envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig";

/// A `RouteConfiguration` at `path` (empty for a bare file).
pub(crate) fn route_configuration(cx: &mut Cx, v: &Value, path: &str) -> RouteConfiguration {
    let mut rc = RouteConfiguration::new("");
    let Some(mut o) = Obj::new(cx, v, path.to_owned()) else {
        return rc;
    };
    rc.name = o.string(cx, "name").unwrap_or_default();
    rc.virtual_hosts = o
        .list(cx, "virtual_hosts")
        .into_iter()
        .filter_map(|(v, p)| virtual_host(cx, v, p))
        .collect();
    rc.internal_only_headers = o.strings(cx, "internal_only_headers");
    rc.headers = header_mutations(cx, &mut o);
    if let Some(b) = o.bool(cx, "most_specific_header_mutations_wins") {
        rc.most_specific_header_mutations_wins = b;
    }
    rc.validate_clusters = o.bool(cx, "validate_clusters");
    if let Some(b) = o.bool(cx, "ignore_port_in_host_matching") {
        rc.ignore_port_in_host_matching = b;
    }
    if let Some(b) = o.bool(cx, "ignore_path_parameters_in_path_matching") {
        rc.ignore_path_parameters_in_path_matching = b;
    }
    rc.request_mirror_policies = mirror_policies(cx, &mut o);
    if let Some(n) = o.u32(cx, "max_direct_response_body_size_bytes") {
        rc.max_direct_response_body_size_bytes = n;
    }
    o.unsupported(cx, "vhds", "VHDS is not supported yet, ignored");
    o.finish(cx);
    rc
}

/// The four header-mutation fields every level has.
fn header_mutations(cx: &mut Cx, o: &mut Obj<'_>) -> HeaderMutations {
    let add = |cx: &mut Cx, o: &mut Obj<'_>, key: &str| {
        o.list(cx, key)
            .into_iter()
            .filter_map(|(v, p)| header_value_option(cx, v, p))
            .collect()
    };
    HeaderMutations {
        request_headers_to_add: add(cx, o, "request_headers_to_add"),
        request_headers_to_remove: o.strings(cx, "request_headers_to_remove"),
        response_headers_to_add: add(cx, o, "response_headers_to_add"),
        response_headers_to_remove: o.strings(cx, "response_headers_to_remove"),
    }
}

const APPEND_ACTIONS: &[(&str, AppendAction)] = &[
    ("APPEND_IF_EXISTS_OR_ADD", AppendAction::AppendIfExistsOrAdd),
    ("ADD_IF_ABSENT", AppendAction::AddIfAbsent),
    (
        "OVERWRITE_IF_EXISTS_OR_ADD",
        AppendAction::OverwriteIfExistsOrAdd,
    ),
    ("OVERWRITE_IF_EXISTS", AppendAction::OverwriteIfExists),
];

fn header_value_option(cx: &mut Cx, v: &Value, path: String) -> Option<HeaderValueOption> {
    let mut o = Obj::new(cx, v, path)?;
    let mut kv = None;
    match o.obj(cx, "header") {
        Some(mut h) => {
            let key = h.string(cx, "key");
            let value = h.string(cx, "value");
            let raw = h
                .value(cx, "raw_value")
                .and_then(|(rv, rp)| bytes_as_string(cx, rv, &rp));
            let hp = h.path().to_owned();
            h.finish(cx);
            let value = match (value, raw) {
                (Some(_), Some(_)) => {
                    cx.error(hp.clone(), "value and raw_value are both set");
                    None
                }
                (v, r) => Some(v.or(r).unwrap_or_default()),
            };
            match key {
                Some(k) if !k.is_empty() => kv = value.map(|v| (k, v)),
                _ => cx.error(join(&hp, "key"), "header key is required"),
            }
        }
        None => cx.error(o.child("header"), "header is required"),
    }
    let append = o.bool(cx, "append");
    let action = o.enumeration(cx, "append_action", APPEND_ACTIONS);
    if append.is_some() && action.is_some() {
        cx.error(o.path(), "append and append_action are both set");
    }
    let append_action = action
        .or(append.map(|a| {
            if a {
                AppendAction::AppendIfExistsOrAdd
            } else {
                AppendAction::OverwriteIfExistsOrAdd
            }
        }))
        .unwrap_or_default();
    let keep_empty_value = o.bool(cx, "keep_empty_value").unwrap_or(false);
    o.finish(cx);
    let (key, value) = kv?;
    Some(HeaderValueOption {
        key,
        value,
        append_action,
        keep_empty_value,
    })
}

/// A protobuf `bytes` field (base64) that must hold UTF-8 text.
fn bytes_as_string(cx: &mut Cx, v: &Value, path: &str) -> Option<String> {
    let s = as_string(cx, v, path)?;
    let Some(bytes) = base64_decode(&s) else {
        cx.error(path, "invalid base64");
        return None;
    };
    match String::from_utf8(bytes) {
        Ok(s) => Some(s),
        Err(_) => {
            cx.error(path, "binary (non-UTF-8) values are not supported");
            None
        }
    }
}

const TLS_REQUIREMENTS: &[(&str, TlsRequirement)] = &[
    ("NONE", TlsRequirement::None),
    ("EXTERNAL_ONLY", TlsRequirement::ExternalOnly),
    ("ALL", TlsRequirement::All),
];

fn virtual_host(cx: &mut Cx, v: &Value, path: String) -> Option<VirtualHost> {
    let mut o = Obj::new(cx, v, path)?;
    let mut vh = VirtualHost {
        name: o.string(cx, "name").unwrap_or_default(),
        domains: o.strings(cx, "domains"),
        ..VirtualHost::default()
    };
    vh.routes = o
        .list(cx, "routes")
        .into_iter()
        .filter_map(|(v, p)| route(cx, v, p))
        .collect();
    o.reject(cx, "matcher", "matcher trees are not supported; use routes");
    if let Some(t) = o.enumeration(cx, "require_tls", TLS_REQUIREMENTS) {
        vh.require_tls = t;
    }
    vh.virtual_clusters = o
        .list(cx, "virtual_clusters")
        .into_iter()
        .filter_map(|(v, p)| virtual_cluster(cx, v, p))
        .collect();
    vh.headers = header_mutations(cx, &mut o);
    vh.retry_policy = o
        .value(cx, "retry_policy")
        .and_then(|(v, p)| retry_policy(cx, v, p));
    vh.hedge_policy = o
        .value(cx, "hedge_policy")
        .and_then(|(v, p)| hedge_policy(cx, v, p));
    vh.request_mirror_policies = mirror_policies(cx, &mut o);
    vh.typed_per_filter_config = typed_per_filter_config(cx, &mut o);
    vh.include_request_attempt_count = o.bool(cx, "include_request_attempt_count").unwrap_or(false);
    vh.include_attempt_count_in_response = o
        .bool(cx, "include_attempt_count_in_response")
        .unwrap_or(false);
    vh.per_request_buffer_limit_bytes = o.u32(cx, "per_request_buffer_limit_bytes");
    o.unsupported(cx, "cors", "CORS is not supported yet, ignored");
    o.unsupported(
        cx,
        "rate_limits",
        "rate limits are not supported yet, ignored",
    );
    o.finish(cx);
    Some(vh)
}

fn virtual_cluster(cx: &mut Cx, v: &Value, path: String) -> Option<VirtualCluster> {
    let mut o = Obj::new(cx, v, path)?;
    let name = o.string(cx, "name").unwrap_or_default();
    let mut headers: Vec<HeaderMatcher> = o
        .list(cx, "headers")
        .into_iter()
        .filter_map(|(v, p)| header_matcher(cx, v, p))
        .collect();
    // The v2 forms, still seen in configs: a path regex and a method.
    if let Some(pattern) = o.string(cx, "pattern") {
        headers.push(HeaderMatcher::new(
            ":path",
            HeaderMatchSpec::String(StringMatcher {
                pattern: StringPattern::SafeRegex(pattern),
                ignore_case: false,
            }),
        ));
    }
    if let Some(method) = o.string(cx, "method") {
        headers.push(HeaderMatcher::exact(":method", method));
    }
    o.finish(cx);
    Some(VirtualCluster { name, headers })
}

/// `typed_per_filter_config`: filter name → the filter's config (a `TypedStruct`'s value, or the
/// typed config without `@type`).
fn typed_per_filter_config(cx: &mut Cx, o: &mut Obj<'_>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let Some(mut m) = o.obj(cx, "typed_per_filter_config") else {
        return out;
    };
    for (k, v) in m.take_all() {
        let p = join(m.path(), &k);
        if let Some((config, _)) = any_config(cx, &v, &p) {
            out.insert(k, config);
        }
    }
    out
}

/// An extension config (`Any`): the config and the type to build it with. For a `TypedStruct`
/// that is its `value` and `type_url`; for any other `@type` the remaining fields and the
/// `@type`.
pub(crate) fn any_config(cx: &mut Cx, v: &Value, path: &str) -> Option<(Value, Option<String>)> {
    let Value::Object(m) = v else {
        cx.error(path, format!("expected an object, got {}", super::show(v)));
        return None;
    };
    let ty = type_name(v);
    if ty.is_some_and(|t| TYPED_STRUCTS.contains(&t)) {
        let mut o = Obj::new(cx, v, path.to_owned())?;
        o.ignore(cx, "@type");
        let type_url = o.string(cx, "type_url");
        let value = o
            .value(cx, "value")
            .map_or_else(|| Value::Object(Map::new()), |(v, _)| v.clone());
        o.finish(cx);
        return Some((value, type_url));
    }
    if ty == Some(FILTER_CONFIG) {
        let mut o = Obj::new(cx, v, path.to_owned())?;
        o.ignore(cx, "@type");
        o.ignore(cx, "is_optional");
        o.unsupported(
            cx,
            "disabled",
            "disabling a filter per route is not supported yet, ignored",
        );
        let inner = o.value(cx, "config");
        o.finish(cx);
        return match inner {
            Some((iv, ip)) => any_config(cx, iv, &ip),
            None => Some((Value::Object(Map::new()), None)),
        };
    }
    let mut rest = m.clone();
    let type_url = match rest.remove("@type") {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    Some((Value::Object(rest), type_url))
}

fn route(cx: &mut Cx, v: &Value, path: String) -> Option<Route> {
    let mut o = Obj::new(cx, v, path)?;
    let name = o.string(cx, "name").unwrap_or_default();
    let route_match = o
        .required(cx, "match")
        .and_then(|(mv, mp)| route_match(cx, mv, mp));
    let mut actions = Vec::new();
    if let Some((av, ap)) = o.value(cx, "route") {
        actions.push(route_action(cx, av, ap).map(Action::Route));
    }
    if let Some((av, ap)) = o.value(cx, "redirect") {
        actions.push(redirect(cx, av, ap).map(Action::Redirect));
    }
    if let Some((av, ap)) = o.value(cx, "direct_response") {
        actions.push(direct_response(cx, av, ap).map(Action::DirectResponse));
    }
    let other_action = o.has("filter_action") || o.has("non_forwarding_action");
    o.reject(
        cx,
        "filter_action",
        "filter_action routes are not supported",
    );
    o.reject(
        cx,
        "non_forwarding_action",
        "non_forwarding_action routes are not supported",
    );
    if actions.len() > 1 {
        cx.error(
            o.path(),
            "only one of route, redirect and direct_response may be set",
        );
    } else if actions.is_empty() && !other_action {
        cx.error(
            o.path(),
            "one of route, redirect or direct_response is required",
        );
    }
    let headers = header_mutations(cx, &mut o);
    let typed_per_filter_config = typed_per_filter_config(cx, &mut o);
    let per_request_buffer_limit_bytes = o.u32(cx, "per_request_buffer_limit_bytes");
    o.unsupported(
        cx,
        "metadata",
        "route metadata is not supported yet, ignored",
    );
    o.finish(cx);
    Some(Route {
        name,
        route_match: route_match?,
        action: actions.pop().flatten()?,
        headers,
        typed_per_filter_config,
        per_request_buffer_limit_bytes,
    })
}

fn route_match(cx: &mut Cx, v: &Value, path: String) -> Option<RouteMatch> {
    let mut o = Obj::new(cx, v, path)?;
    let mut paths = Vec::new();
    if let Some(s) = o.string(cx, "prefix") {
        paths.push(Some(PathMatch::Prefix(s)));
    }
    if let Some(s) = o.string(cx, "path") {
        paths.push(Some(PathMatch::Path(s)));
    }
    if let Some((rv, rp)) = o.value(cx, "safe_regex") {
        paths.push(regex_matcher(cx, rv, rp).map(PathMatch::SafeRegex));
    }
    if let Some(s) = o.string(cx, "path_separated_prefix") {
        paths.push(Some(PathMatch::PathSeparatedPrefix(s)));
    }
    if let Some(c) = o.obj(cx, "connect_matcher") {
        c.finish(cx);
        paths.push(Some(PathMatch::ConnectMatcher));
    }
    if let Some((pv, pp)) = o.value(cx, "path_match_policy") {
        paths.push(path_match_policy(cx, pv, pp));
    }
    o.reject(
        cx,
        "regex",
        "the `regex` path matcher was removed from Envoy; use safe_regex",
    );
    if paths.len() > 1 {
        cx.error(
            o.path(),
            "only one of prefix, path, safe_regex, path_separated_prefix, connect_matcher and path_match_policy may be set",
        );
    } else if paths.is_empty() {
        cx.error(
            o.path(),
            "one of prefix, path, safe_regex, path_separated_prefix, connect_matcher or path_match_policy is required",
        );
    }
    let case_sensitive = o.bool(cx, "case_sensitive").unwrap_or(true);
    let runtime_fraction = o
        .value(cx, "runtime_fraction")
        .and_then(|(v, p)| runtime_fraction(cx, v, p));
    let headers = o
        .list(cx, "headers")
        .into_iter()
        .filter_map(|(v, p)| header_matcher(cx, v, p))
        .collect();
    let query_parameters = o
        .list(cx, "query_parameters")
        .into_iter()
        .filter_map(|(v, p)| query_parameter_matcher(cx, v, p))
        .collect();
    let grpc = match o.obj(cx, "grpc") {
        Some(g) => {
            g.finish(cx);
            true
        }
        None => false,
    };
    let tls_context = o.obj(cx, "tls_context").map(|mut t| {
        let m = TlsContextMatch {
            presented: t.bool(cx, "presented"),
            validated: t.bool(cx, "validated"),
        };
        t.finish(cx);
        m
    });
    for key in ["dynamic_metadata", "filter_state", "cel_matcher"] {
        o.reject(
            cx,
            key,
            "this match condition is not supported (ignoring it would match more requests)",
        );
    }
    o.finish(cx);
    Some(RouteMatch {
        path: paths.pop().flatten()?,
        case_sensitive,
        runtime_fraction,
        headers,
        query_parameters,
        grpc,
        tls_context,
    })
}

/// `path_match_policy` with the URI-template matcher.
fn path_match_policy(cx: &mut Cx, v: &Value, path: String) -> Option<PathMatch> {
    let mut o = Obj::new(cx, v, path)?;
    o.ignore(cx, "name");
    let tc = o.obj(cx, "typed_config");
    let p = o.path().to_owned();
    o.finish(cx);
    let Some(mut tc) = tc else {
        cx.error(join(&p, "typed_config"), "typed_config is required");
        return None;
    };
    let ty = tc.string(cx, "@type");
    if ty.as_deref().map(|t| t.rsplit('/').next().unwrap_or(t)) != Some(URI_TEMPLATE) {
        cx.error(
            tc.path(),
            format!("only {URI_TEMPLATE} is supported as a path match policy"),
        );
        return None;
    }
    let template = tc.string(cx, "path_template");
    let tp = tc.child("path_template");
    tc.finish(cx);
    if template.is_none() {
        cx.error(tp, "path_template is required");
    }
    template.map(PathMatch::PathTemplate)
}

/// A `RegexMatcher`: its `regex` (`google_re2` is accepted and has no effect).
fn regex_matcher(cx: &mut Cx, v: &Value, path: String) -> Option<String> {
    let mut o = Obj::new(cx, v, path)?;
    let regex = o.string(cx, "regex");
    o.ignore(cx, "google_re2");
    let p = o.child("regex");
    o.finish(cx);
    if regex.is_none() {
        cx.error(p, "regex is required");
    }
    regex
}

/// Converts one Envoy `config.route.v3.HeaderMatcher` in its JSON form (as found in route
/// configs and in `router_check_tool` test files), with the same spellings and rules as the
/// matchers inside a route configuration: `string_match`, the deprecated `exact_match` and
/// friends, `present_match`, `range_match`, `invert_match`, `treat_missing_header_as_empty`;
/// no specifier at all is a presence match.
///
/// Unlike a whole configuration, a lone matcher is read strictly: an unknown field is an
/// error, not a warning, since ignoring part of a condition would change what it means.
///
/// # Errors
/// [`LoadError::Invalid`] listing every problem, with paths relative to the matcher
/// (`string_match.prefix`, `name`; an empty path for the matcher itself).
///
/// # Examples
///
/// ```
/// use mesh_core::config::HeaderMatchSpec;
///
/// let m = mesh_xds::envoy::parse_header_matcher(&serde_json::json!({
///     "name": "x-env",
///     "string_match": {"exact": "prod"},
/// }))?;
/// assert_eq!(m.name, "x-env");
/// assert!(matches!(m.spec, HeaderMatchSpec::String(_)));
///
/// // `exact` belongs inside `string_match`: an error, not a silently ignored field.
/// let e = mesh_xds::envoy::parse_header_matcher(&serde_json::json!({"name": "x", "exact": "y"}))
///     .unwrap_err();
/// assert_eq!(e.field_errors()[0].path, "exact");
/// # Ok::<(), mesh_xds::LoadError>(())
/// ```
pub fn parse_header_matcher(v: &Value) -> Result<HeaderMatcher, LoadError> {
    let mut cx = Cx::default();
    let matcher = header_matcher(&mut cx, v, String::new());
    let mut errors = cx.errors;
    errors.extend(cx.warnings.into_iter().map(|w| FieldError {
        path: w.path,
        message: w.message,
    }));
    match matcher {
        Some(m) if errors.is_empty() => Ok(m),
        _ => {
            if errors.is_empty() {
                errors.push(FieldError {
                    path: String::new(),
                    message: "not a valid header matcher".into(),
                });
            }
            Err(LoadError::Invalid { errors })
        }
    }
}

fn header_matcher(cx: &mut Cx, v: &Value, path: String) -> Option<HeaderMatcher> {
    let mut o = Obj::new(cx, v, path)?;
    let name = o.string(cx, "name");
    let mut specs = Vec::new();
    if let Some((ev, ep)) = o.value(cx, "exact_match") {
        // An empty exact_match is a presence match in Envoy.
        specs.push(as_string(cx, ev, &ep).map(|s| {
            if s.is_empty() {
                HeaderMatchSpec::Present(true)
            } else {
                HeaderMatchSpec::String(StringMatcher::exact(s))
            }
        }));
    }
    for (key, make) in [
        (
            "prefix_match",
            StringPattern::Prefix as fn(String) -> StringPattern,
        ),
        ("suffix_match", StringPattern::Suffix),
        ("contains_match", StringPattern::Contains),
    ] {
        if let Some((sv, sp)) = o.value(cx, key) {
            specs.push(non_empty(cx, sv, &sp).map(|s| {
                HeaderMatchSpec::String(StringMatcher {
                    pattern: make(s),
                    ignore_case: false,
                })
            }));
        }
    }
    if let Some((rv, rp)) = o.value(cx, "safe_regex_match") {
        specs.push(regex_matcher(cx, rv, rp).map(|r| {
            HeaderMatchSpec::String(StringMatcher {
                pattern: StringPattern::SafeRegex(r),
                ignore_case: false,
            })
        }));
    }
    if let Some(b) = o.bool(cx, "present_match") {
        specs.push(Some(HeaderMatchSpec::Present(b)));
    }
    if let Some(mut r) = o.obj(cx, "range_match") {
        let start = r.i64(cx, "start").unwrap_or(0);
        let end = r.i64(cx, "end").unwrap_or(0);
        r.finish(cx);
        specs.push(Some(HeaderMatchSpec::Range { start, end }));
    }
    if let Some((sv, sp)) = o.value(cx, "string_match") {
        specs.push(string_matcher(cx, sv, sp).map(HeaderMatchSpec::String));
    }
    o.reject(
        cx,
        "regex_match",
        "regex_match was removed from Envoy; use safe_regex_match",
    );
    if specs.len() > 1 {
        cx.error(o.path(), "only one header match specifier may be set");
    }
    let invert_match = o.bool(cx, "invert_match").unwrap_or(false);
    let treat_missing_header_as_empty =
        o.bool(cx, "treat_missing_header_as_empty").unwrap_or(false);
    let p = o.path().to_owned();
    o.finish(cx);
    let name = match name {
        Some(n) if !n.is_empty() => n,
        _ => {
            cx.error(join(&p, "name"), "header name is required");
            return None;
        }
    };
    // No specifier at all is a presence match.
    let spec = specs
        .pop()
        .unwrap_or(Some(HeaderMatchSpec::Present(true)))?;
    Some(HeaderMatcher {
        name,
        spec,
        invert_match,
        treat_missing_header_as_empty,
    })
}

fn non_empty(cx: &mut Cx, v: &Value, path: &str) -> Option<String> {
    let s = as_string(cx, v, path)?;
    if s.is_empty() {
        cx.error(path, "must not be empty");
        return None;
    }
    Some(s)
}

/// A `type.matcher.v3.StringMatcher`.
pub(crate) fn string_matcher(cx: &mut Cx, v: &Value, path: String) -> Option<StringMatcher> {
    let mut o = Obj::new(cx, v, path)?;
    let mut patterns = Vec::new();
    if let Some(s) = o.string(cx, "exact") {
        patterns.push(Some(StringPattern::Exact(s)));
    }
    for (key, make) in [
        (
            "prefix",
            StringPattern::Prefix as fn(String) -> StringPattern,
        ),
        ("suffix", StringPattern::Suffix),
        ("contains", StringPattern::Contains),
    ] {
        if let Some((sv, sp)) = o.value(cx, key) {
            patterns.push(non_empty(cx, sv, &sp).map(make));
        }
    }
    if let Some((rv, rp)) = o.value(cx, "safe_regex") {
        patterns.push(regex_matcher(cx, rv, rp).map(StringPattern::SafeRegex));
    }
    o.reject(cx, "custom", "custom string matchers are not supported");
    let ignore_case = o.bool(cx, "ignore_case").unwrap_or(false);
    if patterns.len() > 1 {
        cx.error(
            o.path(),
            "only one of exact, prefix, suffix, contains and safe_regex may be set",
        );
    } else if patterns.is_empty() && !o.has("custom") {
        cx.error(
            o.path(),
            "one of exact, prefix, suffix, contains or safe_regex is required",
        );
    }
    o.finish(cx);
    Some(StringMatcher {
        pattern: patterns.pop().flatten()?,
        ignore_case,
    })
}

fn query_parameter_matcher(cx: &mut Cx, v: &Value, path: String) -> Option<QueryParameterMatcher> {
    let mut o = Obj::new(cx, v, path)?;
    let name = o.string(cx, "name");
    let string_match = o
        .value(cx, "string_match")
        .map(|(v, p)| string_matcher(cx, v, p));
    let present = o.value(cx, "present_match");
    if let Some((pv, pp)) = present {
        match super::as_bool(cx, pv, &pp) {
            Some(true) | None => {}
            Some(false) => cx.error(pp, "present_match: false is not supported"),
        }
        if string_match.is_some() {
            cx.error(o.path(), "string_match and present_match are both set");
        }
    }
    let p = o.child("name");
    o.finish(cx);
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        cx.error(p, "name is required");
        return None;
    };
    let string_match = match string_match {
        Some(m) => Some(m?),
        None => None,
    };
    Some(QueryParameterMatcher { name, string_match })
}

const DENOMINATORS: &[(&str, Denominator)] = &[
    ("HUNDRED", Denominator::Hundred),
    ("TEN_THOUSAND", Denominator::TenThousand),
    ("MILLION", Denominator::Million),
];

fn fractional_percent(cx: &mut Cx, v: &Value, path: String) -> Option<FractionalPercent> {
    let mut o = Obj::new(cx, v, path)?;
    let numerator = o.u32(cx, "numerator").unwrap_or(0);
    let denominator = o
        .enumeration(cx, "denominator", DENOMINATORS)
        .unwrap_or_default();
    o.finish(cx);
    Some(FractionalPercent {
        numerator,
        denominator,
    })
}

fn runtime_fraction(cx: &mut Cx, v: &Value, path: String) -> Option<RuntimeFraction> {
    let mut o = Obj::new(cx, v, path)?;
    let default_value = o
        .required(cx, "default_value")
        .and_then(|(dv, dp)| fractional_percent(cx, dv, dp));
    let runtime_key = o.string(cx, "runtime_key").unwrap_or_default();
    o.finish(cx);
    Some(RuntimeFraction {
        default_value: default_value?,
        runtime_key,
    })
}

const NOT_FOUND_CODES: &[(&str, u16)] = &[
    ("SERVICE_UNAVAILABLE", 503),
    ("NOT_FOUND", 404),
    ("INTERNAL_SERVER_ERROR", 500),
];

fn route_action(cx: &mut Cx, v: &Value, path: String) -> Option<RouteAction> {
    let mut o = Obj::new(cx, v, path)?;
    let mut specs = Vec::new();
    if let Some(c) = o.string(cx, "cluster") {
        specs.push(Some(ClusterSpecifier::Cluster(c)));
    }
    if let Some((hv, hp)) = o.value(cx, "cluster_header") {
        specs.push(non_empty(cx, hv, &hp).map(ClusterSpecifier::ClusterHeader));
    }
    if let Some((wv, wp)) = o.value(cx, "weighted_clusters") {
        specs.push(weighted_clusters(cx, wv, wp).map(ClusterSpecifier::WeightedClusters));
    }
    let plugin = o.has("cluster_specifier_plugin") || o.has("inline_cluster_specifier_plugin");
    for key in [
        "cluster_specifier_plugin",
        "inline_cluster_specifier_plugin",
    ] {
        o.reject(cx, key, "cluster specifier plugins are not supported");
    }
    if specs.len() > 1 {
        cx.error(
            o.path(),
            "only one of cluster, cluster_header and weighted_clusters may be set",
        );
    } else if specs.is_empty() && !plugin {
        cx.error(
            o.path(),
            "one of cluster, cluster_header or weighted_clusters is required",
        );
    }
    let spec = specs.pop().flatten();
    let mut a = RouteAction::cluster("");
    if let Some(code) = o.enumeration(cx, "cluster_not_found_response_code", NOT_FOUND_CODES) {
        a.cluster_not_found_response_code = code;
    }
    if let Some((mv, mp)) = o.value(cx, "metadata_match") {
        let mut md = endpoint::metadata(cx, mv, mp.clone());
        if let Some(lb) = md.remove("envoy.lb") {
            a.metadata_match = lb.into_iter().collect();
        }
        for k in md.keys() {
            cx.warn(
                join(&join(&mp, "filter_metadata"), k),
                "only envoy.lb metadata selects subsets; ignored",
            );
        }
    }
    a.prefix_rewrite = o.string(cx, "prefix_rewrite");
    a.regex_rewrite = o
        .value(cx, "regex_rewrite")
        .and_then(|(v, p)| regex_rewrite(cx, v, p));
    let mut host = Vec::new();
    if let Some(h) = o.string(cx, "host_rewrite_literal") {
        host.push(HostRewrite::Literal(h));
    }
    if o.bool(cx, "auto_host_rewrite") == Some(true) {
        host.push(HostRewrite::Auto);
    }
    if let Some(h) = o.string(cx, "host_rewrite_header") {
        host.push(HostRewrite::Header(h));
    }
    if let Some(r) = o
        .value(cx, "host_rewrite_path_regex")
        .and_then(|(v, p)| regex_rewrite(cx, v, p))
    {
        host.push(HostRewrite::PathRegex(r));
    }
    if host.len() > 1 {
        cx.error(o.path(), "only one host rewrite may be set");
    }
    a.host_rewrite = host.pop();
    a.append_x_forwarded_host = o.bool(cx, "append_x_forwarded_host").unwrap_or(false);
    a.timeout = o.duration(cx, "timeout");
    a.idle_timeout = o.duration(cx, "idle_timeout");
    a.retry_policy = o
        .value(cx, "retry_policy")
        .and_then(|(v, p)| retry_policy(cx, v, p));
    a.hedge_policy = o
        .value(cx, "hedge_policy")
        .and_then(|(v, p)| hedge_policy(cx, v, p));
    a.request_mirror_policies = mirror_policies(cx, &mut o);
    a.hash_policy = o
        .list(cx, "hash_policy")
        .into_iter()
        .filter_map(|(v, p)| hash_policy(cx, v, p))
        .collect();
    a.upgrade_configs = upgrade_configs(cx, &mut o);
    a.max_grpc_timeout = o.duration(cx, "max_grpc_timeout");
    a.grpc_timeout_offset = o.duration(cx, "grpc_timeout_offset");
    if let Some(mut msd) = o.obj(cx, "max_stream_duration") {
        if let Some(d) = msd.duration(cx, "grpc_timeout_header_max") {
            a.max_grpc_timeout = Some(d);
        }
        if let Some(d) = msd.duration(cx, "grpc_timeout_header_offset") {
            a.grpc_timeout_offset = Some(d);
        }
        msd.unsupported(
            cx,
            "max_stream_duration",
            "max_stream_duration is not supported yet, ignored",
        );
        msd.finish(cx);
    }
    if let Some(p) = o.enumeration(cx, "priority", PRIORITIES) {
        a.priority = p;
    }
    o.ignore(cx, "total_weight");
    o.unsupported(cx, "cors", "CORS is not supported yet, ignored");
    o.unsupported(
        cx,
        "rate_limits",
        "rate limits are not supported yet, ignored",
    );
    o.finish(cx);
    a.cluster = spec?;
    Some(a)
}

fn weighted_clusters(cx: &mut Cx, v: &Value, path: String) -> Option<WeightedClusters> {
    let mut o = Obj::new(cx, v, path)?;
    let clusters = o
        .list(cx, "clusters")
        .into_iter()
        .filter_map(|(v, p)| cluster_weight(cx, v, p))
        .collect();
    // Deprecated and ignored by Envoy: the total is the sum of the weights.
    o.ignore(cx, "total_weight");
    let w = WeightedClusters {
        clusters,
        runtime_key_prefix: o.string(cx, "runtime_key_prefix").unwrap_or_default(),
        header_name: o.string(cx, "header_name"),
        use_hash_policy: o.bool(cx, "use_hash_policy").unwrap_or(false),
    };
    o.finish(cx);
    Some(w)
}

fn cluster_weight(cx: &mut Cx, v: &Value, path: String) -> Option<ClusterWeight> {
    let mut o = Obj::new(cx, v, path)?;
    let w = ClusterWeight {
        name: o.string(cx, "name").unwrap_or_default(),
        cluster_header: o.string(cx, "cluster_header"),
        weight: o.u32(cx, "weight").unwrap_or(0),
        headers: header_mutations(cx, &mut o),
        host_rewrite_literal: o.string(cx, "host_rewrite_literal"),
        typed_per_filter_config: typed_per_filter_config(cx, &mut o),
    };
    o.unsupported(
        cx,
        "metadata_match",
        "metadata_match on a weighted cluster is not supported yet, ignored",
    );
    o.finish(cx);
    Some(w)
}

fn regex_rewrite(cx: &mut Cx, v: &Value, path: String) -> Option<RegexRewrite> {
    let mut o = Obj::new(cx, v, path)?;
    let pattern = o
        .required(cx, "pattern")
        .and_then(|(pv, pp)| regex_matcher(cx, pv, pp));
    let substitution = o.string(cx, "substitution").unwrap_or_default();
    o.finish(cx);
    Some(RegexRewrite {
        pattern: pattern?,
        substitution,
    })
}

fn retry_policy(cx: &mut Cx, v: &Value, path: String) -> Option<RetryPolicy> {
    let mut o = Obj::new(cx, v, path)?;
    let mut r = RetryPolicy {
        retry_on: o.string(cx, "retry_on").unwrap_or_default(),
        ..RetryPolicy::default()
    };
    if let Some(n) = o.u32(cx, "num_retries") {
        r.num_retries = n;
    }
    r.per_try_timeout = o.duration(cx, "per_try_timeout");
    r.per_try_idle_timeout = o.duration(cx, "per_try_idle_timeout");
    if let Some(mut b) = o.obj(cx, "retry_back_off") {
        let base = b.duration(cx, "base_interval");
        let max_interval = b.duration(cx, "max_interval");
        let bp = b.child("base_interval");
        b.finish(cx);
        match base {
            Some(base_interval) => {
                r.retry_back_off = Some(BackOff {
                    base_interval,
                    max_interval,
                });
            }
            None => cx.error(bp, "base_interval is required"),
        }
    }
    for (cv, cp) in o.list(cx, "retriable_status_codes") {
        if let Some(c) = as_u64(cx, cv, &cp, 999).and_then(|c| u16::try_from(c).ok()) {
            r.retriable_status_codes.push(c);
        }
    }
    r.retriable_headers = o
        .list(cx, "retriable_headers")
        .into_iter()
        .filter_map(|(v, p)| header_matcher(cx, v, p))
        .collect();
    r.retriable_request_headers = o
        .list(cx, "retriable_request_headers")
        .into_iter()
        .filter_map(|(v, p)| header_matcher(cx, v, p))
        .collect();
    for (pv, pp) in o.list(cx, "retry_host_predicate") {
        let Some(mut p) = Obj::new(cx, pv, pp) else {
            continue;
        };
        let name = p.string(cx, "name");
        p.ignore(cx, "typed_config");
        let np = p.child("name");
        p.finish(cx);
        match name {
            Some(n) if !n.is_empty() => r.retry_host_predicate.push(n),
            _ => cx.error(np, "name is required"),
        }
    }
    if let Some(n) = o.i64(cx, "host_selection_retry_max_attempts") {
        match u32::try_from(n) {
            Ok(n) => r.host_selection_retry_max_attempts = n,
            Err(_) => cx.error(
                o.child("host_selection_retry_max_attempts"),
                format!("{n} is out of range"),
            ),
        }
    }
    o.unsupported(
        cx,
        "retry_priority",
        "retry priorities are not supported yet, ignored",
    );
    o.finish(cx);
    Some(r)
}

fn hedge_policy(cx: &mut Cx, v: &Value, path: String) -> Option<HedgePolicy> {
    let mut o = Obj::new(cx, v, path)?;
    let h = HedgePolicy {
        hedge_on_per_try_timeout: o.bool(cx, "hedge_on_per_try_timeout").unwrap_or(false),
    };
    o.finish(cx);
    Some(h)
}

/// `request_mirror_policies`, and the deprecated singular `request_mirror_policy`.
fn mirror_policies(cx: &mut Cx, o: &mut Obj<'_>) -> Vec<RequestMirrorPolicy> {
    let mut out: Vec<RequestMirrorPolicy> = o
        .list(cx, "request_mirror_policies")
        .into_iter()
        .filter_map(|(v, p)| mirror_policy(cx, v, p))
        .collect();
    if let Some((v, p)) = o.value(cx, "request_mirror_policy") {
        out.extend(mirror_policy(cx, v, p));
    }
    out
}

fn mirror_policy(cx: &mut Cx, v: &Value, path: String) -> Option<RequestMirrorPolicy> {
    let mut o = Obj::new(cx, v, path)?;
    let m = RequestMirrorPolicy {
        cluster: o.string(cx, "cluster").unwrap_or_default(),
        cluster_header: o.string(cx, "cluster_header"),
        runtime_fraction: o
            .value(cx, "runtime_fraction")
            .and_then(|(v, p)| runtime_fraction(cx, v, p)),
        disable_shadow_host_suffix_append: o
            .bool(cx, "disable_shadow_host_suffix_append")
            .unwrap_or(false),
    };
    o.finish(cx);
    Some(m)
}

fn hash_policy(cx: &mut Cx, v: &Value, path: String) -> Option<HashPolicy> {
    let mut o = Obj::new(cx, v, path)?;
    let mut on = Vec::new();
    if let Some(mut h) = o.obj(cx, "header") {
        let name = h.string(cx, "header_name").unwrap_or_default();
        h.unsupported(
            cx,
            "regex_rewrite",
            "regex_rewrite of a hashed header is not supported yet, ignored",
        );
        h.finish(cx);
        on.push(Some(HashOn::Header { header_name: name }));
    }
    if let Some(mut c) = o.obj(cx, "cookie") {
        let name = c.string(cx, "name").unwrap_or_default();
        let ttl = c.duration(cx, "ttl");
        let path = c.string(cx, "path").unwrap_or_default();
        c.unsupported(
            cx,
            "attributes",
            "cookie attributes are not supported yet, ignored",
        );
        c.finish(cx);
        on.push(Some(HashOn::Cookie { name, ttl, path }));
    }
    if let Some(mut c) = o.obj(cx, "connection_properties") {
        let source_ip = c.bool(cx, "source_ip").unwrap_or(false);
        let cp = c.child("source_ip");
        c.finish(cx);
        if source_ip {
            on.push(Some(HashOn::SourceIp));
        } else {
            cx.error(cp, "source_ip must be true");
            on.push(None);
        }
    }
    if let Some(mut q) = o.obj(cx, "query_parameter") {
        let name = q.string(cx, "name").unwrap_or_default();
        q.finish(cx);
        on.push(Some(HashOn::QueryParameter { name }));
    }
    if let Some(mut f) = o.obj(cx, "filter_state") {
        let key = f.string(cx, "key").unwrap_or_default();
        f.finish(cx);
        on.push(Some(HashOn::FilterState { key }));
    }
    let terminal = o.bool(cx, "terminal").unwrap_or(false);
    if on.len() != 1 {
        cx.error(
            o.path(),
            "exactly one of header, cookie, connection_properties, query_parameter or filter_state is required",
        );
    }
    o.finish(cx);
    Some(HashPolicy {
        policy: on.pop().flatten()?,
        terminal,
    })
}

/// `upgrade_configs` (route or connection-manager level).
pub(crate) fn upgrade_configs(cx: &mut Cx, o: &mut Obj<'_>) -> Vec<UpgradeConfig> {
    let mut out = Vec::new();
    for (v, p) in o.list(cx, "upgrade_configs") {
        let Some(mut u) = Obj::new(cx, v, p) else {
            continue;
        };
        let upgrade_type = u.string(cx, "upgrade_type");
        let enabled = u.bool(cx, "enabled").unwrap_or(true);
        u.unsupported(
            cx,
            "filters",
            "upgrade-specific filter chains are not supported yet, ignored",
        );
        let tp = u.child("upgrade_type");
        u.finish(cx);
        match upgrade_type {
            Some(t) if !t.is_empty() => out.push(UpgradeConfig {
                upgrade_type: t,
                enabled,
            }),
            _ => cx.error(tp, "upgrade_type is required"),
        }
    }
    out
}

const REDIRECT_CODES: &[(&str, RedirectCode)] = &[
    ("MOVED_PERMANENTLY", RedirectCode::MovedPermanently),
    ("FOUND", RedirectCode::Found),
    ("SEE_OTHER", RedirectCode::SeeOther),
    ("TEMPORARY_REDIRECT", RedirectCode::TemporaryRedirect),
    ("PERMANENT_REDIRECT", RedirectCode::PermanentRedirect),
];

fn redirect(cx: &mut Cx, v: &Value, path: String) -> Option<RedirectAction> {
    let mut o = Obj::new(cx, v, path)?;
    let mut r = RedirectAction::default();
    let https = o.bool(cx, "https_redirect");
    let scheme = o.string(cx, "scheme_redirect");
    match (https, scheme) {
        (Some(true), Some(_)) => {
            cx.error(o.path(), "https_redirect and scheme_redirect are both set")
        }
        (Some(true), None) => r.scheme_redirect = Some("https".into()),
        (_, s) => r.scheme_redirect = s,
    }
    r.host_redirect = o.string(cx, "host_redirect");
    r.port_redirect = o.u16(cx, "port_redirect").filter(|p| *p != 0);
    let mut paths = Vec::new();
    if let Some(p) = o.string(cx, "path_redirect") {
        paths.push(Some(PathRedirect::Path(p)));
    }
    if let Some(p) = o.string(cx, "prefix_rewrite") {
        paths.push(Some(PathRedirect::Prefix(p)));
    }
    if let Some((rv, rp)) = o.value(cx, "regex_rewrite") {
        paths.push(regex_rewrite(cx, rv, rp).map(PathRedirect::Regex));
    }
    if paths.len() > 1 {
        cx.error(
            o.path(),
            "only one of path_redirect, prefix_rewrite and regex_rewrite may be set",
        );
    }
    r.path_redirect = paths.pop().flatten();
    if let Some(c) = o.enumeration(cx, "response_code", REDIRECT_CODES) {
        r.response_code = c;
    }
    r.strip_query = o.bool(cx, "strip_query").unwrap_or(false);
    o.finish(cx);
    Some(r)
}

fn direct_response(cx: &mut Cx, v: &Value, path: String) -> Option<DirectResponseAction> {
    let mut o = Obj::new(cx, v, path)?;
    let status = o.u16(cx, "status");
    let body = match o.value(cx, "body") {
        Some((bv, bp)) => data_source(cx, bv, bp),
        None => None,
    };
    let sp = o.child("status");
    o.finish(cx);
    let Some(status) = status else {
        cx.error(sp, "status is required");
        return None;
    };
    Some(DirectResponseAction { status, body })
}

/// A `config.core.v3.DataSource` held inline.
fn data_source(cx: &mut Cx, v: &Value, path: String) -> Option<String> {
    let mut o = Obj::new(cx, v, path)?;
    let mut out = Vec::new();
    if let Some(s) = o.string(cx, "inline_string") {
        out.push(s);
    }
    if let Some((bv, bp)) = o.value(cx, "inline_bytes") {
        out.extend(bytes_as_string(cx, bv, &bp));
    }
    o.reject(
        cx,
        "filename",
        "reading a file is not supported here; use inline_string",
    );
    o.reject(
        cx,
        "environment_variable",
        "environment variables are not supported here; use inline_string",
    );
    if out.len() > 1 {
        cx.error(
            o.path(),
            "only one of inline_string and inline_bytes may be set",
        );
    }
    o.finish(cx);
    out.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(yaml: &str) -> (RouteConfiguration, Cx) {
        let v: Value = serde_yaml_ng::from_str(yaml).unwrap();
        let mut cx = Cx::default();
        let rc = route_configuration(&mut cx, &v, "");
        (rc, cx)
    }

    #[test]
    fn header_matcher_spellings() {
        let (rc, cx) = rc(r#"
virtual_hosts:
- name: a
  domains: ["*"]
  routes:
  - match:
      prefix: /
      headers:
      - { name: a, exact_match: "" }
      - { name: b, exact_match: x }
      - { name: c, prefix_match: p }
      - { name: d, suffix_match: s }
      - { name: e, contains_match: c }
      - { name: f, safe_regex_match: { google_re2: {}, regex: "^x$" } }
      - { name: g, present_match: false }
      - { name: h, range_match: { start: "1", end: 10 } }
      - { name: i, string_match: { prefix: q, ignore_case: true }, invert_match: true }
      - { name: j }
    route: { cluster: c }
"#);
        assert!(cx.errors.is_empty(), "{:?}", cx.errors);
        assert!(cx.warnings.is_empty(), "{:?}", cx.warnings);
        let h = &rc.virtual_hosts[0].routes[0].route_match.headers;
        let specs: Vec<_> = h.iter().map(|m| m.spec.clone()).collect();
        let s = |p: StringPattern| {
            HeaderMatchSpec::String(StringMatcher {
                pattern: p,
                ignore_case: false,
            })
        };
        assert_eq!(
            specs,
            vec![
                HeaderMatchSpec::Present(true),
                s(StringPattern::Exact("x".into())),
                s(StringPattern::Prefix("p".into())),
                s(StringPattern::Suffix("s".into())),
                s(StringPattern::Contains("c".into())),
                s(StringPattern::SafeRegex("^x$".into())),
                HeaderMatchSpec::Present(false),
                HeaderMatchSpec::Range { start: 1, end: 10 },
                HeaderMatchSpec::String(StringMatcher {
                    pattern: StringPattern::Prefix("q".into()),
                    ignore_case: true
                }),
                HeaderMatchSpec::Present(true),
            ]
        );
        assert!(h[8].invert_match);
    }

    #[test]
    fn typed_struct_and_any() {
        let mut cx = Cx::default();
        let ts = serde_json::json!({
            "@type": "type.googleapis.com/xds.type.v3.TypedStruct",
            "type_url": "acme.ApiKey",
            "value": {"header": "x-api-key"}
        });
        assert_eq!(
            any_config(&mut cx, &ts, "p"),
            Some((
                serde_json::json!({"header": "x-api-key"}),
                Some("acme.ApiKey".into())
            ))
        );
        let any = serde_json::json!({"@type": "type.googleapis.com/a.B", "x": 1});
        assert_eq!(
            any_config(&mut cx, &any, "p"),
            Some((
                serde_json::json!({"x": 1}),
                Some("type.googleapis.com/a.B".into())
            ))
        );
        assert!(cx.warnings.is_empty() && cx.errors.is_empty());
    }
}
