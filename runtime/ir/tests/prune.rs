//! Structural tests of the channel-pruning pass (`masq_ir::prune`) and the zoo models it targets:
//! which convs are prunable, what the surgery leaves (shapes, tensors, per-conv changes), the
//! reference zeroing, slopes and the seed code's counting. That the pruned graphs compute the
//! same function is checked by evaluating them, in masq-runtime's tests
//! (`runtime/tests/it/prune_export.rs`).

use std::collections::{BTreeMap, BTreeSet};

use masq_ir::prune::count::{SeedCount, seed_count};
use masq_ir::prune::slopes::{fold_slopes, insert_slopes, read_slopes, slope_name, slope_sites};
use masq_ir::prune::{DeadSet, conv_sites, prune_channels, zero_filters};
use masq_ir::report::report;
use masq_ir::{ConvConfig, Dim, Graph, IrError, Node, Op, ValueInfo, zoo};
use ndarray::{ArrayD, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn dead(entries: &[(&str, &[usize])]) -> DeadSet {
    entries.iter().map(|(n, c)| (n.to_string(), c.iter().copied().collect())).collect()
}

fn weight_shape(g: &Graph, conv: &str) -> Vec<usize> {
    let node = g.nodes.iter().find(|n| n.name == conv).unwrap();
    let Op::Conv(c) = &node.op else { panic!("{conv} is not a conv") };
    g.initializers[&c.weight].shape().to_vec()
}

#[test]
fn zoo_additions_have_their_documented_counts() {
    // Pre-activation WRN-d-k, n = (d-4)/6 blocks per group at widths w1, w2, w3 (16k, 32k, 64k)
    // and sides 32, 16, 8: a group's first BN-ReLU runs on its input (the stem's 16 channels at
    // 32², or the previous group's width at the previous side), the other 2n-1 on its own.
    let wrn = |n: u64, k: u64| {
        let (w1, w2, w3) = (16 * k, 32 * k, 64 * k);
        let g1 = 16 * 1024 + (2 * n - 1) * w1 * 1024;
        let g2 = w1 * 1024 + (2 * n - 1) * w2 * 256;
        let g3 = w2 * 256 + (2 * n - 1) * w3 * 64;
        g1 + g2 + g3
    };
    for (name, n, k, want) in [("wrn22_8", 3, 8, 1_359_872), ("wrn16_4", 2, 4, 458_752), ("wrn40_4", 6, 4, 1_376_256)] {
        let r = report(&zoo::build(name, None, 0).unwrap()).unwrap();
        assert_eq!(wrn(n, k), want, "{name} formula");
        assert_eq!(r.relu_count, want, "{name}");
        assert_eq!(r.comparisons, want, "{name}: ReLUs only");
    }
    let g = zoo::build("cnn4", None, 0).unwrap();
    let r = report(&g).unwrap();
    assert_eq!(r.relu_count, 2 * 64 * 1024 + 2 * 128 * 256);
    assert_eq!(r.relu_count, 196_608);
    assert_eq!(r.maxpool_comparisons, 3 * (64 * 256 + 128 * 64));
    assert_eq!(r.maxpool_comparisons, 73_728);
    assert_eq!(g.outputs[0].shape, vec![Dim::Batch, Dim::Fixed(10)]);
    assert_eq!(seed_count(&g).unwrap().params, 64 * 27 + 64 * 576 + 128 * 576 + 128 * 1152 + 1280);
    assert_eq!(seed_count(&g).unwrap().params, 261_056);
    for name in ["wrn16_4", "wrn40_4", "cnn4"] {
        assert!(zoo::MODELS.iter().any(|(m, _)| *m == name), "{name} in MODELS");
        assert!(zoo::ZooSpec::parse(&format!("zoo:{name}@16x16")).is_ok());
        let small = zoo::build(name, Some((16, 16)), 1).unwrap();
        assert!(small.supports_batch(), "{name}");
    }
}

#[test]
fn conv_sites_of_resnet20_are_the_inner_convs_of_each_block() {
    let g = zoo::build("resnet20", None, 0).unwrap();
    let sites = conv_sites(&g).unwrap();
    assert_eq!(sites.len(), 19);
    assert_eq!(sites[0].conv, "conv1");
    assert_eq!(sites[0].weight, "conv1.weight");
    assert_eq!(sites[0].batchnorm.as_deref(), Some("bn1"));
    assert_eq!((sites[0].out_channels, sites[0].groups), (16, 1));
    for s in &sites {
        // Only a block's first conv feeds nothing but the next conv; the others feed the
        // residual stream, where the other operand of the Add keeps every channel alive.
        assert_eq!(s.removable, s.conv.ends_with(".conv1"), "{}", s.conv);
        assert_eq!(s.batchnorm.as_deref(), Some(s.conv.replace("conv", "bn").as_str()), "{}", s.conv);
    }
    assert_eq!(sites.iter().filter(|s| s.removable).count(), 9);
}

#[test]
fn conv_sites_of_the_other_zoo_models() {
    let removable = |name: &str, hw| -> BTreeMap<String, bool> {
        let g = zoo::build(name, hw, 0).unwrap();
        conv_sites(&g).unwrap().into_iter().map(|s| (s.conv, s.removable)).collect()
    };
    // Plain CNNs: every conv.
    for name in ["cnn_small", "cnn4", "mnist_cnn", "vgg16_cifar"] {
        let r = removable(name, None);
        assert!(!r.is_empty() && r.values().all(|&v| v), "{name}: {r:?}");
    }
    assert_eq!(removable("cnn4", None).len(), 4);
    // Pre-activation WRN: each block's first conv (its output only reaches the block's second
    // conv) and the stem conv (read by the first block's BN-ReLU alone); not the convs that
    // write the residual stream.
    let r = removable("wrn16_4", Some((8, 8)));
    for (conv, &v) in &r {
        let want = conv == "conv1" || conv.ends_with(".conv1");
        assert_eq!(v, want, "wrn16_4 {conv}");
    }
    assert_eq!(r.len(), 1 + 3 * 2 * 2 + 3);
    // ResNet-18: the first conv of each block only.
    let r = removable("resnet18_cifar", Some((8, 8)));
    for (conv, &v) in &r {
        assert_eq!(v, conv.ends_with(".conv1"), "resnet18_cifar {conv}");
    }
}

/// For every conv: one dead filter is removed iff `conv_sites` says it is removable.
#[test]
fn removable_agrees_with_prune_channels() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for (name, hw) in [("resnet20", None), ("mnist_cnn", None), ("wrn16_4", Some((8, 8))), ("cnn4", Some((16, 16)))] {
        let g = zoo::build(name, hw, 1).unwrap();
        for site in conv_sites(&g).unwrap() {
            let c = rng.random_range(0..site.out_channels);
            let p = prune_channels(&g, &dead(&[(&site.conv, &[c])])).unwrap();
            let change = p.convs.iter().find(|x| x.conv == site.conv).unwrap();
            assert_eq!(change.before, site.out_channels);
            if site.removable {
                assert_eq!((change.after, change.kept_zeroed), (change.before - 1, 0), "{name} {}", site.conv);
                assert_eq!(weight_shape(&p.graph, &site.conv)[0], site.out_channels - 1);
            } else {
                assert_eq!((change.after, change.kept_zeroed), (change.before, 1), "{name} {}", site.conv);
                assert_eq!(weight_shape(&p.graph, &site.conv)[0], site.out_channels);
            }
            // Nothing else changes for one filter.
            for other in p.convs.iter().filter(|x| x.conv != site.conv) {
                assert_eq!((other.before, other.kept_zeroed), (other.after, 0), "{name} {}", other.conv);
            }
        }
    }
}

