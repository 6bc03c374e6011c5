// dense_backward.wgsl: twin of src/cpu/dense_backward.rs. From
// grad_out = ∂L/∂z of one layer, two products (matmul.wgsl's tile loops),
// picked per pipeline by the override BACKWARD_MODE:
//   MODE_WEIGHT: C[o, i] = Σ_rows grad_out[r, o]·input[r, i]. The
//     workgroups after the product's own sum the bias gradient
//     Σ_rows grad_out[r, o], one output per invocation (a column of ones
//     in the product would cost a whole extra block of tiles whenever `in`
//     is a multiple of the tile width: +25 % work at 256 inputs). The batch
//     is cut into `splits` runs of rows (dispatch z); each writes its own
//     partial slice, in the parameter order (weight [out, in], then bias
//     [out]), and the Adam pass sums the slices in a fixed order. Narrow
//     layers and big batches get parallelism from the rows, and nothing
//     depends on timing (no float atomics, which GL lacks anyway).
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
        // k = row, n = input unit
        return input[k * info.in_dim + n];
    }
    // k = output unit, n = input unit
    return params[info.weight + k * info.in_dim + n];
}

fn store_c(m: u32, n: u32, split: u32, acc: f32) {
    if (BACKWARD_MODE == MODE_WEIGHT) {
        partials[partial_start(split) + m * info.in_dim + n] = acc;
        return;
    }
    let x = input[m * info.in_dim + n];
    grad_in[m * info.in_dim + n] = acc * (1.0 - x * x);
}

// Where split `split`'s slice of the weight-gradient partials starts.
fn partial_start(split: u32) -> u32 {
    return info.partial_offset + split * info.out_dim * (info.in_dim + 1u);
}

// Σ over split `split`'s rows of grad_out[r, o]: output o's bias gradient.
// Neighbouring invocations read neighbouring outputs of each row.
fn bias_gradient(o: u32, split: u32) {
    if (o >= info.out_dim) {
        return;
    }
    let ks = gemm_k_range(split);
    var sum = 0.0;
    for (var r = ks.x; r < ks.y; r++) {
        sum += grad_out[r * info.out_dim + o];
    }
    partials[partial_start(split) + info.out_dim * info.in_dim + o] = sum;
}

@compute @workgroup_size(BLOCKED_WG)
fn backward_blocked(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let group = flat_group(wid, nwg);
    if (BACKWARD_MODE == MODE_WEIGHT) {
        let product = gemm_groups_blocked();
        if (group >= product) {
            bias_gradient((group - product) * BLOCKED_WG + lid, wid.z);
            return;
        }
    }
    gemm_blocked(group * BLOCKED_WG + lid, wid.z);
}

@compute @workgroup_size(TILED_WG)
fn backward_tiled(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // `group` is workgroup-uniform, so the tile loop's barriers stay in
    // uniform control flow.
    let group = flat_group(wid, nwg);
    if (BACKWARD_MODE == MODE_WEIGHT) {
        let product = gemm_groups_tiled();
        if (group >= product) {
            bias_gradient((group - product) * TILED_WG + lid, wid.z);
            return;
        }
    }
    gemm_tiled(lid, group, wid.z);
}

@compute @workgroup_size(TILED_WG)
fn backward_vec4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // As backward_tiled: the same grid, the bias sums after the product's.
    let group = flat_group(wid, nwg);
    if (BACKWARD_MODE == MODE_WEIGHT) {
        let product = gemm_groups_tiled();
        if (group >= product) {
            bias_gradient((group - product) * TILED_WG + lid, wid.z);
            return;
        }
    }
    gemm_vec4(lid, group, wid.z);
}
