//! How each matrix product of a training step is dispatched: which tile
//! size per invocation and which workgroup shape (`shaders/matmul.wgsl`),
//! and how many workgroups that takes. One [`KernelConfig`] serves every
//! product; [`KernelConfig::matmul_shape`] picks, per product, among the
//! few shapes it builds pipelines for ([`KernelConfig::matmul_shapes`]).

use super::kernels::{KernelConfig, MatmulVariant};
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

impl KernelConfig {
    /// Whether products of at least `big_macs` get other tiles.
    fn has_big_tiles(&self) -> bool {
        self.matmul.is_tiled()
            && self
                .big_tile
                .is_some_and(|t| t != (self.tile_m, self.tile_n))
    }

    /// The shape a product is dispatched with: big tiles where configured
    /// and the product is big enough; then a narrow workgroup when the
    /// product fills at most half of the block along a side and that saves
    /// at least `narrow_macs` × 2^20 multiply-adds of padding. The blocked
    /// variant, whose tiles are already small, has one shape.
    pub fn matmul_shape(&self, p: &Product) -> MatmulShape {
        if !self.matmul.is_tiled() {
            return MatmulShape::BASE;
        }
        let tiles = if self.has_big_tiles() && p.macs() >= (self.big_macs as u64) << 20 {
            Tiles::Big
        } else {
            Tiles::Base
        };
        let full = MatmulShape {
            tiles,
            workgroup: Workgroup::Full,
        };
        let c = self.shaped(full);
        let workgroup = if c.tiled_wg_n > NARROW_WG && 2 * p.n <= c.tiled_wg_n * c.tile_n {
            Workgroup::NarrowN
        } else if c.tiled_wg_m > NARROW_WG && 2 * p.m <= c.tiled_wg_m * c.tile_m {
            Workgroup::NarrowM
        } else {
            return full;
        };
        let narrow = MatmulShape { tiles, workgroup };
        let saved = self
            .padded_macs(full, p)
            .saturating_sub(self.padded_macs(narrow, p));
        if saved >= (self.narrow_macs as u64) << 20 {
            narrow
        } else {
            full
        }
    }

    /// Multiply-adds a tiled product costs in `shape`, padding included.
    pub fn padded_macs(&self, shape: MatmulShape, p: &Product) -> u64 {
        let c = self.shaped(shape);
        let bm = (c.tiled_wg_m * c.tile_m) as u64;
        let bn = (c.tiled_wg_n * c.tile_n) as u64;
        (p.m as u64).div_ceil(bm) * bm * (p.n as u64).div_ceil(bn) * bn * p.k as u64
    }

    /// This configuration with the tile and workgroup of `shape`.
    pub fn shaped(&self, shape: MatmulShape) -> KernelConfig {
        let mut c = *self;
        if let (Tiles::Big, Some((m, n))) = (shape.tiles, self.big_tile) {
            (c.tile_m, c.tile_n) = (m, n);
        }
        match shape.workgroup {
            Workgroup::Full => {}
            Workgroup::NarrowN => c.tiled_wg_n = c.tiled_wg_n.min(NARROW_WG),
            Workgroup::NarrowM => c.tiled_wg_m = c.tiled_wg_m.min(NARROW_WG),
        }
        c
    }

    /// The shapes this configuration builds pipelines for.
    pub fn matmul_shapes(&self) -> Vec<MatmulShape> {
        if !self.matmul.is_tiled() {
            return vec![MatmulShape::BASE];
        }
        let tiles: &[Tiles] = if self.has_big_tiles() {
            &[Tiles::Base, Tiles::Big]
        } else {
            &[Tiles::Base]
        };
        tiles
            .iter()
            .flat_map(|&tiles| {
                Workgroup::ALL
                    .into_iter()
                    .map(move |workgroup| MatmulShape { tiles, workgroup })
            })
            .collect()
    }

    /// Workgroups of one matmul dispatch (per split) producing `p`'s
    /// result, in the shape [`KernelConfig::matmul_shape`] picks.
    pub fn matmul_groups(&self, p: &Product) -> u64 {
        self.shaped(self.matmul_shape(p)).shape_groups(p.m, p.n)
    }

    fn shape_groups(&self, m: u32, n: u32) -> u64 {
        let (m, n) = (m as u64, n as u64);
        match self.matmul {
            MatmulVariant::Blocked => {
                let tiles = m.div_ceil(self.tile_m as u64) * n.div_ceil(self.tile_n as u64);
                tiles.div_ceil(self.blocked_wg as u64)
            }
            MatmulVariant::Tiled | MatmulVariant::Vec4 => {
                m.div_ceil((self.tiled_wg_m * self.tile_m) as u64)
                    * n.div_ceil((self.tiled_wg_n * self.tile_n) as u64)
            }
        }
    }

    /// Workgroups of one split of a layer's weight-gradient dispatch: the
    /// `out × in` product's, then enough for one bias output per invocation
    /// (`dense_backward.wgsl`).
    pub fn weight_gradient_groups(&self, p: &Product) -> u64 {
        let shaped = self.shaped(self.matmul_shape(p));
        shaped.shape_groups(p.m, p.n) + (p.m as u64).div_ceil(shaped.matmul_wg() as u64)
    }

    /// Invocations one split of a matmul keeps busy.
    pub fn matmul_invocations(&self, p: &Product) -> u64 {
        let shaped = self.shaped(self.matmul_shape(p));
        shaped.shape_groups(p.m, p.n) * shaped.matmul_wg() as u64
    }

