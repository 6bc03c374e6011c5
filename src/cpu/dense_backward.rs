//! Twin of `shaders/dense_backward.wgsl`: from `grad_out = ∂L/∂z` of one
//! layer, the weight and bias gradients (reduced over the batch) and, except
//! for the first layer, `∂L/∂z` of the layer below through its tanh.

use rayon::prelude::*;

use super::{gemm, rows_per_task};
use crate::model::LayerLayout;

/// Per-thread partial weight gradients, allocated once per trainer so a step
/// allocates nothing.
#[derive(Default)]
pub struct BackwardScratch {
    partials: Vec<Vec<f32>>,
}

/// `input` `[rows, in]` is the layer's input activation (tanh outputs for all
/// but the first layer), `grad_out` `[rows, out]`. Writes the layer's slice of
/// `grads`; if `grad_in` is given, writes `(grad_out · W) ⊙ (1 − input²)`.
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
    let wlen = n_in * n_out;
    if scratch.partials.len() < tasks {
        scratch.partials.resize_with(tasks, Vec::new);
    }
    for p in &mut scratch.partials[..tasks] {
        p.resize(wlen + n_out, 0.0);
    }

    // Weight and bias gradients: each task reduces its rows into a partial,
    // then the partials are summed, so the result does not depend on timing.
    scratch.partials[..tasks]
        .par_iter_mut()
        .zip(grad_out.par_chunks(chunk * n_out))
        .zip(input.par_chunks(chunk * n_in))
        .for_each(|((part, g), a)| {
            let r = g.len() / n_out;
            let (dw, db) = part.split_at_mut(wlen);
            // dW [out, in] = gᵀ [out, r] · a [r, in]
            gemm(n_out, r, n_in, g, (1, n_out), a, (n_in, 1), 0.0, dw, n_in);
            db.fill(0.0);
            for row in g.chunks_exact(n_out) {
                for (s, &v) in db.iter_mut().zip(row) {
                    *s += v;
                }
            }
        });
    let out = &mut grads[layer.weight..layer.bias + n_out];
    out.copy_from_slice(&scratch.partials[0]);
    for part in &scratch.partials[1..tasks] {
        for (o, &p) in out.iter_mut().zip(part.iter()) {
            *o += p;
        }
    }

    if let Some(grad_in) = grad_in {
        let weight = &params[layer.weight..layer.bias];
        grad_in
            .par_chunks_mut(chunk * n_in)
            .zip(grad_out.par_chunks(chunk * n_out))
            .zip(input.par_chunks(chunk * n_in))
            .for_each(|((gi, g), a)| {
                let r = g.len() / n_out;
                // g [r, out] · W [out, in]
                gemm(
                    r,
                    n_out,
                    n_in,
                    g,
                    (n_out, 1),
                    weight,
                    (n_in, 1),
                    0.0,
                    gi,
                    n_in,
                );
                for (v, &x) in gi.iter_mut().zip(a) {
                    *v *= 1.0 - x * x;
                }
            });
    }
}
