//! Sampling on the GPU: the forward pass on a set of inputs, then the
//! head's `sample` entry (`shaders/heads/`). The samples stay in a `STORAGE | VERTEX` buffer that the
//! visualizer can draw as instances; [`GpuSampler::read_samples`] reads
//! them back for files and tests.

use std::sync::Arc;

use super::bindings::HeadSampleBindings;
use super::buffers::{
    STORAGE, UniformArena, UniformSlot, grid, read_f32, read_u32, slot, storage_with_usage, whole,
};
use super::context::GpuContext;
use super::forward::ForwardPass;
use super::kernels::Kernels;
use super::layouts::SampleInfo;
use crate::error::{MdnError, Result};
use crate::model::ModelSpec;

pub struct GpuSampler {
    ctx: Arc<GpuContext>,
    kernels: Arc<Kernels>,
    spec: ModelSpec,
    rows: usize,
    per_input: usize,
    /// `[rows · per_input, D]` z-scored samples; `STORAGE | VERTEX`.
    pub samples: wgpu::Buffer,
    /// `[rows · per_input]` u32: the component each sample came from
    /// (mixtures; `STORAGE | VERTEX`).
    pub components: wgpu::Buffer,
    uniforms: wgpu::Buffer,
    sample_slot: UniformSlot,
    forward: ForwardPass,
    /// The draw's bind group and grid; `None` for a head without a
    /// distribution (an MLP), which runs the forward pass only.
    sample: Option<(wgpu::BindGroup, (u32, u32))>,
}

impl GpuSampler {
    /// A sampler for `rows` inputs, `per_input` samples each, reading the
    /// parameters from `params` (a trainer's live buffer, or one uploaded
    /// from a model file).
    pub fn new(
        ctx: Arc<GpuContext>,
        kernels: Arc<Kernels>,
        spec: &ModelSpec,
        params: &wgpu::Buffer,
        rows: usize,
        per_input: usize,
    ) -> Result<Self> {
        // An MLP runs the forward pass only (its head outputs are the
        // predictions); there is no distribution to draw from.
        let k = spec.k();
        if rows == 0 || per_input == 0 {
            return Err(MdnError::Config(
                "nothing to sample: no inputs or --per-input 0".into(),
            ));
        }
        if (rows as u64) * (per_input as u64) > u32::MAX as u64 {
            return Err(MdnError::Config(
                "too many samples for one pass (rows × --per-input ≥ 2³²)".into(),
            ));
        }
        let c = &*ctx;
        ctx.check()?;
        let cfg = kernels.config;
        let forward = ForwardPass::new(c, &kernels, spec, params, rows, "sampler")?;
        let samples = storage_with_usage(
            c,
            "samples",
            rows * per_input * spec.out_dim,
            STORAGE | wgpu::BufferUsages::VERTEX,
        )?;
        // Which component each sample came from (u32, drawn as instance
        // colours by the visualizer).
        let components = storage_with_usage(
            c,
            "sample components",
            rows * per_input,
            STORAGE | wgpu::BufferUsages::VERTEX,
        )?;
        let mut arena = UniformArena::new(c);
        let sample_slot = arena.push(&SampleInfo {
            rows: rows as u32,
            k: k as u32,
            d: spec.out_dim as u32,
            per_input: per_input as u32,
            seed: 0,
            temperature: 1.0,
            ..Default::default()
        });
        let uniforms = arena.finish(c, "sampler uniforms");
        let sample = match &kernels.head(spec.head_kind()).sample {
            Some(kernel) => Some((
                HeadSampleBindings {
                    head: whole(forward.head()),
                    samples: whole(&samples),
                    sample_info: slot(&uniforms, sample_slot),
                    sample_components: whole(&components),
                }
                .bind(c, "sample", &kernel.layout),
                grid(((rows * per_input) as u64).div_ceil(cfg.rows_wg as u64))?,
            )),
            None => None,
        };
        ctx.check()?;
        Ok(GpuSampler {
            ctx,
            kernels,
            spec: spec.clone(),
            rows,
            per_input,
            samples,
            components,
            uniforms,
            sample_slot,
            forward,
            sample,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn per_input(&self) -> usize {
        self.per_input
    }

    /// Uploads `[rows, in]` z-scored inputs.
    pub fn set_inputs(&self, inputs: &[f32]) -> Result<()> {
        if inputs.len() != self.rows * self.spec.in_dim {
            return Err(MdnError::Data(format!(
                "sampler expects {} input values ({} rows × {}), got {}",
                self.rows * self.spec.in_dim,
                self.rows,
                self.spec.in_dim,
                inputs.len()
            )));
        }
        self.ctx
            .queue
            .write_buffer(self.forward.inputs(), 0, bytemuck::cast_slice(inputs));
        Ok(())
    }

    /// The seed and temperature of the next runs (`SampleParams`' meaning).
    pub fn set_options(&self, seed: u32, temperature: f32) -> Result<()> {
        self.set_options_from(seed, temperature, 0)
    }

    /// [`GpuSampler::set_options`] for a chunk of a longer run whose first
    /// sample is the run's sample `first`: the draws are the ones a single
    /// pass over the whole run gives these rows.
    pub fn set_options_from(&self, seed: u32, temperature: f32, first: u32) -> Result<()> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(MdnError::Config(format!(
                "--temperature must be a positive number, got {temperature}"
            )));
        }
        let info = SampleInfo {
            rows: self.rows as u32,
            k: self.spec.k() as u32,
            d: self.spec.out_dim as u32,
            per_input: self.per_input as u32,
            seed,
            temperature,
            first,
            ..Default::default()
        };
        self.ctx.queue.write_buffer(
            &self.uniforms,
            self.sample_slot.offset,
            bytemuck::bytes_of(&info),
        );
        Ok(())
    }

    /// Records the forward pass and the draw into `pass`.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.forward.encode(&self.kernels, pass);
        let kernel = &self.kernels.head(self.spec.head_kind()).sample;
        if let (Some((bg, (x, y))), Some(kernel)) = (&self.sample, kernel) {
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(*x, *y, 1);
        }
    }

    /// Records and submits one sampling pass, without waiting.
    pub fn run(&self) -> Result<()> {
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("sample"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("sample"),
                timestamp_writes: None,
            });
            self.encode(&mut pass);
        }
        self.ctx.queue.submit([encoder.finish()]);
        self.ctx.check()?;
        Ok(())
    }

    /// Reads the samples of the last run back.
    pub fn read_samples(&self) -> Result<Vec<f32>> {
        if self.sample.is_none() {
            return Err(MdnError::Config(
                "sampling needs a mixture model; an MLP has no distribution to draw from".into(),
            ));
        }
        read_f32(
            &self.ctx,
            &self.samples,
            self.rows * self.per_input * self.spec.out_dim,
        )
    }

    /// The `[rows, head width]` head outputs of the last run: an MLP's
    /// z-scored predictions.
    pub fn head(&self) -> &wgpu::Buffer {
        self.forward.head()
    }

    /// Reads back the component of every sample of the last run (tests).
    pub fn read_components(&self) -> Result<Vec<u32>> {
        read_u32(&self.ctx, &self.components, self.rows * self.per_input)
    }

    /// Reads the head outputs of the last run back.
    pub fn read_head(&self) -> Result<Vec<f32>> {
        read_f32(
            &self.ctx,
            self.forward.head(),
            self.rows * self.spec.head_width(),
        )
    }
}
