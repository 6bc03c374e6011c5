//! `eval`, `predict` and `sample` on the GPU give the CPU's answers, for
//! every head kind: the forward pass runs in the training kernels and the
//! draws come from the head's `sample` entry, whose counter-based RNG is
//! the CPU twin's.

use std::path::Path;
use std::process::Command;

use mdn::gpu::context::{BackendChoice, GpuOptions, test_context_with};

fn mdn(dir: &Path, args: &[&str]) -> String {
    mdn_env(dir, args, &[])
}

fn mdn_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mdn"))
        .env("MDN_TUNED_KERNELS", "off")
        .args(args)
        .env_remove("MDN_CHUNK_ROWS")
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("the mdn binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mdn {args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// Every number in two CSV/text outputs, compared pairwise. Tolerance 1e-4
/// relative to max(1, |value|): per-stage GPU/CPU parity is ~1e-6, and the
/// samples add Box–Muller's log and cos, still far inside it.
fn assert_same_numbers(what: &str, gpu: &str, cpu: &str) {
    let nums = |s: &str| -> Vec<f64> {
        s.split(|c: char| c == ',' || c.is_whitespace())
            .filter_map(|t| t.parse().ok())
            .collect()
    };
    let (g, c) = (nums(gpu), nums(cpu));
    assert_eq!(g.len(), c.len(), "{what}: different shapes");
    assert!(!g.is_empty(), "{what}: no numbers");
    for (i, (a, b)) in g.iter().zip(&c).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "{what}: value {i}: gpu {a} vs cpu {b}"
        );
    }
}

#[test]
fn eval_predict_and_sample_agree_between_gpu_and_cpu() {
    if test_context_with(&GpuOptions {
        backend: Some(BackendChoice::Vulkan),
        adapter: None,
        ..Default::default()
    })
    .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    mdn(
        d,
        &[
            "data", "--toy", "inverse", "--n", "300", "--seed", "3", "--out", "t.csv",
        ],
    );
    mdn(
        d,
        &[
            "data", "--toy", "forward", "--n", "300", "--seed", "3", "--out", "f.csv",
        ],
    );
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train", "--steps", "300", "--hidden", "16,16", "--device", "cpu", "--quiet",
        ];
        args.extend_from_slice(extra);
        mdn(d, &args);
    };
    train(&["--data", "t.csv", "--k", "3", "--out", "mdn.safetensors"]);
    train(&[
        "--data",
        "f.csv",
        "--model",
        "mlp",
        "--out",
        "mlp.safetensors",
    ]);
    // 2 500 rows: more than one GPU inference pass (2 048 rows each).
    mdn(
        d,
        &[
            "data", "--toy", "band", "--n", "2500", "--seed", "4", "--out", "b.csv",
        ],
    );
    train(&[
        "--data",
        "b.csv",
        "--target",
        "y0,y1",
        "--k",
        "2",
        "--covariance",
        "full",
        "--out",
        "full.safetensors",
    ]);
    let on = |device: &str, args: &[&str]| {
        let mut all = vec!["--backend", "vulkan"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--device", device]);
        mdn(d, &all)
    };
    let cases: [(&str, &[&str]); 8] = [
        (
            "eval mdn",
            &["eval", "--model", "mdn.safetensors", "--data", "t.csv"],
        ),
        (
            "eval mlp",
            &["eval", "--model", "mlp.safetensors", "--data", "f.csv"],
        ),
        (
            "predict mdn",
            &["predict", "--model", "mdn.safetensors", "--data", "t.csv"],
        ),
        (
            "predict mlp",
            &["predict", "--model", "mlp.safetensors", "--data", "f.csv"],
        ),
        (
            "sample",
            &[
                "sample",
                "--model",
                "mdn.safetensors",
                "--grid",
                "0:1.1:50",
                "--per-input",
                "20",
                "--seed",
                "9",
            ],
        ),
        (
            "eval full",
            &["eval", "--model", "full.safetensors", "--data", "b.csv"],
        ),
        (
            "predict full",
            &["predict", "--model", "full.safetensors", "--data", "b.csv"],
        ),
        (
            "sample full",
            &[
                "sample",
                "--model",
                "full.safetensors",
                "--grid",
                "-1:1:40",
                "--per-input",
                "25",
                "--seed",
                "5",
            ],
        ),
    ];
    for (what, args) in cases {
        assert_same_numbers(what, &on("gpu", args), &on("cpu", args));
    }
    // GPU sampling streams chunk by chunk like the CPU's (each draw's RNG
    // counter is its index in the run): chunks of 7 rows give the bytes
    // one pass gives.
    for (model, data) in [("mdn.safetensors", "t.csv"), ("full.safetensors", "b.csv")] {
        let args = [
            "--backend",
            "vulkan",
            "sample",
            "--model",
            model,
            "--data",
            data,
            "--per-input",
            "3",
            "--seed",
            "5",
            "--device",
            "gpu",
        ];
        let whole = mdn(d, &args);
        let chunked = mdn_env(d, &args, &[("MDN_CHUNK_ROWS", "7")]);
        assert!(chunked == whole, "{model}: chunked GPU samples differ");
        assert!(whole.lines().count() > 3 * 300, "{model}");
    }
}
