//! Envoy's TLS transport socket (`envoy.transport_sockets.tls`): `DownstreamTlsContext` on
//! filter chains, `UpstreamTlsContext` on clusters.
//!
//! A TLS setting the proxy cannot honour is an error, never a warning: the config asks for
//! security, and serving without it would give less than was asked.

use mesh_core::config::{
    CommonTlsContext, DataSource, DownstreamTlsContext, SanMatcher, SanType, SdsSecretConfig,
    TlsCertificate, TlsParams, TlsVersion, UpstreamTlsContext, ValidationContext,
};
use serde_json::Value;

use super::{Cx, Obj, type_name};

const TLS_SOCKET: &str = "envoy.transport_sockets.tls";
const DOWNSTREAM: &str = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const UPSTREAM: &str = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const RAW_BUFFER: &str = "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";

/// A filter chain's `transport_socket`: `None` for plain text (absent, or `raw_buffer`).
pub(crate) fn downstream_socket(
    cx: &mut Cx,
    v: &Value,
    path: String,
) -> Option<DownstreamTlsContext> {
    let mut o = Obj::new(cx, v, path)?;
    let name = o.string(cx, "name").unwrap_or_default();
    let typed = o.value(cx, "typed_config");
    let ty = typed.as_ref().and_then(|(tv, _)| type_name(tv));
    let out = match (ty, typed) {
        (Some(RAW_BUFFER), _) => None,
        (Some(DOWNSTREAM), Some((tv, tp))) => downstream(cx, tv, tp),
        (None, None) if name == "envoy.transport_sockets.raw_buffer" => None,
        (None, _) if name == TLS_SOCKET => {
            cx.error(
                o.child("typed_config"),
                "a DownstreamTlsContext is required",
            );
            None
        }
        (other, _) => {
            cx.error(
                o.path().to_owned(),
                format!(
                    "transport socket {:?} is not supported (envoy.transport_sockets.tls with a DownstreamTlsContext is)",
                    other.unwrap_or(&name)
                ),
            );
            None
        }
    };
    o.finish(cx);
    out
}

/// A cluster's `transport_socket`: `None` for plain text.
pub(crate) fn upstream_socket(cx: &mut Cx, v: &Value, path: String) -> Option<UpstreamTlsContext> {
    let mut o = Obj::new(cx, v, path)?;
    let name = o.string(cx, "name").unwrap_or_default();
    let typed = o.value(cx, "typed_config");
    let ty = typed.as_ref().and_then(|(tv, _)| type_name(tv));
    let out = match (ty, typed) {
        (Some(RAW_BUFFER), _) => None,
        (Some(UPSTREAM), Some((tv, tp))) => upstream(cx, tv, tp),
        (None, None) if name == "envoy.transport_sockets.raw_buffer" => None,
        (None, _) if name == TLS_SOCKET => {
            cx.error(o.child("typed_config"), "an UpstreamTlsContext is required");
            None
        }
        (other, _) => {
            cx.error(
                o.path().to_owned(),
                format!(
                    "transport socket {:?} is not supported (envoy.transport_sockets.tls with an UpstreamTlsContext is)",
                    other.unwrap_or(&name)
                ),
            );
            None
        }
    };
    o.finish(cx);
    out
}

fn upstream(cx: &mut Cx, v: &Value, path: String) -> Option<UpstreamTlsContext> {
    let mut o = Obj::new(cx, v, path)?;
    o.ignore(cx, "@type");
    let mut u = UpstreamTlsContext {
        sni: o.string(cx, "sni").filter(|s| !s.is_empty()),
        ..UpstreamTlsContext::default()
    };
    if let Some((cv, cp)) = o.value(cx, "common_tls_context") {
        u.common_tls_context = common(cx, cv, cp)?;
    }
    // Renegotiation and the session cache size change nothing about whom is trusted.
    o.unsupported(
        cx,
        "allow_renegotiation",
        "ignored: TLS renegotiation is never allowed",
    );
    o.unsupported(
        cx,
        "max_session_keys",
        "ignored: rustls keeps its default number",
    );
    strict_finish(cx, o);
    Some(u)
}

