//! The CIFAR ResNets of He et al. (20/32/44/56 layers) as in akamaster/pytorch_resnet_cifar10,
//! with option-A shortcuts: identity, or when the shape changes, every second pixel and channels
//! zero-padded by planes/4 on each side (a strided Slice and a channel Pad).

use super::Builder;
use crate::error::Result;
use crate::{Op, PadConfig, SliceConfig};

fn block(b: &mut Builder, p: &str, x: &str, planes: usize, stride: usize) -> Result<String> {
    let cin = b.shape(x)[1];
    let y = b.conv(&format!("{p}.conv1"), x, planes, 3, stride, 1, false)?;
    let y = b.bn(&format!("{p}.bn1"), &y)?;
    let y = b.relu(&format!("{p}.relu1"), &y)?;
    let y = b.conv(&format!("{p}.conv2"), &y, planes, 3, 1, 1, false)?;
    let y = b.bn(&format!("{p}.bn2"), &y)?;
    let short = if stride != 1 || cin != planes {
        let slice =
            SliceConfig { axes: vec![2, 3], starts: vec![0, 0], ends: vec![usize::MAX, usize::MAX], steps: vec![2, 2] };
        let s = b.push(&format!("{p}.shortcut.slice"), Op::Slice(slice), &[x])?;
        let q = planes / 4;
        let pad = PadConfig { pads: vec![(0, 0), (q, q), (0, 0), (0, 0)], value: 0.0 };
        b.push(&format!("{p}.shortcut.pad"), Op::Pad(pad), &[&s])?
    } else {
        x.to_string()
    };
    let y = b.add(&format!("{p}.add"), &y, &short)?;
    b.relu(&format!("{p}.relu2"), &y)
}

/// `n` blocks per stage (ResNet-20: 3, 32: 5, 44: 7, 56: 9).
pub(crate) fn build(b: &mut Builder, n: usize, classes: usize) -> Result<()> {
    let input = b.input.clone();
    let mut x = b.conv("conv1", &input, 16, 3, 1, 1, false)?;
    x = b.bn("bn1", &x)?;
    x = b.relu("relu", &x)?;
    for (l, (planes, stride)) in [(16, 1), (32, 2), (64, 2)].into_iter().enumerate() {
        for blk in 0..n {
            let s = if blk == 0 { stride } else { 1 };
            x = block(b, &format!("layer{}.{blk}", l + 1), &x, planes, s)?;
        }
    }
    let x = b.gap_flatten("avgpool", &x)?;
    b.linear("linear", &x, classes)?;
    Ok(())
}
