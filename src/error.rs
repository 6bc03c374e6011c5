//! One error type for the library; every variant is a message meant for the
//! person at the terminal, so the CLI prints it as is and exits non-zero.

use std::path::PathBuf;

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

/// Everything that can go wrong getting or using a GPU, worded for end users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    #[error(
        "unknown GPU backend `{0}`; valid names: auto, vulkan, metal, dx12, gl \
         (aliases: all, vk, mtl, d3d12, gles, opengl)"
    )]
    UnknownBackend(String),
    #[error(
        "unknown GPU backend `{name}` in WGPU_BACKEND=`{value}`; valid names: auto, vulkan, \
         metal, dx12, gl (aliases: all, vk, mtl, d3d12, gles, opengl), comma-separated"
    )]
    UnknownBackendEnv { name: String, value: String },
    #[error(
        "GPU backend {requested} is not supported on this platform (available: {}); \
         pick one of those with `--backend`",
        list_or_none(available)
    )]
    BackendUnavailable {
        requested: String,
        available: Vec<String>,
    },
    #[error(
        "no GPU adapter for backend {backend} (available: {}); run `mdn adapters` to list \
         them, pick one with `--backend`, or use `--device cpu`",
        list_or_none(available)
    )]
    NoAdapter {
        backend: String,
        available: Vec<String>,
    },
    #[error(
        "no GPU adapter name contains `{substr}` (available: {}); set `--adapter` or \
         WGPU_ADAPTER_NAME to part of one of these names (see `mdn adapters`)",
        list_or_none(available)
    )]
    AdapterNotMatched {
        substr: String,
        available: Vec<String>,
    },
    #[error(
        "no matching GPU adapter can run compute shaders (found: {}); pick another with \
         `--backend` / `--adapter` (see `mdn adapters`) or use `--device cpu`",
        list_or_none(adapters)
    )]
    NoComputeSupport { adapters: Vec<String> },
    #[error("MDN_GPU_MAX_BINDING=`{0}` is not a size in bytes (such as 134217728, or 128MiB)")]
    BadMaxBinding(String),
    #[error(
        "could not open the GPU device: {0}; try another adapter (see `mdn adapters`) \
         or `--device cpu`"
    )]
    RequestDevice(String),
    #[error("GPU validation error (likely a bug in mdn; please report it): {0}")]
    Validation(String),
    #[error("GPU out of memory: {0}; try a smaller --batch or --hidden")]
    OutOfMemory(String),
    #[error("internal GPU driver error: {0}; try another backend with `--backend`")]
    Internal(String),
    #[error("GPU device lost: {0}; the driver reset or crashed, rerun or use `--device cpu`")]
    DeviceLost(String),
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}
