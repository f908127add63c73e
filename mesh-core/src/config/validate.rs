//! Whole-config validation that reports every problem with the path of the field at fault.
//!
//! Paths use the field names of Envoy's bootstrap file (`clusters[2].load_assignment.endpoints[0]
//! .lb_endpoints[1].endpoint.address`), so a user can find the line in the file they wrote.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::*;

/// One problem in a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where, e.g. `clusters[2].name`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A config that failed validation, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// The problems, in the order found.
    pub errors: Vec<FieldError>,
}

impl ValidationError {
    /// A validation error with one problem.
    pub fn single(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            errors: vec![FieldError {
                path: path.into(),
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config ({} errors)", self.errors.len())?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

pub(super) fn bootstrap(b: &Bootstrap) -> Result<(), ValidationError> {
    let mut errs = Errors(Vec::new());
    let clusters: HashSet<&str> = b.clusters.iter().map(|c| c.name.as_str()).collect();

    let mut names = HashMap::new();
    let mut addrs = HashMap::new();
    for (i, l) in b.listeners.iter().enumerate() {
        let p = format!("listeners[{i}]");
        if l.name.is_empty() {
            errs.push(format!("{p}.name"), "listener name must not be empty");
        } else if let Some(j) = names.insert(l.name.as_str(), i) {
            errs.push(
                format!("{p}.name"),
                format!("duplicate listener name {:?} (also listeners[{j}])", l.name),
            );
        }
        if l.address.port() != 0
            && let Some(j) = addrs.insert(l.address, i)
        {
            errs.push(
                format!("{p}.address"),
                format!("address {} is already used by listeners[{j}]", l.address),
            );
        }
        if l.filter_chains.is_empty() && l.default_filter_chain.is_none() {
            errs.push(
                format!("{p}.filter_chains"),
                "a listener needs at least one filter chain",
            );
        }
        let mut seen: Vec<(&FilterChainMatch, usize)> = Vec::new();
        for (k, fc) in l.filter_chains.iter().enumerate() {
            let cp = format!("{p}.filter_chains[{k}]");
            chain_match(&fc.filter_chain_match, &cp, &mut errs);
            if let Some((_, j)) = seen
                .iter()
                .find(|(m, _)| m.same_rules(&fc.filter_chain_match))
            {
                errs.push(
                    format!("{cp}.filter_chain_match"),
                    format!("the same matching rules as filter_chains[{j}]: no connection could tell them apart"),
                );
            }
            seen.push((&fc.filter_chain_match, k));
            network_filter(&fc.filter, &cp, b, &clusters, &mut errs);
        }
        if let Some(fc) = &l.default_filter_chain {
            network_filter(
                &fc.filter,
                &format!("{p}.default_filter_chain"),
                b,
                &clusters,
                &mut errs,
            );
        }
    }

    let mut rc_names = HashMap::new();
    for (i, rc) in b.route_configs.iter().enumerate() {
        let p = format!("route_configs[{i}]");
        if let Some(j) = rc_names.insert(rc.name.as_str(), i) {
            errs.push(
                format!("{p}.name"),
                format!(
                    "duplicate route configuration name {:?} (also route_configs[{j}])",
                    rc.name
                ),
            );
        }
        route_config(
            rc,
            &p,
            &clusters,
            rc.validate_clusters.unwrap_or(false),
            &mut errs,
        );
    }

    let mut cnames = HashMap::new();
    for (i, c) in b.clusters.iter().enumerate() {
        let p = format!("clusters[{i}]");
        if c.name.is_empty() {
            errs.push(format!("{p}.name"), "cluster name must not be empty");
        } else if let Some(j) = cnames.insert(c.name.as_str(), i) {
            errs.push(
                format!("{p}.name"),
                format!("duplicate cluster name {:?} (also clusters[{j}])", c.name),
            );
        }
        cluster(c, &p, &mut errs);
    }

    if let Some(d) = &b.dynamic_resources {
        let p = "dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name";
        match b.cluster(&d.ads.cluster_name) {
            None if d.ads.cluster_name.is_empty() => {
                errs.push(p, "the cluster that reaches the control plane is required")
            }
            None => errs.push(
                p,
                format!(
                    "unknown cluster {:?}: the control plane is reached through a static cluster",
                    d.ads.cluster_name
                ),
            ),
            Some(c) if c.discovery_type == DiscoveryType::Eds => errs.push(
                p,
                format!(
                    "cluster {:?} is an EDS cluster: the control plane is reached through a static cluster",
                    d.ads.cluster_name
                ),
            ),
            Some(_) => {}
        }
    }

    if errs.0.is_empty() {
        Ok(())
    } else {
        Err(ValidationError { errors: errs.0 })
    }
}

fn network_filter(
    f: &NetworkFilter,
    chain: &str,
    b: &Bootstrap,
    clusters: &HashSet<&str>,
    errs: &mut Errors,
) {
    let p = format!("{chain}.filters[0].typed_config");
    match f {
        NetworkFilter::HttpConnectionManager(h) => hcm(h, &p, b, clusters, errs),
        NetworkFilter::TcpProxy(t) => tcp_proxy(t, &p, clusters, errs),
    }
}

fn tcp_proxy(t: &TcpProxy, p: &str, clusters: &HashSet<&str>, errs: &mut Errors) {
    if t.stat_prefix.is_empty() {
        errs.push(format!("{p}.stat_prefix"), "must not be empty");
    }
    match t.clusters.as_slice() {
        [] => errs.push(
            format!("{p}.cluster"),
            "a cluster or weighted_clusters is required",
        ),
        [one] => {
            if !clusters.contains(one.name.as_str()) {
                errs.push(
                    format!("{p}.cluster"),
                    format!("unknown cluster {:?}", one.name),
                );
            }
        }
        many => {
            for (i, c) in many.iter().enumerate() {
                let cp = format!("{p}.weighted_clusters.clusters[{i}]");
                if !clusters.contains(c.name.as_str()) {
                    errs.push(
                        format!("{cp}.name"),
                        format!("unknown cluster {:?}", c.name),
                    );
                }
                if c.weight == 0 {
                    errs.push(format!("{cp}.weight"), "must be greater than 0");
                }
            }
        }
    }
    if t.max_connect_attempts == 0 {
        errs.push(format!("{p}.max_connect_attempts"), "must be at least 1");
    }
}

/// Envoy's rules for `server_names`: exact names, or one leading `*.` wildcard.
fn chain_match(m: &FilterChainMatch, chain: &str, errs: &mut Errors) {
    let p = format!("{chain}.filter_chain_match");
    for (i, n) in m.server_names.iter().enumerate() {
        let bad = n.is_empty() || n == "*" || n.strip_prefix("*.").unwrap_or(n).contains('*');
        if bad {
            errs.push(
                format!("{p}.server_names[{i}]"),
                format!(
                    "{n:?} is not a server name: use an exact name or a leading \"*.\" wildcard"
                ),
            );
        }
    }
    for (name, ranges) in [
        ("prefix_ranges", &m.prefix_ranges),
        (
            "direct_source_prefix_ranges",
            &m.direct_source_prefix_ranges,
        ),
        ("source_prefix_ranges", &m.source_prefix_ranges),
    ] {
        for (i, r) in ranges.iter().enumerate() {
            let max = if r.address_prefix.is_ipv4() { 32 } else { 128 };
            if r.prefix_len > max {
                errs.push(
                    format!("{p}.{name}[{i}].prefix_len"),
                    format!("{} is longer than the address ({max} bits)", r.prefix_len),
                );
            }
        }
    }
}

fn hcm(
    h: &HttpConnectionManager,
    p: &str,
    b: &Bootstrap,
    clusters: &HashSet<&str>,
    errs: &mut Errors,
) {
    if h.max_request_headers_kb == 0 || h.max_request_headers_kb > 8192 {
        errs.push(
            format!("{p}.max_request_headers_kb"),
            format!("must be in 1..=8192, got {}", h.max_request_headers_kb),
        );
    }
    for (i, f) in h.http_filters.iter().enumerate() {
        if f.name.is_empty() {
            errs.push(
                format!("{p}.http_filters[{i}].name"),
                "filter name must not be empty",
            );
        }
        let is_router = f.name == ROUTER_FILTER
            || f.type_url
                .as_deref()
                .is_some_and(|t| t.ends_with(".router.v3.Router"));
        if is_router && i + 1 != h.http_filters.len() {
            errs.push(
                format!("{p}.http_filters[{i}]"),
                "the router filter must be the last HTTP filter",
            );
        }
    }
    match &h.route {
        RouteSource::RouteConfig(rc) => route_config(
            rc,
            &format!("{p}.route_config"),
            clusters,
            rc.validate_clusters.unwrap_or(true),
            errs,
        ),
        RouteSource::Rds(name) => {
            if !b.route_configs.iter().any(|rc| &rc.name == name) {
                errs.push(
                    format!("{p}.rds.route_config_name"),
                    format!("unknown route configuration {name:?}"),
                );
            }
        }
    }
}

fn route_config(
    rc: &RouteConfiguration,
    p: &str,
    clusters: &HashSet<&str>,
    check_clusters: bool,
    errs: &mut Errors,
) {
    let mut domains: HashMap<String, usize> = HashMap::new();
    let mut vh_names = HashMap::new();
    for (i, vh) in rc.virtual_hosts.iter().enumerate() {
        let vp = format!("{p}.virtual_hosts[{i}]");
        if let Some(j) = vh_names.insert(vh.name.as_str(), i) {
            errs.push(
                format!("{vp}.name"),
                format!(
                    "duplicate virtual host name {:?} (also virtual_hosts[{j}])",
                    vh.name
                ),
            );
        }
        if vh.domains.is_empty() {
            errs.push(
                format!("{vp}.domains"),
                "a virtual host needs at least one domain",
            );
        }
        for (k, d) in vh.domains.iter().enumerate() {
            let key = d.to_ascii_lowercase();
            if d.is_empty() || d.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                errs.push(
                    format!("{vp}.domains[{k}]"),
                    format!("invalid domain {d:?}"),
                );
            } else if let Some(j) = domains.insert(key, i) {
                let msg = if d == "*" {
                    format!("only a single wildcard domain is permitted (also virtual_hosts[{j}])")
                } else {
                    format!("duplicate domain {d:?} (also in virtual_hosts[{j}])")
                };
                errs.push(format!("{vp}.domains[{k}]"), msg);
            }
        }
        for (k, r) in vh.routes.iter().enumerate() {
            route(
                r,
                &format!("{vp}.routes[{k}]"),
                rc,
                clusters,
                check_clusters,
                errs,
            );
        }
    }
}

fn route(
    r: &Route,
    p: &str,
    rc: &RouteConfiguration,
    clusters: &HashSet<&str>,
    check_clusters: bool,
    errs: &mut Errors,
) {
    let check = |name: &str, path: String, errs: &mut Errors| {
        if name.is_empty() {
            errs.push(path, "cluster name must not be empty");
        } else if check_clusters && !clusters.contains(name) {
            errs.push(path, format!("unknown cluster {name:?}"));
        }
    };
    match &r.route_match.path {
        PathMatch::PathSeparatedPrefix(s) if s.ends_with('/') || s.contains(['?', '#']) => errs
            .push(
                format!("{p}.match.path_separated_prefix"),
                format!("{s:?} must not end with '/' or contain '?' or '#'"),
            ),
        PathMatch::Prefix(s) | PathMatch::Path(s) if s.contains(['?', '#']) => errs.push(
            format!("{p}.match"),
            format!("path {s:?} must not contain '?' or '#'"),
        ),
        _ => {}
    }
    for (i, h) in r.route_match.headers.iter().enumerate() {
        if h.name.is_empty() {
            errs.push(
                format!("{p}.match.headers[{i}].name"),
                "header name must not be empty",
            );
        }
        if let HeaderMatchSpec::Range { start, end } = h.spec
            && start >= end
        {
            errs.push(
                format!("{p}.match.headers[{i}].range_match"),
                format!("start {start} must be below end {end}"),
            );
        }
    }
    match &r.action {
        Action::Route(a) => {
            match &a.cluster {
                ClusterSpecifier::Cluster(c) => check(c, format!("{p}.route.cluster"), errs),
                ClusterSpecifier::ClusterHeader(h) if h.is_empty() => errs.push(
                    format!("{p}.route.cluster_header"),
                    "header name must not be empty",
                ),
                ClusterSpecifier::ClusterHeader(_) => {}
                ClusterSpecifier::WeightedClusters(w) => {
                    let wp = format!("{p}.route.weighted_clusters");
                    if w.clusters.is_empty() {
                        errs.push(format!("{wp}.clusters"), "at least one cluster is required");
                    }
                    let mut total: u64 = 0;
                    for (i, cw) in w.clusters.iter().enumerate() {
                        total += u64::from(cw.weight);
                        if cw.cluster_header.is_none() {
                            check(&cw.name, format!("{wp}.clusters[{i}].name"), errs);
                        }
                    }
                    if !w.clusters.is_empty() && total == 0 {
                        errs.push(
                            format!("{wp}.clusters"),
                            "sum of weights must be greater than 0",
                        );
                    } else if total > u64::from(u32::MAX) {
                        errs.push(
                            format!("{wp}.clusters"),
                            format!("sum of weights {total} exceeds 4294967295"),
                        );
                    }
                }
            }
            for (i, m) in a.request_mirror_policies.iter().enumerate() {
                if m.cluster_header.is_none() {
                    check(
                        &m.cluster,
                        format!("{p}.route.request_mirror_policies[{i}].cluster"),
                        errs,
                    );
                }
            }
            let rewrites =
                usize::from(a.prefix_rewrite.is_some()) + usize::from(a.regex_rewrite.is_some());
            if rewrites > 1 {
                errs.push(
                    format!("{p}.route"),
                    "only one of prefix_rewrite and regex_rewrite may be set",
                );
            }
            if let Some(b) = a.retry_policy.as_ref().and_then(|rp| rp.retry_back_off) {
                if b.base_interval.is_zero() {
                    errs.push(
                        format!("{p}.route.retry_policy.retry_back_off.base_interval"),
                        "must be greater than 0",
                    );
                }
                if b.max_interval.is_some_and(|m| m < b.base_interval) {
                    errs.push(
                        format!("{p}.route.retry_policy.retry_back_off.max_interval"),
                        "must not be below base_interval",
                    );
                }
            }
        }
        Action::DirectResponse(d) => {
            if !(200..600).contains(&d.status) {
                errs.push(
                    format!("{p}.direct_response.status"),
                    format!("status {} is outside [200, 600)", d.status),
                );
            }
            let len = d.body.as_ref().map_or(0, String::len);
            let max = rc.max_direct_response_body_size_bytes.max(1) as usize;
            if len > max {
                errs.push(
                    format!("{p}.direct_response.body"),
                    format!(
                        "body of {len} bytes exceeds max_direct_response_body_size_bytes {max}"
                    ),
                );
            }
        }
        Action::Redirect(_) => {}
    }
}

fn cluster(c: &Cluster, p: &str, errs: &mut Errors) {
    if c.connect_timeout.is_zero() {
        errs.push(format!("{p}.connect_timeout"), "must be greater than 0");
    }
    // Envoy's rules: an ORIGINAL_DST cluster picks its host itself and has none configured.
    let original_dst = c.discovery_type == DiscoveryType::OriginalDst;
    if original_dst != (c.lb_policy == LbPolicy::ClusterProvided) {
        errs.push(
            format!("{p}.lb_policy"),
            if original_dst {
                "an ORIGINAL_DST cluster needs lb_policy CLUSTER_PROVIDED"
            } else {
                "CLUSTER_PROVIDED is only for ORIGINAL_DST clusters"
            },
        );
    }
    if original_dst {
        if c.load_assignment.is_some() {
            errs.push(
                format!("{p}.load_assignment"),
                "an ORIGINAL_DST cluster takes no endpoints: it connects where each connection was going",
            );
        }
        return;
    }
    // An EDS cluster holds the endpoints EDS delivered, once they arrived.
    if c.discovery_type == DiscoveryType::Eds && c.load_assignment.is_none() {
        return;
    }
    let Some(la) = &c.load_assignment else {
        errs.push(
            format!("{p}.load_assignment"),
            "static and DNS clusters need a load_assignment",
        );
        return;
    };
    for (i, loc) in la.endpoints.iter().enumerate() {
        let lp = format!("{p}.load_assignment.endpoints[{i}]");
        if loc.load_balancing_weight == Some(0) {
            errs.push(
                format!("{lp}.load_balancing_weight"),
                "must be greater than 0",
            );
        }
        for (k, e) in loc.lb_endpoints.iter().enumerate() {
            let ep = format!("{lp}.lb_endpoints[{k}]");
            let a = &e.address;
            let apath = format!("{ep}.endpoint.address");
            if a.port == 0 {
                errs.push(
                    format!("{apath}.socket_address.port_value"),
                    "port must not be 0",
                );
            }
            match c.discovery_type {
                DiscoveryType::Static if a.socket_addr().is_none() => errs.push(
                    format!("{apath}.socket_address.address"),
                    format!(
                        "{:?} is not an IP address (STATIC clusters need IP addresses; use STRICT_DNS for names)",
                        a.host
                    ),
                ),
                DiscoveryType::StrictDns if !valid_host(&a.host) => errs.push(
                    format!("{apath}.socket_address.address"),
                    format!("{:?} is not a valid host name", a.host),
                ),
                _ => {}
            }
            if e.load_balancing_weight == 0 {
                errs.push(
                    format!("{ep}.load_balancing_weight"),
                    "must be greater than 0",
                );
            }
        }
    }
    if let Some(od) = &c.outlier_detection {
        if od.max_ejection_time < od.base_ejection_time {
            errs.push(
                format!("{p}.outlier_detection.max_ejection_time"),
                "must not be below base_ejection_time",
            );
        }
        if od.max_ejection_percent > 100 {
            errs.push(
                format!("{p}.outlier_detection.max_ejection_percent"),
                "must be at most 100",
            );
        }
    }
    if !(0.0..=100.0).contains(&c.healthy_panic_threshold) {
        errs.push(
            format!("{p}.common_lb_config.healthy_panic_threshold"),
            "must be a percentage in [0, 100]",
        );
    }
    for (i, hc) in c.health_checks.iter().enumerate() {
        let hp = format!("{p}.health_checks[{i}]");
        if hc.interval.is_zero() {
            errs.push(format!("{hp}.interval"), "must be greater than 0");
        }
        if hc.timeout.is_zero() {
            errs.push(format!("{hp}.timeout"), "must be greater than 0");
        }
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && (h.parse::<std::net::IpAddr>().is_ok()
            || h.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }))
}
