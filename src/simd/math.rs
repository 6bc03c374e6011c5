//! exp, log and tanh on eight lanes. Each matches its scalar counterpart in
//! the stage modules to a few ulp and propagates NaN (divergence detection
//! depends on it): every clamp is written `min(limit, x)`, which returns `x`
//! when `x` is NaN.
//!
//! Safe target-feature functions: callable (safely) only from code compiled
//! for AVX2 + FMA, that is, after `simd::available()` was checked.

use std::arch::x86_64::*;

/// `e^x`, with `exp_or_zero`'s convention: exactly 0 below −87 (where f32
/// would go subnormal) and +∞ above 88.37. Cephes' polynomial on
/// `x − n·ln 2`, `n = round(x·log2 e)`.
#[inline]
#[target_feature(enable = "avx2,fma")]
#[expect(
    clippy::missing_safety_doc,
    reason = "safe target-feature fn: callers need AVX2 + FMA (module docs)"
)]
pub fn exp(x: __m256) -> __m256 {
    let hi = _mm256_set1_ps(88.376_26);
    let lo = _mm256_set1_ps(-87.0);
    let xc = _mm256_max_ps(lo, _mm256_min_ps(hi, x));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        xc,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), xc);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.987_569_1e-4);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.398_199_9e-3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.333_452e-3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.166_579_6e-2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.166_666_65));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5));
    let r2 = _mm256_mul_ps(r, r);
    let y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
    let pow2n = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    )));
    let y = _mm256_mul_ps(y, pow2n);
    let y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps::<_CMP_LT_OQ>(x, lo));
    _mm256_blendv_ps(
        y,
        _mm256_set1_ps(f32::INFINITY),
        _mm256_cmp_ps::<_CMP_GT_OQ>(x, hi),
    )
}

/// Natural log for positive normal `x` (the trainer takes it of sums ≥ 1).
/// NaN and ±∞ give NaN. Cephes' `logf`: `x = m·2^e` with `m` in
/// `[√½, √2)`, a polynomial in `m − 1`.
#[inline]
#[target_feature(enable = "avx2,fma")]
#[expect(
    clippy::missing_safety_doc,
    reason = "safe target-feature fn: callers need AVX2 + FMA (module docs)"
)]
pub fn ln(x: __m256) -> __m256 {
    let one = _mm256_set1_ps(1.0);
    let bits = _mm256_castps_si256(x);
    let e = _mm256_sub_epi32(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(126));
    // Mantissa in [0.5, 1).
    let m = _mm256_or_ps(
        _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(!0x7f80_0000))),
        _mm256_set1_ps(0.5),
    );
    let mut e = _mm256_cvtepi32_ps(e);
    let small = _mm256_cmp_ps::<_CMP_LT_OQ>(m, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    // m < √½: use 2m − 1 and e − 1, so the polynomial sees [√½−1, √2−1).
    let t = _mm256_and_ps(m, small);
    let m = _mm256_sub_ps(m, one);
    e = _mm256_sub_ps(e, _mm256_and_ps(one, small));
    let m = _mm256_add_ps(m, t);
    let z = _mm256_mul_ps(m, m);
    let mut y = _mm256_set1_ps(7.037_683_6e-2);
    for c in [
        -1.151_461e-1,
        1.167_699_9e-1,
        -1.242_014_1e-1,
        1.424_932_3e-1,
        -1.666_805_8e-1,
        2.000_071_5e-1,
        -2.499_999_4e-1,
        3.333_333e-1,
    ] {
        y = _mm256_fmadd_ps(y, m, _mm256_set1_ps(c));
    }
    y = _mm256_mul_ps(_mm256_mul_ps(y, m), z);
    y = _mm256_fmadd_ps(e, _mm256_set1_ps(-2.121_944_4e-4), y);
    y = _mm256_fnmadd_ps(z, _mm256_set1_ps(0.5), y);
    let r = _mm256_add_ps(
        _mm256_add_ps(m, y),
        _mm256_mul_ps(e, _mm256_set1_ps(0.693_359_4)),
    );
    // x − x is NaN for NaN and ±∞, 0 otherwise.
    _mm256_add_ps(r, _mm256_sub_ps(x, x))
}

