//! Envoy's `Cluster`.

use mesh_core::config::{
    CircuitBreakers, Cluster, DiscoveryType, HealthCheck, HealthChecker, LbPolicy, LbSubsetConfig,
    LbSubsetFallbackPolicy, LbSubsetSelector, LbSubsetSelectorFallbackPolicy, OutlierDetection,
    RetryBudget, RoutingPriority, Thresholds, UpstreamProtocol,
};
use serde_json::Value;

use super::{Cx, Obj, Remap, UNKNOWN, endpoint, show, type_name};

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

pub(crate) const PRIORITIES: &[(&str, RoutingPriority)] = &[
    ("DEFAULT", RoutingPriority::Default),
    ("HIGH", RoutingPriority::High),
];

/// A `config.cluster.v3.Cluster`; `path` is `clusters[i]`.
pub(crate) fn cluster(cx: &mut Cx, v: &Value, path: String, remap: &mut Remap) -> Option<Cluster> {
    let mut o = Obj::new(cx, v, path)?;
    let mut c = Cluster {
        name: o.string(cx, "name").unwrap_or_default(),
        ..Cluster::default()
    };
    if let Some((tv, tp)) = o.value(cx, "type") {
        match tv.as_str() {
            Some("STATIC") => c.discovery_type = DiscoveryType::Static,
            Some("STRICT_DNS") => c.discovery_type = DiscoveryType::StrictDns,
            Some("LOGICAL_DNS") => {
                c.discovery_type = DiscoveryType::StrictDns;
                cx.warn(tp, "LOGICAL_DNS is treated as STRICT_DNS");
            }
            Some("EDS") => c.discovery_type = DiscoveryType::Eds,
            Some("ORIGINAL_DST") => c.discovery_type = DiscoveryType::OriginalDst,
            _ => cx.error(
                tp,
                format!(
                    "unsupported cluster type {}; expected STATIC, STRICT_DNS, LOGICAL_DNS, EDS or ORIGINAL_DST",
                    show(tv)
                ),
            ),
        }
    }
    o.reject(cx, "cluster_type", "custom cluster types are not supported");
    if let Some(d) = o.duration(cx, "connect_timeout") {
        c.connect_timeout = d;
    }
    if let Some((lv, lp)) = o.value(cx, "lb_policy") {
        c.lb_policy = match lv.as_str() {
            Some("ROUND_ROBIN") => LbPolicy::RoundRobin,
            Some("LEAST_REQUEST") => LbPolicy::LeastRequest,
            Some("RANDOM") => LbPolicy::Random,
            Some("RING_HASH") => LbPolicy::RingHash,
            Some("MAGLEV") => LbPolicy::Maglev,
            Some("CLUSTER_PROVIDED") => LbPolicy::ClusterProvided,
            _ => {
                cx.error(
                    lp,
                    format!(
                        "unsupported lb_policy {}; expected ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV or CLUSTER_PROVIDED",
                        show(lv)
                    ),
                );
                LbPolicy::RoundRobin
            }
        };
    }
    o.reject(
        cx,
        "load_balancing_policy",
        "load_balancing_policy is not supported; use lb_policy",
    );
    if let Some(mut b) = o.obj(cx, "upstream_bind_config") {
        if let Some(mut a) = b.obj(cx, "source_address") {
            let ap = a.child("address");
            match a
                .string(cx, "address")
                .map(|s| s.parse::<std::net::IpAddr>())
            {
                Some(Ok(ip)) => c.upstream_bind_config = Some(ip),
                Some(Err(_)) => cx.error(ap, "not an IP address"),
                None => cx.error(ap, "address is required"),
            }
            if a.u16(cx, "port_value").is_some_and(|p| p != 0) {
                cx.warn(
                    a.child("port_value"),
                    "ignored: upstream connections bind any free port",
                );
            }
            a.ignore(cx, "protocol");
            a.finish(cx);
        }
        b.finish(cx);
    }
    if let Some(mut d) = o.obj(cx, "original_dst_lb_config") {
        d.reject(
            cx,
            "use_http_header",
            "choosing the original destination by header is not supported",
        );
        d.reject(
            cx,
            "upstream_port_override",
            "upstream_port_override is not supported",
        );
        d.finish(cx);
    }

    let la = o.value(cx, "load_assignment");
    let hosts = o.value(cx, "hosts");
    match (la, hosts) {
        (Some((lv, lp)), None) => c.load_assignment = endpoint::load_assignment(cx, lv, lp),
        (None, Some((hv, hp))) => {
            let model = o.path().to_owned();
            c.load_assignment = Some(endpoint::hosts(cx, hv, &hp, &c.name, &model, remap));
        }
        (Some(_), Some((_, hp))) => cx.error(hp, "hosts and load_assignment are both set"),
        (None, None) => {}
    }
    if c.discovery_type == DiscoveryType::Eds && c.load_assignment.is_some() {
        cx.error(
            o.child("load_assignment"),
            "EDS clusters take their endpoints from EDS, not load_assignment",
        );
    }

    // Upstream protocol and connection settings.
    if let Some(mut h2) = o.obj(cx, "http2_protocol_options") {
        c.protocol = UpstreamProtocol::Http2;
        h2.take_all();
    }
    o.unsupported(
        cx,
        "http_protocol_options",
        "HTTP/1 protocol options are not supported yet, ignored",
    );
    if let Some(mut common) = o.obj(cx, "common_http_protocol_options") {
        common_http_options(cx, &mut common, &mut c);
        common.finish(cx);
    }
    if let Some(n) = o.u32(cx, "max_requests_per_connection") {
        c.max_requests_per_connection = Some(n);
    }
    if let Some(mut ext) = o.obj(cx, "typed_extension_protocol_options") {
        let entries = ext.take_all();
        let ext_path = ext.path().to_owned();
        for (k, v) in &entries {
            let p = super::join(&ext_path, k);
            if k == HTTP_PROTOCOL_OPTIONS || type_name(v) == Some(HTTP_PROTOCOL_OPTIONS) {
                http_protocol_options(cx, v, p, &mut c);
            } else {
                cx.warn(p, UNKNOWN);
            }
        }
    }

    if let Some(mut cb) = o.obj(cx, "circuit_breakers") {
        c.circuit_breakers = CircuitBreakers {
            thresholds: cb
                .list(cx, "thresholds")
                .into_iter()
                .filter_map(|(tv, tp)| thresholds(cx, tv, tp))
                .collect(),
        };
        cb.unsupported(
            cx,
            "per_host_thresholds",
            "per-host circuit breakers are not supported yet, ignored",
        );
        cb.finish(cx);
    }
    if let Some((ov, op)) = o.value(cx, "outlier_detection") {
        c.outlier_detection = outlier_detection(cx, ov, op);
    }
    for (hv, hp) in o.list(cx, "health_checks") {
        if let Some(hc) = health_check(cx, hv, hp) {
            c.health_checks.push(hc);
        }
    }
    if let Some(mut common) = o.obj(cx, "common_lb_config") {
        if let Some(t) = common.f64(cx, "healthy_panic_threshold") {
            c.healthy_panic_threshold = t;
        }
        if let Some(lw) = common.obj(cx, "locality_weighted_lb_config") {
            c.locality_weighted_lb = true;
            lw.finish(cx);
        }
        common.finish(cx);
    }
    if let Some(mut lr) = o.obj(cx, "least_request_lb_config") {
        if let Some(n) = lr.u32(cx, "choice_count") {
            c.least_request.choice_count = n;
        }
        if let Some(mut bias) = lr.obj(cx, "active_request_bias") {
            // A plain double: absent is zero, as protobuf reads it.
            c.least_request.active_request_bias = bias.f64(cx, "default_value").unwrap_or(0.0);
            bias.ignore(cx, "runtime_key");
            bias.finish(cx);
        }
        lr.finish(cx);
    }
    if let Some(mut rh) = o.obj(cx, "ring_hash_lb_config") {
        if let Some(n) = rh.u64(cx, "minimum_ring_size") {
            c.ring_hash.minimum_ring_size = n;
        }
        if let Some(n) = rh.u64(cx, "maximum_ring_size") {
            c.ring_hash.maximum_ring_size = n;
        }
        if let Some((hv, hp)) = rh.value(cx, "hash_function")
            && hv.as_str() != Some("XX_HASH")
        {
            cx.warn(hp, "only XX_HASH is supported; using XX_HASH");
        }
        rh.finish(cx);
    }
    if let Some(mut mg) = o.obj(cx, "maglev_lb_config") {
        if let Some(n) = mg.u64(cx, "table_size") {
            c.maglev_table_size = n;
        }
        mg.finish(cx);
    }
    if let Some((sv, sp)) = o.value(cx, "lb_subset_config") {
        c.lb_subset_config = lb_subset_config(cx, sv, sp);
    }
    if let Some(d) = o.duration(cx, "dns_refresh_rate") {
        c.dns_refresh_rate = d;
    }
    if let Some(mut eds) = o.obj(cx, "eds_cluster_config") {
        c.eds_service_name = eds.string(cx, "service_name");
        if let Some(cs) = eds.obj(cx, "eds_config") {
            super::bootstrap::config_source(cx, cs);
        }
        eds.finish(cx);
    }
    if let Some((tv, tp)) = o.value(cx, "transport_socket") {
        c.transport_socket = super::tls::upstream_socket(cx, tv, tp);
    }
    for (mv, mp) in o.list(cx, "transport_socket_matches") {
        let Some(mut m) = Obj::new(cx, mv, mp) else {
            continue;
        };
        let name = m.string(cx, "name").unwrap_or_default();
        let match_metadata = match m.value(cx, "match") {
            Some((Value::Object(map), _)) => map.clone(),
            Some((_, p)) => {
                cx.error(p, "match must be an object of metadata keys and values");
                serde_json::Map::new()
            }
            None => serde_json::Map::new(),
        };
        let transport_socket = match m.value(cx, "transport_socket") {
            Some((tv, tp)) => super::tls::upstream_socket(cx, tv, tp),
            None => None,
        };
        m.finish(cx);
        c.transport_socket_matches
            .push(mesh_core::config::TransportSocketMatch {
                name,
                match_metadata,
                transport_socket,
            });
    }
    o.finish(cx);
    Some(c)
}

