//! Registry RPCs that reach a Source through the executor sidecars: TestSource, and ScanSchema,
//! which turns a scan into a SchemaCatalog draft for an admin to review and publish. A rescan
//! keeps what people curated (display names, synonyms, semantic types, mappings).

use std::collections::{BTreeMap, HashMap};

use ops_proto::executor as ex;
use ops_proto::executor_api::{CallContext, ExecutorApi, ExecutorError, ExecutorErrorKind};
use ops_proto::v1::*;

use super::scan_proposals::{self as proposals, MAX_ENUM_VALUES};
use super::{Registry, RegistryError, RegistryResult};
use crate::context::CallerContext;
use crate::execute::Executors;

/// Column names that hold secrets: marked SECRET, and their tables start disabled so the
/// planner never sees them unless an admin decides otherwise.
const SECRET_MARKERS: [&str; 5] = ["password", "secret", "token", "credential", "api_key"];

/// Rows ScanSchema samples per table to profile its columns.
const SAMPLE_ROWS: u32 = 5000;

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
        let scan_request = |filters: BTreeMap<String, String>, max_values| ex::ScanSchemaRequest {
            source: Some(executors.source_config(&id, &spec)),
            include_tables: request.include_tables.clone(),
            exclude_tables: request.exclude_tables.clone(),
            schemas: schemas.clone(),
            sample_rows: SAMPLE_ROWS,
            sample_filter_columns: filters.into_iter().collect(),
            sample_filter_value: ctx.tenant.clone(),
            redact_markers: SECRET_MARKERS.map(str::to_owned).to_vec(),
            max_values,
            find_value: ctx.tenant.clone(),
        };
        // First the tenant column of each table (the column holding the caller's tenant id;
        // no values come back), then a profile of the caller's own rows only: no other
        // tenant's values are read into a proposal.
        let everyone = executors
            .sql
            .scan_schema(CallContext::default(), scan_request(BTreeMap::new(), 0))
            .await?;
        let tenant_columns = proposals::tenant_columns(&everyone.tables);
        let scan = executors
            .sql
            .scan_schema(
                CallContext::default(),
                scan_request(tenant_columns.clone(), MAX_ENUM_VALUES),
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
        let (catalog, notes) = catalog_from_scan(
            &request,
            &scan.tables,
            previous.as_ref(),
            &tenant_columns,
            &ctx.tenant,
        );
        let proposed_vocabulary = proposals::value_vocabulary(&catalog);
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
            notes,
            proposed_vocabulary,
        })
    }
}

fn is_secret(column: &str) -> bool {
    let lower = column.to_lowercase();
    SECRET_MARKERS.iter().any(|m| lower.contains(m))
}

