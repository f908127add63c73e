//! `mesh-route-check` on Envoy's own `router_check_tool` suite (through the library and the
//! binary), and on small hand-written cases: failures, bad input and coverage.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mesh_examples::route_check;

/// Conformance cases that fail because of mesh-route, not this tool: (pair, test name, cause).
/// They must keep failing: when one passes, remove it from this list.
const KNOWN_MESH_ROUTE_FAILURES: &[(&str, &str, &str)] = &[];

fn known_failures(pair: &str) -> Vec<&'static str> {
    KNOWN_MESH_ROUTE_FAILURES
        .iter()
        .filter(|(p, _, _)| *p == pair)
        .map(|(_, test, _)| *test)
        .collect()
}

fn router_check_dir() -> Option<PathBuf> {
    support::conformance_dir("envoy-router-check")
}

/// Every `NAME.yaml` + `NAME.golden.proto.json` pair: (NAME, config, tests).
fn pairs(dir: &Path) -> Vec<(String, PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(name) = file.strip_suffix(".golden.proto.json") {
            let config = dir.join(format!("{name}.yaml"));
            assert!(config.is_file(), "{file} has no {name}.yaml");
            out.push((name.to_owned(), config, path));
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no test files in {}", dir.display());
    out
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesh-route-check"))
        .args(args)
        .output()
        .expect("run mesh-route-check")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn conformance_through_the_library() {
    let Some(dir) = router_check_dir() else {
        return;
    };
    let mut unexpected = Vec::new();
    let mut now_passing = Vec::new();
    let mut total = 0;
    for (name, config, tests) in pairs(&dir) {
        let routes = route_check::load_routes(&config)
            .unwrap_or_else(|e| panic!("{}", route_check::error_chain(&e)));
        let file = route_check::load_tests(&tests)
            .unwrap_or_else(|e| panic!("{}", route_check::error_chain(&e)));
        let report = route_check::check_routes(&routes, &file);
        let known = known_failures(&name);
        for r in &report.results {
            total += 1;
            match (r.passed(), known.contains(&r.name.as_str())) {
                (false, false) => unexpected.push(format!("{name}: {}: {:?}", r.name, r.failures)),
                (true, true) => now_passing.push(format!("{name}: {}", r.name)),
                _ => {}
            }
        }
    }
    assert!(total > 0);
    assert!(
        unexpected.is_empty(),
        "failing conformance cases:\n{}",
        unexpected.join("\n")
    );
    assert!(
        now_passing.is_empty(),
        "these pass now; remove them from KNOWN_MESH_ROUTE_FAILURES:\n{}",
        now_passing.join("\n")
    );
}

#[test]
fn conformance_through_the_binary() {
    let Some(dir) = router_check_dir() else {
        return;
    };
    for (name, config, tests) in pairs(&dir) {
        let out = run(&[
            "--config".as_ref(),
            config.as_os_str(),
            "--tests".as_ref(),
            tests.as_os_str(),
            "--details".as_ref(),
        ]);
        let stdout = text(&out.stdout);
        let mut failed: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("FAIL "))
            .collect();
        failed.sort_unstable();
        let mut known = known_failures(&name);
        known.sort_unstable();
        assert_eq!(failed, known, "{name}:\n{stdout}\n{}", text(&out.stderr));
        let want = if known.is_empty() { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(want), "{name}:\n{stdout}");
        assert!(
            stdout.contains(" passed, "),
            "{name}: no summary:\n{stdout}"
        );
    }
}

/// A fresh directory for one test's files.
fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("route-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const ROUTES: &str = r#"
virtual_hosts:
- name: web
  domains: ["www.example.com"]
  routes:
  - match: { prefix: /api }
    route: { cluster: api }
  - match: { prefix: / }
    route: { cluster: web, timeout: 5s }
"#;

fn write_pair(name: &str, routes: &str, tests: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let (config, test_file) = (dir.join("routes.yaml"), dir.join("tests.json"));
    std::fs::write(&config, routes).unwrap();
    std::fs::write(&test_file, tests).unwrap();
    (config, test_file)
}

#[test]
fn a_wrong_expectation_fails_with_expected_and_actual() {
    let (config, tests) = write_pair(
        "wrong",
        ROUTES,
        r#"{"tests": [
          {"test_name": "api is right",
           "input": {"authority": "www.example.com", "path": "/api/users", "method": "GET"},
           "validate": {"cluster_name": "api", "timeout": "15s"}},
          {"test_name": "deliberately wrong",
           "input": {"authority": "www.example.com", "path": "/api/users", "method": "GET"},
           "validate": {"cluster_name": "web", "timeout": "5s", "virtual_host_name": "web"}}
        ]}"#,
    );
    let out = run(&[
        "--config".as_ref(),
        config.as_os_str(),
        "--tests".as_ref(),
        tests.as_os_str(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL deliberately wrong"), "{stdout}");
    assert!(
        stdout.contains(r#"cluster_name: expected "web", actual "api""#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"timeout: expected "5s", actual "15s""#),
        "{stdout}"
    );
    assert!(!stdout.contains("virtual_host_name"), "{stdout}");
    assert!(
        !stdout.contains("api is right"),
        "passing tests need --details: {stdout}"
    );
    assert!(stdout.contains("2 tests: 1 passed, 1 failed"), "{stdout}");
}

#[test]
fn bad_input_names_the_file_and_the_field() {
    let (config, tests) = write_pair(
        "bad-tests",
        ROUTES,
        r#"{"tests": [{"test_name": "t",
           "input": {"authority": "www.example.com", "path": "/", "method": "GET"},
           "validate": {"timeout": "soon"}}]}"#,
    );
    let out = run(&[
        "-c".as_ref(),
        config.as_os_str(),
        "-t".as_ref(),
        tests.as_os_str(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&*tests.to_string_lossy()), "{stderr}");
    assert!(stderr.contains("tests[0].validate.timeout"), "{stderr}");

    let (config, tests) = write_pair(
        "bad-routes",
        "virtual_hosts:\n- name: v\n  domains: ['*']\n  routes:\n  - match: { safe_regex: { regex: '(' } }\n    route: { cluster: c }\n",
        "tests: []",
    );
    let out = run(&[
        "-c".as_ref(),
        config.as_os_str(),
        "-t".as_ref(),
        tests.as_os_str(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&*config.to_string_lossy()), "{stderr}");
    assert!(stderr.contains("virtual_hosts[0].routes[0]"), "{stderr}");

    let missing = config.with_file_name("missing.yaml");
    let out = run(&[
        "-c".as_ref(),
        missing.as_os_str(),
        "-t".as_ref(),
        tests.as_os_str(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing.yaml"), "{stderr}");
}

#[test]
fn coverage_reports_the_share_of_routes_exercised() {
    let (config, tests) = write_pair(
        "coverage",
        ROUTES,
        "tests:\n- test_name: api\n  input: { authority: www.example.com, path: /api, method: GET }\n  validate: { cluster_name: api }\n",
    );
    let args = |extra: &[&str]| {
        let mut v: Vec<std::ffi::OsString> = vec![
            "--config".into(),
            config.clone().into(),
            "--tests".into(),
            tests.clone().into(),
        ];
        v.extend(extra.iter().map(|s| std::ffi::OsString::from(*s)));
        v
    };
    let output = |extra: &[&str]| {
        let a = args(extra);
        let a: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
        let out = run(&a);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };

    let plain = output(&[]);
    assert!(!plain.contains("coverage"), "{plain}");

    let cov = output(&["--coverage"]);
    assert!(
        cov.contains("route coverage: 50.00% (1 of 2 routes)"),
        "{cov}"
    );
    assert!(!cov.contains("untested route"), "{cov}");

    let details = output(&["--coverage", "--details"]);
    assert!(details.contains("PASS api"), "{details}");
    assert!(
        details.contains("untested route: virtual_hosts[0] (web) routes[1]: prefix /"),
        "{details}"
    );
}
