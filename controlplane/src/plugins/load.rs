//! Loading a component: every upload check (size, a component, no imports, one of the worlds,
//! a working `describe`, a supported contract) and the `InstancePre` it leaves ready.

use wasmtime::component::{Component, Linker};

use super::bindings::mapper::MapperPluginPre;
use super::bindings::screen::ScreenPluginPre;
use super::bindings::wit;
use super::{
    CONTRACT, CallLimits, CallState, LoadedPlugin, PluginError, PluginResult, Pre, cache, classify,
    digest_of, engine, new_store,
};
use crate::config::PluginsConfig;
use ops_proto::v1::PluginWorld;

/// Loads components against the host's engine, compiled cache and limits.
pub(super) struct Loader<'a> {
    pub engine: &'a engine::PluginEngine,
    pub cache: &'a cache::CompiledCache,
    pub config: &'a PluginsConfig,
}

impl Loader<'_> {
    /// A built-in plugin: every check but the upload size cap.
    pub fn load_builtin(&self, wasm: &[u8]) -> PluginResult<LoadedPlugin> {
        self.inspect(wasm, true).map(|(plugin, _)| plugin)
    }

    pub fn inspect(&self, wasm: &[u8], builtin: bool) -> PluginResult<(LoadedPlugin, Option<f64>)> {
        let invalid = |message: String| PluginError::InvalidPlugin {
            field: "wasm",
            message,
        };
        if wasm.is_empty() {
            return Err(invalid("no bytes".into()));
        }
        if !builtin && wasm.len() > self.config.max_upload_bytes {
            return Err(invalid(format!(
                "{} bytes; plugins may be at most {} bytes (plugins.max_upload_bytes)",
                wasm.len(),
                self.config.max_upload_bytes
            )));
        }
        if !wasmparser::Parser::is_component(wasm) {
            return Err(invalid(if wasmparser::Parser::is_core_wasm(wasm) {
                "a core wasm module, not a component; build plugins with `opsctl plugin build` \
                 (or wrap the module with `wasm-tools component new`)"
                    .into()
            } else {
                "not a WASM component (bad magic number or version)".into()
            }));
        }
        let digest = digest_of(wasm);
        let digest_hex = digest.trim_start_matches("sha256:");
        let compiled = self.cache.load_or_compile(
            &self.engine.engine,
            &self.engine.compat_hash,
            digest_hex,
            wasm,
        )?;
        let component = compiled.component;
        check_imports(&self.engine.engine, &component)?;
        let linker = Linker::<CallState>::new(&self.engine.engine);
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(format!("cannot be instantiated without imports: {e:#}")))?;
        let pre = if let Ok(pre) = MapperPluginPre::new(instance_pre.clone()) {
            Pre::Mapper(pre)
        } else if let Ok(pre) = ScreenPluginPre::new(instance_pre) {
            Pre::Screen(pre)
        } else {
            let exports: Vec<String> = component
                .component_type()
                .exports(&self.engine.engine)
                .map(|(n, _)| n.to_owned())
                .collect();
            return Err(invalid(format!(
                "implements neither ops:plugin/mapper-plugin (export `ops:plugin/mapper@0.2.0`) nor \
                 ops:plugin/screen-plugin (export `ops:plugin/screen@0.2.0`) with the contract's \
                 types; it exports [{}]",
                exports.join(", ")
            )));
        };
        let world = match pre {
            Pre::Mapper(_) => PluginWorld::Mapper,
            Pre::Screen(_) => PluginWorld::Screen,
        };
        let info = self.describe(&pre, &digest)?;
        let compatible =
            info.contract == CONTRACT || info.contract.starts_with(&format!("{CONTRACT}."));
        if !compatible {
            return Err(invalid(format!(
                "built against contract {:?}; this host speaks ops:plugin {CONTRACT}.x",
                info.contract
            )));
        }
        let plugin = LoadedPlugin {
            digest,
            world,
            info,
            builtin,
            pre,
        };
        Ok((plugin, compiled.compile_ms))
    }

    /// Calls `describe` under the default limits: a plugin that cannot even say what it is
    /// does not get uploaded.
    fn describe(&self, pre: &Pre, digest: &str) -> PluginResult<wit::PluginInfo> {
        let limits = CallLimits::resolve(self.config, None);
        let mut store = new_store(&self.engine.engine, limits);
        let result = pre.describe(&mut store);
        result.map_err(|e| {
            let error = classify(digest.to_owned(), &e, &store, limits);
            PluginError::InvalidPlugin {
                field: "wasm",
                message: format!("describe() failed: {error}"),
            }
        })
    }
}

/// Plugins get no capabilities: any import (WASI or otherwise) is refused, by name. The one
/// import allowed is the contract's `types` interface, which carries type definitions only.
fn check_imports(engine: &wasmtime::Engine, component: &Component) -> PluginResult<()> {
    use wasmtime::component::types::ComponentItem;
    let types_only = |item: &ComponentItem| match item {
        ComponentItem::ComponentInstance(instance) => instance
            .exports(engine)
            .all(|(_, export)| matches!(export.ty, ComponentItem::Type(_))),
        _ => false,
    };
    let imports: Vec<String> = component
        .component_type()
        .imports(engine)
        .filter(|(name, item)| !(name.starts_with("ops:plugin/types@") && types_only(&item.ty)))
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    if imports.is_empty() {
        return Ok(());
    }
    Err(PluginError::InvalidPlugin {
        field: "wasm",
        message: format!(
            "imports {}; plugins may import nothing (no WASI filesystem, sockets, clocks, random or \
             environment, no host functions): build for wasm32-unknown-unknown",
            imports.join(", ")
        ),
    })
}
