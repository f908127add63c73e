//! Route configurations: virtual hosts, routes, matchers and actions (Envoy's `RouteConfiguration`).
//!
//! Field names and defaults follow Envoy's v3 API. `mesh-route` compiles these types into a
//! matching table; nothing here matches requests.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{FractionalPercent, RoutingPriority};

/// A route table: virtual hosts selected by `Host`, each with ordered routes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteConfiguration {
    /// The name, used by RDS and in stats.
    pub name: String,
    /// Virtual hosts; at most one may hold the domain `*`.
    pub virtual_hosts: Vec<VirtualHost>,
    /// Headers removed from requests that are not internal.
    pub internal_only_headers: Vec<String>,
    /// Header mutations applied at the route-configuration level.
    pub headers: HeaderMutations,
    /// When true, route-level mutations win over vhost and config ones (default false).
    pub most_specific_header_mutations_wins: bool,
    /// Whether clusters named by routes must exist. `None` means Envoy's default: true for
    /// inline (static) route configurations, false for RDS.
    pub validate_clusters: Option<bool>,
    /// Strip the port from `Host` before virtual-host selection (default false).
    pub ignore_port_in_host_matching: bool,
    /// Truncate the path at the first `;` before path matching (default false).
    pub ignore_path_parameters_in_path_matching: bool,
    /// Mirror policies used when neither the route nor the vhost has any.
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
    /// Largest allowed direct-response body (default 4096).
    pub max_direct_response_body_size_bytes: u32,
}

impl RouteConfiguration {
    /// An empty route configuration with the given name.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            max_direct_response_body_size_bytes: 4096,
            ..Self::default()
        }
    }

    /// Adds a virtual host (builder style).
    pub fn with_virtual_host(mut self, vh: VirtualHost) -> Self {
        self.virtual_hosts.push(vh);
        self
    }
}

/// Request and response header mutations at one level (route, vhost, config, weighted cluster).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HeaderMutations {
    /// Headers added to the upstream request.
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// Header names removed from the upstream request (before additions).
    pub request_headers_to_remove: Vec<String>,
    /// Headers added to the downstream response.
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Header names removed from the downstream response (before additions).
    pub response_headers_to_remove: Vec<String>,
}

impl HeaderMutations {
    /// True when no mutation is configured.
    pub fn is_empty(&self) -> bool {
        self.request_headers_to_add.is_empty()
            && self.request_headers_to_remove.is_empty()
            && self.response_headers_to_add.is_empty()
            && self.response_headers_to_remove.is_empty()
    }
}

/// A header to add, with Envoy's append semantics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderValueOption {
    /// Header name (lower-cased when compiled).
    pub key: String,
    /// Header value; `%VAR%` substitutions are expanded by the proxy.
    pub value: String,
    /// How to combine with an existing header (default append-if-exists-or-add).
    #[serde(default)]
    pub append_action: AppendAction,
    /// Add the header even when its value is empty (default false).
    #[serde(default)]
    pub keep_empty_value: bool,
}

impl HeaderValueOption {
    /// A header that is appended (Envoy's default action).
    pub fn append(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            append_action: AppendAction::AppendIfExistsOrAdd,
            keep_empty_value: false,
        }
    }

    /// A header that replaces any existing value.
    pub fn set(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            append_action: AppendAction::OverwriteIfExistsOrAdd,
            ..Self::append(key, value)
        }
    }
}

/// Envoy's `HeaderValueOption.HeaderAppendAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppendAction {
    /// Append a value if the header exists, add it otherwise (default).
    #[default]
    AppendIfExistsOrAdd,
    /// Add only when absent.
    AddIfAbsent,
    /// Replace when present, add otherwise.
    OverwriteIfExistsOrAdd,
    /// Replace only when present.
    OverwriteIfExists,
}

/// Envoy's `VirtualHost.require_tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TlsRequirement {
    /// No requirement (default).
    #[default]
    None,
    /// External requests must use TLS; others get a 301 to https.
    ExternalOnly,
    /// All requests must use TLS.
    All,
}

