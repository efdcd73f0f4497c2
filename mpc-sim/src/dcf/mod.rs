//! Distributed comparison functions (DCF; Boyle, Chandran, Gilboa, Gupta, Ishai, Kumar, Rathee,
//! EUROCRYPT 2021, eprint 2020/1392).
//!
//! The dealer's [`gen_key`] gives P0 and P1 keys for `f(x) = beta · 1{x < alpha}` on `n`-bit inputs
//! (`1 <= n <= 64`, `x` and `alpha` read mod 2^n) with a payload of two ring words `beta = [b0, b1]`:
//! `eval(P0, k0, x) + eval(P1, k1, x) = f(x)` in Z_2^64, word by word. Each key alone is a
//! pseudorandom string that hides `alpha` and `beta`. [`gen_batch`] / [`eval_batch`] do the same for
//! many keys at once in a struct-of-arrays layout; that is the path the ReLU protocol uses.
//!
//! # Who gets what
//!
//! ```text
//!                        dealer D  (offline, knows alpha, beta)
//!          draws seeds s0, s1; walks the path of alpha through a binary tree of depth n
//!          +-------------------------------------------------------------------------+
//!          | k0 = ( s0 ,  CW_1 .. CW_n ,  CW_{n+1} )     CW_i = ( sCW_i  : 126 bits   |
//!          | k1 = ( s1 ,  CW_1 .. CW_n ,  CW_{n+1} )            tCW_i^L, tCW_i^R     |
//!          |       own    \______ identical in both keys __/     VCW_i  : 2 x u64 )   |
//!          +-------------------------------------------------------------------------+
//!                   | k0  (32(n+1) bytes)                    | k1  (32(n+1) bytes)
//!                   v                                        v
//!                  P0                                        P1
//!        y0 = Eval(0, k0, x)   (online: both know the public x, no messages)   y1 = Eval(1, k1, x)
//!                           y0 + y1 = beta · 1{x < alpha}   (mod 2^64, per word)
//! ```
//!
//! # Construction
//!
//! A length-doubling PRG `G(s) = (s_L, t_L, v_L, s_R, t_R, v_R)` (see [`AesBackend`] and the `prg`
//! module: fixed-key AES-128, MMO `H(x) = AES_K(x) xor x`, four tweaks of one seed) expands a node's
//! seed into its two children: a 126-bit child seed, a control bit `t` and a 128-bit value `v` read as
//! two ring words. Each party walks the tree along the bits of `x`, most significant first, holding
//! a seed `s_b` and a control bit `t_b` (`t_0 = 0`, `t_1 = 1` at the root):
//!
//! - off the path of `alpha` the two parties hold *equal* seeds and bits, so their expansions are
//!   equal and cancel in `y0 + y1`;
//! - on the path the seeds differ and `t_0 xor t_1 = 1`; the correction words `CW_i` (applied by the
//!   party whose `t` is 1) make the child that leaves the path ("Lose") equal again for both
//!   parties and keep the child on the path ("Keep") different;
//! - each party adds `(-1)^b · (v + t·VCW_i)` to its output as it descends. `VCW_i` is chosen so that
//!   the sum of the two parties' accumulated values is `beta` exactly when the path leaves
//!   `alpha`'s path to the left at a bit where `alpha` has a 1 (there `x < alpha` is decided) and 0
//!   otherwise; the final word `CW_{n+1}` cancels the seeds at the leaf `x = alpha`.
//!
//! Gen (per level `i`, `a` = bit `i` of `alpha`, Keep = side `a`, Lose = the other side):
//! `sCW = s0^Lose xor s1^Lose`; `VCW = (-1)^t1 · (v1^Lose - v0^Lose - V)`, plus `(-1)^t1 · beta` when
//! `a = 1`; `V <- V - v1^Keep + v0^Keep + (-1)^t1 · VCW`; `tCW^L = t0^L xor t1^L xor a xor 1`,
//! `tCW^R = t0^R xor t1^R xor a`; `s_b <- s_b^Keep xor t_b·sCW`, `t_b <- t_b^Keep xor t_b·tCW^Keep`.
//! Finally `CW_{n+1} = (-1)^t1 · (s1 - s0 - V)` with seeds read as two ring words.
//! Eval expands only the side of `x`'s bit: two AES blocks per level.
//!
//! Layout details: seeds are 126 bits (their two low bits are zero), which leaves room to pack
//! `tCW^L` and `tCW^R` into bits 0 and 1 of `sCW`, so a level costs exactly 32 bytes:
//! [`key_bytes`]`(n) = 16 (seed) + 32·n + 16 (CW_{n+1})` = 2048 bytes at n = 63.
//! In memory a [`DcfKeyBatch`] stores keys in chunks of [`LANES`] keys, level-major inside a chunk
//! (`[chunk][level][16 sCW | 16 VCW]`), so lockstep evaluation of a chunk reads one sequential
//! stream; the correction words are shared (`Arc`) by the two parties' batches in this
//! one-process simulation, as they are identical.
//!
//! ```
//! use masq_mpc::{dcf, share::Party};
//! use rand::SeedableRng;
//! let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(1);
//! let (k0, k1) = dcf::gen_key(8, 100, [5, 7], &mut rng).unwrap();
//! for x in [0u64, 99, 100, 255] {
//!     let y0 = dcf::eval(Party::P0, &k0, x).unwrap();
//!     let y1 = dcf::eval(Party::P1, &k1, x).unwrap();
//!     let want = if x < 100 { [5, 7] } else { [0, 0] };
//!     assert_eq!([y0[0].wrapping_add(y1[0]), y0[1].wrapping_add(y1[1])], want);
//! }
//! ```

