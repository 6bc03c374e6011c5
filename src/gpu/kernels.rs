//! The compute pipelines: one constructor per shader in `shaders/`, each
//! returning its bind group layout and pipeline(s). Stage sources are
//! `common.wgsl` (plus `matmul.wgsl` for the dense stages) followed by the
//! stage's own file, since WGSL has no include. Workgroup and tile sizes are
//! WGSL `override` constants, set here per device from [`KernelConfig`].

use std::num::NonZeroU64;

use super::context::{GpuContext, is_software_adapter};
use super::layouts::{
    AdamInfo, DenseInfo, GatherInfo, HeadInfo, MAX_LAYERS, ReduceInfo, SampleInfo, StepInfo,
};
use super::matmul::{MatmulShape, Product, Workgroup};
use crate::error::{MdnError, Result};

const COMMON: &str = include_str!("../../shaders/common.wgsl");
const MATMUL: &str = include_str!("../../shaders/matmul.wgsl");

/// The shader stages, named like their CPU twins in `src/cpu/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    Gather,
    DenseForward,
    DenseBackward,
    MixtureHead,
    MseHead,
    Reduce,
    Adam,
    Sample,
}

impl Shader {
    pub const ALL: [Shader; 8] = [
        Shader::Gather,
        Shader::DenseForward,
        Shader::DenseBackward,
        Shader::MixtureHead,
        Shader::MseHead,
        Shader::Reduce,
        Shader::Adam,
        Shader::Sample,
    ];

    /// The file stem in `shaders/`.
    pub fn name(self) -> &'static str {
        match self {
            Shader::Gather => "gather",
            Shader::DenseForward => "dense_forward",
            Shader::DenseBackward => "dense_backward",
            Shader::MixtureHead => "mixture_head",
            Shader::MseHead => "mse_head",
            Shader::Reduce => "reduce",
            Shader::Adam => "adam",
            Shader::Sample => "sample",
        }
    }

    fn own_source(self) -> &'static str {
        match self {
            Shader::Gather => include_str!("../../shaders/gather.wgsl"),
            Shader::DenseForward => include_str!("../../shaders/dense_forward.wgsl"),
            Shader::DenseBackward => include_str!("../../shaders/dense_backward.wgsl"),
            Shader::MixtureHead => include_str!("../../shaders/mixture_head.wgsl"),
            Shader::MseHead => include_str!("../../shaders/mse_head.wgsl"),
            Shader::Reduce => include_str!("../../shaders/reduce.wgsl"),
            Shader::Adam => include_str!("../../shaders/adam.wgsl"),
            Shader::Sample => include_str!("../../shaders/sample.wgsl"),
        }
    }

    /// The full WGSL source the device compiles.
    pub fn source(self) -> String {
        let mut s = String::from(COMMON);
        if matches!(self, Shader::DenseForward | Shader::DenseBackward) {
            s.push_str(MATMUL);
        }
        s.push_str(self.own_source());
        s
    }
}

/// How the dense layers' matrix products are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulVariant {
    /// Register blocking, no workgroup memory or barriers: CPU drivers.
    Blocked,
    /// Shared-memory tiling: real GPUs.
    Tiled,
    /// Shared-memory tiling with the tiles read back as `vec4`, each
    /// invocation owning 4 × 4 blocks: a quarter of `Tiled`'s workgroup
    /// loads at 8 × 8 outputs per invocation. Tiles must be 4 or 8 a side.
    Vec4,
}

impl MatmulVariant {
    pub const ALL: [MatmulVariant; 3] = [
        MatmulVariant::Blocked,
        MatmulVariant::Tiled,
        MatmulVariant::Vec4,
    ];

    /// The name in `MDN_GPU_KERNELS` (`matmul=…`).
    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Blocked => "blocked",
            MatmulVariant::Tiled => "tiled",
            MatmulVariant::Vec4 => "vec4",
        }
    }

    /// Staged in workgroup memory, with the tiled workgroup shape.
    pub fn is_tiled(self) -> bool {
        self != MatmulVariant::Blocked
    }
}

