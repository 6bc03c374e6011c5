//! Twin of `shaders/adam.wgsl`: one Adam update over the flat parameter
//! vector (DESIGN.md §1).

use rayon::prelude::*;

/// Per-step Adam constants, computed once on the host in f64 and handed to
/// both the CPU and the GPU so the two agree bit for bit on them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// 1 − β1^t and 1 − β2^t for the 1-based step t.
    pub bias1: f32,
    pub bias2: f32,
}

pub const BETA1: f64 = 0.9;
pub const BETA2: f64 = 0.999;
pub const EPS: f64 = 1e-8;

impl AdamStep {
    /// Constants for the 1-based step `t` at learning rate `lr`.
    pub fn new(lr: f64, t: u64) -> Self {
        let t = t.max(1) as i32;
        AdamStep {
            lr: lr as f32,
            beta1: BETA1 as f32,
            beta2: BETA2 as f32,
            eps: EPS as f32,
            bias1: (1.0 - BETA1.powi(t)) as f32,
            bias2: (1.0 - BETA2.powi(t)) as f32,
        }
    }
}

#[inline]
pub fn adam_one(p: &mut f32, g: f32, m: &mut f32, v: &mut f32, s: &AdamStep) {
    *m = s.beta1 * *m + (1.0 - s.beta1) * g;
    *v = s.beta2 * *v + (1.0 - s.beta2) * g * g;
    let m_hat = *m / s.bias1;
    let v_hat = *v / s.bias2;
    *p -= s.lr * m_hat / (v_hat.sqrt() + s.eps);
}

pub fn adam(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], step: &AdamStep) {
    const CHUNK: usize = 1 << 14;
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
