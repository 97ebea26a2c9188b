//! Alert rules per tenant (`alert_configs`) and their evaluation. Each enabled rule is
//! evaluated every interval over what happened since its cursor: the replica that advances the
//! cursor (compare-and-set) delivers the events, so replicas never deliver one event twice.

use std::sync::Arc;
use std::time::Duration;

use ops_proto::convert::timestamp;
use ops_proto::v1::{AlertConfig, AlertDelivery, AlertRule, RegressionRun};
use prost::Message;
use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::webhook::{Target, Webhooks};
use super::{WatchError, invalid};
use crate::context::CallerContext;
use crate::model::refs::validate_name;
use crate::storage::{Db, Page, finished_at, unix_micros};

/// Events newer than this are left for the next evaluation: a trace or a regression run is
/// committed a moment after it finishes, and the cursor must not pass it before then.
const SETTLE_MICROS: i64 = 2_000_000;
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;
/// Every column of `alert_configs`, `enabled` as a number (the Any driver decodes no SQLite
/// booleans).
const SELECT_ALERTS: &str = "SELECT alert_id, tenant_id, name, metric, threshold, window_minutes, webhook_url, secret_ref, state, created_at, cursor_at, \
     CAST(CASE WHEN enabled THEN 1 ELSE 0 END AS BIGINT) AS enabled FROM alert_configs";
/// Trace ids listed in one "fallback source used" payload.
const MAX_LISTED: usize = 20;

/// How alert rules are spelled in storage and payloads: `regression_failed`, …
fn rule_slug(rule: AlertRule) -> String {
    crate::trace::enum_slug(rule.as_str_name(), "ALERT_RULE_")
}

fn rule_from_slug(slug: &str) -> AlertRule {
    AlertRule::from_str_name(&format!("ALERT_RULE_{}", slug.to_uppercase())).unwrap_or_default()
}

