//! Curves and the density heatmap, computed on the GPU from the live
//! parameters: a forward pass over a grid of inputs (the trainer's own
//! `dense_forward` kernel through `gpu::forward::ForwardPass`), then
//! `shaders/density.wgsl` writes the vertices and heat cells the renderer
//! draws. Nothing is read back.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use crate::error::{MdnError, Result};
use crate::gpu::buffers::{
    STORAGE, UniformArena, UniformSlot, bind_group, slot, storage, storage_with_usage, whole,
};
use crate::gpu::context::GpuContext;
use crate::gpu::forward::ForwardPass;
use crate::gpu::{Kernels, buffers};
use crate::head::HeadKind;
use crate::model::ModelSpec;

use super::plot::Span;

const DENSITY_WGSL: &str = include_str!("../../shaders/density.wgsl");
/// `@workgroup_size` of every entry point in `density.wgsl`.
const CURVE_WG: u32 = 64;

/// Mirrors `CurveInfo` in `shaders/density.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct CurveInfo {
    pub cols: u32,
    pub k: u32,
    pub heat_rows: u32,
    pub width: u32,
    pub in_lo: f32,
    pub in_hi: f32,
    pub t_lo: f32,
    pub t_hi: f32,
    pub t_mean: f32,
    pub t_std: f32,
    pub _pad0: f32,
    pub _pad1: f32,
}

/// The `density.wgsl` pipelines and the layout of the renderer's heat
/// binding, built once per device and shared by every scene and renderer.
pub struct VizKernels {
    curve_layout: wgpu::BindGroupLayout,
    mlp_curve: wgpu::ComputePipeline,
    components: wgpu::ComputePipeline,
    mode_starts: wgpu::ComputePipeline,
    summary: wgpu::ComputePipeline,
    density: wgpu::ComputePipeline,
    /// Group 1 of the heatmap draw: the heat cells, read by the fragment
    /// shader.
    pub heat_layout: wgpu::BindGroupLayout,
}

impl VizKernels {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        ctx.check()?;
        let device = &ctx.device;
        let storage_entry = |binding, read_only, visibility| wgpu::BindGroupLayoutEntry {
            binding,
            visibility,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let compute = wgpu::ShaderStages::COMPUTE;
        let curve_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("density"),
            entries: &[
                storage_entry(0, true, compute),
                storage_entry(1, false, compute),
                storage_entry(2, false, compute),
                wgpu::BindGroupLayoutEntry {
                    binding: 3,
                    visibility: compute,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: wgpu::BufferSize::new(size_of::<CurveInfo>() as u64),
                    },
                    count: None,
                },
            ],
        });
        let heat_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("heat"),
            entries: &[storage_entry(0, true, wgpu::ShaderStages::FRAGMENT)],
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("density"),
            source: wgpu::ShaderSource::Wgsl(DENSITY_WGSL.into()),
        });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("density"),
            bind_group_layouts: &[Some(&curve_layout)],
            immediate_size: 0,
        });
        let pipeline = |entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let kernels = VizKernels {
            mlp_curve: pipeline("mlp_curve"),
            components: pipeline("components"),
            mode_starts: pipeline("mode_starts"),
            summary: pipeline("summary"),
            density: pipeline("density"),
            curve_layout,
            heat_layout,
        };
        ctx.check()?;
        Ok(kernels)
    }
}

/// Curve strips of a net: the MLP's one; a mixture's K component means,
/// then its mean and its mode (`density.wgsl`'s `summary`).
fn summary_strips(spec: &ModelSpec) -> usize {
    let strips = spec.head_def().strips(spec.k());
    if spec.is_mixture() {
        strips + 2
    } else {
        strips
    }
}

/// The WGSL source, for validation without a device.
pub fn density_source() -> &'static str {
    DENSITY_WGSL
}

/// One network evaluated on `cols` evenly spaced inputs, and what
/// `density.wgsl` makes of its head outputs.
pub struct GridCurves {
    ctx: Arc<GpuContext>,
    kernels: Arc<Kernels>,
    viz: Arc<VizKernels>,
    spec: ModelSpec,
    cols: usize,
    heat_rows: usize,
    info: CurveInfo,
    uniforms: wgpu::Buffer,
    info_slot: UniformSlot,
    forward: ForwardPass,
    curve_bind: wgpu::BindGroup,
    /// Curve vertices `vec4` (x, y, alpha-or-π, σ), `STORAGE | VERTEX`: the
    /// MLP's prediction (`cols`), or each component's mean (`k · cols`)
    /// followed by the mixture's mean and mode (`2 · cols`), then (not
    /// drawn) the mode search's `k · cols` candidates.
    pub verts: wgpu::Buffer,
    /// `[heat_rows, cols]` column-normalised density (mixtures only).
    pub heat: wgpu::Buffer,
    /// The heat cells bound for the renderer's heatmap draw.
    pub heat_bind: wgpu::BindGroup,
}

