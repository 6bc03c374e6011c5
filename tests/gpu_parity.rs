//! Each shader stage against its CPU twin in `src/cpu/`, on awkward sizes
//! (batch 1, batches that are not a multiple of any workgroup, widths 1, 33
//! and 256, K 1 and 7, D 1 and 3), on every backend present (Vulkan via
//! lavapipe and GL via llvmpipe here) and, for the matrix products, in every
//! kernel variant. Without an adapter each test skips loudly; under
//! `MDN_REQUIRE_GPU=1` it fails instead.
//!
//! Tolerances are relative to the largest magnitude of the CPU result
//! (`scale`), because a few outputs are near zero where a relative error
//! per element says nothing. The GPU sums in a different order than the
//! CPU's sgemm and its exp/log/tanh/cos are not correctly rounded, so
//! exact agreement is impossible; f32 rounding of a k-term dot product is
//! ≲ k·ε·Σ|terms| in the worst case and ≈ √k·ε typically (ε = 6e-8, k ≤ 300
//! here), so 1e-4 of the scale is loose enough for every reordering yet far
//! below what any indexing or formula error produces (those are O(scale)).

use std::sync::OnceLock;

use mdn::cpu::adam::adam;
use mdn::cpu::dense_backward::{BackwardScratch, dense_backward};
use mdn::cpu::dense_forward::dense_forward;
use mdn::cpu::gather::gather;
use mdn::cpu::reduce::reduce;
use mdn::gpu::context::{BackendChoice, GpuContext, GpuOptions, test_context_with};
use mdn::gpu::stages::Stages;
use mdn::gpu::{KernelConfig, Kernels, MatmulVariant};
use mdn::head::mixture_diag::mixture_head;
use mdn::head::mse::mse_head;

use mdn::head::{HeadKind, SampleParams, sample_rows};
use mdn::model::LayerLayout;
use mdn::train::{AdamStep, LossAccumulator};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Dot products, sums and transcendental functions: see the module comment.
const TOL: f32 = 1e-4;

struct Device {
    backend: BackendChoice,
    ctx: GpuContext,
    /// Every matmul variant on this device (see `devices`).
    kernels: Vec<Kernels>,
}

/// One context per backend for the whole test binary: pipelines cost
/// 50–170 ms each to compile on software drivers.
fn devices() -> &'static [Device] {
    static DEVICES: OnceLock<Vec<Device>> = OnceLock::new();
    DEVICES.get_or_init(|| {
        [BackendChoice::Vulkan, BackendChoice::Gl]
            .into_iter()
            .filter_map(|backend| {
                // The explicit empty adapter filter overrides any
                // WGPU_ADAPTER_NAME that would hide this backend's adapter.
                let ctx = test_context_with(&GpuOptions {
                    backend: Some(backend),
                    adapter: Some(String::new()),
                    ..Default::default()
                })?;
                // The adapter's own configuration, then the same sizes in
                // each other variant, then the real-GPU sizes (4×4 outputs
                // per invocation in 16×16 workgroups, where the adapter's
                // own have 8×8 in 8×8) in both tiled variants. The test
                // products are too small to earn narrow workgroups by
                // default, so half the tiled configurations take them
                // whenever a product is thin (`narrow=0`).
                let own = KernelConfig::for_adapter(&ctx.info);
                let eager_narrow = |c: KernelConfig| KernelConfig {
                    narrow_macs: 0,
                    ..c
                };
                let hardware = KernelConfig::hardware();
                let mut configs = vec![own];
                configs.extend(
                    MatmulVariant::ALL
                        .into_iter()
                        .filter(|&v| v != own.matmul)
                        .map(|v| match v {
                            MatmulVariant::Vec4 => eager_narrow(own.with_matmul(v)),
                            _ => own.with_matmul(v),
                        }),
                );
                // `vec4` names its accumulators per row and column quad,
                // so each tile shape takes its own branches: 4×4 here, 8×8
                // in the adapter's own sizes above, 4×8 below, and 8×4 as
                // its big tiles (products of ≥ 2^20 multiply-adds: the
                // 300-row case), so two tile sizes meet in one network.
                // The first of them also sums Adam's gradient slices over 4
                // lanes.
                let vec4 = hardware.with_matmul(MatmulVariant::Vec4);
                configs.extend([
                    eager_narrow(hardware),
                    KernelConfig {
                        adam_lanes: 4,
                        ..vec4
                    },
                    KernelConfig {
                        tile_m: 4,
                        tile_n: 8,
                        big_tile: Some((8, 4)),
                        big_macs: 1,
                        ..vec4
                    },
                ]);
                let kernels = configs
                    .into_iter()
                    .map(|cfg| Kernels::with_config(&ctx, cfg).unwrap())
                    .collect();
                Some(Device {
                    backend,
                    ctx,
                    kernels,
                })
            })
            .collect()
    })
}

