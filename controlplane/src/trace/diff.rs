//! Differences between two runs, stage by stage: every leaf of a stage's recorded output that
//! differs, by its path, with numbers compared within a tolerance and timing fields left out
//! (two runs never take the same time). SQL is compared as a normalised AST, tool-result rows
//! are keyed by their code or id column, so a reordering is no change and a changed row is
//! named by its code.

use ops_proto::convert::struct_to_json;
use ops_proto::v1::{
    AssetRef, DiffTracesResponse, Stage, StageDiff, StageRecord, StageStatus, Trace,
};
use serde_json::Value;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::model::stages::{ORDER, last_record};

/// Keys whose values are timings or costs, not results.
const VOLATILE: &[&str] = &[
    "elapsed_ms",
    "elapsedMs",
    "duration_ms",
    "durationMs",
    "peak_memory_bytes",
    "peakMemoryBytes",
    "at",
];

/// Relative tolerance for numbers (float noise in aggregates, not real changes).
const TOLERANCE: f64 = 1e-9;

/// One differing leaf.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Change {
    /// `plan.ci_codes[0]`, `results[1].rows` …
    pub path: String,
    /// Absent (null) when the field only exists in the candidate.
    pub baseline: Value,
    pub candidate: Value,
}

/// Every difference between `baseline` and `candidate`, in document order.
pub fn changes(baseline: &Value, candidate: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", baseline, candidate, &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn numbers_equal(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= TOLERANCE * a.abs().max(b.abs())
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<Change>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (key, va) in x {
                if VOLATILE.contains(&key.as_str()) {
                    continue;
                }
                walk(
                    &join(path, key),
                    va,
                    y.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
            for (key, vb) in y {
                if !x.contains_key(key) && !VOLATILE.contains(&key.as_str()) {
                    walk(&join(path, key), &Value::Null, vb, out);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                walk(
                    &format!("{path}[{i}]"),
                    x.get(i).unwrap_or(&Value::Null),
                    y.get(i).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Number(x), Value::Number(y))
            if numbers_equal(x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0)) => {}
        _ if a == b => {}
        _ => out.push(Change {
            path: path.to_owned(),
            baseline: a.clone(),
            candidate: b.clone(),
        }),
    }
}

/// The longest value text a change line shows.
const SHOWN: usize = 240;

fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= SHOWN {
        text
    } else {
        format!("{}…", text.chars().take(SHOWN).collect::<String>())
    }
}

/// A change as one line a person reads.
pub fn line(change: &Change) -> String {
    match (&change.baseline, &change.candidate) {
        (Value::Null, c) => format!("{}: added {}", change.path, shown(c)),
        (b, Value::Null) => format!("{}: removed {}", change.path, shown(b)),
        (Value::String(b), Value::String(c)) if change.path.ends_with(".sql") => {
            format!("{}: SQL differs\n- {b}\n+ {c}", change.path)
        }
        (b, c) => format!("{}: {} → {}", change.path, shown(b), shown(c)),
    }
}

/// SQL text as its parsed, re-rendered AST: formatting and case of keywords are no change.
fn normalised_sql(sql: &str) -> String {
    match Parser::parse_sql(&GenericDialect {}, sql) {
        Ok(statements) => statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => sql.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// The column that names a row: a code, else an id, else none (rows keyed by position).
fn key_column(columns: &[Value]) -> Option<usize> {
    let names: Vec<String> = columns
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_lowercase())
        .collect();
    let find = |f: &dyn Fn(&str) -> bool| names.iter().position(|n| f(n));
    find(&|n| n == "code" || n.ends_with("_code"))
        .or_else(|| find(&|n| n == "id" || n.ends_with("_id")))
}

/// Tool results keyed by tool, their rows by the key column, for a diff that names rows.
fn keyed_results(results: &mut Value) {
    let Value::Array(items) = results else {
        return;
    };
    let mut keyed = serde_json::Map::new();
    for mut result in std::mem::take(items) {
        let tool = result
            .get("tool")
            .and_then(Value::as_str)
            .unwrap_or("result")
            .to_owned();
        let key = key_column(
            result
                .get("columns")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice),
        );
        if let (Some(key), Some(Value::Array(rows))) = (key, result.get_mut("rows")) {
            let mut by_key = serde_json::Map::new();
            for (i, row) in std::mem::take(rows).into_iter().enumerate() {
                let name = match row.get(key) {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => format!("#{i}"),
                };
                let name = if by_key.contains_key(&name) {
                    format!("{name}#{i}")
                } else {
                    name
                };
                by_key.insert(name, row);
            }
            result["rows"] = Value::Object(by_key);
        }
        let mut name = tool.clone();
        let mut n = 1;
        while keyed.contains_key(&name) {
            n += 1;
            name = format!("{tool}#{n}");
        }
        keyed.insert(name, result);
    }
    *results = Value::Object(keyed);
}

/// A stage's recorded output made comparable: SQL normalised, results keyed.
fn comparable(stage: Stage, record: &StageRecord) -> Value {
    let mut output = record
        .output
        .as_ref()
        .map(struct_to_json)
        .unwrap_or(Value::Null);
    if let Some(tasks) = output.get_mut("tasks").and_then(Value::as_array_mut) {
        for task in tasks {
            if let Some(sql) = task.pointer_mut("/request/sql")
                && let Some(text) = sql.as_str()
            {
                *sql = Value::String(normalised_sql(text));
            }
        }
    }
    if stage == Stage::Execute
        && let Some(results) = output.get_mut("results")
    {
        keyed_results(results);
    }
    if stage == Stage::RoutePlan {
        // The run's own input (question, as_of) is part of what ROUTE+PLAN decided on.
        let input = record
            .input
            .as_ref()
            .map(struct_to_json)
            .unwrap_or(Value::Null);
        if let Value::Object(map) = &mut output {
            map.insert("input".into(), input);
        }
    }
    output
}

/// What changed between two records of `stage`, compared exactly as `DiffTraces` compares
/// them (SQL as normalised AST, tool-result rows keyed, numbers with a tolerance).
pub fn stage_changes(stage: Stage, baseline: &StageRecord, candidate: &StageRecord) -> Vec<Change> {
    changes(&comparable(stage, baseline), &comparable(stage, candidate))
}

fn status(record: Option<&StageRecord>) -> StageStatus {
    record
        .and_then(|r| StageStatus::try_from(r.status).ok())
        .unwrap_or(StageStatus::Unspecified)
}

fn stage_name(stage: Stage) -> &'static str {
    stage.as_str_name().trim_start_matches("STAGE_")
}

