//! What a head kind supplies ([`HeadDef`]) and the pieces the mixture
//! kinds share. The registry of kinds is `head/mod.rs`.

use super::sample::SampleParams;
use crate::data::normalize::Normalizer;

/// ½·log(2π); `HALF_LOG_2PI` in `shaders/common.wgsl`.
pub const HALF_LOG_2PI: f32 = 0.918_938_5;

/// What a head's loss measures, and so what `eval` and `train` report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Mean negative log-likelihood in nats per row, original units.
    Nll,
    /// Mean squared error over rows and target dimensions, original units.
    Mse,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Nll => "nll",
            Metric::Mse => "mse",
        }
    }
}

/// Where a head's outputs go in a padded head ([`HeadDef::padding`]). The
/// padded head's other outputs have zero weights and the bias given here,
/// chosen so the padded head computes the same loss as the original and
/// gives those outputs no gradient: they never move.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadPadding {
    /// Output `j` of the original head is output `rows[j]` of the padded one.
    pub rows: Vec<usize>,
    /// The bias of every padded output that no original output maps to.
    pub unused_bias: Vec<(usize, f32)>,
}

/// Everything a head kind supplies. `k` is the number of mixture components
/// (ignored by heads without components), `d` the target width. Head rows
/// and targets are z-scored (DESIGN.md §1) unless a method says otherwise.
pub trait HeadDef: Sync {
    /// The shader's file stem in `shaders/heads/`, also the kind's name in
    /// messages.
    fn stem(&self) -> &'static str;

    /// The head's WGSL, without the shared prelude (`common.wgsl`), which
    /// the GPU code prepends; constants the shader shares with Rust are
    /// emitted here from the Rust side.
    fn wgsl(&self) -> String;

    /// The loss of one row as WGSL functions (`head_row_loss`, reading
    /// through `head_at` / `target_at` and writing through `set_grad`,
    /// which the includer defines), for kinds whose per-stage `loss` entry
    /// and the fused training step (`shaders/fused_step.wgsl`) share it.
    /// `None`: the kind trains on the per-stage path only.
    fn row_wgsl(&self) -> Option<String> {
        None
    }

    /// Loop passes `head_row_loss` runs for one row, counting each loop's
    /// failing last test (`gpu::loop_budget`); heads with a
    /// [`HeadDef::row_wgsl`] give it.
    fn row_loop_passes(&self, _k: usize, _d: usize) -> usize {
        0
    }

    /// Outputs of the last layer.
    fn width(&self, k: usize, d: usize) -> usize;

    /// Refuses a K or D the head cannot take, with the reason.
    fn validate(&self, k: usize, d: usize) -> Result<(), String>;

    /// What the loss measures; a head whose metric is NLL models a
    /// distribution and has a `sample` entry point.
    fn metric(&self) -> Metric;

    /// Whether the head models a distribution (can be sampled, has a pdf).
    fn is_distribution(&self) -> bool {
        self.metric() == Metric::Nll
    }

    /// Components as the visualizer draws them (curves, π panel): K for a
    /// mixture, 1 for a point prediction.
    fn strips(&self, k: usize) -> usize;

    /// How a head of `k` components sits inside one of `k_to` ≥ `k`
    /// (`crate::model::pad`: a sweep trains models of different K in one
    /// GPU trainer). `None`: the kind cannot be padded.
    fn padding(&self, _k: usize, _k_to: usize, _d: usize) -> Option<HeadPadding> {
        None
    }

    /// CPU twin of the shader's `loss` entry for a block of rows
    /// (`row_loss.len()` rows): writes each row's loss and
    /// `grad_scale · ∂row_loss/∂head`. `scratch` is the caller's, reused
    /// between calls.
    #[allow(clippy::too_many_arguments)]
    fn loss_rows(
        &self,
        head: &[f32],
        target: &[f32],
        k: usize,
        grad_scale: f32,
        grad_head: &mut [f32],
        row_loss: &mut [f32],
        scratch: &mut Vec<f32>,
    );

