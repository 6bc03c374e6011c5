//! Using a model on data in original units: head outputs, the columns
//! `predict` writes, point predictions, held-out loss and samples. Every
//! head-specific step asks the head kind (`head/`). On the CPU the
//! reference stages run in fixed-size chunks so memory stays bounded; on the
//! GPU one set of pipelines and one forward pass serve every chunk.

use std::borrow::Cow;
use std::sync::Arc;

use crate::cpu::dense_forward::dense_forward;
use crate::data::Dataset;
use crate::error::{MdnError, Result};
use crate::gpu::Kernels;
use crate::gpu::buffers::storage_init;
use crate::gpu::context::GpuContext;
use crate::gpu::sampler::GpuSampler;

use crate::head::{HeadKind, Metric, SampleParams, sample_rows_from};
use crate::metrics::{Calibration, CalibrationAccumulator, ComponentUsage, Mix1, UsageAccumulator};
use crate::model::Model;

const CHUNK_ROWS: usize = 8192;
/// Rows per GPU inference pass: keeps every activation buffer far below
/// the smallest storage-binding limit (128 MiB) for any allowed width.
const GPU_PASS_ROWS: usize = 2048;
/// Rows per block of the CPU's blockwise passes (evaluation, usage):
/// 64 Ki rows of K = 32 head outputs are 25 MB.
const CPU_BLOCK_ROWS: usize = 65_536;

/// Where inference runs.
pub enum Inference {
    /// The CPU reference stages.
    Cpu,
    /// The GPU's forward and sampling kernels.
    Gpu(GpuInference),
}

/// A device and its pipelines, built once for every pass of a command.
pub struct GpuInference {
    pub ctx: Arc<GpuContext>,
    pub kernels: Arc<Kernels>,
}

impl Inference {
    /// GPU inference on `ctx`, with the adapter's kernels.
    pub fn gpu(ctx: Arc<GpuContext>) -> Result<Self> {
        let kernels = Arc::new(Kernels::new(&ctx)?);
        Ok(Inference::Gpu(GpuInference { ctx, kernels }))
    }
}

/// Most samples one `sample` call produces (rows × per-input): a typo such as
/// `--per-input 1000000000` becomes an error, not a failed allocation.
pub const MAX_SAMPLES: usize = 100_000_000;

/// Mixture parameters of a diagonal-Gaussian head in original units,
/// row-major: `pi` `[rows, K]`, `mu` and `sigma` `[rows, K, D]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mixture {
    pub k: usize,
    pub d: usize,
    pub pi: Vec<f32>,
    pub mu: Vec<f32>,
    pub sigma: Vec<f32>,
}

/// Everything `eval` reports: the loss, and what else the head supports —
/// calibration and the mean's error for a one-dimensional mixture, the
/// mean's error and the component usage for any mixture, MAE for an MLP.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    pub loss: Evaluation,
    /// MSE of the point prediction (the mixture's mean; the MLP's output),
    /// original units, over rows and target dimensions.
    pub mse_mean: f64,
    /// Mean absolute error of the point prediction (MLPs).
    pub mae: Option<f64>,
    /// One-dimensional mixtures: CRPS, PIT, coverage.
    pub calibration: Option<Calibration>,
    /// Mixtures: the weight each component gets.
    pub usage: Option<ComponentUsage>,
}

/// Point summaries `predict --point` can add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    Mean,
    Median,
    Mode,
}

impl Point {
    pub fn name(self) -> &'static str {
        match self {
            Point::Mean => "mean",
            Point::Median => "median",
            Point::Mode => "mode",
        }
    }
}

/// What units rows handed to a pass are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Units {
    /// The data's own: the model z-scores them first.
    Original,
    /// Already z-scored with the model's statistics.
    ZScored,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    pub metric: Metric,
    pub value: f64,
    pub rows: usize,
}

impl Model {
    /// Checks that `inputs` is a whole number of rows of the model's input
    /// width and returns the row count.
    pub fn input_rows(&self, inputs: &[f32]) -> Result<usize> {
        let d = self.spec.in_dim;
        if inputs.is_empty() || !inputs.len().is_multiple_of(d) {
            return Err(MdnError::Data(format!(
                "the model takes {d} input column(s) ({}), got {} values",
                self.input_names.join(", "),
                inputs.len()
            )));
        }
        Ok(inputs.len() / d)
    }

