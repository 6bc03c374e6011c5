//! The GPU trainer: the CPU trainer's stages (src/cpu/trainer.rs) as
//! compute dispatches, with data, parameters, gradients and Adam state
//! resident on the device.
//!
//! One step is `3·L + 2` dispatches for L layers: gather, L forward, the
//! head, L weight-gradient and L − 1 input-gradient passes, Adam (whose
//! dispatch also adds the batch loss up, in a workgroup of its own).
//! Networks that qualify (`gpu::fused`) run the fused step instead: one
//! dispatch for gather to weight gradients, then Adam. Per-step values
//! (where the batch starts in the permutation ring, the Adam constants)
//! are `StepInfo` records in a uniform buffer,
//! written before the submission and picked per dispatch by a dynamic
//! offset, so `run(n)` records up to [`STEP_CAPACITY`] steps into one command
//! buffer and never waits. Epoch permutations come from the same
//! [`BatchOrder`] as the CPU's and go into a ring of slots, so both trainers
//! see the same minibatches. The loss stays in a `LossState` buffer until
//! [`Trainer::take_loss`] reads and clears it: the only readback of
//! training.
//!
//! [`GpuTrainer::many`] trains M models of one shape at once (a sweep's
//! seeds and learning rates): every dispatch of the fused step serves all
//! of them (the model is the workgroup grid's z), so one submission steps
//! every model. Each model has its own initial parameters, epoch order and
//! learning rate, and ends where training it alone would, but for rounding.

use std::sync::Arc;

mod plan;
mod profile;
mod profiler;
mod resident;

pub use plan::StepStage;
use profile::Timing;
pub use profile::{DispatchTime, StepProfile};
use resident::bytes_per_model;
pub use resident::{STEP_CAPACITY, choose_splits};

use plan::{Dispatch, Pipe, Plan, record_fused_step, record_step};
use resident::Resident;

use super::buffers::{read_back_with, read_f32};
use super::config::KernelConfig;
use super::context::GpuContext;
use super::fused::FusedShape;
use super::kernels::Kernels;
use super::layouts::{LossState, StepInfo};
use super::loop_budget::loop_budget;
use super::prefetch::PermutationPrefetch;
use super::sampler::GpuSampler;
use super::tuned::JobShape;
use crate::data::Dataset;
use crate::error::{MdnError, Result};
use crate::head::SampleParams;
use crate::model::{ModelSpec, ParamLayout};
use crate::train::together::ManyTrainer;
use crate::train::{
    BatchOrder, LossAccumulator, TrainConfig, Trainer, check_state_lengths, check_trainer_inputs,
};

/// The models a trainer starts from: each one's parameters, learning-rate
/// multiple and epoch order (empty: the configuration's, for one model).
struct ModelInits {
    params: Vec<Vec<f32>>,
    model_lr: Vec<f32>,
    orders: Vec<BatchOrder>,
    /// Take the fused step even where the configuration turns it off.
    force_fused: bool,
}

impl ModelInits {
    fn one(params: Vec<f32>) -> Self {
        ModelInits {
            params: vec![params],
            model_lr: vec![1.0],
            orders: Vec::new(),
            force_fused: false,
        }
    }
}

/// A streamed trainer's rows, z-scored, and the current epoch's order.
struct Streamed {
    data: Dataset,
    epoch: Option<(usize, Vec<u32>)>,
}

pub struct GpuTrainer {
    ctx: Arc<GpuContext>,
    kernels: Arc<Kernels>,
    spec: ModelSpec,
    layout: ParamLayout,
    config: TrainConfig,
    order: BatchOrder,
    /// Boxed: a trainer is moved around (the visualizer swaps them), its
    /// buffers stay put.
    res: Box<Resident>,
    bind_groups: Vec<wgpu::BindGroup>,
    /// One step's dispatches, in order.
    plan: Vec<Dispatch>,
    /// The gradient-only variant of `plan`: Adam replaced by the gradient sum.
    gradient_plan: Vec<Dispatch>,
    slot_epoch: Vec<Option<usize>>,
    /// Each model's epoch shuffles (its own seed).
    prefetch: Vec<PermutationPrefetch>,
    /// The host's copy of the rows when they stream (data larger than a
    /// storage binding), with the epoch permutation in use.
    streamed: Option<Streamed>,
    /// The training rows' columns, for [`Trainer::into_data`].
    names: Dataset,
    step: usize,
    /// Why the per-stage path runs (`None`: the fused step runs).
    not_fused: Option<String>,
}

