//! Plugin RPCs of the registry: upload (checked, precompiled, stored content-addressed), list,
//! and previews that run a Mapping or Screen asset through the plugin host.

use async_trait::async_trait;
use ops_proto::v1::*;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Registry, RegistryError, RegistryResult, timestamp};
use crate::context::CallerContext;
use crate::plugins::{
    CallLimits, PluginBlobs, PluginError, PluginHost, PluginResult, convert, digest_of,
};
use crate::storage::unix_micros;

const PLUGIN_COLUMNS: &str =
    "digest, world, size_bytes, name, version, description, contract, uploaded_at, uploaded_by";

fn world_slug(world: PluginWorld) -> &'static str {
    match world {
        PluginWorld::Screen => "screen",
        _ => "mapper",
    }
}

fn plugin_row(row: &AnyRow) -> RegistryResult<PluginInfo> {
    let world: String = row.try_get("world")?;
    Ok(PluginInfo {
        digest: row.try_get("digest")?,
        world: if world == "screen" {
            PluginWorld::Screen
        } else {
            PluginWorld::Mapper
        } as i32,
        size_bytes: u64::try_from(row.try_get::<i64, _>("size_bytes")?).unwrap_or_default(),
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        description: row.try_get("description")?,
        contract: row.try_get("contract")?,
        uploaded_at: Some(timestamp(row.try_get("uploaded_at")?)),
        uploaded_by: row.try_get("uploaded_by")?,
    })
}

impl Registry {
    pub async fn upload_plugin(
        &self,
        host: &PluginHost,
        ctx: &CallerContext,
        req: UploadPluginRequest,
    ) -> RegistryResult<UploadPluginResponse> {
        let digest = digest_of(&req.wasm);
        if let Some(existing) = self.plugin_info(&ctx.tenant, &digest).await? {
            check_world(&existing, req.expected_world)?;
            return Ok(UploadPluginResponse {
                plugin: Some(existing),
                created: false,
                compile_ms: 0.0,
            });
        }
        let size = req.wasm.len();
        let inspected = host.inspect_async(req.wasm.clone()).await?;
        let plugin = &inspected.plugin;
        let info = PluginInfo {
            digest: plugin.digest.clone(),
            world: plugin.world as i32,
            size_bytes: size as u64,
            name: plugin.info.name.clone(),
            version: plugin.info.version.clone(),
            description: plugin.info.description.clone(),
            contract: plugin.info.contract.clone(),
            uploaded_at: None,
            uploaded_by: ctx.principal.clone(),
        };
        check_world(&info, req.expected_world)?;
        let now = unix_micros();
        let mut tx = self.db().begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO plugin_blobs (tenant_id, digest, world, size_bytes, wasm, name, version, description, contract, uploaded_at, uploaded_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (tenant_id, digest) DO NOTHING",
        )
        .bind(&ctx.tenant)
        .bind(&info.digest)
        .bind(world_slug(plugin.world))
        .bind(size as i64)
        .bind(req.wasm)
        .bind(&info.name)
        .bind(&info.version)
        .bind(&info.description)
        .bind(&info.contract)
        .bind(now)
        .bind(&ctx.principal)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        tracing::info!(tenant = %ctx.tenant, digest = %info.digest, plugin = %plugin.label(), "plugin uploaded");
        Ok(UploadPluginResponse {
            plugin: Some(PluginInfo {
                uploaded_at: Some(timestamp(now)),
                ..info
            }),
            created: inserted > 0,
            compile_ms: inspected.compile_ms.unwrap_or_default(),
        })
    }

