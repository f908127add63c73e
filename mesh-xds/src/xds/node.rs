//! The node a proxy names itself with, between the model and the wire.

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value as PbValue, value::Kind};
use mesh_core::config::{Locality, Node};
use serde_json::{Map, Value};

/// The model's node as the protobuf a discovery request carries.
pub fn to_proto(n: &Node) -> core::Node {
    core::Node {
        id: n.id.clone(),
        cluster: n.cluster.clone(),
        metadata: (!n.metadata.is_empty()).then(|| to_struct(&n.metadata)),
        locality: (n.locality != Locality::default()).then(|| core::Locality {
            region: n.locality.region.clone(),
            zone: n.locality.zone.clone(),
            sub_zone: n.locality.sub_zone.clone(),
        }),
        user_agent_name: "mesh-proxy".into(),
        user_agent_version_type: Some(core::node::UserAgentVersionType::UserAgentVersion(
            env!("CARGO_PKG_VERSION").into(),
        )),
        ..core::Node::default()
    }
}

/// A discovery request's node as the model's.
pub fn from_proto(n: &core::Node) -> Node {
    Node {
        id: n.id.clone(),
        cluster: n.cluster.clone(),
        metadata: n.metadata.as_ref().map(from_struct).unwrap_or_default(),
        locality: n
            .locality
            .as_ref()
            .map(|l| Locality {
                region: l.region.clone(),
                zone: l.zone.clone(),
                sub_zone: l.sub_zone.clone(),
            })
            .unwrap_or_default(),
    }
}

/// A JSON object as a `google.protobuf.Struct`.
pub fn to_struct(m: &Map<String, Value>) -> Struct {
    Struct {
        fields: m.iter().map(|(k, v)| (k.clone(), to_value(v))).collect(),
    }
}

fn to_value(v: &Value) -> PbValue {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(to_value).collect(),
        }),
        Value::Object(m) => Kind::StructValue(to_struct(m)),
    };
    PbValue { kind: Some(kind) }
}

/// A `google.protobuf.Struct` as a JSON object (integral numbers as integers).
pub fn from_struct(s: &Struct) -> Map<String, Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), from_value(v)))
        .collect()
}

fn from_value(v: &PbValue) -> Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(f)) => super::resource::json_number(*f),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(from_value).collect()),
        Some(Kind::StructValue(s)) => Value::Object(from_struct(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_survives_the_wire() {
        let mut n = Node {
            id: "sidecar~10.0.0.1~reviews-v1.default~default.svc.cluster.local".into(),
            cluster: "reviews".into(),
            ..Node::default()
        };
        n.metadata.insert("NAMESPACE".into(), "default".into());
        n.metadata.insert(
            "LABELS".into(),
            serde_json::json!({"app": "reviews", "version": "v1"}),
        );
        n.metadata
            .insert("n".into(), serde_json::json!([1, 2.5, null, true]));
        n.locality.zone = "z1".into();
        assert_eq!(from_proto(&to_proto(&n)), n);
    }
}
