//! Envoy's `Bootstrap`: static resources and the admin server.

use mesh_core::config::{Admin, Bootstrap, RuntimeLayer, RuntimeLayerKind};
use serde_json::Value;

use super::{Cx, Obj, Remap, as_list, at, cluster, listener};

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
    o.unsupported(
        cx,
        "dynamic_resources",
        "xDS (dynamic_resources) is not supported yet, ignored",
    );
    o.finish(cx);
    b
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
