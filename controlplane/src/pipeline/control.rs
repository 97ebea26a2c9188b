//! The control loop: when a stage reports one of the seven triggers, decide under the Policy's
//! replan limits whether to replan (and with which patch), skip, or give up. Every decision is
//! recorded as a replan event with the plan before and after.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ops_proto::v1::{Plan, ReplanEvent, ReplanPolicy, ReplanTrigger, Severity, Stage, TimeWindow};
use time::OffsetDateTime;

use crate::model::plan_kind::{self, Intent, Mode};
use crate::model::snapshot::Snapshot;

use crate::model::stages::ExecuteOutput;
use ops_proto::convert::{timestamp, to_struct};

/// Last replan per (tenant, trigger), for the cooling period across requests.
#[derive(Clone, Default, Debug)]
pub struct Cooling {
    last: Arc<Mutex<HashMap<(String, i32), Instant>>>,
}

impl Cooling {
    fn cooling(&self, tenant: &str, trigger: ReplanTrigger, period: Duration) -> bool {
        if period.is_zero() {
            return false;
        }
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.get(&(tenant.to_owned(), trigger as i32))
            .is_some_and(|t| t.elapsed() < period)
    }

    fn mark(&self, tenant: &str, trigger: ReplanTrigger) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.insert((tenant.to_owned(), trigger as i32), Instant::now());
    }
}

/// One request's replan budget.
pub struct Loop<'a> {
    policy: ReplanPolicy,
    tenant: &'a str,
    cooling: &'a Cooling,
    pub events: Vec<ReplanEvent>,
    replans: u32,
    last_replan: Option<Instant>,
}

/// What the loop decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Replan(Box<Plan>),
    GiveUp(String),
}

impl<'a> Loop<'a> {
    pub fn new(policy: Option<&ReplanPolicy>, tenant: &'a str, cooling: &'a Cooling) -> Self {
        Self {
            policy: policy.cloned().unwrap_or_default(),
            tenant,
            cooling,
            events: Vec::new(),
            replans: 0,
            last_replan: None,
        }
    }

    pub fn replans(&self) -> u32 {
        self.replans
    }

