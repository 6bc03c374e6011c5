//! Twin of `shaders/heads/mixture_full.wgsl`: the full-covariance mixture head
//! (DESIGN.md "Full-covariance mixture head"). One head row is
//! `[logits (K) | mu (K·D) | chol (K·D(D+1)/2)]`, where component k's chol
//! block is the upper-triangular precision factor U_k row by row, diagonal
//! stored as logs. `loss_rows` and `sample_one` have the shader's loop shape,
//! order of operations and names (`loss` and `sample` entry points), so the
//! two round alike; `covariance` and the one-row helpers are CPU-only.

// Index loops on purpose: they mirror the shader's loops one to one.
#![allow(clippy::needless_range_loop)]

use super::def::{
    HALF_LOG_2PI, HeadDef, Metric, decode_weights_and_means, mixture_columns, mixture_mean,
    softmax_into,
};
use super::sample::{SampleParams, choose_component, normal};
use crate::data::normalize::Normalizer;

/// Largest D the full-covariance head supports: per-component scratch lives
/// in fixed arrays of this size (registers on the GPU, the stack here). The
/// shader's `MAX_FULL_D` is generated from it.
pub const MAX_FULL_DIM: usize = 16;

/// Entries of one component's chol block: the upper triangle, D(D+1)/2.
#[inline]
pub fn chol_len(d: usize) -> usize {
    d * (d + 1) / 2
}

/// Head width for K components and D target dims: `K + K·D + K·D(D+1)/2`.
#[inline]
pub fn width(k: usize, d: usize) -> usize {
    k + k * d + k * chol_len(d)
}

/// Position of U_ij (i ≤ j) inside a component's chol block, rows listed one
/// after the other: row i starts at `i·D − i(i−1)/2`. Same formula as the
/// shader's `tri_index` (`i(2D+1−i)` is always even).
#[inline]
pub fn tri_index(d: usize, i: usize, j: usize) -> usize {
    debug_assert!(i <= j && j < d);
    i * (2 * d + 1 - i) / 2 + j - i
}

/// `exp` that returns 0 without the slow underflow path for arguments whose
/// result is below f32's smallest normal anyway (the shader has the same
/// cut-off, so both flush alike).
#[inline]
fn exp_or_zero(x: f32) -> f32 {
    if x < -87.0 { 0.0 } else { x.exp() }
}

/// `log Σ_k exp(logit_k)` of the row `h`. Starts from the first logit, as the
/// shader must (WGSL has no infinity literal).
#[inline]
fn logit_lse(h: &[f32], k_count: usize) -> f32 {
    let mut m = h[0];
    for k in 1..k_count {
        m = m.max(h[k]);
    }
    let mut s = 0.0f32;
    for k in 0..k_count {
        s += exp_or_zero(h[k] - m);
    }
    m + s.ln()
}

/// `log π_k + log N(t | μ_k, Λ_k⁻¹)` for component `k` of row `h`. Leaves the
/// residual r = t − μ_k in `resid` and the whitened residual v = U_k r in
/// `whit`, which the gradient pass reuses.
#[inline]
fn log_joint(
    h: &[f32],
    t: &[f32],
    k_count: usize,
    k: usize,
    log_pi: f32,
    resid: &mut [f32; MAX_FULL_DIM],
    whit: &mut [f32; MAX_FULL_DIM],
) -> f32 {
    let dc = t.len();
    let mu = k_count + k * dc;
    let c = k_count + k_count * dc + k * chol_len(dc);
    for d in 0..dc {
        resid[d] = t[d] - h[mu + d];
    }
    let mut acc = log_pi;
    // `row` walks to U_ii, the start of row i of the triangle.
    let mut row = c;
    for i in 0..dc {
        let log_u = h[row];
        let mut vi = log_u.exp() * resid[i];
        for j in i + 1..dc {
            vi += h[row + j - i] * resid[j];
        }
        whit[i] = vi;
        acc -= 0.5 * vi * vi - log_u + HALF_LOG_2PI;
        row += dc - i;
    }
    acc
}

