//! The CPU trainer: the stages of one Adam step, in the order the GPU
//! trainer records its dispatches.

use rayon::prelude::*;

use super::adam::adam;
use super::dense_backward::dense_backward_rows;
use super::dense_forward::{dense_forward_rows, transpose_weight};
use super::gather::gather;
use super::reduce::reduce;
use crate::data::Dataset;
use crate::error::Result;
use crate::model::{ModelSpec, ParamLayout};
use crate::train::{
    BatchOrder, LossAccumulator, TrainConfig, Trainer, check_state_lengths, check_trainer_inputs,
};

/// Rows per block: each block runs the whole forward and backward pass on
/// one thread while its activations stay in cache, so a step has one
/// fork/join instead of one per stage. The block count depends only on the
/// batch size, never on the thread count, so results are bit-identical on
/// any machine (with the same kernel set). 64 rather than 128 rows: a
/// 1 024-row batch then keeps 16 threads busy instead of 8, for ~5 % on
/// two cores (paired runs of the small benchmark, median ratio 1.056).
const BLOCK_ROWS: usize = 64;
const MAX_BLOCKS: usize = 16;

/// One block of rows of the minibatch, with its own buffers.
struct Block {
    /// acts[0] is the block's input rows, acts[i + 1] the output of layer i.
    acts: Vec<Vec<f32>>,
    /// deltas[i] = ∂L/∂z of layer i's output.
    deltas: Vec<Vec<f32>>,
    targets: Vec<f32>,
    row_loss: Vec<f32>,
    /// This block's share of the gradient (full parameter length).
    grads: Vec<f32>,
    head_scratch: Vec<f32>,
}

