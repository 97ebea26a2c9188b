//! A small typed builder for the SELECT statements the planner generates.
//!
//! The planner never concatenates SQL text: it names tables and columns (validated
//! identifiers) and passes every value as a `:name` bind placeholder, and the builder produces
//! a `sqlparser` AST. [`crate::sql_prepare::prepare_query`] then scopes, limits, binds and
//! regenerates it like any other query. Identifiers are emitted unquoted, so a column that is
//! a reserved word fails the guard's round trip (`sql.regenerate`) instead of running.

use std::fmt;

use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::{
    self, BinaryOperator, CaseWhen, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, GroupByExpr, Ident, Join, JoinConstraint,
    JoinOperator, LimitClause, ObjectName, OrderBy, OrderByExpr, OrderByKind, OrderByOptions,
    OrderBySort, Query, SelectFlavor, SelectItem, SetExpr, TableAlias, TableFactor, TableWithJoins,
    Value, WildcardAdditionalOptions,
};

/// Sort direction of [`Select::order_by`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// Why a builder input was refused; nothing invalid is ever spliced into the AST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// Not `[A-Za-z_][A-Za-z0-9_]*`, optionally qualified as `table.column`.
    Identifier(String),
    /// Not a `:name` bind placeholder.
    Param(String),
    /// A list argument (IN values, LIKE columns, score terms) was empty.
    EmptyList(&'static str),
    /// Neither `columns`, `score` nor `count` was called.
    NoColumns,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Identifier(name) => write!(
                f,
                "invalid identifier {name:?}: expected letters, digits and underscores not \
                 starting with a digit, optionally as table.column"
            ),
            BuildError::Param(param) => {
                write!(
                    f,
                    "invalid parameter {param:?}: expected a :name placeholder"
                )
            }
            BuildError::EmptyList(what) => write!(f, "{what} needs at least one entry"),
            BuildError::NoColumns => {
                write!(f, "the select has no columns: call columns, score or count")
            }
        }
    }
}

impl std::error::Error for BuildError {}

/// Builder for one `SELECT ... FROM table [JOIN ...] WHERE ... ORDER BY ... LIMIT n`.
///
/// Every method consumes and returns the builder; the first invalid input is remembered and
/// returned by [`Select::build`], so call chains stay flat.
#[derive(Debug, Clone)]
pub struct Select {
    table: Option<ObjectName>,
    alias: Option<Ident>,
    projection: Vec<SelectItem>,
    joins: Vec<Join>,
    filters: Vec<Expr>,
    order_by: Vec<OrderByExpr>,
    limit: Option<u64>,
    offset: Option<u64>,
    count: bool,
    distinct: bool,
    error: Option<BuildError>,
}

impl Select {
    /// Starts a query over `table` (`name` or `schema.name`).
    pub fn from(table: &str) -> Self {
        let mut select = Select {
            table: None,
            alias: None,
            projection: Vec::new(),
            joins: Vec::new(),
            filters: Vec::new(),
            order_by: Vec::new(),
            limit: None,
            offset: None,
            count: false,
            distinct: false,
            error: None,
        };
        select.table = select.check(table_name(table));
        select
    }

    /// Gives the base table an alias (`FROM events AS e`).
    pub fn alias(mut self, alias: &str) -> Self {
        self.alias = self.check(ident(alias));
        self
    }

