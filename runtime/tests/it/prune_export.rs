//! Channel pruning (`masq_ir::prune`) evaluated: a pruned graph computes what the zeroed one
//! does (plaintext interpreter), on every zoo model, with ReLU masks and polynomials, on a small
//! graph with every op the pass re-indexes, and after folding Rotated ReLU slopes; pruned
//! models export to ONNX and run in onnxruntime, and run under 2PC.
//!
//! The onnxruntime test needs libonnxruntime (`make setup`, or ORT_DYLIB_PATH) and fails when it
//! cannot load, except that `MASQ_SKIP_ORT=1` turns that into a skip.
//!
//! Tolerance: a pruned graph differs from the zeroed one only in which exact zeros it adds
//! (`w·0`), so in exact arithmetic the outputs are equal; in f32 the kernels may sum in another
//! order (other tensor sizes), so outputs agree to float rounding. The check is
//! `max |pruned − zeroed| <= 1e-5 · max(1, max |zeroed|)`: relative to the output's scale rather
//! than element-wise, because a small logit is a difference of large partial sums.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use masq_ir::masks::{SiteReplacement, relu_to_masked};
use masq_ir::prune::slopes::{fold_slopes, insert_slopes, read_slopes, slope_sites};
use masq_ir::prune::{ConvSite, DeadSet, Pruned, conv_sites, prune_channels, zero_filters};
use masq_ir::report::report;
use masq_ir::*;
use masq_runtime::plain;
use ndarray::{ArrayD, Axis, IxDyn};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOL: f32 = 1e-5;

fn random(shape: &[usize], rng: &mut ChaCha8Rng) -> ArrayD<f32> {
    let n = shape.iter().product();
    ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()).unwrap()
}

fn input_for(g: &Graph, batch: usize, seed: u64) -> ArrayD<f32> {
    let shape = g.data_inputs().next().unwrap().shape_at(batch);
    random(&shape, &mut ChaCha8Rng::seed_from_u64(seed))
}

/// `max |a − b| / max(1, max |b|)`.
fn scaled_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let d = a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    if d.is_nan() { f32::INFINITY } else { d / scale }
}

/// Every output of `g` on `x`, by name.
fn outputs(g: &Graph, x: &ArrayD<f32>) -> Vec<(String, ArrayD<f32>)> {
    let name = g.data_inputs().next().unwrap().name.clone();
    let mut outs = plain::run(g, HashMap::from([(name, x.clone())])).unwrap_or_else(|e| panic!("{}: {e}", g.name));
    g.outputs.iter().map(|o| (o.name.clone(), outs.remove(&o.name).unwrap())).collect()
}

/// Prunes `g` by `dead`, checks the result against the zeroed graph on `x` and the report
/// figures against `g`'s; returns the pruned graph and the largest scaled difference between the
/// zeroed graph's outputs and `g`'s (how much the dead set matters). `relus`: every removed
/// channel passes a ReLU (true of every zoo model), so a removal lowers the ReLU count.
fn check(g: &Graph, dead: &DeadSet, x: &ArrayD<f32>, what: &str, relus: bool) -> (Pruned, f32) {
    let p = prune_channels(g, dead).unwrap_or_else(|e| panic!("{what}: prune: {e}"));
    let mut z = g.clone();
    zero_filters(&mut z, dead).unwrap();
    let (got, want, orig) = (outputs(&p.graph, x), outputs(&z, x), outputs(g, x));
    let mut effect = 0.0f32;
    for (((name, a), (_, b)), (_, o)) in got.iter().zip(&want).zip(&orig) {
        let d = scaled_diff(a, b);
        assert!(d <= TOL, "{what}: output {name}: pruned vs zeroed differ by {d:e} (scaled)");
        assert!(a.iter().all(|v| v.is_finite()), "{what}: output {name} not finite");
        effect = effect.max(scaled_diff(b, o));
    }
    assert_eq!(p.graph.outputs, g.outputs, "{what}: outputs");
    // Per-conv figures add up.
    let sites = conv_sites(g).unwrap();
    assert_eq!(p.convs.len(), sites.len(), "{what}");
    let mut removed_any = false;
    for (c, s) in p.convs.iter().zip(&sites) {
        assert_eq!((c.conv.as_str(), c.before), (s.conv.as_str(), s.out_channels), "{what}");
        let n_dead = dead.get(&c.conv).map_or(0, BTreeSet::len);
        assert!(c.kept_zeroed <= n_dead && c.before - c.after >= n_dead - c.kept_zeroed, "{what}: {c:?}");
        assert!(c.after >= 1, "{what}: {c:?}");
        removed_any |= c.after < c.before;
    }
    let (a, b) = (report(g).unwrap(), report(&p.graph).unwrap());
    if removed_any {
        assert!(b.params < a.params, "{what}: params {} -> {}", a.params, b.params);
        assert!(b.macs < a.macs, "{what}: MACs {} -> {}", a.macs, b.macs);
        if relus {
            assert!(b.relu_count < a.relu_count, "{what}: ReLUs {} -> {}", a.relu_count, b.relu_count);
        } else {
            assert!(b.relu_count <= a.relu_count, "{what}: ReLUs {} -> {}", a.relu_count, b.relu_count);
        }
    } else {
        assert_eq!((b.params, b.macs, b.relu_count), (a.params, a.macs, a.relu_count), "{what}");
    }
    (p, effect)
}

