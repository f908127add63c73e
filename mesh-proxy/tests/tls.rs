//! TLS a listener terminates (issue #15): certificates picked by SNI, HTTP/1.1 and HTTP/2 by
//! ALPN, checked with curl and openssl against a CA made here; and certificates that cannot
//! serve are config errors naming the file and the field.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use mesh_core::config::*;
use mesh_core::stats::StatName;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A CA and certificates it signs, written as PEM files in a fresh directory.
struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mesh-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "mesh test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Self { dir, ca, ca_key }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_str().unwrap().to_owned()
    }

    /// A server certificate for `host`, as `<host>.crt` and `<host>.key`.
    fn leaf(&self, host: &str) -> TlsCertificate {
        self.leaf_named(host, host, host)
    }

    /// A server certificate for `host` with common name `cn`, as `<stem>.crt` and
    /// `<stem>.key` (written through a temporary file and a rename, as a rotation does).
    fn leaf_named(&self, host: &str, cn: &str, stem: &str) -> TlsCertificate {
        let mut params = CertificateParams::new(vec![host.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        for (ext, text) in [("key", key.serialize_pem()), ("crt", cert.pem())] {
            let tmp = self.dir.join(format!("{stem}.{ext}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, self.dir.join(format!("{stem}.{ext}"))).unwrap();
        }
        TlsCertificate {
            certificate_chain: DataSource::Filename(self.path(&format!("{stem}.crt"))),
            private_key: DataSource::Filename(self.path(&format!("{stem}.key"))),
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A chain answering `body` for every request, over TLS with `cert` for `server_names`.
fn chain(server_names: &[&str], cert: TlsCertificate, body: &str) -> FilterChain {
    let mut route = Route::prefix("/", "unused");
    route.action = Action::DirectResponse(DirectResponseAction {
        status: 200,
        body: Some(body.into()),
    });
    let routes = RouteConfiguration::new("r")
        .with_virtual_host(VirtualHost::new("all", ["*"]).with_route(route));
    let mut c = FilterChain::http(HttpConnectionManager::with_routes(routes));
    c.filter_chain_match.server_names = server_names.iter().map(|s| s.to_string()).collect();
    c.transport_socket = Some(DownstreamTlsContext {
        common_tls_context: CommonTlsContext {
            tls_certificates: vec![cert],
            alpn_protocols: vec!["h2".into(), "http/1.1".into()],
            ..CommonTlsContext::default()
        },
        ..DownstreamTlsContext::default()
    });
    c
}

fn listener(chains: Vec<FilterChain>) -> Bootstrap {
    let mut l = Listener::new("https", "127.0.0.1:0".parse().unwrap(), chains);
    l.listener_filters = vec![ListenerFilter::new(ListenerFilterKind::TlsInspector)];
    Bootstrap::default().with_listener(l)
}

/// curl over TLS to `host` (resolved to the listener), trusting `ca`: the body and the HTTP
/// version, or curl's error.
async fn curl(addr: SocketAddr, host: &str, ca: &str, http2: bool) -> Result<String, String> {
    let url = format!("https://{host}:{}/", addr.port());
    let resolve = format!("{host}:{}:127.0.0.1", addr.port());
    let version = if http2 { "--http2" } else { "--http1.1" };
    let (ca, version) = (ca.to_owned(), version.to_owned());
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                &ca,
                "--resolve",
                &resolve,
            ])
            .args([version.as_str(), "-w", " %{http_version}", &url])
            .output()
            .expect("run curl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hostnames_two_certificates_over_http1_and_http2() {
    let pki = Pki::new("sni");
    let b = listener(vec![
        chain(&["a.example.test"], pki.leaf("a.example.test"), "served a"),
        chain(&["*.example.test"], pki.leaf("b.example.test"), "served b"),
    ]);
    let p = mesh_proxy::test_util::start(b).await;
    let addr = p.listener_addr("https").unwrap();
    let ca = pki.path("ca.pem");
    for http2 in [false, true] {
        let v = if http2 { "2" } else { "1.1" };
        assert_eq!(
            curl(addr, "a.example.test", &ca, http2).await.unwrap(),
            format!("served a {v}")
        );
        assert_eq!(
            curl(addr, "b.example.test", &ca, http2).await.unwrap(),
            format!("served b {v}")
        );
    }
    // A name the certificate does not cover fails verification in the client.
    let err = curl(addr, "c.example.test", &ca, false).await.unwrap_err();
    assert!(err.contains("SSL") || err.contains("certificate"), "{err}");
    let handshakes = p
        .stats()
        .counter(StatName::listener(&addr.to_string(), "ssl.handshake"))
        .get();
    assert!(handshakes >= 4, "{handshakes}");

    // openssl shows the chain the name picked.
    let out = tokio::task::spawn_blocking(move || {
        Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string()])
            .args([
                "-servername",
                "b.example.test",
                "-CAfile",
                &ca,
                "-showcerts",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run openssl")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CN = b.example.test"), "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
}

fn build_error(b: Bootstrap) -> String {
    match mesh_proxy::test_util::builder(b).build() {
        Ok(_) => panic!("the config should be refused"),
        Err(e) => {
            assert!(e.is_config(), "{e}");
            let mut s = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(inner) = source {
                s.push_str(&format!(" | {inner}"));
                source = inner.source();
            }
            s
        }
    }
}

#[test]
fn certificates_that_cannot_serve_are_errors_naming_the_file_and_the_field() {
    let pki = Pki::new("bad");
    let a = pki.leaf("a.example.test");
    let b = pki.leaf("b.example.test");
    let field = "listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates[0]";

    // A key that is not the certificate's.
    let mismatched = TlsCertificate {
        certificate_chain: a.certificate_chain.clone(),
        private_key: b.private_key.clone(),
    };
    let e = build_error(listener(vec![chain(&[], mismatched, "x")]));
    assert!(e.contains(field) && e.contains("a.example.test.crt"), "{e}");

    // Malformed PEM.
    std::fs::write(
        pki.dir.join("garbage.crt"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n",
    )
    .unwrap();
    let garbage = TlsCertificate {
        certificate_chain: DataSource::Filename(pki.path("garbage.crt")),
        private_key: a.private_key.clone(),
    };
    let e = build_error(listener(vec![chain(&[], garbage, "x")]));
    assert!(
        e.contains(&format!("{field}.certificate_chain")) && e.contains("garbage.crt"),
        "{e}"
    );

    // A file that is not there.
    let missing = TlsCertificate {
        certificate_chain: a.certificate_chain.clone(),
        private_key: DataSource::Filename(pki.path("missing.key")),
    };
    let e = build_error(listener(vec![chain(&[], missing, "x")]));
    assert!(
        e.contains(&format!("{field}.private_key.filename")) && e.contains("missing.key"),
        "{e}"
    );

    // An empty file.
    std::fs::write(pki.dir.join("empty.crt"), "").unwrap();
    let empty = TlsCertificate {
        certificate_chain: DataSource::Filename(pki.path("empty.crt")),
        private_key: a.private_key.clone(),
    };
    let e = build_error(listener(vec![chain(&[], empty, "x")]));
    assert!(e.contains("no certificate"), "{e}");
}

/// A reload whose certificate cannot serve is refused; the running certificate keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_on_reload_keeps_the_old_one_serving() {
    let pki = Pki::new("reload");
    let good = listener(vec![chain(&[], pki.leaf("a.example.test"), "v1")]);
    let p = mesh_proxy::test_util::start(good.clone()).await;
    let addr = p.listener_addr("https").unwrap();
    let ca = pki.path("ca.pem");
    assert_eq!(
        curl(addr, "a.example.test", &ca, false).await.unwrap(),
        "v1 1.1"
    );
    let mut bad = good.clone();
    bad.listeners[0].filter_chains[0]
        .transport_socket
        .as_mut()
        .unwrap()
        .common_tls_context
        .tls_certificates[0]
        .private_key =
        DataSource::InlineString("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n".into());
    let e = p.reload(bad).await.unwrap_err();
    assert!(e.is_config(), "{e}");
    assert_eq!(
        curl(addr, "a.example.test", &ca, true).await.unwrap(),
        "v1 2"
    );
}

/// The subject common name the listener presents for `host`, read by openssl.
async fn served_cn(addr: SocketAddr, host: &str, ca: &str) -> String {
    let (host, ca) = (host.to_owned(), ca.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string()])
            .args(["-servername", &host, "-CAfile", &ca])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run openssl")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("subject=CN = ").map(str::to_owned))
        .unwrap_or_default()
}

/// Certificate files replaced while requests run: new handshakes get the new certificate,
/// and no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_serves_new_handshakes_without_a_failed_request() {
    let pki = Pki::new("rotate");
    let first = pki.leaf_named("a.example.test", "first", "a");
    let p = mesh_proxy::test_util::start(listener(vec![chain(&[], first, "ok")])).await;
    let addr = p.listener_addr("https").unwrap();
    let ca = pki.path("ca.pem");
    assert_eq!(served_cn(addr, "a.example.test", &ca).await, "first");

    // Requests on new connections, one after another, while the files change.
    let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
    let load_ca = ca.clone();
    let load = tokio::spawn(async move {
        let mut done = 0;
        for _ in 0..500 {
            if stop.try_recv().is_ok() {
                break;
            }
            let r = curl(addr, "a.example.test", &load_ca, done % 2 == 1).await;
            assert!(r.as_deref().is_ok_and(|b| b.starts_with("ok ")), "{r:?}");
            done += 1;
        }
        done
    });
    pki.leaf_named("a.example.test", "second", "a");
    // The files are looked at once a second: wait (bounded) until a handshake shows it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while served_cn(addr, "a.example.test", &ca).await != "second" {
        assert!(tokio::time::Instant::now() < deadline, "never rotated");
    }
    stop_tx.send(()).unwrap();
    let done = load.await.unwrap();
    assert!(done > 0);
}

/// Envoy's SDS-from-file form: the certificate the SDS file names serves, and when the file
/// is rewritten to name another, new handshakes get that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sds_file_names_the_certificate_and_is_followed() {
    let pki = Pki::new("sds");
    let sds = |stem: &str| {
        format!(
            r#"
resources:
- "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
  name: default
  tls_certificate:
    certificate_chain: {{ filename: {} }}
    private_key: {{ filename: {} }}
"#,
            pki.path(&format!("{stem}.crt")),
            pki.path(&format!("{stem}.key"))
        )
    };
    pki.leaf_named("a.example.test", "from sds", "one");
    let path = pki.path("sds.yaml");
    std::fs::write(&path, sds("one")).unwrap();
    let mut c = chain(&[], pki.leaf("unused.example.test"), "ok");
    let ctx = &mut c.transport_socket.as_mut().unwrap().common_tls_context;
    ctx.tls_certificates.clear();
    ctx.tls_certificate_sds_secret_configs = vec![SdsSecretConfig {
        name: "default".into(),
        path: path.clone(),
    }];
    let p = mesh_proxy::test_util::start(listener(vec![c])).await;
    let addr = p.listener_addr("https").unwrap();
    let ca = pki.path("ca.pem");
    assert_eq!(served_cn(addr, "a.example.test", &ca).await, "from sds");
    assert_eq!(
        curl(addr, "a.example.test", &ca, true).await.unwrap(),
        "ok 2"
    );

    pki.leaf_named("a.example.test", "rotated by sds", "two");
    let tmp = pki.path("sds.yaml.tmp");
    std::fs::write(&tmp, sds("two")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while served_cn(addr, "a.example.test", &ca).await != "rotated by sds" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the SDS file was not followed"
        );
    }

    // An SDS file naming no such secret is a config error naming the file.
    let mut bad = chain(&[], pki.leaf("unused.example.test"), "x");
    let ctx = &mut bad.transport_socket.as_mut().unwrap().common_tls_context;
    ctx.tls_certificates.clear();
    ctx.tls_certificate_sds_secret_configs = vec![SdsSecretConfig {
        name: "other".into(),
        path: path.clone(),
    }];
    let e = build_error(listener(vec![bad]));
    assert!(
        e.contains("no secret named \"other\"") && e.contains("sds.yaml"),
        "{e}"
    );
}

/// Whether openssl's `-reconnect` (five more connections with the first one's session)
/// resumed a session.
async fn resumed(addr: SocketAddr, ca: &str) -> bool {
    let ca = ca.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string(), "-reconnect"])
            .args(["-servername", "a.example.test", "-CAfile", &ca, "-tls1_2"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run openssl")
    })
    .await
    .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("Reused,")
}

