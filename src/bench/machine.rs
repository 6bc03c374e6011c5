//! The machine a benchmark runs on: CPU, threads and the GPU.

use serde::Serialize;

use super::config::HEAD_FLOPS_PER_OUTPUT;

use crate::gpu::Kernels;
use crate::gpu::context::GpuContext;

/// The GPU a bench runs on, as reported by the driver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GpuInfo {
    pub adapter: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    /// The kernel configuration, in `MDN_GPU_KERNELS` syntax.
    pub kernels: String,
}

/// The machine: CPU, thread count and (when one opened) the GPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub logical_cpus: usize,
    /// rayon's worker threads (the CPU trainer's parallelism).
    pub threads: usize,
    pub gpu: Option<GpuInfo>,
}

impl Machine {
    /// The header of the text table: one line per device and the counting
    /// conventions.
    pub fn header_lines(&self) -> Vec<String> {
        let mut lines = vec![
            "mdn bench: toy inverse problem, f32, Adam; warm-up excluded; steps/s is the median \
             [min-max] of the repeats"
                .to_string(),
            format!(
                "cpu: {} ({} logical CPUs, {} rayon threads, {} kernels)",
                self.cpu,
                self.logical_cpus,
                self.threads,
                crate::simd::kernel_name()
            ),
        ];
        match &self.gpu {
            Some(g) => {
                lines.push(format!(
                    "gpu: {} ({}, {}), driver {}",
                    g.adapter, g.backend, g.device_type, g.driver
                ));
                lines.push(format!("gpu kernels (MDN_GPU_KERNELS): {}", g.kernels));
            }
            None => lines.push("gpu: none".to_string()),
        }
        lines.push(format!(
            "GFLOP/s: nominal 6*batch*sum(in*out) + {HEAD_FLOPS_PER_OUTPUT}*batch*head_width \
             FLOPs per step; gpu modes: chunked = many steps per submission, loss read once \
             per repeat; sync-every-step = loss read after every step (left out where a repeat \
             is one step: the modes are then the same)"
        ));
        lines
    }
}

/// The CPU's model name (first `model name` of /proc/cpuinfo on Linux).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == "model name")
                .map(|(_, v)| v.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("unknown {} CPU", std::env::consts::ARCH))
}

pub(super) fn gpu_info(ctx: &GpuContext, kernels: &Kernels) -> GpuInfo {
    let info = &ctx.info;
    let driver = [info.driver.trim(), info.driver_info.trim()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let device_type = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => "discrete",
        wgpu::DeviceType::IntegratedGpu => "integrated",
        wgpu::DeviceType::VirtualGpu => "virtual",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    };
    GpuInfo {
        adapter: info.name.clone(),
        backend: ctx.backend_name(),
        device_type: device_type.to_string(),
        driver: if driver.is_empty() {
            "-".into()
        } else {
            driver
        },
        kernels: kernels.config.to_string(),
    }
}
