//! Several models in one GPU trainer (`GpuTrainer::many`, a sweep's GPU
//! path): every model ends where the CPU trainer takes it alone, its loss
//! is its own, a frozen model stays put while the others train, and `mdn
//! sweep`'s GPU paths (many models per dispatch with `fused=on`, models of
//! several shapes padded into one trainer with `pad=`, one model at a time
//! by default on software adapters) equal its CPU path model by model,
//! with models of different K in one sweep; a padded network the fused
//! step refuses splits back into its shapes, and the full-covariance head
//! (no fused step, no padding) trains one model at a time. On lavapipe
//! (Vulkan) and llvmpipe (GL); without an adapter each test skips loudly,
//! and fails under `MDN_REQUIRE_GPU=1`.
//!
//! Tolerance: 1e-4 of the largest parameter after 200 Adam steps, that of
//! the single-model parity (tests/gpu_training.rs, tests/gpu_fused.rs):
//! the fused step computes each model's step as it computes one model's.

mod common;
use common::*;

use std::str::FromStr;
use std::sync::Arc;

use mdn::Dataset;
use mdn::cpu::CpuTrainer;
use mdn::data::toy::{ToyProblem, toy_dataset};
use mdn::device::DeviceChoice;
use mdn::fit::prepare;
use mdn::gpu::config::KernelConfig;
use mdn::gpu::context::{
    BackendChoice, GpuOptions, MAX_BINDING_ENV, parse_max_binding, test_context_with,
};
use mdn::gpu::{GpuTrainer, Kernels};
use mdn::model::init::init_params;
use mdn::model::load_model;
use mdn::model::{Covariance, ModelSpec};
use mdn::sweep::{Grid, Shard, run_sweep};
use mdn::train::{LrSchedule, TrainConfig, Trainer};

const TOL: f32 = 1e-4;

fn toy(rows: usize, seed: u64) -> Dataset {
    prepare(toy_dataset(ToyProblem::Inverse, rows, seed))
        .unwrap()
        .normalized
}

/// Three models of one shape: different seeds (initialisation and epoch
/// order) and learning rates, a cosine schedule, a batch that is not a
/// multiple of the fused step's chunk.
fn members(spec: &ModelSpec) -> Vec<(Vec<f32>, TrainConfig)> {
    [(0u64, 3e-3), (7, 1e-2), (3, 1e-3)]
        .into_iter()
        .map(|(seed, lr)| {
            let config = TrainConfig {
                steps: 200,
                batch: 100,
                lr,
                schedule: LrSchedule::Cosine,
                seed,
            };
            (init_params(spec, seed), config)
        })
        .collect()
}

#[test]
fn every_model_of_a_set_trains_as_it_would_alone() {
    let data = toy(730, 5);
    for backend in BACKENDS {
        let Some(ctx) = context(backend) else { return };
        let kernels = Arc::new(Kernels::new(&ctx).unwrap());
        for (hidden, k) in [(vec![16, 16], 3), (vec![33], 1)] {
            let spec = ModelSpec::mixture(1, 1, hidden.clone(), k).unwrap();
            let set = members(&spec);
            let mut many = GpuTrainer::many(
                Arc::clone(&ctx),
                Arc::clone(&kernels),
                &spec,
                &data,
                set.clone(),
            )
            .unwrap();
            assert_eq!(many.models(), 3);
            assert!(many.is_fused(), "a set runs the fused step");
            // Uneven chunks: several submissions and epochs (7 steps an
            // epoch).
            for n in [1, 12, 60, 127] {
                many.run(n).unwrap();
            }
            let losses = many.take_losses().unwrap();
            let params = many.all_params().unwrap();
            for (m, (p0, config)) in set.into_iter().enumerate() {
                let mut cpu = CpuTrainer::new(&spec, &data, p0, &config).unwrap();
                cpu.run(200).unwrap();
                let cl = cpu.take_loss().unwrap();
                let err = relative_error(&params[m], &cpu.params().unwrap());
                assert!(
                    err <= TOL,
                    "{backend} {hidden:?} K {k} model {m}: {err:.3e}"
                );
                assert_eq!(losses[m].count, 200);
                let (g, c) = (losses[m].mean(), cl.mean());
                assert!(
                    (g - c).abs() <= 1e-4 * c.abs().max(1.0),
                    "{backend} model {m}: loss {g} vs {c}"
                );
            }
        }
    }
}