/// A virtual host: a set of domains and the routes that serve them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VirtualHost {
    /// Name, used in stats.
    pub name: String,
    /// Domains: exact, `*.suffix`, `prefix.*` or `*`.
    pub domains: Vec<String>,
    /// Routes, first match wins.
    pub routes: Vec<Route>,
    /// TLS requirement.
    pub require_tls: TlsRequirement,
    /// Virtual clusters (request classification for stats).
    pub virtual_clusters: Vec<VirtualCluster>,
    /// Header mutations at vhost level.
    pub headers: HeaderMutations,
    /// Retry policy for routes that have none.
    pub retry_policy: Option<RetryPolicy>,
    /// Hedge policy for routes that have none.
    pub hedge_policy: Option<HedgePolicy>,
    /// Mirror policies for routes that have none.
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
    /// Per-filter config overrides, keyed by filter name.
    pub typed_per_filter_config: BTreeMap<String, serde_json::Value>,
    /// Send `x-envoy-attempt-count` upstream.
    pub include_request_attempt_count: bool,
    /// Send `x-envoy-attempt-count` downstream.
    pub include_attempt_count_in_response: bool,
    /// Buffer limit for retries and mirroring, in bytes.
    pub per_request_buffer_limit_bytes: Option<u32>,
}

impl VirtualHost {
    /// A virtual host with a name and domains.
    pub fn new<I, S>(name: impl Into<String>, domains: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            name: name.into(),
            domains: domains.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Adds a route (builder style).
    pub fn with_route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }
}

/// A virtual cluster: requests matching its headers are counted under its name.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VirtualCluster {
    /// Name, used in stats.
    pub name: String,
    /// All must match (`:path` and `:method` pseudo-headers are allowed).
    pub headers: Vec<HeaderMatcher>,
}

/// One route: a match and an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Optional name.
    #[serde(default)]
    pub name: String,
    /// What the request must look like.
    #[serde(rename = "match")]
    pub route_match: RouteMatch,
    /// What to do with it.
    pub action: Action,
    /// Header mutations at route level.
    #[serde(default)]
    pub headers: HeaderMutations,
    /// Per-filter config overrides, keyed by filter name.
    #[serde(default)]
    pub typed_per_filter_config: BTreeMap<String, serde_json::Value>,
    /// Buffer limit for retries and mirroring, in bytes.
    #[serde(default)]
    pub per_request_buffer_limit_bytes: Option<u32>,
}

impl Route {
    /// A route forwarding requests under `prefix` to `cluster`.
    pub fn prefix(prefix: impl Into<String>, cluster: impl Into<String>) -> Self {
        Self::new(
            RouteMatch::new(PathMatch::Prefix(prefix.into())),
            Action::Route(RouteAction::cluster(cluster)),
        )
    }

    /// A route forwarding requests for exactly `path` to `cluster`.
    pub fn path(path: impl Into<String>, cluster: impl Into<String>) -> Self {
        Self::new(
            RouteMatch::new(PathMatch::Path(path.into())),
            Action::Route(RouteAction::cluster(cluster)),
        )
    }

    /// A route from a match and an action.
    pub fn new(route_match: RouteMatch, action: Action) -> Self {
        Self {
            name: String::new(),
            route_match,
            action,
            headers: HeaderMutations::default(),
            typed_per_filter_config: BTreeMap::new(),
            per_request_buffer_limit_bytes: None,
        }
    }

    /// Adds a header condition (builder style).
    pub fn with_header(mut self, m: HeaderMatcher) -> Self {
        self.route_match.headers.push(m);
        self
    }
}

