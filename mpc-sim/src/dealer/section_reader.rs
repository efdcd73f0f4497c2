//! Reading a seed-expanded section ([`super::codec::encode_preprocessing_seeded`]) piece by piece,
//! in bounded memory: the two-process counterpart of [`super::stream`].
//!
//! ```text
//!   file section:  Header | Origin | Explicit_0 | Explicit_1 | ... | Explicit_{k-1}
//!                  read at open      └─ decoded and expanded one request at a time, into segments
//!                                       whose resident size fits the budget (at least one request)
//!   Ctx::take ── queue empty ──▶ SectionReader::refill ── next segment ──▶ precompute, resume
//! ```
//! Only the bytes of the item being decoded (plus a read-ahead of [`READ_AHEAD`]) and the current
//! segment's material are held. Sizes come from the reader's own plan, as in the whole-section
//! decoder; a length field that claims more than what is left of the section is a decode error
//! before anything is read or reserved, and every item is decoded under the section's bincode limit.

use std::collections::VecDeque;
use std::fmt;
use std::io::Read;

use bincode::config::{Config, Configuration, Fixint, Limit, LittleEndian};
use bincode::error::DecodeError;

use super::codec::{CONFIG, decode_limit};
use super::expand::{self, Explicit, Origin};
use super::material::Preprocessing;
use super::request::{LayerId, LinearKind, Request};
use super::stream::{Refill, resident_bytes};
use crate::error::{MpcError, Result};
use crate::party::Party;

/// Bytes read ahead of what the current item needs.
pub const READ_AHEAD: usize = 1 << 20;

const DURING: &str = "reading seed-expanded preprocessing";

/// What a reader needs besides its bytes.
#[derive(Debug, Clone)]
pub struct SectionPlan {
    /// Whose material.
    pub party: Party,
    /// The reader's plan: the requests the section must answer, in order.
    pub requests: Vec<Request>,
    /// The model's linear layers (from its model material), for the linear items' shapes.
    pub layers: Vec<(LayerId, LinearKind)>,
    /// Most bytes of material one segment may hold (at least one request is always read).
    pub budget: u64,
    /// Names the section in errors (e.g. the file and the inference).
    pub name: String,
}

/// Opens a section of `len` bytes read from `src`: decodes its header and origin, and returns the
/// first segment with the reader for the rest.
pub fn open_section<R: Read + Send + 'static>(
    src: R,
    len: u64,
    plan: SectionPlan,
) -> Result<(Preprocessing, Box<dyn Refill>)> {
    let Some(limit) = usize::try_from(len).ok().and_then(decode_limit) else {
        return Err(MpcError::Decode {
            during: DURING,
            reason: format!("{}: a section of {len} bytes is too long", plan.name),
        });
    };
    macro_rules! by_limit {
        ($($bits:literal)*; $($bits64:literal)*) => {
            match limit.trailing_zeros() {
                $($bits => start::<R, { 1usize << $bits }>(src, len, limit, plan),)*
                $(#[cfg(target_pointer_width = "64")]
                $bits64 => start::<R, { 1usize << $bits64 }>(src, len, limit, plan),)*
                bits => Err(MpcError::Decode { during: DURING, reason: format!("no decode limit of 2^{bits} bytes") }),
            }
        };
    }
    by_limit!(12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31; 32 33 34 35 36 37 38 39 40)
}

fn start<R: Read + Send + 'static, const N: usize>(
    src: R,
    len: u64,
    limit: usize,
    plan: SectionPlan,
) -> Result<(Preprocessing, Box<dyn Refill>)> {
    let mut r = SectionReader::<R, Configuration<LittleEndian, Fixint, Limit<N>>> {
        src,
        left: len,
        buf: Vec::new(),
        pos: 0,
        at: 0,
        config: CONFIG.with_limit::<N>(),
        limit,
        origin: Origin { key: [0; 32], deal: 0 },
        next: 0,
        offline_bytes: 0,
        plan,
    };
    let header: super::codec::Header = r.decode(|| "the section header".into())?;
    if header.count != r.plan.requests.len() as u64 {
        return Err(r.error(
            0,
            "the section header",
            format!("{} items, the plan has {} requests", header.count, r.plan.requests.len()),
        ));
    }
    r.origin = r.decode(|| "the origin (stream key and deal)".into())?;
    r.offline_bytes = header.offline_bytes;
    let first = r.segment()?.unwrap_or_else(|| Preprocessing::new(r.plan.party, VecDeque::new(), header.offline_bytes));
    Ok((first, Box::new(r)))
}

struct SectionReader<R, C> {
    src: R,
    /// Section bytes not read from `src` yet.
    left: u64,
    /// Bytes read and not yet consumed start at `pos`.
    buf: Vec<u8>,
    pos: usize,
    /// Offset in the section of `buf[pos]`.
    at: u64,
    config: C,
    limit: usize,
    origin: Origin,
    /// Index of the next request to read.
    next: usize,
    /// The header's offline bytes, given with the first segment.
    offline_bytes: u64,
    plan: SectionPlan,
}

