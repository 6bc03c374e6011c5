//! The command line: arguments (`args`), one function per command
//! (`commands`, `bench`), and the dispatch between them.

mod args;
mod bench;
mod choices;
mod commands;
mod sweep;
mod sweep_resume;
mod train;
mod tune;

use args::{Command, ViewArgs, with_tuned_table};

pub use args::Cli;
pub use train::Interrupted;

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let gpu = cli.gpu_options();
    match cli.command {
        Some(Command::Data(a)) => commands::data(a),
        Some(Command::Train(a)) => train::train(*a, &with_tuned_table(gpu)),
        Some(Command::Eval(a)) => commands::eval(a, &gpu),
        Some(Command::Predict(a)) => commands::predict(a, &gpu),
        Some(Command::Sample(a)) => commands::sample(a, &gpu),
        Some(Command::Adapters(a)) => commands::adapters(a, &gpu),
        Some(Command::Sweep(a)) => sweep::sweep(*a, &with_tuned_table(gpu)),
        Some(Command::Bench(a)) => bench::run(a, &with_tuned_table(gpu)),
        Some(Command::Tune(a)) => tune::tune_command(*a, &gpu),
        Some(Command::View(a)) => commands::view(a, &gpu),
        Some(Command::Render(a)) => commands::render(a, &gpu),
        None => commands::view(ViewArgs::default(), &gpu),
    }
}
