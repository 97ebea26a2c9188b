//! One tenant's view of the registry as the pipeline runs it: the published assets each stage
//! uses (with their exact versions, for the trace) and the planner's [`Knowledge`], built from
//! those assets and the tenant's own rows read through the guarded SQL path.
//!
//! Building it costs a few executor round trips, so it is cached per tenant and rebuilt when the
//! tenant's assets change: at once for changes made through this replica (the registry's
//! generation), and for another replica's within `registry.snapshot_recheck_ms`, when one
//! indexed query (count, revisions, last update) confirms or refutes the cached view.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use ops_proto::executor::{self as ex, execute_request, execute_response};
use ops_proto::v1::{
    AssetContent, AssetRef, AssetType, PromptPurpose, SchemaCatalogSpec, SemanticType, SourceKind,
    asset_spec::Kind,
};
use tokio::sync::Mutex;

use super::error::PipelineError;
use crate::execute::source_health::SourceHealth;
use crate::execute::{Executors, failover};
use crate::model::plan_kind::Mode;
use crate::model::refs::{AssetReference, VersionSelector};
use crate::model::sentences::Sentences;
use crate::model::snapshot::{Applied, GuardSettings, Snapshot, SourceBinding};
use crate::model::source_dialect;
use crate::registry::Registry;
use crate::registry::store;
use crate::route_plan::knowledge::{self, PlannerAssets, Rows};
use crate::route_plan::planner::ToolChoice;
use crate::validate::sql_build::Select;
use crate::validate::sql_guard::GuardPolicy;
use crate::validate::sql_prepare::{self, Bind};

/// Change marker of a tenant's assets.
type Fingerprint = (i64, i64, i64);

/// A cached snapshot and when its fingerprint was last confirmed.
struct Entry {
    fingerprint: Fingerprint,
    generation: u64,
    checked: Instant,
    snapshot: Arc<Snapshot>,
}

type Entries = HashMap<String, Entry>;

/// Per-tenant snapshots, rebuilt when the tenant's assets change.
#[derive(Clone, Default)]
pub struct SnapshotCache {
    entries: Arc<Mutex<Entries>>,
    rows: RowsCache,
}

/// Versions of a tenant's row reads kept (the published assets' and a few overrides').
const ROWS_KEPT: usize = 4;

/// The tenant rows the planner learns from, by the assets that decide what is read (source,
/// fallbacks, catalog, policy, tools). A test run that overrides only a Mapping, a Screen or a
/// Prompt reuses them and reads no source: a replay of COMPOSE works with the sources down.
#[derive(Clone, Default)]
struct RowsCache {
    entries: Arc<std::sync::Mutex<HashMap<String, KeyedRows>>>,
}

/// Rows per catalog table.
type TenantRows = Arc<BTreeMap<String, Rows>>;
/// One tenant's row reads, newest first, by the assets that decided them.
type KeyedRows = Vec<(String, TenantRows)>;

impl RowsCache {
    fn get(&self, tenant: &str, key: &str) -> Option<TenantRows> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(tenant)?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, rows)| rows.clone())
    }

    fn put(&self, tenant: &str, key: String, rows: TenantRows) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let kept = entries.entry(tenant.to_owned()).or_default();
        kept.retain(|(k, _)| *k != key);
        kept.insert(0, (key, rows));
        kept.truncate(ROWS_KEPT);
    }
}

impl std::fmt::Debug for SnapshotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCache").finish_non_exhaustive()
    }
}