fn pick(rng: &mut ChaCha8Rng, n: usize, k: usize) -> BTreeSet<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    all.shuffle(rng);
    all.into_iter().take(k).collect()
}

/// The dead sets every model is checked on.
fn dead_sets(sites: &[ConvSite], rng: &mut ChaCha8Rng) -> Vec<(&'static str, DeadSet)> {
    let mut sets = vec![("empty", DeadSet::new())];
    for _ in 0..2 {
        let d = sites
            .iter()
            .map(|s| {
                let k = (rng.random_range(0.0..0.7) * s.out_channels as f64) as usize;
                (s.conv.clone(), pick(rng, s.out_channels, k))
            })
            .collect();
        sets.push(("random fractions", d));
    }
    sets.push((
        "all but one",
        sites.iter().map(|s| (s.conv.clone(), pick(rng, s.out_channels, s.out_channels - 1))).collect(),
    ));
    sets.push((
        "whole layers",
        sites
            .iter()
            .map(|s| {
                let k = if rng.random_bool(0.4) { s.out_channels } else { s.out_channels / 4 };
                (s.conv.clone(), pick(rng, s.out_channels, k))
            })
            .collect(),
    ));
    // Residual streams: the same channels dead in every conv of a width that writes a stream (the
    // non-removable ones), plus some removable ones.
    let mut chans: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    let mut d = DeadSet::new();
    for s in sites {
        if s.removable {
            d.insert(s.conv.clone(), pick(rng, s.out_channels, s.out_channels / 3));
        } else {
            let c = chans.entry(s.out_channels).or_insert_with(|| pick(rng, s.out_channels, 3.min(s.out_channels)));
            d.insert(s.conv.clone(), c.clone());
        }
    }
    sets.push(("streams", d));
    sets
}

/// The input size each zoo model is checked at (small where the model allows it).
fn check_size(name: &str) -> Option<(usize, usize)> {
    match name {
        "resnet18_cifar" | "resnet18_in" | "resnet18_small" | "wrn22_8" | "wrn16_4" | "wrn40_4"
        | "mobilenetv2_cifar" => Some((8, 8)),
        "resnet20" | "resnet32" | "resnet44" | "resnet56" | "cnn_small" | "cnn4" => Some((16, 16)),
        // Five 2×2 pools before the classifier, and the MNIST classifier's 7×7 maps: as declared.
        "vgg16_cifar" | "mnist_cnn" => None,
        other => panic!("no check size for zoo model {other}: add it here"),
    }
}

#[test]
fn every_zoo_model_prunes_to_the_function_of_its_zeroed_filters() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (name, _) in zoo::MODELS {
        // A transformer: its one conv (the patch embedding) feeds a Reshape, not a prunable site.
        if *name == "vit_cifar" {
            continue;
        }
        let hw = check_size(name);
        let g = zoo::build(name, hw, 3).unwrap();
        let sites = conv_sites(&g).unwrap();
        assert!(sites.iter().any(|s| s.removable), "{name}: no removable conv");
        let x = input_for(&g, 2, 5);
        let mut effect = 0.0f32;
        let mut removed = 0;
        for (what, dead) in dead_sets(&sites, &mut rng) {
            let (p, e) = check(&g, &dead, &x, &format!("{name} ({what})"), true);
            effect = effect.max(e);
            removed += p.convs.iter().map(|c| c.before - c.after).sum::<usize>();
        }
        // The dead sets change the function, and the surgery removes filters.
        assert!(effect > 1e-3, "{name}: the dead sets do not change the outputs ({effect:e})");
        assert!(removed > 0, "{name}");
    }
}

