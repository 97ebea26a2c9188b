//! Per-type validation of asset content. Structural checks only: references to other assets
//! are collected here and resolved against the store by the registry service.

use std::collections::HashSet;

use ops_proto::v1::{
    AssetContent, AssetType, BlockType, CatalogTable, DeclarativeMapping, DeclarativeScreen,
    MappingSpec, ParamType, PolicySpec, PromptPurpose, PromptSpec, QuerySpec, ResolverRuleType,
    ResolverSpec, ResolverTransform, SchemaCatalogSpec, ScreenLayout, ScreenSpec, Severity,
    SourceKind, SourceSpec, SqlDialect, ToolSpec, ToolType, Violation, asset_spec, mapping_spec,
    screen_spec,
};

use super::bindings;
use crate::model::plan_kind::Mode;
use crate::model::refs::type_slug;
use crate::model::sentences::Sentences;
use crate::model::tool_config::{self, KeyKind};
use crate::validate::sql_guard::{self, GuardPolicy};

/// Upper bounds that keep limits sane.
const MAX_ROWS: u32 = 1_000_000;
const MAX_TIMEOUT_MS: u32 = 600_000;
const INTENTS: &[&str] = &["config", "metric", "history", "graph", "document"];

pub fn violation(field: &str, kind: &str, rule: &str, message: impl Into<String>) -> Violation {
    Violation {
        field: field.to_owned(),
        r#type: kind.to_owned(),
        rule: rule.to_owned(),
        message: message.into(),
        expected: String::new(),
        actual: String::new(),
        severity: Severity::Error as i32,
        blocking: true,
    }
}

fn warning(field: &str, kind: &str, rule: &str, message: impl Into<String>) -> Violation {
    Violation {
        severity: Severity::Warning as i32,
        blocking: false,
        ..violation(field, kind, rule, message)
    }
}

/// A reference found in a spec, to be resolved against the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecReference {
    pub field: String,
    pub text: String,
    pub expected: AssetType,
}

/// What validation needs beyond the content itself.
#[derive(Debug, Clone, Default)]
pub struct ValidationContext {
    /// Dialect of the Source a Query references, when it resolved.
    pub query_dialect: Option<sql_guard::Dialect>,
    /// Restricted tables and extra functions from the tenant's published policies.
    pub guard_policy: GuardPolicy,
    /// The published SchemaCatalog a Tool's `catalog_ref` names, when it resolved: its config's
    /// tables and columns are checked against it.
    pub tool_catalog: Option<SchemaCatalogSpec>,
}

/// Collects every violation of `content` for an asset of type `asset_type`.
pub fn validate_content(
    asset_type: AssetType,
    content: &AssetContent,
    ctx: &ValidationContext,
) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Err(message) =
        bindings::check_bindings(asset_type, &content.bindings().collect::<Vec<_>>())
    {
        out.push(violation(
            "content.bindings",
            "binding",
            "binding.allowed_stage",
            message,
        ));
    }
    if content.description.chars().count() > 4096 {
        out.push(violation(
            "content.description",
            "limits",
            "limits.description_length",
            "description is longer than 4096 characters",
        ));
    }
    if content.tags.len() > 64
        || content
            .tags
            .iter()
            .any(|t| t.is_empty() || t.chars().count() > 64)
    {
        out.push(violation(
            "content.tags",
            "limits",
            "limits.tags",
            "expected at most 64 tags of 1-64 characters",
        ));
    }
    let Some(kind) = content.spec.as_ref().and_then(|s| s.kind.as_ref()) else {
        out.push(violation(
            &format!("content.spec.{}", type_slug(asset_type)),
            "spec",
            "spec.required",
            format!(
                "a {} asset needs spec.{}",
                type_slug(asset_type),
                type_slug(asset_type)
            ),
        ));
        return out;
    };
    let spec_type = spec_type(kind);
    if spec_type != asset_type {
        out.push(violation(
            "content.spec",
            "spec",
            "spec.type_matches",
            format!(
                "spec holds a {} spec but the asset type is {}",
                type_slug(spec_type),
                type_slug(asset_type)
            ),
        ));
        return out;
    }
    let field = format!("content.spec.{}", type_slug(asset_type));
    let mut v = Checker {
        field: &field,
        out: &mut out,
    };
    match kind {
        asset_spec::Kind::Source(s) => v.source(s),
        asset_spec::Kind::SchemaCatalog(s) => v.schema_catalog(s),
        asset_spec::Kind::Resolver(s) => v.resolver(s),
        asset_spec::Kind::Query(s) => v.query(s, ctx),
        asset_spec::Kind::Mapping(s) => v.mapping(s),
        asset_spec::Kind::Prompt(s) => v.prompt(s),
        asset_spec::Kind::Policy(s) => v.policy(s),
        asset_spec::Kind::Screen(s) => v.screen(s),
        asset_spec::Kind::Tool(s) => v.tool(s, ctx.tool_catalog.as_ref()),
    }
    out
}

pub fn spec_type(kind: &asset_spec::Kind) -> AssetType {
    match kind {
        asset_spec::Kind::Source(_) => AssetType::Source,
        asset_spec::Kind::SchemaCatalog(_) => AssetType::SchemaCatalog,
        asset_spec::Kind::Resolver(_) => AssetType::Resolver,
        asset_spec::Kind::Query(_) => AssetType::Query,
        asset_spec::Kind::Mapping(_) => AssetType::Mapping,
        asset_spec::Kind::Prompt(_) => AssetType::Prompt,
        asset_spec::Kind::Policy(_) => AssetType::Policy,
        asset_spec::Kind::Screen(_) => AssetType::Screen,
        asset_spec::Kind::Tool(_) => AssetType::Tool,
    }
}

/// Every asset reference a spec holds, with the type each field expects.
pub fn references(content: &AssetContent) -> Vec<SpecReference> {
    let mut refs = Vec::new();
    let mut push = |field: String, text: &str, expected: AssetType| {
        if !text.trim().is_empty() {
            refs.push(SpecReference {
                field,
                text: text.trim().to_owned(),
                expected,
            });
        }
    };
    match content.spec.as_ref().and_then(|s| s.kind.as_ref()) {
        Some(asset_spec::Kind::SchemaCatalog(s)) => {
            push(
                "content.spec.schema_catalog.source_ref".into(),
                &s.source_ref,
                AssetType::Source,
            );
        }
        Some(asset_spec::Kind::Query(s)) => {
            push(
                "content.spec.query.source_ref".into(),
                &s.source_ref,
                AssetType::Source,
            );
        }
        Some(asset_spec::Kind::Tool(s)) => {
            push(
                "content.spec.tool.query_ref".into(),
                &s.query_ref,
                AssetType::Query,
            );
            push(
                "content.spec.tool.source_ref".into(),
                &s.source_ref,
                AssetType::Source,
            );
            push(
                "content.spec.tool.catalog_ref".into(),
                &s.catalog_ref,
                AssetType::SchemaCatalog,
            );
        }
        Some(asset_spec::Kind::Policy(s)) => {
            for (i, r) in s.fallback_sources.iter().enumerate() {
                push(
                    format!("content.spec.policy.fallback_sources[{i}]"),
                    r,
                    AssetType::Source,
                );
            }
        }
        _ => {}
    }
    refs
}

struct Checker<'a> {
    field: &'a str,
    out: &'a mut Vec<Violation>,
}

