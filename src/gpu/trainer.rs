//! The GPU trainer: the CPU trainer's stages (src/cpu/trainer.rs) as
//! compute dispatches, with data, parameters, gradients and Adam state
//! resident on the device.
//!
//! One step is `3·L + 3` dispatches for L layers: gather, L forward, the
//! head, the loss reduction, L weight-gradient and L − 1 input-gradient
//! passes, Adam. Per-step values (where the batch starts in the permutation
//! ring, the Adam constants) are `StepInfo` records in a uniform buffer,
//! written before the submission and picked per dispatch by a dynamic
//! offset, so `run(n)` records up to [`STEP_CAPACITY`] steps into one command
//! buffer and never waits. Epoch permutations come from the same
//! [`BatchOrder`] as the CPU's and go into a ring of slots, so both trainers
//! see the same minibatches. The loss stays in a `LossState` buffer until
//! [`Trainer::take_loss`] reads and clears it: the only readback of
//! training.

use std::sync::Arc;

use super::bindings::{
    AdamBindings, DenseBackwardBindings, DenseForwardBindings, GatherBindings, HeadLossBindings,
    ReduceBindings,
};
use super::buffers::{
    UniformArena, UniformSlot, grid, read_back_with, read_f32, slot, staging, storage,
    storage_init, whole,
};
use super::config::KernelConfig;
use super::context::GpuContext;
use super::kernels::{Kernels, adam_info};
use super::layouts::{AdamLayer, DenseInfo, GatherInfo, HeadInfo, LossState, ReduceInfo, StepInfo};
use super::matmul::{MatmulShape, Product};
use super::prefetch::PermutationPrefetch;
use super::sampler::GpuSampler;
use crate::data::Dataset;
use crate::error::Result;
use crate::head::SampleParams;
use crate::model::{ModelSpec, ParamLayout};
use crate::train::{BatchOrder, LossAccumulator, TrainConfig, Trainer, check_trainer_inputs};

/// Steps recorded into one submission at most (the size of the step-info
/// buffer, in records).
pub const STEP_CAPACITY: usize = 1024;
/// Most epoch permutations resident at once, and their memory budget.
const MAX_RING_SLOTS: usize = 64;
const RING_BYTES: u64 = 64 << 20;
/// Budget for the weight-gradient partials of split batches.
const PARTIAL_BYTES: u64 = 256 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pipe {
    Gather,
    Forward(MatmulShape),
    Head,
    Reduce,
    BackwardWeight(MatmulShape),
    BackwardInput(MatmulShape),
    Adam,
    SumPartials,
}

impl Pipe {
    fn stage(self) -> StepStage {
        match self {
            Pipe::Gather => StepStage::Gather,
            Pipe::Forward(_) => StepStage::DenseForward,
            Pipe::Head => StepStage::Head,
            Pipe::Reduce => StepStage::Reduce,
            Pipe::BackwardWeight(_) | Pipe::BackwardInput(_) => StepStage::DenseBackward,
            Pipe::Adam | Pipe::SumPartials => StepStage::Adam,
        }
    }
}

/// The stages of a training step, in order, as [`GpuTrainer::run_stage`]
/// times them: the dense stages cover every layer; `Head` is the mixture or
/// MSE head; `Adam` also sums the weight-gradient partials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepStage {
    Gather,
    DenseForward,
    Head,
    Reduce,
    DenseBackward,
    Adam,
}

/// One recorded dispatch of a step.
#[derive(Clone, Copy, Debug)]
struct Dispatch {
    pipe: Pipe,
    bind_group: usize,
    /// Whether the bind group takes the step's `StepInfo` dynamic offset.
    per_step: bool,
    groups: (u32, u32, u32),
}

