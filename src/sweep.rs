//! `mdn sweep`: many models of one data set, a grid of K × seeds × learning
//! rates × hidden sizes, each trained with a validation set and ranked by
//! its best validation loss (DESIGN.md, "`mdn sweep`").
//!
//! On the CPU the models run side by side on rayon's pool (each model's
//! own row blocks share it), and every model's result is bit-identical to
//! training it alone, since the CPU trainer does not depend on the thread
//! count. On a GPU they run one after another, sharing the device; the
//! kernels do not yet step several models in one dispatch.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::device::{DeviceChoice, Placement};
use crate::error::{MdnError, Result};
use crate::fit::{FitOptions, fit_with};
use crate::gpu::context::GpuOptions;
use crate::model::{Covariance, Head, Model, ModelSpec};
use crate::train::{LrSchedule, TrainConfig};

/// One point of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Combination {
    pub k: usize,
    pub seed: u64,
    pub lr: f64,
    pub hidden: Vec<usize>,
}

/// The grid and what every model shares.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub k: Vec<usize>,
    pub seeds: Vec<u64>,
    pub lr: Vec<f64>,
    pub hidden: Vec<Vec<usize>>,
    pub covariance: Covariance,
    pub steps: usize,
    pub batch: usize,
    pub schedule: LrSchedule,
    pub eval_every: usize,
}

impl Grid {
    /// Every combination, in a fixed order (hidden, lr, K, seed: the
    /// last varies fastest), so shards and merges agree on indices.
    pub fn combinations(&self) -> Vec<Combination> {
        let mut out = Vec::new();
        for hidden in &self.hidden {
            for &lr in &self.lr {
                for &k in &self.k {
                    for &seed in &self.seeds {
                        out.push(Combination {
                            k,
                            seed,
                            lr,
                            hidden: hidden.clone(),
                        });
                    }
                }
            }
        }
        out
    }
}

/// `--shard i/n`: combination `j` belongs to shard `j % n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `i/n` (0 ≤ i < n).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            MdnError::Config(format!(
                "--shard `{text}`: expected i/n with 0 <= i < n, e.g. 0/4"
            ))
        };
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    pub fn takes(&self, j: usize) -> bool {
        j % self.count == self.index
    }
}

/// One trained model of the sweep: a line of `sweep.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    pub k: usize,
    pub seed: u64,
    pub lr: f64,
    pub hidden: Vec<usize>,
    /// The best validation loss (the model kept), original units.
    pub val_nll: f64,
    pub train_nll: f64,
    /// Steps trained (fewer than asked for if the run diverged).
    pub steps: usize,
    pub dead_components: Vec<usize>,
    pub seconds: f64,
}

impl SweepResult {
    /// The model file `--keep-all` writes for this combination.
    pub fn file_name(&self) -> String {
        let hidden: Vec<String> = self.hidden.iter().map(|h| h.to_string()).collect();
        format!(
            "model-k{}-seed{}-lr{}-h{}.safetensors",
            self.k,
            self.seed,
            self.lr,
            hidden.join("x")
        )
    }
}

/// Best first: by validation loss, then by K, seed, lr and hidden sizes,
/// so ties rank the same in every run and every merge.
pub fn order(a: &SweepResult, b: &SweepResult) -> std::cmp::Ordering {
    a.val_nll
        .total_cmp(&b.val_nll)
        .then(a.k.cmp(&b.k))
        .then(a.seed.cmp(&b.seed))
        .then(a.lr.total_cmp(&b.lr))
        .then(a.hidden.cmp(&b.hidden))
}

/// Trains the combinations of `grid` that `shard` takes, on `train`
/// (original units) with validation rows `val`, and returns each result
/// with its model, ranked. `on_done` gets each model as it finishes (to
/// write it then, so a sweep stopped halfway keeps what it finished).
#[allow(clippy::too_many_arguments)]
pub fn run_sweep(
    train: &Dataset,
    val: &Dataset,
    grid: &Grid,
    shard: Shard,
    device: DeviceChoice,
    gpu: &GpuOptions,
    stop: Option<&AtomicBool>,
    note: &mut dyn FnMut(&str),
    on_done: &(dyn Fn(&SweepResult, &Model) -> Result<()> + Sync),
) -> Result<Vec<(SweepResult, Model)>> {
    // Where the models run, decided once: the CPU runs them side by side.
    let device = match device.place(gpu)? {
        Placement::Gpu(_) => DeviceChoice::Gpu,
        Placement::Cpu { note: why } => {
            if let Some(why) = why {
                note(&format!("{why}; training on the CPU"));
            }
            DeviceChoice::Cpu
        }
    };
    let jobs: Vec<Combination> = grid
        .combinations()
        .into_iter()
        .enumerate()
        .filter(|(j, _)| shard.takes(*j))
        .map(|(_, c)| c)
        .collect();
    if jobs.is_empty() {
        return Err(MdnError::Config(
            "this shard has no combination of the grid to train".into(),
        ));
    }
    let one = |c: &Combination| -> Result<(SweepResult, Model)> {
        let start = Instant::now();
        let head = Head::Mixture {
            k: c.k,
            covariance: grid.covariance,
        };
        let spec = ModelSpec::new(train.in_dim, train.out_dim, c.hidden.clone(), head)?;
        let config = TrainConfig {
            steps: grid.steps,
            batch: grid.batch,
            lr: c.lr,
            schedule: grid.schedule,
            seed: c.seed,
        };
        let opts = FitOptions {
            val: Some(val),
            eval_every: grid.eval_every,
            stop,
            ..FitOptions::default()
        };
        // Each run z-scores its own copy: runs go side by side.
        let fit = fit_with(
            train.clone(),
            &spec,
            &config,
            device,
            gpu,
            opts,
            &mut |_| {},
            |_, _| {},
        )?;
        let usage = fit.model.component_usage(&val.inputs)?;
        let result = SweepResult {
            k: c.k,
            seed: c.seed,
            lr: c.lr,
            hidden: c.hidden.clone(),
            val_nll: fit.val_loss.unwrap_or(f64::INFINITY),
            train_nll: fit.model.evaluate_z_scored(&fit.train_z_scored)?.value,
            steps: fit
                .report
                .diverged
                .map_or(fit.report.steps, |d| d.good_step),
            dead_components: usage.map(|u| u.dead_components()).unwrap_or_default(),
            seconds: start.elapsed().as_secs_f64(),
        };
        on_done(&result, &fit.model)?;
        Ok((result, fit.model))
    };
    let mut done: Vec<(SweepResult, Model)> = match device {
        // Side by side on the CPU's cores.
        DeviceChoice::Cpu => jobs.par_iter().map(one).collect::<Result<_>>()?,
        // One device, one model at a time.
        _ => jobs.iter().map(one).collect::<Result<_>>()?,
    };
    done.sort_by(|a, b| order(&a.0, &b.0));
    Ok(done)
}