impl<R, C> fmt::Debug for SectionReader<R, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SectionReader({}, request {} of {})", self.plan.name, self.next, self.plan.requests.len())
    }
}

impl<R: Read, C: Config> SectionReader<R, C> {
    fn error(&self, at: u64, what: &str, reason: String) -> MpcError {
        MpcError::Decode { during: DURING, reason: format!("{}: at byte {at}: {what}: {reason}", self.plan.name) }
    }

    /// Reads `want` more bytes (at most what is left of the section), dropping consumed ones.
    fn fill(&mut self, want: usize) -> Result<()> {
        self.buf.drain(..self.pos);
        self.pos = 0;
        let n = (want.max(READ_AHEAD) as u64).min(self.left) as usize;
        let old = self.buf.len();
        self.buf.resize(old + n, 0);
        self.src
            .read_exact(&mut self.buf[old..])
            .map_err(|e| self.error(self.at, "the section", format!("read failed: {e}")))?;
        self.left -= n as u64;
        Ok(())
    }

    /// Decodes the next owned value, reading more bytes as bincode asks for them.
    fn decode<T: bincode::Decode<()>>(&mut self, what: impl Fn() -> String) -> Result<T> {
        loop {
            match bincode::decode_from_slice::<T, _>(&self.buf[self.pos..], self.config) {
                Ok((v, used)) => {
                    self.pos += used;
                    self.at += used as u64;
                    return Ok(v);
                }
                Err(DecodeError::UnexpectedEnd { additional }) if additional as u64 <= self.left => {
                    self.fill(additional)?
                }
                Err(e) => return Err(self.explain(e, &what())),
            }
        }
    }

    fn explain(&self, e: DecodeError, what: &str) -> MpcError {
        let reason = match e {
            DecodeError::UnexpectedEnd { additional } => format!(
                "truncated: needs at least {additional} more bytes, {} left in the section",
                self.left + (self.buf.len() - self.pos) as u64
            ),
            DecodeError::LimitExceeded => {
                format!("a length field claims more than the section can hold (decode limit {} bytes)", self.limit)
            }
            DecodeError::UnexpectedVariant { type_name, found, .. } => format!("unknown {type_name} tag {found}"),
            e => e.to_string(),
        };
        self.error(self.at, what, reason)
    }

    /// Decodes and expands requests until the segment's resident bytes reach the budget.
    fn segment(&mut self) -> Result<Option<Preprocessing>> {
        if self.next == self.plan.requests.len() {
            if self.left > 0 || self.pos < self.buf.len() {
                let extra = self.left + (self.buf.len() - self.pos) as u64;
                return Err(self.error(self.at, "the end of the section", format!("{extra} trailing bytes")));
            }
            return Ok(None);
        }
        let mut items = VecDeque::new();
        let mut held = 0u64;
        while self.next < self.plan.requests.len() && (items.is_empty() || held < self.plan.budget) {
            let (m, bytes) = self.item()?;
            held += bytes;
            items.push_back(m);
            self.next += 1;
        }
        Ok(Some(Preprocessing::new(self.plan.party, items, std::mem::take(&mut self.offline_bytes))))
    }

    /// Decodes (borrowing the key bytes from the buffer) and expands request `self.next`; returns
    /// the material and its estimated resident bytes.
    fn item(&mut self) -> Result<(super::material::Material, u64)> {
        let i = self.next;
        let req = self.plan.requests[i].clone();
        let count = self.plan.requests.len();
        let what = || format!("item {i} of {count} ({})", req.name());
        loop {
            let layers = &self.plan.layers;
            let out_shape = |layer: LayerId, input: &[usize]| {
                layers.iter().find(|l| l.0 == layer).and_then(|l| l.1.output_shape(input).ok())
            };
            let decoded =
                bincode::borrow_decode_from_slice::<Explicit<Vec<u64>, &[u8]>, _>(&self.buf[self.pos..], self.config);
            let need = match decoded {
                Ok((ex, used)) => {
                    let mut rng = expand::request_stream(&self.origin.key, self.origin.deal, i);
                    let m = expand::expand(self.plan.party, &req, &out_shape, &mut rng, ex)
                        .map_err(|r| self.error(self.at, &what(), r))?;
                    let bytes = resident_bytes(&req, &|layer| match &req {
                        Request::Linear { input_shape, .. } => out_shape(layer, input_shape),
                        _ => None,
                    })
                    .unwrap_or(0);
                    self.pos += used;
                    self.at += used as u64;
                    return Ok((m, bytes));
                }
                Err(DecodeError::UnexpectedEnd { additional }) if additional as u64 <= self.left => additional,
                Err(e) => return Err(self.explain(e, &what())),
            };
            self.fill(need)?;
        }
    }
}

impl<R: Read + Send, C: Config + Send> Refill for SectionReader<R, C> {
    fn refill(&mut self) -> Result<Option<Preprocessing>> {
        self.segment()
    }
}
