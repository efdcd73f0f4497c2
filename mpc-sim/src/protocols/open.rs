//! Opening a shared value.
//!
//! ```text
//!   P0                      P1
//!   x0  ──────────────────▶
//!       ◀──────────────────  x1        (one round, n words each way)
//!   x = x0 + x1             x = x0 + x1
//! ```

use ndarray::{ArrayD, IxDyn};

use super::ctx::Ctx;
use crate::error::Result;
use crate::share::Share;
use crate::transport::Transport;

/// Opens `[x]` to both parties.
pub fn open<T: Transport>(ctx: &mut Ctx<T>, x: &Share) -> Result<ArrayD<u64>> {
    ctx.check_share("open", x)?;
    ctx.step("open", x.len(), |ctx| {
        let mine: Vec<u64> = x.data().iter().copied().collect();
        let theirs = ctx.exchange(&mine, "open")?;
        let sum: Vec<u64> = mine.iter().zip(&theirs).map(|(a, b)| a.wrapping_add(*b)).collect();
        Ok(ArrayD::from_shape_vec(IxDyn(x.shape()), sum).expect("same length"))
    })
}

/// Reveals `[x]` to party `to` only: the other party sends its share.
///
/// ```text
///   P_other ── x_other ──▶ P_to        (one message, one direction; P_to waits one round)
/// ```
/// Returns `Some(x)` at `to` and `None` at the other party.
pub fn reveal<T: Transport>(ctx: &mut Ctx<T>, x: &Share, to: crate::share::Party) -> Result<Option<ArrayD<u64>>> {
    ctx.check_share("reveal", x)?;
    ctx.step("reveal", x.len(), |ctx| {
        let mine: Vec<u64> = x.data().iter().copied().collect();
        if ctx.party() != to {
            ctx.net.send_u64s(&mine)?;
            ctx.net.flush()?;
            return Ok(None);
        }
        ctx.net.start_round();
        let theirs = ctx.net.recv_u64s(mine.len(), "reveal")?;
        let sum: Vec<u64> = mine.iter().zip(&theirs).map(|(a, b)| a.wrapping_add(*b)).collect();
        Ok(Some(ArrayD::from_shape_vec(IxDyn(x.shape()), sum).expect("same length")))
    })
}
