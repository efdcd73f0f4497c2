//! Additive secret shares over Z_2^64.
//!
//! `[x] = (x0, x1)` with `x0 + x1 = x (mod 2^64)`. A [`Share`] is one party's half, as a
//! tensor. It allows only the operations that need no communication: share + share,
//! share + public (added by P0 alone), and share × public. Share × share has no operator:
//! it must go through a Beaver triple (see [`crate::protocols`]).

use std::fmt;

use ndarray::{ArrayD, IxDyn, Zip};
use rand::RngCore;

use crate::error::{MpcError, Result, fmt_shape};
pub use crate::party::Party;
use crate::ring::Elem;

/// One party's additive share of a tensor over Z_2^64.
#[must_use = "a share is half of a secret; dropping it loses the value"]
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    party: Party,
    data: ArrayD<Elem>,
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print share contents by accident.
        write!(f, "Share({}, shape {:?})", self.party, self.data.shape())
    }
}

impl Share {
    /// Wraps `data` as `party`'s share.
    pub fn new(party: Party, data: ArrayD<Elem>) -> Share {
        Share { party, data }
    }

    /// A share of zero of the given shape.
    pub fn zeros(party: Party, shape: &[usize]) -> Share {
        Share { party, data: ArrayD::zeros(IxDyn(shape)) }
    }

    /// Whose share this is.
    pub fn party(&self) -> Party {
        self.party
    }

    /// The share's words.
    pub fn data(&self) -> &ArrayD<Elem> {
        &self.data
    }

    /// The share's words, consuming it.
    pub fn into_data(self) -> ArrayD<Elem> {
        self.data
    }

    /// The tensor shape.
    pub fn shape(&self) -> &[usize] {
        self.data.shape()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn check_same(&self, op: &str, other_party: Party, other_shape: &[usize]) -> Result<()> {
        if self.party != other_party {
            return Err(MpcError::WrongParty { op: op.into(), expected: self.party, got: other_party });
        }
        if self.shape() != other_shape {
            return Err(MpcError::ShapeMismatch {
                op: op.into(),
                expected: fmt_shape(self.shape()),
                got: fmt_shape(other_shape),
            });
        }
        Ok(())
    }

    /// `[x] + [y]`: local.
    pub fn add(&self, other: &Share) -> Result<Share> {
        self.check_same("share add", other.party, other.shape())?;
        let mut out = self.data.clone();
        Zip::from(&mut out).and(&other.data).for_each(|a, &b| *a = a.wrapping_add(b));
        Ok(Share { party: self.party, data: out })
    }

    /// `[x] - [y]`: local.
    pub fn sub(&self, other: &Share) -> Result<Share> {
        self.check_same("share sub", other.party, other.shape())?;
        let mut out = self.data.clone();
        Zip::from(&mut out).and(&other.data).for_each(|a, &b| *a = a.wrapping_sub(b));
        Ok(Share { party: self.party, data: out })
    }

    /// `[x] + c` for a public tensor `c` of the same shape: P0 adds, P1 keeps its share.
    pub fn add_public(&self, c: &ArrayD<Elem>) -> Result<Share> {
        self.check_same("share add public", self.party, c.shape())?;
        let mut out = self.data.clone();
        if self.party == Party::P0 {
            Zip::from(&mut out).and(c).for_each(|a, &b| *a = a.wrapping_add(b));
        }
        Ok(Share { party: self.party, data: out })
    }

    /// `c · [x]` for a public scalar `c`.
    pub fn mul_scalar(&self, c: Elem) -> Share {
        Share { party: self.party, data: self.data.mapv(|a| a.wrapping_mul(c)) }
    }

    /// `c ⊙ [x]` for a public tensor `c` of the same shape (element-wise).
    pub fn mul_public(&self, c: &ArrayD<Elem>) -> Result<Share> {
        self.check_same("share mul public", self.party, c.shape())?;
        let mut out = self.data.clone();
        Zip::from(&mut out).and(c).for_each(|a, &b| *a = a.wrapping_mul(b));
        Ok(Share { party: self.party, data: out })
    }

    /// `-[x]`.
    pub fn neg(&self) -> Share {
        Share { party: self.party, data: self.data.mapv(|a| a.wrapping_neg()) }
    }

    /// Reshapes without moving data (the element count must match).
    pub fn reshape(self, shape: &[usize]) -> Result<Share> {
        let party = self.party;
        let from = fmt_shape(self.shape());
        let data = self.data.into_shape_with_order(IxDyn(shape)).map_err(|_| MpcError::ShapeMismatch {
            op: "share reshape".into(),
            expected: from,
            got: fmt_shape(shape),
        })?;
        Ok(Share { party, data })
    }
}

/// Splits a plaintext tensor into two uniformly random shares.
pub fn share<R: RngCore + ?Sized>(x: &ArrayD<Elem>, rng: &mut R) -> (Share, Share) {
    let s0 = x.mapv(|_| rng.next_u64());
    let mut s1 = x.clone();
    Zip::from(&mut s1).and(&s0).for_each(|a, &r| *a = a.wrapping_sub(r));
    (Share::new(Party::P0, s0), Share::new(Party::P1, s1))
}

/// Adds the two shares back together.
pub fn reconstruct(s0: &Share, s1: &Share) -> Result<ArrayD<Elem>> {
    if s0.party != Party::P0 || s1.party != Party::P1 {
        return Err(MpcError::WrongParty { op: "reconstruct".into(), expected: Party::P0, got: s0.party });
    }
    if s0.shape() != s1.shape() {
        return Err(MpcError::ShapeMismatch {
            op: "reconstruct".into(),
            expected: fmt_shape(s0.shape()),
            got: fmt_shape(s1.shape()),
        });
    }
    let mut out = s0.data.clone();
    Zip::from(&mut out).and(&s1.data).for_each(|a, &b| *a = a.wrapping_add(b));
    Ok(out)
}
