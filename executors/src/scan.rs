//! ScanSchema (tables, columns, types, primary and foreign keys, filtered by globs) and
//! TestConnection (reachability, read-only session, server version).

use std::collections::BTreeMap;
use std::time::Instant;

use ops_proto::executor::{
    Engine, ScanSchemaRequest, ScannedColumn, ScannedForeignKey, ScannedTable,
    TestConnectionResponse, Value, value::Kind,
};
use ops_proto::executor_api::ExecutorError;

use crate::ident::Binds;
use crate::source::SourceHandle;
use crate::sql::{self, Caps};
use crate::values;

const CAPS: Caps = Caps {
    max_rows: 200_000,
    max_bytes: 64 * 1024 * 1024,
};

/// `*` and `?` glob, case-insensitive.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) => a == b && go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    go(&p, &t)
}

fn wanted(request: &ScanSchemaRequest, schema: &str, table: &str) -> bool {
    let qualified = format!("{schema}.{table}");
    let hit = |g: &String| glob_match(g, table) || glob_match(g, &qualified);
    (request.include_tables.is_empty() || request.include_tables.iter().any(hit))
        && !request.exclude_tables.iter().any(hit)
}

fn s(row: &[Value], i: usize) -> String {
    match row.get(i).and_then(|v| v.kind.as_ref()) {
        Some(Kind::TextValue(v)) | Some(Kind::UuidValue(v)) => v.clone(),
        Some(Kind::IntValue(v)) => v.to_string(),
        Some(Kind::BytesValue(v)) => String::from_utf8_lossy(v).into_owned(),
        _ => String::new(),
    }
}

fn truthy(row: &[Value], i: usize) -> bool {
    match row.get(i).and_then(|v| v.kind.as_ref()) {
        Some(Kind::IntValue(v)) => *v != 0,
        Some(Kind::BoolValue(v)) => *v,
        Some(Kind::TextValue(v)) => matches!(v.as_str(), "YES" | "yes" | "1" | "true" | "PRI"),
        _ => false,
    }
}

async fn rows(
    handle: &SourceHandle,
    sql: &str,
    binds: Binds,
    deadline: Instant,
) -> Result<Vec<Vec<Value>>, ExecutorError> {
    Ok(sql::run(handle, sql, &binds.values, CAPS, deadline)
        .await?
        .rows
        .into_iter()
        .map(|r| r.values)
        .collect())
}

type Key = (String, String);

