//! Between the API's protobuf messages (JSON-valued cells) and the plugin contract's typed
//! records.

use std::collections::BTreeMap;

use ops_proto::v1::{
    Block, MarkdownBlock, NetworkBlock, NetworkEdge, NetworkNode, NumberBlock, Reference,
    ReferencesBlock, ScreenAction, ScreenComponent, ScreenLayout, ScreenModel, Series, SeriesBlock,
    SeriesPoint, TableBlock, TextBlock, ToolResult, block,
};
use pbjson_types::{ListValue, Struct, Value as PbValue, value::Kind};

use super::bindings::{screen_types as st, wit};

// ── values ──────────────────────────────────────────────────────────────────────────────

/// JSON numbers without a fraction become integers, so counts stay counts.
pub fn value_from_pb(value: &PbValue) -> wit::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => wit::Value::Null,
        Some(Kind::BoolValue(b)) => wit::Value::Boolean(*b),
        Some(Kind::NumberValue(n)) if is_integral(*n) => wit::Value::Integer(*n as i64),
        Some(Kind::NumberValue(n)) => wit::Value::Float(*n),
        Some(Kind::StringValue(s)) => wit::Value::Text(s.clone()),
        Some(Kind::ListValue(_)) | Some(Kind::StructValue(_)) => {
            wit::Value::Json(serde_json::to_string(value).unwrap_or_default())
        }
    }
}

/// Decimals and timestamps stay text in JSON: exact, and readable as written.
pub fn value_to_pb(value: &wit::Value) -> PbValue {
    let kind = match value {
        wit::Value::Null => Kind::NullValue(0),
        wit::Value::Boolean(b) => Kind::BoolValue(*b),
        wit::Value::Integer(i) => Kind::NumberValue(*i as f64),
        wit::Value::Float(f) => Kind::NumberValue(*f),
        wit::Value::Decimal(s) | wit::Value::Text(s) | wit::Value::Timestamp(s) => {
            Kind::StringValue(s.clone())
        }
        wit::Value::Json(s) => match serde_json::from_str::<PbValue>(s) {
            Ok(v) => return v,
            Err(_) => Kind::StringValue(s.clone()),
        },
    };
    PbValue { kind: Some(kind) }
}

fn struct_to_fields(s: Option<&Struct>) -> Vec<wit::Field> {
    s.map(|s| {
        s.fields
            .iter()
            .map(|(name, v)| wit::Field {
                name: name.clone(),
                value: value_from_pb(v),
            })
            .collect()
    })
    .unwrap_or_default()
}

fn fields_to_struct(fields: &[wit::Field]) -> Option<Struct> {
    if fields.is_empty() {
        return None;
    }
    let fields: BTreeMap<String, PbValue> = fields
        .iter()
        .map(|f| (f.name.clone(), value_to_pb(&f.value)))
        .collect();
    Some(Struct {
        fields: fields.into_iter().collect(),
    })
}

// ── row sets ────────────────────────────────────────────────────────────────────────────

/// The type one proto column holds, decided from its non-null cells.
#[derive(Clone, Copy, PartialEq)]
enum ColumnKind {
    Booleans,
    Integers,
    Floats,
    Texts,
    Values,
}

fn column_kind<'a>(cells: impl Iterator<Item = &'a PbValue>) -> ColumnKind {
    let mut kind: Option<ColumnKind> = None;
    for cell in cells {
        let this = match &cell.kind {
            None | Some(Kind::NullValue(_)) => continue,
            Some(Kind::BoolValue(_)) => ColumnKind::Booleans,
            Some(Kind::NumberValue(n)) if is_integral(*n) => ColumnKind::Integers,
            Some(Kind::NumberValue(_)) => ColumnKind::Floats,
            Some(Kind::StringValue(_)) => ColumnKind::Texts,
            Some(Kind::ListValue(_)) | Some(Kind::StructValue(_)) => return ColumnKind::Values,
        };
        kind = Some(match (kind, this) {
            (None, this) => this,
            (Some(k), this) if k == this => k,
            (Some(ColumnKind::Integers | ColumnKind::Floats), ColumnKind::Integers)
            | (Some(ColumnKind::Integers), ColumnKind::Floats) => ColumnKind::Floats,
            _ => return ColumnKind::Values,
        });
    }
    kind.unwrap_or(ColumnKind::Texts)
}

