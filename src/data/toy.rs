//! Bishop's (1994) toy problem: x ~ U(0,1), y = x + 0.3 sin(2πx) + U(−0.1, 0.1);
//! and a two-dimensional one whose noise is correlated (`Band`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Dataset;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToyProblem {
    /// input x, target y: unimodal, a plain MLP fits it.
    Forward,
    /// input y, target x: multi-modal, the MLP fails and the MDN does not.
    Inverse,
    /// input x, targets (y0, y1): an arc whose Gaussian noise is a thin
    /// ellipse turning with x, so the two targets are correlated by an
    /// amount that changes along the band: what a full-covariance head
    /// learns with one component and a diagonal one needs many for.
    Band,
}

/// The band's noise: standard deviations along and across the ellipse.
pub const BAND_SIGMA: (f32, f32) = (0.2, 0.02);

/// The band at `x` ∈ [−1, 1]: its mean, and the angle of the ellipse's
/// long axis.
pub fn band_mean_and_angle(x: f32) -> ([f32; 2], f32) {
    let pi = std::f32::consts::PI;
    let a = 0.5 * pi * x;
    ([0.5 * a.sin(), 0.5 * a.cos()], pi * x)
}

/// The band's exact conditional entropy in nats per row (what a perfect
/// model's held-out NLL approaches): that of a 2-D Gaussian with the
/// band's standard deviations, the same at every x.
pub fn band_entropy() -> f64 {
    let (s1, s2) = BAND_SIGMA;
    1.0 + (2.0 * std::f64::consts::PI).ln() + (s1 as f64 * s2 as f64).ln()
}

/// The band's correlation between y0 and y1 at `x`.
pub fn band_correlation(x: f32) -> f32 {
    let (s1, s2) = BAND_SIGMA;
    let (_, phi) = band_mean_and_angle(x);
    let (c, s) = (phi.cos(), phi.sin());
    let (v0, v1) = (
        s1 * s1 * c * c + s2 * s2 * s * s,
        s1 * s1 * s * s + s2 * s2 * c * c,
    );
    (s1 * s1 - s2 * s2) * c * s / (v0 * v1).sqrt()
}

pub const DEFAULT_TOY_ROWS: usize = 4096;

/// The forward function without noise.
pub fn bishop_f(x: f32) -> f32 {
    x + 0.3 * (2.0 * std::f32::consts::PI * x).sin()
}

/// `n` samples of the toy problem, deterministic in `seed`.
pub fn toy_dataset(problem: ToyProblem, n: usize, seed: u64) -> Dataset {
    let mut rows = ToyRows::new(problem, seed);
    let (input_names, target_names) = rows.names();
    let din = input_names.len();
    let width = rows.width();
    let mut inputs = Vec::with_capacity(n * din);
    let mut targets = Vec::with_capacity(n * (width - din));
    // Drawn a block at a time, so the rows are not held twice.
    const BLOCK: usize = 1 << 16;
    let mut block = Vec::with_capacity(BLOCK.min(n) * width);
    for start in (0..n).step_by(BLOCK) {
        block.clear();
        rows.push(BLOCK.min(n - start), &mut block);
        for row in block.chunks_exact(width) {
            inputs.extend_from_slice(&row[..din]);
            targets.extend_from_slice(&row[din..]);
        }
    }
    Dataset::new(inputs, targets, input_names, target_names)
        .expect("toy data is finite and rectangular by construction")
}

/// A toy problem's rows, drawn a chunk at a time: the rows of
/// [`toy_dataset`] with the same seed, in the same order, so `mdn data`
/// writes any number of them in bounded memory.
pub struct ToyRows {
    problem: ToyProblem,
    rng: ChaCha8Rng,
}

