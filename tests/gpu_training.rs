//! The GPU trainer against the CPU reference over whole training runs:
//! hundreds of Adam steps from the same initialisation and minibatch order,
//! divergence detection through `run_training`, loss bookkeeping and
//! checkpoints, the `--device` wiring in `fit`, and training quality with
//! the CLI defaults. Every test runs on lavapipe (Vulkan) and, where it is
//! about the kernels, on llvmpipe (GL) too; without an adapter they skip
//! loudly, and fail under `MDN_REQUIRE_GPU=1`.

mod common;
use common::*;

use std::sync::Arc;

use mdn::Dataset;
use mdn::DeviceChoice;
use mdn::cpu::CpuTrainer;
use mdn::data::toy::{ToyProblem, branch_counts, toy_dataset};
use mdn::defaults;
use mdn::fit::{fit, prepare};
use mdn::gpu::GpuTrainer;
use mdn::gpu::buffers::storage_init;
use mdn::gpu::context::{BackendChoice, GpuContext, GpuOptions, test_context};
use mdn::gpu::sampler::GpuSampler;
use mdn::gpu::{KernelConfig, Kernels};
use mdn::model::init::init_params;
use mdn::model::{Head, ModelSpec};
use mdn::train::{LrSchedule, TrainConfig, Trainer, run_training};

/// z-scored toy data, as `fit` hands it to a trainer.
fn toy(rows: usize, seed: u64) -> Dataset {
    prepare(toy_dataset(ToyProblem::Inverse, rows, seed))
        .unwrap()
        .normalized
}

/// A 2-D target with a few modes, for the K > 1, D > 1 head.
fn two_d(rows: usize) -> Dataset {
    let mut inputs = Vec::with_capacity(rows);
    let mut targets = Vec::with_capacity(2 * rows);
    for i in 0..rows {
        let u = (i as f32 * 0.618_034).fract();
        let th = (i % 3) as f32 * 2.1 + u;
        inputs.push(u);
        targets.push((1.0 + u) * th.cos() + 0.05 * (i as f32 * 12.9898).sin());
        targets.push((1.0 + u) * th.sin() + 0.05 * (i as f32 * 78.233).sin());
    }
    let d = Dataset::new(
        inputs,
        targets,
        vec!["u".into()],
        vec!["a".into(), "b".into()],
    )
    .unwrap();
    prepare(d).unwrap().normalized
}

/// ≥ 200 Adam steps on GPU and CPU from the same parameters and the same
/// minibatches, run in uneven chunks so several submissions, epoch
/// boundaries and the permutation ring are crossed.
///
/// Tolerance: 1e-4 of the largest parameter. Each step's gradient differs
/// by f32 reordering (~1e-6 relative, see tests/gpu_parity.rs); Adam turns
/// a gradient into a step of at most ~lr whatever its size, and these
/// differences accumulate roughly linearly over a few hundred steps of a
/// stable run, so ~1e-5 of the parameter scale is expected; 1e-4 leaves
/// headroom for chaotic amplification without letting a wrong step (an
/// error of order lr = 3e-3 per step on some parameter) through.
#[test]
fn gpu_and_cpu_agree_after_hundreds_of_adam_steps() {
    let cases: Vec<(&str, ModelSpec, Dataset, usize)> = vec![
        (
            "mixture K5 D1 32,32",
            ModelSpec::mixture(1, 1, vec![32, 32], 5).unwrap(),
            toy(2000, 3),
            100,
        ),
        (
            "mixture K3 D2 33",
            ModelSpec::mixture(1, 2, vec![33], 3).unwrap(),
            two_d(700),
            67,
        ),
        (
            "full-covariance mixture K3 D2 33",
            ModelSpec::new(1, 2, vec![33], Head::full_mixture(3)).unwrap(),
            two_d(700),
            67,
        ),
        (
            "mlp 16,16",
            ModelSpec::mlp(1, 1, vec![16, 16]).unwrap(),
            toy(1000, 4),
            50,
        ),
    ];
    for backend in BACKENDS {
        let Some(ctx) = context(backend) else {
            continue;
        };
        let kernels = Arc::new(Kernels::new(&ctx).unwrap());
        for (name, spec, data, batch) in &cases {
            let config = TrainConfig {
                steps: 240,
                batch: *batch,
                lr: 3e-3,
                schedule: LrSchedule::Cosine,
                seed: 11,
            };
            let p0 = init_params(spec, 5);
            let mut gpu = GpuTrainer::with_kernels(
                Arc::clone(&ctx),
                Arc::clone(&kernels),
                spec,
                data,
                p0.clone(),
                &config,
            )
            .unwrap();
            let mut cpu = CpuTrainer::new(spec, data, p0, &config).unwrap();
            for n in [1, 37, 202] {
                gpu.run(n).unwrap();
                cpu.run(n).unwrap();
            }
            assert_eq!(gpu.step(), 240);
            let (gl, cl) = (gpu.take_loss().unwrap(), cpu.take_loss().unwrap());
            assert_eq!(
                (gl.count, gl.nonfinite),
                (cl.count, cl.nonfinite),
                "{backend} {name}"
            );
            assert!(
                (gl.mean() - cl.mean()).abs() <= 1e-4 * cl.mean().abs().max(1.0),
                "{backend} {name}: {gl:?} vs {cl:?}"
            );
            let err = relative_error(&gpu.params().unwrap(), &cpu.params().unwrap());
            eprintln!(
                "{backend} {name}: parameters differ by {err:.2e} of their scale after 240 steps"
            );
            assert!(err <= 1e-4, "{backend} {name}: {err:.3e}");
        }
    }
}

