//! One function per subcommand: read inputs, call the library, write outputs.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use mdn::Dataset;
use mdn::data::csv::{ColumnChoice, csv_rows, load_dataset, push_csv_rows};
use mdn::data::table::Table;
use mdn::data::toy::ToyRows;
use mdn::fsutil::AtomicFile;
use mdn::gpu::context::GpuOptions;
use mdn::infer::{Inference, Point};
use mdn::model::load_model;
use rayon::prelude::*;

use super::args::{
    AdaptersArgs, DataArgs, EvalArgs, PredictArgs, RenderArgs, SampleArgs, SceneArgs, ViewArgs,
    absolute, number_list,
};

pub fn data(a: DataArgs) -> anyhow::Result<()> {
    if a.n == 0 {
        bail!("--n must be at least 1");
    }
    // Drawn, formatted and written a chunk at a time: 10^8 rows take the
    // memory of one chunk, not of the file.
    let mut rows = ToyRows::new(a.toy.into(), a.seed);
    let (inputs, targets) = rows.names();
    let mut file = AtomicFile::create(&a.out)?;
    file.write_all(format!("{}\n", [inputs, targets].concat().join(",")).as_bytes())?;
    let mut values = Vec::new();
    let mut left = a.n;
    while left > 0 {
        let n = left.min(chunk_rows());
        values.clear();
        rows.push(n, &mut values);
        file.write_all(&csv_rows(rows.width(), &values))?;
        left -= n;
    }
    file.commit()?;
    eprintln!("wrote {} rows to {}", a.n, a.out.display());
    Ok(())
}