/// Scans tables, columns and keys of the source.
pub async fn scan(
    handle: &SourceHandle,
    request: &ScanSchemaRequest,
    deadline: Instant,
) -> Result<Vec<ScannedTable>, ExecutorError> {
    let engine = handle.engine();
    let mut tables: BTreeMap<Key, ScannedTable> = BTreeMap::new();
    let mut primary: Vec<(Key, String)> = Vec::new();
    let mut foreign: BTreeMap<(Key, String), ScannedForeignKey> = BTreeMap::new();
    match engine {
        Engine::Postgres | Engine::Mysql => {
            // information_schema uses domain types on PostgreSQL; read them as text.
            let t = if engine == Engine::Postgres {
                "::text"
            } else {
                ""
            };
            let mut binds = Binds::new(engine);
            let schema_filter = if engine == Engine::Mysql {
                "c.table_schema = DATABASE()".to_owned()
            } else if request.schemas.is_empty() {
                "c.table_schema = current_schema()".to_owned()
            } else {
                format!(
                    "c.table_schema IN ({})",
                    binds.list(request.schemas.iter().map(values::text))
                )
            };
            let columns_sql = format!(
                "SELECT c.table_schema{t}, c.table_name{t}, c.column_name{t}, c.data_type{t}, c.is_nullable{t} FROM information_schema.columns c WHERE {schema_filter} ORDER BY c.table_schema, c.table_name, c.ordinal_position"
            );
            for row in rows(handle, &columns_sql, binds, deadline).await? {
                let key = (s(&row, 0), s(&row, 1));
                let table = tables.entry(key.clone()).or_insert_with(|| ScannedTable {
                    schema: key.0.clone(),
                    name: key.1.clone(),
                    ..Default::default()
                });
                table.columns.push(ScannedColumn {
                    name: s(&row, 2),
                    data_type: s(&row, 3).to_uppercase(),
                    nullable: truthy(&row, 4),
                    primary_key: false,
                });
            }
            let mut binds = Binds::new(engine);
            let key_filter = schema_filter.replace("c.table_schema", "tc.table_schema");
            let key_filter = if engine == Engine::Postgres && !request.schemas.is_empty() {
                format!(
                    "tc.table_schema IN ({})",
                    binds.list(request.schemas.iter().map(values::text))
                )
            } else {
                key_filter
            };
            let (ref_schema, ref_table, ref_column, join_ref) = if engine == Engine::Mysql {
                (
                    "k.referenced_table_schema",
                    "k.referenced_table_name",
                    "k.referenced_column_name",
                    String::new(),
                )
            } else {
                (
                    "u.table_schema",
                    "u.table_name",
                    "u.column_name",
                    " LEFT JOIN information_schema.constraint_column_usage u ON u.constraint_schema = tc.constraint_schema AND u.constraint_name = tc.constraint_name AND tc.constraint_type = 'FOREIGN KEY'".to_owned(),
                )
            };
            let keys_sql = format!(
                "SELECT tc.table_schema{t}, tc.table_name{t}, tc.constraint_type{t}, tc.constraint_name{t}, k.column_name{t}, {ref_schema}{t}, {ref_table}{t}, {ref_column}{t} FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage k ON k.constraint_schema = tc.constraint_schema AND k.constraint_name = tc.constraint_name AND k.table_name = tc.table_name{join_ref} WHERE {key_filter} AND tc.constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') ORDER BY tc.table_schema, tc.table_name, tc.constraint_name, k.ordinal_position"
            );
            for row in rows(handle, &keys_sql, binds, deadline).await? {
                let key = (s(&row, 0), s(&row, 1));
                if s(&row, 2) == "PRIMARY KEY" {
                    primary.push((key, s(&row, 4)));
                } else {
                    let fk = foreign.entry((key, s(&row, 3))).or_default();
                    fk.columns.push(s(&row, 4));
                    fk.referenced_table = s(&row, 6);
                    fk.referenced_columns.push(s(&row, 7));
                }
            }
        }
        Engine::Sqlite => {
            let names = rows(
                handle,
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name",
                Binds::new(engine),
                deadline,
            )
            .await?;
            for name in names.iter().map(|r| s(r, 0)) {
                let key = ("main".to_owned(), name.clone());
                if !wanted(request, &key.0, &key.1) {
                    continue;
                }
                let mut binds = Binds::new(engine);
                let p = binds.push(values::text(&name));
                let columns = rows(
                    handle,
                    &format!("SELECT name, type, \"notnull\", pk FROM pragma_table_info({p}) ORDER BY cid"),
                    binds,
                    deadline,
                )
                .await?;
                let table = tables.entry(key.clone()).or_insert_with(|| ScannedTable {
                    schema: key.0.clone(),
                    name: name.clone(),
                    ..Default::default()
                });
                for row in columns {
                    table.columns.push(ScannedColumn {
                        name: s(&row, 0),
                        data_type: s(&row, 1).to_uppercase(),
                        nullable: !truthy(&row, 2),
                        primary_key: truthy(&row, 3),
                    });
                }
                let mut binds = Binds::new(engine);
                let p = binds.push(values::text(&name));
                let fks = rows(
                    handle,
                    &format!("SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list({p}) ORDER BY id, seq"),
                    binds,
                    deadline,
                )
                .await?;
                for row in fks {
                    let fk = foreign.entry((key.clone(), s(&row, 0))).or_default();
                    fk.referenced_table = s(&row, 1);
                    fk.columns.push(s(&row, 2));
                    fk.referenced_columns.push(s(&row, 3));
                }
            }
        }
        Engine::Unspecified => {
            return Err(ExecutorError::invalid(
                "source.engine",
                "an engine is required",
            ));
        }
    }
    for (key, column) in primary {
        if let Some(c) = tables
            .get_mut(&key)
            .and_then(|t| t.columns.iter_mut().find(|c| c.name == column))
        {
            c.primary_key = true;
        }
    }
    for ((key, _), fk) in foreign {
        if let Some(t) = tables.get_mut(&key) {
            t.foreign_keys.push(fk);
        }
    }
    Ok(tables
        .into_iter()
        .filter(|((schema, name), _)| wanted(request, schema, name))
        .map(|(_, t)| t)
        .collect())
}

/// Connects, reads the server version and checks that the executor's session refuses writes.
pub async fn test_connection(
    handle: &SourceHandle,
    deadline: Instant,
) -> Result<TestConnectionResponse, ExecutorError> {
    let started = Instant::now();
    let (sql, message) = match handle.engine() {
        Engine::Postgres => (
            "SELECT current_setting('server_version'), current_setting('transaction_read_only')",
            "statements run in BEGIN READ ONLY transactions",
        ),
        Engine::Mysql => (
            "SELECT VERSION(), 'on'",
            "statements run in START TRANSACTION READ ONLY transactions",
        ),
        _ => (
            "SELECT sqlite_version(), CASE WHEN query_only = 1 THEN 'on' ELSE 'off' END FROM pragma_query_only",
            "the database file is opened read-only with query_only",
        ),
    };
    let rows = rows(handle, sql, Binds::new(handle.engine()), deadline).await?;
    let row = rows.first().cloned().unwrap_or_default();
    let read_only = s(&row, 1) == "on";
    Ok(TestConnectionResponse {
        ok: true,
        read_only,
        server_version: s(&row, 0),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        message: if read_only {
            message.to_owned()
        } else {
            "the session accepts writes".to_owned()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_case_insensitively() {
        assert!(glob_match("ci_*", "CI_MASTER"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("metric_?imeseries", "metric_timeseries"));
        assert!(!glob_match("ci_*", "events"));
    }
}
