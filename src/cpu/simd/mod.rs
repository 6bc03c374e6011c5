//! x86-64 AVX2 + FMA versions of the CPU stages' inner loops, chosen at run
//! time. The trainer's products are small (a block of 64 rows times a 32×32
//! weight at the small benchmark size), where a general sgemm spends more
//! time packing and allocating than multiplying; these kernels read their
//! operands in place, fuse the bias and tanh into the product, and take the
//! mixture head's exponentials eight rows at a time.
//!
//! Everything here has a portable twin in the stage modules (matrixmultiply
//! and scalar Rust), which runs where AVX2 or FMA is missing or where
//! `MDN_CPU_KERNELS=portable` asks for it; tests check the two against each
//! other.

#[cfg(target_arch = "x86_64")]
pub mod gemm;
#[cfg(target_arch = "x86_64")]
pub mod math;
#[cfg(target_arch = "x86_64")]
pub mod mixture;

/// Environment variable choosing the CPU kernels: `auto` (the default),
/// `portable`, or `avx2` (an error where the CPU lacks AVX2 or FMA).
pub const CPU_KERNELS_ENV: &str = "MDN_CPU_KERNELS";

/// What `MDN_CPU_KERNELS` asks for, or why its value is wrong.
fn requested() -> Result<bool, String> {
    let value = std::env::var(CPU_KERNELS_ENV).unwrap_or_default();
    match value.trim() {
        "" | "auto" => Ok(detected()),
        "portable" => Ok(false),
        "avx2" if detected() => Ok(true),
        "avx2" => Err(format!(
            "{CPU_KERNELS_ENV}=avx2, but this CPU lacks AVX2 or FMA; use auto or portable"
        )),
        other => Err(format!(
            "{CPU_KERNELS_ENV}=`{other}` is not a kernel set; use auto, portable or avx2"
        )),
    }
}

/// Checks `MDN_CPU_KERNELS` (the CLI calls this first, so a misspelt value
/// is an error rather than silently the default).
pub fn check_env() -> Result<(), String> {
    requested().map(|_| ())
}

/// Whether the CPU stages run the AVX2 + FMA kernels (decided once). An
/// invalid `MDN_CPU_KERNELS` falls back to detection here; [`check_env`]
/// is where it is reported.
pub fn available() -> bool {
    use std::sync::OnceLock;
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| requested().unwrap_or_else(|_| detected()))
}

/// Whether this CPU has AVX2 and FMA, whatever `MDN_CPU_KERNELS` says
/// (tests of the AVX2 code itself gate on this).
#[cfg(target_arch = "x86_64")]
pub(crate) fn detected() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn detected() -> bool {
    false
}