/// `tanh_approx` on eight lanes (same rational function, with FMA).
#[inline]
#[target_feature(enable = "avx2,fma")]
#[expect(
    clippy::missing_safety_doc,
    reason = "safe target-feature fn: callers need AVX2 + FMA (module docs)"
)]
pub fn tanh(x: __m256) -> __m256 {
    let lim = 7.905_311f32;
    let x = _mm256_max_ps(_mm256_set1_ps(-lim), _mm256_min_ps(_mm256_set1_ps(lim), x));
    let x2 = _mm256_mul_ps(x, x);
    let mut p = _mm256_set1_ps(-2.760_768_5e-16);
    for c in [
        2.000_188e-13,
        -8.604_672e-11,
        5.122_297e-8,
        1.485_722_4e-5,
        6.372_619_3e-4,
        4.893_524_6e-3,
    ] {
        p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(c));
    }
    let p = _mm256_mul_ps(x, p);
    let mut q = _mm256_set1_ps(1.198_258_4e-6);
    for c in [1.185_347_1e-4, 2.268_434_6e-3, 4.893_525e-3] {
        q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(c));
    }
    _mm256_div_ps(p, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(f: impl Fn(__m256) -> __m256, x: [f32; 8]) -> [f32; 8] {
        let mut out = [0.0f32; 8];
        // SAFETY: the callers check `detected()` first; the arrays hold 8.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), f(_mm256_loadu_ps(x.as_ptr()))) };
        out
    }

    fn ulp_diff(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_ln_tanh_match_std() {
        if !crate::simd::detected() {
            return;
        }
        let (mut worst_exp, mut worst_ln, mut worst_tanh) = (0u32, 0u32, 0.0f32);
        let mut i = -87.0f32;
        while i < 88.3 {
            let x = [
                i,
                i + 1e-3,
                i + 2e-3,
                i + 3e-3,
                i + 4e-3,
                i + 5e-3,
                i + 6e-3,
                i + 7e-3,
            ];
            let e = lanes(|v| unsafe { exp(v) }, x);
            let t = lanes(|v| unsafe { tanh(v) }, x);
            for j in 0..8 {
                worst_exp = worst_exp.max(ulp_diff(e[j], x[j].exp()));
                worst_tanh = worst_tanh.max((t[j] - x[j].tanh()).abs());
            }
            i += 0.0173;
        }
        let mut x = 1e-30f32;
        while x < 1e30 {
            let v = [
                x,
                x * 1.1,
                x * 1.3,
                x * 1.7,
                x * 2.0,
                x * 3.0,
                x * 5.0,
                x * 7.0,
            ];
            let l = lanes(|v| unsafe { ln(v) }, v);
            for j in 0..8 {
                worst_ln = worst_ln.max(ulp_diff(l[j], v[j].ln()));
            }
            x *= 1.013;
        }
        assert!(worst_exp <= 2, "exp: {worst_exp} ulp");
        assert!(worst_ln <= 2, "ln: {worst_ln} ulp");
        assert!(worst_tanh < 1e-6, "tanh: {worst_tanh}");
    }

    #[test]
    fn edges_follow_the_scalar_conventions() {
        if !crate::simd::detected() {
            return;
        }
        let x = [
            f32::NAN,
            -1000.0,
            -87.5,
            1000.0,
            f32::NEG_INFINITY,
            f32::INFINITY,
            0.0,
            1.0,
        ];
        let e = lanes(|v| unsafe { exp(v) }, x);
        assert!(e[0].is_nan());
        assert_eq!(
            &e[1..7],
            &[0.0, 0.0, f32::INFINITY, 0.0, f32::INFINITY, 1.0]
        );
        let l = lanes(|v| unsafe { ln(v) }, x);
        assert!(l[0].is_nan() && l[5].is_nan());
        assert_eq!(l[7], 0.0);
        let t = lanes(|v| unsafe { tanh(v) }, x);
        assert!(t[0].is_nan());
        for (got, want) in t[1..6].iter().zip([-1.0, -1.0, 1.0, -1.0, 1.0]) {
            assert!((got - want).abs() <= 5e-7, "{t:?}");
        }
        assert_eq!(t[6], 0.0);
    }
}
