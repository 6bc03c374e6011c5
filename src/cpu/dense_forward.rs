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
    let chunk = rows_per_task(rows, n_in * n_out);
    output
        .par_chunks_mut(chunk * n_out)
        .zip(input.par_chunks(chunk * n_in))
        .for_each(|(out, inp)| dense_forward_rows(params, layer, inp, out));
}

/// The same on the calling thread, for trainers that already split rows.
pub fn dense_forward_rows(params: &[f32], layer: &LayerLayout, input: &[f32], output: &mut [f32]) {
    let (n_in, n_out) = (layer.in_dim, layer.out_dim);
    let rows = output.len() / n_out;
    let weight = &params[layer.weight..layer.bias];
    let bias = &params[layer.bias..layer.bias + n_out];
    for row in output.chunks_exact_mut(n_out) {
        row.copy_from_slice(bias);
    }
    // input [r, in] · Wᵀ: W is [out, in] row-major, so Wᵀ has row stride 1
    // and column stride in.
    gemm(
        rows,
        n_in,
        n_out,
        input,
        (n_in, 1),
        weight,
        (1, n_in),
        1.0,
        output,
        n_out,
    );
    if layer.tanh {
        output.iter_mut().for_each(|v| *v = tanh_approx(*v));
    }
}
