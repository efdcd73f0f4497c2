//! The dealer's material as bytes, so a dealer can hand each party a file: bincode 2.
//!
//! **Encoding.** [`CONFIG`]: bincode's standard configuration with fixed-width integers —
//! little-endian; `u32` 4 bytes; `u64` and `usize` 8 bytes; an enum is its variant index as a
//! `u32`, then the variant's fields; a `Vec`/slice is `len: u64`, then its elements (so a word
//! vector is `len: u64` + `len × u64`, a byte string `len: u64` + the bytes); a fixed-size array
//! is its elements, without a length; struct fields in order. Fixed width rather than varint
//! because nearly all of the material is uniformly random ring words, which a varint stores in 9
//! bytes instead of 8.
//!
//! **Sections.** A section (one per inference, and one for the model, in a dealer file) is a
//! `Header` followed by `count` values, each a separate bincode value:
//!
//! ```text
//! Header  { offline_bytes: u64, count: u64 }
//! Item    enum, u32 tag: 0 Mul { a, b, c } | 1 Square { a, a2 } | 2 Cmp(Cmp)
//!         | 3 MaskedAct { cmp: Cmp, a, a2 } | 4 Linear { layer: u64, input_shape: Vec<usize>, b: Tensor, c: Tensor }
//!         | 5 MatMul { batch: u64, m: u64, k: u64, n: u64, a, b, c }
//!                                  (a product of two secret tensors: `a` is batch·m·k words,
//!                                   `b` batch·k·n, `c` batch·m·n, row-major per batch)
//! Cmp     { bits: u32, r, keys: CmpKeys }
//! CmpKeys enum, u32 tag: 0 OneRound { mr, mrr, keys: bytes }    (`r.len()` DCF keys on `bits - 1`
//!                                   bits, as `DcfKeyBatch::to_bytes` writes them)
//!         | 1 Compact { mu: bytes (one 0/1 byte each), lam, lamr, keys: bytes }
//!                                  (one-bit DCF keys, as `BitDcfBatch::to_bytes` writes them)
//! Tensor  { shape: Vec<usize>, words }             (row-major)
//! Layer   { id: u64, kind: LinearKind, a: Tensor } (model material: the weight-mask share)
//! ```
//!
//! where `a, b, c, a2, r, mr, mrr, lam, lamr, words` are word vectors. A linear item's `eb = op(E, [B])` is
//! the party's own offline product, recomputed after loading and never stored. A matmul item's
//! dimensions are checked against its three vector lengths; nothing is sized from them.
//!
//! A **seed-expanded** section ([`encode_preprocessing_seeded`]) is the `Header`, the `Origin`
//! `{ key: [u8; 32], deal: u64 }`, then per request only what the party cannot expand
//! ([`super::expand`]), an enum with the same tags: `0 Mul { c } | 1 Square { a2 } | 2 Cmp |
//! 3 MaskedAct { cmp, a2 } | 4 Linear { c } | 5 MatMul { c }` (word vectors empty at P0, except
//! that DCF keys are explicit for both). Its sizes come from the reader's plan, never the file.
//!
//! **Untrusted input.** Decoding never panics and never reserves memory for a length field that
//! the input cannot back: every value is decoded with a bincode limit
//! ([`bincode::config::Configuration::with_limit`]) derived from the length of the section being
//! read, [`decode_limit`]: twice the section's bytes, rounded up to a power of two (at least
//! 4 KiB). bincode counts every byte it decodes, and every `len × size` it would reserve for a
//! sequence, against that limit before reserving anything, so a forged length (say 2^60 words)
//! fails at once with an error instead of allocating; the factor two leaves room for bincode
//! counting a fixed-size array of integers twice (the array, then each element). Byte strings
//! (the DCF keys, most of a section) are borrowed from the input rather than copied. Every error
//! is an [`MpcError::Decode`] that names the section, the item and its byte offset, and the
//! problem (truncated, a length beyond the limit, an unknown tag, inconsistent lengths, ...).

use std::collections::VecDeque;

use bincode::config::{Config, Configuration, Fixint, LittleEndian, NoLimit};
use bincode::error::DecodeError;
use ndarray::{ArrayD, IxDyn};

