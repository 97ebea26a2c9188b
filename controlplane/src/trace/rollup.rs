//! Performance records: each closed minute's runs rolled up per tenant into
//! `performance_metrics` — asks by route and status, ask and per-stage latency (p50/p95/p99),
//! replans by trigger, answers from a fallback source — what an admin's observability page
//! reads (Inspector `GetPerformance`) and what RCA's "slower than usual" compares with.
//!
//! A run counts in the minute it finished. Rows have deterministic ids (tenant, minute, name,
//! labels), so replicas rolling up the same minute write the same rows once.

use std::collections::BTreeMap;

use ops_proto::v1::{
    GetPerformanceRequest, GetPerformanceResponse, PerformancePoint, ReplanTrigger, Trace,
};
use prost::Message;
use sqlx::Row;

use super::TraceError;
use crate::storage::{Db, Page, finished_at};

pub const MINUTE_MICROS: i64 = 60_000_000;
/// Latency quantiles recorded per minute.
const QUANTILES: [(&str, f64); 3] = [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)];

/// One performance_metrics row.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub tenant: String,
    pub minute: i64,
    pub name: &'static str,
    pub labels: BTreeMap<&'static str, String>,
    pub value: f64,
    pub unit: &'static str,
}

impl Metric {
    fn id(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{}/{}/{}/{}",
            self.tenant,
            self.minute,
            self.name,
            labels.join(",")
        )
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The metrics of the minute starting at `minute` (unix micros, a whole minute), all tenants.
/// Asks are the runs people made: test runs and RCA analyses are left out.
pub async fn minute(db: &Db, minute: i64) -> Result<Vec<Metric>, TraceError> {
    let end = minute + MINUTE_MICROS;
    // Runs count in the minute they finished.
    let finished = finished_at("");
    let traces = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT trace_id, tenant_id, route, status, duration_ms, replans, data_quality FROM traces \
         WHERE test_mode = FALSE AND mode <> 'rca' AND {finished} >= $1 AND {finished} < $2 \
         AND started_at >= $3"
    )))
    .bind(minute)
    .bind(end)
    // Bounds the scan on the started_at index: no ask runs longer than an hour.
    .bind(minute - 60 * MINUTE_MICROS)
    .fetch_all(db.pool())
    .await?;
    #[derive(Default)]
    struct Tenant {
        asks: BTreeMap<(String, String), u64>,
        latencies: Vec<f64>,
        fallbacks: u64,
        with_replans: Vec<String>,
    }
    let mut tenants: BTreeMap<String, Tenant> = BTreeMap::new();
    for row in &traces {
        let tenant = tenants.entry(row.try_get("tenant_id")?).or_default();
        *tenant
            .asks
            .entry((row.try_get("route")?, row.try_get("status")?))
            .or_default() += 1;
        tenant.latencies.push(row.try_get("duration_ms")?);
        let flags: String = row.try_get("data_quality")?;
        if flags.contains(",fallback_source,") {
            tenant.fallbacks += 1;
        }
        if row.try_get::<i64, _>("replans")? > 0 {
            tenant.with_replans.push(row.try_get("trace_id")?);
        }
    }
    let mut metrics = Vec::new();
    for (name, tenant) in &mut tenants {
        let metric =
            |name_: &'static str, labels: &[(&'static str, String)], value: f64, unit| Metric {
                tenant: name.clone(),
                minute,
                name: name_,
                labels: labels.iter().cloned().collect(),
                value,
                unit,
            };
        for ((route, status), count) in &tenant.asks {
            metrics.push(metric(
                "asks",
                &[("route", route.clone()), ("status", status.clone())],
                *count as f64,
                "count",
            ));
        }
        let total = tenant.latencies.len() as f64;
        tenant.latencies.sort_by(f64::total_cmp);
        for (label, q) in QUANTILES {
            metrics.push(metric(
                "ask_latency_ms",
                &[("quantile", label.to_owned())],
                quantile(&tenant.latencies, q),
                "ms",
            ));
        }
        metrics.push(metric(
            "fallback_rate",
            &[],
            tenant.fallbacks as f64 / total,
            "ratio",
        ));
        for (trigger, count) in replans_by_trigger(db, &tenant.with_replans).await? {
            metrics.push(metric(
                "replans",
                &[("trigger", trigger)],
                count as f64,
                "count",
            ));
        }
    }
    metrics.extend(stage_latencies(db, minute).await?);
    Ok(metrics)
}

