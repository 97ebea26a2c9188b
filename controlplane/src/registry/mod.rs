//! The versioned asset registry (tonic-free). `grpc` adapts it to `ops.v1.AssetRegistry`.
//!
//! Lifecycle: one mutable draft per asset; publishing turns the draft into immutable version
//! N+1; archive retires the asset; rollback republishes an old version's content as N+1.
//! Every change is a compare-and-set on the asset's revision (optimistic concurrency) inside a
//! transaction that also writes the audit row.

pub mod bindings;
pub mod bundle;
pub mod diff;
pub mod error;

pub mod plugins;
pub mod probe;
pub mod scan_proposals;

pub mod store;
pub mod validate;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ops_proto::v1::{
    Asset, AssetContent, AssetRef, AssetStatus, AssetSummary, AssetType, AuditAction, AuditEvent,
    BundleFile, BundleFormat, FieldChange, ImportOutcome, ImportResult, PolicySpec, Resolution,
    SourceSpec, Violation, asset_spec, get_asset_request, validate_asset_request,
};
use prost::Message;
use sqlx::AnyConnection;

use crate::config::RegistryConfig;
use crate::context::CallerContext;
use crate::model::refs::{self, AssetReference, VersionSelector, type_slug, validate_name};
use crate::route_plan::resolver::ResolverEngine;
use crate::storage::{Db, unix_micros};
use crate::validate::sql_guard::GuardPolicy;
pub use error::{RegistryError, RegistryResult};
use store::{AssetChange, AssetRow, ContentRow, ListFilter, ListStatus};
use validate::{ValidationContext, references, validate_content};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

pub use ops_proto::convert::from_micros as timestamp;

/// The registry service.
#[derive(Debug, Clone)]
pub struct Registry {
    db: Db,
    limits: RegistryConfig,
    /// Bumped after every commit that changes what is published through this replica.
    generation: Arc<AtomicU64>,
}

/// The stages an asset is bound to, as shown: empty bindings mean every allowed stage.
fn effective_bindings(asset_type: AssetType, content: &AssetContent) -> Vec<i32> {
    let requested: Vec<_> = content.bindings().collect();
    bindings::check_bindings(asset_type, &requested)
        .unwrap_or_default()
        .into_iter()
        .map(|s| s as i32)
        .collect()
}

/// How a stored asset should be shown.
fn to_asset(a: &AssetRow, c: &ContentRow) -> Asset {
    let status = if c.version == 0 {
        AssetStatus::Draft
    } else if a.archived() {
        AssetStatus::Archived
    } else {
        AssetStatus::Published
    };
    let bindings = effective_bindings(a.asset_type, &c.content);
    let revision = u64::try_from(a.revision).unwrap_or_default();
    Asset {
        r#type: a.asset_type as i32,
        name: a.name.clone(),
        tenant: a.tenant_id.clone(),
        version: u32::try_from(c.version).unwrap_or_default(),
        status: status as i32,
        description: c.content.description.clone(),
        scope: c.content.scope.clone(),
        tags: c.content.tags.clone(),
        bindings,
        spec: c.content.spec.clone(),
        revision,
        etag: format!("\"{revision}\""),
        content_sha256: c.content_sha256.clone(),
        latest_version: u32::try_from(a.latest_version).unwrap_or_default(),
        base_version: u32::try_from(c.base_version).unwrap_or_default(),
        rolled_back_from: u32::try_from(c.rolled_back_from).unwrap_or_default(),
        created_at: Some(timestamp(a.created_at)),
        updated_at: Some(timestamp(c.written_at)),
        created_by: a.created_by.clone(),
        updated_by: c.written_by.clone(),
        note: c.note.clone(),
    }
}

fn asset_type(raw: i32) -> RegistryResult<AssetType> {
    match AssetType::try_from(raw) {
        Ok(t) if t != AssetType::Unspecified => Ok(t),
        _ => Err(RegistryError::invalid(
            "type",
            "request.asset_type",
            format!(
                "type is required: one of ASSET_TYPE_SOURCE … ASSET_TYPE_TOOL ({})",
                refs::TYPE_SLUGS
            ),
        )),
    }
}

fn name(raw: &str) -> RegistryResult<&str> {
    validate_name(raw).map_err(|m| RegistryError::invalid("name", "request.name", m))?;
    Ok(raw)
}

fn expected_revision(raw: u64) -> RegistryResult<i64> {
    if raw == 0 {
        return Err(RegistryError::invalid(
            "expected_revision",
            "request.expected_revision",
            "expected_revision is required: read the asset and pass its revision",
        ));
    }
    i64::try_from(raw).map_err(|_| {
        RegistryError::invalid(
            "expected_revision",
            "request.expected_revision",
            "expected_revision is out of range",
        )
    })
}

fn page_size(raw: u32) -> i64 {
    i64::from(if raw == 0 {
        DEFAULT_PAGE
    } else {
        raw.min(MAX_PAGE)
    })
}

fn bad_token() -> RegistryError {
    RegistryError::invalid(
        "page_token",
        "request.page_token",
        "page_token is not one this server issued; start again without it",
    )
}

fn not_found(asset_type: AssetType, name: &str, tenant: &str) -> RegistryError {
    RegistryError::NotFound(format!(
        "{}:{name} does not exist in tenant {tenant}",
        type_slug(asset_type)
    ))
}

impl Registry {
    pub fn new(db: Db, limits: RegistryConfig) -> Self {
        Self {
            db,
            limits,
            generation: Arc::default(),
        }
    }

