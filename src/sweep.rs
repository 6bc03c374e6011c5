//! `mdn sweep`: many models of one data set, a grid of K × seeds × learning
//! rates × hidden sizes, each trained with a validation set and ranked by
//! its best validation loss (DESIGN.md, "`mdn sweep`").
//!
//! On the CPU the models run side by side on rayon's pool (each model's
//! own row blocks share it), and every model's result is bit-identical to
//! training it alone, since the CPU trainer does not depend on the thread
//! count. On a GPU the models of one network shape (K and hidden sizes)
//! train in one trainer that steps them all in the same dispatches
//! (`GpuTrainer::many`), and shapes of one depth are padded into one such
//! trainer where that costs little arithmetic (`crate::model::pad`,
//! `KernelConfig::pad_percent`); the trainers run one after another.
//! Networks the fused step cannot take train one at a time, as do all
//! models on adapters whose configuration turns the fused step off
//! (software adapters, where it is slower).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::device::{DeviceChoice, Placement};
use crate::error::{MdnError, Result};
use crate::fit::{FitOptions, Prepared, fit_with, prepare};
use crate::gpu::context::{GpuContext, GpuOptions};
use crate::gpu::tuned::{JobShape, TunedTable};
use crate::gpu::{GpuTrainer, Kernels};
use crate::model::init::init_params;
use crate::model::pad::{Padding, enclosing_spec};
use crate::model::{Covariance, Head, Model, ModelSpec};
use crate::train::together::{self, run_together};
use crate::train::{LrSchedule, Stopped, TrainConfig, TrainReport};

pub mod summary;
mod tuning;

use tuning::JobTuner;
pub use tuning::SweepTuning;

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
    /// Each model stops after this many validation checks without an
    /// improvement (as `train --patience`).
    pub patience: Option<usize>,
    /// Combinations already trained (`sweep --resume`): left out.
    pub done: Vec<Combination>,
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

    /// The combinations a run with `shard` trains: the shard's, less those
    /// already `done`.
    pub fn jobs(&self, shard: Shard) -> Vec<Combination> {
        self.combinations()
            .into_iter()
            .enumerate()
            .filter(|(j, c)| shard.takes(*j) && !self.done.contains(c))
            .map(|(_, c)| c)
            .collect()
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
    #[serde(deserialize_with = "loss_or_null")]
    pub val_nll: f64,
    #[serde(deserialize_with = "loss_or_null")]
    pub train_nll: f64,
    /// Steps trained (fewer than asked for if the run diverged).
    pub steps: usize,
    pub dead_components: Vec<usize>,
    pub seconds: f64,
    /// Stopped by a signal before its steps were done: `sweep --resume`
    /// trains it again. Written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

/// JSON has no infinity: serde_json writes a non-finite loss as `null`,
/// which reads back here as +∞ (ranked last), so `--merge` and `--resume`
/// read every line a sweep wrote.
fn loss_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
}

