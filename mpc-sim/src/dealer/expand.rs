//! Seed expansion: which values of a party's material come from its stream, and rebuilding them.
//!
//! Every value that is uniformly random in a party's view is drawn by the dealer from a stream
//! it shares with that party ([`request_stream`]: request `i` of deal `d` forks the party's
//! 32-byte stream key at `(d, i)`). A seed-expanded dealer file therefore holds the key, the deal
//! index, and per request only what the stream cannot give: the *explicit* values (P1's
//! corrections such as `c1 = ab − c0`) and the DCF keys. The reader draws the rest in the order
//! the dealer drew them:
//!
//! ```text
//! request      P0 draws (in order)          P1 draws         P1 explicit
//! Mul          a, b, c                      a, b             c
//! Square       a, a2                        a                a2
//! Cmp 1-round  r, m_r, m_r·r                r                m_r, m_r·r
//! Cmp compact  r, μ (one word per bit), λ, λ·r   r           μ (packed bits), λ, λ·r
//! MaskedAct    its Cmp part, then a, a2     Cmp part, a      Cmp part, a2
//! Linear       B, C                         B                C
//! MatMul       A, B, C                      A, B             C        (C = A·B per batch)
//! ```
//! DCF keys are explicit for both parties (their correction words are common to both keys).
//! Sizes come from the requests the reader expects (its own plan of the public model), never from
//! the file, so a hostile file cannot make the reader allocate more than its plan needs; each
//! explicit vector must have exactly the planned length.

use ndarray::{ArrayD, IxDyn};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;

use super::material::{CmpKeys, CmpMaterial, Material};
use super::request::{CmpMode, LayerId, Request};
use crate::dcf::{BitDcfBatch, DcfKeyBatch, bit_key_bytes, key_bytes};
use crate::party::Party;

/// Most words of one linear layer's input or output mask, or of one operand of a product of two
/// secret tensors: a plan's shapes beyond it are refused rather than allocated.
const MAX_LINEAR_WORDS: usize = 1 << 32;

/// Where a party's seed-expanded material comes from: its stream key and the deal's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Origin {
    /// The party's 32-byte stream key (shared with the dealer only).
    pub key: [u8; 32],
    /// Index of the deal (one per inference).
    pub deal: u64,
}

/// A linear layer's output shape for an input shape (`None`: no such layer), from the model material.
pub type OutShape<'a> = &'a dyn Fn(LayerId, &[usize]) -> Option<Vec<usize>>;

/// Bytes of an [`Origin`] in a file.
pub const ORIGIN_BYTES: u64 = 40;

/// The stream of request `index` of deal `deal` under `key`.
pub fn request_stream(key: &[u8; 32], deal: u64, index: usize) -> ChaCha12Rng {
    let mut r = ChaCha12Rng::from_seed(*key);
    r.set_stream(deal);
    r.set_word_pos(index as u128 * 8);
    let mut s = [0u8; 32];
    r.fill_bytes(&mut s);
    ChaCha12Rng::from_seed(s)
}

/// The values of one item that a party cannot expand (empty vectors where it expands them).
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::BorrowDecode)]
pub enum Explicit<W, K> {
    Mul { c: W },
    Square { a2: W },
    Cmp(ExplicitCmp<W, K>),
    MaskedAct { cmp: ExplicitCmp<W, K>, a2: W },
    Linear { c: W },
    MatMul { c: W },
}

/// The explicit part of comparison material.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::BorrowDecode)]
pub enum ExplicitCmp<W, K> {
    OneRound { mr: W, mrr: W, keys: K },
    Compact { mu: K, lam: W, lamr: W, keys: K },
}

/// Bits (0/1 bytes) packed eight to a byte, least significant first.
fn pack_bits(bits: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, &b) in bits.iter().enumerate() {
        out[i / 8] |= (b & 1) << (i % 8);
    }
    out
}

fn draw(rng: &mut ChaCha12Rng, n: usize) -> Vec<u64> {
    (0..n).map(|_| rng.next_u64()).collect()
}

