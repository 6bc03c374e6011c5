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

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cpu::CpuTrainer;
use crate::data::Dataset;
use crate::data::toy::{ToyProblem, toy_dataset};
use crate::error::{MdnError, Result};
use crate::fit::prepare;
use crate::gpu::context::{GpuContext, GpuOptions};
use crate::gpu::{GpuTrainer, Kernels};
use crate::model::init::init_params;
use crate::model::{Head, ModelSpec};
use crate::train::{LossAccumulator, LrSchedule, TrainConfig, Trainer};

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
/// Nominal FLOPs per head output and row (see [`flops_per_step`]).
pub const HEAD_FLOPS_PER_OUTPUT: usize = 10;
/// Learning rate of the benchmark runs (constant schedule): the default
/// training rate, small enough that no configuration diverges.
const LR: f64 = crate::defaults::LR;
/// Data seed; parameters use the same.
const SEED: u64 = 0;

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
        Ok(prepare(&raw)?.normalized)
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

/// The GPU a bench runs on, as reported by the driver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GpuInfo {
    pub adapter: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    /// The kernel configuration, in `MDN_GPU_KERNELS` syntax.
    pub kernels: String,
}

/// The machine: CPU, thread count and (when one opened) the GPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub logical_cpus: usize,
    /// rayon's worker threads (the CPU trainer's parallelism).
    pub threads: usize,
    pub gpu: Option<GpuInfo>,
}

impl Machine {
    /// The header of the text table: one line per device and the counting
    /// conventions.
    pub fn header_lines(&self) -> Vec<String> {
        let mut lines = vec![
            "mdn bench: toy inverse problem, f32, Adam; warm-up excluded; steps/s is the median \
             [min-max] of the repeats"
                .to_string(),
            format!(
                "cpu: {} ({} logical CPUs, {} rayon threads, {} kernels)",
                self.cpu,
                self.logical_cpus,
                self.threads,
                crate::simd::kernel_name()
            ),
        ];
        match &self.gpu {
            Some(g) => {
                lines.push(format!(
                    "gpu: {} ({}, {}), driver {}",
                    g.adapter, g.backend, g.device_type, g.driver
                ));
                lines.push(format!("gpu kernels (MDN_GPU_KERNELS): {}", g.kernels));
            }
            None => lines.push("gpu: none".to_string()),
        }
        lines.push(format!(
            "GFLOP/s: nominal 6*batch*sum(in*out) + {HEAD_FLOPS_PER_OUTPUT}*batch*head_width \
             FLOPs per step; gpu modes: chunked = many steps per submission, loss read once \
             per repeat; sync-every-step = loss read after every step (left out where a repeat \
             is one step: the modes are then the same)"
        ));
        lines
    }
}

/// The CPU's model name (first `model name` of /proc/cpuinfo on Linux).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == "model name")
                .map(|(_, v)| v.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("unknown {} CPU", std::env::consts::ARCH))
}

