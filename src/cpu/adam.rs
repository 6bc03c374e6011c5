//! Twin of `shaders/adam.wgsl`: one Adam update over the flat parameter
//! vector (DESIGN.md §1).

use rayon::prelude::*;

use crate::train::AdamStep;

#[inline]
pub fn adam_one(p: &mut f32, g: f32, m: &mut f32, v: &mut f32, s: &AdamStep) {
    *m = s.beta1 * *m + (1.0 - s.beta1) * g;
    *v = s.beta2 * *v + (1.0 - s.beta2) * g * g;
    let m_hat = *m / s.bias1;
    let v_hat = *v / s.bias2;
    *p -= s.lr * m_hat / (v_hat.sqrt() + s.eps);
}

pub fn adam(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], step: &AdamStep) {
    // Small enough that a model of the CLI defaults (10 500 parameters)
    // spreads over the cores: in one chunk its update ran on one core while
    // the others waited, a sixth of `mdn train`'s time on two cores
    // (docs/benchmarks.md, session 13).
    const CHUNK: usize = 1 << 11;
    params
        .par_chunks_mut(CHUNK)
        .zip(grads.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| {
            for i in 0..p.len() {
                adam_one(&mut p[i], g[i], &mut m[i], &mut v[i], step);
            }
        });
}
