//! Argument definitions (DESIGN.md §2).

use std::path::{Path, PathBuf};

use super::bench;
use super::choices::{Backend, BenchSizeArg, CovarianceArg, Device, SceneArg, Schedule, Toy};
use clap::{Args, Parser, Subcommand};
use mdn::gpu::context::GpuOptions;

#[derive(Parser, Debug)]
#[command(
    name = "mdn",
    version,
    about = "Mixture Density Networks on the GPU: train, evaluate, sample, and watch why point regression fails on inverse problems"
)]
pub struct Cli {
    /// Graphics API for the GPU (default: $WGPU_BACKEND, else any).
    #[arg(long, global = true, value_enum)]
    pub backend: Option<Backend>,
    /// Use the adapter whose name contains this text (default: $WGPU_ADAPTER_NAME).
    #[arg(long, global = true, value_name = "SUBSTR")]
    pub adapter: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    pub fn gpu_options(&self) -> GpuOptions {
        GpuOptions {
            backend: self.backend.map(Into::into),
            adapter: self.adapter.clone(),
            max_binding: None,
            tuned: None,
        }
    }
}

/// `opts` with the table `mdn tune` writes, for the commands that train
/// (`train`, `sweep`, `bench`) to look their jobs up in.
pub fn with_tuned_table(opts: GpuOptions) -> GpuOptions {
    GpuOptions {
        tuned: tuned_table(),
        ..opts
    }
}

