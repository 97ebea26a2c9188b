//! One run of the stages from any starting point: ROUTE+PLAN → (VALIDATE → EXECUTE, under
//! the control loop) → COMPOSE → PRESENT. Each step calls its stage's contract function,
//! records exactly the stage's input and output, and leaves the decisions between stages (the
//! replan triggers, the answer's status) to this file. Ask starts at ROUTE+PLAN; a replay
//! starts at the stage it names with that stage's recorded input.

use std::sync::Arc;
use std::time::Instant;

use ops_proto::v1::{
    Block, NextAction, Plan, Reference, ReplanTrigger, Route, ScreenModel, Stage, StageEvent,
    StageRecord, TextBlock, TraceStatus, Violation, block,
};
use pbjson_types::Struct;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::control::{self, Decision, Loop};
use super::record::{self, Ran};
use super::{Pipeline, answer, llm, sentence};
use crate::execute::tasks::all_empty;
use crate::model::plan_kind::{self, Mode};
use crate::model::snapshot::Snapshot;
use crate::model::stages::{
    ComposeInput, ExecuteInput, ExecuteOutput, PresentInput, RoutePlanInput, RoutePlanOutput,
    StageInput, ValidateInput,
};
use crate::{execute, plugins, route_plan, validate};

/// Where a run starts.
#[derive(Debug, Clone)]
pub enum Start {
    RoutePlan(RoutePlanInput),
    /// VALIDATE of this plan, then the rest.
    Validate(ValidateInput),
    /// EXECUTE of these tasks (the validated `plan` they came from is kept for replans).
    Execute {
        plan: Plan,
        input: ExecuteInput,
    },
    Compose(ComposeInput),
    Present(PresentInput),
}

/// Stage records of one run, streamed as they finish when the caller asked for a stream.
pub(super) struct Recorder {
    pub trace_id: String,
    pub stages: Vec<StageRecord>,
    pub events: Option<mpsc::Sender<StageEvent>>,
}

impl Recorder {
    pub async fn push(&mut self, record: StageRecord) {
        if let Some(events) = &self.events {
            // A caller that went away still gets its run traced.
            let _ = events
                .send(StageEvent {
                    trace_id: self.trace_id.clone(),
                    stage: Some(record.clone()),
                })
                .await;
        }
        self.stages.push(record);
    }
}

/// The pieces of a finished run the trace and the response share.
#[derive(Default)]
pub(super) struct Outcome {
    pub route: Route,
    pub route_reason: String,
    pub status: TraceStatus,
    pub plan_raw: Option<Plan>,
    pub plan_validated: Option<Plan>,
    pub answer: String,
    pub blocks: Vec<Block>,
    pub screen: Option<ScreenModel>,
    pub references: Vec<Reference>,
    pub violations: Vec<Violation>,
    pub tool_calls: Vec<ops_proto::v1::ToolCall>,
    pub used_tools: Vec<String>,
    pub data_quality: Vec<String>,
    pub fallback_used: bool,
    pub next_actions: Vec<NextAction>,
    /// Rows of the first tool result COMPOSE mapped (a page's size, for screen actions).
    pub first_result_rows: usize,
    /// The answer's blocks as COMPOSE's record encoded them (the trace's `answer_blocks`).
    pub answer_blocks: Option<Struct>,
    /// The answer line as a sentence in the question's language, from the plan and the
    /// tool results COMPOSE received.
    pub sentence: Option<String>,
    /// Which planner produced the plan and the LLM's calls (see `llm::Planning`).
    pub planning: llm::Planning,
    /// The answer writer's paragraph, when kept.
    pub summary: String,
    /// What the answer writer may cite: the tool results and the plan's CIs.
    pub grounds: Option<llm::Grounds>,
}

impl Outcome {
    fn end(&mut self, status: TraceStatus, title: &str, answer: String) {
        self.status = status;
        self.blocks = vec![text_block(title, answer.clone())];
        self.answer = answer;
    }

    fn flag(&mut self, quality: &str) {
        if !self.data_quality.iter().any(|q| q == quality) {
            self.data_quality.push(quality.to_owned());
        }
    }
}