/// Sessions resume (tickets and the session cache), unless Envoy's
/// `disable_stateless_session_resumption` and `disable_stateful_session_resumption` say not to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_unless_disabled() {
    let pki = Pki::new("resume");
    let on = chain(&[], pki.leaf("a.example.test"), "on");
    let mut off = on.clone();
    let t = off.transport_socket.as_mut().unwrap();
    t.disable_stateless_session_resumption = true;
    t.disable_stateful_session_resumption = true;
    let ca = pki.path("ca.pem");
    for (chain, expected) in [(on, true), (off, false)] {
        let p = mesh_proxy::test_util::start(listener(vec![chain])).await;
        let addr = p.listener_addr("https").unwrap();
        assert_eq!(resumed(addr, &ca).await, expected);
    }
}

/// `openssl s_server -www` (a TLS server answering any GET with a status page), on a port
/// of its own choosing; killed on drop.
struct OpensslServer {
    child: std::process::Child,
    addr: SocketAddr,
}

impl OpensslServer {
    fn start(cert: &str, key: &str) -> Self {
        Self::start_with(cert, key, &[])
    }

    /// With more `s_server` options (`-Verify 1 -CAfile ca.pem`: a client certificate
    /// required).
    fn start_with(cert: &str, key: &str, extra: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                "127.0.0.1:0",
                "-www",
                "-cert",
                cert,
                "-key",
                key,
            ])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run openssl s_server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("s_server says where it listens")
                .unwrap();
            if let Some(a) = line.strip_prefix("ACCEPT ") {
                break a.parse().unwrap();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self { child, addr }
    }
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pki {
    /// A certificate for `host` that expired in 2020.
    fn expired(&self, host: &str) -> TlsCertificate {
        let mut params = CertificateParams::new(vec![host.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, host);
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        std::fs::write(self.dir.join(format!("{host}.crt")), cert.pem()).unwrap();
        std::fs::write(self.dir.join(format!("{host}.key")), key.serialize_pem()).unwrap();
        TlsCertificate {
            certificate_chain: DataSource::Filename(self.path(&format!("{host}.crt"))),
            private_key: DataSource::Filename(self.path(&format!("{host}.key"))),
        }
    }

    /// A server certificate for `host` that also names `uri` (a SPIFFE identity).
    fn leaf_with_uri(&self, host: &str, uri: &str) -> TlsCertificate {
        let mut params = CertificateParams::new(vec![host.to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::URI(uri.try_into().unwrap()));
        params.distinguished_name.push(DnType::CommonName, host);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        std::fs::write(self.dir.join(format!("{host}.crt")), cert.pem()).unwrap();
        std::fs::write(self.dir.join(format!("{host}.key")), key.serialize_pem()).unwrap();
        TlsCertificate {
            certificate_chain: DataSource::Filename(self.path(&format!("{host}.crt"))),
            private_key: DataSource::Filename(self.path(&format!("{host}.key"))),
        }
    }
}

fn tls_cluster(name: &str, upstream: SocketAddr, ca: &str, san: &str) -> Cluster {
    let mut c = Cluster::new_static(name, [upstream]);
    c.transport_socket = Some(UpstreamTlsContext {
        sni: Some("upstream.example.test".into()),
        common_tls_context: CommonTlsContext {
            validation_context: Some(ValidationContext {
                trusted_ca: Some(DataSource::Filename(ca.into())),
                match_typed_subject_alt_names: vec![SanMatcher {
                    san_type: SanType::Uri,
                    matcher: StringMatcher::exact(san),
                }],
            }),
            ..CommonTlsContext::default()
        },
    });
    c
}

/// TLS origination: a plain-HTTP listener reaches an HTTPS upstream (openssl's own server),
/// verifying its chain and SPIFFE identity; a wrong identity or an unknown CA fails with 503
/// and the cluster's ssl stat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origination_verifies_the_upstream_chain_and_identity() {
    let pki = Pki::new("origin");
    let other = Pki::new("origin-other");
    let id = "spiffe://cluster.local/ns/default/sa/upstream";
    let cert = pki.leaf_with_uri("upstream.example.test", id);
    let (DataSource::Filename(c), DataSource::Filename(k)) =
        (&cert.certificate_chain, &cert.private_key)
    else {
        unreachable!()
    };
    let server = OpensslServer::start(c, k);
    let ca = pki.path("ca.pem");
    let clusters = [
        ("good", tls_cluster("good", server.addr, &ca, id), 200, None),
        (
            "wrong_id",
            tls_cluster(
                "wrong_id",
                server.addr,
                &ca,
                "spiffe://cluster.local/ns/default/sa/other",
            ),
            503,
            Some("ssl.fail_verify_san"),
        ),
        (
            "unknown_ca",
            tls_cluster("unknown_ca", server.addr, &other.path("ca.pem"), id),
            503,
            Some("ssl.fail_verify_error"),
        ),
    ];
    for (name, cluster, status, stat) in clusters {
        let (p, addr) = mesh_proxy::test_util::start_for_cluster(cluster).await;
        let r = mesh_proxy::test_util::Client::http1()
            .get(addr, "/", &[])
            .await;
        assert_eq!(r.status.as_u16(), status, "{name}: {}", r.text());
        if status == 200 {
            assert!(r.text().contains("s_server"), "{name}: {}", r.text());
            let ok = p
                .stats()
                .counter(StatName::cluster(name, "ssl.handshake"))
                .get();
            assert_eq!(ok, 1, "{name}");
        }
        if let Some(stat) = stat {
            assert_eq!(
                p.stats().counter(StatName::cluster(name, stat)).get(),
                1,
                "{name}"
            );
        }
    }
}

/// curl with a client certificate (`None`: without one): the body, or curl's error.
async fn curl_with_cert(
    addr: SocketAddr,
    ca: &str,
    cert: Option<&TlsCertificate>,
) -> Result<String, String> {
    let url = format!("https://a.example.test:{}/", addr.port());
    let resolve = format!("a.example.test:{}:127.0.0.1", addr.port());
    let mut args = vec![
        "-sS".to_owned(),
        "--max-time".into(),
        "10".into(),
        "--cacert".into(),
        ca.to_owned(),
        "--resolve".into(),
        resolve,
    ];
    if let Some(c) = cert {
        let (DataSource::Filename(crt), DataSource::Filename(key)) =
            (&c.certificate_chain, &c.private_key)
        else {
            unreachable!()
        };
        args.extend(["--cert".into(), crt.clone(), "--key".into(), key.clone()]);
    }
    args.push(url);
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl").args(&args).output().expect("run curl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    })
    .await
    .unwrap()
}

