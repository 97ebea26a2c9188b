//! The `llm_usage_log` table: one row per LLM call, written with its run's trace; the spend
//! of a tenant's day (for the Policy's cap) and the usage summed by model and UTC day.

use ops_proto::convert::micros;
use ops_proto::v1::{LlmUsageRow, SummarizeLlmUsageRequest, SummarizeLlmUsageResponse, Trace};
use sqlx::Row;
use time::OffsetDateTime;

use super::store::AuditError;
use crate::storage::{Db, insert_rows, unix_micros};

const DAY_MICROS: i64 = 86_400_000_000;
/// A summary without `since` covers this many days.
const DEFAULT_DAYS: i64 = 30;

/// The pipeline stage a call of `purpose` belongs to.
fn stage_of(purpose: &str) -> &'static str {
    match purpose {
        "planner" => "route_plan",
        _ => "compose",
    }
}

/// Writes the LLM calls of `traces` on `conn` (inside the traces' transaction).
pub async fn insert(conn: &mut sqlx::AnyConnection, traces: &[&Trace]) -> Result<(), sqlx::Error> {
    let now = unix_micros();
    let calls: Vec<(&Trace, &ops_proto::v1::LlmCall)> = traces
        .iter()
        .flat_map(|t| t.llm_calls.iter().map(move |c| (*t, c)))
        .collect();
    insert_rows(
        conn,
        "llm_usage_log (usage_id, tenant_id, trace_id, stage, model, prompt_tokens, completion_tokens, latency_ms, created_at, purpose, provider, cost_usd, outcome, error)",
        "",
        14,
        &calls,
        |q, (trace, call)| {
            q.bind(uuid::Uuid::new_v4().to_string())
                .bind(&trace.tenant)
                .bind(&trace.trace_id)
                .bind(stage_of(&call.purpose))
                .bind(&call.model)
                .bind(i64::try_from(call.prompt_tokens).unwrap_or(i64::MAX))
                .bind(i64::try_from(call.completion_tokens).unwrap_or(i64::MAX))
                .bind(call.latency_ms)
                .bind(now)
                .bind(&call.purpose)
                .bind(&call.provider)
                .bind(call.cost_usd)
                .bind(&call.outcome)
                .bind(&call.error)
        },
    )
    .await
}

/// Start of the UTC day `now` is in, in unix microseconds.
pub fn day_start_micros(now: OffsetDateTime) -> i64 {
    let micros = (now.unix_timestamp_nanos() / 1000) as i64;
    micros - micros.rem_euclid(DAY_MICROS)
}

/// USD the tenant's LLM calls cost since `since_micros`.
pub async fn spent_since(db: &Db, tenant: &str, since_micros: i64) -> Result<f64, sqlx::Error> {
    let spent: Option<f64> = sqlx::query_scalar(
        "SELECT SUM(cost_usd) FROM llm_usage_log WHERE tenant_id = $1 AND created_at >= $2",
    )
    .bind(tenant)
    .bind(since_micros)
    .fetch_one(db.pool())
    .await?;
    Ok(spent.unwrap_or(0.0))
}

fn day_label(day_index: i64) -> String {
    OffsetDateTime::from_unix_timestamp(day_index * 86_400)
        .map(|d| d.date().to_string())
        .unwrap_or_default()
}

/// The tenant's calls summed by UTC day and model, oldest day first.
pub async fn summarize(
    db: &Db,
    tenant: &str,
    request: &SummarizeLlmUsageRequest,
) -> Result<SummarizeLlmUsageResponse, AuditError> {
    let until = request.until.as_ref().map_or(i64::MAX, micros);
    let since = request
        .since
        .as_ref()
        .map_or_else(|| unix_micros() - DEFAULT_DAYS * DAY_MICROS, micros);
    if since >= until {
        return Err(AuditError::InvalidArgument {
            field: "since".into(),
            message: "since must be before until".into(),
        });
    }
    let rows = sqlx::query(
        "SELECT created_at / 86400000000 AS day_index, model, COUNT(*) AS calls, \
         CAST(SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END) AS BIGINT) AS failed, \
         CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, \
         CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens, \
         SUM(cost_usd) AS cost_usd \
         FROM llm_usage_log WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3 \
         GROUP BY created_at / 86400000000, model ORDER BY day_index, model",
    )
    .bind(tenant)
    .bind(since)
    .bind(until)
    .fetch_all(db.pool())
    .await?;
    let mut out = SummarizeLlmUsageResponse::default();
    for row in rows {
        let count = |name: &str| -> Result<u64, sqlx::Error> {
            Ok(u64::try_from(row.try_get::<i64, _>(name)?).unwrap_or(0))
        };
        let cost: f64 = row.try_get::<Option<f64>, _>("cost_usd")?.unwrap_or(0.0);
        out.total_cost_usd += cost;
        out.rows.push(LlmUsageRow {
            tenant: tenant.to_owned(),
            model: row.try_get("model")?,
            day: day_label(row.try_get("day_index")?),
            calls: count("calls")?,
            failed: count("failed")?,
            prompt_tokens: count("prompt_tokens")?,
            completion_tokens: count("completion_tokens")?,
            cost_usd: cost,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_starts_at_utc_midnight() {
        let midnight = 1_796_083_200; // 2026-12-01T00:00:00Z
        let now = OffsetDateTime::from_unix_timestamp(midnight + 19 * 3600 + 45 * 60 + 10);
        assert_eq!(now.map(day_start_micros).ok(), Some(midnight * 1_000_000));
        assert_eq!(day_label(midnight / 86_400), "2026-12-01");
    }
}
