//! The captured sidecar's layout from Istio YAML (issue #14, SEMANTICS.md §10): Istio's
//! listener and cluster names, chain matches, TCP routes and the outbound traffic policy.

use std::net::SocketAddr;

use mesh_core::config::{
    AccessLogSink, Action, Bootstrap, CidrRange, ClusterSpecifier, DataSource, DiscoveryType,
    FilterChain, Listener, ListenerFilterKind, NetworkFilter, RouteSource, SanType, TcpCluster,
    TcpProxy,
};
use mesh_xds::istio::{self, Options, OutboundTrafficPolicy};

const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews }
spec:
  hosts: [reviews.default.svc.cluster.local]
  addresses: [10.96.0.10]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  endpoints:
  - { address: 10.1.0.3, labels: { app: reviews, version: v1 } }
  - { address: 10.1.0.4, labels: { app: reviews, version: v2 } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: db }
spec:
  host: db
  subsets:
  - { name: primary, labels: { role: primary } }
  - { name: replica, labels: { role: replica } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: db }
spec:
  hosts: [db.default.svc.cluster.local]
  addresses: [10.96.0.20]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 5432, name: tcp-postgres, protocol: TCP }]
  endpoints:
  - { address: 10.1.0.5, labels: { role: primary } }
  - { address: 10.1.0.6, labels: { role: replica } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db }
spec:
  hosts: [db]
  tcp:
  - match: [{ port: 5432, destinationSubnets: [10.96.0.20/32], sourceLabels: { app: other } }]
    route: [{ destination: { host: db, subset: replica } }]
  - match: [{ port: 5432, destinationSubnets: [10.96.0.0/16] }]
    route:
    - { destination: { host: db, subset: primary }, weight: 80 }
    - { destination: { host: db, subset: replica }, weight: 20 }
  - route: [{ destination: { host: db, subset: primary } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: cache }
spec:
  hosts: [cache.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 6379, name: redis, protocol: REDIS }]
  endpoints: [{ address: 10.1.0.7 }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: productpage }
spec:
  hosts: [productpage.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - { number: 9080, name: http, protocol: HTTP, targetPort: 8080 }
  - { number: 9090, name: tcp-metrics, protocol: TCP }
  - { number: 9091, name: admin }
  endpoints: [{ address: 10.1.0.1, labels: { app: productpage } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: legacy }
spec:
  hosts: [legacy.default.svc.cluster.local]
  addresses: [10.96.0.40]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 7070, name: custom }]
  endpoints: [{ address: 10.1.0.8 }]
"#;

fn translate(opts: Options) -> Bootstrap {
    let res = istio::parse_str(MESH, "mesh.yaml", "default").unwrap();
    assert_eq!(res.warnings, [], "{:?}", res.warnings);
    let b = istio::translate(&res.value, &opts.labels([("app", "productpage")])).unwrap();
    b.value.validate().unwrap();
    b.value
}

fn listener<'a>(b: &'a Bootstrap, name: &str) -> &'a Listener {
    b.listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name}: {:?}", names(b)))
}

fn names(b: &Bootstrap) -> Vec<&str> {
    b.listeners.iter().map(|l| l.name.as_str()).collect()
}

fn tcp(fc: &FilterChain) -> &TcpProxy {
    match &fc.filter {
        NetworkFilter::TcpProxy(t) => t,
        NetworkFilter::HttpConnectionManager(_) => panic!("tcp_proxy expected in {}", fc.name),
    }
}

fn cidr(s: &str) -> CidrRange {
    let (a, l) = s.split_once('/').unwrap();
    CidrRange {
        address_prefix: a.parse().unwrap(),
        prefix_len: l.parse().unwrap(),
    }
}