impl Checker<'_> {
    fn err(&mut self, sub: &str, kind: &str, rule: &str, message: impl Into<String>) {
        let field = join(self.field, sub);
        self.out.push(violation(&field, kind, rule, message));
    }

    fn warn(&mut self, sub: &str, kind: &str, rule: &str, message: impl Into<String>) {
        let field = join(self.field, sub);
        self.out.push(warning(&field, kind, rule, message));
    }

    fn limit(&mut self, sub: &str, value: u64, max: u64) {
        if value > max {
            let field = join(self.field, sub);
            let mut v = violation(
                &field,
                "limits",
                "limits.range",
                format!("{sub} is {value}; at most {max} is allowed"),
            );
            v.expected = format!("<= {max}");
            v.actual = value.to_string();
            self.out.push(v);
        }
    }

    fn regex(&mut self, sub: &str, pattern: &str) {
        if pattern.is_empty() {
            self.err(
                sub,
                "regex",
                "regex.required",
                "a regular expression is required",
            );
            return;
        }
        if let Err(e) = crate::route_plan::resolver::compile_bounded(pattern) {
            self.err(
                sub,
                "regex",
                "regex.compiles",
                format!("regular expression does not compile: {e}"),
            );
        }
    }

    fn template(&mut self, sub: &str, template: &str) {
        if let Err(e) = parse_template(template) {
            self.err(sub, "template", "template.parses", e);
        }
    }

    fn unique<'s>(&mut self, sub: &str, names: impl Iterator<Item = &'s str>, what: &str) {
        let mut seen = HashSet::new();
        for name in names {
            if name.trim().is_empty() {
                self.err(
                    sub,
                    "spec",
                    "spec.name_required",
                    format!("every {what} needs a name"),
                );
            } else if !seen.insert(name.to_lowercase()) {
                self.err(
                    sub,
                    "spec",
                    "spec.unique_names",
                    format!("{what} {name:?} appears more than once"),
                );
            }
        }
    }

    fn source(&mut self, s: &SourceSpec) {
        let kind = SourceKind::try_from(s.kind).unwrap_or_default();
        if kind == SourceKind::Unspecified {
            self.err(
                "kind",
                "spec",
                "source.kind",
                "kind is required: SOURCE_KIND_POSTGRES, SOURCE_KIND_MYSQL or SOURCE_KIND_SQLITE",
            );
        }
        let conn = s.connection.clone().unwrap_or_default();
        match kind {
            SourceKind::Sqlite if conn.path.is_empty() => {
                self.err(
                    "connection.path",
                    "spec",
                    "source.connection",
                    "a SQLite source needs connection.path",
                );
            }
            SourceKind::Postgres | SourceKind::Mysql => {
                if conn.host.is_empty() {
                    self.err(
                        "connection.host",
                        "spec",
                        "source.connection",
                        "connection.host is required",
                    );
                }
                if conn.database.is_empty() {
                    self.err(
                        "connection.database",
                        "spec",
                        "source.connection",
                        "connection.database is required",
                    );
                }
            }
            _ => {}
        }
        self.limit("connection.port", u64::from(conn.port), 65_535);
        if !conn.password_ref.is_empty() && !crate::secrets::is_reference(&conn.password_ref) {
            self.err(
                "connection.password_ref",
                "secret",
                "source.no_plaintext_secret",
                "password_ref must be a reference such as env:NAME or file:PATH, never the password itself",
            );
        }
        for (key, value) in &conn.options {
            if looks_secret(key) && !crate::secrets::is_reference(value) {
                self.err(
                    &format!("connection.options.{key}"),
                    "secret",
                    "source.no_plaintext_secret",
                    format!("option {key:?} looks like a credential: store a reference (env:NAME or file:PATH) instead"),
                );
            }
        }
        let mut plain = vec![
            ("connection.host", &conn.host),
            ("connection.database", &conn.database),
            ("connection.path", &conn.path),
            ("connection.user", &conn.user),
        ];
        let option_fields: Vec<(String, &String)> = conn
            .options
            .iter()
            .map(|(k, v)| (format!("connection.options.{k}"), v))
            .collect();
        for (field, value) in option_fields.iter().map(|(f, v)| (f.as_str(), *v)) {
            plain.push((field, value));
        }
        for (field, value) in plain {
            if has_url_credentials(value) {
                self.err(
                    field,
                    "secret",
                    "source.no_plaintext_secret",
                    "a URL with user:password@ embeds a credential: use connection.password_ref",
                );
            }
        }
        let permissions = s.permissions.clone().unwrap_or_default();
        if !permissions.read_only {
            self.err(
                "permissions.read_only",
                "spec",
                "source.read_only",
                "permissions.read_only must be true: OPS only reads",
            );
        }
        for (i, schema) in permissions.schema_allowlist.iter().enumerate() {
            if schema.trim().is_empty() {
                self.err(
                    &format!("permissions.schema_allowlist[{i}]"),
                    "spec",
                    "source.schema_allowlist",
                    "schema names must not be empty",
                );
            }
        }
        let limits = s.limits.unwrap_or_default();
        self.limit(
            "limits.max_rows",
            u64::from(limits.max_rows),
            u64::from(MAX_ROWS),
        );
        self.limit(
            "limits.max_duration_ms",
            u64::from(limits.max_duration_ms),
            u64::from(MAX_TIMEOUT_MS),
        );
        self.limit(
            "limits.max_connections",
            u64::from(limits.max_connections),
            256,
        );
        self.limit("limits.max_result_bytes", limits.max_result_bytes, 1 << 30);
    }

    fn schema_catalog(&mut self, s: &SchemaCatalogSpec) {
        if s.source_ref.trim().is_empty() {
            self.err(
                "source_ref",
                "reference",
                "reference.required",
                "source_ref is required (e.g. source:plant_ops)",
            );
        }
        self.unique("tables", s.tables.iter().map(|t| t.name.as_str()), "table");
        for (i, table) in s.tables.iter().enumerate() {
            self.unique(
                &format!("tables[{i}].columns"),
                table.columns.iter().map(|c| c.name.as_str()),
                "column",
            );
            if !table.tenant_column.is_empty()
                && !table.columns.is_empty()
                && !table.columns.iter().any(|c| c.name == table.tenant_column)
            {
                self.err(
                    &format!("tables[{i}].tenant_column"),
                    "spec",
                    "catalog.tenant_column",
                    format!(
                        "tenant column {:?} is not a column of table {:?}",
                        table.tenant_column, table.name
                    ),
                );
            }
        }
        for (sub, globs) in [
            ("include_tables", &s.include_tables),
            ("exclude_tables", &s.exclude_tables),
        ] {
            for (i, glob) in globs.iter().enumerate() {
                if let Err(e) = glob_to_regex(glob) {
                    self.err(&format!("{sub}[{i}]"), "regex", "catalog.glob", e);
                }
            }
        }
        if let Some(graph) = &s.graph {
            self.unique(
                "graph.relation_types",
                graph.relation_types.iter().map(|r| r.name.as_str()),
                "relation type",
            );
            for (i, rel) in graph.relation_types.iter().enumerate() {
                if rel.direction == 0 {
                    self.err(
                        &format!("graph.relation_types[{i}].direction"),
                        "spec",
                        "catalog.relation_direction",
                        format!("relation type {:?} needs a dependency direction", rel.name),
                    );
                }
            }
            if !graph.relation_types.is_empty()
                && (graph.edge_table.is_empty()
                    || graph.edge_source_column.is_empty()
                    || graph.edge_target_column.is_empty()
                    || graph.edge_type_column.is_empty())
            {
                self.err("graph", "spec", "catalog.graph_mapping", "graph needs edge_table, edge_source_column, edge_target_column and edge_type_column");
            }
        }
        if let Some(metrics) = &s.metrics {
            self.unique(
                "metrics.metrics",
                metrics.metrics.iter().map(|m| m.name.as_str()),
                "metric",
            );
            if !metrics.metrics.is_empty()
                && [
                    &metrics.table,
                    &metrics.entity_column,
                    &metrics.metric_name_column,
                    &metrics.timestamp_column,
                    &metrics.value_column,
                ]
                .iter()
                .any(|c| c.is_empty())
            {
                self.err("metrics", "spec", "catalog.metric_mapping", "metrics needs table, entity_column, metric_name_column, timestamp_column and value_column");
            }
        }
        self.catalog_roles(s);
        for (i, table) in s.tables.iter().enumerate() {
            for (j, column) in table.columns.iter().enumerate() {
                if column.ordered && column.enum_values.len() < 2 {
                    self.err(
                        &format!("tables[{i}].columns[{j}].ordered"),
                        "spec",
                        "catalog.ordered",
                        format!(
                            "{}.{} is ordered but lists {} enum_values: an ordered column needs its values from the highest to the lowest",
                            table.name,
                            column.name,
                            column.enum_values.len()
                        ),
                    );
                }
            }
        }
    }

    /// Every table and column a graph or metric mapping gives a role must be catalogued (a
    /// misspelt role would otherwise make every graph or metric question fail at run time).
    fn catalog_roles(&mut self, s: &SchemaCatalogSpec) {
        // (the field naming a table, the table, the fields naming its columns and the columns)
        type Role<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);
        let mut roles: Vec<Role> = Vec::new();
        if let Some(g) = &s.graph {
            roles.push((
                "graph.node_table",
                &g.node_table,
                vec![
                    ("graph.node_id_column", g.node_id_column.as_str()),
                    ("graph.node_code_column", &g.node_code_column),
                    ("graph.node_label_column", &g.node_label_column),
                    ("graph.node_kind_column", &g.node_kind_column),
                    ("graph.tenant_column", &g.tenant_column),
                ],
            ));
            roles.push((
                "graph.edge_table",
                &g.edge_table,
                vec![
                    ("graph.edge_source_column", g.edge_source_column.as_str()),
                    ("graph.edge_target_column", &g.edge_target_column),
                    ("graph.edge_type_column", &g.edge_type_column),
                    ("graph.tenant_column", &g.tenant_column),
                ],
            ));
            for (i, name) in g.composition_relation_types.iter().enumerate() {
                if !g.relation_types.iter().any(|r| &r.name == name) {
                    self.err(
                        &format!("graph.composition_relation_types[{i}]"),
                        "spec",
                        "catalog.role",
                        format!(
                            "composition relation type {name:?} is not one of graph.relation_types"
                        ),
                    );
                }
            }
        }
        if let Some(m) = &s.metrics {
            roles.push((
                "metrics.table",
                &m.table,
                vec![
                    ("metrics.entity_column", m.entity_column.as_str()),
                    ("metrics.metric_name_column", &m.metric_name_column),
                    ("metrics.timestamp_column", &m.timestamp_column),
                    ("metrics.value_column", &m.value_column),
                    ("metrics.tenant_column", &m.tenant_column),
                ],
            ));
            roles.push((
                "metrics.entity_table",
                &m.entity_table,
                vec![
                    ("metrics.entity_id_column", m.entity_id_column.as_str()),
                    ("metrics.entity_code_column", &m.entity_code_column),
                ],
            ));
        }
        // Metric and graph reads are scoped by the mapping's tenant column alone: a mapping
        // over a table that has one must name it, or every tenant would read every row.
        let scoped = |name: &str| {
            s.tables
                .iter()
                .find(|t| t.name == name)
                .is_some_and(|t| !t.tenant_column.is_empty())
        };
        let mut unscoped: Vec<(&str, &str)> = Vec::new();
        if let Some(m) = &s.metrics
            && m.tenant_column.is_empty()
            && scoped(&m.table)
        {
            unscoped.push(("metrics.tenant_column", m.table.as_str()));
        }
        if let Some(g) = &s.graph
            && g.tenant_column.is_empty()
            && let Some(table) = [&g.node_table, &g.edge_table]
                .into_iter()
                .find(|t| scoped(t))
        {
            unscoped.push(("graph.tenant_column", table.as_str()));
        }
        for (field, table) in unscoped {
            self.err(
                field,
                "spec",
                "catalog.tenant_scope",
                format!("{field} is empty but table {table:?} has a tenant column: name it, or every tenant reads every tenant's rows"),
            );
        }
        for (table_field, table_name, columns) in roles {
            if table_name.is_empty() {
                continue;
            }
            let Some(table) = s.tables.iter().find(|t| t.name == table_name) else {
                let tables: Vec<&str> = s.tables.iter().map(|t| t.name.as_str()).collect();
                self.err(
                    table_field,
                    "spec",
                    "catalog.role",
                    format!(
                        "{table_field} names table {table_name:?}, which the catalog does not list (its tables: {})",
                        tables.join(", ")
                    ),
                );
                continue;
            };
            if table.columns.is_empty() {
                continue;
            }
            for (field, column) in columns {
                if let Some(message) = missing_column(field, column, table) {
                    self.err(field, "spec", "catalog.role", message);
                }
            }
        }
    }

    fn resolver(&mut self, s: &ResolverSpec) {
        self.unique("rules", s.rules.iter().map(|r| r.name.as_str()), "rule");
        for (i, rule) in s.rules.iter().enumerate() {
            let sub = format!("rules[{i}]");
            let data = rule.rule_data.clone().unwrap_or_default();
            match ResolverRuleType::try_from(rule.rule_type).unwrap_or_default() {
                ResolverRuleType::Unspecified => self.err(
                    &format!("{sub}.rule_type"),
                    "spec",
                    "resolver.rule_type",
                    "rule_type is required: ALIAS_MAPPING, PATTERN_RULE or TRANSFORMATION",
                ),
                ResolverRuleType::AliasMapping => {
                    if data.source_entity.trim().is_empty() || data.target_entity.trim().is_empty()
                    {
                        self.err(
                            &format!("{sub}.rule_data"),
                            "spec",
                            "resolver.alias",
                            "an alias rule needs source_entity and target_entity",
                        );
                    }
                }
                ResolverRuleType::PatternRule => {
                    self.regex(&format!("{sub}.rule_data.pattern"), &data.pattern)
                }
                ResolverRuleType::Transformation => {
                    self.regex(&format!("{sub}.rule_data.match"), &data.r#match);
                    if ResolverTransform::try_from(data.transform).unwrap_or_default()
                        == ResolverTransform::Unspecified
                    {
                        self.err(
                            &format!("{sub}.rule_data.transform"),
                            "spec",
                            "resolver.transform",
                            "transform is required (e.g. RESOLVER_TRANSFORM_CI_CODE_NORMALIZE)",
                        );
                    }
                }
            }
        }
    }

    fn query(&mut self, s: &QuerySpec, ctx: &ValidationContext) {
        if s.source_ref.trim().is_empty() {
            self.err(
                "source_ref",
                "reference",
                "reference.required",
                "source_ref is required (e.g. source:plant_ops)",
            );
        }
        self.limit(
            "max_execution_time_ms",
            u64::from(s.max_execution_time_ms),
            u64::from(MAX_TIMEOUT_MS),
        );
        let guard_dialect = match SqlDialect::try_from(s.dialect).unwrap_or_default() {
            SqlDialect::Unspecified => ctx.query_dialect.unwrap_or(sql_guard::Dialect::Generic),
            d => guard_dialect(d),
        };
        let report = sql_guard::check(&s.sql, guard_dialect, &ctx.guard_policy);
        for gv in report.violations {
            let field = join(self.field, "sql");
            let mut v = violation(&field, "sql_guard", gv.rule, gv.message);
            v.expected = gv.expected;
            v.actual = gv.actual;
            self.out.push(v);
        }
        self.unique(
            "params",
            s.params.iter().map(|p| p.name.as_str()),
            "parameter",
        );
        for (i, p) in s.params.iter().enumerate() {
            if !is_identifier(&p.name) {
                self.err(
                    &format!("params[{i}].name"),
                    "spec",
                    "query.param_name",
                    format!(
                        "parameter name {:?} must be an identifier (letters, digits, '_')",
                        p.name
                    ),
                );
            }
            if ParamType::try_from(p.r#type).unwrap_or_default() == ParamType::Unspecified {
                self.err(
                    &format!("params[{i}].type"),
                    "spec",
                    "query.param_type",
                    format!("parameter {:?} needs a type", p.name),
                );
            } else if let Some(default) = &p.default_value
                && !default_matches(p.r#type, default)
            {
                self.err(
                    &format!("params[{i}].default_value"),
                    "spec",
                    "query.param_default",
                    format!(
                        "default of parameter {:?} does not match its declared type",
                        p.name
                    ),
                );
            }
        }
        if let Ok(used) = sql_guard::placeholders(&s.sql, guard_dialect) {
            let declared: HashSet<&str> = s.params.iter().map(|p| p.name.as_str()).collect();
            for name in &used {
                if !declared.contains(name.as_str()) {
                    self.err(
                        "params",
                        "spec",
                        "query.param_declared",
                        format!("the SQL uses :{name} but no parameter {name:?} is declared"),
                    );
                }
            }
            for p in &s.params {
                if !used.iter().any(|u| u == &p.name) {
                    self.warn(
                        "params",
                        "spec",
                        "query.param_used",
                        format!(
                            "parameter {:?} is declared but the SQL never uses :{}",
                            p.name, p.name
                        ),
                    );
                }
            }
        }
    }

    fn mapping(&mut self, s: &MappingSpec) {
        match &s.implementation {
            None => self.err(
                "implementation",
                "spec",
                "mapping.implementation",
                "set either declarative or plugin",
            ),
            Some(mapping_spec::Implementation::Plugin(p)) => self.plugin("plugin", &p.digest),
            Some(mapping_spec::Implementation::Declarative(d)) => self.declarative_mapping(d),
        }
    }

    fn declarative_mapping(&mut self, d: &DeclarativeMapping) {
        if d.mappings.is_empty() {
            self.err(
                "declarative.mappings",
                "spec",
                "mapping.rules",
                "a declarative mapping needs at least one rule",
            );
        }
        for (i, rule) in d.mappings.iter().enumerate() {
            let sub = format!("declarative.mappings[{i}]");
            if rule.source_type.trim().is_empty() {
                self.err(
                    &format!("{sub}.source_type"),
                    "spec",
                    "mapping.source_type",
                    "source_type (the tool whose results are mapped) is required",
                );
            }
            let block = BlockType::try_from(rule.target_block).unwrap_or_default();
            if block == BlockType::Unspecified {
                self.err(
                    &format!("{sub}.target_block"),
                    "spec",
                    "mapping.target_block",
                    "target_block is required",
                );
            }
            self.template(&format!("{sub}.template"), &rule.template);
            if matches!(block, BlockType::Text | BlockType::Markdown) && rule.template.is_empty() {
                self.err(
                    &format!("{sub}.template"),
                    "template",
                    "mapping.template_required",
                    "text and markdown blocks need a template",
                );
            }
            if !rule.headers.is_empty()
                && !rule.row_mapping.is_empty()
                && rule.headers.len() != 2
                && rule.headers.len() != rule.row_mapping.len()
            {
                self.err(
                    &format!("{sub}.headers"),
                    "spec",
                    "mapping.headers",
                    "headers must be two (label/value) or one per row_mapping entry",
                );
            }
            for (j, row) in rule.row_mapping.iter().enumerate() {
                if row.field.trim().is_empty() {
                    self.err(
                        &format!("{sub}.row_mapping[{j}].field"),
                        "spec",
                        "mapping.row_field",
                        "every row_mapping entry needs a field",
                    );
                }
            }
        }
    }

    fn plugin(&mut self, sub: &str, digest: &str) {
        let ok = digest.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        });
        if !ok {
            self.err(
                &format!("{sub}.digest"),
                "spec",
                "plugin.digest",
                "digest must be \"sha256:\" followed by 64 lower-case hex digits",
            );
        }
    }

    fn prompt(&mut self, s: &PromptSpec) {
        if s.template.trim().is_empty() && s.vocabulary.is_empty() {
            self.err(
                "template",
                "template",
                "prompt.template",
                "a prompt needs a template or a vocabulary",
            );
        }
        self.template("template", &s.template);
        for (i, entry) in s.vocabulary.iter().enumerate() {
            if entry.meaning.trim().is_empty() || entry.terms.iter().all(|t| t.trim().is_empty()) {
                self.err(
                    &format!("vocabulary[{i}]"),
                    "spec",
                    "prompt.vocabulary",
                    "every vocabulary entry needs a meaning and at least one term",
                );
            }
            if s.purpose == PromptPurpose::Planner as i32
                && let Err(message) = crate::route_plan::vocabulary::check_meaning(&entry.meaning)
            {
                self.err(
                    &format!("vocabulary[{i}].meaning"),
                    "spec",
                    "prompt.planner_meaning",
                    message,
                );
            }
            // A code pattern that does not compile would fail every question of the tenant.
            if s.purpose == PromptPurpose::Planner as i32
                && entry.meaning.trim().starts_with("pattern:")
            {
                for (j, term) in entry.terms.iter().enumerate() {
                    if let Err(e) = crate::route_plan::resolver::compile_bounded(term) {
                        self.err(
                            &format!("vocabulary[{i}].terms[{j}]"),
                            "regex",
                            "prompt.planner_pattern",
                            format!("{} is not a regex OPS can use: {e}", entry.meaning.trim()),
                        );
                    }
                }
            }
            if s.purpose == PromptPurpose::Answer as i32
                && !["language:", "sentence:", "word:"]
                    .iter()
                    .any(|p| entry.meaning.starts_with(p))
            {
                self.err(
                    &format!("vocabulary[{i}].meaning"),
                    "spec",
                    "prompt.answer_meaning",
                    format!(
                        "unknown meaning {:?} in an answer prompt: expected language:<lang>, sentence:<lang>:<case> or word:<lang>:<key>",
                        entry.meaning
                    ),
                );
            }
        }
        if s.purpose == PromptPurpose::Answer as i32
            && let Err(error) = Sentences::with_tenant(Some(s))
        {
            self.err("vocabulary", "spec", "prompt.answer_language", error);
        }
    }

    fn policy(&mut self, s: &PolicySpec) {
        if let Some(b) = &s.budget {
            self.limit("budget.max_steps", u64::from(b.max_steps), 100);
            self.limit("budget.max_depth", u64::from(b.max_depth), 10);
            self.limit(
                "budget.timeout_ms",
                u64::from(b.timeout_ms),
                u64::from(MAX_TIMEOUT_MS),
            );
        }
        for (i, intent) in s.allowed_intents.iter().enumerate() {
            if !INTENTS.contains(&intent.as_str()) {
                self.err(
                    &format!("allowed_intents[{i}]"),
                    "spec",
                    "policy.intent",
                    format!(
                        "unknown intent {intent:?}: expected one of {}",
                        INTENTS.join(", ")
                    ),
                );
            }
        }
        self.limit("row_limit", u64::from(s.row_limit), u64::from(MAX_ROWS));
        let restricted: HashSet<String> = s
            .restricted_tables
            .iter()
            .map(|t| t.to_lowercase())
            .collect();
        for (i, t) in s.global_tables.iter().enumerate() {
            if restricted.contains(&t.to_lowercase()) {
                self.err(
                    &format!("global_tables[{i}]"),
                    "spec",
                    "policy.global_restricted",
                    format!("table {t:?} cannot be both restricted and global"),
                );
            }
        }
        if let Some(r) = &s.rate_limit {
            self.limit(
                "rate_limit.requests_per_minute",
                u64::from(r.requests_per_minute),
                1_000_000,
            );
            self.limit(
                "rate_limit.principal_requests_per_minute",
                u64::from(r.principal_requests_per_minute),
                1_000_000,
            );
            for (per_minute, per_hour, field) in [
                (
                    r.requests_per_minute,
                    r.requests_per_hour,
                    "requests_per_hour",
                ),
                (
                    r.principal_requests_per_minute,
                    r.principal_requests_per_hour,
                    "principal_requests_per_hour",
                ),
            ] {
                if per_hour != 0 && per_hour < per_minute {
                    self.err(
                        &format!("rate_limit.{field}"),
                        "limits",
                        "limits.range",
                        format!("{field} must be at least the per-minute limit beside it"),
                    );
                }
            }
        }
        if let Some(r) = &s.replan {
            self.limit("replan.max_replans", u64::from(r.max_replans), 10);
            self.limit(
                "replan.min_interval_ms",
                u64::from(r.min_interval_ms),
                u64::from(MAX_TIMEOUT_MS),
            );
            self.limit(
                "replan.cooling_period_ms",
                u64::from(r.cooling_period_ms),
                3_600_000,
            );
            if r.allowed_triggers
                .iter()
                .chain(&r.critical_triggers)
                .any(|t| *t == 0)
            {
                self.err(
                    "replan",
                    "spec",
                    "policy.trigger",
                    "triggers must be specified (e.g. REPLAN_TRIGGER_EMPTY_RESULT)",
                );
            }
        }
        if let Some(t) = &s.trace_retention {
            self.limit("trace_retention.days", u64::from(t.days), 3650);
        }
        if let Some(p) = &s.plugin_limits {
            self.limit(
                "plugin_limits.memory_limit_bytes",
                p.memory_limit_bytes,
                4 << 30,
            );
            self.limit(
                "plugin_limits.cpu_budget_ms",
                u64::from(p.cpu_budget_ms),
                60_000,
            );
        }
        self.unique(
            "reject_rules",
            s.reject_rules.iter().map(|r| r.name.as_str()),
            "reject rule",
        );
        for (i, rule) in s.reject_rules.iter().enumerate() {
            if rule.reason.trim().is_empty() {
                self.err(
                    &format!("reject_rules[{i}].reason"),
                    "spec",
                    "policy.reject_reason",
                    "a reject rule needs a reason to show the user",
                );
            }
            if rule.terms.is_empty() && rule.patterns.is_empty() {
                self.err(
                    &format!("reject_rules[{i}]"),
                    "spec",
                    "policy.reject_match",
                    "a reject rule needs terms or patterns",
                );
            }
            for (j, p) in rule.patterns.iter().enumerate() {
                self.regex(&format!("reject_rules[{i}].patterns[{j}]"), p);
            }
        }
        if !s.regression_schedule.trim().is_empty()
            && let Err(message) = crate::model::schedule::Schedule::parse(&s.regression_schedule)
        {
            self.err("regression_schedule", "spec", "policy.schedule", message);
        }
        for (i, f) in s.allowed_functions.iter().enumerate() {
            if !is_identifier(f) {
                self.err(
                    &format!("allowed_functions[{i}]"),
                    "spec",
                    "policy.function_name",
                    format!("function name {f:?} must be an identifier"),
                );
            }
        }
    }

    fn screen(&mut self, s: &ScreenSpec) {
        match &s.implementation {
            None => self.err(
                "implementation",
                "spec",
                "screen.implementation",
                "set either declarative or plugin",
            ),
            Some(screen_spec::Implementation::Plugin(p)) => self.plugin("plugin", &p.digest),
            Some(screen_spec::Implementation::Declarative(d)) => self.declarative_screen(d),
        }
    }

    fn declarative_screen(&mut self, d: &DeclarativeScreen) {
        let layout = ScreenLayout::try_from(d.layout).unwrap_or_default();
        if layout == ScreenLayout::Unspecified {
            self.err(
                "declarative.layout",
                "spec",
                "screen.layout",
                "layout is required: SCREEN_LAYOUT_VERTICAL or SCREEN_LAYOUT_GRID",
            );
        }
        if layout == ScreenLayout::Grid {
            if d.grid_columns == 0 {
                self.err(
                    "declarative.grid_columns",
                    "spec",
                    "screen.grid_columns",
                    "a grid layout needs grid_columns",
                );
            }
            self.limit("declarative.grid_columns", u64::from(d.grid_columns), 12);
        }
        for (i, c) in d.components.iter().enumerate() {
            if c.r#type == 0 {
                self.err(
                    &format!("declarative.components[{i}].type"),
                    "spec",
                    "screen.component_type",
                    "component type is required",
                );
            }
            self.limit(
                &format!("declarative.components[{i}].page_size"),
                u64::from(c.page_size),
                1000,
            );
        }
        self.unique(
            "declarative.actions",
            d.actions.iter().map(|a| a.id.as_str()),
            "action",
        );
    }

    fn tool(&mut self, s: &ToolSpec, catalog: Option<&SchemaCatalogSpec>) {
        self.tool_config(s, catalog);
        let tool_type = ToolType::try_from(s.tool_type).unwrap_or_default();
        if tool_type == ToolType::Unspecified {
            self.err("tool_type", "spec", "tool.type", "tool_type is required");
        }
        if s.description.trim().is_empty() {
            self.err(
                "description",
                "spec",
                "tool.description",
                "a description is required: tool selection reads it",
            );
        }
        // A DATABASE_QUERY tool runs a Query asset, or SQL the planner generates over a
        // catalog table (`config.table` with `catalog_ref`).
        let generated = s
            .config
            .as_ref()
            .is_some_and(|c| c.fields.contains_key("table"))
            && !s.catalog_ref.trim().is_empty();
        if tool_type == ToolType::DatabaseQuery && s.query_ref.trim().is_empty() && !generated {
            self.err(
                "query_ref",
                "reference",
                "reference.required",
                "a DATABASE_QUERY tool needs query_ref, or config.table and catalog_ref for generated SQL",
            );
        }
        if matches!(
            tool_type,
            ToolType::MetricQuery | ToolType::GraphQuery | ToolType::DocumentSearch
        ) && s.source_ref.trim().is_empty()
        {
            self.err(
                "source_ref",
                "reference",
                "reference.required",
                "this tool type needs source_ref",
            );
        }
        self.limit(
            "timeout_ms",
            u64::from(s.timeout_ms),
            u64::from(MAX_TIMEOUT_MS),
        );
    }

    /// A Tool's config: a known mode, only the keys that mode reads, values of the right kind,
    /// and the tables and columns they name present in the catalog.
    fn tool_config(&mut self, s: &ToolSpec, catalog: Option<&SchemaCatalogSpec>) {
        let Some(config) = s.config.as_ref().filter(|c| !c.fields.is_empty()) else {
            return;
        };
        let Ok(serde_json::Value::Object(config)) = serde_json::to_value(config) else {
            return;
        };
        let modes = Mode::ALL
            .iter()
            .map(Mode::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let mode = match config.get("mode") {
            None => {
                self.err(
                    "config.mode",
                    "spec",
                    "tool.config_mode",
                    format!(
                        "config.mode is required: the plan mode the tool answers, one of {modes}"
                    ),
                );
                return;
            }
            Some(value) => match value.as_str().and_then(|m| m.parse::<Mode>().ok()) {
                Some(mode) => mode,
                None => {
                    self.err(
                        "config.mode",
                        "spec",
                        "tool.config_mode",
                        format!("config.mode {value} is not a plan mode: expected one of {modes}"),
                    );
                    return;
                }
            },
        };
        let keys = tool_config::keys(mode);
        for (name, value) in &config {
            let field = format!("config.{name}");
            let Some(key) = keys.iter().find(|k| k.key == name) else {
                self.err(
                    &field,
                    "spec",
                    "tool.config_key",
                    format!(
                        "a {mode} tool reads no config key {name:?}: it takes {}",
                        tool_config::key_names(mode)
                    ),
                );
                continue;
            };
            let text = value.as_str().filter(|t| !t.trim().is_empty());
            let problem = match key.kind {
                KeyKind::Mode => None,
                KeyKind::Table | KeyKind::Column | KeyKind::EntityColumn | KeyKind::Name => {
                    text.is_none().then(|| "a non-empty text".to_owned())
                }
                KeyKind::Columns => value
                    .as_array()
                    .is_none_or(|list| list.is_empty() || list.iter().any(|c| c.as_str().is_none()))
                    .then(|| "a non-empty list of column names".to_owned()),
                KeyKind::Number => value
                    .as_f64()
                    .is_none_or(|n| n < 1.0 || n.fract() != 0.0)
                    .then(|| "a whole number of at least 1".to_owned()),
                KeyKind::OneOf(words) => text
                    .is_none_or(|t| !words.contains(&t))
                    .then(|| format!("one of {}", words.join(", "))),
            };
            if let Some(expected) = problem {
                self.err(
                    &field,
                    "spec",
                    "tool.config_value",
                    format!(
                        "config.{name} must be {expected} ({}); got {value}",
                        key.doc
                    ),
                );
            }
        }
        // A tool that runs a written Query takes its SQL from there, not from these keys.
        let generated = s.query_ref.trim().is_empty();
        for key in keys.iter().filter(|k| k.required && generated) {
            if !config.contains_key(key.key) {
                self.err(
                    &format!("config.{}", key.key),
                    "spec",
                    "tool.config_required",
                    format!("a {mode} tool needs config.{}: {}", key.key, key.doc),
                );
            }
        }
        if let Some(catalog) = catalog {
            self.tool_columns(&config, keys, catalog, &s.catalog_ref);
        }
    }

    /// The tables and columns a Tool's config names, checked against its catalog.
    fn tool_columns(
        &mut self,
        config: &serde_json::Map<String, serde_json::Value>,
        keys: &[tool_config::ConfigKey],
        catalog: &SchemaCatalogSpec,
        catalog_ref: &str,
    ) {
        let table_named = |key: &str| {
            let name = config.get(key)?.as_str()?;
            catalog.tables.iter().find(|t| t.name == name)
        };
        for key in keys.iter().filter(|k| k.kind == KeyKind::Table) {
            if let Some(name) = config.get(key.key).and_then(|v| v.as_str())
                && table_named(key.key).is_none()
            {
                let tables: Vec<&str> = catalog.tables.iter().map(|t| t.name.as_str()).collect();
                self.err(
                    &format!("config.{}", key.key),
                    "reference",
                    "tool.config_table",
                    format!(
                        "config.{} names table {name:?}, which {catalog_ref} does not catalogue (its tables: {})",
                        key.key,
                        tables.join(", ")
                    ),
                );
            }
        }
        for key in keys {
            let table = match key.kind {
                KeyKind::Column | KeyKind::Columns => table_named("table"),
                KeyKind::EntityColumn => table_named("entity_table"),
                _ => None,
            };
            // A table catalogued without its columns cannot be checked.
            let Some(table) = table.filter(|t| !t.columns.is_empty()) else {
                continue;
            };
            let named: Vec<&str> = match config.get(key.key) {
                Some(serde_json::Value::String(column)) => vec![column.as_str()],
                Some(serde_json::Value::Array(list)) => {
                    list.iter().filter_map(|c| c.as_str()).collect()
                }
                _ => Vec::new(),
            };
            let field = format!("config.{}", key.key);
            for column in named {
                if let Some(message) = missing_column(&field, column, table) {
                    self.err(&field, "reference", "tool.config_column", message);
                }
            }
        }
    }
}