/// A catalog from scanned tables, keeping curated fields of tables and columns that remain;
/// what the data suggests (semantic types, enum values, mappings, synonyms) fills only what
/// nobody curated. The notes say what was inferred, for review.
pub fn catalog_from_scan(
    request: &ScanSchemaRequest,
    scanned: &[ex::ScannedTable],
    previous: Option<&SchemaCatalogSpec>,
    tenant_columns: &BTreeMap<String, String>,
    tenant: &str,
) -> (SchemaCatalogSpec, Vec<String>) {
    let mut notes = Vec::new();
    let old_tables: HashMap<&str, &CatalogTable> = previous
        .map(|p| p.tables.iter().map(|t| (t.name.as_str(), t)).collect())
        .unwrap_or_default();
    let tables: Vec<CatalogTable> = scanned
        .iter()
        .map(|t| {
            let old = old_tables.get(t.name.as_str());
            let old_columns: HashMap<&str, &CatalogColumn> = old
                .map(|o| o.columns.iter().map(|c| (c.name.as_str(), c)).collect())
                .unwrap_or_default();
            let tenant_column = tenant_columns.get(&t.name).cloned().unwrap_or_default();
            let has_secret = t.columns.iter().any(|c| is_secret(&c.name));
            let keys: Vec<String> = proposals::references(t, scanned)
                .into_iter()
                .map(|(column, _)| column)
                .chain(proposals::primary_key(t).map(str::to_owned))
                .collect();
            let mut code_taken = false;
            let columns: Vec<CatalogColumn> = t
                .columns
                .iter()
                .map(|c| {
                    let guess = proposals::guess_column(c, keys.contains(&c.name), code_taken);
                    let (semantic, filterable, enum_values) = if is_secret(&c.name) {
                        (SemanticType::Secret, false, Vec::new())
                    } else if c.name == tenant_column {
                        (SemanticType::Tenant, false, Vec::new())
                    } else {
                        (guess.semantic, guess.filterable, guess.enum_values)
                    };
                    code_taken |= semantic == SemanticType::Code;
                    let mut column = CatalogColumn {
                        name: c.name.clone(),
                        data_type: c.data_type.clone(),
                        semantic_type: semantic as i32,
                        primary_key: c.primary_key,
                        nullable: c.nullable,
                        filterable,
                        enum_values,
                        synonyms: proposals::other_words(&c.name),
                        ..Default::default()
                    };
                    if let Some(o) = old_columns.get(c.name.as_str()) {
                        column.display_name = o.display_name.clone();
                        column.synonyms = o.synonyms.clone();
                        column.unit = o.unit.clone();
                        column.enum_values = o.enum_values.clone();
                        column.filterable = o.filterable;
                        column.description = o.description.clone();
                        column.ordered = o.ordered;
                        if o.semantic_type != SemanticType::Unspecified as i32 {
                            column.semantic_type = o.semantic_type;
                        }
                    }
                    column
                })
                .collect();
            if old.is_none() {
                notes.push(table_note(&t.name, &columns, t.sampled_rows));
            }
            CatalogTable {
                name: t.name.clone(),
                schema: t.schema.clone(),
                display_name: old.map(|o| o.display_name.clone()).unwrap_or_default(),
                synonyms: old
                    .map(|o| o.synonyms.clone())
                    .unwrap_or_else(|| proposals::other_words(&t.name)),
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
    let without_tenant: Vec<&str> = tables
        .iter()
        .filter(|t| t.tenant_column.is_empty())
        .map(|t| t.name.as_str())
        .collect();
    let with_tenant: Vec<String> = tables
        .iter()
        .filter(|t| !t.tenant_column.is_empty())
        .map(|t| format!("{}.{}", t.name, t.tenant_column))
        .collect();
    if !with_tenant.is_empty() {
        notes.insert(
            0,
            format!(
                "tenant column (holds {tenant:?}): {}",
                with_tenant.join(", ")
            ),
        );
    }
    if !without_tenant.is_empty() {
        notes.insert(
            0,
            format!(
                "no column of {} holds the tenant id {tenant:?} in the rows sampled: set its tenant_column, or list it under the Policy's global_tables if every tenant may read it",
                without_tenant.join(", ")
            ),
        );
    }
    let mut metrics = previous.and_then(|p| p.metrics.clone());
    if metrics.is_none()
        && let Some((mapping, note)) = proposals::metric_mapping(&tables, scanned, tenant_columns)
    {
        metrics = Some(mapping);
        notes.push(note);
    }
    let mut graph = previous.and_then(|p| p.graph.clone());
    if graph.is_none()
        && let Some((mapping, note)) = proposals::graph_mapping(&tables, scanned, tenant_columns)
    {
        graph = Some(mapping);
        notes.push(note);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let catalog = SchemaCatalogSpec {
        source_ref: format!("source:{}", request.source_name),
        tables,
        graph,
        metrics,
        scanned_at: Some(pbjson_types::Timestamp {
            seconds: now,
            nanos: 0,
        }),
        include_tables: request.include_tables.clone(),
        exclude_tables: request.exclude_tables.clone(),
    };
    (catalog, notes)
}

/// One line per new table: the roles its columns were given.
fn table_note(table: &str, columns: &[CatalogColumn], sampled: u32) -> String {
    let named = |semantic: SemanticType| {
        columns
            .iter()
            .filter(|c| c.semantic_type == semantic as i32)
            .map(|c| {
                if c.enum_values.is_empty() {
                    c.name.clone()
                } else {
                    format!("{} ({} values)", c.name, c.enum_values.len())
                }
            })
            .collect::<Vec<_>>()
    };
    let parts: Vec<String> = [
        ("code", SemanticType::Code),
        ("names", SemanticType::Name),
        ("enum-like", SemanticType::Attribute),
        ("timestamps", SemanticType::Timestamp),
        ("measures", SemanticType::Measure),
        ("text", SemanticType::Text),
        ("secrets", SemanticType::Secret),
    ]
    .into_iter()
    .filter_map(|(label, semantic)| {
        let names = named(semantic);
        (!names.is_empty()).then(|| format!("{label} {}", names.join(", ")))
    })
    .collect();
    format!("{table} ({sampled} rows sampled): {}", parts.join("; "))
}
