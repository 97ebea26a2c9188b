//! Judging a regression run of a golden query: the new run against its baseline trace through
//! the stage-aligned diff, and against the values the answer must contain.
//! pass: same route, same result rows, same answer values. warning: the same values reached
//! by a different plan or SQL, a reworded answer, or far slower. fail: an error, another
//! route, other rows or answer values, or an expected value missing.

use std::collections::BTreeSet;

use ops_proto::convert::struct_to_json;
use ops_proto::v1::{DiffTracesResponse, Judgment, Stage, Trace, TraceStatus};
use serde_json::Value;

use super::diff;

/// A run slower than this multiple of its baseline (and by `SLOW_MS`) is a warning.
const SLOW_FACTOR: f64 = 3.0;
const SLOW_MS: f64 = 100.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub judgment: Judgment,
    /// One sentence: which stage and what.
    pub reason: String,
    /// The first diverging stage and its first changes.
    pub diff_summary: String,
}

/// The values an answer states: every number and every code-like word (letters with digits,
/// e.g. GT-01, ERP-DB-01) in its blocks, wherever they sit.
pub fn answer_values(trace: &Trace) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(blocks) = trace.answer_blocks.as_ref().map(struct_to_json) {
        collect(&blocks, &mut out);
    }
    out
}

fn collect(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                out.insert(number(f));
            }
        }
        Value::String(s) => {
            for word in s.split(|c: char| c.is_whitespace() || ",;:()[]{}\"'|".contains(c)) {
                let word = word.trim_end_matches(['.', '%']);
                if let Ok(f) = word.parse::<f64>() {
                    out.insert(number(f));
                } else if word.chars().any(|c| c.is_ascii_digit())
                    && word.chars().any(|c| c.is_alphabetic())
                {
                    out.insert(word.to_owned());
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        Value::Object(map) => map
            .iter()
            // Titles and labels are wording, not values.
            .filter(|(k, _)| !matches!(k.as_str(), "title" | "label" | "unit"))
            .for_each(|(_, v)| collect(v, out)),
        _ => {}
    }
}

/// Numbers compared to two decimals, as answers show them.
fn number(f: f64) -> String {
    format!("{:.2}", f)
}

fn stage_name(stage: i32) -> &'static str {
    Stage::try_from(stage)
        .unwrap_or(Stage::Unspecified)
        .as_str_name()
        .trim_start_matches("STAGE_")
}

fn summary(diffed: &DiffTracesResponse) -> String {
    if diffed.first_divergence == Stage::Unspecified as i32 {
        return "no stage differs (timings aside)".into();
    }
    let changes: Vec<String> = diffed
        .stages
        .iter()
        .find(|s| s.stage == diffed.first_divergence)
        .map(|s| s.changes.iter().take(3).cloned().collect())
        .unwrap_or_default();
    format!(
        "first divergence {}: {}",
        stage_name(diffed.first_divergence),
        changes.join("; ")
    )
}

fn failed(status: i32) -> bool {
    status == TraceStatus::Error as i32 || status == TraceStatus::Rejected as i32
}

