//! The default mapper: turns tool results into answer blocks as a declarative Mapping says.
//!
//! Config (the user guides' format; camelCase keys are accepted too):
//! ```json
//! {"version": "1.0", "mappings": [
//!   {"source_type": "ci_tool", "target_block": "table",
//!    "transform": {"headers": ["Item", "Value"],
//!                  "row_mapping": [{"label": "CI Code", "field": "ci_code"}]}},
//!   {"source_type": "ci_tool", "target_block": "text",
//!    "template": "{{ci_name}} ({{ci_code}}) is {{status}}."},
//!   {"source_type": "metric_tool", "target_block": "number",
//!    "field_mapping": {"label": "metric_name", "value": "avg_value", "unit": "percent"}}]}
//! ```
//! A result no rule matches is still shown: rows as a table, a graph as a network, scalar fields
//! as numbers. References of all results end the answer unless a rule placed them.

mod config;
mod rules;

use ops_plugin_sdk::prelude::*;

pub use config::{MappingConfig, MappingRule};
pub use rules::map_results;

struct DefaultMapper;

impl Mapper for DefaultMapper {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "default-mapper",
            env!("CARGO_PKG_VERSION"),
            "declarative Mapping rules: table, text, markdown, number, chart, network, references",
        )
    }

    fn map(input: MapInput) -> Result<Vec<Block>, PluginError> {
        let config = MappingConfig::parse(&input.config)?;
        map_results(&config, &input.question, input.results)
    }
}

ops_plugin_sdk::export_mapper!(DefaultMapper);
