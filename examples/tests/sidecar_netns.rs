//! The sidecar as Istio runs it, on a real kernel with real iptables (issue #14).
//!
//! Two network namespaces joined by a veth pair: the "application" one holds the client, a
//! local server and the sidecar (uid 1337, behind `mesh-proxy iptables`); the "pods" one holds
//! two pods of a service, a TCP service and an address no service owns. The client connects
//! by plain socket to service addresses that exist nowhere (the iptables capture sends them to
//! the sidecar, which recovers them with `SO_ORIGINAL_DST`).
//!
//! Needs root (network namespaces and iptables) and Debian's iptables, iproute2, util-linux,
//! curl and python3, which `tests/netns/setup.sh` installs. Without root it skips with a
//! notice; in CI (`CI=true`, root) a failed setup fails the test.

mod support;

use std::path::Path;
use std::process::Command;

use support::{ProxyProcess, temp_file};

const APP_IP: &str = "10.77.0.1";
const PODS_IP: &str = "10.77.0.2";
const V1_IP: &str = "10.77.0.3";
const V2_IP: &str = "10.77.0.4";
/// The service's virtual address (a Kubernetes ClusterIP): routed nowhere, only captured.
const REVIEWS_VIP: &str = "10.96.0.10";
const ECHO_VIP: &str = "10.96.0.20";

fn dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/netns"))
}

/// Whether the test can run here: as root, with its packages installed.
fn can_run() -> bool {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        eprintln!("notice: not root; skipping the network-namespace sidecar test");
        return false;
    }
    let ok = Command::new("bash")
        .arg(dir().join("setup.sh"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok || std::env::var("CI").as_deref() != Ok("true"),
        "tests/netns/setup.sh failed (required in CI)"
    );
    if !ok {
        eprintln!("notice: tests/netns/setup.sh failed; skipping the network-namespace test");
    }
    ok
}

/// Runs a command, failing the test with its output when it fails; returns its stdout.
fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The two namespaces and their veth pair; deleted on drop.
struct Net {
    app: String,
    pods: String,
}