fn stage_diff(
    stage: Stage,
    baseline: Option<&StageRecord>,
    candidate: Option<&StageRecord>,
) -> StageDiff {
    let mut found = match (baseline, candidate) {
        (Some(b), Some(c)) => stage_changes(stage, b, c),
        (Some(_), None) => vec![Change {
            path: stage_name(stage).to_lowercase(),
            baseline: Value::String("ran".into()),
            candidate: Value::String("did not run".into()),
        }],
        (None, Some(_)) => vec![Change {
            path: stage_name(stage).to_lowercase(),
            baseline: Value::String("did not run".into()),
            candidate: Value::String("ran".into()),
        }],
        (None, None) => Vec::new(),
    };
    let (bs, cs) = (status(baseline), status(candidate));
    if baseline.is_some() && candidate.is_some() && bs != cs {
        found.insert(
            0,
            Change {
                path: "status".into(),
                baseline: Value::String(
                    bs.as_str_name().trim_start_matches("STAGE_STATUS_").into(),
                ),
                candidate: Value::String(
                    cs.as_str_name().trim_start_matches("STAGE_STATUS_").into(),
                ),
            },
        );
    }
    StageDiff {
        stage: stage as i32,
        baseline_status: bs as i32,
        candidate_status: cs as i32,
        baseline_ms: baseline.map_or(0.0, |r| r.duration_ms),
        candidate_ms: candidate.map_or(0.0, |r| r.duration_ms),
        changes: found.iter().map(line).collect(),
        details: Some(pbjson_types::ListValue {
            values: found
                .iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .filter_map(|v| serde_json::from_value(v).ok())
                .collect(),
        }),
    }
}

/// The replans of a run as (stage, trigger, decision) triples.
fn replans(trace: &Trace) -> Value {
    Value::Array(
        trace
            .replan_events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "stage": e.stage, "trigger": e.trigger, "decision": e.decision,
                    "plan_after": e.patch_after.as_ref().map(struct_to_json),
                })
            })
            .collect(),
    )
}

