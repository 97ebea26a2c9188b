//! What ScanSchema infers from a source's data for the admin to review: the tenant column
//! (the column holding the caller's tenant id, whatever it is called), each column's semantic
//! type from a profile of its values, a metric mapping for a long-form time-series table, a
//! graph mapping for an edge table, and synonyms from the built-in bilingual glossary.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use ops_proto::executor::{ColumnProfile, ScannedColumn, ScannedTable};
use ops_proto::v1::{
    CatalogColumn, CatalogTable, DependencyDirection, GraphMapping, MetricDefinition,
    MetricMapping, RelationType, SchemaCatalogSpec, SemanticType, VocabularyEntry,
};

/// The built-in glossary (`controlplane/assets/glossary.yaml`).
pub const GLOSSARY_YAML: &str = include_str!("../../assets/glossary.yaml");

/// A column with at most this many distinct values in the sample is enum-like (its values are
/// listed and it is filterable).
pub const MAX_ENUM_VALUES: u32 = 50;

/// Text longer than this is prose, not a name.
const MAX_NAME_LENGTH: u32 = 60;

/// Groups of words that mean the same; empty if the embedded file does not parse (a unit
/// test parses it).
fn glossary() -> &'static [Vec<String>] {
    #[derive(serde::Deserialize)]
    struct Glossary {
        groups: Vec<Vec<String>>,
    }
    static GROUPS: OnceLock<Vec<Vec<String>>> = OnceLock::new();
    GROUPS.get_or_init(|| {
        serde_yaml::from_str::<Glossary>(GLOSSARY_YAML)
            .map(|g| g.groups)
            .unwrap_or_default()
    })
}