/// The inputs a follow-up action starts from: the next page of a truncated table.
fn action_inputs(id: &str, blocks: &[Block]) -> Option<pbjson_types::Struct> {
    if id != "load_more_rows" {
        return None;
    }
    let shown = blocks.iter().find_map(|b| match &b.content {
        Some(block::Content::Table(t)) if t.truncated => Some(t.rows.len()),
        _ => None,
    })?;
    Some(ops_proto::convert::to_struct(
        &serde_json::json!({ "offset": shown, "limit": 20 }),
    ))
}

fn text_block(title: &str, text: String) -> Block {
    Block {
        title: title.to_owned(),
        content: Some(block::Content::Text(TextBlock { text })),
    }
}

/// One run: the stages it has run so far and where it stands.
pub(super) struct Run<'a> {
    pub pipeline: &'a Pipeline,
    pub snapshot: &'a Arc<Snapshot>,
    pub tenant: &'a str,
    pub trace_id: &'a str,
    pub question: &'a str,
    pub as_of: OffsetDateTime,
    pub recorder: Recorder,
    pub control: Loop<'a>,
    pub outcome: Outcome,
    /// The next stage's input as the stage before already encoded it (a part of its recorded
    /// output), so the trace does not encode the same tasks, results or blocks twice.
    pub carried: Option<Struct>,
}

fn carried(
    parts: impl IntoIterator<Item = Option<(String, pbjson_types::Value)>>,
) -> Option<Struct> {
    let fields: std::collections::HashMap<String, pbjson_types::Value> =
        parts.into_iter().collect::<Option<_>>()?;
    Some(Struct { fields })
}