/// Per-device kernel tuning; every field becomes a WGSL override constant
/// or a dispatch decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelConfig {
    pub matmul: MatmulVariant,
    /// Outputs per invocation (both variants), at most [`MAX_TILE`].
    pub tile_m: u32,
    pub tile_n: u32,
    /// Invocations per workgroup of the blocked matmul.
    pub blocked_wg: u32,
    /// Workgroup shape and K depth of the tiled matmul.
    pub tiled_wg_m: u32,
    pub tiled_wg_n: u32,
    pub tile_k: u32,
    /// Workgroup sizes of the per-row stages, the loss reduction (a power
    /// of two) and Adam.
    pub rows_wg: u32,
    pub reduce_wg: u32,
    pub adam_wg: u32,
    /// The weight-gradient pass splits the batch until about this many
    /// invocations run at once…
    pub target_invocations: u32,
    /// …but never below this many rows per split.
    pub min_split_rows: u32,
    /// A thin product runs in a narrow workgroup
    /// ([`super::matmul::Workgroup`]) when that saves at least this many
    /// padded multiply-adds, in units of 2^20 (0: whenever it is thin).
    pub narrow_macs: u32,
    /// Outputs per invocation for products of at least `big_macs` × 2^20
    /// multiply-adds (tiled variants; `None`: `tile` for every product).
    pub big_tile: Option<(u32, u32)>,
    pub big_macs: u32,
}

/// `MAX_TILE` in `shaders/matmul.wgsl`.
pub const MAX_TILE: u32 = 8;

/// Environment variable with kernel overrides, e.g. `tile=8x8,k=8`.
pub const GPU_KERNELS_ENV: &str = "MDN_GPU_KERNELS";

impl std::fmt::Display for KernelConfig {
    /// In the override syntax, so a printed configuration can be pasted
    /// back into `MDN_GPU_KERNELS`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.matmul {
            MatmulVariant::Tiled | MatmulVariant::Vec4 => write!(
                f,
                "matmul={},tile={}x{},wg={}x{},k={}",
                self.matmul.name(),
                self.tile_m,
                self.tile_n,
                self.tiled_wg_m,
                self.tiled_wg_n,
                self.tile_k
            )?,
            MatmulVariant::Blocked => write!(
                f,
                "matmul=blocked,tile={}x{},blocked_wg={}",
                self.tile_m, self.tile_n, self.blocked_wg
            )?,
        }
        write!(
            f,
            ",rows_wg={},reduce_wg={},adam_wg={},invocations={},split_rows={},narrow={}",
            self.rows_wg,
            self.reduce_wg,
            self.adam_wg,
            self.target_invocations,
            self.min_split_rows,
            self.narrow_macs
        )?;
        match self.big_tile {
            Some((m, n)) => write!(f, ",big_tile={m}x{n},big_macs={}", self.big_macs),
            None => write!(f, ",big_tile=none,big_macs={}", self.big_macs),
        }
    }
}

impl KernelConfig {
    /// The variant and sizes for an adapter: CPU drivers (lavapipe,
    /// llvmpipe, WARP) get register blocking, everything else shared-memory
    /// tiles.
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> Self {
        if is_software_adapter(info) {
            Self::software()
        } else {
            Self::hardware()
        }
    }

    /// For software rasterisers. Each workgroup runs on one CPU thread,
    /// vectorised 8 invocations wide, so modest workgroups, several per
    /// thread, keep every core busy. Mesa 22.3's lavapipe/llvmpipe read
    /// storage and workgroup memory one lane at a time (about 10 ns per
    /// lane and element measured here), and barriers switch coroutines, so
    /// the count that matters is loads per multiply-add: an 8×8 register
    /// tile does 16 per 64 and was the fastest of 1×1…8×8 and the tiled
    /// variant on lavapipe.
    pub fn software() -> Self {
        let threads = std::thread::available_parallelism().map_or(4, |n| n.get()) as u32;
        KernelConfig {
            matmul: MatmulVariant::Blocked,
            tile_m: 8,
            tile_n: 8,
            blocked_wg: 32,
            tiled_wg_m: 8,
            tiled_wg_n: 8,
            tile_k: 16,
            rows_wg: 64,
            reduce_wg: 64,
            adam_wg: 256,
            target_invocations: 32 * 4 * threads,
            min_split_rows: 256,
            narrow_macs: 16,
            big_tile: None,
            big_macs: 256,
        }
    }

