//! CSV parsing and the three loaders.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::mysql::MySql;
use sqlx::postgres::Postgres;
use sqlx::query_builder::Separated;
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteConnection, SqliteJournalMode};
use sqlx::{
    AssertSqlSafe, Connection, Database, Executor, IntoArguments, MySqlPool, PgPool, QueryBuilder,
};
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::DatasetError;
use crate::plant_ops::{self, ColumnType, TABLES, Table};

/// Rows per multi-row INSERT (fewer when the bind limit requires it).
const ROWS_PER_BATCH: usize = 1000;
/// Bind parameters per statement: SQLite ≥ 3.32 allows 32766.
const SQLITE_MAX_BINDS: usize = 32_766;
/// PostgreSQL and MySQL/MariaDB allow 65535.
const PG_MAX_BINDS: usize = 65_535;
const MYSQL_MAX_BINDS: usize = 65_535;

/// What a loader did: rows inserted per table, in load order, and how long it took (schema
/// creation, inserts and commit, plus CSV parsing on the first load of the process: the
/// embedded CSVs are parsed and validated once, then reused).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    pub tables: Vec<(String, u64)>,
    pub elapsed: Duration,
}

impl LoadReport {
    /// Rows inserted into `table`.
    pub fn rows(&self, table: &str) -> Option<u64> {
        self.tables
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, n)| *n)
    }

    /// Rows inserted into all tables.
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// One parsed CSV field. The raw text is kept where a backend stores it as text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null(ColumnType),
    Text(String),
    Uuid(uuid::Uuid, String),
    Timestamp(OffsetDateTime, String),
    Double(f64),
}

#[derive(Debug)]
pub(crate) struct Row {
    /// Line of the CSV file where the record starts (the header is line 1).
    pub(crate) line: u64,
    pub(crate) values: Vec<Value>,
}

#[derive(Debug)]
pub(crate) struct ParsedTable {
    pub(crate) table: &'static Table,
    pub(crate) rows: Vec<Row>,
}

/// Parses exactly `YYYY-MM-DDTHH:MM:SSZ` (the only form in the data; SQLite compares these as
/// text, so other spellings would sort wrongly). Hand-written: `time`'s generic parser
/// dominated the load time in debug builds.
fn parse_timestamp(raw: &str) -> Option<OffsetDateTime> {
    let b = raw.as_bytes();
    let shape_ok = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if !shape_ok {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u16> {
        b[from..to].iter().try_fold(0u16, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u16::from(c - b'0'))
        })
    };
    let small = |from: usize| num(from, from + 2).and_then(|v| u8::try_from(v).ok());
    let month = time::Month::try_from(small(5)?).ok()?;
    let date = time::Date::from_calendar_date(i32::from(num(0, 4)?), month, small(8)?).ok()?;
    let time = time::Time::from_hms(small(11)?, small(14)?, small(17)?).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

fn parse_value(ty: ColumnType, nullable: bool, raw: &str) -> Result<Value, String> {
    if raw.is_empty() {
        return if nullable {
            Ok(Value::Null(ty))
        } else {
            Err("empty, but the column is NOT NULL".to_owned())
        };
    }
    match ty {
        ColumnType::Text => Ok(Value::Text(raw.to_owned())),
        ColumnType::Uuid => {
            let id =
                uuid::Uuid::try_parse(raw).map_err(|e| format!("invalid uuid {raw:?}: {e}"))?;
            // Text backends store the raw text; insist on one spelling so that joins agree.
            // (36 characters that parse = the hyphenated form.)
            if raw.len() != 36 || raw.bytes().any(|c| c.is_ascii_uppercase()) {
                return Err(format!(
                    "uuid {raw:?} is not in canonical lowercase hyphenated form"
                ));
            }
            Ok(Value::Uuid(id, raw.to_owned()))
        }
        ColumnType::Timestamp => {
            let ts = parse_timestamp(raw).ok_or_else(|| {
                format!("invalid timestamp {raw:?}: expected a valid YYYY-MM-DDTHH:MM:SSZ")
            })?;
            Ok(Value::Timestamp(ts, raw.to_owned()))
        }
        ColumnType::Double => {
            let v: f64 = raw
                .parse()
                .map_err(|e| format!("invalid number {raw:?}: {e}"))?;
            if !v.is_finite() {
                return Err(format!("invalid number {raw:?}: not finite"));
            }
            Ok(Value::Double(v))
        }
    }
}

