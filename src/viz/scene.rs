//! A scene's state: its data, the networks training on it (on the GPU), the
//! buffers the renderer draws from, and the HUD's numbers. The window and
//! the offscreen renderer drive it the same way: `train`, now and then
//! `read_loss`, then `encode` and `plots` each frame.
//!
//! Readbacks: `read_loss` (the trainer's loss, a few times a second) and,
//! when the data or learning rate changes, the parameters (to carry them
//! into the rebuilt trainer). The curves, density and samples never leave
//! the GPU.

use std::sync::Arc;

use super::net_trainer::NetTrainer;
use crate::data::Dataset;
use crate::data::normalize::Normalizer;
use crate::data::toy::{ToyProblem, toy_dataset};
use crate::device::DeviceChoice;
use crate::error::{MdnError, Result};
use crate::gpu::Kernels;
use crate::gpu::context::GpuContext;
use crate::gpu::sampler::GpuSampler;
use crate::model::ModelSpec;
use crate::model::init::init_params;
use crate::train::{LrSchedule, TrainConfig, Trainer};

use super::colors;
use super::curves::{GridCurves, VizKernels};
use super::plot::{PixelRect, PlotView, Span};
use super::renderer::{Draw, FIELD_PI, FIELD_Y, OPAQUE, PlotDraws};

/// The four demos of the tutorial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scene {
    /// Toy data x → y and an MLP trained with MSE.
    Forward,
    /// The same data with the axes swapped: the MLP draws the conditional
    /// mean through empty space.
    Inverse,
    /// A mixture density network on the inverse problem.
    Mdn,
    /// Points drawn with the mouse; an MLP and an MDN side by side.
    Playground,
}

impl Scene {
    pub const ALL: [Scene; 4] = [
        Scene::Forward,
        Scene::Inverse,
        Scene::Mdn,
        Scene::Playground,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scene::Forward => "forward",
            Scene::Inverse => "inverse",
            Scene::Mdn => "mdn",
            Scene::Playground => "playground",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Scene::Forward => "Forward problem: y = f(x)",
            Scene::Inverse => "Inverse problem: x = f^-1(y)",
            Scene::Mdn => "MDN on the inverse problem",
            Scene::Playground => "Playground: MLP vs MDN",
        }
    }

    pub fn has_mlp(self) -> bool {
        !matches!(self, Scene::Mdn)
    }

    pub fn has_mdn(self) -> bool {
        matches!(self, Scene::Mdn | Scene::Playground)
    }
}

/// What is drawn; the mixture layers only where there is a mixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layers {
    pub data: bool,
    pub samples: bool,
    pub density: bool,
    pub means: bool,
    pub pi_panel: bool,
}

impl Default for Layers {
    fn default() -> Self {
        Layers {
            data: true,
            samples: true,
            density: false,
            means: false,
            pi_panel: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Mixture components (1–10 in the HUD).
    pub k: usize,
    pub hidden: Vec<usize>,
    pub lr: f64,
    /// Minibatch rows (at most the data's).
    pub batch: usize,
    /// Points sampled from the mixture each frame.
    pub samples: usize,
    pub seed: u64,
    /// Rows of toy data in the toy scenes.
    pub toy_points: usize,
    /// Stop training once the loss stops improving.
    pub stop_when_converged: bool,
    pub layers: Layers,
    /// Where the nets train: `auto` is the GPU unless the adapter is a
    /// software rasteriser (then the CPU; drawing stays on the adapter).
    pub device: DeviceChoice,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            k: 5,
            hidden: vec![24, 24],
            lr: 1e-2,
            batch: 256,
            samples: 10_000,
            seed: 0,
            toy_points: 1000,
            stop_when_converged: true,
            layers: Layers::default(),
            device: DeviceChoice::Auto,
        }
    }
}

