//! The CPU trainer is the oracle for every shader, so it is checked against
//! an independent f64 implementation of the loss: finite differences of that
//! loss must match the analytic gradients the stages compute.

use mdn::cpu::CpuTrainer;
use mdn::data::Dataset;
use mdn::model::init::init_params;
use mdn::model::{Covariance, Head, ModelSpec};
use mdn::train::{LrSchedule, TrainConfig};

/// Mean loss over all rows, computed in f64 straight from the definitions
/// (softmax, Gaussian densities summed directly, no log-sum-exp).
fn reference_loss(spec: &ModelSpec, params: &[f64], data: &Dataset) -> f64 {
    let layout = spec.layout();
    let mut total = 0.0;
    for r in 0..data.len() {
        let mut a: Vec<f64> = data.input_row(r).iter().map(|&v| v as f64).collect();
        for l in &layout.layers {
            let mut z = vec![0.0; l.out_dim];
            for (o, zo) in z.iter_mut().enumerate() {
                *zo = params[l.bias + o];
                for (i, ai) in a.iter().enumerate() {
                    *zo += params[l.weight + o * l.in_dim + i] * ai;
                }
                if l.tanh {
                    *zo = zo.tanh();
                }
            }
            a = z;
        }
        let t: Vec<f64> = data.target_row(r).iter().map(|&v| v as f64).collect();
        let d = t.len();
        total += match spec.head {
            Head::Mse => t.iter().zip(&a).map(|(t, p)| (p - t).powi(2)).sum::<f64>() / d as f64,
            Head::Mixture {
                k,
                covariance: Covariance::Diag,
            } => {
                let e: Vec<f64> = a[..k].iter().map(|l| l.exp()).collect();
                let z: f64 = e.iter().sum();
                let mut p = 0.0;
                for c in 0..k {
                    let mut dens = e[c] / z;
                    for j in 0..d {
                        let mu = a[k + c * d + j];
                        let sigma = a[k + k * d + c * d + j].exp();
                        dens *= (-(t[j] - mu).powi(2) / (2.0 * sigma * sigma)).exp()
                            / (sigma * (2.0 * std::f64::consts::PI).sqrt());
                    }
                    p += dens;
                }
                -p.ln()
            }
            // DESIGN.md's formula as written: U from the row-by-row upper
            // triangle (diagonal as logs), log N = −(D/2)·log 2π + Σ log U_dd
            // − ½‖U (t − μ)‖², densities summed directly.
            Head::Mixture {
                k,
                covariance: Covariance::Full,
            } => {
                let e: Vec<f64> = a[..k].iter().map(|l| l.exp()).collect();
                let z: f64 = e.iter().sum();
                let tri = d * (d + 1) / 2;
                let mut p = 0.0;
                for c in 0..k {
                    let block = &a[k + k * d + c * tri..][..tri];
                    let mut u = vec![vec![0.0; d]; d];
                    let mut n = 0;
                    for (i, row) in u.iter_mut().enumerate() {
                        for (j, cell) in row.iter_mut().enumerate().skip(i) {
                            *cell = if i == j { block[n].exp() } else { block[n] };
                            n += 1;
                        }
                    }
                    let r: Vec<f64> = (0..d).map(|j| t[j] - a[k + c * d + j]).collect();
                    let mut log_n = -(d as f64) * 0.5 * (2.0 * std::f64::consts::PI).ln();
                    for (i, row) in u.iter().enumerate() {
                        let v: f64 = row.iter().zip(&r).map(|(a, b)| a * b).sum();
                        log_n += row[i].ln() - 0.5 * v * v;
                    }
                    p += e[c] / z * log_n.exp();
                }
                -p.ln()
            }
        };
    }
    total / data.len() as f64
}

