// loss_sum.wgsl: twin of src/cpu/reduce.rs. The batch mean of one model's
// row losses is added into its LossState, which the host reads only when
// it asks for the loss. A non-finite mean bumps a sticky counter instead,
// so a divergence anywhere in a chunk of steps is seen at the next read
// without reading back every step. Prepended (after common.wgsl) to
// adam.wgsl, whose dispatch runs it in one extra workgroup per model
// beside the parameter updates (so training pays no dispatch for it), and
// to reduce.wgsl, which runs it alone for the stage tests. Each declares
// `row_loss` (model m's rows from m·rows), `loss` (one LossState per
// model) and `fn loss_rows() -> u32`.

override REDUCE_WG: u32 = 256u; // a power of two: the workgroup's size

var<workgroup> loss_partial: array<f32, REDUCE_WG>;

// Every invocation of the workgroup calls it (it meets barriers).
fn add_batch_loss(model: u32, lid: u32) {
    let rows = loss_rows();
    let base = model * rows;
    var s = 0.0;
    for (var r = lid; r < rows; r += REDUCE_WG) {
        s += row_loss[base + r];
    }
    loss_partial[lid] = s;
    workgroupBarrier();
    for (var w = REDUCE_WG / 2u; w > 0u; w /= 2u) {
        if (lid < w) {
            loss_partial[lid] += loss_partial[lid + w];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let mean = loss_partial[0] / f32(rows);
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
