//! `ModelSpec`: the architecture, serialised into the model file's `spec`
//! metadata exactly as DESIGN.md §2 fixes it.

use serde::{Deserialize, Serialize};

use super::layout::{LayerLayout, ParamLayout};
use crate::error::{MdnError, Result};
use crate::head::{HeadDef, HeadKind};

/// Bounds that keep a typo (`--k 50000`) from turning into a multi-gigabyte
/// allocation; far above anything the toy problems or the GPU kernels need.
pub const MAX_K: usize = 256;
pub const MAX_WIDTH: usize = 8192;
pub const MAX_DIM: usize = 1024;
pub const MAX_HIDDEN_LAYERS: usize = 16;

/// The head as the model file's `spec.head` names it (DESIGN.md §2); the
/// code behind it is the [`HeadKind`] that [`Head::kind`] picks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Head {
    /// K Gaussians; the last layer's layout depends on the covariance.
    Mixture {
        k: usize,
        /// Absent in the file means diagonal, so files written before the
        /// full head existed keep their meaning (and their bytes).
        #[serde(default, skip_serializing_if = "Covariance::is_diag")]
        covariance: Covariance,
    },
    /// Point regression trained with mean squared error.
    Mse,
}

/// The covariance of a mixture's components (`train --covariance`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Covariance {
    /// Diagonal: `[logits | mu | log_sigma]` (DESIGN.md §1).
    #[default]
    Diag,
    /// Full, through the precision's Cholesky factor: `[logits | mu | chol]`.
    Full,
}

impl Covariance {
    pub fn is_diag(&self) -> bool {
        *self == Covariance::Diag
    }
}

impl Head {
    /// A diagonal mixture of `k` components.
    pub fn mixture(k: usize) -> Self {
        Head::Mixture {
            k,
            covariance: Covariance::Diag,
        }
    }

    /// A full-covariance mixture of `k` components.
    pub fn full_mixture(k: usize) -> Self {
        Head::Mixture {
            k,
            covariance: Covariance::Full,
        }
    }

    /// The plug-in behind this head.
    pub fn kind(&self) -> HeadKind {
        match self {
            Head::Mixture {
                covariance: Covariance::Diag,
                ..
            } => HeadKind::MixtureDiag,
            Head::Mixture {
                covariance: Covariance::Full,
                ..
            } => HeadKind::MixtureFull,
            Head::Mse => HeadKind::Mse,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Tanh,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub in_dim: usize,
    pub out_dim: usize,
    pub hidden: Vec<usize>,
    pub activation: Activation,
    pub head: Head,
}

impl ModelSpec {
    pub fn new(in_dim: usize, out_dim: usize, hidden: Vec<usize>, head: Head) -> Result<Self> {
        let spec = ModelSpec {
            in_dim,
            out_dim,
            hidden,
            activation: Activation::Tanh,
            head,
        };
        spec.validate()?;
        Ok(spec)
    }

    pub fn mixture(in_dim: usize, out_dim: usize, hidden: Vec<usize>, k: usize) -> Result<Self> {
        Self::new(in_dim, out_dim, hidden, Head::mixture(k))
    }

    pub fn mlp(in_dim: usize, out_dim: usize, hidden: Vec<usize>) -> Result<Self> {
        Self::new(in_dim, out_dim, hidden, Head::Mse)
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(MdnError::Spec(m));
        if self.in_dim == 0 || self.in_dim > MAX_DIM {
            return bad(format!(
                "input width must be 1..={MAX_DIM}, got {}",
                self.in_dim
            ));
        }
        if self.out_dim == 0 || self.out_dim > MAX_DIM {
            return bad(format!(
                "target width must be 1..={MAX_DIM}, got {}",
                self.out_dim
            ));
        }
        if self.hidden.len() > MAX_HIDDEN_LAYERS {
            return bad(format!(
                "at most {MAX_HIDDEN_LAYERS} hidden layers, got {}",
                self.hidden.len()
            ));
        }
        if let Some(w) = self.hidden.iter().find(|&&w| w == 0 || w > MAX_WIDTH) {
            return bad(format!(
                "hidden layer sizes must be 1..={MAX_WIDTH}, got {w}"
            ));
        }
        if let Head::Mixture { k, .. } = self.head
            && (k == 0 || k > MAX_K)
        {
            return bad(format!(
                "K (mixture components) must be 1..={MAX_K}, got {k}"
            ));
        }
        self.head_def()
            .validate(self.k(), self.out_dim)
            .map_err(MdnError::Spec)
    }

    /// Number of mixture components; 0 for an MSE head.
    pub fn k(&self) -> usize {
        match self.head {
            Head::Mixture { k, .. } => k,
            Head::Mse => 0,
        }
    }

    /// The head's plug-in.
    pub fn head_kind(&self) -> HeadKind {
        self.head.kind()
    }

    pub fn head_def(&self) -> &'static dyn HeadDef {
        self.head.kind().def()
    }

    /// Whether the head models a distribution (a mixture) rather than a
    /// point prediction.
    pub fn is_mixture(&self) -> bool {
        self.head_def().is_distribution()
    }

    /// Width of the last layer, as the head kind defines it.
    pub fn head_width(&self) -> usize {
        self.head_def().width(self.k(), self.out_dim)
    }

    /// Widths of every activation, input first, head last.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = Vec::with_capacity(self.hidden.len() + 2);
        w.push(self.in_dim);
        w.extend_from_slice(&self.hidden);
        w.push(self.head_width());
        w
    }

