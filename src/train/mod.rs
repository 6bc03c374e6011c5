//! What the CPU and GPU trainers share: the learning-rate schedule, the
//! minibatch order, the trainer interface and the loop that drives it
//! (progress, divergence guard, checkpoints of the last good parameters).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::Dataset;
use crate::error::{MdnError, Result};
use crate::model::{ModelSpec, ParamLayout};

pub mod checkpoint;
pub mod step;
pub mod together;

pub use step::{AdamStep, LossAccumulator};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    Constant,
    /// Cosine decay from `lr` to `lr · COSINE_FLOOR` over the run: the late,
    /// small steps are what takes the NLL from good to close to optimal.
    Cosine,
}

pub const COSINE_FLOOR: f64 = 0.02;

#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub schedule: LrSchedule,
    pub seed: u64,
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0 {
            return Err(MdnError::Config("--batch must be at least 1".into()));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(MdnError::Config(format!(
                "--lr must be a positive number, got {}",
                self.lr
            )));
        }
        Ok(())
    }

    /// Learning rate of the 0-based step `step`.
    pub fn lr_at(&self, step: usize) -> f64 {
        match self.schedule {
            LrSchedule::Constant => self.lr,
            LrSchedule::Cosine => {
                let frac = (step as f64 / self.steps.max(1) as f64).min(1.0);
                let c = 0.5 * (1.0 + (std::f64::consts::PI * frac).cos());
                self.lr * (COSINE_FLOOR + (1.0 - COSINE_FLOOR) * c)
            }
        }
    }

    /// Adam constants of the 0-based step `step`.
    pub fn adam_step(&self, step: usize) -> AdamStep {
        AdamStep::new(self.lr_at(step), step as u64 + 1)
    }
}

/// Minibatch order: each epoch is a fresh permutation of the rows, seeded by
/// (seed, epoch) so any epoch can be regenerated independently (the GPU
/// trainer uploads them one at a time). Batches are whole: the rows left over
/// after the last full batch of an epoch are skipped for that epoch, and a
/// batch larger than the data becomes the whole data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOrder {
    pub rows: usize,
    pub batch: usize,
    pub seed: u64,
}

impl BatchOrder {
    pub fn new(rows: usize, batch: usize, seed: u64) -> Result<Self> {
        if rows == 0 {
            return Err(MdnError::Data("no training rows".into()));
        }
        Ok(BatchOrder {
            rows,
            batch: batch.clamp(1, rows),
            seed,
        })
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.rows / self.batch
    }

    /// (epoch, index of the batch within the epoch) of a 0-based step.
    pub fn locate(&self, step: usize) -> (usize, usize) {
        let spe = self.steps_per_epoch();
        (step / spe, step % spe)
    }

    pub fn permutation(&self, epoch: usize) -> Vec<u32> {
        let mut perm: Vec<u32> = (0..self.rows as u32).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(epoch as u64);
        perm.shuffle(&mut rng);
        perm
    }
}

/// The checks both trainers make before allocating anything: settings,
/// spec, parameter count and data width. Returns the layout and the
/// minibatch order they are built from.
pub fn check_trainer_inputs(
    spec: &ModelSpec,
    data: &Dataset,
    params_len: usize,
    config: &TrainConfig,
) -> Result<(ParamLayout, BatchOrder)> {
    config.validate()?;
    spec.validate()?;
    let layout = spec.layout();
    if params_len != layout.len {
        return Err(MdnError::Spec(format!(
            "parameter vector has {params_len} values, the spec needs {}",
            layout.len
        )));
    }
    if data.in_dim != spec.in_dim || data.out_dim != spec.out_dim {
        return Err(MdnError::Data(format!(
            "data has {} input and {} target columns, the model expects {} and {}",
            data.in_dim, data.out_dim, spec.in_dim, spec.out_dim
        )));
    }
    let order = BatchOrder::new(data.len(), config.batch, config.seed)?;
    Ok((layout, order))
}

/// The check both trainers make before taking a checkpoint's state back.
pub fn check_state_lengths(n: usize, params: &[f32], m: &[f32], v: &[f32]) -> Result<()> {
    if params.len() != n || m.len() != n || v.len() != n {
        return Err(MdnError::Spec(format!(
            "the checkpoint holds {}, {} and {} values for parameters and Adam's moments; the model has {n}",
            params.len(),
            m.len(),
            v.len()
        )));
    }
    Ok(())
}

