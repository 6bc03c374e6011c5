//! A scene's state: its data, the networks training on it (on the GPU), the
//! buffers the renderer draws from, and the HUD's numbers. The window and
//! the offscreen renderer drive it the same way: `train`, now and then
//! `read_loss`, then `encode` and `plots` each frame.
//!
//! Readbacks: `read_loss` (the trainer's loss, a few times a second) and,
//! when the data or learning rate changes, the parameters (to carry them
//! into the rebuilt trainer). The curves, density and samples never leave
//! the GPU.

mod canvas;
mod columns;
mod draw;

pub use columns::{MAX_CONDITIONED_ROWS, PlotColumns, conditioned_rows};

use std::sync::Arc;

use super::net::{Net, VizGpu, plateaued};
use super::net_trainer::NetTrainer;
use super::owners::{DataOwners, MAX_OWNED_ROWS};
use super::settings::{MAX_K, MIN_POINTS, Scene, Settings, Status};
use crate::data::Dataset;
use crate::data::normalize::Normalizer;
use crate::data::toy::{ToyProblem, optimum, toy_dataset};
use crate::error::{MdnError, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::sampler::GpuSampler;
use crate::head::{HeadKind, Metric};
use crate::model::init::init_params;
use crate::model::{Model, ModelSpec};
use crate::train::{LrSchedule, TrainConfig, Trainer};

use super::curves::GridCurves;
use super::plot::{PlotView, Span};

/// Inputs of the curve forward pass, and of the density grid.
const CURVE_COLS: usize = 256;
const DENSITY_COLS: usize = 192;
const DENSITY_ROWS: usize = 160;
/// Inputs of the sampler's forward pass at most.
const SAMPLE_ROWS: usize = 1000;
/// Rows the dead-component check looks at, at most.
const USAGE_ROWS: usize = 4096;
/// Seed offset of the toy scenes' test rows.
const TEST_SEED: u64 = 0x7e57_0000;
pub struct SceneState {
    gpu: VizGpu,
    pub scene: Scene,
    settings: Settings,
    /// Original units; one input column and one target column, except in
    /// the data scene, which may hold several of each.
    data: Dataset,
    /// The two columns of `data` the plot shows.
    plot: PlotColumns,
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
    sample_inputs: SampleInputs,
    /// The seed of the last sampling pass.
    sample_seed: u32,
    pub playing: bool,
    pub status: Status,
    /// The parameters changed since the curves and samples were computed.
    fresh: bool,
    /// The playground's points changed since the trainers were built.
    data_dirty: bool,
    frame: u32,
    /// The data scene's loaded model, drawn instead of a net trained live.
    model: Option<Model>,
    /// Rows the nets never train on, for the test loss: fresh rows of the
    /// toy problem, or a fifth of the user's data in the data scene.
    test: Option<Dataset>,
    /// The data points' most responsible MDN components (the
    /// `components` layer).
    owners: Option<DataOwners>,
}

/// The gap-to-optimum meter of a toy scene: the test loss of the net that
/// scene is about, against what a perfect model scores on fresh data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gap {
    pub metric: Metric,
    pub test: f64,
    pub optimum: f64,
}

impl Gap {
    /// How far from the optimum, in the loss's units (never below 0: a
    /// finite test set can land a little under it by chance).
    pub fn gap(&self) -> f64 {
        (self.test - self.optimum).max(0.0)
    }

    /// The meter's fill: 1 at the optimum, falling as the gap grows (half
    /// at a gap of 0.1 nats, or at 1× the noise floor for an MSE).
    pub fn fill(&self) -> f32 {
        let scale = match self.metric {
            Metric::Nll => 0.1,
            Metric::Mse => self.optimum,
        };
        (0.5f64.powf(self.gap() / scale)) as f32
    }
}