    /// Adds plain column references (`col` or `table.col`) to the select list.
    pub fn columns<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for column in columns {
            if let Some(expr) = self.check(column_expr(column.as_ref())) {
                self.projection.push(SelectItem::UnnamedExpr(expr));
            }
        }
        self
    }

    /// `column = :param`
    pub fn filter_eq(self, column: &str, param: &str) -> Self {
        self.compare(column, BinaryOperator::Eq, param)
    }

    /// `column >= :param`
    pub fn filter_gte(self, column: &str, param: &str) -> Self {
        self.compare(column, BinaryOperator::GtEq, param)
    }

    /// `column > :param`
    pub fn filter_gt(self, column: &str, param: &str) -> Self {
        self.compare(column, BinaryOperator::Gt, param)
    }

    /// `column < :param`
    pub fn filter_lt(self, column: &str, param: &str) -> Self {
        self.compare(column, BinaryOperator::Lt, param)
    }

    /// `column <= :param`
    pub fn filter_lte(self, column: &str, param: &str) -> Self {
        self.compare(column, BinaryOperator::LtEq, param)
    }

    /// `column IN (:p0, :p1, ...)`; at least one placeholder.
    pub fn filter_in<I, S>(mut self, column: &str, params: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let list = self.check(param_list(params, "filter_in"));
        if let (Some(expr), Some(list)) = (self.check(column_expr(column)), list) {
            self.filters.push(Expr::InList {
                expr: Box::new(expr),
                list,
                negated: false,
            });
        }
        self
    }

    /// `column IS NULL`
    pub fn filter_is_null(mut self, column: &str) -> Self {
        if let Some(expr) = self.check(column_expr(column)) {
            self.filters.push(Expr::IsNull(Box::new(expr)));
        }
        self
    }

    /// `column IS NOT NULL`
    pub fn filter_is_not_null(mut self, column: &str) -> Self {
        if let Some(expr) = self.check(column_expr(column)) {
            self.filters.push(Expr::IsNotNull(Box::new(expr)));
        }
        self
    }

    /// `(lower(c1) LIKE :term OR lower(c2) LIKE :term ...)`; the caller binds a lower-case
    /// pattern such as `%pump%`.
    pub fn filter_like_any<I, S>(self, columns: I, term: &str) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.filter_like_any_term(columns, [term])
    }

    /// Like [`Select::filter_like_any`] for several terms: a row passes when any column
    /// matches any term.
    pub fn filter_like_any_term<I, S, T, U>(mut self, columns: I, terms: T) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
        T: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        let columns = self.check(column_list(columns, "filter_like_any columns"));
        let terms = self.check(param_list(terms, "filter_like_any terms"));
        if let (Some(columns), Some(terms)) = (columns, terms) {
            let matches = terms.iter().flat_map(|term| {
                columns
                    .iter()
                    .map(move |column| like(lower(column.clone()), term.clone()))
            });
            if let Some(any) = matches.reduce(|a, b| binary(a, BinaryOperator::Or, b)) {
                self.filters.push(Expr::Nested(Box::new(any)));
            }
        }
        self
    }

    /// Ranks rows by how many terms match where: adds the select item
    /// `CASE WHEN lower(col) LIKE :t THEN weight ELSE 0 END + ... AS <alias>` summed over every
    /// (term, weighted column) pair, and orders by it descending (before later `order_by`s).
    /// Document search: `score("score", [("title", 3), ("content", 1)], [":t0", ":t1"])`.
    pub fn score<I, S, T, U>(mut self, alias: &str, weighted: I, terms: T) -> Self
    where
        I: IntoIterator<Item = (S, u32)>,
        S: AsRef<str>,
        T: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        let mut columns = Vec::new();
        for (column, weight) in weighted {
            if let Some(expr) = self.check(column_expr(column.as_ref())) {
                columns.push((expr, weight));
            }
        }
        if columns.is_empty() {
            self.fail(BuildError::EmptyList("score columns"));
        }
        let terms = self.check(param_list(terms, "score terms"));
        let alias = self.check(ident(alias));
        if let (Some(terms), Some(alias)) = (terms, alias) {
            let cases = terms.iter().flat_map(|term| {
                columns
                    .iter()
                    .map(move |(column, weight)| weighted_match(column, term, *weight))
            });
            if let Some(sum) = cases.reduce(|a, b| binary(a, BinaryOperator::Plus, b)) {
                self.projection.push(SelectItem::ExprWithAlias {
                    expr: sum,
                    alias: alias.clone(),
                });
                self.order_by
                    .push(order_expr(Expr::Identifier(alias), Order::Desc));
            }
        }
        self
    }

    /// `JOIN table AS alias ON left = right` (columns may be qualified).
    pub fn join_on(self, table: &str, alias: &str, on: (&str, &str)) -> Self {
        self.join(table, alias, on, JoinOperator::Join)
    }

    /// `LEFT JOIN table AS alias ON left = right`.
    pub fn left_join_on(self, table: &str, alias: &str, on: (&str, &str)) -> Self {
        self.join(table, alias, on, JoinOperator::Left)
    }

    /// Adds an `ORDER BY` key; keys apply in call order.
    pub fn order_by(mut self, column: &str, order: Order) -> Self {
        if let Some(expr) = self.check(column_expr(column)) {
            self.order_by.push(order_expr(expr, order));
        }
        self
    }

    /// `LIMIT n` (the guard still clamps it to the policy's row limit).
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// `OFFSET n`: rows from the n-th on (a page; give an `order_by` so pages do not overlap).
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = Some(n);
        self
    }

    /// `SELECT DISTINCT` (the values of a column rather than its rows).
    pub fn distinct(mut self) -> Self {
        self.distinct = true;
        self
    }

    /// Turns the query into `SELECT COUNT(*) AS n` over the same tables and filters; the
    /// select list, order and limit are dropped because they do not apply to one count row.
    pub fn count(mut self) -> Self {
        self.count = true;
        self
    }

    /// The AST of the query, or the first invalid input.
    pub fn build(self) -> Result<Query, BuildError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let table = self.table.ok_or(BuildError::NoColumns)?;
        let offset = if self.count { None } else { self.offset };
        let (projection, order_by, limit) = if self.count {
            let count = SelectItem::ExprWithAlias {
                expr: count_star(),
                alias: Ident::new("n"),
            };
            (vec![count], Vec::new(), None)
        } else if self.projection.is_empty() {
            return Err(BuildError::NoColumns);
        } else {
            (self.projection, self.order_by, self.limit)
        };
        let from = TableWithJoins {
            relation: table_factor(table, self.alias),
            joins: self.joins,
        };
        let selection = self
            .filters
            .into_iter()
            .reduce(|a, b| binary(a, BinaryOperator::And, b));
        let mut body = select(projection, from, selection);
        if self.distinct && !self.count {
            body.distinct = Some(ast::Distinct::Distinct);
        }
        let mut query = query(body);
        if !order_by.is_empty() {
            query.order_by = Some(OrderBy {
                kind: OrderByKind::Expressions(order_by),
                interpolate: None,
            });
        }
        query.limit_clause = match (limit, offset) {
            (None, None) => None,
            (limit, offset) => Some(LimitClause::LimitOffset {
                limit: limit.map(number),
                offset: offset.map(|n| ast::Offset {
                    value: number(n),
                    rows: ast::OffsetRows::None,
                }),
                limit_by: Vec::new(),
            }),
        };
        Ok(query)
    }

    fn compare(mut self, column: &str, op: BinaryOperator, param: &str) -> Self {
        let value = self.check(placeholder(param));
        if let (Some(column), Some(value)) = (self.check(column_expr(column)), value) {
            self.filters.push(binary(column, op, value));
        }
        self
    }

    fn join(mut self, table: &str, alias: &str, on: (&str, &str), op: OpFn) -> Self {
        let table = self.check(table_name(table));
        let alias = self.check(ident(alias));
        let left = self.check(column_expr(on.0));
        let right = self.check(column_expr(on.1));
        if let (Some(table), Some(alias), Some(left), Some(right)) = (table, alias, left, right) {
            self.joins.push(Join {
                relation: table_factor(table, Some(alias)),
                global: false,
                join_operator: op(JoinConstraint::On(binary(left, BinaryOperator::Eq, right))),
            });
        }
        self
    }

    /// Keeps the value, or remembers the first error.
    fn check<T>(&mut self, result: Result<T, BuildError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.fail(error);
                None
            }
        }
    }

    fn fail(&mut self, error: BuildError) {
        self.error.get_or_insert(error);
    }
}

