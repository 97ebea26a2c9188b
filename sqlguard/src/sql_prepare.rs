//! Turns one guarded SELECT into the statement that executes.
//!
//! After [`check`](crate::sql_guard::check) accepts the query, [`prepare`] works on the same
//! AST: every reference to a tenant-scoped table becomes a derived table filtered on the
//! caller's tenant as a bind parameter, the row limit is applied, `:name` parameters become the
//! dialect's positional binds, and the SQL is regenerated from the AST, re-parsed, compared with
//! the AST and checked again. Only that regenerated text is returned for execution.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Ident, LimitClause, ObjectName, Query, Statement, TableFactor,
    TableWithJoins, Value, ValueWithSpan, Visit, VisitMut, Visitor, VisitorMut,
};

use crate::sql_build::{
    is_identifier, limit_clause, placeholder_expr, query, select, table_alias, wildcard,
};
use crate::sql_guard::{
    self, CteScopes, Dialect, GuardPolicy, GuardReport, GuardViolation, name_parts,
    normalize_policy_name, push_violation, rules,
};

/// Everything [`prepare`] needs to know about the caller and the data source.
#[derive(Debug, Clone, Copy)]
pub struct GuardContext<'a> {
    pub dialect: Dialect,
    /// Restricted tables and extra allowed functions.
    pub policy: &'a GuardPolicy,
    /// The caller's tenant.
    pub tenant: &'a str,
    /// Normalised table name -> tenant column (from the SchemaCatalog).
    pub tenant_columns: &'a HashMap<String, String>,
    /// Tables readable without a tenant column (from the Policy).
    pub global_tables: &'a [String],
    /// Every tenant id, for the literal check.
    pub known_tenants: &'a [String],
    /// The Policy's row limit.
    pub row_limit: Option<u64>,
}

/// What one positional placeholder of [`PreparedSql::sql`] binds, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// The value of the named parameter `:name` (name without the colon).
    Param(String),
    /// The caller's tenant.
    Tenant,
}

/// The statement to execute: only `sql` runs, with `binds` as its parameters.
#[derive(Debug, Clone)]
pub struct PreparedSql {
    pub sql: String,
    /// PostgreSQL: `binds[i]` is `$i+1`. MySQL, SQLite: one entry per `?`, in text order.
    pub binds: Vec<Bind>,
    /// The guard's report on the statement as written (tables read, named parameters).
    pub report: GuardReport,
}

/// Stands for the tenant bind until placeholders are numbered. Never a valid `:name`, and user
/// placeholders are validated before it is inserted, so the two cannot be confused.
const TENANT_MARKER: &str = ":ops tenant";
/// Placeholder names while their order in the text is verified.
const PROBE_PREFIX: &str = "ops_bind_";
/// Alias of the row-limit wrapper (MySQL requires an alias on derived tables).
const LIMIT_ALIAS: &str = "ops_limited";

/// Guards, scopes, limits and binds one SQL statement written in `ctx.dialect`.
pub fn prepare(sql: &str, ctx: &GuardContext) -> Result<PreparedSql, GuardReport> {
    let (report, statements) = sql_guard::check_and_parse(sql, ctx.dialect, ctx.policy, false);
    let (query, report) = single_query(report, statements)?;
    finish(query, report, ctx)
}

/// [`prepare`] for an AST built by the planner (see [`crate::sql_build`]). The AST is rendered
/// and must parse back into itself, so what is checked is exactly what was built.
pub fn prepare_query(query: Query, ctx: &GuardContext) -> Result<PreparedSql, GuardReport> {
    let text = query.to_string();
    let (report, statements) = sql_guard::check_and_parse(&text, ctx.dialect, ctx.policy, false);
    let (parsed, mut report) = single_query(report, statements)?;
    if parsed != query {
        push_violation(&mut report.violations, regenerate_violation(ctx, &text));
        return Err(report);
    }
    finish(parsed, report, ctx)
}

/// The one query of a statement list the guard accepted.
fn single_query(
    mut report: GuardReport,
    statements: Vec<Statement>,
) -> Result<(Query, GuardReport), GuardReport> {
    if !report.is_allowed() {
        return Err(report);
    }
    match <[Statement; 1]>::try_from(statements) {
        Ok([Statement::Query(query)]) => Ok((*query, report)),
        // `check` reports anything else; this only keeps the match total.
        _ => {
            push_violation(
                &mut report.violations,
                GuardViolation {
                    rule: rules::READ_ONLY,
                    message: "expected exactly one select query".to_string(),
                    expected: "one select query".to_string(),
                    actual: "another statement".to_string(),
                },
            );
            Err(report)
        }
    }
}

fn finish(
    query: Query,
    mut report: GuardReport,
    ctx: &GuardContext,
) -> Result<PreparedSql, GuardReport> {
    match rewrite(query, ctx) {
        Ok((sql, binds)) => Ok(PreparedSql { sql, binds, report }),
        Err(violations) => {
            for v in violations {
                push_violation(&mut report.violations, v);
            }
            Err(report)
        }
    }
}

/// Scopes, limits and binds an accepted query; returns the regenerated text and its binds.
fn rewrite(
    mut query: Query,
    ctx: &GuardContext,
) -> Result<(String, Vec<Bind>), Vec<GuardViolation>> {
    let mut violations = Vec::new();
    check_tenant(ctx, &mut violations);
    check_placeholders(&query, &mut violations);
    check_tenant_literals(&query, ctx, &mut violations);
    scope_tables(&mut query, ctx, &mut violations);
    if !violations.is_empty() {
        return Err(violations);
    }
    if let Some(n) = ctx.row_limit {
        query = limit_rows(query, n);
    }
    let binds = bind_placeholders(&mut query, ctx.dialect)?;
    let sql = regenerate(&query, ctx)?;
    Ok((sql, binds))
}

fn violation(
    rule: &'static str,
    message: String,
    expected: &str,
    actual: String,
) -> GuardViolation {
    GuardViolation {
        rule,
        message,
        expected: expected.to_string(),
        actual,
    }
}

fn check_tenant(ctx: &GuardContext, violations: &mut Vec<GuardViolation>) {
    if ctx.tenant.trim().is_empty() {
        push_violation(
            violations,
            violation(
                rules::TENANT_SCOPE,
                "no tenant is set; a query can only run for a tenant".to_string(),
                "the caller's tenant",
                "an empty tenant".to_string(),
            ),
        );
    }
}

// ---- placeholders written by the user ----