fn is_integral(n: f64) -> bool {
    n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15
}

/// Proto rows (JSON cells) as the contract's columnar row set: a column whose cells share a
/// type is stored typed (one list, texts packed), a mixed one as values.
pub fn row_set_from_pb<'a>(columns: &[String], rows: &'a [ListValue]) -> wit::RowSet {
    static NULL: PbValue = PbValue {
        kind: Some(Kind::NullValue(0)),
    };
    let columns = columns
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let cell =
                |row: &'a ListValue| -> &'a PbValue { row.values.get(index).unwrap_or(&NULL) };
            let cells = || rows.iter().map(cell);
            let is_null = |v: &PbValue| matches!(v.kind, None | Some(Kind::NullValue(_)));
            let nulls = if cells().any(is_null) {
                cells().map(is_null).collect()
            } else {
                Vec::new()
            };
            let data = match column_kind(cells()) {
                ColumnKind::Booleans => wit::ColumnData::Booleans(
                    cells()
                        .map(|v| matches!(v.kind, Some(Kind::BoolValue(true))))
                        .collect(),
                ),
                ColumnKind::Integers => wit::ColumnData::Integers(
                    cells()
                        .map(|v| match v.kind {
                            Some(Kind::NumberValue(n)) => n as i64,
                            _ => 0,
                        })
                        .collect(),
                ),
                ColumnKind::Floats => wit::ColumnData::Floats(
                    cells()
                        .map(|v| match v.kind {
                            Some(Kind::NumberValue(n)) => n,
                            _ => 0.0,
                        })
                        .collect(),
                ),
                ColumnKind::Texts => {
                    let mut texts = wit::PackedTexts {
                        data: String::new(),
                        ends: Vec::with_capacity(rows.len()),
                    };
                    for value in cells() {
                        if let Some(Kind::StringValue(text)) = &value.kind {
                            texts.data.push_str(text);
                        }
                        texts
                            .ends
                            .push(u32::try_from(texts.data.len()).unwrap_or(u32::MAX));
                    }
                    wit::ColumnData::Texts(texts)
                }
                ColumnKind::Values => {
                    return wit::Column {
                        name: name.clone(),
                        data: wit::ColumnData::Values(cells().map(value_from_pb).collect()),
                        nulls: Vec::new(),
                    };
                }
            };
            wit::Column {
                name: name.clone(),
                data,
                nulls,
            }
        })
        .collect();
    wit::RowSet {
        len: u32::try_from(rows.len()).unwrap_or(u32::MAX),
        columns,
    }
}

/// Text `index` of packed texts ("" where the offsets do not cut the data at characters; the
/// output checks refuse such blocks before they get here).
fn packed_text(texts: &wit::PackedTexts, index: usize) -> &str {
    let end = texts.ends.get(index).map_or(0, |e| *e as usize);
    let start = match index {
        0 => 0,
        _ => texts.ends.get(index - 1).map_or(0, |e| *e as usize),
    };
    texts.data.get(start..end).unwrap_or_default()
}

/// One cell as a JSON value: decimals and timestamps as text, JSON documents parsed.
fn cell_to_pb(column: &wit::Column, index: usize) -> PbValue {
    if column.nulls.get(index).copied().unwrap_or(false) {
        return PbValue {
            kind: Some(Kind::NullValue(0)),
        };
    }
    let kind = match &column.data {
        wit::ColumnData::Booleans(v) => v.get(index).map(|b| Kind::BoolValue(*b)),
        wit::ColumnData::Integers(v) => v.get(index).map(|i| Kind::NumberValue(*i as f64)),
        wit::ColumnData::Floats(v) => v.get(index).map(|f| Kind::NumberValue(*f)),
        wit::ColumnData::Decimals(t)
        | wit::ColumnData::Texts(t)
        | wit::ColumnData::Timestamps(t) => {
            Some(Kind::StringValue(packed_text(t, index).to_owned()))
        }
        wit::ColumnData::Json(t) => {
            let text = packed_text(t, index);
            return serde_json::from_str::<PbValue>(text).unwrap_or(PbValue {
                kind: Some(Kind::StringValue(text.to_owned())),
            });
        }
        wit::ColumnData::Values(v) => v
            .get(index)
            .map(|v| value_to_pb(v).kind.unwrap_or(Kind::NullValue(0))),
    };
    PbValue {
        kind: Some(kind.unwrap_or(Kind::NullValue(0))),
    }
}

