//! Replacing a pair as a pair: the deal journal, its roll-forward and roll-back.
//!
//! `write_pair` writes both temporaries in full and syncs them, then *commits* by writing this
//! journal (a temporary, synced, renamed to [`JOURNAL`], the directory synced); then it renames
//! `p0.bin`, renames `p1.bin`, syncs the directory and removes the journal. Whoever next opens the
//! directory ([`DealerFile::open`](super::DealerFile::open) of a file in it, or the next
//! `write_pair`) finds a journal only if a dealer was killed after its commit, and finishes what it
//! started ([`recover_locked`]): when each file is either still a temporary the journal names
//! (complete, of the journal's pair id, party and size) or already renamed (the target holds the
//! journal's pair id), the remaining renames are done: the new pair. Otherwise (a temporary missing
//! or not the journal's, which a crash cannot cause) nothing has been renamed, and the journal and
//! its temporaries are removed: the old pair. A dealer killed before its commit left no journal:
//! its temporaries are removed and the old pair stays. So after `kill -9` at any instant, the next
//! open finds the complete old pair or the complete new one.
//!
//! Locking. The directory's `flock` (an exclusive lock on the directory itself) is held by
//! `write_pair` for the whole deal and by a recovery while it runs; file locks (`p0.bin` held by a
//! `masq serve`, `p1.bin` by a `masq query`) are taken only after the directory's lock is released,
//! and nobody holding the directory's lock waits for a file lock (renames need none). So no two
//! processes can wait for each other. A process that has the old `p0.bin` open when a recovery (or
//! a completed deal) renames the new one over it keeps drawing on the old file, whose flags stay
//! in it; the new pair is fresh, and the handshake refuses any mix of the two.
//!
//! Journal layout (little-endian), at most [`MAX_JOURNAL`] bytes:
//!
//! ```text
//! 0      magic "MASQJRN\0" [u8; 8]
//! 8      version u32 (= 1)
//! 12     pair id [u8; 16] of the new pair
//! 28     p0's temporary: size u64, name length u16 (1 to 255), name (".p0.bin.XXXXXX.tmp")
//! ..     p1's temporary: the same (".p1.bin.XXXXXX.tmp")
//! end-32 SHA-256 of all the bytes before it
//! ```

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use masq_mpc::Party;
use sha2::{Digest, Sha256};

use super::{FIXED_HEADER, FileHeader};
use crate::{DeployError, Result, io_err};

/// The journal's name in a pair's directory.
pub const JOURNAL: &str = ".masq-deal.journal";
const JOURNAL_MAGIC: &[u8; 8] = b"MASQJRN\0";
const JOURNAL_VERSION: u32 = 1;
/// Longest temporary name a journal may hold.
const MAX_NAME: usize = 255;
/// Largest journal: magic, version, pair id, two (size, name length, name), the hash.
pub const MAX_JOURNAL: usize = 8 + 4 + 16 + 2 * (8 + 2 + MAX_NAME) + 32;
/// How long an open waits for a dealer that holds the directory's lock while a journal is there
/// (a live dealer holds a journal only for its last renames: milliseconds).
const WAIT: Duration = Duration::from_secs(30);

/// What a commit promises: the new pair's id and each party's temporary (name in the
/// directory, size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Journal {
    pub pair_id: [u8; 16],
    pub temps: [(String, u64); 2],
}