/// Mutual TLS: a client certificate from the trusted CA naming the accepted SPIFFE identity
/// gets through; another identity, no certificate, or another CA's certificate are refused,
/// each counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_accepts_only_the_named_identity() {
    let pki = Pki::new("mtls");
    let other = Pki::new("mtls-other");
    let server = pki.leaf("a.example.test");
    let good = pki.leaf_with_uri(
        "client.example.test",
        "spiffe://cluster.local/ns/default/sa/web",
    );
    let wrong = pki.leaf_with_uri(
        "wrong.example.test",
        "spiffe://cluster.local/ns/default/sa/evil",
    );
    let stranger = other.leaf_with_uri(
        "stranger.example.test",
        "spiffe://cluster.local/ns/default/sa/web",
    );
    let mut c = chain(&[], server, "hello web");
    let t = c.transport_socket.as_mut().unwrap();
    t.require_client_certificate = true;
    t.common_tls_context.validation_context = Some(ValidationContext {
        trusted_ca: Some(DataSource::Filename(pki.path("ca.pem"))),
        match_typed_subject_alt_names: vec![SanMatcher {
            san_type: SanType::Uri,
            matcher: StringMatcher::exact("spiffe://cluster.local/ns/default/sa/web"),
        }],
    });
    let log = pki.path("access.log");
    c.hcm_mut().unwrap().access_log = vec![AccessLog {
        sink: AccessLogSink::File(log.clone()),
        format: Some(
            "%DOWNSTREAM_TLS_VERSION% %DOWNSTREAM_PEER_URI_SAN% %REQ(X-FORWARDED-PROTO)%\n".into(),
        ),
    }];
    // The log is read while the proxy runs: each line is written as it comes.
    let p = mesh_proxy::test_util::builder(listener(vec![c]))
        .file_flush_interval(std::time::Duration::ZERO)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let addr = p.listener_addr("https").unwrap();
    let ca = pki.path("ca.pem");
    assert_eq!(
        curl_with_cert(addr, &ca, Some(&good)).await.unwrap(),
        "hello web"
    );
    // The access log names the session's version and the client's identity (written when
    // the response ends, so possibly after curl has it: wait, bounded).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if !text.is_empty() || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    };
    // A request over TLS is forwarded as https.
    assert_eq!(
        line,
        "TLSv1.3 spiffe://cluster.local/ns/default/sa/web https\n"
    );
    let stat = |s: &str| {
        p.stats()
            .counter(StatName::listener(&addr.to_string(), s))
            .get()
    };
    for (cert, counter) in [
        (Some(&wrong), "ssl.fail_verify_san"),
        (None, "ssl.fail_verify_no_cert"),
        (Some(&stranger), "ssl.fail_verify_error"),
    ] {
        let r = curl_with_cert(addr, &ca, cert).await;
        assert!(r.is_err(), "{counter}: {r:?}");
        // The proxy counts a refused handshake after its alert has gone out, so the client
        // may see the refusal first: wait (bounded) for the count.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while stat(counter) == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        assert_eq!(stat(counter), 1, "{counter}");
    }
    assert_eq!(stat("ssl.handshake"), 1);
}