/// `log Σ_k π_k N_k` of one row by online log-sum-exp: one pass, nothing
/// K-sized (as the shader keeps it in registers). Starts from the first
/// component rather than −∞, as the shader must.
#[inline]
fn row_log_p(
    h: &[f32],
    t: &[f32],
    k_count: usize,
    lse_l: f32,
    resid: &mut [f32; MAX_FULL_DIM],
    whit: &mut [f32; MAX_FULL_DIM],
) -> f32 {
    let mut m = 0.0f32;
    let mut s = 0.0f32;
    for k in 0..k_count {
        let lp = log_joint(h, t, k_count, k, h[k] - lse_l, resid, whit);
        if k == 0 {
            m = lp;
            s = 1.0;
        } else if lp > m {
            s = s * exp_or_zero(m - lp) + 1.0;
            m = lp;
        } else {
            s += exp_or_zero(lp - m);
        }
    }
    m + s.ln()
}

/// NLL `−log Σ_k π_k N(t | μ_k, Λ_k⁻¹)` of one row `head` (width(K, D)) at
/// `target` (D = target.len(), z-scored). The same value `loss_rows` writes.
pub fn row_nll(head: &[f32], target: &[f32], k: usize) -> f32 {
    assert!(target.len() <= MAX_FULL_DIM, "D > MAX_FULL_DIM");
    let mut resid = [0.0f32; MAX_FULL_DIM];
    let mut whit = [0.0f32; MAX_FULL_DIM];
    let lse_l = logit_lse(head, k);
    -row_log_p(head, target, k, lse_l, &mut resid, &mut whit)
}

/// Log density of the mixture of row `head` at `target`: `−row_nll`, for
/// eval and the density view.
pub fn log_pdf(head: &[f32], target: &[f32], k: usize) -> f32 {
    -row_nll(head, target, k)
}

/// `head` `[rows, width(K, D)]`, `target` `[rows, D]`, rows = row_loss.len().
/// Writes the per-row NLL and `grad_head = grad_scale · ∂NLL_row/∂head`
/// (grad_scale = 1/batch for the mean loss). With γ_k the responsibility,
/// r = t − μ_k and v = U_k r: ∂/∂logit_k = π_k − γ_k, ∂/∂μ_k = −γ_k U_kᵀv,
/// ∂/∂U_ij = γ_k v_i r_j (i < j), ∂/∂log U_ii = −γ_k (1 − v_i r_i U_ii).
/// Twin of the shader's `loss` entry point, one row per invocation there.
pub fn loss_rows(
    head: &[f32],
    target: &[f32],
    k: usize,
    grad_scale: f32,
    grad_head: &mut [f32],
    row_loss: &mut [f32],
) {
    let k_count = k;
    let rows = row_loss.len();
    let dc = target.len() / rows.max(1);
    assert!(dc <= MAX_FULL_DIM, "D > MAX_FULL_DIM");
    let w = width(k_count, dc);
    let cl = chol_len(dc);
    let scale = grad_scale;
    let mut resid = [0.0f32; MAX_FULL_DIM];
    let mut whit = [0.0f32; MAX_FULL_DIM];
    for r in 0..rows {
        let h = &head[r * w..(r + 1) * w];
        let t = &target[r * dc..(r + 1) * dc];
        let g = &mut grad_head[r * w..(r + 1) * w];
        let lse_l = logit_lse(h, k_count);
        let nll = -row_log_p(h, t, k_count, lse_l, &mut resid, &mut whit);
        row_loss[r] = nll;
        let log_p = -nll;
        // Pass 2 recomputes each log joint (and r, v) instead of keeping K of
        // them: the shader has no K-sized storage.
        for k in 0..k_count {
            let log_pi = h[k] - lse_l;
            let lp = log_joint(h, t, k_count, k, log_pi, &mut resid, &mut whit);
            let gamma = exp_or_zero(lp - log_p);
            g[k] = (exp_or_zero(log_pi) - gamma) * scale;
            let gs = gamma * scale;
            let mu = k_count + k * dc;
            let c = k_count + k_count * dc + k * cl;
            // (U_kᵀ v)_d = Σ_{i ≤ d} U_id v_i: column d of the triangle.
            for d in 0..dc {
                let mut acc = 0.0f32;
                for i in 0..d {
                    acc += h[c + tri_index(dc, i, d)] * whit[i];
                }
                acc += h[c + tri_index(dc, d, d)].exp() * whit[d];
                g[mu + d] = -gs * acc;
            }
            let mut row = c;
            for i in 0..dc {
                let u_ii = h[row].exp();
                // The chain rule through U_ii = exp(log U_ii) gives the U_ii.
                g[row] = -gs * (1.0 - whit[i] * resid[i] * u_ii);
                for j in i + 1..dc {
                    g[row + j - i] = gs * whit[i] * resid[j];
                }
                row += dc - i;
            }
        }
    }
}

