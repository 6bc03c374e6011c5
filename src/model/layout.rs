//! Where each layer's weights and bias live inside the one flat parameter
//! vector (and its gradient and Adam moments, which share the layout). The
//! GPU kernels receive these offsets, so this is the single source of truth.

/// One `nn.Linear`: weight `[out_dim, in_dim]` row-major at `weight`, bias
/// `[out_dim]` at `bias` (offsets in f32 elements).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerLayout {
    pub in_dim: usize,
    pub out_dim: usize,
    pub weight: usize,
    pub bias: usize,
    /// Hidden layers apply tanh; the head layer is linear.
    pub tanh: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    pub layers: Vec<LayerLayout>,
    /// Total number of f32 parameters.
    pub len: usize,
}

impl ParamLayout {
    /// Widest activation, used to size scratch buffers once.
    pub fn max_width(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| [l.in_dim, l.out_dim])
            .max()
            .unwrap_or(0)
    }

    /// Multiply-adds of one forward pass for one row.
    pub fn macs_per_row(&self) -> usize {
        self.layers.iter().map(|l| l.in_dim * l.out_dim).sum()
    }
}
