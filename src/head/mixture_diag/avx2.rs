//! The mixture head eight rows at a time: lane `l` holds row `r0 + l`, so
//! every exp and log is one vector instruction sequence for eight rows, for
//! any K and D. Same passes and formulas as the portable code in `super`.

use std::arch::x86_64::*;

use super::portable::mixture_head_rows_portable;
use crate::head::def::HALF_LOG_2PI;
use crate::simd::gemm::lane_mask;
use crate::simd::math::{exp, ln};

/// `mixture_head_rows` for rows in groups of eight; the last `rows % 8`
/// rows go through the portable code.
///
/// # Safety
/// The CPU must support AVX2 and FMA (`simd::available()`).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn mixture_head_rows(
    head: &[f32],
    target: &[f32],
    k_count: usize,
    grad_scale: f32,
    grad_head: &mut [f32],
    row_loss: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let rows = row_loss.len();
    let d_count = target.len() / rows.max(1);
    let kd = k_count * d_count;
    let width = k_count + 2 * kd;
    assert!(head.len() >= rows * width && grad_head.len() >= rows * width);
    assert!(target.len() >= rows * d_count);
    let (mu_off, ls_off) = (k_count, k_count + kd);
    // Per group, in vectors of eight lanes: the head columns, the gradient
    // rows (plus eight spare floats), the targets, the gradient columns,
    // 1/σ, the per-component log joint (then its exp) and the softmax
    // numerators.
    scratch.resize((3 * width + kd + 2 * k_count + d_count) * 8 + 8, 0.0);
    let (h, rest) = scratch.split_at_mut(width * 8);
    let (out, rest) = rest.split_at_mut(width * 8 + 8);
    let (tg, rest) = rest.split_at_mut(d_count * 8);
    let (g, rest) = rest.split_at_mut(width * 8);
    let (inv, rest) = rest.split_at_mut(kd * 8);
    let (lp, pi) = rest.split_at_mut(k_count * 8);
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let target_index = _mm256_mullo_epi32(lanes, _mm256_set1_epi32(d_count as i32));
    let scale = _mm256_set1_ps(grad_scale);
    let one = _mm256_set1_ps(1.0);
    let half = _mm256_set1_ps(0.5);
    let groups = rows / 8;
    for grp in 0..groups {
        let r0 = grp * 8;
        // Rows → lanes, eight columns at a time.
        for c0 in (0..width).step_by(8) {
            let w = (width - c0).min(8);
            let mask = lane_mask(w);
            let mut v = [_mm256_setzero_ps(); 8];
            for (l, x) in v.iter_mut().enumerate() {
                // SAFETY: columns c0..c0 + w of rows r0..r0 + 8 lie inside
                // `head` (asserted above); masked lanes are not read.
                *x = unsafe { _mm256_maskload_ps(head.as_ptr().add((r0 + l) * width + c0), mask) };
            }
            let v = transpose8(v);
            for (q, x) in v.iter().take(w).enumerate() {
                st(h, c0 + q, *x);
            }
        }
        for d in 0..d_count {
            // SAFETY: rows r0..r0 + 8 lie inside `target` (asserted above).
            st(tg, d, unsafe {
                gather(target, r0 * d_count + d, target_index)
            });
        }
        // log π by log-sum-exp over the logits.
        let mut m_l = _mm256_set1_ps(f32::NEG_INFINITY);
        for k in 0..k_count {
            m_l = _mm256_max_ps(m_l, ld(h, k));
        }
        let mut sum_l = _mm256_setzero_ps();
        for k in 0..k_count {
            let e = exp(_mm256_sub_ps(ld(h, k), m_l));
            st(pi, k, e);
            sum_l = _mm256_add_ps(sum_l, e);
        }
        let lse_l = _mm256_add_ps(m_l, ln(sum_l));
        // Pass 1: log π_k + Σ_d log N(t_d | μ_kd, σ_kd).
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        for k in 0..k_count {
            let mut acc = _mm256_sub_ps(ld(h, k), lse_l);
            for d in 0..d_count {
                let i = k * d_count + d;
                let ls = ld(h, ls_off + i);
                let iv = exp(_mm256_sub_ps(_mm256_setzero_ps(), ls));
                st(inv, i, iv);
                let z = _mm256_mul_ps(_mm256_sub_ps(ld(tg, d), ld(h, mu_off + i)), iv);
                let c = _mm256_add_ps(ls, _mm256_set1_ps(HALF_LOG_2PI));
                acc = _mm256_sub_ps(acc, _mm256_fmadd_ps(_mm256_mul_ps(half, z), z, c));
            }
            st(lp, k, acc);
            m = _mm256_max_ps(m, acc);
        }
        let mut s = _mm256_setzero_ps();
        for k in 0..k_count {
            let e = exp(_mm256_sub_ps(ld(lp, k), m));
            st(lp, k, e);
            s = _mm256_add_ps(s, e);
        }
        let loss = _mm256_sub_ps(_mm256_setzero_ps(), _mm256_add_ps(m, ln(s)));
        // SAFETY: rows r0..r0 + 8 of row_loss exist.
        unsafe { _mm256_storeu_ps(row_loss[r0..r0 + 8].as_mut_ptr(), loss) };
        // Pass 2: γ_k = posterior responsibility; DESIGN.md §1 gradients.
        let inv_s = _mm256_div_ps(one, s);
        let inv_sum_l = _mm256_div_ps(one, sum_l);
        for k in 0..k_count {
            let gamma = _mm256_mul_ps(ld(lp, k), inv_s);
            let pk = _mm256_mul_ps(ld(pi, k), inv_sum_l);
            st(g, k, _mm256_mul_ps(_mm256_sub_ps(pk, gamma), scale));
            let gs = _mm256_mul_ps(gamma, scale);
            let neg = _mm256_sub_ps(_mm256_setzero_ps(), gs);
            for d in 0..d_count {
                let i = k * d_count + d;
                let iv = ld(inv, i);
                let z = _mm256_mul_ps(_mm256_sub_ps(ld(tg, d), ld(h, mu_off + i)), iv);
                st(g, mu_off + i, _mm256_mul_ps(_mm256_mul_ps(neg, z), iv));
                st(
                    g,
                    ls_off + i,
                    _mm256_mul_ps(gs, _mm256_fnmadd_ps(z, z, one)),
                );
            }
        }
        // Lanes → rows, eight columns at a time, into `out` (masked stores
        // are slow on AMD): full-width stores, last chunk first, so a
        // chunk's spill into the next row is overwritten by that row's
        // earlier chunk; the last row spills into `out`'s spare eight.
        for c0 in (0..width).step_by(8).rev() {
            let w = (width - c0).min(8);
            let mut v = [_mm256_setzero_ps(); 8];
            for (q, x) in v.iter_mut().take(w).enumerate() {
                *x = ld(g, c0 + q);
            }
            for (l, x) in transpose8(v).iter().enumerate() {
                let at = l * width + c0;
                // SAFETY: at + 8 ≤ 7·width + (width − 1) + 8 < out.len().
                unsafe { _mm256_storeu_ps(out[at..at + 8].as_mut_ptr(), *x) };
            }
        }
        grad_head[r0 * width..(r0 + 8) * width].copy_from_slice(&out[..8 * width]);
    }
    let done = groups * 8;
    mixture_head_rows_portable(
        &head[done * width..rows * width],
        &target[done * d_count..rows * d_count],
        k_count,
        grad_scale,
        &mut grad_head[done * width..rows * width],
        &mut row_loss[done..],
        scratch,
    );
}

