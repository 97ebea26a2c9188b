//! Previews for asset authors, through the same guard and sidecars as Ask: PreviewQuery runs a
//! Query (draft or version) with given params and shows the statement exactly as it ran;
//! TestTool runs one Tool (draft or version) on a test plan or a question.

use std::time::Instant;

use ops_proto::cells;
use ops_proto::convert::{timestamp, to_struct};
use ops_proto::executor::{SqlRequest, execute_request, execute_response};
use ops_proto::executor_api::ExecutorError;
use ops_proto::v1::{
    AssetType, Plan, PreviewQueryRequest, PreviewQueryResponse, QuerySpec, TestToolRequest,
    TestToolResponse, asset_spec, get_asset_request,
};
use pbjson_types::ListValue;
use time::OffsetDateTime;

use super::{Pipeline, PipelineError, deadline, invalid};
use crate::context::CallerContext;
use crate::execute::failover;
use crate::model::refs::{AssetReference, VersionSelector};
use crate::model::snapshot::{Applied, Snapshot, SourceBinding};
use crate::model::source_dialect;
use crate::model::stages::{ExecuteInput, RoutePlanInput, RoutePlanOutput, ValidateInput};
use crate::validate::sql_prepare::{self, Bind};
use crate::{execute, route_plan, validate};

/// Rows a preview returns when the request names no cap.
const DEFAULT_PREVIEW_ROWS: u32 = 100;
/// The most rows a preview returns.
const MAX_PREVIEW_ROWS: u32 = 1000;

fn name_of(name: &str) -> Result<String, PipelineError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(invalid("name", "name the asset to preview"));
    }
    Ok(name.to_owned())
}

/// An executor failure as the service's error, naming the source.
fn executor_error(source: &str, error: &ExecutorError) -> PipelineError {
    if error.is_retryable() {
        PipelineError::Unavailable(format!("source {source} did not answer: {error}"))
    } else {
        PipelineError::FailedPrecondition(format!("source {source} refused the statement: {error}"))
    }
}

impl Pipeline {
    /// The Source a Query reads: the catalog's (with the Policy's fallbacks) when it is that
    /// one, else the named Source's published version.
    async fn query_sources(
        &self,
        ctx: &CallerContext,
        snapshot: &Snapshot,
        source_ref: &str,
    ) -> Result<Vec<SourceBinding>, PipelineError> {
        let reference = AssetReference::parse(source_ref).map_err(|e| {
            PipelineError::FailedPrecondition(format!("the query's source_ref: {e}"))
        })?;
        if let Some(primary) = &snapshot.source
            && primary.applied.reference.name == reference.name
            && matches!(reference.version, VersionSelector::LatestPublished)
        {
            return Ok(failover::chain(primary, &snapshot.fallbacks, &self.health)
                .into_iter()
                .cloned()
                .collect());
        }
        let selector = match reference.version {
            VersionSelector::Exact(v) => Some(get_asset_request::Selector::Version(v)),
            _ => None,
        };
        let asset = self
            .registry
            .get(ctx, AssetType::Source as i32, &reference.name, selector)
            .await?;
        let Some(asset_spec::Kind::Source(spec)) = asset.spec.and_then(|s| s.kind) else {
            return Err(PipelineError::FailedPrecondition(format!(
                "{source_ref} is not a Source"
            )));
        };
        let applied = Applied {
            reference: ops_proto::v1::AssetRef {
                r#type: AssetType::Source as i32,
                name: asset.name,
                version: asset.version,
            },
            spec,
        };
        let dialect = ops_proto::v1::SourceKind::try_from(applied.spec.kind)
            .ok()
            .and_then(source_dialect)
            .ok_or_else(|| {
                PipelineError::FailedPrecondition(format!("{source_ref} is not a SQL source"))
            })?;
        let config = self
            .executors
            .source_config(&applied.label(), &applied.spec);
        Ok(vec![SourceBinding {
            applied,
            config,
            dialect,
        }])
    }