pub mod bit;
#[cfg(target_arch = "x86_64")]
mod bit_vaes;
mod prg;
#[cfg(target_arch = "x86_64")]
mod vaes;

use std::fmt;
use std::sync::Arc;

use rand::RngCore;

pub use bit::{BitDcfBatch, bit_key_bytes, eval_bit_batch, gen_bit_batch};
pub use prg::AesBackend;
use prg::{Block, hash_blocks};

use crate::error::{MpcError, Result};
use crate::party::Party;

/// Keys evaluated in lockstep; also the chunk size of the in-memory batch layout.
pub const LANES: usize = 16;

/// Bits 0 and 1 of a seed block: `t` lives in bit 0 of a stored state; both are zero in seeds.
const LOW2: Block = 3;

/// Bytes of one party's key for `n`-bit inputs: seed (16) + n levels × (sCW with packed tCW bits
/// 16 + VCW 16) + the final correction word (16) = `32·(n + 1)`.
pub fn key_bytes(n: u32) -> usize {
    32 * (n as usize + 1)
}

fn check_n(n: u32) -> Result<()> {
    if (1..=64).contains(&n) {
        Ok(())
    } else {
        Err(MpcError::InvalidParameter {
            name: "dcf input bits n",
            value: n.to_string(),
            reason: "must be between 1 and 64".into(),
        })
    }
}

#[inline(always)]
fn words(x: Block) -> [u64; 2] {
    [x as u64, (x >> 64) as u64]
}

#[inline(always)]
fn block(w: [u64; 2]) -> Block {
    w[0] as Block | ((w[1] as Block) << 64)
}

#[inline(always)]
fn add2(a: [u64; 2], b: [u64; 2]) -> [u64; 2] {
    [a[0].wrapping_add(b[0]), a[1].wrapping_add(b[1])]
}

#[inline(always)]
fn sub2(a: [u64; 2], b: [u64; 2]) -> [u64; 2] {
    [a[0].wrapping_sub(b[0]), a[1].wrapping_sub(b[1])]
}

#[inline(always)]
fn neg2_if(a: [u64; 2], neg: bool) -> [u64; 2] {
    // Branch-free: the condition is a secret-dependent, unpredictable bit.
    let m = (neg as u64).wrapping_neg();
    [(a[0] ^ m).wrapping_sub(m), (a[1] ^ m).wrapping_sub(m)]
}

/// All ones when bit 0 of `x` is set, else zero.
#[inline(always)]
fn lsb_mask(x: Block) -> Block {
    (x & 1).wrapping_neg()
}

#[inline(always)]
fn and2(a: [u64; 2], m: u64) -> [u64; 2] {
    [a[0] & m, a[1] & m]
}

/// One party's DCF key for a single comparison.
#[derive(Clone, PartialEq, Eq)]
pub struct DcfKey {
    party: Party,
    n: u32,
    seed: Block,
    /// Per level: `[sCW | tCW^L | tCW^R << 1, VCW]`.
    levels: Vec<[Block; 2]>,
    fin: Block,
}