    /// One row's loss (z-scored head and target) in original units, so the
    /// mean over rows is what `eval` reports.
    fn row_loss_original(&self, head: &[f32], target: &[f32], k: usize, norm: &Normalizer) -> f64;

    /// A mean training loss (z-scored units) in original units; exact for
    /// D = 1, which is all the visualizer shows.
    fn loss_to_original(&self, loss: f64, norm: &Normalizer) -> f64;

    /// Names of the columns `predict` writes after the input columns.
    fn columns(&self, k: usize, d: usize) -> Vec<String>;

    /// One row of `predict` values in original units, `columns` long,
    /// appended to `out`.
    fn decode(&self, head: &[f32], k: usize, norm: &Normalizer, out: &mut Vec<f32>);

    /// The point prediction (the conditional mean), z-scored, `d` values.
    fn mean(&self, head: &[f32], k: usize, out: &mut [f32]);

    /// The mixture weights π of one row, `k` values; heads without
    /// components write nothing.
    fn weights(&self, head: &[f32], k: usize, out: &mut [f32]);

    /// For a one-dimensional Gaussian mixture: each component's mean and
    /// standard deviation in original units (`k` values each), and `true`.
    /// `false` (nothing written) for any other head. Calibration metrics,
    /// medians, modes and quantiles are defined on these.
    fn components_1d(
        &self,
        head: &[f32],
        k: usize,
        norm: &Normalizer,
        mu: &mut [f32],
        sigma: &mut [f32],
    ) -> bool;

    /// One draw (z-scored, `p.d` values) for global sample `index` of one
    /// head row: the CPU twin of the shader's `sample` entry. Only called
    /// on heads that are [`HeadDef::is_distribution`].
    fn sample_one(&self, head: &[f32], p: &SampleParams, index: u32, out: &mut [f32]);
}

/// The π of a mixture head row whose first `k` values are logits: the
/// softmax both mixture kinds share, written to `out`.
pub fn softmax_into(logits: &[f32], out: &mut [f32]) {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut z = 0.0f32;
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = (l - m).exp();
        z += *o;
    }
    out.iter_mut().for_each(|o| *o /= z);
}

/// `Σ_k π_k μ_k` of a mixture row laid out `[logits (K) | mu (K·D) | …]`,
/// as both mixture kinds are.
pub fn mixture_mean(head: &[f32], k: usize, out: &mut [f32]) {
    let d = out.len();
    let mut pi = vec![0.0f32; k];
    softmax_into(&head[..k], &mut pi);
    out.fill(0.0);
    for (c, &p) in pi.iter().enumerate() {
        for (j, o) in out.iter_mut().enumerate() {
            *o += p * head[k + c * d + j];
        }
    }
}

/// The columns both mixture kinds start `predict` with: `pi_k`, then
/// `mu_k` (or `mu_k_d`).
pub fn mixture_columns(k: usize, d: usize) -> Vec<String> {
    let mut names: Vec<String> = (0..k).map(|c| format!("pi_{c}")).collect();
    for c in 0..k {
        names.extend((0..d).map(|j| format!("mu_{}", component_suffix(c, j, d))));
    }
    names
}

/// Their values in original units, from a row `[logits (K) | mu (K·D) | …]`:
/// π, then each mean de-normalised; appended to `out`.
pub fn decode_weights_and_means(head: &[f32], k: usize, norm: &Normalizer, out: &mut Vec<f32>) {
    let d = norm.dim();
    let at = out.len();
    out.resize(at + k, 0.0);
    softmax_into(&head[..k], &mut out[at..]);
    out.extend((0..k * d).map(|i| head[k + i] * norm.std[i % d] + norm.mean[i % d]));
}

/// Column suffix of component `c`, dimension `j`: `c` for one target
/// dimension, `c_j` for several (DESIGN.md §2, `predict`).
pub fn component_suffix(c: usize, j: usize, d: usize) -> String {
    if d == 1 {
        format!("{c}")
    } else {
        format!("{c}_{j}")
    }
}
