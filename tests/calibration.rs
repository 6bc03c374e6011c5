//! `eval`'s calibration report and `predict`'s point predictions and
//! quantiles, end to end through the `mdn` binary, checked against
//! independent computations in this file on the mixture parameters that
//! `predict` prints (bisection on the CDF, a grid for the mode).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn mdn(dir: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mdn"))
        .env("MDN_TUNED_KERNELS", "off")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the mdn binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "mdn {args:?}: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

fn fails(dir: &Path, args: &[&str], needle: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_mdn"))
        .env("MDN_TUNED_KERNELS", "off")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(c) if c != 0 && c != 101),
        "mdn {args:?} should fail cleanly: {stderr}"
    );
    assert!(
        stderr.contains(needle),
        "mdn {args:?}: `{needle}` not in {stderr}"
    );
}

fn csv(text: &str) -> (Vec<String>, Vec<Vec<f64>>) {
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
        .collect();
    (header, rows)
}

fn normal_cdf(z: f64) -> f64 {
    // Abramowitz–Stegun 7.1.26 is too coarse here; integrate the density
    // instead (Simpson, fine grid), independent of the library's erfc.
    if z < -12.0 {
        return 0.0;
    }
    let n = 4000;
    let (a, h) = (-12.0, (z + 12.0) / n as f64);
    let f = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let mut s = f(a) + f(z);
    for i in 1..n {
        s += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    s * h / 3.0
}

/// One row's mixture from predict's columns.
struct Mix {
    pi: Vec<f64>,
    mu: Vec<f64>,
    sigma: Vec<f64>,
}

impl Mix {
    fn cdf(&self, t: f64) -> f64 {
        (0..self.pi.len())
            .map(|k| self.pi[k] * normal_cdf((t - self.mu[k]) / self.sigma[k]))
            .sum()
    }

    fn pdf(&self, t: f64) -> f64 {
        (0..self.pi.len())
            .map(|k| {
                let z = (t - self.mu[k]) / self.sigma[k];
                self.pi[k] * (-0.5 * z * z).exp()
                    / (self.sigma[k] * (2.0 * std::f64::consts::PI).sqrt())
            })
            .sum()
    }

    fn quantile(&self, q: f64) -> f64 {
        let (mut lo, mut hi) = (-10.0, 10.0);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if self.cdf(mid) < q {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }
}

#[test]
fn eval_reports_calibration_and_predict_gives_exact_points_and_quantiles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    mdn(
        d,
        &[
            "data", "--toy", "inverse", "--n", "2048", "--seed", "1", "--out", "t.csv",
        ],
    );
    mdn(
        d,
        &[
            "data", "--toy", "inverse", "--n", "2000", "--seed", "2", "--out", "h.csv",
        ],
    );
    mdn(
        d,
        &[
            "train", "--data", "t.csv", "--k", "4", "--steps", "3000", "--hidden", "24,24",
            "--device", "cpu", "--quiet", "--out", "m.st",
        ],
    );

    // eval: one line of metrics, the JSON fields of DESIGN.md, a plot.
    let (line, _) = mdn(
        d,
        &[
            "eval", "--model", "m.st", "--data", "h.csv", "--device", "cpu",
        ],
    );
    assert_eq!(line.lines().count(), 1, "{line}");
    for key in [
        "nll",
        "crps",
        "pit_ks",
        "coverage_50",
        "coverage_90",
        "mse_mean",
    ] {
        assert!(line.contains(&format!("{key} ")), "{key} missing in {line}");
    }
    let (json, stderr) = mdn(
        d,
        &[
            "eval", "--model", "m.st", "--data", "h.csv", "--device", "cpu", "--json", "--plot",
            "cal.png",
        ],
    );
    let v: Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["rows"], 2000);
    let num = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
    // A model trained on the same problem is roughly calibrated.
    assert!(num("pit_ks") < 0.08, "{v}");
    assert!((num("coverage_50") - 0.5).abs() < 0.08, "{v}");
    assert!((num("coverage_90") - 0.9).abs() < 0.06, "{v}");
    assert!(num("crps") > 0.0 && num("crps") < 0.2, "{v}");
    assert!(num("mse_mean") > 0.0 && num("nll").is_finite());
    let comps = v["components"].as_array().unwrap();
    assert_eq!(comps.len(), 4);
    let total: f64 = comps.iter().map(|c| c["mean_pi"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-4, "{v}");
    let dead: Vec<u64> = v["dead_components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    for k in &dead {
        assert!(comps[*k as usize]["mean_pi"].as_f64().unwrap() < 1e-3);
    }
    assert!(stderr.contains("mean π per component"), "{stderr}");
    let png = image::open(d.join("cal.png")).expect("a PNG");
    assert_eq!((png.width(), png.height()), (900, 400));

    // predict: mean, median, mode and quantiles against this file's own
    // computation on the printed mixture parameters, to 1e-4.
    std::fs::write(d.join("q.csv"), "y\n0.2\n0.5\n0.62\n0.8\n").unwrap();
    let (out, _) = mdn(
        d,
        &[
            "predict",
            "--model",
            "m.st",
            "--data",
            "q.csv",
            "--device",
            "cpu",
            "--point",
            "mean,median,mode",
            "--quantiles",
            "0.05,0.5,0.95",
        ],
    );
    let (header, rows) = csv(&out);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(
        header[header.len() - 6..],
        ["mean", "median", "mode", "q_0.05", "q_0.5", "q_0.95"]
    );
    for r in &rows {
        let m = Mix {
            pi: (0..4).map(|k| r[col(&format!("pi_{k}"))]).collect(),
            mu: (0..4).map(|k| r[col(&format!("mu_{k}"))]).collect(),
            sigma: (0..4).map(|k| r[col(&format!("sigma_{k}"))]).collect(),
        };
        let mean: f64 = (0..4).map(|k| m.pi[k] * m.mu[k]).sum();
        assert!((r[col("mean")] - mean).abs() < 1e-4, "{r:?}");
        assert!((r[col("median")] - m.quantile(0.5)).abs() < 1e-4, "{r:?}");
        assert_eq!(r[col("median")], r[col("q_0.5")]);
        for q in [0.05, 0.95] {
            let got = r[col(&format!("q_{q}"))];
            assert!((got - m.quantile(q)).abs() < 1e-4, "q {q}: {got} in {r:?}");
        }
        // The mode: no point of a fine grid has a higher density.
        let mode = r[col("mode")];
        let peak = (0..=20_000)
            .map(|i| m.pdf(-0.5 + 2.0 * i as f64 / 20_000.0))
            .fold(0.0, f64::max);
        assert!(m.pdf(mode) >= peak * (1.0 - 1e-6), "mode {mode} in {r:?}");
    }

    // What predict refuses: unknown points, levels outside (0, 1), and
    // median/mode/quantiles of an MLP.
    let base = [
        "predict", "--model", "m.st", "--data", "q.csv", "--device", "cpu",
    ];
    fails(
        d,
        &[&base[..], &["--point", "mean,peak"]].concat(),
        "unknown point prediction `peak`",
    );
    fails(
        d,
        &[&base[..], &["--quantiles", "0.5,1.5"]].concat(),
        "strictly between 0 and 1",
    );
    fails(
        d,
        &[&base[..], &["--quantiles", "half"]].concat(),
        "`half` is not a number",
    );
    mdn(
        d,
        &[
            "train", "--data", "t.csv", "--model", "mlp", "--steps", "200", "--hidden", "8",
            "--device", "cpu", "--quiet", "--out", "mlp.st",
        ],
    );
    let mlp = [
        "predict", "--model", "mlp.st", "--data", "q.csv", "--device", "cpu",
    ];
    fails(
        d,
        &[&mlp[..], &["--point", "median"]].concat(),
        "need a mixture model",
    );
    let (out, _) = mdn(d, &[&mlp[..], &["--point", "mean"]].concat());
    let (header, rows) = csv(&out);
    assert_eq!(header, ["y", "pred", "mean"]);
    assert!(rows.iter().all(|r| (r[1] - r[2]).abs() < 1e-6));
    let (json, _) = mdn(
        d,
        &[
            "eval", "--model", "mlp.st", "--data", "h.csv", "--device", "cpu", "--json",
        ],
    );
    let v: Value = serde_json::from_str(json.trim()).unwrap();
    assert!(
        v["mse"].as_f64().is_some() && v["mae"].as_f64().is_some(),
        "{v}"
    );
    fails(
        d,
        &[
            "eval", "--model", "mlp.st", "--data", "h.csv", "--device", "cpu", "--plot", "x.png",
        ],
        "--plot draws the calibration",
    );
    assert!(!d.join("x.png").exists());
}