impl fmt::Debug for DcfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DcfKey({}, n = {})", self.party, self.n)
    }
}

impl DcfKey {
    /// Whose key this is.
    pub fn party(&self) -> Party {
        self.party
    }

    /// Input bit width.
    pub fn n(&self) -> u32 {
        self.n
    }

    /// Bytes the dealer sends for this key: [`key_bytes`]`(n)`.
    pub fn serialized_bytes(&self) -> usize {
        key_bytes(self.n)
    }

    /// This party's share of `beta · 1{x < alpha}` (x read mod 2^n).
    pub fn eval(&self, x: u64) -> [u64; 2] {
        self.eval_with(AesBackend::detect(), x)
    }

    fn eval_with(&self, backend: AesBackend, x: u64) -> [u64; 2] {
        let backend = if backend.is_available() { backend } else { AesBackend::Portable };
        let mut s = self.seed | self.party.index() as Block;
        let mut v = [0u64; 2];
        let mut xs = x << (64 - self.n);
        for &[scw, vcw] in &self.levels {
            let bit = (xs >> 63) as u32;
            xs <<= 1;
            let base = (s & !LOW2) | ((bit as Block) << 1);
            let mut h = [base, base | 1];
            hash_blocks(backend, &mut h);
            let tm = lsb_mask(s);
            let corr = (scw & !LOW2) | ((scw >> bit) & 1);
            s = (h[0] & !2) ^ (corr & tm);
            v = add2(add2(v, words(h[1])), and2(words(vcw), tm as u64));
        }
        v = add2(add2(v, words(s & !LOW2)), and2(words(self.fin), lsb_mask(s) as u64));
        neg2_if(v, self.party == Party::P1)
    }
}

/// The dealer's key generation for one comparison `beta · 1{x < alpha}` on `n`-bit inputs.
pub fn gen_key<R: RngCore + ?Sized>(n: u32, alpha: u64, beta: [u64; 2], rng: &mut R) -> Result<(DcfKey, DcfKey)> {
    let (b0, b1) = gen_batch(n, &[alpha], &[beta], rng)?;
    Ok((b0.key(0), b1.key(0)))
}

/// Evaluates `party`'s key at `x`: that party's share of `beta · 1{x < alpha}`.
pub fn eval(party: Party, key: &DcfKey, x: u64) -> Result<[u64; 2]> {
    if key.party != party {
        return Err(MpcError::WrongParty { op: "dcf eval".into(), expected: party, got: key.party });
    }
    Ok(key.eval(x))
}

/// Correction words of a batch; identical in both parties' keys.
#[derive(Clone, PartialEq, Eq)]
struct CwStore {
    n: u32,
    len: usize,
    /// `[chunk][level][LANES sCW (tCW bits packed), LANES VCW]`.
    cw: Vec<Block>,
    /// `[chunk][LANES]` final correction words.
    fin: Vec<Block>,
}

impl CwStore {
    fn chunks(&self) -> usize {
        self.len.div_ceil(LANES)
    }

    fn chunk_cw(&self, c: usize) -> &[Block] {
        let per = self.n as usize * 2 * LANES;
        &self.cw[c * per..(c + 1) * per]
    }

    fn chunk_fin(&self, c: usize) -> &[Block] {
        &self.fin[c * LANES..(c + 1) * LANES]
    }
}

/// One party's keys for a batch of comparisons sharing the input width `n`, in the
/// struct-of-arrays layout of the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct DcfKeyBatch {
    party: Party,
    /// Root seeds, padded to a multiple of [`LANES`].
    seeds: Vec<Block>,
    cws: Arc<CwStore>,
}

impl fmt::Debug for DcfKeyBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DcfKeyBatch({}, n = {}, {} keys)", self.party, self.cws.n, self.cws.len)
    }
}

/// Alias kept for readers who look for a "DCF batch".
pub type DcfBatch = DcfKeyBatch;

impl DcfKeyBatch {
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

    /// Exact bytes the dealer sends this party for the batch: `len · key_bytes(n)` (seed and
    /// correction words; the CWs are the same in both parties' keys, each party gets a copy).
    pub fn serialized_bytes(&self) -> usize {
        self.cws.len * key_bytes(self.cws.n)
    }

