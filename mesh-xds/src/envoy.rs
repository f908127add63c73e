//! Envoy v3 bootstrap and route-configuration files.
//!
//! [`parse_bootstrap`] reads an Envoy v3 bootstrap (YAML or JSON; JSON is read as JSON first and
//! as YAML when it is not strict JSON) and converts the supported subset into
//! [`mesh_core::config::Bootstrap`]. [`parse_route_configuration`] does the same for a bare
//! `RouteConfiguration` (the files of Envoy's `router_check_tool`). The [`dump`] module goes the
//! other way: it writes the model as Envoy v3 JSON, in the shape of Envoy's `/config_dump`, and
//! what it writes reads back through this reader into the same model.
//!
//! The reader follows Envoy's JSON mapping of the v3 protos:
//!
//! - field names in `snake_case` or `lowerCamelCase` (`port_value` or `portValue`); user data
//!   (metadata, typed filter configs, header names and values) is kept as written;
//! - durations as `"1.5s"` (or `{seconds, nanos}`), integers as numbers or strings, protobuf
//!   wrappers bare (`3`) or wrapped (`{value: 3}`), enums by name;
//! - `typed_config` as an `Any` with `@type`. The HTTP connection manager is the only network
//!   filter; other HTTP filters are kept by name for the proxy's filter registry, and a
//!   `TypedStruct` (`xds.type.v3` or `udpa.type.v1`) hands its `value` to the factory named
//!   by its `type_url`;
//! - the deprecated spellings Envoy still accepts (`exact_match` and friends in header
//!   matchers, `request_mirror_policy`, the cluster `hosts` list, `http2_protocol_options`).
//!
//! Anything the model has no room for is reported as a [`Warning`] with its path and otherwise
//! ignored, so a file written for Envoy loads with a list of what it does not do here;
//! [`Loaded::strict`] turns those warnings into errors. Problems (wrong types, values out of
//! range, unsupported settings that would change behaviour, and everything
//! [`Bootstrap::validate`] finds) fail the load with [`LoadError::Invalid`], every problem with
//! its path. Paths use the field names of Envoy's bootstrap, relative to the bootstrap without
//! the `static_resources.` prefix, as mesh-core's validator does:
//! `clusters[2].load_assignment.endpoints[0].lb_endpoints[1].endpoint.address`.
//!
//! # Examples
//!
//! ```
//! let yaml = r#"
//! static_resources:
//!   listeners:
//!   - name: http
//!     address: { socket_address: { address: 0.0.0.0, port_value: 8080 } }
//!     filter_chains:
//!     - filters:
//!       - name: envoy.filters.network.http_connection_manager
//!         typed_config:
//!           "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
//!           stat_prefix: ingress_http
//!           route_config:
//!             virtual_hosts:
//!             - name: all
//!               domains: ["*"]
//!               routes:
//!               - match: { prefix: / }
//!                 route: { cluster: web, timeout: 2s }
//!           http_filters:
//!           - name: envoy.filters.http.router
//!   clusters:
//!   - name: web
//!     connect_timeout: 0.25s
//!     load_assignment:
//!       cluster_name: web
//!       endpoints:
//!       - lb_endpoints:
//!         - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8081 } } }
//! node: { id: front }
//! stats_flush_interval: 5s
//! "#;
//! let loaded = mesh_xds::envoy::parse_bootstrap(yaml)?;
//! assert_eq!(loaded.value.clusters[0].name, "web");
//! assert_eq!(loaded.value.node.id, "front");
//! // Stats are not flushed to sinks here: a warning, with its path.
//! assert_eq!(loaded.warnings[0].path, "stats_flush_interval");
//! // With `--strict`, warnings are errors.
//! assert!(loaded.strict().is_err());
//! # Ok::<(), mesh_xds::LoadError>(())
//! ```

pub(crate) mod bootstrap;
pub(crate) mod cluster;
pub mod dump;
pub(crate) mod endpoint;
pub(crate) mod listener;
pub(crate) mod route;
mod schema;
pub(crate) mod tls;

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use mesh_core::config::{Bootstrap, Cluster, FieldError, RouteConfiguration};
use serde_json::{Map, Value};

pub use self::route::parse_header_matcher;
pub use crate::error::LoadError;

/// A loaded config and the warnings about what it holds that is not supported.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    /// The converted (and validated) config.
    pub value: T,
    /// Unknown or unsupported fields that were ignored, in document order.
    pub warnings: Vec<Warning>,
}

impl<T> Loaded<T> {
    /// The value, when there are no warnings (what `--strict` wants).
    ///
    /// # Errors
    /// [`LoadError::Invalid`] listing every warning as an error, when there is any.
    pub fn strict(self) -> Result<T, LoadError> {
        if self.warnings.is_empty() {
            Ok(self.value)
        } else {
            Err(LoadError::Invalid {
                errors: self
                    .warnings
                    .into_iter()
                    .map(|w| FieldError {
                        path: w.path,
                        message: w.message,
                    })
                    .collect(),
            })
        }
    }
}

