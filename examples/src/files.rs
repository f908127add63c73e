//! Config files on disk: what identifies their current version, so a watcher can tell a change.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Each file with its modification time and content hash (`None` when it cannot be read).
pub type Stamp = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

/// The stamp of some files and directories (a directory stands for the files directly in it,
/// in name order).
pub fn stamp(roots: &[PathBuf]) -> Stamp {
    let mut files = Vec::new();
    for r in roots {
        match std::fs::read_dir(r) {
            Ok(entries) => {
                let mut found: Vec<PathBuf> =
                    entries.filter_map(Result::ok).map(|e| e.path()).collect();
                found.sort();
                files.extend(found);
            }
            Err(_) => files.push(r.clone()),
        }
    }
    files
        .into_iter()
        .map(|f| {
            let s = file_stamp(&f);
            (f, s)
        })
        .collect()
}

/// What identifies a version of a file on disk: its modification time, and a hash of its
/// content (a rewrite of the same length within one tick of the file system's clock keeps the
/// time; config files are small, so reading them every pass costs little).
fn file_stamp(file: &Path) -> Option<(SystemTime, u64)> {
    use std::hash::{Hash, Hasher};
    let modified = std::fs::metadata(file).ok()?.modified().ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(file).ok()?.hash(&mut h);
    Some((modified, h.finish()))
}
