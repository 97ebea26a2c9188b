//! Compiled components on disk, keyed by the engine's compatibility hash and the component's
//! sha256: `<dir>/<compat>/<sha256>.cwasm`, with the artifact's own sha256 beside it. An engine
//! upgrade changes the hash, so the next load recompiles from the stored `.wasm`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::{PluginError, PluginResult};

#[derive(Debug, Clone)]
pub struct CompiledCache {
    dir: Option<PathBuf>,
}

/// A loaded component and how long compiling it took (`None`: it came from the cache).
pub struct Compiled {
    pub component: Component,
    pub compile_ms: Option<f64>,
}

impl CompiledCache {
    /// `None` keeps nothing on disk (every start compiles).
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    pub fn load_or_compile(
        &self,
        engine: &Engine,
        compat_hash: &str,
        digest_hex: &str,
        wasm: &[u8],
    ) -> PluginResult<Compiled> {
        let paths = self.dir.as_ref().map(|dir| {
            let base = dir.join(compat_hash).join(format!("{digest_hex}.cwasm"));
            let check = base.with_extension("cwasm.sha256");
            (base, check)
        });
        if let Some((artifact, check)) = &paths
            && let Some(component) = load_verified(engine, artifact, check)
        {
            return Ok(Compiled {
                component,
                compile_ms: None,
            });
        }
        let started = Instant::now();
        let component = Component::new(engine, wasm).map_err(|e| PluginError::InvalidPlugin {
            field: "wasm",
            message: format!("not a valid WASM component: {e:#}"),
        })?;
        let compile_ms = started.elapsed().as_secs_f64() * 1e3;
        if let Some((artifact, check)) = &paths
            && let Err(e) = store(&component, artifact, check)
        {
            tracing::warn!(path = %artifact.display(), error = %e, "cannot cache a compiled plugin");
        }
        Ok(Compiled {
            component,
            compile_ms: Some(compile_ms),
        })
    }
}

fn load_verified(engine: &Engine, artifact: &Path, check: &Path) -> Option<Component> {
    let bytes = fs::read(artifact).ok()?;
    let expected = fs::read_to_string(check).ok()?;
    if hex::encode(Sha256::digest(&bytes)) != expected.trim() {
        tracing::warn!(path = %artifact.display(), "compiled plugin fails its checksum; recompiling");
        return None;
    }
    match deserialize(engine, &bytes) {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(path = %artifact.display(), error = %e, "cannot load a compiled plugin; recompiling");
            None
        }
    }
}

/// The one unsafe call of the host: wasmtime trusts precompiled code. It is sound here because
/// the bytes are ones this host serialized itself (written only by `store`, under a directory
/// named by this engine's compatibility hash) and match the checksum written beside them.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: see above; wasmtime additionally rejects artifacts of another engine config.
    unsafe { Component::deserialize(engine, bytes) }
}

fn store(component: &Component, artifact: &Path, check: &Path) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    if let Some(parent) = artifact.parent() {
        fs::create_dir_all(parent)?;
    }
    // Write-then-rename: a reader never sees half an artifact.
    let tmp = artifact.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, &bytes)?;
    fs::write(check, hex::encode(Sha256::digest(&bytes)))?;
    fs::rename(tmp, artifact)
}
