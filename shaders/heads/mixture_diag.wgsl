// heads/mixture_diag.wgsl: twin of src/head/mixture_diag/mod.rs, the
// diagonal-Gaussian mixture head `[logits (K) | mu (K·D) | log_sigma (K·D)]`
// (DESIGN.md §1). Two entry points, with the bindings every head uses
// (`HeadLossBindings` and `HeadSampleBindings` in src/gpu/bindings.rs):
// * `loss`: per batch row (one invocation each) the mixture NLL by
//   log-sum-exp and, in the same pass, the gradient of the mean batch loss
//   with respect to the head outputs. The loops and their order are the
//   CPU's, so the two round alike.
// * `sample`: one draw per invocation with the counter-based RNG of
//   common.wgsl, so a seed gives the same samples on the GPU and the CPU.
//   Sample i belongs to input row i / per_input; the output buffer
//   ([rows · per_input, D], z-scored) is STORAGE | VERTEX so the visualizer
//   draws it as instances without a readback.

override ROWS_WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> head: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_head: array<f32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<uniform> info: HeadInfo;
@group(0) @binding(5) var<storage, read_write> samples: array<f32>;
@group(0) @binding(6) var<uniform> sample_info: SampleInfo;
// The component each sample was drawn from (the visualizer colours by it).
@group(0) @binding(7) var<storage, read_write> sample_components: array<u32>;
override SAMPLE_WG: u32 = 64u;

// log π_k + Σ_d log N(t_d | μ_kd, σ_kd) for component k of the row whose
// head starts at h and targets at t.
fn log_joint(h: u32, t: u32, k: u32, log_pi: f32) -> f32 {
    let kc = info.k;
    let dc = info.d;
    let mu = h + kc + k * dc;
    let ls = h + kc + kc * dc + k * dc;
    var acc = log_pi;
    for (var d = 0u; d < dc; d++) {
        let z = (targets[t + d] - head[mu + d]) * exp(-head[ls + d]);
        acc -= 0.5 * z * z + head[ls + d] + HALF_LOG_2PI;
    }
    return acc;
}

// log Σ_k exp(logit_k). Starts from the first logit instead of −∞ (WGSL has
// no infinity literal); the same maximum for any finite input.
fn logit_lse(h: u32) -> f32 {
    var m = head[h];
    for (var k = 1u; k < info.k; k++) {
        m = max(m, head[h + k]);
    }
    var s = 0.0;
    for (var k = 0u; k < info.k; k++) {
        s += exp(head[h + k] - m);
    }
    return m + log(s);
}

@compute @workgroup_size(ROWS_WG)
fn loss(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = flat_group(wid, nwg) * ROWS_WG + lid;
    if (r >= info.rows) {
        return;
    }
    let kc = info.k;
    let dc = info.d;
    let h = r * info.width;
    let t = r * dc;
    let lse_l = logit_lse(h);
    // Online log-sum-exp over components: one pass, nothing K-sized. The
    // CPU starts from m = −∞; taking the first component as the start is
    // the same for every finite log joint.
    var m = 0.0;
    var s = 0.0;
    for (var k = 0u; k < kc; k++) {
        let lp = log_joint(h, t, k, head[h + k] - lse_l);
        if (k == 0u) {
            m = lp;
            s = 1.0;
        } else if (lp > m) {
            s = s * exp(m - lp) + 1.0;
            m = lp;
        } else {
            s += exp(lp - m);
        }
    }
    let nll = -(m + log(s));
    row_loss[r] = nll;
    let log_p = -nll;
    let scale = info.grad_scale;
    let mu_off = h + kc;
    let ls_off = h + kc + kc * dc;
    for (var k = 0u; k < kc; k++) {
        let log_pi = head[h + k] - lse_l;
        let gamma = exp(log_joint(h, t, k, log_pi) - log_p);
        grad_head[h + k] = (exp(log_pi) - gamma) * scale;
        for (var d = 0u; d < dc; d++) {
            let i = k * dc + d;
            let inv_sigma = exp(-head[ls_off + i]);
            let z = (targets[t + d] - head[mu_off + i]) * inv_sigma;
            grad_head[mu_off + i] = -gamma * z * inv_sigma * scale;
            grad_head[ls_off + i] = gamma * (1.0 - z * z) * scale;
        }
    }
}

@compute @workgroup_size(SAMPLE_WG)
fn sample(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_group(wid, nwg) * SAMPLE_WG + lid;
    if (i >= sample_info.rows * sample_info.per_input) {
        return;
    }
    let kc = sample_info.k;
    let dc = sample_info.d;
    let h = (i / sample_info.per_input) * (kc + 2u * kc * dc);
    let inv_t = 1.0 / sample_info.temperature;
    // π^(1/T) ∝ exp(logit/T): a softmax at temperature T.
    var m = head[h];
    for (var k = 1u; k < kc; k++) {
        m = max(m, head[h + k]);
    }
    var total = 0.0;
    for (var k = 0u; k < kc; k++) {
        total += exp((head[h + k] - m) * inv_t);
    }
    let u = uniform01(sample_info.seed, i, 0u) * total;
    var chosen = kc - 1u;
    var cum = 0.0;
    for (var k = 0u; k < kc; k++) {
        cum += exp((head[h + k] - m) * inv_t);
        if (u < cum) {
            chosen = k;
            break;
        }
    }
    sample_components[i] = chosen;
    for (var d = 0u; d < dc; d++) {
        let j = chosen * dc + d;
        let mu = head[h + kc + j];
        let sigma = exp(head[h + kc + kc * dc + j]);
        samples[i * dc + d] = mu + sample_info.temperature * sigma * normal(sample_info.seed, i, 1u + 2u * d);
    }
}
