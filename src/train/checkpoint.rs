//! Checkpoints (DESIGN.md, "Training runs you can trust"): the model file
//! of the current parameters plus Adam's moments (`optimizer.m`,
//! `optimizer.v`), the best parameters so far (`optimizer.best`, with a
//! validation set), and in the metadata the optimizer's step and constants
//! (`optimizer`) and every setting needed to continue (`train_config`),
//! the minibatch order included: it is a function of the seed and the step.
//! Model loaders skip the `optimizer.` tensors, so a checkpoint is also a
//! model file.

use std::path::Path;

use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::step::{BETA1, BETA2, EPS};
use super::{BatchOrder, Best, LrSchedule, TrainConfig};
use crate::data::source::{DataSource, ValSource};
use crate::error::{MdnError, Result};
use crate::fsutil::write_atomic;
use crate::model::Model;
use crate::model::io::{model_from_bytes, model_to_bytes_with};

/// Everything `train` was told, as `train_config` stores it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub schedule: LrSchedule,
    pub seed: u64,
    pub data: DataSource,
    pub val: Option<ValSource>,
    pub eval_every: usize,
    pub patience: Option<usize>,
    pub test: Option<std::path::PathBuf>,
    /// Where the minibatches are: epoch `step / steps_per_epoch` of the
    /// permutations seeded by `seed`, batch `step % steps_per_epoch`.
    pub minibatch: MinibatchState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinibatchState {
    pub seed: u64,
    pub step: usize,
    pub epoch: usize,
    pub batch_in_epoch: usize,
}

impl MinibatchState {
    pub fn at(order: &BatchOrder, step: usize) -> Self {
        let (epoch, batch_in_epoch) = order.locate(step);
        MinibatchState {
            seed: order.seed,
            step,
            epoch,
            batch_in_epoch,
        }
    }
}

impl RunConfig {
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            steps: self.steps,
            batch: self.batch,
            lr: self.lr,
            schedule: self.schedule,
            seed: self.seed,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct OptimizerMeta {
    kind: String,
    step: usize,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

#[derive(Serialize, Deserialize)]
struct BestMeta {
    step: usize,
    loss: f64,
    checks_since: usize,
}

/// A training run's state at one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The current parameters, with the spec, normalisation and names.
    pub model: Model,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    /// Steps done.
    pub step: usize,
    pub best: Option<Best>,
    pub run: RunConfig,
}

impl Checkpoint {
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut tensors: Vec<(&str, &[f32])> =
            vec![("optimizer.m", &self.m), ("optimizer.v", &self.v)];
        let mut meta = vec![
            (
                "optimizer",
                json(&OptimizerMeta {
                    kind: "adam".into(),
                    step: self.step,
                    beta1: BETA1,
                    beta2: BETA2,
                    eps: EPS,
                }),
            ),
            ("train_config", json(&self.run)),
        ];
        if let Some(b) = &self.best {
            tensors.push(("optimizer.best", &b.params));
            meta.push((
                "best",
                json(&BestMeta {
                    step: b.step,
                    loss: b.loss,
                    checks_since: b.checks_since,
                }),
            ));
        }
        model_to_bytes_with(&self.model, &tensors, &meta)
    }

    /// Writes the checkpoint atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| MdnError::io(path, e))?;
        Self::from_bytes(&bytes).map_err(|msg| MdnError::ModelFile {
            path: path.to_path_buf(),
            msg,
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        let model = model_from_bytes(bytes)?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |key: &str| -> std::result::Result<&String, String> {
            meta.get(key).ok_or_else(|| {
                format!(
                    "metadata `{key}` is missing: this is a model file, not a checkpoint \
                     (write one with train --checkpoint)"
                )
            })
        };
        let optimizer: OptimizerMeta = serde_json::from_str(get("optimizer")?)
            .map_err(|e| format!("metadata `optimizer` is invalid: {e}"))?;
        if optimizer.kind != "adam" {
            return Err(format!("optimizer `{}` is not adam", optimizer.kind));
        }
        let run: RunConfig = serde_json::from_str(get("train_config")?)
            .map_err(|e| format!("metadata `train_config` is invalid: {e}"))?;
        let n = model.params.len();
        let vector = |name: &str| -> std::result::Result<Vec<f32>, String> {
            let t = tensors
                .tensor(name)
                .map_err(|_| format!("tensor `{name}` is missing"))?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape() != [n] {
                return Err(format!(
                    "tensor `{name}` is {:?} {:?}, expected F32 [{n}]",
                    t.dtype(),
                    t.shape()
                ));
            }
            let v: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(format!("tensor `{name}` holds NaN or infinite values"));
            }
            Ok(v)
        };
        let best = match meta.get("best") {
            Some(text) => {
                let b: BestMeta = serde_json::from_str(text)
                    .map_err(|e| format!("metadata `best` is invalid: {e}"))?;
                Some(Best {
                    step: b.step,
                    loss: b.loss,
                    params: vector("optimizer.best")?,
                    checks_since: b.checks_since,
                })
            }
            None => None,
        };
        if optimizer.step > run.steps {
            return Err(format!(
                "the checkpoint is at step {} of a {}-step run",
                optimizer.step, run.steps
            ));
        }
        Ok(Checkpoint {
            m: vector("optimizer.m")?,
            v: vector("optimizer.v")?,
            step: optimizer.step,
            best,
            model,
            run,
        })
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("checkpoint metadata is plain data")
}
