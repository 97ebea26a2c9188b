//! The demo tenant's planner [`Knowledge`], built as the snapshot builds it but without a
//! server: the demo's published assets and the tenant's own rows from the plant-ops CSVs.
//! Shared by the planner's question test and its benchmark.
#![allow(dead_code)]

use std::collections::BTreeMap;

use ops_controlplane::demo;
use ops_controlplane::model::plan_kind::Mode;
use ops_controlplane::registry::bundle;
use ops_controlplane::route_plan::knowledge::{self, PlannerAssets, Rows};
use ops_controlplane::route_plan::planner::Knowledge;
use ops_datasets::plant_ops;
use ops_proto::v1::{BundleFile, PromptPurpose, asset_spec::Kind};

/// Every asset of a bundle file (one document or a list), with its name.
fn parse_all(path: &str, content: &str) -> Vec<(String, Kind)> {
    bundle::parse(&BundleFile {
        path: path.into(),
        content: content.as_bytes().to_vec(),
    })
    .unwrap_or_else(|e| panic!("{e}"))
    .into_iter()
    .filter_map(|p| Some((p.name, p.content.spec?.kind?)))
    .collect()
}

/// Rows of a CSV for one tenant (`tenant_column` = `tenant`), empty fields left out.
fn csv_rows(csv: &str, tenant_column: &str, tenant: &str) -> Rows {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("csv header")
        .iter()
        .map(str::to_owned)
        .collect();
    reader
        .records()
        .map(|record| {
            let record = record.expect("csv record");
            header
                .iter()
                .zip(record.iter())
                .filter(|(_, v)| !v.is_empty())
                .map(|(h, v)| (h.clone(), v.to_owned()))
                .collect::<BTreeMap<_, _>>()
        })
        .filter(|row| row.get(tenant_column).map(String::as_str) == Some(tenant))
        .collect()
}

/// A tenant's Knowledge from an asset directory's files and the data set's CSVs, as the
/// snapshot builds it: the planner Prompt, catalog, Policy, Resolver and Tools, and the
/// tenant's rows of the config and history Tools' tables.
pub fn knowledge_from(files: &[(&str, &str)], tables: &[(&str, &str)], tenant: &str) -> Knowledge {
    let (mut prompt, mut catalog, mut policy, mut resolver) = (None, None, None, None);
    let mut tools = Vec::new();
    for (path, content) in files {
        for (name, kind) in parse_all(path, content) {
            match kind {
                Kind::Prompt(p) if p.purpose == PromptPurpose::Planner as i32 => prompt = Some(p),
                Kind::SchemaCatalog(c) => catalog = Some(c),
                Kind::Policy(p) => policy = Some((name, p)),
                Kind::Resolver(r) => resolver = Some(r),
                Kind::Tool(t) => {
                    let config = serde_json::to_value(&t.config).expect("config as json");
                    tools.push(knowledge::tool_choice(&name, &config));
                }
                _ => {}
            }
        }
    }
    let catalog = catalog.expect("a catalog");
    let mut rows = BTreeMap::new();
    for choice in &tools {
        if !matches!(choice.mode, Some(Mode::Config | Mode::History)) {
            continue;
        }
        let Some((_, csv)) = tables.iter().find(|(t, _)| *t == choice.table) else {
            continue;
        };
        let tenant_column = catalog
            .tables
            .iter()
            .find(|t| t.name == choice.table)
            .map(|t| t.tenant_column.clone())
            .unwrap_or_default();
        rows.insert(choice.table.clone(), csv_rows(csv, &tenant_column, tenant));
    }
    knowledge::build(
        PlannerAssets {
            prompt: prompt.as_ref(),
            catalog: &catalog,
            policy: policy.as_ref().map(|(name, p)| (name.as_str(), p)),
            resolver: resolver.as_ref(),
            tools,
        },
        &rows,
    )
    .expect("knowledge")
}

/// The demo tenant's Knowledge (plant-ops).
pub fn knowledge(tenant: &str) -> Knowledge {
    let files: Vec<(String, String)> = demo::plant_ops_bundle()
        .into_iter()
        .map(|f| (f.path, String::from_utf8(f.content).expect("utf-8")))
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    knowledge_from(
        &files,
        &[
            ("ci_master", plant_ops::CI_MASTER_CSV),
            ("events", plant_ops::EVENTS_CSV),
        ],
        tenant,
    )
}

/// hospital-fm's asset directory, file by file.
pub const HOSPITAL_FM_ASSETS: &[(&str, &str)] = &[
    (
        "catalog.yaml",
        include_str!("../../datasets/hospital-fm/assets/catalog.yaml"),
    ),
    (
        "planner.yaml",
        include_str!("../../datasets/hospital-fm/assets/planner.yaml"),
    ),
    (
        "policy.yaml",
        include_str!("../../datasets/hospital-fm/assets/policy.yaml"),
    ),
    (
        "source.yaml",
        include_str!("../../datasets/hospital-fm/assets/source.yaml"),
    ),
    (
        "tools.yaml",
        include_str!("../../datasets/hospital-fm/assets/tools.yaml"),
    ),
];

/// A hospital-fm tenant's Knowledge.
pub fn hospital_knowledge(tenant: &str) -> Knowledge {
    knowledge_from(
        HOSPITAL_FM_ASSETS,
        ops_datasets::hospital_fm::TABLES,
        tenant,
    )
}
