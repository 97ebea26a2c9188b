//! Runs one read-only SQL query against a Source, whatever the control plane already checked:
//! exactly one query statement, values bound (never spliced), a read-only transaction that is
//! always rolled back, a statement timeout from the call's deadline, and row and byte caps.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use ops_proto::executor::{Column, Engine, ResultSet, Row, Value};
use ops_proto::executor_api::{ExecutorError, ExecutorErrorKind};
use sqlparser::ast::{SetExpr, Statement, Visit, Visitor};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};
use sqlx::{AssertSqlSafe, Connection, Executor as _, SqlSafeStr, Statement as _, TypeInfo};

use crate::source::{SourceHandle, SourcePool};
use crate::values;

/// Row and byte caps of one call.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub max_rows: usize,
    pub max_bytes: u64,
}

fn dialect(engine: Engine) -> Box<dyn Dialect> {
    match engine {
        Engine::Postgres => Box::new(PostgreSqlDialect {}),
        Engine::Mysql => Box::new(MySqlDialect {}),
        _ => Box::new(SQLiteDialect {}),
    }
}

/// Rewrites `:name` placeholders to the engine's positional binds and orders the values to
/// match. Placeholders are found by the tokenizer, so `:name` inside a string literal or
/// comment, and PostgreSQL `::` casts, are left alone.
pub fn bind_named(
    sql: &str,
    engine: Engine,
    named: &BTreeMap<String, Value>,
) -> Result<(String, Vec<Value>), ExecutorError> {
    let dialect = dialect(engine);
    let tokens = Tokenizer::new(dialect.as_ref(), sql)
        .tokenize_with_location()
        .map_err(|e| ExecutorError::invalid("sql.sql", format!("cannot tokenize: {e}")))?;
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |line: u64, column: u64| -> Option<usize> {
        let start = *line_starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let skip = usize::try_from(column).ok()?.checked_sub(1)?;
        Some(
            sql[start..]
                .char_indices()
                .nth(skip)
                .map_or(sql.len(), |(i, _)| start + i),
        )
    };

    let mut out = String::with_capacity(sql.len() + 8);
    let mut params = Vec::new();
    let mut positions: BTreeMap<&str, usize> = BTreeMap::new();
    let mut copied = 0;
    for pair in tokens.windows(2) {
        let (Token::Colon, Token::Word(word)) = (&pair[0].token, &pair[1].token) else {
            continue;
        };
        if word.quote_style.is_some() {
            continue;
        }
        let (Some(colon), Some(name_start)) = (
            offset(pair[0].span.start.line, pair[0].span.start.column),
            offset(pair[1].span.start.line, pair[1].span.start.column),
        ) else {
            continue;
        };
        // `:name` only when the name follows the colon directly.
        if name_start != colon + 1 || colon < copied {
            continue;
        }
        let name = word.value.as_str();
        let value = named.get(name).ok_or_else(|| {
            ExecutorError::invalid(
                format!("sql.named_params.{name}"),
                format!("the statement uses :{name} but no value was given for it"),
            )
        })?;
        out.push_str(&sql[copied..colon]);
        match engine {
            Engine::Postgres => {
                let next = positions.len() + 1;
                let index = *positions.entry(name).or_insert_with(|| {
                    params.push(value.clone());
                    next
                });
                out.push_str(&format!("${index}"));
            }
            _ => {
                positions.entry(name).or_insert(0);
                params.push(value.clone());
                out.push('?');
            }
        }
        copied = name_start + name.len();
    }
    out.push_str(&sql[copied..]);
    if let Some(unused) = named.keys().find(|k| !positions.contains_key(k.as_str())) {
        return Err(ExecutorError::invalid(
            format!("sql.named_params.{unused}"),
            format!("a value was given for :{unused}, which the statement does not use"),
        ));
    }
    Ok((out, params))
}

struct ReadOnlyQuery;

impl Visitor for ReadOnlyQuery {
    type Break = String;

    fn pre_visit_query(&mut self, query: &sqlparser::ast::Query) -> ControlFlow<String> {
        if !query.locks.is_empty() {
            return ControlFlow::Break("locking clauses (FOR UPDATE/SHARE) are not allowed".into());
        }
        match query.body.as_ref() {
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                ControlFlow::Break("data-modifying statements are not allowed".into())
            }
            SetExpr::Select(select) if select.into.is_some() => {
                ControlFlow::Break("SELECT INTO is not allowed".into())
            }
            _ => ControlFlow::Continue(()),
        }
    }
}

