//! The dealer's preprocessing file of one party, with crash-safe "spent" flags.
//!
//! Layout (integers little-endian):
//!
//! ```text
//! offset        field
//! 0             magic "MASQPRE\0"
//! 8             format version u32 (= 1)
//! 12            party u8 (0: server P0, 1: client P1)
//! 13            model hash [32] (SHA-256 of the public model, see `deploy::public`)
//! 45            fixed-point fractional bits u32
//! 49            comparison bits u32
//! 53            batch u64
//! 61            K: inferences u64
//! 69            K spent flags, one byte each (0 fresh, 1 spent)
//! 69+K          model-load material: offset u64, length u64
//! 85+K          K inference sections: offset u64, length u64 each
//! 85+17K        the sections (model material, then the inferences), in the codec of
//!               `masq_mpc::dealer::codec`
//! ```
//!
//! Before a party uses inference `i`, it sets flag `i` and syncs the file ([`DealerFile::mark_spent`]),
//! so material is never used twice, even after a crash in the middle of a protocol. Files are
//! written to a temporary name and renamed into place, so a crashed dealer leaves no half file.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use masq_mpc::Party;
use masq_mpc::dealer::codec::{
    decode_model_material, decode_preprocessing, encode_model_material, encode_preprocessing,
};
use masq_mpc::dealer::{ModelMaterial, Preprocessing};

use crate::{DeployError, Result, io_err};

/// First bytes of every preprocessing file.
pub const FILE_MAGIC: &[u8; 8] = b"MASQPRE\0";
/// Version of the file layout.
pub const FILE_VERSION: u32 = 1;
const FIXED_HEADER: u64 = 69;
/// Most inferences one file may hold.
pub const MAX_COUNT: u64 = 1 << 24;

/// What a file is for: the same in both parties' files except `party`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub party: Party,
    pub model_hash: [u8; 32],
    pub frac_bits: u32,
    pub cmp_bits: u32,
    pub batch: u64,
    pub count: u64,
}

impl FileHeader {
    fn encode(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(FIXED_HEADER as usize);
        h.extend_from_slice(FILE_MAGIC);
        h.extend_from_slice(&FILE_VERSION.to_le_bytes());
        h.push(match self.party {
            Party::P0 => 0,
            Party::P1 => 1,
        });
        h.extend_from_slice(&self.model_hash);
        h.extend_from_slice(&self.frac_bits.to_le_bytes());
        h.extend_from_slice(&self.cmp_bits.to_le_bytes());
        h.extend_from_slice(&self.batch.to_le_bytes());
        h.extend_from_slice(&self.count.to_le_bytes());
        debug_assert_eq!(h.len() as u64, FIXED_HEADER);
        h
    }

    fn flags_at(&self) -> u64 {
        FIXED_HEADER
    }

    fn table_at(&self) -> u64 {
        FIXED_HEADER + self.count
    }

    /// Bytes before the first section.
    fn header_len(&self) -> u64 {
        FIXED_HEADER + self.count + 16 * (self.count + 1)
    }
}

