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
use std::sync::atomic::AtomicBool;

use crate::train::checkpoint::{Checkpoint, MinibatchState, RunConfig};
use crate::train::{
    BatchOrder, Best, CheckpointFn, LoopControl, TrainConfig, TrainReport, Trainer, Validation,
    run_training_with,
};

/// Training data z-scored with its own statistics, plus those statistics.
pub struct Prepared {
    pub input_norm: Normalizer,
    pub target_norm: Normalizer,
    pub normalized: Dataset,
}

/// Z-scores `data` with its own statistics, in place: the only copy of a
/// large training set stays the only one (issue #14).
pub fn prepare(mut data: Dataset) -> Result<Prepared> {
    if data.is_empty() {
        return Err(MdnError::Data("the training data has no rows".into()));
    }
    let input_norm = Normalizer::fit(&data.inputs, data.in_dim)?;
    let target_norm = Normalizer::fit(&data.targets, data.out_dim)?;
    input_norm.apply_in_place(&mut data.inputs);
    target_norm.apply_in_place(&mut data.targets);
    Ok(Prepared {
        input_norm,
        target_norm,
        normalized: data,
    })
}

/// Builds the trainer for `device` on z-scored `data`, which the CPU
/// trainer keeps (no copy). `Auto` falls back to the CPU when no GPU
/// trainer can be made, and says so through `note`.
pub fn make_trainer(
    device: DeviceChoice,
    gpu: &GpuOptions,
    spec: &ModelSpec,
    data: Dataset,
    params: Vec<f32>,
    config: &TrainConfig,
    note: &mut dyn FnMut(&str),
) -> Result<Box<dyn Trainer>> {
    // Settings errors are the user's to fix whatever the device; they must
    // not read as "no GPU".
    spec.validate()?;
    config.validate()?;
    let cpu = |params, data| -> Result<Box<dyn Trainer>> {
        Ok(Box::new(CpuTrainer::from_owned(
            spec, data, params, config,
        )?))
    };
    match device.place(gpu)? {
        Placement::Cpu { note: why } => {
            if let Some(why) = why {
                note(&format!("{why}; training on the CPU"));
            }
            cpu(params, data)
        }
        Placement::Gpu(ctx) => {
            match GpuTrainer::from_owned(Arc::new(*ctx), spec, data, params.clone(), config) {
                Ok(t) => {
                    if let Some(tuned) = &t.kernels().tuned {
                        note(&tuned.describe());
                    }
                    Ok(Box::new(t))
                }
                Err((e, data)) if device == DeviceChoice::Auto => {
                    note(&format!("no usable GPU adapter ({e}); training on the CPU"));
                    cpu(params, *data)
                }
                Err((e, _)) => Err(e),
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
    /// The model to write: the best on the validation set when there is
    /// one, else the last good parameters.
    pub model: Model,
    /// Its validation loss (original units), with a validation set.
    pub val_loss: Option<f64>,
    pub report: TrainReport,
    pub device_name: String,
    /// The training rows, z-scored in place with `model`'s statistics
    /// (the trainer had them; they were never copied). The model's losses
    /// on them are [`Model::evaluate_z_scored`]'s.
    pub train_z_scored: Dataset,
}

/// Where [`fit_with`] hands its checkpoints, to be written.
pub type CheckpointSink<'a> = &'a mut dyn FnMut(Checkpoint) -> Result<()>;

/// What a run has besides the data, the spec and the settings.
#[derive(Default)]
pub struct FitOptions<'a> {
    /// Validation rows (original units); the best parameters on them are
    /// kept and returned.
    pub val: Option<&'a Dataset>,
    /// Steps between validation checks.
    pub eval_every: usize,
    /// Stop after this many checks without a better validation loss.
    pub patience: Option<usize>,
    /// Set (by a signal handler) to stop after the chunk in flight.
    pub stop: Option<&'a AtomicBool>,
    /// Every so many steps, the run's state as a [`Checkpoint`] (its
    /// `run` is the caller's to fill in) to write.
    pub checkpoint: Option<(usize, CheckpointSink<'a>)>,
    /// Continue this checkpoint instead of starting afresh.
    pub resume: Option<Checkpoint>,
    /// What the checkpoints' `train_config` says (required with
    /// `checkpoint`).
    pub run: Option<RunConfig>,
}

/// Trains `spec` on `data` (original units). A divergence is not an error
/// here: the result holds the last good parameters and `report.diverged`
/// says what happened, so the caller can still save them. Works on a copy
/// of `data`; [`fit_with`] takes the data instead.
pub fn fit(
    data: &Dataset,
    spec: &ModelSpec,
    config: &TrainConfig,
    device: DeviceChoice,
    gpu: &GpuOptions,
    note: &mut dyn FnMut(&str),
    on_progress: impl FnMut(usize, f32),
) -> Result<FitResult> {
    fit_with(
        data.clone(),
        spec,
        config,
        device,
        gpu,
        FitOptions::default(),
        note,
        on_progress,
    )
}

/// [`fit`] with a validation set, a stop flag, checkpoints or a resumed
/// state ([`FitOptions`]). Takes the training rows and z-scores them in
/// place; the trainer borrows them for the run and they come back,
/// z-scored, in [`FitResult::train_z_scored`].
#[allow(clippy::too_many_arguments)]
pub fn fit_with(
    data: Dataset,
    spec: &ModelSpec,
    config: &TrainConfig,
    device: DeviceChoice,
    gpu: &GpuOptions,
    opts: FitOptions<'_>,
    note: &mut dyn FnMut(&str),
    on_progress: impl FnMut(usize, f32),
) -> Result<FitResult> {
    spec.validate()?;
    config.validate()?;
    let FitOptions {
        val,
        eval_every,
        patience,
        stop,
        mut checkpoint,
        resume,
        run,
    } = opts;
    if let Some(v) = val {
        if v.is_empty() {
            return Err(MdnError::Data("the validation set has no rows".into()));
        }
        if v.in_dim != data.in_dim || v.out_dim != data.out_dim {
            return Err(MdnError::Data(format!(
                "the validation set has {} input and {} target column(s), the training data {} and {}",
                v.in_dim, v.out_dim, data.in_dim, data.out_dim
            )));
        }
    }
    let (rows, input_names, target_names) = (
        data.len(),
        data.input_names.clone(),
        data.target_names.clone(),
    );
    let Prepared {
        input_norm,
        target_norm,
        normalized,
    } = prepare(data)?;
    let params = match &resume {
        Some(ck) => ck.model.params.clone(),
        None => init_params(spec, config.seed),
    };
    let mut trainer = make_trainer(device, gpu, spec, normalized, params, config, note)?;
    if let Some(ck) = &resume {
        trainer.restore_state(&ck.model.params, &ck.m, &ck.v, ck.step)?;
    }
    // A model with these statistics and names, for whichever parameters
    // are being checked or written.
    let shell = Model {
        spec: spec.clone(),
        params: Vec::new(),
        input_norm,
        target_norm,
        input_names,
        target_names,
    };
    let with_params = |params: Vec<f32>| Model {
        params,
        ..shell.clone()
    };
    let mut val_loss = |params: &[f32]| -> Result<f64> {
        let v = val.expect("only called with a validation set");
        Ok(with_params(params.to_vec()).evaluate(v)?.value)
    };
    let every = checkpoint.as_ref().map(|(e, _)| *e);
    let mut write = |t: &mut dyn Trainer, best: Option<&Best>| -> Result<()> {
        let (_, save) = checkpoint.as_mut().expect("only called with checkpoints");
        let (m, v) = t.optimizer_state()?;
        let step = t.step();
        let mut run = run
            .clone()
            .ok_or_else(|| MdnError::Config("a checkpoint needs the run's settings".into()))?;
        run.minibatch =
            MinibatchState::at(&BatchOrder::new(rows, config.batch, config.seed)?, step);
        save(Checkpoint {
            model: with_params(t.params()?),
            m,
            v,
            step,
            best: best.cloned(),
            run,
        })
    };
    let ctl = LoopControl {
        total_steps: config.steps,
        validation: val.map(|_| Validation {
            every: eval_every.max(1),
            patience,
            loss: &mut val_loss,
        }),
        stop,
        checkpoint: every.map(|e| (e, &mut write as CheckpointFn<'_>)),
        best: resume.and_then(|ck| ck.best),
    };
    let report = run_training_with(trainer.as_mut(), ctl, on_progress)?;
    let (params, val_loss) = match &report.best {
        Some(b) => (b.params.clone(), Some(b.loss)),
        None => (trainer.params()?, None),
    };
    let device_name = trainer.device_name();
    let train_z_scored = trainer.into_data()?;
    Ok(FitResult {
        model: with_params(params),
        val_loss,
        report,
        device_name,
        train_z_scored,
    })
}
