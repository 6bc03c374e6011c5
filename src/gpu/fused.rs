//! The fused training step (`shaders/fused_step.wgsl`): which networks it
//! takes and how it lays out one workgroup's memory. A step is then two
//! dispatches — the fused forward/backward pass, and Adam, which sums the
//! workgroups' gradient slices (and, in a workgroup of its own, the batch
//! loss) — instead of `3·L + 2`: at the sizes MDN users train (hidden
//! 32–64, batch 256–4096) a step on a real GPU is bound by dispatch
//! latency, not arithmetic. On CPU drivers it is the other way round, and
//! the fused step is off there by default (`KernelConfig::software`,
//! docs/benchmarks.md).
//!
//! A workgroup takes chunks of `chunk_rows` batch rows, one at a time, and
//! keeps a chunk's every activation, its targets and two blocks of deltas
//! in [`KernelConfig::fused_scratch`] floats of workgroup memory, so
//! `chunk_rows` is what fits. The chunking depends only on the network, the batch and the
//! configuration, never on timing, so the step is deterministic.

use super::config::{KernelConfig, MAX_TILE};
use super::layouts::{FusedInfo, FusedLayer, MAX_LAYERS};
use super::loop_budget::{LLVMPIPE_LANES, strided_passes};
use crate::model::{ModelSpec, ParamLayout};

/// Widest hidden layer the fused step takes; wider networks keep the
/// per-stage kernels, whose tiled products use the device better.
pub const FUSED_MAX_WIDTH: usize = 128;

/// The WGSL the Rust side prepends to `fused_step.wgsl` (after
/// `common.wgsl` and the head's row loss), for a workgroup memory of
/// `scratch` floats: a constant, not an override, since the array it sizes
/// must be one to every backend.
pub fn prelude(scratch: u32) -> String {
    format!(
        "const FUSED_SCRATCH: u32 = {scratch}u;\n\
         const MAX_FUSED_TILE: u32 = {MAX_TILE}u;\n\
         const MAX_FUSED_TILE_SQ: u32 = {}u;\n",
        MAX_TILE * MAX_TILE
    )
}

/// How one network's fused step runs: its uniform record and its grid.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusedShape {
    pub info: FusedInfo,
    /// Workgroups per step; also the number of gradient slices per layer.
    pub groups: u32,
}