/// Every (device, kernels) pair, labelled for messages.
fn each_kernels(mut f: impl FnMut(&str, Stages<'_>)) {
    for dev in devices() {
        for k in &dev.kernels {
            let label = format!("{} {}", dev.backend, k.config);
            f(&label, Stages::new(&dev.ctx, k));
        }
    }
}

/// Asserts `|gpu − cpu| ≤ tol · scale` element-wise, scale = max |cpu|;
/// returns the largest error relative to the scale (printed for the
/// record).
fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], tol: f32) -> f32 {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    assert!(
        cpu.iter().all(|v| v.is_finite()),
        "{what}: CPU result not finite"
    );
    let scale = cpu.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
    let mut worst = (0usize, 0.0f32);
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        let err = (g - c).abs();
        assert!(err.is_finite(), "{what}[{i}]: gpu {g} vs cpu {c}");
        if err > worst.1 {
            worst = (i, err);
        }
    }
    let rel = worst.1 / scale;
    assert!(
        rel <= tol,
        "{what}: element {} gpu {} vs cpu {} (error {:.3e} of scale {scale:.3e}, tolerance {tol:.0e})",
        worst.0,
        gpu[worst.0],
        cpu[worst.0],
        rel
    );
    rel
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// A layer placed at a non-zero offset of a larger parameter vector, so a
/// wrong offset cannot go unnoticed.
fn layer_params(
    rng: &mut ChaCha8Rng,
    in_dim: usize,
    out_dim: usize,
    tanh: bool,
) -> (LayerLayout, Vec<f32>) {
    let weight = 5;
    let layer = LayerLayout {
        in_dim,
        out_dim,
        weight,
        bias: weight + in_dim * out_dim,
        tanh,
    };
    let a = (6.0 / (in_dim + out_dim) as f32).sqrt();
    let mut params = uniform(rng, layer.bias + out_dim + 3, -a, a);
    for b in &mut params[layer.bias..layer.bias + out_dim] {
        *b *= 0.5;
    }
    (layer, params)
}

/// (rows, in, out): batch 1, batches off every workgroup multiple, and the
/// widths the issue names (1, 33, 256).
const DENSE_CASES: [(usize, usize, usize); 7] = [
    (1, 1, 33),
    (1, 256, 256),
    (67, 33, 256),
    (67, 256, 1),
    (130, 1, 1),
    (300, 256, 33),
    (301, 33, 33),
];

#[test]
fn dense_forward_matches_cpu() {
    let mut worst = 0.0f32;
    each_kernels(|label, st| {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (rows, i, o) in DENSE_CASES {
            for tanh in [true, false] {
                let (layer, params) = layer_params(&mut rng, i, o, tanh);
                let input = uniform(&mut rng, rows * i, -1.5, 1.5);
                let mut cpu = vec![0.0; rows * o];
                dense_forward(&params, &layer, &input, &mut cpu);
                let gpu = st.dense_forward(&params, &layer, &input).unwrap();
                let what = format!("{label} dense_forward rows {rows} {i}->{o} tanh {tanh}");
                worst = worst.max(assert_close(&what, &gpu, &cpu, TOL));
            }
        }
    });
    eprintln!("dense_forward: worst error {worst:.2e} of scale");
}

#[test]
fn dense_backward_matches_cpu() {
    let (mut worst_w, mut worst_in) = (0.0f32, 0.0f32);
    each_kernels(|label, st| {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for (rows, i, o) in DENSE_CASES {
            let (layer, params) = layer_params(&mut rng, i, o, true);
            // The layer's input is a tanh output (or the data) in (−1, 1).
            let input = uniform(&mut rng, rows * i, -0.99, 0.99);
            let grad_out = uniform(&mut rng, rows * o, -1.0, 1.0);
            let mut grads = vec![0.0; params.len()];
            let mut grad_in = vec![0.0; rows * i];
            let mut scratch = BackwardScratch::default();
            dense_backward(
                &params,
                &layer,
                &input,
                &grad_out,
                &mut grads,
                Some(&mut grad_in),
                &mut scratch,
            );
            let cpu_w = &grads[layer.weight..layer.bias + o];
            // One split, and a split count that leaves a short last run.
            for splits in [1, 3] {
                let want_in = splits == 1;
                let (gpu_w, gpu_in) = st
                    .dense_backward(&params, &layer, &input, &grad_out, splits, want_in)
                    .unwrap();
                let what = format!("{label} dense_backward rows {rows} {i}->{o} splits {splits}");
                worst_w = worst_w.max(assert_close(&format!("{what} dW,db"), &gpu_w, cpu_w, TOL));
                if let Some(gpu_in) = gpu_in {
                    worst_in =
                        worst_in.max(assert_close(&format!("{what} dX"), &gpu_in, &grad_in, TOL));
                }
            }
        }
    });
    eprintln!(
        "dense_backward: worst error {worst_w:.2e} (weights), {worst_in:.2e} (input) of scale"
    );
}

