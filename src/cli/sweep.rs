//! `mdn sweep`: the grid from the flags, the data and its validation set,
//! the ranked table, `sweep.jsonl`, `best.safetensors`; and `--merge`,
//! which ranks several shards' results together.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use mdn::data::source::ValSource;
use mdn::defaults;
use mdn::fsutil::write_atomic;
use mdn::gpu::context::GpuOptions;
use mdn::gpu::tuned::{TUNED_KERNELS_ENV, TunedEntry, TunedTable, default_path};
use mdn::model::{ModelSpec, save_model};
use mdn::sweep::summary::{by_configuration, one_standard_error_pick};
use mdn::sweep::{Grid, Shard, SweepResult, SweepTuning, hidden_text, order, run_sweep};
use mdn::tune::TuneOptions;

use super::args::{SweepArgs, number_list};
use super::sweep_resume::{SweepSettings, merged_settings, read_results, resume};
use super::train::{Interrupted, Signals};

const RESULTS: &str = "sweep.jsonl";
const BEST: &str = "best.safetensors";

pub fn sweep(a: SweepArgs, gpu: &GpuOptions) -> anyhow::Result<()> {
    if let Some(dirs) = &a.merge {
        return merge(dirs, &a.out_dir, a.json);
    }
    let steps = a.steps.unwrap_or(defaults::STEPS);
    let mut grid = Grid {
        k: number_list("k", &a.k, "1,2,3,5,8")?,
        seeds: (0..a.seeds).collect(),
        lr: number_list("lr", &a.lr, "1e-3,5e-3")?,
        hidden: a
            .hidden
            .split(';')
            .map(ModelSpec::parse_hidden)
            .collect::<mdn::Result<Vec<_>>>()?,
        covariance: a.covariance.into(),
        steps,
        batch: a.batch,
        schedule: a.schedule.into(),
        eval_every: a.eval_every.unwrap_or((steps / 50).max(1)),
        patience: a.patience,
        done: Vec::new(),
    };
    if a.seeds == 0 || steps == 0 {
        bail!("--seeds and --steps must be at least 1");
    }
    if let Some(&bad) = grid.lr.iter().find(|lr| !(**lr > 0.0 && lr.is_finite())) {
        bail!("--lr: {bad} is not a positive learning rate");
    }
    let tune_seconds = a.tune_seconds.unwrap_or(0.3);
    if !(tune_seconds > 0.0 && tune_seconds.is_finite()) {
        bail!("--tune-seconds must be a positive number of seconds");
    }
    let shard = match &a.shard {
        Some(s) => Shard::parse(s)?,
        None => Shard::ALL,
    };
    let Some(source) = a.source.source(0)? else {
        bail!("give --data FILE.csv, --toy forward|inverse|band or --merge DIR…");
    };
    let val_source = match a.val.trim() {
        "none" => bail!("a sweep ranks its models on a validation set; --val none has none"),
        text => ValSource::parse(text)?,
    };
    let (train, val) = val_source.split(&source, source.load()?, 0)?;
    let settings = SweepSettings::of(&grid, &train, &val);
    let resumed = if a.resume {
        let r = resume(&a.out_dir, &settings, RESULTS, BEST)?;
        // best.safetensors is the kept ranking's first from here on (the
        // earlier best may have been a model cut short, which trains again).
        if let Some(model) = &r.best {
            save_model(model, &a.out_dir.join(BEST))?;
        }
        grid.done = r.done();
        Some(r)
    } else {
        None
    };
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    settings.write(&a.out_dir)?;
    let kept: Vec<SweepResult> = resumed.as_ref().map_or(Vec::new(), |r| r.kept.clone());

    let total = grid.jobs(shard).len();
    if let Some(r) = &resumed
        && !a.quiet
    {
        eprintln!(
            "resuming {}: {} finished models kept, {total} to train{}",
            a.out_dir.display(),
            r.kept.len(),
            match r.interrupted {
                0 => String::new(),
                n => format!(" ({n} cut short by a signal train again)"),
            }
        );
    }
    if total == 0 {
        // Everything this grid asks for is trained: rank what there is.
        return finish(&a, kept, resumed.and_then(|r| r.best), None, total);
    }
    let quiet = a.quiet;
    // Finished results so far: sweep.jsonl is rewritten, ranked, as each
    // model finishes (and with --keep-all its model), so a sweep that is
    // stopped keeps every model it finished; best.safetensors follows the
    // best so far, written before the results that rank it, so a sweep
    // killed outright (no chance to write at the end) keeps it too.
    let finished = std::sync::Mutex::new(kept.clone());
    let out_dir = a.out_dir.clone();
    let keep_all = a.keep_all;
    let on_done = |r: &SweepResult, model: &mdn::Model| -> mdn::Result<()> {
        if keep_all {
            save_model(model, &out_dir.join(r.file_name()))?;
        }
        let mut list = finished.lock().unwrap_or_else(|p| p.into_inner());
        list.push(r.clone());
        list.sort_by(order);
        if list[0] == *r {
            save_model(model, &out_dir.join(BEST))?;
        }
        let n = list.len();
        write_results(&out_dir, &list).map_err(|e| mdn::MdnError::Data(e.to_string()))?;
        drop(list);
        if !quiet {
            eprintln!(
                "[{n}/{total}] k {} seed {} lr {} hidden {}: val nll {:.5} ({:.1}s)",
                r.k,
                r.seed,
                r.lr,
                hidden_text(&r.hidden),
                r.val_nll,
                r.seconds
            );
        }
        Ok(())
    };
    let mut note = |m: &str| {
        if !quiet {
            eprintln!("note: {m}");
        }
    };
    // SIGINT/SIGTERM: the models in training stop at their next chunk and
    // are kept (with the steps they reached), no new one starts, and what
    // finished is ranked and written as usual before the exit code says so.
    let signals = Signals::install()?;
    let tuned_path = default_path();
    let mut save_entry = |entry: &TunedEntry| -> mdn::Result<()> {
        match &tuned_path {
            Some(path) => {
                // Read again: another run may have added to it meanwhile.
                let mut table = TunedTable::load(path).unwrap_or_else(|e| {
                    eprintln!("warning: {e}; it will be replaced");
                    TunedTable::default()
                });
                table.insert(entry.clone());
                table.save(path)
            }
            None => {
                eprintln!(
                    "note: {TUNED_KERNELS_ENV}=off: what --tune found is used by this sweep only"
                );
                Ok(())
            }
        }
    };
    let tuning = a.tune.then(|| SweepTuning {
        options: TuneOptions {
            per_trial: Duration::from_secs_f64(tune_seconds),
            ..TuneOptions::default()
        },
        on_entry: &mut save_entry,
    });
    let results = run_sweep(
        &train,
        &val,
        &grid,
        shard,
        a.device.into(),
        gpu,
        Some(&signals.stop),
        tuning,
        &mut note,
        &on_done,
    )?;
    let interrupted = signals
        .stop
        .load(std::sync::atomic::Ordering::SeqCst)
        .then(|| signals.name_and_code());
    if results.is_empty() && kept.is_empty() {
        let (name, code) = interrupted.unwrap_or(("stop", 1));
        eprintln!("{name}: stopped before any model trained; nothing written");
        return Err(Interrupted(code).into());
    }
    let trained = results.len();
    // The best of the kept and the new, with its model.
    let mut all: Vec<(SweepResult, Option<mdn::Model>)> = kept
        .into_iter()
        .map(|r| (r, None))
        .chain(results.into_iter().map(|(r, m)| (r, Some(m))))
        .collect();
    all.sort_by(|x, y| order(&x.0, &y.0));
    let best = match all[0].1.take() {
        Some(m) => Some(m),
        None => resumed.and_then(|r| r.best),
    };
    let ranked = all.into_iter().map(|(r, _)| r).collect();
    finish(&a, ranked, best, interrupted.map(|i| (i, trained)), total)
}

