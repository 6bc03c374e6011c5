//! Twin of `shaders/reduce.wgsl`: the batch loss (mean of the row losses) is
//! added to a running sum that the host reads rarely, and a sticky flag
//! records any non-finite loss so divergence is caught without reading every
//! step's loss.

use crate::train::LossAccumulator;

pub fn reduce(row_loss: &[f32], acc: &mut LossAccumulator) {
    let mean =
        (row_loss.iter().map(|&v| v as f64).sum::<f64>() / row_loss.len().max(1) as f64) as f32;
    acc.last = mean;
    if mean.is_finite() {
        acc.sum += mean as f64;
        acc.count += 1;
    } else {
        acc.nonfinite += 1;
    }
}
