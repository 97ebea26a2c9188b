//! The declarative Mapping config.

use std::collections::BTreeMap;

use ops_plugin_sdk::types::PluginError;
use ops_plugin_sdk::{BLOCK_KINDS, block_kind};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub mappings: Vec<MappingRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingRule {
    /// Tool whose results the rule maps; empty or "*" matches every tool.
    #[serde(default, alias = "sourceType")]
    pub source_type: String,
    #[serde(alias = "targetBlock")]
    pub target_block: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub template: String,
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default, alias = "rowMapping")]
    pub row_mapping: Vec<RowMapping>,
    /// Output field -> input field (or a literal when the input has no such field).
    #[serde(default, alias = "fieldMapping")]
    pub field_mapping: BTreeMap<String, String>,
    /// The user guides nest `headers` and `row_mapping` under `transform`.
    #[serde(default)]
    pub transform: Option<Transform>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default, alias = "rowMapping")]
    pub row_mapping: Vec<RowMapping>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowMapping {
    pub label: String,
    pub field: String,
}

impl MappingConfig {
    /// Parses and checks the config; an empty string means "no rules".
    pub fn parse(json: &str) -> Result<Self, PluginError> {
        if json.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut config: MappingConfig = serde_json::from_str(json)
            .map_err(|e| PluginError::invalid_config(format!("mapping config: {e}")))?;
        for (index, rule) in config.mappings.iter_mut().enumerate() {
            rule.normalise(index)?;
        }
        Ok(config)
    }
}

impl MappingRule {
    fn normalise(&mut self, index: usize) -> Result<(), PluginError> {
        let Some(kind) = block_kind(&self.target_block) else {
            return Err(PluginError::invalid_config(format!(
                "mappings[{index}].target_block: `{}` is not one of {}",
                self.target_block,
                BLOCK_KINDS.join(", ")
            )));
        };
        self.target_block = kind.to_owned();
        if let Some(transform) = self.transform.take() {
            if self.headers.is_empty() {
                self.headers = transform.headers;
            }
            if self.row_mapping.is_empty() {
                self.row_mapping = transform.row_mapping;
            }
        }
        if matches!(self.target_block.as_str(), "text" | "markdown") && self.template.is_empty() {
            return Err(PluginError::invalid_config(format!(
                "mappings[{index}].template: a {} rule needs a `{{{{field}}}}` template",
                self.target_block
            )));
        }
        if self.target_block == "number" && !self.field_mapping.contains_key("value") {
            return Err(PluginError::invalid_config(format!(
                "mappings[{index}].field_mapping.value: a number rule names the field holding the value"
            )));
        }
        Ok(())
    }

    pub fn matches(&self, tool: &str) -> bool {
        self.source_type.is_empty() || self.source_type == "*" || self.source_type == tool
    }
}