/// Something in a file that was ignored: an unknown field or an unsupported setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where, e.g. `listeners[0].filter_chains[0].transport_socket`.
    pub path: String,
    /// What was ignored and why.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Reads and converts an Envoy v3 bootstrap file (YAML or JSON).
///
/// # Errors
/// [`LoadError::Io`] when the file cannot be read, otherwise as [`parse_bootstrap`].
pub fn load_bootstrap(path: impl AsRef<Path>) -> Result<Loaded<Bootstrap>, LoadError> {
    parse_bootstrap(&read(path.as_ref())?)
}

/// Converts the text of an Envoy v3 bootstrap (YAML or JSON) and validates the result.
///
/// # Errors
/// [`LoadError::Syntax`] when the text is neither YAML nor JSON; [`LoadError::Invalid`] with
/// every problem and its path when the document is not a valid bootstrap (including what
/// [`Bootstrap::validate`] reports).
pub fn parse_bootstrap(text: &str) -> Result<Loaded<Bootstrap>, LoadError> {
    let d = diagnose_bootstrap(text)?;
    if !d.errors.is_empty() {
        return Err(LoadError::Invalid { errors: d.errors });
    }
    Ok(Loaded {
        value: d.value,
        warnings: d.warnings,
    })
}

/// Everything [`parse_bootstrap`] finds in a bootstrap, in one pass: the model converted as
/// far as it goes, with every conversion and validation error and every warning. What is
/// wrong in one field does not hide what is wrong in another, so `mesh-proxy validate` can
/// report every problem of a file in one run, and check the partial model further (compile
/// it) with [`Diagnosis::file_path`] to name the file's fields.
#[derive(Debug)]
pub struct Diagnosis<T> {
    /// The config as converted; where `errors` is not empty, a partial one.
    pub value: T,
    /// Every error, each with its path in the file: conversion first, then validation
    /// (a validation error inside a field that failed conversion is left out).
    pub errors: Vec<FieldError>,
    /// Unknown or unsupported fields, in document order.
    pub warnings: Vec<Warning>,
    remap: Remap,
}

impl<T> Diagnosis<T> {
    /// The path in the file of a path in [`Diagnosis::value`] (they differ where the
    /// conversion skipped an element or a deprecated spelling was used).
    pub fn file_path(&self, model_path: &str) -> String {
        self.remap.apply(model_path)
    }

    /// Adds errors found by a later stage (paths in the model, as
    /// [`Diagnosis::file_path`] maps them), leaving out what is already reported and what
    /// lies inside a field that already has an error.
    pub fn add_errors(&mut self, errors: impl IntoIterator<Item = FieldError>) {
        for e in errors {
            let e = FieldError {
                path: self.file_path(&e.path),
                message: e.message,
            };
            let covered = self.errors.iter().any(|known| {
                *known == e
                    || e.path
                        .strip_prefix(known.path.as_str())
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            });
            if !covered {
                self.errors.push(e);
            }
        }
    }
}

/// Converts and validates a bootstrap, collecting every problem (see [`Diagnosis`]).
///
/// # Errors
/// [`LoadError::Syntax`] when the text is neither YAML nor JSON: nothing can be checked then.
pub fn diagnose_bootstrap(text: &str) -> Result<Diagnosis<Bootstrap>, LoadError> {
    let doc = parse_text(text)?;
    let mut cx = Cx::default();
    let mut remap = Remap::default();
    let value = bootstrap::bootstrap(&mut cx, &doc, &mut remap);
    strict_names(&mut cx, &doc, schema::BOOTSTRAP);
    let mut d = Diagnosis {
        value,
        errors: cx.errors,
        warnings: cx.warnings,
        remap,
    };
    if let Err(e) = d.value.validate() {
        d.add_errors(e.errors);
    }
    Ok(d)
}

/// Reads and converts a bare Envoy v3 `RouteConfiguration` file (YAML or JSON).
///
/// # Errors
/// [`LoadError::Io`] when the file cannot be read, otherwise as [`parse_route_configuration`].
pub fn load_route_configuration(
    path: impl AsRef<Path>,
) -> Result<Loaded<RouteConfiguration>, LoadError> {
    parse_route_configuration(&read(path.as_ref())?)
}

