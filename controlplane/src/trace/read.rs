//! Reading traces back for the Inspector: one trace by id, or a filtered page of summaries,
//! always within the caller's tenant.

use ops_proto::convert::micros;
use ops_proto::v1::{
    ListTracesRequest, ListTracesResponse, Route, Trace, TraceStatus, TraceSummary,
};
use prost::Message;
use sqlx::Row;

use crate::model::refs::{AssetReference, VersionSelector, type_slug};
use crate::storage::{Bound, Db, Filtered, Page};

/// Failures of trace reads.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The request is malformed; `field` names the request field.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("internal: {0}")]
    Internal(String),
}

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

/// One trace of `tenant`; another tenant's id is "not found", never "forbidden".
pub async fn get(db: &Db, tenant: &str, trace_id: &str) -> Result<Trace, TraceError> {
    if uuid::Uuid::parse_str(trace_id).is_err() {
        return Err(TraceError::InvalidArgument {
            field: "trace_id".into(),
            message: format!("{trace_id:?} is not a trace id: expected a UUID"),
        });
    }
    let row = sqlx::query("SELECT trace FROM traces WHERE trace_id = $1 AND tenant_id = $2")
        .bind(trace_id)
        .bind(tenant)
        .fetch_optional(db.pool())
        .await?
        .ok_or_else(|| {
            TraceError::NotFound(format!(
                "trace {trace_id} does not exist in tenant {tenant}"
            ))
        })?;
    let bytes: Vec<u8> = row.try_get(0)?;
    Trace::decode(bytes.as_slice())
        .map_err(|e| TraceError::Internal(format!("trace {trace_id} does not decode: {e}")))
}

