//! The correlated randomness one party holds, and the queue the online phase consumes.

use std::collections::VecDeque;

use ndarray::ArrayD;

use crate::dcf::{BitDcfBatch, DcfKeyBatch};
use crate::dealer::request::{CmpMode, LayerId, LinearKind, Request, matmul_words};
use crate::error::{MpcError, Result};
use crate::party::Party;

/// One party's material for `n` comparisons (DReLU / ReLU).
#[derive(Debug)]
pub struct CmpMaterial {
    /// Bit width of the compared values (the DCF runs on `bits - 1` bits).
    pub bits: u32,
    /// Share of the input mask `r`.
    pub r: Vec<u64>,
    /// The mode's keys and correlations.
    pub keys: CmpKeys,
}

/// The per-mode part of [`CmpMaterial`] (`m_r` is bit `bits - 1` of `r`).
#[derive(Debug)]
pub enum CmpKeys {
    /// [`CmpMode::OneRound`].
    OneRound {
        /// Share of `m_r`.
        mr: Vec<u64>,
        /// Share of `m_r · r`.
        mrr: Vec<u64>,
        /// DCF keys for `1{y < r mod 2^(bits-1)}` with payload `(1 - 2 m_r, (1 - 2 m_r) · r)`.
        keys: DcfKeyBatch,
    },
    /// [`CmpMode::Compact`], with a random select bit `λ` per comparison.
    Compact {
        /// XOR share (0/1) of `m_r ⊕ λ`.
        mu: Vec<u8>,
        /// Arithmetic share of `λ`.
        lam: Vec<u64>,
        /// Arithmetic share of `λ · r`.
        lamr: Vec<u64>,
        /// One-bit DCF keys for `1{y < r mod 2^(bits-1)}`.
        keys: BitDcfBatch,
    },
}

impl CmpMaterial {
    /// Number of comparisons.
    pub fn len(&self) -> usize {
        self.r.len()
    }

    /// True when there are no comparisons.
    pub fn is_empty(&self) -> bool {
        self.r.is_empty()
    }

    /// The mode this material is for.
    pub fn mode(&self) -> CmpMode {
        match self.keys {
            CmpKeys::OneRound { .. } => CmpMode::OneRound,
            CmpKeys::Compact { .. } => CmpMode::Compact,
        }
    }
}

/// One item of a party's preprocessing, answering one [`Request`].
#[derive(Debug)]
pub enum Material {
    /// Beaver triples: shares of `a`, `b`, `c = a·b`.
    Mul { a: Vec<u64>, b: Vec<u64>, c: Vec<u64> },
    /// Square pairs: shares of `a`, `a²`.
    Square { a: Vec<u64>, a2: Vec<u64> },
    /// Comparisons.
    Cmp(CmpMaterial),
    /// A masked activation: comparisons for the mask-1 elements and square pairs for the
    /// polynomial (mask-0) elements.
    MaskedAct { cmp: CmpMaterial, a: Vec<u64>, a2: Vec<u64> },
    /// A linear layer's per-inference triple: shares of `B` (input-shaped) and `C = op(A, B)`;
    /// `eb` is `op(E, [B])`, filled in by the party itself offline ([`crate::protocols::precompute`]).
    Linear { layer: LayerId, input_shape: Vec<usize>, b: ArrayD<u64>, c: ArrayD<u64>, eb: Option<ArrayD<u64>> },
    /// A matrix triple for a product of two secret tensors `[batch, m, k] · [batch, k, n]`:
    /// shares of `a` (`batch·m·k` words), `b` (`batch·k·n`) and `c = a·b` per batch
    /// (`batch·m·n`), all row-major. The dimensions are kept because the lengths alone do not
    /// fix them (`[4, 1, 1, 1]` and `[1, 2, 2, 2]` have the same three lengths).
    MatMul { batch: usize, m: usize, k: usize, n: usize, a: Vec<u64>, b: Vec<u64>, c: Vec<u64> },
}

impl Material {
    /// The request this material answers (for mismatch messages).
    pub fn describe(&self) -> String {
        match self {
            Material::Mul { a, .. } => format!("mul (n = {})", a.len()),
            Material::Square { a, .. } => format!("square (n = {})", a.len()),
            Material::Cmp(c) => format!("cmp (n = {}, bits = {}, {})", c.len(), c.bits, c.mode()),
            Material::MaskedAct { cmp, a, .. } => {
                format!(
                    "masked_act (relus = {}, squares = {}, bits = {}, {})",
                    cmp.len(),
                    a.len(),
                    cmp.bits,
                    cmp.mode()
                )
            }
            Material::Linear { layer, input_shape, .. } => format!("linear (layer {layer}, input {input_shape:?})"),
            Material::MatMul { batch, m, k, n, .. } => describe_matmul(*batch, *m, *k, *n),
        }
    }

