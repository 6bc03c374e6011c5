//! The fused training step (`shaders/fused_step.wgsl`, `gpu::fused`)
//! against the per-stage step, its parity oracle, on awkward sizes: batch 1,
//! batches that are not a multiple of the fused step's chunk of rows,
//! hidden widths 1, 33 and 128, K 1 and 7, D 1 and 3, both heads the fused
//! step runs (the diagonal mixture and MSE). Per case: the first step's
//! row losses, batch loss and gradient (also against the CPU trainer), and
//! the parameters after 200 Adam steps. Each runs on lavapipe (Vulkan) and
//! llvmpipe (GL), with the adapter's own configuration and with few
//! workgroups (so each sums several chunks into its gradient slice).
//! Without an adapter each test skips loudly; under `MDN_REQUIRE_GPU=1` it
//! fails instead.
//!
//! Tolerances are those of the per-stage tests (tests/gpu_parity.rs,
//! tests/gpu_training.rs): the two paths compute the same formulas in the
//! same order per value, but the fused step sums a layer's weight gradient
//! over its chunks and then its workgroups' slices where the per-stage
//! path sums over its batch splits, so only rounding may differ.

mod common;
use common::*;

use std::sync::Arc;

use mdn::Dataset;
use mdn::cpu::CpuTrainer;
use mdn::gpu::config::DEFAULT_FUSED_SCRATCH;
use mdn::gpu::context::{BackendChoice, GpuContext};
use mdn::gpu::{GpuTrainer, KernelConfig, Kernels};
use mdn::model::init::init_params;
use mdn::model::{Head, ModelSpec};
use mdn::train::{LrSchedule, TrainConfig, Trainer};

/// Per-stage parity tolerance (tests/gpu_parity.rs), of the largest value.
const TOL: f32 = 1e-4;

/// Smooth, roughly z-scored data with `in_dim` inputs and `d` targets, a
/// few modes so a mixture has something to fit.
fn data(rows: usize, in_dim: usize, d: usize) -> Dataset {
    let mut inputs = Vec::with_capacity(rows * in_dim);
    let mut targets = Vec::with_capacity(rows * d);
    for i in 0..rows {
        let u = (i as f32 * 0.618_034).fract() * 2.0 - 1.0;
        for j in 0..in_dim {
            inputs.push(u * (1.0 + j as f32 * 0.3) - 0.1 * j as f32);
        }
        let mode = (i % 3) as f32 - 1.0;
        for j in 0..d {
            let noise = 0.1 * ((i * 7 + j * 13) as f32 * 12.9898).sin();
            targets.push(mode * 0.8 + (u * (2.0 + j as f32)).sin() * 0.5 + noise);
        }
    }
    let names = |p: &str, n: usize| (0..n).map(|j| format!("{p}{j}")).collect();
    Dataset::new(inputs, targets, names("x", in_dim), names("y", d)).unwrap()
}

struct Case {
    name: &'static str,
    spec: ModelSpec,
    rows: usize,
    batch: usize,
}

fn cases() -> Vec<Case> {
    let mix = |i, d, h: Vec<usize>, k| ModelSpec::mixture(i, d, h, k).unwrap();
    let mlp = |i, d, h: Vec<usize>| ModelSpec::mlp(i, d, h).unwrap();
    vec![
        Case {
            name: "mixture K1 D1 hidden 1, batch 1",
            spec: mix(1, 1, vec![1], 1),
            rows: 5,
            batch: 1,
        },
        Case {
            name: "mixture K7 D3 hidden 33,33, batch 100",
            spec: mix(2, 3, vec![33, 33], 7),
            rows: 250,
            batch: 100,
        },
        Case {
            name: "mixture K7 D1 hidden 128,128, batch 50",
            spec: mix(1, 1, vec![128, 128], 7),
            rows: 120,
            batch: 50,
        },
        Case {
            name: "mixture K1 D3 hidden 128, batch 67",
            spec: mix(3, 3, vec![128], 1),
            rows: 150,
            batch: 67,
        },
        Case {
            name: "mse D1 hidden 1, batch 1",
            spec: mlp(1, 1, vec![1]),
            rows: 3,
            batch: 1,
        },
        Case {
            name: "mse D3 hidden 33,128, batch 61",
            spec: mlp(2, 3, vec![33, 128]),
            rows: 200,
            batch: 61,
        },
    ]
}