impl Journal {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(MAX_JOURNAL);
        b.extend_from_slice(JOURNAL_MAGIC);
        b.extend_from_slice(&JOURNAL_VERSION.to_le_bytes());
        b.extend_from_slice(&self.pair_id);
        for (name, size) in &self.temps {
            b.extend_from_slice(&size.to_le_bytes());
            b.extend_from_slice(&(name.len() as u16).to_le_bytes());
            b.extend_from_slice(name.as_bytes());
        }
        let hash = Sha256::digest(&b);
        b.extend_from_slice(&hash);
        b
    }

    /// Decodes and checks a journal's bytes (at most [`MAX_JOURNAL`], as read): magic, version,
    /// hash, and names that are `write_pair`'s temporaries of the right party.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Journal, String> {
        if bytes.len() < 8 || &bytes[..8] != JOURNAL_MAGIC {
            return Err("not a masq deal journal (bad magic)".into());
        }
        let Some((body, hash)) = bytes.split_last_chunk::<32>() else {
            return Err(format!("{} bytes: too short for a deal journal", bytes.len()));
        };
        if Sha256::digest(body).as_slice() != hash {
            return Err("its checksum does not match its contents (damaged or not written by masq)".into());
        }
        let mut r = Cursor(&body[8..]);
        let version = u32::from_le_bytes(r.take()?);
        if version != JOURNAL_VERSION {
            return Err(format!("journal version {version}, this build reads version {JOURNAL_VERSION}"));
        }
        let pair_id = r.take()?;
        let mut temp = |k: usize| -> std::result::Result<(String, u64), String> {
            let size = u64::from_le_bytes(r.take()?);
            let len = u16::from_le_bytes(r.take()?) as usize;
            if len == 0 || len > MAX_NAME {
                return Err(format!("p{k}'s temporary name of {len} bytes"));
            }
            let name = r.bytes(len)?;
            let name = std::str::from_utf8(name).map_err(|_| format!("p{k}'s temporary name is not UTF-8"))?;
            if !is_temporary_of(k, name) {
                return Err(format!("{name:?} is not a temporary file of p{k}.bin"));
            }
            Ok((name.to_string(), size))
        };
        let temps = [temp(0)?, temp(1)?];
        if !r.0.is_empty() {
            return Err(format!("{} bytes after the temporaries", r.0.len()));
        }
        Ok(Journal { pair_id, temps })
    }
}

/// Whether `name` is a temporary of `p{k}.bin` that `write_pair` could have made: in the
/// directory itself (no separator), `.p{k}.bin.` + letters and digits + `.tmp`.
fn is_temporary_of(k: usize, name: &str) -> bool {
    let prefix = if k == 0 { ".p0.bin." } else { ".p1.bin." };
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(".tmp"))
        .is_some_and(|mid| !mid.is_empty() && mid.bytes().all(|c| c.is_ascii_alphanumeric()))
}

/// A reader over the journal's bytes that fails, naming the field, instead of indexing past them.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn bytes(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn take<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        Ok(self.bytes(N)?.try_into().expect("N bytes"))
    }
}

/// Whether `name` is the temporary of a journal being written (`.masq-deal.journal.XXXXXX.tmp`).
pub(super) fn is_journal_temporary(name: &str) -> bool {
    name.starts_with(".masq-deal.journal.") && name.ends_with(".tmp")
}

/// The directory `path` lies in (`.` for a bare name).
pub(super) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Syncs a directory (its entries: creations, renames, removals). File systems that cannot sync
/// a directory (EINVAL) are let be.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(io_err(dir))?;
    match d.sync_all() {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        r => r.map_err(io_err(dir)),
    }
}

/// The exclusive lock on a pair's directory, held while the value lives.
#[derive(Debug)]
pub(super) struct DirLock(#[allow(dead_code)] File);

/// Takes `dir`'s lock without waiting: refused when another dealer (or a recovery) holds it.
pub(super) fn try_lock_dir(dir: &Path) -> Result<DirLock> {
    let f = File::open(dir).map_err(io_err(dir))?;
    match f.try_lock() {
        Ok(()) => Ok(DirLock(f)),
        Err(e) => Err(DeployError::BadFile {
            path: dir.to_path_buf(),
            reason: match e {
                std::fs::TryLockError::WouldBlock => "another `masq deal` is writing into this directory".into(),
                std::fs::TryLockError::Error(e) => format!("locking the directory: {e}"),
            },
        }),
    }
}

/// Reads and checks `dir`'s journal: `None` when there is none.
pub(super) fn read_journal(dir: &Path) -> Result<Option<Journal>> {
    let path = dir.join(JOURNAL);
    let bad = |reason: String| DeployError::BadFile {
        path: path.clone(),
        reason: format!(
            "{reason}; `masq deal` writes this journal while it replaces the pair in {} and never \
             like this: remove it to keep p0.bin and p1.bin as they are",
            dir.display()
        ),
    };
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    if meta.len() > MAX_JOURNAL as u64 {
        return Err(bad(format!("{} bytes, more than any deal journal ({MAX_JOURNAL})", meta.len())));
    }
    let mut bytes = Vec::with_capacity(MAX_JOURNAL + 1);
    File::open(&path).and_then(|f| f.take(MAX_JOURNAL as u64 + 1).read_to_end(&mut bytes)).map_err(io_err(&path))?;
    if bytes.len() > MAX_JOURNAL {
        return Err(bad(format!("more than {MAX_JOURNAL} bytes, more than any deal journal")));
    }
    Journal::decode(&bytes).map(Some).map_err(bad)
}

/// Writes `j` as `dir`'s journal: a temporary, synced, renamed, the directory synced. When this
/// returns, the pair is committed. `crash` (tests) stops after the temporary is synced, leaving it.
pub(super) fn write_journal(dir: &Path, j: &Journal, crash: bool) -> Result<()> {
    let path = dir.join(JOURNAL);
    let mut tmp = tempfile::Builder::new()
        .prefix(".masq-deal.journal.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_err(&path))?;
    tmp.write_all(&j.encode()).and_then(|_| tmp.as_file().sync_all()).map_err(io_err(tmp.path()))?;
    if crash {
        let _ = tmp.keep();
        return Err(super::simulated_crash());
    }
    tmp.persist(&path).map_err(|e| DeployError::Io { path: path.clone(), source: e.error })?;
    sync_dir(dir)
}

/// What [`recover_locked`] found in a pair's directory and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// No journal: no replacement was interrupted after its commit.
    Clean,
    /// A dealer was killed after its commit: its renames were finished (the new pair).
    RolledForward,
    /// A journal whose temporaries were missing or not its own, with nothing renamed yet: it and
    /// they were removed (the old pair).
    RolledBack,
    /// A journal that could not be finished although one file was already renamed (the other
    /// temporary was removed or changed by hand: no crash leaves this): the journal was removed;
    /// the two files are of different deals, which the handshake refuses. Deal again.
    Abandoned,
}

/// Where one party's file of a journal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The temporary is there, complete: still to be renamed.
    Ready,
    /// The target already holds the journal's pair: renamed.
    Done,
    /// Neither: the temporary is missing or not the journal's.
    Lost,
}

