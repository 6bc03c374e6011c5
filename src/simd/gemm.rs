//! `C[m×n] = init + A·B`, then an epilogue, with AVX2 + FMA and no packing.
//!
//! B is row-major with unit column stride and is read eight columns at a
//! time; A may have any strides and is read one element at a time
//! (broadcast), so the same kernel computes `X·Wᵀ` (forward, with Wᵀ
//! stored), `Gᵀ·X` (weight gradient: A is G read down its columns) and
//! `G·W` (input gradient). A tile is 6 rows × 16 columns: 12 accumulators, two
//! loads of B and six broadcasts of A per step of the contraction. Ragged
//! column edges use masked loads and stores, so no operand needs padding.

use std::arch::x86_64::*;

/// What C starts from.
#[derive(Clone, Copy)]
pub enum Init<'a> {
    Zero,
    /// C's current values (accumulate).
    Load,
    /// The same row (a bias, length ≥ n) under every row of C.
    Row(&'a [f32]),
}

/// What happens to C after the product.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    None,
    Tanh,
    /// Multiply by `1 − x²` (tanh's derivative in terms of its output `x`);
    /// `x` is `[m, n]` with row stride `.1`.
    TanhGrad(&'a [f32], usize),
}

/// A read-only matrix with explicit strides: element `(i, p)` is
/// `data[i·rs + p·cs]`.
#[derive(Clone, Copy)]
pub struct Strided<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

const MR: usize = 6;
/// Contraction chunk: at the large benchmark size the weight gradient
/// contracts over 4 096 rows; chunks of 256 keep both operands' slices in L2.
const KC: usize = 256;
/// Row tiles per panel: the panel of A is reused across all column tiles
/// while it is in cache, and each 16-column panel of B across the panel's
/// tiles.
const PANEL_TILES: usize = 8;

/// `c[i·ldc + j] = epilogue(init_j + Σ_p A(i, p)·b[p·ldb + j])` for
/// `i < m`, `j < n`.
///
/// # Safety
/// The CPU must support AVX2 and FMA (`simd::available()`). Every operand
/// is bounds-checked here.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: Strided,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    init: Init,
    epilogue: Epilogue,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k > 0 {
        assert!((m - 1) * a.rs + (k - 1) * a.cs < a.data.len());
        assert!((k - 1) * ldb + n <= b.len());
    }
    assert!((m - 1) * ldc + n <= c.len());
    if let Init::Row(row) = init {
        assert!(row.len() >= n);
    }
    if let Epilogue::TanhGrad(x, ldx) = epilogue {
        assert!((m - 1) * ldx + n <= x.len());
    }
    let mut p0 = 0;
    loop {
        let kc = (k - p0).min(KC);
        let last = p0 + kc == k;
        let ops = Operands {
            k: kc,
            // SAFETY: p0 < k, so these offsets stay inside A and B (or, for
            // p0 = 0 = k, are zero).
            a: unsafe { a.data.as_ptr().add(p0 * a.cs) },
            rsa: a.rs,
            csa: a.cs,
            b: unsafe { b.as_ptr().add(p0 * ldb) },
            ldb,
            c: c.as_mut_ptr(),
            ldc,
            init: if p0 == 0 { init } else { Init::Load },
            epilogue: if last { epilogue } else { Epilogue::None },
        };
        // SAFETY: bounds asserted above.
        unsafe { panels(&ops, m, n) };
        if last {
            break;
        }
        p0 += kc;
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn panels(ops: &Operands, m: usize, n: usize) {
    // Tiles of balanced height (32 rows: 6,6,5,5,5,5 rather than
    // 6,6,6,6,6,2): a short tile does as many loads per step as a tall one
    // for fewer multiply-adds.
    let tiles = m.div_ceil(MR);
    let (base, tall) = (m / tiles, m % tiles);
    let tile_start = |t: usize| t * base + t.min(tall);
    for panel in (0..tiles).step_by(PANEL_TILES) {
        let panel_end = (panel + PANEL_TILES).min(tiles);
        let mut j = 0;
        while j < n {
            let w = (n - j).min(16);
            for t in panel..panel_end {
                let (i, mr) = (tile_start(t), tile_start(t + 1) - tile_start(t));
                // SAFETY: (i, j) + (mr, w) lies inside C, and the asserts
                // in `gemm` cover every element of A, B, the bias and x that
                // the tile touches.
                unsafe { dispatch(ops, i, j, mr, w) };
            }
            j += w;
        }
    }
}

/// Lanes `0..w` set (w ≤ 8): the mask of a ragged edge for the masked
/// loads and stores.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn lane_mask(w: usize) -> __m256i {
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(w as i32), lane)
}

