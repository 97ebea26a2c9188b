//! An example mapper, written as a plugin author would: counts the rows of every result per
//! `status` and answers with a sentence and a table.

use std::collections::BTreeMap;

use ops_plugin_sdk::prelude::*;

struct StatusBoard;

impl Mapper for StatusBoard {
    fn describe() -> PluginInfo {
        PluginInfo::new("status-board", env!("CARGO_PKG_VERSION"), "CIs per status")
    }

    fn map(input: MapInput) -> Result<Vec<Block>, PluginError> {
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for result in &input.results {
            for record in result.records() {
                let status = record.text("status").unwrap_or_else(|| "unknown".into());
                *counts.entry(status).or_default() += 1;
            }
        }
        let total: i64 = counts.values().sum();
        let summary = format!("{total} CIs in {} statuses", counts.len());
        let rows = counts
            .into_iter()
            .map(|(s, n)| vec![Value::text(s), Value::Integer(n)])
            .collect();
        let columns = vec!["status".to_owned(), "count".to_owned()];
        Ok(vec![
            Block::text("Summary", summary),
            Block::table("By status", RowSet::from_rows(columns, rows)),
        ])
    }
}

ops_plugin_sdk::export_mapper!(StatusBoard);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rows_per_status() -> Result<(), PluginError> {
        let row = |code: &str, status: &str| vec![Value::text(code), Value::text(status)];
        let result = ToolResult {
            tool: "ci_tool".into(),
            kind: "sql".into(),
            rows: RowSet::from_rows(
                vec!["ci_code".into(), "status".into()],
                vec![
                    row("GT-01", "active"),
                    row("GT-02", "active"),
                    row("SAN-01", "standby"),
                ],
            ),
            truncated: false,
            fields: vec![],
            graph: None,
            references: vec![],
        };
        let input = MapInput {
            question: String::new(),
            results: vec![result],
            config: String::new(),
        };
        let blocks = StatusBoard::map(input)?;
        assert!(matches!(&blocks[0].content, BlockContent::Text(t) if t == "3 CIs in 2 statuses"));
        let BlockContent::Table(table) = &blocks[1].content else {
            panic!("expected a table")
        };
        assert_eq!(
            table.rows.row(0),
            vec![Value::text("active"), Value::Integer(2)]
        );
        Ok(())
    }
}
