//! The route-check tool behind the `mesh-route-check` binary: Envoy `router_check_tool` test
//! files run against a compiled [`RouteTable`].
//!
//! A test file holds `tests[]`, each with a `test_name`, an `input` describing one request and
//! a `validate` block of expectations:
//!
//! ```yaml
//! tests:
//! - test_name: api goes to the api cluster
//!   input: { authority: www.example.com, path: /api/users, method: GET }
//!   validate: { cluster_name: api, virtual_host_name: web, timeout: 15s }
//! ```
//!
//! [`parse_tests`] reads it (JSON or YAML, `snake_case` or `lowerCamelCase` field names, as
//! Envoy's proto JSON mapping allows; files that are almost JSON, with a trailing comma, are read
//! by the YAML parser) and rejects unknown fields with their path, so a misspelt expectation
//! cannot pass silently. [`check`] routes each request and compares; [`Report::render`] prints
//! the outcome.
//!
//! # The request
//!
//! `authority` becomes the `host` header, `path` the URI, `method` the method; `ssl` sets
//! `x-forwarded-proto` to `https` (else `http`), `internal: true` sets `x-envoy-internal: true`;
//! `additional_request_headers` (`[{key, value}]`) are appended. `random_value` (default 0) is
//! the stream's random value: weighted clusters pick `random_value % total_weight` in config
//! order, and runtime fractions use it too. `runtime` is accepted but not modelled (a warning
//! says so): routes use their configured defaults.
//!
//! # The expectations
//!
//! Every field is optional and only what is present is checked; an empty string means "expect
//! nothing". A *route entry* is a route that forwards upstream (Envoy's `routeEntry()`); a
//! redirect or direct response is not one.
//!
//! | field | actual value |
//! |---|---|
//! | `cluster_name` | the route entry's cluster (the weighted pick, the `cluster_header` value) |
//! | `virtual_cluster_name` | for a route entry: the first matching virtual cluster, `other` when the virtual host has virtual clusters and none matches, else empty |
//! | `virtual_host_name` | the route entry's virtual host |
//! | `path_rewrite`, `host_rewrite` | for a route entry: `:path`/`:authority` after the route's rewrites (the original value when nothing is rewritten) |
//! | `path_redirect` | for a redirect (including `require_tls`): the `Location`; for a direct response: the request URL |
//! | `code_redirect` | the redirect's or direct response's status, else 0 |
//! | `timeout` | the route entry's effective timeout (`"15s"` by default, `"0s"` when disabled); compared as durations |
//! | `request_header_matches` | Envoy `HeaderMatcher`s on the request after the route's request header mutations and rewrites (`:authority`, `:path`, `:method`, `:scheme` included) |
//! | `response_header_matches` | Envoy `HeaderMatcher`s on `additional_response_headers` after the route's response header mutations; a direct response with a body first gets `content-length` and `content-type: text/plain`, as Envoy's local replies do |
//!
//! Header mutation values are used as mesh-route produces them: `%VAR%` substitutions are not
//! expanded there yet, so an expectation on a substituted value fails.
//!
//! # Coverage
//!
//! [`Report::coverage`] lists every route of the configuration and whether a test's request
//! was routed to it. The `require_tls` redirect belongs to no route.
//!
//! # Examples
//!
//! ```
//! use mesh_examples::route_check;
//!
//! let routes = mesh_xds::envoy::parse_route_configuration(r#"
//! virtual_hosts:
//! - name: web
//!   domains: ["*"]
//!   routes:
//!   - match: { prefix: /api }
//!     route: { cluster: api }
//!   - match: { prefix: / }
//!     route: { cluster: web }
//! "#)?;
//! let table = mesh_route::RouteTable::compile(&routes.value)?;
//! let tests = route_check::parse_tests(r#"{"tests": [
//!   {"test_name": "api", "input": {"authority": "a.com", "path": "/api/x", "method": "GET"},
//!    "validate": {"cluster_name": "api", "path_redirect": ""}},
//!   {"test_name": "wrong", "input": {"authority": "a.com", "path": "/", "method": "GET"},
//!    "validate": {"cluster_name": "api"}}
//! ]}"#)?;
//! let report = route_check::check(&table, &tests);
//! assert_eq!(report.failed(), 1);
//! let failure = &report.results[1].failures[0];
//! assert_eq!((failure.field.as_str(), failure.actual.as_str()), ("cluster_name", "web"));
//! assert_eq!(report.coverage.tested(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Uri};
use mesh_core::config::{Action, PathMatch, duration};
use mesh_route::{HeaderMatch, HitAction, RouteTable};
use serde_json::Value;

// === errors ===

/// A problem in a test file: the field at fault (`tests[3].validate.timeout`; empty for the
/// file as a whole) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFileError {
    /// The path of the field at fault, empty when the problem is the whole document.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl TestFileError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for TestFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for TestFileError {}

/// Why the route configuration or the test file could not be used. `Display` names the file;
/// the cause (reached through [`source`](std::error::Error::source), or all at once with
/// [`error_chain`]) names the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The route configuration could not be read or is not a valid Envoy `RouteConfiguration`.
    #[error("cannot load route configuration {}", path.display())]
    Routes {
        /// The route configuration file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: mesh_xds::LoadError,
    },
    /// The route configuration loaded but does not compile into a route table.
    #[error("invalid route configuration {}", path.display())]
    Compile {
        /// The route configuration file.
        path: PathBuf,
        /// The field at fault and why.
        #[source]
        source: mesh_route::BuildError,
    },
    /// The test file could not be read.
    #[error("cannot read test file {}", path.display())]
    ReadTests {
        /// The test file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The test file is not a valid router-check test file.
    #[error("invalid test file {}", path.display())]
    Tests {
        /// The test file.
        path: PathBuf,
        /// The field at fault and why.
        #[source]
        source: TestFileError,
    },
}