    /// PreviewQuery: the Query's SQL through the guard (tenant scope, row limit) and the SQL
    /// sidecar, with the request's params.
    pub async fn preview_query(
        &self,
        ctx: &CallerContext,
        request: PreviewQueryRequest,
    ) -> Result<PreviewQueryResponse, PipelineError> {
        let name = name_of(&request.name)?;
        let selector = request
            .draft
            .then_some(get_asset_request::Selector::Draft(true));
        let asset = self
            .registry
            .get(ctx, AssetType::Query as i32, &name, selector)
            .await?;
        let Some(asset_spec::Kind::Query(query)) = asset.spec.and_then(|s| s.kind) else {
            return Err(PipelineError::FailedPrecondition(format!(
                "query:{name} has no query spec"
            )));
        };
        let snapshot = self.snapshot(&ctx.tenant, &[]).await?;
        self.rate_limit(ctx, &snapshot).await?;
        let sources = self
            .query_sources(ctx, &snapshot, &query.source_ref)
            .await?;
        let Some(first) = sources.first() else {
            return Err(PipelineError::FailedPrecondition(format!(
                "query:{name}'s source {} is not published",
                query.source_ref
            )));
        };
        let cap = match request.max_rows {
            0 => DEFAULT_PREVIEW_ROWS,
            n => n.min(MAX_PREVIEW_ROWS),
        };
        let mut guard = snapshot.guard.context(first.dialect, &ctx.tenant);
        guard.row_limit = Some(
            guard
                .row_limit
                .map_or(u64::from(cap), |limit| limit.min(u64::from(cap))),
        );
        let prepared = sql_prepare::prepare(&query.sql, &guard).map_err(|report| {
            let reasons: Vec<String> = report
                .violations
                .iter()
                .map(|v| format!("{} (rule {})", v.message, v.rule))
                .collect();
            PipelineError::FailedPrecondition(format!(
                "the SQL guard refuses query:{name} for tenant {}: {}",
                ctx.tenant,
                reasons.join("; ")
            ))
        })?;
        let binds = bind_params(&name, &query, &prepared.binds, &request, &ctx.tenant)?;
        let started = Instant::now();
        let chain: Vec<&SourceBinding> = sources.iter().collect();
        let sql = execute_request::Request::Sql(SqlRequest {
            sql: prepared.sql.clone(),
            params: binds.clone(),
            ..Default::default()
        });
        let budget = failover::Budget {
            deadline: Some(deadline(&snapshot)),
            timeout_ms: query.max_execution_time_ms,
        };
        let answered = failover::execute(
            &self.executors.sql,
            &self.health,
            &chain,
            &sql,
            &format!("preview:{name}"),
            budget,
        )
        .await
        .map_err(|(e, _)| executor_error(&first.applied.label(), &e))?;
        let elapsed_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
        let Some(execute_response::Result::Rows(set)) = answered.response.result else {
            return Err(PipelineError::Internal(
                "the SQL sidecar answered without rows".into(),
            ));
        };
        let rows: Vec<ListValue> = set
            .rows
            .iter()
            .map(|row| ListValue {
                values: row.values.iter().map(cells::to_json).collect(),
            })
            .collect();
        Ok(PreviewQueryResponse {
            columns: set.columns.iter().map(|c| c.name.clone()).collect(),
            truncated: set.truncated || rows.len() as u64 >= u64::from(cap),
            rows,
            elapsed_ms,
            executed_sql: prepared.sql,
            violations: Vec::new(),
            binds: Some(ListValue {
                values: binds.iter().map(cells::to_json).collect(),
            }),
            source: answered.source,
        })
    }

    /// TestTool: one Tool (draft or version) on a test plan or a planned question, through
    /// VALIDATE and EXECUTE as Ask runs them.
    pub async fn test_tool(
        &self,
        ctx: &CallerContext,
        request: TestToolRequest,
    ) -> Result<TestToolResponse, PipelineError> {
        let name = name_of(&request.name)?;
        let overrides = if request.draft {
            vec![AssetReference {
                asset_type: AssetType::Tool,
                name: name.clone(),
                version: VersionSelector::Draft,
            }]
        } else {
            Vec::new()
        };
        let snapshot = self.snapshot(&ctx.tenant, &overrides).await?;
        self.rate_limit(ctx, &snapshot).await?;
        if !snapshot.tools.contains_key(&name) {
            return Err(PipelineError::NotFound(format!(
                "tool:{name} has no {} in tenant {}",
                if request.draft {
                    "draft"
                } else {
                    "published version"
                },
                ctx.tenant
            )));
        }
        let input = request.input.unwrap_or_default();
        let mut plan = test_plan(&snapshot, &input)?;
        plan.tools = vec![name.clone()];
        let validated = validate::run(
            &snapshot,
            &ctx.tenant,
            &ValidateInput { plan: plan.clone() },
        );
        if validated.blocked() {
            return Err(PipelineError::FailedPrecondition(format!(
                "tool:{name} cannot run this plan: {}",
                validated.blocking_reasons()
            )));
        }
        let started = Instant::now();
        let trace_id = format!("test_tool:{name}");
        let output = execute::run(
            &self.executors,
            &self.health,
            &snapshot,
            &trace_id,
            deadline(&snapshot),
            &ExecuteInput {
                tasks: validated.tasks.clone(),
            },
        )
        .await;
        let elapsed_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
        Ok(TestToolResponse {
            error: output
                .failures
                .iter()
                .map(|f| format!("{}: {}", f.tool, f.error))
                .collect::<Vec<_>>()
                .join("; "),
            result: Some(to_struct(&serde_json::json!({
                "plan": plan,
                "tasks": validated.tasks,
                "results": output.results,
                "calls": output.calls,
            }))),
            elapsed_ms,
        })
    }
}