    /// Head outputs (z-scored units) for z-scored inputs.
    pub fn head_outputs_normalized(&self, inputs: &[f32]) -> Vec<f32> {
        let layout = self.spec.layout();
        let widths = self.spec.widths();
        let rows = inputs.len() / self.spec.in_dim;
        let head_w = self.spec.head_width();
        let mut out = vec![0.0f32; rows * head_w];
        let mut bufs: Vec<Vec<f32>> = widths
            .iter()
            .map(|&w| vec![0.0; CHUNK_ROWS.min(rows) * w])
            .collect();
        for (c, dst) in out.chunks_mut(CHUNK_ROWS * head_w).enumerate() {
            let r = dst.len() / head_w;
            let src = &inputs[c * CHUNK_ROWS * self.spec.in_dim..][..r * self.spec.in_dim];
            bufs[0][..src.len()].copy_from_slice(src);
            for (i, layer) in layout.layers.iter().enumerate() {
                let (lo, hi) = bufs.split_at_mut(i + 1);
                dense_forward(
                    &self.params,
                    layer,
                    &lo[i][..r * widths[i]],
                    &mut hi[0][..r * widths[i + 1]],
                );
            }
            dst.copy_from_slice(&bufs[widths.len() - 1][..r * head_w]);
        }
        out
    }

    /// Head outputs (z-scored units) for inputs in original units.
    pub fn head_outputs(&self, inputs: &[f32]) -> Result<Vec<f32>> {
        self.input_rows(inputs)?;
        Ok(self.head_outputs_normalized(&self.input_norm.apply(inputs)))
    }

    /// [`Model::head_outputs`] on a device; the GPU runs the forward pass
    /// with the training kernels, in passes of at most `GPU_PASS_ROWS` rows
    /// through one set of buffers.
    pub fn head_outputs_on(&self, inputs: &[f32], dev: &Inference) -> Result<Vec<f32>> {
        let rows = self.input_rows(inputs)?;
        let mut out = Vec::with_capacity(rows * self.spec.head_width());
        self.for_each_head_chunk(inputs, dev, |_, head| {
            out.extend_from_slice(head);
            Ok(())
        })?;
        Ok(out)
    }

    /// The head outputs of `inputs` a block of rows at a time, in row
    /// order: `f(first row, head rows)`. Memory stays at one block's
    /// outputs whatever the rows (`CPU_BLOCK_ROWS` on the CPU, a GPU pass on
    /// the GPU, whose buffers are made once).
    pub fn for_each_head_chunk(
        &self,
        inputs: &[f32],
        dev: &Inference,
        f: impl FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        self.for_each_head_block(inputs, dev, Units::Original, f)
    }

    /// [`Model::for_each_head_chunk`] on inputs in `units`: z-scored
    /// inputs (the training rows after `fit` has z-scored them in place)
    /// skip the model's input normalisation.
    fn for_each_head_block(
        &self,
        inputs: &[f32],
        dev: &Inference,
        units: Units,
        mut f: impl FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        let rows = self.input_rows(inputs)?;
        let z = |chunk: &[f32]| -> Vec<f32> {
            match units {
                Units::Original => self.input_norm.apply(chunk),
                Units::ZScored => chunk.to_vec(),
            }
        };
        let (din, width) = (self.spec.in_dim, self.spec.head_width());
        let Inference::Gpu(gpu) = dev else {
            for (i, chunk) in inputs.chunks(CPU_BLOCK_ROWS * din).enumerate() {
                let head = self.head_outputs_normalized(&z(chunk));
                f(i * CPU_BLOCK_ROWS, &head)?;
            }
            return Ok(());
        };
        let pass_rows = rows.min(GPU_PASS_ROWS);
        let sampler = self.gpu_sampler(gpu, pass_rows, 1)?;
        let mut padded = vec![0.0f32; pass_rows * din];
        for (i, chunk) in inputs.chunks(pass_rows * din).enumerate() {
            // The last pass may be short: its tail rows are zeros whose
            // outputs are dropped.
            padded[..chunk.len()].copy_from_slice(&z(chunk));
            padded[chunk.len()..].fill(0.0);
            sampler.set_inputs(&padded)?;
            sampler.run()?;
            let head = sampler.read_head()?;
            f(i * pass_rows, &head[..chunk.len() / din * width])?;
        }
        Ok(())
    }

