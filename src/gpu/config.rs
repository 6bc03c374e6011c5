//! Per-device tuning of the compute kernels: the matmul variant, tile and
//! workgroup sizes, and which shape each matrix product is dispatched in.
//! Every field becomes a WGSL override constant or a dispatch decision;
//! `MDN_GPU_KERNELS` overrides them without a rebuild.

use super::context::is_software_adapter;
use super::loop_budget::strided_passes;
use super::matmul::{MatmulShape, NARROW_WG, Product, Tiles, Workgroup};
use crate::error::{MdnError, Result};

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
    /// Workgroup sizes of the per-row stages and of Adam (a power of two:
    /// one of its workgroups per model also sums the batch loss, with a
    /// lane per invocation).
    pub rows_wg: u32,
    pub adam_wg: u32,
    /// Invocations that share one parameter's gradient sum in Adam (a
    /// power of two dividing `adam_wg`): lane `l` adds the partial slices
    /// `l`, `l + lanes`, …, and the lanes' sums are added in lane order.
    /// 1 sums every slice in one invocation. With hundreds of slices (the
    /// fused step's workgroups) one invocation's chain of loads is long.
    pub adam_lanes: u32,
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
    /// Whether networks that qualify train with the fused step
    /// (`shaders/fused_step.wgsl`, see `gpu::fused`): `fused=off` forces
    /// the per-stage path, the parity oracle.
    pub fused: bool,
    /// Invocations per workgroup of the fused step…
    pub fused_wg: u32,
    /// …the side of each invocation's square register tile in its three
    /// products (1..=[`MAX_TILE`])…
    pub fused_tile: u32,
    /// …its 4×4 tiles summed in named `vec4` registers instead of arrays
    /// indexed by loop counters (`fused_vec4=on`; `fused_tile` must be 4):
    /// an array stays in registers only where the driver unrolls first…
    pub fused_vec4: bool,
    /// …its array sums four terms a loop pass (`fused_unroll=on`; not with
    /// `fused_vec4`): the same sums in the same order, for drivers that do
    /// not unroll a loop whose length comes from the data and so wait on
    /// each term's loads before the next…
    pub fused_unroll: bool,
    /// …at most this many batch rows a chunk (1..=64; workgroup memory may
    /// allow fewer): fewer rows make more, shorter chunks, so more
    /// workgroups for one model and more partial slices…
    pub fused_rows: u32,
    /// …and at most this many workgroups per step, all of a trainer's
    /// models together (one a model at least), each summing its chunks'
    /// gradients into one partial slice that Adam adds up…
    pub fused_groups: u32,
    /// …each declaring this many floats of workgroup memory for a chunk's
    /// activations and deltas ([`super::fused`]): 4096 (16 KiB) fits every
    /// device; more, where the device allows, gives a chunk more rows
    /// (wide networks: 6 rows of 128-wide layers at 16 KiB, 20 at 48).
    pub fused_scratch: u32,
    /// Whether each fused workgroup first copies every layer's weights into
    /// that memory (rows padded to an odd stride), so the forward and
    /// input-delta products read them there instead of from the parameter
    /// buffer: fewer rows a chunk, cheaper weight loads.
    pub fused_stage: bool,
    /// `mdn sweep` pads models of one depth but different K or widths into
    /// one trainer (`crate::model::pad`) when the padded network's
    /// multiply-adds, times the models, are at most this percent of the
    /// models' own; else each shape gets its own trainer, one after another
    /// (0: never pad).
    pub pad_percent: u32,
    /// Stream the training rows per submission even when the data fits one
    /// storage binding (`stream=on`; tests). Larger data always streams.
    pub stream: bool,
}

/// `MAX_TILE` in `shaders/matmul.wgsl`.
pub const MAX_TILE: u32 = 8;

/// Most rows a chunk of the fused step: beyond this a bigger chunk saves
/// nothing (each invocation already has several outputs per phase).
/// [`KernelConfig::fused_rows`] may ask for fewer.
pub const MAX_CHUNK_ROWS: usize = 64;

