//! `mdn sweep` end to end: the ranking, the best model, shards and their
//! merge, a sweep model equal to the same model trained alone, and the GPU
//! sweep against the CPU's.

use std::path::Path;
use std::process::Command;

use mdn::gpu::context::{BackendChoice, GpuOptions, test_context_with};
use mdn::model::load_model;
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

/// `sweep.jsonl` without the timings, which differ run to run.
fn results(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("sweep.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

const GRID: &[&str] = &[
    "sweep",
    "--toy",
    "inverse",
    "--n",
    "8192",
    "--k",
    "1,2,3,5,8",
    "--seeds",
    "2",
    "--steps",
    "3000",
    "--hidden",
    "32,32",
    "--val",
    "v.csv",
    "--device",
    "cpu",
    "--quiet",
];

#[test]
fn a_sweep_ranks_k3_or_more_first_and_shards_merge_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    mdn(
        d,
        &[
            "data", "--toy", "inverse", "--n", "2000", "--seed", "9", "--out", "v.csv",
        ],
    );
    let (table, _) = mdn(d, &[GRID, &["--out-dir", "all", "--keep-all"]].concat());
    let mut blocks = table.split("\n\n");
    let ranked_table = blocks.next().unwrap();
    assert_eq!(ranked_table.lines().count(), 11, "{table}");
    let all = results(&d.join("all"));
    assert_eq!(all.len(), 10);
    by_configuration_agrees(blocks.next().expect("a summary by configuration"), &all);
    let first = &all[0];
    assert!(first["k"].as_u64().unwrap() >= 3, "{first}");
    let vals: Vec<f64> = all.iter().map(|r| r["val_nll"].as_f64().unwrap()).collect();
    assert!(
        vals.windows(2).all(|w| w[0] <= w[1]),
        "not ranked: {vals:?}"
    );
    // K = 1 is the point-regression-like worst: both seeds rank last.
    assert!(all[8..].iter().all(|r| r["k"] == 1), "{all:?}");
    for r in &all {
        for key in [
            "seed",
            "lr",
            "hidden",
            "train_nll",
            "steps",
            "dead_components",
        ] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
    }

    // best.safetensors evaluates to the validation NLL reported for it.
    let (e, _) = mdn(
        d,
        &[
            "eval",
            "--model",
            "all/best.safetensors",
            "--data",
            "v.csv",
            "--device",
            "cpu",
        ],
    );
    let nll: f64 = e.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        (nll - vals[0]).abs() < 1e-5,
        "eval {nll} vs reported {}",
        vals[0]
    );

    // A sweep's model is the model `train` makes alone with its settings.
    mdn(
        d,
        &[
            "train", "--toy", "inverse", "--n", "8192", "--k", "3", "--seed", "0", "--steps",
            "3000", "--hidden", "32,32", "--val", "v.csv", "--device", "cpu", "--quiet", "--out",
            "alone.st",
        ],
    );
    let alone = std::fs::read(d.join("alone.st")).unwrap();
    let swept = std::fs::read(d.join("all/model-k3-seed0-lr0.005-h32x32.safetensors")).unwrap();
    assert!(
        alone == swept,
        "the sweep's k 3 seed 0 model differs from train's"
    );

    // Two shards, merged, are the whole sweep.
    mdn(d, &[GRID, &["--out-dir", "s0", "--shard", "0/2"]].concat());
    mdn(d, &[GRID, &["--out-dir", "s1", "--shard", "1/2"]].concat());
    assert_eq!(
        results(&d.join("s0")).len() + results(&d.join("s1")).len(),
        10
    );
    mdn(
        d,
        &[
            "sweep",
            "--merge",
            "s0",
            "s1",
            "--out-dir",
            "merged",
            "--quiet",
        ],
    );
    assert_eq!(results(&d.join("merged")), all);
    assert!(
        std::fs::read(d.join("merged/best.safetensors")).unwrap()
            == std::fs::read(d.join("all/best.safetensors")).unwrap(),
        "merged best differs"
    );
}

/// The summary after the ranked table: a line per K with the mean and
/// sample sd of its two seeds' validation NLL as `sweep.jsonl` has them,
/// best mean first, and a pick that is a K of 3 or more (the inverse
/// problem has three branches) and no worse than one standard error of
/// the best mean.
fn by_configuration_agrees(summary: &str, all: &[Value]) {
    let mut lines = summary.lines();
    assert!(
        lines.next().unwrap().starts_with("by configuration"),
        "{summary}"
    );
    assert!(lines.next().unwrap().contains("mean_val_nll"), "{summary}");
    let rows: Vec<Vec<&str>> = lines
        .by_ref()
        .take(5)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let mut means = Vec::new();
    for row in &rows {
        let k: u64 = row[0].parse().unwrap();
        let vals: Vec<f64> = all
            .iter()
            .filter(|r| r["k"] == k)
            .map(|r| r["val_nll"].as_f64().unwrap())
            .collect();
        assert_eq!(vals.len(), 2, "k {k}: {summary}");
        assert_eq!(row[3], "2", "{summary}");
        let mean = (vals[0] + vals[1]) / 2.0;
        let sd = (vals[0] - vals[1]).abs() / 2f64.sqrt();
        let shown: f64 = row[4].parse().unwrap();
        assert!(
            (shown - mean).abs() < 1e-5,
            "k {k}: {shown} vs {mean}\n{summary}"
        );
        let shown_sd: f64 = row[5].parse().unwrap();
        assert!((shown_sd - sd).abs() < 1e-5, "k {k}: sd {shown_sd} vs {sd}");
        means.push((k, mean, sd));
    }
    assert!(means.windows(2).all(|w| w[0].1 <= w[1].1), "{summary}");
    let pick = lines.next().unwrap();
    let k: u64 = pick
        .strip_prefix("pick: k ")
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("{pick}"))
        .parse()
        .unwrap();
    let (_, best_mean, best_sd) = means[0];
    let picked = means.iter().find(|m| m.0 == k).unwrap();
    assert!(k >= 3, "{summary}");
    assert!(
        picked.1 <= best_mean + best_sd / 2f64.sqrt() + 1e-12,
        "{summary}"
    );
}

