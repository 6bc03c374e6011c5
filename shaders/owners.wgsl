// owners.wgsl: which mixture component is most responsible for each data
// point (src/viz/owners.rs), so the visualizer can colour the data by it.
// γ_k ∝ π_k N(t | μ_k, σ_k); the argmax needs no normalisation:
// argmax_k logit_k − log σ_k − ½ ((t − μ_k) / σ_k)². One target dimension,
// the diagonal head layout [logits | mu | log_sigma] (DESIGN.md §1),
// z-scored targets as the head sees them.

// Mirrors `OwnerInfo` in src/viz/owners.rs.
struct OwnerInfo {
    rows: u32,
    k: u32,
    width: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> head: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read_write> owners: array<u32>;
@group(0) @binding(3) var<uniform> info: OwnerInfo;

@compute @workgroup_size(64)
fn owners_of(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= info.rows) {
        return;
    }
    let h = i * info.width;
    let t = targets[i];
    var best = 0u;
    var best_score = -3.4e38;
    for (var k = 0u; k < info.k; k++) {
        let log_sigma = head[h + 2u * info.k + k];
        let z = (t - head[h + info.k + k]) * exp(-log_sigma);
        let score = head[h + k] - log_sigma - 0.5 * z * z;
        if (score > best_score) {
            best_score = score;
            best = k;
        }
    }
    owners[i] = best;
}
