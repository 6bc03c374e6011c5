//! One network of a scene, with the device objects every scene shares and
//! the rule that says when its training has converged.

use std::sync::Arc;

use super::curves::{CurveInfo, GridCurves, VizKernels};
use super::net_trainer::NetTrainer;
use super::owners::OwnersKernel;
use crate::error::{MdnError, Result};
use crate::gpu::Kernels;
use crate::gpu::context::GpuContext;
use crate::model::ModelSpec;
use crate::train::Trainer;

/// Convergence: the best loss over the last `CONVERGE_WINDOW` steps beats
/// the best before them by less than `CONVERGE_TOL · (1 + |loss|)`.
const CONVERGE_WINDOW: usize = 1500;
const CONVERGE_TOL: f32 = 1e-3;

/// The device objects every scene shares.
#[derive(Clone)]
pub struct VizGpu {
    pub ctx: Arc<GpuContext>,
    pub kernels: Arc<Kernels>,
    pub viz: Arc<VizKernels>,
    pub owners: Arc<OwnersKernel>,
}

impl VizGpu {
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self> {
        let kernels = Arc::new(Kernels::new(&ctx)?);
        let viz = Arc::new(VizKernels::new(&ctx)?);
        let owners = Arc::new(OwnersKernel::new(&ctx)?);
        Ok(VizGpu {
            ctx,
            kernels,
            viz,
            owners,
        })
    }
}

/// One network training on the scene's data.
pub struct Net {
    pub spec: ModelSpec,
    pub(super) trainer: NetTrainer,
    /// Curves and density over an x grid; `None` where the data has more
    /// than one input or target column (no such curve describes the net).
    pub(super) curves: Option<GridCurves>,
    /// Steps of the trainers this net had before the current one (a
    /// trainer is rebuilt when the data or the learning rate changes).
    pub(super) steps_before: usize,
    /// The last mean training loss, in the data's units.
    pub loss: Option<f32>,
    /// (step, loss in the data's units) at every reading.
    pub history: Vec<(usize, f32)>,
    pub(super) z_history: Vec<(usize, f32)>,
    /// The loss on the scene's test rows at each reading, if it has any.
    pub test_history: Vec<(usize, f32)>,
    /// Components whose mean π over the data is below 1e-3 (the same rule
    /// as `mdn eval`), of a mixture, at the last reading.
    pub dead_components: Vec<usize>,
    pub converged: bool,
    pub diverged: bool,
}

impl Net {
    pub fn steps(&self) -> usize {
        self.steps_before + self.trainer.step()
    }

    pub fn is_mixture(&self) -> bool {
        self.spec.is_mixture()
    }

    pub fn loss_name(&self) -> &'static str {
        if self.is_mixture() { "NLL" } else { "MSE" }
    }

    /// The last test loss, in the data's units.
    pub fn test_loss(&self) -> Option<f32> {
        self.test_history.last().map(|h| h.1)
    }

    /// Reads back the live parameters.
    pub fn params(&mut self) -> Result<Vec<f32>> {
        self.trainer.params()
    }

    fn grid_curves(&self) -> Result<&GridCurves> {
        self.curves.as_ref().ok_or_else(|| {
            MdnError::Config(
                "this net has no x-grid curves: its data has several input or target columns"
                    .into(),
            )
        })
    }

    /// Reads back the curve vertices (x, y, π, σ) (tests and debugging).
    pub fn read_curve(&self) -> Result<Vec<[f32; 4]>> {
        self.grid_curves()?.read_verts()
    }

    /// Reads back the heat cells `[rows, cols]` (tests and debugging).
    pub fn read_heat(&self) -> Result<Vec<f32>> {
        self.grid_curves()?.read_heat()
    }

    /// The grid the curves and heat cells were computed on, if there are
    /// curves.
    pub fn curve_info(&self) -> Option<&CurveInfo> {
        self.curves.as_ref().map(GridCurves::info)
    }
}

/// Whether the loss has stopped improving (see [`CONVERGE_WINDOW`]).
pub(super) fn plateaued(history: &[(usize, f32)], now: usize) -> bool {
    let Some(&(first, _)) = history.first() else {
        return false;
    };
    if now < first + 2 * CONVERGE_WINDOW {
        return false;
    }
    let cut = now - CONVERGE_WINDOW;
    let best = |keep: &dyn Fn(usize) -> bool| {
        history
            .iter()
            .filter(|(s, _)| keep(*s))
            .map(|h| h.1)
            .fold(f32::INFINITY, f32::min)
    };
    let old = best(&|s| s <= cut);
    let new = best(&|s| s > cut);
    old.is_finite() && new.is_finite() && old - new < CONVERGE_TOL * (1.0 + new.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plateau_needs_two_windows_and_a_flat_loss() {
        let w = CONVERGE_WINDOW;
        let falling: Vec<(usize, f32)> = (0..40)
            .map(|i| (i * w / 10, 1.0 - i as f32 * 0.01))
            .collect();
        assert!(!plateaued(&falling, 39 * w / 10));
        let flat: Vec<(usize, f32)> = (0..40).map(|i| (i * w / 10, 0.5)).collect();
        assert!(plateaued(&flat, 39 * w / 10));
        assert!(!plateaued(&flat[..5], 4 * w / 10));
    }
}
