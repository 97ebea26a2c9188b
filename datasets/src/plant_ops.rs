//! The plant-ops data set: a power plant and its IT estate for two tenants (`acme`, `globex`).
//!
//! Everything is embedded with `include_str!`, so binaries and tests of other crates work
//! without the repository on disk. See [`README`] for the semantics (tenants, time windows,
//! relation directions, metrics).

pub use crate::load::{load_mysql, load_postgres, load_sqlite};

/// The data set's README (semantics of tenants, time, metrics, relations).
pub const README: &str = include_str!("../plant-ops/README.md");

/// `ci_master.csv`: 64 configuration items.
pub const CI_MASTER_CSV: &str = include_str!("../plant-ops/ci_master.csv");
/// `ci_relation.csv`: 103 directed relations between CIs.
pub const CI_RELATION_CSV: &str = include_str!("../plant-ops/ci_relation.csv");
/// `metric_timeseries.csv`: 25,872 hourly metric points.
pub const METRIC_TIMESERIES_CSV: &str = include_str!("../plant-ops/metric_timeseries.csv");
/// `events.csv`: 437 alarms, incidents, maintenance windows, changes and deployments.
pub const EVENTS_CSV: &str = include_str!("../plant-ops/events.csv");
/// `documents.csv`: 12 runbooks, manuals and guidelines.
pub const DOCUMENTS_CSV: &str = include_str!("../plant-ops/documents.csv");
/// `users.csv`: 3 rows of a sensitive table that must never be readable through the system.
pub const USERS_CSV: &str = include_str!("../plant-ops/users.csv");
/// `credentials.csv`: 2 rows of a sensitive table that must never be readable.
pub const CREDENTIALS_CSV: &str = include_str!("../plant-ops/credentials.csv");

/// SQLite DDL; timestamps are ISO-8601 UTC text (`YYYY-MM-DDTHH:MM:SSZ`).
pub const SCHEMA_SQLITE: &str = include_str!("../plant-ops/schema.sqlite.sql");
/// PostgreSQL DDL (UUID, TIMESTAMPTZ, DOUBLE PRECISION).
pub const SCHEMA_POSTGRES: &str = include_str!("../plant-ops/schema.postgres.sql");

/// The demo Resolver asset (aliases, pattern and normalisation rules).
pub const RESOLVER_JSON: &str = include_str!("../plant-ops/resolver.json");
/// The public question benchmark, one JSON object a line.
pub const QUESTIONS_JSONL: &str = include_str!("../plant-ops/questions/plant-ops.public.jsonl");

/// The data ends just before this instant; the benchmark passes it as `as_of`.
pub const ANCHOR: &str = "2026-01-31T00:00:00Z";
/// [`ANCHOR`] as a value.
pub const ANCHOR_TIME: time::OffsetDateTime = time::macros::datetime!(2026-01-31 00:00:00 UTC);

/// The logical type of a column; each backend maps it to its own SQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// TEXT everywhere (VARCHAR(64) for key columns in MariaDB).
    Text,
    /// UUID in PostgreSQL, canonical text elsewhere (CHAR(36) in MariaDB).
    Uuid,
    /// TIMESTAMPTZ in PostgreSQL, DATETIME (UTC) in MariaDB, ISO-8601 text in SQLite.
    Timestamp,
    /// DOUBLE PRECISION / DOUBLE / REAL.
    Double,
}

/// One column of a table, in CSV (and DDL) order.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub nullable: bool,
}

/// One table of the data set with its embedded CSV.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub csv: &'static str,
    pub columns: &'static [Column],
    /// Rows in the CSV (as documented in the README).
    pub rows: u64,
}

const fn col(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        nullable: false,
    }
}

const fn opt(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        nullable: true,
    }
}

use ColumnType::{Double, Text, Timestamp, Uuid};

