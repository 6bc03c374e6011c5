//! The CPU reference trainer. Each module is the twin of the shader of the
//! same name in `shaders/`: same stage boundaries, same argument order as the
//! shader's bindings, same arithmetic, so GPU results can be checked stage by
//! stage. Rows are split across threads with rayon; matrix products use the
//! `matrixmultiply` crate's cache-blocked sgemm.

pub mod adam;
pub mod dense_backward;
pub mod dense_forward;
pub mod gather;
pub mod mixture_head;
pub mod mse_head;
pub mod reduce;
pub mod sample;
pub mod trainer;

pub use trainer::CpuTrainer;

/// Rows per rayon task: enough work per task that fork/join overhead stays
/// small next to the arithmetic, and at most one task per thread.
pub(crate) fn rows_per_task(rows: usize, work_per_row: usize) -> usize {
    const MIN_WORK_PER_TASK: usize = 1 << 15;
    let threads = rayon::current_num_threads().max(1);
    let min_rows = MIN_WORK_PER_TASK.div_ceil(work_per_row.max(1));
    rows.div_ceil(threads).max(min_rows).max(1)
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
