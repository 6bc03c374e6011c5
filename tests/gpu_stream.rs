//! Training rows larger than one storage binding stream to the GPU: each
//! submission uploads the rows its steps read, in step order, and the
//! kernels read them through an identity permutation. Streamed and resident
//! trainers see the same minibatches, so they agree bit for bit; a data set
//! over lavapipe's 128 MiB binding limit trains and matches the CPU
//! trainer. Without an adapter these skip loudly (fail under
//! `MDN_REQUIRE_GPU=1`).

mod common;
use common::*;

use std::sync::Arc;

use mdn::Dataset;
use mdn::cpu::CpuTrainer;
use mdn::gpu::context::{BackendChoice, GpuOptions, test_context_with};
use mdn::gpu::{GpuTrainer, Kernels};
use mdn::model::ModelSpec;
use mdn::model::init::init_params;
use mdn::train::{LrSchedule, TrainConfig, Trainer};

/// z-scored-looking rows: `in_dim` inputs, one target with a few modes.
fn rows(n: usize, in_dim: usize) -> Dataset {
    let mut inputs = Vec::with_capacity(n * in_dim);
    let mut targets = Vec::with_capacity(n);
    for i in 0..n {
        let u = (i as f32 * 0.618_034).fract() * 2.0 - 1.0;
        for j in 0..in_dim {
            inputs.push(((i * (j + 3)) as f32 * 0.377).sin() * 0.5 + u * 0.5);
        }
        let branch = [-1.0f32, 0.0, 1.0][i % 3];
        targets.push(branch + 0.5 * u + 0.05 * ((i as f32) * 1.3).cos());
    }
    let names = |p: &str, n: usize| (0..n).map(|j| format!("{p}{j}")).collect();
    Dataset::new(inputs, targets, names("x", in_dim), names("t", 1)).unwrap()
}

fn config(steps: usize, batch: usize) -> TrainConfig {
    TrainConfig {
        steps,
        batch,
        lr: 3e-3,
        schedule: LrSchedule::Cosine,
        seed: 9,
    }
}

#[test]
fn streamed_rows_train_the_bits_the_resident_ones_do() {
    for backend in [BackendChoice::Vulkan, BackendChoice::Gl] {
        let Some(ctx) = context(backend) else {
            continue;
        };
        // 700 rows, batch 64: epochs of 10 steps (the last rows dropped as
        // the CPU's order does), so windows cross epochs.
        let data = rows(700, 2);
        for spec in [
            ModelSpec::mixture(2, 1, vec![16, 16], 3).unwrap(),
            ModelSpec::mlp(2, 1, vec![9]).unwrap(),
        ] {
            let cfg = config(230, 64);
            let p0 = init_params(&spec, 4);
            let base = Kernels::new(&ctx).unwrap().config;
            let mut trainers = Vec::new();
            let mut kept = Vec::new();
            for stream in ["stream=off", "stream=on"] {
                let kernels = Arc::new(
                    Kernels::with_config(&ctx, base.with_overrides(stream).unwrap()).unwrap(),
                );
                let mut t = GpuTrainer::with_kernels(
                    Arc::clone(&ctx),
                    kernels,
                    &spec,
                    &data,
                    p0.clone(),
                    &cfg,
                )
                .unwrap();
                assert_eq!(t.is_streamed(), stream == "stream=on");
                for n in [1, 13, 216] {
                    t.run(n).unwrap();
                }
                trainers.push(t);
            }
            // Both hand the rows back as given: the streamed one its
            // host copy, the resident one read back from the device.
            let back: Vec<Dataset> = trainers
                .drain(..)
                .map(|t| {
                    let mut t = Box::new(t);
                    let p = t.params().unwrap();
                    let l = t.take_loss().unwrap();
                    kept.push((p, l));
                    t.into_data().unwrap()
                })
                .collect();
            for d in back {
                assert_eq!(d, data, "{backend}: the rows came back changed");
            }
            let resident = kept[0].0.clone();
            let streamed = kept[1].0.clone();
            assert!(
                resident
                    .iter()
                    .zip(&streamed)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{backend} {spec:?}: streamed parameters differ from resident ones"
            );
            let (a, b) = (&kept[0].1, &kept[1].1);
            assert_eq!(a.sum.to_bits(), b.sum.to_bits(), "{backend}");
        }
    }
}

/// 550 k rows of 16 inputs: 35 MB of inputs, over the 32 MiB storage
/// binding the device is given here (`GpuOptions::max_binding`; an H200's
/// own 2 GiB would take 2.2 GB of rows), so the trainer must stream; it
/// matches the CPU trainer after 60 steps within the resident trainer's
/// tolerance.
#[test]
fn data_larger_than_a_binding_trains_on_the_gpu() {
    let opts = GpuOptions {
        max_binding: Some(32 << 20),
        ..options(BackendChoice::Vulkan)
    };
    let Some(ctx) = test_context_with(&opts).map(Arc::new) else {
        return;
    };
    let limit = ctx.device.limits().max_storage_buffer_binding_size;
    assert_eq!(limit, 32 << 20);
    let in_dim = 16;
    let n = (limit as usize / (in_dim * 4)) * 21 / 20;
    let data = rows(n, in_dim);
    assert!(data.inputs.len() * 4 > limit as usize);
    let spec = ModelSpec::mixture(in_dim, 1, vec![8], 2).unwrap();
    let cfg = config(60, 256);
    let p0 = init_params(&spec, 7);
    let mut gpu = GpuTrainer::new(Arc::clone(&ctx), &spec, &data, p0.clone(), &cfg).unwrap();
    assert!(
        gpu.is_streamed(),
        "{} bytes of inputs did not stream",
        data.inputs.len() * 4
    );
    let mut cpu = CpuTrainer::new(&spec, &data, p0, &cfg).unwrap();
    gpu.run(60).unwrap();
    cpu.run(60).unwrap();
    let (g, c) = (gpu.params().unwrap(), cpu.params().unwrap());
    let scale = c.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = g
        .iter()
        .zip(&c)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale;
    assert!(
        err <= 1e-4,
        "streamed GPU vs CPU: {err:.3e} of the parameters' scale"
    );
}