    /// Copies key `i` out as a stand-alone [`DcfKey`]. Panics if `i >= len`.
    pub fn key(&self, i: usize) -> DcfKey {
        assert!(i < self.len(), "key index {i} out of range for a batch of {}", self.len());
        let (c, j) = (i / LANES, i % LANES);
        let cw = self.cws.chunk_cw(c);
        let levels = (0..self.cws.n as usize).map(|l| [cw[l * 2 * LANES + j], cw[l * 2 * LANES + LANES + j]]).collect();
        DcfKey { party: self.party, n: self.cws.n, seed: self.seeds[i], levels, fin: self.cws.chunk_fin(c)[j] }
    }

    /// Serialises this party's keys, key after key: seed, then per level sCW (tCW bits in bits 0
    /// and 1) and VCW, then CW_{n+1}; every block 16 bytes little-endian. The length is exactly
    /// [`Self::serialized_bytes`]; the batch's `n`, length and party travel out of band.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.serialized_bytes());
        for i in 0..self.len() {
            let k = self.key(i);
            out.extend_from_slice(&k.seed.to_le_bytes());
            for [s, v] in &k.levels {
                out.extend_from_slice(&s.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&k.fin.to_le_bytes());
        }
        out
    }

    /// Reads what [`Self::to_bytes`] wrote.
    pub fn from_bytes(party: Party, n: u32, len: usize, bytes: &[u8]) -> Result<DcfKeyBatch> {
        check_n(n)?;
        let kb = key_bytes(n);
        if Some(bytes.len()) != len.checked_mul(kb) {
            return Err(MpcError::Decode {
                during: "reading dcf keys",
                reason: format!("{} bytes for {len} keys of {kb} bytes", bytes.len()),
            });
        }
        let chunks = len.div_ceil(LANES);
        let nl = n as usize;
        let mut seeds = vec![0; chunks * LANES];
        let mut cw = vec![0; chunks * nl * 2 * LANES];
        let mut fin = vec![0; chunks * LANES];
        let rd = |off: usize| u128::from_le_bytes(bytes[off..off + 16].try_into().expect("16 bytes"));
        #[allow(clippy::needless_range_loop)] // `i` addresses three arrays in two layouts
        for i in 0..len {
            let (c, j) = (i / LANES, i % LANES);
            let base = i * kb;
            seeds[i] = rd(base);
            for l in 0..nl {
                let at = (c * nl + l) * 2 * LANES;
                cw[at + j] = rd(base + 16 + 32 * l);
                cw[at + LANES + j] = rd(base + 32 + 32 * l);
            }
            fin[c * LANES + j] = rd(base + 16 + 32 * nl);
        }
        Ok(DcfKeyBatch { party, seeds, cws: Arc::new(CwStore { n, len, cw, fin }) })
    }
}

/// The dealer's key generation for a batch: key `i` computes `betas[i] · 1{x < alphas[i]}`.
/// Uses the fastest available AES backend.
pub fn gen_batch<R: RngCore + ?Sized>(
    n: u32,
    alphas: &[u64],
    betas: &[[u64; 2]],
    rng: &mut R,
) -> Result<(DcfKeyBatch, DcfKeyBatch)> {
    gen_batch_with(AesBackend::detect(), n, alphas, betas, rng)
}

