//! The dealer: the offline phase.
//!
//! The dealer D produces correlated randomness before the inputs exist and hands each party its
//! half. Everything is derived from one seed, so a run is reproducible.
//!
//! ```text
//!            seed_0 (16 B)                      seed_1 (16 B) + corrections
//!   D ─────────────────────────▶ P0      D ─────────────────────────────────▶ P1
//!   │  P0's shares of a, b, c, r, m_r, A, B, C are expanded from seed_0
//!   │  P1's shares of a, b, r, A, B are expanded from seed_1; c1 = ab - c0, m_r1, (m_r r)_1,
//!   │  C1 = op(A,B) - C0 (and, for a product of two secret tensors, C1 = AB - C0) are sent
//!   │  explicitly
//!   └─ DCF keys: each party's root seed and the correction words (common to both keys) are sent to both
//! ```
//!
//! **Seed compression.** A real dealer shares a PRG seed with each party; every value that is
//! uniformly random in a party's view (its share of `a`, `b`, `r`, the weight mask `A`, the
//! input mask `B`, and P0's shares of products) is expanded from that seed instead of being
//! sent. This simulator expands the same values from the same per-party streams, so the byte
//! counts it reports ([`Preprocessing::offline_bytes`]) are what such a dealer really sends:
//! 16 bytes of seed per party and deal, plus the explicit corrections above and the DCF keys.
//!
//! **Per-request streams.** Request `i` of deal `d` draws from its own streams, forked from the
//! per-party keys at `(d, i)`, so a deal can be produced in any order: on two threads
//! ([`Dealer::deal`]) or segment by segment while the online phase runs ([`stream`]), with the
//! same material.

pub mod codec;
pub mod expand;
pub mod material;
pub mod request;
pub mod section_reader;
pub mod stream;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn, Zip};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;

pub use material::{CmpKeys, CmpMaterial, Material, ModelMaterial, Preprocessing};
pub use request::{CmpMode, LayerId, LinearKind, Request};

use crate::dcf;
use crate::error::{MpcError, Result};
use crate::party::Party;

/// Bytes of the per-party PRG seed a real dealer sends once per deal.
pub const SEED_BYTES: u64 = 16;

/// Both parties' queues and the bytes sent to each (without seeds).
pub(crate) type Dealt = (VecDeque<Material>, VecDeque<Material>, u64, u64);

/// Offline byte costs of each request (per party), shared by the dealer and the cost model.
pub mod offline {
    use super::*;

    /// Bytes sent to `(P0, P1)` for `req`, excluding the per-deal seeds.
    pub fn bytes(req: &Request, layers: &dyn Fn(LayerId) -> Option<Vec<usize>>) -> Result<(u64, u64)> {
        Ok(match req {
            // c1 = ab - c0 explicit to P1.
            Request::Mul { n } => (0, 8 * *n as u64),
            // (a²)_1 explicit to P1.
            Request::Square { n } => (0, 8 * *n as u64),
            Request::Cmp { n, bits, mode } => cmp(*n, *bits, *mode),
            Request::MaskedAct { relus, squares, bits, mode } => {
                let (c0, c1) = cmp(*relus, *bits, *mode);
                (c0, c1 + 8 * *squares as u64)
            }
            Request::Linear { layer, .. } => {
                let out = layers(*layer).ok_or_else(|| MpcError::PreprocessingMismatch {
                    op: "dealer".into(),
                    expected: format!("linear layer {layer} set up with setup_model"),
                    found: "no such layer".into(),
                })?;
                (0, 8 * out.iter().product::<usize>() as u64)
            }
            // C1 = AB - C0 explicit to P1 (A, B and C0 seed-expanded).
            Request::MatMul { batch, m, k, n } => (0, 8 * matmul_sizes(*batch, *m, *k, *n)?.2 as u64),
        })
    }

    /// Comparisons: DCF keys to both parties; corrections to P1 — one-round: `m_r` and `m_r·r`
    /// (16 bytes); compact: `λ`, `λ·r` (16 bytes) and the bit of `m_r ⊕ λ` (packed, 1/8 byte).
    pub fn cmp(n: usize, bits: u32, mode: CmpMode) -> (u64, u64) {
        let n = n as u64;
        match mode {
            CmpMode::OneRound => {
                let key = dcf::key_bytes(bits - 1) as u64 * n;
                (key, key + 16 * n)
            }
            CmpMode::Compact => {
                let key = dcf::bit_key_bytes(bits - 1) as u64 * n;
                (key, key + 16 * n + n.div_ceil(8))
            }
        }
    }
}

