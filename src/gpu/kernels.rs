//! The compute pipelines: one constructor per shader in `shaders/`, each
//! returning its bind group layout and pipeline(s). Stage sources are
//! `common.wgsl` (plus `matmul.wgsl` for the dense stages) followed by the
//! stage's own file, since WGSL has no include. Workgroup and tile sizes are
//! WGSL `override` constants, set here per device from [`KernelConfig`].

use std::sync::{Arc, OnceLock};

use super::bindings::{
    AdamBindings, BindingSpec, DenseBackwardBindings, DenseForwardBindings, FusedStepBindings,
    GatherBindings, HeadLossBindings, HeadSampleBindings, ReduceBindings, layout,
};
use super::config::{DEFAULT_FUSED_SCRATCH, KernelConfig, MatmulVariant};
use super::context::GpuContext;
use super::layouts::{AdamInfo, MAX_LAYERS};
use super::matmul::{MatmulShape, Product};
use super::tuned::{AdapterKey, JobShape, Tuned, TunedEntry, TunedTable};
use crate::error::{MdnError, Result};
use crate::fingerprint::Fnv64;
use crate::head::HeadKind;

const COMMON: &str = include_str!("../../shaders/common.wgsl");
const MATMUL: &str = include_str!("../../shaders/matmul.wgsl");
const LOSS_SUM: &str = include_str!("../../shaders/loss_sum.wgsl");

/// The shaders: the network's stages, named like their CPU twins in
/// `src/cpu/`, and one per head kind (`shaders/heads/`, twins in
/// `src/head/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    Gather,
    DenseForward,
    DenseBackward,
    Reduce,
    Adam,
    Head(HeadKind),
    /// `fused_step.wgsl` with one head kind's row loss
    /// ([`crate::head::HeadDef::row_wgsl`]); only for kinds that have one.
    FusedStep(HeadKind),
}

impl Shader {
    /// Every shader, each head kind's included.
    pub fn all() -> Vec<Shader> {
        let mut all = vec![
            Shader::Gather,
            Shader::DenseForward,
            Shader::DenseBackward,
            Shader::Reduce,
            Shader::Adam,
        ];
        all.extend(HeadKind::ALL.map(Shader::Head));
        all.extend(fused_kinds().map(Shader::FusedStep));
        all
    }

    /// The file's path in `shaders/`, without `.wgsl`.
    pub fn name(self) -> String {
        match self {
            Shader::Gather => "gather".into(),
            Shader::DenseForward => "dense_forward".into(),
            Shader::DenseBackward => "dense_backward".into(),
            Shader::Reduce => "reduce".into(),
            Shader::Adam => "adam".into(),
            Shader::Head(kind) => format!("heads/{}", kind.def().stem()),
            Shader::FusedStep(kind) => format!("fused_step ({})", kind.def().stem()),
        }
    }

    /// The full WGSL source the device compiles: `common.wgsl` (plus
    /// `matmul.wgsl` for the dense stages, `loss_sum.wgsl` for the loss
    /// reduction and Adam), then the stage's own file.
    pub fn source(self) -> String {
        self.source_with(DEFAULT_FUSED_SCRATCH)
    }

    /// The source a configuration compiles: the fused step's workgroup
    /// memory is sized in its prelude ([`KernelConfig::fused_scratch`]).
    pub fn source_for(self, cfg: &KernelConfig) -> String {
        self.source_with(cfg.fused_scratch)
    }

    fn source_with(self, fused_scratch: u32) -> String {
        let mut s = String::from(COMMON);
        match self {
            Shader::Gather => s.push_str(include_str!("../../shaders/gather.wgsl")),
            Shader::DenseForward => {
                s.push_str(MATMUL);
                s.push_str(include_str!("../../shaders/dense_forward.wgsl"));
            }
            Shader::DenseBackward => {
                s.push_str(MATMUL);
                s.push_str(include_str!("../../shaders/dense_backward.wgsl"));
            }
            Shader::Reduce => {
                s.push_str(LOSS_SUM);
                s.push_str(include_str!("../../shaders/reduce.wgsl"));
            }
            Shader::Adam => {
                s.push_str(LOSS_SUM);
                s.push_str(include_str!("../../shaders/adam.wgsl"));
            }
            Shader::Head(kind) => s.push_str(&kind.def().wgsl()),
            Shader::FusedStep(kind) => {
                s.push_str(&super::fused::prelude(fused_scratch));
                let row = kind.def().row_wgsl();
                s.push_str(&row.expect("fused shaders exist for kinds with a row loss"));
                s.push_str(include_str!("../../shaders/fused_step.wgsl"));
            }
        }
        s
    }

