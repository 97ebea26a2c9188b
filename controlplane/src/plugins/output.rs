//! Checks of what a plugin returns. The canonical ABI already guarantees well-typed values;
//! these are the invariants the types cannot express. A violation names its path.

use super::bindings::{screen_types as st, wit};
use super::convert::wit_block_kind;

/// Largest answer a plugin may produce; more is a runaway plugin, not an answer.
pub const MAX_BLOCKS: usize = 256;

pub type Violation = (String, String);

pub fn check_blocks(blocks: &[wit::Block]) -> Result<(), Violation> {
    if blocks.len() > MAX_BLOCKS {
        return Err((
            "blocks".into(),
            format!("{} blocks, at most {MAX_BLOCKS}", blocks.len()),
        ));
    }
    for (i, block) in blocks.iter().enumerate() {
        let at = |field: &str| format!("blocks[{i}].{field}");
        match &block.content {
            wit::BlockContent::Table(t) => {
                for (r, row) in t.rows.iter().enumerate() {
                    if row.len() != t.columns.len() {
                        return Err((
                            at(&format!("table.rows[{r}]")),
                            format!(
                                "{} cells, expected {} (one per column)",
                                row.len(),
                                t.columns.len()
                            ),
                        ));
                    }
                }
                for (r, row) in t.rows.iter().enumerate() {
                    if let Some(c) = row
                        .iter()
                        .position(|v| matches!(v, wit::Value::Float(f) if !f.is_finite()))
                    {
                        return Err((
                            at(&format!("table.rows[{r}][{c}]")),
                            "not a finite number".into(),
                        ));
                    }
                }
            }
            wit::BlockContent::Number(n) if !n.value.is_finite() => {
                return Err((
                    at("number.value"),
                    format!("{} is not a finite number", n.value),
                ));
            }
            wit::BlockContent::Chart(c) => {
                for (s, series) in c.series.iter().enumerate() {
                    if let Some(p) = series.points.iter().position(|p| !p.value.is_finite()) {
                        return Err((
                            at(&format!("chart.series[{s}].points[{p}].value")),
                            "not a finite number".into(),
                        ));
                    }
                }
            }
            wit::BlockContent::Network(g) => {
                let known = |id: &str| g.nodes.iter().any(|n| n.id == id);
                for (e, edge) in g.edges.iter().enumerate() {
                    for end in [&edge.source, &edge.target] {
                        if !known(end) {
                            return Err((
                                at(&format!("network.edges[{e}]")),
                                format!("node `{end}` is not among the nodes"),
                            ));
                        }
                    }
                }
                if let Some(p) = g.path.iter().position(|id| !known(id)) {
                    return Err((
                        at(&format!("network.path[{p}]")),
                        "not among the nodes".into(),
                    ));
                }
            }
            wit::BlockContent::References(refs) => {
                for (r, reference) in refs.iter().enumerate() {
                    if !reference.payload.is_empty()
                        && serde_json::from_str::<serde_json::Value>(&reference.payload).is_err()
                    {
                        return Err((
                            at(&format!("references[{r}].payload")),
                            "not JSON text".into(),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

pub fn check_screen(model: &st::ScreenModel, blocks: &[wit::Block]) -> Result<(), Violation> {
    for (i, component) in model.components.iter().enumerate() {
        let at = |field: &str| format!("components[{i}].{field}");
        let Some(block) = blocks.get(component.block_index as usize) else {
            return Err((
                at("block_index"),
                format!(
                    "{} but there are {} blocks",
                    component.block_index,
                    blocks.len()
                ),
            ));
        };
        if component.block_type != wit_block_kind(block) {
            return Err((
                at("block_type"),
                format!(
                    "`{}` but block {} is a {}",
                    component.block_type,
                    component.block_index,
                    wit_block_kind(block)
                ),
            ));
        }
    }
    for (name, text) in std::iter::once(("state", &model.state)).chain(
        model
            .actions
            .iter()
            .map(|a| ("actions.inputs_schema", &a.inputs_schema)),
    ) {
        if !text.is_empty() && serde_json::from_str::<serde_json::Value>(text).is_err() {
            return Err((name.into(), "not JSON text".into()));
        }
    }
    Ok(())
}
