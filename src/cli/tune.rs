//! `mdn tune`: the job from the flags (as `train` or `bench` would run
//! it), the search ([`mdn::tune`]), its trials as they come, and the
//! winner written to the table of tuned kernels.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use mdn::bench::BenchModel;
use mdn::fit::prepare;
use mdn::gpu::context::{GpuContext, GpuOptions, is_software_adapter};
use mdn::gpu::tuned::{TUNED_KERNELS_ENV, TunedTable, default_path};
use mdn::model::{Head, ModelSpec};
use mdn::tune::search::{Outcome, Trial};
use mdn::tune::space::changes;
use mdn::tune::{TuneJob, TuneOptions, TuneReport, defaults_for, knob_names, tune};
use serde_json::json;

use super::args::{ModelKind, TuneArgs};
use super::choices::CovarianceArg;

/// Rows a tuning run trains on at most: the step's cost does not grow with
/// the rows, and every configuration tried uploads them again.
const MAX_TUNE_ROWS: usize = 1 << 20;

pub fn tune_command(a: TuneArgs, gpu: &GpuOptions) -> anyhow::Result<()> {
    if a.list {
        return list(a.json);
    }
    if !(a.seconds > 0.0 && a.seconds.is_finite()) {
        bail!("--seconds must be a positive number of seconds");
    }
    if a.models == 0 {
        bail!("--models must be at least 1");
    }
    let only = match &a.only {
        Some(text) => {
            let list: Vec<String> = text
                .split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect();
            let names = knob_names();
            if list.is_empty() {
                bail!("--only names at least one of: {}", names.join(", "));
            }
            if let Some(bad) = list.iter().find(|k| !names.contains(&k.as_str())) {
                bail!(
                    "--only: no setting `{bad}` to tune; there are: {}",
                    names.join(", ")
                );
            }
            Some(list)
        }
        None => None,
    };
    let (spec, data, batch) = job_of(&a)?;
    let opts = TuneOptions {
        per_trial: Duration::from_secs_f64(a.seconds),
        only,
        ..TuneOptions::default()
    };
    let path = default_path();
    // What was measured before, to add to; the search itself starts from
    // the adapter's defaults, never from an earlier winner.
    let mut table = match &path {
        Some(p) if !a.dry_run => Some(TunedTable::load(p).unwrap_or_else(|e| {
            eprintln!("warning: {e}; it will be replaced");
            TunedTable::default()
        })),
        _ => None,
    };
    let untuned = GpuOptions {
        tuned: None,
        ..gpu.clone()
    };
    let ctx = Arc::new(GpuContext::new(&untuned).context("mdn tune measures a GPU")?);
    let job = TuneJob {
        spec: &spec,
        data: &data,
        batch,
        models: a.models,
    };
    let default = defaults_for(&ctx.info, a.models);
    let mut out = std::io::stdout().lock();
    if !a.json {
        writeln!(
            out,
            "mdn tune: {} ({:?}), driver {} {}",
            ctx.info.name, ctx.info.backend, ctx.info.driver, ctx.info.driver_info
        )?;
        writeln!(
            out,
            "job: {}; {} s of timed steps per configuration",
            job.shape().describe(),
            a.seconds
        )?;
        writeln!(out, "defaults: {default}\n")?;
        writeln!(
            out,
            "{:<13} {:>10}  configuration (changes from the defaults)",
            "setting", "steps/s"
        )?;
        out.flush()?;
    }
    let mut failed: Option<std::io::Error> = None;
    if is_software_adapter(&ctx.info) {
        eprintln!(
            "note: {} is a software rasteriser: `mdn train` and `sweep` run on the CPU here \
             unless given --device gpu, and only then use what this finds",
            ctx.info.name
        );
    }
    // Once, when a step turns out to take longer than a trial's repeat:
    // each configuration then costs a few whole steps.
    let mut warned_slow = false;
    let repeat = a.seconds / 3.0;
    let mut on_trial = |t: &Trial| {
        if let Outcome::Rate(r) = t.outcome
            && !warned_slow
            && 1.0 / r > repeat
        {
            warned_slow = true;
            eprintln!(
                "note: a step takes {:.2} s on this adapter, so each of the search's ~50 \
                 configurations takes about {:.0} s (a warm-up step and three timed ones)",
                1.0 / r,
                4.0 / r
            );
        }
        let line = if a.json {
            trial_json(t, &default).to_string()
        } else {
            trial_line(t, &default)
        };
        if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
            failed.get_or_insert(e);
        }
    };
    let report = tune(&ctx, &job, &opts, &mut on_trial)?;
    if let Some(e) = failed {
        return Err(e).context("writing to stdout");
    }
    let saved = match (&mut table, &path) {
        (Some(t), Some(p)) => {
            t.insert(report.entry());
            t.save(p)?;
            Some(p.clone())
        }
        _ => None,
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", result_json(&report, saved.as_ref()))?;
    } else {
        for line in result_lines(&report, saved.as_ref(), a.dry_run) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// The network, the z-scored rows and the batch the flags describe.
fn job_of(a: &TuneArgs) -> anyhow::Result<(ModelSpec, mdn::Dataset, usize)> {
    if let Some(size) = a.config {
        let size: mdn::bench::BenchConfig = size.into();
        let model = match a.model {
            ModelKind::Mdn => BenchModel::Mdn,
            ModelKind::Mlp => BenchModel::Mlp,
        };
        return Ok((size.spec(model), size.dataset()?, size.batch()));
    }
    let Some(source) = a.source.source(0)? else {
        bail!("give --data FILE, --toy forward|inverse|band, or --config small|medium|large");
    };
    let mut data = source.load()?;
    if data.len() > MAX_TUNE_ROWS {
        eprintln!(
            "note: timing on the first {MAX_TUNE_ROWS} of {} rows (a step costs the same)",
            data.len()
        );
        data.inputs.truncate(MAX_TUNE_ROWS * data.in_dim);
        data.targets.truncate(MAX_TUNE_ROWS * data.out_dim);
    }
    let head = match a.model {
        ModelKind::Mdn => Head::Mixture {
            k: a.k.unwrap_or(mdn::defaults::K),
            covariance: a.covariance.unwrap_or(CovarianceArg::Diag).into(),
        },
        ModelKind::Mlp => {
            if a.k.is_some() || a.covariance.is_some() {
                bail!("--k and --covariance describe a mixture; they need --model mdn");
            }
            Head::Mse
        }
    };
    let hidden = ModelSpec::parse_hidden(a.hidden.as_deref().unwrap_or(mdn::defaults::HIDDEN))?;
    let spec = ModelSpec::new(data.in_dim, data.out_dim, hidden, head)?;
    let batch = a.batch.unwrap_or(mdn::defaults::BATCH);
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    Ok((spec, prepare(data)?.normalized, batch))
}

fn trial_line(t: &Trial, default: &mdn::gpu::KernelConfig) -> String {
    let what = match changes(default, &t.config) {
        c if c.is_empty() => "(the defaults)".to_string(),
        c => c,
    };
    match &t.outcome {
        Outcome::Rate(r) if t.knob == "start" => {
            format!(
                "{:<13} {:>10.1}  {what}: where a path's search starts",
                t.knob, r
            )
        }
        _ if t.kept => format!("{:<13} {:>10}  -> best so far: {what}", "", ""),
        Outcome::Rate(r) => format!("{:<13} {:>10.1}  {what}", t.knob, r),
        Outcome::Skipped(why) => format!("{:<13} {:>10}  {what}: skipped, {why}", t.knob, "-"),
    }
}

fn trial_json(t: &Trial, default: &mdn::gpu::KernelConfig) -> serde_json::Value {
    let (rate, skipped) = match &t.outcome {
        Outcome::Rate(r) => (Some(*r), None),
        Outcome::Skipped(why) => (None, Some(why.clone())),
    };
    json!({
        "trial": t.knob,
        "kept": t.kept,
        "steps_per_s": rate,
        "skipped": skipped,
        "changes": changes(default, &t.config),
        "kernels": t.config.to_string(),
    })
}

fn result_json(r: &TuneReport, saved: Option<&PathBuf>) -> serde_json::Value {
    json!({
        "result": {
            "adapter": r.adapter,
            "job": r.job,
            "kernels": r.winner.to_string(),
            "changes": changes(&r.default, &r.winner),
            "steps_per_s": r.winner_rate,
            "default_steps_per_s": r.default_rate,
            "gain": r.gain(),
            "trials": r.trials,
            "saved": saved.map(|p| p.display().to_string()),
        }
    })
}

fn result_lines(r: &TuneReport, saved: Option<&PathBuf>, dry_run: bool) -> Vec<String> {
    let mut lines = vec![String::new()];
    let what = changes(&r.default, &r.winner);
    if what.is_empty() {
        lines.push(format!(
            "the defaults stay: nothing beat them by 3 % ({:.1} steps/s; {} configurations tried)",
            r.default_rate, r.trials
        ));
    } else {
        lines.push(format!(
            "winner: {what}: {:.1} steps/s against the defaults' {:.1}, {:.2}x (alternating runs; {} configurations tried)",
            r.winner_rate,
            r.default_rate,
            r.gain(),
            r.trials
        ));
    }
    lines.push(format!("kernels: {}", r.winner));
    match saved {
        Some(p) => lines.push(format!(
            "wrote it to {}: `mdn train`, `sweep` and `bench` use it for this job on this adapter \
             ({TUNED_KERNELS_ENV}=off ignores the table; MDN_GPU_KERNELS still wins)",
            p.display()
        )),
        None if dry_run => lines.push("--dry-run: the table of tuned kernels is unchanged".into()),
        None => lines.push(format!(
            "not saved: {TUNED_KERNELS_ENV}=off, or no home directory for the table"
        )),
    }
    lines
}

/// `--list`: the table's entries, a line (or JSON object) each; those of
/// another build of the kernels are marked stale (no trainer uses them).
fn list(json: bool) -> anyhow::Result<()> {
    let Some(path) = default_path() else {
        bail!("{TUNED_KERNELS_ENV}=off: there is no table of tuned kernels to list");
    };
    let table = TunedTable::load(&path)?;
    let build = mdn::gpu::kernels::kernels_build();
    let mut out = std::io::stdout().lock();
    if !json {
        writeln!(out, "{}: {} entries", path.display(), table.entries.len())?;
    }
    for e in &table.entries {
        let current = e.build == build;
        if json {
            let mut v = serde_json::to_value(e)?;
            v["current"] = json!(current);
            writeln!(out, "{v}")?;
            continue;
        }
        let changes = if e.changes.is_empty() {
            "the defaults won".to_string()
        } else {
            e.changes.clone()
        };
        writeln!(
            out,
            "{} ({}, driver {}): {}: {changes}, {:.2}x the defaults' {:.1} steps/s{}",
            e.adapter.name,
            e.adapter.backend,
            e.adapter.driver_info,
            e.job.describe(),
            e.gain(),
            e.default_steps_per_s,
            if current {
                ""
            } else {
                " (stale: another build of the kernels; run mdn tune again)"
            }
        )?;
    }
    Ok(())
}