#[test]
fn a_frozen_model_stays_put_while_the_others_train() {
    let data = toy(400, 2);
    let Some(ctx) = context(BackendChoice::Vulkan) else {
        return;
    };
    let kernels = Arc::new(Kernels::new(&ctx).unwrap());
    let spec = ModelSpec::mixture(1, 1, vec![8], 2).unwrap();
    let mut many = GpuTrainer::many(ctx, kernels, &spec, &data, members(&spec)).unwrap();
    many.run(20).unwrap();
    Trainer::checkpoint(&mut many).unwrap();
    let at_checkpoint = many.all_params().unwrap();
    many.run(5).unwrap();
    let moved = many.all_params().unwrap();
    assert_ne!(moved[1], at_checkpoint[1]);
    // Model 1 back to the checkpoint and frozen; model 2 frozen where it is.
    many.freeze(1, true).unwrap();
    many.freeze(2, false).unwrap();
    many.run(30).unwrap();
    let after = many.all_params().unwrap();
    assert_eq!(after[1], at_checkpoint[1]);
    assert_eq!(after[2], moved[2]);
    assert_ne!(after[0], moved[0]);
    // One-model reads refuse a set instead of answering for model 0.
    assert!(Trainer::params(&mut many).is_err());
}

#[test]
fn the_gpu_sweep_equals_the_cpu_sweep_model_by_model() {
    let raw = toy_dataset(ToyProblem::Inverse, 600, 11);
    let val = toy_dataset(ToyProblem::Inverse, 200, 12);
    // Validation only at the end: each model kept is its last state.
    let grid = Grid {
        k: vec![1, 3],
        seeds: vec![0, 1],
        lr: vec![5e-3],
        hidden: vec![vec![12, 12]],
        covariance: Covariance::Diag,
        steps: 200,
        batch: 128,
        schedule: LrSchedule::Cosine,
        eval_every: 200,
        patience: None,
        done: Vec::new(),
    };
    let sweep = |device: DeviceChoice, gpu: &GpuOptions| {
        run_sweep(
            &raw,
            &val,
            &grid,
            Shard::ALL,
            device,
            gpu,
            None,
            None,
            &mut |_| {},
            &|_, _| Ok(()),
        )
        .unwrap()
    };
    let cpu = sweep(DeviceChoice::Cpu, &GpuOptions::default());
    for backend in BACKENDS {
        if context(backend).is_none() {
            return;
        }
        let gpu = sweep(DeviceChoice::Gpu, &options(backend));
        assert_eq!(gpu.len(), 4);
        for (r, model) in &gpu {
            let (cr, cm) = cpu
                .iter()
                .find(|(c, _)| (c.k, c.seed) == (r.k, r.seed))
                .expect("the same combinations");
            let err = relative_error(&model.params, &cm.params);
            assert!(err <= TOL, "{backend} K {} seed {}: {err:.3e}", r.k, r.seed);
            assert_eq!(r.steps, 200);
            assert!(
                (r.val_nll - cr.val_nll).abs() <= 1e-3 * cr.val_nll.abs().max(1.0),
                "{backend} K {} seed {}: val {} vs {}",
                r.k,
                r.seed,
                r.val_nll,
                cr.val_nll
            );
        }
    }
}

/// The grid of most CLI sweeps here: two K, two seeds, one shape each.
const TWO_K: [&str; 8] = [
    "--toy", "inverse", "--k", "1,3", "--seeds", "2", "--hidden", "12,12",
];

