//! Envoy's fault-injection filter (`envoy.filters.http.fault`, SEMANTICS.md §7): a fixed or
//! header-controlled delay and an HTTP or gRPC abort, each with its own probability, before the
//! request reaches the router. Per-route config (`typed_per_filter_config`) replaces the
//! listener's. Delays set flag `DI`, aborts `FI`; stats `fault.delays_injected`,
//! `fault.aborts_injected`, `fault.faults_overflow`, `fault.active_faults`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderName, HeaderValue, StatusCode};
use mesh_core::BoxError;
use mesh_core::config::FractionalPercent;
use mesh_core::filter::{
    FilterContext, FilterRegistry, Flow, HttpFilter, LocalReply, RequestHead, RouteConfig,
};
use mesh_core::flags::ResponseFlags;
use mesh_core::stats::{Counter, Gauge, Registry, StatName};
use mesh_route::HeaderMatch;
use serde_json::Value;

use super::{PercentSpec, Uint, field};

/// The filter's name.
pub(crate) const NAME: &str = "envoy.filters.http.fault";
const TYPE_URL: &str = "envoy.extensions.filters.http.fault.v3.HTTPFault";

static DELAY_HEADER: HeaderName = HeaderName::from_static("x-envoy-fault-delay-request");
static DELAY_PERCENT_HEADER: HeaderName =
    HeaderName::from_static("x-envoy-fault-delay-request-percentage");
static ABORT_HEADER: HeaderName = HeaderName::from_static("x-envoy-fault-abort-request");
static ABORT_GRPC_HEADER: HeaderName = HeaderName::from_static("x-envoy-fault-abort-grpc-request");
static ABORT_PERCENT_HEADER: HeaderName =
    HeaderName::from_static("x-envoy-fault-abort-request-percentage");
static NODE_HEADER: HeaderName = HeaderName::from_static("x-envoy-downstream-service-node");

pub(crate) fn register(registry: &mut FilterRegistry, stats: &Arc<Registry>) {
    for name in [NAME, TYPE_URL] {
        let stats = Arc::clone(stats);
        registry.register_typed(name, move |spec: FaultSpec| Fault::new(spec, &stats));
    }
}

/// Applies Envoy's fault runtime keys to a fault filter config (the listener's or a
/// route's): `fault.http.abort.abort_percent` and `fault.http.delay.fixed_delay_percent`
/// replace the numerators (denominators stay), `fault.http.abort.http_status` the abort's
/// HTTP status, `fault.http.delay.fixed_duration_ms` the fixed delay; a config may name other
/// keys (`abort_percent_runtime`, …). Other filters' configs are left alone.
pub(crate) fn apply_runtime(
    rt: &mesh_core::runtime::Runtime,
    f: mesh_core::runtime::FilterConfig<'_>,
) {
    let is_fault = f.name == NAME
        || f.type_url
            .is_some_and(|t| t.rsplit('/').next() == Some(TYPE_URL));
    if !is_fault {
        return;
    }
    let cfg = f.config;
    let key = |field_name: &str, default: &str| {
        field(cfg, field_name)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_owned()
    };
    let abort_percent = key("abort_percent_runtime", "fault.http.abort.abort_percent");
    let abort_status = key("abort_http_status_runtime", "fault.http.abort.http_status");
    let delay_percent = key(
        "delay_percent_runtime",
        "fault.http.delay.fixed_delay_percent",
    );
    let delay_ms = key(
        "delay_duration_runtime",
        "fault.http.delay.fixed_duration_ms",
    );
    if let Some(abort) = cfg.get_mut("abort").filter(|a| a.is_object()) {
        if let Some(n) = rt.u64(&abort_percent) {
            set_numerator(abort, n);
        }
        if let Some(s) = rt.u64(&abort_status)
            && field(abort, "http_status").is_some()
        {
            replace(abort, "http_status", s.into());
        }
    }
    if let Some(delay) = cfg.get_mut("delay").filter(|d| d.is_object()) {
        if let Some(n) = rt.u64(&delay_percent) {
            set_numerator(delay, n);
        }
        if let Some(ms) = rt.u64(&delay_ms)
            && field(delay, "fixed_delay").is_some()
        {
            replace(
                delay,
                "fixed_delay",
                format!("{}s", ms as f64 / 1000.0).into(),
            );
        }
    }
}

