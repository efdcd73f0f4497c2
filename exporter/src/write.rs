//! Atomic directory writes (temporary sibling directory, verify, rename; [`crate::recover`] repairs
//! what a killed write leaves) and the creation timestamp.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use crate::artifact::MANIFEST_JSON;
use crate::recover::{self, OLD, TMP};

use crate::error::ExportError;

/// Refuse an existing target unless `force`, and with `force` refuse anything but an artifact
/// directory or an empty directory (so `--force` never deletes unrelated data).
pub(crate) fn check_target(out: &Path, force: bool) -> Result<(), ExportError> {
    let Ok(meta) = std::fs::symlink_metadata(out) else { return Ok(()) };
    let exists = |reason: &str| ExportError::Exists { dir: out.to_path_buf(), reason: reason.to_string() };
    if !force {
        return Err(exists("pass --force to replace it"));
    }
    if !meta.is_dir() {
        return Err(exists("it is not a directory; refusing to replace it"));
    }
    let empty = std::fs::read_dir(out).map_err(|e| ExportError::io(out, e))?.next().is_none();
    if !empty && !out.join(MANIFEST_JSON).is_file() {
        return Err(exists("it is neither empty nor a masq artifact; refusing to replace it"));
    }
    Ok(())
}

/// A new empty sibling `.OUT.<tag>-<pid>-<random>`: the process id tells the next export whether
/// its owner is still running ([`crate::recover`]).
fn sibling(out: &Path, tag: &str) -> Result<tempfile::TempDir, ExportError> {
    let prefix = recover::prefix(out, tag)
        .ok_or_else(|| ExportError::invalid(format!("output path {} has no directory name", out.display())))?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .tempdir_in(parent)
        .map_err(|e| ExportError::io(parent, e))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let mut f = std::fs::File::create(path).map_err(|e| ExportError::io(path, e))?;
    f.write_all(bytes).map_err(|e| ExportError::io(path, e))?;
    f.sync_all().map_err(|e| ExportError::io(path, e))
}

/// Write `files` into a temporary sibling of `out`, run `verify` on it, then move it to `out`
/// (with `force`, an existing `out` is renamed away first and deleted last). On any error the
/// temporary directory is removed and `out` is as it was.
pub(crate) fn write_dir_atomic(
    out: &Path,
    files: &[(&str, &[u8])],
    force: bool,
    verify: impl FnOnce(&Path) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    recover::recover(out)?;
    check_target(out, force)?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ExportError::io(parent, e))?;
    }
    // Removed when dropped, unless it was renamed into place.
    let tmp_dir = sibling(out, TMP)?;
    let tmp = tmp_dir.path().to_path_buf();
    let result = (|| {
        for (name, bytes) in files {
            write_file(&tmp.join(name), bytes)?;
        }
        verify(&tmp)?;
        if std::fs::symlink_metadata(out).is_ok() {
            check_target(out, force)?;
            // An empty directory reserved beside `out`; renaming `out` over it moves the old
            // artifact away, and dropping it at the end deletes the old files.
            let old_dir = sibling(out, OLD)?;
            let old = old_dir.path().to_path_buf();
            std::fs::rename(out, &old).map_err(|e| ExportError::io(out, e))?;
            if let Err(e) = std::fs::rename(&tmp, out) {
                let _ = std::fs::rename(&old, out);
                return Err(ExportError::io(out, e));
            }
            drop(old_dir);
        } else {
            std::fs::rename(&tmp, out).map_err(|e| ExportError::io(out, e))?;
        }
        Ok(())
    })();
    if result.is_ok() {
        // Renamed into place: nothing left to delete.
        let _ = tmp_dir.keep();
    }
    if result.is_ok()
        && let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty())
    {
        // Make the rename durable (best effort; not every platform can sync a directory).
        let _ = std::fs::File::open(parent).and_then(|f| f.sync_all());
    }
    result
}

