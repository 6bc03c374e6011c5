//! llvmpipe and lavapipe stop every loop of a shader once a SIMD vector of
//! invocations has run 65 535 loop passes in all, and carry on with sums
//! over fewer terms (`gpu::loop_budget`). Three kernels ran past it before
//! their plans counted it, and each failed its test here:
//! - the fused step with a whole 4 096-row minibatch in one workgroup: the
//!   row losses of every row past about 2 000 came out 0;
//! - the per-stage weight gradient over batch splits of 65 536 rows: the
//!   gradient 5 % off the CPU trainer's;
//! - the loss reduction over a minibatch of more than 16.7 M rows (now
//!   refused).
//!
//! The first two run the first step on lavapipe (Vulkan) and llvmpipe (GL)
//! against the CPU trainer. On a real GPU there is no budget and the same plans
//! must agree with the CPU as well. Without an adapter each test skips
//! loudly; under `MDN_REQUIRE_GPU=1` it fails instead.

mod common;
use common::*;

use std::sync::Arc;

use mdn::Dataset;
use mdn::cpu::CpuTrainer;
use mdn::gpu::context::{BackendChoice, GpuContext};
use mdn::gpu::loop_budget::loop_budget;
use mdn::gpu::{GpuTrainer, KernelConfig, Kernels};
use mdn::model::ModelSpec;
use mdn::model::init::init_params;
use mdn::train::{LrSchedule, TrainConfig};

/// Per-stage parity tolerance (tests/gpu_parity.rs), of the largest value.
const TOL: f32 = 1e-4;

/// A few modes along a smooth curve, `rows` rows of one input and target.
fn data(rows: usize) -> Dataset {
    let mut inputs = Vec::with_capacity(rows);
    let mut targets = Vec::with_capacity(rows);
    for i in 0..rows {
        let u = (i as f32 * 0.618_034).fract() * 2.0 - 1.0;
        inputs.push(u);
        let mode = (i % 3) as f32 - 1.0;
        targets.push(mode * 0.8 + (2.0 * u).sin() * 0.5);
    }
    Dataset::new(inputs, targets, vec!["x".into()], vec!["y".into()]).unwrap()
}

/// One step with the whole data as its minibatch.
fn one_step(rows: usize) -> TrainConfig {
    TrainConfig {
        steps: 1,
        batch: rows,
        lr: 1e-3,
        schedule: LrSchedule::Constant,
        seed: 7,
    }
}

/// A GPU trainer of `spec` on `kernels`, from the parameters the CPU
/// trainer gets too.
fn trainer(
    ctx: &Arc<GpuContext>,
    kernels: KernelConfig,
    spec: &ModelSpec,
    d: &Dataset,
    config: &TrainConfig,
) -> mdn::Result<GpuTrainer> {
    let kernels = Arc::new(Kernels::with_config(ctx, kernels).unwrap());
    GpuTrainer::with_kernels(
        Arc::clone(ctx),
        kernels,
        spec,
        d,
        init_params(spec, 3),
        config,
    )
}

/// The first step on `kernels` (the whole data as one minibatch): its
/// row losses and gradient against the CPU trainer's.
fn first_step_matches_the_cpu(
    backend: BackendChoice,
    kernels: KernelConfig,
    rows: usize,
    fused: bool,
) {
    let Some(ctx) = context(backend) else {
        return;
    };
    let spec = ModelSpec::mixture(1, 1, vec![64, 64], 5).unwrap();
    let d = data(rows);
    let config = one_step(rows);
    let mut gpu = trainer(&ctx, kernels, &spec, &d, &config).unwrap();
    assert_eq!(
        gpu.is_fused(),
        fused,
        "{backend}: {:?}",
        gpu.why_not_fused()
    );
    let g = gpu.compute_gradients().unwrap();
    let losses = gpu.row_losses().unwrap();
    let mut cpu = CpuTrainer::new(&spec, &d, init_params(&spec, 3), &config).unwrap();
    cpu.compute_gradients();
    let cpu_losses = cpu.row_loss();
    let what = format!("{backend}, {rows} rows, fused {fused}");
    let zeros = losses.iter().filter(|&&l| l == 0.0).count();
    let e_loss = relative_error(&losses, cpu_losses);
    let e_grad = relative_error(&g, &cpu.grads);
    eprintln!("{what}: row losses {e_loss:.2e} ({zeros} zero), gradient {e_grad:.2e}");
    assert!(
        e_loss <= TOL,
        "{what}: row losses differ by {e_loss:.3e}, {zeros} are 0"
    );
    assert!(e_grad <= TOL, "{what}: gradient differs by {e_grad:.3e}");
}

/// The software configuration's fused step with one workgroup for the
/// whole minibatch: 274 chunks of 15 rows, where llvmpipe's loops run out
/// after about 140 unless the plan spreads them over more workgroups.
#[test]
fn a_fused_minibatch_in_one_workgroup_stays_within_the_loop_budget() {
    for backend in BACKENDS {
        let cfg = KernelConfig {
            fused: true,
            fused_groups: 1,
            ..KernelConfig::software()
        };
        first_step_matches_the_cpu(backend, cfg, 4096, true);
    }
}

/// The per-stage path on a 262 144-row minibatch: the software
/// configuration's 4 splits of the 64→64 layer would be 65 536 rows each.
#[test]
fn per_stage_batch_splits_stay_within_the_loop_budget() {
    for backend in BACKENDS {
        let cfg = KernelConfig {
            fused: false,
            ..KernelConfig::software()
        };
        first_step_matches_the_cpu(backend, cfg, 262_144, false);
    }
}

/// The loss reduction strides a 256-invocation workgroup over the whole
/// minibatch's row losses: past 65 535 · 256 rows llvmpipe left all but
/// about 2/256 of the sum out (a 16.8 M-row step of a 1-1-1 MLP reported
/// a mean loss of 0.021 against 2.69; 16 M rows were right). On adapters
/// with a loop budget a minibatch past it is refused before anything is
/// allocated; elsewhere there is no budget to keep.
#[test]
fn a_minibatch_past_the_loss_reductions_budget_is_refused() {
    for backend in BACKENDS {
        let Some(ctx) = context(backend) else {
            continue;
        };
        let cfg = KernelConfig::software();
        let Some(budget) = loop_budget(&ctx.info) else {
            eprintln!("{backend}: {} has no loop budget", ctx.describe());
            continue;
        };
        let rows = (budget as usize - 1) * cfg.adam_wg as usize + 1;
        let spec = ModelSpec::mlp(1, 1, vec![1]).unwrap();
        let d = Dataset::new(
            vec![0.5; rows],
            vec![0.25; rows],
            vec!["x".into()],
            vec!["y".into()],
        )
        .unwrap();
        let e = trainer(&ctx, cfg, &spec, &d, &one_step(rows))
            .err()
            .unwrap_or_else(|| panic!("{backend}: a {rows}-row minibatch was accepted"))
            .to_string();
        assert!(
            e.contains("loss reduction") && e.contains("smaller --batch"),
            "{backend}: {e}"
        );
    }
}