/// Conditions on a request; all must hold (Envoy's `RouteMatch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteMatch {
    /// The path condition.
    pub path: PathMatch,
    /// Whether path matching is case sensitive (default true; ignored for regex).
    #[serde(default = "yes")]
    pub case_sensitive: bool,
    /// Match only a fraction of requests.
    #[serde(default)]
    pub runtime_fraction: Option<RuntimeFraction>,
    /// Header conditions.
    #[serde(default)]
    pub headers: Vec<HeaderMatcher>,
    /// Query-parameter conditions.
    #[serde(default)]
    pub query_parameters: Vec<QueryParameterMatcher>,
    /// Match only gRPC requests.
    #[serde(default)]
    pub grpc: bool,
    /// Conditions on the downstream TLS connection.
    #[serde(default)]
    pub tls_context: Option<TlsContextMatch>,
}

fn yes() -> bool {
    true
}

impl RouteMatch {
    /// A case-sensitive match on a path condition alone.
    pub fn new(path: PathMatch) -> Self {
        Self {
            path,
            case_sensitive: true,
            runtime_fraction: None,
            headers: Vec::new(),
            query_parameters: Vec::new(),
            grpc: false,
            tls_context: None,
        }
    }
}

/// The path specifier of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    /// The path starts with this.
    Prefix(String),
    /// The path equals this.
    Path(String),
    /// The whole path matches this regex.
    SafeRegex(String),
    /// The path equals this or continues with `/` after it.
    PathSeparatedPrefix(String),
    /// Only CONNECT requests.
    ConnectMatcher,
    /// A URI template (`/foo/{bar}/**`).
    PathTemplate(String),
}

/// Envoy's `RuntimeFractionalPercent`: a fraction of requests, decided by the stream's random value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeFraction {
    /// The fraction used when the runtime has no value under the key.
    pub default_value: FractionalPercent,
    /// Runtime key: a value under it in the runtime replaces `default_value`.
    #[serde(default)]
    pub runtime_key: String,
}

/// TLS conditions on the downstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsContextMatch {
    /// A certificate was presented.
    pub presented: Option<bool>,
    /// The certificate was validated.
    pub validated: Option<bool>,
}

/// A header condition (Envoy's `HeaderMatcher`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeaderMatcher {
    /// Header name (case-insensitive; pseudo-headers such as `:method` allowed).
    pub name: String,
    /// The condition on its value.
    pub spec: HeaderMatchSpec,
    /// Flip the result.
    #[serde(default)]
    pub invert_match: bool,
    /// Evaluate a missing header as the empty string.
    #[serde(default)]
    pub treat_missing_header_as_empty: bool,
}

impl HeaderMatcher {
    /// The header equals `value`.
    pub fn exact(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(name, HeaderMatchSpec::String(StringMatcher::exact(value)))
    }

    /// The header is present.
    pub fn present(name: impl Into<String>) -> Self {
        Self::new(name, HeaderMatchSpec::Present(true))
    }

    /// A matcher from a name and a spec.
    pub fn new(name: impl Into<String>, spec: HeaderMatchSpec) -> Self {
        Self {
            name: name.into(),
            spec,
            invert_match: false,
            treat_missing_header_as_empty: false,
        }
    }
}

/// The value condition of a [`HeaderMatcher`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderMatchSpec {
    /// A string matcher on the (comma-joined) value.
    String(StringMatcher),
    /// The value parses as an integer in `[start, end)`.
    Range {
        /// Inclusive start.
        start: i64,
        /// Exclusive end.
        end: i64,
    },
    /// The header is present (`true`) or absent (`false`).
    Present(bool),
}

/// Envoy's `StringMatcher`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StringMatcher {
    /// The pattern.
    pub pattern: StringPattern,
    /// Compare ASCII case-insensitively (not for regex).
    #[serde(default)]
    pub ignore_case: bool,
}

impl StringMatcher {
    /// Matches exactly `value`.
    pub fn exact(value: impl Into<String>) -> Self {
        Self {
            pattern: StringPattern::Exact(value.into()),
            ignore_case: false,
        }
    }
}

