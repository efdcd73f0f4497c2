//! Zoo graphs: exact ReLU counts (docs/ALGORITHMS.md §9) and plaintext runs.

use masq_exporter::load_model;
use masq_ir::report::report;
use masq_ir::zoo;
use masq_ir::{Dim, Op};
use masq_runtime::plain;
use ndarray::{ArrayD, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn relus(spec: &str) -> u64 {
    report(&load_model(spec).unwrap()).unwrap().relu_count
}

#[test]
fn published_relu_counts() {
    assert_eq!(relus("zoo:resnet18_cifar"), 557_056);
    assert_eq!(relus("zoo:resnet18_in"), 491_520);
    assert_eq!(relus("zoo:resnet18_in@64x64"), 1_966_080);
    assert_eq!(relus("zoo:resnet18_small"), 188_416);
    assert_eq!(relus("zoo:resnet20"), 188_416);
    assert_eq!(relus("zoo:wrn22_8"), 1_359_872);
    assert_eq!(relus("zoo:wrn22_8@64x64"), 5_439_488);
}

#[test]
fn cifar_resnet_counts_follow_depth() {
    // Stem 16·32² plus 2n ReLUs per block in three stages: 16·32², 32·16², 64·8² elements each.
    for (name, n) in [("resnet20", 3u64), ("resnet32", 5), ("resnet44", 7), ("resnet56", 9)] {
        let expected = 16_384 + 2 * n * (16_384 + 8_192 + 4_096);
        assert_eq!(relus(&format!("zoo:{name}")), expected, "{name}");
    }
}

#[test]
fn vgg_and_mnist_counts() {
    let vgg = 2 * 64 * 1024 + 2 * 128 * 256 + 3 * 256 * 64 + 3 * 512 * 16 + 3 * 512 * 4;
    assert_eq!(relus("zoo:vgg16_cifar"), vgg);
    let r = report(&load_model("zoo:mnist_cnn").unwrap()).unwrap();
    assert_eq!(r.relu_count, 8 * 28 * 28 + 16 * 14 * 14);
    // 2x2 pools: 3 comparisons per output element.
    assert_eq!(r.maxpool_comparisons, 3 * (8 * 14 * 14 + 16 * 7 * 7));
    // cnn_small: ReLU is its only nonlinearity.
    let r = report(&load_model("zoo:cnn_small").unwrap()).unwrap();
    assert_eq!(r.relu_count, 16 * 32 * 32 + 32 * 16 * 16 + 64 * 8 * 8);
    assert_eq!(r.maxpool_comparisons + r.clip_comparisons + r.leaky_relu_comparisons, 0);
    assert_eq!(r.comparisons, r.relu_count);
}

#[test]
fn mobilenetv2_cifar_relu6_sites() {
    // Stem 32·32²; per block the expansion's ReLU6 at the input resolution and the depthwise
    // conv's at the output one; head 1280·4².
    let stages =
        [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];
    let (mut cin, mut hw, mut sites) = (32u64, 32u64, 32 * 32 * 32u64);
    for (t, c, n, s) in stages {
        for j in 0..n {
            let stride = if j == 0 { s } else { 1 };
            let wide = cin * t;
            sites += wide * hw * hw;
            hw /= stride;
            sites += wide * hw * hw;
            cin = c;
        }
    }
    sites += 1280 * hw * hw;
    assert_eq!(hw, 4);
    let g = load_model("zoo:mobilenetv2_cifar").unwrap();
    let r = report(&g).unwrap();
    assert_eq!(r.relu_count, sites);
    // Every ReLU6 is a capped site: a ReLU plus a cap comparison.
    assert_eq!(r.clip_comparisons, sites);
    let depthwise = g.nodes.iter().filter(|n| matches!(&n.op, Op::Conv(c) if c.groups > 1)).count();
    assert_eq!(depthwise, 17);
    assert!(g.nodes.iter().all(|n| !matches!(n.op, Op::Relu)));
    let x = ArrayD::from_elem(vec![2, 3, 32, 32], 0.1f32);
    let y = plain::run_single(&g, x).unwrap();
    assert_eq!(y.shape(), &[2, 10]);
}

#[test]
fn params_and_macs_of_resnet20() {
    let r = report(&load_model("zoo:resnet20").unwrap()).unwrap();
    // 269,722 trainable parameters (akamaster's table) plus 2 BN buffers per channel.
    let convs =
        16 * 27 + 6 * 16 * 16 * 9 + 32 * 16 * 9 + (2 * 3 - 1) * 32 * 32 * 9 + 64 * 32 * 9 + (2 * 3 - 1) * 64 * 64 * 9;
    let bns = 4 * (16 * 7 + 32 * 6 + 64 * 6);
    assert_eq!(r.params, (convs + bns + 650) as u64);
    assert_eq!(r.params - 2 * (16 * 7 + 32 * 6 + 64 * 6), 269_722);
    assert!(r.macs > 40_000_000 && r.macs < 42_000_000, "{}", r.macs);
    assert!(r.supports_batch);
}

#[test]
fn akamaster_parameter_names() {
    let g = zoo::build("resnet20", None, 0).unwrap();
    for key in
        ["conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer3.2.bn2.running_var", "linear.weight"]
    {
        assert!(g.initializers.contains_key(key), "{key}");
    }
    assert_eq!(g.initializers.len(), 1 + 4 + 9 * (2 + 8) + 2);
}

#[test]
fn spec_parsing() {
    let s = zoo::ZooSpec::parse("zoo:wrn22_8@64x48").unwrap();
    assert_eq!((s.name.as_str(), s.input_hw), ("wrn22_8", Some((64, 48))));
    assert_eq!(zoo::ZooSpec::parse("resnet20@40").unwrap().input_hw, Some((40, 40)));
    assert!(zoo::ZooSpec::parse("zoo:nope").is_err());
    assert!(zoo::ZooSpec::parse("zoo:resnet20@0x3").is_err());
    assert!(zoo::ZooSpec::parse("zoo:resnet20@axb").is_err());
    // Too small for VGG's five pools: a typed error, not a panic.
    assert!(load_model("zoo:vgg16_cifar@8x8").is_err());
    assert!(load_model("model.txt").is_err());
}

fn random_input(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()).unwrap()
}

