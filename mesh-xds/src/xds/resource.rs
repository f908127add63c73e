//! xDS resources on the wire (`google.protobuf.Any` holding an Envoy v3 message) to and from the
//! [`mesh_core::config`] model.
//!
//! Both directions go through protobuf's JSON mapping and the file readers of
//! [`crate::envoy`]: a resource from a control plane is read by the same code, with the same
//! checks and the same error paths, as the same resource in a bootstrap file; a resource this
//! crate serves is what [`crate::envoy::dump`] prints, encoded. So every config the toolkit can
//! read it can serve, and the reader and the writer are tested against each other and against
//! Envoy's own schema (the descriptor set of the `envoy-types` crate,
//! `schema/envoy-v3.descriptor.bin`).
//!
//! # Examples
//!
//! ```
//! use mesh_core::config::Cluster;
//! use mesh_xds::xds::resource::{self, Resource, ResourceType};
//!
//! let c = Cluster::new_static("web", ["127.0.0.1:8081".parse().unwrap()]);
//! let any = resource::encode(&Resource::Cluster(c.clone()));
//! assert_eq!(any.type_url, ResourceType::Cluster.type_url());
//! // Protobuf bytes, as a control plane sends them; read back into the same model.
//! let back = resource::decode(&any).unwrap();
//! assert_eq!(back.value, Resource::Cluster(c));
//!
//! // A resource with a problem names itself and the field at fault.
//! let bad = resource::encode_json(
//!     ResourceType::Cluster,
//!     &serde_json::json!({"name": "web", "type": "STATIC", "connect_timeout": "-1s"}),
//! )
//! .unwrap_err();
//! assert!(bad.to_string().contains("connect_timeout"), "{bad}");
//! ```

use std::fmt;
use std::sync::OnceLock;

use envoy_types::pb::google::protobuf::Any;
use mesh_core::config::{Cluster, ClusterLoadAssignment, FieldError, Listener, RouteConfiguration};
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage as _, SerializeOptions,
};
use serde_json::Value;

use crate::envoy::{Cx, Remap, Warning};

const TYPE_PREFIX: &str = "type.googleapis.com/";
/// The wrapper some servers put around each resource (`envoy.service.discovery.v3.Resource`).
pub(crate) const RESOURCE_WRAPPER: &str = "type.googleapis.com/envoy.service.discovery.v3.Resource";

/// The four resource types of ADS, in the order a server sends them so that nothing is used
/// before what it names has arrived (clusters, endpoints, listeners, routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// CDS: `envoy.config.cluster.v3.Cluster`.
    Cluster,
    /// EDS: `envoy.config.endpoint.v3.ClusterLoadAssignment`.
    Endpoints,
    /// LDS: `envoy.config.listener.v3.Listener`.
    Listener,
    /// RDS: `envoy.config.route.v3.RouteConfiguration`.
    Route,
}

impl ResourceType {
    /// Every type, in sending order.
    pub const ALL: [ResourceType; 4] = [
        ResourceType::Cluster,
        ResourceType::Endpoints,
        ResourceType::Listener,
        ResourceType::Route,
    ];

    /// The protobuf message name.
    pub fn message_name(self) -> &'static str {
        match self {
            ResourceType::Cluster => "envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoints => "envoy.config.endpoint.v3.ClusterLoadAssignment",
            ResourceType::Listener => "envoy.config.listener.v3.Listener",
            ResourceType::Route => "envoy.config.route.v3.RouteConfiguration",
        }
    }

    /// The type URL of discovery requests and responses.
    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoints => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        }
    }

    /// The type of a type URL, `None` for a type ADS here does not carry.
    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// The short name Envoy's stats and logs use (`cds`, `eds`, `lds`, `rds`).
    pub fn short_name(self) -> &'static str {
        match self {
            ResourceType::Cluster => "cds",
            ResourceType::Endpoints => "eds",
            ResourceType::Listener => "lds",
            ResourceType::Route => "rds",
        }
    }

    /// The name of a resource of this type in messages (`cluster`, `listener`, …).
    pub fn noun(self) -> &'static str {
        match self {
            ResourceType::Cluster => "cluster",
            ResourceType::Endpoints => "cluster load assignment",
            ResourceType::Listener => "listener",
            ResourceType::Route => "route configuration",
        }
    }

    /// Whether a state-of-the-world response carries every resource of the type, so that a
    /// resource left out is removed (LDS and CDS); RDS and EDS responses carry what was asked.
    pub fn is_wildcard(self) -> bool {
        matches!(self, ResourceType::Cluster | ResourceType::Listener)
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// One decoded resource.
// Resources are decoded and stored one by one, off the request path: their sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    /// A listener.
    Listener(Listener),
    /// A route configuration.
    Route(RouteConfiguration),
    /// A cluster.
    Cluster(Cluster),
    /// A cluster's endpoints.
    Endpoints(ClusterLoadAssignment),
}

