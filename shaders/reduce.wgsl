// reduce.wgsl: twin of src/cpu/reduce.rs. One workgroup: the batch mean of
// the row losses is added into the LossState buffer, which the host reads
// only when it asks for the loss. A non-finite mean bumps a sticky counter
// instead, so a divergence anywhere in a chunk of steps is seen at the next
// read without reading back every step.

override REDUCE_WG: u32 = 256u; // a power of two

@group(0) @binding(0) var<storage, read> row_loss: array<f32>;
@group(0) @binding(1) var<storage, read_write> loss: LossState;
@group(0) @binding(2) var<uniform> info: ReduceInfo;

var<workgroup> partial: array<f32, REDUCE_WG>;

@compute @workgroup_size(REDUCE_WG)
fn main(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var r = lid; r < info.rows; r += REDUCE_WG) {
        s += row_loss[r];
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
        loss.last = mean;
        if (is_finite(mean)) {
            // Kahan summation: thousands of steps between reads would
            // otherwise lose the low bits of an f32 sum.
            let y = mean - loss.compensation;
            let t = loss.sum + y;
            loss.compensation = (t - loss.sum) - y;
            loss.sum = t;
            loss.count += 1u;
        } else {
            loss.nonfinite += 1u;
        }
    }
}