/// Now as RFC 3339 in UTC, to the second: `2025-01-31T12:34:56Z`.
pub(crate) fn rfc3339_now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The creation time a manifest records: `SOURCE_DATE_EPOCH` (seconds since 1970-01-01 UTC, the
/// reproducible-builds convention) when set, so two exports of one model are byte-identical;
/// otherwise now. A value that is not a whole number of seconds is an error naming it.
pub(crate) fn created() -> Result<String, ExportError> {
    created_at(std::env::var_os("SOURCE_DATE_EPOCH").as_deref())
}

fn created_at(epoch: Option<&std::ffi::OsStr>) -> Result<String, ExportError> {
    let Some(v) = epoch else { return Ok(rfc3339_now()) };
    let text = v.to_string_lossy();
    let secs: u64 = text.trim().parse().map_err(|_| {
        ExportError::invalid(format!("SOURCE_DATE_EPOCH={text:?} is not a whole number of seconds since 1970"))
    })?;
    let t = SystemTime::UNIX_EPOCH
        .checked_add(std::time::Duration::from_secs(secs))
        .filter(|&t| t <= SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_799))
        .ok_or_else(|| ExportError::invalid(format!("SOURCE_DATE_EPOCH={text:?} is past the year 9999")))?;
    Ok(humantime::format_rfc3339_seconds(t).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn creation_time_is_rfc3339_utc_to_the_second() {
        let now = rfc3339_now();
        let parsed = humantime::parse_rfc3339(&now).unwrap();
        let age = SystemTime::now().duration_since(parsed).unwrap();
        assert!(age.as_secs() < 5, "{now}");
        assert_eq!(now.len(), "2025-01-31T12:34:56Z".len(), "{now}");
        assert!(now.ends_with('Z'), "{now}");
    }

    #[test]
    fn source_date_epoch_pins_the_creation_time() {
        use std::ffi::OsStr;
        assert_eq!(created_at(Some(OsStr::new("0"))).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(created_at(Some(OsStr::new("1700000000"))).unwrap(), "2023-11-14T22:13:20Z");
        for bad in ["-1", "soon", "1e9", "99999999999999999999"] {
            let e = created_at(Some(OsStr::new(bad))).unwrap_err().to_string();
            assert!(e.contains("SOURCE_DATE_EPOCH") && e.contains(bad), "{e}");
        }
        assert_eq!(created_at(None).unwrap().len(), 20);
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("masq-write-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let root = scratch("fail");
        let out = root.join("art");
        // A file in a missing subdirectory cannot be created: the write fails midway.
        let err = write_dir_atomic(&out, &[("a.bin", b"1"), ("missing/b.bin", b"2")], false, |_| Ok(())).unwrap_err();
        assert!(matches!(err, ExportError::Io { .. }), "{err}");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "temporary directory left behind");
        // A failing verification also leaves nothing, and keeps an existing artifact intact.
        write_dir_atomic(&out, &[(MANIFEST_JSON, b"{}")], false, |_| Ok(())).unwrap();
        let err =
            write_dir_atomic(&out, &[(MANIFEST_JSON, b"new")], true, |_| Err(ExportError::invalid("no"))).unwrap_err();
        assert!(matches!(err, ExportError::Invalid { .. }));
        assert_eq!(std::fs::read(out.join(MANIFEST_JSON)).unwrap(), b"{}");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
        // Force replaces it.
        write_dir_atomic(&out, &[(MANIFEST_JSON, b"new")], true, |_| Ok(())).unwrap();
        assert_eq!(std::fs::read(out.join(MANIFEST_JSON)).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn force_refuses_unrelated_directories() {
        let root = scratch("force");
        let out = root.join("data");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("precious.txt"), b"keep").unwrap();
        assert!(matches!(check_target(&out, true), Err(ExportError::Exists { .. })));
        assert!(matches!(check_target(&out, false), Err(ExportError::Exists { .. })));
        let file = root.join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(check_target(&file, true), Err(ExportError::Exists { .. })));
        assert!(check_target(&root.join("new"), false).is_ok());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
