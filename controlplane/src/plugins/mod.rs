//! The WASM plugin host: COMPOSE runs Mapping plugins and PRESENT runs Screen plugins here.
//!
//! One engine; one `InstancePre` per plugin version, cached; a fresh `Store` per call with a
//! memory cap, an epoch deadline and the engine's stack limit; calls on blocking threads,
//! bounded by the pool's size. Plugins import nothing.

pub mod bindings;
mod breaker;
mod cache;
pub mod convert;
mod engine;
pub mod error;
pub mod limits;
mod load;
mod output;
mod runner;
pub mod stage;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ops_proto::v1::{
    MappingSpec, PluginFailureMode, PluginRun, PluginWorld, ScreenSpec, mapping_spec, screen_spec,
};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::{Store, Trap};

use bindings::mapper::MapperPluginPre;
use bindings::screen::ScreenPluginPre;
use bindings::{MapInput, screen_types as st, wit};
pub use error::{PluginError, PluginResult};
pub use limits::CallLimits;
use limits::MemoryLimiter;
use load::Loader;
pub use runner::{RunnerOutput, run_file};

use crate::config::{PluginAllocator, PluginsConfig};

/// The contract version plugins must be built against (major.minor of `ops:plugin`).
pub const CONTRACT: &str = "0.2";

/// Where a plugin's bytes come from when it is not loaded yet (the registry).
#[async_trait]
pub trait PluginBlobs: Send + Sync {
    async fn fetch(&self, tenant: &str, digest: &str) -> PluginResult<Vec<u8>>;
}

/// A compiled, type-checked plugin version, ready to instantiate.
pub struct LoadedPlugin {
    pub digest: String,
    pub world: PluginWorld,
    pub info: wit::PluginInfo,
    pub builtin: bool,
    pre: Pre,
}

enum Pre {
    Mapper(MapperPluginPre<CallState>),
    Screen(ScreenPluginPre<CallState>),
}

impl Pre {
    /// Instantiates in `store` and calls the world's `describe`.
    fn describe(&self, store: &mut Store<CallState>) -> wasmtime::Result<wit::PluginInfo> {
        match self {
            Pre::Mapper(pre) => pre
                .instantiate(&mut *store)
                .and_then(|p| p.ops_plugin_mapper().call_describe(&mut *store)),
            Pre::Screen(pre) => pre
                .instantiate(&mut *store)
                .and_then(|p| p.ops_plugin_screen().call_describe(&mut *store)),
        }
    }
}

impl LoadedPlugin {
    /// "name@version" as the plugin describes itself.
    pub fn label(&self) -> String {
        format!("{}@{}", self.info.name, self.info.version)
    }
}

/// What a call cost.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub plugin: String,
    pub digest: String,
    pub builtin: bool,
    pub elapsed: Duration,
    pub peak_memory_bytes: u64,
    pub limits: CallLimits,
    pub fallback_reason: Option<String>,
}

impl RunReport {
    pub fn to_proto(&self) -> PluginRun {
        PluginRun {
            plugin: self.plugin.clone(),
            digest: self.digest.clone(),
            builtin: self.builtin,
            elapsed_ms: self.elapsed.as_secs_f64() * 1e3,
            peak_memory_bytes: self.peak_memory_bytes,
            limits: Some(self.limits.to_proto()),
            fallback_reason: self.fallback_reason.clone().unwrap_or_default(),
        }
    }
}

/// A plugin's output and what producing it cost.
pub struct Outcome<T> {
    pub output: T,
    pub report: RunReport,
}

pub type MapOutcome = Outcome<Vec<wit::Block>>;
pub type ScreenOutcome = Outcome<st::ScreenModel>;

/// The two worlds' calls, so that guarding and the Policy's fallback are written once.
pub trait WorldInput: Clone + Send + 'static {
    type Output: Send + 'static;
    /// One call on this thread.
    fn run(
        &self,
        host: &PluginHost,
        plugin: &LoadedPlugin,
        limits: CallLimits,
    ) -> PluginResult<(Self::Output, Usage)>;
    /// The input for the default plugin's fallback run: no rules, generic output.
    fn without_config(self) -> Self;
}