/// The whole forward/backward pipeline at once, including a batch split for
/// the weight gradients (`splits` > 1) and its reduction, against
/// `CpuTrainer::compute_gradients`. Same tolerance as the per-stage tests.
#[test]
fn first_step_gradients_match_cpu_with_split_batches() {
    for backend in BACKENDS {
        let Some(ctx) = context(backend) else {
            continue;
        };
        let spec = ModelSpec::mixture(1, 1, vec![256, 33], 7).unwrap();
        let data = toy(3000, 9);
        let config = TrainConfig {
            steps: 10,
            batch: 1500,
            lr: 1e-3,
            schedule: LrSchedule::Constant,
            seed: 2,
        };
        let p0 = init_params(&spec, 1);
        let mut gpu = GpuTrainer::new(Arc::clone(&ctx), &spec, &data, p0.clone(), &config).unwrap();
        assert!(
            gpu.splits().iter().any(|&s| s > 1),
            "{backend}: this batch should split some layer, got {:?}",
            gpu.splits()
        );
        let mut cpu = CpuTrainer::new(&spec, &data, p0, &config).unwrap();
        let g = gpu.compute_gradients().unwrap();
        cpu.compute_gradients();
        let err = relative_error(&g, &cpu.grads);
        eprintln!(
            "{backend}: first-step gradient differs by {err:.2e} of its scale (splits {:?})",
            gpu.splits()
        );
        assert!(err <= 1e-4, "{backend}: {err:.3e}");
        // Computing the gradient neither updates nor advances.
        assert_eq!(gpu.step(), 0);
        assert_eq!(gpu.params().unwrap(), init_params(&spec, 1));
    }
}

/// A run's state read from one GPU trainer (parameters, Adam's moments,
/// the step) and put into a fresh one continues as the first would have:
/// what `train --resume` does on the GPU. The GPU is deterministic run to
/// run, so the two runs agree to the last bit; the CPU trainer, resumed
/// from the GPU's state, agrees within the usual parity tolerance.
#[test]
fn a_resumed_gpu_trainer_continues_the_run() {
    for backend in BACKENDS {
        let Some(ctx) = context(backend) else {
            continue;
        };
        let spec = ModelSpec::mixture(1, 1, vec![16, 16], 3).unwrap();
        let data = toy(600, 2);
        let config = TrainConfig {
            steps: 200,
            batch: 50,
            lr: 3e-3,
            schedule: LrSchedule::Cosine,
            seed: 4,
        };
        let p0 = init_params(&spec, 3);
        let kernels = Arc::new(Kernels::new(&ctx).unwrap());
        let trainer = || {
            GpuTrainer::with_kernels(
                Arc::clone(&ctx),
                Arc::clone(&kernels),
                &spec,
                &data,
                p0.clone(),
                &config,
            )
            .unwrap()
        };
        let mut whole = trainer();
        whole.run(200).unwrap();
        let mut first = trainer();
        first.run(77).unwrap();
        let (params, (m, v)) = (first.params().unwrap(), first.optimizer_state().unwrap());
        assert!(m.iter().any(|&x| x != 0.0) && v.iter().all(|&x| x >= 0.0));
        let mut second = trainer();
        second.restore_state(&params, &m, &v, 77).unwrap();
        assert_eq!(second.step(), 77);
        second.run(123).unwrap();
        assert_eq!(
            second.params().unwrap(),
            whole.params().unwrap(),
            "{backend}: resumed GPU run differs"
        );
        let mut cpu = CpuTrainer::new(&spec, &data, p0.clone(), &config).unwrap();
        cpu.restore_state(&params, &m, &v, 77).unwrap();
        cpu.run(123).unwrap();
        let err = relative_error(&cpu.params().unwrap(), &whole.params().unwrap());
        assert!(
            err <= 1e-4,
            "{backend}: CPU resumed from GPU state: {err:.3e}"
        );
        // A state of the wrong length is refused, not half-applied.
        assert!(second.restore_state(&params[1..], &m, &v, 5).is_err());
    }
}