/// An error and all its causes on one line each level, joined by `: ` (a multi-line cause,
/// such as a list of invalid fields, keeps its lines).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let _ = write!(out, ": {c}");
        cause = c.source();
    }
    out
}

// === the test file ===

/// A parsed router-check test file.
#[derive(Debug, Clone, Default)]
pub struct TestFile {
    /// The test cases, in file order.
    pub tests: Vec<TestCase>,
}

/// One test case.
#[derive(Debug, Clone)]
pub struct TestCase {
    /// `test_name` (not necessarily unique).
    pub name: String,
    /// The request.
    pub input: TestInput,
    /// What to expect.
    pub validate: Expectations,
}

/// The request of a test case (`input`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestInput {
    /// The `host` header.
    pub authority: String,
    /// The `:path` (with query).
    pub path: String,
    /// The method.
    pub method: String,
    /// The stream's random value (weighted clusters, runtime fractions). Default 0.
    pub random_value: u64,
    /// `x-forwarded-proto: https` when true, `http` otherwise.
    pub ssl: bool,
    /// Adds `x-envoy-internal: true`.
    pub internal: bool,
    /// Envoy's runtime key to enable; accepted but not modelled.
    pub runtime: Option<String>,
    /// Headers appended to the request (`additional_request_headers`).
    pub additional_request_headers: Vec<(String, String)>,
    /// Headers the upstream answers with (`additional_response_headers`), before the route's
    /// response header mutations.
    pub additional_response_headers: Vec<(String, String)>,
}

/// The expectations of a test case (`validate`). `None` means "not checked"; an empty string
/// means "expect nothing".
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// `cluster_name`.
    pub cluster_name: Option<String>,
    /// `virtual_cluster_name`.
    pub virtual_cluster_name: Option<String>,
    /// `virtual_host_name`.
    pub virtual_host_name: Option<String>,
    /// `path_rewrite`.
    pub path_rewrite: Option<String>,
    /// `host_rewrite`.
    pub host_rewrite: Option<String>,
    /// `path_redirect`.
    pub path_redirect: Option<String>,
    /// `code_redirect` (0 expects no redirect or direct response).
    pub code_redirect: Option<u32>,
    /// `timeout` in Envoy's duration format (`"15s"`), validated when parsed.
    pub timeout: Option<String>,
    /// `request_header_matches`.
    pub request_header_matches: Vec<HeaderCheck>,
    /// `response_header_matches`.
    pub response_header_matches: Vec<HeaderCheck>,
}

/// One header expectation: the Envoy `HeaderMatcher` as written and compiled.
#[derive(Debug, Clone)]
pub struct HeaderCheck {
    /// The header name, as written.
    pub name: String,
    /// The matcher as written in the test file (shown in failures).
    pub source: Value,
    /// The compiled matcher.
    pub matcher: HeaderMatch,
}

/// Reads and parses a test file.
///
/// # Errors
/// [`CheckError::ReadTests`] when it cannot be read, [`CheckError::Tests`] (with the field at
/// fault) when it is not a valid test file.
pub fn load_tests(path: impl AsRef<Path>) -> Result<TestFile, CheckError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| CheckError::ReadTests {
        path: path.to_owned(),
        source,
    })?;
    parse_tests(&text).map_err(|source| CheckError::Tests {
        path: path.to_owned(),
        source,
    })
}

/// Parses the text of a test file (JSON or YAML).
///
/// # Errors
/// A [`TestFileError`] naming the field at fault: a syntax error, a missing `test_name`,
/// `authority`, `path` or `method`, a value of the wrong type, an unknown field, an invalid
/// header name or value, URI, method, duration or header matcher.
pub fn parse_tests(text: &str) -> Result<TestFile, TestFileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc: Value = if text.trim_start().starts_with('{') {
        match serde_json::from_str(text) {
            Ok(v) => v,
            // Not strict JSON (a trailing comma, say): YAML accepts it.
            Err(json) => serde_yaml_ng::from_str(text)
                .map_err(|_| TestFileError::new("", format!("syntax error: {json}")))?,
        }
    } else {
        serde_yaml_ng::from_str(text)
            .map_err(|e| TestFileError::new("", format!("syntax error: {e}")))?
    };
    let mut tests = None;
    for (key, v) in fields(&doc, "")? {
        match key.as_str() {
            "tests" => {
                tests = Some(
                    list(v, "tests")?
                        .into_iter()
                        .enumerate()
                        .map(|(i, t)| test_case(t, &format!("tests[{i}]")))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            _ => return Err(unknown(&key, "")),
        }
    }
    let tests = tests.ok_or_else(|| TestFileError::new("tests", "is required"))?;
    if tests.is_empty() {
        return Err(TestFileError::new("tests", "must hold at least one test"));
    }
    Ok(TestFile { tests })
}

fn join(parent: &str, key: &str) -> String {
    match (parent.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (false, true) => parent.to_owned(),
        (false, false) => format!("{parent}.{key}"),
    }
}

fn unknown(key: &str, parent: &str) -> TestFileError {
    TestFileError::new(join(parent, key), "unknown or unsupported field")
}

/// `lowerCamelCase` to `snake_case` (Envoy's JSON mapping accepts both).
fn snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
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

/// The non-null fields of an object, keys in `snake_case`.
fn fields<'v>(v: &'v Value, path: &str) -> Result<Vec<(String, &'v Value)>, TestFileError> {
    match v {
        Value::Object(m) => Ok(m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (snake(k), v))
            .collect()),
        other => Err(TestFileError::new(
            path,
            format!("expected an object, got {}", kind(other)),
        )),
    }
}

fn list<'v>(v: &'v Value, path: &str) -> Result<Vec<&'v Value>, TestFileError> {
    match v {
        Value::Array(a) => Ok(a.iter().collect()),
        other => Err(TestFileError::new(
            path,
            format!("expected a list, got {}", kind(other)),
        )),
    }
}

fn string(v: &Value, path: &str) -> Result<String, TestFileError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(TestFileError::new(
            path,
            format!("expected a string, got {}", kind(other)),
        )),
    }
}

