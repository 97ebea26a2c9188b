//! `opsd`: the OPS control plane binary.

use std::process::ExitCode;

use clap::Parser;
use ops_controlplane::cli::{self, Cli};

fn main() -> ExitCode {
    cli::run_to_exit("opsd", cli::run(Cli::parse()))
}
