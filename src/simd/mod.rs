//! x86-64 AVX2 + FMA versions of the CPU stages' inner loops, chosen at run
//! time, and what the CPU stages share (the kernel-set choice, rayon task
//! sizes). The lowest floor of the crate: it imports nothing from it. The trainer's products are small (a block of 64 rows times a 32×32
//! weight at the small benchmark size), where a general sgemm spends more
//! time packing and allocating than multiplying; these kernels read their
//! operands in place, fuse the bias and tanh into the product, and take the
//! mixture head's exponentials eight rows at a time.
//!
//! Everything here has a portable twin in the stage modules (matrixmultiply
//! and scalar Rust), which runs where AVX2 or FMA is missing or where
//! `MDN_CPU_KERNELS=portable` asks for it; tests check the two against each
//! other.

#[cfg(target_arch = "x86_64")]
pub mod gemm;
#[cfg(target_arch = "x86_64")]
pub mod math;

/// Environment variable choosing the CPU kernels: `auto` (the default),
/// `portable`, or `avx2` (an error where the CPU lacks AVX2 or FMA).
pub const CPU_KERNELS_ENV: &str = "MDN_CPU_KERNELS";

/// What `MDN_CPU_KERNELS` asks for, or why its value is wrong.
fn requested() -> Result<bool, String> {
    let value = std::env::var(CPU_KERNELS_ENV).unwrap_or_default();
    match value.trim() {
        "" | "auto" => Ok(detected()),
        "portable" => Ok(false),
        "avx2" if detected() => Ok(true),
        "avx2" => Err(format!(
            "{CPU_KERNELS_ENV}=avx2, but this CPU lacks AVX2 or FMA; use auto or portable"
        )),
        other => Err(format!(
            "{CPU_KERNELS_ENV}=`{other}` is not a kernel set; use auto, portable or avx2"
        )),
    }
}

/// Checks `MDN_CPU_KERNELS` (the CLI calls this first, so a misspelt value
/// is an error rather than silently the default).
pub fn check_env() -> Result<(), String> {
    requested().map(|_| ())
}

/// Whether the CPU stages run the AVX2 + FMA kernels (decided once). An
/// invalid `MDN_CPU_KERNELS` falls back to detection here; [`check_env`]
/// is where it is reported.
pub fn available() -> bool {
    use std::sync::OnceLock;
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| requested().unwrap_or_else(|_| detected()))
}

/// Whether this CPU has AVX2 and FMA, whatever `MDN_CPU_KERNELS` says
/// (tests of the AVX2 code itself gate on this).
#[cfg(target_arch = "x86_64")]
pub(crate) fn detected() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn detected() -> bool {
    false
}

/// Deterministic values in `[-scale, scale)` for the kernels' tests.
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn test_values(len: usize, seed: u32, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            // A multiply-xorshift hash (the low floor has no RNG of its own).
            let mut h = (i as u32 ^ seed.wrapping_mul(0x9e37_79b9)).wrapping_mul(0x2c1b_3c6d);
            h ^= h >> 15;
            h = h.wrapping_mul(0x297a_2d39);
            h ^= h >> 12;
            ((h as f32 / u32::MAX as f32) * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Rows per rayon task: enough work per task that fork/join overhead stays
/// small next to the arithmetic, and at most one task per thread.
pub(crate) fn rows_per_task(rows: usize, work_per_row: usize) -> usize {
    const MIN_WORK_PER_TASK: usize = 1 << 15;
    let threads = rayon::current_num_threads().max(1);
    let min_rows = MIN_WORK_PER_TASK.div_ceil(work_per_row.max(1));
    rows.div_ceil(threads).max(min_rows).max(1)
}

/// Asserts that an AVX2 stage's output matches its portable twin's.
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: avx2 {g} vs portable {w}"
        );
    }
}

/// Name of the kernel set in use, for benchmark headers.
pub fn kernel_name() -> &'static str {
    if available() { "avx2+fma" } else { "portable" }
}