impl GpuTrainer {
    /// `data` must already be z-scored; `params` is the initial parameter
    /// vector. Builds the kernels for the adapter and this job
    /// ([`Kernels::for_job`]); use
    /// [`GpuTrainer::with_kernels`] to share them between trainers.
    pub fn new(
        ctx: Arc<GpuContext>,
        spec: &ModelSpec,
        data: &Dataset,
        params: Vec<f32>,
        config: &TrainConfig,
    ) -> Result<Self> {
        let job = JobShape::new(spec, config.batch, data.len(), 1);
        let kernels = Kernels::for_job(&ctx, &job, &[])?;
        Self::with_kernels(ctx, kernels, spec, data, params, config)
    }

    /// A trainer of several models of `spec` on the same `data` (z-scored),
    /// stepped together: `models` holds each one's initial parameters and
    /// configuration, which may differ in `seed` and `lr` only. Needs the
    /// fused step (whatever `fused=` says: it is the one path with a model
    /// dimension) and data resident in one storage binding; where `spec` or
    /// the data do not allow it, the error says why and the caller trains
    /// the models one by one.
    pub fn many(
        ctx: Arc<GpuContext>,
        kernels: Arc<Kernels>,
        spec: &ModelSpec,
        data: &Dataset,
        models: Vec<(Vec<f32>, TrainConfig)>,
    ) -> Result<Self> {
        let Some((_, first)) = models.first() else {
            return Err(MdnError::Config(
                "a trainer needs at least one model".into(),
            ));
        };
        if let Some((_, c)) = models.iter().find(|(_, c)| {
            (c.steps, c.batch, c.schedule) != (first.steps, first.batch, first.schedule)
        }) {
            return Err(MdnError::Config(format!(
                "models trained together share steps, batch and schedule ({} / {} / {:?} vs {} / {} / {:?})",
                first.steps, first.batch, first.schedule, c.steps, c.batch, c.schedule
            )));
        }
        // The step records carry the schedule's factor; each model's own
        // rate multiplies it in `adam.wgsl`.
        let shared = TrainConfig {
            lr: 1.0,
            ..first.clone()
        };
        let mut lrs = Vec::with_capacity(models.len());
        let mut orders = Vec::with_capacity(models.len());
        let mut params = Vec::with_capacity(models.len());
        for (p, c) in models {
            let (_, order) = check_trainer_inputs(spec, data, p.len(), &c)?;
            lrs.push(c.lr as f32);
            orders.push(order);
            params.push(p);
        }
        let init = ModelInits {
            params,
            model_lr: lrs,
            orders,
            force_fused: true,
        };
        Self::build(ctx, kernels, spec, data, init, &shared, true)
    }

    /// The most models of `spec`, up to `wanted`, that one
    /// [`GpuTrainer::many`] holds on this device, training on `rows` rows
    /// in minibatches of `batch`: every buffer that grows with the models
    /// must fit one storage binding. 0 where the fused step does not take
    /// `spec` (`many` then says why).
    pub fn models_that_fit(
        ctx: &GpuContext,
        kernels: &Kernels,
        spec: &ModelSpec,
        rows: usize,
        batch: usize,
        wanted: usize,
    ) -> usize {
        let layout = spec.layout();
        let limits = ctx.device.limits();
        let cfg = KernelConfig {
            fused: true,
            ..kernels.config
        };
        let batch = batch.clamp(1, rows.max(1));
        let workgroup_bytes = limits.max_compute_workgroup_storage_size;
        let budget = loop_budget(&ctx.info);
        let fits = |models: usize| {
            FusedShape::plan(&cfg, spec, &layout, batch, workgroup_bytes, budget, models).is_ok_and(
                |shape| {
                    let each = bytes_per_model(&layout, &shape, rows, batch);
                    each * models as u64 <= limits.max_storage_buffer_binding_size
                },
            )
        };
        (1..=wanted).rev().find(|&m| fits(m)).unwrap_or(0)
    }

