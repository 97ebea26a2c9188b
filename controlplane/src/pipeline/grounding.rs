//! Whether a paragraph the LLM wrote is grounded: every number and every code-like token in
//! it must come from OPS's own data for the answer (the tool results, the plan's CIs, the
//! answer line and blocks). The question is not a ground: a number the asker states ("why is
//! GT-01 at 99%?") is not a fact.

use std::collections::BTreeSet;

use serde_json::Value;

/// What a paragraph may cite.
#[derive(Debug, Default)]
pub(super) struct Grounds {
    numbers: Vec<f64>,
    /// Code-like and other tokens, upper-cased.
    tokens: BTreeSet<String>,
}

impl Grounds {
    /// Numbers as numbers, strings as their tokens and every digit run in them.
    pub fn add_json(&mut self, value: &Value) {
        match value {
            Value::Number(n) => self.numbers.extend(n.as_f64()),
            Value::String(s) => self.add_text(s),
            Value::Array(items) => items.iter().for_each(|v| self.add_json(v)),
            Value::Object(fields) => fields.values().for_each(|v| self.add_json(v)),
            Value::Bool(_) | Value::Null => {}
        }
    }

    pub fn add_text(&mut self, text: &str) {
        self.numbers.extend(
            number_runs(text, false)
                .iter()
                .filter_map(|n| n.parse::<f64>().ok()),
        );
        self.tokens.extend(tokens(text).map(|t| t.to_uppercase()));
    }

    /// The numbers and codes of `paragraph` that are not grounded. A number is grounded when a
    /// ground rounds to it at the paragraph's precision (its sign aside); a code when it is a
    /// whole token of the grounds (case aside).
    pub fn foreign(&self, paragraph: &str) -> Vec<String> {
        let mut foreign: Vec<String> = Vec::new();
        for token in number_runs(paragraph, true) {
            let Ok(value) = token.parse::<f64>() else {
                continue;
            };
            let decimals = token.split_once('.').map_or(0, |(_, d)| d.len() as i32);
            let scale = 10f64.powi(decimals);
            let grounded = self
                .numbers
                .iter()
                .any(|k| ((k.abs() * scale).round() - value * scale).abs() < 0.5);
            if !grounded && !foreign.contains(&token) {
                foreign.push(token);
            }
        }
        for code in tokens(paragraph).filter(|t| is_code(t)) {
            if !self.tokens.contains(&code.to_uppercase()) && !foreign.iter().any(|f| f == code) {
                foreign.push(code.to_owned());
            }
        }
        foreign
    }
}

/// Runs of letters, digits, `-` and `_` ("GT-01", "ci_code", "2026-01-30T12").
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map(|t| t.trim_matches(|c| c == '-' || c == '_'))
        .filter(|t| !t.is_empty())
}

/// A code names something: a letter first, a digit in it ("GT-01", "gt07", "SAN_1"). Units
/// written after a number ("24h", "5GB") start with a digit and are numbers.
fn is_code(token: &str) -> bool {
    token.len() >= 2
        && token.starts_with(|c: char| c.is_ascii_alphabetic())
        && token.chars().any(|c| c.is_ascii_digit())
}

/// Decimal numbers of `text` ("1,234.5" → "1234.5"). In a paragraph (`in_prose`) digits that
/// belong to a code or a date's later parts ("GT-07", "v2", "-01-30") are not numbers of their
/// own; in the grounds every digit run counts.
fn number_runs(text: &str, in_prose: bool) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    let mut skipping = false;
    let digit_at = |i: usize| chars.get(i).is_some_and(char::is_ascii_digit);
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii_digit() {
            if current.is_empty() && !skipping && in_prose {
                let before = i.checked_sub(1).map(|j| chars[j]);
                let before2 = i.checked_sub(2).map(|j| chars[j]);
                skipping = before.is_some_and(|b| b.is_ascii_alphabetic() || b == '_')
                    || (before == Some('-') && before2.is_some_and(|b| b.is_ascii_alphanumeric()));
            }
            if !skipping {
                current.push(*c);
            }
            continue;
        }
        let thousands = *c == ','
            && !current.is_empty()
            && !current.contains('.')
            && (1..=3).all(|k| digit_at(i + k))
            && !digit_at(i + 4);
        let decimal = *c == '.' && !current.is_empty() && !current.contains('.') && digit_at(i + 1);
        if thousands {
            continue;
        }
        if decimal {
            current.push('.');
            continue;
        }
        skipping = false;
        if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grounds() -> Grounds {
        let mut g = Grounds::default();
        g.add_json(&serde_json::json!({
            "rows": [{"ci_code": "GT-10", "avg": 71.23456, "count": 1234, "ts": "2026-01-30T12:00:00Z"}],
            "series": [12, 15, 18],
        }));
        g.add_text("GT-10의 최근 7일 평균은 71.23%입니다.");
        g
    }

    #[test]
    fn grounded_numbers_and_codes_pass() {
        let g = grounds();
        for kept in [
            "GT-10 averaged 71.2% over 7 days (1,234 points).",
            "gt-10 peaked at 18 at 12:00 on 2026-01-30.",
            "평균93.4가 아니라 71.23입니다",
        ] {
            let foreign = g.foreign(kept);
            assert!(foreign.iter().all(|f| f == "93.4"), "{kept}: {foreign:?}");
        }
        assert_eq!(g.foreign("values 12, 15 and 18"), Vec::<String>::new());
    }

    #[test]
    fn foreign_numbers_and_codes_are_found() {
        let g = grounds();
        assert_eq!(g.foreign("GT-1 is at 93.4%"), vec!["93.4", "GT-1"]);
        assert_eq!(g.foreign("gt07 fell to -93.4"), vec!["93.4", "gt07"]);
        assert_eq!(g.foreign("CPU 평균93.4%"), vec!["93.4"]);
        assert_eq!(g.foreign("1,234,567 points"), vec!["1234567"]);
    }

    #[test]
    fn digits_inside_codes_and_dates_are_not_numbers_in_prose() {
        assert_eq!(
            number_runs("GT-07 on 2026-01-31, v2: 5", true),
            vec!["2026", "5"]
        );
        assert_eq!(
            number_runs("4,5 and 1,234.5", true),
            vec!["4", "5", "1234.5"]
        );
        assert_eq!(number_runs("T12:00", false), vec!["12", "00"]);
    }
}
