//! Conversions every layer shares: protobuf timestamps ↔ `time`, any serde value ↔
//! `google.protobuf.Struct` (what traces record stage inputs and outputs as), and how enum
//! values are spelled in storage and metrics.

use pbjson_types::{Struct, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A protobuf enum value's name without its prefix, lower-case: `ROUTE_ORCH` → `orch`. This is
/// how traces, their tables, the audit log, the metrics and the CLI spell enum values.
pub fn enum_slug(str_name: &str, prefix: &str) -> String {
    str_name.trim_start_matches(prefix).to_lowercase()
}

/// A point in time as a protobuf timestamp.
pub fn timestamp(t: OffsetDateTime) -> Timestamp {
    Timestamp {
        seconds: t.unix_timestamp(),
        nanos: i32::try_from(t.nanosecond()).unwrap_or_default(),
    }
}

/// A protobuf timestamp as a point in time; `None` when out of range.
pub fn time_of(t: &Timestamp) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t.seconds)
        .ok()?
        .replace_nanosecond(u32::try_from(t.nanos).ok()?)
        .ok()
}

/// RFC 3339 text of a timestamp; "" when out of range.
pub fn rfc3339(t: &Timestamp) -> String {
    time_of(t)
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A timestamp from RFC 3339 text.
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    OffsetDateTime::parse(text, &Rfc3339).ok().map(timestamp)
}

/// A timestamp from microseconds since the epoch (how storage keeps times).
pub fn from_micros(micros: i64) -> Timestamp {
    Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(0),
    }
}

/// Microseconds since the epoch of a timestamp.
pub fn micros(t: &Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(t.nanos / 1000))
}

/// Any serialisable value as a Struct (a non-object under "value"). One serde pass into JSON,
/// then a plain walk into the Struct: traces encode every stage's input and output this way.
pub fn to_struct<T: Serialize>(value: &T) -> Struct {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => object(map),
        Ok(other) => Struct {
            fields: [("value".to_owned(), json_value(other))].into(),
        },
        Err(_) => Struct::default(),
    }
}

fn object(map: serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map.into_iter().map(|(k, v)| (k, json_value(v))).collect(),
    }
}

/// A JSON value as a protobuf Value (numbers become doubles, as Struct holds them; null is a
/// Value without a kind, as pbjson reads it).
pub fn json_value(value: serde_json::Value) -> pbjson_types::Value {
    use pbjson_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => return pbjson_types::Value { kind: None },
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(pbjson_types::ListValue {
            values: items.into_iter().map(json_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(object(map)),
    };
    pbjson_types::Value { kind: Some(kind) }
}

/// A Struct decoded into a typed value (the inverse of [`to_struct`] for objects). A Struct
/// holds every number as a double, so whole numbers are turned back into integers first
/// (an integer field refuses `3.0`; a double field takes `3`).
pub fn from_struct<T: DeserializeOwned>(value: &Struct) -> Result<T, serde_json::Error> {
    let mut json = serde_json::to_value(value)?;
    integers(&mut json);
    serde_json::from_value(json)
}

/// Whole doubles as integers, in place.
fn integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                *n = serde_json::Number::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integers),
        _ => {}
    }
}

/// A Struct as JSON.
pub fn struct_to_json(value: &Struct) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_with_nanoseconds() {
        let t = OffsetDateTime::from_unix_timestamp(1_767_225_600)
            .and_then(|t| t.replace_nanosecond(123_456_789))
            .ok();
        let back = t.map(timestamp).as_ref().and_then(time_of);
        assert_eq!(back, t);
        assert_eq!(
            rfc3339(&Timestamp {
                seconds: 1_767_225_600,
                nanos: 0
            }),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            time_of(&Timestamp {
                seconds: i64::MAX,
                nanos: 0
            }),
            None
        );
        let t = parse_rfc3339("2026-01-31T00:00:00.25Z").unwrap_or_default();
        assert_eq!(micros(&t), 1_769_817_600_250_000);
        assert_eq!(from_micros(micros(&t)), t);
        assert_eq!(rfc3339(&t), "2026-01-31T00:00:00.25Z");
    }

    #[test]
    fn structs_round_trip_typed_values() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Input {
            question: String,
            limit: u32,
        }
        let input = Input {
            question: "GT-01 CPU".into(),
            limit: 10,
        };
        let back: Input = from_struct(&to_struct(&input)).unwrap_or(Input {
            question: String::new(),
            limit: 0,
        });
        assert_eq!(back, input);
        assert!(to_struct(&3).fields.contains_key("value"));
        // The direct walk gives what pbjson's own deserialiser gives.
        let json = serde_json::json!({"a": [1, 2.5, null, true, "x", {"b": []}], "c": {}});
        let walked = to_struct(&json);
        let deserialised: Option<Struct> = serde_json::from_value(json).ok();
        assert_eq!(Some(walked), deserialised);
    }
}
