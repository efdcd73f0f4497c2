//! A small CIFAR-sized CNN for demos and quick experiments: three conv3×3 + BN + ReLU stages (16, 32
//! and 64 channels; the last two with stride 2), global average pooling and a linear layer. ReLU is its
//! only nonlinearity (no max-pool), so its secure cost is exactly its ReLUs: 28,672 at 3×32×32.

use super::Builder;
use crate::error::Result;

pub(crate) fn build(b: &mut Builder, classes: usize) -> Result<()> {
    let mut x = b.input.clone();
    for (i, (channels, stride)) in [(16, 1), (32, 2), (64, 2)].into_iter().enumerate() {
        let n = i + 1;
        x = b.conv(&format!("conv{n}"), &x, channels, 3, stride, 1, false)?;
        x = b.bn(&format!("bn{n}"), &x)?;
        x = b.relu(&format!("relu{n}"), &x)?;
    }
    let x = b.gap_flatten("avgpool", &x)?;
    b.linear("fc", &x, classes)?;
    Ok(())
}