    /// Like [`GpuTrainer::new`], taking the data: a streamed trainer (data
    /// larger than a storage binding) keeps it instead of a copy. On an
    /// error the data comes back, for a fallback to the CPU.
    pub fn from_owned(
        ctx: Arc<GpuContext>,
        spec: &ModelSpec,
        data: Dataset,
        params: Vec<f32>,
        config: &TrainConfig,
    ) -> std::result::Result<Self, (crate::error::MdnError, Box<Dataset>)> {
        let job = JobShape::new(spec, config.batch, data.len(), 1);
        let kernels = match Kernels::for_job(&ctx, &job, &[]) {
            Ok(k) => k,
            Err(e) => return Err((e, Box::new(data))),
        };
        let init = ModelInits::one(params);
        match Self::build(ctx, kernels, spec, &data, init, config, false) {
            Ok(mut t) => {
                if let Some(st) = &mut t.streamed {
                    st.data = data;
                }
                Ok(t)
            }
            Err(e) => Err((e, Box::new(data))),
        }
    }

    pub fn with_kernels(
        ctx: Arc<GpuContext>,
        kernels: Arc<Kernels>,
        spec: &ModelSpec,
        data: &Dataset,
        params: Vec<f32>,
        config: &TrainConfig,
    ) -> Result<Self> {
        let init = ModelInits::one(params);
        Self::build(ctx, kernels, spec, data, init, config, true)
    }

    /// `copy`: a streamed trainer copies `data` (else the caller moves it
    /// in afterwards).
    fn build(
        ctx: Arc<GpuContext>,
        kernels: Arc<Kernels>,
        spec: &ModelSpec,
        data: &Dataset,
        init: ModelInits,
        config: &TrainConfig,
        copy: bool,
    ) -> Result<Self> {
        let (layout, order) = check_trainer_inputs(spec, data, init.params[0].len(), config)?;
        ctx.check()?;
        let workgroup_bytes = ctx.device.limits().max_compute_workgroup_storage_size;
        let fused_cfg = KernelConfig {
            fused: kernels.config.fused || init.force_fused,
            ..kernels.config
        };
        let models = init.params.len();
        let fused = FusedShape::plan(
            &fused_cfg,
            spec,
            &layout,
            order.batch,
            workgroup_bytes,
            loop_budget(&ctx.info),
            models,
        );
        if let (true, Err(why)) = (init.force_fused, &fused) {
            return Err(MdnError::Config(format!(
                "no fused step for these models: {why}"
            )));
        }
        let res = Box::new(Resident::new(
            &ctx,
            &kernels.config,
            spec,
            &layout,
            &order,
            data,
            &init.params,
            &init.model_lr,
            fused.as_ref().ok(),
        )?);
        let Plan {
            bind_groups,
            dispatches: plan,
        } = match &fused {
            Ok(shape) => record_fused_step(&ctx, &kernels, spec, &layout, shape, &res)?,
            Err(_) => record_step(&ctx, &kernels, spec, &layout, order.batch, &res)?,
        };
        let mut gradient_plan = plan.clone();
        if let Some(last) = gradient_plan.last_mut() {
            last.pipe = Pipe::SumPartials;
        }
        ctx.check()?;
        Ok(GpuTrainer {
            ctx,
            kernels,
            spec: spec.clone(),
            layout,
            config: config.clone(),
            slot_epoch: vec![None; res.ring_slots],
            streamed: res.window_steps.map(|_| Streamed {
                data: if copy {
                    data.clone()
                } else {
                    data.clone_names()
                },
                epoch: None,
            }),
            names: data.clone_names(),
            // As far ahead as the ring reaches: one submission may span
            // that many epochs.
            prefetch: if init.orders.is_empty() {
                vec![order.clone()]
            } else {
                init.orders
            }
            .into_iter()
            .map(|o| PermutationPrefetch::new(o, res.ring_slots))
            .collect(),
            order,
            res,
            bind_groups,
            plan,
            gradient_plan,
            step: 0,
            not_fused: fused.err(),
        })
    }