/// [`gen_batch`] with an explicit AES backend (outputs do not depend on the backend; an
/// unavailable backend falls back to [`AesBackend::Portable`]).
pub fn gen_batch_with<R: RngCore + ?Sized>(
    backend: AesBackend,
    n: u32,
    alphas: &[u64],
    betas: &[[u64; 2]],
    rng: &mut R,
) -> Result<(DcfKeyBatch, DcfKeyBatch)> {
    check_n(n)?;
    if alphas.len() != betas.len() {
        return Err(MpcError::ShapeMismatch {
            op: "dcf gen_batch (betas vs alphas)".into(),
            expected: format!("[{}]", alphas.len()),
            got: format!("[{}]", betas.len()),
        });
    }
    let backend = if backend.is_available() { backend } else { AesBackend::Portable };
    let len = alphas.len();
    let chunks = len.div_ceil(LANES);
    let nl = n as usize;
    let draw = |rng: &mut R| ((rng.next_u64() as Block) | ((rng.next_u64() as Block) << 64)) & !LOW2;
    let mut seeds0 = vec![0; chunks * LANES];
    let mut seeds1 = vec![0; chunks * LANES];
    for (s0, s1) in seeds0.iter_mut().zip(seeds1.iter_mut()).take(len) {
        *s0 = draw(rng);
        *s1 = draw(rng);
    }
    let mut cw = vec![0; chunks * nl * 2 * LANES];
    let mut fin = vec![0; chunks * LANES];
    let mut h = [0 as Block; 8 * LANES];
    for c in 0..chunks {
        let lo = c * LANES;
        let m = (len - lo).min(LANES);
        let mut alpha = [0u64; LANES];
        let mut beta = [[0u64; 2]; LANES];
        alpha[..m].copy_from_slice(&alphas[lo..lo + m]);
        beta[..m].copy_from_slice(&betas[lo..lo + m]);
        // Per lane and party: seed (bits 0, 1 clear) and control bit.
        let mut s = [[0 as Block; 2]; LANES];
        let mut t = [[false, true]; LANES];
        let mut vacc = [[0u64; 2]; LANES];
        for j in 0..LANES {
            s[j] = [seeds0[lo + j], seeds1[lo + j]];
        }
        let ccw = &mut cw[c * nl * 2 * LANES..(c + 1) * nl * 2 * LANES];
        for l in 0..nl {
            for j in 0..LANES {
                for b in 0..2 {
                    for k in 0..4 {
                        h[8 * j + 4 * b + k] = s[j][b] | k as Block;
                    }
                }
            }
            hash_blocks(backend, &mut h);
            let shift = nl - 1 - l;
            for j in 0..LANES {
                let a = ((alpha[j] >> shift) & 1) as usize;
                let (keep, lose) = (a, 1 - a);
                // ex[b][side] = (seed, t, v)
                let ex = |b: usize, side: usize| {
                    let hs = h[8 * j + 4 * b + 2 * side];
                    (hs & !LOW2, hs & 1 != 0, words(h[8 * j + 4 * b + 2 * side + 1]))
                };
                let e = [[ex(0, 0), ex(0, 1)], [ex(1, 0), ex(1, 1)]];
                let scw = e[0][lose].0 ^ e[1][lose].0;
                let neg = t[j][1];
                let mut vcw = neg2_if(sub2(sub2(e[1][lose].2, e[0][lose].2), vacc[j]), neg);
                vcw = add2(vcw, and2(neg2_if(beta[j], neg), (a as u64).wrapping_neg()));
                vacc[j] = add2(add2(sub2(vacc[j], e[1][keep].2), e[0][keep].2), neg2_if(vcw, neg));
                let tcw = [e[0][0].1 ^ e[1][0].1 ^ (a == 0), e[0][1].1 ^ e[1][1].1 ^ (a == 1)];
                ccw[l * 2 * LANES + j] = scw | tcw[0] as Block | ((tcw[1] as Block) << 1);
                ccw[l * 2 * LANES + LANES + j] = block(vcw);
                for b in 0..2 {
                    let tb = t[j][b];
                    s[j][b] = e[b][keep].0 ^ (scw & (tb as Block).wrapping_neg());
                    t[j][b] = e[b][keep].1 ^ (tb & tcw[keep]);
                }
            }
        }
        for j in 0..LANES {
            let f = sub2(sub2(words(s[j][1]), words(s[j][0])), vacc[j]);
            fin[c * LANES + j] = block(neg2_if(f, t[j][1]));
        }
    }
    let cws = Arc::new(CwStore { n, len, cw, fin });
    Ok((
        DcfKeyBatch { party: Party::P0, seeds: seeds0, cws: Arc::clone(&cws) },
        DcfKeyBatch { party: Party::P1, seeds: seeds1, cws },
    ))
}

/// Evaluates key `i` of `party`'s batch at `xs[i]` into `out[i]`, for all `i`, with the fastest
/// available AES backend.
pub fn eval_batch(party: Party, keys: &DcfKeyBatch, xs: &[u64], out: &mut [[u64; 2]]) -> Result<()> {
    eval_batch_with(AesBackend::detect(), party, keys, xs, out)
}

/// [`eval_batch`] with an explicit AES backend (an unavailable one falls back to
/// [`AesBackend::Portable`]).
pub fn eval_batch_with(
    backend: AesBackend,
    party: Party,
    keys: &DcfKeyBatch,
    xs: &[u64],
    out: &mut [[u64; 2]],
) -> Result<()> {
    eval_batch_threads(backend, party, keys, xs, out, 1)
}

