//! A plain four-conv CIFAR CNN for the filter-mask search experiments (docs/ALGORITHMS.md §8):
//! conv3×3 64 + BN + ReLU, conv3×3 64 + BN + ReLU, 2×2 max pool, conv3×3 128 + BN + ReLU,
//! conv3×3 128 + BN + ReLU, 2×2 max pool, global average pooling and a linear layer (`conv1`..
//! `conv4`, `bn1`..`bn4`, `relu1`..`relu4`, `pool1`, `pool2`, `fc`). Convs have no bias (a BN
//! follows each), so every filter is one prunable channel of its BN and ReLU.
//!
//! At 3×32×32: 196,608 ReLUs (2·64·32² + 2·128·16²) and 73,728 max-pool comparisons
//! (3 per output of each pool: 64·16² + 128·8²); 261,056 conv and linear weights.

use super::Builder;
use crate::error::Result;

pub(crate) fn build(b: &mut Builder, classes: usize) -> Result<()> {
    let mut x = b.input.clone();
    for (i, channels) in [64, 64, 128, 128].into_iter().enumerate() {
        let n = i + 1;
        x = b.conv(&format!("conv{n}"), &x, channels, 3, 1, 1, false)?;
        x = b.bn(&format!("bn{n}"), &x)?;
        x = b.relu(&format!("relu{n}"), &x)?;
        if n % 2 == 0 {
            x = b.max_pool(&format!("pool{}", n / 2), &x, 2, 2, 0)?;
        }
    }
    let x = b.gap_flatten("avgpool", &x)?;
    b.linear("fc", &x, classes)?;
    Ok(())
}
