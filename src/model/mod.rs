//! The network: its spec, the flat parameter layout, initialisation, and the
//! safetensors file format (DESIGN.md §2).

pub mod init;
pub mod io;
pub mod layout;
pub mod pad;
pub mod spec;

pub use io::{load_model, save_model};
pub use layout::{LayerLayout, ParamLayout};
pub use spec::{Covariance, Head, ModelSpec};

use crate::data::normalize::Normalizer;

/// A trained (or freshly initialised) network together with everything needed
/// to use it on data in original units.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub spec: ModelSpec,
    /// Flat parameter vector in the order given by `spec.layout()`.
    pub params: Vec<f32>,
    pub input_norm: Normalizer,
    pub target_norm: Normalizer,
    pub input_names: Vec<String>,
    pub target_names: Vec<String>,
}