/// Why `field` may not name `column` of `table`, listing the table's columns; `None` when the
/// column is empty or the table has it.
fn missing_column(field: &str, column: &str, table: &CatalogTable) -> Option<String> {
    if column.is_empty() || table.columns.iter().any(|c| c.name == column) {
        return None;
    }
    let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    Some(format!(
        "{field} names column {column:?}, which table {:?} does not have (its columns: {})",
        table.name,
        columns.join(", ")
    ))
}

fn join(base: &str, sub: &str) -> String {
    if sub.is_empty() {
        base.to_owned()
    } else {
        format!("{base}.{sub}")
    }
}

pub fn guard_dialect(d: SqlDialect) -> sql_guard::Dialect {
    match d {
        SqlDialect::Postgres => sql_guard::Dialect::Postgres,
        SqlDialect::Mysql => sql_guard::Dialect::MySql,
        SqlDialect::Sqlite => sql_guard::Dialect::Sqlite,
        SqlDialect::Unspecified => sql_guard::Dialect::Generic,
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
}

fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "credential",
        "private_key",
        "sslkey",
    ]
    .iter()
    .any(|needle| key.contains(needle))
}

fn has_url_credentials(value: &str) -> bool {
    value.split_once("://").is_some_and(|(_, rest)| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        authority
            .split_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    })
}

