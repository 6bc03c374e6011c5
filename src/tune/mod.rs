//! `mdn tune`: which kernel configuration trains a given job fastest on
//! this adapter, measured, for `train`, `sweep` and `bench` to use from
//! then on ([`crate::gpu::tuned`]).
//!
//! The adapter kind's defaults ([`KernelConfig::for_adapter`]) were
//! measured on a few devices; what wins depends on the card, the driver and
//! the job (a small network's step is latency, a large one's arithmetic).
//! Here each path the job can take (the fused step, the per-stage kernels)
//! is searched from the defaults by coordinate descent ([`search`]) over
//! the settings that matter to it ([`space`]); the best of the paths is
//! then measured against the defaults again, alternating, and kept only
//! if it still wins by the margin.

pub mod search;
pub mod space;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::bench::BenchMode;
use crate::bench::timing::{MAX_AUTO_STEPS, StepPlan, measure, warm_up};
use crate::data::Dataset;
use crate::error::{MdnError, Result};
use crate::gpu::config::KernelConfig;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::kernels_build;
use crate::gpu::tuned::{AdapterKey, JobShape, TunedEntry};
use crate::gpu::{GpuTrainer, Kernels};
use crate::model::ModelSpec;
use crate::model::init::init_params;
use crate::train::{LrSchedule, TrainConfig};
use search::{Outcome, Searcher, Trial};

/// How long and how carefully to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct TuneOptions {
    /// Wall time of one configuration's timed steps (three repeats share
    /// it; the median counts).
    pub per_trial: Duration,
    /// Relative gain a setting needs to take over (noise on shared
    /// machines is a few percent).
    pub margin: f64,
    /// Alternating measurements of the defaults and the winner at the end.
    pub confirm_rounds: usize,
    /// Search only the knobs named here (`fused`: the choice of path);
    /// `None`: all.
    pub only: Option<Vec<String>>,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            per_trial: Duration::from_millis(300),
            margin: 0.03,
            confirm_rounds: 3,
            only: None,
        }
    }
}

/// Every knob name `--only` takes.
pub fn knob_names() -> Vec<&'static str> {
    let mut names = vec!["fused"];
    for k in space::fused_knobs(1)
        .into_iter()
        .chain(space::per_stage_knobs())
    {
        if !names.contains(&k.name) {
            names.push(k.name);
        }
    }
    names
}

/// The job to tune for: what `mdn train` (or a sweep's trainer) would run.
pub struct TuneJob<'a> {
    pub spec: &'a ModelSpec,
    /// Z-scored training rows.
    pub data: &'a Dataset,
    pub batch: usize,
    /// Models stepped together (a sweep's trainer); they take the fused
    /// step whatever `fused=` says.
    pub models: usize,
}

impl TuneJob<'_> {
    pub fn shape(&self) -> JobShape {
        JobShape::new(self.spec, self.batch, self.data.len(), self.models)
    }
}

/// The configuration a job runs without a tuned entry: the adapter's
/// defaults, with the fused step for a set of models (the one path that
/// steps several at once, whatever `fused=` says).
pub fn defaults_for(info: &wgpu::AdapterInfo, models: usize) -> KernelConfig {
    let base = KernelConfig::for_adapter(info);
    KernelConfig {
        fused: base.fused || models > 1,
        ..base
    }
}

/// What a tuning run found.
#[derive(Clone, Debug)]
pub struct TuneReport {
    pub adapter: AdapterKey,
    pub job: JobShape,
    /// The adapter kind's defaults, and the configuration that won (the
    /// defaults when nothing beat them by the margin).
    pub default: KernelConfig,
    pub winner: KernelConfig,
    /// Medians of the final alternating measurements (steps/s).
    pub default_rate: f64,
    pub winner_rate: f64,
    pub trials: usize,
}

impl TuneReport {
    pub fn gain(&self) -> f64 {
        self.winner_rate / self.default_rate.max(1e-12)
    }

