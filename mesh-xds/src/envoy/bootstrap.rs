//! Envoy's `Bootstrap`: static resources and the admin server.

use std::time::Duration;

use mesh_core::config::{
    Admin, AdsApiType, AdsConfig, Bootstrap, DEFAULT_INITIAL_FETCH_TIMEOUT, DynamicResources,
    RuntimeLayer, RuntimeLayerKind,
};
use serde_json::Value;

use super::{Cx, Obj, Remap, as_list, at, cluster, join, listener};

/// A `config.bootstrap.v3.Bootstrap`.
pub(crate) fn bootstrap(cx: &mut Cx, v: &Value, remap: &mut Remap) -> Bootstrap {
    let mut b = Bootstrap::default();
    let Some(mut o) = Obj::new(cx, v, String::new()) else {
        return b;
    };
    if let Some(mut sr) = o.obj(cx, "static_resources") {
        // Paths below static_resources leave it out, as the validator's do.
        if let Some((lv, _)) = sr.value(cx, "listeners") {
            for (i, (v, _)) in as_list(cx, lv, "listeners").into_iter().enumerate() {
                if let Some(l) = listener::listener(cx, v, at("listeners", i), remap) {
                    remap.add(at("listeners", b.listeners.len()), at("listeners", i));
                    b.listeners.push(l);
                }
            }
        }
        if let Some((cv, _)) = sr.value(cx, "clusters") {
            for (i, (v, _)) in as_list(cx, cv, "clusters").into_iter().enumerate() {
                if let Some(c) = cluster::cluster(cx, v, at("clusters", i), remap) {
                    remap.add(at("clusters", b.clusters.len()), at("clusters", i));
                    b.clusters.push(c);
                }
            }
        }
        sr.unsupported(cx, "secrets", "TLS secrets are not supported yet, ignored");
        sr.finish(cx);
    }
    if let Some(mut admin) = o.obj(cx, "admin") {
        match admin.value(cx, "address") {
            Some((av, ap)) => {
                if let Some(address) = listener::ip_address(cx, av, ap) {
                    b.admin = Some(Admin { address });
                }
            }
            None => cx.warn(
                admin.path(),
                "admin without an address: the admin server stays off",
            ),
        }
        admin.finish(cx);
    }
    if let Some(om) = o.obj(cx, "overload_manager") {
        overload_manager(cx, om, &mut b);
    }
    if let Some(mut lr) = o.obj(cx, "layered_runtime") {
        for (lv, lp) in lr.list(cx, "layers") {
            let Some(mut l) = Obj::new(cx, lv, lp) else {
                continue;
            };
            let name = l.string(cx, "name").unwrap_or_default();
            let kind = if let Some((v, p)) = l.value(cx, "static_layer") {
                if v.is_object() {
                    Some(RuntimeLayerKind::Static(v.clone()))
                } else {
                    cx.error(p, "a static layer is a map of keys to values");
                    None
                }
            } else if let Some(a) = l.obj(cx, "admin_layer") {
                a.finish(cx);
                Some(RuntimeLayerKind::Admin)
            } else {
                for key in ["disk_layer", "rtds_layer"] {
                    l.unsupported(
                        cx,
                        key,
                        "only static and admin runtime layers are supported; layer ignored",
                    );
                }
                None
            };
            l.finish(cx);
            if let Some(kind) = kind {
                b.layered_runtime.layers.push(RuntimeLayer { name, kind });
            }
        }
        lr.finish(cx);
    }
    if let Some(mut n) = o.obj(cx, "node") {
        b.node.id = n.string(cx, "id").unwrap_or_default();
        b.node.cluster = n.string(cx, "cluster").unwrap_or_default();
        if let Some((mv, mp)) = n.value(cx, "metadata") {
            match mv {
                Value::Object(m) => b.node.metadata = m.clone(),
                _ => cx.error(mp, "metadata is a map (a protobuf Struct)"),
            }
        }
        if let Some(mut l) = n.obj(cx, "locality") {
            b.node.locality.region = l.string(cx, "region").unwrap_or_default();
            b.node.locality.zone = l.string(cx, "zone").unwrap_or_default();
            b.node.locality.sub_zone = l.string(cx, "sub_zone").unwrap_or_default();
            l.finish(cx);
        }
        // Identity details no control plane here reads.
        for key in [
            "user_agent_name",
            "user_agent_version",
            "user_agent_build_version",
        ] {
            n.ignore(cx, key);
        }
        n.finish(cx);
    }
    if let Some(d) = o.obj(cx, "dynamic_resources") {
        b.dynamic_resources = dynamic_resources(cx, d);
    }
    if b.dynamic_resources.is_none() {
        for (i, c) in b.clusters.iter().enumerate() {
            if c.discovery_type == mesh_core::config::DiscoveryType::Eds {
                cx.warn(
                    format!("{}.type", remap.apply(&at("clusters", i))),
                    "EDS needs an ADS source (dynamic_resources): the cluster has no endpoints",
                );
            }
        }
    }
    o.finish(cx);
    b
}