/// Only `:name` parameters may appear: positional ones (`?`, `$1`, `:1`) would collide with the
/// binds the guard assigns.
fn check_placeholders(query: &Query, violations: &mut Vec<GuardViolation>) {
    let mut bad = Vec::new();
    let _ = query.visit(&mut ValueVisitor(|value: &Value| {
        if let Value::Placeholder(text) = value
            && !text.strip_prefix(':').is_some_and(is_identifier)
        {
            bad.push(text.clone());
        }
    }));
    for text in bad {
        push_violation(
            violations,
            violation(
                rules::PLACEHOLDER,
                format!("placeholder {text} is not allowed; name parameters as :name"),
                "a :name parameter",
                text,
            ),
        );
    }
}

/// Calls the closure on every value of a tree.
struct ValueVisitor<F>(F);

impl<F: FnMut(&Value)> Visitor for ValueVisitor<F> {
    type Break = ();

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<()> {
        (self.0)(&value.value);
        ControlFlow::Continue(())
    }
}

/// Calls the closure on every value of a tree, mutably.
struct ValueVisitorMut<F>(F);

impl<F: FnMut(&mut Value)> VisitorMut for ValueVisitorMut<F> {
    type Break = ();

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        (self.0)(&mut value.value);
        ControlFlow::Continue(())
    }
}

// ---- literals naming other tenants ----

fn check_tenant_literals(query: &Query, ctx: &GuardContext, violations: &mut Vec<GuardViolation>) {
    let caller = ctx.tenant.trim();
    let others: Vec<String> = ctx
        .known_tenants
        .iter()
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case(caller))
        .collect();
    if others.is_empty() {
        return;
    }
    let mut found = Vec::new();
    let mut visitor = LiteralVisitor {
        dialect: ctx.dialect,
        found: &mut found,
    };
    let _ = query.visit(&mut visitor);
    for literal in found {
        if let Some(tenant) = named_tenant(&literal, &others) {
            push_violation(
                violations,
                violation(
                    rules::TENANT_LITERAL,
                    format!("tenant_id mismatch: literal '{tenant}' names another tenant"),
                    &format!("literals naming only tenant {caller}"),
                    format!("'{literal}'"),
                ),
            );
        }
    }
}

/// Collects string literals, plus SQLite double-quoted identifiers, which SQLite reads as
/// strings when no such column exists.
struct LiteralVisitor<'a> {
    dialect: Dialect,
    found: &'a mut Vec<String>,
}

impl Visitor for LiteralVisitor<'_> {
    type Break = ();

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<()> {
        if !matches!(value.value, Value::Placeholder(_))
            && let Some(text) = value.value.clone().into_string()
        {
            self.found.push(text);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.dialect == Dialect::Sqlite
            && let Expr::Identifier(ident) = expr
            && ident.quote_style == Some('"')
        {
            self.found.push(ident.value.clone());
        }
        ControlFlow::Continue(())
    }
}

/// Literals are kept as written (the guard parses without unescaping), so compare both the
/// raw text and the text with `''` and backslash escapes undone.
fn named_tenant<'t>(literal: &str, tenants: &'t [String]) -> Option<&'t String> {
    let raw = literal.trim().to_lowercase();
    let unescaped = raw.replace("''", "'").replace('\\', "");
    tenants.iter().find(|t| **t == raw || **t == unescaped)
}

// ---- tenant scoping ----

fn scope_tables(query: &mut Query, ctx: &GuardContext, violations: &mut Vec<GuardViolation>) {
    let mut scoper = Scoper {
        tenant_columns: ctx
            .tenant_columns
            .iter()
            .map(|(table, column)| (normalize_policy_name(table), column.trim().to_string()))
            .collect(),
        global_tables: ctx
            .global_tables
            .iter()
            .map(|t| normalize_policy_name(t))
            .collect(),
        scopes: CteScopes::default(),
        table_name: None,
        violations: Vec::new(),
    };
    let _ = query.visit(&mut scoper);
    for v in scoper.violations {
        push_violation(violations, v);
    }
}

/// Rewrites, after its children are visited, every real table reference into
/// `(SELECT * FROM t WHERE t.<tenant column> = <tenant>) AS <alias>`.
struct Scoper {
    tenant_columns: HashMap<String, String>,
    global_tables: HashSet<String>,
    scopes: CteScopes,
    /// Name of the plain table factor being visited; any other relation cannot be scoped.
    table_name: Option<*const ObjectName>,
    violations: Vec<GuardViolation>,
}

impl Scoper {
    fn scope_factor(&mut self, factor: &mut TableFactor) {
        let TableFactor::Table {
            name, args: None, ..
        } = factor
        else {
            return;
        };
        if let [part] = name.0.as_slice()
            && part.as_ident().is_some_and(|i| self.scopes.names_cte(i))
        {
            return;
        }
        let parts = name_parts(name);
        let Some(table) = parts.last() else { return };
        if let Some(column) = self.tenant_columns.get(table) {
            let column = column.clone();
            self.rewrite(factor, &parts, &column);
        } else if !self.global_tables.contains(table) {
            let full = parts.join(".");
            self.report(
                rules::UNSCOPED_TABLE,
                format!(
                    "table {full} has no tenant column and is not on the policy's list of \
                     global tables"
                ),
                "a tenant-scoped or global table",
                full,
            );
        }
    }

    fn rewrite(&mut self, factor: &mut TableFactor, parts: &[String], column: &str) {
        let full = parts.join(".");
        if !is_identifier(column) {
            self.report(
                rules::TENANT_SCOPE,
                format!("the tenant column {column:?} of table {full} is not a plain identifier"),
                "a tenant column of letters, digits and underscores",
                column.to_string(),
            );
            return;
        }
        let TableFactor::Table { name, alias, .. } = factor else {
            return;
        };
        let Some(own_name) = name.0.last().and_then(|p| p.as_ident()).cloned() else {
            self.report(
                rules::TENANT_SCOPE,
                format!("table {full} has no plain name to filter on"),
                "a table name",
                full,
            );
            return;
        };
        let alias = alias
            .take()
            .unwrap_or_else(|| table_alias(own_name.clone()));
        let filter = Expr::BinaryOp {
            left: Box::new(Expr::CompoundIdentifier(vec![own_name, Ident::new(column)])),
            op: BinaryOperator::Eq,
            right: Box::new(placeholder_expr(TENANT_MARKER)),
        };
        // The alias moved to the derived table; the inner reference keeps everything else
        // (schema, quoting, partitions, index hints).
        let table = factor.clone();
        let from = TableWithJoins {
            relation: table,
            joins: Vec::new(),
        };
        *factor = TableFactor::Derived {
            lateral: false,
            subquery: Box::new(query(select(vec![wildcard()], from, Some(filter)))),
            alias: Some(alias),
            sample: None,
        };
    }

