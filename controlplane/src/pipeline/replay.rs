//! Replay of a recorded run from one stage. The stages before `from_stage` are copied frozen
//! from the trace — EXECUTE's tool results included, so replaying COMPOSE or PRESENT touches no
//! data source — and the run continues from the recorded input of `from_stage` (its last
//! record: after replans, the one the answer came from), at the trace's own `as_of`.

use ops_proto::convert::time_of;
use ops_proto::v1::{Replay, Route, Stage, StageRecord, Trace, TraceStatus};

use super::run::{Outcome, Start};
use super::{PipelineError, Request};
use crate::model::stages::{self, StageInput, ValidateInput};
use crate::storage::Db;
use crate::trace::read;

fn precondition(message: String) -> PipelineError {
    PipelineError::FailedPrecondition(message)
}

/// The run a replay starts: its frozen stages, its start and what the answer keeps of the
/// parent.
pub(super) async fn prepare(
    db: &Db,
    tenant: &str,
    replay: &Replay,
) -> Result<Request, PipelineError> {
    let from = Stage::try_from(replay.from_stage)
        .ok()
        .filter(|s| stages::position(*s).is_some())
        .ok_or_else(|| PipelineError::InvalidArgument {
            field: "replay.from_stage".into(),
            message:
                "name the stage to replay from: ROUTE_PLAN, VALIDATE, EXECUTE, COMPOSE or PRESENT"
                    .into(),
        })?;
    if replay.trace_id.is_empty() {
        return Err(PipelineError::InvalidArgument {
            field: "replay.trace_id".into(),
            message: "name the trace to replay (Inspector.ListTraces lists them)".into(),
        });
    }
    let base = read::get(db, tenant, &replay.trace_id).await?;
    let (index, record) = stages::last_record(&base.stages, from).ok_or_else(|| {
        precondition(format!(
            "trace {} never ran {}: its route was {} and it ran {}",
            base.trace_id,
            from.as_str_name(),
            Route::try_from(base.route)
                .unwrap_or_default()
                .as_str_name(),
            ran_stages(&base.stages)
        ))
    })?;
    let input = StageInput::decode(from, record.input.as_ref().unwrap_or(&Default::default()))
        .map_err(|e| {
            precondition(format!(
                "trace {}'s recorded {} input cannot be replayed ({e}); it may predate stage contracts",
                base.trace_id,
                from.as_str_name()
            ))
        })?;
    let from_position = stages::position(from).unwrap_or_default();
    let frozen: Vec<StageRecord> = base.stages[..index]
        .iter()
        .filter(|r| {
            Stage::try_from(r.stage)
                .ok()
                .and_then(stages::position)
                .is_some_and(|p| p < from_position)
        })
        .map(|r| StageRecord {
            frozen: true,
            ..r.clone()
        })
        .collect();
    let start = match input {
        StageInput::RoutePlan(i) => Start::RoutePlan(i),
        StageInput::Validate(i) => Start::Validate(i),
        StageInput::Execute(input) => {
            // Replans validate again: they need the plan these tasks were compiled from.
            let plan = stages::last_record(&base.stages[..index], Stage::Validate)
                .and_then(|(_, r)| r.input.as_ref())
                .and_then(|i| ops_proto::convert::from_struct::<ValidateInput>(i).ok())
                .map(|v| v.plan)
                .or_else(|| base.plan_validated.clone())
                .unwrap_or_default();
            Start::Execute { plan, input }
        }
        StageInput::Compose(i) => Start::Compose(i),
        StageInput::Present(i) => Start::Present(i),
    };
    let as_of = base
        .as_of
        .as_ref()
        .and_then(time_of)
        .ok_or_else(|| precondition(format!("trace {} has no as_of", base.trace_id)))?;
    Ok(Request {
        question: base.question.clone(),
        mode: base.mode.clone(),
        as_of,
        start,
        parent_trace_id: base.trace_id.clone(),
        frozen,
        replayed_from: from,
        outcome: inherited(&base, from),
    })
}

/// What the answer keeps from the stages the replay does not run again.
fn inherited(base: &Trace, from: Stage) -> Outcome {
    let mut outcome = Outcome {
        status: TraceStatus::Unspecified,
        ..Default::default()
    };
    if from == Stage::RoutePlan {
        return outcome;
    }
    outcome.route = Route::try_from(base.route).unwrap_or_default();
    outcome.route_reason = base.route_reason.clone();
    outcome.plan_raw = base.plan_raw.clone();
    if matches!(from, Stage::Compose | Stage::Present) {
        outcome.plan_validated = base.plan_validated.clone();
        outcome.violations = base.violations.clone();
        outcome.tool_calls = base.tool_calls.clone();
        outcome.references = base.references.clone();
        outcome.data_quality = base.data_quality.clone();
        outcome.fallback_used = base.data_quality.iter().any(|q| q == "fallback_source");
        for call in &base.tool_calls {
            if !outcome.used_tools.contains(&call.tool) {
                outcome.used_tools.push(call.tool.clone());
            }
        }
    }
    outcome
}

fn ran_stages(stages: &[StageRecord]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for r in stages {
        let name = Stage::try_from(r.stage)
            .unwrap_or_default()
            .as_str_name()
            .trim_start_matches("STAGE_");
        if names.last() != Some(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        "no stage".into()
    } else {
        names.join(" → ")
    }
}
