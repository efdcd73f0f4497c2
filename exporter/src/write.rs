//! Atomic directory writes and the creation timestamp.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use masq_runtime::artifact::MANIFEST_JSON;

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

fn sibling(out: &Path, tag: &str) -> Result<PathBuf, ExportError> {
    let name = out
        .file_name()
        .ok_or_else(|| ExportError::invalid(format!("output path {} has no directory name", out.display())))?;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok(parent.join(format!(".{}.{tag}-{}-{nanos}", name.to_string_lossy(), std::process::id())))
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
    check_target(out, force)?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ExportError::io(parent, e))?;
    }
    let tmp = sibling(out, "masq-tmp")?;
    std::fs::create_dir(&tmp).map_err(|e| ExportError::io(&tmp, e))?;
    let result = (|| {
        for (name, bytes) in files {
            write_file(&tmp.join(name), bytes)?;
        }
        verify(&tmp)?;
        if std::fs::symlink_metadata(out).is_ok() {
            check_target(out, force)?;
            let old = sibling(out, "masq-old")?;
            std::fs::rename(out, &old).map_err(|e| ExportError::io(out, e))?;
            if let Err(e) = std::fs::rename(&tmp, out) {
                let _ = std::fs::rename(&old, out);
                return Err(ExportError::io(out, e));
            }
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&tmp, out).map_err(|e| ExportError::io(out, e))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    } else if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Make the rename durable (best effort; not every platform can sync a directory).
        let _ = std::fs::File::open(parent).and_then(|f| f.sync_all());
    }
    result
}

/// Now as RFC 3339 in UTC, to the second: `2025-01-31T12:34:56Z`.
pub(crate) fn rfc3339_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    rfc3339(secs)
}

/// Seconds since the Unix epoch as RFC 3339 UTC (proleptic Gregorian civil-from-days).
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (mo <= 2) as i64;
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
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