/// A stored alert with its evaluation state.
#[derive(Debug, Clone)]
struct Stored {
    config: AlertConfig,
    tenant: String,
    cursor_at: i64,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Stored, WatchError> {
    let rule: String = row.try_get("metric")?;
    Ok(Stored {
        config: AlertConfig {
            id: row.try_get("alert_id")?,
            name: row.try_get("name")?,
            rule: rule_from_slug(&rule) as i32,
            threshold_percent: row.try_get("threshold")?,
            window_minutes: u32::try_from(row.try_get::<i64, _>("window_minutes")?).unwrap_or(0),
            webhook_url: row.try_get("webhook_url")?,
            secret_ref: row.try_get("secret_ref")?,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            state: row.try_get("state")?,
            created_at: Some(crate::registry::timestamp(row.try_get("created_at")?)),
        },
        tenant: row.try_get("tenant_id")?,
        cursor_at: row.try_get("cursor_at")?,
    })
}

fn delivery_from_row(row: &sqlx::any::AnyRow) -> Result<AlertDelivery, WatchError> {
    let finished: Option<i64> = row.try_get("finished_at")?;
    Ok(AlertDelivery {
        id: row.try_get("delivery_id")?,
        alert_id: row.try_get("alert_id")?,
        event: row.try_get("event")?,
        payload: row.try_get("payload")?,
        status: row.try_get("status")?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(0),
        http_status: u32::try_from(row.try_get::<i64, _>("http_status")?).unwrap_or(0),
        last_error: row.try_get("last_error")?,
        created_at: Some(crate::registry::timestamp(row.try_get("created_at")?)),
        finished_at: finished.map(crate::registry::timestamp),
    })
}

/// Checks a new alert; fills the defaults (error-rate window 5 minutes).
fn checked(mut alert: AlertConfig) -> Result<AlertConfig, WatchError> {
    validate_name(&alert.name).map_err(|message| invalid("alert.name", message))?;
    let rule = AlertRule::try_from(alert.rule).unwrap_or(AlertRule::Unspecified);
    if rule == AlertRule::Unspecified {
        return Err(invalid(
            "alert.rule",
            "set the rule: ALERT_RULE_REGRESSION_FAILED, ALERT_RULE_ASK_ERROR_RATE or ALERT_RULE_FALLBACK_SOURCE_USED",
        ));
    }
    if rule == AlertRule::AskErrorRate {
        if !(alert.threshold_percent > 0.0 && alert.threshold_percent <= 100.0) {
            return Err(invalid(
                "alert.threshold_percent",
                format!(
                    "the share of failed asks that fires the alert must be in (0, 100]; got {}",
                    alert.threshold_percent
                ),
            ));
        }
        if alert.window_minutes == 0 {
            alert.window_minutes = 5;
        }
        if alert.window_minutes > 1440 {
            return Err(invalid(
                "alert.window_minutes",
                format!("at most 1440 (a day); got {}", alert.window_minutes),
            ));
        }
    }
    match reqwest::Url::parse(&alert.webhook_url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
        Ok(_) | Err(_) => {
            return Err(invalid(
                "alert.webhook_url",
                "expected an http:// or https:// URL with a host",
            ));
        }
    }
    if !alert.secret_ref.is_empty() && !crate::secrets::is_reference(&alert.secret_ref) {
        return Err(invalid(
            "alert.secret_ref",
            "expected a reference, env:NAME or file:PATH, never the secret itself",
        ));
    }
    Ok(alert)
}

/// The tenant-scoped alert store behind the Alerts service.
#[derive(Debug, Clone)]
pub struct AlertStore {
    db: Db,
}

impl AlertStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// A new alert counts only what happens after it is created.
    pub async fn create(
        &self,
        ctx: &CallerContext,
        alert: Option<AlertConfig>,
    ) -> Result<AlertConfig, WatchError> {
        let alert = checked(alert.ok_or_else(|| invalid("alert", "the alert is missing"))?)?;
        let now = unix_micros();
        let alert = AlertConfig {
            id: uuid::Uuid::new_v4().to_string(),
            enabled: true,
            state: "ok".into(),
            created_at: Some(crate::registry::timestamp(now)),
            ..alert
        };
        let rule = AlertRule::try_from(alert.rule).unwrap_or(AlertRule::Unspecified);
        let inserted = sqlx::query(
            "INSERT INTO alert_configs (alert_id, tenant_id, name, metric, condition, threshold, enabled, created_at, webhook_url, window_minutes, secret_ref, state, cursor_at) \
             VALUES ($1, $2, $3, $4, '>', $5, TRUE, $6, $7, $8, $9, 'ok', $10)",
        )
        .bind(&alert.id)
        .bind(&ctx.tenant)
        .bind(&alert.name)
        .bind(rule_slug(rule))
        .bind(alert.threshold_percent)
        .bind(now)
        .bind(&alert.webhook_url)
        .bind(i64::from(alert.window_minutes))
        .bind(&alert.secret_ref)
        .bind(now)
        .execute(self.db.pool())
        .await;
        match inserted {
            Ok(_) => Ok(alert),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(WatchError::AlreadyExists(format!(
                    "an alert named {:?} already exists in tenant {}",
                    alert.name, ctx.tenant
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list(
        &self,
        ctx: &CallerContext,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<AlertConfig>, String), WatchError> {
        let page = page(page_size, page_token)?;
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_ALERTS} WHERE tenant_id = $1 ORDER BY name LIMIT $2 OFFSET $3"
        )))
        .bind(&ctx.tenant)
        .bind(page.limit())
        .bind(page.offset)
        .fetch_all(self.db.pool())
        .await?;
        let next = page.finish(&mut rows);
        let alerts = rows
            .iter()
            .map(|r| from_row(r).map(|s| s.config))
            .collect::<Result<_, _>>()?;
        Ok((alerts, next))
    }

    /// Turning an alert back on starts it from now: what happened while it was off is not
    /// delivered late.
    pub async fn set_enabled(
        &self,
        ctx: &CallerContext,
        id: &str,
        enabled: bool,
    ) -> Result<AlertConfig, WatchError> {
        let updated = sqlx::query(
            "UPDATE alert_configs SET enabled = $1, cursor_at = $2, state = 'ok' WHERE tenant_id = $3 AND alert_id = $4",
        )
        .bind(enabled)
        .bind(unix_micros())
        .bind(&ctx.tenant)
        .bind(id)
        .execute(self.db.pool())
        .await?;
        if updated.rows_affected() == 0 {
            return Err(self.missing(ctx, id));
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_ALERTS} WHERE tenant_id = $1 AND alert_id = $2"
        )))
        .bind(&ctx.tenant)
        .bind(id)
        .fetch_one(self.db.pool())
        .await?;
        Ok(from_row(&row)?.config)
    }

    pub async fn delete(&self, ctx: &CallerContext, id: &str) -> Result<(), WatchError> {
        let deleted =
            sqlx::query("DELETE FROM alert_configs WHERE tenant_id = $1 AND alert_id = $2")
                .bind(&ctx.tenant)
                .bind(id)
                .execute(self.db.pool())
                .await?;
        if deleted.rows_affected() == 0 {
            return Err(self.missing(ctx, id));
        }
        Ok(())
    }

    /// Newest first; `alert_id` empty lists every alert's deliveries.
    pub async fn deliveries(
        &self,
        ctx: &CallerContext,
        alert_id: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<AlertDelivery>, String), WatchError> {
        let page = page(page_size, page_token)?;
        let mut rows = sqlx::query(
            "SELECT * FROM alert_deliveries WHERE tenant_id = $1 AND ($4 = '' OR alert_id = $4) \
             ORDER BY created_at DESC, delivery_id LIMIT $2 OFFSET $3",
        )
        .bind(&ctx.tenant)
        .bind(page.limit())
        .bind(page.offset)
        .bind(alert_id)
        .fetch_all(self.db.pool())
        .await?;
        let next = page.finish(&mut rows);
        let deliveries = rows
            .iter()
            .map(delivery_from_row)
            .collect::<Result<_, _>>()?;
        Ok((deliveries, next))
    }

    fn missing(&self, ctx: &CallerContext, id: &str) -> WatchError {
        WatchError::NotFound(format!(
            "alert {id:?} does not exist in tenant {}",
            ctx.tenant
        ))
    }
}

