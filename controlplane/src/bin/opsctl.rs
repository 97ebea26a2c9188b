//! `opsctl`: build, run and upload plugins (see `ops_controlplane::opsctl`).

use std::process::ExitCode;

use clap::Parser;
use ops_controlplane::opsctl::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("opsctl: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(opsctl::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("opsctl: {error:#}");
            ExitCode::FAILURE
        }
    }
}