/// Origination with a client certificate (DestinationRule MUTUAL, ISTIO_MUTUAL): an upstream
/// that requires one gets it; without one the handshake fails (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origination_presents_a_client_certificate() {
    let pki = Pki::new("origin-mutual");
    let id = "spiffe://cluster.local/ns/default/sa/upstream";
    let server = pki.leaf_with_uri("upstream.example.test", id);
    let client = pki.leaf_with_uri(
        "client.example.test",
        "spiffe://cluster.local/ns/default/sa/web",
    );
    let (DataSource::Filename(c), DataSource::Filename(k)) =
        (&server.certificate_chain, &server.private_key)
    else {
        unreachable!()
    };
    let ca = pki.path("ca.pem");
    let upstream = OpensslServer::start_with(c, k, &["-Verify", "1", "-CAfile", &ca]);
    let mut with_cert = tls_cluster("with_cert", upstream.addr, &ca, id);
    with_cert
        .transport_socket
        .as_mut()
        .unwrap()
        .common_tls_context
        .tls_certificates = vec![client];
    for (cluster, status) in [
        (with_cert, 200),
        (tls_cluster("without_cert", upstream.addr, &ca, id), 503),
    ] {
        let name = cluster.name.clone();
        let (_p, addr) = mesh_proxy::test_util::start_for_cluster(cluster).await;
        let r = mesh_proxy::test_util::Client::http1()
            .get(addr, "/", &[])
            .await;
        assert_eq!(r.status.as_u16(), status, "{name}: {}", r.text());
    }
}

