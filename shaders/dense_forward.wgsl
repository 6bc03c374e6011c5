// dense_forward.wgsl: twin of src/cpu/dense_forward.rs,
// `output = act(input · Wᵀ + b)`, as the product C[row, o] of
// A = input [rows, in] and B = Wᵀ (W is [out, in] row-major, PyTorch
// style, inside the flat parameter vector). The tile loops are in
// matmul.wgsl, prepended by the Rust side.

@group(0) @binding(0) var<storage, read> params: array<f32>;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<uniform> info: DenseInfo;

fn gemm_m() -> u32 {
    return info.rows;
}

fn gemm_n() -> u32 {
    return info.out_dim;
}

fn gemm_k_range(split: u32) -> vec2<u32> {
    return vec2<u32>(0u, info.in_dim);
}

fn load_a(m: u32, k: u32) -> f32 {
    return input[m * info.in_dim + k];
}

fn load_b(k: u32, n: u32) -> f32 {
    return params[info.weight + n * info.in_dim + k];
}

fn store_c(m: u32, n: u32, split: u32, acc: f32) {
    var v = acc + params[info.bias + n];
    if (info.tanh != 0u) {
        v = tanh(v);
    }
    output[m * info.out_dim + n] = v;
}

@compute @workgroup_size(BLOCKED_WG)
fn forward_blocked(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    gemm_blocked(flat_group(wid, nwg) * BLOCKED_WG + lid, 0u);
}

@compute @workgroup_size(TILED_WG)
fn forward_tiled(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    gemm_tiled(lid, flat_group(wid, nwg), 0u);
}

@compute @workgroup_size(TILED_WG)
fn forward_vec4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    gemm_vec4(lid, flat_group(wid, nwg), 0u);
}