fn page(page_size: u32, page_token: &str) -> Result<Page, WatchError> {
    Page::parse(page_size, page_token, DEFAULT_PAGE, MAX_PAGE)
        .map_err(|message| invalid("page_token", message))
}

/// Evaluates every enabled alert each `interval` until `stop`.
pub async fn run(db: Db, webhooks: Arc<Webhooks>, interval: Duration, stop: CancellationToken) {
    let mut deliveries = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
        match evaluate(&db, unix_micros() - SETTLE_MICROS).await {
            Ok(due) => {
                for Due {
                    tenant,
                    alert,
                    event,
                } in due
                {
                    let webhooks = webhooks.clone();
                    // Deliveries retry for a while: they must not hold up the next evaluation.
                    deliveries.spawn(async move {
                        let target = Target {
                            tenant: &tenant,
                            alert_id: &alert.id,
                            url: &alert.webhook_url,
                            secret_ref: &alert.secret_ref,
                        };
                        if let Err(error) = webhooks.deliver(&target, &event.name, event.payload).await {
                            tracing::error!(alert = %alert.id, %error, "alert delivery not recorded");
                        }
                    });
                }
            }
            Err(error) => tracing::error!(%error, "alert evaluation failed"),
        }
        while deliveries.try_join_next().is_some() {}
    }
    deliveries.shutdown().await;
}

/// An event to deliver for an alert.
#[derive(Debug, Clone)]
pub struct Due {
    pub tenant: String,
    pub alert: AlertConfig,
    pub event: Event,
}

/// One event to deliver.
#[derive(Debug, Clone)]
pub struct Event {
    /// The rule's slug, with `.resolved` when a firing alert is back to normal.
    pub name: String,
    pub payload: serde_json::Value,
}

