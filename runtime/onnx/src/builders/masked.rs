//! `Where(mask, Relu(x), g(x))` -> `MaskedAct`, the form the exporter writes a masked activation
//! in (`Clip(x, 0, c)` in place of `Relu(x)` for a capped, ReLU6, site). The mask must be a constant; `g` may be `x` itself (identity) or any chain of Add, Sub,
//! Mul, Div and Identity over `x` and per-channel constants that is a polynomial of degree ≤ 2 in
//! `x`. The Relu and `g` nodes become dead and are pruned by the fold phase.
//!
//! When the `Where` node's `doc_string` carries the exporter's annotation
//! ([`MaskedActAnnotation`]), the mask and coefficients keep the names it gives and its replacement
//! kind wins (a polynomial that happens to be `x` stays a polynomial).

use ndarray::{ArrayD, IxDyn};

use super::BuildFn;
use crate::annotation::{MASKED_ACT_KEY, MaskedActAnnotation};
use crate::ctx::{Ctx, OnnxNode};
use masq_ir::Result;
use masq_ir::{MaskedActConfig, Op, Replacement};

pub(super) fn register(r: &mut std::collections::HashMap<&'static str, BuildFn>) {
    r.insert("Where", where_);
}

/// Per-channel polynomial, indexed by degree: `p[2]·x² + p[1]·x + p[0]`.
type Poly = [Vec<f32>; 3];

/// A constant as per-channel values for an activation of rank `rank` (`[N, C, ...]`): a scalar, or
/// a tensor that right-aligned to the activation is 1 everywhere but on the channel axis.
fn per_channel(t: &ArrayD<f32>, c: usize, rank: usize) -> Option<Vec<f32>> {
    if t.len() == 1 {
        return Some(vec![t.iter().next().copied()?; c]);
    }
    let s = t.shape();
    if s.len() > rank || s.len() + 1 < rank {
        return None;
    }
    let full: Vec<usize> = std::iter::repeat_n(1, rank - s.len()).chain(s.iter().copied()).collect();
    full.iter().enumerate().all(|(i, &d)| if i == 1 { d == c } else { d == 1 }).then(|| t.iter().copied().collect())
}

fn combine(a: &Poly, b: &Poly, op: &Op) -> Option<Poly> {
    let c = a[0].len();
    let mut out: Poly = [vec![0.0; c], vec![0.0; c], vec![0.0; c]];
    match op {
        Op::Add(_) | Op::Sub(_) => {
            let s = if matches!(op, Op::Sub(_)) { -1.0 } else { 1.0 };
            for d in 0..3 {
                for i in 0..c {
                    out[d][i] = a[d][i] + s * b[d][i];
                }
            }
        }
        Op::Mul(_) => {
            for i in 0..c {
                let mut prod = [0.0f32; 5];
                for (p, ap) in a.iter().enumerate() {
                    for (q, bq) in b.iter().enumerate() {
                        prod[p + q] += ap[i] * bq[i];
                    }
                }
                if prod[3] != 0.0 || prod[4] != 0.0 {
                    return None;
                }
                for d in 0..3 {
                    out[d][i] = prod[d];
                }
            }
        }
        Op::Div(_) => {
            // Only division by a constant.
            if b[1].iter().chain(&b[2]).any(|&v| v != 0.0) {
                return None;
            }
            for d in 0..3 {
                for i in 0..c {
                    out[d][i] = a[d][i] / b[0][i];
                }
            }
        }
        _ => return None,
    }
    Some(out)
}

/// The polynomial in `x` that `value` computes, if it is one.
fn poly_of(ctx: &Ctx, value: &str, x: &str, c: usize, rank: usize, depth: usize) -> Option<Poly> {
    if depth > 16 {
        return None;
    }
    if value == x {
        return Some([vec![0.0; c], vec![1.0; c], vec![0.0; c]]);
    }
    if let Some(t) = ctx.graph.initializers.get(value) {
        return Some([per_channel(t, c, rank)?, vec![0.0; c], vec![0.0; c]]);
    }
    if let Some(k) = ctx.consts.get(value) {
        return Some([per_channel(&k.to_f32(), c, rank)?, vec![0.0; c], vec![0.0; c]]);
    }
    let node = ctx.producer(value)?;
    match &node.op {
        Op::Identity => poly_of(ctx, &node.inputs[0], x, c, rank, depth + 1),
        op @ (Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_)) => {
            let a = poly_of(ctx, &node.inputs[0], x, c, rank, depth + 1)?;
            let b = poly_of(ctx, &node.inputs[1], x, c, rank, depth + 1)?;
            combine(&a, &b, op)
        }
        _ => None,
    }
}