    /// Invocations per workgroup of the matmul variant in use.
    fn matmul_wg(&self) -> u32 {
        match self.matmul {
            MatmulVariant::Blocked => self.blocked_wg,
            MatmulVariant::Tiled | MatmulVariant::Vec4 => self.tiled_wg(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(in_dim: usize, out_dim: usize) -> LayerLayout {
        LayerLayout {
            in_dim,
            out_dim,
            weight: 0,
            bias: in_dim * out_dim,
            tanh: true,
        }
    }

    const fn shape(tiles: Tiles, workgroup: Workgroup) -> MatmulShape {
        MatmulShape { tiles, workgroup }
    }

    #[test]
    fn narrow_products_get_narrow_workgroups() {
        use Tiles::Base;
        use Workgroup::*;
        let hw = KernelConfig::hardware();
        // The large benchmark network (1 → 256 → 256 → 24, 65 536 rows):
        // the head's forward product, the head's and the first layer's
        // weight gradients are narrow; the 256-wide products are not.
        let (first, hidden, head) = (layer(1, 256), layer(256, 256), layer(256, 24));
        let rows = 65536;
        for (p, want) in [
            (Product::forward(&first, rows), Full),
            (Product::forward(&hidden, rows), Full),
            (Product::forward(&head, rows), NarrowN),
            (Product::weight_gradient(&first, rows), NarrowN),
            (Product::weight_gradient(&hidden, rows), Full),
            (Product::weight_gradient(&head, rows), NarrowM),
            (Product::input_gradient(&head, rows), Full),
        ] {
            let want = shape(Base, want);
            assert_eq!(hw.matmul_shape(&p), want, "{p:?}");
            // The shape's grid covers the product, with less padding than
            // the full block where it is narrow.
            let shaped = hw.shaped(want);
            let (bm, bn) = (
                shaped.tiled_wg_m * shaped.tile_m,
                shaped.tiled_wg_n * shaped.tile_n,
            );
            let groups = hw.matmul_groups(&p);
            assert_eq!(groups, (p.m.div_ceil(bm) * p.n.div_ceil(bn)) as u64);
            assert!(groups * (bm * bn) as u64 >= (p.m * p.n) as u64);
            assert!(hw.padded_macs(want, &p) <= hw.padded_macs(MatmulShape::BASE, &p));
        }
        // The small benchmark's thin products save too little for a narrow
        // (slower to start) workgroup, unless asked for with narrow=0.
        let head = Product::forward(&layer(32, 15), 1024);
        assert_eq!(hw.matmul_shape(&head), MatmulShape::BASE);
        let eager = hw.with_overrides("narrow=0").unwrap();
        assert_eq!(eager.matmul_shape(&head), shape(Base, NarrowN));
        // The blocked variant's small tiles have one shape.
        let sw = KernelConfig::software();
        let thin = Product::weight_gradient(&first, rows);
        assert_eq!(sw.matmul_shape(&thin), MatmulShape::BASE);
        assert_eq!(sw.matmul_shapes(), [MatmulShape::BASE]);
        // Every shape's pipeline is listed, and only for the matmul stages.
        let specs = hw.pipelines();
        for label in [
            "dense_forward",
            "dense_backward weight",
            "dense_backward input",
        ] {
            let shapes: Vec<_> = specs
                .iter()
                .filter(|p| p.label == label)
                .map(|p| p.shape)
                .collect();
            let want: Vec<_> = Workgroup::ALL
                .into_iter()
                .map(|w| Some(shape(Base, w)))
                .collect();
            assert_eq!(shapes, want);
        }
    }

    #[test]
    fn big_products_get_big_tiles() {
        use Tiles::*;
        use Workgroup::*;
        let hw = KernelConfig::hardware()
            .with_overrides("matmul=vec4,big_tile=8x8,big_macs=256")
            .unwrap();
        let (first, hidden, head) = (layer(1, 256), layer(256, 256), layer(256, 24));
        // Large (65 536 rows): the 256-wide products and the head's are
        // over 2^28 multiply-adds; the first layer's (K or N of 1) are not.
        let rows = 65536;
        for (p, want) in [
            (Product::forward(&first, rows), shape(Base, Full)),
            (Product::forward(&hidden, rows), shape(Big, Full)),
            (Product::forward(&head, rows), shape(Big, NarrowN)),
            (Product::weight_gradient(&first, rows), shape(Base, NarrowN)),
            (Product::weight_gradient(&hidden, rows), shape(Big, Full)),
            (Product::weight_gradient(&head, rows), shape(Big, NarrowM)),
            (Product::input_gradient(&hidden, rows), shape(Big, Full)),
        ] {
            assert_eq!(hw.matmul_shape(&p), want, "{p:?}");
            let c = hw.shaped(want);
            let want_tile = if want.tiles == Big { 8 } else { 4 };
            assert_eq!((c.tile_m, c.tile_n), (want_tile, want_tile));
            let (bm, bn) = (c.tiled_wg_m * c.tile_m, c.tiled_wg_n * c.tile_n);
            assert_eq!(
                hw.matmul_groups(&p),
                (p.m.div_ceil(bm) * p.n.div_ceil(bn)) as u64
            );
        }
        // Small (1 024 rows, 32 wide): nothing is big.
        let small = Product::forward(&layer(32, 32), 1024);
        assert_eq!(hw.matmul_shape(&small), MatmulShape::BASE);
        // Six shapes, six pipelines per matmul stage; none where the big
        // tile is the base tile or unset.
        assert_eq!(hw.matmul_shapes().len(), 6);
        let same = hw.with_overrides("big_tile=4x4").unwrap();
        assert_eq!(same.matmul_shapes().len(), 3);
        let off = hw.with_overrides("big_tile=none").unwrap();
        assert_eq!(off.big_tile, None);
        assert_eq!(
            off.matmul_shape(&Product::forward(&hidden, rows)).tiles,
            Base
        );
    }
}