/// The events of every enabled alert up to `until`, each claimed by advancing the alert's
/// cursor; an alert another replica evaluated meanwhile is skipped.
pub async fn evaluate(db: &Db, until: i64) -> Result<Vec<Due>, WatchError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT_ALERTS} WHERE enabled = TRUE"
    )))
    .fetch_all(db.pool())
    .await?;
    let mut due = Vec::new();
    for row in &rows {
        let alert = from_row(row)?;
        if alert.cursor_at >= until {
            continue;
        }
        let rule = AlertRule::try_from(alert.config.rule).unwrap_or(AlertRule::Unspecified);
        let (events, state) = match rule {
            AlertRule::RegressionFailed => (regression_failures(db, &alert, until).await?, None),
            AlertRule::FallbackSourceUsed => (fallback_sources(db, &alert, until).await?, None),
            AlertRule::AskErrorRate => {
                let (event, state) = error_rate(db, &alert, until).await?;
                (event.into_iter().collect(), Some(state))
            }
            AlertRule::Unspecified => continue,
        };
        let state = state.unwrap_or_else(|| alert.config.state.clone());
        let claimed = sqlx::query(
            "UPDATE alert_configs SET cursor_at = $1, state = $2 WHERE alert_id = $3 AND cursor_at = $4",
        )
        .bind(until)
        .bind(&state)
        .bind(&alert.config.id)
        .bind(alert.cursor_at)
        .execute(db.pool())
        .await?;
        if claimed.rows_affected() == 1 {
            due.extend(events.into_iter().map(|event| Due {
                tenant: alert.tenant.clone(),
                alert: alert.config.clone(),
                event,
            }));
        }
    }
    Ok(due)
}

fn envelope(
    alert: &Stored,
    event: &str,
    state: &str,
    summary: String,
    details: serde_json::Value,
) -> Event {
    let rule = AlertRule::try_from(alert.config.rule).unwrap_or(AlertRule::Unspecified);
    Event {
        name: event.to_owned(),
        payload: json!({
            "alert": {"id": alert.config.id, "name": alert.config.name, "rule": rule_slug(rule)},
            "tenant": alert.tenant,
            "event": event,
            "state": state,
            "summary": summary,
            "details": details,
            "occurred_at": ops_proto::convert::rfc3339(&timestamp(OffsetDateTime::now_utc())),
        }),
    }
}

/// One event per manual or scheduled run, finished since the cursor, that failed a golden
/// query. Publish-gate runs answer their caller, who already saw the refusal.
async fn regression_failures(
    db: &Db,
    alert: &Stored,
    until: i64,
) -> Result<Vec<Event>, WatchError> {
    let finished = finished_at("");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT run, run_trigger FROM regression_runs WHERE tenant_id = $1 AND run_trigger <> 'publish_gate' \
         AND {finished} > $2 AND {finished} <= $3 ORDER BY started_at"
    )))
    .bind(&alert.tenant)
    .bind(alert.cursor_at)
    .bind(until)
    .fetch_all(db.pool())
    .await?;
    let mut events = Vec::new();
    for row in &rows {
        let bytes: Vec<u8> = row.try_get("run")?;
        let trigger: String = row.try_get("run_trigger")?;
        let run = RegressionRun::decode(bytes.as_slice()).map_err(|e| {
            WatchError::Internal(format!("a stored regression run does not decode: {e}"))
        })?;
        if run.failed == 0 {
            continue;
        }
        let failed: Vec<_> = run
            .results
            .iter()
            .filter(|r| r.judgment == ops_proto::v1::Judgment::Fail as i32)
            .collect();
        let names: Vec<&str> = failed
            .iter()
            .map(|r| r.golden_query_name.as_str())
            .collect();
        let failing: Vec<serde_json::Value> = failed
            .iter()
            .map(|r| {
                json!({
                    "golden_query_id": r.golden_query_id,
                    "golden_query": r.golden_query_name,
                    "reason": r.verdict_reason,
                    "diff": r.diff_summary,
                    "trace_id": r.trace_id,
                })
            })
            .collect();
        let summary = format!(
            "Regression run {} ({trigger}) failed {} of {} golden queries: {}",
            run.id,
            run.failed,
            run.results.len(),
            names.join(", ")
        );
        events.push(envelope(
            alert,
            "regression_failed",
            "firing",
            summary,
            json!({
                "run_id": run.id,
                "trigger": trigger,
                "passed": run.passed,
                "warnings": run.warnings,
                "failed": run.failed,
                "asset_overrides": run.asset_overrides,
                "failing": failing,
            }),
        ));
    }
    Ok(events)
}

