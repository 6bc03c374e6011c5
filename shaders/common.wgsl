// common.wgsl: structs and helpers shared by every stage. The Rust side
// prepends this file to each stage's source (WGSL has no include), so a
// struct is declared once for all shaders. Every struct here has a
// `#[repr(C)] Pod` twin of the same name in src/gpu/layouts.rs; a test
// (tests/shader_validation.rs) checks that sizes and offsets agree. Only
// u32 / f32 members with explicit padding, so the two layouts cannot drift
// through implicit alignment rules.

// One `nn.Linear` per layer, at most MAX_HIDDEN_LAYERS + 1 (src/model/spec.rs).
const MAX_LAYERS: u32 = 17u;
// ½·log(2π), as `HALF_LOG_2PI` in src/head/mod.rs.
const HALF_LOG_2PI: f32 = 0.9189385;
// 2π, as `std::f32::consts::TAU`.
const TAU: f32 = 6.2831855;

// Mirrors `StepInfo` in src/gpu/layouts.rs: the per-step values of one
// recorded training step, one record per step (256-byte aligned), bound
// with a dynamic offset so a whole chunk of steps needs no readback.
struct StepInfo {
    // Index into the permutation ring of this step's first batch row.
    batch_start: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    // Adam constants of this step (`AdamStep` in src/cpu/adam.rs).
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias1: f32,
    bias2: f32,
    _pad3: f32,
    _pad4: f32,
}

// Mirrors `LossState` in src/gpu/layouts.rs and `LossAccumulator` in
// src/cpu/reduce.rs: the running batch-loss sum (Kahan-compensated, since
// f32 has fewer bits than the CPU's f64), the number of finite steps, the
// last batch loss, and a sticky count of non-finite steps.
struct LossState {
    sum: f32,
    compensation: f32,
    count: u32,
    last: f32,
    nonfinite: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Mirrors `GatherInfo` in src/gpu/layouts.rs.
struct GatherInfo {
    rows: u32,
    in_dim: u32,
    out_dim: u32,
    _pad0: u32,
}

// Mirrors `DenseInfo` in src/gpu/layouts.rs: one layer (offsets in f32
// elements into the flat parameter vector, as `LayerLayout`), plus the
// split of the batch used by the weight-gradient pass.
struct DenseInfo {
    rows: u32,
    in_dim: u32,
    out_dim: u32,
    weight: u32,
    bias: u32,
    tanh: u32,
    // Weight-gradient pass: the batch is cut into `splits` runs of
    // `split_rows` rows, each reduced into its own slice of the partials
    // buffer, starting at `partial_offset`.
    splits: u32,
    split_rows: u32,
    partial_offset: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Mirrors `HeadInfo` in src/gpu/layouts.rs (mixture and MSE heads).
struct HeadInfo {
    rows: u32,
    k: u32,
    d: u32,
    width: u32,
    // 1/batch: the gradient is that of the mean batch loss.
    grad_scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Mirrors `ReduceInfo` in src/gpu/layouts.rs.
struct ReduceInfo {
    rows: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Mirrors `AdamLayer` in src/gpu/layouts.rs: where one layer's gradient
// partials live. The layer's parameters are `[start, start + len)` of the
// flat vector; its partials are `splits` slices of `len` values from
// `partial_offset`.
struct AdamLayer {
    start: u32,
    len: u32,
    splits: u32,
    partial_offset: u32,
}

// Mirrors `AdamInfo` in src/gpu/layouts.rs.
struct AdamInfo {
    // Parameters of one model: model m's are at m·len (a trainer of M
    // models keeps them side by side; the model is workgroup_id.z).
    len: u32,
    layer_count: u32,
    // Gradient partials of one model.
    partial_stride: u32,
    _pad1: u32,
    layers: array<AdamLayer, MAX_LAYERS>,
}

// Mirrors `SampleInfo` in src/gpu/layouts.rs and `SampleParams` in
// src/head/sample.rs.
struct SampleInfo {
    rows: u32,
    k: u32,
    d: u32,
    per_input: u32,
    seed: u32,
    temperature: f32,
    // The run's index of this pass's first sample: sample i draws with RNG
    // counter first + i, so a run sampled chunk by chunk draws what one
    // pass would.
    first: u32,
    _pad1: u32,
}

// WGSL has no isFinite; an all-ones exponent is ±inf or NaN. Done on the
// bits so no compiler's fast-math assumption can fold it away.
fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

// Large dispatches are split over x and y (each at most 65535 groups);
// this is the flat workgroup index.
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// The counter-based RNG of every head's `sample` entry; twin of
// src/head/sample.rs.
// PCG-style integer hash (Jarzynski & Olano 2020), as `pcg_hash`.
fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// Uniform in (0, 1) for draw `draw` of sample `index`.
fn uniform01(seed: u32, index: u32, draw: u32) -> f32 {
    let h = pcg_hash(pcg_hash(pcg_hash(seed) ^ index) ^ draw);
    return (f32(h >> 8u) + 0.5) * (1.0 / 16777216.0);
}

fn normal(seed: u32, index: u32, draw: u32) -> f32 {
    let u1 = uniform01(seed, index, draw);
    let u2 = uniform01(seed, index, draw + 1u);
    return sqrt(-2.0 * log(u1)) * cos(TAU * u2);
}

// Mirrors `FusedLayer` in src/gpu/layouts.rs: one layer of the fused step
// (fused_step.wgsl). Offsets into the flat parameter vector as
// `LayerLayout`; `act_in`/`act_out` are where the layer's input and output
// rows sit in workgroup memory; the layer's gradient partials are one
// slice of out·(in + 1) values per workgroup from `partial_offset`.
struct FusedLayer {
    in_dim: u32,
    out_dim: u32,
    weight: u32,
    bias: u32,
    act_in: u32,
    act_out: u32,
    partial_offset: u32,
    tanh: u32,
    // With FUSED_STAGE: where the layer's weights sit in workgroup memory,
    // a row of w_stride floats per output (else unused).
    w_at: u32,
    w_stride: u32,
    _pad0: u32,
    _pad1: u32,
}

// Mirrors `FusedInfo` in src/gpu/layouts.rs: the fused step's network and
// the layout of its workgroup memory (src/gpu/fused.rs).
struct FusedInfo {
    // Batch rows.
    rows: u32,
    layer_count: u32,
    // Rows per chunk, and chunks per workgroup.
    chunk_rows: u32,
    chunks_per_group: u32,
    in_dim: u32,
    // Target dimensions, mixture components, head outputs per row.
    d: u32,
    k: u32,
    head_width: u32,
    // 1/batch: the gradient is that of the mean batch loss.
    grad_scale: f32,
    // Workgroup-memory offsets of the targets and of the two delta blocks.
    targets_at: u32,
    delta_a: u32,
    delta_b: u32,
    // One model's share of the parameters, the gradient partials and the
    // permutation ring: model m (workgroup_id.z) reads and writes at m
    // times these; its row losses at m·rows.
    param_stride: u32,
    partial_stride: u32,
    perm_stride: u32,
    _pad0: u32,
    layers: array<FusedLayer, MAX_LAYERS>,
}
