//! The matrix products of a training step and the shapes they are
//! dispatched in (`shaders/matmul.wgsl`): tile size per invocation and
//! workgroup shape. Which shape a product gets, and how many workgroups
//! that takes, is the kernel configuration's choice
//! (`KernelConfig::matmul_shape` in `gpu/config.rs`).

use crate::model::LayerLayout;

/// One matrix product of a dense layer's step: C is `m × n`, each element
/// a sum over `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Product {
    pub m: u32,
    pub n: u32,
    pub k: u32,
}

impl Product {
    /// `output[rows, out] = input[rows, in] · Wᵀ`.
    pub fn forward(layer: &LayerLayout, rows: usize) -> Self {
        Product {
            m: rows as u32,
            n: layer.out_dim as u32,
            k: layer.in_dim as u32,
        }
    }

    /// `dW[out, in] = Σ_rows grad_out[r, out]·input[r, in]` (all splits).
    pub fn weight_gradient(layer: &LayerLayout, rows: usize) -> Self {
        Product {
            m: layer.out_dim as u32,
            n: layer.in_dim as u32,
            k: rows as u32,
        }
    }

    /// `grad_in[rows, in] = grad_out[rows, out] · W`.
    pub fn input_gradient(layer: &LayerLayout, rows: usize) -> Self {
        Product {
            m: rows as u32,
            n: layer.in_dim as u32,
            k: layer.out_dim as u32,
        }
    }

    /// Multiply-adds without padding.
    pub fn macs(&self) -> u64 {
        self.m as u64 * self.n as u64 * self.k as u64
    }
}

/// Outputs per invocation of one tiled matmul dispatch: the configured
/// `tile`, or `big_tile` for products of at least `big_macs` multiply-adds.
/// Larger tiles load less per multiply-add but give each invocation a
/// longer serial loop, which a latency-bound step (the small benchmark's
/// 12 short dispatches on a real GPU) pays for; the big products of a
/// large step can afford them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tiles {
    Base,
    Big,
}

/// The workgroup of one tiled matmul dispatch. A product much narrower
/// than the configured block (a 24-wide mixture head, the 1-input first
/// layer's weight gradient) would otherwise compute a whole block of which
/// most columns (or rows) are padding: 64 × 64 blocks did 64× the useful
/// work on the first layer's weight gradient. The narrow workgroups keep
/// the tile per invocation and cut the workgroup to [`NARROW_WG`]
/// invocations along the thin side. Their few invocations each stage more
/// of the block, which costs latency, so a product gets one only where it
/// saves enough padding work (`KernelConfig::narrow_macs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Workgroup {
    /// The configured `wg_m × wg_n` workgroup.
    Full,
    /// `wg_m × NARROW_WG`: for products with few columns.
    NarrowN,
    /// `NARROW_WG × wg_n`: for products with few rows.
    NarrowM,
}

/// Invocations along the thin side of a narrow matmul workgroup.
pub const NARROW_WG: u32 = 2;

impl Workgroup {
    pub const ALL: [Workgroup; 3] = [Workgroup::Full, Workgroup::NarrowN, Workgroup::NarrowM];
}

/// What one matmul dispatch runs with; each shape is a pipeline of its own
/// (the sizes are override constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulShape {
    pub tiles: Tiles,
    pub workgroup: Workgroup,
}

impl MatmulShape {
    /// The configured tile and workgroup: the blocked variant's only shape.
    pub const BASE: MatmulShape = MatmulShape {
        tiles: Tiles::Base,
        workgroup: Workgroup::Full,
    };
}