/// The trusted dealer. Deterministic for a given seed.
#[derive(Debug)]
pub struct Dealer {
    /// The dealer's private randomness (values no party may expand itself).
    private: ChaCha12Rng,
    /// The stream shared with P0 (its seed-compressed material).
    p0: ChaCha12Rng,
    /// The stream shared with P1.
    p1: ChaCha12Rng,
    /// Weight masks `A` of the model's linear layers (shared with [`stream::Stream`]s, never cloned).
    layers: Arc<HashMap<LayerId, (LinearKind, ArrayD<u64>)>>,
    /// Keys of the per-request streams (`private`, `p0`, `p1`): request `i` of deal `d` draws from
    /// streams forked at `(d, i)` (see [`Dealer::deal`]), so material does not depend on how a deal
    /// is split into segments or over threads.
    keys: [[u8; 32]; 3],
    /// Deals made so far (the index of the next one).
    deals: u64,
}

impl Dealer {
    /// A dealer whose every output is determined by `seed` (64 bits: for reproducible runs and
    /// tests; a deployment's dealer uses [`Dealer::from_key`]).
    pub fn new(seed: u64) -> Dealer {
        Dealer::from_root(ChaCha12Rng::seed_from_u64(seed))
    }

    /// A dealer whose every output is determined by a 256-bit secret `key` (e.g. drawn from the
    /// operating system, or derived per inference by a dealer service).
    pub fn from_key(key: [u8; 32]) -> Dealer {
        Dealer::from_root(ChaCha12Rng::from_seed(key))
    }

    fn from_root(mut root: ChaCha12Rng) -> Dealer {
        let mut fork = || {
            let mut s = [0u8; 32];
            root.fill_bytes(&mut s);
            ChaCha12Rng::from_seed(s)
        };
        let (private, p0, p1) = (fork(), fork(), fork());
        let mut key = || {
            let mut s = [0u8; 32];
            root.fill_bytes(&mut s);
            s
        };
        let keys = [key(), key(), key()];
        Dealer { private, p0, p1, layers: Arc::new(HashMap::new()), keys, deals: 0 }
    }

    /// Where `party`'s seed-expanded material of deal `deal` comes from (its stream key).
    pub fn origin(&self, party: Party, deal: u64) -> expand::Origin {
        expand::Origin { key: self.keys[1 + party.index()], deal }
    }

    /// Index of the next deal (0 for a fresh dealer).
    pub fn deals(&self) -> u64 {
        self.deals
    }

    /// Skips `n` deals: the next deal gets the material a fresh dealer's deal number
    /// `deals() + n` would get (e.g. chunk `j` of a batch run as its own pipeline).
    pub fn skip_deals(&mut self, n: u64) {
        self.deals += n;
    }

    /// Model-load material: shares of a random mask `A` for each linear layer's weight.
    /// Both shares are seed-expanded, so this costs the seeds only.
    pub fn setup_model(&mut self, layers: &[(LayerId, LinearKind)]) -> Result<(ModelMaterial, ModelMaterial)> {
        let mut m0 = ModelMaterial { party: Party::P0, layers: Vec::new(), offline_bytes: SEED_BYTES };
        let mut m1 = ModelMaterial { party: Party::P1, layers: Vec::new(), offline_bytes: SEED_BYTES };
        for (id, kind) in layers {
            if self.layers.contains_key(id) {
                return Err(MpcError::InvalidParameter {
                    name: "layer id",
                    value: id.to_string(),
                    reason: "set up twice".into(),
                });
            }
            let shape = kind.weight_shape();
            let a0 = random_array(&mut self.p0, &shape);
            let a1 = random_array(&mut self.p1, &shape);
            let a = add(&a0, &a1);
            Arc::make_mut(&mut self.layers).insert(*id, (kind.clone(), a));
            m0.layers.push((*id, kind.clone(), a0));
            m1.layers.push((*id, kind.clone(), a1));
        }
        Ok((m0, m1))
    }

