//! DReLU, ReLU and the masked activation, from one opening and a DCF.
//!
//! ```text
//!   D ──▶ P_b : [r], [m_r], [m_r·r], DCF key k_b for 1{y < r mod 2^(k-1)} with payload
//!               (1 - 2 m_r, (1 - 2 m_r)·r)            (k = comparison bits, m_r = bit k-1 of r)
//!   P0 ⇄ P1  : open x^ = x + r                          (one round, 1 word each way)
//!   local     : z = x^ + 2^(k-1), p = bit k-1 of z, y = x^ mod 2^(k-1)
//!               (e1, e2) = Eval(b, k_b, y)               shares of (1-2m_r)·c, (1-2m_r)·c·r
//!               [w] = [m_r] + e1,  [w·r] = [m_r·r] + e2   with c = 1{y < r mod 2^(k-1)}
//!               [d] = p + (1-2p)[w]                       DReLU: d = 1{x >= 0}
//!               [d·r] = p[r] + (1-2p)[w·r]
//!               [ReLU(x)] = x^·[d] - [d·r]
//! ```
//! Why: with `u = z - r mod 2^k`, bit `k-1` of `u` is `p ⊕ m_r ⊕ c` (c is the borrow out of the
//! low `k-1` bits), and for `|x| < 2^(k-1)` that bit is exactly `1{x >= 0}`. With `k = 64` this
//! holds for every `x` (no precondition). Every value a party receives is `x + r` with a uniform
//! `r`, and each DCF key alone hides `r` and the payload, so nothing about `x` leaks.
//! Cost: 1 round and 8 bytes per element each way (plus one 4-byte frame header per message).
//!
//! **Compact mode** ([`CmpMode::Compact`]): the same opening, then a one-bit DCF
//! ([`crate::dcf::bit`]) instead of the two-word one, and a select:
//!
//! ```text
//!   D ──▶ P_b : [r], <μ> = <m_r ⊕ λ> (XOR share), [λ], [λ·r], one-bit DCF key for 1{y < r mod 2^(k-1)}
//!   P0 ⇄ P1  : open x^ = x + r                              (round 1, 1 word each way)
//!   local     : c_b = Eval(b, k_b, y);  e_b = c_b ⊕ μ_b ⊕ (b = 0 ? p : 0)   (e0 ⊕ e1 = d ⊕ λ)
//!   P0 ⇄ P1  : open d^ = d ⊕ λ                              (round 2, 1 bit each way, packed)
//!   local     : [d] = d^ + (1 − 2d^)[λ],  [d·r] = d^[r] + (1 − 2d^)[λ·r],  [ReLU(x)] = x^[d] − [d·r]
//! ```
//! `d^` is `d` under a one-time pad `λ` known to nobody, so opening it reveals nothing. Cost: 2
//! rounds, 8 + 1/8 bytes per element each way; keys of [`crate::dcf::bit_key_bytes`]`(k − 1)`.
//!
//! The masked activation (AutoReP / SNL) pays the comparison only where its public mask is 1;
//! where it is 0 the element is kept (identity, free) or replaced by `c2·x² + c1·x + c0` with
//! public per-channel coefficients (one Beaver square). Both openings share one message.

use ndarray::{ArrayD, IxDyn};

use super::beaver::square_finish;
use super::ctx::Ctx;
use super::trunc::truncate_word;
use crate::dcf;
use crate::dealer::{CmpKeys, CmpMaterial, CmpMode, Material, Request, low_mask};
use crate::error::{MpcError, Result, fmt_shape};
use crate::share::{Party, Share};
use crate::transport::Transport;

/// Default comparison width: exact for every 64-bit value.
pub const DEFAULT_CMP_BITS: u32 = 64;

/// What replaces ReLU where a masked activation's mask is 0.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Replacement {
    /// `g(x) = x`: free.
    Identity,
    /// `g(x) = c2·x² + c1·x + c0` with one coefficient per channel (public reals).
    Poly {
        /// Quadratic coefficients, one per channel.
        c2: Vec<f64>,
        /// Linear coefficients, one per channel.
        c1: Vec<f64>,
        /// Constants, one per channel.
        c0: Vec<f64>,
    },
}

