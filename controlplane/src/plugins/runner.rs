//! The authors' local runner (`opsctl plugin run`): the production engine configuration and
//! every upload check on a `.wasm` file, one call on a JSON input, and what it cost.

use std::path::Path;
use std::time::Instant;

use ops_proto::v1::{Block, PluginWorld, ToolResult};
use serde::Deserialize;

use super::bindings::{MapInput, screen_types as st};
use super::{CallLimits, PluginError, PluginHost, PluginResult, convert};
use crate::config::PluginsConfig;

/// The input file: tool results for a mapper, blocks for a screen, and the plugin's config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunnerInput {
    #[serde(default)]
    question: String,
    #[serde(default)]
    results: Vec<ToolResult>,
    #[serde(default)]
    blocks: Vec<Block>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

#[derive(Debug)]
pub struct RunnerOutput {
    pub plugin: String,
    pub world: PluginWorld,
    pub digest: String,
    /// Blocks (mapper) or the screen model (screen), as the API returns them.
    pub output: serde_json::Value,
    pub compile_ms: f64,
    pub call_ms: f64,
    pub peak_memory_bytes: u64,
    pub limits: CallLimits,
}

pub fn run_file(config: &PluginsConfig, wasm: &Path, input: &Path) -> PluginResult<RunnerOutput> {
    let read = |path: &Path| {
        std::fs::read(path)
            .map_err(|e| PluginError::Internal(format!("read {}: {e}", path.display())))
    };
    let bytes = read(wasm)?;
    let input: RunnerInput =
        serde_json::from_slice(&read(input)?).map_err(|e| PluginError::InvalidPlugin {
            field: "input",
            message: format!("{}: {e}", input.display()),
        })?;
    let host = PluginHost::new(config, None)?;
    let started = Instant::now();
    let plugin = host.inspect(&bytes)?.plugin;
    let compile_ms = started.elapsed().as_secs_f64() * 1e3;
    let limits = CallLimits::resolve(config, None);
    let plugin_config = input.config.map(|c| c.to_string()).unwrap_or_default();
    let to_json = |v: serde_json::Result<serde_json::Value>| {
        v.map_err(|e| PluginError::Internal(format!("encode output: {e}")))
    };
    let (output, usage) = match plugin.world {
        PluginWorld::Screen => {
            let blocks = input
                .blocks
                .iter()
                .filter_map(convert::block_from_pb)
                .collect();
            let input = st::PresentInput {
                blocks,
                config: plugin_config,
            };
            let (model, usage) = host.run_screen(&plugin, &input, limits)?;
            (
                to_json(serde_json::to_value(convert::screen_to_pb(&model)))?,
                usage,
            )
        }
        _ => {
            let results = input
                .results
                .iter()
                .map(convert::tool_result_from_pb)
                .collect();
            let input = MapInput {
                question: input.question,
                results,
                config: plugin_config,
            };
            let (blocks, usage) = host.run_mapper(&plugin, &input, limits)?;
            let blocks: Vec<Block> = blocks.iter().map(convert::block_to_pb).collect();
            (to_json(serde_json::to_value(blocks))?, usage)
        }
    };
    Ok(RunnerOutput {
        plugin: plugin.label(),
        world: plugin.world,
        digest: plugin.digest.clone(),
        output,
        compile_ms,
        call_ms: usage.elapsed.as_secs_f64() * 1e3,
        peak_memory_bytes: usage.peak_memory_bytes,
        limits,
    })
}
