//! Distributed comparison functions (DCF; Boyle et al., EUROCRYPT 2021, eprint 2020/1392).
//!
//! The dealer's [`gen`] gives P0 and P1 keys for `f(x) = beta · 1{x < alpha}` on `n`-bit inputs
//! with a payload of two ring words; `eval(0,k0,x) + eval(1,k1,x) = f(x)` in Z_2^64 (per word).
//! See PROTOCOLS.md ("Comparison: DCF-based") for the construction.
