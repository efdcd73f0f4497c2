//! The compact DCF: one-bit output, early termination (the key layout behind the two-round
//! comparison of [`crate::protocols`]' compact mode).
//!
//! The dealer's [`gen_bit_batch`] gives P0 and P1 keys for `f(x) = 1{x < alpha}` on `n`-bit inputs
//! (`1 <= n <= 64`) with XOR-shared output: `eval(P0, k0, x) xor eval(P1, k1, x) = f(x)`.
//!
//! ```text
//!   tree of depth nu = n - l  (l = min(n, 7) low bits are left to one 128-bit leaf)
//!   key_b = ( s_b : 16 B,  per level sCW_i with tCW_i^L, tCW_i^R in bits 0, 1 : 16 B,
//!             VCW_1 .. VCW_nu : one bit each,  leaf correction LCW : 16 B )
//!   key_bytes(n) = 32 + 16·nu + ceil(nu / 8)            = 935 B at n = 63, 548 B at n = 39
//! ```
//!
//! # Construction (all in GF(2))
//!
//! One AES block per node and side: `H(s | c)` for side `c` gives the child's seed (bits 2..127),
//! its control bit `t` (bit 0) and its value bit `v` (bit 1); `H(s | 2)` is the 128-bit leaf.
//! The evaluator hashes one block per level plus the leaf: `nu + 1` AES calls per key (the
//! one-round DCF needs `2n`).
//!
//! Gen, per level (`a` = bit of `alpha`, Keep = side `a`, Lose = the other, `V` = XOR of the two
//! parties' value bits so far on `alpha`'s path):
//! `sCW = s0^Lose ^ s1^Lose`; `VCW = a ^ V ^ v0^Lose ^ v1^Lose` (leaving the path to the Lose side
//! decides `x < alpha` exactly when `a = 1`); `V <- V ^ v0^Keep ^ v1^Keep ^ VCW`;
//! `tCW^L = t0^L ^ t1^L ^ a ^ 1`, `tCW^R = t0^R ^ t1^R ^ a`; the party whose `t` is 1 applies the
//! corrections. Off the path both parties hold equal states, so everything below cancels. At the
//! end of the path the leaves `L_b = H(s_b | 2)` are corrected by
//! `LCW = L0 ^ L1 ^ T ^ (V ? 1^128 : 0)` with `T = 2^(alpha_low) - 1` (bit `j` set iff
//! `j < alpha_low`), so the output at a leaf position `j` is `acc ^ L_b[j] ^ t_b·LCW[j]`.
//! For `n <= 7` there is no tree: the leaf is a lookup table of `2^n` bits.

use std::fmt;
use std::sync::Arc;

use rand::RngCore;

use super::prg::{Block, hash_blocks};
use super::{AesBackend, LANES, check_n};
use crate::error::{MpcError, Result};
use crate::party::Party;

/// Input bits resolved by the leaf (a 128-bit block holds 2^7 output bits).
pub const LEAF_BITS: u32 = 7;

const LOW2: Block = 3;

/// Tree levels for `n`-bit inputs.
pub fn levels(n: u32) -> u32 {
    n.saturating_sub(LEAF_BITS)
}

/// Bytes of one party's key: seed (16) + 16 per level + one bit per level (rounded up to bytes)
/// + the leaf correction (16).
pub fn bit_key_bytes(n: u32) -> usize {
    let nu = levels(n) as usize;
    32 + 16 * nu + nu.div_ceil(8)
}

/// Correction words of a batch (identical in both parties' keys).
#[derive(Clone, PartialEq, Eq)]
struct BitCws {
    n: u32,
    len: usize,
    /// `[chunk][level][LANES]` seed corrections with `tCW^L`, `tCW^R` in bits 0 and 1.
    cw: Vec<Block>,
    /// Per key (padded): bit `i` is `VCW_{i+1}`.
    vcw: Vec<u64>,
    /// Per key (padded): the leaf correction.
    leaf: Vec<Block>,
}

