//! MobileNetV2 for 32×32 inputs (the network of the MicroNet CIFAR-100 entry, docs/ALGORITHMS.md
//! §7): the ImageNet model with the stem and the first stride-2 stage at stride 1, and ReLU6
//! activations (`Clip` to [0, 6], capped sites that ReLU reduction can cut).
//!
//! - Stem: `conv1` 3×3, 32 channels, stride 1, `bn1`, `relu1`.
//! - 17 inverted-residual blocks `layers.{i}` over the stages (expansion t, channels c, blocks n,
//!   first stride s): (1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
//!   (6, 160, 3, 2), (6, 320, 1, 1). A block is `conv1` 1×1 expand, `bn1`, `relu1`, `conv2` 3×3
//!   depthwise (stride s), `bn2`, `relu2`, `conv3` 1×1 project, `bn3` (no activation); at stride 1
//!   it adds its input, through `shortcut.0` 1×1 conv + `shortcut.1` BN when the width changes.
//! - Head: `conv2` 1×1 to 1280, `bn2`, `relu2`, global average pooling, `linear`.
//!
//! Parameter names follow the widely used CIFAR PyTorch implementation of this network (which has
//! ReLU where this one has ReLU6). At 3×32×32 with 10 classes: 2,332,010 parameters (BN running
//! statistics included), 92.9 M MACs, 1,534,976 ReLU6 sites.

use super::Builder;
use crate::error::Result;

/// (expansion, out channels, blocks, first stride) per stage.
const STAGES: [(usize, usize, usize, usize); 7] =
    [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];

pub(crate) fn build(b: &mut Builder, classes: usize) -> Result<()> {
    let x = b.conv("conv1", &b.input.clone(), 32, 3, 1, 1, false)?;
    let x = b.bn("bn1", &x)?;
    let mut x = b.relu6("relu1", &x)?;
    let mut i = 0;
    for (t, out, n, first_stride) in STAGES {
        for j in 0..n {
            let stride = if j == 0 { first_stride } else { 1 };
            x = block(b, &format!("layers.{i}"), &x, t, out, stride)?;
            i += 1;
        }
    }
    let x = b.conv("conv2", &x, 1280, 1, 1, 0, false)?;
    let x = b.bn("bn2", &x)?;
    let x = b.relu6("relu2", &x)?;
    let x = b.gap_flatten("avgpool", &x)?;
    b.linear("linear", &x, classes)?;
    Ok(())
}

fn block(b: &mut Builder, p: &str, x: &str, expansion: usize, out: usize, stride: usize) -> Result<String> {
    let cin = b.shape(x)[1];
    let wide = cin * expansion;
    let h = b.conv(&format!("{p}.conv1"), x, wide, 1, 1, 0, false)?;
    let h = b.bn(&format!("{p}.bn1"), &h)?;
    let h = b.relu6(&format!("{p}.relu1"), &h)?;
    let h = b.conv_depthwise(&format!("{p}.conv2"), &h, 3, stride, 1)?;
    let h = b.bn(&format!("{p}.bn2"), &h)?;
    let h = b.relu6(&format!("{p}.relu2"), &h)?;
    let h = b.conv(&format!("{p}.conv3"), &h, out, 1, 1, 0, false)?;
    let h = b.bn(&format!("{p}.bn3"), &h)?;
    if stride != 1 {
        return Ok(h);
    }
    let skip = if cin == out {
        x.to_string()
    } else {
        let s = b.conv(&format!("{p}.shortcut.0"), x, out, 1, 1, 0, false)?;
        b.bn(&format!("{p}.shortcut.1"), &s)?
    };
    b.add(&format!("{p}.add"), &h, &skip)
}
