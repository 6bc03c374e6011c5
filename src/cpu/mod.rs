//! The CPU reference trainer. Each module is the twin of the shader of the
//! same name in `shaders/` (the heads' twins live with their kinds in
//! `head/`): same stage boundaries, same argument order as the shader's
//! bindings, same arithmetic, so GPU results can be checked stage by
//! stage. Rows are split across threads with rayon; matrix products use the
//! `matrixmultiply` crate's cache-blocked sgemm.

pub mod adam;
pub mod dense_backward;
pub mod dense_forward;
pub mod gather;
#[cfg(test)]
mod kernel_parity;
pub mod reduce;
pub mod trainer;

pub use trainer::CpuTrainer;

pub(crate) use crate::simd::rows_per_task;

/// tanh as a rational function (the minimax approximation Eigen uses for
/// float tanh): within a few ulp of `f32::tanh` and several times faster, and
/// the loop around it vectorises. The clamp is where tanh rounds to ±1.
#[inline]
pub fn tanh_approx(x: f32) -> f32 {
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let p = x2 * -2.760_768_5e-16 + 2.000_188e-13;
    let p = x2 * p + -8.604_672e-11;
    let p = x2 * p + 5.122_297e-8;
    let p = x2 * p + 1.485_722_4e-5;
    let p = x2 * p + 6.372_619_3e-4;
    let p = x2 * p + 4.893_524_6e-3;
    let p = x * p;
    let q = x2 * 1.198_258_4e-6 + 1.185_347_1e-4;
    let q = x2 * q + 2.268_434_6e-3;
    let q = x2 * q + 4.893_525e-3;
    p / q
}

/// `c[m×n] = alpha·a·b + beta·c` for row-major slices with explicit strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
    rsc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    // Bounds are checked here once so the unsafe call below cannot read or
    // write outside the slices.
    if k > 0 {
        assert!((m - 1) * rsa + (k - 1) * csa < a.len());
        assert!((k - 1) * rsb + (n - 1) * csb < b.len());
    }
    assert!((m - 1) * rsc + (n - 1) < c.len());
    // SAFETY: the asserts above keep every index in bounds.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tanh_approx_is_within_a_few_ulp() {
        let mut worst = 0.0f32;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((super::tanh_approx(x) - x.tanh()).abs());
        }
        assert!(worst < 1e-6, "max error {worst}");
        assert_eq!(super::tanh_approx(50.0), 1.0);
        assert_eq!(super::tanh_approx(-50.0), -1.0);
    }
}
