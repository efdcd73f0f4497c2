//! Classes of tied channel elements ([`super::rules`]) and the removal decision.
//!
//! A class goes as a whole or not at all. It is removable when none of its elements is blocked
//! and every one of them is identically zero: where a Conv or Gemm drops it, its weights only ever
//! multiplied zeros; everywhere else nothing is lost. (Requiring zero everywhere, not only where a
//! layer drops the channel, is conservative: a live channel that only feeds a removed one, e.g.
//! the live operand of a `Mul` by a zero channel or a channel a Slice does not pick, stays, so that
//! no live filter is ever removed.)

use super::index::Index;
use super::rules::Plan;

#[derive(Debug)]
pub(super) struct Classes {
    /// Element -> class.
    pub of: Vec<usize>,
    pub blocked: Vec<bool>,
    /// Per class: its elements.
    pub members: Vec<Vec<usize>>,
    /// Per class: whether it holds every channel of some value (removing it alone would leave
    /// a value with no channels).
    pub empties: Vec<bool>,
}

fn find(parent: &mut [usize], mut e: usize) -> usize {
    while parent[e] != e {
        parent[e] = parent[parent[e]];
        e = parent[e];
    }
    e
}

impl Classes {
    pub fn new(index: &Index<'_>, plan: &Plan<'_>) -> Self {
        let n = index.elems;
        let mut parent: Vec<usize> = (0..n).collect();
        for &(a, b) in &plan.ties {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                parent[ra.max(rb)] = ra.min(rb);
            }
        }
        let mut id = vec![usize::MAX; n];
        let mut of = vec![0; n];
        let mut count = 0;
        for (e, class) in of.iter_mut().enumerate() {
            let r = find(&mut parent, e);
            if id[r] == usize::MAX {
                id[r] = count;
                count += 1;
            }
            *class = id[r];
        }
        let mut blocked = vec![false; count];
        for &e in &plan.blocked {
            blocked[of[e]] = true;
        }
        let mut members = vec![Vec::new(); count];
        for (e, &k) in of.iter().enumerate() {
            members[k].push(e);
        }
        let mut empties = vec![false; count];
        for &(_, b, c) in &index.values {
            if c > 0 && (b..b + c).all(|e| of[e] == of[b]) {
                empties[of[b]] = true;
            }
        }
        Classes { of, blocked, members, empties }
    }

    pub fn count(&self) -> usize {
        self.blocked.len()
    }

    /// Whether class `k` may go under the zero state `zero`.
    pub fn removable(&self, k: usize, zero: &[bool]) -> bool {
        !self.blocked[k] && self.members[k].iter().all(|&e| zero[e])
    }

    /// The elements to remove under `zero`: every removable class, less those that would leave
    /// a value with no channels (of such a value, the class of its first channel is kept).
    pub fn decide(&self, index: &Index<'_>, zero: &[bool]) -> Vec<bool> {
        let mut go: Vec<bool> = (0..self.count()).map(|k| self.removable(k, zero)).collect();
        loop {
            let mut changed = false;
            for &(_, b, c) in &index.values {
                if c > 0 && (b..b + c).all(|e| go[self.of[e]]) {
                    go[self.of[b]] = false;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        self.of.iter().map(|&k| go[k]).collect()
    }
}
