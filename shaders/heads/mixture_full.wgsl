// heads/mixture_full.wgsl: twin of src/head/mixture_full.rs (`loss_rows` for the
// `loss` entry point, `sample_one` for `sample`). The full-covariance mixture
// head of DESIGN.md: a head row is [logits (K) | mu (K·D) | chol (K·D(D+1)/2)],
// component k's chol block the upper-triangular precision factor U_k row by
// row, diagonal stored as logs. The loops and their order are the CPU's, so
// the two round alike.
//
// Bindings as every head's (`HeadLossBindings`, `HeadSampleBindings` in
// src/gpu/bindings.rs). Expects prepended: common.wgsl (HeadInfo,
// SampleInfo, flat_group, HALF_LOG_2PI, TAU, the RNG uniform01 and normal)
// and the `const MAX_FULL_D: u32` that `HeadDef::wgsl` emits from
// `MAX_FULL_DIM`.

override ROWS_WG: u32 = 64u;
override SAMPLE_WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> head: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_head: array<f32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<uniform> info: HeadInfo;
@group(0) @binding(5) var<storage, read_write> samples: array<f32>;
@group(0) @binding(6) var<uniform> sample_info: SampleInfo;
// The component each sample was drawn from (the visualizer colours by it).
@group(0) @binding(7) var<storage, read_write> sample_components: array<u32>;

// Per-invocation scratch of `log_joint`: the residual r = t − μ_k and the
// whitened residual v = U_k r, reused by the gradient pass.
var<private> resid: array<f32, MAX_FULL_D>;
var<private> whit: array<f32, MAX_FULL_D>;

// Entries of one component's chol block.
fn chol_len(dc: u32) -> u32 {
    return dc * (dc + 1u) / 2u;
}

// Position of U_ij (i ≤ j) inside a chol block; i(2D+1−i) is always even.
fn tri_index(dc: u32, i: u32, j: u32) -> u32 {
    return i * (2u * dc + 1u - i) / 2u + j - i;
}

// Exactly 0 below −87, as the CPU's exp_or_zero, so both flush alike.
fn exp_or_zero(x: f32) -> f32 {
    if (x < -87.0) {
        return 0.0;
    }
    return exp(x);
}

// log Σ_k exp(logit_k) of the row starting at h. Starts from the first
// logit (WGSL has no infinity literal).
fn logit_lse(h: u32) -> f32 {
    var m = head[h];
    for (var k = 1u; k < info.k; k++) {
        m = max(m, head[h + k]);
    }
    var s = 0.0;
    for (var k = 0u; k < info.k; k++) {
        s += exp_or_zero(head[h + k] - m);
    }
    return m + log(s);
}

// log π_k + log N(t | μ_k, Λ_k⁻¹) for component k of the row whose head
// starts at h and targets at t; leaves r in `resid` and v in `whit`.
fn log_joint(h: u32, t: u32, k: u32, log_pi: f32) -> f32 {
    let kc = info.k;
    let dc = info.d;
    let mu = h + kc + k * dc;
    let c = h + kc + kc * dc + k * chol_len(dc);
    for (var d = 0u; d < dc; d++) {
        resid[d] = targets[t + d] - head[mu + d];
    }
    var acc = log_pi;
    // `row` walks to U_ii, the start of row i of the triangle.
    var row = c;
    for (var i = 0u; i < dc; i++) {
        let log_u = head[row];
        var vi = exp(log_u) * resid[i];
        for (var j = i + 1u; j < dc; j++) {
            vi += head[row + j - i] * resid[j];
        }
        whit[i] = vi;
        acc -= 0.5 * vi * vi - log_u + HALF_LOG_2PI;
        row += dc - i;
    }
    return acc;
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
    let cl = chol_len(dc);
    let h = r * info.width;
    let t = r * dc;
    let lse_l = logit_lse(h);
    // Online log-sum-exp over components: one pass, nothing K-sized.
    var m = 0.0;
    var s = 0.0;
    for (var k = 0u; k < kc; k++) {
        let lp = log_joint(h, t, k, head[h + k] - lse_l);
        if (k == 0u) {
            m = lp;
            s = 1.0;
        } else if (lp > m) {
            s = s * exp_or_zero(m - lp) + 1.0;
            m = lp;
        } else {
            s += exp_or_zero(lp - m);
        }
    }
    let nll = -(m + log(s));
    row_loss[r] = nll;
    let log_p = -nll;
    let scale = info.grad_scale;
    // Pass 2 recomputes each log joint (and r, v): no K-sized storage.
    for (var k = 0u; k < kc; k++) {
        let log_pi = head[h + k] - lse_l;
        let lp = log_joint(h, t, k, log_pi);
        let gamma = exp_or_zero(lp - log_p);
        grad_head[h + k] = (exp_or_zero(log_pi) - gamma) * scale;
        let gs = gamma * scale;
        let mu = h + kc + k * dc;
        let c = h + kc + kc * dc + k * cl;
        // (U_kᵀ v)_d = Σ_{i ≤ d} U_id v_i: column d of the triangle.
        for (var d = 0u; d < dc; d++) {
            var acc = 0.0;
            for (var i = 0u; i < d; i++) {
                acc += head[c + tri_index(dc, i, d)] * whit[i];
            }
            acc += exp(head[c + tri_index(dc, d, d)]) * whit[d];
            grad_head[mu + d] = -gs * acc;
        }
        var row = c;
        for (var i = 0u; i < dc; i++) {
            let u_ii = exp(head[row]);
            // The chain rule through U_ii = exp(log U_ii) gives the U_ii.
            grad_head[row] = -gs * (1.0 - whit[i] * resid[i] * u_ii);
            for (var j = i + 1u; j < dc; j++) {
                grad_head[row + j - i] = gs * whit[i] * resid[j];
            }
            row += dc - i;
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
    let cl = chol_len(dc);
    let seed = sample_info.seed;
    let temperature = sample_info.temperature;
    let h = (i / sample_info.per_input) * (kc + kc * dc + kc * cl);
    let inv_t = 1.0 / temperature;
    // π^(1/T) ∝ exp(logit/T): a softmax at temperature T.
    var m = head[h];
    for (var k = 1u; k < kc; k++) {
        m = max(m, head[h + k]);
    }
    var total = 0.0;
    for (var k = 0u; k < kc; k++) {
        total += exp((head[h + k] - m) * inv_t);
    }
    let u = uniform01(seed, sample_info.first + i, 0u) * total;
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
    let mu = h + kc + chosen * dc;
    let c = h + kc + kc * dc + chosen * cl;
    var x: array<f32, MAX_FULL_D>;
    for (var d = 0u; d < dc; d++) {
        x[d] = normal(seed, sample_info.first + i, 1u + 2u * d);
    }
    // U x' = z by back-substitution, in place, last row first: x' = U⁻¹z
    // has covariance U⁻¹U⁻ᵀ = Λ⁻¹.
    for (var n = 0u; n < dc; n++) {
        let a = dc - 1u - n;
        let row = c + tri_index(dc, a, a);
        var acc = x[a];
        for (var b = a + 1u; b < dc; b++) {
            acc -= head[row + b - a] * x[b];
        }
        x[a] = acc * exp(-head[row]);
    }
    for (var d = 0u; d < dc; d++) {
        samples[i * dc + d] = head[mu + d] + temperature * x[d];
    }
}
