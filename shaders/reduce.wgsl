// reduce.wgsl: twin of src/cpu/reduce.rs. One workgroup: the batch mean of
// the row losses is added into the LossState buffer, which the host reads
// only when it asks for the loss. A non-finite mean bumps a sticky counter
// instead, so a divergence anywhere in a chunk of steps is seen at the next
// read without reading back every step. A trainer of several models
// dispatches one workgroup per model (workgroup_id.z): model m's row losses
// start at m·rows, its state is `loss[m]`.

override REDUCE_WG: u32 = 256u; // a power of two

@group(0) @binding(0) var<storage, read> row_loss: array<f32>;
@group(0) @binding(1) var<storage, read_write> loss: array<LossState>;
@group(0) @binding(2) var<uniform> info: ReduceInfo;

var<workgroup> partial: array<f32, REDUCE_WG>;

@compute @workgroup_size(REDUCE_WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let model = wid.z;
    let base = model * info.rows;
    var s = 0.0;
    for (var r = lid; r < info.rows; r += REDUCE_WG) {
        s += row_loss[base + r];
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var w = REDUCE_WG / 2u; w > 0u; w /= 2u) {
        if (lid < w) {
            partial[lid] += partial[lid + w];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let mean = partial[0] / f32(info.rows);
        loss[model].last = mean;
        if (is_finite(mean)) {
            // Kahan summation: thousands of steps between reads would
            // otherwise lose the low bits of an f32 sum.
            let sum = loss[model].sum;
            let y = mean - loss[model].compensation;
            let t = sum + y;
            loss[model].compensation = (t - sum) - y;
            loss[model].sum = t;
            loss[model].count += 1u;
        } else {
            loss[model].nonfinite += 1u;
        }
    }
}
