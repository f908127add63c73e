//! `Gateway` (networking.istio.io): servers on a gateway workload.

use std::collections::BTreeMap;

use super::{Meta, string_map};
use crate::envoy::{Cx, Obj};

/// A Gateway.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Gateway {
    /// Name, namespace, source.
    pub meta: Meta,
    /// `selector`: the gateway workloads it configures (empty selects all).
    pub selector: BTreeMap<String, String>,
    /// `servers`.
    pub servers: Vec<Server>,
}

/// A `servers[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Server {
    /// `port.number`.
    pub port: u16,
    /// `port.name`.
    pub port_name: String,
    /// `port.protocol`, upper-cased.
    pub protocol: String,
    /// `hosts` (`[ns/]host`).
    pub hosts: Vec<String>,
    /// `tls.httpsRedirect`.
    pub https_redirect: bool,
    /// `tls.mode` when a TLS block is present.
    pub tls_mode: Option<String>,
    /// `name`.
    pub name: String,
}

impl Server {
    /// Whether the server speaks plain HTTP (HTTP, HTTP2, GRPC).
    pub fn is_http(&self) -> bool {
        matches!(
            self.protocol.as_str(),
            "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB"
        )
    }
}

pub(crate) fn parse(cx: &mut Cx, s: &mut Obj<'_>, meta: Meta) -> Gateway {
    let mut g = Gateway::default();
    if let Some((v, p)) = s.value(cx, "selector") {
        g.selector = string_map(cx, v, &p);
    }
    for (v, p) in s.list(cx, "servers") {
        let Some(mut o) = Obj::new(cx, v, p) else {
            continue;
        };
        let mut srv = Server::default();
        if let Some(mut port) = o.obj(cx, "port") {
            match port.u16(cx, "number") {
                Some(n) if n > 0 => srv.port = n,
                _ => cx.error(port.child("number"), "a port number is required"),
            }
            srv.port_name = port.string(cx, "name").unwrap_or_default();
            srv.protocol = port
                .string(cx, "protocol")
                .unwrap_or_default()
                .to_ascii_uppercase();
            port.unsupported(cx, "targetPort", "targetPort is not supported, ignored");
            port.finish(cx);
        } else {
            cx.error(o.child("port"), "port is required");
        }
        srv.hosts = o.strings(cx, "hosts");
        if srv.hosts.is_empty() {
            cx.error(o.child("hosts"), "at least one host is required");
        }
        if let Some(mut t) = o.obj(cx, "tls") {
            srv.https_redirect = t.bool(cx, "httpsRedirect").unwrap_or(false);
            srv.tls_mode = t.string(cx, "mode");
            // Certificates are read but unused: TLS termination is not supported yet.
            t.take_all();
        }
        srv.name = o.string(cx, "name").unwrap_or_default();
        o.unsupported(
            cx,
            "bind",
            "binding a server to an address is not supported, ignored",
        );
        o.unsupported(
            cx,
            "defaultEndpoint",
            "defaultEndpoint is not supported, ignored",
        );
        o.finish(cx);
        g.servers.push(srv);
    }
    g.meta = meta;
    g
}
