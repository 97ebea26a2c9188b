//! The pipeline service: Ask (from the question, a rerun plan or a replay of a recorded run)
//! and StageTest, over the five stage contracts ROUTE+PLAN → VALIDATE → EXECUTE → COMPOSE →
//! PRESENT (see `model::stages`).
//!
//! `run` steps through the stages and the control loop between them; `record` turns each
//! stage's typed input and output into its trace record; this file checks requests, loads the
//! tenant's snapshot and commits the trace. The response leaves only after its trace is
//! committed.

mod answer;
pub mod control;
pub mod error;
mod grounding;
mod llm;
mod preview;
pub mod rate;
mod rca;
mod record;
mod regression;
pub mod render;
mod replay;
mod rerun;
mod run;
mod sentence;
pub mod snapshot;
mod spend;
mod stage_test;
mod ui_action;

use std::sync::Arc;
use std::time::Instant;

use ops_proto::convert::{time_of, timestamp, to_struct};
use ops_proto::v1::{
    AskMeta, AskMode, AskRequest, AskResponse, AssetRef, Reference, ReplanEvent, ReplanTrigger,
    Stage, StageEvent, StageRecord, StageStatus, StageTiming, Trace, TraceStatus,
};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::context::CallerContext;
use crate::execute::Executors;
use crate::execute::source_health::SourceHealth;
use crate::model::plan_kind::Mode;
use crate::model::refs::AssetReference;
use crate::model::snapshot::Snapshot;
use crate::model::stages::RoutePlanInput;
use crate::plugins::PluginHost;
use crate::registry::Registry;
use crate::trace::{Retention, TraceWriter, enum_slug};
use control::{Cooling, Loop};
pub use error::PipelineError;
use run::{Outcome, Recorder, Run, Start};
use snapshot::SnapshotCache;

/// Longest question accepted (characters).
const MAX_QUESTION_CHARS: usize = 4000;

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
    /// The LLM endpoint, when `[llm]` is on.
    llm: Option<Arc<crate::llm::Llm>>,
    spend: Arc<spend::SpendLedger>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

/// One answered ask in the process's metrics.
fn record_metrics(
    tenant: &str,
    outcome: &Outcome,
    timings: &[StageTiming],
    replans: &[ReplanEvent],
    duration_ms: f64,
) {
    let metrics = crate::metrics::get();
    let route = enum_slug(outcome.route.as_str_name(), "ROUTE_");
    let status = enum_slug(outcome.status.as_str_name(), "TRACE_STATUS_");
    metrics
        .asks
        .with_label_values(&[tenant, route.as_str(), status.as_str()])
        .inc();
    metrics
        .ask_seconds
        .with_label_values(&[route.as_str()])
        .observe(duration_ms / 1000.0);
    for timing in timings {
        let stage = Stage::try_from(timing.stage).map_or("unspecified".to_owned(), |s| {
            enum_slug(s.as_str_name(), "STAGE_")
        });
        let stage_status = StageStatus::try_from(timing.status)
            .map_or("unspecified".to_owned(), |s| {
                enum_slug(s.as_str_name(), "STAGE_STATUS_")
            });
        metrics
            .stage_seconds
            .with_label_values(&[stage.as_str(), stage_status.as_str()])
            .observe(timing.duration_ms / 1000.0);
    }
    for event in replans {
        let trigger = ReplanTrigger::try_from(event.trigger)
            .map_or("unspecified".to_owned(), |t| {
                enum_slug(t.as_str_name(), "REPLAN_TRIGGER_")
            });
        metrics.replans.with_label_values(&[trigger.as_str()]).inc();
    }
}