    pub fn layout(&self) -> ParamLayout {
        let widths = self.widths();
        let n = widths.len() - 1;
        let mut offset = 0;
        let layers = (0..n)
            .map(|i| {
                let (in_dim, out_dim) = (widths[i], widths[i + 1]);
                let layer = LayerLayout {
                    in_dim,
                    out_dim,
                    weight: offset,
                    bias: offset + in_dim * out_dim,
                    tanh: i + 1 < n,
                };
                offset += in_dim * out_dim + out_dim;
                layer
            })
            .collect();
        ParamLayout {
            layers,
            len: offset,
        }
    }

    /// Parses `--hidden 64,64`; an empty string means no hidden layer is not
    /// allowed (a linear MDN is rarely what anyone wants), so it is an error.
    pub fn parse_hidden(text: &str) -> Result<Vec<usize>> {
        let text = text.trim();
        if text.is_empty() {
            return Err(MdnError::Config(
                "--hidden needs at least one layer size, e.g. --hidden 64,64".into(),
            ));
        }
        text.split(',')
            .map(|part| {
                let part = part.trim();
                match part.parse::<usize>() {
                    Ok(0) => Err(MdnError::Config(
                        "--hidden: a layer size of 0 is not allowed".into(),
                    )),
                    Ok(w) => Ok(w),
                    Err(_) => Err(MdnError::Config(format!(
                        "--hidden: `{part}` is not a layer size (expected e.g. 64,64)"
                    ))),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_json_matches_the_design_contract() {
        let spec = ModelSpec::mixture(1, 2, vec![64, 32], 5).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"in_dim":1,"out_dim":2,"hidden":[64,32],"activation":"tanh",
                "head":{"kind":"mixture","k":5}})
        );
        let mlp = ModelSpec::mlp(3, 1, vec![8]).unwrap();
        assert_eq!(
            serde_json::to_value(&mlp).unwrap()["head"],
            serde_json::json!({"kind":"mse"})
        );
    }

    #[test]
    fn layout_is_contiguous_and_heads_have_the_right_width() {
        let spec = ModelSpec::mixture(2, 3, vec![4, 5], 7).unwrap();
        assert_eq!(spec.head_width(), 7 + 2 * 7 * 3);
        let layout = spec.layout();
        let mut expect = 0;
        for (i, l) in layout.layers.iter().enumerate() {
            assert_eq!(l.weight, expect);
            assert_eq!(l.bias, expect + l.in_dim * l.out_dim);
            expect = l.bias + l.out_dim;
            assert_eq!(l.tanh, i + 1 < layout.layers.len());
        }
        assert_eq!(layout.len, expect);
    }

    #[test]
    fn invalid_specs_are_refused() {
        assert!(ModelSpec::mixture(1, 1, vec![8], 0).is_err());
        assert!(ModelSpec::mixture(1, 1, vec![8], MAX_K + 1).is_err());
        assert!(ModelSpec::mixture(1, 1, vec![0], 3).is_err());
        assert!(ModelSpec::mlp(0, 1, vec![8]).is_err());
        assert!(ModelSpec::parse_hidden("").is_err());
        assert!(ModelSpec::parse_hidden("64,0").is_err());
        assert!(ModelSpec::parse_hidden("64,x").is_err());
        assert_eq!(ModelSpec::parse_hidden(" 64, 32 ").unwrap(), vec![64, 32]);
    }
}