/// A row set as proto column names and rows.
pub fn row_set_to_pb(rows: &wit::RowSet) -> (Vec<String>, Vec<ListValue>) {
    let names = rows.columns.iter().map(|c| c.name.clone()).collect();
    let rows = (0..rows.len as usize)
        .map(|index| ListValue {
            values: rows.columns.iter().map(|c| cell_to_pb(c, index)).collect(),
        })
        .collect();
    (names, rows)
}

// ── references and graphs ───────────────────────────────────────────────────────────────

fn reference_from_pb(r: &Reference) -> wit::Reference {
    wit::Reference {
        kind: r.kind.clone(),
        title: r.title.clone(),
        payload: r
            .payload
            .as_ref()
            .map(|p| serde_json::to_string(p).unwrap_or_default())
            .unwrap_or_default(),
    }
}

fn reference_to_pb(r: &wit::Reference) -> Reference {
    Reference {
        kind: r.kind.clone(),
        title: r.title.clone(),
        payload: (!r.payload.is_empty())
            .then(|| serde_json::from_str::<PbValue>(&r.payload).ok())
            .flatten(),
    }
}

fn graph_from_pb(g: &NetworkBlock) -> wit::Graph {
    wit::Graph {
        nodes: g
            .nodes
            .iter()
            .map(|n| wit::GraphNode {
                id: n.id.clone(),
                label: n.label.clone(),
                kind: n.kind.clone(),
                depth: n.depth,
                attributes: struct_to_fields(n.attributes.as_ref()),
            })
            .collect(),
        edges: g
            .edges
            .iter()
            .map(|e| wit::GraphEdge {
                source: e.source.clone(),
                target: e.target.clone(),
                relation: e.relation.clone(),
            })
            .collect(),
        path: g.path.clone(),
    }
}

fn graph_to_pb(g: &wit::Graph) -> NetworkBlock {
    NetworkBlock {
        nodes: g
            .nodes
            .iter()
            .map(|n| NetworkNode {
                id: n.id.clone(),
                label: n.label.clone(),
                kind: n.kind.clone(),
                attributes: fields_to_struct(&n.attributes),
                depth: n.depth,
            })
            .collect(),
        edges: g
            .edges
            .iter()
            .map(|e| NetworkEdge {
                source: e.source.clone(),
                target: e.target.clone(),
                relation: e.relation.clone(),
            })
            .collect(),
        path: g.path.clone(),
    }
}

// ── tool results and blocks ─────────────────────────────────────────────────────────────

pub fn tool_result_from_pb(r: &ToolResult) -> wit::ToolResult {
    wit::ToolResult {
        tool: r.tool.clone(),
        kind: r.kind.clone(),
        rows: row_set_from_pb(&r.columns, &r.rows),
        truncated: r.truncated,
        fields: struct_to_fields(r.fields.as_ref()),
        graph: r.graph.as_ref().map(graph_from_pb),
        references: r.references.iter().map(reference_from_pb).collect(),
    }
}

pub fn block_to_pb(b: &wit::Block) -> Block {
    let content = match &b.content {
        wit::BlockContent::Text(text) => block::Content::Text(TextBlock { text: text.clone() }),
        wit::BlockContent::Markdown(markdown) => block::Content::Markdown(MarkdownBlock {
            markdown: markdown.clone(),
        }),
        wit::BlockContent::Table(t) => {
            let (columns, rows) = row_set_to_pb(&t.rows);
            block::Content::Table(TableBlock {
                columns,
                rows,
                truncated: t.truncated,
                total_rows: t.total_rows,
            })
        }
        wit::BlockContent::Number(n) => block::Content::Number(NumberBlock {
            value: n.value,
            unit: n.unit.clone(),
            label: n.label.clone(),
            aggregation: n.aggregation.clone(),
        }),
        wit::BlockContent::Chart(c) => block::Content::Series(SeriesBlock {
            metric: c.metric.clone(),
            unit: c.unit.clone(),
            series: c
                .series
                .iter()
                .map(|s| Series {
                    name: s.name.clone(),
                    points: s
                        .points
                        .iter()
                        .map(|p| SeriesPoint {
                            ts: parse_timestamp(&p.ts),
                            value: p.value,
                        })
                        .collect(),
                })
                .collect(),
        }),
        wit::BlockContent::Network(g) => block::Content::Network(graph_to_pb(g)),
        wit::BlockContent::References(refs) => block::Content::References(ReferencesBlock {
            references: refs.iter().map(reference_to_pb).collect(),
        }),
    };
    Block {
        title: b.title.clone(),
        content: Some(content),
    }
}

