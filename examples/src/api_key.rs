//! A user's own filter: reject requests without an API key header, stamp a response header.
//!
//! Registered by name (`acme.api_key`) and configured from YAML through Envoy's `TypedStruct`:
//!
//! ```yaml
//! http_filters:
//! - name: acme.api_key
//!   typed_config:
//!     "@type": type.googleapis.com/xds.type.v3.TypedStruct
//!     type_url: acme.api_key
//!     value: { header: x-api-key, keys: [secret-1], stamp: x-checked-by }
//! - name: envoy.filters.http.router
//! ```

use async_trait::async_trait;
use mesh_core::BoxError;
use mesh_core::filter::{FilterContext, Flow, HttpFilter, LocalReply, RequestHead, ResponseHead};

/// Rejects requests whose API key header is missing or not one of the configured keys.
#[derive(Debug, Clone)]
pub struct ApiKey {
    header: http::HeaderName,
    keys: Vec<String>,
    stamp: Option<http::HeaderName>,
}

/// Marker left in the request context for the response phase.
#[derive(Debug, Clone)]
struct Checked;

impl ApiKey {
    /// The filter's registered name.
    pub const NAME: &'static str = "acme.api_key";

    /// Builds the filter from its YAML config: `header` (required), `keys` (required, non-empty),
    /// `stamp` (optional response header set on requests that passed).
    ///
    /// # Errors
    /// A message naming the field at fault.
    pub fn from_config(cfg: &serde_json::Value) -> Result<Self, BoxError> {
        let header = cfg
            .get("header")
            .and_then(|v| v.as_str())
            .ok_or("`header` is required and must be a string")?;
        let header = http::HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| format!("`header`: {header:?} is not a valid header name"))?;
        let keys: Vec<String> = cfg
            .get("keys")
            .and_then(|v| v.as_array())
            .ok_or("`keys` is required and must be a list")?
            .iter()
            .map(|k| {
                k.as_str()
                    .map(str::to_owned)
                    .ok_or("`keys` must hold strings")
            })
            .collect::<Result<_, _>>()?;
        if keys.is_empty() {
            return Err("`keys` must not be empty".into());
        }
        let stamp = match cfg.get("stamp").and_then(|v| v.as_str()) {
            Some(s) => Some(
                http::HeaderName::from_bytes(s.as_bytes())
                    .map_err(|_| format!("`stamp`: {s:?} is not a valid header name"))?,
            ),
            None => None,
        };
        Ok(Self {
            header,
            keys,
            stamp,
        })
    }
}

#[async_trait]
impl HttpFilter for ApiKey {
    async fn on_request(&self, req: &mut RequestHead, cx: &mut FilterContext) -> Flow {
        let ok = req
            .headers
            .get(&self.header)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|k| self.keys.iter().any(|key| key == k));
        if !ok {
            return Flow::Reply(
                LocalReply::new(http::StatusCode::UNAUTHORIZED)
                    .with_body("missing or unknown API key\n"),
            );
        }
        // The key stays with the proxy.
        req.headers.remove(&self.header);
        cx.extensions_mut().insert(Checked);
        Flow::Continue
    }

    async fn on_response(&self, resp: &mut ResponseHead, cx: &mut FilterContext) {
        if let Some(stamp) = &self.stamp
            && cx.extensions().get::<Checked>().is_some()
        {
            resp.headers.insert(
                stamp.clone(),
                http::HeaderValue::from_static("acme.api_key"),
            );
        }
    }
}