    /// A sampler over `rows` inputs that reads this model's parameters,
    /// uploaded once.
    fn gpu_sampler(&self, gpu: &GpuInference, rows: usize, per_input: usize) -> Result<GpuSampler> {
        let params = storage_init(&gpu.ctx, "model parameters", &self.params)?;
        GpuSampler::new(
            gpu.ctx.clone(),
            gpu.kernels.clone(),
            &self.spec,
            &params,
            rows,
            per_input,
        )
    }

    /// Names of the columns [`Model::predict_on`] writes per input row.
    pub fn prediction_columns(&self) -> Vec<String> {
        self.spec
            .head_def()
            .columns(self.spec.k(), self.spec.out_dim)
    }

    /// What `predict` writes after the input columns, in original units:
    /// `[rows, prediction_columns().len()]`, as the head kind decodes it.
    pub fn predict_on(&self, inputs: &[f32], dev: &Inference) -> Result<Vec<f32>> {
        self.predict_from(inputs, dev, 0)
    }

    /// [`Model::predict_on`] for a chunk of a file's rows starting at
    /// `first_row` (0-based), so errors name the file's row.
    pub fn predict_from(
        &self,
        inputs: &[f32],
        dev: &Inference,
        first_row: usize,
    ) -> Result<Vec<f32>> {
        let head = self.head_outputs_on(inputs, dev)?;
        self.predictions_of(&head, first_row)
    }

    /// `predict`'s columns from the head's outputs
    /// ([`Model::head_outputs_on`]), so one forward pass can serve them and
    /// [`Model::summaries_of`].
    pub fn predictions_of(&self, head: &[f32], first_row: usize) -> Result<Vec<f32>> {
        let def = self.spec.head_def();
        let (k, width) = (self.spec.k(), self.spec.head_width());
        let cols = self.prediction_columns().len();
        let mut out = Vec::with_capacity(head.len() / width * cols);
        for h in head.chunks_exact(width) {
            def.decode(h, k, &self.target_norm, &mut out);
        }
        check_finite(&out, cols, "predictions", first_row)?;
        Ok(out)
    }

    /// Mixture parameters in original units.
    pub fn mixture(&self, inputs: &[f32]) -> Result<Mixture> {
        self.mixture_on(inputs, &Inference::Cpu)
    }

    /// The diagonal head's `pi`, `mu` and `sigma` (its `predict`
    /// columns) in original units.
    pub fn mixture_on(&self, inputs: &[f32], dev: &Inference) -> Result<Mixture> {
        if self.spec.head_kind() != HeadKind::MixtureDiag {
            return Err(MdnError::Config(format!(
                "this is not a diagonal-Gaussian mixture model (its head is {}); use predict's columns",
                self.spec.head_def().stem()
            )));
        }
        let (k, d) = (self.spec.k(), self.spec.out_dim);
        let values = self.predict_on(inputs, dev)?;
        let cols = k + 2 * k * d;
        let (mut pi, mut mu, mut sigma) = (Vec::new(), Vec::new(), Vec::new());
        for row in values.chunks_exact(cols) {
            pi.extend_from_slice(&row[..k]);
            mu.extend_from_slice(&row[k..k + k * d]);
            sigma.extend_from_slice(&row[k + k * d..]);
        }
        Ok(Mixture {
            k,
            d,
            pi,
            mu,
            sigma,
        })
    }

    /// Point predictions in original units: the MLP's output, or for a
    /// mixture its mean Σ π_k μ_k (the conditional mean).
    pub fn predict_mean(&self, inputs: &[f32]) -> Result<Vec<f32>> {
        self.predict_mean_on(inputs, &Inference::Cpu)
    }

    pub fn predict_mean_on(&self, inputs: &[f32], dev: &Inference) -> Result<Vec<f32>> {
        let head = self.head_outputs_on(inputs, dev)?;
        let def = self.spec.head_def();
        let (k, d, width) = (self.spec.k(), self.spec.out_dim, self.spec.head_width());
        let mut z = vec![0.0f32; head.len() / width * d];
        for (h, o) in head.chunks_exact(width).zip(z.chunks_exact_mut(d)) {
            def.mean(h, k, o);
        }
        let out = self.target_norm.invert(&z);
        check_finite(&out, d, "predictions", 0)?;
        Ok(out)
    }

