//! Conversions every layer shares: protobuf timestamps ↔ `time`, and any serde value ↔
//! `google.protobuf.Struct` (what traces record stage inputs and outputs as).

use pbjson_types::{Struct, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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

/// Any serialisable value as a Struct (a non-object under "value").
pub fn to_struct<T: Serialize>(value: &T) -> Struct {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => {
            serde_json::from_value(serde_json::Value::Object(map)).unwrap_or_default()
        }
        Ok(other) => {
            serde_json::from_value(serde_json::json!({ "value": other })).unwrap_or_default()
        }
        Err(_) => Struct::default(),
    }
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
    }
}
