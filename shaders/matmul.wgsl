// matmul.wgsl: the tile loops of C[m, n] = Σ_k A[m, k]·B[k, n], shared by
// dense_forward.wgsl and dense_backward.wgsl (the Rust side prepends it after
// common.wgsl). The stage file supplies the operands and the epilogue:
//   gemm_m() / gemm_n(): the size of C;
//   gemm_k_range(split): the range of k summed by split `split`;
//   load_a(m, k), load_b(k, n): operand elements (indices always in range);
//   store_c(m, n, split, acc): writes one finished element.
// Two variants, picked per adapter by the Rust side:
//   gemm_blocked: register blocking, no workgroup memory and no barriers;
//     each invocation owns a TILE_M × TILE_N tile of C. On CPU drivers
//     (lavapipe, llvmpipe) barriers are expensive and this is much faster.
//   gemm_tiled: classic shared-memory tiling; a workgroup of
//     TILED_WG_M × TILED_WG_N invocations stages TILE_K-deep slices of A and
//     B in workgroup memory, each invocation again owning TILE_M × TILE_N
//     outputs. Real GPUs favour this.
// Every size is an override constant set from Rust, so each device gets its
// own tiles without editing the shader.

// Upper bound of TILE_M and TILE_N: private arrays need a constant size.
// The loops run to the override values, which are constants by the time the
// driver compiles, so they unroll and the arrays live in registers.
const MAX_TILE: u32 = 8u;

override TILE_M: u32 = 4u;
override TILE_N: u32 = 4u;
// Invocations per workgroup of the blocked variant.
override BLOCKED_WG: u32 = 64u;
// Workgroup shape of the tiled variant; TILED_WG must equal
// TILED_WG_M · TILED_WG_N (a workgroup size takes one override value).
override TILED_WG_M: u32 = 16u;
override TILED_WG_N: u32 = 16u;
override TILED_WG: u32 = 256u;
override TILE_K: u32 = 16u;
// Which index is contiguous in memory for each operand, so the cooperative
// loads of the tiled variant read consecutive addresses with consecutive
// invocations.
override A_K_FASTEST: bool = true;
override B_N_FASTEST: bool = true;

// Workgroup tile sizes, TILE_K · TILED_WG_M · TILE_M and
// TILE_K · TILED_WG_N · TILE_N, passed in as plain overrides: naga 30
// mishandles an array sized by an override *expression* when it resolves
// the pipeline constants (a panic in `process_overrides`).
override A_TILE_LEN: u32 = 1024u;
override B_TILE_LEN: u32 = 1024u;

var<workgroup> a_tile: array<f32, A_TILE_LEN>;
var<workgroup> b_tile: array<f32, B_TILE_LEN>;

// Workgroups each variant needs for C (`KernelConfig::matmul_groups`).
fn gemm_groups_blocked() -> u32 {
    let tiles = ((gemm_m() + TILE_M - 1u) / TILE_M) * ((gemm_n() + TILE_N - 1u) / TILE_N);
    return (tiles + BLOCKED_WG - 1u) / BLOCKED_WG;
}

fn gemm_groups_tiled() -> u32 {
    let bm = TILED_WG_M * TILE_M;
    let bn = TILED_WG_N * TILE_N;
    return ((gemm_m() + bm - 1u) / bm) * ((gemm_n() + bn - 1u) / bn);
}