impl SweepResult {
    /// The point of the grid it trained.
    pub fn combination(&self) -> Combination {
        Combination {
            k: self.k,
            seed: self.seed,
            lr: self.lr,
            hidden: self.hidden.clone(),
        }
    }

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
/// When `stop` is set, the models in training end at their next chunk
/// (and are kept, with the steps they reached) and no new one starts.
/// With `tuning`, each GPU job the table of tuned kernels lacks is tuned
/// before it trains ([`SweepTuning`]).
#[allow(clippy::too_many_arguments)]
pub fn run_sweep(
    train: &Dataset,
    val: &Dataset,
    grid: &Grid,
    shard: Shard,
    device: DeviceChoice,
    gpu: &GpuOptions,
    stop: Option<&AtomicBool>,
    tuning: Option<SweepTuning<'_>>,
    note: &mut dyn FnMut(&str),
    on_done: &(dyn Fn(&SweepResult, &Model) -> Result<()> + Sync),
) -> Result<Vec<(SweepResult, Model)>> {
    let jobs = grid.jobs(shard);
    if jobs.is_empty() {
        return Err(MdnError::Config(
            "this shard has no combination of the grid to train".into(),
        ));
    }
    let stopped = || stop.is_some_and(|s| s.load(Ordering::SeqCst));
    // One model through `fit_with` (the CPU's way, and the GPU's for
    // networks the fused step cannot take); `None` if stopped before it
    // started.
    let one = |c: &Combination,
               device: DeviceChoice,
               gpu: &GpuOptions|
     -> Result<Option<(SweepResult, Model)>> {
        if stopped() {
            return Ok(None);
        }
        let start = Instant::now();
        let spec = grid.spec(train, c)?;
        let opts = FitOptions {
            val: Some(val),
            eval_every: grid.eval_every,
            patience: grid.patience,
            stop,
            ..FitOptions::default()
        };
        // Each run z-scores its own copy: runs go side by side.
        let fit = fit_with(
            train.clone(),
            &spec,
            &grid.config(c),
            device,
            gpu,
            opts,
            &mut |_| {},
            |_, _| {},
        )?;
        let result = result_of(
            c,
            &fit.model,
            fit.val_loss,
            &fit.report,
            &fit.train_z_scored,
            val,
            start,
        )?;
        on_done(&result, &fit.model)?;
        Ok(Some((result, fit.model)))
    };
    let mut done: Vec<(SweepResult, Model)> = match device.place(gpu)? {
        Placement::Cpu { note: why } => {
            if let Some(why) = why {
                note(&format!("{why}; training on the CPU"));
            }
            if tuning.is_some() {
                note(
                    "--tune measures GPU kernels; these models train on the CPU, so there is nothing to tune",
                );
            }
            // Side by side on the CPU's cores.
            let done: Vec<Option<_>> = jobs
                .par_iter()
                .map(|c| one(c, DeviceChoice::Cpu, gpu))
                .collect::<Result<_>>()?;
            done.into_iter().flatten().collect()
        }
        Placement::Gpu(ctx) => {
            let ctx = Arc::new(*ctx);
            let kernels = Arc::new(Kernels::new(&ctx)?);
            let mut tuner = JobTuner::new(gpu, tuning);
            let mut done = Vec::with_capacity(jobs.len());
            // One model alone on the GPU, its job tuned first if asked
            // (on z-scored rows made once, for the trials).
            let mut trial_rows: Option<Dataset> = None;
            let mut alone = |c: &Combination,
                             tuner: &mut JobTuner,
                             note: &mut dyn FnMut(&str)|
             -> Result<Option<(SweepResult, Model)>> {
                if stopped() {
                    return Ok(None);
                }
                if tuner.tuning() {
                    if trial_rows.is_none() {
                        trial_rows = Some(prepare(train.clone())?.normalized);
                    }
                    let rows = trial_rows.as_ref().expect("made above");
                    let spec = grid.spec(train, c)?;
                    tuner.ensure(&ctx, &spec, rows, grid.batch, 1, stop, note)?;
                }
                one(c, DeviceChoice::Gpu, &tuner.options(gpu))
            };
            // The model dimension lives in the fused step. Where the
            // adapter's configuration turns that off (software adapters,
            // where many models in one fused step are slower than one at a
            // time on the per-stage kernels: docs/benchmarks.md), the
            // models train one after another.
            if kernels.config.fused {
                let prepared = prepare(train.clone())?;
                let together = TrainedTogether {
                    grid,
                    prepared: &prepared,
                    train,
                    val,
                    stop,
                };
                let mut queue: VecDeque<Pack> =
                    packs(grid, train, &jobs, kernels.config.pad_percent)?.into();
                let rows = prepared.normalized.len();
                // A pack whose job `mdn tune` measured takes what won there;
                // kernels are built once per configuration.
                let mut built: Vec<Arc<Kernels>> = vec![Arc::clone(&kernels)];
                let mut kernels_for =
                    |job: &JobShape, table: Option<&TunedTable>| -> Result<Arc<Kernels>> {
                        let k = Kernels::for_job_in(&ctx, table, job, &built)?;
                        if !built.iter().any(|b| Arc::ptr_eq(b, &k)) {
                            built.push(Arc::clone(&k));
                        }
                        Ok(k)
                    };
                while let Some(pack) = queue.pop_front() {
                    if stopped() {
                        break;
                    }
                    let wanted = pack.members.len();
                    let spec = &pack.spec;
                    let fit =
                        GpuTrainer::models_that_fit(&ctx, &kernels, spec, rows, grid.batch, wanted);
                    if fit >= 1 && wanted > fit {
                        note(&format!(
                            "{}: {wanted} models are more than one trainer holds on this GPU ({fit}); {} trainers instead",
                            pack.shape_text(),
                            wanted.div_ceil(fit)
                        ));
                        for part in pack.split(fit).into_iter().rev() {
                            queue.push_front(part);
                        }
                        continue;
                    }
                    let rows_z = &prepared.normalized;
                    tuner.ensure(&ctx, spec, rows_z, grid.batch, wanted, stop, note)?;
                    if stopped() {
                        break;
                    }
                    let job = JobShape::new(spec, grid.batch, rows, wanted);
                    let pack_kernels = kernels_for(&job, tuner.table())?;
                    match together.build(&ctx, &pack_kernels, &pack) {
                        Ok(trainer) => {
                            if let Some(line) = pack.padded_note() {
                                note(&line);
                            }
                            if let Some(tuned) = &pack_kernels.tuned {
                                note(&format!("{}: {}", pack.shape_text(), tuned.describe()));
                            }
                            done.extend(together.run(trainer, &pack, on_done)?)
                        }
                        Err(why) if pack.is_padded() => {
                            // Each shape may still fit the fused step alone.
                            note(&format!(
                                "{}: {why}; one trainer per shape instead",
                                pack.shape_text()
                            ));
                            let members = pack.members.iter().map(|m| m.combination);
                            for group in shape_groups(members).into_iter().rev() {
                                queue.push_front(Pack::alone(grid, train, group)?);
                            }
                        }
                        Err(why) => {
                            note(&format!(
                                "{}: {why}; training these models one at a time",
                                pack.shape_text()
                            ));
                            for m in &pack.members {
                                done.extend(alone(m.combination, &mut tuner, note)?);
                            }
                        }
                    }
                }
            } else {
                note(&format!(
                    "{} runs the per-stage kernels (fused=off), faster here than many models in one fused step: training the models one after another",
                    ctx.info.name
                ));
                for c in &jobs {
                    done.extend(alone(c, &mut tuner, note)?);
                }
            }
            done
        }
    };
    done.sort_by(|a, b| order(&a.0, &b.0));
    Ok(done)
}

impl Grid {
    /// The network of combination `c` for `data`'s columns.
    fn spec(&self, data: &Dataset, c: &Combination) -> Result<ModelSpec> {
        let head = Head::Mixture {
            k: c.k,
            covariance: self.covariance,
        };
        ModelSpec::new(data.in_dim, data.out_dim, c.hidden.clone(), head)
    }

