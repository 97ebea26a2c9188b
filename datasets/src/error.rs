/// Why loading a data set (or preparing a test database) failed.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("table {table}: csv header {found:?} does not match the expected {expected:?}")]
    Header {
        table: &'static str,
        expected: String,
        found: String,
    },
    #[error("table {table}: csv line {line}: {source}")]
    Csv {
        table: &'static str,
        line: u64,
        #[source]
        source: csv::Error,
    },
    #[error("table {table}: csv line {line}: column {column}: {reason}")]
    Value {
        table: &'static str,
        line: u64,
        column: &'static str,
        reason: String,
    },
    #[error("table {table}: inserting csv lines {first_line}-{last_line} failed: {source}")]
    Insert {
        table: &'static str,
        first_line: u64,
        last_line: u64,
        #[source]
        source: sqlx::Error,
    },
    #[error("{context}: {source}")]
    Database {
        context: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid database name {0:?}: only a-z, 0-9 and _ are allowed")]
    InvalidDatabaseName(String),
    #[error("invalid database url {0:?}: expected scheme://[user@]host[:port]/database")]
    InvalidUrl(String),
}

impl DatasetError {
    /// A `map_err` adapter for database errors.
    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> DatasetError {
        let context = context.into();
        move |source| DatasetError::Database { context, source }
    }
}