/// Newest first; the page token is the offset of the next page.
pub async fn list(
    db: &Db,
    tenant: &str,
    req: &ListTracesRequest,
) -> Result<ListTracesResponse, TraceError> {
    let page =
        Page::parse(req.page_size, &req.page_token, DEFAULT_PAGE, MAX_PAGE).map_err(|message| {
            TraceError::InvalidArgument {
                field: "page_token".into(),
                message: message.into(),
            }
        })?;
    let mut q = Filtered {
        sql: String::from(
            "SELECT t.trace_id, t.parent_trace_id, t.question, t.route, t.status, t.started_at, t.duration_ms, t.replans, t.answer FROM traces t WHERE t.tenant_id = $1",
        ),
        binds: vec![Bound::Text(tenant.to_owned())],
    };
    if let Ok(route) = Route::try_from(req.route)
        && route != Route::Unspecified
    {
        let name = super::enum_slug(route.as_str_name(), "ROUTE_");
        q.push(" AND t.route = ?", Bound::Text(name));
    }
    if let Ok(status) = TraceStatus::try_from(req.status)
        && status != TraceStatus::Unspecified
    {
        let name = super::writer_status(status as i32);
        q.push(" AND t.status = ?", Bound::Text(name));
    }
    if req.has_replans {
        q.sql.push_str(" AND t.replans > 0");
    }
    if !req.asset.is_empty() {
        let asset =
            AssetReference::parse(&req.asset).map_err(|message| TraceError::InvalidArgument {
                field: "asset".into(),
                message,
            })?;
        q.push(
            " AND EXISTS (SELECT 1 FROM trace_assets a WHERE a.trace_id = t.trace_id AND a.asset_type = ?",
            Bound::Text(type_slug(asset.asset_type).to_owned()),
        );
        q.push(" AND a.name = ?", Bound::Text(asset.name.clone()));
        if let VersionSelector::Exact(v) = asset.version {
            q.push(" AND a.version = ?", Bound::Number(i64::from(v)));
        }
        q.sql.push(')');
    }
    if let Some(rating) = ops_proto::v1::FeedbackRating::try_from(req.feedback)
        .ok()
        .and_then(super::feedback::rating_slug)
    {
        q.push(
            " AND EXISTS (SELECT 1 FROM user_feedback f WHERE f.tenant_id = t.tenant_id AND f.trace_id = t.trace_id AND f.rating = ?)",
            Bound::Text(rating),
        );
    }
    if let Some(since) = &req.since {
        q.push(" AND t.started_at >= ?", Bound::Number(micros(since)));
    }
    if let Some(until) = &req.until {
        q.push(" AND t.started_at < ?", Bound::Number(micros(until)));
    }
    q.push(
        " ORDER BY t.started_at DESC, t.trace_id LIMIT ?",
        Bound::Number(page.limit()),
    );
    q.push(" OFFSET ?", Bound::Number(page.offset));
    let mut rows = q.query().fetch_all(db.pool()).await?;
    let next_page_token = page.finish(&mut rows);
    let traces = rows
        .iter()
        .map(|r| -> Result<TraceSummary, sqlx::Error> {
            let route: String = r.try_get(3)?;
            let status: String = r.try_get(4)?;
            let started: i64 = r.try_get(5)?;
            Ok(TraceSummary {
                trace_id: r.try_get(0)?,
                parent_trace_id: r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
                question: r.try_get(2)?,
                route: Route::from_str_name(&format!("ROUTE_{}", route.to_uppercase()))
                    .unwrap_or_default() as i32,
                status: TraceStatus::from_str_name(&format!(
                    "TRACE_STATUS_{}",
                    status.to_uppercase()
                ))
                .unwrap_or_default() as i32,
                started_at: Some(crate::registry::timestamp(started)),
                duration_ms: r.try_get(6)?,
                replans: u32::try_from(r.try_get::<i64, _>(7)?).unwrap_or(0),
                answer: r.try_get(8)?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ListTracesResponse {
        traces,
        next_page_token,
    })
}

/// Stage timings the tenant's recent p95 is taken over (newest first).
const RECENT_STAGE_RUNS: i64 = 2000;

/// The tenant's p95 duration per stage over its most recent runs (the orchestration mirror's
/// subtasks), keyed by the `Stage` number. Stages with fewer than 20 runs are left out: too
/// few to call anything unusual.
pub async fn recent_stage_p95(
    db: &Db,
    tenant: &str,
) -> Result<std::collections::BTreeMap<i32, f64>, TraceError> {
    // The per-minute records of the last hour first (the median minute's p95 per stage);
    // without them (a new tenant, no minute rolled up yet), the last stage runs themselves.
    let since = crate::storage::unix_micros() - 60 * super::rollup::MINUTE_MICROS;
    let usual = super::rollup::usual_stage_p95(db, tenant, since, 20.0).await?;
    if !usual.is_empty() {
        return Ok(usual
            .into_iter()
            .filter_map(|(slug, p95)| {
                crate::model::refs::parse_stage_slug(&slug).map(|stage| (stage as i32, p95))
            })
            .collect());
    }
    let rows: Vec<(String, f64)> = sqlx::query_as(
        "SELECT stage, duration_ms FROM subtasks WHERE tenant_id = $1 ORDER BY started_at DESC LIMIT $2",
    )
    .bind(tenant)
    .bind(RECENT_STAGE_RUNS)
    .fetch_all(db.pool())
    .await?;
    let mut by_stage: std::collections::BTreeMap<i32, Vec<f64>> = Default::default();
    for (slug, ms) in rows {
        if let Some(stage) = crate::model::refs::parse_stage_slug(&slug) {
            by_stage.entry(stage as i32).or_default().push(ms);
        }
    }
    Ok(by_stage
        .into_iter()
        .filter(|(_, samples)| samples.len() >= 20)
        .map(|(stage, mut samples)| {
            samples.sort_by(f64::total_cmp);
            let index = ((samples.len() - 1) as f64 * 0.95).round() as usize;
            (stage, samples[index.min(samples.len() - 1)])
        })
        .collect())
}