/// The header of the dealer file at `path` when it is a regular file of `party` (for the
/// journal's checks; `None` for anything else), and its size.
fn peek(path: &Path, party: Party) -> Option<(FileHeader, u64)> {
    let meta = std::fs::symlink_metadata(path).ok().filter(|m| m.is_file())?;
    let mut fixed = [0u8; FIXED_HEADER as usize];
    File::open(path).and_then(|mut f| f.read_exact(&mut fixed)).ok()?;
    let bad = |reason: String| DeployError::BadFile { path: path.to_path_buf(), reason };
    FileHeader::decode(&fixed, &bad).ok().filter(|h| h.party == party).map(|h| (h, meta.len()))
}

/// Finishes or undoes the replacement of the pair in `dir` that a killed dealer left (see the
/// module's documentation), then removes stale temporaries. The caller holds `dir`'s lock. A
/// journal that is not one (garbage, damaged, too large, naming other files) is an error naming
/// it, and nothing is touched.
pub(super) fn recover_locked(dir: &Path) -> Result<Recovery> {
    let outcome = match read_journal(dir)? {
        None => Recovery::Clean,
        Some(j) => {
            let parties = [Party::P0, Party::P1];
            let step = |k: usize| {
                let (name, size) = &j.temps[k];
                match peek(&dir.join(name), parties[k]) {
                    Some((h, len)) if h.pair_id == j.pair_id && len == *size => Step::Ready,
                    _ => match peek(&dir.join(format!("p{k}.bin")), parties[k]) {
                        Some((h, _)) if h.pair_id == j.pair_id => Step::Done,
                        _ => Step::Lost,
                    },
                }
            };
            let steps = [step(0), step(1)];
            let outcome = if !steps.contains(&Step::Lost) {
                // p0.bin first, as `write_pair` renames them.
                for (k, ((name, _), step)) in j.temps.iter().zip(steps).enumerate() {
                    if step == Step::Ready {
                        let target = dir.join(format!("p{k}.bin"));
                        std::fs::rename(dir.join(name), &target).map_err(io_err(&target))?;
                    }
                }
                Recovery::RolledForward
            } else {
                for (name, _) in &j.temps {
                    remove_if_there(&dir.join(name))?;
                }
                if steps.contains(&Step::Done) { Recovery::Abandoned } else { Recovery::RolledBack }
            };
            sync_dir(dir)?;
            let path = dir.join(JOURNAL);
            std::fs::remove_file(&path).map_err(io_err(&path))?;
            sync_dir(dir)?;
            outcome
        }
    };
    super::remove_stale_temporaries(dir)?;
    Ok(outcome)
}