    /// Each entry point's bindings (the same for every entry of a stage but
    /// the heads', whose `sample` entry has its own).
    pub fn bindings(self, entry: &str) -> Vec<BindingSpec> {
        match self {
            Shader::Gather => GatherBindings::slots(),
            Shader::DenseForward => DenseForwardBindings::slots(),
            Shader::DenseBackward => DenseBackwardBindings::slots(),
            Shader::Reduce => ReduceBindings::slots(),
            Shader::Adam => AdamBindings::slots(),
            Shader::Head(_) if entry == HEAD_SAMPLE => HeadSampleBindings::slots(),
            Shader::Head(_) => HeadLossBindings::slots(),
            Shader::FusedStep(_) => FusedStepBindings::slots(),
        }
    }
}

/// The head kinds the fused step can run.
/// Which build of the kernels a measurement belongs to: the crate's
/// version and a hash of every shader's WGSL (a change to a kernel in
/// development changes what wins as much as a release does).
pub fn kernels_build() -> &'static str {
    static BUILD: OnceLock<String> = OnceLock::new();
    BUILD.get_or_init(hash_shaders)
}

fn hash_shaders() -> String {
    let mut hash = Fnv64::default();
    for shader in Shader::all() {
        hash.eat(shader.source().as_bytes());
    }
    format!("{}+{:016x}", env!("CARGO_PKG_VERSION"), hash.finish())
}

pub fn fused_kinds() -> impl Iterator<Item = HeadKind> {
    HeadKind::ALL
        .into_iter()
        .filter(|k| k.def().row_wgsl().is_some())
}

/// The entry points every head shader has (`sample` only where the head
/// models a distribution).
pub const HEAD_LOSS: &str = "loss";
pub const HEAD_SAMPLE: &str = "sample";

/// One pipeline: which shader, which entry point, which override values.
/// The constructors below build from these, and the validation test feeds
/// the same list to naga's override processing, so a misspelt constant
/// fails without a GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineSpec {
    pub label: String,
    /// For the matmul stages: the workgroup shape (one pipeline each).
    pub shape: Option<MatmulShape>,
    pub shader: Shader,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, f64)>,
}

