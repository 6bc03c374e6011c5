// dense_backward.wgsl: twin of src/cpu/dense_backward.rs. From
// grad_out = ∂L/∂z of one layer, two products (matmul.wgsl's tile loops),
// picked per pipeline by the override BACKWARD_MODE:
//   MODE_WEIGHT: C[o, i] = Σ_rows grad_out[r, o]·input[r, i], with an extra
//     column i = in of ones for the bias gradient. The batch is cut into
//     `splits` runs of rows (dispatch z); each writes its own partial slice,
//     in the parameter order (weight [out, in], then bias [out]), and the
//     Adam pass sums the slices in a fixed order. Narrow layers and big
//     batches get parallelism from the rows, and nothing depends on timing
//     (no float atomics, which GL lacks anyway).
//   MODE_INPUT: grad_in[r, i] = (Σ_o grad_out[r, o]·W[o, i])·(1 − input²),
//     ∂L/∂z of the layer below through its tanh.

const MODE_WEIGHT: u32 = 0u;
const MODE_INPUT: u32 = 1u;
override BACKWARD_MODE: u32 = 0u;

@group(0) @binding(0) var<storage, read> params: array<f32>;
// The layer's input activation [rows, in] (tanh outputs below layer 0).
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> grad_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<uniform> info: DenseInfo;

fn gemm_m() -> u32 {
    if (BACKWARD_MODE == MODE_WEIGHT) {
        return info.out_dim;
    }
    return info.rows;
}

fn gemm_n() -> u32 {
    if (BACKWARD_MODE == MODE_WEIGHT) {
        return info.in_dim + 1u;
    }
    return info.in_dim;
}

fn gemm_k_range(split: u32) -> vec2<u32> {
    if (BACKWARD_MODE == MODE_WEIGHT) {
        let start = min(split * info.split_rows, info.rows);
        return vec2<u32>(start, min(start + info.split_rows, info.rows));
    }
    return vec2<u32>(0u, info.out_dim);
}

fn load_a(m: u32, k: u32) -> f32 {
    if (BACKWARD_MODE == MODE_WEIGHT) {
        // m = output unit, k = row
        return grad_out[k * info.out_dim + m];
    }
    // m = row, k = output unit
    return grad_out[m * info.out_dim + k];
}

fn load_b(k: u32, n: u32) -> f32 {
    if (BACKWARD_MODE == MODE_WEIGHT) {
        // k = row, n = input unit, or the bias column n = in
        let x = input[k * info.in_dim + min(n, info.in_dim - 1u)];
        return select(x, 1.0, n == info.in_dim);
    }
    // k = output unit, n = input unit
    return params[info.weight + k * info.in_dim + n];
}

fn store_c(m: u32, n: u32, split: u32, acc: f32) {
    if (BACKWARD_MODE == MODE_WEIGHT) {
        let len = info.out_dim * (info.in_dim + 1u);
        let e = select(info.out_dim * info.in_dim + m, m * info.in_dim + n, n < info.in_dim);
        partials[info.partial_offset + split * len + e] = acc;
        return;
    }
    let x = input[m * info.in_dim + n];
    grad_in[m * info.in_dim + n] = acc * (1.0 - x * x);
}

@compute @workgroup_size(BLOCKED_WG)
fn backward_blocked(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    gemm_blocked(flat_group(wid, nwg) * BLOCKED_WG + lid, wid.z);
}

@compute @workgroup_size(TILED_WG)
fn backward_tiled(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    gemm_tiled(lid, flat_group(wid, nwg), wid.z);
}