impl Replacement {
    /// Elements per channel for a layer of `per_image` elements per image (1 for the identity);
    /// an error unless the three coefficient lists have one equal, nonzero length dividing it.
    pub fn per_channel(&self, per_image: usize) -> Result<usize> {
        let Replacement::Poly { c2, c1, c0 } = self else { return Ok(1) };
        let c = c2.len();
        if c == 0 || c1.len() != c || c0.len() != c || !per_image.is_multiple_of(c) {
            return Err(MpcError::ShapeMismatch {
                op: "masked_act".into(),
                expected: format!("equal per-channel coefficient counts dividing {per_image}"),
                got: format!("c2 {}, c1 {}, c0 {}", c2.len(), c1.len(), c0.len()),
            });
        }
        Ok(per_image / c)
    }
}

/// Which of a comparison's outputs to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    DRelu,
    Relu,
}

/// The comparison after `x^` was opened: DReLU bits or ReLU values. Local in one-round mode;
/// compact mode opens the masked DReLU bit (one more round, `during` names it).
fn cmp_finish<T: Transport>(
    ctx: &mut Ctx<T>,
    mat: &CmpMaterial,
    xhat: &[u64],
    want: Want,
    during: &'static str,
) -> Result<Vec<u64>> {
    let party = ctx.party();
    let k1 = mat.bits - 1;
    let low = low_mask(k1);
    let ys: Vec<u64> = xhat.iter().map(|x| x & low).collect();
    let half = 1u64 << k1;
    let p0 = party == Party::P0;
    let sign = |x: u64| (x.wrapping_add(half) >> k1) & 1;
    // From arithmetic shares of d and d·r (d = DReLU): the wanted output.
    let out = |i: usize, d: u64, dr: u64| match want {
        Want::DRelu => d,
        Want::Relu => d.wrapping_mul(xhat[i]).wrapping_sub(dr),
    };
    match &mat.keys {
        CmpKeys::OneRound { mr, mrr, keys } => {
            let mut evals = vec![[0u64; 2]; xhat.len()];
            dcf::eval_batch_threads(dcf::AesBackend::detect(), party, keys, &ys, &mut evals, ctx.threads())?;
            Ok((0..xhat.len())
                .map(|i| {
                    let p = sign(xhat[i]);
                    let s = 1u64.wrapping_sub(p << 1); // 1 - 2p
                    let w = mr[i].wrapping_add(evals[i][0]);
                    let d = s.wrapping_mul(w).wrapping_add(if p0 { p } else { 0 });
                    let dr = match want {
                        Want::DRelu => 0,
                        Want::Relu => {
                            p.wrapping_mul(mat.r[i]).wrapping_add(s.wrapping_mul(mrr[i].wrapping_add(evals[i][1])))
                        }
                    };
                    out(i, d, dr)
                })
                .collect())
        }
        CmpKeys::Compact { .. } if xhat.is_empty() => Ok(Vec::new()),
        CmpKeys::Compact { mu, lam, lamr, keys } => {
            let mut c = vec![0u8; xhat.len()];
            dcf::bit::eval_bit_batch_threads(dcf::AesBackend::detect(), party, keys, &ys, &mut c, ctx.threads())?;
            let mut packed = vec![0u64; xhat.len().div_ceil(64)];
            for i in 0..xhat.len() {
                let e = c[i] as u64 ^ mu[i] as u64 ^ if p0 { sign(xhat[i]) } else { 0 };
                packed[i / 64] |= e << (i % 64);
            }
            let theirs = ctx.exchange(&packed, during)?;
            Ok((0..xhat.len())
                .map(|i| {
                    let dh = ((packed[i / 64] ^ theirs[i / 64]) >> (i % 64)) & 1;
                    let s = 1u64.wrapping_sub(dh << 1); // 1 - 2 d^
                    let d = s.wrapping_mul(lam[i]).wrapping_add(if p0 { dh } else { 0 });
                    let dr = match want {
                        Want::DRelu => 0,
                        Want::Relu => dh.wrapping_mul(mat.r[i]).wrapping_add(s.wrapping_mul(lamr[i])),
                    };
                    out(i, d, dr)
                })
                .collect())
        }
    }
}

