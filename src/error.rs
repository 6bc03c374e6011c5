//! One error type for the library; every variant is a message meant for the
//! person at the terminal, so the CLI prints it as is and exits non-zero.

use std::path::PathBuf;

use crate::gpu::context::GpuError;

#[derive(Debug, thiserror::Error)]
pub enum MdnError {
    /// The I/O error is part of the message and deliberately not exposed as
    /// `source()`: the CLI prints the whole error chain (`{:#}`), which would
    /// otherwise repeat it (`…: No such file … : No such file …`).
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A problem with one cell or row of a CSV file; `row` is the 1-based line
    /// number in the file (the header is line 1).
    #[error("{path}: line {row}{}: {msg}", column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
    Csv {
        path: PathBuf,
        row: usize,
        column: Option<String>,
        msg: String,
    },
    #[error("{0}")]
    Data(String),
    #[error("invalid model: {0}")]
    Spec(String),
    #[error("invalid setting: {0}")]
    Config(String),
    #[error("{path}: not a usable mdn model file: {msg}")]
    ModelFile { path: PathBuf, msg: String },
    #[error(
        "training diverged at step {step}: the loss became {loss}; try a smaller --lr (the last good parameters, from step {good_step}, were kept)"
    )]
    Diverged {
        step: usize,
        loss: f32,
        good_step: usize,
    },
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

pub type Result<T, E = MdnError> = std::result::Result<T, E>;

impl MdnError {
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        MdnError::Io {
            path: path.into(),
            error,
        }
    }
}