pub struct GpuTrainer {
    ctx: Arc<GpuContext>,
    kernels: Arc<Kernels>,
    spec: ModelSpec,
    layout: ParamLayout,
    config: TrainConfig,
    order: BatchOrder,
    perm: wgpu::Buffer,
    params: wgpu::Buffer,
    saved: wgpu::Buffer,
    grads: wgpu::Buffer,
    loss_state: wgpu::Buffer,
    step_info: wgpu::Buffer,
    step_stride: u64,
    bind_groups: Vec<wgpu::BindGroup>,
    /// One step's dispatches, in order.
    plan: Vec<Dispatch>,
    /// The gradient-only variant of `plan`: Adam replaced by the gradient sum.
    gradient_plan: Vec<Dispatch>,
    ring_slots: usize,
    slot_epoch: Vec<Option<usize>>,
    prefetch: PermutationPrefetch,
    /// Where `take_loss` copies the loss state to read it (kept, so frequent
    /// readers such as the visualizer allocate nothing per read).
    loss_staging: wgpu::Buffer,
    splits: Vec<u32>,
    step: usize,
    // Kept alive for the bind groups; never touched again by the host.
    _resident: Vec<wgpu::Buffer>,
}

impl GpuTrainer {
    /// `data` must already be z-scored; `params` is the initial parameter
    /// vector. Builds the kernels for the adapter; use
    /// [`GpuTrainer::with_kernels`] to share them between trainers.
    pub fn new(
        ctx: Arc<GpuContext>,
        spec: &ModelSpec,
        data: &Dataset,
        params: Vec<f32>,
        config: &TrainConfig,
    ) -> Result<Self> {
        let kernels = Arc::new(Kernels::new(&ctx)?);
        Self::with_kernels(ctx, kernels, spec, data, params, config)
    }