/// Rows that `predict`, `sample` and `eval` read, compute and write at a
/// time, so their memory does not grow with the file.
/// `MDN_CHUNK_ROWS` overrides it: tests use a few rows to cross chunks.
fn chunk_rows() -> usize {
    std::env::var("MDN_CHUNK_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(65_536)
}

/// The next chunk of a file's rows, one vector per column group; `None`
/// at the end.
fn next_chunk(table: &mut Table, groups: &[Vec<usize>]) -> anyhow::Result<Option<Vec<Vec<f32>>>> {
    let mut outs = vec![Vec::new(); groups.len()];
    let n = table.read_batch(groups, chunk_rows(), &mut outs)?;
    Ok((n > 0).then_some(outs))
}

pub fn eval(a: EvalArgs, gpu: &GpuOptions) -> anyhow::Result<()> {
    let model = load_model(&a.model)?;
    let mut table = Table::open(&a.data)?;
    let cols = ColumnChoice {
        input: Some(model.input_names.clone()),
        target: Some(model.target_names.clone()),
    };
    let (input, target) = cols.resolve(&a.data, &table.header)?;
    let groups = vec![
        table.column_indices(&input)?,
        table.column_indices(&target)?,
    ];
    let (dev, note) = device(a.device.into(), gpu)?;
    let mut acc = model.eval_accumulator();
    while let Some(mut c) = next_chunk(&mut table, &groups)? {
        let (targets, inputs) = (c.pop().unwrap_or_default(), c.pop().unwrap_or_default());
        let chunk = Dataset::new(inputs, targets, input.clone(), target.clone())?;
        acc.add(&model, &chunk, &dev)?;
    }
    if acc.rows() == 0 {
        return Err(table.no_rows_error().into());
    }
    let report = acc.finish(&model)?;
    if let Some(path) = &a.plot {
        plot_calibration(&report, &a.model, &a.data, path)?;
    }
    let loss = &report.loss;
    let mut fields: Vec<(&str, f64)> = vec![(loss.metric.name(), loss.value)];
    if let Some(c) = &report.calibration {
        fields.extend([
            ("crps", c.crps),
            ("pit_ks", c.pit_ks),
            ("coverage_50", c.coverage_50),
            ("coverage_90", c.coverage_90),
        ]);
    }
    if let Some(mae) = report.mae {
        fields.push(("mae", mae));
    } else {
        fields.push(("mse_mean", report.mse_mean));
    }
    if a.json {
        let mut obj = serde_json::Map::new();
        for (name, v) in &fields {
            obj.insert(name.to_string(), serde_json::json!(v));
        }
        obj.insert("rows".into(), serde_json::json!(loss.rows));
        if let Some(u) = &report.usage {
            let comps: Vec<serde_json::Value> = u
                .mean_pi
                .iter()
                .enumerate()
                .map(|(k, p)| serde_json::json!({"k": k, "mean_pi": p}))
                .collect();
            obj.insert("components".into(), comps.into());
            obj.insert(
                "dead_components".into(),
                serde_json::json!(u.dead_components()),
            );
        }
        println!("{}", serde_json::Value::Object(obj));
    } else {
        let line: Vec<String> = fields.iter().map(|(n, v)| format!("{n} {v:.6}")).collect();
        println!("{}", line.join("  "));
    }
    if let Some(u) = &report.usage {
        report_usage(u);
    }
    print_note(note);
    Ok(())
}

/// The mixture's component usage on stderr, with a warning and what to try
/// when components are dead or one dominates.
pub(super) fn report_usage(u: &mdn::metrics::ComponentUsage) {
    let pis: Vec<String> = u.mean_pi.iter().map(|p| format!("{p:.3}")).collect();
    eprintln!("mean π per component: {}", pis.join(" "));
    if let Some(advice) = u.advice() {
        eprintln!("warning: {advice}");
    }
}

fn plot_calibration(
    report: &mdn::infer::EvalReport,
    model: &Path,
    data: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let Some(c) = &report.calibration else {
        bail!(
            "--plot draws the calibration of a mixture model with one target column; this model has none to draw"
        );
    };
    let title = format!("{} on {}", file_name(model), file_name(data));
    let fig = mdn::calibration_plot::CalibrationFigure {
        pit_histogram: &c.pit_histogram,
        coverage_curve: &c.coverage_curve,
        pit_ks: c.pit_ks,
        rows: c.rows,
        title: &title,
    };
    mdn::calibration_plot::render_png(&fig, out, 900, 400)
        .map_err(|e| anyhow::anyhow!("--plot {}: {e}", out.display()))?;
    eprintln!("wrote the calibration plot to {}", out.display());
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Where `predict` and `sample` write, a chunk at a time: a file that
/// appears whole only when the command succeeds, or stdout.
enum Sink {
    File(AtomicFile),
    Stdout(std::io::BufWriter<std::io::Stdout>),
}

/// The sink, opened with the header line when the first rows are ready,
/// so a command that fails on them has written nothing.
fn open_sink<'a>(
    sink: &'a mut Option<Sink>,
    out: Option<&Path>,
    header: &[String],
) -> anyhow::Result<&'a mut Sink> {
    if sink.is_none() {
        let mut s = Sink::open(out)?;
        s.write(format!("{}\n", header.join(",")).as_bytes())?;
        *sink = Some(s);
    }
    Ok(sink.as_mut().expect("just opened"))
}

impl Sink {
    fn open(out: Option<&Path>) -> anyhow::Result<Self> {
        Ok(match out {
            Some(path) => Sink::File(AtomicFile::create(path)?),
            // As AtomicFile's: big pieces skip the buffer.
            None => Sink::Stdout(std::io::BufWriter::with_capacity(
                64 << 10,
                std::io::stdout(),
            )),
        })
    }

    fn write(&mut self, text: &[u8]) -> anyhow::Result<()> {
        match self {
            Sink::File(f) => f.write_all(text)?,
            Sink::Stdout(s) => s.write_all(text).context("writing to stdout")?,
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::File(f) => f.commit()?,
            Sink::Stdout(mut s) => s.flush().context("writing to stdout")?,
        }
        Ok(())
    }
}

