//! Finding the shared conformance data from a test (included with `#[path]`).

use std::path::{Path, PathBuf};

const CONFORMANCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance");

/// The conformance subdirectory `which` (`envoy-router-check`, `istio-bookinfo`, …). `None`
/// (after a notice) when it is missing outside CI; on CI (`CI=true`) a missing directory fails
/// the test.
#[allow(dead_code)] // each test binary that includes this module uses a part of it
pub(crate) fn dir(which: &str) -> Option<PathBuf> {
    let dir = Path::new(CONFORMANCE).join(which);
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("conformance data missing: {} not found", dir.display());
    }
    eprintln!(
        "notice: {} not found; skipping the conformance test",
        dir.display()
    );
    None
}

/// The `*.yaml` files of `dir`, sorted (at least one).
#[allow(dead_code)]
pub(crate) fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.yaml in {}", dir.display());
    files
}

/// `envoy-router-check/` (see [`dir`]).
#[allow(dead_code)]
pub(crate) fn router_check_dir() -> Option<PathBuf> {
    dir("envoy-router-check")
}

/// The `*.yaml` route configurations of [`router_check_dir`], sorted.
#[allow(dead_code)]
pub(crate) fn router_check_yaml_files() -> Option<Vec<PathBuf>> {
    Some(yaml_files(&router_check_dir()?))
}
