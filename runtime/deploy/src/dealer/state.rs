//! The dealer service's state directory: its secret, its id and the next inference number, kept
//! so that no inference is ever dealt twice, across restarts.
//!
//! ```text
//!   DIR/LOCK     held (flock, exclusive) while a dealer runs: a second dealer on DIR refuses to start
//!   DIR/secret   48 bytes, mode 0600: the 32-byte master key, then the 16-byte dealer id
//!   DIR/next     "masq-dealer-next <n>\n": no inference numbered n or above was ever handed out
//! ```
//! Inference `s` is dealt from the key `HMAC-SHA256(master, "masq-dealer-slot" || s)`, so its
//! material exists nowhere but in the streams the dealer sends. `next` is written (temporary file,
//! fsync, rename, directory fsync) before inference `next - 1` is announced to anyone, so a killed
//! dealer restarts above every number it gave out. The secret is created on the first start.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{DeployError, Result, io_err};

const SECRET_BYTES: usize = 48;
const NEXT_PREFIX: &str = "masq-dealer-next ";

/// An open, locked state directory.
#[derive(Debug)]
pub struct State {
    dir: PathBuf,
    _lock: File,
    master: [u8; 32],
    id: [u8; 16],
    next: u64,
}

fn bad(path: &Path, reason: impl Into<String>) -> DeployError {
    DeployError::BadFile { path: path.to_path_buf(), reason: reason.into() }
}

impl State {
    /// Opens (creating it and its secret if needed) and locks `dir`.
    pub fn open(dir: &Path) -> Result<State> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock_path = dir.join("LOCK");
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(bad(&lock_path, "another `masq dealer` holds this state directory"));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(DeployError::Io { path: lock_path, source: e }),
        }
        let secret_path = dir.join("secret");
        let secret = match read_small(&secret_path, SECRET_BYTES as u64 + 1)? {
            Some(bytes) if bytes.len() == SECRET_BYTES => bytes,
            Some(bytes) => {
                return Err(bad(&secret_path, format!("{} bytes, a dealer secret has {SECRET_BYTES}", bytes.len())));
            }
            None => {
                let mut bytes = vec![0u8; SECRET_BYTES];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
                write_durable(dir, &secret_path, &bytes, true)?;
                bytes
            }
        };
        let next_path = dir.join("next");
        let next = match read_small(&next_path, 64)? {
            None => 0,
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.strip_prefix(NEXT_PREFIX))
                .and_then(|s| s.strip_suffix('\n'))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| bad(&next_path, format!("not a `{NEXT_PREFIX}<n>` line")))?,
        };
        let mut master = [0u8; 32];
        let mut id = [0u8; 16];
        master.copy_from_slice(&secret[..32]);
        id.copy_from_slice(&secret[32..]);
        Ok(State { dir: dir.to_path_buf(), _lock: lock, master, id, next })
    }

    /// The dealer's id (sent in every grant; the parties compare it in their handshake).
    pub fn id(&self) -> [u8; 16] {
        self.id
    }

    /// The number the next inference gets.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Hands out a new inference number, made durable before it is returned.
    pub fn allocate(&mut self) -> Result<u64> {
        let s = self.next;
        let next = s.checked_add(1).ok_or_else(|| bad(&self.dir.join("next"), "inference numbers exhausted"))?;
        write_durable(&self.dir, &self.dir.join("next"), format!("{NEXT_PREFIX}{next}\n").as_bytes(), false)?;
        self.next = next;
        Ok(s)
    }

    /// The key inference `slot` is dealt from.
    pub fn slot_key(&self, slot: u64) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.master).expect("HMAC takes any key length");
        mac.update(b"masq-dealer-slot");
        mac.update(&slot.to_le_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Reads a file of at most `max` bytes; `None` if it does not exist.
fn read_small(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DeployError::Io { path: path.to_path_buf(), source: e }),
    };
    let mut bytes = Vec::new();
    f.take(max).read_to_end(&mut bytes).map_err(io_err(path))?;
    if bytes.len() as u64 >= max {
        return Err(bad(path, format!("longer than {} bytes", max - 1)));
    }
    Ok(Some(bytes))
}

/// Writes `bytes` to `path` through a temporary file in `dir` (fsync, rename, directory fsync).
fn write_durable(dir: &Path, path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let mut tmp = tempfile::Builder::new().prefix(".masq-tmp-").tempfile_in(dir).map_err(io_err(dir))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    tmp.write_all(bytes).and_then(|_| tmp.as_file().sync_all()).map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| DeployError::Io { path: path.to_path_buf(), source: e.error })?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_survive_a_restart_and_a_second_dealer_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let mut s = State::open(d.path()).unwrap();
        assert_eq!((s.allocate().unwrap(), s.allocate().unwrap()), (0, 1));
        let e = State::open(d.path()).unwrap_err().to_string();
        assert!(e.contains("LOCK") && e.contains("another"), "{e}");
        let (id, key) = (s.id(), s.slot_key(1));
        drop(s);
        let mut s = State::open(d.path()).unwrap();
        assert_eq!(s.allocate().unwrap(), 2);
        assert_eq!((s.id(), s.slot_key(1)), (id, key));
        assert_ne!(s.slot_key(1), s.slot_key(2));
        drop(s);
        std::fs::write(d.path().join("next"), "garbage").unwrap();
        let e = State::open(d.path()).unwrap_err().to_string();
        assert!(e.contains("next") && e.contains("not a"), "{e}");
        std::fs::write(d.path().join("secret"), [0u8; 5]).unwrap();
        let e = State::open(d.path()).unwrap_err().to_string();
        assert!(e.contains("secret") && e.contains("5 bytes"), "{e}");
    }
}
