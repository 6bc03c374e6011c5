//! `mdn train`: settings (fresh or from a checkpoint), data, validation and
//! test sets, the run with its progress bar, and what is written and printed
//! however the run ends — finished, stopped early, interrupted by SIGINT or
//! SIGTERM, or diverged.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mdn::data::csv::{ColumnChoice, load_dataset};
use mdn::data::source::{DataSource, ValSource};
use mdn::data::toy::toy_dataset;
use mdn::defaults;
use mdn::fit::{FitOptions, fit_with};
use mdn::gpu::context::GpuOptions;
use mdn::model::{Head, Model, ModelSpec, save_model};
use mdn::train::checkpoint::{Checkpoint, MinibatchState, RunConfig};
use mdn::train::{BatchOrder, Stopped};
use mdn::{Dataset, TrainConfig};

use super::args::{ModelKind, TrainArgs, absolute};
use super::choices::CovarianceArg;
use super::commands::report_usage;

/// The validation share when `--val` is not given…
const DEFAULT_VAL: f64 = 0.1;
/// …on data of at least this many rows (a tenth of fewer says little, and
/// costs the training set more than it tells).
const MIN_ROWS_FOR_DEFAULT_VAL: usize = 200;

/// Seed offset for the held-out toy set, so it never equals the training set.
const TEST_SEED_OFFSET: u64 = 0x005e_ed0f_7e57;

/// A run ended by a signal: the model (and checkpoint) are written and said
/// so; the process exits with this code (128 + the signal's number).
#[derive(Debug)]
pub struct Interrupted(pub u8);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// SIGINT and SIGTERM set a flag the training loop checks between chunks;
/// a second one ends the process at once, writing nothing more (outputs
/// are written atomically, so the previous files stay whole).
pub(super) struct Signals {
    pub stop: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl Signals {
    pub(super) fn install() -> anyhow::Result<Self> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        // Which signal is the first is decided by one atomic increment:
        // two signals can run their handlers at the same moment on two
        // threads, and with a check of the stop flag before setting it both
        // could see themselves as the first (a SIGINT and a SIGTERM sent
        // together then stopped gracefully instead of at once).
        let seen = Arc::new(AtomicUsize::new(0));
        for sig in [SIGINT, SIGTERM] {
            let (stop, which, seen) = (Arc::clone(&stop), Arc::clone(&which), Arc::clone(&seen));
            let handler = move || {
                if seen.fetch_add(1, Ordering::SeqCst) > 0 {
                    signal_hook::low_level::exit(128 + sig);
                }
                which.store(sig as usize, Ordering::SeqCst);
                stop.store(true, Ordering::SeqCst);
            };
            // SAFETY: the handler only touches atomics and calls `_exit`,
            // all async-signal-safe; it neither allocates nor locks.
            unsafe { signal_hook::low_level::register(sig, handler) }
                .context("installing the signal handler")?;
        }
        Ok(Signals { stop, which })
    }

    pub(super) fn name_and_code(&self) -> (&'static str, u8) {
        match self.which.load(Ordering::SeqCst) as i32 {
            signal_hook::consts::SIGTERM => ("SIGTERM", 143),
            _ => ("SIGINT", 130),
        }
    }
}

/// The settings of a fresh run, as a checkpoint would record them.
fn fresh_run(a: &TrainArgs) -> anyhow::Result<RunConfig> {
    let Some(data) = a.source.source(a.seed)? else {
        bail!("give --data FILE.csv, --toy forward|inverse|band or --resume CHECKPOINT");
    };
    let val = match a.val.as_deref().map(str::trim) {
        Some("none") => None,
        Some(text) => Some(match ValSource::parse(text)? {
            ValSource::File(p) => ValSource::File(absolute(&p)),
            frac => frac,
        }),
        None => Some(ValSource::Fraction(DEFAULT_VAL)),
    };
    let steps = a.steps.unwrap_or(defaults::STEPS);
    Ok(RunConfig {
        steps,
        batch: a.batch,
        lr: a.lr,
        schedule: a.schedule.into(),
        seed: a.seed,
        data,
        val,
        eval_every: a.eval_every.unwrap_or(0),
        patience: a.patience,
        test: a.test.as_deref().map(absolute),
        minibatch: MinibatchState {
            seed: a.seed,
            step: 0,
            epoch: 0,
            batch_in_epoch: 0,
        },
    })
}