/// A table that cannot be read costs a warning, not the run: it only ever
/// makes training faster.
fn tuned_table() -> Option<std::sync::Arc<mdn::gpu::tuned::TunedTable>> {
    use mdn::gpu::tuned::{TunedTable, default_path};
    let path = default_path()?;
    match TunedTable::load(&path) {
        Ok(t) if t.entries.is_empty() => None,
        Ok(t) => Some(std::sync::Arc::new(t)),
        Err(e) => {
            eprintln!("warning: {e}; using the adapter's default kernels");
            None
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write Bishop's toy data set as CSV.
    Data(DataArgs),
    /// Train an MDN or an MLP and save it as safetensors.
    Train(Box<TrainArgs>),
    /// Mean NLL (mixture) or MSE (MLP) of a model on a CSV, Parquet or NPY file, in original units.
    Eval(EvalArgs),
    /// Mixture parameters (or MLP predictions) for each input row, as CSV.
    Predict(PredictArgs),
    /// Samples from the mixture for each input, as CSV.
    Sample(SampleArgs),
    /// Every GPU adapter of every backend on this machine, with driver info.
    Adapters(AdaptersArgs),
    /// Train a grid of models (K × seeds × learning rates × hidden sizes) and rank them on a validation set.
    Sweep(Box<SweepArgs>),
    /// GPU vs CPU training throughput on the toy inverse problem.
    Bench(bench::BenchArgs),
    /// Measure which GPU kernel configuration trains a job fastest on this adapter; train, sweep and bench then use it.
    Tune(Box<TuneArgs>),
    /// Open the desktop visualizer (what `mdn` alone does).
    View(ViewArgs),
    /// Train a visualizer scene and render it to a PNG, offscreen: no window or X server needed.
    Render(RenderArgs),
}

/// What `view` and `render` share: the scene's data, nets and layers.
#[derive(Args, Debug, Clone)]
pub struct SceneArgs {
    /// Your data for the data scene (CSV with a header row, Parquet or NPY).
    #[arg(long, value_name = "F")]
    pub data: Option<PathBuf>,
    /// The data scene's input columns, comma-separated; the first is the x axis [default: all but the last column]. With --model: the model's input column to plot [default: its first].
    #[arg(long, value_name = "COLS", requires = "data")]
    pub input: Option<String>,
    /// The data scene's target columns, comma-separated; the first is the y axis [default: the last column]. With --model: the model's target column to plot [default: its first].
    #[arg(long, value_name = "COLS", requires = "data")]
    pub target: Option<String>,
    /// A trained model (`mdn train --out`) to draw over --data instead of training one live.
    #[arg(long, value_name = "M.safetensors", requires = "data")]
    pub model: Option<PathBuf>,
    /// Start the playground on a preset drawing: x, ring, clusters, spiral, bishop.
    #[arg(long, value_name = "NAME", value_parser = parse_preset, conflicts_with = "data")]
    pub preset: Option<mdn::viz::presets::Preset>,
    /// Mixture components of the MDN (1–10).
    #[arg(long, default_value_t = mdn::viz::Settings::default().k as u64, value_parser = clap::value_parser!(u64).range(1..=mdn::viz::settings::MAX_K as u64))]
    pub k: u64,
    /// Hidden layer widths, e.g. 24,24 [default: 24,24 on the toy scenes, 24 on the playground].
    #[arg(long, value_name = "WIDTHS")]
    pub hidden: Option<String>,
    /// Adam learning rate.
    #[arg(long, default_value_t = mdn::viz::Settings::default().lr)]
    pub lr: f64,
    /// Points sampled from the mixture each frame.
    #[arg(long, default_value_t = mdn::viz::Settings::default().samples)]
    pub samples: usize,
    /// Sampling temperature: σ × T, π sharper below 1 and flatter above (as `mdn sample`).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// What to draw, comma-separated: data, samples, density, means, pi, components (colour data and samples by mixture component), mean and mode (the MDN's mean and mode curves).
    #[arg(long, value_name = "LIST", default_value = "data,samples")]
    pub layers: String,
    /// Seed of the toy data and the nets' initial weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where the nets train: the GPU, or the CPU when the only adapter is a software rasteriser (drawing always uses the adapter).
    #[arg(long, value_enum, default_value = "auto")]
    pub device: Device,
}

fn parse_preset(name: &str) -> Result<mdn::viz::presets::Preset, String> {
    use mdn::viz::presets::Preset;
    Preset::parse(name).ok_or_else(|| {
        let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
        format!("no preset `{name}`; there are: {}", names.join(", "))
    })
}

/// Flags a setup file replaces (it holds the scene and every setting).
const SETUP_SAYS: [&str; 15] = [
    "scene",
    "data",
    "input",
    "target",
    "model",
    "preset",
    "k",
    "hidden",
    "lr",
    "samples",
    "temperature",
    "layers",
    "seed",
    "device",
    "points",
];

#[derive(Args, Debug)]
pub struct ViewArgs {
    /// The scene to open [default: data with --data, playground with --preset, else forward].
    #[arg(long, value_enum)]
    pub scene: Option<SceneArg>,
    /// Open a saved setup (the window's Save setup writes one): scene, settings, points.
    #[arg(long, value_name = "F.json", conflicts_with_all = SETUP_SAYS)]
    pub setup: Option<PathBuf>,
    /// Where Screenshot (P), Save points and Save setup write.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub save_dir: PathBuf,
    #[command(flatten)]
    pub common: SceneArgs,
    /// Start training at once.
    #[arg(long)]
    pub play: bool,
    /// Close after this many frames and print the frame rate.
    #[arg(long, hide = true)]
    pub frames: Option<u64>,
    /// Window size in logical pixels, WxH.
    #[arg(long, value_name = "WxH", default_value = "1200x760")]
    pub size: String,
}

impl SceneArgs {
    /// The flags' defaults, from clap (written once, in the attributes).
    pub fn defaults() -> Self {
        use clap::FromArgMatches;
        let cmd = <SceneArgs as clap::Args>::augment_args(clap::Command::new("scene"));
        let matches = cmd.get_matches_from(["scene"]);
        SceneArgs::from_arg_matches(&matches).expect("the scene flags' defaults parse")
    }
}

impl Default for ViewArgs {
    fn default() -> Self {
        use clap::FromArgMatches;
        // The flags' own defaults, from clap, so they are written once.
        let cmd = <ViewArgs as clap::Args>::augment_args(clap::Command::new("view"));
        let matches = cmd.get_matches_from(["view"]);
        ViewArgs::from_arg_matches(&matches).expect("view's defaults parse")
    }
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// The scene [default: data with --data, playground with --preset].
    #[arg(long, value_enum, required_unless_present_any = ["data", "preset", "setup"])]
    pub scene: Option<SceneArg>,
    /// Render a saved setup (scene, settings, points) instead of flags.
    #[arg(long, value_name = "F.json", conflicts_with_all = SETUP_SAYS)]
    pub setup: Option<PathBuf>,
    #[command(flatten)]
    pub common: SceneArgs,
    /// Where to write the PNG.
    #[arg(long)]
    pub out: PathBuf,
    /// Training steps before the picture is taken (none with --model).
    #[arg(long, default_value_t = 3000)]
    pub steps: usize,
    #[arg(long, default_value_t = 960)]
    pub width: u32,
    #[arg(long, default_value_t = 600)]
    pub height: u32,
    /// Points to train on instead of the toy data (CSV with a header: input column, then target column).
    #[arg(long, value_name = "F.csv", conflicts_with_all = ["data", "preset"])]
    pub points: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct AdaptersArgs {
    /// One JSON object per adapter and line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DataArgs {
    #[arg(long, value_enum)]
    pub toy: Toy,
    #[arg(long, default_value_t = mdn::data::toy::DEFAULT_TOY_ROWS)]
    pub n: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelKind {
    Mdn,
    Mlp,
}

/// A comma-separated list of numbers from a flag, e.g. `--k 1,2,3`;
/// `example` is shown when the text is not one.
pub fn number_list<T: std::str::FromStr>(
    flag: &str,
    text: &str,
    example: &str,
) -> anyhow::Result<Vec<T>> {
    let items = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<T>().map_err(|_| {
                anyhow::anyhow!("--{flag}: `{p}` is not a number (expected e.g. {example})")
            })
        })
        .collect::<anyhow::Result<Vec<T>>>()?;
    if items.is_empty() {
        anyhow::bail!("--{flag} needs at least one value, e.g. {example}");
    }
    Ok(items)
}

/// A path as a run records it (checkpoints, sweeps): absolute, since the
/// run may be resumed from another directory.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Where `train` and `sweep` take their data from. Giving neither `--data`
/// nor `--toy` is an error the commands word themselves (`--resume` and
/// `--merge` need neither).
#[derive(Args, Debug)]
pub struct SourceArgs {
    /// Training data: CSV with a header row, `.parquet` (numeric columns named by the schema) or `.npy` (a 2-D array; columns c0, c1, … or the names in F.npy.names).
    #[arg(long, conflicts_with = "toy")]
    pub data: Option<PathBuf>,
    /// Train on freshly generated toy data instead of a file.
    #[arg(long, value_enum)]
    pub toy: Option<Toy>,
    /// Rows of toy data to generate with --toy.
    // `requires` alone is not enforced for an argument with a default value
    // (clap#3076), so `--data F --n 5` would silently ignore `--n`.
    #[arg(long, default_value_t = mdn::defaults::TOY_TRAIN_ROWS, requires = "toy", conflicts_with = "data")]
    pub n: usize,
    /// Input columns, comma-separated (default: all but the last).
    #[arg(long, value_name = "COLS")]
    pub input: Option<String>,
    /// Target columns, comma-separated (default: the last).
    #[arg(long, value_name = "COLS")]
    pub target: Option<String>,
}

impl SourceArgs {
    /// The data source the flags name; `None` when neither is given.
    pub fn source(&self, seed: u64) -> anyhow::Result<Option<mdn::data::source::DataSource>> {
        use mdn::data::source::DataSource;
        let cols = |text: &Option<String>| {
            text.as_deref().map(|t| {
                t.split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect::<Vec<_>>()
            })
        };
        Ok(match (&self.data, self.toy) {
            (Some(path), _) => Some(DataSource::Csv {
                path: absolute(path),
                input: cols(&self.input),
                target: cols(&self.target),
            }),
            (None, Some(problem)) => {
                if self.n == 0 {
                    anyhow::bail!("--n must be at least 1");
                }
                Some(DataSource::Toy {
                    problem: problem.into(),
                    n: self.n,
                    seed,
                })
            }
            (None, None) => None,
        })
    }
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[arg(long, value_enum, default_value = "mdn")]
    pub model: ModelKind,
    /// Mixture components.
    #[arg(long, default_value_t = mdn::defaults::K)]
    pub k: usize,
    /// Covariance of each mixture component: diagonal, or full for correlated targets (2–16 target columns).
    #[arg(long, value_enum, default_value = "diag")]
    pub covariance: CovarianceArg,
    /// Hidden layer sizes, comma-separated.
    #[arg(long, default_value = mdn::defaults::HIDDEN)]
    pub hidden: String,
    /// Adam steps [default: 60000]; with --resume, a new total for the resumed run.
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<usize>,
    /// Passes over the data (instead of --steps).
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = mdn::defaults::BATCH)]
    pub batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = mdn::defaults::LR, allow_negative_numbers = true)]
    pub lr: f64,
    #[arg(long, value_enum, default_value = "cosine")]
    pub schedule: Schedule,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value = "auto")]
    pub device: Device,
    /// Held-out data to report the loss on (default with --toy: fresh toy data).
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Validation set: a share of the training rows (with --toy: that many fresh rows), a CSV, Parquet or NPY file, or `none` [default: 0.1, none below 200 rows]. The model written is the one with the best validation loss.
    #[arg(long, value_name = "FRAC|F.csv|none")]
    pub val: Option<String>,
    /// Steps between validation checks [default: a fiftieth of the run].
    #[arg(long, value_name = "N")]
    pub eval_every: Option<usize>,
    /// Stop after this many validation checks without an improvement.
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
    /// Write a checkpoint (the model plus Adam's state and the settings) to this file, atomically; also when interrupted.
    #[arg(long, value_name = "F")]
    pub checkpoint: Option<PathBuf>,
    /// Steps between checkpoints [default: a tenth of the run].
    #[arg(long, value_name = "N", requires = "checkpoint")]
    pub checkpoint_every: Option<usize>,
    /// Continue the run saved in this checkpoint, with its data and settings (--steps may raise the total).
    #[arg(long, value_name = "F", conflicts_with_all = ["data", "toy", "n", "input", "target", "model", "k", "covariance", "hidden", "epochs", "batch", "lr", "schedule", "seed", "test", "val", "eval_every", "patience"])]
    pub resume: Option<PathBuf>,
    /// Where to write the model (safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Mixture components to try, comma-separated.
    #[arg(long, value_name = "LIST", default_value = "1,2,3,5,8")]
    pub k: String,
    /// Seeds per combination (0, 1, …).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Peak learning rates to try, comma-separated.
    #[arg(long, value_name = "LIST", default_value = "5e-3")]
    pub lr: String,
    /// Hidden layer sizes to try, `;`-separated, e.g. "32,32;64,64".
    #[arg(long, value_name = "LIST", default_value = mdn::defaults::HIDDEN)]
    pub hidden: String,
    #[arg(long, value_enum, default_value = "diag")]
    pub covariance: CovarianceArg,
    /// Validation set the models are ranked on: a share of the rows (with --toy: fresh rows) or a CSV file.
    #[arg(long, value_name = "FRAC|F.csv", default_value = "0.1")]
    pub val: String,
    /// Adam steps per model [default: 60000].
    #[arg(long)]
    pub steps: Option<usize>,
    #[arg(long, default_value_t = mdn::defaults::BATCH)]
    pub batch: usize,
    #[arg(long, value_enum, default_value = "cosine")]
    pub schedule: Schedule,
    /// Steps between validation checks [default: a fiftieth of the run].
    #[arg(long, value_name = "N")]
    pub eval_every: Option<usize>,
    /// Stop each model after this many validation checks without an improvement (the `steps` column says where).
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
    /// Where the models train: on the CPU side by side on the cores; on a GPU many at once in the same dispatches (shapes of one depth padded into one trainer), or one after another on software adapters.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: Device,
    /// Train only every n-th combination starting at i (0-based), as one job of n.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<String>,
    /// On a GPU, measure first which kernel configuration runs each of the sweep's trainers fastest (as `mdn tune` does), unless the table of tuned kernels has it, and train with that; the winners are added to the table.
    #[arg(long)]
    pub tune: bool,
    /// Seconds of timed steps per configuration --tune tries [default: 0.3].
    #[arg(long, value_name = "S", requires = "tune")]
    pub tune_seconds: Option<f64>,
    /// Rank the results of these sweep directories together instead of training.
    #[arg(long, value_name = "DIR", num_args = 1.., conflicts_with_all = ["data", "toy", "shard"])]
    pub merge: Option<Vec<PathBuf>>,
    /// Where sweep.jsonl and best.safetensors go.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Also write every model, named after its combination.
    #[arg(long)]
    pub keep_all: bool,
    /// Go on with the sweep in --out-dir: keep the models it finished, train the rest (and any combination the grid gained), rank them all. The other settings must be the earlier run's.
    #[arg(long, conflicts_with = "merge")]
    pub resume: bool,
    /// Print the results as JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Where to run: the GPU when a hardware adapter exists, else the CPU.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: Device,
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub data: PathBuf,
    /// Print one JSON object instead of the metrics line.
    #[arg(long)]
    pub json: bool,
    /// Draw the calibration (PIT histogram and interval coverage) into this PNG (one-target mixtures).
    #[arg(long, value_name = "F.png")]
    pub plot: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Where to run: the GPU when a hardware adapter exists, else the CPU.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: Device,
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub data: PathBuf,
    /// Write the CSV here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Point predictions to add as columns, comma-separated: mean, median, mode (median and mode: one target column).
    #[arg(long, value_name = "LIST")]
    pub point: Option<String>,
    /// Quantiles of the predicted distribution to add as columns q_<level>, e.g. 0.05,0.5,0.95 (one target column).
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    pub quantiles: Option<String>,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Where to run: the GPU when a hardware adapter exists, else the CPU.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: Device,
    #[arg(long)]
    pub model: PathBuf,
    /// Inputs from a CSV, `.parquet` or `.npy` file (its columns are picked by the model's input names).
    #[arg(long, conflicts_with = "grid", required_unless_present = "grid")]
    pub data: Option<PathBuf>,
    /// Evenly spaced inputs LO:HI:N (single-input models); LO may be negative (`--grid -1:1:50`).
    #[arg(long, value_name = "LO:HI:N", allow_hyphen_values = true)]
    pub grid: Option<String>,
    /// Samples per input row.
    #[arg(long, default_value_t = 1)]
    pub per_input: usize,
    /// Scales σ by T and sharpens (T < 1) or flattens (T > 1) π.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// Write the CSV here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct TuneArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// One of `mdn bench`'s sizes instead of data (what `bench --config` then runs tuned).
    #[arg(long, value_enum, conflicts_with_all = ["data", "toy", "k", "hidden", "batch", "covariance"])]
    pub config: Option<BenchSizeArg>,
    #[arg(long, value_enum, default_value = "mdn")]
    pub model: ModelKind,
    /// Mixture components.
    #[arg(long)]
    pub k: Option<usize>,
    #[arg(long, value_enum)]
    pub covariance: Option<CovarianceArg>,
    /// Hidden layer sizes, comma-separated.
    #[arg(long)]
    pub hidden: Option<String>,
    #[arg(long)]
    pub batch: Option<usize>,
    /// Models stepped together, as one trainer of `mdn sweep` (or `mdn bench --models`) steps them.
    #[arg(long, default_value_t = 1)]
    pub models: usize,
    /// Seconds of timed steps per configuration tried.
    #[arg(long, default_value_t = 0.3)]
    pub seconds: f64,
    /// Search only these settings, comma-separated (fused, fused_tile, fused_vec4, fused_unroll, fused_scratch, fused_stage, fused_wg, fused_rows, fused_groups, adam_lanes, matmul, wg, k, big_tile, invocations, rows_wg).
    #[arg(long, value_name = "LIST")]
    pub only: Option<String>,
    /// Measure and print, but leave the table of tuned kernels as it is.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object per configuration tried and line, then one for the result.
    #[arg(long)]
    pub json: bool,
    /// Print the table of tuned kernels (every adapter and job measured on this machine) and measure nothing.
    #[arg(long, conflicts_with_all = ["data", "toy", "config", "dry_run", "only"])]
    pub list: bool,
}
