//! Conveniences over the generated types: constructors, row access by column name and
//! `{{field}}` templates.

use std::fmt::Write as _;

use crate::types::{
    Block, BlockContent, Field, NumberBlock, PluginError, PluginInfo, RowSet, TableBlock,
    ToolResult, Value,
};

impl PluginInfo {
    /// Describes a plugin built against this SDK's contract version.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            description: description.to_owned(),
            contract: crate::CONTRACT_VERSION.to_owned(),
        }
    }
}

impl PluginError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// The plugin's configuration is not what it expects.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::new("invalid_config", message)
    }
}

impl Value {
    pub fn text(text: impl Into<String>) -> Self {
        Value::Text(text.into())
    }

    /// The value as display text: numbers in their shortest form, null as "".
    pub fn display(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Boolean(b) => b.to_string(),
            Value::Integer(i) => i.to_string(),
            Value::Float(f) => format_float(*f),
            Value::Decimal(s) | Value::Text(s) | Value::Timestamp(s) | Value::Json(s) => s.clone(),
        }
    }

    /// The value as a number, when it is one (decimals and numeric text included).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Integer(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Decimal(s) | Value::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) | Value::Decimal(s) | Value::Timestamp(s) | Value::Json(s) => Some(s),
            _ => None,
        }
    }
}

/// Floats print with at most two decimals, as answers show them (56.857 -> "56.86").
fn format_float(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{value:.0}");
    }
    let mut text = format!("{value:.2}");
    while text.ends_with('0') {
        text.pop();
    }
    if text.ends_with('.') {
        text.pop();
    }
    text
}

/// One row of a tool result, addressable by column name.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub rows: &'a RowSet,
    pub index: usize,
    pub fields: &'a [Field],
}

impl<'a> Record<'a> {
    /// The cell of `column`, or else the result-level field of that name.
    pub fn get(&self, name: &str) -> Option<Value> {
        let cell = (self.index < self.rows.len())
            .then(|| self.rows.column(name))
            .flatten()
            .map(|column| column.value(self.index));
        cell.or_else(|| {
            self.fields
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.value.clone())
        })
    }

    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.display())
    }
}

impl ToolResult {
    /// The rows as records; a result without rows yields one record of its fields, so
    /// templates over scalar results (an aggregate, a count) still resolve.
    pub fn records(&self) -> Vec<Record<'_>> {
        let record = |index| Record {
            rows: &self.rows,
            index,
            fields: &self.fields,
        };
        if self.rows.is_empty() {
            return if self.fields.is_empty() {
                Vec::new()
            } else {
                vec![record(usize::MAX)]
            };
        }
        (0..self.rows.len()).map(record).collect()
    }

    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.value)
    }
}

impl Block {
    pub fn text(title: &str, text: impl Into<String>) -> Self {
        Block {
            title: title.to_owned(),
            content: BlockContent::Text(text.into()),
        }
    }

    /// A table of all its rows (`RowSet::from_rows` builds one from rows).
    pub fn table(title: &str, rows: RowSet) -> Self {
        let total_rows = rows.len;
        Block {
            title: title.to_owned(),
            content: BlockContent::Table(TableBlock {
                rows,
                truncated: false,
                total_rows,
            }),
        }
    }

    pub fn number(title: &str, number: NumberBlock) -> Self {
        Block {
            title: title.to_owned(),
            content: BlockContent::Number(number),
        }
    }

    /// The block kind's name as Mapping and Screen configs spell it.
    pub fn kind(&self) -> &'static str {
        match self.content {
            BlockContent::Text(_) => "text",
            BlockContent::Markdown(_) => "markdown",
            BlockContent::Table(_) => "table",
            BlockContent::Number(_) => "number",
            BlockContent::Chart(_) => "chart",
            BlockContent::Network(_) => "network",
            BlockContent::References(_) => "references",
        }
    }
}

/// The block kinds, as Mapping and Screen configs name them.
pub const BLOCK_KINDS: [&str; 7] = [
    "text",
    "markdown",
    "table",
    "number",
    "chart",
    "network",
    "references",
];

/// A block kind as a config may spell it (`table`, `TABLE`, the proto enum's
/// `BLOCK_TYPE_TABLE`, `series` for a chart) in the contract's spelling; `None` when it names
/// no kind.
pub fn block_kind(spelling: &str) -> Option<&'static str> {
    let lower = spelling.trim().to_ascii_lowercase();
    let kind = lower.strip_prefix("block_type_").unwrap_or(&lower);
    let kind = if kind == "series" { "chart" } else { kind };
    BLOCK_KINDS.iter().copied().find(|k| *k == kind)
}

/// The names a template's `{{name}}`s ask for, in order.
pub fn template_fields(template: &str) -> impl Iterator<Item = &str> {
    template
        .split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}").map(|(name, _)| name.trim()))
}

/// Replaces every `{{name}}` with `lookup(name)`; unknown names are left as written so a
/// broken template shows in the answer instead of silently vanishing.
pub fn render_template(template: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        match lookup(name) {
            Some(value) => out.push_str(&value),
            None => {
                let _ = write!(out, "{{{{{name}}}}}");
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_known_fields_and_keep_unknown_ones() {
        let text = render_template(
            "{{ci_code}} is {{ status }} ({{missing}})",
            |name| match name {
                "ci_code" => Some("GT-01".into()),
                "status" => Some("operational".into()),
                _ => None,
            },
        );
        assert_eq!(text, "GT-01 is operational ({{missing}})");
        assert_eq!(render_template("open {{ end", |_| None), "open {{ end");
        assert_eq!(
            template_fields("{{ci_code}} is {{ status }}, {{ end").collect::<Vec<_>>(),
            ["ci_code", "status"]
        );
    }

    #[test]
    fn block_kinds_accept_every_config_spelling() {
        assert_eq!(block_kind("BLOCK_TYPE_TABLE"), Some("table"));
        assert_eq!(block_kind(" Chart "), Some("chart"));
        assert_eq!(block_kind("series"), Some("chart"));
        assert_eq!(block_kind("pie"), None);
    }

    #[test]
    fn floats_display_with_two_decimals_at_most() {
        assert_eq!(Value::Float(56.857).display(), "56.86");
        assert_eq!(Value::Float(12.5).display(), "12.5");
        assert_eq!(Value::Float(3.0).display(), "3");
    }

    #[test]
    fn records_fall_back_to_fields() {
        let result = ToolResult {
            tool: "metric_tool".into(),
            kind: "metric".into(),
            rows: RowSet::new(),
            truncated: false,
            fields: vec![Field {
                name: "avg_value".into(),
                value: Value::Float(56.857),
            }],
            graph: None,
            references: vec![],
        };
        let records = result.records();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].text("avg_value").as_deref(), Some("56.86"));
    }
}