/// Head outputs with the spread training produces: logits of a few units,
/// σ from e^−1.5 to e^0.5.
fn random_head(rng: &mut ChaCha8Rng, rows: usize, k: usize, d: usize) -> Vec<f32> {
    let mut head = Vec::with_capacity(rows * (k + 2 * k * d));
    for _ in 0..rows {
        head.extend(uniform(rng, k, -2.5, 2.5));
        head.extend(uniform(rng, k * d, -1.5, 1.5));
        head.extend(uniform(rng, k * d, -1.5, 0.5));
    }
    head
}

#[test]
fn mixture_head_matches_cpu() {
    let (mut worst_l, mut worst_g) = (0.0f32, 0.0f32);
    each_kernels(|label, st| {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for rows in [1, 67, 200] {
            for k in [1, 7] {
                for d in [1, 3] {
                    let head = random_head(&mut rng, rows, k, d);
                    let target = uniform(&mut rng, rows * d, -2.0, 2.0);
                    let scale = 1.0 / rows as f32;
                    let mut grad = vec![0.0; head.len()];
                    let mut loss = vec![0.0; rows];
                    mixture_head(&head, &target, k, scale, &mut grad, &mut loss);
                    let (gpu_grad, gpu_loss) = st
                        .head_loss(HeadKind::MixtureDiag, &head, &target, k, d, scale)
                        .unwrap();
                    let what = format!("{label} mixture_head rows {rows} K {k} D {d}");
                    worst_l =
                        worst_l.max(assert_close(&format!("{what} loss"), &gpu_loss, &loss, TOL));
                    worst_g =
                        worst_g.max(assert_close(&format!("{what} grad"), &gpu_grad, &grad, TOL));
                }
            }
        }
    });
    eprintln!("mixture_head: worst error {worst_l:.2e} (loss), {worst_g:.2e} (gradient) of scale");
}

/// Full-covariance head rows: logits of a few units, means around 0, the
/// precision factor's log-diagonal from −1 to 1.5 and off-diagonals that
/// correlate the dimensions strongly.
fn random_full_head(rng: &mut ChaCha8Rng, rows: usize, k: usize, d: usize) -> Vec<f32> {
    let tri = d * (d + 1) / 2;
    let mut head = Vec::with_capacity(rows * (k + k * d + k * tri));
    for _ in 0..rows {
        head.extend(uniform(rng, k, -2.5, 2.5));
        head.extend(uniform(rng, k * d, -1.5, 1.5));
        for _ in 0..k {
            for i in 0..d {
                head.push(rng.random_range(-1.0..1.5));
                head.extend(uniform(rng, d - 1 - i, -2.0, 2.0));
            }
        }
    }
    head
}

#[test]
fn full_covariance_head_matches_cpu() {
    let (mut worst_l, mut worst_g) = (0.0f32, 0.0f32);
    let def = HeadKind::MixtureFull.def();
    each_kernels(|label, st| {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        for rows in [1, 67, 200] {
            for k in [1, 7] {
                for d in [2, 3, 5] {
                    let head = random_full_head(&mut rng, rows, k, d);
                    let target = uniform(&mut rng, rows * d, -2.0, 2.0);
                    let scale = 1.0 / rows as f32;
                    let mut grad = vec![0.0; head.len()];
                    let mut loss = vec![0.0; rows];
                    def.loss_rows(
                        &head,
                        &target,
                        k,
                        scale,
                        &mut grad,
                        &mut loss,
                        &mut Vec::new(),
                    );
                    let (gpu_grad, gpu_loss) = st
                        .head_loss(HeadKind::MixtureFull, &head, &target, k, d, scale)
                        .unwrap();
                    let what = format!("{label} mixture_full rows {rows} K {k} D {d}");
                    worst_l =
                        worst_l.max(assert_close(&format!("{what} loss"), &gpu_loss, &loss, TOL));
                    worst_g =
                        worst_g.max(assert_close(&format!("{what} grad"), &gpu_grad, &grad, TOL));
                }
            }
        }
    });
    eprintln!("mixture_full: worst error {worst_l:.2e} (loss), {worst_g:.2e} (gradient) of scale");
}