/// Converts the text of a bare Envoy v3 `RouteConfiguration` (`virtual_hosts:` at the top) and
/// validates it. Cluster names are not checked (there are no clusters to check them against);
/// `validate_clusters` is kept for whoever combines the table with clusters.
///
/// # Errors
/// [`LoadError::Syntax`] when the text is neither YAML nor JSON; [`LoadError::Invalid`] with
/// every problem and its path (relative to the route configuration: `virtual_hosts[0].routes[1]`).
pub fn parse_route_configuration(text: &str) -> Result<Loaded<RouteConfiguration>, LoadError> {
    let doc = parse_text(text)?;
    let mut cx = Cx::default();
    let value = route::route_configuration(&mut cx, &doc, "");
    strict_names(&mut cx, &doc, schema::ROUTE_CONFIGURATION);
    if !cx.errors.is_empty() {
        return Err(LoadError::Invalid { errors: cx.errors });
    }
    let mut check = Bootstrap::default();
    check.route_configs.push(RouteConfiguration {
        validate_clusters: Some(false),
        ..value.clone()
    });
    validate_alone(&check, "route_configs[0]", |p| p)?;
    Ok(Loaded {
        value,
        warnings: cx.warnings,
    })
}

/// Reads and converts a bare Envoy v3 `Cluster` file (YAML or JSON).
///
/// # Errors
/// [`LoadError::Io`] when the file cannot be read, otherwise as [`parse_cluster`].
pub fn load_cluster(path: impl AsRef<Path>) -> Result<Loaded<Cluster>, LoadError> {
    parse_cluster(&read(path.as_ref())?)
}

/// Converts the text of one Envoy v3 `Cluster` (`name:`, `type:`, `load_assignment:`… at the
/// top, as in a bootstrap's `static_resources.clusters`) and validates it, for a balancer
/// built alone with `mesh_lb::ClusterLb::new`.
///
/// ```
/// let loaded = mesh_xds::envoy::parse_cluster(r#"
/// name: web
/// type: STATIC
/// lb_policy: LEAST_REQUEST
/// load_assignment:
///   cluster_name: web
///   endpoints:
///   - lb_endpoints:
///     - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8081 } } }
/// "#)?;
/// assert_eq!(loaded.value.name, "web");
///
/// let err = mesh_xds::envoy::parse_cluster("name: web\nlb_polcy: RANDOM\n").unwrap_err();
/// assert!(err.to_string().contains("lb_polcy"), "{err}");
/// # Ok::<(), mesh_xds::LoadError>(())
/// ```
///
/// # Errors
/// [`LoadError::Syntax`] when the text is neither YAML nor JSON; [`LoadError::Invalid`] with
/// every problem and its path (relative to the cluster: `load_assignment.endpoints[0]`).
pub fn parse_cluster(text: &str) -> Result<Loaded<Cluster>, LoadError> {
    let doc = parse_text(text)?;
    let mut cx = Cx::default();
    let mut remap = Remap::default();
    let value = cluster::cluster(&mut cx, &doc, String::new(), &mut remap);
    strict_names(&mut cx, &doc, schema::CLUSTER);
    let value = match value {
        Some(v) if cx.errors.is_empty() => v,
        _ => {
            if cx.errors.is_empty() {
                cx.errors.push(FieldError {
                    path: String::new(),
                    message: "not a cluster".into(),
                });
            }
            return Err(LoadError::Invalid { errors: cx.errors });
        }
    };
    let mut check = Bootstrap::default();
    check.clusters.push(value.clone());
    validate_alone(&check, "clusters[0]", |p| remap.apply(&p))?;
    Ok(Loaded {
        value,
        warnings: cx.warnings,
    })
}

/// Validates one resource placed in an otherwise empty bootstrap at `root`, with the paths
/// of its errors made relative to the resource (and then passed through `path`).
fn validate_alone(
    check: &Bootstrap,
    root: &str,
    path: impl Fn(String) -> String,
) -> Result<(), LoadError> {
    check.validate().map_err(|e| LoadError::Invalid {
        errors: e
            .errors
            .into_iter()
            .map(|fe| FieldError {
                path: path(strip_root(&fe.path, root)),
                message: fe.message,
            })
            .collect(),
    })
}

/// The TLS certificate of the secret named `name` in the text of an SDS file (Envoy's
/// `path_config_source` form: `resources:` holding `Secret`s, each with `name` and
/// `tls_certificate`).
///
/// # Errors
/// [`LoadError::Syntax`] when the text is not YAML or JSON; [`LoadError::Invalid`] when no
/// secret has that name or the secret is not a TLS certificate, with the path at fault.
pub fn parse_sds_certificate(
    text: &str,
    name: &str,
) -> Result<mesh_core::config::TlsCertificate, LoadError> {
    let doc = parse_text(text)?;
    let mut cx = Cx::default();
    let mut found = None;
    if let Some(mut o) = Obj::new(&mut cx, &doc, String::new()) {
        o.ignore(&mut cx, "version_info");
        o.ignore(&mut cx, "type_url");
        for (rv, rp) in o.list(&mut cx, "resources") {
            if peek(rv, "name").and_then(Value::as_str) != Some(name) {
                continue;
            }
            let Some(mut r) = Obj::new(&mut cx, rv, rp) else {
                continue;
            };
            r.ignore(&mut cx, "@type");
            r.ignore(&mut cx, "name");
            match r.value(&mut cx, "tls_certificate") {
                Some((tv, tp)) => found = tls::certificate(&mut cx, tv, tp),
                None => cx.error(
                    r.child("tls_certificate"),
                    "the secret holds no tls_certificate",
                ),
            }
            r.finish(&mut cx);
        }
        o.finish(&mut cx);
    }
    match found {
        Some(c) if cx.errors.is_empty() => Ok(c),
        _ if !cx.errors.is_empty() => Err(LoadError::Invalid { errors: cx.errors }),
        _ => Err(LoadError::Invalid {
            errors: vec![FieldError {
                path: "resources".into(),
                message: format!("no secret named {name:?}"),
            }],
        }),
    }
}