/// `dynamic_resources`: listeners and clusters over one ADS stream.
fn dynamic_resources(cx: &mut Cx, mut d: Obj<'_>) -> Option<DynamicResources> {
    let mut ads = None;
    if let Some(mut a) = d.obj(cx, "ads_config") {
        let api_type = a
            .enumeration(
                cx,
                "api_type",
                &[
                    ("GRPC", AdsApiType::Grpc),
                    ("DELTA_GRPC", AdsApiType::DeltaGrpc),
                    ("AGGREGATED_GRPC", AdsApiType::Grpc),
                    ("AGGREGATED_DELTA_GRPC", AdsApiType::DeltaGrpc),
                ],
            )
            .unwrap_or_default();
        version_v3(cx, &mut a, "transport_api_version");
        let mut cluster_name = None;
        let services = a.list(cx, "grpc_services");
        if services.is_empty() {
            cx.error(a.child("grpc_services"), "one gRPC service is required");
        }
        for (i, (sv, sp)) in services.into_iter().enumerate() {
            let Some(mut s) = Obj::new(cx, sv, sp) else {
                continue;
            };
            if i > 0 {
                cx.warn(s.path(), "only the first gRPC service is used, as in Envoy");
                s.take_all();
            }
            if let Some(mut g) = s.obj(cx, "envoy_grpc") {
                if i == 0 {
                    cluster_name = g.string(cx, "cluster_name");
                }
                g.ignore(cx, "authority");
                g.finish(cx);
            } else if i == 0 {
                s.reject(
                    cx,
                    "google_grpc",
                    "only envoy_grpc is supported: name a static cluster",
                );
                if !s.has("google_grpc") {
                    cx.error(s.child("envoy_grpc"), "envoy_grpc is required");
                }
            }
            s.ignore(cx, "timeout");
            s.finish(cx);
        }
        let set_node_on_first_message_only = a
            .bool(cx, "set_node_on_first_message_only")
            .unwrap_or(false);
        a.reject(
            cx,
            "rate_limit_settings",
            "xDS rate limiting is not supported",
        );
        a.finish(cx);
        ads = Some(AdsConfig {
            api_type,
            cluster_name: cluster_name.unwrap_or_default(),
            set_node_on_first_message_only,
        });
    }
    let mut timeout = None;
    let mut source = |cx: &mut Cx, d: &mut Obj<'_>, key: &str| -> bool {
        let Some(o) = d.obj(cx, key) else {
            return false;
        };
        if let Some(t) = config_source(cx, o) {
            timeout = Some(t);
        }
        true
    };
    let lds = source(cx, &mut d, "lds_config");
    let cds = source(cx, &mut d, "cds_config");
    d.reject(
        cx,
        "lds_resources_locator",
        "xDS-TP resource locators are not supported",
    );
    d.reject(
        cx,
        "cds_resources_locator",
        "xDS-TP resource locators are not supported",
    );
    let path = d.path().to_owned();
    d.finish(cx);
    match ads {
        Some(ads) => Some(DynamicResources {
            ads,
            lds,
            cds,
            initial_fetch_timeout: timeout.unwrap_or(DEFAULT_INITIAL_FETCH_TIMEOUT),
        }),
        None => {
            if lds || cds {
                cx.error(
                    join(&path, "ads_config"),
                    "ads_config is required: config sources other than ADS are not supported",
                );
            }
            None
        }
    }
}

