//! Whatever a control plane sends, reading it never panics: a resource is either read (and
//! then validates or not, without panicking) or refused with errors that name it, each with the
//! field at fault where there is one.

use mesh_core::config::*;
use mesh_xds::xds::resource::{self, Resource, ResourceType};
use proptest::prelude::*;
use serde_json::{Value, json};

fn samples() -> Vec<(ResourceType, Value)> {
    let la = Cluster::new_static("web", ["127.0.0.1:8081".parse().unwrap()])
        .load_assignment
        .unwrap();
    let rc = RouteConfiguration::new("routes")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(Route::prefix("/", "web")));
    let mut cluster = Cluster::new_static("web", ["127.0.0.1:8081".parse().unwrap()]);
    cluster.outlier_detection = Some(OutlierDetection::default());
    let listener = Listener::http(
        "http",
        "127.0.0.1:80".parse().unwrap(),
        HttpConnectionManager::with_routes(rc.clone()),
    );
    [
        Resource::Cluster(cluster),
        Resource::Endpoints(la),
        Resource::Route(rc),
        Resource::Listener(listener),
    ]
    .into_iter()
    .map(|r| (r.resource_type(), r.to_json()))
    .collect()
}

/// Every (path, value) leaf of a JSON document, paths as JSON pointers.
fn leaves(v: &Value, path: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                leaves(v, format!("{path}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                leaves(v, format!("{path}/{i}"), out);
            }
        }
        _ => out.push(path),
    }
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        "[a-z0-9_./:*-]{0,12}".prop_map(Value::from),
        Just(json!("-1s")),
        Just(json!("1e400s")),
        Just(json!({})),
        Just(json!([])),
        Just(json!("\u{0}")),
    ]
}

fn check(t: ResourceType, any: &envoy_types::pb::google::protobuf::Any) {
    match resource::decode(any) {
        Ok(d) => {
            assert_eq!(d.value.resource_type(), t);
            // Read: validating it in a config never panics either.
            let mut b = Bootstrap::default();
            match d.value {
                Resource::Listener(l) => b.listeners.push(l),
                Resource::Cluster(c) => b.clusters.push(c),
                Resource::Route(r) => b.route_configs.push(r),
                Resource::Endpoints(la) => b.clusters.push(Cluster {
                    load_assignment: Some(la),
                    ..Cluster::default()
                }),
            }
            let _ = b.validate();
        }
        Err(e) => {
            assert!(!e.errors.is_empty());
            let text = e.to_string();
            assert!(
                text.starts_with(t.noun()) || text.starts_with("resource"),
                "{text}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes under a known type URL.
    #[test]
    fn random_bytes_are_refused_or_read(t in 0usize..4, bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let t = ResourceType::ALL[t];
        let any = envoy_types::pb::google::protobuf::Any { type_url: t.type_url().into(), value: bytes };
        check(t, &any);
    }

    /// A valid resource with one field set to something else (what Envoy's schema lets through
    /// goes on the wire as protobuf).
    #[test]
    fn a_mutated_resource_is_refused_with_its_path_or_read(sample in 0usize..4, pick in any::<prop::sample::Index>(), v in value()) {
        let (t, mut json) = samples().swap_remove(sample);
        let mut paths = Vec::new();
        leaves(&json, String::new(), &mut paths);
        let path = pick.get(&paths).clone();
        if let Some(slot) = json.pointer_mut(&path) {
            *slot = v;
        }
        if let Ok(any) = resource::encode_schema_only(t, &json) {
            check(t, &any);
            if let Err(e) = resource::decode(&any) {
                // A problem names the field at fault (or, for a resource without a name, says
                // that).
                prop_assert!(
                    e.errors.iter().any(|fe| !fe.path.is_empty()),
                    "{} (mutated {path})",
                    e
                );
            }
        }
    }
}

/// Wrappers inside wrappers, and `Any`s nested deep inside a resource, are refused before they
/// can exhaust the stack.
#[test]
fn deep_nesting_is_refused() {
    use envoy_types::pb::envoy::service::discovery::v3::Resource as Wrapper;
    use envoy_types::pb::google::protobuf::Any;
    use prost::Message;
    let mut any = resource::encode(&Resource::Route(RouteConfiguration::new("r")));
    for _ in 0..2 {
        any = Any {
            type_url: "type.googleapis.com/envoy.service.discovery.v3.Resource".into(),
            value: Wrapper {
                name: "r".into(),
                resource: Some(any),
                ..Wrapper::default()
            }
            .encode_to_vec(),
        };
    }
    let e = resource::decode(&any).unwrap_err();
    assert!(e.to_string().contains("wrapper"), "{e}");

    // A route whose per-filter config is an Any holding an Any holding an Any ... 10,000 deep.
    let mut inner = Any {
        type_url: "type.googleapis.com/google.protobuf.Empty".into(),
        value: Vec::new(),
    };
    for _ in 0..10_000 {
        inner = Any {
            type_url: "type.googleapis.com/google.protobuf.Any".into(),
            value: inner.encode_to_vec(),
        };
    }
    let mut rc = envoy_types::pb::envoy::config::route::v3::RouteConfiguration {
        name: "deep".into(),
        ..Default::default()
    };
    rc.virtual_hosts
        .push(envoy_types::pb::envoy::config::route::v3::VirtualHost {
            name: "v".into(),
            domains: vec!["*".into()],
            typed_per_filter_config: [("f".to_owned(), inner)].into_iter().collect(),
            ..Default::default()
        });
    let any = Any {
        type_url: ResourceType::Route.type_url().into(),
        value: rc.encode_to_vec(),
    };
    // Run where a stack overflow would abort the test rather than the whole suite.
    let result = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            resource::decode(&any)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    let e = result.unwrap_err();
    assert!(e.contains("nested"), "{e}");
}
