// heads/mixture_diag_row.wgsl: one row of the diagonal mixture head's loss,
// twin of `row_nll` and `mixture_head_rows` in src/head/mixture_diag/.
// The math lives here once and is shared by two shaders (HeadDef::row_wgsl):
// the per-stage `loss` entry (heads/mixture_diag.wgsl, reading storage) and
// the fused training step (fused_step.wgsl, reading workgroup memory). The
// includer defines where values live:
//   head_at(i) -> f32      the head output at flat index i
//   target_at(i) -> f32    the target at flat index i
//   set_grad(i, v)         the gradient of head output i
// `h` and `t` are the row's first head output and target.

// log π_k + Σ_d log N(t_d | μ_kd, σ_kd) for component k.
fn log_joint(h: u32, t: u32, kc: u32, dc: u32, k: u32, log_pi: f32) -> f32 {
    let mu = h + kc + k * dc;
    let ls = h + kc + kc * dc + k * dc;
    var acc = log_pi;
    for (var d = 0u; d < dc; d++) {
        let z = (target_at(t + d) - head_at(mu + d)) * exp(-head_at(ls + d));
        acc -= 0.5 * z * z + head_at(ls + d) + HALF_LOG_2PI;
    }
    return acc;
}

// log Σ_k exp(logit_k). Starts from the first logit instead of −∞ (WGSL has
// no infinity literal); the same maximum for any finite input.
fn logit_lse(h: u32, kc: u32) -> f32 {
    var m = head_at(h);
    for (var k = 1u; k < kc; k++) {
        m = max(m, head_at(h + k));
    }
    var s = 0.0;
    for (var k = 0u; k < kc; k++) {
        s += exp(head_at(h + k) - m);
    }
    return m + log(s);
}

// The row's NLL by log-sum-exp; writes `scale ·` its gradient with respect
// to the row's K + 2·K·D head outputs. The loops and their order are the
// CPU's, so the two round alike.
fn head_row_loss(h: u32, t: u32, kc: u32, dc: u32, scale: f32) -> f32 {
    let lse_l = logit_lse(h, kc);
    // Online log-sum-exp over components: one pass, nothing K-sized. The
    // CPU starts from m = −∞; taking the first component as the start is
    // the same for every finite log joint.
    var m = 0.0;
    var s = 0.0;
    for (var k = 0u; k < kc; k++) {
        let lp = log_joint(h, t, kc, dc, k, head_at(h + k) - lse_l);
        if (k == 0u) {
            m = lp;
            s = 1.0;
        } else if (lp > m) {
            s = s * exp(m - lp) + 1.0;
            m = lp;
        } else {
            s += exp(lp - m);
        }
    }
    let nll = -(m + log(s));
    let log_p = -nll;
    let mu_off = h + kc;
    let ls_off = h + kc + kc * dc;
    for (var k = 0u; k < kc; k++) {
        let log_pi = head_at(h + k) - lse_l;
        let gamma = exp(log_joint(h, t, kc, dc, k, log_pi) - log_p);
        set_grad(h + k, (exp(log_pi) - gamma) * scale);
        for (var d = 0u; d < dc; d++) {
            let i = k * dc + d;
            let inv_sigma = exp(-head_at(ls_off + i));
            let z = (target_at(t + d) - head_at(mu_off + i)) * inv_sigma;
            set_grad(mu_off + i, -gamma * z * inv_sigma * scale);
            set_grad(ls_off + i, gamma * (1.0 - z * z) * scale);
        }
    }
    return nll;
}