fn default_matches(param_type: i32, value: &pbjson_types::Value) -> bool {
    use pbjson_types::value::Kind;
    let kind = value.kind.as_ref();
    if matches!(kind, Some(Kind::NullValue(_))) {
        return true;
    }
    match ParamType::try_from(param_type).unwrap_or_default() {
        ParamType::String | ParamType::Timestamp => matches!(kind, Some(Kind::StringValue(_))),
        ParamType::Integer => matches!(kind, Some(Kind::NumberValue(n)) if n.fract() == 0.0),
        ParamType::Float => matches!(kind, Some(Kind::NumberValue(_))),
        ParamType::Boolean => matches!(kind, Some(Kind::BoolValue(_))),
        ParamType::StringList => matches!(kind, Some(Kind::ListValue(_))),
        ParamType::Unspecified => false,
    }
}

/// Parses a `{{field}}` template: balanced braces, identifier (dotted path) names.
pub fn parse_template(template: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| {
            format!(
                "unclosed '{{{{' at byte {}",
                template.len() - rest.len() + open
            )
        })?;
        let name = after[..close].trim();
        let valid = !name.is_empty()
            && name.split('.').all(|part| {
                !part.is_empty() && part.chars().all(|c| c.is_alphanumeric() || c == '_')
            });
        if !valid {
            return Err(format!(
                "placeholder {{{{{name}}}}} must name a field (letters, digits, '_', dotted paths)"
            ));
        }
        names.push(name.to_owned());
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err("'}}' without a matching '{{'".to_owned());
    }
    Ok(names)
}

