//! Per-stage times, CPU vs GPU, at the three `mdn bench` sizes.
//!
//! Each stage covers every layer of the network, so the stages of one size
//! add up to about one training step:
//! - `gather`: the minibatch rows picked by the permutation;
//! - `dense_forward`: every layer's forward product (+ bias, tanh);
//! - `mixture_head`: the head's NLL and gradient;
//! - `reduce`: the batch loss into the running sum (GPU only; one
//!   workgroup);
//! - `dense_backward`: every layer's weight gradient (batch split in
//!   partials on the GPU) and input gradient;
//! - `adam`: the update over all parameters (on the GPU it also sums the
//!   weight-gradient partials).
//!
//! CPU: the rayon-parallel stage functions of `src/cpu/` (the CPU trainer
//! runs the same arithmetic fused per block of rows). GPU: the trainer's
//! kernels on resident buffers laid out as `GpuTrainer` lays them out. Each
//! timed GPU batch of iterations records the stage's dispatches `iters`
//! times into command buffers (at most 256 stage runs each, like the
//! trainer's chunks), submits them and waits for the queue: the device sync
//! is inside the timed region, and the per-iteration figure is the stage's
//! cost inside a stream of work, as in training. `overhead/gpu/submit_wait`
//! measures an empty submission and the wait for it.
//!
//! `cargo bench --bench stages -- small` runs one size; the large size uses
//! 10 flat samples because one GPU dispatch takes seconds on lavapipe.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use mdn::bench::{BenchConfig, BenchModel};
use mdn::cpu::adam::{AdamStep, adam};
use mdn::cpu::dense_backward::{BackwardScratch, dense_backward};
use mdn::cpu::dense_forward::dense_forward;
use mdn::cpu::gather::gather;
use mdn::cpu::mixture_head::mixture_head;
use mdn::data::Dataset;
use mdn::gpu::Kernels;
use mdn::gpu::buffers::{
    UniformArena, UniformSlot, bind_group, grid, slot, storage, storage_init, whole,
};
use mdn::gpu::context::{GpuContext, test_context};
use mdn::gpu::kernels::adam_info;
use mdn::gpu::layouts::{
    AdamLayer, DenseInfo, GatherInfo, HeadInfo, LossState, ReduceInfo, StepInfo,
};
use mdn::gpu::trainer::choose_splits;
use mdn::model::init::init_params;
use mdn::model::{LayerLayout, ModelSpec};
use mdn::train::BatchOrder;

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
                let mut acc = mdn::cpu::reduce::LossAccumulator::default();
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

/// One recorded dispatch.
struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: usize,
    dynamic: bool,
    groups: (u32, u32, u32),
}

/// The trainer's resident buffers and per-stage dispatches for one size,
/// built from the public kernels the way `GpuTrainer` builds them.
struct GpuRig<'a> {
    ctx: &'a GpuContext,
    bind_groups: Vec<wgpu::BindGroup>,
    stages: Vec<(Stage, Vec<Dispatch>)>,
    _buffers: Vec<wgpu::Buffer>,
}

fn dense_info(l: &LayerLayout, rows: usize, splits: u32, partial_offset: usize) -> DenseInfo {
    DenseInfo {
        rows: rows as u32,
        in_dim: l.in_dim as u32,
        out_dim: l.out_dim as u32,
        weight: l.weight as u32,
        bias: l.bias as u32,
        tanh: l.tanh as u32,
        splits,
        split_rows: rows.div_ceil(splits as usize) as u32,
        partial_offset: partial_offset as u32,
        ..Default::default()
    }
}