#[test]
fn zero_filters_zeroes_rows_biases_and_the_batchnorm_channel() {
    // mnist_cnn: convs with biases, no BatchNorm.
    let g = zoo::build("mnist_cnn", None, 2).unwrap();
    let mut z = g.clone();
    zero_filters(&mut z, &dead(&[("conv1", &[0, 5]), ("conv2", &[])])).unwrap();
    let (w0, w) = (&g.initializers["conv1.weight"], &z.initializers["conv1.weight"]);
    for o in 0..8 {
        let row = w.index_axis(Axis(0), o);
        if o == 0 || o == 5 {
            assert!(row.iter().all(|&v| v == 0.0));
            assert_eq!(z.initializers["conv1.bias"][[o]], 0.0);
        } else {
            assert_eq!(row, w0.index_axis(Axis(0), o));
            assert_eq!(z.initializers["conv1.bias"][[o]], g.initializers["conv1.bias"][[o]]);
        }
    }
    assert_eq!(z.initializers["conv2.weight"], g.initializers["conv2.weight"]);
    // cnn_small: BN scale and shift of the channel, not its statistics.
    let g = zoo::build("cnn_small", None, 2).unwrap();
    let mut z = g.clone();
    zero_filters(&mut z, &dead(&[("conv2", &[3])])).unwrap();
    for (t, zeroed) in
        [("bn2.weight", true), ("bn2.bias", true), ("bn2.running_mean", false), ("bn2.running_var", false)]
    {
        assert_eq!(z.initializers[t][[3]] == 0.0, zeroed, "{t}");
        assert_eq!(z.initializers[t][[4]], g.initializers[t][[4]], "{t}");
    }
    assert!(z.initializers["conv2.weight"].index_axis(Axis(0), 3).iter().all(|&v| v == 0.0));
}