use super::expand::{self, Origin};
use super::material::{CmpKeys, CmpMaterial, Material, ModelMaterial, Preprocessing};
use super::request::{LinearKind, Request};
use crate::dcf::{BitDcfBatch, DcfKeyBatch, bit_key_bytes, key_bytes};
use crate::error::{MpcError, Result};
use crate::party::Party;

/// The bincode configuration of dealer material (decoding adds a limit, see [`decode_limit`]).
pub const CONFIG: Configuration<LittleEndian, Fixint, NoLimit> = bincode::config::standard().with_fixed_int_encoding();

/// Smallest decode limit, in bits (4 KiB).
const MIN_LIMIT_BITS: u32 = 12;
/// Largest decode limit, in bits (1 TiB, so sections of up to 512 GiB; longer ones are refused).
#[cfg(target_pointer_width = "64")]
const MAX_LIMIT_BITS: u32 = 40;
#[cfg(not(target_pointer_width = "64"))]
const MAX_LIMIT_BITS: u32 = 31;

/// The bincode decode limit for a section of `section_len` bytes: `2 · section_len` rounded up
/// to a power of two, at least 4 KiB; `None` when that exceeds 1 TiB (such a section is refused).
pub fn decode_limit(section_len: usize) -> Option<usize> {
    let bits = section_len.checked_mul(2)?.max(1 << MIN_LIMIT_BITS).checked_next_power_of_two()?.trailing_zeros();
    (bits <= MAX_LIMIT_BITS).then(|| 1usize << bits)
}

/// What precedes a section's values.
#[derive(Debug, bincode::Encode, bincode::Decode)]
pub(crate) struct Header {
    /// Bytes a real dealer sends the party for the section ([`Preprocessing::offline_bytes`]).
    pub(crate) offline_bytes: u64,
    /// Values that follow.
    pub(crate) count: u64,
}

/// One preprocessing item: word vectors `W` (`&[u64]` to encode, `Vec<u64>` decoded) and key
/// bytes `K` (`Vec<u8>` to encode, borrowed from the input when decoded).
#[derive(bincode::Encode, bincode::BorrowDecode)]
enum Item<W, K> {
    Mul { a: W, b: W, c: W },
    Square { a: W, a2: W },
    Cmp(Cmp<W, K>),
    MaskedAct { cmp: Cmp<W, K>, a: W, a2: W },
    Linear { layer: u64, input_shape: Vec<usize>, b: Tensor<W>, c: Tensor<W> },
    MatMul { batch: u64, m: u64, k: u64, n: u64, a: W, b: W, c: W },
}

/// Comparison material: the DCF keys are `r.len()` keys on `bits - 1` bits.
#[derive(bincode::Encode, bincode::BorrowDecode)]
struct Cmp<W, K> {
    bits: u32,
    r: W,
    keys: Keys<W, K>,
}

/// The mode-specific part of [`Cmp`].
#[derive(bincode::Encode, bincode::BorrowDecode)]
enum Keys<W, K> {
    OneRound { mr: W, mrr: W, keys: K },
    Compact { mu: K, lam: W, lamr: W, keys: K },
}

/// A tensor of words, row-major.
#[derive(bincode::Encode, bincode::BorrowDecode)]
struct Tensor<W> {
    shape: Vec<usize>,
    words: W,
}

/// One linear layer of model-load material.
#[derive(bincode::Encode, bincode::BorrowDecode)]
struct Layer<W> {
    id: u64,
    kind: LinearKind,
    a: Tensor<W>,
}

type ItemOut<'a> = Item<&'a [u64], Vec<u8>>;
type ItemIn<'a> = Item<Vec<u64>, &'a [u8]>;

/// Appends `v` to `out` ([`CONFIG`]).
pub(crate) fn put<T: bincode::Encode>(out: &mut Vec<u8>, v: &T) {
    bincode::encode_into_std_write(v, out, CONFIG).expect("encoding into memory cannot fail");
}

fn words(t: &ArrayD<u64>) -> std::borrow::Cow<'_, [u64]> {
    match t.as_slice() {
        Some(s) => s.into(),
        None => t.iter().copied().collect::<Vec<_>>().into(),
    }
}

