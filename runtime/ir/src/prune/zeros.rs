//! Which channel elements are identically zero: a full forward pass over the rules, and an
//! incremental pass that adds one hypothetical dead filter to a known state (for
//! [`super::conv_sites`], one filter at a time).

use super::rules::{Formula, Plan, Rule};

/// One hypothetical dead filter: conv node `conv`, output channel `chan`, and the BatchNorm
/// that reads only that conv (its scale and shift count as zeroed on `chan`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Hypothesis {
    pub conv: usize,
    pub bn: Option<usize>,
    pub chan: usize,
}

fn eval(f: &Formula, zero: &[bool], forced: bool) -> bool {
    if forced || f.always {
        return true;
    }
    if !f.gate {
        return false;
    }
    if f.any { f.inputs.iter().any(|&e| zero[e]) } else { f.inputs.iter().all(|&e| zero[e]) }
}

/// Whether output channel `c` of node `n` is zero under `zero` (with `h` applied).
fn channel_zero(plan: &Plan<'_>, n: usize, c: usize, zero: &[bool], h: Option<Hypothesis>) -> bool {
    match &plan.rules[n] {
        Rule::Never => false,
        Rule::Linear(l) => h.is_some_and(|h| h.conv == n && h.chan == c) || l.row_zero(c, zero),
        Rule::Map { chans, .. } => eval(&chans[c], zero, h.is_some_and(|h| h.bn == Some(n) && h.chan == c)),
    }
}

fn out_range(rule: &Rule<'_>) -> Option<(usize, usize)> {
    match rule {
        Rule::Never => None,
        Rule::Linear(l) => Some((l.out, l.out_chans)),
        Rule::Map { out, chans } => Some((*out, chans.len())),
    }
}

/// Zero elements of the whole graph, node by node.
pub(super) fn full(plan: &Plan<'_>, elems: usize) -> Vec<bool> {
    let mut zero = vec![false; elems];
    for (n, rule) in plan.rules.iter().enumerate() {
        let Some((out, chans)) = out_range(rule) else { continue };
        for c in 0..chans {
            if channel_zero(plan, n, c, &zero, None) {
                zero[out + c] = true;
            }
        }
    }
    zero
}

/// Reverse dependencies for the incremental pass.
#[derive(Debug)]
pub(super) struct Dependents {
    /// Element -> (node, output channel) of the formulas that read it.
    formulas: Vec<Vec<(u32, u32)>>,
    /// Element -> Conv/Gemm nodes that read it.
    linear: Vec<Vec<u32>>,
}

impl Dependents {
    pub fn new(plan: &Plan<'_>, elems: usize) -> Self {
        let mut d = Dependents { formulas: vec![Vec::new(); elems], linear: vec![Vec::new(); elems] };
        for (n, rule) in plan.rules.iter().enumerate() {
            match rule {
                Rule::Never => {}
                Rule::Linear(l) => {
                    let groups = l.out_chans / l.og.max(1);
                    for e in l.x..l.x + groups * l.ig {
                        d.linear[e].push(n as u32);
                    }
                }
                Rule::Map { chans, .. } => {
                    for (c, f) in chans.iter().enumerate() {
                        for &e in &f.inputs {
                            d.formulas[e].push((n as u32, c as u32));
                        }
                    }
                }
            }
        }
        d
    }
}

/// Adds hypothesis `h` to `zero` (the state without it) and propagates; returns the elements it
/// set, so that the caller can reset them.
pub(super) fn add(plan: &Plan<'_>, deps: &Dependents, zero: &mut [bool], h: Hypothesis) -> Vec<usize> {
    let mut set = Vec::new();
    let mut work = Vec::new();
    let mark = |e: usize, zero: &mut [bool], set: &mut Vec<usize>, work: &mut Vec<usize>| {
        if !zero[e] {
            zero[e] = true;
            set.push(e);
            work.push(e);
        }
    };
    for n in std::iter::once(h.conv).chain(h.bn) {
        if let Some((out, _)) = out_range(&plan.rules[n])
            && channel_zero(plan, n, h.chan, zero, Some(h))
        {
            mark(out + h.chan, zero, &mut set, &mut work);
        }
    }
    while let Some(e) = work.pop() {
        for &(n, c) in &deps.formulas[e] {
            let (n, c) = (n as usize, c as usize);
            let Some((out, _)) = out_range(&plan.rules[n]) else { continue };
            if !zero[out + c] && channel_zero(plan, n, c, zero, Some(h)) {
                mark(out + c, zero, &mut set, &mut work);
            }
        }
        for &n in &deps.linear[e] {
            let n = n as usize;
            let Rule::Linear(l) = &plan.rules[n] else { continue };
            let j = (e - l.x) / l.ig.max(1);
            for o in j * l.og..(j + 1) * l.og {
                if !zero[l.out + o] && channel_zero(plan, n, o, zero, Some(h)) {
                    mark(l.out + o, zero, &mut set, &mut work);
                }
            }
        }
    }
    set
}
