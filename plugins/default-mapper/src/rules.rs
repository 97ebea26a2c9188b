//! Applying Mapping rules to tool results.

use ops_plugin_sdk::prelude::*;

use crate::config::{MappingConfig, MappingRule};

/// Maps every result through the rules that select it, in rule order; results no rule selects
/// get the generic blocks; references close the answer unless a rule placed them.
pub fn map_results(
    config: &MappingConfig,
    question: &str,
    results: Vec<ToolResult>,
) -> Result<Vec<Block>, PluginError> {
    let mut blocks = Vec::new();
    let mut mapped = vec![false; results.len()];
    let mut references_placed = false;
    for rule in &config.mappings {
        for (index, result) in results.iter().enumerate() {
            if !rule.matches(&result.tool) {
                continue;
            }
            mapped[index] = true;
            references_placed |= rule.target_block == "references";
            blocks.extend(apply_rule(rule, question, result)?);
        }
    }
    let references: Vec<Reference> = if references_placed {
        Vec::new()
    } else {
        results
            .iter()
            .flat_map(|r| r.references.iter().cloned())
            .collect()
    };
    // Results no rule selected move into their blocks: their rows are not copied.
    for (result, _) in results.into_iter().zip(mapped).filter(|(_, done)| !*done) {
        blocks.extend(generic_blocks(result));
    }
    if !references.is_empty() {
        blocks.push(Block {
            title: "References".into(),
            content: BlockContent::References(references),
        });
    }
    Ok(blocks)
}

fn apply_rule(
    rule: &MappingRule,
    question: &str,
    result: &ToolResult,
) -> Result<Vec<Block>, PluginError> {
    let records = result.records();
    let lookup = |record: Option<&Record<'_>>, name: &str| -> Option<String> {
        let mapped = rule
            .field_mapping
            .get(name)
            .map(String::as_str)
            .unwrap_or(name);
        match name {
            "question" => Some(question.to_owned()),
            "row_count" => Some(result.rows.len().to_string()),
            "tool" => Some(result.tool.clone()),
            _ => record.and_then(|r| r.text(mapped)),
        }
    };
    let title = if rule.title.is_empty() {
        String::new()
    } else {
        render_template(&rule.title, |name| lookup(records.first(), name))
    };
    let block = |content| Block {
        title: title.clone(),
        content,
    };
    Ok(match rule.target_block.as_str() {
        "text" | "markdown" => {
            // A result without rows (an aggregate over no points) has only its fields: a
            // sentence about a row that is not there is left out, not shown half-filled.
            let unfilled = result.rows.is_empty()
                && template_fields(&rule.template)
                    .any(|name| lookup(records.first(), name).is_none());
            if records.is_empty() || unfilled {
                return Ok(Vec::new());
            }
            let text = records
                .iter()
                .map(|record| render_template(&rule.template, |name| lookup(Some(record), name)))
                .collect::<Vec<_>>()
                .join("\n");
            let content = if rule.target_block == "text" {
                BlockContent::Text(text)
            } else {
                BlockContent::Markdown(text)
            };
            vec![block(content)]
        }
        "table" => table(rule, result, &records)
            .map(|t| block(BlockContent::Table(t)))
            .into_iter()
            .collect(),
        "number" => number(rule, result, &records)?
            .map(|n| block(BlockContent::Number(n)))
            .into_iter()
            .collect(),
        "chart" => chart(rule, result)
            .map(|c| block(BlockContent::Chart(c)))
            .into_iter()
            .collect(),
        "network" => result
            .graph
            .clone()
            .map(|g| block(BlockContent::Network(g)))
            .into_iter()
            .collect(),
        _ => {
            if result.references.is_empty() {
                Vec::new()
            } else {
                vec![block(BlockContent::References(result.references.clone()))]
            }
        }
    })
}