/// One party's compact-DCF keys for a batch of comparisons sharing `n`.
#[derive(Clone, PartialEq, Eq)]
pub struct BitDcfBatch {
    party: Party,
    /// Root seeds, padded to a multiple of [`LANES`].
    seeds: Vec<Block>,
    cws: Arc<BitCws>,
}

impl fmt::Debug for BitDcfBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BitDcfBatch({}, n = {}, {} keys)", self.party, self.cws.n, self.cws.len)
    }
}

impl BitDcfBatch {
    /// Whose keys these are.
    pub fn party(&self) -> Party {
        self.party
    }

    /// Input bit width.
    pub fn n(&self) -> u32 {
        self.cws.n
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.cws.len
    }

    /// True when the batch holds no key.
    pub fn is_empty(&self) -> bool {
        self.cws.len == 0
    }

    /// Exact bytes the dealer sends this party: `len · bit_key_bytes(n)`.
    pub fn serialized_bytes(&self) -> usize {
        self.cws.len * bit_key_bytes(self.cws.n)
    }

    /// Serialises the keys, key after key: seed, the level corrections, the VCW bits
    /// (little-endian, `ceil(nu/8)` bytes), the leaf correction; blocks 16 bytes little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let nu = levels(self.cws.n) as usize;
        let mut out = Vec::with_capacity(self.serialized_bytes());
        for i in 0..self.len() {
            let (c, j) = (i / LANES, i % LANES);
            out.extend_from_slice(&self.seeds[i].to_le_bytes());
            for l in 0..nu {
                out.extend_from_slice(&self.cws.cw[(c * nu + l) * LANES + j].to_le_bytes());
            }
            out.extend_from_slice(&self.cws.vcw[i].to_le_bytes()[..nu.div_ceil(8)]);
            out.extend_from_slice(&self.cws.leaf[i].to_le_bytes());
        }
        out
    }

    /// Reads what [`Self::to_bytes`] wrote (`n`, `len` and the party travel out of band).
    pub fn from_bytes(party: Party, n: u32, len: usize, bytes: &[u8]) -> Result<BitDcfBatch> {
        check_n(n)?;
        let kb = bit_key_bytes(n);
        if Some(bytes.len()) != len.checked_mul(kb) {
            return Err(MpcError::Decode {
                during: "reading compact dcf keys",
                reason: format!("{} bytes for {len} keys of {kb} bytes", bytes.len()),
            });
        }
        let nu = levels(n) as usize;
        let padded = len.div_ceil(LANES) * LANES;
        let mut seeds = vec![0; padded];
        let mut cw = vec![0; padded * nu];
        let mut vcw = vec![0u64; padded];
        let mut leaf = vec![0; padded];
        let rd = |off: usize| u128::from_le_bytes(bytes[off..off + 16].try_into().expect("16 bytes"));
        for i in 0..len {
            let (c, j) = (i / LANES, i % LANES);
            let base = i * kb;
            seeds[i] = rd(base);
            for l in 0..nu {
                cw[(c * nu + l) * LANES + j] = rd(base + 16 + 16 * l);
            }
            let vb = base + 16 + 16 * nu;
            let mut w = [0u8; 8];
            w[..nu.div_ceil(8)].copy_from_slice(&bytes[vb..vb + nu.div_ceil(8)]);
            vcw[i] = u64::from_le_bytes(w);
            leaf[i] = rd(vb + nu.div_ceil(8));
        }
        Ok(BitDcfBatch { party, seeds, cws: Arc::new(BitCws { n, len, cw, vcw, leaf }) })
    }
}

/// The dealer's key generation: key `i` computes `1{x < alphas[i]}` on `n`-bit inputs.
pub fn gen_bit_batch<R: RngCore + ?Sized>(n: u32, alphas: &[u64], rng: &mut R) -> Result<(BitDcfBatch, BitDcfBatch)> {
    gen_bit_batch_with(AesBackend::detect(), n, alphas, rng)
}

