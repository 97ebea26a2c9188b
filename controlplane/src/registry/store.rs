//! Registry persistence. Every function takes a connection so the service can compose them
//! inside one transaction (publish, import) and nothing is half-written after an error.

use ops_proto::v1::{AssetContent, AssetType, AuditAction, AuditEvent};
use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::error::{RegistryError, RegistryResult};
use crate::model::refs::{parse_type_slug, type_slug};

pub const STATUS_ACTIVE: &str = "active";
pub const STATUS_ARCHIVED: &str = "archived";

#[derive(Debug, Clone)]
pub struct AssetRow {
    pub asset_id: String,
    pub tenant_id: String,
    pub asset_type: AssetType,
    pub name: String,
    pub status: String,
    pub revision: i64,
    pub latest_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub created_by: String,
    pub updated_by: String,
}

impl AssetRow {
    pub fn archived(&self) -> bool {
        self.status == STATUS_ARCHIVED
    }
}

/// A draft or a published version: the content and who wrote it when.
#[derive(Debug, Clone)]
pub struct ContentRow {
    /// 0 for the draft.
    pub version: i64,
    pub base_version: i64,
    pub content: AssetContent,
    pub content_sha256: String,
    pub rolled_back_from: i64,
    pub note: String,
    pub written_at: i64,
    pub written_by: String,
}

/// Canonical encoding of content: protobuf bytes (maps are ordered, so equal content encodes
/// equally), its sha256 and its JSON form.
pub struct EncodedContent {
    pub bytes: Vec<u8>,
    pub sha256: String,
    pub json: String,
}

pub fn encode_content(content: &AssetContent) -> RegistryResult<EncodedContent> {
    let bytes = content.encode_to_vec();
    // The digest is taken over canonical JSON (keys sorted), not the protobuf bytes: a Struct
    // (a Tool's config) is a hash map whose wire order changes from one encoding to the next,
    // so equal content would get a different digest and an unchanged file would re-publish.
    let json = serde_json::to_value(content)
        .map(|value| value.to_string())
        .map_err(|e| RegistryError::Internal(format!("encode content as json: {e}")))?;
    let sha256 = hex::encode(Sha256::digest(json.as_bytes()));
    Ok(EncodedContent {
        bytes,
        sha256,
        json,
    })
}

fn decode_content(bytes: &[u8]) -> RegistryResult<AssetContent> {
    AssetContent::decode(bytes)
        .map_err(|e| RegistryError::Internal(format!("stored asset content is corrupt: {e}")))
}

const ASSET_COLUMNS: &str = "asset_id, tenant_id, asset_type, name, status, revision, latest_version, created_at, updated_at, created_by, updated_by";

fn asset_row(row: &AnyRow) -> RegistryResult<AssetRow> {
    let slug: String = row.try_get("asset_type")?;
    Ok(AssetRow {
        asset_id: row.try_get("asset_id")?,
        tenant_id: row.try_get("tenant_id")?,
        asset_type: parse_type_slug(&slug).ok_or_else(|| {
            RegistryError::Internal(format!("stored asset type {slug:?} is unknown"))
        })?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        revision: row.try_get("revision")?,
        latest_version: row.try_get("latest_version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        created_by: row.try_get("created_by")?,
        updated_by: row.try_get("updated_by")?,
    })
}

pub async fn find_asset(
    conn: &mut AnyConnection,
    tenant: &str,
    asset_type: AssetType,
    name: &str,
) -> RegistryResult<Option<AssetRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {ASSET_COLUMNS} FROM assets WHERE tenant_id = $1 AND asset_type = $2 AND name = $3"
    ));
    let row = sqlx::query(sql)
        .bind(tenant)
        .bind(type_slug(asset_type))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(asset_row).transpose()
}

