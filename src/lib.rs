//! `mdn`: Mixture Density Networks trained with WGSL compute shaders on wgpu,
//! with a CPU reference trainer that mirrors every shader stage.
//!
//! The layers of the crate, bottom up: [`data`] (toy problem, CSV,
//! normalisation), [`model`] (spec, flat parameter layout, file format,
//! inference), [`cpu`] (reference stages and trainer), [`gpu`] (device,
//! kernels, GPU trainer), [`train`] (the loop both trainers share) and
//! [`fit`] (data + spec + device → trained model), which the CLI calls.

pub mod bench;
pub mod cpu;
pub mod data;
pub mod defaults;
pub mod error;
pub mod fit;
pub mod fsutil;
pub mod gpu;
pub mod model;
pub mod train;
pub mod viz;

pub use data::Dataset;
pub use error::{MdnError, Result};
pub use fit::{DeviceChoice, FitResult, fit};
pub use model::{Head, Model, ModelSpec};
pub use train::{LrSchedule, TrainConfig, Trainer};
