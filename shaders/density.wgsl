// density.wgsl: turns a network's head outputs on a grid of inputs into
// what the visualizer draws, without a readback (src/viz/curves.rs). Input
// column `col` of the grid is `mix(in_lo, in_hi, col / (cols − 1))`; the head
// rows are z-scored (DESIGN.md §1), the outputs are in data units.
//
// * `mlp_curve`: the MLP's prediction as a line strip, vertex (x, y, 1, 0).
// * `components`: for a mixture head, component k's vertex `k·cols + col`
//   is (x, μ_k, π_k, σ_k): the means as curves whose opacity follows π, and
//   the π panel from the same buffer.
// * `density`: p(t | x) on `heat_rows` targets from t_lo to t_hi per input
//   column, divided by the column's peak so every column shows its modes.

// Mirrors `CurveInfo` in src/viz/curves.rs.
struct CurveInfo {
    cols: u32,
    k: u32,
    heat_rows: u32,
    // Values per head row: 1 for an MLP, 3·K for a 1-D mixture.
    width: u32,
    in_lo: f32,
    in_hi: f32,
    t_lo: f32,
    t_hi: f32,
    t_mean: f32,
    t_std: f32,
    _pad0: f32,
    _pad1: f32,
}

@group(0) @binding(0) var<storage, read> head: array<f32>;
@group(0) @binding(1) var<storage, read_write> verts: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> heat: array<f32>;
@group(0) @binding(3) var<uniform> info: CurveInfo;

const INV_SQRT_2PI: f32 = 0.39894228;

fn grid_input(col: u32) -> f32 {
    if (info.cols <= 1u) {
        return info.in_lo;
    }
    return mix(info.in_lo, info.in_hi, f32(col) / f32(info.cols - 1u));
}

@compute @workgroup_size(64)
fn mlp_curve(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    if (col >= info.cols) {
        return;
    }
    let y = head[col * info.width] * info.t_std + info.t_mean;
    verts[col] = vec4<f32>(grid_input(col), y, 1.0, 0.0);
}

// Softmax denominator of a head row's logits, with their maximum.
fn logit_norm(h: u32) -> vec2<f32> {
    var m = head[h];
    for (var k = 1u; k < info.k; k++) {
        m = max(m, head[h + k]);
    }
    var total = 0.0;
    for (var k = 0u; k < info.k; k++) {
        total += exp(head[h + k] - m);
    }
    return vec2<f32>(m, total);
}

// Component k of the mixture in head row `h`, in data units: (π_k, μ_k,
// σ_k).
fn component(h: u32, norm: vec2<f32>, k: u32) -> vec3<f32> {
    let pi = exp(head[h + k] - norm.x) / norm.y;
    let mu = head[h + info.k + k] * info.t_std + info.t_mean;
    let sigma = exp(head[h + 2u * info.k + k]) * info.t_std;
    return vec3<f32>(pi, mu, sigma);
}

@compute @workgroup_size(64)
fn components(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= info.cols * info.k) {
        return;
    }
    let comp = i / info.cols;
    let col = i % info.cols;
    let h = col * info.width;
    let norm = logit_norm(h);
    let c = component(h, norm, comp);
    verts[i] = vec4<f32>(grid_input(col), c.y, c.x, c.z);
}

fn mixture_pdf(h: u32, norm: vec2<f32>, t: f32) -> f32 {
    var p = 0.0;
    for (var k = 0u; k < info.k; k++) {
        let c = component(h, norm, k);
        let sigma = max(c.z, 1e-6);
        let z = (t - c.y) / sigma;
        p += c.x * INV_SQRT_2PI / sigma * exp(-0.5 * z * z);
    }
    return p;
}

