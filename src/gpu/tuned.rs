//! Kernel configurations measured on this machine (`mdn tune`), kept in a
//! small JSON file and looked up by adapter and job shape whenever a
//! trainer is built, so `train`, `sweep` and `bench` run what won here
//! instead of the adapter kind's defaults ([`super::KernelConfig::for_adapter`]).
//!
//! An entry is found only for the same adapter and driver, the same build
//! of the kernels (their WGSL and this crate's version: a new build may
//! change which configuration wins) and the same job: network, batch and
//! models stepped together. `MDN_GPU_KERNELS` still applies on top.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{MdnError, Result};
use crate::model::ModelSpec;

/// Environment variable naming the file (`off`: none is read or written).
pub const TUNED_KERNELS_ENV: &str = "MDN_TUNED_KERNELS";

/// The `format` the file carries.
const FORMAT: &str = "mdn-tuned-kernels/1";

/// Where the table lives: `$MDN_TUNED_KERNELS`, else
/// `$XDG_CACHE_HOME/mdn/tuned-kernels.json`, else
/// `$HOME/.cache/mdn/tuned-kernels.json`. `None` when the variable says
/// `off` or no home is known.
pub fn default_path() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(v) = env(TUNED_KERNELS_ENV) {
        if v.to_str()
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("off"))
        {
            return None;
        }
        return Some(PathBuf::from(v));
    }
    let cache = env("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("mdn").join("tuned-kernels.json"))
}

/// The adapter a measurement was made on, as the driver reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterKey {
    pub name: String,
    pub backend: String,
    pub vendor: u32,
    pub device: u32,
    pub driver: String,
    pub driver_info: String,
}

impl AdapterKey {
    pub fn of(info: &wgpu::AdapterInfo) -> Self {
        AdapterKey {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend).to_lowercase(),
            vendor: info.vendor,
            device: info.device,
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
        }
    }
}

/// What a trainer steps: the network, the rows a step and how many models
/// at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobShape {
    pub spec: ModelSpec,
    pub batch: usize,
    pub models: usize,
}

impl JobShape {
    /// `batch` as the trainer takes it: at most the rows there are.
    pub fn new(spec: &ModelSpec, batch: usize, rows: usize, models: usize) -> Self {
        JobShape {
            spec: spec.clone(),
            batch: batch.clamp(1, rows.max(1)),
            models: models.max(1),
        }
    }

    /// For messages: `1-32-32-15 mixture, batch 1024, 1 model`.
    pub fn describe(&self) -> String {
        let s = &self.spec;
        let mut widths = vec![s.in_dim];
        widths.extend(&s.hidden);
        widths.push(s.head_width());
        let widths: Vec<String> = widths.iter().map(|w| w.to_string()).collect();
        let head = if s.is_mixture() {
            format!("mixture K={}", s.k())
        } else {
            "mse".to_string()
        };
        let models = match self.models {
            1 => "1 model".to_string(),
            m => format!("{m} models"),
        };
        format!(
            "{} {head}, batch {}, {models}",
            widths.join("-"),
            self.batch
        )
    }
}

/// One measured winner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TunedEntry {
    pub adapter: AdapterKey,
    /// [`crate::gpu::kernels::kernels_build`] at the time.
    pub build: String,
    pub job: JobShape,
    /// The winning configuration, whole, in `MDN_GPU_KERNELS` syntax…
    pub kernels: String,
    /// …and the settings where it differs from the adapter's defaults
    /// (empty: the defaults won).
    #[serde(default)]
    pub changes: String,
    /// Its steps per second, and the adapter defaults', as measured.
    pub steps_per_s: f64,
    pub default_steps_per_s: f64,
    /// Seconds since the Unix epoch.
    pub measured_at: u64,
}

/// An entry in use, and the file it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Tuned {
    pub entry: TunedEntry,
    pub path: Option<PathBuf>,
}

impl Tuned {
    /// The file, for messages.
    pub fn source(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "the tuned kernels".to_string(),
        }
    }

    /// One line for the user: what ran, and what it gained when measured.
    pub fn describe(&self) -> String {
        let e = &self.entry;
        if e.changes.is_empty() {
            return format!(
                "GPU kernels: the adapter's defaults, which won when `mdn tune` measured this job ({})",
                self.source()
            );
        }
        format!(
            "GPU kernels tuned for this job by `mdn tune`: {} ({:.2}x the defaults' steps/s then; {})",
            e.changes,
            e.gain(),
            self.source()
        )
    }
}

impl TunedEntry {
    /// Its steps/s over the defaults', as measured.
    pub fn gain(&self) -> f64 {
        self.steps_per_s / self.default_steps_per_s.max(1e-12)
    }
}

/// The file's contents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TunedTable {
    pub format: String,
    pub entries: Vec<TunedEntry>,
    /// Where it was read from (not stored).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

// Rates are measured, never NaN; options that hold a table compare whole.
impl Eq for TunedTable {}

impl Default for TunedTable {
    fn default() -> Self {
        TunedTable {
            format: FORMAT.to_string(),
            entries: Vec::new(),
            path: None,
        }
    }
}