pub const MAX_K: usize = 10;
/// The playground trains once it has this many points.
pub const MIN_POINTS: usize = 5;
/// Inputs of the curve forward pass, and of the density grid.
const CURVE_COLS: usize = 256;
const DENSITY_COLS: usize = 192;
const DENSITY_ROWS: usize = 160;
/// Inputs of the sampler's forward pass at most.
const SAMPLE_ROWS: usize = 1000;
/// Convergence: the best loss over the last `CONVERGE_WINDOW` steps beats
/// the best before them by less than `CONVERGE_TOL · (1 + |loss|)`.
const CONVERGE_WINDOW: usize = 1500;
const CONVERGE_TOL: f32 = 1e-3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ready,
    Training,
    Converged,
    Diverged,
    DrawPoints,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ready => "Ready",
            Status::Training => "Training",
            Status::Converged => "Converged",
            Status::Diverged => "Diverged",
            Status::DrawPoints => "Draw points",
        }
    }
}

/// The device objects every scene shares.
#[derive(Clone)]
pub struct VizGpu {
    pub ctx: Arc<GpuContext>,
    pub kernels: Arc<Kernels>,
    pub viz: Arc<VizKernels>,
}

impl VizGpu {
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self> {
        let kernels = Arc::new(Kernels::new(&ctx)?);
        let viz = Arc::new(VizKernels::new(&ctx)?);
        Ok(VizGpu { ctx, kernels, viz })
    }
}

/// One network training on the scene's data.
pub struct Net {
    pub spec: ModelSpec,
    trainer: NetTrainer,
    curves: GridCurves,
    /// Steps of the trainers this net had before the current one (a
    /// trainer is rebuilt when the data or the learning rate changes).
    steps_before: usize,
    /// The last mean training loss, in the data's units.
    pub loss: Option<f32>,
    /// (step, loss in the data's units) at every reading.
    pub history: Vec<(usize, f32)>,
    z_history: Vec<(usize, f32)>,
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

    /// Reads back the live parameters.
    pub fn params(&mut self) -> Result<Vec<f32>> {
        self.trainer.params()
    }

    /// Reads back the curve vertices (x, y, π, σ) (tests and debugging).
    pub fn read_curve(&self) -> Result<Vec<[f32; 4]>> {
        self.curves.read_verts()
    }

    /// Reads back the heat cells `[rows, cols]` (tests and debugging).
    pub fn read_heat(&self) -> Result<Vec<f32>> {
        self.curves.read_heat()
    }

    /// The grid the curves and heat cells were computed on.
    pub fn curve_info(&self) -> &super::curves::CurveInfo {
        self.curves.info()
    }
}

pub struct SceneState {
    gpu: VizGpu,
    pub scene: Scene,
    settings: Settings,
    /// Original units; one input column, one target column.
    data: Dataset,
    input_norm: Normalizer,
    target_norm: Normalizer,
    /// The plotted rectangle in data units.
    pub view_x: Span,
    pub view_y: Span,
    points: wgpu::Buffer,
    points_capacity: usize,
    pub mlp: Option<Net>,
    pub mdn: Option<Net>,
    sampler: Option<GpuSampler>,
    sample_inputs: Span,
    pub playing: bool,
    pub status: Status,
    /// The parameters changed since the curves and samples were computed.
    fresh: bool,
    /// The playground's points changed since the trainers were built.
    data_dirty: bool,
    frame: u32,
}

/// Where a scene is drawn: the main plot, and the π panel below it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SceneLayout {
    pub main: PlotView,
    pub pi: Option<PlotView>,
}