/// The loss state is read and cleared by `take_loss`; checkpoints are
/// copies on the GPU that `restore_checkpoint` puts back.
#[test]
fn loss_state_and_checkpoints() {
    let Some(ctx) = context(BackendChoice::Vulkan) else {
        return;
    };
    let spec = ModelSpec::mixture(1, 1, vec![8], 2).unwrap();
    let data = toy(256, 1);
    let config = TrainConfig {
        steps: 100,
        batch: 32,
        lr: 1e-2,
        schedule: LrSchedule::Constant,
        seed: 0,
    };
    let mut gpu = GpuTrainer::new(ctx, &spec, &data, init_params(&spec, 0), &config).unwrap();
    assert!(
        gpu.device_name().starts_with("gpu: "),
        "{}",
        gpu.device_name()
    );
    assert!(
        gpu.device_name().ends_with("(vulkan)"),
        "{}",
        gpu.device_name()
    );
    gpu.run(5).unwrap();
    let acc = gpu.take_loss().unwrap();
    assert_eq!((acc.count, acc.nonfinite), (5, 0));
    assert!(acc.mean().is_finite() && acc.last.is_finite());
    let cleared = gpu.take_loss().unwrap();
    assert_eq!((cleared.count, cleared.nonfinite, cleared.sum), (0, 0, 0.0));

    gpu.checkpoint().unwrap();
    let saved = gpu.params().unwrap();
    gpu.run(3).unwrap();
    assert_ne!(gpu.params().unwrap(), saved, "training moved nothing");
    gpu.restore_checkpoint().unwrap();
    assert_eq!(gpu.params().unwrap(), saved);
    assert_eq!(gpu.step(), 8);
}

/// A huge learning rate blows the loss up within a few steps; the sticky
/// non-finite counter makes `run_training` see it although the loss is read
/// only once per chunk, and the last good parameters come back.
#[test]
fn divergence_is_detected_by_run_training() {
    for backend in BACKENDS {
        let Some(ctx) = context(backend) else {
            continue;
        };
        let spec = ModelSpec::mixture(1, 1, vec![16, 16], 3).unwrap();
        let data = toy(512, 2);
        let config = TrainConfig {
            steps: 400,
            batch: 64,
            lr: 1e6,
            schedule: LrSchedule::Constant,
            seed: 0,
        };
        let mut gpu = GpuTrainer::new(ctx, &spec, &data, init_params(&spec, 0), &config).unwrap();
        let report = run_training(&mut gpu, config.steps, |_, _| {}).unwrap();
        let d = report
            .diverged
            .unwrap_or_else(|| panic!("{backend}: lr 1e6 did not diverge: {report:?}"));
        eprintln!(
            "{backend}: diverged at step {} (loss {}), kept step {}",
            d.step, d.loss, d.good_step
        );
        assert!(d.good_step < d.step && d.step <= config.steps);
        assert_eq!(report.steps, d.good_step);
        let params = gpu.params().unwrap();
        assert!(
            params.iter().all(|v| v.is_finite()),
            "restored parameters are not finite"
        );
    }
}