    /// Held-out loss in original units: NLL for a mixture, MSE for an MLP.
    pub fn evaluate(&self, data: &Dataset) -> Result<Evaluation> {
        self.evaluate_on(data, &Inference::Cpu)
    }

    pub fn evaluate_on(&self, data: &Dataset, dev: &Inference) -> Result<Evaluation> {
        self.loss_over(data, dev, Units::Original)
    }

    /// [`Model::evaluate`] of rows already z-scored with this model's
    /// statistics (inputs and targets), still reported in original units:
    /// the z-scored NLL + Σ_d log target_std_d (DESIGN.md §1), or the MSE
    /// scaled back by target_std_d². The same number, bit for bit, as
    /// `evaluate` on the rows before z-scoring.
    pub fn evaluate_z_scored(&self, data: &Dataset) -> Result<Evaluation> {
        self.loss_over(data, &Inference::Cpu, Units::ZScored)
    }

    fn loss_over(&self, data: &Dataset, dev: &Inference, units: Units) -> Result<Evaluation> {
        self.check_data(data)?;
        let def = self.spec.head_def();
        let (k, d, width) = (self.spec.k(), self.spec.out_dim, self.spec.head_width());
        // Block by block, summed in row order: the same total as one pass,
        // without the whole data set's head outputs in memory.
        let mut total = 0.0f64;
        self.for_each_head_block(&data.inputs, dev, units, |first, head| {
            let rows = head.len() / width;
            let block = &data.targets[first * d..(first + rows) * d];
            let targets = match units {
                Units::Original => Cow::Owned(self.target_norm.apply(block)),
                Units::ZScored => Cow::Borrowed(block),
            };
            total = head
                .chunks_exact(width)
                .zip(targets.chunks_exact(d))
                .map(|(h, t)| def.row_loss_original(h, t, k, &self.target_norm))
                .fold(total, |acc, l| acc + l);
            Ok(())
        })?;
        let e = Evaluation {
            metric: def.metric(),
            value: total / data.len() as f64,
            rows: data.len(),
        };
        self.check_loss(&e)?;
        Ok(e)
    }

    /// The weight each mixture component gets over `data`'s inputs (on the
    /// CPU); `None` for a head without components.
    pub fn component_usage(&self, inputs: &[f32]) -> Result<Option<ComponentUsage>> {
        self.usage_over(inputs, Units::Original)
    }

    /// [`Model::component_usage`] of inputs already z-scored with this
    /// model's statistics.
    pub fn component_usage_z_scored(&self, inputs: &[f32]) -> Result<Option<ComponentUsage>> {
        self.usage_over(inputs, Units::ZScored)
    }

    fn usage_over(&self, inputs: &[f32], units: Units) -> Result<Option<ComponentUsage>> {
        let def = self.spec.head_def();
        if !def.is_distribution() {
            return Ok(None);
        }
        let (k, width) = (self.spec.k(), self.spec.head_width());
        let mut usage = UsageAccumulator::new(k);
        let mut pi = vec![0.0f32; k];
        self.for_each_head_block(inputs, &Inference::Cpu, units, |_, head| {
            for h in head.chunks_exact(width) {
                def.weights(h, k, &mut pi);
                usage.add(&pi);
            }
            Ok(())
        })?;
        Ok(Some(usage.finish()))
    }

    fn check_data(&self, data: &Dataset) -> Result<()> {
        if data.in_dim != self.spec.in_dim || data.out_dim != self.spec.out_dim {
            return Err(MdnError::Data(format!(
                "data has {} input and {} target column(s), the model expects {} and {}",
                data.in_dim, data.out_dim, self.spec.in_dim, self.spec.out_dim
            )));
        }
        Ok(())
    }

    fn check_loss(&self, e: &Evaluation) -> Result<()> {
        if !e.value.is_finite() {
            return Err(MdnError::Data(format!(
                "the {} on this data is not finite ({}); the model or the data is out of range",
                e.metric.name(),
                e.value
            )));
        }
        Ok(())
    }

