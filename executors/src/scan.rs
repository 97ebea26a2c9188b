//! ScanSchema (tables, columns, types, primary and foreign keys, filtered by globs) and
//! TestConnection (reachability, read-only session, server version).

use std::collections::BTreeMap;
use std::time::Instant;

use ops_proto::executor::{
    ColumnProfile, Engine, ScanSchemaRequest, ScannedColumn, ScannedForeignKey, ScannedTable,
    TestConnectionResponse, Value, ValueCount, value::Kind,
};
use ops_proto::executor_api::ExecutorError;

use crate::ident::{self, Binds};
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
                    profile: None,
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
                        profile: None,
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
    let mut scanned: Vec<ScannedTable> = tables
        .into_iter()
        .filter(|((schema, name), _)| wanted(request, schema, name))
        .map(|(_, t)| t)
        .collect();
    if request.sample_rows > 0 {
        for table in &mut scanned {
            // A profile only informs proposals: a table it cannot read (a deadline reached on a
            // huge table, a type the driver cannot decode) keeps its structure, unprofiled.
            if let Err(error) = profile(handle, request, table, deadline).await {
                tracing::warn!(table = %table.name, message = %error.message, "table not profiled");
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
    }
    Ok(scanned)
}

/// Profiles a table from a sample of its rows (the caller's rows when the request names a
/// filter column the table has): per column, how many values, how many distinct, whether
/// they are numbers or dates, and the values themselves when there are few of them.
async fn profile(
    handle: &SourceHandle,
    request: &ScanSchemaRequest,
    table: &mut ScannedTable,
    deadline: Instant,
) -> Result<(), ExecutorError> {
    let engine = handle.engine();
    let qualified = if engine == Engine::Postgres {
        format!("{}.{}", table.schema, table.name)
    } else {
        table.name.clone()
    };
    // A name that is not a plain identifier is skipped, never spliced into SQL.
    let Ok(from) = ident::quote(engine, "table", &qualified) else {
        return Ok(());
    };
    let mut binds = Binds::new(engine);
    let filter = request.sample_filter_columns.get(&table.name);
    let condition =
        if let Some(filter) = filter.filter(|f| table.columns.iter().any(|c| &c.name == *f)) {
            let column = ident::quote(engine, "sample_filter_columns", filter)?;
            let p = binds.push(values::text(&request.sample_filter_value));
            format!(" WHERE {column} = {p}")
        } else {
            String::new()
        };
    let sql = format!(
        "SELECT * FROM {from}{condition} LIMIT {}",
        request.sample_rows.min(CAPS.max_rows as u32)
    );
    let result = sql::run(handle, &sql, &binds.values, CAPS, deadline).await?;
    table.sampled_rows = u32::try_from(result.rows.len()).unwrap_or(u32::MAX);
    for (i, column) in result.columns.iter().enumerate() {
        let Some(scanned) = table.columns.iter_mut().find(|c| c.name == column.name) else {
            continue;
        };
        let cells = result.rows.iter().filter_map(|r| r.values.get(i));
        let redacted = request
            .redact_markers
            .iter()
            .any(|m| !m.is_empty() && scanned.name.to_lowercase().contains(&m.to_lowercase()));
        let mut profile = column_profile(cells, request.max_values, redacted);
        if !request.find_value.is_empty() && !redacted {
            profile.found = result
                .rows
                .iter()
                .filter_map(|r| r.values.get(i))
                .filter(|v| matches!(&v.kind, Some(Kind::TextValue(t)) if *t == request.find_value))
                .count()
                .try_into()
                .unwrap_or(u32::MAX);
        }
        scanned.profile = Some(profile);
    }
    // The first rows are no fair sample of an enum-like column (a time series sorted by metric
    // holds one metric in its first rows): count such a column's values over the whole table.
    let filter_column = filter.filter(|f| table.columns.iter().any(|c| &c.name == *f));
    for scanned in &mut table.columns {
        let Some(profile) = scanned.profile.as_mut() else {
            continue;
        };
        if profile.values.is_empty() || profile.distinct >= profile.non_null {
            continue;
        }
        let column = ident::quote(engine, "column", &scanned.name)?;
        let mut binds = Binds::new(engine);
        let mut condition = format!("{column} IS NOT NULL");
        if let Some(filter) = filter_column {
            let p = binds.push(values::text(&request.sample_filter_value));
            condition.push_str(&format!(
                " AND {} = {p}",
                ident::quote(engine, "sample_filter_columns", filter)?
            ));
        }
        let sql = format!(
            "SELECT {column}, COUNT(*) FROM {from} WHERE {condition} GROUP BY {column} ORDER BY COUNT(*) DESC, {column} LIMIT {}",
            request.max_values + 1
        );
        let counted = sql::run(handle, &sql, &binds.values, CAPS, deadline).await?;
        if counted.rows.len() > request.max_values as usize {
            profile.values.clear();
            profile.distinct = profile.distinct.max(request.max_values + 1);
            continue;
        }
        profile.values = counted
            .rows
            .iter()
            .map(|row| ValueCount {
                value: s(&row.values, 0),
                count: match row.values.get(1).and_then(|v| v.kind.as_ref()) {
                    Some(Kind::IntValue(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
                    _ => 0,
                },
            })
            .collect();
        profile.distinct = u32::try_from(profile.values.len()).unwrap_or(u32::MAX);
    }
    Ok(())
}

fn column_profile<'a>(
    cells: impl Iterator<Item = &'a Value>,
    max_values: u32,
    redacted: bool,
) -> ColumnProfile {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let (mut numeric, mut temporal, mut max_length, mut with_spaces) = (true, true, 0usize, 0u32);
    for kind in cells.filter_map(|v| v.kind.as_ref()) {
        let text = match kind {
            Kind::Null(_) => continue,
            Kind::IntValue(v) => v.to_string(),
            Kind::FloatValue(v) => v.to_string(),
            Kind::BoolValue(v) => v.to_string(),
            Kind::DecimalValue(v)
            | Kind::TextValue(v)
            | Kind::UuidValue(v)
            | Kind::JsonValue(v) => v.clone(),
            Kind::TimestampValue(t) => format!("{}", t.seconds),
            Kind::BytesValue(b) => format!("<{} bytes>", b.len()),
        };
        numeric &= matches!(
            kind,
            Kind::IntValue(_) | Kind::FloatValue(_) | Kind::DecimalValue(_)
        );
        temporal &= match kind {
            Kind::TimestampValue(_) => true,
            Kind::TextValue(v) => looks_like_date(v),
            _ => false,
        };
        max_length = max_length.max(text.chars().count());
        with_spaces += u32::from(text.chars().any(char::is_whitespace));
        *counts.entry(text).or_default() += 1;
    }
    let non_null: u32 = counts.values().sum();
    let distinct = u32::try_from(counts.len()).unwrap_or(u32::MAX);
    let values = if redacted || distinct > max_values || non_null == 0 {
        Vec::new()
    } else {
        let mut values: Vec<ValueCount> = counts
            .into_iter()
            .map(|(value, count)| ValueCount { value, count })
            .collect();
        values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        values
    };
    ColumnProfile {
        non_null,
        distinct,
        values,
        numeric: numeric && non_null > 0,
        temporal: temporal && non_null > 0,
        max_length: u32::try_from(max_length).unwrap_or(u32::MAX),
        with_spaces,
        found: 0,
    }
}

/// `YYYY-MM-DD`, optionally followed by a time (`T` or a space, then `HH:MM`).
fn looks_like_date(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let date = b.len() >= 10
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10);
    date && (b.len() == 10
        || (b.len() >= 16
            && matches!(b[10], b'T' | b' ')
            && digits(11..13)
            && b[13] == b':'
            && digits(14..16)))
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
    fn a_profile_counts_values_and_recognises_numbers_and_dates() {
        let text = |t: &str| Value {
            kind: Some(Kind::TextValue(t.into())),
        };
        let cells = [
            text("2026-01-03T10:00:00Z"),
            text("2026-01-04 09:30"),
            text("2026-01-03T10:00:00Z"),
        ];
        let p = column_profile(cells.iter(), 10, false);
        assert!(p.temporal && !p.numeric, "{p:?}");
        assert_eq!((p.non_null, p.distinct), (3, 2));
        assert_eq!(p.values[0].value, "2026-01-03T10:00:00Z");
        assert_eq!(p.values[0].count, 2);
        let numbers = [
            Value {
                kind: Some(Kind::FloatValue(1.5)),
            },
            Value {
                kind: Some(Kind::IntValue(2)),
            },
        ];
        let p = column_profile(numbers.iter(), 10, false);
        assert!(p.numeric && !p.temporal, "{p:?}");
        // Too many distinct values, or a redacted column: counts only, no values.
        assert!(column_profile(numbers.iter(), 1, false).values.is_empty());
        assert!(column_profile(cells.iter(), 10, true).values.is_empty());
        assert!(
            !looks_like_date("2026-1-3")
                && !looks_like_date("GT-01")
                && looks_like_date("2026-01-03")
        );
    }

    #[test]
    fn globs_match_case_insensitively() {
        assert!(glob_match("ci_*", "CI_MASTER"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("metric_?imeseries", "metric_timeseries"));
        assert!(!glob_match("ci_*", "events"));
    }
}