fn where_(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let not_masked = |why: &str| n.unsupported(format!("Where is only supported as Where(mask, Relu(x), g(x)): {why}"));
    let cond = ctx.require_const(n, 0, "condition")?.clone();
    // A mask holds 0 and 1 only: any other value (a UINT8 2) is a corrupt mask, not "true".
    if let Some(v) = cond.data.iter().find(|&&v| v != 0.0 && v != 1.0) {
        let name = n.input(0).unwrap_or_default();
        return Err(n.unsupported(format!("mask {name} holds the value {v}; masks hold only 0 and 1")));
    }
    let then = n.input(1).ok_or_else(|| not_masked("missing X"))?.to_string();
    // X is Relu(x), or Clip(x, 0, c) for a capped (ReLU6) site.
    let (relu, cap) = ctx
        .producer(&then)
        .and_then(|p| masq_ir::masks::site_cap(&p.op).map(|cap| (p, cap)))
        .ok_or_else(|| not_masked("X is not the output of a Relu or of a Clip to [0, c]"))?;
    let x = relu.inputs[0].clone();
    let xs = ctx.shapes.get(&x).cloned().ok_or_else(|| not_masked("the Relu input is not an activation"))?;
    if xs.len() < 2 {
        return Err(not_masked("the activation has no channel axis"));
    }
    let per_image = &xs[1..];
    let mut target = vec![1usize];
    target.extend_from_slice(per_image);
    let mask = cond.data.broadcast(IxDyn(&target)).ok_or_else(|| {
        not_masked(&format!("mask of shape {:?} does not broadcast to the activation {:?}", cond.data.shape(), xs))
    })?;
    let mask: ArrayD<u8> = ArrayD::from_shape_vec(IxDyn(per_image), mask.iter().map(|&v| (v != 0.0) as u8).collect())
        .expect("sizes agree");
    let c = xs[1];
    let other = n.input(2).ok_or_else(|| not_masked("missing Y"))?.to_string();
    let poly = poly_of(ctx, &other, &x, c, xs.len(), 0)
        .ok_or_else(|| not_masked("Y is not a polynomial of degree <= 2 in x"))?;
    let identity =
        poly[2].iter().all(|&v| v == 0.0) && poly[1].iter().all(|&v| v == 1.0) && poly[0].iter().all(|&v| v == 0.0);
    // The exporter's annotation names the mask and coefficients and fixes the replacement kind.
    let annotation = match MaskedActAnnotation::from_doc_string(&n.proto.doc_string) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => return Err(n.bad_attr("doc_string", &format!("malformed {MASKED_ACT_KEY} annotation: {e}"))),
    };
    let taken = |ctx: &Ctx, name: &str| {
        ctx.graph.initializers.contains_key(name) || ctx.consts.contains_key(name) || ctx.shapes.contains_key(name)
    };
    let replacement = match (&annotation, identity) {
        (Some(a), false) if a.replacement == "identity" => {
            return Err(not_masked("annotated as identity, but Y is not x"));
        }
        (None, true) => Replacement::Identity,
        (Some(a), _) if a.replacement == "identity" => Replacement::Identity,
        _ => {
            let [p0, p1, p2] = poly;
            let names = annotation.as_ref().and_then(|a| a.coefficients.clone());
            let mk = |ctx: &mut Ctx, k: usize, s: &str, v: Vec<f32>| {
                let t = ArrayD::from_shape_vec(vec![c], v).expect("C values");
                match &names {
                    Some(ns) if !taken(ctx, &ns[k]) => {
                        ctx.graph.initializers.insert(ns[k].clone(), t);
                        ns[k].clone()
                    }
                    _ => ctx.add_param(&format!("{}.{s}", n.name), t),
                }
            };
            let c2 = mk(ctx, 0, "c2", p2);
            let c1 = mk(ctx, 1, "c1", p1);
            let c0 = mk(ctx, 2, "c0", p0);
            Replacement::Poly { c2, c1, c0 }
        }
    };
    let mut mask_name = annotation.as_ref().map(|a| a.mask.clone()).unwrap_or_else(|| format!("{}.mask", n.name));
    while ctx.graph.masks.contains_key(&mask_name) {
        mask_name.push('_');
    }
    ctx.graph.masks.insert(mask_name.clone(), mask);
    ctx.push(
        n,
        None,
        Op::MaskedAct(MaskedActConfig { mask: mask_name, replacement, cap }),
        vec![x],
        n.output().to_string(),
    )
}
