//! `opsctl`: build, run and upload plugins (see `ops_controlplane::opsctl`).

use std::process::ExitCode;

use clap::Parser;
use ops_controlplane::{cli, opsctl};

fn main() -> ExitCode {
    cli::run_to_exit("opsctl", opsctl::run(opsctl::Cli::parse()))
}