impl TunedTable {
    /// Reads the table at `path`; a missing file is an empty table.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(TunedTable {
                    path: Some(path.to_path_buf()),
                    ..TunedTable::default()
                });
            }
            Err(e) => return Err(MdnError::io(path, e)),
        };
        let bad = |why: String| {
            MdnError::Data(format!(
                "{}: not a table of tuned kernels ({why}); delete it or run `mdn tune` again",
                path.display()
            ))
        };
        let mut table: TunedTable = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if table.format != FORMAT {
            return Err(bad(format!(
                "format `{}`, expected `{FORMAT}`",
                table.format
            )));
        }
        table.path = Some(path.to_path_buf());
        Ok(table)
    }

    /// Writes the table to `path`, whole or not at all.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| MdnError::io(dir, e))?;
        }
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| MdnError::Config(format!("tuned kernels: {e}")))?;
        text.push('\n');
        crate::fsutil::write_atomic(path, text.as_bytes())
    }

    /// The entry for this adapter, this build of the kernels
    /// ([`crate::gpu::kernels::kernels_build`]) and this job.
    pub fn find(&self, adapter: &AdapterKey, build: &str, job: &JobShape) -> Option<&TunedEntry> {
        self.entries
            .iter()
            .find(|e| &e.adapter == adapter && e.build == build && &e.job == job)
    }

    /// Adds `entry`, replacing the one for the same adapter and job (of
    /// any build: a stale measurement is worth nothing).
    pub fn insert(&mut self, entry: TunedEntry) {
        self.entries
            .retain(|e| !(e.adapter == entry.adapter && e.job == entry.job));
        self.entries.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Head;

    const BUILD: &str = "0.1.0+0123456789abcdef";

    fn adapter(name: &str) -> AdapterKey {
        AdapterKey {
            name: name.into(),
            backend: "vulkan".into(),
            vendor: 0x10de,
            device: 0x2335,
            driver: "NVIDIA".into(),
            driver_info: "580.159.04".into(),
        }
    }

    fn job(batch: usize, models: usize) -> JobShape {
        let spec = ModelSpec::new(1, 1, vec![32, 32], Head::mixture(5)).unwrap();
        JobShape::new(&spec, batch, 10_000, models)
    }

    fn entry(a: &AdapterKey, j: &JobShape, kernels: &str) -> TunedEntry {
        TunedEntry {
            adapter: a.clone(),
            build: BUILD.into(),
            job: j.clone(),
            kernels: kernels.into(),
            changes: kernels.into(),
            steps_per_s: 2.0,
            default_steps_per_s: 1.0,
            measured_at: 0,
        }
    }

    #[test]
    fn entries_are_found_for_their_own_adapter_build_and_job_only() {
        let h200 = adapter("NVIDIA H200");
        let mut t = TunedTable::default();
        t.insert(entry(&h200, &job(1024, 1), "fused_tile=2"));
        assert_eq!(
            t.find(&h200, BUILD, &job(1024, 1)).unwrap().kernels,
            "fused_tile=2"
        );
        assert!(
            t.find(&h200, BUILD, &job(512, 1)).is_none(),
            "another batch"
        );
        assert!(
            t.find(&h200, BUILD, &job(1024, 32)).is_none(),
            "more models"
        );
        assert!(
            t.find(&adapter("NVIDIA H100"), BUILD, &job(1024, 1))
                .is_none()
        );
        let newer_driver = AdapterKey {
            driver_info: "590.1".into(),
            ..h200.clone()
        };
        assert!(t.find(&newer_driver, BUILD, &job(1024, 1)).is_none());
        assert!(
            t.find(&h200, "0.1.1+0123456789abcdef", &job(1024, 1))
                .is_none()
        );
    }

    #[test]
    fn a_new_measurement_replaces_the_old_one() {
        let a = adapter("A");
        let mut t = TunedTable::default();
        t.insert(entry(&a, &job(64, 1), "fused_tile=2"));
        t.insert(entry(&a, &job(128, 1), "fused_tile=4"));
        t.insert(entry(&a, &job(64, 1), "fused_tile=8"));
        assert_eq!(t.entries.len(), 2);
        assert_eq!(
            t.find(&a, BUILD, &job(64, 1)).unwrap().kernels,
            "fused_tile=8"
        );
    }

    #[test]
    fn the_batch_is_keyed_as_the_trainer_takes_it() {
        let spec = ModelSpec::new(1, 1, vec![8], Head::mixture(2)).unwrap();
        assert_eq!(JobShape::new(&spec, 4096, 300, 1).batch, 300);
        assert_eq!(
            JobShape::new(&spec, 0, 300, 0),
            JobShape::new(&spec, 1, 300, 1)
        );
        assert_eq!(
            JobShape::new(&spec, 256, 300, 3).describe(),
            "1-8-6 mixture K=2, batch 256, 3 models"
        );
    }

    #[test]
    fn the_table_survives_a_round_trip_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("t.json");
        assert_eq!(TunedTable::load(&path).unwrap().entries, vec![]);
        let a = adapter("A");
        let mut t = TunedTable::default();
        t.insert(entry(&a, &job(64, 2), "fused=on,fused_rows=16"));
        t.save(&path).unwrap();
        let back = TunedTable::load(&path).unwrap();
        assert_eq!(back.entries, t.entries);
        assert_eq!(back.path.as_deref(), Some(path.as_path()));

        for (text, says) in [
            ("{ not json", "not a table of tuned kernels"),
            (r#"{"format":"other/9","entries":[]}"#, "format `other/9`"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = TunedTable::load(&path).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("t.json"), "{e}");
        }
    }
}