/// Per backend: the per-stage kernels and eight fused configurations: the
/// adapter's own with the fused step on (8×8 register tiles on software
/// adapters, where most of a small network's tile is edge); the real-GPU
/// defaults (4×4), with arrays and with named `vec4` registers
/// (`fused_vec4`); three workgroups, so each takes several chunks, with
/// 3×3 tiles, so most tiles have clamped edges; the real-GPU defaults with
/// the array sums unrolled (`fused_unroll`); and one output per
/// invocation (1×1) in workgroups of 256, so a layer's weight tiles,
/// biases and input tiles often run in the same round. The three-workgroup
/// and the 1×1 configurations sum each gradient in Adam over 4 and 8 lanes
/// (the first with 3 slices, so one lane has none). Two more stage the weights in workgroup memory
/// (`fused_stage`), the first of them in twice the memory.
struct Device {
    backend: BackendChoice,
    ctx: Arc<GpuContext>,
    per_stage: Arc<Kernels>,
    fused: Vec<Arc<Kernels>>,
}

fn devices() -> Vec<Device> {
    BACKENDS
        .into_iter()
        .filter_map(|backend| {
            let ctx = context(backend)?;
            let own = KernelConfig::for_adapter(&ctx.info);
            let build = |cfg| Arc::new(Kernels::with_config(&ctx, cfg).unwrap());
            let fused = KernelConfig { fused: true, ..own };
            Some(Device {
                backend,
                per_stage: build(KernelConfig {
                    fused: false,
                    ..own
                }),
                fused: vec![
                    build(fused),
                    // The real-GPU defaults, where the fused step is on,
                    // and the same with its tiles in named registers.
                    build(KernelConfig::hardware()),
                    build(KernelConfig {
                        fused_vec4: true,
                        ..KernelConfig::hardware()
                    }),
                    build(KernelConfig {
                        fused_groups: 3,
                        fused_wg: 32,
                        fused_tile: 3,
                        fused_rows: 5,
                        adam_lanes: 4,
                        ..fused
                    }),
                    // The real-GPU defaults with the array sums unrolled
                    // four terms a pass (`fused_unroll`): sums of 1, 3, 4,
                    // 5 and 33 terms meet both loops.
                    build(KernelConfig {
                        fused_unroll: true,
                        ..KernelConfig::hardware()
                    }),
                    // Twice the workgroup memory where the device has it
                    // (lavapipe and llvmpipe: 32 KiB), so chunks hold
                    // twice the rows, with the weights staged there, read
                    // from arrays and from named registers.
                    build(KernelConfig {
                        fused_scratch: (ctx.device.limits().max_compute_workgroup_storage_size / 4)
                            .min(2 * DEFAULT_FUSED_SCRATCH),
                        fused_stage: true,
                        ..fused
                    }),
                    build(KernelConfig {
                        fused_stage: true,
                        fused_vec4: true,
                        fused_groups: 3,
                        ..KernelConfig::hardware()
                    }),
                    build(KernelConfig {
                        fused_tile: 1,
                        fused_wg: 256,
                        adam_lanes: 8,
                        ..fused
                    }),
                ],
                ctx,
            })
        })
        .collect()
}

/// Learning rate of every run. At 3e-3 the 128,128 network memorises its
/// 120 rows fast enough to be chaotic after ~100 steps: f32 rounding then
/// grows to ~2e-3 of the parameters by step 200 between any two
/// implementations (measured: per-stage vs CPU 1.9e-3, fused vs per-stage
/// 2.1e-3), while at 1e-3 the fused and per-stage paths stay within 5e-7.
const LR: f64 = 1e-3;

fn train_config(case: &Case, steps: usize) -> TrainConfig {
    TrainConfig {
        steps,
        batch: case.batch,
        lr: LR,
        schedule: LrSchedule::Cosine,
        seed: 7,
    }
}

fn trainer(dev: &Device, kernels: &Arc<Kernels>, case: &Case, steps: usize) -> GpuTrainer {
    let config = train_config(case, steps);
    let d = data(case.rows, case.spec.in_dim, case.spec.out_dim);
    GpuTrainer::with_kernels(
        Arc::clone(&dev.ctx),
        Arc::clone(kernels),
        &case.spec,
        &d,
        init_params(&case.spec, 3),
        &config,
    )
    .unwrap()
}

