//! Per-stage times, CPU vs GPU, at the three `mdn bench` sizes.
//!
//! Each stage covers every layer of the network, so the stages of one size
//! add up to about one training step:
//! - `gather`: the minibatch rows picked by the permutation;
//! - `dense_forward`: every layer's forward product (+ bias, tanh);
//! - `mixture_head`: the head's NLL and gradient;
//! - `reduce`: the batch loss into the running sum (CPU only: on the GPU
//!   it is one more workgroup of Adam's dispatch, timed with `adam`);
//! - `dense_backward`: every layer's weight gradient (batch split in
//!   partials on the GPU) and input gradient;
//! - `adam`: the update over all parameters (on the GPU it also sums the
//!   weight-gradient partials and the batch loss).
//!
//! CPU: the rayon-parallel stage functions of `src/cpu/` (the CPU trainer
//! runs the same arithmetic fused per block of rows). GPU: the trainer's own
//! dispatches of the stage (`GpuTrainer::run_stage`), on its buffers after
//! one step. Each timed GPU batch of iterations records the stage's
//! dispatches `iters` times into command buffers (at most 256 stage runs
//! each, like the trainer's chunks), submits them and waits for the queue:
//! the device sync
//! is inside the timed region, and the per-iteration figure is the stage's
//! cost inside a stream of work, as in training. `overhead/gpu/submit_wait`
//! measures an empty submission and the wait for it.
//!
//! `cargo bench --bench stages -- small` runs one size; the large size uses
//! 10 flat samples because one GPU dispatch takes seconds on lavapipe.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use mdn::bench::{BenchConfig, BenchModel, warm_up};
use mdn::cpu::adam::adam;
use mdn::cpu::dense_backward::{BackwardScratch, dense_backward};
use mdn::cpu::dense_forward::dense_forward;
use mdn::cpu::gather::gather;
use mdn::data::Dataset;
use mdn::gpu::context::{GpuContext, test_context};
use mdn::gpu::trainer::StepStage;
use mdn::gpu::{GpuTrainer, KernelConfig, Kernels};
use mdn::head::mixture_diag::mixture_head;
use mdn::model::ModelSpec;
use mdn::model::init::init_params;
use mdn::train::AdamStep;
use mdn::train::{BatchOrder, TrainConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Gather,
    DenseForward,
    MixtureHead,
    Reduce,
    DenseBackward,
    Adam,
}

impl Stage {
    const ALL: [Stage; 6] = [
        Stage::Gather,
        Stage::DenseForward,
        Stage::MixtureHead,
        Stage::Reduce,
        Stage::DenseBackward,
        Stage::Adam,
    ];

    /// The trainer's stage; `None` where the GPU has no dispatch of its
    /// own for it.
    fn gpu(self) -> Option<StepStage> {
        match self {
            Stage::Gather => Some(StepStage::Gather),
            Stage::DenseForward => Some(StepStage::DenseForward),
            Stage::MixtureHead => Some(StepStage::Head),
            Stage::Reduce => None,
            Stage::DenseBackward => Some(StepStage::DenseBackward),
            Stage::Adam => Some(StepStage::Adam),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stage::Gather => "gather",
            Stage::DenseForward => "dense_forward",
            Stage::MixtureHead => "mixture_head",
            Stage::Reduce => "reduce",
            Stage::DenseBackward => "dense_backward",
            Stage::Adam => "adam",
        }
    }
}

/// Sample settings per size: the large size runs seconds per GPU dispatch
/// on lavapipe.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, config: BenchConfig) {
    group.throughput(Throughput::Elements(config.batch() as u64));
    match config {
        BenchConfig::Large => {
            group
                .sample_size(10)
                .sampling_mode(SamplingMode::Flat)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(5));
        }
        _ => {
            group
                .sample_size(20)
                .sampling_mode(SamplingMode::Auto)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(3));
        }
    }
}

// ------------------------------------------------------------------- CPU

/// Host buffers of one size, filled by one forward/backward pass so every
/// stage sees realistic values.
struct CpuRig {
    spec: ModelSpec,
    data: Dataset,
    perm: Vec<u32>,
    params: Vec<f32>,
    grads: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    acts: Vec<Vec<f32>>,
    deltas: Vec<Vec<f32>>,
    batch_targets: Vec<f32>,
    row_loss: Vec<f32>,
    scratch: BackwardScratch,
    batch: usize,
}

impl CpuRig {
    fn new(config: BenchConfig) -> CpuRig {
        let spec = config.spec(BenchModel::Mdn);
        let data = config.dataset().expect("toy data");
        let batch = config.batch();
        let perm = BatchOrder::new(data.len(), batch, 0)
            .expect("rows")
            .permutation(0);
        let params = init_params(&spec, 0);
        let n = params.len();
        let widths = spec.widths();
        let mut rig = CpuRig {
            acts: widths.iter().map(|&w| vec![0.0; batch * w]).collect(),
            deltas: widths[1..].iter().map(|&w| vec![0.0; batch * w]).collect(),
            batch_targets: vec![0.0; batch * spec.out_dim],
            row_loss: vec![0.0; batch],
            scratch: BackwardScratch::default(),
            grads: vec![0.0; n],
            m: vec![0.0; n],
            v: vec![0.0; n],
            params,
            perm,
            data,
            spec,
            batch,
        };
        for stage in Stage::ALL {
            rig.run(stage);
        }
        rig
    }

