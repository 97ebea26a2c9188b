//! `Inspector.Rca`: root-cause analysis of one trace, or of a baseline/candidate pair through
//! the stage-aligned diff. The rules live in `trace::rca`; this reads the traces and the
//! tenant's recent stage timings, and records the analysis as a trace of its own.

use std::time::Instant;

use ops_proto::convert::{timestamp, to_struct};
use ops_proto::v1::{RcaRequest, RcaResponse, Trace, TraceStatus, rca_request};
use time::OffsetDateTime;

use super::{Pipeline, PipelineError, invalid, named, retention};
use crate::context::CallerContext;
use crate::trace::{diff, rca, read};

/// Hypotheses returned when the request does not say (`options.max_hypotheses` = 0).
const DEFAULT_MAX_HYPOTHESES: usize = 5;

impl Pipeline {
    pub async fn rca(
        &self,
        ctx: &CallerContext,
        request: RcaRequest,
    ) -> Result<RcaResponse, PipelineError> {
        let started = Instant::now();
        let started_at = OffsetDateTime::now_utc();
        // A tenant without published assets can still have its traces analysed; with them,
        // the analysis counts against the Policy's rate limit like any other run.
        let snapshot = self.snapshot(&ctx.tenant, &[]).await.ok();
        if let Some(snapshot) = &snapshot {
            self.rate_limit(ctx, snapshot).await?;
        }
        let db = self.registry.db();
        let get = |id: String, field: &'static str| async move {
            read::get(db, &ctx.tenant, &id)
                .await
                .map_err(|e| named(e, field))
        };
        let context = rca::Context {
            recent_p95_ms: read::recent_stage_p95(db, &ctx.tenant).await?,
        };
        let (target, parent, mut hypotheses) = match request.target {
            Some(rca_request::Target::TraceId(id)) => {
                let trace = get(id.clone(), "trace_id").await?;
                (format!("trace {id}"), id, rca::single(&trace, &context))
            }
            Some(rca_request::Target::Diff(pair)) => {
                let baseline =
                    get(pair.baseline_trace_id.clone(), "diff.baseline_trace_id").await?;
                let candidate =
                    get(pair.candidate_trace_id.clone(), "diff.candidate_trace_id").await?;
                let diffed = diff::traces(&baseline, &candidate);
                (
                    format!(
                        "baseline {} → candidate {}",
                        pair.baseline_trace_id, pair.candidate_trace_id
                    ),
                    pair.candidate_trace_id,
                    rca::diff(&baseline, &candidate, &diffed, &context),
                )
            }
            None => {
                return Err(invalid(
                    "target",
                    "give `trace_id`, or `diff` with baseline_trace_id and candidate_trace_id",
                ));
            }
        };
        let max = request
            .options
            .as_ref()
            .map_or(0, |o| o.max_hypotheses as usize);
        hypotheses.truncate(if max == 0 {
            DEFAULT_MAX_HYPOTHESES
        } else {
            max
        });
        let blocks = rca::blocks(&target, &hypotheses);
        let analysis_ms = started.elapsed().as_secs_f64() * 1000.0;
        let answer = match hypotheses.first() {
            Some(top) => format!("RCA of {target}: {} ({})", top.title, top.confidence),
            None => format!("RCA of {target}: no hypothesis"),
        };
        let rca_trace_id = uuid::Uuid::new_v4().to_string();
        let recorded = serde_json::json!({
            "blocks": blocks.iter().map(to_json).collect::<Vec<_>>(),
            "hypotheses": hypotheses.iter().map(to_json).collect::<Vec<_>>(),
        });
        let trace = Trace {
            trace_id: rca_trace_id.clone(),
            parent_trace_id: parent,
            tenant: ctx.tenant.clone(),
            principal: ctx.principal.clone(),
            question: format!("RCA of {target}"),
            mode: "rca".into(),
            status: TraceStatus::Success as i32,
            started_at: Some(timestamp(started_at)),
            duration_ms: analysis_ms,
            answer,
            answer_blocks: Some(to_struct(&recorded)),
            ..Default::default()
        };
        let retention = snapshot.as_deref().map(retention).unwrap_or_default();
        self.traces
            .commit(trace, retention, None)
            .await
            .map_err(|e| {
                PipelineError::Unavailable(format!(
                    "the analysis's trace was not saved, so its result is withheld: {e}"
                ))
            })?;
        Ok(RcaResponse {
            rca_trace_id,
            hypotheses,
            blocks,
            analysis_ms,
            violations: Vec::new(),
        })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}