/// A site's channels whose dead filter leaves its (masked) activation zero: the mask keeps the
/// ReLU everywhere on it, or its polynomial maps 0 to 0.
fn zero_preserving(g: &Graph, site: &str) -> Vec<bool> {
    let node = g.nodes.iter().find(|n| n.name == site).unwrap();
    let Op::MaskedAct(c) = &node.op else { panic!("{site} is not masked") };
    let Replacement::Poly { c0, .. } = &c.replacement else { panic!("{site}: identity") };
    let mask = &g.masks[&c.mask];
    (0..mask.shape()[0])
        .map(|ch| mask.index_axis(Axis(0), ch).iter().all(|&m| m == 1) || g.initializers[c0][[ch]] == 0.0)
        .collect()
}

/// `g` with every ReLU masked: per channel, all ones (30%) or random elements; per-channel
/// polynomials with c0 = 0 on about half of the channels.
fn randomly_masked(g: &Graph, rng: &mut ChaCha8Rng) -> Graph {
    let (mut m, sites) = relu_to_masked(g, SiteReplacement::Poly { c2: 0.1, c1: 1.0, c0: 0.0 }).unwrap();
    for s in &sites {
        let mask = m.masks.get_mut(&s.mask).unwrap();
        for mut plane in mask.axis_iter_mut(Axis(0)) {
            if !rng.random_bool(0.3) {
                plane.mapv_inplace(|_| rng.random_bool(0.5) as u8);
            }
        }
        let [c2, c1, c0] = s.coefficients.clone().unwrap();
        let ch = s.channels();
        m.initializers.insert(c2, random(&[ch], rng).mapv(|v| 0.2 * v));
        m.initializers.insert(c1, random(&[ch], rng));
        let c0v: Vec<f32> =
            (0..ch).map(|_| if rng.random_bool(0.5) { 0.0 } else { rng.random_range(-0.5..0.5) }).collect();
        m.initializers.insert(c0, ArrayD::from_shape_vec(vec![ch], c0v).unwrap());
    }
    m.validate().unwrap();
    m
}

#[test]
fn masked_models_prune_where_the_mask_or_polynomial_keeps_zero() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for (name, hw) in [
        ("cnn_small", Some((16, 16))),
        ("resnet20", Some((16, 16))),
        ("wrn16_4", Some((8, 8))),
        ("cnn4", Some((16, 16))),
    ] {
        let g = randomly_masked(&zoo::build(name, hw, 4).unwrap(), &mut rng);
        let sites = conv_sites(&g).unwrap();
        let x = input_for(&g, 2, 6);
        for (what, dead) in dead_sets(&sites, &mut rng) {
            check(&g, &dead, &x, &format!("masked {name} ({what})"), true);
        }
    }
    // cnn_small: conv_i -> bn_i -> masked relu_i -> (conv_{i+1} | pool, fc): a dead filter goes
    // exactly when its masked ReLU maps the zero channel to zero.
    let g = randomly_masked(&zoo::build("cnn_small", Some((16, 16)), 4).unwrap(), &mut rng);
    let x = input_for(&g, 2, 7);
    let d: DeadSet = [("conv1", 16), ("conv2", 32), ("conv3", 64)]
        .into_iter()
        .map(|(c, n)| (c.to_string(), pick(&mut rng, n, n / 2)))
        .collect();
    let (p, _) = check(&g, &d, &x, "masked cnn_small (half)", true);
    let mut kept_any = false;
    for (i, c) in p.convs.iter().enumerate() {
        let ok = zero_preserving(&g, &format!("relu{}", i + 1));
        let kept = d[&c.conv].iter().filter(|&&ch| !ok[ch]).count();
        assert_eq!(c.kept_zeroed, kept, "{}", c.conv);
        assert_eq!(c.after, c.before - (d[&c.conv].len() - kept), "{}", c.conv);
        kept_any |= kept > 0;
        // The surviving site's mask and coefficients are the kept channels'.
        let site = format!("relu{}", i + 1);
        let node = p.graph.nodes.iter().find(|n| n.name == site).unwrap();
        let Op::MaskedAct(m) = &node.op else { unreachable!() };
        assert_eq!(p.graph.masks[&m.mask].shape()[0], c.after);
    }
    assert!(kept_any, "some dead filter is kept by its mask");
    assert!(report(&p.graph).unwrap().poly_elements < report(&g).unwrap().poly_elements);
}