    fn run(&mut self, stage: Stage) {
        let layout = self.spec.layout();
        let last = layout.layers.len() - 1;
        match stage {
            Stage::Gather => {
                gather(
                    &self.data.inputs,
                    self.spec.in_dim,
                    &self.perm,
                    0,
                    &mut self.acts[0],
                );
                let d = self.spec.out_dim;
                gather(
                    &self.data.targets,
                    d,
                    &self.perm,
                    0,
                    &mut self.batch_targets,
                );
            }
            Stage::DenseForward => {
                for (l, layer) in layout.layers.iter().enumerate() {
                    let (lo, hi) = self.acts.split_at_mut(l + 1);
                    dense_forward(&self.params, layer, &lo[l], &mut hi[0]);
                }
            }
            Stage::MixtureHead => mixture_head(
                &self.acts[last + 1],
                &self.batch_targets,
                self.spec.k(),
                1.0 / self.batch as f32,
                &mut self.deltas[last],
                &mut self.row_loss,
            ),
            Stage::Reduce => {
                let mut acc = mdn::train::LossAccumulator::default();
                mdn::cpu::reduce::reduce(&self.row_loss, &mut acc);
                black_box(acc);
            }
            Stage::DenseBackward => {
                for (l, layer) in layout.layers.iter().enumerate().rev() {
                    let (below, here) = self.deltas.split_at_mut(l);
                    let grad_in = if l > 0 {
                        Some(&mut below[l - 1][..])
                    } else {
                        None
                    };
                    dense_backward(
                        &self.params,
                        layer,
                        &self.acts[l],
                        &here[0],
                        &mut self.grads,
                        grad_in,
                        &mut self.scratch,
                    );
                }
            }
            Stage::Adam => {
                // A tiny rate: repeated updates must not drift anywhere odd.
                let s = AdamStep::new(1e-9, 10);
                adam(&mut self.params, &self.grads, &mut self.m, &mut self.v, &s);
            }
        }
    }
}

// ------------------------------------------------------------------- GPU

/// The GPU trainer of one size after one step, so every buffer holds real
/// values; `GpuTrainer::run_stage` records exactly the trainer's dispatches
/// of a stage.
struct GpuRig {
    ctx: Arc<GpuContext>,
    trainer: GpuTrainer,
}

impl GpuRig {
    fn new(ctx: &Arc<GpuContext>, k: &Arc<Kernels>, config: BenchConfig) -> GpuRig {
        let spec = config.spec(BenchModel::Mdn);
        let data = config.dataset().expect("toy data");
        // A tiny rate: repeated Adam stages must not drift anywhere odd.
        let train = TrainConfig {
            lr: 1e-9,
            ..config.train_config()
        };
        let mut trainer = GpuTrainer::with_kernels(
            Arc::clone(ctx),
            Arc::clone(k),
            &spec,
            &data,
            init_params(&spec, 0),
            &train,
        )
        .expect("GPU trainer builds");
        warm_up(&mut trainer).expect("one step");
        GpuRig {
            ctx: Arc::clone(ctx),
            trainer,
        }
    }

    /// `stage` `iters` times, submitted and waited for; the wall time.
    fn time(&mut self, stage: Stage, iters: u64) -> Duration {
        let start = Instant::now();
        let stage = stage
            .gpu()
            .expect("only stages with GPU dispatches are timed");
        self.trainer
            .run_stage(stage, iters as usize)
            .expect("GPU stage runs");
        start.elapsed()
    }
}

/// An empty submission and the wait for it, `iters` times.
fn time_submit_wait(ctx: &GpuContext, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        ctx.queue.submit([encoder.finish()]);
        ctx.device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("GPU wait");
    }
    start.elapsed()
}

fn stages(c: &mut Criterion) {
    let gpu = test_context().map(Arc::new);
    let kernels = gpu.as_ref().map(|ctx| {
        // Per-stage timing needs the per-stage path: a fused step has
        // no separate forward, head or backward dispatches.
        let config = KernelConfig::from_env(&ctx.info).expect("kernel configuration");
        let config = KernelConfig {
            fused: false,
            ..config
        };
        Arc::new(Kernels::with_config(ctx, config).expect("kernels build"))
    });
    if let Some(ctx) = &gpu {
        eprintln!("GPU: {}", ctx.describe());
        let mut group = c.benchmark_group("overhead");
        group
            .sample_size(20)
            .measurement_time(Duration::from_secs(2));
        group.bench_function("gpu/submit_wait", |b| {
            b.iter_custom(|iters| time_submit_wait(ctx, iters))
        });
        group.finish();
    }
    for config in BenchConfig::ALL {
        // Built on first use: criterion calls a closure only when its id
        // passes the command line's filter, and filling the large GPU rig
        // runs a step that takes a minute on lavapipe.
        let mut cpu: Option<CpuRig> = None;
        let mut rig: Option<GpuRig> = None;
        for stage in Stage::ALL {
            let mut group = c.benchmark_group(stage.name());
            configure(&mut group, config);
            group.bench_function(format!("cpu/{}", config.name()), |b| {
                let cpu = cpu.get_or_insert_with(|| CpuRig::new(config));
                b.iter(|| cpu.run(stage))
            });
            if let (Some(ctx), Some(k), Some(_)) = (&gpu, &kernels, stage.gpu()) {
                group.bench_function(format!("gpu/{}", config.name()), |b| {
                    let rig = rig.get_or_insert_with(|| GpuRig::new(ctx, k, config));
                    b.iter_custom(|iters| rig.time(stage, iters))
                });
            }
            group.finish();
        }
        if let Some(rig) = &rig {
            assert!(rig.ctx.take_error().is_none(), "GPU error while benching");
        }
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
