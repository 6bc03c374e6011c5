//! Running a benchmark: the rows to measure, the trainers to build for
//! each, and the measurements gathered into rows.

use std::sync::Arc;
use std::time::Duration;

use super::config::SEED;
use super::config::{BenchConfig, BenchDevice, BenchMode, BenchModel, flops_per_step};
use super::machine::{Machine, cpu_model, gpu_info};
use super::report::{BenchRow, Stats};
use super::timing::{
    DEFAULT_REPEATS, MAX_AUTO_STEPS, Measured, SLOW_REPEATS, SLOW_STEP, StepPlan, TARGET_REPEAT,
    measure, warm_up,
};
use crate::cpu::CpuTrainer;
use crate::data::Dataset;
use crate::error::{MdnError, Result};
use crate::gpu::config::KernelConfig;
use crate::gpu::context::{GpuContext, GpuOptions};
use crate::gpu::tuned::JobShape;
use crate::gpu::{GpuTrainer, Kernels};
use crate::model::ModelSpec;
use crate::model::init::init_params;
use crate::train::{LossAccumulator, TrainConfig, Trainer};

/// `--models M` on the CPU: M trainers stepped side by side on rayon's
/// pool (each one's row blocks share it), as `mdn sweep` runs them.
struct SideBySide(Vec<CpuTrainer>);

impl Trainer for SideBySide {
    fn step(&self) -> usize {
        self.0[0].step()
    }
    fn run(&mut self, n: usize) -> Result<()> {
        use rayon::prelude::*;
        self.0.par_iter_mut().try_for_each(|t| t.run(n))
    }
    /// Every model's loss, merged.
    fn take_loss(&mut self) -> Result<LossAccumulator> {
        let mut all = LossAccumulator::default();
        for t in &mut self.0 {
            all.merge(&t.take_loss()?);
        }
        Ok(all)
    }
    fn checkpoint(&mut self) -> Result<()> {
        self.0.iter_mut().try_for_each(|t| t.checkpoint())
    }
    fn restore_checkpoint(&mut self) -> Result<()> {
        self.0.iter_mut().try_for_each(|t| t.restore_checkpoint())
    }
    fn optimizer_state(&mut self) -> Result<(Vec<f32>, Vec<f32>)> {
        self.0[0].optimizer_state()
    }
    fn restore_state(&mut self, p: &[f32], m: &[f32], v: &[f32], step: usize) -> Result<()> {
        self.0[0].restore_state(p, m, v, step)
    }
    fn params(&mut self) -> Result<Vec<f32>> {
        self.0[0].params()
    }
    fn device_name(&self) -> String {
        self.0[0].device_name()
    }
}