/// [`gen_bit_batch`] with an explicit AES backend (outputs do not depend on it).
pub fn gen_bit_batch_with<R: RngCore + ?Sized>(
    backend: AesBackend,
    n: u32,
    alphas: &[u64],
    rng: &mut R,
) -> Result<(BitDcfBatch, BitDcfBatch)> {
    check_n(n)?;
    let backend = if backend.is_available() { backend } else { AesBackend::Portable };
    let len = alphas.len();
    let padded = len.div_ceil(LANES) * LANES;
    let nu = levels(n) as usize;
    let lbits = n - nu as u32;
    let draw = |rng: &mut R| ((rng.next_u64() as Block) | ((rng.next_u64() as Block) << 64)) & !LOW2;
    let mut seeds0 = vec![0; padded];
    let mut seeds1 = vec![0; padded];
    for (s0, s1) in seeds0.iter_mut().zip(seeds1.iter_mut()).take(len) {
        *s0 = draw(rng);
        *s1 = draw(rng);
    }
    let mut cw = vec![0; padded * nu];
    let mut vcw = vec![0u64; padded];
    let mut leaf = vec![0; padded];
    let mut h = [0 as Block; 4 * LANES];
    for c in 0..padded / LANES {
        let lo = c * LANES;
        let mut alpha = [0u64; LANES];
        let m = len.saturating_sub(lo).min(LANES);
        alpha[..m].copy_from_slice(&alphas[lo..lo + m]);
        let mut s = [[0 as Block; 2]; LANES];
        let mut t = [[false, true]; LANES];
        let mut v = [false; LANES];
        for j in 0..LANES {
            s[j] = [seeds0[lo + j], seeds1[lo + j]];
        }
        for l in 0..nu {
            for j in 0..LANES {
                for b in 0..2 {
                    h[4 * j + 2 * b] = s[j][b];
                    h[4 * j + 2 * b + 1] = s[j][b] | 1;
                }
            }
            hash_blocks(backend, &mut h);
            let shift = n as usize - 1 - l;
            for j in 0..LANES {
                let a = ((alpha[j] >> shift) & 1) as usize;
                let (keep, lose) = (a, 1 - a);
                let e = |b: usize, side: usize| {
                    let x = h[4 * j + 2 * b + side];
                    (x & !LOW2, x & 1 != 0, x & 2 != 0)
                };
                let ex = [[e(0, 0), e(0, 1)], [e(1, 0), e(1, 1)]];
                let scw = ex[0][lose].0 ^ ex[1][lose].0;
                let vc = (a == 1) ^ v[j] ^ ex[0][lose].2 ^ ex[1][lose].2;
                v[j] ^= ex[0][keep].2 ^ ex[1][keep].2 ^ vc;
                let tcw = [ex[0][0].1 ^ ex[1][0].1 ^ (a == 0), ex[0][1].1 ^ ex[1][1].1 ^ (a == 1)];
                cw[(c * nu + l) * LANES + j] = scw | tcw[0] as Block | ((tcw[1] as Block) << 1);
                vcw[lo + j] |= (vc as u64) << l;
                for b in 0..2 {
                    let tb = t[j][b];
                    s[j][b] = ex[b][keep].0 ^ (scw & (tb as Block).wrapping_neg());
                    t[j][b] = ex[b][keep].1 ^ (tb & tcw[keep]);
                }
            }
        }
        let mut lv = [0 as Block; 2 * LANES];
        for j in 0..LANES {
            lv[2 * j] = s[j][0] | 2;
            lv[2 * j + 1] = s[j][1] | 2;
        }
        hash_blocks(backend, &mut lv);
        for j in 0..LANES {
            let low = alpha[j] & ((1u64 << lbits) - 1);
            let target: Block = if low == 0 { 0 } else { Block::MAX >> (128 - low) };
            let vmask = (v[j] as Block).wrapping_neg();
            leaf[lo + j] = lv[2 * j] ^ lv[2 * j + 1] ^ target ^ vmask;
        }
    }
    let cws = Arc::new(BitCws { n, len, cw, vcw, leaf });
    Ok((
        BitDcfBatch { party: Party::P0, seeds: seeds0, cws: Arc::clone(&cws) },
        BitDcfBatch { party: Party::P1, seeds: seeds1, cws },
    ))
}