/// Every model of a sweep on the GPU (Vulkan and GL) has the parameters of
/// the CPU sweep's after 200 steps, within the single-model parity
/// tolerance, with models of different K in one sweep.
#[test]
fn the_gpu_sweep_equals_the_cpu_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let grid = [
        "sweep",
        "--toy",
        "inverse",
        "--n",
        "1024",
        "--k",
        "1,3,7",
        "--steps",
        "200",
        "--eval-every",
        "200",
        "--hidden",
        "17",
        "--batch",
        "100",
        "--keep-all",
        "--quiet",
    ];
    mdn(
        d,
        &[&grid[..], &["--device", "cpu", "--out-dir", "cpu"]].concat(),
    );
    for backend in [BackendChoice::Vulkan, BackendChoice::Gl] {
        let opts = GpuOptions {
            backend: Some(backend),
            adapter: Some(String::new()),
            ..Default::default()
        };
        if test_context_with(&opts).is_none() {
            continue;
        }
        let name = backend.to_string();
        mdn(
            d,
            &[
                &grid[..],
                &["--device", "gpu", "--backend", &name, "--out-dir", &name],
            ]
            .concat(),
        );
        for k in [1, 3, 7] {
            let file = format!("model-k{k}-seed0-lr0.005-h17.safetensors");
            let cpu = load_model(&d.join("cpu").join(&file)).unwrap().params;
            let gpu = load_model(&d.join(&name).join(&file)).unwrap().params;
            let scale = cpu.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let err = cpu
                .iter()
                .zip(&gpu)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max)
                / scale;
            assert!(err <= 1e-4, "{name} k {k}: parameters differ by {err:.2e}");
        }
    }
}

/// `sweep --patience` stops each model as `train --patience` stops it
/// alone: the same step in `sweep.jsonl`, the same bytes.
#[test]
fn patience_stops_a_sweep_model_where_train_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let common = [
        "--toy",
        "inverse",
        "--n",
        "4096",
        "--steps",
        "4000",
        "--eval-every",
        "100",
        "--patience",
        "2",
        "--hidden",
        "16",
        "--lr",
        "0.05",
        "--schedule",
        "constant",
        "--device",
        "cpu",
        "--quiet",
    ];
    mdn(
        d,
        &[
            &["sweep", "--k", "2,3", "--keep-all", "--out-dir", "p"][..],
            &common,
        ]
        .concat(),
    );
    let all = results(&d.join("p"));
    assert_eq!(all.len(), 2);
    for r in &all {
        let steps = r["steps"].as_u64().unwrap();
        assert!(steps < 4000, "stopped early: {r}");
        let k = r["k"].to_string();
        let (_, stderr) = mdn(
            d,
            &[
                &["train", "--k", &k, "--out", "alone.st"][..],
                &common[..common.len() - 1],
            ]
            .concat(),
        );
        assert!(
            stderr.contains(&format!("stopped early at step {steps} of 4000")),
            "k {k}: {stderr}"
        );
        let swept = d.join(format!("p/model-k{k}-seed0-lr0.05-h16.safetensors"));
        assert!(
            std::fs::read(d.join("alone.st")).unwrap() == std::fs::read(swept).unwrap(),
            "k {k}: the sweep's model differs from train's"
        );
    }
}

/// Shards swept with other settings (here `--steps`) are not ranked
/// together: `--merge` refuses, naming the setting.
#[test]
fn merge_refuses_shards_swept_differently() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (shard, steps) in [("0/2", "40"), ("1/2", "50")] {
        mdn(
            d,
            &[
                "sweep",
                "--toy",
                "inverse",
                "--n",
                "1000",
                "--k",
                "1,2",
                "--hidden",
                "4",
                "--steps",
                steps,
                "--device",
                "cpu",
                "--quiet",
                "--shard",
                shard,
                "--out-dir",
                &format!("s{steps}"),
            ],
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mdn"))
        .args(["sweep", "--merge", "s40", "s50", "--out-dir", "m"])
        .current_dir(d)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("--steps 50 (was 40)"), "{stderr}");
}