/// Envoy refuses a field its schema does not have: each becomes an error (in place of the
/// "ignored" warning the reader gave it), and what is left among the warnings are fields Envoy
/// has that this proxy does not implement.
fn strict_names(cx: &mut Cx, doc: &Value, root: &str) {
    let unknown = schema::unknown_fields(doc, root);
    if unknown.is_empty() {
        return;
    }
    cx.warnings
        .retain(|w| !unknown.iter().any(|(p, _)| *p == w.path));
    let errors = unknown
        .into_iter()
        .map(|(path, message)| FieldError { path, message });
    // Ahead of the others: a misspelled field often explains the errors that follow.
    let rest = std::mem::take(&mut cx.errors);
    cx.errors = errors.chain(rest).collect();
}

fn strip_root(path: &str, root: &str) -> String {
    match path.strip_prefix(root) {
        Some("") => String::new(),
        Some(rest) => rest.strip_prefix('.').unwrap_or(rest).to_owned(),
        None => path.to_owned(),
    }
}

fn read(path: &Path) -> Result<String, LoadError> {
    read_config(path)
}

/// The largest config file read: a file larger than this is refused before it is read (a
/// config is kilobytes; this bounds what a reload can make the proxy hold).
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// Reads a config file as text, refusing one larger than [`MAX_CONFIG_BYTES`].
///
/// # Errors
/// [`LoadError::Io`] when the file cannot be read or is too large.
pub fn read_config(path: impl AsRef<Path>) -> Result<String, LoadError> {
    let path = path.as_ref();
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(&mut file, MAX_CONFIG_BYTES + 1),
        &mut text,
    )
    .map_err(io)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("larger than {} MiB", MAX_CONFIG_BYTES >> 20),
        )));
    }
    Ok(text)
}

/// Parses YAML or JSON into a JSON value. Text that looks like JSON is read as JSON first (the
/// YAML parser rejects some JSON, e.g. tab indentation); when that fails it is read as YAML,
/// which accepts near-JSON such as trailing commas.
fn parse_text(text: &str) -> Result<Value, LoadError> {
    let text = prepare_text(text)?;
    if text.trim_start().starts_with('{') {
        return match serde_json::from_str::<Value>(text) {
            Ok(v) => Ok(v),
            Err(json) => crate::yaml::document(text).map_err(|_| LoadError::from_json(&json)),
        };
    }
    crate::yaml::document(text).map_err(|e| LoadError::from_yaml(&e))
}

/// The text without a byte-order mark, or a syntax error when its `[`/`{` nesting is deeper
/// than [`MAX_FLOW_DEPTH`] (checked before any YAML parser sees it).
pub(crate) fn prepare_text(text: &str) -> Result<&str, LoadError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some((line, column)) = too_deep(text, MAX_FLOW_DEPTH) {
        return Err(LoadError::Syntax {
            message: format!("nesting deeper than {MAX_FLOW_DEPTH} levels"),
            line: Some(line),
            column: Some(column),
        });
    }
    Ok(text)
}

/// The deepest `[`/`{` nesting read. Both parsers stop at 128 levels anyway, but libyaml's time
/// grows with the square of the flow depth, so deeper input is refused before parsing.
const MAX_FLOW_DEPTH: usize = 512;

