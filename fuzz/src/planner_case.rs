//! The planner's fuzz property, shared by the libFuzzer target (`fuzz_targets/planner.rs`) and
//! the bounded stable run in CI (`tests/fuzz_smoke.rs`): on any question against the demo
//! tenant's knowledge the planner never panics and plans only with the tools the tenant has.

use std::sync::LazyLock;

use ops_controlplane::route_plan::planner::{self, Knowledge, Routed};
use ops_proto::v1::Plan;

use crate::planner_support;

static KNOWLEDGE: LazyLock<Knowledge> = LazyLock::new(|| planner_support::knowledge("acme"));

/// The question as UTF-8 (lossily), planned as of a fixed time. Whether it became a plan
/// (whose tools were checked).
pub fn planner_case(data: &[u8]) -> bool {
    let question = String::from_utf8_lossy(data);
    let as_of = time::macros::datetime!(2026-01-15 12:00 UTC);
    let planned = planner::plan(&KNOWLEDGE, &question, as_of, None);
    if let Routed::Plan(plan) = &planned.routed {
        tools_are_the_tenants(&question, plan);
        return true;
    }
    false
}

fn tools_are_the_tenants(question: &str, plan: &Plan) {
    for tool in &plan.tools {
        assert!(
            KNOWLEDGE.tools.iter().any(|t| &t.name == tool),
            "{question:?} was planned with tool {tool:?}, which the tenant does not have"
        );
    }
    if let Some(subject) = &plan.subject {
        tools_are_the_tenants(question, subject);
    }
}
