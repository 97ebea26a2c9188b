//! What the integration suites share that is not a test server: the workspace's binaries.
//!
//! The suites run the real `opsd`, `opsctl` and sidecar binaries. They belong to other
//! packages, so cargo does not hand this one their paths; [`bin`] builds them once per test
//! process (a no-op when they are fresh — the outer `cargo test` holds no lock while tests run)
//! and returns the path beside the test executable's profile directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The packages whose binaries the suites run.
const PACKAGES: &[&str] = &["ops-controlplane", "ops-executors"];

/// `target/<profile>`: the test executable lives in its `deps/`.
fn profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_owned)
        .ok_or_else(|| format!("{} is not in target/<profile>/deps", exe.display()))
}

fn build() -> Result<PathBuf, String> {
    let dir = profile_dir()?;
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_owned();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--bins", "--locked"]);
    // What cargo set for this test crate is not the nested build's: build scripts that watch
    // such a variable (ring's watches CARGO_MANIFEST_DIR) would rebuild, and the outer
    // `cargo test` would then rebuild them back — minutes of thrash per run.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if is_crate_variable(&name) {
            command.env_remove(&*name);
        }
    }
    match profile.as_str() {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    for package in PACKAGES {
        command.args(["-p", package]);
    }
    let output = command
        .output()
        .map_err(|e| format!("running cargo build: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build of the workspace binaries failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(dir)
}

/// A variable cargo sets for the crate being built or run, not one that configures cargo.
fn is_crate_variable(name: &str) -> bool {
    name == "OUT_DIR"
        || name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_EXE_")
        || [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_MANIFEST_LINKS",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
        ]
        .contains(&name)
}

/// The directory holding the freshly built workspace binaries.
///
/// # Panics
/// When they cannot be built: every suite that needs them would fail anyway, and the build's
/// own error is the useful message.
#[allow(clippy::panic)]
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(build) {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    }
}

/// The path of one workspace binary (`opsd`, `opsctl`, `ops-sql-executor`, …).
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}