impl SnapshotCache {
    /// The tenant's current snapshot. A change made through this replica's registry is seen at
    /// once; another replica's within `registry.snapshot_recheck()`, when the fingerprint is
    /// read again. With `overrides` (test mode) a fresh snapshot is built with the named
    /// versions and never cached.
    pub async fn get(
        &self,
        registry: &Registry,
        executors: &Executors,
        health: &SourceHealth,
        tenant: &str,
        overrides: &[AssetReference],
    ) -> Result<Arc<Snapshot>, PipelineError> {
        if !overrides.is_empty() {
            return Ok(Arc::new(
                load(registry, executors, health, &self.rows, tenant, overrides).await?,
            ));
        }
        let generation = registry.generation();
        // One builder per cache: concurrent first requests wait for one build, not N.
        let mut entries = self.entries.lock().await;
        if let Some(entry) = entries.get(tenant)
            && entry.generation == generation
            && entry.checked.elapsed() < registry.snapshot_recheck()
        {
            counted("cached");
            return Ok(entry.snapshot.clone());
        }
        let fingerprint = fingerprint(registry, tenant).await?;
        if let Some(entry) = entries.get_mut(tenant)
            && entry.fingerprint == fingerprint
        {
            entry.generation = generation;
            entry.checked = Instant::now();
            counted("rechecked");
            return Ok(entry.snapshot.clone());
        }
        let snapshot = Arc::new(load(registry, executors, health, &self.rows, tenant, &[]).await?);
        entries.insert(
            tenant.to_owned(),
            Entry {
                fingerprint,
                generation,
                checked: Instant::now(),
                snapshot: snapshot.clone(),
            },
        );
        tracing::info!(tenant, "tenant snapshot rebuilt");
        counted("rebuilt");
        Ok(snapshot)
    }
}

fn counted(result: &str) {
    crate::metrics::get()
        .snapshots
        .with_label_values(&[result])
        .inc();
}

async fn fingerprint(registry: &Registry, tenant: &str) -> Result<Fingerprint, PipelineError> {
    let mut conn = registry.db().pool().acquire().await?;
    Ok(store::tenant_fingerprint(&mut conn, tenant).await?)
}

/// Latest published (or overridden) content of every asset of one type. An override may
/// name an asset that was never published (a new Query or Tool tried as a draft).
async fn published(
    registry: &Registry,
    tenant: &str,
    asset_type: AssetType,
    overrides: &[AssetReference],
) -> Result<Vec<Applied<Kind>>, PipelineError> {
    let mut conn = registry.db().pool().acquire().await?;
    let mut rows: Vec<(String, String, i64, AssetContent)> =
        store::latest_published(&mut conn, tenant, asset_type)
            .await?
            .into_iter()
            .map(|(asset, content)| (asset.asset_id, asset.name, content.version, content.content))
            .collect();
    for o in overrides.iter().filter(|o| o.asset_type == asset_type) {
        if rows.iter().any(|(_, name, _, _)| *name == o.name) {
            continue;
        }
        let asset = store::find_asset(&mut conn, tenant, asset_type, &o.name)
            .await?
            .ok_or_else(|| PipelineError::InvalidArgument {
                field: "asset_overrides".into(),
                message: format!("{o} does not exist in tenant {tenant}"),
            })?;
        rows.push((asset.asset_id, asset.name, 0, AssetContent::default()));
    }
    let mut out = Vec::new();
    for (asset_id, name, mut version, mut body) in rows {
        if let Some(o) = overrides
            .iter()
            .find(|o| o.asset_type == asset_type && o.name == name)
        {
            let wanted = match o.version {
                VersionSelector::LatestPublished => None,
                VersionSelector::Exact(v) => Some(i64::from(v)),
                VersionSelector::Draft => Some(0),
            };
            if let Some(wanted) = wanted {
                let row = if wanted == 0 {
                    store::load_draft(&mut conn, &asset_id).await?
                } else {
                    store::load_version(&mut conn, &asset_id, wanted).await?
                };
                let row = row.ok_or_else(|| PipelineError::InvalidArgument {
                    field: "asset_overrides".into(),
                    message: format!("{o} does not exist in tenant {tenant}"),
                })?;
                version = row.version;
                body = row.content;
            }
        }
        if let Some(kind) = body.spec.and_then(|s| s.kind) {
            out.push(Applied {
                reference: AssetRef {
                    r#type: asset_type as i32,
                    name,
                    version: u32::try_from(version).unwrap_or(0),
                },
                spec: kind,
            });
        }
    }
    Ok(out)
}