pub fn predict(a: PredictArgs, gpu: &GpuOptions) -> anyhow::Result<()> {
    let model = load_model(&a.model)?;
    let table = Table::open(&a.data)?;
    let groups = vec![table.column_indices(&model.input_names)?];
    let (dev, note) = device(a.device.into(), gpu)?;
    let points = parse_points(a.point.as_deref())?;
    let quantiles = parse_quantiles(a.quantiles.as_deref())?;
    let mut header = model.input_names.clone();
    header.extend(model.prediction_columns());
    header.extend(model.summary_columns(&points, &quantiles)?);
    let job = PredictJob {
        model: &model,
        dev: &dev,
        points: &points,
        quantiles: &quantiles,
        width: header.len(),
    };
    // Reading the next chunk, computing and formatting this one, and
    // writing the last one overlap: each is a third of the work or so, and
    // two of them are single-threaded.
    let (table, sink) = std::thread::scope(|scope| -> anyhow::Result<_> {
        let (chunks, reader) = read_ahead(scope, table, groups);
        let mut writer = WriteBehind::new(a.out.as_deref(), &header);
        let mut first = 0;
        for chunk in chunks {
            let inputs = chunk?;
            let rows = model.input_rows(&inputs)?;
            writer.send(scope, job.text(&inputs, first)?)?;
            first += rows;
        }
        let table = reader.join().expect("the reader thread does not panic");
        Ok((table, writer.finish()?))
    })?;
    match sink {
        Some(s) => s.finish()?,
        None => return Err(table.no_rows_error().into()),
    }
    print_note(note);
    Ok(())
}

/// Rows per task of `predict` on the CPU: each task predicts, summarises
/// and formats its rows, so every stage runs on every core.
const PREDICT_TASK_ROWS: usize = 4096;

/// What `predict` writes for each chunk of rows.
struct PredictJob<'a> {
    model: &'a mdn::model::Model,
    dev: &'a Inference,
    points: &'a [Point],
    quantiles: &'a [f64],
    /// Columns per output row: inputs, predictions, summaries.
    width: usize,
}

impl PredictJob<'_> {
    /// The CSV rows of `inputs` (the file's rows from `first`, 0-based),
    /// in pieces to be written in order (joining them would copy every
    /// byte once more). The same bytes however the rows are split into
    /// chunks and tasks; of several bad rows, the error names the one the
    /// whole file would.
    fn text(&self, inputs: &[f32], first: usize) -> anyhow::Result<Vec<Vec<u8>>> {
        let din = self.model.spec.in_dim;
        if !matches!(self.dev, Inference::Cpu) {
            // One GPU: one pass over the chunk, formatted on every core.
            let (pred, summaries) = self.values(inputs, first);
            let values = self.rows(inputs, &pred?, &summaries?);
            return Ok(vec![csv_rows(self.width, &values)]);
        }
        let tasks: Vec<_> = inputs
            .par_chunks(PREDICT_TASK_ROWS * din)
            .enumerate()
            .map(|(i, block)| {
                let (pred, summaries) = self.values(block, first + i * PREDICT_TASK_ROWS);
                let text = match (&pred, &summaries) {
                    (Ok(p), Ok(s)) => {
                        let values = self.rows(block, p, s);
                        let mut text = Vec::with_capacity(values.len() * 12);
                        push_csv_rows(&mut text, self.width, &values);
                        text
                    }
                    _ => Vec::new(),
                };
                (pred.err(), summaries.err(), text)
            })
            .collect();
        let mut texts = Vec::with_capacity(tasks.len());
        let mut summary_error = None;
        for (pred, summaries, text) in tasks {
            if let Some(e) = pred {
                return Err(e.into());
            }
            summary_error = summary_error.or(summaries);
            texts.push(text);
        }
        match summary_error {
            Some(e) => Err(e.into()),
            None => Ok(texts),
        }
    }

    /// The prediction columns and the summaries of `inputs`.
    fn values(
        &self,
        inputs: &[f32],
        first: usize,
    ) -> (mdn::Result<Vec<f32>>, mdn::Result<Vec<f32>>) {
        let m = self.model;
        if self.points.is_empty() && self.quantiles.is_empty() {
            return (m.predict_from(inputs, self.dev, first), Ok(Vec::new()));
        }
        // One forward pass for both.
        match m.head_outputs_on(inputs, self.dev) {
            Ok(head) => (
                m.predictions_of(&head, first),
                m.summaries_of(&head, self.points, self.quantiles, first),
            ),
            Err(e) => (Err(e), Ok(Vec::new())),
        }
    }

    /// Output rows: each input row, its predictions, its summaries.
    fn rows(&self, inputs: &[f32], pred: &[f32], summaries: &[f32]) -> Vec<f32> {
        let din = self.model.spec.in_dim;
        let rows = inputs.len() / din;
        let cols = pred.len() / rows.max(1);
        let s = summaries.len() / rows.max(1);
        let mut values = Vec::with_capacity(rows * self.width);
        for r in 0..rows {
            values.extend_from_slice(&inputs[r * din..(r + 1) * din]);
            values.extend_from_slice(&pred[r * cols..(r + 1) * cols]);
            values.extend_from_slice(&summaries[r * s..(r + 1) * s]);
        }
        values
    }
}

