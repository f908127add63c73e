//! Conformance: every Istio sample of `../shared/conformance/istio-bookinfo/` and
//! `istio-testdata/` parses and translates in both roles, or is rejected with a message that
//! names the resource and field; none panics. The Bookinfo samples are translated with the
//! Bookinfo ServiceEntries of `fixtures/istio/bookinfo-services.yaml` (and, for
//! VirtualServices, Bookinfo's `destination-rule-all.yaml`, which defines their subsets).
//!
//! A missing conformance directory fails on CI (`CI=true`) and skips elsewhere.

#[path = "support/conformance.rs"]
mod conformance;

use std::path::PathBuf;

use conformance::{dir, yaml_files};

use mesh_core::config::{Action, ClusterSpecifier, PathMatch};
use mesh_xds::LoadError;
use mesh_xds::istio::{self, Loaded, Options, Resources};

const SERVICES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/istio/bookinfo-services.yaml"
);

fn load(paths: &[PathBuf]) -> Result<Loaded<Resources>, LoadError> {
    istio::load_paths(paths, "default")
}

fn sidecar() -> Options {
    Options::sidecar(15001)
}

fn gateway() -> Options {
    Options::gateway([("istio", "ingressgateway")]).map_port(8080, 18080)
}

/// Loads and translates in both roles; returns a one-line outcome and checks that every
/// rejection names a field.
fn run(paths: &[PathBuf]) -> String {
    let loaded = match load(paths) {
        Ok(l) => l,
        Err(e) => {
            assert!(
                !e.field_errors().is_empty() || e.is_syntax(),
                "unclear rejection: {e}"
            );
            return format!("rejected at load: {}", first_line(&e));
        }
    };
    let mut out = format!("loaded ({} warnings)", loaded.warnings.len());
    for (role, opts) in [("sidecar", sidecar()), ("gateway", gateway())] {
        match istio::translate(&loaded.value, &opts) {
            Ok(b) => {
                compiles(&b.value);
                out.push_str(&format!(
                    "; {role}: {} listeners, {} clusters, {} warnings",
                    b.value.listeners.len(),
                    b.value.clusters.len(),
                    b.warnings.len()
                ));
            }
            Err(e) => {
                assert!(!e.field_errors().is_empty(), "unclear rejection: {e}");
                for fe in e.field_errors() {
                    assert!(fe.path.contains(':'), "path names no resource: {fe}");
                }
                out.push_str(&format!(
                    "; {role}: rejected ({} errors): {}",
                    e.field_errors().len(),
                    first_line(&e)
                ));
            }
        }
    }
    out
}

/// The translated config validates and compiles in the runtime crates mesh-proxy uses (route
/// tables with their regexes, balancers with their settings).
fn compiles(b: &mesh_core::config::Bootstrap) {
    b.validate().expect("translated config validates");
    for l in &b.listeners {
        for fc in &l.filter_chains {
            if let mesh_core::config::RouteSource::RouteConfig(rc) = &fc.hcm().unwrap().route {
                mesh_route::RouteTable::compile(rc)
                    .unwrap_or_else(|e| panic!("route table {}: {e}", rc.name));
            }
        }
    }
    for c in &b.clusters {
        mesh_lb::ClusterLb::builder(c)
            .build()
            .unwrap_or_else(|e| panic!("cluster {}: {e}", c.name));
    }
}

fn first_line(e: &LoadError) -> String {
    e.field_errors()
        .first()
        .map_or_else(|| e.to_string(), ToString::to_string)
}