/// What both trainers implement. `run` must not read anything back from the
/// device; `take_loss` is the one place the loss crosses back.
pub trait Trainer {
    /// Steps done so far.
    fn step(&self) -> usize;
    /// Runs `n` more steps.
    fn run(&mut self, n: usize) -> Result<()>;
    /// The loss accumulated since the last call, then clears it.
    fn take_loss(&mut self) -> Result<LossAccumulator>;
    /// Remembers the current parameters as the last good ones.
    fn checkpoint(&mut self) -> Result<()>;
    /// Puts the checkpointed parameters back.
    fn restore_checkpoint(&mut self) -> Result<()>;
    /// The current parameters (a readback on the GPU).
    fn params(&mut self) -> Result<Vec<f32>>;
    /// Adam's first and second moments, in the flat parameter order (a
    /// readback on the GPU), for checkpoints.
    fn optimizer_state(&mut self) -> Result<(Vec<f32>, Vec<f32>)>;
    /// Puts a checkpoint back: parameters, Adam's moments and the number
    /// of steps done, so the next step is the one the checkpointed run
    /// would have taken.
    fn restore_state(&mut self, params: &[f32], m: &[f32], v: &[f32], step: usize) -> Result<()>;
    /// A short name for messages: "cpu" or the adapter's name.
    fn device_name(&self) -> String;
    /// Ends the run and hands back the (z-scored) training rows the
    /// trainer was given, so the caller can report losses on them without
    /// having kept a copy.
    fn into_data(self: Box<Self>) -> Result<Dataset> {
        Err(MdnError::Config(
            "this trainer does not hand its training rows back".into(),
        ))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Divergence {
    pub step: usize,
    pub loss: f32,
    pub good_step: usize,
}

impl From<Divergence> for MdnError {
    fn from(d: Divergence) -> Self {
        MdnError::Diverged {
            step: d.step,
            loss: d.loss,
            good_step: d.good_step,
        }
    }
}

/// The parameters with the best validation loss so far.
#[derive(Clone, Debug, PartialEq)]
pub struct Best {
    pub step: usize,
    /// Validation loss, original units.
    pub loss: f64,
    pub params: Vec<f32>,
    /// Validation checks since this one without an improvement.
    pub checks_since: usize,
}

/// A validation set the loop checks the parameters on.
pub struct Validation<'a> {
    /// Steps between checks (and a check at the end).
    pub every: usize,
    /// Stop after this many checks in a row without an improvement.
    pub patience: Option<usize>,
    /// The loss of a parameter vector on the validation set.
    pub loss: &'a mut dyn FnMut(&[f32]) -> Result<f64>,
}

/// Writes a checkpoint of the trainer (and the best parameters so far).
pub type CheckpointFn<'a> = &'a mut dyn FnMut(&mut dyn Trainer, Option<&Best>) -> Result<()>;

/// What drives a run besides the trainer.
pub struct LoopControl<'a> {
    pub total_steps: usize,
    pub validation: Option<Validation<'a>>,
    /// Set (by a signal handler) to stop after the chunk in flight.
    pub stop: Option<&'a AtomicBool>,
    /// A checkpoint every this many steps, through the function.
    pub checkpoint: Option<(usize, CheckpointFn<'a>)>,
    /// The best so far of a resumed run.
    pub best: Option<Best>,
}

impl LoopControl<'_> {
    /// Just `total_steps`, nothing else.
    pub fn steps(total_steps: usize) -> Self {
        LoopControl {
            total_steps,
            validation: None,
            stop: None,
            checkpoint: None,
            best: None,
        }
    }
}

/// Why a run ended before its last step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// `--patience` checks without a better validation loss.
    EarlyStop,
    /// The stop flag was set (SIGINT, SIGTERM).
    Interrupted,
}

#[derive(Clone, Debug)]
pub struct TrainReport {
    pub steps: usize,
    /// Mean training loss (z-scored units) over the last reporting interval.
    pub final_loss: f32,
    /// (step, mean loss) at every reading, for loss curves.
    pub history: Vec<(usize, f32)>,
    /// (step, validation loss in original units) at every check.
    pub val_history: Vec<(usize, f64)>,
    /// The best parameters on the validation set, if there is one.
    pub best: Option<Best>,
    pub diverged: Option<Divergence>,
    pub stopped: Option<Stopped>,
    pub elapsed: Duration,
}