impl Net {
    fn new() -> Self {
        let id = std::process::id();
        let net = Self {
            app: format!("mesh-{id}-app"),
            pods: format!("mesh-{id}-pods"),
        };
        let (va, vp) = (format!("m{id}a"), format!("m{id}p"));
        run(&["ip", "netns", "add", &net.app]);
        run(&["ip", "netns", "add", &net.pods]);
        run(&[
            "ip", "link", "add", &va, "type", "veth", "peer", "name", &vp,
        ]);
        run(&["ip", "link", "set", &va, "netns", &net.app]);
        run(&["ip", "link", "set", &vp, "netns", &net.pods]);
        for (ns, dev, ips) in [
            (&net.app, &va, vec![APP_IP]),
            (&net.pods, &vp, vec![PODS_IP, V1_IP, V2_IP]),
        ] {
            for ip in ips {
                run(&[
                    "ip",
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{ip}/24"),
                    "dev",
                    dev,
                ]);
            }
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        // A pod's default route: the service addresses are captured before they are routed,
        // but a connect needs a route to start with.
        run(&[
            "ip", "-n", &net.app, "route", "add", "default", "via", PODS_IP,
        ]);
        net
    }

    /// `ip netns exec NS ARGS…` as a command line.
    fn exec<'a>(&'a self, ns: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["ip", "netns", "exec", ns];
        v.extend_from_slice(args);
        v
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.app, &self.pods] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Starts `peer.py serve SPECS` in `ns` and waits for its readiness line.
fn serve(ns: &str, specs: &[&str]) -> ProxyProcess {
    let script = dir().join("peer.py");
    let mut args = vec![
        "netns",
        "exec",
        ns,
        "python3",
        script.to_str().unwrap(),
        "serve",
    ];
    args.extend_from_slice(specs);
    let p = ProxyProcess::spawn_program("ip", &args);
    p.read_until(|l| l == "ready");
    p
}

/// The sidecar's bootstrap, in Istio's layout (names included); `catchall` is the cluster of
/// connections to addresses no service owns: `PassthroughCluster` (ALLOW_ANY) or
/// `BlackHoleCluster` (REGISTRY_ONLY).
fn sidecar_config(catchall: &str) -> String {
    let log = r#"
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: { text_format: "access %UPSTREAM_CLUSTER% %DOWNSTREAM_LOCAL_ADDRESS% %UPSTREAM_HOST% %BYTES_RECEIVED%\n" }"#;
    let tcp = |name: &str, prefix: &str, cluster: &str| {
        format!(
            r#"
    - name: {name}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: {prefix}
          cluster: {cluster}{log}"#
        )
    };
    let hcm = |prefix: &str, routes: &str| {
        format!(
            r#"
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {prefix}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: {routes}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}{log}"#
        )
    };
    let reviews_routes = r#"
              - match: { prefix: /, headers: [{ name: end-user, string_match: { exact: jason } }] }
                route: { cluster: "outbound|9080|v2|reviews.default.svc.cluster.local" }
              - match: { prefix: / }
                route: { cluster: "outbound|9080|v1|reviews.default.svc.cluster.local" }"#;
    let inbound_routes = r#"
              - match: { prefix: / }
                route: { cluster: "inbound|8080||", timeout: 0s }"#;
    let blackhole_chain = tcp(
        "virtualOutbound-blackhole",
        "BlackHoleCluster",
        "BlackHoleCluster",
    );
    let catchall_chain = tcp("virtualOutbound-catchall-tcp", catchall, catchall);
    let inbound_loop = tcp(
        "virtualInbound-blackhole",
        "BlackHoleCluster",
        "BlackHoleCluster",
    );
    let inbound_passthrough = tcp(
        "virtualInbound",
        "InboundPassthroughClusterIpv4",
        "InboundPassthroughClusterIpv4",
    );
    let echo_chain = tcp(
        "",
        "outbound|7777||echo.default.svc.cluster.local",
        "outbound|7777||echo.default.svc.cluster.local",
    );
    let reviews_hcm = hcm("outbound_0.0.0.0_9080", reviews_routes);
    let inbound_hcm = hcm("inbound_0.0.0.0_8080", inbound_routes);
    let static_cluster = |name: &str, ip: &str, port: u16| {
        format!(
            r#"
  - name: "{name}"
    type: STATIC
    connect_timeout: 10s
    load_assignment:
      cluster_name: "{name}"
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: {ip}, port_value: {port} }} }} }} }}] }}]"#
        )
    };
    let v1 = static_cluster(
        "outbound|9080|v1|reviews.default.svc.cluster.local",
        V1_IP,
        9080,
    );
    let v2 = static_cluster(
        "outbound|9080|v2|reviews.default.svc.cluster.local",
        V2_IP,
        9080,
    );
    let echo = static_cluster("outbound|7777||echo.default.svc.cluster.local", V1_IP, 7777);
    format!(
        r#"
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 15000 }} }}
static_resources:
  listeners:
  - name: virtualOutbound
    address: {{ socket_address: {{ address: 0.0.0.0, port_value: 15001 }} }}
    use_original_dst: true
    filter_chains:
    - filter_chain_match: {{ destination_port: 15001 }}{blackhole_chain_body}
    default_filter_chain:{catchall_body}
  - name: 0.0.0.0_9080
    address: {{ socket_address: {{ address: 0.0.0.0, port_value: 9080 }} }}
    bind_to_port: false
    filter_chains:
    - name: 0.0.0.0_9080{reviews_hcm}
  - name: {ECHO_VIP}_7777
    address: {{ socket_address: {{ address: {ECHO_VIP}, port_value: 7777 }} }}
    bind_to_port: false
    filter_chains:{echo_chain}
  - name: virtualInbound
    address: {{ socket_address: {{ address: 0.0.0.0, port_value: 15006 }} }}
    listener_filters:
    - name: envoy.filters.listener.original_dst
    - name: envoy.filters.listener.http_inspector
    filter_chains:
    - filter_chain_match: {{ destination_port: 15006 }}{inbound_loop_body}
    - name: 0.0.0.0_8080
      filter_chain_match: {{ destination_port: 8080, application_protocols: [http/1.1, h2c] }}{inbound_hcm}
    default_filter_chain:{inbound_passthrough_body}
  clusters:
  - name: PassthroughCluster
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    connect_timeout: 10s
  - name: BlackHoleCluster
    type: STATIC
    connect_timeout: 10s
    load_assignment: {{ cluster_name: BlackHoleCluster }}
  - name: InboundPassthroughClusterIpv4
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    connect_timeout: 10s
    upstream_bind_config: {{ source_address: {{ address: 127.0.0.6, port_value: 0 }} }}
  - name: "inbound|8080||"
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    connect_timeout: 10s
    upstream_bind_config: {{ source_address: {{ address: 127.0.0.6, port_value: 0 }} }}{v1}{v2}{echo}
"#,
        blackhole_chain_body = chain_body(&blackhole_chain),
        catchall_body = chain_body(&catchall_chain),
        inbound_loop_body = chain_body(&inbound_loop),
        inbound_passthrough_body = chain_body(&inbound_passthrough),
    )
}

/// A `tcp()` chain as the body of a list item that already has its first line (drops the
/// leading `- name:` line, keeping the filters).
fn chain_body(chain: &str) -> String {
    let mut lines = chain.lines().skip(2); // the empty first line and `- name: …`
    let mut out = String::new();
    for l in lines.by_ref() {
        out.push('\n');
        out.push_str(l);
    }
    out
}

struct Sidecar {
    proc: ProxyProcess,
}

