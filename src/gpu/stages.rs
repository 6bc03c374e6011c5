//! Each shader stage run once on host data, with the same argument order
//! as its CPU twin in `src/cpu/` (the heads': `src/head/`): the parity tests compare the two stage by
//! stage, and a wrong stage can be found by running the others on the CPU.
//! Every call uploads, dispatches and reads back, so these are for tests and
//! debugging, not for training.

use super::bindings::{
    AdamBindings, DenseBackwardBindings, DenseForwardBindings, GatherBindings, HeadLossBindings,
    HeadSampleBindings, ReduceBindings,
};
use super::buffers::{
    UniformArena, UniformSlot, grid, read_back, read_f32, read_u32, slot, storage, storage_init,
    whole,
};
use super::context::GpuContext;
use super::kernels::{Kernels, adam_info};
use super::layouts::{
    AdamLayer, DenseInfo, GatherInfo, HeadInfo, LossState, ReduceInfo, SampleInfo, StepInfo,
};
use super::matmul::Product;
use crate::error::{MdnError, Result};
use crate::head::{HeadKind, SampleParams};
use crate::model::LayerLayout;
use crate::train::{AdamStep, LossAccumulator};

pub struct Stages<'a> {
    pub ctx: &'a GpuContext,
    pub kernels: &'a Kernels,
}

impl<'a> Stages<'a> {
    pub fn new(ctx: &'a GpuContext, kernels: &'a Kernels) -> Self {
        Stages { ctx, kernels }
    }