fn gemm_blocked(index: u32, split: u32) {
    let m = gemm_m();
    let n = gemm_n();
    let tiles_m = (m + TILE_M - 1u) / TILE_M;
    let tiles_n = (n + TILE_N - 1u) / TILE_N;
    if (index >= tiles_m * tiles_n) {
        return;
    }
    // Neighbouring invocations take neighbouring m tiles, so they share
    // their B loads.
    let m0 = (index % tiles_m) * TILE_M;
    let n0 = (index / tiles_m) * TILE_N;
    // Edge tiles compute on clamped (repeated) indices and skip the store:
    // no branch in the inner loop.
    var ms: array<u32, MAX_TILE>;
    var ns: array<u32, MAX_TILE>;
    for (var i = 0u; i < TILE_M; i++) {
        ms[i] = min(m0 + i, m - 1u);
    }
    for (var j = 0u; j < TILE_N; j++) {
        ns[j] = min(n0 + j, n - 1u);
    }
    let ks = gemm_k_range(split);
    var acc: array<f32, 64>; // MAX_TILE * MAX_TILE
    for (var k = ks.x; k < ks.y; k++) {
        var a: array<f32, MAX_TILE>;
        var b: array<f32, MAX_TILE>;
        for (var i = 0u; i < TILE_M; i++) {
            a[i] = load_a(ms[i], k);
        }
        for (var j = 0u; j < TILE_N; j++) {
            b[j] = load_b(k, ns[j]);
        }
        for (var i = 0u; i < TILE_M; i++) {
            for (var j = 0u; j < TILE_N; j++) {
                acc[i * MAX_TILE + j] += a[i] * b[j];
            }
        }
    }
    for (var i = 0u; i < TILE_M; i++) {
        for (var j = 0u; j < TILE_N; j++) {
            if (m0 + i < m && n0 + j < n) {
                store_c(m0 + i, n0 + j, split, acc[i * MAX_TILE + j]);
            }
        }
    }
}

fn gemm_tiled(lid: u32, group: u32, split: u32) {
    let m = gemm_m();
    let n = gemm_n();
    let bm = TILED_WG_M * TILE_M;
    let bn = TILED_WG_N * TILE_N;
    let groups_m = (m + bm - 1u) / bm;
    let groups_n = (n + bn - 1u) / bn;
    // Workgroup-uniform, so the barriers below stay in uniform control flow.
    if (group >= groups_m * groups_n) {
        return;
    }
    let m0 = (group % groups_m) * bm;
    let n0 = (group / groups_m) * bn;
    // Each invocation owns rows lm + i·TILED_WG_M and columns
    // ln + j·TILED_WG_N of the block: neighbours read neighbouring words of
    // the tiles (no bank conflicts) and write neighbouring outputs.
    let lm = lid % TILED_WG_M;
    let ln = lid / TILED_WG_M;
    let ks = gemm_k_range(split);
    var acc: array<f32, 64>; // MAX_TILE * MAX_TILE
    for (var k0 = ks.x; k0 < ks.y; k0 += TILE_K) {
        for (var e = lid; e < bm * TILE_K; e += TILED_WG) {
            var mm = e % bm;
            var kk = e / bm;
            if (A_K_FASTEST) {
                kk = e % TILE_K;
                mm = e / TILE_K;
            }
            var v = 0.0;
            if (k0 + kk < ks.y) {
                v = load_a(min(m0 + mm, m - 1u), k0 + kk);
            }
            a_tile[kk * bm + mm] = v;
        }
        for (var e = lid; e < bn * TILE_K; e += TILED_WG) {
            var nn = e % bn;
            var kk = e / bn;
            if (!B_N_FASTEST) {
                kk = e % TILE_K;
                nn = e / TILE_K;
            }
            var v = 0.0;
            if (k0 + kk < ks.y) {
                v = load_b(k0 + kk, min(n0 + nn, n - 1u));
            }
            b_tile[kk * bn + nn] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            var a: array<f32, MAX_TILE>;
            var b: array<f32, MAX_TILE>;
            for (var i = 0u; i < TILE_M; i++) {
                a[i] = a_tile[kk * bm + lm + i * TILED_WG_M];
            }
            for (var j = 0u; j < TILE_N; j++) {
                b[j] = b_tile[kk * bn + ln + j * TILED_WG_N];
            }
            for (var i = 0u; i < TILE_M; i++) {
                for (var j = 0u; j < TILE_N; j++) {
                    acc[i * MAX_TILE + j] += a[i] * b[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < TILE_M; i++) {
        for (var j = 0u; j < TILE_N; j++) {
            let row = m0 + lm + i * TILED_WG_M;
            let col = n0 + ln + j * TILED_WG_N;
            if (row < m && col < n) {
                store_c(row, col, split, acc[i * MAX_TILE + j]);
            }
        }
    }
}
