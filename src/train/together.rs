//! Several models stepped together by one trainer (a sweep's on the GPU,
//! `GpuTrainer::many`), each with its own run: its own losses, validation
//! checks, best parameters, divergence and early stop, kept in a
//! [`RunRecord`] exactly as [`run_training_with`](super::run_training_with)
//! keeps one trainer's. A model whose run ends is frozen (diverged: back to
//! its last good parameters first) while the others go on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use super::{LossAccumulator, RunRecord, Stopped, TrainReport, chunk_end, is_check, next_chunk};
use crate::error::Result;

/// A trainer of `models()` models that steps them all at once.
pub trait ManyTrainer {
    fn models(&self) -> usize;
    /// Steps taken (the same for every model).
    fn step(&self) -> usize;
    /// `n` more steps of every model that is not frozen.
    fn run(&mut self, n: usize) -> Result<()>;
    /// Each model's loss since the last read, which clears them.
    fn take_losses(&mut self) -> Result<Vec<LossAccumulator>>;
    /// Each model's parameters.
    fn all_params(&mut self) -> Result<Vec<Vec<f32>>>;
    /// Keeps every model's parameters as the last good ones.
    fn checkpoint(&mut self) -> Result<()>;
    /// Stops updating model `m`; with `restore`, back to its checkpoint
    /// first.
    fn freeze(&mut self, m: usize, restore: bool) -> Result<()>;
}

/// What drives the models besides the trainer.
pub struct Together<'a> {
    pub total_steps: usize,
    /// Steps between validation checks (and a check at the end).
    pub every: usize,
    pub patience: Option<usize>,
    /// Model `m`'s validation loss at parameters `p` (original units).
    pub val_loss: &'a (dyn Fn(usize, &[f32]) -> Result<f64> + Sync),
    /// Set (by a signal handler) to stop after the chunk in flight.
    pub stop: Option<&'a AtomicBool>,
}

