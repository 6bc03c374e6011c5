//! Robustness from the command line, on both devices: a diverging run stops
//! with a clear message and saves the last good parameters, and a batch
//! larger than the adapter can bind is refused before anything is written.

use std::path::Path;
use std::process::{Command, Output};

use mdn::gpu::context::{BackendChoice, GpuOptions, MAX_BINDING_ENV, test_context_with};

fn mdn(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mdn"))
        .env("MDN_TUNED_KERNELS", "off")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the mdn binary runs")
}

fn has_gpu() -> bool {
    // Fails the test under MDN_REQUIRE_GPU=1 when no adapter exists.
    test_context_with(&GpuOptions {
        backend: Some(BackendChoice::Vulkan),
        adapter: None,
        ..Default::default()
    })
    .is_some()
}

#[test]
fn diverging_training_stops_and_keeps_the_last_good_parameters() {
    let devices: &[&str] = if has_gpu() { &["cpu", "gpu"] } else { &["cpu"] };
    for &device in devices {
        let dir = tempfile::tempdir().unwrap();
        let out = mdn(
            dir.path(),
            &[
                "--backend",
                "vulkan",
                "train",
                "--toy",
                "inverse",
                "--n",
                "512",
                "--hidden",
                "8",
                "--steps",
                "200",
                "--lr",
                "1e6",
                "--device",
                device,
                "--quiet",
                "--out",
                "m.safetensors",
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{device}: {stderr}");
        assert!(
            stderr.contains("diverged") && stderr.contains("last good parameters"),
            "{device}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{device}: {stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("NaN"));
        // The saved model is the last good one: it loads (finite weights
        // are checked on load), and using it gives a number or a clear
        // refusal, never a NaN printed as a result.
        let model = mdn::model::load_model(&dir.path().join("m.safetensors")).unwrap();
        assert!(model.params.iter().all(|v| v.is_finite()));
        let data = mdn::data::toy::toy_dataset(mdn::data::toy::ToyProblem::Inverse, 256, 9);
        match model.evaluate(&data) {
            Ok(e) => assert!(e.value.is_finite(), "{device}"),
            Err(e) => assert!(e.to_string().contains("not finite"), "{device}: {e}"),
        }
    }
}

/// The binding every device gets here (`MDN_GPU_MAX_BINDING`): below
/// lavapipe's 128 MiB, so the message says it is a cap, and small enough
/// that one hidden layer overflows it on any GPU (an H200 binds 2 GiB,
/// more than any allowed layer of this batch needs).
const CAP: u64 = 32 << 20;

#[test]
fn a_batch_above_the_binding_limit_is_refused_clearly() {
    let Some(ctx) = test_context_with(&GpuOptions {
        backend: Some(BackendChoice::Vulkan),
        adapter: None,
        max_binding: Some(CAP),
        tuned: None,
    }) else {
        return;
    };
    let limit = ctx.device.limits().max_storage_buffer_binding_size;
    assert_eq!(limit, CAP, "the adapter binds less than the cap");
    let batch = 16_384u64;
    // The first hidden activation is batch × width f32s: one more column
    // than fits in a binding.
    let width = limit / (4 * batch) + 1;
    assert!(width <= mdn::model::spec::MAX_WIDTH as u64);
    let dir = tempfile::tempdir().unwrap();
    let (batch, width) = (batch.to_string(), width.to_string());
    let out = Command::new(env!("CARGO_BIN_EXE_mdn"))
        .env("MDN_TUNED_KERNELS", "off")
        .args([
            "--backend",
            "vulkan",
            "train",
            "--toy",
            "inverse",
            "--n",
            &batch,
            "--batch",
            &batch,
            "--hidden",
            &width,
            "--steps",
            "1",
            "--device",
            "gpu",
            "--out",
            "m.safetensors",
        ])
        .current_dir(dir.path())
        .env(MAX_BINDING_ENV, CAP.to_string())
        .output()
        .expect("the mdn binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("needs 32.1 MiB, more than this GPU binds in one buffer (32.0 MiB, capped by MDN_GPU_MAX_BINDING from ")
            && stderr.contains("--batch"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!dir.path().join("m.safetensors").exists());
}
