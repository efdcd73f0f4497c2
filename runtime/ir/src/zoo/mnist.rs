//! A small MNIST CNN: two conv5×5 + ReLU + 2×2 max-pool stages (8 and 16 channels) and a linear layer.

use super::Builder;
use crate::error::Result;
use crate::{FlattenConfig, Op};

pub(crate) fn build(b: &mut Builder, classes: usize) -> Result<()> {
    let input = b.input.clone();
    let x = b.conv("conv1", &input, 8, 5, 1, 2, true)?;
    let x = b.relu("relu1", &x)?;
    let x = b.max_pool("pool1", &x, 2, 2, 0)?;
    let x = b.conv("conv2", &x, 16, 5, 1, 2, true)?;
    let x = b.relu("relu2", &x)?;
    let x = b.max_pool("pool2", &x, 2, 2, 0)?;
    let x = b.push("flatten", Op::Flatten(FlattenConfig { axis: 1 }), &[&x])?;
    b.linear("fc", &x, classes)?;
    Ok(())
}