    /// Per-inference material for `requests`, in order (one deal: the next deal index). Dealt on
    /// two threads; request `i` draws only from its own streams, forked from the dealer's keys at
    /// `(deal, i)`, so the result is the same however the requests are split.
    pub fn deal(&mut self, requests: &[Request]) -> Result<(Preprocessing, Preprocessing)> {
        let deal = self.deals;
        self.deals += 1;
        let (q0, q1, b0, b1) = self.deal_items(deal, requests, 0)?;
        Ok((Preprocessing::new(Party::P0, q0, SEED_BYTES + b0), Preprocessing::new(Party::P1, q1, SEED_BYTES + b1)))
    }

    /// Material for `requests`, which are requests `first..` of deal `deal`, on two threads (split
    /// where the estimated resident bytes balance). Returns both queues and the bytes a real dealer
    /// sends each party for them (without seeds).
    pub(crate) fn deal_items(&self, deal: u64, requests: &[Request], first: usize) -> Result<Dealt> {
        let weights = requests
            .iter()
            .map(|r| stream::resident_bytes(r, &|id| self.linear_output_shape(id, r)))
            .collect::<Result<Vec<_>>>()?;
        let total: u64 = weights.iter().sum();
        let (mut split, mut acc) = (0, 0u64);
        while split < requests.len() && 2 * (acc + weights[split]) <= total + weights[split] {
            acc += weights[split];
            split += 1;
        }
        if split == 0 || split == requests.len() {
            return self.deal_seq(deal, requests, first);
        }
        let (a, b) = requests.split_at(split);
        let (ra, rb) = std::thread::scope(|s| {
            let h = s.spawn(|| self.deal_seq(deal, b, first + split));
            let ra = self.deal_seq(deal, a, first);
            (ra, h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        });
        let (mut q0, mut q1, a0, a1) = ra?;
        let (r0, r1, c0, c1) = rb?;
        q0.extend(r0);
        q1.extend(r1);
        Ok((q0, q1, a0 + c0, a1 + c1))
    }

    fn deal_seq(&self, deal: u64, requests: &[Request], first: usize) -> Result<Dealt> {
        let mut q0 = VecDeque::with_capacity(requests.len());
        let mut q1 = VecDeque::with_capacity(requests.len());
        let (mut bytes0, mut bytes1) = (0, 0);
        for (i, req) in requests.iter().enumerate() {
            let (b0, b1) = offline::bytes(req, &|id| self.linear_output_shape(id, req))?;
            bytes0 += b0;
            bytes1 += b1;
            let (m0, m1) = self.request_dealer(deal, first + i).material(req)?;
            q0.push_back(m0);
            q1.push_back(m1);
        }
        Ok((q0, q1, bytes0, bytes1))
    }

    /// A dealer whose streams are those of request `index` of deal `deal` (same model masks).
    fn request_dealer(&self, deal: u64, index: usize) -> Dealer {
        let fork = |key: &[u8; 32]| expand::request_stream(key, deal, index);
        Dealer {
            private: fork(&self.keys[0]),
            p0: fork(&self.keys[1]),
            p1: fork(&self.keys[2]),
            layers: Arc::clone(&self.layers),
            keys: self.keys,
            deals: self.deals,
        }
    }

    fn linear_output_shape(&self, id: LayerId, req: &Request) -> Option<Vec<usize>> {
        let (kind, _) = self.layers.get(&id)?;
        match req {
            Request::Linear { input_shape, .. } => kind.output_shape(input_shape).ok(),
            _ => None,
        }
    }

    fn material(&mut self, req: &Request) -> Result<(Material, Material)> {
        Ok(match req {
            Request::Mul { n } => {
                let (a0, a1, a) = self.seeded_pair(*n);
                let (b0, b1, b) = self.seeded_pair(*n);
                let c: Vec<u64> = a.iter().zip(&b).map(|(x, y)| x.wrapping_mul(*y)).collect();
                let (c0, c1) = self.explicit_split(&c);
                (Material::Mul { a: a0, b: b0, c: c0 }, Material::Mul { a: a1, b: b1, c: c1 })
            }
            Request::Square { n } => {
                let (s0, s1) = self.square_pairs(*n);
                (Material::Square { a: s0.0, a2: s0.1 }, Material::Square { a: s1.0, a2: s1.1 })
            }
            Request::Cmp { n, bits, mode } => {
                let (c0, c1) = self.cmp(*n, *bits, *mode)?;
                (Material::Cmp(c0), Material::Cmp(c1))
            }
            Request::MaskedAct { relus, squares, bits, mode } => {
                let (c0, c1) = self.cmp(*relus, *bits, *mode)?;
                let (s0, s1) = self.square_pairs(*squares);
                (Material::MaskedAct { cmp: c0, a: s0.0, a2: s0.1 }, Material::MaskedAct { cmp: c1, a: s1.0, a2: s1.1 })
            }
            Request::Linear { layer, input_shape } => {
                let (kind, a) = self.layers.get(layer).ok_or_else(|| MpcError::PreprocessingMismatch {
                    op: "dealer".into(),
                    expected: format!("linear layer {layer} set up with setup_model"),
                    found: "no such layer".into(),
                })?;
                let b0 = random_array(&mut self.p0, input_shape);
                let b1 = random_array(&mut self.p1, input_shape);
                let b = add(&b0, &b1);
                let c = kind.apply(a, &b)?;
                let c0 = random_array(&mut self.p0, c.shape());
                let c1 = sub(&c, &c0);
                let l = *layer;
                (
                    Material::Linear { layer: l, input_shape: input_shape.clone(), b: b0, c: c0, eb: None },
                    Material::Linear { layer: l, input_shape: input_shape.clone(), b: b1, c: c1, eb: None },
                )
            }
            &Request::MatMul { batch, m, k, n } => {
                let (la, lb, lc) = matmul_sizes(batch, m, k, n)?;
                let (a0, a1, a) = self.seeded_pair(la);
                let (b0, b1, b) = self.seeded_pair(lb);
                let mut c = vec![0u64; lc];
                crate::kernel::gemm_batched(batch, m, k, n, &a, &b, &mut c, false)?;
                let (c0, c1) = self.explicit_split(&c);
                (
                    Material::MatMul { batch, m, k, n, a: a0, b: b0, c: c0 },
                    Material::MatMul { batch, m, k, n, a: a1, b: b1, c: c1 },
                )
            }
        })
    }

    /// A random vector whose shares both come from the parties' streams.
    fn seeded_pair(&mut self, n: usize) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
        let s0 = random_vec(&mut self.p0, n);
        let s1 = random_vec(&mut self.p1, n);
        let v = s0.iter().zip(&s1).map(|(x, y)| x.wrapping_add(*y)).collect();
        (s0, s1, v)
    }