/// Where `[`/`{` nesting first exceeds `limit` (1-based line and column), skipping quoted
/// scalars and comments the way YAML does closely enough for this bound.
fn too_deep(text: &str, limit: usize) -> Option<(usize, usize)> {
    #[derive(PartialEq)]
    enum State {
        Plain,
        Double { escape: bool },
        Single,
        Comment,
    }
    let mut state = State::Plain;
    let mut depth = 0usize;
    let (mut line, mut column) = (1usize, 0usize);
    // Whether the previous byte can precede the start of a quoted scalar or a comment.
    let mut boundary = true;
    for b in text.bytes() {
        if b == b'\n' {
            line += 1;
            column = 0;
        } else {
            column += 1;
        }
        match state {
            State::Comment => {
                if b == b'\n' {
                    state = State::Plain;
                }
            }
            State::Double { escape: true } => state = State::Double { escape: false },
            State::Double { escape: false } => match b {
                b'\\' => state = State::Double { escape: true },
                b'"' => state = State::Plain,
                _ => {}
            },
            State::Single => {
                if b == b'\'' {
                    state = State::Plain;
                }
            }
            State::Plain => match b {
                b'"' if boundary => state = State::Double { escape: false },
                b'\'' if boundary => state = State::Single,
                b'#' if boundary => state = State::Comment,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > limit {
                        return Some((line, column));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        boundary = matches!(
            b,
            b' ' | b'\t' | b'\n' | b'\r' | b'[' | b'{' | b',' | b':' | b'-' | b'?'
        );
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The walker: reads fields from JSON values, tracking the path and which fields were used.
// ---------------------------------------------------------------------------------------------

/// The message of a warning about a field the reader did not read. In a bootstrap or a route
/// configuration it is one Envoy has and this proxy does not implement: a field Envoy's schema
/// does not have is an error there.
pub(crate) const UNKNOWN: &str = "unknown or unsupported field, ignored";

/// Collected warnings and errors.
#[derive(Debug, Default)]
pub(crate) struct Cx {
    pub(crate) warnings: Vec<Warning>,
    pub(crate) errors: Vec<FieldError>,
}

impl Cx {
    pub(crate) fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Warning {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Rewrites paths of the model (as the validator reports them) into paths of the file, where
/// the two differ (skipped filter chains, the deprecated `hosts` list).
#[derive(Debug, Default)]
pub(crate) struct Remap(Vec<(String, String)>);

impl Remap {
    pub(crate) fn add(&mut self, model: String, file: String) {
        if model != file {
            self.0.push((model, file));
        }
    }

    pub(crate) fn apply(&self, path: &str) -> String {
        for (model, file) in &self.0 {
            if let Some(rest) = path.strip_prefix(model.as_str())
                && (rest.is_empty() || rest.starts_with('.'))
            {
                return format!("{file}{rest}");
            }
        }
        path.to_owned()
    }
}

/// `parent.key` (or `key` at the root).
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(crate) fn at(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// The lowerCamelCase JSON name of a snake_case field, when it differs.
fn camel(key: &str) -> Option<String> {
    if !key.contains('_') {
        return None;
    }
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A field of a JSON object by its snake_case name or its lowerCamelCase JSON name, without
/// marking it used (for looking ahead).
pub(crate) fn peek<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    v.get(key)
        .or_else(|| camel(key).and_then(|c| v.get(c.as_str())))
        .filter(|v| !v.is_null())
}

/// The message type of an `Any` (`@type`), without the `type.googleapis.com/` prefix.
pub(crate) fn type_name(v: &Value) -> Option<&str> {
    let t = v.get("@type")?.as_str()?;
    Some(t.rsplit('/').next().unwrap_or(t))
}

/// A JSON object being read: which fields were used, so the rest can be reported.
#[derive(Debug)]
pub(crate) struct Obj<'a> {
    map: Option<&'a Map<String, Value>>,
    path: String,
    used: BTreeSet<&'a str>,
}

impl<'a> Obj<'a> {
    /// Reads `v` as an object (null reads as an empty object). Reports an error and returns
    /// `None` for anything else.
    pub(crate) fn new(cx: &mut Cx, v: &'a Value, path: String) -> Option<Self> {
        match v {
            Value::Object(m) => Some(Self {
                map: Some(m),
                path,
                used: BTreeSet::new(),
            }),
            Value::Null => Some(Self {
                map: None,
                path,
                used: BTreeSet::new(),
            }),
            other => {
                cx.error(path, format!("expected an object, got {}", kind(other)));
                None
            }
        }
    }

    /// The path of this object.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The path of a field.
    pub(crate) fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// A field's value, without marking it used (null reads as absent).
    pub(crate) fn value_of(&self, key: &str) -> Option<&'a Value> {
        let map = self.map?;
        map.get(key)
            .or_else(|| camel(key).and_then(|c| map.get(c.as_str())))
            .filter(|v| !v.is_null())
    }

    /// Whether a field is present and not null (does not mark it used).
    pub(crate) fn has(&self, key: &str) -> bool {
        let Some(map) = self.map else { return false };
        let present = |k: &str| map.get(k).is_some_and(|v| !v.is_null());
        present(key) || camel(key).is_some_and(|c| present(&c))
    }

    /// Marks a field as used and returns its value (`None` when absent or null).
    /// Like [`Obj::value`], but a missing key is an error `"<key> is required"` at its path.
    pub(crate) fn required(&mut self, cx: &mut Cx, key: &str) -> Option<(&'a Value, String)> {
        let found = self.value(cx, key);
        if found.is_none() {
            cx.error(self.child(key), format!("{key} is required"));
        }
        found
    }

    pub(crate) fn value(&mut self, cx: &mut Cx, key: &str) -> Option<(&'a Value, String)> {
        let map = self.map?;
        let snake = map.get_key_value(key);
        let camel = camel(key).and_then(|c| map.get_key_value(c.as_str()));
        let (k, v) = match (snake, camel) {
            (Some(s), Some(c)) => {
                cx.error(
                    self.child(key),
                    format!("given twice, as {key:?} and as {:?}", c.0),
                );
                self.used.insert(c.0.as_str());
                s
            }
            (Some(s), None) => s,
            (None, Some(c)) => c,
            (None, None) => return None,
        };
        self.used.insert(k.as_str());
        if v.is_null() {
            None
        } else {
            Some((v, self.child(key)))
        }
    }

    /// Accepts a field without reading it (deprecated fields with no effect).
    pub(crate) fn ignore(&mut self, cx: &mut Cx, key: &str) {
        let _ = self.value(cx, key);
    }

    /// Reports a present field as unsupported with a specific message.
    pub(crate) fn unsupported(&mut self, cx: &mut Cx, key: &str, message: &str) {
        if let Some((_, p)) = self.value(cx, key) {
            cx.warn(p, message);
        }
    }

    /// Rejects a present field with a specific message.
    pub(crate) fn reject(&mut self, cx: &mut Cx, key: &str, message: &str) {
        if let Some((_, p)) = self.value(cx, key) {
            cx.error(p, message);
        }
    }

    pub(crate) fn string(&mut self, cx: &mut Cx, key: &str) -> Option<String> {
        let (v, p) = self.value(cx, key)?;
        as_string(cx, v, &p)
    }

    pub(crate) fn bool(&mut self, cx: &mut Cx, key: &str) -> Option<bool> {
        let (v, p) = self.value(cx, key)?;
        as_bool(cx, v, &p)
    }

    pub(crate) fn u32(&mut self, cx: &mut Cx, key: &str) -> Option<u32> {
        let (v, p) = self.value(cx, key)?;
        as_u64(cx, v, &p, u64::from(u32::MAX)).and_then(|n| u32::try_from(n).ok())
    }

    pub(crate) fn u16(&mut self, cx: &mut Cx, key: &str) -> Option<u16> {
        let (v, p) = self.value(cx, key)?;
        as_u64(cx, v, &p, u64::from(u16::MAX)).and_then(|n| u16::try_from(n).ok())
    }

    pub(crate) fn u64(&mut self, cx: &mut Cx, key: &str) -> Option<u64> {
        let (v, p) = self.value(cx, key)?;
        as_u64(cx, v, &p, u64::MAX)
    }

    pub(crate) fn i64(&mut self, cx: &mut Cx, key: &str) -> Option<i64> {
        let (v, p) = self.value(cx, key)?;
        as_i64(cx, v, &p)
    }

    pub(crate) fn f64(&mut self, cx: &mut Cx, key: &str) -> Option<f64> {
        let (v, p) = self.value(cx, key)?;
        as_f64(cx, v, &p)
    }

    pub(crate) fn duration(&mut self, cx: &mut Cx, key: &str) -> Option<Duration> {
        let (v, p) = self.value(cx, key)?;
        as_duration(cx, v, &p)
    }

    pub(crate) fn obj(&mut self, cx: &mut Cx, key: &str) -> Option<Obj<'a>> {
        let (v, p) = self.value(cx, key)?;
        Obj::new(cx, v, p)
    }

    /// The elements of a list field with their paths (empty when absent; an error when not a
    /// list).
    pub(crate) fn list(&mut self, cx: &mut Cx, key: &str) -> Vec<(&'a Value, String)> {
        let Some((v, p)) = self.value(cx, key) else {
            return Vec::new();
        };
        as_list(cx, v, &p)
    }

    pub(crate) fn strings(&mut self, cx: &mut Cx, key: &str) -> Vec<String> {
        self.list(cx, key)
            .into_iter()
            .filter_map(|(v, p)| as_string(cx, v, &p))
            .collect()
    }

    /// An enum field by name, from a table of the supported names.
    pub(crate) fn enumeration<T: Copy>(
        &mut self,
        cx: &mut Cx,
        key: &str,
        table: &[(&str, T)],
    ) -> Option<T> {
        let (v, p) = self.value(cx, key)?;
        as_enum(cx, v, &p, table)
    }

    /// The fields not read so far, with their values.
    pub(crate) fn rest(&self) -> Map<String, Value> {
        let Some(map) = self.map else {
            return Map::new();
        };
        map.iter()
            .filter(|(k, _)| !self.used.contains(k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Every field of the object, marking all as used (for user data).
    pub(crate) fn take_all(&mut self) -> Map<String, Value> {
        let rest = self.rest();
        if let Some(map) = self.map {
            self.used.extend(map.keys().map(String::as_str));
        }
        rest
    }

    /// Reports every field that was not read as unknown.
    pub(crate) fn finish(self, cx: &mut Cx) {
        let Some(map) = self.map else { return };
        for k in map.keys() {
            if !self.used.contains(k.as_str()) {
                cx.warn(join(&self.path, k), UNKNOWN);
            }
        }
    }
}

pub(crate) fn as_string(cx: &mut Cx, v: &Value, path: &str) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        other => {
            cx.error(path, format!("expected a string, got {}", kind(other)));
            None
        }
    }
}

/// The inner value of a protobuf wrapper object (`{value: x}`); `None` for `{}` (the default).
fn wrapped<'v>(cx: &mut Cx, m: &'v Map<String, Value>, path: &str) -> Option<(&'v Value, String)> {
    for k in m.keys().filter(|k| k.as_str() != "value") {
        cx.warn(join(path, k), UNKNOWN);
    }
    m.get("value")
        .filter(|v| !v.is_null())
        .map(|v| (v, join(path, "value")))
}

pub(crate) fn as_bool(cx: &mut Cx, v: &Value, path: &str) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Object(m) => match wrapped(cx, m, path) {
            Some((inner, p)) => as_bool(cx, inner, &p),
            None => Some(false),
        },
        other => {
            cx.error(path, format!("expected a boolean, got {}", kind(other)));
            None
        }
    }
}

pub(crate) fn as_u64(cx: &mut Cx, v: &Value, path: &str, max: u64) -> Option<u64> {
    let n = match v {
        Value::Object(m) => {
            return match wrapped(cx, m, path) {
                Some((inner, p)) => as_u64(cx, inner, &p, max),
                None => Some(0),
            };
        }
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Some(u)
            } else if n.as_i64().is_some_and(|i| i < 0) {
                cx.error(path, format!("must not be negative, got {n}"));
                return None;
            } else {
                // A float: accept integral values (protobuf's JSON parser does).
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 18_446_744_073_709_551_616.0)
                    .map(|f| f as u64)
            }
        }
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n <= max => Some(n),
        Some(n) => {
            cx.error(path, format!("{n} is too large (at most {max})"));
            None
        }
        None => {
            cx.error(
                path,
                format!("expected a non-negative integer, got {}", show(v)),
            );
            None
        }
    }
}