impl SceneState {
    /// A scene on toy data, or on `points` (original units, one input and
    /// one target column) for the playground; `None` gives an empty
    /// playground.
    pub fn new(
        gpu: &VizGpu,
        scene: Scene,
        settings: Settings,
        points: Option<Dataset>,
    ) -> Result<Self> {
        let data = match (scene, points) {
            (_, Some(d)) => {
                if d.in_dim != 1 || d.out_dim != 1 {
                    return Err(MdnError::Data(format!(
                        "the visualizer plots one input column against one target column; got {} and {}",
                        d.in_dim, d.out_dim
                    )));
                }
                d
            }
            (Scene::Forward, None) => toy_dataset(
                ToyProblem::Forward,
                settings.toy_points.max(1),
                settings.seed,
            ),
            (Scene::Inverse | Scene::Mdn, None) => toy_dataset(
                ToyProblem::Inverse,
                settings.toy_points.max(1),
                settings.seed,
            ),
            (Scene::Playground, None) => empty_canvas(),
        };
        let points = points_buffer(&gpu.ctx, 1024);
        let mut state = SceneState {
            gpu: gpu.clone(),
            scene,
            settings,
            input_norm: Normalizer::identity(1),
            target_norm: Normalizer::identity(1),
            view_x: Span::new(0.0, 1.0),
            view_y: Span::new(0.0, 1.0),
            data,
            points,
            points_capacity: 1024,
            mlp: None,
            mdn: None,
            sampler: None,
            sample_inputs: Span::new(0.0, 1.0),
            playing: false,
            status: Status::Ready,
            fresh: true,
            data_dirty: false,
            frame: 0,
        };
        state.rebuild(false)?;
        Ok(state)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn data(&self) -> &Dataset {
        &self.data
    }

    /// The z-scoring of inputs and targets the nets train with.
    pub fn normalizers(&self) -> (&Normalizer, &Normalizer) {
        (&self.input_norm, &self.target_norm)
    }

    pub fn point_count(&self) -> usize {
        self.data.len()
    }

    pub fn nets(&self) -> impl Iterator<Item = &Net> {
        self.mlp.iter().chain(self.mdn.iter())
    }

    fn nets_mut(&mut self) -> impl Iterator<Item = &mut Net> {
        self.mlp.iter_mut().chain(self.mdn.iter_mut())
    }

    /// Training steps so far (the nets train in lockstep).
    pub fn steps(&self) -> usize {
        self.nets().map(Net::steps).max().unwrap_or(0)
    }

    /// Passes over the data so far.
    pub fn epoch(&self) -> usize {
        let rows = self.data.len().max(1);
        let batch = rows.min(self.settings.batch.max(1));
        self.steps() * batch / rows
    }

    /// Where the nets train ("cpu (2 threads)" or the adapter's name);
    /// `None` before there is a net (an empty playground).
    pub fn trainer_device(&self) -> Option<String> {
        self.nets().next().map(|n| n.trainer.device_name())
    }

    pub fn can_train(&self) -> bool {
        (self.mlp.is_some() || self.mdn.is_some())
            && !matches!(self.status, Status::Diverged | Status::DrawPoints)
    }

    /// Starts or stops training; starting again after convergence goes on.
    pub fn set_playing(&mut self, playing: bool) {
        self.playing = playing && self.can_train();
        if self.playing {
            self.status = Status::Training;
            for n in self.nets_mut() {
                n.converged = false;
                n.z_history.clear();
            }
        } else if self.status == Status::Training {
            self.status = Status::Ready;
        }
    }

    /// Fresh parameters, step 0.
    pub fn reset(&mut self) -> Result<()> {
        self.playing = false;
        self.rebuild(false)
    }

    /// Applies new settings, rebuilding only what they touch.
    pub fn apply_settings(&mut self, settings: Settings) -> Result<()> {
        let old = std::mem::replace(&mut self.settings, settings);
        let s = &self.settings;
        if old.k != s.k || old.hidden != s.hidden || old.seed != s.seed {
            let playing = self.playing;
            self.rebuild(false)?;
            self.set_playing(playing);
        } else if old.lr != s.lr || old.batch != s.batch {
            self.rebuild(true)?;
        } else if old.samples != s.samples {
            self.build_sampler()?;
        }
        Ok(())
    }

    /// Normalisation, view and trainers from the current data. `carry`
    /// keeps the current parameters and step count (a readback); otherwise
    /// the nets start afresh.
    fn rebuild(&mut self, carry: bool) -> Result<()> {
        let playground = self.scene == Scene::Playground;
        let rows = self.data.len();
        if playground {
            // Fixed: the canvas is the unit square, and parameters keep
            // their meaning while points come and go.
            let canvas = Normalizer {
                mean: vec![0.5],
                std: vec![0.25],
            };
            self.input_norm = canvas.clone();
            self.target_norm = canvas;
            self.view_x = Span::new(0.0, 1.0);
            self.view_y = Span::new(0.0, 1.0);
        } else {
            self.input_norm = Normalizer::fit(&self.data.inputs, 1)?;
            self.target_norm = Normalizer::fit(&self.data.targets, 1)?;
            self.view_x = Span::of(self.data.inputs.iter().copied(), 0.06).unwrap_or(self.view_x);
            self.view_y = Span::of(self.data.targets.iter().copied(), 0.08).unwrap_or(self.view_y);
        }
        self.upload_points();
        let carried = |net: &mut Option<Net>| -> Result<Option<(Vec<f32>, usize)>> {
            match net {
                Some(n) if carry => Ok(Some((n.trainer.params()?, n.steps()))),
                _ => Ok(None),
            }
        };
        let mlp_carry = carried(&mut self.mlp)?;
        let mdn_carry = carried(&mut self.mdn)?;
        self.mlp = None;
        self.mdn = None;
        self.sampler = None;
        self.fresh = true;
        self.data_dirty = false;
        if rows < if playground { MIN_POINTS } else { 1 } {
            self.playing = false;
            self.status = Status::DrawPoints;
            return Ok(());
        }
        let s = &self.settings;
        if self.scene.has_mlp() {
            let spec = ModelSpec::mlp(1, 1, s.hidden.clone())?;
            self.mlp = Some(self.make_net(spec, mlp_carry)?);
        }
        if self.scene.has_mdn() {
            let spec = ModelSpec::mixture(1, 1, s.hidden.clone(), s.k.clamp(1, MAX_K))?;
            self.mdn = Some(self.make_net(spec, mdn_carry)?);
        }
        self.build_sampler()?;
        self.status = if self.playing {
            Status::Training
        } else {
            Status::Ready
        };
        Ok(())
    }

    fn make_net(&self, spec: ModelSpec, carry: Option<(Vec<f32>, usize)>) -> Result<Net> {
        let s = &self.settings;
        let normalized = Dataset {
            inputs: self.input_norm.apply(&self.data.inputs),
            targets: self.target_norm.apply(&self.data.targets),
            ..self.data.clone()
        };
        let rows = normalized.len();
        let config = TrainConfig {
            steps: usize::MAX,
            batch: rows.min(s.batch.max(1)),
            lr: s.lr,
            schedule: LrSchedule::Constant,
            seed: s.seed,
        };
        let (params, steps_before) = carry
            .filter(|(p, _)| p.len() == spec.layout().len)
            .unwrap_or_else(|| (init_params(&spec, s.seed), 0));
        let g = &self.gpu;
        let trainer = NetTrainer::new(
            &g.ctx,
            &g.kernels,
            s.device.trains_on_cpu(&g.ctx.info),
            &spec,
            &normalized,
            params,
            &config,
        )?;
        let (cols, heat_rows) = if spec.is_mixture() {
            (DENSITY_COLS, DENSITY_ROWS)
        } else {
            (CURVE_COLS, 1)
        };
        let mut curves = GridCurves::new(
            Arc::clone(&g.ctx),
            Arc::clone(&g.kernels),
            Arc::clone(&g.viz),
            &spec,
            trainer.params_buffer(),
            cols,
            heat_rows,
        )?;
        curves.set_range(
            self.input_span(),
            self.view_y,
            self.norm_of(&self.input_norm),
            self.norm_of(&self.target_norm),
        );
        Ok(Net {
            spec,
            trainer,
            curves,
            steps_before,
            loss: None,
            history: Vec::new(),
            z_history: Vec::new(),
            converged: false,
            diverged: false,
        })
    }

    fn norm_of(&self, n: &Normalizer) -> (f32, f32) {
        (n.mean[0], n.std[0])
    }

    /// The inputs the curves and samples cover: those of the data.
    fn input_span(&self) -> Span {
        Span::of(self.data.inputs.iter().copied(), 0.0)
            .map(|s| {
                if self.scene == Scene::Playground {
                    Span::new(s.lo.max(0.0), s.hi.min(1.0))
                } else {
                    s
                }
            })
            .unwrap_or(self.view_x)
    }

    fn build_sampler(&mut self) -> Result<()> {
        self.sampler = None;
        let Some(mdn) = &self.mdn else {
            return Ok(());
        };
        // The forward pass is the expensive part of sampling: at most
        // SAMPLE_ROWS inputs, several draws each (a pixel column or so
        // apart, so the draws show no stripes).
        let total = self.settings.samples.max(1);
        let per_input = total.div_ceil(SAMPLE_ROWS);
        let rows = total.div_ceil(per_input);
        let g = &self.gpu;
        let sampler = GpuSampler::new(
            Arc::clone(&g.ctx),
            Arc::clone(&g.kernels),
            &mdn.spec,
            mdn.trainer.params_buffer(),
            rows,
            per_input,
        )?;
        let span = self.input_span();
        let (mean, std) = self.norm_of(&self.input_norm);
        let z: Vec<f32> = (0..rows)
            .map(|i| (span.lerp((i as f32 + 0.5) / rows as f32) - mean) / std)
            .collect();
        sampler.set_inputs(&z)?;
        self.sample_inputs = span;
        self.sampler = Some(sampler);
        self.fresh = true;
        Ok(())
    }

    fn upload_points(&mut self) {
        let n = self.data.len();
        if n > self.points_capacity {
            self.points_capacity = n.next_power_of_two();
            self.points = points_buffer(&self.gpu.ctx, self.points_capacity);
        }
        let xy: Vec<[f32; 2]> = (0..n)
            .map(|i| [self.data.inputs[i], self.data.targets[i]])
            .collect();
        if !xy.is_empty() {
            self.gpu
                .ctx
                .queue
                .write_buffer(&self.points, 0, bytemuck::cast_slice(&xy));
        }
    }

    /// Runs `steps` more training steps on every net, without waiting.
    pub fn train(&mut self, steps: usize) -> Result<()> {
        if !self.can_train() || steps == 0 {
            return Ok(());
        }
        for net in self.nets_mut() {
            net.trainer.run(steps)?;
        }
        self.fresh = true;
        Ok(())
    }

    /// Reads the loss accumulated since the last reading (waits for the
    /// GPU), checkpoints good parameters, restores them after a
    /// divergence, and updates the status.
    pub fn read_loss(&mut self) -> Result<()> {
        let target_norm = self.target_norm.clone();
        let stop = self.settings.stop_when_converged;
        let mut any = false;
        for net in self.nets_mut() {
            let acc = net.trainer.take_loss()?;
            if acc.count == 0 && acc.nonfinite == 0 {
                continue;
            }
            any = true;
            let z = acc.mean();
            if acc.nonfinite > 0 || !z.is_finite() {
                net.trainer.restore_checkpoint()?;
                net.diverged = true;
                continue;
            }
            net.trainer.checkpoint()?;
            let loss = net.spec.head_def().loss_to_original(z as f64, &target_norm) as f32;
            let step = net.steps();
            net.loss = Some(loss);
            net.history.push((step, loss));
            net.z_history.push((step, z));
            net.converged = plateaued(&net.z_history, step);
        }
        if !any {
            return Ok(());
        }
        if self.nets().any(|n| n.diverged) {
            self.status = Status::Diverged;
            self.playing = false;
            self.fresh = true;
        } else if self.nets().all(|n| n.converged) {
            self.status = Status::Converged;
            if stop {
                self.playing = false;
            }
        } else if self.playing {
            self.status = Status::Training;
        }
        Ok(())
    }

    /// Records the curve, density and sampling passes if the parameters
    /// changed since the last call.
    pub fn encode(&mut self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        if !self.fresh {
            return Ok(());
        }
        self.fresh = false;
        self.frame = self.frame.wrapping_add(1);
        if let Some(s) = &self.sampler {
            // A new seed per update: the cloud follows the training
            // instead of sliding one fixed set of draws around.
            s.set_options(self.frame.wrapping_mul(0x9e37_79b9), 1.0)?;
        }
        let heat = self.settings.layers.density;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("scene curves"),
            timestamp_writes: None,
        });
        for net in self.nets() {
            net.curves.encode(&mut pass, heat);
        }
        if let Some(s) = &self.sampler {
            s.encode(&mut pass);
        }
        Ok(())
    }

    /// Where the plots go inside `area` (pixels of a target of size
    /// `target`); `scale` is pixels per point, for the margins.
    pub fn layout(&self, area: PixelRect, target: (u32, u32), scale: f32) -> SceneLayout {
        let inner = area.inset(46.0 * scale, 20.0 * scale, 16.0 * scale, 42.0 * scale);
        let pi_panel = self.settings.layers.pi_panel && self.mdn.is_some();
        let (main_rect, pi_rect) = if pi_panel {
            let h = inner.height();
            let pi_h = (h * 0.22).max(40.0 * scale);
            let gap = 34.0 * scale;
            let main = PixelRect::new(inner.x0, inner.y0, inner.x1, inner.y1 - pi_h - gap);
            let pi = PixelRect::new(inner.x0, inner.y1 - pi_h, inner.x1, inner.y1);
            (main, Some(pi))
        } else {
            (inner, None)
        };
        SceneLayout {
            main: PlotView {
                x: self.view_x,
                y: self.view_y,
                rect: main_rect,
                target,
            },
            pi: pi_rect.map(|rect| PlotView {
                x: self.view_x,
                y: Span::new(0.0, 1.0),
                rect,
                target,
            }),
        }
    }

    /// Everything to draw, in order: density, samples, data, curves.
    pub fn plots(&self, layout: &SceneLayout, scale: f32) -> Vec<PlotDraws<'_>> {
        let layers = self.settings.layers;
        let mut main = Vec::new();
        let mut pi = Vec::new();
        if let Some(mdn) = &self.mdn
            && layers.density
        {
            let info = mdn.curves.info();
            main.push(Draw::Heat {
                bind_group: &mdn.curves.heat_bind,
                cols: mdn.curves.cols() as u32,
                rows: mdn.curves.heat_rows() as u32,
                rect: [info.in_lo, info.in_hi, info.t_lo, info.t_hi],
                color: colors::HEAT,
            });
        }
        if let Some(s) = &self.sampler
            && layers.samples
        {
            main.push(Draw::Samples {
                buffer: &s.samples,
                count: (s.rows() * s.per_input()) as u32,
                rows: s.rows() as u32,
                per_input: s.per_input() as u32,
                inputs: self.sample_inputs,
                target_norm: self.norm_of(&self.target_norm),
                color: colors::SAMPLES,
                radius: 1.6 * scale,
            });
        }
        // The data on top of the sample cloud, so both stay visible.
        if layers.data {
            main.push(Draw::Points {
                buffer: &self.points,
                count: self.data.len() as u32,
                color: colors::DATA,
                radius: 2.2 * scale,
            });
        }
        if let Some(mdn) = &self.mdn {
            let cols = mdn.curves.cols() as u32;
            for k in 0..mdn.spec.k() as u32 {
                let color = colors::component(k as usize);
                if layers.means {
                    main.push(Draw::Strip {
                        buffer: &mdn.curves.verts,
                        first: k * cols,
                        count: cols,
                        y_field: FIELD_Y,
                        alpha_field: FIELD_PI,
                        color,
                        half_width: 1.6 * scale,
                    });
                }
                if layout.pi.is_some() {
                    pi.push(Draw::Strip {
                        buffer: &mdn.curves.verts,
                        first: k * cols,
                        count: cols,
                        y_field: FIELD_PI,
                        alpha_field: OPAQUE,
                        color,
                        half_width: 1.3 * scale,
                    });
                }
            }
        }
        if let Some(mlp) = &self.mlp {
            main.push(Draw::Strip {
                buffer: &mlp.curves.verts,
                first: 0,
                count: mlp.curves.cols() as u32,
                y_field: FIELD_Y,
                alpha_field: OPAQUE,
                color: colors::MLP,
                half_width: 2.0 * scale,
            });
        }
        let mut out = vec![PlotDraws {
            view: layout.main,
            grid_color: colors::GRID,
            draws: main,
        }];
        if let Some(view) = layout.pi {
            out.push(PlotDraws {
                view,
                grid_color: colors::GRID,
                draws: pi,
            });
        }
        out
    }

    /// (label, colour, drawn as a line) for each thing on the plot.
    pub fn legend(&self) -> Vec<(&'static str, [f32; 4], bool)> {
        let layers = self.settings.layers;
        let mut items = Vec::new();
        if layers.data {
            items.push(("Data", colors::DATA, false));
        }
        if self.scene.has_mlp() {
            items.push(("MLP", colors::MLP, true));
        }
        if self.scene.has_mdn() {
            if layers.samples {
                items.push(("MDN samples", colors::SAMPLES, false));
            }
            if layers.means {
                items.push((
                    "MDN means \u{03bc}_k (opacity \u{03c0}_k)",
                    colors::component(0),
                    true,
                ));
            }
            if layers.density {
                items.push(("MDN density p(t|x)", colors::HEAT, false));
            }
        }
        items
    }

    /// Whether the legend goes in the lower-right corner, where the inverse
    /// problem has no data (elsewhere the upper left is empty).
    pub fn legend_low_right(&self) -> bool {
        matches!(self.scene, Scene::Inverse | Scene::Mdn)
    }

    /// Axis titles (horizontal, vertical).
    pub fn axis_names(&self) -> (String, String) {
        let name = |v: &[String]| v.first().cloned().unwrap_or_default();
        let (i, t) = (name(&self.data.input_names), name(&self.data.target_names));
        match self.scene {
            Scene::Forward | Scene::Playground => (i, t),
            Scene::Inverse | Scene::Mdn => (format!("{i} (input)"), format!("{t} (target)")),
        }
    }

    /// "MSE 0.0123", "NLL -1.234", both in the playground, "-" before
    /// the first reading.
    pub fn loss_text(&self) -> String {
        let parts: Vec<String> = self
            .nets()
            .map(|n| match n.loss {
                Some(l) => format!("{} {l:.4}", n.loss_name()),
                None => format!("{} -", n.loss_name()),
            })
            .collect();
        if parts.is_empty() {
            "Loss -".into()
        } else {
            parts.join("  ")
        }
    }

    // ---- the playground's canvas ---------------------------------------

    /// Adds points (canvas units); they train after `sync_data`.
    pub fn add_points(&mut self, pts: &[(f32, f32)]) {
        if pts.is_empty() {
            return;
        }
        let d = &mut self.data;
        for &(x, y) in pts {
            if x.is_finite() && y.is_finite() {
                d.inputs.push(x.clamp(0.0, 1.0));
                d.targets.push(y.clamp(0.0, 1.0));
            }
        }
        self.data_dirty = true;
        self.upload_points();
    }

    /// Removes the points within `radius` of (x, y) (canvas units,
    /// measured with the axes scaled by `aspect` = width/height so the
    /// eraser is round on screen).
    pub fn erase(&mut self, x: f32, y: f32, radius: f32, aspect: f32) {
        let d = &mut self.data;
        let before = d.inputs.len();
        let mut keep_in = Vec::with_capacity(before);
        let mut keep_t = Vec::with_capacity(before);
        for (&a, &b) in d.inputs.iter().zip(&d.targets) {
            let dx = (a - x) * aspect;
            if dx * dx + (b - y) * (b - y) > radius * radius {
                keep_in.push(a);
                keep_t.push(b);
            }
        }
        if keep_in.len() != before {
            d.inputs = keep_in;
            d.targets = keep_t;
            self.data_dirty = true;
            self.upload_points();
        }
    }

    pub fn clear_points(&mut self) -> Result<()> {
        self.data = empty_canvas();
        self.playing = false;
        self.rebuild(false)
    }

    pub fn data_dirty(&self) -> bool {
        self.data_dirty
    }

    /// Rebuilds the trainers on the edited points, keeping the parameters.
    pub fn sync_data(&mut self) -> Result<()> {
        if !self.data_dirty {
            return Ok(());
        }
        let was_waiting = self.status == Status::DrawPoints;
        let playing = self.playing;
        self.rebuild(true)?;
        if was_waiting && self.status == Status::Ready {
            // Enough points now: start on our own, like the tutorial.
            self.set_playing(true);
        } else if playing {
            self.set_playing(true);
        }
        Ok(())
    }
}

fn empty_canvas() -> Dataset {
    Dataset {
        inputs: Vec::new(),
        targets: Vec::new(),
        in_dim: 1,
        out_dim: 1,
        input_names: vec!["x".into()],
        target_names: vec!["y".into()],
    }
}

fn points_buffer(ctx: &GpuContext, points: usize) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("data points"),
        size: (points.max(1) * 8) as u64,
        usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// Whether the loss has stopped improving (see [`CONVERGE_WINDOW`]).
fn plateaued(history: &[(usize, f32)], now: usize) -> bool {
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