    fn report(&mut self, rule: &'static str, message: String, expected: &str, actual: String) {
        push_violation(
            &mut self.violations,
            violation(rule, message, expected, actual),
        );
    }
}

impl VisitorMut for Scoper {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.scopes.enter(query);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.scopes.leave(query);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, .. } = factor {
            self.table_name = Some(name as *const ObjectName);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        let expected = self
            .table_name
            .take()
            .is_some_and(|p| std::ptr::eq(p, relation));
        if !expected {
            let full = name_parts(relation).join(".");
            self.report(
                rules::TENANT_SCOPE,
                format!("table {full} is referenced outside from and cannot be tenant-scoped"),
                "tables only in from and join clauses",
                full,
            );
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        self.scope_factor(factor);
        ControlFlow::Continue(())
    }
}

// ---- row limit ----

/// Caps the rows returned at `n`. The outermost LIMIT is set (or lowered) in place, which keeps
/// ORDER BY exactly as written; only a limit the guard cannot compare (a parameter, FETCH)
/// falls back to wrapping the query as `SELECT * FROM (<query>) AS ops_limited LIMIT n`.
fn limit_rows(mut query: Query, n: u64) -> Query {
    if clamp_limit(&mut query, n) {
        query
    } else {
        wrap_limit(query, n)
    }
}

/// Sets or lowers the query's own literal LIMIT; false when it has another kind of limit.
fn clamp_limit(query: &mut Query, n: u64) -> bool {
    if query.fetch.is_some() {
        return false;
    }
    let limit = match &mut query.limit_clause {
        None => {
            query.limit_clause = Some(limit_clause(n));
            return true;
        }
        Some(LimitClause::LimitOffset {
            limit, limit_by, ..
        }) if limit_by.is_empty() => match limit {
            None => {
                *limit = Some(number(n));
                return true;
            }
            Some(limit) => limit,
        },
        Some(LimitClause::OffsetCommaLimit { limit, .. }) => limit,
        Some(LimitClause::LimitOffset { .. }) => return false,
    };
    match literal_u64(limit) {
        Some(m) => {
            *limit = number(m.min(n));
            true
        }
        None => false,
    }
}

fn literal_u64(expr: &Expr) -> Option<u64> {
    match expr {
        Expr::Value(ValueWithSpan {
            value: Value::Number(n, false),
            ..
        }) => n.parse().ok(),
        _ => None,
    }
}

fn number(n: u64) -> Expr {
    Expr::Value(Value::Number(n.to_string(), false).with_empty_span())
}

fn wrap_limit(inner: Query, n: u64) -> Query {
    let from = TableWithJoins {
        relation: TableFactor::Derived {
            lateral: false,
            subquery: Box::new(inner),
            alias: Some(table_alias(Ident::new(LIMIT_ALIAS))),
            sample: None,
        },
        joins: Vec::new(),
    };
    let mut wrapper = query(select(vec![wildcard()], from, None));
    wrapper.limit_clause = Some(limit_clause(n));
    wrapper
}

// ---- binds ----

/// Replaces `:name` parameters and the tenant marker with the dialect's positional binds:
/// PostgreSQL `$n` (one number per distinct parameter), others `?` (one bind per occurrence).
fn bind_placeholders(
    query: &mut Query,
    dialect: Dialect,
) -> Result<Vec<Bind>, Vec<GuardViolation>> {
    // Visit order is not always text order (`TRIM(x FROM y)`), so every placeholder first gets
    // a unique probe name, and the rendered text must list the probes in visit order.
    let mut occurrences = Vec::new();
    let _ = query.visit(&mut ValueVisitorMut(|value: &mut Value| {
        if let Value::Placeholder(text) = value {
            occurrences.push(if text == TENANT_MARKER {
                Bind::Tenant
            } else {
                Bind::Param(text.trim_start_matches(':').to_string())
            });
            *text = format!(":{PROBE_PREFIX}{}", occurrences.len());
        }
    }));
    let numbered = dialect == Dialect::Postgres;
    if !numbered && !probes_in_order(query, dialect, occurrences.len()) {
        return Err(vec![violation(
            rules::REGENERATE,
            "the parameters of the regenerated sql are not in tree order; rewrite the \
             expression that holds them"
                .to_string(),
            "parameters in the same order in text and tree",
            format!("{} parameters", occurrences.len()),
        )]);
    }
    let (texts, binds) = if numbered {
        number_binds(&occurrences)
    } else {
        (vec!["?".to_string(); occurrences.len()], occurrences)
    };
    let _ = query.visit(&mut ValueVisitorMut(|value: &mut Value| {
        if let Value::Placeholder(text) = value
            && let Some(k) = text
                .strip_prefix(':')
                .and_then(|t| t.strip_prefix(PROBE_PREFIX))
                .and_then(|k| k.parse::<usize>().ok())
            && let Some(final_text) = k.checked_sub(1).and_then(|i| texts.get(i))
        {
            *text = final_text.clone();
        }
    }));
    Ok(binds)
}

fn probes_in_order(query: &Query, dialect: Dialect, count: usize) -> bool {
    let expected: Vec<String> = (1..=count).map(|k| format!("{PROBE_PREFIX}{k}")).collect();
    sql_guard::placeholders(&query.to_string(), dialect).is_ok_and(|found| found == expected)
}

/// `$n` text for each occurrence, and the distinct binds in number order.
fn number_binds(occurrences: &[Bind]) -> (Vec<String>, Vec<Bind>) {
    let mut binds: Vec<Bind> = Vec::new();
    let texts = occurrences
        .iter()
        .map(|bind| {
            let i = match binds.iter().position(|b| b == bind) {
                Some(i) => i,
                None => {
                    binds.push(bind.clone());
                    binds.len() - 1
                }
            };
            format!("${}", i + 1)
        })
        .collect();
    (texts, binds)
}

// ---- regeneration ----

/// Renders the final AST, parses the text again with the guard (every rule runs again) and
/// requires the very same tree back: the text is what executes, so it must mean the AST.
fn regenerate(query: &Query, ctx: &GuardContext) -> Result<String, Vec<GuardViolation>> {
    let sql = query.to_string();
    let (report, statements) = sql_guard::check_and_parse(&sql, ctx.dialect, ctx.policy, false);
    let same = matches!(statements.as_slice(), [Statement::Query(parsed)] if **parsed == *query);
    let mut violations = report.violations;
    if !same {
        push_violation(&mut violations, regenerate_violation(ctx, &sql));
    }
    if violations.is_empty() {
        Ok(sql)
    } else {
        Err(violations)
    }
}

