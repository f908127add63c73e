//! `PeerAuthentication` (security.istio.io): whether a workload's inbound traffic must be
//! mutual TLS.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Meta, string_map};
use crate::envoy::{Cx, Obj};

/// A PeerAuthentication.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerAuthentication {
    /// Name, namespace, source.
    pub meta: Meta,
    /// `selector.matchLabels`: the workloads it applies to (`None`: the whole namespace, or
    /// the mesh in the root namespace).
    pub selector: Option<BTreeMap<String, String>>,
    /// `mtls.mode`: `STRICT`, `PERMISSIVE`, `DISABLE` (`None`: unset, inherited).
    pub mode: Option<MtlsMode>,
    /// `portLevelMtls`: modes by workload port (workload-level policies only).
    pub port_level: BTreeMap<u16, MtlsMode>,
}

/// `mtls.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtlsMode {
    /// Only mutual TLS.
    Strict,
    /// Mutual TLS and plain text, chosen per connection.
    Permissive,
    /// Only plain text.
    Disable,
}

fn mode(cx: &mut Cx, v: &Value, path: &str) -> Option<MtlsMode> {
    let mut o = Obj::new(cx, v, path.to_owned())?;
    let m = match o.string(cx, "mode").as_deref() {
        None | Some("UNSET") => None,
        Some("STRICT") => Some(MtlsMode::Strict),
        Some("PERMISSIVE") => Some(MtlsMode::Permissive),
        Some("DISABLE") => Some(MtlsMode::Disable),
        Some(other) => {
            cx.error(
                format!("{path}.mode"),
                format!("unknown mTLS mode {other:?} (UNSET, DISABLE, PERMISSIVE, STRICT)"),
            );
            None
        }
    };
    o.finish(cx);
    m
}

pub(crate) fn parse(cx: &mut Cx, s: &mut Obj<'_>, meta: Meta) -> PeerAuthentication {
    let mut p = PeerAuthentication {
        meta,
        ..PeerAuthentication::default()
    };
    if let Some(mut sel) = s.obj(cx, "selector") {
        if let Some((v, path)) = sel.value(cx, "matchLabels") {
            p.selector = Some(string_map(cx, v, &path));
        }
        sel.finish(cx);
    }
    if let Some((v, path)) = s.value(cx, "mtls") {
        p.mode = mode(cx, v, &path);
    }
    if let Some((v, path)) = s.value(cx, "portLevelMtls") {
        if p.selector.as_ref().is_none_or(BTreeMap::is_empty) {
            cx.error(path.clone(), "portLevelMtls requires a workload selector");
        }
        if let Some(map) = v.as_object() {
            for (port, m) in map {
                let at = format!("{path}.{port}");
                match port.parse::<u16>() {
                    Ok(n) if n > 0 => {
                        if let Some(m) = mode(cx, m, &at) {
                            p.port_level.insert(n, m);
                        }
                    }
                    _ => cx.error(at, format!("port {port:?} must be in range 1..65535")),
                }
            }
        }
    }
    p
}

/// The mode for `port` of the workload with `labels` in `namespace`: workload-level
/// (port-level first), then namespace-level, then mesh-level (the root namespace), then
/// PERMISSIVE (Istio's default).
pub fn effective_mode(
    policies: &[PeerAuthentication],
    namespace: &str,
    labels: &BTreeMap<String, String>,
    root_namespace: &str,
    port: u16,
) -> MtlsMode {
    let selects = |p: &PeerAuthentication| {
        p.selector
            .as_ref()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
    };
    let workload = policies
        .iter()
        .filter(|p| p.meta.namespace == namespace && selects(p));
    for p in workload.clone() {
        if let Some(m) = p.port_level.get(&port) {
            return *m;
        }
    }
    let levels = [
        workload.filter_map(|p| p.mode).next(),
        policies
            .iter()
            .filter(|p| {
                p.meta.namespace == namespace && p.selector.as_ref().is_none_or(BTreeMap::is_empty)
            })
            .find_map(|p| p.mode),
        policies
            .iter()
            .filter(|p| {
                p.meta.namespace == root_namespace
                    && p.selector.as_ref().is_none_or(BTreeMap::is_empty)
            })
            .find_map(|p| p.mode),
    ];
    levels
        .into_iter()
        .flatten()
        .next()
        .unwrap_or(MtlsMode::Permissive)
}