/// Writes both parties' files into `dir` (`p0.bin`, `p1.bin`): the model-load material, then
/// `headers[0].count` inferences from `next(i)`. Returns each file's path and size.
pub fn write_pair(
    dir: &Path,
    headers: [FileHeader; 2],
    model: (&ModelMaterial, &ModelMaterial),
    mut next: impl FnMut(u64) -> Result<(Preprocessing, Preprocessing)>,
) -> Result<[(PathBuf, u64); 2]> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let count = headers[0].count;
    let paths = [dir.join("p0.bin"), dir.join("p1.bin")];
    let tmps = paths.clone().map(|p| {
        let mut name = p.file_name().expect("a file name").to_os_string();
        name.push(format!(".tmp{}", std::process::id()));
        p.with_file_name(name)
    });
    let result = (|| {
        let mut files = Vec::with_capacity(2);
        for (tmp, h) in tmps.iter().zip(&headers) {
            let f = File::create(tmp).map_err(io_err(tmp))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            w.write_all(&h.encode()).map_err(io_err(tmp))?;
            w.write_all(&vec![0u8; (h.header_len() - FIXED_HEADER) as usize]).map_err(io_err(tmp))?;
            files.push((w, h.header_len(), Vec::with_capacity(count as usize + 1)));
        }
        let mut put = |k: usize, bytes: &[u8]| -> Result<()> {
            let (w, at, table) = &mut files[k];
            w.write_all(bytes).map_err(io_err(&tmps[k]))?;
            table.push((*at, bytes.len() as u64));
            *at += bytes.len() as u64;
            Ok(())
        };
        put(0, &encode_model_material(model.0))?;
        put(1, &encode_model_material(model.1))?;
        for i in 0..count {
            let (p0, p1) = next(i)?;
            put(0, &encode_preprocessing(&p0))?;
            put(1, &encode_preprocessing(&p1))?;
        }
        let mut sizes = [0u64; 2];
        for (k, (w, at, table)) in files.into_iter().enumerate() {
            let tmp = &tmps[k];
            let mut f = w.into_inner().map_err(|e| DeployError::Io { path: tmp.clone(), source: e.into_error() })?;
            let mut raw = Vec::with_capacity(table.len() * 16);
            for (off, len) in table {
                raw.extend_from_slice(&off.to_le_bytes());
                raw.extend_from_slice(&len.to_le_bytes());
            }
            f.seek(SeekFrom::Start(headers[k].table_at())).map_err(io_err(tmp))?;
            f.write_all(&raw).map_err(io_err(tmp))?;
            f.sync_all().map_err(io_err(tmp))?;
            sizes[k] = at;
        }
        for (tmp, path) in tmps.iter().zip(&paths) {
            std::fs::rename(tmp, path).map_err(io_err(path))?;
        }
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(sizes)
    })();
    match result {
        Ok(sizes) => Ok([(paths[0].clone(), sizes[0]), (paths[1].clone(), sizes[1])]),
        Err(e) => {
            for tmp in &tmps {
                let _ = std::fs::remove_file(tmp);
            }
            Err(e)
        }
    }
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
    pub fn open(path: &Path, party: Party) -> Result<DealerFile> {
        let bad = |reason: String| DeployError::BadFile { path: path.to_path_buf(), reason };
        let mut file = OpenOptions::new().read(true).write(true).open(path).map_err(io_err(path))?;
        let size = file.metadata().map_err(io_err(path))?.len();
        let mut fixed = [0u8; FIXED_HEADER as usize];
        if size < FIXED_HEADER {
            return Err(bad(format!("{size} bytes: too short for a masq preprocessing file")));
        }
        file.read_exact(&mut fixed).map_err(io_err(path))?;
        if &fixed[..8] != FILE_MAGIC {
            return Err(bad("not a masq preprocessing file (bad magic); deal one with `masq deal`".into()));
        }
        let u32_at = |o: usize| u32::from_le_bytes(fixed[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(fixed[o..o + 8].try_into().expect("8 bytes"));
        let version = u32_at(8);
        if version != FILE_VERSION {
            return Err(bad(format!("format version {version}, this build reads version {FILE_VERSION}")));
        }
        let file_party = match fixed[12] {
            0 => Party::P0,
            1 => Party::P1,
            p => return Err(bad(format!("party byte {p}"))),
        };
        if file_party != party {
            let (what, other) = match party {
                Party::P0 => ("the server (P0, p0.bin)", "the client's file"),
                Party::P1 => ("the client (P1, p1.bin)", "the server's file"),
            };
            return Err(bad(format!("this is {other}; {what} needs its own")));
        }
        let header = FileHeader {
            party,
            model_hash: fixed[13..45].try_into().expect("32 bytes"),
            frac_bits: u32_at(45),
            cmp_bits: u32_at(49),
            batch: u64_at(53),
            count: u64_at(61),
        };
        if header.count == 0 || header.count > MAX_COUNT || header.header_len() > size {
            return Err(bad(format!("inference count {} does not fit the file of {size} bytes", header.count)));
        }
        if header.batch == 0 {
            return Err(bad("batch 0".into()));
        }
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
        let mut entries = table.chunks_exact(16).map(|c| {
            (u64::from_le_bytes(c[..8].try_into().expect("8")), u64::from_le_bytes(c[8..].try_into().expect("8")))
        });
        let model = entries.next().expect("count + 1 entries");
        let sections: Vec<_> = entries.collect();
        for (i, &(off, len)) in std::iter::once(&model).chain(&sections).enumerate() {
            if off < header.header_len() || off.checked_add(len).is_none_or(|end| end > size) {
                return Err(bad(format!("section {i} ({off}+{len}) lies outside the file of {size} bytes")));
            }
        }
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

    /// Marks inferences `from..=to` spent and syncs the file before returning.
    pub fn mark_spent(&mut self, from: u64, to: u64) -> Result<()> {
        if to >= self.header.count || from > to {
            return Err(DeployError::Exhausted {
                reason: format!("inference {to} of {} does not exist in {}", self.header.count, self.path.display()),
            });
        }
        let n = (to - from + 1) as usize;
        self.file.write_all_at(&vec![1u8; n], self.header.flags_at() + from).map_err(io_err(&self.path))?;
        self.file.sync_data().map_err(io_err(&self.path))?;
        for s in &mut self.spent[from as usize..=to as usize] {
            *s = true;
        }
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

    /// Inference `i`'s preprocessing; refused unless `i` was marked spent first.
    pub fn inference(&self, i: u64) -> Result<Preprocessing> {
        if !self.spent.get(i as usize).copied().unwrap_or(false) {
            return Err(DeployError::BadFile {
                path: self.path.clone(),
                reason: format!("inference {i} must be marked spent before its material is read"),
            });
        }
        let raw = self.section(self.sections[i as usize])?;
        decode_preprocessing(self.header.party, &raw)
            .map_err(|e| DeployError::BadFile { path: self.path.clone(), reason: format!("inference {i}: {e}") })
    }
}

/// Reads just the spent flags of a file (for tools and tests).
pub fn read_spent(path: &Path) -> Result<Vec<bool>> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut fixed = [0u8; FIXED_HEADER as usize];
    f.read_exact(&mut fixed).map_err(io_err(path))?;
    let count = u64::from_le_bytes(fixed[61..69].try_into().expect("8 bytes"));
    if count > MAX_COUNT {
        return Err(DeployError::BadFile { path: path.to_path_buf(), reason: format!("inference count {count}") });
    }
    let mut flags = vec![0u8; count as usize];
    f.read_exact(&mut flags).map_err(io_err(path))?;
    Ok(flags.into_iter().map(|b| b != 0).collect())
}