    /// Whether steps run fused (`gpu::fused`) rather than per stage.
    pub fn is_fused(&self) -> bool {
        self.not_fused.is_none()
    }

    /// Why the per-stage path runs, or `None` when the fused step does.
    pub fn why_not_fused(&self) -> Option<&str> {
        self.not_fused.as_deref()
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
        &self.res.params
    }

    /// Batch splits of each layer's weight-gradient pass (on the fused
    /// path: the fused step's workgroups, one gradient slice each).
    pub fn splits(&self) -> &[u32] {
        &self.res.splits
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
        let slot = epoch % self.res.ring_slots;
        if self.slot_epoch[slot] != Some(epoch) {
            let ring = self.res.ring_slots * self.order.rows;
            for (m, prefetch) in self.prefetch.iter_mut().enumerate() {
                let perm = prefetch.take(epoch);
                let offset = ((m * ring + slot * self.order.rows) * 4) as u64;
                self.ctx
                    .queue
                    .write_buffer(&self.res.perm, offset, bytemuck::cast_slice(&perm));
            }
            self.slot_epoch[slot] = Some(epoch);
        }
        slot
    }

    /// Streamed: copies the rows the next `count` steps read, in step
    /// order, into the window buffers (after every earlier submission, like
    /// the permutation writes). The minibatches are the resident trainer's:
    /// the same epoch permutations, cut the same way.
    fn upload_window(&mut self, count: usize) {
        let b = self.order.batch;
        let (din, dout) = (self.spec.in_dim, self.spec.out_dim);
        let mut inputs = Vec::with_capacity(count * b * din);
        let mut targets = Vec::with_capacity(count * b * dout);
        for i in 0..count {
            let (epoch, index) = self.order.locate(self.step + i);
            let st = self.streamed.as_mut().expect("a streamed trainer");
            if st.epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
                st.epoch = Some((epoch, self.prefetch[0].take(epoch)));
            }
            let (_, perm) = st.epoch.as_ref().expect("set above");
            for &r in &perm[index * b..(index + 1) * b] {
                let r = r as usize;
                inputs.extend_from_slice(&st.data.inputs[r * din..(r + 1) * din]);
                targets.extend_from_slice(&st.data.targets[r * dout..(r + 1) * dout]);
            }
        }
        let q = &self.ctx.queue;
        q.write_buffer(&self.res.inputs, 0, bytemuck::cast_slice(&inputs));
        q.write_buffer(&self.res.targets, 0, bytemuck::cast_slice(&targets));
    }

    /// Whether the training rows stream per submission instead of staying
    /// resident (data larger than one storage binding, or `stream=on`).
    pub fn is_streamed(&self) -> bool {
        self.streamed.is_some()
    }

    /// Records and submits `count` steps from the current one (at most
    /// [`STEP_CAPACITY`], spanning at most `ring_slots` epochs), with
    /// `plan` as the step's dispatches.
    fn submit_steps(&mut self, count: usize, gradient_only: bool) -> Result<()> {
        self.write_step_records(count);
        let plan = if gradient_only {
            &self.gradient_plan
        } else {
            &self.plan
        };
        let encoder = self.record(plan, count, true, Timing::Off);
        self.ctx.queue.submit([encoder.finish()]);
        // Frees finished submissions' staging memory without blocking.
        let _ = self.ctx.device.poll(wgpu::PollType::Poll);
        self.ctx.check()?;
        Ok(())
    }

    /// Writes the `StepInfo` records of the next `count` steps (and, when
    /// the rows stream, their rows) ahead of the submission that runs them.
    fn write_step_records(&mut self, count: usize) {
        let mut records = vec![0u8; count * self.res.step_stride as usize];
        if self.streamed.is_some() {
            self.upload_window(count);
        }
        for i in 0..count {
            let step = self.step + i;
            let start = if self.streamed.is_some() {
                // The window holds the steps' rows in step order.
                i * self.order.batch
            } else {
                let (epoch, index) = self.order.locate(step);
                let slot = self.ensure_epoch(epoch);
                slot * self.order.rows + index * self.order.batch
            };
            let info = StepInfo::new(start as u32, &self.config.adam_step(step));
            let at = i * self.res.step_stride as usize;
            records[at..at + size_of::<StepInfo>()].copy_from_slice(bytemuck::bytes_of(&info));
        }
        self.ctx
            .queue
            .write_buffer(&self.res.step_info, 0, &records);
    }

    /// A command buffer with `dispatches` recorded `times` times; repetition
    /// `i` reads step record `i` when `per_step_records`, else record 0.
    /// Training records them all in one compute pass; `timing` asks for
    /// GPU timestamps around every dispatch (a pass each) or around the
    /// whole pass.
    fn record(
        &self,
        dispatches: &[Dispatch],
        times: usize,
        per_step_records: bool,
        timing: Timing<'_>,
    ) -> wgpu::CommandEncoder {
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("training steps"),
            });
        let begin = |encoder: &mut wgpu::CommandEncoder, at: Option<(&wgpu::QuerySet, u32)>| {
            encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("training steps"),
                    timestamp_writes: at.map(|(query_set, i)| wgpu::ComputePassTimestampWrites {
                        query_set,
                        beginning_of_pass_write_index: Some(i),
                        end_of_pass_write_index: Some(i + 1),
                    }),
                })
                .forget_lifetime()
        };
        let mut pass = match timing {
            Timing::PerDispatch(_) => None,
            Timing::Off => Some(begin(&mut encoder, None)),
            Timing::WholePass(q) => Some(begin(&mut encoder, Some((q, 0)))),
        };
        for i in 0..times {
            let record = if per_step_records { i as u64 } else { 0 };
            let offset = [(record * self.res.step_stride) as u32];
            for (j, d) in dispatches.iter().enumerate() {
                let mut own = match timing {
                    Timing::PerDispatch(q) => {
                        let at = 2 * (i * dispatches.len() + j) as u32;
                        Some(begin(&mut encoder, Some((q, at))))
                    }
                    _ => None,
                };
                let pass = own
                    .as_mut()
                    .or(pass.as_mut())
                    .expect("a pass per dispatch or one for all");
                pass.set_pipeline(self.pipeline(d.pipe));
                let offsets: &[u32] = if d.per_step { &offset } else { &[] };
                pass.set_bind_group(0, &self.bind_groups[d.bind_group], offsets);
                let (x, y, z) = d.groups;
                pass.dispatch_workgroups(x, y, z);
            }
        }
        drop(pass);
        encoder
    }

    fn pipeline(&self, pipe: Pipe) -> &wgpu::ComputePipeline {
        let k = &*self.kernels;
        match pipe {
            Pipe::Gather => &k.gather.pipeline,
            Pipe::Forward(shape) => k.dense_forward.pipelines.get(shape),
            Pipe::Head => &k.head(self.spec.head_kind()).loss.pipeline,
            Pipe::BackwardWeight(shape) => k.dense_backward.weight.get(shape),
            Pipe::BackwardInput(shape) => k.dense_backward.input.get(shape),
            Pipe::Adam => &k.adam.adam,
            Pipe::SumPartials => &k.adam.sum_partials,
            Pipe::Fused => {
                let kernel = k.fused(self.spec.head_kind());
                &kernel.expect("a fused plan has a fused kernel").pipeline
            }
        }
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
            let encoder = self.record(&dispatches, now, false, Timing::Off);
            self.ctx.queue.submit([encoder.finish()]);
            left -= now;
        }
        self.ctx.wait_idle("the GPU")?;
        Ok(())
    }

    /// How many of the next `wanted` steps one submission can take.
    fn chunk_len(&self, wanted: usize) -> usize {
        if let Some(w) = self.res.window_steps {
            return wanted.min(w).max(1);
        }
        let (epoch, _) = self.order.locate(self.step);
        let ring_end = (epoch + self.res.ring_slots) * self.order.steps_per_epoch();
        wanted.min(STEP_CAPACITY).min(ring_end - self.step).max(1)
    }

    /// Forward and backward for the current minibatch, without the update
    /// or advancing the step (like `CpuTrainer::compute_gradients`, and like
    /// it adding the batch loss to the accumulator); returns the gradient.
    pub fn compute_gradients(&mut self) -> Result<Vec<f32>> {
        self.submit_steps(1, true)?;
        read_f32(&self.ctx, &self.res.grads, self.layout.len)
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
            &self.res.params,
            rows,
            p.per_input,
        )?;
        sampler.set_inputs(inputs)?;
        sampler.set_options(p.seed, p.temperature)?;
        sampler.run()?;
        sampler.read_samples()
    }

    /// Each row's loss in the last step's minibatch (z-scored units), as
    /// the head wrote them for the loss reduction; for tests comparing the
    /// fused and per-stage forward passes.
    pub fn row_losses(&self) -> Result<Vec<f32>> {
        read_f32(&self.ctx, &self.res.row_loss, self.order.batch)
    }

    /// Layer layout the buffers follow.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// Models stepped together (1 but for [`GpuTrainer::many`]).
    pub fn models(&self) -> usize {
        self.res.models
    }

    /// Each model's loss since the last read, which clears them: one
    /// readback for all.
    pub fn take_losses(&mut self) -> Result<Vec<LossAccumulator>> {
        let state = &self.res.loss_state;
        let size = (self.res.models * size_of::<LossState>()) as u64;
        let bytes = read_back_with(&self.ctx, state, 0, size, &self.res.loss_staging, |enc| {
            enc.clear_buffer(state, 0, None);
        })?;
        Ok(bytes
            .chunks_exact(size_of::<LossState>())
            .map(|b| bytemuck::pod_read_unaligned::<LossState>(b).accumulator())
            .collect())
    }

    /// Every model's parameters, one readback.
    pub fn all_params(&mut self) -> Result<Vec<Vec<f32>>> {
        let n = self.layout.len;
        let flat = read_f32(&self.ctx, &self.res.params, n * self.res.models)?;
        Ok(flat.chunks_exact(n).map(<[f32]>::to_vec).collect())
    }

    /// Stops updating model `m` (its parameters and moments stay as they
    /// are) while the others train on: a sweep's early-stopped model. With
    /// `restore`, its parameters go back to the last checkpoint first (a
    /// diverged one).
    pub fn freeze(&mut self, m: usize, restore: bool) -> Result<()> {
        assert!(m < self.res.models, "model {m} of {}", self.res.models);
        let q = &self.ctx.queue;
        q.write_buffer(
            &self.res.model_lr,
            (m * 4) as u64,
            bytemuck::bytes_of(&0.0f32),
        );
        if restore {
            let bytes = self.layout.len as u64 * 4;
            let at = m as u64 * bytes;
            let mut encoder =
                self.ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("restore one model"),
                    });
            encoder.copy_buffer_to_buffer(&self.res.saved, at, &self.res.params, at, bytes);
            q.submit([encoder.finish()]);
        }
        Ok(self.ctx.check()?)
    }

    /// The [`Trainer`] methods that read or write one model's state take a
    /// trainer of one model; `many`'s have per-model twins.
    fn only_model(&self, what: &str) -> Result<()> {
        if self.res.models == 1 {
            Ok(())
        } else {
            Err(MdnError::Config(format!(
                "{what} reads one model; this trainer has {} (use all_params)",
                self.res.models
            )))
        }
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

    /// With several models, every model's loss merged (`take_losses`
    /// keeps them apart).
    fn take_loss(&mut self) -> Result<LossAccumulator> {
        let mut all = LossAccumulator::default();
        for l in self.take_losses()? {
            all.merge(&l);
        }
        Ok(all)
    }

    fn checkpoint(&mut self) -> Result<()> {
        self.copy_params(true)
    }

    fn restore_checkpoint(&mut self) -> Result<()> {
        self.copy_params(false)
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        self.only_model("params")?;
        read_f32(&self.ctx, &self.res.params, self.layout.len)
    }

    fn optimizer_state(&mut self) -> Result<(Vec<f32>, Vec<f32>)> {
        self.only_model("optimizer_state")?;
        let n = self.layout.len;
        Ok((
            read_f32(&self.ctx, &self.res.adam_m, n)?,
            read_f32(&self.ctx, &self.res.adam_v, n)?,
        ))
    }

    fn restore_state(&mut self, params: &[f32], m: &[f32], v: &[f32], step: usize) -> Result<()> {
        self.only_model("restore_state")?;
        check_state_lengths(self.layout.len, params, m, v)?;
        let q = &self.ctx.queue;
        for (buffer, values) in [
            (&self.res.params, params),
            (&self.res.saved, params),
            (&self.res.adam_m, m),
            (&self.res.adam_v, v),
        ] {
            q.write_buffer(buffer, 0, bytemuck::cast_slice(values));
        }
        self.step = step;
        Ok(self.ctx.check()?)
    }

    fn device_name(&self) -> String {
        format!("gpu: {} ({})", self.ctx.info.name, self.ctx.backend_name())
    }

    /// Streamed, the host's rows; resident, the rows read back from the
    /// device (the host kept none while training).
    fn into_data(self: Box<Self>) -> Result<Dataset> {
        let mut t = *self;
        if let Some(st) = t.streamed.take() {
            return Ok(st.data);
        }
        let rows = t.order.rows;
        Ok(Dataset {
            inputs: read_f32(&t.ctx, &t.res.inputs, rows * t.spec.in_dim)?,
            targets: read_f32(&t.ctx, &t.res.targets, rows * t.spec.out_dim)?,
            ..t.names
        })
    }
}

