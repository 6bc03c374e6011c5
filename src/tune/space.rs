//! What `mdn tune` varies: the settings of [`KernelConfig`] whose best
//! value depends on the device and the job, each with the values worth
//! trying. Values are override strings (`MDN_GPU_KERNELS` syntax), so one
//! value may set several keys that only make sense together (a matmul
//! variant with its tile and depth).

use crate::gpu::config::{KernelConfig, MAX_CHUNK_ROWS};

/// One setting and its candidate values.
#[derive(Clone, Debug)]
pub struct Knob {
    /// The override key, or for a combined value the main one.
    pub name: &'static str,
    pub values: Vec<String>,
    /// Whether the setting changes anything for a configuration (a tiled
    /// matmul's workgroup means nothing to the blocked one): a knob that
    /// does not is passed over instead of timing the same kernels again.
    pub applies: fn(&KernelConfig) -> bool,
}

impl Knob {
    fn new(name: &'static str, values: impl IntoIterator<Item = String>) -> Self {
        let mut v: Vec<String> = Vec::new();
        for value in values {
            if !v.contains(&value) {
                v.push(value);
            }
        }
        Knob {
            name,
            values: v,
            applies: |_| true,
        }
    }

    fn when(self, applies: fn(&KernelConfig) -> bool) -> Self {
        Knob { applies, ..self }
    }

    fn numbers(name: &'static str, values: impl IntoIterator<Item = usize>) -> Self {
        Knob::new(name, values.into_iter().map(|n| format!("{name}={n}")))
    }
}

/// The fused step's settings (`shaders/fused_step.wgsl`), in the order they
/// are searched: the register tile first, which changes the others' best
/// the most (the tile sets the invocations a chunk keeps busy), the
/// optimizer's share last. `threads` (the host's, for the CPU drivers'
/// default of a few workgroups a thread) adds that group count.
pub fn fused_knobs(threads: usize) -> Vec<Knob> {
    let mut groups = vec![4 * threads, 64, 256, 1024, 2048, 8192];
    groups.sort_unstable();
    vec![
        Knob::numbers("fused_tile", [1, 2, 4, 8]),
        // Named registers exist for 4×4 tiles only: tried with them,
        // whatever tile won above.
        Knob::new(
            "fused_vec4",
            ["fused_tile=4,fused_vec4=on".into(), "fused_vec4=off".into()],
        ),
        // The array sums four terms a loop pass, with the arrays (and
        // whatever tile won).
        Knob::new(
            "fused_unroll",
            [
                "fused_vec4=off,fused_unroll=on".into(),
                "fused_unroll=off".into(),
            ],
        ),
        // 16, 32 and 48 KiB of workgroup memory: more rows a chunk where
        // the device has it (the trial is skipped where it has not).
        Knob::numbers("fused_scratch", [4096, 8192, 12288]),
        // The weights staged in that memory: they need room beside the
        // rows, so with each size.
        Knob::new(
            "fused_stage",
            [
                "fused_stage=on",
                "fused_stage=on,fused_scratch=8192",
                "fused_stage=on,fused_scratch=12288",
                "fused_stage=off",
            ]
            .map(String::from),
        ),
        // 8 and 16 for CPU drivers, where a workgroup of one or two SIMD
        // vectors makes a barrier cheap.
        Knob::numbers("fused_wg", [8, 16, 32, 64, 128, 256]),
        Knob::numbers("fused_rows", [8, 16, 32, MAX_CHUNK_ROWS]),
        Knob::numbers("fused_groups", groups),
        Knob::numbers("adam_lanes", [1, 2, 4, 8]),
    ]
}

/// The per-stage path's settings: the matmul variant with its tiles (one
/// knob: a tile size means something else in each variant), then for the
/// staged variants their workgroup, depth and big products' tiles; the
/// weight gradient's batch splits, the per-row stages' workgroup, the
/// optimizer's lanes.
pub fn per_stage_knobs() -> Vec<Knob> {
    let tiled = |c: &KernelConfig| c.matmul.is_tiled();
    vec![
        Knob::new(
            "matmul",
            [
                "matmul=blocked,tile=4x4",
                "matmul=blocked,tile=8x8",
                "matmul=tiled,tile=4x4,wg=16x16,k=16",
                "matmul=vec4,tile=4x4,wg=16x16,k=16",
                "matmul=tiled,tile=8x8,wg=16x16,k=8",
                "matmul=vec4,tile=8x8,wg=16x16,k=8",
            ]
            .map(String::from),
        ),
        Knob::new("wg", ["wg=8x8", "wg=8x16", "wg=16x16"].map(String::from)).when(tiled),
        Knob::numbers("k", [8, 16, 32]).when(tiled),
        Knob::new(
            "big_tile",
            ["big_tile=none", "big_tile=8x8"].map(String::from),
        )
        .when(|c| c.matmul.is_tiled() && (c.tile_m, c.tile_n) != (8, 8)),
        Knob::numbers("invocations", [1 << 14, 1 << 16, 1 << 18]),
        Knob::numbers("rows_wg", [64, 128, 256]),
        Knob::numbers("adam_lanes", [1, 4]),
    ]
}

/// The settings of `config` that differ from `reference`, in override
/// syntax (`fused_tile=2,fused_rows=16`); empty when none do.
pub fn changes(reference: &KernelConfig, config: &KernelConfig) -> String {
    let theirs = reference.to_string();
    let theirs: Vec<&str> = theirs.split(',').collect();
    config
        .to_string()
        .split(',')
        .filter(|item| !theirs.contains(item))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_an_override_the_configuration_takes() {
        for knob in fused_knobs(16).into_iter().chain(per_stage_knobs()) {
            assert!(knob.values.len() >= 2, "{}", knob.name);
            assert!((knob.applies)(&KernelConfig::hardware()), "{}", knob.name);
            for v in &knob.values {
                let c = KernelConfig::hardware().with_overrides(v);
                assert!(c.is_ok(), "{v}: {c:?}");
                assert!(v.contains(&format!("{}=", knob.name)), "{v}");
            }
        }
    }

    #[test]
    fn a_staged_matmuls_settings_pass_the_blocked_one_over() {
        let blocked = KernelConfig::software();
        let passed: Vec<&str> = per_stage_knobs()
            .into_iter()
            .filter(|k| !(k.applies)(&blocked))
            .map(|k| k.name)
            .collect();
        assert_eq!(passed, ["wg", "k", "big_tile"]);
    }

    #[test]
    fn group_counts_are_listed_once() {
        let groups = |threads| {
            fused_knobs(threads)
                .into_iter()
                .find(|k| k.name == "fused_groups")
                .expect("a fused_groups knob")
                .values
        };
        assert_eq!(groups(4).len(), 6, "{:?}", groups(4));
        assert_eq!(groups(4)[0], "fused_groups=16", "ascending");
        assert_eq!(groups(64).len(), 5, "4 × 64 = 256 is listed");
    }

    #[test]
    fn changes_name_only_what_differs() {
        let base = KernelConfig::hardware();
        assert_eq!(changes(&base, &base), "");
        let c = base.with_overrides("fused_rows=16,adam_lanes=4").unwrap();
        assert_eq!(changes(&base, &c), "adam_lanes=4,fused_rows=16");
    }
}