/// The file's chunks, read one ahead on a thread of their own; the thread
/// hands the table back when joined (for the empty-file error).
fn read_ahead<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    mut table: Table,
    groups: Vec<Vec<usize>>,
) -> (
    std::sync::mpsc::Receiver<anyhow::Result<Vec<f32>>>,
    std::thread::ScopedJoinHandle<'scope, Table>,
) {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let handle = scope.spawn(move || {
        loop {
            let next = match next_chunk(&mut table, &groups) {
                Ok(Some(mut c)) => Ok(c.pop().unwrap_or_default()),
                Ok(None) => break,
                Err(e) => Err(e),
            };
            let failed = next.is_err();
            // A closed channel: the consumer stopped early.
            if tx.send(next).is_err() || failed {
                break;
            }
        }
        table
    });
    (rx, handle)
}

/// Writes text on a thread of its own, one chunk behind the caller. The
/// sink opens (with the header) when the first rows are ready, so a command
/// that fails before them writes nothing; `finish` hands it back to be
/// committed, and dropping it instead discards a partial file.
struct WriteBehind<'scope, 'a> {
    out: Option<&'a Path>,
    header: &'a [String],
    tx: Option<std::sync::mpsc::SyncSender<Vec<Vec<u8>>>>,
    handle: Option<std::thread::ScopedJoinHandle<'scope, anyhow::Result<Sink>>>,
}

impl<'scope, 'a> WriteBehind<'scope, 'a> {
    fn new(out: Option<&'a Path>, header: &'a [String]) -> Self {
        WriteBehind {
            out,
            header,
            tx: None,
            handle: None,
        }
    }

    fn send(
        &mut self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        text: Vec<Vec<u8>>,
    ) -> anyhow::Result<()> {
        if self.tx.is_none() {
            let mut sink = None;
            open_sink(&mut sink, self.out, self.header)?;
            let mut sink = sink.expect("just opened");
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Vec<u8>>>(1);
            self.handle = Some(scope.spawn(move || {
                for piece in rx.iter().flatten() {
                    sink.write(&piece)?;
                }
                Ok(sink)
            }));
            self.tx = Some(tx);
        }
        let tx = self.tx.as_ref().expect("set above");
        if tx.send(text).is_err() {
            // The writer stopped on an error: that error is the one to tell.
            self.tx = None;
            return match self.handle.take().map(|h| h.join()) {
                Some(Ok(Err(e))) => Err(e),
                _ => bail!("the writer thread stopped"),
            };
        }
        Ok(())
    }

    /// Waits for every write; the sink, if any rows were sent.
    fn finish(mut self) -> anyhow::Result<Option<Sink>> {
        self.tx = None;
        match self.handle.take() {
            Some(h) => Ok(Some(h.join().expect("the writer thread does not panic")?)),
            None => Ok(None),
        }
    }
}

/// Parses `--point mean,median,mode`.
fn parse_points(text: Option<&str>) -> anyhow::Result<Vec<Point>> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let mut points = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p = match part {
            "mean" => Point::Mean,
            "median" => Point::Median,
            "mode" => Point::Mode,
            other => {
                bail!("--point: unknown point prediction `{other}`; choose from mean, median, mode")
            }
        };
        if !points.contains(&p) {
            points.push(p);
        }
    }
    if points.is_empty() {
        bail!("--point needs at least one of mean, median, mode");
    }
    Ok(points)
}

