//! The `audit_log` table: writes, the filtered listing (newest first, paged by position so
//! records written meanwhile neither repeat nor skip a row) and retention.

use ops_proto::convert::{enum_slug, from_micros, micros};
use ops_proto::v1::{AuditKind, AuditOutcome, AuditRecord, ListAuditRecordsRequest};
use sqlx::Row;

use crate::storage::{Bound, Db, Filtered, insert_rows};

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
}

fn invalid(field: &str, message: impl Into<String>) -> AuditError {
    AuditError::InvalidArgument {
        field: field.into(),
        message: message.into(),
    }
}

fn kind_slug(kind: i32) -> String {
    enum_slug(
        AuditKind::try_from(kind).unwrap_or_default().as_str_name(),
        "AUDIT_KIND_",
    )
}

fn outcome_slug(outcome: i32) -> String {
    enum_slug(
        AuditOutcome::try_from(outcome)
            .unwrap_or_default()
            .as_str_name(),
        "AUDIT_OUTCOME_",
    )
}

/// Writes `records` on `conn` (inside the caller's transaction).
pub async fn insert(
    conn: &mut sqlx::AnyConnection,
    records: &[AuditRecord],
) -> Result<(), sqlx::Error> {
    insert_rows(
        conn,
        "audit_log (audit_id, tenant_id, at_micros, kind, outcome, principal, rpc, code, reason, route, status, violations, trace_id, target)",
        "",
        14,
        records,
        |q, r| {
            q.bind(&r.id)
                .bind(&r.tenant)
                .bind(r.at.as_ref().map_or(0, micros))
                .bind(kind_slug(r.kind))
                .bind(outcome_slug(r.outcome))
                .bind(&r.principal)
                .bind(&r.rpc)
                .bind(&r.code)
                .bind(&r.reason)
                .bind(&r.route)
                .bind(&r.status)
                .bind(r.violations.join(","))
                .bind(&r.trace_id)
                .bind(&r.target)
        },
    )
    .await
}

/// A page token: the position (time, id) of the last record handed out.
fn parse_token(token: &str) -> Result<Option<(i64, String)>, AuditError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || invalid("page_token", crate::storage::PAGE_TOKEN_MESSAGE.to_owned());
    let (at, id) = token.split_once('_').ok_or_else(bad)?;
    let at: i64 = at.parse().map_err(|_| bad())?;
    if id.is_empty() || id.len() > 64 {
        return Err(bad());
    }
    Ok(Some((at, id.to_owned())))
}

