//! Identifiers from column mappings, validated and quoted for the engine. Mappings come from
//! published assets, but generated SQL still never trusts them as raw text.

use ops_proto::executor::{Engine, Value};
use ops_proto::executor_api::ExecutorError;

/// A validated (optionally schema-qualified) identifier.
pub fn quote(engine: Engine, field: &str, name: &str) -> Result<String, ExecutorError> {
    if name.is_empty() {
        return Err(ExecutorError::invalid(
            field,
            format!("{field} is required"),
        ));
    }
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 2 || parts.iter().any(|p| !is_plain(p)) {
        return Err(ExecutorError::invalid(
            field,
            format!("{name:?} is not a plain identifier (letters, digits, _; optional schema.)"),
        ));
    }
    let q = if engine == Engine::Mysql { '`' } else { '"' };
    Ok(parts
        .iter()
        .map(|p| format!("{q}{p}{q}"))
        .collect::<Vec<_>>()
        .join("."))
}

fn is_plain(part: &str) -> bool {
    let mut chars = part.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && part.len() <= 63
}

/// Builds positional bind placeholders for an engine while SQL is assembled.
#[derive(Debug)]
pub struct Binds {
    engine: Engine,
    pub values: Vec<Value>,
}

impl Binds {
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            values: Vec::new(),
        }
    }

    /// Adds a value and returns its placeholder.
    pub fn push(&mut self, value: Value) -> String {
        self.values.push(value);
        match self.engine {
            Engine::Postgres => format!("${}", self.values.len()),
            _ => "?".to_owned(),
        }
    }

    /// Adds values for an `IN (...)` list.
    pub fn list(&mut self, values: impl IntoIterator<Item = Value>) -> String {
        values
            .into_iter()
            .map(|v| self.push(v))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_validated_and_quoted() {
        assert_eq!(
            quote(Engine::Postgres, "t", "public.ci").ok(),
            Some("\"public\".\"ci\"".into())
        );
        assert_eq!(quote(Engine::Mysql, "t", "ci").ok(), Some("`ci`".into()));
        assert!(quote(Engine::Sqlite, "t", "ci; DROP TABLE x").is_err());
        assert!(quote(Engine::Sqlite, "t", "a\"b").is_err());
        assert!(quote(Engine::Sqlite, "t", "").is_err());
    }
}