type OpFn = fn(JoinConstraint) -> JoinOperator;

/// `[A-Za-z_][A-Za-z0-9_]*`
pub(super) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn ident(name: &str) -> Result<Ident, BuildError> {
    if is_identifier(name) {
        Ok(Ident::new(name))
    } else {
        Err(BuildError::Identifier(name.to_string()))
    }
}

/// `name` or `qualifier.name`, each part a plain identifier.
fn qualified(name: &str) -> Result<Vec<Ident>, BuildError> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 2 || !parts.iter().all(|p| is_identifier(p)) {
        return Err(BuildError::Identifier(name.to_string()));
    }
    Ok(parts.into_iter().map(Ident::new).collect())
}

fn table_name(name: &str) -> Result<ObjectName, BuildError> {
    qualified(name).map(ObjectName::from)
}

fn column_expr(name: &str) -> Result<Expr, BuildError> {
    let mut parts = qualified(name)?;
    Ok(match (parts.pop(), parts.pop()) {
        (Some(column), Some(table)) => Expr::CompoundIdentifier(vec![table, column]),
        (Some(column), None) => Expr::Identifier(column),
        _ => return Err(BuildError::Identifier(name.to_string())),
    })
}

fn column_list<I, S>(columns: I, what: &'static str) -> Result<Vec<Expr>, BuildError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let columns = columns
        .into_iter()
        .map(|c| column_expr(c.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    non_empty(columns, what)
}

/// A `:name` bind placeholder.
pub(super) fn placeholder(param: &str) -> Result<Expr, BuildError> {
    match param.strip_prefix(':') {
        Some(name) if is_identifier(name) => Ok(placeholder_expr(param)),
        _ => Err(BuildError::Param(param.to_string())),
    }
}

fn param_list<I, S>(params: I, what: &'static str) -> Result<Vec<Expr>, BuildError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let params = params
        .into_iter()
        .map(|p| placeholder(p.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    non_empty(params, what)
}

fn non_empty<T>(items: Vec<T>, what: &'static str) -> Result<Vec<T>, BuildError> {
    if items.is_empty() {
        Err(BuildError::EmptyList(what))
    } else {
        Ok(items)
    }
}

fn binary(left: Expr, op: BinaryOperator, right: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(left),
        op,
        right: Box::new(right),
    }
}

fn like(expr: Expr, pattern: Expr) -> Expr {
    Expr::Like {
        negated: false,
        any: false,
        expr: Box::new(expr),
        pattern: Box::new(pattern),
        escape_char: None,
    }
}

fn call(name: &str, arg: FunctionArgExpr) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(arg)],
            clauses: Vec::new(),
        }),
        within_group: Vec::new(),
        filter: None,
        null_treatment: None,
        over: None,
    })
}