/// One draw (z-scored units, D values into `out`) for global sample `index`
/// from one head row. The component is chosen as every mixture head does
/// ([`choose_component`]); then x = μ_k + T·U_k⁻¹z with
/// z_d = normal(seed, index, 1 + 2d), so T scales the covariance by T².
/// Twin of the shader's `sample` entry point.
pub fn sample_one(head: &[f32], p: &SampleParams, index: u32, out: &mut [f32]) {
    let (k_count, dc, seed, temperature) = (p.k, p.d, p.seed, p.temperature);
    assert!(dc <= MAX_FULL_DIM, "D > MAX_FULL_DIM");
    let chosen = choose_component(&head[..k_count], p, index);
    let mu = k_count + chosen * dc;
    let c = k_count + k_count * dc + chosen * chol_len(dc);
    let mut x = [0.0f32; MAX_FULL_DIM];
    for d in 0..dc {
        x[d] = normal(seed, index, 1 + 2 * d as u32);
    }
    // U x' = z by back-substitution, in place, last row first: x' = U⁻¹z
    // has covariance U⁻¹U⁻ᵀ = Λ⁻¹.
    for n in 0..dc {
        let a = dc - 1 - n;
        let row = c + tri_index(dc, a, a);
        let mut acc = x[a];
        for b in a + 1..dc {
            acc -= head[row + b - a] * x[b];
        }
        x[a] = acc * (-head[row]).exp();
    }
    for d in 0..dc {
        out[d] = head[mu + d] + temperature * x[d];
    }
}

/// Covariance Σ = Λ⁻¹ = U⁻¹U⁻ᵀ of component `comp` of head row `head`, as the
/// upper triangle row by row (i ≤ j, `tri_index` order, chol_len(d) values)
/// in z-scored units; the caller rescales entry (i, j) by std_i·std_j. For
/// `predict`; computed in f64 since nothing on the GPU has to match it.
pub fn covariance(head: &[f32], k: usize, d: usize, comp: usize, out: &mut [f32]) {
    assert!(d <= MAX_FULL_DIM, "D > MAX_FULL_DIM");
    let c = k + k * d + comp * chol_len(d);
    let u = |i: usize, j: usize| -> f64 {
        let x = head[c + tri_index(d, i, j)] as f64;
        if i == j { x.exp() } else { x }
    };
    // W = U⁻¹, upper triangular like U, column by column by back-substitution.
    let mut w = [[0.0f64; MAX_FULL_DIM]; MAX_FULL_DIM];
    for col in 0..d {
        for n in 0..=col {
            let a = col - n;
            let mut acc = if a == col { 1.0 } else { 0.0 };
            for b in a + 1..=col {
                acc -= u(a, b) * w[b][col];
            }
            w[a][col] = acc / u(a, a);
        }
    }
    // Σ = W Wᵀ; for i ≤ j only columns m ≥ j are non-zero in both rows.
    for i in 0..d {
        for j in i..d {
            let mut s = 0.0f64;
            for m in j..d {
                s += w[i][m] * w[j][m];
            }
            out[tri_index(d, i, j)] = s as f32;
        }
    }
}

/// The kind's definition ([`super::HeadKind::MixtureFull`]).
pub struct MixtureFull;

