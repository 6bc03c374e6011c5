//! Twin of `shaders/reduce.wgsl`: the batch loss (mean of the row losses) is
//! added to a running sum that the host reads rarely, and a sticky flag
//! records any non-finite loss so divergence is caught without reading every
//! step's loss.

/// What the GPU keeps in its `LossState` buffer, mirrored here.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossAccumulator {
    pub sum: f64,
    pub count: u32,
    pub last: f32,
    /// Steps since the accumulator was cleared at which the loss was not finite.
    pub nonfinite: u32,
}

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

impl LossAccumulator {
    /// Mean loss since the last clear, or the last (non-finite) loss if a
    /// step diverged.
    pub fn mean(&self) -> f32 {
        if self.nonfinite > 0 || self.count == 0 {
            self.last
        } else {
            (self.sum / self.count as f64) as f32
        }
    }
}