fn lower(expr: Expr) -> Expr {
    call("lower", FunctionArgExpr::Expr(expr))
}

fn count_star() -> Expr {
    call("COUNT", FunctionArgExpr::Wildcard)
}

fn number(n: u64) -> Expr {
    Expr::Value(Value::Number(n.to_string(), false).with_empty_span())
}

/// `CASE WHEN lower(column) LIKE term THEN weight ELSE 0 END`
fn weighted_match(column: &Expr, term: &Expr, weight: u32) -> Expr {
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![CaseWhen {
            condition: like(lower(column.clone()), term.clone()),
            result: number(u64::from(weight)),
        }],
        else_result: Some(Box::new(number(0))),
    }
}

fn order_expr(expr: Expr, order: Order) -> OrderByExpr {
    OrderByExpr {
        expr,
        options: OrderByOptions {
            sort: Some(match order {
                Order::Asc => OrderBySort::Asc,
                Order::Desc => OrderBySort::Desc,
            }),
            nulls_first: None,
        },
        with_fill: None,
    }
}

// ---- AST shapes shared with the guard's rewrites ----

/// A placeholder value as the parser produces it (`:name`, or the guard's own markers).
pub(super) fn placeholder_expr(text: &str) -> Expr {
    Expr::Value(Value::Placeholder(text.to_string()).with_empty_span())
}

/// `LIMIT n`
pub(super) fn limit_clause(n: u64) -> LimitClause {
    LimitClause::LimitOffset {
        limit: Some(number(n)),
        offset: None,
        limit_by: Vec::new(),
    }
}

/// `AS alias` for a table or derived table.
pub(super) fn table_alias(name: Ident) -> TableAlias {
    TableAlias {
        explicit: true,
        name,
        columns: Vec::new(),
        at: None,
    }
}

/// A plain table reference, as the parser produces it.
pub(super) fn table_factor(name: ObjectName, alias: Option<Ident>) -> TableFactor {
    TableFactor::Table {
        name,
        alias: alias.map(table_alias),
        args: None,
        with_hints: Vec::new(),
        version: None,
        with_ordinality: false,
        partitions: Vec::new(),
        json_path: None,
        sample: None,
        index_hints: Vec::new(),
    }
}

/// `SELECT *`
pub(super) fn wildcard() -> SelectItem {
    SelectItem::Wildcard(WildcardAdditionalOptions::default())
}