impl KernelConfig {
    /// Every pipeline [`Kernels`] can build for this configuration, every
    /// head kind's included.
    pub fn pipelines(&self) -> Vec<PipelineSpec> {
        let spec = |label: &str, shader, entry, constants| PipelineSpec {
            label: label.to_string(),
            shape: None,
            shader,
            entry,
            constants,
        };
        let rows = vec![("ROWS_WG", self.rows_wg as f64)];
        let (forward, backward) = match self.matmul {
            MatmulVariant::Blocked => ("forward_blocked", "backward_blocked"),
            MatmulVariant::Tiled => ("forward_tiled", "backward_tiled"),
            MatmulVariant::Vec4 => ("forward_vec4", "backward_vec4"),
        };
        // The matmul stages: which operand index is contiguous, and a
        // pipeline per workgroup shape.
        let matmuls = [
            // A = input [rows, in]: k contiguous; B = Wᵀ with W [out, in]:
            // k contiguous.
            (
                "dense_forward",
                Shader::DenseForward,
                forward,
                [("A_K_FASTEST", 1.0), ("B_N_FASTEST", 0.0), ("", 0.0)],
            ),
            // A = grad_outᵀ: m (the output unit) contiguous; B = input
            // [rows, in]: n contiguous.
            (
                "dense_backward weight",
                Shader::DenseBackward,
                backward,
                [
                    ("BACKWARD_MODE", 0.0),
                    ("A_K_FASTEST", 0.0),
                    ("B_N_FASTEST", 1.0),
                ],
            ),
            // A = grad_out [rows, out]: k contiguous; B = W [out, in]: n
            // contiguous.
            (
                "dense_backward input",
                Shader::DenseBackward,
                backward,
                [
                    ("BACKWARD_MODE", 1.0),
                    ("A_K_FASTEST", 1.0),
                    ("B_N_FASTEST", 1.0),
                ],
            ),
        ];
        let mut specs = vec![spec("gather", Shader::Gather, "main", rows.clone())];
        for (label, shader, entry, extra) in matmuls {
            for shape in self.matmul_shapes() {
                let mut constants = self.shaped(shape).matmul_constants();
                constants.extend(extra.into_iter().filter(|(name, _)| !name.is_empty()));
                specs.push(PipelineSpec {
                    shape: Some(shape),
                    ..spec(label, shader, entry, constants)
                });
            }
        }
        // The loss sum runs in a whole Adam workgroup during training, so
        // its stage-test pipeline takes the same size: the same lanes, the
        // same order of additions.
        let loss_sum = ("REDUCE_WG", self.adam_wg as f64);
        let adam = vec![
            ("ADAM_WG", self.adam_wg as f64),
            ("ADAM_LANES", self.adam_lanes as f64),
            loss_sum,
        ];
        specs.extend([
            spec("reduce", Shader::Reduce, "main", vec![loss_sum]),
            spec("adam", Shader::Adam, "adam", adam.clone()),
            spec("sum_partials", Shader::Adam, "sum_partials", adam),
        ]);
        for kind in HeadKind::ALL {
            let stem = kind.def().stem();
            let shader = Shader::Head(kind);
            specs.push(spec(
                &format!("{stem} {HEAD_LOSS}"),
                shader,
                HEAD_LOSS,
                rows.clone(),
            ));
            if kind.def().is_distribution() {
                specs.push(spec(
                    &format!("{stem} {HEAD_SAMPLE}"),
                    shader,
                    HEAD_SAMPLE,
                    vec![("SAMPLE_WG", self.rows_wg as f64)],
                ));
            }
        }
        for kind in fused_kinds() {
            specs.push(spec(
                &format!("fused_step {}", kind.def().stem()),
                Shader::FusedStep(kind),
                "main",
                vec![
                    ("FUSED_WG", self.fused_wg as f64),
                    ("FUSED_TILE", self.fused_tile as f64),
                    ("FUSED_VEC4", f64::from(u8::from(self.fused_vec4))),
                    ("FUSED_UNROLL", f64::from(u8::from(self.fused_unroll))),
                    ("FUSED_STAGE", f64::from(u8::from(self.fused_stage))),
                ],
            ));
        }
        specs
    }

    /// The one spec of [`KernelConfig::pipelines`] that `wanted` picks.
    fn pipeline_spec(&self, wanted: impl Fn(&PipelineSpec) -> bool) -> PipelineSpec {
        self.pipelines()
            .into_iter()
            .find(wanted)
            .expect("every constructor's pipeline is in KernelConfig::pipelines")
    }
}

/// One shader's bind group layout (group 0, bindings in the shader's order)
/// and pipeline.
pub struct Kernel {
    pub layout: wgpu::BindGroupLayout,
    pub pipeline: wgpu::ComputePipeline,
}

/// One matmul stage's pipelines, a [`MatmulShape`] each.
pub struct MatmulPipelines {
    config: KernelConfig,
    by_shape: Vec<(MatmulShape, wgpu::ComputePipeline)>,
}

impl MatmulPipelines {
    /// The pipeline for a product (the shape `matmul_groups` counted
    /// workgroups for).
    pub fn for_product(&self, p: &Product) -> &wgpu::ComputePipeline {
        self.get(self.config.matmul_shape(p))
    }

