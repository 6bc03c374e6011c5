//! The CPU stages' AVX2 kernels (`simd/`) against their portable twins.

/// The AVX2 stages against their portable twins on awkward sizes: ragged
/// column edges, row counts that are not multiples of the tile or of eight.
#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use crate::cpu::dense_backward::{dense_backward_rows_avx2, dense_backward_rows_portable};
    use crate::cpu::dense_forward::{
        dense_forward_rows_avx2, dense_forward_rows_portable, transpose_weight,
    };
    use crate::model::LayerLayout;
    use crate::simd::assert_close;
    use crate::simd::test_values as values;

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
        if !crate::simd::detected() {
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
            if !crate::simd::detected() {
                return Ok(());
            }
            compare_dense(rows, n_in, n_out, tanh, seed);
        }
    }
}