/// Parses `--quantiles 0.05,0.5,0.95`.
fn parse_quantiles(text: Option<&str>) -> anyhow::Result<Vec<f64>> {
    match text {
        Some(t) => number_list("quantiles", t, "0.05,0.5,0.95"),
        None => Ok(Vec::new()),
    }
}

/// Parses `LO:HI:N` into N evenly spaced values from LO to HI inclusive.
fn parse_grid(text: &str) -> anyhow::Result<Vec<f32>> {
    let parts: Vec<&str> = text.split(':').collect();
    let bad = || anyhow::anyhow!("--grid `{text}`: expected LO:HI:N, e.g. 0:1:100");
    if parts.len() != 3 {
        return Err(bad());
    }
    let lo: f32 = parts[0].trim().parse().map_err(|_| bad())?;
    let hi: f32 = parts[1].trim().parse().map_err(|_| bad())?;
    let n: usize = parts[2].trim().parse().map_err(|_| bad())?;
    if !(lo.is_finite() && hi.is_finite()) || n == 0 || n > 10_000_000 {
        return Err(bad());
    }
    if n == 1 {
        return Ok(vec![lo]);
    }
    Ok((0..n)
        .map(|i| lo + (hi - lo) * i as f32 / (n - 1) as f32)
        .collect())
}

/// The input rows of `sample`: a file read in chunks, or a grid.
enum SampleInputs {
    File(Box<Table>, Vec<Vec<usize>>),
    Grid(Vec<f32>, usize),
}

impl SampleInputs {
    fn next(&mut self) -> anyhow::Result<Option<Vec<f32>>> {
        match self {
            SampleInputs::File(table, groups) => {
                Ok(next_chunk(table, groups)?.and_then(|mut c| c.pop()))
            }
            SampleInputs::Grid(values, at) => {
                let end = (*at + chunk_rows()).min(values.len());
                let chunk = values[*at..end].to_vec();
                *at = end;
                Ok((!chunk.is_empty()).then_some(chunk))
            }
        }
    }
}

pub fn sample(a: SampleArgs, gpu: &GpuOptions) -> anyhow::Result<()> {
    let model = load_model(&a.model)?;
    let mut inputs = match (&a.data, &a.grid) {
        (Some(path), _) => {
            let table = Table::open(path)?;
            let groups = vec![table.column_indices(&model.input_names)?];
            SampleInputs::File(Box::new(table), groups)
        }
        (None, Some(grid)) => {
            if model.spec.in_dim != 1 {
                bail!(
                    "--grid needs a model with one input column; this one has {} ({})",
                    model.spec.in_dim,
                    model.input_names.join(", ")
                );
            }
            SampleInputs::Grid(parse_grid(grid)?, 0)
        }
        (None, None) => bail!("give --data FILE.csv or --grid LO:HI:N"),
    };
    let (dev, note) = device(a.device.into(), gpu)?;
    let (din, d) = (model.spec.in_dim, model.spec.out_dim);
    let header = [model.input_names.clone(), model.target_names.clone()].concat();
    let mut sink: Option<Sink> = None;
    let mut first = 0;
    loop {
        let Some(chunk) = inputs.next()? else { break };
        let rows = model.input_rows(&chunk)?;
        let samples = model.sample_from(&chunk, a.per_input, a.temperature, a.seed, &dev, first)?;
        let mut values = Vec::with_capacity(rows * a.per_input * (din + d));
        for (i, s) in samples.chunks_exact(d).enumerate() {
            let r = i / a.per_input;
            values.extend_from_slice(&chunk[r * din..(r + 1) * din]);
            values.extend_from_slice(s);
        }
        open_sink(&mut sink, a.out.as_deref(), &header)?.write(&csv_rows(header.len(), &values))?;
        first += rows;
    }
    match (sink, inputs) {
        (Some(s), _) => s.finish()?,
        (None, SampleInputs::File(table, _)) => return Err(table.no_rows_error().into()),
        (None, SampleInputs::Grid(..)) => bail!("--grid gave no rows"),
    }
    print_note(note);
    Ok(())
}

