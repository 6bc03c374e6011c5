//! From a dataset and a spec to a trained [`Model`]: normalisation, the
//! device choice, the training loop, and packaging the result.

use std::sync::Arc;

use crate::cpu::CpuTrainer;
use crate::data::Dataset;
use crate::data::normalize::Normalizer;
use crate::device::{DeviceChoice, Placement};
use crate::error::{MdnError, Result};
use crate::gpu::GpuTrainer;
use crate::gpu::context::GpuOptions;
use crate::infer::Inference;
use crate::model::init::init_params;
use crate::model::{Model, ModelSpec};
use crate::train::{TrainConfig, TrainReport, Trainer, run_training};

/// Training data z-scored with its own statistics, plus those statistics.
pub struct Prepared {
    pub input_norm: Normalizer,
    pub target_norm: Normalizer,
    pub normalized: Dataset,
}

pub fn prepare(data: &Dataset) -> Result<Prepared> {
    if data.is_empty() {
        return Err(MdnError::Data("the training data has no rows".into()));
    }
    let input_norm = Normalizer::fit(&data.inputs, data.in_dim)?;
    let target_norm = Normalizer::fit(&data.targets, data.out_dim)?;
    let normalized = Dataset {
        inputs: input_norm.apply(&data.inputs),
        targets: target_norm.apply(&data.targets),
        ..data.clone()
    };
    Ok(Prepared {
        input_norm,
        target_norm,
        normalized,
    })
}

/// Builds the trainer for `device`. `Auto` falls back to the CPU when no
/// GPU trainer can be made, and says so through `note`.
pub fn make_trainer(
    device: DeviceChoice,
    gpu: &GpuOptions,
    spec: &ModelSpec,
    data: &Dataset,
    params: Vec<f32>,
    config: &TrainConfig,
    note: &mut dyn FnMut(&str),
) -> Result<Box<dyn Trainer>> {
    // Settings errors are the user's to fix whatever the device; they must
    // not read as "no GPU".
    spec.validate()?;
    config.validate()?;
    let cpu = |params| -> Result<Box<dyn Trainer>> {
        Ok(Box::new(CpuTrainer::new(spec, data, params, config)?))
    };
    match device.place(gpu)? {
        Placement::Cpu { note: why } => {
            if let Some(why) = why {
                note(&format!("{why}; training on the CPU"));
            }
            cpu(params)
        }
        Placement::Gpu(ctx) => {
            match GpuTrainer::new(Arc::new(*ctx), spec, data, params.clone(), config) {
                Ok(t) => Ok(Box::new(t)),
                Err(e) if device == DeviceChoice::Auto => {
                    note(&format!("no usable GPU adapter ({e}); training on the CPU"));
                    cpu(params)
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// Where `eval`, `predict` and `sample` run, by the same rules as training.
pub fn inference_device(
    device: DeviceChoice,
    gpu: &GpuOptions,
    note: &mut dyn FnMut(&str),
) -> Result<Inference> {
    match device.place(gpu)? {
        Placement::Gpu(ctx) => Inference::gpu(Arc::new(*ctx)),
        Placement::Cpu { note: why } => {
            if let Some(why) = why {
                note(&format!("{why}; running on the CPU"));
            }
            Ok(Inference::Cpu)
        }
    }
}

pub struct FitResult {
    pub model: Model,
    pub report: TrainReport,
    pub device_name: String,
}

/// Trains `spec` on `data` (original units). A divergence is not an error
/// here: the result holds the last good parameters and `report.diverged`
/// says what happened, so the caller can still save them.
pub fn fit(
    data: &Dataset,
    spec: &ModelSpec,
    config: &TrainConfig,
    device: DeviceChoice,
    gpu: &GpuOptions,
    note: &mut dyn FnMut(&str),
    on_progress: impl FnMut(usize, f32),
) -> Result<FitResult> {
    spec.validate()?;
    config.validate()?;
    let prepared = prepare(data)?;
    let params = init_params(spec, config.seed);
    let mut trainer = make_trainer(
        device,
        gpu,
        spec,
        &prepared.normalized,
        params,
        config,
        note,
    )?;
    let report = run_training(trainer.as_mut(), config.steps, on_progress)?;
    let model = Model {
        spec: spec.clone(),
        params: trainer.params()?,
        input_norm: prepared.input_norm,
        target_norm: prepared.target_norm,
        input_names: data.input_names.clone(),
        target_names: data.target_names.clone(),
    };
    Ok(FitResult {
        model,
        report,
        device_name: trainer.device_name(),
    })
}