/// How often the loop reads the loss back: often enough for a live progress
/// bar, rarely enough that the GPU is never starved by round trips.
pub const READ_INTERVAL: Duration = Duration::from_millis(200);

/// Runs `trainer` up to `total_steps`, reading the loss every
/// [`READ_INTERVAL`]. On a non-finite loss it restores the last good
/// parameters and stops, reporting the divergence.
pub fn run_training(
    trainer: &mut dyn Trainer,
    total_steps: usize,
    on_progress: impl FnMut(usize, f32),
) -> Result<TrainReport> {
    run_training_with(trainer, LoopControl::steps(total_steps), on_progress)
}

/// [`run_training`] with a validation set (checked every `every` steps:
/// the best parameters are kept, and `patience` checks without a better
/// loss stop the run), a stop flag checked between chunks, and periodic
/// checkpoints (every `every` steps and at the end of the run, however it
/// ends but by divergence). Chunks end at every check and checkpoint, so
/// where they fall depends only on the step count: a resumed run checks and
/// checkpoints at the same steps as an uninterrupted one.
pub fn run_training_with(
    trainer: &mut dyn Trainer,
    mut ctl: LoopControl<'_>,
    mut on_progress: impl FnMut(usize, f32),
) -> Result<TrainReport> {
    let start = Instant::now();
    let total_steps = ctl.total_steps;
    let mut chunk = 1usize;
    let mut rec = RunRecord::new(trainer.step(), ctl.best.take());
    let mut written = trainer.step();
    trainer.checkpoint()?;
    let every = ctl.validation.as_ref().map(|v| v.every);
    let checkpoint_every = ctl.checkpoint.as_ref().map(|(e, _)| *e);
    while trainer.step() < total_steps {
        if ctl.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            rec.report.stopped = Some(Stopped::Interrupted);
            break;
        }
        let step = trainer.step();
        let n = chunk_end(step, chunk, total_steps, &[every, checkpoint_every]) - step;
        let t0 = Instant::now();
        trainer.run(n)?;
        let acc = trainer.take_loss()?;
        let dt = t0.elapsed();
        let step = trainer.step();
        if !rec.read_loss(step, &acc) {
            trainer.restore_checkpoint()?;
            return Ok(rec.report(start.elapsed()));
        }
        trainer.checkpoint()?;
        on_progress(step, acc.mean());
        if let Some(v) = &mut ctl.validation
            && is_check(step, v.every, total_steps)
        {
            let params = trainer.params()?;
            let loss = (v.loss)(&params)?;
            rec.check(step, loss, params, v.patience, total_steps);
        }
        if let Some((every, write)) = &mut ctl.checkpoint
            && step.is_multiple_of(*every)
        {
            write(trainer, rec.report.best.as_ref())?;
            written = step;
        }
        if rec.report.stopped.is_some() {
            break;
        }
        chunk = next_chunk(chunk, n, dt);
    }
    // The run's last state too (finished, stopped early or interrupted), so
    // a later run can go on from where this one ended.
    if let Some((_, write)) = &mut ctl.checkpoint
        && written != trainer.step()
    {
        write(trainer, rec.report.best.as_ref())?;
    }
    rec.report.steps = trainer.step();
    Ok(rec.report(start.elapsed()))
}

/// Where a chunk that starts at `step` ends: `chunk` steps on, but never
/// past the run's end or the next multiple of any of `every` (validation
/// checks, checkpoints), so where they fall depends on the step count only.
pub fn chunk_end(step: usize, chunk: usize, total_steps: usize, every: &[Option<usize>]) -> usize {
    every
        .iter()
        .flatten()
        .fold(total_steps.min(step + chunk), |end, &e| {
            end.min((step / e + 1) * e)
        })
}

/// Whether `step` is a validation check: a multiple of `every`, or the end.
pub fn is_check(step: usize, every: usize, total_steps: usize) -> bool {
    step.is_multiple_of(every) || step == total_steps
}