/// The pattern of a [`StringMatcher`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StringPattern {
    /// Equal.
    Exact(String),
    /// Starts with (non-empty).
    Prefix(String),
    /// Ends with (non-empty).
    Suffix(String),
    /// Contains (non-empty).
    Contains(String),
    /// Full regex match.
    SafeRegex(String),
}

/// A query-parameter condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryParameterMatcher {
    /// Parameter name (case-sensitive).
    pub name: String,
    /// `None` means the parameter must be present.
    pub string_match: Option<StringMatcher>,
}

/// The action of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // plain config data, built once; boxing would only cost ergonomics
pub enum Action {
    /// Forward upstream.
    Route(RouteAction),
    /// Answer with a redirect.
    Redirect(RedirectAction),
    /// Answer with a fixed response.
    DirectResponse(DirectResponseAction),
}

/// Forwarding parameters (Envoy's `RouteAction`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteAction {
    /// Which cluster.
    pub cluster: ClusterSpecifier,
    /// Status when the cluster does not exist (default 503).
    #[serde(default = "default_cluster_not_found")]
    pub cluster_not_found_response_code: u16,
    /// Subset selector for the load balancer (`envoy.lb` metadata).
    #[serde(default)]
    pub metadata_match: BTreeMap<String, serde_json::Value>,
    /// Replace the matched prefix.
    #[serde(default)]
    pub prefix_rewrite: Option<String>,
    /// Regex substitution on the path.
    #[serde(default)]
    pub regex_rewrite: Option<RegexRewrite>,
    /// Host rewrite.
    #[serde(default)]
    pub host_rewrite: Option<HostRewrite>,
    /// Append the original host to `x-forwarded-host` on host rewrite.
    #[serde(default)]
    pub append_x_forwarded_host: bool,
    /// Global timeout; `None` is Envoy's default of 15 s, zero disables.
    #[serde(default, with = "super::duration::option")]
    pub timeout: Option<Duration>,
    /// Stream idle timeout override; zero disables.
    #[serde(default, with = "super::duration::option")]
    pub idle_timeout: Option<Duration>,
    /// Retry policy (replaces the vhost's).
    #[serde(default)]
    pub retry_policy: Option<RetryPolicy>,
    /// Hedge policy (replaces the vhost's).
    #[serde(default)]
    pub hedge_policy: Option<HedgePolicy>,
    /// Mirror policies (replace the vhost's when non-empty).
    #[serde(default)]
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
    /// Hash policies for consistent-hash balancers.
    #[serde(default)]
    pub hash_policy: Vec<HashPolicy>,
    /// Per-route upgrade overrides.
    #[serde(default)]
    pub upgrade_configs: Vec<UpgradeConfig>,
    /// Cap for `grpc-timeout` (deprecated Envoy field, still honoured).
    #[serde(default, with = "super::duration::option")]
    pub max_grpc_timeout: Option<Duration>,
    /// Subtracted from `grpc-timeout`.
    #[serde(default, with = "super::duration::option")]
    pub grpc_timeout_offset: Option<Duration>,
    /// Routing priority (selects circuit-breaker thresholds).
    #[serde(default)]
    pub priority: RoutingPriority,
}

fn default_cluster_not_found() -> u16 {
    503
}

impl RouteAction {
    /// Forward to a named cluster with every other field at its default.
    pub fn cluster(name: impl Into<String>) -> Self {
        Self::new(ClusterSpecifier::Cluster(name.into()))
    }

    /// Forward as `cluster` says, every other field at its default.
    pub fn new(cluster: ClusterSpecifier) -> Self {
        Self {
            cluster,
            cluster_not_found_response_code: 503,
            metadata_match: BTreeMap::new(),
            prefix_rewrite: None,
            regex_rewrite: None,
            host_rewrite: None,
            append_x_forwarded_host: false,
            timeout: None,
            idle_timeout: None,
            retry_policy: None,
            hedge_policy: None,
            request_mirror_policies: Vec::new(),
            hash_policy: Vec::new(),
            upgrade_configs: Vec::new(),
            max_grpc_timeout: None,
            grpc_timeout_offset: None,
            priority: RoutingPriority::Default,
        }
    }