/// `None` for a block without content (nothing to show).
pub fn block_from_pb(b: &Block) -> Option<wit::Block> {
    let content = match b.content.as_ref()? {
        block::Content::Text(t) => wit::BlockContent::Text(t.text.clone()),
        block::Content::Markdown(m) => wit::BlockContent::Markdown(m.markdown.clone()),
        block::Content::Table(t) => wit::BlockContent::Table(wit::TableBlock {
            rows: row_set_from_pb(&t.columns, &t.rows),
            truncated: t.truncated,
            total_rows: t.total_rows,
        }),
        block::Content::Number(n) => wit::BlockContent::Number(wit::NumberBlock {
            value: n.value,
            unit: n.unit.clone(),
            label: n.label.clone(),
            aggregation: n.aggregation.clone(),
        }),
        block::Content::Series(s) => wit::BlockContent::Chart(wit::ChartBlock {
            metric: s.metric.clone(),
            unit: s.unit.clone(),
            series: s
                .series
                .iter()
                .map(|s| wit::Series {
                    name: s.name.clone(),
                    points: s
                        .points
                        .iter()
                        .map(|p| wit::SeriesPoint {
                            ts: p.ts.as_ref().map(format_timestamp).unwrap_or_default(),
                            value: p.value,
                        })
                        .collect(),
                })
                .collect(),
        }),
        block::Content::Network(g) => wit::BlockContent::Network(graph_from_pb(g)),
        block::Content::References(r) => {
            wit::BlockContent::References(r.references.iter().map(reference_from_pb).collect())
        }
    };
    Some(wit::Block {
        title: b.title.clone(),
        content,
    })
}

fn parse_timestamp(text: &str) -> Option<pbjson_types::Timestamp> {
    ops_proto::convert::parse_rfc3339(text)
}

fn format_timestamp(ts: &pbjson_types::Timestamp) -> String {
    ops_proto::convert::rfc3339(ts)
}

// ── screen model ────────────────────────────────────────────────────────────────────────

pub fn screen_to_pb(model: &st::ScreenModel) -> ScreenModel {
    let layout = match model.layout {
        st::Layout::Vertical => ScreenLayout::Vertical,
        st::Layout::Grid => ScreenLayout::Grid,
    };
    ScreenModel {
        layout: layout as i32,
        components: model
            .components
            .iter()
            .map(|c| ScreenComponent {
                r#type: block_type_of(&c.block_type) as i32,
                style: c.style.iter().cloned().collect(),
                pagination: c.pagination,
                page_size: c.page_size,
                default_height: c.default_height,
                responsive: c.responsive,
                collapsible: c.collapsible,
                block_index: c.block_index,
                total_pages: c.total_pages,
            })
            .collect(),
        actions: model
            .actions
            .iter()
            .map(|a| ScreenAction {
                id: a.id.clone(),
                label: a.label.clone(),
                inputs_schema: serde_json::from_str(&a.inputs_schema).ok(),
            })
            .collect(),
        state: serde_json::from_str(&model.state).ok(),
    }
}

/// The block-type names of Mapping and Screen configs ("table", "chart"...).
pub fn block_type_name(t: ops_proto::v1::BlockType) -> &'static str {
    use ops_proto::v1::BlockType as B;
    match t {
        B::Unspecified => "",
        B::Text => "text",
        B::Markdown => "markdown",
        B::Table => "table",
        B::Number => "number",
        B::Chart => "chart",
        B::Network => "network",
        B::References => "references",
    }
}

fn block_type_of(name: &str) -> ops_proto::v1::BlockType {
    use ops_proto::v1::BlockType as B;
    [
        B::Text,
        B::Markdown,
        B::Table,
        B::Number,
        B::Chart,
        B::Network,
        B::References,
    ]
    .into_iter()
    .find(|t| block_type_name(*t) == name)
    .unwrap_or(B::Unspecified)
}

