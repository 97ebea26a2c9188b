//! The orchestration tables mirror each trace (task, user query, execution plan with its task
//! DAG, one subtask per stage, constraint violations), written by the trace writer right after
//! the traces themselves; retention removes a tenant's old traces with their mirrors.

use ops_proto::v1::{Severity, Stage, Trace};

use crate::model::refs::stage_slug;
use crate::storage::{Db, insert_rows};

/// How long a tenant keeps traces and audit records (from its Policy); 0 means no limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    pub days: u32,
    pub max_traces: u64,
    pub audit_days: u32,
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The VALIDATE stage's task list as `{"nodes": [...], "edges": [[from, to], ...]}`: each node
/// the task's tool, result, kind and statement (the trace keeps the whole task).
fn task_dag(trace: &Trace) -> String {
    let text = |v: Option<&pbjson_types::Value>| match v.and_then(|v| v.kind.as_ref()) {
        Some(pbjson_types::value::Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(pbjson_types::value::Kind::NumberValue(n)) => serde_json::json!(n),
        _ => serde_json::Value::Null,
    };
    let nodes: Vec<serde_json::Value> = trace
        .stages
        .iter()
        .rev()
        .find(|s| s.stage == Stage::Validate as i32)
        .and_then(|s| s.output.as_ref())
        .and_then(|o| o.fields.get("tasks"))
        .and_then(|v| match &v.kind {
            Some(pbjson_types::value::Kind::ListValue(list)) => Some(&list.values),
            _ => None,
        })
        .into_iter()
        .flatten()
        .filter_map(|task| match &task.kind {
            Some(pbjson_types::value::Kind::StructValue(t)) => Some(t),
            _ => None,
        })
        .map(|t| {
            let sql = match t.fields.get("request").and_then(|r| r.kind.as_ref()) {
                Some(pbjson_types::value::Kind::StructValue(r)) => text(r.fields.get("sql")),
                _ => serde_json::Value::Null,
            };
            serde_json::json!({
                "tool": text(t.fields.get("tool")),
                "result": text(t.fields.get("result_name")),
                "kind": text(t.fields.get("kind")),
                "sql": sql,
                "depends_on": text(t.fields.get("depends_on")),
            })
        })
        .collect();
    let tasks = serde_json::Value::Array(nodes);
    let edges: Vec<[u64; 2]> = tasks
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, t)| {
            let from = t.get("depends_on")?.as_f64()? as u64;
            Some([from, i as u64])
        })
        .collect();
    serde_json::json!({"nodes": tasks, "edges": edges}).to_string()
}

/// One trace's values shared by its mirror rows.
struct Mirrored<'t> {
    trace: &'t Trace,
    started: i64,
    finished: i64,
    status: String,
    as_of: Option<i64>,
}

struct PlanRow<'t> {
    trace: &'t Trace,
    started: i64,
    raw: String,
    validated: Option<String>,
    dag: String,
}

struct SubtaskRow<'t> {
    id: String,
    trace: &'t Trace,
    stage: &'static str,
    status: String,
    duration_ms: f64,
    retries: i64,
    error: Option<String>,
    started: i64,
}

struct ViolationRow<'t> {
    id: String,
    trace: &'t Trace,
    violation: &'t ops_proto::v1::Violation,
    severity: String,
    started: i64,
}

