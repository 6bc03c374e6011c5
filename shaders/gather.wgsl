// gather.wgsl: twin of src/cpu/gather.rs. Copies this step's minibatch,
// picked by the epoch's permutation, into the batch input and target
// buffers; one invocation per batch row.

override ROWS_WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> perm: array<u32>;
@group(0) @binding(1) var<storage, read> inputs: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read_write> batch_input: array<f32>;
@group(0) @binding(4) var<storage, read_write> batch_target: array<f32>;
@group(0) @binding(5) var<uniform> info: GatherInfo;
@group(0) @binding(6) var<uniform> step: StepInfo;

@compute @workgroup_size(ROWS_WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = flat_group(wid, nwg) * ROWS_WG + lid;
    if (r >= info.rows) {
        return;
    }
    let src = perm[step.batch_start + r];
    for (var j = 0u; j < info.in_dim; j++) {
        batch_input[r * info.in_dim + j] = inputs[src * info.in_dim + j];
    }
    for (var j = 0u; j < info.out_dim; j++) {
        batch_target[r * info.out_dim + j] = targets[src * info.out_dim + j];
    }
}