pub fn train(a: TrainArgs, gpu: &GpuOptions) -> anyhow::Result<()> {
    let resume = match &a.resume {
        Some(path) => Some(Checkpoint::load(path)?),
        None => None,
    };
    let mut run = match &resume {
        Some(ck) => ck.run.clone(),
        None => fresh_run(&a)?,
    };
    let data = run.data.load()?;
    if a.val.is_none()
        && resume.is_none()
        && matches!(run.data, DataSource::Csv { .. })
        && data.len() < MIN_ROWS_FOR_DEFAULT_VAL
    {
        if !a.quiet {
            eprintln!(
                "note: {} rows are too few to set a tenth aside for validation; training on all \
                 of them and writing the last model (--val F.csv gives a validation file)",
                data.len()
            );
        }
        run.val = None;
    }
    let (train_data, val_data) = match &run.val {
        Some(v) => {
            let (t, v) = v.split(&run.data, data, run.seed)?;
            (t, Some(v))
        }
        None => (data, None),
    };
    let test_data: Option<(Dataset, String)> = match (&run.test, &run.data) {
        (Some(path), _) => {
            let cols = ColumnChoice {
                input: Some(train_data.input_names.clone()),
                target: Some(train_data.target_names.clone()),
            };
            Some((load_dataset(path, &cols)?, path.display().to_string()))
        }
        (None, DataSource::Toy { problem, seed, .. }) => Some((
            toy_dataset(
                *problem,
                defaults::TOY_TEST_ROWS,
                seed.wrapping_add(TEST_SEED_OFFSET),
            ),
            format!("fresh toy data, {} rows", defaults::TOY_TEST_ROWS),
        )),
        (None, _) => None,
    };
    let spec = match &resume {
        Some(ck) => {
            let s = ck.model.spec.clone();
            if (s.in_dim, s.out_dim) != (train_data.in_dim, train_data.out_dim) {
                bail!(
                    "the checkpoint's model takes {} input and {} target column(s); its data now has {} and {}",
                    s.in_dim,
                    s.out_dim,
                    train_data.in_dim,
                    train_data.out_dim
                );
            }
            s
        }
        None => {
            if a.model == ModelKind::Mlp && a.covariance != CovarianceArg::Diag {
                bail!("--covariance describes a mixture's components; it needs --model mdn");
            }
            let head = match a.model {
                ModelKind::Mdn => Head::Mixture {
                    k: a.k,
                    covariance: a.covariance.into(),
                },
                ModelKind::Mlp => Head::Mse,
            };
            let hidden = ModelSpec::parse_hidden(&a.hidden)?;
            ModelSpec::new(train_data.in_dim, train_data.out_dim, hidden, head)?
        }
    };
    let order = BatchOrder::new(train_data.len(), run.batch, run.seed)?;
    if let Some(e) = a.epochs {
        run.steps = e * order.steps_per_epoch();
    } else if let (Some(s), Some(_)) = (a.steps, &resume) {
        run.steps = s;
    }
    if run.steps == 0 {
        bail!("--steps / --epochs must be at least 1");
    }
    if let Some(ck) = &resume
        && ck.step >= run.steps
    {
        bail!(
            "the checkpoint is at step {} already; give a larger --steps to train on",
            ck.step
        );
    }
    if run.eval_every == 0 {
        run.eval_every = (run.steps / 50).max(1);
    }
    let config: TrainConfig = run.train_config();
    config.validate()?;
    let checkpoint_every = a.checkpoint_every.unwrap_or((run.steps / 10).max(1));
    if checkpoint_every == 0 {
        bail!("--checkpoint-every must be at least 1");
    }

    let signals = Signals::install()?;
    let show = !a.quiet && std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(
        Some(run.steps as u64),
        if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  loss {msg}  ({per_sec}, eta {eta})")
            .expect("template is valid"),
    );
    let quiet = a.quiet;
    let mut note = |m: &str| {
        if !quiet {
            eprintln!("note: {m}");
        }
    };
    let ck_path = a.checkpoint.clone();
    let mut save_checkpoint = |ck: Checkpoint| -> mdn::Result<()> {
        match &ck_path {
            Some(p) => ck.save(p),
            None => Ok(()),
        }
    };
    let opts = FitOptions {
        val: val_data.as_ref(),
        eval_every: run.eval_every,
        patience: run.patience,
        stop: Some(&signals.stop),
        checkpoint: ck_path
            .is_some()
            .then_some((checkpoint_every, &mut save_checkpoint as _)),
        resume,
        run: Some(run.clone()),
    };
    let result = fit_with(
        train_data,
        &spec,
        &config,
        a.device.into(),
        gpu,
        opts,
        &mut note,
        |step, loss| {
            bar.set_position(step as u64);
            bar.set_message(format!("{loss:.4}"));
        },
    )?;
    bar.finish_and_clear();

    let report = &result.report;
    let model = &result.model;
    if let Some(d) = report.diverged {
        save_model(model, &a.out)?;
        bail!(
            "training diverged at step {} (loss {}); saved the last good parameters (step {}) to {}; try a smaller --lr",
            d.step,
            d.loss,
            d.good_step,
            a.out.display()
        );
    }
    save_model(model, &a.out)?;
    let what = match &report.best {
        Some(b) => format!(
            "the best model on the validation set (step {} of {})",
            b.step, report.steps
        ),
        None => format!("the model at step {}", report.steps),
    };
    if report.stopped == Some(Stopped::Interrupted) {
        let (name, code) = signals.name_and_code();
        let ck = match &a.checkpoint {
            Some(p) => format!(" and a checkpoint to {}", p.display()),
            None => String::new(),
        };
        eprintln!(
            "{name}: stopped at step {} of {}; wrote {what} to {}{ck}",
            report.steps,
            run.steps,
            a.out.display()
        );
        return Err(Interrupted(code).into());
    }
    if report.stopped == Some(Stopped::EarlyStop) {
        eprintln!(
            "stopped early at step {} of {}: no better validation loss in {} checks (--patience)",
            report.steps,
            run.steps,
            run.patience.unwrap_or(0)
        );
    }
    eprintln!(
        "trained {} steps on {} in {:.1}s; wrote {what} to {}",
        report.steps,
        result.device_name,
        report.elapsed.as_secs_f64(),
        a.out.display()
    );
    print_losses(
        model,
        &result.train_z_scored,
        val_data.as_ref(),
        result.val_loss,
        test_data,
    )?;
    Ok(())
}

/// `train`, `val` and `test` lines for the model written, and its
/// component usage on the validation (else training) rows. `train_z` is
/// z-scored with the model's statistics (training z-scores in place); the
/// others are in original units. Every loss printed is in original units.
fn print_losses(
    model: &Model,
    train_z: &Dataset,
    val: Option<&Dataset>,
    val_loss: Option<f64>,
    test: Option<(Dataset, String)>,
) -> anyhow::Result<()> {
    let t = model.evaluate_z_scored(train_z)?;
    println!("train {} {:.5}", t.metric.name(), t.value);
    if let (Some(v), Some(loss)) = (val, val_loss) {
        println!("val {} {loss:.5}  ({} rows)", t.metric.name(), v.len());
    }
    if let Some((test, what)) = test {
        let e = model.evaluate(&test)?;
        println!("test {} {:.5}  ({what})", e.metric.name(), e.value);
    }
    let usage = match val {
        Some(v) => model.component_usage(&v.inputs)?,
        None => model.component_usage_z_scored(&train_z.inputs)?,
    };
    if let Some(u) = &usage
        && u.advice().is_some()
    {
        report_usage(u);
    }
    Ok(())
}