/// `mdn sweep --keep-all` over `grid` on `device` with `env` set, in `dir`;
/// returns stderr.
fn cli_sweep_of(
    grid: &[&str],
    dir: &std::path::Path,
    device: &str,
    backend: &str,
    env: &[(&str, &str)],
) -> String {
    // 200 steps in minibatches of 128, validated at the end, unless the
    // grid says otherwise.
    let defaults = [
        ("--steps", "200"),
        ("--eval-every", "200"),
        ("--batch", "128"),
    ];
    let unset = defaults
        .into_iter()
        .filter(|(flag, _)| !grid.contains(flag));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdn"))
        .env("MDN_TUNED_KERNELS", "off")
        .arg("sweep")
        .args(grid)
        .args(unset.flat_map(|(flag, value)| [flag, value]))
        .args([
            "--keep-all",
            "--device",
            device,
            "--backend",
            backend,
            "--out-dir",
            device,
        ])
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("mdn runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{device}: {stderr}");
    stderr
}

/// The CLI's names of the backends, up to the first without an adapter
/// (`context` skips loudly there, or fails under `MDN_REQUIRE_GPU=1`).
fn cli_backends() -> Vec<&'static str> {
    [("vulkan", BackendChoice::Vulkan), ("gl", BackendChoice::Gl)]
        .into_iter()
        .take_while(|&(_, b)| context(b).is_some())
        .map(|(name, _)| name)
        .collect()
}

fn cli_sweep(dir: &std::path::Path, device: &str, backend: &str, env: &[(&str, &str)]) -> String {
    cli_sweep_of(&TWO_K, dir, device, backend, env)
}

/// Every `model-*.safetensors` of `a` equals its namesake in `b` (TOL).
fn same_models(a: &std::path::Path, b: &std::path::Path, count: usize, what: &str) {
    let mut files: Vec<_> = std::fs::read_dir(a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("model-"))
        .collect();
    files.sort();
    assert_eq!(files.len(), count, "{files:?}");
    for f in files {
        let x = load_model(&a.join(&f)).unwrap();
        let y = load_model(&b.join(&f)).unwrap();
        assert_eq!(x.spec, y.spec, "{what} {f:?}");
        let err = relative_error(&y.params, &x.params);
        assert!(err <= TOL, "{what} {f:?}: {err:.3e}");
    }
}

#[test]
fn the_cli_sweep_steps_models_of_each_k_together_and_equals_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_sweep(d, "cpu", "vulkan", &[]);
    for backend in cli_backends() {
        let gpu_dir = d.join(backend);
        std::fs::create_dir_all(&gpu_dir).unwrap();
        let kernels = [("MDN_GPU_KERNELS", "fused=on,pad=0")];
        let stderr = cli_sweep(&gpu_dir, "gpu", backend, &kernels);
        assert!(!stderr.contains("one after another"), "{stderr}");
        assert!(!stderr.contains("padded"), "pad=0: {stderr}");
        same_models(&d.join("cpu"), &gpu_dir.join("gpu"), 4, backend);
        // Without the override a software adapter trains one at a time,
        // and says so; a real GPU's defaults fuse.
        let ctx = context(BackendChoice::from_str(backend).unwrap()).unwrap();
        let fused = KernelConfig::for_adapter(&ctx.info).fused;
        let plain = d.join(format!("{backend}-plain"));
        std::fs::create_dir_all(&plain).unwrap();
        let stderr = cli_sweep(&plain, "gpu", backend, &[]);
        assert_eq!(stderr.contains("one after another"), !fused, "{stderr}");
    }
}