    /// For real GPUs: 64×64 output blocks per 256-invocation workgroup,
    /// 4×4 outputs per invocation. Narrow workgroups where they save 16 M
    /// padded multiply-adds: the large benchmark's thin products (hundreds
    /// of millions each), none of small's or medium's (latency-bound steps
    /// whose kernels were measured with full blocks).
    pub fn hardware() -> Self {
        KernelConfig {
            matmul: MatmulVariant::Tiled,
            tile_m: 4,
            tile_n: 4,
            blocked_wg: 64,
            tiled_wg_m: 16,
            tiled_wg_n: 16,
            tile_k: 16,
            rows_wg: 64,
            reduce_wg: 256,
            adam_wg: 256,
            target_invocations: 1 << 16,
            min_split_rows: 64,
            narrow_macs: 16,
            big_tile: None,
            big_macs: 256,
        }
    }

    /// The adapter's configuration with the overrides of
    /// `MDN_GPU_KERNELS` applied (see [`KernelConfig::with_overrides`]).
    pub fn from_env(info: &wgpu::AdapterInfo) -> Result<Self> {
        let base = Self::for_adapter(info);
        match std::env::var(GPU_KERNELS_ENV) {
            Ok(v) if !v.trim().is_empty() => base
                .with_overrides(&v)
                .map_err(|e| MdnError::Config(format!("{GPU_KERNELS_ENV}=`{v}`: {e}"))),
            _ => Ok(base),
        }
    }