fn gpu_info(ctx: &GpuContext, kernels: &Kernels) -> GpuInfo {
    let info = &ctx.info;
    let driver = [info.driver.trim(), info.driver_info.trim()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let device_type = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => "discrete",
        wgpu::DeviceType::IntegratedGpu => "integrated",
        wgpu::DeviceType::VirtualGpu => "virtual",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    };
    GpuInfo {
        adapter: info.name.clone(),
        backend: ctx.backend_name(),
        device_type: device_type.to_string(),
        driver: if driver.is_empty() {
            "-".into()
        } else {
            driver
        },
        kernels: kernels.config.to_string(),
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
    /// Median over the repeats.
    pub steps_per_s: f64,
    pub steps_per_s_min: f64,
    pub steps_per_s_max: f64,
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
}

impl BenchRow {
    pub fn table_header() -> String {
        format!(
            "{:<6} {:<6} {:<15} {:>6} {:<8} {:>2} {:>10}  {:>9} {:<19} {:>9} {:>9} {:>8} {:>7}",
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
            "vs cpu"
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
        format!(
            "{:<6} {:<6} {:<15} {:>6} {:<8} {:>2} {:>10}  {:>9} {:<19} {:>9} {:>9} {:>8} {:>7}",
            self.config.name(),
            self.device.name(),
            self.mode.name(),
            self.batch,
            hidden,
            self.k.map_or("-".to_string(), |k| k.to_string()),
            format!("{}x{}", self.steps, self.repeats),
            num(self.steps_per_s),
            range,
            si(self.samples_per_s),
            num(self.ms_per_step),
            num(self.gflops),
            ratio
        )
    }
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

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchOptions {
    pub configs: Vec<BenchConfig>,
    /// `None`: the CPU, and the GPU if one opens (else a note).
    /// `Some(list)`: exactly these; a GPU that does not open is an error.
    pub devices: Option<Vec<BenchDevice>>,
    pub model: BenchModel,
    /// Steps per repeat; `None` calibrates per row to about
    /// [`TARGET_REPEAT`].
    pub steps: Option<usize>,
    /// Timed repeats per row; `None`: [`DEFAULT_REPEATS`], or
    /// [`SLOW_REPEATS`] for rows whose steps take over [`SLOW_STEP`].
    pub repeats: Option<usize>,
    pub gpu: GpuOptions,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            configs: BenchConfig::ALL.to_vec(),
            devices: None,
            model: BenchModel::Mdn,
            steps: None,
            repeats: None,
            gpu: GpuOptions::default(),
        }
    }
}

/// An opened benchmark: the machine is known (and the GPU open) before
/// anything is measured, so the header can be printed first.
pub struct Bench {
    opts: BenchOptions,
    devices: Vec<BenchDevice>,
    machine: Machine,
    gpu: Option<(Arc<GpuContext>, Arc<Kernels>)>,
}

impl Bench {
    /// Validates `opts` and opens the GPU when asked for. With the default
    /// device list a missing GPU becomes a `note` and a CPU-only run.
    pub fn new(opts: BenchOptions, note: &mut dyn FnMut(&str)) -> Result<Bench> {
        if opts.repeats == Some(0) {
            return Err(MdnError::Config("--repeats must be at least 1".into()));
        }
        if opts.steps == Some(0) {
            return Err(MdnError::Config("--steps must be at least 1".into()));
        }
        if opts.configs.is_empty() {
            return Err(MdnError::Config("no configuration to bench".into()));
        }
        let explicit = opts.devices.is_some();
        let mut devices = opts
            .devices
            .clone()
            .unwrap_or_else(|| vec![BenchDevice::Cpu, BenchDevice::Gpu]);
        // CPU rows first, so GPU rows can carry the ratio.
        devices.sort_by_key(|d| *d != BenchDevice::Cpu);
        devices.dedup();
        if devices.is_empty() {
            return Err(MdnError::Config("--device: name cpu, gpu or both".into()));
        }
        let mut gpu = None;
        if devices.contains(&BenchDevice::Gpu) {
            match GpuContext::new(&opts.gpu) {
                Ok(ctx) => {
                    let ctx = Arc::new(ctx);
                    let kernels = Arc::new(Kernels::new(&ctx)?);
                    gpu = Some((ctx, kernels));
                }
                Err(e) if explicit => {
                    return Err(MdnError::Config(format!(
                        "--device gpu, but no GPU could be opened: {e}"
                    )));
                }
                Err(e) => {
                    note(&format!("no GPU ({e}); benching the CPU only"));
                    devices.retain(|d| *d != BenchDevice::Gpu);
                }
            }
        }
        let machine = Machine {
            cpu: cpu_model(),
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads: rayon::current_num_threads(),
            gpu: gpu.as_ref().map(|(ctx, k)| gpu_info(ctx, k)),
        };
        Ok(Bench {
            opts,
            devices,
            machine,
            gpu,
        })
    }

    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The devices that will be measured, CPU first.
    pub fn devices(&self) -> &[BenchDevice] {
        &self.devices
    }

    /// Measures every configuration on every device, calling `on_row` as
    /// each row is done (CPU before GPU within a configuration) and `note`
    /// before a row that will take minutes.
    pub fn run(
        &self,
        on_row: &mut dyn FnMut(&BenchRow),
        note: &mut dyn FnMut(&str),
    ) -> Result<Vec<BenchRow>> {
        let mut rows = Vec::new();
        for &config in &self.opts.configs {
            let spec = config.spec(self.opts.model);
            let data = config.dataset()?;
            let mut cpu_rate = None;
            for &device in &self.devices {
                let ctx = RowContext {
                    config,
                    spec: &spec,
                    device,
                    cpu_rate,
                };
                let mut emit = |row: BenchRow| {
                    if device == BenchDevice::Cpu {
                        cpu_rate = Some(row.steps_per_s);
                    }
                    on_row(&row);
                    rows.push(row);
                };
                self.bench_device(&ctx, &data, &mut emit, note)?;
            }
        }
        Ok(rows)
    }

    /// Steps and repeats per row, once the cold step's time is known.
    fn plan(&self, what: &str, cold: Duration, note: &mut dyn FnMut(&str)) -> StepPlan {
        let repeats = match self.opts.repeats {
            Some(r) => r,
            None if cold >= SLOW_STEP => {
                note(&format!(
                    "{what}: one step took {:.0} s; timing {SLOW_REPEATS} repeats (set --repeats \
                     to change)",
                    cold.as_secs_f64()
                ));
                SLOW_REPEATS
            }
            None => DEFAULT_REPEATS,
        };
        StepPlan {
            steps: self.opts.steps,
            repeats,
            target: TARGET_REPEAT,
            max_auto: MAX_AUTO_STEPS,
        }
    }

    fn bench_device(
        &self,
        rc: &RowContext<'_>,
        data: &Dataset,
        emit: &mut dyn FnMut(BenchRow),
        note: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let (spec, config) = (rc.spec, rc.config);
        let params = init_params(spec, SEED);
        let tc = config.train_config();
        let what = format!("{} {}", config.name(), rc.device.name());
        match rc.device {
            BenchDevice::Cpu => {
                let mut t = CpuTrainer::new(spec, data, params, &tc)?;
                let cold = warm_up(&mut t)?;
                let plan = self.plan(&what, cold, note);
                let m = measure(&mut t, BenchMode::Chunked, &plan, cold)?;
                emit(self.make_row(rc, BenchMode::Chunked, m, None));
            }
            BenchDevice::Gpu => {
                let (ctx, kernels) = self
                    .gpu
                    .as_ref()
                    .expect("Bench::new opened the GPU for a GPU row");
                let mut t = GpuTrainer::with_kernels(
                    Arc::clone(ctx),
                    Arc::clone(kernels),
                    spec,
                    data,
                    params,
                    &tc,
                )?;
                let dispatches = Some(t.dispatches_per_step());
                let cold = warm_up(&mut t)?;
                let plan = self.plan(&what, cold, note);
                let chunked = measure(&mut t, BenchMode::Chunked, &plan, cold)?;
                // At one step per repeat both modes are the same calls.
                let single = chunked.steps == 1;
                emit(self.make_row(rc, BenchMode::Chunked, chunked, dispatches));
                if !single {
                    let m = measure(&mut t, BenchMode::SyncEveryStep, &plan, cold)?;
                    emit(self.make_row(rc, BenchMode::SyncEveryStep, m, dispatches));
                }
            }
        }
        Ok(())
    }

    fn make_row(
        &self,
        rc: &RowContext<'_>,
        mode: BenchMode,
        m: Measured,
        dispatches_per_step: Option<usize>,
    ) -> BenchRow {
        let (config, spec, device, cpu_rate) = (rc.config, rc.spec, rc.device, rc.cpu_rate);
        let rates: Vec<f64> = m
            .secs
            .iter()
            .map(|&s| m.steps as f64 / s.max(1e-12))
            .collect();
        let stats = Stats::of(&rates).expect("at least one repeat, never NaN");
        let batch = config.batch();
        let flops = flops_per_step(spec, batch);
        let (adapter, backend, driver, kernels) = match (device, &self.machine.gpu) {
            (BenchDevice::Gpu, Some(g)) => (
                g.adapter.clone(),
                g.backend.clone(),
                g.driver.clone(),
                g.kernels.clone(),
            ),
            _ => (
                self.machine.cpu.clone(),
                "cpu".into(),
                format!("rayon, {} kernels", crate::simd::kernel_name()),
                crate::simd::kernel_name().to_string(),
            ),
        };
        BenchRow {
            config,
            model: self.opts.model,
            device,
            mode,
            batch,
            hidden: spec.hidden.clone(),
            k: spec.is_mixture().then(|| spec.k()),
            steps: m.steps,
            repeats: m.secs.len(),
            steps_per_s: stats.median,
            steps_per_s_min: stats.min,
            steps_per_s_max: stats.max,
            samples_per_s: stats.median * batch as f64,
            ms_per_step: 1e3 / stats.median,
            gflops: flops * stats.median / 1e9,
            flops_per_step: flops,
            gpu_cpu_ratio: match device {
                BenchDevice::Gpu => cpu_rate.map(|c| stats.median / c),
                BenchDevice::Cpu => None,
            },
            dispatches_per_step,
            kernels,
            adapter,
            backend,
            driver,
            cpu: self.machine.cpu.clone(),
            threads: self.machine.threads,
            final_loss: Some(m.final_loss as f64).filter(|l| l.is_finite()),
            repeat_steps_per_s: rates,
        }
    }
}

/// What one row is about.
struct RowContext<'a> {
    config: BenchConfig,
    spec: &'a ModelSpec,
    device: BenchDevice,
    /// The CPU row's median steps/s of this configuration, once measured.
    cpu_rate: Option<f64>,
}

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
                let l = trainer.take_loss()?;
                total.sum += l.sum;
                total.count += l.count;
                total.nonfinite += l.nonfinite;
                total.last = l.last;
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
        // Aim the next block at the quarter target, growing at least 2×.
        let next = (plan.target.as_secs_f64() / 4.0 / per_step.max(1e-9)).ceil() as usize;
        n = next.clamp(2 * n, max);
    }
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

    #[test]
    fn stats_are_median_min_max() {
        let s = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(Stats::of(&[]).is_none());
        assert!(Stats::of(&[1.0, f64::NAN]).is_none());
    }

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
        fn params(&mut self) -> Result<Vec<f32>> {
            Ok(Vec::new())
        }
        fn device_name(&self) -> String {
            "sleepy".into()
        }
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
