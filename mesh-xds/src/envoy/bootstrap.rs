//! Envoy's `Bootstrap`: static resources and the admin server.

use mesh_core::config::{Admin, Bootstrap};
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
                    b.listeners.push(l);
                }
            }
        }
        if let Some((cv, _)) = sr.value(cx, "clusters") {
            for (i, (v, _)) in as_list(cx, cv, "clusters").into_iter().enumerate() {
                if let Some(c) = cluster::cluster(cx, v, at("clusters", i), remap) {
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
    o.unsupported(
        cx,
        "dynamic_resources",
        "xDS (dynamic_resources) is not supported yet, ignored",
    );
    o.finish(cx);
    b
}