/// Two runs compared stage by stage (each stage's last run).
pub fn traces(baseline: &Trace, candidate: &Trace) -> DiffTracesResponse {
    let mut stages: Vec<StageDiff> = ORDER
        .iter()
        .map(|stage| {
            stage_diff(
                *stage,
                last_record(&baseline.stages, *stage).map(|(_, r)| r),
                last_record(&candidate.stages, *stage).map(|(_, r)| r),
            )
        })
        .collect();
    let control = changes(&replans(baseline), &replans(candidate));
    stages.push(StageDiff {
        stage: Stage::Control as i32,
        changes: control
            .iter()
            .map(|c| {
                line(&Change {
                    path: format!("replans{}", c.path),
                    ..c.clone()
                })
            })
            .collect(),
        ..Default::default()
    });
    let first_divergence = stages
        .iter()
        .find(|d| !d.changes.is_empty())
        .map_or(Stage::Unspecified as i32, |d| d.stage);
    let same = |a: &AssetRef, b: &AssetRef| a.r#type == b.r#type && a.name == b.name;
    let only = |from: &Trace, other: &Trace| -> Vec<AssetRef> {
        from.applied_assets
            .iter()
            .filter(|a| !other.applied_assets.contains(a))
            .cloned()
            .collect()
    };
    let asset_versions_changed = baseline
        .applied_assets
        .iter()
        .filter_map(|b| {
            let c = candidate
                .applied_assets
                .iter()
                .find(|c| same(b, c) && c.version != b.version)?;
            Some(format!("{} → {}", crate::model::asset_label(b), c.version))
        })
        .collect();
    let blocks = |t: &Trace| {
        t.answer_blocks
            .as_ref()
            .map(struct_to_json)
            .unwrap_or(Value::Null)
    };
    DiffTracesResponse {
        first_divergence,
        assets_only_in_baseline: only(baseline, candidate),
        assets_only_in_candidate: only(candidate, baseline),
        asset_versions_changed,
        answer_changed: baseline.answer != candidate.answer
            || !changes(&blocks(baseline), &blocks(candidate)).is_empty(),
        baseline_answer: baseline.answer.clone(),
        candidate_answer: candidate.answer.clone(),
        stages,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reports_changed_added_and_removed_leaves_by_path() {
        let a = json!({"plan": {"ci_codes": ["GT-01"], "mode": "metric"}, "elapsed_ms": 3.0});
        let b = json!({"plan": {"ci_codes": ["GT-02", "GT-03"], "mode": "metric", "view": "x"}, "elapsed_ms": 9.0});
        let paths: Vec<String> = changes(&a, &b).into_iter().map(|c| c.path).collect();
        assert_eq!(paths, ["plan.ci_codes[0]", "plan.ci_codes[1]", "plan.view"]);
    }

    #[test]
    fn equal_values_and_float_noise_are_no_change() {
        let a = json!({"value": 45.2 + 1e-15, "rows": [[1, "a"]]});
        let b = json!({"value": 45.2, "rows": [[1.0, "a"]]});
        assert!(changes(&a, &b).is_empty());
        assert_eq!(changes(&json!({"v": 1.0}), &json!({"v": 1.5})).len(), 1);
    }

    fn record(stage: Stage, output: serde_json::Value, ms: f64) -> StageRecord {
        StageRecord {
            stage: stage as i32,
            status: StageStatus::Ok as i32,
            output: serde_json::from_value(output).ok(),
            duration_ms: ms,
            ..Default::default()
        }
    }

    fn run(sql: &str, rows: serde_json::Value, ci: &str, ms: f64) -> Trace {
        Trace {
            stages: vec![
                record(
                    Stage::RoutePlan,
                    json!({"route": "orch", "plan": {"ci_codes": [ci]}}),
                    ms,
                ),
                record(
                    Stage::Validate,
                    json!({"tasks": [{"tool": "t", "request": {"type": "sql", "sql": sql}}]}),
                    ms,
                ),
                record(
                    Stage::Execute,
                    json!({"results": [{"tool": "t", "columns": ["value", "ci_code"], "rows": rows}]}),
                    ms,
                ),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn the_same_run_differs_only_in_timings() {
        let a = run(
            "SELECT a FROM t",
            json!([[1, "GT-01"], [2, "GT-02"]]),
            "GT-01",
            3.0,
        );
        let b = run(
            "select a\n  from t",
            json!([[2, "GT-02"], [1, "GT-01"]]),
            "GT-01",
            9.0,
        );
        let diff = traces(&a, &b);
        assert_eq!(diff.first_divergence, Stage::Unspecified as i32);
        assert!(diff.stages.iter().all(|s| s.changes.is_empty()), "{diff:?}");
        assert_eq!(diff.stages[0].candidate_ms, 9.0);
    }

    #[test]
    fn names_the_first_diverging_stage_the_field_and_the_row() {
        let a = run("SELECT a FROM t", json!([[1, "GT-01"]]), "GT-01", 1.0);
        let b = run("SELECT b FROM t", json!([[5, "GT-01"]]), "GT-02", 1.0);
        let diff = traces(&a, &b);
        assert_eq!(diff.first_divergence, Stage::RoutePlan as i32);
        assert_eq!(
            diff.stages[0].changes,
            ["plan.ci_codes[0]: \"GT-01\" → \"GT-02\""]
        );
        assert!(
            diff.stages[1].changes[0].starts_with("tasks[0].request.sql: SQL differs"),
            "{:?}",
            diff.stages[1].changes
        );
        assert_eq!(
            diff.stages[2].changes,
            ["results.t.rows.GT-01[0]: 1.0 → 5.0"]
        );
    }
}
