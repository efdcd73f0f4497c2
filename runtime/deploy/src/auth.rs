//! HMAC-SHA256 challenge-response on a shared key, before any protocol message.
//!
//! ```text
//!   server → client   nonce ns (32 random bytes)
//!   client → server   nonce nc, HMAC(key, "masq-client" || ns || nc)      server verifies
//!   server → client   HMAC(key, "masq-server" || nc || ns)                client verifies
//! ```
//! Both nonces are fresh per connection (from the operating system's generator), so a recorded
//! answer is useless later; MACs are compared in constant time.

use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::{DeployError, Result};

/// Bytes of a nonce.
pub const NONCE_BYTES: usize = 32;
/// Shortest key accepted.
pub const MIN_KEY_BYTES: usize = 16;
/// Largest key file read.
const MAX_KEY_BYTES: u64 = 64 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// A shared key.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({} bytes)", self.0.len())
    }
}

impl Key {
    /// A key from bytes (at least [`MIN_KEY_BYTES`]).
    pub fn new(bytes: Vec<u8>) -> std::result::Result<Key, String> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!("{} bytes; at least {MIN_KEY_BYTES} are needed", bytes.len()));
        }
        Ok(Key(bytes))
    }

    /// Reads a key file: its bytes without surrounding ASCII whitespace (a trailing newline).
    pub fn read(path: &Path) -> Result<Key> {
        let bad = |reason: String| DeployError::BadKey { path: path.to_path_buf(), reason };
        let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        if meta.len() > MAX_KEY_BYTES {
            return Err(bad(format!("{} bytes; a key file holds at most {MAX_KEY_BYTES}", meta.len())));
        }
        let raw = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        Key::new(raw.trim_ascii().to_vec()).map_err(bad)
    }

    fn mac(&self, label: &[u8], a: &[u8], b: &[u8]) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        m.update(label);
        m.update(a);
        m.update(b);
        m
    }

    /// The client's answer to the server's nonce `ns`, with its own nonce `nc`.
    pub fn client_mac(&self, ns: &[u8], nc: &[u8]) -> [u8; 32] {
        self.mac(b"masq-client", ns, nc).finalize().into_bytes().into()
    }

    /// The server's answer.
    pub fn server_mac(&self, nc: &[u8], ns: &[u8]) -> [u8; 32] {
        self.mac(b"masq-server", nc, ns).finalize().into_bytes().into()
    }

    /// Checks the client's answer in constant time.
    pub fn verify_client(&self, ns: &[u8], nc: &[u8], tag: &[u8]) -> bool {
        self.mac(b"masq-client", ns, nc).verify_slice(tag).is_ok()
    }

    /// Checks the server's answer in constant time.
    pub fn verify_server(&self, nc: &[u8], ns: &[u8], tag: &[u8]) -> bool {
        self.mac(b"masq-server", nc, ns).verify_slice(tag).is_ok()
    }
}

/// A fresh nonce from the operating system's generator.
pub fn nonce() -> [u8; NONCE_BYTES] {
    let mut n = [0u8; NONCE_BYTES];
    rand::rng().fill_bytes(&mut n);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_verify_only_with_the_same_key_and_nonces() {
        let k = Key::new(b"0123456789abcdef-key".to_vec()).unwrap();
        let other = Key::new(b"0123456789abcdef-other".to_vec()).unwrap();
        let (ns, nc) = (nonce(), nonce());
        assert_ne!(ns, nc);
        let t = k.client_mac(&ns, &nc);
        assert!(k.verify_client(&ns, &nc, &t));
        assert!(!other.verify_client(&ns, &nc, &t));
        assert!(!k.verify_client(&nc, &ns, &t));
        // The two directions are domain-separated: a reflected answer does not verify.
        assert!(!k.verify_server(&ns, &nc, &t));
        assert!(!k.verify_server(&nc, &ns, &t));
        let s = k.server_mac(&nc, &ns);
        assert!(k.verify_server(&nc, &ns, &s));
        assert!(!k.verify_client(&ns, &nc, &s[..31]));
        assert!(Key::new(vec![1; 15]).is_err());
    }
}
