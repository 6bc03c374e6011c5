//! `sweep --resume`: a sweep that was stopped (a signal, a lost machine, a
//! job scheduler's time limit) goes on in its directory. The models it
//! finished are kept, the ones a signal cut short and the ones never
//! started are trained, and everything is ranked together, as if the
//! sweep had never stopped. The grid may also grow (another K, more
//! seeds): only the new combinations train.
//!
//! What the models share besides their combination (the data, the
//! validation rows, steps, batch, schedule, checks, patience, covariance)
//! is written to `DIR/sweep-settings.json` when a sweep starts; a resumed
//! sweep must match it, or models trained differently would be ranked
//! against each other.

use std::path::Path;

use anyhow::{Context, bail};
use mdn::Dataset;
use mdn::fingerprint::Fnv64;
use mdn::fsutil::write_atomic;
use mdn::model::{Covariance, Model, load_model};
use mdn::sweep::{Combination, Grid, SweepResult, order};
use mdn::train::LrSchedule;
use serde::{Deserialize, Serialize};

const SETTINGS: &str = "sweep-settings.json";
const FORMAT: &str = "mdn-sweep-settings/1";

/// What every model of a sweep shares besides its combination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepSettings {
    format: String,
    /// Fingerprints of the training and validation rows (values and
    /// column names), and their counts.
    train: String,
    train_rows: usize,
    val: String,
    val_rows: usize,
    steps: usize,
    batch: usize,
    schedule: LrSchedule,
    eval_every: usize,
    patience: Option<usize>,
    covariance: Covariance,
}

impl SweepSettings {
    pub fn of(grid: &Grid, train: &Dataset, val: &Dataset) -> Self {
        SweepSettings {
            format: FORMAT.into(),
            train: fingerprint(train),
            train_rows: train.len(),
            val: fingerprint(val),
            val_rows: val.len(),
            steps: grid.steps,
            batch: grid.batch,
            schedule: grid.schedule,
            eval_every: grid.eval_every,
            patience: grid.patience,
            covariance: grid.covariance,
        }
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)? + "\n";
        write_atomic(&dir.join(SETTINGS), text.as_bytes())?;
        Ok(())
    }

    /// What differs from `earlier`, as the user would name it.
    fn differences(&self, earlier: &Self) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |name: &str, now: String, then: String| {
            if now != then {
                out.push(format!("{name} {now} (was {then})"));
            }
        };
        check(
            "training data",
            format!("{} rows, fingerprint {}", self.train_rows, self.train),
            format!("{} rows, fingerprint {}", earlier.train_rows, earlier.train),
        );
        check(
            "validation data",
            format!("{} rows, fingerprint {}", self.val_rows, self.val),
            format!("{} rows, fingerprint {}", earlier.val_rows, earlier.val),
        );
        check("--steps", self.steps.to_string(), earlier.steps.to_string());
        check("--batch", self.batch.to_string(), earlier.batch.to_string());
        check(
            "--schedule",
            format!("{:?}", self.schedule).to_lowercase(),
            format!("{:?}", earlier.schedule).to_lowercase(),
        );
        check(
            "--eval-every",
            self.eval_every.to_string(),
            earlier.eval_every.to_string(),
        );
        let patience = |p: Option<usize>| p.map_or("none".into(), |p| p.to_string());
        check(
            "--patience",
            patience(self.patience),
            patience(earlier.patience),
        );
        check(
            "--covariance",
            format!("{:?}", self.covariance).to_lowercase(),
            format!("{:?}", earlier.covariance).to_lowercase(),
        );
        out
    }
}

/// The settings a sweep in `dir` was run with; `None` when it has no
/// settings file (made before they were written).
pub fn read_settings(dir: &Path) -> anyhow::Result<Option<SweepSettings>> {
    let path = dir.join(SETTINGS);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context(format!("reading {}", path.display())),
    };
    let settings: SweepSettings = serde_json::from_str(&text)
        .with_context(|| format!("{} is not readable", path.display()))?;
    if settings.format != FORMAT {
        bail!(
            "{} has format {:?}; this mdn reads {FORMAT:?}",
            path.display(),
            settings.format
        );
    }
    Ok(Some(settings))
}