#[test]
fn the_listeners_have_istios_names_and_shape() {
    let b = translate(Options::captured_sidecar());
    assert_eq!(
        names(&b),
        [
            "virtualOutbound",
            "0.0.0.0_9080",
            "10.96.0.20_5432",
            "0.0.0.0_6379",
            "0.0.0.0_9090",
            "0.0.0.0_9091",
            "10.96.0.40_7070",
            "virtualInbound"
        ]
    );
    let out = listener(&b, "virtualOutbound");
    assert_eq!(out.address, "0.0.0.0:15001".parse::<SocketAddr>().unwrap());
    assert!(out.use_original_dst && out.bind_to_port);
    let chains: Vec<&str> = out.filter_chains.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        chains,
        ["virtualOutbound-blackhole", "virtualOutbound-catchall-tcp"]
    );
    assert_eq!(
        out.filter_chains[0].filter_chain_match.destination_port,
        Some(15001)
    );
    assert_eq!(
        tcp(&out.filter_chains[1]).clusters,
        [TcpCluster {
            name: "PassthroughCluster".into(),
            weight: 1
        }]
    );

    // HTTP port 9080: not bound, routes named by the port, the service's names and virtual IP
    // as domains, the catch-all last.
    let http = listener(&b, "0.0.0.0_9080");
    assert!(!http.bind_to_port);
    let hcm = http.filter_chains[0].hcm().unwrap();
    let RouteSource::RouteConfig(rc) = &hcm.route else {
        panic!("inline routes");
    };
    assert_eq!(rc.name, "9080");
    assert!(rc.ignore_port_in_host_matching);
    let vh = &rc.virtual_hosts[0];
    assert_eq!(vh.name, "reviews.default.svc.cluster.local:9080");
    for d in ["reviews", "reviews.default.svc.cluster.local", "10.96.0.10"] {
        assert!(vh.domains.iter().any(|x| x == d), "{d} in {:?}", vh.domains);
    }
    let last = rc.virtual_hosts.last().unwrap();
    assert_eq!(
        (last.name.as_str(), &last.domains[..]),
        ("allow_any", &["*".to_string()][..])
    );
    let Action::Route(a) = &last.routes[0].action else {
        panic!("a route to PassthroughCluster");
    };
    assert_eq!(
        a.cluster,
        ClusterSpecifier::Cluster("PassthroughCluster".into())
    );

    // A TCP service without a virtual IP listens on the port; with one, on it.
    let cache = listener(&b, "0.0.0.0_6379");
    assert_eq!(
        tcp(&cache.filter_chains[0]).clusters[0].name,
        "outbound|6379||cache.default.svc.cluster.local"
    );

    // Inbound: the workload's ports (target ports), HTTP and TCP, around the loop guard and
    // the passthrough.
    let inb = listener(&b, "virtualInbound");
    assert_eq!(inb.address, "0.0.0.0:15006".parse::<SocketAddr>().unwrap());
    assert_eq!(
        inb.listener_filters[0].kind,
        ListenerFilterKind::OriginalDst
    );
    let chains: Vec<(&str, Option<u16>)> = inb
        .filter_chains
        .iter()
        .map(|c| (c.name.as_str(), c.filter_chain_match.destination_port))
        .collect();
    assert_eq!(
        chains,
        [
            ("virtualInbound-blackhole", Some(15006)),
            ("0.0.0.0_8080", Some(8080)),
            ("0.0.0.0_9090", Some(9090)),
            ("0.0.0.0_9091", Some(9091)),
            ("0.0.0.0_9091", Some(9091)),
            ("virtualInbound", None)
        ]
    );
    assert!(inb.filter_chains[1].hcm().is_some());
    assert_eq!(
        tcp(&inb.filter_chains[2]).clusters[0].name,
        "inbound|9090||"
    );

    // The clusters Istio adds.
    let cluster = |n: &str| b.clusters.iter().find(|c| c.name == n).unwrap();
    for n in [
        "PassthroughCluster",
        "InboundPassthroughClusterIpv4",
        "inbound|8080||",
    ] {
        assert_eq!(cluster(n).discovery_type, DiscoveryType::OriginalDst, "{n}");
    }
    assert_eq!(
        cluster("inbound|8080||").upstream_bind_config,
        Some([127, 0, 0, 6].into())
    );
    assert_eq!(cluster("PassthroughCluster").upstream_bind_config, None);
    assert!(
        cluster("BlackHoleCluster")
            .load_assignment
            .as_ref()
            .unwrap()
            .endpoints
            .is_empty()
    );
}

