//! One training step as a list of dispatches: which pipeline, which bind
//! group, how many workgroups, and whether the step's `StepInfo` record is
//! bound. Recorded once when the trainer is built, replayed for every step.

use super::resident::Resident;
use crate::error::Result;
use crate::gpu::bindings::{
    AdamBindings, DenseBackwardBindings, DenseForwardBindings, FusedStepBindings, GatherBindings,
    HeadLossBindings,
};
use crate::gpu::buffers::{UniformSlot, grid, slot, whole};
use crate::gpu::context::GpuContext;
use crate::gpu::fused::FusedShape;
use crate::gpu::kernels::Kernels;
use crate::gpu::layouts::StepInfo;
use crate::gpu::matmul::{MatmulShape, Product};
use crate::model::{ModelSpec, ParamLayout};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pipe {
    Gather,
    Forward(MatmulShape),
    Head,
    BackwardWeight(MatmulShape),
    BackwardInput(MatmulShape),
    Adam,
    SumPartials,
    /// The fused forward/backward pass (`fused_step.wgsl`).
    Fused,
}

impl Pipe {
    pub(super) fn stage(self) -> StepStage {
        match self {
            Pipe::Gather => StepStage::Gather,
            Pipe::Forward(_) => StepStage::DenseForward,
            Pipe::Head => StepStage::Head,
            Pipe::BackwardWeight(_) | Pipe::BackwardInput(_) => StepStage::DenseBackward,
            Pipe::Adam | Pipe::SumPartials => StepStage::Adam,
            Pipe::Fused => StepStage::Fused,
        }
    }
}

/// The stages of a training step, in order, as [`GpuTrainer::run_stage`]
/// times them: the dense stages cover every layer; `Head` is the mixture or
/// MSE head; `Adam` also sums the weight-gradient partials and the batch
/// loss. A fused step has `Fused` (gather to weight gradients) and `Adam`
/// only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepStage {
    Gather,
    DenseForward,
    Head,
    DenseBackward,
    Adam,
    Fused,
}

/// One recorded dispatch of a step.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dispatch {
    pub pipe: Pipe,
    pub bind_group: usize,
    /// Whether the bind group takes the step's `StepInfo` dynamic offset.
    pub per_step: bool,
    pub groups: (u32, u32, u32),
}

/// A step's bind groups and dispatches, in recording order.
#[derive(Default)]
pub(super) struct Plan {
    pub bind_groups: Vec<wgpu::BindGroup>,
    pub dispatches: Vec<Dispatch>,
}

impl Plan {
    fn bind(&mut self, bg: wgpu::BindGroup) -> usize {
        self.bind_groups.push(bg);
        self.bind_groups.len() - 1
    }

    fn dispatch(
        &mut self,
        pipe: Pipe,
        bind_group: usize,
        per_step: bool,
        groups: u64,
        z: u32,
    ) -> Result<()> {
        let (x, y) = grid(groups)?;
        self.dispatches.push(Dispatch {
            pipe,
            bind_group,
            per_step,
            groups: (x, y, z),
        });
        Ok(())
    }

    /// A bind group used by a single dispatch.
    fn add(
        &mut self,
        bg: wgpu::BindGroup,
        pipe: Pipe,
        per_step: bool,
        groups: u64,
        z: u32,
    ) -> Result<()> {
        let g = self.bind(bg);
        self.dispatch(pipe, g, per_step, groups, z)
    }
}

