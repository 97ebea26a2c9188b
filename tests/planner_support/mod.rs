//! The demo tenant's planner [`Knowledge`], built as the snapshot builds it but without a
//! server: the demo's published assets and the tenant's own rows from the plant-ops CSVs.
//! Shared by the planner's question test and its benchmark.
#![allow(dead_code)]

use std::collections::BTreeMap;

use ops_controlplane::demo;
use ops_controlplane::registry::bundle;
use ops_controlplane::route_plan::knowledge::{self, PlannerAssets, Rows};
use ops_controlplane::route_plan::planner::Knowledge;
use ops_datasets::plant_ops;
use ops_proto::v1::{BundleFile, asset_spec::Kind};
use serde_json::Value as Json;

fn parse(path: &str, content: &str) -> Kind {
    let parsed = bundle::parse(&BundleFile {
        path: path.into(),
        content: content.as_bytes().to_vec(),
    })
    .unwrap_or_else(|e| panic!("{e}"))
    .remove(0);
    parsed
        .content
        .spec
        .and_then(|s| s.kind)
        .unwrap_or_else(|| panic!("{path} has no spec"))
}

/// Rows of a plant-ops CSV for one tenant (the data has no quoted commas in these tables).
fn csv_rows(csv: &str, tenant: &str) -> Rows {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    lines
        .map(|line| {
            header
                .iter()
                .zip(line.split(','))
                .filter(|(_, v)| !v.is_empty())
                .map(|(h, v)| ((*h).to_owned(), v.to_owned()))
                .collect::<BTreeMap<_, _>>()
        })
        .filter(|row| row.get("tenant_id").map(String::as_str) == Some(tenant))
        .collect()
}

pub fn knowledge(tenant: &str) -> Knowledge {
    let Kind::Prompt(prompt) = parse("planner.yaml", demo::PLANT_OPS_PLANNER_YAML) else {
        panic!("planner.yaml is not a prompt")
    };
    let Kind::SchemaCatalog(catalog) = parse("catalog.yaml", demo::PLANT_OPS_CATALOG_YAML) else {
        panic!("catalog.yaml is not a catalog")
    };
    let Kind::Policy(policy) = parse("policy.yaml", demo::PLANT_OPS_POLICY_YAML) else {
        panic!("policy.yaml is not a policy")
    };
    let Kind::Resolver(resolver) = parse("resolver.yaml", demo::PLANT_OPS_RESOLVER_YAML) else {
        panic!("resolver.yaml is not a resolver")
    };
    let tools: Vec<serde_yaml::Value> =
        serde_yaml::from_str(demo::PLANT_OPS_TOOLS_YAML).expect("tools.yaml");
    let tools = tools
        .iter()
        .map(|t| {
            let json: Json = serde_json::to_value(t).expect("tool as json");
            knowledge::tool_choice(
                json["name"].as_str().unwrap_or_default(),
                &json["spec"]["config"],
            )
        })
        .collect();
    let mut rows = BTreeMap::new();
    rows.insert(
        "ci_master".to_owned(),
        csv_rows(plant_ops::CI_MASTER_CSV, tenant),
    );
    rows.insert("events".to_owned(), csv_rows(plant_ops::EVENTS_CSV, tenant));
    knowledge::build(
        PlannerAssets {
            prompt: Some(&prompt),
            catalog: &catalog,
            policy: Some(("plant_ops_policy", &policy)),
            resolver: Some(&resolver),
            tools,
        },
        &rows,
    )
    .expect("knowledge")
}
