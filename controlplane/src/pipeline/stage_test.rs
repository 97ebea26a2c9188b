//! StageTest: one stage run alone on an input from the request or from a baseline trace's
//! record of that stage, with draft or pinned asset versions, answered with the stage's record,
//! the difference of its output from the baseline's, and a test trace (parent = baseline).

use std::time::Instant;

use ops_proto::convert::{time_of, timestamp, to_struct};
use ops_proto::v1::{
    Route, Stage, StageRecord, StageStatus, StageTestRequest, StageTestResponse, Trace, TraceStatus,
};
use pbjson_types::Struct;
use time::OffsetDateTime;

use super::record::{self, Ran};
use super::{Pipeline, PipelineError, answer, applied_assets, invalid, parse_overrides, retention};
use crate::context::CallerContext;
use crate::model::snapshot::Snapshot;
use crate::model::stages::{
    self, ExecuteInput, RoutePlanInput, RoutePlanOutput, StageInput, ValidateInput,
};
use crate::trace::{diff, read};
use crate::{execute, plugins, route_plan, validate};

/// What one stage produced, as the test trace records it.
struct Tested {
    record: StageRecord,
    route: Option<Route>,
    plan: Option<ops_proto::v1::Plan>,
    tool_calls: Vec<ops_proto::v1::ToolCall>,
    answer: String,
}

impl Pipeline {
    /// Runs `request.stage` alone and records it as a test trace.
    pub async fn stage_test(
        &self,
        ctx: &CallerContext,
        request: StageTestRequest,
    ) -> Result<StageTestResponse, PipelineError> {
        let stage = Stage::try_from(request.stage)
            .ok()
            .filter(|s| stages::position(*s).is_some())
            .ok_or_else(|| {
                invalid(
                    "stage",
                    "name the stage to test: ROUTE_PLAN, VALIDATE, EXECUTE, COMPOSE or PRESENT",
                )
            })?;
        let overrides = parse_overrides(&request.asset_overrides)?;
        let baseline = match request.baseline_trace_id.as_str() {
            "" => None,
            id => Some(read::get(self.registry.db(), &ctx.tenant, id).await?),
        };
        let baseline_record = baseline
            .as_ref()
            .and_then(|b| stages::last_record(&b.stages, stage))
            .map(|(_, r)| r.clone());
        let snapshot = self.snapshot(&ctx.tenant, &overrides).await?;
        self.rate_limit(ctx, &snapshot).await?;
        let input = self.input(
            &request,
            stage,
            baseline.as_ref(),
            baseline_record.as_ref(),
            &snapshot,
            &ctx.tenant,
        )?;
        let question = match &input {
            StageInput::RoutePlan(i) => i.question.clone(),
            StageInput::Compose(i) => i.question.clone(),
            _ => baseline
                .as_ref()
                .map(|b| b.question.clone())
                .unwrap_or_default(),
        };
        let as_of = match &input {
            StageInput::RoutePlan(i) => time_of(&i.as_of),
            _ => baseline
                .as_ref()
                .and_then(|b| b.as_of.as_ref())
                .and_then(time_of),
        }
        .unwrap_or_else(OffsetDateTime::now_utc);
        let trace_id = uuid::Uuid::new_v4().to_string();
        let started_at = OffsetDateTime::now_utc();
        let tested = self
            .run_stage(input, &snapshot, &ctx.tenant, &trace_id)
            .await;
        let diff = baseline_record
            .as_ref()
            .map(|b| output_diff(stage, b, &tested.record));
        let status = match StageStatus::try_from(tested.record.status).unwrap_or_default() {
            StageStatus::Error => TraceStatus::Error,
            StageStatus::Warning => TraceStatus::Partial,
            _ => TraceStatus::Success,
        };
        let route = tested
            .route
            .or_else(|| {
                baseline
                    .as_ref()
                    .and_then(|b| Route::try_from(b.route).ok())
            })
            .unwrap_or(Route::Orch);
        let trace = Trace {
            trace_id: trace_id.clone(),
            parent_trace_id: request.baseline_trace_id.clone(),
            tenant: ctx.tenant.clone(),
            principal: ctx.principal.clone(),
            question,
            mode: "stage_test".into(),
            route: route as i32,
            status: status as i32,
            started_at: Some(timestamp(started_at)),
            as_of: Some(timestamp(as_of)),
            duration_ms: tested.record.duration_ms,
            plan_raw: tested.plan,
            applied_assets: applied_assets(std::slice::from_ref(&tested.record)),
            stages: vec![tested.record.clone()],
            tool_calls: tested.tool_calls,
            references: tested.record.references.clone(),
            answer: tested.answer,
            test_mode: true,
            replayed_from: stage as i32,
            ..Default::default()
        };
        self.traces
            .commit(trace, retention(&snapshot), None)
            .await
            .map_err(|e| {
                PipelineError::Unavailable(format!(
                    "the stage test's trace was not saved, so its result is withheld: {e}"
                ))
            })?;
        Ok(StageTestResponse {
            trace_id,
            result: Some(tested.record),
            asset_overrides_used: overrides.iter().map(ToString::to_string).collect(),
            diff,
        })
    }