/// Four shapes (K 1 and 3, hidden 12,12 and 8,8) padded into one trainer
/// of K 3 and hidden 12,12 (`pad=200`: 152 % of their own arithmetic):
/// each model saved is its own shape and equals the CPU's, which trains
/// it alone.
#[test]
fn the_cli_sweep_pads_models_of_different_shapes_into_one_trainer() {
    const GRID: [&str; 8] = [
        "--toy",
        "inverse",
        "--k",
        "1,3",
        "--seeds",
        "1",
        "--hidden",
        "12,12;8,8",
    ];
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_sweep_of(&GRID, d, "cpu", "vulkan", &[]);
    for backend in cli_backends() {
        let gpu_dir = d.join(backend);
        std::fs::create_dir_all(&gpu_dir).unwrap();
        let env = [("MDN_GPU_KERNELS", "fused=on,pad=200")];
        let stderr = cli_sweep_of(&GRID, &gpu_dir, "gpu", backend, &env);
        assert!(
            stderr.contains(
                "4 models of 4 shapes train in one trainer, padded to K 3 with hidden 12,12"
            ),
            "{stderr}"
        );
        same_models(&d.join("cpu"), &gpu_dir.join("gpu"), 4, backend);
        // Below what padding costs here, each shape has its own trainer.
        let grouped = d.join(format!("{backend}-grouped"));
        std::fs::create_dir_all(&grouped).unwrap();
        let env = [("MDN_GPU_KERNELS", "fused=on,pad=140")];
        let stderr = cli_sweep_of(&GRID, &grouped, "gpu", backend, &env);
        assert!(!stderr.contains("padded"), "{stderr}");
        same_models(&d.join("cpu"), &grouped.join("gpu"), 4, backend);
    }
}

/// `grid` swept on the CPU and on Vulkan with `env` set for the GPU run
/// (`MDN_GPU_KERNELS`, `MDN_GPU_MAX_BINDING`): the `models` models saved
/// equal; returns the GPU run's stderr (`None`
/// without an adapter, which `context` reports).
fn vulkan_sweep_equals_cpu(grid: &[&str], env: &[(&str, &str)], models: usize) -> Option<String> {
    context(BackendChoice::Vulkan)?;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_sweep_of(grid, d, "cpu", "vulkan", &[]);
    let stderr = cli_sweep_of(grid, d, "gpu", "vulkan", env);
    same_models(&d.join("cpu"), &d.join("gpu"), models, "vulkan");
    Some(stderr)
}

/// A padded network the fused step cannot take (hidden 130 > 128) splits
/// back into its shapes: the one that fits still trains in a trainer of
/// its own, the other one model at a time; both equal the CPU's.
#[test]
fn a_padded_trainer_the_fused_step_refuses_splits_into_its_shapes() {
    const GRID: [&str; 8] = [
        "--toy", "inverse", "--k", "2", "--seeds", "1", "--hidden", "8;130",
    ];
    let Some(stderr) =
        vulkan_sweep_equals_cpu(&GRID, &[("MDN_GPU_KERNELS", "fused=on,pad=100000")], 2)
    else {
        return;
    };
    assert!(
        stderr.contains("a hidden layer of 130 > 128; one trainer per shape instead"),
        "{stderr}"
    );
    assert!(
        stderr.contains("K 2 with hidden 130: invalid setting: no fused step for these models: a hidden layer of 130 > 128; training these models one at a time"),
        "{stderr}"
    );
}

/// Lavapipe's storage binding, which the tests of work split by the
/// binding size give every device (`GpuOptions::max_binding`): a large
/// GPU's 2 GiB or more would hold thousands of these models at once.
const SMALL_BINDING: u64 = 128 << 20;
const SMALL_BINDING_TEXT: &str = "128MiB";

/// `GpuTrainer::models_that_fit` counts what `GpuTrainer::many` then
/// allocates: the count it gives builds, one more does not (a 128,128
/// network, minibatches of 4 096, a workgroup per chunk: 46 MB of
/// gradient partials a model).
#[test]
fn models_that_fit_is_what_a_trainer_holds() {
    assert_eq!(parse_max_binding(SMALL_BINDING_TEXT), Ok(SMALL_BINDING));
    let opts = GpuOptions {
        max_binding: Some(SMALL_BINDING),
        ..options(BackendChoice::Vulkan)
    };
    let Some(ctx) = test_context_with(&opts).map(Arc::new) else {
        return;
    };
    let cfg = KernelConfig {
        fused: true,
        fused_groups: 4096,
        ..KernelConfig::for_adapter(&ctx.info)
    };
    let kernels = Arc::new(Kernels::with_config(&ctx, cfg).unwrap());
    let spec = ModelSpec::mixture(1, 1, vec![128, 128], 8).unwrap();
    let data = toy(4096, 5);
    let fit = GpuTrainer::models_that_fit(&ctx, &kernels, &spec, data.len(), 4096, 100);
    assert!((1..100).contains(&fit), "{fit}");
    let set = |models: usize| {
        let config = TrainConfig {
            steps: 10,
            batch: 4096,
            lr: 1e-3,
            schedule: LrSchedule::Constant,
            seed: 0,
        };
        let members = (0..models)
            .map(|m| (init_params(&spec, m as u64), config.clone()))
            .collect();
        GpuTrainer::many(
            Arc::clone(&ctx),
            Arc::clone(&kernels),
            &spec,
            &data,
            members,
        )
    };
    assert!(set(fit).is_ok(), "{fit} models");
    let err = set(fit + 1).err().expect("one model more than fits");
    assert!(
        err.to_string().contains("more than this GPU binds"),
        "{err}"
    );
}

