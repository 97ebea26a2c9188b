//! The plan's kinds as the stages read them: the typed mode, intent, view and aggregation of a
//! proto [`Plan`], converted here (the proto edge) so stages match on enums, not strings.
//!
//! The enums are defined by the planner, which writes them (`route_plan` is a leaf); a plan
//! given by a caller (a rerun, a replay, a StageTest input) may carry any string, so every
//! reader returns `None` for a string that names no variant and the stage keeps its fallback.

use ops_proto::v1::{MetricPlan, Plan};

pub use crate::route_plan::plan_kind::{Aggregation, Intent, Mode, UnknownKind, View};

/// The plan's mode, if it is one of [`Mode`].
pub fn mode(plan: &Plan) -> Option<Mode> {
    plan.mode.parse().ok()
}

/// The plan's intent, if it is one of [`Intent`].
pub fn intent(plan: &Plan) -> Option<Intent> {
    plan.intent.parse().ok()
}

/// The plan's view, if it is one of [`View`].
pub fn view(plan: &Plan) -> Option<View> {
    plan.view.parse().ok()
}

/// The metric's aggregation, if it is one of [`Aggregation`] (the vocabulary may name others).
pub fn aggregation(metric: &MetricPlan) -> Option<Aggregation> {
    metric.aggregation.parse().ok()
}

/// Sets the plan's intent (a stage refining a plan it was given).
pub fn set_intent(plan: &mut Plan, intent: Intent) {
    plan.intent = intent.as_str().to_owned();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_reads_back_the_kinds_written_into_it() {
        let mut plan = Plan {
            mode: Mode::Graph.to_string(),
            view: View::Impact.to_string(),
            metric: Some(MetricPlan {
                aggregation: Aggregation::Latest.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        };
        set_intent(&mut plan, Intent::Expand);
        assert_eq!(plan.intent, "EXPAND");
        assert_eq!(mode(&plan), Some(Mode::Graph));
        assert_eq!(intent(&plan), Some(Intent::Expand));
        assert_eq!(view(&plan), Some(View::Impact));
        assert_eq!(
            plan.metric.as_ref().and_then(aggregation),
            Some(Aggregation::Latest)
        );
    }

    #[test]
    fn a_string_outside_the_kinds_reads_as_none() {
        let plan = Plan {
            mode: "weather".into(),
            intent: String::new(),
            view: "impact".into(),
            metric: Some(MetricPlan {
                aggregation: "median".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(mode(&plan), None);
        assert_eq!(intent(&plan), None);
        assert_eq!(view(&plan), None);
        assert_eq!(plan.metric.as_ref().and_then(aggregation), None);
    }
}