    /// Shares of a dealer-computed vector: P0's from its stream, P1's explicit.
    fn explicit_split(&mut self, v: &[u64]) -> (Vec<u64>, Vec<u64>) {
        let s0 = random_vec(&mut self.p0, v.len());
        let s1 = v.iter().zip(&s0).map(|(x, y)| x.wrapping_sub(*y)).collect();
        (s0, s1)
    }

    #[allow(clippy::type_complexity)]
    fn square_pairs(&mut self, n: usize) -> ((Vec<u64>, Vec<u64>), (Vec<u64>, Vec<u64>)) {
        let (a0, a1, a) = self.seeded_pair(n);
        let sq: Vec<u64> = a.iter().map(|x| x.wrapping_mul(*x)).collect();
        let (q0, q1) = self.explicit_split(&sq);
        ((a0, q0), (a1, q1))
    }

    fn cmp(&mut self, n: usize, bits: u32, mode: CmpMode) -> Result<(CmpMaterial, CmpMaterial)> {
        check_bits(bits)?;
        let (r0, r1, r) = self.seeded_pair(n);
        let low = low_mask(bits - 1);
        let alphas: Vec<u64> = r.iter().map(|x| x & low).collect();
        let mr: Vec<u64> = r.iter().map(|x| (x >> (bits - 1)) & 1).collect();
        let (k0, k1) = match mode {
            CmpMode::OneRound => {
                let mrr: Vec<u64> = mr.iter().zip(&r).map(|(m, x)| m.wrapping_mul(*x)).collect();
                let betas: Vec<[u64; 2]> = mr
                    .iter()
                    .zip(&r)
                    .map(|(m, x)| {
                        let s = 1u64.wrapping_sub(m.wrapping_mul(2));
                        [s, s.wrapping_mul(*x)]
                    })
                    .collect();
                let (k0, k1) = dcf::gen_batch(bits - 1, &alphas, &betas, &mut self.private)?;
                let (mr0, mr1) = self.explicit_split(&mr);
                let (mrr0, mrr1) = self.explicit_split(&mrr);
                (CmpKeys::OneRound { mr: mr0, mrr: mrr0, keys: k0 }, CmpKeys::OneRound { mr: mr1, mrr: mrr1, keys: k1 })
            }
            CmpMode::Compact => {
                let (k0, k1) = dcf::gen_bit_batch(bits - 1, &alphas, &mut self.private)?;
                // The select bit λ: private to the dealer, shared arithmetically (λ, λ·r) and, XORed
                // with m_r, as bits (P0's bit from its stream, P1's explicit).
                let lam: Vec<u64> = (0..n).map(|_| self.private.next_u64() & 1).collect();
                let lamr: Vec<u64> = lam.iter().zip(&r).map(|(l, x)| l.wrapping_mul(*x)).collect();
                let mu0: Vec<u8> = (0..n).map(|_| (self.p0.next_u64() & 1) as u8).collect();
                let mu1: Vec<u8> = mu0.iter().zip(mr.iter().zip(&lam)).map(|(m0, (m, l))| m0 ^ (m ^ l) as u8).collect();
                let (lam0, lam1) = self.explicit_split(&lam);
                let (lamr0, lamr1) = self.explicit_split(&lamr);
                (
                    CmpKeys::Compact { mu: mu0, lam: lam0, lamr: lamr0, keys: k0 },
                    CmpKeys::Compact { mu: mu1, lam: lam1, lamr: lamr1, keys: k1 },
                )
            }
        };
        Ok((CmpMaterial { bits, r: r0, keys: k0 }, CmpMaterial { bits, r: r1, keys: k1 }))
    }
}

