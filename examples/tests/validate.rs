//! `mesh-proxy validate` runs every check start-up runs, and reports every error of every
//! stage in one run (issue #11).

mod support;

fn validate(path: &str) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mesh-proxy"))
        .args(["validate", path])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const HCM: &str = "listeners[0].filter_chains[0].filters[0].typed_config";

/// Regression: one stage of errors per run (three mistakes took three runs), and `validate`
/// said "ok" to what start-up then refused: a regex backreference, a ring of 2^40 entries, a
/// fault abort status of 999, an unknown HTTP filter.
#[test]
fn every_error_of_every_stage_in_one_run() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/every-stage.yaml");
    let (code, err) = validate(file);
    assert_eq!(code, Some(1), "{err}");
    for path in [
        // conversion
        "clusters[0].lb_policy: unsupported lb_policy",
        // validation
        &format!("{HCM}.route_config.virtual_hosts[0].routes[2].route.cluster: unknown cluster"),
        // compilation: clusters, filters, route tables
        "clusters[1]: cluster \"ring\": invalid ring_hash",
        &format!(
            "{HCM}.http_filters[0]: invalid config for HTTP filter \"envoy.filters.http.fault\": abort.http_status"
        ),
        &format!("{HCM}.http_filters[2]: unknown HTTP filter \"envoy.filters.http.rbac\""),
        "backreferences are not supported",
    ] {
        assert!(err.contains(path), "missing {path:?} in:\n{err}");
    }
    // An optional filter nobody registered is skipped, as in Envoy; an authorization filter
    // is not, even when optional.
    assert!(!err.contains(&format!("{HCM}.http_filters[1]:")), "{err}");
    assert!(
        err.contains("cannot be skipped even with is_optional"),
        "{err}"
    );
    assert!(err.contains("invalid config (6 errors)"), "{err}");
}

/// An unknown filter is an error (Envoy refuses the config unless the filter is optional).
#[test]
fn an_unknown_http_filter_is_an_error() {
    let yaml = r#"
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          route_config: { virtual_hosts: [{ name: a, domains: ["*"], routes: [{ match: { prefix: / }, direct_response: { status: 200 } }] }] }
          http_filters:
          - name: acme.unknown
            typed_config: { "@type": type.googleapis.com/acme.Unknown }
          - name: envoy.filters.http.router
"#;
    let file = support::temp_file("unknown-filter.yaml", yaml);
    let (code, err) = validate(file.to_str().unwrap());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{HCM}.http_filters[0]: unknown HTTP filter \"acme.unknown\""
        )),
        "{err}"
    );
    let optional = yaml.replace(
        "          - name: acme.unknown\n",
        "          - name: acme.unknown\n            is_optional: true\n",
    );
    let file = support::temp_file("optional-filter.yaml", &optional);
    let (code, err) = validate(file.to_str().unwrap());
    assert_eq!(code, Some(0), "{err}");
}

/// `validate --istio` applies Istio's validation rules and reports every problem with its
/// resource and field path; valid documents pass whatever fields the proxy leaves unused.
#[test]
fn validate_istio_reports_every_problem_with_its_resource() {
    let run = |paths: &[&str]| {
        let mut args = vec!["validate"];
        for p in paths {
            args.extend(["--istio", p]);
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mesh-proxy"))
            .args(&args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let bookinfo = concat!(env!("CARGO_MANIFEST_DIR"), "/bookinfo");
    let services = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mesh-xds/tests/fixtures/istio/bookinfo-services.yaml"
    );
    let (code, err) = run(&[services, bookinfo]);
    assert_eq!(code, Some(0), "{err}");

    let bad = support::temp_file(
        "bad-istio.yaml",
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: { name: ext }\nspec:\n  hosts: ['*']\n  ports: [{ number: 80, name: http }, { number: 80, name: http }]\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: { name: vm }\nspec: { labels: { app: x } }\n",
    );
    let (code, err) = run(&[bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    for want in [
        "ext.default ServiceEntry: spec.hosts[0]: invalid host *",
        "ext.default ServiceEntry: spec.ports[1].name: service entry port name \"http\" already defined",
        "ext.default ServiceEntry: spec.ports[1].number: service entry port 80 already defined",
        "vm.default WorkloadEntry: spec.address: address is required",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}
