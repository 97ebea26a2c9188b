//! Typed values in and out of each engine: binds from `ops.executor.v1.Value`, rows decoded by
//! the column's database type.

use ops_proto::executor::{Value, value::Kind};
use ops_proto::executor_api::ExecutorError;
use pbjson_types::Timestamp;
use rust_decimal::Decimal;
use sqlx::mysql::{MySql, MySqlArguments, MySqlRow};
use sqlx::postgres::{PgArguments, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use sqlx::{Column, Row, TypeInfo, ValueRef};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

pub type PgQuery<'q> = Query<'q, Postgres, PgArguments>;
pub type MySqlQuery<'q> = Query<'q, MySql, MySqlArguments>;
pub type SqliteQuery<'q> = Query<'q, Sqlite, SqliteArguments>;

pub fn null() -> Value {
    Value {
        kind: Some(Kind::Null(true)),
    }
}
pub fn int(v: i64) -> Value {
    Value {
        kind: Some(Kind::IntValue(v)),
    }
}
pub fn float(v: f64) -> Value {
    Value {
        kind: Some(Kind::FloatValue(v)),
    }
}
pub fn text(v: impl Into<String>) -> Value {
    Value {
        kind: Some(Kind::TextValue(v.into())),
    }
}
pub fn timestamp(v: OffsetDateTime) -> Value {
    Value {
        kind: Some(Kind::TimestampValue(to_timestamp(v))),
    }
}

pub fn to_timestamp(v: OffsetDateTime) -> Timestamp {
    let nanos = v.unix_timestamp_nanos();
    Timestamp {
        seconds: v.unix_timestamp(),
        nanos: i32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
    }
}

pub fn from_timestamp(field: &str, ts: &Timestamp) -> Result<OffsetDateTime, ExecutorError> {
    OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos),
    )
    .map_err(|_| ExecutorError::invalid(field, "timestamp out of range"))
}

/// SQLite has no timestamp type: timestamps are ISO-8601 UTC text, which sorts correctly.
pub fn sqlite_timestamp_text(v: OffsetDateTime) -> String {
    let v = v.to_offset(UtcOffset::UTC);
    if v.nanosecond() == 0 {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            v.year(),
            u8::from(v.month()),
            v.day(),
            v.hour(),
            v.minute(),
            v.second()
        )
    } else {
        v.format(&Rfc3339).unwrap_or_default()
    }
}

fn kind<'a>(field: &str, value: &'a Value) -> Result<&'a Kind, ExecutorError> {
    value
        .kind
        .as_ref()
        .ok_or_else(|| ExecutorError::invalid(field, "value has no kind set"))
}

fn decimal(field: &str, text: &str) -> Result<Decimal, ExecutorError> {
    text.parse::<Decimal>()
        .map_err(|_| ExecutorError::invalid(field, format!("{text:?} is not a decimal")))
}

fn uuid(field: &str, text: &str) -> Result<uuid::Uuid, ExecutorError> {
    uuid::Uuid::parse_str(text)
        .map_err(|_| ExecutorError::invalid(field, format!("{text:?} is not a uuid")))
}

fn json(field: &str, text: &str) -> Result<serde_json::Value, ExecutorError> {
    serde_json::from_str(text)
        .map_err(|e| ExecutorError::invalid(field, format!("not valid json: {e}")))
}

pub fn bind_pg<'q>(
    q: PgQuery<'q>,
    field: &str,
    value: &Value,
) -> Result<PgQuery<'q>, ExecutorError> {
    Ok(match kind(field, value)? {
        Kind::Null(_) => q.bind(Option::<String>::None),
        Kind::BoolValue(v) => q.bind(*v),
        Kind::IntValue(v) => q.bind(*v),
        Kind::FloatValue(v) => q.bind(*v),
        Kind::DecimalValue(v) => q.bind(decimal(field, v)?),
        Kind::TextValue(v) => q.bind(v.clone()),
        Kind::BytesValue(v) => q.bind(v.to_vec()),
        Kind::TimestampValue(v) => q.bind(from_timestamp(field, v)?),
        Kind::UuidValue(v) => q.bind(uuid(field, v)?),
        Kind::JsonValue(v) => q.bind(sqlx::types::Json(json(field, v)?)),
    })
}

