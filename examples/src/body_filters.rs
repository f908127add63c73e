//! Two more filters of the `custom-filter` example, for the hooks `api_key` does not use:
//!
//! - [`Redact`] (`acme.redact`) rewrites response bodies: it buffers each one (up to a limit,
//!   with [`Buffered`]) and replaces a word in it. Its config is a serde type, registered with
//!   `filter_typed`, so a mistake in the YAML names the field.
//! - [`HostFromPick`] (`acme.host_from_pick`) runs after the balancer has picked a host for
//!   an attempt, and sends that host as the upstream request's `Host`: what an upstream that
//!   only answers to its own address needs (Envoy's `auto_host_rewrite` for DNS clusters).
//!
//! ```yaml
//! http_filters:
//! - name: acme.redact
//!   typed_config:
//!     "@type": type.googleapis.com/xds.type.v3.TypedStruct
//!     type_url: acme.redact
//!     value: { word: secret, with: "******" }
//! - name: acme.host_from_pick
//! - name: envoy.filters.http.router
//! ```

use async_trait::async_trait;
use mesh_core::filter::{
    BodyFilter, Buffered, FilterContext, HttpFilter, RequestHead, ResponseHead, UpstreamInfo,
};

/// The config of [`Redact`].
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactConfig {
    /// The word to hide (required, not empty).
    pub word: String,
    /// What it becomes (default `***`).
    #[serde(default = "stars")]
    pub with: String,
    /// The largest body rewritten, in bytes (default 64 KiB); a longer one is reset, never
    /// passed through unredacted.
    #[serde(default = "default_limit")]
    pub max_bytes: usize,
}

fn stars() -> String {
    "***".into()
}

fn default_limit() -> usize {
    64 * 1024
}

/// Replaces a word in every response body.
#[derive(Debug, Clone)]
pub struct Redact(RedactConfig);

impl Redact {
    /// The filter's registered name.
    pub const NAME: &'static str = "acme.redact";

    /// Builds the filter from its typed config.
    ///
    /// # Errors
    /// When `word` is empty.
    pub fn new(config: RedactConfig) -> Result<Self, mesh_core::BoxError> {
        if config.word.is_empty() {
            return Err("`word` must not be empty".into());
        }
        Ok(Self(config))
    }
}

#[async_trait]
impl HttpFilter for Redact {
    fn response_body(
        &self,
        _resp: &ResponseHead,
        _cx: &FilterContext,
    ) -> Option<Box<dyn BodyFilter>> {
        let RedactConfig {
            word,
            with,
            max_bytes,
        } = self.0.clone();
        Some(Box::new(Buffered::new(max_bytes, move |body| {
            let text = String::from_utf8_lossy(&body).replace(&word, &with);
            Ok(text.into())
        })))
    }
}

/// Sends the picked host as each upstream request's `Host`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostFromPick;

impl HostFromPick {
    /// The filter's registered name.
    pub const NAME: &'static str = "acme.host_from_pick";
}

#[async_trait]
impl HttpFilter for HostFromPick {
    fn on_upstream_request(&self, req: &mut RequestHead, up: &UpstreamInfo<'_>) {
        let host = format!("{}:{}", up.host.host, up.host.port);
        if let Ok(v) = http::HeaderValue::from_str(&host) {
            req.headers.insert(http::header::HOST, v);
        }
    }
}