pub async fn insert_asset(conn: &mut AnyConnection, row: &AssetRow) -> RegistryResult<()> {
    let result = sqlx::query(
        "INSERT INTO assets (asset_id, tenant_id, asset_type, name, status, revision, latest_version, created_at, updated_at, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&row.asset_id)
    .bind(&row.tenant_id)
    .bind(type_slug(row.asset_type))
    .bind(&row.name)
    .bind(&row.status)
    .bind(row.revision)
    .bind(row.latest_version)
    .bind(row.created_at)
    .bind(row.updated_at)
    .bind(&row.created_by)
    .bind(&row.updated_by)
    .execute(&mut *conn)
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(RegistryError::AlreadyExists(format!(
                "{}:{} already exists; update its draft instead",
                type_slug(row.asset_type),
                row.name
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// What a compare-and-set on the asset row changes besides the revision.
#[derive(Debug, Default)]
pub struct AssetChange<'a> {
    pub latest_version: Option<i64>,
    pub status: Option<&'a str>,
}

/// Advances the revision only if it still equals `expected`: the optimistic-concurrency gate.
/// Returns the new revision, or `FAILED_PRECONDITION` when another writer got there first.
pub async fn advance_revision(
    conn: &mut AnyConnection,
    asset: &AssetRow,
    expected: i64,
    change: AssetChange<'_>,
    now: i64,
    actor: &str,
) -> RegistryResult<i64> {
    let latest = change.latest_version.unwrap_or(asset.latest_version);
    let status = change.status.unwrap_or(&asset.status);
    let done = sqlx::query(
        "UPDATE assets SET revision = revision + 1, latest_version = $1, status = $2, updated_at = $3, updated_by = $4 \
         WHERE asset_id = $5 AND revision = $6",
    )
    .bind(latest)
    .bind(status)
    .bind(now)
    .bind(actor)
    .bind(&asset.asset_id)
    .bind(expected)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        Ok(expected + 1)
    } else {
        Err(stale(asset, expected))
    }
}

pub fn stale(asset: &AssetRow, expected: i64) -> RegistryError {
    // `asset` is what this call read; when the read already differs we know the current value.
    let now = if asset.revision == expected {
        "it was changed concurrently".to_owned()
    } else {
        format!("it is now {}", asset.revision)
    };
    RegistryError::precondition(format!(
        "{}:{} was changed by someone else: expected revision {expected}, but {now}; read it again and retry",
        type_slug(asset.asset_type),
        asset.name,
    ))
}

pub async fn load_draft(
    conn: &mut AnyConnection,
    asset_id: &str,
) -> RegistryResult<Option<ContentRow>> {
    let row = sqlx::query(
        "SELECT base_version, content, content_sha256, updated_at, updated_by FROM asset_drafts WHERE asset_id = $1",
    )
    .bind(asset_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let bytes: Vec<u8> = row.try_get("content")?;
    Ok(Some(ContentRow {
        version: 0,
        base_version: row.try_get("base_version")?,
        content: decode_content(&bytes)?,
        content_sha256: row.try_get("content_sha256")?,
        rolled_back_from: 0,
        note: String::new(),
        written_at: row.try_get("updated_at")?,
        written_by: row.try_get("updated_by")?,
    }))
}

pub async fn upsert_draft(
    conn: &mut AnyConnection,
    asset_id: &str,
    base_version: i64,
    content: &AssetContent,
    encoded: &EncodedContent,
    now: i64,
    actor: &str,
) -> RegistryResult<()> {
    sqlx::query(
        "INSERT INTO asset_drafts (asset_id, base_version, scope, content, content_json, content_sha256, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (asset_id) DO UPDATE SET base_version = excluded.base_version, scope = excluded.scope, \
         content = excluded.content, content_json = excluded.content_json, content_sha256 = excluded.content_sha256, \
         updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
    .bind(asset_id)
    .bind(base_version)
    .bind(&content.scope)
    .bind(encoded.bytes.clone())
    .bind(&encoded.json)
    .bind(&encoded.sha256)
    .bind(now)
    .bind(actor)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn delete_draft(conn: &mut AnyConnection, asset_id: &str) -> RegistryResult<()> {
    sqlx::query("DELETE FROM asset_drafts WHERE asset_id = $1")
        .bind(asset_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

const VERSION_COLUMNS: &str =
    "version, content, content_sha256, rolled_back_from, note, published_at, published_by";

fn version_row(row: &AnyRow) -> RegistryResult<ContentRow> {
    let bytes: Vec<u8> = row.try_get("content")?;
    let version: i64 = row.try_get("version")?;
    Ok(ContentRow {
        version,
        base_version: version,
        content: decode_content(&bytes)?,
        content_sha256: row.try_get("content_sha256")?,
        rolled_back_from: row.try_get("rolled_back_from")?,
        note: row.try_get("note")?,
        written_at: row.try_get("published_at")?,
        written_by: row.try_get("published_by")?,
    })
}

pub async fn load_version(
    conn: &mut AnyConnection,
    asset_id: &str,
    version: i64,
) -> RegistryResult<Option<ContentRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM asset_versions WHERE asset_id = $1 AND version = $2"
    ));
    let row = sqlx::query(sql)
        .bind(asset_id)
        .bind(version)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(version_row).transpose()
}

pub struct NewVersion<'a> {
    pub version: i64,
    pub content: &'a AssetContent,
    pub encoded: &'a EncodedContent,
    pub rolled_back_from: i64,
    pub note: &'a str,
}

pub async fn insert_version(
    conn: &mut AnyConnection,
    asset_id: &str,
    v: NewVersion<'_>,
    now: i64,
    actor: &str,
) -> RegistryResult<()> {
    sqlx::query(
        "INSERT INTO asset_versions (asset_id, version, scope, content, content_json, content_sha256, rolled_back_from, note, published_at, published_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(asset_id)
    .bind(v.version)
    .bind(&v.content.scope)
    .bind(v.encoded.bytes.clone())
    .bind(&v.encoded.json)
    .bind(&v.encoded.sha256)
    .bind(v.rolled_back_from)
    .bind(v.note)
    .bind(now)
    .bind(actor)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Published versions, newest first, strictly older than `before` when given.
pub async fn list_versions(
    conn: &mut AnyConnection,
    asset_id: &str,
    before: Option<i64>,
    limit: i64,
) -> RegistryResult<Vec<ContentRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM asset_versions WHERE asset_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3"
    ));
    let rows = sqlx::query(sql)
        .bind(asset_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(version_row).collect()
}

/// Filters of a listing; empty strings mean "any".
#[derive(Debug, Default)]
pub struct ListFilter<'a> {
    pub asset_type: Option<AssetType>,
    pub status: Option<ListStatus>,
    pub scope: &'a str,
    pub name_prefix: &'a str,
    /// Keyset cursor: (type slug, name) of the last row of the previous page.
    pub after: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStatus {
    HasDraft,
    Published,
    Archived,
}

/// One listed asset with its newest content (draft if any, else the latest version).
pub struct ListedAsset {
    pub asset: AssetRow,
    pub has_draft: bool,
    pub content: Option<AssetContent>,
}

pub async fn list_assets(
    conn: &mut AnyConnection,
    tenant: &str,
    filter: &ListFilter<'_>,
    limit: i64,
) -> RegistryResult<Vec<ListedAsset>> {
    // Fixed statement with "any" sentinels keeps the SQL static and every value bound.
    let (after_type, after_name) = filter.after.clone().unwrap_or_default();
    let status = match filter.status {
        None => "",
        Some(ListStatus::HasDraft) => "draft",
        Some(ListStatus::Published) => "published",
        Some(ListStatus::Archived) => "archived",
    };
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {cols}, d.content AS draft_content, v.content AS version_content, \
                COALESCE(d.scope, v.scope, '') AS current_scope \
         FROM assets a \
         LEFT JOIN asset_drafts d ON d.asset_id = a.asset_id \
         LEFT JOIN asset_versions v ON v.asset_id = a.asset_id AND v.version = a.latest_version \
         WHERE a.tenant_id = $1 \
           AND ($2 = '' OR a.asset_type = $2) \
           AND ($3 = '' OR COALESCE(d.scope, v.scope, '') = $3) \
           AND ($4 = '' OR substr(a.name, 1, length($4)) = $4) \
           AND ($5 = '' \
                OR ($5 = 'draft' AND d.asset_id IS NOT NULL) \
                OR ($5 = 'published' AND a.status = 'active' AND a.latest_version > 0) \
                OR ($5 = 'archived' AND a.status = 'archived')) \
           AND ($6 = '' OR a.asset_type > $6 OR (a.asset_type = $6 AND a.name > $7)) \
         ORDER BY a.asset_type, a.name \
         LIMIT $8",
        cols = ASSET_COLUMNS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let rows = sqlx::query(sql)
        .bind(tenant)
        .bind(filter.asset_type.map(type_slug).unwrap_or_default())
        .bind(filter.scope)
        .bind(filter.name_prefix)
        .bind(status)
        .bind(after_type)
        .bind(after_name)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            let draft: Option<Vec<u8>> = row.try_get("draft_content")?;
            let version: Option<Vec<u8>> = row.try_get("version_content")?;
            let content = draft
                .as_deref()
                .or(version.as_deref())
                .map(decode_content)
                .transpose()?;
            Ok(ListedAsset {
                asset: asset_row(row)?,
                has_draft: draft.is_some(),
                content,
            })
        })
        .collect()
}

/// Published versions of every asset of a type, for policies and bundle export.
pub async fn latest_published(
    conn: &mut AnyConnection,
    tenant: &str,
    asset_type: AssetType,
) -> RegistryResult<Vec<(AssetRow, ContentRow)>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {cols}, v.version, v.content, v.content_sha256, v.rolled_back_from, v.note, v.published_at, v.published_by \
         FROM assets a JOIN asset_versions v ON v.asset_id = a.asset_id AND v.version = a.latest_version \
         WHERE a.tenant_id = $1 AND a.asset_type = $2 AND a.status = 'active' ORDER BY a.name",
        cols = ASSET_COLUMNS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let rows = sqlx::query(sql)
        .bind(tenant)
        .bind(type_slug(asset_type))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| Ok((asset_row(row)?, version_row(row)?)))
        .collect()
}