/// `row_mapping` over one record is a label/value table (the user guides' CI card); over many
/// records it selects and renames columns. Without `row_mapping` the result's own columns are
/// shown, renamed by `field_mapping` and `headers`.
fn table(rule: &MappingRule, result: &ToolResult, records: &[Record<'_>]) -> Option<TableBlock> {
    let cell = |record: &Record<'_>, field: &str| record.get(field).unwrap_or(Value::Null);
    // A card over a result without rows reads the result's fields; when it finds none of
    // them (an aggregate over no points) there is no card to show.
    let empty_card = result.rows.is_empty()
        && !rule.row_mapping.is_empty()
        && records.first().is_none_or(|record| {
            rule.row_mapping
                .iter()
                .all(|m| matches!(cell(record, &m.field), Value::Null))
        });
    if empty_card || (records.is_empty() && result.rows.columns.is_empty()) {
        return None;
    }
    let rows = if !rule.row_mapping.is_empty() && records.len() == 1 {
        let record = &records[0];
        let columns = if rule.headers.len() == 2 {
            rule.headers.clone()
        } else {
            vec!["field".to_owned(), "value".to_owned()]
        };
        let rows = rule
            .row_mapping
            .iter()
            .map(|m| vec![Value::text(m.label.clone()), cell(record, &m.field)])
            .collect();
        RowSet::from_rows(columns, rows)
    } else if !rule.row_mapping.is_empty() {
        // Columns are copied whole; a field that is not a column (a result-level scalar)
        // repeats on every row.
        let columns = rule
            .row_mapping
            .iter()
            .map(|m| match result.rows.column(&m.field) {
                Some(column) => column.clone().renamed(m.label.clone()),
                None => Column::from_values(
                    m.label.clone(),
                    records.iter().map(|r| cell(r, &m.field)).collect(),
                ),
            })
            .collect();
        RowSet::from_columns(columns)
    } else {
        let mut rows = result.rows.clone();
        let use_headers = rule.headers.len() == rows.columns.len();
        for (index, column) in rows.columns.iter_mut().enumerate() {
            if use_headers {
                column.name = rule.headers[index].clone();
            } else if let Some((output, _)) = rule
                .field_mapping
                .iter()
                .find(|(_, input)| **input == column.name)
            {
                column.name = output.clone();
            }
        }
        rows
    };
    let total_rows = rows.len;
    Some(TableBlock {
        rows,
        truncated: result.truncated,
        total_rows,
    })
}

/// `field_mapping` names fields for value/label/unit/aggregation; a name that is not a field is
/// taken literally (the user guides write `"unit": "percent"`). A missing or null value maps to
/// no block: an empty result is the control loop's business, not a zero.
fn number(
    rule: &MappingRule,
    result: &ToolResult,
    records: &[Record<'_>],
) -> Result<Option<NumberBlock>, PluginError> {
    let field = rule
        .field_mapping
        .get("value")
        .map(String::as_str)
        .unwrap_or("value");
    // A column's value answers one row; over many rows (a ranking, a group) the table shows
    // them and a number taken from the first would read as the answer for all. A result-level
    // field (a count) is one number however many rows there are.
    if records.len() > 1 && result.rows.column(field).is_some() {
        return Ok(None);
    }
    let Some(record) = records.first() else {
        return Ok(None);
    };
    let resolve = |key: &str| -> String {
        match rule.field_mapping.get(key) {
            Some(name) => record.text(name).unwrap_or_else(|| name.clone()),
            None => String::new(),
        }
    };
    let value = match record.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(value) => value.as_f64().ok_or_else(|| {
            PluginError::new(
                "bad_input",
                format!(
                    "{}: field `{field}` is `{}`, not a number",
                    result.tool,
                    value.display()
                ),
            )
        })?,
    };
    Ok(Some(NumberBlock {
        value,
        unit: resolve("unit"),
        label: resolve("label"),
        aggregation: resolve("aggregation"),
    }))
}

/// Rows as series points: `x` (default `ts`), `y` (default `value`) and an optional `series`
/// column splitting the points into named series.
fn chart(rule: &MappingRule, result: &ToolResult) -> Option<ChartBlock> {
    let column = |key: &str, default: &str| {
        let name = rule
            .field_mapping
            .get(key)
            .map(String::as_str)
            .unwrap_or(default);
        result.rows.column(name)
    };
    let x = column("x", "ts")?;
    let y = column("y", "value")?;
    let split = column("series", "");
    let mut series: Vec<Series> = Vec::new();
    for row in 0..result.rows.len() {
        let (ts, Some(value)) = (x.value(row), y.value(row).as_f64()) else {
            continue;
        };
        if ts == Value::Null {
            continue;
        }
        let name = split.map(|c| c.value(row).display()).unwrap_or_default();
        let point = SeriesPoint {
            ts: ts.display(),
            value,
        };
        match series.iter_mut().find(|s| s.name == name) {
            Some(existing) => existing.points.push(point),
            None => series.push(Series {
                name,
                points: vec![point],
            }),
        }
    }
    let field = |name: &str| result.field(name).map(Value::display).unwrap_or_default();
    let metric = rule
        .field_mapping
        .get("metric")
        .map(|m| field(m))
        .unwrap_or_else(|| field("metric"));
    let unit = rule
        .field_mapping
        .get("unit")
        .cloned()
        .unwrap_or_else(|| field("unit"));
    Some(ChartBlock {
        metric,
        unit,
        series,
    })
}

/// What a result shows as when no rule selects it, so a source answers sensibly before anyone
/// writes a Mapping: a graph as a network; a result's numbers (a count) first; a metric series
/// (rows with `bucket` and `value`, as the metrics executor writes them) as a chart; rows as a
/// table.
fn generic_blocks(result: ToolResult) -> Vec<Block> {
    let title = result.tool.clone();
    if let Some(graph) = result.graph {
        return vec![Block {
            title,
            content: BlockContent::Network(graph),
        }];
    }
    let field = |name: &str| result.field(name).map(Value::display).unwrap_or_default();
    let mut blocks: Vec<Block> = result
        .fields
        .iter()
        .filter(|f| !matches!(f.value, Value::Null))
        .filter_map(|f| {
            let value = match &f.value {
                Value::Integer(_) | Value::Float(_) | Value::Decimal(_) => f.value.as_f64()?,
                _ => return None,
            };
            Some(Block {
                title: title.clone(),
                content: BlockContent::Number(NumberBlock {
                    value,
                    unit: field("unit"),
                    label: f.name.clone(),
                    aggregation: field("aggregation"),
                }),
            })
        })
        .collect();
    if result.rows.columns.is_empty() {
        return blocks;
    }
    if result.rows.column("bucket").is_some() && result.rows.column("value").is_some() {
        let series_rule = MappingRule {
            field_mapping: [("x", "bucket"), ("y", "value"), ("series", "ci_code")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..Default::default()
        };
        if let Some(chart) = chart(&series_rule, &result) {
            blocks.push(Block {
                title: title.clone(),
                content: BlockContent::Chart(chart),
            });
        }
    }
    let total_rows = result.rows.len;
    blocks.push(Block {
        title,
        content: BlockContent::Table(TableBlock {
            rows: result.rows,
            truncated: result.truncated,
            total_rows,
        }),
    });
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(tool: &str, columns: &[&str], rows: Vec<Vec<Value>>) -> ToolResult {
        ToolResult {
            tool: tool.into(),
            kind: "sql".into(),
            rows: RowSet::from_rows(columns.iter().map(|c| (*c).to_owned()).collect(), rows),
            truncated: false,
            fields: vec![],
            graph: None,
            references: vec![],
        }
    }

    fn text(s: &str) -> Value {
        Value::text(s)
    }

    fn map(config: &str, results: Vec<ToolResult>) -> Result<Vec<Block>, PluginError> {
        map_results(&MappingConfig::parse(config)?, "q", results)
    }

    #[test]
    fn row_mapping_over_many_rows_selects_and_renames_columns() -> Result<(), PluginError> {
        let servers = result(
            "ci_tool",
            &["ci_code", "zone", "os"],
            vec![
                vec![text("ERP-01"), text("zone-a"), text("linux")],
                vec![text("ERP-02"), text("zone-a"), Value::Null],
            ],
        );
        let blocks = map(
            r#"{"mappings":[{"source_type":"ci_tool","target_block":"table",
                "row_mapping":[{"label":"OS","field":"os"},{"label":"Code","field":"ci_code"}]}]}"#,
            vec![servers],
        )?;
        let BlockContent::Table(table) = &blocks[0].content else {
            return Err(PluginError::new("test", "expected a table"));
        };
        assert_eq!(table.rows.names(), ["OS", "Code"]);
        assert_eq!(table.rows.row(1), vec![Value::Null, text("ERP-02")]);
        Ok(())
    }

    #[test]
    fn charts_split_points_into_series() -> Result<(), PluginError> {
        let points = result(
            "metric_series_tool",
            &["ts", "ci_code", "value"],
            vec![
                vec![
                    text("2026-01-30T00:00:00Z"),
                    text("GT-01"),
                    Value::Float(40.0),
                ],
                vec![
                    text("2026-01-30T00:00:00Z"),
                    text("GT-02"),
                    Value::Integer(50),
                ],
                vec![
                    text("2026-01-30T01:00:00Z"),
                    text("GT-01"),
                    Value::Float(42.5),
                ],
            ],
        );
        let blocks = map(
            r#"{"mappings":[{"source_type":"metric_series_tool","target_block":"BLOCK_TYPE_CHART",
                "field_mapping":{"series":"ci_code"}}]}"#,
            vec![points],
        )?;
        let BlockContent::Chart(chart) = &blocks[0].content else {
            return Err(PluginError::new("test", "expected a chart"));
        };
        let sizes: Vec<_> = chart
            .series
            .iter()
            .map(|s| (s.name.as_str(), s.points.len()))
            .collect();
        assert_eq!(sizes, [("GT-01", 2), ("GT-02", 1)]);
        Ok(())
    }

    #[test]
    fn unmatched_results_are_shown_generically_and_references_close_the_answer()
    -> Result<(), PluginError> {
        let mut events = result("history_tool", &["event_id"], vec![vec![text("EV-1")]]);
        events.references.push(Reference {
            kind: "sql".into(),
            title: "events".into(),
            payload: String::new(),
        });
        let blocks = map("", vec![events])?;
        assert!(matches!(&blocks[0].content, BlockContent::Table(t) if t.rows.len() == 1));
        assert!(matches!(&blocks[1].content, BlockContent::References(r) if r.len() == 1));
        Ok(())
    }

    #[test]
    fn without_a_rule_a_count_leads_and_a_series_is_a_chart() -> Result<(), PluginError> {
        let mut events = result("history", &["event_id"], vec![vec![text("EV-1")]]);
        events.fields.push(Field {
            name: "count".into(),
            value: Value::Integer(1),
        });
        let blocks = map("", vec![events])?;
        assert!(
            matches!(&blocks[0].content, BlockContent::Number(n) if n.value == 1.0 && n.label == "count")
        );
        assert!(matches!(&blocks[1].content, BlockContent::Table(_)));
        let points = result(
            "series",
            &["ci_code", "bucket", "value"],
            vec![
                vec![
                    text("CH-01"),
                    text("2026-02-28T00:00:00Z"),
                    Value::Float(1.5),
                ],
                vec![
                    text("CH-01"),
                    text("2026-02-28T02:00:00Z"),
                    Value::Float(2.5),
                ],
            ],
        );
        let blocks = map("", vec![points])?;
        assert!(
            matches!(&blocks[0].content, BlockContent::Chart(c) if c.series.len() == 1 && c.series[0].points.len() == 2),
            "{blocks:?}"
        );
        assert!(matches!(&blocks[1].content, BlockContent::Table(_)));
        Ok(())
    }

    #[test]
    fn a_number_answers_one_row_or_a_result_level_field() -> Result<(), PluginError> {
        let config = r#"{"mappings":[{"source_type":"m","target_block":"number",
            "field_mapping":{"value":"v"}}]}"#;
        let two = result(
            "m",
            &["v"],
            vec![vec![Value::Float(1.0)], vec![Value::Float(2.0)]],
        );
        assert!(map(config, vec![two])?.is_empty());
        let mut counted = result("m", &["id"], vec![vec![text("EV-1")], vec![text("EV-2")]]);
        counted.fields.push(Field {
            name: "v".into(),
            value: Value::Integer(2),
        });
        let blocks = map(config, vec![counted])?;
        assert!(matches!(&blocks[0].content, BlockContent::Number(n) if n.value == 2.0));
        Ok(())
    }

    #[test]
    fn a_sentence_about_rows_that_are_not_there_is_left_out() -> Result<(), PluginError> {
        let config = r#"{"mappings":[{"source_type":"m","target_block":"text",
            "template":"{{ci_code}} {{metric}}: {{value}}"}]}"#;
        let mut empty = result("m", &[], vec![]);
        empty.fields.push(Field {
            name: "metric".into(),
            value: text("temperature"),
        });
        assert!(map(config, vec![empty.clone()])?.is_empty());
        let card = r#"{"mappings":[{"source_type":"m","target_block":"table",
            "row_mapping":[{"label":"CI code","field":"ci_code"}]}]}"#;
        assert!(map(card, vec![empty.clone()])?.is_empty());
        empty.rows = RowSet::from_rows(vec!["ci_code".into()], vec![vec![text("GT-01")]]);
        let blocks = map(config, vec![empty])?;
        assert!(
            matches!(&blocks[0].content, BlockContent::Text(t) if t == "GT-01 temperature: {{value}}"),
            "a template over real rows still shows what it could not fill: {blocks:?}"
        );
        Ok(())
    }

    #[test]
    fn a_null_value_gives_no_number_and_text_gives_an_error() -> Result<(), PluginError> {
        let config = r#"{"mappings":[{"source_type":"m","target_block":"number","field_mapping":{"value":"v"}}]}"#;
        let mut empty = result("m", &[], vec![]);
        empty.fields.push(Field {
            name: "v".into(),
            value: Value::Null,
        });
        assert!(map(config, vec![empty])?.is_empty());
        let mut wrong = result("m", &[], vec![]);
        wrong.fields.push(Field {
            name: "v".into(),
            value: text("high"),
        });
        let error = map(config, vec![wrong]).err().map(|e| e.message);
        assert_eq!(
            error.as_deref(),
            Some("m: field `v` is `high`, not a number")
        );
        Ok(())
    }

    #[test]
    fn config_errors_name_the_rule_and_field() {
        let cases = [
            (
                r#"{"mappings":[{"target_block":"pie"}]}"#,
                "mappings[0].target_block: `pie` is not one of",
            ),
            (
                r#"{"mappings":[{"target_block":"text"}]}"#,
                "mappings[0].template",
            ),
            (
                r#"{"mappings":[{"target_block":"number"}]}"#,
                "mappings[0].field_mapping.value",
            ),
            (r#"{"mapings":[]}"#, "unknown field `mapings`"),
        ];
        for (config, expected) in cases {
            let message = MappingConfig::parse(config)
                .err()
                .map(|e| e.message)
                .unwrap_or_default();
            assert!(message.contains(expected), "{config}: {message}");
        }
    }
}
