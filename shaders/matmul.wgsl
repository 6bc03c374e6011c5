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
//   gemm_vec4: the same staging, but the tiles are read back four floats
//     at a time (each invocation owns 4 × 4 blocks of C), so an 8 × 8 tile
//     costs 4 workgroup loads per 64 multiply-adds instead of 16: on real
//     GPUs the scalar variant's shared-memory loads, not its arithmetic,
//     limit the issue rate.
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

// Element `e` of a TILE_K-deep slice of A (or B) staged at k0: its offset
// in the block along m (or n), its k offset in the slice, and its value,
// zero past the end of the k range. The index that is contiguous in memory
// varies fastest with e, so consecutive invocations read consecutive
// addresses.
struct Staged {
    offset: u32,
    kk: u32,
    value: f32,
}

fn stage_a(e: u32, bm: u32, m0: u32, k0: u32, k_end: u32) -> Staged {
    var s = Staged(e % bm, e / bm, 0.0);
    if (A_K_FASTEST) {
        s.kk = e % TILE_K;
        s.offset = e / TILE_K;
    }
    if (k0 + s.kk < k_end) {
        s.value = load_a(min(m0 + s.offset, gemm_m() - 1u), k0 + s.kk);
    }
    return s;
}

fn stage_b(e: u32, bn: u32, n0: u32, k0: u32, k_end: u32) -> Staged {
    var s = Staged(e % bn, e / bn, 0.0);
    if (!B_N_FASTEST) {
        s.kk = e % TILE_K;
        s.offset = e / TILE_K;
    }
    if (k0 + s.kk < k_end) {
        s.value = load_b(k0 + s.kk, min(n0 + s.offset, gemm_n() - 1u));
    }
    return s;
}

// The first row and column of workgroup `group`'s block of C in the tiled
// variants, and whether the group has a block at all (z = 1).
fn gemm_block(group: u32) -> vec3<u32> {
    let bm = TILED_WG_M * TILE_M;
    let groups_m = (gemm_m() + bm - 1u) / bm;
    let inside = select(0u, 1u, group < gemm_groups_tiled());
    return vec3<u32>((group % groups_m) * bm, (group / groups_m) * TILED_WG_N * TILE_N, inside);
}