#[test]
fn mse_head_matches_cpu() {
    let mut worst = 0.0f32;
    each_kernels(|label, st| {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for rows in [1, 67] {
            for d in [1, 3] {
                let pred = uniform(&mut rng, rows * d, -2.0, 2.0);
                let target = uniform(&mut rng, rows * d, -2.0, 2.0);
                let scale = 1.0 / rows as f32;
                let mut grad = vec![0.0; pred.len()];
                let mut loss = vec![0.0; rows];
                mse_head(&pred, &target, scale, &mut grad, &mut loss);
                let (gpu_grad, gpu_loss) = st
                    .head_loss(HeadKind::Mse, &pred, &target, 0, d, scale)
                    .unwrap();
                let what = format!("{label} mse_head rows {rows} D {d}");
                worst = worst.max(assert_close(&format!("{what} loss"), &gpu_loss, &loss, TOL));
                worst = worst.max(assert_close(&format!("{what} grad"), &gpu_grad, &grad, TOL));
            }
        }
    });
    eprintln!("mse_head: worst error {worst:.2e} of scale");
}

#[test]
fn gather_picks_the_same_rows() {
    each_kernels(|label, st| {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (n, in_dim, out_dim) = (500, 3, 2);
        let inputs = uniform(&mut rng, n * in_dim, -1.0, 1.0);
        let targets = uniform(&mut rng, n * out_dim, -1.0, 1.0);
        let mut perm: Vec<u32> = (0..n as u32).collect();
        perm.shuffle(&mut rng);
        for (start, rows) in [(0, 1), (137, 67), (0, n)] {
            let mut cpu_in = vec![0.0; rows * in_dim];
            let mut cpu_tgt = vec![0.0; rows * out_dim];
            gather(&inputs, in_dim, &perm, start, &mut cpu_in);
            gather(&targets, out_dim, &perm, start, &mut cpu_tgt);
            let (gpu_in, gpu_tgt) = st
                .gather(&inputs, in_dim, &targets, out_dim, &perm, start, rows)
                .unwrap();
            // A copy: exact.
            assert_eq!(
                gpu_in, cpu_in,
                "{label} gather inputs start {start} rows {rows}"
            );
            assert_eq!(
                gpu_tgt, cpu_tgt,
                "{label} gather targets start {start} rows {rows}"
            );
        }
    });
}

#[test]
fn reduce_accumulates_and_flags_non_finite_losses() {
    each_kernels(|label, st| {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let finite: Vec<Vec<f32>> = [1, 67, 1000, 300]
            .iter()
            .map(|&n| uniform(&mut rng, n, -2.0, 3.0))
            .collect();
        let mut cpu = LossAccumulator::default();
        for b in &finite {
            reduce(b, &mut cpu);
        }
        let gpu = st.reduce(&finite).unwrap();
        assert_eq!(gpu.count, cpu.count, "{label}");
        assert_eq!(gpu.nonfinite, 0, "{label}");
        // f32 tree sums of ≤ 1000 terms against the CPU's f64 sum.
        assert!(
            (gpu.sum - cpu.sum).abs() <= 1e-5 * cpu.sum.abs().max(1.0),
            "{label}: {gpu:?} vs {cpu:?}"
        );
        assert!(
            (gpu.last - cpu.last).abs() <= 1e-5,
            "{label}: {gpu:?} vs {cpu:?}"
        );
        assert!(
            (gpu.mean() - cpu.mean()).abs() <= 1e-5,
            "{label}: {gpu:?} vs {cpu:?}"
        );

        // One NaN row or an infinite row makes that step's mean non-finite:
        // it is counted, left out of the sum, and sticks through later
        // finite steps.
        let mut with_nan = finite[1].clone();
        with_nan[13] = f32::NAN;
        let mut with_inf = finite[0].clone();
        with_inf[0] = f32::INFINITY;
        let batches = vec![finite[2].clone(), with_nan, with_inf, finite[3].clone()];
        let mut cpu = LossAccumulator::default();
        for b in &batches {
            reduce(b, &mut cpu);
        }
        let gpu = st.reduce(&batches).unwrap();
        assert_eq!(
            (gpu.count, gpu.nonfinite),
            (cpu.count, cpu.nonfinite),
            "{label}"
        );
        assert_eq!((gpu.count, gpu.nonfinite), (2, 2), "{label}");
        assert!(
            (gpu.sum - cpu.sum).abs() <= 1e-5 * cpu.sum.abs().max(1.0),
            "{label}"
        );
        // The last step was finite, the flag still says the chunk diverged.
        assert!(gpu.last.is_finite());
        assert!(gpu.nonfinite > 0);
    });
}