/// Every op the pass re-indexes, on two outputs:
/// x -> c1 (bias) -> bn1 -> LeakyRelu -> Add cb(x) (one channel, broadcast) -> c2 (1×1)
///   -> Clip[-1, 2] -> dw (depthwise) -> Mul K
///   -> Concat(·, c3(x) -> bn3 -> Relu) -> Slice (channels 2..12, width from 1) -> Pad (channels
///   1 + 2, spatial 1) -> Sub(·, c5(x)) -> Add B -> MaskedAct -> AveragePool -> MaxPool
///   -> c6 (1×1) -> bn6 -> Relu -> gc (3 groups) -> Flatten -> fc1 -> Relu -> fc2 -> y
///   and Relu(bn6) -> GlobalAveragePool -> Reshape [0, -1] -> fc3 -> z.
fn kitchen_sink(seed: u64) -> Graph {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut g = Graph::new("kitchen_sink");
    g.inputs.push(ValueInfo::new("x", vec![Dim::Batch, Dim::Fixed(3), Dim::Fixed(8), Dim::Fixed(8)]));
    let t = |g: &mut Graph, name: &str, shape: &[usize], rng: &mut ChaCha8Rng| {
        g.initializers.insert(name.into(), random(shape, rng));
        name.to_string()
    };
    let conv = |weight: String, bias: Option<String>, k: usize, pad: usize, groups: usize| {
        Op::Conv(ConvConfig {
            weight,
            bias,
            kernel: [k, k],
            stride: [1, 1],
            padding: [pad; 4],
            dilation: [1, 1],
            groups,
        })
    };
    let bn = |g: &mut Graph, name: &str, c: usize, rng: &mut ChaCha8Rng| {
        let mut v = |k: &str, lo: f32, hi: f32, rng: &mut ChaCha8Rng| {
            let n = format!("{name}.{k}");
            g.initializers.insert(n.clone(), random(&[c], rng).mapv(|x| lo + (hi - lo) * (x + 1.0) / 2.0));
            n
        };
        Op::BatchNorm(BatchNormConfig {
            scale: v("scale", 0.5, 1.5, rng),
            bias: v("bias", -0.3, 0.3, rng),
            mean: v("mean", -0.2, 0.2, rng),
            var: v("var", 0.5, 1.5, rng),
            epsilon: 1e-5,
        })
    };
    let pool = |k: usize, s: usize, p: usize| PoolConfig {
        kernel: [k, k],
        stride: [s, s],
        padding: [p; 4],
        dilation: [1, 1],
        ceil_mode: false,
        count_include_pad: false,
    };
    let mut nodes: Vec<Node> = Vec::new();
    let mut push = |name: &str, op: Op, inputs: &[&str]| nodes.push(Node::new(name, op, inputs, &[name]));
    let (w, b) = (t(&mut g, "c1.w", &[8, 3, 3, 3], &mut rng), t(&mut g, "c1.b", &[8], &mut rng));
    push("c1", conv(w, Some(b), 3, 1, 1), &["x"]);
    let op = bn(&mut g, "bn1", 8, &mut rng);
    push("bn1", op, &["c1"]);
    push("lr1", Op::LeakyRelu(LeakyReluConfig { alpha: 0.1 }), &["bn1"]);
    // A computed operand broadcast over the channels: c1's channels only go when it is dead too.
    let w = t(&mut g, "cb.w", &[1, 3, 3, 3], &mut rng);
    push("cb", conv(w, None, 3, 1, 1), &["x"]);
    push("addv", Op::Add(BinaryConfig {}), &["lr1", "cb"]);
    let w = t(&mut g, "c2.w", &[8, 8, 1, 1], &mut rng);
    push("c2", conv(w, None, 1, 0, 1), &["addv"]);
    push("clip", Op::Clip(ClipConfig { min: Some(-1.0), max: Some(2.0) }), &["c2"]);
    let w = t(&mut g, "dw.w", &[8, 1, 3, 3], &mut rng);
    push("dw", conv(w, None, 3, 1, 8), &["clip"]);
    let mut k = random(&[1, 8, 1, 1], &mut rng);
    k[[0, 2, 0, 0]] = 0.0;
    g.initializers.insert("K".into(), k);
    push("mul", Op::Mul(BinaryConfig {}), &["dw", "K"]);
    let w = t(&mut g, "c3.w", &[6, 3, 3, 3], &mut rng);
    push("c3", conv(w, None, 3, 1, 1), &["x"]);
    let op = bn(&mut g, "bn3", 6, &mut rng);
    push("bn3", op, &["c3"]);
    push("relu3", Op::Relu, &["bn3"]);
    push("cat", Op::Concat(ConcatConfig { axis: 1 }), &["mul", "relu3"]);
    let slice = SliceConfig { axes: vec![1, 3], starts: vec![2, 1], ends: vec![12, usize::MAX], steps: vec![1, 1] };
    push("slice", Op::Slice(slice), &["cat"]);
    let pad = PadConfig { pads: vec![(0, 0), (1, 2), (1, 1), (1, 2)], value: 0.0 };
    push("pad", Op::Pad(pad), &["slice"]);
    let w = t(&mut g, "c5.w", &[13, 3, 3, 3], &mut rng);
    push("c5", conv(w, None, 3, 2, 1), &["x"]);
    // c5 on the 8×8 input with padding 2 is 10×10; the pad's output is 10×10 too.
    push("sub", Op::Sub(BinaryConfig {}), &["pad", "c5"]);
    let mut bconst = random(&[13, 1, 1], &mut rng);
    for c in [0, 3, 5, 6, 9, 12] {
        bconst[[c, 0, 0]] = 0.0;
    }
    g.initializers.insert("B".into(), bconst);
    push("addb", Op::Add(BinaryConfig {}), &["sub", "B"]);
    let mut mask = ArrayD::<u8>::from_elem(IxDyn(&[13, 10, 10]), 1);
    for c in [1, 4, 7, 8] {
        mask.index_axis_mut(Axis(0), c).mapv_inplace(|_| rng.random_bool(0.5) as u8);
    }
    g.masks.insert("mk.mask".into(), mask);
    t(&mut g, "mk.c2", &[13], &mut rng);
    t(&mut g, "mk.c1", &[13], &mut rng);
    let mut c0 = random(&[13], &mut rng);
    c0[[4]] = 0.0;
    g.initializers.insert("mk.c0".into(), c0);
    let repl = Replacement::Poly { c2: "mk.c2".into(), c1: "mk.c1".into(), c0: "mk.c0".into() };
    push("mk", Op::MaskedAct(MaskedActConfig { mask: "mk.mask".into(), replacement: repl, cap: None }), &["addb"]);
    push("ap", Op::AveragePool(pool(2, 2, 0)), &["mk"]);
    push("mp", Op::MaxPool(pool(3, 1, 1)), &["ap"]);
    let w = t(&mut g, "c6.w", &[12, 13, 1, 1], &mut rng);
    push("c6", conv(w, None, 1, 0, 1), &["mp"]);
    let op = bn(&mut g, "bn6", 12, &mut rng);
    push("bn6", op, &["c6"]);
    push("relu6", Op::Relu, &["bn6"]);
    let w = t(&mut g, "gc.w", &[6, 4, 3, 3], &mut rng);
    push("gc", conv(w, None, 3, 1, 3), &["relu6"]);
    push("flat", Op::Flatten(FlattenConfig { axis: 1 }), &["gc"]);
    let (w, b) = (t(&mut g, "fc1.w", &[16, 150], &mut rng), t(&mut g, "fc1.b", &[16], &mut rng));
    push("fc1", Op::Gemm(GemmConfig { weight: w, bias: Some(b) }), &["flat"]);
    push("relu_fc", Op::Relu, &["fc1"]);
    let w = t(&mut g, "fc2.w", &[10, 16], &mut rng);
    push("y", Op::Gemm(GemmConfig { weight: w, bias: None }), &["relu_fc"]);
    push("gap", Op::GlobalAveragePool, &["relu6"]);
    push("rs", Op::Reshape(ReshapeConfig { shape: vec![0, -1] }), &["gap"]);
    let w = t(&mut g, "fc3.w", &[4, 12], &mut rng);
    push("z", Op::Gemm(GemmConfig { weight: w, bias: None }), &["rs"]);
    g.nodes = nodes;
    g.outputs.push(ValueInfo::new("y", vec![]));
    g.outputs.push(ValueInfo::new("z", vec![]));
    g.finalize().unwrap();
    g
}

