//! `ServiceEntry` and `WorkloadEntry` (networking.istio.io): the service registry.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Meta, string_map};
use crate::envoy::{Cx, Obj};

/// A ServiceEntry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceEntry {
    /// Name, namespace, source.
    pub meta: Meta,
    /// `hosts`, as written.
    pub hosts: Vec<String>,
    /// `addresses` (parsed; virtual IPs are not supported).
    pub addresses: Vec<String>,
    /// `ports`.
    pub ports: Vec<ServicePort>,
    /// `location`.
    pub location: Location,
    /// `resolution`.
    pub resolution: Resolution,
    /// `endpoints`.
    pub endpoints: Vec<WorkloadSpec>,
    /// `workloadSelector.labels`: WorkloadEntries in the namespace that are endpoints.
    pub workload_selector: Option<BTreeMap<String, String>>,
}

/// A service port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServicePort {
    /// `number`.
    pub number: u16,
    /// `name`.
    pub name: String,
    /// `protocol`, upper-cased (empty when unset).
    pub protocol: String,
    /// `targetPort`.
    pub target_port: Option<u16>,
}

impl ServicePort {
    /// Whether the port carries HTTP: protocol HTTP, HTTP2, GRPC or GRPC-WEB, or no protocol and
    /// a name that is not a known TCP one (Istio would sniff; this proxy serves HTTP).
    pub fn is_http(&self) -> bool {
        let proto = if self.protocol.is_empty() {
            self.name
                .split('-')
                .next()
                .unwrap_or("")
                .to_ascii_uppercase()
        } else {
            self.protocol.clone()
        };
        !matches!(
            proto.as_str(),
            "TCP" | "TLS" | "HTTPS" | "MONGO" | "MYSQL" | "REDIS" | "UDP"
        )
    }

    /// Whether the upstream speaks HTTP/2 (HTTP2, GRPC).
    pub fn is_http2(&self) -> bool {
        matches!(self.protocol.as_str(), "HTTP2" | "GRPC" | "GRPC-WEB")
    }
}

/// `location`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Location {
    /// `MESH_EXTERNAL` (default).
    #[default]
    MeshExternal,
    /// `MESH_INTERNAL`.
    MeshInternal,
}

/// `resolution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolution {
    /// `NONE` (default): original destination, which the proxy cannot do.
    #[default]
    None,
    /// `STATIC`: the endpoints' IP addresses.
    Static,
    /// `DNS`: the endpoints' names (or the host) resolved.
    Dns,
    /// `DNS_ROUND_ROBIN`: treated as DNS.
    DnsRoundRobin,
}

/// A workload: a ServiceEntry endpoint or a WorkloadEntry's spec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkloadSpec {
    /// `address` (IP or DNS name).
    pub address: String,
    /// `ports`: service port name → the workload's port.
    pub ports: BTreeMap<String, u16>,
    /// `labels`.
    pub labels: BTreeMap<String, String>,
    /// `locality` (`region/zone/subzone`).
    pub locality: String,
    /// `weight` (0 ⇒ 1).
    pub weight: u32,
    /// `network`.
    pub network: String,
}

/// A WorkloadEntry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkloadEntry {
    /// Name, namespace, source (its labels are `meta.labels` merged into `spec.labels`).
    pub meta: Meta,
    /// The workload.
    pub spec: WorkloadSpec,
}

