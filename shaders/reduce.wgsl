// reduce.wgsl: the loss reduction of loss_sum.wgsl (prepended) alone, a
// workgroup per model (workgroup_id.z), for the stage tests. Training runs
// the same function, in a workgroup of the same size, inside Adam's
// dispatch (adam.wgsl).

@group(0) @binding(0) var<storage, read> row_loss: array<f32>;
@group(0) @binding(1) var<storage, read_write> loss: array<LossState>;
@group(0) @binding(2) var<uniform> info: ReduceInfo;

fn loss_rows() -> u32 {
    return info.rows;
}

@compute @workgroup_size(REDUCE_WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    add_batch_loss(wid.z, lid);
}
