//! # masq-mpc — the two-party secure-computation engine of masq
//!
//! Two parties, P0 (server, model owner) and P1 (client, data owner), compute on additive
//! secret shares over Z_2^64, helped by a trusted dealer that produces correlated randomness
//! before the inputs exist (semi-honest security; see `shared/docs/PROTOCOLS.md`).
//!
//! Where to look:
//! - [`ring`], [`party`] and [`share`]: the ring, fixed point, the two parties, and the
//!   `#[must_use]` share type;
//! - [`transport`]: in-memory and TCP transports, framing, metering (bytes and rounds);
//! - [`dcf`]: distributed comparison functions (the FSS comparison behind ReLU);
//! - [`kernel`]: fast u64 GEMM / convolution kernels;
//! - [`dealer`]: the offline phase (what each party receives, and how many bytes that is);
//! - [`protocols`]: the online halves (open, Beaver, linear layers, truncation, ReLU, pools);
//! - [`cost`]: the cost model and latency estimates, for masq and for published protocols.
//!
//! ```
//! use masq_mpc::{ring::FixedPoint, share::{share, reconstruct}};
//! use ndarray::arr1;
//! use rand::SeedableRng;
//! let fp = FixedPoint::default();
//! let x = arr1(&[fp.encode(1.5), fp.encode(-2.0)]).into_dyn();
//! let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(7);
//! let (x0, x1) = share(&x, &mut rng);
//! assert_eq!(reconstruct(&x0, &x1).unwrap(), x);
//! ```

pub mod alloc;
pub mod bytes;
pub mod dcf;
pub mod error;
pub mod kernel;
pub mod party;
pub mod ring;
pub mod share;
pub mod transport;

pub use error::{MpcError, Result};
pub use party::Party;
pub use ring::{Elem, FixedPoint};
pub use share::Share;
pub mod bench;
pub mod cost;
pub mod dealer;
pub mod protocols;
pub mod sim;