#[test]
fn kitchen_sink_channels_go_where_they_are_zero_all_the_way() {
    let g = kitchen_sink(1);
    let x = input_for(&g, 2, 3);
    // The Slice skips the Concat's channels 0, 1 and 12, 13, but they are live: no live filter
    // is removed, even one whose channel nothing uses.
    let (p, _) = check(&g, &DeadSet::new(), &x, "kitchen sink (empty)", false);
    assert!(p.convs.iter().all(|c| c.after == c.before));
    assert_eq!(p.graph, g);
    // A dead c2 filter 0 zeroes dw's group 0 (no bias), hence the Concat's channel 0; c3's
    // filter 5 its channel 13: both unpicked, they go, with the Slice's bounds re-indexed.
    let d: DeadSet = BTreeMap::from([("c2".to_string(), BTreeSet::from([0])), ("c3".to_string(), BTreeSet::from([5]))]);
    let (p, _) = check(&g, &d, &x, "kitchen sink (unpicked)", false);
    let after: BTreeMap<&str, usize> = p.convs.iter().map(|c| (c.conv.as_str(), c.after)).collect();
    assert_eq!(
        after,
        BTreeMap::from([("c1", 8), ("cb", 1), ("c2", 7), ("dw", 7), ("c3", 5), ("c5", 13), ("c6", 12), ("gc", 6)])
    );
    let slice = p.graph.nodes.iter().find(|n| n.name == "slice").unwrap();
    assert!(matches!(&slice.op, Op::Slice(c) if c.starts == vec![1, 1] && c.ends == vec![11, usize::MAX]), "{slice:?}");
    assert_eq!(p.graph.initializers["K"].shape(), &[1, 7, 1, 1]);
    let dw = &p.graph.nodes.iter().find(|n| n.name == "dw").unwrap().op;
    assert!(matches!(dw, Op::Conv(c) if c.groups == 7), "{dw:?}");
    // A Sub channel goes when both operands are dead there, the Add's constant is zero there and
    // the mask or polynomial keeps zero: channel 3 (slice 2, Concat 4, dw group 4, c2 filter 4;
    // c5 filter 3) has B = 0 and a mask of ones; c5's filter 3 must die with c2's filter 4.
    let d: DeadSet = BTreeMap::from([("c2".to_string(), BTreeSet::from([4])), ("c5".to_string(), BTreeSet::from([3]))]);
    let (p, _) = check(&g, &d, &x, "kitchen sink (channel 3)", false);
    let after: BTreeMap<&str, (usize, usize)> =
        p.convs.iter().map(|c| (c.conv.as_str(), (c.after, c.kept_zeroed))).collect();
    assert_eq!(after["c2"], (7, 0));
    assert_eq!(after["c5"], (12, 0));
    let slice = p.graph.nodes.iter().find(|n| n.name == "slice").unwrap();
    assert!(matches!(&slice.op, Op::Slice(c) if c.starts == vec![2, 1] && c.ends == vec![11, usize::MAX]), "{slice:?}");
    assert_eq!(p.graph.masks["mk.mask"].shape(), &[12, 10, 10]);
    assert_eq!(p.graph.initializers["B"].shape(), &[12, 1, 1]);
    assert_eq!(weight_of(&p.graph, "c6").shape(), &[12, 12, 1, 1]);
    // Alone, c5's filter 3 is kept (the Sub's other operand is live there).
    let d: DeadSet = BTreeMap::from([("c5".to_string(), BTreeSet::from([3]))]);
    let (p, _) = check(&g, &d, &x, "kitchen sink (c5 alone)", false);
    assert_eq!(p.convs.iter().find(|c| c.conv == "c5").map(|c| (c.after, c.kept_zeroed)), Some((13, 1)));
}