/// Sets `key` in its snake_case spelling, removing a lowerCamelCase one.
fn replace(section: &mut Value, key: &str, value: Value) {
    if let Some(m) = section.as_object_mut() {
        m.remove(&super::camel(key));
        m.insert(key.to_owned(), value);
    }
}

fn set_numerator(section: &mut Value, n: u64) {
    let Some(m) = section.as_object_mut() else {
        return;
    };
    let p = m
        .entry("percentage")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !p.is_object() {
        *p = Value::Object(serde_json::Map::new());
    }
    p["numerator"] = n.into();
}

#[derive(Debug, Clone)]
enum DelaySource {
    Fixed(Duration),
    Header,
}

/// An abort decided for one request.
#[derive(Debug, Clone, Copy)]
enum Abort {
    Http(StatusCode),
    Grpc(u32),
}

#[derive(Debug, Clone)]
enum AbortSource {
    Http(StatusCode),
    Grpc(u32),
    Header,
}

/// One parsed fault config (the filter's own, or a route's override).
#[derive(Debug, Clone, Default)]
struct FaultConfig {
    delay: Option<(DelaySource, FractionalPercent)>,
    abort: Option<(AbortSource, FractionalPercent)>,
    headers: Vec<HeaderMatch>,
    downstream_nodes: Vec<String>,
    max_active_faults: Option<u64>,
}

fn err(path: &str, msg: impl std::fmt::Display) -> BoxError {
    format!("{path}: {msg}").into()
}

/// Envoy's `HTTPFault` as serde reads it (snake_case or lowerCamelCase); unknown fields are
/// errors, so an unsupported fault (`response_rate_limit`) is never silently skipped.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    #[serde(rename = "@type", default)]
    _type: Option<String>,
    #[serde(default)]
    delay: Option<DelaySpec>,
    #[serde(default)]
    abort: Option<AbortSpec>,
    #[serde(default)]
    headers: Vec<Value>,
    #[serde(default, alias = "downstreamNodes")]
    downstream_nodes: Vec<String>,
    #[serde(default, alias = "maxActiveFaults")]
    max_active_faults: Option<Uint>,
}

#[derive(Debug, serde::Deserialize)]
struct DelaySpec {
    #[serde(default, alias = "fixedDelay")]
    fixed_delay: Option<String>,
    #[serde(default, alias = "headerDelay")]
    header_delay: Option<Value>,
    #[serde(default)]
    percentage: Option<PercentSpec>,
}

#[derive(Debug, serde::Deserialize)]
struct AbortSpec {
    #[serde(default, alias = "httpStatus")]
    http_status: Option<Uint>,
    #[serde(default, alias = "grpcStatus")]
    grpc_status: Option<Uint>,
    #[serde(default, alias = "headerAbort")]
    header_abort: Option<Value>,
    #[serde(default)]
    percentage: Option<PercentSpec>,
}

/// Unset means 0%: the fault never fires (Envoy's and Istio's reading).
fn percentage(p: Option<&PercentSpec>) -> FractionalPercent {
    p.map_or(FractionalPercent::percent(0), PercentSpec::resolve)
}

impl FaultConfig {
    fn parse(v: &Value) -> Result<Self, BoxError> {
        Self::from_spec(mesh_core::filter::parse_config(v)?)
    }