    /// Decides on `trigger`; `patch` proposes the plan to retry with (None: nothing to try).
    pub fn decide(
        &mut self,
        stage: Stage,
        trigger: ReplanTrigger,
        reason: &str,
        before: &Plan,
        patch: Option<Plan>,
    ) -> Decision {
        let critical = self.policy.critical_triggers.contains(&(trigger as i32));
        let allowed = critical || self.policy.allowed_triggers.contains(&(trigger as i32));
        let refusal = if !allowed {
            Some(format!(
                "the policy does not allow replanning on {}",
                trigger_name(trigger)
            ))
        } else if self.replans >= self.policy.max_replans {
            Some(format!("max_replans ({}) reached", self.policy.max_replans))
        } else if self.last_replan.is_some_and(|t| {
            t.elapsed() < Duration::from_millis(u64::from(self.policy.min_interval_ms))
        }) {
            Some(format!(
                "min_interval_ms ({}) since the last replan has not passed",
                self.policy.min_interval_ms
            ))
        } else if !critical
            && self.cooling.cooling(
                self.tenant,
                trigger,
                Duration::from_millis(u64::from(self.policy.cooling_period_ms)),
            )
        {
            Some(format!(
                "{} is cooling down ({} ms)",
                trigger_name(trigger),
                self.policy.cooling_period_ms
            ))
        } else if patch.is_none() {
            Some("no patch can address it".to_owned())
        } else {
            None
        };
        let severity = if critical {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let mut event = ReplanEvent {
            stage: stage as i32,
            trigger: trigger as i32,
            severity: severity as i32,
            reason: reason.to_owned(),
            patch_before: Some(to_struct(before)),
            patch_after: None,
            decision: String::new(),
            at: Some(timestamp(OffsetDateTime::now_utc())),
        };
        match (refusal, patch) {
            (None, Some(after)) => {
                event.patch_after = Some(to_struct(&after));
                event.decision = "replan".into();
                self.events.push(event);
                self.replans += 1;
                self.last_replan = Some(Instant::now());
                self.cooling.mark(self.tenant, trigger);
                Decision::Replan(Box::new(after))
            }
            (refusal, _) => {
                let why = refusal.unwrap_or_default();
                event.decision = "give_up".into();
                event.reason = format!("{reason}; {why}");
                self.events.push(event);
                Decision::GiveUp(why)
            }
        }
    }
}

pub fn trigger_name(trigger: ReplanTrigger) -> String {
    crate::trace::enum_slug(trigger.as_str_name(), "REPLAN_TRIGGER_")
}

fn widen(window: &TimeWindow, factor: i64) -> Option<TimeWindow> {
    let from = window.from.as_ref()?;
    let to = window.to.as_ref()?;
    let span = to.seconds - from.seconds;
    if span <= 0 {
        return None;
    }
    Some(TimeWindow {
        from: Some(pbjson_types::Timestamp {
            seconds: to.seconds - span * factor,
            nanos: 0,
        }),
        to: Some(*to),
        defaulted: window.defaulted,
        label: format!(
            "{}, widened to {}",
            window
                .label
                .split(", widened to ")
                .next()
                .unwrap_or_default(),
            crate::route_plan::planner::span_label(span * factor / 3600)
        ),
    })
}

/// empty_result: a defaulted window twice as wide (history, metric); otherwise nothing to
/// try. A window the question gave is kept: "none in the last 7 days" is its answer.
pub fn widen_window(plan: &Plan) -> Option<Plan> {
    let mut after = plan.clone();
    if let Some(h) = after.history.as_mut()
        && let Some(w) = h.window.as_ref().filter(|w| w.defaulted)
    {
        h.window = Some(widen(w, 2)?);
        return Some(after);
    }
    if let Some(m) = after.metric.as_mut()
        && let Some(w) = m.window.as_ref().filter(|w| w.defaulted)
    {
        m.window = Some(widen(w, 2)?);
        return Some(after);
    }
    None
}

/// low_evidence on a graph: one hop deeper, within the policy's depth budget.
pub fn deepen(plan: &Plan, max_depth: u32) -> Option<Plan> {
    let mut after = plan.clone();
    let g = after.graph.as_mut()?;
    let depth = g.depth.max(1) + 1;
    if max_depth > 0 && depth > max_depth {
        return None;
    }
    g.depth = depth;
    Some(after)
}

/// present_limit: also count the rows, so the answer states the exact total.
pub fn count_instead(plan: &Plan) -> Option<Plan> {
    if plan_kind::intent(plan) == Some(Intent::Aggregate)
        || plan_kind::mode(plan) != Some(Mode::Config)
    {
        return None;
    }
    let mut after = plan.clone();
    plan_kind::set_intent(&mut after, Intent::Aggregate);
    Some(after)
}

/// Letters and digits only, upper-case: "gt01", "GT_01" and "GT-01" compare equal.
fn squash(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// slot_missing: an unknown code that equals exactly one known code once separators and case
/// are ignored is that code.
pub fn resolve_missing_entity(snapshot: &Snapshot, plan: &Plan) -> Option<Plan> {
    let mut after = plan.clone();
    let mut changed = false;
    for slot in &plan.missing_slots {
        let token = slot.strip_prefix("entity:")?;
        let wanted = squash(token);
        let matches: Vec<&str> = snapshot
            .knowledge
            .entities
            .iter()
            .filter(|e| squash(&e.code) == wanted)
            .map(|e| e.code.as_str())
            .collect();
        let [code] = matches.as_slice() else {
            return None;
        };
        if !after.ci_codes.iter().any(|c| c == code) {
            after.ci_codes.push((*code).to_owned());
        }
        after.missing_slots.retain(|s| s != slot);
        changed = true;
    }
    changed.then_some(after)
}

/// low_evidence: the best document matched only one term in its body.
pub fn low_evidence(snapshot: &Snapshot, executed: &ExecuteOutput) -> Option<String> {
    for r in executed.results.iter().filter(|r| r.kind == "document") {
        let score_index = r.columns.iter().position(|c| c == "score")?;
        let best = r
            .rows
            .first()
            .and_then(|row| row.values.get(score_index))
            .and_then(|v| match v.kind {
                Some(pbjson_types::value::Kind::NumberValue(n)) => Some(n),
                _ => None,
            })?;
        let content_weight = snapshot
            .tools
            .get(&r.tool)
            .and_then(|t| t.spec.config.as_ref())
            .and_then(|c| c.fields.get("content_weight"))
            .and_then(|v| match v.kind {
                Some(pbjson_types::value::Kind::NumberValue(n)) => Some(n),
                _ => None,
            })
            .unwrap_or(1.0);
        if best <= content_weight {
            return Some(format!(
                "the best document scored {best}: one search term in its body only"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max: u32, allowed: &[ReplanTrigger], critical: &[ReplanTrigger]) -> ReplanPolicy {
        ReplanPolicy {
            max_replans: max,
            allowed_triggers: allowed.iter().map(|t| *t as i32).collect(),
            min_interval_ms: 0,
            cooling_period_ms: 0,
            critical_triggers: critical.iter().map(|t| *t as i32).collect(),
        }
    }

    #[test]
    fn replans_stop_at_max_replans_and_say_why() {
        let cooling = Cooling::default();
        let p = policy(1, &[ReplanTrigger::EmptyResult], &[]);
        let mut l = Loop::new(Some(&p), "acme", &cooling);
        let plan = Plan::default();
        let first = l.decide(
            Stage::Execute,
            ReplanTrigger::EmptyResult,
            "no rows",
            &plan,
            Some(plan.clone()),
        );
        assert!(matches!(first, Decision::Replan(_)));
        let second = l.decide(
            Stage::Execute,
            ReplanTrigger::EmptyResult,
            "no rows",
            &plan,
            Some(plan.clone()),
        );
        assert_eq!(
            second,
            Decision::GiveUp("max_replans (1) reached".to_owned())
        );
        assert_eq!(l.replans(), 1);
        assert_eq!(
            l.events
                .iter()
                .map(|e| e.decision.as_str())
                .collect::<Vec<_>>(),
            ["replan", "give_up"]
        );
    }

    #[test]
    fn a_trigger_the_policy_does_not_allow_gives_up_unless_critical() {
        let cooling = Cooling::default();
        let p = policy(2, &[], &[ReplanTrigger::ToolErrorFatal]);
        let mut l = Loop::new(Some(&p), "acme", &cooling);
        let plan = Plan::default();
        let d = l.decide(
            Stage::Execute,
            ReplanTrigger::EmptyResult,
            "no rows",
            &plan,
            Some(plan.clone()),
        );
        assert!(matches!(d, Decision::GiveUp(why) if why.contains("does not allow")));
        let d = l.decide(
            Stage::Execute,
            ReplanTrigger::ToolErrorFatal,
            "boom",
            &plan,
            Some(plan.clone()),
        );
        assert!(matches!(d, Decision::Replan(_)));
        assert_eq!(l.events[1].severity, Severity::Critical as i32);
    }

    #[test]
    fn the_cooling_period_holds_across_requests_for_non_critical_triggers() {
        let cooling = Cooling::default();
        let mut p = policy(5, &[ReplanTrigger::EmptyResult], &[]);
        p.cooling_period_ms = 60_000;
        let plan = Plan::default();
        let mut first = Loop::new(Some(&p), "acme", &cooling);
        assert!(matches!(
            first.decide(
                Stage::Execute,
                ReplanTrigger::EmptyResult,
                "",
                &plan,
                Some(plan.clone())
            ),
            Decision::Replan(_)
        ));
        let mut second = Loop::new(Some(&p), "acme", &cooling);
        assert!(matches!(
            second.decide(Stage::Execute, ReplanTrigger::EmptyResult, "", &plan, Some(plan.clone())),
            Decision::GiveUp(why) if why.contains("cooling")
        ));
        // Another tenant is not affected.
        let mut other = Loop::new(Some(&p), "globex", &cooling);
        assert!(matches!(
            other.decide(
                Stage::Execute,
                ReplanTrigger::EmptyResult,
                "",
                &plan,
                Some(plan.clone())
            ),
            Decision::Replan(_)
        ));
    }

    #[test]
    fn widening_doubles_a_defaulted_window_back_from_its_end() {
        let plan = Plan {
            history: Some(ops_proto::v1::HistoryPlan {
                window: Some(TimeWindow {
                    from: Some(pbjson_types::Timestamp {
                        seconds: 86_400,
                        nanos: 0,
                    }),
                    to: Some(pbjson_types::Timestamp {
                        seconds: 172_800,
                        nanos: 0,
                    }),
                    label: "last 24 hours".into(),
                    defaulted: true,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let after = widen_window(&plan)
            .and_then(|p| p.history)
            .and_then(|h| h.window);
        assert_eq!(
            after.as_ref().and_then(|w| w.from).map(|f| f.seconds),
            Some(0)
        );
        let twice = after
            .and_then(|w| widen(&w, 2))
            .map(|w| w.label)
            .unwrap_or_default();
        assert_eq!(twice, "last 24 hours, widened to 4 days");

        let mut asked = plan;
        if let Some(w) = asked.history.as_mut().and_then(|h| h.window.as_mut()) {
            w.defaulted = false;
        }
        assert!(
            widen_window(&asked).is_none(),
            "a window the question gave is not widened"
        );
    }
}