/// An Istio Gateway terminating TLS: a SIMPLE server whose certificate is a credentialName in
/// the credentials directory, and a MUTUAL server with certificate files, on one port, picked
/// by SNI (translated by `mesh_xds::istio`, served here, checked with curl).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_istio_gateway_terminates_simple_and_mutual_tls() {
    let pki = Pki::new("gateway");
    // credentialName a-cert: a-cert.crt and a-cert.key in the credentials directory.
    pki.leaf_named("a.example.test", "a.example.test", "a-cert");
    let b = pki.leaf("b.example.test");
    let client = pki.leaf_with_uri(
        "client.example.test",
        "spiffe://cluster.local/ns/default/sa/web",
    );
    let (DataSource::Filename(b_crt), DataSource::Filename(b_key)) =
        (&b.certificate_chain, &b.private_key)
    else {
        unreachable!()
    };
    let ca = pki.path("ca.pem");
    let yaml = format!(
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{ name: edge }}
spec:
  selector: {{ istio: ingressgateway }}
  servers:
  - port: {{ number: 443, name: https-a, protocol: HTTPS }}
    hosts: [a.example.test]
    tls: {{ mode: SIMPLE, credentialName: a-cert }}
  - port: {{ number: 443, name: https-b, protocol: HTTPS }}
    hosts: [b.example.test]
    tls:
      mode: MUTUAL
      serverCertificate: {b_crt}
      privateKey: {b_key}
      caCertificates: {ca}
      subjectAltNames: [spiffe://cluster.local/ns/default/sa/web]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{ name: a }}
spec:
  hosts: [a.example.test]
  gateways: [edge]
  http: [{{ directResponse: {{ status: 200, body: {{ string: gateway a }} }} }}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{ name: b }}
spec:
  hosts: [b.example.test]
  gateways: [edge]
  http: [{{ directResponse: {{ status: 200, body: {{ string: gateway b }} }} }}]
"#
    );
    let res = mesh_xds::istio::parse_str(&yaml, "edge.yaml", "default").unwrap();
    let opts = mesh_xds::istio::Options::gateway([("istio", "ingressgateway")])
        .credentials_dir(pki.dir.to_str().unwrap())
        .map_port(443, 0);
    let b = mesh_xds::istio::translate(&res.value, &opts).unwrap().value;
    let p = mesh_proxy::test_util::start(b).await;
    let (_, addr) = p.listener_addrs()[0].clone();
    assert_eq!(
        curl(addr, "a.example.test", &ca, true).await.unwrap(),
        "gateway a 2"
    );
    // b asks for a client certificate with the named identity.
    let resolve_b = |cert: Option<&TlsCertificate>| {
        let mut args = vec![
            "-sS".to_owned(),
            "--max-time".into(),
            "10".into(),
            "--cacert".into(),
            ca.clone(),
            "--resolve".into(),
            format!("b.example.test:{}:127.0.0.1", addr.port()),
        ];
        if let Some(c) = cert {
            let (DataSource::Filename(crt), DataSource::Filename(key)) =
                (&c.certificate_chain, &c.private_key)
            else {
                unreachable!()
            };
            args.extend(["--cert".into(), crt.clone(), "--key".into(), key.clone()]);
        }
        args.push(format!("https://b.example.test:{}/", addr.port()));
        args
    };
    for (cert, expected) in [(Some(&client), Ok("gateway b")), (None, Err(()))] {
        let args = resolve_b(cert);
        let out = tokio::task::spawn_blocking(move || {
            Command::new("curl").args(&args).output().expect("run curl")
        })
        .await
        .unwrap();
        let got = if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(())
        };
        assert_eq!(got.as_deref().map_err(|_| ()), expected);
    }
}

/// An Istio Gateway PASSTHROUGH server: TLS is not terminated; the SNI of each connection
/// picks a VirtualService `tls[]` route to one of two backends (openssl servers), whose own
/// certificates reach the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_istio_gateway_passes_tls_through_by_sni() {
    let pki = Pki::new("passthrough");
    let mut backends = Vec::new();
    for host in ["a.example.test", "b.example.test"] {
        let cert = pki.leaf(host);
        let (DataSource::Filename(c), DataSource::Filename(k)) =
            (&cert.certificate_chain, &cert.private_key)
        else {
            unreachable!()
        };
        backends.push(OpensslServer::start(c, k));
    }
    let (a, b) = (backends[0].addr, backends[1].addr);
    let yaml = format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{ name: a }}
spec:
  hosts: [a.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{ number: 443, name: tls, protocol: TLS }}]
  endpoints: [{{ address: 127.0.0.1, ports: {{ tls: {} }} }}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{ name: b }}
spec:
  hosts: [b.example.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{ number: 443, name: tls, protocol: TLS }}]
  endpoints: [{{ address: 127.0.0.1, ports: {{ tls: {} }} }}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{ name: edge }}
spec:
  selector: {{ istio: ingressgateway }}
  servers:
  - port: {{ number: 443, name: tls, protocol: TLS }}
    hosts: [a.example.test, b.example.test]
    tls: {{ mode: PASSTHROUGH }}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{ name: by-sni }}
spec:
  hosts: [a.example.test, b.example.test]
  gateways: [edge]
  tls:
  - match: [{{ port: 443, sniHosts: [a.example.test] }}]
    route: [{{ destination: {{ host: a.example.test, port: {{ number: 443 }} }} }}]
  - match: [{{ port: 443, sniHosts: [b.example.test] }}]
    route: [{{ destination: {{ host: b.example.test, port: {{ number: 443 }} }} }}]
"#,
        a.port(),
        b.port()
    );
    let res = mesh_xds::istio::parse_str(&yaml, "edge.yaml", "default").unwrap();
    let opts = mesh_xds::istio::Options::gateway([("istio", "ingressgateway")]).map_port(443, 0);
    let boot = mesh_xds::istio::translate(&res.value, &opts).unwrap().value;
    let p = mesh_proxy::test_util::start(boot).await;
    let (_, addr) = p.listener_addrs()[0].clone();
    let ca = pki.path("ca.pem");
    for host in ["a.example.test", "b.example.test"] {
        // The backend's own certificate, through the gateway.
        assert_eq!(served_cn(addr, host, &ca).await, host);
    }
    // A name no route takes gets no backend.
    assert_eq!(served_cn(addr, "c.example.test", &ca).await, "");
}

