//! Timing one trainer: warm-up, calibration of the steps per repeat, and
//! the timed repeats.

use std::time::{Duration, Instant};

use super::config::BenchMode;
use crate::error::Result;
use crate::train::{LossAccumulator, Trainer};

/// Wall time one measured repeat aims at when `--steps` is not given.
pub const TARGET_REPEAT: Duration = Duration::from_millis(500);
/// Most steps per repeat chosen automatically.
pub const MAX_AUTO_STEPS: usize = 20_000;
/// Repeats when `--repeats` is not given…
pub const DEFAULT_REPEATS: usize = 5;
/// …and where one warm-up step took at least [`SLOW_STEP`] (the large size
/// on lavapipe: minutes per step).
pub const SLOW_REPEATS: usize = 3;
pub const SLOW_STEP: Duration = Duration::from_secs(20);
/// How many steps each repeat runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepPlan {
    /// Fixed steps per repeat, or `None` to calibrate.
    pub steps: Option<usize>,
    pub repeats: usize,
    /// Calibration aims each repeat at this much wall time…
    pub target: Duration,
    /// …with at most this many steps.
    pub max_auto: usize,
}

/// The repeats of one row.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    pub steps: usize,
    /// Wall time of each repeat.
    pub secs: Vec<f64>,
    pub final_loss: f32,
}

/// One cold step and its readback, kept out of every measurement:
/// first-use costs (lazy driver work, page faults on fresh buffers, rayon's
/// thread start) are paid here. Returns its wall time.
pub fn warm_up(trainer: &mut dyn Trainer) -> Result<Duration> {
    let t0 = Instant::now();
    trainer.run(1)?;
    trainer.take_loss()?;
    Ok(t0.elapsed())
}

/// `steps` steps the way `mode` submits them, ending with the loss in host
/// memory (and so, on the GPU, with the queue drained). Returns the wall
/// time and the loss.
pub fn timed_block(
    trainer: &mut dyn Trainer,
    mode: BenchMode,
    steps: usize,
) -> Result<(Duration, LossAccumulator)> {
    let t0 = Instant::now();
    let loss = match mode {
        BenchMode::Chunked => {
            trainer.run(steps)?;
            trainer.take_loss()?
        }
        BenchMode::SyncEveryStep => {
            let mut total = LossAccumulator::default();
            for _ in 0..steps {
                trainer.run(1)?;
                total.merge(&trainer.take_loss()?);
            }
            total
        }
    };
    Ok((t0.elapsed(), loss))
}

/// Calibrates the steps per repeat (unless fixed; then one untimed repeat
/// warms up instead), then times `plan.repeats` repeats. `cold` is the
/// [`warm_up`] step's time: where one step takes longer than two repeat
/// targets, a repeat is one step and neither calibration nor the extra
/// warm-up repeat runs (on lavapipe a large step takes minutes).
pub fn measure(
    trainer: &mut dyn Trainer,
    mode: BenchMode,
    plan: &StepPlan,
    cold: Duration,
) -> Result<Measured> {
    let slow = cold >= 2 * plan.target;
    let steps = match plan.steps {
        Some(n) => {
            if !slow {
                timed_block(trainer, mode, n)?;
            }
            n
        }
        None if slow => 1,
        None => calibrate(trainer, mode, plan)?,
    };
    let mut secs = Vec::with_capacity(plan.repeats);
    let mut final_loss = f32::NAN;
    for _ in 0..plan.repeats {
        let (dt, loss) = timed_block(trainer, mode, steps)?;
        secs.push(dt.as_secs_f64());
        final_loss = loss.mean();
    }
    Ok(Measured {
        steps,
        secs,
        final_loss,
    })
}

/// Runs growing blocks until one takes a quarter of the target (or hits the
/// cap), then scales its per-step time to the target.
fn calibrate(trainer: &mut dyn Trainer, mode: BenchMode, plan: &StepPlan) -> Result<usize> {
    let max = plan.max_auto.max(1);
    let mut n = 1usize;
    loop {
        let (dt, _) = timed_block(trainer, mode, n)?;
        let per_step = dt.as_secs_f64() / n as f64;
        if dt >= plan.target / 4 || n >= max {
            let want = (plan.target.as_secs_f64() / per_step.max(1e-9)).round() as usize;
            return Ok(want.clamp(1, max));
        }
        n = next_block(n, per_step, plan.target, max);
    }
}