fn gemm_tiled(lid: u32, group: u32, split: u32) {
    let m = gemm_m();
    let n = gemm_n();
    let bm = TILED_WG_M * TILE_M;
    let bn = TILED_WG_N * TILE_N;
    let block = gemm_block(group);
    // Workgroup-uniform, so the barriers below stay in uniform control flow.
    if (block.z == 0u) {
        return;
    }
    let m0 = block.x;
    let n0 = block.y;
    // Each invocation owns rows lm + i·TILED_WG_M and columns
    // ln + j·TILED_WG_N of the block: neighbours read neighbouring words of
    // the tiles (no bank conflicts) and write neighbouring outputs.
    let lm = lid % TILED_WG_M;
    let ln = lid / TILED_WG_M;
    let ks = gemm_k_range(split);
    var acc: array<f32, 64>; // MAX_TILE * MAX_TILE
    for (var k0 = ks.x; k0 < ks.y; k0 += TILE_K) {
        for (var e = lid; e < bm * TILE_K; e += TILED_WG) {
            let a = stage_a(e, bm, m0, k0, ks.y);
            a_tile[a.kk * bm + a.offset] = a.value;
        }
        for (var e = lid; e < bn * TILE_K; e += TILED_WG) {
            let b = stage_b(e, bn, n0, k0, ks.y);
            b_tile[b.kk * bn + b.offset] = b.value;
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

// Staged tiles of gemm_vec4, in quads (vec4) of consecutive m (or n) for one
// k: TILE_K rows of (TILED_WG_M · TILE_M / 4 + 1) quads, the extra quad of
// padding spreading a transposing store (k fastest in memory, consecutive
// invocations taking consecutive k) over all banks. Sizes come from Rust
// like A_TILE_LEN above.
override A_QUADS_LEN: u32 = 264u;
override B_QUADS_LEN: u32 = 264u;

var<workgroup> a_quads: array<vec4<f32>, A_QUADS_LEN>;
var<workgroup> b_quads: array<vec4<f32>, B_QUADS_LEN>;

// TILE_M and TILE_N are 4 or 8 here (`KernelConfig::validate`). The
// workgroup grid is gemm_tiled's (`gemm_groups_tiled`).
//
// The accumulators are named variables, c<row><column quad>, not an array:
// an array indexed by loop counters stays in registers only if the driver
// unrolls every loop first, and where it does not, each multiply-add
// becomes a load and a store of local memory (the suspected reason 8 × 8
// arrays halved the large step on an H200). Rows 4–7 and the second column
// quad exist only at TILE_M or TILE_N = 8; those branches test override
// constants, so the driver drops the dead ones.
fn gemm_vec4(lid: u32, group: u32, split: u32) {
    let m = gemm_m();
    let n = gemm_n();
    let bm = TILED_WG_M * TILE_M;
    let bn = TILED_WG_N * TILE_N;
    let block = gemm_block(group);
    // Workgroup-uniform, so the barriers below stay in uniform control flow.
    if (block.z == 0u) {
        return;
    }
    let m0 = block.x;
    let n0 = block.y;
    let a_stride = bm / 4u + 1u;
    let b_stride = bn / 4u + 1u;
    let wide_m = TILE_M > 4u;
    let wide_n = TILE_N > 4u;
    // Invocation (lm, ln) owns row quads lm (and lm + TILED_WG_M) and
    // column quads ln (and ln + TILED_WG_N). Consecutive invocations take
    // consecutive column quads: their stores of C land 16 bytes apart.
    let ln = lid % TILED_WG_N;
    let lm = lid / TILED_WG_N;
    let ks = gemm_k_range(split);
    // The staging loops run a constant number of rounds (the driver can
    // unroll them); the last round may have idle invocations.
    let a_rounds = (bm * TILE_K + TILED_WG - 1u) / TILED_WG;
    let b_rounds = (bn * TILE_K + TILED_WG - 1u) / TILED_WG;
    var c00: vec4<f32>;
    var c10: vec4<f32>;
    var c20: vec4<f32>;
    var c30: vec4<f32>;
    var c40: vec4<f32>;
    var c50: vec4<f32>;
    var c60: vec4<f32>;
    var c70: vec4<f32>;
    var c01: vec4<f32>;
    var c11: vec4<f32>;
    var c21: vec4<f32>;
    var c31: vec4<f32>;
    var c41: vec4<f32>;
    var c51: vec4<f32>;
    var c61: vec4<f32>;
    var c71: vec4<f32>;
    for (var k0 = ks.x; k0 < ks.y; k0 += TILE_K) {
        for (var round = 0u; round < a_rounds; round++) {
            let e = round * TILED_WG + lid;
            if (e < bm * TILE_K) {
                let a = stage_a(e, bm, m0, k0, ks.y);
                a_quads[a.kk * a_stride + a.offset / 4u][a.offset % 4u] = a.value;
            }
        }
        for (var round = 0u; round < b_rounds; round++) {
            let e = round * TILED_WG + lid;
            if (e < bn * TILE_K) {
                let b = stage_b(e, bn, n0, k0, ks.y);
                b_quads[b.kk * b_stride + b.offset / 4u][b.offset % 4u] = b.value;
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            let a0 = a_quads[kk * a_stride + lm];
            let b0 = b_quads[kk * b_stride + ln];
            var a1: vec4<f32>;
            var b1: vec4<f32>;
            if (wide_m) {
                a1 = a_quads[kk * a_stride + TILED_WG_M + lm];
            }
            if (wide_n) {
                b1 = b_quads[kk * b_stride + TILED_WG_N + ln];
            }
            c00 = fma(vec4<f32>(a0.x), b0, c00);
            c10 = fma(vec4<f32>(a0.y), b0, c10);
            c20 = fma(vec4<f32>(a0.z), b0, c20);
            c30 = fma(vec4<f32>(a0.w), b0, c30);
            if (wide_n) {
                c01 = fma(vec4<f32>(a0.x), b1, c01);
                c11 = fma(vec4<f32>(a0.y), b1, c11);
                c21 = fma(vec4<f32>(a0.z), b1, c21);
                c31 = fma(vec4<f32>(a0.w), b1, c31);
            }
            if (wide_m) {
                c40 = fma(vec4<f32>(a1.x), b0, c40);
                c50 = fma(vec4<f32>(a1.y), b0, c50);
                c60 = fma(vec4<f32>(a1.z), b0, c60);
                c70 = fma(vec4<f32>(a1.w), b0, c70);
                if (wide_n) {
                    c41 = fma(vec4<f32>(a1.x), b1, c41);
                    c51 = fma(vec4<f32>(a1.y), b1, c51);
                    c61 = fma(vec4<f32>(a1.z), b1, c61);
                    c71 = fma(vec4<f32>(a1.w), b1, c71);
                }
            }
        }
        workgroupBarrier();
    }
    let row0 = m0 + lm * 4u;
    let row1 = m0 + (TILED_WG_M + lm) * 4u;
    let col0 = n0 + ln * 4u;
    let col1 = n0 + (TILED_WG_N + ln) * 4u;
    store_quad(row0, col0, split, c00);
    store_quad(row0 + 1u, col0, split, c10);
    store_quad(row0 + 2u, col0, split, c20);
    store_quad(row0 + 3u, col0, split, c30);
    if (wide_n) {
        store_quad(row0, col1, split, c01);
        store_quad(row0 + 1u, col1, split, c11);
        store_quad(row0 + 2u, col1, split, c21);
        store_quad(row0 + 3u, col1, split, c31);
    }
    if (wide_m) {
        store_quad(row1, col0, split, c40);
        store_quad(row1 + 1u, col0, split, c50);
        store_quad(row1 + 2u, col0, split, c60);
        store_quad(row1 + 3u, col0, split, c70);
        if (wide_n) {
            store_quad(row1, col1, split, c41);
            store_quad(row1 + 1u, col1, split, c51);
            store_quad(row1 + 2u, col1, split, c61);
            store_quad(row1 + 3u, col1, split, c71);
        }
    }
}

// Stores the four columns of C from `col` in `row` that lie inside C.
fn store_quad(row: u32, col: u32, split: u32, v: vec4<f32>) {
    if (row >= gemm_m()) {
        return;
    }
    for (var c = 0u; c < 4u; c++) {
        if (col + c < gemm_n()) {
            store_c(row, col + c, split, v[c]);
        }
    }
}
