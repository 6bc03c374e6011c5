//! The visualizer: the tutorial's four demos (forward, inverse, MDN,
//! playground) trained live on the GPU and drawn with wgpu, in a window
//! (`mdn view`) or offscreen to a PNG (`mdn render`).
//!
//! Data flow, all on the GPU: the trainers' parameter buffers feed a forward
//! pass over a grid of inputs ([`curves`], whose `density.wgsl` turns head
//! outputs into curve vertices and heat cells) and the mixture sampler,
//! whose `STORAGE | VERTEX` output is the sampled points' instance buffer
//! ([`renderer`]). The host reads back only the loss, a few times a second.
//! Where the only adapter is a software rasteriser the nets train on the CPU
//! instead ([`net_trainer`]), and their parameters are uploaded into that
//! same GPU buffer after each frame's steps.

pub mod app;
pub mod curves;
pub mod egui_pass;
pub mod hud;
pub mod net;
pub mod net_trainer;
pub mod offscreen;
pub mod overlay;
pub mod owners;
pub mod plot;
pub mod presets;
pub mod renderer;
pub mod scene;
pub mod settings;
pub mod setup;
pub mod stroke;

pub use app::{ViewOptions, ViewReport};
pub use net::VizGpu;
pub use offscreen::{RenderOptions, Rendered, render};
pub use plot::{PixelRect, PlotView, Span};
pub use scene::{DrawnSamples, Gap, PlotColumns, SceneState};
pub use settings::{Layers, Scene, Settings, Status};

/// Colours in gamma space (the targets are non-sRGB, as egui expects),
/// chosen so data, MLP and MDN never look alike.
pub mod colors {
    pub const BACKGROUND: [f32; 4] = [0.086, 0.094, 0.114, 1.0];
    pub const GRID: [f32; 4] = [1.0, 1.0, 1.0, 0.07];
    pub const AXIS: [f32; 4] = [0.55, 0.57, 0.62, 1.0];
    pub const TEXT: [f32; 4] = [0.85, 0.86, 0.89, 1.0];
    pub const LEGEND_BG: [f32; 4] = [0.05, 0.055, 0.07, 0.82];
    /// Data: muted blue-grey.
    pub const DATA: [f32; 4] = [0.55, 0.65, 0.82, 0.75];
    /// MLP: orange.
    pub const MLP: [f32; 4] = [1.0, 0.52, 0.12, 1.0];
    /// MDN samples: green.
    pub const SAMPLES: [f32; 4] = [0.25, 0.88, 0.45, 0.55];
    /// The MDN's mean curve: white, dashed in the legend's words only.
    pub const MDN_MEAN: [f32; 4] = [0.96, 0.96, 0.96, 0.95];
    /// The MDN's mode curve: red.
    pub const MDN_MODE: [f32; 4] = [1.0, 0.32, 0.32, 0.95];
    /// The gap-to-optimum meter's bar: blue, unlike data, MLP and samples.
    pub const GAP: [f32; 4] = [0.30, 0.55, 1.0, 1.0];
    /// Middle of the heatmap's ramp (purple → magenta → gold).
    pub const HEAT: [f32; 4] = [0.85, 0.25, 0.55, 0.85];
    /// Mixture components: the means' curves and the π panel.
    pub const COMPONENTS: [[f32; 4]; 10] = [
        [0.98, 0.85, 0.30, 1.0],
        [0.35, 0.75, 1.0, 1.0],
        [0.98, 0.45, 0.70, 1.0],
        [0.72, 0.55, 1.0, 1.0],
        [0.40, 0.95, 0.95, 1.0],
        [0.95, 0.95, 0.95, 1.0],
        [0.80, 0.85, 0.30, 1.0],
        [1.0, 0.65, 0.55, 1.0],
        [0.55, 0.60, 1.0, 1.0],
        [0.75, 0.75, 0.75, 1.0],
    ];

    pub fn component(k: usize) -> [f32; 4] {
        COMPONENTS[k % COMPONENTS.len()]
    }

    pub fn clear() -> wgpu::Color {
        wgpu::Color {
            r: BACKGROUND[0] as f64,
            g: BACKGROUND[1] as f64,
            b: BACKGROUND[2] as f64,
            a: 1.0,
        }
    }
}
