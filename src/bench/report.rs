//! What a benchmark row reports, and how it is printed.

use serde::Serialize;

use crate::gpu::trainer::StepProfile;

use super::config::{BenchConfig, BenchDevice, BenchMode, BenchModel};

/// Median, min and max of a sample (sorted copy; the median of an even
/// count is the mean of the middle two).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        };
        Some(Stats {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// One measured row: the DESIGN.md §2 fields and a few more.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchRow {
    pub config: BenchConfig,
    pub model: BenchModel,
    pub device: BenchDevice,
    pub mode: BenchMode,
    pub batch: usize,
    pub hidden: Vec<usize>,
    /// Mixture components; `null` for the MLP.
    pub k: Option<usize>,
    /// Steps per repeat, and the repeats measured.
    pub steps: usize,
    pub repeats: usize,
    /// Median over the repeats; a step steps every one of `models`.
    pub steps_per_s: f64,
    pub steps_per_s_min: f64,
    pub steps_per_s_max: f64,
    /// Rows through the network per second, every model's.
    pub samples_per_s: f64,
    pub ms_per_step: f64,
    pub gflops: f64,
    /// The nominal count behind `gflops` ([`flops_per_step`]).
    pub flops_per_step: f64,
    /// This row's steps/s over the CPU row's of the same configuration;
    /// `null` on CPU rows or without a CPU row.
    pub gpu_cpu_ratio: Option<f64>,
    /// Compute dispatches recorded per step (GPU rows).
    pub dispatches_per_step: Option<usize>,
    /// Whether the GPU trainer ran the fused step (`gpu::fused`); `null` on
    /// CPU rows.
    pub fused: Option<bool>,
    /// GPU rows: whether the kernels came from a `mdn tune` measurement
    /// for this row's job (`kernels` says which); `null` on CPU rows.
    pub tuned: Option<bool>,
    /// With tuned kernels: their steps/s over the adapter defaults' when
    /// `mdn tune` measured them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuned_gain: Option<f64>,
    /// …and where they differ from the defaults (empty: the defaults won).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuned_changes: Option<String>,
    /// Models trained at once (DESIGN.md; `--models M`): on the GPU in the
    /// same dispatches (`GpuTrainer::many`), on the CPU side by side on the
    /// cores, as `mdn sweep` trains them.
    pub models: usize,
    /// `steps_per_s` × `models`: the sweep's throughput.
    pub model_steps_per_s: f64,
    /// The kernel configuration on GPU rows, in `MDN_GPU_KERNELS` syntax
    /// (so a sweep's JSON says which configuration gave which row); the
    /// CPU kernel set (`avx2+fma` or `portable`) on CPU rows.
    pub kernels: String,
    /// The GPU adapter's name on GPU rows, the CPU model on CPU rows.
    pub adapter: String,
    /// The GPU's graphics API on GPU rows, `cpu` on CPU rows.
    pub backend: String,
    /// The GPU driver on GPU rows; on CPU rows `rayon, <set> kernels`
    /// (`avx2+fma` or `portable`, see `cpu::simd`).
    pub driver: String,
    pub cpu: String,
    /// rayon threads of the CPU trainer.
    pub threads: usize,
    /// Mean training loss of the last repeat (z-scored units): a sanity
    /// check that the steps did real work; `null` if it was not finite.
    pub final_loss: Option<f64>,
    /// Each repeat's steps/s, in the order measured.
    pub repeat_steps_per_s: Vec<f64>,
    /// Where the step's GPU time goes (`--profile`, chunked GPU rows of a
    /// device with timestamp queries); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<StepProfile>,
}

impl BenchRow {
    pub fn table_header() -> String {
        format!(
            "{:<6} {:<6} {:<15} {:>6} {:<8} {:>2} {:>10}  {:>9} {:<19} {:>9} {:>9} {:>8} {:>7} {:>9}",
            "config",
            "device",
            "mode",
            "batch",
            "hidden",
            "K",
            "steps*reps",
            "steps/s",
            "[min-max]",
            "samples/s",
            "ms/step",
            "GFLOP/s",
            "vs cpu",
            "disp/step"
        )
    }

    pub fn table_line(&self) -> String {
        let hidden = self
            .hidden
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let range = format!(
            "[{}-{}]",
            num(self.steps_per_s_min),
            num(self.steps_per_s_max)
        );
        let ratio = self
            .gpu_cpu_ratio
            .map_or("-".to_string(), |r| format!("{}x", num(r)));
        // Dispatches per step, `f` marking the fused step.
        let dispatches = match (self.dispatches_per_step, self.fused) {
            (Some(d), Some(true)) => format!("{d}f"),
            (Some(d), _) => d.to_string(),
            (None, _) => "-".to_string(),
        };
        // Several models at once: `chunked x32`.
        let mode = match self.models {
            1 => self.mode.name().to_string(),
            m => format!("{} x{m}", self.mode.name()),
        };
        format!(
            "{:<6} {:<6} {:<15} {:>6} {:<8} {:>2} {:>10}  {:>9} {:<19} {:>9} {:>9} {:>8} {:>7} {:>9}",
            self.config.name(),
            self.device.name(),
            mode,
            self.batch,
            hidden,
            self.k.map_or("-".to_string(), |k| k.to_string()),
            format!("{}x{}", self.steps, self.repeats),
            num(self.steps_per_s),
            range,
            si(self.samples_per_s),
            num(self.ms_per_step),
            num(self.gflops),
            ratio,
            dispatches
        )
    }
}

/// The table's lines for a row's step profile: a line per dispatch, its
/// share of the kernels' time, then the kernels' sum, the step as training
/// records it (one pass) and the step by the wall clock.
/// The line under a GPU row whose kernels `mdn tune` chose.
pub fn tuned_line(row: &BenchRow) -> Option<String> {
    let gain = row.tuned_gain.filter(|_| row.tuned == Some(true))?;
    let what = match row.tuned_changes.as_deref() {
        None | Some("") => "the defaults won".to_string(),
        Some(c) => c.to_string(),
    };
    Some(format!(
        "  kernels tuned by `mdn tune` for this job: {what} ({}x the defaults' steps/s then)",
        num(gain)
    ))
}

pub fn profile_lines(row: &BenchRow) -> Vec<String> {
    let Some(p) = &row.profile else {
        return Vec::new();
    };
    let kernels = p.kernel_micros();
    let mut lines = vec![format!(
        "  profile: {} {}, GPU timestamps, median of {} steps",
        row.config.name(),
        row.mode.name(),
        p.steps
    )];
    lines.push(format!(
        "  {:<22} {:>17} {:>10} {:>6} {:>9}",
        "dispatch", "workgroups", "us/step", "share", "GFLOP/s"
    ));
    for d in &p.dispatches {
        let [x, y, z] = d.groups;
        // What a dense product's arithmetic ran at: against the card's
        // peak, which product falls short.
        let rate = match d.flops {
            Some(f) if d.micros > 0.0 => num(f / d.micros / 1e3),
            _ => "-".into(),
        };
        lines.push(format!(
            "  {:<22} {:>17} {:>10} {:>5.0}% {:>9}",
            d.kernel,
            format!("{x}x{y}x{z}"),
            num(d.micros),
            100.0 * d.micros / kernels.max(1e-12),
            rate
        ));
    }
    lines.push(format!(
        "  {:<40} {:>10}",
        "kernels, each in its own pass",
        num(kernels)
    ));
    lines.push(format!(
        "  {:<40} {:>10}",
        "step, one pass for all (as trained)",
        num(p.step_micros)
    ));
    lines.push(format!(
        "  {:<40} {:>10}",
        "step, wall clock (chunked rate)",
        num(1e3 * row.ms_per_step)
    ));
    lines
}

/// Three or so significant digits, without exponents.
fn num(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        format!("{x}")
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else if a >= 0.001 {
        format!("{x:.4}")
    } else {
        format!("{x:.2e}")
    }
}

/// k/M/G suffixes.
fn si(x: f64) -> String {
    for (scale, suffix) in [(1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if x.abs() >= scale {
            return format!("{}{suffix}", num(x / scale));
        }
    }
    num(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_median_min_max() {
        let s = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(Stats::of(&[]).is_none());
        assert!(Stats::of(&[1.0, f64::NAN]).is_none());
    }
}