/// The 8×8 transpose: lane `j` of `r[i]` goes to lane `i` of the result's
/// `j`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xee>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xee>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xee>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xee>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// Vector `i` (eight floats) of a scratch slice.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn ld(s: &[f32], i: usize) -> __m256 {
    let v = &s[i * 8..i * 8 + 8];
    // SAFETY: `v` holds eight floats.
    unsafe { _mm256_loadu_ps(v.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn st(s: &mut [f32], i: usize, x: __m256) {
    let v = &mut s[i * 8..i * 8 + 8];
    // SAFETY: `v` holds eight floats.
    unsafe { _mm256_storeu_ps(v.as_mut_ptr(), x) }
}

/// `src[at + index[l]]` for the eight lanes.
///
/// # Safety
/// Every `at + index[l]` must be inside `src`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn gather(src: &[f32], at: usize, index: __m256i) -> __m256 {
    // SAFETY: guaranteed by the caller.
    unsafe { _mm256_i32gather_ps::<4>(src.as_ptr().add(at), index) }
}

/// The AVX2 head against the portable one on awkward sizes and values.
#[cfg(test)]
mod tests {
    use super::super::portable::mixture_head_rows_portable;
    use crate::simd::{assert_close, test_values as values};

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Any K, D and row count, with logits and log σ over a wide range.
        #[test]
        fn mixture_heads_agree_on_any_shape(
            rows in 1usize..40,
            k in 1usize..10,
            d in 1usize..4,
            seed: u32,
        ) {
            if !crate::simd::detected() {
                return Ok(());
            }
            heads_agree(rows, k, d, seed);
        }
    }

    /// Both heads on `rows` rows of random logits, means and log σ.
    fn heads_agree(rows: usize, k: usize, d: usize, seed: u32) {
        let width = k + 2 * k * d;
        let head = values(rows * width, seed, 6.0);
        let target = values(rows * d, seed ^ 3, 3.0);
        let (mut gf, mut gs) = (vec![0.0; rows * width], vec![0.0; rows * width]);
        let (mut lf, mut ls) = (vec![0.0; rows], vec![0.0; rows]);
        unsafe {
            super::mixture_head_rows(&head, &target, k, 0.5, &mut gf, &mut lf, &mut Vec::new())
        };
        mixture_head_rows_portable(&head, &target, k, 0.5, &mut gs, &mut ls, &mut Vec::new());
        assert_close("row loss", &lf, &ls, 1e-4);
        // A row's responsibilities are exp(term − log-sum-exp) of
        // log-density terms as large as its loss (here up to ~1e3 nats):
        // f32 rounds those to ~|loss|·1e-7, and two operation orders
        // differ in γ, so in every gradient, by that much relatively.
        for r in 0..rows {
            let tol = 1e-4 * (1.0 + 0.01 * ls[r].abs());
            let row = r * width..(r + 1) * width;
            assert_close("head gradient", &gf[row.clone()], &gs[row], tol);
        }
    }

    /// A case the random search found: row 3's loss is 1224 nats.
    #[test]
    fn large_row_losses_keep_their_gradients_close() {
        if crate::simd::detected() {
            heads_agree(8, 4, 3, 3_668_818_377);
        }
    }

    #[test]
    fn mixture_head_matches_the_portable_one() {
        if !crate::simd::detected() {
            eprintln!("no AVX2+FMA on this CPU: only the portable kernels exist here");
            return;
        }
        for &(rows, k, d) in &[(1, 1, 1), (8, 5, 1), (29, 3, 2), (64, 8, 1), (19, 10, 3)] {
            let width = k + 2 * k * d;
            let mut head = values(rows * width, 4, 2.0);
            // Extreme rows among ordinary ones: a dominant logit, a tiny σ,
            // a target far from every mean.
            head[0] = 90.0;
            if rows > 8 {
                head[width + k + k * d] = -30.0;
            }
            let mut target = values(rows * d, 5, 1.5);
            target[rows * d - 1] = 1e3;
            let (mut gf, mut gs) = (vec![0.0; rows * width], vec![0.0; rows * width]);
            let (mut lf, mut ls) = (vec![0.0; rows], vec![0.0; rows]);
            unsafe {
                super::mixture_head_rows(&head, &target, k, 0.25, &mut gf, &mut lf, &mut Vec::new())
            };
            mixture_head_rows_portable(&head, &target, k, 0.25, &mut gs, &mut ls, &mut Vec::new());
            assert_close("row loss", &lf, &ls, 2e-5);
            assert_close("head gradient", &gf, &gs, 2e-5);
        }
    }
}
