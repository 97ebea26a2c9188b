//! The keys a Tool's `config` takes, per mode: which catalog table or column each names, so the
//! registry can refuse a key nothing reads (a typo would otherwise silently do nothing) and a
//! column the catalog does not have, and the reference docs can list them all.

use super::plan_kind::Mode;

/// What a config key's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The plan mode the tool answers.
    Mode,
    /// A catalog table.
    Table,
    /// A column of the tool's `table`.
    Column,
    /// A column of the tool's `entity_table`.
    EntityColumn,
    /// A list of columns of the tool's `table`.
    Columns,
    /// A result name (free text).
    Name,
    /// A positive whole number.
    Number,
    /// One of a fixed set of words.
    OneOf(&'static [&'static str]),
}

/// One config key: its name, its kind, whether the mode needs it, and what it does.
#[derive(Debug, Clone, Copy)]
pub struct ConfigKey {
    pub key: &'static str,
    pub kind: KeyKind,
    pub required: bool,
    pub doc: &'static str,
}

const fn key(key: &'static str, kind: KeyKind, required: bool, doc: &'static str) -> ConfigKey {
    ConfigKey {
        key,
        kind,
        required,
        doc,
    }
}

const MODE: ConfigKey = key(
    "mode",
    KeyKind::Mode,
    true,
    "the plan mode the tool answers: config, history, metric, graph or document",
);

const CONFIG: &[ConfigKey] = &[
    MODE,
    key(
        "table",
        KeyKind::Table,
        true,
        "the table of the items listed, counted and looked up",
    ),
    key(
        "code_column",
        KeyKind::Column,
        true,
        "the column holding each item's code (what people name it by)",
    ),
    key(
        "order_by",
        KeyKind::Column,
        false,
        "the column lists are ordered by (default: code_column)",
    ),
    key(
        "columns",
        KeyKind::Columns,
        true,
        "the columns a list shows",
    ),
    key(
        "attribute_result",
        KeyKind::Name,
        false,
        "the result name of one attribute of named items (default <tool>.attributes)",
    ),
    key(
        "count_result",
        KeyKind::Name,
        false,
        "the result name of a count (default <tool>.count)",
    ),
];

const HISTORY: &[ConfigKey] = &[
    MODE,
    key(
        "table",
        KeyKind::Table,
        true,
        "the table of events (one row per event)",
    ),
    key(
        "entity_table",
        KeyKind::Table,
        true,
        "the table of the items events happen to",
    ),
    key(
        "entity_column",
        KeyKind::Column,
        true,
        "the event column that points at an item (joined to entity_key)",
    ),
    key(
        "entity_key",
        KeyKind::EntityColumn,
        true,
        "the item column entity_column points at",
    ),
    key(
        "code_column",
        KeyKind::EntityColumn,
        true,
        "the item column holding its code",
    ),
    key(
        "time_column",
        KeyKind::Column,
        true,
        "the event column holding when it happened (windows filter on it)",
    ),
    key(
        "resolved_column",
        KeyKind::Column,
        false,
        "the event column holding when it was resolved (empty means open)",
    ),
    key(
        "type_column",
        KeyKind::Column,
        false,
        "the event column holding its type (its values imply a history question)",
    ),
    key(
        "severity_column",
        KeyKind::Column,
        false,
        "the event column holding its severity",
    ),
    key(
        "columns",
        KeyKind::Columns,
        false,
        "the event columns a list shows",
    ),
];

const METRIC: &[ConfigKey] = &[
    MODE,
    key(
        "shape",
        KeyKind::OneOf(&["series"]),
        false,
        "series: the tool answers a metric bucketed over time (without it: one aggregate per item, or a ranking)",
    ),
];

const GRAPH: &[ConfigKey] = &[
    MODE,
    key(
        "max_nodes",
        KeyKind::Number,
        false,
        "the most nodes one traversal returns",
    ),
];

const DOCUMENT: &[ConfigKey] = &[
    MODE,
    key("table", KeyKind::Table, true, "the table of documents"),
    key(
        "id_column",
        KeyKind::Column,
        true,
        "the column holding each document's id",
    ),
    key(
        "title_column",
        KeyKind::Column,
        true,
        "the column holding its title",
    ),
    key(
        "content_column",
        KeyKind::Column,
        true,
        "the column holding its text",
    ),
    key(
        "columns",
        KeyKind::Columns,
        false,
        "the columns a result shows",
    ),
    key(
        "title_weight",
        KeyKind::Number,
        false,
        "how much a term found in the title counts (default 1)",
    ),
    key(
        "content_weight",
        KeyKind::Number,
        false,
        "how much a term found in the text counts (default 1)",
    ),
];

/// The keys a tool of `mode` takes.
pub fn keys(mode: Mode) -> &'static [ConfigKey] {
    match mode {
        Mode::Config => CONFIG,
        Mode::History => HISTORY,
        Mode::Metric => METRIC,
        Mode::Graph => GRAPH,
        Mode::Document => DOCUMENT,
    }
}

/// The names of the keys a tool of `mode` takes, for messages.
pub fn key_names(mode: Mode) -> String {
    keys(mode)
        .iter()
        .map(|k| k.key)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_takes_mode_and_no_key_twice() {
        for mode in Mode::ALL {
            let names: Vec<&str> = keys(*mode).iter().map(|k| k.key).collect();
            assert_eq!(names.first(), Some(&"mode"), "{mode}");
            let unique: std::collections::BTreeSet<&&str> = names.iter().collect();
            assert_eq!(unique.len(), names.len(), "{mode}: {names:?}");
        }
    }
}