/// Each tenant's Policy as the pipeline applies it (the first published by name), across
/// tenants: what opsd runs on its own (schedules) reads it without loading whole snapshots.
pub async fn published_policies(
    conn: &mut AnyConnection,
) -> RegistryResult<Vec<(String, ops_proto::v1::PolicySpec)>> {
    let rows = sqlx::query(
        "SELECT a.tenant_id, v.content FROM assets a \
         JOIN asset_versions v ON v.asset_id = a.asset_id AND v.version = a.latest_version \
         WHERE a.asset_type = 'policy' AND a.status = 'active' ORDER BY a.tenant_id, a.name",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut policies: Vec<(String, ops_proto::v1::PolicySpec)> = Vec::new();
    for row in &rows {
        let tenant: String = row.try_get(0)?;
        if policies.last().is_some_and(|(t, _)| *t == tenant) {
            continue;
        }
        let content = decode_content(&row.try_get::<Vec<u8>, _>(1)?)?;
        if let Some(ops_proto::v1::asset_spec::Kind::Policy(policy)) =
            content.spec.and_then(|s| s.kind)
        {
            policies.push((tenant, policy));
        }
    }
    Ok(policies)
}

pub struct AuditEntry<'a> {
    pub asset: &'a AssetRow,
    pub action: AuditAction,
    pub principal: &'a str,
    pub at: i64,
    pub from_version: i64,
    pub to_version: i64,
    pub revision: i64,
    pub detail: String,
}