fn cmp_out(c: &CmpMaterial) -> Cmp<&[u64], Vec<u8>> {
    let keys = match &c.keys {
        CmpKeys::OneRound { mr, mrr, keys } => {
            Keys::OneRound { mr: mr.as_slice(), mrr: mrr.as_slice(), keys: keys.to_bytes() }
        }
        CmpKeys::Compact { mu, lam, lamr, keys } => {
            Keys::Compact { mu: mu.clone(), lam: lam.as_slice(), lamr: lamr.as_slice(), keys: keys.to_bytes() }
        }
    };
    Cmp { bits: c.bits, r: &c.r, keys }
}

/// Encodes one item (appended to `out`).
pub fn encode_material(m: &Material, out: &mut Vec<u8>) {
    match m {
        Material::Mul { a, b, c } => put::<ItemOut>(out, &Item::Mul { a, b, c }),
        Material::Square { a, a2 } => put::<ItemOut>(out, &Item::Square { a, a2 }),
        Material::Cmp(c) => put::<ItemOut>(out, &Item::Cmp(cmp_out(c))),
        Material::MaskedAct { cmp, a, a2 } => put::<ItemOut>(out, &Item::MaskedAct { cmp: cmp_out(cmp), a, a2 }),
        Material::Linear { layer, input_shape, b, c, eb: _ } => {
            let (bw, cw) = (words(b), words(c));
            let item: ItemOut = Item::Linear {
                layer: *layer as u64,
                input_shape: input_shape.clone(),
                b: Tensor { shape: b.shape().to_vec(), words: &bw },
                c: Tensor { shape: c.shape().to_vec(), words: &cw },
            };
            put(out, &item);
        }
        Material::MatMul { batch, m, k, n, a, b, c } => {
            let [batch, m, k, n] = [*batch, *m, *k, *n].map(|d| d as u64);
            put::<ItemOut>(out, &Item::MatMul { batch, m, k, n, a, b, c });
        }
    }
}

/// Encodes a whole queue (without the party, which the caller's file header records).
pub fn encode_preprocessing(p: &Preprocessing) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, &Header { offline_bytes: p.offline_bytes(), count: p.remaining() as u64 });
    for m in p.items() {
        encode_material(m, &mut out);
    }
    out
}

/// Encodes `party`'s queue seed-expanded: the header, the [`Origin`] (stream key and deal), then
/// per item only its explicit values and DCF keys ([`super::expand`]). The queue must be a whole
/// deal as the dealer made it (item `i` is request `i` of deal `origin.deal`).
pub fn encode_preprocessing_seeded(p: &Preprocessing, origin: &Origin) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, &Header { offline_bytes: p.offline_bytes(), count: p.remaining() as u64 });
    put(&mut out, origin);
    for m in p.items() {
        put(&mut out, &expand::explicit(p.party(), m));
    }
    out
}

/// Decodes a queue written by [`encode_preprocessing_seeded`] for `party`, expecting exactly
/// `requests` (the reader's own plan: sizes come from it, never from the file).
/// `out_shape(layer, input_shape)` gives a linear layer's output shape (from the model material).
pub fn decode_preprocessing_seeded(
    party: Party,
    bytes: &[u8],
    requests: &[Request],
    out_shape: expand::OutShape<'_>,
) -> Result<Preprocessing> {
    with_limit(bytes, "reading seed-expanded preprocessing", SeededJob { party, requests, out_shape })
}

/// Encodes model-load material.
pub fn encode_model_material(m: &ModelMaterial) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, &Header { offline_bytes: m.offline_bytes, count: m.layers.len() as u64 });
    for (id, kind, a) in &m.layers {
        let aw = words(a);
        let layer = Layer { id: *id as u64, kind: kind.clone(), a: Tensor { shape: a.shape().to_vec(), words: &*aw } };
        put(&mut out, &layer);
    }
    out
}

/// Decodes a queue written by [`encode_preprocessing`] for `party`.
pub fn decode_preprocessing(party: Party, bytes: &[u8]) -> Result<Preprocessing> {
    with_limit(bytes, "reading preprocessing", PreprocessingJob(party))
}