#[test]
fn bad_dead_sets_are_errors_naming_the_conv_and_channel() {
    let g = zoo::build("cnn_small", None, 0).unwrap();
    let mut z = g.clone();
    let cases: [(DeadSet, &[&str]); 3] = [
        (dead(&[("conv9", &[0])]), &["conv9"]),
        (dead(&[("relu1", &[0])]), &["relu1", "Conv"]),
        (dead(&[("conv1", &[2]), ("conv2", &[32])]), &["conv2", "32", "32 output channels"]),
    ];
    for (d, says) in cases {
        let e = zero_filters(&mut z, &d).unwrap_err();
        let msg = e.to_string();
        assert!(says.iter().all(|s| msg.contains(s)), "{msg}");
        assert!(matches!(e, IrError::NotFound { .. } | IrError::UnsupportedConfig { .. }), "{e:?}");
        assert_eq!(z, g, "unchanged on error");
        let e = prune_channels(&g, &d).unwrap_err().to_string();
        assert_eq!(e, msg);
    }
}

#[test]
fn an_empty_dead_set_changes_nothing() {
    for name in ["resnet20", "cnn4"] {
        let g = zoo::build(name, Some((16, 16)), 0).unwrap();
        let p = prune_channels(&g, &DeadSet::new()).unwrap();
        assert_eq!(p.graph, g, "{name}");
        assert_eq!(p.graph.initializers, g.initializers);
        assert!(p.convs.iter().all(|c| c.before == c.after && c.kept_zeroed == 0));
    }
}

#[test]
fn pruned_resnet20_has_smaller_layers_and_keeps_residual_filters_zeroed() {
    let mut g = zoo::build("resnet20", None, 3).unwrap();
    g.cmp_bits = BTreeMap::from([("layer1.0.relu1".to_string(), 20), ("relu".to_string(), 30)]);
    g.validate().unwrap();
    let d = dead(&[
        ("layer1.0.conv1", &[0, 3, 15]),
        ("layer2.1.conv1", &(0..31).collect::<Vec<_>>()),
        ("layer3.2.conv1", &(0..64).collect::<Vec<_>>()),
        ("layer1.2.conv2", &[1, 2]),
        ("conv1", &[7]),
    ]);
    let p = prune_channels(&g, &d).unwrap();
    let change = |c: &str| p.convs.iter().find(|x| x.conv == c).unwrap().clone();
    assert_eq!(p.convs.len(), 19);
    let c = change("layer1.0.conv1");
    assert_eq!((c.before, c.after, c.kept_zeroed), (16, 13, 0));
    assert_eq!(weight_shape(&p.graph, "layer1.0.conv1"), vec![13, 16, 3, 3]);
    assert_eq!(weight_shape(&p.graph, "layer1.0.conv2"), vec![16, 13, 3, 3]);
    assert_eq!(p.graph.initializers["layer1.0.bn1.running_var"].len(), 13);
    let c = change("layer2.1.conv1");
    assert_eq!((c.before, c.after, c.kept_zeroed), (32, 1, 0));
    // A whole layer: one (zero) channel stays so that no value is left with none.
    let c = change("layer3.2.conv1");
    assert_eq!((c.before, c.after, c.kept_zeroed), (64, 1, 1));
    assert_eq!(weight_shape(&p.graph, "layer3.2.conv2"), vec![64, 1, 3, 3]);
    for c in ["layer1.2.conv2", "conv1"] {
        let c = change(c);
        assert_eq!(c.after, c.before, "{}", c.conv);
        assert_eq!(c.kept_zeroed, d[&c.conv].len(), "{}", c.conv);
    }
    // The kept dead filters are zeroed, their BN channel too.
    assert!(p.graph.initializers["layer1.2.conv2.weight"].index_axis(Axis(0), 1).iter().all(|&v| v == 0.0));
    assert_eq!(p.graph.initializers["bn1.weight"][[7]], 0.0);
    assert_eq!(p.graph.initializers["bn1.bias"][[7]], 0.0);
    let (a, b) = (report(&g).unwrap(), report(&p.graph).unwrap());
    let relus = 3 * 32 * 32 + 31 * 16 * 16 + 63 * 8 * 8;
    assert_eq!(a.relu_count - b.relu_count, relus as u64);
    assert!(b.params < a.params && b.macs < a.macs);
    assert_eq!(p.graph.outputs, g.outputs);
    assert_eq!(p.graph.nodes.len(), g.nodes.len());
    // Calibrated comparison widths stay with their nodes (none disappears).
    assert_eq!(p.graph.cmp_bits, g.cmp_bits);
}

