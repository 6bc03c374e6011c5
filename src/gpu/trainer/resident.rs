//! Everything a GPU trainer keeps on the device: the training data, the
//! epoch permutations, parameters, gradients and Adam state, each layer's
//! activations and deltas, the loss state, and the uniform records of every
//! stage (the per-step records are written before each submission).
//!
//! A trainer of M models of one shape (a sweep's, `GpuTrainer::many`)
//! keeps each model's parameters, Adam state, gradient partials, epoch
//! permutations, row losses and loss state side by side in the same
//! buffers, model m at m times one model's length; the data is shared.

use crate::data::Dataset;
use crate::error::{MdnError, Result};
use crate::gpu::buffers::{UniformArena, UniformSlot, staging, storage, storage_init};
use crate::gpu::config::KernelConfig;
use crate::gpu::context::GpuContext;
use crate::gpu::fused::FusedShape;
use crate::gpu::kernels::adam_info;
use crate::gpu::layouts::{
    AdamInfo, AdamLayer, DenseInfo, FusedInfo, GatherInfo, HeadInfo, LossState, ReduceInfo,
    StepInfo,
};
use crate::gpu::loop_budget::{LLVMPIPE_LOOP_LIMIT, check_loss_rows, loop_budget};
use crate::gpu::matmul::Product;
use crate::model::{ModelSpec, ParamLayout};
use crate::train::BatchOrder;

/// Steps recorded into one submission at most (the size of the step-info
/// buffer, in records).
pub const STEP_CAPACITY: usize = 1024;
/// Most epoch permutations resident at once, and their memory budget.
const MAX_RING_SLOTS: usize = 64;
const RING_BYTES: u64 = 64 << 20;
/// Budget for the weight-gradient partials of split batches.
const PARTIAL_BYTES: u64 = 256 << 20;

/// Where each stage's uniform record sits in [`Resident::uniforms`].
pub(super) struct Slots {
    pub gather: UniformSlot,
    pub dense: Vec<UniformSlot>,
    pub head: UniformSlot,
    pub reduce: UniformSlot,
    pub adam: UniformSlot,
    /// The fused step's `FusedInfo`, when the trainer runs it.
    pub fused: Option<UniformSlot>,
}

pub(super) struct Resident {
    /// The training data, or in a streamed trainer a window of the rows
    /// the next submission's steps read, in step order.
    pub inputs: wgpu::Buffer,
    pub targets: wgpu::Buffer,
    /// `ring_slots` epoch permutations of `rows` indices each; streamed,
    /// the identity over the window.
    pub perm: wgpu::Buffer,
    pub ring_slots: usize,
    /// Models trained side by side (1 but in a sweep).
    pub models: usize,
    /// Each model's learning rate as a multiple of the step record's (0
    /// freezes a model); `adam.wgsl`'s `model_lr`.
    pub model_lr: wgpu::Buffer,
    /// Steps one streamed window holds; `None`: the data is resident.
    pub window_steps: Option<usize>,
    pub params: wgpu::Buffer,
    /// The last good parameters (`Trainer::checkpoint`).
    pub saved: wgpu::Buffer,
    pub grads: wgpu::Buffer,
    pub adam_m: wgpu::Buffer,
    pub adam_v: wgpu::Buffer,
    /// `acts[0]` is the gathered batch input, `acts[i + 1]` layer i's output.
    pub acts: Vec<wgpu::Buffer>,
    /// `deltas[i]` = ∂L/∂z of layer i's output.
    pub deltas: Vec<wgpu::Buffer>,
    pub batch_targets: wgpu::Buffer,
    pub row_loss: wgpu::Buffer,
    pub loss_state: wgpu::Buffer,
    /// Where `take_loss` copies the loss state to read it (kept, so
    /// frequent readers such as the visualizer allocate nothing per read).
    pub loss_staging: wgpu::Buffer,
    /// Layer 0 has no layer below to send a gradient to; its binding still
    /// needs a buffer of its own.
    pub no_grad_in: wgpu::Buffer,
    /// Each layer's weight-gradient partials, `splits[l]` slices each.
    pub partials: wgpu::Buffer,
    pub splits: Vec<u32>,
    pub uniforms: wgpu::Buffer,
    pub slots: Slots,
    /// One `StepInfo` record per step of a submission, `step_stride` apart.
    pub step_info: wgpu::Buffer,
    pub step_stride: u64,
}