/// A name as the glossary compares it: lower case, `_` and `-` as spaces.
fn glossary_key(text: &str) -> String {
    text.to_lowercase()
        .replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The glossary's other words for `text` (none when no group holds it).
pub fn other_words(text: &str) -> Vec<String> {
    let key = glossary_key(text);
    if key.is_empty() {
        return Vec::new();
    }
    let mut words: Vec<String> = Vec::new();
    for group in glossary() {
        if group.iter().any(|w| glossary_key(w) == key) {
            for word in group {
                if glossary_key(word) != key && !words.contains(word) {
                    words.push(word.clone());
                }
            }
        }
    }
    words
}

/// The column of each table whose sampled rows hold the caller's tenant id (the scan's
/// `find_value`). A table with none gets no entry (a global table, or one the tenant has no
/// rows in).
pub fn tenant_columns(tables: &[ScannedTable]) -> BTreeMap<String, String> {
    let holds = |c: &ScannedColumn| c.profile.as_ref().is_some_and(|p| p.found > 0);
    // Where several columns hold it, the name most tables use wins, then the fewest values.
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for table in tables {
        for column in table.columns.iter().filter(|c| holds(c)) {
            *uses.entry(column.name.as_str()).or_default() += 1;
        }
    }
    tables
        .iter()
        .filter_map(|table| {
            let best = table.columns.iter().filter(|c| holds(c)).max_by_key(|c| {
                let distinct = c.profile.as_ref().map_or(u32::MAX, |p| p.distinct);
                (
                    uses.get(c.name.as_str()).copied(),
                    std::cmp::Reverse(distinct),
                )
            })?;
            Some((table.name.clone(), best.name.clone()))
        })
        .collect()
}

/// A column's semantic type and, for an enum-like column, its values, read from its profile.
pub struct ColumnGuess {
    pub semantic: SemanticType,
    pub filterable: bool,
    pub enum_values: Vec<String>,
}

/// Guesses a column's semantic type. `is_key` marks a primary key or a column referring to
/// another table; `code_taken` says the table has its code column already.
pub fn guess_column(column: &ScannedColumn, is_key: bool, code_taken: bool) -> ColumnGuess {
    let guess = |semantic| ColumnGuess {
        semantic,
        filterable: false,
        enum_values: Vec::new(),
    };
    if is_key {
        return guess(SemanticType::Identifier);
    }
    let Some(p) = column.profile.as_ref().filter(|p| p.non_null > 0) else {
        return guess(SemanticType::Unspecified);
    };
    if p.temporal {
        return guess(SemanticType::Timestamp);
    }
    if p.numeric {
        return guess(SemanticType::Measure);
    }
    let unique = p.distinct == p.non_null;
    if !p.values.is_empty() && !unique {
        return ColumnGuess {
            semantic: SemanticType::Attribute,
            filterable: true,
            enum_values: p.values.iter().map(|v| v.value.clone()).collect(),
        };
    }
    if p.max_length > MAX_NAME_LENGTH {
        return guess(SemanticType::Text);
    }
    if unique && p.with_spaces == 0 && !code_taken {
        return guess(SemanticType::Code);
    }
    if mostly_unique(p) && p.with_spaces > 0 {
        return guess(SemanticType::Name);
    }
    guess(SemanticType::Attribute)
}

fn mostly_unique(p: &ColumnProfile) -> bool {
    u64::from(p.distinct) * 10 >= u64::from(p.non_null) * 9
}

/// The columns of a table that refer to other tables: declared foreign keys, else a column
/// named like another table's single-column primary key (`ci_id` → `ci_master.ci_id`), or
/// ending with it (`source_ci_id`).
pub fn references(table: &ScannedTable, tables: &[ScannedTable]) -> Vec<(String, String)> {
    let mut refs: Vec<(String, String)> = Vec::new();
    for fk in &table.foreign_keys {
        if let [column] = fk.columns.as_slice() {
            refs.push((column.clone(), fk.referenced_table.clone()));
        }
    }
    for column in &table.columns {
        if column.primary_key || refs.iter().any(|(c, _)| c == &column.name) {
            continue;
        }
        let target = tables.iter().find(|other| {
            other.name != table.name
                && primary_key(other)
                    .is_some_and(|pk| column.name == pk || column.name.ends_with(&format!("_{pk}")))
        });
        if let Some(target) = target {
            refs.push((column.name.clone(), target.name.clone()));
        }
    }
    // In the table's column order: the first of two references is the edge's source.
    let position = |name: &str| table.columns.iter().position(|c| c.name == name);
    refs.sort_by_key(|(column, _)| position(column));
    refs
}

/// A table's single-column primary key.
pub fn primary_key(table: &ScannedTable) -> Option<&str> {
    let mut keys = table.columns.iter().filter(|c| c.primary_key);
    match (keys.next(), keys.next()) {
        (Some(key), None) => Some(&key.name),
        _ => None,
    }
}

/// The single-column primary key of the scanned table `name` (empty when it has none).
fn primary_key_of(scanned: &[ScannedTable], name: &str) -> String {
    scanned
        .iter()
        .find(|t| t.name == name)
        .and_then(primary_key)
        .unwrap_or_default()
        .to_owned()
}

fn column_of(table: &CatalogTable, semantic: SemanticType) -> Option<&CatalogColumn> {
    table
        .columns
        .iter()
        .find(|c| c.semantic_type == semantic as i32)
}

fn words_of(name: &str) -> String {
    name.replace('_', " ")
}

/// A metric mapping for the first long-form time-series table: one column referring to the
/// items, an enum-like column naming the metric, a timestamp and a numeric value.
pub fn metric_mapping(
    catalog: &[CatalogTable],
    scanned: &[ScannedTable],
    tenant_columns: &BTreeMap<String, String>,
) -> Option<(MetricMapping, String)> {
    for table in scanned {
        let Some(catalogued) = catalog.iter().find(|t| t.name == table.name) else {
            continue;
        };
        let refs = references(table, scanned);
        let [(entity_column, entity_table)] = refs.as_slice() else {
            continue;
        };
        let tenant = tenant_columns.get(&table.name).cloned().unwrap_or_default();
        let of = |semantic: SemanticType| {
            catalogued
                .columns
                .iter()
                .filter(|c| c.semantic_type == semantic as i32 && c.name != tenant)
                .collect::<Vec<_>>()
        };
        let (names, times, values) = (
            of(SemanticType::Attribute),
            of(SemanticType::Timestamp),
            of(SemanticType::Measure),
        );
        let ([name], [time], [value]) = (names.as_slice(), times.as_slice(), values.as_slice())
        else {
            continue;
        };
        let Some(entity) = catalog.iter().find(|t| &t.name == entity_table) else {
            continue;
        };
        let entity_code = column_of(entity, SemanticType::Code)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let entity_id = primary_key_of(scanned, entity_table);
        let metrics: Vec<MetricDefinition> = name
            .enum_values
            .iter()
            .map(|m| MetricDefinition {
                name: m.clone(),
                display_name: words_of(m),
                synonyms: other_words(m),
                unit: String::new(),
            })
            .collect();
        let note = format!(
            "metric mapping proposed from {}: {} per {entity_column} (→ {entity_table}), named by {}, at {}; metrics {} — add each metric's unit",
            table.name,
            value.name,
            name.name,
            time.name,
            name.enum_values.join(", ")
        );
        return Some((
            MetricMapping {
                table: table.name.clone(),
                entity_column: entity_column.clone(),
                metric_name_column: name.name.clone(),
                timestamp_column: time.name.clone(),
                value_column: value.name.clone(),
                metrics,
                tenant_column: tenant,
                entity_table: entity_table.clone(),
                entity_id_column: entity_id,
                entity_code_column: entity_code,
            },
            note,
        ));
    }
    None
}

/// Relation words whose target depends on their source ("A feeds B": B needs A); others are
/// read as "the source depends on the target" (depends_on, runs_on, connected_to), and
/// monitoring is no dependency. A guess the note asks the admin to review.
fn relation_direction(name: &str) -> DependencyDirection {
    const TARGET_ON_SOURCE: [&str; 9] = [
        "part_of", "controls", "drives", "feeds", "supplies", "powers", "hosts", "contains",
        "serves",
    ];
    const NONE: [&str; 3] = ["monitors", "observes", "watches"];
    let key = name.to_lowercase().replace([' ', '-'], "_");
    if NONE.iter().any(|w| key.starts_with(w)) {
        DependencyDirection::None
    } else if TARGET_ON_SOURCE.iter().any(|w| key.starts_with(w)) {
        DependencyDirection::TargetOnSource
    } else {
        DependencyDirection::SourceOnTarget
    }
}

/// A graph mapping for the first edge table: two columns referring to the same table and an
/// enum-like column naming the relation.
pub fn graph_mapping(
    catalog: &[CatalogTable],
    scanned: &[ScannedTable],
    tenant_columns: &BTreeMap<String, String>,
) -> Option<(GraphMapping, String)> {
    for table in scanned {
        let Some(catalogued) = catalog.iter().find(|t| t.name == table.name) else {
            continue;
        };
        let refs = references(table, scanned);
        let [(source, node_table), (target, other)] = refs.as_slice() else {
            continue;
        };
        if node_table != other {
            continue;
        }
        let tenant = tenant_columns.get(&table.name).cloned().unwrap_or_default();
        let kinds: Vec<&CatalogColumn> = catalogued
            .columns
            .iter()
            .filter(|c| c.semantic_type == SemanticType::Attribute as i32 && c.name != tenant)
            .filter(|c| !c.enum_values.is_empty())
            .collect();
        let [relation] = kinds.as_slice() else {
            continue;
        };
        let Some(nodes) = catalog.iter().find(|t| &t.name == node_table) else {
            continue;
        };
        let node_id = primary_key_of(scanned, node_table);
        let relation_types: Vec<RelationType> = relation
            .enum_values
            .iter()
            .map(|name| RelationType {
                name: name.clone(),
                direction: relation_direction(name) as i32,
                display_name: words_of(name),
                synonyms: other_words(name),
            })
            .collect();
        let directions: Vec<String> = relation_types
            .iter()
            .map(|r| {
                let d = match DependencyDirection::try_from(r.direction) {
                    Ok(DependencyDirection::TargetOnSource) => "target depends on source",
                    Ok(DependencyDirection::None) => "no dependency",
                    _ => "source depends on target",
                };
                format!("{} ({d})", r.name)
            })
            .collect();
        // The node column naming what a node is: an enum-like attribute called a type or kind.
        let kind_column = nodes
            .columns
            .iter()
            .find(|c| {
                c.filterable
                    && ["type", "kind", "class", "category"]
                        .iter()
                        .any(|w| c.name.contains(w))
            })
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let tenant_on_both = tenant_columns.get(node_table) == Some(&tenant);
        let note = format!(
            "graph mapping proposed from {}: {source} → {target} over {node_table}, relation in {}; directions guessed, review them: {}",
            table.name,
            relation.name,
            directions.join(", ")
        );
        return Some((
            GraphMapping {
                node_table: node_table.clone(),
                node_id_column: node_id,
                node_code_column: column_of(nodes, SemanticType::Code)
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                edge_table: table.name.clone(),
                edge_source_column: source.clone(),
                edge_target_column: target.clone(),
                edge_type_column: relation.name.clone(),
                relation_types,
                tenant_column: if tenant_on_both {
                    tenant
                } else {
                    String::new()
                },
                node_label_column: column_of(nodes, SemanticType::Name)
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                node_kind_column: kind_column,
                composition_relation_types: Vec::new(),
            },
            note,
        ));
    }
    None
}

/// Planner vocabulary for the enum values the glossary knows: `value:<table>.<column>=<value>`
/// with the glossary's other words for it.
pub fn value_vocabulary(catalog: &SchemaCatalogSpec) -> Vec<VocabularyEntry> {
    // Metric names and relation types get their synonyms in the mappings instead.
    let mapped: Vec<(&str, &str)> = catalog
        .metrics
        .iter()
        .map(|m| (m.table.as_str(), m.metric_name_column.as_str()))
        .chain(
            catalog
                .graph
                .iter()
                .map(|g| (g.edge_table.as_str(), g.edge_type_column.as_str())),
        )
        .collect();
    let mut entries = Vec::new();
    for table in &catalog.tables {
        for column in table
            .columns
            .iter()
            .filter(|c| c.filterable && !mapped.contains(&(table.name.as_str(), c.name.as_str())))
        {
            for value in &column.enum_values {
                let terms = other_words(value);
                if !terms.is_empty() {
                    entries.push(VocabularyEntry {
                        meaning: format!("value:{}.{}={value}", table.name, column.name),
                        terms,
                    });
                }
            }
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_glossary_parses_and_finds_words_in_either_language() {
        assert!(glossary().len() > 100, "{}", glossary().len());
        assert!(other_words("Linux").contains(&"리눅스".to_owned()));
        assert!(other_words("리눅스").contains(&"linux".to_owned()));
        assert!(other_words("under_maintenance").contains(&"점검 중".to_owned()));
        assert!(other_words("GT-01").is_empty());
    }

    #[test]
    fn relation_directions_are_guessed_from_the_relation_word() {
        assert_eq!(
            relation_direction("depends_on"),
            DependencyDirection::SourceOnTarget
        );
        assert_eq!(
            relation_direction("feeds"),
            DependencyDirection::TargetOnSource
        );
        assert_eq!(relation_direction("monitors"), DependencyDirection::None);
    }
}