    /// The pipeline of `shape`, one that `matmul_shape` picked.
    pub fn get(&self, shape: MatmulShape) -> &wgpu::ComputePipeline {
        let found = self.by_shape.iter().find(|(s, _)| *s == shape);
        &found.expect("matmul_shape picks one of matmul_shapes").1
    }
}

/// `dense_forward.wgsl`.
pub struct DenseForwardKernel {
    pub layout: wgpu::BindGroupLayout,
    pub pipelines: MatmulPipelines,
}

/// `dense_backward.wgsl`: one layout, pipelines per mode.
pub struct DenseBackwardKernel {
    pub layout: wgpu::BindGroupLayout,
    /// Weight and bias gradient partials.
    pub weight: MatmulPipelines,
    /// ∂L/∂z of the layer below.
    pub input: MatmulPipelines,
}

/// `table`'s entry for `job` on `ctx`'s adapter and driver with this build
/// of the kernels: what [`Kernels::for_job`] runs, and what `sweep --tune`
/// need not measure again.
pub fn tuned_entry<'t>(
    ctx: &GpuContext,
    table: &'t TunedTable,
    job: &JobShape,
) -> Option<&'t TunedEntry> {
    table.find(&AdapterKey::of(&ctx.info), kernels_build(), job)
}

/// See [`Kernels::for_job`]; the configuration without building it.
fn config_for_job(
    ctx: &GpuContext,
    table: Option<&TunedTable>,
    job: &JobShape,
) -> Result<(KernelConfig, Option<Tuned>)> {
    let base = KernelConfig::for_adapter(&ctx.info);
    let found = table.and_then(|table| {
        let entry = tuned_entry(ctx, table, job)?;
        Some(Tuned {
            entry: entry.clone(),
            path: table.path.clone(),
        })
    });
    let Some(tuned) = found else {
        return Ok((base.with_env_overrides()?, None));
    };
    let config = base.with_overrides(&tuned.entry.kernels).map_err(|why| {
        MdnError::Config(format!(
            "{}: the entry for {} on {}: `{}`: {why}; delete it or run `mdn tune` again",
            tuned.source(),
            job.describe(),
            ctx.info.name,
            tuned.entry.kernels
        ))
    })?;
    Ok((config.with_env_overrides()?, Some(tuned)))
}

/// `adam.wgsl`: the update, and the gradient sum alone for inspection.
pub struct AdamKernel {
    pub layout: wgpu::BindGroupLayout,
    pub adam: wgpu::ComputePipeline,
    pub sum_partials: wgpu::ComputePipeline,
}

/// A head kind's pipelines: its `loss` entry and, for heads that model a
/// distribution, its `sample` entry.
pub struct HeadKernel {
    pub loss: Kernel,
    pub sample: Option<Kernel>,
}

/// Every pipeline the trainer and the sampler use, built once per device
/// and shared (pipeline creation costs 50–170 ms each on software drivers).
/// Head kernels are built on first use, so a device pays only for the head
/// kinds it runs.
pub struct Kernels {
    pub config: KernelConfig,
    /// The measurement `config` came from, when a tuned entry applied
    /// ([`Kernels::for_job`]).
    pub tuned: Option<Tuned>,
    pub gather: Kernel,
    pub dense_forward: DenseForwardKernel,
    pub dense_backward: DenseBackwardKernel,
    pub reduce: Kernel,
    pub adam: AdamKernel,
    device: wgpu::Device,
    heads: [OnceLock<HeadKernel>; HeadKind::ALL.len()],
    fused: [OnceLock<Option<Kernel>>; HeadKind::ALL.len()],
}