fn none(party: Party, v: &[u64]) -> &[u64] {
    if party == Party::P0 { &[] } else { v }
}

fn cmp_explicit(party: Party, c: &CmpMaterial) -> ExplicitCmp<&[u64], Vec<u8>> {
    match &c.keys {
        CmpKeys::OneRound { mr, mrr, keys } => {
            ExplicitCmp::OneRound { mr: none(party, mr), mrr: none(party, mrr), keys: keys.to_bytes() }
        }
        CmpKeys::Compact { mu, lam, lamr, keys } => ExplicitCmp::Compact {
            mu: if party == Party::P0 { Vec::new() } else { pack_bits(mu) },
            lam: none(party, lam),
            lamr: none(party, lamr),
            keys: keys.to_bytes(),
        },
    }
}

/// The explicit part of `party`'s item `m`.
pub fn explicit(party: Party, m: &Material) -> Explicit<&[u64], Vec<u8>> {
    match m {
        Material::Mul { c, .. } => Explicit::Mul { c: none(party, c) },
        Material::Square { a2, .. } => Explicit::Square { a2: none(party, a2) },
        Material::Cmp(c) => Explicit::Cmp(cmp_explicit(party, c)),
        Material::MaskedAct { cmp, a2, .. } => {
            Explicit::MaskedAct { cmp: cmp_explicit(party, cmp), a2: none(party, a2) }
        }
        Material::Linear { c, .. } => Explicit::Linear {
            c: if party == Party::P0 { &[] } else { c.as_slice().expect("dealt in standard layout") },
        },
        Material::MatMul { c, .. } => Explicit::MatMul { c: none(party, c) },
    }
}

/// Checks an explicit vector's length: `want` at P1, empty at P0.
fn take(party: Party, v: Vec<u64>, want: usize, what: &str) -> Result<Option<Vec<u64>>, String> {
    let want_here = if party == Party::P0 { 0 } else { want };
    if v.len() != want_here {
        return Err(format!("{what}: {} words, the plan needs {want_here}", v.len()));
    }
    Ok((party == Party::P1).then_some(v))
}

fn expand_cmp(
    party: Party,
    rng: &mut ChaCha12Rng,
    n: usize,
    bits: u32,
    mode: CmpMode,
    ex: ExplicitCmp<Vec<u64>, &[u8]>,
) -> Result<CmpMaterial, String> {
    let r = draw(rng, n);
    let keys = match (mode, ex) {
        (CmpMode::OneRound, ExplicitCmp::OneRound { mr, mrr, keys }) => {
            let mr = take(party, mr, n, "m_r")?.unwrap_or_else(|| draw(rng, n));
            let mrr = take(party, mrr, n, "m_r·r")?.unwrap_or_else(|| draw(rng, n));
            if keys.len() != n * key_bytes(bits - 1) {
                return Err(format!("{} bytes of dcf keys, the plan needs {}", keys.len(), n * key_bytes(bits - 1)));
            }
            let keys = DcfKeyBatch::from_bytes(party, bits - 1, n, keys).map_err(|e| e.to_string())?;
            CmpKeys::OneRound { mr, mrr, keys }
        }
        (CmpMode::Compact, ExplicitCmp::Compact { mu, lam, lamr, keys }) => {
            let mu: Vec<u8> = if party == Party::P0 {
                if !mu.is_empty() {
                    return Err(format!("μ: {} bytes, the plan needs none at P0", mu.len()));
                }
                (0..n).map(|_| (rng.next_u64() & 1) as u8).collect()
            } else {
                if mu.len() != n.div_ceil(8) {
                    return Err(format!("μ: {} bytes, the plan needs {} (one bit each)", mu.len(), n.div_ceil(8)));
                }
                (0..n).map(|i| (mu[i / 8] >> (i % 8)) & 1).collect()
            };
            let lam = take(party, lam, n, "λ")?.unwrap_or_else(|| draw(rng, n));
            let lamr = take(party, lamr, n, "λ·r")?.unwrap_or_else(|| draw(rng, n));
            if keys.len() != n * bit_key_bytes(bits - 1) {
                return Err(format!(
                    "{} bytes of compact dcf keys, the plan needs {}",
                    keys.len(),
                    n * bit_key_bytes(bits - 1)
                ));
            }
            let keys = BitDcfBatch::from_bytes(party, bits - 1, n, keys).map_err(|e| e.to_string())?;
            CmpKeys::Compact { mu, lam, lamr, keys }
        }
        (mode, _) => return Err(format!("comparison material of the other mode, the plan needs {mode}")),
    };
    Ok(CmpMaterial { bits, r, keys })
}