fn small_dataset(in_dim: usize, out_dim: usize, rows: usize) -> Dataset {
    // Deterministic, non-degenerate values in a range where no density
    // underflows, so the direct f64 formula is accurate.
    let v = |i: usize, s: f32| ((i as f32 * 0.7153 + s).sin() * 1.3).clamp(-2.0, 2.0);
    let inputs = (0..rows * in_dim).map(|i| v(i, 0.3)).collect();
    let targets = (0..rows * out_dim).map(|i| v(i, 1.9) * 0.8).collect();
    let names = |p: &str, n: usize| (0..n).map(|i| format!("{p}{i}")).collect();
    Dataset::new(inputs, targets, names("in", in_dim), names("t", out_dim)).unwrap()
}

fn config(rows: usize) -> TrainConfig {
    TrainConfig {
        steps: 1,
        batch: rows,
        lr: 1e-3,
        schedule: LrSchedule::Constant,
        seed: 1,
    }
}

/// Analytic gradient (f32 stages) against central differences of the f64
/// reference loss. Tolerance: |Δ| ≤ 2e-4 + 2e-3·|g|: f32 rounding in the
/// analytic path is ~1e-6 relative and the f64 differences (h = 1e-5) are
/// accurate to ~1e-9, so a wrong term (sign, factor, missing tanh′) fails.
fn check_gradients(spec: ModelSpec, rows: usize) {
    let data = small_dataset(spec.in_dim, spec.out_dim, rows);
    let params = init_params(&spec, 11);
    let mut trainer = CpuTrainer::new(&spec, &data, params.clone(), &config(rows)).unwrap();
    trainer.compute_gradients();
    let analytic = trainer.grads.clone();

    let p64: Vec<f64> = params.iter().map(|&v| v as f64).collect();
    let loss = reference_loss(&spec, &p64, &data);
    let mean_row_loss = trainer.row_loss().iter().map(|&v| v as f64).sum::<f64>() / rows as f64;
    assert!(
        (loss - mean_row_loss).abs() < 1e-4 * loss.abs().max(1.0),
        "loss {mean_row_loss} vs reference {loss}"
    );

    let h = 1e-5;
    let mut worst = 0.0f64;
    for i in 0..p64.len() {
        let mut plus = p64.clone();
        plus[i] += h;
        let mut minus = p64.clone();
        minus[i] -= h;
        let numeric = (reference_loss(&spec, &plus, &data) - reference_loss(&spec, &minus, &data))
            / (2.0 * h);
        let a = analytic[i] as f64;
        let err = (a - numeric).abs();
        assert!(
            err <= 2e-4 + 2e-3 * numeric.abs(),
            "{spec:?}: param {i}: analytic {a} vs numeric {numeric}"
        );
        worst = worst.max(err);
    }
    eprintln!(
        "{:?} K={} D={}: worst gradient error {worst:.2e}",
        spec.head,
        spec.k(),
        spec.out_dim
    );
}

#[test]
fn mixture_gradients_match_finite_differences() {
    for (k, d) in [(1, 1), (1, 2), (3, 1), (3, 2)] {
        check_gradients(ModelSpec::mixture(2, d, vec![5, 4], k).unwrap(), 7);
    }
}

#[test]
fn full_covariance_gradients_match_finite_differences() {
    for (k, d) in [(1, 2), (1, 3), (3, 2), (3, 3)] {
        let head = Head::full_mixture(k);
        check_gradients(ModelSpec::new(2, d, vec![5, 4], head).unwrap(), 7);
    }
}

#[test]
fn mse_gradients_match_finite_differences() {
    for d in [1, 2] {
        check_gradients(ModelSpec::mlp(2, d, vec![6, 3]).unwrap(), 5);
    }
}

#[test]
fn training_is_bit_deterministic_for_a_seed() {
    let spec = ModelSpec::mixture(1, 1, vec![16], 3).unwrap();
    let data = small_dataset(1, 1, 300);
    let cfg = TrainConfig {
        steps: 50,
        batch: 64,
        ..config(300)
    };
    let run = || {
        let mut t = CpuTrainer::new(&spec, &data, init_params(&spec, 3), &cfg).unwrap();
        for _ in 0..50 {
            t.train_step();
        }
        t.params.clone()
    };
    let (a, b) = (run(), run());
    assert_eq!(
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert_ne!(a, init_params(&spec, 3));
}
