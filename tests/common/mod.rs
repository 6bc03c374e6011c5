//! Helpers the GPU test binaries share (each `tests/*.rs` is its own crate
//! and takes this module with `mod common;`).
#![allow(dead_code)] // each binary uses its own subset

use std::sync::Arc;

use mdn::gpu::context::{BackendChoice, GpuContext, GpuOptions, test_context_with};

/// The backends every kernel test runs on: lavapipe and llvmpipe here.
pub const BACKENDS: [BackendChoice; 2] = [BackendChoice::Vulkan, BackendChoice::Gl];

/// Options that pick `backend` and any adapter of it.
pub fn options(backend: BackendChoice) -> GpuOptions {
    GpuOptions {
        backend: Some(backend),
        adapter: Some(String::new()),
        ..Default::default()
    }
}

/// A context on `backend`; `None` (after a loud skip notice) without an
/// adapter, a panic under `MDN_REQUIRE_GPU=1`.
pub fn context(backend: BackendChoice) -> Option<Arc<GpuContext>> {
    test_context_with(&options(backend)).map(Arc::new)
}

/// Largest |a − b| relative to the largest |b|; `a` must be finite.
pub fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    assert!(a.iter().all(|v| v.is_finite()), "non-finite values");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
    let err = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    err / scale
}