fn weight_of<'a>(g: &'a Graph, conv: &str) -> &'a ArrayD<f32> {
    let Op::Conv(c) = &g.nodes.iter().find(|n| n.name == conv).unwrap().op else { panic!("{conv}") };
    &g.initializers[&c.weight]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn kitchen_sink_prunes_to_the_zeroed_function(wseed in 0u64..1000, dseed in 0u64..1_000_000, frac in 0.0f64..1.0) {
        let g = kitchen_sink(wseed);
        let sites = conv_sites(&g).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(dseed);
        let dead: DeadSet = sites
            .iter()
            .map(|s| {
                let k = if rng.random_bool(0.2) { s.out_channels } else { (frac * s.out_channels as f64) as usize };
                (s.conv.clone(), pick(&mut rng, s.out_channels, k))
            })
            .collect();
        let x = input_for(&g, 2, dseed);
        check(&g, &dead, &x, &format!("kitchen sink {wseed}/{dseed}/{frac}"), false);
    }
}

/// Slopes: random values per site with about a third within ±zeta (of both signs); returns them.
fn random_slopes(g: &Graph, zeta: f32, rng: &mut ChaCha8Rng) -> BTreeMap<String, Vec<f32>> {
    slope_sites(g)
        .unwrap()
        .into_iter()
        .map(|s| {
            let v = (0..s.channels)
                .map(|_| {
                    let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                    let mag =
                        if rng.random_bool(0.35) { rng.random_range(0.0..zeta) } else { rng.random_range(0.7..1.43) };
                    sign * mag
                })
                .collect();
            (s.relu, v)
        })
        .collect()
}