// A column an invocation: heat_rows · (K + 1) loop passes, 41 000 at the
// scenes' 160 rows and K = 256 (MAX_K), inside llvmpipe's 65 535
// (src/gpu/loop_budget.rs); taller heatmaps or larger K would need the
// rows split over invocations, as `mode_starts` splits the mode search.
@compute @workgroup_size(64)
fn density(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    if (col >= info.cols) {
        return;
    }
    let h = col * info.width;
    let norm = logit_norm(h);
    let rows = max(info.heat_rows, 1u);
    let dt = (info.t_hi - info.t_lo) / f32(rows);
    var peak = 0.0;
    for (var r = 0u; r < rows; r++) {
        let p = mixture_pdf(h, norm, info.t_lo + (f32(r) + 0.5) * dt);
        heat[r * info.cols + col] = p;
        peak = max(peak, p);
    }
    // Each invocation rereads only the cells it wrote itself.
    let scale = select(0.0, 1.0 / peak, peak > 0.0 && peak < 3e38);
    for (var r = 0u; r < rows; r++) {
        heat[r * info.cols + col] = heat[r * info.cols + col] * scale;
    }
}

// The mixture's mean Σ π_k μ_k and its mode (the global maximum of the
// density) per input column, as two more strips after the K component
// strips: vertex `K·cols + col` is (x, mean, 1, 0), `(K+1)·cols + col` is
// (x, mode, 1, 0). The mode climbs from every component's mean by the
// Gaussian-mixture mean-shift fixed point x ← Σ w_k μ_k/σ_k² / Σ w_k/σ_k²,
// w_k = π_k N(x | μ_k, σ_k), and keeps the highest density reached (the CPU's
// `Mix1::mode` climbs the same way, in f64, to convergence).
//
// Each climb is an invocation of `mode_starts`, which leaves where it got
// and the density there after the drawn strips, at `mode_candidate`;
// `summary` then keeps each column's best. One invocation climbing from all
// K starts ran K · MODE_STEPS · K loop passes, past the 65 535 after which
// llvmpipe ends a shader's loops (src/gpu/loop_budget.rs): a K 32 model
// drew its mode from the first few starts only. Now an invocation runs
// about MODE_STEPS · K.
const MODE_STEPS: u32 = 60u;

// Where the climb from component `start`'s mean in column `col` leaves
// (x, p(x), 0, 0): after the K component strips and the two summary
// strips, not drawn.
fn mode_candidate(start: u32, col: u32) -> u32 {
    return (info.k + 2u + start) * info.cols + col;
}

@compute @workgroup_size(64)
fn mode_starts(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= info.cols * info.k) {
        return;
    }
    let start = i / info.cols;
    let col = i % info.cols;
    let h = col * info.width;
    let norm = logit_norm(h);
    var x = component(h, norm, start).y;
    for (var it = 0u; it < MODE_STEPS; it++) {
        var num = 0.0;
        var den = 0.0;
        for (var k = 0u; k < info.k; k++) {
            let c = component(h, norm, k);
            let sigma = max(c.z, 1e-6);
            let z = (x - c.y) / sigma;
            let w = c.x / sigma * exp(-0.5 * z * z) / (sigma * sigma);
            num += w * c.y;
            den += w;
        }
        if (den > 0.0) {
            x = num / den;
        }
    }
    verts[mode_candidate(start, col)] = vec4<f32>(x, mixture_pdf(h, norm, x), 0.0, 0.0);
}

@compute @workgroup_size(64)
fn summary(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    if (col >= info.cols) {
        return;
    }
    let h = col * info.width;
    let norm = logit_norm(h);
    var mean = 0.0;
    for (var k = 0u; k < info.k; k++) {
        let c = component(h, norm, k);
        mean += c.x * c.y;
    }
    // The first start that reached the highest density.
    var best_x = mean;
    var best_p = -1.0;
    for (var start = 0u; start < info.k; start++) {
        let c = verts[mode_candidate(start, col)];
        if (c.y > best_p) {
            best_p = c.y;
            best_x = c.x;
        }
    }
    let at = grid_input(col);
    verts[info.k * info.cols + col] = vec4<f32>(at, mean, 1.0, 0.0);
    verts[(info.k + 1u) * info.cols + col] = vec4<f32>(at, best_x, 1.0, 0.0);
}