    /// Checks what serde cannot (one of each source, ranges) and compiles the matchers.
    fn from_spec(spec: FaultSpec) -> Result<Self, BoxError> {
        let mut cfg = FaultConfig::default();
        if let Some(d) = spec.delay {
            let source = if let Some(fixed) = &d.fixed_delay {
                let dur = mesh_core::config::duration::parse(fixed)
                    .map_err(|e| err("delay.fixed_delay", e))?;
                if dur.is_zero() {
                    return Err(err("delay.fixed_delay", "must be greater than 0"));
                }
                DelaySource::Fixed(dur)
            } else if d.header_delay.is_some() {
                DelaySource::Header
            } else {
                return Err(err("delay", "needs fixed_delay or header_delay"));
            };
            cfg.delay = Some((source, percentage(d.percentage.as_ref())));
        }
        if let Some(a) = spec.abort {
            let source = if let Some(Uint(code)) = a.http_status {
                let code = u16::try_from(code)
                    .ok()
                    .filter(|c| (200..600).contains(c))
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .ok_or_else(|| err("abort.http_status", "must be in [200, 600)"))?;
                AbortSource::Http(code)
            } else if let Some(Uint(code)) = a.grpc_status {
                let code = u32::try_from(code)
                    .map_err(|_| err("abort.grpc_status", "must be a gRPC status code"))?;
                AbortSource::Grpc(code)
            } else if a.header_abort.is_some() {
                AbortSource::Header
            } else {
                return Err(err(
                    "abort",
                    "needs http_status, grpc_status or header_abort",
                ));
            };
            cfg.abort = Some((source, percentage(a.percentage.as_ref())));
        }
        for (i, h) in spec.headers.iter().enumerate() {
            let m = mesh_xds::envoy::parse_header_matcher(h)
                .map_err(|e| err(&format!("headers[{i}]"), e))?;
            cfg.headers
                .push(HeaderMatch::new(&m).map_err(|e| err(&format!("headers[{i}]"), e))?);
        }
        cfg.downstream_nodes = spec.downstream_nodes;
        cfg.max_active_faults = spec.max_active_faults.map(|n| n.0);
        Ok(cfg)
    }
}

/// The fault filter.
#[derive(Debug)]
pub(crate) struct Fault {
    config: FaultConfig,
    active: Arc<AtomicU64>,
    stats: Arc<FaultStats>,
}

#[derive(Debug)]
struct FaultStats {
    delays: Arc<Counter>,
    aborts: Arc<Counter>,
    overflow: Arc<Counter>,
    active: Arc<Gauge>,
}

impl Fault {
    fn new(spec: FaultSpec, stats: &Registry) -> Result<Self, BoxError> {
        Ok(Self {
            config: FaultConfig::from_spec(spec)?,
            active: Arc::default(),
            stats: Arc::new(FaultStats {
                delays: stats.counter(StatName::plain("fault.delays_injected")),
                aborts: stats.counter(StatName::plain("fault.aborts_injected")),
                overflow: stats.counter(StatName::plain("fault.faults_overflow")),
                active: stats.gauge(StatName::plain("fault.active_faults")),
            }),
        })
    }
}

/// Counts a fault as active until dropped.
struct ActiveFault(Arc<AtomicU64>, Arc<FaultStats>);

impl Drop for ActiveFault {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        self.1.active.dec();
    }
}

/// The request's fault headers, read only when it may have any.
struct FaultHeaders<'r> {
    req: &'r RequestHead,
    any: bool,
}

impl<'r> FaultHeaders<'r> {
    fn of(req: &'r RequestHead) -> Self {
        // Most requests carry none: one pass over a few names is cheaper than hashing each
        // of these long names for a lookup.
        let any = req.headers.keys_len() > 8
            || req
                .headers
                .keys()
                .any(|k| k.as_str().starts_with("x-envoy-fault-"));
        Self { req, any }
    }

