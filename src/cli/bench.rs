//! `mdn bench`: argument parsing and printing around [`mdn::bench`].

use std::io::Write;

use anyhow::Context;
use clap::Args;
use mdn::bench::{Bench, BenchConfig, BenchOptions, BenchRow, profile_lines, tuned_line};

use super::choices::{BenchDeviceArg, BenchModelArg};
use mdn::gpu::context::GpuOptions;

/// Which sizes to run: one, or `all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ConfigChoice {
    /// batch 1024, hidden 32,32, K 5.
    Small,
    /// batch 4096, hidden 64,64, K 5.
    Medium,
    /// batch 65536, hidden 256,256, K 8.
    Large,
    All,
}

impl ConfigChoice {
    fn configs(self) -> Vec<BenchConfig> {
        match self {
            ConfigChoice::Small => vec![BenchConfig::Small],
            ConfigChoice::Medium => vec![BenchConfig::Medium],
            ConfigChoice::Large => vec![BenchConfig::Large],
            ConfigChoice::All => BenchConfig::ALL.to_vec(),
        }
    }
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Problem size.
    #[arg(long, value_enum, default_value = "all")]
    pub config: ConfigChoice,
    /// Devices, comma-separated (default: cpu,gpu, the GPU only if one opens).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "cpu,gpu")]
    pub device: Option<Vec<BenchDeviceArg>>,
    #[arg(long, value_enum, default_value = "mdn")]
    pub model: BenchModelArg,
    /// Steps per repeat (default: calibrated to about 0.5 s per repeat).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Timed repeats per row (default: 5; 3 where one step takes over 20 s).
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Models trained at once, as `mdn sweep` trains them: on the GPU in the
    /// same dispatches, on the CPU side by side on the cores (seeds differ).
    #[arg(long, default_value_t = 1)]
    pub models: usize,
    /// One JSON object per measured row and line, nothing else on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also time each dispatch of a GPU step with GPU timestamps: a table
    /// under each chunked GPU row (a `profile` object in its JSON row).
    #[arg(long)]
    pub profile: bool,
}

pub fn run(a: BenchArgs, gpu: &GpuOptions) -> anyhow::Result<()> {
    let opts = BenchOptions {
        configs: a.config.configs(),
        devices: a.device.map(|d| d.into_iter().map(Into::into).collect()),
        model: a.model.into(),
        steps: a.steps,
        repeats: a.repeats,
        models: a.models,
        profile: a.profile,
        gpu: gpu.clone(),
    };
    let mut note = |m: &str| eprintln!("note: {m}");
    let bench = Bench::new(opts, &mut note)?;
    let mut out = std::io::stdout().lock();
    if !a.json {
        for line in bench.machine().header_lines() {
            writeln!(out, "{line}").context("writing to stdout")?;
        }
        writeln!(out, "\n{}", BenchRow::table_header()).context("writing to stdout")?;
        out.flush().context("writing to stdout")?;
    }
    let mut failed: Option<anyhow::Error> = None;
    let on_row = &mut |row: &BenchRow| {
        if failed.is_some() {
            return;
        }
        let line = if a.json {
            serde_json::to_string(row).map_err(anyhow::Error::from)
        } else {
            let mut lines = vec![row.table_line()];
            lines.extend(tuned_line(row));
            lines.extend(profile_lines(row));
            Ok(lines.join("\n"))
        };
        // Flushed per row: rows of the large size come minutes apart.
        let written = line.and_then(|l| {
            writeln!(out, "{l}")
                .and_then(|_| out.flush())
                .context("writing to stdout")
        });
        if let Err(e) = written {
            failed = Some(e);
        }
    };
    bench.run(on_row, &mut note)?;
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
