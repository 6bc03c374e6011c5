//! Each compute kernel's bindings, written once. A kernel's struct names
//! its resources as the WGSL globals are named, with their binding numbers
//! and kinds; the bind group layout is built from the same list
//! ([`layout`]), and every bind group (trainer, stage runner, forward pass,
//! sampler, visualizer) is made by filling the struct in and calling `bind`,
//! so no caller spells a binding order. `tests/shader_validation.rs` checks
//! every list against the globals naga finds in the shader.

use std::num::NonZeroU64;

use super::context::GpuContext;
use super::layouts::{
    AdamInfo, DenseInfo, FusedInfo, GatherInfo, HeadInfo, ReduceInfo, SampleInfo, StepInfo,
};

/// What one binding of group 0 holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
    /// `var<uniform>` of this many bytes.
    Uniform(u64),
    /// A uniform record chosen per dispatch by a dynamic offset.
    DynamicUniform(u64),
}

/// One binding: the WGSL global's name, its number and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingSpec {
    pub name: &'static str,
    pub binding: u32,
    pub slot: Slot,
}

fn size<T>() -> u64 {
    size_of::<T>() as u64
}

/// Declares a kernel's bindings: a struct with one `BindingResource` per
/// binding, its `SLOTS` list and a `bind` that makes the bind group.
macro_rules! kernel_bindings {
    ($(#[$doc:meta])* $name:ident { $($field:ident @ $binding:literal : $slot:expr),* $(,)? }) => {
        $(#[$doc])*
        pub struct $name<'a> {
            $(pub $field: wgpu::BindingResource<'a>,)*
        }

        impl $name<'_> {
            /// The bindings in declaration order.
            pub fn slots() -> Vec<BindingSpec> {
                vec![$(BindingSpec { name: stringify!($field), binding: $binding, slot: $slot }),*]
            }

            pub fn bind(
                self,
                ctx: &GpuContext,
                label: &str,
                layout: &wgpu::BindGroupLayout,
            ) -> wgpu::BindGroup {
                let entries = [$(wgpu::BindGroupEntry { binding: $binding, resource: self.$field }),*];
                ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(label),
                    layout,
                    entries: &entries,
                })
            }
        }
    };
}

// The visualizer's kernels declare their bindings the same way.
pub(crate) use kernel_bindings;

kernel_bindings! {
    /// `shaders/gather.wgsl`.
    GatherBindings {
        perm @ 0: Slot::Read,
        inputs @ 1: Slot::Read,
        targets @ 2: Slot::Read,
        batch_input @ 3: Slot::ReadWrite,
        batch_target @ 4: Slot::ReadWrite,
        info @ 5: Slot::Uniform(size::<GatherInfo>()),
        step @ 6: Slot::DynamicUniform(size::<StepInfo>()),
    }
}

kernel_bindings! {
    /// `shaders/dense_forward.wgsl`.
    DenseForwardBindings {
        params @ 0: Slot::Read,
        input @ 1: Slot::Read,
        output @ 2: Slot::ReadWrite,
        info @ 3: Slot::Uniform(size::<DenseInfo>()),
    }
}

kernel_bindings! {
    /// `shaders/dense_backward.wgsl` (both modes).
    DenseBackwardBindings {
        params @ 0: Slot::Read,
        input @ 1: Slot::Read,
        grad_out @ 2: Slot::Read,
        grad_in @ 3: Slot::ReadWrite,
        partials @ 4: Slot::ReadWrite,
        info @ 5: Slot::Uniform(size::<DenseInfo>()),
    }
}

kernel_bindings! {
    /// The `loss` entry of every head in `shaders/heads/`.
    HeadLossBindings {
        head @ 0: Slot::Read,
        targets @ 1: Slot::Read,
        grad_head @ 2: Slot::ReadWrite,
        row_loss @ 3: Slot::ReadWrite,
        info @ 4: Slot::Uniform(size::<HeadInfo>()),
    }
}

kernel_bindings! {
    /// The `sample` entry of every head that models a distribution; its
    /// numbers follow the `loss` entry's, which shares the module.
    HeadSampleBindings {
        head @ 0: Slot::Read,
        samples @ 5: Slot::ReadWrite,
        sample_info @ 6: Slot::Uniform(size::<SampleInfo>()),
        sample_components @ 7: Slot::ReadWrite,
    }
}

kernel_bindings! {
    /// `shaders/reduce.wgsl`.
    ReduceBindings {
        row_loss @ 0: Slot::Read,
        loss @ 1: Slot::ReadWrite,
        info @ 2: Slot::Uniform(size::<ReduceInfo>()),
    }
}

kernel_bindings! {
    /// `shaders/adam.wgsl` (both entry points).
    AdamBindings {
        params @ 0: Slot::ReadWrite,
        partials @ 1: Slot::Read,
        m_state @ 2: Slot::ReadWrite,
        v_state @ 3: Slot::ReadWrite,
        grads @ 4: Slot::ReadWrite,
        info @ 5: Slot::Uniform(size::<AdamInfo>()),
        step @ 6: Slot::DynamicUniform(size::<StepInfo>()),
        model_lr @ 7: Slot::Read,
        row_loss @ 8: Slot::Read,
        loss @ 9: Slot::ReadWrite,
        loss_info @ 10: Slot::Uniform(size::<ReduceInfo>()),
    }
}

kernel_bindings! {
    /// `shaders/fused_step.wgsl` (every head kind's build).
    FusedStepBindings {
        perm @ 0: Slot::Read,
        inputs @ 1: Slot::Read,
        targets @ 2: Slot::Read,
        params @ 3: Slot::Read,
        partials @ 4: Slot::ReadWrite,
        row_loss @ 5: Slot::ReadWrite,
        info @ 6: Slot::Uniform(size::<FusedInfo>()),
        step @ 7: Slot::DynamicUniform(size::<StepInfo>()),
    }
}

/// The bind group layout of a binding list, visible to compute shaders.
pub fn layout(device: &wgpu::Device, label: &str, slots: &[BindingSpec]) -> wgpu::BindGroupLayout {
    let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
        .iter()
        .map(|b| {
            let (ty, has_dynamic_offset, min) = match b.slot {
                Slot::Read => (
                    wgpu::BufferBindingType::Storage { read_only: true },
                    false,
                    None,
                ),
                Slot::ReadWrite => (
                    wgpu::BufferBindingType::Storage { read_only: false },
                    false,
                    None,
                ),
                Slot::Uniform(size) => (
                    wgpu::BufferBindingType::Uniform,
                    false,
                    NonZeroU64::new(size),
                ),
                Slot::DynamicUniform(size) => (
                    wgpu::BufferBindingType::Uniform,
                    true,
                    NonZeroU64::new(size),
                ),
            };
            wgpu::BindGroupLayoutEntry {
                binding: b.binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty,
                    has_dynamic_offset,
                    min_binding_size: min,
                },
                count: None,
            }
        })
        .collect();
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &entries,
    })
}
