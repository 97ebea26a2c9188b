//! Allowlist-based guard for read-only analytics SQL.
//!
//! The guard parses one statement with `sqlparser` and walks the whole AST (every nested
//! query, expression and table factor) with the `sqlparser` visitor. Anything that is not on
//! the allowlist is reported as a [`GuardViolation`]; nothing is decided by keyword matching
//! on the raw text. A few token-stream adjustments are made before parsing where `sqlparser`
//! does not understand a construct (PostgreSQL `FROM ONLY t`, MySQL `LOCK IN SHARE MODE`),
//! always on tokens, never on text, so string literals and comments are never touched.

use std::collections::HashSet;
use std::fmt::Display;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, DataType, Expr, Ident, ObjectName, Query, Select, SetExpr, Statement,
    TableFactor, Visit, Visitor,
};
use sqlparser::dialect::{
    Dialect as SqlDialect, GenericDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect,
};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// SQL dialect used to tokenise and parse the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
    Sqlite,
    Generic,
}

impl Dialect {
    pub(super) fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgresql",
            Dialect::MySql => "mysql",
            Dialect::Sqlite => "sqlite",
            Dialect::Generic => "generic",
        }
    }

    fn parser_dialect(self) -> Box<dyn SqlDialect> {
        match self {
            Dialect::Postgres => Box::new(PostgreSqlDialect {}),
            Dialect::MySql => Box::new(MySqlDialect {}),
            Dialect::Sqlite => Box::new(SQLiteDialect {}),
            Dialect::Generic => Box::new(GenericDialect {}),
        }
    }
}

/// What a query may touch beyond the built-in rules.
#[derive(Debug, Clone, Default)]
pub struct GuardPolicy {
    /// Tables never readable (compared case-insensitively, schema prefix and quotes ignored).
    pub restricted_tables: Vec<String>,
    /// Functions allowed in addition to the built-in allowlist (lower-case names).
    pub allowed_functions: Vec<String>,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardViolation {
    /// Stable rule id, see [`rules`].
    pub rule: &'static str,
    /// Lower-case sentence a person can act on, naming the offending thing.
    pub message: String,
    pub expected: String,
    pub actual: String,
}

/// Result of [`check`].
#[derive(Debug, Clone, Default)]
pub struct GuardReport {
    pub violations: Vec<GuardViolation>,
    /// Normalised (lower-case, unquoted, schema-stripped) names of real tables referenced.
    pub tables: Vec<String>,
    /// Distinct `:name` parameter names (without the colon) in order of first appearance.
    pub placeholders: Vec<String>,
}

impl GuardReport {
    pub fn is_allowed(&self) -> bool {
        self.violations.is_empty()
    }