fn regenerate_violation(ctx: &GuardContext, sql: &str) -> GuardViolation {
    let dialect = ctx.dialect.name();
    let mut actual: String = sql.chars().take(120).collect();
    if actual.len() < sql.len() {
        actual.push_str("...");
    }
    violation(
        rules::REGENERATE,
        format!(
            "the regenerated {dialect} sql does not parse back into the same query; simplify \
             the statement"
        ),
        "sql that parses back into the same tree",
        actual,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql_build::{Order, Select};
    use sqlparser::ast::Visit;

    const PG: Dialect = Dialect::Postgres;
    const MY: Dialect = Dialect::MySql;
    const LITE: Dialect = Dialect::Sqlite;

    const SCOPED: &[&str] = &[
        "ci_master",
        "ci_relation",
        "metric_timeseries",
        "events",
        "documents",
    ];

    struct Fixture {
        policy: GuardPolicy,
        tenant_columns: HashMap<String, String>,
        global_tables: Vec<String>,
        known_tenants: Vec<String>,
    }

    fn fixture() -> Fixture {
        Fixture {
            policy: GuardPolicy {
                restricted_tables: vec!["users".to_string(), "credentials".to_string()],
                allowed_functions: Vec::new(),
            },
            tenant_columns: SCOPED
                .iter()
                .map(|t| (t.to_string(), "tenant_id".to_string()))
                .collect(),
            global_tables: vec!["units".to_string()],
            known_tenants: vec!["acme".to_string(), "globex".to_string()],
        }
    }

    fn context(f: &Fixture, dialect: Dialect, row_limit: Option<u64>) -> GuardContext<'_> {
        GuardContext {
            dialect,
            policy: &f.policy,
            tenant: "acme",
            tenant_columns: &f.tenant_columns,
            global_tables: &f.global_tables,
            known_tenants: &f.known_tenants,
            row_limit,
        }
    }

    /// Prepares without a row limit, so expected texts stay short.
    fn run(sql: &str, dialect: Dialect) -> Result<PreparedSql, GuardReport> {
        prepare(sql, &context(&fixture(), dialect, None))
    }

    fn ok(sql: &str, dialect: Dialect) -> Result<PreparedSql, String> {
        run(sql, dialect).map_err(|r| format!("{sql:?} should be allowed: {:#?}", r.violations))
    }

    fn rejected(sql: &str, dialect: Dialect, rule: &str) -> Result<GuardReport, String> {
        match run(sql, dialect) {
            Err(report) if report.has_rule(rule) => Ok(report),
            Err(report) => Err(format!(
                "{sql:?}: expected {rule}, got {:#?}",
                report.violations
            )),
            Ok(p) => Err(format!("{sql:?}: expected {rule}, prepared {}", p.sql)),
        }
    }

    /// `alias` as written after the derived table: `AS x`, or `x` when the source had no AS.
    fn scoped(table: &str, alias: &str, bind: &str) -> String {
        format!("(SELECT * FROM {table} WHERE {table}.tenant_id = {bind}) {alias}")
    }

    #[test]
    fn plain_table_is_scoped() -> Result<(), String> {
        let p = ok("SELECT ci_code FROM ci_master", PG)?;
        assert_eq!(
            p.sql,
            format!(
                "SELECT ci_code FROM {}",
                scoped("ci_master", "AS ci_master", "$1")
            )
        );
        assert_eq!(p.binds, vec![Bind::Tenant]);
        assert_eq!(p.report.tables, vec!["ci_master"]);
        Ok(())
    }

    #[test]
    fn alias_is_kept_with_or_without_as() -> Result<(), String> {
        let p = ok("SELECT c.ci_code FROM ci_master AS c", MY)?;
        assert_eq!(
            p.sql,
            format!("SELECT c.ci_code FROM {}", scoped("ci_master", "AS c", "?"))
        );
        let p = ok("SELECT c.ci_code FROM ci_master c", PG)?;
        assert_eq!(
            p.sql,
            "SELECT c.ci_code FROM (SELECT * FROM ci_master WHERE ci_master.tenant_id = $1) c"
        );
        Ok(())
    }

    #[test]
    fn joins_scope_both_sides_and_reuse_the_tenant_number() -> Result<(), String> {
        let p = ok(
            "SELECT c.ci_code, e.severity FROM ci_master c JOIN events e ON e.ci_id = c.ci_id \
             WHERE c.system = :system",
            PG,
        )?;
        assert!(p.sql.contains(&scoped("events", "e", "$1")), "{}", p.sql);
        assert!(p.sql.ends_with("WHERE c.system = $2"), "{}", p.sql);
        assert_eq!(p.binds, vec![Bind::Tenant, Bind::Param("system".into())]);
        Ok(())
    }

    #[test]
    fn outer_join_is_filtered_before_joining() -> Result<(), String> {
        let p = ok(
            "SELECT c.ci_code, e.event_id FROM ci_master c \
             LEFT JOIN events e ON e.ci_id = c.ci_id OR 1 = 1",
            LITE,
        )?;
        assert!(
            p.sql
                .contains(&format!("LEFT JOIN {} ON", scoped("events", "e", "?"))),
            "{}",
            p.sql
        );
        assert_eq!(p.binds, vec![Bind::Tenant, Bind::Tenant]);
        Ok(())
    }

    #[test]
    fn or_true_cannot_widen_the_filter() -> Result<(), String> {
        let p = ok("SELECT * FROM ci_master WHERE zone = :z OR 1 = 1", PG)?;
        assert_eq!(
            p.sql,
            format!(
                "SELECT * FROM {} WHERE zone = $2 OR 1 = 1",
                scoped("ci_master", "AS ci_master", "$1")
            )
        );
        Ok(())
    }

    #[test]
    fn union_branches_are_scoped() -> Result<(), String> {
        let p = ok(
            "SELECT ci_code FROM ci_master UNION ALL SELECT ci_code FROM ci_master \
             WHERE zone = :z",
            MY,
        )?;
        assert_eq!(p.sql.matches("ci_master.tenant_id = ?").count(), 2);
        assert_eq!(
            p.binds,
            vec![Bind::Tenant, Bind::Tenant, Bind::Param("z".into())]
        );
        Ok(())
    }

    #[test]
    fn subqueries_in_every_clause_are_scoped() -> Result<(), String> {
        let p = ok(
            "SELECT (SELECT count(*) FROM events WHERE events.ci_id = c.ci_id) AS n \
             FROM ci_master c \
             WHERE c.ci_id IN (SELECT ci_id FROM metric_timeseries) \
             AND EXISTS (SELECT 1 FROM ci_relation r WHERE r.source_ci_id = c.ci_id) \
             GROUP BY c.ci_id HAVING count(*) > (SELECT count(*) FROM documents) \
             ORDER BY (SELECT max(occurred_at) FROM events e2 WHERE e2.ci_id = c.ci_id)",
            PG,
        )?;
        for (table, alias) in [
            ("events", "AS events"),
            ("ci_master", "c"),
            ("metric_timeseries", "AS metric_timeseries"),
            ("ci_relation", "r"),
            ("documents", "AS documents"),
            ("events", "e2"),
        ] {
            assert!(
                p.sql.contains(&scoped(table, alias, "$1")),
                "{table}: {}",
                p.sql
            );
        }
        assert_eq!(p.binds, vec![Bind::Tenant]);
        Ok(())
    }

    #[test]
    fn cte_body_is_scoped_and_cte_name_is_not() -> Result<(), String> {
        let p = ok(
            "WITH hot AS (SELECT ci_id FROM events WHERE severity = 'critical') \
             SELECT h.ci_id FROM hot h JOIN hot h2 ON h.ci_id = h2.ci_id",
            PG,
        )?;
        assert_eq!(
            p.sql,
            format!(
                "WITH hot AS (SELECT ci_id FROM {} WHERE severity = 'critical') \
                 SELECT h.ci_id FROM hot h JOIN hot h2 ON h.ci_id = h2.ci_id",
                scoped("events", "AS events", "$1")
            )
        );
        Ok(())
    }

    #[test]
    fn cte_named_like_a_scoped_table_reads_the_scoped_table() -> Result<(), String> {
        // Inside its own (non-recursive) body the name is the real table.
        let p = ok(
            "WITH ci_master AS (SELECT * FROM ci_master WHERE zone = 'a') \
             SELECT * FROM ci_master",
            PG,
        )?;
        assert_eq!(
            p.sql,
            format!(
                "WITH ci_master AS (SELECT * FROM {} WHERE zone = 'a') SELECT * FROM ci_master",
                scoped("ci_master", "AS ci_master", "$1")
            )
        );
        Ok(())
    }

    #[test]
    fn cte_spelled_differently_does_not_hide_the_real_table() -> Result<(), String> {
        // PostgreSQL folds `CI_MASTER` to ci_master, which is not the CTE "CI_MASTER".
        let p = ok(
            "WITH \"CI_MASTER\" AS (SELECT 1 AS a) SELECT * FROM CI_MASTER",
            PG,
        )?;
        assert!(p.sql.contains("CI_MASTER.tenant_id = $1"), "{}", p.sql);
        Ok(())
    }

    #[test]
    fn cte_out_of_scope_is_a_real_table() -> Result<(), String> {
        let p = ok(
            "SELECT * FROM (WITH events AS (SELECT 1 AS a) SELECT a FROM events) d, events",
            PG,
        )?;
        assert_eq!(p.sql.matches("events.tenant_id").count(), 1, "{}", p.sql);
        assert!(
            p.sql.ends_with(&scoped("events", "AS events", "$1")),
            "{}",
            p.sql
        );
        Ok(())
    }

    #[test]
    fn column_alias_lists_are_kept() -> Result<(), String> {
        let p = ok("SELECT x.a FROM ci_master AS x(a, b)", PG)?;
        assert_eq!(
            p.sql,
            "SELECT x.a FROM (SELECT * FROM ci_master WHERE ci_master.tenant_id = $1) AS x (a, b)"
        );
        Ok(())
    }

    #[test]
    fn schema_qualified_and_quoted_names_are_scoped() -> Result<(), String> {
        let p = ok("SELECT * FROM public.\"CI_Master\"", PG)?;
        assert_eq!(
            p.sql,
            "SELECT * FROM (SELECT * FROM public.\"CI_Master\" \
             WHERE \"CI_Master\".tenant_id = $1) AS \"CI_Master\""
        );
        let p = ok("SELECT * FROM `plant`.`Events` e", MY)?;
        assert_eq!(
            p.sql,
            "SELECT * FROM (SELECT * FROM `plant`.`Events` WHERE `Events`.tenant_id = ?) e"
        );
        let p = ok("SELECT * FROM main.documents", LITE)?;
        assert!(p.sql.contains("documents.tenant_id = ?"), "{}", p.sql);
        Ok(())
    }

    #[test]
    fn from_only_is_scoped() -> Result<(), String> {
        let p = ok("SELECT * FROM ONLY ci_master", PG)?;
        assert!(p.sql.contains("ci_master.tenant_id = $1"), "{}", p.sql);
        Ok(())
    }

    #[test]
    fn global_tables_are_not_filtered() -> Result<(), String> {
        let p = ok("SELECT u.name FROM units u", PG)?;
        assert_eq!(p.sql, "SELECT u.name FROM units u");
        assert!(p.binds.is_empty());
        Ok(())
    }

    #[test]
    fn unscoped_table_is_rejected() -> Result<(), String> {
        let report = rejected(
            "SELECT * FROM ci_master JOIN plant.ghosts g ON g.id = ci_master.ci_id",
            PG,
            rules::UNSCOPED_TABLE,
        )?;
        let v = report
            .violations
            .iter()
            .find(|v| v.rule == rules::UNSCOPED_TABLE);
        assert!(v.is_some_and(|v| v.actual == "plant.ghosts" && v.message.contains("ghosts")));
        rejected(
            "SELECT * FROM ci_master WHERE ci_id IN (SELECT ci_id FROM ghosts)",
            LITE,
            rules::UNSCOPED_TABLE,
        )?;
        Ok(())
    }

    #[test]
    fn tenant_literal_is_rejected() -> Result<(), String> {
        let report = rejected(
            "SELECT * FROM ci_master WHERE tenant_id = 'globex'",
            PG,
            rules::TENANT_LITERAL,
        )?;
        let v = report
            .violations
            .iter()
            .find(|v| v.rule == rules::TENANT_LITERAL);
        assert!(v.is_some_and(|v| {
            v.message == "tenant_id mismatch: literal 'globex' names another tenant"
        }));
        for (sql, d) in [
            ("SELECT * FROM ci_master WHERE tenant_id = 'GloBex'", MY),
            ("SELECT * FROM ci_master WHERE tenant_id = \"globex\"", MY),
            ("SELECT * FROM ci_master WHERE tenant_id = \"globex\"", LITE),
            (
                "SELECT * FROM events WHERE message LIKE 'x' OR tenant_id IN ('globex')",
                PG,
            ),
            ("SELECT * FROM ci_master WHERE tenant_id = E'globex'", PG),
            ("SELECT * FROM ci_master WHERE tenant_id = $$globex$$", PG),
            ("SELECT * FROM ci_master WHERE tenant_id = 'glo\\bex'", MY),
        ] {
            rejected(sql, d, rules::TENANT_LITERAL)?;
        }
        ok("SELECT * FROM ci_master WHERE tenant_id = 'acme'", PG)?;
        ok("SELECT * FROM ci_master WHERE zone = 'globex-2'", PG)?;
        Ok(())
    }

    #[test]
    fn guard_violations_come_first() -> Result<(), String> {
        let report = rejected("DELETE FROM ci_master", PG, rules::READ_ONLY)?;
        assert!(!report.has_rule(rules::UNSCOPED_TABLE));
        rejected(
            "SELECT * FROM ci_master WHERE ci_id IN (SELECT id FROM users)",
            PG,
            rules::RESTRICTED_TABLE,
        )?;
        Ok(())
    }

    #[test]
    fn missing_tenant_is_rejected() {
        let f = fixture();
        let mut ctx = context(&f, PG, None);
        ctx.tenant = " ";
        let result = prepare("SELECT * FROM units", &ctx);
        assert!(result.is_err_and(|r| r.has_rule(rules::TENANT_SCOPE)));
    }

    #[test]
    fn bad_tenant_column_is_rejected() {
        let mut f = fixture();
        f.tenant_columns
            .insert("events".to_string(), "tenant id; --".to_string());
        let result = prepare("SELECT * FROM events", &context(&f, PG, None));
        assert!(result.is_err_and(|r| r.has_rule(rules::TENANT_SCOPE)));
    }

    #[test]
    fn positional_placeholders_are_rejected() -> Result<(), String> {
        rejected("SELECT * FROM units WHERE a = $1", PG, rules::PLACEHOLDER)?;
        rejected("SELECT * FROM units WHERE a = ?", MY, rules::PLACEHOLDER)?;
        rejected("SELECT * FROM units WHERE a = ?1", LITE, rules::PLACEHOLDER)?;
        rejected("SELECT * FROM units WHERE a = :1", LITE, rules::PLACEHOLDER)?;
        Ok(())
    }

    // ---- row limit ----

    fn limited(sql: &str, dialect: Dialect, n: u64) -> Result<String, String> {
        prepare(sql, &context(&fixture(), dialect, Some(n)))
            .map(|p| p.sql)
            .map_err(|r| format!("{sql:?}: {:#?}", r.violations))
    }

    #[test]
    fn row_limit_is_added_after_order_by() -> Result<(), String> {
        let sql = limited("SELECT name FROM units ORDER BY name DESC", PG, 1000)?;
        assert_eq!(sql, "SELECT name FROM units ORDER BY name DESC LIMIT 1000");
        let sql = limited("SELECT name FROM units UNION SELECT name FROM units", MY, 5)?;
        assert_eq!(
            sql,
            "SELECT name FROM units UNION SELECT name FROM units LIMIT 5"
        );
        Ok(())
    }

    #[test]
    fn literal_limits_are_lowered_never_raised() -> Result<(), String> {
        assert_eq!(
            limited("SELECT name FROM units LIMIT 10", LITE, 1000)?,
            "SELECT name FROM units LIMIT 10"
        );
        assert_eq!(
            limited("SELECT name FROM units LIMIT 5000 OFFSET 20", PG, 1000)?,
            "SELECT name FROM units LIMIT 1000 OFFSET 20"
        );
        assert_eq!(
            limited("SELECT name FROM units LIMIT 20, 5000", MY, 1000)?,
            "SELECT name FROM units LIMIT 20, 1000"
        );
        assert_eq!(
            limited("SELECT name FROM units OFFSET 20", PG, 1000)?,
            "SELECT name FROM units LIMIT 1000 OFFSET 20"
        );
        Ok(())
    }

    #[test]
    fn other_limits_are_wrapped() -> Result<(), String> {
        assert_eq!(
            limited("SELECT name FROM units ORDER BY name LIMIT :n", MY, 1000)?,
            "SELECT * FROM (SELECT name FROM units ORDER BY name LIMIT ?) AS ops_limited \
             LIMIT 1000"
        );
        assert_eq!(
            limited("SELECT name FROM units FETCH FIRST 5 ROWS ONLY", PG, 1000)?,
            "SELECT * FROM (SELECT name FROM units FETCH FIRST 5 ROWS ONLY) AS ops_limited \
             LIMIT 1000"
        );
        Ok(())
    }

    // ---- binds ----

    const PARAMS_SQL: &str = "SELECT e.event_id FROM events e \
                              WHERE e.ci_id = :ci AND e.occurred_at >= :from \
                              AND e.occurred_at < :to AND e.ci_id <> :ci";

    #[test]
    fn postgres_numbers_each_name_once() -> Result<(), String> {
        let p = ok(PARAMS_SQL, PG)?;
        assert!(
            p.sql.ends_with(
                "WHERE e.ci_id = $2 AND e.occurred_at >= $3 AND e.occurred_at < $4 \
                 AND e.ci_id <> $2"
            ),
            "{}",
            p.sql
        );
        assert_eq!(
            p.binds,
            vec![
                Bind::Tenant,
                Bind::Param("ci".into()),
                Bind::Param("from".into()),
                Bind::Param("to".into()),
            ]
        );
        Ok(())
    }

    #[test]
    fn mysql_and_sqlite_bind_every_occurrence() -> Result<(), String> {
        for d in [MY, LITE] {
            let p = ok(PARAMS_SQL, d)?;
            assert!(
                p.sql.ends_with(
                    "WHERE e.ci_id = ? AND e.occurred_at >= ? AND e.occurred_at < ? \
                     AND e.ci_id <> ?"
                ),
                "{}",
                p.sql
            );
            assert_eq!(
                p.binds,
                vec![
                    Bind::Tenant,
                    Bind::Param("ci".into()),
                    Bind::Param("from".into()),
                    Bind::Param("to".into()),
                    Bind::Param("ci".into()),
                ]
            );
        }
        Ok(())
    }

    #[test]
    fn binds_follow_text_order_in_tricky_expressions() -> Result<(), String> {
        let p = ok(
            "SELECT trim(BOTH :pad FROM ci_name), substring(ci_code FROM :a FOR :b) \
             FROM ci_master WHERE ci_type = :t LIMIT :n",
            MY,
        )?;
        let names: Vec<Bind> = ["pad", "a", "b"]
            .iter()
            .map(|n| Bind::Param(n.to_string()))
            .chain([
                Bind::Tenant,
                Bind::Param("t".into()),
                Bind::Param("n".into()),
            ])
            .collect();
        assert_eq!(p.binds, names, "{}", p.sql);
        Ok(())
    }

    #[test]
    fn binds_whose_text_order_differs_from_the_tree_are_rejected() -> Result<(), String> {
        // sqlparser visits WINDOW before QUALIFY but prints QUALIFY first when written first;
        // positional binds in tree order would swap :x and :y.
        let report = rejected(
            "SELECT a FROM units QUALIFY row_number() OVER w = :y \
             WINDOW w AS (ORDER BY a ROWS BETWEEN :x PRECEDING AND CURRENT ROW)",
            Dialect::Generic,
            rules::REGENERATE,
        )?;
        assert_eq!(report.violations.len(), 1);
        let p = ok(
            "SELECT a FROM units \
             WINDOW w AS (ORDER BY a ROWS BETWEEN :x PRECEDING AND CURRENT ROW) \
             QUALIFY row_number() OVER w = :y",
            Dialect::Generic,
        )?;
        assert_eq!(
            p.binds,
            vec![Bind::Param("x".into()), Bind::Param("y".into())]
        );
        Ok(())
    }

    #[test]
    fn casts_on_parameters_survive() -> Result<(), String> {
        let p = ok(
            "SELECT * FROM events WHERE occurred_at >= :from::timestamp",
            PG,
        )?;
        assert!(p.sql.ends_with("occurred_at >= $2::TIMESTAMP"), "{}", p.sql);
        Ok(())
    }

    // ---- regeneration ----

    #[test]
    fn regenerated_text_parses_back_to_the_same_tree() -> Result<(), String> {
        let f = fixture();
        for (sql, d) in [
            (PARAMS_SQL, PG),
            (PARAMS_SQL, MY),
            (
                "SELECT 'it''s', 'a\\\\b', 'x\\'y' FROM units WHERE n LIKE 'a\\_%'",
                MY,
            ),
            ("SELECT E'a\\nb', $$q$$ FROM units", PG),
        ] {
            let ctx = context(&f, d, Some(1000));
            let p = prepare(sql, &ctx).map_err(|r| format!("{sql}: {:#?}", r.violations))?;
            let (report, statements) = sql_guard::check_and_parse(&p.sql, d, &f.policy, false);
            assert!(report.is_allowed(), "{:#?}", report.violations);
            assert!(matches!(statements.as_slice(), [Statement::Query(_)]));
        }
        Ok(())
    }

    #[test]
    fn mysql_backslash_literals_are_kept_as_written() -> Result<(), String> {
        let p = ok("SELECT 'a\\\\b' AS s FROM units WHERE n LIKE 'x\\_%'", MY)?;
        assert_eq!(
            p.sql,
            "SELECT 'a\\\\b' AS s FROM units WHERE n LIKE 'x\\_%'"
        );
        Ok(())
    }

    #[test]
    fn a_tree_that_does_not_round_trip_is_rejected() -> Result<(), String> {
        // (a + b) * c built without the parentheses renders as a + b * c.
        let sum = Expr::BinaryOp {
            left: Box::new(Expr::Identifier(Ident::new("a"))),
            op: BinaryOperator::Plus,
            right: Box::new(Expr::Identifier(Ident::new("b"))),
        };
        let product = Expr::BinaryOp {
            left: Box::new(sum),
            op: BinaryOperator::Multiply,
            right: Box::new(Expr::Identifier(Ident::new("c"))),
        };
        let mut q = Select::from("units")
            .columns(["name"])
            .build()
            .map_err(|e| e.to_string())?;
        if let sqlparser::ast::SetExpr::Select(s) = q.body.as_mut() {
            s.selection = Some(product);
        }
        let result = prepare_query(q, &context(&fixture(), PG, None));
        assert!(result.is_err_and(|r| r.has_rule(rules::REGENERATE)));
        Ok(())
    }

    #[test]
    fn built_queries_are_prepared() -> Result<(), String> {
        let f = fixture();
        for d in [PG, MY, LITE] {
            let q = Select::from("events")
                .alias("e")
                .columns(["e.event_id", "c.ci_code", "e.severity"])
                .join_on("ci_master", "c", ("e.ci_id", "c.ci_id"))
                .filter_in("e.severity", [":s0", ":s1"])
                .filter_gte("e.occurred_at", ":from")
                .filter_lt("e.occurred_at", ":to")
                .filter_is_null("e.resolved_at")
                .order_by("e.occurred_at", Order::Desc)
                .limit(50)
                .build()
                .map_err(|e| e.to_string())?;
            let p = prepare_query(q, &context(&f, d, Some(1000)))
                .map_err(|r| format!("{d:?}: {:#?}", r.violations))?;
            assert!(p.sql.contains("e.tenant_id") || p.sql.contains("events.tenant_id"));
            assert!(
                p.sql.ends_with("ORDER BY e.occurred_at DESC LIMIT 50"),
                "{}",
                p.sql
            );
            let tenants = p.binds.iter().filter(|b| **b == Bind::Tenant).count();
            assert_eq!(tenants, if d == PG { 1 } else { 2 });
            assert_eq!(p.binds.len(), if d == PG { 5 } else { 6 });
        }
        Ok(())
    }

    // ---- corpus ----

    #[derive(Debug, serde::Deserialize)]
    struct CorpusEntry {
        name: String,
        dialect: String,
        sql: String,
        allowed: bool,
        #[serde(default)]
        rule: Option<String>,
        #[serde(default)]
        params: HashMap<String, serde_yaml::Value>,
    }

    const CORPUS: &str = include_str!("sql_guard_corpus.yaml");
    const ROW_LIMIT: u64 = 1000;

    #[test]
    fn corpus_entries_are_rejected_or_scoped() -> Result<(), String> {
        let entries: Vec<CorpusEntry> =
            serde_yaml::from_str(CORPUS).map_err(|e| format!("corpus: {e}"))?;
        assert!(entries.len() >= 60, "{} entries", entries.len());
        for dialect in ["postgres", "mysql", "sqlite"] {
            for allowed in [true, false] {
                assert!(
                    entries
                        .iter()
                        .any(|e| e.dialect == dialect && e.allowed == allowed),
                    "{dialect} allowed={allowed}"
                );
            }
        }
        let mut f = fixture();
        f.global_tables.clear();
        let failures: Vec<String> = entries
            .iter()
            .filter_map(|e| {
                check_entry(e, &f)
                    .err()
                    .map(|err| format!("{}: {err}", e.name))
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {} corpus entries failed:\n{}",
            failures.len(),
            entries.len(),
            failures.join("\n")
        );
        Ok(())
    }

    fn check_entry(entry: &CorpusEntry, f: &Fixture) -> Result<(), String> {
        let dialect = match entry.dialect.as_str() {
            "postgres" => PG,
            "mysql" => MY,
            "sqlite" => LITE,
            other => return Err(format!("unknown dialect {other}")),
        };
        let result = prepare(&entry.sql, &context(f, dialect, Some(ROW_LIMIT)));
        match (entry.allowed, result) {
            (false, Err(report)) => {
                let rule = entry
                    .rule
                    .as_deref()
                    .ok_or("a rejected entry needs a rule")?;
                if report.has_rule(rule) {
                    Ok(())
                } else {
                    Err(format!("expected {rule}, got {:#?}", report.violations))
                }
            }
            (false, Ok(p)) => Err(format!("expected rejection, prepared {}", p.sql)),
            (true, Err(report)) => Err(format!("expected allowed: {:#?}", report.violations)),
            (true, Ok(p)) => check_prepared(entry, &p, dialect, f),
        }
    }

    /// Parses the text that would execute and proves every plant-ops table in it is read only
    /// through a tenant filter whose placeholder binds the tenant, and the row limit holds.
    fn check_prepared(
        entry: &CorpusEntry,
        p: &PreparedSql,
        dialect: Dialect,
        f: &Fixture,
    ) -> Result<(), String> {
        for bind in &p.binds {
            if let Bind::Param(name) = bind
                && !entry.params.contains_key(name)
            {
                return Err(format!("parameter :{name} has no value in params"));
            }
        }
        let (report, statements) = sql_guard::check_and_parse(&p.sql, dialect, &f.policy, false);
        let [Statement::Query(query)] = statements.as_slice() else {
            return Err(format!(
                "{} does not parse: {:#?}",
                p.sql, report.violations
            ));
        };
        let within_limit = match &query.limit_clause {
            Some(LimitClause::LimitOffset {
                limit: Some(limit), ..
            })
            | Some(LimitClause::OffsetCommaLimit { limit, .. }) => {
                literal_u64(limit).is_some_and(|n| n <= ROW_LIMIT)
            }
            _ => false,
        };
        if !within_limit {
            return Err(format!("no row limit: {}", p.sql));
        }
        let mut audit = ScopeAudit {
            numbered: dialect == PG,
            binds: &p.binds,
            filtered_tables: Vec::new(),
            tenant_values: Vec::new(),
            seen_values: 0,
            scoped_reads: 0,
            errors: Vec::new(),
        };
        let _ = query.visit(&mut audit);
        if !audit.numbered && audit.seen_values != p.binds.len() {
            audit.errors.push(format!(
                "{} placeholders for {} binds",
                audit.seen_values,
                p.binds.len()
            ));
        }
        let reads_scoped = p.report.tables.iter().any(|t| SCOPED.contains(&t.as_str()));
        if reads_scoped && audit.scoped_reads == 0 {
            audit.errors.push("no tenant filter".to_string());
        }
        if audit.errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", p.sql, audit.errors.join("; ")))
        }
    }

    struct ScopeAudit<'a> {
        numbered: bool,
        binds: &'a [Bind],
        /// Table names that are the only source of a tenant-filter select.
        filtered_tables: Vec<*const ObjectName>,
        /// Placeholders of those filters.
        tenant_values: Vec<*const ValueWithSpan>,
        seen_values: usize,
        scoped_reads: usize,
        errors: Vec<String>,
    }

    /// `SELECT * FROM t WHERE t.tenant_id = <placeholder>`: the table name and placeholder.
    fn tenant_filter(select: &sqlparser::ast::Select) -> Option<(&ObjectName, &ValueWithSpan)> {
        let [sqlparser::ast::SelectItem::Wildcard(_)] = select.projection.as_slice() else {
            return None;
        };
        let [from] = select.from.as_slice() else {
            return None;
        };
        let TableFactor::Table {
            name, alias: None, ..
        } = &from.relation
        else {
            return None;
        };
        let Some(Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        }) = &select.selection
        else {
            return None;
        };
        let (Expr::CompoundIdentifier(column), Expr::Value(value)) = (&**left, &**right) else {
            return None;
        };
        let own = name.0.last().and_then(|p| p.as_ident());
        let qualified_by_table = matches!(column.as_slice(), [q, c]
            if Some(q) == own && c.value == "tenant_id");
        let is_placeholder = matches!(value.value, Value::Placeholder(_));
        (from.joins.is_empty() && qualified_by_table && is_placeholder).then_some((name, value))
    }

    impl Visitor for ScopeAudit<'_> {
        type Break = ();

        fn pre_visit_select(&mut self, select: &sqlparser::ast::Select) -> ControlFlow<()> {
            if let Some((name, value)) = tenant_filter(select) {
                self.filtered_tables.push(name as *const ObjectName);
                self.tenant_values.push(value as *const ValueWithSpan);
            }
            ControlFlow::Continue(())
        }

        fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
            let parts = name_parts(relation);
            let scoped = parts.last().is_some_and(|t| SCOPED.contains(&t.as_str()));
            if scoped {
                if self
                    .filtered_tables
                    .iter()
                    .any(|p| std::ptr::eq(*p, relation))
                {
                    self.scoped_reads += 1;
                } else {
                    self.errors
                        .push(format!("{relation} is read without a tenant filter"));
                }
            }
            ControlFlow::Continue(())
        }

        fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<()> {
            let Value::Placeholder(text) = &value.value else {
                return ControlFlow::Continue(());
            };
            let index = if self.numbered {
                text.strip_prefix('$')
                    .and_then(|k| k.parse::<usize>().ok())
                    .and_then(|k| k.checked_sub(1))
            } else {
                Some(self.seen_values)
            };
            self.seen_values += 1;
            let bind = index.and_then(|i| self.binds.get(i));
            let is_filter = self.tenant_values.iter().any(|p| std::ptr::eq(*p, value));
            let fits = match bind {
                Some(Bind::Tenant) => is_filter,
                Some(Bind::Param(_)) => !is_filter,
                None => false,
            };
            if !fits {
                self.errors
                    .push(format!("placeholder {text} binds {bind:?}"));
            }
            ControlFlow::Continue(())
        }
    }
}