    /// Changes whenever this replica publishes, archives, rolls back or imports, so caches of
    /// published assets can tell at once (other replicas' changes are seen in the database).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// How long a cached view of published assets may go unchecked.
    pub fn snapshot_recheck(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.limits.snapshot_recheck_ms)
    }

    fn published_changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    async fn conn(&self) -> RegistryResult<sqlx::pool::PoolConnection<sqlx::Any>> {
        Ok(self.db.pool().acquire().await?)
    }

    fn check_size(&self, content: &AssetContent) -> RegistryResult<()> {
        let size = content.encoded_len();
        if size > self.limits.max_content_bytes {
            let mut v = validate::violation(
                "content",
                "limits",
                "limits.content_size",
                format!(
                    "content is {size} bytes encoded; at most {} bytes are allowed",
                    self.limits.max_content_bytes
                ),
            );
            v.expected = format!("<= {}", self.limits.max_content_bytes);
            v.actual = size.to_string();
            return Err(RegistryError::InvalidArgument(vec![v]));
        }
        Ok(())
    }

    /// Everything validation needs from the store: the guard's policy and a Query's dialect.
    async fn validation_context(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        content: &AssetContent,
    ) -> RegistryResult<ValidationContext> {
        let mut guard = GuardPolicy::default();
        for (_, version) in store::latest_published(conn, tenant, AssetType::Policy).await? {
            if let Some(asset_spec::Kind::Policy(PolicySpec {
                restricted_tables,
                allowed_functions,
                ..
            })) = version.content.spec.and_then(|s| s.kind)
            {
                guard.restricted_tables.extend(restricted_tables);
                guard.allowed_functions.extend(allowed_functions);
            }
        }
        let mut query_dialect = None;
        if let Some(asset_spec::Kind::Query(q)) =
            content.spec.as_ref().and_then(|s| s.kind.as_ref())
            && let Ok(reference) = AssetReference::parse(&q.source_ref)
            && let Ok(Some((_, source))) = self.resolve_content(conn, tenant, &reference).await
            && let Some(asset_spec::Kind::Source(SourceSpec { kind, .. })) =
                source.content.spec.and_then(|s| s.kind)
        {
            query_dialect = crate::model::source_dialect(
                ops_proto::v1::SourceKind::try_from(kind).unwrap_or_default(),
            );
        }
        let mut tool_catalog = None;
        if let Some(asset_spec::Kind::Tool(t)) = content.spec.as_ref().and_then(|s| s.kind.as_ref())
            && let Ok(reference) = AssetReference::parse(&t.catalog_ref)
            && let Ok(Some((_, catalog))) = self.resolve_content(conn, tenant, &reference).await
            && let Some(asset_spec::Kind::SchemaCatalog(catalog)) =
                catalog.content.spec.and_then(|s| s.kind)
        {
            tool_catalog = Some(catalog);
        }
        Ok(ValidationContext {
            query_dialect,
            guard_policy: guard,
            tool_catalog,
        })
    }

    /// Structural validation; blocking violations reject the request.
    async fn check_content(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        t: AssetType,
        content: &AssetContent,
    ) -> RegistryResult<()> {
        self.check_size(content)?;
        let ctx = self.validation_context(conn, tenant, content).await?;
        let violations = validate_content(t, content, &ctx);
        if violations.iter().any(|v| v.blocking) {
            return Err(RegistryError::InvalidArgument(violations));
        }
        Ok(())
    }

    /// Resolves a reference to the asset and the content it selects, if both exist.
    async fn resolve_content(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        r: &AssetReference,
    ) -> RegistryResult<Option<(AssetRow, ContentRow)>> {
        let Some(asset) = store::find_asset(conn, tenant, r.asset_type, &r.name).await? else {
            return Ok(None);
        };
        let content = match r.version {
            VersionSelector::LatestPublished if asset.latest_version > 0 && !asset.archived() => {
                store::load_version(conn, &asset.asset_id, asset.latest_version).await?
            }
            VersionSelector::LatestPublished => None,
            VersionSelector::Exact(v) => {
                store::load_version(conn, &asset.asset_id, i64::from(v)).await?
            }
            VersionSelector::Draft => store::load_draft(conn, &asset.asset_id).await?,
        };
        Ok(content.map(|c| (asset, c)))
    }

    /// Full validation: structure plus every reference resolved to a published version.
    async fn full_validation(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        t: AssetType,
        content: &AssetContent,
    ) -> RegistryResult<(Vec<Violation>, Vec<AssetRef>)> {
        let ctx = self.validation_context(conn, tenant, content).await?;
        let mut violations = validate_content(t, content, &ctx);
        let mut resolved = Vec::new();
        if let Some((field, rule, message)) = self.check_plugin_ref(conn, tenant, content).await? {
            violations.push(validate::violation(&field, "reference", &rule, message));
        }
        for reference in references(content) {
            match self
                .check_reference(conn, tenant, &reference.text, reference.expected)
                .await?
            {
                Ok(r) => resolved.push(r),
                Err((rule, message)) => violations.push(validate::violation(
                    &reference.field,
                    "reference",
                    rule,
                    message,
                )),
            }
        }
        Ok((violations, resolved))
    }

    /// Checks that `text` names a published asset of type `expected`.
    pub async fn check_reference(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        text: &str,
        expected: AssetType,
    ) -> RegistryResult<Result<AssetRef, (&'static str, String)>> {
        let r = match AssetReference::parse(text) {
            Ok(r) => r,
            Err(message) => return Ok(Err(("reference.syntax", message))),
        };
        if r.asset_type != expected {
            return Ok(Err((
                "reference.type",
                format!(
                    "reference {text:?} names a {} but a {} reference is expected here",
                    type_slug(r.asset_type),
                    type_slug(expected)
                ),
            )));
        }
        let Some(asset) = store::find_asset(conn, tenant, r.asset_type, &r.name).await? else {
            return Ok(Err((
                "reference.exists",
                format!(
                    "reference {text:?}: {}:{} does not exist",
                    type_slug(r.asset_type),
                    r.name
                ),
            )));
        };
        let version = match r.version {
            VersionSelector::Draft => {
                return Ok(Err((
                    "reference.published",
                    format!(
                        "reference {text:?} selects a draft; published assets may only reference published versions"
                    ),
                )));
            }
            VersionSelector::LatestPublished if asset.archived() => {
                return Ok(Err((
                    "reference.archived",
                    format!(
                        "reference {text:?}: {}:{} is archived",
                        type_slug(r.asset_type),
                        r.name
                    ),
                )));
            }
            VersionSelector::LatestPublished if asset.latest_version == 0 => {
                return Ok(Err((
                    "reference.published",
                    format!(
                        "reference {text:?}: {}:{} has no published version yet (only a draft)",
                        type_slug(r.asset_type),
                        r.name
                    ),
                )));
            }
            VersionSelector::LatestPublished => asset.latest_version,
            VersionSelector::Exact(v) if i64::from(v) > asset.latest_version => {
                return Ok(Err((
                    "reference.version",
                    format!(
                        "reference {text:?}: {}:{} has no version {v} (latest is {})",
                        type_slug(r.asset_type),
                        r.name,
                        asset.latest_version
                    ),
                )));
            }
            VersionSelector::Exact(v) => i64::from(v),
        };
        Ok(Ok(AssetRef {
            r#type: r.asset_type as i32,
            name: r.name,
            version: u32::try_from(version).unwrap_or_default(),
        }))
    }

    async fn existing(
        &self,
        conn: &mut AnyConnection,
        ctx: &CallerContext,
        t: AssetType,
        n: &str,
    ) -> RegistryResult<AssetRow> {
        store::find_asset(conn, &ctx.tenant, t, n)
            .await?
            .ok_or_else(|| not_found(t, n, &ctx.tenant))
    }

    // ── RPCs ────────────────────────────────────────────────────────────────────────────

    pub async fn create(
        &self,
        ctx: &CallerContext,
        raw_type: i32,
        raw_name: &str,
        content: AssetContent,
    ) -> RegistryResult<Asset> {
        let t = asset_type(raw_type)?;
        let n = name(raw_name)?;
        let mut tx = self.db.begin_write().await?;
        self.check_content(&mut tx, &ctx.tenant, t, &content)
            .await?;
        let encoded = store::encode_content(&content)?;
        let now = unix_micros();
        let row = insert_new_asset(
            &mut tx,
            ctx,
            t,
            n,
            &content,
            &encoded,
            now,
            AuditAction::Create,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(tenant = %ctx.tenant, principal = %ctx.principal, asset = %format!("{}:{n}", type_slug(t)), "asset created");
        let draft = ContentRow {
            version: 0,
            base_version: 0,
            content,
            content_sha256: encoded.sha256,
            rolled_back_from: 0,
            note: String::new(),
            written_at: now,
            written_by: ctx.principal.clone(),
        };
        Ok(to_asset(&row, &draft))
    }

    pub async fn update_draft(
        &self,
        ctx: &CallerContext,
        raw_type: i32,
        raw_name: &str,
        expected: u64,
        content: AssetContent,
    ) -> RegistryResult<Asset> {
        let t = asset_type(raw_type)?;
        let n = name(raw_name)?;
        let expected = expected_revision(expected)?;
        let mut conn = self.conn().await?;
        self.check_content(&mut conn, &ctx.tenant, t, &content)
            .await?;
        drop(conn);
        let encoded = store::encode_content(&content)?;
        let now = unix_micros();
        let mut tx = self.db.begin_write().await?;
        let mut asset = self.existing(&mut tx, ctx, t, n).await?;
        if asset.revision != expected {
            return Err(store::stale(&asset, expected));
        }
        if asset.archived() {
            return Err(RegistryError::precondition(format!(
                "{}:{n} is archived; roll back to a version to revive it before editing",
                type_slug(t)
            )));
        }
        let base = match store::load_draft(&mut tx, &asset.asset_id).await? {
            Some(d) => d.base_version,
            None => asset.latest_version,
        };
        asset.revision = store::advance_revision(
            &mut tx,
            &asset,
            expected,
            AssetChange::default(),
            now,
            &ctx.principal,
        )
        .await?;
        store::upsert_draft(
            &mut tx,
            &asset.asset_id,
            base,
            &content,
            &encoded,
            now,
            &ctx.principal,
        )
        .await?;
        store::insert_audit(
            &mut tx,
            store::AuditEntry {
                asset: &asset,
                action: AuditAction::UpdateDraft,
                principal: &ctx.principal,
                at: now,
                from_version: base,
                to_version: 0,
                revision: asset.revision,
                detail: format!("sha256 {}", encoded.sha256),
            },
        )
        .await?;
        tx.commit().await?;
        let draft = ContentRow {
            version: 0,
            base_version: base,
            content,
            content_sha256: encoded.sha256,
            rolled_back_from: 0,
            note: String::new(),
            written_at: now,
            written_by: ctx.principal.clone(),
        };
        Ok(to_asset(&asset, &draft))
    }

    pub async fn get(
        &self,
        ctx: &CallerContext,
        raw_type: i32,
        raw_name: &str,
        selector: Option<get_asset_request::Selector>,
    ) -> RegistryResult<Asset> {
        let t = asset_type(raw_type)?;
        let n = name(raw_name)?;
        let mut conn = self.conn().await?;
        let asset = self.existing(&mut conn, ctx, t, n).await?;
        let slug = type_slug(t);
        let content = match selector {
            Some(get_asset_request::Selector::Draft(true)) => {
                self.content_at(&mut conn, &asset, 0).await?
            }
            Some(get_asset_request::Selector::Version(v)) if v > 0 => {
                self.content_at(&mut conn, &asset, v).await?
            }
            _ if asset.archived() => {
                return Err(RegistryError::precondition(format!(
                    "{slug}:{n} is archived; ask for a specific version or roll back to revive it"
                )));
            }
            _ if asset.latest_version == 0 => {
                return Err(RegistryError::NotFound(format!(
                    "{slug}:{n} has no published version yet; read its draft with draft=true"
                )));
            }
            _ => store::load_version(&mut conn, &asset.asset_id, asset.latest_version)
                .await?
                .ok_or_else(|| {
                    RegistryError::Internal(format!(
                        "{slug}:{n} version {} is missing",
                        asset.latest_version
                    ))
                })?,
        };
        Ok(to_asset(&asset, &content))
    }

    pub async fn list(
        &self,
        ctx: &CallerContext,
        req: ops_proto::v1::ListAssetsRequest,
    ) -> RegistryResult<(Vec<AssetSummary>, String)> {
        let asset_type = match AssetType::try_from(req.r#type) {
            Ok(AssetType::Unspecified) => None,
            Ok(t) => Some(t),
            Err(_) => {
                return Err(RegistryError::invalid(
                    "type",
                    "request.asset_type",
                    "type is not a known asset type",
                ));
            }
        };
        let status = match AssetStatus::try_from(req.status) {
            Ok(AssetStatus::Unspecified) => None,
            Ok(AssetStatus::Draft) => Some(ListStatus::HasDraft),
            Ok(AssetStatus::Published) => Some(ListStatus::Published),
            Ok(AssetStatus::Archived) => Some(ListStatus::Archived),
            Err(_) => {
                return Err(RegistryError::invalid(
                    "status",
                    "request.status",
                    "status is not a known asset status",
                ));
            }
        };
        let after = if req.page_token.is_empty() {
            None
        } else {
            let bytes = hex::decode(&req.page_token).map_err(|_| bad_token())?;
            let text = String::from_utf8(bytes).map_err(|_| bad_token())?;
            let (t, n) = text.split_once('\u{1f}').ok_or_else(bad_token)?;
            Some((t.to_owned(), n.to_owned()))
        };
        let limit = page_size(req.page_size);
        let filter = ListFilter {
            asset_type,
            status,
            scope: &req.scope,
            name_prefix: &req.name_prefix,
            after,
        };
        let mut conn = self.conn().await?;
        let rows = store::list_assets(&mut conn, &ctx.tenant, &filter, limit + 1).await?;
        let more = rows.len() as i64 > limit;
        let rows: Vec<_> = rows
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        let next = match (more, rows.last()) {
            (true, Some(last)) => hex::encode(format!(
                "{}\u{1f}{}",
                type_slug(last.asset.asset_type),
                last.asset.name
            )),
            _ => String::new(),
        };
        let summaries = rows
            .into_iter()
            .map(|l| {
                let content = l.content.unwrap_or_default();
                let status = if l.asset.archived() {
                    AssetStatus::Archived
                } else if l.asset.latest_version > 0 {
                    AssetStatus::Published
                } else {
                    AssetStatus::Draft
                };
                AssetSummary {
                    r#type: l.asset.asset_type as i32,
                    name: l.asset.name.clone(),
                    status: status as i32,
                    latest_version: u32::try_from(l.asset.latest_version).unwrap_or_default(),
                    has_draft: l.has_draft,
                    revision: u64::try_from(l.asset.revision).unwrap_or_default(),
                    scope: content.scope.clone(),
                    description: content.description.clone(),
                    bindings: effective_bindings(l.asset.asset_type, &content),
                }
            })
            .collect();
        Ok((summaries, next))
    }

    pub async fn list_versions(
        &self,
        ctx: &CallerContext,
        raw_type: i32,
        raw_name: &str,
        size: u32,
        token: &str,
    ) -> RegistryResult<(Vec<Asset>, String)> {
        let t = asset_type(raw_type)?;
        let n = name(raw_name)?;
        let before = if token.is_empty() {
            None
        } else {
            Some(token.parse::<i64>().map_err(|_| bad_token())?)
        };
        let limit = page_size(size);
        let mut conn = self.conn().await?;
        let asset = self.existing(&mut conn, ctx, t, n).await?;
        let rows = store::list_versions(&mut conn, &asset.asset_id, before, limit + 1).await?;
        let more = rows.len() as i64 > limit;
        let versions: Vec<Asset> = rows
            .iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|c| to_asset(&asset, c))
            .collect();
        let next = match (more, versions.last()) {
            (true, Some(last)) => last.version.to_string(),
            _ => String::new(),
        };
        Ok((versions, next))
    }

    async fn content_at(
        &self,
        conn: &mut AnyConnection,
        asset: &AssetRow,
        version: u32,
    ) -> RegistryResult<ContentRow> {
        let slug = type_slug(asset.asset_type);
        if version == 0 {
            store::load_draft(conn, &asset.asset_id)
                .await?
                .ok_or_else(|| {
                    RegistryError::NotFound(format!("{slug}:{} has no draft", asset.name))
                })
        } else {
            store::load_version(conn, &asset.asset_id, i64::from(version))
                .await?
                .ok_or_else(|| {
                    RegistryError::NotFound(format!(
                        "{slug}:{} has no version {version} (latest is {})",
                        asset.name, asset.latest_version
                    ))
                })
        }
    }

    pub async fn diff(
        &self,
        ctx: &CallerContext,
        raw_type: i32,
        raw_name: &str,
        from: u32,
        to: u32,
    ) -> RegistryResult<Vec<FieldChange>> {
        let t = asset_type(raw_type)?;
        let n = name(raw_name)?;
        let mut conn = self.conn().await?;
        let asset = self.existing(&mut conn, ctx, t, n).await?;
        let before = self.content_at(&mut conn, &asset, from).await?;
        let after = self.content_at(&mut conn, &asset, to).await?;
        let json = |c: &AssetContent| {
            serde_json::to_value(c)
                .map_err(|e| RegistryError::Internal(format!("encode content: {e}")))
        };
        Ok(diff::diff(&json(&before.content)?, &json(&after.content)?))
    }

    pub async fn validate(
        &self,
        ctx: &CallerContext,
        raw_type: i32,
        raw_name: &str,
        target: Option<validate_asset_request::Target>,
    ) -> RegistryResult<(Vec<Violation>, Vec<AssetRef>)> {
        let t = asset_type(raw_type)?;
        let mut conn = self.conn().await?;
        let content = match target {
            Some(validate_asset_request::Target::Content(content)) => {
                self.check_size(&content)?;
                content
            }
            Some(validate_asset_request::Target::Version(v)) => {
                let asset = self.existing(&mut conn, ctx, t, name(raw_name)?).await?;
                self.content_at(&mut conn, &asset, v).await?.content
            }
            Some(validate_asset_request::Target::Draft(_)) | None => {
                let asset = self.existing(&mut conn, ctx, t, name(raw_name)?).await?;
                self.content_at(&mut conn, &asset, 0).await?.content
            }
        };
        self.full_validation(&mut conn, &ctx.tenant, t, &content)
            .await
    }

    pub async fn publish(
        &self,
        ctx: &CallerContext,
        raw_type: i32,
        raw_name: &str,
        expected: u64,
        note: &str,
    ) -> RegistryResult<Asset> {
        let t = asset_type(raw_type)?;
        let n = name(raw_name)?;
        let expected = expected_revision(expected)?;
        let mut tx = self.db.begin_write().await?;
        let mut asset = self.existing(&mut tx, ctx, t, n).await?;
        let slug = type_slug(t);
        if asset.revision != expected {
            return Err(store::stale(&asset, expected));
        }
        if asset.archived() {
            return Err(RegistryError::precondition(format!(
                "{slug}:{n} is archived; roll back to a version to revive it before publishing"
            )));
        }
        let draft = store::load_draft(&mut tx, &asset.asset_id)
            .await?
            .ok_or_else(|| {
                RegistryError::precondition(format!(
                    "{slug}:{n} has no draft to publish; update its draft first"
                ))
            })?;
        let now = unix_micros();
        let encoded = store::encode_content(&draft.content)?;
        self.publish_draft(
            &mut tx,
            ctx,
            &mut asset,
            &draft.content,
            &encoded,
            note,
            now,
        )
        .await?;
        tx.commit().await?;
        self.published_changed();
        tracing::info!(tenant = %ctx.tenant, principal = %ctx.principal, asset = %format!("{slug}:{n}"), version = asset.latest_version, "asset published");
        let published = ContentRow {
            version: asset.latest_version,
            base_version: asset.latest_version,
            content: draft.content,
            content_sha256: encoded.sha256,
            rolled_back_from: 0,
            note: note.to_owned(),
            written_at: now,
            written_by: ctx.principal.clone(),
        };
        Ok(to_asset(&asset, &published))
    }

    /// Publishes `content` (the asset's draft) as the next version inside `conn`'s
    /// transaction: full validation, compare-and-set, version row, draft removal, audit.
    #[allow(clippy::too_many_arguments)]
    async fn publish_draft(
        &self,
        conn: &mut AnyConnection,
        ctx: &CallerContext,
        asset: &mut AssetRow,
        content: &AssetContent,
        encoded: &store::EncodedContent,
        note: &str,
        now: i64,
    ) -> RegistryResult<()> {
        let (violations, _) = self
            .full_validation(conn, &ctx.tenant, asset.asset_type, content)
            .await?;
        blocking_precondition(
            format!(
                "cannot publish {}:{}",
                type_slug(asset.asset_type),
                asset.name
            ),
            violations,
        )?;
        let from = asset.latest_version;
        let version = from + 1;
        let change = AssetChange {
            latest_version: Some(version),
            status: None,
        };
        asset.revision =
            store::advance_revision(conn, asset, asset.revision, change, now, &ctx.principal)
                .await?;
        asset.latest_version = version;
        let new_version = store::NewVersion {
            version,
            content,
            encoded,
            rolled_back_from: 0,
            note,
        };
        store::insert_version(conn, &asset.asset_id, new_version, now, &ctx.principal).await?;
        store::delete_draft(conn, &asset.asset_id).await?;
        let entry = store::AuditEntry {
            asset,
            action: AuditAction::Publish,
            principal: &ctx.principal,
            at: now,
            from_version: from,
            to_version: version,
            revision: asset.revision,
            detail: note.to_owned(),
        };
        store::insert_audit(conn, entry).await
    }

    pub async fn archive(
        &self,
        ctx: &CallerContext,
        raw_type: i32,
        raw_name: &str,
        expected: u64,
    ) -> RegistryResult<Asset> {
        let t = asset_type(raw_type)?;
        let n = name(raw_name)?;
        let expected = expected_revision(expected)?;
        let now = unix_micros();
        let mut tx = self.db.begin_write().await?;
        let mut asset = self.existing(&mut tx, ctx, t, n).await?;
        if asset.revision != expected {
            return Err(store::stale(&asset, expected));
        }
        if asset.archived() {
            return Err(RegistryError::precondition(format!(
                "{}:{n} is already archived",
                type_slug(t)
            )));
        }
        asset.revision = store::advance_revision(
            &mut tx,
            &asset,
            expected,
            AssetChange {
                latest_version: None,
                status: Some(store::STATUS_ARCHIVED),
            },
            now,
            &ctx.principal,
        )
        .await?;
        asset.status = store::STATUS_ARCHIVED.to_owned();
        store::insert_audit(
            &mut tx,
            store::AuditEntry {
                asset: &asset,
                action: AuditAction::Archive,
                principal: &ctx.principal,
                at: now,
                from_version: asset.latest_version,
                to_version: asset.latest_version,
                revision: asset.revision,
                detail: String::new(),
            },
        )
        .await?;
        let shown =
            match store::load_version(&mut tx, &asset.asset_id, asset.latest_version).await? {
                Some(v) => v,
                None => store::load_draft(&mut tx, &asset.asset_id)
                    .await?
                    .ok_or_else(|| {
                        RegistryError::Internal("asset has neither draft nor version".into())
                    })?,
            };
        tx.commit().await?;
        self.published_changed();
        Ok(to_asset(&asset, &shown))
    }

    pub async fn rollback(
        &self,
        ctx: &CallerContext,
        raw_type: i32,
        raw_name: &str,
        expected: u64,
        to_version: u32,
        note: &str,
    ) -> RegistryResult<Asset> {
        let t = asset_type(raw_type)?;
        let n = name(raw_name)?;
        let expected = expected_revision(expected)?;
        if to_version == 0 {
            return Err(RegistryError::invalid(
                "to_version",
                "request.to_version",
                "to_version is required: the published version to republish",
            ));
        }
        let now = unix_micros();
        let mut tx = self.db.begin_write().await?;
        let mut asset = self.existing(&mut tx, ctx, t, n).await?;
        if asset.revision != expected {
            return Err(store::stale(&asset, expected));
        }
        let old = self.content_at(&mut tx, &asset, to_version).await?;
        // The old content must still be publishable: its references may have been archived since.
        let (violations, _) = self
            .full_validation(&mut tx, &ctx.tenant, t, &old.content)
            .await?;
        blocking_precondition(
            format!(
                "cannot roll back {}:{n} to version {to_version}",
                type_slug(t)
            ),
            violations,
        )?;
        let version = asset.latest_version + 1;
        let encoded = store::encode_content(&old.content)?;
        asset.revision = store::advance_revision(
            &mut tx,
            &asset,
            expected,
            AssetChange {
                latest_version: Some(version),
                status: Some(store::STATUS_ACTIVE),
            },
            now,
            &ctx.principal,
        )
        .await?;
        let from = asset.latest_version;
        asset.latest_version = version;
        asset.status = store::STATUS_ACTIVE.to_owned();
        let note = if note.is_empty() {
            format!("rollback to version {to_version}")
        } else {
            note.to_owned()
        };
        store::insert_version(
            &mut tx,
            &asset.asset_id,
            store::NewVersion {
                version,
                content: &old.content,
                encoded: &encoded,
                rolled_back_from: i64::from(to_version),
                note: &note,
            },
            now,
            &ctx.principal,
        )
        .await?;
        store::insert_audit(
            &mut tx,
            store::AuditEntry {
                asset: &asset,
                action: AuditAction::Rollback,
                principal: &ctx.principal,
                at: now,
                from_version: from,
                to_version: version,
                revision: asset.revision,
                detail: note.clone(),
            },
        )
        .await?;
        tx.commit().await?;
        self.published_changed();
        let row = ContentRow {
            version,
            base_version: version,
            content: old.content,
            content_sha256: encoded.sha256,
            rolled_back_from: i64::from(to_version),
            note,
            written_at: now,
            written_by: ctx.principal.clone(),
        };
        Ok(to_asset(&asset, &row))
    }

    pub async fn audit(
        &self,
        ctx: &CallerContext,
        raw_type: i32,
        raw_name: &str,
        size: u32,
        token: &str,
    ) -> RegistryResult<(Vec<AuditEvent>, String)> {
        let asset = if raw_type == 0 && raw_name.is_empty() {
            None
        } else {
            Some((asset_type(raw_type)?, name(raw_name)?))
        };
        let before = if token.is_empty() {
            None
        } else {
            let (at, id) = token.split_once('/').ok_or_else(bad_token)?;
            Some((at.parse::<i64>().map_err(|_| bad_token())?, id.to_owned()))
        };
        let limit = page_size(size);
        let mut conn = self.conn().await?;
        let mut events =
            store::list_audit(&mut conn, &ctx.tenant, asset, before, limit + 1).await?;
        let more = events.len() as i64 > limit;
        events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = match (more, events.last()) {
            (true, Some(e)) => {
                let at =
                    e.at.as_ref()
                        .map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos / 1000));
                format!("{at}/{}", e.id)
            }
            _ => String::new(),
        };
        Ok((events, next))
    }

    /// Applies a bundle atomically: every file is created or updated (and optionally
    /// published) in one transaction; any error leaves the registry untouched.
    pub async fn import(
        &self,
        ctx: &CallerContext,
        files: Vec<BundleFile>,
        publish: bool,
        dry_run: bool,
    ) -> RegistryResult<Vec<ImportResult>> {
        if files.is_empty() {
            return Err(RegistryError::invalid(
                "files",
                "bundle.empty",
                "the bundle holds no files",
            ));
        }
        if files.len() > self.limits.max_bundle_files {
            return Err(RegistryError::invalid(
                "files",
                "limits.bundle_files",
                format!(
                    "the bundle holds {} files; at most {} are allowed",
                    files.len(),
                    self.limits.max_bundle_files
                ),
            ));
        }
        let mut parsed = Vec::with_capacity(files.len());
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        for (i, file) in files.iter().enumerate() {
            match bundle::parse(file) {
                Ok(assets) => {
                    for p in assets {
                        if let Err(m) = validate_name(&p.name) {
                            problems.push(validate::violation(
                                &format!("files[{i}]"),
                                "bundle",
                                "request.name",
                                format!("{}: {m}", p.path),
                            ));
                        } else if !seen.insert((p.asset_type, p.name.clone())) {
                            problems.push(validate::violation(
                                &format!("files[{i}]"),
                                "bundle",
                                "bundle.duplicate",
                                format!(
                                    "{}: {}:{} appears in more than one file",
                                    p.path,
                                    type_slug(p.asset_type),
                                    p.name
                                ),
                            ));
                        } else {
                            parsed.push(p);
                        }
                    }
                }
                Err(m) => problems.push(validate::violation(
                    &format!("files[{i}]"),
                    "bundle",
                    "bundle.parse",
                    m,
                )),
            }
        }
        if !problems.is_empty() {
            return Err(RegistryError::InvalidArgument(problems));
        }
        parsed.sort_by_key(|p| (bundle::dependency_rank(p.asset_type), p.name.clone()));

        let mut tx = self.db.begin_write().await?;
        let mut results = Vec::with_capacity(parsed.len());
        for p in parsed {
            let result = self
                .import_one(&mut tx, ctx, &p, publish)
                .await
                .map_err(|e| prefix_error(&p.path, e))?;
            results.push(result);
        }
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
            self.published_changed();
        }
        Ok(results)
    }

    async fn import_one(
        &self,
        conn: &mut AnyConnection,
        ctx: &CallerContext,
        p: &bundle::ParsedAsset,
        publish: bool,
    ) -> RegistryResult<ImportResult> {
        self.check_content(conn, &ctx.tenant, p.asset_type, &p.content)
            .await?;
        let encoded = store::encode_content(&p.content)?;
        let now = unix_micros();
        let slug = type_slug(p.asset_type);
        let (mut asset, outcome) = match store::find_asset(conn, &ctx.tenant, p.asset_type, &p.name)
            .await?
        {
            None => {
                let row = insert_new_asset(
                    conn,
                    ctx,
                    p.asset_type,
                    &p.name,
                    &p.content,
                    &encoded,
                    now,
                    AuditAction::Import,
                )
                .await?;
                (row, ImportOutcome::Created)
            }
            Some(row) if row.archived() => {
                return Err(RegistryError::precondition(format!(
                    "{slug}:{} is archived; roll it back before importing over it",
                    p.name
                )));
            }
            Some(mut row) => {
                let draft = store::load_draft(conn, &row.asset_id).await?;
                let latest = store::load_version(conn, &row.asset_id, row.latest_version).await?;
                let latest_sha = latest.as_ref().map(|v| v.content_sha256.as_str());
                let draft_sha = draft.as_ref().map(|d| d.content_sha256.as_str());
                // Unchanged: the file is what is live, and no other draft is pending.
                let unchanged = if publish {
                    latest_sha == Some(encoded.sha256.as_str()) && draft.is_none()
                } else {
                    draft_sha.or(latest_sha) == Some(encoded.sha256.as_str())
                };
                if unchanged {
                    (row, ImportOutcome::Unchanged)
                } else {
                    let base = draft.map_or(row.latest_version, |d| d.base_version);
                    row.revision = store::advance_revision(
                        conn,
                        &row,
                        row.revision,
                        AssetChange::default(),
                        now,
                        &ctx.principal,
                    )
                    .await?;
                    store::upsert_draft(
                        conn,
                        &row.asset_id,
                        base,
                        &p.content,
                        &encoded,
                        now,
                        &ctx.principal,
                    )
                    .await?;
                    let entry = store::AuditEntry {
                        asset: &row,
                        action: AuditAction::Import,
                        principal: &ctx.principal,
                        at: now,
                        from_version: base,
                        to_version: 0,
                        revision: row.revision,
                        detail: format!("draft updated from {}", p.path),
                    };
                    store::insert_audit(conn, entry).await?;
                    (row, ImportOutcome::Updated)
                }
            }
        };
        if publish && outcome != ImportOutcome::Unchanged {
            self.publish_draft(conn, ctx, &mut asset, &p.content, &encoded, "import", now)
                .await?;
        }
        Ok(ImportResult {
            path: p.path.clone(),
            r#type: p.asset_type as i32,
            name: p.name.clone(),
            outcome: outcome as i32,
            version: u32::try_from(asset.latest_version).unwrap_or_default(),
        })
    }

    pub async fn export(
        &self,
        ctx: &CallerContext,
        types: &[i32],
        format: BundleFormat,
        include_drafts: bool,
    ) -> RegistryResult<Vec<BundleFile>> {
        let mut wanted = Vec::new();
        for raw in types {
            wanted.push(asset_type(*raw)?);
        }
        if wanted.is_empty() {
            wanted = (1..=9)
                .filter_map(|t| AssetType::try_from(t).ok())
                .collect();
        }
        let mut conn = self.conn().await?;
        let mut files = Vec::new();
        for t in wanted {
            let mut after = None;
            loop {
                let filter = ListFilter {
                    asset_type: Some(t),
                    status: None,
                    scope: "",
                    name_prefix: "",
                    after: after.clone(),
                };
                let page = store::list_assets(&mut conn, &ctx.tenant, &filter, i64::from(MAX_PAGE))
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some((type_slug(t).to_owned(), last.asset.name.clone()));
                for listed in &page {
                    let content = if include_drafts && listed.has_draft {
                        store::load_draft(&mut conn, &listed.asset.asset_id)
                            .await?
                            .map(|d| d.content)
                    } else if listed.asset.latest_version > 0 && !listed.asset.archived() {
                        store::load_version(
                            &mut conn,
                            &listed.asset.asset_id,
                            listed.asset.latest_version,
                        )
                        .await?
                        .map(|v| v.content)
                    } else {
                        None
                    };
                    if let Some(content) = content {
                        files.push(
                            bundle::render(t, &listed.asset.name, &content, format)
                                .map_err(RegistryError::Internal)?,
                        );
                    }
                }
            }
        }
        Ok(files)
    }

    pub async fn simulate_resolver(
        &self,
        ctx: &CallerContext,
        raw_name: &str,
        draft: bool,
        inputs: &[String],
    ) -> RegistryResult<Vec<Resolution>> {
        let n = name(raw_name)?;
        if inputs.len() > 1000 {
            return Err(RegistryError::invalid(
                "inputs",
                "limits.inputs",
                "at most 1000 inputs per call",
            ));
        }
        let selector = if draft {
            Some(get_asset_request::Selector::Draft(true))
        } else {
            None
        };
        let asset = self
            .get(ctx, AssetType::Resolver as i32, n, selector)
            .await?;
        let Some(asset_spec::Kind::Resolver(spec)) = asset.spec.and_then(|s| s.kind) else {
            return Err(RegistryError::Internal(format!(
                "resolver:{n} holds no resolver spec"
            )));
        };
        let engine = ResolverEngine::compile(&spec).map_err(|m| {
            RegistryError::precondition(format!("resolver:{n} does not compile: {m}"))
        })?;
        Ok(inputs.iter().map(|i| engine.resolve(i)).collect())
    }
}