#[test]
fn every_sample_loads_or_is_rejected_clearly() {
    let mut summary = Vec::new();
    for which in ["istio-bookinfo", "istio-testdata"] {
        let Some(d) = dir(which) else {
            return;
        };
        for file in yaml_files(&d) {
            let mut paths = vec![PathBuf::from(SERVICES)];
            if which == "istio-bookinfo" && file.file_name().unwrap() != "destination-rule-all.yaml"
            {
                let text = std::fs::read_to_string(&file).unwrap();
                if !text.contains("kind: DestinationRule") {
                    paths.push(d.join("destination-rule-all.yaml"));
                }
            }
            paths.push(file.clone());
            let outcome = std::panic::catch_unwind(|| run(&paths))
                .unwrap_or_else(|_| panic!("{} panicked", file.display()));
            summary.push(format!(
                "{which}/{}: {outcome}",
                file.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    eprintln!("Istio conformance summary:\n  {}", summary.join("\n  "));
}

fn bookinfo(files: &[&str]) -> Option<Resources> {
    let d = dir("istio-bookinfo")?;
    let mut paths = vec![PathBuf::from(SERVICES)];
    paths.extend(files.iter().map(|f| d.join(f)));
    Some(load(&paths).unwrap().value)
}

/// `virtual-service-reviews-80-20.yaml` sends 80 % to v1 and 20 % to v2 (the file says v2).
#[test]
fn reviews_80_20_is_weighted_to_subset_clusters() {
    let Some(res) = bookinfo(&[
        "destination-rule-all.yaml",
        "virtual-service-reviews-80-20.yaml",
    ]) else {
        return;
    };
    let b = istio::translate(&res, &sidecar()).unwrap().value;
    let rc = match &b.listeners[0].filter_chains[0].hcm().unwrap().route {
        mesh_core::config::RouteSource::RouteConfig(rc) => rc.clone(),
        other => panic!("inline routes expected, got {other:?}"),
    };
    let vh = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name == "reviews.default.svc.cluster.local:9080")
        .unwrap();
    let Action::Route(a) = &vh.routes[0].action else {
        panic!("route expected");
    };
    let ClusterSpecifier::WeightedClusters(w) = &a.cluster else {
        panic!("weighted clusters expected");
    };
    let got: Vec<(&str, u32)> = w
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight))
        .collect();
    assert_eq!(
        got,
        [
            ("outbound|9080|v1|reviews.default.svc.cluster.local", 80),
            ("outbound|9080|v2|reviews.default.svc.cluster.local", 20)
        ]
    );
}

#[test]
fn reviews_50_v3_splits_between_v1_and_v3() {
    let Some(res) = bookinfo(&[
        "destination-rule-all.yaml",
        "virtual-service-reviews-50-v3.yaml",
    ]) else {
        return;
    };
    let b = istio::translate(&res, &sidecar()).unwrap().value;
    let mesh_core::config::RouteSource::RouteConfig(rc) =
        &b.listeners[0].filter_chains[0].hcm().unwrap().route
    else {
        panic!("inline routes expected");
    };
    let vh = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name == "reviews.default.svc.cluster.local:9080")
        .unwrap();
    let Action::Route(a) = &vh.routes[0].action else {
        panic!("route expected");
    };
    let ClusterSpecifier::WeightedClusters(w) = &a.cluster else {
        panic!("weighted clusters expected");
    };
    let got: Vec<(&str, u32)> = w
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight))
        .collect();
    assert_eq!(
        got,
        [
            ("outbound|9080|v1|reviews.default.svc.cluster.local", 50),
            ("outbound|9080|v3|reviews.default.svc.cluster.local", 50)
        ]
    );
}

#[test]
fn destination_rule_all_yields_subset_clusters() {
    let Some(res) = bookinfo(&["destination-rule-all.yaml"]) else {
        return;
    };
    let b = istio::translate(&res, &sidecar()).unwrap().value;
    for v in ["v1", "v2", "v3"] {
        let c = b
            .cluster(&format!(
                "outbound|9080|{v}|reviews.default.svc.cluster.local"
            ))
            .unwrap();
        let eps: Vec<u16> = c
            .load_assignment
            .as_ref()
            .unwrap()
            .lb_endpoints()
            .map(|(_, e)| e.address.port)
            .collect();
        let want = match v {
            "v1" => 19083,
            "v2" => 19084,
            _ => 19085,
        };
        assert_eq!(eps, [want], "{v}");
    }
    // ratings v2-mysql has no endpoint: an empty cluster (503), not an error.
    let c = b
        .cluster("outbound|9080|v2-mysql|ratings.default.svc.cluster.local")
        .unwrap();
    assert_eq!(
        c.load_assignment.as_ref().unwrap().lb_endpoints().count(),
        0
    );
}

