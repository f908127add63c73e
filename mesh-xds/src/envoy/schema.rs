//! Envoy's v3 API schema, to tell a field Envoy does not have (a typo: an error, as Envoy
//! refuses it) from one Envoy has and this proxy does not implement (a warning).
//!
//! The schema is the protobuf descriptor set of Envoy's data-plane API as the `envoy-types`
//! crate ships it, without its comments (`mesh-xds/schema/envoy-v3.descriptor.bin`, made by
//! `mesh-xds/schema/regenerate.sh`); nothing here writes Envoy's fields down by hand.
//!
//! The walk follows the JSON mapping: snake_case or lowerCamelCase names, oneof members as
//! fields, maps, `google.protobuf.Any` resolved by its `@type` (a type the schema does not
//! have, such as a user's filter, is not checked), and free-form `Struct` values left alone.
//! A name Envoy reserved (a v2 field removed in v3) is not reported here: the readers decide
//! about those.

use serde_json::Value;

use super::{at, join};

mod tables {
    include!(concat!(env!("OUT_DIR"), "/envoy_schema.rs"));
}

const LIST: u8 = 1;
const MAP: u8 = 2;
const NAME: u8 = 4;

/// One message of the schema: its fields (by proto and JSON name, sorted) and the names it
/// reserved.
struct Message {
    name: &'static str,
    fields: &'static [(&'static str, &'static str, u8)],
    reserved: &'static [&'static str],
}

fn message(name: &str) -> Option<Message> {
    let i = tables::MESSAGES
        .binary_search_by(|(n, _, _)| (*n).cmp(name))
        .ok()?;
    let (name, fields, reserved) = tables::MESSAGES[i];
    Some(Message {
        name,
        fields,
        reserved,
    })
}

impl Message {
    /// The field named `key` (proto or JSON name): its message type (`""` for scalars and
    /// enums) and flags.
    fn field(&self, key: &str) -> Option<(&'static str, u8)> {
        let i = self
            .fields
            .binary_search_by(|(n, _, _)| (*n).cmp(key))
            .ok()?;
        Some((self.fields[i].1, self.fields[i].2))
    }
}

/// Envoy's bootstrap.
pub(crate) const BOOTSTRAP: &str = "envoy.config.bootstrap.v3.Bootstrap";
/// Envoy's route configuration.
pub(crate) const ROUTE_CONFIGURATION: &str = "envoy.config.route.v3.RouteConfiguration";
/// Envoy's cluster.
pub(crate) const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";

/// Every field of `doc` that `root` (a message of the schema) does not have, as (path,
/// message), with the readers' paths (a bootstrap's listeners and clusters leave out
/// `static_resources.`, as the validator's paths do).
pub(crate) fn unknown_fields(doc: &Value, root: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk(root, doc, "", &mut out);
    out
}

/// The reader's path of field `key` of the object at `path`.
fn child(path: &str, key: &str) -> String {
    if path == "static_resources" && matches!(key, "listeners" | "clusters") {
        key.to_owned()
    } else {
        join(path, key)
    }
}

fn walk(name: &str, v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    let Value::Object(map) = v else { return };
    match name {
        "google.protobuf.Struct" | "google.protobuf.Value" | "google.protobuf.ListValue" => {
            return;
        }
        "google.protobuf.Any" => {
            let Some(url) = map.get("@type").and_then(Value::as_str) else {
                return;
            };
            let inner = url.rsplit('/').next().unwrap_or(url);
            if message(inner).is_none() {
                return;
            }
            if inner.starts_with("google.protobuf.") {
                if let Some(x) = map.get("value") {
                    walk(inner, x, &join(path, "value"), out);
                }
            } else {
                let mut rest = map.clone();
                rest.remove("@type");
                walk(inner, &Value::Object(rest), path, out);
            }
            return;
        }
        _ => {}
    }
    let Some(md) = message(name) else { return };
    for (k, val) in map {
        let here = child(path, k);
        let Some((sub, flags)) = md.field(k) else {
            let snake = snake(k);
            if md.reserved.iter().any(|r| *r == k.as_str() || *r == snake) {
                continue;
            }
            let mut msg = format!("unknown field: {} has no field {k:?}", md.name);
            if let Some(s) = suggestion(&md, &snake) {
                msg.push_str(&format!(" (did you mean {s:?}?)"));
            }
            out.push((here, msg));
            continue;
        };
        if sub.is_empty() {
            continue;
        }
        match val {
            Value::Object(entries) if flags & MAP != 0 => {
                for (mk, mv) in entries {
                    walk(sub, mv, &join(&here, mk), out);
                }
            }
            Value::Array(items) if flags & LIST != 0 => {
                for (i, x) in items.iter().enumerate() {
                    walk(sub, x, &at(&here, i), out);
                }
            }
            _ if flags & MAP == 0 => walk(sub, val, &here, out),
            _ => {}
        }
    }
}

fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The message's field closest to `name` (at most two edits away).
fn suggestion(md: &Message, name: &str) -> Option<String> {
    md.fields
        .iter()
        .filter(|(_, _, flags)| flags & NAME != 0)
        .map(|(f, _, _)| (distance(name, f), f))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| (*n).to_owned())
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_loads_and_knows_what_the_readers_read() {
        for m in [
            BOOTSTRAP,
            ROUTE_CONFIGURATION,
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "envoy.extensions.filters.http.router.v3.Router",
            "envoy.extensions.filters.http.fault.v3.HTTPFault",
            "envoy.config.cluster.v3.Cluster",
        ] {
            assert!(message(m).is_some(), "{m}");
        }
    }

    #[test]
    fn typos_are_found_with_a_suggestion() {
        let doc = serde_json::json!({
            "static_resources": {"clusterz": [], "listeners": [{"name": "l", "adress": {}}]},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "portValue": 1}}},
        });
        let found = unknown_fields(&doc, BOOTSTRAP);
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["static_resources.clusterz", "listeners[0].adress"]);
        assert!(
            found[0].1.contains("did you mean \"clusters\""),
            "{found:?}"
        );
        assert!(found[1].1.contains("did you mean \"address\""), "{found:?}");
    }

    #[test]
    fn any_struct_and_maps_are_followed_or_left_alone() {
        let doc = serde_json::json!({"static_resources": {"listeners": [{"filter_chains": [{"filters": [{
            "name": "hcm",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefx": "x",
                "http_filters": [{"name": "mine", "typed_config": {"@type": "type.googleapis.com/acme.Mine", "anything": 1}}],
            }
        }]}], "metadata": {"filter_metadata": {"a": {"free": {"form": 1}}}}}]}});
        let found = unknown_fields(&doc, BOOTSTRAP);
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            ["listeners[0].filter_chains[0].filters[0].typed_config.stat_prefx"]
        );
    }
}
