//! Per-call sandbox limits: the Policy's `plugin_limits` clamped to the host's ceilings, and
//! the store's resource limiter that enforces and measures memory.

use ops_proto::v1::{PluginCallLimits, PluginFailureMode, PluginLimits};

use crate::config::PluginsConfig;

/// Limits of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    pub memory_bytes: u64,
    pub cpu_budget_ms: u32,
    pub stack_bytes: usize,
    pub on_failure: PluginFailureMode,
}

impl CallLimits {
    /// The Policy's limits (absent or zero fields take the host defaults), never above the
    /// host's ceilings. Without a Policy a failing plugin fails the call.
    pub fn resolve(config: &PluginsConfig, policy: Option<&PluginLimits>) -> Self {
        let memory = policy.map_or(0, |p| p.memory_limit_bytes);
        let cpu = policy.map_or(0, |p| p.cpu_budget_ms);
        let on_failure = policy
            .and_then(|p| PluginFailureMode::try_from(p.on_failure).ok())
            .filter(|m| *m != PluginFailureMode::Unspecified)
            .unwrap_or(PluginFailureMode::Fail);
        Self {
            memory_bytes: if memory == 0 {
                config.default_memory_bytes
            } else {
                memory
            }
            .min(config.max_memory_bytes),
            cpu_budget_ms: if cpu == 0 {
                config.default_cpu_budget_ms
            } else {
                cpu
            }
            .max(1),
            stack_bytes: config.max_stack_bytes,
            on_failure,
        }
    }

    pub fn to_proto(self) -> PluginCallLimits {
        PluginCallLimits {
            memory_limit_bytes: self.memory_bytes,
            cpu_budget_ms: self.cpu_budget_ms,
            stack_limit_bytes: self.stack_bytes as u64,
        }
    }
}

/// The store's limiter: refuses memory growth past the cap, remembers that it did (so the
/// trap that follows is reported as memory exhaustion) and records the peak.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: usize,
    pub peak: usize,
    pub exceeded: bool,
}

/// Tables hold function references; Rust guests need a few hundred entries.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl MemoryLimiter {
    pub fn new(limit_bytes: u64) -> Self {
        Self {
            limit: usize::try_from(limit_bytes).unwrap_or(usize::MAX),
            peak: 0,
            exceeded: false,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }

    fn tables(&self) -> usize {
        4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_limits_are_clamped_to_the_host_ceiling_and_zero_means_default() {
        let config = PluginsConfig::default();
        let asked = PluginLimits {
            memory_limit_bytes: 4 << 30,
            cpu_budget_ms: 0,
            on_failure: PluginFailureMode::FallbackToDefault as i32,
        };
        let limits = CallLimits::resolve(&config, Some(&asked));
        assert_eq!(limits.memory_bytes, config.max_memory_bytes);
        assert_eq!(limits.cpu_budget_ms, config.default_cpu_budget_ms);
        assert_eq!(limits.on_failure, PluginFailureMode::FallbackToDefault);
        assert_eq!(
            CallLimits::resolve(&config, None).on_failure,
            PluginFailureMode::Fail
        );
    }
}