/// All tables, in load order (referenced tables first).
pub const TABLES: &[Table] = &[
    Table {
        name: "ci_master",
        csv: CI_MASTER_CSV,
        rows: 64,
        columns: &[
            col("ci_id", Uuid),
            col("tenant_id", Text),
            col("ci_code", Text),
            col("ci_name", Text),
            col("ci_name_ko", Text),
            col("ci_type", Text),
            opt("system", Text),
            opt("role", Text),
            col("status", Text),
            opt("zone", Text),
            opt("ip_address", Text),
            opt("os", Text),
            opt("vendor", Text),
            opt("capacity", Double),
            col("created_at", Timestamp),
        ],
    },
    Table {
        name: "ci_relation",
        csv: CI_RELATION_CSV,
        rows: 103,
        columns: &[
            col("tenant_id", Text),
            col("source_ci_id", Uuid),
            col("relation_type", Text),
            col("target_ci_id", Uuid),
        ],
    },
    Table {
        name: "metric_timeseries",
        csv: METRIC_TIMESERIES_CSV,
        rows: 25_872,
        columns: &[
            col("tenant_id", Text),
            col("ci_id", Uuid),
            col("metric_name", Text),
            col("ts", Timestamp),
            col("value", Double),
        ],
    },
    Table {
        name: "events",
        csv: EVENTS_CSV,
        rows: 437,
        columns: &[
            col("event_id", Text),
            col("tenant_id", Text),
            col("ci_id", Uuid),
            col("event_type", Text),
            col("severity", Text),
            col("message", Text),
            col("occurred_at", Timestamp),
            opt("resolved_at", Timestamp),
        ],
    },
    Table {
        name: "documents",
        csv: DOCUMENTS_CSV,
        rows: 12,
        columns: &[
            col("doc_id", Text),
            col("tenant_id", Text),
            col("title", Text),
            col("domain", Text),
            col("doc_type", Text),
            col("content", Text),
            col("created_at", Timestamp),
        ],
    },
    Table {
        name: "users",
        csv: USERS_CSV,
        rows: 3,
        columns: &[
            col("user_id", Text),
            col("tenant_id", Text),
            col("username", Text),
            col("email", Text),
            col("password_hash", Text),
            col("role", Text),
        ],
    },
    Table {
        name: "credentials",
        csv: CREDENTIALS_CSV,
        rows: 2,
        columns: &[
            col("credential_id", Text),
            col("tenant_id", Text),
            col("name", Text),
            col("secret_value", Text),
        ],
    },
];

/// The table called `name`, if any.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// TEXT columns that are (part of) a primary, unique or index key; MariaDB cannot index an
/// unbounded TEXT, so they become VARCHAR(64) there.
pub const MYSQL_KEY_COLUMNS: &[&str] = &[
    "ci_id",
    "tenant_id",
    "ci_code",
    "event_id",
    "doc_id",
    "user_id",
    "credential_id",
    "metric_name",
    "relation_type",
];