    pub fn with_kernels(
        ctx: Arc<GpuContext>,
        kernels: Arc<Kernels>,
        spec: &ModelSpec,
        data: &Dataset,
        params: Vec<f32>,
        config: &TrainConfig,
    ) -> Result<Self> {
        let (layout, order) = check_trainer_inputs(spec, data, params.len(), config)?;
        let cfg = kernels.config;
        let b = order.batch;
        let rows = order.rows;
        let n = layout.len;
        let widths = spec.widths();
        let layers = layout.layers.len();
        let c = &*ctx;
        ctx.check()?;

        let inputs = storage_init(c, "training inputs", &data.inputs)?;
        let targets = storage_init(c, "training targets", &data.targets)?;
        let slot_bytes = rows as u64 * 4;
        let binding_limit = c.device.limits().max_storage_buffer_binding_size;
        let ring_slots =
            (RING_BYTES.min(binding_limit) / slot_bytes).clamp(1, MAX_RING_SLOTS as u64) as usize;
        let perm = storage(c, "epoch permutations", rows * ring_slots)?;
        let params_buf = storage_init(c, "parameters", &params)?;
        let saved = storage_init(c, "checkpoint", &params)?;
        let grads = storage(c, "gradient", n)?;
        let adam_m = storage(c, "adam m", n)?;
        let adam_v = storage(c, "adam v", n)?;
        let acts = widths
            .iter()
            .enumerate()
            .map(|(i, &w)| storage(c, &format!("activation {i}"), b * w))
            .collect::<Result<Vec<_>>>()?;
        let deltas = widths[1..]
            .iter()
            .enumerate()
            .map(|(i, &w)| storage(c, &format!("delta {i}"), b * w))
            .collect::<Result<Vec<_>>>()?;
        let batch_targets = storage(c, "batch targets", b * spec.out_dim)?;
        let row_loss = storage(c, "row loss", b)?;
        let loss_state = storage(c, "loss state", size_of::<LossState>() / 4)?;
        let loss_staging = staging(c, "loss readback", size_of::<LossState>() as u64);
        // Layer 0 has no layer below to send a gradient to; its binding
        // still needs a buffer of its own.
        let no_grad_in = storage(c, "no input gradient", 1)?;

        let splits = choose_splits(&cfg, &layout, b, binding_limit);
        let mut partial_offset = 0usize;
        let mut dense = Vec::with_capacity(layers);
        let mut adam_layers = Vec::with_capacity(layers);
        for (l, &s) in layout.layers.iter().zip(&splits) {
            let len = l.out_dim * (l.in_dim + 1);
            dense.push(DenseInfo::for_layer(l, b, s, partial_offset));
            adam_layers.push(AdamLayer {
                start: l.weight as u32,
                len: len as u32,
                splits: s,
                partial_offset: partial_offset as u32,
            });
            partial_offset += s as usize * len;
        }
        let partials = storage(c, "gradient partials", partial_offset)?;

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
        let uniforms = arena.finish(c, "trainer uniforms");

        let limits = c.device.limits();
        let step_stride = (size_of::<StepInfo>() as u64)
            .max(256)
            .next_multiple_of(limits.min_uniform_buffer_offset_alignment as u64);
        let step_info = c.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("step info"),
            size: step_stride * STEP_CAPACITY as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let step_binding = slot(
            &step_info,
            UniformSlot {
                offset: 0,
                size: size_of::<StepInfo>() as u64,
            },
        );

        let k = &kernels;
        let mut plan = Plan::default();
        let rows_groups = (b as u64).div_ceil(cfg.rows_wg as u64);
        plan.add(
            GatherBindings {
                perm: whole(&perm),
                inputs: whole(&inputs),
                targets: whole(&targets),
                batch_input: whole(&acts[0]),
                batch_target: whole(&batch_targets),
                info: slot(&uniforms, gather_slot),
                step: step_binding.clone(),
            }
            .bind(c, "gather", &k.gather.layout),
            Pipe::Gather,
            true,
            rows_groups,
            1,
        )?;
        for (i, l) in layout.layers.iter().enumerate() {
            let forward = Product::forward(l, b);
            plan.add(
                DenseForwardBindings {
                    params: whole(&params_buf),
                    input: whole(&acts[i]),
                    output: whole(&acts[i + 1]),
                    info: slot(&uniforms, dense_slots[i]),
                }
                .bind(c, "dense_forward", &k.dense_forward.layout),
                Pipe::Forward(cfg.matmul_shape(&forward)),
                false,
                cfg.matmul_groups(&forward),
                1,
            )?;
        }
        let head_kernel = &k.head(spec.head_kind()).loss;
        plan.add(
            HeadLossBindings {
                head: whole(&acts[layers]),
                targets: whole(&batch_targets),
                grad_head: whole(&deltas[layers - 1]),
                row_loss: whole(&row_loss),
                info: slot(&uniforms, head_slot),
            }
            .bind(c, "head", &head_kernel.layout),
            Pipe::Head,
            false,
            rows_groups,
            1,
        )?;
        plan.add(
            ReduceBindings {
                row_loss: whole(&row_loss),
                loss: whole(&loss_state),
                info: slot(&uniforms, reduce_slot),
            }
            .bind(c, "reduce", &k.reduce.layout),
            Pipe::Reduce,
            false,
            1,
            1,
        )?;
        for (i, l) in layout.layers.iter().enumerate().rev() {
            let grad_in = if i > 0 { &deltas[i - 1] } else { &no_grad_in };
            let bg = DenseBackwardBindings {
                params: whole(&params_buf),
                input: whole(&acts[i]),
                grad_out: whole(&deltas[i]),
                grad_in: whole(grad_in),
                partials: whole(&partials),
                info: slot(&uniforms, dense_slots[i]),
            }
            .bind(c, "dense_backward", &k.dense_backward.layout);
            let g = plan.bind(bg);
            let weight = Product::weight_gradient(l, b);
            let weight_groups = cfg.weight_gradient_groups(&weight);
            let weight_pipe = Pipe::BackwardWeight(cfg.matmul_shape(&weight));
            plan.dispatch(weight_pipe, g, false, weight_groups, splits[i])?;
            if i > 0 {
                let input = Product::input_gradient(l, b);
                let input_pipe = Pipe::BackwardInput(cfg.matmul_shape(&input));
                plan.dispatch(input_pipe, g, false, cfg.matmul_groups(&input), 1)?;
            }
        }
        plan.add(
            AdamBindings {
                params: whole(&params_buf),
                partials: whole(&partials),
                m_state: whole(&adam_m),
                v_state: whole(&adam_v),
                grads: whole(&grads),
                info: slot(&uniforms, adam_slot),
                step: step_binding,
            }
            .bind(c, "adam", &k.adam.layout),
            Pipe::Adam,
            true,
            (n as u64).div_ceil(cfg.adam_wg as u64),
            1,
        )?;
        let Plan {
            bind_groups,
            dispatches: plan,
        } = plan;
        let mut gradient_plan = plan.clone();
        if let Some(last) = gradient_plan.last_mut() {
            last.pipe = Pipe::SumPartials;
        }
        ctx.check()?;
        let resident = vec![
            inputs,
            targets,
            adam_m,
            adam_v,
            batch_targets,
            row_loss,
            no_grad_in,
            partials,
            uniforms,
        ]
        .into_iter()
        .chain(acts)
        .chain(deltas)
        .collect();
        Ok(GpuTrainer {
            ctx,
            kernels,
            spec: spec.clone(),
            layout,
            config: config.clone(),
            order: order.clone(),
            perm,
            params: params_buf,
            saved,
            grads,
            loss_state,
            step_info,
            step_stride,
            bind_groups,
            plan,
            gradient_plan,
            ring_slots,
            slot_epoch: vec![None; ring_slots],
            // As far ahead as the ring reaches: one submission may span
            // that many epochs.
            prefetch: PermutationPrefetch::new(order, ring_slots),
            loss_staging,
            splits,
            step: 0,
            _resident: resident,
        })
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    pub fn kernels(&self) -> &Arc<Kernels> {
        &self.kernels
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn batch_order(&self) -> &BatchOrder {
        &self.order
    }

    /// The live parameter buffer (flat, in `spec.layout()` order), for
    /// sampling or drawing without a readback.
    pub fn params_buffer(&self) -> &wgpu::Buffer {
        &self.params
    }

    /// Batch splits of each layer's weight-gradient pass.
    pub fn splits(&self) -> &[u32] {
        &self.splits
    }

    /// Dispatches recorded per training step.
    pub fn dispatches_per_step(&self) -> usize {
        self.plan.len()
    }

    /// Makes sure the permutation of `epoch` is in its ring slot; returns
    /// the slot. The write lands before the next submission, after every
    /// earlier one, so a slot can be reused as soon as the submission that
    /// read it was recorded.
    fn ensure_epoch(&mut self, epoch: usize) -> usize {
        let slot = epoch % self.ring_slots;
        if self.slot_epoch[slot] != Some(epoch) {
            let perm = self.prefetch.take(epoch);
            let offset = (slot * self.order.rows * 4) as u64;
            self.ctx
                .queue
                .write_buffer(&self.perm, offset, bytemuck::cast_slice(&perm));
            self.slot_epoch[slot] = Some(epoch);
        }
        slot
    }

    /// Records and submits `count` steps from the current one (at most
    /// [`STEP_CAPACITY`], spanning at most `ring_slots` epochs), with
    /// `plan` as the step's dispatches.
    fn submit_steps(&mut self, count: usize, gradient_only: bool) -> Result<()> {
        let mut records = vec![0u8; count * self.step_stride as usize];
        for i in 0..count {
            let step = self.step + i;
            let (epoch, index) = self.order.locate(step);
            let slot = self.ensure_epoch(epoch);
            let start = slot * self.order.rows + index * self.order.batch;
            let info = StepInfo::new(start as u32, &self.config.adam_step(step));
            let at = i * self.step_stride as usize;
            records[at..at + size_of::<StepInfo>()].copy_from_slice(bytemuck::bytes_of(&info));
        }
        self.ctx.queue.write_buffer(&self.step_info, 0, &records);
        let plan = if gradient_only {
            &self.gradient_plan
        } else {
            &self.plan
        };
        let encoder = self.record(plan, count, true);
        self.ctx.queue.submit([encoder.finish()]);
        // Frees finished submissions' staging memory without blocking.
        let _ = self.ctx.device.poll(wgpu::PollType::Poll);
        self.ctx.check()?;
        Ok(())
    }

    /// A command buffer with `dispatches` recorded `times` times in one
    /// compute pass; repetition `i` reads step record `i` when
    /// `per_step_records`, else record 0.
    fn record(
        &self,
        dispatches: &[Dispatch],
        times: usize,
        per_step_records: bool,
    ) -> wgpu::CommandEncoder {
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("training steps"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("training steps"),
                timestamp_writes: None,
            });
            let k = &*self.kernels;
            for i in 0..times {
                let record = if per_step_records { i as u64 } else { 0 };
                let offset = [(record * self.step_stride) as u32];
                for d in dispatches {
                    let pipeline = match d.pipe {
                        Pipe::Gather => &k.gather.pipeline,
                        Pipe::Forward(shape) => k.dense_forward.pipelines.get(shape),
                        Pipe::Head => &k.head(self.spec.head_kind()).loss.pipeline,
                        Pipe::Reduce => &k.reduce.pipeline,
                        Pipe::BackwardWeight(shape) => k.dense_backward.weight.get(shape),
                        Pipe::BackwardInput(shape) => k.dense_backward.input.get(shape),
                        Pipe::Adam => &k.adam.adam,
                        Pipe::SumPartials => &k.adam.sum_partials,
                    };
                    pass.set_pipeline(pipeline);
                    let offsets: &[u32] = if d.per_step { &offset } else { &[] };
                    pass.set_bind_group(0, &self.bind_groups[d.bind_group], offsets);
                    let (x, y, z) = d.groups;
                    pass.dispatch_workgroups(x, y, z);
                }
            }
        }
        encoder
    }

