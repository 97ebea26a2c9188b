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
            wit::BlockContent::Table(t) => check_row_set(&t.rows)
                .map_err(|(path, message)| (at(&format!("table.rows{path}")), message))?,
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

/// Every column holds `len` cells, a null mask is empty or one per cell, packed texts cut
/// their data at characters in order, and numbers are finite. The path is relative to the set.
pub fn check_row_set(rows: &wit::RowSet) -> Result<(), Violation> {
    let len = rows.len as usize;
    for (c, column) in rows.columns.iter().enumerate() {
        let at = |field: &str| format!(".columns[{c}]{field}");
        let cells = column_len(&column.data);
        if cells != len {
            return Err((
                at(""),
                format!("{cells} cells, expected {len} (the row count)"),
            ));
        }
        if !column.nulls.is_empty() && column.nulls.len() != len {
            return Err((
                at(".nulls"),
                format!("{} flags, expected none or {len}", column.nulls.len()),
            ));
        }
        match &column.data {
            wit::ColumnData::Floats(floats) => {
                if let Some(r) = floats.iter().position(|f| !f.is_finite()) {
                    return Err((at(&format!("[{r}]")), "not a finite number".into()));
                }
            }
            wit::ColumnData::Values(values) => {
                if let Some(r) = values
                    .iter()
                    .position(|v| matches!(v, wit::Value::Float(f) if !f.is_finite()))
                {
                    return Err((at(&format!("[{r}]")), "not a finite number".into()));
                }
            }
            wit::ColumnData::Decimals(t)
            | wit::ColumnData::Texts(t)
            | wit::ColumnData::Timestamps(t)
            | wit::ColumnData::Json(t) => {
                let mut start = 0usize;
                for (r, end) in t.ends.iter().enumerate() {
                    let end = *end as usize;
                    if end < start || !t.data.is_char_boundary(end) {
                        return Err((
                            at(&format!(".ends[{r}]")),
                            format!(
                                "offset {end} does not end a text after offset {start} in {} bytes",
                                t.data.len()
                            ),
                        ));
                    }
                    start = end;
                }
            }
            wit::ColumnData::Booleans(_) | wit::ColumnData::Integers(_) => {}
        }
    }
    Ok(())
}

fn column_len(data: &wit::ColumnData) -> usize {
    match data {
        wit::ColumnData::Booleans(v) => v.len(),
        wit::ColumnData::Integers(v) => v.len(),
        wit::ColumnData::Floats(v) => v.len(),
        wit::ColumnData::Decimals(t)
        | wit::ColumnData::Texts(t)
        | wit::ColumnData::Timestamps(t)
        | wit::ColumnData::Json(t) => t.ends.len(),
        wit::ColumnData::Values(v) => v.len(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(data: &str, ends: Vec<u32>, nulls: Vec<bool>) -> wit::RowSet {
        wit::RowSet {
            len: u32::try_from(ends.len()).unwrap_or_default(),
            columns: vec![wit::Column {
                name: "t".into(),
                data: wit::ColumnData::Texts(wit::PackedTexts {
                    data: data.into(),
                    ends,
                }),
                nulls,
            }],
        }
    }

    #[test]
    fn row_sets_are_checked_cell_by_cell() {
        assert_eq!(check_row_set(&texts("ab용", vec![1, 2, 5], vec![])), Ok(()));
        let cases = [
            (texts("ab", vec![2, 1], vec![]), ".columns[0].ends[1]"),
            (texts("용", vec![1], vec![]), ".columns[0].ends[0]"),
            (texts("ab", vec![9], vec![]), ".columns[0].ends[0]"),
            (texts("ab", vec![1, 2], vec![true]), ".columns[0].nulls"),
            (
                wit::RowSet {
                    len: 1,
                    columns: vec![wit::Column {
                        name: "f".into(),
                        data: wit::ColumnData::Floats(vec![f64::NAN]),
                        nulls: vec![],
                    }],
                },
                ".columns[0][0]",
            ),
        ];
        for (set, path) in cases {
            assert_eq!(
                check_row_set(&set).err().map(|e| e.0).as_deref(),
                Some(path)
            );
        }
    }
}