/// Where the sampler's inputs are: an even grid over the plotted inputs
/// (one input column), or data rows (several input or target columns).
enum SampleInputs {
    Grid(Span),
    Rows {
        /// The data rows sampled, in sampler order.
        rows: Vec<usize>,
        /// `[rows · per_input]` f32: each sample's plotted input in data
        /// units, `VERTEX`; written once, drawn as the samples' x.
        xs: wgpu::Buffer,
    },
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
        Self::build(gpu, scene, settings, points, None, PlotColumns::default())
    }

    fn build(
        gpu: &VizGpu,
        scene: Scene,
        settings: Settings,
        points: Option<Dataset>,
        model: Option<Model>,
        plot: PlotColumns,
    ) -> Result<Self> {
        let data = match (scene, points) {
            (Scene::Data, Some(d)) => {
                plot.check(&d)?;
                d
            }
            (_, Some(d)) => {
                if d.in_dim != 1 || d.out_dim != 1 {
                    return Err(MdnError::Data(format!(
                        "the visualizer plots one input column against one target column; got {} and {}",
                        d.in_dim, d.out_dim
                    )));
                }
                d
            }
            (s, None) => match s.toy_problem() {
                Some(p) => toy_dataset(p, settings.toy_points.max(1), settings.seed),
                None if s == Scene::Playground => empty_canvas(),
                None => {
                    return Err(MdnError::Config(
                        "the data scene needs data: `--data F.csv`".into(),
                    ));
                }
            },
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
            plot,
            points,
            points_capacity: 1024,
            mlp: None,
            mdn: None,
            sampler: None,
            sample_inputs: SampleInputs::Grid(Span::new(0.0, 1.0)),
            sample_seed: 0,
            playing: false,
            status: Status::Ready,
            fresh: true,
            data_dirty: false,
            frame: 0,
            model,
            test: None,
            owners: None,
        };
        state.rebuild(false)?;
        Ok(state)
    }

    /// The data scene: the user's `data` with their `model` drawn over it,
    /// or with an MDN trained live on every input and target column. The
    /// plot shows the `plot` columns; with more than one input or target
    /// column the samples are drawn conditioned on the data's rows.
    pub fn with_model(
        gpu: &VizGpu,
        settings: Settings,
        data: Dataset,
        model: Option<Model>,
        plot: PlotColumns,
    ) -> Result<Self> {
        // Said before the model is evaluated on the data, which would fail
        // with a less helpful reason. The head kind is checked by
        // `GridCurves` where curves are drawn.
        if let Some(m) = &model
            && (m.spec.in_dim != data.in_dim || m.spec.out_dim != data.out_dim)
        {
            return Err(MdnError::Config(format!(
                "the model takes {} input and {} target column(s) ({} → {}); the data has {} and {}",
                m.spec.in_dim,
                m.spec.out_dim,
                m.input_names.join(", "),
                m.target_names.join(", "),
                data.in_dim,
                data.out_dim
            )));
        }
        Self::build(gpu, Scene::Data, settings, Some(data), model, plot)
    }

    /// The loaded model the scene draws, if any.
    pub fn model(&self) -> Option<&Model> {
        self.model.as_ref()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn data(&self) -> &Dataset {
        &self.data
    }

    /// The two columns the plot shows.
    pub fn plot_columns(&self) -> PlotColumns {
        self.plot
    }

    /// Whether the samples are drawn conditioned on the data's rows: the
    /// data has more than one input or target column, so no curve over an
    /// x grid describes the model.
    pub fn conditioned(&self) -> bool {
        self.data.in_dim > 1 || self.data.out_dim > 1
    }

    /// Why the x-grid layers (density, means, mean, mode, π panel) are not
    /// drawn, when they are not.
    pub fn grid_layers_note(&self) -> Option<String> {
        if !self.conditioned() || self.nets().next().is_none() {
            return None;
        }
        let d = &self.data;
        let why = if d.in_dim > 1 {
            format!(
                "with {} inputs, the model depends on more than the plotted one",
                d.in_dim
            )
        } else {
            format!(
                "with {} targets, only one-target curves are drawn",
                d.out_dim
            )
        };
        if self.mdn.is_none() {
            return Some(format!(
                "The MLP's curve over x is off: {why}. Its predictions are drawn at each data row's inputs."
            ));
        }
        Some(format!(
            "Curves over x (density, means, mean, mode, \u{03c0}) are off: {why}. Samples are drawn at each data row's inputs."
        ))
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
        self.nets().any(|n| !n.trainer.is_fixed())
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
        // A new seed is new toy data too (the Regenerate button).
        if let Some(p) = self.toy_problem()
            && (old.seed != s.seed || old.toy_points != s.toy_points)
        {
            self.data = toy_dataset(p, s.toy_points.max(1), s.seed);
        }
        let s = &self.settings;
        if old.k != s.k
            || old.hidden != s.hidden
            || old.seed != s.seed
            || old.toy_points != s.toy_points
        {
            let playing = self.playing;
            self.rebuild(false)?;
            self.set_playing(playing);
        } else if old.lr != s.lr || old.batch != s.batch || old.test_percent != s.test_percent {
            self.rebuild(true)?;
        } else if old.samples != s.samples {
            self.build_sampler()?;
        } else if old.temperature != s.temperature {
            self.fresh = true;
        } else if old.layers.components != s.layers.components {
            self.build_owners()?;
        }
        if old.layers != self.settings.layers {
            self.fresh = true;
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
            if let Some(m) = &self.model {
                self.input_norm = m.input_norm.clone();
                self.target_norm = m.target_norm.clone();
            } else {
                self.input_norm = Normalizer::fit(&self.data.inputs, self.data.in_dim)?;
                self.target_norm = Normalizer::fit(&self.data.targets, self.data.out_dim)?;
            }
            let plot = self.plot;
            self.view_x = Span::of(plot.xs(&self.data), 0.06).unwrap_or(self.view_x);
            self.view_y = Span::of(plot.ys(&self.data), 0.08).unwrap_or(self.view_y);
        }
        self.test = self.test_rows();
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
        if let Some(m) = self.model.clone() {
            let loss = m.evaluate(&self.data)?.value as f32;
            let mut net = self.make_net(m.spec.clone(), Some((m.params, 0)))?;
            net.loss = Some(loss);
            let mixture = net.is_mixture();
            if mixture {
                self.mdn = Some(net);
            } else {
                self.mlp = Some(net);
            }
            self.read_held_out(mixture)?;
            self.build_sampler()?;
            self.status = Status::Ready;
            return Ok(());
        }
        let s = &self.settings;
        let (d_in, d_out) = (self.data.in_dim, self.data.out_dim);
        if self.scene.has_mlp() {
            let spec = ModelSpec::mlp(d_in, d_out, s.hidden_for(self.scene))?;
            self.mlp = Some(self.make_net(spec, mlp_carry)?);
        }
        if self.scene.has_mdn() {
            let spec =
                ModelSpec::mixture(d_in, d_out, s.hidden_for(self.scene), s.k.clamp(1, MAX_K))?;
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

    /// The toy problem this scene shows, if it is one.
    pub fn toy_problem(&self) -> Option<ToyProblem> {
        self.scene.toy_problem()
    }

    /// The share of the points held out for testing, in percent: the
    /// setting, else 20 in the data scene and 0 in the playground; none in
    /// the toy scenes (fresh rows) or with a loaded model (nothing trains).
    pub fn test_percent(&self) -> u32 {
        match self.scene {
            Scene::Data if self.model.is_none() => self.settings.test_percent.unwrap_or(20),
            Scene::Playground => self.settings.test_percent.unwrap_or(0),
            _ => 0,
        }
    }

    /// Fresh rows of the toy problem (as many as the training rows, from
    /// another seed); else the test share of the points, evenly spread
    /// (at least ten points first), which the nets then do not train on.
    fn test_rows(&self) -> Option<Dataset> {
        if let Some(p) = self.toy_problem() {
            let n = self.settings.toy_points.max(1);
            return Some(toy_dataset(p, n, self.settings.seed ^ TEST_SEED));
        }
        let pct = self.test_percent();
        (pct > 0 && self.data.len() >= 10).then(|| self.rows_where(|r| is_test_row(r, pct)))
    }

    /// The rows the nets train on: all of the data but its test share.
    fn training_rows(&self) -> Dataset {
        let pct = self.test_percent();
        if self.toy_problem().is_none() && self.test.is_some() {
            return self.rows_where(|r| !is_test_row(r, pct));
        }
        self.data.clone()
    }

    fn rows_where(&self, keep: impl Fn(usize) -> bool) -> Dataset {
        let d = &self.data;
        let rows: Vec<usize> = (0..d.len()).filter(|&r| keep(r)).collect();
        Dataset {
            inputs: rows.iter().flat_map(|&r| d.input_row(r)).copied().collect(),
            targets: rows
                .iter()
                .flat_map(|&r| d.target_row(r))
                .copied()
                .collect(),
            ..d.clone_names()
        }
    }

    /// The test rows, if the scene has them.
    pub fn test_data(&self) -> Option<&Dataset> {
        self.test.as_ref()
    }

    /// The meter of the toy scenes: the MLP's test MSE against the noise
    /// floor (forward, inverse), the MDN's test NLL against the conditional
    /// entropy (MDN scene).
    pub fn gap(&self) -> Option<Gap> {
        let opt = optimum(self.toy_problem()?)?;
        let net = if self.scene == Scene::Mdn {
            self.mdn.as_ref()?
        } else {
            self.mlp.as_ref()?
        };
        let test = net.test_loss()? as f64;
        let metric = net.spec.head_def().metric();
        let optimum = match metric {
            Metric::Nll => opt.nll,
            Metric::Mse => opt.mse,
        };
        Some(Gap {
            metric,
            test,
            optimum,
        })
    }

    fn make_net(&self, spec: ModelSpec, carry: Option<(Vec<f32>, usize)>) -> Result<Net> {
        let s = &self.settings;
        let train = self.training_rows();
        let normalized = Dataset {
            inputs: self.input_norm.apply(&train.inputs),
            targets: self.target_norm.apply(&train.targets),
            ..train
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
        let trainer = if self.model.is_some() {
            NetTrainer::fixed(&g.ctx, params)?
        } else {
            NetTrainer::new(
                &g.ctx,
                &g.kernels,
                s.device.trains_on_cpu(&g.ctx.info),
                &spec,
                &normalized,
                params,
                &config,
            )?
        };
        let (cols, heat_rows) = if spec.is_mixture() {
            (DENSITY_COLS, DENSITY_ROWS)
        } else {
            (CURVE_COLS, 1)
        };
        // Curves over an x grid describe a model of one input and target
        // only; conditioned scenes draw samples alone.
        let curves = if self.conditioned() {
            None
        } else {
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
                self.input_norm_of_plot(),
                self.target_norm_of_plot(),
            );
            Some(curves)
        };
        Ok(Net {
            spec,
            trainer,
            curves,
            steps_before,
            loss: None,
            history: Vec::new(),
            z_history: Vec::new(),
            test_history: Vec::new(),
            dead_components: Vec::new(),
            converged: false,
            diverged: false,
        })
    }

    /// (mean, std) of the plotted input column.
    fn input_norm_of_plot(&self) -> (f32, f32) {
        let (n, c) = (&self.input_norm, self.plot.input);
        (n.mean[c], n.std[c])
    }

    /// (mean, std) of the plotted target column.
    fn target_norm_of_plot(&self) -> (f32, f32) {
        let (n, c) = (&self.target_norm, self.plot.target);
        (n.mean[c], n.std[c])
    }

    /// The inputs the curves and samples cover: those of the data.
    fn input_span(&self) -> Span {
        Span::of(self.plot.xs(&self.data), 0.0)
            .map(|s| {
                if self.scene == Scene::Playground {
                    Span::new(s.lo.max(0.0), s.hi.min(1.0))
                } else {
                    s
                }
            })
            .unwrap_or(self.view_x)
    }

    /// The owners pass over the data, when the layer is on and the MDN
    /// and the data allow it.
    fn build_owners(&mut self) -> Result<()> {
        self.owners = None;
        let Some(mdn) = &self.mdn else {
            return Ok(());
        };
        let rows = self.data.len();
        // One input and target: owners.wgsl reads a 1-D diagonal mixture.
        let drawable = mdn.spec.head_kind() == HeadKind::MixtureDiag && !self.conditioned();
        if !self.settings.layers.components || !drawable || rows == 0 || rows > MAX_OWNED_ROWS {
            return Ok(());
        }
        let g = &self.gpu;
        self.owners = Some(DataOwners::new(
            Arc::clone(&g.ctx),
            Arc::clone(&g.kernels),
            &g.owners,
            &mdn.spec,
            mdn.trainer.params_buffer(),
            &self.input_norm.apply(&self.data.inputs),
            &self.target_norm.apply(&self.data.targets),
        )?);
        self.fresh = true;
        Ok(())
    }

    /// The owners buffer if it covers the points drawn now (between an
    /// edit of the playground and the next rebuild it does not).
    pub(super) fn owners_in_step(&self) -> Option<&wgpu::Buffer> {
        self.owners
            .as_ref()
            .filter(|o| o.rows() == self.data.len())
            .map(|o| &o.owners)
    }

    /// Reads back each data point's most responsible component (tests).
    pub fn read_owners(&self) -> Result<Option<Vec<u32>>> {
        self.owners.as_ref().map(DataOwners::read).transpose()
    }

    fn build_sampler(&mut self) -> Result<()> {
        self.build_owners()?;
        self.sampler = None;
        let mdn = match (&self.mdn, &self.mlp) {
            (Some(n), _) => n,
            // A loaded MLP on several columns has no curve: its
            // predictions at the data rows are drawn instead, one per row,
            // the way samples are (`encode` copies them into place).
            (None, Some(n)) if self.conditioned() => n,
            _ => return Ok(()),
        };
        let g = &self.gpu;
        let total = self.settings.samples.max(1);
        if self.conditioned() {
            // Each sample is drawn from the network at one data row's full
            // input vector, and plotted at that row's plotted input.
            let n = self.data.len();
            let (rows, per_input) = if mdn.is_mixture() {
                conditioned_rows(n, total)
            } else {
                conditioned_rows(n, n.min(MAX_CONDITIONED_ROWS))
            };
            if rows.is_empty() {
                return Ok(());
            }
            let sampler = GpuSampler::new(
                Arc::clone(&g.ctx),
                Arc::clone(&g.kernels),
                &mdn.spec,
                mdn.trainer.params_buffer(),
                rows.len(),
                per_input,
            )?;
            let d = &self.data;
            let inputs: Vec<f32> = rows.iter().flat_map(|&r| d.input_row(r)).copied().collect();
            sampler.set_inputs(&self.input_norm.apply(&inputs))?;
            let xs: Vec<f32> = rows
                .iter()
                .flat_map(|&r| std::iter::repeat_n(self.plot.point(d, r).0, per_input))
                .collect();
            let buffer = g.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("sample inputs"),
                size: (xs.len() * 4) as u64,
                // COPY_SRC: `read_samples` (tests) reads it back.
                usage: wgpu::BufferUsages::VERTEX
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            g.ctx
                .queue
                .write_buffer(&buffer, 0, bytemuck::cast_slice(&xs));
            self.sample_inputs = SampleInputs::Rows { rows, xs: buffer };
            self.sampler = Some(sampler);
            self.fresh = true;
            return Ok(());
        }
        // The forward pass is the expensive part of sampling: at most
        // SAMPLE_ROWS inputs, several draws each (a pixel column or so
        // apart, so the draws show no stripes).
        let per_input = total.div_ceil(SAMPLE_ROWS);
        let rows = total.div_ceil(per_input);
        let sampler = GpuSampler::new(
            Arc::clone(&g.ctx),
            Arc::clone(&g.kernels),
            &mdn.spec,
            mdn.trainer.params_buffer(),
            rows,
            per_input,
        )?;
        let span = self.input_span();
        let (mean, std) = self.input_norm_of_plot();
        let z: Vec<f32> = (0..rows)
            .map(|i| (span.lerp((i as f32 + 0.5) / rows as f32) - mean) / std)
            .collect();
        sampler.set_inputs(&z)?;
        self.sample_inputs = SampleInputs::Grid(span);
        self.sampler = Some(sampler);
        self.fresh = true;
        Ok(())
    }

    /// The last sampling pass's draws as plotted, (input, target) in data
    /// units, with the data rows they were conditioned on (none on an x
    /// grid) and the pass's seed: a readback, for tests.
    pub fn read_samples(&self) -> Result<Option<DrawnSamples>> {
        let Some(s) = &self.sampler else {
            return Ok(None);
        };
        let d = self.data.out_dim;
        let z =
            crate::gpu::buffers::read_f32(&self.gpu.ctx, &s.samples, s.rows() * s.per_input() * d)?;
        let (mean, std) = self.target_norm_of_plot();
        let per_input = s.per_input();
        let ys = z.chunks_exact(d).map(|v| v[self.plot.target] * std + mean);
        let (xs, rows): (Vec<f32>, Vec<usize>) = match &self.sample_inputs {
            SampleInputs::Grid(span) => {
                let n = s.rows();
                let xs = (0..n * per_input)
                    .map(|i| span.lerp(((i / per_input) as f32 + 0.5) / n as f32))
                    .collect();
                (xs, Vec::new())
            }
            SampleInputs::Rows { rows, xs } => (
                crate::gpu::buffers::read_f32(&self.gpu.ctx, xs, rows.len() * per_input)?,
                rows.clone(),
            ),
        };
        Ok(Some(DrawnSamples {
            points: xs.into_iter().zip(ys).collect(),
            rows,
            per_row: per_input,
            seed: self.sample_seed,
            temperature: self.settings.temperature,
        }))
    }

    fn upload_points(&mut self) {
        let n = self.data.len();
        if n > self.points_capacity {
            self.points_capacity = n.next_power_of_two();
            self.points = points_buffer(&self.gpu.ctx, self.points_capacity);
        }
        let xy: Vec<[f32; 2]> = (0..n)
            .map(|i| {
                let (x, y) = self.plot.point(&self.data, i);
                [x, y]
            })
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
        let mut updated = Vec::new();
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
            updated.push(net.is_mixture());
        }
        for mixture in updated {
            self.read_held_out(mixture)?;
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

    /// The MDN (`mixture`) or the MLP as a model in the data's units, from
    /// its live parameters (a readback of a few thousand floats: at
    /// loss-reading time, and for tests).
    pub fn net_model(&mut self, mixture: bool) -> Result<Option<Model>> {
        let (input_norm, target_norm) = (self.input_norm.clone(), self.target_norm.clone());
        let (input_names, target_names) = (
            self.data.input_names.clone(),
            self.data.target_names.clone(),
        );
        let net = if mixture {
            &mut self.mdn
        } else {
            &mut self.mlp
        };
        let Some(net) = net else { return Ok(None) };
        Ok(Some(Model {
            spec: net.spec.clone(),
            params: net.trainer.params()?,
            input_norm,
            target_norm,
            input_names,
            target_names,
        }))
    }

    /// The test loss and, of a mixture, its dead components over the data
    /// (at most [`USAGE_ROWS`] rows of it).
    fn read_held_out(&mut self, mixture: bool) -> Result<()> {
        let Some(model) = self.net_model(mixture)? else {
            return Ok(());
        };
        let test = match &self.test {
            Some(t) => Some(model.evaluate(t)?.value as f32),
            None => None,
        };
        let rows = self.data.len().min(USAGE_ROWS);
        let dead = match model.component_usage(&self.data.inputs[..rows * self.data.in_dim])? {
            Some(u) => u.dead_components(),
            None => Vec::new(),
        };
        let net = if mixture {
            &mut self.mdn
        } else {
            &mut self.mlp
        };
        if let Some(net) = net {
            if let Some(t) = test {
                net.test_history.push((net.steps(), t));
            }
            net.dead_components = dead;
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
            self.sample_seed = self.frame.wrapping_mul(0x9e37_79b9);
            s.set_options(self.sample_seed, self.settings.temperature)?;
        }
        let heat = self.settings.layers.density;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("scene curves"),
            timestamp_writes: None,
        });
        for curves in self.nets().filter_map(|n| n.curves.as_ref()) {
            curves.encode(&mut pass, heat);
        }
        if let Some(o) = &self.owners {
            o.encode(&self.gpu.owners, &mut pass);
        }
        if let Some(s) = &self.sampler {
            s.encode(&mut pass);
        }
        drop(pass);
        // An MLP's sampler runs its forward pass only: its predictions
        // (`[rows, D]`, one per row) become the drawn points, on the GPU.
        if let Some(s) = &self.sampler
            && self.mdn.is_none()
        {
            let bytes = (s.rows() * self.data.out_dim * 4) as u64;
            encoder.copy_buffer_to_buffer(s.head(), 0, &s.samples, 0, bytes);
        }
        Ok(())
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

/// A sampling pass read back: see [`SceneState::read_samples`].
#[derive(Clone, Debug, PartialEq)]
pub struct DrawnSamples {
    /// (plotted input, plotted target) of every sample, data units.
    pub points: Vec<(f32, f32)>,
    /// The data row of each block of `per_row` samples; empty on an x grid.
    pub rows: Vec<usize>,
    pub per_row: usize,
    pub seed: u32,
    pub temperature: f32,
}

/// Whether row `r` is one of the `pct` % test rows: spread evenly, the
/// row where the running count of test rows steps up.
fn is_test_row(r: usize, pct: u32) -> bool {
    let pct = pct as usize;
    (r + 1) * pct / 100 > r * pct / 100
}

/// The playground before any point is drawn.
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
