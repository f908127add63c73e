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

/// The mesh as Istio YAML: reviews (two pods, subsets by version, a VirtualService sending
/// `end-user: jason` to v2), a TCP echo service with a `tcp[]` route, and the application
/// itself (productpage, the workload this sidecar's labels select). Each service has a virtual
/// IP, as Kubernetes gives it.
fn istio_yaml() -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{ name: reviews }}
spec:
  hosts: [reviews.default.svc.cluster.local]
  addresses: [{REVIEWS_VIP}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{ number: 9080, name: http, protocol: HTTP }}]
  endpoints:
  - {{ address: {V1_IP}, labels: {{ app: reviews, version: v1 }} }}
  - {{ address: {V2_IP}, labels: {{ app: reviews, version: v2 }} }}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{ name: reviews }}
spec:
  host: reviews
  trafficPolicy: {{ tls: {{ mode: ISTIO_MUTUAL }} }}
  subsets:
  - {{ name: v1, labels: {{ version: v1 }} }}
  - {{ name: v2, labels: {{ version: v2 }} }}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{ name: reviews }}
spec:
  selector: {{ matchLabels: {{ app: reviews }} }}
  mtls: {{ mode: PERMISSIVE }}
  portLevelMtls: {{ "9080": {{ mode: STRICT }} }}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{ name: reviews }}
spec:
  hosts: [reviews]
  http:
  - match: [{{ headers: {{ end-user: {{ exact: jason }} }} }}]
    route: [{{ destination: {{ host: reviews, subset: v2 }} }}]
  - route: [{{ destination: {{ host: reviews, subset: v1 }} }}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{ name: echo }}
spec:
  hosts: [echo.default.svc.cluster.local]
  addresses: [{ECHO_VIP}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{ number: 7777, name: tcp-echo, protocol: TCP }}]
  endpoints: [{{ address: {V1_IP}, labels: {{ app: echo }} }}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{ name: echo }}
spec:
  hosts: [echo]
  tcp:
  - match: [{{ port: 7777 }}]
    route: [{{ destination: {{ host: echo, port: {{ number: 7777 }} }} }}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{ name: productpage }}
spec:
  hosts: [productpage.default.svc.cluster.local]
  addresses: [10.96.0.30]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{ number: 8080, name: http, protocol: HTTP }}]
  endpoints: [{{ address: {APP_IP}, labels: {{ app: productpage }} }}]
"#
    )
}

fn identity_dir(workload: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "mesh-netns-{}-identity-{workload}",
        std::process::id()
    ));
    dir.to_str().unwrap().to_owned()
}

