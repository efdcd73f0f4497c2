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
//!   │  C1 = op(A,B) - C0 are sent explicitly
//!   └─ DCF keys: each party's root seed and the correction words (common to both keys) are sent to both
//! ```
//!
//! **Seed compression.** A real dealer shares a PRG seed with each party; every value that is
//! uniformly random in a party's view (its share of `a`, `b`, `r`, the weight mask `A`, the
//! input mask `B`, and P0's shares of products) is expanded from that seed instead of being
//! sent. This simulator expands the same values from the same per-party streams, so the byte
//! counts it reports ([`Preprocessing::offline_bytes`]) are what such a dealer really sends:
//! 16 bytes of seed per party and deal, plus the explicit corrections above and the DCF keys.

pub mod codec;
pub mod material;
pub mod request;

use std::collections::{HashMap, VecDeque};

use ndarray::{ArrayD, IxDyn, Zip};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;

pub use material::{CmpMaterial, Material, ModelMaterial, Preprocessing};
pub use request::{LayerId, LinearKind, Request};

use crate::dcf;
use crate::error::{MpcError, Result};
use crate::party::Party;

/// Bytes of the per-party PRG seed a real dealer sends once per deal.
pub const SEED_BYTES: u64 = 16;

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
            Request::Cmp { n, bits } => cmp(*n, *bits),
            Request::MaskedAct { relus, squares, bits } => {
                let (c0, c1) = cmp(*relus, *bits);
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
        })
    }

    /// Comparisons: DCF keys to both parties; `m_r` and `m_r·r` corrections to P1.
    pub fn cmp(n: usize, bits: u32) -> (u64, u64) {
        let key = dcf::key_bytes(bits - 1) as u64 * n as u64;
        (key, key + 16 * n as u64)
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
    /// Weight masks `A` of the model's linear layers.
    layers: HashMap<LayerId, (LinearKind, ArrayD<u64>)>,
}

impl Dealer {
    /// A dealer whose every output is determined by `seed`.
    pub fn new(seed: u64) -> Dealer {
        let mut root = ChaCha12Rng::seed_from_u64(seed);
        let mut fork = || {
            let mut s = [0u8; 32];
            root.fill_bytes(&mut s);
            ChaCha12Rng::from_seed(s)
        };
        Dealer { private: fork(), p0: fork(), p1: fork(), layers: HashMap::new() }
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
            self.layers.insert(*id, (kind.clone(), a));
            m0.layers.push((*id, kind.clone(), a0));
            m1.layers.push((*id, kind.clone(), a1));
        }
        Ok((m0, m1))
    }

    /// Per-inference material for `requests`, in order.
    pub fn deal(&mut self, requests: &[Request]) -> Result<(Preprocessing, Preprocessing)> {
        let mut q0 = VecDeque::with_capacity(requests.len());
        let mut q1 = VecDeque::with_capacity(requests.len());
        let (mut bytes0, mut bytes1) = (SEED_BYTES, SEED_BYTES);
        for req in requests {
            let (b0, b1) = offline::bytes(req, &|id| self.linear_output_shape(id, req))?;
            bytes0 += b0;
            bytes1 += b1;
            let (m0, m1) = self.material(req)?;
            q0.push_back(m0);
            q1.push_back(m1);
        }
        Ok((Preprocessing::new(Party::P0, q0, bytes0), Preprocessing::new(Party::P1, q1, bytes1)))
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
            Request::Cmp { n, bits } => {
                let (c0, c1) = self.cmp(*n, *bits)?;
                (Material::Cmp(c0), Material::Cmp(c1))
            }
            Request::MaskedAct { relus, squares, bits } => {
                let (c0, c1) = self.cmp(*relus, *bits)?;
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

    fn cmp(&mut self, n: usize, bits: u32) -> Result<(CmpMaterial, CmpMaterial)> {
        check_bits(bits)?;
        let (r0, r1, r) = self.seeded_pair(n);
        let low = low_mask(bits - 1);
        let alphas: Vec<u64> = r.iter().map(|x| x & low).collect();
        let mr: Vec<u64> = r.iter().map(|x| (x >> (bits - 1)) & 1).collect();
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
        Ok((
            CmpMaterial { bits, r: r0, mr: mr0, mrr: mrr0, keys: k0 },
            CmpMaterial { bits, r: r1, mr: mr1, mrr: mrr1, keys: k1 },
        ))
    }
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
