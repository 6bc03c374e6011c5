//! Mesa's llvmpipe (and lavapipe, its Vulkan driver, which names its
//! adapter "llvmpipe" too) stops every loop of a shader once one SIMD vector
//! of invocations has run `LP_MAX_TGSI_LOOP_ITERATIONS` = 65 535 loop passes
//! in all, counted over every loop of the shader together, and carries on
//! after them as if they had ended: no error, just sums over fewer terms.
//! Measured here (Mesa 22.3, Vulkan and GL alike): the fused step with a
//! whole 4 096-row minibatch of a 64,64 network in one workgroup left the
//! row losses of every row past 2 040 at zero, and the per-stage weight
//! gradient over 65 536-row batch splits came out 5 % off the CPU's.
//! Mesa 25.0's lavapipe ran both correctly (`scripts/newer-lavapipe`), but
//! Debian 12 and CI ship 22.3, and the adapter does not say which
//! behaviour it has, so every llvmpipe gets the budget: it costs a few
//! more workgroups or splits at sizes few run on a CPU driver. Not every
//! loop is counted the same way: the per-stage head loss of a K 256
//! mixture with 200 targets (155 000 passes a row by the count below) came
//! out right on 22.3, so the counts here are upper bounds for the kernels
//! they plan, not a model of the driver.
//!
//! So where the adapter has the limit, the kernels' work per invocation is
//! planned under it: the fused step takes fewer chunks per workgroup
//! (`gpu::fused`), the weight gradient more batch splits
//! (`trainer::resident::choose_splits`), and a minibatch larger than the
//! loss reduction can add up is refused ([`check_loss_rows`]). Their counts assume what the
//! driver does with the fixed-count loops (those bounded by a pipeline
//! constant: the register tiles' loops), which is to unroll them, so only
//! loops whose bounds come from the data (rows, widths, K, D) are counted;
//! half the limit is the budget, for what the count leaves out.

/// The loop passes one SIMD vector of an llvmpipe shader may run.
pub const LLVMPIPE_LOOP_LIMIT: u64 = 65_535;

/// Invocations llvmpipe runs as one vector (256-bit registers, f32 lanes):
/// a strided loop's pass count is that of its busiest vector.
pub const LLVMPIPE_LANES: u64 = 8;

/// The loop passes a planned kernel may spend per invocation on this
/// adapter (half the driver's limit), or `None` where it has no limit.
pub fn loop_budget(info: &wgpu::AdapterInfo) -> Option<u64> {
    budget_for(&info.name, &info.driver)
}

/// [`loop_budget`] from the adapter's name and driver.
fn budget_for(name: &str, driver: &str) -> Option<u64> {
    let llvmpipe = |s: &str| s.to_ascii_lowercase().contains("llvmpipe");
    (llvmpipe(name) || llvmpipe(driver)).then_some(LLVMPIPE_LOOP_LIMIT / 2)
}

/// Passes of `for (var x = lid; x < items; x += wg)`, in the vector that
/// holds invocation 0 (which has the most), plus the failing test that
/// leaves it.
pub fn strided_passes(items: u64, wg: u64) -> u64 {
    items.div_ceil(wg.max(1)) + 1
}

/// Refuses a minibatch whose loss reduction (`shaders/loss_sum.wgsl`: a
/// workgroup of `wg` invocations striding over the batch's row losses, in
/// every trainer's Adam dispatch) would loop past `budget` passes: past
/// about 8 M rows on llvmpipe, the mean loss, which divergence checks and
/// early stopping read, would silently leave rows out.
pub fn check_loss_rows(batch: usize, wg: u32, budget: Option<u64>) -> Result<(), String> {
    match budget {
        Some(budget) if strided_passes(batch as u64, wg as u64) > budget => Err(format!(
            "a minibatch of {batch} rows is more than this driver adds up in one loss reduction \
             (it stops loops past {LLVMPIPE_LOOP_LIMIT} passes; at most {} rows here); \
             use a smaller --batch",
            (budget - 1) * wg as u64
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loss_reduction_refuses_batches_past_the_budget() {
        let budget = Some(LLVMPIPE_LOOP_LIMIT / 2);
        let most = (LLVMPIPE_LOOP_LIMIT / 2 - 1) as usize * 256;
        assert_eq!(check_loss_rows(most, 256, budget), Ok(()));
        let e = check_loss_rows(most + 1, 256, budget).unwrap_err();
        assert!(e.contains(&format!("at most {most} rows")), "{e}");
        assert!(e.contains("smaller --batch"), "{e}");
        assert_eq!(check_loss_rows(usize::MAX / 2, 256, None), Ok(()));
    }

    #[test]
    fn only_llvmpipe_has_a_budget() {
        let lavapipe = budget_for("llvmpipe (LLVM 15.0.6, 256 bits)", "llvmpipe");
        assert_eq!(lavapipe, Some(32_767));
        assert_eq!(budget_for("SwiftShader Device", "SwiftShader driver"), None);
        assert_eq!(budget_for("NVIDIA H200", "NVIDIA"), None);
    }

    #[test]
    fn strided_loops_count_their_busiest_vector() {
        assert_eq!(strided_passes(0, 64), 1);
        assert_eq!(strided_passes(64, 64), 2);
        assert_eq!(strided_passes(65, 64), 3);
    }
}