#[test]
fn tcp_routes_become_chains_on_destination_subnets_with_weights() {
    let b = translate(Options::captured_sidecar());
    let db = listener(&b, "10.96.0.20_5432");
    // The first rule wants other source labels: skipped. The second matches 10.96.0.0/16 with
    // weights; the third, without a match, takes the rest and ends the list.
    assert_eq!(db.filter_chains.len(), 2, "{:#?}", db.filter_chains);
    assert_eq!(
        db.filter_chains[0].filter_chain_match.prefix_ranges,
        [cidr("10.96.0.0/16")]
    );
    assert_eq!(
        tcp(&db.filter_chains[0]).clusters,
        [
            TcpCluster {
                name: "outbound|5432|primary|db.default.svc.cluster.local".into(),
                weight: 80
            },
            TcpCluster {
                name: "outbound|5432|replica|db.default.svc.cluster.local".into(),
                weight: 20
            },
        ]
    );
    assert!(
        db.filter_chains[1]
            .filter_chain_match
            .prefix_ranges
            .is_empty()
    );
    assert_eq!(
        tcp(&db.filter_chains[1]).clusters[0].name,
        "outbound|5432|primary|db.default.svc.cluster.local"
    );
}

#[test]
fn registry_only_drops_unknown_destinations_and_access_logs_everywhere() {
    let b = translate(
        Options::captured_sidecar()
            .outbound_traffic_policy(OutboundTrafficPolicy::RegistryOnly)
            .access_log(AccessLogSink::Stdout),
    );
    let out = listener(&b, "virtualOutbound");
    assert_eq!(
        tcp(&out.filter_chains[1]).clusters[0].name,
        "BlackHoleCluster"
    );
    let hcm = listener(&b, "0.0.0.0_9080").filter_chains[0].hcm().unwrap();
    let RouteSource::RouteConfig(rc) = &hcm.route else {
        panic!("inline routes");
    };
    let last = rc.virtual_hosts.last().unwrap();
    assert_eq!(last.name, "block_all");
    assert!(matches!(&last.routes[0].action, Action::DirectResponse(d) if d.status == 502));
    // meshConfig accessLogFile: every chain logs, HTTP and TCP.
    for l in &b.listeners {
        for fc in l.chains() {
            let logs = match &fc.filter {
                NetworkFilter::HttpConnectionManager(h) => &h.access_log,
                NetworkFilter::TcpProxy(t) => &t.access_log,
            };
            assert_eq!(logs.len(), 1, "{} {}", l.name, fc.name);
        }
    }
}

#[test]
fn the_host_routed_sidecar_warns_about_what_only_the_captured_one_serves() {
    let res = istio::parse_str(MESH, "mesh.yaml", "default").unwrap();
    let b = istio::translate(&res.value, &Options::sidecar(15001)).unwrap();
    let paths: Vec<&str> = b.warnings.iter().map(|w| w.path.as_str()).collect();
    assert!(
        paths.contains(&"db.default VirtualService: spec.tcp"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"reviews.default ServiceEntry: spec.addresses"),
        "{paths:?}"
    );
}

/// A port whose name names no protocol is sniffed: the HTTP inspector sends HTTP to the routes
/// and the rest to the TCP proxy, outbound and inbound; inbound, the inspector runs only on
/// such ports.
#[test]
fn ports_without_a_protocol_are_sniffed() {
    let b = translate(Options::captured_sidecar());
    let legacy = listener(&b, "10.96.0.40_7070");
    assert_eq!(
        legacy.listener_filters[0].kind,
        ListenerFilterKind::HttpInspector
    );
    let [http, tcp_chain] = &legacy.filter_chains[..] else {
        panic!("two chains: {:#?}", legacy.filter_chains);
    };
    assert_eq!(
        http.filter_chain_match.application_protocols,
        ["http/1.1", "h2c", "http/1.0"]
    );
    assert!(http.hcm().is_some());
    assert_eq!(
        tcp(tcp_chain).clusters[0].name,
        "outbound|7070||legacy.default.svc.cluster.local"
    );

    let inb = listener(&b, "virtualInbound");
    let sniff = inb
        .listener_filters
        .iter()
        .find(|f| f.kind == ListenerFilterKind::HttpInspector)
        .expect("the HTTP inspector");
    assert!(sniff.runs_for(9091));
    for port in [8080, 9090, 9092, 15006, 1] {
        assert!(!sniff.runs_for(port), "{port}");
    }
    let on_9091: Vec<bool> = inb
        .filter_chains
        .iter()
        .filter(|c| c.filter_chain_match.destination_port == Some(9091))
        .map(|c| c.hcm().is_some())
        .collect();
    assert_eq!(on_9091, [true, false]);
}