const SUBSET_FALLBACKS: &[(&str, LbSubsetFallbackPolicy)] = &[
    ("NO_FALLBACK", LbSubsetFallbackPolicy::NoFallback),
    ("ANY_ENDPOINT", LbSubsetFallbackPolicy::AnyEndpoint),
    ("DEFAULT_SUBSET", LbSubsetFallbackPolicy::DefaultSubset),
];

const SELECTOR_FALLBACKS: &[(&str, LbSubsetSelectorFallbackPolicy)] = &[
    ("NOT_DEFINED", LbSubsetSelectorFallbackPolicy::NotDefined),
    ("NO_FALLBACK", LbSubsetSelectorFallbackPolicy::NoFallback),
    ("ANY_ENDPOINT", LbSubsetSelectorFallbackPolicy::AnyEndpoint),
    (
        "DEFAULT_SUBSET",
        LbSubsetSelectorFallbackPolicy::DefaultSubset,
    ),
    ("KEYS_SUBSET", LbSubsetSelectorFallbackPolicy::KeysSubset),
];

/// `config.cluster.v3.Cluster.LbSubsetConfig`.
fn lb_subset_config(cx: &mut Cx, v: &Value, path: String) -> Option<LbSubsetConfig> {
    let mut o = Obj::new(cx, v, path)?;
    let mut sc = LbSubsetConfig::default();
    if let Some(f) = o.enumeration(cx, "fallback_policy", SUBSET_FALLBACKS) {
        sc.fallback_policy = f;
    }
    if let Some((dv, dp)) = o.value(cx, "default_subset") {
        match dv {
            Value::Object(m) => sc.default_subset = m.clone().into_iter().collect(),
            other => cx.error(dp, format!("expected an object, got {}", show(other))),
        }
    }
    for (sv, sp) in o.list(cx, "subset_selectors") {
        let Some(mut so) = Obj::new(cx, sv, sp) else {
            continue;
        };
        let mut sel = LbSubsetSelector {
            keys: so.strings(cx, "keys"),
            ..LbSubsetSelector::default()
        };
        if let Some(f) = so.enumeration(cx, "fallback_policy", SELECTOR_FALLBACKS) {
            sel.fallback_policy = f;
        }
        sel.fallback_keys_subset = so.strings(cx, "fallback_keys_subset");
        // Envoy rejects a KEYS_SUBSET selector whose fallback keys are empty or not among its
        // keys.
        if sel.fallback_policy == LbSubsetSelectorFallbackPolicy::KeysSubset {
            if sel.fallback_keys_subset.is_empty() {
                cx.error(
                    so.child("fallback_keys_subset"),
                    "fallback_keys_subset is required with KEYS_SUBSET",
                );
            } else if let Some(k) = sel
                .fallback_keys_subset
                .iter()
                .find(|k| !sel.keys.contains(k))
            {
                cx.error(
                    so.child("fallback_keys_subset"),
                    format!("fallback_keys_subset key {k:?} is not among the selector's keys"),
                );
            }
        }
        so.unsupported(
            cx,
            "single_host_per_subset",
            "single_host_per_subset is not supported yet, ignored",
        );
        so.finish(cx);
        sc.subset_selectors.push(sel);
    }
    for key in [
        "locality_weight_aware",
        "scale_locality_weight",
        "panic_mode_any",
        "list_as_any",
        "metadata_fallback_policy",
    ] {
        o.unsupported(cx, key, "this subset option is not supported yet, ignored");
    }
    o.finish(cx);
    Some(sc)
}

