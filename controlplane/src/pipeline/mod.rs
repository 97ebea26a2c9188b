//! The five-stage pipeline: ROUTE+PLAN → VALIDATE → EXECUTE → COMPOSE → PRESENT, the control
//! loop between them, and the durable trace of every run.
//!
//! Each stage has a typed input and output and is recorded as a [`StageRecord`] (status,
//! diagnostics, references, duration, applied asset versions). DIRECT and REJECT end after
//! ROUTE+PLAN and are traced like any other run. The response leaves only after its trace is
//! committed.

mod answer;
pub mod control;
pub mod error;
pub mod rate;
pub mod render;
mod rerun;
pub mod snapshot;
pub mod values;

use std::sync::Arc;
use std::time::Instant;

use ops_proto::executor_api::ExecutorErrorKind;
use ops_proto::v1::{
    AskMeta, AskMode, AskRequest, AskResponse, AskStreamResponse, AssetRef, Block, Diagnostics,
    NextAction, Plan, Reference, ReplanTrigger, Route, ScreenModel, Stage, StageEvent, StageRecord,
    StageStatus, StageTiming, TextBlock, Trace, TraceStatus, Violation, ask_stream_response, block,
};
use pbjson_types::Struct;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::context::CallerContext;
use crate::execute::Executors;
use crate::execute::source_health::SourceHealth;
use crate::execute::tasks::{Executed, TaskRunner, result_is_empty};
use crate::plugins::limits::CallLimits;
use crate::plugins::{PluginHost, convert};
use crate::registry::Registry;
use crate::registry::refs::AssetReference;
use crate::route_plan::planner::{self, Routed, ts};
use crate::trace::{Retention, TraceWriter};
use crate::validate::plan::{self as plan_check, Compiled};
use control::{Cooling, Decision, Loop};
pub use error::PipelineError;
use snapshot::{Snapshot, SnapshotCache};

/// Longest question accepted (characters).
const MAX_QUESTION_CHARS: usize = 4000;

/// Any serialisable value as a protobuf Struct (non-objects under "value").
pub fn to_struct<T: Serialize>(value: &T) -> Struct {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => {
            serde_json::from_value(serde_json::Value::Object(map)).unwrap_or_default()
        }
        Ok(other) => {
            serde_json::from_value(serde_json::json!({ "value": other })).unwrap_or_default()
        }
        Err(_) => Struct::default(),
    }
}

/// Everything a run needs; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    registry: Registry,
    executors: Executors,
    plugins: PluginHost,
    snapshots: SnapshotCache,
    traces: TraceWriter,
    cooling: Cooling,
    rate: rate::RateLimiter,
    health: SourceHealth,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

/// Stage records of one run, streamed as they finish when the caller asked for a stream.
struct Recorder {
    trace_id: String,
    stages: Vec<StageRecord>,
    events: Option<mpsc::Sender<Result<AskStreamResponse, tonic::Status>>>,
}

impl Recorder {
    async fn push(&mut self, record: StageRecord) {
        if let Some(events) = &self.events {
            // A caller that went away still gets its run traced.
            let _ = events
                .send(Ok(AskStreamResponse {
                    event: Some(ask_stream_response::Event::Stage(StageEvent {
                        trace_id: self.trace_id.clone(),
                        stage: Some(record.clone()),
                    })),
                }))
                .await;
        }
        self.stages.push(record);
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[allow(clippy::too_many_arguments)]
fn stage_record(
    stage: Stage,
    status: StageStatus,
    input: Struct,
    output: Struct,
    diagnostics: Diagnostics,
    references: Vec<Reference>,
    started: Instant,
    applied: Vec<AssetRef>,
) -> StageRecord {
    StageRecord {
        stage: stage as i32,
        status: status as i32,
        input: Some(input),
        output: Some(output),
        // The record's status is the diagnostics' status.
        diagnostics: Some(Diagnostics {
            status: status as i32,
            ..diagnostics
        }),
        references,
        duration_ms: ms(started),
        applied_assets: applied,
    }
}

fn text_block(title: &str, text: String) -> Block {
    Block {
        title: title.to_owned(),
        content: Some(block::Content::Text(TextBlock { text })),
    }
}

fn forced_mode(mode: i32) -> Result<Option<&'static str>, PipelineError> {
    Ok(match AskMode::try_from(mode) {
        Ok(AskMode::Unspecified | AskMode::All) => None,
        Ok(AskMode::Config) => Some("config"),
        Ok(AskMode::Metric) => Some("metric"),
        Ok(AskMode::History) => Some("history"),
        Ok(AskMode::Graph) => Some("graph"),
        Ok(AskMode::Document) => Some("document"),
        Err(_) => {
            return Err(PipelineError::InvalidArgument {
                field: "mode".into(),
                message: format!(
                    "{mode} is not an AskMode: expected ALL, CONFIG, METRIC, HISTORY, GRAPH or DOCUMENT"
                ),
            });
        }
    })
}

fn timestamp_to_time(t: &pbjson_types::Timestamp) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t.seconds)
        .ok()
        .map(|d| d + time::Duration::nanoseconds(i64::from(t.nanos)))
}

