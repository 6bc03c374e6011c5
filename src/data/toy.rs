//! Bishop's (1994) toy problem: x ~ U(0,1), y = x + 0.3 sin(2πx) + U(−0.1, 0.1).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Dataset;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToyProblem {
    /// input x, target y: unimodal, a plain MLP fits it.
    Forward,
    /// input y, target x: multi-modal, the MLP fails and the MDN does not.
    Inverse,
}

pub const DEFAULT_TOY_ROWS: usize = 4096;

/// The forward function without noise.
pub fn bishop_f(x: f32) -> f32 {
    x + 0.3 * (2.0 * std::f32::consts::PI * x).sin()
}

/// `n` samples of the toy problem, deterministic in `seed`.
pub fn toy_dataset(problem: ToyProblem, n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut xs = Vec::with_capacity(n);
    let mut ys = Vec::with_capacity(n);
    for _ in 0..n {
        let x: f32 = rng.random_range(0.0..1.0);
        let noise: f32 = rng.random_range(-0.1..0.1);
        xs.push(x);
        ys.push(bishop_f(x) + noise);
    }
    let names = |a: &str| vec![a.to_string()];
    match problem {
        ToyProblem::Forward => Dataset::new(xs, ys, names("x"), names("y")),
        ToyProblem::Inverse => Dataset::new(ys, xs, names("y"), names("x")),
    }
    .expect("toy data is finite and rectangular by construction")
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
    fn y_half_has_three_branches() {
        let b = inverse_branches(0.5);
        assert_eq!(b.len(), 3, "{b:?}");
        assert!((b[1] - 0.5).abs() < 1e-3);
    }
}
