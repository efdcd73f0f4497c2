//! What each masq protocol step costs: the [`Cost`] type and one function per step. The rest of
//! the cost model (latency, published protocols) builds on this file; it imports neither.

use std::ops::{Add, AddAssign};

use crate::dealer::{self, CmpMode, LinearKind, Request};
use crate::error::Result;
use crate::party::Party;
use crate::protocols::pool::{PoolParams, maxpool_requests};
use crate::transport::FRAME_HEADER_BYTES;

/// Communication cost of a computation (or of one step).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Cost {
    /// Online bytes P0 → P1 (framing included).
    pub p0_to_p1: u64,
    /// Online bytes P1 → P0 (framing included).
    pub p1_to_p0: u64,
    /// Online rounds.
    pub rounds: u64,
    /// Bytes the dealer sends P0.
    pub offline_p0: u64,
    /// Bytes the dealer sends P1.
    pub offline_p1: u64,
}

impl Cost {
    /// Online bytes, both directions.
    pub fn online_bytes(&self) -> u64 {
        self.p0_to_p1 + self.p1_to_p0
    }

    /// Offline bytes, both parties.
    pub fn offline_bytes(&self) -> u64 {
        self.offline_p0 + self.offline_p1
    }

    /// Bytes in the busier direction.
    pub fn max_direction_bytes(&self) -> u64 {
        self.p0_to_p1.max(self.p1_to_p0)
    }
}

impl Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            p0_to_p1: self.p0_to_p1 + o.p0_to_p1,
            p1_to_p0: self.p1_to_p0 + o.p1_to_p0,
            rounds: self.rounds + o.rounds,
            offline_p0: self.offline_p0 + o.offline_p0,
            offline_p1: self.offline_p1 + o.offline_p1,
        }
    }
}

impl AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        *self = *self + o;
    }
}

impl std::iter::Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(iter: I) -> Cost {
        iter.fold(Cost::default(), Add::add)
    }
}

/// Bytes of one frame carrying `words` ring elements.
pub fn frame_bytes(words: usize) -> u64 {
    FRAME_HEADER_BYTES as u64 + 8 * words as u64
}

/// A symmetric exchange of `words` elements each way: one round.
pub fn exchange(words: usize) -> Cost {
    Cost { p0_to_p1: frame_bytes(words), p1_to_p0: frame_bytes(words), rounds: 1, ..Cost::default() }
}

fn with_offline(mut c: Cost, req: &Request) -> Cost {
    let (o0, o1) = dealer::offline::bytes(req, &|_| None).unwrap_or((0, 0));
    c.offline_p0 = o0;
    c.offline_p1 = o1;
    c
}

/// Opening `n` elements.
pub fn open(n: usize) -> Cost {
    exchange(n)
}

/// Revealing `n` elements to one party (`to`): one message from the other party.
pub fn reveal(n: usize, to: Party) -> Cost {
    let b = frame_bytes(n);
    match to {
        Party::P1 => Cost { p0_to_p1: b, rounds: 1, ..Cost::default() },
        Party::P0 => Cost { p1_to_p0: b, rounds: 1, ..Cost::default() },
    }
}

/// `n` Beaver products.
pub fn mul(n: usize) -> Cost {
    with_offline(exchange(2 * n), &Request::Mul { n })
}

/// A product of two secret tensors `[batch, m, k]·[batch, k, n]` ([`crate::protocols::matmul`]):
/// one exchange of `E` and `F`, `batch·(m·k + k·n)` words each way, in one round; offline
/// `C1`, `8·batch·m·n` bytes to P1 (P0's material is all seed-expanded).
pub fn matmul(batch: usize, m: usize, k: usize, n: usize) -> Cost {
    with_offline(exchange(batch * (m * k + k * n)), &Request::MatMul { batch, m, k, n })
}

/// `n` Beaver squares.
pub fn square(n: usize) -> Cost {
    with_offline(exchange(n), &Request::Square { n })
}

/// The select round of `n` compact-mode comparisons: the masked DReLU bits, packed 64 to a word.
fn select_round(n: usize, mode: CmpMode) -> Cost {
    match mode {
        CmpMode::Compact if n > 0 => exchange(n.div_ceil(64)),
        _ => Cost::default(),
    }
}

/// `n` ReLUs or DReLUs on `bits`-bit values.
pub fn cmp(n: usize, bits: u32, mode: CmpMode) -> Cost {
    with_offline(exchange(n) + select_round(n, mode), &Request::Cmp { n, bits, mode })
}

/// A masked activation with `relus` comparisons and `squares` polynomial squares.
pub fn masked_act(relus: usize, squares: usize, bits: u32, mode: CmpMode) -> Cost {
    if relus + squares == 0 {
        return Cost::default();
    }
    with_offline(
        exchange(relus + squares) + select_round(relus, mode),
        &Request::MaskedAct { relus, squares, bits, mode },
    )
}

/// A linear layer on an input of `input_shape` (online opening of `F`; offline `C1` to P1).
pub fn linear(kind: &LinearKind, input_shape: &[usize]) -> Result<Cost> {
    let out = kind.output_shape(input_shape)?;
    let mut c = exchange(input_shape.iter().product());
    c.offline_p1 = 8 * out.iter().product::<usize>() as u64;
    Ok(c)
}

/// Model load: opening `E = W - A` for all layers at once (`weights` elements in total).
pub fn linear_setup(weights: usize) -> Cost {
    exchange(weights)
}

/// A MaxPool over `input_shape` (NCHW).
pub fn maxpool(input_shape: &[usize], p: &PoolParams, bits: u32, mode: CmpMode) -> Result<Cost> {
    Ok(maxpool_requests(input_shape, p, bits, mode)?
        .iter()
        .map(|r| match r {
            Request::Cmp { n, bits, mode } => cmp(*n, *bits, *mode),
            _ => unreachable!("maxpool asks for comparisons only"),
        })
        .sum())
}

/// The seeds a dealer sends once per deal (both parties).
pub fn deal_overhead() -> Cost {
    Cost { offline_p0: dealer::SEED_BYTES, offline_p1: dealer::SEED_BYTES, ..Cost::default() }
}