impl FusedShape {
    /// The fused step for `models` models of `spec` (in the same
    /// dispatches) in minibatches of `batch`, or an error (the reason)
    /// where the network does not qualify: the
    /// configuration turns it off, the head has no row loss in WGSL (the
    /// full-covariance head), a hidden layer is wider than
    /// [`FUSED_MAX_WIDTH`], one row's values do not fit the workgroup
    /// memory, or the device offers less of it than the configuration's
    /// [`KernelConfig::fused_scratch`]. Where the driver stops loops past
    /// a number of passes (`loop_budget`, see `gpu::loop_budget`), a
    /// workgroup takes no more chunks than fit it, and a chunk no more rows.
    pub fn plan(
        cfg: &KernelConfig,
        spec: &ModelSpec,
        layout: &ParamLayout,
        batch: usize,
        workgroup_bytes: u32,
        loop_budget: Option<u64>,
        models: usize,
    ) -> Result<Self, String> {
        if !cfg.fused {
            return Err("turned off (fused=off)".into());
        }
        if spec.head_def().row_wgsl().is_none() {
            return Err(format!(
                "the {} head has no fused row loss",
                spec.head_def().stem()
            ));
        }
        if let Some(&w) = spec.hidden.iter().find(|&&w| w > FUSED_MAX_WIDTH) {
            return Err(format!("a hidden layer of {w} > {FUSED_MAX_WIDTH}"));
        }
        let scratch = cfg.fused_scratch as usize;
        if (workgroup_bytes as usize) < scratch * 4 {
            return Err(format!("{workgroup_bytes} bytes of workgroup memory"));
        }
        if layout.layers.len() > MAX_LAYERS || batch == 0 {
            return Err("no layers or no rows".into());
        }
        let widths = spec.widths();
        let widest = widths[1..].iter().copied().max().unwrap_or(1);
        let per_row = widths.iter().sum::<usize>() + spec.out_dim + 2 * widest;
        // With `fused_stage`, every layer's weights first, a row of an odd
        // number of floats per output: the invocations of a product read
        // rows 4 apart, which an odd stride spreads over every bank.
        let w_stride = |l: &crate::model::LayerLayout| l.in_dim | 1;
        let staged: Vec<usize> = if cfg.fused_stage {
            let mut at = 0;
            layout
                .layers
                .iter()
                .map(|l| {
                    let here = at;
                    at += l.out_dim * w_stride(l);
                    here
                })
                .collect()
        } else {
            Vec::new()
        };
        let weights_len = layout
            .layers
            .iter()
            .filter(|_| cfg.fused_stage)
            .map(|l| l.out_dim * w_stride(l))
            .sum::<usize>();
        let mut chunk_rows = (scratch.saturating_sub(weights_len) / per_row)
            .min(cfg.fused_rows as usize)
            .min(batch);
        let passes = LoopPasses { cfg, spec, layout };
        let fixed = passes.per_group();
        if let Some(budget) = loop_budget {
            while chunk_rows > 1 && fixed + passes.per_chunk(chunk_rows) > budget {
                chunk_rows -= 1;
            }
            if chunk_rows == 1 && fixed + passes.per_chunk(1) > budget {
                return Err(format!(
                    "one row runs {} loop passes an invocation, over this driver's budget of {budget}",
                    fixed + passes.per_chunk(1)
                ));
            }
        }
        if chunk_rows == 0 {
            return Err(if weights_len > 0 {
                format!(
                    "{weights_len} floats of staged weights and {per_row} per row > {scratch} of \
                     workgroup memory"
                )
            } else {
                format!("{per_row} floats per row > {scratch} of workgroup memory")
            });
        }
        let chunks = batch.div_ceil(chunk_rows);
        // `fused_groups` bounds the workgroups of a step, every model's
        // together: more models, fewer slices each (less memory, and less
        // for Adam to add up), the same parallelism.
        let groups_per_model = (cfg.fused_groups as usize / models.max(1)).max(1);
        let mut per_group = chunks.div_ceil(groups_per_model);
        if let Some(budget) = loop_budget {
            let most = (budget - fixed) / passes.per_chunk(chunk_rows);
            per_group = per_group.min(most.max(1) as usize);
        }
        // Recounted from the chunks per group, so every group has rows.
        let groups = chunks.div_ceil(per_group);

        // Workgroup memory: the staged weights, each activation (rows ×
        // width, input first), the targets, then the two delta blocks.
        let mut at = weights_len;
        let mut act_at = Vec::with_capacity(widths.len());
        for &w in &widths {
            act_at.push(at);
            at += chunk_rows * w;
        }
        let targets_at = at;
        at += chunk_rows * spec.out_dim;
        let (delta_a, delta_b) = (at, at + chunk_rows * widest);
        debug_assert!(delta_b + chunk_rows * widest <= scratch);

        let mut info = FusedInfo {
            rows: batch as u32,
            layer_count: layout.layers.len() as u32,
            chunk_rows: chunk_rows as u32,
            chunks_per_group: per_group as u32,
            in_dim: spec.in_dim as u32,
            d: spec.out_dim as u32,
            k: spec.k() as u32,
            head_width: spec.head_width() as u32,
            grad_scale: 1.0 / batch as f32,
            targets_at: targets_at as u32,
            delta_a: delta_a as u32,
            delta_b: delta_b as u32,
            ..Default::default()
        };
        let mut partial_at = 0usize;
        for (i, l) in layout.layers.iter().enumerate() {
            info.layers[i] = FusedLayer {
                in_dim: l.in_dim as u32,
                out_dim: l.out_dim as u32,
                weight: l.weight as u32,
                bias: l.bias as u32,
                act_in: act_at[i] as u32,
                act_out: act_at[i + 1] as u32,
                partial_offset: partial_at as u32,
                tanh: l.tanh as u32,
                w_at: staged.get(i).map_or(0, |&a| a as u32),
                w_stride: w_stride(l) as u32,
                ..Default::default()
            };
            partial_at += groups * l.out_dim * (l.in_dim + 1);
        }
        Ok(FusedShape {
            info,
            groups: groups as u32,
        })
    }