fn boolean(v: &Value, path: &str) -> Result<bool, TestFileError> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(TestFileError::new(
            path,
            format!("expected a boolean, got {}", kind(other)),
        )),
    }
}

/// An unsigned integer, as a number or a decimal string (proto JSON writes 64-bit integers as
/// strings).
fn unsigned(v: &Value, path: &str, max: u64) -> Result<u64, TestFileError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        other => {
            return Err(TestFileError::new(
                path,
                format!("expected an unsigned integer, got {}", kind(other)),
            ));
        }
    };
    match n {
        Some(n) if n <= max => Ok(n),
        _ => Err(TestFileError::new(
            path,
            format!("expected an unsigned integer up to {max}, got {v}"),
        )),
    }
}

fn test_case(v: &Value, path: &str) -> Result<TestCase, TestFileError> {
    let mut name = None;
    let mut input = None;
    let mut validate = None;
    for (key, v) in fields(v, path)? {
        let p = join(path, &key);
        match key.as_str() {
            "test_name" => name = Some(string(v, &p)?),
            "input" => input = Some(test_input(v, &p)?),
            "validate" => validate = Some(expectations(v, &p)?),
            _ => return Err(unknown(&key, path)),
        }
    }
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| TestFileError::new(join(path, "test_name"), "is required"))?;
    Ok(TestCase {
        name,
        input: input.ok_or_else(|| TestFileError::new(join(path, "input"), "is required"))?,
        validate: validate
            .ok_or_else(|| TestFileError::new(join(path, "validate"), "is required"))?,
    })
}

fn header_values(v: &Value, path: &str) -> Result<Vec<(String, String)>, TestFileError> {
    let mut out = Vec::new();
    for (i, h) in list(v, path)?.into_iter().enumerate() {
        let hp = format!("{path}[{i}]");
        let (mut key, mut value) = (None, String::new());
        for (k, v) in fields(h, &hp)? {
            let p = join(&hp, &k);
            match k.as_str() {
                "key" => key = Some(string(v, &p)?),
                "value" => value = string(v, &p)?,
                _ => return Err(unknown(&k, &hp)),
            }
        }
        let key = key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| TestFileError::new(join(&hp, "key"), "is required"))?;
        if key.starts_with(':') {
            return Err(TestFileError::new(
                join(&hp, "key"),
                format!("{key:?}: pseudo-headers come from authority, path and method"),
            ));
        }
        if HeaderName::from_bytes(key.as_bytes()).is_err() {
            return Err(TestFileError::new(
                join(&hp, "key"),
                format!("{key:?} is not a valid header name"),
            ));
        }
        if HeaderValue::from_bytes(value.as_bytes()).is_err() {
            return Err(TestFileError::new(
                join(&hp, "value"),
                format!("{value:?} is not a valid header value"),
            ));
        }
        out.push((key, value));
    }
    Ok(out)
}

fn test_input(v: &Value, path: &str) -> Result<TestInput, TestFileError> {
    let mut input = TestInput::default();
    let (mut authority, mut req_path, mut method) = (None, None, None);
    for (key, v) in fields(v, path)? {
        let p = join(path, &key);
        match key.as_str() {
            "authority" => authority = Some(string(v, &p)?),
            "path" => req_path = Some(string(v, &p)?),
            "method" => method = Some(string(v, &p)?),
            "random_value" => input.random_value = unsigned(v, &p, u64::MAX)?,
            "ssl" => input.ssl = boolean(v, &p)?,
            "internal" => input.internal = boolean(v, &p)?,
            "runtime" => input.runtime = Some(string(v, &p)?).filter(|r| !r.is_empty()),
            // `additional_headers` is the field's name in older Envoy releases.
            "additional_request_headers" | "additional_headers" => {
                input.additional_request_headers = header_values(v, &p)?;
            }
            "additional_response_headers" => {
                input.additional_response_headers = header_values(v, &p)?;
            }
            _ => return Err(unknown(&key, path)),
        }
    }
    let required = |v: Option<String>, key: &str| {
        v.filter(|s| !s.is_empty())
            .ok_or_else(|| TestFileError::new(join(path, key), "is required"))
    };
    input.authority = required(authority, "authority")?;
    input.path = required(req_path, "path")?;
    input.method = required(method, "method")?;
    // Check the request can be built, so that `check` never meets a bad one.
    build_request(&input)
        .map_err(|(key, message)| TestFileError::new(join(path, &key), message))?;
    Ok(input)
}

fn header_checks(v: &Value, path: &str) -> Result<Vec<HeaderCheck>, TestFileError> {
    list(v, path)?
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let mp = format!("{path}[{i}]");
            let config = mesh_xds::envoy::parse_header_matcher(m).map_err(|e| {
                match e.field_errors().first() {
                    Some(fe) => TestFileError::new(join(&mp, &fe.path), fe.message.clone()),
                    None => TestFileError::new(mp.clone(), e.to_string()),
                }
            })?;
            let matcher = HeaderMatch::new(&config)
                .map_err(|e| TestFileError::new(mp.clone(), e.to_string()))?;
            Ok(HeaderCheck {
                name: config.name,
                source: m.clone(),
                matcher,
            })
        })
        .collect()
}

fn expectations(v: &Value, path: &str) -> Result<Expectations, TestFileError> {
    let mut e = Expectations::default();
    for (key, v) in fields(v, path)? {
        let p = join(path, &key);
        match key.as_str() {
            "cluster_name" => e.cluster_name = Some(string(v, &p)?),
            "virtual_cluster_name" => e.virtual_cluster_name = Some(string(v, &p)?),
            "virtual_host_name" => e.virtual_host_name = Some(string(v, &p)?),
            "path_rewrite" => e.path_rewrite = Some(string(v, &p)?),
            "host_rewrite" => e.host_rewrite = Some(string(v, &p)?),
            "path_redirect" => e.path_redirect = Some(string(v, &p)?),
            "code_redirect" => {
                e.code_redirect = Some(unsigned(v, &p, u64::from(u32::MAX))? as u32);
            }
            "timeout" => {
                let t = string(v, &p)?;
                if !t.is_empty() {
                    duration::parse(&t).map_err(|err| TestFileError::new(&p, err.to_string()))?;
                }
                e.timeout = Some(t);
            }
            "request_header_matches" => e.request_header_matches = header_checks(v, &p)?,
            "response_header_matches" => e.response_header_matches = header_checks(v, &p)?,
            _ => return Err(unknown(&key, path)),
        }
    }
    Ok(e)
}