/// A `config.core.v3.ConfigSource`: ADS only (`ads: {}`). Returns its `initial_fetch_timeout`.
pub(crate) fn config_source(cx: &mut Cx, mut o: Obj<'_>) -> Option<Duration> {
    if let Some(a) = o.obj(cx, "ads") {
        a.finish(cx);
    } else {
        for key in ["path", "path_config_source", "api_config_source", "self"] {
            o.reject(cx, key, "only ADS config sources (`ads: {}`) are supported");
        }
        if !["path", "path_config_source", "api_config_source", "self"]
            .iter()
            .any(|k| o.has(k))
        {
            cx.error(o.child("ads"), "ads is required (`ads: {}`)");
        }
    }
    version_v3(cx, &mut o, "resource_api_version");
    let timeout = o.duration(cx, "initial_fetch_timeout");
    o.finish(cx);
    timeout
}

/// An `api_version` enum field: only V3 (or AUTO, which means V3) exists.
fn version_v3(cx: &mut Cx, o: &mut Obj<'_>, key: &str) {
    if let Some((v, p)) = o.value(cx, key)
        && !matches!(v.as_str(), Some("V3" | "AUTO"))
        && v != &Value::from(2)
        && v != &Value::from(0)
    {
        cx.error(p, format!("only V3 is supported, not {}", super::show(v)));
    }
}

const GLOBAL_DOWNSTREAM_MAX_CONNECTIONS: &str =
    "envoy.resource_monitors.global_downstream_max_connections";
const DOWNSTREAM_CONNECTIONS_CONFIG: &str =
    "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig";

/// `overload_manager`: the global downstream connection limit is honoured; other resource
/// monitors and the overload actions are not implemented (a warning each).
fn overload_manager(cx: &mut Cx, mut o: Obj<'_>, b: &mut Bootstrap) {
    for (mv, mp) in o.list(cx, "resource_monitors") {
        let Some(mut m) = Obj::new(cx, mv, mp) else {
            continue;
        };
        let name = m.string(cx, "name").unwrap_or_default();
        let typed = m.value(cx, "typed_config");
        let is_connections = name == GLOBAL_DOWNSTREAM_MAX_CONNECTIONS
            || typed
                .as_ref()
                .is_some_and(|(tv, _)| super::type_name(tv) == Some(DOWNSTREAM_CONNECTIONS_CONFIG));
        if !is_connections {
            cx.warn(
                m.path(),
                format!("resource monitor {name:?} is not supported, ignored"),
            );
            m.take_all();
            m.finish(cx);
            continue;
        }
        match typed.and_then(|(tv, tp)| Obj::new(cx, tv, tp)) {
            Some(mut t) => {
                t.ignore(cx, "@type");
                match t.u64(cx, "max_active_downstream_connections") {
                    Some(n) if n > 0 => {
                        b.overload_manager.max_active_downstream_connections = Some(n);
                    }
                    _ => cx.error(
                        t.child("max_active_downstream_connections"),
                        "max_active_downstream_connections must be greater than 0",
                    ),
                }
                t.finish(cx);
            }
            None => cx.error(
                m.child("typed_config"),
                "typed_config with max_active_downstream_connections is required",
            ),
        }
        m.finish(cx);
    }
    o.unsupported(
        cx,
        "actions",
        "overload actions are not supported yet, ignored",
    );
    o.unsupported(
        cx,
        "refresh_interval",
        "overload actions are not supported yet, ignored",
    );
    o.finish(cx);
}