/// The dispatches of one training step of `spec` in minibatches of
/// `batch`, over the buffers of `r`: gather, each layer forward, the head,
/// the loss reduction, each layer's weight (and input) gradient, Adam.
pub(super) fn record_step(
    c: &GpuContext,
    k: &Kernels,
    spec: &ModelSpec,
    layout: &ParamLayout,
    batch: usize,
    r: &Resident,
) -> Result<Plan> {
    let cfg = k.config;
    let b = batch;
    let n = layout.len;
    let layers = layout.layers.len();
    let mut plan = Plan::default();
    let rows_groups = (b as u64).div_ceil(cfg.rows_wg as u64);
    plan.add(
        GatherBindings {
            perm: whole(&r.perm),
            inputs: whole(&r.inputs),
            targets: whole(&r.targets),
            batch_input: whole(&r.acts[0]),
            batch_target: whole(&r.batch_targets),
            info: slot(&r.uniforms, r.slots.gather),
            step: step_binding(r),
        }
        .bind(c, "gather", &k.gather.layout),
        Pipe::Gather,
        true,
        rows_groups,
        1,
    )?;
    for (i, l) in layout.layers.iter().enumerate() {
        let forward = Product::forward(l, b);
        plan.add(
            DenseForwardBindings {
                params: whole(&r.params),
                input: whole(&r.acts[i]),
                output: whole(&r.acts[i + 1]),
                info: slot(&r.uniforms, r.slots.dense[i]),
            }
            .bind(c, "dense_forward", &k.dense_forward.layout),
            Pipe::Forward(cfg.matmul_shape(&forward)),
            false,
            cfg.matmul_groups(&forward),
            1,
        )?;
    }
    let head_kernel = &k.head(spec.head_kind()).loss;
    plan.add(
        HeadLossBindings {
            head: whole(&r.acts[layers]),
            targets: whole(&r.batch_targets),
            grad_head: whole(&r.deltas[layers - 1]),
            row_loss: whole(&r.row_loss),
            info: slot(&r.uniforms, r.slots.head),
        }
        .bind(c, "head", &head_kernel.layout),
        Pipe::Head,
        false,
        rows_groups,
        1,
    )?;
    for (i, l) in layout.layers.iter().enumerate().rev() {
        let grad_in = if i > 0 {
            &r.deltas[i - 1]
        } else {
            &r.no_grad_in
        };
        let bg = DenseBackwardBindings {
            params: whole(&r.params),
            input: whole(&r.acts[i]),
            grad_out: whole(&r.deltas[i]),
            grad_in: whole(grad_in),
            partials: whole(&r.partials),
            info: slot(&r.uniforms, r.slots.dense[i]),
        }
        .bind(c, "dense_backward", &k.dense_backward.layout);
        let g = plan.bind(bg);
        let weight = Product::weight_gradient(l, b);
        let weight_groups = cfg.weight_gradient_groups(&weight);
        let weight_pipe = Pipe::BackwardWeight(cfg.matmul_shape(&weight));
        plan.dispatch(weight_pipe, g, false, weight_groups, r.splits[i])?;
        if i > 0 {
            let input = Product::input_gradient(l, b);
            let input_pipe = Pipe::BackwardInput(cfg.matmul_shape(&input));
            plan.dispatch(input_pipe, g, false, cfg.matmul_groups(&input), 1)?;
        }
    }
    add_adam(&mut plan, c, k, r, n)?;
    Ok(plan)
}

/// The fused step's dispatches (`gpu::fused`): the forward and backward
/// pass of every chunk of rows, the loss reduction, Adam.
pub(super) fn record_fused_step(
    c: &GpuContext,
    k: &Kernels,
    spec: &ModelSpec,
    layout: &ParamLayout,
    shape: &FusedShape,
    r: &Resident,
) -> Result<Plan> {
    let fused = k
        .fused(spec.head_kind())
        .expect("FusedShape::plan takes only heads with a row loss");
    let info = r
        .slots
        .fused
        .expect("a fused trainer has a FusedInfo record");
    let mut plan = Plan::default();
    plan.add(
        FusedStepBindings {
            perm: whole(&r.perm),
            inputs: whole(&r.inputs),
            targets: whole(&r.targets),
            params: whole(&r.params),
            partials: whole(&r.partials),
            row_loss: whole(&r.row_loss),
            info: slot(&r.uniforms, info),
            step: step_binding(r),
        }
        .bind(c, "fused_step", &fused.layout),
        Pipe::Fused,
        true,
        shape.groups as u64,
        r.models as u32,
    )?;
    add_adam(&mut plan, c, k, r, layout.len)?;
    Ok(plan)
}

/// Adam over the `n` parameters of each model, summing the gradient
/// partials, and in one more workgroup per model the batch loss (both
/// step plans).
fn add_adam(plan: &mut Plan, c: &GpuContext, k: &Kernels, r: &Resident, n: usize) -> Result<()> {
    plan.add(
        AdamBindings {
            params: whole(&r.params),
            partials: whole(&r.partials),
            m_state: whole(&r.adam_m),
            v_state: whole(&r.adam_v),
            grads: whole(&r.grads),
            info: slot(&r.uniforms, r.slots.adam),
            step: step_binding(r),
            model_lr: whole(&r.model_lr),
            row_loss: whole(&r.row_loss),
            loss: whole(&r.loss_state),
            loss_info: slot(&r.uniforms, r.slots.reduce),
        }
        .bind(c, "adam", &k.adam.layout),
        Pipe::Adam,
        true,
        k.config.adam_groups(n) + 1,
        r.models as u32,
    )
}

/// The step's `StepInfo` record, picked per step by a dynamic offset.
fn step_binding(r: &Resident) -> wgpu::BindingResource<'_> {
    slot(
        &r.step_info,
        UniformSlot {
            offset: 0,
            size: size_of::<StepInfo>() as u64,
        },
    )
}