pub fn bind_mysql<'q>(
    q: MySqlQuery<'q>,
    field: &str,
    value: &Value,
) -> Result<MySqlQuery<'q>, ExecutorError> {
    Ok(match kind(field, value)? {
        Kind::Null(_) => q.bind(Option::<String>::None),
        Kind::BoolValue(v) => q.bind(*v),
        Kind::IntValue(v) => q.bind(*v),
        Kind::FloatValue(v) => q.bind(*v),
        Kind::DecimalValue(v) => q.bind(decimal(field, v)?),
        Kind::TextValue(v) => q.bind(v.clone()),
        Kind::BytesValue(v) => q.bind(v.to_vec()),
        Kind::TimestampValue(v) => {
            let utc = from_timestamp(field, v)?.to_offset(UtcOffset::UTC);
            q.bind(PrimitiveDateTime::new(utc.date(), utc.time()))
        }
        Kind::UuidValue(v) => q.bind(uuid(field, v)?.hyphenated().to_string()),
        Kind::JsonValue(v) => q.bind(json(field, v)?.to_string()),
    })
}

pub fn bind_sqlite<'q>(
    q: SqliteQuery<'q>,
    field: &str,
    value: &Value,
) -> Result<SqliteQuery<'q>, ExecutorError> {
    Ok(match kind(field, value)? {
        Kind::Null(_) => q.bind(Option::<String>::None),
        Kind::BoolValue(v) => q.bind(*v),
        Kind::IntValue(v) => q.bind(*v),
        Kind::FloatValue(v) => q.bind(*v),
        Kind::DecimalValue(v) => q.bind(decimal(field, v)?.to_string()),
        Kind::TextValue(v) => q.bind(v.clone()),
        Kind::BytesValue(v) => q.bind(v.to_vec()),
        Kind::TimestampValue(v) => q.bind(sqlite_timestamp_text(from_timestamp(field, v)?)),
        Kind::UuidValue(v) => q.bind(uuid(field, v)?.hyphenated().to_string()),
        Kind::JsonValue(v) => q.bind(json(field, v)?.to_string()),
    })
}

/// Approximate wire size of a value, for the byte cap.
pub fn value_bytes(value: &Value) -> u64 {
    let n = match &value.kind {
        None | Some(Kind::Null(_)) | Some(Kind::BoolValue(_)) => 1,
        Some(Kind::IntValue(_)) | Some(Kind::FloatValue(_)) => 8,
        Some(Kind::TimestampValue(_)) => 12,
        Some(Kind::DecimalValue(v))
        | Some(Kind::TextValue(v))
        | Some(Kind::UuidValue(v))
        | Some(Kind::JsonValue(v)) => v.len(),
        Some(Kind::BytesValue(v)) => v.len(),
    };
    n as u64 + 2
}

fn unsupported(column: &str, type_name: &str) -> ExecutorError {
    ExecutorError::invalid(
        "sql",
        format!(
            "column {column} has type {type_name}, which the executor does not return; cast it to text"
        ),
    )
}

macro_rules! get {
    ($row:expr, $i:expr, $t:ty) => {
        $row.try_get::<$t, _>($i).map_err(|e| {
            ExecutorError::internal(format!("column {} could not be decoded: {e}", $i))
        })?
    };
}

pub fn decode_pg(row: &PgRow) -> Result<Vec<Value>, ExecutorError> {
    let mut out = Vec::with_capacity(row.columns().len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row
            .try_get_raw(i)
            .map_err(|e| ExecutorError::internal(e.to_string()))?;
        if raw.is_null() {
            out.push(null());
            continue;
        }
        let type_name = column.type_info().name().to_owned();
        let kind = match type_name.as_str() {
            "BOOL" => Kind::BoolValue(get!(row, i, bool)),
            "INT2" => Kind::IntValue(i64::from(get!(row, i, i16))),
            "INT4" => Kind::IntValue(i64::from(get!(row, i, i32))),
            "INT8" => Kind::IntValue(get!(row, i, i64)),
            "FLOAT4" => Kind::FloatValue(f64::from(get!(row, i, f32))),
            "FLOAT8" => Kind::FloatValue(get!(row, i, f64)),
            "NUMERIC" => Kind::DecimalValue(get!(row, i, Decimal).to_string()),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => {
                Kind::TextValue(get!(row, i, String))
            }
            "BYTEA" => Kind::BytesValue(get!(row, i, Vec<u8>)),
            "TIMESTAMPTZ" => Kind::TimestampValue(to_timestamp(get!(row, i, OffsetDateTime))),
            "TIMESTAMP" => {
                Kind::TimestampValue(to_timestamp(get!(row, i, PrimitiveDateTime).assume_utc()))
            }
            "DATE" => Kind::TextValue(get!(row, i, time::Date).to_string()),
            "UUID" => Kind::UuidValue(get!(row, i, uuid::Uuid).hyphenated().to_string()),
            "JSON" | "JSONB" => Kind::JsonValue(get!(row, i, serde_json::Value).to_string()),
            other => return Err(unsupported(column.name(), other)),
        };
        out.push(Value { kind: Some(kind) });
    }
    Ok(out)
}