impl WorldInput for MapInput {
    type Output = Vec<wit::Block>;

    fn run(
        &self,
        host: &PluginHost,
        plugin: &LoadedPlugin,
        limits: CallLimits,
    ) -> PluginResult<(Self::Output, Usage)> {
        host.run_mapper(plugin, self, limits)
    }

    fn without_config(self) -> Self {
        MapInput {
            config: String::new(),
            ..self
        }
    }
}

impl WorldInput for st::PresentInput {
    type Output = st::ScreenModel;

    fn run(
        &self,
        host: &PluginHost,
        plugin: &LoadedPlugin,
        limits: CallLimits,
    ) -> PluginResult<(Self::Output, Usage)> {
        host.run_screen(plugin, self, limits)
    }

    fn without_config(self) -> Self {
        st::PresentInput {
            config: String::new(),
            ..self
        }
    }
}

/// An upload that passed every check.
pub struct Inspected {
    pub plugin: Arc<LoadedPlugin>,
    /// `None` when the compiled cache already had it.
    pub compile_ms: Option<f64>,
}

struct CallState {
    limiter: MemoryLimiter,
}

#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<Inner>,
}

struct Inner {
    engine: engine::PluginEngine,
    cache: cache::CompiledCache,
    config: PluginsConfig,
    loaded: Mutex<HashMap<String, Arc<LoadedPlugin>>>,
    breakers: breaker::Breakers,
    permits: Arc<Semaphore>,
    upload_permits: Arc<Semaphore>,
    /// Loaded on first use (or by `load_builtins`), so a host that only runs one file (the
    /// authors' runner) never compiles them.
    builtins: OnceLock<PluginResult<Builtins>>,
}

/// The built-in default plugins.
struct Builtins {
    mapper: Arc<LoadedPlugin>,
    screen: Arc<LoadedPlugin>,
}

pub fn digest_of(wasm: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(wasm)))
}

