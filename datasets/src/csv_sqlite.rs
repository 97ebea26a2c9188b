//! A plain loader for data sets kept as a SQLite schema script and one CSV file per table:
//! every field is bound as text (SQLite's column affinity stores a REAL column's numbers as
//! numbers) and an empty field is NULL. The CSV header names the columns.

use std::path::Path;
use std::time::Instant;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, Executor, SqliteConnection};

use crate::{DatasetError, LoadReport};

/// Creates the SQLite file `path` (replacing an existing one), runs `schema` and loads each
/// `(table, csv)` in order, in one transaction.
pub async fn load(
    path: &Path,
    schema: &str,
    tables: &[(&'static str, &'static str)],
) -> Result<LoadReport, DatasetError> {
    let started = Instant::now();
    if path.exists() {
        std::fs::remove_file(path).map_err(|source| DatasetError::Io {
            context: format!("removing {}", path.display()),
            source,
        })?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Delete);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(DatasetError::db(format!("opening {}", path.display())))?;
    let mut tx = conn
        .begin()
        .await
        .map_err(DatasetError::db("starting the load transaction"))?;
    for statement in crate::plant_ops::split_statements(schema) {
        tx.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(statement)))
            .await
            .map_err(DatasetError::db("creating the schema"))?;
    }
    let mut loaded = Vec::with_capacity(tables.len());
    for (table, text) in tables {
        let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let csv_err = |source: csv::Error| DatasetError::Csv {
            table,
            line: source.position().map_or(0, csv::Position::line),
            source,
        };
        let columns: Vec<String> = reader
            .headers()
            .map_err(csv_err)?
            .iter()
            .map(str::to_owned)
            .collect();
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            columns.join(", "),
            vec!["?"; columns.len()].join(", ")
        );
        let mut rows = 0u64;
        for record in reader.records() {
            let record = record.map_err(csv_err)?;
            let line = record.position().map_or(0, csv::Position::line);
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for field in record.iter() {
                insert = insert.bind((!field.is_empty()).then(|| field.to_owned()));
            }
            tx.execute(insert)
                .await
                .map_err(|source| DatasetError::Insert {
                    table,
                    first_line: line,
                    last_line: line,
                    source,
                })?;
            rows += 1;
        }
        loaded.push(((*table).to_owned(), rows));
    }
    tx.commit()
        .await
        .map_err(DatasetError::db("committing the load transaction"))?;
    Ok(LoadReport {
        tables: loaded,
        elapsed: started.elapsed(),
    })
}
