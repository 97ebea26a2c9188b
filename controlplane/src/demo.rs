//! The embedded demo: the plant-ops data set loaded into an SQLite file in the data dir, and
//! its assets (Source, SchemaCatalog, Resolver, Tools, Policy, planner and direct-answer
//! Prompts, Mapping, Screen) published for the tenants `acme` and `globex`, so the sidecars
//! serve real data from the first start.

use std::path::{Path, PathBuf};

use ops_proto::v1::BundleFile;

use crate::context::CallerContext;
use crate::registry::Registry;

/// The plant-ops SchemaCatalog (tables, metric mapping, graph mapping with relation directions).
pub const PLANT_OPS_CATALOG_YAML: &str =
    include_str!("../../datasets/plant-ops/assets/catalog.yaml");

/// The demo's Mapping (declarative rules for the default mapper plugin).
pub const PLANT_OPS_MAPPING_YAML: &str =
    include_str!("../../datasets/plant-ops/assets/mapping.yaml");

/// The demo's Screen (declarative layout for the default screen plugin).
pub const PLANT_OPS_SCREEN_YAML: &str = include_str!("../../datasets/plant-ops/assets/screen.yaml");

/// The planner's vocabulary (Korean and English).
pub const PLANT_OPS_PLANNER_YAML: &str =
    include_str!("../../datasets/plant-ops/assets/planner.yaml");

/// Answers of the DIRECT route.
pub const PLANT_OPS_DIRECT_YAML: &str = include_str!("../../datasets/plant-ops/assets/direct.yaml");

/// Budgets, SQL guard limits, reject rules and replan limits.
pub const PLANT_OPS_POLICY_YAML: &str = include_str!("../../datasets/plant-ops/assets/policy.yaml");

/// The Tools EXECUTE calls (one YAML document listing several assets).
pub const PLANT_OPS_TOOLS_YAML: &str = include_str!("../../datasets/plant-ops/assets/tools.yaml");

/// The plant-ops database (a path relative to opsd's data dir).
pub const PLANT_OPS_SOURCE_YAML: &str = include_str!("../../datasets/plant-ops/assets/source.yaml");

/// Aliases and code normalisation (the data set's `resolver.json` as a Resolver asset).
pub const PLANT_OPS_RESOLVER_YAML: &str =
    include_str!("../../datasets/plant-ops/assets/resolver.yaml");

/// The SQLite file the demo loads plant-ops into, in opsd's data dir; the Source names it.
pub const PLANT_OPS_SQLITE_FILE: &str = "plant-ops.sqlite";

/// Tenants that own rows in plant-ops.
pub const DEMO_TENANTS: [&str; 2] = ["acme", "globex"];

/// The demo's asset bundle: `datasets/plant-ops/assets`, file for file, as
/// `opsd assets import datasets/plant-ops/assets` sends it.
pub fn plant_ops_bundle() -> Vec<BundleFile> {
    [
        ("catalog.yaml", PLANT_OPS_CATALOG_YAML),
        ("direct.yaml", PLANT_OPS_DIRECT_YAML),
        ("mapping.yaml", PLANT_OPS_MAPPING_YAML),
        ("planner.yaml", PLANT_OPS_PLANNER_YAML),
        ("policy.yaml", PLANT_OPS_POLICY_YAML),
        ("resolver.yaml", PLANT_OPS_RESOLVER_YAML),
        ("screen.yaml", PLANT_OPS_SCREEN_YAML),
        ("source.yaml", PLANT_OPS_SOURCE_YAML),
        ("tools.yaml", PLANT_OPS_TOOLS_YAML),
    ]
    .into_iter()
    .map(|(path, content)| BundleFile {
        path: path.into(),
        content: content.as_bytes().to_vec(),
    })
    .collect()
}

/// Loads plant-ops into `<data_dir>/plant-ops.sqlite` (once) and publishes its assets for the
/// demo tenants. Returns the database path.
pub async fn prepare(data_dir: &Path, registry: &Registry) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(data_dir)?;
    let path = std::fs::canonicalize(data_dir)?.join(PLANT_OPS_SQLITE_FILE);
    if !path.is_file() {
        let report = ops_datasets::load_sqlite(&path).await?;
        tracing::info!(path = %path.display(), ?report, "plant-ops loaded");
    }
    for tenant in DEMO_TENANTS {
        let ctx = CallerContext::new(tenant, "opsd-demo");
        registry
            .import(&ctx, plant_ops_bundle(), true, false)
            .await?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Resolver asset and the data set's `resolver.json` hold the same rules.
    #[test]
    fn the_resolver_asset_is_the_data_sets_resolver_json() -> anyhow::Result<()> {
        let raw: serde_json::Value = serde_json::from_str(ops_datasets::plant_ops::RESOLVER_JSON)?;
        let asset: serde_json::Value = serde_yaml::from_str(PLANT_OPS_RESOLVER_YAML)?;
        let enum_name = |prefix: &str, v: &serde_json::Value| {
            v.as_str().map(|s| format!("{prefix}{}", s.to_uppercase()))
        };
        let mut expected = Vec::new();
        for rule in raw["rules"].as_array().into_iter().flatten() {
            let mut rule = rule.clone();
            if let Some(t) = enum_name("RESOLVER_RULE_TYPE_", &rule["rule_type"]) {
                rule["rule_type"] = t.into();
            }
            if let Some(t) = enum_name("RESOLVER_TRANSFORM_", &rule["rule_data"]["transform"]) {
                rule["rule_data"]["transform"] = t.into();
            }
            expected.push(rule);
        }
        assert_eq!(asset["name"], raw["name"]);
        assert_eq!(asset["spec"]["rules"], serde_json::Value::Array(expected));
        Ok(())
    }
}
