//! `Gateway` (networking.istio.io): servers on a gateway workload.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Meta, rules, string_map};
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
    /// `tls`: where a terminating server's certificate comes from, and whom it trusts.
    pub tls: ServerTlsSettings,
    /// `name`.
    pub name: String,
}

/// A Gateway server's `tls` certificates and client validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerTlsSettings {
    /// `serverCertificate` (a PEM file).
    pub server_certificate: Option<String>,
    /// `privateKey` (a PEM file).
    pub private_key: Option<String>,
    /// `caCertificates` (MUTUAL: the client CA bundle).
    pub ca_certificates: Option<String>,
    /// `credentialName`: a set of files in the credentials directory, or a Secret.
    pub credential_name: Option<String>,
    /// `subjectAltNames` a client certificate must carry one of (MUTUAL).
    pub subject_alt_names: Vec<String>,
    /// `minProtocolVersion`.
    pub min_protocol_version: Option<String>,
    /// `maxProtocolVersion`.
    pub max_protocol_version: Option<String>,
    /// `cipherSuites`.
    pub cipher_suites: Vec<String>,
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
    let servers = s.list(cx, "servers");
    if servers.is_empty() {
        cx.error(s.child("servers"), "gateway must have at least one server");
    }
    let mut port_names = std::collections::BTreeSet::new();
    for (v, p) in servers {
        if v.is_null() {
            cx.error(p, "server may not be nil");
            continue;
        }
        let Some(mut o) = Obj::new(cx, v, p) else {
            continue;
        };
        let mut srv = Server::default();
        let mut port_ok = false;
        if let Some(mut port) = o.obj(cx, "port") {
            port_ok = true;
            match port.u64(cx, "number") {
                Some(n) => match rules::port(n) {
                    Ok(()) => srv.port = n as u16,
                    Err(e) => {
                        port_ok = false;
                        cx.error(port.child("number"), e);
                    }
                },
                None => {
                    port_ok = false;
                    cx.error(port.child("number"), "a port number is required");
                }
            }
            srv.port_name = port.string(cx, "name").unwrap_or_default();
            if srv.port_name.is_empty() {
                port_ok = false;
                cx.error(port.child("name"), "port name must be set");
            } else if !port_names.insert(srv.port_name.clone()) {
                cx.error(
                    port.child("name"),
                    format!(
                        "port names in servers must be unique: duplicate name {}",
                        srv.port_name
                    ),
                );
            }
            let protocol = port.string(cx, "protocol").unwrap_or_default();
            if protocol.is_empty() || rules::protocol(&protocol).is_err() {
                port_ok = false;
                cx.error(
                    port.child("protocol"),
                    format!("invalid protocol {protocol:?}, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP"),
                );
            }
            srv.protocol = protocol.to_ascii_uppercase();
            if port.u64(cx, "targetPort").is_some_and(|t| t > 0) {
                cx.error(
                    port.child("targetPort"),
                    "targetPort has no impact on Gateways",
                );
            }
            port.finish(cx);
        } else {
            cx.error(o.child("port"), "port is required");
        }
        srv.hosts = o.strings(cx, "hosts");
        if srv.hosts.is_empty() {
            cx.error(
                o.child("hosts"),
                "server config must contain at least one host",
            );
        }
        for (i, h) in srv.hosts.iter().enumerate() {
            if let Err(e) = gateway_host(h) {
                cx.error(format!("{}[{i}]", o.child("hosts")), e);
            }
        }
        let has_tls = o.has("tls");
        if let Some(mut t) = o.obj(cx, "tls") {
            srv.https_redirect = t.bool(cx, "httpsRedirect").unwrap_or(false);
            srv.tls_mode = t.string(cx, "mode");
            server_tls_rules(cx, &t, srv.tls_mode.as_deref().unwrap_or("PASSTHROUGH"));
            let text = |t: &Obj<'_>, k: &str| {
                t.value_of(k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            let list = |t: &Obj<'_>, k: &str| -> Vec<String> {
                t.value_of(k)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            srv.tls = ServerTlsSettings {
                server_certificate: text(&t, "serverCertificate"),
                private_key: text(&t, "privateKey"),
                ca_certificates: text(&t, "caCertificates"),
                credential_name: text(&t, "credentialName"),
                subject_alt_names: list(&t, "subjectAltNames"),
                min_protocol_version: text(&t, "minProtocolVersion"),
                max_protocol_version: text(&t, "maxProtocolVersion"),
                cipher_suites: list(&t, "cipherSuites"),
            };
            // What would change whom the gateway trusts and is not read here is an error.
            for k in [
                "credentialNames",
                "tlsCertificates",
                "verifyCertificateSpki",
                "verifyCertificateHash",
                "caCrl",
            ] {
                if t.has(k) {
                    cx.error(
                        t.child(k),
                        format!("{k} is not supported; the server's TLS cannot be honoured"),
                    );
                }
            }
            t.take_all();
        }
        let tls_protocol = matches!(srv.protocol.as_str(), "HTTPS" | "TLS");
        let http_protocol = matches!(
            srv.protocol.as_str(),
            "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" | "HTTP_PROXY"
        );
        if port_ok && tls_protocol && !has_tls {
            cx.error(
                o.child("tls"),
                "server must have TLS settings for HTTPS/TLS protocols",
            );
        }
        if port_ok && !tls_protocol && has_tls {
            let certs = ["caCertificates", "privateKey", "serverCertificate"]
                .iter()
                .any(|k| {
                    v.pointer(&format!("/tls/{k}"))
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                });
            let passthrough = matches!(
                srv.tls_mode.as_deref(),
                None | Some("PASSTHROUGH" | "AUTO_PASSTHROUGH")
            );
            if http_protocol && (!passthrough || certs) {
                cx.error(
                    o.child("tls"),
                    "server cannot have TLS settings for plain text HTTP ports",
                );
            } else if !http_protocol {
                cx.error(
                    o.child("tls"),
                    "server cannot have TLS settings for non HTTPS/TLS ports",
                );
            }
        }
        if srv.https_redirect && !http_protocol {
            cx.warn(
                o.child("tls"),
                "tls.httpsRedirect should only be used with http servers",
            );
        }
        srv.name = o.string(cx, "name").unwrap_or_default();
        if let Some(bind) = o.value_of("bind").and_then(Value::as_str)
            && !bind.is_empty()
        {
            let e = match bind.strip_prefix("unix://") {
                Some(path) => rules::unix_address(path).err(),
                None => rules::ip(bind).err(),
            };
            if let Some(e) = e {
                cx.error(o.child("bind"), e);
            }
        }
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

/// A Gateway server host: `[namespace/]dnsName` (`ValidateNamespaceSlashWildcardHostname`).
fn gateway_host(h: &str) -> Result<(), String> {
    let name = match h.split_once('/') {
        Some((ns, name)) => {
            if ns.is_empty() || name.is_empty() {
                return Err("config namespace and dnsName in host entry cannot be empty".into());
            }
            if !matches!(ns, "*" | ".") && !rules::is_dns1123_label(ns) {
                return Err(format!("invalid namespace value {ns:?} in gateway"));
            }
            name
        }
        None => h,
    };
    if name != "*" && !name.contains('.') {
        return Err("short names (non FQDN) are not allowed".into());
    }
    if let Err(e) = rules::wildcard_domain(name)
        && rules::ip(name).is_err()
    {
        return Err(e);
    }
    if name.contains('*') && name != "*" && !name.starts_with("*.") {
        return Err(format!("partial wildcard {name:?} not allowed"));
    }
    Ok(())
}

/// Istio's server TLS rules (`validateTLSOptions`) that decide whether a server can be
/// configured at all.
fn server_tls_rules(cx: &mut Cx, t: &Obj<'_>, mode: &str) {
    let text = |k: &str| {
        t.value_of(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    let list = |k: &str| {
        t.value_of(k)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    };
    let path = t.path().to_owned();
    if mode == "ISTIO_MUTUAL" {
        for (k, what) in [
            ("serverCertificate", "server certificate"),
            ("privateKey", "private key"),
            ("caCertificates", "CA bundle"),
            ("credentialName", "credentialName"),
        ] {
            if text(k) {
                cx.error(
                    format!("{path}.{k}"),
                    format!("ISTIO_MUTUAL TLS cannot have associated {what}"),
                );
            }
        }
        return;
    }
    let sources = usize::from(text("serverCertificate") && text("privateKey"))
        + usize::from(text("credentialName"))
        + usize::from(list("credentialNames"))
        + usize::from(list("tlsCertificates"));
    if sources > 1 {
        cx.error(
            path.clone(),
            "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified",
        );
    }
    if !matches!(mode, "SIMPLE" | "MUTUAL" | "OPTIONAL_MUTUAL")
        || text("credentialName")
        || list("credentialNames")
    {
        return;
    }
    let prefix = if mode == "SIMPLE" {
        "SIMPLE TLS"
    } else {
        "MUTUAL TLS"
    };
    if mode != "SIMPLE" && !text("caCertificates") {
        cx.error(
            format!("{path}.caCertificates"),
            "MUTUAL TLS requires a client CA bundle",
        );
    }
    if !list("tlsCertificates") {
        if !text("serverCertificate") {
            cx.error(
                format!("{path}.serverCertificate"),
                format!("{prefix} requires a server certificate"),
            );
        }
        if !text("privateKey") {
            cx.error(
                format!("{path}.privateKey"),
                format!("{prefix} requires a private key"),
            );
        }
    }
    if mode == "SIMPLE" && text("caCrl") {
        cx.error(
            format!("{path}.caCrl"),
            "CRL is not supported with SIMPLE TLS",
        );
    }
}