/// The next calibration block: aimed at a quarter of the target, growing at
/// least 2× and never past the cap (`clamp(2n, max)` panicked once a noisy
/// step left 2n above the cap).
fn next_block(n: usize, per_step: f64, target: Duration, max: usize) -> usize {
    let aim = (target.as_secs_f64() / 4.0 / per_step.max(1e-9)).ceil() as usize;
    aim.max(2 * n).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::LossAccumulator;

    /// A trainer whose steps take a fixed time, to check the calibration.
    struct Sleepy {
        step: usize,
        per_step: Duration,
    }

    impl Trainer for Sleepy {
        fn step(&self) -> usize {
            self.step
        }
        fn run(&mut self, n: usize) -> Result<()> {
            std::thread::sleep(self.per_step * n as u32);
            self.step += n;
            Ok(())
        }
        fn take_loss(&mut self) -> Result<LossAccumulator> {
            Ok(LossAccumulator {
                sum: 1.0,
                count: 1,
                last: 1.0,
                nonfinite: 0,
            })
        }
        fn checkpoint(&mut self) -> Result<()> {
            Ok(())
        }
        fn restore_checkpoint(&mut self) -> Result<()> {
            Ok(())
        }
        fn optimizer_state(&mut self) -> Result<(Vec<f32>, Vec<f32>)> {
            Ok((Vec::new(), Vec::new()))
        }
        fn restore_state(&mut self, _: &[f32], _: &[f32], _: &[f32], _: usize) -> Result<()> {
            Ok(())
        }
        fn params(&mut self) -> Result<Vec<f32>> {
            Ok(Vec::new())
        }
        fn device_name(&self) -> String {
            "sleepy".into()
        }
    }

    #[test]
    fn calibration_blocks_grow_but_stay_under_the_cap() {
        let target = Duration::from_millis(40);
        // A slow first step asks for 2 more; a later faster one for 3 — the
        // cap of 3 wins over the doubling to 4.
        assert_eq!(next_block(2, 0.004, target, 3), 3);
        assert_eq!(next_block(1, 0.002, target, 1000), 5);
        assert_eq!(next_block(4, 0.002, target, 1000), 8);
        assert_eq!(next_block(1, 0.0, target, 7), 7);
    }

    #[test]
    fn calibration_aims_at_the_target_and_respects_the_cap() {
        let mut t = Sleepy {
            step: 0,
            per_step: Duration::from_millis(2),
        };
        let plan = StepPlan {
            steps: None,
            repeats: 2,
            target: Duration::from_millis(40),
            max_auto: 1000,
        };
        let quick = Duration::from_millis(2);
        let m = measure(&mut t, BenchMode::Chunked, &plan, quick).unwrap();
        // 40 ms at 2 ms per step (sleeps only overshoot): about 20 steps.
        assert!((10..=20).contains(&m.steps), "{m:?}");
        assert_eq!(m.secs.len(), 2);
        assert!(m.secs.iter().all(|&s| s >= 0.002 * m.steps as f64));
        let capped = StepPlan {
            max_auto: 3,
            ..plan
        };
        assert_eq!(
            measure(&mut t, BenchMode::SyncEveryStep, &capped, quick)
                .unwrap()
                .steps,
            3
        );
        let fixed = StepPlan {
            steps: Some(7),
            ..plan
        };
        let before = t.step;
        let m = measure(&mut t, BenchMode::Chunked, &fixed, quick).unwrap();
        assert_eq!(m.steps, 7);
        // One untimed warm-up repeat, then the timed ones.
        assert_eq!(t.step - before, 7 * 3);
        // A step slower than two targets: one step per repeat, no
        // calibration, no extra warm-up.
        let slow = Duration::from_millis(100);
        let before = t.step;
        let m = measure(&mut t, BenchMode::Chunked, &plan, slow).unwrap();
        assert_eq!((m.steps, t.step - before), (1, 2));
        let m = measure(&mut t, BenchMode::Chunked, &fixed, slow).unwrap();
        assert_eq!((m.steps, m.secs.len()), (7, 2));
    }
}
