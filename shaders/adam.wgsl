// adam.wgsl: twin of src/cpu/adam.rs. One dispatch over the whole flat
// parameter vector of every model (workgroup_id.z is the model, whose
// parameters, moments and gradient partials sit at its own offsets). The
// gradient of each parameter is the sum, in split order, of its layer's
// partial slices written by dense_backward's weight pass or the fused
// step: the deterministic second stage of the split-over-batch reduction.
// One workgroup more per model, after the parameters' (`param_groups`),
// adds the step's batch loss into the model's LossState (loss_sum.wgsl,
// prepended): the loss needs no dispatch of its own, and runs beside the
// updates, which do not touch it.

override ADAM_WG: u32 = 256u;
// Invocations sharing one parameter's sum over the partial slices (a
// power of two dividing ADAM_WG, `KernelConfig::adam_lanes`): with
// hundreds of slices, one invocation's chain of loads would set the
// dispatch's time. Lane l adds slices l, l + ADAM_LANES, … in order; the
// lanes' sums are then added in lane order: a fixed order, so the
// gradient is still deterministic (at 1 lane, the plain split order).
override ADAM_LANES: u32 = 1u;

@group(0) @binding(0) var<storage, read_write> params: array<f32>;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> m_state: array<f32>;
@group(0) @binding(3) var<storage, read_write> v_state: array<f32>;
@group(0) @binding(4) var<storage, read_write> grads: array<f32>;
@group(0) @binding(5) var<uniform> info: AdamInfo;
@group(0) @binding(6) var<uniform> step: StepInfo;
// Each model's learning rate as a multiple of the step's `lr` (1 for a
// trainer of one model); 0 freezes the model (a diverged or early-stopped
// member of a sweep keeps its parameters and moments).
@group(0) @binding(7) var<storage, read> model_lr: array<f32>;
// The step's row losses and each model's loss state (loss_sum.wgsl).
@group(0) @binding(8) var<storage, read> row_loss: array<f32>;
@group(0) @binding(9) var<storage, read_write> loss: array<LossState>;
@group(0) @binding(10) var<uniform> loss_info: ReduceInfo;

fn loss_rows() -> u32 {
    return loss_info.rows;
}

// Workgroups of one model's parameters; the next one sums the loss.
fn param_groups() -> u32 {
    return (info.len * ADAM_LANES + ADAM_WG - 1u) / ADAM_WG;
}

var<workgroup> lane_sums: array<f32, ADAM_WG>;

// Lane `lane`'s share of parameter j's gradient: its slices, in order.
fn lane_gradient(model: u32, j: u32, lane: u32) -> f32 {
    // At most MAX_LAYERS entries: a linear scan is cheaper than anything
    // cleverer.
    var l = 0u;
    loop {
        if (l + 1u >= info.layer_count || j < info.layers[l + 1u].start) {
            break;
        }
        l++;
    }
    let layer = info.layers[l];
    let e = j - layer.start;
    let base = model * info.partial_stride + layer.partial_offset;
    var g = 0.0;
    for (var s = lane; s < layer.splits; s += ADAM_LANES) {
        g += partials[base + s * layer.len + e];
    }
    return g;
}

// This invocation's parameter: `lid / ADAM_LANES` of the group's.
fn parameter_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return flat_group(wid, nwg) * (ADAM_WG / ADAM_LANES) + lid / ADAM_LANES;
}

// Parameter j's gradient, complete on lane 0 only. Every invocation must
// call it: with several lanes it meets a barrier.
fn gradient(model: u32, j: u32, lid: u32) -> f32 {
    let lane = lid % ADAM_LANES;
    var g = 0.0;
    if (j < info.len) {
        g = lane_gradient(model, j, lane);
    }
    if (ADAM_LANES > 1u) {
        lane_sums[lid] = g;
        workgroupBarrier();
        if (lane == 0u) {
            for (var l = 1u; l < ADAM_LANES; l++) {
                g += lane_sums[lid + l];
            }
        }
    }
    return g;
}

// The Adam update, in the CPU's exact operation order.
@compute @workgroup_size(ADAM_WG)
fn adam(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Workgroup-uniform, so the barriers on either side stay in uniform
    // control flow.
    if (flat_group(wid, nwg) == param_groups()) {
        add_batch_loss(wid.z, lid);
        return;
    }
    let j = parameter_index(wid, nwg, lid);
    let g = gradient(wid.z, j, lid);
    let model = wid.z;
    let scale = model_lr[model];
    if (j >= info.len || lid % ADAM_LANES != 0u || scale == 0.0) {
        return;
    }
    let at = model * info.len + j;
    let m = step.beta1 * m_state[at] + (1.0 - step.beta1) * g;
    let v = step.beta2 * v_state[at] + (1.0 - step.beta2) * g * g;
    m_state[at] = m;
    v_state[at] = v;
    let m_hat = m / step.bias1;
    let v_hat = v / step.bias2;
    params[at] -= (step.lr * scale) * m_hat / (sqrt(v_hat) + step.eps);
}

// The summed gradient alone (and the batch loss, as `adam` adds it), for
// inspection (tests, gradient checks); training never runs it.
@compute @workgroup_size(ADAM_WG)
fn sum_partials(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    if (flat_group(wid, nwg) == param_groups()) {
        add_batch_loss(wid.z, lid);
        return;
    }
    let j = parameter_index(wid, nwg, lid);
    let g = gradient(wid.z, j, lid);
    if (j >= info.len || lid % ADAM_LANES != 0u) {
        return;
    }
    grads[wid.z * info.len + j] = g;
}
