//! The diagonal-Gaussian mixture head, twin of
//! `shaders/heads/mixture_diag.wgsl`: per row, the mixture NLL by
//! log-sum-exp and the gradient of the mean batch loss with respect to the
//! head outputs `[logits (K) | mu (K·D) | log_sigma (K·D)]`, in one pass;
//! and one draw per sample. The AVX2 version of the loss is in [`avx2`].

#[cfg(target_arch = "x86_64")]
pub mod avx2;
pub mod portable;

use rayon::prelude::*;

use super::def::{
    HALF_LOG_2PI, HeadDef, HeadPadding, Metric, component_suffix, decode_weights_and_means,
    mixture_columns, mixture_mean, softmax_into,
};
use super::sample::{SampleParams, choose_component, normal};
use crate::data::normalize::Normalizer;
use crate::simd::rows_per_task;

/// `log π_k + Σ_d log N(t_d | μ_kd, σ_kd)` for component `k`.
#[inline]
fn log_joint(head: &[f32], target: &[f32], k_count: usize, k: usize, log_pi: f32) -> f32 {
    let d_count = target.len();
    let mu = &head[k_count + k * d_count..k_count + (k + 1) * d_count];
    let ls = &head[k_count + k_count * d_count + k * d_count..][..d_count];
    let mut acc = log_pi;
    for d in 0..d_count {
        let z = (target[d] - mu[d]) * (-ls[d]).exp();
        acc -= 0.5 * z * z + ls[d] + HALF_LOG_2PI;
    }
    acc
}

/// Log-sum-exp of the logits: `log Σ exp(l_k)`.
#[inline]
fn logit_lse(logits: &[f32]) -> f32 {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    m + logits.iter().map(|&l| (l - m).exp()).sum::<f32>().ln()
}

/// NLL of one row, and `log p` pieces needed by the gradient.
/// Returns `(nll, logit_lse)`.
#[inline]
pub fn row_nll(head: &[f32], target: &[f32], k_count: usize) -> (f32, f32) {
    let lse_l = logit_lse(&head[..k_count]);
    // Online log-sum-exp over components: one pass, no K-sized scratch (the
    // shader keeps it in registers the same way).
    let mut m = f32::NEG_INFINITY;
    let mut s = 0.0f32;
    for k in 0..k_count {
        let lp = log_joint(head, target, k_count, k, head[k] - lse_l);
        if lp > m {
            s = s * (m - lp).exp() + 1.0;
            m = lp;
        } else {
            s += (lp - m).exp();
        }
    }
    (-(m + s.ln()), lse_l)
}

/// `head` `[rows, K + 2KD]`, `target` `[rows, D]`. Writes the per-row NLL and
/// `grad_head = grad_scale · ∂NLL_row/∂head` (grad_scale = 1/batch for the
/// mean loss). Splits rows across threads.
pub fn mixture_head(
    head: &[f32],
    target: &[f32],
    k_count: usize,
    grad_scale: f32,
    grad_head: &mut [f32],
    row_loss: &mut [f32],
) {
    let rows = row_loss.len();
    let d_count = target.len() / rows.max(1);
    let width = k_count + 2 * k_count * d_count;
    let chunk = rows_per_task(rows, width * 8);
    grad_head
        .par_chunks_mut(chunk * width)
        .zip(row_loss.par_chunks_mut(chunk))
        .zip(head.par_chunks(chunk * width))
        .zip(target.par_chunks(chunk * d_count))
        .for_each(|(((grad, loss), h), t)| {
            mixture_head_rows(h, t, k_count, grad_scale, grad, loss, &mut Vec::new())
        });
}

/// The same for a block of rows on the calling thread. `scratch` (any
/// length; resized here) keeps per-component values between the two passes,
/// so each exponential is taken once per row. Runs the eight-lane version
/// in `simd::mixture` where the CPU has AVX2 and FMA.
pub fn mixture_head_rows(
    head: &[f32],
    target: &[f32],
    k_count: usize,
    grad_scale: f32,
    grad_head: &mut [f32],
    row_loss: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::available() {
        // SAFETY: available() checked AVX2 and FMA.
        unsafe {
            avx2::mixture_head_rows(
                head, target, k_count, grad_scale, grad_head, row_loss, scratch,
            )
        };
        return;
    }
    portable::mixture_head_rows_portable(
        head, target, k_count, grad_scale, grad_head, row_loss, scratch,
    );
}

