//! The data points' owners: for each point, the mixture component most
//! responsible for it (`shaders/owners.wgsl`), written into a
//! `STORAGE | VERTEX` buffer that the renderer reads as the points' colour
//! index. It runs with the curves, on the GPU, whenever the parameters
//! changed: no readback.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use crate::error::{MdnError, Result};
use crate::gpu::bindings::{BindingSpec, Slot, kernel_bindings, layout};
use crate::gpu::buffers::{STORAGE, UniformArena, slot, storage_with_usage, whole};
use crate::gpu::context::GpuContext;
use crate::gpu::forward::ForwardPass;
use crate::gpu::{Kernels, buffers};
use crate::head::HeadKind;
use crate::model::ModelSpec;

const OWNERS_WGSL: &str = include_str!("../../shaders/owners.wgsl");
const OWNERS_WG: u32 = 64;
/// Data points the colouring covers at most: the forward pass over them
/// holds `rows × widest layer` floats, which must fit one binding.
pub const MAX_OWNED_ROWS: usize = 262_144;

/// Mirrors `OwnerInfo` in `shaders/owners.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct OwnerInfo {
    pub rows: u32,
    pub k: u32,
    pub width: u32,
    pub _pad: u32,
}

kernel_bindings! {
    /// `shaders/owners.wgsl`.
    OwnersBindings {
        head @ 0: Slot::Read,
        targets @ 1: Slot::Read,
        owners @ 2: Slot::ReadWrite,
        info @ 3: Slot::Uniform(size_of::<OwnerInfo>() as u64),
    }
}

/// The WGSL source, for validation without a device.
pub fn owners_source() -> &'static str {
    OWNERS_WGSL
}

/// The owners pipeline, built once per device.
pub struct OwnersKernel {
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

impl OwnersKernel {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let device = &ctx.device;
        let layout = layout(device, "owners", &OwnersBindings::slots());
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("owners"),
            source: wgpu::ShaderSource::Wgsl(OWNERS_WGSL.into()),
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("owners"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("owners"),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("owners_of"),
            compilation_options: Default::default(),
            cache: None,
        });
        ctx.check()?;
        Ok(OwnersKernel { layout, pipeline })
    }
}

/// One mixture network evaluated on the data points, and their owners.
pub struct DataOwners {
    ctx: Arc<GpuContext>,
    kernels: Arc<Kernels>,
    rows: usize,
    forward: ForwardPass,
    bind: wgpu::BindGroup,
    _uniforms: wgpu::Buffer,
    _targets: wgpu::Buffer,
    /// `[rows]` u32 component indices, `STORAGE | VERTEX`.
    pub owners: wgpu::Buffer,
}

impl DataOwners {
    /// `inputs` and `targets` are the data, z-scored as the net sees them.
    pub fn new(
        ctx: Arc<GpuContext>,
        kernels: Arc<Kernels>,
        kernel: &OwnersKernel,
        spec: &ModelSpec,
        params: &wgpu::Buffer,
        inputs: &[f32],
        targets: &[f32],
    ) -> Result<Self> {
        if spec.head_kind() != HeadKind::MixtureDiag || spec.in_dim != 1 || spec.out_dim != 1 {
            return Err(MdnError::Config(
                "component colouring needs a 1-D diagonal mixture".into(),
            ));
        }
        let rows = inputs.len();
        if rows == 0 || rows > MAX_OWNED_ROWS || targets.len() != rows {
            return Err(MdnError::Config(format!(
                "component colouring covers 1..={MAX_OWNED_ROWS} points, not {rows}"
            )));
        }
        let c = &*ctx;
        let forward = ForwardPass::new(c, &kernels, spec, params, rows, "owners")?;
        c.queue
            .write_buffer(forward.inputs(), 0, bytemuck::cast_slice(inputs));
        let target_buf = buffers::storage_init(c, "owner targets", targets)?;
        let owners =
            storage_with_usage(c, "data owners", rows, STORAGE | wgpu::BufferUsages::VERTEX)?;
        let mut arena = UniformArena::new(c);
        let info = arena.push(&OwnerInfo {
            rows: rows as u32,
            k: spec.k() as u32,
            width: spec.head_width() as u32,
            _pad: 0,
        });
        let uniforms = arena.finish(c, "owner info");
        let bind = OwnersBindings {
            head: whole(forward.head()),
            targets: whole(&target_buf),
            owners: whole(&owners),
            info: slot(&uniforms, info),
        }
        .bind(c, "owners", &kernel.layout);
        ctx.check()?;
        Ok(DataOwners {
            ctx,
            kernels,
            rows,
            forward,
            bind,
            _uniforms: uniforms,
            _targets: target_buf,
            owners,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Records the forward pass over the data and the owners pass.
    pub fn encode(&self, kernel: &OwnersKernel, pass: &mut wgpu::ComputePass<'_>) {
        self.forward.encode(&self.kernels, pass);
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups((self.rows as u32).div_ceil(OWNERS_WG), 1, 1);
    }

    /// Reads the owners back (tests and debugging only).
    pub fn read(&self) -> Result<Vec<u32>> {
        buffers::read_u32(&self.ctx, &self.owners, self.rows)
    }
}