/// Writes the ranked results and the best model, prints the table, and
/// says how the run ended (`stopped`: the signal's name and exit code, and
/// the models this run trained).
fn finish(
    a: &SweepArgs,
    mut ranked: Vec<SweepResult>,
    best: Option<mdn::Model>,
    stopped: Option<((&str, u8), usize)>,
    total: usize,
) -> anyhow::Result<()> {
    ranked.sort_by(order);
    let Some(first) = ranked.first() else {
        bail!("{}: no models to rank", a.out_dir.display());
    };
    match best {
        Some(model) => save_model(&model, &a.out_dir.join(BEST))?,
        None => bail!(
            "{}: the best model's file is missing; sweep again without --resume",
            a.out_dir.display()
        ),
    }
    write_results(&a.out_dir, &ranked)?;
    print(&ranked, a.json)?;
    eprintln!(
        "wrote {} and {} (k {}, seed {}, lr {}, hidden {}) to {}",
        RESULTS,
        BEST,
        first.k,
        first.seed,
        first.lr,
        hidden_text(&first.hidden),
        a.out_dir.display()
    );
    if let Some(((name, code), trained)) = stopped {
        eprintln!(
            "{name}: stopped with {trained} of {total} models trained (the `steps` column says how far each got; --resume goes on)",
        );
        return Err(Interrupted(code).into());
    }
    Ok(())
}

