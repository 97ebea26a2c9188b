//! Screen actions: deterministic follow-ups that run against the trace they belong to, without
//! planning again. `load_more_rows` pages a list (the trace's validated plan with a row window),
//! `drill_down` asks the same plan about one selected CI, `refresh` re-runs the plan at a new
//! `as_of` (its windows moved with it). Each is a new trace whose parent is the action's trace.

use std::time::Instant;

use ops_proto::convert::{time_of, timestamp, to_struct};
use ops_proto::v1::{
    Plan, RowWindow, StageStatus, TimeWindow, TraceStatus, UiActionRequest, UiActionResponse,
};
use pbjson_types::value::Kind;
use time::OffsetDateTime;

use super::run::{Outcome, Start};
use super::{Pipeline, PipelineError, Request, Settings, invalid};
use crate::context::CallerContext;
use crate::model::plan_kind::{self, Intent, Mode};
use crate::model::stages::ValidateInput;
use crate::trace::read;

/// The actions every screen may offer.
pub const ACTIONS: &str = "load_more_rows, drill_down, refresh";
/// Rows a page holds when the request names no limit, and at most.
const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 500;

fn number(inputs: &pbjson_types::Struct, key: &str) -> Result<Option<u32>, PipelineError> {
    match inputs.fields.get(key).and_then(|v| v.kind.as_ref()) {
        None | Some(Kind::NullValue(_)) => Ok(None),
        Some(Kind::NumberValue(n))
            if *n >= 0.0 && n.fract() == 0.0 && *n <= f64::from(u32::MAX) =>
        {
            Ok(Some(*n as u32))
        }
        Some(Kind::StringValue(s)) if s.parse::<u32>().is_ok() => Ok(s.parse().ok()),
        _ => Err(invalid(
            &format!("inputs.{key}"),
            "expected a whole number of rows (0 or more)",
        )),
    }
}

fn text<'a>(inputs: &'a pbjson_types::Struct, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| match inputs.fields.get(*k)?.kind.as_ref()? {
            Kind::StringValue(s) if !s.trim().is_empty() => Some(s.trim()),
            _ => None,
        })
}

/// Every time window of the plan moved by `shift`.
fn shifted(mut plan: Plan, shift: time::Duration) -> Plan {
    let by = |w: &mut TimeWindow| {
        for t in [&mut w.from, &mut w.to].into_iter().flatten() {
            if let Some(moved) = time_of(t).map(|d| d + shift) {
                *t = timestamp(moved);
            }
        }
    };
    if let Some(w) = plan.metric.as_mut().and_then(|m| m.window.as_mut()) {
        by(w);
    }
    if let Some(w) = plan.history.as_mut().and_then(|h| h.window.as_mut()) {
        by(w);
    }
    plan
}