/// Shards merged must have been swept alike: the first settings found,
/// checked against every other directory's (directories without a
/// settings file are not checked).
pub fn merged_settings(dirs: &[std::path::PathBuf]) -> anyhow::Result<Option<SweepSettings>> {
    let mut first: Option<(SweepSettings, &Path)> = None;
    for dir in dirs {
        let Some(s) = read_settings(dir)? else {
            continue;
        };
        match &first {
            None => first = Some((s, dir)),
            Some((f, f_dir)) => {
                let diffs = s.differences(f);
                if !diffs.is_empty() {
                    bail!(
                        "{} was swept with other settings than {}: {}; its models cannot be ranked with them",
                        dir.display(),
                        f_dir.display(),
                        diffs.join("; ")
                    );
                }
            }
        }
    }
    Ok(first.map(|(s, _)| s))
}

fn fingerprint(data: &Dataset) -> String {
    let mut h = Fnv64::default();
    h.eat(bytemuck::cast_slice(&data.inputs));
    h.eat(bytemuck::cast_slice(&data.targets));
    for name in data.input_names.iter().chain(&data.target_names) {
        h.eat(name.as_bytes());
        h.eat(&[0]);
    }
    format!("{:016x}", h.finish())
}

/// The lines of a `sweep.jsonl`; `None` when there is no such file.
pub fn read_results(path: &Path) -> anyhow::Result<Option<Vec<SweepResult>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context(format!("reading {}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}: line {}", path.display(), i + 1))
        })
        .collect::<anyhow::Result<_>>()
        .map(Some)
}

/// The earlier run's results that stand.
pub struct Resumed {
    /// Finished models' results, best first.
    pub kept: Vec<SweepResult>,
    /// The model of `kept[0]`.
    pub best: Option<Model>,
    /// Results a signal cut short, which train again.
    pub interrupted: usize,
}

impl Resumed {
    pub fn done(&self) -> Vec<Combination> {
        self.kept.iter().map(SweepResult::combination).collect()
    }
}

/// Reads what the sweep in `dir` finished, for `--resume` with `settings`.
/// The best finished model must be on disk (`best.safetensors`, or its own
/// file with `--keep-all`); when it is not (the earlier best was one a
/// signal cut short), that combination trains again, and so on down.
pub fn resume(
    dir: &Path,
    settings: &SweepSettings,
    results_file: &str,
    best_file: &str,
) -> anyhow::Result<Resumed> {
    let Some(earlier) = read_settings(dir)? else {
        bail!(
            "--resume: {} is not a sweep's directory (no {SETTINGS}, which a sweep writes as it starts)",
            dir.display()
        );
    };
    let diffs = settings.differences(&earlier);
    if !diffs.is_empty() {
        bail!(
            "--resume: {} was swept with other settings: {}. Give the same flags, or a new --out-dir",
            dir.display(),
            diffs.join("; ")
        );
    }
    // No file: stopped before any model finished.
    let mut ranked = read_results(&dir.join(results_file))?.unwrap_or_default();
    let interrupted = ranked.iter().filter(|r| r.interrupted).count();
    // best.safetensors holds the earlier ranking's first model.
    ranked.sort_by(order);
    let earlier_best = ranked.first().cloned();
    let mut kept: Vec<SweepResult> = ranked.into_iter().filter(|r| !r.interrupted).collect();
    let mut best = None;
    while let Some(first) = kept.first() {
        let file = if earlier_best.as_ref() == Some(first) {
            dir.join(best_file)
        } else {
            dir.join(first.file_name())
        };
        if file.exists() {
            let model = load_model(&file)
                .with_context(|| format!("--resume: the best earlier model, {}", file.display()))?;
            best = Some(model);
            break;
        }
        kept.remove(0);
    }
    Ok(Resumed {
        kept,
        best,
        interrupted,
    })
}