impl PluginHost {
    /// Builds the engine. The built-in plugins load on first use; a server calls
    /// `load_builtins` before it serves.
    pub fn new(config: &PluginsConfig, cache_dir: Option<PathBuf>) -> PluginResult<Self> {
        let engine = engine::PluginEngine::new(config)?;
        let cache = cache::CompiledCache::new(cache_dir);
        tracing::info!(allocator = ?engine.allocator, compat = %engine.compat_hash, "plugin engine ready");
        Ok(Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(config.max_concurrent_calls.max(1) as usize)),
                upload_permits: Arc::new(Semaphore::new(engine::UPLOAD_SLOTS as usize)),
                breakers: breaker::Breakers::new(
                    config.breaker_failures,
                    Duration::from_millis(config.breaker_cooldown_ms),
                ),
                loaded: Mutex::new(HashMap::new()),
                engine,
                cache,
                config: config.clone(),
                builtins: OnceLock::new(),
            }),
        })
    }

    /// Loads the built-in plugins now (compiled once, then from the cache): servers call it
    /// on a blocking thread before serving, so a broken build fails at start and the first
    /// answer does not wait for a compile.
    pub fn load_builtins(&self) -> PluginResult<()> {
        self.builtins().map(|_| ())
    }

    fn builtins(&self) -> PluginResult<&Builtins> {
        self.inner
            .builtins
            .get_or_init(|| {
                let loader = self.loader();
                Ok(Builtins {
                    mapper: Arc::new(loader.load_builtin(ops_plugin_artifacts::DEFAULT_MAPPER)?),
                    screen: Arc::new(loader.load_builtin(ops_plugin_artifacts::DEFAULT_SCREEN)?),
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn loader(&self) -> Loader<'_> {
        Loader {
            engine: &self.inner.engine,
            cache: &self.inner.cache,
            config: &self.inner.config,
        }
    }

    pub fn allocator(&self) -> PluginAllocator {
        self.inner.engine.allocator
    }

    pub fn config(&self) -> &PluginsConfig {
        &self.inner.config
    }

    pub fn default_mapper(&self) -> PluginResult<Arc<LoadedPlugin>> {
        Ok(self.builtins()?.mapper.clone())
    }

    pub fn default_screen(&self) -> PluginResult<Arc<LoadedPlugin>> {
        Ok(self.builtins()?.screen.clone())
    }

    /// Every check of an upload: size, a component, no imports, one of the worlds, a
    /// `describe` that answers within the default limits and a supported contract version.
    /// Compiles (or loads from the compiled cache) and keeps the result loaded. Blocking.
    pub fn inspect(&self, wasm: &[u8]) -> PluginResult<Inspected> {
        let (plugin, compile_ms) = self.loader().inspect(wasm, false)?;
        let plugin = Arc::new(plugin);
        self.lock_loaded()
            .insert(plugin.digest.clone(), plugin.clone());
        Ok(Inspected { plugin, compile_ms })
    }

    /// `inspect` on a blocking thread, within the pool's upload slots.
    pub async fn inspect_async(&self, wasm: Vec<u8>) -> PluginResult<Inspected> {
        let permit = self
            .inner
            .upload_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PluginError::Internal("plugin host is shutting down".into()))?;
        let host = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            host.inspect(&wasm)
        })
        .await
        .map_err(|e| PluginError::Internal(format!("plugin inspection task: {e}")))?
    }

    /// The loaded plugin of `digest`, fetched and compiled on first use.
    pub async fn load(
        &self,
        tenant: &str,
        digest: &str,
        blobs: &dyn PluginBlobs,
    ) -> PluginResult<Arc<LoadedPlugin>> {
        if let Some(plugin) = self.lock_loaded().get(digest) {
            return Ok(plugin.clone());
        }
        let wasm = blobs.fetch(tenant, digest).await?;
        if digest_of(&wasm) != digest {
            return Err(PluginError::Internal(format!(
                "stored bytes of plugin {digest} do not match their digest"
            )));
        }
        Ok(self.inspect_async(wasm).await?.plugin)
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LoadedPlugin>>> {
        self.inner.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a plugin: circuit breaker, a pool permit, a blocking thread, output checks.
    pub async fn call<I: WorldInput>(
        &self,
        plugin: Arc<LoadedPlugin>,
        input: I,
        limits: CallLimits,
    ) -> PluginResult<Outcome<I::Output>> {
        let label = plugin.label();
        let metrics = crate::metrics::get();
        if !plugin.builtin
            && let Err(refused) = self.inner.breakers.admit(&plugin.digest, &label)
        {
            metrics
                .plugin_calls
                .with_label_values(&[label.as_str(), refused.outcome()])
                .inc();
            return Err(refused);
        }
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PluginError::Internal("plugin host is shutting down".into()))?;
        let host = self.clone();
        let loaded = plugin.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            input.run(&host, &loaded, limits)
        })
        .await
        .map_err(|e| PluginError::Internal(format!("plugin call task: {e}")))?;
        if !plugin.builtin {
            self.inner
                .breakers
                .record(&plugin.digest, &label, result.as_ref().err());
        }
        let outcome = result.as_ref().err().map_or("ok", PluginError::outcome);
        metrics
            .plugin_calls
            .with_label_values(&[label.as_str(), outcome])
            .inc();
        let (output, usage) = result?;
        metrics
            .plugin_seconds
            .with_label_values(&[label.as_str()])
            .observe(usage.elapsed.as_secs_f64());
        let report = RunReport {
            plugin: plugin.label(),
            digest: plugin.digest.clone(),
            builtin: plugin.builtin,
            elapsed: usage.elapsed,
            peak_memory_bytes: usage.peak_memory_bytes,
            limits,
            fallback_reason: None,
        };
        Ok(Outcome { output, report })
    }

    /// One mapper call on this thread: instantiate, call, check. Also what the runner and the
    /// benchmarks measure.
    pub fn run_mapper(
        &self,
        plugin: &LoadedPlugin,
        input: &MapInput,
        limits: CallLimits,
    ) -> PluginResult<(Vec<wit::Block>, Usage)> {
        let Pre::Mapper(pre) = &plugin.pre else {
            return Err(wrong_world(plugin, PluginWorld::Mapper));
        };
        let mut store = new_store(&self.inner.engine.engine, limits);
        let started = Instant::now();
        let result = pre
            .instantiate(&mut store)
            .and_then(|p| p.ops_plugin_mapper().call_map(&mut store, input));
        let usage = Usage::of(&store, started);
        let blocks = settle(plugin, result, &store, limits)?;
        output::check_blocks(&blocks).map_err(|(path, message)| PluginError::MalformedOutput {
            plugin: plugin.label(),
            path,
            message,
        })?;
        Ok((blocks, usage))
    }

    /// Instantiation plus the smallest call (`describe`): what a call costs before any data
    /// moves. Used by the benchmarks to compare allocators.
    pub fn run_describe(&self, plugin: &LoadedPlugin) -> PluginResult<Usage> {
        let limits = CallLimits::resolve(&self.inner.config, None);
        let mut store = new_store(&self.inner.engine.engine, limits);
        let started = Instant::now();
        let result = plugin.pre.describe(&mut store);
        let usage = Usage::of(&store, started);
        result.map_err(|e| classify(plugin.label(), &e, &store, limits))?;
        Ok(usage)
    }

    pub fn run_screen(
        &self,
        plugin: &LoadedPlugin,
        input: &st::PresentInput,
        limits: CallLimits,
    ) -> PluginResult<(st::ScreenModel, Usage)> {
        let Pre::Screen(pre) = &plugin.pre else {
            return Err(wrong_world(plugin, PluginWorld::Screen));
        };
        let mut store = new_store(&self.inner.engine.engine, limits);
        let started = Instant::now();
        let result = pre
            .instantiate(&mut store)
            .and_then(|p| p.ops_plugin_screen().call_present(&mut store, input));
        let usage = Usage::of(&store, started);
        let screen = settle(plugin, result, &store, limits)?;
        output::check_screen(&screen, &input.blocks).map_err(|(path, message)| {
            PluginError::MalformedOutput {
                plugin: plugin.label(),
                path,
                message,
            }
        })?;
        Ok((screen, usage))
    }

    /// COMPOSE: the Mapping asset's plugin (or the default mapper with its declarative config)
    /// on the tool results; on failure the Policy decides between failing and the default.
    pub async fn compose(
        &self,
        tenant: &str,
        spec: Option<&MappingSpec>,
        question: &str,
        results: Vec<wit::ToolResult>,
        limits: CallLimits,
        blobs: &dyn PluginBlobs,
    ) -> PluginResult<MapOutcome> {
        let builtin = self.default_mapper()?;
        let (chosen, config) = match spec.and_then(|s| s.implementation.as_ref()) {
            None => (Ok(builtin.clone()), String::new()),
            Some(mapping_spec::Implementation::Declarative(d)) => {
                (Ok(builtin.clone()), convert::mapping_config_json(d))
            }
            Some(mapping_spec::Implementation::Plugin(r)) => (
                self.load(tenant, &r.digest, blobs).await,
                convert::plugin_config_json(r),
            ),
        };
        let input = MapInput {
            question: question.to_owned(),
            results,
            config,
        };
        self.with_fallback(chosen, builtin, input, limits).await
    }

    /// PRESENT: the Screen asset's plugin (or the default screen) on the answer blocks.
    pub async fn present(
        &self,
        tenant: &str,
        spec: Option<&ScreenSpec>,
        blocks: Vec<wit::Block>,
        limits: CallLimits,
        blobs: &dyn PluginBlobs,
    ) -> PluginResult<ScreenOutcome> {
        let builtin = self.default_screen()?;
        let (chosen, config) = match spec.and_then(|s| s.implementation.as_ref()) {
            None => (Ok(builtin.clone()), String::new()),
            Some(screen_spec::Implementation::Declarative(d)) => {
                (Ok(builtin.clone()), convert::screen_config_json(d))
            }
            Some(screen_spec::Implementation::Plugin(r)) => (
                self.load(tenant, &r.digest, blobs).await,
                convert::plugin_config_json(r),
            ),
        };
        let input = st::PresentInput { blocks, config };
        self.with_fallback(chosen, builtin, input, limits).await
    }

    /// Calls the chosen plugin; if it (or loading it) fails and the Policy says so, runs the
    /// built-in `default` without config instead and records why.
    async fn with_fallback<I: WorldInput>(
        &self,
        chosen: PluginResult<Arc<LoadedPlugin>>,
        default: Arc<LoadedPlugin>,
        input: I,
        limits: CallLimits,
    ) -> PluginResult<Outcome<I::Output>> {
        let fallback = limits.on_failure == PluginFailureMode::FallbackToDefault;
        let failure = match chosen {
            Ok(plugin) if plugin.builtin || !fallback => {
                return self.call(plugin, input, limits).await;
            }
            Ok(plugin) => match self.call(plugin, input.clone(), limits).await {
                Ok(outcome) => return Ok(outcome),
                Err(e) => e,
            },
            Err(e) if fallback => e,
            Err(e) => return Err(e),
        };
        tracing::warn!(error = %failure, plugin = %default.label(), "plugin failed; the policy falls back to the built-in plugin");
        let mut outcome = self.call(default, input.without_config(), limits).await?;
        outcome.report.fallback_reason = Some(failure.to_string());
        Ok(outcome)
    }
}

