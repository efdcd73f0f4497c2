//! The online halves of the protocols. Each module's docs carry its message diagram.
//!
//! All functions take the party's [`Ctx`], check that the shares belong to it, take exactly the
//! preprocessing they need (a typed error when it is missing or for another computation), and
//! log their measured cost as one [`StepRecord`].

pub mod beaver;
pub mod ctx;
pub mod linear;
pub mod open;
pub mod pool;
pub mod reclaim;
pub mod relu;
pub mod trunc;

pub use crate::dealer::CmpMode;
pub use beaver::{matmul, matmul_dims, mul, square};
pub use ctx::{Ctx, StepRecord};
pub use linear::{linear, precompute, setup_layers};
pub use open::{open, reveal};
pub use pool::{PoolParams, avgpool, global_avgpool, max_tree, maxpool, maxpool_requests};
pub use relu::{DEFAULT_CMP_BITS, Replacement, drelu, masked_act, masked_act_request, relu};
pub use trunc::truncate;