/// The pieces of a finished run the trace and the response share.
#[derive(Default)]
struct Outcome {
    route: Route,
    route_reason: String,
    status: TraceStatus,
    plan_raw: Option<Plan>,
    plan_validated: Option<Plan>,
    answer: String,
    blocks: Vec<Block>,
    /// `blocks` as the trace stores them, when COMPOSE already encoded them for its record.
    answer_blocks: Option<Struct>,
    screen: Option<ScreenModel>,
    references: Vec<Reference>,
    violations: Vec<Violation>,
    tool_calls: Vec<ops_proto::v1::ToolCall>,
    used_tools: Vec<String>,
    data_quality: Vec<String>,
    fallback_used: bool,
    next_actions: Vec<NextAction>,
}

impl Pipeline {
    pub fn new(
        registry: Registry,
        executors: Executors,
        plugins: PluginHost,
        traces: TraceWriter,
    ) -> Self {
        Self {
            registry,
            executors,
            plugins,
            snapshots: SnapshotCache::default(),
            traces,
            cooling: Cooling::default(),
            rate: rate::RateLimiter::default(),
            health: SourceHealth::default(),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Runs one question; with `events`, each stage record is sent as it finishes.
    pub async fn ask(
        &self,
        ctx: &CallerContext,
        request: AskRequest,
        events: Option<mpsc::Sender<Result<AskStreamResponse, tonic::Status>>>,
    ) -> Result<AskResponse, PipelineError> {
        let started = Instant::now();
        let started_at = OffsetDateTime::now_utc();
        let question = request.question.trim().to_owned();
        let rerun = request.rerun.clone().filter(|r| r.base_plan.is_some());
        if question.is_empty() && rerun.is_none() {
            return Err(PipelineError::InvalidArgument {
                field: "question".into(),
                message:
                    "the question is empty: ask something, e.g. \"GT-01 CPU average last week\""
                        .into(),
            });
        }
        if question.chars().count() > MAX_QUESTION_CHARS {
            return Err(PipelineError::InvalidArgument {
                field: "question".into(),
                message: format!(
                    "the question has {} characters; at most {MAX_QUESTION_CHARS} are accepted",
                    question.chars().count()
                ),
            });
        }
        let forced = forced_mode(request.mode)?;
        if !request.asset_overrides.is_empty() && !request.test_mode {
            return Err(PipelineError::InvalidArgument {
                field: "asset_overrides".into(),
                message: "asset overrides are only accepted in test mode (set test_mode)".into(),
            });
        }
        let overrides = request
            .asset_overrides
            .iter()
            .map(|o| AssetReference::parse(o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| PipelineError::InvalidArgument {
                field: "asset_overrides".into(),
                message,
            })?;
        let as_of = request
            .as_of
            .as_ref()
            .and_then(timestamp_to_time)
            .unwrap_or(started_at);
        let snapshot = self
            .snapshots
            .get(
                &self.registry,
                &self.executors,
                &self.health,
                &ctx.tenant,
                &overrides,
            )
            .await?;
        if let Some(limit) = snapshot.policy_spec().and_then(|p| p.rate_limit.as_ref()) {
            self.rate.check(&ctx.tenant, limit)?;
        }
        let trace_id = uuid::Uuid::new_v4().to_string();
        let mut recorder = Recorder {
            trace_id: trace_id.clone(),
            stages: Vec::new(),
            events,
        };
        let replan_policy = snapshot.policy_spec().and_then(|p| p.replan.as_ref());
        let mut control = Loop::new(replan_policy, &ctx.tenant, &self.cooling);
        let mut outcome = self
            .run(
                &snapshot,
                ctx,
                &trace_id,
                &question,
                as_of,
                forced,
                rerun.and_then(|r| rerun::rerun_plan(&r)),
                &mut recorder,
                &mut control,
            )
            .await;
        let duration_ms = ms(started);
        let mut applied: Vec<AssetRef> = Vec::new();
        for stage in &recorder.stages {
            for a in &stage.applied_assets {
                if !applied.contains(a) {
                    applied.push(a.clone());
                }
            }
        }
        let trace =
            Trace {
                trace_id: trace_id.clone(),
                parent_trace_id: request
                    .rerun
                    .as_ref()
                    .map(|r| r.parent_trace_id.clone())
                    .unwrap_or_default(),
                tenant: ctx.tenant.clone(),
                principal: ctx.principal.clone(),
                question: question.clone(),
                mode: forced.unwrap_or("all").to_owned(),
                route: outcome.route as i32,
                status: outcome.status as i32,
                started_at: Some(ts(started_at)),
                as_of: Some(ts(as_of)),
                duration_ms,
                plan_raw: outcome.plan_raw.clone(),
                plan_validated: outcome.plan_validated.clone(),
                route_reason: outcome.route_reason.clone(),
                applied_assets: applied.clone(),
                stages: recorder.stages.clone(),
                replan_events: control.events.clone(),
                tool_calls: outcome.tool_calls.clone(),
                references: outcome.references.clone(),
                violations: outcome.violations.clone(),
                answer: outcome.answer.clone(),
                answer_blocks: Some(outcome.answer_blocks.take().unwrap_or_else(|| {
                    to_struct(&serde_json::json!({ "blocks": outcome.blocks }))
                })),
                test_mode: request.test_mode,
            };
        let retention = snapshot
            .policy_spec()
            .and_then(|p| p.trace_retention.as_ref())
            .map(|r| Retention {
                days: r.days,
                max_traces: r.max_traces,
            })
            .unwrap_or_default();
        self.traces.commit(trace, retention).await.map_err(|e| {
            PipelineError::Unavailable(format!(
                "the answer's trace was not saved, so the answer is withheld: {e}"
            ))
        })?;
        let timings = recorder
            .stages
            .iter()
            .map(|s| StageTiming {
                stage: s.stage,
                status: s.status,
                duration_ms: s.duration_ms,
            })
            .collect();
        tracing::info!(trace_id, tenant = %ctx.tenant, route = ?outcome.route, status = ?outcome.status, duration_ms, "answered");
        Ok(AskResponse {
            trace_id,
            route: outcome.route as i32,
            answer: outcome.answer,
            blocks: outcome.blocks,
            screen: outcome.screen,
            plan: outcome.plan_validated.or(outcome.plan_raw),
            meta: Some(AskMeta {
                timings,
                total_ms: ms(started),
                used_tools: outcome.used_tools,
                fallback_used: outcome.fallback_used,
                data_quality: outcome.data_quality,
                replans: control.replans(),
                applied_assets: applied,
            }),
            next_actions: outcome.next_actions,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        snapshot: &Arc<Snapshot>,
        ctx: &CallerContext,
        trace_id: &str,
        question: &str,
        as_of: OffsetDateTime,
        forced: Option<&str>,
        rerun: Option<Plan>,
        recorder: &mut Recorder,
        control: &mut Loop<'_>,
    ) -> Outcome {
        // ── ROUTE+PLAN ──────────────────────────────────────────────────────────────────
        let t = Instant::now();
        let (routed, reason) = match rerun {
            Some(plan) => (Routed::Plan(plan), "rerun of a previous plan".to_owned()),
            None => {
                let planned = planner::plan(&snapshot.knowledge, question, as_of, forced);
                (planned.routed, planned.reason)
            }
        };
        let input = to_struct(&serde_json::json!({
            "question": question,
            "mode": forced.unwrap_or("all"),
            "as_of": ts(as_of),
        }));
        let mut outcome = Outcome {
            route_reason: reason.clone(),
            ..Default::default()
        };
        match routed {
            Routed::Direct { intent } => {
                let answer = answer::direct_answer(snapshot, &intent, as_of);
                let mut applied = snapshot.plan_assets();
                applied.extend(snapshot.direct_prompt.iter().map(|p| p.reference.clone()));
                let output = to_struct(&serde_json::json!({
                    "route": "direct", "intent": intent, "reason": reason,
                }));
                recorder
                    .push(stage_record(
                        Stage::RoutePlan,
                        StageStatus::Ok,
                        input,
                        output,
                        Diagnostics::default(),
                        Vec::new(),
                        t,
                        applied,
                    ))
                    .await;
                outcome.route = Route::Direct;
                outcome.status = TraceStatus::Success;
                outcome.blocks = vec![text_block("", answer.clone())];
                outcome.answer = answer;
                outcome
            }
            Routed::Reject { rule, reason } => {
                let output = to_struct(&serde_json::json!({
                    "route": "reject", "rule": rule, "reason": reason,
                }));
                let violation = Violation {
                    field: "question".into(),
                    r#type: "policy".into(),
                    rule: rule.clone(),
                    message: reason.clone(),
                    expected: "a read-only question about operations data".into(),
                    actual: question.to_owned(),
                    severity: ops_proto::v1::Severity::Error as i32,
                    blocking: true,
                };
                recorder
                    .push(stage_record(
                        Stage::RoutePlan,
                        StageStatus::Ok,
                        input,
                        output,
                        Diagnostics::default(),
                        Vec::new(),
                        t,
                        snapshot.plan_assets(),
                    ))
                    .await;
                outcome.route = Route::Reject;
                outcome.status = TraceStatus::Rejected;
                outcome.answer = format!("Refused ({rule}): {reason}");
                outcome.blocks = vec![text_block("refused", outcome.answer.clone())];
                outcome.violations.push(violation);
                outcome
            }
            Routed::Plan(plan) => {
                outcome.route = Route::Orch;
                outcome.plan_raw = Some(plan.clone());
                let missing = !plan.missing_slots.is_empty();
                let status = if missing {
                    StageStatus::Warning
                } else {
                    StageStatus::Ok
                };
                let mut diag = Diagnostics::default();
                if missing {
                    diag.warnings
                        .push(format!("missing slots: {}", plan.missing_slots.join(", ")));
                }
                let output = to_struct(&serde_json::json!({
                    "route": "orch", "reason": reason, "plan": plan,
                }));
                recorder
                    .push(stage_record(
                        Stage::RoutePlan,
                        status,
                        input,
                        output,
                        diag,
                        Vec::new(),
                        t,
                        snapshot.plan_assets(),
                    ))
                    .await;
                let plan = if missing {
                    match control.decide(
                        Stage::RoutePlan,
                        ReplanTrigger::SlotMissing,
                        &format!("missing {}", plan.missing_slots.join(", ")),
                        &plan,
                        control::resolve_missing_entity(snapshot, &plan),
                    ) {
                        Decision::Replan(p) => *p,
                        Decision::GiveUp(_) => {
                            outcome.status = TraceStatus::Partial;
                            outcome.answer =
                                answer::slot_missing_answer(snapshot, &plan, &ctx.tenant);
                            outcome.blocks =
                                vec![text_block("slot_missing", outcome.answer.clone())];
                            outcome.data_quality.push("slot_missing".into());
                            return outcome;
                        }
                    }
                } else {
                    plan
                };
                self.orchestrate(
                    snapshot, ctx, trace_id, question, plan, recorder, control, outcome,
                )
                .await
            }
        }
    }

    /// VALIDATE → EXECUTE (with the control loop) → COMPOSE → PRESENT.
    #[allow(clippy::too_many_arguments)]
    async fn orchestrate(
        &self,
        snapshot: &Arc<Snapshot>,
        ctx: &CallerContext,
        trace_id: &str,
        question: &str,
        mut plan: Plan,
        recorder: &mut Recorder,
        control: &mut Loop<'_>,
        mut outcome: Outcome,
    ) -> Outcome {
        let budget_ms = snapshot
            .policy_spec()
            .and_then(|p| p.budget.as_ref())
            .map_or(0, |b| b.timeout_ms);
        let deadline = Instant::now()
            + std::time::Duration::from_millis(if budget_ms == 0 {
                30_000
            } else {
                u64::from(budget_ms)
            });
        let max_depth = snapshot
            .policy_spec()
            .and_then(|p| p.budget.as_ref())
            .map_or(0, |b| b.max_depth);
        let executed = loop {
            // ── VALIDATE ────────────────────────────────────────────────────────────────
            let t = Instant::now();
            let mut violations = plan_check::check_policy(&plan, snapshot.policy_spec());
            let compiled = if violations.is_empty() {
                plan_check::compile(snapshot, &plan, &ctx.tenant)
            } else {
                Compiled::default()
            };
            violations.extend(compiled.violations.iter().cloned());
            let blocked = violations.iter().any(|v| v.blocking);
            let status = if blocked {
                StageStatus::Error
            } else {
                StageStatus::Ok
            };
            let mut diag = Diagnostics {
                errors: violations
                    .iter()
                    .map(|v| format!("{}: {}", v.rule, v.message))
                    .collect(),
                ..Default::default()
            };
            diag.counts
                .insert("tasks".into(), compiled.tasks.len() as i64);
            let tasks_json: Vec<serde_json::Value> = compiled
                .tasks
                .iter()
                .map(|task| {
                    let mut v = serde_json::json!({
                        "tool": task.tool, "result": task.result_name, "kind": task.kind,
                    });
                    if let crate::validate::plan::TaskRequest::Sql { prepared, .. } = &task.request
                    {
                        v["sql"] = prepared.sql.clone().into();
                    }
                    if let Some(d) = task.depends_on {
                        v["depends_on"] = d.into();
                    }
                    v
                })
                .collect();
            let mut applied: Vec<AssetRef> = snapshot
                .policy
                .iter()
                .map(|p| p.reference.clone())
                .collect();
            applied.push(snapshot.catalog.reference.clone());
            recorder
                .push(stage_record(
                    Stage::Validate,
                    status,
                    to_struct(&serde_json::json!({ "plan": plan })),
                    to_struct(
                        &serde_json::json!({ "tasks": tasks_json, "violations": violations }),
                    ),
                    diag,
                    Vec::new(),
                    t,
                    applied,
                ))
                .await;
            outcome.violations.extend(violations.iter().cloned());
            if blocked {
                let first = violations
                    .iter()
                    .find(|v| v.blocking)
                    .map(|v| format!("{} ({})", v.message, v.rule))
                    .unwrap_or_default();
                // A blocked plan has no alternative the loop could try: it is refused.
                let _ = control.decide(
                    Stage::Validate,
                    ReplanTrigger::PolicyBlocked,
                    &first,
                    &plan,
                    None,
                );
                outcome.status = TraceStatus::Rejected;
                outcome.answer = format!("Refused by the policy: {first}");
                outcome.blocks = vec![text_block("refused", outcome.answer.clone())];
                outcome.plan_validated = Some(plan);
                return outcome;
            }
            outcome.plan_validated = Some(plan.clone());

            // ── EXECUTE ─────────────────────────────────────────────────────────────────
            let t = Instant::now();
            let runner = TaskRunner {
                executors: &self.executors,
                health: &self.health,
                snapshot,
                trace_id,
                deadline,
            };
            let executed = runner.run(&compiled.tasks).await;
            let status = if executed.failures.is_empty() {
                StageStatus::Ok
            } else if executed.results.is_empty() {
                StageStatus::Error
            } else {
                StageStatus::Warning
            };
            let mut diag = Diagnostics {
                errors: executed
                    .failures
                    .iter()
                    .map(|f| format!("{}: {}", f.tool, f.error))
                    .collect(),
                ..Default::default()
            };
            diag.counts
                .insert("calls".into(), executed.calls.len() as i64);
            diag.counts.insert(
                "rows".into(),
                executed.results.iter().map(|r| r.rows.len() as i64).sum(),
            );
            for r in &executed.results {
                if result_is_empty(r) {
                    diag.empty_flags.push(r.tool.clone());
                }
            }
            let references: Vec<Reference> = executed
                .results
                .iter()
                .flat_map(|r| r.references.iter().cloned())
                .collect();
            let mut applied: Vec<AssetRef> = compiled
                .tasks
                .iter()
                .filter_map(|task| snapshot.tools.get(&task.tool))
                .map(|tool| tool.reference.clone())
                .collect();
            applied.dedup();
            applied.extend(snapshot.source.iter().map(|s| s.applied.reference.clone()));
            applied.push(snapshot.catalog.reference.clone());
            recorder
                .push(stage_record(
                    Stage::Execute,
                    status,
                    to_struct(&serde_json::json!({ "tasks": tasks_json })),
                    to_struct(&serde_json::json!({ "results": executed.results })),
                    diag,
                    references,
                    t,
                    applied,
                ))
                .await;
            outcome.tool_calls.extend(executed.calls.iter().cloned());
            for f in &executed.fallbacks_used {
                outcome.fallback_used = true;
                if !outcome.data_quality.contains(&"fallback_source".to_owned()) {
                    outcome.data_quality.push("fallback_source".into());
                }
                tracing::info!(trace_id, source = %f, "answered from a fallback source");
            }
            for call in &executed.calls {
                if !outcome.used_tools.contains(&call.tool) {
                    outcome.used_tools.push(call.tool.clone());
                }
            }

            // ── CONTROL ─────────────────────────────────────────────────────────────────
            if let Some(failure) = executed.failures.first() {
                let retryable = matches!(
                    failure.error.kind,
                    ExecutorErrorKind::Unavailable
                        | ExecutorErrorKind::ResourceExhausted
                        | ExecutorErrorKind::DeadlineExceeded
                );
                let (trigger, patch) = if retryable {
                    (ReplanTrigger::ToolErrorRetryable, Some(plan.clone()))
                } else {
                    (ReplanTrigger::ToolErrorFatal, None)
                };
                let reason = format!("{} failed: {}", failure.tool, failure.error);
                match control.decide(Stage::Execute, trigger, &reason, &plan, patch) {
                    Decision::Replan(p) => {
                        plan = *p;
                        continue;
                    }
                    Decision::GiveUp(_) if executed.results.is_empty() => {
                        outcome.status = TraceStatus::Error;
                        outcome.answer = format!("The data could not be read: {reason}");
                        outcome.blocks = vec![text_block("error", outcome.answer.clone())];
                        return outcome;
                    }
                    Decision::GiveUp(_) => {
                        outcome.data_quality.push("partial".into());
                        break executed;
                    }
                }
            }
            if executed.is_empty() {
                let patch = control::widen_window(&plan).or_else(|| {
                    (plan.mode == "graph")
                        .then(|| control::deepen(&plan, max_depth))
                        .flatten()
                });
                match control.decide(
                    Stage::Execute,
                    ReplanTrigger::EmptyResult,
                    "every tool returned no rows",
                    &plan,
                    patch,
                ) {
                    Decision::Replan(p) => {
                        plan = *p;
                        continue;
                    }
                    Decision::GiveUp(_) => {
                        outcome.data_quality.push("empty_result".into());
                        break executed;
                    }
                }
            }
            if let Some(weak) = control::low_evidence(snapshot, &executed) {
                let _ = control.decide(
                    Stage::Execute,
                    ReplanTrigger::LowEvidence,
                    &weak,
                    &plan,
                    None,
                );
                outcome.data_quality.push("low_evidence".into());
            }
            if executed.results.iter().any(|r| r.truncated) {
                match control.decide(
                    Stage::Present,
                    ReplanTrigger::PresentLimit,
                    "a result reached the policy's row limit",
                    &plan,
                    control::count_instead(&plan),
                ) {
                    Decision::Replan(p) => {
                        outcome.data_quality.push("truncated".into());
                        plan = *p;
                        continue;
                    }
                    Decision::GiveUp(_) => {
                        if !outcome.data_quality.contains(&"truncated".to_owned()) {
                            outcome.data_quality.push("truncated".into());
                        }
                    }
                }
            }
            break executed;
        };
        outcome.plan_validated = Some(plan);
        self.compose_and_present(snapshot, ctx, question, executed, recorder, outcome)
            .await
    }

    async fn compose_and_present(
        &self,
        snapshot: &Arc<Snapshot>,
        ctx: &CallerContext,
        question: &str,
        executed: Executed,
        recorder: &mut Recorder,
        mut outcome: Outcome,
    ) -> Outcome {
        let limits = CallLimits::resolve(
            self.plugins.config(),
            snapshot
                .policy_spec()
                .and_then(|p| p.plugin_limits.as_ref()),
        );
        let blobs = self.registry.blobs();
        // ── COMPOSE ─────────────────────────────────────────────────────────────────────
        let t = Instant::now();
        let results: Vec<_> = executed
            .results
            .iter()
            .map(convert::tool_result_from_pb)
            .collect();
        outcome.references = executed
            .results
            .iter()
            .flat_map(|r| r.references.iter().cloned())
            .collect();
        let composed = self
            .plugins
            .compose(
                &ctx.tenant,
                snapshot.mapping.as_ref().map(|m| &m.spec),
                question,
                results,
                limits,
                &blobs,
            )
            .await;
        let applied: Vec<AssetRef> = snapshot
            .mapping
            .iter()
            .map(|m| m.reference.clone())
            .collect();
        let blocks = match composed {
            Ok(out) => {
                let blocks: Vec<Block> = out.output.iter().map(convert::block_to_pb).collect();
                let status = if out.report.fallback_reason.is_some() {
                    StageStatus::Warning
                } else {
                    StageStatus::Ok
                };
                let mut diag = Diagnostics::default();
                diag.warnings.extend(out.report.fallback_reason.clone());
                diag.counts.insert("blocks".into(), blocks.len() as i64);
                // Encoded once: the stage's output and the trace's answer blocks.
                let answer_blocks = to_struct(&serde_json::json!({ "blocks": blocks }));
                let mut output = answer_blocks.clone();
                output.fields.insert(
                    "plugin".into(),
                    pbjson_types::Value {
                        kind: Some(pbjson_types::value::Kind::StructValue(to_struct(
                            &out.report.to_proto(),
                        ))),
                    },
                );
                outcome.answer_blocks = Some(answer_blocks);
                recorder
                    .push(stage_record(
                        Stage::Compose,
                        status,
                        to_struct(&serde_json::json!({ "results": executed.results.len() })),
                        output,
                        diag,
                        outcome.references.clone(),
                        t,
                        applied,
                    ))
                    .await;
                blocks
            }
            Err(error) => {
                let mut diag = Diagnostics::default();
                diag.errors.push(error.to_string());
                recorder
                    .push(stage_record(
                        Stage::Compose,
                        StageStatus::Error,
                        to_struct(&serde_json::json!({ "results": executed.results.len() })),
                        Struct::default(),
                        diag,
                        Vec::new(),
                        t,
                        applied,
                    ))
                    .await;
                outcome.status = TraceStatus::Error;
                outcome.answer = format!("The answer could not be composed: {error}");
                outcome.blocks = vec![text_block("error", outcome.answer.clone())];
                return outcome;
            }
        };
        // ── PRESENT ─────────────────────────────────────────────────────────────────────
        let t = Instant::now();
        let wit_blocks: Vec<_> = blocks.iter().filter_map(convert::block_from_pb).collect();
        let applied: Vec<AssetRef> = snapshot
            .screen
            .iter()
            .map(|s| s.reference.clone())
            .collect();
        match self
            .plugins
            .present(
                &ctx.tenant,
                snapshot.screen.as_ref().map(|s| &s.spec),
                wit_blocks,
                limits,
                &blobs,
            )
            .await
        {
            Ok(out) => {
                let screen = convert::screen_to_pb(&out.output);
                let status = if out.report.fallback_reason.is_some() {
                    StageStatus::Warning
                } else {
                    StageStatus::Ok
                };
                let mut diag = Diagnostics::default();
                diag.warnings.extend(out.report.fallback_reason.clone());
                recorder
                    .push(stage_record(
                        Stage::Present,
                        status,
                        to_struct(&serde_json::json!({ "blocks": blocks.len() })),
                        to_struct(&serde_json::json!({
                            "screen": screen, "plugin": out.report.to_proto(),
                        })),
                        diag,
                        Vec::new(),
                        t,
                        applied,
                    ))
                    .await;
                outcome.next_actions = screen
                    .actions
                    .iter()
                    .map(|a| NextAction {
                        id: a.id.clone(),
                        label: a.label.clone(),
                        inputs: None,
                    })
                    .collect();
                outcome.screen = Some(screen);
            }
            Err(error) => {
                let mut diag = Diagnostics::default();
                diag.warnings.push(format!(
                    "no screen layout: {error}; blocks are returned as composed"
                ));
                recorder
                    .push(stage_record(
                        Stage::Present,
                        StageStatus::Warning,
                        to_struct(&serde_json::json!({ "blocks": blocks.len() })),
                        Struct::default(),
                        diag,
                        Vec::new(),
                        t,
                        applied,
                    ))
                    .await;
            }
        }
        if outcome.status == TraceStatus::Unspecified {
            outcome.status = if outcome.data_quality.iter().any(|q| q == "partial") {
                TraceStatus::Partial
            } else {
                TraceStatus::Success
            };
        }
        outcome.answer = answer::answer_line(&blocks, &outcome.data_quality);
        outcome.blocks = blocks;
        outcome
    }
}
