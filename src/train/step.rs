//! The values of one training step that both trainers share with their
//! shaders: Adam's per-step constants and the running loss. They sit beside
//! the loop that uses them, below the CPU and GPU trainers.

/// Per-step Adam constants, computed once on the host in f64 and handed to
/// both the CPU and the GPU so the two agree bit for bit on them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// 1 − β1^t and 1 − β2^t for the 1-based step t.
    pub bias1: f32,
    pub bias2: f32,
}

pub const BETA1: f64 = 0.9;
pub const BETA2: f64 = 0.999;
pub const EPS: f64 = 1e-8;

impl AdamStep {
    /// Constants for the 1-based step `t` at learning rate `lr`.
    pub fn new(lr: f64, t: u64) -> Self {
        let t = t.max(1) as i32;
        AdamStep {
            lr: lr as f32,
            beta1: BETA1 as f32,
            beta2: BETA2 as f32,
            eps: EPS as f32,
            bias1: (1.0 - BETA1.powi(t)) as f32,
            bias2: (1.0 - BETA2.powi(t)) as f32,
        }
    }
}

/// What the GPU keeps in its `LossState` buffer, mirrored here.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossAccumulator {
    pub sum: f64,
    pub count: u32,
    pub last: f32,
    /// Steps since the accumulator was cleared at which the loss was not finite.
    pub nonfinite: u32,
}

impl LossAccumulator {
    /// Adds `other`'s steps to these (another model's, or a later read's).
    pub fn merge(&mut self, other: &LossAccumulator) {
        self.sum += other.sum;
        self.count += other.count;
        self.nonfinite += other.nonfinite;
        self.last = other.last;
    }

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