/// `fit` with `--device gpu` builds the GPU trainer; an unknown adapter is
/// an error for `gpu` (not a panic) and a noted fallback for `auto`.
#[test]
fn fit_wires_the_device_choice() {
    let Some(ctx) = test_context() else { return };
    drop(ctx);
    let data = toy_dataset(ToyProblem::Inverse, 300, 1);
    let spec = ModelSpec::mixture(1, 1, vec![8], 2).unwrap();
    let config = TrainConfig {
        steps: 20,
        batch: 50,
        lr: 1e-2,
        schedule: LrSchedule::Constant,
        seed: 0,
    };
    let quiet = GpuOptions::default();
    let r = fit(
        &data,
        &spec,
        &config,
        DeviceChoice::Gpu,
        &quiet,
        &mut |_| {},
        |_, _| {},
    )
    .unwrap();
    assert!(r.device_name.starts_with("gpu: "), "{}", r.device_name);
    assert_eq!(r.report.steps, 20);

    let nowhere = GpuOptions {
        backend: None,
        adapter: Some("no such adapter anywhere".into()),
        ..Default::default()
    };
    let err = fit(
        &data,
        &spec,
        &config,
        DeviceChoice::Gpu,
        &nowhere,
        &mut |_| {},
        |_, _| {},
    )
    .err()
    .expect("an unmatched adapter must be an error for --device gpu");
    assert!(
        err.to_string().contains("no such adapter anywhere"),
        "{err}"
    );

    let mut notes = Vec::new();
    let r = fit(
        &data,
        &spec,
        &config,
        DeviceChoice::Auto,
        &nowhere,
        &mut |n| notes.push(n.to_string()),
        |_, _| {},
    )
    .unwrap();
    assert!(r.device_name.starts_with("cpu"), "{}", r.device_name);
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("no usable GPU adapter (")
                && n.ends_with("); training on the CPU")),
        "{notes:?}"
    );
}

fn defaults_config(steps: usize) -> (Dataset, ModelSpec, TrainConfig) {
    let data = toy_dataset(ToyProblem::Inverse, defaults::TOY_TRAIN_ROWS, 0);
    let hidden = ModelSpec::parse_hidden(defaults::HIDDEN).unwrap();
    let spec = ModelSpec::mixture(1, 1, hidden, defaults::K).unwrap();
    let config = TrainConfig {
        steps,
        batch: defaults::BATCH,
        lr: defaults::LR,
        schedule: LrSchedule::Cosine,
        seed: 0,
    };
    (data, spec, config)
}

/// Samples drawn on the GPU from a trained model at y = 0.5 land on all
/// three branches of the inverse and rarely anywhere else; returns the
/// per-branch counts.
fn gpu_samples_on_branches(ctx: Arc<GpuContext>, model: &mdn::Model) -> Vec<usize> {
    let kernels = Arc::new(Kernels::new(&ctx).unwrap());
    let params = storage_init(&ctx, "model parameters", &model.params).unwrap();
    let n = 3000;
    let sampler = GpuSampler::new(Arc::clone(&ctx), kernels, &model.spec, &params, 1, n).unwrap();
    sampler.set_inputs(&model.input_norm.apply(&[0.5])).unwrap();
    sampler.set_options(7, 1.0).unwrap();
    sampler.run().unwrap();
    let samples = model.target_norm.invert(&sampler.read_samples().unwrap());
    let (hits, off) = branch_counts(&samples, 0.5);
    eprintln!("GPU samples per branch {hits:?}, off the data {off}/{n}");
    assert!(off < n / 10, "{off} of {n} samples off the branches");
    hits
}

/// `mdn train --device gpu` with the CLI defaults, shortened: the full
/// 30 000 default steps take ~15 minutes on lavapipe (about 30 steps/s for
/// this model there), far too long for a test, so this trains 500 steps
/// (with the cosine schedule compressed to them) and states the bound the
/// CPU reference reaches in the same run: held-out NLL ≈ −1.09, asserted
/// ≤ −1.05, and the GPU within 0.01 nats of the CPU run with identical
/// settings. The full-length claim (≤ −1.15) is the ignored test below,
/// for machines with a real GPU.
#[test]
fn gpu_training_with_cli_defaults_learns_the_inverse_problem() {
    let Some(ctx) = test_context() else { return };
    let ctx = Arc::new(ctx);
    let (data, spec, config) = defaults_config(500);
    let test = toy_dataset(ToyProblem::Inverse, 16_384, 12345);
    let run = |device| {
        fit(
            &data,
            &spec,
            &config,
            device,
            &GpuOptions::default(),
            &mut |_| {},
            |_, _| {},
        )
        .unwrap()
    };
    let gpu = run(DeviceChoice::Gpu);
    assert!(gpu.device_name.starts_with("gpu: "));
    assert!(gpu.report.diverged.is_none());
    let cpu = run(DeviceChoice::Cpu);
    let gpu_nll = gpu.model.evaluate(&test).unwrap().value;
    let cpu_nll = cpu.model.evaluate(&test).unwrap().value;
    eprintln!(
        "held-out NLL after 500 steps: GPU {gpu_nll:.4}, CPU {cpu_nll:.4} ({})",
        gpu.device_name
    );
    assert!(gpu_nll <= -1.05, "GPU held-out NLL {gpu_nll}");
    assert!(
        (gpu_nll - cpu_nll).abs() <= 0.01,
        "GPU {gpu_nll} vs CPU {cpu_nll}"
    );
    let hits = gpu_samples_on_branches(ctx, &gpu.model);
    assert!(hits.iter().all(|&h| h > 300), "{hits:?}");
}