impl Resident {
    /// Allocates and fills everything for training `spec` on `data`
    /// (z-scored) in minibatches of `order`, starting from `params` (one
    /// vector per model, each with its learning-rate multiple in
    /// `model_lr`); with `fused`, the gradient partials are the fused
    /// step's (one slice per workgroup and layer) instead of the
    /// weight-gradient splits'. Several models need the fused step and
    /// resident data: the per-stage kernels and the streamed window serve
    /// one model.
    #[expect(
        clippy::too_many_arguments,
        reason = "the trainer's inputs, passed through once"
    )]
    pub fn new(
        c: &GpuContext,
        cfg: &KernelConfig,
        spec: &ModelSpec,
        layout: &ParamLayout,
        order: &BatchOrder,
        data: &Dataset,
        params: &[Vec<f32>],
        model_lr: &[f32],
        fused: Option<&FusedShape>,
    ) -> Result<Self> {
        let models = params.len();
        assert!(
            models >= 1 && model_lr.len() == models,
            "a learning rate per model"
        );
        let b = order.batch;
        check_loss_rows(b, cfg.adam_wg, loop_budget(&c.info)).map_err(MdnError::Config)?;
        let rows = order.rows;
        let n = layout.len;
        let widths = spec.widths();
        let binding_limit = c.device.limits().max_storage_buffer_binding_size;
        let slot_bytes = rows as u64 * 4;
        // Data (or one epoch's permutation) larger than a storage binding
        // streams: each submission uploads the rows its steps read.
        let widest = spec.in_dim.max(spec.out_dim) as u64;
        let window_steps = (cfg.stream || rows as u64 * widest * 4 > binding_limit).then(|| {
            let step_bytes = b as u64 * widest * 4;
            (binding_limit / step_bytes).clamp(1, STEP_CAPACITY as u64) as usize
        });
        // No more epochs than one submission can span: the slots (and the
        // permutations shuffled ahead for them) beyond that only cost memory
        // (4 M rows: 64 MB on the device, 64 MB on the host).
        let spanned = STEP_CAPACITY.div_ceil(order.steps_per_epoch()) + 1;
        let ring_slots = (RING_BYTES.min(binding_limit) / (slot_bytes * models as u64))
            .clamp(1, MAX_RING_SLOTS.min(spanned) as u64) as usize;
        if models > 1 {
            if fused.is_none() || window_steps.is_some() {
                return Err(MdnError::Config(
                    "several models in one trainer need the fused step and data that fits one storage binding".into(),
                ));
            }
            if slot_bytes * models as u64 > binding_limit {
                return Err(MdnError::Config(format!(
                    "{models} models' epoch permutations of {rows} rows exceed one storage binding ({binding_limit} bytes)"
                )));
            }
        }
        let each = |what: &str, widths: &[usize]| -> Result<Vec<wgpu::Buffer>> {
            widths
                .iter()
                .enumerate()
                .map(|(i, &w)| storage(c, &format!("{what} {i}"), b * w))
                .collect()
        };

        let splits = match fused {
            Some(f) => vec![f.groups; layout.layers.len()],
            None => choose_splits(cfg, layout, b, binding_limit, loop_budget(&c.info))
                .map_err(MdnError::Config)?,
        };
        // The fused step's slices are laid out as the splits' are: layer
        // by layer, `splits` slices each (FusedShape::partial_offset).
        let mut partial_offset = 0usize;
        let mut dense = Vec::with_capacity(layout.layers.len());
        let mut adam_layers = Vec::with_capacity(layout.layers.len());
        for (i, (l, &s)) in layout.layers.iter().zip(&splits).enumerate() {
            let len = l.out_dim * (l.in_dim + 1);
            debug_assert!(fused.is_none_or(|f| f.partial_offset(i) == partial_offset));
            dense.push(DenseInfo::for_layer(l, b, s, partial_offset));
            adam_layers.push(AdamLayer {
                start: l.weight as u32,
                len: len as u32,
                splits: s,
                partial_offset: partial_offset as u32,
            });
            partial_offset += s as usize * len;
        }
        debug_assert!(fused.is_none_or(|f| f.partials_len() == partial_offset));

        let mut arena = UniformArena::new(c);
        let slots = Slots {
            gather: arena.push(&GatherInfo {
                rows: b as u32,
                in_dim: spec.in_dim as u32,
                out_dim: spec.out_dim as u32,
                ..Default::default()
            }),
            dense: dense.iter().map(|d| arena.push(d)).collect(),
            head: arena.push(&HeadInfo {
                rows: b as u32,
                k: spec.k() as u32,
                d: spec.out_dim as u32,
                width: spec.head_width() as u32,
                grad_scale: 1.0 / b as f32,
                ..Default::default()
            }),
            reduce: arena.push(&ReduceInfo {
                rows: b as u32,
                ..Default::default()
            }),
            adam: arena.push(&AdamInfo {
                partial_stride: partial_offset as u32,
                ..adam_info(n, &adam_layers)
            }),
            fused: fused.map(|f| {
                arena.push(&FusedInfo {
                    param_stride: n as u32,
                    partial_stride: partial_offset as u32,
                    perm_stride: (rows * ring_slots) as u32,
                    ..f.info
                })
            }),
        };

        let all_params: Vec<f32> = params.concat();
        debug_assert_eq!(all_params.len(), n * models);
        let step_stride = (size_of::<StepInfo>() as u64)
            .max(256)
            .next_multiple_of(c.device.limits().min_uniform_buffer_offset_alignment as u64);
        let (inputs, targets, perm) = match window_steps {
            None => (
                storage_init(c, "training inputs", &data.inputs)?,
                storage_init(c, "training targets", &data.targets)?,
                storage(c, "epoch permutations", rows * ring_slots * models)?,
            ),
            Some(w) => {
                let identity: Vec<u32> = (0..(w * b) as u32).collect();
                (
                    storage(c, "streamed inputs", w * b * spec.in_dim)?,
                    storage(c, "streamed targets", w * b * spec.out_dim)?,
                    storage_init(c, "streamed rows", &identity)?,
                )
            }
        };
        Ok(Resident {
            inputs,
            targets,
            perm,
            ring_slots: if window_steps.is_some() {
                1
            } else {
                ring_slots
            },
            window_steps,
            models,
            model_lr: storage_init(c, "model learning rates", model_lr)?,
            params: storage_init(c, "parameters", &all_params)?,
            saved: storage_init(c, "checkpoint", &all_params)?,
            grads: storage(c, "gradient", n * models)?,
            adam_m: storage(c, "adam m", n * models)?,
            adam_v: storage(c, "adam v", n * models)?,
            acts: each("activation", &widths)?,
            deltas: each("delta", &widths[1..])?,
            batch_targets: storage(c, "batch targets", b * spec.out_dim)?,
            row_loss: storage(c, "row loss", b * models)?,
            loss_state: storage(c, "loss state", models * size_of::<LossState>() / 4)?,
            loss_staging: staging(c, "loss readback", (models * size_of::<LossState>()) as u64),
            no_grad_in: storage(c, "no input gradient", 1)?,
            partials: storage(c, "gradient partials", partial_offset * models)?,
            splits,
            uniforms: arena.finish(c, "trainer uniforms"),
            slots,
            step_info: c.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("step info"),
                size: step_stride * STEP_CAPACITY as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            step_stride,
        })
    }
}

