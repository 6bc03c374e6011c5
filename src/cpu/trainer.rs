//! The CPU trainer: the stages of one Adam step, in the order the GPU
//! trainer records its dispatches.

use super::adam::adam;
use super::dense_backward::{BackwardScratch, dense_backward};
use super::dense_forward::dense_forward;
use super::gather::gather;
use super::mixture_head::mixture_head;
use super::mse_head::mse_head;
use super::reduce::{LossAccumulator, reduce};
use crate::data::Dataset;
use crate::error::{MdnError, Result};
use crate::model::{Head, ModelSpec, ParamLayout};
use crate::train::{BatchOrder, TrainConfig, Trainer};

pub struct CpuTrainer {
    spec: ModelSpec,
    layout: ParamLayout,
    config: TrainConfig,
    order: BatchOrder,
    /// z-scored training data.
    inputs: Vec<f32>,
    targets: Vec<f32>,
    perm: Vec<u32>,
    perm_epoch: Option<usize>,
    pub params: Vec<f32>,
    pub grads: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    saved: Vec<f32>,
    /// acts[0] is the batch input, acts[i + 1] the output of layer i.
    acts: Vec<Vec<f32>>,
    /// deltas[i] = ∂L/∂z of layer i's output.
    deltas: Vec<Vec<f32>>,
    batch_targets: Vec<f32>,
    row_loss: Vec<f32>,
    scratch: BackwardScratch,
    acc: LossAccumulator,
    step: usize,
}

impl CpuTrainer {
    /// `data` must already be z-scored; `params` is the initial parameter
    /// vector (its length must match the spec's layout).
    pub fn new(
        spec: &ModelSpec,
        data: &Dataset,
        params: Vec<f32>,
        config: &TrainConfig,
    ) -> Result<Self> {
        config.validate()?;
        spec.validate()?;
        let layout = spec.layout();
        if params.len() != layout.len {
            return Err(MdnError::Spec(format!(
                "parameter vector has {} values, the spec needs {}",
                params.len(),
                layout.len
            )));
        }
        if data.in_dim != spec.in_dim || data.out_dim != spec.out_dim {
            return Err(MdnError::Data(format!(
                "data has {} input and {} target columns, the model expects {} and {}",
                data.in_dim, data.out_dim, spec.in_dim, spec.out_dim
            )));
        }
        let order = BatchOrder::new(data.len(), config.batch, config.seed)?;
        let b = order.batch;
        let widths = spec.widths();
        let acts = widths.iter().map(|&w| vec![0.0; b * w]).collect();
        let deltas = widths[1..].iter().map(|&w| vec![0.0; b * w]).collect();
        let n = layout.len;
        Ok(CpuTrainer {
            spec: spec.clone(),
            layout,
            config: config.clone(),
            order,
            inputs: data.inputs.clone(),
            targets: data.targets.clone(),
            perm: Vec::new(),
            perm_epoch: None,
            saved: params.clone(),
            params,
            grads: vec![0.0; n],
            m: vec![0.0; n],
            v: vec![0.0; n],
            acts,
            deltas,
            batch_targets: vec![0.0; b * spec.out_dim],
            row_loss: vec![0.0; b],
            scratch: BackwardScratch::default(),
            acc: LossAccumulator::default(),
            step: 0,
        })
    }

    pub fn batch_order(&self) -> &BatchOrder {
        &self.order
    }

    /// Forward and backward for the current minibatch, leaving the gradient
    /// in `self.grads` (no parameter update). Exposed for the gradient check
    /// and the GPU parity tests.
    pub fn compute_gradients(&mut self) {
        let (epoch, index) = self.order.locate(self.step);
        if self.perm_epoch != Some(epoch) {
            self.perm = self.order.permutation(epoch);
            self.perm_epoch = Some(epoch);
        }
        let b = self.order.batch;
        let start = index * b;
        gather(
            &self.inputs,
            self.spec.in_dim,
            &self.perm,
            start,
            &mut self.acts[0],
        );
        gather(
            &self.targets,
            self.spec.out_dim,
            &self.perm,
            start,
            &mut self.batch_targets,
        );

        for (i, layer) in self.layout.layers.iter().enumerate() {
            let (lo, hi) = self.acts.split_at_mut(i + 1);
            dense_forward(&self.params, layer, &lo[i], &mut hi[0]);
        }
        let last = self.layout.layers.len() - 1;
        let scale = 1.0 / b as f32;
        let head_out = &self.acts[last + 1];
        match self.spec.head {
            Head::Mixture { k } => mixture_head(
                head_out,
                &self.batch_targets,
                k,
                scale,
                &mut self.deltas[last],
                &mut self.row_loss,
            ),
            Head::Mse => mse_head(
                head_out,
                &self.batch_targets,
                scale,
                &mut self.deltas[last],
                &mut self.row_loss,
            ),
        }
        reduce(&self.row_loss, &mut self.acc);
        for (i, layer) in self.layout.layers.iter().enumerate().rev() {
            let (below, here) = self.deltas.split_at_mut(i);
            let grad_in = if i > 0 {
                Some(&mut below[i - 1][..])
            } else {
                None
            };
            dense_backward(
                &self.params,
                layer,
                &self.acts[i],
                &here[0],
                &mut self.grads,
                grad_in,
                &mut self.scratch,
            );
        }
    }

    /// One full step: gradients, then Adam.
    pub fn train_step(&mut self) {
        self.compute_gradients();
        let s = self.config.adam_step(self.step);
        adam(&mut self.params, &self.grads, &mut self.m, &mut self.v, &s);
        self.step += 1;
    }

    /// Last batch's row losses (for tests).
    pub fn row_loss(&self) -> &[f32] {
        &self.row_loss
    }
}

impl Trainer for CpuTrainer {
    fn step(&self) -> usize {
        self.step
    }

    fn run(&mut self, n: usize) -> Result<()> {
        for _ in 0..n {
            self.train_step();
        }
        Ok(())
    }

    fn take_loss(&mut self) -> Result<LossAccumulator> {
        Ok(std::mem::take(&mut self.acc))
    }

    fn checkpoint(&mut self) -> Result<()> {
        self.saved.copy_from_slice(&self.params);
        Ok(())
    }

    fn restore_checkpoint(&mut self) -> Result<()> {
        self.params.copy_from_slice(&self.saved);
        Ok(())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn device_name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }
}