impl ToyRows {
    pub fn new(problem: ToyProblem, seed: u64) -> Self {
        ToyRows {
            problem,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The input and target columns' names.
    pub fn names(&self) -> (Vec<String>, Vec<String>) {
        let names = |a: &[&str]| a.iter().map(|s| s.to_string()).collect();
        match self.problem {
            ToyProblem::Forward => (names(&["x"]), names(&["y"])),
            ToyProblem::Inverse => (names(&["y"]), names(&["x"])),
            ToyProblem::Band => (names(&["x"]), names(&["y0", "y1"])),
        }
    }

    /// Values per row: the inputs, then the targets.
    pub fn width(&self) -> usize {
        match self.problem {
            ToyProblem::Band => 3,
            _ => 2,
        }
    }

    /// Appends the next `n` rows to `out`, each row's inputs then targets.
    pub fn push(&mut self, n: usize, out: &mut Vec<f32>) {
        out.reserve(n * self.width());
        let rng = &mut self.rng;
        for _ in 0..n {
            match self.problem {
                ToyProblem::Forward | ToyProblem::Inverse => {
                    let x: f32 = rng.random_range(0.0..1.0);
                    let noise: f32 = rng.random_range(-0.1..0.1);
                    let y = bishop_f(x) + noise;
                    if self.problem == ToyProblem::Forward {
                        out.extend([x, y]);
                    } else {
                        out.extend([y, x]);
                    }
                }
                ToyProblem::Band => out.extend(band_row(rng)),
            }
        }
    }
}

/// One row of the band: x, y0, y1.
fn band_row(rng: &mut ChaCha8Rng) -> [f32; 3] {
    let (s1, s2) = BAND_SIGMA;
    let x: f32 = rng.random_range(-1.0..1.0);
    let (m, phi) = band_mean_and_angle(x);
    // Two standard normals by Box–Muller.
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random_range(0.0..1.0);
    let r = (-2.0 * u1.ln()).sqrt();
    let (z1, z2) = (
        r * (std::f32::consts::TAU * u2).cos(),
        r * (std::f32::consts::TAU * u2).sin(),
    );
    let (c, s) = (phi.cos(), phi.sin());
    [
        x,
        m[0] + s1 * z1 * c - s2 * z2 * s,
        m[1] + s1 * z1 * s + s2 * z2 * c,
    ]
}

/// What a perfect model of Bishop's problem reaches on fresh data, per row:
/// the conditional entropy (the lowest expected NLL, nats) and the noise
/// floor of the squared error (the lowest expected MSE, of E[t|input]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Optimum {
    pub nll: f64,
    pub mse: f64,
}

/// [`Optimum`] of the forward or inverse problem, integrated numerically
/// (once; the band's is [`band_entropy`]). Forward: the noise alone,
/// log 0.2 and 0.2²/12. Inverse: H(x|y) = H(x, y) − H(y) = log 0.2 − H(y),
/// with p(y) = 5 · |{x : |f(x) − y| < 0.1}|, and the mean over y of the
/// variance of x on that set.
pub fn optimum(problem: ToyProblem) -> Option<Optimum> {
    static INVERSE: std::sync::OnceLock<Optimum> = std::sync::OnceLock::new();
    match problem {
        ToyProblem::Forward => Some(Optimum {
            nll: (0.2f64).ln(),
            mse: 0.04 / 12.0,
        }),
        ToyProblem::Inverse => Some(*INVERSE.get_or_init(inverse_optimum)),
        ToyProblem::Band => None,
    }
}

fn inverse_optimum() -> Optimum {
    const XS: usize = 4000;
    const YS: usize = 2000;
    let f = |x: f64| x + 0.3 * (std::f64::consts::TAU * x).sin();
    let fx: Vec<f64> = (0..XS).map(|i| f((i as f64 + 0.5) / XS as f64)).collect();
    let (lo, hi) = (-0.45, 1.45);
    let dy = (hi - lo) / YS as f64;
    let (mut h_y, mut mse) = (0.0, 0.0);
    for j in 0..YS {
        let y = lo + (j as f64 + 0.5) * dy;
        let (mut n, mut sum, mut sq) = (0usize, 0.0, 0.0);
        for (i, v) in fx.iter().enumerate() {
            if (v - y).abs() < 0.1 {
                let x = (i as f64 + 0.5) / XS as f64;
                n += 1;
                sum += x;
                sq += x * x;
            }
        }
        if n == 0 {
            continue;
        }
        let p = 5.0 * n as f64 / XS as f64;
        h_y -= p * p.ln() * dy;
        let mean = sum / n as f64;
        mse += p * (sq / n as f64 - mean * mean) * dy;
    }
    Optimum {
        nll: (0.2f64).ln() - h_y,
        mse,
    }
}

/// All x with f(x) = y (up to the grid resolution): the branches of the
/// inverse problem. Used by tests and the visualizer to judge samples.
pub fn inverse_branches(y: f32) -> Vec<f32> {
    const N: usize = 20_000;
    let mut roots = Vec::new();
    let g = |x: f32| bishop_f(x) - y;
    let mut prev = g(0.0);
    for i in 1..=N {
        let x = i as f32 / N as f32;
        let cur = g(x);
        if prev == 0.0 || (prev < 0.0) != (cur < 0.0) {
            roots.push(x - 0.5 / N as f32);
        }
        prev = cur;
    }
    roots
}

/// Sorts samples `x` drawn at input `y` of the inverse problem: how many
/// lie on each branch of [`inverse_branches`]`(y)` (nearest branch), and
/// how many lie off the data altogether (f(x) further from y than the
/// noise, ±0.1, plus a little for Gaussian tails). How the tests judge a
/// trained MDN's samples.
pub fn branch_counts(samples: &[f32], y: f32) -> (Vec<usize>, usize) {
    let branches = inverse_branches(y);
    let mut hits = vec![0usize; branches.len()];
    let mut off = 0;
    for &x in samples {
        if (bishop_f(x) - y).abs() > 0.13 {
            off += 1;
            continue;
        }
        let nearest = (0..branches.len())
            .min_by(|&a, &b| (x - branches[a]).abs().total_cmp(&(x - branches[b]).abs()));
        match nearest {
            Some(b) => hits[b] += 1,
            None => off += 1,
        }
    }
    (hits, off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_counted_per_branch() {
        let b = inverse_branches(0.5);
        assert_eq!(b.len(), 3);
        let samples = [b[0], b[0] + 0.01, b[1], b[2], b[2], b[2], 5.0, -3.0];
        assert_eq!(branch_counts(&samples, 0.5), (vec![2, 1, 3], 2));
    }

    #[test]
    fn toy_data_is_seeded_and_swaps_axes() {
        let f = toy_dataset(ToyProblem::Forward, 100, 3);
        let i = toy_dataset(ToyProblem::Inverse, 100, 3);
        assert_eq!(f, toy_dataset(ToyProblem::Forward, 100, 3));
        assert_eq!(f.inputs, i.targets);
        assert_eq!(f.targets, i.inputs);
        assert_eq!(i.input_names, vec!["y"]);
        for r in 0..f.len() {
            let (x, y) = (f.inputs[r], f.targets[r]);
            assert!((0.0..1.0).contains(&x));
            assert!((y - bishop_f(x)).abs() <= 0.1 + 1e-6);
        }
    }

    #[test]
    fn band_noise_has_the_stated_correlation() {
        let d = toy_dataset(ToyProblem::Band, 400_000, 5);
        assert_eq!((d.in_dim, d.out_dim), (1, 2));
        // Rows near x = 0.25 (long axis at 45°) and x = 0.6.
        for x0 in [0.25f32, 0.6] {
            let (m, _) = band_mean_and_angle(x0);
            let near: Vec<(f32, f32)> = (0..d.len())
                .filter(|&r| (d.inputs[r] - x0).abs() < 0.01)
                .map(|r| (d.targets[2 * r] - m[0], d.targets[2 * r + 1] - m[1]))
                .collect();
            let n = near.len() as f32;
            let (a, b): (f32, f32) = near.iter().fold((0.0, 0.0), |s, p| (s.0 + p.0, s.1 + p.1));
            let (ma, mb) = (a / n, b / n);
            let (mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0);
            for &(p, q) in &near {
                saa += (p - ma) * (p - ma);
                sbb += (q - mb) * (q - mb);
                sab += (p - ma) * (q - mb);
            }
            let rho = sab / (saa * sbb).sqrt();
            // The mean moves a little across the ±0.01 window: a loose bound.
            assert!((rho - band_correlation(x0)).abs() < 0.05, "x {x0}: {rho}");
        }
        assert!((band_entropy() - (-2.6836)).abs() < 1e-3);
        // A model that knows p(t|input) exactly scores the optimum on
        // fresh data: the inverse problem's NLL and MSE by Monte Carlo.
        let inv = optimum(ToyProblem::Inverse).unwrap();
        let data = toy_dataset(ToyProblem::Inverse, 200_000, 9);
        let fx: Vec<f32> = (0..4000)
            .map(|i| bishop_f((i as f32 + 0.5) / 4000.0))
            .collect();
        let (mut nll, mut se) = (0.0f64, 0.0f64);
        for r in 0..data.len() {
            let (y, x) = (data.inputs[r], data.targets[r]);
            let set: Vec<f32> = (0..4000)
                .filter(|&i| (fx[i] - y).abs() < 0.1)
                .map(|i| (i as f32 + 0.5) / 4000.0)
                .collect();
            // p(x|y) is uniform on the set: density 1 / (its length).
            nll += (set.len() as f64 / 4000.0).ln();
            let mean = set.iter().sum::<f32>() / set.len() as f32;
            se += ((x - mean) as f64).powi(2);
        }
        let n = data.len() as f64;
        assert!(
            (nll / n - inv.nll).abs() < 0.01,
            "{} vs {}",
            nll / n,
            inv.nll
        );
        assert!(
            (se / n - inv.mse).abs() < 0.002,
            "{} vs {}",
            se / n,
            inv.mse
        );
        assert!((inv.nll - (-1.282)).abs() < 0.005, "{}", inv.nll);
        let fwd = optimum(ToyProblem::Forward).unwrap();
        assert!((fwd.mse - 0.003333).abs() < 1e-5 && (fwd.nll + 1.6094).abs() < 1e-3);
    }

    #[test]
    fn y_half_has_three_branches() {
        let b = inverse_branches(0.5);
        assert_eq!(b.len(), 3, "{b:?}");
        assert!((b[1] - 0.5).abs() < 1e-3);
    }
}