#[test]
fn folded_and_pruned_slopes_compute_the_slope_graph_with_small_slopes_zeroed() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let zeta = 0.1;
    for (name, hw) in [
        ("resnet20", Some((16, 16))),
        ("cnn_small", Some((16, 16))),
        ("cnn4", Some((16, 16))),
        ("wrn16_4", Some((8, 8))),
        ("vgg16_cifar", None),
        ("resnet18_cifar", Some((8, 8))),
    ] {
        let g = zoo::build(name, hw, 5).unwrap();
        let slopes = random_slopes(&g, zeta, &mut rng);
        assert!(!slopes.is_empty(), "{name}");
        let s = insert_slopes(&g, &slopes).unwrap();
        let zeroed: BTreeMap<String, Vec<f32>> = slopes
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().map(|&a| if a.abs() <= zeta { 0.0 } else { a }).collect()))
            .collect();
        let s0 = insert_slopes(&g, &zeroed).unwrap();
        assert_eq!(read_slopes(&s0).unwrap(), zeroed);
        let x = input_for(&g, 2, 8);
        let want = plain::run_single(&s0, x.clone()).unwrap();
        let (f, dead) = fold_slopes(&s, zeta).unwrap();
        assert!(f.nodes.iter().all(|n| !matches!(n.op, Op::Mul(_))), "{name}: a slope Mul is left");
        assert_eq!(f.nodes.len(), g.nodes.len());
        for (relu, v) in &slopes {
            let site = slope_sites(&g).unwrap().into_iter().find(|s| &s.relu == relu).unwrap();
            let small: BTreeSet<usize> = (0..v.len()).filter(|&c| v[c].abs() <= zeta).collect();
            assert_eq!(dead.get(&site.conv).cloned().unwrap_or_default(), small, "{name} {relu}");
        }
        let d = scaled_diff(&plain::run_single(&f, x.clone()).unwrap(), &want);
        assert!(d <= TOL, "{name}: folded vs slope graph: {d:e}");
        let p = prune_channels(&f, &dead).unwrap();
        let d = scaled_diff(&plain::run_single(&p.graph, x.clone()).unwrap(), &want);
        assert!(d <= TOL, "{name}: pruned vs slope graph: {d:e}");
        // Every small slope's filter is removed (sites are removable convs).
        for c in &p.convs {
            assert_eq!(c.kept_zeroed, 0, "{name}: {c:?}");
        }
        assert!(report(&p.graph).unwrap().relu_count < report(&g).unwrap().relu_count, "{name}");
        // The slopes mattered: the slope graph is not the plain one.
        assert!(scaled_diff(&want, &plain::run_single(&g, x).unwrap()) > 1e-3, "{name}");
    }
}