pub struct CpuTrainer {
    spec: ModelSpec,
    layout: ParamLayout,
    config: TrainConfig,
    order: BatchOrder,
    /// z-scored training data, and its columns' names.
    inputs: Vec<f32>,
    names: Dataset,
    targets: Vec<f32>,
    perm: Vec<u32>,
    perm_epoch: Option<usize>,
    pub params: Vec<f32>,
    /// Each layer's Wᵀ, refreshed from `params` once per step.
    weight_t: Vec<Vec<f32>>,
    pub grads: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    saved: Vec<f32>,
    blocks: Vec<Block>,
    block_rows: usize,
    row_loss: Vec<f32>,
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
        check_trainer_inputs(spec, data, params.len(), config)?;
        Self::from_owned(spec, data.clone(), params, config)
    }

    /// [`CpuTrainer::new`] keeping `data`'s buffers instead of copying
    /// them: a large training set is held once.
    pub fn from_owned(
        spec: &ModelSpec,
        data: Dataset,
        params: Vec<f32>,
        config: &TrainConfig,
    ) -> Result<Self> {
        let (layout, order) = check_trainer_inputs(spec, &data, params.len(), config)?;
        let b = order.batch;
        let n_blocks = (b / BLOCK_ROWS).clamp(1, MAX_BLOCKS);
        let block_rows = b.div_ceil(n_blocks);
        let widths = spec.widths();
        let blocks = (0..b.div_ceil(block_rows))
            .map(|i| {
                let r = block_rows.min(b - i * block_rows);
                Block {
                    acts: widths.iter().map(|&w| vec![0.0; r * w]).collect(),
                    deltas: widths[1..].iter().map(|&w| vec![0.0; r * w]).collect(),
                    targets: vec![0.0; r * spec.out_dim],
                    row_loss: vec![0.0; r],
                    grads: vec![0.0; layout.len],
                    head_scratch: Vec::new(),
                }
            })
            .collect();
        let n = layout.len;
        let n_layers = layout.layers.len();
        Ok(CpuTrainer {
            spec: spec.clone(),
            layout,
            config: config.clone(),
            order,
            names: data.clone_names(),
            inputs: data.inputs,
            targets: data.targets,
            perm: Vec::new(),
            perm_epoch: None,
            saved: params.clone(),
            weight_t: vec![Vec::new(); n_layers],
            params,
            grads: vec![0.0; n],
            m: vec![0.0; n],
            v: vec![0.0; n],
            blocks,
            block_rows,
            row_loss: vec![0.0; b],
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
        let scale = 1.0 / b as f32;
        for (layer, wt) in self.layout.layers.iter().zip(&mut self.weight_t) {
            transpose_weight(&self.params, layer, wt);
        }
        let (spec, layout, params) = (&self.spec, &self.layout, &self.params);
        let weight_t = &self.weight_t;
        let (inputs, targets, perm) = (&self.inputs, &self.targets, &self.perm);
        let first_row = index * b;
        let block_rows = self.block_rows;
        let head_def = spec.head_def();
        let k = spec.k();
        self.blocks.par_iter_mut().enumerate().for_each(|(i, blk)| {
            let start = first_row + i * block_rows;
            gather(inputs, spec.in_dim, perm, start, &mut blk.acts[0]);
            gather(targets, spec.out_dim, perm, start, &mut blk.targets);
            for (l, layer) in layout.layers.iter().enumerate() {
                let (lo, hi) = blk.acts.split_at_mut(l + 1);
                dense_forward_rows(params, layer, &weight_t[l], &lo[l], &mut hi[0]);
            }
            let last = layout.layers.len() - 1;
            let head = &blk.acts[last + 1];
            head_def.loss_rows(
                head,
                &blk.targets,
                k,
                scale,
                &mut blk.deltas[last],
                &mut blk.row_loss,
                &mut blk.head_scratch,
            );
            for (l, layer) in layout.layers.iter().enumerate().rev() {
                let (below, here) = blk.deltas.split_at_mut(l);
                let grad_in = if l > 0 {
                    Some(&mut below[l - 1][..])
                } else {
                    None
                };
                let layer_grads = &mut blk.grads[layer.weight..layer.bias + layer.out_dim];
                dense_backward_rows(params, layer, &blk.acts[l], &here[0], layer_grads, grad_in);
            }
        });
        // Sum the blocks' gradients in block order (deterministic), split
        // over parameter ranges so large models use every thread.
        let blocks = &self.blocks;
        self.grads
            .par_chunks_mut(4096)
            .enumerate()
            .for_each(|(c, out)| {
                let range = c * 4096..c * 4096 + out.len();
                out.copy_from_slice(&blocks[0].grads[range.clone()]);
                for blk in &blocks[1..] {
                    for (o, &g) in out.iter_mut().zip(&blk.grads[range.clone()]) {
                        *o += g;
                    }
                }
            });
        let mut at = 0;
        for blk in &self.blocks {
            self.row_loss[at..at + blk.row_loss.len()].copy_from_slice(&blk.row_loss);
            at += blk.row_loss.len();
        }
        reduce(&self.row_loss, &mut self.acc);
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
        // The whole run on a rayon worker: each step's fork/join is then a
        // join between workers that are already awake, instead of waking
        // the pool from this thread and sleeping until it is done (a futex
        // round trip per step, ~15 % of a small step).
        rayon::scope(|_| {
            for _ in 0..n {
                self.train_step();
            }
        });
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

    fn optimizer_state(&mut self) -> Result<(Vec<f32>, Vec<f32>)> {
        Ok((self.m.clone(), self.v.clone()))
    }

    fn restore_state(&mut self, params: &[f32], m: &[f32], v: &[f32], step: usize) -> Result<()> {
        check_state_lengths(self.params.len(), params, m, v)?;
        self.params.copy_from_slice(params);
        self.saved.copy_from_slice(params);
        self.m.copy_from_slice(m);
        self.v.copy_from_slice(v);
        self.step = step;
        Ok(())
    }

    fn device_name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn into_data(self: Box<Self>) -> Result<Dataset> {
        let CpuTrainer {
            inputs,
            targets,
            names,
            ..
        } = *self;
        Ok(Dataset {
            inputs,
            targets,
            ..names
        })
    }
}
