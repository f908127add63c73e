//! Config fuzzing (issue #11): random mutations of the configs this project ships (Envoy
//! bootstraps and Istio YAML), through every stage start-up runs (parse, convert, validate,
//! translate, compile). No input may panic or hang; each is accepted, or rejected with errors
//! that name the field at fault.
//!
//! Bounded in count and time. Every case is reproducible from its seed, printed on failure;
//! `CONFIG_FUZZ_CASES` raises the count for a longer local run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_proxy::Proxy;
use mesh_xds::{envoy, istio};
use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The shipped Envoy bootstraps.
const ENVOY_SEEDS: &[&str] = &[
    "examples/demo.yaml",
    "examples/custom-filter/proxy.yaml",
    "examples/tests/every-stage.yaml",
    "benches/load/bench.yaml",
    "mesh-xds/tests/fixtures/front_proxy.yaml",
];

/// The shipped Istio YAML (each file alone, with the Bookinfo services beside it).
fn istio_seeds() -> Vec<PathBuf> {
    let dir = Path::new(ROOT).join("examples/bookinfo");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The shipped templates' `${NAME}` placeholders, filled as their scripts fill them: hosts
/// with loopback, ports (and the rest) with a port number.
fn fill_placeholders(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let Some(end) = rest[i..].find('}') else {
            break;
        };
        let name = &rest[i + 2..i + end];
        out.push_str(if name.ends_with("HOST") {
            "127.0.0.1"
        } else if name.ends_with("PORT") {
            "18000"
        } else {
            "127.0.0.1:18001"
        });
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    out
}

/// A small deterministic generator (xorshift64*), seeded per case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that probe limits and types.
fn odd_value(rng: &mut Rng) -> Value {
    let pick = [
        Value::Null,
        Value::Bool(true),
        serde_json::json!(0),
        serde_json::json!(-1),
        serde_json::json!(999),
        serde_json::json!(4_294_967_296u64),
        serde_json::json!(1_099_511_627_776u64),
        serde_json::json!(1e308),
        serde_json::json!(-0.5),
        serde_json::json!(""),
        serde_json::json!("*"),
        serde_json::json!(":authority"),
        serde_json::json!("^(a)\\1$"),
        serde_json::json!("x{1000}{1000}"),
        serde_json::json!("-1s"),
        serde_json::json!("1e9s"),
        serde_json::json!("0.0000000001s"),
        serde_json::json!("999"),
        serde_json::json!("not an ip"),
        serde_json::json!("::"),
        serde_json::json!("%%%"),
        serde_json::json!("\u{0}"),
        serde_json::json!([]),
        serde_json::json!([1, "two", null]),
        serde_json::json!({}),
        serde_json::json!({"value": -3}),
        serde_json::json!({"@type": "type.googleapis.com/acme.Unknown"}),
    ];
    pick[rng.below(pick.len())].clone()
}

/// Every path to a node of `v` (object keys and list indices).
fn paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                here.push(Step::Key(k.clone()));
                paths(c, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                here.push(Step::Index(i));
                paths(c, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn node<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

/// One random change to one node of `doc`.
fn mutate(doc: &mut Value, rng: &mut Rng) {
    let mut all = Vec::new();
    paths(doc, &mut Vec::new(), &mut all);
    let at = all[rng.below(all.len())].clone();
    let op = rng.below(6);
    let (parent_path, last) = match at.split_last() {
        Some((last, parent)) => (parent.to_vec(), Some(last.clone())),
        None => (Vec::new(), None),
    };
    match (op, last) {
        // Remove the node from its parent.
        (0, Some(Step::Key(k))) => {
            if let Value::Object(m) = node(doc, &parent_path) {
                m.remove(&k);
            }
        }
        (0, Some(Step::Index(i))) => {
            if let Value::Array(a) = node(doc, &parent_path) {
                a.remove(i);
            }
        }
        // Misspell a key.
        (1, Some(Step::Key(k))) => {
            if let Value::Object(m) = node(doc, &parent_path)
                && let Some(v) = m.remove(&k)
            {
                let mut typo = k.clone();
                typo.insert(rng.below(k.len() + 1), 'z');
                m.insert(typo, v);
            }
        }
        // Duplicate a list element.
        (2, Some(Step::Index(i))) => {
            if let Value::Array(a) = node(doc, &parent_path) {
                let dup = a[i].clone();
                a.insert(i, dup);
            }
        }
        // Copy another node here (a value of the wrong kind, or a plausible one elsewhere).
        (3, _) => {
            let from = all[rng.below(all.len())].clone();
            let copy = node(doc, &from).clone();
            *node(doc, &at) = copy;
        }
        // Anything else: a value that probes limits and types.
        _ => *node(doc, &at) = odd_value(rng),
    }
}

/// Asserts that `errors` are clear: a message each, and a path unless the whole document is
/// at fault.
fn clear(errors: &[mesh_core::config::FieldError], what: &str) {
    for e in errors {
        assert!(!e.message.is_empty(), "{what}: an error without a message");
    }
}

fn run_envoy(text: &str, what: &str) {
    let d = match envoy::diagnose_bootstrap(text) {
        Ok(d) => d,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "{what}");
            return;
        }
    };
    clear(&d.errors, what);
    if let Err(e) = Proxy::builder(d.value).check() {
        clear(&e.errors, what);
        for fe in &e.errors {
            assert!(
                !fe.path.is_empty(),
                "{what}: compile error without a path: {fe}"
            );
        }
    }
}

fn run_istio(text: &str, services: &str, what: &str) {
    let all = format!("{services}\n---\n{text}");
    let Ok(loaded) = istio::parse_str(&all, "fuzz", "default") else {
        return;
    };
    for opts in [
        istio::Options::sidecar(15001),
        istio::Options::gateway([("istio", "ingressgateway")]).map_port(80, 18080),
    ] {
        match istio::translate(&loaded.value, &opts) {
            Ok(b) => {
                if let Err(e) = Proxy::builder(b.value).check() {
                    panic!("{what}: a translation that does not compile: {e}");
                }
            }
            Err(e) => {
                for fe in e.field_errors() {
                    assert!(fe.path.contains(':'), "{what}: no resource named: {fe}");
                }
            }
        }
    }
}

/// Runs `case` and fails when it takes longer than a hang would be allowed to.
fn bounded(what: &str, case: impl FnOnce()) {
    let started = tokio::time::Instant::now();
    case();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "{what}: took {took:?} (a hang in the making)"
    );
}