/// Evaluates key `i` of `party`'s batch at `xs[i]` (read mod 2^n): `out[i]` is that party's
/// XOR share (0 or 1) of `1{xs[i] < alpha_i}`.
pub fn eval_bit_batch(party: Party, keys: &BitDcfBatch, xs: &[u64], out: &mut [u8]) -> Result<()> {
    eval_bit_batch_with(AesBackend::detect(), party, keys, xs, out)
}

/// [`eval_bit_batch`] with an explicit AES backend.
pub fn eval_bit_batch_with(
    backend: AesBackend,
    party: Party,
    keys: &BitDcfBatch,
    xs: &[u64],
    out: &mut [u8],
) -> Result<()> {
    eval_bit_batch_threads(backend, party, keys, xs, out, 1)
}

/// [`eval_bit_batch_with`] on up to `threads` threads (contiguous ranges of chunks).
pub fn eval_bit_batch_threads(
    backend: AesBackend,
    party: Party,
    keys: &BitDcfBatch,
    xs: &[u64],
    out: &mut [u8],
    threads: usize,
) -> Result<()> {
    if keys.party != party {
        return Err(MpcError::WrongParty { op: "compact dcf eval".into(), expected: party, got: keys.party });
    }
    for (what, got) in [("xs", xs.len()), ("out", out.len())] {
        if got != keys.len() {
            return Err(MpcError::ShapeMismatch {
                op: format!("compact dcf eval ({what} vs keys)"),
                expected: format!("[{}]", keys.len()),
                got: format!("[{got}]"),
            });
        }
    }
    let backend = if backend.is_available() { backend } else { AesBackend::Portable };
    let chunks = keys.cws.len.div_ceil(LANES);
    super::split_chunks(chunks, keys.len(), threads, out, |range, out| {
        #[cfg(target_arch = "x86_64")]
        if backend == AesBackend::Vaes {
            return eval_vaes(party, keys, xs, out, range);
        }
        eval_generic(backend, party, keys, xs, out, range)
    });
    Ok(())
}