/// DestinationRule `tls` becomes the cluster's upstream TLS (issue #15): SIMPLE and MUTUAL
/// with files, ISTIO_MUTUAL with the workload identity directory, Istio's SNI and ALPN; a
/// port-level DISABLE turns it off; a credentialName a sidecar cannot read is an error.
#[test]
fn destination_rule_tls_originates() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: api }
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - { number: 443, name: https-api, protocol: HTTPS }
  - { number: 8443, name: https-admin, protocol: HTTPS }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api }
spec:
  host: api.example.com
  trafficPolicy:
    tls:
      mode: MUTUAL
      clientCertificate: /etc/client/cert.pem
      privateKey: /etc/client/key.pem
      caCertificates: /etc/client/ca.pem
      subjectAltNames: [api.example.com, spiffe://example.com/api]
    portLevelSettings:
    - port: { number: 8443 }
      tls: { mode: SIMPLE, insecureSkipVerify: true, sni: admin.example.com }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL } }
  subsets: [{ name: v1, labels: { version: v1 } }]
"#;
    let text = format!("{MESH}\n---\n{yaml}");
    let res = istio::parse_str(&text, "mesh.yaml", "default").unwrap();
    let b = istio::translate(
        &res.value,
        &Options::captured_sidecar().identity_dir("/var/run/identity/"),
    )
    .unwrap()
    .value;
    let cluster = |n: &str| {
        b.clusters
            .iter()
            .find(|c| c.name == n)
            .unwrap_or_else(|| panic!("no cluster {n}"))
    };
    let file = |f: &str| DataSource::Filename(f.into());

    let mutual = cluster("outbound|443||api.example.com")
        .transport_socket
        .as_ref()
        .unwrap();
    assert_eq!(mutual.sni.as_deref(), Some("api.example.com"));
    let c = &mutual.common_tls_context;
    assert_eq!(
        c.tls_certificates[0].certificate_chain,
        file("/etc/client/cert.pem")
    );
    let v = c.validation_context.as_ref().unwrap();
    assert_eq!(v.trusted_ca, Some(file("/etc/client/ca.pem")));
    let types: Vec<SanType> = v
        .match_typed_subject_alt_names
        .iter()
        .map(|m| m.san_type)
        .collect();
    assert_eq!(types, [SanType::Dns, SanType::Uri]);

    let simple = cluster("outbound|8443||api.example.com")
        .transport_socket
        .as_ref()
        .unwrap();
    assert_eq!(simple.sni.as_deref(), Some("admin.example.com"));
    assert!(
        simple.common_tls_context.validation_context.is_none(),
        "insecureSkipVerify"
    );
    assert!(simple.common_tls_context.tls_certificates.is_empty());

    let istio = cluster("outbound|9080|v1|reviews.default.svc.cluster.local")
        .transport_socket
        .as_ref()
        .unwrap();
    assert_eq!(
        istio.sni.as_deref(),
        Some("outbound_.9080_.v1_.reviews.default.svc.cluster.local")
    );
    let c = &istio.common_tls_context;
    assert_eq!(
        c.tls_certificates[0].certificate_chain,
        file("/var/run/identity/cert-chain.pem")
    );
    assert_eq!(
        c.validation_context.as_ref().unwrap().trusted_ca,
        Some(file("/var/run/identity/root-cert.pem"))
    );
    assert_eq!(c.alpn_protocols, ["istio-peer-exchange", "istio"]);
    // Clusters without a rule stay plain.
    assert!(
        cluster("outbound|5432||db.default.svc.cluster.local")
            .transport_socket
            .is_none()
    );

    let secret = yaml.replace(
        "tls: { mode: ISTIO_MUTUAL }",
        "tls: { mode: SIMPLE, credentialName: reviews-cert }",
    );
    let err = istio::parse_str(&format!("{MESH}\n---\n{secret}"), "mesh.yaml", "default")
        .and_then(|r| r.strict())
        .unwrap_err();
    assert!(
        err.field_errors()
            .iter()
            .any(|e| e.path.ends_with("trafficPolicy.tls.credentialName")),
        "{err}"
    );
}