impl<'a> GpuRig<'a> {
    fn new(ctx: &'a GpuContext, k: &Kernels, config: BenchConfig) -> GpuRig<'a> {
        let spec = config.spec(BenchModel::Mdn);
        let data = config.dataset().expect("toy data");
        let b = config.batch();
        let layout = spec.layout();
        let n = layout.len;
        let widths = spec.widths();
        let layers = layout.layers.len();
        let cfg = k.config;
        let c = ctx;
        let perm_host = BatchOrder::new(data.len(), b, 0)
            .expect("rows")
            .permutation(0);
        let buf = |label: &str, len: usize| storage(c, label, len).expect("buffer fits");
        let perm = storage_init(c, "perm", &perm_host).expect("fits");
        let inputs = storage_init(c, "inputs", &data.inputs).expect("fits");
        let targets = storage_init(c, "targets", &data.targets).expect("fits");
        let params = storage_init(c, "params", &init_params(&spec, 0)).expect("fits");
        let grads = buf("grads", n);
        let adam_m = buf("m", n);
        let adam_v = buf("v", n);
        let acts: Vec<_> = widths.iter().map(|&w| buf("act", b * w)).collect();
        let deltas: Vec<_> = widths[1..].iter().map(|&w| buf("delta", b * w)).collect();
        let batch_targets = buf("batch targets", b * spec.out_dim);
        let row_loss = buf("row loss", b);
        let loss_state = buf("loss state", size_of::<LossState>() / 4);
        let no_grad_in = buf("no grad in", 1);
        let limit = c.device.limits().max_storage_buffer_binding_size;
        let splits = choose_splits(&cfg, &layout, b, limit);
        let mut partial_offset = 0;
        let mut dense = Vec::new();
        let mut adam_layers = Vec::new();
        for (l, &s) in layout.layers.iter().zip(&splits) {
            let len = l.out_dim * (l.in_dim + 1);
            dense.push(dense_info(l, b, s, partial_offset));
            adam_layers.push(AdamLayer {
                start: l.weight as u32,
                len: len as u32,
                splits: s,
                partial_offset: partial_offset as u32,
            });
            partial_offset += s as usize * len;
        }
        let partials = buf("partials", partial_offset);
        let mut arena = UniformArena::new(c);
        let gather_slot = arena.push(&GatherInfo {
            rows: b as u32,
            in_dim: spec.in_dim as u32,
            out_dim: spec.out_dim as u32,
            ..Default::default()
        });
        let dense_slots: Vec<UniformSlot> = dense.iter().map(|d| arena.push(d)).collect();
        let head_slot = arena.push(&HeadInfo {
            rows: b as u32,
            k: spec.k() as u32,
            d: spec.out_dim as u32,
            width: spec.head_width() as u32,
            grad_scale: 1.0 / b as f32,
            ..Default::default()
        });
        let reduce_slot = arena.push(&ReduceInfo {
            rows: b as u32,
            ..Default::default()
        });
        let adam_slot = arena.push(&adam_info(n, &adam_layers));
        let step_slot = arena.push(&StepInfo::new(0, &AdamStep::new(1e-9, 10)));
        let uniforms = arena.finish(c, "bench uniforms");

        let mut bgs = Vec::new();
        let mut add = |bg: wgpu::BindGroup| {
            bgs.push(bg);
            bgs.len() - 1
        };
        let groups = |g: u64, z: u32| {
            let (x, y) = grid(g).expect("grid");
            (x, y, z)
        };
        let rows_groups = (b as u64).div_ceil(cfg.rows_wg as u64);
        let d = |pipeline: &wgpu::ComputePipeline, bind_group, dynamic, groups| Dispatch {
            pipeline: pipeline.clone(),
            bind_group,
            dynamic,
            groups,
        };
        let mut stages = Vec::new();

        let g = add(bind_group(
            c,
            "gather",
            &k.gather.layout,
            &[
                whole(&perm),
                whole(&inputs),
                whole(&targets),
                whole(&acts[0]),
                whole(&batch_targets),
                slot(&uniforms, gather_slot),
                slot(&uniforms, step_slot),
            ],
        ));
        stages.push((
            Stage::Gather,
            vec![d(&k.gather.pipeline, g, true, groups(rows_groups, 1))],
        ));

        let mut fwd = Vec::new();
        for (i, l) in layout.layers.iter().enumerate() {
            let g = add(bind_group(
                c,
                "dense_forward",
                &k.dense_forward.layout,
                &[
                    whole(&params),
                    whole(&acts[i]),
                    whole(&acts[i + 1]),
                    slot(&uniforms, dense_slots[i]),
                ],
            ));
            let mg = cfg.matmul_groups(b as u32, l.out_dim as u32);
            fwd.push(d(&k.dense_forward.pipeline, g, false, groups(mg, 1)));
        }
        stages.push((Stage::DenseForward, fwd));

        let g = add(bind_group(
            c,
            "head",
            &k.mixture_head.layout,
            &[
                whole(&acts[layers]),
                whole(&batch_targets),
                whole(&deltas[layers - 1]),
                whole(&row_loss),
                slot(&uniforms, head_slot),
            ],
        ));
        stages.push((
            Stage::MixtureHead,
            vec![d(
                &k.mixture_head.pipeline,
                g,
                false,
                groups(rows_groups, 1),
            )],
        ));
        let g = add(bind_group(
            c,
            "reduce",
            &k.reduce.layout,
            &[
                whole(&row_loss),
                whole(&loss_state),
                slot(&uniforms, reduce_slot),
            ],
        ));
        stages.push((
            Stage::Reduce,
            vec![d(&k.reduce.pipeline, g, false, groups(1, 1))],
        ));

        let mut bwd = Vec::new();
        for (i, l) in layout.layers.iter().enumerate().rev() {
            let grad_in = if i > 0 { &deltas[i - 1] } else { &no_grad_in };
            let g = add(bind_group(
                c,
                "dense_backward",
                &k.dense_backward.layout,
                &[
                    whole(&params),
                    whole(&acts[i]),
                    whole(&deltas[i]),
                    whole(grad_in),
                    whole(&partials),
                    slot(&uniforms, dense_slots[i]),
                ],
            ));
            let wg = cfg.matmul_groups(l.out_dim as u32, l.in_dim as u32 + 1);
            bwd.push(d(&k.dense_backward.weight, g, false, groups(wg, splits[i])));
            if i > 0 {
                let ig = cfg.matmul_groups(b as u32, l.in_dim as u32);
                bwd.push(d(&k.dense_backward.input, g, false, groups(ig, 1)));
            }
        }
        stages.push((Stage::DenseBackward, bwd));

        let g = add(bind_group(
            c,
            "adam",
            &k.adam.layout,
            &[
                whole(&params),
                whole(&partials),
                whole(&adam_m),
                whole(&adam_v),
                whole(&grads),
                slot(&uniforms, adam_slot),
                slot(&uniforms, step_slot),
            ],
        ));
        let ag = (n as u64).div_ceil(cfg.adam_wg as u64);
        stages.push((Stage::Adam, vec![d(&k.adam.adam, g, true, groups(ag, 1))]));

        let rig = GpuRig {
            ctx,
            bind_groups: bgs,
            stages,
            _buffers: vec![
                perm,
                inputs,
                targets,
                params,
                grads,
                adam_m,
                adam_v,
                batch_targets,
                row_loss,
                loss_state,
                no_grad_in,
                partials,
                uniforms,
            ]
            .into_iter()
            .chain(acts)
            .chain(deltas)
            .collect(),
        };
        // One whole step, so every buffer holds realistic values.
        let all: Vec<Stage> = rig.stages.iter().map(|(s, _)| *s).collect();
        for s in all {
            rig.time(s, 1);
        }
        assert!(ctx.take_error().is_none(), "GPU error building the rig");
        rig
    }

    fn dispatches(&self, stage: Stage) -> &[Dispatch] {
        &self
            .stages
            .iter()
            .find(|(s, _)| *s == stage)
            .expect("stage")
            .1
    }

    /// Records `stage` `iters` times (≤ 256 per submission), submits, and
    /// waits until the queue is idle; returns the wall time of all of it.
    fn time(&self, stage: Stage, iters: u64) -> Duration {
        const PER_SUBMISSION: u64 = 256;
        let dispatches = self.dispatches(stage);
        let start = Instant::now();
        let mut left = iters;
        while left > 0 {
            let now = left.min(PER_SUBMISSION);
            let mut encoder = self
                .ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: None,
                });
                for _ in 0..now {
                    for d in dispatches {
                        pass.set_pipeline(&d.pipeline);
                        let offsets: &[u32] = if d.dynamic { &[0] } else { &[] };
                        pass.set_bind_group(0, &self.bind_groups[d.bind_group], offsets);
                        pass.dispatch_workgroups(d.groups.0, d.groups.1, d.groups.2);
                    }
                }
            }
            self.ctx.queue.submit([encoder.finish()]);
            left -= now;
        }
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("GPU wait");
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
    let gpu = test_context();
    let kernels = gpu
        .as_ref()
        .map(|ctx| Kernels::new(ctx).expect("kernels build"));
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
        let mut rig: Option<GpuRig<'_>> = None;
        for stage in Stage::ALL {
            let mut group = c.benchmark_group(stage.name());
            configure(&mut group, config);
            group.bench_function(format!("cpu/{}", config.name()), |b| {
                let cpu = cpu.get_or_insert_with(|| CpuRig::new(config));
                b.iter(|| cpu.run(stage))
            });
            if let (Some(ctx), Some(k)) = (&gpu, &kernels) {
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