/// Defence in depth: exactly one statement, a query, no locking, no INTO, no data change.
pub fn check_single_query(sql: &str, engine: Engine) -> Result<(), ExecutorError> {
    let dialect = dialect(engine);
    let statements = Parser::parse_sql(dialect.as_ref(), sql)
        .map_err(|e| ExecutorError::invalid("sql.sql", format!("cannot parse: {e}")))?;
    let [statement] = statements.as_slice() else {
        return Err(ExecutorError::invalid(
            "sql.sql",
            format!(
                "exactly one statement is allowed, found {}",
                statements.len()
            ),
        ));
    };
    let Statement::Query(_) = statement else {
        return Err(ExecutorError::new(
            ExecutorErrorKind::PermissionDenied,
            "only read-only queries (SELECT) are executed",
        ));
    };
    if let ControlFlow::Break(reason) = statement.visit(&mut ReadOnlyQuery) {
        return Err(ExecutorError::new(
            ExecutorErrorKind::PermissionDenied,
            reason,
        ));
    }
    Ok(())
}

/// Collects rows until the row cap (one extra row fetched to detect truncation) or the byte cap.
async fn collect<R, S>(
    mut rows: S,
    decode: impl Fn(&R) -> Result<Vec<Value>, ExecutorError>,
    caps: Caps,
    handle: &SourceHandle,
) -> Result<(Vec<Row>, bool, u64), ExecutorError>
where
    S: Stream<Item = Result<R, sqlx::Error>> + Unpin,
{
    let mut out = Vec::new();
    let mut bytes = 0u64;
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| handle.error(e))?;
        if out.len() >= caps.max_rows {
            return Ok((out, true, bytes));
        }
        let values = decode(&row)?;
        let size: u64 = values.iter().map(values::value_bytes).sum();
        if bytes + size > caps.max_bytes {
            return Ok((out, true, bytes));
        }
        bytes += size;
        out.push(Row { values });
    }
    Ok((out, false, bytes))
}

fn columns<C: sqlx::Column>(columns: &[C]) -> Vec<Column> {
    columns
        .iter()
        .map(|c| Column {
            name: c.name().to_owned(),
            r#type: c.type_info().name().to_owned(),
        })
        .collect()
}

fn timeout_ms(deadline: Instant) -> Result<u64, ExecutorError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ExecutorError::new(
            ExecutorErrorKind::DeadlineExceeded,
            "the call's deadline passed before the statement started",
        ));
    }
    Ok(u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1))
}

/// Runs `sql` (positional binds already in place) under all of the executor's safeguards.
pub async fn run(
    handle: &SourceHandle,
    sql: &str,
    params: &[Value],
    caps: Caps,
    deadline: Instant,
) -> Result<ResultSet, ExecutorError> {
    check_single_query(sql, handle.engine())?;
    let left = deadline.saturating_duration_since(Instant::now());
    // The database enforces the deadline through its statement timeout; this outer bound also
    // covers connecting and queueing for a connection.
    match tokio::time::timeout(
        left + Duration::from_millis(10),
        run_inner(handle, sql, params, caps, deadline),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(ExecutorError::new(
            ExecutorErrorKind::DeadlineExceeded,
            format!("the query did not finish within {} ms", left.as_millis()),
        )),
    }
}

/// Prepares `sql` on the open transaction `tx`, binds `params`, collects rows under the caps and
/// always rolls back; yields the columns and the collected rows.
macro_rules! query_and_roll_back {
    ($tx:ident, $bind:path, $decode:path, $sql:expr, $params:expr, $caps:expr, $handle:expr) => {{
        let e = |error| $handle.error(error);
        let statement = (&mut *$tx)
            .prepare(AssertSqlSafe($sql.to_owned()).into_sql_str())
            .await
            .map_err(e)?;
        let columns = columns(statement.columns());
        let mut query = statement.query();
        for (i, v) in $params.iter().enumerate() {
            query = $bind(query, &format!("sql.params[{i}]"), v)?;
        }
        let result = collect(query.fetch(&mut *$tx), $decode, $caps, $handle).await;
        drop(statement);
        $tx.rollback().await.map_err(e)?;
        (columns, result?)
    }};
}

