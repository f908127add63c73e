//! `mesh-proxy --demo` (Bookinfo) and `--demo envoy` start, answer the curl commands they
//! print, switch scenarios, and stop cleanly.

mod support;

use http::StatusCode;
use mesh_proxy::test_util::Client;
use support::ProxyProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_types)] // measures a subprocess's wall-clock shutdown time
async fn demo_answers_its_printed_commands_and_stops_cleanly() {
    let p = ProxyProcess::spawn(&["--demo", "envoy", "--listen", "127.0.0.1:0"]);
    let (addr, lines) = p.wait_ready("http");
    let commands: Vec<&String> = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("curl "))
        .collect();
    assert_eq!(commands.len(), 5, "{lines:#?}");
    for cmd in commands {
        let url = cmd
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap();
        let path = &url[format!("http://{addr}").len()..];
        let client = if cmd.contains("--http2-prior-knowledge") {
            Client::http2()
        } else {
            Client::http1()
        };
        let headers: Vec<(&str, &str)> = if cmd.contains("-H 'x-canary: true'") {
            vec![("x-canary", "true")]
        } else {
            vec![]
        };
        let r = client.get(addr, path, &headers).await;
        match path {
            "/old" => {
                assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY, "{cmd}");
                assert_eq!(r.header("location"), format!("http://{addr}/service/1"));
            }
            _ => {
                assert_eq!(r.status, StatusCode::OK, "{cmd}");
                let expect = if path.ends_with('2') || !headers.is_empty() {
                    "service2"
                } else {
                    "service1"
                };
                assert_eq!(
                    r.text(),
                    format!("hello from {expect}: GET {path}\n"),
                    "{cmd}"
                );
            }
        }
    }
    // The access log has a line per request, in Envoy's format.
    let log = p.read_until(|l| l.contains("\"GET /service/2 HTTP/2\" 200 - 0 "));
    assert!(
        log.iter()
            .any(|l| l.contains("\"GET /old HTTP/1.1\" 301 - 0 0 ")),
        "{log:#?}"
    );
    let first = &log[0];
    assert!(
        first.starts_with("[20") && first.contains("\"GET /service/1 HTTP/1.1\" 200 - 0 36 "),
        "{first}"
    );
    // x-request-id was generated and logged; the upstream host is logged.
    let fields: Vec<&str> = first.split('"').collect();
    assert_eq!(fields[7].len(), 36, "request id in {first}");
    assert!(
        fields[11].starts_with("127.0.0.1:"),
        "upstream host in {first}"
    );
    // Wait off the runtime: the clients' connections must keep running to finish the drain.
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || p.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "idle connections drain at once, not at the 10 s drain limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bookinfo_demo_serves_the_page_and_switches_scenarios_from_stdin() {
    let mut p = ProxyProcess::spawn_piped(&["--demo", "--listen", "127.0.0.1:0"]);
    let (gateway, lines) = p.wait_ready("gateway");
    for want in ["curl -si http://", "jason-delay ", "circuit-breaker "] {
        assert!(
            lines.iter().any(|l| l.contains(want)),
            "{want:?} in {lines:#?}"
        );
    }
    let c = Client::http1();
    let page = |user: Option<&'static str>| {
        let c = &c;
        async move {
            let h: Vec<(&str, &str)> = user.map(|u| vec![("end-user", u)]).unwrap_or_default();
            let r = c.get(gateway, "/productpage", &h).await;
            assert_eq!(r.status, StatusCode::OK);
            (r.header("x-reviews-version").to_owned(), r.text())
        }
    };
    let (version, text) = page(None).await;
    assert!(["v1", "v2", "v3"].contains(&version.as_str()), "{version}");
    assert!(text.contains(&format!("reviews-{version}")), "{text}");

    // Typing a scenario's name switches to it.
    p.send_line("jason-v2");
    p.read_until(|l| l.starts_with("mesh-proxy: scenario jason-v2 applied"));
    assert_eq!(page(Some("jason")).await.0, "v2");
    assert_eq!(page(None).await.0, "v1");
    p.send_line("no-such-scenario");
    p.send_line("v1");
    p.read_until(|l| l.starts_with("mesh-proxy: scenario v1 applied"));
    assert_eq!(page(Some("jason")).await.0, "v1");
    assert!(p.terminate().success());
}

#[test]
fn an_unknown_scenario_is_refused_with_the_names() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mesh-proxy"))
        .args(["--demo", "--scenario", "nope", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope") && err.contains("jason-v2"), "{err}");
}

#[test]
fn validate_reports_errors_and_exit_code() {
    let good = support::temp_file(
        "good.yaml",
        &mesh_examples::demo::demo_config(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mesh-proxy"))
        .args(["validate", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = support::temp_file(
        "bad.yaml",
        "static_resources:\n  clusters:\n  - name: a\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {address: {socket_address: {address: not-an-ip, port_value: 0}}}\n  - name: a\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment: {endpoints: []}\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mesh-proxy"))
        .args(["--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address"),
        "{err}"
    );
    assert!(err.contains("clusters[1].name"), "{err}");
}
