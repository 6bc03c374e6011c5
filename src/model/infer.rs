//! Using a model on data in original units: head outputs, mixture
//! parameters, point predictions, held-out loss and samples. Runs the CPU
//! reference stages in fixed-size chunks so memory stays bounded.

use std::sync::Arc;

use super::{Head, Model};
use crate::cpu::dense_forward::dense_forward;
use crate::cpu::mixture_head::row_nll;
use crate::cpu::sample::{SampleParams, sample};
use crate::data::Dataset;
use crate::error::{MdnError, Result};
use crate::gpu::Kernels;
use crate::gpu::buffers::storage_init;
use crate::gpu::context::GpuContext;
use crate::gpu::sampler::GpuSampler;

const CHUNK_ROWS: usize = 8192;
/// Rows per GPU inference pass: keeps every activation buffer far below
/// the smallest storage-binding limit (128 MiB) for any allowed width.
const GPU_PASS_ROWS: usize = 2048;

/// Where inference runs.
pub enum Inference {
    /// The CPU reference stages.
    Cpu,
    /// The GPU's forward and sampling kernels.
    Gpu(Arc<GpuContext>),
}
/// Most samples one `sample` call produces (rows × per-input): a typo such as
/// `--per-input 1000000000` becomes an error, not a failed allocation.
pub const MAX_SAMPLES: usize = 100_000_000;