    /// True when at least one violation has the given rule id.
    pub fn has_rule(&self, rule: &str) -> bool {
        self.violations.iter().any(|v| v.rule == rule)
    }
}

/// Stable rule ids used in [`GuardViolation::rule`].
pub mod rules {
    pub const PARSE: &str = "sql.parse";
    pub const EMPTY: &str = "sql.empty";
    pub const SINGLE_STATEMENT: &str = "sql.single_statement";
    pub const READ_ONLY: &str = "sql.read_only";
    pub const NO_INTO: &str = "sql.no_into";
    pub const NO_LOCKING: &str = "sql.no_locking";
    pub const NO_DATA_MODIFYING_CTE: &str = "sql.no_data_modifying_cte";
    pub const TABLE_FACTOR: &str = "sql.table_factor";
    pub const FUNCTION_ALLOWLIST: &str = "sql.function_allowlist";
    pub const RESTRICTED_TABLE: &str = "sql.restricted_table";
    pub const SYSTEM_CATALOG: &str = "sql.system_catalog";
    pub const CTE_SHADOWING: &str = "sql.cte_shadowing";
    pub const NO_RECURSIVE_CTE: &str = "sql.no_recursive_cte";
    /// MySQL `@@system_variable` reads and `:=` assignments.
    pub const VARIABLE: &str = "sql.variable";
    /// Dialect extensions the guard does not vet (pipe operators, `FOR XML`, `SETTINGS`, ...).
    pub const UNSUPPORTED_SYNTAX: &str = "sql.unsupported_syntax";
    /// Input shapes that would exhaust the parser's stack (see [`crate::sql_guard::MAX_NESTED_JOINS`]).
    pub const COMPLEXITY: &str = "sql.complexity";
    /// The caller's tenant filter could not be applied (no tenant, a bad tenant column, a
    /// table reference outside `FROM`).
    pub const TENANT_SCOPE: &str = "sql.tenant_scope";
    /// A table with no tenant column that is not on the policy's global list.
    pub const UNSCOPED_TABLE: &str = "sql.unscoped_table";
    /// A string literal naming another known tenant.
    pub const TENANT_LITERAL: &str = "sql.tenant_literal";
    /// A placeholder other than `:name` (`?`, `$1`, `:1`); binds are assigned by the guard.
    pub const PLACEHOLDER: &str = "sql.placeholder";
    /// The regenerated SQL does not parse back into the same tree.
    pub const REGENERATE: &str = "sql.regenerate";
}

/// Functions every policy allows: side-effect free analytics helpers.
pub const BUILTIN_ALLOWED_FUNCTIONS: &[&str] = &[
    // aggregates
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "bool_and",
    "bool_or",
    "every",
    "string_agg",
    "group_concat",
    "array_agg",
    "percentile_cont",
    "percentile_disc",
    "mode",
    "median",
    "corr",
    "covar_pop",
    "covar_samp",
    // strings
    "lower",
    "upper",
    "trim",
    "ltrim",
    "rtrim",
    "btrim",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "substr",
    "substring",
    "replace",
    "concat",
    "concat_ws",
    "left",
    "right",
    "position",
    "strpos",
    "instr",
    "split_part",
    "initcap",
    "reverse",
    // null handling and comparison
    "coalesce",
    "nullif",
    "ifnull",
    "iif",
    "if",
    "greatest",
    "least",
    // numeric
    "round",
    "abs",
    "ceil",
    "ceiling",
    "floor",
    "trunc",
    "truncate",
    "sign",
    "mod",
    "power",
    "pow",
    "sqrt",
    "exp",
    "ln",
    "log",
    "log10",
    // date and time
    "date_trunc",
    "date_part",
    "date",
    "time",
    "datetime",
    "strftime",
    "julianday",
    "unixepoch",
    "extract",
    "to_char",
    "to_date",
    "to_timestamp",
    "to_number",
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtimestamp",
    "localtime",
    "age",
    "make_date",
    "date_format",
    "date_add",
    "date_sub",
    "datediff",
    "timestampdiff",
    "str_to_date",
    "from_unixtime",
    "unix_timestamp",
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "week",
    "dayofweek",
    "dayofmonth",
    "dayofyear",
    // window functions
    "row_number",
    "rank",
    "dense_rank",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    "ntile",
    "percent_rank",
    "cume_dist",
    // cast-like
    "cast",
    "try_cast",
    "convert",
];

/// Schemas that hold system catalogs.
const SYSTEM_SCHEMAS: &[&str] = &[
    "pg_catalog",
    "information_schema",
    "mysql",
    "performance_schema",
    "sys",
];

/// Table-name prefixes of system catalogs (`pg_tables`, `sqlite_master`, ...).
const SYSTEM_TABLE_PREFIXES: &[&str] = &["pg_", "sqlite_"];

/// PostgreSQL object-identifier types that resolve catalog names (`'pg_authid'::regclass`).
const CATALOG_LOOKUP_TYPES: &[&str] = &[
    "regclass",
    "regproc",
    "regprocedure",
    "regoper",
    "regoperator",
    "regtype",
    "regconfig",
    "regdictionary",
    "regnamespace",
    "regrole",
    "regcollation",
];

const MAX_SNIPPET_CHARS: usize = 120;

/// `a JOIN b JOIN c ON .. ON ..` (a join directly followed by another join, before its
/// `ON`/`USING`) makes sqlparser 0.63 recurse in `parse_joins` without a depth limit; a few
/// dozen of them overflow a 2 MiB thread stack in a debug build. Inputs with more such
/// nested joins than this are rejected before parsing.
pub const MAX_NESTED_JOINS: usize = 8;

/// Checks one statement. Never panics; a parse failure is a "sql.parse" violation.
pub fn check(sql: &str, dialect: Dialect, policy: &GuardPolicy) -> GuardReport {
    check_and_parse(sql, dialect, policy, true).0
}

/// [`check`] that also hands back the parsed statements, so a caller that rewrites the query
/// works on exactly the tree that was checked. With `unescape` off, string literals keep their
/// source spelling, so regenerated text means the same to the database (MySQL backslashes).
/// The statements are empty when parsing failed.
pub(super) fn check_and_parse(
    sql: &str,
    dialect: Dialect,
    policy: &GuardPolicy,
    unescape: bool,
) -> (GuardReport, Vec<Statement>) {
    let mut report = GuardReport::default();
    let parser_dialect = dialect.parser_dialect();

    let tokens = match Tokenizer::new(parser_dialect.as_ref(), sql)
        .with_unescape(unescape)
        .tokenize_with_location()
    {
        Ok(tokens) => tokens,
        Err(err) => {
            push_violation(
                &mut report.violations,
                GuardViolation {
                    rule: rules::PARSE,
                    message: format!("the sql could not be tokenised: {err}").to_lowercase(),
                    expected: format!("valid {} sql", dialect.name()),
                    actual: err.to_string(),
                },
            );
            return (report, Vec::new());
        }
    };
    report.placeholders = collect_placeholders(tokens.iter().map(|t| &t.token));

    let significant = tokens
        .iter()
        .filter(|t| {
            !matches!(
                t.token,
                Token::Whitespace(_) | Token::SemiColon | Token::EOF
            )
        })
        .count();
    if significant == 0 {
        push_violation(
            &mut report.violations,
            GuardViolation {
                rule: rules::EMPTY,
                message: "the sql is empty; write one select query".to_string(),
                expected: "one select statement".to_string(),
                actual: "no statement".to_string(),
            },
        );
        return (report, Vec::new());
    }

    let nested_joins = count_nested_joins(tokens.iter().map(|t| &t.token));
    if nested_joins > MAX_NESTED_JOINS {
        push_violation(
            &mut report.violations,
            GuardViolation {
                rule: rules::COMPLEXITY,
                message: format!(
                    "found {nested_joins} joins without on/using directly followed by another \
                     join; give each join its own on clause (at most {MAX_NESTED_JOINS} nested)"
                ),
                expected: format!("at most {MAX_NESTED_JOINS} nested joins"),
                actual: format!("{nested_joins} nested joins"),
            },
        );
        return (report, Vec::new());
    }

    let tokens = rewrite_tokens(tokens, dialect, &mut report.violations);

    let mut parser = Parser::new(parser_dialect.as_ref()).with_tokens_with_locations(tokens);
    let statements = match parser.parse_statements() {
        Ok(statements) => {
            let next = parser.peek_token_ref();
            if next.token != Token::EOF {
                push_violation(
                    &mut report.violations,
                    GuardViolation {
                        rule: rules::PARSE,
                        message: format!(
                            "unexpected `{}` after the end of the statement at {}",
                            snippet(&next.token),
                            next.span.start
                        )
                        .to_lowercase(),
                        expected: "end of input".to_string(),
                        actual: snippet(&next.token),
                    },
                );
            }
            statements
        }
        Err(err) => {
            push_violation(
                &mut report.violations,
                GuardViolation {
                    rule: rules::PARSE,
                    message: format!("the sql could not be parsed: {err}").to_lowercase(),
                    expected: format!("valid {} sql", dialect.name()),
                    actual: err.to_string(),
                },
            );
            // Tokenising succeeded above, so this only fails if the tokenizer is not
            // deterministic; the diagnostics are best-effort either way.
            if let Ok(tokens) = Tokenizer::new(parser_dialect.as_ref(), sql).tokenize() {
                diagnose_unparsed(&tokens, &mut report.violations);
            }
            return (report, Vec::new());
        }
    };

    match statements.len() {
        0 => push_violation(
            &mut report.violations,
            GuardViolation {
                rule: rules::EMPTY,
                message: "the sql contains no statement; write one select query".to_string(),
                expected: "one select statement".to_string(),
                actual: "no statement".to_string(),
            },
        ),
        1 => {}
        n => push_violation(
            &mut report.violations,
            GuardViolation {
                rule: rules::SINGLE_STATEMENT,
                message: format!("found {n} statements; submit exactly one select query"),
                expected: "exactly one statement".to_string(),
                actual: format!("{n} statements"),
            },
        ),
    }

    let restricted: HashSet<String> = policy
        .restricted_tables
        .iter()
        .map(|t| normalize_policy_name(t))
        .filter(|t| !t.is_empty())
        .collect();
    let allowed_functions: HashSet<String> = BUILTIN_ALLOWED_FUNCTIONS
        .iter()
        .map(|f| (*f).to_string())
        .chain(
            policy
                .allowed_functions
                .iter()
                .map(|f| f.trim().to_lowercase()),
        )
        .collect();

    for statement in &statements {
        if !matches!(statement, Statement::Query(_)) {
            let kind = statement_kind(statement);
            push_violation(
                &mut report.violations,
                GuardViolation {
                    rule: rules::READ_ONLY,
                    message: format!(
                        "only select queries are allowed, but this is a {kind} statement"
                    ),
                    expected: "a select query".to_string(),
                    actual: format!("{kind} statement"),
                },
            );
        }
        let mut walker = Walker {
            restricted: &restricted,
            allowed_functions: &allowed_functions,
            root: statement,
            scopes: CteScopes::default(),
            skip_relation: None,
            violations: Vec::new(),
            tables: Vec::new(),
        };
        // The walker never breaks, so the control flow result carries no information.
        let _ = statement.visit(&mut walker);
        for violation in walker.violations {
            push_violation(&mut report.violations, violation);
        }
        for table in walker.tables {
            if !report.tables.contains(&table) {
                report.tables.push(table);
            }
        }
    }
    (report, statements)
}

/// Extracts `:name` placeholders with the dialect's tokenizer (so strings, comments and
/// PostgreSQL `::type` casts are not mistaken for parameters).
pub fn placeholders(sql: &str, dialect: Dialect) -> Result<Vec<String>, String> {
    let parser_dialect = dialect.parser_dialect();
    let tokens = Tokenizer::new(parser_dialect.as_ref(), sql)
        .tokenize()
        .map_err(|err| format!("the sql could not be tokenised: {err}"))?;
    Ok(collect_placeholders(tokens.iter()))
}

/// A `:name` placeholder is a `:` token immediately followed by an unquoted word, where the
/// colon does not directly follow a value (which would make it an array slice `a[1:n]`).
fn collect_placeholders<'t>(tokens: impl Iterator<Item = &'t Token>) -> Vec<String> {
    let tokens: Vec<&Token> = tokens.collect();
    let mut names: Vec<String> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let name = match token {
            Token::Placeholder(p) => p.strip_prefix(':').map(str::to_string),
            Token::Colon => {
                let follows_value = i
                    .checked_sub(1)
                    .and_then(|j| tokens.get(j))
                    .is_some_and(|t| {
                        matches!(
                            t,
                            Token::Word(_) | Token::Number(..) | Token::RBracket | Token::RParen
                        )
                    });
                match tokens.get(i + 1) {
                    Some(Token::Word(w)) if w.quote_style.is_none() && !follows_value => {
                        Some(w.value.clone())
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(name) = name
            && !name.is_empty()
            && !names.contains(&name)
        {
            names.push(name);
        }
    }
    names
}

/// Over-approximates how deep sqlparser's `parse_joins` will recurse: counts joins that start
/// while the previous join at the same parenthesis depth is still waiting for `ON`/`USING`.
fn count_nested_joins<'t>(tokens: impl Iterator<Item = &'t Token>) -> usize {
    const MODIFIERS: &[Keyword] = &[
        Keyword::INNER,
        Keyword::LEFT,
        Keyword::RIGHT,
        Keyword::FULL,
        Keyword::OUTER,
        Keyword::NATURAL,
        Keyword::CROSS,
        Keyword::SEMI,
        Keyword::ANTI,
        Keyword::GLOBAL,
    ];
    const CLAUSE_ENDS: &[Keyword] = &[
        Keyword::ON,
        Keyword::USING,
        Keyword::SELECT,
        Keyword::FROM,
        Keyword::WHERE,
        Keyword::GROUP,
        Keyword::HAVING,
        Keyword::ORDER,
        Keyword::LIMIT,
        Keyword::UNION,
        Keyword::EXCEPT,
        Keyword::INTERSECT,
        Keyword::WINDOW,
    ];
    // One "waiting for a join constraint" flag per parenthesis depth.
    let mut waiting: Vec<bool> = vec![false];
    // Join-type words seen since the last other token (`NATURAL LEFT OUTER`).
    let mut modifiers: Vec<Keyword> = Vec::new();
    let mut count = 0usize;
    for token in tokens {
        match token {
            Token::Whitespace(_) => continue,
            Token::LParen => waiting.push(false),
            Token::RParen if waiting.len() > 1 => {
                waiting.pop();
            }
            Token::Comma | Token::SemiColon => {
                if let Some(w) = waiting.last_mut() {
                    *w = false;
                }
            }
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::JOIN => {
                let plain = !modifiers
                    .iter()
                    .any(|k| matches!(k, Keyword::NATURAL | Keyword::CROSS));
                if let Some(waiting) = waiting.last_mut() {
                    if plain && *waiting {
                        count = count.saturating_add(1);
                    }
                    *waiting = plain;
                }
            }
            Token::Word(w) if w.quote_style.is_none() && MODIFIERS.contains(&w.keyword) => {
                modifiers.push(w.keyword);
                continue;
            }
            Token::Word(w) if w.quote_style.is_none() && CLAUSE_ENDS.contains(&w.keyword) => {
                if let Some(waiting) = waiting.last_mut() {
                    *waiting = false;
                }
            }
            _ => {}
        }
        modifiers.clear();
    }
    count
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.keyword == keyword && w.quote_style.is_none())
}

/// Token-level adjustments for constructs `sqlparser` does not model:
/// * MySQL `LOCK IN SHARE MODE` is reported and removed so the rest of the query is checked.
/// * PostgreSQL `FROM ONLY t` would otherwise parse as table `ONLY` aliased `t`; the `ONLY`
///   keyword is dropped so `t` is checked as the real table.
fn rewrite_tokens(
    tokens: Vec<TokenWithSpan>,
    dialect: Dialect,
    violations: &mut Vec<GuardViolation>,
) -> Vec<TokenWithSpan> {
    let significant: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_)))
        .map(|(i, _)| i)
        .collect();
    let mut drop = vec![false; tokens.len()];
    let token_at = |k: usize| {
        significant
            .get(k)
            .and_then(|&i| tokens.get(i))
            .map(|t| &t.token)
    };

    for k in 0..significant.len() {
        let Some(token) = token_at(k) else { continue };
        if is_keyword(token, Keyword::LOCK)
            && token_at(k + 1).is_some_and(|t| is_keyword(t, Keyword::IN))
            && token_at(k + 2).is_some_and(|t| is_keyword(t, Keyword::SHARE))
            && token_at(k + 3).is_some_and(|t| is_keyword(t, Keyword::MODE))
        {
            push_violation(
                violations,
                GuardViolation {
                    rule: rules::NO_LOCKING,
                    message: "remove the locking clause lock in share mode; queries may not \
                              lock rows"
                        .to_string(),
                    expected: "no locking clause".to_string(),
                    actual: "lock in share mode".to_string(),
                },
            );
            for j in k..k + 4 {
                if let Some(dropped) = significant.get(j).and_then(|&i| drop.get_mut(i)) {
                    *dropped = true;
                }
            }
        }
        if matches!(dialect, Dialect::Postgres | Dialect::Generic)
            && is_keyword(token, Keyword::ONLY)
            && k > 0
            && token_at(k - 1).is_some_and(|t| {
                is_keyword(t, Keyword::FROM) || is_keyword(t, Keyword::JOIN) || *t == Token::Comma
            })
            && token_at(k + 1).is_some_and(|t| matches!(t, Token::Word(_) | Token::LParen))
            && let Some(dropped) = significant.get(k).and_then(|&i| drop.get_mut(i))
        {
            *dropped = true;
        }
    }
    tokens
        .into_iter()
        .zip(drop)
        .filter(|(_, dropped)| !dropped)
        .map(|(t, _)| t)
        .collect()
}