/// [`eval_batch_with`] on up to `threads` threads (contiguous ranges of chunks; the same outputs).
pub fn eval_batch_threads(
    backend: AesBackend,
    party: Party,
    keys: &DcfKeyBatch,
    xs: &[u64],
    out: &mut [[u64; 2]],
    threads: usize,
) -> Result<()> {
    if keys.party != party {
        return Err(MpcError::WrongParty { op: "dcf eval_batch".into(), expected: party, got: keys.party });
    }
    for (what, got) in [("xs", xs.len()), ("out", out.len())] {
        if got != keys.len() {
            return Err(MpcError::ShapeMismatch {
                op: format!("dcf eval_batch ({what} vs keys)"),
                expected: format!("[{}]", keys.len()),
                got: format!("[{got}]"),
            });
        }
    }
    let backend = if backend.is_available() { backend } else { AesBackend::Portable };
    split_chunks(keys.cws.chunks(), keys.len(), threads, out, |range, out| {
        eval_chunks(backend, party, keys, xs, out, range)
    });
    Ok(())
}

/// Runs `f(chunk range, its outputs)` on up to `threads` scoped threads over contiguous ranges of
/// `chunks` chunks of [`LANES`] keys (`len` keys in all); one thread runs inline.
pub(crate) fn split_chunks<T: Send>(
    chunks: usize,
    len: usize,
    threads: usize,
    out: &mut [T],
    f: impl Fn(std::ops::Range<usize>, &mut [T]) + Sync,
) {
    let t = threads.clamp(1, chunks.max(1));
    if t == 1 {
        f(0..chunks, out);
        return;
    }
    let per = chunks.div_ceil(t);
    std::thread::scope(|s| {
        let mut rest = out;
        for i in 0..t {
            let (c0, c1) = (i * per, ((i + 1) * per).min(chunks));
            if c0 >= c1 {
                break;
            }
            let n = (c1 * LANES).min(len) - c0 * LANES;
            let (mine, r) = std::mem::take(&mut rest).split_at_mut(n);
            rest = r;
            let f = &f;
            s.spawn(move || f(c0..c1, mine));
        }
    });
}

/// Evaluates the keys of chunks `range` into `out` (which starts at the range's first key).
fn eval_chunks(
    backend: AesBackend,
    party: Party,
    keys: &DcfKeyBatch,
    xs: &[u64],
    out: &mut [[u64; 2]],
    range: std::ops::Range<usize>,
) {
    let cws = &*keys.cws;
    let len = cws.len;
    let base = range.start * LANES;
    for c in range {
        let lo = c * LANES;
        let m = (len - lo).min(LANES);
        let mut x = [0u64; LANES];
        x[..m].copy_from_slice(&xs[lo..lo + m]);
        let seeds: &[Block; LANES] = keys.seeds[lo..lo + LANES].try_into().expect("padded seeds");
        let mut y = [[0u64; 2]; LANES];
        let cw = cws.chunk_cw(c);
        let fin: &[Block; LANES] = cws.chunk_fin(c).try_into().expect("padded fin");
        match backend {
            #[cfg(target_arch = "x86_64")]
            AesBackend::Vaes => {
                // SAFETY: the caller checked that the backend's CPU features are available.
                unsafe { vaes::eval_chunk(prg::x86::round_keys(), party, cws.n, seeds, cw, fin, &x, &mut y) }
            }
            _ => eval_chunk_generic(backend, party, cws.n, seeds, cw, fin, &x, &mut y),
        }
        out[lo - base..lo - base + m].copy_from_slice(&y[..m]);
    }
}

