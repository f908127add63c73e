//! Built-in HTTP filters. They register in the [`FilterRegistry`] exactly as a user's filters
//! do, under Envoy's names and type URLs, so a bootstrap names them the way it would for Envoy.

pub(crate) mod cors;
pub(crate) mod fault;

use std::sync::Arc;

use mesh_core::filter::FilterRegistry;
use mesh_core::stats::Registry;

/// Registers every built-in filter.
pub(crate) fn register(registry: &mut FilterRegistry, stats: &Arc<Registry>) {
    fault::register(registry, stats);
    cors::register(registry);
}

/// Reads `key` or its lowerCamelCase spelling from a JSON object (Envoy's JSON mapping accepts
/// both).
pub(crate) fn field<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    v.get(key).or_else(|| v.get(camel(key).as_str()))
}

/// A snake_case key's lowerCamelCase spelling.
pub(crate) fn camel(key: &str) -> String {
    let mut camel = String::with_capacity(key.len());
    let mut up = false;
    for c in key.chars() {
        if c == '_' {
            up = true;
        } else if up {
            camel.extend(c.to_uppercase());
            up = false;
        } else {
            camel.push(c);
        }
    }
    camel
}

/// A protobuf wrapper or a plain number: `3` or `{value: 3}`.
pub(crate) fn uint(v: &serde_json::Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.get("value").and_then(serde_json::Value::as_u64))
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}