    /// `eval`'s report on `data` (original units).
    pub fn report_on(&self, data: &Dataset, dev: &Inference) -> Result<EvalReport> {
        let mut acc = self.eval_accumulator();
        acc.add(self, data, dev)?;
        acc.finish(self)
    }

    /// Sums for `eval` over a file read in chunks: add each chunk in
    /// order, then finish. The sums run row by row in the same order as
    /// over the whole file, so the report is the same to the last bit.
    pub fn eval_accumulator(&self) -> EvalAccumulator {
        let (k, d) = (self.spec.k(), self.spec.out_dim);
        let def = self.spec.head_def();
        EvalAccumulator {
            rows: 0,
            total: 0.0,
            sq: 0.0,
            abs: 0.0,
            mean_z: vec![0.0; d],
            pi: vec![0.0; k],
            mu: vec![0.0; k],
            sigma: vec![0.0; k],
            usage: def.is_distribution().then(|| UsageAccumulator::new(k)),
            calibration: None,
        }
    }

    /// Columns `predict --point … --quantiles …` adds after the head's own.
    pub fn summary_columns(&self, points: &[Point], quantiles: &[f64]) -> Result<Vec<String>> {
        let d = self.spec.out_dim;
        let def = self.spec.head_def();
        let only_mean = points.iter().all(|&p| p == Point::Mean) && quantiles.is_empty();
        if !def.is_distribution() && !only_mean {
            return Err(MdnError::Config(
                "median, mode and quantiles need a mixture model; an MLP predicts one point (--point mean)"
                    .into(),
            ));
        }
        if d > 1 && !only_mean {
            return Err(MdnError::Config(format!(
                "median, mode and quantiles are defined for one target column; this model has {d} \
                 ({}); --point mean works for any",
                self.target_names.join(", ")
            )));
        }
        if let Some(q) = quantiles.iter().find(|q| !(**q > 0.0 && **q < 1.0)) {
            return Err(MdnError::Config(format!(
                "--quantiles must lie strictly between 0 and 1, got {q}"
            )));
        }
        let mut names = Vec::new();
        for p in points {
            if d == 1 {
                names.push(p.name().to_string());
            } else {
                names.extend((0..d).map(|j| format!("{}_{j}", p.name())));
            }
        }
        names.extend(quantiles.iter().map(|q| format!("q_{q}")));
        Ok(names)
    }

    /// The values of [`Model::summary_columns`] per input row, original
    /// units: means exactly, the median and quantiles by root-finding on
    /// the mixture's CDF, the mode as the global maximum of its density.
    pub fn summaries_on(
        &self,
        inputs: &[f32],
        points: &[Point],
        quantiles: &[f64],
        dev: &Inference,
    ) -> Result<Vec<f32>> {
        self.summaries_from(inputs, points, quantiles, dev, 0)
    }

    /// [`Model::summaries_on`] for a chunk of rows starting at `first_row`.
    pub fn summaries_from(
        &self,
        inputs: &[f32],
        points: &[Point],
        quantiles: &[f64],
        dev: &Inference,
        first_row: usize,
    ) -> Result<Vec<f32>> {
        // A summary this head cannot give fails before the forward pass.
        self.summary_columns(points, quantiles)?;
        let head = self.head_outputs_on(inputs, dev)?;
        self.summaries_of(&head, points, quantiles, first_row)
    }

