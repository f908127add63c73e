//! The `mesh-proxy` binary run from Istio YAML: the sidecar and gateway roles, `--watch`,
//! `--print-config`, and a config `istioctl analyze` would reject.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_proxy::test_util::{Behavior, Client, Upstream};
use support::{ProxyProcess, eventually};

/// ServiceEntries for `reviews` (v1 on `v1`, v2 on `v2`) and `productpage`, port 9080 each.
fn services(v1: SocketAddr, v2: SocketAddr, productpage: SocketAddr) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{ name: reviews }}
spec:
  hosts: [reviews]
  ports: [{{ number: 9080, name: http, protocol: HTTP }}]
  resolution: STATIC
  endpoints:
  - {{ address: 127.0.0.1, ports: {{ http: {} }}, labels: {{ app: reviews, version: v1 }} }}
  - {{ address: 127.0.0.1, ports: {{ http: {} }}, labels: {{ app: reviews, version: v2 }} }}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{ name: productpage }}
spec:
  hosts: [productpage]
  ports: [{{ number: 9080, name: http, protocol: HTTP }}]
  resolution: STATIC
  endpoints:
  - {{ address: 127.0.0.1, ports: {{ http: {} }}, labels: {{ app: productpage, version: v1 }} }}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{ name: reviews }}
spec:
  host: reviews
  subsets:
  - {{ name: v1, labels: {{ version: v1 }} }}
  - {{ name: v2, labels: {{ version: v2 }} }}
"#,
        v1.port(),
        v2.port(),
        productpage.port()
    )
}

/// Jason to v2, everyone else to v1 (Istio's `virtual-service-reviews-test-v2.yaml`).
const JASON_TO_V2: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - match: [{ headers: { end-user: { exact: jason } } }]
    route: [{ destination: { host: reviews, subset: v2 } }]
  - route: [{ destination: { host: reviews, subset: v1 } }]
"#;

const ALL_TO_V2: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - route: [{ destination: { host: reviews, subset: v2 } }]
"#;

/// Invalid to istiod: a 0 s timeout (durations must be at least 1 ms).
const INVALID_TIMEOUT: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - route: [{ destination: { host: reviews, subset: v1 } }]
    timeout: 0s
"#;

const GATEWAY: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: bookinfo-gateway }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: 8080, name: http, protocol: HTTP }
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: bookinfo }
spec:
  hosts: ["*"]
  gateways: [bookinfo-gateway]
  http:
  - match: [{ uri: { exact: /productpage } }, { uri: { prefix: /static } }]
    route: [{ destination: { host: productpage, port: { number: 9080 } } }]
"#;

/// A fresh directory holding `files`.
fn dir(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mesh-istio-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for (f, text) in files {
        std::fs::write(d.join(f), text).unwrap();
    }
    d
}