/// Time and peak memory of one call.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub elapsed: Duration,
    pub peak_memory_bytes: u64,
}

impl Usage {
    fn of(store: &Store<CallState>, started: Instant) -> Self {
        Self {
            elapsed: started.elapsed(),
            peak_memory_bytes: store.data().limiter.peak as u64,
        }
    }
}

fn new_store(engine: &wasmtime::Engine, limits: CallLimits) -> Store<CallState> {
    let mut store = Store::new(
        engine,
        CallState {
            limiter: MemoryLimiter::new(limits.memory_bytes),
        },
    );
    store.limiter(|state| &mut state.limiter);
    // One tick per millisecond of budget, plus the tick already under way.
    store.set_epoch_deadline(u64::from(limits.cpu_budget_ms) + 1);
    store.epoch_deadline_trap();
    store
}

fn wrong_world(plugin: &LoadedPlugin, expected: PluginWorld) -> PluginError {
    PluginError::InvalidPlugin {
        field: "plugin.digest",
        message: format!(
            "plugin {} implements {}, not {}",
            plugin.label(),
            world_name(plugin.world),
            world_name(expected)
        ),
    }
}

pub fn world_name(world: PluginWorld) -> &'static str {
    match world {
        PluginWorld::Mapper => "ops:plugin/mapper-plugin",
        PluginWorld::Screen => "ops:plugin/screen-plugin",
        PluginWorld::Unspecified => "no known world",
    }
}