/// `out[j] = Σ_r g[r·n + j]` with `n = out.len()`: the bias gradient.
/// Eight columns at a time, four rows in flight so the adds do not wait on
/// each other.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn column_sums(g: &[f32], out: &mut [f32]) {
    let n = out.len();
    let rows = g.len() / n.max(1);
    for j in (0..n).step_by(8) {
        let w = (n - j).min(8);
        let mask = lane_mask(w);
        let masked = w < 8;
        let mut acc = [_mm256_setzero_ps(); 4];
        // SAFETY: row r < rows, columns j..j + w < n are inside g and out;
        // masked lanes are not touched.
        unsafe {
            let col = g.as_ptr().add(j);
            let mut r = 0;
            while r + 4 <= rows {
                for (q, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_add_ps(*a, load(col.add((r + q) * n), masked, mask));
                }
                r += 4;
            }
            while r < rows {
                acc[0] = _mm256_add_ps(acc[0], load(col.add(r * n), masked, mask));
                r += 1;
            }
            let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            store(out.as_mut_ptr().add(j), sum, masked, mask);
        }
    }
}

/// The operands, shared by every tile.
struct Operands<'a> {
    k: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    init: Init<'a>,
    epilogue: Epilogue<'a>,
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dispatch(o: &Operands, i: usize, j: usize, mr: usize, w: usize) {
    // SAFETY: forwarded from `gemm`.
    unsafe {
        match mr {
            6 => by_width::<6>(o, i, j, w),
            5 => by_width::<5>(o, i, j, w),
            4 => by_width::<4>(o, i, j, w),
            3 => by_width::<3>(o, i, j, w),
            2 => by_width::<2>(o, i, j, w),
            _ => by_width::<1>(o, i, j, w),
        }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn by_width<const R: usize>(o: &Operands, i: usize, j: usize, w: usize) {
    let last = if w > 8 { w - 8 } else { w };
    let mask = lane_mask(last);
    // SAFETY: forwarded from `gemm`.
    unsafe {
        match (w > 8, last == 8) {
            (true, true) => tile::<R, 2, false>(o, i, j, mask),
            (true, false) => tile::<R, 2, true>(o, i, j, mask),
            (false, true) => tile::<R, 1, false>(o, i, j, mask),
            (false, false) => tile::<R, 1, true>(o, i, j, mask),
        }
    }
}

/// Loads eight floats, or the lanes of `mask` (the rest read as 0, and
/// their memory is not touched) when `masked`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load(p: *const f32, masked: bool, mask: __m256i) -> __m256 {
    // SAFETY: the caller guarantees the (masked) lanes are readable.
    unsafe {
        if masked {
            _mm256_maskload_ps(p, mask)
        } else {
            _mm256_loadu_ps(p)
        }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn store(p: *mut f32, v: __m256, masked: bool, mask: __m256i) {
    // SAFETY: the caller guarantees the (masked) lanes are writable.
    unsafe {
        if masked {
            _mm256_maskstore_ps(p, mask, v)
        } else {
            _mm256_storeu_ps(p, v)
        }
    }
}

/// One R × (8·NV) tile of C at (i, j); the last vector is masked when
/// MASKED.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize, const NV: usize, const MASKED: bool>(
    o: &Operands,
    i: usize,
    j: usize,
    mask: __m256i,
) {
    let masked = |v: usize| MASKED && v == NV - 1;
    let mut acc = [[_mm256_setzero_ps(); NV]; R];
    // SAFETY: `gemm` checked that every row < m, column < n of A, B, C,
    // the bias and x is in bounds; masked lanes beyond n are not touched.
    unsafe {
        match o.init {
            Init::Zero => {}
            Init::Row(row) => {
                for v in 0..NV {
                    let r = load(row.as_ptr().add(j + 8 * v), masked(v), mask);
                    for acc_row in acc.iter_mut() {
                        acc_row[v] = r;
                    }
                }
            }
            Init::Load => {
                for (r, acc_row) in acc.iter_mut().enumerate() {
                    let cr = o.c.add((i + r) * o.ldc + j);
                    for (v, x) in acc_row.iter_mut().enumerate() {
                        *x = load(cr.add(8 * v), masked(v), mask);
                    }
                }
            }
        }
        let a = o.a.add(i * o.rsa);
        let b = o.b.add(j);
        for p in 0..o.k {
            let bp = b.add(p * o.ldb);
            let mut bv = [_mm256_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = load(bp.add(8 * v), masked(v), mask);
            }
            let ap = a.add(p * o.csa);
            for (r, acc_row) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*ap.add(r * o.rsa));
                for v in 0..NV {
                    acc_row[v] = _mm256_fmadd_ps(av, bv[v], acc_row[v]);
                }
            }
        }
        match o.epilogue {
            Epilogue::None => {}
            Epilogue::Tanh => {
                for acc_row in acc.iter_mut() {
                    for x in acc_row.iter_mut() {
                        *x = super::math::tanh(*x);
                    }
                }
            }
            Epilogue::TanhGrad(x, ldx) => {
                let one = _mm256_set1_ps(1.0);
                for (r, acc_row) in acc.iter_mut().enumerate() {
                    let xr = x.as_ptr().add((i + r) * ldx + j);
                    for (v, g) in acc_row.iter_mut().enumerate() {
                        let xv = load(xr.add(8 * v), masked(v), mask);
                        *g = _mm256_mul_ps(*g, _mm256_fnmadd_ps(xv, xv, one));
                    }
                }
            }
        }
        for (r, acc_row) in acc.iter().enumerate() {
            let cr = o.c.add((i + r) * o.ldc + j);
            for (v, x) in acc_row.iter().enumerate() {
                store(cr.add(8 * v), *x, masked(v), mask);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same product in f64, naively.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        m: usize,
        k: usize,
        n: usize,
        a: Strided,
        b: &[f32],
        ldb: usize,
        init: Option<&[f32]>,
        tanh: bool,
    ) -> Vec<f64> {
        let mut c = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = init.map_or(0.0, |r| r[j] as f64);
                for p in 0..k {
                    s += a.data[i * a.rs + p * a.cs] as f64 * b[p * ldb + j] as f64;
                }
                c[i * n + j] = if tanh { s.tanh() } else { s };
            }
        }
        c
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        crate::simd::test_values(len, seed, 1.0)
    }

    #[test]
    fn every_tile_shape_and_stride_matches_f64() {
        if !crate::simd::detected() {
            eprintln!("no AVX2+FMA on this CPU: the portable kernels run instead");
            return;
        }
        for &(m, k, n) in &[
            (1, 1, 1),
            (7, 3, 5),
            (13, 32, 15),
            (48, 17, 16),
            (50, 0, 9),
            (97, 40, 33),
            (6, 64, 8),
            (9, 600, 20),
        ] {
            for transposed_a in [false, true] {
                let a_data = values(m * k.max(1), 1);
                let a = if transposed_a {
                    Strided {
                        data: &a_data,
                        rs: 1,
                        cs: m,
                    }
                } else {
                    Strided {
                        data: &a_data,
                        rs: k,
                        cs: 1,
                    }
                };
                let ldb = n + 3;
                let b = values(k.max(1) * ldb, 2);
                let bias = values(n, 3);
                let x = values(m * n, 4);
                for (init, epi) in [
                    (Init::Zero, Epilogue::None),
                    (Init::Row(&bias), Epilogue::Tanh),
                    (Init::Zero, Epilogue::TanhGrad(&x, n)),
                ] {
                    // Guard columns past n in each row of C must survive.
                    let ldc = n + 2;
                    let mut c = vec![7.0f32; m * ldc];
                    unsafe { gemm(m, k, n, a, &b, ldb, &mut c, ldc, init, epi) };
                    let want = reference(
                        m,
                        k,
                        n,
                        a,
                        &b,
                        ldb,
                        matches!(init, Init::Row(_)).then_some(&bias[..]),
                        matches!(epi, Epilogue::Tanh),
                    );
                    for i in 0..m {
                        for j in 0..n {
                            let mut w = want[i * n + j];
                            if matches!(epi, Epilogue::TanhGrad(..)) {
                                let xv = x[i * n + j] as f64;
                                w *= 1.0 - xv * xv;
                            }
                            let got = c[i * ldc + j] as f64;
                            assert!(
                                (got - w).abs()
                                    <= 1e-5 * (1.0 + w.abs()) * (k as f64).sqrt().max(1.0),
                                "m{m} k{k} n{n} ({i},{j}): {got} vs {w}"
                            );
                        }
                        assert_eq!(&c[i * ldc + n..(i + 1) * ldc], &[7.0, 7.0]);
                    }
                }
            }
        }
    }
}