/// Fails with `FAILED_PRECONDITION` when any violation blocks.
fn blocking_precondition(message: String, violations: Vec<Violation>) -> RegistryResult<()> {
    if violations.iter().any(|v| v.blocking) {
        return Err(RegistryError::FailedPrecondition {
            message,
            violations,
        });
    }
    Ok(())
}

/// Inserts a new asset (revision 1) with `content` as its draft, and audits it.
#[allow(clippy::too_many_arguments)]
async fn insert_new_asset(
    conn: &mut AnyConnection,
    ctx: &CallerContext,
    asset_type: AssetType,
    name: &str,
    content: &AssetContent,
    encoded: &store::EncodedContent,
    now: i64,
    action: AuditAction,
) -> RegistryResult<AssetRow> {
    let row = AssetRow {
        asset_id: uuid::Uuid::new_v4().to_string(),
        tenant_id: ctx.tenant.clone(),
        asset_type,
        name: name.to_owned(),
        status: store::STATUS_ACTIVE.to_owned(),
        revision: 1,
        latest_version: 0,
        created_at: now,
        updated_at: now,
        created_by: ctx.principal.clone(),
        updated_by: ctx.principal.clone(),
    };
    store::insert_asset(conn, &row).await?;
    store::upsert_draft(
        conn,
        &row.asset_id,
        0,
        content,
        encoded,
        now,
        &ctx.principal,
    )
    .await?;
    let entry = store::AuditEntry {
        asset: &row,
        action,
        principal: &ctx.principal,
        at: now,
        from_version: 0,
        to_version: 0,
        revision: 1,
        detail: format!("sha256 {}", encoded.sha256),
    };
    store::insert_audit(conn, entry).await?;
    Ok(row)
}