/// More models than one trainer's buffers hold on this GPU (a 128,128
/// network in minibatches of 4 096 with a workgroup per chunk: 46 MB of
/// gradient partials a model, 2 models to a 128 MiB binding, lavapipe's
/// and here every device's) train in several trainers, and equal the
/// CPU's.
#[test]
fn a_set_larger_than_one_trainer_holds_splits() {
    const GRID: [&str; 14] = [
        "--toy",
        "inverse",
        "--k",
        "8",
        "--seeds",
        "3",
        "--hidden",
        "128,128",
        "--batch",
        "4096",
        "--steps",
        "2",
        "--eval-every",
        "2",
    ];
    let env = [
        ("MDN_GPU_KERNELS", "fused=on,fused_groups=4096"),
        (MAX_BINDING_ENV, SMALL_BINDING_TEXT),
    ];
    let Some(stderr) = vulkan_sweep_equals_cpu(&GRID, &env, 3) else {
        return;
    };
    assert!(
        stderr.contains(
            "3 models are more than one trainer holds on this GPU (2); 2 trainers instead"
        ),
        "{stderr}"
    );
}

/// The full-covariance head has neither a fused step nor padding: with
/// both asked for, its models train one at a time on the per-stage
/// kernels, and equal the CPU's.
#[test]
fn a_full_covariance_sweep_trains_one_model_at_a_time() {
    const GRID: [&str; 10] = [
        "--toy",
        "band",
        "--k",
        "1,2",
        "--seeds",
        "1",
        "--hidden",
        "8",
        "--covariance",
        "full",
    ];
    let Some(stderr) =
        vulkan_sweep_equals_cpu(&GRID, &[("MDN_GPU_KERNELS", "fused=on,pad=1000")], 2)
    else {
        return;
    };
    assert!(
        stderr.contains(
            "the mixture_full head has no fused row loss; training these models one at a time"
        ),
        "{stderr}"
    );
}

