//! Calibrated comparison widths (issue #20, item 2): the clear-text probe of the lowering, the
//! width rule, per-node widths in the planner and the executor (planned == measured), the range
//! check of a secure run, and the widths through the checkpoint, ONNX and artifact round trips.

use std::collections::{BTreeMap, HashMap};

use masq_ir::*;
use masq_runtime::plain;
use masq_runtime::secure::calibrate::{self as cal, width_for};
use masq_runtime::secure::probe::{CmpStats, probe};
use masq_runtime::secure::{self, SecureConfig, decode_outputs};
use ndarray::{ArrayD, Axis, Slice};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(shape: &[usize], lo: f32, hi: f32, rng: &mut ChaCha8Rng) -> ArrayD<f32> {
    let n = shape.iter().product();
    ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|_| rng.random_range(lo..hi)).collect()).unwrap()
}

/// A CNN with every kind of comparison: Clip, MaxPool, a capped polynomial MaskedAct, LeakyRelu,
/// Sigmoid, HardSwish, then GAP and a Gemm into Softmax.
fn mixed_cnn() -> Graph {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut g = Graph::new("mixed");
    g.inputs.push(ValueInfo::batched("x", &[2, 8, 8]));
    let init = |g: &mut Graph, name: &str, t: ArrayD<f32>| {
        g.initializers.insert(name.into(), t);
        name.to_string()
    };
    let push = |g: &mut Graph, name: &str, op: Op, ins: &[&str]| {
        g.nodes.push(Node::new(name, op, ins, &[name]));
        name.to_string()
    };
    let conv = |w: String, b: String| ConvConfig {
        weight: w,
        bias: Some(b),
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1; 4],
        dilation: [1, 1],
        groups: 1,
    };
    let w1 = init(&mut g, "c1.w", random(&[4, 2, 3, 3], -0.5, 0.5, &mut rng));
    let b1 = init(&mut g, "c1.b", random(&[4], -0.1, 0.1, &mut rng));
    let c1 = push(&mut g, "c1", Op::Conv(conv(w1, b1)), &["x"]);
    let clip = push(&mut g, "clip", Op::Clip(ClipConfig { min: Some(-1.5), max: Some(2.0) }), &[&c1]);
    let pool = PoolConfig {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0; 4],
        dilation: [1, 1],
        ceil_mode: false,
        count_include_pad: false,
    };
    let mp = push(&mut g, "mp", Op::MaxPool(pool), &[&clip]);
    let w2 = init(&mut g, "c2.w", random(&[4, 4, 3, 3], -0.5, 0.5, &mut rng));
    let b2 = init(&mut g, "c2.b", random(&[4], -0.1, 0.1, &mut rng));
    let c2 = push(&mut g, "c2", Op::Conv(conv(w2, b2)), &[&mp]);
    let mask = ArrayD::from_shape_vec(vec![4, 4, 4], (0..64).map(|i| (i % 3 != 0) as u8).collect()).unwrap();
    g.masks.insert("act.mask".into(), mask);
    let replacement = Replacement::Poly {
        c2: init(&mut g, "act.c2", random(&[4], 0.05, 0.2, &mut rng)),
        c1: init(&mut g, "act.c1", random(&[4], 0.3, 1.0, &mut rng)),
        c0: init(&mut g, "act.c0", random(&[4], -0.1, 0.1, &mut rng)),
    };
    let cfg = MaskedActConfig { mask: "act.mask".into(), replacement, cap: Some(1.0) };
    let act = push(&mut g, "act", Op::MaskedAct(cfg), &[&c2]);
    let lr = push(&mut g, "leaky", Op::LeakyRelu(LeakyReluConfig { alpha: 0.1 }), &[&act]);
    let sg = push(&mut g, "sig", Op::Sigmoid, &[&lr]);
    let hs = push(&mut g, "hswish", Op::HardSwish, &[&sg]);
    let gap = push(&mut g, "gap", Op::GlobalAveragePool, &[&hs]);
    let fl = push(&mut g, "flat", Op::Flatten(FlattenConfig { axis: 1 }), &[&gap]);
    let fw = init(&mut g, "fc.w", random(&[3, 4], -1.0, 1.0, &mut rng));
    let fc = push(&mut g, "fc", Op::Gemm(GemmConfig { weight: fw, bias: None }), &[&fl]);
    let sm = push(&mut g, "softmax", Op::Softmax(SoftmaxConfig { axis: 1 }), &[&fc]);
    g.outputs.push(ValueInfo::new(sm, vec![]));
    g.finalize().unwrap();
    g
}