    /// The summaries from the head's outputs ([`Model::head_outputs_on`]).
    pub fn summaries_of(
        &self,
        head: &[f32],
        points: &[Point],
        quantiles: &[f64],
        first_row: usize,
    ) -> Result<Vec<f32>> {
        let cols = self.summary_columns(points, quantiles)?.len();
        let def = self.spec.head_def();
        let (k, d, width) = (self.spec.k(), self.spec.out_dim, self.spec.head_width());
        let norm = &self.target_norm;
        let mut out = Vec::with_capacity(head.len() / width * cols);
        let mut mean_z = vec![0.0f32; d];
        let mut pi = vec![0.0f32; k];
        let (mut mu, mut sigma) = (vec![0.0f32; k], vec![0.0f32; k]);
        for h in head.chunks_exact(width) {
            let one_d = def.is_distribution() && {
                def.weights(h, k, &mut pi);
                def.components_1d(h, k, norm, &mut mu, &mut sigma)
            };
            let m = Mix1 {
                pi: &pi,
                mu: &mu,
                sigma: &sigma,
            };
            for p in points {
                match p {
                    Point::Mean => {
                        def.mean(h, k, &mut mean_z);
                        out.extend((0..d).map(|j| mean_z[j] * norm.std[j] + norm.mean[j]));
                    }
                    Point::Median if one_d => out.push(m.median() as f32),
                    Point::Mode if one_d => out.push(m.mode() as f32),
                    _ => unreachable!("summary_columns refuses these"),
                }
            }
            out.extend(quantiles.iter().map(|&q| m.quantile(q) as f32));
        }
        check_finite(&out, cols.max(1), "point predictions", first_row)?;
        Ok(out)
    }

    /// `per_input` samples per input row, in original units, `[rows ·
    /// per_input, D]`, rows in input order.
    pub fn sample(
        &self,
        inputs: &[f32],
        per_input: usize,
        temperature: f32,
        seed: u32,
    ) -> Result<Vec<f32>> {
        self.sample_on(inputs, per_input, temperature, seed, &Inference::Cpu)
    }

    /// [`Model::sample`] on a device: on the GPU the draws come from
    /// the head's `sample` entry, the same counter-based RNG as the CPU twin.
    pub fn sample_on(
        &self,
        inputs: &[f32],
        per_input: usize,
        temperature: f32,
        seed: u32,
        dev: &Inference,
    ) -> Result<Vec<f32>> {
        self.sample_from(inputs, per_input, temperature, seed, dev, 0)
    }

    /// [`Model::sample_on`] for a chunk of a run's rows starting at
    /// `first_row`: each draw is the one the whole run gives it, on either
    /// device.
    pub fn sample_from(
        &self,
        inputs: &[f32],
        per_input: usize,
        temperature: f32,
        seed: u32,
        dev: &Inference,
        first_row: usize,
    ) -> Result<Vec<f32>> {
        let def = self.spec.head_def();
        if !def.is_distribution() {
            return Err(MdnError::Config(
                "sampling needs a mixture model (--model mdn); an MLP gives one point per input"
                    .into(),
            ));
        }
        if per_input == 0 {
            return Err(MdnError::Config("--per-input must be at least 1".into()));
        }
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(MdnError::Config(format!(
                "--temperature must be a positive number, got {temperature}"
            )));
        }
        let rows = self.input_rows(inputs)?;
        let upto = first_row + rows;
        if upto.checked_mul(per_input).is_none_or(|n| n > MAX_SAMPLES) {
            return Err(MdnError::Config(format!(
                "{upto} input rows × --per-input {per_input} is more than {MAX_SAMPLES} samples"
            )));
        }
        let d = self.spec.out_dim;
        let out = match dev {
            Inference::Cpu => {
                let head = self.head_outputs(inputs)?;
                let p = SampleParams {
                    k: self.spec.k(),
                    d,
                    per_input,
                    seed,
                    temperature,
                };
                let mut out = vec![0.0; rows * per_input * d];
                sample_rows_from(
                    self.spec.head_kind(),
                    &head,
                    &p,
                    first_row * per_input,
                    &mut out,
                );
                out
            }
            // The RNG counter is the sample's index in the run (below
            // MAX_SAMPLES, so it fits), as on the CPU.
            Inference::Gpu(gpu) => {
                let sampler = self.gpu_sampler(gpu, rows, per_input)?;
                sampler.set_inputs(&self.input_norm.apply(inputs))?;
                let first = (first_row * per_input) as u32;
                sampler.set_options_from(seed, temperature, first)?;
                sampler.run()?;
                sampler.read_samples()?
            }
        };
        let out = self.target_norm.invert(&out);
        check_finite(&out, per_input * d, "samples", first_row)?;
        Ok(out)
    }
}

/// A model file may hold finite weights whose outputs are not (σ = exp of a
/// huge log σ); those must become an error, not `inf` or `NaN` in a CSV.
fn check_finite(values: &[f32], per_row: usize, what: &str, first_row: usize) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(MdnError::Data(format!(
            "the model's {what} for input row {} are not finite; its weights are out of range",
            first_row + i / per_row.max(1) + 1
        ))),
    }
}

