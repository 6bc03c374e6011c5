//! The forward pass alone over a fixed number of input rows, with the
//! trainer's `dense_forward` kernel on buffers of its own: what the sampler
//! and the visualizer's curves run before their own shaders.

use super::bindings::DenseForwardBindings;
use super::buffers::{UniformArena, grid, slot, storage, whole};
use super::context::GpuContext;
use super::kernels::Kernels;
use super::layouts::DenseInfo;
use super::matmul::{MatmulShape, Product};
use crate::error::Result;
use crate::model::ModelSpec;

pub struct ForwardPass {
    /// `acts[0]` holds the `[rows, in]` inputs, the last one the head
    /// outputs `[rows, head width]`.
    acts: Vec<wgpu::Buffer>,
    /// Per layer: its bindings, the matmul shape and the workgroup grid.
    layers: Vec<(wgpu::BindGroup, MatmulShape, (u32, u32))>,
    _uniforms: wgpu::Buffer,
}

impl ForwardPass {
    /// Reads the parameters from `params` (a trainer's live buffer, or one
    /// uploaded from a model file) at every run; `label` names the buffers.
    pub fn new(
        ctx: &GpuContext,
        kernels: &Kernels,
        spec: &ModelSpec,
        params: &wgpu::Buffer,
        rows: usize,
        label: &str,
    ) -> Result<Self> {
        let acts = spec
            .widths()
            .iter()
            .enumerate()
            .map(|(i, &w)| storage(ctx, &format!("{label} activation {i}"), rows * w))
            .collect::<Result<Vec<_>>>()?;
        let layout = spec.layout();
        let mut arena = UniformArena::new(ctx);
        let slots: Vec<_> = layout
            .layers
            .iter()
            .map(|l| arena.push(&DenseInfo::for_layer(l, rows, 1, 0)))
            .collect();
        let uniforms = arena.finish(ctx, &format!("{label} forward uniforms"));
        let cfg = kernels.config;
        let mut layers = Vec::with_capacity(slots.len());
        for (i, l) in layout.layers.iter().enumerate() {
            let bg = DenseForwardBindings {
                params: whole(params),
                input: whole(&acts[i]),
                output: whole(&acts[i + 1]),
                info: slot(&uniforms, slots[i]),
            }
            .bind(
                ctx,
                &format!("{label} forward"),
                &kernels.dense_forward.layout,
            );
            let p = Product::forward(l, rows);
            layers.push((bg, cfg.matmul_shape(&p), grid(cfg.matmul_groups(&p))?));
        }
        Ok(ForwardPass {
            acts,
            layers,
            _uniforms: uniforms,
        })
    }

    /// Where the `[rows, in]` inputs go.
    pub fn inputs(&self) -> &wgpu::Buffer {
        &self.acts[0]
    }

    /// The `[rows, head width]` head outputs of the last run.
    pub fn head(&self) -> &wgpu::Buffer {
        &self.acts[self.acts.len() - 1]
    }

    /// Records every layer into `pass`.
    pub fn encode(&self, kernels: &Kernels, pass: &mut wgpu::ComputePass<'_>) {
        for (bg, shape, (x, y)) in &self.layers {
            pass.set_pipeline(kernels.dense_forward.pipelines.get(*shape));
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(*x, *y, 1);
        }
    }
}
