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

/// A Kubernetes Gateway, an HTTPRoute and the Service it names (endpoints on `v1` and `v2`),
/// plus a route whose backend is in a namespace that grants nothing.
fn gateway_api(v1: SocketAddr, v2: SocketAddr) -> String {
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{ name: web, namespace: infra }}
spec:
  gatewayClassName: mesh
  listeners: [{{ name: http, port: 80, protocol: HTTP, hostname: "*.example.com" }}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: shop, namespace: infra }}
spec:
  parentRefs: [{{ name: web }}]
  hostnames: [shop.example.com]
  rules:
  - matches: [{{ path: {{ type: PathPrefix, value: /cart }} }}]
    backendRefs: [{{ name: cart, port: 8080 }}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: stolen, namespace: infra }}
spec:
  parentRefs: [{{ name: web }}]
  hostnames: [other.example.com]
  rules: [{{ backendRefs: [{{ name: secret, namespace: vault, port: 80 }}] }}]
---
apiVersion: v1
kind: Service
metadata: {{ name: cart, namespace: infra }}
spec: {{ ports: [{{ name: http, port: 8080 }}] }}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{ name: cart-1, namespace: infra, labels: {{ kubernetes.io/service-name: cart }} }}
addressType: IPv4
ports: [{{ name: http, port: {} }}]
endpoints: [{{ addresses: ["127.0.0.1"] }}]
---
apiVersion: v1
kind: Service
metadata: {{ name: secret, namespace: vault }}
spec: {{ ports: [{{ name: http, port: 80 }}] }}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{ name: secret-1, namespace: vault, labels: {{ kubernetes.io/service-name: secret }} }}
addressType: IPv4
ports: [{{ name: http, port: {} }}]
endpoints: [{{ addresses: ["127.0.0.1"] }}]
"#,
        v1.port(),
        v2.port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_serves_a_kubernetes_gateway_and_reports_route_status() {
    let cart = Upstream::start("cart", Behavior::Identify).await;
    let secret = Upstream::start("secret", Behavior::Identify).await;
    let d = dir(
        "gateway-api",
        &[("web.yaml", &gateway_api(cart.addr(), secret.addr()))],
    );
    let args = [
        "--gateway-api",
        path(&d),
        "--role",
        "gateway",
        "--gateway",
        "web.infra",
        "--port-map",
        "80=0",
    ];
    let p =
        ProxyProcess::spawn(&[&args[..], &["--no-access-log", "--admin", "127.0.0.1:0"]].concat());
    let (addr, lines) = p.wait_ready("127.0.0.1_80");
    let admin: SocketAddr = lines
        .iter()
        .find_map(|l| l.strip_prefix("mesh-proxy: admin on "))
        .expect("admin line")
        .parse()
        .unwrap();
    let c = Client::http1();
    let r = c
        .get(addr, "/cart/items", &[("host", "shop.example.com")])
        .await;
    assert_eq!((r.status.as_u16(), r.header("x-upstream")), (200, "cart"));
    // Segment-aware: /cartoon is not under /cart.
    let r = c
        .get(addr, "/cartoon", &[("host", "shop.example.com")])
        .await;
    assert_eq!(r.status.as_u16(), 404);
    // No ReferenceGrant lets infra route to vault: 500, never the backend.
    let r = c.get(addr, "/", &[("host", "other.example.com")]).await;
    assert_eq!(r.status.as_u16(), 500);
    assert_eq!(secret.requests(), 0);
    let status = c.get(admin, "/gateway_api_status", &[]).await.text();
    assert!(status.contains("reason: RefNotPermitted"), "{status}");
    assert!(p.terminate().success());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mesh-proxy"))
        .args(args)
        .arg("--print-status")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let docs: Vec<serde_json::Value> = text
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect();
    let route = |name: &str| {
        docs.iter()
            .find(|d| d["kind"] == "HTTPRoute" && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no status for {name}: {text}"))
            .clone()
    };
    let conditions = &route("shop")["status"]["parents"][0]["conditions"];
    assert_eq!(conditions[0]["type"], "Accepted");
    assert_eq!(conditions[0]["status"], "True");
    assert_eq!(conditions[1]["reason"], "ResolvedRefs");
    let conditions = &route("stolen")["status"]["parents"][0]["conditions"];
    assert_eq!(conditions[1]["status"], "False");
    assert_eq!(conditions[1]["reason"], "RefNotPermitted");
    let gw = docs
        .iter()
        .find(|d| d["kind"] == "Gateway")
        .expect("the Gateway's status");
    assert_eq!(gw["status"]["listeners"][0]["attachedRoutes"], 2);
}