    fn submit(&self, record: impl FnOnce(&mut wgpu::ComputePass<'_>)) -> Result<()> {
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("stage"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("stage"),
                timestamp_writes: None,
            });
            record(&mut pass);
        }
        self.ctx.queue.submit([encoder.finish()]);
        self.ctx.check()?;
        Ok(())
    }

    /// One dispatch of `pipeline` over `groups`, with `bg` (and dynamic
    /// offset 0 when `step_record`), submitted.
    fn dispatch(
        &self,
        pipeline: &wgpu::ComputePipeline,
        bg: &wgpu::BindGroup,
        step_record: bool,
        (x, y): (u32, u32),
    ) -> Result<()> {
        self.submit(|pass| {
            pass.set_pipeline(pipeline);
            let offsets: &[u32] = if step_record { &[0] } else { &[] };
            pass.set_bind_group(0, bg, offsets);
            pass.dispatch_workgroups(x, y, 1);
        })
    }

    /// One `StepInfo` record at offset 0 of its own buffer.
    fn step_buffer(&self, info: &StepInfo) -> wgpu::Buffer {
        let mut arena = UniformArena::new(self.ctx);
        arena.push(info);
        arena.finish(self.ctx, "stage step info")
    }

    /// `cpu::gather::gather` of the inputs and the targets at once: rows
    /// `perm[start..start + rows]`.
    #[allow(clippy::too_many_arguments)]
    pub fn gather(
        &self,
        inputs: &[f32],
        in_dim: usize,
        targets: &[f32],
        out_dim: usize,
        perm: &[u32],
        start: usize,
        rows: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let c = self.ctx;
        let perm_buf = storage_init(c, "perm", perm)?;
        let in_buf = storage_init(c, "inputs", inputs)?;
        let tgt_buf = storage_init(c, "targets", targets)?;
        let batch_in = storage(c, "batch input", rows * in_dim)?;
        let batch_tgt = storage(c, "batch target", rows * out_dim)?;
        let mut arena = UniformArena::new(c);
        let info = arena.push(&GatherInfo {
            rows: rows as u32,
            in_dim: in_dim as u32,
            out_dim: out_dim as u32,
            ..Default::default()
        });
        let uniforms = arena.finish(c, "gather info");
        let step = self.step_buffer(&StepInfo {
            batch_start: start as u32,
            ..Default::default()
        });
        let k = &self.kernels.gather;
        let bg = GatherBindings {
            perm: whole(&perm_buf),
            inputs: whole(&in_buf),
            targets: whole(&tgt_buf),
            batch_input: whole(&batch_in),
            batch_target: whole(&batch_tgt),
            info: slot(&uniforms, info),
            step: step_binding(&step),
        }
        .bind(c, "gather", &k.layout);
        let (x, y) = grid((rows as u64).div_ceil(self.kernels.config.rows_wg as u64))?;
        self.dispatch(&k.pipeline, &bg, true, (x, y))?;
        Ok((
            read_f32(c, &batch_in, rows * in_dim)?,
            read_f32(c, &batch_tgt, rows * out_dim)?,
        ))
    }

    /// `cpu::dense_forward::dense_forward`: `input` `[rows, in]` → `[rows, out]`.
    pub fn dense_forward(
        &self,
        params: &[f32],
        layer: &LayerLayout,
        input: &[f32],
    ) -> Result<Vec<f32>> {
        let c = self.ctx;
        let rows = input.len() / layer.in_dim;
        let p = storage_init(c, "params", params)?;
        let x = storage_init(c, "input", input)?;
        let out = storage(c, "output", rows * layer.out_dim)?;
        let mut arena = UniformArena::new(c);
        let info = arena.push(&DenseInfo::for_layer(layer, rows, 1, 0));
        let uniforms = arena.finish(c, "dense info");
        let k = &self.kernels.dense_forward;
        let bg = DenseForwardBindings {
            params: whole(&p),
            input: whole(&x),
            output: whole(&out),
            info: slot(&uniforms, info),
        }
        .bind(c, "dense_forward", &k.layout);
        let product = Product::forward(layer, rows);
        let (gx, gy) = grid(self.kernels.config.matmul_groups(&product))?;
        let pipeline = k.pipelines.for_product(&product);
        self.dispatch(pipeline, &bg, false, (gx, gy))?;
        read_f32(c, &out, rows * layer.out_dim)
    }

    /// `cpu::dense_backward::dense_backward` with the batch cut into
    /// `splits` runs. Returns the layer's gradient slice (weight `[out, in]`
    /// then bias `[out]`, i.e. `grads[layer.weight..layer.bias + out]`),
    /// summed over the splits by the same code as Adam, and, when asked,
    /// the gradient of the layer below.
    pub fn dense_backward(
        &self,
        params: &[f32],
        layer: &LayerLayout,
        input: &[f32],
        grad_out: &[f32],
        splits: u32,
        want_grad_in: bool,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
        let c = self.ctx;
        let rows = grad_out.len() / layer.out_dim;
        let len = layer.out_dim * (layer.in_dim + 1);
        let splits = splits.max(1);
        let p = storage_init(c, "params", params)?;
        let x = storage_init(c, "input", input)?;
        let g = storage_init(c, "grad out", grad_out)?;
        let gi = storage(c, "grad in", rows * layer.in_dim)?;
        let partials = storage(c, "partials", splits as usize * len)?;
        let grads = storage(c, "grads", len)?;
        // The gradient sum shares Adam's layout; it touches none of these.
        let unused: Vec<wgpu::Buffer> = (0..3)
            .map(|_| storage(c, "unused", 1))
            .collect::<Result<_>>()?;
        let one_lr = storage_init(c, "model lr", &[1.0f32])?;
        let mut arena = UniformArena::new(c);
        let info = arena.push(&DenseInfo::for_layer(layer, rows, splits, 0));
        let adam = arena.push(&adam_info(
            len,
            &[AdamLayer {
                start: 0,
                len: len as u32,
                splits,
                partial_offset: 0,
            }],
        ));
        let idle = IdleLoss::new(c, &mut arena)?;
        let uniforms = arena.finish(c, "dense info");
        let step = self.step_buffer(&StepInfo::default());
        let k = &self.kernels.dense_backward;
        let bg = DenseBackwardBindings {
            params: whole(&p),
            input: whole(&x),
            grad_out: whole(&g),
            grad_in: whole(&gi),
            partials: whole(&partials),
            info: slot(&uniforms, info),
        }
        .bind(c, "dense_backward", &k.layout);
        let a = &self.kernels.adam;
        let sum_bg = AdamBindings {
            params: whole(&unused[0]),
            partials: whole(&partials),
            m_state: whole(&unused[1]),
            v_state: whole(&unused[2]),
            grads: whole(&grads),
            info: slot(&uniforms, adam),
            step: step_binding(&step),
            model_lr: whole(&one_lr),
            row_loss: whole(&idle.row_loss),
            loss: whole(&idle.loss),
            loss_info: slot(&uniforms, idle.info),
        }
        .bind(c, "sum partials", &a.layout);
        let cfg = &self.kernels.config;
        let weight = Product::weight_gradient(layer, rows);
        let input = Product::input_gradient(layer, rows);
        let (wx, wy) = grid(cfg.weight_gradient_groups(&weight))?;
        let (ix, iy) = grid(cfg.matmul_groups(&input))?;
        let (sx, sy) = grid(cfg.adam_groups(len))?;
        self.submit(|pass| {
            pass.set_bind_group(0, &bg, &[]);
            pass.set_pipeline(k.weight.for_product(&weight));
            pass.dispatch_workgroups(wx, wy, splits);
            if want_grad_in {
                pass.set_pipeline(k.input.for_product(&input));
                pass.dispatch_workgroups(ix, iy, 1);
            }
            pass.set_pipeline(&a.sum_partials);
            pass.set_bind_group(0, &sum_bg, &[0]);
            pass.dispatch_workgroups(sx, sy, 1);
        })?;
        let grad_in = if want_grad_in {
            Some(read_f32(c, &gi, rows * layer.in_dim)?)
        } else {
            None
        };
        Ok((read_f32(c, &grads, len)?, grad_in))
    }

    /// The `loss` entry of head `kind` (twin: its `HeadDef::loss_rows`)
    /// on `[rows, width]` head outputs and `[rows, d]` targets; returns
    /// `(grad_head, row_loss)`.
    pub fn head_loss(
        &self,
        kind: HeadKind,
        head: &[f32],
        target: &[f32],
        k_count: usize,
        d: usize,
        grad_scale: f32,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let c = self.ctx;
        let rows = target.len() / d;
        let width = head.len() / rows.max(1);
        let h = storage_init(c, "head", head)?;
        let t = storage_init(c, "target", target)?;
        let g = storage(c, "grad head", head.len())?;
        let l = storage(c, "row loss", rows)?;
        let mut arena = UniformArena::new(c);
        let info = arena.push(&HeadInfo {
            rows: rows as u32,
            k: k_count as u32,
            d: d as u32,
            width: width as u32,
            grad_scale,
            ..Default::default()
        });
        let uniforms = arena.finish(c, "head info");
        let k = &self.kernels.head(kind).loss;
        let bg = HeadLossBindings {
            head: whole(&h),
            targets: whole(&t),
            grad_head: whole(&g),
            row_loss: whole(&l),
            info: slot(&uniforms, info),
        }
        .bind(c, "head", &k.layout);
        let (x, y) = grid((rows as u64).div_ceil(self.kernels.config.rows_wg as u64))?;
        self.dispatch(&k.pipeline, &bg, false, (x, y))?;
        Ok((read_f32(c, &g, head.len())?, read_f32(c, &l, rows)?))
    }

    /// `cpu::reduce::reduce` of each batch in turn into one fresh loss state.
    pub fn reduce(&self, batches: &[Vec<f32>]) -> Result<LossAccumulator> {
        let c = self.ctx;
        let state = storage(c, "loss state", size_of::<LossState>() / 4)?;
        let mut arena = UniformArena::new(c);
        let mut bufs = Vec::new();
        let mut slots = Vec::new();
        for b in batches {
            bufs.push(storage_init(c, "row loss", b)?);
            slots.push(arena.push(&ReduceInfo {
                rows: b.len() as u32,
                ..Default::default()
            }));
        }
        let uniforms = arena.finish(c, "reduce info");
        let k = &self.kernels.reduce;
        let groups: Vec<wgpu::BindGroup> = bufs
            .iter()
            .zip(&slots)
            .map(|(b, s)| {
                ReduceBindings {
                    row_loss: whole(b),
                    loss: whole(&state),
                    info: slot(&uniforms, *s),
                }
                .bind(c, "reduce", &k.layout)
            })
            .collect();
        self.submit(|p| {
            p.set_pipeline(&k.pipeline);
            for bg in &groups {
                p.set_bind_group(0, bg, &[]);
                p.dispatch_workgroups(1, 1, 1);
            }
        })?;
        let bytes = read_back(c, &state, 0, size_of::<LossState>() as u64, |_| {})?;
        Ok(bytemuck::pod_read_unaligned::<LossState>(&bytes).accumulator())
    }

    /// `cpu::adam::adam`, with the gradient given as `splits` partial
    /// slices of `params.len()` values each (summed first, as in training).
    /// Returns `(params, m, v)`.
    pub fn adam(
        &self,
        params: &[f32],
        partials: &[f32],
        splits: u32,
        m: &[f32],
        v: &[f32],
        step: &AdamStep,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let c = self.ctx;
        let n = params.len();
        let p = storage_init(c, "params", params)?;
        let g = storage_init(c, "partials", partials)?;
        let mb = storage_init(c, "m", m)?;
        let vb = storage_init(c, "v", v)?;
        let grads = storage(c, "grads", n)?;
        let one_lr = storage_init(c, "model lr", &[1.0f32])?;
        let mut arena = UniformArena::new(c);
        let info = arena.push(&adam_info(
            n,
            &[AdamLayer {
                start: 0,
                len: n as u32,
                splits,
                partial_offset: 0,
            }],
        ));
        let idle = IdleLoss::new(c, &mut arena)?;
        let uniforms = arena.finish(c, "adam info");
        let step_buf = self.step_buffer(&StepInfo::new(0, step));
        let k = &self.kernels.adam;
        let bg = AdamBindings {
            params: whole(&p),
            partials: whole(&g),
            m_state: whole(&mb),
            v_state: whole(&vb),
            grads: whole(&grads),
            info: slot(&uniforms, info),
            step: step_binding(&step_buf),
            model_lr: whole(&one_lr),
            row_loss: whole(&idle.row_loss),
            loss: whole(&idle.loss),
            loss_info: slot(&uniforms, idle.info),
        }
        .bind(c, "adam", &k.layout);
        let (x, y) = grid(self.kernels.config.adam_groups(n))?;
        self.dispatch(&k.adam, &bg, true, (x, y))?;
        Ok((
            read_f32(c, &p, n)?,
            read_f32(c, &mb, n)?,
            read_f32(c, &vb, n)?,
        ))
    }

    /// The `sample` entry of head `kind` (twin: `head::sample_rows`):
    /// `head` `[rows, width]` → `[rows · per_input, D]`, and the component
    /// each sample came from (twin: `head::sample::choose_component`).
    pub fn sample(
        &self,
        kind: HeadKind,
        head: &[f32],
        p: &SampleParams,
    ) -> Result<(Vec<f32>, Vec<u32>)> {
        let c = self.ctx;
        let width = kind.def().width(p.k, p.d);
        let rows = head.len() / width;
        let n = rows * p.per_input;
        let h = storage_init(c, "head", head)?;
        let out = storage(c, "samples", n * p.d)?;
        let mut arena = UniformArena::new(c);
        let info = arena.push(&SampleInfo {
            rows: rows as u32,
            k: p.k as u32,
            d: p.d as u32,
            per_input: p.per_input as u32,
            seed: p.seed,
            temperature: p.temperature,
            ..Default::default()
        });
        let uniforms = arena.finish(c, "sample info");
        let Some(k) = &self.kernels.head(kind).sample else {
            return Err(MdnError::Config(format!(
                "the {} head has no distribution to sample",
                kind.def().stem()
            )));
        };
        let comps = storage(c, "sample components", n)?;
        let bg = HeadSampleBindings {
            head: whole(&h),
            samples: whole(&out),
            sample_info: slot(&uniforms, info),
            sample_components: whole(&comps),
        }
        .bind(c, "sample", &k.layout);
        let (x, y) = grid((n as u64).div_ceil(self.kernels.config.rows_wg as u64))?;
        self.dispatch(&k.pipeline, &bg, false, (x, y))?;
        Ok((read_f32(c, &out, n * p.d)?, read_u32(c, &comps, n)?))
    }
}

/// The whole `StepInfo` record at offset 0 (bound with dynamic offset 0).
fn step_binding(buffer: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    slot(
        buffer,
        UniformSlot {
            offset: 0,
            size: size_of::<StepInfo>() as u64,
        },
    )
}

/// Adam's loss bindings for a stage run that dispatches only the
/// parameters' workgroups (`adam_groups`, not the loss workgroup after
/// them): bound because the layout has them, never read or written.
struct IdleLoss {
    row_loss: wgpu::Buffer,
    loss: wgpu::Buffer,
    info: UniformSlot,
}

impl IdleLoss {
    fn new(c: &GpuContext, arena: &mut UniformArena) -> Result<Self> {
        Ok(IdleLoss {
            row_loss: storage(c, "unused row loss", 1)?,
            loss: storage(c, "unused loss state", size_of::<LossState>() / 4)?,
            info: arena.push(&ReduceInfo::default()),
        })
    }
}
