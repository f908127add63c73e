//! `mesh-pilot` and `mesh-proxy` as processes: the proxy starts from a bootstrap with only
//! `dynamic_resources` and the control plane's cluster, serves what the pilot sends, and a
//! change to the pilot's watched files (a service scaled out) reaches it as an EDS push.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use mesh_proxy::test_util::{Behavior, Client, Upstream};
use support::{ProxyProcess, eventually, temp_file};

fn service_entry(endpoints: &[SocketAddr]) -> String {
    let mut eps = String::new();
    for e in endpoints {
        eps.push_str(&format!(
            "  - {{ address: {}, ports: {{ http: {} }} }}\n",
            e.ip(),
            e.port()
        ));
    }
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
         metadata: {{ name: web, namespace: default }}\n\
         spec:\n  hosts: [web]\n  location: MESH_INTERNAL\n\
         \x20 ports: [{{ number: 9080, name: http, protocol: HTTP }}]\n\
         \x20 resolution: STATIC\n  endpoints:\n{eps}"
    )
}

fn bootstrap(xds: SocketAddr) -> String {
    format!(
        r#"node:
  id: sidecar~127.0.0.1~web-client-0.default~default.svc.cluster.local
  metadata: {{ NAMESPACE: default, MESH_OUTBOUND_PORT: 0 }}
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    transport_api_version: V3
    grpc_services: [{{ envoy_grpc: {{ cluster_name: xds-grpc }} }}]
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: xds-grpc
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: {}, port_value: {} }} }} }} }}] }}]
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }} }}
"#,
        xds.ip(),
        xds.port()
    )
}

fn addr_after(lines: &[String], prefix: &str) -> SocketAddr {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {lines:#?}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_pilot_drives_a_proxy_process_and_pushes_file_changes() {
    let a = Upstream::start("a", Behavior::Identify).await;
    let b = Upstream::start("b", Behavior::Identify).await;
    let yaml = temp_file("web.yaml", &service_entry(&[a.addr()]));
    let pilot = ProxyProcess::spawn_program(
        env!("CARGO_BIN_EXE_mesh-pilot"),
        &[
            "--istio",
            yaml.to_str().unwrap(),
            "--watch",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let lines = pilot.read_until(|l| l == "mesh-pilot: ready");
    let xds = addr_after(&lines, "mesh-pilot: xds on ");
    let pilot_admin = addr_after(&lines, "mesh-pilot: admin on ");

    let config = temp_file("bootstrap.yaml", &bootstrap(xds));
    let proxy = ProxyProcess::spawn(&["--config", config.to_str().unwrap(), "--no-access-log"]);
    let lines = proxy.read_until(|l| l == "mesh-proxy: ready");
    let admin = addr_after(&lines, "mesh-proxy: admin on ");
    let client = Client::http1();

    // The outbound listener arrives over LDS; the proxy is ready once the initial fetch is over.
    eventually(
        Duration::from_secs(20),
        "the proxy's initial fetch",
        || async { client.get(admin, "/ready", &[]).await.status == 200 },
    )
    .await;
    let listeners = client.get(admin, "/listeners", &[]).await.text();
    let outbound: SocketAddr = listeners
        .lines()
        .find_map(|l| l.split_once("::").map(|(_, a)| a.to_owned()))
        .unwrap_or_else(|| panic!("no listener: {listeners}"))
        .parse()
        .unwrap();
    let r = client.get(outbound, "/", &[("host", "web:9080")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), "a");

    // The service scales out in the watched file: the pilot pushes EDS, the proxy takes it.
    std::fs::write(&yaml, service_entry(&[a.addr(), b.addr()])).unwrap();
    pilot.read_until(|l| l.starts_with("mesh-pilot: pushed"));
    eventually(
        Duration::from_secs(20),
        "traffic on the new instance",
        || async {
            client
                .get(outbound, "/", &[("host", "web:9080")])
                .await
                .header("x-upstream")
                == "b"
        },
    )
    .await;
    let syncz: serde_json::Value =
        serde_json::from_str(&client.get(pilot_admin, "/debug/syncz", &[]).await.text()).unwrap();
    let node = &syncz[0]["types"];
    assert_eq!(node["EDS"]["responses"], 2, "{syncz:#}");
    for t in ["CDS", "LDS", "RDS"] {
        assert_eq!(node[t]["responses"], 1, "{t} resent: {syncz:#}");
        assert_eq!(node[t]["synced"], true);
    }
    assert!(proxy.terminate().success());
}