    /// The entry for the table of tuned kernels.
    pub fn entry(&self) -> TunedEntry {
        TunedEntry {
            adapter: self.adapter.clone(),
            build: kernels_build().to_string(),
            job: self.job.clone(),
            kernels: self.winner.to_string(),
            changes: space::changes(&self.default, &self.winner),
            steps_per_s: self.winner_rate,
            default_steps_per_s: self.default_rate,
            measured_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// Searches the kernel configurations for `job` on `ctx`'s adapter,
/// reporting each trial to `on_trial` as it is measured.
pub fn tune(
    ctx: &Arc<GpuContext>,
    job: &TuneJob<'_>,
    opts: &TuneOptions,
    on_trial: &mut dyn FnMut(&Trial),
) -> Result<TuneReport> {
    tune_until(ctx, job, opts, None, on_trial)?
        .ok_or_else(|| MdnError::Config("the search stopped".into()))
}

/// [`tune`] that gives up, with `None`, once `stop` is set (a signal
/// during `sweep --tune`): the trials left are skipped, not measured, so
/// it returns within one trial.
pub fn tune_until(
    ctx: &Arc<GpuContext>,
    job: &TuneJob<'_>,
    opts: &TuneOptions,
    stop: Option<&AtomicBool>,
    on_trial: &mut dyn FnMut(&Trial),
) -> Result<Option<TuneReport>> {
    let stopped = || stop.is_some_and(|s| s.load(Ordering::SeqCst));
    if job.data.is_empty() {
        return Err(MdnError::Data("the training data has no rows".into()));
    }
    if job.models == 0 {
        return Err(MdnError::Config("--models must be at least 1".into()));
    }
    if let Some(only) = &opts.only {
        let names = knob_names();
        if let Some(bad) = only.iter().find(|k| !names.contains(&k.as_str())) {
            return Err(MdnError::Config(format!(
                "no knob `{bad}` to tune; there are: {}",
                names.join(", ")
            )));
        }
    }
    let default = defaults_for(&ctx.info, job.models);
    let wanted = |name: &str| {
        opts.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|k| k == name))
    };
    let pick = |knobs: Vec<space::Knob>| -> Vec<space::Knob> {
        knobs.into_iter().filter(|k| wanted(k.name)).collect()
    };
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
    let mut trials = 0;
    let mut count = |t: &Trial| {
        trials += 1;
        on_trial(t);
    };
    let mut measure_one = |c: &KernelConfig| {
        if stopped() {
            return Ok(Outcome::Skipped("stopped".into()));
        }
        measure_config(ctx, job, c, opts.per_trial)
    };
    let mut s = Searcher::new(opts.margin, &mut measure_one, &mut count);

    // The paths to search: a set of models always takes the fused step;
    // one model may take either, unless the search leaves the choice alone.
    let with = |c: KernelConfig, fused: bool| KernelConfig { fused, ..c };
    let paths: Vec<(KernelConfig, Vec<space::Knob>)> = if job.models > 1 {
        vec![(with(default, true), pick(space::fused_knobs(threads)))]
    } else if !wanted("fused") {
        let knobs = if default.fused {
            space::fused_knobs(threads)
        } else {
            space::per_stage_knobs()
        };
        vec![(default, pick(knobs))]
    } else {
        vec![
            (with(default, true), pick(space::fused_knobs(threads))),
            (with(default, false), pick(space::per_stage_knobs())),
        ]
    };
    let mut best: Option<(KernelConfig, f64)> = None;
    for (start, knobs) in paths {
        if let Some((c, r)) = s.descend(start, &knobs)? {
            if best.is_none_or(|(_, b)| r > b) {
                best = Some((c, r));
            }
        }
    }
    if stopped() {
        return Ok(None);
    }
    let Some((winner, _)) = best else {
        return Err(MdnError::Config(format!(
            "no kernel configuration could train {} on {}",
            job.shape().describe(),
            ctx.info.name
        )));
    };
    // The search's rates come from different moments of a shared machine:
    // the winner and the defaults are measured again, taking turns.
    // When the defaults won the search, they are measured on their own.
    let mut rates = (Vec::new(), Vec::new());
    for _ in 0..opts.confirm_rounds.max(1) {
        let d = s.remeasure("confirm", &default)?;
        rates.0.extend(d.rate());
        if winner == default {
            rates.1.extend(d.rate());
        } else {
            let w = s.remeasure("confirm", &winner)?;
            rates.1.extend(w.rate());
        }
    }
    drop(s);
    if stopped() {
        return Ok(None);
    }
    let (Some(default_rate), Some(winner_rate)) = (median(&rates.0), median(&rates.1)) else {
        // The defaults do not run this job (the fused step refuses a set of
        // models this wide): the winner stands alone.
        let winner_rate = median(&rates.1).unwrap_or_default();
        return Ok(Some(TuneReport {
            adapter: AdapterKey::of(&ctx.info),
            job: job.shape(),
            default,
            winner,
            default_rate: winner_rate,
            winner_rate,
            trials,
        }));
    };
    let keep = winner_rate > default_rate * (1.0 + opts.margin);
    Ok(Some(TuneReport {
        adapter: AdapterKey::of(&ctx.info),
        job: job.shape(),
        default,
        winner: if keep { winner } else { default },
        default_rate,
        winner_rate: if keep { winner_rate } else { default_rate },
        trials,
    }))
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Steps/s of `config` on `job`: a trainer built with it, one cold step,
/// then three timed repeats sharing `per_trial`.
fn measure_config(
    ctx: &Arc<GpuContext>,
    job: &TuneJob<'_>,
    config: &KernelConfig,
    per_trial: Duration,
) -> Result<Outcome> {
    if let Err(e) = config.validate(&ctx.device.limits()) {
        return Ok(Outcome::Skipped(e.to_string()));
    }
    // A variant the driver refuses to compile is a skipped trial; the
    // error is taken from the context with it.
    let kernels = match Kernels::with_config(ctx, *config) {
        Ok(k) => Arc::new(k),
        Err(e) => return Ok(Outcome::Skipped(e.to_string())),
    };
    let train = TrainConfig {
        batch: job.batch,
        // Long enough that the schedule never ends inside a measurement.
        steps: 1 << 30,
        lr: crate::defaults::LR,
        schedule: LrSchedule::Cosine,
        seed: 0,
    };
    let member = |i: usize| {
        let seed = i as u64;
        (
            init_params(job.spec, seed),
            TrainConfig {
                seed,
                ..train.clone()
            },
        )
    };
    let built = if job.models == 1 {
        let (p, c) = member(0);
        GpuTrainer::with_kernels(Arc::clone(ctx), kernels, job.spec, job.data, p, &c)
    } else {
        let set = (0..job.models).map(member).collect();
        GpuTrainer::many(Arc::clone(ctx), kernels, job.spec, job.data, set)
    };
    let mut trainer = match built {
        Ok(t) => t,
        // Sizes this job cannot take with this configuration (workgroup
        // memory, bindings): a skipped trial, not a failed search.
        Err(MdnError::Config(why)) => return Ok(Outcome::Skipped(why)),
        Err(e) => return Err(e),
    };
    if job.models == 1 && config.fused && !trainer.is_fused() {
        let why = trainer.why_not_fused().unwrap_or("not taken").to_string();
        return Ok(Outcome::Skipped(format!("no fused step: {why}")));
    }
    let cold = warm_up(&mut trainer)?;
    let plan = StepPlan {
        steps: None,
        repeats: 3,
        target: per_trial / 3,
        max_auto: MAX_AUTO_STEPS,
    };
    let m = measure(&mut trainer, BenchMode::Chunked, &plan, cold)?;
    let mut rates: Vec<f64> = m
        .secs
        .iter()
        .map(|s| m.steps as f64 / s.max(1e-12))
        .collect();
    rates.sort_by(f64::total_cmp);
    Ok(Outcome::Rate(rates[rates.len() / 2]))
}