impl Resource {
    /// Its name (for endpoints, the cluster or EDS service name).
    pub fn name(&self) -> &str {
        match self {
            Resource::Listener(l) => &l.name,
            Resource::Route(r) => &r.name,
            Resource::Cluster(c) => &c.name,
            Resource::Endpoints(e) => &e.cluster_name,
        }
    }

    /// Its type.
    pub fn resource_type(&self) -> ResourceType {
        match self {
            Resource::Listener(_) => ResourceType::Listener,
            Resource::Route(_) => ResourceType::Route,
            Resource::Cluster(_) => ResourceType::Cluster,
            Resource::Endpoints(_) => ResourceType::Endpoints,
        }
    }

    /// The resource as Envoy v3 JSON (what [`crate::envoy::dump`] prints).
    pub fn to_json(&self) -> Value {
        use crate::envoy::dump;
        match self {
            Resource::Listener(l) => dump::listener(l),
            Resource::Route(r) => dump::route_configuration(r),
            Resource::Cluster(c) => dump::cluster(c),
            Resource::Endpoints(e) => dump::cluster_load_assignment(e),
        }
    }
}

/// A decoded resource and what in it was ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The resource.
    pub value: Resource,
    /// Fields the model has no room for, with their paths inside the resource.
    pub warnings: Vec<Warning>,
}

/// Why a resource could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceError {
    /// The resource's type, when its type URL is one ADS carries.
    pub resource_type: Option<ResourceType>,
    /// The resource's name, when it could be read.
    pub name: Option<String>,
    /// Each problem with its path inside the resource.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = self.resource_type.map_or("resource", ResourceType::noun);
        match &self.name {
            Some(n) => write!(f, "{noun} {n:?}: ")?,
            None => write!(f, "{noun}: ")?,
        }
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if e.path.is_empty() {
                f.write_str(&e.message)?;
            } else {
                write!(f, "{}: {}", e.path, e.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ResourceError {}

impl ResourceError {
    pub(crate) fn whole(resource_type: Option<ResourceType>, message: impl Into<String>) -> Self {
        Self {
            resource_type,
            name: None,
            errors: vec![FieldError {
                path: String::new(),
                message: message.into(),
            }],
        }
    }
}

/// Envoy's v3 schema, decoded once, the first time a resource is read or written.
fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut pool = DescriptorPool::decode(
            &include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/schema/envoy-v3.descriptor.bin"
            ))[..],
        )
        .unwrap_or_else(|_| DescriptorPool::new());
        for (file, package) in [
            ("xds/type/v3/typed_struct.proto", "xds.type.v3"),
            ("udpa/type/v1/typed_struct.proto", "udpa.type.v1"),
        ] {
            // Already there when a newer descriptor set has it.
            if pool.get_file_by_name(file).is_none() {
                let _ = pool.add_file_descriptor_proto(typed_struct(file, package));
            }
        }
        pool
    })
}

/// The descriptor of `TypedStruct` (`type_url`, and `value` as a `google.protobuf.Struct`), the
/// envelope of custom filters' configs, which Envoy's descriptor set leaves out because no
/// Envoy message names it.
fn typed_struct(file: &str, package: &str) -> prost_reflect::prost_types::FileDescriptorProto {
    use prost_reflect::prost_types::field_descriptor_proto::{Label, Type};
    use prost_reflect::prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};
    let field =
        |name: &str, json: &str, number, ty: Type, type_name: Option<&str>| FieldDescriptorProto {
            name: Some(name.into()),
            json_name: Some(json.into()),
            number: Some(number),
            label: Some(Label::Optional as i32),
            r#type: Some(ty as i32),
            type_name: type_name.map(Into::into),
            ..FieldDescriptorProto::default()
        };
    FileDescriptorProto {
        name: Some(file.into()),
        package: Some(package.into()),
        dependency: vec!["google/protobuf/struct.proto".into()],
        message_type: vec![DescriptorProto {
            name: Some("TypedStruct".into()),
            field: vec![
                field("type_url", "typeUrl", 1, Type::String, None),
                field(
                    "value",
                    "value",
                    2,
                    Type::Message,
                    Some(".google.protobuf.Struct"),
                ),
            ],
            ..DescriptorProto::default()
        }],
        syntax: Some("proto3".into()),
        ..FileDescriptorProto::default()
    }
}