    /// For per-stage timing (`benches/stages.rs`): records the dispatches
    /// of one stage of the step (every layer's, for the dense stages)
    /// `times` times, at most 256 per submission, submits them and waits for
    /// the queue. The stage reads what the last step left in the buffers
    /// and the first step record; the step counter does not move. Run a
    /// step first so the buffers hold real values.
    pub fn run_stage(&mut self, stage: StepStage, times: usize) -> Result<()> {
        const PER_SUBMISSION: usize = 256;
        let dispatches: Vec<Dispatch> = self
            .plan
            .iter()
            .filter(|d| d.pipe.stage() == stage)
            .copied()
            .collect();
        let mut left = times;
        while left > 0 {
            let now = left.min(PER_SUBMISSION);
            let encoder = self.record(&dispatches, now, false);
            self.ctx.queue.submit([encoder.finish()]);
            left -= now;
        }
        self.ctx.wait_idle("the GPU")?;
        Ok(())
    }

    /// How many of the next `wanted` steps one submission can take.
    fn chunk_len(&self, wanted: usize) -> usize {
        let (epoch, _) = self.order.locate(self.step);
        let ring_end = (epoch + self.ring_slots) * self.order.steps_per_epoch();
        wanted.min(STEP_CAPACITY).min(ring_end - self.step).max(1)
    }