impl Pipeline {
    /// Runs a screen action against its trace.
    pub async fn ui_action(
        &self,
        ctx: &CallerContext,
        request: UiActionRequest,
    ) -> Result<UiActionResponse, PipelineError> {
        let started = Instant::now();
        let started_at = OffsetDateTime::now_utc();
        if request.trace_id.trim().is_empty() {
            return Err(invalid(
                "trace_id",
                "name the trace whose screen offered the action",
            ));
        }
        let trace = read::get(self.registry.db(), &ctx.tenant, &request.trace_id).await?;
        let mut plan = trace
            .plan_validated
            .clone()
            .or_else(|| trace.plan_raw.clone())
            .ok_or_else(|| {
                PipelineError::FailedPrecondition(format!(
                    "trace {} was answered without a plan (a direct answer or a refusal): it has no actions",
                    trace.trace_id
                ))
            })?;
        let inputs = request.inputs.clone().unwrap_or_default();
        let trace_as_of = trace.as_of.as_ref().and_then(time_of).unwrap_or(started_at);
        let mut as_of = trace_as_of;
        let mut page = None;
        let mut state = serde_json::Map::new();
        match request.action_id.as_str() {
            // `load_more` is how screens before this action named it.
            "load_more_rows" | "load_more" => {
                let offset = number(&inputs, "offset")?.ok_or_else(|| {
                    invalid(
                        "inputs.offset",
                        "give the offset of the first row to load (the rows already shown)",
                    )
                })?;
                if !matches!(plan_kind::mode(&plan), Some(Mode::Config | Mode::History)) {
                    return Err(PipelineError::FailedPrecondition(format!(
                        "trace {} answered a {} question, which has no list to page",
                        trace.trace_id, plan.mode
                    )));
                }
                let limit = number(&inputs, "limit")?.unwrap_or(DEFAULT_PAGE);
                if limit == 0 || limit > MAX_PAGE {
                    return Err(invalid(
                        "inputs.limit",
                        format!("a page holds 1 to {MAX_PAGE} rows, not {limit}"),
                    ));
                }
                plan.rows = Some(RowWindow { offset, limit });
                page = Some((offset, limit));
            }
            "drill_down" => {
                let code = text(&inputs, &["ci_code", "code", "selected"]).ok_or_else(|| {
                    invalid("inputs.ci_code", "give the code of the CI to drill into")
                })?;
                plan.ci_codes = vec![code.to_owned()];
                plan.subject = None;
                plan.filters.clear();
                plan.rows = None;
                plan.missing_slots.retain(|s| !s.starts_with("entity"));
                if plan_kind::mode(&plan) == Some(Mode::Config) {
                    plan_kind::set_intent(&mut plan, Intent::Lookup);
                }
                state.insert("selected".into(), code.into());
            }
            "refresh" => {
                as_of = match text(&inputs, &["as_of"]) {
                    Some(t) => {
                        OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                            .map_err(|e| {
                                invalid("inputs.as_of", format!("expected RFC 3339: {e}"))
                            })?
                    }
                    None => started_at,
                };
                plan = shifted(plan, as_of - trace_as_of);
                state.insert(
                    "as_of".into(),
                    ops_proto::convert::rfc3339(&timestamp(as_of)).into(),
                );
            }
            other => {
                return Err(invalid(
                    "action_id",
                    format!("{other:?} is not an action: expected one of {ACTIONS}"),
                ));
            }
        }
        let snapshot = self.snapshot(&ctx.tenant, &[]).await?;
        self.rate_limit(ctx, &snapshot).await?;
        let prepared = Request {
            question: trace.question.clone(),
            mode: trace.mode.clone(),
            as_of,
            start: Start::Validate(ValidateInput { plan }),
            parent_trace_id: trace.trace_id.clone(),
            frozen: Vec::new(),
            replayed_from: ops_proto::v1::Stage::Unspecified,
            outcome: Outcome {
                route: ops_proto::v1::Route::Orch,
                route_reason: format!("screen action {}", request.action_id),
                plan_raw: trace.plan_raw.clone(),
                ..Default::default()
            },
        };
        let answered = self
            .run(
                ctx,
                prepared,
                &snapshot,
                Settings {
                    test_mode: trace.test_mode,
                    replans: false,
                    started,
                    started_at,
                    audited_as: Some(crate::audit::UI_ACTION),
                },
                None,
            )
            .await?;
        if let Some((offset, limit)) = page {
            let returned = u32::try_from(answered.first_result_rows).unwrap_or(u32::MAX);
            state.insert("table_offset".into(), (offset + returned).into());
            state.insert("has_more".into(), (returned == limit).into());
        }
        let status = match answered.status {
            TraceStatus::Success => StageStatus::Ok,
            TraceStatus::Partial => StageStatus::Warning,
            _ => StageStatus::Error,
        };
        Ok(UiActionResponse {
            trace_id: answered.response.trace_id,
            status: status as i32,
            blocks: answered.response.blocks,
            references: answered.references,
            state_patch: Some(to_struct(&serde_json::Value::Object(state))),
        })
    }
}
