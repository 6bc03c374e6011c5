//! `#[repr(C)]` twins of the structs in `shaders/common.wgsl`. Each struct
//! here has the same name, fields and order as its WGSL twin, only `u32` /
//! `f32` fields and explicit padding; `tests/shader_validation.rs` checks
//! sizes and member offsets against naga's layout of the parsed shaders.

use bytemuck::{Pod, Zeroable};

use crate::model::spec::MAX_HIDDEN_LAYERS;
use crate::train::{AdamStep, LossAccumulator};

/// `MAX_LAYERS` in `shaders/common.wgsl`: every `nn.Linear` of the deepest
/// allowed network.
pub const MAX_LAYERS: usize = MAX_HIDDEN_LAYERS + 1;

/// Mirrors `StepInfo` in `shaders/common.wgsl`: one recorded training step.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct StepInfo {
    pub batch_start: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub bias1: f32,
    pub bias2: f32,
    pub _pad3: f32,
    pub _pad4: f32,
}

impl StepInfo {
    pub fn new(batch_start: u32, adam: &AdamStep) -> Self {
        StepInfo {
            batch_start,
            lr: adam.lr,
            beta1: adam.beta1,
            beta2: adam.beta2,
            eps: adam.eps,
            bias1: adam.bias1,
            bias2: adam.bias2,
            ..Default::default()
        }
    }
}

/// Mirrors `LossState` in `shaders/common.wgsl`; the GPU side of
/// [`LossAccumulator`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct LossState {
    pub sum: f32,
    pub compensation: f32,
    pub count: u32,
    pub last: f32,
    pub nonfinite: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

impl LossState {
    pub fn accumulator(&self) -> LossAccumulator {
        LossAccumulator {
            // Kahan: the running sum minus the rounding error it carries.
            sum: self.sum as f64 - self.compensation as f64,
            count: self.count,
            last: self.last,
            nonfinite: self.nonfinite,
        }
    }
}

/// Mirrors `GatherInfo` in `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct GatherInfo {
    pub rows: u32,
    pub in_dim: u32,
    pub out_dim: u32,
    pub _pad0: u32,
}

/// Mirrors `DenseInfo` in `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct DenseInfo {
    pub rows: u32,
    pub in_dim: u32,
    pub out_dim: u32,
    pub weight: u32,
    pub bias: u32,
    pub tanh: u32,
    pub splits: u32,
    pub split_rows: u32,
    pub partial_offset: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

impl DenseInfo {
    /// One layer over `rows` rows; the weight-gradient pass cuts the rows
    /// into `splits` runs and writes its partials from `partial_offset`
    /// (forward-only users pass 1 and 0).
    pub fn for_layer(
        l: &crate::model::LayerLayout,
        rows: usize,
        splits: u32,
        partial_offset: usize,
    ) -> Self {
        DenseInfo {
            rows: rows as u32,
            in_dim: l.in_dim as u32,
            out_dim: l.out_dim as u32,
            weight: l.weight as u32,
            bias: l.bias as u32,
            tanh: l.tanh as u32,
            splits,
            split_rows: rows.div_ceil(splits.max(1) as usize) as u32,
            partial_offset: partial_offset as u32,
            ..Default::default()
        }
    }
}

/// Mirrors `HeadInfo` in `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct HeadInfo {
    pub rows: u32,
    pub k: u32,
    pub d: u32,
    pub width: u32,
    pub grad_scale: f32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// Mirrors `ReduceInfo` in `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct ReduceInfo {
    pub rows: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// Mirrors `AdamLayer` in `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct AdamLayer {
    pub start: u32,
    pub len: u32,
    pub splits: u32,
    pub partial_offset: u32,
}

/// Mirrors `AdamInfo` in `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct AdamInfo {
    pub len: u32,
    pub layer_count: u32,
    pub partial_stride: u32,
    pub _pad1: u32,
    pub layers: [AdamLayer; MAX_LAYERS],
}

impl Default for AdamInfo {
    fn default() -> Self {
        Zeroable::zeroed()
    }
}

/// Mirrors `SampleInfo` in `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct SampleInfo {
    pub rows: u32,
    pub k: u32,
    pub d: u32,
    pub per_input: u32,
    pub seed: u32,
    pub temperature: f32,
    pub first: u32,
    pub _pad1: u32,
}

/// Mirrors `FusedLayer` in `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct FusedLayer {
    pub in_dim: u32,
    pub out_dim: u32,
    pub weight: u32,
    pub bias: u32,
    pub act_in: u32,
    pub act_out: u32,
    pub partial_offset: u32,
    pub tanh: u32,
    /// With `fused_stage`: where the layer's weights sit in workgroup
    /// memory, a row of `w_stride` floats per output (else unused).
    pub w_at: u32,
    pub w_stride: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// Mirrors `FusedInfo` in `shaders/common.wgsl`; built by
/// `gpu::fused::FusedShape`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct FusedInfo {
    pub rows: u32,
    pub layer_count: u32,
    pub chunk_rows: u32,
    pub chunks_per_group: u32,
    pub in_dim: u32,
    pub d: u32,
    pub k: u32,
    pub head_width: u32,
    pub grad_scale: f32,
    pub targets_at: u32,
    pub delta_a: u32,
    pub delta_b: u32,
    pub param_stride: u32,
    pub partial_stride: u32,
    pub perm_stride: u32,
    pub _pad0: u32,
    pub layers: [FusedLayer; MAX_LAYERS],
}

impl Default for FusedInfo {
    fn default() -> Self {
        Zeroable::zeroed()
    }
}