/// The README's claim on the GPU: the CLI defaults, full length, reach a
/// held-out NLL ≤ −1.15. Ignored because it takes ~15 minutes on lavapipe;
/// run with `--ignored` on a machine with a real GPU.
#[test]
#[ignore]
fn gpu_training_with_full_cli_defaults_reaches_the_stated_nll() {
    let Some(ctx) = test_context() else { return };
    let (data, spec, config) = defaults_config(defaults::STEPS);
    let r = fit(
        &data,
        &spec,
        &config,
        DeviceChoice::Gpu,
        &GpuOptions::default(),
        &mut |_| {},
        |_, _| {},
    )
    .unwrap();
    let nll = r
        .model
        .evaluate(&toy_dataset(ToyProblem::Inverse, 16_384, 12345))
        .unwrap()
        .value;
    eprintln!(
        "held-out NLL with the defaults on {}: {nll:.4}",
        r.device_name
    );
    assert!(nll <= -1.15, "held-out NLL {nll}");
    let hits = gpu_samples_on_branches(Arc::new(ctx), &r.model);
    assert!(hits.iter().all(|&h| h > 300), "{hits:?}");
}

/// Steps per second of the GPU and CPU trainers on the `mdn bench` sizes,
/// printed for the record (no assertion: speed depends on the machine).
/// `MDN_TIMING=small,medium,large` picks the sizes (default: all three; the
/// large one takes minutes per GPU step on lavapipe). Run with
/// `cargo test --release --test gpu_training -- --ignored --nocapture timing`.
#[test]
#[ignore]
fn timing_against_the_cpu_trainer() {
    use std::time::Instant;
    let wanted = std::env::var("MDN_TIMING").unwrap_or_else(|_| "small,medium,large".into());
    // (name, batch, hidden, K, GPU steps timed, CPU steps timed)
    type Size = (&'static str, usize, &'static [usize], usize, usize, usize);
    let configs: [Size; 3] = [
        ("small", 1024, &[32, 32], 5, 40, 400),
        ("medium", 4096, &[64, 64], 5, 8, 80),
        ("large", 65_536, &[256, 256], 8, 1, 3),
    ];
    let time = |t: &mut dyn Trainer, n: usize| -> f64 {
        // One step first: pipelines and buffers settle, the first epoch
        // permutation is uploaded.
        t.run(1).unwrap();
        t.take_loss().unwrap();
        let start = Instant::now();
        t.run(n).unwrap();
        // The readback waits for the GPU, so the time covers the work.
        t.take_loss().unwrap();
        n as f64 / start.elapsed().as_secs_f64()
    };
    for (name, batch, hidden, k, gpu_steps, cpu_steps) in configs {
        if !wanted.split(',').any(|w| w.trim() == name) {
            continue;
        }
        let data = toy(batch.max(16_384), 1);
        let spec = ModelSpec::mixture(1, 1, hidden.to_vec(), k).unwrap();
        let config = TrainConfig {
            steps: 1_000_000,
            batch,
            lr: 1e-3,
            schedule: LrSchedule::Constant,
            seed: 0,
        };
        let p0 = init_params(&spec, 0);
        let mut cpu = CpuTrainer::new(&spec, &data, p0.clone(), &config).unwrap();
        let cpu_rate = time(&mut cpu, cpu_steps);
        eprintln!(
            "{name:6} batch {batch:6} hidden {hidden:?} K {k}: {:>8.2} steps/s  {}",
            cpu_rate,
            cpu.device_name()
        );
        let backends: &[BackendChoice] = if name == "large" {
            &BACKENDS[..1]
        } else {
            &BACKENDS
        };
        for &backend in backends {
            let Some(ctx) = context(backend) else {
                continue;
            };
            let mut gpu = GpuTrainer::new(ctx, &spec, &data, p0.clone(), &config).unwrap();
            let gpu_rate = time(&mut gpu, gpu_steps);
            eprintln!(
                "{name:6} batch {batch:6} hidden {hidden:?} K {k}: {:>8.2} steps/s  {} ({} dispatches/step, splits {:?})",
                gpu_rate,
                gpu.device_name(),
                gpu.dispatches_per_step(),
                gpu.splits()
            );
        }
    }
}