/// `eval`'s running sums; see [`Model::eval_accumulator`].
pub struct EvalAccumulator {
    rows: usize,
    total: f64,
    sq: f64,
    abs: f64,
    mean_z: Vec<f32>,
    pi: Vec<f32>,
    mu: Vec<f32>,
    sigma: Vec<f32>,
    usage: Option<UsageAccumulator>,
    calibration: Option<CalibrationAccumulator>,
}

impl EvalAccumulator {
    /// Adds the next rows of the data set.
    pub fn add(&mut self, model: &Model, data: &Dataset, dev: &Inference) -> Result<()> {
        model.check_data(data)?;
        let head = model.head_outputs_on(&data.inputs, dev)?;
        let targets = model.target_norm.apply(&data.targets);
        let def = model.spec.head_def();
        let (k, d, width) = (model.spec.k(), model.spec.out_dim, model.spec.head_width());
        let norm = &model.target_norm;
        for (r, (h, t)) in head
            .chunks_exact(width)
            .zip(targets.chunks_exact(d))
            .enumerate()
        {
            self.total += def.row_loss_original(h, t, k, norm);
            def.mean(h, k, &mut self.mean_z);
            for ((m, tj), sd) in self.mean_z.iter().zip(t).zip(&norm.std) {
                let err = ((m - tj) * sd) as f64;
                self.sq += err * err;
                self.abs += err.abs();
            }
            if let Some(u) = &mut self.usage {
                def.weights(h, k, &mut self.pi);
                u.add(&self.pi);
                if def.components_1d(h, k, norm, &mut self.mu, &mut self.sigma) {
                    let m = Mix1 {
                        pi: &self.pi,
                        mu: &self.mu,
                        sigma: &self.sigma,
                    };
                    self.calibration
                        .get_or_insert_with(|| CalibrationAccumulator::new(k))
                        .add(&m, data.targets[r]);
                }
            }
        }
        self.rows += data.len();
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn finish(self, model: &Model) -> Result<EvalReport> {
        let def = model.spec.head_def();
        let values = (self.rows * model.spec.out_dim) as f64;
        let loss = Evaluation {
            metric: def.metric(),
            value: self.total / self.rows as f64,
            rows: self.rows,
        };
        model.check_loss(&loss)?;
        Ok(EvalReport {
            loss,
            mse_mean: self.sq / values,
            mae: (!def.is_distribution()).then_some(self.abs / values),
            calibration: self.calibration.map(CalibrationAccumulator::finish),
            usage: self.usage.map(UsageAccumulator::finish),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::normalize::Normalizer;
    use crate::data::toy::{ToyProblem, toy_dataset};
    use crate::model::ModelSpec;
    use crate::model::init::init_params;

    /// Blockwise evaluation (more rows than one block) gives the bits of
    /// the plain one-pass sum over every row's loss.
    #[test]
    fn blockwise_evaluation_equals_one_pass() {
        let data = toy_dataset(ToyProblem::Inverse, CPU_BLOCK_ROWS + 1234, 5);
        let spec = ModelSpec::mixture(1, 1, vec![8], 3).unwrap();
        let model = Model {
            params: init_params(&spec, 2),
            input_norm: Normalizer::fit(&data.inputs, 1).unwrap(),
            target_norm: Normalizer::fit(&data.targets, 1).unwrap(),
            input_names: data.input_names.clone(),
            target_names: data.target_names.clone(),
            spec,
        };
        let head = model.head_outputs(&data.inputs).unwrap();
        let targets = model.target_norm.apply(&data.targets);
        let def = model.spec.head_def();
        let width = model.spec.head_width();
        let total: f64 = head
            .chunks_exact(width)
            .zip(&targets)
            .map(|(h, t)| def.row_loss_original(h, std::slice::from_ref(t), 3, &model.target_norm))
            .sum();
        let e = model.evaluate(&data).unwrap();
        assert_eq!(e.value.to_bits(), (total / data.len() as f64).to_bits());
        let usage = model.component_usage(&data.inputs).unwrap().unwrap();
        assert!((usage.mean_pi.iter().sum::<f64>() - 1.0).abs() < 1e-6);
    }
}