    /// Applies `key=value` overrides, comma-separated, for tuning the kernels
    /// on a device without rebuilding: `matmul=tiled|blocked`,
    /// `tile=8x8` (outputs per invocation), `wg=16x16` (tiled workgroup
    /// shape), `k=16` (tiled depth), `blocked_wg=64`, `rows_wg=64`,
    /// `reduce_wg=256`, `adam_wg=256`, `invocations=65536` and
    /// `split_rows=64` (weight-gradient row splits), `narrow=16` (see
    /// [`KernelConfig::narrow_macs`]), `big_tile=8x8|none` and
    /// `big_macs=256` (see [`KernelConfig::big_tile`]).
    pub fn with_overrides(mut self, spec: &str) -> std::result::Result<Self, String> {
        fn number(key: &str, v: &str) -> std::result::Result<u32, String> {
            v.trim()
                .parse()
                .map_err(|_| format!("`{key}` wants a whole number, got `{v}`"))
        }
        fn pair(key: &str, v: &str) -> std::result::Result<(u32, u32), String> {
            let (a, b) = v
                .split_once(['x', 'X'])
                .ok_or_else(|| format!("`{key}` wants MxN, got `{v}`"))?;
            Ok((number(key, a)?, number(key, b)?))
        }
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, v) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not key=value"))?;
            match key.trim() {
                "matmul" => {
                    self.matmul = MatmulVariant::ALL
                        .into_iter()
                        .find(|variant| variant.name() == v.trim())
                        .ok_or_else(|| {
                            format!("matmul is blocked, tiled or vec4, got `{}`", v.trim())
                        })?;
                }
                "tile" => (self.tile_m, self.tile_n) = pair(key, v)?,
                "wg" => (self.tiled_wg_m, self.tiled_wg_n) = pair(key, v)?,
                "k" => self.tile_k = number(key, v)?,
                "blocked_wg" => self.blocked_wg = number(key, v)?,
                "rows_wg" => self.rows_wg = number(key, v)?,
                "reduce_wg" => self.reduce_wg = number(key, v)?,
                "adam_wg" => self.adam_wg = number(key, v)?,
                "invocations" => self.target_invocations = number(key, v)?,
                "split_rows" => self.min_split_rows = number(key, v)?,
                "narrow" => self.narrow_macs = number(key, v)?,
                "big_tile" if v.trim() == "none" => self.big_tile = None,
                "big_tile" => self.big_tile = Some(pair(key, v)?),
                "big_macs" => self.big_macs = number(key, v)?,
                other => {
                    return Err(format!(
                        "unknown key `{other}`; keys: matmul, tile, wg, k, blocked_wg, rows_wg, \
                         reduce_wg, adam_wg, invocations, split_rows, narrow, big_tile, big_macs"
                    ));
                }
            }
        }
        Ok(self)
    }

    /// The same sizes with another matmul variant (the tests run each).
    pub fn with_matmul(self, matmul: MatmulVariant) -> Self {
        KernelConfig { matmul, ..self }
    }

    pub fn tiled_wg(&self) -> u32 {
        self.tiled_wg_m * self.tiled_wg_n
    }

    /// Refuses sizes the shaders or the device cannot take.
    pub fn validate(&self, limits: &wgpu::Limits) -> Result<()> {
        let bad = |m: String| Err(MdnError::Config(format!("kernel configuration: {m}")));
        if !self.reduce_wg.is_power_of_two() {
            return bad("the reduce workgroup must be a power of two".into());
        }
        let max_wg = limits
            .max_compute_invocations_per_workgroup
            .min(limits.max_compute_workgroup_size_x);
        for (name, wg) in [
            ("blocked matmul", self.blocked_wg),
            ("tiled matmul", self.tiled_wg()),
            ("row", self.rows_wg),
            ("reduce", self.reduce_wg),
            ("adam", self.adam_wg),
        ] {
            if wg == 0 || wg > max_wg {
                return bad(format!("{name} workgroup of {wg} (device max {max_wg})"));
            }
        }
        // Every tile size in use, in its full workgroup (the narrow ones
        // hold less).
        let tile_sizes = self.matmul_shapes().into_iter();
        for shape in tile_sizes.filter(|s| s.workgroup == Workgroup::Full) {
            let c = self.shaped(shape);
            let (m, n) = (c.tile_m, c.tile_n);
            if !(1..=MAX_TILE).contains(&m) || !(1..=MAX_TILE).contains(&n) {
                return bad(format!(
                    "tiles must be 1..={MAX_TILE} per side, not {m}x{n}"
                ));
            }
            if c.matmul == MatmulVariant::Vec4 && (!m.is_multiple_of(4) || !n.is_multiple_of(4)) {
                return bad(format!(
                    "the vec4 matmul takes tiles of 4 or 8 a side, not {m}x{n}"
                ));
            }
            let shared = match c.matmul {
                MatmulVariant::Blocked => 0,
                MatmulVariant::Tiled => 4 * (c.a_tile_len() + c.b_tile_len()),
                MatmulVariant::Vec4 => 16 * (c.a_quads_len() + c.b_quads_len()),
            };
            if shared > limits.max_compute_workgroup_storage_size {
                return bad(format!(
                    "{shared} bytes of workgroup memory at {m}x{n} tiles (device max {})",
                    limits.max_compute_workgroup_storage_size
                ));
            }
        }
        if self.tile_k == 0 || self.target_invocations == 0 || self.min_split_rows == 0 {
            return bad("sizes must be positive".into());
        }
        Ok(())
    }

    fn matmul_constants(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("TILE_M", self.tile_m as f64),
            ("TILE_N", self.tile_n as f64),
            ("BLOCKED_WG", self.blocked_wg as f64),
            ("TILED_WG_M", self.tiled_wg_m as f64),
            ("TILED_WG_N", self.tiled_wg_n as f64),
            ("TILED_WG", self.tiled_wg() as f64),
            ("TILE_K", self.tile_k as f64),
            ("A_TILE_LEN", self.a_tile_len() as f64),
            ("B_TILE_LEN", self.b_tile_len() as f64),
            ("A_QUADS_LEN", self.a_quads_len() as f64),
            ("B_QUADS_LEN", self.b_quads_len() as f64),
        ]
    }

    /// Floats in `gemm_tiled`'s staged tiles: TILE_K rows of a block.
    fn a_tile_len(&self) -> u32 {
        self.tile_k * self.tiled_wg_m * self.tile_m
    }

    fn b_tile_len(&self) -> u32 {
        self.tile_k * self.tiled_wg_n * self.tile_n
    }

    /// `vec4`s in `gemm_vec4`'s staged tiles: TILE_K rows of a block's
    /// quads plus one of padding.
    fn a_quads_len(&self) -> u32 {
        self.tile_k * ((self.tiled_wg_m * self.tile_m).div_ceil(4) + 1)
    }

    fn b_quads_len(&self) -> u32 {
        self.tile_k * ((self.tiled_wg_n * self.tile_n).div_ceil(4) + 1)
    }
}

/// One pipeline: which shader, which entry point, which override values.
/// The constructors below build from these, and the validation test feeds
/// the same list to naga's override processing, so a misspelt constant
/// fails without a GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineSpec {
    pub label: &'static str,
    /// For the matmul stages: the workgroup shape (one pipeline each).
    pub shape: Option<MatmulShape>,
    pub shader: Shader,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, f64)>,
}