/// MariaDB/MySQL DDL, derived from [`SCHEMA_POSTGRES`]: UUID→CHAR(36), TIMESTAMPTZ→DATETIME
/// (UTC), DOUBLE PRECISION→DOUBLE, TEXT key columns ([`MYSQL_KEY_COLUMNS`])→VARCHAR(64), and
/// every table `utf8mb4` with the binary collation (case-sensitive comparisons, as in
/// PostgreSQL and SQLite).
pub fn schema_mysql() -> String {
    let mut out = String::with_capacity(SCHEMA_POSTGRES.len() + 512);
    out.push_str(
        "-- plant-ops demo source schema (MariaDB/MySQL), derived from schema.postgres.sql.\n",
    );
    for line in SCHEMA_POSTGRES.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("--") {
            continue;
        }
        let mut line = line
            .replace("DOUBLE PRECISION", "DOUBLE")
            .replace("TIMESTAMPTZ", "DATETIME")
            .replace(" UUID", " CHAR(36)");
        let first_word = trimmed.split_whitespace().next().unwrap_or("");
        if MYSQL_KEY_COLUMNS.contains(&first_word) {
            line = line.replacen(" TEXT", " VARCHAR(64)", 1);
        }
        if line.trim() == ");" {
            line = line.replacen(
                ");",
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;",
                1,
            );
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The statements of a DDL script: `--` comments removed, split on `;`, empty ones dropped.
/// (The schema files hold only CREATE TABLE / CREATE INDEX and comments, no string literals.)
pub fn split_statements(script: &str) -> Vec<String> {
    let without_comments: String = script
        .lines()
        .map(|line| match line.find("--") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(column, type, not null)` of every `CREATE TABLE name (` block of a DDL script.
    fn ddl_columns(script: &str, table: &str) -> Vec<(String, String, bool)> {
        let start = format!("CREATE TABLE {table} (");
        let mut inside = false;
        let mut out = Vec::new();
        for line in script.lines() {
            let t = line.trim();
            if t.starts_with(&start) {
                inside = true;
                continue;
            }
            if !inside {
                continue;
            }
            if t.starts_with(')') {
                break;
            }
            let mut words = t.split_whitespace();
            let name = words.next().unwrap_or_default().to_owned();
            if name == "UNIQUE" || name == "PRIMARY" {
                continue;
            }
            let rest: Vec<&str> = words.collect();
            let rest = rest.join(" ");
            let ty = rest
                .split(" NOT NULL")
                .next()
                .unwrap_or_default()
                .split(" PRIMARY KEY")
                .next()
                .unwrap_or_default()
                .split(" REFERENCES")
                .next()
                .unwrap_or_default()
                .trim_end_matches(',')
                .to_owned();
            let not_null = rest.contains("NOT NULL") || rest.contains("PRIMARY KEY");
            out.push((name, ty, not_null));
        }
        out
    }

    #[test]
    fn specs_match_both_schema_files() {
        for t in TABLES {
            let pg = ddl_columns(SCHEMA_POSTGRES, t.name);
            let lite = ddl_columns(SCHEMA_SQLITE, t.name);
            assert_eq!(pg.len(), t.columns.len(), "{}", t.name);
            assert_eq!(lite.len(), t.columns.len(), "{}", t.name);
            for ((c, p), l) in t.columns.iter().zip(&pg).zip(&lite) {
                assert_eq!(c.name, p.0, "{}", t.name);
                assert_eq!(c.name, l.0, "{}", t.name);
                let (pg_ty, lite_ty) = match c.ty {
                    ColumnType::Text => ("TEXT", "TEXT"),
                    ColumnType::Uuid => ("UUID", "TEXT"),
                    ColumnType::Timestamp => ("TIMESTAMPTZ", "TEXT"),
                    ColumnType::Double => ("DOUBLE PRECISION", "REAL"),
                };
                assert_eq!(p.1, pg_ty, "{}.{}", t.name, c.name);
                assert_eq!(l.1, lite_ty, "{}.{}", t.name, c.name);
                assert_eq!(!c.nullable, p.2, "{}.{}", t.name, c.name);
                assert_eq!(!c.nullable, l.2, "{}.{}", t.name, c.name);
            }
            let header = t.csv.lines().next().unwrap_or_default();
            let names: Vec<&str> = t.columns.iter().map(|c| c.name).collect();
            assert_eq!(header, names.join(","), "{}", t.name);
        }
        let created = SCHEMA_POSTGRES.matches("CREATE TABLE").count();
        assert_eq!(created, TABLES.len());
    }

    #[test]
    fn mysql_schema_is_derived() {
        let ddl = schema_mysql();
        for bad in ["UUID", "TIMESTAMPTZ", "PRECISION"] {
            assert!(!ddl.contains(bad), "{bad} left in:\n{ddl}");
        }
        let stmts = split_statements(&ddl);
        assert_eq!(stmts.len(), TABLES.len() + 2);
        assert_eq!(ddl.matches("CHARSET=utf8mb4").count(), TABLES.len());
        assert!(ddl.contains("ci_code      VARCHAR(64) NOT NULL"), "{ddl}");
        assert!(ddl.contains("ci_id        CHAR(36) PRIMARY KEY"), "{ddl}");
        assert!(
            ddl.contains("source_ci_id  CHAR(36) NOT NULL REFERENCES"),
            "{ddl}"
        );
        assert!(ddl.contains("capacity     DOUBLE,"), "{ddl}");
        assert!(ddl.contains("occurred_at DATETIME NOT NULL"), "{ddl}");
        assert!(ddl.contains("message     TEXT NOT NULL"), "{ddl}");
        // Every TEXT column used in a key got a length.
        for line in ddl.lines() {
            let first = line.split_whitespace().next().unwrap_or_default();
            if MYSQL_KEY_COLUMNS.contains(&first) {
                assert!(!line.contains(" TEXT"), "{line}");
            }
        }
    }

    #[test]
    fn split_statements_drops_comments() {
        let stmts = split_statements(SCHEMA_POSTGRES);
        assert_eq!(stmts.len(), 9);
        assert!(stmts[0].starts_with("CREATE TABLE ci_master"));
        assert!(stmts.iter().all(|s| !s.contains("--")));
        assert_eq!(split_statements(SCHEMA_SQLITE).len(), 9);
    }

    #[test]
    fn embedded_assets_are_present() {
        assert!(RESOLVER_JSON.trim_start().starts_with('{'));
        assert!(QUESTIONS_JSONL.lines().count() > 10);
        assert!(README.contains(ANCHOR));
    }
}
