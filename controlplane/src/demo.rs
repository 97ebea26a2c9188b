//! The embedded demo: the plant-ops data set loaded into an SQLite file in the data dir, and
//! its Source, SchemaCatalog, Mapping and Screen published for the tenants `acme` and `globex`, so the sidecars
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

/// Tenants that own rows in plant-ops.
pub const DEMO_TENANTS: [&str; 2] = ["acme", "globex"];

/// The Source asset for a plant-ops SQLite file.
pub fn plant_ops_source_yaml(path: &Path) -> String {
    format!(
        "type: source\nname: plant_ops\ndescription: plant-ops demo data (SQLite)\nspec:\n  kind: SOURCE_KIND_SQLITE\n  connection:\n    path: {:?}\n  permissions:\n    read_only: true\n  limits:\n    max_rows: 10000\n    max_duration_ms: 10000\n    max_connections: 4\n",
        path.display().to_string()
    )
}

/// The demo's asset bundle for a plant-ops SQLite file.
pub fn plant_ops_bundle(path: &Path) -> Vec<BundleFile> {
    vec![
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
    ]
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
            .import(&ctx, plant_ops_bundle(&path), true, false)
            .await?;
    }
    Ok(path)
}