/// Lockstep evaluation of one chunk of [`LANES`] keys, hashing a level's 32 blocks per call.
#[allow(clippy::too_many_arguments)]
fn eval_chunk_generic(
    backend: AesBackend,
    party: Party,
    n: u32,
    seeds: &[Block; LANES],
    cw: &[Block],
    fin: &[Block; LANES],
    xs: &[u64; LANES],
    out: &mut [[u64; 2]; LANES],
) {
    let tb = party.index() as Block;
    let mut s = seeds.map(|s| s | tb);
    let mut x = xs.map(|x| x << (64 - n));
    let mut v = [[0u64; 2]; LANES];
    let mut h = [0 as Block; 2 * LANES];
    let mut bits = [0u32; LANES];
    for lcw in cw.chunks_exact(2 * LANES) {
        for j in 0..LANES {
            let bit = (x[j] >> 63) as u32;
            x[j] <<= 1;
            bits[j] = bit;
            let base = (s[j] & !LOW2) | ((bit as Block) << 1);
            h[2 * j] = base;
            h[2 * j + 1] = base | 1;
        }
        hash_blocks(backend, &mut h);
        for j in 0..LANES {
            let scw = lcw[j];
            let tm = lsb_mask(s[j]);
            let corr = (scw & !LOW2) | ((scw >> bits[j]) & 1);
            s[j] = (h[2 * j] & !2) ^ (corr & tm);
            v[j] = add2(add2(v[j], words(h[2 * j + 1])), and2(words(lcw[LANES + j]), tm as u64));
        }
    }
    for j in 0..LANES {
        let y = add2(add2(v[j], words(s[j] & !LOW2)), and2(words(fin[j]), lsb_mask(s[j]) as u64));
        out[j] = neg2_if(y, party == Party::P1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha12Rng;

    fn check_all(n: u32, alpha: u64, beta: [u64; 2], seed: u64) {
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        let (k0, k1) = gen_key(n, alpha, beta, &mut rng).unwrap();
        for x in 0..(1u64 << n) {
            let y = add2(k0.eval(x), k1.eval(x));
            let want = if x < alpha { beta } else { [0, 0] };
            assert_eq!(y, want, "n {n} alpha {alpha} x {x}");
        }
    }

    #[test]
    fn small_exhaustive_single() {
        for n in 1..=4 {
            for alpha in 0..(1u64 << n) {
                check_all(n, alpha, [3, u64::MAX], alpha * 31 + n as u64);
            }
        }
    }

    #[test]
    fn threads_give_the_same_outputs() {
        let mut rng = ChaCha12Rng::seed_from_u64(6);
        let alphas: Vec<u64> = (0..777).map(|_| rng.next_u64() >> 1).collect();
        let betas: Vec<[u64; 2]> = (0..777).map(|i| [i, 3 * i]).collect();
        let xs: Vec<u64> = (0..777).map(|_| rng.next_u64() >> 1).collect();
        let (k0, _) = gen_batch(63, &alphas, &betas, &mut rng).unwrap();
        for backend in AesBackend::ALL {
            let mut want = vec![[0; 2]; 777];
            eval_batch_with(backend, Party::P0, &k0, &xs, &mut want).unwrap();
            for t in [2, 5, 64] {
                let mut got = vec![[0; 2]; 777];
                eval_batch_threads(backend, Party::P0, &k0, &xs, &mut got, t).unwrap();
                assert_eq!(got, want, "{backend:?}, {t} threads");
            }
        }
    }

    #[test]
    fn key_bytes_formula() {
        assert_eq!(key_bytes(63), 2048);
        let mut rng = ChaCha12Rng::seed_from_u64(2);
        let (b0, _) = gen_batch(40, &[1; 20], &[[1, 2]; 20], &mut rng).unwrap();
        assert_eq!(b0.serialized_bytes(), 20 * 32 * 41);
        assert_eq!(b0.to_bytes().len(), b0.serialized_bytes());
    }

    #[test]
    fn rejects_bad_input() {
        let mut rng = ChaCha12Rng::seed_from_u64(3);
        assert!(gen_key(0, 0, [0, 0], &mut rng).is_err());
        assert!(gen_key(65, 0, [0, 0], &mut rng).is_err());
        assert!(gen_batch(8, &[1, 2], &[[0, 0]], &mut rng).is_err());
        let (k0, k1) = gen_batch(8, &[1, 2], &[[0, 0]; 2], &mut rng).unwrap();
        let mut out = [[0; 2]; 2];
        assert!(eval_batch(Party::P1, &k0, &[0, 0], &mut out).is_err());
        assert!(eval_batch(Party::P1, &k1, &[0], &mut out).is_err());
        assert!(eval_batch(Party::P1, &k1, &[0, 0], &mut out[..1]).is_err());
        assert!(eval(Party::P0, &k1.key(0), 0).is_err());
        assert!(DcfKeyBatch::from_bytes(Party::P0, 8, 2, &[0; 10]).is_err());
    }
}