/// `GpuTrainer::profile` (`mdn bench --profile`) times real steps, a pass
/// per dispatch and then one pass for all: it names the plan's dispatches
/// in order, its times are finite, and the steps are the very steps `run`
/// takes (the same parameters to the last bit), on both step plans.
#[test]
fn a_step_profile_times_the_steps_run_would_take() {
    for backend in BACKENDS {
        let Some(ctx) = context(backend) else {
            continue;
        };
        let spec = ModelSpec::mixture(1, 1, vec![8, 8], 3).unwrap();
        let data = toy(300, 6);
        let config = TrainConfig {
            steps: 40,
            batch: 64,
            lr: 3e-3,
            schedule: LrSchedule::Constant,
            seed: 2,
        };
        let p0 = init_params(&spec, 5);
        for fused in [true, false] {
            let cfg = KernelConfig {
                fused,
                ..KernelConfig::for_adapter(&ctx.info)
            };
            let kernels = Arc::new(Kernels::with_config(&ctx, cfg).unwrap());
            let trainer = || {
                GpuTrainer::with_kernels(
                    Arc::clone(&ctx),
                    Arc::clone(&kernels),
                    &spec,
                    &data,
                    p0.clone(),
                    &config,
                )
                .unwrap()
            };
            let mut profiled = trainer();
            profiled.run(3).unwrap();
            let p = profiled.profile(6).unwrap();
            assert_eq!(p.steps, 6, "{backend}");
            // Six steps a pass per dispatch, six in one pass.
            assert_eq!(profiled.step(), 15, "{backend}");
            let names: Vec<&str> = p.dispatches.iter().map(|d| d.kernel.as_str()).collect();
            let expected: &[&str] = if fused {
                &["fused_step", "adam"]
            } else {
                &[
                    "gather",
                    "dense_forward[0]",
                    "dense_forward[1]",
                    "dense_forward[2]",
                    "head_loss",
                    "weight_gradient[2]",
                    "input_gradient[2]",
                    "weight_gradient[1]",
                    "input_gradient[1]",
                    "weight_gradient[0]",
                    "adam",
                ]
            };
            assert_eq!(names, expected, "{backend}, fused {fused}");
            assert_eq!(names.len(), profiled.dispatches_per_step(), "{backend}");
            for d in &p.dispatches {
                assert!(d.micros.is_finite() && d.micros >= 0.0, "{backend}: {d:?}");
                assert!(d.groups.iter().all(|&g| g >= 1), "{backend}: {d:?}");
                // 2 FLOPs per multiply-add of the layer's product: batch
                // 64, layers 1→8, 8→8, 8→(3 + 2·3).
                let layer = d.kernel.split(['[', ']']).nth(1);
                let expected = layer.map(|l| match l {
                    "0" => 2.0 * 64.0 * 8.0,
                    "1" => 2.0 * 64.0 * 64.0,
                    _ => 2.0 * 64.0 * 8.0 * 9.0,
                });
                assert_eq!(d.flops, expected, "{backend}: {d:?}");
            }
            assert!(p.kernel_micros() > 0.0, "{backend}: {p:?}");
            assert!(
                p.step_micros.is_finite() && p.step_micros > 0.0,
                "{backend}: {p:?}"
            );
            let mut plain = trainer();
            plain.run(15).unwrap();
            assert_eq!(
                profiled.params().unwrap(),
                plain.params().unwrap(),
                "{backend}, fused {fused}: profiled steps differ from run's"
            );
            let loss = profiled.take_loss().unwrap();
            assert_eq!(loss.count, 15, "{backend}: every profiled step's loss");
        }
    }
}
