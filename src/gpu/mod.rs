//! GPU side: device creation, compute kernels and the GPU trainer.

pub mod context;
