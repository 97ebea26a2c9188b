//! Reruns: a previous plan with a JSON merge patch and the CIs the user selected.

use ops_proto::v1::Plan;

/// The plan of a rerun: the base plan with the JSON merge patch and the selected CIs applied.
pub(super) fn rerun_plan(rerun: &ops_proto::v1::Rerun) -> Option<Plan> {
    let base = rerun.base_plan.as_ref()?;
    let mut json = serde_json::to_value(base).ok()?;
    if let Some(patch) = &rerun.patch {
        merge(&mut json, &serde_json::to_value(patch).ok()?);
    }
    let mut plan: Plan = serde_json::from_value(json).ok()?;
    if !rerun.selected_ci_code.is_empty() {
        plan.ci_codes = vec![rerun.selected_ci_code.clone()];
        // The selected CI replaces a two-step question's first step.
        plan.subject = None;
        plan.missing_slots.retain(|s| !s.starts_with("entity"));
    }
    if !rerun.selected_secondary_ci_code.is_empty()
        && let Some(g) = plan.graph.as_mut()
    {
        g.target_ci_code = rerun.selected_secondary_ci_code.clone();
    }
    Some(plan)
}

/// RFC 7396 JSON merge patch.
fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use pbjson_types::Struct;

    use super::*;

    #[test]
    fn a_rerun_applies_the_merge_patch_and_the_selected_ci() -> Result<(), serde_json::Error> {
        let base = Plan {
            mode: "metric".into(),
            ci_codes: vec!["GT-01".into()],
            missing_slots: vec!["entity:GT-9".into()],
            ..Default::default()
        };
        let patch: Struct = serde_json::from_value(serde_json::json!({"mode": "history"}))?;
        let plan = rerun_plan(&ops_proto::v1::Rerun {
            base_plan: Some(base),
            patch: Some(patch),
            selected_ci_code: "GT-02".into(),
            ..Default::default()
        });
        let plan = plan.unwrap_or_default();
        assert_eq!(plan.mode, "history");
        assert_eq!(plan.ci_codes, ["GT-02"]);
        assert!(plan.missing_slots.is_empty());
        Ok(())
    }
}