/// Decodes model-load material written by [`encode_model_material`] for `party`.
pub fn decode_model_material(party: Party, bytes: &[u8]) -> Result<ModelMaterial> {
    with_limit(bytes, "reading model material", ModelJob(party))
}

/// A decoding that runs under whichever limited configuration [`with_limit`] picks.
trait Job {
    type Out;
    fn run<C: Config>(self, s: &mut Section<'_, C>) -> Result<Self::Out>;
}

struct PreprocessingJob(Party);

impl Job for PreprocessingJob {
    type Out = Preprocessing;
    fn run<C: Config>(self, s: &mut Section<'_, C>) -> Result<Preprocessing> {
        let party = self.0;
        let header: Header = s.next(|| "the section header".into())?;
        // No reservation from `count`: the queue grows with the items actually decoded.
        let mut items = VecDeque::new();
        for i in 0..header.count {
            let what = || format!("item {i} of {}", header.count);
            let at = s.at;
            let item: ItemIn = s.next(what)?;
            items.push_back(material(party, item).map_err(|reason| s.error(at, &what(), reason))?);
        }
        s.finish()?;
        Ok(Preprocessing::new(party, items, header.offline_bytes))
    }
}

struct SeededJob<'r> {
    party: Party,
    requests: &'r [Request],
    out_shape: expand::OutShape<'r>,
}

impl Job for SeededJob<'_> {
    type Out = Preprocessing;
    fn run<C: Config>(self, s: &mut Section<'_, C>) -> Result<Preprocessing> {
        let header: Header = s.next(|| "the section header".into())?;
        if header.count != self.requests.len() as u64 {
            let reason = format!("{} items, the plan has {} requests", header.count, self.requests.len());
            return Err(s.error(0, "the section header", reason));
        }
        let origin: Origin = s.next(|| "the origin (stream key and deal)".into())?;
        let mut items = VecDeque::new();
        for (i, req) in self.requests.iter().enumerate() {
            let what = || format!("item {i} of {} ({})", header.count, req.name());
            let at = s.at;
            let ex: expand::Explicit<Vec<u64>, &[u8]> = s.next(what)?;
            let mut rng = expand::request_stream(&origin.key, origin.deal, i);
            let m =
                expand::expand(self.party, req, self.out_shape, &mut rng, ex).map_err(|r| s.error(at, &what(), r))?;
            items.push_back(m);
        }
        s.finish()?;
        Ok(Preprocessing::new(self.party, items, header.offline_bytes))
    }
}

struct ModelJob(Party);

impl Job for ModelJob {
    type Out = ModelMaterial;
    fn run<C: Config>(self, s: &mut Section<'_, C>) -> Result<ModelMaterial> {
        let header: Header = s.next(|| "the section header".into())?;
        let mut layers = Vec::new();
        for i in 0..header.count {
            let what = || format!("linear layer {i} of {}", header.count);
            let at = s.at;
            let layer: Layer<Vec<u64>> = s.next(what)?;
            let bad = |reason| s.error(at, &what(), reason);
            let id =
                usize::try_from(layer.id).map_err(|_| bad(format!("layer id {} does not fit in usize", layer.id)))?;
            let a = tensor(layer.a).map_err(bad)?;
            if a.shape() != layer.kind.weight_shape().as_slice() {
                return Err(bad(format!(
                    "weight mask of layer {id} has shape {:?}, its kind says {:?}",
                    a.shape(),
                    layer.kind.weight_shape()
                )));
            }
            layers.push((id, layer.kind, a));
        }
        s.finish()?;
        Ok(ModelMaterial { party: self.0, layers, offline_bytes: header.offline_bytes })
    }
}