    fn config(&self, c: &Combination) -> TrainConfig {
        TrainConfig {
            steps: self.steps,
            batch: self.batch,
            lr: c.lr,
            schedule: self.schedule,
            seed: c.seed,
        }
    }
}

/// The combinations grouped by network shape (K and hidden sizes), in
/// their order of first appearance.
fn shape_groups<'a>(jobs: impl IntoIterator<Item = &'a Combination>) -> Vec<Vec<&'a Combination>> {
    let mut groups: Vec<Vec<&Combination>> = Vec::new();
    for c in jobs {
        match groups
            .iter_mut()
            .find(|g| (g[0].k, &g[0].hidden) == (c.k, &c.hidden))
        {
            Some(g) => g.push(c),
            None => groups.push(vec![c]),
        }
    }
    groups
}

/// The trainers of a GPU sweep: each shape group alone, or the groups of
/// one depth padded into one trainer when that costs at most `pad_percent`
/// % of their own arithmetic (`KernelConfig::pad_percent`).
fn packs<'a>(
    grid: &Grid,
    data: &Dataset,
    jobs: &'a [Combination],
    pad_percent: u32,
) -> Result<Vec<Pack<'a>>> {
    let alone = |group| Pack::alone(grid, data, group);
    let groups = shape_groups(jobs);
    if pad_percent == 0 {
        return groups.into_iter().map(alone).collect();
    }
    let mut depths: Vec<Vec<Vec<&Combination>>> = Vec::new();
    for g in groups {
        match depths
            .iter_mut()
            .find(|d| d[0][0].hidden.len() == g[0].hidden.len())
        {
            Some(d) => d.push(g),
            None => depths.push(vec![g]),
        }
    }
    let mut out = Vec::new();
    for same_depth in depths {
        let members: Vec<(&Combination, ModelSpec)> = same_depth
            .iter()
            .flatten()
            .map(|&c| Ok((c, grid.spec(data, c)?)))
            .collect::<Result<_>>()?;
        let specs: Vec<&ModelSpec> = members.iter().map(|(_, s)| s).collect();
        let big = enclosing_spec(&specs)?;
        let own: usize = specs.iter().map(|s| s.layout().macs_per_row()).sum();
        let padded = members.len() * big.layout().macs_per_row();
        // A head kind that does not pad (the full-covariance head) keeps
        // its shapes apart.
        let pack = (same_depth.len() > 1 && padded * 100 <= own * pad_percent as usize)
            .then(|| Pack::new(big, members).ok())
            .flatten();
        match pack {
            Some(p) => out.push(p),
            None => {
                for g in same_depth {
                    out.push(alone(g)?);
                }
            }
        }
    }
    Ok(out)
}