/// Every adapter of every backend, or with `--backend` only that backend's
/// (`WGPU_BACKEND` is not applied: the list shows what one could choose).
pub fn adapters(a: AdaptersArgs, gpu: &GpuOptions) -> anyhow::Result<()> {
    use mdn::gpu::context::{list_adapters, list_adapters_on};
    let list = match gpu.backend {
        Some(choice) => {
            let list = list_adapters_on(choice.backends());
            if list.is_empty() {
                let others: Vec<String> = list_adapters()
                    .iter()
                    .map(|ad| format!("{} ({})", ad.name, ad.backend))
                    .collect();
                bail!(
                    "no GPU adapter on the {} backend{}",
                    choice.name(),
                    if others.is_empty() {
                        "; none on any other backend either (on Debian/Ubuntu without a GPU: apt-get install mesa-vulkan-drivers libvulkan1)".to_string()
                    } else {
                        format!("; other backends have: {}", others.join(", "))
                    }
                );
            }
            list
        }
        None => list_adapters(),
    };
    if a.json {
        for ad in &list {
            println!("{}", serde_json::to_string(ad)?);
        }
    } else if !list.is_empty() {
        println!("{}", mdn::gpu::context::AdapterSummary::table_header());
        for ad in &list {
            println!("{ad}");
        }
    }
    if list.is_empty() {
        bail!(
            "no GPU adapter found on any backend; install a Vulkan or GL driver (on Debian/Ubuntu without a GPU: apt-get install mesa-vulkan-drivers libvulkan1)"
        );
    }
    Ok(())
}

/// The window's and the render's settings, and the data scene's data and
/// model, from their shared flags.
/// The data scene's data and the two columns it plots.
type SceneData = (mdn::Dataset, mdn::viz::PlotColumns);

fn scene_setup(
    a: &SceneArgs,
) -> anyhow::Result<(mdn::viz::Settings, Option<SceneData>, Option<mdn::Model>)> {
    if a.samples == 0 || a.samples > 1_000_000 {
        bail!("--samples must be 1..=1000000, got {}", a.samples);
    }
    if !(a.temperature.is_finite() && a.temperature > 0.0) {
        bail!(
            "--temperature must be a positive number, got {}",
            a.temperature
        );
    }
    if !(a.lr.is_finite() && a.lr > 0.0) {
        bail!("--lr must be a positive number, got {}", a.lr);
    }
    let settings = mdn::viz::Settings {
        k: a.k as usize,
        samples: a.samples,
        temperature: a.temperature,
        lr: a.lr,
        seed: a.seed,
        hidden: a
            .hidden
            .as_deref()
            .map(mdn::model::ModelSpec::parse_hidden)
            .transpose()?,
        layers: parse_layers(&a.layers)?,
        device: a.device.into(),
        ..Default::default()
    };
    let model = a.model.as_deref().map(load_model).transpose()?;
    let data = match &a.data {
        Some(path) => Some(data_scene_data(
            path,
            a.input.as_deref(),
            a.target.as_deref(),
            model.as_ref(),
        )?),
        None => None,
    };
    Ok((settings, data, model))
}

/// The model's columns (`names`) a data scene reads, and the one `flag`
/// names to plot (`None`: the first).
fn model_columns<'a>(
    flag: Option<&'a str>,
    names: &[String],
    what: &str,
) -> anyhow::Result<(Vec<String>, Option<&'a str>)> {
    match flag {
        None => Ok((names.to_vec(), None)),
        Some(c) if names.len() == 1 => Ok((vec![c.to_string()], None)),
        Some(c) if names.iter().any(|n| n == c) => Ok((names.to_vec(), Some(c))),
        Some(c) => bail!(
            "--{what} `{c}`: the model's {what} columns are {}; with --model, --{what} names the one to plot",
            names.join(", ")
        ),
    }
}