/// The orchestration rows of committed traces (task, user query, execution plan with its
/// task DAG, one subtask per stage, constraint violations), a few statements per batch. Rows
/// already there are kept, so mirroring a trace twice (a backfill after a restart) is harmless.
pub async fn mirror(conn: &mut sqlx::AnyConnection, traces: &[&Trace]) -> Result<(), sqlx::Error> {
    let mirrored: Vec<Mirrored<'_>> = traces
        .iter()
        .map(|trace| {
            let started = trace
                .started_at
                .as_ref()
                .map_or(0, ops_proto::convert::micros);
            Mirrored {
                trace,
                started,
                finished: started + (trace.duration_ms * 1000.0) as i64,
                status: super::writer_status(trace.status),
                as_of: trace.as_of.as_ref().map(ops_proto::convert::micros),
            }
        })
        .collect();
    let keep = "ON CONFLICT DO NOTHING";
    insert_rows(
        conn,
        "tasks (task_id, tenant_id, trace_id, kind, status, created_at, finished_at)",
        keep,
        7,
        &mirrored,
        |q, m| {
            q.bind(&m.trace.trace_id)
                .bind(&m.trace.tenant)
                .bind(&m.trace.trace_id)
                .bind("ask")
                .bind(&m.status)
                .bind(m.started)
                .bind(m.finished)
        },
    )
    .await?;
    insert_rows(
        conn,
        "user_queries (query_id, tenant_id, task_id, principal, question, mode, as_of, created_at)",
        keep,
        8,
        &mirrored,
        |q, m| {
            q.bind(&m.trace.trace_id)
                .bind(&m.trace.tenant)
                .bind(&m.trace.trace_id)
                .bind(&m.trace.principal)
                .bind(&m.trace.question)
                .bind(&m.trace.mode)
                .bind(m.as_of)
                .bind(m.started)
        },
    )
    .await?;
    let plans: Vec<PlanRow<'_>> = mirrored
        .iter()
        .filter_map(|m| {
            Some(PlanRow {
                trace: m.trace,
                started: m.started,
                raw: json(m.trace.plan_raw.as_ref()?),
                validated: m.trace.plan_validated.as_ref().map(json),
                dag: task_dag(m.trace),
            })
        })
        .collect();
    insert_rows(
        conn,
        "execution_plans (plan_id, tenant_id, task_id, plan_raw, plan_validated, task_dag, created_at)",
        keep,
        7,
        &plans,
        |q, p| {
            q.bind(&p.trace.trace_id)
                .bind(&p.trace.tenant)
                .bind(&p.trace.trace_id)
                .bind(&p.raw)
                .bind(&p.validated)
                .bind(&p.dag)
                .bind(p.started)
        },
    )
    .await?;
    let subtasks: Vec<SubtaskRow<'_>> = mirrored.iter().flat_map(subtask_rows).collect();
    insert_rows(
        conn,
        "subtasks (subtask_id, tenant_id, task_id, stage, agent, status, duration_ms, retry_count, error, started_at)",
        keep,
        10,
        &subtasks,
        |q, s| {
            q.bind(&s.id)
                .bind(&s.trace.tenant)
                .bind(&s.trace.trace_id)
                .bind(s.stage)
                .bind("opsd")
                .bind(&s.status)
                .bind(s.duration_ms)
                .bind(s.retries)
                .bind(&s.error)
                .bind(s.started)
        },
    )
    .await?;
    let violations: Vec<ViolationRow<'_>> = mirrored
        .iter()
        .flat_map(|m| {
            m.trace
                .violations
                .iter()
                .enumerate()
                .map(|(index, violation)| ViolationRow {
                    id: format!("{}:{index}", m.trace.trace_id),
                    trace: m.trace,
                    violation,
                    severity: Severity::try_from(violation.severity)
                        .map(|s| super::enum_slug(s.as_str_name(), "SEVERITY_"))
                        .unwrap_or_default(),
                    started: m.started,
                })
        })
        .collect();
    insert_rows(
        conn,
        "constraint_violations (violation_id, tenant_id, trace_id, asset_type, asset_name, violation_type, rule, field, message, expected, actual, severity, blocking, created_at)",
        keep,
        14,
        &violations,
        |q, v| {
            q.bind(&v.id)
                .bind(&v.trace.tenant)
                .bind(&v.trace.trace_id)
                .bind(None::<String>)
                .bind(None::<String>)
                .bind(&v.violation.r#type)
                .bind(&v.violation.rule)
                .bind(&v.violation.field)
                .bind(&v.violation.message)
                .bind(&v.violation.expected)
                .bind(&v.violation.actual)
                .bind(&v.severity)
                .bind(v.violation.blocking)
                .bind(v.started)
        },
    )
    .await
}

/// One subtask row per recorded stage; EXECUTE's carries the tool calls' retries.
fn subtask_rows<'t>(m: &Mirrored<'t>) -> Vec<SubtaskRow<'t>> {
    let trace = m.trace;
    trace
        .stages
        .iter()
        .enumerate()
        .map(|(index, stage)| SubtaskRow {
            id: format!("{}:{index}", trace.trace_id),
            trace,
            stage: Stage::try_from(stage.stage).map_or("unspecified", stage_slug),
            status: ops_proto::v1::StageStatus::try_from(stage.status)
                .map(|s| super::enum_slug(s.as_str_name(), "STAGE_STATUS_"))
                .unwrap_or_default(),
            duration_ms: stage.duration_ms,
            retries: if stage.stage == Stage::Execute as i32 {
                trace
                    .tool_calls
                    .iter()
                    .map(|c| i64::from(c.attempts.saturating_sub(1)))
                    .sum()
            } else {
                0
            },
            error: stage
                .diagnostics
                .as_ref()
                .map(|d| d.errors.join("; "))
                .filter(|e| !e.is_empty()),
            started: m.started,
        })
        .collect()
}

