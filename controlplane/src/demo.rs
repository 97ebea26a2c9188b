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

/// Tenants that own rows in plant-ops.
pub const DEMO_TENANTS: [&str; 2] = ["acme", "globex"];

/// The Source asset for a plant-ops SQLite file.
pub fn plant_ops_source_yaml(path: &Path) -> String {
    format!(
        "type: source\nname: plant_ops\ndescription: plant-ops demo data (SQLite)\nspec:\n  kind: SOURCE_KIND_SQLITE\n  connection:\n    path: {:?}\n  permissions:\n    read_only: true\n  limits:\n    max_rows: 10000\n    max_duration_ms: 10000\n    max_connections: 4\n",
        path.display().to_string()
    )
}

/// The data set's `resolver.json` (rule types and transforms in lower case, as the user
/// guides write them) as a Resolver asset document.
pub fn plant_ops_resolver_json() -> anyhow::Result<String> {
    let raw: serde_json::Value = serde_json::from_str(ops_datasets::plant_ops::RESOLVER_JSON)?;
    let enum_name = |prefix: &str, v: &serde_json::Value| {
        v.as_str()
            .map(|s| serde_json::Value::String(format!("{prefix}{}", s.to_uppercase())))
    };
    let mut rules = Vec::new();
    for rule in raw["rules"].as_array().into_iter().flatten() {
        let mut rule = rule.clone();
        if let Some(t) = enum_name("RESOLVER_RULE_TYPE_", &rule["rule_type"]) {
            rule["rule_type"] = t;
        }
        if let Some(t) = enum_name("RESOLVER_TRANSFORM_", &rule["rule_data"]["transform"]) {
            rule["rule_data"]["transform"] = t;
        }
        rules.push(rule);
    }
    Ok(serde_json::json!({
        "type": "resolver",
        "name": raw["name"].as_str().unwrap_or("plant_resolver"),
        "description": "aliases and code normalisation of plant-ops (from resolver.json)",
        "spec": {"rules": rules},
    })
    .to_string())
}

/// One bundle file per asset of a YAML list.
fn split_yaml_list(prefix: &str, yaml: &str) -> anyhow::Result<Vec<BundleFile>> {
    let docs: Vec<serde_yaml::Value> = serde_yaml::from_str(yaml)?;
    docs.iter()
        .enumerate()
        .map(|(i, doc)| {
            Ok(BundleFile {
                path: format!("{prefix}/{i}.yaml"),
                content: serde_yaml::to_string(doc)?.into_bytes(),
            })
        })
        .collect()
}

/// The demo's asset bundle for a plant-ops SQLite file.
pub fn plant_ops_bundle(path: &Path) -> anyhow::Result<Vec<BundleFile>> {
    let mut files = vec![
        BundleFile {
            path: "resolver.json".into(),
            content: plant_ops_resolver_json()?.into_bytes(),
        },
        BundleFile {
            path: "planner.yaml".into(),
            content: PLANT_OPS_PLANNER_YAML.as_bytes().to_vec(),
        },
        BundleFile {
            path: "direct.yaml".into(),
            content: PLANT_OPS_DIRECT_YAML.as_bytes().to_vec(),
        },
        BundleFile {
            path: "policy.yaml".into(),
            content: PLANT_OPS_POLICY_YAML.as_bytes().to_vec(),
        },
        BundleFile {
            path: "source.yaml".into(),
            content: plant_ops_source_yaml(path).into_bytes(),
        },
        BundleFile {
            path: "catalog.yaml".into(),
            content: PLANT_OPS_CATALOG_YAML.as_bytes().to_vec(),
        },
        BundleFile {
            path: "mapping.yaml".into(),
            content: PLANT_OPS_MAPPING_YAML.as_bytes().to_vec(),
        },
        BundleFile {
            path: "screen.yaml".into(),
            content: PLANT_OPS_SCREEN_YAML.as_bytes().to_vec(),
        },
    ];
    files.extend(split_yaml_list("tools", PLANT_OPS_TOOLS_YAML)?);
    Ok(files)
}

/// Loads plant-ops into `<data_dir>/plant-ops.sqlite` (once) and publishes its assets for the
/// demo tenants. Returns the database path.
pub async fn prepare(data_dir: &Path, registry: &Registry) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(data_dir)?;
    let path = std::fs::canonicalize(data_dir)?.join("plant-ops.sqlite");
    if !path.is_file() {
        let report = ops_datasets::load_sqlite(&path).await?;
        tracing::info!(path = %path.display(), ?report, "plant-ops loaded");
    }
    for tenant in DEMO_TENANTS {
        let ctx = CallerContext::new(tenant, "opsd-demo");
        registry
            .import(&ctx, plant_ops_bundle(&path)?, true, false)
            .await?;
    }
    Ok(path)
}