fn pick<T>(items: Vec<Applied<Kind>>, f: impl Fn(Kind) -> Option<T>) -> Vec<Applied<T>> {
    items
        .into_iter()
        .filter_map(|a| {
            Some(Applied {
                spec: f(a.spec)?,
                reference: a.reference,
            })
        })
        .collect()
}

/// Builds a tenant's snapshot from the registry and the tenant's rows.
async fn load(
    registry: &Registry,
    executors: &Executors,
    health: &SourceHealth,
    rows_cache: &RowsCache,
    tenant: &str,
    overrides: &[AssetReference],
) -> Result<Snapshot, PipelineError> {
    let of = |t| published(registry, tenant, t, overrides);
    let catalogs = pick(of(AssetType::SchemaCatalog).await?, |k| match k {
        Kind::SchemaCatalog(s) => Some(s),
        _ => None,
    });
    let tools = pick(of(AssetType::Tool).await?, |k| match k {
        Kind::Tool(s) => Some(s),
        _ => None,
    });
    let sources = pick(of(AssetType::Source).await?, |k| match k {
        Kind::Source(s) => Some(s),
        _ => None,
    });
    let policy = pick(of(AssetType::Policy).await?, |k| match k {
        Kind::Policy(s) => Some(s),
        _ => None,
    })
    .into_iter()
    .next();
    let prompts = pick(of(AssetType::Prompt).await?, |k| match k {
        Kind::Prompt(s) => Some(s),
        _ => None,
    });
    let resolver = pick(of(AssetType::Resolver).await?, |k| match k {
        Kind::Resolver(s) => Some(s),
        _ => None,
    })
    .into_iter()
    .next();
    let queries = pick(of(AssetType::Query).await?, |k| match k {
        Kind::Query(s) => Some(s),
        _ => None,
    });
    let mapping = pick(of(AssetType::Mapping).await?, |k| match k {
        Kind::Mapping(s) => Some(s),
        _ => None,
    })
    .into_iter()
    .next();
    let screen = pick(of(AssetType::Screen).await?, |k| match k {
        Kind::Screen(s) => Some(s),
        _ => None,
    })
    .into_iter()
    .next();

    // The catalog the tools read; with no tools, the only catalog.
    let wanted_catalog = tools
        .iter()
        .find_map(|t| AssetReference::parse(&t.spec.catalog_ref).ok())
        .map(|r| r.name);
    let catalog = catalogs
        .into_iter()
        .find(|c| wanted_catalog.as_ref().is_none_or(|n| *n == c.reference.name))
        .ok_or_else(|| {
            PipelineError::FailedPrecondition(format!(
                "tenant {tenant} has no published schema_catalog: publish one (e.g. with ScanSchema) before asking questions"
            ))
        })?;
    let source_named = |reference: &str| -> Option<SourceBinding> {
        let name = AssetReference::parse(reference).ok()?.name;
        let applied = sources.iter().find(|s| s.reference.name == name)?.clone();
        let dialect = source_dialect(SourceKind::try_from(applied.spec.kind).ok()?)?;
        let config = executors.source_config(&applied.label(), &applied.spec);
        Some(SourceBinding {
            applied,
            config,
            dialect,
        })
    };
    let source = source_named(&catalog.spec.source_ref);
    let fallbacks: Vec<SourceBinding> = policy
        .iter()
        .flat_map(|p| p.spec.fallback_sources.iter())
        .filter_map(|r| source_named(r))
        .collect();
    let prompt_for = |purpose: PromptPurpose| {
        prompts
            .iter()
            .find(|p| p.spec.purpose == purpose as i32)
            .cloned()
    };
    let planner_prompt = prompt_for(PromptPurpose::Planner);
    let direct_prompt = prompt_for(PromptPurpose::DirectAnswer);
    let answer_prompt = prompt_for(PromptPurpose::Answer);
    let summarizer_prompt = prompt_for(PromptPurpose::Summarizer);
    // Publishing refuses a Prompt whose entries do not compile; one published before that
    // check leaves the built-in sentences in place.
    let sentences =
        Sentences::with_tenant(answer_prompt.as_ref().map(|p| &p.spec)).unwrap_or_else(|error| {
            tracing::warn!(tenant, %error, "answer sentences ignored");
            Sentences::base().clone()
        });

    let guard = GuardSettings {
        policy: GuardPolicy {
            restricted_tables: policy
                .as_ref()
                .map(|p| p.spec.restricted_tables.clone())
                .unwrap_or_default(),
            allowed_functions: policy
                .as_ref()
                .map(|p| p.spec.allowed_functions.clone())
                .unwrap_or_default(),
        },
        tenant_columns: catalog
            .spec
            .tables
            .iter()
            .filter(|t| !t.tenant_column.is_empty())
            .map(|t| (t.name.to_lowercase(), t.tenant_column.clone()))
            .collect(),
        global_tables: policy
            .as_ref()
            .map(|p| p.spec.global_tables.clone())
            .unwrap_or_default(),
        known_tenants: known_tenants(registry).await?,
        row_limit: policy
            .as_ref()
            .map(|p| u64::from(p.spec.row_limit))
            .filter(|n| *n > 0),
    };

    let tool_choices: Vec<ToolChoice> = tools
        .iter()
        .map(|t| {
            let config = t
                .spec
                .config
                .as_ref()
                .and_then(|c| serde_json::to_value(c).ok())
                .unwrap_or_default();
            knowledge::tool_choice(&t.reference.name, &config)
        })
        .collect();
    let rows_key = [
        source.iter().map(|s| s.applied.label()).collect::<Vec<_>>(),
        fallbacks.iter().map(|s| s.applied.label()).collect(),
        vec![catalog.label()],
        policy.iter().map(Applied::label).collect(),
        tools.iter().map(Applied::label).collect(),
    ]
    .concat()
    .join(" ");
    let rows = match (&source, rows_cache.get(tenant, &rows_key)) {
        (_, Some(rows)) => rows,
        (Some(source), None) => {
            // Read from the primary, or from the Policy's fallbacks when it is down.
            let sources = failover::chain(source, &fallbacks, health);
            let rows = Arc::new(
                tenant_rows(
                    executors,
                    health,
                    &sources,
                    &guard,
                    tenant,
                    &catalog.spec,
                    &tool_choices,
                )
                .await?,
            );
            rows_cache.put(tenant, rows_key, rows.clone());
            rows
        }
        (None, None) => Arc::new(BTreeMap::new()),
    };
    let knowledge = knowledge::build(
        PlannerAssets {
            prompt: planner_prompt.as_ref().map(|p| &p.spec),
            catalog: &catalog.spec,
            policy: policy
                .as_ref()
                .map(|p| (p.reference.name.as_str(), &p.spec)),
            resolver: resolver.as_ref().map(|r| &r.spec),
            tools: tool_choices,
        },
        &rows,
    )
    .map_err(|e| {
        PipelineError::FailedPrecondition(format!(
            "the planner cannot use tenant {tenant}'s assets: {e}"
        ))
    })?;
    Ok(Snapshot {
        tenant: tenant.to_owned(),
        knowledge,
        catalog,
        source,
        fallbacks,
        policy,
        planner_prompt,
        direct_prompt,
        answer_prompt,
        summarizer_prompt,
        sentences,
        resolver,
        tools: tools
            .into_iter()
            .map(|t| (t.reference.name.clone(), t))
            .collect(),
        queries: queries
            .into_iter()
            .map(|q| (q.reference.name.clone(), q))
            .collect(),
        mapping,
        screen,
        guard,
    })
}