/// A server-side proxy's inbound listener as Istio's PeerAuthentication makes it: a chain for
/// TLS connections (the workload identity, a client certificate from the mesh CA naming an
/// accepted identity) and, PERMISSIVE, one for plain text, told apart by the TLS inspector.
fn inbound(
    pki: &Pki,
    identity: TlsCertificate,
    permissive: bool,
    upstream: SocketAddr,
) -> Bootstrap {
    let routes = RouteConfiguration::new("inbound").with_virtual_host(
        VirtualHost::new("inbound|http|9080", ["*"]).with_route(Route::prefix("/", "app")),
    );
    let mut mtls = FilterChain::http(HttpConnectionManager::with_routes(routes.clone()));
    mtls.filter_chain_match.transport_protocol = Some("tls".into());
    mtls.transport_socket = Some(DownstreamTlsContext {
        common_tls_context: CommonTlsContext {
            tls_certificates: vec![identity],
            validation_context: Some(ValidationContext {
                trusted_ca: Some(DataSource::Filename(pki.path("ca.pem"))),
                match_typed_subject_alt_names: vec![SanMatcher {
                    san_type: SanType::Uri,
                    matcher: StringMatcher::exact(
                        "spiffe://cluster.local/ns/default/sa/productpage",
                    ),
                }],
            }),
            ..CommonTlsContext::default()
        },
        require_client_certificate: true,
        ..DownstreamTlsContext::default()
    });
    let mut chains = vec![mtls];
    if permissive {
        let mut plain = FilterChain::http(HttpConnectionManager::with_routes(routes));
        plain.filter_chain_match.transport_protocol = Some("raw_buffer".into());
        chains.push(plain);
    }
    let mut l = Listener::new("inbound", "127.0.0.1:0".parse().unwrap(), chains);
    l.listener_filters = vec![ListenerFilter::new(ListenerFilterKind::TlsInspector)];
    Bootstrap::default()
        .with_listener(l)
        .with_cluster(Cluster::new_static("app", [upstream]))
}

/// The client side: a cluster originating mutual TLS (ISTIO_MUTUAL's shape: Istio's SNI and
/// ALPN, the workload's certificate, the server's identity checked).
fn outbound_cluster(
    name: &str,
    server: SocketAddr,
    pki: &Pki,
    identity: TlsCertificate,
) -> Cluster {
    let mut c = Cluster::new_static(name, [server]);
    c.transport_socket = Some(UpstreamTlsContext {
        sni: Some("outbound_.9080_._.reviews.default.svc.cluster.local".into()),
        common_tls_context: CommonTlsContext {
            tls_certificates: vec![identity],
            alpn_protocols: vec!["istio-peer-exchange".into(), "istio".into()],
            validation_context: Some(ValidationContext {
                trusted_ca: Some(DataSource::Filename(pki.path("ca.pem"))),
                match_typed_subject_alt_names: vec![SanMatcher {
                    san_type: SanType::Uri,
                    matcher: StringMatcher::exact("spiffe://cluster.local/ns/default/sa/reviews"),
                }],
            }),
            ..CommonTlsContext::default()
        },
    });
    c
}

/// Mutual TLS between two proxies with SPIFFE identities (sidecar to sidecar): the client
/// proxy's requests reach the application through STRICT and PERMISSIVE servers; a client
/// identity the server does not accept is refused; STRICT refuses plain text and PERMISSIVE
/// takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_between_two_proxies_strict_and_permissive() {
    use mesh_proxy::test_util::{Behavior, Client, Upstream};
    let pki = Pki::new("two-proxies");
    let app = Upstream::start("reviews-app", Behavior::Identify).await;
    let server_id = || {
        pki.leaf_with_uri(
            "reviews.default.svc",
            "spiffe://cluster.local/ns/default/sa/reviews",
        )
    };
    let strict = mesh_proxy::test_util::start(inbound(&pki, server_id(), false, app.addr())).await;
    let permissive =
        mesh_proxy::test_util::start(inbound(&pki, server_id(), true, app.addr())).await;
    let strict_addr = strict.listener_addr("inbound").unwrap();
    let permissive_addr = permissive.listener_addr("inbound").unwrap();

    let client_id = pki.leaf_with_uri(
        "productpage.default.svc",
        "spiffe://cluster.local/ns/default/sa/productpage",
    );
    let other = Pki::new("two-proxies-other");
    let foreign = other.leaf_with_uri(
        "productpage.default.svc",
        "spiffe://cluster.local/ns/default/sa/productpage",
    );
    let evil = pki.leaf_with_uri(
        "evil.default.svc",
        "spiffe://cluster.local/ns/default/sa/evil",
    );
    let routes = RouteConfiguration::new("outbound").with_virtual_host(
        VirtualHost::new("all", ["*"])
            .with_route(Route::prefix("/strict", "to_strict"))
            .with_route(Route::prefix("/permissive", "to_permissive"))
            .with_route(Route::prefix("/foreign", "foreign"))
            .with_route(Route::prefix("/evil", "evil")),
    );
    let client = Bootstrap::default()
        .with_listener(Listener::http(
            "outbound",
            "127.0.0.1:0".parse().unwrap(),
            HttpConnectionManager::with_routes(routes),
        ))
        .with_cluster(outbound_cluster(
            "to_strict",
            strict_addr,
            &pki,
            client_id.clone(),
        ))
        .with_cluster(outbound_cluster(
            "to_permissive",
            permissive_addr,
            &pki,
            client_id,
        ))
        .with_cluster(outbound_cluster("foreign", strict_addr, &pki, foreign))
        .with_cluster(outbound_cluster("evil", strict_addr, &pki, evil));
    let c = mesh_proxy::test_util::start(client).await;
    let out = c.listener_addr("outbound").unwrap();
    let http = Client::http1();
    for path in ["/strict", "/permissive"] {
        let r = http.get(out, path, &[]).await;
        assert_eq!(r.status.as_u16(), 200, "{path}: {}", r.text());
        assert_eq!(r.header("x-upstream"), "reviews-app");
    }
    // A certificate from another CA is refused by the server's handshake; one from the mesh
    // CA naming another identity, by its SAN check.
    for path in ["/foreign", "/evil"] {
        let r = http.get(out, path, &[]).await;
        assert_eq!(r.status.as_u16(), 503, "{path}: {}", r.text());
    }

    // Plain text: PERMISSIVE serves it, STRICT has no chain for it.
    let r = http.get(permissive_addr, "/plain", &[]).await;
    assert_eq!(r.status.as_u16(), 200);
    let mut s = tokio::net::TcpStream::connect(strict_addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    assert!(buf.is_empty(), "STRICT answered plain text");
    let refused = strict
        .stats()
        .counter(StatName::listener(
            &strict_addr.to_string(),
            "no_filter_chain_match",
        ))
        .get();
    assert_eq!(refused, 1);
}

