//! The two computing parties.
//!
//! A leaf module (it imports nothing from the crate), so that every other module, the error type
//! included, can name a party. Also reachable as [`crate::share::Party`] and [`crate::Party`].

use std::fmt;

/// One of the two computing parties.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode, serde::Serialize, serde::Deserialize,
)]
pub enum Party {
    /// The server: the model owner.
    P0,
    /// The client: the data owner.
    P1,
}

impl Party {
    /// 0 for P0, 1 for P1.
    pub fn index(self) -> usize {
        match self {
            Party::P0 => 0,
            Party::P1 => 1,
        }
    }

    /// The other party.
    pub fn other(self) -> Party {
        match self {
            Party::P0 => Party::P1,
            Party::P1 => Party::P0,
        }
    }

    /// Both parties, P0 first.
    pub const BOTH: [Party; 2] = [Party::P0, Party::P1];
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P{}", self.index())
    }
}