/// PeerAuthentication shapes virtualInbound (issue #15): a mesh-wide STRICT policy leaves only
/// mutual-TLS chains (the workload identity, client certificates from the mesh root, the TLS
/// inspector), a workload-level port override to PERMISSIVE adds plain text on that port, and
/// DISABLE leaves plain text only.
#[test]
fn peer_authentication_shapes_the_inbound_chains() {
    let policies = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
spec: { mtls: { mode: STRICT } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: productpage }
spec:
  selector: { matchLabels: { app: productpage } }
  portLevelMtls:
    "9090": { mode: PERMISSIVE }
    "9091": { mode: DISABLE }
"#;
    // The v1 pod has a sidecar (Istio's injector labels it).
    let mesh = MESH.replace(
        "{ app: reviews, version: v1 }",
        "{ app: reviews, version: v1, security.istio.io/tlsMode: istio }",
    );
    let text = format!("{mesh}\n---\n{policies}");
    let res = istio::parse_str(&text, "mesh.yaml", "default").unwrap();
    assert_eq!(res.value.peer_authentications.len(), 2);
    let b = istio::translate(
        &res.value,
        &Options::captured_sidecar()
            .labels([("app", "productpage")])
            .identity_dir("/var/run/identity"),
    )
    .unwrap()
    .value;
    let inb = listener(&b, "virtualInbound");
    let on = |port: Option<u16>| -> Vec<(Option<String>, bool)> {
        inb.filter_chains
            .iter()
            .filter(|c| c.filter_chain_match.destination_port == port)
            .map(|c| {
                (
                    c.filter_chain_match.transport_protocol.clone(),
                    c.transport_socket.is_some(),
                )
            })
            .collect()
    };
    let tls = (Some("tls".to_string()), true);
    // 8080: STRICT (mesh-wide): mutual TLS only.
    assert_eq!(on(Some(8080)), std::slice::from_ref(&tls));
    // 9090: PERMISSIVE by the port override: TLS and plain text.
    assert_eq!(
        on(Some(9090)),
        [tls.clone(), (Some("raw_buffer".into()), false)]
    );
    // 9091: DISABLE: plain text (a sniffed port: HTTP and TCP chains).
    assert_eq!(on(Some(9091)), [(None, false), (None, false)]);
    // Ports with no service: STRICT, mutual TLS only.
    assert_eq!(on(None), [tls]);
    let t = inb
        .filter_chains
        .iter()
        .find_map(|c| c.transport_socket.as_ref())
        .unwrap();
    assert!(t.require_client_certificate);
    assert_eq!(
        t.common_tls_context.tls_certificates[0].certificate_chain,
        DataSource::Filename("/var/run/identity/cert-chain.pem".into())
    );
    let inspector = inb
        .listener_filters
        .iter()
        .find(|f| f.kind == ListenerFilterKind::TlsInspector)
        .expect("the TLS inspector");
    assert!(inspector.runs_for(8080) && !inspector.runs_for(9091));

    // Auto mutual TLS outbound: the pod with a sidecar is reached with ISTIO_MUTUAL, the
    // other in plain text, by Envoy's transport_socket_matches.
    let reviews = b
        .clusters
        .iter()
        .find(|c| c.name == "outbound|9080||reviews.default.svc.cluster.local")
        .unwrap();
    let names: Vec<&str> = reviews
        .transport_socket_matches
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["tlsMode-istio", "tlsMode-disabled"]);
    let tls = reviews.transport_socket_matches[0]
        .transport_socket
        .as_ref()
        .unwrap();
    assert_eq!(
        tls.sni.as_deref(),
        Some("outbound_.9080_._.reviews.default.svc.cluster.local")
    );
    let eps = &reviews.load_assignment.as_ref().unwrap().endpoints[0].lb_endpoints;
    let marked: Vec<bool> = eps
        .iter()
        .map(|e| e.metadata.contains_key("envoy.transport_socket_match"))
        .collect();
    assert_eq!(marked, [true, false]);
}