/// Floats of workgroup memory the fused step declares by default: 16 KiB,
/// the limit every wgpu device offers (`Limits::default()`)…
pub const DEFAULT_FUSED_SCRATCH: u32 = 4096;
/// …and at least (a 4 KiB scratch holds too few rows to be worth a
/// variant).
pub const MIN_FUSED_SCRATCH: u32 = 1024;

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
            ",rows_wg={},adam_wg={},adam_lanes={},invocations={},split_rows={},narrow={}",
            self.rows_wg,
            self.adam_wg,
            self.adam_lanes,
            self.target_invocations,
            self.min_split_rows,
            self.narrow_macs
        )?;
        match self.big_tile {
            Some((m, n)) => write!(f, ",big_tile={m}x{n},big_macs={}", self.big_macs)?,
            None => write!(f, ",big_tile=none,big_macs={}", self.big_macs)?,
        }
        write!(
            f,
            ",fused={},fused_wg={},fused_tile={},fused_vec4={},fused_unroll={},fused_rows={},fused_groups={},fused_scratch={},fused_stage={},pad={}",
            if self.fused { "on" } else { "off" },
            self.fused_wg,
            self.fused_tile,
            if self.fused_vec4 { "on" } else { "off" },
            if self.fused_unroll { "on" } else { "off" },
            self.fused_rows,
            self.fused_groups,
            self.fused_scratch,
            if self.fused_stage { "on" } else { "off" },
            self.pad_percent
        )?;
        if self.stream {
            write!(f, ",stream=on")?;
        }
        Ok(())
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
            adam_wg: 256,
            adam_lanes: 1,
            target_invocations: 32 * 4 * threads,
            min_split_rows: 256,
            narrow_macs: 16,
            big_tile: None,
            big_macs: 256,
            // Off: on CPU drivers a step is bound by loads, not by
            // dispatches (~14 µs each), and Mesa 22.3 compiles a shader with
            // barriers (the fused step has several per chunk) as coroutines
            // whose every per-lane load keeps its state in memory: 3-4×
            // slower on lavapipe than the per-stage kernels, which have no
            // barrier (docs/benchmarks.md). `fused=on` still runs it (the
            // tests do).
            fused: false,
            stream: false,
            fused_wg: 64,
            // The fewest loads per multiply-add (lavapipe, small: 9.5-11.9
            // ms a step at 8x8, 11.2-12.6 at 4x4).
            fused_tile: 8,
            fused_vec4: false,
            fused_unroll: false,
            fused_rows: MAX_CHUNK_ROWS as u32,
            // Never: a CPU driver is bound by arithmetic, which padding only
            // adds to (docs/benchmarks.md).
            pad_percent: 0,
            // A few workgroups per thread, as for the matmuls: more would
            // only lengthen Adam's sum over the partial slices.
            fused_groups: 4 * threads,
            fused_scratch: DEFAULT_FUSED_SCRATCH,
            fused_stage: false,
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
            adam_wg: 256,
            // One invocation a parameter, as measured on the H200. With
            // fused_groups=2048 a medium model's gradient is 274 slices;
            // `scripts/device-run` tries 8 lanes.
            adam_lanes: 1,
            target_invocations: 1 << 16,
            min_split_rows: 64,
            narrow_macs: 16,
            big_tile: None,
            big_macs: 256,
            // On: small networks' steps are bound by dispatch latency on
            // real GPUs. Measured on an H200: 2.2× the per-stage step at
            // the small size, 1.03× at medium (docs/benchmarks.md, C).
            fused: true,
            stream: false,
            fused_wg: 64,
            // 4×4 beat 1×1, 2×2 and 8×8 on the H200 (8×8: a third).
            fused_tile: 4,
            // Arrays, as measured on the H200; `scripts/device-run` tries
            // the named registers.
            fused_vec4: false,
            fused_unroll: false,
            // One small model is 37 chunks of 28 rows (its workgroup memory
            // allows no more): fewer rows would give it more workgroups.
            // Unmeasured; `scripts/device-run` tries 8 and 16.
            fused_rows: MAX_CHUNK_ROWS as u32,
            // A group runs its chunks one after another. At 256 the H200's
            // step time grew with the chunks per group (small: 1, 2, 5
            // chunks → 37, 69, 162 µs for 1, 8, 32 models, some 30 µs a
            // chunk) while a few hundred 64-invocation workgroups leave
            // most of the card idle; 2048 gives 32 small models a chunk
            // per group, for more partial slices for Adam to add up (at
            // most 2048 × the parameters). Unmeasured: `scripts/device-run`
            // compares 256 and 2048.
            fused_groups: 2048,
            // 16 KiB, which every device offers. Unmeasured: the H200
            // offers 48 (`mdn tune` tries 32 and 48 where they exist).
            fused_scratch: DEFAULT_FUSED_SCRATCH,
            // Unmeasured on a real GPU; `mdn tune` tries it.
            fused_stage: false,
            // Up to twice the arithmetic for one trainer instead of one per
            // shape: on the H200 a sweep of five K padded into one trainer
            // took 0.98 s against 1.65 s for five (docs/benchmarks.md, C).
            pad_percent: 200,
        }
    }

    /// The adapter's configuration with the overrides of
    /// `MDN_GPU_KERNELS` applied (see [`KernelConfig::with_overrides`]).
    pub fn from_env(info: &wgpu::AdapterInfo) -> Result<Self> {
        Self::for_adapter(info).with_env_overrides()
    }

    /// This configuration with the overrides of `MDN_GPU_KERNELS` applied.
    pub fn with_env_overrides(self) -> Result<Self> {
        match std::env::var(GPU_KERNELS_ENV) {
            Ok(v) if !v.trim().is_empty() => self
                .with_overrides(&v)
                .map_err(|e| MdnError::Config(format!("{GPU_KERNELS_ENV}=`{v}`: {e}"))),
            _ => Ok(self),
        }
    }

    /// Applies `key=value` overrides, comma-separated, for tuning the kernels
    /// on a device without rebuilding: `matmul=tiled|blocked`,
    /// `tile=8x8` (outputs per invocation), `wg=16x16` (tiled workgroup
    /// shape), `k=16` (tiled depth), `blocked_wg=64`, `rows_wg=64`,
    /// `adam_wg=256`, `adam_lanes=1`, `invocations=65536` and
    /// `split_rows=64` (weight-gradient row splits), `narrow=16` (see
    /// [`KernelConfig::narrow_macs`]), `big_tile=8x8|none` and
    /// `big_macs=256` (see [`KernelConfig::big_tile`]), `fused=on|off`,
    /// `fused_wg=64`, `fused_tile=4`, `fused_vec4=off`, `fused_unroll=off`, `fused_rows=64`,
    /// `fused_groups=2048`, `fused_scratch=4096` and `fused_stage=off` (see
    /// [`KernelConfig::fused`]), `pad=200` (see
    /// [`KernelConfig::pad_percent`]).
    pub fn with_overrides(mut self, spec: &str) -> std::result::Result<Self, String> {
        fn number(key: &str, v: &str) -> std::result::Result<u32, String> {
            v.trim()
                .parse()
                .map_err(|_| format!("`{key}` wants a whole number, got `{v}`"))
        }
        fn on_off(key: &str, v: &str) -> std::result::Result<bool, String> {
            match v.trim() {
                "on" => Ok(true),
                "off" => Ok(false),
                other => Err(format!("{key} is on or off, got `{other}`")),
            }
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
                "adam_wg" => self.adam_wg = number(key, v)?,
                "adam_lanes" => self.adam_lanes = number(key, v)?,
                "invocations" => self.target_invocations = number(key, v)?,
                "split_rows" => self.min_split_rows = number(key, v)?,
                "narrow" => self.narrow_macs = number(key, v)?,
                "big_tile" if v.trim() == "none" => self.big_tile = None,
                "big_tile" => self.big_tile = Some(pair(key, v)?),
                "big_macs" => self.big_macs = number(key, v)?,
                "fused" => self.fused = on_off("fused", v)?,
                "stream" => self.stream = on_off("stream", v)?,
                "fused_wg" => self.fused_wg = number(key, v)?,
                "fused_tile" => self.fused_tile = number(key, v)?,
                "fused_vec4" => self.fused_vec4 = on_off("fused_vec4", v)?,
                "fused_unroll" => self.fused_unroll = on_off("fused_unroll", v)?,
                "fused_rows" => self.fused_rows = number(key, v)?,
                "fused_groups" => self.fused_groups = number(key, v)?,
                "fused_scratch" => self.fused_scratch = number(key, v)?,
                "fused_stage" => self.fused_stage = on_off("fused_stage", v)?,
                "pad" => self.pad_percent = number(key, v)?,
                other => {
                    return Err(format!(
                        "unknown key `{other}`; keys: matmul, tile, wg, k, blocked_wg, rows_wg, \
                         adam_wg, adam_lanes, invocations, split_rows, narrow, big_tile, big_macs, \
                         fused, fused_wg, fused_tile, fused_vec4, fused_unroll, fused_rows, fused_groups, fused_scratch, fused_stage, pad"
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
        if !self.adam_wg.is_power_of_two() {
            return bad(format!(
                "the adam workgroup must be a power of two (it also sums the loss), not {}",
                self.adam_wg
            ));
        }
        if !self.adam_lanes.is_power_of_two() || !self.adam_wg.is_multiple_of(self.adam_lanes) {
            return bad(format!(
                "adam_lanes must be a power of two dividing adam_wg ({}), not {}",
                self.adam_wg, self.adam_lanes
            ));
        }
        let max_wg = limits
            .max_compute_invocations_per_workgroup
            .min(limits.max_compute_workgroup_size_x);
        for (name, wg) in [
            ("blocked matmul", self.blocked_wg),
            ("tiled matmul", self.tiled_wg()),
            ("row", self.rows_wg),
            ("adam", self.adam_wg),
            ("fused step", self.fused_wg),
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
        if self.fused_vec4 && self.fused_unroll {
            return bad(
                "fused_unroll unrolls the array sums, which fused_vec4 replaces: not both".into(),
            );
        }
        if self.fused_vec4 && self.fused_tile != 4 {
            return bad(format!(
                "fused_vec4 takes 4x4 tiles (fused_tile=4), not {}",
                self.fused_tile
            ));
        }
        if !(1..=MAX_TILE).contains(&self.fused_tile) {
            return bad(format!(
                "fused tiles must be 1..={MAX_TILE} a side, not {}",
                self.fused_tile
            ));
        }
        if !(1..=MAX_CHUNK_ROWS as u32).contains(&self.fused_rows) {
            return bad(format!(
                "fused chunks must have 1..={MAX_CHUNK_ROWS} rows, not {}",
                self.fused_rows
            ));
        }
        let scratch_bytes = 4 * self.fused_scratch as u64;
        if self.fused_scratch < MIN_FUSED_SCRATCH
            || scratch_bytes > limits.max_compute_workgroup_storage_size as u64
        {
            return bad(format!(
                "the fused step's workgroup memory of {} floats ({scratch_bytes} bytes): \
                 at least {MIN_FUSED_SCRATCH} floats, at most the device's {} bytes",
                self.fused_scratch, limits.max_compute_workgroup_storage_size
            ));
        }
        if self.tile_k == 0
            || self.target_invocations == 0
            || self.min_split_rows == 0
            || self.fused_groups == 0
        {
            return bad("sizes must be positive".into());
        }
        Ok(())
    }

    pub(crate) fn matmul_constants(&self) -> Vec<(&'static str, f64)> {
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

impl KernelConfig {
    /// Whether products of at least `big_macs` get other tiles.
    fn has_big_tiles(&self) -> bool {
        self.matmul.is_tiled()
            && self
                .big_tile
                .is_some_and(|t| t != (self.tile_m, self.tile_n))
    }

    /// The shape a product is dispatched with: big tiles where configured
    /// and the product is big enough; then a narrow workgroup when the
    /// product fills at most half of the block along a side and that saves
    /// at least `narrow_macs` × 2^20 multiply-adds of padding. The blocked
    /// variant, whose tiles are already small, has one shape.
    pub fn matmul_shape(&self, p: &Product) -> MatmulShape {
        if !self.matmul.is_tiled() {
            return MatmulShape::BASE;
        }
        let tiles = if self.has_big_tiles() && p.macs() >= (self.big_macs as u64) << 20 {
            Tiles::Big
        } else {
            Tiles::Base
        };
        let full = MatmulShape {
            tiles,
            workgroup: Workgroup::Full,
        };
        let c = self.shaped(full);
        let workgroup = if c.tiled_wg_n > NARROW_WG && 2 * p.n <= c.tiled_wg_n * c.tile_n {
            Workgroup::NarrowN
        } else if c.tiled_wg_m > NARROW_WG && 2 * p.m <= c.tiled_wg_m * c.tile_m {
            Workgroup::NarrowM
        } else {
            return full;
        };
        let narrow = MatmulShape { tiles, workgroup };
        let saved = self
            .padded_macs(full, p)
            .saturating_sub(self.padded_macs(narrow, p));
        if saved >= (self.narrow_macs as u64) << 20 {
            narrow
        } else {
            full
        }
    }

    /// Multiply-adds a tiled product costs in `shape`, padding included.
    pub fn padded_macs(&self, shape: MatmulShape, p: &Product) -> u64 {
        let c = self.shaped(shape);
        let bm = (c.tiled_wg_m * c.tile_m) as u64;
        let bn = (c.tiled_wg_n * c.tile_n) as u64;
        (p.m as u64).div_ceil(bm) * bm * (p.n as u64).div_ceil(bn) * bn * p.k as u64
    }

    /// This configuration with the tile and workgroup of `shape`.
    pub fn shaped(&self, shape: MatmulShape) -> KernelConfig {
        let mut c = *self;
        if let (Tiles::Big, Some((m, n))) = (shape.tiles, self.big_tile) {
            (c.tile_m, c.tile_n) = (m, n);
        }
        match shape.workgroup {
            Workgroup::Full => {}
            Workgroup::NarrowN => c.tiled_wg_n = c.tiled_wg_n.min(NARROW_WG),
            Workgroup::NarrowM => c.tiled_wg_m = c.tiled_wg_m.min(NARROW_WG),
        }
        c
    }

    /// The shapes this configuration builds pipelines for.
    pub fn matmul_shapes(&self) -> Vec<MatmulShape> {
        if !self.matmul.is_tiled() {
            return vec![MatmulShape::BASE];
        }
        let tiles: &[Tiles] = if self.has_big_tiles() {
            &[Tiles::Base, Tiles::Big]
        } else {
            &[Tiles::Base]
        };
        tiles
            .iter()
            .flat_map(|&tiles| {
                Workgroup::ALL
                    .into_iter()
                    .map(move |workgroup| MatmulShape { tiles, workgroup })
            })
            .collect()
    }

    /// Workgroups of Adam (and of the gradient sum) over `n` parameters
    /// of each model: `adam_lanes` invocations a parameter. A training
    /// step's Adam dispatch has one more per model, which sums the loss
    /// (`shaders/adam.wgsl`).
    pub fn adam_groups(&self, n: usize) -> u64 {
        (n as u64 * self.adam_lanes as u64).div_ceil(self.adam_wg as u64)
    }

    /// Workgroups of one matmul dispatch (per split) producing `p`'s
    /// result, in the shape [`KernelConfig::matmul_shape`] picks.
    pub fn matmul_groups(&self, p: &Product) -> u64 {
        self.shaped(self.matmul_shape(p)).shape_groups(p.m, p.n)
    }

    fn shape_groups(&self, m: u32, n: u32) -> u64 {
        let (m, n) = (m as u64, n as u64);
        match self.matmul {
            MatmulVariant::Blocked => {
                let tiles = m.div_ceil(self.tile_m as u64) * n.div_ceil(self.tile_n as u64);
                tiles.div_ceil(self.blocked_wg as u64)
            }
            MatmulVariant::Tiled | MatmulVariant::Vec4 => {
                m.div_ceil((self.tiled_wg_m * self.tile_m) as u64)
                    * n.div_ceil((self.tiled_wg_n * self.tile_n) as u64)
            }
        }
    }

    /// Workgroups of one split of a layer's weight-gradient dispatch: the
    /// `out × in` product's, then enough for one bias output per invocation
    /// (`dense_backward.wgsl`).
    pub fn weight_gradient_groups(&self, p: &Product) -> u64 {
        let shaped = self.shaped(self.matmul_shape(p));
        shaped.shape_groups(p.m, p.n) + (p.m as u64).div_ceil(shaped.matmul_wg() as u64)
    }

    /// Loop passes per row of the shared dimension that one invocation of
    /// `shaders/matmul.wgsl` runs for `p` (see `gpu::loop_budget`): the
    /// sum's loop, and in the staged variants a share of the staging loops
    /// each block of `tile_k` rows runs (`Tiled`'s start at the invocation,
    /// so the driver cannot unroll them; `Vec4`'s run a fixed count).
    pub fn loop_passes_per_k(&self, p: &Product) -> u64 {
        let s = self.shaped(self.matmul_shape(p));
        let staging = match s.matmul {
            MatmulVariant::Blocked => return 1,
            MatmulVariant::Tiled => {
                let wg = s.tiled_wg() as u64;
                let (bm, bn) = (s.tiled_wg_m * s.tile_m, s.tiled_wg_n * s.tile_n);
                let k = s.tile_k as u64;
                strided_passes(bm as u64 * k, wg) + strided_passes(bn as u64 * k, wg)
            }
            MatmulVariant::Vec4 => 0,
        };
        1 + (1 + staging).div_ceil(s.tile_k.max(1) as u64)
    }

    /// Invocations one split of a matmul keeps busy.
    pub fn matmul_invocations(&self, p: &Product) -> u64 {
        let shaped = self.shaped(self.matmul_shape(p));
        shaped.shape_groups(p.m, p.n) * shaped.matmul_wg() as u64
    }

    /// Invocations per workgroup of the matmul variant in use.
    fn matmul_wg(&self) -> u32 {
        match self.matmul {
            MatmulVariant::Blocked => self.blocked_wg,
            MatmulVariant::Tiled | MatmulVariant::Vec4 => self.tiled_wg(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LayerLayout;

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
        // `fused=off` forces the per-stage path; `on` allows the fused one.
        let off = base
            .with_overrides("fused=off,fused_groups=8,fused_tile=2,pad=150,adam_lanes=8")
            .unwrap();
        assert!(base.with_overrides("fused_vec4=on").unwrap().fused_vec4);
        assert!(base.with_overrides("fused_vec4=yes").is_err());
        assert!(base.with_overrides("fused_unroll=on").unwrap().fused_unroll);
        assert!(!off.fused && off.fused_groups == 8 && off.fused_tile == 2);
        assert_eq!(off.adam_lanes, 8);
        assert_eq!(off.pad_percent, 150);
        assert_eq!(base.with_overrides(&off.to_string()).unwrap(), off);
        assert!(off.with_overrides("fused=on").unwrap().fused);
        assert!(base.with_overrides("fused=maybe").is_err());
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
            ("fused_tile=0", "fused tiles must be 1..=8"),
            ("fused_tile=9", "not 9"),
            (
                "fused_tile=8,fused_vec4=on",
                "fused_vec4 takes 4x4 tiles (fused_tile=4), not 8",
            ),
            (
                "fused_vec4=on,fused_unroll=on",
                "fused_unroll unrolls the array sums, which fused_vec4 replaces",
            ),
            ("fused_rows=0", "fused chunks must have 1..=64 rows"),
            ("fused_rows=65", "not 65"),
            (
                "adam_lanes=3",
                "adam_lanes must be a power of two dividing adam_wg (256), not 3",
            ),
            ("adam_lanes=0", "not 0"),
            ("adam_wg=64,adam_lanes=128", "dividing adam_wg (64)"),
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

    fn layer(in_dim: usize, out_dim: usize) -> LayerLayout {
        LayerLayout {
            in_dim,
            out_dim,
            weight: 0,
            bias: in_dim * out_dim,
            tanh: true,
        }
    }

    const fn shape(tiles: Tiles, workgroup: Workgroup) -> MatmulShape {
        MatmulShape { tiles, workgroup }
    }

    #[test]
    fn narrow_products_get_narrow_workgroups() {
        use Tiles::Base;
        use Workgroup::*;
        let hw = KernelConfig::hardware();
        // The large benchmark network (1 → 256 → 256 → 24, 65 536 rows):
        // the head's forward product, the head's and the first layer's
        // weight gradients are narrow; the 256-wide products are not.
        let (first, hidden, head) = (layer(1, 256), layer(256, 256), layer(256, 24));
        let rows = 65536;
        for (p, want) in [
            (Product::forward(&first, rows), Full),
            (Product::forward(&hidden, rows), Full),
            (Product::forward(&head, rows), NarrowN),
            (Product::weight_gradient(&first, rows), NarrowN),
            (Product::weight_gradient(&hidden, rows), Full),
            (Product::weight_gradient(&head, rows), NarrowM),
            (Product::input_gradient(&head, rows), Full),
        ] {
            let want = shape(Base, want);
            assert_eq!(hw.matmul_shape(&p), want, "{p:?}");
            // The shape's grid covers the product, with less padding than
            // the full block where it is narrow.
            let shaped = hw.shaped(want);
            let (bm, bn) = (
                shaped.tiled_wg_m * shaped.tile_m,
                shaped.tiled_wg_n * shaped.tile_n,
            );
            let groups = hw.matmul_groups(&p);
            assert_eq!(groups, (p.m.div_ceil(bm) * p.n.div_ceil(bn)) as u64);
            assert!(groups * (bm * bn) as u64 >= (p.m * p.n) as u64);
            assert!(hw.padded_macs(want, &p) <= hw.padded_macs(MatmulShape::BASE, &p));
        }
        // The small benchmark's thin products save too little for a narrow
        // (slower to start) workgroup, unless asked for with narrow=0.
        let head = Product::forward(&layer(32, 15), 1024);
        assert_eq!(hw.matmul_shape(&head), MatmulShape::BASE);
        let eager = hw.with_overrides("narrow=0").unwrap();
        assert_eq!(eager.matmul_shape(&head), shape(Base, NarrowN));
        // The blocked variant's small tiles have one shape.
        let sw = KernelConfig::software();
        let thin = Product::weight_gradient(&first, rows);
        assert_eq!(sw.matmul_shape(&thin), MatmulShape::BASE);
        assert_eq!(sw.matmul_shapes(), [MatmulShape::BASE]);
        // Every shape's pipeline is listed, and only for the matmul stages.
        let specs = hw.pipelines();
        for label in [
            "dense_forward",
            "dense_backward weight",
            "dense_backward input",
        ] {
            let shapes: Vec<_> = specs
                .iter()
                .filter(|p| p.label == label)
                .map(|p| p.shape)
                .collect();
            let want: Vec<_> = Workgroup::ALL
                .into_iter()
                .map(|w| Some(shape(Base, w)))
                .collect();
            assert_eq!(shapes, want);
        }
    }

    #[test]
    fn big_products_get_big_tiles() {
        use Tiles::*;
        use Workgroup::*;
        let hw = KernelConfig::hardware()
            .with_overrides("matmul=vec4,big_tile=8x8,big_macs=256")
            .unwrap();
        let (first, hidden, head) = (layer(1, 256), layer(256, 256), layer(256, 24));
        // Large (65 536 rows): the 256-wide products and the head's are
        // over 2^28 multiply-adds; the first layer's (K or N of 1) are not.
        let rows = 65536;
        for (p, want) in [
            (Product::forward(&first, rows), shape(Base, Full)),
            (Product::forward(&hidden, rows), shape(Big, Full)),
            (Product::forward(&head, rows), shape(Big, NarrowN)),
            (Product::weight_gradient(&first, rows), shape(Base, NarrowN)),
            (Product::weight_gradient(&hidden, rows), shape(Big, Full)),
            (Product::weight_gradient(&head, rows), shape(Big, NarrowM)),
            (Product::input_gradient(&hidden, rows), shape(Big, Full)),
        ] {
            assert_eq!(hw.matmul_shape(&p), want, "{p:?}");
            let c = hw.shaped(want);
            let want_tile = if want.tiles == Big { 8 } else { 4 };
            assert_eq!((c.tile_m, c.tile_n), (want_tile, want_tile));
            let (bm, bn) = (c.tiled_wg_m * c.tile_m, c.tiled_wg_n * c.tile_n);
            assert_eq!(
                hw.matmul_groups(&p),
                (p.m.div_ceil(bm) * p.n.div_ceil(bn)) as u64
            );
        }
        // Small (1 024 rows, 32 wide): nothing is big.
        let small = Product::forward(&layer(32, 32), 1024);
        assert_eq!(hw.matmul_shape(&small), MatmulShape::BASE);
        // Six shapes, six pipelines per matmul stage; none where the big
        // tile is the base tile or unset.
        assert_eq!(hw.matmul_shapes().len(), 6);
        let same = hw.with_overrides("big_tile=4x4").unwrap();
        assert_eq!(same.matmul_shapes().len(), 3);
        let off = hw.with_overrides("big_tile=none").unwrap();
        assert_eq!(off.big_tile, None);
        assert_eq!(
            off.matmul_shape(&Product::forward(&hidden, rows)).tiles,
            Base
        );
    }
}