pub(crate) fn as_i64(cx: &mut Cx, v: &Value, path: &str) -> Option<i64> {
    let n = match v {
        Value::Object(m) => {
            return match wrapped(cx, m, path) {
                Some((inner, p)) => as_i64(cx, inner, &p),
                None => Some(0),
            };
        }
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    if n.is_none() {
        cx.error(path, format!("expected an integer, got {}", show(v)));
    }
    n
}

pub(crate) fn as_f64(cx: &mut Cx, v: &Value, path: &str) -> Option<f64> {
    let n = match v {
        Value::Object(m) => {
            return match wrapped(cx, m, path) {
                Some((inner, p)) => as_f64(cx, inner, &p),
                None => Some(0.0),
            };
        }
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(f) if f.is_finite() => Some(f),
        _ => {
            cx.error(path, format!("expected a number, got {}", show(v)));
            None
        }
    }
}

/// The largest duration protobuf allows (10 000 years).
const MAX_SECONDS: u64 = 315_576_000_000;

pub(crate) fn as_duration(cx: &mut Cx, v: &Value, path: &str) -> Option<Duration> {
    match v {
        Value::String(s) => match exact_seconds(s) {
            Some(d) if d.as_secs() <= MAX_SECONDS => Some(d),
            // Other units, and the errors, as mesh-core reads them.
            _ => match mesh_core::config::duration::parse(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    cx.error(path, e.to_string());
                    None
                }
            },
        },
        Value::Object(_) => {
            let mut o = Obj::new(cx, v, path.to_owned())?;
            let secs = o.u64(cx, "seconds").unwrap_or(0);
            let nanos = o.u32(cx, "nanos").unwrap_or(0);
            o.finish(cx);
            if secs > MAX_SECONDS || nanos >= 1_000_000_000 {
                cx.error(path, "duration out of range");
                return None;
            }
            Some(Duration::new(secs, nanos))
        }
        other => {
            cx.error(
                path,
                format!("expected a duration such as \"1.5s\", got {}", kind(other)),
            );
            None
        }
    }
}