    /// The stage's input: the request's `input` (or `question` for ROUTE+PLAN), else the
    /// baseline's recorded input of the stage.
    fn input(
        &self,
        request: &StageTestRequest,
        stage: Stage,
        baseline: Option<&Trace>,
        baseline_record: Option<&StageRecord>,
        snapshot: &Snapshot,
        tenant: &str,
    ) -> Result<StageInput, PipelineError> {
        if let Some(given) = request.input.as_ref().filter(|i| !i.fields.is_empty()) {
            return given_input(stage, given, snapshot, tenant);
        }
        if stage == Stage::RoutePlan && !request.question.trim().is_empty() {
            let as_of = request
                .as_of
                .as_ref()
                .and_then(time_of)
                .unwrap_or_else(OffsetDateTime::now_utc);
            return Ok(StageInput::RoutePlan(RoutePlanInput {
                question: request.question.trim().to_owned(),
                mode: "all".into(),
                as_of: timestamp(as_of),
                rerun: None,
            }));
        }
        let Some(baseline) = baseline else {
            return Err(invalid(
                "input",
                "give the stage's input, a baseline_trace_id whose recorded input to use, or (ROUTE_PLAN) a question",
            ));
        };
        let record = baseline_record.ok_or_else(|| {
            PipelineError::FailedPrecondition(format!(
                "baseline trace {} never ran {}: give the stage's input instead",
                baseline.trace_id,
                stage.as_str_name()
            ))
        })?;
        StageInput::decode(stage, record.input.as_ref().unwrap_or(&Struct::default())).map_err(
            |e| {
                PipelineError::FailedPrecondition(format!(
                    "baseline trace {}'s recorded {} input cannot be used ({e})",
                    baseline.trace_id,
                    stage.as_str_name()
                ))
            },
        )
    }

    async fn run_stage(
        &self,
        input: StageInput,
        snapshot: &Snapshot,
        tenant: &str,
        trace_id: &str,
    ) -> Tested {
        let started = Instant::now();
        let blobs = self.registry.blobs();
        let mut tested = Tested {
            record: StageRecord::default(),
            route: None,
            plan: None,
            tool_calls: Vec::new(),
            answer: String::new(),
        };
        match input {
            StageInput::RoutePlan(i) => {
                let output = route_plan::run(&snapshot.knowledge, &i);
                let (route, plan) = match &output {
                    RoutePlanOutput::Direct { .. } => (Route::Direct, None),
                    RoutePlanOutput::Reject { .. } => (Route::Reject, None),
                    RoutePlanOutput::Orch { plan, .. } => (Route::Orch, Some(plan.clone())),
                };
                let mut ran = Ran::new(StageInput::RoutePlan(i), output, started);
                tested.route = Some(route);
                tested.plan = plan;
                tested.record = record::route_plan(snapshot, &mut ran);
            }
            StageInput::Validate(i) => {
                let output = validate::run(snapshot, tenant, &i);
                tested.plan = Some(i.plan.clone());
                let mut ran = Ran::new(StageInput::Validate(i), output, started);
                tested.record = record::validate(snapshot, &mut ran);
            }
            StageInput::Execute(i) => {
                let deadline = super::deadline(snapshot);
                let output = execute::run(
                    &self.executors,
                    &self.health,
                    snapshot,
                    trace_id,
                    deadline,
                    &i,
                )
                .await;
                tested.tool_calls = output.calls.clone();
                let mut ran = Ran::new(StageInput::Execute(i), output, started);
                tested.record = record::execute(snapshot, &mut ran);
            }
            StageInput::Compose(i) => {
                let references = record::references(&i.results);
                let output = plugins::stage::compose(&self.plugins, &blobs, snapshot, &i)
                    .await
                    .map_err(|e| e.to_string());
                if let Ok(out) = &output {
                    tested.answer = answer::answer_line(&out.blocks, &[]);
                }
                let mut ran = Ran::new(StageInput::Compose(i), output, started);
                tested.record = record::compose(snapshot, &mut ran, references);
            }
            StageInput::Present(i) => {
                let output = plugins::stage::present(&self.plugins, &blobs, snapshot, &i)
                    .await
                    .map_err(|e| e.to_string());
                tested.answer = answer::answer_line(&i.blocks, &[]);
                let mut ran = Ran::new(StageInput::Present(i), output, started);
                tested.record = record::present(snapshot, &mut ran);
            }
        }
        tested
    }
}

/// A request's input for `stage`. EXECUTE takes a plan, validated here first: tasks (SQL
/// already through the guard) are accepted only from a recorded trace.
fn given_input(
    stage: Stage,
    given: &Struct,
    snapshot: &Snapshot,
    tenant: &str,
) -> Result<StageInput, PipelineError> {
    if stage != Stage::Execute {
        return StageInput::decode(stage, given).map_err(|e| invalid("input", e));
    }
    if given.fields.contains_key("tasks") {
        return Err(invalid(
            "input.tasks",
            "EXECUTE takes tasks only from a baseline trace (their SQL passed the guard there); give {\"plan\": …} to have it validated, or baseline_trace_id",
        ));
    }
    let plan = ops_proto::convert::from_struct::<ValidateInput>(given)
        .map_err(|e| invalid("input", format!("expected {{plan}} for EXECUTE: {e}")))?
        .plan;
    let validated = validate::run(snapshot, tenant, &ValidateInput { plan });
    if validated.blocked() {
        return Err(invalid(
            "input.plan",
            format!(
                "the plan does not pass VALIDATE: {}",
                validated.blocking_reasons()
            ),
        ));
    }
    Ok(StageInput::Execute(ExecuteInput {
        tasks: validated.tasks,
    }))
}

/// `{"equal": bool, "changes": [{"path", "baseline", "candidate"}]}` of two records' outputs,
/// compared as `DiffTraces` compares that stage.
fn output_diff(stage: Stage, baseline: &StageRecord, candidate: &StageRecord) -> Struct {
    let changes = diff::stage_changes(stage, baseline, candidate);
    to_struct(&serde_json::json!({
        "equal": changes.is_empty(),
        "changes": changes,
    }))
}