async fn upstream_for(addr: SocketAddr, host: &str, user: Option<&str>) -> (u16, String) {
    let mut headers = vec![("host", host)];
    if let Some(u) = user {
        headers.push(("end-user", u));
    }
    let r = Client::http1().get(addr, "/reviews/0", &headers).await;
    (r.status.as_u16(), r.header("x-upstream").to_owned())
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `mesh-proxy --istio DIR ARGS…` to completion (for --print-config and start-up errors).
fn run_istio(d: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mesh-proxy"))
        .args(["--istio", path(d)])
        .args(args)
        .output()
        .unwrap()
}

/// The sidecar role on port 15001.
const SIDECAR: [&str; 4] = ["--role", "sidecar", "--outbound-port", "15001"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_routes_by_host_per_the_mesh_virtual_services_and_reloads() {
    let v1 = Upstream::start("v1", Behavior::Identify).await;
    let v2 = Upstream::start("v2", Behavior::Identify).await;
    let pp = Upstream::start("productpage", Behavior::Identify).await;
    let d = dir(
        "sidecar",
        &[
            ("services.yaml", &services(v1.addr(), v2.addr(), pp.addr())),
            ("reviews.yaml", JASON_TO_V2),
        ],
    );
    let p = ProxyProcess::spawn(&[
        "--istio",
        path(&d),
        "--role",
        "sidecar",
        "--outbound-port",
        "0",
        "--watch",
        "--no-access-log",
        "--admin",
        "127.0.0.1:0",
    ]);
    let (addr, lines) = p.wait_ready("127.0.0.1_0");
    let admin: SocketAddr = lines
        .iter()
        .find_map(|l| l.strip_prefix("mesh-proxy: admin on "))
        .expect("admin line")
        .parse()
        .unwrap();

    // As a pod names its destination: with and without the port, short and long.
    for host in [
        "reviews:9080",
        "reviews",
        "reviews.default:9080",
        "reviews.default.svc.cluster.local:9080",
    ] {
        assert_eq!(
            upstream_for(addr, host, None).await,
            (200, "v1".into()),
            "{host}"
        );
        assert_eq!(
            upstream_for(addr, host, Some("jason")).await,
            (200, "v2".into()),
            "{host}"
        );
    }
    // A service no VirtualService covers gets its default route.
    assert_eq!(
        upstream_for(addr, "productpage:9080", None).await,
        (200, "productpage".into())
    );
    // Not a mesh service: no route.
    assert_eq!(upstream_for(addr, "elsewhere:9080", None).await.0, 404);

    let dump = Client::http1().get(admin, "/config_dump", &[]).await.text();
    for name in [
        "outbound|9080|v1|reviews.default.svc.cluster.local",
        "outbound|9080|v2|reviews.default.svc.cluster.local",
        "outbound|9080||productpage.default.svc.cluster.local",
        "reviews.default.svc.cluster.local:9080",
    ] {
        assert!(dump.contains(name), "{name} in config_dump");
    }

    // --watch: a changed VirtualService is applied; an invalid one is rejected and the
    // running config keeps serving.
    std::fs::write(d.join("reviews.yaml"), ALL_TO_V2).unwrap();
    eventually(Duration::from_secs(20), "all traffic to v2", || async {
        upstream_for(addr, "reviews:9080", None).await.1 == "v2"
    })
    .await;
    std::fs::write(d.join("reviews.yaml"), INVALID_TIMEOUT).unwrap();
    eventually(Duration::from_secs(20), "the rejection", || async {
        Client::http1()
            .get(admin, "/stats?filter=config_reload_rejected", &[])
            .await
            .text()
            == "server.config_reload_rejected: 1\n"
    })
    .await;
    assert_eq!(upstream_for(addr, "reviews:9080", None).await.1, "v2");
    assert!(p.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_serves_the_gateways_that_select_it_on_mapped_ports() {
    let v1 = Upstream::start("v1", Behavior::Identify).await;
    let pp = Upstream::start("productpage", Behavior::Identify).await;
    let d = dir(
        "gateway",
        &[
            ("services.yaml", &services(v1.addr(), v1.addr(), pp.addr())),
            ("gateway.yaml", GATEWAY),
        ],
    );
    let p = ProxyProcess::spawn(&[
        "--istio",
        path(&d),
        "--role",
        "gateway",
        "--labels",
        "istio=ingressgateway",
        "--port-map",
        "8080=0",
        "--no-access-log",
    ]);
    let (addr, _) = p.wait_ready("127.0.0.1_8080");
    let c = Client::http1();
    let r = c
        .get(addr, "/productpage", &[("host", "bookinfo.example")])
        .await;
    assert_eq!(
        (r.status.as_u16(), r.header("x-upstream")),
        (200, "productpage")
    );
    assert_eq!(
        c.get(addr, "/static/app.css", &[]).await.status.as_u16(),
        200
    );
    assert_eq!(c.get(addr, "/admin", &[]).await.status.as_u16(), 404);
    assert!(p.terminate().success());

    // Labels that no Gateway selects: no listener, so nothing to run.
    let out = run_istio(
        &d,
        &[
            "--role",
            "gateway",
            "--labels",
            "istio=egressgateway",
            "--print-config",
        ],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        json["static_resources"]["listeners"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{json}"
    );
}

#[test]
fn print_config_shows_the_translation_and_bad_yaml_fails_with_its_path() {
    let a: SocketAddr = "127.0.0.1:19081".parse().unwrap();
    let d = dir(
        "print",
        &[
            ("services.yaml", &services(a, a, a)),
            ("reviews.yaml", JASON_TO_V2),
        ],
    );
    let out = run_istio(&d, &[&SIDECAR[..], &["--print-config"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let clusters: Vec<&str> = json["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        clusters.contains(&"outbound|9080|v2|reviews.default.svc.cluster.local"),
        "{clusters:?}"
    );
    assert_eq!(
        json["static_resources"]["listeners"][0]["name"],
        "127.0.0.1_15001"
    );

    std::fs::write(d.join("reviews.yaml"), INVALID_TIMEOUT).unwrap();
    let out = run_istio(&d, &SIDECAR);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reviews.default VirtualService: spec.http[0].timeout"),
        "{err}"
    );

    // Without --outbound-port the sidecar is the captured one (Istio's listener layout); the
    // same resources are checked the same way.
    let out = run_istio(&d, &["--role", "sidecar", "--print-config"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reviews.default VirtualService: spec.http[0].timeout"),
        "{err}"
    );
}

#[test]
fn what_cannot_be_honoured_is_a_warning_or_with_strict_an_error() {
    let a: SocketAddr = "127.0.0.1:19081".parse().unwrap();
    let tcp = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews-tcp }
spec:
  hosts: [reviews]
  tcp:
  - route: [{ destination: { host: reviews, subset: v1 } }]
"#;
    let d = dir(
        "strict",
        &[("services.yaml", &services(a, a, a)), ("tcp.yaml", tcp)],
    );
    let run = |strict: bool| {
        let extra: &[&str] = if strict {
            &["--print-config", "--strict"]
        } else {
            &["--print-config"]
        };
        run_istio(&d, &[&SIDECAR[..], extra].concat())
    };
    let lenient = run(false);
    assert!(lenient.status.success());
    let err = String::from_utf8_lossy(&lenient.stderr);
    assert!(
        err.contains("warning: reviews-tcp.default VirtualService: spec.tcp"),
        "{err}"
    );
    let strict = run(true);
    assert_eq!(strict.status.code(), Some(1));
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(
        err.contains("error: reviews-tcp.default VirtualService: spec.tcp")
            && err.contains("--strict"),
        "{err}"
    );
}