fn prefix_error(path: &str, error: RegistryError) -> RegistryError {
    // "query/ci.yaml#content.spec.query.sql": the file, then the field inside it.
    let prefix = |mut vs: Vec<Violation>| {
        for v in &mut vs {
            v.field = format!("{path}#{}", v.field);
        }
        vs
    };
    match error {
        RegistryError::InvalidArgument(vs) => RegistryError::InvalidArgument(prefix(vs)),
        RegistryError::FailedPrecondition {
            message,
            violations,
        } => RegistryError::FailedPrecondition {
            message: format!("{path}: {message}"),
            violations: prefix(violations),
        },
        RegistryError::AlreadyExists(m) => RegistryError::AlreadyExists(format!("{path}: {m}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use ops_proto::v1::{AssetSpec, PromptSpec, get_asset_request::Selector};

    use super::*;

    #[allow(clippy::panic)] // test setup
    async fn registry() -> Registry {
        // One connection: every operation must release its connection before taking another.
        let db = Db::open("sqlite::memory:", 1, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Registry::new(db, RegistryConfig::default())
    }

    fn prompt(text: &str) -> AssetContent {
        let spec = PromptSpec {
            template: text.into(),
            ..Default::default()
        };
        AssetContent {
            spec: Some(AssetSpec {
                kind: Some(asset_spec::Kind::Prompt(spec)),
            }),
            ..Default::default()
        }
    }

    fn yaml(name: &str, template: &str) -> BundleFile {
        let body = format!("type: prompt\nname: {name}\nspec:\n  template: {template}\n");
        BundleFile {
            path: format!("prompt/{name}.yaml"),
            content: body.into_bytes(),
        }
    }

    #[tokio::test]
    async fn archived_assets_refuse_publish_and_import_until_rolled_back() -> RegistryResult<()> {
        let r = registry().await;
        let ctx = CallerContext::new("acme", "kim");
        let t = AssetType::Prompt as i32;
        let created = r.create(&ctx, t, "p", prompt("v1")).await?;
        let v1 = r.publish(&ctx, t, "p", created.revision, "").await?;
        let draft = r
            .update_draft(&ctx, t, "p", v1.revision, prompt("v2"))
            .await?;
        let archived = r.archive(&ctx, t, "p", draft.revision).await?;

        let err = r.publish(&ctx, t, "p", archived.revision, "").await.err();
        assert!(
            matches!(&err, Some(RegistryError::FailedPrecondition { message, .. }) if message.contains("archived")),
            "{err:?}"
        );
        let err = r
            .import(&ctx, vec![yaml("p", "v3")], false, false)
            .await
            .err();
        assert!(
            matches!(&err, Some(RegistryError::FailedPrecondition { message, .. }) if message.contains("archived")),
            "{err:?}"
        );
        assert_eq!(
            r.get(&ctx, t, "p", Some(Selector::Draft(true)))
                .await?
                .revision,
            archived.revision,
            "nothing changed"
        );

        let revived = r.rollback(&ctx, t, "p", archived.revision, 1, "").await?;
        assert_eq!(
            (revived.version, revived.status),
            (2, AssetStatus::Published as i32)
        );
        Ok(())
    }

    #[tokio::test]
    async fn importing_a_pending_draft_with_publish_reports_an_update() -> RegistryResult<()> {
        let r = registry().await;
        let ctx = CallerContext::new("acme", "kim");
        let first = r.import(&ctx, vec![yaml("p", "v1")], false, false).await?;
        assert_eq!(
            (first[0].outcome, first[0].version),
            (ImportOutcome::Created as i32, 0)
        );
        let again = r.import(&ctx, vec![yaml("p", "v1")], false, false).await?;
        assert_eq!(
            again[0].outcome,
            ImportOutcome::Unchanged as i32,
            "same draft, no publish"
        );
        let published = r.import(&ctx, vec![yaml("p", "v1")], true, false).await?;
        assert_eq!(
            (published[0].outcome, published[0].version),
            (ImportOutcome::Updated as i32, 1)
        );
        let audit = r.audit(&ctx, AssetType::Prompt as i32, "p", 0, "").await?.0;
        let actions: Vec<i32> = audit.iter().rev().map(|e| e.action).collect();
        let expected = [
            AuditAction::Import,
            AuditAction::Import,
            AuditAction::Publish,
        ];
        assert_eq!(
            actions,
            expected.map(|a| a as i32).to_vec(),
            "audit keeps write order"
        );
        Ok(())
    }

    #[tokio::test]
    async fn reimporting_the_demo_bundle_changes_nothing() -> RegistryResult<()> {
        let r = registry().await;
        let ctx = CallerContext::new("acme", "kim");
        let files = crate::demo::plant_ops_bundle();
        let first = r.import(&ctx, files.clone(), true, false).await?;
        assert!(first.iter().all(|a| a.version == 1), "{first:?}");
        // Twice more: a Tool's config is a hash map, so one lucky repeat would prove nothing.
        for _ in 0..2 {
            let again = r.import(&ctx, files.clone(), true, false).await?;
            let changed: Vec<&str> = again
                .iter()
                .filter(|a| a.outcome != ImportOutcome::Unchanged as i32 || a.version != 1)
                .map(|a| a.path.as_str())
                .collect();
            assert!(changed.is_empty(), "re-published: {changed:?}");
        }
        Ok(())
    }
}