/// Best-effort diagnostics for input the parser rejected: count statements and name
/// statements that are clearly not queries (`PRAGMA`, `DO`, ...).
fn diagnose_unparsed(tokens: &[Token], violations: &mut Vec<GuardViolation>) {
    let mut segments: Vec<Vec<&Token>> = vec![Vec::new()];
    for token in tokens {
        match token {
            Token::Whitespace(_) | Token::EOF => {}
            Token::SemiColon => segments.push(Vec::new()),
            other => {
                if let Some(last) = segments.last_mut() {
                    last.push(other);
                }
            }
        }
    }
    segments.retain(|s| !s.is_empty());
    if segments.len() > 1 {
        let n = segments.len();
        push_violation(
            violations,
            GuardViolation {
                rule: rules::SINGLE_STATEMENT,
                message: format!("found {n} statements; submit exactly one select query"),
                expected: "exactly one statement".to_string(),
                actual: format!("{n} statements"),
            },
        );
    }
    for segment in segments {
        let Some(first) = segment.first() else {
            continue;
        };
        let query_like = matches!(first, Token::LParen)
            || [Keyword::SELECT, Keyword::WITH, Keyword::VALUES]
                .iter()
                .any(|k| is_keyword(first, *k));
        if !query_like {
            let kind = match first {
                Token::Word(w) => w.value.to_lowercase(),
                other => snippet(other).to_lowercase(),
            };
            push_violation(
                violations,
                GuardViolation {
                    rule: rules::READ_ONLY,
                    message: format!(
                        "only select queries are allowed, but this is a {kind} statement"
                    ),
                    expected: "a select query".to_string(),
                    actual: format!("{kind} statement"),
                },
            );
        }
    }
}

pub(super) fn push_violation(violations: &mut Vec<GuardViolation>, violation: GuardViolation) {
    if !violations.contains(&violation) {
        violations.push(violation);
    }
}

/// Display text of an AST node, shortened for messages.
fn snippet(node: &impl Display) -> String {
    let text = node.to_string();
    if text.chars().count() <= MAX_SNIPPET_CHARS {
        text
    } else {
        let mut short: String = text.chars().take(MAX_SNIPPET_CHARS).collect();
        short.push_str("...");
        short
    }
}

/// `CreateTable { .. }` → "create table"; `Explain { analyze: true, .. }` → "explain analyze".
fn statement_kind(statement: &Statement) -> String {
    if let Statement::Explain { analyze: true, .. } = statement {
        return "explain analyze".to_string();
    }
    /// Keeps the leading variant name of a `Debug` rendering and stops formatting right after.
    struct VariantName(String);
    impl std::fmt::Write for VariantName {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            for c in s.chars() {
                if !c.is_ascii_alphanumeric() {
                    return Err(std::fmt::Error);
                }
                self.0.push(c);
            }
            Ok(())
        }
    }
    let mut variant = VariantName(String::new());
    // Stopping early is reported as a formatting error; the collected prefix is what we need.
    let _ = std::fmt::Write::write_fmt(&mut variant, format_args!("{statement:?}"));
    let mut kind = String::new();
    for c in variant.0.chars() {
        if c.is_ascii_uppercase() && !kind.is_empty() {
            kind.push(' ');
        }
        kind.push(c.to_ascii_lowercase());
    }
    if kind.is_empty() {
        "unknown".to_string()
    } else {
        kind
    }
}

/// Lower-case, unquoted parts of an object name.
pub(super) fn name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => ident.value.to_lowercase(),
            None => part.to_string().to_lowercase(),
        })
        .collect()
}

/// `"public"."Users"` → `users`; used for policy entries written by people.
pub(super) fn normalize_policy_name(name: &str) -> String {
    let last = name.trim().rsplit('.').next().unwrap_or_default();
    last.trim()
        .trim_matches(|c| matches!(c, '"' | '`' | '[' | ']' | '\''))
        .to_lowercase()
}

