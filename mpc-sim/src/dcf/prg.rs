//! The DCF's length-doubling PRG: fixed-key AES-128 in Matyas–Meyer–Oseas form.
//!
//! `H(x) = AES_K(x) xor x` with a public, fixed key `K`. A 128-bit seed `s` (its two low bits
//! are always zero) is expanded into four blocks by tweaking those two low bits:
//!
//! ```text
//! H(s | 0) -> seed_L (bit 0 = t_L)     H(s | 1) -> v_L (two ring words)
//! H(s | 2) -> seed_R (bit 0 = t_R)     H(s | 3) -> v_R
//! ```
//!
//! so the evaluator, which follows one path, hashes only the two blocks of its side. The blocks
//! of one call are all distinct inputs to the same random permutation, which is what the
//! correlation-robustness argument for MMO needs.
//!
//! Three interchangeable implementations give bit-identical results: [`AesBackend::Portable`]
//! (the `aes` crate; runs anywhere), [`AesBackend::AesNi`] (128-bit AES-NI intrinsics, 8 blocks
//! in flight) and [`AesBackend::Vaes`] (AVX-512 VAES, 4 blocks per instruction, 32 in flight).

use std::sync::OnceLock;

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit};

/// A 128-bit block, little-endian (bit 0 of the u128 is bit 0 of byte 0).
pub(crate) type Block = u128;

/// The fixed public AES key: the first 128 bits of the fractional part of pi.
pub(crate) const FIXED_KEY: u128 = 0x243F_6A88_85A3_08D3_1319_8A2E_0370_7344;

/// Which AES implementation the DCF uses. All give the same outputs; they differ only in speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AesBackend {
    /// The `aes` crate, one call per batch of blocks; works on every target.
    Portable,
    /// x86-64 AES-NI on 128-bit registers.
    AesNi,
    /// x86-64 AVX-512 + VAES: four AES blocks per instruction.
    Vaes,
}

impl AesBackend {
    /// All backends, slowest first.
    pub const ALL: [AesBackend; 3] = [AesBackend::Portable, AesBackend::AesNi, AesBackend::Vaes];

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            AesBackend::Portable => true,
            #[cfg(target_arch = "x86_64")]
            AesBackend::AesNi => {
                std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("sse2")
            }
            #[cfg(target_arch = "x86_64")]
            AesBackend::Vaes => {
                AesBackend::AesNi.is_available()
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("vaes")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest available backend, detected once. The environment variable `MASQ_DCF_AES`
    /// (`portable`, `aesni` or `vaes`) caps the choice, e.g. to exercise the fallback end to end;
    /// a capped choice the CPU cannot run falls back to the next slower one.
    pub fn detect() -> AesBackend {
        static CHOICE: OnceLock<AesBackend> = OnceLock::new();
        *CHOICE.get_or_init(|| {
            let cap = match std::env::var("MASQ_DCF_AES").ok().as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("portable") => AesBackend::Portable,
                Some("aesni") => AesBackend::AesNi,
                _ => AesBackend::Vaes,
            };
            let mut best = AesBackend::Portable;
            for b in AesBackend::ALL {
                if b.is_available() && b as u8 <= cap as u8 {
                    best = b;
                }
            }
            best
        })
    }
}

fn portable_cipher() -> &'static Aes128 {
    static CIPHER: OnceLock<Aes128> = OnceLock::new();
    CIPHER.get_or_init(|| Aes128::new(&FIXED_KEY.to_le_bytes().into()))
}

/// `blocks[i] = AES_K(blocks[i]) xor blocks[i]` with the `aes` crate.
pub(crate) fn hash_portable(blocks: &mut [Block]) {
    let cipher = portable_cipher();
    let mut buf = [aes::Block::default(); 32];
    for chunk in blocks.chunks_mut(32) {
        let buf = &mut buf[..chunk.len()];
        for (b, x) in buf.iter_mut().zip(chunk.iter()) {
            *b = x.to_le_bytes().into();
        }
        cipher.encrypt_blocks(buf);
        for (b, x) in buf.iter().zip(chunk.iter_mut()) {
            let y: [u8; 16] = (*b).into();
            *x ^= u128::from_le_bytes(y);
        }
    }
}

