//! What the trace records of each stage: its typed input and output as Structs, and the
//! status, diagnostics, references and applied asset versions derived from the output. One
//! function per stage, shared by Ask, replay and StageTest, so a stage recorded by any of them
//! reads the same.

use std::time::Instant;

use ops_proto::convert::to_struct;
use ops_proto::v1::{
    AssetRef, Diagnostics, Reference, Stage, StageRecord, StageStatus, ToolResult,
};
use pbjson_types::Struct;
use serde::Serialize;

use crate::execute::tasks::result_is_empty;
use crate::model::snapshot::Snapshot;
use crate::model::stages::{
    ComposeOutput, ExecuteOutput, PresentOutput, RoutePlanOutput, StageInput, ValidateOutput,
};
use crate::model::task::Task;

pub(super) fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// A stage record; the record's status is its diagnostics' status.
#[allow(clippy::too_many_arguments)]
pub(super) fn record(
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
        diagnostics: Some(Diagnostics {
            status: status as i32,
            ..diagnostics
        }),
        references,
        duration_ms: ms(started),
        applied_assets: applied,
        frozen: false,
    }
}

/// A stage that ran: its typed input and output with what the trace shows beside them.
pub(super) struct Ran<O> {
    pub input: StageInput,
    /// The input as the trace records it, when the stage before already encoded it (its
    /// output): the same data is not encoded twice.
    pub encoded: Option<Struct>,
    pub output: O,
    pub started: Instant,
}

impl<O> Ran<O> {
    pub fn new(input: StageInput, output: O, started: Instant) -> Self {
        Self {
            input,
            encoded: None,
            output,
            started,
        }
    }

    fn input_struct(&mut self) -> Struct {
        self.encoded
            .take()
            .unwrap_or_else(|| self.input.to_struct())
    }
}

/// `{key: value}` with one field taken from an encoded record part (no re-encoding).
pub(super) fn part(from: &Struct, key: &str) -> Option<(String, pbjson_types::Value)> {
    from.fields.get(key).map(|v| (key.to_owned(), v.clone()))
}

fn encode<O: Serialize>(output: &O) -> Struct {
    to_struct(output)
}

pub(super) fn route_plan(snapshot: &Snapshot, ran: &mut Ran<RoutePlanOutput>) -> StageRecord {
    let input = ran.input_struct();
    let mut diagnostics = Diagnostics::default();
    let mut status = StageStatus::Ok;
    let mut applied = snapshot.plan_assets();
    match &ran.output {
        RoutePlanOutput::Orch { plan, .. } if !plan.missing_slots.is_empty() => {
            status = StageStatus::Warning;
            diagnostics
                .warnings
                .push(format!("missing slots: {}", plan.missing_slots.join(", ")));
        }
        RoutePlanOutput::Direct { .. } => {
            applied.extend(snapshot.direct_prompt.iter().map(|p| p.reference.clone()));
        }
        _ => {}
    }
    record(
        Stage::RoutePlan,
        status,
        input,
        encode(&ran.output),
        diagnostics,
        Vec::new(),
        ran.started,
        applied,
    )
}

/// ROUTE+PLAN's record says which planner planned and why the LLM's plan was not used.
pub(super) fn planner_notes(record: &mut StageRecord, planning: &super::llm::Planning) {
    let notes = record.diagnostics.get_or_insert_with(Default::default);
    if planning.planner == "llm" {
        notes.warnings.push("planned by the LLM planner".into());
    } else if !planning.fallback_reason.is_empty() {
        notes.warnings.push(format!(
            "the LLM planner was due but not used ({}): the deterministic plan stands",
            planning.fallback_reason
        ));
    }
    super::llm::add_prompts(&mut record.applied_assets, &planning.calls);
}

pub(super) fn validate(snapshot: &Snapshot, ran: &mut Ran<ValidateOutput>) -> StageRecord {
    let input = ran.input_struct();
    let output = &ran.output;
    let status = if output.blocked() {
        StageStatus::Error
    } else {
        StageStatus::Ok
    };
    let mut diagnostics = Diagnostics {
        errors: output
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.rule, v.message))
            .collect(),
        ..Default::default()
    };
    diagnostics
        .counts
        .insert("tasks".into(), output.tasks.len() as i64);
    let mut applied: Vec<AssetRef> = snapshot
        .policy
        .iter()
        .map(|p| p.reference.clone())
        .collect();
    applied.push(snapshot.catalog.reference.clone());
    record(
        Stage::Validate,
        status,
        input,
        encode(output),
        diagnostics,
        Vec::new(),
        ran.started,
        applied,
    )
}