fn is_system_table_name(table: &str) -> bool {
    SYSTEM_TABLE_PREFIXES.iter().any(|p| table.starts_with(p)) || SYSTEM_SCHEMAS.contains(&table)
}

fn is_system_schema(schema: &str) -> bool {
    SYSTEM_SCHEMAS.contains(&schema) || schema.starts_with("pg_")
}

/// One query on the walk stack, for CTE scoping.
struct Frame {
    query: *const Query,
    /// Normalised CTE names defined by this query's `WITH`.
    cte_names: Vec<String>,
    /// The same names as written (value and quote style).
    cte_idents: Vec<Ident>,
    cte_queries: Vec<*const Query>,
    /// How many of `cte_names` are in scope right now (all in the body, earlier ones in a CTE).
    visible: usize,
    recursive: bool,
    /// This query is the body of a CTE of the enclosing frame.
    is_cte_body: bool,
}

/// The CTE names visible at the current point of a walk over a query tree: drive it from a
/// visitor's `pre_visit_query` / `post_visit_query`.
#[derive(Default)]
pub(super) struct CteScopes {
    frames: Vec<Frame>,
}

impl CteScopes {
    /// Enters `query`; a CTE body sees only the CTEs defined before it (and itself when
    /// recursive).
    pub(super) fn enter(&mut self, query: &Query) {
        let mut is_cte_body = false;
        if let Some(parent) = self.frames.last_mut()
            && let Some(i) = parent
                .cte_queries
                .iter()
                .position(|q| std::ptr::eq(*q, query))
        {
            parent.visible = if parent.recursive { i + 1 } else { i };
            is_cte_body = true;
        }
        let ctes = query.with.as_ref().map(|w| w.cte_tables.as_slice());
        let ctes = ctes.unwrap_or_default();
        let cte_idents: Vec<Ident> = ctes.iter().map(|c| c.alias.name.clone()).collect();
        self.frames.push(Frame {
            query: query as *const Query,
            visible: ctes.len(),
            cte_names: cte_idents.iter().map(|i| i.value.to_lowercase()).collect(),
            cte_idents,
            cte_queries: ctes.iter().map(|c| &*c.query as *const Query).collect(),
            recursive: query.with.as_ref().is_some_and(|w| w.recursive),
            is_cte_body,
        });
    }

    /// Leaves `query`, restoring the full CTE list of the enclosing query.
    pub(super) fn leave(&mut self, query: &Query) {
        if self
            .frames
            .last()
            .is_some_and(|f| std::ptr::eq(f.query, query))
            && let Some(frame) = self.frames.pop()
            && frame.is_cte_body
            && let Some(parent) = self.frames.last_mut()
        {
            parent.visible = parent.cte_names.len();
        }
    }

    /// True when an unqualified table name refers to a CTE here.
    pub(super) fn in_scope(&self, name: &str) -> bool {
        self.frames
            .iter()
            .any(|f| f.cte_names.iter().take(f.visible).any(|cte| cte == name))
    }

    /// True when a one-part table name certainly refers to a visible CTE: spelled exactly like
    /// it, with the same quoting, so no dialect's case folding can send it to a real table.
    pub(super) fn names_cte(&self, name: &Ident) -> bool {
        self.frames.iter().any(|f| {
            f.cte_idents
                .iter()
                .take(f.visible)
                .any(|cte| cte.value == name.value && cte.quote_style == name.quote_style)
        })
    }

    pub(super) fn inside_cte(&self) -> bool {
        self.frames.iter().any(|f| f.is_cte_body)
    }
}

struct Walker<'a> {
    restricted: &'a HashSet<String>,
    allowed_functions: &'a HashSet<String>,
    root: *const Statement,
    scopes: CteScopes,
    /// Name of a table function in FROM (`generate_series(..)`), not a relation.
    skip_relation: Option<*const ObjectName>,
    violations: Vec<GuardViolation>,
    tables: Vec<String>,
}

impl Walker<'_> {
    fn report(&mut self, rule: &'static str, message: String, expected: &str, actual: String) {
        push_violation(
            &mut self.violations,
            GuardViolation {
                rule,
                message,
                expected: expected.to_string(),
                actual,
            },
        );
    }

    fn is_shadowing_name(&self, name: &str) -> bool {
        self.restricted.contains(name) || is_system_table_name(name)
    }

    /// Checks a table reference given as lower-case name parts (`[schema, table]`).
    fn check_table(&mut self, parts: &[String]) {
        let Some((table, qualifiers)) = parts.split_last() else {
            return;
        };
        if qualifiers.is_empty() && self.scopes.in_scope(table) && !self.is_shadowing_name(table) {
            return;
        }
        if !self.tables.contains(table) {
            self.tables.push(table.clone());
        }
        let full = parts.join(".");
        if qualifiers.iter().any(|q| is_system_schema(q)) || is_system_table_name(table) {
            self.report(
                rules::SYSTEM_CATALOG,
                format!("table {full} is a system catalog and cannot be queried"),
                "an application table",
                full.clone(),
            );
        }
        if self.restricted.contains(table) {
            self.report(
                rules::RESTRICTED_TABLE,
                format!("table {full} is restricted and cannot be read"),
                "a table that is not restricted",
                full,
            );
        }
    }

    fn check_function_name(&mut self, name: &ObjectName) {
        let parts = name_parts(name);
        let Some((function, qualifiers)) = parts.split_last() else {
            return;
        };
        let full = parts.join(".");
        let builtin_schema = match qualifiers {
            [] => true,
            [schema] => schema == "pg_catalog",
            _ => false,
        };
        let allowed = (builtin_schema && self.allowed_functions.contains(function))
            || self.allowed_functions.contains(&full);
        if !allowed {
            self.report(
                rules::FUNCTION_ALLOWLIST,
                format!("function {full} is not on the allowlist of analytics functions"),
                "an allowlisted function",
                full,
            );
        }
    }

    fn check_data_type(&mut self, data_type: &DataType) {
        let type_name = match data_type {
            DataType::Regclass => "regclass".to_string(),
            DataType::Custom(name, _) => name_parts(name).last().cloned().unwrap_or_default(),
            _ => return,
        };
        if CATALOG_LOOKUP_TYPES.contains(&type_name.as_str()) {
            self.report(
                rules::SYSTEM_CATALOG,
                format!("cast to {type_name} looks up system catalogs and is not allowed"),
                "a cast to a plain data type",
                type_name,
            );
        }
    }

    /// MySQL system variables (`@@version`, `@@global.secure_file_priv`) leak server state.
    fn check_variable(&mut self, idents: &[Ident]) {
        let Some(first) = idents.first() else {
            return;
        };
        if first.quote_style.is_none() && first.value.starts_with("@@") {
            let name = idents
                .iter()
                .map(|i| i.value.to_lowercase())
                .collect::<Vec<_>>()
                .join(".");
            self.report(
                rules::VARIABLE,
                format!("system variable {name} cannot be read"),
                "column references and parameters",
                name,
            );
        }
    }

    fn check_set_expr(&mut self, body: &SetExpr) {
        match body {
            SetExpr::Select(_) | SetExpr::Query(_) | SetExpr::Values(_) => {}
            SetExpr::SetOperation { left, right, .. } => {
                self.check_set_expr(left);
                self.check_set_expr(right);
            }
            // Nested statements are reported by `pre_visit_statement`.
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {}
            SetExpr::Table(table) => {
                let text = snippet(table).to_lowercase();
                self.report(
                    rules::READ_ONLY,
                    format!("the table command `{text}` is not allowed; write select * from ..."),
                    "a select query",
                    text,
                );
                let parts: Vec<String> = [&table.schema_name, &table.table_name]
                    .into_iter()
                    .flatten()
                    .map(|p| normalize_policy_name(p))
                    .collect();
                self.check_table(&parts);
            }
        }
    }

    fn check_query_clauses(&mut self, query: &Query) {
        if let Some(with) = &query.with {
            if with.recursive {
                let names: Vec<String> = with
                    .cte_tables
                    .iter()
                    .map(|c| c.alias.name.value.to_lowercase())
                    .collect();
                let names = names.join(", ");
                self.report(
                    rules::NO_RECURSIVE_CTE,
                    format!("with recursive ({names}) is not allowed; recursion is unbounded"),
                    "a non-recursive cte",
                    format!("with recursive {names}"),
                );
            }
            for cte in &with.cte_tables {
                let name = cte.alias.name.value.to_lowercase();
                if self.is_shadowing_name(&name) {
                    self.report(
                        rules::CTE_SHADOWING,
                        format!(
                            "cte {name} shadows a restricted table or system catalog; rename it"
                        ),
                        "a cte name that is not a restricted table or system catalog",
                        name,
                    );
                }
            }
        }
        self.check_set_expr(&query.body);
        for lock in &query.locks {
            let text = snippet(lock).to_lowercase();
            self.report(
                rules::NO_LOCKING,
                format!("remove the locking clause {text}; queries may not lock rows"),
                "no locking clause",
                text,
            );
        }
        if let Some(for_clause) = &query.for_clause {
            self.unsupported(&snippet(for_clause));
        }
        if query.settings.is_some() {
            self.unsupported("settings");
        }
        if let Some(format) = &query.format_clause {
            self.unsupported(&snippet(format));
        }
        if let Some(pipe) = query.pipe_operators.first() {
            self.unsupported(&format!("|> {}", snippet(pipe)));
        }
    }

    fn unsupported(&mut self, what: &str) {
        let what = what.to_lowercase();
        self.report(
            rules::UNSUPPORTED_SYNTAX,
            format!("the clause {what} is not supported by the sql guard; remove it"),
            "standard select syntax",
            what,
        );
    }

    fn check_select(&mut self, select: &Select) {
        if let Some(into) = &select.into {
            let text = snippet(into).to_lowercase();
            self.report(
                rules::NO_INTO,
                format!("remove `{text}`; select ... into writes data"),
                "a select without into",
                text,
            );
        }
        if !select.connect_by.is_empty() {
            self.report(
                rules::NO_RECURSIVE_CTE,
                "connect by hierarchical recursion is not allowed; recursion is unbounded"
                    .to_string(),
                "a non-recursive query",
                "connect by".to_string(),
            );
        }
        for lateral in &select.lateral_views {
            let text = snippet(&lateral.lateral_view).to_lowercase();
            self.report(
                rules::TABLE_FACTOR,
                format!("lateral view {text} is not allowed; use plain tables and joins"),
                "a table, derived table or join",
                text,
            );
        }
    }

    fn check_table_factor(&mut self, factor: &TableFactor) {
        let kind = match factor {
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => return,
            TableFactor::Table {
                name, args, alias, ..
            } => {
                if args.is_some() {
                    self.skip_relation = Some(name as *const ObjectName);
                    self.check_function_name(name);
                    "table function"
                } else {
                    // `FROM ONLY users` in dialects without ONLY parses as table `only`
                    // aliased `users`; check the alias too, to be safe.
                    if let (Some(alias), [only]) = (alias, name.0.as_slice())
                        && only.as_ident().is_some_and(|i| {
                            i.quote_style.is_none() && i.value.eq_ignore_ascii_case("only")
                        })
                    {
                        let aliased = alias.name.value.to_lowercase();
                        if self.is_shadowing_name(&aliased) {
                            self.check_table(&[aliased]);
                        }
                    }
                    return;
                }
            }
            TableFactor::Function { name, .. } => {
                self.check_function_name(name);
                "table function"
            }
            TableFactor::TableFunction { .. } => "table function",
            TableFactor::UNNEST { .. } => "unnest",
            TableFactor::JsonTable { .. } => "json_table",
            TableFactor::OpenJsonTable { .. } => "openjson",
            TableFactor::XmlTable { .. } => "xmltable",
            TableFactor::Pivot { .. } => "pivot",
            TableFactor::Unpivot { .. } | TableFactor::UnpivotExpr { .. } => "unpivot",
            TableFactor::MatchRecognize { .. } => "match_recognize",
            TableFactor::SemanticView { .. } => "semantic view",
        };
        let text = snippet(factor).to_lowercase();
        self.report(
            rules::TABLE_FACTOR,
            format!("{kind} {text} is not allowed in from; use plain tables, subqueries and joins"),
            "a table, derived table or join",
            text,
        );
    }
}