/// Deterministic values in `[-scale, scale)` for the kernels' tests.
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn test_values(len: usize, seed: u32, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let h = crate::cpu::sample::pcg_hash(i as u32 ^ seed.wrapping_mul(0x9e37_79b9));
            ((h as f32 / u32::MAX as f32) * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Name of the kernel set in use, for benchmark headers.
pub fn kernel_name() -> &'static str {
    if available() { "avx2+fma" } else { "portable" }
}

/// The AVX2 stages against their portable twins on awkward sizes: ragged
/// column edges, row counts that are not multiples of the tile or of eight.
#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::test_values as values;
    use crate::cpu::dense_backward::{dense_backward_rows_avx2, dense_backward_rows_portable};
    use crate::cpu::dense_forward::{
        dense_forward_rows_avx2, dense_forward_rows_portable, transpose_weight,
    };
    use crate::cpu::mixture_head::mixture_head_rows_portable;
    use crate::model::LayerLayout;

    fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "{what}[{i}]: avx2 {g} vs portable {w}"
            );
        }
    }

    /// One layer's forward and backward on both kernel sets, compared.
    fn compare_dense(rows: usize, n_in: usize, n_out: usize, tanh: bool, seed: u32) {
        // Parameters start at 3, as a later layer's do.
        let layer = LayerLayout {
            in_dim: n_in,
            out_dim: n_out,
            weight: 3,
            bias: 3 + n_in * n_out,
            tanh,
        };
        let params = values(3 + n_in * n_out + n_out, seed, 0.7);
        let input = values(rows * n_in, seed ^ 1, 1.0);
        let mut wt = Vec::new();
        transpose_weight(&params, &layer, &mut wt);
        let (mut fast, mut slow) = (vec![0.0; rows * n_out], vec![0.0; rows * n_out]);
        unsafe { dense_forward_rows_avx2(&params, &layer, &wt, &input, &mut fast) };
        dense_forward_rows_portable(&params, &layer, &wt, &input, &mut slow);
        assert_close("forward", &fast, &slow, 1e-5);
        let grad_out = values(rows * n_out, seed ^ 2, 0.1);
        let n = n_in * n_out + n_out;
        let (mut gf, mut gs) = (vec![0.0; n], vec![0.0; n]);
        let (mut xf, mut xs) = (vec![0.0; rows * n_in], vec![0.0; rows * n_in]);
        unsafe {
            dense_backward_rows_avx2(&params, &layer, &input, &grad_out, &mut gf, Some(&mut xf))
        };
        dense_backward_rows_portable(&params, &layer, &input, &grad_out, &mut gs, Some(&mut xs));
        assert_close("weight and bias gradient", &gf, &gs, 1e-4);
        assert_close("input gradient", &xf, &xs, 1e-5);
    }

    #[test]
    fn dense_stages_match_the_portable_ones() {
        if !super::detected() {
            eprintln!("no AVX2+FMA on this CPU: only the portable kernels exist here");
            return;
        }
        for &(rows, n_in, n_out, tanh) in &[
            (1, 1, 1, true),
            (37, 1, 32, true),
            (128, 32, 32, true),
            (77, 32, 15, false),
            (13, 20, 9, true),
            (300, 64, 40, false),
        ] {
            compare_dense(rows, n_in, n_out, tanh, 1);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Any shape: ragged tiles, one-row and one-column edges.
        #[test]
        fn dense_stages_agree_on_any_shape(
            rows in 1usize..200,
            n_in in 1usize..48,
            n_out in 1usize..48,
            tanh: bool,
            seed: u32,
        ) {
            if !super::detected() {
                return Ok(());
            }
            compare_dense(rows, n_in, n_out, tanh, seed);
        }

        /// Any K, D and row count, with logits and log σ over a wide range.
        #[test]
        fn mixture_heads_agree_on_any_shape(
            rows in 1usize..40,
            k in 1usize..10,
            d in 1usize..4,
            seed: u32,
        ) {
            if !super::detected() {
                return Ok(());
            }
            let width = k + 2 * k * d;
            let head = values(rows * width, seed, 6.0);
            let target = values(rows * d, seed ^ 3, 3.0);
            let (mut gf, mut gs) = (vec![0.0; rows * width], vec![0.0; rows * width]);
            let (mut lf, mut ls) = (vec![0.0; rows], vec![0.0; rows]);
            unsafe {
                super::mixture::mixture_head_rows(&head, &target, k, 0.5, &mut gf, &mut lf, &mut Vec::new())
            };
            mixture_head_rows_portable(&head, &target, k, 0.5, &mut gs, &mut ls, &mut Vec::new());
            assert_close("row loss", &lf, &ls, 1e-4);
            assert_close("head gradient", &gf, &gs, 1e-4);
        }
    }

    #[test]
    fn mixture_head_matches_the_portable_one() {
        if !super::detected() {
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
                super::mixture::mixture_head_rows(
                    &head,
                    &target,
                    k,
                    0.25,
                    &mut gf,
                    &mut lf,
                    &mut Vec::new(),
                )
            };
            mixture_head_rows_portable(&head, &target, k, 0.25, &mut gs, &mut ls, &mut Vec::new());
            assert_close("row loss", &lf, &ls, 2e-5);
            assert_close("head gradient", &gf, &gs, 2e-5);
        }
    }
}