/// Rebuilds `party`'s item for `req` from its stream `rng` and the file's explicit values.
/// `out_shape(layer, input_shape)` is a linear layer's output shape (from the model material).
pub fn expand(
    party: Party,
    req: &Request,
    out_shape: OutShape<'_>,
    rng: &mut ChaCha12Rng,
    ex: Explicit<Vec<u64>, &[u8]>,
) -> Result<Material, String> {
    Ok(match (req, ex) {
        (Request::Mul { n }, Explicit::Mul { c }) => {
            let (a, b) = (draw(rng, *n), draw(rng, *n));
            let c = take(party, c, *n, "c")?.unwrap_or_else(|| draw(rng, *n));
            Material::Mul { a, b, c }
        }
        (Request::Square { n }, Explicit::Square { a2 }) => {
            let a = draw(rng, *n);
            let a2 = take(party, a2, *n, "a²")?.unwrap_or_else(|| draw(rng, *n));
            Material::Square { a, a2 }
        }
        (Request::Cmp { n, bits, mode }, Explicit::Cmp(c)) => {
            Material::Cmp(expand_cmp(party, rng, *n, *bits, *mode, c)?)
        }
        (Request::MaskedAct { relus, squares, bits, mode }, Explicit::MaskedAct { cmp, a2 }) => {
            let cmp = expand_cmp(party, rng, *relus, *bits, *mode, cmp)?;
            let a = draw(rng, *squares);
            let a2 = take(party, a2, *squares, "a²")?.unwrap_or_else(|| draw(rng, *squares));
            Material::MaskedAct { cmp, a, a2 }
        }
        (Request::Linear { layer, input_shape }, Explicit::Linear { c }) => {
            let out = out_shape(*layer, input_shape).ok_or_else(|| format!("no linear layer {layer} in the model"))?;
            let product = |dims: &[usize]| {
                dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n <= MAX_LINEAR_WORDS).ok_or_else(
                    || format!("linear layer {layer}: shape {dims:?} has more than {MAX_LINEAR_WORDS} elements"),
                )
            };
            let b = draw(rng, product(input_shape)?);
            let len = product(&out)?;
            let c = take(party, c, len, "C")?.unwrap_or_else(|| draw(rng, len));
            let b = ArrayD::from_shape_vec(IxDyn(input_shape), b).expect("planned length");
            let c = ArrayD::from_shape_vec(IxDyn(&out), c).expect("checked length");
            Material::Linear { layer: *layer, input_shape: input_shape.clone(), b, c, eb: None }
        }
        (&Request::MatMul { batch, m, k, n }, Explicit::MatMul { c }) => {
            let (la, lb, lc) = super::request::matmul_words(batch, m, k, n)
                .filter(|&(a, b, c)| a.max(b).max(c) <= MAX_LINEAR_WORDS)
                .ok_or_else(|| {
                    let dims = format!("[{batch}, {m}, {k}] · [{batch}, {k}, {n}]");
                    format!("matmul {dims}: an operand has more than {MAX_LINEAR_WORDS} elements")
                })?;
            let (a, b) = (draw(rng, la), draw(rng, lb));
            let c = take(party, c, lc, "C")?.unwrap_or_else(|| draw(rng, lc));
            Material::MatMul { batch, m, k, n, a, b, c }
        }
        (req, _) => return Err(format!("an item of another kind, the plan needs {}", req.name())),
    })
}
