//! Driver errors mapped to the executor's closed set of error kinds.

use ops_proto::executor_api::{ExecutorError, ExecutorErrorKind};

/// Maps a sqlx error. Messages come from the database (which never sees the password in
/// clear text in an error) and are scrubbed again by the caller.
pub fn from_sqlx(source_id: &str, error: sqlx::Error) -> ExecutorError {
    use ExecutorErrorKind as K;
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let message = db.message().to_owned();
            let kind = classify_database_code(&code, &message);
            let text = match kind {
                K::PermissionDenied => format!("refused by the read-only source: {message}"),
                K::DeadlineExceeded => format!("statement cancelled at its deadline: {message}"),
                _ => format!("database error {code}: {message}"),
            };
            let mut mapped = ExecutorError::new(kind, text);
            if kind == K::InvalidArgument {
                mapped.field = Some("sql".into());
            }
            mapped
        }
        sqlx::Error::PoolTimedOut => ExecutorError::new(
            K::Unavailable,
            format!("no connection to source {source_id} became available in time"),
        ),
        sqlx::Error::Io(io) => ExecutorError::new(
            K::Unavailable,
            format!("cannot reach source {source_id}: {}", io.kind()),
        ),
        sqlx::Error::Tls(_) => ExecutorError::new(
            K::Unavailable,
            format!("tls handshake with source {source_id} failed"),
        ),
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            ExecutorError::new(K::Unavailable, format!("source {source_id} pool is closed"))
        }
        sqlx::Error::Configuration(e) => ExecutorError::invalid(
            "source",
            format!("source {source_id} is misconfigured: {e}"),
        ),
        sqlx::Error::ColumnDecode { index, source } => {
            ExecutorError::internal(format!("column {index} could not be decoded: {source}"))
        }
        other => ExecutorError::internal(format!("source {source_id}: {other}")),
    }
}

fn classify_database_code(code: &str, message: &str) -> ExecutorErrorKind {
    use ExecutorErrorKind as K;
    match code {
        // PostgreSQL: read_only_sql_transaction, insufficient_privilege.
        "25006" | "42501" => K::PermissionDenied,
        // PostgreSQL query_canceled (statement_timeout).
        "57014" => K::DeadlineExceeded,
        // PostgreSQL invalid authorization; MySQL access denied.
        c if c.starts_with("28") => K::PermissionDenied,
        // MySQL/MariaDB: read-only transaction, access denied.
        "1792" | "1045" | "1142" | "1044" => K::PermissionDenied,
        // MariaDB max_statement_time, MySQL max_execution_time.
        "1969" | "3024" => K::DeadlineExceeded,
        // SQLite: SQLITE_READONLY and its extended codes, SQLITE_AUTH.
        "8" | "264" | "520" | "776" | "1032" | "1288" | "1544" | "23" => K::PermissionDenied,
        // SQLite: SQLITE_INTERRUPT from the deadline's progress handler.
        "9" => K::DeadlineExceeded,
        // PostgreSQL classes 42 (syntax/undefined) and 22 (data), MySQL parse errors.
        c if c.starts_with("42") || c.starts_with("22") => K::InvalidArgument,
        "1064" | "1054" | "1146" | "1305" => K::InvalidArgument,
        // SQLite generic error: syntax, missing table or column.
        "1" if !message.is_empty() => K::InvalidArgument,
        _ => K::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_precise_kinds() {
        assert_eq!(
            classify_database_code("25006", ""),
            ExecutorErrorKind::PermissionDenied
        );
        assert_eq!(
            classify_database_code("57014", ""),
            ExecutorErrorKind::DeadlineExceeded
        );
        assert_eq!(
            classify_database_code("1792", ""),
            ExecutorErrorKind::PermissionDenied
        );
        assert_eq!(
            classify_database_code("42P01", ""),
            ExecutorErrorKind::InvalidArgument
        );
        assert_eq!(
            classify_database_code("9", ""),
            ExecutorErrorKind::DeadlineExceeded
        );
        assert_eq!(
            classify_database_code("XX000", ""),
            ExecutorErrorKind::Internal
        );
    }
}