fn first_output(g: &Graph, x: &ArrayD<f32>) -> ArrayD<f32> {
    let input = g.data_inputs().next().unwrap().name.clone();
    let mut out = plain::run(g, HashMap::from([(input, x.clone())])).unwrap();
    out.remove(&g.outputs[0].name).unwrap()
}

fn max_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).fold(0.0, f64::max)
}

#[test]
fn the_probe_computes_what_the_plaintext_interpreter_does_and_compares_what_the_plan_deals() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (g, x) in [
        (mixed_cnn(), random(&[3, 2, 8, 8], -2.0, 2.0, &mut rng)),
        (zoo::build("mnist_cnn", None, 1).unwrap(), random(&[2, 1, 28, 28], 0.0, 1.0, &mut rng)),
    ] {
        let cfg = SecureConfig::default();
        let plan = secure::plan(&g, x.shape()[0], &cfg).unwrap();
        let run = probe(&plan, &x).unwrap();
        let ours = decode_outputs(&plan, &run.outputs).unwrap();
        let err = max_diff(&ours[0].1, &first_output(&g, &x));
        assert!(err < 1e-2, "{}: probe vs plaintext {err}", g.name);
        for (pn, s) in plan.nodes.iter().zip(&run.nodes) {
            let want = if pn.client_side { 0 } else { pn.per_image.comparisons() * x.shape()[0] as u64 };
            assert_eq!(s.count, want, "{}: node {} ({})", g.name, pn.name, pn.op);
            assert_eq!(s.hist.iter().sum::<u64>(), s.count);
        }
        assert!(run.nodes.iter().any(|s| s.max_abs > 0));
    }
}

#[test]
fn the_width_rule_holds_the_largest_value_plus_the_guard_bits() {
    assert_eq!(width_for(0, 0), 2);
    assert_eq!(width_for(0, 3), 4);
    // 2^20 needs 21 bits unsigned, 22 signed.
    assert_eq!(width_for(1 << 20, 3), 25);
    assert_eq!(width_for((1 << 20) - 1, 0), 21);
    assert_eq!(width_for(u64::MAX >> 1, 3), 64);
    let mut s = CmpStats::default();
    let one = CmpStats { count: 1, max_abs: 1 << 20, hist: (0..65).map(|b| (b == 21) as u64).collect() };
    s.merge(&one);
    s.merge(&one);
    assert_eq!(s.signed_bits(), 22);
    assert_eq!(s.overflows(22), 0);
    assert_eq!(s.overflows(21), 2, "|x| = 2^20 is outside 21 signed bits");
    assert_eq!(s.overflows(64), 0);
}

/// The first `n` images of `x`.
fn head(x: &ArrayD<f32>, n: usize) -> ArrayD<f32> {
    x.slice_axis(Axis(0), Slice::from(0..n)).to_owned()
}