/// `SELECT projection FROM from [WHERE selection]` with every other clause empty.
pub(super) fn select(
    projection: Vec<SelectItem>,
    from: TableWithJoins,
    selection: Option<Expr>,
) -> ast::Select {
    ast::Select {
        select_token: AttachedToken::empty(),
        optimizer_hints: Vec::new(),
        distinct: None,
        select_modifiers: None,
        top: None,
        top_before_distinct: false,
        projection,
        exclude: None,
        into: None,
        from: vec![from],
        lateral_views: Vec::new(),
        prewhere: None,
        selection,
        connect_by: Vec::new(),
        group_by: GroupByExpr::Expressions(Vec::new(), Vec::new()),
        cluster_by: Vec::new(),
        distribute_by: Vec::new(),
        sort_by: Vec::new(),
        having: None,
        named_window: Vec::new(),
        qualify: None,
        window_before_qualify: false,
        value_table_mode: None,
        flavor: SelectFlavor::Standard,
    }
}

/// A query whose body is `select`, without WITH, ORDER BY or LIMIT.
pub(super) fn query(select: ast::Select) -> Query {
    Query {
        with: None,
        body: Box::new(SetExpr::Select(Box::new(select))),
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks: Vec::new(),
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sqlparser::ast::Statement;

    use super::*;
    use crate::sql_guard::{self, Dialect, GuardPolicy};
    use crate::sql_prepare::{Bind, GuardContext, prepare_query};

    const DIALECTS: [Dialect; 3] = [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite];

    fn built(select: Select) -> Result<Query, String> {
        select.build().map_err(|e| e.to_string())
    }

    /// The text parses back into the very same tree in every dialect, and the guard accepts it.
    fn assert_round_trip(query: &Query) -> Result<(), String> {
        let text = query.to_string();
        let policy = GuardPolicy::default();
        for dialect in DIALECTS {
            let (report, statements) = sql_guard::check_and_parse(&text, dialect, &policy, false);
            if !report.is_allowed() {
                return Err(format!("{dialect:?} {text}: {:#?}", report.violations));
            }
            let same = matches!(statements.as_slice(), [Statement::Query(q)] if **q == *query);
            if !same {
                return Err(format!(
                    "{dialect:?}: {text} does not parse back to the same tree"
                ));
            }
        }
        Ok(())
    }

    fn prepare_everywhere(query: &Query) -> Result<Vec<Vec<Bind>>, String> {
        let policy = GuardPolicy::default();
        let tenant_columns: HashMap<String, String> = ["ci_master", "events", "documents"]
            .iter()
            .map(|t| (t.to_string(), "tenant_id".to_string()))
            .collect();
        let known = ["acme".to_string(), "globex".to_string()];
        let mut binds = Vec::new();
        for dialect in DIALECTS {
            let ctx = GuardContext {
                dialect,
                policy: &policy,
                tenant: "acme",
                tenant_columns: &tenant_columns,
                global_tables: &[],
                known_tenants: &known,
                row_limit: Some(1000),
            };
            let prepared = prepare_query(query.clone(), &ctx)
                .map_err(|r| format!("{dialect:?}: {:#?}", r.violations))?;
            binds.push(prepared.binds);
        }
        Ok(binds)
    }

    #[test]
    fn a_page_keeps_its_offset_under_the_guard_row_limit() -> Result<(), String> {
        let page = Select::from("ci_master")
            .columns(["ci_code"])
            .order_by("ci_code", Order::Asc)
            .limit(10)
            .offset(20);
        let q = built(page)?;
        assert_eq!(
            q.to_string(),
            "SELECT ci_code FROM ci_master ORDER BY ci_code ASC LIMIT 10 OFFSET 20"
        );
        assert_round_trip(&q)?;
        prepare_everywhere(&q)?;
        // A count ignores the page.
        let count = built(
            Select::from("ci_master")
                .columns(["ci_code"])
                .offset(20)
                .count(),
        )?;
        assert!(!count.to_string().contains("OFFSET"), "{count}");
        Ok(())
    }

    #[test]
    fn list_cis_with_equality_filters() -> Result<(), String> {
        let q = built(
            Select::from("ci_master")
                .columns(["ci_code", "ci_name", "ci_type"])
                .filter_eq("system", ":system")
                .filter_eq("zone", ":zone")
                .filter_in("status", [":s0", ":s1"])
                .order_by("ci_code", Order::Asc)
                .limit(100),
        )?;
        assert_eq!(
            q.to_string(),
            "SELECT ci_code, ci_name, ci_type FROM ci_master WHERE system = :system \
             AND zone = :zone AND status IN (:s0, :s1) ORDER BY ci_code ASC LIMIT 100"
        );
        assert_round_trip(&q)?;
        let binds = prepare_everywhere(&q)?;
        assert_eq!(binds[0].first(), Some(&Bind::Tenant));
        assert_eq!(binds[0].len(), 5);
        Ok(())
    }

    #[test]
    fn count_cis_drops_order_and_limit() -> Result<(), String> {
        let q = built(
            Select::from("ci_master")
                .columns(["ci_code"])
                .filter_eq("ci_type", ":ci_type")
                .order_by("ci_code", Order::Asc)
                .limit(10)
                .count(),
        )?;
        assert_eq!(
            q.to_string(),
            "SELECT COUNT(*) AS n FROM ci_master WHERE ci_type = :ci_type"
        );
        assert_round_trip(&q)?;
        prepare_everywhere(&q)?;
        Ok(())
    }

    fn events_in_window() -> Select {
        Select::from("events")
            .columns([
                "events.event_id",
                "c.ci_code",
                "events.severity",
                "events.occurred_at",
            ])
            .join_on("ci_master", "c", ("events.ci_id", "c.ci_id"))
            .filter_eq("c.ci_code", ":ci_code")
            .filter_in("events.event_type", [":t0", ":t1"])
            .filter_gte("events.occurred_at", ":from")
            .filter_lt("events.occurred_at", ":to")
            .filter_is_null("events.resolved_at")
    }

    #[test]
    fn list_and_count_events_in_a_window() -> Result<(), String> {
        let q = built(
            events_in_window()
                .order_by("events.occurred_at", Order::Desc)
                .limit(20),
        )?;
        assert_eq!(
            q.to_string(),
            "SELECT events.event_id, c.ci_code, events.severity, events.occurred_at \
             FROM events JOIN ci_master AS c ON events.ci_id = c.ci_id \
             WHERE c.ci_code = :ci_code AND events.event_type IN (:t0, :t1) \
             AND events.occurred_at >= :from AND events.occurred_at < :to \
             AND events.resolved_at IS NULL ORDER BY events.occurred_at DESC LIMIT 20"
        );
        assert_round_trip(&q)?;
        prepare_everywhere(&q)?;
        let count = built(events_in_window().count())?;
        assert!(
            count
                .to_string()
                .starts_with("SELECT COUNT(*) AS n FROM events JOIN")
        );
        assert_round_trip(&count)?;
        prepare_everywhere(&count)?;
        Ok(())
    }

    #[test]
    fn document_search_ranks_by_weighted_term_matches() -> Result<(), String> {
        let terms = [":t0", ":t1"];
        let q = built(
            Select::from("documents")
                .alias("d")
                .columns(["d.doc_id", "d.title"])
                .score("score", [("d.title", 3), ("d.content", 1)], terms)
                .filter_like_any_term(["d.title", "d.content"], terms)
                .order_by("d.created_at", Order::Desc)
                .limit(5),
        )?;
        assert_eq!(
            q.to_string(),
            "SELECT d.doc_id, d.title, \
             CASE WHEN lower(d.title) LIKE :t0 THEN 3 ELSE 0 END \
             + CASE WHEN lower(d.content) LIKE :t0 THEN 1 ELSE 0 END \
             + CASE WHEN lower(d.title) LIKE :t1 THEN 3 ELSE 0 END \
             + CASE WHEN lower(d.content) LIKE :t1 THEN 1 ELSE 0 END AS score \
             FROM documents AS d \
             WHERE (lower(d.title) LIKE :t0 OR lower(d.content) LIKE :t0 \
             OR lower(d.title) LIKE :t1 OR lower(d.content) LIKE :t1) \
             ORDER BY score DESC, d.created_at DESC LIMIT 5"
        );
        assert_round_trip(&q)?;
        let binds = prepare_everywhere(&q)?;
        // PostgreSQL: tenant + two terms; the others bind each of the 8 term uses.
        assert_eq!(binds[0].len(), 3);
        assert_eq!(binds[1].len(), 9);
        Ok(())
    }

    #[test]
    fn like_any_with_one_term() -> Result<(), String> {
        let q = built(
            Select::from("ci_master")
                .columns(["ci_code"])
                .filter_eq("ci_type", ":ci_type")
                .filter_like_any(["ci_code", "ci_name"], ":term"),
        )?;
        assert_eq!(
            q.to_string(),
            "SELECT ci_code FROM ci_master WHERE ci_type = :ci_type \
             AND (lower(ci_code) LIKE :term OR lower(ci_name) LIKE :term)"
        );
        assert_round_trip(&q)
    }

    #[test]
    fn entity_dictionary() -> Result<(), String> {
        let q = built(Select::from("ci_master").columns(["ci_code", "ci_name", "ci_name_ko"]))?;
        assert_eq!(
            q.to_string(),
            "SELECT ci_code, ci_name, ci_name_ko FROM ci_master"
        );
        assert_round_trip(&q)?;
        prepare_everywhere(&q)?;
        Ok(())
    }

    #[test]
    fn plant_ops_columns_round_trip_unquoted() -> Result<(), String> {
        let columns = [
            "tenant_id",
            "ci_id",
            "ci_code",
            "ci_name",
            "ci_type",
            "system",
            "role",
            "status",
            "zone",
            "os",
            "vendor",
            "capacity",
            "metric_name",
            "ts",
            "value",
            "event_type",
            "severity",
            "message",
            "occurred_at",
            "resolved_at",
            "title",
            "domain",
            "doc_type",
            "content",
            "created_at",
            "relation_type",
            "source_ci_id",
            "target_ci_id",
        ];
        let mut select = Select::from("ci_master").columns(columns);
        for (i, column) in columns.iter().enumerate() {
            select = select.filter_eq(column, &format!(":p{i}"));
        }
        assert_round_trip(&built(select.order_by("value", Order::Asc))?)
    }

    #[test]
    fn left_join_and_other_comparisons() -> Result<(), String> {
        let q = built(
            Select::from("ci_master")
                .alias("c")
                .columns(["c.ci_code", "e.event_id"])
                .left_join_on("events", "e", ("e.ci_id", "c.ci_id"))
                .filter_gt("c.capacity", ":min")
                .filter_lte("c.capacity", ":max")
                .filter_is_not_null("c.zone"),
        )?;
        assert_eq!(
            q.to_string(),
            "SELECT c.ci_code, e.event_id FROM ci_master AS c \
             LEFT JOIN events AS e ON e.ci_id = c.ci_id \
             WHERE c.capacity > :min AND c.capacity <= :max AND c.zone IS NOT NULL"
        );
        assert_round_trip(&q)
    }

    #[test]
    fn invalid_identifiers_are_refused() {
        for bad in [
            "ci_code; DROP TABLE x",
            "a.b.c",
            "1abc",
            "",
            "ci code",
            "\"quoted\"",
            "c.",
            "ci_code--",
        ] {
            let result = Select::from("ci_master").columns([bad]).build();
            assert_eq!(
                result,
                Err(BuildError::Identifier(bad.to_string())),
                "{bad:?}"
            );
        }
        let result = Select::from("ci_master; --").columns(["a"]).build();
        assert!(matches!(result, Err(BuildError::Identifier(_))));
        let result = Select::from("t")
            .columns(["a"])
            .order_by("a desc", Order::Asc)
            .build();
        assert!(matches!(result, Err(BuildError::Identifier(_))));
    }

    #[test]
    fn values_must_be_named_placeholders() {
        for bad in ["acme", "'acme'", ":", ":1x", ":a-b", "$1", "?", ":a b"] {
            let result = Select::from("t").columns(["a"]).filter_eq("a", bad).build();
            assert_eq!(result, Err(BuildError::Param(bad.to_string())), "{bad:?}");
        }
    }

    #[test]
    fn empty_lists_and_missing_columns_are_refused() {
        let none: [&str; 0] = [];
        let result = Select::from("t")
            .columns(["a"])
            .filter_in("a", none)
            .build();
        assert_eq!(result, Err(BuildError::EmptyList("filter_in")));
        let result = Select::from("t")
            .columns(["a"])
            .filter_like_any(none, ":x")
            .build();
        assert!(matches!(result, Err(BuildError::EmptyList(_))));
        let result = Select::from("t").build();
        assert_eq!(result, Err(BuildError::NoColumns));
    }

    #[test]
    fn the_first_error_is_reported() {
        let result = Select::from("t")
            .columns(["bad name"])
            .filter_eq("a", "oops")
            .build();
        assert_eq!(result, Err(BuildError::Identifier("bad name".to_string())));
        let message = BuildError::Param("x".to_string()).to_string();
        assert_eq!(message, message.to_lowercase());
    }
}