fn remove_if_there(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

/// Before a dealer file at `path` is opened: if its directory holds a journal, takes the
/// directory's lock (waiting up to [`WAIT`] for a dealer that holds it) and recovers. Returns
/// what was done. Costs one `stat` when there is no journal.
pub(super) fn finish_interrupted_deal(path: &Path) -> Result<Recovery> {
    let dir = parent_dir(path);
    let journal = dir.join(JOURNAL);
    let t0 = Instant::now();
    loop {
        match std::fs::symlink_metadata(&journal) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Recovery::Clean),
            Err(e) => return Err(io_err(&journal)(e)),
            Ok(_) => {}
        }
        let f = File::open(dir).map_err(io_err(dir))?;
        match f.try_lock() {
            Ok(()) => return recover_locked(dir),
            Err(std::fs::TryLockError::WouldBlock) if t0.elapsed() < WAIT => {
                // A live dealer is finishing its renames (it removes the journal when done).
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(DeployError::BadFile {
                    path: journal,
                    reason: format!(
                        "a `masq deal` has been replacing the pair in {} for {} s (it holds the \
                         directory's lock); try again when it is done",
                        dir.display(),
                        WAIT.as_secs()
                    ),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(dir)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> Journal {
        Journal { pair_id: [7; 16], temps: [(".p0.bin.AbC123.tmp".into(), 1000), (".p1.bin.xYz789.tmp".into(), 2000)] }
    }

    #[test]
    fn a_journal_round_trips_and_every_damage_is_an_error_never_a_panic() {
        let good = journal().encode();
        assert!(good.len() <= MAX_JOURNAL);
        assert_eq!(Journal::decode(&good).unwrap(), journal());
        for cut in 0..good.len() {
            assert!(Journal::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..good.len() {
            for bit in [0x01, 0x80] {
                let mut b = good.clone();
                b[i] ^= bit;
                assert!(Journal::decode(&b).is_err(), "byte {i} ^ {bit}");
            }
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(Journal::decode(&longer).is_err());
        // Well-formed (hash and all) but naming files that are not a dealer's temporaries.
        for (k, name) in [
            (0, "../../etc/passwd"),
            (0, "p0.bin"),
            (1, ".p0.bin.AbC123.tmp"),
            (0, ".p0.bin..tmp"),
            (1, ".p1.bin.a/b.tmp"),
            (0, ".p0.bin.ü.tmp"),
        ] {
            let mut j = journal();
            j.temps[k].0 = name.into();
            let e = Journal::decode(&j.encode()).unwrap_err();
            assert!(e.contains("not a temporary file"), "{name}: {e}");
        }
        let mut j = journal().encode();
        j[8] = 9;
        let body = j.len() - 32;
        let hash = Sha256::digest(&j[..body]);
        j[body..].copy_from_slice(&hash);
        assert!(Journal::decode(&j).unwrap_err().contains("journal version 9"));
    }

    #[test]
    fn hostile_journal_files_are_errors_naming_the_journal_and_touch_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("p0.bin"), b"old p0").unwrap();
        std::fs::write(d.join("p1.bin"), b"old p1").unwrap();
        std::fs::write(d.join(".p0.bin.AbC123.tmp"), b"a temporary").unwrap();
        let path = d.join(JOURNAL);
        let check = |expect: &str| {
            let e = recover_locked(d).unwrap_err();
            let DeployError::BadFile { path: p, reason } = &e else { panic!("{e}") };
            assert_eq!(p, &path);
            assert!(reason.contains(expect) && reason.contains("remove it"), "{reason}");
            assert_eq!(std::fs::read(d.join("p0.bin")).unwrap(), b"old p0");
            assert!(d.join(".p0.bin.AbC123.tmp").exists());
        };
        std::fs::write(&path, b"garbage").unwrap();
        check("bad magic");
        std::fs::write(&path, b"").unwrap();
        check("bad magic");
        let mut j = journal().encode();
        j[20] ^= 1;
        std::fs::write(&path, &j).unwrap();
        check("checksum");
        // A huge (sparse) journal is refused by its size: nothing is read or reserved by it.
        let f = File::create(&path).unwrap();
        f.set_len(1 << 40).unwrap();
        drop(f);
        check("more than any deal journal");
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        check("not a regular file");
        std::fs::remove_dir(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        check("not a regular file");
    }

    #[test]
    fn temporary_names() {
        assert!(is_temporary_of(0, ".p0.bin.AbC123.tmp"));
        assert!(!is_temporary_of(1, ".p0.bin.AbC123.tmp"));
        assert!(!is_temporary_of(0, ".p0.bin.AbC123.tmpx"));
        assert!(is_journal_temporary(".masq-deal.journal.Qw3rty.tmp"));
        assert!(!is_journal_temporary(JOURNAL));
    }
}