#[test]
fn calibrated_widths_cut_dealer_bytes_keep_planned_equal_measured_and_flag_out_of_range_inputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let g = mixed_cnn();
    let images = random(&[12, 2, 8, 8], -2.0, 2.0, &mut rng);
    let cfg = SecureConfig::default();
    let c = cal::calibrate_batched(&g, &images, &cfg, 3, 5).unwrap();
    let names: Vec<&str> = c.nodes.iter().map(|n| n.range.name.as_str()).collect();
    assert_eq!(names, ["clip", "mp", "act", "leaky", "sig", "hswish"]);
    for n in &c.nodes {
        assert_eq!(n.bits, (n.signed_bits + 3).clamp(2, 64), "{}", n.range.name);
        assert!(n.bits < 40, "{}: {} bits for values up to {}", n.range.name, n.bits, n.range.max_abs_real);
        assert!(n.range.max_abs_real > 0.0);
    }
    let ranges: Vec<_> = c.nodes.iter().map(|n| n.range.clone()).collect();
    assert!(c.overflows(&ranges).iter().all(|&o| o == 0));
    // Batching does not change what is compared.
    let one_batch = cal::calibrate_batched(&g, &images, &cfg, 3, 12).unwrap();
    assert_eq!(one_batch.widths(), c.widths());

    let mut narrow = g.clone();
    c.apply(&mut narrow);
    let wide = secure::plan(&g, 1, &cfg).unwrap().total();
    let planned = secure::plan(&narrow, 1, &cfg).unwrap();
    assert!(planned.total().offline_bytes() < wide.offline_bytes());
    assert_eq!(planned.total().online_bytes(), wide.online_bytes());
    for pn in &planned.nodes {
        assert_eq!(pn.cmp_bits, c.widths().get(&pn.name).copied().unwrap_or(64), "{}", pn.name);
    }

    // An image calibrated on: in range, and as accurate as at 64 bits.
    let x = head(&images, 1);
    let run = secure::run(&narrow, &x, &cfg).unwrap();
    let r = &run.report;
    assert_eq!(r.range_overflows, 0);
    assert!(r.max_abs_error < 1e-2, "error {}", r.max_abs_error);
    assert_eq!(r.predicted, r.measured);
    for (l, pn) in r.layers.iter().zip(&planned.nodes) {
        assert_eq!(l.cmp_bits, pn.cmp_bits);
        assert_eq!(l.offline_bytes, pn.cost.offline_bytes());
    }

    // The same image 1000 times larger: beyond the widths, and the run says so.
    let big = x.mapv(|v| v * 1000.0);
    let r = secure::run(&narrow, &big, &cfg).unwrap().report;
    assert!(r.range_overflows > 0);
    let flagged: u64 = r.layers.iter().map(|l| l.range_overflows).sum();
    assert_eq!(flagged, r.range_overflows);
    assert!(r.layers.iter().find(|l| l.name == "clip").unwrap().range_overflows > 0);
    // At 64 bits nothing is out of range.
    assert_eq!(secure::run(&g, &big, &cfg).unwrap().report.range_overflows, 0);
}

#[test]
fn zoo_resnet20_calibrates_below_64_bits_on_generated_images() {
    let g = zoo::build("resnet20", None, 1).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = random(&[4, 3, 32, 32], -2.0, 2.0, &mut rng);
    let cfg = SecureConfig::default();
    let c = cal::calibrate(&g, &x, &cfg, 3).unwrap();
    let relus = g.nodes.iter().filter(|n| matches!(n.op, Op::Relu)).count();
    assert_eq!(c.nodes.len(), relus);
    assert!(c.nodes.iter().all(|n| n.bits >= 4 && n.bits < 64));
    let mut narrow = g.clone();
    c.apply(&mut narrow);
    let before = secure::plan(&g, 1, &cfg).unwrap().total().offline_bytes();
    let after = secure::plan(&narrow, 1, &cfg).unwrap().total().offline_bytes();
    assert!(after < before, "{after} >= {before}");
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("masq-calibrate-{}-{name}", std::process::id()))
}