/// Bytes one model adds to the largest of a fused trainer's buffers that
/// grow with its models ([`Resident::new`]): its gradient partials (a
/// slice per workgroup and layer), its epoch permutations (one ring slot
/// at least), its parameters, Adam moments and gradient, or its row
/// losses. One storage binding holds the binding limit over this many
/// models.
pub fn bytes_per_model(layout: &ParamLayout, fused: &FusedShape, rows: usize, batch: usize) -> u64 {
    4 * [fused.partials_len(), rows, layout.len, batch]
        .into_iter()
        .max()
        .unwrap_or(1)
        .max(1) as u64
}

/// Splits of the batch for each layer's weight-gradient pass: enough that
/// about `target_invocations` run at once (a 1→64 layer alone is a handful
/// of tiles, however big the batch), each split at least `min_split_rows`
/// rows, and all partials within budget. Every split gets rows: the count
/// is recomputed from the rows per split. Where the driver stops loops past
/// a number of passes (`loop_budget`, see `gpu::loop_budget`), no split has
/// more rows than fit it; an error when the partials of that many splits
/// exceed their memory budget.
pub fn choose_splits(
    cfg: &KernelConfig,
    layout: &ParamLayout,
    batch: usize,
    binding_limit: u64,
    loop_budget: Option<u64>,
) -> std::result::Result<Vec<u32>, String> {
    let max_splits = (batch / cfg.min_split_rows as usize).max(1);
    // The fewest splits whose rows stay within the loop budget (a few
    // passes spared for the invocation's other loops).
    let products: Vec<Product> = layout
        .layers
        .iter()
        .map(|l| Product::weight_gradient(l, batch))
        .collect();
    let fewest: Vec<usize> = products
        .iter()
        .map(|p| match loop_budget {
            Some(budget) => {
                let per_row = cfg.loop_passes_per_k(p);
                let rows = ((budget.saturating_sub(16)) / per_row.max(1)).max(1) as usize;
                batch.div_ceil(rows)
            }
            None => 1,
        })
        .collect();
    let mut splits: Vec<usize> = products
        .iter()
        .zip(&fewest)
        .map(|(p, &fewest)| {
            let busy = cfg.matmul_invocations(p).max(1);
            ((cfg.target_invocations as u64)
                .div_ceil(busy)
                .min(max_splits as u64)
                .max(1) as usize)
                .max(fewest)
        })
        .collect();
    let budget = PARTIAL_BYTES.min(binding_limit) / 4;
    let total = |s: &[usize]| -> u64 {
        s.iter()
            .zip(&layout.layers)
            .map(|(&s, l)| (s * l.out_dim * (l.in_dim + 1)) as u64)
            .sum()
    };
    while total(&splits) > budget && splits.iter().zip(&fewest).any(|(&s, &f)| s > f) {
        for (s, &f) in splits.iter_mut().zip(&fewest) {
            *s = (*s / 2).max(f);
        }
    }
    // Without a loop budget one split a layer is always possible; a
    // network too large even so is refused where its buffers are made.
    if loop_budget.is_some() && total(&splits) > budget {
        return Err(format!(
            "a minibatch of {batch} rows needs {} weight-gradient splits on this driver (it stops \
             loops past {} passes), whose partials exceed their {} MiB; use a smaller --batch",
            splits.iter().max().unwrap_or(&1),
            LLVMPIPE_LOOP_LIMIT,
            (budget * 4) >> 20
        ));
    }
    Ok(splits
        .into_iter()
        .map(|s| {
            let rows = batch.div_ceil(s);
            batch.div_ceil(rows) as u32
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under a loop budget no split of any layer's weight gradient has
    /// more rows than its loops fit (llvmpipe measured: 65 536-row splits
    /// came out 5 % off, tests/gpu_loop_budget.rs); a batch whose splits'
    /// partials would then outgrow their memory is refused, saying so.
    #[test]
    fn a_loop_budget_caps_the_rows_of_a_split() {
        let cfg = KernelConfig::software();
        let spec = ModelSpec::mixture(1, 1, vec![64, 64], 5).unwrap();
        let layout = spec.layout();
        let limit = 1 << 30;
        let batch = 262_144;
        let free = choose_splits(&cfg, &layout, batch, limit, None).unwrap();
        let rows = |s: u32| batch.div_ceil(s as usize) as u64;
        assert!(free.iter().any(|&s| rows(s) >= 65_536), "{free:?}");
        let budget = 32_767;
        let capped = choose_splits(&cfg, &layout, batch, limit, Some(budget)).unwrap();
        for (l, &s) in layout.layers.iter().zip(&capped) {
            let per_row = cfg.loop_passes_per_k(&Product::weight_gradient(l, batch));
            assert!(rows(s) * per_row <= budget, "{s} splits of {batch} rows");
        }
        // Only as many more splits as the budget asks: a small batch keeps
        // its splits.
        assert_eq!(
            choose_splits(&cfg, &layout, 4096, limit, Some(budget)).unwrap(),
            choose_splits(&cfg, &layout, 4096, limit, None).unwrap()
        );

        let wide = ModelSpec::mixture(1, 1, vec![2048, 2048], 5).unwrap();
        let e = choose_splits(&cfg, &wide.layout(), 1 << 24, limit, Some(budget)).unwrap_err();
        assert!(e.contains("smaller --batch"), "{e}");
        // Without a budget one split a layer always stands.
        let huge = ModelSpec::mixture(1, 1, vec![8192, 8192], 5).unwrap();
        let one = choose_splits(&cfg, &huge.layout(), 1024, limit, None).unwrap();
        assert!(one.iter().all(|&s| s == 1), "{one:?}");
    }
}