    /// The effective global timeout: the configured one, else 15 s; `None` when disabled.
    pub fn effective_timeout(&self) -> Option<Duration> {
        match self.timeout {
            None => Some(DEFAULT_ROUTE_TIMEOUT),
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
        }
    }
}

/// Envoy's default route timeout.
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

/// How the upstream cluster is chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterSpecifier {
    /// A fixed cluster name.
    Cluster(String),
    /// The first value of this request header names the cluster.
    ClusterHeader(String),
    /// A weighted choice.
    WeightedClusters(WeightedClusters),
}

/// Envoy's `WeightedCluster`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WeightedClusters {
    /// The choices, in order.
    pub clusters: Vec<ClusterWeight>,
    /// Runtime key prefix for weights.
    pub runtime_key_prefix: String,
    /// A request header whose value (a u64) replaces the random value.
    pub header_name: Option<String>,
    /// Use the route's hash policy as the selection value.
    pub use_hash_policy: bool,
}

/// One weighted choice.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterWeight {
    /// Cluster name (or empty with `cluster_header`).
    pub name: String,
    /// The cluster is named by this request header.
    pub cluster_header: Option<String>,
    /// Weight.
    pub weight: u32,
    /// Header mutations applied when this entry is picked.
    pub headers: HeaderMutations,
    /// Host rewrite when picked.
    pub host_rewrite_literal: Option<String>,
    /// Per-filter config overrides.
    pub typed_per_filter_config: BTreeMap<String, serde_json::Value>,
}

/// A regex substitution (`pattern` replaced by `substitution`, `\1` for groups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegexRewrite {
    /// The regex.
    pub pattern: String,
    /// The replacement.
    pub substitution: String,
}

/// How the `Host` is rewritten for the upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostRewrite {
    /// A fixed value.
    Literal(String),
    /// The chosen upstream host's hostname.
    Auto,
    /// The first value of a request header.
    Header(String),
    /// A regex substitution on the path.
    PathRegex(RegexRewrite),
}

/// Envoy's `RedirectAction`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RedirectAction {
    /// New scheme (`https_redirect` is `Some("https")`).
    pub scheme_redirect: Option<String>,
    /// New host.
    pub host_redirect: Option<String>,
    /// New port.
    pub port_redirect: Option<u16>,
    /// New path or prefix.
    pub path_redirect: Option<PathRedirect>,
    /// Status: 301 (default), 302, 303, 307 or 308.
    pub response_code: RedirectCode,
    /// Drop the query.
    pub strip_query: bool,
}

/// The path part of a redirect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathRedirect {
    /// Replace the path.
    Path(String),
    /// Replace the matched prefix.
    Prefix(String),
    /// Regex substitution on the path.
    Regex(RegexRewrite),
}

/// Redirect status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedirectCode {
    /// 301 (default).
    #[default]
    MovedPermanently,
    /// 302.
    Found,
    /// 303.
    SeeOther,
    /// 307.
    TemporaryRedirect,
    /// 308.
    PermanentRedirect,
}

impl RedirectCode {
    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            Self::MovedPermanently => 301,
            Self::Found => 302,
            Self::SeeOther => 303,
            Self::TemporaryRedirect => 307,
            Self::PermanentRedirect => 308,
        }
    }
}

/// Envoy's `DirectResponseAction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectResponseAction {
    /// Status in `[200, 600)`.
    pub status: u16,
    /// Body, if any.
    #[serde(default)]
    pub body: Option<String>,
}

