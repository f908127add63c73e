//! Conformance: the route configurations of Envoy's `router_check_tool` suite load.
//!
//! The files live in `../shared/conformance/envoy-router-check/` (outside this repository).
//! When that directory is missing the test fails on CI (`CI=true`) and is skipped elsewhere.

#[path = "support/conformance.rs"]
mod conformance;

#[test]
fn router_check_route_configurations_load() {
    let Some(files) = conformance::router_check_yaml_files() else {
        return;
    };
    let mut failures = Vec::new();
    for file in &files {
        match mesh_xds::envoy::load_route_configuration(file) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    eprintln!("{}: warning: {w}", file.display());
                }
                assert!(
                    !loaded.value.virtual_hosts.is_empty(),
                    "{}: no virtual hosts",
                    file.display()
                );
                if !loaded.warnings.is_empty() {
                    failures.push(format!(
                        "{}: unexpected warnings: {:?}",
                        file.display(),
                        loaded.warnings
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", file.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn router_check_details_survive_conversion() {
    use mesh_core::config::*;
    let Some(dir) = conformance::router_check_dir() else {
        return;
    };
    let load = |name: &str| {
        mesh_xds::envoy::load_route_configuration(dir.join(name))
            .unwrap()
            .value
    };

    let tr = load("TestRoutes.yaml");
    assert_eq!(tr.internal_only_headers, ["x-lyft-user-id"]);
    assert_eq!(
        tr.headers.response_headers_to_add,
        [HeaderValueOption::append("x-envoy-upstream-canary", "true")]
    );
    let default = &tr.virtual_hosts[2];
    let last = default.routes.last().unwrap();
    let Action::Route(a) = &last.action else {
        panic!("not a route: {last:?}")
    };
    // `timeout: {seconds: 30}` (the proto form) is accepted beside "30s".
    assert_eq!(a.timeout, Some(std::time::Duration::from_secs(30)));
    assert_eq!(default.virtual_clusters.len(), 7);
    let ping = &tr.virtual_hosts[0].routes[1];
    assert_eq!(
        ping.action,
        Action::DirectResponse(DirectResponseAction {
            status: 200,
            body: Some("{ 'message': 'Success!' }".into())
        })
    );

    let w = load("Weighted.yaml");
    let vc = &w.virtual_hosts[0].virtual_clusters[0];
    assert_eq!(vc.headers[1], HeaderMatcher::exact(":method", "GET"));

    let r = load("Redirect.yaml");
    assert_eq!(r.virtual_hosts[0].require_tls, TlsRequirement::All);
    let Action::Redirect(rd) = &r.virtual_hosts[2].routes[4].action else {
        panic!()
    };
    assert_eq!(rd.path_redirect, Some(PathRedirect::Prefix("/blah".into())));

    let h = load("HeaderMatchedRouting.yaml");
    assert_eq!(
        h.virtual_hosts[0].routes[2].route_match.headers[0].spec,
        HeaderMatchSpec::Present(true)
    );
    assert!(h.virtual_hosts[0].routes[5].route_match.grpc);
}