async fn known_tenants(registry: &Registry) -> Result<Vec<String>, PipelineError> {
    let mut conn = registry.db().pool().acquire().await?;
    Ok(store::known_tenants(&mut conn).await?)
}

/// The rows the planner learns entities and values from: the entity table's code, name and
/// filterable columns, and the distinct values of every other table's filterable columns.
/// Each statement goes through the same guard as any other.
async fn tenant_rows(
    executors: &Executors,
    health: &SourceHealth,
    sources: &[&SourceBinding],
    guard: &GuardSettings,
    tenant: &str,
    catalog: &SchemaCatalogSpec,
    tools: &[ToolChoice],
) -> Result<BTreeMap<String, Rows>, PipelineError> {
    let entity_table = tools
        .iter()
        .find(|t| t.mode == Some(Mode::Config))
        .map(|t| t.table.as_str())
        .unwrap_or_default();
    let restricted = |name: &str| {
        guard
            .policy
            .restricted_tables
            .iter()
            .any(|r| r.eq_ignore_ascii_case(name))
    };
    let mut out = BTreeMap::new();
    // Restricted tables are not read, not even for the planner's vocabulary.
    for table in catalog
        .tables
        .iter()
        .filter(|t| t.enabled && !restricted(&t.name))
    {
        let wanted: Vec<&str> = table
            .columns
            .iter()
            .filter(|c| {
                c.filterable
                    || (table.name == entity_table
                        && matches!(
                            SemanticType::try_from(c.semantic_type),
                            Ok(SemanticType::Code | SemanticType::Name)
                        ))
            })
            .map(|c| c.name.as_str())
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let mut rows = Vec::new();
        let selects: Vec<Select> = if table.name == entity_table {
            vec![Select::from(&table.name).columns(&wanted)]
        } else {
            wanted
                .iter()
                .map(|c| Select::from(&table.name).columns([c]).distinct())
                .collect()
        };
        for select in selects {
            rows.extend(run_text_rows(executors, health, sources, guard, tenant, select).await?);
        }
        out.insert(table.name.clone(), rows);
    }
    Ok(out)
}

