// heads/mixture_diag.wgsl: twin of src/head/mixture_diag/mod.rs, the
// diagonal-Gaussian mixture head `[logits (K) | mu (K·D) | log_sigma (K·D)]`
// (DESIGN.md §1). Two entry points, with the bindings every head uses
// (`HeadLossBindings` and `HeadSampleBindings` in src/gpu/bindings.rs):
// * `loss`: per batch row (one invocation each) the mixture NLL by
//   log-sum-exp and, in the same pass, the gradient of the mean batch loss
//   with respect to the head outputs: `head_row_loss` of
//   heads/mixture_diag_row.wgsl, which the fused step shares.
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

// Where heads/mixture_diag_row.wgsl (prepended by HeadDef::wgsl) reads
// and writes: this stage's storage buffers.
fn head_at(i: u32) -> f32 {
    return head[i];
}

fn target_at(i: u32) -> f32 {
    return targets[i];
}

fn set_grad(i: u32, v: f32) {
    grad_head[i] = v;
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
    row_loss[r] = head_row_loss(r * info.width, r * info.d, info.k, info.d, info.grad_scale);
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
    let u = uniform01(sample_info.seed, sample_info.first + i, 0u) * total;
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
        samples[i * dc + d] = mu + sample_info.temperature * sigma * normal(sample_info.seed, sample_info.first + i, 1u + 2u * d);
    }
}