#[test]
fn batch_runs_agree_with_single_images() {
    for spec in ["zoo:resnet20", "zoo:mnist_cnn", "zoo:resnet18_small@16x16"] {
        let g = load_model(spec).unwrap();
        let shape: Vec<usize> = g.inputs[0].shape.iter().map(|d| d.resolve(3)).collect();
        let x = random_input(&shape, 1);
        let y = plain::run_single(&g, x.clone()).unwrap();
        assert_eq!(y.shape(), &[3, 10]);
        assert_eq!(g.outputs[0].shape, vec![Dim::Batch, Dim::Fixed(10)]);
        for i in 0..3 {
            let xi = x.index_axis(Axis(0), i).insert_axis(Axis(0)).to_owned();
            let yi = plain::run_single(&g, xi).unwrap();
            for (a, b) in yi.iter().zip(y.index_axis(Axis(0), i).iter()) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{spec}: {a} vs {b}");
            }
        }
        assert!(y.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn option_a_shortcut_is_slice_and_pad() {
    let g = zoo::build("resnet20", None, 3).unwrap();
    let slice = g.nodes.iter().find(|n| n.name == "layer2.0.shortcut.slice").unwrap();
    assert!(matches!(&slice.op, Op::Slice(c) if c.steps == vec![2, 2]));
    let pad = g.nodes.iter().find(|n| n.name == "layer2.0.shortcut.pad").unwrap();
    assert!(matches!(&pad.op, Op::Pad(c) if c.pads[1] == (8, 8)));
    let shapes = g.infer_shapes(1).unwrap();
    assert_eq!(shapes["layer2.0.shortcut.pad"], vec![1, 32, 16, 16]);
    assert_eq!(shapes["layer3.0.shortcut.pad"], vec![1, 64, 8, 8]);
}

#[test]
fn seeds_change_weights_and_given_weights_apply() {
    let a = zoo::build("mnist_cnn", None, 1).unwrap();
    let b = zoo::build("mnist_cnn", None, 2).unwrap();
    assert_ne!(a.initializers["conv1.weight"], b.initializers["conv1.weight"]);
    let mut c = zoo::build("mnist_cnn", None, 1).unwrap();
    let mut given: std::collections::BTreeMap<String, ArrayD<f32>> =
        b.initializers.iter().map(|(k, v)| (format!("module.{k}"), v.clone())).collect();
    zoo::apply_weights(&mut c, &given).unwrap();
    assert_eq!(c.initializers, b.initializers);
    given.remove("module.fc.bias");
    let err = zoo::apply_weights(&mut c, &given).unwrap_err().to_string();
    assert!(err.contains("fc.bias"), "{err}");
}

#[test]
fn graph_structure_round_trips_through_json() {
    let g = zoo::build("resnet20", None, 0).unwrap();
    let json = serde_json::to_string(&g).unwrap();
    assert!(json.contains("\"op\":\"Conv\""));
    let mut back: masq_ir::Graph = serde_json::from_str(&json).unwrap();
    assert_eq!(back.nodes, g.nodes);
    assert_eq!(back.outputs, g.outputs);
    back.initializers = g.initializers.clone();
    assert_eq!(back, g);
}

#[test]
fn vit_cifar_runs_image_by_image_at_any_batch() {
    let mut g = load_model("zoo:vit_cifar").unwrap();
    assert_eq!(g.inputs[0].shape, vec![Dim::Batch, Dim::Fixed(3), Dim::Fixed(32), Dim::Fixed(32)]);
    assert_eq!(g.outputs[0].shape, vec![Dim::Batch, Dim::Fixed(10)]);
    for key in [
        "patch_embed.proj.weight",
        "pos_embed",
        "blocks.0.norm1.weight",
        "blocks.0.attn.qkv.weight",
        "blocks.3.attn.proj.bias",
        "blocks.3.norm2.bias",
        "blocks.3.mlp.fc2.weight",
        "norm.weight",
        "head.weight",
    ] {
        assert!(g.initializers.contains_key(key), "{key}");
    }
    // Patch conv (2), pos_embed; per block 2 norms, qkv, proj, fc1, fc2 (2 each) and the √32
    // divisor; the final norm and the head.
    assert_eq!(g.initializers.len(), 3 + 4 * 13 + 4);
    let count = |op: &str| g.nodes.iter().filter(|n| n.op.name() == op).count();
    assert_eq!(count("Relu"), 0);
    assert_eq!((count("LayerNormalization"), count("Softmax"), count("Gelu")), (9, 4, 4));
    // Q·Kᵀ and attention·V multiply two computed tensors.
    let products = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::MatMul(_)) && n.inputs.iter().all(|i| !g.initializers.contains_key(i)));
    assert_eq!(products.count(), 8);
    // Logits of order 1 (the seeded head has std 0.02).
    g.initializers.get_mut("head.weight").unwrap().mapv_inplace(|v| 50.0 * v);
    let x = random_input(&[3, 3, 32, 32], 4);
    let y = plain::run_single(&g, x.clone()).unwrap();
    assert_eq!(y.shape(), &[3, 10]);
    assert!(y.iter().all(|v| v.is_finite()));
    let peak = y.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(peak > 0.1, "logits too small to compare: {peak}");
    for i in 0..3 {
        let xi = x.index_axis(Axis(0), i).insert_axis(Axis(0)).to_owned();
        let yi = plain::run_single(&g, xi).unwrap();
        assert_eq!(yi.shape(), &[1, 10]);
        for (a, b) in yi.iter().zip(y.index_axis(Axis(0), i).iter()) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "image {i}: {a} vs {b}");
        }
    }
    // The images are told apart.
    assert_ne!(y.index_axis(Axis(0), 0), y.index_axis(Axis(0), 1));
}
