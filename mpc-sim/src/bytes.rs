//! Bounds-checked reading of untrusted little-endian bytes, for hand-laid-out formats (the dealer
//! files and sections are bincode now, see [`crate::dealer::codec`]).
//!
//! Every read checks the bytes left first, and length prefixes are checked against what is left
//! before anything is allocated, so a corrupt or hostile input can never make the reader allocate
//! more than the input holds. Errors are [`MpcError::Decode`] naming the offset.

use crate::error::{MpcError, Result};

/// A cursor over a byte slice.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    buf: &'a [u8],
    at: usize,
    during: &'static str,
}

impl<'a> ByteReader<'a> {
    /// Reads `buf`; `during` names what is being read in error messages.
    pub fn new(buf: &'a [u8], during: &'static str) -> Self {
        ByteReader { buf, at: 0, during }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.at
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }

    /// A decode error at the current offset.
    pub fn error(&self, reason: &str) -> MpcError {
        MpcError::Decode { during: self.during, reason: format!("at byte {}: {reason}", self.at) }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.error(&format!("needs {n} more bytes, {} left (truncated?)", self.remaining())));
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    /// A u64 count of items of at least `unit` bytes each, checked against the bytes left.
    pub fn len(&mut self, unit: usize) -> Result<usize> {
        let n = self.u64()?;
        let left = self.remaining() as u64;
        if n.checked_mul(unit as u64).is_none_or(|b| b > left) {
            return Err(self.error(&format!("count {n} exceeds the {left} bytes left")));
        }
        Ok(n as usize)
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(self.error(&format!("{} trailing bytes", self.remaining())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_refuses_to_overrun() {
        let bytes = [1u8, 2, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0];
        let mut r = ByteReader::new(&bytes, "test");
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.u32().unwrap(), 2);
        assert!(r.len(1).is_err(), "5 items of 1 byte, 0 bytes left");
        let mut r = ByteReader::new(&bytes[..3], "test");
        assert!(matches!(r.u64(), Err(MpcError::Decode { .. })));
        let r = ByteReader::new(&bytes, "test");
        assert!(r.finish().is_err());
    }
}