impl Kernels {
    /// Builds every kernel with the adapter's default configuration and
    /// the overrides of `MDN_GPU_KERNELS`, if set.
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        Self::with_config(ctx, KernelConfig::from_env(&ctx.info)?)
    }

    /// The kernels for one job: the adapter's defaults, then the
    /// configuration `mdn tune` measured on this adapter for this job, when
    /// the context carries a table with one ([`GpuOptions::tuned`]), then
    /// the overrides of `MDN_GPU_KERNELS`, which win.
    ///
    /// One of `built` is taken instead of new kernels where its
    /// configuration and tuning are the job's: building the pipelines costs
    /// 50–170 ms each on software drivers.
    ///
    /// [`GpuOptions::tuned`]: super::context::GpuOptions::tuned
    pub fn for_job(ctx: &GpuContext, job: &JobShape, built: &[Arc<Kernels>]) -> Result<Arc<Self>> {
        Self::for_job_in(ctx, ctx.tuned.as_deref(), job, built)
    }

    /// [`Kernels::for_job`] with the entries of `table` instead of the
    /// context's (a sweep that tunes its jobs as it goes: `sweep --tune`).
    pub fn for_job_in(
        ctx: &GpuContext,
        table: Option<&TunedTable>,
        job: &JobShape,
        built: &[Arc<Kernels>],
    ) -> Result<Arc<Self>> {
        let (config, tuned) = config_for_job(ctx, table, job)?;
        if let Some(k) = built
            .iter()
            .find(|k| k.config == config && k.tuned == tuned)
        {
            return Ok(Arc::clone(k));
        }
        let mut kernels = Self::with_config(ctx, config)?;
        kernels.tuned = tuned;
        Ok(Arc::new(kernels))
    }

    pub fn with_config(ctx: &GpuContext, config: KernelConfig) -> Result<Self> {
        config.validate(&ctx.device.limits())?;
        // Errors raised while creating pipelines (a shader the driver
        // rejects) must be ours to report, not a stale one from earlier.
        ctx.check()?;
        let d = &ctx.device;
        let kernels = Kernels {
            config,
            tuned: None,
            gather: stage(d, &config, Shader::Gather, "main", &GatherBindings::slots()),
            dense_forward: dense_forward(d, &config),
            dense_backward: dense_backward(d, &config),
            reduce: stage(d, &config, Shader::Reduce, "main", &ReduceBindings::slots()),
            adam: adam(d, &config),
            device: d.clone(),
            heads: Default::default(),
            fused: Default::default(),
        };
        ctx.check()?;
        Ok(kernels)
    }

    /// The pipelines of a head kind, built the first time they are asked
    /// for. A driver's complaint surfaces at the caller's next
    /// `GpuContext::check`, as for every pipeline.
    pub fn head(&self, kind: HeadKind) -> &HeadKernel {
        self.heads[kind.index()].get_or_init(|| {
            let (d, cfg) = (&self.device, &self.config);
            let shader = Shader::Head(kind);
            HeadKernel {
                loss: stage(d, cfg, shader, HEAD_LOSS, &HeadLossBindings::slots()),
                sample: kind
                    .def()
                    .is_distribution()
                    .then(|| stage(d, cfg, shader, HEAD_SAMPLE, &HeadSampleBindings::slots())),
            }
        })
    }
}

impl Kernels {
    /// The fused step's pipeline for a head kind (`None` for kinds without
    /// a row loss), built the first time it is asked for.
    pub fn fused(&self, kind: HeadKind) -> Option<&Kernel> {
        self.fused[kind.index()]
            .get_or_init(|| {
                kind.def().row_wgsl()?;
                let shader = Shader::FusedStep(kind);
                let slots = FusedStepBindings::slots();
                Some(stage(&self.device, &self.config, shader, "main", &slots))
            })
            .as_ref()
    }
}

fn module(device: &wgpu::Device, cfg: &KernelConfig, shader: Shader) -> wgpu::ShaderModule {
    let name = shader.name();
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some(&name),
        source: wgpu::ShaderSource::Wgsl(shader.source_for(cfg).into()),
    };
    // wgpu's forced loop bounding adds a counter and a branch to every loop
    // iteration; in our matmul inner loops that cost 9-14x per step on an
    // H100 and ~2x on lavapipe. Bounds checks stay on.
    let checks = wgpu::ShaderRuntimeChecks {
        force_loop_bounding: false,
        ..wgpu::ShaderRuntimeChecks::checked()
    };
    // SAFETY: the only check turned off is loop bounding, which needs every
    // loop to terminate. Every loop in shaders/ runs to a bound taken from a
    // uniform (a layer width, K, D, a tile size or the layer count), so none
    // can run forever whatever the data.
    unsafe { device.create_shader_module_trusted(desc, checks) }
}