/// The request of a test case; on error the input field at fault and the message.
fn build_request(input: &TestInput) -> Result<Parts, (String, String)> {
    let method = Method::from_bytes(input.method.as_bytes()).map_err(|_| {
        (
            "method".to_owned(),
            format!("{:?} is not a valid method", input.method),
        )
    })?;
    if !(input.path.starts_with('/') || input.path == "*") {
        return Err((
            "path".into(),
            format!("{:?} must start with '/'", input.path),
        ));
    }
    let uri = Uri::try_from(input.path.as_str())
        .map_err(|e| ("path".to_owned(), format!("{:?}: {e}", input.path)))?;
    let host = HeaderValue::from_bytes(input.authority.as_bytes()).map_err(|_| {
        (
            "authority".to_owned(),
            format!("{:?} is not a valid header value", input.authority),
        )
    })?;
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.headers.insert(http::header::HOST, host);
    parts.headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(if input.ssl { "https" } else { "http" }),
    );
    if input.internal {
        parts
            .headers
            .insert("x-envoy-internal", HeaderValue::from_static("true"));
    }
    append_headers(
        &mut parts.headers,
        &input.additional_request_headers,
        "additional_request_headers",
    )?;
    Ok(parts)
}

fn append_headers(
    headers: &mut HeaderMap,
    list: &[(String, String)],
    field: &str,
) -> Result<(), (String, String)> {
    for (i, (k, v)) in list.iter().enumerate() {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
            (
                format!("{field}[{i}].key"),
                format!("{k:?} is not a valid header name"),
            )
        })?;
        let value = HeaderValue::from_bytes(v.as_bytes()).map_err(|_| {
            (
                format!("{field}[{i}].value"),
                format!("{v:?} is not a valid header value"),
            )
        })?;
        headers.append(name, value);
    }
    Ok(())
}

// === checking ===

/// One expectation that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The expectation: `cluster_name`, `request_header_matches[2]`, ...
    pub field: String,
    /// What the test file expects (a header matcher as compact JSON).
    pub expected: String,
    /// What the route table gave (for a header matcher: the header's value, or `<absent>`).
    pub actual: String,
}

/// The outcome of one test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The test's `test_name`.
    pub name: String,
    /// Every expectation that did not hold; empty when the test passed.
    pub failures: Vec<Mismatch>,
}

impl TestResult {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// One route of the configuration and whether a test exercised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCoverage {
    /// The index of its virtual host in `virtual_hosts`.
    pub virtual_host_index: usize,
    /// The virtual host's name.
    pub virtual_host: String,
    /// The index of the route in the virtual host's `routes`.
    pub route_index: usize,
    /// The route's name and path condition, e.g. `prefix /api`.
    pub description: String,
    /// Whether at least one test's request was routed to it.
    pub tested: bool,
}

impl fmt::Display for RouteCoverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "virtual_hosts[{}] ({}) routes[{}]: {}",
            self.virtual_host_index, self.virtual_host, self.route_index, self.description
        )
    }
}

/// Which routes the tests exercised.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Coverage {
    /// Every route, in config order.
    pub routes: Vec<RouteCoverage>,
}

impl Coverage {
    /// How many routes were exercised.
    pub fn tested(&self) -> usize {
        self.routes.iter().filter(|r| r.tested).count()
    }

    /// The share of routes exercised, in percent (100 when there are no routes).
    pub fn percent(&self) -> f64 {
        if self.routes.is_empty() {
            100.0
        } else {
            self.tested() as f64 * 100.0 / self.routes.len() as f64
        }
    }

    /// The routes no test exercised.
    pub fn untested(&self) -> impl Iterator<Item = &RouteCoverage> {
        self.routes.iter().filter(|r| !r.tested)
    }
}

/// The outcome of a test file.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// One result per test case, in file order.
    pub results: Vec<TestResult>,
    /// Route coverage.
    pub coverage: Coverage,
    /// Inputs that were accepted but not modelled, with their field path.
    pub warnings: Vec<String>,
}

/// What [`Report::render`] prints besides failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RenderOptions {
    /// Print every test's result (`PASS`/`FAIL`), and with `coverage` the untested routes.
    pub details: bool,
    /// Print the route coverage.
    pub coverage: bool,
}

impl Report {
    /// Whether every test passed.
    pub fn passed(&self) -> bool {
        self.results.iter().all(TestResult::passed)
    }

    /// How many tests failed.
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| !r.passed()).count()
    }

    /// The report as text: each failing test (`FAIL name`) with one line per failed
    /// expectation giving the field, the expected and the actual value; with
    /// [`details`](RenderOptions::details) also `PASS name` lines; a summary line; with
    /// [`coverage`](RenderOptions::coverage) the share of routes exercised (and, with details,
    /// the untested routes).
    pub fn render(&self, opts: RenderOptions) -> String {
        let mut out = String::new();
        for r in &self.results {
            if r.passed() {
                if opts.details {
                    let _ = writeln!(out, "PASS {}", r.name);
                }
                continue;
            }
            let _ = writeln!(out, "FAIL {}", r.name);
            for m in &r.failures {
                // A header matcher is shown as the JSON it was written as, unquoted.
                if m.field.contains("header_matches[") {
                    let _ = writeln!(
                        out,
                        "  {}: expected {}, actual {:?}",
                        m.field, m.expected, m.actual
                    );
                } else {
                    let _ = writeln!(
                        out,
                        "  {}: expected {:?}, actual {:?}",
                        m.field, m.expected, m.actual
                    );
                }
            }
        }
        let failed = self.failed();
        let _ = writeln!(
            out,
            "{} tests: {} passed, {failed} failed",
            self.results.len(),
            self.results.len() - failed
        );
        if opts.coverage {
            let c = &self.coverage;
            let _ = writeln!(
                out,
                "route coverage: {:.2}% ({} of {} routes)",
                c.percent(),
                c.tested(),
                c.routes.len()
            );
            if opts.details {
                for r in c.untested() {
                    let _ = writeln!(out, "untested route: {r}");
                }
            }
        }
        out
    }
}