/// Evaluates chunks `range` one at a time, hashing a level's blocks per call; `out` starts at
/// the range's first key.
fn eval_generic(
    backend: AesBackend,
    party: Party,
    keys: &BitDcfBatch,
    xs: &[u64],
    out: &mut [u8],
    range: std::ops::Range<usize>,
) {
    let cws = &*keys.cws;
    let n = cws.n;
    let nu = levels(n) as usize;
    let lbits = n - nu as u32;
    let tb = party.index() as Block;
    let base = range.start * LANES;
    let mut h = [0 as Block; LANES];
    for c in range {
        let lo = c * LANES;
        let m = (cws.len - lo).min(LANES);
        let mut x = [0u64; LANES];
        x[..m].copy_from_slice(&xs[lo..lo + m]);
        // State: seed (bits 2..) | t (bit 0); the path bits, most significant first, in x.
        let mut st: [Block; LANES] = std::array::from_fn(|j| keys.seeds[lo + j] | tb);
        let mut acc = [0u64; LANES];
        let xl: [u64; LANES] = std::array::from_fn(|j| x[j] & ((1u64 << lbits) - 1));
        let mut xs_hi: [u64; LANES] = std::array::from_fn(|j| if nu == 0 { 0 } else { x[j] << (64 - n) });
        let ccw = &cws.cw[c * nu * LANES..(c + 1) * nu * LANES];
        for (l, lcw) in ccw.chunks_exact(LANES).enumerate() {
            let mut bits = [0u32; LANES];
            for j in 0..LANES {
                bits[j] = (xs_hi[j] >> 63) as u32;
                xs_hi[j] <<= 1;
                h[j] = (st[j] & !LOW2) | bits[j] as Block;
            }
            hash_blocks(backend, &mut h);
            for j in 0..LANES {
                let scw = lcw[j];
                let tm = (st[j] & 1).wrapping_neg();
                let vbit = ((cws.vcw[lo + j] >> l) & 1) as Block;
                let corr = (scw & !LOW2) | ((scw >> bits[j]) & 1) | (vbit << 1);
                let y = h[j] ^ (corr & tm);
                acc[j] ^= ((y >> 1) & 1) as u64;
                st[j] = y & !2;
            }
        }
        for j in 0..LANES {
            h[j] = (st[j] & !LOW2) | 2;
        }
        hash_blocks(backend, &mut h);
        for j in 0..m {
            let tm = (st[j] & 1).wrapping_neg();
            let lf = h[j] ^ (cws.leaf[lo + j] & tm);
            out[lo - base + j] = (acc[j] as u8) ^ ((lf >> xl[j]) & 1) as u8;
        }
    }
}