impl KernelConfig {
    /// Every pipeline of [`Kernels`] for this configuration.
    pub fn pipelines(&self) -> Vec<PipelineSpec> {
        let spec = |label, shader, entry, constants| PipelineSpec {
            label,
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
        specs.extend([
            spec("mixture_head", Shader::MixtureHead, "main", rows.clone()),
            spec("mse_head", Shader::MseHead, "main", rows),
            spec(
                "reduce",
                Shader::Reduce,
                "main",
                vec![("REDUCE_WG", self.reduce_wg as f64)],
            ),
            spec(
                "adam",
                Shader::Adam,
                "adam",
                vec![("ADAM_WG", self.adam_wg as f64)],
            ),
            spec(
                "sum_partials",
                Shader::Adam,
                "sum_partials",
                vec![("ADAM_WG", self.adam_wg as f64)],
            ),
            spec(
                "sample",
                Shader::Sample,
                "main",
                vec![("SAMPLE_WG", self.rows_wg as f64)],
            ),
        ]);
        specs
    }

    fn pipeline_spec(&self, label: &str, shape: Option<MatmulShape>) -> PipelineSpec {
        self.pipelines()
            .into_iter()
            .find(|p| p.label == label && p.shape == shape)
            .expect("every constructor's label is in KernelConfig::pipelines")
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

/// `adam.wgsl`: the update, and the gradient sum alone for inspection.
pub struct AdamKernel {
    pub layout: wgpu::BindGroupLayout,
    pub adam: wgpu::ComputePipeline,
    pub sum_partials: wgpu::ComputePipeline,
}

/// Every pipeline the trainer and the sampler use, built once per device
/// and shared (pipeline creation costs 50–170 ms each on software drivers).
pub struct Kernels {
    pub config: KernelConfig,
    pub gather: Kernel,
    pub dense_forward: DenseForwardKernel,
    pub dense_backward: DenseBackwardKernel,
    pub mixture_head: Kernel,
    pub mse_head: Kernel,
    pub reduce: Kernel,
    pub adam: AdamKernel,
    pub sample: Kernel,
}

impl Kernels {
    /// Builds every kernel with the adapter's default configuration and
    /// the overrides of `MDN_GPU_KERNELS`, if set.
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        Self::with_config(ctx, KernelConfig::from_env(&ctx.info)?)
    }

    pub fn with_config(ctx: &GpuContext, config: KernelConfig) -> Result<Self> {
        config.validate(&ctx.device.limits())?;
        // Errors raised while creating pipelines (a shader the driver
        // rejects) must be ours to report, not a stale one from earlier.
        ctx.check()?;
        let d = &ctx.device;
        let kernels = Kernels {
            config,
            gather: gather(d, &config),
            dense_forward: dense_forward(d, &config),
            dense_backward: dense_backward(d, &config),
            mixture_head: mixture_head(d, &config),
            mse_head: mse_head(d, &config),
            reduce: reduce(d, &config),
            adam: adam(d, &config),
            sample: sample(d, &config),
        };
        ctx.check()?;
        Ok(kernels)
    }
}

/// What one binding of group 0 holds.
#[derive(Clone, Copy)]
enum Slot {
    Read,
    ReadWrite,
    Uniform(u64),
    /// A uniform record chosen per dispatch by a dynamic offset.
    DynamicUniform(u64),
}

fn layout(device: &wgpu::Device, label: &str, slots: &[Slot]) -> wgpu::BindGroupLayout {
    let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            let (ty, has_dynamic_offset, min) = match *slot {
                Slot::Read => (
                    wgpu::BufferBindingType::Storage { read_only: true },
                    false,
                    None,
                ),
                Slot::ReadWrite => (
                    wgpu::BufferBindingType::Storage { read_only: false },
                    false,
                    None,
                ),
                Slot::Uniform(size) => (
                    wgpu::BufferBindingType::Uniform,
                    false,
                    NonZeroU64::new(size),
                ),
                Slot::DynamicUniform(size) => (
                    wgpu::BufferBindingType::Uniform,
                    true,
                    NonZeroU64::new(size),
                ),
            };
            wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty,
                    has_dynamic_offset,
                    min_binding_size: min,
                },
                count: None,
            }
        })
        .collect();
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &entries,
    })
}