/// Runs `job` on `bytes` under [`CONFIG`] limited to [`decode_limit`]`(bytes.len())`. bincode's
/// limit is a const generic, so each power of two is its own instantiation.
fn with_limit<J: Job>(bytes: &[u8], during: &'static str, job: J) -> Result<J::Out> {
    let Some(limit) = decode_limit(bytes.len()) else {
        return Err(MpcError::Decode {
            during,
            reason: format!(
                "a section of {} bytes is longer than this build decodes (2^{} bytes)",
                bytes.len(),
                MAX_LIMIT_BITS - 1
            ),
        });
    };
    macro_rules! by_limit {
        ($($bits:literal)*; $($bits64:literal)*) => {
            match limit.trailing_zeros() {
                $($bits => job.run(&mut Section::new(bytes, during, CONFIG.with_limit::<{ 1usize << $bits }>(), limit)),)*
                $(#[cfg(target_pointer_width = "64")]
                $bits64 => job.run(&mut Section::new(bytes, during, CONFIG.with_limit::<{ 1usize << $bits64 }>(), limit)),)*
                bits => Err(MpcError::Decode { during, reason: format!("no decode limit of 2^{bits} bytes") }),
            }
        };
    }
    by_limit!(12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31; 32 33 34 35 36 37 38 39 40)
}

/// A section being decoded: its bytes, the offset reached, and the limited configuration.
struct Section<'a, C> {
    bytes: &'a [u8],
    at: usize,
    during: &'static str,
    config: C,
    limit: usize,
}

impl<'a, C: Config> Section<'a, C> {
    fn new(bytes: &'a [u8], during: &'static str, config: C, limit: usize) -> Self {
        Section { bytes, at: 0, during, config, limit }
    }

    fn error(&self, at: usize, what: &str, reason: String) -> MpcError {
        MpcError::Decode { during: self.during, reason: format!("at byte {at}: {what}: {reason}") }
    }

    /// Decodes the next value; `what` names it in errors.
    fn next<T: bincode::BorrowDecode<'a, ()>>(&mut self, what: impl Fn() -> String) -> Result<T> {
        let rest = &self.bytes[self.at..];
        match bincode::borrow_decode_from_slice(rest, self.config) {
            Ok((v, used)) => {
                self.at += used;
                Ok(v)
            }
            Err(e) => Err(self.error(self.at, &what(), self.explain(e, rest.len()))),
        }
    }

    fn explain(&self, e: DecodeError, left: usize) -> String {
        match e {
            DecodeError::UnexpectedEnd { additional } => {
                format!("truncated: needs at least {additional} more bytes, {left} left in the section")
            }
            DecodeError::LimitExceeded => format!(
                "a length field claims more than the section of {} bytes can hold (decode limit {} bytes)",
                self.bytes.len(),
                self.limit
            ),
            DecodeError::UnexpectedVariant { type_name, found, .. } => format!("unknown {type_name} tag {found}"),
            DecodeError::OutsideUsizeRange(v) => format!("{v} does not fit in usize"),
            e => e.to_string(),
        }
    }

    fn finish(&self) -> Result<()> {
        if self.at != self.bytes.len() {
            let reason = format!("{} trailing bytes", self.bytes.len() - self.at);
            return Err(self.error(self.at, "the end of the section", reason));
        }
        Ok(())
    }
}

/// Checks a decoded tensor (its shape against its words) and builds it.
fn tensor(t: Tensor<Vec<u64>>) -> std::result::Result<ArrayD<u64>, String> {
    let n = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if n != Some(t.words.len()) {
        return Err(format!("a tensor of shape {:?} with {} words", t.shape, t.words.len()));
    }
    ArrayD::from_shape_vec(IxDyn(&t.shape), t.words).map_err(|e| format!("a tensor of shape {:?}: {e}", t.shape))
}

fn same_len(lens: &[usize], what: &str) -> std::result::Result<(), String> {
    if lens.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!("{what} of different lengths {lens:?}"));
    }
    Ok(())
}

