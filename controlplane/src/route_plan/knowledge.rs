//! Builds the planner's [`Knowledge`] of one tenant from published assets and rows the source
//! returned (the tenant's CIs and the values of filterable columns).

use std::collections::{BTreeMap, BTreeSet};

use ops_proto::v1::{
    CatalogColumn, PolicySpec, PromptSpec, ResolverSpec, SchemaCatalogSpec, SemanticType,
};

use super::plan_kind::Mode;
use super::planner::{ColumnValue, Entity, Knowledge, Patterns, RejectRule, ToolChoice};
use super::resolver::{ResolverEngine, compile_bounded};
use super::vocabulary::Vocabulary;

fn compile(pattern: &str) -> Result<regex::Regex, String> {
    compile_bounded(pattern).map_err(|e| format!("pattern {pattern:?} does not compile: {e}"))
}

/// The catalog's columns of `table` (none when the catalog has no such table).
pub fn table_columns<'c>(
    catalog: &'c SchemaCatalogSpec,
    table: &str,
) -> impl Iterator<Item = &'c CatalogColumn> {
    catalog
        .tables
        .iter()
        .filter(move |t| t.name == table)
        .flat_map(|t| t.columns.iter())
}

/// Rows of one table as column → text (null cells absent).
pub type Rows = Vec<BTreeMap<String, String>>;

/// The assets ROUTE+PLAN reads.
pub struct PlannerAssets<'a> {
    pub prompt: Option<&'a PromptSpec>,
    pub catalog: &'a SchemaCatalogSpec,
    pub policy: Option<(&'a str, &'a PolicySpec)>,
    pub resolver: Option<&'a ResolverSpec>,
    pub tools: Vec<ToolChoice>,
}

/// `rows` maps each catalog table name to the tenant's rows of it (only the entity table is
/// required; other tables contribute the values of their filterable columns).
pub fn build(
    assets: PlannerAssets<'_>,
    rows: &BTreeMap<String, Rows>,
) -> Result<Knowledge, String> {
    let vocabulary = Vocabulary::with_base(
        assets
            .prompt
            .map(|p| p.vocabulary.as_slice())
            .unwrap_or_default(),
    );
    let resolver = assets.resolver.map(ResolverEngine::compile).transpose()?;
    let code_pattern = vocabulary
        .terms("pattern:ci_code")
        .first()
        .map(|p| compile(p))
        .transpose()?;
    let mut reject_rules = Vec::new();
    let mut restricted_tables = Vec::new();
    let mut policy_name = String::new();
    if let Some((name, policy)) = assets.policy {
        policy_name = name.to_owned();
        restricted_tables = policy.restricted_tables.clone();
        for rule in &policy.reject_rules {
            reject_rules.push(RejectRule {
                name: rule.name.clone(),
                reason: rule.reason.clone(),
                terms: rule.terms.iter().map(|t| t.to_lowercase()).collect(),
                patterns: rule
                    .patterns
                    .iter()
                    .map(|p| compile(p))
                    .collect::<Result<_, _>>()?,
            });
        }
    }
    let entity_table = assets
        .tools
        .iter()
        .find(|t| t.mode == Some(Mode::Config))
        .map(|t| t.table.clone())
        .unwrap_or_default();
    let entities = entities(assets.catalog, &entity_table, rows.get(&entity_table));
    let values = values(assets.catalog, rows);
    let patterns = Patterns::compile(&vocabulary)?;
    Ok(Knowledge {
        vocabulary,
        resolver,
        catalog: assets.catalog.clone(),
        entities,
        values,
        reject_rules,
        restricted_tables,
        policy_name,
        tools: assets.tools,
        code_pattern,
        patterns,
    })
}

/// CIs: the code column (semantic CODE), names (semantic NAME) and filterable attributes.
fn entities(catalog: &SchemaCatalogSpec, table: &str, rows: Option<&Rows>) -> Vec<Entity> {
    let Some(table) = catalog.tables.iter().find(|t| t.name == table) else {
        return Vec::new();
    };
    let of = |semantic: SemanticType| -> Vec<&str> {
        table
            .columns
            .iter()
            .filter(|c| c.semantic_type == semantic as i32)
            .map(|c| c.name.as_str())
            .collect()
    };
    let Some(code_column) = of(SemanticType::Code).first().copied() else {
        return Vec::new();
    };
    let names = of(SemanticType::Name);
    let filterable: Vec<&str> = table
        .columns
        .iter()
        .filter(|c| c.filterable)
        .map(|c| c.name.as_str())
        .collect();
    rows.into_iter()
        .flatten()
        .filter_map(|row| {
            Some(Entity {
                code: row.get(code_column)?.clone(),
                names: names.iter().filter_map(|n| row.get(*n).cloned()).collect(),
                attributes: filterable
                    .iter()
                    .filter_map(|c| row.get(*c).map(|v| ((*c).to_owned(), v.clone())))
                    .collect(),
            })
        })
        .collect()
}

/// Distinct values of every filterable column, from the rows and the catalog's enum values.
fn values(catalog: &SchemaCatalogSpec, rows: &BTreeMap<String, Rows>) -> Vec<ColumnValue> {
    let mut out = Vec::new();
    for table in catalog.tables.iter().filter(|t| t.enabled) {
        for column in table.columns.iter().filter(|c| c.filterable) {
            let mut seen: BTreeSet<&str> = column.enum_values.iter().map(String::as_str).collect();
            for row in rows.get(&table.name).into_iter().flatten() {
                if let Some(v) = row.get(&column.name) {
                    seen.insert(v);
                }
            }
            out.extend(
                seen.into_iter()
                    .filter(|v| !v.is_empty())
                    .map(|v| ColumnValue {
                        table: table.name.clone(),
                        column: column.name.clone(),
                        value: v.to_owned(),
                    }),
            );
        }
    }
    out
}

/// A Tool asset's config as the planner reads it: its `mode` is typed here, once.
pub fn tool_choice(name: &str, config: &serde_json::Value) -> ToolChoice {
    let text = |key: &str| {
        config
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    ToolChoice {
        name: name.to_owned(),
        mode: text("mode").parse().ok(),
        shape: text("shape"),
        table: text("table"),
        config: config.clone(),
    }
}