pub async fn insert_audit(conn: &mut AnyConnection, e: AuditEntry<'_>) -> RegistryResult<()> {
    sqlx::query(
        "INSERT INTO asset_audit (audit_id, tenant_id, asset_id, asset_type, name, action, principal, at, from_version, to_version, revision, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    // UUIDv7 ids are time-ordered, so rows written in the same microsecond keep their order.
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&e.asset.tenant_id)
    .bind(&e.asset.asset_id)
    .bind(type_slug(e.asset.asset_type))
    .bind(&e.asset.name)
    .bind(e.action.as_str_name())
    .bind(e.principal)
    .bind(e.at)
    .bind(e.from_version)
    .bind(e.to_version)
    .bind(e.revision)
    .bind(e.detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Audit events, newest first; `before` is the (at, audit_id) cursor of the previous page.
pub async fn list_audit(
    conn: &mut AnyConnection,
    tenant: &str,
    asset: Option<(AssetType, &str)>,
    before: Option<(i64, String)>,
    limit: i64,
) -> RegistryResult<Vec<AuditEvent>> {
    let (asset_type, name) = asset.map(|(t, n)| (type_slug(t), n)).unwrap_or(("", ""));
    let (before_at, before_id) = before.unwrap_or((i64::MAX, String::new()));
    let rows = sqlx::query(
        "SELECT audit_id, asset_type, name, action, principal, at, from_version, to_version, revision, detail \
         FROM asset_audit WHERE tenant_id = $1 AND ($2 = '' OR (asset_type = $2 AND name = $3)) \
           AND (at < $4 OR (at = $4 AND audit_id < $5)) \
         ORDER BY at DESC, audit_id DESC LIMIT $6",
    )
    .bind(tenant)
    .bind(asset_type)
    .bind(name)
    .bind(before_at)
    .bind(if before_id.is_empty() { "\u{10ffff}".to_owned() } else { before_id })
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let slug: String = row.try_get("asset_type")?;
            let action: String = row.try_get("action")?;
            let from_version: i64 = row.try_get("from_version")?;
            let to_version: i64 = row.try_get("to_version")?;
            let revision: i64 = row.try_get("revision")?;
            Ok(AuditEvent {
                id: row.try_get("audit_id")?,
                asset_type: parse_type_slug(&slug).unwrap_or_default() as i32,
                asset_name: row.try_get("name")?,
                action: AuditAction::from_str_name(&action).unwrap_or_default() as i32,
                principal: row.try_get("principal")?,
                at: Some(super::timestamp(row.try_get("at")?)),
                from_version: u32::try_from(from_version).unwrap_or_default(),
                to_version: u32::try_from(to_version).unwrap_or_default(),
                revision: u64::try_from(revision).unwrap_or_default(),
                detail: row.try_get("detail")?,
            })
        })
        .collect()
}

/// Change marker of a tenant's assets: count, summed revisions and last update. One indexed
/// query, so a replica can confirm a cached view of the tenant cheaply.
pub async fn tenant_fingerprint(
    conn: &mut AnyConnection,
    tenant: &str,
) -> RegistryResult<(i64, i64, i64)> {
    let row = sqlx::query(
        "SELECT COUNT(*), CAST(COALESCE(SUM(revision), 0) AS BIGINT), COALESCE(MAX(updated_at), 0) \
         FROM assets WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&mut *conn)
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

/// Every tenant that has assets (the SQL guard refuses a literal naming another tenant).
pub async fn known_tenants(conn: &mut AnyConnection) -> RegistryResult<Vec<String>> {
    let rows = sqlx::query("SELECT DISTINCT tenant_id FROM assets")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).map_err(RegistryError::from))
        .collect()
}
