//! The dealer's preprocessing file of one party, with crash-safe "spent" flags.
//!
//! Layout: bincode 2 with masq-mpc's [`CONFIG`] (fixed-width little-endian integers; an enum is
//! its `u32` variant index; a `Vec` is `len: u64` then its elements; a fixed array has no length).
//!
//! ```text
//! offset          field
//! 0               magic "MASQPRE\0" [u8; 8]
//! 8               format version u32 (= 4)
//! 12              party u32 (bincode variant index of `Party`: 0 server P0, 1 client P1)
//! 16              pair id [u8; 16] (random per `masq deal`, the same in both files)
//! 32              model hash [u8; 32] (SHA-256 of the public model, see `deploy::public`)
//! 64              fixed-point fractional bits u32
//! 68              comparison bits u32
//! 72              comparison mode u32 (bincode variant index of `CmpMode`: 0 one-round, 1 compact)
//! 76              batch u64
//! 84              K: inferences u64 (1 to MAX_COUNT)
//! 92              K spent flags, one byte each (0 fresh, 1 spent)
//! 92+K            section table: Vec<(u64, u64)>: len u64 (= K + 1), then K + 1 (offset u64,
//!                 length u64) entries: entry 0 the model-load material, entry 1 + i inference i
//! 116+17K         the sections (model material, then the inferences), each in the codec of
//!                 `masq_mpc::dealer::codec` (a header, then its items, bincode)
//! ```
//!
//! Bytes 0..92 are the bincode encoding of `(magic, version, FileHeader)`. Before a party uses
//! inference `i`, it sets flag `i` and syncs the file ([`DealerFile::mark_spent`]), so material is
//! never used twice, even after a crash in the middle of a protocol. Files are written to a
//! temporary name, synced, and renamed into place, so a crashed dealer leaves no half file; a
//! pair is replaced as a pair: a journal commits both renames before the first one ([`journal`]),
//! and the next open of the directory finishes them (or, before the commit, the old pair stays).
//! The pair id binds the two files of one deal: a `p0.bin` and a `p1.bin` of different deals
//! (files mixed up by hand) are refused in the handshake. An open file holds an exclusive advisory lock (`flock`) for as long as it is open,
//! so two processes can never draw on one file's material at the same time.
//! Opening checks the magic, version, party, count, every table entry against the file's size;
//! a section is read (lazily, per inference) only within those bounds and decoded with a bincode
//! limit derived from its length, so a damaged or hostile file is a [`DeployError::BadFile`],
//! never a panic or an allocation beyond the file's size.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use masq_mpc::Party;
use masq_mpc::dealer::codec::{
    CONFIG, decode_model_material, decode_preprocessing_seeded, encode_model_material, encode_preprocessing_seeded,
};
use masq_mpc::dealer::expand::Origin;
use masq_mpc::dealer::section_reader::{SectionPlan, open_section};
use masq_mpc::dealer::stream::Refill;
use masq_mpc::dealer::{CmpMode, ModelMaterial, Preprocessing, Request};

use crate::{DeployError, Result, io_err};

pub mod journal;

pub use journal::{JOURNAL, Recovery};

/// First bytes of every preprocessing file.
pub const FILE_MAGIC: &[u8; 8] = b"MASQPRE\0";
/// Version of the file layout (2: bincode header, table and sections; 3: the comparison mode;
/// 4: the pair id).
pub const FILE_VERSION: u32 = 4;
/// Bytes of magic, version and [`FileHeader`]: where the spent flags start.
const FIXED_HEADER: u64 = 92;
/// Bytes of magic and version.
const PREFIX: usize = 12;
/// Most inferences one file may hold.
pub const MAX_COUNT: u64 = 1 << 24;

/// What a file is for: the same in both parties' files except `party`. Its bincode encoding
/// (fields in this order) is bytes 12..92 of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct FileHeader {
    pub party: Party,
    /// Random per deal, the same in both files of a pair: binds `p0.bin` to its `p1.bin`.
    pub pair_id: [u8; 16],
    pub model_hash: [u8; 32],
    pub frac_bits: u32,
    pub cmp_bits: u32,
    pub cmp_mode: CmpMode,
    pub batch: u64,
    pub count: u64,
}

impl FileHeader {
    fn encode(&self) -> Vec<u8> {
        let h = bincode::encode_to_vec((FILE_MAGIC, FILE_VERSION, self), CONFIG).expect("in-memory encoding");
        debug_assert_eq!(h.len() as u64, FIXED_HEADER);
        h
    }

    /// Decodes and checks bytes `0..FIXED_HEADER`: magic, version, party field, count.
    fn decode(fixed: &[u8], bad: &dyn Fn(String) -> DeployError) -> Result<FileHeader> {
        let cfg = CONFIG.with_limit::<{ FIXED_HEADER as usize }>();
        let prefix = bincode::decode_from_slice::<([u8; 8], u32), _>(fixed.get(..PREFIX).unwrap_or(&[]), cfg);
        let Ok(((magic, version), _)) = prefix else {
            return Err(bad("too short for a masq preprocessing file".into()));
        };
        if &magic != FILE_MAGIC {
            return Err(bad("not a masq preprocessing file (bad magic); deal one with `masq deal`".into()));
        }
        if version != FILE_VERSION {
            return Err(bad(format!("format version {version}, this build reads version {FILE_VERSION}")));
        }
        let rest = fixed.get(PREFIX..).unwrap_or(&[]);
        let (header, _): (FileHeader, usize) = bincode::decode_from_slice(rest, cfg).map_err(|e| match e {
            bincode::error::DecodeError::UnexpectedVariant { found, type_name, .. }
                if type_name.ends_with("CmpMode") =>
            {
                bad(format!("comparison mode field {found} (0 one-round, 1 compact)"))
            }
            bincode::error::DecodeError::UnexpectedVariant { found, .. } => bad(format!("party field {found}")),
            e => bad(format!("header: {e}")),
        })?;
        if header.count > MAX_COUNT {
            return Err(bad(format!("inference count {} exceeds the maximum {MAX_COUNT}", header.count)));
        }
        Ok(header)
    }

