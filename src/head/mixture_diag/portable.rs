//! The diagonal head's loss in scalar Rust, one row at a time: where the
//! CPU lacks AVX2 and FMA, for the last rows of an eight-row group, and as
//! the twin the AVX2 version is tested against.

use crate::head::def::HALF_LOG_2PI;

/// `exp` that returns 0 without the slow underflow path for arguments whose
/// result is below f32's smallest normal anyway.
#[inline]
pub(crate) fn exp_or_zero(x: f32) -> f32 {
    if x < -87.0 { 0.0 } else { x.exp() }
}

/// `mixture_head_rows` in scalar Rust, one row at a time.
pub(crate) fn mixture_head_rows_portable(
    head: &[f32],
    target: &[f32],
    k_count: usize,
    grad_scale: f32,
    grad_head: &mut [f32],
    row_loss: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let d_count = target.len() / row_loss.len().max(1);
    let width = k_count + 2 * k_count * d_count;
    let (mu_off, ls_off) = (k_count, k_count + k_count * d_count);
    scratch.resize(2 * k_count + k_count * d_count, 0.0);
    let (pi, rest) = scratch.split_at_mut(k_count);
    let (lp, inv_sigma) = rest.split_at_mut(k_count);
    for (r, (g, loss)) in grad_head
        .chunks_exact_mut(width)
        .zip(row_loss.iter_mut())
        .enumerate()
    {
        let h = &head[r * width..(r + 1) * width];
        let t = &target[r * d_count..(r + 1) * d_count];
        // log π by log-sum-exp over the logits; π itself falls out of it.
        let m_l = h[..k_count]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let mut sum_l = 0.0f32;
        for k in 0..k_count {
            pi[k] = exp_or_zero(h[k] - m_l);
            sum_l += pi[k];
        }
        let lse_l = m_l + sum_l.ln();
        // Pass 1: log π_k + Σ_d log N(t_d | μ_kd, σ_kd) per component.
        let mut m = f32::NEG_INFINITY;
        for k in 0..k_count {
            let mut acc = h[k] - lse_l;
            for d in 0..d_count {
                let i = k * d_count + d;
                let inv = (-h[ls_off + i]).exp();
                inv_sigma[i] = inv;
                let z = (t[d] - h[mu_off + i]) * inv;
                acc -= 0.5 * z * z + h[ls_off + i] + HALF_LOG_2PI;
            }
            lp[k] = acc;
            m = m.max(acc);
        }
        let mut s = 0.0f32;
        for v in lp.iter_mut() {
            *v = exp_or_zero(*v - m);
            s += *v;
        }
        *loss = -(m + s.ln());
        // Pass 2: γ_k = posterior responsibility; DESIGN.md §1 gradients.
        let inv_s = 1.0 / s;
        let inv_sum_l = 1.0 / sum_l;
        for k in 0..k_count {
            let gamma = lp[k] * inv_s;
            g[k] = (pi[k] * inv_sum_l - gamma) * grad_scale;
            for d in 0..d_count {
                let i = k * d_count + d;
                let inv = inv_sigma[i];
                let z = (t[d] - h[mu_off + i]) * inv;
                g[mu_off + i] = -gamma * z * inv * grad_scale;
                g[ls_off + i] = gamma * (1.0 - z * z) * grad_scale;
            }
        }
    }
}