/// Steps a profile times at most: medians settle well before, and the
/// large size's steps take seconds on a CPU driver.
const PROFILE_STEPS: usize = 50;

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
    /// Models trained at once (`--models M`, default 1).
    pub models: usize,
    /// Time each dispatch of a GPU step with timestamp queries
    /// (`--profile`), after the chunked row's repeats.
    pub profile: bool,
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
            models: 1,
            profile: false,
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
        if opts.models == 0 {
            return Err(MdnError::Config("--models must be at least 1".into()));
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
        let models = self.opts.models;
        let tc = config.train_config();
        // Model i of a set: seed SEED + i, as a sweep's seeds differ (model
        // 0 is the single-model row's).
        let member = |i: usize| {
            let seed = SEED + i as u64;
            let config = TrainConfig { seed, ..tc.clone() };
            (init_params(spec, seed), config)
        };
        let what = format!("{} {}", config.name(), rc.device.name());
        match rc.device {
            BenchDevice::Cpu => {
                let mut t: Box<dyn Trainer> = if models == 1 {
                    let (params, tc) = member(0);
                    Box::new(CpuTrainer::new(spec, data, params, &tc)?)
                } else {
                    let set = (0..models)
                        .map(|i| {
                            let (p, c) = member(i);
                            CpuTrainer::new(spec, data, p, &c)
                        })
                        .collect::<Result<_>>()?;
                    Box::new(SideBySide(set))
                };
                let t = t.as_mut();
                let cold = warm_up(t)?;
                let plan = self.plan(&what, cold, note);
                let m = measure(t, BenchMode::Chunked, &plan, cold)?;
                emit(self.make_row(rc, BenchMode::Chunked, m, None));
            }
            BenchDevice::Gpu => {
                let (ctx, base) = self
                    .gpu
                    .as_ref()
                    .expect("Bench::new opened the GPU for a GPU row");
                // What `mdn tune` measured for this row's job, if anything.
                let job = JobShape::new(spec, tc.batch, data.len(), models);
                let kernels = &Kernels::for_job(ctx, &job, std::slice::from_ref(base))?;
                let mut t = if models == 1 {
                    let (params, tc) = member(0);
                    GpuTrainer::with_kernels(
                        Arc::clone(ctx),
                        Arc::clone(kernels),
                        spec,
                        data,
                        params,
                        &tc,
                    )?
                } else {
                    let set = (0..models).map(member).collect();
                    match GpuTrainer::many(Arc::clone(ctx), Arc::clone(kernels), spec, data, set) {
                        Ok(t) => t,
                        Err(e) => {
                            note(&format!(
                                "{what}: no GPU row for {models} models at once ({e})"
                            ));
                            return Ok(());
                        }
                    }
                };
                let dispatches = Some((kernels.as_ref(), t.dispatches_per_step(), t.is_fused()));
                let cold = warm_up(&mut t)?;
                let plan = self.plan(&what, cold, note);
                let chunked = measure(&mut t, BenchMode::Chunked, &plan, cold)?;
                // At one step per repeat both modes are the same calls.
                let single = chunked.steps == 1;
                let steps = chunked.steps;
                let mut row = self.make_row(rc, BenchMode::Chunked, chunked, dispatches);
                if self.opts.profile {
                    match t.profile(steps.min(PROFILE_STEPS)) {
                        Ok(p) => row.profile = Some(p),
                        Err(e) => note(&format!("{what}: no profile ({e})")),
                    }
                }
                emit(row);
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
        dispatches: Option<(&Kernels, usize, bool)>,
    ) -> BenchRow {
        let (config, spec, device, cpu_rate) = (rc.config, rc.spec, rc.device, rc.cpu_rate);
        let rates: Vec<f64> = m
            .secs
            .iter()
            .map(|&s| m.steps as f64 / s.max(1e-12))
            .collect();
        let stats = Stats::of(&rates).expect("at least one repeat, never NaN");
        let batch = config.batch();
        let models = self.opts.models;
        let flops = flops_per_step(spec, batch) * models as f64;
        let (adapter, backend, driver, kernels) = match (device, &self.machine.gpu) {
            (BenchDevice::Gpu, Some(g)) => (
                g.adapter.clone(),
                g.backend.clone(),
                g.driver.clone(),
                // What ran: a set of models takes the fused step even under
                // `fused=off`.
                match dispatches {
                    Some((k, _, fused)) => KernelConfig { fused, ..k.config }.to_string(),
                    None => g.kernels.clone(),
                },
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
            samples_per_s: stats.median * (batch * models) as f64,
            ms_per_step: 1e3 / stats.median,
            gflops: flops * stats.median / 1e9,
            flops_per_step: flops,
            gpu_cpu_ratio: match device {
                BenchDevice::Gpu => cpu_rate.map(|c| stats.median / c),
                BenchDevice::Cpu => None,
            },
            dispatches_per_step: dispatches.map(|d| d.1),
            fused: dispatches.map(|d| d.2),
            tuned: dispatches.map(|d| d.0.tuned.is_some()),
            tuned_gain: dispatches
                .and_then(|d| d.0.tuned.as_ref())
                .map(|t| t.entry.gain()),
            tuned_changes: dispatches
                .and_then(|d| d.0.tuned.as_ref())
                .map(|t| t.entry.changes.clone()),
            models,
            model_steps_per_s: stats.median * models as f64,
            kernels,
            adapter,
            backend,
            driver,
            cpu: self.machine.cpu.clone(),
            threads: self.machine.threads,
            final_loss: Some(m.final_loss as f64).filter(|l| l.is_finite()),
            repeat_steps_per_s: rates,
            profile: None,
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