fn describe(route: &mesh_core::config::Route) -> String {
    let m = &route.route_match;
    let mut s = match &m.path {
        PathMatch::Prefix(p) => format!("prefix {p}"),
        PathMatch::Path(p) => format!("path {p}"),
        PathMatch::SafeRegex(r) => format!("safe_regex {r}"),
        PathMatch::PathSeparatedPrefix(p) => format!("path_separated_prefix {p}"),
        PathMatch::ConnectMatcher => "connect_matcher".to_owned(),
        PathMatch::PathTemplate(t) => format!("path_template {t}"),
    };
    if !m.headers.is_empty() {
        let names: Vec<&str> = m.headers.iter().map(|h| h.name.as_str()).collect();
        let _ = write!(s, " headers [{}]", names.join(", "));
    }
    if m.grpc {
        s.push_str(" grpc");
    }
    if !route.name.is_empty() {
        s = format!("{:?} {s}", route.name);
    }
    s
}

/// Runs every test of `tests` against `routes` with the router check tool's runtime: a route
/// whose match has a `runtime_fraction` matches only in the test cases whose `input.runtime`
/// names its key (Envoy's tool answers every other runtime question "no").
pub fn check_routes(routes: &LoadedRoutes, tests: &TestFile) -> Report {
    let uses_runtime = routes
        .config
        .virtual_hosts
        .iter()
        .flat_map(|vh| &vh.routes)
        .any(|r| r.route_match.runtime_fraction.is_some());
    if !uses_runtime {
        return check(&routes.table, tests);
    }
    // One table per runtime key the tests name (and one for none), each with that key's
    // fractions always on and every other fraction off.
    let mut tables: std::collections::BTreeMap<Option<String>, RouteTable> = Default::default();
    let mut by_key: std::collections::BTreeMap<Option<String>, TestFile> = Default::default();
    let mut order = Vec::new();
    for case in &tests.tests {
        let key = case.input.runtime.clone();
        let slot = by_key.entry(key.clone()).or_default();
        order.push((key.clone(), slot.tests.len()));
        slot.tests.push(case.clone());
        if let std::collections::btree_map::Entry::Vacant(slot) = tables.entry(key.clone()) {
            let mut rc = routes.config.clone();
            for r in rc.virtual_hosts.iter_mut().flat_map(|vh| &mut vh.routes) {
                if let Some(f) = &mut r.route_match.runtime_fraction {
                    let on = key.as_deref() == Some(f.runtime_key.as_str());
                    f.default_value =
                        mesh_core::config::FractionalPercent::percent(if on { 100 } else { 0 });
                }
            }
            match RouteTable::compile(&rc) {
                Ok(t) => {
                    slot.insert(t);
                }
                Err(_) => return check(&routes.table, tests),
            }
        }
    }
    let reports: std::collections::BTreeMap<Option<String>, Report> = by_key
        .iter()
        .map(|(k, t)| (k.clone(), check(&tables[k], t)))
        .collect();
    let mut report = check(&routes.table, &TestFile::default());
    report.coverage = reports
        .values()
        .map(|r| r.coverage.clone())
        .reduce(|mut a, b| {
            for (x, y) in a.routes.iter_mut().zip(b.routes) {
                x.tested |= y.tested;
            }
            a
        })
        .unwrap_or(report.coverage);
    for (key, i) in order {
        report.results.push(reports[&key].results[i].clone());
    }
    report
}

/// Runs every test of `tests` against `table` (a runtime key a test names is not applied;
/// [`check_routes`] applies them).
pub fn check(table: &RouteTable, tests: &TestFile) -> Report {
    let mut coverage = Coverage::default();
    for vh in table.virtual_hosts() {
        for (ri, route) in vh.config().routes.iter().enumerate() {
            coverage.routes.push(RouteCoverage {
                virtual_host_index: vh.index(),
                virtual_host: vh.name().to_owned(),
                route_index: ri,
                description: describe(route),
                tested: false,
            });
        }
    }
    let mut results = Vec::with_capacity(tests.tests.len());
    let warnings = Vec::new();
    for case in &tests.tests {
        let (result, hit_route) = check_case(table, case);
        if let Some((vi, ri)) = hit_route
            && let Some(r) = coverage
                .routes
                .iter_mut()
                .find(|r| r.virtual_host_index == vi && r.route_index == ri)
        {
            r.tested = true;
        }
        results.push(result);
    }
    Report {
        results,
        coverage,
        warnings,
    }
}

/// What the route table gave for one request.
#[derive(Debug, Default)]
struct Actual {
    cluster: String,
    virtual_cluster: String,
    virtual_host: String,
    path_rewrite: String,
    host_rewrite: String,
    path_redirect: String,
    code_redirect: u32,
    timeout: String,
}