#[test]
fn a_dead_filter_on_the_residual_stream_stays_zeroed_even_where_the_shortcut_is_padding() {
    // layer2.0.add = bn2 + pad(slice(x)): channels 0..8 and 24..32 of the shortcut are zero padding.
    // A dead layer2.0.conv2 filter there makes the sum zero, but the next block adds it to its
    // own (live) residual branch, so it stays: kept zeroed, not removed.
    let g = zoo::build("resnet20", Some((16, 16)), 4).unwrap();
    let p = prune_channels(&g, &dead(&[("layer2.0.conv2", &[0, 31])])).unwrap();
    let c = p.convs.iter().find(|c| c.conv == "layer2.0.conv2").unwrap();
    assert_eq!((c.after, c.kept_zeroed), (32, 2));
    // The Pad and the Slice are unchanged.
    assert_eq!(p.graph.nodes, g.nodes);
}

#[test]
fn a_whole_residual_stream_channel_goes_and_the_option_a_pads_follow() {
    // Stage 3's stream channel c is bn2 of each layer3 block plus the shortcut: for c < 16 and
    // c >= 48 zero padding, for 16 <= c < 48 stage 2's channel c - 16. Killing it in every conv
    // that writes it makes it zero up to the linear layer, which drops its column.
    let g = zoo::build("resnet20", Some((16, 16)), 4).unwrap();
    let mut d = DeadSet::new();
    for b in 0..3 {
        d.insert(format!("layer3.{b}.conv2"), BTreeSet::from([0, 20, 63]));
        d.insert(format!("layer2.{b}.conv2"), BTreeSet::from([4]));
    }
    let p = prune_channels(&g, &d).unwrap();
    for c in &p.convs {
        let want = match c.conv.as_str() {
            x if x.starts_with("layer3.") && x.ends_with("conv2") => (64, 61, 0),
            x if x.starts_with("layer2.") && x.ends_with("conv2") => (32, 31, 0),
            _ => (c.before, c.before, 0),
        };
        assert_eq!((c.before, c.after, c.kept_zeroed), want, "{}", c.conv);
    }
    let pad = |name: &str| match &p.graph.nodes.iter().find(|n| n.name == name).unwrap().op {
        Op::Pad(c) => c.pads[1],
        _ => unreachable!(),
    };
    // Stage 2's channel 4 was padding of layer2.0's shortcut; stage 3's 0 and 63 padding of
    // layer3.0's, its 20 stage 2's channel 4.
    assert_eq!(pad("layer2.0.shortcut.pad"), (7, 8));
    assert_eq!(pad("layer3.0.shortcut.pad"), (15, 15));
    assert_eq!(weight_shape(&p.graph, "layer3.0.conv1"), vec![64, 31, 3, 3]);
    assert_eq!(weight_shape(&p.graph, "layer3.1.conv1"), vec![64, 61, 3, 3]);
    assert_eq!(p.graph.initializers["linear.weight"].shape(), &[10, 61]);
    let want = g.initializers["linear.weight"].select(Axis(1), &(1..63).filter(|&c| c != 20).collect::<Vec<_>>());
    assert_eq!(p.graph.initializers["linear.weight"], want);
}

