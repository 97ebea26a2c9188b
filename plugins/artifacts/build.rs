//! Builds the guest crates for wasm with a nested cargo (its own target directory, so the outer
//! build's lock is never contended) and turns the core modules into components.

use std::env;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (package, artifact file stem, target): components embedded by this crate.
const PLUGINS: &[(&str, &str, &str)] = &[
    (
        "ops-plugin-default-mapper",
        "ops_plugin_default_mapper",
        "wasm32-unknown-unknown",
    ),
    (
        "ops-plugin-default-screen",
        "ops_plugin_default_screen",
        "wasm32-unknown-unknown",
    ),
    ("status-board", "status_board", "wasm32-unknown-unknown"),
    (
        "ops-plugin-fixture-hostile",
        "ops_plugin_fixture_hostile",
        "wasm32-unknown-unknown",
    ),
    (
        "ops-plugin-fixture-encoding-probe",
        "ops_plugin_fixture_encoding_probe",
        "wasm32-unknown-unknown",
    ),
    // Built with WASI so that it imports filesystem and sockets: upload must refuse it.
    (
        "ops-plugin-fixture-wasi-import",
        "ops_plugin_fixture_wasi_import",
        "wasm32-wasip2",
    ),
];

/// Sources whose change rebuilds the plugins.
const WATCHED: &[&str] = &[
    "plugins/wit",
    "plugins/sdk",
    "plugins/default-mapper",
    "plugins/default-screen",
    "plugins/examples",
    "plugins/fixtures",
    "Cargo.lock",
    "Cargo.toml",
];

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .ok_or("plugins/artifacts is not two levels below the workspace root")?
        .to_path_buf();
    for path in WATCHED {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("plugins");

    for target in ["wasm32-unknown-unknown", "wasm32-wasip2"] {
        ensure_target(target)?;
        let packages: Vec<&str> = PLUGINS
            .iter()
            .filter(|(_, _, t)| *t == target)
            .map(|(p, _, _)| *p)
            .collect();
        cargo_build(&workspace, &target_dir, target, &packages)?;
    }
    for (package, stem, target) in PLUGINS {
        let built = target_dir
            .join(target)
            .join("release")
            .join(format!("{stem}.wasm"));
        let bytes = fs::read(&built).map_err(|e| format!("{package}: {}: {e}", built.display()))?;
        let component = if *target == "wasm32-wasip2" {
            bytes // rustc's wasip2 linker already emits a component
        } else {
            wit_component::ComponentEncoder::default()
                .module(&bytes)?
                .validate(true)
                .encode()
                .map_err(|e| format!("{package}: componentize: {e:#}"))?
        };
        fs::write(out_dir.join(format!("{stem}.wasm")), component)?;
    }
    Ok(())
}

/// The wasm targets `rust-toolchain.toml` lists. rustup installs a pinned toolchain's targets
/// only through `rustup toolchain install`; a toolchain that was already there (or was fetched
/// on first use by the proxy) lacks them, and the nested build would fail with "can't find crate
/// for `std`". So a missing target is added here, and when that is impossible the error names
/// the command that fixes it.
fn ensure_target(target: &str) -> Result<(), Box<dyn Error>> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output()?;
    let installed = libdir.status.success()
        && Path::new(String::from_utf8_lossy(&libdir.stdout).trim()).is_dir();
    if installed {
        return Ok(());
    }
    println!(
        "cargo:warning=installing the {target} target that rust-toolchain.toml lists (rustup target add {target})"
    );
    let added = Command::new("rustup")
        .args(["target", "add", target])
        .output();
    match added {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "the {target} target is not installed and `rustup target add {target}` failed:\n{}\n\
             run `rustup toolchain install` in the workspace (it installs the targets rust-toolchain.toml lists), then build again",
            String::from_utf8_lossy(&out.stderr)
        )
        .into()),
        Err(e) => Err(format!(
            "the {target} target is not installed and rustup could not be run ({e}): \
             install the target for this toolchain (`rustup toolchain install` in the workspace), then build again"
        )
        .into()),
    }
}

fn cargo_build(
    workspace: &Path,
    target_dir: &Path,
    target: &str,
    packages: &[&str],
) -> Result<(), Box<dyn Error>> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            target,
            "--target-dir",
        ])
        .arg(target_dir);
    for package in packages {
        command.args(["-p", package]);
    }
    // The outer build's flags and wrappers (clippy, coverage) are for host code, not plugins.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        command.env_remove(var);
    }
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!(
            "building plugins for {target} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}