/// Parses `csv_text` as the rows of `table`: the header must list the table's columns in
/// order; every record must be well-formed and typed.
pub(crate) fn parse_csv(table: &'static Table, csv_text: &str) -> Result<Vec<Row>, DatasetError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(csv_text.as_bytes());
    let csv_err = |source: csv::Error| DatasetError::Csv {
        table: table.name,
        line: source.position().map_or(0, csv::Position::line),
        source,
    };
    let headers = reader.headers().map_err(csv_err)?;
    let expected: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    if headers.iter().ne(expected.iter().copied()) {
        return Err(DatasetError::Header {
            table: table.name,
            expected: expected.join(","),
            found: headers.iter().collect::<Vec<_>>().join(","),
        });
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, csv::Position::line);
        let values = table
            .columns
            .iter()
            .zip(record.iter())
            .map(|(col, raw)| {
                parse_value(col.ty, col.nullable, raw).map_err(|reason| DatasetError::Value {
                    table: table.name,
                    line,
                    column: col.name,
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        rows.push(Row { line, values });
    }
    Ok(rows)
}

/// The parsed embedded CSVs, parsed once per process (the data is constant).
fn parsed_tables() -> Result<&'static [ParsedTable], DatasetError> {
    static PARSED: OnceLock<Vec<ParsedTable>> = OnceLock::new();
    if let Some(parsed) = PARSED.get() {
        return Ok(parsed);
    }
    let parsed = parse_all()?;
    Ok(PARSED.get_or_init(|| parsed))
}

/// Parses every embedded plant-ops CSV.
pub(crate) fn parse_all() -> Result<Vec<ParsedTable>, DatasetError> {
    TABLES
        .iter()
        .map(|table| {
            Ok(ParsedTable {
                table,
                rows: parse_csv(table, table.csv)?,
            })
        })
        .collect()
}

/// Inserts the rows of `parsed` with multi-row INSERT statements with bind parameters.
async fn insert_rows<DB, P>(
    conn: &mut DB::Connection,
    parsed: &ParsedTable,
    max_binds: usize,
    push: P,
) -> Result<u64, DatasetError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    P: Fn(&mut Separated<'_, DB, &'static str>, &Value),
{
    let table = parsed.table;
    let columns: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    let head = format!("INSERT INTO {} ({}) ", table.name, columns.join(", "));
    let per_batch = (max_binds / columns.len()).clamp(1, ROWS_PER_BATCH);
    let mut inserted = 0u64;
    for chunk in parsed.rows.chunks(per_batch) {
        let mut builder = QueryBuilder::<DB>::new(head.as_str());
        builder.push_values(chunk, |mut sep, row| {
            for value in &row.values {
                push(&mut sep, value);
            }
        });
        builder
            .build()
            .execute(&mut *conn)
            .await
            .map_err(|source| DatasetError::Insert {
                table: table.name,
                first_line: chunk.first().map_or(0, |r| r.line),
                last_line: chunk.last().map_or(0, |r| r.line),
                source,
            })?;
        inserted += chunk.len() as u64;
    }
    Ok(inserted)
}

pub(crate) async fn run_ddl<DB>(
    conn: &mut DB::Connection,
    script: &str,
    what: &str,
) -> Result<(), DatasetError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    for statement in plant_ops::split_statements(script) {
        let context = format!(
            "creating the {what} schema: {}",
            statement
                .lines()
                .next()
                .unwrap_or_default()
                .trim_end_matches(" (")
        );
        conn.execute(sqlx::raw_sql(AssertSqlSafe(statement)))
            .await
            .map_err(DatasetError::db(context))?;
    }
    Ok(())
}

fn push_sqlite(sep: &mut Separated<'_, Sqlite, &'static str>, value: &Value) {
    match value {
        Value::Null(_) => sep.push_bind(None::<&str>),
        Value::Text(s) | Value::Uuid(_, s) | Value::Timestamp(_, s) => sep.push_bind(s.as_str()),
        Value::Double(v) => sep.push_bind(*v),
    };
}

fn push_postgres(sep: &mut Separated<'_, Postgres, &'static str>, value: &Value) {
    match value {
        Value::Null(ColumnType::Text) => sep.push_bind(None::<&str>),
        Value::Null(ColumnType::Uuid) => sep.push_bind(None::<uuid::Uuid>),
        Value::Null(ColumnType::Timestamp) => sep.push_bind(None::<OffsetDateTime>),
        Value::Null(ColumnType::Double) => sep.push_bind(None::<f64>),
        Value::Text(s) => sep.push_bind(s.as_str()),
        Value::Uuid(id, _) => sep.push_bind(*id),
        Value::Timestamp(ts, _) => sep.push_bind(*ts),
        Value::Double(v) => sep.push_bind(*v),
    };
}

fn utc_datetime(ts: &OffsetDateTime) -> PrimitiveDateTime {
    let utc = ts.to_offset(UtcOffset::UTC);
    PrimitiveDateTime::new(utc.date(), utc.time())
}

fn push_mysql(sep: &mut Separated<'_, MySql, &'static str>, value: &Value) {
    match value {
        Value::Null(ColumnType::Text | ColumnType::Uuid) => sep.push_bind(None::<&str>),
        Value::Null(ColumnType::Timestamp) => sep.push_bind(None::<PrimitiveDateTime>),
        Value::Null(ColumnType::Double) => sep.push_bind(None::<f64>),
        // CHAR(36): the canonical text (checked while parsing).
        Value::Text(s) | Value::Uuid(_, s) => sep.push_bind(s.as_str()),
        Value::Timestamp(ts, _) => sep.push_bind(utc_datetime(ts)),
        Value::Double(v) => sep.push_bind(*v),
    };
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_if_exists(path: &Path) -> Result<(), DatasetError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DatasetError::Io {
            context: format!("removing {}", path.display()),
            source,
        }),
    }
}

