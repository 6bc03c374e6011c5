//! The network's last layer as a plug-in. A head kind is one WGSL file in
//! `shaders/heads/`, one Rust module here and one [`HeadKind`] variant; its
//! [`HeadDef`] supplies everything the rest of the crate needs — the output
//! width, the shader source and its CPU twin, the loss in original units,
//! the columns `predict` writes, the point prediction, and sampling. The
//! trainers, inference, the visualizer, the CLI and the benchmark ask the
//! kind; none of them matches on it.
//!
//! Every head's shader has the same entry points and bindings (see
//! `gpu::bindings`): `loss` (per batch row: the row loss and the gradient of
//! the mean batch loss with respect to the head outputs) and, for heads that
//! model a distribution, `sample` (one draw per invocation, with the
//! counter-based RNG of [`sample`]).

#![expect(
    clippy::needless_range_loop,
    reason = "head loops index like their WGSL twins, so the two read side by side"
)]

pub mod def;
pub mod mixture_diag;
pub mod mixture_full;
pub mod mse;
pub mod sample;

pub use def::{
    HALF_LOG_2PI, HeadDef, HeadPadding, Metric, component_suffix, mixture_mean, softmax_into,
};
pub use sample::SampleParams;

use rayon::prelude::*;

/// The head kinds. Registering a new one is a variant here, its arm in
/// [`HeadKind::def`] and the flag that selects it in `cli/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeadKind {
    /// K diagonal Gaussians: `[logits | mu | log_sigma]` (DESIGN.md §1).
    MixtureDiag,
    /// K full-covariance Gaussians: `[logits | mu | chol]`, the precision's
    /// Cholesky factor (DESIGN.md, "Full-covariance mixture head").
    MixtureFull,
    /// Point regression with mean squared error (the MLP).
    Mse,
}

impl HeadKind {
    pub const ALL: [HeadKind; 3] = [HeadKind::MixtureDiag, HeadKind::MixtureFull, HeadKind::Mse];

    /// The one place a kind is turned into its definition.
    pub fn def(self) -> &'static dyn HeadDef {
        match self {
            HeadKind::MixtureDiag => &mixture_diag::MixtureDiag,
            HeadKind::MixtureFull => &mixture_full::MixtureFull,
            HeadKind::Mse => &mse::Mse,
        }
    }

    /// A dense index, for tables of per-kind GPU pipelines.
    pub fn index(self) -> usize {
        HeadKind::ALL
            .iter()
            .position(|&k| k == self)
            .expect("ALL lists every kind")
    }
}

/// Draws `p.per_input` samples of every head row of `kind`:
/// `head` `[rows, width]` → `out` `[rows · per_input, D]` (z-scored units).
/// Sample `i` belongs to row `i / per_input`, as on the GPU.
pub fn sample_rows(kind: HeadKind, head: &[f32], p: &SampleParams, out: &mut [f32]) {
    sample_rows_from(kind, head, p, 0, out)
}

/// [`sample_rows`] for rows that come after `first` samples of the same
/// run: their draws are the ones the whole run would give them (the RNG
/// counter is the sample's index in the run).
pub fn sample_rows_from(
    kind: HeadKind,
    head: &[f32],
    p: &SampleParams,
    first: usize,
    out: &mut [f32],
) {
    let def = kind.def();
    let width = def.width(p.k, p.d);
    out.par_chunks_mut(p.d).enumerate().for_each(|(i, o)| {
        let row = i / p.per_input;
        def.sample_one(
            &head[row * width..(row + 1) * width],
            p,
            (first + i) as u32,
            o,
        );
    });
}
