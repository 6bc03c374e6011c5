//! Twin of `shaders/dense_forward.wgsl`: `output = act(input · Wᵀ + b)`.

use rayon::prelude::*;

use super::{gemm, rows_per_task, tanh_approx};
use crate::model::LayerLayout;

/// `input` is `[rows, in_dim]`, `output` `[rows, out_dim]`; tanh for hidden
/// layers, identity for the head. Splits rows across threads.
pub fn dense_forward(params: &[f32], layer: &LayerLayout, input: &[f32], output: &mut [f32]) {
    let (n_in, n_out) = (layer.in_dim, layer.out_dim);
    let rows = output.len() / n_out;
    debug_assert_eq!(input.len(), rows * n_in);
    let mut weight_t = Vec::new();
    transpose_weight(params, layer, &mut weight_t);
    let chunk = rows_per_task(rows, n_in * n_out);
    output
        .par_chunks_mut(chunk * n_out)
        .zip(input.par_chunks(chunk * n_in))
        .for_each(|(out, inp)| dense_forward_rows(params, layer, &weight_t, inp, out));
}

/// Wᵀ (`[in, out]`, row-major) of the layer's weight W (`[out, in]`): the
/// forward product reads eight outputs at a time from one row of it.
pub fn transpose_weight(params: &[f32], layer: &LayerLayout, weight_t: &mut Vec<f32>) {
    let (n_in, n_out) = (layer.in_dim, layer.out_dim);
    let weight = &params[layer.weight..layer.bias];
    weight_t.resize(n_in * n_out, 0.0);
    for (o, row) in weight.chunks_exact(n_in).enumerate() {
        for (i, &w) in row.iter().enumerate() {
            weight_t[i * n_out + o] = w;
        }
    }
}

/// The same on the calling thread, for trainers that already split rows;
/// `weight_t` is the layer's `transpose_weight`.
pub fn dense_forward_rows(
    params: &[f32],
    layer: &LayerLayout,
    weight_t: &[f32],
    input: &[f32],
    output: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::available() {
        // SAFETY: available() checked AVX2 and FMA.
        unsafe { dense_forward_rows_avx2(params, layer, weight_t, input, output) };
        return;
    }
    dense_forward_rows_portable(params, layer, weight_t, input, output);
}

/// `dense_forward_rows` with the AVX2 kernel: bias and tanh fused into the
/// product.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn dense_forward_rows_avx2(
    params: &[f32],
    layer: &LayerLayout,
    weight_t: &[f32],
    input: &[f32],
    output: &mut [f32],
) {
    use crate::simd::gemm::{Epilogue, Init, Strided, gemm};
    let (n_in, n_out) = (layer.in_dim, layer.out_dim);
    let rows = output.len() / n_out;
    let bias = &params[layer.bias..layer.bias + n_out];
    let a = Strided {
        data: input,
        rs: n_in,
        cs: 1,
    };
    let epilogue = if layer.tanh {
        Epilogue::Tanh
    } else {
        Epilogue::None
    };
    // SAFETY: guaranteed by the caller.
    unsafe {
        gemm(
            rows,
            n_in,
            n_out,
            a,
            weight_t,
            n_out,
            output,
            n_out,
            Init::Row(bias),
            epilogue,
        )
    };
}

/// `dense_forward_rows` with matrixmultiply's sgemm and scalar tanh.
pub(crate) fn dense_forward_rows_portable(
    params: &[f32],
    layer: &LayerLayout,
    weight_t: &[f32],
    input: &[f32],
    output: &mut [f32],
) {
    let (n_in, n_out) = (layer.in_dim, layer.out_dim);
    let rows = output.len() / n_out;
    let bias = &params[layer.bias..layer.bias + n_out];
    for row in output.chunks_exact_mut(n_out) {
        row.copy_from_slice(bias);
    }
    gemm(
        rows,
        n_in,
        n_out,
        input,
        (n_in, 1),
        weight_t,
        (n_out, 1),
        1.0,
        output,
        n_out,
    );
    if layer.tanh {
        output.iter_mut().for_each(|v| *v = tanh_approx(*v));
    }
}