    /// Where layer `i`'s gradient slices start in the partials buffer
    /// (`groups` slices of out·(in + 1) values each).
    pub fn partial_offset(&self, i: usize) -> usize {
        self.info.layers[i].partial_offset as usize
    }

    /// One model's gradient partials: every layer's slices.
    pub fn partials_len(&self) -> usize {
        let last = self.info.layers[self.info.layer_count as usize - 1];
        last.partial_offset as usize
            + self.groups as usize * last.out_dim as usize * (last.in_dim as usize + 1)
    }
}

/// The loop passes of `shaders/fused_step.wgsl` in its busiest SIMD vector
/// (see `gpu::loop_budget`): the loops whose bounds come from the network
/// and the rows, not the fixed-count tile loops the driver unrolls. An upper
/// bound: measured, a 64,64 network's 15-row chunks in workgroups of 64
/// ran out of llvmpipe's 65 535 passes after 148 chunks (443 a chunk), where
/// this counts more.
struct LoopPasses<'a> {
    cfg: &'a KernelConfig,
    spec: &'a ModelSpec,
    layout: &'a ParamLayout,
}

impl LoopPasses<'_> {
    fn wg(&self) -> u64 {
        self.cfg.fused_wg as u64
    }

    fn tiles(&self, n: usize) -> u64 {
        (n as u64).div_ceil(self.cfg.fused_tile as u64)
    }

    /// A tile's sum over `len` terms (`tile_sums`, `tile4`): a pass a
    /// term, or with `fused_unroll` a pass per four and one per term left,
    /// and each loop's last test.
    fn sum(&self, len: u64) -> u64 {
        if self.cfg.fused_unroll && !self.cfg.fused_vec4 {
            len / 4 + 1 + len % 4 + 1
        } else {
            len + 1
        }
    }

    /// Once per workgroup: the chunk loop's last test, and staging the
    /// weights.
    fn per_group(&self) -> u64 {
        let mut passes = 1;
        if self.cfg.fused_stage {
            passes += self.layout.layers.len() as u64 + 1;
            for l in &self.layout.layers {
                passes += strided_passes((l.out_dim * l.in_dim) as u64, self.wg());
            }
        }
        passes
    }

    /// One chunk of `n` rows, in the order `main` runs it.
    fn per_chunk(&self, n: usize) -> u64 {
        let (wg, rows) = (self.wg(), n as u64);
        let layers = &self.layout.layers;
        let spec = self.spec;
        // The chunk loop's pass, and the gathers of inputs and targets.
        let mut passes = 1
            + strided_passes(rows * spec.in_dim as u64, wg)
            + strided_passes(rows * spec.out_dim as u64, wg);
        // Forward: a tile's sum over the layer's inputs.
        passes += layers.len() as u64 + 1;
        for l in layers {
            let tiles = self.tiles(n) * self.tiles(l.out_dim);
            passes += strided_passes(tiles, wg) * self.sum(l.in_dim as u64);
        }
        // The head's row loss, a row an invocation.
        let head = spec.head_def().row_loop_passes(spec.k(), spec.out_dim) as u64;
        passes += strided_passes(rows, wg) * (head + 1);
        // Backward: weight tiles (a sum over the rows), biases (the same),
        // input tiles (a sum over the outputs) dealt out together, so a
        // vector whose lanes hold items of several kinds runs each kind's
        // loop.
        passes += layers.len() as u64 + 1;
        for (i, l) in layers.iter().enumerate() {
            let weight_tiles = self.tiles(l.out_dim) * self.tiles(l.in_dim);
            let bias_end = weight_tiles + l.out_dim as u64;
            let items = if i > 0 {
                bias_end + self.tiles(n) * self.tiles(l.in_dim)
            } else {
                bias_end
            };
            let cost = |item: u64| -> (usize, u64) {
                if item < weight_tiles {
                    (0, self.sum(rows))
                } else if item < bias_end {
                    (1, rows + 1)
                } else {
                    (2, self.sum(l.out_dim as u64))
                }
            };
            let mut busiest = 0;
            for first in (0..wg).step_by(LLVMPIPE_LANES as usize) {
                let mut vector = 1;
                let mut pass = 0;
                while first + pass * wg < items {
                    let mut kinds = [0u64; 3];
                    for lane in first..(first + LLVMPIPE_LANES).min(wg) {
                        let item = lane + pass * wg;
                        if item < items {
                            let (kind, c) = cost(item);
                            kinds[kind] = c;
                        }
                    }
                    vector += 1 + kinds.iter().sum::<u64>();
                    pass += 1;
                }
                busiest = busiest.max(vector);
            }
            passes += busiest;
        }
        passes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(hidden: Vec<usize>, k: usize, d: usize, batch: usize) -> Result<FusedShape, String> {
        let spec = ModelSpec::mixture(1, d, hidden, k).unwrap();
        let cfg = KernelConfig {
            fused: true,
            ..KernelConfig::software()
        };
        FusedShape::plan(&cfg, &spec, &spec.layout(), batch, 16384, None, 1)
    }

    #[test]
    fn chunks_fit_the_workgroup_memory_and_cover_the_batch() {
        for (hidden, k, d, batch) in [
            (vec![128, 128], 7, 3, 4096),
            (vec![1], 1, 1, 1),
            (vec![33, 33], 7, 3, 100),
            (vec![64, 64], 5, 1, 1024),
        ] {
            let s = shape(hidden.clone(), k, d, batch).unwrap();
            let i = s.info;
            let widest = (i.delta_b - i.delta_a) as usize / i.chunk_rows as usize;
            let scratch = KernelConfig::software().fused_scratch as usize;
            assert!(i.delta_b as usize + i.chunk_rows as usize * widest <= scratch);
            let rows = (s.groups * i.chunks_per_group * i.chunk_rows) as usize;
            assert!(rows >= batch, "{hidden:?}: {rows} < {batch}");
            // No group is left without rows.
            assert!((((s.groups - 1) * i.chunks_per_group * i.chunk_rows) as usize) < batch);
            // Every layer's slices, one after another.
            let spec = ModelSpec::mixture(1, d, hidden.clone(), k).unwrap();
            let slices: usize = spec
                .layout()
                .layers
                .iter()
                .map(|l| s.groups as usize * l.out_dim * (l.in_dim + 1))
                .sum();
            assert_eq!(s.partials_len(), slices, "{hidden:?}");
        }
    }

    /// `fused_groups` bounds the workgroups of every model together, one
    /// a model at least; the chunks still cover each model's batch.
    #[test]
    fn models_share_the_workgroup_budget() {
        let spec = ModelSpec::mixture(1, 1, vec![32, 32], 5).unwrap();
        let cfg = KernelConfig {
            fused: true,
            fused_groups: 64,
            ..KernelConfig::software()
        };
        let plan =
            |models| FusedShape::plan(&cfg, &spec, &spec.layout(), 4096, 16384, None, models);
        for (models, most) in [(1, 64), (4, 16), (64, 1), (1000, 1)] {
            let s = plan(models).unwrap();
            assert!(s.groups <= most, "{models} models: {} groups", s.groups);
            let rows = (s.groups * s.info.chunks_per_group * s.info.chunk_rows) as usize;
            assert!(rows >= 4096, "{models} models: {rows} rows");
        }
    }

    /// `fused_rows` caps a chunk below what the workgroup memory allows
    /// (a small model's 28 rows): more chunks, as many workgroups.
    #[test]
    fn fused_rows_shortens_the_chunks() {
        let spec = ModelSpec::mixture(1, 1, vec![32, 32], 5).unwrap();
        let plan = |rows| {
            let cfg = KernelConfig {
                fused: true,
                fused_rows: rows,
                ..KernelConfig::hardware()
            };
            FusedShape::plan(&cfg, &spec, &spec.layout(), 1024, 16384, None, 1).unwrap()
        };
        let own = plan(64);
        assert_eq!((own.info.chunk_rows, own.groups), (28, 37));
        let short = plan(8);
        assert_eq!((short.info.chunk_rows, short.groups), (8, 128));
        assert_eq!(short.info.chunks_per_group, 1);
    }

    /// More workgroup memory, more rows a chunk, up to `fused_rows`; a
    /// device with less than the configuration asks for is refused.
    #[test]
    fn a_larger_scratch_holds_more_rows() {
        let spec = ModelSpec::mixture(1, 1, vec![128, 128], 5).unwrap();
        let plan = |scratch, bytes| {
            let cfg = KernelConfig {
                fused: true,
                fused_scratch: scratch,
                ..KernelConfig::hardware()
            };
            FusedShape::plan(&cfg, &spec, &spec.layout(), 4096, bytes, None, 1)
        };
        // 1 + 128 + 128 + 15 activations, 1 target, 2 × 128 deltas a row.
        let rows = |scratch| plan(scratch, 49152).unwrap().info.chunk_rows;
        assert_eq!([rows(4096), rows(8192), rows(12288)], [7, 15, 23]);
        let e = plan(12288, 32768).unwrap_err();
        assert!(e.contains("32768 bytes"), "{e}");
    }

    /// Staged weights come first, each layer's rows at an odd stride, and
    /// the chunk's rows fit behind them; weights that leave no room for a
    /// row are refused, naming them.
    #[test]
    fn staged_weights_sit_before_the_rows() {
        let spec = ModelSpec::mixture(1, 1, vec![32, 32], 5).unwrap();
        let plan = |stage, scratch| {
            let cfg = KernelConfig {
                fused: true,
                fused_stage: stage,
                fused_scratch: scratch,
                ..KernelConfig::hardware()
            };
            FusedShape::plan(&cfg, &spec, &spec.layout(), 1024, 49152, None, 1)
        };
        let s = plan(true, 4096).unwrap();
        let l = &s.info.layers;
        // 32×1 (stride 1), 32×32 (stride 33), 15×32 (stride 33).
        assert_eq!([l[0].w_stride, l[1].w_stride, l[2].w_stride], [1, 33, 33]);
        assert_eq!([l[0].w_at, l[1].w_at, l[2].w_at], [0, 32, 32 + 32 * 33]);
        let weights = 32 + 32 * 33 + 15 * 33;
        assert_eq!(l[0].act_in as usize, weights);
        let per_row = 1 + 32 + 32 + 15 + 1 + 2 * 32;
        assert_eq!(s.info.chunk_rows as usize, (4096 - weights) / per_row);
        let widest = 32;
        assert!(s.info.delta_b as usize + s.info.chunk_rows as usize * widest <= 4096);
        // Unstaged, the rows start at 0 and there are more of them.
        let plain = plan(false, 4096).unwrap();
        assert_eq!(plain.info.layers[0].act_in, 0);
        assert!(plain.info.chunk_rows > s.info.chunk_rows);

        let wide = ModelSpec::mixture(1, 1, vec![128, 128], 5).unwrap();
        let cfg = KernelConfig {
            fused: true,
            fused_stage: true,
            ..KernelConfig::hardware()
        };
        let e = FusedShape::plan(&cfg, &wide, &wide.layout(), 64, 49152, None, 1).unwrap_err();
        assert!(e.contains("staged weights"), "{e}");
    }

    /// Measured on llvmpipe (Mesa 22.3): with the software configuration, a
    /// 64,64 network's 15-row chunks ran out of its 65 535 loop passes after
    /// 148 chunks of one workgroup, 443 passes a chunk (K 1) and 482 (K 5,
    /// 136 chunks). The count must not be below what the driver counted.
    #[test]
    fn the_loop_count_covers_what_llvmpipe_counted() {
        let cfg = KernelConfig {
            fused: true,
            ..KernelConfig::software()
        };
        for (k, measured) in [(1, 65_535 / 148), (5, 65_535 / 136)] {
            let spec = ModelSpec::mixture(1, 1, vec![64, 64], k).unwrap();
            let layout = spec.layout();
            let passes = LoopPasses {
                cfg: &cfg,
                spec: &spec,
                layout: &layout,
            };
            let counted = passes.per_chunk(15);
            assert!(counted >= measured, "K {k}: {counted} < {measured}");
            // …and not so far above it that the budget is mostly waste.
            assert!(counted < 2 * measured, "K {k}: {counted}");
        }
    }

    /// Under a loop budget a workgroup takes only the chunks that fit it:
    /// more workgroups than `fused_groups` asks for, every row still
    /// covered; without one, as asked.
    #[test]
    fn a_loop_budget_bounds_the_chunks_of_a_workgroup() {
        let spec = ModelSpec::mixture(1, 1, vec![64, 64], 5).unwrap();
        let layout = spec.layout();
        let cfg = KernelConfig {
            fused: true,
            fused_groups: 1,
            ..KernelConfig::software()
        };
        let free = FusedShape::plan(&cfg, &spec, &layout, 4096, 16384, None, 1).unwrap();
        assert_eq!(free.groups, 1);
        let budget = 32_767;
        let s = FusedShape::plan(&cfg, &spec, &layout, 4096, 16384, Some(budget), 1).unwrap();
        let passes = LoopPasses {
            cfg: &cfg,
            spec: &spec,
            layout: &layout,
        };
        let i = s.info;
        let per_group = passes.per_group()
            + i.chunks_per_group as u64 * passes.per_chunk(i.chunk_rows as usize);
        assert!(per_group <= budget, "{per_group} > {budget}");
        assert!(s.groups > 1);
        let rows = (s.groups * i.chunks_per_group * i.chunk_rows) as usize;
        assert!(rows >= 4096);
        assert!((((s.groups - 1) * i.chunks_per_group * i.chunk_rows) as usize) < 4096);

        // A budget smaller than one row's loops leaves no fused step.
        let e = FusedShape::plan(&cfg, &spec, &layout, 4096, 16384, Some(50), 1).unwrap_err();
        assert!(e.contains("loop passes"), "{e}");
    }

    /// A head's row loss runs inside the fused step's loop budget: every
    /// kind with one counts its loops.
    #[test]
    fn every_fused_row_loss_counts_its_loops() {
        for kind in crate::head::HeadKind::ALL {
            let def = kind.def();
            if def.row_wgsl().is_some() {
                assert!(def.row_loop_passes(3, 2) > 0, "{}", def.stem());
            }
        }
    }

    #[test]
    fn wide_or_full_covariance_networks_take_the_per_stage_path() {
        assert!(shape(vec![129], 1, 1, 64).is_err());
        let full = ModelSpec::new(1, 2, vec![8], crate::model::Head::full_mixture(2)).unwrap();
        let cfg = KernelConfig {
            fused: true,
            ..KernelConfig::software()
        };
        assert!(FusedShape::plan(&cfg, &full, &full.layout(), 64, 16384, None, 1).is_err());
        let off = KernelConfig {
            fused: false,
            ..cfg
        };
        let spec = ModelSpec::mixture(1, 1, vec![8], 2).unwrap();
        assert!(FusedShape::plan(&off, &spec, &spec.layout(), 64, 16384, None, 1).is_err());
    }
}