/// The first step: each row's loss, the batch loss and the gradient of
/// the fused step equal the per-stage step's (and the CPU trainer's
/// gradient); the gradient is the same bits when computed again.
#[test]
fn fused_first_step_matches_the_per_stage_step() {
    for dev in devices() {
        for case in cases() {
            let mut reference = trainer(&dev, &dev.per_stage, &case, 10);
            assert!(!reference.is_fused());
            let g_ref = reference.compute_gradients().unwrap();
            let loss_ref = reference.row_losses().unwrap();
            let acc_ref = reference.take_loss().unwrap();
            let mut cpu = CpuTrainer::new(
                &case.spec,
                &data(case.rows, case.spec.in_dim, case.spec.out_dim),
                init_params(&case.spec, 3),
                &train_config(&case, 10),
            )
            .unwrap();
            cpu.compute_gradients();
            for kernels in &dev.fused {
                let what = format!("{} {} [{}]", dev.backend, case.name, kernels.config);
                let mut fused = trainer(&dev, kernels, &case, 10);
                if kernels.config.fused_stage && !fused.is_fused() {
                    // The 128-wide network's weights alone outgrow the
                    // workgroup memory: the trainer says so and runs the
                    // per-stage kernels.
                    let why = fused.why_not_fused().unwrap_or_default();
                    assert!(why.contains("staged weights"), "{what}: {why}");
                    continue;
                }
                assert!(fused.is_fused(), "{what}: {:?}", fused.why_not_fused());
                assert_eq!(fused.dispatches_per_step(), 2, "{what}");
                let g = fused.compute_gradients().unwrap();
                let losses = fused.row_losses().unwrap();
                let acc = fused.take_loss().unwrap();
                let e_loss = relative_error(&losses, &loss_ref);
                let e_grad = relative_error(&g, &g_ref);
                let e_cpu = relative_error(&g, &cpu.grads);
                eprintln!(
                    "{what}: row losses {e_loss:.2e}, gradient {e_grad:.2e} (cpu {e_cpu:.2e})"
                );
                assert!(e_loss <= TOL, "{what}: row losses differ by {e_loss:.3e}");
                assert!(e_grad <= TOL, "{what}: gradients differ by {e_grad:.3e}");
                assert!(e_cpu <= TOL, "{what}: gradient vs cpu {e_cpu:.3e}");
                assert_eq!((acc.count, acc.nonfinite), (1, 0), "{what}");
                assert!(
                    (acc.last - acc_ref.last).abs() <= 1e-5 * acc_ref.last.abs().max(1.0),
                    "{what}: batch loss {} vs {}",
                    acc.last,
                    acc_ref.last
                );
                // Deterministic: the same step gives the same bits.
                assert_eq!(fused.compute_gradients().unwrap(), g, "{what}");
                assert_eq!(fused.step(), 0);
            }
        }
    }
}

/// 200 Adam steps, in uneven chunks across submissions and epochs: the
/// fused path's parameters and mean loss stay within the per-stage
/// tolerance of tests/gpu_training.rs (1e-4 of the largest parameter), and
/// a second fused run gives the same bits.
#[test]
fn fused_training_matches_the_per_stage_path_over_200_steps() {
    for dev in devices() {
        for case in cases() {
            let mut reference = trainer(&dev, &dev.per_stage, &case, 200);
            for n in [1, 37, 162] {
                reference.run(n).unwrap();
            }
            let p_ref = reference.params().unwrap();
            let l_ref = reference.take_loss().unwrap();
            let kernels = &dev.fused[dev.fused.len() - 1];
            let what = format!("{} {} [{}]", dev.backend, case.name, kernels.config);
            let mut runs = Vec::new();
            for _ in 0..2 {
                let mut fused = trainer(&dev, kernels, &case, 200);
                for n in [1, 37, 162] {
                    fused.run(n).unwrap();
                }
                assert_eq!(fused.step(), 200);
                runs.push((fused.params().unwrap(), fused.take_loss().unwrap()));
            }
            let (p, l) = &runs[0];
            assert_eq!(&runs[1].0, p, "{what}: two fused runs differ");
            assert_eq!((l.count, l.nonfinite), (l_ref.count, l_ref.nonfinite));
            assert!(
                (l.mean() - l_ref.mean()).abs() <= TOL * l_ref.mean().abs().max(1.0),
                "{what}: mean loss {} vs {}",
                l.mean(),
                l_ref.mean()
            );
            let err = relative_error(p, &p_ref);
            eprintln!("{what}: parameters differ by {err:.2e} of their scale after 200 steps");
            assert!(err <= TOL, "{what}: {err:.3e}");
        }
    }
}

/// The full-covariance head and hidden layers wider than the fused limit
/// keep the per-stage path, even with the fused step on.
#[test]
fn networks_the_fused_step_cannot_take_fall_back() {
    for dev in devices() {
        let kernels = &dev.fused[0];
        let full = ModelSpec::new(1, 2, vec![8], Head::full_mixture(2)).unwrap();
        for spec in [full, ModelSpec::mixture(1, 1, vec![129], 2).unwrap()] {
            let case = Case {
                name: "fallback",
                spec,
                rows: 40,
                batch: 16,
            };
            let mut t = trainer(&dev, kernels, &case, 3);
            assert!(!t.is_fused(), "{}: {:?}", dev.backend, case.spec.hidden);
            assert!(t.why_not_fused().is_some());
            assert!(t.dispatches_per_step() > 2);
            t.run(3).unwrap();
            assert!(t.take_loss().unwrap().mean().is_finite());
        }
    }
}