fn common_http_options(cx: &mut Cx, o: &mut Obj<'_>, c: &mut Cluster) {
    if let Some(d) = o.duration(cx, "idle_timeout") {
        c.idle_timeout = d;
    }
    if let Some(n) = o.u32(cx, "max_requests_per_connection") {
        c.max_requests_per_connection = Some(n);
    }
    if let Some(d) = o.duration(cx, "max_connection_duration") {
        c.max_connection_duration = (!d.is_zero()).then_some(d);
    }
}

/// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`.
fn http_protocol_options(cx: &mut Cx, v: &Value, path: String, c: &mut Cluster) {
    let Some(mut o) = Obj::new(cx, v, path) else {
        return;
    };
    o.ignore(cx, "@type");
    if let Some(mut common) = o.obj(cx, "common_http_protocol_options") {
        common_http_options(cx, &mut common, c);
        common.finish(cx);
    }
    if let Some(mut explicit) = o.obj(cx, "explicit_http_config") {
        if let Some(mut h2) = explicit.obj(cx, "http2_protocol_options") {
            c.protocol = UpstreamProtocol::Http2;
            h2.take_all();
        }
        if let Some(mut h1) = explicit.obj(cx, "http_protocol_options") {
            c.protocol = UpstreamProtocol::Http1;
            h1.take_all();
        }
        explicit.reject(
            cx,
            "http3_protocol_options",
            "HTTP/3 upstreams are not supported",
        );
        explicit.finish(cx);
    }
    o.unsupported(
        cx,
        "use_downstream_protocol_config",
        "use_downstream_protocol_config is not supported yet; the upstream uses HTTP/1.1",
    );
    o.unsupported(
        cx,
        "auto_config",
        "auto_config is not supported yet; the upstream uses HTTP/1.1",
    );
    o.finish(cx);
}

