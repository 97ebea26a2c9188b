//! Registry RPCs that reach a Source through the executor sidecars: TestSource, and ScanSchema,
//! which turns a scan into a SchemaCatalog draft for an admin to review and publish. A rescan
//! keeps what people curated (display names, synonyms, semantic types, mappings).

use std::collections::HashMap;

use ops_proto::executor as ex;
use ops_proto::executor_api::{CallContext, ExecutorApi, ExecutorError, ExecutorErrorKind};
use ops_proto::v1::*;

use super::{Registry, RegistryError, RegistryResult};
use crate::context::CallerContext;
use crate::execute::Executors;

/// Column names that hold secrets: marked SECRET, and their tables start disabled so the
/// planner never sees them unless an admin decides otherwise.
const SECRET_MARKERS: [&str; 5] = ["password", "secret", "token", "credential", "api_key"];
const TENANT_COLUMNS: [&str; 3] = ["tenant_id", "tenant", "tenant_code"];

impl From<ExecutorError> for RegistryError {
    fn from(error: ExecutorError) -> Self {
        match error.kind {
            ExecutorErrorKind::InvalidArgument => RegistryError::invalid(
                error.field.as_deref().unwrap_or("source"),
                "executor",
                error.message,
            ),
            ExecutorErrorKind::NotFound => RegistryError::NotFound(error.message),
            ExecutorErrorKind::Internal => RegistryError::Internal(error.message),
            ExecutorErrorKind::Unavailable => RegistryError::Unavailable(error.message),
            ExecutorErrorKind::DeadlineExceeded => RegistryError::DeadlineExceeded(error.message),
            _ => RegistryError::precondition(error.message),
        }
    }
}

impl Registry {
    async fn source(
        &self,
        ctx: &CallerContext,
        name: &str,
        draft: bool,
    ) -> RegistryResult<(String, SourceSpec)> {
        let selector = draft.then_some(get_asset_request::Selector::Draft(true));
        let asset = self
            .get(ctx, AssetType::Source as i32, name, selector)
            .await?;
        let Some(asset_spec::Kind::Source(spec)) = asset.spec.and_then(|s| s.kind) else {
            return Err(RegistryError::Internal(format!(
                "source:{name} holds no source spec"
            )));
        };
        // Version 0 is the draft: it gets its own pool key.
        let id = format!("{}/source:{name}@{}", ctx.tenant, asset.version);
        Ok((id, spec))
    }

    pub async fn test_source(
        &self,
        executors: &Executors,
        ctx: &CallerContext,
        name: &str,
        draft: bool,
    ) -> RegistryResult<TestSourceResponse> {
        let (id, spec) = self.source(ctx, name, draft).await?;
        let request = ex::TestConnectionRequest {
            source: Some(executors.source_config(&id, &spec)),
        };
        let response = executors
            .sql
            .test_connection(CallContext::default(), request)
            .await;
        Ok(match response {
            Ok(r) => TestSourceResponse {
                ok: r.ok,
                read_only: r.read_only,
                server_version: r.server_version,
                latency_ms: r.latency_ms.round() as u32,
                message: r.message,
            },
            // Unreachable or refusing sources are an answer, not an RPC failure.
            Err(e)
                if matches!(
                    e.kind,
                    ExecutorErrorKind::Unavailable
                        | ExecutorErrorKind::PermissionDenied
                        | ExecutorErrorKind::FailedPrecondition
                        | ExecutorErrorKind::DeadlineExceeded
                ) =>
            {
                TestSourceResponse {
                    ok: false,
                    message: e.message,
                    ..Default::default()
                }
            }
            Err(e) => return Err(e.into()),
        })
    }