/// The data scene's data and plotted columns. With a model: the model's
/// input and target columns, of which `--input COL` and `--target COL`
/// name the plotted ones (a one-column model reads the named column as its
/// own, whatever its name in training). Without: `--input COLS` and
/// `--target COLS` are the columns the live MDN trains on (as for `mdn
/// train`), and the first of each is plotted.
fn data_scene_data(
    path: &Path,
    input: Option<&str>,
    target: Option<&str>,
    model: Option<&mdn::Model>,
) -> anyhow::Result<(mdn::Dataset, mdn::viz::PlotColumns)> {
    let Some(m) = model else {
        let data = load_dataset(path, &ColumnChoice::from_flags(input, target))?;
        return Ok((data, mdn::viz::PlotColumns::default()));
    };
    let (inputs, plot_in) = model_columns(input, &m.input_names, "input")?;
    let (targets, plot_t) = model_columns(target, &m.target_names, "target")?;
    let cols = ColumnChoice {
        input: Some(inputs),
        target: Some(targets),
    };
    let data = load_dataset(path, &cols)?;
    let plot = mdn::viz::PlotColumns::named(&data, plot_in, plot_t)?;
    Ok((data, plot))
}

/// A setup file's scene, settings, points and data as the visualizer
/// takes them.
struct OpenedSetup {
    scene: mdn::viz::Scene,
    settings: mdn::viz::Settings,
    points: Option<mdn::Dataset>,
    data: Option<SceneData>,
    model: Option<mdn::Model>,
    data_ref: Option<mdn::viz::setup::DataRef>,
}

fn open_setup(path: &std::path::Path) -> anyhow::Result<OpenedSetup> {
    let setup = mdn::viz::setup::Setup::read(path)?;
    let (mut data, mut model) = (None, None);
    if let Some(r) = &setup.data {
        let args = SceneArgs {
            data: Some(r.path.clone()),
            input: r.input.clone(),
            target: r.target.clone(),
            model: r.model.clone(),
            ..SceneArgs::defaults()
        };
        let (_, d, m) = scene_setup(&args)?;
        (data, model) = (d, m);
    }
    if setup.scene == mdn::viz::Scene::Data && data.is_none() {
        bail!("{}: the data scene needs its `data` entry", path.display());
    }
    let points = (!setup.points.is_empty())
        .then(|| mdn::viz::presets::canvas_dataset(setup.points.iter().map(|p| (p[0], p[1]))));
    Ok(OpenedSetup {
        scene: setup.scene,
        settings: setup.settings,
        points,
        data,
        model,
        data_ref: setup.data,
    })
}

pub fn view(a: ViewArgs, gpu: &GpuOptions) -> anyhow::Result<()> {
    let mut opts = if let Some(path) = &a.setup {
        let s = open_setup(path)?;
        let mut opts = mdn::viz::ViewOptions::new(s.scene);
        opts.settings = s.settings;
        (opts.data, opts.plot) = split_data(s.data);
        opts.model = s.model;
        opts.data_ref = s.data_ref;
        opts.points = s
            .points
            .map(|d| d.inputs.into_iter().zip(d.targets).collect());
        opts
    } else {
        let (settings, data, model) = scene_setup(&a.common)?;
        let scene = match (a.scene, &data, a.common.preset) {
            (Some(s), _, _) => s.into(),
            (None, Some(_), _) => mdn::viz::Scene::Data,
            (None, None, Some(_)) => mdn::viz::Scene::Playground,
            (None, None, None) => mdn::viz::Scene::Forward,
        };
        if scene == mdn::viz::Scene::Data && data.is_none() {
            bail!("--scene data shows your data: add --data F.csv");
        }
        let mut opts = mdn::viz::ViewOptions::new(scene);
        opts.settings = settings;
        opts.data_ref = a.common.data.as_ref().map(|p| mdn::viz::setup::DataRef {
            path: absolute(p),
            input: a.common.input.clone(),
            target: a.common.target.clone(),
            model: a.common.model.as_deref().map(absolute),
        });
        (opts.data, opts.plot) = split_data(data);
        opts.model = model;
        opts.preset = a.common.preset;
        opts
    };
    opts.save_dir = a.save_dir.clone();
    opts.gpu = gpu.clone();
    opts.max_frames = a.frames;
    opts.autoplay = a.play;
    opts.size = parse_size(&a.size)?;
    let report = mdn::viz::app::run(opts)?;
    if a.frames.is_some() {
        println!(
            "frames {} fps {:.1} steps {} adapter {} surface {}",
            report.frames, report.fps, report.steps, report.adapter, report.surface_format
        );
    }
    Ok(())
}

