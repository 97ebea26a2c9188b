//! The default screen: lays answer blocks out as a declarative Screen config says.
//!
//! Config (the user guides' format; camelCase keys are accepted too):
//! ```json
//! {"layout": "vertical", "components": [
//!   {"type": "text", "style": {"fontSize": "large"}},
//!   {"type": "table", "pagination": true, "pageSize": 20},
//!   {"type": "references", "collapsible": true}]}
//! ```
//! Every block gets one component, in block order, styled by the config entry of its type.
//! Paginated tables get their page count, truncated tables a `load_more_rows` action (run by OpsService.UiAction).

use std::collections::BTreeMap;

use ops_plugin_sdk::prelude::*;
use serde::Deserialize;

const DEFAULT_PAGE_SIZE: u32 = 20;
/// The action that pages a truncated table (OpsService.UiAction `load_more_rows`).
const LOAD_MORE: &str = "load_more_rows";
const DEFAULT_GRID_COLUMNS: u32 = 2;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenConfig {
    #[serde(default)]
    pub layout: String,
    #[serde(default, alias = "gridColumns")]
    pub grid_columns: u32,
    #[serde(default)]
    pub components: Vec<ComponentConfig>,
    #[serde(default)]
    pub actions: Vec<ActionConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    #[serde(rename = "type")]
    pub block_type: String,
    #[serde(default)]
    pub style: BTreeMap<String, String>,
    #[serde(default)]
    pub pagination: bool,
    #[serde(default, alias = "pageSize")]
    pub page_size: u32,
    #[serde(default, alias = "defaultHeight")]
    pub default_height: u32,
    #[serde(default)]
    pub responsive: bool,
    #[serde(default)]
    pub collapsible: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    pub id: String,
    #[serde(default)]
    pub label: String,
    #[serde(default, alias = "inputsSchema")]
    pub inputs_schema: Option<serde_json::Value>,
}

impl ScreenConfig {
    pub fn parse(json: &str) -> Result<Self, PluginError> {
        if json.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut config: ScreenConfig = serde_json::from_str(json)
            .map_err(|e| PluginError::invalid_config(format!("screen config: {e}")))?;
        for component in &mut config.components {
            // An unknown kind styles nothing; it stays as written.
            if let Some(kind) = block_kind(&component.block_type) {
                component.block_type = kind.to_owned();
            }
        }
        config.layout = config.layout.trim().to_ascii_lowercase();
        let layout = config
            .layout
            .strip_prefix("screen_layout_")
            .unwrap_or(&config.layout);
        config.layout = layout.to_owned();
        if !matches!(
            config.layout.as_str(),
            "" | "unspecified" | "vertical" | "grid"
        ) {
            return Err(PluginError::invalid_config(format!(
                "layout: `{}` is not `vertical` or `grid`",
                config.layout
            )));
        }
        Ok(config)
    }
}

/// Lays the blocks out.
pub fn present(config: &ScreenConfig, blocks: &[Block]) -> ScreenModel {
    let layout = if config.layout == "grid" {
        Layout::Grid
    } else {
        Layout::Vertical
    };
    let grid_columns = match layout {
        Layout::Grid if config.grid_columns == 0 => DEFAULT_GRID_COLUMNS,
        Layout::Grid => config.grid_columns,
        Layout::Vertical => 1,
    };
    let mut actions: Vec<Action> = config
        .actions
        .iter()
        .map(|a| Action {
            id: a.id.clone(),
            label: a.label.clone(),
            inputs_schema: a
                .inputs_schema
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default(),
        })
        .collect();
    let mut pages = serde_json::Map::new();
    let mut components = Vec::with_capacity(blocks.len());
    for (index, block) in blocks.iter().enumerate() {
        let kind = block.kind();
        let configured = config.components.iter().find(|c| c.block_type == kind);
        let rows = match &block.content {
            BlockContent::Table(table) => Some((table.rows.len(), table.truncated)),
            _ => None,
        };
        let pagination = configured.is_some_and(|c| c.pagination) && rows.is_some();
        let page_size = match configured {
            Some(c) if pagination && c.page_size > 0 => c.page_size,
            _ if pagination => DEFAULT_PAGE_SIZE,
            _ => 0,
        };
        let total_pages = match rows {
            Some((count, _)) if page_size > 0 => u32::try_from(count.div_ceil(page_size as usize))
                .unwrap_or(u32::MAX)
                .max(1),
            _ => 0,
        };
        if pagination {
            pages.insert(index.to_string(), serde_json::json!(1));
        }
        if let Some((_, true)) = rows
            && !actions.iter().any(|a| a.id == LOAD_MORE)
        {
            // Runs as OpsService.UiAction on the answer's trace: the next rows of the list.
            actions.push(Action {
                id: LOAD_MORE.into(),
                label: "Load more rows".into(),
                inputs_schema: r#"{"type":"object","properties":{"offset":{"type":"integer","minimum":0},"limit":{"type":"integer","minimum":1}},"required":["offset"]}"#.into(),
            });
        }
        components.push(Component {
            block_index: u32::try_from(index).unwrap_or(u32::MAX),
            block_type: kind.to_owned(),
            style: configured
                .map(|c| {
                    c.style
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            pagination,
            page_size,
            total_pages,
            default_height: configured.map_or(0, |c| c.default_height),
            responsive: configured.is_some_and(|c| c.responsive),
            collapsible: configured.is_some_and(|c| c.collapsible),
        });
    }
    let state = if pages.is_empty() {
        String::new()
    } else {
        serde_json::json!({ "page": pages }).to_string()
    };
    ScreenModel {
        layout,
        grid_columns,
        components,
        actions,
        state,
    }
}

struct DefaultScreen;

impl Screen for DefaultScreen {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "default-screen",
            env!("CARGO_PKG_VERSION"),
            "declarative Screen: vertical or grid layout, styles per block type, pagination",
        )
    }

    fn present(input: PresentInput) -> Result<ScreenModel, PluginError> {
        let config = ScreenConfig::parse(&input.config)?;
        Ok(present(&config, &input.blocks))
    }
}

ops_plugin_sdk::export_screen!(DefaultScreen);

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: usize, truncated: bool) -> Block {
        let numbers = (0..rows as i64).collect();
        let mut block = Block::table(
            "t",
            RowSet::from_columns(vec![Column::new("n", ColumnData::Integers(numbers))]),
        );
        if let BlockContent::Table(t) = &mut block.content {
            t.truncated = truncated;
        }
        block
    }

    #[test]
    fn tables_paginate_and_truncation_offers_load_more() -> Result<(), PluginError> {
        let config = ScreenConfig::parse(
            r#"{"layout":"grid","components":[{"type":"table","pagination":true,"pageSize":20},
                {"type":"text","style":{"fontSize":"large"}}]}"#,
        )?;
        let model = present(&config, &[Block::text("", "hi"), table(45, true)]);
        assert!(matches!(model.layout, Layout::Grid));
        assert_eq!(model.grid_columns, 2);
        assert_eq!(
            model.components[0].style,
            vec![("fontSize".to_owned(), "large".to_owned())]
        );
        assert_eq!(
            (
                model.components[1].page_size,
                model.components[1].total_pages
            ),
            (20, 3)
        );
        assert!(model.actions.iter().any(|a| a.id == "load_more_rows"));
        assert!(model.state.contains("\"1\":1"));
        Ok(())
    }

    #[test]
    fn unknown_layout_is_a_config_error() {
        let error = ScreenConfig::parse(r#"{"layout":"carousel"}"#).err();
        assert_eq!(error.map(|e| e.code), Some("invalid_config".to_owned()));
    }
}
