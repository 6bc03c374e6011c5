//! Data: Bishop's toy problem, CSV, Parquet and NPY reading, and z-score
//! normalisation.

pub mod csv;
pub mod normalize;
pub mod npy;
pub mod parquet;
pub mod source;
pub mod table;
pub mod toy;

use crate::error::{MdnError, Result};

/// Rows of inputs and targets, row-major, in original units.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub inputs: Vec<f32>,
    pub targets: Vec<f32>,
    pub in_dim: usize,
    pub out_dim: usize,
    pub input_names: Vec<String>,
    pub target_names: Vec<String>,
}

impl Dataset {
    pub fn new(
        inputs: Vec<f32>,
        targets: Vec<f32>,
        input_names: Vec<String>,
        target_names: Vec<String>,
    ) -> Result<Self> {
        let (in_dim, out_dim) = (input_names.len(), target_names.len());
        if in_dim == 0 || out_dim == 0 {
            return Err(MdnError::Data(
                "a dataset needs at least one input and one target column".into(),
            ));
        }
        if !inputs.len().is_multiple_of(in_dim)
            || !targets.len().is_multiple_of(out_dim)
            || inputs.len() / in_dim != targets.len() / out_dim
        {
            return Err(MdnError::Data(
                "inputs and targets have different row counts".into(),
            ));
        }
        if let Some(i) = inputs.iter().chain(&targets).position(|v| !v.is_finite()) {
            return Err(MdnError::Data(format!("value #{i} is not a finite number")));
        }
        Ok(Dataset {
            inputs,
            targets,
            in_dim,
            out_dim,
            input_names,
            target_names,
        })
    }

    /// The same columns with no rows.
    pub fn clone_names(&self) -> Dataset {
        Dataset {
            inputs: Vec::new(),
            targets: Vec::new(),
            in_dim: self.in_dim,
            out_dim: self.out_dim,
            input_names: self.input_names.clone(),
            target_names: self.target_names.clone(),
        }
    }

    pub fn len(&self) -> usize {
        self.inputs.len() / self.in_dim
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn input_row(&self, i: usize) -> &[f32] {
        &self.inputs[i * self.in_dim..(i + 1) * self.in_dim]
    }

    pub fn target_row(&self, i: usize) -> &[f32] {
        &self.targets[i * self.out_dim..(i + 1) * self.out_dim]
    }
}
