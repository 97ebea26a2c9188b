//! Executor cells ↔ text and JSON values, shared by the stages, the planner's knowledge
//! loader and the tests.

use crate::executor::{Value, value::Kind};
use pbjson_types::value::Kind as PbKind;
use time::OffsetDateTime;

pub fn text(v: &str) -> Value {
    Value {
        kind: Some(Kind::TextValue(v.to_owned())),
    }
}

pub fn null() -> Value {
    Value {
        kind: Some(Kind::Null(true)),
    }
}

pub fn timestamp(t: OffsetDateTime) -> Value {
    Value {
        kind: Some(Kind::TimestampValue(crate::convert::timestamp(t))),
    }
}

/// A cell as display text; null is "".
pub fn display(v: &Value) -> String {
    match &v.kind {
        None | Some(Kind::Null(_)) => String::new(),
        Some(Kind::BoolValue(b)) => b.to_string(),
        Some(Kind::IntValue(i)) => i.to_string(),
        Some(Kind::FloatValue(f)) => f.to_string(),
        Some(
            Kind::DecimalValue(s) | Kind::TextValue(s) | Kind::UuidValue(s) | Kind::JsonValue(s),
        ) => s.clone(),
        Some(Kind::BytesValue(b)) => format!("<{} bytes>", b.len()),
        Some(Kind::TimestampValue(t)) => crate::convert::rfc3339(t),
    }
}

/// A cell as a JSON value: numbers stay numbers, timestamps become RFC 3339 text.
pub fn to_json(v: &Value) -> pbjson_types::Value {
    let kind = match &v.kind {
        None | Some(Kind::Null(_)) => PbKind::NullValue(0),
        Some(Kind::BoolValue(b)) => PbKind::BoolValue(*b),
        Some(Kind::IntValue(i)) => PbKind::NumberValue(*i as f64),
        Some(Kind::FloatValue(f)) => PbKind::NumberValue(*f),
        Some(Kind::DecimalValue(s)) => match s.parse::<f64>() {
            Ok(f) if f.is_finite() => PbKind::NumberValue(f),
            _ => PbKind::StringValue(s.clone()),
        },
        _ => PbKind::StringValue(display(v)),
    };
    pbjson_types::Value { kind: Some(kind) }
}

/// A JSON number, if the cell is numeric.
pub fn as_f64(v: &Value) -> Option<f64> {
    match &v.kind {
        Some(Kind::IntValue(i)) => Some(*i as f64),
        Some(Kind::FloatValue(f)) => Some(*f),
        Some(Kind::DecimalValue(s)) => s.parse().ok(),
        _ => None,
    }
}

pub fn json_text(s: impl Into<String>) -> pbjson_types::Value {
    pbjson_types::Value {
        kind: Some(PbKind::StringValue(s.into())),
    }
}

pub fn json_number(n: f64) -> pbjson_types::Value {
    pbjson_types::Value {
        kind: Some(PbKind::NumberValue(n)),
    }
}

/// A JSON scalar as a cell: whole numbers as integers, other numbers as floats; `None` for
/// null, lists and objects.
pub fn from_json(v: &pbjson_types::Value) -> Option<Value> {
    let kind = match v.kind.as_ref()? {
        PbKind::StringValue(s) => Kind::TextValue(s.clone()),
        PbKind::NumberValue(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Kind::IntValue(*n as i64),
        PbKind::NumberValue(n) => Kind::FloatValue(*n),
        PbKind::BoolValue(b) => Kind::BoolValue(*b),
        _ => return None,
    };
    Some(Value { kind: Some(kind) })
}