/// The tenant's records matching `request`, newest first, and the next page's token.
pub async fn list(
    db: &Db,
    tenant: &str,
    request: &ListAuditRecordsRequest,
) -> Result<(Vec<AuditRecord>, String), AuditError> {
    let size = match i64::from(request.page_size) {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    };
    let mut q = Filtered {
        sql: "SELECT audit_id, tenant_id, at_micros, kind, outcome, principal, rpc, code, reason, route, status, violations, trace_id, target FROM audit_log WHERE tenant_id = $1".to_owned(),
        binds: vec![Bound::Text(tenant.to_owned())],
    };
    if !request.principal.is_empty() {
        q.push(" AND principal = ?", Bound::Text(request.principal.clone()));
    }
    match AuditKind::try_from(request.kind) {
        Ok(AuditKind::Unspecified) => {}
        Ok(_) => q.push(" AND kind = ?", Bound::Text(kind_slug(request.kind))),
        Err(_) => {
            return Err(invalid(
                "kind",
                format!(
                    "{} is not an AuditKind: expected ASK, DENIED or CHANGE",
                    request.kind
                ),
            ));
        }
    }
    match AuditOutcome::try_from(request.outcome) {
        Ok(AuditOutcome::Unspecified) => {}
        Ok(_) => q.push(
            " AND outcome = ?",
            Bound::Text(outcome_slug(request.outcome)),
        ),
        Err(_) => {
            return Err(invalid(
                "outcome",
                format!(
                    "{} is not an AuditOutcome: expected OK, REJECTED, FAILED or DENIED",
                    request.outcome
                ),
            ));
        }
    }
    if let Some(since) = &request.since {
        q.push(" AND at_micros >= ?", Bound::Number(micros(since)));
    }
    if let Some(until) = &request.until {
        q.push(" AND at_micros < ?", Bound::Number(micros(until)));
    }
    if let Some((at, id)) = parse_token(&request.page_token)? {
        q.push(" AND (at_micros < ?", Bound::Number(at));
        q.push(" OR (at_micros = ?", Bound::Number(at));
        q.push(" AND audit_id < ?))", Bound::Text(id));
    }
    q.push(
        " ORDER BY at_micros DESC, audit_id DESC LIMIT ?",
        Bound::Number(size + 1),
    );
    let rows = q.query().fetch_all(db.pool()).await?;
    let mut records = rows.iter().map(read).collect::<Result<Vec<_>, _>>()?;
    let next = if records.len() as i64 > size {
        records.truncate(size as usize);
        records
            .last()
            .map(|r| format!("{}_{}", r.at.as_ref().map_or(0, micros), r.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok((records, next))
}

fn read(row: &sqlx::any::AnyRow) -> Result<AuditRecord, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let outcome: String = row.try_get("outcome")?;
    let violations: String = row.try_get("violations")?;
    Ok(AuditRecord {
        id: row.try_get("audit_id")?,
        at: Some(from_micros(row.try_get("at_micros")?)),
        kind: AuditKind::from_str_name(&format!("AUDIT_KIND_{}", kind.to_uppercase()))
            .unwrap_or_default() as i32,
        outcome: AuditOutcome::from_str_name(&format!("AUDIT_OUTCOME_{}", outcome.to_uppercase()))
            .unwrap_or_default() as i32,
        tenant: row.try_get("tenant_id")?,
        principal: row.try_get("principal")?,
        rpc: row.try_get("rpc")?,
        code: row.try_get("code")?,
        reason: row.try_get("reason")?,
        route: row.try_get("route")?,
        status: row.try_get("status")?,
        violations: violations
            .split(',')
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect(),
        trace_id: row.try_get("trace_id")?,
        target: row.try_get("target")?,
    })
}

/// Deletes the tenant's records older than `days` (0: none). Returns how many went.
pub async fn apply_retention(
    db: &Db,
    tenant: &str,
    days: u32,
    now_micros: i64,
) -> Result<u64, sqlx::Error> {
    if days == 0 {
        return Ok(0);
    }
    let cutoff = now_micros - i64::from(days) * 86_400 * 1_000_000;
    let mut tx = db.begin_write().await?;
    let removed = sqlx::query("DELETE FROM audit_log WHERE tenant_id = $1 AND at_micros < $2")
        .bind(tenant)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // The LLM usage log is an account of the same calls: it is kept as long.
    sqlx::query("DELETE FROM llm_usage_log WHERE tenant_id = $1 AND created_at < $2")
        .bind(tenant)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{record, with_status};

    async fn db() -> Result<Db, Box<dyn std::error::Error>> {
        Ok(Db::open("sqlite::memory:", 1, None).await?)
    }

    fn at(mut r: AuditRecord, micros: i64) -> AuditRecord {
        r.at = Some(from_micros(micros));
        r
    }

    #[tokio::test]
    async fn listing_filters_pages_by_position_and_keeps_tenants_apart()
    -> Result<(), Box<dyn std::error::Error>> {
        let db = db().await?;
        let mut records = Vec::new();
        for i in 0..5 {
            records.push(at(
                record(
                    AuditKind::Ask,
                    AuditOutcome::Ok,
                    "acme",
                    "kim",
                    "/ops.v1.OpsService/Ask",
                ),
                1_000 + i,
            ));
        }
        records.push(at(
            with_status(
                record(
                    AuditKind::Denied,
                    AuditOutcome::Denied,
                    "acme",
                    "lee",
                    "ops.v1.AssetRegistry/PublishAsset",
                ),
                "PERMISSION_DENIED",
                "needs role publisher",
            ),
            2_000,
        ));
        records.push(at(
            record(
                AuditKind::Ask,
                AuditOutcome::Ok,
                "globex",
                "kim",
                "ops.v1.OpsService/Ask",
            ),
            3_000,
        ));
        let mut tx = db.begin_write().await?;
        insert(&mut tx, &records).await?;
        tx.commit().await?;

        let all = |page_token: &str| ListAuditRecordsRequest {
            page_size: 2,
            page_token: page_token.to_owned(),
            ..Default::default()
        };
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let (page, next) = list(&db, "acme", &all(&token)).await?;
            assert!(page.len() <= 2);
            seen.extend(page.into_iter().map(|r| r.at.map_or(0, |t| micros(&t))));
            if next.is_empty() {
                break;
            }
            token = next;
        }
        assert_eq!(seen, vec![2_000, 1_004, 1_003, 1_002, 1_001, 1_000]);

        let (denied, _) = list(
            &db,
            "acme",
            &ListAuditRecordsRequest {
                outcome: AuditOutcome::Denied as i32,
                ..Default::default()
            },
        )
        .await?;
        assert_eq!(denied.len(), 1);
        assert_eq!(denied[0].principal, "lee");
        assert_eq!(denied[0].rpc, "ops.v1.AssetRegistry/PublishAsset");
        assert_eq!(denied[0].code, "PERMISSION_DENIED");
        let (kim_since, _) = list(
            &db,
            "acme",
            &ListAuditRecordsRequest {
                principal: "kim".into(),
                since: Some(from_micros(1_003)),
                ..Default::default()
            },
        )
        .await?;
        assert_eq!(kim_since.len(), 2, "kim's asks at 1003 and 1004");
        let bad = list(&db, "acme", &all("not-a-token")).await;
        assert!(
            matches!(bad, Err(AuditError::InvalidArgument { field, .. }) if field == "page_token")
        );

        assert_eq!(
            apply_retention(&db, "acme", 1, 86_400_000_000 + 1_500).await?,
            5
        );
        let (left, _) = list(&db, "acme", &ListAuditRecordsRequest::default()).await?;
        assert_eq!(left.len(), 1, "only the record after the cutoff stays");
        let (other, _) = list(&db, "globex", &ListAuditRecordsRequest::default()).await?;
        assert_eq!(other.len(), 1, "another tenant's records are untouched");
        Ok(())
    }
}