/// Runs one test case; also returns the (virtual host, route) indexes of the route it hit.
fn check_case(table: &RouteTable, case: &TestCase) -> (TestResult, Option<(usize, usize)>) {
    let mut result = TestResult {
        name: case.name.clone(),
        failures: Vec::new(),
    };
    let parts = match build_request(&case.input) {
        Ok(p) => p,
        Err((field, message)) => {
            // `parse_tests` refuses such input; a hand-built `TestCase` can still hold it.
            result.failures.push(Mismatch {
                field: format!("input.{field}"),
                expected: "a valid request".into(),
                actual: message,
            });
            return (result, None);
        }
    };
    let input = &case.input;
    let mut actual = Actual::default();
    let mut request = clone_parts(&parts, None, None);
    let mut response = HeaderMap::new();
    // Checked by `parse_tests`; a hand-built `TestCase` with a bad one loses that header.
    let _ = append_headers(
        &mut response,
        &input.additional_response_headers,
        "additional_response_headers",
    );

    let hit = table.find(&parts, input.random_value);
    let mut hit_route = None;
    if let Some(hit) = &hit {
        let vh = hit.virtual_host();
        hit_route = hit.route_index().map(|ri| (vh.index(), ri));
        let route_entry = |actual: &mut Actual| {
            actual.virtual_host = vh.name().to_owned();
            actual.virtual_cluster = match vh.virtual_cluster(&parts) {
                Some(name) => name.to_owned(),
                None if !vh.config().virtual_clusters.is_empty() => "other".to_owned(),
                None => String::new(),
            };
            actual.path_rewrite = input.path.clone();
            actual.host_rewrite = input.authority.clone();
            if let Some(Action::Route(a)) = hit.route().map(|r| &r.action) {
                actual.timeout =
                    duration::format(a.effective_timeout().unwrap_or(std::time::Duration::ZERO));
            }
        };
        // Envoy's router_check_tool runs requests as from 127.0.0.1.
        let info = mesh_route::RequestInfo {
            downstream_remote: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            downstream_local: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            protocol: Some("HTTP/1.1"),
            request_headers: None,
        };
        match hit.action() {
            HitAction::Forward(fwd) => {
                route_entry(&mut actual);
                actual.cluster = fwd.cluster(&parts).to_owned();
                if let Some(p) = fwd.rewritten_path(&parts) {
                    actual.path_rewrite = p;
                }
                let new_host = fwd.host_rewrite(&parts);
                if let Some(h) = &new_host {
                    actual.host_rewrite = h.clone();
                }
                request = clone_parts(
                    &parts,
                    Some(actual.path_rewrite.as_str()),
                    new_host.as_deref(),
                );
                if new_host.is_some()
                    && fwd.action().append_x_forwarded_host
                    && let Ok(v) = HeaderValue::from_bytes(input.authority.as_bytes())
                {
                    request.headers.append("x-forwarded-host", v);
                }
                hit.apply_request_headers_with(&mut request.headers, &info);
            }
            HitAction::ClusterNotFound(_) => {
                // Still a route entry; its cluster header named nothing.
                route_entry(&mut actual);
                hit.apply_request_headers_with(&mut request.headers, &info);
            }
            HitAction::Redirect(location, status) => {
                actual.path_redirect = location;
                actual.code_redirect = u32::from(status.as_u16());
            }
            HitAction::DirectResponse(status, body) => {
                actual.path_redirect = match hit.location() {
                    Some(l) => l.to_owned(),
                    None => format!(
                        "{}://{}{}",
                        if input.ssl { "https" } else { "http" },
                        input.authority,
                        input.path
                    ),
                };
                actual.code_redirect = u32::from(status.as_u16());
                // Envoy's local reply: the body's length and a text/plain content type.
                if let Some(body) = body.filter(|b| !b.is_empty()) {
                    response.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
                    if !response.contains_key(http::header::CONTENT_TYPE) {
                        response.insert(
                            http::header::CONTENT_TYPE,
                            HeaderValue::from_static("text/plain"),
                        );
                    }
                }
            }
        }
        hit.apply_response_headers_with(&mut response, &info);
    }

    let v = &case.validate;
    let mut compare = |field: &str, expected: &Option<String>, actual: &str| {
        if let Some(e) = expected
            && e != actual
        {
            result.failures.push(Mismatch {
                field: field.to_owned(),
                expected: e.clone(),
                actual: actual.to_owned(),
            });
        }
    };
    compare("cluster_name", &v.cluster_name, &actual.cluster);
    compare(
        "virtual_cluster_name",
        &v.virtual_cluster_name,
        &actual.virtual_cluster,
    );
    compare(
        "virtual_host_name",
        &v.virtual_host_name,
        &actual.virtual_host,
    );
    compare("path_rewrite", &v.path_rewrite, &actual.path_rewrite);
    compare("host_rewrite", &v.host_rewrite, &actual.host_rewrite);
    compare("path_redirect", &v.path_redirect, &actual.path_redirect);
    if let Some(code) = v.code_redirect
        && code != actual.code_redirect
    {
        result.failures.push(Mismatch {
            field: "code_redirect".into(),
            expected: code.to_string(),
            actual: actual.code_redirect.to_string(),
        });
    }
    if let Some(t) = &v.timeout {
        let same = match (t.is_empty(), actual.timeout.is_empty()) {
            (true, true) => true,
            (false, false) => duration::parse(t).ok() == duration::parse(&actual.timeout).ok(),
            _ => false,
        };
        if !same {
            result.failures.push(Mismatch {
                field: "timeout".into(),
                expected: t.clone(),
                actual: actual.timeout.clone(),
            });
        }
    }
    for (i, h) in v.request_header_matches.iter().enumerate() {
        if !h.matcher.matches(&request) {
            result.failures.push(Mismatch {
                field: format!("request_header_matches[{i}]"),
                expected: h.source.to_string(),
                actual: request_header(&request, &h.name),
            });
        }
    }
    for (i, h) in v.response_header_matches.iter().enumerate() {
        if !h.matcher.matches_headers(&response) {
            result.failures.push(Mismatch {
                field: format!("response_header_matches[{i}]"),
                expected: h.source.to_string(),
                actual: header(&response, &h.name),
            });
        }
    }
    (result, hit_route)
}

