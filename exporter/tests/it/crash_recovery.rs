//! A killed `masq export` (issue #18): each state a crash can leave beside the output directory is
//! built by hand, then the next export (or load) must find the old or the new complete artifact,
//! restore the old one when the crash fell between the two renames, and reclaim every stale
//! temporary sibling.

use std::path::{Path, PathBuf};

use crate::scratch::{entries, scratch};
use masq_exporter::artifact::{MANIFEST_JSON, load_artifact, read_manifest};
use masq_exporter::{ExportError, ExportFacts, ExportOptions, export};
use masq_ir::{Graph, zoo};

/// A process id no process can have (Linux caps pids at 2^22).
const DEAD: u32 = 99_999_999;

fn model(arch: &str) -> (Graph, ExportFacts) {
    (zoo::build("mnist_cnn", None, 0).unwrap(), ExportFacts::new(arch))
}

fn force() -> ExportOptions {
    ExportOptions { force: true, ..ExportOptions::default() }
}

/// `root/art` holding an artifact of architecture `arch`.
fn artifact(root: &Path, arch: &str) -> PathBuf {
    let out = root.join("art");
    let (g, f) = model(arch);
    export(&g, &f, &out, &ExportOptions::default()).unwrap();
    out
}

fn arch(dir: &Path) -> String {
    load_artifact(dir).unwrap().1.architecture
}

/// Move `out` to a hidden sibling named as a crashed export names it.
fn move_aside(out: &Path, tag: &str, pid: u32) -> PathBuf {
    let to = out.with_file_name(format!(".art.{tag}-{pid}-Xy12ab"));
    std::fs::rename(out, &to).unwrap();
    to
}

#[test]
fn killed_while_writing_the_temporary_directory() {
    let root = scratch("crash-writing");
    let out = artifact(&root, "old");
    let tmp = root.join(format!(".art.masq-tmp-{DEAD}-AbCdEf"));
    std::fs::create_dir(&tmp).unwrap();
    std::fs::write(tmp.join("model.onnx"), b"half a fi").unwrap();
    // A reader sees the old artifact.
    assert_eq!(arch(&out), "old");
    let (g, f) = model("new");
    export(&g, &f, &out, &force()).unwrap();
    assert_eq!(arch(&out), "new");
    assert_eq!(entries(&root), vec!["art"], "stale temporary directory left behind");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn killed_after_reserving_the_old_name() {
    let root = scratch("crash-reserved");
    let out = artifact(&root, "old");
    // A complete new artifact in the temporary directory and an empty reserved old directory.
    let (g, f) = model("new");
    let side = root.join("side");
    export(&g, &f, &side, &ExportOptions::default()).unwrap();
    std::fs::rename(&side, root.join(format!(".art.masq-tmp-{DEAD}-AbCdEf"))).unwrap();
    std::fs::create_dir(root.join(format!(".art.masq-old-{DEAD}-GhIjKl"))).unwrap();
    assert_eq!(arch(&out), "old");
    export(&g, &f, &out, &force()).unwrap();
    assert_eq!(arch(&out), "new");
    assert_eq!(entries(&root), vec!["art"]);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn killed_between_the_two_renames_the_old_artifact_is_restored() {
    let root = scratch("crash-between");
    let out = artifact(&root, "old");
    let old = move_aside(&out, "masq-old", DEAD);
    let (g, f) = model("new");
    let side = root.join("side");
    export(&g, &f, &side, &ExportOptions::default()).unwrap();
    std::fs::rename(&side, root.join(format!(".art.masq-tmp-{DEAD}-AbCdEf"))).unwrap();
    // No OUT: the loader says where the old artifact is and that the next export restores it.
    let e = load_artifact(&out).unwrap_err().to_string();
    assert!(
        e.contains("interrupted export") && e.contains(&old.file_name().unwrap().to_string_lossy().to_string()),
        "{e}"
    );
    // Without --force the next export restores the old artifact, then refuses to replace it.
    let err = export(&g, &f, &out, &ExportOptions::default()).unwrap_err();
    assert!(matches!(err, ExportError::Exists { .. }), "{err}");
    assert_eq!(arch(&out), "old");
    assert_eq!(entries(&root), vec!["art"]);
    export(&g, &f, &out, &force()).unwrap();
    assert_eq!(arch(&out), "new");
    assert_eq!(entries(&root), vec!["art"]);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn an_old_name_without_a_process_id_is_restored_too() {
    // The layout of earlier masq versions: `.OUT.masq-old-<random>`.
    let root = scratch("crash-legacy");
    let out = artifact(&root, "old");
    std::fs::rename(&out, root.join(".art.masq-old-q1W2e3")).unwrap();
    let (g, f) = model("new");
    export(&g, &f, &out, &force()).unwrap();
    assert_eq!(arch(&out), "new");
    assert_eq!(entries(&root), vec!["art"]);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn killed_while_deleting_the_old_artifact() {
    // The new artifact is in place; the old one, half deleted, is still in its hidden sibling.
    let root = scratch("crash-deleting");
    let out = artifact(&root, "old");
    let old = move_aside(&out, "masq-old", DEAD);
    std::fs::remove_file(old.join(MANIFEST_JSON)).unwrap();
    let (g, f) = model("new");
    export(&g, &f, &out, &ExportOptions::default()).unwrap();
    assert_eq!(arch(&out), "new");
    // The next export reclaims it.
    export(&g, &f, &out, &force()).unwrap();
    assert_eq!(arch(&out), "new");
    assert_eq!(entries(&root), vec!["art"]);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn siblings_of_a_live_export_and_unloadable_old_copies_are_kept() {
    let root = scratch("crash-live");
    let out = artifact(&root, "old");
    // Our own process id: a concurrent export still running.
    let mine = root.join(format!(".art.masq-tmp-{}-AbCdEf", std::process::id()));
    std::fs::create_dir(&mine).unwrap();
    let (g, f) = model("new");
    export(&g, &f, &out, &force()).unwrap();
    assert!(mine.is_dir(), "a live export's directory was removed");
    std::fs::remove_dir_all(&mine).unwrap();
    // No OUT and an old copy that does not load: nothing is deleted, the export writes OUT.
    let old = move_aside(&out, "masq-old", DEAD);
    std::fs::write(old.join("model.onnx"), b"damaged").unwrap();
    assert!(read_manifest(&out).is_err());
    export(&g, &f, &out, &ExportOptions::default()).unwrap();
    assert_eq!(arch(&out), "new");
    assert!(old.is_dir(), "the only other copy was deleted");
    std::fs::remove_dir_all(&root).unwrap();
}
