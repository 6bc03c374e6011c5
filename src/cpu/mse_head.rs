//! Twin of `shaders/mse_head.wgsl`: per-row squared error (mean over the D
//! target dimensions) and its gradient.

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
