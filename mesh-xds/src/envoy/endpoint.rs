//! Envoy's `Address` and `ClusterLoadAssignment`.

use mesh_core::config::{
    Address, ClusterLoadAssignment, HealthStatus, LbEndpoint, Locality, LocalityLbEndpoints,
    Metadata,
};
use serde_json::Value;

use super::{Cx, Obj, Remap, UNKNOWN, as_list, join};

/// A `config.core.v3.Address` holding a `socket_address`: host, port. A `pipe` or an
/// `envoy_internal_address` is an error naming its path.
pub(crate) fn socket_address(cx: &mut Cx, v: &Value, path: String) -> Option<Address> {
    let mut o = Obj::new(cx, v, path)?;
    o.reject(
        cx,
        "pipe",
        "Unix domain socket (pipe) addresses are not supported",
    );
    o.reject(
        cx,
        "envoy_internal_address",
        "internal listener addresses are not supported",
    );
    let sa = o.obj(cx, "socket_address");
    let path = o.path().to_owned();
    o.finish(cx);
    let Some(mut sa) = sa else {
        cx.error(join(&path, "socket_address"), "socket_address is required");
        return None;
    };
    let host = sa.string(cx, "address");
    let port = sa.u16(cx, "port_value");
    sa.reject(cx, "named_port", "named ports are not supported");
    sa.reject(cx, "resolver_name", "custom resolvers are not supported");
    if let Some((v, p)) = sa.value(cx, "protocol")
        && v.as_str() != Some("TCP")
    {
        cx.error(p, "only TCP is supported");
    }
    sa.ignore(cx, "ipv4_compat");
    let sp = sa.path().to_owned();
    sa.finish(cx);
    let Some(host) = host else {
        cx.error(join(&sp, "address"), "address is required");
        return None;
    };
    Some(Address {
        host: host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .map_or_else(|| host.clone(), str::to_owned),
        port: port.unwrap_or(0),
    })
}

/// A `ClusterLoadAssignment`.
pub(crate) fn load_assignment(
    cx: &mut Cx,
    v: &Value,
    path: String,
) -> Option<ClusterLoadAssignment> {
    let mut o = Obj::new(cx, v, path)?;
    let mut la = ClusterLoadAssignment {
        cluster_name: o.string(cx, "cluster_name").unwrap_or_default(),
        endpoints: Vec::new(),
        overprovisioning_factor: 140,
    };
    for (lv, lp) in o.list(cx, "endpoints") {
        if let Some(l) = locality_lb_endpoints(cx, lv, lp) {
            la.endpoints.push(l);
        }
    }
    if let Some(mut policy) = o.obj(cx, "policy") {
        if let Some(f) = policy.u32(cx, "overprovisioning_factor") {
            la.overprovisioning_factor = f;
        }
        policy.finish(cx);
    }
    o.unsupported(cx, "named_endpoints", UNKNOWN);
    o.finish(cx);
    Some(la)
}

fn locality_lb_endpoints(cx: &mut Cx, v: &Value, path: String) -> Option<LocalityLbEndpoints> {
    let mut o = Obj::new(cx, v, path)?;
    let mut l = LocalityLbEndpoints::default();
    if let Some(mut loc) = o.obj(cx, "locality") {
        l.locality = Locality {
            region: loc.string(cx, "region").unwrap_or_default(),
            zone: loc.string(cx, "zone").unwrap_or_default(),
            sub_zone: loc.string(cx, "sub_zone").unwrap_or_default(),
        };
        loc.finish(cx);
    }
    for (ev, ep) in o.list(cx, "lb_endpoints") {
        if let Some(e) = lb_endpoint(cx, ev, ep) {
            l.lb_endpoints.push(e);
        }
    }
    l.load_balancing_weight = o.u32(cx, "load_balancing_weight");
    l.priority = o.u32(cx, "priority").unwrap_or(0);
    o.finish(cx);
    Some(l)
}

const HEALTH: &[(&str, HealthStatus)] = &[
    ("UNKNOWN", HealthStatus::Unknown),
    ("HEALTHY", HealthStatus::Healthy),
    ("UNHEALTHY", HealthStatus::Unhealthy),
    ("DRAINING", HealthStatus::Draining),
    ("TIMEOUT", HealthStatus::Timeout),
    ("DEGRADED", HealthStatus::Degraded),
];

fn lb_endpoint(cx: &mut Cx, v: &Value, path: String) -> Option<LbEndpoint> {
    let mut o = Obj::new(cx, v, path)?;
    o.reject(
        cx,
        "endpoint_name",
        "named endpoints (endpoint_name) are not supported",
    );
    let mut address = None;
    let mut hostname = None;
    match o.obj(cx, "endpoint") {
        Some(mut e) => {
            match e.value(cx, "address") {
                Some((av, ap)) => address = socket_address(cx, av, ap),
                None => cx.error(e.child("address"), "address is required"),
            }
            hostname = e.string(cx, "hostname").filter(|h| !h.is_empty());
            e.unsupported(
                cx,
                "health_check_config",
                "per-endpoint health check settings are not supported yet, ignored",
            );
            e.unsupported(cx, "additional_addresses", UNKNOWN);
            e.finish(cx);
        }
        None => cx.error(o.child("endpoint"), "endpoint is required"),
    }
    let health_status = o
        .enumeration(cx, "health_status", HEALTH)
        .unwrap_or_default();
    let load_balancing_weight = o.u32(cx, "load_balancing_weight").unwrap_or(1);
    let metadata = match o.value(cx, "metadata") {
        Some((mv, mp)) => metadata(cx, mv, mp),
        None => Metadata::default(),
    };
    o.finish(cx);
    Some(LbEndpoint {
        address: address?,
        health_status,
        load_balancing_weight,
        metadata,
        hostname,
    })
}

/// A `config.core.v3.Metadata`: `filter_metadata` is kept as written.
pub(crate) fn metadata(cx: &mut Cx, v: &Value, path: String) -> Metadata {
    let mut out = Metadata::default();
    let Some(mut o) = Obj::new(cx, v, path) else {
        return out;
    };
    if let Some(mut fm) = o.obj(cx, "filter_metadata") {
        for (k, v) in fm.take_all() {
            match v {
                Value::Object(m) => {
                    out.insert(k, m);
                }
                Value::Null => {
                    out.insert(k, serde_json::Map::new());
                }
                other => cx.error(
                    join(fm.path(), &k),
                    format!("expected an object, got {}", super::show(&other)),
                ),
            }
        }
        fm.finish(cx);
    }
    o.unsupported(
        cx,
        "typed_filter_metadata",
        "typed filter metadata is not supported yet, ignored",
    );
    o.finish(cx);
    out
}

/// The deprecated `Cluster.hosts` list: one locality at priority 0, each host of weight 1.
pub(crate) fn hosts(
    cx: &mut Cx,
    v: &Value,
    path: &str,
    cluster_name: &str,
    model_prefix: &str,
    remap: &mut Remap,
) -> ClusterLoadAssignment {
    let mut endpoints = Vec::new();
    for (k, (hv, hp)) in as_list(cx, v, path).into_iter().enumerate() {
        remap.add(
            format!(
                "{model_prefix}.load_assignment.endpoints[0].lb_endpoints[{k}].endpoint.address"
            ),
            hp.clone(),
        );
        if let Some(a) = socket_address(cx, hv, hp) {
            endpoints.push(LbEndpoint::new(a));
        }
    }
    ClusterLoadAssignment {
        cluster_name: cluster_name.to_owned(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: endpoints,
            ..LocalityLbEndpoints::default()
        }],
        overprovisioning_factor: 140,
    }
}