/// Envoy's `RetryPolicy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Comma-separated retry conditions (`5xx,reset,...`).
    #[serde(default)]
    pub retry_on: String,
    /// Retries allowed (default 1).
    #[serde(default = "one")]
    pub num_retries: u32,
    /// Timeout per attempt.
    #[serde(default, with = "super::duration::option")]
    pub per_try_timeout: Option<Duration>,
    /// Idle timeout per attempt.
    #[serde(default, with = "super::duration::option")]
    pub per_try_idle_timeout: Option<Duration>,
    /// Backoff base and cap.
    #[serde(default)]
    pub retry_back_off: Option<BackOff>,
    /// Codes for `retriable-status-codes`.
    #[serde(default)]
    pub retriable_status_codes: Vec<u16>,
    /// Response conditions for `retriable-headers`.
    #[serde(default)]
    pub retriable_headers: Vec<HeaderMatcher>,
    /// Retry only requests matching one of these.
    #[serde(default)]
    pub retriable_request_headers: Vec<HeaderMatcher>,
    /// Host predicates by name (`envoy.retry_host_predicates.previous_hosts`).
    #[serde(default)]
    pub retry_host_predicate: Vec<String>,
    /// Extra picks when a predicate rejects a host (default 1).
    #[serde(default = "one")]
    pub host_selection_retry_max_attempts: u32,
}

fn one() -> u32 {
    1
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retry_on: String::new(),
            num_retries: 1,
            per_try_timeout: None,
            per_try_idle_timeout: None,
            retry_back_off: None,
            retriable_status_codes: Vec::new(),
            retriable_headers: Vec::new(),
            retriable_request_headers: Vec::new(),
            retry_host_predicate: Vec::new(),
            host_selection_retry_max_attempts: 1,
        }
    }
}

/// Retry backoff intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackOff {
    /// Base interval (default 25 ms).
    #[serde(with = "super::duration")]
    pub base_interval: Duration,
    /// Cap (default 10 × base).
    #[serde(default, with = "super::duration::option")]
    pub max_interval: Option<Duration>,
}

/// Envoy's `HedgePolicy` (only `hedge_on_per_try_timeout` has an effect in Envoy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HedgePolicy {
    /// Start another attempt on per-try timeout instead of resetting.
    pub hedge_on_per_try_timeout: bool,
}

/// Envoy's `RequestMirrorPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestMirrorPolicy {
    /// Mirror cluster.
    pub cluster: String,
    /// Or: the cluster named by this header.
    pub cluster_header: Option<String>,
    /// Fraction mirrored (absent: all).
    pub runtime_fraction: Option<RuntimeFraction>,
    /// Do not append `-shadow` to the host.
    pub disable_shadow_host_suffix_append: bool,
}

/// A hash policy for consistent hashing (Envoy's `RouteAction.HashPolicy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashPolicy {
    /// What to hash.
    pub policy: HashOn,
    /// Stop at this policy when it produced a hash.
    #[serde(default)]
    pub terminal: bool,
}

/// The input of a [`HashPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashOn {
    /// A request header.
    Header {
        /// Header name.
        header_name: String,
    },
    /// A cookie (generated with `ttl` when absent and a ttl is set).
    Cookie {
        /// Cookie name.
        name: String,
        /// Lifetime of a generated cookie.
        #[serde(default, with = "super::duration::option")]
        ttl: Option<Duration>,
        /// Path of a generated cookie.
        #[serde(default)]
        path: String,
    },
    /// The downstream source IP.
    SourceIp,
    /// A query parameter.
    QueryParameter {
        /// Parameter name.
        name: String,
    },
    /// A filter-state key.
    FilterState {
        /// The key.
        key: String,
    },
}

/// An HTTP upgrade permission (Envoy's `UpgradeConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeConfig {
    /// Upgrade protocol, e.g. `websocket` (compared case-insensitively).
    pub upgrade_type: String,
    /// Whether allowed (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl UpgradeConfig {
    /// Allows the WebSocket upgrade.
    pub fn websocket() -> Self {
        Self {
            upgrade_type: "websocket".into(),
            enabled: true,
        }
    }
}
