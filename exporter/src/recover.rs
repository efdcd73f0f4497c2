//! Recovery from an export that was killed: the hidden siblings [`crate::write`] leaves beside the
//! output directory `OUT` when the process dies midway.
//!
//! An export writes `.OUT.masq-tmp-<pid>-<random>/`, verifies it, then (replacing an artifact)
//! renames `OUT` onto an empty `.OUT.masq-old-<pid>-<random>/` it reserved, renames the temporary
//! directory to `OUT`, and deletes the old one. Each rename is atomic, so a killed export leaves one
//! of these states, and the next export to `OUT` repairs it before anything else:
//!
//! | killed                         | left behind                          | repair                     |
//! |--------------------------------|--------------------------------------|----------------------------|
//! | while writing or verifying     | `OUT` (old or none), a partial tmp   | tmp removed                |
//! | after reserving the old name   | `OUT`, a complete tmp, an empty old  | both removed               |
//! | between the two renames        | no `OUT`, the old artifact in old    | old renamed back to `OUT`  |
//! | while deleting the old one     | `OUT` (new), a partial old           | old removed                |
//!
//! A reader therefore finds the old or the new complete artifact at `OUT`, or no `OUT` and the old
//! artifact in its hidden sibling, which [`leftover_artifact`] names in the loader's error. Siblings
//! whose owner process is alive (a concurrent export) are left alone; a name without a process id
//! (an older masq) counts as stale.

use std::path::{Path, PathBuf};

use crate::artifact::MANIFEST_JSON;
use crate::error::ExportError;

/// Tag of the temporary directory a new artifact is written into.
pub(crate) const TMP: &str = "masq-tmp";
/// Tag of the directory the replaced artifact is moved to.
pub(crate) const OLD: &str = "masq-old";

/// `.OUT.<tag>-`: the prefix of every sibling of `out` with that tag.
pub(crate) fn prefix(out: &Path, tag: &str) -> Option<String> {
    out.file_name().map(|n| format!(".{}.{tag}-", n.to_string_lossy()))
}

fn parent(out: &Path) -> &Path {
    out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Whether the process that made a sibling named `<prefix><pid>-<random>` still runs. Without
/// `/proc` there is no cheap answer: the sibling counts as live for an hour after its last change.
fn owner_alive(rest: &str, path: &Path) -> bool {
    let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { return false };
    if pid == std::process::id() {
        return true;
    }
    if Path::new("/proc/self").exists() {
        return Path::new(&format!("/proc/{pid}")).exists();
    }
    let age = std::fs::symlink_metadata(path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
    age.is_none_or(|a| a.as_secs() < 3600)
}

/// The siblings of `out` with `tag` whose owner is gone.
fn stale(out: &Path, tag: &str) -> Vec<PathBuf> {
    let Some(prefix) = prefix(out, tag) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(parent(out)) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(&prefix)?.to_string();
            let path = e.path();
            (!owner_alive(&rest, &path)).then_some(path)
        })
        .collect();
    found.sort();
    found
}

fn modified(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::symlink_metadata(p).and_then(|m| m.modified()).ok()
}

/// The newest stale old sibling of a missing `out` that holds a complete artifact (it loads).
pub(crate) fn leftover_artifact(out: &Path) -> Option<PathBuf> {
    if std::fs::symlink_metadata(out).is_ok() {
        return None;
    }
    let mut olds: Vec<PathBuf> = stale(out, OLD).into_iter().filter(|p| p.join(MANIFEST_JSON).is_file()).collect();
    olds.sort_by_key(|p| std::cmp::Reverse(modified(p)));
    olds.into_iter().find(|p| crate::artifact::load_artifact(p).is_ok())
}

/// Repair what a killed export left beside `out` (see the module docs): restore the old artifact
/// to a missing `out`, then remove stale temporary and old siblings. When `out` is missing and no
/// old sibling holds a complete artifact, the old siblings are kept (nothing is deleted that might
/// be the only copy).
pub(crate) fn recover(out: &Path) -> Result<(), ExportError> {
    if let Some(old) = leftover_artifact(out) {
        std::fs::rename(&old, out).map_err(|e| ExportError::io(out, e))?;
    }
    let out_exists = std::fs::symlink_metadata(out).is_ok();
    for tmp in stale(out, TMP) {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if out_exists {
        for old in stale(out, OLD) {
            let _ = std::fs::remove_dir_all(&old);
        }
    }
    Ok(())
}