/// The next chunk's length: about [`READ_INTERVAL`] at the pace the last
/// chunk (`n` steps in `dt`) ran, growing at most 4× at a time.
pub fn next_chunk(chunk: usize, n: usize, dt: Duration) -> usize {
    let per_step = dt.as_secs_f64() / n as f64;
    let want = (READ_INTERVAL.as_secs_f64() / per_step.max(1e-7)) as usize;
    want.clamp(1, (chunk * 4).max(4)).min(100_000)
}

/// One run's record as its loop goes (losses read, validation checks, the
/// best parameters, why it ended): kept by [`run_training_with`] for its
/// trainer and by a sweep's loop for each of the models it steps together,
/// so both end runs the same way. It is the run's [`TrainReport`] in the
/// making (`elapsed` is set at the end), plus the last good step.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub report: TrainReport,
    /// The last step whose loss was finite: where a divergence goes back to.
    pub good_step: usize,
}

impl RunRecord {
    pub fn new(step: usize, best: Option<Best>) -> Self {
        RunRecord {
            report: TrainReport {
                steps: step,
                final_loss: f32::NAN,
                history: Vec::new(),
                val_history: Vec::new(),
                best,
                diverged: None,
                stopped: None,
                elapsed: Duration::ZERO,
            },
            good_step: step,
        }
    }

    /// Whether the run is over (diverged, stopped early or interrupted).
    pub fn ended(&self) -> bool {
        self.report.diverged.is_some() || self.report.stopped.is_some()
    }

    /// Records the loss read at `step`; `false` when it diverged (the
    /// run then ends at its last good step, whose parameters the caller
    /// restores).
    pub fn read_loss(&mut self, step: usize, acc: &LossAccumulator) -> bool {
        let r = &mut self.report;
        if acc.nonfinite > 0 || !acc.mean().is_finite() {
            r.diverged = Some(Divergence {
                step,
                loss: acc.last,
                good_step: self.good_step,
            });
            r.steps = self.good_step;
            return false;
        }
        self.good_step = step;
        r.final_loss = acc.mean();
        r.history.push((step, r.final_loss));
        true
    }

    /// Records a validation check at `step`: keeps `params` if they are
    /// the best so far, and stops the run after `patience` checks in a row
    /// without an improvement (unless it is over anyway).
    pub fn check(
        &mut self,
        step: usize,
        loss: f64,
        params: Vec<f32>,
        patience: Option<usize>,
        total_steps: usize,
    ) {
        let r = &mut self.report;
        r.val_history.push((step, loss));
        match &mut r.best {
            Some(b) if loss.is_nan() || loss >= b.loss => b.checks_since += 1,
            _ => {
                r.best = Some(Best {
                    step,
                    loss,
                    params,
                    checks_since: 0,
                })
            }
        }
        if let (Some(p), Some(b)) = (patience, &r.best)
            && b.checks_since >= p
            && step < total_steps
        {
            r.stopped = Some(Stopped::EarlyStop);
            r.steps = step;
        }
    }

    pub fn report(self, elapsed: Duration) -> TrainReport {
        TrainReport {
            elapsed,
            ..self.report
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_seeded_per_epoch() {
        let o = BatchOrder::new(10, 3, 5).unwrap();
        assert_eq!(o.steps_per_epoch(), 3);
        assert_eq!(o.locate(7), (2, 1));
        let p0 = o.permutation(0);
        let mut sorted = p0.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(p0, o.permutation(0));
        assert_ne!(p0, o.permutation(1));
        assert_eq!(BatchOrder::new(4, 100, 0).unwrap().batch, 4);
        assert!(BatchOrder::new(0, 1, 0).is_err());
    }

    #[test]
    fn cosine_schedule_decays_to_the_floor() {
        let c = TrainConfig {
            steps: 100,
            batch: 1,
            lr: 1.0,
            schedule: LrSchedule::Cosine,
            seed: 0,
        };
        assert_eq!(c.lr_at(0), 1.0);
        assert!((c.lr_at(50) - (COSINE_FLOOR + (1.0 - COSINE_FLOOR) * 0.5)).abs() < 1e-12);
        assert!((c.lr_at(100) - COSINE_FLOOR).abs() < 1e-12);
        let bad = TrainConfig {
            lr: f64::NAN,
            ..c.clone()
        };
        assert!(bad.validate().is_err());
        assert!(TrainConfig { batch: 0, ..c }.validate().is_err());
    }
}