impl Run<'_> {
    /// Runs every stage from `start` to PRESENT (or to the stage that ends the run).
    pub async fn from(&mut self, start: Start) {
        let (plan, tasks) = match start {
            Start::RoutePlan(input) => match self.route_plan(input).await {
                Some(plan) => (plan, None),
                None => return,
            },
            Start::Validate(input) => (input.plan, None),
            Start::Execute { plan, input } => (plan, Some(input)),
            Start::Compose(input) => return self.compose_and_present(input).await,
            Start::Present(input) => return self.present(input.blocks).await,
        };
        self.outcome.route = Route::Orch;
        let Some(executed) = self.orchestrate(plan, tasks).await else {
            return;
        };
        let input = ComposeInput {
            question: self.question.to_owned(),
            results: executed.results,
        };
        self.compose_and_present(input).await;
    }

    /// ROUTE+PLAN; the plan to run, or None when the run ends here (direct, reject, a slot
    /// the loop could not fill).
    #[tracing::instrument(name = "route_plan", skip_all)]
    async fn route_plan(&mut self, input: RoutePlanInput) -> Option<Plan> {
        let started = Instant::now();
        let judged = route_plan::judge(&self.snapshot.knowledge, &input);
        let (output, planning) = llm::plan(
            self.pipeline.llm.as_deref(),
            &self.pipeline.spend,
            self.snapshot,
            &input,
            judged,
            self.as_of,
        )
        .await;
        let mut ran = Ran::new(StageInput::RoutePlan(input), output, started);
        let mut recorded = record::route_plan(self.snapshot, &mut ran);
        record::planner_notes(&mut recorded, &planning);
        self.outcome.planning = planning;
        self.recorder.push(recorded).await;
        match ran.output {
            RoutePlanOutput::Direct { intent, reason } => {
                self.outcome.route_reason = reason;
                self.outcome.route = Route::Direct;
                let answer = answer::direct_answer(self.snapshot, &intent, self.as_of);
                self.outcome.end(TraceStatus::Success, "", answer);
                None
            }
            RoutePlanOutput::Reject { rule, reason } => {
                self.outcome.route_reason = reason.clone();
                self.outcome.route = Route::Reject;
                self.outcome.violations.push(Violation {
                    field: "question".into(),
                    r#type: "policy".into(),
                    rule: rule.clone(),
                    message: reason.clone(),
                    expected: "a read-only question about operations data".into(),
                    actual: self.question.to_owned(),
                    severity: ops_proto::v1::Severity::Error as i32,
                    blocking: true,
                });
                self.outcome.end(
                    TraceStatus::Rejected,
                    "refused",
                    answer::refused_answer(self.snapshot, self.question, &reason),
                );
                None
            }
            RoutePlanOutput::Orch { reason, plan } => {
                self.outcome.route_reason = reason;
                self.outcome.route = Route::Orch;
                self.outcome.plan_raw = Some(plan.clone());
                if plan.missing_slots.is_empty() {
                    return Some(plan);
                }
                // The codes like an unknown name, for the answer and for RCA.
                let similar = answer::similar_codes(self.snapshot, &plan);
                let mut reason = format!("missing {}", plan.missing_slots.join(", "));
                if !similar.is_empty() {
                    reason.push_str(&format!("; similar codes: {}", similar.join(", ")));
                }
                match self.control.decide(
                    Stage::RoutePlan,
                    ReplanTrigger::SlotMissing,
                    &reason,
                    &plan,
                    control::resolve_missing_entity(self.snapshot, &plan),
                ) {
                    Decision::Replan(p) => Some(*p),
                    Decision::GiveUp(_) => {
                        let answer = answer::slot_missing_answer(
                            self.snapshot,
                            self.question,
                            &plan,
                            self.tenant,
                        );
                        self.outcome
                            .end(TraceStatus::Partial, "slot_missing", answer);
                        self.outcome.flag("slot_missing");
                        None
                    }
                }
            }
        }
    }

    /// VALIDATE → EXECUTE under the control loop. `first` runs as the first EXECUTE instead of
    /// validating `plan` (a replay from EXECUTE); a replan always validates again. Returns what
    /// COMPOSE should map, or None when the run ended (blocked, nothing readable).
    async fn orchestrate(
        &mut self,
        mut plan: Plan,
        mut first: Option<ExecuteInput>,
    ) -> Option<ExecuteOutput> {
        let deadline = super::deadline(self.snapshot);
        let max_depth = self
            .snapshot
            .policy_spec()
            .and_then(|p| p.budget.as_ref())
            .map_or(0, |b| b.max_depth);
        let executed = loop {
            let input = match first.take() {
                Some(input) => input,
                None => self.validate(&plan).await?,
            };
            self.outcome.plan_validated = Some(plan.clone());
            let executed = self.execute(input, deadline).await;

            // ── CONTROL ─────────────────────────────────────────────────────────────────
            if let Some(failure) = executed.failures.first() {
                let (trigger, patch) = if failure.retryable {
                    (ReplanTrigger::ToolErrorRetryable, Some(plan.clone()))
                } else {
                    (ReplanTrigger::ToolErrorFatal, None)
                };
                let reason = format!("{} failed: {}", failure.tool, failure.error);
                match self
                    .control
                    .decide(Stage::Execute, trigger, &reason, &plan, patch)
                {
                    Decision::Replan(p) => {
                        plan = *p;
                        continue;
                    }
                    Decision::GiveUp(_) if executed.results.is_empty() => {
                        self.outcome.end(
                            TraceStatus::Error,
                            "error",
                            format!("The data could not be read: {reason}"),
                        );
                        return None;
                    }
                    Decision::GiveUp(_) => {
                        self.outcome.data_quality.push("partial".into());
                        break executed;
                    }
                }
            }
            if all_empty(&executed) {
                let patch = control::widen_window(&plan).or_else(|| {
                    (plan_kind::mode(&plan) == Some(Mode::Graph))
                        .then(|| control::deepen(&plan, max_depth))
                        .flatten()
                });
                match self.control.decide(
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
                        self.outcome.data_quality.push("empty_result".into());
                        break executed;
                    }
                }
            }
            if let Some(weak) = control::low_evidence(self.snapshot, &executed) {
                let _ = self.control.decide(
                    Stage::Execute,
                    ReplanTrigger::LowEvidence,
                    &weak,
                    &plan,
                    None,
                );
                self.outcome.data_quality.push("low_evidence".into());
            }
            if executed.results.iter().any(|r| r.truncated) {
                match self.control.decide(
                    Stage::Present,
                    ReplanTrigger::PresentLimit,
                    "a result reached the policy's row limit",
                    &plan,
                    control::count_instead(&plan),
                ) {
                    Decision::Replan(p) => {
                        self.outcome.data_quality.push("truncated".into());
                        plan = *p;
                        continue;
                    }
                    Decision::GiveUp(_) => self.outcome.flag("truncated"),
                }
            }
            break executed;
        };
        self.outcome.plan_validated = Some(plan);
        Some(executed)
    }

    /// VALIDATE; the tasks to execute, or None when the Policy or the guard blocked the plan
    /// (the run is then refused).
    #[tracing::instrument(name = "validate", skip_all)]
    async fn validate(&mut self, plan: &Plan) -> Option<ExecuteInput> {
        let started = Instant::now();
        let input = ValidateInput { plan: plan.clone() };
        let output = validate::run(self.snapshot, self.tenant, &input);
        let mut ran = Ran::new(StageInput::Validate(input), output, started);
        let validated = record::validate(self.snapshot, &mut ran);
        self.carried = validated
            .output
            .as_ref()
            .and_then(|o| carried([record::part(o, "tasks")]));
        self.recorder.push(validated).await;
        let output = ran.output;
        self.outcome
            .violations
            .extend(output.violations.iter().cloned());
        if output.blocked() {
            let first = output
                .violations
                .iter()
                .find(|v| v.blocking)
                .map(|v| format!("{} ({})", v.message, v.rule))
                .unwrap_or_default();
            // A blocked plan has no alternative the loop could try: it is refused.
            let _ = self.control.decide(
                Stage::Validate,
                ReplanTrigger::PolicyBlocked,
                &first,
                plan,
                None,
            );
            self.outcome.end(
                TraceStatus::Rejected,
                "refused",
                answer::refused_answer(self.snapshot, self.question, &first),
            );
            self.outcome.plan_validated = Some(plan.clone());
            return None;
        }
        Some(ExecuteInput {
            tasks: output.tasks,
        })
    }

    #[tracing::instrument(name = "execute", skip_all)]
    async fn execute(&mut self, input: ExecuteInput, deadline: Instant) -> ExecuteOutput {
        let started = Instant::now();
        let pipeline = self.pipeline;
        let output = execute::run(
            &pipeline.executors,
            &pipeline.health,
            self.snapshot,
            self.trace_id,
            deadline,
            &input,
        )
        .await;
        let mut ran = Ran::new(StageInput::Execute(input), output, started);
        ran.encoded = self.carried.take();
        let executed = record::execute(self.snapshot, &mut ran);
        self.carried = executed.output.as_ref().and_then(|o| {
            carried([
                Some((
                    "question".to_owned(),
                    pbjson_types::Value {
                        kind: Some(pbjson_types::value::Kind::StringValue(
                            self.question.to_owned(),
                        )),
                    },
                )),
                record::part(o, "results"),
            ])
        });
        self.recorder.push(executed).await;
        let output = ran.output;
        self.outcome.tool_calls.extend(output.calls.iter().cloned());
        let mut counted: Vec<&String> = Vec::new();
        for source in &output.fallbacks_used {
            if !counted.contains(&source) {
                counted.push(source);
                crate::metrics::get()
                    .fallbacks
                    .with_label_values(&[source.as_str()])
                    .inc();
            }
            self.outcome.fallback_used = true;
            self.outcome.flag("fallback_source");
            tracing::info!(trace_id = self.trace_id, source = %source, "answered from a fallback source");
        }
        for call in &output.calls {
            if !self.outcome.used_tools.contains(&call.tool) {
                self.outcome.used_tools.push(call.tool.clone());
            }
        }
        output
    }

    #[tracing::instrument(name = "compose", skip_all)]
    async fn compose_and_present(&mut self, input: ComposeInput) {
        self.outcome.first_result_rows = input.results.first().map_or(0, |r| r.rows.len());
        let plan = self
            .outcome
            .plan_validated
            .as_ref()
            .or(self.outcome.plan_raw.as_ref());
        self.outcome.sentence =
            plan.and_then(|p| sentence::sentence(self.snapshot, self.question, p, &input.results));
        if self.pipeline.llm.is_some() && self.snapshot.summarizer_prompt.is_some() {
            let results = serde_json::to_value(&input.results).unwrap_or_default();
            self.outcome.grounds = Some(llm::grounds(plan, &results));
        }
        let references = record::references(&input.results);
        self.outcome.references = references.clone();
        let started = Instant::now();
        let pipeline = self.pipeline;
        let blobs = pipeline.registry.blobs();
        let output = plugins::stage::compose(&pipeline.plugins, &blobs, self.snapshot, &input)
            .await
            .map_err(|e| e.to_string());
        let mut ran = Ran::new(StageInput::Compose(input), output, started);
        ran.encoded = self.carried.take();
        let composed = record::compose(self.snapshot, &mut ran, references);
        self.carried = composed
            .output
            .as_ref()
            .and_then(|o| carried([record::part(o, "blocks")]));
        self.outcome.answer_blocks = self.carried.clone();
        self.recorder.push(composed).await;
        match ran.output {
            Ok(output) => self.present(output.blocks).await,
            Err(error) => self.outcome.end(
                TraceStatus::Error,
                "error",
                format!("The answer could not be composed: {error}"),
            ),
        }
    }

    #[tracing::instrument(name = "present", skip_all)]
    async fn present(&mut self, blocks: Vec<Block>) {
        let started = Instant::now();
        let pipeline = self.pipeline;
        let blobs = pipeline.registry.blobs();
        let input = PresentInput { blocks };
        let output = plugins::stage::present(&pipeline.plugins, &blobs, self.snapshot, &input)
            .await
            .map_err(|e| e.to_string());
        let mut ran = Ran::new(StageInput::Present(input), output, started);
        ran.encoded = self.carried.take();
        self.recorder
            .push(record::present(self.snapshot, &mut ran))
            .await;
        let StageInput::Present(PresentInput { blocks }) = ran.input else {
            return;
        };
        if let Ok(output) = ran.output
            && let Some(screen) = output.screen
        {
            self.outcome.next_actions = screen
                .actions
                .iter()
                .map(|a| NextAction {
                    id: a.id.clone(),
                    label: a.label.clone(),
                    inputs: action_inputs(&a.id, &blocks),
                })
                .collect();
            self.outcome.screen = Some(screen);
        }
        if self.outcome.status == TraceStatus::Unspecified {
            self.outcome.status = if self.outcome.data_quality.iter().any(|q| q == "partial") {
                TraceStatus::Partial
            } else {
                TraceStatus::Success
            };
        }
        // An empty answer restates what found nothing ("no critical alarms yesterday") when
        // its sentence can, else says no data matched.
        let empty = self
            .outcome
            .data_quality
            .iter()
            .any(|q| q == "empty_result");
        let sentence = self
            .outcome
            .sentence
            .take()
            .or_else(|| empty.then(|| sentence::no_data(self.snapshot, self.question))?);
        self.outcome.answer =
            sentence.unwrap_or_else(|| answer::answer_line(&blocks, &self.outcome.data_quality));
        self.outcome.blocks = blocks;
        self.summarize().await;
    }

    /// The answer writer's paragraph (a `summarizer` Prompt with `[llm]` on), kept only when
    /// the results ground every number and code in it.
    async fn summarize(&mut self) {
        let (Some(llm), Some(grounds)) =
            (self.pipeline.llm.as_deref(), self.outcome.grounds.take())
        else {
            return;
        };
        if !matches!(
            self.outcome.status,
            TraceStatus::Success | TraceStatus::Partial
        ) {
            return;
        }
        let blocks = serde_json::to_value(&self.outcome.blocks).unwrap_or_default();
        let Some(summary) = llm::summarize(
            llm,
            &self.pipeline.spend,
            self.snapshot,
            self.question,
            &self.outcome.answer,
            &blocks,
            grounds,
        )
        .await
        else {
            return;
        };
        self.outcome.planning.calls.extend(summary.call);
        if summary.dropped {
            self.outcome.flag("summary_dropped");
        }
        self.outcome.summary = summary.text.unwrap_or_default();
    }
}