/// Runs every model of `trainer` to `total_steps` (or the end of its own
/// run) and returns each one's report, in model order.
pub fn run_together(trainer: &mut dyn ManyTrainer, ctl: Together<'_>) -> Result<Vec<TrainReport>> {
    let start = Instant::now();
    let total = ctl.total_steps;
    let every = ctl.every.max(1);
    let mut recs = vec![RunRecord::new(trainer.step(), None); trainer.models()];
    trainer.checkpoint()?;
    let mut chunk = 1usize;
    while trainer.step() < total && recs.iter().any(|r| !r.ended()) {
        if ctl.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            for r in recs.iter_mut().filter(|r| !r.ended()) {
                r.report.stopped = Some(Stopped::Interrupted);
            }
            break;
        }
        let step = trainer.step();
        let n = chunk_end(step, chunk, total, &[Some(every)]) - step;
        let t0 = Instant::now();
        trainer.run(n)?;
        let losses = trainer.take_losses()?;
        let dt = t0.elapsed();
        let step = trainer.step();
        for (m, r) in recs.iter_mut().enumerate() {
            if !r.ended() && !r.read_loss(step, &losses[m]) {
                trainer.freeze(m, true)?;
            }
        }
        if is_check(step, every, total) {
            let params = trainer.all_params()?;
            // Each model's validation pass on the CPU's cores at once.
            let checks: Vec<Option<f64>> = params
                .par_iter()
                .zip(&recs)
                .enumerate()
                .map(|(m, (p, r))| {
                    if r.ended() {
                        Ok(None)
                    } else {
                        (ctl.val_loss)(m, p).map(Some)
                    }
                })
                .collect::<Result<_>>()?;
            for (m, ((r, p), loss)) in recs.iter_mut().zip(params).zip(checks).enumerate() {
                if let Some(loss) = loss {
                    r.check(step, loss, p, ctl.patience, total);
                    if r.report.stopped.is_some() {
                        trainer.freeze(m, false)?;
                    }
                }
            }
        }
        trainer.checkpoint()?;
        chunk = next_chunk(chunk, n, dt);
    }
    let steps = trainer.step();
    Ok(recs
        .into_iter()
        .map(|mut r| {
            if r.report.diverged.is_none() && r.report.stopped != Some(Stopped::EarlyStop) {
                r.report.steps = steps;
            }
            r.report(start.elapsed())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Models whose parameter is the step count at which they last moved;
    /// model 1's loss turns NaN after step 30.
    struct Fake {
        step: usize,
        params: Vec<f32>,
        saved: Vec<f32>,
        frozen: Vec<bool>,
        sum: Vec<f64>,
        count: Vec<u32>,
        nonfinite: Vec<u32>,
    }

    impl Fake {
        fn new(m: usize) -> Self {
            Fake {
                step: 0,
                params: vec![0.0; m],
                saved: vec![0.0; m],
                frozen: vec![false; m],
                sum: vec![0.0; m],
                count: vec![0; m],
                nonfinite: vec![0; m],
            }
        }
    }

    impl ManyTrainer for Fake {
        fn models(&self) -> usize {
            self.params.len()
        }
        fn step(&self) -> usize {
            self.step
        }
        fn run(&mut self, n: usize) -> Result<()> {
            for _ in 0..n {
                self.step += 1;
                for m in 0..self.params.len() {
                    if !self.frozen[m] {
                        self.params[m] = self.step as f32;
                    }
                    if m == 1 && self.step > 30 && !self.frozen[m] {
                        self.nonfinite[m] += 1;
                    } else {
                        self.sum[m] += 1.0;
                        self.count[m] += 1;
                    }
                }
            }
            Ok(())
        }
        fn take_losses(&mut self) -> Result<Vec<LossAccumulator>> {
            let out = (0..self.params.len())
                .map(|m| LossAccumulator {
                    sum: self.sum[m],
                    count: self.count[m],
                    last: 1.0,
                    nonfinite: self.nonfinite[m],
                })
                .collect();
            self.sum.fill(0.0);
            self.count.fill(0);
            self.nonfinite.fill(0);
            Ok(out)
        }
        fn all_params(&mut self) -> Result<Vec<Vec<f32>>> {
            Ok(self.params.iter().map(|&p| vec![p]).collect())
        }
        fn checkpoint(&mut self) -> Result<()> {
            self.saved.clone_from(&self.params);
            Ok(())
        }
        fn freeze(&mut self, m: usize, restore: bool) -> Result<()> {
            self.frozen[m] = true;
            if restore {
                self.params[m] = self.saved[m];
            }
            Ok(())
        }
    }

    #[test]
    fn each_model_ends_its_own_run_while_the_others_go_on() {
        let mut t = Fake::new(3);
        // Model 0 improves at every check; model 2 never after step 10:
        // with patience 2 it stops at 30. Model 1 diverges after 30.
        let val = |m: usize, p: &[f32]| -> Result<f64> {
            Ok(match m {
                2 => (p[0] as f64).min(10.0),
                _ => -(p[0] as f64),
            })
        };
        let reports = run_together(
            &mut t,
            Together {
                total_steps: 100,
                every: 10,
                patience: Some(2),
                val_loss: &val,
                stop: None,
            },
        )
        .unwrap();
        assert_eq!(reports[0].steps, 100);
        assert!(reports[0].diverged.is_none() && reports[0].stopped.is_none());
        assert_eq!(reports[0].best.as_ref().unwrap().step, 100);
        let d = reports[1].diverged.expect("model 1 diverged");
        assert_eq!((d.good_step, reports[1].steps), (30, 30));
        // Restored to its last good parameters and left there.
        assert_eq!(t.params[1], 30.0);
        assert_eq!(reports[2].stopped, Some(Stopped::EarlyStop));
        assert_eq!(reports[2].steps, 30);
        assert_eq!(reports[2].best.as_ref().unwrap().step, 10);
        assert_eq!(t.params[2], 30.0);
        assert_eq!(t.params[0], 100.0);
    }

    #[test]
    fn a_stop_flag_interrupts_every_running_model() {
        let mut t = Fake::new(2);
        let stop = AtomicBool::new(true);
        let val = |_: usize, _: &[f32]| -> Result<f64> { Ok(0.0) };
        let reports = run_together(
            &mut t,
            Together {
                total_steps: 50,
                every: 10,
                patience: None,
                val_loss: &val,
                stop: Some(&stop),
            },
        )
        .unwrap();
        assert!(
            reports
                .iter()
                .all(|r| r.stopped == Some(Stopped::Interrupted))
        );
        assert_eq!(t.step, 0);
    }
}