pub fn wit_block_kind(b: &wit::Block) -> &'static str {
    match b.content {
        wit::BlockContent::Text(_) => "text",
        wit::BlockContent::Markdown(_) => "markdown",
        wit::BlockContent::Table(_) => "table",
        wit::BlockContent::Number(_) => "number",
        wit::BlockContent::Chart(_) => "chart",
        wit::BlockContent::Network(_) => "network",
        wit::BlockContent::References(_) => "references",
    }
}

// ── configs handed to plugins ───────────────────────────────────────────────────────────

/// A declarative Mapping in the user guides' JSON shape, which the default mapper reads.
pub fn mapping_config_json(d: &ops_proto::v1::DeclarativeMapping) -> String {
    let mappings: Vec<serde_json::Value> = d
        .mappings
        .iter()
        .map(|rule| {
            serde_json::json!({
                "source_type": rule.source_type,
                "target_block": block_type_name(rule.target_block()),
                "title": rule.title,
                "template": rule.template,
                "headers": rule.headers,
                "row_mapping": rule.row_mapping.iter()
                    .map(|m| serde_json::json!({"label": m.label, "field": m.field}))
                    .collect::<Vec<_>>(),
                "field_mapping": rule.field_mapping.iter().collect::<BTreeMap<_, _>>(),
            })
        })
        .collect();
    serde_json::json!({ "version": d.version, "mappings": mappings }).to_string()
}

/// A declarative Screen in the user guides' JSON shape, which the default screen reads.
pub fn screen_config_json(d: &ops_proto::v1::DeclarativeScreen) -> String {
    let layout = match d.layout() {
        ScreenLayout::Grid => "grid",
        _ => "vertical",
    };
    let components: Vec<serde_json::Value> = d
        .components
        .iter()
        .map(|c| {
            serde_json::json!({
                "type": block_type_name(c.r#type()),
                "style": c.style.iter().collect::<BTreeMap<_, _>>(),
                "pagination": c.pagination,
                "page_size": c.page_size,
                "default_height": c.default_height,
                "responsive": c.responsive,
                "collapsible": c.collapsible,
            })
        })
        .collect();
    let actions: Vec<serde_json::Value> = d
        .actions
        .iter()
        .map(
            |a| serde_json::json!({"id": a.id, "label": a.label, "inputs_schema": a.inputs_schema}),
        )
        .collect();
    serde_json::json!({
        "layout": layout,
        "grid_columns": d.grid_columns,
        "components": components,
        "actions": actions,
    })
    .to_string()
}

/// An uploaded plugin's `config` Struct as JSON text ("" when unset).
pub fn plugin_config_json(r: &ops_proto::v1::PluginRef) -> String {
    r.config
        .as_ref()
        .map(|c| serde_json::to_string(c).unwrap_or_default())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: Vec<serde_json::Value>) -> ListValue {
        serde_json::from_value(serde_json::Value::Array(values)).unwrap_or_default()
    }

    #[test]
    fn proto_rows_round_trip_through_typed_columns() {
        use serde_json::json;
        let columns: Vec<String> = ["code", "value", "count", "ok", "note", "mixed", "doc"]
            .map(String::from)
            .to_vec();
        let rows = vec![
            row(vec![
                json!("GT-01"),
                json!(40.5),
                json!(3),
                json!(true),
                json!(null),
                json!(1),
                json!({"a": 1}),
            ]),
            row(vec![
                json!("가스터빈"),
                json!(2),
                json!(4),
                json!(false),
                json!("정비"),
                json!("x"),
                json!(null),
            ]),
        ];
        let set = row_set_from_pb(&columns, &rows);
        let kinds: Vec<&str> = set
            .columns
            .iter()
            .map(|c| match c.data {
                wit::ColumnData::Texts(_) => "texts",
                wit::ColumnData::Floats(_) => "floats",
                wit::ColumnData::Integers(_) => "integers",
                wit::ColumnData::Booleans(_) => "booleans",
                wit::ColumnData::Values(_) => "values",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "texts", "floats", "integers", "booleans", "texts", "values", "values"
            ]
        );
        assert_eq!(set.columns[4].nulls, [true, false]);
        assert_eq!(super::super::output::check_row_set(&set), Ok(()));
        let (names, back) = row_set_to_pb(&set);
        assert_eq!(names, columns);
        // Compared as JSON: a parsed null has no kind, a converted one says NullValue.
        let json = |rows: &[ListValue]| serde_json::to_value(rows).unwrap_or_default();
        assert_eq!(json(&back), json(&rows));
    }
}