#[test]
fn bookinfo_gateway_listens_on_the_mapped_port() {
    let Some(res) = bookinfo(&["bookinfo-gateway.yaml"]) else {
        return;
    };
    let b = istio::translate(&res, &gateway()).unwrap().value;
    assert_eq!(b.listeners.len(), 1);
    let l = &b.listeners[0];
    assert_eq!(l.address.port(), 18080);
    assert_eq!(l.name, "127.0.0.1_18080");
    let hcm = l.filter_chains[0].hcm().unwrap();
    assert!(hcm.use_remote_address);
    let mesh_core::config::RouteSource::RouteConfig(rc) = &hcm.route else {
        panic!("inline routes expected");
    };
    assert_eq!(rc.name, "http.8080");
    assert_eq!(rc.virtual_hosts[0].name, "*:8080");
    let r = &rc.virtual_hosts[0].routes[0];
    assert_eq!(r.route_match.path, PathMatch::Path("/productpage".into()));
    let Action::Route(a) = &r.action else {
        panic!("route expected");
    };
    assert_eq!(
        a.cluster,
        ClusterSpecifier::Cluster("outbound|9080||productpage.default.svc.cluster.local".into())
    );
    assert_eq!(rc.virtual_hosts[0].routes.len(), 5);
}

/// Istio's tests load `istio-testdata/` as one set (VirtualServices name Gateways of other
/// files). With TLS origination translated (DestinationRule `tls` SIMPLE, MUTUAL and
/// ISTIO_MUTUAL), the whole directory loads, and each role translates or is rejected with
/// resource paths.
#[test]
fn istio_testdata_as_one_set() {
    let Some(d) = dir("istio-testdata") else {
        return;
    };
    let outcome = run(std::slice::from_ref(&d));
    eprintln!("istio-testdata as one set: {outcome}");
    assert!(outcome.starts_with("loaded"), "{outcome}");
}

#[test]
#[ignore = "debug aid: prints every warning"]
fn print_warnings() {
    for which in ["istio-bookinfo", "istio-testdata"] {
        let Some(d) = dir(which) else { return };
        for f in yaml_files(&d) {
            if let Ok(l) = load(&[PathBuf::from(SERVICES), f.clone()]) {
                for w in &l.warnings {
                    eprintln!("{}: {w}", f.display());
                }
                if let Ok(b) = istio::translate(&l.value, &sidecar()) {
                    for w in &b.warnings {
                        eprintln!("{} (sidecar): {w}", f.display());
                    }
                }
            }
        }
    }
}

/// Regression (issue #11): layering `virtual-service-reviews-test-v2.yaml` over
/// `virtual-service-all-v1.yaml` (Istio's request-routing task) kept the first `reviews`
/// VirtualService and warned that the host was already routed. Like successive `kubectl
/// apply`s, the later definition replaces the earlier one, and a warning says so.
#[test]
fn a_later_file_replaces_the_same_resource() {
    let Some(d) = dir("istio-bookinfo") else {
        return;
    };
    let paths = [
        PathBuf::from(SERVICES),
        d.join("destination-rule-all.yaml"),
        d.join("virtual-service-all-v1.yaml"),
        d.join("virtual-service-reviews-test-v2.yaml"),
    ];
    let loaded = load(&paths).unwrap();
    let replaced: Vec<&istio::Warning> = loaded
        .warnings
        .iter()
        .filter(|w| w.message.contains("replaces the definition"))
        .collect();
    assert_eq!(replaced.len(), 1, "{:#?}", loaded.warnings);
    assert!(
        replaced[0]
            .path
            .starts_with("reviews.default VirtualService")
    );
    assert!(
        replaced[0]
            .message
            .contains("virtual-service-reviews-test-v2.yaml")
    );
    assert!(replaced[0].message.contains("virtual-service-all-v1.yaml"));
    let reviews: Vec<_> = loaded
        .value
        .virtual_services
        .iter()
        .filter(|v| v.meta.name == "reviews")
        .collect();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].http.len(), 2, "jason's route, then everyone's");

    let b = istio::translate(&loaded.value, &sidecar()).unwrap();
    assert!(
        !b.warnings
            .iter()
            .any(|w| w.message.contains("already routed")),
        "{:#?}",
        b.warnings
    );
}
