//! ROUTE+PLAN: the resolver, the planner's vocabulary and the deterministic planner; [`run`]
//! is the stage's contract.

pub mod knowledge;
pub mod llm_plan;
pub mod plan_kind;
pub mod planner;
pub mod resolver;
pub mod text;
pub mod vocabulary;

use ops_proto::convert::time_of;
use ops_proto::v1::Plan;
use pbjson_types::Timestamp;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use planner::{Knowledge, Routed};

/// ROUTE+PLAN's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutePlanInput {
    pub question: String,
    /// "all", or the mode the caller forced ("config", "metric", …).
    pub mode: String,
    /// Reference time of every relative window.
    pub as_of: Timestamp,
    /// A plan given by the caller (Rerun) instead of one planned from the question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun: Option<Plan>,
}

/// ROUTE+PLAN's output: where the question goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "route", rename_all = "lowercase")]
pub enum RoutePlanOutput {
    /// Answered from the direct-answer Prompt, without data.
    Direct { intent: String, reason: String },
    /// Refused by a Policy reject rule.
    Reject { rule: String, reason: String },
    /// Runs the pipeline with this plan.
    Orch { reason: String, plan: Plan },
}

/// The ROUTE+PLAN stage: question, mode and `as_of` → route and plan. A rerun's plan is
/// taken as given.
pub fn run(knowledge: &Knowledge, input: &RoutePlanInput) -> RoutePlanOutput {
    judge(knowledge, input).output
}

/// The deterministic planner's route and plan, with how sure it is of them.
#[derive(Debug, Clone)]
pub struct Judged {
    pub output: RoutePlanOutput,
    /// Why the plan is a guess (see `planner::Planned::doubt`); None when it is not.
    pub doubt: Option<String>,
    /// The question with the resolver's rewrites (aliases to codes), when it has one.
    pub resolved: Option<String>,
}

/// [`run`], keeping the planner's doubt and the resolved question for an LLM planner.
pub fn judge(knowledge: &Knowledge, input: &RoutePlanInput) -> Judged {
    if let Some(plan) = &input.rerun {
        return Judged {
            output: RoutePlanOutput::Orch {
                reason: "rerun of a previous plan".into(),
                plan: plan.clone(),
            },
            doubt: None,
            resolved: None,
        };
    }
    let as_of = time_of(&input.as_of).unwrap_or_else(OffsetDateTime::now_utc);
    let forced = (input.mode != "all" && !input.mode.is_empty()).then_some(input.mode.as_str());
    let planned = planner::plan(knowledge, &input.question, as_of, forced);
    let output = match planned.routed {
        Routed::Direct { intent } => RoutePlanOutput::Direct {
            intent,
            reason: planned.reason,
        },
        Routed::Reject { rule, reason } => RoutePlanOutput::Reject { rule, reason },
        Routed::Plan(plan) => RoutePlanOutput::Orch {
            reason: planned.reason,
            plan,
        },
    };
    Judged {
        output,
        doubt: planned.doubt,
        resolved: planned.resolution.map(|r| r.output),
    }
}