fn pipeline(
    device: &wgpu::Device,
    bind_layout: &wgpu::BindGroupLayout,
    module: &wgpu::ShaderModule,
    spec: &PipelineSpec,
) -> wgpu::ComputePipeline {
    let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(&spec.label),
        bind_group_layouts: &[Some(bind_layout)],
        immediate_size: 0,
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(&spec.label),
        layout: Some(&layout),
        module,
        entry_point: Some(spec.entry),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &spec.constants,
            // Every stage writes its workgroup memory before reading it;
            // zeroing it first would only cost time.
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    })
}

/// A stage with one entry point: its layout, from its bindings, and its
/// pipeline.
fn stage(
    device: &wgpu::Device,
    cfg: &KernelConfig,
    shader: Shader,
    entry: &str,
    slots: &[BindingSpec],
) -> Kernel {
    let spec = cfg.pipeline_spec(|p| p.shader == shader && p.entry == entry);
    let layout = layout(device, &spec.label, slots);
    let m = module(device, cfg, shader);
    let pipeline = pipeline(device, &layout, &m, &spec);
    Kernel { layout, pipeline }
}

fn build_matmul(
    device: &wgpu::Device,
    cfg: &KernelConfig,
    bind_layout: &wgpu::BindGroupLayout,
    module: &wgpu::ShaderModule,
    label: &str,
) -> MatmulPipelines {
    let by_shape = cfg
        .matmul_shapes()
        .into_iter()
        .map(|shape| {
            let spec = cfg.pipeline_spec(|p| p.label == label && p.shape == Some(shape));
            (shape, pipeline(device, bind_layout, module, &spec))
        })
        .collect();
    MatmulPipelines {
        config: *cfg,
        by_shape,
    }
}

/// `shaders/dense_forward.wgsl`, in the configured matmul variant.
fn dense_forward(device: &wgpu::Device, cfg: &KernelConfig) -> DenseForwardKernel {
    let layout = layout(device, "dense_forward", &DenseForwardBindings::slots());
    let m = module(device, cfg, Shader::DenseForward);
    let pipelines = build_matmul(device, cfg, &layout, &m, "dense_forward");
    DenseForwardKernel { layout, pipelines }
}

/// `shaders/dense_backward.wgsl`, both modes, in the configured variant.
fn dense_backward(device: &wgpu::Device, cfg: &KernelConfig) -> DenseBackwardKernel {
    let layout = layout(device, "dense_backward", &DenseBackwardBindings::slots());
    let m = module(device, cfg, Shader::DenseBackward);
    DenseBackwardKernel {
        weight: build_matmul(device, cfg, &layout, &m, "dense_backward weight"),
        input: build_matmul(device, cfg, &layout, &m, "dense_backward input"),
        layout,
    }
}

/// `shaders/adam.wgsl`: both entry points share the bindings.
fn adam(device: &wgpu::Device, cfg: &KernelConfig) -> AdamKernel {
    let layout = layout(device, "adam", &AdamBindings::slots());
    let m = module(device, cfg, Shader::Adam);
    let build = |entry| {
        let spec = cfg.pipeline_spec(|p| p.shader == Shader::Adam && p.entry == entry);
        pipeline(device, &layout, &m, &spec)
    };
    AdamKernel {
        adam: build("adam"),
        sum_partials: build("sum_partials"),
        layout,
    }
}

/// The `AdamInfo` entries of a network, given each layer's split count and
/// where its partial slices start.
pub fn adam_info(len: usize, layers: &[super::layouts::AdamLayer]) -> AdamInfo {
    assert!(
        layers.len() <= MAX_LAYERS,
        "ModelSpec::validate caps the depth"
    );
    let mut info = AdamInfo {
        len: len as u32,
        layer_count: layers.len() as u32,
        ..Default::default()
    };
    info.layers[..layers.len()].copy_from_slice(layers);
    info
}
