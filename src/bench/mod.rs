//! `mdn bench`: training throughput of the GPU and CPU trainers on Bishop's
//! toy inverse problem, at three fixed sizes (DESIGN.md §2 fixes the JSON).
//!
//! What is timed, per configuration and device:
//! - a trainer is built (data upload, kernels) and warmed up outside the
//!   clock: one cold step, then calibration blocks that also pick the steps
//!   per repeat (about [`TARGET_REPEAT`] of work each, unless `--steps`);
//! - each repeat is `run(steps)` followed by `take_loss()`. On the GPU,
//!   `take_loss` maps a buffer written by a copy submitted after the last
//!   step and waits for it, so the clock stops only once the queue has
//!   finished every step ("chunked": up to `STEP_CAPACITY` steps per
//!   submission, one readback per repeat);
//! - GPU rows are measured a second time with `run(1); take_loss()` per step
//!   ("sync-every-step"): the cost of a naive loop that reads the loss every
//!   step, i.e. a submission and a wait per step.
//!
//! Throughput is steps per second (median, min and max over the repeats);
//! samples/s, ms/step and GFLOP/s derive from the median. The FLOP count is
//! nominal and documented at [`flops_per_step`].

pub mod config;
pub mod machine;
pub mod report;
pub mod run;
pub mod timing;

pub use config::{
    BenchConfig, BenchDevice, BenchMode, BenchModel, HEAD_FLOPS_PER_OUTPUT, flops_per_step,
};
pub use machine::{GpuInfo, Machine, cpu_model};
pub use report::{BenchRow, Stats, profile_lines, tuned_line};
pub use run::{Bench, BenchOptions};
pub use timing::{
    DEFAULT_REPEATS, MAX_AUTO_STEPS, Measured, SLOW_REPEATS, SLOW_STEP, StepPlan, TARGET_REPEAT,
    measure, timed_block, warm_up,
};