/// A copy of the request's method and headers with a new `:path` and `host`, when given and
/// valid.
fn clone_parts(parts: &Parts, path: Option<&str>, host: Option<&str>) -> Parts {
    let (mut out, ()) = http::Request::new(()).into_parts();
    out.method = parts.method.clone();
    out.uri = path
        .and_then(|p| Uri::try_from(p).ok())
        .unwrap_or_else(|| parts.uri.clone());
    out.headers = parts.headers.clone();
    if let Some(v) = host.and_then(|h| HeaderValue::from_bytes(h.as_bytes()).ok()) {
        out.headers.insert(http::header::HOST, v);
    }
    out
}

const ABSENT: &str = "<absent>";

/// A header's values joined with `,` (as matchers see them), or `<absent>`.
fn header(headers: &HeaderMap, name: &str) -> String {
    let Ok(name) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) else {
        return ABSENT.to_owned();
    };
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    if values.is_empty() {
        ABSENT.to_owned()
    } else {
        values.join(",")
    }
}

/// A request header as matchers see it, pseudo-headers included.
fn request_header(req: &Parts, name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        ":method" => req.method.to_string(),
        ":path" => req
            .uri
            .path_and_query()
            .map_or_else(|| ABSENT.to_owned(), |p| p.as_str().to_owned()),
        ":authority" | "host" => match req.uri.authority() {
            Some(a) => a.as_str().to_owned(),
            None => header(&req.headers, "host"),
        },
        ":scheme" => match req.uri.scheme_str() {
            Some(s) => s.to_owned(),
            None => header(&req.headers, "x-forwarded-proto"),
        },
        n if n.starts_with(':') => ABSENT.to_owned(),
        n => header(&req.headers, n),
    }
}

// === loading ===

/// A compiled route configuration and what its loader ignored.
#[derive(Debug)]
pub struct LoadedRoutes {
    /// The compiled table.
    pub table: RouteTable,
    /// The route configuration it was compiled from.
    pub config: mesh_core::config::RouteConfiguration,
    /// Fields of the file that were ignored (unknown or unsupported), with their paths.
    pub warnings: Vec<mesh_xds::envoy::Warning>,
}

