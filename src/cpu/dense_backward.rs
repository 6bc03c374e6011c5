//! Twin of `shaders/dense_backward.wgsl`: from `grad_out = ∂L/∂z` of one
//! layer, the weight and bias gradients (reduced over the batch) and, except
//! for the first layer, `∂L/∂z` of the layer below through its tanh.

use rayon::prelude::*;

use super::{gemm, rows_per_task};
use crate::model::LayerLayout;

/// Per-thread partial weight gradients, reused across calls so a step
/// allocates nothing.
#[derive(Default)]
pub struct BackwardScratch {
    partials: Vec<Vec<f32>>,
}

/// `input` `[rows, in]` is the layer's input activation (tanh outputs for all
/// but the first layer), `grad_out` `[rows, out]`. Writes the layer's slice of
/// `grads`; if `grad_in` is given, writes `(grad_out · W) ⊙ (1 − input²)`.
/// Splits rows across threads; partial sums are added in a fixed order.
pub fn dense_backward(
    params: &[f32],
    layer: &LayerLayout,
    input: &[f32],
    grad_out: &[f32],
    grads: &mut [f32],
    grad_in: Option<&mut [f32]>,
    scratch: &mut BackwardScratch,
) {
    let (n_in, n_out) = (layer.in_dim, layer.out_dim);
    let rows = grad_out.len() / n_out;
    let chunk = rows_per_task(rows, n_in * n_out);
    let tasks = rows.div_ceil(chunk).max(1);
    let len = n_in * n_out + n_out;
    if scratch.partials.len() < tasks {
        scratch.partials.resize_with(tasks, Vec::new);
    }
    for p in &mut scratch.partials[..tasks] {
        p.resize(len, 0.0);
    }
    let mut grad_in_chunks: Vec<Option<&mut [f32]>> = match grad_in {
        Some(g) => g.chunks_mut(chunk * n_in).map(Some).collect(),
        None => (0..tasks).map(|_| None).collect(),
    };
    scratch.partials[..tasks]
        .par_iter_mut()
        .zip(grad_in_chunks.par_iter_mut())
        .zip(grad_out.par_chunks(chunk * n_out))
        .zip(input.par_chunks(chunk * n_in))
        .for_each(|(((part, gi), g), a)| {
            dense_backward_rows(params, layer, a, g, part, gi.as_deref_mut())
        });
    let out = &mut grads[layer.weight..layer.bias + n_out];
    out.copy_from_slice(&scratch.partials[0]);
    for part in &scratch.partials[1..tasks] {
        for (o, &p) in out.iter_mut().zip(part.iter()) {
            *o += p;
        }
    }
}

/// The same for one block of rows on the calling thread. `layer_grads` is
/// this layer's `[weight | bias]` gradient slice (length in·out + out),
/// overwritten with the sums over these rows.
pub fn dense_backward_rows(
    params: &[f32],
    layer: &LayerLayout,
    input: &[f32],
    grad_out: &[f32],
    layer_grads: &mut [f32],
    grad_in: Option<&mut [f32]>,
) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::available() {
        // SAFETY: available() checked AVX2 and FMA.
        unsafe { dense_backward_rows_avx2(params, layer, input, grad_out, layer_grads, grad_in) };
        return;
    }
    dense_backward_rows_portable(params, layer, input, grad_out, layer_grads, grad_in);
}

/// `dense_backward_rows` with the AVX2 kernel; the tanh derivative is fused
/// into the input-gradient product.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn dense_backward_rows_avx2(
    params: &[f32],
    layer: &LayerLayout,
    input: &[f32],
    grad_out: &[f32],
    layer_grads: &mut [f32],
    grad_in: Option<&mut [f32]>,
) {
    use crate::simd::gemm::{Epilogue, Init, Strided, column_sums, gemm};
    let (n_in, n_out) = (layer.in_dim, layer.out_dim);
    let rows = grad_out.len() / n_out;
    let weight = &params[layer.weight..layer.bias];
    let (dw, db) = layer_grads.split_at_mut(n_in * n_out);
    // SAFETY: guaranteed by the caller.
    unsafe {
        if n_in == 1 {
            // dW is a column; as the row dWᵀ = aᵀ·g (same memory) it fills
            // whole vectors instead of one lane in eight.
            let a_t = Strided {
                data: input,
                rs: 0,
                cs: 1,
            };
            gemm(
                1,
                rows,
                n_out,
                a_t,
                grad_out,
                n_out,
                dw,
                n_out,
                Init::Zero,
                Epilogue::None,
            );
        } else {
            // dW [out, in] = gᵀ · a: A is g read down its columns.
            let g_t = Strided {
                data: grad_out,
                rs: 1,
                cs: n_out,
            };
            gemm(
                n_out,
                rows,
                n_in,
                g_t,
                input,
                n_in,
                dw,
                n_in,
                Init::Zero,
                Epilogue::None,
            );
        }
        column_sums(grad_out, db);
        if let Some(gi) = grad_in {
            // g [r, out] · W [out, in], then through the tanh below.
            let g = Strided {
                data: grad_out,
                rs: n_out,
                cs: 1,
            };
            gemm(
                rows,
                n_out,
                n_in,
                g,
                weight,
                n_in,
                gi,
                n_in,
                Init::Zero,
                Epilogue::TanhGrad(input, n_in),
            );
        }
    }
}

/// `dense_backward_rows` with matrixmultiply's sgemm.
pub(crate) fn dense_backward_rows_portable(
    params: &[f32],
    layer: &LayerLayout,
    input: &[f32],
    grad_out: &[f32],
    layer_grads: &mut [f32],
    grad_in: Option<&mut [f32]>,
) {
    let (n_in, n_out) = (layer.in_dim, layer.out_dim);
    let rows = grad_out.len() / n_out;
    let weight = &params[layer.weight..layer.bias];
    let (dw, db) = layer_grads.split_at_mut(n_in * n_out);
    // dW [out, in] = gᵀ [out, r] · a [r, in]
    gemm(
        n_out,
        rows,
        n_in,
        grad_out,
        (1, n_out),
        input,
        (n_in, 1),
        0.0,
        dw,
        n_in,
    );
    db.fill(0.0);
    for row in grad_out.chunks_exact(n_out) {
        for (s, &v) in db.iter_mut().zip(row) {
            *s += v;
        }
    }
    if let Some(gi) = grad_in {
        // g [r, out] · W [out, in], then through the tanh below.
        gemm(
            rows,
            n_out,
            n_in,
            grad_out,
            (n_out, 1),
            weight,
            (n_in, 1),
            0.0,
            gi,
            n_in,
        );
        for (v, &x) in gi.iter_mut().zip(input) {
            *v *= 1.0 - x * x;
        }
    }
}