fn write_results(dir: &Path, ranked: &[SweepResult]) -> anyhow::Result<()> {
    let mut text = String::new();
    for r in ranked {
        text += &serde_json::to_string(r)?;
        text.push('\n');
    }
    write_atomic(&dir.join(RESULTS), text.as_bytes())?;
    Ok(())
}

fn print(ranked: &[SweepResult], json: bool) -> anyhow::Result<()> {
    if json {
        for r in ranked {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    println!(
        "{:>4}  {:>4}  {:>4}  {:>9}  {:>11}  {:>10}  {:>10}  {:>7}  {:>4}  {:>7}",
        "rank", "k", "seed", "lr", "hidden", "val_nll", "train_nll", "steps", "dead", "seconds"
    );
    for (i, r) in ranked.iter().enumerate() {
        println!(
            "{:>4}  {:>4}  {:>4}  {:>9}  {:>11}  {:>10.5}  {:>10.5}  {:>7}  {:>4}  {:>7.1}",
            i + 1,
            r.k,
            r.seed,
            r.lr,
            hidden_text(&r.hidden),
            r.val_nll,
            r.train_nll,
            r.steps,
            r.dead_components.len(),
            r.seconds
        );
    }
    print_by_configuration(ranked);
    Ok(())
}

/// After the ranked table, when some configuration has several seeds:
/// each configuration's mean and spread over its seeds, and the
/// one-standard-error pick (`mdn::sweep::summary`).
fn print_by_configuration(ranked: &[SweepResult]) {
    let configs = by_configuration(ranked);
    if configs.iter().all(|c| c.seeds < 2) {
        return;
    }
    println!();
    println!("by configuration, over seeds (best mean first):");
    println!(
        "{:>4}  {:>9}  {:>11}  {:>5}  {:>13}  {:>8}  {:>10}  {:>9}",
        "k", "lr", "hidden", "seeds", "mean_val_nll", "sd", "best", "mean_dead"
    );
    for c in &configs {
        println!(
            "{:>4}  {:>9}  {:>11}  {:>5}  {:>13.5}  {:>8.5}  {:>10.5}  {:>9.1}",
            c.k,
            c.lr,
            hidden_text(&c.hidden),
            c.seeds,
            c.mean_val_nll,
            c.sd_val_nll,
            c.best_val_nll,
            c.mean_dead
        );
    }
    let best = &configs[0];
    match one_standard_error_pick(&configs) {
        Some(pick) if pick == best => println!(
            "pick: {} (best mean; nothing simpler within one standard error, {:.5})",
            pick.label(),
            best.standard_error()
        ),
        Some(pick) => println!(
            "pick: {}, the simplest within one standard error ({:.5}) of the best mean ({})",
            pick.label(),
            best.standard_error(),
            best.label()
        ),
        None => println!(
            "pick: none (the best configuration, {}, has one seed: give --seeds 2 or more)",
            best.label()
        ),
    }
}

/// Ranks the shards' `sweep.jsonl` together into `out`, with a copy of
/// the best shard's `best.safetensors`.
fn merge(dirs: &[PathBuf], out: &Path, json: bool) -> anyhow::Result<()> {
    let mut all: Vec<(SweepResult, PathBuf)> = Vec::new();
    for dir in dirs {
        let Some(results) = read_results(&dir.join(RESULTS))? else {
            bail!("{}: not a sweep directory (no {RESULTS})", dir.display());
        };
        all.extend(results.into_iter().map(|r| (r, dir.clone())));
    }
    if all.is_empty() {
        bail!("no results in {}", dirs.len());
    }
    all.sort_by(|a, b| order(&a.0, &b.0));
    let settings = merged_settings(dirs)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    if let Some(s) = settings {
        s.write(out)?;
    }
    // The best overall is its shard's best.
    let best = std::fs::read(all[0].1.join(BEST))
        .with_context(|| format!("{}: {BEST} is missing", all[0].1.display()))?;
    write_atomic(&out.join(BEST), &best)?;
    let ranked: Vec<SweepResult> = all.into_iter().map(|(r, _)| r).collect();
    write_results(out, &ranked)?;
    print(&ranked, json)?;
    eprintln!(
        "merged {} results from {} directories into {}",
        ranked.len(),
        dirs.len(),
        out.display()
    );
    Ok(())
}
