//! VGG-16 with batch norm for CIFAR (kuangliu/pytorch-cifar layout: `features.I` numbered as in
//! the PyTorch `Sequential`, conv with bias, then `classifier`).

use super::Builder;
use crate::error::Result;
use crate::{FlattenConfig, Op};

const CFG: &[usize] = &[64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0];

pub(crate) fn build(b: &mut Builder, classes: usize) -> Result<()> {
    let mut x = b.input.clone();
    let mut i = 0;
    for &c in CFG {
        if c == 0 {
            x = b.max_pool(&format!("features.{i}"), &x, 2, 2, 0)?;
            i += 1;
        } else {
            x = b.conv(&format!("features.{i}"), &x, c, 3, 1, 1, true)?;
            x = b.bn(&format!("features.{}", i + 1), &x)?;
            x = b.relu(&format!("features.{}", i + 2), &x)?;
            i += 3;
        }
    }
    let x = b.push("flatten", Op::Flatten(FlattenConfig { axis: 1 }), &[&x])?;
    b.linear("classifier", &x, classes)?;
    Ok(())
}