/// Converts a table glob (`*`, `?`) to an anchored regex.
pub fn glob_to_regex(glob: &str) -> Result<regex::Regex, String> {
    if glob.trim().is_empty() {
        return Err("glob must not be empty".to_owned());
    }
    let mut pattern = String::from("(?i)^");
    for c in glob.chars() {
        match c {
            '*' => pattern.push_str(".*"),
            '?' => pattern.push('.'),
            c => pattern.push_str(&regex::escape(&c.to_string())),
        }
    }
    pattern.push('$');
    regex::Regex::new(&pattern).map_err(|e| format!("glob {glob:?} is invalid: {e}"))
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use ops_proto::v1::{
        AssetSpec, QueryParam, ResolverRule, ResolverRuleData, SourceConnection, SourcePermissions,
    };

    use super::*;

    fn content(kind: asset_spec::Kind) -> AssetContent {
        AssetContent {
            spec: Some(AssetSpec { kind: Some(kind) }),
            ..Default::default()
        }
    }

    fn rules(violations: &[Violation]) -> Vec<&str> {
        violations
            .iter()
            .filter(|v| v.blocking)
            .map(|v| v.rule.as_str())
            .collect()
    }

    fn sqlite_source() -> SourceSpec {
        SourceSpec {
            kind: SourceKind::Sqlite as i32,
            connection: Some(SourceConnection {
                path: "/data/plant.db".into(),
                ..Default::default()
            }),
            permissions: Some(SourcePermissions {
                read_only: true,
                ..Default::default()
            }),
            limits: None,
        }
    }

    /// The demo's assets of a file, parsed as a bundle does.
    fn demo_specs(path: &str, yaml: &str) -> Vec<asset_spec::Kind> {
        let file = ops_proto::v1::BundleFile {
            path: path.into(),
            content: yaml.as_bytes().to_vec(),
        };
        super::super::bundle::parse(&file)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.content.spec.and_then(|s| s.kind))
            .collect()
    }

    fn demo_catalog() -> SchemaCatalogSpec {
        match demo_specs("catalog.yaml", crate::demo::PLANT_OPS_CATALOG_YAML).pop() {
            Some(asset_spec::Kind::SchemaCatalog(c)) => c,
            other => panic!("{other:?}"),
        }
    }

    fn demo_tool(name: &str) -> ToolSpec {
        let tools: Vec<serde_yaml::Value> =
            serde_yaml::from_str(crate::demo::PLANT_OPS_TOOLS_YAML).unwrap_or_default();
        let tool = tools
            .into_iter()
            .find(|t| t["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no tool {name}"));
        serde_json::to_value(&tool["spec"])
            .and_then(serde_json::from_value)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Violations of a Tool whose config is edited, checked against the demo catalog.
    fn tool_violations(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<Violation> {
        let mut tool = demo_tool(name);
        let mut config = serde_json::to_value(tool.config.take()).unwrap_or_default();
        edit(&mut config);
        tool.config = serde_json::from_value(config).unwrap_or_else(|e| panic!("{e}"));
        let ctx = ValidationContext {
            tool_catalog: Some(demo_catalog()),
            ..Default::default()
        };
        validate_content(
            AssetType::Tool,
            &content(asset_spec::Kind::Tool(tool)),
            &ctx,
        )
    }

    #[test]
    fn the_demo_tools_and_catalog_pass() {
        for tool in demo_specs("tools.yaml", crate::demo::PLANT_OPS_TOOLS_YAML) {
            let ctx = ValidationContext {
                tool_catalog: Some(demo_catalog()),
                ..Default::default()
            };
            let v = validate_content(AssetType::Tool, &content(tool), &ctx);
            assert!(rules(&v).is_empty(), "{v:?}");
        }
        let v = validate_content(
            AssetType::SchemaCatalog,
            &content(asset_spec::Kind::SchemaCatalog(demo_catalog())),
            &ValidationContext::default(),
        );
        assert!(rules(&v).is_empty(), "{v:?}");
    }

    #[test]
    fn a_tool_config_key_nothing_reads_is_refused_naming_what_the_mode_takes() {
        let v = tool_violations("ci_tool", |c| {
            c["code_colum"] = "ci_code".into();
        });
        assert_eq!(rules(&v), ["tool.config_key"], "{v:?}");
        assert_eq!(v[0].field, "content.spec.tool.config.code_colum");
        assert!(
            v[0].message
                .contains("a config tool reads no config key \"code_colum\"")
                && v[0].message.contains("code_column, order_by"),
            "{}",
            v[0].message
        );

        let v = tool_violations("metric_tool", |c| c["mode"] = "metrics".into());
        assert_eq!(rules(&v), ["tool.config_mode"], "{v:?}");
        assert!(
            v[0].message.contains("expected one of config, metric"),
            "{}",
            v[0].message
        );

        let v = tool_violations("history_tool", |c| {
            c.as_object_mut().map(|o| o.remove("time_column"));
        });
        assert_eq!(rules(&v), ["tool.config_required"], "{v:?}");
        assert!(
            v[0].message.contains("needs config.time_column"),
            "{}",
            v[0].message
        );

        let v = tool_violations("graph_tool", |c| c["max_nodes"] = 0.into());
        assert_eq!(rules(&v), ["tool.config_value"], "{v:?}");
        let v = tool_violations("metric_series_tool", |c| c["shape"] = "bars".into());
        assert_eq!(rules(&v), ["tool.config_value"], "{v:?}");
    }

    #[test]
    fn a_tool_config_naming_an_uncatalogued_table_or_column_is_refused() {
        let v = tool_violations("ci_tool", |c| {
            c["columns"] = serde_json::json!(["ci_code", "ci_colour"]);
        });
        assert_eq!(rules(&v), ["tool.config_column"], "{v:?}");
        assert!(
            v[0].message
                .contains("\"ci_colour\", which table \"ci_master\" does not have"),
            "{}",
            v[0].message
        );
        // entity_key and code_column are columns of the entity table, not of the events.
        let v = tool_violations("history_tool", |c| c["entity_key"] = "event_id".into());
        assert_eq!(rules(&v), ["tool.config_column"], "{v:?}");
        let v = tool_violations("history_tool", |c| c["entity_table"] = "cis".into());
        assert!(rules(&v).contains(&"tool.config_table"), "{v:?}");
        assert!(
            v[0].message.contains("its tables: ci_master"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_catalog_role_naming_an_unlisted_table_or_column_is_refused() {
        let check = |edit: &dyn Fn(&mut SchemaCatalogSpec)| {
            let mut catalog = demo_catalog();
            edit(&mut catalog);
            validate_content(
                AssetType::SchemaCatalog,
                &content(asset_spec::Kind::SchemaCatalog(catalog)),
                &ValidationContext::default(),
            )
        };
        let v = check(&|c| {
            if let Some(m) = c.metrics.as_mut() {
                m.value_column = "val".into();
            }
        });
        assert_eq!(rules(&v), ["catalog.role"], "{v:?}");
        assert_eq!(
            v[0].field,
            "content.spec.schema_catalog.metrics.value_column"
        );
        assert!(
            v[0].message
                .contains("\"val\", which table \"metric_timeseries\""),
            "{}",
            v[0].message
        );
        let v = check(&|c| {
            if let Some(g) = c.graph.as_mut() {
                g.edge_table = "relations".into();
                g.composition_relation_types = vec!["contains".into()];
            }
        });
        assert_eq!(rules(&v), ["catalog.role", "catalog.role"], "{v:?}");
        let v = check(&|c| {
            for column in &mut c.tables[0].columns {
                if column.name == "ci_type" {
                    column.ordered = true;
                }
            }
        });
        assert_eq!(rules(&v), ["catalog.ordered"], "{v:?}");
        let v = check(&|c| {
            if let Some(m) = c.metrics.as_mut() {
                m.tenant_column.clear();
            }
        });
        assert_eq!(rules(&v), ["catalog.tenant_scope"], "{v:?}");
    }

    #[test]
    fn a_planner_code_pattern_that_does_not_compile_is_refused() {
        let prompt = |pattern: &str| PromptSpec {
            purpose: PromptPurpose::Planner as i32,
            vocabulary: vec![ops_proto::v1::VocabularyEntry {
                meaning: "pattern:ci_code".into(),
                terms: vec![pattern.into()],
            }],
            ..Default::default()
        };
        let check = |pattern: &str| {
            validate_content(
                AssetType::Prompt,
                &content(asset_spec::Kind::Prompt(prompt(pattern))),
                &ValidationContext::default(),
            )
        };
        assert!(rules(&check(r"\b[A-Z]{2,}-\d+\b")).is_empty());
        let v = check(r"\b(GT|ST-\d+");
        assert_eq!(rules(&v), ["prompt.planner_pattern"], "{v:?}");
        assert_eq!(v[0].field, "content.spec.prompt.vocabulary[0].terms[0]");
    }

    #[test]
    fn a_valid_source_passes() {
        let v = validate_content(
            AssetType::Source,
            &content(asset_spec::Kind::Source(sqlite_source())),
            &ValidationContext::default(),
        );
        assert!(rules(&v).is_empty(), "{v:?}");
    }

    #[test]
    fn plaintext_secrets_in_a_source_are_rejected() {
        let mut s = sqlite_source();
        let conn = s.connection.get_or_insert_default();
        conn.password_ref = "hunter2".into();
        conn.options.insert("sslpassword".into(), "hunter2".into());
        conn.host = "postgres://admin:hunter2@db".into();
        let v = validate_content(
            AssetType::Source,
            &content(asset_spec::Kind::Source(s)),
            &ValidationContext::default(),
        );
        let secret: Vec<&str> = v
            .iter()
            .filter(|v| v.rule == "source.no_plaintext_secret")
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(
            secret,
            vec![
                "content.spec.source.connection.password_ref",
                "content.spec.source.connection.options.sslpassword",
                "content.spec.source.connection.host",
            ]
        );
        assert!(
            v.iter().all(|v| !v.message.contains("hunter2")),
            "messages never echo the secret"
        );
    }

    #[test]
    fn a_writable_source_and_insane_limits_are_rejected() {
        let mut s = sqlite_source();
        s.permissions = Some(SourcePermissions {
            read_only: false,
            ..Default::default()
        });
        s.limits = Some(ops_proto::v1::SourceLimits {
            max_rows: 50_000_000,
            ..Default::default()
        });
        let v = validate_content(
            AssetType::Source,
            &content(asset_spec::Kind::Source(s)),
            &ValidationContext::default(),
        );
        assert_eq!(rules(&v), vec!["source.read_only", "limits.range"]);
        let limit = v.iter().find(|v| v.rule == "limits.range");
        assert_eq!(
            limit.map(|v| v.field.as_str()),
            Some("content.spec.source.limits.max_rows")
        );
    }

    #[test]
    fn spec_must_match_the_asset_type() {
        let v = validate_content(
            AssetType::Query,
            &content(asset_spec::Kind::Source(sqlite_source())),
            &ValidationContext::default(),
        );
        assert_eq!(rules(&v), vec!["spec.type_matches"]);
        let v = validate_content(
            AssetType::Query,
            &AssetContent::default(),
            &ValidationContext::default(),
        );
        assert_eq!(
            v.first().map(|v| v.field.as_str()),
            Some("content.spec.query")
        );
    }

    #[test]
    fn a_writing_query_is_rejected_by_the_sql_guard() {
        let q = QuerySpec {
            source_ref: "source:plant".into(),
            sql: "DELETE FROM ci_master".into(),
            ..Default::default()
        };
        let v = validate_content(
            AssetType::Query,
            &content(asset_spec::Kind::Query(q)),
            &ValidationContext::default(),
        );
        assert!(
            v.iter()
                .any(|v| v.r#type == "sql_guard" && v.field == "content.spec.query.sql"),
            "{v:?}"
        );
    }

    #[test]
    fn query_params_must_match_the_placeholders() {
        let q = QuerySpec {
            source_ref: "source:plant".into(),
            dialect: SqlDialect::Sqlite as i32,
            sql: "SELECT ci_code FROM ci_master WHERE ci_code = :ci_code AND status = :status"
                .into(),
            params: vec![
                QueryParam {
                    name: "ci_code".into(),
                    r#type: ParamType::String as i32,
                    ..Default::default()
                },
                QueryParam {
                    name: "unused".into(),
                    r#type: ParamType::Integer as i32,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let v = validate_content(
            AssetType::Query,
            &content(asset_spec::Kind::Query(q)),
            &ValidationContext::default(),
        );
        assert_eq!(rules(&v), vec!["query.param_declared"]);
        assert!(
            v.iter()
                .any(|v| v.rule == "query.param_used" && !v.blocking)
        );
    }

    #[test]
    fn resolver_regexes_must_compile() {
        let r = ResolverSpec {
            rules: vec![ResolverRule {
                rule_type: ResolverRuleType::PatternRule as i32,
                name: "broken".into(),
                priority: 1,
                is_active: true,
                rule_data: Some(ResolverRuleData {
                    pattern: "(unclosed".into(),
                    ..Default::default()
                }),
            }],
        };
        let v = validate_content(
            AssetType::Resolver,
            &content(asset_spec::Kind::Resolver(r)),
            &ValidationContext::default(),
        );
        assert_eq!(
            v.first().map(|v| (v.rule.as_str(), v.field.as_str())),
            Some((
                "regex.compiles",
                "content.spec.resolver.rules[0].rule_data.pattern"
            ))
        );
    }

    #[test]
    fn templates_parse() {
        assert_eq!(
            parse_template("{{ci_name}}({{ci_code}}) is {{ status }}").ok(),
            Some(vec!["ci_name".into(), "ci_code".into(), "status".into()])
        );
        assert!(parse_template("{{ci_name").is_err());
        assert!(parse_template("{{}}").is_err());
        assert!(parse_template("a }} b").is_err());
        assert!(parse_template("{{a b}}").is_err());
    }

    #[test]
    fn globs_match_like_shell_globs() -> Result<(), String> {
        let re = glob_to_regex("temp_*")?;
        assert!(re.is_match("temp_1") && re.is_match("TEMP_x") && !re.is_match("xtemp_1"));
        Ok(())
    }

    #[test]
    fn references_are_collected_with_their_expected_types() {
        let t = ToolSpec {
            query_ref: "query:ci_lookup".into(),
            source_ref: "source:plant@2".into(),
            ..Default::default()
        };
        let refs = references(&content(asset_spec::Kind::Tool(t)));
        assert_eq!(
            refs.iter()
                .map(|r| (r.text.as_str(), r.expected))
                .collect::<Vec<_>>(),
            vec![
                ("query:ci_lookup", AssetType::Query),
                ("source:plant@2", AssetType::Source)
            ]
        );
    }
}
