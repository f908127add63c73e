//! Envoy's CORS filter (`envoy.filters.http.cors`) with per-route policies.
//!
//! The policy comes from the route's (or virtual host's) `typed_per_filter_config` under the
//! filter's name (Envoy's `CorsPolicy`; Istio's `corsPolicy` translates to it), or from the
//! filter's own config. A preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) from an allowed origin is answered locally; an actual
//! request from an allowed origin gets `Access-Control-Allow-Origin` (and
//! `-Expose-Headers`, `-Allow-Credentials`) on its response. Requests from other origins pass
//! through untouched.

use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderValue, Method, StatusCode, header};
use mesh_core::BoxError;
use mesh_core::filter::{
    FilterContext, FilterRegistry, Flow, HttpFilter, LocalReply, RequestHead, ResponseHead,
    RouteConfig,
};
use mesh_route::HeaderMatch;
use serde_json::{Value, json};

use super::{Bool, PercentSpec};

/// The filter's name.
pub(crate) const NAME: &str = "envoy.filters.http.cors";
const TYPE_URL: &str = "envoy.extensions.filters.http.cors.v3.Cors";

pub(crate) fn register(registry: &mut FilterRegistry) {
    for name in [NAME, TYPE_URL] {
        registry.register_typed(name, |spec: PolicySpec| {
            Ok::<_, BoxError>(Cors {
                policy: Policy::from_spec(spec)?,
            })
        });
    }
}

/// One CORS policy.
#[derive(Debug, Default)]
struct Policy {
    origins: Vec<HeaderMatch>,
    allow_methods: Option<String>,
    allow_headers: Option<String>,
    expose_headers: Option<String>,
    max_age: Option<String>,
    allow_credentials: bool,
}

fn err(path: &str, msg: impl std::fmt::Display) -> BoxError {
    format!("{path}: {msg}").into()
}

/// Envoy's `CorsPolicy` as serde reads it (snake_case or lowerCamelCase); unknown fields are
/// errors.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySpec {
    #[serde(rename = "@type", default)]
    _type: Option<String>,
    #[serde(default, alias = "allowOriginStringMatch")]
    allow_origin_string_match: Vec<Value>,
    #[serde(default, alias = "allowMethods")]
    allow_methods: Option<String>,
    #[serde(default, alias = "allowHeaders")]
    allow_headers: Option<String>,
    #[serde(default, alias = "exposeHeaders")]
    expose_headers: Option<String>,
    #[serde(default, alias = "maxAge")]
    max_age: Option<String>,
    #[serde(default, alias = "allowCredentials")]
    allow_credentials: Option<Bool>,
    #[serde(default, alias = "filterEnabled")]
    filter_enabled: Option<EnabledSpec>,
}

/// `filter_enabled` (a runtime fractional percent): only `default_value` is read.
#[derive(Debug, Default, serde::Deserialize)]
struct EnabledSpec {
    #[serde(default, alias = "defaultValue")]
    default_value: Option<PercentSpec>,
}

impl Policy {
    /// Parses Envoy's `CorsPolicy`; `None` for an empty config (the filter then does nothing).
    fn parse(v: &Value) -> Result<Option<Self>, BoxError> {
        Self::from_spec(mesh_core::filter::parse_config(v)?)
    }

    fn from_spec(spec: PolicySpec) -> Result<Option<Self>, BoxError> {
        if let Some(enabled) = &spec.filter_enabled
            && enabled
                .default_value
                .as_ref()
                .is_some_and(|p| p.numerator.is_some_and(|n| n.0 == 0))
        {
            return Ok(None);
        }
        let empty = spec._type.is_none()
            && spec.allow_origin_string_match.is_empty()
            && spec.allow_methods.is_none()
            && spec.allow_headers.is_none()
            && spec.expose_headers.is_none()
            && spec.max_age.is_none()
            && spec.allow_credentials.is_none()
            && spec.filter_enabled.is_none();
        if empty {
            return Ok(None);
        }
        let mut p = Policy::default();
        for (i, m) in spec.allow_origin_string_match.iter().enumerate() {
            let path = format!("allow_origin_string_match[{i}]");
            let matcher = mesh_xds::envoy::parse_header_matcher(
                &json!({"name": "origin", "string_match": m}),
            )
            .map_err(|e| err(&path, e))?;
            p.origins
                .push(HeaderMatch::new(&matcher).map_err(|e| err(&path, e))?);
        }
        p.allow_methods = spec.allow_methods;
        p.allow_headers = spec.allow_headers;
        p.expose_headers = spec.expose_headers;
        p.max_age = spec.max_age;
        p.allow_credentials = spec.allow_credentials.is_some_and(|b| b.0);
        Ok(Some(p))
    }

    fn allows(&self, req: &RequestHead) -> bool {
        self.origins.iter().any(|m| m.matches(req))
    }
}

/// The CORS filter.
#[derive(Debug)]
pub(crate) struct Cors {
    policy: Option<Policy>,
}

/// The allowed origin of a request, for the response phase.
#[derive(Debug, Clone)]
struct Allowed {
    origin: HeaderValue,
    expose: Option<HeaderValue>,
    credentials: bool,
}

fn value(s: &Option<String>) -> Option<HeaderValue> {
    s.as_deref().and_then(|s| HeaderValue::from_str(s).ok())
}

#[async_trait]
impl HttpFilter for Cors {
    fn parse_route_config(&self, config: &Value) -> Result<RouteConfig, BoxError> {
        Ok(Arc::new(Policy::parse(config)?))
    }

    async fn on_request(&self, req: &mut RequestHead, cx: &mut FilterContext) -> Flow {
        let Some(origin) = req.headers.get(header::ORIGIN).cloned() else {
            return Flow::Continue;
        };
        // The route's policy was parsed when the config was compiled (parse_route_config).
        let route_policy = cx.route_config_arc::<Option<Policy>>(NAME);
        let Some(policy) = route_policy
            .as_deref()
            .and_then(Option::as_ref)
            .or(self.policy.as_ref())
        else {
            return Flow::Continue;
        };
        if !policy.allows(req) {
            return Flow::Continue;
        }
        let preflight = req.method == Method::OPTIONS
            && req
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            let mut r = LocalReply::new(StatusCode::OK)
                .with_header(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            if let Some(v) = value(&policy.allow_methods) {
                r = r.with_header(header::ACCESS_CONTROL_ALLOW_METHODS, v);
            }
            if let Some(v) = value(&policy.allow_headers) {
                r = r.with_header(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
            if let Some(v) = value(&policy.max_age) {
                r = r.with_header(header::ACCESS_CONTROL_MAX_AGE, v);
            }
            if policy.allow_credentials {
                r = r.with_header(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            return Flow::Reply(r);
        }
        cx.extensions_mut().insert(Allowed {
            origin,
            expose: value(&policy.expose_headers),
            credentials: policy.allow_credentials,
        });
        Flow::Continue
    }

    async fn on_response(&self, resp: &mut ResponseHead, cx: &mut FilterContext) {
        let Some(a) = cx.extensions().get::<Allowed>() else {
            return;
        };
        resp.headers
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, a.origin.clone());
        if let Some(e) = &a.expose {
            resp.headers
                .insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
        }
        if a.credentials {
            resp.headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}