/// Envoy's `"<seconds>[.<up to 9 digits>]s"`, read exactly: through `f64` the nanoseconds of a
/// long duration would be rounded (`"31536000.123456789s"` read as `…787` ns) and protobuf's
/// largest duration (`"315576000000.999999999s"`) would round past the limit. `None` when the
/// text has another form.
fn exact_seconds(s: &str) -> Option<Duration> {
    let num = s.trim().strip_suffix('s')?;
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || frac.len() > 9 || !digits(int) || !digits(frac) {
        return None;
    }
    let secs = if int.is_empty() { 0 } else { int.parse().ok()? };
    let nanos = format!("{frac:0<9}").parse().ok()?;
    Some(Duration::new(secs, nanos))
}

pub(crate) fn as_list<'v>(cx: &mut Cx, v: &'v Value, path: &str) -> Vec<(&'v Value, String)> {
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (item, at(path, i)))
            .collect(),
        other => {
            cx.error(path, format!("expected a list, got {}", kind(other)));
            Vec::new()
        }
    }
}

pub(crate) fn as_enum<T: Copy>(
    cx: &mut Cx,
    v: &Value,
    path: &str,
    table: &[(&str, T)],
) -> Option<T> {
    if let Some(s) = v.as_str()
        && let Some((_, t)) = table.iter().find(|(name, _)| *name == s)
    {
        return Some(*t);
    }
    let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    cx.error(
        path,
        format!(
            "unsupported value {}; expected one of {}",
            show(v),
            names.join(", ")
        ),
    );
    None
}

