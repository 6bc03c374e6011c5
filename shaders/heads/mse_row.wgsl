// heads/mse_row.wgsl: one row of the MSE head's loss, twin of `mse_head` in
// src/head/mse.rs. Shared by the per-stage `loss` entry (heads/mse.wgsl)
// and the fused training step (fused_step.wgsl) through
// HeadDef::row_wgsl; the includer defines head_at, target_at and set_grad
// (see heads/mixture_diag_row.wgsl). The head outputs are the D
// predictions themselves; `kc` is unused.

fn head_row_loss(h: u32, t: u32, kc: u32, dc: u32, scale: f32) -> f32 {
    let inv_d = 1.0 / f32(dc);
    var acc = 0.0;
    for (var j = 0u; j < dc; j++) {
        let diff = head_at(h + j) - target_at(t + j);
        acc += diff * diff;
        set_grad(h + j, 2.0 * diff * inv_d * scale);
    }
    return acc * inv_d;
}
