//! How [`GpuTrainer::profile`](super::GpuTrainer::profile) reports a
//! step (`profiler.rs` takes it), and how steps are recorded with
//! timestamps.

/// Timestamps to write while recording steps.
#[derive(Clone, Copy)]
pub(super) enum Timing<'a> {
    Off,
    /// Each dispatch in its own pass, timestamps `2·n` and `2·n + 1` around
    /// the n-th dispatch recorded.
    PerDispatch(&'a wgpu::QuerySet),
    /// One pass for every step, timestamps 0 and 1 around it.
    WholePass(&'a wgpu::QuerySet),
}

/// One dispatch of the step and its GPU time.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DispatchTime {
    /// The kernel (`fused_step`, `dense_forward`, `adam`, …), with the
    /// layer for the dense ones.
    pub kernel: String,
    /// Workgroups, x · y · z.
    pub groups: [u32; 3],
    /// Nominal FLOPs of a dense product (2 per multiply-add); `null` for
    /// the other kernels.
    pub flops: Option<f64>,
    /// Median over the profiled steps, in microseconds.
    pub micros: f64,
}

/// A step's GPU time, taken apart.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StepProfile {
    /// The step's dispatches in order, each timed in a pass of its own.
    pub dispatches: Vec<DispatchTime>,
    /// Steps behind each median.
    pub steps: usize,
    /// A step's GPU time when every dispatch of `steps` steps shares one
    /// pass, as training records them: the kernels, the barriers between
    /// them and the device's gaps.
    pub step_micros: f64,
}

impl StepProfile {
    /// The dispatches' times added up: what the kernels themselves cost.
    pub fn kernel_micros(&self) -> f64 {
        self.dispatches.iter().map(|d| d.micros).sum()
    }
}