/// The mesh's root and a workload identity per workload (`cert-chain.pem`, `key.pem`,
/// `root-cert.pem`, as Istio's agent writes them), made with openssl: SPIFFE URI SANs
/// `spiffe://cluster.local/ns/default/sa/<workload>`.
fn make_identities(workloads: &[&str]) {
    let root = std::env::temp_dir().join(format!("mesh-netns-{}-root", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let r = |f: &str| root.join(f).to_str().unwrap().to_owned();
    run(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &r("ca.key"),
        "-out",
        &r("ca.pem"),
        "-subj",
        "/O=mesh-test",
        "-days",
        "1",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    for w in workloads {
        let dir = identity_dir(w);
        std::fs::create_dir_all(&dir).unwrap();
        let d = |f: &str| format!("{dir}/{f}");
        let ext = d("san.ext");
        std::fs::write(
            &ext,
            format!("subjectAltName=URI:spiffe://cluster.local/ns/default/sa/{w}\n"),
        )
        .unwrap();
        run(&[
            "openssl",
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &d("key.pem"),
            "-out",
            &d("leaf.csr"),
            "-subj",
            "/O=mesh-test",
        ]);
        run(&[
            "openssl",
            "x509",
            "-req",
            "-in",
            &d("leaf.csr"),
            "-CA",
            &r("ca.pem"),
            "-CAkey",
            &r("ca.key"),
            "-CAcreateserial",
            "-out",
            &d("cert-chain.pem"),
            "-days",
            "1",
            "-extfile",
            &ext,
        ]);
        std::fs::copy(r("ca.pem"), d("root-cert.pem")).unwrap();
        // The sidecar runs as uid 1337.
        run(&["chmod", "-R", "a+rX", &dir]);
    }
}

struct Sidecar {
    proc: ProxyProcess,
}

impl Sidecar {
    /// Starts the sidecar in the application namespace as uid/gid 1337, from the Istio YAML
    /// with `policy` (`allow-any` or `registry-only`) and one more flag `log` (`--no-access-log`
    /// drops the access logs again, `-v`… anything harmless keeps them), and waits until it is
    /// ready.
    fn start(net: &Net, policy: &str, log: &str) -> Self {
        Self::start_in(
            &net.app,
            net,
            "app=productpage",
            &identity_dir("productpage"),
            policy,
            log,
        )
    }

    /// A sidecar in namespace `ns` for the workload `labels`, with its identity in `identity`.
    fn start_in(
        ns: &str,
        net: &Net,
        labels: &str,
        identity: &str,
        policy: &str,
        log: &str,
    ) -> Self {
        let istio = temp_file("mesh.yaml", &istio_yaml());
        let istio = istio.to_str().unwrap();
        let args = net.exec(
            ns,
            &[
                "setpriv",
                "--reuid=1337",
                "--regid=1337",
                "--clear-groups",
                env!("CARGO_BIN_EXE_mesh-proxy"),
                "--concurrency",
                "1",
                "--admin",
                "127.0.0.1:15000",
                "--istio",
                istio,
                "--role",
                "sidecar",
                "--labels",
                labels,
                "--identity-dir",
                identity,
                "--access-log",
                "/dev/stdout",
                log,
                "--outbound-traffic-policy",
                policy,
            ],
        );
        let proc = ProxyProcess::spawn_program(args[0], &args[1..]);
        proc.read_until(|l| l == "mesh-proxy: ready");
        Self { proc }
    }

    /// Waits for the access-log line of a connection to `destination`.
    fn logged(&self, destination: &str) -> String {
        let lines = self
            .proc
            .read_until(|l| l.starts_with('[') && l.contains(destination));
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
    make_identities(&["productpage", "reviews"]);
    // The reviews pods have their own sidecar: mutual TLS on 9080 (STRICT), plain text
    // elsewhere (PERMISSIVE).
    run(&net.exec(&net.pods, &[env!("CARGO_BIN_EXE_mesh-proxy"), "iptables"]));
    let _reviews_sidecar = Sidecar::start_in(
        &net.pods,
        &net,
        "app=reviews",
        &identity_dir("reviews"),
        "allow-any",
        "--no-access-log",
    );
    run(&net.exec(&net.app, &[env!("CARGO_BIN_EXE_mesh-proxy"), "iptables"]));
    let sidecar = Sidecar::start(&net, "allow-any", "--namespace=default");

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
    // That hop was mutual TLS (ISTIO_MUTUAL to a STRICT port): the reviews sidecar counted
    // the handshakes, and plain text to the pod (sent as uid 1337, so not captured on this
    // side) is refused there.
    let pods_stat = |name: &str| {
        let text = run(&net.exec(&net.pods, &["curl", "-sS", "http://127.0.0.1:15000/stats"]));
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
            .map_or(0, |v| v.trim().parse().unwrap_or(0))
    };
    assert_eq!(pods_stat("listener.0.0.0.0:15006.ssl.handshake"), 2);
    let plain = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.app,
            "setpriv",
            "--reuid=1337",
            "--regid=1337",
            "--clear-groups",
        ])
        .args([
            "curl",
            "-sS",
            "--max-time",
            "10",
            &format!("http://{V1_IP}:9080/"),
        ])
        .output()
        .unwrap();
    assert!(!plain.status.success(), "STRICT served plain text");
    assert_eq!(pods_stat("listener.0.0.0.0:15006.no_filter_chain_match"), 1);

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
    // The config dump reads like `istioctl proxy-config listener`.
    let dump = run(&net.exec(
        &net.app,
        &["curl", "-sS", "http://127.0.0.1:15000/config_dump"],
    ));
    for name in [
        "virtualOutbound",
        "virtualInbound",
        "0.0.0.0_9080",
        "10.96.0.20_7777",
        "inbound|8080||",
    ] {
        assert!(
            dump.contains(&format!("\"{name}\"")),
            "{name} not in the config dump"
        );
    }
    drop(sidecar);

    // REGISTRY_ONLY: the same address is refused by the BlackHoleCluster, and counted.
    // (Without access logs: HTTP and TCP chains alike lose them.)
    let _sidecar = Sidecar::start(&net, "registry-only", "--no-access-log");
    let out = run(&net.exec(&net.app, &["python3", peer, "send", PODS_IP, "7777", "x\n"]));
    assert!(out.is_empty() || out == "closed", "{out:?}");
    assert_eq!(
        stat(&net, "cluster.BlackHoleCluster.upstream_cx_none_healthy"),
        1
    );
}