/// A short rendering of a value for messages.
pub(crate) fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => kind(other).to_owned(),
    }
}

/// Decodes base64 (standard or URL-safe alphabet, padding optional), as protobuf's JSON mapping
/// writes `bytes` fields.
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover character carries fewer than 8 bits: not valid base64.
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_bound_skips_quotes_and_comments() {
        assert_eq!(too_deep("[[[", 2), Some((1, 3)));
        assert_eq!(too_deep("a: \"[[[\"\nb: '{{{'\n# [[[\n", 2), None);
        assert_eq!(too_deep("regex: ^/users/[^v]\\w+$", 2), None);
        assert_eq!(too_deep("a: \"\\\"[[[\"", 2), None);
        assert!(too_deep(&"[".repeat(513), 512).is_some());
    }

    #[test]
    fn durations_are_read_exactly() {
        let read = |s: &str| {
            let mut cx = Cx::default();
            let d = as_duration(&mut cx, &Value::String(s.into()), "d");
            (d, cx.errors.len())
        };
        assert_eq!(
            read("31536000.123456789s"),
            (Some(Duration::new(31_536_000, 123_456_789)), 0)
        );
        assert_eq!(
            read("315576000000.999999999s"),
            (Some(Duration::new(MAX_SECONDS, 999_999_999)), 0)
        );
        assert_eq!(read("0.5s"), (Some(Duration::from_millis(500)), 0));
        assert_eq!(read(".5s"), (Some(Duration::from_millis(500)), 0));
        assert_eq!(read("1.500s"), (Some(Duration::from_millis(1500)), 0));
        assert_eq!(read("250ms"), (Some(Duration::from_millis(250)), 0));
        assert_eq!(read("2m"), (Some(Duration::from_secs(120)), 0));
        assert_eq!(read("315576000001s"), (None, 1));
        assert_eq!(read("99999999999999999999s"), (None, 1));
        assert_eq!(read("s"), (None, 1));
        assert_eq!(read("-1s"), (None, 1));
        assert_eq!(read("1.0000000001s"), (Some(Duration::from_secs(1)), 0));
    }

    #[test]
    fn camel_names() {
        assert_eq!(camel("port_value").as_deref(), Some("portValue"));
        assert_eq!(camel("consecutive_5xx").as_deref(), Some("consecutive5xx"));
        assert_eq!(camel("name"), None);
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(
            base64_decode("-_-_").unwrap(),
            base64_decode("+/+/").unwrap()
        );
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("a*==").is_none());
    }

    #[test]
    fn remap_respects_boundaries() {
        let mut r = Remap::default();
        r.add(
            "listeners[0].filter_chains[1]".into(),
            "listeners[0].filter_chains[2]".into(),
        );
        assert_eq!(
            r.apply("listeners[0].filter_chains[1].filters[0]"),
            "listeners[0].filter_chains[2].filters[0]"
        );
        assert_eq!(
            r.apply("listeners[0].filter_chains[10]"),
            "listeners[0].filter_chains[10]"
        );
    }

    #[test]
    fn numbers_accept_wrappers_and_strings() {
        let mut cx = Cx::default();
        let v: Value =
            serde_json::json!({"a": {"value": 3}, "b": "7", "c": 2.0, "d": -1, "e": 1.5});
        let mut o = Obj::new(&mut cx, &v, String::new()).unwrap();
        assert_eq!(o.u32(&mut cx, "a"), Some(3));
        assert_eq!(o.u32(&mut cx, "b"), Some(7));
        assert_eq!(o.u32(&mut cx, "c"), Some(2));
        assert_eq!(o.u32(&mut cx, "d"), None);
        assert_eq!(o.u32(&mut cx, "e"), None);
        o.finish(&mut cx);
        assert_eq!(cx.errors.len(), 2);
        assert!(cx.warnings.is_empty());
    }
}