#[test]
fn mutated_configs_are_accepted_or_rejected_clearly() {
    let cases: u64 = std::env::var("CONFIG_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let budget = Duration::from_secs(90);
    let started = tokio::time::Instant::now();
    let services = std::fs::read_to_string(
        Path::new(ROOT).join("mesh-xds/tests/fixtures/istio/bookinfo-services.yaml"),
    )
    .unwrap();
    let envoy_seeds: Vec<(String, Value)> = ENVOY_SEEDS
        .iter()
        .map(|f| {
            let text =
                fill_placeholders(&std::fs::read_to_string(Path::new(ROOT).join(f)).unwrap());
            let doc = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
            (f.to_string(), doc)
        })
        .collect();
    let istio_seeds: Vec<(String, Vec<Value>)> = istio_seeds()
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let docs = serde_yaml_ng::Deserializer::from_str(&text)
                .map(|d| serde::Deserialize::deserialize(d).unwrap())
                .collect();
            (f.display().to_string(), docs)
        })
        .collect();
    let mut ran = 0;
    for seed in 1..=cases {
        if started.elapsed() > budget {
            break;
        }
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mutations = 1 + rng.below(3);
        if seed % 2 == 0 {
            let (name, base) = &envoy_seeds[rng.below(envoy_seeds.len())];
            let mut doc = base.clone();
            for _ in 0..mutations {
                mutate(&mut doc, &mut rng);
            }
            let what = format!("seed {seed} on {name}");
            let json = doc.to_string();
            let yaml = serde_yaml_ng::to_string(&doc).unwrap();
            bounded(&what, || run_envoy(&json, &what));
            bounded(&what, || run_envoy(&yaml, &what));
        } else {
            let (name, docs) = &istio_seeds[rng.below(istio_seeds.len())];
            let mut docs = docs.clone();
            for _ in 0..mutations {
                let i = rng.below(docs.len());
                mutate(&mut docs[i], &mut rng);
            }
            let text = docs
                .iter()
                .map(|d| serde_yaml_ng::to_string(d).unwrap())
                .collect::<Vec<_>>()
                .join("\n---\n");
            let what = format!("seed {seed} on {name}");
            bounded(&what, || run_istio(&text, &services, &what));
        }
        ran += 1;
    }
    assert!(ran >= 50, "only {ran} cases ran within {budget:?}");
    eprintln!("config fuzz: {ran} mutated configs");
}
