//! A plain loader for data sets kept as a SQLite schema script and one CSV file per table:
//! every field is bound as text (SQLite's column affinity stores a REAL column's numbers as
//! numbers) and an empty field is NULL. The CSV header names the columns.

use std::path::Path;
use std::time::Instant;

use sqlx::{Connection, Executor, Sqlite};

use crate::load::{create_sqlite, run_ddl};
use crate::{DatasetError, LoadReport};

/// Creates the SQLite file `path` (replacing an existing one), runs `schema` and loads each
/// `(table, csv)` in order, in one transaction.
pub async fn load(
    path: &Path,
    schema: &str,
    tables: &[(&'static str, &'static str)],
) -> Result<LoadReport, DatasetError> {
    let started = Instant::now();
    let mut conn = create_sqlite(path).await?;
    let mut tx = conn
        .begin()
        .await
        .map_err(DatasetError::db("starting the load transaction"))?;
    run_ddl::<Sqlite>(&mut tx, schema, "sqlite").await?;
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
    conn.close()
        .await
        .map_err(DatasetError::db(format!("closing {}", path.display())))?;
    Ok(LoadReport {
        tables: loaded,
        elapsed: started.elapsed(),
    })
}