/// Whether to run: ONNX Runtime must load unless MASQ_SKIP_ORT=1.
fn ort_ready() -> bool {
    match masq_runtime::ort_backend::available() {
        Ok(()) => true,
        Err(e) if std::env::var_os("MASQ_SKIP_ORT").is_some_and(|v| v == "1") => {
            eprintln!("skipping (MASQ_SKIP_ORT=1): {e}");
            false
        }
        Err(e) => panic!("{e}\n(set MASQ_SKIP_ORT=1 to skip the onnxruntime tests)"),
    }
}

#[test]
fn pruned_models_export_to_onnx_and_run_in_onnxruntime() {
    if !ort_ready() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    let dir = std::env::temp_dir().join(format!("masq-prune-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, hw) in [("resnet20", None), ("cnn4", Some((16, 16)))] {
        let g = zoo::build(name, hw, 6).unwrap();
        let sites = conv_sites(&g).unwrap();
        // "streams" removes residual-stream channels too (re-indexed option-A pads).
        let (_, dead) = dead_sets(&sites, &mut rng).pop().unwrap();
        let p = prune_channels(&g, &dead).unwrap();
        assert!(p.convs.iter().any(|c| c.after < c.before));
        let bytes = prost::Message::encode_to_vec(&masq_onnx::export::encode(&p.graph, 17, "pruned").unwrap());
        let path = dir.join(format!("{name}.onnx"));
        std::fs::write(&path, bytes).unwrap();
        let x = input_for(&g, 2, 9);
        let input = g.data_inputs().next().unwrap().name.clone();
        let ort = masq_runtime::ort_backend::run_onnx(&path, &[(input, x.clone())]).unwrap();
        assert_eq!(ort.len(), 1);
        let mut z = g.clone();
        zero_filters(&mut z, &dead).unwrap();
        let want = plain::run_single(&z, x.clone()).unwrap();
        let got = plain::run_single(&p.graph, x).unwrap();
        let d = scaled_diff(&ort[0].1, &got);
        assert!(d <= 1e-4, "{name}: onnxruntime vs plain {d:e}");
        let d = scaled_diff(&ort[0].1, &want);
        assert!(d <= 1e-4, "{name}: onnxruntime vs zeroed {d:e}");
        // It imports back to the pruned graph's shapes.
        let back = masq_onnx::import_file(&path).unwrap();
        assert_eq!(report(&back).unwrap().relu_count, report(&p.graph).unwrap().relu_count);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_pruned_cnn_small_runs_under_2pc() {
    let g = zoo::build("cnn_small", Some((16, 16)), 7).unwrap();
    let dead: DeadSet = BTreeMap::from([
        ("conv1".to_string(), (0..16).step_by(3).collect()),
        ("conv2".to_string(), (0..32).filter(|c| c % 4 != 1).collect()),
        ("conv3".to_string(), (10..50).collect()),
    ]);
    let p = prune_channels(&g, &dead).unwrap();
    let after: Vec<usize> = p.convs.iter().map(|c| c.after).collect();
    assert_eq!(after, vec![10, 8, 24]);
    let x = input_for(&g, 1, 10);
    let cfg = masq_runtime::secure::SecureConfig { seed: 3, ..Default::default() };
    let run = masq_runtime::secure::run(&p.graph, &x, &cfg).unwrap();
    assert!(run.report.max_abs_error <= 1e-2, "max abs error {}", run.report.max_abs_error);
    let mut z = g.clone();
    zero_filters(&mut z, &dead).unwrap();
    let want = plain::run_single(&z, x).unwrap();
    let got = &run.outputs[0].1;
    let err = got.iter().zip(&want).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err <= 1e-2, "secure pruned vs plaintext zeroed: {err}");
    let relus = (10 * 256 + 8 * 64 + 24 * 16) as u64;
    assert_eq!(run.report.per_image.relu_count, relus);
    assert_eq!(report(&p.graph).unwrap().relu_count, relus);
}