/// Comparison on raw share words: one round (one-round mode) or two (compact).
pub(crate) fn cmp_words<T: Transport>(
    ctx: &mut Ctx<T>,
    x: &[u64],
    bits: u32,
    mode: CmpMode,
    relu: bool,
) -> Result<Vec<u64>> {
    let n = x.len();
    let during = if relu { "relu" } else { "drelu" };
    let Material::Cmp(mat) = ctx.take(during, &Request::Cmp { n, bits, mode })? else {
        unreachable!("checked by take")
    };
    let msg: Vec<u64> = x.iter().zip(&mat.r).map(|(x, r)| x.wrapping_add(*r)).collect();
    let theirs = ctx.exchange(&msg, during)?;
    let xhat: Vec<u64> = msg.iter().zip(&theirs).map(|(a, b)| a.wrapping_add(*b)).collect();
    let out = cmp_finish(ctx, &mat, &xhat, if relu { Want::Relu } else { Want::DRelu }, during);
    ctx.retire(mat);
    out
}

/// `[1{x >= 0}]` (integer 0/1 shares) for every element; exact for `|x| < 2^(bits-1)`.
pub fn drelu<T: Transport>(ctx: &mut Ctx<T>, x: &Share, bits: u32, mode: CmpMode) -> Result<Share> {
    ctx.check_share("drelu", x)?;
    let words: Vec<u64> = x.data().iter().copied().collect();
    ctx.step("drelu", words.len(), |ctx| {
        let d = cmp_words(ctx, &words, bits, mode, false)?;
        Ok(Share::new(ctx.party(), ArrayD::from_shape_vec(IxDyn(x.shape()), d).expect("same length")))
    })
}

/// `[max(x, 0)]` for every element; exact for `|x| < 2^(bits-1)` (any fixed-point scale).
pub fn relu<T: Transport>(ctx: &mut Ctx<T>, x: &Share, bits: u32, mode: CmpMode) -> Result<Share> {
    ctx.check_share("relu", x)?;
    let words: Vec<u64> = x.data().iter().copied().collect();
    ctx.step("relu", words.len(), |ctx| {
        let y = cmp_words(ctx, &words, bits, mode, true)?;
        Ok(Share::new(ctx.party(), ArrayD::from_shape_vec(IxDyn(x.shape()), y).expect("same length")))
    })
}

/// The preprocessing request of a masked activation over a batch of `batch` images.
pub fn masked_act_request(mask: &[u8], replacement: &Replacement, batch: usize, bits: u32, mode: CmpMode) -> Request {
    let ones = mask.iter().filter(|&&m| m == 1).count();
    let zeros = mask.len() - ones;
    let squares = match replacement {
        Replacement::Identity => 0,
        Replacement::Poly { c2, .. } if c2.iter().all(|c| *c == 0.0) => 0,
        Replacement::Poly { .. } => zeros * batch,
    };
    Request::MaskedAct { relus: ones * batch, squares, bits, mode }
}