/// Replans by trigger, read from the traces that replanned (their events live in the trace).
async fn replans_by_trigger(
    db: &Db,
    trace_ids: &[String],
) -> Result<BTreeMap<String, u64>, TraceError> {
    let mut counts = BTreeMap::new();
    for id in trace_ids {
        let bytes: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT trace FROM traces WHERE trace_id = $1")
                .bind(id)
                .fetch_optional(db.pool())
                .await?;
        let Some(trace) = bytes.and_then(|b| Trace::decode(b.as_slice()).ok()) else {
            continue;
        };
        for event in trace
            .replan_events
            .iter()
            .filter(|e| e.decision == "replan")
        {
            let trigger =
                ReplanTrigger::try_from(event.trigger).unwrap_or(ReplanTrigger::Unspecified);
            *counts
                .entry(super::enum_slug(trigger.as_str_name(), "REPLAN_TRIGGER_"))
                .or_default() += 1;
        }
    }
    Ok(counts)
}

/// Per tenant and stage: the runs of the stage in the minute's asks and their quantiles.
async fn stage_latencies(db: &Db, minute: i64) -> Result<Vec<Metric>, TraceError> {
    let finished = finished_at("t");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT t.tenant_id, s.stage, s.duration_ms FROM traces t \
         JOIN tasks k ON k.trace_id = t.trace_id JOIN subtasks s ON s.task_id = k.task_id \
         WHERE t.test_mode = FALSE AND t.mode <> 'rca' AND {finished} >= $1 AND {finished} < $2 \
         AND t.started_at >= $3"
    )))
    .bind(minute)
    .bind(minute + MINUTE_MICROS)
    .bind(minute - 60 * MINUTE_MICROS)
    .fetch_all(db.pool())
    .await?;
    let mut samples: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for row in &rows {
        samples
            .entry((row.try_get(0)?, row.try_get(1)?))
            .or_default()
            .push(row.try_get(2)?);
    }
    let mut metrics = Vec::new();
    for ((tenant, stage), mut durations) in samples {
        durations.sort_by(f64::total_cmp);
        let mut labels = BTreeMap::from([("stage", stage.clone())]);
        metrics.push(Metric {
            tenant: tenant.clone(),
            minute,
            name: "stage_runs",
            labels: labels.clone(),
            value: durations.len() as f64,
            unit: "count",
        });
        for (label, q) in QUANTILES {
            labels.insert("quantile", label.to_owned());
            metrics.push(Metric {
                tenant: tenant.clone(),
                minute,
                name: "stage_latency_ms",
                labels: labels.clone(),
                value: quantile(&durations, q),
                unit: "ms",
            });
        }
    }
    Ok(metrics)
}

/// Writes a minute's metrics; rows another replica wrote already are left as they are.
pub async fn store(db: &Db, metrics: &[Metric]) -> Result<(), TraceError> {
    let mut conn = db.pool().acquire().await?;
    crate::storage::insert_rows(
        &mut conn,
        "performance_metrics (metric_id, tenant_id, name, value, unit, labels, recorded_at)",
        "ON CONFLICT (metric_id) DO NOTHING",
        7,
        metrics,
        |q, m| {
            let labels: BTreeMap<&str, &str> =
                m.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            q.bind(m.id())
                .bind(&m.tenant)
                .bind(m.name)
                .bind(m.value)
                .bind(m.unit)
                .bind(serde_json::to_string(&labels).unwrap_or_else(|_| "{}".into()))
                .bind(m.minute)
        },
    )
    .await?;
    Ok(())
}

/// The newest minute rolled up (any tenant), if any.
pub async fn last_rolled_minute(db: &Db) -> Result<Option<i64>, TraceError> {
    Ok(sqlx::query_scalar(
        "SELECT MAX(recorded_at) FROM performance_metrics WHERE name = 'ask_latency_ms'",
    )
    .fetch_one(db.pool())
    .await?)
}

const DEFAULT_PAGE: i64 = 1000;
const MAX_PAGE: i64 = 10_000;