/// Reads a bare Envoy v3 `RouteConfiguration` (YAML or JSON) and compiles it.
///
/// # Errors
/// [`CheckError::Routes`] when the file cannot be read or is not a valid route configuration,
/// [`CheckError::Compile`] when it does not compile (a bad regex, say); both name the file,
/// and their cause names the field.
pub fn load_routes(path: impl AsRef<Path>) -> Result<LoadedRoutes, CheckError> {
    let path = path.as_ref();
    let loaded =
        mesh_xds::envoy::load_route_configuration(path).map_err(|source| CheckError::Routes {
            path: path.to_owned(),
            source,
        })?;
    let table = RouteTable::compile(&loaded.value).map_err(|source| CheckError::Compile {
        path: path.to_owned(),
        source,
    })?;
    Ok(LoadedRoutes {
        table,
        config: loaded.value,
        warnings: loaded.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(yaml: &str) -> RouteTable {
        let loaded = mesh_xds::envoy::parse_route_configuration(yaml).unwrap();
        RouteTable::compile(&loaded.value).unwrap()
    }

    const ROUTES: &str = r#"
virtual_hosts:
- name: web
  domains: ["*"]
  require_tls: EXTERNAL_ONLY
  routes:
  - match: { prefix: /api }
    route: { cluster: api, prefix_rewrite: /v2, timeout: 3s }
    request_headers_to_add:
    - header: { key: x-route, value: api }
  - match: { prefix: /ping }
    direct_response: { status: 200, body: { inline_string: pong } }
    response_headers_to_add:
    - header: { key: x-ping, value: "yes" }
  - match: { prefix: /old }
    redirect: { path_redirect: /new }
  - match: { prefix: / }
    route:
      weighted_clusters:
        clusters: [{ name: a, weight: 1 }, { name: b, weight: 3 }]
"#;

    fn run(tests: &str) -> Report {
        check(&table(ROUTES), &parse_tests(tests).unwrap())
    }

    #[test]
    fn every_field_is_checked() {
        let report = run(r#"
tests:
- test_name: rewrite
  input: { authority: h, path: "/api/x?q=1", method: GET, internal: true }
  validate:
    cluster_name: api
    virtual_host_name: web
    virtual_cluster_name: ""
    path_rewrite: "/v2/x?q=1"
    host_rewrite: h
    path_redirect: ""
    code_redirect: 0
    timeout: 3.0s
    request_header_matches:
    - { name: x-route, string_match: { exact: api } }
    - { name: ":path", string_match: { prefix: /v2/ } }
    - { name: ":authority", exact_match: h }
    - { name: x-envoy-internal, present_match: true }
- test_name: direct
  input: { authority: h, path: /ping, method: GET, ssl: true }
  validate:
    cluster_name: ""
    virtual_host_name: ""
    path_redirect: https://h/ping
    code_redirect: 200
    timeout: ""
    response_header_matches:
    - { name: content-length, range_match: { start: 4, end: 5 } }
    - { name: content-type, string_match: { exact: text/plain } }
    - { name: x-ping, string_match: { exact: "yes" } }
- test_name: redirect
  input: { authority: h, path: /old, method: GET, internal: true }
  validate: { path_redirect: http://h/new, code_redirect: 301 }
- test_name: require_tls
  input: { authority: h, path: /api, method: GET }
  validate: { path_redirect: https://h/api, cluster_name: "" }
- test_name: weighted
  input: { authority: h, path: /x, method: GET, internal: true, random_value: "5" }
  validate: { cluster_name: b, timeout: 15s, path_rewrite: /x }
"#);
        for r in &report.results {
            assert!(r.passed(), "{r:?}");
        }
        let tested: Vec<bool> = report.coverage.routes.iter().map(|r| r.tested).collect();
        assert_eq!(tested, [true, true, true, true]);
    }

    #[test]
    fn mismatches_name_field_expected_and_actual() {
        let report = run(r#"{"tests": [{"testName": "t", "input": {"authority": "h",
            "path": "/x", "method": "GET", "internal": true, "randomValue": 0},
            "validate": {"clusterName": "b", "timeout": "2s",
              "responseHeaderMatches": [{"name": "x-missing", "present_match": true}]}},]}"#);
        let failures = &report.results[0].failures;
        assert_eq!(
            failures[0],
            Mismatch {
                field: "cluster_name".into(),
                expected: "b".into(),
                actual: "a".into()
            }
        );
        assert_eq!(
            (failures[1].field.as_str(), failures[1].actual.as_str()),
            ("timeout", "15s")
        );
        assert_eq!(failures[2].field, "response_header_matches[0]");
        assert_eq!(failures[2].actual, "<absent>");
        let text = report.render(RenderOptions::default());
        assert!(
            text.contains("FAIL t\n  cluster_name: expected \"b\", actual \"a\""),
            "{text}"
        );
        assert!(
            text.contains(
                r#"response_header_matches[0]: expected {"name":"x-missing","present_match":true}, actual "<absent>""#
            ),
            "{text}"
        );
        assert!(text.contains("1 tests: 0 passed, 1 failed"), "{text}");
    }

    #[test]
    fn coverage_and_details() {
        let report = run(r#"
tests:
- test_name: one
  input: { authority: h, path: /api, method: GET, ssl: true }
  validate: { cluster_name: api }
"#);
        assert_eq!(report.coverage.tested(), 1);
        assert_eq!(report.coverage.percent(), 25.0);
        let text = report.render(RenderOptions {
            details: true,
            coverage: true,
        });
        assert!(text.contains("PASS one"), "{text}");
        assert!(
            text.contains("route coverage: 25.00% (1 of 4 routes)"),
            "{text}"
        );
        assert!(
            text.contains("untested route: virtual_hosts[0] (web) routes[1]: prefix /ping"),
            "{text}"
        );
        let brief = report.render(RenderOptions::default());
        assert!(
            !brief.contains("PASS") && !brief.contains("coverage"),
            "{brief}"
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let cases = [
            ("tests: []", "tests", "at least one"),
            ("{}", "tests", "required"),
            (
                "tests: [{ input: { authority: h, path: /, method: GET }, validate: {} }]",
                "tests[0].test_name",
                "required",
            ),
            (
                "tests: [{ test_name: t, input: { path: /, method: GET }, validate: {} }]",
                "tests[0].input.authority",
                "required",
            ),
            (
                "tests: [{ test_name: t, input: { authority: h, path: x, method: GET }, validate: {} }]",
                "tests[0].input.path",
                "must start with",
            ),
            (
                "tests: [{ test_name: t, input: { authority: h, path: /, method: GET }, validate: { timeout: soon } }]",
                "tests[0].validate.timeout",
                "invalid duration",
            ),
            (
                "tests: [{ test_name: t, input: { authority: h, path: /, method: GET }, validate: { cluster: a } }]",
                "tests[0].validate.cluster",
                "unknown",
            ),
            (
                "tests: [{ test_name: t, input: { authority: h, path: /, method: GET }, validate: { request_header_matches: [{ name: a, string_match: { exact: b, bogus: 1 } }] } }]",
                "tests[0].validate.request_header_matches[0].string_match.bogus",
                "unknown",
            ),
            (
                "tests: [{ test_name: t, input: { authority: h, path: /, method: GET, random_value: -1 }, validate: {} }]",
                "tests[0].input.random_value",
                "unsigned",
            ),
            (
                "tests: [{ test_name: t, input: { authority: h, path: /, method: GET, additional_request_headers: [{ key: 'a b', value: c }] }, validate: {} }]",
                "tests[0].input.additional_request_headers[0].key",
                "not a valid header name",
            ),
        ];
        for (text, field, message) in cases {
            let e = parse_tests(text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
            assert!(e.message.contains(message), "{text}: {e}");
        }
        let e = parse_tests("{\"tests\": [").unwrap_err();
        assert!(
            e.field.is_empty() && e.message.contains("syntax error"),
            "{e}"
        );
    }

    /// Regression (issue #11): router_check tests that set a runtime value could not pass.
    /// As in Envoy's tool, a route with a `runtime_fraction` matches only in the tests whose
    /// `input.runtime` names its key.
    #[test]
    fn input_runtime_turns_on_the_fraction_it_names() {
        let yaml = r#"
virtual_hosts:
- name: web
  domains: ["*"]
  routes:
  - match: { prefix: /, runtime_fraction: { default_value: { numerator: 0 }, runtime_key: routing.canary } }
    route: { cluster: canary }
  - match: { prefix: / }
    route: { cluster: stable }
"#;
        let loaded = mesh_xds::envoy::parse_route_configuration(yaml).unwrap();
        let routes = LoadedRoutes {
            table: RouteTable::compile(&loaded.value).unwrap(),
            config: loaded.value,
            warnings: Vec::new(),
        };
        let tests = parse_tests(
            r#"
tests:
- test_name: named
  input: { authority: h, path: /, method: GET, runtime: routing.canary }
  validate: { cluster_name: canary }
- test_name: unnamed
  input: { authority: h, path: /, method: GET }
  validate: { cluster_name: stable }
- test_name: other key
  input: { authority: h, path: /, method: GET, runtime: something.else }
  validate: { cluster_name: stable }
"#,
        )
        .unwrap();
        let report = check_routes(&routes, &tests);
        assert!(report.passed(), "{report:?}");
        assert_eq!(report.results.len(), 3);
        assert_eq!(report.results[0].name, "named");
        assert!(report.warnings.is_empty());
        assert!(report.coverage.routes.iter().all(|r| r.tested));
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let e = CheckError::Tests {
            path: "t.json".into(),
            source: TestFileError::new("tests[0].validate.timeout", "bad"),
        };
        assert_eq!(
            error_chain(&e),
            "invalid test file t.json: tests[0].validate.timeout: bad"
        );
    }
}