pub fn render(a: RenderArgs, gpu: &GpuOptions) -> anyhow::Result<()> {
    let (scene, settings, points, model, plot) = if let Some(path) = &a.setup {
        let s = open_setup(path)?;
        let (data, plot) = split_data(s.data);
        (s.scene, s.settings, data.or(s.points), s.model, plot)
    } else {
        let (settings, data, model) = scene_setup(&a.common)?;
        let scene = match (a.scene, a.common.preset) {
            (Some(s), _) => s.into(),
            (None, Some(_)) => mdn::viz::Scene::Playground,
            (None, None) => mdn::viz::Scene::Data,
        };
        if scene == mdn::viz::Scene::Data && data.is_none() {
            bail!("--scene data shows your data: add --data F.csv");
        }
        let (data, plot) = split_data(data);
        let points = match (&a.points, data, a.common.preset) {
            (Some(path), _, _) => Some(load_dataset(path, &ColumnChoice::from_flags(None, None))?),
            (None, Some(data), _) => Some(data),
            (None, None, Some(p)) => Some(mdn::viz::presets::preset_dataset(p, a.common.seed)),
            (None, None, None) => None,
        };
        (scene, settings, points, model, plot)
    };
    let opts = mdn::viz::RenderOptions {
        settings,
        steps: a.steps,
        width: a.width,
        height: a.height,
        points,
        model,
        plot,
        ..mdn::viz::RenderOptions::new(scene)
    };
    let ctx = std::sync::Arc::new(mdn::gpu::context::GpuContext::new(gpu)?);
    let viz = mdn::viz::VizGpu::new(ctx)?;
    let rendered = mdn::viz::render(&viz, &opts)?;
    rendered.write_png(&a.out)?;
    eprintln!(
        "rendered the {} scene after {} epochs ({}, {}), trained on {}, drawn on {}, to {}",
        scene.name(),
        rendered.epoch,
        rendered.loss,
        rendered.status.label(),
        rendered.trained_on.as_deref().unwrap_or("-"),
        viz.ctx.describe(),
        a.out.display()
    );
    Ok(())
}

fn split_data(data: Option<SceneData>) -> (Option<mdn::Dataset>, mdn::viz::PlotColumns) {
    match data {
        Some((d, p)) => (Some(d), p),
        None => (None, Default::default()),
    }
}

fn parse_size(text: &str) -> anyhow::Result<(u32, u32)> {
    let bad = || anyhow::anyhow!("--size `{text}`: expected WIDTHxHEIGHT, e.g. 1200x760");
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    if !(200..=8192).contains(&w) || !(150..=8192).contains(&h) {
        bail!("--size `{text}`: width must be 200..=8192 and height 150..=8192");
    }
    Ok((w, h))
}

fn parse_layers(text: &str) -> anyhow::Result<mdn::viz::Layers> {
    let mut l = mdn::viz::Layers {
        data: false,
        samples: false,
        density: false,
        means: false,
        pi_panel: false,
        components: false,
        mean: false,
        mode: false,
    };
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "data" => l.data = true,
            "samples" => l.samples = true,
            "density" => l.density = true,
            "means" => l.means = true,
            "pi" => l.pi_panel = true,
            "components" => l.components = true,
            "mean" => l.mean = true,
            "mode" => l.mode = true,
            other => bail!(
                "--layers: unknown layer `{other}`; choose from data, samples, density, means, pi, components, mean, mode"
            ),
        }
    }
    Ok(l)
}

/// Where eval/predict/sample run, and the note saying so when `auto` falls
/// back to the CPU. The note is printed only after the command succeeded,
/// so a failing run's stderr is its one `error:` line.
fn device(
    choice: mdn::DeviceChoice,
    gpu: &GpuOptions,
) -> anyhow::Result<(Inference, Option<String>)> {
    let mut note = None;
    let dev = mdn::fit::inference_device(choice, gpu, &mut |m| note = Some(m.to_string()))?;
    Ok((dev, note))
}

fn print_note(note: Option<String>) {
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
}