impl HeadDef for MixtureFull {
    fn stem(&self) -> &'static str {
        "mixture_full"
    }

    fn wgsl(&self) -> String {
        format!(
            "const MAX_FULL_D: u32 = {MAX_FULL_DIM}u;\n{}",
            include_str!("../../shaders/heads/mixture_full.wgsl")
        )
    }

    fn width(&self, k: usize, d: usize) -> usize {
        width(k, d)
    }

    fn validate(&self, _k: usize, d: usize) -> Result<(), String> {
        if !(2..=MAX_FULL_DIM).contains(&d) {
            return Err(format!(
                "a full-covariance head needs 2..={MAX_FULL_DIM} target columns, got {d} \
                 (name them with --target, e.g. --target y0,y1; for one target column use \
                 --covariance diag)"
            ));
        }
        Ok(())
    }

    fn metric(&self) -> Metric {
        Metric::Nll
    }

    fn strips(&self, k: usize) -> usize {
        k
    }

    fn loss_rows(
        &self,
        head: &[f32],
        target: &[f32],
        k: usize,
        grad_scale: f32,
        grad_head: &mut [f32],
        row_loss: &mut [f32],
        _scratch: &mut Vec<f32>,
    ) {
        loss_rows(head, target, k, grad_scale, grad_head, row_loss);
    }

    fn row_loss_original(&self, head: &[f32], target: &[f32], k: usize, norm: &Normalizer) -> f64 {
        row_nll(head, target, k) as f64 + norm.log_det()
    }

    fn loss_to_original(&self, loss: f64, norm: &Normalizer) -> f64 {
        loss + norm.log_det()
    }

    /// `pi_k`, `mu_k_d`, then `cov_k_i_j` for i ≤ j (DESIGN.md).
    fn columns(&self, k: usize, d: usize) -> Vec<String> {
        let mut names = mixture_columns(k, d);
        for c in 0..k {
            for i in 0..d {
                names.extend((i..d).map(|j| format!("cov_{c}_{i}_{j}")));
            }
        }
        names
    }

    /// Covariances in original units: entry (i, j) scales by std_i·std_j.
    fn decode(&self, head: &[f32], k: usize, norm: &Normalizer, out: &mut Vec<f32>) {
        let d = norm.dim();
        decode_weights_and_means(head, k, norm, out);
        let mut cov = vec![0.0f32; chol_len(d)];
        for c in 0..k {
            covariance(head, k, d, c, &mut cov);
            for i in 0..d {
                for j in i..d {
                    out.push(cov[tri_index(d, i, j)] * norm.std[i] * norm.std[j]);
                }
            }
        }
    }

    fn mean(&self, head: &[f32], k: usize, out: &mut [f32]) {
        mixture_mean(head, k, out);
    }

    fn weights(&self, head: &[f32], k: usize, out: &mut [f32]) {
        softmax_into(&head[..k], out);
    }

    /// Never one-dimensional (D ≥ 2 by `validate`).
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

    fn sample_one(&self, head: &[f32], p: &SampleParams, index: u32, out: &mut [f32]) {
        sample_one(head, p, index, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn params(k: usize, d: usize, seed: u32, temperature: f32) -> SampleParams {
        SampleParams {
            k,
            d,
            per_input: 1,
            seed,
            temperature,
        }
    }

    /// Dense D×D matrices in f64 for the independent reference.
    type Mat = Vec<Vec<f64>>;

    /// U_k of a head row as a dense upper-triangular matrix, in f64.
    fn dense_u(h: &[f64], k: usize, d: usize, comp: usize) -> Mat {
        let c = k + k * d + comp * d * (d + 1) / 2;
        let mut u = vec![vec![0.0; d]; d];
        let mut n = c;
        for i in 0..d {
            for j in i..d {
                u[i][j] = if i == j { h[n].exp() } else { h[n] };
                n += 1;
            }
        }
        u
    }

    fn mat_mul(a: &Mat, b: &Mat) -> Mat {
        let n = a.len();
        let mut c = vec![vec![0.0; n]; n];
        for i in 0..n {
            for j in 0..n {
                for m in 0..n {
                    c[i][j] += a[i][m] * b[m][j];
                }
            }
        }
        c
    }

    fn transpose(a: &Mat) -> Mat {
        let n = a.len();
        (0..n).map(|i| (0..n).map(|j| a[j][i]).collect()).collect()
    }

    /// Determinant by Gaussian elimination with partial pivoting.
    fn det(a: &Mat) -> f64 {
        let n = a.len();
        let mut a = a.clone();
        let mut det = 1.0;
        for col in 0..n {
            let p = (col..n)
                .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
                .unwrap();
            if p != col {
                a.swap(p, col);
                det = -det;
            }
            det *= a[col][col];
            for r in col + 1..n {
                let f = a[r][col] / a[col][col];
                for c in col..n {
                    a[r][c] -= f * a[col][c];
                }
            }
        }
        det
    }

    /// Inverse by Gauss–Jordan with partial pivoting.
    fn inverse(a: &Mat) -> Mat {
        let n = a.len();
        let mut a = a.clone();
        let mut inv: Mat = (0..n)
            .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
            .collect();
        for col in 0..n {
            let p = (col..n)
                .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
                .unwrap();
            a.swap(p, col);
            inv.swap(p, col);
            let piv = a[col][col];
            for c in 0..n {
                a[col][c] /= piv;
                inv[col][c] /= piv;
            }
            for r in 0..n {
                if r != col {
                    let f = a[r][col];
                    for c in 0..n {
                        a[r][c] -= f * a[col][c];
                        inv[r][c] -= f * inv[col][c];
                    }
                }
            }
        }
        inv
    }

    /// −log Σ_k π_k N(t | μ_k, Λ_k⁻¹) in f64 from explicit matrices:
    /// Λ = UᵀU, log det Λ by elimination, quadratic form rᵀΛr. Shares
    /// nothing with the f32 code but the layout.
    fn ref_nll_precision(h: &[f64], t: &[f64], k: usize) -> f64 {
        let d = t.len();
        let z: f64 = h[..k].iter().map(|l| l.exp()).sum();
        let mut p = 0.0;
        for c in 0..k {
            let u = dense_u(h, k, d, c);
            let lambda = mat_mul(&transpose(&u), &u);
            let r: Vec<f64> = (0..d).map(|i| t[i] - h[k + c * d + i]).collect();
            let mut q = 0.0;
            for i in 0..d {
                for j in 0..d {
                    q += r[i] * lambda[i][j] * r[j];
                }
            }
            let log_n = -(d as f64) * 0.5 * (2.0 * std::f64::consts::PI).ln()
                + 0.5 * det(&lambda).ln()
                - 0.5 * q;
            p += h[c].exp() / z * log_n.exp();
        }
        -p.ln()
    }

    /// The textbook multivariate normal through the covariance itself:
    /// Σ = inverse(Λ), density (2π)^(−D/2) det(Σ)^(−½) exp(−½ rᵀΣ⁻¹r), with
    /// Σ⁻¹r solved from Σ by a second generic inverse.
    fn ref_nll_covariance(h: &[f64], t: &[f64], k: usize) -> f64 {
        let d = t.len();
        let z: f64 = h[..k].iter().map(|l| l.exp()).sum();
        let mut p = 0.0;
        for c in 0..k {
            let u = dense_u(h, k, d, c);
            let sigma = inverse(&mat_mul(&transpose(&u), &u));
            let sigma_inv = inverse(&sigma);
            let r: Vec<f64> = (0..d).map(|i| t[i] - h[k + c * d + i]).collect();
            let mut q = 0.0;
            for i in 0..d {
                for j in 0..d {
                    q += r[i] * sigma_inv[i][j] * r[j];
                }
            }
            let dens = (2.0 * std::f64::consts::PI).powf(-(d as f64) / 2.0) / det(&sigma).sqrt()
                * (-0.5 * q).exp();
            p += h[c].exp() / z * dens;
        }
        -p.ln()
    }

    /// Moderate random head rows and targets: logits and means in ±1,
    /// log-diagonals in ±0.5, off-diagonals in ±0.5, targets in ±1.5.
    fn random_rows(rng: &mut ChaCha8Rng, rows: usize, k: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
        let w = width(k, d);
        let mut head = vec![0.0f32; rows * w];
        for r in 0..rows {
            let h = &mut head[r * w..(r + 1) * w];
            for v in h.iter_mut() {
                *v = rng.random_range(-1.0..1.0);
            }
            for c in 0..k {
                for i in 0..d {
                    for j in i..d {
                        h[k + k * d + c * chol_len(d) + tri_index(d, i, j)] =
                            rng.random_range(-0.5..0.5);
                    }
                }
            }
        }
        let target = (0..rows * d).map(|_| rng.random_range(-1.5..1.5)).collect();
        (head, target)
    }

    #[test]
    fn layout_helpers() {
        assert_eq!(chol_len(2), 3);
        assert_eq!(chol_len(16), 136);
        assert_eq!(width(3, 2), 3 + 6 + 9);
        for d in 1..=MAX_FULL_DIM {
            let mut n = 0;
            for i in 0..d {
                for j in i..d {
                    assert_eq!(tri_index(d, i, j), n, "d {d} ({i}, {j})");
                    n += 1;
                }
            }
            assert_eq!(n, chol_len(d));
        }
    }

    /// Analytic gradient vs central differences of the independent f64 loss
    /// (mean over rows). Step 1e-5 in f64 leaves FD error ≈ 1e-10, so the
    /// tolerance |Δ| ≤ 2e-6 + 1e-4·|g| is for f32 rounding of the analytic
    /// side (observed: 2e-7 absolute, 1e-5 relative).
    #[test]
    fn gradient_matches_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let rows = 4;
        for k in [1usize, 3] {
            for d in [2usize, 3] {
                let w = width(k, d);
                let (head, target) = random_rows(&mut rng, rows, k, d);
                let mut grad = vec![0.0f32; rows * w];
                let mut loss = vec![0.0f32; rows];
                loss_rows(&head, &target, k, 1.0 / rows as f32, &mut grad, &mut loss);
                let h64: Vec<f64> = head.iter().map(|&v| v as f64).collect();
                let t64: Vec<f64> = target.iter().map(|&v| v as f64).collect();
                let batch_loss = |h: &[f64]| -> f64 {
                    (0..rows)
                        .map(|r| {
                            ref_nll_precision(&h[r * w..(r + 1) * w], &t64[r * d..(r + 1) * d], k)
                        })
                        .sum::<f64>()
                        / rows as f64
                };
                let eps = 1e-5;
                for n in 0..rows * w {
                    let mut hp = h64.clone();
                    hp[n] += eps;
                    let mut hm = h64.clone();
                    hm[n] -= eps;
                    let fd = (batch_loss(&hp) - batch_loss(&hm)) / (2.0 * eps);
                    let g = grad[n] as f64;
                    assert!(
                        (g - fd).abs() <= 2e-6 + 1e-4 * fd.abs(),
                        "K {k} D {d} entry {n} (row {}, col {}): analytic {g} vs fd {fd}",
                        n / w,
                        n % w
                    );
                }
            }
        }
    }

    /// row_nll against Σ = Λ⁻¹ and the textbook density, |Δ| ≤ 1e-4 (NLLs
    /// are O(1–10), so this is ~1e-5 relative); loss_rows writes exactly the
    /// same value and log_pdf is its negative.
    #[test]
    fn row_nll_matches_the_multivariate_normal() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for (k, d) in [(1, 2), (3, 2), (2, 3), (3, 4), (2, 6)] {
            let rows = 5;
            let w = width(k, d);
            let (head, target) = random_rows(&mut rng, rows, k, d);
            let mut grad = vec![0.0f32; rows * w];
            let mut loss = vec![0.0f32; rows];
            loss_rows(&head, &target, k, 1.0, &mut grad, &mut loss);
            for r in 0..rows {
                let h = &head[r * w..(r + 1) * w];
                let t = &target[r * d..(r + 1) * d];
                let nll = row_nll(h, t, k);
                let h64: Vec<f64> = h.iter().map(|&v| v as f64).collect();
                let t64: Vec<f64> = t.iter().map(|&v| v as f64).collect();
                let direct = ref_nll_covariance(&h64, &t64, k);
                assert!(
                    (nll as f64 - direct).abs() < 1e-4,
                    "K {k} D {d}: {nll} vs {direct}"
                );
                assert_eq!(nll.to_bits(), loss[r].to_bits());
                assert_eq!(log_pdf(h, t, k), -nll);
            }
        }
    }

    #[test]
    fn extreme_inputs_stay_finite() {
        // K = 2, D = 2: [l0 l1 | μ00 μ01 μ10 μ11 | logU00 U01 logU11 (×2)].
        let cases: [([f32; 12], [f32; 2]); 6] = [
            // huge precision (σ ≈ e^-30) on the component at the target
            (
                [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 30.0, 0.0, 30.0, 0.0, 0.0, 0.0],
                [1e-9, -1e-9],
            ),
            // huge precision, target a unit away from both means
            (
                [
                    0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 30.0, 5.0, 30.0, 30.0, -5.0, 30.0,
                ],
                [1.0, 1.0],
            ),
            // tiny precision (σ ≈ e^40)
            (
                [
                    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -40.0, 0.0, -40.0, -40.0, 1e-3, -40.0,
                ],
                [3.0, -3.0],
            ),
            // target far from every mean
            (
                [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.5, 0.0, 0.0, -0.5, 0.0],
                [1e4, -1e4],
            ),
            // one logit 200 above the other, target on the other component
            (
                [
                    100.0, -100.0, 0.0, 0.0, 5.0, 5.0, 2.0, 0.0, 2.0, 2.0, 0.0, 2.0,
                ],
                [5.0, 5.0],
            ),
            // large off-diagonal (nearly singular covariance)
            (
                [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -3.0, 1e3, 0.0, 0.0, -1e3, 0.0],
                [0.5, -0.5],
            ),
        ];
        for (h, t) in cases {
            let mut g = [0.0f32; 12];
            let mut l = [0.0f32; 1];
            loss_rows(&h, &t, 2, 1.0, &mut g, &mut l);
            assert!(l[0].is_finite(), "loss {l:?} for {h:?}");
            assert!(g.iter().all(|v| v.is_finite()), "grad {g:?} for {h:?}");
            assert!(row_nll(&h, &t, 2).is_finite());
        }
        // Where the direct sum underflows, log-sum-exp keeps the exact answer:
        // identity precision, target 60 from the mean in each dim.
        let h = [
            0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        let nll = row_nll(&h, &[60.0, 60.0], 2);
        assert!((nll - (3600.0 + 2.0 * HALF_LOG_2PI)).abs() < 1e-2, "{nll}");
    }

    /// Σ·Λ = I entrywise to 1e-4 (f64 inside, one f32 rounding out; the
    /// precisions drawn have condition numbers ≲ 100).
    #[test]
    fn covariance_inverts_the_precision() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for d in [2usize, 3, 5, 8, 16] {
            let k = 2;
            let (mut head, _) = random_rows(&mut rng, 1, k, d);
            // Smaller off-diagonals at larger D keep Λ well conditioned.
            let s = 1.0 / (d as f32).sqrt();
            for c in 0..k {
                for i in 0..d {
                    for j in i + 1..d {
                        head[k + k * d + c * chol_len(d) + tri_index(d, i, j)] *= s;
                    }
                }
            }
            let h64: Vec<f64> = head.iter().map(|&v| v as f64).collect();
            for comp in 0..k {
                let mut cov = vec![0.0f32; chol_len(d)];
                covariance(&head, k, d, comp, &mut cov);
                let sigma: Mat = (0..d)
                    .map(|i| {
                        (0..d)
                            .map(|j| cov[tri_index(d, i.min(j), i.max(j))] as f64)
                            .collect()
                    })
                    .collect();
                let u = dense_u(&h64, k, d, comp);
                let prod = mat_mul(&sigma, &mat_mul(&transpose(&u), &u));
                for i in 0..d {
                    for j in 0..d {
                        let want = if i == j { 1.0 } else { 0.0 };
                        assert!(
                            (prod[i][j] - want).abs() < 1e-4,
                            "D {d} comp {comp} ({i},{j}): {}",
                            prod[i][j]
                        );
                    }
                }
            }
        }
    }

    /// Upper factor U with UᵀU = Σ⁻¹ for a 2×2 covariance, as head entries
    /// `[log U00, U01, log U11]`.
    fn chol_of_cov(s00: f64, s01: f64, s11: f64) -> [f32; 3] {
        let det = s00 * s11 - s01 * s01;
        let (a, b, c) = (s11 / det, -s01 / det, s00 / det);
        let u00 = a.sqrt();
        let u01 = b / u00;
        let u11 = (c - u01 * u01).sqrt();
        [u00.ln() as f32, u01 as f32, u11.ln() as f32]
    }

    /// 100 000 draws, π = (0.7, 0.3), means (−5, 0) and (5, 2) (so x0's sign
    /// tells the component apart), Σ_0 = [[1, .9], [.9, 1]],
    /// Σ_1 = [[.25, −.3], [−.3, .5]] (ρ ≈ −0.85). Tolerances ≈ 4–5 standard
    /// errors: share ±0.01, means ±0.03, covariance entries ±0.04·σ_iσ_j-ish
    /// (±0.04 absolute), and at T = 0.5 std ratio 0.5 ± 0.02 and share
    /// 0.49 / (0.49 + 0.09) ± 0.01.
    #[test]
    fn samples_match_means_covariances_and_temperature() {
        let covs = [(1.0, 0.9, 1.0), (0.25, -0.3, 0.5)];
        let means = [[-5.0f32, 0.0], [5.0, 2.0]];
        let (k, d) = (2, 2);
        let mut head = vec![0.7f32.ln(), 0.3f32.ln(), -5.0, 0.0, 5.0, 2.0];
        for (s00, s01, s11) in covs {
            head.extend_from_slice(&chol_of_cov(s00, s01, s11));
        }
        assert_eq!(head.len(), width(k, d));
        // Also check `covariance` recovers what we built from.
        for (comp, &(s00, s01, s11)) in covs.iter().enumerate() {
            let mut cov = [0.0f32; 3];
            covariance(&head, k, d, comp, &mut cov);
            for (got, want) in cov.iter().zip([s00, s01, s11]) {
                assert!((*got as f64 - want).abs() < 1e-5, "{cov:?}");
            }
        }
        let n = 100_000u32;
        // Per component: count, Σx, Σxxᵀ (00, 01, 11).
        let stats = |t: f32| {
            let mut acc = [[0.0f64; 6]; 2];
            let mut out = [0.0f32; 2];
            for i in 0..n {
                sample_one(&head, &params(k, d, 17, t), i, &mut out);
                let c = usize::from(out[0] > 0.0);
                let (x, y) = (out[0] as f64, out[1] as f64);
                for (a, v) in acc[c].iter_mut().zip([1.0, x, y, x * x, x * y, y * y]) {
                    *a += v;
                }
            }
            acc.map(|a| {
                let m = a[0];
                let (mx, my) = (a[1] / m, a[2] / m);
                let cov = [a[3] / m - mx * mx, a[4] / m - mx * my, a[5] / m - my * my];
                (m / n as f64, [mx, my], cov)
            })
        };
        let at_1 = stats(1.0);
        for c in 0..2 {
            let (share, mean, cov) = at_1[c];
            let want_share = [0.7, 0.3][c];
            assert!((share - want_share).abs() < 0.01, "comp {c} share {share}");
            for j in 0..2 {
                assert!(
                    (mean[j] - means[c][j] as f64).abs() < 0.03,
                    "comp {c} mean {mean:?}"
                );
            }
            let (s00, s01, s11) = covs[c];
            for (got, want) in cov.iter().zip([s00, s01, s11]) {
                assert!((got - want).abs() < 0.04, "comp {c} cov {cov:?}");
            }
        }
        let at_half = stats(0.5);
        let sharpened = 0.49 / (0.49 + 0.09);
        assert!(
            (at_half[0].0 - sharpened).abs() < 0.01,
            "share {}",
            at_half[0].0
        );
        for c in 0..2 {
            let (_, mean, cov) = at_half[c];
            let full = at_1[c].2;
            for j in 0..2 {
                assert!(
                    (mean[j] - means[c][j] as f64).abs() < 0.03,
                    "T .5 comp {c} mean {mean:?}"
                );
            }
            for (g, f) in [(cov[0], full[0]), (cov[2], full[2])] {
                let ratio = (g / f).sqrt();
                assert!(
                    (ratio - 0.5).abs() < 0.02,
                    "T .5 comp {c} std ratio {ratio}"
                );
            }
            // The correlation does not change with T.
            let rho = |v: [f64; 3]| v[1] / (v[0] * v[2]).sqrt();
            assert!(
                (rho(cov) - rho(full)).abs() < 0.02,
                "comp {c} ρ {cov:?} {full:?}"
            );
        }
    }

    /// The same seed and index give the same draw, and K = 1 never reads
    /// past the single component.
    #[test]
    fn sampling_is_deterministic() {
        let head = [0.0f32, 1.0, -1.0, 0.3, 0.2, -0.1];
        let (mut a, mut b) = ([0.0f32; 2], [0.0f32; 2]);
        sample_one(&head, &params(1, 2, 3, 1.0), 42, &mut a);
        sample_one(&head, &params(1, 2, 3, 1.0), 42, &mut b);
        assert_eq!(a, b);
        assert!(a.iter().all(|v| v.is_finite()));
    }
}