/// `Inspector.GetPerformance`: the tenant's points in `[since, until)` (default: the last
/// hour), paged.
pub async fn performance(
    db: &Db,
    tenant: &str,
    req: &GetPerformanceRequest,
) -> Result<GetPerformanceResponse, TraceError> {
    let invalid = |field: &str, message: &str| TraceError::InvalidArgument {
        field: field.to_owned(),
        message: message.to_owned(),
    };
    let until = req
        .until
        .as_ref()
        .map_or_else(crate::storage::unix_micros, ops_proto::convert::micros);
    let since = req
        .since
        .as_ref()
        .map_or(until - 60 * MINUTE_MICROS, ops_proto::convert::micros);
    if since >= until {
        return Err(invalid("since", "must be before until"));
    }
    let page = Page::parse(req.page_size, &req.page_token, DEFAULT_PAGE, MAX_PAGE)
        .map_err(|message| invalid("page_token", message))?;
    let mut points = read(db, tenant, since, until, &req.names, page).await?;
    let next_page_token = page.finish(&mut points);
    Ok(GetPerformanceResponse {
        points,
        next_page_token,
    })
}

/// A tenant's points in `[from, to)`, oldest first, optionally only the `names` given: one
/// `page` (with the row that tells whether another follows).
async fn read(
    db: &Db,
    tenant: &str,
    from: i64,
    to: i64,
    names: &[String],
    page: Page,
) -> Result<Vec<PerformancePoint>, TraceError> {
    let only = if names.is_empty() {
        String::new()
    } else {
        let binds: Vec<String> = (0..names.len()).map(|i| format!("${}", i + 6)).collect();
        format!("AND name IN ({})", binds.join(", "))
    };
    let sql = format!(
        "SELECT name, value, unit, labels, recorded_at FROM performance_metrics \
         WHERE tenant_id = $1 AND recorded_at >= $2 AND recorded_at < $3 {only} \
         ORDER BY recorded_at, name, labels LIMIT $4 OFFSET $5"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(from)
        .bind(to)
        .bind(page.limit())
        .bind(page.offset);
    for name in names {
        query = query.bind(name);
    }
    let rows = query.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|row| {
            let labels: String = row.try_get("labels")?;
            Ok(PerformancePoint {
                minute: Some(crate::registry::timestamp(row.try_get("recorded_at")?)),
                name: row.try_get("name")?,
                labels: serde_json::from_str(&labels).unwrap_or_default(),
                value: row.try_get("value")?,
                unit: row.try_get("unit")?,
            })
        })
        .collect()
}

/// Per stage, the tenant's usual p95 from the rolled-up minutes since `since`: the median of
/// the minutes' p95s, for stages with at least `min_runs` runs in them.
pub async fn usual_stage_p95(
    db: &Db,
    tenant: &str,
    since: i64,
    min_runs: f64,
) -> Result<BTreeMap<String, f64>, TraceError> {
    let rows = sqlx::query(
        "SELECT name, value, labels FROM performance_metrics \
         WHERE tenant_id = $1 AND recorded_at >= $2 AND name IN ('stage_latency_ms', 'stage_runs')",
    )
    .bind(tenant)
    .bind(since)
    .fetch_all(db.pool())
    .await?;
    let mut runs: BTreeMap<String, f64> = BTreeMap::new();
    let mut p95s: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for row in &rows {
        let name: String = row.try_get("name")?;
        let labels: BTreeMap<String, String> =
            serde_json::from_str(&row.try_get::<String, _>("labels")?).unwrap_or_default();
        let Some(stage) = labels.get("stage").cloned() else {
            continue;
        };
        let value: f64 = row.try_get("value")?;
        match (name.as_str(), labels.get("quantile").map(String::as_str)) {
            ("stage_runs", _) => *runs.entry(stage).or_default() += value,
            ("stage_latency_ms", Some("p95")) => p95s.entry(stage).or_default().push(value),
            _ => {}
        }
    }
    Ok(p95s
        .into_iter()
        .filter(|(stage, _)| runs.get(stage).copied().unwrap_or(0.0) >= min_runs)
        .map(|(stage, mut values)| {
            values.sort_by(f64::total_cmp);
            (stage, values[values.len() / 2])
        })
        .collect())
}