async fn run_text_rows(
    executors: &Executors,
    health: &SourceHealth,
    sources: &[&SourceBinding],
    guard: &GuardSettings,
    tenant: &str,
    select: Select,
) -> Result<Rows, PipelineError> {
    let query = select
        .build()
        .map_err(|e| PipelineError::Internal(format!("planner knowledge query: {e}")))?;
    let Some(first) = sources.first() else {
        return Ok(Vec::new());
    };
    // The planner needs every CI and value, so the answer row limit does not apply here;
    // the executor's own row cap still does.
    let mut ctx = guard.context(first.dialect, tenant);
    ctx.row_limit = None;
    let prepared = sql_prepare::prepare_query(query, &ctx).map_err(|report| {
        PipelineError::FailedPrecondition(format!(
            "the SQL guard refused the planner's knowledge query: {}",
            report
                .violations
                .iter()
                .map(|v| format!("{} ({})", v.message, v.rule))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    let params = prepared
        .binds
        .iter()
        .map(|b| match b {
            Bind::Tenant => Ok(ops_proto::cells::text(tenant)),
            Bind::Param(p) => Err(PipelineError::Internal(format!(
                "knowledge query has an unbound parameter :{p}"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let request = execute_request::Request::Sql(ex::SqlRequest {
        sql: prepared.sql.clone(),
        params,
        ..Default::default()
    });
    let budget = failover::Budget {
        deadline: None,
        timeout_ms: 0,
    };
    let trace_id = format!("snapshot:{tenant}");
    let response = failover::execute(&executors.sql, health, sources, &request, &trace_id, budget)
        .await
        .map_err(|(e, attempts)| {
            PipelineError::Unavailable(format!(
                "reading tenant {tenant}'s entities failed ({attempts} source(s) tried): {e}"
            ))
        })?
        .response;
    let Some(execute_response::Result::Rows(set)) = response.result else {
        return Ok(Vec::new());
    };
    Ok(set
        .rows
        .iter()
        .map(|row| {
            set.columns
                .iter()
                .zip(&row.values)
                .filter_map(|(c, v)| {
                    let text = ops_proto::cells::display(v);
                    (!text.is_empty()).then(|| (c.name.clone(), text))
                })
                .collect()
        })
        .collect())
}