#[test]
fn depthwise_groups_go_whole_and_concat_offsets_follow() {
    // x -> pw (1x1, 6 out) -> dw (3x3, groups 6, no bias) -> concat(dw, pw2) -> conv out -> y
    let mut g = Graph::new("dw");
    g.inputs.push(ValueInfo::new("x", vec![Dim::Batch, Dim::Fixed(3), Dim::Fixed(6), Dim::Fixed(6)]));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut w = |name: &str, shape: &[usize], g: &mut Graph| {
        let n = shape.iter().product();
        let v = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        g.initializers.insert(name.into(), ArrayD::from_shape_vec(shape.to_vec(), v).unwrap());
    };
    w("pw.w", &[6, 3, 1, 1], &mut g);
    w("pw2.w", &[4, 3, 1, 1], &mut g);
    w("dw.w", &[6, 1, 3, 3], &mut g);
    w("out.w", &[5, 10, 3, 3], &mut g);
    let conv = |weight: &str, k: usize, groups: usize| {
        Op::Conv(ConvConfig {
            weight: weight.into(),
            bias: None,
            kernel: [k, k],
            stride: [1, 1],
            padding: [k / 2; 4],
            dilation: [1, 1],
            groups,
        })
    };
    g.nodes.push(Node::new("pw", conv("pw.w", 1, 1), &["x"], &["a"]));
    g.nodes.push(Node::new("pw2", conv("pw2.w", 1, 1), &["x"], &["b"]));
    g.nodes.push(Node::new("dw", conv("dw.w", 3, 6), &["a"], &["d"]));
    g.nodes.push(Node::new("cat", Op::Concat(masq_ir::ConcatConfig { axis: 1 }), &["d", "b"], &["c"]));
    g.nodes.push(Node::new("out", conv("out.w", 3, 1), &["c"], &["y"]));
    g.outputs.push(ValueInfo::new("y", vec![]));
    g.finalize().unwrap();
    let sites: BTreeMap<String, bool> = conv_sites(&g).unwrap().into_iter().map(|s| (s.conv, s.removable)).collect();
    // A dead dw filter alone stays: its group's input channel is live.
    assert_eq!(
        sites,
        BTreeMap::from([("pw".into(), true), ("pw2".into(), true), ("dw".into(), false), ("out".into(), false)])
    );
    let p = prune_channels(&g, &dead(&[("dw", &[2])])).unwrap();
    let change: Vec<(usize, usize)> = p.convs.iter().map(|c| (c.after, c.kept_zeroed)).collect();
    assert_eq!(change, vec![(6, 0), (4, 0), (6, 1), (5, 0)]);
    // A dead pw filter zeroes dw's group (no bias): the group goes, the concat shrinks.
    let p = prune_channels(&g, &dead(&[("pw", &[1, 4]), ("pw2", &[3])])).unwrap();
    assert_eq!(weight_shape(&p.graph, "pw"), vec![4, 3, 1, 1]);
    assert_eq!(weight_shape(&p.graph, "dw"), vec![4, 1, 3, 3]);
    assert_eq!(weight_shape(&p.graph, "pw2"), vec![3, 3, 1, 1]);
    assert_eq!(weight_shape(&p.graph, "out"), vec![5, 7, 3, 3]);
    let dw = p.graph.nodes.iter().find(|n| n.name == "dw").unwrap();
    assert!(matches!(&dw.op, Op::Conv(c) if c.groups == 4));
    let change: Vec<(usize, usize, usize)> = p.convs.iter().map(|c| (c.before, c.after, c.kept_zeroed)).collect();
    assert_eq!(change, vec![(6, 4, 0), (4, 3, 0), (6, 4, 0), (5, 5, 0)]);
    // The weights of `out` kept are its columns 0, 2, 3, 5 (dw) and 6, 7, 8 (pw2).
    let want = g.initializers["out.w"].select(Axis(1), &[0, 2, 3, 5, 6, 7, 8]);
    let Op::Conv(c) = &p.graph.nodes.iter().find(|n| n.name == "out").unwrap().op else { unreachable!() };
    assert_eq!(p.graph.initializers[&c.weight], want);
}