impl GridCurves {
    /// Evaluates the network whose live parameters are in `params` (a
    /// trainer's buffer) on `cols` inputs. 1-D inputs and targets only.
    pub fn new(
        ctx: Arc<GpuContext>,
        kernels: Arc<Kernels>,
        viz: Arc<VizKernels>,
        spec: &ModelSpec,
        params: &wgpu::Buffer,
        cols: usize,
        heat_rows: usize,
    ) -> Result<Self> {
        // density.wgsl reads the diagonal layout of one target dimension
        // (or an MLP's one output).
        let drawable = matches!(spec.head_kind(), HeadKind::MixtureDiag | HeadKind::Mse);
        if !drawable {
            return Err(MdnError::Config(format!(
                "the visualizer draws diagonal mixtures and MLPs, not a {} head",
                spec.head_def().stem()
            )));
        }
        if spec.in_dim != 1 || spec.out_dim != 1 {
            return Err(MdnError::Config(format!(
                "the visualizer draws one input against one target; this model has {} inputs and {} targets",
                spec.in_dim, spec.out_dim
            )));
        }
        let cols = cols.max(2);
        let heat_rows = if spec.is_mixture() {
            heat_rows.max(2)
        } else {
            1
        };
        let c = &*ctx;
        ctx.check()?;
        let forward = ForwardPass::new(c, &kernels, spec, params, cols, "curve")?;
        let mut arena = UniformArena::new(c);
        let info = CurveInfo {
            cols: cols as u32,
            k: spec.k() as u32,
            heat_rows: heat_rows as u32,
            width: spec.head_width() as u32,
            in_lo: 0.0,
            in_hi: 1.0,
            t_lo: 0.0,
            t_hi: 1.0,
            t_mean: 0.0,
            t_std: 1.0,
            ..Default::default()
        };
        let info_slot = arena.push(&info);
        let uniforms = arena.finish(c, "curve uniforms");
        // After the drawn strips, a mixture's mode search leaves one
        // candidate per component and column (`density.wgsl`).
        let candidates = if spec.is_mixture() { spec.k() } else { 0 };
        let strips = summary_strips(spec);
        let verts = storage_with_usage(
            c,
            "curve vertices",
            cols * (strips + candidates) * 4,
            STORAGE | wgpu::BufferUsages::VERTEX,
        )?;
        let heat = storage(c, "density heat", cols * heat_rows)?;
        let head = forward.head();
        let curve_bind = bind_group(
            c,
            "density",
            &viz.curve_layout,
            &[
                whole(head),
                whole(&verts),
                whole(&heat),
                slot(&uniforms, info_slot),
            ],
        );
        let heat_bind = bind_group(c, "heat", &viz.heat_layout, &[whole(&heat)]);
        ctx.check()?;
        Ok(GridCurves {
            ctx,
            kernels,
            viz,
            spec: spec.clone(),
            cols,
            heat_rows,
            info,
            uniforms,
            info_slot,
            forward,
            curve_bind,
            verts,
            heat,
            heat_bind,
        })
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn heat_rows(&self) -> usize {
        self.heat_rows
    }

    pub fn info(&self) -> &CurveInfo {
        &self.info
    }

    /// Puts the grid on `inputs` (data units; the network sees them through
    /// `input_norm` = (mean, std)) and the heatmap on `targets`; the head's
    /// z-scored targets come back through `target_norm`.
    pub fn set_range(
        &mut self,
        inputs: Span,
        targets: Span,
        input_norm: (f32, f32),
        target_norm: (f32, f32),
    ) {
        let cols = self.cols;
        let z: Vec<f32> = (0..cols)
            .map(|i| {
                let x = inputs.lerp(i as f32 / (cols - 1) as f32);
                (x - input_norm.0) / input_norm.1
            })
            .collect();
        self.ctx
            .queue
            .write_buffer(self.forward.inputs(), 0, bytemuck::cast_slice(&z));
        self.info = CurveInfo {
            in_lo: inputs.lo,
            in_hi: inputs.hi,
            t_lo: targets.lo,
            t_hi: targets.hi,
            t_mean: target_norm.0,
            t_std: target_norm.1,
            ..self.info
        };
        self.ctx.queue.write_buffer(
            &self.uniforms,
            self.info_slot.offset,
            bytemuck::bytes_of(&self.info),
        );
    }

    /// Records the forward pass, then the curve (and, with `heat`, the
    /// density) passes.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, heat: bool) {
        self.forward.encode(&self.kernels, pass);
        pass.set_bind_group(0, &self.curve_bind, &[]);
        let groups = |n: usize| (n as u32).div_ceil(CURVE_WG);
        if self.spec.is_mixture() {
            pass.set_pipeline(&self.viz.components);
            pass.dispatch_workgroups(groups(self.cols * self.spec.k()), 1, 1);
            pass.set_pipeline(&self.viz.mode_starts);
            pass.dispatch_workgroups(groups(self.cols * self.spec.k()), 1, 1);
            pass.set_pipeline(&self.viz.summary);
            pass.dispatch_workgroups(groups(self.cols), 1, 1);
            if heat {
                pass.set_pipeline(&self.viz.density);
                pass.dispatch_workgroups(groups(self.cols), 1, 1);
            }
        } else {
            pass.set_pipeline(&self.viz.mlp_curve);
            pass.dispatch_workgroups(groups(self.cols), 1, 1);
        }
    }

    /// Reads the heat cells back (tests and debugging only).
    pub fn read_heat(&self) -> Result<Vec<f32>> {
        buffers::read_f32(&self.ctx, &self.heat, self.cols * self.heat_rows)
    }

    /// Reads the curve vertices back (tests and debugging only).
    pub fn read_verts(&self) -> Result<Vec<[f32; 4]>> {
        let strips = summary_strips(&self.spec);
        let flat = buffers::read_f32(&self.ctx, &self.verts, self.cols * strips * 4)?;
        Ok(flat
            .chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect())
    }
}
