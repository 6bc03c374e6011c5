//! `mdn`: Mixture Density Networks trained with WGSL compute shaders on wgpu,
//! with a CPU reference trainer that mirrors every shader stage.
//!
//! The floors of the crate, bottom up; a module imports only from its own
//! floor or below (`tests/architecture.rs` checks it):
//! 1. [`error`], [`fsutil`], [`fingerprint`], [`defaults`], [`simd`] (the
//!    CPU's vector kernels);
//! 2. [`data`] (toy problem, CSV, normalisation);
//! 3. [`head`] (the head kinds as plug-ins: width, shader, CPU twin, loss,
//!    decoding, sampling);
//! 4. [`model`] (spec, flat parameter layout, init, file format);
//! 5. [`train`] (the loop and the step values both trainers share);
//! 6. [`cpu`] and [`gpu`] (the two trainers and their stages);
//! 7. [`device`] (where work runs), [`infer`] (using a model) and [`fit`]
//!    (data + spec + device → trained model);
//! 8. [`bench`], [`tune`] (kernel configurations measured per adapter and
//!    job), [`sweep`] (many models fitted, their trainers tuned on
//!    request), [`viz`] and [`calibration_plot`]; the CLI (`src/cli/`, in
//!    the binary) on top.

pub mod bench;
pub mod calibration_plot;
pub mod cpu;
pub mod data;
pub mod defaults;
pub mod device;
pub mod error;
pub mod fingerprint;
pub mod fit;
pub mod fsutil;
pub mod gpu;
pub mod head;
pub mod infer;
pub mod metrics;
pub mod model;
pub mod simd;
pub mod sweep;
pub mod train;
pub mod tune;
pub mod viz;

pub use data::Dataset;
pub use device::DeviceChoice;
pub use error::{MdnError, Result};
pub use fit::{FitResult, fit};
pub use model::{Head, Model, ModelSpec};
pub use train::{LrSchedule, TrainConfig, Trainer};