fn downstream(cx: &mut Cx, v: &Value, path: String) -> Option<DownstreamTlsContext> {
    let mut o = Obj::new(cx, v, path)?;
    o.ignore(cx, "@type");
    let mut d = DownstreamTlsContext {
        require_client_certificate: o.bool(cx, "require_client_certificate").unwrap_or(false),
        ..DownstreamTlsContext::default()
    };
    match o.value(cx, "common_tls_context") {
        Some((cv, cp)) => d.common_tls_context = common(cx, cv, cp)?,
        None => cx.error(
            o.child("common_tls_context"),
            "common_tls_context is required",
        ),
    }
    if d.common_tls_context.tls_certificates.is_empty()
        && d.common_tls_context
            .tls_certificate_sds_secret_configs
            .is_empty()
    {
        cx.error(
            o.child("common_tls_context.tls_certificates"),
            "a server needs a certificate and its key",
        );
    }
    if d.require_client_certificate
        && d.common_tls_context
            .validation_context
            .as_ref()
            .is_none_or(|v| v.trusted_ca.is_none())
    {
        cx.error(
            o.child("common_tls_context.validation_context.trusted_ca"),
            "require_client_certificate needs a trusted CA to verify client certificates against",
        );
    }
    d.disable_stateless_session_resumption = o
        .bool(cx, "disable_stateless_session_resumption")
        .unwrap_or(false);
    d.disable_stateful_session_resumption = o
        .bool(cx, "disable_stateful_session_resumption")
        .unwrap_or(false);
    // How long a session may be resumed changes nothing about whom is trusted.
    o.unsupported(
        cx,
        "session_timeout",
        "ignored: sessions resume for rustls's default time",
    );
    strict_finish(cx, o);
    Some(d)
}

fn common(cx: &mut Cx, v: &Value, path: String) -> Option<CommonTlsContext> {
    let mut o = Obj::new(cx, v, path)?;
    let mut c = CommonTlsContext::default();
    for (cv, cp) in o.list(cx, "tls_certificates") {
        if let Some(cert) = certificate(cx, cv, cp) {
            c.tls_certificates.push(cert);
        }
    }
    for (sv, sp) in o.list(cx, "tls_certificate_sds_secret_configs") {
        if let Some(sds) = sds_config(cx, sv, sp) {
            c.tls_certificate_sds_secret_configs.push(sds);
        }
    }
    let sources = c.tls_certificates.len() + c.tls_certificate_sds_secret_configs.len();
    if sources > 1 {
        cx.error(
            o.path().to_owned(),
            "one certificate (tls_certificates or tls_certificate_sds_secret_configs) per context is supported",
        );
    }
    c.alpn_protocols = o.strings(cx, "alpn_protocols");
    if let Some((pv, pp)) = o.value(cx, "tls_params") {
        c.tls_params = params(cx, pv, pp);
    }
    if let Some((vv, vp)) = o.value(cx, "validation_context") {
        c.validation_context = validation(cx, vv, vp);
    }
    strict_finish(cx, o);
    Some(c)
}

pub(crate) fn certificate(cx: &mut Cx, v: &Value, path: String) -> Option<TlsCertificate> {
    let mut o = Obj::new(cx, v, path)?;
    let chain = o
        .required(cx, "certificate_chain")
        .and_then(|(v, p)| data_source(cx, v, p));
    let key = o
        .required(cx, "private_key")
        .and_then(|(v, p)| data_source(cx, v, p));
    strict_finish(cx, o);
    Some(TlsCertificate {
        certificate_chain: chain?,
        private_key: key?,
    })
}

/// An `SdsSecretConfig` whose `sds_config` is a file (`path_config_source`, or the older
/// `path`); SDS over a control plane is an error until it is built.
fn sds_config(cx: &mut Cx, v: &Value, path: String) -> Option<SdsSecretConfig> {
    let mut o = Obj::new(cx, v, path)?;
    let name = o.string(cx, "name").unwrap_or_default();
    let mut file = None;
    match o.obj(cx, "sds_config") {
        Some(mut s) => {
            if let Some(mut p) = s.obj(cx, "path_config_source") {
                file = p.string(cx, "path");
                p.ignore(cx, "watched_directory");
                strict_finish(cx, p);
            } else {
                file = s.string(cx, "path");
            }
            s.ignore(cx, "resource_api_version");
            let at = s.path().to_owned();
            strict_finish(cx, s);
            if file.is_none() {
                cx.error(
                    at,
                    "only SDS from a file (path_config_source) is supported; SDS from a control plane is not yet",
                );
            }
        }
        None => cx.error(o.child("sds_config"), "sds_config is required"),
    }
    strict_finish(cx, o);
    Some(SdsSecretConfig { name, path: file? })
}