    fn u64(&self, name: &HeaderName) -> Option<u64> {
        if !self.any {
            return None;
        }
        self.req
            .headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// The configured percentage, lowered (never raised) by a request header.
fn effective(p: FractionalPercent, h: &FaultHeaders<'_>, header: &HeaderName) -> FractionalPercent {
    match h.u64(header) {
        Some(n) => FractionalPercent {
            numerator: p.numerator.min(u32::try_from(n).unwrap_or(u32::MAX)),
            ..p
        },
        None => p,
    }
}

#[async_trait]
impl HttpFilter for Fault {
    fn parse_route_config(&self, config: &Value) -> Result<RouteConfig, BoxError> {
        Ok(Arc::new(FaultConfig::parse(config)?))
    }

    async fn on_request(&self, req: &mut RequestHead, cx: &mut FilterContext) -> Flow {
        // The route's config was parsed when the config was compiled (parse_route_config).
        let route_cfg = cx.route_config_arc::<FaultConfig>(NAME);
        let cfg = route_cfg.as_deref().unwrap_or(&self.config);
        if cfg.delay.is_none() && cfg.abort.is_none() {
            return Flow::Continue;
        }
        if !cfg.headers.iter().all(|m| m.matches(req)) {
            return Flow::Continue;
        }
        if !cfg.downstream_nodes.is_empty() {
            let node = req.headers.get(&NODE_HEADER).and_then(|v| v.to_str().ok());
            if !node.is_some_and(|n| cfg.downstream_nodes.iter().any(|d| d == n)) {
                return Flow::Continue;
            }
        }
        if let Some(max) = cfg.max_active_faults
            && self.active.load(Ordering::Acquire) >= max
        {
            self.stats.overflow.inc();
            return Flow::Continue;
        }

        let mut _active = None;
        let mut start_fault = || {
            if _active.is_none() {
                self.active.fetch_add(1, Ordering::AcqRel);
                self.stats.active.inc();
                _active = Some(ActiveFault(
                    Arc::clone(&self.active),
                    Arc::clone(&self.stats),
                ));
            }
        };

        let h = FaultHeaders::of(req);
        if let Some((source, pct)) = &cfg.delay {
            let delay = match source {
                DelaySource::Fixed(d) => Some(*d),
                DelaySource::Header => h.u64(&DELAY_HEADER).map(Duration::from_millis),
            };
            if let Some(delay) = delay.filter(|d| !d.is_zero())
                && effective(*pct, &h, &DELAY_PERCENT_HEADER).enabled(cx.random_u64())
            {
                start_fault();
                self.stats.delays.inc();
                cx.set_flag(ResponseFlags::DELAY_INJECTED);
                tokio::time::sleep(delay).await;
            }
        }

        if let Some((source, pct)) = &cfg.abort {
            let abort = match source {
                AbortSource::Http(s) => Some(Abort::Http(*s)),
                AbortSource::Grpc(g) => Some(Abort::Grpc(*g)),
                AbortSource::Header => h
                    .u64(&ABORT_HEADER)
                    .and_then(|c| u16::try_from(c).ok())
                    .filter(|c| (200..600).contains(c))
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .map(Abort::Http)
                    .or_else(|| {
                        h.u64(&ABORT_GRPC_HEADER)
                            .and_then(|g| u32::try_from(g).ok())
                            .map(Abort::Grpc)
                    }),
            };
            if let Some(abort) = abort
                && effective(*pct, &h, &ABORT_PERCENT_HEADER).enabled(cx.random_u64())
            {
                start_fault();
                self.stats.aborts.inc();
                let reply = match abort {
                    // gRPC aborts are trailers-only responses: HTTP 200 with grpc-status.
                    Abort::Grpc(code) => LocalReply::new(StatusCode::OK)
                        .with_header(
                            http::header::CONTENT_TYPE,
                            HeaderValue::from_static("application/grpc"),
                        )
                        .with_header(
                            http::HeaderName::from_static("grpc-status"),
                            HeaderValue::from(code),
                        )
                        .with_header(
                            http::HeaderName::from_static("grpc-message"),
                            HeaderValue::from_static("fault filter abort"),
                        ),
                    Abort::Http(status) => LocalReply::new(status).with_body("fault filter abort"),
                };
                return Flow::Reply(reply.with_flag(ResponseFlags::FAULT_INJECTED));
            }
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_keys_replace_percent_status_and_delay_in_either_spelling() {
        use mesh_core::config::LayeredRuntime;
        use mesh_core::runtime::{FilterConfig, Runtime};
        let admin = [
            ("fault.http.abort.abort_percent", "100"),
            ("fault.http.abort.http_status", "418"),
            ("fault.http.delay.fixed_duration_ms", "1500"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let rt = Runtime::new(&LayeredRuntime::default(), &admin);
        let mut cfg = serde_json::json!({
            "abort": {"httpStatus": 503, "percentage": {"numerator": 0, "denominator": "MILLION"}},
            "delay": {"fixedDelay": "7s", "percentage": {"numerator": 10}},
        });
        apply_runtime(
            &rt,
            FilterConfig {
                name: NAME,
                type_url: None,
                config: &mut cfg,
            },
        );
        assert_eq!(
            cfg,
            serde_json::json!({
                "abort": {"http_status": 418, "percentage": {"numerator": 100, "denominator": "MILLION"}},
                "delay": {"fixed_delay": "1.5s", "percentage": {"numerator": 10}},
            })
        );
        let mut other = serde_json::json!({"abort": {"http_status": 503}});
        let before = other.clone();
        apply_runtime(
            &rt,
            FilterConfig {
                name: "acme.other",
                type_url: None,
                config: &mut other,
            },
        );
        assert_eq!(other, before, "other filters are left alone");
    }

    #[test]
    fn parses_envoy_and_istio_shapes() {
        let c = FaultConfig::parse(&serde_json::json!({
            "delay": {"fixed_delay": "7s", "percentage": {"numerator": 100}},
            "abort": {"http_status": 500, "percentage": {"numerator": 500000, "denominator": "MILLION"}},
            "max_active_faults": {"value": 3},
        }))
        .unwrap();
        assert!(
            matches!(c.delay, Some((DelaySource::Fixed(d), p)) if d == Duration::from_secs(7) && p.numerator == 100)
        );
        assert!(
            matches!(c.abort, Some((AbortSource::Http(s), p)) if s == 500 && p.numerator == 500_000)
        );
        assert_eq!(c.max_active_faults, Some(3));
    }

    #[test]
    fn bad_configs_name_the_field() {
        let e = FaultConfig::parse(&serde_json::json!({"abort": {"http_status": 99}})).unwrap_err();
        assert_eq!(e.to_string(), "abort.http_status: must be in [200, 600)");
        let e = FaultConfig::parse(&serde_json::json!({"delay": {"percentage": {}}})).unwrap_err();
        assert_eq!(e.to_string(), "delay: needs fixed_delay or header_delay");
        let e = FaultConfig::parse(&serde_json::json!({"response_rate_limit": {}})).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("response_rate_limit: unknown field `response_rate_limit`"),
            "{e}"
        );
        let e = FaultConfig::parse(&serde_json::json!({"abort": {"http_status": 503, "percentage": {"numerator": 5, "denominator": "THOUSAND"}}}))
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("abort.percentage.denominator: unknown denominator \"THOUSAND\""),
            "{e}"
        );
        let e = FaultConfig::parse(&serde_json::json!({"delay": {"fixed_delay": 5}})).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("delay.fixed_delay: invalid type: integer `5`"),
            "{e}"
        );
    }

    #[test]
    fn unset_percentage_never_fires_and_numerators_cap_at_the_denominator() {
        let c = FaultConfig::parse(&serde_json::json!({"abort": {"http_status": 503}})).unwrap();
        let (_, p) = c.abort.unwrap();
        assert!((0..1000).all(|r| !p.enabled(r)));
        let spec: PercentSpec =
            mesh_core::filter::parse_config(&serde_json::json!({"numerator": 250})).unwrap();
        let p = percentage(Some(&spec));
        assert!((0..1000).all(|r| p.enabled(r)));
    }
}