    pub async fn scan_schema(
        &self,
        executors: &Executors,
        ctx: &CallerContext,
        request: ScanSchemaRequest,
    ) -> RegistryResult<ScanSchemaResponse> {
        let (id, spec) = self.source(ctx, &request.source_name, false).await?;
        let catalog_name = if request.catalog_name.is_empty() {
            request.source_name.clone()
        } else {
            request.catalog_name.clone()
        };
        let schemas = spec
            .permissions
            .as_ref()
            .map(|p| p.schema_allowlist.clone())
            .unwrap_or_default();
        let scan = executors
            .sql
            .scan_schema(
                CallContext::default(),
                ex::ScanSchemaRequest {
                    source: Some(executors.source_config(&id, &spec)),
                    include_tables: request.include_tables.clone(),
                    exclude_tables: request.exclude_tables.clone(),
                    schemas,
                },
            )
            .await?;

        let existing = self
            .get(
                ctx,
                AssetType::SchemaCatalog as i32,
                &catalog_name,
                Some(get_asset_request::Selector::Draft(true)),
            )
            .await;
        let existing = match existing {
            Ok(asset) => Some(asset),
            Err(RegistryError::NotFound(_)) => match self
                .get(ctx, AssetType::SchemaCatalog as i32, &catalog_name, None)
                .await
            {
                Ok(asset) => Some(asset),
                Err(RegistryError::NotFound(_)) => None,
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let previous =
            existing
                .as_ref()
                .and_then(|a| match a.spec.as_ref().and_then(|s| s.kind.as_ref()) {
                    Some(asset_spec::Kind::SchemaCatalog(c)) => Some(c.clone()),
                    _ => None,
                });
        let catalog = catalog_from_scan(&request, &scan.tables, previous.as_ref());
        let tables = catalog.tables.len() as u32;
        let columns = catalog.tables.iter().map(|t| t.columns.len() as u32).sum();
        let content = AssetContent {
            description: existing
                .as_ref()
                .map(|a| a.description.clone())
                .unwrap_or_else(|| format!("scanned from source:{}", request.source_name)),
            scope: existing
                .as_ref()
                .map(|a| a.scope.clone())
                .unwrap_or_default(),
            tags: existing
                .as_ref()
                .map(|a| a.tags.clone())
                .unwrap_or_default(),
            bindings: existing
                .as_ref()
                .map(|a| a.bindings.clone())
                .unwrap_or_default(),
            spec: Some(AssetSpec {
                kind: Some(asset_spec::Kind::SchemaCatalog(catalog)),
            }),
        };
        let asset = match existing {
            None => {
                self.create(ctx, AssetType::SchemaCatalog as i32, &catalog_name, content)
                    .await?
            }
            Some(asset) => {
                let expected = if request.expected_revision == 0 {
                    asset.revision
                } else {
                    request.expected_revision
                };
                self.update_draft(
                    ctx,
                    AssetType::SchemaCatalog as i32,
                    &catalog_name,
                    expected,
                    content,
                )
                .await?
            }
        };
        Ok(ScanSchemaResponse {
            catalog: Some(asset),
            tables,
            columns,
        })
    }
}

fn is_secret(column: &str) -> bool {
    let lower = column.to_lowercase();
    SECRET_MARKERS.iter().any(|m| lower.contains(m))
}

/// A catalog from scanned tables, keeping curated fields of tables and columns that remain.
pub fn catalog_from_scan(
    request: &ScanSchemaRequest,
    scanned: &[ex::ScannedTable],
    previous: Option<&SchemaCatalogSpec>,
) -> SchemaCatalogSpec {
    let old_tables: HashMap<&str, &CatalogTable> = previous
        .map(|p| p.tables.iter().map(|t| (t.name.as_str(), t)).collect())
        .unwrap_or_default();
    let tables = scanned
        .iter()
        .map(|t| {
            let old = old_tables.get(t.name.as_str());
            let old_columns: HashMap<&str, &CatalogColumn> = old
                .map(|o| o.columns.iter().map(|c| (c.name.as_str(), c)).collect())
                .unwrap_or_default();
            let tenant_column = t
                .columns
                .iter()
                .find(|c| TENANT_COLUMNS.contains(&c.name.to_lowercase().as_str()))
                .map(|c| c.name.clone())
                .unwrap_or_default();
            let has_secret = t.columns.iter().any(|c| is_secret(&c.name));
            let columns = t
                .columns
                .iter()
                .map(|c| {
                    let semantic = if is_secret(&c.name) {
                        SemanticType::Secret
                    } else if c.name == tenant_column {
                        SemanticType::Tenant
                    } else if c.primary_key {
                        SemanticType::Identifier
                    } else {
                        SemanticType::Unspecified
                    };
                    let mut column = CatalogColumn {
                        name: c.name.clone(),
                        data_type: c.data_type.clone(),
                        semantic_type: semantic as i32,
                        primary_key: c.primary_key,
                        nullable: c.nullable,
                        ..Default::default()
                    };
                    if let Some(o) = old_columns.get(c.name.as_str()) {
                        column.display_name = o.display_name.clone();
                        column.synonyms = o.synonyms.clone();
                        column.unit = o.unit.clone();
                        column.enum_values = o.enum_values.clone();
                        column.filterable = o.filterable;
                        column.description = o.description.clone();
                        if o.semantic_type != SemanticType::Unspecified as i32 {
                            column.semantic_type = o.semantic_type;
                        }
                    }
                    column
                })
                .collect();
            CatalogTable {
                name: t.name.clone(),
                schema: t.schema.clone(),
                display_name: old.map(|o| o.display_name.clone()).unwrap_or_default(),
                synonyms: old.map(|o| o.synonyms.clone()).unwrap_or_default(),
                description: old.map(|o| o.description.clone()).unwrap_or_default(),
                tenant_column: old
                    .map(|o| o.tenant_column.clone())
                    .filter(|c| !c.is_empty())
                    .unwrap_or(tenant_column),
                enabled: old.map_or(!has_secret, |o| o.enabled),
                columns,
                foreign_keys: t
                    .foreign_keys
                    .iter()
                    .map(|f| CatalogForeignKey {
                        columns: f.columns.clone(),
                        referenced_table: f.referenced_table.clone(),
                        referenced_columns: f.referenced_columns.clone(),
                    })
                    .collect(),
            }
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    SchemaCatalogSpec {
        source_ref: format!("source:{}", request.source_name),
        tables,
        graph: previous.and_then(|p| p.graph.clone()),
        metrics: previous.and_then(|p| p.metrics.clone()),
        scanned_at: Some(pbjson_types::Timestamp {
            seconds: now,
            nanos: 0,
        }),
        include_tables: request.include_tables.clone(),
        exclude_tables: request.exclude_tables.clone(),
    }
}
