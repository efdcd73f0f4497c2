//! Pre-activation wide ResNets (Zagoruyko & Komodakis; names as in xternalz/WideResNet-pytorch:
//! `conv1`, `blockG.layer.B.bn1/conv1/bn2/conv2/convShortcut`, `bn1`, `fc`). No final ReLU: the
//! last BN feeds the global average pool directly (the convention of SNL's WRN-22-8 counts).
//!
//! Depth `6n + 4` (n blocks per group), widths `16k`, `32k`, `64k`. The zoo has WRN-22-8,
//! WRN-16-4 and WRN-40-4; at 3×32×32 they have 1,359,872, 458,752 and 1,376,256 ReLUs.

use super::Builder;
use crate::error::Result;

fn block(b: &mut Builder, p: &str, x: &str, out: usize, stride: usize) -> Result<String> {
    let cin = b.shape(x)[1];
    let equal = cin == out && stride == 1;
    let a = b.bn(&format!("{p}.bn1"), x)?;
    let a = b.relu(&format!("{p}.relu1"), &a)?;
    let y = b.conv(&format!("{p}.conv1"), &a, out, 3, stride, 1, false)?;
    let y = b.bn(&format!("{p}.bn2"), &y)?;
    let y = b.relu(&format!("{p}.relu2"), &y)?;
    let y = b.conv(&format!("{p}.conv2"), &y, out, 3, 1, 1, false)?;
    let short = if equal { x.to_string() } else { b.conv(&format!("{p}.convShortcut"), &a, out, 1, stride, 0, false)? };
    b.add(&format!("{p}.add"), &y, &short)
}

pub(crate) fn build(b: &mut Builder, depth: usize, widen: usize, classes: usize) -> Result<()> {
    let n = (depth - 4) / 6;
    let input = b.input.clone();
    let mut x = b.conv("conv1", &input, 16, 3, 1, 1, false)?;
    for (g, (w, stride)) in [(16 * widen, 1), (32 * widen, 2), (64 * widen, 2)].into_iter().enumerate() {
        for i in 0..n {
            let s = if i == 0 { stride } else { 1 };
            x = block(b, &format!("block{}.layer.{i}", g + 1), &x, w, s)?;
        }
    }
    let x = b.bn("bn1", &x)?;
    let x = b.gap_flatten("avgpool", &x)?;
    b.linear("fc", &x, classes)?;
    Ok(())
}