#[test]
fn seed_count_of_cnn_small_by_hand() {
    let g = zoo::build("cnn_small", None, 0).unwrap();
    // conv1 16·3·3², 32×32 out; conv2 32·16·3², 16×16; conv3 64·32·3², 8×8; fc 10·64.
    let params = 16 * 3 * 9 + 32 * 16 * 9 + 64 * 32 * 9 + 10 * 64;
    assert_eq!(params, 432 + 4_608 + 18_432 + 640);
    let flops = 2 * 432 * 1024 + 2 * 4_608 * 256 + 2 * 18_432 * 64 + 2 * 640;
    assert_eq!(flops, 884_736 + 2_359_296 + 2_359_296 + 1_280);
    let full = seed_count(&g).unwrap();
    assert_eq!(full, SeedCount { params: 24_112, flops: 5_604_608 });
    // Half of conv2's filters: conv2 loses 16·16·9 params, conv3 32·16·9.
    let p = prune_channels(&g, &dead(&[("conv2", &(0..16).collect::<Vec<_>>())])).unwrap();
    let pruned = seed_count(&p.graph).unwrap();
    let (dp, df) = (16 * 16 * 9 + 64 * 16 * 9, 2 * 16 * 16 * 9 * 256 + 2 * 64 * 16 * 9 * 64);
    assert_eq!(pruned, SeedCount { params: 24_112 - dp, flops: 5_604_608 - df });
    let (sp, sf) = full.savings(&pruned);
    assert!((sp - dp as f64 / 24_112.0).abs() < 1e-12, "{sp}");
    assert!((sf - df as f64 / 5_604_608.0).abs() < 1e-12, "{sf}");
    assert_eq!(full.savings(&full), (0.0, 0.0));
    assert_eq!(SeedCount::default().savings(&full), (0.0, 0.0));
    // BatchNorm and biases do not count: mnist_cnn has conv biases.
    let m = zoo::build("mnist_cnn", None, 0).unwrap();
    let c = seed_count(&m).unwrap();
    assert_eq!(c.params, 8 * 25 + 16 * 8 * 25 + 10 * 784);
    assert_eq!(c.flops, 2 * (8 * 25 * 784 + 16 * 8 * 25 * 196 + 10 * 784));
}

#[test]
fn slope_sites_of_zoo_models() {
    let names = |name: &str, hw| -> Vec<(String, String)> {
        let g = zoo::build(name, hw, 0).unwrap();
        slope_sites(&g).unwrap().into_iter().map(|s| (s.relu, s.conv)).collect()
    };
    let r20 = names("resnet20", None);
    assert_eq!(r20.len(), 9);
    assert!(r20.iter().all(|(r, c)| r.ends_with(".relu1") && c == &r.replace("relu1", "conv1")), "{r20:?}");
    assert_eq!(names("cnn_small", None), (1..=3).map(|i| (format!("relu{i}"), format!("conv{i}"))).collect::<Vec<_>>());
    // The ReLUs before a max pool are not sites (a max does not commute with a negative slope).
    assert_eq!(names("cnn4", None), vec![("relu1".into(), "conv1".into()), ("relu3".into(), "conv3".into())]);
    assert!(names("mnist_cnn", None).is_empty());
    let w = names("wrn16_4", Some((8, 8)));
    assert_eq!(w.len(), 7);
    assert_eq!(w[0], ("block1.layer.0.relu1".into(), "conv1".into()));
    assert!(w[1..].iter().all(|(r, c)| r.ends_with(".relu2") && c == &r.replace("relu2", "conv1")), "{w:?}");
    let g = zoo::build("resnet20", None, 0).unwrap();
    let s = slope_sites(&g).unwrap();
    assert_eq!((s[0].channels, s[3].channels, s[8].channels), (16, 32, 64));
}