    /// Forward and backward for the current minibatch, without the update
    /// or advancing the step (like `CpuTrainer::compute_gradients`, and like
    /// it adding the batch loss to the accumulator); returns the gradient.
    pub fn compute_gradients(&mut self) -> Result<Vec<f32>> {
        self.submit_steps(1, true)?;
        read_f32(&self.ctx, &self.grads, self.layout.len)
    }

    /// Samples the model at the current parameters: `inputs` `[rows, in]`
    /// z-scored, result `[rows · per_input, D]` z-scored, as
    /// `cpu::sample::sample` on the head outputs.
    pub fn sample(&mut self, inputs: &[f32], p: &SampleParams) -> Result<Vec<f32>> {
        let rows = inputs.len() / self.spec.in_dim.max(1);
        let sampler = GpuSampler::new(
            Arc::clone(&self.ctx),
            Arc::clone(&self.kernels),
            &self.spec,
            &self.params,
            rows,
            p.per_input,
        )?;
        sampler.set_inputs(inputs)?;
        sampler.set_options(p.seed, p.temperature)?;
        sampler.run()?;
        sampler.read_samples()
    }

    /// Layer layout the buffers follow.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }
}

impl Trainer for GpuTrainer {
    fn step(&self) -> usize {
        self.step
    }

    fn run(&mut self, n: usize) -> Result<()> {
        let mut left = n;
        while left > 0 {
            let count = self.chunk_len(left);
            self.submit_steps(count, false)?;
            self.step += count;
            left -= count;
        }
        Ok(())
    }