fn module(device: &wgpu::Device, shader: Shader) -> wgpu::ShaderModule {
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some(shader.name()),
        source: wgpu::ShaderSource::Wgsl(shader.source().into()),
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
        label: Some(spec.label),
        bind_group_layouts: &[Some(bind_layout)],
        immediate_size: 0,
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(spec.label),
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

fn size<T>() -> u64 {
    size_of::<T>() as u64
}

fn build(
    device: &wgpu::Device,
    cfg: &KernelConfig,
    bind_layout: &wgpu::BindGroupLayout,
    module: &wgpu::ShaderModule,
    label: &str,
) -> wgpu::ComputePipeline {
    pipeline(device, bind_layout, module, &cfg.pipeline_spec(label, None))
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
            let spec = cfg.pipeline_spec(label, Some(shape));
            (shape, pipeline(device, bind_layout, module, &spec))
        })
        .collect();
    MatmulPipelines {
        config: *cfg,
        by_shape,
    }
}

/// `shaders/gather.wgsl`.
pub fn gather(device: &wgpu::Device, cfg: &KernelConfig) -> Kernel {
    use Slot::*;
    let layout = layout(
        device,
        "gather",
        &[
            Read,
            Read,
            Read,
            ReadWrite,
            ReadWrite,
            Uniform(size::<GatherInfo>()),
            DynamicUniform(size::<StepInfo>()),
        ],
    );
    let m = module(device, Shader::Gather);
    let pipeline = build(device, cfg, &layout, &m, "gather");
    Kernel { layout, pipeline }
}

/// `shaders/dense_forward.wgsl`, in the configured matmul variant.
pub fn dense_forward(device: &wgpu::Device, cfg: &KernelConfig) -> DenseForwardKernel {
    use Slot::*;
    let layout = layout(
        device,
        "dense_forward",
        &[Read, Read, ReadWrite, Uniform(size::<DenseInfo>())],
    );
    let m = module(device, Shader::DenseForward);
    let pipelines = build_matmul(device, cfg, &layout, &m, "dense_forward");
    DenseForwardKernel { layout, pipelines }
}

/// `shaders/dense_backward.wgsl`, both modes, in the configured variant.
pub fn dense_backward(device: &wgpu::Device, cfg: &KernelConfig) -> DenseBackwardKernel {
    use Slot::*;
    let layout = layout(
        device,
        "dense_backward",
        &[
            Read,
            Read,
            Read,
            ReadWrite,
            ReadWrite,
            Uniform(size::<DenseInfo>()),
        ],
    );
    let m = module(device, Shader::DenseBackward);
    DenseBackwardKernel {
        weight: build_matmul(device, cfg, &layout, &m, "dense_backward weight"),
        input: build_matmul(device, cfg, &layout, &m, "dense_backward input"),
        layout,
    }
}

fn head_kernel(device: &wgpu::Device, cfg: &KernelConfig, shader: Shader) -> Kernel {
    use Slot::*;
    let layout = layout(
        device,
        shader.name(),
        &[
            Read,
            Read,
            ReadWrite,
            ReadWrite,
            Uniform(size::<HeadInfo>()),
        ],
    );
    let m = module(device, shader);
    let pipeline = build(device, cfg, &layout, &m, shader.name());
    Kernel { layout, pipeline }
}

/// `shaders/mixture_head.wgsl`.
pub fn mixture_head(device: &wgpu::Device, cfg: &KernelConfig) -> Kernel {
    head_kernel(device, cfg, Shader::MixtureHead)
}

/// `shaders/mse_head.wgsl`.
pub fn mse_head(device: &wgpu::Device, cfg: &KernelConfig) -> Kernel {
    head_kernel(device, cfg, Shader::MseHead)
}

/// `shaders/reduce.wgsl`.
pub fn reduce(device: &wgpu::Device, cfg: &KernelConfig) -> Kernel {
    use Slot::*;
    let layout = layout(
        device,
        "reduce",
        &[Read, ReadWrite, Uniform(size::<ReduceInfo>())],
    );
    let m = module(device, Shader::Reduce);
    let pipeline = build(device, cfg, &layout, &m, "reduce");
    Kernel { layout, pipeline }
}

/// `shaders/adam.wgsl`.
pub fn adam(device: &wgpu::Device, cfg: &KernelConfig) -> AdamKernel {
    use Slot::*;
    let layout = layout(
        device,
        "adam",
        &[
            ReadWrite,
            Read,
            ReadWrite,
            ReadWrite,
            ReadWrite,
            Uniform(size::<AdamInfo>()),
            DynamicUniform(size::<StepInfo>()),
        ],
    );
    let m = module(device, Shader::Adam);
    AdamKernel {
        adam: build(device, cfg, &layout, &m, "adam"),
        sum_partials: build(device, cfg, &layout, &m, "sum_partials"),
        layout,
    }
}

