//! The benchmarked sizes, devices, models and submission modes, and the
//! nominal work of one step.

use serde::Serialize;

use crate::data::Dataset;
use crate::data::toy::{ToyProblem, toy_dataset};
use crate::error::Result;
use crate::fit::prepare;
use crate::model::{Head, ModelSpec};
use crate::train::{LrSchedule, TrainConfig};

/// Nominal FLOPs per head output and row (see [`flops_per_step`]).
pub const HEAD_FLOPS_PER_OUTPUT: usize = 10;
/// Learning rate of the benchmark runs (constant schedule): the default
/// training rate, small enough that no configuration diverges.
const LR: f64 = crate::defaults::LR;
/// Data seed; parameters use the same.
pub(super) const SEED: u64 = 0;

/// The sizes benchmarked (issue #5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchConfig {
    /// batch 1024, hidden 32,32, K 5.
    Small,
    /// batch 4096, hidden 64,64, K 5.
    Medium,
    /// batch 65536, hidden 256,256, K 8.
    Large,
}

impl BenchConfig {
    pub const ALL: [BenchConfig; 3] = [BenchConfig::Small, BenchConfig::Medium, BenchConfig::Large];

    pub fn name(self) -> &'static str {
        match self {
            BenchConfig::Small => "small",
            BenchConfig::Medium => "medium",
            BenchConfig::Large => "large",
        }
    }

    pub fn batch(self) -> usize {
        match self {
            BenchConfig::Small => 1024,
            BenchConfig::Medium => 4096,
            BenchConfig::Large => 65_536,
        }
    }

    pub fn hidden(self) -> Vec<usize> {
        match self {
            BenchConfig::Small => vec![32, 32],
            BenchConfig::Medium => vec![64, 64],
            BenchConfig::Large => vec![256, 256],
        }
    }

    /// Mixture components (ignored by the MLP).
    pub fn k(self) -> usize {
        match self {
            BenchConfig::Small | BenchConfig::Medium => 5,
            BenchConfig::Large => 8,
        }
    }

    /// Training rows: 16 batches per epoch, so the per-epoch reshuffle (a
    /// host-side permutation, uploaded on the GPU) is part of the cost as in
    /// real training but amortised like it.
    pub fn rows(self) -> usize {
        (16 * self.batch()).max(16_384)
    }

    /// The 1 → hidden → head network of this size on the toy problem.
    pub fn spec(self, model: BenchModel) -> ModelSpec {
        let head = match model {
            BenchModel::Mdn => Head::mixture(self.k()),
            BenchModel::Mlp => Head::Mse,
        };
        ModelSpec::new(1, 1, self.hidden(), head).expect("the bench sizes are valid specs")
    }

    /// Toy inverse data, z-scored as training sees it.
    pub fn dataset(self) -> Result<Dataset> {
        let raw = toy_dataset(ToyProblem::Inverse, self.rows(), SEED);
        Ok(prepare(raw)?.normalized)
    }

    pub fn train_config(self) -> TrainConfig {
        TrainConfig {
            // Only the (constant) schedule reads it.
            steps: usize::MAX,
            batch: self.batch(),
            lr: LR,
            schedule: LrSchedule::Constant,
            seed: SEED,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchDevice {
    Cpu,
    Gpu,
}

impl BenchDevice {
    pub fn name(self) -> &'static str {
        match self {
            BenchDevice::Cpu => "cpu",
            BenchDevice::Gpu => "gpu",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchModel {
    #[default]
    Mdn,
    Mlp,
}

impl BenchModel {
    pub fn name(self) -> &'static str {
        match self {
            BenchModel::Mdn => "mdn",
            BenchModel::Mlp => "mlp",
        }
    }
}

/// How the steps of one repeat reach the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchMode {
    /// `run(steps)` then one `take_loss()`: many steps per submission.
    Chunked,
    /// `run(1); take_loss()` per step: a submission and a wait per step.
    SyncEveryStep,
}

impl BenchMode {
    pub fn name(self) -> &'static str {
        match self {
            BenchMode::Chunked => "chunked",
            BenchMode::SyncEveryStep => "sync-every-step",
        }
    }
}

/// Nominal floating-point operations of one training step:
///
/// `6 · B · Σ_l in_l · out_l  +  HEAD_FLOPS_PER_OUTPUT · B · W_head`
///
/// Each dense layer costs 2 FLOPs (a multiply-add) per weight and row in the
/// forward product, again in the weight gradient and again in the input
/// gradient: 3 × 2 × MACs per row × batch. (The first layer computes no
/// input gradient; with one input column that is < 0.1 % of the count.)
/// The head adds [`HEAD_FLOPS_PER_OUTPUT`] per output and row, `W_head =
/// K + 2·K·D` for the mixture and `D` for the MLP, an operation count of its
/// loss and gradient with `exp`/`ln` counted as one. Bias adds, tanh, the
/// minibatch gather, the loss reduction and Adam (≈ 10 FLOPs per parameter,
/// once per step) are left out: a few percent at the small size, under 1 %
/// at the large one. GFLOP/s is this count times steps/s, a comparable
/// figure of work done, not the device's arithmetic rate.
pub fn flops_per_step(spec: &ModelSpec, batch: usize) -> f64 {
    let macs = spec.layout().macs_per_row() as f64;
    let head = (HEAD_FLOPS_PER_OUTPUT * spec.head_width()) as f64;
    batch as f64 * (6.0 * macs + head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_count_follows_the_documented_formula() {
        let spec = BenchConfig::Small.spec(BenchModel::Mdn);
        // 1→32→32→15: MACs per row 32 + 1024 + 480 = 1536; head width 15.
        assert_eq!(spec.layout().macs_per_row(), 1536);
        let want = 1024.0 * (6.0 * 1536.0 + 10.0 * 15.0);
        assert_eq!(flops_per_step(&spec, 1024), want);
        let mlp = BenchConfig::Small.spec(BenchModel::Mlp);
        assert_eq!(
            flops_per_step(&mlp, 2),
            2.0 * (6.0 * (32.0 + 1024.0 + 32.0) + 10.0)
        );
    }

    #[test]
    fn configurations_match_the_issue() {
        let sizes: Vec<_> = BenchConfig::ALL
            .iter()
            .map(|c| (c.name(), c.batch(), c.hidden(), c.k()))
            .collect();
        assert_eq!(
            sizes,
            [
                ("small", 1024, vec![32, 32], 5),
                ("medium", 4096, vec![64, 64], 5),
                ("large", 65_536, vec![256, 256], 8),
            ]
        );
        for c in BenchConfig::ALL {
            assert!(c.rows() >= 16 * c.batch());
        }
    }
}