fn invalid(field: &str, message: impl Into<String>) -> PipelineError {
    PipelineError::InvalidArgument {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// A trace read's bad-input error, named by the request field that carried the id.
fn named(error: crate::trace::TraceError, field: &str) -> PipelineError {
    match error {
        crate::trace::TraceError::InvalidArgument { message, .. } => invalid(field, message),
        other => other.into(),
    }
}

fn forced_mode(mode: i32) -> Result<Option<Mode>, PipelineError> {
    Ok(match AskMode::try_from(mode) {
        Ok(AskMode::Unspecified | AskMode::All) => None,
        Ok(AskMode::Config) => Some(Mode::Config),
        Ok(AskMode::Metric) => Some(Mode::Metric),
        Ok(AskMode::History) => Some(Mode::History),
        Ok(AskMode::Graph) => Some(Mode::Graph),
        Ok(AskMode::Document) => Some(Mode::Document),
        Err(_) => {
            return Err(invalid(
                "mode",
                format!(
                    "{mode} is not an AskMode: expected ALL, CONFIG, METRIC, HISTORY, GRAPH or DOCUMENT"
                ),
            ));
        }
    })
}

/// `type:name@version` overrides; `@draft` and exact versions are for test runs only.
fn parse_overrides(overrides: &[String]) -> Result<Vec<AssetReference>, PipelineError> {
    overrides
        .iter()
        .map(|o| AssetReference::parse(o))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|message| invalid("asset_overrides", message))
}

/// When a run's reads must be done: the Policy's time budget (30 s without one) from now.
fn deadline(snapshot: &Snapshot) -> Instant {
    let ms = snapshot
        .policy_spec()
        .and_then(|p| p.budget.as_ref())
        .map_or(0, |b| b.timeout_ms);
    Instant::now() + std::time::Duration::from_millis(if ms == 0 { 30_000 } else { u64::from(ms) })
}

fn retention(snapshot: &Snapshot) -> Retention {
    let policy = snapshot.policy_spec();
    let traces = policy.and_then(|p| p.trace_retention.as_ref());
    Retention {
        days: traces.map_or(0, |r| r.days),
        max_traces: traces.map_or(0, |r| r.max_traces),
        audit_days: policy.map_or(0, |p| p.audit_retention_days),
    }
}

/// Every asset version the stages applied, once, in first-use order.
fn applied_assets(stages: &[StageRecord]) -> Vec<AssetRef> {
    let mut applied: Vec<AssetRef> = Vec::new();
    for stage in stages {
        for a in &stage.applied_assets {
            if !applied.contains(a) {
                applied.push(a.clone());
            }
        }
    }
    applied
}

/// How a run is traced and controlled.
struct Settings {
    test_mode: bool,
    /// Whether the control loop may replan (Ask) or not (a screen action).
    replans: bool,
    started: Instant,
    started_at: OffsetDateTime,
    /// The RPC that asked, when the run's ask is audited (with its trace).
    audited_as: Option<&'static str>,
}

/// A committed run.
struct Answered {
    status: TraceStatus,
    response: AskResponse,
    references: Vec<Reference>,
    first_result_rows: usize,
}

/// What a run is about before its first stage.
struct Request {
    question: String,
    mode: String,
    as_of: OffsetDateTime,
    start: Start,
    parent_trace_id: String,
    /// Stages copied from the parent trace (a replay).
    frozen: Vec<StageRecord>,
    replayed_from: Stage,
    outcome: Outcome,
}

impl Pipeline {
    pub fn new(
        registry: Registry,
        executors: Executors,
        plugins: PluginHost,
        traces: TraceWriter,
    ) -> Self {
        let rate = rate::RateLimiter::new(registry.db());
        let spend = Arc::new(spend::SpendLedger::new(registry.db().clone()));
        Self {
            registry,
            executors,
            plugins,
            snapshots: SnapshotCache::default(),
            traces,
            cooling: Cooling::default(),
            rate,
            health: SourceHealth::default(),
            llm: None,
            spend,
        }
    }

    /// Plans and writes answers with `llm` too (see `[llm] mode`).
    pub fn with_llm(mut self, llm: Option<Arc<crate::llm::Llm>>) -> Self {
        self.llm = llm;
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The tenant's snapshot, with `overrides` applied (never cached then).
    async fn snapshot(
        &self,
        tenant: &str,
        overrides: &[AssetReference],
    ) -> Result<Arc<Snapshot>, PipelineError> {
        self.snapshots
            .get(
                &self.registry,
                &self.executors,
                &self.health,
                tenant,
                overrides,
            )
            .await
    }

    /// The Policy's rate limits, for every call that runs stages (Ask, StageTest, previews,
    /// screen actions).
    async fn rate_limit(
        &self,
        ctx: &CallerContext,
        snapshot: &Snapshot,
    ) -> Result<(), PipelineError> {
        match snapshot.policy_spec().and_then(|p| p.rate_limit.as_ref()) {
            Some(limit) => self.rate.check(&ctx.tenant, &ctx.principal, limit).await,
            None => Ok(()),
        }
    }

    /// Checks an Ask request and decides where its run starts.
    async fn request(
        &self,
        ctx: &CallerContext,
        request: &AskRequest,
        now: OffsetDateTime,
    ) -> Result<Request, PipelineError> {
        let question = request.question.trim().to_owned();
        if let Some(replay) = &request.replay {
            if !request.test_mode {
                return Err(invalid(
                    "replay",
                    "a replay is a test run: set test_mode (its trace is marked as a test)",
                ));
            }
            if !question.is_empty() || request.as_of.is_some() || request.rerun.is_some() {
                return Err(invalid(
                    "replay",
                    "a replay takes its question and as_of from the trace: leave question, as_of and rerun empty",
                ));
            }
            return replay::prepare(self.registry.db(), &ctx.tenant, replay).await;
        }
        let rerun = request.rerun.as_ref().filter(|r| r.base_plan.is_some());
        if question.is_empty() && rerun.is_none() {
            return Err(invalid(
                "question",
                "the question is empty: ask something, e.g. \"GT-01 CPU average last week\"",
            ));
        }
        let chars = question.chars().count();
        if chars > MAX_QUESTION_CHARS {
            return Err(invalid(
                "question",
                format!(
                    "the question has {chars} characters; at most {MAX_QUESTION_CHARS} are accepted"
                ),
            ));
        }
        let mode = forced_mode(request.mode)?
            .map_or("all", |m| m.as_str())
            .to_owned();
        let as_of = request.as_of.as_ref().and_then(time_of).unwrap_or(now);
        Ok(Request {
            start: Start::RoutePlan(RoutePlanInput {
                question: question.clone(),
                mode: mode.clone(),
                as_of: timestamp(as_of),
                rerun: rerun.and_then(rerun::rerun_plan),
            }),
            question,
            mode,
            as_of,
            parent_trace_id: rerun.map(|r| r.parent_trace_id.clone()).unwrap_or_default(),
            frozen: Vec::new(),
            replayed_from: Stage::Unspecified,
            outcome: Outcome::default(),
        })
    }

    /// Runs one question (or a replay); with `events`, each stage record is sent as it
    /// finishes. `audited_as`: the RPC that asked, whose audit record is committed with the
    /// trace (none for a regression run's asks).
    pub async fn ask(
        &self,
        ctx: &CallerContext,
        request: AskRequest,
        events: Option<mpsc::Sender<StageEvent>>,
        audited_as: Option<&'static str>,
    ) -> Result<AskResponse, PipelineError> {
        let started = Instant::now();
        let started_at = OffsetDateTime::now_utc();
        if !request.asset_overrides.is_empty() && !request.test_mode {
            return Err(invalid(
                "asset_overrides",
                "asset overrides are only accepted in test mode (set test_mode)",
            ));
        }
        let overrides = parse_overrides(&request.asset_overrides)?;
        let prepared = self.request(ctx, &request, started_at).await?;
        let snapshot = self.snapshot(&ctx.tenant, &overrides).await?;
        self.rate_limit(ctx, &snapshot).await?;
        let ran = self
            .run(
                ctx,
                prepared,
                &snapshot,
                Settings {
                    test_mode: request.test_mode,
                    replans: true,
                    started,
                    started_at,
                    audited_as,
                },
                events,
            )
            .await?;
        Ok(ran.response)
    }

    /// Runs `prepared` on `snapshot`, commits its trace and answers.
    async fn run(
        &self,
        ctx: &CallerContext,
        prepared: Request,
        snapshot: &Arc<Snapshot>,
        settings: Settings,
        events: Option<mpsc::Sender<StageEvent>>,
    ) -> Result<Answered, PipelineError> {
        let Settings {
            test_mode,
            replans,
            started,
            started_at,
            audited_as,
        } = settings;
        let trace_id = uuid::Uuid::new_v4().to_string();
        // Screen actions re-run a plan as asked: no replans.
        let replan_policy = snapshot
            .policy_spec()
            .and_then(|p| p.replan.as_ref())
            .filter(|_| replans);
        let mut run = Run {
            pipeline: self,
            snapshot,
            tenant: &ctx.tenant,
            trace_id: &trace_id,
            question: &prepared.question,
            as_of: prepared.as_of,
            recorder: Recorder {
                trace_id: trace_id.clone(),
                stages: prepared.frozen,
                events,
            },
            control: Loop::new(replan_policy, &ctx.tenant, &self.cooling),
            outcome: prepared.outcome,
            carried: None,
        };
        // One span per run (exported with `[otel]`); each stage's span is its child.
        let span = tracing::info_span!(
            "ask",
            tenant = %ctx.tenant,
            trace_id = %trace_id,
            route = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        run.from(prepared.start).instrument(span.clone()).await;
        let Run {
            recorder,
            control,
            outcome,
            ..
        } = run;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut applied = applied_assets(&recorder.stages);
        // The answer writer's Prompt: applied after the stages, by no stage's record.
        llm::add_prompts(&mut applied, &outcome.planning.calls);
        let timings: Vec<StageTiming> = recorder
            .stages
            .iter()
            .map(|s| StageTiming {
                stage: s.stage,
                status: s.status,
                duration_ms: s.duration_ms,
            })
            .collect();
        let trace =
            Trace {
                trace_id: trace_id.clone(),
                parent_trace_id: prepared.parent_trace_id,
                tenant: ctx.tenant.clone(),
                principal: ctx.principal.clone(),
                question: prepared.question.clone(),
                mode: prepared.mode,
                route: outcome.route as i32,
                status: outcome.status as i32,
                started_at: Some(timestamp(started_at)),
                as_of: Some(timestamp(prepared.as_of)),
                duration_ms,
                plan_raw: outcome.plan_raw.clone(),
                plan_validated: outcome.plan_validated.clone(),
                route_reason: outcome.route_reason.clone(),
                applied_assets: applied.clone(),
                stages: recorder.stages,
                replan_events: control.events.clone(),
                tool_calls: outcome.tool_calls.clone(),
                references: outcome.references.clone(),
                violations: outcome.violations.clone(),
                answer: outcome.answer.clone(),
                answer_blocks: Some(outcome.answer_blocks.clone().unwrap_or_else(|| {
                    to_struct(&serde_json::json!({ "blocks": outcome.blocks }))
                })),
                test_mode,
                replayed_from: prepared.replayed_from as i32,
                data_quality: outcome.data_quality.clone(),
                llm_calls: outcome.planning.calls.clone(),
                planner: outcome.planning.planner.to_owned(),
                llm_fallback_reason: outcome.planning.fallback_reason.clone(),
                summary: outcome.summary.clone(),
            };
        let committed = self
            .traces
            .commit(trace, retention(snapshot), audited_as)
            .await;
        self.spend.settled(&ctx.tenant, &outcome.planning.calls);
        committed.map_err(|e| {
            PipelineError::Unavailable(format!(
                "the answer's trace was not saved, so the answer is withheld: {e}"
            ))
        })?;
        span.record("route", outcome.route.as_str_name());
        span.record("status", outcome.status.as_str_name());
        tracing::info!(trace_id, tenant = %ctx.tenant, route = ?outcome.route, status = ?outcome.status, duration_ms, "answered");
        record_metrics(
            &ctx.tenant,
            &outcome,
            &timings,
            &control.events,
            duration_ms,
        );
        let references = outcome.references;
        let first_result_rows = outcome.first_result_rows;
        let response = AskResponse {
            trace_id: trace_id.clone(),
            route: outcome.route as i32,
            answer: outcome.answer,
            blocks: outcome.blocks,
            screen: outcome.screen,
            plan: outcome.plan_validated.or(outcome.plan_raw),
            meta: Some(AskMeta {
                timings,
                total_ms: started.elapsed().as_secs_f64() * 1000.0,
                used_tools: outcome.used_tools,
                fallback_used: outcome.fallback_used,
                data_quality: outcome.data_quality,
                replans: control.replans(),
                applied_assets: applied,
                planner: outcome.planning.planner.to_owned(),
                fallback_reason: outcome.planning.fallback_reason,
                llm_breaker: self
                    .llm
                    .as_ref()
                    .map(|l| l.breaker_state().as_str().to_owned())
                    .unwrap_or_default(),
            }),
            next_actions: outcome.next_actions,
            summary: outcome.summary,
        };
        Ok(Answered {
            status: outcome.status,
            response,
            references,
            first_result_rows,
        })
    }
}