impl ManyTrainer for GpuTrainer {
    fn models(&self) -> usize {
        self.res.models
    }
    fn step(&self) -> usize {
        self.step
    }
    fn run(&mut self, n: usize) -> Result<()> {
        Trainer::run(self, n)
    }
    fn take_losses(&mut self) -> Result<Vec<LossAccumulator>> {
        GpuTrainer::take_losses(self)
    }
    fn all_params(&mut self) -> Result<Vec<Vec<f32>>> {
        GpuTrainer::all_params(self)
    }
    fn checkpoint(&mut self) -> Result<()> {
        self.copy_params(true)
    }
    fn freeze(&mut self, m: usize, restore: bool) -> Result<()> {
        GpuTrainer::freeze(self, m, restore)
    }
}

impl GpuTrainer {
    /// Copies parameters to (`save`) or from the checkpoint buffer, on the
    /// GPU and without waiting.
    fn copy_params(&mut self, save: bool) -> Result<()> {
        let (src, dst) = if save {
            (&self.res.params, &self.res.saved)
        } else {
            (&self.res.saved, &self.res.params)
        };
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("checkpoint"),
            });
        let bytes = (self.layout.len * self.res.models) as u64 * 4;
        encoder.copy_buffer_to_buffer(src, 0, dst, 0, bytes);
        self.ctx.queue.submit([encoder.finish()]);
        self.ctx.check()?;
        Ok(())
    }
}
