// sample.wgsl: twin of src/cpu/sample.rs. Draws from the mixture with the
// same counter-based RNG (PCG hash), Box–Muller and temperature rule, so a
// seed gives the same samples on the GPU and the CPU. One invocation per
// sample; sample i belongs to input row i / per_input. The output buffer
// ([rows · per_input, D], z-scored units) is created STORAGE | VERTEX so the
// visualizer can draw it as instances without a readback.

override SAMPLE_WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> head: array<f32>;
@group(0) @binding(1) var<storage, read_write> samples: array<f32>;
@group(0) @binding(2) var<uniform> info: SampleInfo;

// PCG-style integer hash (Jarzynski & Olano 2020), as `pcg_hash`.
fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// Uniform in (0, 1) for draw `draw` of sample `index`.
fn uniform01(seed: u32, index: u32, draw: u32) -> f32 {
    let h = pcg_hash(pcg_hash(pcg_hash(seed) ^ index) ^ draw);
    return (f32(h >> 8u) + 0.5) * (1.0 / 16777216.0);
}

fn normal(seed: u32, index: u32, draw: u32) -> f32 {
    let u1 = uniform01(seed, index, draw);
    let u2 = uniform01(seed, index, draw + 1u);
    return sqrt(-2.0 * log(u1)) * cos(TAU * u2);
}

@compute @workgroup_size(SAMPLE_WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_group(wid, nwg) * SAMPLE_WG + lid;
    if (i >= info.rows * info.per_input) {
        return;
    }
    let kc = info.k;
    let dc = info.d;
    let h = (i / info.per_input) * (kc + 2u * kc * dc);
    let inv_t = 1.0 / info.temperature;
    // π^(1/T) ∝ exp(logit/T): a softmax at temperature T.
    var m = head[h];
    for (var k = 1u; k < kc; k++) {
        m = max(m, head[h + k]);
    }
    var total = 0.0;
    for (var k = 0u; k < kc; k++) {
        total += exp((head[h + k] - m) * inv_t);
    }
    let u = uniform01(info.seed, i, 0u) * total;
    var chosen = kc - 1u;
    var cum = 0.0;
    for (var k = 0u; k < kc; k++) {
        cum += exp((head[h + k] - m) * inv_t);
        if (u < cum) {
            chosen = k;
            break;
        }
    }
    for (var d = 0u; d < dc; d++) {
        let j = chosen * dc + d;
        let mu = head[h + kc + j];
        let sigma = exp(head[h + kc + kc * dc + j]);
        samples[i * dc + d] = mu + info.temperature * sigma * normal(info.seed, i, 1u + 2u * d);
    }
}