/// One draw from a row `[logits | mu | log_sigma]`: the component by
/// [`choose_component`], then μ + T·σ·z per dimension.
#[inline]
pub fn sample_one(head: &[f32], p: &SampleParams, index: u32, out: &mut [f32]) {
    let (k_count, d_count) = (p.k, p.d);
    let chosen = choose_component(&head[..k_count], p, index);
    for d in 0..d_count {
        let i = chosen * d_count + d;
        let mu = head[k_count + i];
        let sigma = head[k_count + k_count * d_count + i].exp();
        out[d] = mu + p.temperature * sigma * normal(p.seed, index, 1 + 2 * d as u32);
    }
}

/// The logit of a padded head's unused component ([`HeadDef::padding`]):
/// finite, so no ∞ − ∞ arises, and far enough below any real logit that
/// its exp is 0.
pub const UNUSED_LOGIT: f32 = -1e30;

/// The kind's definition ([`super::HeadKind::MixtureDiag`]).
pub struct MixtureDiag;

impl HeadDef for MixtureDiag {
    fn stem(&self) -> &'static str {
        "mixture_diag"
    }

    fn wgsl(&self) -> String {
        let row = self.row_wgsl().expect("the diagonal head has a row loss");
        row + include_str!("../../../shaders/heads/mixture_diag.wgsl")
    }

    fn row_wgsl(&self) -> Option<String> {
        Some(include_str!("../../../shaders/heads/mixture_diag_row.wgsl").to_string())
    }

    fn row_loop_passes(&self, k: usize, d: usize) -> usize {
        // logit_lse's two loops over K; then two over K, each calling
        // log_joint (a loop over D), the second with its own loop over D.
        k + (k + 1) + (k + 1) + k * (d + 1) + (k + 1) + 2 * k * (d + 1)
    }

    fn width(&self, k: usize, d: usize) -> usize {
        k + 2 * k * d
    }

    fn validate(&self, _k: usize, _d: usize) -> Result<(), String> {
        Ok(())
    }

    fn metric(&self) -> Metric {
        Metric::Nll
    }

    fn strips(&self, k: usize) -> usize {
        k
    }

    /// Each strip (logits, means, log σ) keeps its components first and
    /// gains K_to − K unused ones after them. An unused component's logit
    /// is [`UNUSED_LOGIT`]: its π is exp(−10³⁰) = 0 in f32, so the
    /// log-sum-exp and every gradient are what the K-component head gives,
    /// and its outputs' gradients are 0 (π − γ = 0 − 0, and γ·… for its
    /// mean and log σ).
    fn padding(&self, k: usize, k_to: usize, d: usize) -> Option<HeadPadding> {
        if k_to < k {
            return None;
        }
        let strip = |j: usize| -> usize {
            if j < k {
                j
            } else if j < k + k * d {
                k_to + (j - k)
            } else {
                k_to + k_to * d + (j - k - k * d)
            }
        };
        let rows: Vec<usize> = (0..self.width(k, d)).map(strip).collect();
        let mut unused_bias: Vec<(usize, f32)> = (k..k_to).map(|c| (c, UNUSED_LOGIT)).collect();
        for base in [k_to, k_to + k_to * d] {
            unused_bias.extend((k * d..k_to * d).map(|i| (base + i, 0.0)));
        }
        Some(HeadPadding { rows, unused_bias })
    }

    fn loss_rows(
        &self,
        head: &[f32],
        target: &[f32],
        k: usize,
        grad_scale: f32,
        grad_head: &mut [f32],
        row_loss: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        mixture_head_rows(head, target, k, grad_scale, grad_head, row_loss, scratch);
    }

    fn row_loss_original(&self, head: &[f32], target: &[f32], k: usize, norm: &Normalizer) -> f64 {
        row_nll(head, target, k).0 as f64 + norm.log_det()
    }

    fn loss_to_original(&self, loss: f64, norm: &Normalizer) -> f64 {
        loss + norm.log_det()
    }

    fn columns(&self, k: usize, d: usize) -> Vec<String> {
        let mut names = mixture_columns(k, d);
        for c in 0..k {
            names.extend((0..d).map(|j| format!("sigma_{}", component_suffix(c, j, d))));
        }
        names
    }

    fn decode(&self, head: &[f32], k: usize, norm: &Normalizer, out: &mut Vec<f32>) {
        let d = norm.dim();
        decode_weights_and_means(head, k, norm, out);
        out.extend((0..k * d).map(|i| head[k + k * d + i].exp() * norm.std[i % d]));
    }

    fn mean(&self, head: &[f32], k: usize, out: &mut [f32]) {
        mixture_mean(head, k, out);
    }

    fn weights(&self, head: &[f32], k: usize, out: &mut [f32]) {
        softmax_into(&head[..k], out);
    }

    fn components_1d(
        &self,
        head: &[f32],
        k: usize,
        norm: &Normalizer,
        mu: &mut [f32],
        sigma: &mut [f32],
    ) -> bool {
        if norm.dim() != 1 {
            return false;
        }
        let (mean, std) = (norm.mean[0], norm.std[0]);
        for c in 0..k {
            mu[c] = head[k + c] * std + mean;
            sigma[c] = head[2 * k + c].exp() * std;
        }
        true
    }

    fn sample_one(&self, head: &[f32], p: &SampleParams, index: u32, out: &mut [f32]) {
        sample_one(head, p, index, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal_pdf(t: f64, mu: f64, sigma: f64) -> f64 {
        (-(t - mu).powi(2) / (2.0 * sigma * sigma)).exp()
            / (sigma * (2.0 * std::f64::consts::PI).sqrt())
    }

    /// −log Σ π N written out directly, in f64.
    fn direct_nll(h: &[f32], t: &[f32], k: usize) -> f64 {
        let d = t.len();
        let e: Vec<f64> = h[..k].iter().map(|&l| (l as f64).exp()).collect();
        let z: f64 = e.iter().sum();
        let mut p = 0.0;
        for c in 0..k {
            let mut dens = e[c] / z;
            for j in 0..d {
                let mu = h[k + c * d + j] as f64;
                let sigma = (h[k + k * d + c * d + j] as f64).exp();
                dens *= normal_pdf(t[j] as f64, mu, sigma);
            }
            p += dens;
        }
        -p.ln()
    }

    #[test]
    fn log_sum_exp_matches_the_direct_formula() {
        // K = 3, D = 2, moderate values.
        let h = [
            0.2, -0.5, 1.0, // logits
            0.1, -0.3, 0.5, 0.7, -1.0, 0.0, // mu
            -0.2, 0.1, 0.3, -0.4, 0.0, 0.2, // log sigma
        ];
        let t = [0.3, -0.1];
        let (nll, _) = row_nll(&h, &t, 3);
        let direct = direct_nll(&h, &t, 3);
        assert!((nll as f64 - direct).abs() < 1e-5, "{nll} vs {direct}");
    }

    #[test]
    fn extreme_inputs_stay_finite() {
        let cases: [([f32; 6], [f32; 1]); 4] = [
            // tiny σ on the component that explains the target
            ([0.0, 0.0, 0.0, 0.0, -30.0, 0.0], [1e-9]),
            // target far from every mean
            ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1e4]),
            // one π ≈ 1 (logit gap of 200), target on the other component
            ([100.0, -100.0, 0.0, 5.0, -2.0, -2.0], [5.0]),
            // huge σ
            ([0.0, 0.0, 0.0, 0.0, 40.0, 40.0], [3.0]),
        ];
        for (h, t) in cases {
            let mut g = [0.0; 6];
            let mut l = [0.0; 1];
            mixture_head(&h, &t, 2, 1.0, &mut g, &mut l);
            assert!(l[0].is_finite(), "loss {l:?} for {h:?}");
            assert!(g.iter().all(|v| v.is_finite()), "grad {g:?} for {h:?}");
        }
        // The direct formula underflows to p = 0 (NLL = inf) where
        // log-sum-exp still gives the right finite answer.
        let h = [0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0];
        let (nll, _) = row_nll(&h, &[60.0], 2);
        assert!(direct_nll(&h, &[60.0], 2).is_infinite());
        assert!((nll - (0.5 * 3600.0 + HALF_LOG_2PI)).abs() < 1e-2, "{nll}");
    }
}