/// The VAES path: two chunks per kernel call (8 AES chains in flight), one for an odd last chunk.
#[cfg(target_arch = "x86_64")]
fn eval_vaes(party: Party, keys: &BitDcfBatch, xs: &[u64], out: &mut [u8], range: std::ops::Range<usize>) {
    use super::bit_vaes::{Chunk, eval_chunks};
    let cws = &*keys.cws;
    let nu = levels(cws.n) as usize;
    let rk = super::prg::x86::round_keys();
    let chunk = |c: usize| {
        let lo = c * LANES;
        let m = (cws.len - lo).min(LANES);
        let mut x = [0u64; LANES];
        x[..m].copy_from_slice(&xs[lo..lo + m]);
        Chunk {
            cw: &cws.cw[c * nu * LANES..(c + 1) * nu * LANES],
            vcw: &cws.vcw[lo..lo + LANES],
            leaf: &cws.leaf[lo..lo + LANES],
            seeds: &keys.seeds[lo..lo + LANES],
            xs: x,
        }
    };
    let (chunks, base) = (range.end, range.start * LANES);
    let mut c = range.start;
    while c < chunks {
        let lo = c * LANES;
        let o = lo - base;
        if c + 1 < chunks {
            let mut y = [[0u8; LANES]; 2];
            // SAFETY: the caller checked that the VAES backend is available.
            unsafe { eval_chunks::<2>(rk, party, cws.n, nu, &[chunk(c), chunk(c + 1)], &mut y) };
            out[o..o + LANES].copy_from_slice(&y[0]);
            let m = (cws.len - lo - LANES).min(LANES);
            out[o + LANES..o + LANES + m].copy_from_slice(&y[1][..m]);
            c += 2;
        } else {
            let mut y = [[0u8; LANES]; 1];
            // SAFETY: as above.
            unsafe { eval_chunks::<1>(rk, party, cws.n, nu, &[chunk(c)], &mut y) };
            let m = (cws.len - lo).min(LANES);
            out[o..o + m].copy_from_slice(&y[0][..m]);
            c += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha12Rng;

    fn check(n: u32, alphas: &[u64], xs: &[u64], seed: u64) {
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        let (k0, k1) = gen_bit_batch(n, alphas, &mut rng).unwrap();
        for backend in AesBackend::ALL {
            for &x in xs {
                let xv = vec![x; alphas.len()];
                let (mut y0, mut y1) = (vec![0; alphas.len()], vec![0; alphas.len()]);
                eval_bit_batch_with(backend, Party::P0, &k0, &xv, &mut y0).unwrap();
                eval_bit_batch_with(backend, Party::P1, &k1, &xv, &mut y1).unwrap();
                for (i, &a) in alphas.iter().enumerate() {
                    let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                    let want = ((x & mask) < a) as u8;
                    assert_eq!(y0[i] ^ y1[i], want, "n {n} alpha {a} x {x} {backend:?}");
                }
            }
        }
    }

    #[test]
    fn exhaustive_small_n() {
        for n in 1..=10 {
            let all: Vec<u64> = (0..(1u64 << n)).collect();
            check(n, &all, &all, n as u64);
        }
    }

    #[test]
    fn random_wide_n() {
        let mut rng = ChaCha12Rng::seed_from_u64(9);
        for n in [39, 40, 63, 64] {
            let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            let alphas: Vec<u64> = (0..37).map(|_| rng.next_u64() & mask).collect();
            let mut xs: Vec<u64> = (0..40).map(|_| rng.next_u64() & mask).collect();
            // Near the thresholds, where an off-by-one would show.
            for &a in &alphas[..5] {
                xs.extend([a.wrapping_sub(1) & mask, a, a.wrapping_add(1) & mask, a ^ 1, a ^ 0x80]);
            }
            check(n, &alphas, &xs, n as u64);
        }
    }

    #[test]
    fn threads_give_the_same_outputs() {
        let mut rng = ChaCha12Rng::seed_from_u64(5);
        let n = 63;
        let alphas: Vec<u64> = (0..1000).map(|_| rng.next_u64() >> 1).collect();
        let xs: Vec<u64> = (0..1000).map(|_| rng.next_u64() >> 1).collect();
        let (k0, k1) = gen_bit_batch(n, &alphas, &mut rng).unwrap();
        for backend in AesBackend::ALL {
            let mut want = (vec![0; 1000], vec![0; 1000]);
            eval_bit_batch_with(backend, Party::P0, &k0, &xs, &mut want.0).unwrap();
            eval_bit_batch_with(backend, Party::P1, &k1, &xs, &mut want.1).unwrap();
            for (i, (a, b)) in want.0.iter().zip(&want.1).enumerate() {
                assert_eq!(a ^ b, (xs[i] < alphas[i]) as u8);
            }
            for t in [2, 3, 7, 100] {
                let mut got = vec![0; 1000];
                eval_bit_batch_threads(backend, Party::P0, &k0, &xs, &mut got, t).unwrap();
                assert_eq!(got, want.0, "{backend:?}, {t} threads");
            }
        }
    }

    #[test]
    fn bytes_round_trip_and_size() {
        assert_eq!(bit_key_bytes(63), 935);
        assert_eq!(bit_key_bytes(39), 548);
        assert_eq!(bit_key_bytes(5), 32);
        let mut rng = ChaCha12Rng::seed_from_u64(4);
        for n in [5, 40, 63] {
            let alphas: Vec<u64> = (0..21).map(|i| i * 3).collect();
            let (k0, k1) = gen_bit_batch(n, &alphas, &mut rng).unwrap();
            for k in [k0, k1] {
                let b = k.to_bytes();
                assert_eq!(b.len(), k.serialized_bytes());
                let back = BitDcfBatch::from_bytes(k.party(), n, k.len(), &b).unwrap();
                let xs: Vec<u64> = (0..21).map(|i| i * 5).collect();
                let (mut y, mut z) = (vec![0; 21], vec![0; 21]);
                eval_bit_batch(k.party(), &k, &xs, &mut y).unwrap();
                eval_bit_batch(k.party(), &back, &xs, &mut z).unwrap();
                assert_eq!(y, z);
            }
        }
        assert!(BitDcfBatch::from_bytes(Party::P0, 63, 2, &[0; 10]).is_err());
    }
}