/// Judges `candidate` (the new run) against `baseline` (None: a golden query with expected
/// values only) and `expected` values.
pub fn judge(baseline: Option<&Trace>, candidate: &Trace, expected: &[String]) -> Verdict {
    let values = answer_values(candidate);
    let text = serde_json::to_string(
        &candidate
            .answer_blocks
            .as_ref()
            .map(struct_to_json)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|v| {
            !values.contains(*v)
                && !text.contains(v.as_str())
                && !candidate.answer.contains(v.as_str())
        })
        .collect();
    let verdict = |judgment, reason: String, diff_summary: String| Verdict {
        judgment,
        reason,
        diff_summary,
    };
    let Some(baseline) = baseline else {
        return if failed(candidate.status) {
            verdict(
                Judgment::Fail,
                format!("the run ended in an error: {}", candidate.answer),
                String::new(),
            )
        } else if !missing.is_empty() {
            verdict(
                Judgment::Fail,
                format!("the answer lacks expected values: {missing:?}"),
                String::new(),
            )
        } else {
            verdict(
                Judgment::Pass,
                "every expected value is in the answer".into(),
                String::new(),
            )
        };
    };
    let diffed = diff::traces(baseline, candidate);
    let summary = summary(&diffed);
    if failed(candidate.status) && !failed(baseline.status) {
        return verdict(
            Judgment::Fail,
            format!("the run ended in an error: {}", candidate.answer),
            summary,
        );
    }
    if candidate.route != baseline.route {
        return verdict(Judgment::Fail, "the route differs".into(), summary);
    }
    if !missing.is_empty() {
        return verdict(
            Judgment::Fail,
            format!("the answer lacks expected values: {missing:?}"),
            summary,
        );
    }
    let rows_changed = diffed
        .stages
        .iter()
        .find(|s| s.stage == Stage::Execute as i32)
        .is_some_and(|s| s.changes.iter().any(|c| c.starts_with("results")));
    if rows_changed {
        return verdict(Judgment::Fail, "EXECUTE read other rows".into(), summary);
    }
    let before = answer_values(baseline);
    if values != before {
        let lost: Vec<&String> = before.difference(&values).take(5).collect();
        let gained: Vec<&String> = values.difference(&before).take(5).collect();
        return verdict(
            Judgment::Fail,
            format!("the answer's values differ: lost {lost:?}, gained {gained:?}"),
            summary,
        );
    }
    if diffed.first_divergence != Stage::Unspecified as i32 {
        return verdict(
            Judgment::Warning,
            format!(
                "the same values, but {} differs",
                stage_name(diffed.first_divergence)
            ),
            summary,
        );
    }
    if candidate.duration_ms > baseline.duration_ms * SLOW_FACTOR
        && candidate.duration_ms - baseline.duration_ms > SLOW_MS
    {
        return verdict(
            Judgment::Warning,
            format!(
                "the same answer, {:.0} ms instead of {:.0} ms",
                candidate.duration_ms, baseline.duration_ms
            ),
            summary,
        );
    }
    verdict(
        Judgment::Pass,
        "the same route, rows and answer values".into(),
        summary,
    )
}

#[cfg(test)]
mod tests {
    use ops_proto::v1::Route;

    use super::*;

    fn run(blocks: serde_json::Value) -> Trace {
        Trace {
            route: Route::Orch as i32,
            status: TraceStatus::Success as i32,
            answer_blocks: Some(ops_proto::convert::to_struct(&blocks)),
            duration_ms: 10.0,
            ..Default::default()
        }
    }

    #[test]
    fn values_are_numbers_and_codes_not_wording() {
        let t = run(serde_json::json!({"blocks": [
            {"title": "CPU 7 days", "text": {"text": "GT-01 CPU average over last 7 days: 56.857 %"}},
            {"table": {"columns": ["ci_code"], "rows": [{"values": ["ERP-DB-01"]}]}},
        ]}));
        let values = answer_values(&t);
        assert!(
            values.contains("GT-01") && values.contains("56.86") && values.contains("ERP-DB-01")
        );
        assert!(!values.iter().any(|v| v == "CPU"));
    }

    #[test]
    fn the_same_run_passes_and_a_lost_value_fails() {
        let base = run(serde_json::json!({"blocks": [{"text": {"text": "GT-01: 56.86"}}]}));
        assert_eq!(judge(Some(&base), &base, &[]).judgment, Judgment::Pass);
        let lost = run(serde_json::json!({"blocks": [{"text": {"text": "GT-01"}}]}));
        let verdict = judge(Some(&base), &lost, &[]);
        assert_eq!(verdict.judgment, Judgment::Fail, "{verdict:?}");
        assert!(verdict.reason.contains("56.86"), "{verdict:?}");
    }

    #[test]
    fn expected_values_must_appear_and_errors_fail() {
        let t = run(serde_json::json!({"blocks": [{"text": {"text": "GT-01: 56.86"}}]}));
        assert_eq!(judge(None, &t, &["56.86".into()]).judgment, Judgment::Pass);
        assert_eq!(judge(None, &t, &["GT-02".into()]).judgment, Judgment::Fail);
        let mut error = t.clone();
        error.status = TraceStatus::Error as i32;
        assert_eq!(judge(Some(&t), &error, &[]).judgment, Judgment::Fail);
    }
}