pub fn decode_mysql(row: &MySqlRow) -> Result<Vec<Value>, ExecutorError> {
    let mut out = Vec::with_capacity(row.columns().len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row
            .try_get_raw(i)
            .map_err(|e| ExecutorError::internal(e.to_string()))?;
        if raw.is_null() {
            out.push(null());
            continue;
        }
        let type_name = column.type_info().name().to_owned();
        let kind = match type_name.as_str() {
            "BOOLEAN" => Kind::BoolValue(get!(row, i, bool)),
            "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => {
                Kind::IntValue(get!(row, i, i64))
            }
            "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
            | "BIGINT UNSIGNED" => {
                let v = get!(row, i, u64);
                i64::try_from(v)
                    .map(Kind::IntValue)
                    .unwrap_or(Kind::DecimalValue(v.to_string()))
            }
            "FLOAT" => Kind::FloatValue(f64::from(get!(row, i, f32))),
            "DOUBLE" => Kind::FloatValue(get!(row, i, f64)),
            "DECIMAL" => Kind::DecimalValue(get!(row, i, Decimal).to_string()),
            "VARCHAR" | "CHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM"
            | "SET" | "JSON" => Kind::TextValue(get!(row, i, String)),
            "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" | "BINARY" | "VARBINARY" => {
                let bytes = get!(row, i, Vec<u8>);
                match String::from_utf8(bytes) {
                    Ok(text) => Kind::TextValue(text),
                    Err(e) => Kind::BytesValue(e.into_bytes()),
                }
            }
            "DATETIME" => {
                Kind::TimestampValue(to_timestamp(get!(row, i, PrimitiveDateTime).assume_utc()))
            }
            "TIMESTAMP" => Kind::TimestampValue(to_timestamp(get!(row, i, OffsetDateTime))),
            "DATE" => Kind::TextValue(get!(row, i, time::Date).to_string()),
            "NULL" => Kind::Null(true),
            other => return Err(unsupported(column.name(), other)),
        };
        out.push(Value { kind: Some(kind) });
    }
    Ok(out)
}

pub fn decode_sqlite(row: &SqliteRow) -> Result<Vec<Value>, ExecutorError> {
    let mut out = Vec::with_capacity(row.columns().len());
    for i in 0..row.columns().len() {
        let raw = row
            .try_get_raw(i)
            .map_err(|e| ExecutorError::internal(e.to_string()))?;
        if raw.is_null() {
            out.push(null());
            continue;
        }
        // SQLite types values, not columns: decode by the value's storage class.
        let storage = raw.type_info().name().to_owned();
        let kind = match storage.as_str() {
            "INTEGER" | "BOOLEAN" => Kind::IntValue(get!(row, i, i64)),
            "REAL" | "NUMERIC" => Kind::FloatValue(get!(row, i, f64)),
            "BLOB" => Kind::BytesValue(get!(row, i, Vec<u8>)),
            _ => Kind::TextValue(get!(row, i, String)),
        };
        out.push(Value { kind: Some(kind) });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_timestamps_match_the_stored_text_format() {
        let v = OffsetDateTime::from_unix_timestamp(1_769_817_600)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(sqlite_timestamp_text(v), "2026-01-31T00:00:00Z");
        let back = from_timestamp("t", &to_timestamp(v)).ok();
        assert_eq!(back, Some(v));
    }

    #[test]
    fn byte_sizes_grow_with_text() {
        assert!(value_bytes(&text("abcdef")) > value_bytes(&text("a")));
    }
}
