//! `ServiceEntry` and `WorkloadEntry` (networking.istio.io): the service registry.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Meta, rules, string_map};
use crate::envoy::{Cx, Obj};

/// A ServiceEntry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceEntry {
    /// Name, namespace, source.
    pub meta: Meta,
    /// `hosts`, as written.
    pub hosts: Vec<String>,
    /// `addresses`: virtual IPs (the captured sidecar's listeners for TCP ports, and domains of
    /// its routes).
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

    /// Whether Istio would sniff the port's protocol: no `protocol`, and a name that does not
    /// start with a known one (`http`, `http2`, `grpc`, `grpc-web`, `tcp`, `tls`, `https`,
    /// `mongo`, `mysql`, `redis`, `udp`, alone or before `-`). The captured sidecar inspects
    /// such a port's connections: HTTP goes to its routes, anything else to its TCP proxy.
    pub fn is_sniffed(&self) -> bool {
        if !self.protocol.is_empty() {
            return false;
        }
        let prefix = self
            .name
            .split('-')
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        !matches!(
            prefix.as_str(),
            "HTTP"
                | "HTTP2"
                | "HTTP_PROXY"
                | "GRPC"
                | "TCP"
                | "TLS"
                | "HTTPS"
                | "MONGO"
                | "MYSQL"
                | "REDIS"
                | "UDP"
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
        cx.error(
            s.child("hosts"),
            "service entry must have at least one host",
        );
    }
    for (i, h) in se.hosts.iter().enumerate() {
        let p = format!("{}[{i}]", s.child("hosts"));
        if h == "*" {
            cx.error(p, "invalid host *");
        } else if let Err(e) = rules::wildcard_domain(h) {
            cx.error(p, e);
        } else if h.contains('*') && !h.starts_with("*.") {
            cx.warn(p, format!("partial wildcard {h:?} not allowed"));
        }
    }
    se.addresses = s.strings(cx, "addresses");
    let mut port_names = std::collections::BTreeSet::new();
    let mut port_numbers = std::collections::BTreeSet::new();
    for (v, p) in s.list(cx, "ports") {
        if v.is_null() {
            cx.error(p, "service entry port may not be null");
            continue;
        }
        let Some(mut o) = Obj::new(cx, v, p) else {
            continue;
        };
        let mut port = ServicePort::default();
        match o.u64(cx, "number") {
            Some(n) => match rules::port(n) {
                Ok(()) => port.number = n as u16,
                Err(e) => cx.error(o.child("number"), e),
            },
            None => cx.error(o.child("number"), "a port number is required"),
        }
        let name = o.string(cx, "name").unwrap_or_default();
        if let Err(e) = rules::port_name(&name) {
            cx.error(o.child("name"), e);
        } else if !port_names.insert(name.clone()) {
            cx.error(
                o.child("name"),
                format!("service entry port name {name:?} already defined"),
            );
        }
        if port.number > 0 && !port_numbers.insert(port.number) {
            cx.error(
                o.child("number"),
                format!("service entry port {} already defined", port.number),
            );
        }
        port.name = name;
        let protocol = o.string(cx, "protocol").unwrap_or_default();
        if let Err(e) = rules::protocol(&protocol) {
            cx.error(o.child("protocol"), e);
        }
        port.protocol = protocol.to_ascii_uppercase();
        if let Some(t) = o.u64(cx, "targetPort").filter(|t| *t > 0) {
            match rules::port(t) {
                Ok(()) => port.target_port = Some(t as u16),
                Err(e) => cx.error(o.child("targetPort"), e),
            }
        }
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
    for (i, a) in se.addresses.iter().enumerate() {
        let p = format!("{}[{i}]", s.child("addresses"));
        if let Err(e) = rules::ip_or_cidr(a) {
            cx.error(p, e);
        } else if a.contains('/') && !matches!(se.resolution, Resolution::None | Resolution::Static)
        {
            cx.error(
                p,
                "CIDR addresses are allowed only for NONE/STATIC resolution types",
            );
        }
    }
    let endpoints = s.list(cx, "endpoints");
    for (i, (v, p)) in endpoints.iter().enumerate() {
        if v.is_null() {
            cx.error(p.clone(), "endpoint cannot be nil");
            continue;
        }
        let address = v.get("address").and_then(Value::as_str).unwrap_or("");
        match se.resolution {
            Resolution::None => {
                if i == 0 {
                    cx.error(
                        s.child("endpoints"),
                        "no endpoints should be provided for resolution type none",
                    );
                }
            }
            Resolution::Static => {
                if !address.is_empty()
                    && !address.starts_with("unix://")
                    && rules::ip(address).is_err()
                {
                    cx.error(
                        format!("{p}.address"),
                        format!("endpoint address {address:?} is not a valid IP address"),
                    );
                }
            }
            Resolution::Dns | Resolution::DnsRoundRobin => {
                if rules::ip(address).is_err() && rules::fqdn(address).is_err() {
                    cx.error(
                        format!("{p}.address"),
                        format!(
                            "endpoint address {address:?} is not a valid FQDN or an IP address"
                        ),
                    );
                }
            }
        }
        if let Some(ports) = v.get("ports").and_then(Value::as_object) {
            for (name, n) in ports {
                if !port_names.contains(name) {
                    cx.error(
                        format!("{p}.ports.{name}"),
                        format!("endpoint port {n} is not defined by the service entry"),
                    );
                }
            }
        }
        if let Some(w) = workload(cx, v, p.clone()) {
            se.endpoints.push(w);
        }
    }
    match se.resolution {
        Resolution::Dns | Resolution::DnsRoundRobin if endpoints.is_empty() => {
            if let Some(e) = se.hosts.iter().find_map(|h| rules::fqdn(h).err()) {
                cx.error(
                    s.child("hosts"),
                    format!("hosts must be FQDN or contain only prefix wildcards if no endpoints are provided for resolution mode {}, {e}", if se.resolution == Resolution::Dns { "DNS" } else { "DNS_ROUND_ROBIN" }),
                );
            }
        }
        Resolution::DnsRoundRobin if endpoints.len() > 1 => cx.error(
            s.child("endpoints"),
            "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN",
        ),
        _ => {}
    }
    if se.resolution != Resolution::None
        && se.hosts.len() > 1
        && se
            .ports
            .iter()
            .any(|p| !p.is_http() && !matches!(p.protocol.as_str(), "HTTPS" | "TLS"))
    {
        cx.error(
            s.child("ports"),
            "multiple hosts provided with non-HTTP, non-TLS ports",
        );
    }
    if let Some(mut ws) = s.obj(cx, "workloadSelector") {
        if let Some((v, p)) = ws.value(cx, "labels") {
            let labels = string_map(cx, v, &p);
            for e in rules::selector(&labels) {
                cx.error(p.clone(), e);
            }
            if labels.is_empty() {
                cx.warn(p, "service entry: workload selector specified without labels, will be applied to all services in namespace");
            }
            se.workload_selector = Some(labels);
        }
        if !endpoints.is_empty() {
            cx.error(
                ws.path(),
                "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
            );
        }
        ws.finish(cx);
    }
    rules::export_to(cx, s, true);
    s.unsupported(
        cx,
        "subjectAltNames",
        "ignored: give the names to check in the DestinationRule's tls.subjectAltNames",
    );
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
    let network = o.has("network");
    let address_path = o.child("address");
    if w.address.is_empty() {
        if network {
            cx.warn(address_path, "address is unset with network");
        } else {
            cx.error(address_path, "address is required");
        }
    } else if let Some(path) = w.address.strip_prefix("unix://") {
        if let Err(e) = rules::unix_address(path) {
            cx.error(address_path, e);
        }
        if o.has("ports") {
            cx.error(
                o.child("ports"),
                format!("unix endpoint {} must not include ports", w.address),
            );
        }
    } else if rules::ip(&w.address).is_err() && rules::fqdn(&w.address).is_err() {
        cx.error(
            address_path,
            format!(
                "endpoint address {:?} is not a valid FQDN or an IP address",
                w.address
            ),
        );
    }
    if let Some(mut ports) = o.obj(cx, "ports") {
        let base = ports.path().to_owned();
        for (k, v) in ports.take_all() {
            let p = crate::envoy::join(&base, &k);
            if let Err(e) = rules::port_name(&k) {
                cx.error(p.clone(), e);
            }
            if let Some(n) = crate::envoy::as_u64(cx, &v, &p, u64::MAX) {
                match rules::port(n) {
                    Ok(()) => {
                        w.ports.insert(k, n as u16);
                    }
                    Err(e) => cx.error(p, e),
                }
            }
        }
    }
    if let Some((v, p)) = o.value(cx, "labels") {
        w.labels = string_map(cx, v, &p);
        for e in rules::labels(&w.labels) {
            cx.error(p.clone(), e);
        }
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