/// The status EXECUTE ends with: an error only when nothing came back.
pub(super) fn execute_status(output: &ExecuteOutput) -> StageStatus {
    if output.failures.is_empty() {
        StageStatus::Ok
    } else if output.results.is_empty() {
        StageStatus::Error
    } else {
        StageStatus::Warning
    }
}

pub(super) fn execute(snapshot: &Snapshot, ran: &mut Ran<ExecuteOutput>) -> StageRecord {
    let input = ran.input_struct();
    let tasks: &[Task] = match &ran.input {
        StageInput::Execute(i) => &i.tasks,
        _ => &[],
    };
    let output = &ran.output;
    let mut diagnostics = Diagnostics {
        errors: output
            .failures
            .iter()
            .map(|f| format!("{}: {}", f.tool, f.error))
            .collect(),
        ..Default::default()
    };
    diagnostics
        .counts
        .insert("calls".into(), output.calls.len() as i64);
    diagnostics.counts.insert(
        "rows".into(),
        output.results.iter().map(|r| r.rows.len() as i64).sum(),
    );
    diagnostics.empty_flags = output
        .results
        .iter()
        .filter(|r| result_is_empty(r))
        .map(|r| r.tool.clone())
        .collect();
    let mut applied: Vec<AssetRef> = tasks
        .iter()
        .filter_map(|task| snapshot.tools.get(&task.tool))
        .map(|tool| tool.reference.clone())
        .collect();
    applied.dedup();
    applied.extend(snapshot.source.iter().map(|s| s.applied.reference.clone()));
    applied.push(snapshot.catalog.reference.clone());
    record(
        Stage::Execute,
        execute_status(output),
        input,
        encode(output),
        diagnostics,
        references(&output.results),
        ran.started,
        applied,
    )
}

/// The evidence of every result, in result order.
pub(super) fn references(results: &[ToolResult]) -> Vec<Reference> {
    results
        .iter()
        .flat_map(|r| r.references.iter().cloned())
        .collect()
}

fn plugin_status(fallback_reason: Option<&str>) -> (StageStatus, Diagnostics) {
    let mut diagnostics = Diagnostics::default();
    match fallback_reason.filter(|r| !r.is_empty()) {
        Some(reason) => {
            diagnostics.warnings.push(reason.to_owned());
            (StageStatus::Warning, diagnostics)
        }
        None => (StageStatus::Ok, diagnostics),
    }
}

pub(super) fn compose(
    snapshot: &Snapshot,
    ran: &mut Ran<Result<ComposeOutput, String>>,
    references: Vec<Reference>,
) -> StageRecord {
    let input = ran.input_struct();
    let applied = snapshot
        .mapping
        .iter()
        .map(|m| m.reference.clone())
        .collect();
    match &ran.output {
        Ok(output) => {
            let (status, mut diagnostics) =
                plugin_status(output.plugin.as_ref().map(|p| p.fallback_reason.as_str()));
            diagnostics
                .counts
                .insert("blocks".into(), output.blocks.len() as i64);
            record(
                Stage::Compose,
                status,
                input,
                encode(output),
                diagnostics,
                references,
                ran.started,
                applied,
            )
        }
        Err(error) => record(
            Stage::Compose,
            StageStatus::Error,
            input,
            Struct::default(),
            Diagnostics {
                errors: vec![error.clone()],
                ..Default::default()
            },
            Vec::new(),
            ran.started,
            applied,
        ),
    }
}

pub(super) fn present(
    snapshot: &Snapshot,
    ran: &mut Ran<Result<PresentOutput, String>>,
) -> StageRecord {
    let input = ran.input_struct();
    // PRESENT also words the answer line, from the answer sentences.
    let applied = snapshot
        .screen
        .iter()
        .map(|s| s.reference.clone())
        .chain(snapshot.answer_prompt.iter().map(|p| p.reference.clone()))
        .collect();
    match &ran.output {
        Ok(output) => {
            let (status, diagnostics) =
                plugin_status(output.plugin.as_ref().map(|p| p.fallback_reason.as_str()));
            record(
                Stage::Present,
                status,
                input,
                encode(output),
                diagnostics,
                Vec::new(),
                ran.started,
                applied,
            )
        }
        // Without a screen the blocks are still the answer: a warning, not an error.
        Err(error) => record(
            Stage::Present,
            StageStatus::Warning,
            input,
            Struct::default(),
            Diagnostics {
                warnings: vec![format!(
                    "no screen layout: {error}; blocks are returned as composed"
                )],
                ..Default::default()
            },
            Vec::new(),
            ran.started,
            applied,
        ),
    }
}