/// A `DataSource`: `filename` or `inline_string` (`inline_bytes`, base64 in JSON, is read as
/// PEM text too).
pub(crate) fn data_source(cx: &mut Cx, v: &Value, path: String) -> Option<DataSource> {
    let mut o = Obj::new(cx, v, path)?;
    let file = o.string(cx, "filename");
    let inline = o.string(cx, "inline_string");
    let bytes = o.string(cx, "inline_bytes");
    let at = o.path().to_owned();
    strict_finish(cx, o);
    let bytes = match bytes {
        Some(b) => match super::base64_decode(&b) {
            Some(raw) => match String::from_utf8(raw) {
                Ok(s) => Some(s),
                Err(_) => {
                    cx.error(format!("{at}.inline_bytes"), "not PEM text");
                    return None;
                }
            },
            None => {
                cx.error(format!("{at}.inline_bytes"), "not base64");
                return None;
            }
        },
        None => None,
    };
    match (file, inline.or(bytes)) {
        (Some(f), None) if !f.is_empty() => Some(DataSource::Filename(f)),
        (None, Some(s)) => Some(DataSource::InlineString(s)),
        (Some(_), Some(_)) => {
            cx.error(at, "give one of filename, inline_string and inline_bytes");
            None
        }
        _ => {
            cx.error(at, "filename or inline_string is required");
            None
        }
    }
}

const VERSIONS: &[(&str, Option<TlsVersion>)] = &[
    ("TLS_AUTO", None),
    ("TLSv1_0", Some(TlsVersion::V1_2)),
    ("TLSv1_1", Some(TlsVersion::V1_2)),
    ("TLSv1_2", Some(TlsVersion::V1_2)),
    ("TLSv1_3", Some(TlsVersion::V1_3)),
];

fn params(cx: &mut Cx, v: &Value, path: String) -> TlsParams {
    let Some(mut o) = Obj::new(cx, v, path) else {
        return TlsParams::default();
    };
    let mut p = TlsParams::default();
    for (key, slot) in [
        (
            "tls_minimum_protocol_version",
            &mut p.minimum_protocol_version,
        ),
        (
            "tls_maximum_protocol_version",
            &mut p.maximum_protocol_version,
        ),
    ] {
        let raw = o.value_of(key).and_then(Value::as_str).map(str::to_owned);
        *slot = o.enumeration(cx, key, VERSIONS).flatten();
        if matches!(raw.as_deref(), Some("TLSv1_0" | "TLSv1_1")) {
            cx.warn(
                o.child(key),
                "TLS 1.0 and 1.1 are not offered (rustls speaks TLS 1.2 and 1.3): read as TLSv1_2",
            );
        }
    }
    if let (Some(min), Some(max)) = (p.minimum_protocol_version, p.maximum_protocol_version)
        && min > max
    {
        cx.error(
            o.child("tls_minimum_protocol_version"),
            "the minimum version is above the maximum",
        );
    }
    p.cipher_suites = o.strings(cx, "cipher_suites");
    strict_finish(cx, o);
    p
}

const SAN_TYPES: &[(&str, SanType)] = &[
    ("DNS", SanType::Dns),
    ("URI", SanType::Uri),
    ("EMAIL", SanType::Email),
    ("IP_ADDRESS", SanType::IpAddress),
];

fn validation(cx: &mut Cx, v: &Value, path: String) -> Option<ValidationContext> {
    let mut o = Obj::new(cx, v, path)?;
    let mut vc = ValidationContext {
        trusted_ca: o
            .value(cx, "trusted_ca")
            .and_then(|(v, p)| data_source(cx, v, p)),
        ..ValidationContext::default()
    };
    for (mv, mp) in o.list(cx, "match_typed_subject_alt_names") {
        let Some(mut m) = Obj::new(cx, mv, mp) else {
            continue;
        };
        let san_type = m.enumeration(cx, "san_type", SAN_TYPES);
        let matcher = m
            .required(cx, "matcher")
            .and_then(|(v, p)| super::route::string_matcher(cx, v, p));
        let at = m.path().to_owned();
        strict_finish(cx, m);
        match (san_type, matcher) {
            (Some(san_type), Some(matcher)) => vc
                .match_typed_subject_alt_names
                .push(SanMatcher { san_type, matcher }),
            (None, _) => cx.error(format!("{at}.san_type"), "san_type is required"),
            _ => {}
        }
    }
    strict_finish(cx, o);
    Some(vc)
}

/// Like [`Obj::finish`], but a field not read is an error: in a TLS context, a setting the
/// proxy does not understand may be one that restricts whom it trusts.
fn strict_finish(cx: &mut Cx, mut o: Obj<'_>) {
    for k in o.rest().keys() {
        cx.error(
            o.child(k),
            "not supported in a TLS context: the config asks for something the proxy cannot honour",
        );
    }
    let _ = o.take_all();
    o.finish(cx);
}
