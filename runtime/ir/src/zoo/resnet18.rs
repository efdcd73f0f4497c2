//! ResNet-18 for small images (kuangliu/pytorch-cifar layout and names: `conv1`, `bn1`,
//! `layerL.B.conv1`, `layerL.B.shortcut.0/1`, `linear`), in three stem variants.

use super::Builder;
use crate::error::Result;

/// The stem conventions that give the three published ReLU counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stem {
    /// conv3x3 + BN + ReLU (557,056 ReLUs at 32×32).
    Relu,
    /// conv3x3 + BN, no ReLU (491,520).
    NoRelu,
    /// conv3x3 + BN + ReLU + 3×3/2 max pool (188,416).
    ReluMaxPool,
}

pub(crate) fn basic_block(b: &mut Builder, p: &str, x: &str, planes: usize, stride: usize) -> Result<String> {
    let cin = b.shape(x)[1];
    let y = b.conv(&format!("{p}.conv1"), x, planes, 3, stride, 1, false)?;
    let y = b.bn(&format!("{p}.bn1"), &y)?;
    let y = b.relu(&format!("{p}.relu1"), &y)?;
    let y = b.conv(&format!("{p}.conv2"), &y, planes, 3, 1, 1, false)?;
    let y = b.bn(&format!("{p}.bn2"), &y)?;
    let short = if stride != 1 || cin != planes {
        let s = b.conv(&format!("{p}.shortcut.0"), x, planes, 1, stride, 0, false)?;
        b.bn(&format!("{p}.shortcut.1"), &s)?
    } else {
        x.to_string()
    };
    let y = b.add(&format!("{p}.add"), &y, &short)?;
    b.relu(&format!("{p}.relu2"), &y)
}

pub(crate) fn build(b: &mut Builder, stem: Stem, classes: usize) -> Result<()> {
    let input = b.input.clone();
    let mut x = b.conv("conv1", &input, 64, 3, 1, 1, false)?;
    x = b.bn("bn1", &x)?;
    if stem != Stem::NoRelu {
        x = b.relu("relu", &x)?;
    }
    if stem == Stem::ReluMaxPool {
        x = b.max_pool("maxpool", &x, 3, 2, 1)?;
    }
    for (l, (planes, stride)) in [(64, 1), (128, 2), (256, 2), (512, 2)].into_iter().enumerate() {
        for blk in 0..2 {
            let s = if blk == 0 { stride } else { 1 };
            x = basic_block(b, &format!("layer{}.{blk}", l + 1), &x, planes, s)?;
        }
    }
    let x = b.gap_flatten("avgpool", &x)?;
    b.linear("linear", &x, classes)?;
    Ok(())
}
