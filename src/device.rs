//! Where work runs: the one device policy of `train`, `eval`, `predict`,
//! `sample`, the benchmark and the visualizer's training. `auto` takes a
//! hardware GPU and otherwise the CPU: a software rasteriser (lavapipe,
//! llvmpipe, WARP) runs the same kernels tens of times slower than the CPU
//! code, whose kernels are built for the CPU; `gpu` takes whatever adapter
//! there is, software or not.

use crate::error::{MdnError, Result};
use crate::gpu::context::{GpuContext, GpuOptions, is_software_adapter};

/// The `--device` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The GPU when a hardware adapter exists, else the CPU (with a note).
    #[default]
    Auto,
    Gpu,
    Cpu,
}

/// Where a choice lands on this machine.
pub enum Placement {
    Gpu(Box<GpuContext>),
    /// The CPU; `note` says why when `auto` passed over a GPU (for stderr).
    Cpu {
        note: Option<String>,
    },
}

impl DeviceChoice {
    /// Resolves the choice: opens the adapter for `gpu` (an error when
    /// there is none) and for `auto` when it is a hardware one.
    pub fn place(self, gpu: &GpuOptions) -> Result<Placement> {
        match self {
            DeviceChoice::Cpu => Ok(Placement::Cpu { note: None }),
            DeviceChoice::Gpu => Ok(Placement::Gpu(Box::new(GpuContext::new(gpu)?))),
            DeviceChoice::Auto => match auto_gpu(gpu) {
                Ok(ctx) => Ok(Placement::Gpu(Box::new(ctx))),
                Err(e) => Ok(Placement::Cpu {
                    note: Some(format!("no usable GPU adapter ({})", reason(e))),
                }),
            },
        }
    }

    /// Whether work with this choice runs on the CPU when `info` is the
    /// adapter at hand (the visualizer, which draws on that adapter anyway).
    pub fn trains_on_cpu(self, info: &wgpu::AdapterInfo) -> bool {
        match self {
            DeviceChoice::Cpu => true,
            DeviceChoice::Gpu => false,
            DeviceChoice::Auto => is_software_adapter(info),
        }
    }
}

fn auto_gpu(gpu: &GpuOptions) -> Result<GpuContext> {
    let ctx = GpuContext::new(gpu)?;
    if DeviceChoice::Auto.trains_on_cpu(&ctx.info) {
        return Err(MdnError::Config(format!(
            "only the software rasteriser {}, slower than the CPU; --device gpu uses it anyway",
            ctx.describe()
        )));
    }
    Ok(ctx)
}

fn reason(e: MdnError) -> String {
    match e {
        MdnError::Config(m) => m,
        other => other.to_string(),
    }
}
