//! Reading predictions off model outputs.

use ndarray::{ArrayD, Axis};

/// The index of the largest value of each row (along axis 1) of a `[N, ...]` output.
pub fn argmax_rows(y: &ArrayD<f32>) -> Vec<usize> {
    if y.ndim() == 0 {
        return vec![0];
    }
    y.axis_iter(Axis(0))
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) })
                .0
        })
        .collect()
}