/// A Gateway `credentialName` naming a Kubernetes TLS Secret among the Istio inputs (`data`
/// base64 as kubectl writes it): its certificate serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_istio_gateway_reads_its_certificate_from_a_kubernetes_secret() {
    let pki = Pki::new("secret");
    pki.leaf_named("a.example.test", "from the secret", "a-secret");
    let b64 = |file: &str| {
        let out = Command::new("openssl")
            .args(["base64", "-A", "-in", &pki.path(file)])
            .output()
            .expect("run openssl base64");
        String::from_utf8(out.stdout).unwrap()
    };
    let yaml = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{ name: edge-cert, namespace: default }}
type: kubernetes.io/tls
data:
  tls.crt: {}
  tls.key: {}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{ name: edge }}
spec:
  selector: {{ istio: ingressgateway }}
  servers:
  - port: {{ number: 443, name: https, protocol: HTTPS }}
    hosts: ["*"]
    tls: {{ mode: SIMPLE, credentialName: edge-cert }}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{ name: a }}
spec:
  hosts: ["*"]
  gateways: [edge]
  http: [{{ directResponse: {{ status: 200, body: {{ string: secret served }} }} }}]
"#,
        b64("a-secret.crt"),
        b64("a-secret.key")
    );
    let res = mesh_xds::istio::parse_str(&yaml, "edge.yaml", "default").unwrap();
    assert_eq!(res.value.secrets.len(), 1);
    let opts = mesh_xds::istio::Options::gateway([("istio", "ingressgateway")]).map_port(443, 0);
    let b = mesh_xds::istio::translate(&res.value, &opts).unwrap().value;
    let p = mesh_proxy::test_util::start(b).await;
    let (_, addr) = p.listener_addrs()[0].clone();
    let ca = pki.path("ca.pem");
    assert_eq!(
        served_cn(addr, "a.example.test", &ca).await,
        "from the secret"
    );
    assert_eq!(
        curl(addr, "a.example.test", &ca, false).await.unwrap(),
        "secret served 1.1"
    );
}

/// Envoy's `transport_socket_matches` (Istio's auto mutual TLS): hosts whose
/// `envoy.transport_socket_match` metadata says `tlsMode: istio` are reached over TLS, the
/// others in plain text, in one cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_socket_matches_pick_tls_per_host() {
    use mesh_proxy::test_util::{Behavior, Client, Upstream};
    let pki = Pki::new("socket-matches");
    let id = "spiffe://cluster.local/ns/default/sa/upstream";
    let cert = pki.leaf_with_uri("upstream.example.test", id);
    let (DataSource::Filename(c), DataSource::Filename(k)) =
        (&cert.certificate_chain, &cert.private_key)
    else {
        unreachable!()
    };
    let secure = OpensslServer::start(c, k);
    let plain = Upstream::start("plain", Behavior::Identify).await;
    let mut cluster = Cluster::new_static("mixed", [secure.addr, plain.addr()]);
    let la = cluster.load_assignment.as_mut().unwrap();
    la.endpoints[0].lb_endpoints[0].metadata.insert(
        "envoy.transport_socket_match".into(),
        serde_json::json!({"tlsMode": "istio"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let tls = tls_cluster("unused", secure.addr, &pki.path("ca.pem"), id)
        .transport_socket
        .unwrap();
    cluster.transport_socket_matches = vec![
        TransportSocketMatch {
            name: "tlsMode-istio".into(),
            match_metadata: serde_json::json!({"tlsMode": "istio"})
                .as_object()
                .unwrap()
                .clone(),
            transport_socket: Some(tls),
        },
        TransportSocketMatch {
            name: "tlsMode-disabled".into(),
            ..TransportSocketMatch::default()
        },
    ];
    let (p, addr) = mesh_proxy::test_util::start_for_cluster(cluster).await;
    let (mut over_tls, mut in_plain) = (0, 0);
    for _ in 0..4 {
        let r = Client::http1().get(addr, "/", &[]).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text());
        if r.text().contains("s_server") {
            over_tls += 1;
        } else {
            assert_eq!(r.header("x-upstream"), "plain");
            in_plain += 1;
        }
    }
    assert_eq!((over_tls, in_plain), (2, 2), "round robin over both hosts");
    assert_eq!(
        p.stats()
            .counter(StatName::cluster("mixed", "ssl.handshake"))
            .get(),
        2
    );
}

/// An upstream with an expired certificate fails verification (503, ssl.fail_verify_error);
/// sessions to a valid upstream resume (openssl's status page says `Reused`) on the next
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_upstreams_fail_and_valid_ones_resume_sessions() {
    let pki = Pki::new("expired");
    let ca = pki.path("ca.pem");
    let path = |c: &TlsCertificate| match (&c.certificate_chain, &c.private_key) {
        (DataSource::Filename(c), DataSource::Filename(k)) => (c.clone(), k.clone()),
        _ => unreachable!(),
    };
    let (c, k) = path(&pki.expired("old.example.test"));
    let old = OpensslServer::start(&c, &k);
    let mut cluster = Cluster::new_static("old", [old.addr]);
    let mut tls = tls_cluster("x", old.addr, &ca, "")
        .transport_socket
        .unwrap();
    tls.common_tls_context
        .validation_context
        .as_mut()
        .unwrap()
        .match_typed_subject_alt_names
        .clear();
    cluster.transport_socket = Some(tls.clone());
    let (p, addr) = mesh_proxy::test_util::start_for_cluster(cluster).await;
    let r = mesh_proxy::test_util::Client::http1()
        .get(addr, "/", &[])
        .await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.text());
    assert_eq!(
        p.stats()
            .counter(StatName::cluster("old", "ssl.fail_verify_error"))
            .get(),
        1
    );

    // A valid upstream: s_server closes after each answer, so each request is a new
    // connection, and the second resumes the first's session.
    let (c, k) = path(&pki.leaf("new.example.test"));
    let fresh = OpensslServer::start(&c, &k);
    let mut cluster = Cluster::new_static("new", [fresh.addr]);
    cluster.transport_socket = Some(tls);
    let (_p, addr) = mesh_proxy::test_util::start_for_cluster(cluster).await;
    let http = mesh_proxy::test_util::Client::http1();
    let first = http.get(addr, "/", &[]).await.text();
    let second = http.get(addr, "/", &[]).await.text();
    assert!(first.contains("New,"), "{first}");
    assert!(second.contains("Reused,"), "{second}");
}

