//! Finding the shared conformance data from a test (included with `#[path]`).

use std::path::{Path, PathBuf};

const CONFORMANCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance");

/// `envoy-router-check/`. `None` (after a notice) when it is missing outside CI; on CI
/// (`CI=true`) a missing directory fails the test.
#[allow(dead_code)] // each test binary that includes this module uses a part of it
pub(crate) fn router_check_dir() -> Option<PathBuf> {
    let dir = Path::new(CONFORMANCE).join("envoy-router-check");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("conformance data missing: {} not found", dir.display());
    }
    eprintln!(
        "notice: {} not found; skipping the Envoy conformance test",
        dir.display()
    );
    None
}

/// The `*.yaml` route configurations of [`router_check_dir`], sorted.
#[allow(dead_code)]
pub(crate) fn router_check_yaml_files() -> Option<Vec<PathBuf>> {
    let dir = router_check_dir()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.yaml in {}", dir.display());
    Some(files)
}