/// `--patience` on the GPU's shared trainer: each model stops at its own
/// check (a high, constant learning rate makes them stop at different
/// steps, so stopped models are frozen while the others go on), at the
/// step the CPU's run stops it, and is kept as the CPU keeps it. (At 0.05
/// the runs are chaotic: CPU and GPU part within 60 steps, as any two
/// roundings would.)
#[test]
fn patience_stops_each_model_of_a_shared_trainer_where_the_cpu_stops_it() {
    let grid: Vec<&str> = [
        &TWO_K[..],
        &[
            "--steps",
            "400",
            "--eval-every",
            "20",
            "--lr",
            "0.02",
            "--schedule",
            "constant",
            "--patience",
            "2",
        ],
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_sweep_of(&grid, d, "cpu", "vulkan", &[]);
    let steps = |dir: &std::path::Path| -> Vec<(u64, u64, u64)> {
        let mut s: Vec<_> = std::fs::read_to_string(dir.join("sweep.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let n = |key: &str| v[key].as_u64().unwrap();
                (n("k"), n("seed"), n("steps"))
            })
            .collect();
        s.sort();
        s
    };
    let cpu = steps(&d.join("cpu"));
    let mut stops: Vec<u64> = cpu.iter().map(|s| s.2).collect();
    stops.sort();
    stops.dedup();
    assert!(
        stops.len() >= 2 && stops.iter().all(|&s| s < 400),
        "the models should stop early, at different steps: {cpu:?}"
    );
    for backend in cli_backends() {
        let gpu_dir = d.join(backend);
        std::fs::create_dir_all(&gpu_dir).unwrap();
        let kernels = [("MDN_GPU_KERNELS", "fused=on,pad=0")];
        let stderr = cli_sweep_of(&grid, &gpu_dir, "gpu", backend, &kernels);
        assert!(!stderr.contains("one after another"), "{stderr}");
        assert_eq!(steps(&gpu_dir.join("gpu")), cpu, "{backend}");
        same_models(&d.join("cpu"), &gpu_dir.join("gpu"), 4, backend);
    }
}

/// `sweep --tune`: the sweep's one job (K 3, two seeds: one trainer of two
/// models where the fused step is the default, else one model at a time)
/// is measured before it trains and added to the table of tuned kernels;
/// the models trained with what won still equal the CPU's; a second
/// `--tune` finds the job in the table and measures nothing.
#[test]
fn sweep_tune_measures_each_job_once_and_trains_with_the_winner() {
    const GRID: [&str; 8] = [
        "--toy", "inverse", "--k", "3", "--seeds", "2", "--hidden", "12,12",
    ];
    let Some(&backend) = cli_backends().first() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_sweep_of(&GRID, d, "cpu", backend, &[]);
    let table = d.join("tuned.json");
    let env = [("MDN_TUNED_KERNELS", table.to_str().unwrap())];
    let tuned: Vec<&str> = [&GRID[..], &["--tune", "--tune-seconds", "0.01"]].concat();
    let first = d.join("first");
    std::fs::create_dir_all(&first).unwrap();
    let stderr = cli_sweep_of(&tuned, &first, "gpu", backend, &env);
    assert_eq!(
        stderr.matches("tuning the kernels for").count(),
        1,
        "{stderr}"
    );
    let text = std::fs::read_to_string(&table).expect("--tune writes the table");
    let entries = serde_json::from_str::<serde_json::Value>(&text).unwrap()["entries"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(entries.len(), 1, "{text}");
    let job = &entries[0]["job"];
    assert_eq!(job["spec"]["head"]["k"], 3, "{text}");
    assert_eq!(job["spec"]["hidden"], serde_json::json!([12, 12]), "{text}");
    assert_eq!(job["batch"], 128, "{text}");
    same_models(&d.join("cpu"), &first.join("gpu"), 2, backend);

    let again = d.join("again");
    std::fs::create_dir_all(&again).unwrap();
    let stderr = cli_sweep_of(&tuned, &again, "gpu", backend, &env);
    assert!(!stderr.contains("tuning the kernels"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&table).unwrap(), text);
}

/// SIGINT while `sweep --tune` measures its first job: the search gives up
/// within a trial, keeps nothing (the table is not written), no model
/// starts, and the sweep exits 130 saying so.
#[test]
fn a_signal_while_tuning_stops_the_search_and_keeps_nothing() {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::process::CommandExt;
    let Some(&backend) = cli_backends().first() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("tuned.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mdn"))
        .env("MDN_TUNED_KERNELS", &table)
        .args([
            "sweep",
            "--toy",
            "inverse",
            "--k",
            "3",
            "--hidden",
            "12,12",
            "--steps",
            "200",
            "--device",
            "gpu",
            "--backend",
            backend,
            "--tune",
            "--tune-seconds",
            "1",
            "--out-dir",
            "sw",
        ])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("mdn starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no tuning: {seen}"
        );
        seen += &line;
        if line.contains("tuning the kernels for") {
            break;
        }
    }
    // SAFETY: kill(2) with the child's process group and a signal number.
    assert_eq!(unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) }, 0);
    stderr.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(seen.contains("stopped before any model trained"), "{seen}");
    assert!(!table.exists(), "a stopped search wrote the table: {seen}");
}