/// Deletes the tenant's traces older than `days` and beyond the newest `max_traces`, with
/// their mirror rows. Returns how many traces went.
pub async fn apply_retention(
    db: &Db,
    tenant: &str,
    retention: Retention,
    now_micros: i64,
) -> Result<u64, sqlx::Error> {
    if retention.days == 0 && retention.max_traces == 0 {
        return Ok(0);
    }
    let mut cutoff = if retention.days > 0 {
        now_micros - i64::from(retention.days) * 86_400 * 1_000_000
    } else {
        i64::MIN
    };
    if retention.max_traces > 0 {
        let nth: Option<i64> = sqlx::query_scalar(
            "SELECT started_at FROM traces WHERE tenant_id = $1 ORDER BY started_at DESC LIMIT 1 OFFSET $2",
        )
        .bind(tenant)
        .bind(i64::try_from(retention.max_traces).unwrap_or(i64::MAX))
        .fetch_optional(db.pool())
        .await?;
        if let Some(nth) = nth {
            cutoff = cutoff.max(nth + 1);
        }
    }
    let mut tx = db.begin_write().await?;
    let old = "SELECT trace_id FROM traces WHERE tenant_id = $1 AND started_at < $2";
    for table in [
        "subtasks",
        "user_queries",
        "execution_plans",
        "constraint_violations",
        "trace_assets",
    ] {
        let column = match table {
            "constraint_violations" | "trace_assets" => "trace_id",
            _ => "task_id",
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE {column} IN ({old})"
        )))
        .bind(tenant)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM tasks WHERE trace_id IN ({old})"
    )))
    .bind(tenant)
    .bind(cutoff)
    .execute(&mut *tx)
    .await?;
    let removed = sqlx::query("DELETE FROM traces WHERE tenant_id = $1 AND started_at < $2")
        .bind(tenant)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use ops_proto::v1::StageRecord;

    use super::*;

    #[test]
    fn the_task_dag_lists_each_task_and_its_feeding_edge() {
        let output = serde_json::json!({"tasks": [
            {"tool": "ci_tool", "result_name": "ci_tool", "kind": "sql", "hidden": true,
             "request": {"type": "sql", "sql": "SELECT 1", "params": []}},
            {"tool": "metric_tool", "result_name": "metric_tool", "kind": "metric",
             "depends_on": 0, "request": {"type": "metric", "request": {}}},
        ]});
        let trace = Trace {
            stages: vec![StageRecord {
                stage: Stage::Validate as i32,
                output: Some(ops_proto::convert::to_struct(&output)),
                ..Default::default()
            }],
            ..Default::default()
        };
        let dag: serde_json::Value = serde_json::from_str(&task_dag(&trace)).unwrap_or_default();
        assert_eq!(dag["edges"], serde_json::json!([[0, 1]]));
        assert_eq!(dag["nodes"][0]["sql"], "SELECT 1");
        assert_eq!(dag["nodes"][1]["tool"], "metric_tool");
        assert_eq!(dag["nodes"][1]["sql"], serde_json::Value::Null);
    }
}