impl Visitor for Walker<'_> {
    type Break = ();

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        if std::ptr::eq(statement, self.root) || matches!(statement, Statement::Query(_)) {
            return ControlFlow::Continue(());
        }
        let kind = statement_kind(statement);
        if self.scopes.inside_cte() {
            self.report(
                rules::NO_DATA_MODIFYING_CTE,
                format!("a cte may not contain a {kind} statement; ctes must be select queries"),
                "a select query in every cte",
                format!("{kind} statement"),
            );
        } else {
            self.report(
                rules::READ_ONLY,
                format!("only select queries are allowed, but the query contains a {kind}"),
                "a select query",
                format!("{kind} statement"),
            );
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.scopes.enter(query);
        self.check_query_clauses(query);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.scopes.leave(query);
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        self.check_select(select);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        self.check_table_factor(factor);
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if self
            .skip_relation
            .is_some_and(|p| std::ptr::eq(p, relation))
        {
            self.skip_relation = None;
            return ControlFlow::Continue(());
        }
        let parts = name_parts(relation);
        self.check_table(&parts);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Function(function) => self.check_function_name(&function.name),
            Expr::Cast { data_type, .. } => self.check_data_type(data_type),
            Expr::TypedString(typed) => self.check_data_type(&typed.data_type),
            Expr::Identifier(ident) => self.check_variable(std::slice::from_ref(ident)),
            Expr::CompoundIdentifier(idents) => self.check_variable(idents),
            Expr::BinaryOp {
                op: BinaryOperator::Assignment,
                left,
                ..
            } => {
                let target = snippet(left).to_lowercase();
                self.report(
                    rules::VARIABLE,
                    format!("assignment to {target} with := is not allowed"),
                    "expressions without assignment",
                    target,
                );
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: Dialect = Dialect::Postgres;
    const MY: Dialect = Dialect::MySql;
    const LITE: Dialect = Dialect::Sqlite;
    const GEN: Dialect = Dialect::Generic;

    fn policy() -> GuardPolicy {
        GuardPolicy {
            restricted_tables: vec![
                "users".to_string(),
                "public.credentials".to_string(),
                "\"API_Tokens\"".to_string(),
            ],
            allowed_functions: vec!["json_extract".to_string()],
        }
    }

    fn run(sql: &str, dialect: Dialect) -> GuardReport {
        check(sql, dialect, &policy())
    }

    #[track_caller]
    fn assert_rejected(sql: &str, dialect: Dialect, rule: &str) -> GuardReport {
        let report = run(sql, dialect);
        assert!(
            report.has_rule(rule),
            "{sql:?} ({dialect:?}) should violate {rule}, got {:#?}",
            report.violations
        );
        report
    }

    #[track_caller]
    fn assert_allowed(sql: &str, dialect: Dialect) -> GuardReport {
        let report = run(sql, dialect);
        assert!(
            report.is_allowed(),
            "{sql:?} ({dialect:?}) should be allowed, got {:#?}",
            report.violations
        );
        report
    }

    // ---- statement shape ----

    #[test]
    fn empty_input_is_rejected() {
        for sql in ["", "   ", ";", "-- only a comment\n", "/* nothing */ ;"] {
            let report = assert_rejected(sql, PG, rules::EMPTY);
            assert_eq!(report.violations.len(), 1);
        }
    }

    #[test]
    fn two_statements_are_rejected_with_count() {
        for d in [PG, MY, LITE, GEN] {
            let report = assert_rejected("SELECT 1; SELECT 2", d, rules::SINGLE_STATEMENT);
            let v = report
                .violations
                .iter()
                .find(|v| v.rule == rules::SINGLE_STATEMENT);
            assert!(v.is_some_and(|v| v.message.contains("found 2 statements")));
        }
    }

    #[test]
    fn trailing_semicolon_is_fine() {
        assert_allowed("SELECT 1;", PG);
    }

    #[test]
    fn stacked_statement_with_write_reports_both() {
        let report = run("SELECT * FROM t; DROP TABLE t", MY);
        assert!(report.has_rule(rules::SINGLE_STATEMENT));
        assert!(report.has_rule(rules::READ_ONLY));
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.actual == "drop statement")
        );
    }

    #[test]
    fn parse_error_is_reported_not_panicking() {
        let report = assert_rejected("SELEC * FRM t", PG, rules::PARSE);
        assert!(
            report.violations[0]
                .message
                .starts_with("the sql could not be parsed")
        );
        assert_rejected("SELECT 'unterminated", LITE, rules::PARSE);
    }

    #[test]
    fn input_ignored_by_the_parser_is_rejected() {
        // sqlparser stops at a bare END after a statement; the rest must not be ignored.
        assert_rejected("SELECT 1 END; DROP TABLE x", GEN, rules::PARSE);
    }

    // ---- read-only ----

    #[test]
    fn dml_is_rejected() {
        for (sql, kind) in [
            ("INSERT INTO t VALUES (1)", "insert statement"),
            ("UPDATE t SET a = 1", "update statement"),
            ("DELETE FROM t", "delete statement"),
        ] {
            for d in [PG, MY, LITE] {
                let report = assert_rejected(sql, d, rules::READ_ONLY);
                assert!(report.violations.iter().any(|v| v.actual == kind), "{sql}");
            }
        }
        assert_rejected(
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
            PG,
            rules::READ_ONLY,
        );
    }

    #[test]
    fn ddl_and_dcl_are_rejected() {
        assert_rejected("DROP TABLE t", PG, rules::READ_ONLY);
        assert_rejected("CREATE TABLE x (a int)", LITE, rules::READ_ONLY);
        assert_rejected("ALTER TABLE t ADD COLUMN b int", MY, rules::READ_ONLY);
        assert_rejected("TRUNCATE t", PG, rules::READ_ONLY);
        assert_rejected("GRANT SELECT ON t TO bob", PG, rules::READ_ONLY);
        assert_rejected("REVOKE SELECT ON t FROM bob", PG, rules::READ_ONLY);
    }

    #[test]
    fn session_and_transaction_statements_are_rejected() {
        let report = assert_rejected("SET search_path = x", PG, rules::READ_ONLY);
        assert!(report.violations[0].message.contains("set"));
        assert_rejected("BEGIN", PG, rules::READ_ONLY);
        assert_rejected("COMMIT", MY, rules::READ_ONLY);
        assert_rejected("SHOW TABLES", MY, rules::READ_ONLY);
    }

    #[test]
    fn explain_analyze_is_rejected() {
        let report = assert_rejected("EXPLAIN ANALYZE SELECT 1", PG, rules::READ_ONLY);
        assert!(report.violations[0].message.contains("explain analyze"));
        assert_rejected("EXPLAIN SELECT 1", MY, rules::READ_ONLY);
    }

    #[test]
    fn copy_lock_vacuum_call_are_rejected() {
        assert_rejected("COPY t TO STDOUT", PG, rules::READ_ONLY);
        assert_rejected("LOCK TABLE t", PG, rules::READ_ONLY);
        assert_rejected("VACUUM", PG, rules::READ_ONLY);
        let report = assert_rejected("CALL p()", MY, rules::READ_ONLY);
        assert!(report.violations[0].message.contains("call"));
    }

    #[test]
    fn do_block_is_rejected() {
        let report = assert_rejected("DO $$ BEGIN PERFORM 1; END $$", PG, rules::READ_ONLY);
        assert!(report.has_rule(rules::PARSE));
    }

    #[test]
    fn sqlite_pragma_and_attach_are_rejected() {
        let report = assert_rejected("PRAGMA table_info(t)", LITE, rules::READ_ONLY);
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.actual == "pragma statement")
        );
        assert_rejected("PRAGMA user_version = 3", LITE, rules::READ_ONLY);
        assert_rejected("ATTACH DATABASE 'x' AS y", LITE, rules::READ_ONLY);
    }

    // ---- into, locking, ctes ----

    #[test]
    fn select_into_is_rejected() {
        for d in [PG, GEN] {
            assert_rejected("SELECT * INTO x FROM t", d, rules::NO_INTO);
        }
        assert_rejected(
            "SELECT * FROM t WHERE a IN (SELECT b INTO y FROM u)",
            PG,
            rules::NO_INTO,
        );
    }

    #[test]
    fn locking_clauses_are_rejected() {
        let report = assert_rejected("SELECT * FROM ci_master FOR UPDATE", PG, rules::NO_LOCKING);
        assert!(report.violations[0].message.contains("for update"));
        assert_rejected("SELECT * FROM t FOR SHARE", PG, rules::NO_LOCKING);
        assert_rejected(
            "SELECT * FROM t FOR UPDATE SKIP LOCKED",
            MY,
            rules::NO_LOCKING,
        );
        assert_rejected(
            "SELECT * FROM t WHERE id IN (SELECT id FROM t FOR UPDATE)",
            PG,
            rules::NO_LOCKING,
        );
    }

    #[test]
    fn mysql_lock_in_share_mode_is_rejected() {
        let report = assert_rejected("SELECT * FROM t LOCK IN SHARE MODE", MY, rules::NO_LOCKING);
        assert!(!report.has_rule(rules::PARSE), "{:#?}", report.violations);
        assert_eq!(report.tables, vec!["t"]);
    }

    #[test]
    fn data_modifying_cte_is_rejected() {
        let report = assert_rejected(
            "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
            PG,
            rules::NO_DATA_MODIFYING_CTE,
        );
        assert!(report.violations[0].message.contains("delete"));
        assert_rejected(
            "WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x",
            PG,
            rules::NO_DATA_MODIFYING_CTE,
        );
        assert_rejected(
            "WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x",
            PG,
            rules::NO_DATA_MODIFYING_CTE,
        );
    }

    #[test]
    fn data_modifying_cte_reports_restricted_target() {
        let report = run("WITH x AS (DELETE FROM users RETURNING *) SELECT 1", PG);
        assert!(report.has_rule(rules::NO_DATA_MODIFYING_CTE));
        assert!(report.has_rule(rules::RESTRICTED_TABLE));
    }

    #[test]
    fn recursive_cte_is_rejected() {
        let sql = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) \
                   SELECT * FROM r";
        for d in [PG, LITE, MY] {
            let report = assert_rejected(sql, d, rules::NO_RECURSIVE_CTE);
            assert!(report.tables.is_empty(), "{:?}", report.tables);
        }
    }

    #[test]
    fn cte_shadowing_a_restricted_table_is_rejected() {
        let report = assert_rejected(
            "WITH users AS (SELECT 1) SELECT * FROM users",
            PG,
            rules::CTE_SHADOWING,
        );
        assert!(report.violations[0].message.contains("users"));
        assert_rejected(
            "WITH pg_tables AS (SELECT 1) SELECT * FROM pg_tables",
            PG,
            rules::CTE_SHADOWING,
        );
        assert_rejected(
            "WITH sqlite_master AS (SELECT 1) SELECT * FROM sqlite_master",
            LITE,
            rules::CTE_SHADOWING,
        );
    }

    // ---- table factors ----

    #[test]
    fn table_functions_are_rejected() {
        let report = assert_rejected(
            "SELECT * FROM generate_series(1,10)",
            PG,
            rules::TABLE_FACTOR,
        );
        assert!(report.violations[0].message.contains("generate_series"));
        assert!(report.tables.is_empty());
        let report = assert_rejected(
            "SELECT * FROM pg_read_file('/etc/passwd')",
            PG,
            rules::TABLE_FACTOR,
        );
        assert!(report.has_rule(rules::FUNCTION_ALLOWLIST));
        assert_rejected(
            "SELECT * FROM t, LATERAL generate_series(1, t.n) g",
            PG,
            rules::TABLE_FACTOR,
        );
        assert_rejected(
            "SELECT * FROM unnest(ARRAY[1, 2]) AS u",
            PG,
            rules::TABLE_FACTOR,
        );
        assert_rejected("SELECT * FROM TABLE(foo())", GEN, rules::TABLE_FACTOR);
        assert_rejected(
            "SELECT * FROM JSON_TABLE('[]', '$[*]' COLUMNS (a INT PATH '$.a')) jt",
            MY,
            rules::TABLE_FACTOR,
        );
    }

    // ---- functions ----

    #[test]
    fn pg_sleep_is_rejected_in_any_spelling() {
        for sql in [
            "SELECT pg_sleep(10)",
            "SELECT PG_CATALOG.PG_SLEEP(10)",
            "SELECT \"pg_sleep\"(10)",
            "SELECT * FROM t WHERE a = 1 AND pg_sleep(1) IS NOT NULL",
        ] {
            let report = assert_rejected(sql, PG, rules::FUNCTION_ALLOWLIST);
            assert!(report.violations[0].message.contains("pg_sleep"), "{sql}");
        }
    }

    #[test]
    fn dangerous_functions_are_rejected() {
        assert_rejected(
            "SELECT set_config('a','b',false)",
            PG,
            rules::FUNCTION_ALLOWLIST,
        );
        assert_rejected("SELECT current_setting('x')", PG, rules::FUNCTION_ALLOWLIST);
        assert_rejected(
            "SELECT lo_import('/etc/passwd')",
            PG,
            rules::FUNCTION_ALLOWLIST,
        );
        assert_rejected("SELECT sleep(5)", MY, rules::FUNCTION_ALLOWLIST);
        assert_rejected(
            "SELECT benchmark(1000000, md5('a'))",
            MY,
            rules::FUNCTION_ALLOWLIST,
        );
        assert_rejected(
            "SELECT load_extension('x')",
            LITE,
            rules::FUNCTION_ALLOWLIST,
        );
        assert_rejected("SELECT version()", PG, rules::FUNCTION_ALLOWLIST);
    }

    #[test]
    fn functions_are_checked_in_every_clause() {
        for sql in [
            "SELECT a FROM t ORDER BY pg_sleep(1)",
            "SELECT a FROM t GROUP BY a HAVING count(*) > pg_sleep(1)",
            "SELECT a FROM t JOIN u ON pg_sleep(1) IS NULL",
            "SELECT count(*) FILTER (WHERE pg_sleep(1) IS NULL) FROM t",
            "SELECT CASE WHEN a THEN pg_sleep(1) END FROM t",
            "SELECT lower(pg_sleep(1)::text)",
        ] {
            assert_rejected(sql, PG, rules::FUNCTION_ALLOWLIST);
        }
    }

    #[test]
    fn schema_qualified_user_function_is_rejected() {
        let report = assert_rejected("SELECT app.lower(a) FROM t", PG, rules::FUNCTION_ALLOWLIST);
        assert_eq!(report.violations[0].actual, "app.lower");
        assert_allowed("SELECT pg_catalog.lower(a) FROM t", PG);
    }

    #[test]
    fn policy_allowed_functions_extend_the_allowlist() {
        assert_allowed("SELECT json_extract(doc, '$.a') FROM t", LITE);
        let report = check(
            "SELECT json_extract(doc, '$.a') FROM t",
            LITE,
            &GuardPolicy::default(),
        );
        assert!(report.has_rule(rules::FUNCTION_ALLOWLIST));
    }

    // ---- restricted tables and catalogs ----

    #[test]
    fn restricted_table_is_rejected() {
        for d in [PG, MY, LITE, GEN] {
            let report = assert_rejected("SELECT * FROM users", d, rules::RESTRICTED_TABLE);
            assert!(report.violations[0].message.contains("users"));
            assert_eq!(report.tables, vec!["users"]);
        }
    }

    #[test]
    fn restricted_table_in_scalar_subquery() {
        assert_rejected(
            "SELECT (SELECT password_hash FROM users LIMIT 1)",
            PG,
            rules::RESTRICTED_TABLE,
        );
    }

    #[test]
    fn restricted_table_with_quotes_case_and_schema() {
        assert_rejected("SELECT * FROM \"Users\"", PG, rules::RESTRICTED_TABLE);
        assert_rejected("SELECT * FROM public.users", PG, rules::RESTRICTED_TABLE);
        assert_rejected("SELECT * FROM `app`.`USERS`", MY, rules::RESTRICTED_TABLE);
        assert_rejected(
            "SELECT * FROM main.credentials",
            LITE,
            rules::RESTRICTED_TABLE,
        );
        assert_rejected("SELECT * FROM api_tokens", PG, rules::RESTRICTED_TABLE);
    }

    #[test]
    fn restricted_table_behind_only() {
        let report = assert_rejected("SELECT * FROM ONLY users", PG, rules::RESTRICTED_TABLE);
        assert_eq!(report.tables, vec!["users"]);
        assert_rejected(
            "SELECT * FROM t JOIN ONLY public.users u ON u.id = t.uid",
            PG,
            rules::RESTRICTED_TABLE,
        );
        assert_rejected("SELECT * FROM ONLY users", MY, rules::RESTRICTED_TABLE);
    }

    #[test]
    fn restricted_table_in_order_by_subquery() {
        assert_rejected(
            "SELECT * FROM t ORDER BY (SELECT count(*) FROM credentials)",
            PG,
            rules::RESTRICTED_TABLE,
        );
    }

    #[test]
    fn restricted_table_in_joins_ctes_and_set_operations() {
        for sql in [
            "SELECT t.a FROM t JOIN users u ON u.id = t.uid",
            "SELECT t.a FROM t LEFT JOIN (SELECT id FROM users) u ON u.id = t.uid",
            "WITH x AS (SELECT * FROM users) SELECT * FROM x",
            "SELECT a FROM t UNION SELECT email FROM users",
            "SELECT a FROM t WHERE EXISTS (SELECT 1 FROM users WHERE users.id = t.uid)",
            "SELECT a FROM t WHERE a IN (SELECT id FROM users)",
            "SELECT a FROM t GROUP BY a HAVING count(*) > (SELECT count(*) FROM users)",
            "SELECT a FROM (t JOIN users ON true)",
        ] {
            assert_rejected(sql, PG, rules::RESTRICTED_TABLE);
        }
    }

    #[test]
    fn postgres_system_catalogs_are_rejected() {
        let report = assert_rejected(
            "SELECT * FROM pg_catalog.pg_tables",
            PG,
            rules::SYSTEM_CATALOG,
        );
        assert!(
            report.violations[0]
                .message
                .contains("pg_catalog.pg_tables")
        );
        assert_rejected("SELECT * FROM pg_shadow", PG, rules::SYSTEM_CATALOG);
        assert_rejected(
            "SELECT * FROM information_schema.tables",
            PG,
            rules::SYSTEM_CATALOG,
        );
        assert_rejected(
            "SELECT a FROM t WHERE a IN (SELECT usename FROM pg_user)",
            PG,
            rules::SYSTEM_CATALOG,
        );
        assert_rejected("SELECT 'pg_authid'::regclass", PG, rules::SYSTEM_CATALOG);
    }

    #[test]
    fn mysql_system_schemas_and_variables_are_rejected() {
        assert_rejected("SELECT * FROM mysql.user", MY, rules::SYSTEM_CATALOG);
        assert_rejected(
            "SELECT * FROM performance_schema.threads",
            MY,
            rules::SYSTEM_CATALOG,
        );
        assert_rejected("SELECT * FROM sys.session", MY, rules::SYSTEM_CATALOG);
        assert_rejected("SELECT @@version", MY, rules::VARIABLE);
        let report = assert_rejected("SELECT @@global.secure_file_priv", MY, rules::VARIABLE);
        assert_eq!(report.violations[0].actual, "@@global.secure_file_priv");
        assert_rejected("SELECT @x := 1", MY, rules::VARIABLE);
    }

    #[test]
    fn sqlite_catalogs_are_rejected() {
        for sql in [
            "SELECT * FROM sqlite_master",
            "SELECT * FROM sqlite_schema",
            "SELECT * FROM main.sqlite_master",
            "SELECT * FROM sqlite_temp_master",
            "SELECT * FROM sqlite_sequence",
            "SELECT * FROM sqlite_stat1",
        ] {
            assert_rejected(sql, LITE, rules::SYSTEM_CATALOG);
        }
    }

    #[test]
    fn every_violation_is_reported_once() {
        let report = run(
            "SELECT pg_sleep(1), (SELECT 1 FROM users), (SELECT 1 FROM users) \
             FROM pg_catalog.pg_tables FOR UPDATE",
            PG,
        );
        for rule in [
            rules::FUNCTION_ALLOWLIST,
            rules::RESTRICTED_TABLE,
            rules::SYSTEM_CATALOG,
            rules::NO_LOCKING,
        ] {
            assert!(report.has_rule(rule), "{rule}: {:#?}", report.violations);
        }
        assert_eq!(
            report
                .violations
                .iter()
                .filter(|v| v.rule == rules::RESTRICTED_TABLE)
                .count(),
            1
        );
    }

    #[test]
    fn messages_are_lower_case() {
        let report = run("SELECT PG_SLEEP(1) FROM Users FOR UPDATE", PG);
        assert!(report.violations.len() >= 3);
        for v in &report.violations {
            assert_eq!(v.message, v.message.to_lowercase());
        }
    }

    #[test]
    fn nested_join_chains_are_rejected_before_parsing() {
        // sqlparser recurses without limit on `a JOIN b JOIN c ...`; this must not crash.
        let chain: Vec<String> = (0..500).map(|i| format!("t{i}")).collect();
        let sql = format!("SELECT * FROM {}", chain.join(" JOIN "));
        for d in [PG, MY, LITE, GEN] {
            let report = assert_rejected(&sql, d, rules::COMPLEXITY);
            assert_eq!(report.violations.len(), 1);
        }
        assert_allowed(
            "SELECT * FROM a JOIN b JOIN c ON b.id = c.id ON a.id = b.id",
            PG,
        );
    }

    #[test]
    fn many_joins_with_on_clauses_are_fine() {
        let mut sql = "SELECT * FROM t0".to_string();
        for i in 1..60 {
            sql.push_str(&format!(" LEFT JOIN t{i} ON t{i}.id = t0.id"));
        }
        let report = assert_allowed(&sql, PG);
        assert_eq!(report.tables.len(), 60);
    }

    #[test]
    fn deep_nesting_is_a_parse_error_not_a_crash() {
        let sql = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert_rejected(&sql, PG, rules::PARSE);
        let sql = format!("SELECT {}1", "1 + ".repeat(5000));
        assert_allowed(&sql, LITE);
    }

    // ---- legitimate analytics ----

    #[test]
    fn join_aggregate_group_by_having() {
        let sql = "SELECT c.code, count(*) AS n, sum(m.value), round(avg(m.value), 2) \
                   FROM ci_master c JOIN measurements m ON m.ci_id = c.id \
                   LEFT JOIN sites s ON s.id = c.site_id \
                   WHERE m.ts >= '2024-01-01' GROUP BY c.code HAVING count(*) > 10 \
                   ORDER BY n DESC LIMIT 20";
        for d in [PG, MY, LITE, GEN] {
            let report = assert_allowed(sql, d);
            assert_eq!(report.tables, vec!["ci_master", "measurements", "sites"]);
        }
    }

    #[test]
    fn ctes_are_not_listed_as_tables() {
        let sql = "WITH recent AS (SELECT * FROM measurements WHERE ts > now()), \
                   totals AS (SELECT ci_id, sum(value) AS v FROM recent GROUP BY ci_id) \
                   SELECT * FROM totals JOIN ci_master c ON c.id = totals.ci_id";
        let report = assert_allowed(sql, PG);
        assert_eq!(report.tables, vec!["measurements", "ci_master"]);
    }

    #[test]
    fn cte_names_are_scoped_to_their_query() {
        // `x` inside the subquery is a CTE; the outer `x` is a real table.
        let report = assert_allowed(
            "SELECT * FROM x WHERE a IN (WITH x AS (SELECT 1 AS a) SELECT a FROM x)",
            PG,
        );
        assert_eq!(report.tables, vec!["x"]);
    }

    #[test]
    fn window_functions() {
        let sql = "SELECT ci_id, ts, avg(value) OVER (PARTITION BY ci_id ORDER BY ts) AS avg_v, \
                   row_number() OVER (PARTITION BY ci_id ORDER BY ts DESC) AS rn, \
                   lag(value, 1) OVER w, dense_rank() OVER w \
                   FROM measurements WINDOW w AS (PARTITION BY ci_id ORDER BY ts)";
        for d in [PG, MY, LITE] {
            assert_allowed(sql, d);
        }
    }

    #[test]
    fn union_subqueries_case_cast_in_like() {
        let sql = "SELECT code, CASE WHEN status IN ('a', 'b') THEN 'open' ELSE 'closed' END, \
                   CAST(value AS DECIMAL(10, 2)), coalesce(note, '') \
                   FROM ci_master WHERE code LIKE 'CI-%' \
                   AND id IN (SELECT ci_id FROM incidents WHERE severity > 2) \
                   UNION ALL SELECT code, 'x', 0, '' FROM archive_ci";
        for d in [PG, MY, LITE, GEN] {
            let report = assert_allowed(sql, d);
            assert_eq!(report.tables, vec!["ci_master", "incidents", "archive_ci"]);
        }
    }

    #[test]
    fn date_helpers_per_dialect() {
        assert_allowed(
            "SELECT date_trunc('day', ts), extract(year FROM ts), to_char(ts, 'YYYY') FROM m",
            PG,
        );
        assert_allowed(
            "SELECT strftime('%Y', ts), julianday(ts), date(ts) FROM m",
            LITE,
        );
        assert_allowed("SELECT date_format(ts, '%Y'), ifnull(a, 0) FROM m", MY);
    }

    #[test]
    fn derived_tables_and_values() {
        assert_allowed(
            "SELECT d.k, max(d.v) FROM (SELECT k, v FROM m) AS d GROUP BY d.k",
            PG,
        );
        assert_allowed("SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(n, s)", PG);
    }

    #[test]
    fn named_parameters_parse_in_every_dialect() {
        let sql = "SELECT * FROM ci_master WHERE code = :ci_code AND ts BETWEEN :from AND :to \
                   AND note <> ':not_a_param' LIMIT :limit";
        for d in [PG, MY, LITE, GEN] {
            let report = assert_allowed(sql, d);
            assert_eq!(report.placeholders, vec!["ci_code", "from", "to", "limit"]);
        }
    }

    #[test]
    fn postgres_casts_are_not_parameters() {
        let report = assert_allowed(
            "SELECT id::text, :ci_code::text AS c FROM ci_master WHERE code = :ci_code",
            PG,
        );
        assert_eq!(report.placeholders, vec!["ci_code"]);
    }

    #[test]
    fn column_named_like_restricted_table_is_fine() {
        let report = assert_allowed("SELECT users FROM t AS users_alias", PG);
        assert_eq!(report.tables, vec!["t"]);
    }

    // ---- placeholder extraction ----

    #[test]
    fn placeholders_ignore_strings_comments_and_casts() {
        let sql = "SELECT a::int, ':not_a_param' --:comment\n\
                   FROM t /* :block */ WHERE b = :b AND c = :c AND d = :b";
        for d in [PG, LITE, GEN] {
            assert_eq!(
                placeholders(sql, d),
                Ok(vec!["b".to_string(), "c".to_string()])
            );
        }
        // MySQL needs whitespace after `--`; `--:comment` is `- - :comment` there.
        assert_eq!(
            placeholders(sql, MY),
            Ok(vec![
                "comment".to_string(),
                "b".to_string(),
                "c".to_string()
            ])
        );
        assert_eq!(
            placeholders("SELECT 1 -- :comment\nFROM t WHERE b = :b", MY),
            Ok(vec!["b".to_string()])
        );
    }

    #[test]
    fn placeholders_in_postgres_dollar_quotes_and_slices_are_ignored() {
        let sql = "SELECT arr[1:n], $$ :x $$ FROM t WHERE a = :a";
        assert_eq!(placeholders(sql, PG), Ok(vec!["a".to_string()]));
    }

    #[test]
    fn placeholders_report_tokenizer_errors() {
        assert!(placeholders("SELECT 'oops", PG).is_err());
    }

    #[test]
    fn placeholders_empty_when_none() {
        assert_eq!(placeholders("SELECT 1", MY), Ok(Vec::new()));
    }

    #[test]
    fn policy_names_are_normalised() {
        assert_eq!(normalize_policy_name(" \"public\".\"Users\" "), "users");
        assert_eq!(normalize_policy_name("`API_Tokens`"), "api_tokens");
        assert_eq!(normalize_policy_name("credentials"), "credentials");
    }
}