#[test]
fn adam_matches_cpu_and_sums_partials_in_order() {
    let mut worst = 0.0f32;
    each_kernels(|label, st| {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (n, splits) in [(1usize, 1u32), (1000, 1), (777, 3), (300, 11)] {
            let params = uniform(&mut rng, n, -1.0, 1.0);
            let partials = uniform(&mut rng, n * splits as usize, -0.1, 0.1);
            let m = uniform(&mut rng, n, -0.05, 0.05);
            let v = uniform(&mut rng, n, 0.0, 0.01);
            // The GPU adds the slices in split order (with adam_lanes, each
            // lane's slices in order, then the lanes': a rounding apart);
            // this adds them in split order.
            let mut grads = partials[..n].to_vec();
            for s in 1..splits as usize {
                for (g, p) in grads.iter_mut().zip(&partials[s * n..(s + 1) * n]) {
                    *g += p;
                }
            }
            for step in [AdamStep::new(3e-3, 1), AdamStep::new(1e-3, 250)] {
                let (mut cp, mut cm, mut cv) = (params.clone(), m.clone(), v.clone());
                adam(&mut cp, &grads, &mut cm, &mut cv, &step);
                let (gp, gm, gv) = st.adam(&params, &partials, splits, &m, &v, &step).unwrap();
                let what = format!("{label} adam n {n} splits {splits} t {:?}", step.bias1);
                // The update itself is a handful of correctly rounded
                // operations plus a sqrt: within a few ulps.
                worst = worst.max(assert_close(&format!("{what} params"), &gp, &cp, 1e-6));
                worst = worst.max(assert_close(&format!("{what} m"), &gm, &cm, 1e-6));
                worst = worst.max(assert_close(&format!("{what} v"), &gv, &cv, 1e-6));
            }
        }
    });
    eprintln!("adam: worst error {worst:.2e} of scale");
}

#[test]
fn samples_match_cpu_for_the_same_seed() {
    let mut worst = 0.0f32;
    let mut switched = 0usize;
    let mut total = 0usize;
    each_kernels(|label, st| {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let cases = [
            (HeadKind::MixtureDiag, 1),
            (HeadKind::MixtureDiag, 3),
            (HeadKind::MixtureFull, 2),
            (HeadKind::MixtureFull, 3),
        ];
        for rows in [1, 67] {
            for k in [1, 7] {
                for (kind, d) in cases {
                    for temperature in [1.0, 0.6] {
                        let head = match kind {
                            HeadKind::MixtureFull => random_full_head(&mut rng, rows, k, d),
                            _ => random_head(&mut rng, rows, k, d),
                        };
                        let p = SampleParams {
                            k,
                            d,
                            per_input: 37,
                            seed: 0xC0FFEE + rows as u32,
                            temperature,
                        };
                        let mut cpu = vec![0.0; rows * p.per_input * d];
                        sample_rows(kind, &head, &p, &mut cpu);
                        let (gpu, comps) = st.sample(kind, &head, &p).unwrap();
                        assert_eq!(gpu.len(), cpu.len());
                        // The component each draw came from, as the CPU
                        // chooses it (the same near-boundary allowance).
                        let width = kind.def().width(k, d);
                        for (i, &g) in comps.iter().enumerate() {
                            let h = &head[(i / p.per_input) * width..][..k];
                            let c = mdn::head::sample::choose_component(h, &p, i as u32);
                            if g as usize != c {
                                switched += 1;
                            }
                        }
                        // Samples are μ + T·σ·z: the error is that of exp,
                        // log and cos, relative to the sample scale. A draw
                        // whose uniform lands within float noise of a
                        // cumulative-weight boundary may pick the neighbour
                        // component; that is allowed for a tiny fraction.
                        let scale = cpu.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                        for (i, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
                            assert!(g.is_finite(), "{label} sample {i} = {g}");
                            let err = (g - c).abs() / scale;
                            if err > TOL {
                                switched += 1;
                                eprintln!(
                                    "{label} {kind:?} K {k} D {d} T {temperature}: sample {i} gpu {g} cpu {c}"
                                );
                            } else {
                                worst = worst.max(err);
                            }
                        }
                        total += cpu.len();
                    }
                }
            }
        }
    });
    eprintln!("sample: worst error {worst:.2e} of scale, {switched}/{total} draws differ");
    assert!(
        switched * 1000 <= total,
        "{switched} of {total} samples differ"
    );
}