/// A call's result as the host reports it: the plugin's own error is a refusal; a trap is
/// classified by what stopped it.
fn settle<T>(
    plugin: &LoadedPlugin,
    result: wasmtime::Result<Result<T, wit::PluginError>>,
    store: &Store<CallState>,
    limits: CallLimits,
) -> PluginResult<T> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(refusal)) => Err(PluginError::Refused {
            plugin: plugin.label(),
            code: refusal.code,
            message: refusal.message,
        }),
        Err(error) => Err(classify(plugin.label(), &error, store, limits)),
    }
}

fn classify(
    plugin: String,
    error: &wasmtime::Error,
    store: &Store<CallState>,
    limits: CallLimits,
) -> PluginError {
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            return PluginError::DeadlineExceeded {
                plugin,
                budget_ms: limits.cpu_budget_ms,
            };
        }
        Some(Trap::StackOverflow) => {
            return PluginError::StackExhausted {
                plugin,
                limit_bytes: limits.stack_bytes,
            };
        }
        _ => {}
    }
    if store.data().limiter.exceeded {
        return PluginError::MemoryExhausted {
            plugin,
            limit_bytes: limits.memory_bytes,
        };
    }
    let backtrace = error
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|b| b.to_string())
        .unwrap_or_default();
    let message = match error.downcast_ref::<Trap>() {
        Some(Trap::UnreachableCodeReached) => {
            "wasm `unreachable` executed (a Rust plugin panicked or aborted)".to_owned()
        }
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    PluginError::Trapped {
        plugin,
        message,
        backtrace,
    }
}
