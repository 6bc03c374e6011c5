//! The MLP's head, twin of `shaders/heads/mse.wgsl`: per-row squared error
//! (mean over the D target dimensions) and its gradient. The head outputs
//! are the predictions themselves.

use super::def::{HeadDef, HeadPadding, Metric};
use super::sample::SampleParams;
use crate::data::normalize::Normalizer;

/// `pred`, `target` `[rows, D]`. Writes `row_loss` and
/// `grad = grad_scale · ∂row_loss/∂pred`.
pub fn mse_head(
    pred: &[f32],
    target: &[f32],
    grad_scale: f32,
    grad: &mut [f32],
    row_loss: &mut [f32],
) {
    let rows = row_loss.len();
    let d = target.len() / rows.max(1);
    let inv_d = 1.0 / d as f32;
    for r in 0..rows {
        let mut acc = 0.0f32;
        for j in 0..d {
            let i = r * d + j;
            let diff = pred[i] - target[i];
            acc += diff * diff;
            grad[i] = 2.0 * diff * inv_d * grad_scale;
        }
        row_loss[r] = acc * inv_d;
    }
}

/// The kind's definition ([`super::HeadKind::Mse`]).
pub struct Mse;

impl HeadDef for Mse {
    fn stem(&self) -> &'static str {
        "mse"
    }

    fn wgsl(&self) -> String {
        let row = self.row_wgsl().expect("the MSE head has a row loss");
        row + include_str!("../../shaders/heads/mse.wgsl")
    }

    fn row_wgsl(&self) -> Option<String> {
        Some(include_str!("../../shaders/heads/mse_row.wgsl").to_string())
    }

    fn row_loop_passes(&self, _k: usize, d: usize) -> usize {
        d + 1
    }

    fn width(&self, _k: usize, d: usize) -> usize {
        d
    }

    fn validate(&self, _k: usize, _d: usize) -> Result<(), String> {
        Ok(())
    }

    fn metric(&self) -> Metric {
        Metric::Mse
    }

    fn strips(&self, _k: usize) -> usize {
        1
    }

    /// No components: the head is the same at any K.
    fn padding(&self, _k: usize, _k_to: usize, d: usize) -> Option<HeadPadding> {
        Some(HeadPadding {
            rows: (0..d).collect(),
            unused_bias: Vec::new(),
        })
    }

    fn loss_rows(
        &self,
        head: &[f32],
        target: &[f32],
        _k: usize,
        grad_scale: f32,
        grad_head: &mut [f32],
        row_loss: &mut [f32],
        _scratch: &mut Vec<f32>,
    ) {
        mse_head(head, target, grad_scale, grad_head, row_loss);
    }

    /// The row's squared errors in original units, averaged over the
    /// dimensions, so the mean over rows is the MSE over every value.
    fn row_loss_original(&self, head: &[f32], target: &[f32], _k: usize, norm: &Normalizer) -> f64 {
        let d = target.len();
        let sum: f64 = (0..d)
            .map(|j| ((head[j] - target[j]) as f64 * norm.std[j] as f64).powi(2))
            .sum();
        sum / d as f64
    }

    fn loss_to_original(&self, loss: f64, norm: &Normalizer) -> f64 {
        let s = norm.std[0] as f64;
        loss * s * s
    }

    fn columns(&self, _k: usize, d: usize) -> Vec<String> {
        (0..d)
            .map(|j| {
                if d == 1 {
                    "pred".to_string()
                } else {
                    format!("pred_{j}")
                }
            })
            .collect()
    }

    fn decode(&self, head: &[f32], _k: usize, norm: &Normalizer, out: &mut Vec<f32>) {
        out.extend(
            head.iter()
                .enumerate()
                .map(|(j, &h)| h * norm.std[j] + norm.mean[j]),
        );
    }

    fn mean(&self, head: &[f32], _k: usize, out: &mut [f32]) {
        out.copy_from_slice(&head[..out.len()]);
    }

    fn weights(&self, _head: &[f32], _k: usize, _out: &mut [f32]) {}

    fn components_1d(
        &self,
        _head: &[f32],
        _k: usize,
        _norm: &Normalizer,
        _mu: &mut [f32],
        _sigma: &mut [f32],
    ) -> bool {
        false
    }

    fn sample_one(&self, _head: &[f32], _p: &SampleParams, _index: u32, out: &mut [f32]) {
        // Callers ask `is_distribution` first; a point prediction has
        // nothing to draw, so this never runs, and NaN would show if it did.
        out.fill(f32::NAN);
    }
}