impl Sidecar {
    /// Starts the sidecar in the application namespace as uid/gid 1337 and waits until it is
    /// ready.
    fn start(net: &Net, catchall: &str) -> Self {
        let config = temp_file(
            &format!("sidecar-{catchall}.yaml"),
            &sidecar_config(catchall),
        );
        let config = config.to_str().unwrap().to_owned();
        let args = net.exec(
            &net.app,
            &[
                "setpriv",
                "--reuid=1337",
                "--regid=1337",
                "--clear-groups",
                env!("CARGO_BIN_EXE_mesh-proxy"),
                "--concurrency",
                "1",
                "--config",
            ],
        );
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(config);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let proc = ProxyProcess::spawn_program(refs[0], &refs[1..]);
        proc.read_until(|l| l == "mesh-proxy: ready");
        Self { proc }
    }

    /// Waits for the access-log line of a connection to `destination`.
    fn logged(&self, destination: &str) -> String {
        let lines = self
            .proc
            .read_until(|l| l.starts_with("access ") && l.contains(destination));
        lines.last().cloned().unwrap_or_default()
    }
}

/// One stat from the sidecar's admin (`/stats`, Envoy's `name: value` lines).
fn stat(net: &Net, name: &str) -> u64 {
    let text = run(&net.exec(&net.app, &["curl", "-sS", "http://127.0.0.1:15000/stats"]));
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
        .map_or(0, |v| v.trim().parse().unwrap_or(0))
}

#[test]
fn the_sidecar_captures_outbound_and_inbound_traffic() {
    if !can_run() {
        return;
    }
    let net = Net::new();
    let peer = dir().join("peer.py");
    let peer = peer.to_str().unwrap();
    let _pods = serve(
        &net.pods,
        &[
            &format!("http:{V1_IP}:9080:reviews-v1"),
            &format!("http:{V2_IP}:9080:reviews-v2"),
            &format!("echo:{V1_IP}:7777"),
            &format!("echo:{PODS_IP}:7777"),
        ],
    );
    let _app = serve(&net.app, &["whoami:0.0.0.0:8080"]);
    run(&net.exec(&net.app, &[env!("CARGO_BIN_EXE_mesh-proxy"), "iptables"]));
    let sidecar = Sidecar::start(&net, "PassthroughCluster");

    // HTTP to the service's virtual address, by plain socket: through the sidecar, which
    // routes by the VirtualService's header match to subset v2 or v1.
    let url = format!("http://{REVIEWS_VIP}:9080/reviews");
    let get = |headers: &[&str]| {
        let mut args = vec!["curl", "-sS", "--max-time", "20"];
        args.extend_from_slice(headers);
        args.push(&url);
        run(&net.exec(&net.app, &args))
    };
    assert_eq!(get(&[]), "reviews-v1 -");
    assert_eq!(get(&["-H", "end-user: jason"]), "reviews-v2 jason");
    // The access log names where the client was going: the original destination.
    let line = sidecar.logged(&format!("{REVIEWS_VIP}:9080"));
    assert!(line.contains("outbound|9080|"), "{line}");

    // A raw TCP protocol passes through tcp_proxy byte for byte, both ways, half-close
    // included (the server's last line is its answer to the client's end of stream).
    let out = run(&net.exec(
        &net.app,
        &["python3", peer, "send", ECHO_VIP, "7777", "hello\nworld\n"],
    ));
    assert_eq!(out, "HELLO\nWORLD\nbye\n");
    sidecar.logged(&format!("{ECHO_VIP}:7777"));

    // ALLOW_ANY: an address no service owns passes through to where it was going.
    let out = run(&net.exec(&net.app, &["python3", peer, "send", PODS_IP, "7777", "x\n"]));
    assert_eq!(out, "X\nbye\n");
    let line = sidecar.logged(&format!("{PODS_IP}:7777"));
    assert!(line.contains("PassthroughCluster"), "{line}");

    // Inbound: from the other namespace to the application's port, through virtualInbound;
    // the application sees the sidecar's inbound source address.
    let seen = run(&net.exec(
        &net.pods,
        &[
            "curl",
            "-sS",
            "--max-time",
            "20",
            &format!("http://{APP_IP}:8080/"),
        ],
    ));
    assert_eq!(seen, "127.0.0.6");
    sidecar.logged(&format!("{APP_IP}:8080"));

    // The sidecar's own connections were not captured again: nothing reached the loop
    // guards, and each service saw one upstream connection per request.
    assert_eq!(stat(&net, "tcp.BlackHoleCluster.downstream_cx_total"), 0);
    assert_eq!(
        stat(&net, "cluster.PassthroughCluster.upstream_cx_total"),
        1
    );
    drop(sidecar);

    // REGISTRY_ONLY: the same address is refused by the BlackHoleCluster, and counted.
    let _sidecar = Sidecar::start(&net, "BlackHoleCluster");
    let out = run(&net.exec(&net.app, &["python3", peer, "send", PODS_IP, "7777", "x\n"]));
    assert!(out.is_empty() || out == "closed", "{out:?}");
    assert_eq!(
        stat(&net, "cluster.BlackHoleCluster.upstream_cx_none_healthy"),
        1
    );
}