fn descriptor(t: ResourceType) -> Result<MessageDescriptor, ResourceError> {
    pool()
        .get_message_by_name(t.message_name())
        .ok_or_else(|| ResourceError::whole(Some(t), "Envoy's schema is not available"))
}

/// Reads a resource as a control plane sends it.
///
/// # Errors
/// A [`ResourceError`] when the type URL is not one of the four ADS types, when the bytes are
/// not a valid message of that type, or when the resource has a problem the file reader reports
/// (each with its path inside the resource).
pub fn decode(any: &Any) -> Result<Decoded, ResourceError> {
    decode_at(any, 0)
}

fn decode_at(any: &Any, wrappers: usize) -> Result<Decoded, ResourceError> {
    if any.type_url == RESOURCE_WRAPPER {
        if wrappers > 0 {
            return Err(ResourceError::whole(
                None,
                "a Resource wrapper inside a Resource wrapper",
            ));
        }
        let wrapped =
            envoy_types::pb::envoy::service::discovery::v3::Resource::decode(any.value.as_slice())
                .map_err(|e| {
                    ResourceError::whole(None, format!("undecodable Resource wrapper: {e}"))
                })?;
        let inner = wrapped
            .resource
            .ok_or_else(|| ResourceError::whole(None, "a Resource wrapper without a resource"))?;
        return decode_at(&inner, wrappers + 1);
    }
    let Some(t) = ResourceType::from_type_url(&any.type_url) else {
        return Err(ResourceError::whole(
            None,
            format!("unknown resource type {:?}", any.type_url),
        ));
    };
    let msg = DynamicMessage::decode(descriptor(t)?, any.value.as_slice()).map_err(|e| {
        ResourceError::whole(Some(t), format!("not a valid {}: {e}", t.message_name()))
    })?;
    // Each `Any` inside is decoded afresh when the message is written as JSON: bound how deep
    // they nest, so a small message cannot exhaust the stack.
    if !any_depth_within(&msg, 0) {
        return Err(ResourceError::whole(
            Some(t),
            format!("google.protobuf.Any values nested more than {MAX_ANY_DEPTH} deep"),
        ));
    }
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true);
    let mut json = msg
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| ResourceError::whole(Some(t), format!("{e}")))?;
    integral_numbers(&mut json);
    read_json(t, &json)
}

/// Reads a resource from its Envoy v3 JSON form (as in a bootstrap file).
///
/// # Errors
/// As [`decode`].
pub fn read_json(t: ResourceType, json: &Value) -> Result<Decoded, ResourceError> {
    let mut cx = Cx::default();
    let mut remap = Remap::default();
    let value = match t {
        ResourceType::Listener => {
            crate::envoy::listener::listener(&mut cx, json, String::new(), &mut remap)
                .map(Resource::Listener)
        }
        ResourceType::Route => Some(Resource::Route(crate::envoy::route::route_configuration(
            &mut cx, json, "",
        ))),
        ResourceType::Cluster => {
            crate::envoy::cluster::cluster(&mut cx, json, String::new(), &mut remap)
                .map(Resource::Cluster)
        }
        ResourceType::Endpoints => {
            crate::envoy::endpoint::load_assignment(&mut cx, json, String::new())
                .map(Resource::Endpoints)
        }
    };
    let name = value
        .as_ref()
        .map(|v| v.name().to_owned())
        .or_else(|| {
            let key = if t == ResourceType::Endpoints {
                "cluster_name"
            } else {
                "name"
            };
            json.get(key).and_then(Value::as_str).map(str::to_owned)
        })
        .filter(|n| !n.is_empty());
    let mut errors = cx.errors;
    if name.is_none() && errors.is_empty() {
        errors.push(FieldError {
            path: if t == ResourceType::Endpoints {
                "cluster_name".into()
            } else {
                "name".into()
            },
            message: format!("a {} needs a name", t.noun()),
        });
    }
    match value {
        Some(value) if errors.is_empty() => Ok(Decoded {
            value,
            warnings: cx.warnings,
        }),
        _ => Err(ResourceError {
            resource_type: Some(t),
            name,
            errors,
        }),
    }
}