    fn flags_at(&self) -> u64 {
        FIXED_HEADER
    }

    fn table_at(&self) -> u64 {
        FIXED_HEADER + self.count
    }

    /// Bytes of the section table (its length prefix and `count + 1` entries).
    fn table_len(&self) -> u64 {
        8 + 16 * (self.count + 1)
    }

    /// Bytes before the first section.
    fn header_len(&self) -> u64 {
        self.table_at() + self.table_len()
    }
}

/// One inference's material for both parties, with where each party's seeded values come from.
pub type DealtPair = ((Preprocessing, Origin), (Preprocessing, Origin));

/// Writes both parties' files into `dir` (`p0.bin`, `p1.bin`): the model-load material, then
/// `headers[0].count` inferences from `next(i)`, seed-expanded (each section holds the party's
/// stream key and deal index, its explicit values and its DCF keys; see
/// `masq_mpc::dealer::expand`). Returns each file's path and size.
///
/// The pair is replaced as a pair ([`journal`]): both temporaries are written in full and synced,
/// a journal naming them commits the replacement, then both are renamed and the journal removed.
/// First, under the directory's lock (held until this returns; a second dealer is refused), what
/// a killed dealer left is finished or undone and its temporaries are removed.
pub fn write_pair(
    dir: &Path,
    headers: [FileHeader; 2],
    model: (&ModelMaterial, &ModelMaterial),
    mut next: impl FnMut(u64) -> Result<DealtPair>,
) -> Result<[(PathBuf, u64); 2]> {
    if headers[0].pair_id != headers[1].pair_id || headers[0].count != headers[1].count {
        return Err(DeployError::BadFile {
            path: dir.to_path_buf(),
            reason: "the two files of a pair need one pair id and one count".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    // One dealer at a time in `dir` (the lock is on the directory and goes with this function);
    // then what a killed dealer left behind is finished or removed.
    let _dir_lock = journal::try_lock_dir(dir)?;
    journal::recover_locked(dir)?;
    let count = headers[0].count;
    let paths = [dir.join("p0.bin"), dir.join("p1.bin")];
    // Temporary files beside the targets, removed when `tmps` is dropped unless disarmed (once the
    // journal owns them).
    let tmps = Temporaries::create(dir, &paths)?;
    let mut files = Vec::with_capacity(2);
    for ((f, path), h) in tmps.files.iter().zip(&headers) {
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(&h.encode()).map_err(io_err(path))?;
        w.write_all(&vec![0u8; (h.header_len() - FIXED_HEADER) as usize]).map_err(io_err(path))?;
        files.push((w, h.header_len(), Vec::with_capacity(count as usize + 1)));
    }
    let tmp_paths = [tmps.files[0].1.clone(), tmps.files[1].1.clone()];
    let mut put = |k: usize, bytes: &[u8]| -> Result<()> {
        let (w, at, table) = &mut files[k];
        w.write_all(bytes).map_err(io_err(&tmp_paths[k]))?;
        table.push((*at, bytes.len() as u64));
        *at += bytes.len() as u64;
        Ok(())
    };
    put(0, &encode_model_material(model.0))?;
    put(1, &encode_model_material(model.1))?;
    for i in 0..count {
        if i == 1 && crash_at(Crash::Writing) {
            tmps.disarm();
            return Err(simulated_crash());
        }
        let ((p0, o0), (p1, o1)) = next(i)?;
        put(0, &encode_preprocessing_seeded(&p0, &o0))?;
        put(1, &encode_preprocessing_seeded(&p1, &o1))?;
    }
    let mut sizes = [0u64; 2];
    for (k, (w, at, table)) in files.into_iter().enumerate() {
        let tmp = &tmp_paths[k];
        let mut f = w.into_inner().map_err(|e| DeployError::Io { path: tmp.clone(), source: e.into_error() })?;
        let raw = bincode::encode_to_vec(&table, CONFIG).expect("in-memory encoding");
        debug_assert_eq!(raw.len() as u64, headers[k].table_len());
        f.seek(SeekFrom::Start(headers[k].table_at())).map_err(io_err(tmp))?;
        f.write_all(&raw).map_err(io_err(tmp))?;
        f.sync_all().map_err(io_err(tmp))?;
        sizes[k] = at;
    }
    if crash_at(Crash::Written) {
        tmps.disarm();
        return Err(simulated_crash());
    }
    // The commit: from here on, the next open of the directory finishes the renames.
    let name = |k: usize| tmp_paths[k].file_name().expect("a file name").to_string_lossy().into_owned();
    let j = journal::Journal { pair_id: headers[0].pair_id, temps: [(name(0), sizes[0]), (name(1), sizes[1])] };
    let crash = crash_at(Crash::JournalWritten);
    if crash {
        tmps.disarm();
    }
    journal::write_journal(dir, &j, crash)?;
    tmps.disarm();
    if crash_at(Crash::Committed) {
        return Err(simulated_crash());
    }
    for k in 0..2 {
        std::fs::rename(&tmp_paths[k], &paths[k]).map_err(io_err(&paths[k]))?;
        if k == 0 && crash_at(Crash::FirstRenamed) {
            return Err(simulated_crash());
        }
    }
    journal::sync_dir(dir)?;
    if crash_at(Crash::Renamed) {
        return Err(simulated_crash());
    }
    let jpath = dir.join(JOURNAL);
    std::fs::remove_file(&jpath).map_err(io_err(&jpath))?;
    journal::sync_dir(dir)?;
    Ok([(paths[0].clone(), sizes[0]), (paths[1].clone(), sizes[1])])
}

/// `write_pair`'s two temporary files (`.p0.bin.XXXXXX.tmp`, `.p1.bin.XXXXXX.tmp`), removed when
/// dropped unless disarmed.
struct Temporaries {
    files: Vec<(File, PathBuf)>,
    armed: std::cell::Cell<bool>,
}

impl Temporaries {
    fn create(dir: &Path, targets: &[PathBuf; 2]) -> Result<Temporaries> {
        let mut t = Temporaries { files: Vec::with_capacity(2), armed: std::cell::Cell::new(true) };
        for p in targets {
            let name = p.file_name().expect("a file name").to_string_lossy().into_owned();
            let tmp = tempfile::Builder::new()
                .prefix(&format!(".{name}."))
                .suffix(".tmp")
                .tempfile_in(dir)
                .map_err(io_err(p))?;
            t.files.push(tmp.keep().map_err(|e| DeployError::Io { path: p.clone(), source: e.error })?);
        }
        Ok(t)
    }

    fn disarm(&self) {
        self.armed.set(false);
    }
}

impl Drop for Temporaries {
    fn drop(&mut self) {
        if self.armed.get() {
            for (_, path) in &self.files {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Where a test makes `write_pair` stop as if killed: every file it wrote stays as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crash {
    /// After the model material and the first inference went to the temporaries.
    Writing,
    /// Both temporaries complete and synced; no journal.
    Written,
    /// The journal's temporary written and synced, not renamed.
    JournalWritten,
    /// The journal in place (committed), nothing renamed.
    Committed,
    /// `p0.bin` renamed, `p1.bin` not.
    FirstRenamed,
    /// Both renamed, the journal still there.
    Renamed,
}

#[cfg(test)]
thread_local! {
    /// The point where this thread's next `write_pair` stops.
    pub(crate) static CRASH_AT: std::cell::Cell<Option<Crash>> = const { std::cell::Cell::new(None) };
}

#[cfg(test)]
fn crash_at(at: Crash) -> bool {
    CRASH_AT.get() == Some(at)
}

#[cfg(not(test))]
fn crash_at(_: Crash) -> bool {
    false
}

fn simulated_crash() -> DeployError {
    DeployError::Io { path: PathBuf::from("(test)"), source: std::io::Error::other("simulated crash") }
}

/// Whether `name` is one of `write_pair`'s temporary files (`.p0.bin.XXXXXX.tmp`, `.p1.bin.…`,
/// or the journal's `.masq-deal.journal.XXXXXX.tmp`).
fn is_deal_temporary(name: &str) -> bool {
    ((name.starts_with(".p0.bin.") || name.starts_with(".p1.bin.")) && name.ends_with(".tmp"))
        || journal::is_journal_temporary(name)
}

/// Removes the temporary files of a dealer that was killed in `dir` (the caller holds the
/// directory's lock, so no dealer is writing them, and has settled any journal first: a
/// committed journal's temporaries are the new pair). Returns how many were removed.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize> {
    if dir.join(JOURNAL).exists() {
        return Err(DeployError::BadFile {
            path: dir.join(JOURNAL),
            reason: "an interrupted deal's journal: open the pair (or deal again) to settle it first".into(),
        });
    }
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        if name.to_str().is_some_and(is_deal_temporary) && entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(entry.path()).map_err(io_err(&entry.path()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// An open preprocessing file (read and write: the flags change).
#[derive(Debug)]
pub struct DealerFile {
    path: PathBuf,
    file: File,
    header: FileHeader,
    spent: Vec<bool>,
    model: (u64, u64),
    sections: Vec<(u64, u64)>,
}

impl DealerFile {
    /// Opens and checks a file (layout, bounds of every section); `party` is the party it must be for.
    ///
    /// If the file's directory holds a deal journal (a `masq deal` was killed while it replaced
    /// the pair), the replacement is first finished or undone under the directory's lock (see
    /// [`journal`]); the file's own lock is taken only after that lock is released.
    pub fn open(path: &Path, party: Party) -> Result<DealerFile> {
        journal::finish_interrupted_deal(path)?;
        let bad = |reason: String| DeployError::BadFile { path: path.to_path_buf(), reason };
        let mut file = OpenOptions::new().read(true).write(true).open(path).map_err(io_err(path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(bad("in use: another process (a `masq serve` or `masq query`) holds this file's lock; \
                     two processes on one preprocessing file would use its material twice"
                    .into()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(path)(e)),
        }
        let size = file.metadata().map_err(io_err(path))?.len();
        if size < FIXED_HEADER {
            return Err(bad(format!("{size} bytes: too short for a masq preprocessing file")));
        }
        let mut fixed = [0u8; FIXED_HEADER as usize];
        file.read_exact(&mut fixed).map_err(io_err(path))?;
        let header = FileHeader::decode(&fixed, &bad)?;
        if header.party != party {
            let (what, other) = match party {
                Party::P0 => ("the server (P0, p0.bin)", "the client's file"),
                Party::P1 => ("the client (P1, p1.bin)", "the server's file"),
            };
            return Err(bad(format!("this is {other}; {what} needs its own")));
        }
        if header.count == 0 || header.header_len() > size {
            return Err(bad(format!("inference count {} does not fit the file of {size} bytes", header.count)));
        }
        if header.batch == 0 {
            return Err(bad("batch 0".into()));
        }
        // Within the file (checked above), so this reads at most its size.
        let mut rest = vec![0u8; (header.header_len() - FIXED_HEADER) as usize];
        file.read_exact(&mut rest).map_err(io_err(path))?;
        let (flags, table) = rest.split_at(header.count as usize);
        let spent = flags
            .iter()
            .enumerate()
            .map(|(i, &f)| match f {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(bad(format!("spent flag of inference {i} is {f}"))),
            })
            .collect::<Result<Vec<_>>>()?;
        let entries = decode_table(table, header.count).map_err(bad)?;
        for (i, &(off, len)) in entries.iter().enumerate() {
            if off < header.header_len() || off.checked_add(len).is_none_or(|end| end > size) {
                return Err(bad(format!("section {i} ({off}+{len}) lies outside the file of {size} bytes")));
            }
        }
        let model = entries[0];
        let sections = entries[1..].to_vec();
        Ok(DealerFile { path: path.to_path_buf(), file, header, spent, model, sections })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// The spent flags, one per inference.
    pub fn spent(&self) -> &[bool] {
        &self.spent
    }

    /// The first inference not spent (`count` when all are).
    pub fn first_unspent(&self) -> u64 {
        self.spent.iter().position(|s| !s).map_or(self.header.count, |i| i as u64)
    }

    /// Inferences not spent.
    pub fn remaining(&self) -> u64 {
        self.spent.iter().filter(|s| !**s).count() as u64
    }

    /// Whether inference `i` is spent (an index beyond the file counts as spent: it has no material).
    pub fn is_spent(&self, i: u64) -> bool {
        self.spent.get(i as usize).copied().unwrap_or(true)
    }

    /// Marks inference `i` spent and syncs the file before returning. Other slots are left as
    /// they are: a slot skipped by the peer stays usable.
    pub fn mark_spent(&mut self, i: u64) -> Result<()> {
        if i >= self.header.count {
            return Err(DeployError::Exhausted {
                reason: format!("inference {i} of {} does not exist in {}", self.header.count, self.path.display()),
            });
        }
        self.file.write_all_at(&[1u8], self.header.flags_at() + i).map_err(io_err(&self.path))?;
        self.file.sync_data().map_err(io_err(&self.path))?;
        self.spent[i as usize] = true;
        Ok(())
    }

    fn section(&self, (off, len): (u64, u64)) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len as usize];
        self.file.read_exact_at(&mut buf, off).map_err(io_err(&self.path))?;
        Ok(buf)
    }

    /// The model-load material (reusable: it only masks the weights).
    pub fn model_material(&self) -> Result<ModelMaterial> {
        let raw = self.section(self.model)?;
        decode_model_material(self.header.party, &raw)
            .map_err(|e| DeployError::BadFile { path: self.path.clone(), reason: format!("model material: {e}") })
    }

    /// The model-load material, checked against the linear layers of this party's plan (ids and
    /// kinds in order): the shapes the inference sections are expanded to come from the plan,
    /// never from the file alone.
    pub fn model_material_for(&self, layers: &[(usize, masq_mpc::dealer::LinearKind)]) -> Result<ModelMaterial> {
        let m = self.model_material()?;
        let mismatch = m.layers.len() != layers.len()
            || m.layers.iter().zip(layers).any(|(a, (id, kind))| a.0 != *id || a.1 != *kind);
        if mismatch {
            return Err(DeployError::BadFile {
                path: self.path.clone(),
                reason: format!(
                    "model material for {} linear layers that do not match the model's {} (ids and kinds differ)",
                    m.layers.len(),
                    layers.len()
                ),
            });
        }
        Ok(m)
    }

    /// Inference `i`'s preprocessing read piece by piece: the first segment (at most `budget`
    /// bytes of material, at least one request) and a refill hook that reads the rest as the
    /// online phase consumes it (`masq_mpc::dealer::section_reader`); otherwise as
    /// [`DealerFile::inference`].
    pub fn inference_stream(
        &self,
        i: u64,
        requests: &[Request],
        model: &ModelMaterial,
        budget: u64,
    ) -> Result<(Preprocessing, Box<dyn Refill>)> {
        self.check_spent(i)?;
        let (off, len) = self.sections[i as usize];
        let file = self.file.try_clone().map_err(io_err(&self.path))?;
        let plan = SectionPlan {
            party: self.header.party,
            requests: requests.to_vec(),
            layers: model.layers.iter().map(|l| (l.0, l.1.clone())).collect(),
            budget,
            name: format!("{} inference {i}", self.path.display()),
        };
        open_section(SectionRead { file, at: off, end: off + len }, len, plan)
            .map_err(|e| DeployError::BadFile { path: self.path.clone(), reason: format!("inference {i}: {e}") })
    }

    fn check_spent(&self, i: u64) -> Result<()> {
        if !self.spent.get(i as usize).copied().unwrap_or(false) {
            return Err(DeployError::BadFile {
                path: self.path.clone(),
                reason: format!("inference {i} must be marked spent before its material is read"),
            });
        }
        Ok(())
    }

    /// Inference `i`'s preprocessing, expanded for `requests` (this party's plan of the model;
    /// sizes come from it, not from the file) with the linear layers of `model`; refused unless
    /// `i` was marked spent first.
    pub fn inference(&self, i: u64, requests: &[Request], model: &ModelMaterial) -> Result<Preprocessing> {
        self.check_spent(i)?;
        let raw = self.section(self.sections[i as usize])?;
        let out_shape = |layer: usize, input: &[usize]| {
            model.layers.iter().find(|l| l.0 == layer).and_then(|l| l.1.output_shape(input).ok())
        };
        decode_preprocessing_seeded(self.header.party, &raw, requests, &out_shape)
            .map_err(|e| DeployError::BadFile { path: self.path.clone(), reason: format!("inference {i}: {e}") })
    }
}

/// Decodes the section table of a file of `count` inferences: `count + 1` (offset, length) entries.
fn decode_table(table: &[u8], count: u64) -> std::result::Result<Vec<(u64, u64)>, String> {
    // The length prefix must be `count + 1` before anything is reserved: then the entries are
    // exactly the table's bytes, which are in memory already.
    let cfg = CONFIG.with_limit::<{ 8 + 16 * (MAX_COUNT as usize + 1) }>();
    match bincode::decode_from_slice::<u64, _>(table, cfg) {
        Ok((n, _)) if n == count + 1 => {}
        Ok((n, _)) => return Err(format!("section table of {n} entries for {count} inferences")),
        Err(e) => return Err(format!("section table: {e}")),
    }
    match bincode::decode_from_slice::<Vec<(u64, u64)>, _>(table, cfg) {
        Ok((entries, used)) if used == table.len() => Ok(entries),
        Ok((_, used)) => Err(format!("section table: {} trailing bytes", table.len() - used)),
        Err(e) => Err(format!("section table: {e}")),
    }
}

/// A section of a file read with positional reads (the file's cursor is never moved).
struct SectionRead {
    file: File,
    at: u64,
    end: u64,
}

impl Read for SectionRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.end - self.at) as usize;
        let got = self.file.read_at(&mut buf[..n], self.at)?;
        self.at += got as u64;
        Ok(got)
    }
}

/// Reads just the spent flags of a file (for tools and tests).
pub fn read_spent(path: &Path) -> Result<Vec<bool>> {
    let bad = |reason: String| DeployError::BadFile { path: path.to_path_buf(), reason };
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut fixed = [0u8; FIXED_HEADER as usize];
    f.read_exact(&mut fixed).map_err(io_err(path))?;
    let header = FileHeader::decode(&fixed, &bad)?;
    let mut flags = vec![0u8; header.count as usize];
    f.read_exact(&mut flags).map_err(io_err(path))?;
    Ok(flags.into_iter().map(|b| b != 0).collect())
}

#[cfg(test)]
mod tests {
    use masq_mpc::dealer::{Dealer, LinearKind, Request};

    use super::*;

    const COUNT: u64 = 3;

    fn requests() -> Vec<Request> {
        vec![
            Request::Linear { layer: 0, input_shape: vec![2, 4] },
            Request::Cmp { n: 5, bits: 32, mode: CmpMode::Compact },
            Request::Square { n: 4 },
        ]
    }

    fn header(party: Party) -> FileHeader {
        FileHeader {
            party,
            pair_id: [5; 16],
            model_hash: [9; 32],
            frac_bits: 16,
            cmp_bits: 32,
            cmp_mode: CmpMode::Compact,
            batch: 2,
            count: COUNT,
        }
    }

    /// Deals a pair of files into a fresh directory; returns it with the encoded material (model
    /// first, then each inference) of both parties.
    /// Also returns each inference's full (not seed-expanded) encoding, to compare what a reader
    /// expands against.
    fn deal() -> (tempfile::TempDir, [Vec<Vec<u8>>; 2]) {
        deal_full().0
    }

    #[allow(clippy::type_complexity)]
    fn deal_full() -> ((tempfile::TempDir, [Vec<Vec<u8>>; 2]), [Vec<Vec<u8>>; 2]) {
        let dir = tempfile::tempdir().unwrap();
        let mut dealer = Dealer::new(11);
        let (m0, m1) = dealer.setup_model(&[(0, LinearKind::MatMul { k: 4, n: 3 })]).unwrap();
        let mut enc = [vec![encode_model_material(&m0)], vec![encode_model_material(&m1)]];
        let mut full = [Vec::new(), Vec::new()];
        let written = write_pair(dir.path(), [header(Party::P0), header(Party::P1)], (&m0, &m1), |_| {
            let deal = dealer.deals();
            let (p0, p1) = dealer.deal(&requests()).unwrap();
            let (o0, o1) = (dealer.origin(Party::P0, deal), dealer.origin(Party::P1, deal));
            enc[0].push(encode_preprocessing_seeded(&p0, &o0));
            enc[1].push(encode_preprocessing_seeded(&p1, &o1));
            full[0].push(masq_mpc::dealer::codec::encode_preprocessing(&p0));
            full[1].push(masq_mpc::dealer::codec::encode_preprocessing(&p1));
            Ok(((p0, o0), (p1, o1)))
        })
        .unwrap();
        for (k, (path, size)) in written.iter().enumerate() {
            assert_eq!(path, &dir.path().join(format!("p{k}.bin")));
            assert_eq!(std::fs::metadata(path).unwrap().len(), *size);
        }
        ((dir, enc), full)
    }

    fn reason(e: DeployError) -> String {
        match e {
            DeployError::BadFile { reason, .. } => reason,
            e => panic!("expected a bad-file error, got {e}"),
        }
    }

    #[test]
    fn files_round_trip_and_spend_in_order() {
        let ((dir, enc), full) = deal_full();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
        for (k, party) in Party::BOTH.into_iter().enumerate() {
            let path = dir.path().join(format!("p{k}.bin"));
            let mut f = DealerFile::open(&path, party).unwrap();
            assert_eq!(f.header(), &header(party));
            let model = f.model_material().unwrap();
            assert_eq!(encode_model_material(&model), enc[k][0]);
            assert_eq!((f.first_unspent(), f.remaining()), (0, COUNT));
            let e = reason(f.inference(1, &requests(), &model).unwrap_err());
            assert!(e.contains("marked spent"), "{e}");
            f.mark_spent(0).unwrap();
            f.mark_spent(1).unwrap();
            for i in 0..2 {
                let p = f.inference(i, &requests(), &model).unwrap();
                assert_eq!(p.party(), party);
                assert_eq!(masq_mpc::dealer::codec::encode_preprocessing(&p), full[k][i as usize]);
                // Seed-expanded: the section is the cost model's bytes plus a little framing.
                let framing = enc[k][1 + i as usize].len() as u64 - p.offline_bytes();
                assert!(framing < 200, "{framing} bytes of framing");
            }
            assert!(matches!(f.mark_spent(COUNT), Err(DeployError::Exhausted { .. })));
            // The lock: a second open while this one is held is refused, naming the file.
            let e = reason(DealerFile::open(&path, party).unwrap_err());
            assert!(e.contains("in use"), "{e}");
            drop(f);
            // The flags are on disk: a reopened file and `read_spent` see them.
            assert_eq!(read_spent(&path).unwrap(), vec![true, true, false]);
            let f = DealerFile::open(&path, party).unwrap();
            assert_eq!((f.first_unspent(), f.remaining()), (2, 1));
        }
        let e = reason(DealerFile::open(&dir.path().join("p0.bin"), Party::P1).unwrap_err());
        assert!(e.contains("server's file"), "{e}");
    }

    #[test]
    fn the_layout_is_as_documented() {
        let (dir, enc) = deal();
        let bytes = std::fs::read(dir.path().join("p1.bin")).unwrap();
        let k = COUNT as usize;
        assert_eq!(&bytes[..8], FILE_MAGIC);
        assert_eq!(bytes[8..12], FILE_VERSION.to_le_bytes());
        assert_eq!(bytes[12..16], 1u32.to_le_bytes(), "party P1");
        assert_eq!(bytes[16..32], [5; 16], "pair id");
        assert_eq!(bytes[32..64], [9; 32]);
        assert_eq!(bytes[64..68], 16u32.to_le_bytes());
        assert_eq!(bytes[68..72], 32u32.to_le_bytes());
        assert_eq!(bytes[72..76], 1u32.to_le_bytes(), "compact mode");
        assert_eq!(bytes[76..84], 2u64.to_le_bytes());
        assert_eq!(bytes[84..92], COUNT.to_le_bytes());
        assert_eq!(bytes[92..92 + k], vec![0; k], "fresh flags");
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
        assert_eq!(u64_at(92 + k), COUNT + 1, "table length prefix");
        let mut at = 116 + 17 * k as u64;
        for (i, section) in enc[1].iter().enumerate() {
            let entry = 92 + k + 8 + 16 * i;
            assert_eq!((u64_at(entry), u64_at(entry + 8)), (at, section.len() as u64), "entry {i}");
            assert_eq!(&bytes[at as usize..at as usize + section.len()], &section[..]);
            at += section.len() as u64;
        }
        assert_eq!(at, bytes.len() as u64);
    }

    #[test]
    fn damaged_files_are_bad_file_errors() {
        let (dir, _) = deal();
        let good = std::fs::read(dir.path().join("p0.bin")).unwrap();
        let k = COUNT as usize;
        let table = 92 + k;
        let path = dir.path().join("damaged.bin");
        let open = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            DealerFile::open(&path, Party::P0).and_then(|f| {
                let model = f.model_material()?;
                let mut f = f;
                (0..COUNT).try_for_each(|i| f.mark_spent(i))?;
                (0..COUNT).try_for_each(|i| f.inference(i, &requests(), &model).map(|_| ()))
            })
        };
        open(&good).unwrap();
        let patch = |at: usize, with: &[u8]| {
            let mut b = good.clone();
            b[at..at + with.len()].copy_from_slice(with);
            b
        };
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("magic", patch(0, b"MASQPRF\0"), "bad magic"),
            ("version", patch(8, &1u32.to_le_bytes()), "format version 1"),
            ("party", patch(12, &7u32.to_le_bytes()), "party field 7"),
            ("count 0", patch(84, &0u64.to_le_bytes()), "inference count 0"),
            ("count 2^60", patch(84, &(1u64 << 60).to_le_bytes()), "exceeds the maximum"),
            ("count beyond the file", patch(84, &(1u64 << 20).to_le_bytes()), "does not fit"),
            ("batch", patch(76, &0u64.to_le_bytes()), "batch 0"),
            ("mode", patch(72, &5u32.to_le_bytes()), "comparison mode field 5"),
            ("flag", patch(93, &[2]), "spent flag of inference 1 is 2"),
            ("table length", patch(table, &(1u64 << 60).to_le_bytes()), "section table of"),
            ("section offset", patch(table + 8 + 16, &u64::MAX.to_le_bytes()), "section 1"),
            ("section length", patch(table + 8 + 16 + 8, &(1u64 << 40).to_le_bytes()), "lies outside"),
            ("section bytes", patch(good.len() - 40, &[0xff; 40]), "inference 2:"),
            ("model bytes", patch(116 + 17 * k + 8, &(1u64 << 60).to_le_bytes()), "model material:"),
            ("short", good[..50].to_vec(), "too short"),
        ];
        for (what, bytes, expect) in cases {
            let e = reason(open(&bytes).unwrap_err());
            assert!(e.contains(expect), "{what}: {e}");
        }
        // Any truncation or flipped byte: an error (or, for a byte inside words, a result), never a panic.
        for cut in (0..good.len()).step_by(97) {
            assert!(open(&good[..cut]).is_err(), "cut at {cut}");
        }
        for i in (0..good.len()).step_by(101) {
            let mut b = good.clone();
            b[i] ^= 0x81;
            let _ = open(&b);
        }
    }

    #[test]
    fn a_killed_deals_temporaries_are_removed_by_the_next_deal_and_two_deals_cannot_share_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        for stale in [".p0.bin.abc123.tmp", ".p1.bin.XyZ789.tmp", ".masq-deal.journal.Qw3rty.tmp"] {
            std::fs::write(dir.path().join(stale), vec![0u8; 1000]).unwrap();
        }
        std::fs::write(dir.path().join("notes.tmp"), b"kept").unwrap();
        let mut dealer = Dealer::new(2);
        let (m0, m1) = dealer.setup_model(&[(0, LinearKind::MatMul { k: 4, n: 3 })]).unwrap();
        let held = File::open(dir.path()).unwrap();
        held.try_lock().unwrap();
        let busy = write_pair(dir.path(), [header(Party::P0), header(Party::P1)], (&m0, &m1), |_| unreachable!());
        assert!(reason(busy.unwrap_err()).contains("another `masq deal`"));
        drop(held);
        write_pair(dir.path(), [header(Party::P0), header(Party::P1)], (&m0, &m1), |i| {
            let (p0, p1) = dealer.deal(&requests()).unwrap();
            Ok(((p0, dealer.origin(Party::P0, i)), (p1, dealer.origin(Party::P1, i))))
        })
        .unwrap();
        let mut names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["notes.tmp", "p0.bin", "p1.bin"]);
    }

    #[test]
    fn a_failed_deal_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut dealer = Dealer::new(1);
        let (m0, m1) = dealer.setup_model(&[(0, LinearKind::MatMul { k: 4, n: 3 })]).unwrap();
        let res = write_pair(dir.path(), [header(Party::P0), header(Party::P1)], (&m0, &m1), |i| {
            if i == 2 {
                return Err(DeployError::Exhausted { reason: "dealer stopped".into() });
            }
            let (p0, p1) = dealer.deal(&requests()).unwrap();
            Ok(((p0, dealer.origin(Party::P0, i)), (p1, dealer.origin(Party::P1, i))))
        });
        assert!(matches!(res, Err(DeployError::Exhausted { .. })));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// Deals a pair with `pair_id` and `count` inferences into `dir`, stopping as if killed at
    /// `crash` (then the error is the simulated crash).
    fn deal_into(dir: &Path, pair_id: u8, count: u64, crash: Option<Crash>) -> Result<[(PathBuf, u64); 2]> {
        let mut dealer = Dealer::new(pair_id as u64);
        let (m0, m1) = dealer.setup_model(&[(0, LinearKind::MatMul { k: 4, n: 3 })]).unwrap();
        let h = |party| FileHeader { pair_id: [pair_id; 16], count, ..header(party) };
        CRASH_AT.set(crash);
        let res = write_pair(dir, [h(Party::P0), h(Party::P1)], (&m0, &m1), |i| {
            let (p0, p1) = dealer.deal(&requests()).unwrap();
            Ok(((p0, dealer.origin(Party::P0, i)), (p1, dealer.origin(Party::P1, i))))
        });
        CRASH_AT.set(None);
        res
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        n.sort();
        n
    }

    /// Both files of `dir` open, agree on their pair id and count, and serve their material;
    /// returns the pair id's first byte.
    fn pair_in(dir: &Path) -> (u8, u64) {
        let mut ids = Vec::new();
        for (k, party) in Party::BOTH.into_iter().enumerate() {
            let mut f = DealerFile::open(&dir.join(format!("p{k}.bin")), party).unwrap();
            let model = f.model_material().unwrap();
            let last = f.header().count - 1;
            f.mark_spent(last).unwrap();
            f.inference(last, &requests(), &model).unwrap();
            ids.push((f.header().pair_id, f.header().count));
        }
        assert_eq!(ids[0], ids[1], "one pair in both files");
        (ids[0].0[0], ids[0].1)
    }

    const POINTS: [(Crash, bool); 6] = [
        (Crash::Writing, false),
        (Crash::Written, false),
        (Crash::JournalWritten, false),
        (Crash::Committed, true),
        (Crash::FirstRenamed, true),
        (Crash::Renamed, true),
    ];

    #[test]
    fn a_deal_killed_at_any_point_leaves_the_old_or_the_new_pair_for_the_next_open() {
        // The next opener: the server's file, the client's file, or the next deal (which settles
        // the directory before it writes; here it fails at once, so what it settled stays).
        for opener in ["p0", "p1", "deal"] {
            for (point, new) in POINTS {
                let dir = tempfile::tempdir().unwrap();
                let d = dir.path();
                deal_into(d, 1, 2, None).unwrap();
                let e = deal_into(d, 2, 3, Some(point)).unwrap_err();
                assert!(e.to_string().contains("simulated crash"), "{e}");
                let left = names(d);
                assert!(left.len() > 2, "{point:?}: the crash left its files: {left:?}");
                match opener {
                    "p0" => drop(DealerFile::open(&d.join("p0.bin"), Party::P0).unwrap()),
                    "p1" => drop(DealerFile::open(&d.join("p1.bin"), Party::P1).unwrap()),
                    _ => {
                        let mut dealer = Dealer::new(3);
                        let (m0, m1) = dealer.setup_model(&[(0, LinearKind::MatMul { k: 4, n: 3 })]).unwrap();
                        let h = |party| FileHeader { pair_id: [3; 16], ..header(party) };
                        let stop = write_pair(d, [h(Party::P0), h(Party::P1)], (&m0, &m1), |_| {
                            Err(DeployError::Exhausted { reason: "stopped".into() })
                        });
                        assert!(matches!(stop, Err(DeployError::Exhausted { .. })), "{point:?}");
                    }
                }
                // No journal is left. Without one, an open takes no lock and leaves temporaries
                // (a dealer may be writing them) to the next deal, which removes them.
                let now = names(d);
                if opener == "deal" || new {
                    assert_eq!(now, ["p0.bin", "p1.bin"], "{opener} after {point:?} (left {left:?})");
                } else {
                    assert_eq!(now, left, "{opener} after {point:?}");
                    assert!(!now.contains(&JOURNAL.to_string()));
                }
                let want = if new { (2, 3) } else { (1, 2) };
                assert_eq!(pair_in(d), want, "{opener} after {point:?}");
            }
        }
    }

    #[test]
    fn a_journal_whose_temporaries_are_gone_or_changed_keeps_the_old_pair() {
        for damage in ["remove both", "remove p1's", "truncate p0's", "other pair id in p1's"] {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            deal_into(d, 1, 2, None).unwrap();
            deal_into(d, 2, 3, Some(Crash::Committed)).unwrap_err();
            let j = journal::read_journal(d).unwrap().unwrap();
            let (t0, t1) = (d.join(&j.temps[0].0), d.join(&j.temps[1].0));
            match damage {
                "remove both" => {
                    std::fs::remove_file(&t0).unwrap();
                    std::fs::remove_file(&t1).unwrap();
                }
                "remove p1's" => std::fs::remove_file(&t1).unwrap(),
                "truncate p0's" => File::options().write(true).open(&t0).unwrap().set_len(200).unwrap(),
                _ => File::options().write(true).open(&t1).unwrap().write_all_at(&[9; 16], 16).unwrap(),
            }
            let lock = journal::try_lock_dir(d).unwrap();
            assert_eq!(journal::recover_locked(d).unwrap(), Recovery::RolledBack, "{damage}");
            drop(lock);
            assert_eq!(names(d), ["p0.bin", "p1.bin"], "{damage}");
            assert_eq!(pair_in(d), (1, 2), "{damage}");
        }
        // One file renamed and the other's temporary gone (only a hand can do this): the journal
        // is dropped and the handshake's pair-id check is what refuses the two files.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        deal_into(d, 1, 2, None).unwrap();
        deal_into(d, 2, 3, Some(Crash::FirstRenamed)).unwrap_err();
        let j = journal::read_journal(d).unwrap().unwrap();
        std::fs::remove_file(d.join(&j.temps[1].0)).unwrap();
        let lock = journal::try_lock_dir(d).unwrap();
        assert_eq!(journal::recover_locked(d).unwrap(), Recovery::Abandoned);
        drop(lock);
        assert_eq!(names(d), ["p0.bin", "p1.bin"]);
        let ids = [read_header(&d.join("p0.bin")).pair_id[0], read_header(&d.join("p1.bin")).pair_id[0]];
        assert_eq!(ids, [2, 1]);
        // A clean directory: nothing to do.
        let lock = journal::try_lock_dir(d).unwrap();
        assert_eq!(journal::recover_locked(d).unwrap(), Recovery::Clean);
        drop(lock);
    }

    fn read_header(path: &Path) -> FileHeader {
        let bytes = std::fs::read(path).unwrap();
        FileHeader::decode(&bytes[..FIXED_HEADER as usize], &|r| panic!("{r}")).unwrap()
    }

    #[test]
    fn a_served_file_does_not_block_a_roll_forward_and_an_open_waits_for_the_dealer() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        deal_into(d, 1, 2, None).unwrap();
        // A server holds the old p0.bin (its lock) while a deal is killed after its commit; the
        // client's open rolls the deal forward without waiting for the server.
        let served = DealerFile::open(&d.join("p0.bin"), Party::P0).unwrap();
        deal_into(d, 2, 3, Some(Crash::Committed)).unwrap_err();
        let client = DealerFile::open(&d.join("p1.bin"), Party::P1).unwrap();
        assert_eq!(client.header().pair_id, [2; 16]);
        assert_eq!(served.header().pair_id, [1; 16], "the server keeps drawing on the old file");
        assert_eq!(read_header(&d.join("p0.bin")).pair_id, [2; 16]);
        assert_eq!(names(d), ["p0.bin", "p1.bin"]);
        drop((served, client));

        // A journal while a dealer holds the directory's lock: the open waits for it.
        deal_into(d, 3, 2, Some(Crash::FirstRenamed)).unwrap_err();
        let dealer = File::open(d).unwrap();
        dealer.try_lock().unwrap();
        let p0 = d.join("p0.bin");
        let opener = std::thread::spawn(move || DealerFile::open(&p0, Party::P0).map(|f| f.header().pair_id));
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!opener.is_finished(), "the open waits for the directory's lock");
        drop(dealer);
        assert_eq!(opener.join().unwrap().unwrap(), [3; 16]);
        assert_eq!(pair_in(d), (3, 2));
    }

    #[test]
    fn a_garbage_journal_stops_opens_and_deals_with_an_error_naming_it() {
        let (dir, _) = deal();
        let d = dir.path();
        let path = d.join(JOURNAL);
        std::fs::write(&path, vec![0xAB; 300]).unwrap();
        for e in [
            DealerFile::open(&d.join("p0.bin"), Party::P0).unwrap_err(),
            DealerFile::open(&d.join("p1.bin"), Party::P1).unwrap_err(),
            deal_into(d, 4, 2, None).unwrap_err(),
            remove_stale_temporaries(d).unwrap_err(),
        ] {
            let DeployError::BadFile { path: p, reason } = &e else { panic!("{e}") };
            assert_eq!(p, &path, "{reason}");
        }
        // Removing it by hand, as the error says, leaves the pair as it was.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(pair_in(d), (5, COUNT));
    }
}