    pub async fn list_plugins(&self, ctx: &CallerContext) -> RegistryResult<Vec<PluginInfo>> {
        // Only constants are formatted in: no caller text reaches the statement.
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {PLUGIN_COLUMNS} FROM plugin_blobs WHERE tenant_id = $1 ORDER BY uploaded_at, digest"
        ));
        let rows = sqlx::query(sql)
            .bind(&ctx.tenant)
            .fetch_all(self.db().pool())
            .await?;
        rows.iter().map(plugin_row).collect()
    }

    pub async fn plugin_info(
        &self,
        tenant: &str,
        digest: &str,
    ) -> RegistryResult<Option<PluginInfo>> {
        let mut conn = self.db().pool().acquire().await?;
        plugin_info_in(&mut conn, tenant, digest).await
    }

    /// Runs a Mapping asset on the given tool results.
    pub async fn preview_mapping(
        &self,
        host: &PluginHost,
        ctx: &CallerContext,
        req: PreviewMappingRequest,
    ) -> RegistryResult<PreviewMappingResponse> {
        let spec = match self
            .spec(ctx, AssetType::Mapping, &req.name, req.draft)
            .await?
        {
            asset_spec::Kind::Mapping(spec) => spec,
            _ => {
                return Err(RegistryError::Internal(format!(
                    "mapping:{} holds no mapping spec",
                    req.name
                )));
            }
        };
        let limits = self.plugin_limits(host, ctx, &req.policy).await?;
        let results = req
            .results
            .iter()
            .map(convert::tool_result_from_pb)
            .collect();
        let outcome = host
            .compose(
                &ctx.tenant,
                Some(&spec),
                &req.question,
                results,
                limits,
                &self.blobs(),
            )
            .await?;
        Ok(PreviewMappingResponse {
            blocks: outcome.output.iter().map(convert::block_to_pb).collect(),
            run: Some(outcome.report.to_proto()),
        })
    }

    /// Runs a Screen asset on the given blocks.
    pub async fn preview_screen(
        &self,
        host: &PluginHost,
        ctx: &CallerContext,
        req: PreviewScreenRequest,
    ) -> RegistryResult<PreviewScreenResponse> {
        let spec = match self
            .spec(ctx, AssetType::Screen, &req.name, req.draft)
            .await?
        {
            asset_spec::Kind::Screen(spec) => spec,
            _ => {
                return Err(RegistryError::Internal(format!(
                    "screen:{} holds no screen spec",
                    req.name
                )));
            }
        };
        let limits = self.plugin_limits(host, ctx, &req.policy).await?;
        let blocks = req
            .blocks
            .iter()
            .filter_map(convert::block_from_pb)
            .collect();
        let outcome = host
            .present(&ctx.tenant, Some(&spec), blocks, limits, &self.blobs())
            .await?;
        Ok(PreviewScreenResponse {
            screen: Some(convert::screen_to_pb(&outcome.output)),
            run: Some(outcome.report.to_proto()),
        })
    }

    async fn spec(
        &self,
        ctx: &CallerContext,
        t: AssetType,
        name: &str,
        draft: bool,
    ) -> RegistryResult<asset_spec::Kind> {
        let selector = draft.then_some(get_asset_request::Selector::Draft(true));
        let asset = self.get(ctx, t as i32, name, selector).await?;
        asset
            .spec
            .and_then(|s| s.kind)
            .ok_or_else(|| RegistryError::Internal(format!("{name} holds no spec")))
    }

    /// The named Policy's plugin limits (latest published), or the host defaults.
    async fn plugin_limits(
        &self,
        host: &PluginHost,
        ctx: &CallerContext,
        policy: &str,
    ) -> RegistryResult<CallLimits> {
        if policy.is_empty() {
            return Ok(CallLimits::resolve(host.config(), None));
        }
        let limits = match self.spec(ctx, AssetType::Policy, policy, false).await? {
            asset_spec::Kind::Policy(p) => p.plugin_limits,
            _ => None,
        };
        Ok(CallLimits::resolve(host.config(), limits.as_ref()))
    }

    pub fn blobs(&self) -> RegistryBlobs {
        RegistryBlobs {
            registry: self.clone(),
        }
    }

    /// Publish-time check of a Mapping or Screen asset's plugin reference: uploaded in this
    /// tenant, and implementing the asset's world.
    pub(super) async fn check_plugin_ref(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        content: &AssetContent,
    ) -> RegistryResult<Option<(String, String, String)>> {
        let spec = content.spec.as_ref().and_then(|s| s.kind.as_ref());
        let (digest, expected) = match spec {
            Some(asset_spec::Kind::Mapping(MappingSpec {
                implementation: Some(mapping_spec::Implementation::Plugin(r)),
            })) => (&r.digest, PluginWorld::Mapper),
            Some(asset_spec::Kind::Screen(ScreenSpec {
                implementation: Some(screen_spec::Implementation::Plugin(r)),
            })) => (&r.digest, PluginWorld::Screen),
            _ => return Ok(None),
        };
        // On the caller's connection: publish validates inside its write transaction.
        Ok(match plugin_info_in(conn, tenant, digest).await? {
            None => Some((
                "spec.plugin.digest".into(),
                "plugin.exists".into(),
                format!(
                    "plugin {digest} is not uploaded in tenant {tenant}; upload it with AssetRegistry/UploadPlugin first"
                ),
            )),
            Some(info) if info.world != expected as i32 => Some((
                "spec.plugin.digest".into(),
                "plugin.world".into(),
                format!(
                    "plugin {digest} ({}@{}) implements {}, but this asset needs {}",
                    info.name,
                    info.version,
                    crate::plugins::world_name(info.world()),
                    crate::plugins::world_name(expected)
                ),
            )),
            Some(_) => None,
        })
    }
}

async fn plugin_info_in(
    conn: &mut AnyConnection,
    tenant: &str,
    digest: &str,
) -> RegistryResult<Option<PluginInfo>> {
    // Only constants are formatted in: no caller text reaches the statement.
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {PLUGIN_COLUMNS} FROM plugin_blobs WHERE tenant_id = $1 AND digest = $2"
    ));
    let row = sqlx::query(sql)
        .bind(tenant)
        .bind(digest)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(plugin_row).transpose()
}

fn check_world(info: &PluginInfo, expected: i32) -> RegistryResult<()> {
    if expected == PluginWorld::Unspecified as i32 || info.world == expected {
        return Ok(());
    }
    let expected = PluginWorld::try_from(expected).unwrap_or(PluginWorld::Unspecified);
    Err(RegistryError::invalid(
        "expected_world",
        "plugin.world",
        format!(
            "the component implements {}, not the expected {}",
            crate::plugins::world_name(info.world()),
            crate::plugins::world_name(expected)
        ),
    ))
}

/// The registry as the plugin host's byte source.
pub struct RegistryBlobs {
    registry: Registry,
}

#[async_trait]
impl PluginBlobs for RegistryBlobs {
    async fn fetch(&self, tenant: &str, digest: &str) -> PluginResult<Vec<u8>> {
        let row = sqlx::query("SELECT wasm FROM plugin_blobs WHERE tenant_id = $1 AND digest = $2")
            .bind(tenant)
            .bind(digest)
            .fetch_optional(self.registry.db().pool())
            .await
            .map_err(|e| PluginError::Internal(format!("read plugin {digest}: {e}")))?;
        let row = row.ok_or_else(|| PluginError::NotFound {
            digest: digest.to_owned(),
        })?;
        row.try_get::<Vec<u8>, _>("wasm")
            .map_err(|e| PluginError::Internal(format!("read plugin {digest}: {e}")))
    }
}