#[test]
fn widths_survive_checkpoint_onnx_and_artifact_round_trips() {
    let mut g = zoo::build("resnet20", None, 1).unwrap();
    let widths: BTreeMap<String, u32> = g
        .nodes
        .iter()
        .filter(|n| makes_comparisons(&n.op))
        .enumerate()
        .map(|(i, n)| (n.name.clone(), 10 + i as u32))
        .collect();
    assert!(widths.len() > 10);
    g.cmp_bits = widths.clone();
    g.cmp_frac_bits = Some(12);
    g.validate().unwrap();
    // Planned at the default 16 fractional bits: four bits wider than recorded at 12.
    let at16: BTreeMap<String, u32> = widths.iter().map(|(k, v)| (k.clone(), v + 4)).collect();

    let ckpt = temp("ckpt.safetensors");
    checkpoint::save_checkpoint(&ckpt, &g, &Default::default()).unwrap();
    let (back, _) = checkpoint::load_checkpoint(&ckpt).unwrap();
    std::fs::remove_file(&ckpt).ok();
    assert_eq!(back.cmp_bits, widths);
    assert_eq!(back.cmp_frac_bits, Some(12));

    let folded = fold::fold_batchnorm(&g).unwrap();
    let bytes = prost::Message::encode_to_vec(&masq_onnx::export::encode(&folded, 17, "t").unwrap());
    let back = masq_onnx::import_bytes(&bytes, "t.onnx".as_ref()).unwrap();
    assert_eq!(back.cmp_bits, widths);
    assert_eq!(back.cmp_frac_bits, Some(12));

    let dir = temp("artifact");
    let facts = masq_exporter::ExportFacts::new("resnet20");
    masq_exporter::export(&g, &facts, &dir, &Default::default()).unwrap();
    let (back, _) = masq_exporter::artifact::load_artifact(&dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(back.cmp_bits, widths);
    assert_eq!(back.cmp_frac_bits, Some(12));
    // The loaded artifact plans on its widths, moved to the run's scale.
    let p = secure::plan(&back, 1, &SecureConfig::default()).unwrap();
    let planned: BTreeMap<String, u32> =
        p.nodes.iter().filter(|n| widths.contains_key(&n.name)).map(|n| (n.name.clone(), n.cmp_bits)).collect();
    assert_eq!(planned, at16);
    let p = secure::plan(&back, 1, &SecureConfig { frac_bits: 12, ..SecureConfig::default() }).unwrap();
    assert!(p.nodes.iter().filter(|n| widths.contains_key(&n.name)).all(|n| n.cmp_bits == widths[&n.name]));
}

#[test]
fn widths_calibrated_at_one_scale_hold_at_another() {
    let g = mixed_cnn();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let images = random(&[8, 2, 8, 8], -1.0, 1.0, &mut rng);
    let at8 = SecureConfig { frac_bits: 8, ..SecureConfig::default() };
    let c = cal::calibrate(&g, &images, &at8, 0).unwrap();
    let mut narrow = g.clone();
    c.apply(&mut narrow);
    assert_eq!(narrow.cmp_frac_bits, Some(8));
    let x = head(&images, 2);
    // Run at 16 fractional bits: every compared value is 2^8 times larger, and so is each width.
    let r = secure::run(&narrow, &x, &SecureConfig::default()).unwrap().report;
    assert_eq!(r.range_overflows, 0);
    for l in r.layers.iter().filter(|l| c.widths().contains_key(&l.name)) {
        assert_eq!(l.cmp_bits, (c.widths()[&l.name] + 8).min(64), "{}", l.name);
    }
    // The same widths taken as they are (a file without the scale) overflow at 16.
    let mut unscaled = narrow.clone();
    unscaled.cmp_frac_bits = None;
    assert!(secure::run(&unscaled, &x, &SecureConfig::default()).unwrap().report.range_overflows > 0);
    // A bad recorded scale is refused.
    let mut bad = narrow.clone();
    bad.cmp_frac_bits = Some(41);
    assert!(bad.validate().unwrap_err().to_string().contains("41 fractional bits"));
}

#[test]
fn bad_widths_are_refused_naming_the_node_and_the_value() {
    let g = zoo::build("mnist_cnn", None, 1).unwrap();
    let relu = g.nodes.iter().find(|n| matches!(n.op, Op::Relu)).unwrap().name.clone();
    let conv = g.nodes.iter().find(|n| matches!(n.op, Op::Conv(_))).unwrap().name.clone();
    for (name, bits, says) in [
        (relu.as_str(), 65, "65 bits (must be 2 to 64)"),
        (relu.as_str(), 1, "1 bits"),
        ("nope", 20, "does not have"),
        (conv.as_str(), 20, "makes no comparisons"),
    ] {
        let mut bad = g.clone();
        bad.cmp_bits.insert(name.into(), bits);
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(says), "{e}");
        let e = secure::plan(&bad, 1, &SecureConfig::default()).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
    }
    // A malformed ONNX entry.
    let mut ok = g.clone();
    ok.cmp_bits.insert(relu.clone(), 12);
    let mut m = masq_onnx::export::encode(&ok, 17, "t").unwrap();
    for (value, says) in [("{\"x\": 12", "masq.cmp_bits"), (&*format!("{{\"{relu}\": 99}}"), "99 bits")] {
        m.metadata_props.iter_mut().find(|p| p.key == "masq.cmp_bits").unwrap().value = value.to_string();
        let e = masq_onnx::import_bytes(&prost::Message::encode_to_vec(&m), "t.onnx".as_ref()).unwrap_err().to_string();
        assert!(e.contains(says), "{e}");
    }
}
