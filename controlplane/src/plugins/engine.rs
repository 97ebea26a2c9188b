//! The one wasmtime `Engine`: component model, epoch interruption, a stack limit, and the
//! pooling allocator sized to the host's concurrency (on-demand when pooling is refused).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::error::{PluginError, PluginResult};
use crate::config::{PluginAllocator, PluginsConfig};

/// One epoch tick; CPU budgets are counted in ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Core instances and memories a component may use: Rust guests need one of each, plus the
/// adapter shims wit-component may add.
const CORE_INSTANCES_PER_CALL: u32 = 4;
const MEMORIES_PER_CALL: u32 = 2;
const TABLES_PER_CALL: u32 = 4;
/// Slots beyond `max_concurrent_calls` for uploads, whose checks instantiate the plugin once.
pub const UPLOAD_SLOTS: u32 = 2;

pub struct PluginEngine {
    pub engine: Engine,
    /// The allocator actually in use.
    pub allocator: PluginAllocator,
    /// Identifies compiled artifacts this engine can load (wasmtime version, target, flags).
    pub compat_hash: String,
    _ticker: EpochTicker,
}

impl PluginEngine {
    pub fn new(config: &PluginsConfig) -> PluginResult<Self> {
        let (engine, allocator) = match config.allocator {
            PluginAllocator::Pooling => match Engine::new(&engine_config(config, true)) {
                Ok(engine) => (engine, PluginAllocator::Pooling),
                Err(e) => {
                    tracing::warn!(error = %e, "pooling allocator refused; using on-demand allocation");
                    (on_demand(config)?, PluginAllocator::OnDemand)
                }
            },
            PluginAllocator::OnDemand => (on_demand(config)?, PluginAllocator::OnDemand),
        };
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat_hash = format!("{:016x}", hasher.finish());
        let ticker = EpochTicker::start(engine.clone());
        Ok(Self {
            engine,
            allocator,
            compat_hash,
            _ticker: ticker,
        })
    }
}

fn on_demand(config: &PluginsConfig) -> PluginResult<Engine> {
    Engine::new(&engine_config(config, false))
        .map_err(|e| PluginError::Internal(format!("create wasm engine: {e:#}")))
}

fn engine_config(config: &PluginsConfig, pooling: bool) -> wasmtime::Config {
    let mut c = wasmtime::Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.max_wasm_stack(config.max_stack_bytes);
    c.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
    if pooling {
        let slots = config.max_concurrent_calls.max(1) + UPLOAD_SLOTS;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .total_core_instances(slots * CORE_INSTANCES_PER_CALL)
            .total_memories(slots * MEMORIES_PER_CALL)
            .total_tables(slots * TABLES_PER_CALL)
            .max_memories_per_component(MEMORIES_PER_CALL)
            .max_tables_per_component(TABLES_PER_CALL)
            .max_memory_size(usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX));
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

/// Advances the engine's epoch every tick so running plugins see their deadline.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("ops-plugin-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| tracing::error!(error = %e, "cannot start the plugin epoch ticker"))
            .ok();
        Self { stop, handle }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