fn thresholds(cx: &mut Cx, v: &Value, path: String) -> Option<Thresholds> {
    let mut o = Obj::new(cx, v, path)?;
    let mut t = Thresholds::default();
    if let Some(p) = o.enumeration(cx, "priority", PRIORITIES) {
        t.priority = p;
    }
    if let Some(n) = o.u32(cx, "max_connections") {
        t.max_connections = n;
    }
    if let Some(n) = o.u32(cx, "max_pending_requests") {
        t.max_pending_requests = n;
    }
    if let Some(n) = o.u32(cx, "max_requests") {
        t.max_requests = n;
    }
    if let Some(n) = o.u32(cx, "max_retries") {
        t.max_retries = n;
    }
    if let Some(mut rb) = o.obj(cx, "retry_budget") {
        let mut b = RetryBudget::default();
        if let Some(p) = rb.f64(cx, "budget_percent") {
            b.budget_percent = p;
        }
        if let Some(n) = rb.u32(cx, "min_retry_concurrency") {
            b.min_retry_concurrency = n;
        }
        rb.finish(cx);
        t.retry_budget = Some(b);
    }
    if let Some(b) = o.bool(cx, "track_remaining") {
        t.track_remaining = b;
    }
    o.finish(cx);
    Some(t)
}

fn outlier_detection(cx: &mut Cx, v: &Value, path: String) -> Option<OutlierDetection> {
    let mut o = Obj::new(cx, v, path)?;
    let mut od = OutlierDetection::default();
    let u32_fields: [(&str, &mut u32); 15] = [
        ("consecutive_5xx", &mut od.consecutive_5xx),
        (
            "consecutive_gateway_failure",
            &mut od.consecutive_gateway_failure,
        ),
        (
            "consecutive_local_origin_failure",
            &mut od.consecutive_local_origin_failure,
        ),
        ("max_ejection_percent", &mut od.max_ejection_percent),
        (
            "enforcing_consecutive_5xx",
            &mut od.enforcing_consecutive_5xx,
        ),
        (
            "enforcing_consecutive_gateway_failure",
            &mut od.enforcing_consecutive_gateway_failure,
        ),
        (
            "enforcing_consecutive_local_origin_failure",
            &mut od.enforcing_consecutive_local_origin_failure,
        ),
        ("enforcing_success_rate", &mut od.enforcing_success_rate),
        (
            "success_rate_minimum_hosts",
            &mut od.success_rate_minimum_hosts,
        ),
        (
            "success_rate_request_volume",
            &mut od.success_rate_request_volume,
        ),
        (
            "success_rate_stdev_factor",
            &mut od.success_rate_stdev_factor,
        ),
        (
            "failure_percentage_threshold",
            &mut od.failure_percentage_threshold,
        ),
        (
            "enforcing_failure_percentage",
            &mut od.enforcing_failure_percentage,
        ),
        (
            "failure_percentage_minimum_hosts",
            &mut od.failure_percentage_minimum_hosts,
        ),
        (
            "failure_percentage_request_volume",
            &mut od.failure_percentage_request_volume,
        ),
    ];
    for (key, slot) in u32_fields {
        if let Some(n) = o.u32(cx, key) {
            *slot = n;
        }
    }
    if let Some(d) = o.duration(cx, "interval") {
        od.interval = d;
    }
    if let Some(d) = o.duration(cx, "base_ejection_time") {
        od.base_ejection_time = d;
    }
    if let Some(d) = o.duration(cx, "max_ejection_time") {
        od.max_ejection_time = d;
    }
    if let Some(b) = o.bool(cx, "split_external_local_origin_errors") {
        od.split_external_local_origin_errors = b;
    }
    o.finish(cx);
    Some(od)
}