    /// Whether this material answers `req` exactly.
    pub fn answers(&self, req: &Request) -> bool {
        match (self, req) {
            (Material::Mul { a, .. }, Request::Mul { n }) => a.len() == *n,
            (Material::Square { a, .. }, Request::Square { n }) => a.len() == *n,
            (Material::Cmp(c), Request::Cmp { n, bits, mode }) => c.len() == *n && c.bits == *bits && c.mode() == *mode,
            (Material::MaskedAct { cmp, a, .. }, Request::MaskedAct { relus, squares, bits, mode }) => {
                cmp.len() == *relus && a.len() == *squares && cmp.bits == *bits && cmp.mode() == *mode
            }
            (Material::Linear { layer, input_shape, .. }, Request::Linear { layer: l, input_shape: s }) => {
                layer == l && input_shape == s
            }
            (Material::MatMul { batch, m, k, n, a, b, c }, Request::MatMul { batch: rb, m: rm, k: rk, n: rn }) => {
                (batch, m, k, n) == (rb, rm, rk, rn)
                    && matmul_words(*rb, *rm, *rk, *rn) == Some((a.len(), b.len(), c.len()))
            }
            _ => false,
        }
    }
}

fn describe_request(req: &Request) -> String {
    match req {
        Request::Mul { n } => format!("mul (n = {n})"),
        Request::Square { n } => format!("square (n = {n})"),
        Request::Cmp { n, bits, mode } => format!("cmp (n = {n}, bits = {bits}, {mode})"),
        Request::MaskedAct { relus, squares, bits, mode } => {
            format!("masked_act (relus = {relus}, squares = {squares}, bits = {bits}, {mode})")
        }
        Request::Linear { layer, input_shape } => format!("linear (layer {layer}, input {input_shape:?})"),
        Request::MatMul { batch, m, k, n } => describe_matmul(*batch, *m, *k, *n),
    }
}

fn describe_matmul(batch: usize, m: usize, k: usize, n: usize) -> String {
    format!("matmul (batch = {batch}, m = {m}, k = {k}, n = {n})")
}

/// One party's model-load material: its share of each linear layer's weight mask `A`.
#[derive(Debug)]
pub struct ModelMaterial {
    /// Whose material this is.
    pub party: Party,
    /// `(layer, kind, share of A)` for every linear layer.
    pub layers: Vec<(LayerId, LinearKind, ArrayD<u64>)>,
    /// Bytes a real dealer sends this party for it.
    pub offline_bytes: u64,
}

/// One party's queue of per-inference material, consumed in order by the online phase.
#[derive(Debug)]
pub struct Preprocessing {
    party: Party,
    items: VecDeque<Material>,
    offline_bytes: u64,
}

impl Preprocessing {
    pub(crate) fn new(party: Party, items: VecDeque<Material>, offline_bytes: u64) -> Self {
        Preprocessing { party, items, offline_bytes }
    }

    /// An empty queue (for computations that need no correlated randomness).
    pub fn empty(party: Party) -> Self {
        Preprocessing { party, items: VecDeque::new(), offline_bytes: 0 }
    }

    /// Whose material this is.
    pub fn party(&self) -> Party {
        self.party
    }

    /// Items left.
    pub fn remaining(&self) -> usize {
        self.items.len()
    }

    /// Bytes a real dealer sends this party for the whole queue (seed-compressed, see [`crate::dealer`]).
    pub fn offline_bytes(&self) -> u64 {
        self.offline_bytes
    }

    /// Appends another queue (of the same party) behind this one.
    pub fn extend(&mut self, other: Preprocessing) -> Result<()> {
        if other.party != self.party {
            return Err(MpcError::WrongParty {
                op: "preprocessing extend".into(),
                expected: self.party,
                got: other.party,
            });
        }
        self.items.extend(other.items);
        self.offline_bytes += other.offline_bytes;
        Ok(())
    }

    /// Takes the next item, which must answer `req`.
    pub fn take(&mut self, op: &str, req: &Request) -> Result<Material> {
        match self.items.front() {
            None => Err(MpcError::PreprocessingExhausted {
                op: op.into(),
                needed: describe_request(req),
                available: "nothing".into(),
            }),
            Some(m) if !m.answers(req) => Err(MpcError::PreprocessingMismatch {
                op: op.into(),
                expected: describe_request(req),
                found: m.describe(),
            }),
            Some(_) => Ok(self.items.pop_front().expect("front exists")),
        }
    }

    /// The queued items, in order.
    pub fn items(&self) -> impl Iterator<Item = &Material> {
        self.items.iter()
    }

    /// Mutable access to the queued items (for offline precomputation).
    pub(crate) fn items_mut(&mut self) -> impl Iterator<Item = &mut Material> {
        self.items.iter_mut()
    }
}
