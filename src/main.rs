//! The `mdn` command line: parses arguments with clap and calls the library.
//! Every failure becomes one `error: …` line on stderr and a non-zero exit.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_mesa_device_select();
    let args = cli::Cli::parse();
    if let Err(e) = mdn::simd::check_env() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        // Already said on stderr what was written; the code tells the
        // shell which signal it was (130 SIGINT, 143 SIGTERM).
        Err(e) if e.downcast_ref::<cli::Interrupted>().is_some() => {
            let code = e.downcast_ref::<cli::Interrupted>().map_or(1, |i| i.0);
            ExitCode::from(code)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Mesa's device-select Vulkan layer prints "XDG_RUNTIME_DIR is invalid" on
/// every instance when that variable is unset (headless machines, CI). The
/// layer only reorders devices, and `mdn` picks its adapter itself, so it is
/// switched off unless the user set the variable either way.
fn quiet_mesa_device_select() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none()
        && std::env::var_os("NODEVICE_SELECT").is_none()
    {
        // SAFETY: called first thing in main, before any thread exists.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}