    fn take_loss(&mut self) -> Result<LossAccumulator> {
        let state = &self.loss_state;
        let size = size_of::<LossState>() as u64;
        let bytes = read_back_with(&self.ctx, state, 0, size, &self.loss_staging, |enc| {
            enc.clear_buffer(state, 0, None);
        })?;
        let state: LossState = bytemuck::pod_read_unaligned(&bytes);
        Ok(state.accumulator())
    }

    fn checkpoint(&mut self) -> Result<()> {
        self.copy_params(true)
    }

    fn restore_checkpoint(&mut self) -> Result<()> {
        self.copy_params(false)
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        read_f32(&self.ctx, &self.params, self.layout.len)
    }

    fn device_name(&self) -> String {
        format!("gpu: {} ({})", self.ctx.info.name, self.ctx.backend_name())
    }
}

impl GpuTrainer {
    /// Copies parameters to (`save`) or from the checkpoint buffer, on the
    /// GPU and without waiting.
    fn copy_params(&mut self, save: bool) -> Result<()> {
        let (src, dst) = if save {
            (&self.params, &self.saved)
        } else {
            (&self.saved, &self.params)
        };
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("checkpoint"),
            });
        encoder.copy_buffer_to_buffer(src, 0, dst, 0, self.layout.len as u64 * 4);
        self.ctx.queue.submit([encoder.finish()]);
        self.ctx.check()?;
        Ok(())
    }
}

/// A step's bind groups and dispatches, in recording order.
#[derive(Default)]
struct Plan {
    bind_groups: Vec<wgpu::BindGroup>,
    dispatches: Vec<Dispatch>,
}

impl Plan {
    fn bind(&mut self, bg: wgpu::BindGroup) -> usize {
        self.bind_groups.push(bg);
        self.bind_groups.len() - 1
    }

    fn dispatch(
        &mut self,
        pipe: Pipe,
        bind_group: usize,
        per_step: bool,
        groups: u64,
        z: u32,
    ) -> Result<()> {
        let (x, y) = grid(groups)?;
        self.dispatches.push(Dispatch {
            pipe,
            bind_group,
            per_step,
            groups: (x, y, z),
        });
        Ok(())
    }

    /// A bind group used by a single dispatch.
    fn add(
        &mut self,
        bg: wgpu::BindGroup,
        pipe: Pipe,
        per_step: bool,
        groups: u64,
        z: u32,
    ) -> Result<()> {
        let g = self.bind(bg);
        self.dispatch(pipe, g, per_step, groups, z)
    }
}

/// Splits of the batch for each layer's weight-gradient pass: enough that
/// about `target_invocations` run at once (a 1→64 layer alone is a handful
/// of tiles, however big the batch), each split at least `min_split_rows`
/// rows, and all partials within budget. Every split gets rows: the count
/// is recomputed from the rows per split.
pub fn choose_splits(
    cfg: &KernelConfig,
    layout: &ParamLayout,
    batch: usize,
    binding_limit: u64,
) -> Vec<u32> {
    let max_splits = (batch / cfg.min_split_rows as usize).max(1);
    let mut splits: Vec<usize> = layout
        .layers
        .iter()
        .map(|l| {
            let busy = cfg
                .matmul_invocations(&Product::weight_gradient(l, batch))
                .max(1);
            (cfg.target_invocations as u64)
                .div_ceil(busy)
                .min(max_splits as u64)
                .max(1) as usize
        })
        .collect();
    let budget = PARTIAL_BYTES.min(binding_limit) / 4;
    let total = |s: &[usize]| -> u64 {
        s.iter()
            .zip(&layout.layers)
            .map(|(&s, l)| (s * l.out_dim * (l.in_dim + 1)) as u64)
            .sum()
    };
    while total(&splits) > budget && splits.iter().any(|&s| s > 1) {
        for s in &mut splits {
            *s = (*s / 2).max(1);
        }
    }
    splits
        .into_iter()
        .map(|s| {
            let rows = batch.div_ceil(s);
            batch.div_ceil(rows) as u32
        })
        .collect()
}