#[test]
fn slopes_insert_read_and_fold() {
    let g = zoo::build("cnn_small", None, 7).unwrap();
    let a2: Vec<f32> = (0..32).map(|c| if c % 4 == 0 { 0.01 } else { -0.5 - c as f32 / 10.0 }).collect();
    let a3: Vec<f32> = (0..64).map(|c| if c < 10 { -0.05 } else { 1.0 + c as f32 / 100.0 }).collect();
    let init = BTreeMap::from([("relu2".to_string(), a2.clone()), ("relu3".to_string(), a3.clone())]);
    let s = insert_slopes(&g, &init).unwrap();
    assert_eq!(s.nodes.len(), g.nodes.len() + 2);
    assert_eq!(read_slopes(&s).unwrap(), init);
    assert_eq!(s.initializers[&slope_name("relu2")].shape(), &[1, 32, 1, 1]);
    let mul = s.nodes.iter().position(|n| n.name == "relu2.slope_mul").unwrap();
    assert_eq!(s.nodes[mul - 1].name, "relu2");
    assert_eq!(s.nodes[mul + 1].inputs[0], "relu2.slope_mul");
    assert_eq!(s.outputs, g.outputs);
    // The sites are the same with slopes in (a slope Mul folds like a Mul by a tensor).
    assert_eq!(slope_sites(&s).unwrap().len(), 3);

    let mut s = s;
    s.cmp_bits.insert("relu2".into(), 24);
    let (f, d) = fold_slopes(&s, 0.06).unwrap();
    assert_eq!(f.cmp_bits, s.cmp_bits);
    assert!(f.nodes.iter().all(|n| !matches!(n.op, Op::Mul(_))));
    assert_eq!(f.nodes.len(), g.nodes.len());
    assert!(read_slopes(&f).unwrap().is_empty());
    assert!(!f.initializers.contains_key(&slope_name("relu2")));
    let want: DeadSet = BTreeMap::from([
        ("conv2".to_string(), (0..32).step_by(4).collect::<BTreeSet<_>>()),
        ("conv3".to_string(), (0..10).collect()),
    ]);
    assert_eq!(d, want);
    // conv3's input channel c is scaled by a2[c] (0 for the small ones); fc's column c by a3[c].
    let (w0, w) = (&g.initializers["conv3.weight"], &f.initializers["conv3.weight"]);
    for o in [0, 17] {
        for c in [0, 1, 5, 31] {
            let factor = if c % 4 == 0 { 0.0 } else { a2[c] };
            assert_eq!(w[[o, c, 1, 2]], w0[[o, c, 1, 2]] * factor);
        }
    }
    let (w0, w) = (&g.initializers["fc.weight"], &f.initializers["fc.weight"]);
    assert_eq!(w[[3, 5]], 0.0);
    assert_eq!(w[[3, 40]], w0[[3, 40]] * a3[40]);
    // ... and the pruned result drops the dead filters.
    let p = prune_channels(&f, &d).unwrap();
    let after: Vec<usize> = p.convs.iter().map(|c| c.after).collect();
    assert_eq!(after, vec![16, 24, 54]);
}

#[test]
fn slope_errors_name_the_node() {
    let g = zoo::build("resnet20", None, 0).unwrap();
    let e = insert_slopes(&g, &BTreeMap::from([("layer1.0.relu2".to_string(), vec![1.0; 16])])).unwrap_err();
    assert!(e.to_string().contains("layer1.0.relu2") && e.to_string().contains("not a slope site"), "{e}");
    let e = insert_slopes(&g, &BTreeMap::from([("nope".to_string(), vec![1.0; 16])])).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = insert_slopes(&g, &BTreeMap::from([("layer1.0.relu1".to_string(), vec![1.0; 15])])).unwrap_err();
    assert!(e.to_string().contains("15 slopes given for 16 channels"), "{e}");
    // A slope Mul put where it cannot fold: after the post-add ReLU of a block.
    let mut s = g.clone();
    let relu = s.nodes.iter().position(|n| n.name == "layer1.0.relu2").unwrap();
    s.initializers.insert(slope_name("layer1.0.relu2"), ArrayD::from_elem(vec![1, 16, 1, 1], 0.5));
    let mul =
        Node::new("m", Op::Mul(masq_ir::BinaryConfig {}), &["layer1.0.relu2", &slope_name("layer1.0.relu2")], &["m"]);
    for n in &mut s.nodes[relu + 1..] {
        for i in &mut n.inputs {
            if i == "layer1.0.relu2" {
                *i = "m".into();
            }
        }
    }
    s.nodes.insert(relu + 1, mul);
    s.finalize().unwrap();
    assert_eq!(read_slopes(&s).unwrap().len(), 1);
    let e = fold_slopes(&s, 0.1).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("node m (Mul)"), "{msg}");
    assert!(msg.contains("layer1.0.relu2"), "{msg}");
}