/// Replaces the SQLite database file `path` (and its `-wal`, `-shm` and `-journal` files) with
/// an empty one and opens it, foreign keys on.
pub(crate) async fn create_sqlite(path: &Path) -> Result<SqliteConnection, DatasetError> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        remove_if_exists(&sibling(path, suffix))?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Delete);
    SqliteConnection::connect_with(&options)
        .await
        .map_err(DatasetError::db(format!("opening {}", path.display())))
}

/// Creates the SQLite database file `path` (replacing an existing one together with its
/// `-wal`, `-shm` and `-journal` files), creates the schema of `schema.sqlite.sql` and loads
/// every plant-ops CSV in one transaction. Timestamps stay ISO-8601 text exactly as in the
/// CSV (`2026-01-17T00:00:00Z`); UUIDs are text; numbers are REAL.
pub async fn load_sqlite(path: &Path) -> Result<LoadReport, DatasetError> {
    let started = Instant::now();
    let parsed = parsed_tables()?;
    let mut conn = create_sqlite(path).await?;
    let mut tx = conn
        .begin()
        .await
        .map_err(DatasetError::db("starting the load transaction"))?;
    run_ddl::<Sqlite>(&mut tx, plant_ops::SCHEMA_SQLITE, "sqlite").await?;
    let mut tables = Vec::with_capacity(parsed.len());
    for table in parsed {
        let n = insert_rows::<Sqlite, _>(&mut tx, table, SQLITE_MAX_BINDS, push_sqlite).await?;
        tables.push((table.table.name.to_owned(), n));
    }
    tx.commit()
        .await
        .map_err(DatasetError::db("committing the load transaction"))?;
    conn.close()
        .await
        .map_err(DatasetError::db(format!("closing {}", path.display())))?;
    Ok(LoadReport {
        tables,
        elapsed: started.elapsed(),
    })
}