/// How deep `google.protobuf.Any` values may nest in a resource (Envoy's own configs nest two or
/// three: a listener's connection manager, its filters, their per-route configs).
const MAX_ANY_DEPTH: usize = 16;

/// Whether the `Any` values in `msg` nest at most [`MAX_ANY_DEPTH`] deep (those of types the
/// schema does not know are left to the JSON writer, which refuses them).
fn any_depth_within(msg: &DynamicMessage, depth: usize) -> bool {
    use prost_reflect::Value as V;
    fn value_ok(v: &V, depth: usize) -> bool {
        match v {
            V::Message(m) => any_depth_within(m, depth),
            V::List(items) => items.iter().all(|i| value_ok(i, depth)),
            V::Map(map) => map.values().all(|i| value_ok(i, depth)),
            _ => true,
        }
    }
    if msg.descriptor().full_name() == "google.protobuf.Any" {
        if depth >= MAX_ANY_DEPTH {
            return false;
        }
        let url = msg
            .get_field_by_name("type_url")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let bytes = msg
            .get_field_by_name("value")
            .and_then(|v| v.as_bytes().cloned())
            .unwrap_or_default();
        let name = url.rsplit('/').next().unwrap_or("");
        return match pool().get_message_by_name(name) {
            Some(d) => DynamicMessage::decode(d, bytes)
                .map(|inner| any_depth_within(&inner, depth + 1))
                .unwrap_or(true),
            None => true,
        };
    }
    msg.fields().all(|(_, v)| value_ok(v, depth))
}

/// A double as JSON: integral values (within the f64 mantissa) as integers, as they were
/// written in YAML before a `google.protobuf.Struct` made them doubles.
pub(crate) fn json_number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        // Exact: integral and within the f64 mantissa.
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// Writes integral doubles as integers. A `google.protobuf.Struct` (metadata, custom filters'
/// configs) holds every number as a double, so a `2` written in YAML arrives as `2.0`; a filter
/// that reads an integer from its config expects it back as `2`, as it reads it from a file.
fn integral_numbers(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                *v = json_number(f);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral_numbers),
        Value::Object(m) => m.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// Encodes a resource as a control plane sends it.
///
/// Everything the model holds is written (see [`crate::envoy::dump`] for what it does not keep).
pub fn encode(r: &Resource) -> Any {
    encode_dumped(r, &r.to_json())
}

/// [`encode`], given the resource's JSON already written (a caller that also hashes it).
pub(crate) fn encode_dumped(r: &Resource, json: &Value) -> Any {
    // The dump writes only what Envoy's schema has: a failure here is a bug in the dump, and
    // the resource goes out empty but named rather than taking the server down.
    encode_json(r.resource_type(), json).unwrap_or_else(|e| {
        tracing::error!(error = %e, "resource does not fit Envoy's schema");
        let t = r.resource_type();
        let key = if t == ResourceType::Endpoints {
            "cluster_name"
        } else {
            "name"
        };
        encode_json(t, &serde_json::json!({ key: r.name() })).unwrap_or_default()
    })
}

/// Encodes a resource given as Envoy v3 JSON.
///
/// # Errors
/// A [`ResourceError`] when the JSON does not fit Envoy's schema, or names a resource the
/// reader refuses (so that nothing is served that a client would NACK for a reason this crate
/// can see).
pub fn encode_json(t: ResourceType, json: &Value) -> Result<Any, ResourceError> {
    read_json(t, json)?;
    encode_schema_only(t, json)
}

/// Encodes a resource given as Envoy v3 JSON, checked against Envoy's schema only: for
/// resources this toolkit serves but does not run itself (a proxyless gRPC client's
/// `ApiListener`).
///
/// # Errors
/// A [`ResourceError`] when the JSON does not fit Envoy's schema.
pub fn encode_schema_only(t: ResourceType, json: &Value) -> Result<Any, ResourceError> {
    let msg = DynamicMessage::deserialize(descriptor(t)?, json)
        .map_err(|e| ResourceError::whole(Some(t), format!("{e}")))?;
    Ok(Any {
        type_url: t.type_url().to_owned(),
        value: msg.encode_to_vec(),
    })
}

/// The type URL of a message of Envoy's schema (`type.googleapis.com/<full name>`).
pub fn type_url_of(message_name: &str) -> String {
    format!("{TYPE_PREFIX}{message_name}")
}