/// The masked activation `y = m⊙ReLU(x) + (1-m)⊙g(x)` with a public per-element mask `m`
/// over one image (`x` is `[batch, ...]` with `mask.len()` elements per image).
pub fn masked_act<T: Transport>(
    ctx: &mut Ctx<T>,
    x: &Share,
    mask: &[u8],
    replacement: &Replacement,
    bits: u32,
    mode: CmpMode,
) -> Result<Share> {
    ctx.check_share("masked_act", x)?;
    let shape = x.shape().to_vec();
    let per_image = mask.len();
    if shape.is_empty() || per_image == 0 || shape[1..].iter().product::<usize>() != per_image {
        return Err(MpcError::ShapeMismatch {
            op: "masked_act".into(),
            expected: format!("[batch, ...] with {per_image} elements per image (the mask)"),
            got: fmt_shape(&shape),
        });
    }
    if let Some(bad) = mask.iter().find(|&&m| m > 1) {
        return Err(MpcError::InvalidParameter {
            name: "mask value",
            value: bad.to_string(),
            reason: "masks hold 0 or 1".into(),
        });
    }
    let coeffs = match replacement {
        Replacement::Identity => None,
        Replacement::Poly { c2, c1, c0 } => Some((c2, c1, c0, replacement.per_channel(per_image)?)),
    };
    let batch = shape[0];
    let req = masked_act_request(mask, replacement, batch, bits, mode);
    let Request::MaskedAct { relus, squares, .. } = req else { unreachable!("built above") };
    let data: Vec<u64> = x.data().iter().copied().collect();
    let ones: Vec<usize> = (0..batch)
        .flat_map(|b| mask.iter().enumerate().filter(|(_, m)| **m == 1).map(move |(i, _)| b * per_image + i))
        .collect();
    let zeros: Vec<usize> = (0..batch)
        .flat_map(|b| mask.iter().enumerate().filter(|(_, m)| **m == 0).map(move |(i, _)| b * per_image + i))
        .collect();
    if relus == 0 && squares == 0 {
        // All-identity (or purely affine) layer: local.
        return ctx.step("masked_act", data.len(), |ctx| {
            let out = affine_local(ctx.party(), &data, &zeros, coeffs, ctx.fixed_point().frac_bits(), per_image);
            Ok(Share::new(ctx.party(), ArrayD::from_shape_vec(IxDyn(&shape), out).expect("same length")))
        });
    }
    ctx.step("masked_act", data.len(), |ctx| {
        let Material::MaskedAct { cmp, a, a2 } = ctx.take("masked_act", &req)? else { unreachable!("checked by take") };
        let mut msg = Vec::with_capacity(relus + squares);
        msg.extend(ones.iter().zip(&cmp.r).map(|(&i, r)| data[i].wrapping_add(*r)));
        if squares > 0 {
            msg.extend(zeros.iter().zip(&a).map(|(&i, a)| data[i].wrapping_sub(*a)));
        }
        let theirs = ctx.exchange(&msg, "masked_act")?;
        let party = ctx.party();
        let f = ctx.fixed_point().frac_bits();
        let mut out = affine_local(party, &data, &zeros, if squares > 0 { None } else { coeffs }, f, per_image);
        let xhat: Vec<u64> = msg[..relus].iter().zip(&theirs[..relus]).map(|(a, b)| a.wrapping_add(*b)).collect();
        let r = cmp_finish(ctx, &cmp, &xhat, Want::Relu, "masked_act")?;
        ctx.retire(cmp);
        for (&i, v) in ones.iter().zip(r) {
            out[i] = v;
        }
        if squares > 0 {
            let (c2, c1, c0, per_channel) = coeffs.expect("squares only with a polynomial");
            let sq = square_finish(party, &msg[relus..], &theirs[relus..], &a, &a2);
            let fp = ctx.fixed_point();
            for (j, &i) in zeros.iter().enumerate() {
                let ch = (i % per_image) / per_channel;
                let x2 = truncate_word(party, sq[j], f); // scale f
                let mut t = fp.encode(c2[ch]).wrapping_mul(x2).wrapping_add(fp.encode(c1[ch]).wrapping_mul(data[i]));
                if party == Party::P0 {
                    t = t.wrapping_add(fp.encode(c0[ch]) << f);
                }
                out[i] = truncate_word(party, t, f);
            }
        }
        ctx.retire((a, a2));
        Ok(Share::new(party, ArrayD::from_shape_vec(IxDyn(&shape), out).expect("same length")))
    })
}

type Coeffs<'a> = Option<(&'a Vec<f64>, &'a Vec<f64>, &'a Vec<f64>, usize)>;

/// Copies `data`; at `zeros`, applies `c1·x + c0` locally when a purely affine polynomial is given
/// (c2 = 0 everywhere), otherwise leaves the identity.
fn affine_local(party: Party, data: &[u64], zeros: &[usize], coeffs: Coeffs<'_>, f: u32, per_image: usize) -> Vec<u64> {
    let mut out = data.to_vec();
    if let Some((_, c1, c0, per_channel)) = coeffs {
        let scale = (1u64 << f) as f64;
        for &i in zeros {
            let ch = (i % per_image) / per_channel;
            let mut t = ((c1[ch] * scale).round() as i64 as u64).wrapping_mul(data[i]);
            if party == Party::P0 {
                t = t.wrapping_add(((c0[ch] * scale).round() as i64 as u64) << f);
            }
            out[i] = truncate_word(party, t, f);
        }
    }
    out
}