/// Creates the schema of `schema.postgres.sql` in the pool's database (current schema; it
/// must not hold these tables yet) and loads every plant-ops CSV in one transaction, with
/// multi-row INSERTs: UUID columns bound as `uuid::Uuid`, TIMESTAMPTZ as
/// `time::OffsetDateTime`, DOUBLE PRECISION as `f64`. Runs ANALYZE afterwards.
pub async fn load_postgres(pool: &PgPool) -> Result<LoadReport, DatasetError> {
    let started = Instant::now();
    let parsed = parsed_tables()?;
    let mut tx = pool
        .begin()
        .await
        .map_err(DatasetError::db("starting the load transaction"))?;
    run_ddl::<Postgres>(&mut tx, plant_ops::SCHEMA_POSTGRES, "postgres").await?;
    let mut tables = Vec::with_capacity(parsed.len());
    for table in parsed {
        let n = insert_rows::<Postgres, _>(&mut tx, table, PG_MAX_BINDS, push_postgres).await?;
        tables.push((table.table.name.to_owned(), n));
    }
    tx.commit()
        .await
        .map_err(DatasetError::db("committing the load transaction"))?;
    let analyze = format!(
        "ANALYZE {}",
        TABLES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
    );
    pool.execute(sqlx::raw_sql(AssertSqlSafe(analyze)))
        .await
        .map_err(DatasetError::db("analyzing the loaded tables"))?;
    Ok(LoadReport {
        tables,
        elapsed: started.elapsed(),
    })
}

