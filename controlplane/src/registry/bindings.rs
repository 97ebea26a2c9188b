//! The stage binding map of the OPS guides: which asset types a stage may use.
//!
//! SchemaCatalog is also allowed at EXECUTE: the metric and graph executors read their
//! column mappings from it (guide 001, §4.2).

use ops_proto::v1::{AssetType, Stage};

use crate::model::refs::{stage_slug, type_slug};

pub fn allowed_stages(asset_type: AssetType) -> &'static [Stage] {
    match asset_type {
        AssetType::Unspecified => &[],
        AssetType::Prompt => &[Stage::RoutePlan, Stage::Compose],
        AssetType::Policy => &[Stage::RoutePlan, Stage::Validate, Stage::Control],
        AssetType::SchemaCatalog => &[Stage::RoutePlan, Stage::Execute],
        AssetType::Resolver => &[Stage::RoutePlan],
        AssetType::Query | AssetType::Source | AssetType::Tool => &[Stage::Execute],
        AssetType::Mapping => &[Stage::Compose],
        AssetType::Screen => &[Stage::Present],
    }
}

/// Checks requested bindings; an empty list binds every allowed stage.
pub fn check_bindings(asset_type: AssetType, requested: &[Stage]) -> Result<Vec<Stage>, String> {
    let allowed = allowed_stages(asset_type);
    if requested.is_empty() {
        return Ok(allowed.to_vec());
    }
    let mut out = Vec::with_capacity(requested.len());
    for stage in requested {
        if !allowed.contains(stage) {
            let names: Vec<&str> = allowed.iter().map(|s| stage_slug(*s)).collect();
            return Err(format!(
                "a {} asset cannot be bound to stage {}: allowed stages are {}",
                type_slug(asset_type),
                stage_slug(*stage),
                names.join(", ")
            ));
        }
        if !out.contains(stage) {
            out.push(*stage);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_bound_to_route_plan_is_rejected_naming_the_allowed_stages() {
        let err = check_bindings(AssetType::Query, &[Stage::RoutePlan])
            .err()
            .unwrap_or_default();
        assert!(err.contains("cannot be bound to stage route_plan"), "{err}");
        assert!(err.contains("allowed stages are execute"), "{err}");
    }

    #[test]
    fn empty_bindings_mean_every_allowed_stage() -> Result<(), String> {
        assert_eq!(
            check_bindings(AssetType::Policy, &[])?,
            vec![Stage::RoutePlan, Stage::Validate, Stage::Control]
        );
        assert_eq!(
            check_bindings(AssetType::Prompt, &[Stage::Compose, Stage::Compose])?,
            vec![Stage::Compose]
        );
        Ok(())
    }
}
