//! GPU side: device creation, compute kernels and the GPU trainer.

pub mod bindings;
pub mod buffers;
pub mod config;
pub mod context;
pub mod forward;
pub mod fused;
pub mod kernels;
pub mod layouts;
pub mod loop_budget;
pub mod matmul;
pub mod prefetch;
pub mod sampler;
pub mod stages;
pub mod trainer;
pub mod tuned;

pub use config::{KernelConfig, MatmulVariant};
pub use kernels::Kernels;
pub use matmul::{MatmulShape, Product, Tiles, Workgroup};
pub use trainer::GpuTrainer;