async fn run_inner(
    handle: &SourceHandle,
    sql: &str,
    params: &[Value],
    caps: Caps,
    deadline: Instant,
) -> Result<ResultSet, ExecutorError> {
    let e = |error| handle.error(error);
    let (columns, (rows, truncated, bytes)) = match &handle.pool {
        SourcePool::Postgres(pool) => {
            let mut tx = pool.begin_with("BEGIN READ ONLY").await.map_err(e)?;
            sqlx::query("SELECT set_config('statement_timeout', $1, true)")
                .bind(timeout_ms(deadline)?.to_string())
                .execute(&mut *tx)
                .await
                .map_err(e)?;
            query_and_roll_back!(
                tx,
                values::bind_pg,
                values::decode_pg,
                sql,
                params,
                caps,
                handle
            )
        }
        SourcePool::MySql(pool) => {
            let mut conn = pool.acquire().await.map_err(e)?;
            let seconds = timeout_ms(deadline)? as f64 / 1000.0;
            // MariaDB names the limit max_statement_time (seconds), MySQL max_execution_time (ms).
            let mariadb = sqlx::query(AssertSqlSafe(format!(
                "SET SESSION max_statement_time = {seconds:.3}"
            )))
            .execute(&mut *conn)
            .await;
            if mariadb.is_err() {
                sqlx::query(AssertSqlSafe(format!(
                    "SET SESSION max_execution_time = {}",
                    (seconds * 1000.0).ceil() as u64
                )))
                .execute(&mut *conn)
                .await
                .map_err(e)?;
            }
            let mut tx = conn
                .begin_with("START TRANSACTION READ ONLY")
                .await
                .map_err(e)?;
            query_and_roll_back!(
                tx,
                values::bind_mysql,
                values::decode_mysql,
                sql,
                params,
                caps,
                handle
            )
        }
        SourcePool::Sqlite(pool) => {
            let mut conn = pool.acquire().await.map_err(e)?;
            timeout_ms(deadline)?;
            // SQLite has no statement timeout: a progress handler interrupts the statement
            // once the deadline passes.
            conn.lock_handle()
                .await
                .map_err(e)?
                .set_progress_handler(1_000, move || Instant::now() < deadline);
            let outcome = async {
                let mut tx = conn.begin_with("BEGIN").await.map_err(e)?;
                Ok::<_, ExecutorError>(query_and_roll_back!(
                    tx,
                    values::bind_sqlite,
                    values::decode_sqlite,
                    sql,
                    params,
                    caps,
                    handle
                ))
            }
            .await;
            if let Ok(mut locked) = conn.lock_handle().await {
                locked.remove_progress_handler();
            }
            outcome?
        }
    };
    Ok(ResultSet {
        columns,
        rows,
        truncated,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn named_params_become_positional_binds() {
        let params = named(&[("code", values::text("GT-01")), ("t", values::text("acme"))]);
        let sql = "SELECT ':code', x::text FROM t WHERE code = :code AND tenant = :t OR c = :code";
        let (pg, values_pg) = bind_named(sql, Engine::Postgres, &params).unwrap_or_default();
        assert_eq!(
            pg,
            "SELECT ':code', x::text FROM t WHERE code = $1 AND tenant = $2 OR c = $1"
        );
        assert_eq!(values_pg.len(), 2);
        let (lite, values_lite) = bind_named(sql, Engine::Sqlite, &params).unwrap_or_default();
        assert_eq!(
            lite,
            "SELECT ':code', x::text FROM t WHERE code = ? AND tenant = ? OR c = ?"
        );
        assert_eq!(values_lite.len(), 3);
    }

    #[test]
    fn named_params_must_match_the_statement() {
        let missing = bind_named("SELECT :a", Engine::Sqlite, &named(&[])).err();
        assert_eq!(
            missing.and_then(|e| e.field),
            Some("sql.named_params.a".into())
        );
        let unused = bind_named("SELECT 1", Engine::Sqlite, &named(&[("b", values::int(1))])).err();
        assert_eq!(
            unused.and_then(|e| e.field),
            Some("sql.named_params.b".into())
        );
    }

    #[test]
    fn multi_line_sql_keeps_offsets() {
        let params = named(&[("k", values::int(1))]);
        let (sql, _) = bind_named(
            "SELECT '한글'\nFROM t\nWHERE k = :k",
            Engine::Postgres,
            &params,
        )
        .unwrap_or_default();
        assert_eq!(sql, "SELECT '한글'\nFROM t\nWHERE k = $1");
    }

    #[test]
    fn only_single_read_only_queries_pass() {
        for (sql, engine) in [
            ("SELECT 1; SELECT 2", Engine::Postgres),
            ("DELETE FROM t", Engine::Postgres),
            ("INSERT INTO t VALUES (1)", Engine::Sqlite),
            ("UPDATE t SET a = 1", Engine::Mysql),
            ("SELECT * FROM t FOR UPDATE", Engine::Postgres),
            ("SELECT * FROM t FOR UPDATE", Engine::Mysql),
            ("SELECT * INTO t2 FROM t", Engine::Postgres),
            (
                "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
                Engine::Postgres,
            ),
            ("DROP TABLE t", Engine::Sqlite),
        ] {
            assert!(check_single_query(sql, engine).is_err(), "{sql} passed");
        }
        assert!(check_single_query("SELECT a FROM t WHERE b = $1", Engine::Postgres).is_ok());
        assert!(check_single_query("SELECT a FROM t WHERE b = ?", Engine::Sqlite).is_ok());
    }
}
