//! A scene net's trainer: the GPU trainer, or the CPU trainer with its
//! parameters copied into a GPU buffer after every batch of steps. Either
//! way the curves and the sampler read a GPU parameter buffer, so drawing
//! is the same; the copy is an upload of a few thousand floats per frame,
//! no readback. On a machine whose only adapter is a software rasteriser the
//! CPU trainer is ~100× faster (docs/benchmarks.md), which is the difference
//! between a demo that converges in seconds and one that takes minutes.

use std::sync::Arc;

use crate::cpu::CpuTrainer;
use crate::data::Dataset;
use crate::error::Result;
use crate::gpu::buffers::storage_init;
use crate::gpu::context::GpuContext;
use crate::gpu::{GpuTrainer, Kernels};
use crate::model::ModelSpec;
use crate::train::{LossAccumulator, TrainConfig, Trainer};

pub enum NetTrainer {
    Gpu(GpuTrainer),
    /// A loaded model: drawn, never trained.
    Fixed {
        params: Vec<f32>,
        buffer: wgpu::Buffer,
    },
    Cpu {
        trainer: CpuTrainer,
        /// The parameters as of the last `run`, for the GPU passes.
        params: wgpu::Buffer,
        ctx: Arc<GpuContext>,
    },
}

impl NetTrainer {
    pub fn new(
        ctx: &Arc<GpuContext>,
        kernels: &Arc<Kernels>,
        on_cpu: bool,
        spec: &ModelSpec,
        data: &Dataset,
        params: Vec<f32>,
        config: &TrainConfig,
    ) -> Result<Self> {
        if on_cpu {
            let trainer = CpuTrainer::new(spec, data, params, config)?;
            let params = storage_init(ctx, "parameters (CPU-trained)", &trainer.params)?;
            return Ok(NetTrainer::Cpu {
                trainer,
                params,
                ctx: Arc::clone(ctx),
            });
        }
        Ok(NetTrainer::Gpu(GpuTrainer::with_kernels(
            Arc::clone(ctx),
            Arc::clone(kernels),
            spec,
            data,
            params,
            config,
        )?))
    }

    /// A model's parameters uploaded for drawing; `run` does nothing.
    pub fn fixed(ctx: &Arc<GpuContext>, params: Vec<f32>) -> Result<Self> {
        let buffer = storage_init(ctx, "parameters (loaded model)", &params)?;
        Ok(NetTrainer::Fixed { params, buffer })
    }

    pub fn is_fixed(&self) -> bool {
        matches!(self, NetTrainer::Fixed { .. })
    }

    /// The live parameters on the GPU.
    pub fn params_buffer(&self) -> &wgpu::Buffer {
        match self {
            NetTrainer::Gpu(t) => t.params_buffer(),
            NetTrainer::Cpu { params, .. } => params,
            NetTrainer::Fixed { buffer, .. } => buffer,
        }
    }

    fn upload(&self) {
        if let NetTrainer::Cpu {
            trainer,
            params,
            ctx,
        } = self
        {
            ctx.queue
                .write_buffer(params, 0, bytemuck::cast_slice(&trainer.params));
        }
    }

    fn inner(&self) -> Option<&dyn Trainer> {
        match self {
            NetTrainer::Gpu(t) => Some(t),
            NetTrainer::Cpu { trainer, .. } => Some(trainer),
            NetTrainer::Fixed { .. } => None,
        }
    }

    fn inner_mut(&mut self) -> Option<&mut dyn Trainer> {
        match self {
            NetTrainer::Gpu(t) => Some(t),
            NetTrainer::Cpu { trainer, .. } => Some(trainer),
            NetTrainer::Fixed { .. } => None,
        }
    }
}

/// A fixed model is a trainer that never steps: every scene path (train,
/// read the loss, carry parameters) works on it unchanged.
impl Trainer for NetTrainer {
    fn step(&self) -> usize {
        self.inner().map_or(0, |t| t.step())
    }

    fn run(&mut self, n: usize) -> Result<()> {
        if let Some(t) = self.inner_mut() {
            t.run(n)?;
        }
        self.upload();
        Ok(())
    }

    fn take_loss(&mut self) -> Result<LossAccumulator> {
        self.inner_mut()
            .map_or(Ok(LossAccumulator::default()), |t| t.take_loss())
    }

    fn checkpoint(&mut self) -> Result<()> {
        self.inner_mut().map_or(Ok(()), |t| t.checkpoint())
    }

    fn restore_checkpoint(&mut self) -> Result<()> {
        if let Some(t) = self.inner_mut() {
            t.restore_checkpoint()?;
        }
        self.upload();
        Ok(())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        match self {
            NetTrainer::Fixed { params, .. } => Ok(params.clone()),
            t => t.inner_mut().expect("a trainer").params(),
        }
    }

    fn optimizer_state(&mut self) -> Result<(Vec<f32>, Vec<f32>)> {
        match self {
            NetTrainer::Fixed { params, .. } => {
                Ok((vec![0.0; params.len()], vec![0.0; params.len()]))
            }
            t => t.inner_mut().expect("a trainer").optimizer_state(),
        }
    }

    fn restore_state(&mut self, params: &[f32], m: &[f32], v: &[f32], step: usize) -> Result<()> {
        if let Some(t) = self.inner_mut() {
            t.restore_state(params, m, v, step)?;
        }
        self.upload();
        Ok(())
    }

    fn device_name(&self) -> String {
        self.inner()
            .map_or("nothing (a loaded model)".into(), |t| t.device_name())
    }
}