/// One event for the answers since the cursor that came from a fallback source.
async fn fallback_sources(db: &Db, alert: &Stored, until: i64) -> Result<Vec<Event>, WatchError> {
    let finished = finished_at("");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT trace_id, question FROM traces WHERE tenant_id = $1 AND test_mode = FALSE \
         AND data_quality LIKE '%,fallback_source,%' \
         AND {finished} > $2 AND {finished} <= $3 ORDER BY started_at"
    )))
    .bind(&alert.tenant)
    .bind(alert.cursor_at)
    .bind(until)
    .fetch_all(db.pool())
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let traces: Vec<serde_json::Value> = rows
        .iter()
        .take(MAX_LISTED)
        .map(|r| {
            Ok(json!({
                "trace_id": r.try_get::<String, _>("trace_id")?,
                "question": r.try_get::<String, _>("question")?,
            }))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    let summary = format!(
        "{} answer{} came from a fallback source because the primary source failed",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    Ok(vec![envelope(
        alert,
        "fallback_source_used",
        "firing",
        summary,
        json!({"count": rows.len(), "traces": traces}),
    )])
}

/// The share of failed asks over the window ending at `until`: an event when the alert
/// crosses the threshold (firing) or falls back under it (resolved), and the new state.
async fn error_rate(
    db: &Db,
    alert: &Stored,
    until: i64,
) -> Result<(Option<Event>, String), WatchError> {
    let window = i64::from(alert.config.window_minutes.max(1)) * 60_000_000;
    let row = sqlx::query(
        "SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0) AS failed \
         FROM traces WHERE tenant_id = $1 AND test_mode = FALSE AND parent_trace_id IS NULL \
         AND mode <> 'rca' AND started_at > $2 AND started_at <= $3",
    )
    .bind(&alert.tenant)
    .bind(until - window)
    .bind(until)
    .fetch_one(db.pool())
    .await?;
    let total: i64 = row.try_get("total")?;
    let failed: i64 = row.try_get("failed")?;
    let share = if total == 0 {
        0.0
    } else {
        failed as f64 * 100.0 / total as f64
    };
    let firing = total > 0 && share > alert.config.threshold_percent;
    let was_firing = alert.config.state == "firing";
    let details = json!({
        "asks": total,
        "failed": failed,
        "error_rate_percent": share,
        "threshold_percent": alert.config.threshold_percent,
        "window_minutes": alert.config.window_minutes,
    });
    let event = match (firing, was_firing) {
        (true, false) => Some(envelope(
            alert,
            "ask_error_rate",
            "firing",
            format!(
                "{share:.1}% of {total} asks failed in the last {} minutes (threshold {}%)",
                alert.config.window_minutes, alert.config.threshold_percent
            ),
            details,
        )),
        (false, true) => Some(envelope(
            alert,
            "ask_error_rate.resolved",
            "resolved",
            format!(
                "The ask error rate is back to {share:.1}% of {total} asks in the last {} minutes (threshold {}%)",
                alert.config.window_minutes, alert.config.threshold_percent
            ),
            details,
        )),
        _ => None,
    };
    Ok((event, if firing { "firing" } else { "ok" }.to_owned()))
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    fn alert(rule: AlertRule) -> AlertConfig {
        AlertConfig {
            name: "ops-oncall".into(),
            rule: rule as i32,
            webhook_url: "https://hooks.example.com/ops".into(),
            ..Default::default()
        }
    }

    fn field_of(result: Result<AlertConfig, WatchError>) -> String {
        match result {
            Err(WatchError::InvalidArgument { field, .. }) => field,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn alerts_are_checked_field_by_field() {
        assert_eq!(
            field_of(checked(alert(AlertRule::Unspecified))),
            "alert.rule"
        );
        assert_eq!(
            field_of(checked(alert(AlertRule::AskErrorRate))),
            "alert.threshold_percent"
        );
        let mut bad_url = alert(AlertRule::RegressionFailed);
        bad_url.webhook_url = "ftp://hooks.example.com".into();
        assert_eq!(field_of(checked(bad_url)), "alert.webhook_url");
        let mut literal_secret = alert(AlertRule::RegressionFailed);
        literal_secret.secret_ref = "hunter2".into();
        assert_eq!(field_of(checked(literal_secret)), "alert.secret_ref");
        let mut rate = alert(AlertRule::AskErrorRate);
        rate.threshold_percent = 10.0;
        let rate = checked(rate).unwrap_or_default();
        assert_eq!(
            rate.window_minutes, 5,
            "the window defaults to five minutes"
        );
    }

    const SECOND: i64 = 1_000_000;

    async fn trace_row(db: &Db, id: &str, status: &str, at: i64, flags: &str) {
        sqlx::query(
            "INSERT INTO traces (trace_id, tenant_id, principal, question, mode, route, status, started_at, duration_ms, trace, data_quality) \
             VALUES ($1, 'acme', 'tester', 'q', 'all', 'direct', $2, $3, 10.0, $4, $5)",
        )
        .bind(id)
        .bind(status)
        .bind(at)
        .bind(Vec::<u8>::new())
        .bind(flags)
        .execute(db.pool())
        .await
        .unwrap_or_else(|e| panic!("trace row: {e}"));
    }

    async fn events_until(db: &Db, until: i64) -> Vec<String> {
        evaluate(db, until)
            .await
            .unwrap_or_else(|e| panic!("evaluate: {e}"))
            .into_iter()
            .map(|d| {
                format!(
                    "{} {}",
                    d.event.name,
                    d.event.payload["summary"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn the_error_rate_fires_once_and_resolves_when_the_window_moves_on() {
        let db = Db::open("sqlite::memory:", 1, None)
            .await
            .unwrap_or_else(|e| panic!("db: {e}"));
        let store = AlertStore::new(db.clone());
        let ctx = CallerContext::new("acme", "admin");
        let mut rate = alert(AlertRule::AskErrorRate);
        rate.threshold_percent = 50.0;
        rate.window_minutes = 1;
        store
            .create(&ctx, Some(rate))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let start = unix_micros();
        trace_row(&db, "t1", "error", start + SECOND, "").await;
        trace_row(&db, "t2", "error", start + 2 * SECOND, "").await;
        trace_row(&db, "t3", "success", start + 3 * SECOND, "").await;

        let fired = events_until(&db, start + 10 * SECOND).await;
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert!(
            fired[0].starts_with("ask_error_rate 66.7% of 3 asks failed"),
            "{fired:?}"
        );
        assert!(
            events_until(&db, start + 20 * SECOND).await.is_empty(),
            "still firing: not delivered again"
        );
        assert!(
            events_until(&db, start + 20 * SECOND).await.is_empty(),
            "an evaluation already claimed (another replica's) is skipped"
        );
        let resolved = events_until(&db, start + 90 * SECOND).await;
        assert_eq!(resolved.len(), 1, "{resolved:?}");
        assert!(
            resolved[0].starts_with("ask_error_rate.resolved"),
            "{resolved:?}"
        );
    }

    #[tokio::test]
    async fn answers_from_a_fallback_source_are_reported_once() {
        let db = Db::open("sqlite::memory:", 1, None)
            .await
            .unwrap_or_else(|e| panic!("db: {e}"));
        let store = AlertStore::new(db.clone());
        let ctx = CallerContext::new("acme", "admin");
        store
            .create(&ctx, Some(alert(AlertRule::FallbackSourceUsed)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let start = unix_micros();
        trace_row(&db, "primary", "success", start + SECOND, ",truncated,").await;
        trace_row(
            &db,
            "fallback",
            "success",
            start + 2 * SECOND,
            ",fallback_source,",
        )
        .await;
        let fired = events_until(&db, start + 10 * SECOND).await;
        assert_eq!(
            fired,
            [
                "fallback_source_used 1 answer came from a fallback source because the primary source failed"
            ]
        );
        assert!(events_until(&db, start + 20 * SECOND).await.is_empty());
    }
}