fn health_check(cx: &mut Cx, v: &Value, path: String) -> Option<HealthCheck> {
    let mut o = Obj::new(cx, v, path)?;
    let timeout = o.duration(cx, "timeout");
    let interval = o.duration(cx, "interval");
    let unhealthy = o.u32(cx, "unhealthy_threshold");
    let healthy = o.u32(cx, "healthy_threshold");
    let mut checker = None;
    if let Some(mut h) = o.obj(cx, "http_health_check") {
        let path = h.string(cx, "path");
        let host = h.string(cx, "host").filter(|s| !s.is_empty());
        let mut expected = Vec::new();
        for (rv, rp) in h.list(cx, "expected_statuses") {
            let Some(mut r) = Obj::new(cx, rv, rp) else {
                continue;
            };
            let start = r.i64(cx, "start").unwrap_or(0);
            let end = r.i64(cx, "end").unwrap_or(0);
            let rp = r.path().to_owned();
            r.finish(cx);
            match (u16::try_from(start), u16::try_from(end)) {
                (Ok(s), Ok(e)) if (100..=600).contains(&s) && s < e && e <= 600 => {
                    expected.push((s, e));
                }
                _ => cx.error(
                    rp,
                    format!(
                        "status range [{start}, {end}) must lie within [100, 600) and not be empty"
                    ),
                ),
            }
        }
        h.unsupported(cx, "codec_client_type", UNKNOWN);
        let hp = h.path().to_owned();
        h.finish(cx);
        match path {
            Some(path) if !path.is_empty() => {
                checker = Some(HealthChecker::Http {
                    path,
                    host,
                    expected_statuses: expected,
                });
            }
            _ => cx.error(super::join(&hp, "path"), "path is required"),
        }
    }
    if let Some(mut t) = o.obj(cx, "tcp_health_check") {
        t.unsupported(
            cx,
            "send",
            "TCP health check payloads are not supported yet; the check only connects",
        );
        t.unsupported(
            cx,
            "receive",
            "TCP health check payloads are not supported yet; the check only connects",
        );
        t.finish(cx);
        checker = Some(HealthChecker::Tcp);
    }
    o.reject(
        cx,
        "grpc_health_check",
        "gRPC health checks are not supported yet",
    );
    o.reject(
        cx,
        "custom_health_check",
        "custom health checks are not supported",
    );
    let p = o.path().to_owned();
    o.finish(cx);
    let mut missing =
        |field: &str| cx.error(super::join(&p, field), format!("{field} is required"));
    if timeout.is_none() {
        missing("timeout");
    }
    if interval.is_none() {
        missing("interval");
    }
    if unhealthy.is_none() {
        missing("unhealthy_threshold");
    }
    if healthy.is_none() {
        missing("healthy_threshold");
    }
    if checker.is_none() {
        cx.error(
            p,
            "one of http_health_check or tcp_health_check is required",
        );
    }
    Some(HealthCheck {
        timeout: timeout?,
        interval: interval?,
        unhealthy_threshold: unhealthy?,
        healthy_threshold: healthy?,
        checker: checker?,
    })
}