/// Creates the MariaDB/MySQL schema ([`plant_ops::schema_mysql`]: the PostgreSQL one with
/// CHAR(36) UUIDs, DATETIME timestamps in UTC, DOUBLE numbers, VARCHAR(64) key columns,
/// utf8mb4 tables) in the pool's database, which must not hold these tables yet, and loads
/// every plant-ops CSV in one transaction (the DDL commits implicitly before it), with
/// multi-row INSERTs; timestamps are bound as `time::PrimitiveDateTime` in UTC.
pub async fn load_mysql(pool: &MySqlPool) -> Result<LoadReport, DatasetError> {
    let started = Instant::now();
    let parsed = parsed_tables()?;
    let mut conn = pool
        .acquire()
        .await
        .map_err(DatasetError::db("acquiring a connection"))?;
    run_ddl::<MySql>(&mut conn, &plant_ops::schema_mysql(), "mysql").await?;
    let mut tx = conn
        .begin()
        .await
        .map_err(DatasetError::db("starting the load transaction"))?;
    let mut tables = Vec::with_capacity(parsed.len());
    for table in parsed {
        let n = insert_rows::<MySql, _>(&mut tx, table, MYSQL_MAX_BINDS, push_mysql).await?;
        tables.push((table.table.name.to_owned(), n));
    }
    tx.commit()
        .await
        .map_err(DatasetError::db("committing the load transaction"))?;
    Ok(LoadReport {
        tables,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use sqlx::Row as _;

    const COUNTS: &[(&str, u64)] = &[
        ("ci_master", 64),
        ("ci_relation", 103),
        ("metric_timeseries", 25_872),
        ("events", 437),
        ("documents", 12),
        ("users", 3),
        ("credentials", 2),
    ];

    fn table(name: &str) -> &'static Table {
        plant_ops::table(name).expect("table exists")
    }

    #[test]
    fn embedded_csvs_parse_with_documented_counts() {
        let started = Instant::now();
        let parsed = parse_all().expect("parse");
        println!("parse_all: {:?}", started.elapsed());
        let counts: Vec<(&str, u64)> = parsed
            .iter()
            .map(|p| (p.table.name, p.rows.len() as u64))
            .collect();
        assert_eq!(counts, COUNTS);
        for p in &parsed {
            assert_eq!(p.rows.len() as u64, p.table.rows, "{}", p.table.name);
        }
        let ci = &parsed[0].rows[0];
        assert_eq!(ci.line, 2);
        // SYS-ERP: role, ip_address, os and capacity are empty.
        assert_eq!(ci.values[2], Value::Text("SYS-ERP".into()));
        assert_eq!(ci.values[10], Value::Null(ColumnType::Text));
        assert_eq!(ci.values[13], Value::Null(ColumnType::Double));
    }

    #[test]
    fn bad_data_names_table_line_and_column() {
        let t = table("ci_relation");
        let head = "tenant_id,source_ci_id,relation_type,target_ci_id\n";
        let ok = "acme,334b23d1-2a80-5580-853c-3b5de5199830,part_of,a1958069-2ddb-545b-bea7-f3f96d503eb9\n";

        let err =
            parse_csv(t, &format!("{head}{ok}acme,not-a-uuid,part_of,x\n")).expect_err("bad uuid");
        let msg = err.to_string();
        assert!(
            msg.starts_with("table ci_relation: csv line 3: column source_ci_id: invalid uuid"),
            "{msg}"
        );

        let err = parse_csv(t, &format!("{head}{ok}{ok}acme,a,b,c,d\n")).expect_err("extra fields");
        let msg = err.to_string();
        assert!(msg.starts_with("table ci_relation: csv line 4:"), "{msg}");
        assert!(matches!(err, DatasetError::Csv { line: 4, .. }));

        let err = parse_csv(
            t,
            &format!(
                "{head}{ok}acme,,part_of,{}\n",
                "a1958069-2ddb-545b-bea7-f3f96d503eb9"
            ),
        )
        .expect_err("empty not null");
        assert_eq!(
            err.to_string(),
            "table ci_relation: csv line 3: column source_ci_id: empty, but the column is NOT NULL"
        );

        let upper = "acme,334B23D1-2A80-5580-853C-3B5DE5199830,part_of,a1958069-2ddb-545b-bea7-f3f96d503eb9\n";
        let err = parse_csv(t, &format!("{head}{upper}")).expect_err("uppercase uuid");
        assert!(err.to_string().contains("canonical"), "{err}");

        let err =
            parse_csv(t, "tenant_id,source_ci_id,relation,target_ci_id\n").expect_err("header");
        assert!(
            err.to_string().starts_with("table ci_relation: csv header"),
            "{err}"
        );

        let m = table("metric_timeseries");
        let mhead = "tenant_id,ci_id,metric_name,ts,value\n";
        let id = "334b23d1-2a80-5580-853c-3b5de5199830";
        let err = parse_csv(m, &format!("{mhead}acme,{id},cpu,2026-01-17 00:00:00,1\n"))
            .expect_err("timestamp");
        assert!(
            err.to_string()
                .starts_with("table metric_timeseries: csv line 2: column ts: invalid timestamp"),
            "{err}"
        );
        let err = parse_csv(
            m,
            &format!("{mhead}acme,{id},cpu,2026-01-17T00:00:00Z,abc\n"),
        )
        .expect_err("number");
        assert!(
            err.to_string()
                .starts_with("table metric_timeseries: csv line 2: column value: invalid number"),
            "{err}"
        );
        let err = parse_csv(
            m,
            &format!("{mhead}acme,{id},cpu,2026-01-17T00:00:00Z,NaN\n"),
        )
        .expect_err("nan");
        assert!(err.to_string().contains("not finite"), "{err}");

        // A quoted field spanning lines: the next record's line is counted correctly.
        let d = table("documents");
        let dhead = "doc_id,tenant_id,title,domain,doc_type,content,created_at\n";
        let text = format!(
            "{dhead}D1,acme,t,it,runbook,\"two\nlines\",2025-11-02T00:00:00Z\nD2,acme,t,it,runbook,x,yesterday\n"
        );
        let err = parse_csv(d, &text).expect_err("timestamp");
        assert!(
            err.to_string()
                .starts_with("table documents: csv line 4: column created_at"),
            "{err}"
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp("2026-01-31T00:00:00Z"),
            Some(time::macros::datetime!(2026-01-31 00:00:00 UTC))
        );
        assert_eq!(
            parse_timestamp("2024-02-29T23:59:59Z"),
            Some(time::macros::datetime!(2024-02-29 23:59:59 UTC))
        );
        for bad in [
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00+00:00",
            "2026-01-01T00:00:00.5Z",
            "2026-0a-01T00:00:00Z",
            "+026-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn mysql_datetime_is_utc() {
        let ts = time::macros::datetime!(2026-01-17 09:00:00 +09:00);
        assert_eq!(
            utc_datetime(&ts),
            time::macros::datetime!(2026-01-17 00:00:00)
        );
    }

    #[tokio::test]
    async fn sqlite_load_counts_nulls_and_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plant-ops.sqlite");
        // A stale database and WAL must be replaced, not appended to.
        std::fs::write(&path, b"not a database").expect("write");
        std::fs::write(sibling(&path, "-wal"), b"junk").expect("write");

        let report = load_sqlite(&path).await.expect("load");
        let expected: Vec<(String, u64)> =
            COUNTS.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect();
        assert_eq!(report.tables, expected);
        assert_eq!(report.total_rows(), 26_493);
        assert_eq!(report.rows("events"), Some(437));
        assert!(!sibling(&path, "-wal").exists());

        // Loading again over the file works as well.
        load_sqlite(&path).await.expect("reload");

        let opts = SqliteConnectOptions::new().filename(&path).read_only(true);
        let mut conn = SqliteConnection::connect_with(&opts).await.expect("open");
        for (table, n) in COUNTS {
            let count: i64 =
                sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(&mut conn)
                    .await
                    .expect("count");
            assert_eq!(count as u64, *n, "{table}");
        }

        let row = sqlx::query(
            "SELECT ci_name, ci_name_ko, capacity, ip_address, created_at, typeof(capacity) AS cap_type
             FROM ci_master WHERE tenant_id = 'acme' AND ci_code = 'GT-01'",
        )
        .fetch_one(&mut conn)
        .await
        .expect("GT-01");
        assert_eq!(row.get::<String, _>("ci_name"), "Gas Turbine Unit 1");
        assert_eq!(row.get::<String, _>("ci_name_ko"), "가스터빈 1호기");
        assert_eq!(row.get::<f64, _>("capacity"), 150.0);
        assert_eq!(row.get::<String, _>("cap_type"), "real");
        assert_eq!(row.get::<String, _>("ip_address"), "10.50.0.1");
        assert_eq!(row.get::<String, _>("created_at"), "2024-05-21T00:00:00Z");

        let row = sqlx::query(
            "SELECT ip_address, role, capacity, typeof(ip_address) AS ip_type
             FROM ci_master WHERE tenant_id = 'acme' AND ci_code = 'SYS-ERP'",
        )
        .fetch_one(&mut conn)
        .await
        .expect("SYS-ERP");
        assert_eq!(row.get::<Option<String>, _>("ip_address"), None);
        assert_eq!(row.get::<String, _>("ip_type"), "null");
        assert_eq!(row.get::<Option<String>, _>("role"), None);
        assert_eq!(row.get::<Option<f64>, _>("capacity"), None);

        let (ts, value, value_type): (String, f64, String) = sqlx::query_as(
            "SELECT ts, value, typeof(value) FROM metric_timeseries
             ORDER BY rowid LIMIT 1",
        )
        .fetch_one(&mut conn)
        .await
        .expect("first metric");
        assert_eq!(
            (ts.as_str(), value, value_type.as_str()),
            ("2026-01-17T00:00:00Z", 38.25, "real")
        );

        // Open events have a NULL resolved_at, not ''.
        let empty: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE resolved_at = ''")
            .fetch_one(&mut conn)
            .await
            .expect("count");
        assert_eq!(empty, 0);
        let fk: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(&mut conn)
            .await
            .expect("fk check");
        assert!(fk.is_empty(), "{fk:?}");
        conn.close().await.expect("close");
        println!(
            "load_sqlite: {:?} ({} rows)",
            report.elapsed,
            report.total_rows()
        );
    }
}
