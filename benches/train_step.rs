//! One whole training step (gather, forward, head, loss, backward, Adam),
//! CPU vs GPU, at the three `mdn bench` sizes, through the public
//! [`Trainer`] interface exactly as training drives it.
//!
//! - `cpu/<size>`: `CpuTrainer::run(1)` (synchronous).
//! - `gpu/<size>`: `run(iters)` then `take_loss()`, which waits for the
//!   queue: many steps per submission, device sync inside the timed region.
//! - `gpu_sync/<size>`: `run(1); take_loss()` per step, a submission and a
//!   wait every step (not run at the large size, where one step is one
//!   submission anyway).
//!
//! The large size uses 10 flat samples: a step takes seconds on lavapipe.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use mdn::bench::{BenchConfig, BenchModel, warm_up};
use mdn::cpu::CpuTrainer;
use mdn::gpu::context::test_context;
use mdn::gpu::{GpuTrainer, Kernels};
use mdn::model::init::init_params;
use mdn::train::Trainer;

fn train_step(c: &mut Criterion) {
    let gpu = test_context().map(Arc::new);
    let kernels = gpu
        .as_ref()
        .map(|ctx| Arc::new(Kernels::new(ctx).expect("kernels build")));
    if let Some(ctx) = &gpu {
        eprintln!("GPU: {}", ctx.describe());
    }
    let mut group = c.benchmark_group("train_step");
    for config in BenchConfig::ALL {
        let spec = config.spec(BenchModel::Mdn);
        let data = config.dataset().expect("toy data");
        let tc = config.train_config();
        group.throughput(Throughput::Elements(config.batch() as u64));
        if config == BenchConfig::Large {
            group
                .sample_size(10)
                .sampling_mode(SamplingMode::Flat)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(10));
        } else {
            group
                .sample_size(20)
                .sampling_mode(SamplingMode::Auto)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(4));
        }

        // Trainers are built (and warmed up) on first use: criterion runs a
        // closure only when its id passes the command line's filter, and a
        // large GPU step takes a minute on lavapipe.
        let mut cpu: Option<CpuTrainer> = None;
        group.bench_function(format!("cpu/{}", config.name()), |b| {
            let t = cpu.get_or_insert_with(|| {
                let mut t =
                    CpuTrainer::new(&spec, &data, init_params(&spec, 0), &tc).expect("cpu trainer");
                warm_up(&mut t).expect("cpu step");
                t
            });
            b.iter(|| t.run(1).expect("cpu step"))
        });
        drop(cpu);

        let (Some(ctx), Some(k)) = (&gpu, &kernels) else {
            continue;
        };
        let make = || {
            let mut t = GpuTrainer::with_kernels(
                Arc::clone(ctx),
                Arc::clone(k),
                &spec,
                &data,
                init_params(&spec, 0),
                &tc,
            )
            .expect("gpu trainer");
            warm_up(&mut t).expect("gpu step");
            t
        };
        let mut gpu_trainer: Option<GpuTrainer> = None;
        group.bench_function(format!("gpu/{}", config.name()), |b| {
            let t = gpu_trainer.get_or_insert_with(make);
            b.iter_custom(|iters| {
                let start = Instant::now();
                t.run(iters as usize).expect("gpu steps");
                t.take_loss().expect("gpu readback");
                start.elapsed()
            })
        });
        if config != BenchConfig::Large {
            group.bench_function(format!("gpu_sync/{}", config.name()), |b| {
                let t = gpu_trainer.get_or_insert_with(make);
                b.iter(|| {
                    t.run(1).expect("gpu step");
                    t.take_loss().expect("gpu readback")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