/// Checks decoded comparison material and rebuilds its DCF key batch.
fn cmp(party: Party, c: Cmp<Vec<u64>, &[u8]>) -> std::result::Result<CmpMaterial, String> {
    super::check_bits(c.bits).map_err(|e| e.to_string())?;
    let (n, len) = (c.bits - 1, c.r.len());
    let check_keys = |got: usize, each: usize, what: &str| {
        if Some(got) != len.checked_mul(each) {
            return Err(format!(
                "{got} bytes of {what} keys for {len} comparisons of {} bits (keys of {each} bytes)",
                c.bits
            ));
        }
        Ok(())
    };
    let keys = match c.keys {
        Keys::OneRound { mr, mrr, keys } => {
            same_len(&[len, mr.len(), mrr.len()], "comparison vectors r, m_r, m_r·r")?;
            check_keys(keys.len(), key_bytes(n), "dcf")?;
            let keys = DcfKeyBatch::from_bytes(party, n, len, keys).map_err(|e| e.to_string())?;
            CmpKeys::OneRound { mr, mrr, keys }
        }
        Keys::Compact { mu, lam, lamr, keys } => {
            same_len(&[len, mu.len(), lam.len(), lamr.len()], "comparison vectors r, μ, λ, λ·r")?;
            if let Some(b) = mu.iter().find(|&&b| b > 1) {
                return Err(format!("a select bit μ of value {b} (bits are 0 or 1)"));
            }
            check_keys(keys.len(), bit_key_bytes(n), "compact dcf")?;
            let keys = BitDcfBatch::from_bytes(party, n, len, keys).map_err(|e| e.to_string())?;
            CmpKeys::Compact { mu: mu.to_vec(), lam, lamr, keys }
        }
    };
    Ok(CmpMaterial { bits: c.bits, r: c.r, keys })
}

/// Checks one decoded item and turns it into material.
fn material(party: Party, item: ItemIn<'_>) -> std::result::Result<Material, String> {
    Ok(match item {
        Item::Mul { a, b, c } => {
            same_len(&[a.len(), b.len(), c.len()], "triple vectors")?;
            Material::Mul { a, b, c }
        }
        Item::Square { a, a2 } => {
            same_len(&[a.len(), a2.len()], "square pair vectors")?;
            Material::Square { a, a2 }
        }
        Item::Cmp(c) => Material::Cmp(cmp(party, c)?),
        Item::MaskedAct { cmp: c, a, a2 } => {
            let cmp = cmp(party, c)?;
            same_len(&[a.len(), a2.len()], "square pair vectors")?;
            Material::MaskedAct { cmp, a, a2 }
        }
        Item::Linear { layer, input_shape, b, c } => {
            let layer = usize::try_from(layer).map_err(|_| format!("layer id {layer} does not fit in usize"))?;
            let (b, c) = (tensor(b)?, tensor(c)?);
            if b.shape() != input_shape.as_slice() {
                return Err(format!("input mask of shape {:?} for input {input_shape:?}", b.shape()));
            }
            Material::Linear { layer, input_shape, b, c, eb: None }
        }
        Item::MatMul { batch, m, k, n, a, b, c } => {
            // The dimensions only label the vectors: nothing is sized from them.
            let dims = [batch, m, k, n].map(usize::try_from);
            let [Ok(batch), Ok(m), Ok(k), Ok(n)] = dims else {
                return Err(format!("matmul dimensions {:?} do not fit in usize", [batch, m, k, n]));
            };
            if super::request::matmul_words(batch, m, k, n) != Some((a.len(), b.len(), c.len())) {
                return Err(format!(
                    "matmul [{batch}, {m}, {k}] · [{batch}, {k}, {n}] with vectors of {}, {} and {} words",
                    a.len(),
                    b.len(),
                    c.len()
                ));
            }
            Material::MatMul { batch, m, k, n, a, b, c }
        }
    })
}

/// The requests a queue answers, in order (for checking a file against a model's plan).
pub fn requests_of(p: &Preprocessing) -> Vec<Request> {
    p.items()
        .map(|m| match m {
            Material::Mul { a, .. } => Request::Mul { n: a.len() },
            Material::Square { a, .. } => Request::Square { n: a.len() },
            Material::Cmp(c) => Request::Cmp { n: c.len(), bits: c.bits, mode: c.mode() },
            Material::MaskedAct { cmp, a, .. } => {
                Request::MaskedAct { relus: cmp.len(), squares: a.len(), bits: cmp.bits, mode: cmp.mode() }
            }
            Material::Linear { layer, input_shape, .. } => {
                Request::Linear { layer: *layer, input_shape: input_shape.clone() }
            }
            &Material::MatMul { batch, m, k, n, .. } => Request::MatMul { batch, m, k, n },
        })
        .collect()
}