/// `shaders/sample.wgsl`.
pub fn sample(device: &wgpu::Device, cfg: &KernelConfig) -> Kernel {
    use Slot::*;
    let layout = layout(
        device,
        "sample",
        &[Read, ReadWrite, Uniform(size::<SampleInfo>())],
    );
    let m = module(device, Shader::Sample);
    let pipeline = build(device, cfg, &layout, &m, "sample");
    Kernel { layout, pipeline }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_and_print_back() {
        let base = KernelConfig::hardware();
        let tuned = base
            .with_overrides(" tile=8x8, wg=8X32,k=8,matmul=tiled,split_rows=128,narrow=0")
            .unwrap();
        assert_eq!((tuned.tile_m, tuned.tile_n), (8, 8));
        assert_eq!(
            (tuned.tiled_wg_m, tuned.tiled_wg_n, tuned.tile_k),
            (8, 32, 8)
        );
        assert_eq!((tuned.min_split_rows, tuned.narrow_macs), (128, 0));
        assert_eq!(tuned.rows_wg, base.rows_wg);
        // The printed form is itself a complete set of overrides.
        let vec4 = base
            .with_overrides("matmul=vec4,tile=8x4,big_tile=8x8,big_macs=64")
            .unwrap();
        assert_eq!(vec4.matmul, MatmulVariant::Vec4);
        assert_eq!((vec4.big_tile, vec4.big_macs), (Some((8, 8)), 64));
        for cfg in [tuned, vec4, KernelConfig::software()] {
            let other = if cfg.matmul.is_tiled() {
                KernelConfig::software()
            } else {
                KernelConfig::hardware()
            };
            let back = other.with_overrides(&cfg.to_string()).unwrap();
            let same_matmul = match cfg.matmul {
                MatmulVariant::Tiled | MatmulVariant::Vec4 => {
                    (back.tiled_wg_m, back.tiled_wg_n, back.tile_k)
                        == (cfg.tiled_wg_m, cfg.tiled_wg_n, cfg.tile_k)
                }
                MatmulVariant::Blocked => back.blocked_wg == cfg.blocked_wg,
            };
            assert!(
                same_matmul && back.to_string() == cfg.to_string(),
                "{cfg} vs {back}"
            );
        }
        assert_eq!(base.with_overrides("").unwrap(), base);
    }

    #[test]
    fn bad_overrides_say_what_is_wrong() {
        let base = KernelConfig::hardware();
        for (spec, want) in [
            ("tile=8", "MxN"),
            ("tile=8xq", "whole number"),
            ("speed=11", "unknown key `speed`"),
            ("matmul=fast", "blocked, tiled or vec4"),
            ("k", "not key=value"),
        ] {
            let err = base.with_overrides(spec).unwrap_err();
            assert!(err.contains(want), "{spec}: {err}");
        }
        // Out-of-range values parse, and validation refuses them.
        let limits = wgpu::Limits::default();
        let big = base.with_overrides("tile=9x9").unwrap();
        assert!(big.validate(&limits).is_err());
        let odd = base.with_overrides("matmul=vec4,tile=8x6").unwrap();
        let err = odd.validate(&limits).unwrap_err().to_string();
        assert!(err.contains("4 or 8"), "{err}");
        // The big tile is held to the same rules where it is used.
        for (spec, want) in [
            ("big_tile=9x9", "not 9x9"),
            ("matmul=vec4,big_tile=8x6", "not 8x6"),
            ("big_tile=8x8,k=32", "workgroup memory at 8x8"),
        ] {
            let cfg = base.with_overrides(spec).unwrap();
            let err = cfg.validate(&limits).unwrap_err().to_string();
            assert!(err.contains(want), "{spec}: {err}");
        }
        let unused = KernelConfig::software()
            .with_overrides("big_tile=9x9")
            .unwrap();
        assert!(unused.validate(&limits).is_ok(), "blocked: no big tiles");
        let shared = base.with_overrides("tile=8x8,wg=16x16,k=64").unwrap();
        let err = shared.validate(&limits).unwrap_err().to_string();
        assert!(err.contains("workgroup memory"), "{err}");
    }
}