/// A Query's `:params` from the request, or the Query's defaults; the tenant for its scope.
fn bind_params(
    name: &str,
    query: &QuerySpec,
    binds: &[Bind],
    request: &PreviewQueryRequest,
    tenant: &str,
) -> Result<Vec<ops_proto::executor::Value>, PipelineError> {
    let given = request.params.clone().unwrap_or_default();
    binds
        .iter()
        .map(|b| match b {
            Bind::Tenant => Ok(cells::text(tenant)),
            Bind::Param(param) => {
                let declared = query.params.iter().find(|p| p.name == *param);
                given
                    .fields
                    .get(param)
                    .and_then(cells::from_json)
                    .or_else(|| {
                        declared
                            .and_then(|p| p.default_value.as_ref())
                            .and_then(cells::from_json)
                    })
                    .ok_or_else(|| {
                        invalid(
                            &format!("params.{param}"),
                            format!(
                                "query:{name} needs :{param}{}; give it in params",
                                declared
                                    .map(|p| format!(
                                        " ({})",
                                        ops_proto::v1::ParamType::try_from(p.r#type)
                                            .unwrap_or_default()
                                            .as_str_name()
                                    ))
                                    .unwrap_or_default()
                            ),
                        )
                    })
            }
        })
        .collect()
}

/// The plan a tool test runs: `{"plan": …}` as given, or `{"question": …}` planned.
fn test_plan(snapshot: &Snapshot, input: &pbjson_types::Struct) -> Result<Plan, PipelineError> {
    if input.fields.contains_key("plan") {
        return ops_proto::convert::from_struct::<ValidateInput>(input)
            .map(|v| v.plan)
            .map_err(|e| invalid("input.plan", format!("expected a Plan: {e}")));
    }
    let question = match input.fields.get("question").and_then(|v| v.kind.as_ref()) {
        Some(pbjson_types::value::Kind::StringValue(q)) if !q.trim().is_empty() => q.trim(),
        _ => {
            return Err(invalid(
                "input",
                "give {\"question\": \"...\"} or {\"plan\": {...}} to run the tool on",
            ));
        }
    };
    let as_of = match input.fields.get("as_of").and_then(|v| v.kind.as_ref()) {
        Some(pbjson_types::value::Kind::StringValue(t)) => {
            let parsed = OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|e| invalid("input.as_of", format!("expected RFC 3339: {e}")))?;
            timestamp(parsed)
        }
        _ => timestamp(OffsetDateTime::now_utc()),
    };
    let routed = route_plan::run(
        &snapshot.knowledge,
        &RoutePlanInput {
            question: question.to_owned(),
            mode: "all".into(),
            as_of,
            rerun: None,
        },
    );
    match routed {
        RoutePlanOutput::Orch { plan, .. } if plan.missing_slots.is_empty() => Ok(plan),
        RoutePlanOutput::Orch { plan, .. } => Err(invalid(
            "input.question",
            format!(
                "the question leaves {} open; name it, or give a plan",
                plan.missing_slots.join(", ")
            ),
        )),
        RoutePlanOutput::Direct { .. } | RoutePlanOutput::Reject { .. } => Err(invalid(
            "input.question",
            "the question needs no data (or is refused): ask one a tool answers",
        )),
    }
}