/// Mixture parameters in original units, row-major: `pi` `[rows, K]`,
/// `mu` and `sigma` `[rows, K, D]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mixture {
    pub k: usize,
    pub d: usize,
    pub pi: Vec<f32>,
    pub mu: Vec<f32>,
    pub sigma: Vec<f32>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
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
    /// with the training kernels, in passes of at most `GPU_PASS_ROWS` rows.
    pub fn head_outputs_on(&self, inputs: &[f32], dev: &Inference) -> Result<Vec<f32>> {
        let Inference::Gpu(ctx) = dev else {
            return self.head_outputs(inputs);
        };
        self.input_rows(inputs)?;
        let z = self.input_norm.apply(inputs);
        let mut out = Vec::with_capacity(z.len() / self.spec.in_dim * self.spec.head_width());
        for chunk in z.chunks(GPU_PASS_ROWS * self.spec.in_dim) {
            out.extend(self.gpu_pass(ctx, chunk, 1, 0, 1.0)?.read_head()?);
        }
        Ok(out)
    }

    /// Uploads the parameters and runs one forward (and, for a mixture,
    /// sampling) pass over z-scored `inputs` on the GPU.
    fn gpu_pass(
        &self,
        ctx: &Arc<GpuContext>,
        inputs: &[f32],
        per_input: usize,
        seed: u32,
        temperature: f32,
    ) -> Result<GpuSampler> {
        let kernels = Arc::new(Kernels::new(ctx)?);
        let params = storage_init(ctx, "model parameters", &self.params)?;
        let rows = inputs.len() / self.spec.in_dim;
        let sampler = GpuSampler::new(ctx.clone(), kernels, &self.spec, &params, rows, per_input)?;
        sampler.set_inputs(inputs)?;
        sampler.set_options(seed, temperature)?;
        sampler.run()?;
        Ok(sampler)
    }

    /// Mixture parameters in original units.
    pub fn mixture(&self, inputs: &[f32]) -> Result<Mixture> {
        self.mixture_on(inputs, &Inference::Cpu)
    }

    pub fn mixture_on(&self, inputs: &[f32], dev: &Inference) -> Result<Mixture> {
        let Head::Mixture { k } = self.spec.head else {
            return Err(MdnError::Config(
                "this is an MLP model, not a mixture".into(),
            ));
        };
        let d = self.spec.out_dim;
        let head = self.head_outputs_on(inputs, dev)?;
        let width = self.spec.head_width();
        let rows = head.len() / width;
        let (mut pi, mut mu, mut sigma) = (
            Vec::with_capacity(rows * k),
            Vec::with_capacity(rows * k * d),
            Vec::with_capacity(rows * k * d),
        );
        for h in head.chunks_exact(width) {
            let m = h[..k].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let z: f32 = h[..k].iter().map(|&l| (l - m).exp()).sum();
            pi.extend(h[..k].iter().map(|&l| (l - m).exp() / z));
            for i in 0..k * d {
                let j = i % d;
                let (mean, std) = (self.target_norm.mean[j], self.target_norm.std[j]);
                mu.push(h[k + i] * std + mean);
                sigma.push(h[k + k * d + i].exp() * std);
            }
        }
        check_finite(&pi, k, "mixture weights")?;
        check_finite(&mu, k * d, "means")?;
        check_finite(&sigma, k * d, "standard deviations")?;
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
        match self.spec.head {
            Head::Mse => {
                let out = self.target_norm.invert(&self.head_outputs_on(inputs, dev)?);
                check_finite(&out, self.spec.out_dim, "predictions")?;
                Ok(out)
            }
            Head::Mixture { k } => {
                let m = self.mixture_on(inputs, dev)?;
                let d = m.d;
                let rows = m.pi.len() / k;
                let mut out = vec![0.0; rows * d];
                for r in 0..rows {
                    for c in 0..k {
                        for j in 0..d {
                            out[r * d + j] += m.pi[r * k + c] * m.mu[(r * k + c) * d + j];
                        }
                    }
                }
                Ok(out)
            }
        }
    }

    /// Held-out loss in original units: NLL for a mixture, MSE for an MLP.
    pub fn evaluate(&self, data: &Dataset) -> Result<Evaluation> {
        self.evaluate_on(data, &Inference::Cpu)
    }

    pub fn evaluate_on(&self, data: &Dataset, dev: &Inference) -> Result<Evaluation> {
        if data.in_dim != self.spec.in_dim || data.out_dim != self.spec.out_dim {
            return Err(MdnError::Data(format!(
                "data has {} input and {} target column(s), the model expects {} and {}",
                data.in_dim, data.out_dim, self.spec.in_dim, self.spec.out_dim
            )));
        }
        let head = self.head_outputs_on(&data.inputs, dev)?;
        let targets = self.target_norm.apply(&data.targets);
        let width = self.spec.head_width();
        let d = self.spec.out_dim;
        let rows = data.len();
        let (metric, value) = match self.spec.head {
            Head::Mixture { k } => {
                let total: f64 = head
                    .chunks_exact(width)
                    .zip(targets.chunks_exact(d))
                    .map(|(h, t)| row_nll(h, t, k).0 as f64)
                    .sum();
                (
                    Metric::Nll,
                    total / rows as f64 + self.target_norm.log_det(),
                )
            }
            Head::Mse => {
                let mut total = 0.0f64;
                for (i, (&p, &t)) in head.iter().zip(&targets).enumerate() {
                    let std = self.target_norm.std[i % d] as f64;
                    total += ((p - t) as f64 * std).powi(2);
                }
                (Metric::Mse, total / (rows * d) as f64)
            }
        };
        if !value.is_finite() {
            return Err(MdnError::Data(format!(
                "the {} on this data is not finite ({value}); the model or the data is out of range",
                metric.name()
            )));
        }
        Ok(Evaluation {
            metric,
            value,
            rows,
        })
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
    /// `sample.wgsl`, the same counter-based RNG as the CPU twin.
    pub fn sample_on(
        &self,
        inputs: &[f32],
        per_input: usize,
        temperature: f32,
        seed: u32,
        dev: &Inference,
    ) -> Result<Vec<f32>> {
        let Head::Mixture { k } = self.spec.head else {
            return Err(MdnError::Config(
                "sampling needs a mixture model (--model mdn); an MLP gives one point per input"
                    .into(),
            ));
        };
        if per_input == 0 {
            return Err(MdnError::Config("--per-input must be at least 1".into()));
        }
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(MdnError::Config(format!(
                "--temperature must be a positive number, got {temperature}"
            )));
        }
        let rows = self.input_rows(inputs)?;
        if rows.checked_mul(per_input).is_none_or(|n| n > MAX_SAMPLES) {
            return Err(MdnError::Config(format!(
                "{rows} input rows × --per-input {per_input} is more than {MAX_SAMPLES} samples"
            )));
        }
        let d = self.spec.out_dim;
        let out = match dev {
            Inference::Cpu => {
                let head = self.head_outputs(inputs)?;
                let p = SampleParams {
                    k,
                    d,
                    per_input,
                    seed,
                    temperature,
                };
                let mut out = vec![0.0; rows * per_input * d];
                sample(&head, &p, &mut out);
                out
            }
            // One pass, so sample indices (and so the draws) match the CPU's.
            Inference::Gpu(ctx) => self
                .gpu_pass(
                    ctx,
                    &self.input_norm.apply(inputs),
                    per_input,
                    seed,
                    temperature,
                )?
                .read_samples()?,
        };
        let out = self.target_norm.invert(&out);
        check_finite(&out, per_input * d, "samples")?;
        Ok(out)
    }
}

/// A model file may hold finite weights whose outputs are not (σ = exp of a
/// huge log σ); those must become an error, not `inf` or `NaN` in a CSV.
fn check_finite(values: &[f32], per_row: usize, what: &str) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(MdnError::Data(format!(
            "the model's {what} for input row {} are not finite; its weights are out of range",
            i / per_row.max(1) + 1
        ))),
    }
}