pub(crate) fn parse(cx: &mut Cx, s: &mut Obj<'_>, meta: Meta) -> ServiceEntry {
    let mut se = ServiceEntry {
        hosts: s.strings(cx, "hosts"),
        ..ServiceEntry::default()
    };
    if se.hosts.is_empty() {
        cx.error(s.child("hosts"), "at least one host is required");
    }
    se.addresses = s.strings(cx, "addresses");
    if !se.addresses.is_empty() {
        cx.warn(
            s.child("addresses"),
            "addresses (virtual IPs) are not supported: services are matched by Host only",
        );
    }
    for (v, p) in s.list(cx, "ports") {
        let Some(mut o) = Obj::new(cx, v, p) else {
            continue;
        };
        let mut port = ServicePort::default();
        match o.u16(cx, "number") {
            Some(n) if n > 0 => port.number = n,
            _ => cx.error(o.child("number"), "a port number is required"),
        }
        port.name = o.string(cx, "name").unwrap_or_default();
        port.protocol = o
            .string(cx, "protocol")
            .unwrap_or_default()
            .to_ascii_uppercase();
        port.target_port = o.u16(cx, "targetPort").filter(|p| *p > 0);
        o.finish(cx);
        if port.name.is_empty() {
            port.name = format!("port-{}", port.number);
        }
        se.ports.push(port);
    }
    if let Some(l) = s.enumeration(
        cx,
        "location",
        &[
            ("MESH_EXTERNAL", Location::MeshExternal),
            ("MESH_INTERNAL", Location::MeshInternal),
        ],
    ) {
        se.location = l;
    }
    if let Some(r) = s.enumeration(
        cx,
        "resolution",
        &[
            ("NONE", Resolution::None),
            ("STATIC", Resolution::Static),
            ("DNS", Resolution::Dns),
            ("DNS_ROUND_ROBIN", Resolution::DnsRoundRobin),
        ],
    ) {
        se.resolution = r;
    }
    for (v, p) in s.list(cx, "endpoints") {
        if let Some(w) = workload(cx, v, p) {
            se.endpoints.push(w);
        }
    }
    if let Some(mut ws) = s.obj(cx, "workloadSelector") {
        if let Some((v, p)) = ws.value(cx, "labels") {
            se.workload_selector = Some(string_map(cx, v, &p));
        }
        if !se.endpoints.is_empty() {
            cx.error(
                ws.path(),
                "only one of endpoints and workloadSelector may be set",
            );
        }
        ws.finish(cx);
    }
    s.unsupported(
        cx,
        "exportTo",
        "exportTo is not enforced: every resource is visible to every proxy",
    );
    s.unsupported(cx, "subjectAltNames", "TLS is not supported, ignored");
    se.meta = meta;
    se
}

/// `None` when the workload cannot be used (a warning says why).
pub(crate) fn parse_workload_entry(
    cx: &mut Cx,
    s: &mut Obj<'_>,
    meta: Meta,
) -> Option<WorkloadEntry> {
    let value = Value::Object(s.take_all());
    let mut spec = workload(cx, &value, s.path().to_owned())?;
    for (k, v) in &meta.labels {
        spec.labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Some(WorkloadEntry { meta, spec })
}

fn workload(cx: &mut Cx, v: &Value, path: String) -> Option<WorkloadSpec> {
    let mut o = Obj::new(cx, v, path)?;
    let mut w = WorkloadSpec {
        address: o.string(cx, "address").unwrap_or_default(),
        ..WorkloadSpec::default()
    };
    if let Some(mut ports) = o.obj(cx, "ports") {
        let base = ports.path().to_owned();
        for (k, v) in ports.take_all() {
            let p = crate::envoy::join(&base, &k);
            if let Some(n) = crate::envoy::as_u64(cx, &v, &p, u64::from(u16::MAX)) {
                if n == 0 {
                    cx.error(p, "port must not be 0");
                } else {
                    w.ports.insert(k, n as u16);
                }
            }
        }
    }
    if let Some((v, p)) = o.value(cx, "labels") {
        w.labels = string_map(cx, v, &p);
    }
    w.locality = o.string(cx, "locality").unwrap_or_default();
    w.weight = o.u32(cx, "weight").unwrap_or(0);
    w.network = o.string(cx, "network").unwrap_or_default();
    o.ignore(cx, "serviceAccount");
    if w.address.starts_with("unix://") {
        cx.warn(
            o.child("address"),
            "unix domain socket endpoints are not supported, endpoint ignored",
        );
        o.finish(cx);
        return None;
    }
    o.finish(cx);
    Some(w)
}