/// `blocks[i] = H(blocks[i])` with the given backend (which must be available).
pub(crate) fn hash_blocks(backend: AesBackend, blocks: &mut [Block]) {
    match backend {
        AesBackend::Portable => hash_portable(blocks),
        #[cfg(target_arch = "x86_64")]
        AesBackend::AesNi => {
            debug_assert!(backend.is_available());
            // SAFETY: callers only pass backends whose CPU features were detected.
            unsafe { x86::hash_aesni(x86::round_keys(), blocks) }
        }
        #[cfg(target_arch = "x86_64")]
        AesBackend::Vaes => {
            debug_assert!(backend.is_available());
            // SAFETY: as above.
            unsafe { x86::hash_vaes(x86::round_keys(), blocks) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        _ => hash_portable(blocks),
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    use super::{Block, FIXED_KEY};

    /// The 11 AES-128 round keys of [`FIXED_KEY`], as little-endian u128s.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct RoundKeys(pub(crate) [u128; 11]);

    /// Round keys, expanded once (needs AES-NI; call only after detection).
    pub(crate) fn round_keys() -> &'static RoundKeys {
        static RK: OnceLock<RoundKeys> = OnceLock::new();
        // SAFETY: only reached from backends that detected AES-NI.
        RK.get_or_init(|| unsafe { expand_key(FIXED_KEY) })
    }

    #[target_feature(enable = "aes,sse2")]
    fn expand_key(key: u128) -> RoundKeys {
        #[inline]
        #[target_feature(enable = "sse2")]
        fn step(prev: __m128i, assist: __m128i) -> __m128i {
            let t = _mm_shuffle_epi32::<0xff>(assist);
            let mut k = prev;
            k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            _mm_xor_si128(k, t)
        }
        let mut rk = [0u128; 11];
        let mut k = to_m128(key);
        rk[0] = from_m128(k);
        macro_rules! round {
            ($i:expr, $rcon:expr) => {
                k = step(k, _mm_aeskeygenassist_si128::<$rcon>(k));
                rk[$i] = from_m128(k);
            };
        }
        round!(1, 0x01);
        round!(2, 0x02);
        round!(3, 0x04);
        round!(4, 0x08);
        round!(5, 0x10);
        round!(6, 0x20);
        round!(7, 0x40);
        round!(8, 0x80);
        round!(9, 0x1b);
        round!(10, 0x36);
        RoundKeys(rk)
    }

    #[inline(always)]
    pub(crate) fn to_m128(x: u128) -> __m128i {
        // SAFETY: u128 and __m128i have the same size; any bit pattern is valid for both.
        unsafe { std::mem::transmute::<u128, __m128i>(x) }
    }

    #[inline(always)]
    pub(crate) fn from_m128(x: __m128i) -> u128 {
        // SAFETY: as above.
        unsafe { std::mem::transmute::<__m128i, u128>(x) }
    }

    /// Hashes with 128-bit AES-NI, 8 blocks in flight.
    #[target_feature(enable = "aes,sse2")]
    pub(crate) fn hash_aesni(rk: &RoundKeys, blocks: &mut [Block]) {
        let k: [__m128i; 11] = rk.0.map(to_m128);
        let mut chunks = blocks.chunks_exact_mut(8);
        for chunk in &mut chunks {
            let x: [__m128i; 8] = std::array::from_fn(|i| to_m128(chunk[i]));
            let mut y = x.map(|v| _mm_xor_si128(v, k[0]));
            for r in &k[1..10] {
                for v in &mut y {
                    *v = _mm_aesenc_si128(*v, *r);
                }
            }
            for i in 0..8 {
                chunk[i] = from_m128(_mm_xor_si128(_mm_aesenclast_si128(y[i], k[10]), x[i]));
            }
        }
        for b in chunks.into_remainder() {
            let x = to_m128(*b);
            let mut y = _mm_xor_si128(x, k[0]);
            for r in &k[1..10] {
                y = _mm_aesenc_si128(y, *r);
            }
            *b = from_m128(_mm_xor_si128(_mm_aesenclast_si128(y, k[10]), x));
        }
    }

    /// Broadcasts each round key into all four 128-bit lanes.
    #[target_feature(enable = "avx512f")]
    pub(crate) fn wide_keys(rk: &RoundKeys) -> [__m512i; 11] {
        rk.0.map(|k| _mm512_broadcast_i32x4(to_m128(k)))
    }

    /// Hashes with VAES, 32 blocks (8 registers) in flight.
    #[target_feature(enable = "avx512f,vaes,aes,sse2")]
    pub(crate) fn hash_vaes(rk: &RoundKeys, blocks: &mut [Block]) {
        let k = wide_keys(rk);
        let mut chunks = blocks.chunks_exact_mut(32);
        for chunk in &mut chunks {
            let p = chunk.as_mut_ptr() as *mut __m512i;
            // SAFETY: the chunk holds 32 u128 = 8 * 64 bytes; unaligned loads/stores.
            let x: [__m512i; 8] = std::array::from_fn(|i| unsafe { _mm512_loadu_si512(p.add(i)) });
            let mut y = x.map(|v| _mm512_xor_si512(v, k[0]));
            for r in &k[1..10] {
                for v in &mut y {
                    *v = _mm512_aesenc_epi128(*v, *r);
                }
            }
            for i in 0..8 {
                let out = _mm512_xor_si512(_mm512_aesenclast_epi128(y[i], k[10]), x[i]);
                // SAFETY: as above.
                unsafe { _mm512_storeu_si512(p.add(i), out) };
            }
        }
        hash_aesni(rk, chunks.into_remainder());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<Block> {
        let mut x = 0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C834u128;
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(0x2360_ED05_1FC6_5DA4_4385_DF64_9FCC_F645).wrapping_add(0x5851_F42D_4C95_7F2D);
                x
            })
            .collect()
    }

    #[test]
    fn aes_matches_fips197_vector() {
        // FIPS-197 appendix C.1 (AES-128): checks that the portable path really is AES.
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let pt: [u8; 16] = std::array::from_fn(|i| (i as u8) * 0x11);
        let c = Aes128::new(&key.into());
        let mut b: aes::Block = pt.into();
        c.encrypt_block(&mut b);
        let want = [0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a];
        assert_eq!(<[u8; 16]>::from(b), want);
    }

    #[test]
    fn backends_agree() {
        for len in [0, 1, 7, 8, 9, 31, 32, 33, 100] {
            let x = sample(len);
            let mut want = x.clone();
            hash_portable(&mut want);
            assert!(want.iter().zip(&x).all(|(a, b)| a != b) || len == 0);
            for b in AesBackend::ALL {
                if b.is_available() {
                    let mut got = x.clone();
                    hash_blocks(b, &mut got);
                    assert_eq!(got, want, "backend {b:?}, len {len}");
                }
            }
        }
    }
}