/// One model of a [`Pack`]: its combination, its own network and where
/// that sits in the pack's.
struct Member<'a> {
    combination: &'a Combination,
    spec: ModelSpec,
    padding: Padding,
}

/// Models trained by one GPU trainer in the same dispatches
/// (`GpuTrainer::many`), each padded into the pack's network.
struct Pack<'a> {
    spec: ModelSpec,
    members: Vec<Member<'a>>,
}

impl<'a> Pack<'a> {
    fn new(
        spec: ModelSpec,
        members: impl IntoIterator<Item = (&'a Combination, ModelSpec)>,
    ) -> Result<Self> {
        let members = members
            .into_iter()
            .map(|(combination, own)| {
                Ok(Member {
                    combination,
                    padding: Padding::new(&own, &spec)?,
                    spec: own,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Pack { spec, members })
    }

    /// The same models in packs of at most `most`, in order.
    fn split(self, most: usize) -> Vec<Self> {
        let mut members = self.members.into_iter().peekable();
        let mut out = Vec::new();
        while members.peek().is_some() {
            out.push(Pack {
                spec: self.spec.clone(),
                members: members.by_ref().take(most).collect(),
            });
        }
        out
    }

    /// The models of one shape group, in a pack of their own network.
    fn alone(grid: &Grid, data: &Dataset, group: Vec<&'a Combination>) -> Result<Self> {
        let spec = grid.spec(data, group[0])?;
        Pack::new(spec.clone(), group.into_iter().map(|c| (c, spec.clone())))
    }

    /// `K 3 with hidden 12,12` (the pack's network).
    fn shape_text(&self) -> String {
        format!(
            "K {} with hidden {}",
            self.spec.k(),
            hidden_text(&self.spec.hidden)
        )
    }

    /// Whether any model is padded (into a wider network than its own).
    fn is_padded(&self) -> bool {
        self.members.iter().any(|m| !m.padding.is_identity())
    }

    /// Says which models were padded together, if any were.
    fn padded_note(&self) -> Option<String> {
        self.is_padded().then(|| {
            format!(
                "{} models of {} shapes train in one trainer, padded to {}",
                self.members.len(),
                shape_groups(self.members.iter().map(|m| m.combination)).len(),
                self.shape_text()
            )
        })
    }
}

/// Hidden sizes as the table and the notes print them: `32,32`.
pub fn hidden_text(hidden: &[usize]) -> String {
    let h: Vec<String> = hidden.iter().map(|w| w.to_string()).collect();
    h.join(",")
}

/// A trained model's line of `sweep.jsonl`.
fn result_of(
    c: &Combination,
    model: &Model,
    val_loss: Option<f64>,
    report: &TrainReport,
    train_z_scored: &Dataset,
    val: &Dataset,
    start: Instant,
) -> Result<SweepResult> {
    let usage = model.component_usage(&val.inputs)?;
    // A run stopped before its first check has no best: its last state,
    // checked now, is the model kept.
    let val_nll = match val_loss {
        Some(v) => v,
        None => model.evaluate(val)?.value,
    };
    Ok(SweepResult {
        k: c.k,
        seed: c.seed,
        lr: c.lr,
        hidden: c.hidden.clone(),
        val_nll,
        // From the rows the training already z-scored (the same value as
        // evaluating the original rows: DESIGN.md §1's log-scale term).
        train_nll: model.evaluate_z_scored(train_z_scored)?.value,
        steps: report.diverged.map_or(report.steps, |d| d.good_step),
        dead_components: usage.map(|u| u.dead_components()).unwrap_or_default(),
        seconds: start.elapsed().as_secs_f64(),
        interrupted: report.stopped == Some(Stopped::Interrupted),
    })
}

/// What every pack of a sweep trains with.
struct TrainedTogether<'a> {
    grid: &'a Grid,
    prepared: &'a Prepared,
    train: &'a Dataset,
    val: &'a Dataset,
    stop: Option<&'a AtomicBool>,
}

impl TrainedTogether<'_> {
    fn build(
        &self,
        ctx: &Arc<GpuContext>,
        kernels: &Arc<Kernels>,
        pack: &Pack,
    ) -> Result<GpuTrainer> {
        let models = pack
            .members
            .iter()
            .map(|m| {
                let own = init_params(&m.spec, m.combination.seed);
                (m.padding.embed(&own), self.grid.config(m.combination))
            })
            .collect();
        GpuTrainer::many(
            Arc::clone(ctx),
            Arc::clone(kernels),
            &pack.spec,
            &self.prepared.normalized,
            models,
        )
    }

    /// Trains the pack; `seconds` of each result is the pack's time (its
    /// models train at once).
    fn run(
        &self,
        mut trainer: GpuTrainer,
        pack: &Pack,
        on_done: &(dyn Fn(&SweepResult, &Model) -> Result<()> + Sync),
    ) -> Result<Vec<(SweepResult, Model)>> {
        let start = Instant::now();
        // Model m of the pack, from the pack's (padded) parameters.
        let model = |m: usize, padded: &[f32]| Model {
            spec: pack.members[m].spec.clone(),
            params: pack.members[m].padding.extract(padded),
            input_norm: self.prepared.input_norm.clone(),
            target_norm: self.prepared.target_norm.clone(),
            input_names: self.train.input_names.clone(),
            target_names: self.train.target_names.clone(),
        };
        let val_loss =
            |m: usize, p: &[f32]| -> Result<f64> { Ok(model(m, p).evaluate(self.val)?.value) };
        let reports = run_together(
            &mut trainer,
            together::Together {
                total_steps: self.grid.steps,
                every: self.grid.eval_every,
                patience: self.grid.patience,
                val_loss: &val_loss,
                stop: self.stop,
            },
        )?;
        let last = trainer.all_params()?;
        let mut out = Vec::with_capacity(pack.members.len());
        for (m, (report, last)) in reports.into_iter().zip(last).enumerate() {
            let (params, val) = match &report.best {
                Some(b) => (&b.params, Some(b.loss)),
                None => (&last, None),
            };
            let model = model(m, params);
            let z = &self.prepared.normalized;
            let c = pack.members[m].combination;
            let result = result_of(c, &model, val, &report, z, self.val, start)?;
            on_done(&result, &model)?;
            out.push((result, model));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::toy::{ToyProblem, toy_dataset};

    fn grid(k: Vec<usize>, hidden: Vec<Vec<usize>>, covariance: Covariance) -> Grid {
        Grid {
            k,
            seeds: vec![0, 1],
            lr: vec![5e-3],
            hidden,
            covariance,
            steps: 10,
            batch: 32,
            schedule: LrSchedule::Constant,
            eval_every: 10,
            patience: None,
            done: Vec::new(),
        }
    }

    /// (models, padded?) of each pack.
    fn shapes(g: &Grid, pad: u32) -> Vec<(usize, bool)> {
        let data = toy_dataset(ToyProblem::Band, 50, 1);
        let jobs = g.combinations();
        packs(g, &data, &jobs, pad)
            .unwrap()
            .iter()
            .map(|p| (p.members.len(), p.is_padded()))
            .collect()
    }

    #[test]
    fn a_non_finite_loss_written_as_null_reads_back_as_worst() {
        let r = SweepResult {
            k: 2,
            seed: 0,
            lr: 0.005,
            hidden: vec![4],
            val_nll: f64::INFINITY,
            train_nll: f64::NAN,
            steps: 10,
            dead_components: vec![],
            seconds: 0.1,
            interrupted: false,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains("\"val_nll\":null"), "{line}");
        let back: SweepResult = serde_json::from_str(&line).unwrap();
        assert_eq!(back.val_nll, f64::INFINITY);
        assert_eq!(back.train_nll, f64::INFINITY);
        let finite: SweepResult =
            serde_json::from_str(&line.replace("\"val_nll\":null", "\"val_nll\":-1.5")).unwrap();
        assert_eq!(finite.val_nll, -1.5);
    }

    #[test]
    fn shapes_of_one_depth_pad_together_within_the_limit() {
        let diag = grid(vec![1, 3], vec![vec![12, 12]], Covariance::Diag);
        // The band: 1 input, 2 targets, so K 1 costs 12 + 144 + 12·5 = 216
        // multiply-adds a row and K 3 12 + 144 + 12·15 = 336; padded,
        // 4 × 336 = 1344 is 122 % of 2 × 216 + 2 × 336.
        assert_eq!(shapes(&diag, 122), vec![(4, true)]);
        assert_eq!(shapes(&diag, 121), vec![(2, false), (2, false)]);
        assert_eq!(shapes(&diag, 0), vec![(2, false), (2, false)]);
        // Other depths keep their own trainers; one shape is never padded.
        let depths = grid(
            vec![2],
            vec![vec![8], vec![8, 8], vec![4]],
            Covariance::Diag,
        );
        assert_eq!(shapes(&depths, 1000), vec![(4, true), (2, false)]);
        // The full-covariance head does not pad: its shapes stay apart.
        let full = grid(vec![1, 2], vec![vec![8]], Covariance::Full);
        assert_eq!(shapes(&full, 1000), vec![(2, false), (2, false)]);
    }
}