/// Words of a [`Request::MatMul`]'s `A`, `B`, `C` ([`request::matmul_words`]), or
/// [`MpcError::InvalidParameter`] when they overflow.
pub fn matmul_sizes(batch: usize, m: usize, k: usize, n: usize) -> Result<(usize, usize, usize)> {
    request::matmul_words(batch, m, k, n).ok_or_else(|| MpcError::InvalidParameter {
        name: "matmul dimensions",
        value: format!("batch = {batch}, m = {m}, k = {k}, n = {n}"),
        reason: "the operands have more elements than fit in usize".into(),
    })
}

/// Checks a comparison bit width: 2 to 64.
pub fn check_bits(bits: u32) -> Result<()> {
    if !(2..=64).contains(&bits) {
        return Err(MpcError::InvalidParameter {
            name: "comparison bits",
            value: bits.to_string(),
            reason: "must be between 2 and 64".into(),
        });
    }
    Ok(())
}

/// `2^b - 1` (all ones for b = 64).
pub fn low_mask(b: u32) -> u64 {
    if b >= 64 { u64::MAX } else { (1u64 << b) - 1 }
}

fn random_vec(rng: &mut ChaCha12Rng, n: usize) -> Vec<u64> {
    let mut v = vec![0u64; n];
    for x in v.iter_mut() {
        *x = rng.next_u64();
    }
    v
}

fn random_array(rng: &mut ChaCha12Rng, shape: &[usize]) -> ArrayD<u64> {
    let n = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), random_vec(rng, n)).expect("shape matches length")
}

fn add(a: &ArrayD<u64>, b: &ArrayD<u64>) -> ArrayD<u64> {
    let mut out = a.clone();
    Zip::from(&mut out).and(b).for_each(|x, &y| *x = x.wrapping_add(y));
    out
}

fn sub(a: &ArrayD<u64>, b: &ArrayD<u64>) -> ArrayD<u64> {
    let mut out = a.clone();
    Zip::from(&mut out).and(b).for_each(|x, &y| *x = x.wrapping_sub(y));
    out
}