/// Trusted CA files rotate too (the workload identity's `root-cert.pem`): a listener
/// requiring client certificates and a cluster verifying its upstream both start trusting the
/// wrong CA, the files are replaced, and new handshakes trust the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_ca_files_rotate_on_both_sides() {
    let pki = Pki::new("ca-rotate");
    let other = Pki::new("ca-rotate-other");
    let trust = pki.path("trust.pem");
    std::fs::copy(other.path("ca.pem"), &trust).unwrap();
    let replace = || {
        let tmp = pki.path("trust.pem.tmp");
        std::fs::copy(pki.path("ca.pem"), &tmp).unwrap();
        std::fs::rename(&tmp, &trust).unwrap();
    };

    // Server side: client certificates from `pki` are refused until the trust file names it.
    let client = pki.leaf_with_uri(
        "client.example.test",
        "spiffe://cluster.local/ns/default/sa/web",
    );
    let mut c = chain(&[], pki.leaf("a.example.test"), "trusted");
    let t = c.transport_socket.as_mut().unwrap();
    t.require_client_certificate = true;
    t.common_tls_context.validation_context = Some(ValidationContext {
        trusted_ca: Some(DataSource::Filename(trust.clone())),
        match_typed_subject_alt_names: Vec::new(),
    });
    let p = mesh_proxy::test_util::start(listener(vec![c])).await;
    let addr = p.listener_addr("https").unwrap();
    let ca = pki.path("ca.pem");
    assert!(curl_with_cert(addr, &ca, Some(&client)).await.is_err());

    // Client side: the upstream's chain is refused until the trust file names its CA.
    let id = "spiffe://cluster.local/ns/default/sa/upstream";
    let cert = pki.leaf_with_uri("upstream.example.test", id);
    let (DataSource::Filename(crt), DataSource::Filename(key)) =
        (&cert.certificate_chain, &cert.private_key)
    else {
        unreachable!()
    };
    let upstream = OpensslServer::start(crt, key);
    let (_q, out) =
        mesh_proxy::test_util::start_for_cluster(tls_cluster("up", upstream.addr, &trust, id))
            .await;
    let http = mesh_proxy::test_util::Client::http1();
    assert_eq!(http.get(out, "/", &[]).await.status.as_u16(), 503);

    replace();
    // The files are looked at once a second, on a handshake: retry (bounded) until both
    // sides trust the new CA.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let (mut server_ok, mut client_ok) = (false, false);
    while !(server_ok && client_ok) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not rotated: server {server_ok}, client {client_ok}"
        );
        server_ok = server_ok || curl_with_cert(addr, &ca, Some(&client)).await.is_ok();
        client_ok = client_ok || http.get(out, "/", &[]).await.status.as_u16() == 200;
    }
}

/// A Gateway HTTP server with `httpsRedirect` sends clients to https (301), while its HTTPS
/// server on another port serves the same host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_istio_gateway_redirects_http_to_https() {
    let pki = Pki::new("redirect");
    pki.leaf_named("shop.example.test", "shop.example.test", "shop");
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: edge }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: 80, name: http, protocol: HTTP }
    hosts: [shop.example.test]
    tls: { httpsRedirect: true }
  - port: { number: 443, name: https, protocol: HTTPS }
    hosts: [shop.example.test]
    tls: { mode: SIMPLE, credentialName: shop }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: shop }
spec:
  hosts: [shop.example.test]
  gateways: [edge]
  http: [{ directResponse: { status: 200, body: { string: shop } } }]
"#;
    let res = mesh_xds::istio::parse_str(yaml, "edge.yaml", "default").unwrap();
    let opts = mesh_xds::istio::Options::gateway([("istio", "ingressgateway")])
        .credentials_dir(pki.dir.to_str().unwrap())
        .map_port(80, 0)
        .map_port(443, 0);
    let b = mesh_xds::istio::translate(&res.value, &opts).unwrap().value;
    let p = mesh_proxy::test_util::start(b).await;
    let addrs = p.listener_addrs();
    let (http_addr, https_addr) = (addrs[0].1, addrs[1].1);
    let r = mesh_proxy::test_util::Client::http1()
        .get(http_addr, "/cart?x=1", &[("host", "shop.example.test")])
        .await;
    assert_eq!(r.status.as_u16(), 301);
    assert_eq!(r.header("location"), "https://shop.example.test/cart?x=1");
    assert_eq!(
        curl(https_addr, "shop.example.test", &pki.path("ca.pem"), true)
            .await
            .unwrap(),
        "shop 2"
    );
}
