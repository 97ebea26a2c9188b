//! Regression watch on the demo with real sidecars: every public question is asked, blessed as
//! a golden query and run again — all pass; a Mapping draft whose table drops a column fails
//! the golden queries whose answers lose values, naming COMPOSE, while a reworded draft only
//! warns; the publish gate refuses the breaking draft and lets the reworded one through; runs
//! are stored, listed and read back; golden queries are listed and deleted.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod executor_support;
mod pipeline_support;

use ops_controlplane::config::ExecutorMode;
use ops_datasets::plant_ops;
use ops_proto::v1::asset_registry_client::AssetRegistryClient;
use ops_proto::v1::ops_service_client::OpsServiceClient;
use ops_proto::v1::regression_client::RegressionClient;
use ops_proto::v1::{
    AskRequest, AssetType, BundleFile, CreateGoldenQueryRequest, DeleteGoldenQueryRequest,
    GetAssetRequest, GetRegressionRunRequest, ImportBundleRequest, Judgment,
    ListGoldenQueriesRequest, ListRegressionRunsRequest, PublishAssetRequest, RegressionRun,
    RegressionTrigger, RunRegressionRequest, get_asset_request,
};
use pipeline_support::{Demo, request};
use tonic::Code;
use tonic::transport::Channel;

const MAPPING: &str = include_str!("../datasets/plant-ops/assets/mapping.yaml");

async fn draft_mapping(demo: &Demo, yaml: String) {
    demo.registry
        .import(
            &ops_controlplane::context::CallerContext::new("acme", "test-author"),
            vec![BundleFile {
                path: "mapping.yaml".into(),
                content: yaml.into_bytes(),
            }],
            false,
            false,
        )
        .await
        .expect("mapping draft");
}

/// The regression run a refused publish names ("… (regression run ID): …").
fn refused_run(status: &tonic::Status) -> &str {
    let message = status.message();
    let start = message
        .find("regression run ")
        .map_or(0, |i| i + "regression run ".len());
    let end = message[start..]
        .find(')')
        .map_or(message.len(), |i| start + i);
    &message[start..end]
}

async fn draft_revision(registry: &mut AssetRegistryClient<Channel>) -> u64 {
    registry
        .get_asset(request(
            "acme",
            GetAssetRequest {
                r#type: AssetType::Mapping as i32,
                name: "plant_ops_answer".into(),
                selector: Some(get_asset_request::Selector::Draft(true)),
            },
        ))
        .await
        .expect("the draft")
        .into_inner()
        .asset
        .expect("asset")
        .revision
}

async fn published_version(registry: &mut AssetRegistryClient<Channel>) -> u32 {
    registry
        .get_asset(request(
            "acme",
            GetAssetRequest {
                r#type: AssetType::Mapping as i32,
                name: "plant_ops_answer".into(),
                selector: None,
            },
        ))
        .await
        .expect("the published mapping")
        .into_inner()
        .asset
        .expect("asset")
        .version
}

async fn run(regression: &mut RegressionClient<Channel>, overrides: &[&str]) -> RegressionRun {
    regression
        .run_regression(request(
            "acme",
            RunRegressionRequest {
                golden_query_ids: Vec::new(),
                asset_overrides: overrides.iter().map(|o| (*o).to_owned()).collect(),
            },
        ))
        .await
        .expect("run")
        .into_inner()
        .run
        .expect("the run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blessed_golden_set_passes_and_a_breaking_draft_fails_it() {
    let demo = pipeline_support::start_demo(ExecutorMode::Spawn).await;
    let mut ops = OpsServiceClient::new(demo.channel.clone());
    let mut regression = RegressionClient::new(demo.channel.clone());

    let mut blessed = 0;
    for line in plant_ops::QUESTIONS_JSONL
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let q: serde_json::Value = serde_json::from_str(line).unwrap();
        if q["tenant"] != "acme" {
            continue;
        }
        let as_of = ops_proto::convert::parse_rfc3339(q["as_of"].as_str().unwrap()).unwrap();
        let answered = ops
            .ask(request(
                "acme",
                AskRequest {
                    question: q["question"].as_str().unwrap().into(),
                    as_of: Some(as_of),
                    ..Default::default()
                },
            ))
            .await
            .expect("ask")
            .into_inner();
        regression
            .create_golden_query(request(
                "acme",
                CreateGoldenQueryRequest {
                    name: q["id"].as_str().unwrap().into(),
                    baseline_trace_id: answered.trace_id,
                    ..Default::default()
                },
            ))
            .await
            .expect("bless");
        blessed += 1;
    }
    assert!(blessed >= 30, "{blessed} golden queries");

    let clean = run(&mut regression, &[]).await;
    let not_passed: Vec<_> = clean
        .results
        .iter()
        .filter(|r| r.judgment != Judgment::Pass as i32)
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}");
    assert_eq!(clean.passed as usize, blessed);
    println!(
        "golden set: {blessed} queries, {} passed, run {:.0} ms",
        clean.passed, clean.duration_ms
    );

    // A draft whose configuration-item table drops the CI code column: list answers lose
    // their codes.
    let dropped = MAPPING.replace(
        "          - {label: CI code, field: ci_code}\n          - {label: name, field: ci_name}",
        "          - {label: name, field: ci_name}",
    );
    assert_ne!(dropped, MAPPING, "the column is in the demo mapping");
    draft_mapping(&demo, dropped.clone()).await;
    let broken = run(&mut regression, &["mapping:plant_ops_answer@draft"]).await;
    assert!(broken.failed > 0, "{broken:#?}");
    println!(
        "draft without the CI code column: {} passed, {} warnings, {} failed",
        broken.passed, broken.warnings, broken.failed
    );
    let failure = broken
        .results
        .iter()
        .find(|r| r.judgment == Judgment::Fail as i32)
        .unwrap();
    assert!(failure.diff_summary.contains("COMPOSE"), "{failure:#?}");
    assert!(failure.verdict_reason.contains("values"), "{failure:#?}");

    // The publish gate (asked for by the request) refuses that draft, naming what breaks;
    // the published Mapping stays as it was.
    let mut registry = AssetRegistryClient::new(demo.channel.clone());
    let revision = draft_revision(&mut registry).await;
    let refused = registry
        .publish_asset(request(
            "acme",
            PublishAssetRequest {
                r#type: AssetType::Mapping as i32,
                name: "plant_ops_answer".into(),
                expected_revision: revision,
                note: "drop the CI code column".into(),
                run_golden_set: true,
            },
        ))
        .await
        .expect_err("the gate refuses a breaking draft");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("would break") && refused.message().contains("COMPOSE"),
        "{refused:?}"
    );
    assert!(
        refused.message().contains(&failure.golden_query_name),
        "{refused:?}"
    );
    assert_eq!(published_version(&mut registry).await, 1);

    // ImportBundle with publish goes through the same gate: refused, the published Mapping
    // unchanged, the bundle kept as its draft.
    let import_refused = registry
        .import_bundle(request(
            "acme",
            ImportBundleRequest {
                files: vec![BundleFile {
                    path: "mapping.yaml".into(),
                    content: dropped.into_bytes(),
                }],
                publish: true,
                dry_run: false,
                run_golden_set: true,
            },
        ))
        .await
        .expect_err("the gate refuses a breaking bundle");
    assert_eq!(import_refused.code(), Code::FailedPrecondition);
    assert!(
        import_refused
            .message()
            .contains("publishing mapping:plant_ops_answer would break"),
        "{import_refused:?}"
    );
    assert_eq!(published_version(&mut registry).await, 1);

    // A draft that only rewords a sentence keeps every value: warnings at most.
    draft_mapping(
        &demo,
        MAPPING.replace(
            "{{ci_code}} {{metric_name}} {{aggregation}} over {{window}}: {{value}} {{unit}}",
            "{{ci_code}} {{metric_name}} {{aggregation}} in {{window}} was {{value}} {{unit}}",
        ),
    )
    .await;
    let reworded = run(&mut regression, &["mapping:plant_ops_answer@draft"]).await;
    assert_eq!(reworded.failed, 0, "{reworded:#?}");
    assert!(reworded.warnings > 0, "{reworded:#?}");
    // With the Policy's publish_gate on, a plain PublishAsset runs the gate; warnings pass.
    demo.publish(
        "acme",
        vec![(
            "policy.yaml",
            format!(
                "{}  publish_gate: true\n",
                ops_controlplane::demo::PLANT_OPS_POLICY_YAML
            ),
        )],
    )
    .await;
    let revision = draft_revision(&mut registry).await;
    let published = registry
        .publish_asset(request(
            "acme",
            PublishAssetRequest {
                r#type: AssetType::Mapping as i32,
                name: "plant_ops_answer".into(),
                expected_revision: revision,
                note: "reword the metric sentence".into(),
                run_golden_set: false,
            },
        ))
        .await
        .expect("the gate lets a harmless draft through")
        .into_inner();
    let gate = published.gate_run.expect("the gate ran");
    assert_eq!(
        (gate.failed, gate.passed as usize + gate.warnings as usize),
        (0, blessed)
    );
    assert_eq!(published_version(&mut registry).await, 2);
    println!(
        "reworded draft: {} passed, {} warnings, {} failed",
        reworded.passed, reworded.warnings, reworded.failed
    );

    // Runs are stored and read back, newest first.
    let listed = regression
        .list_regression_runs(request("acme", ListRegressionRunsRequest::default()))
        .await
        .expect("list runs")
        .into_inner();
    // The two gate runs are stored too: the passed one newest, the refused one between.
    assert_eq!(
        listed
            .runs
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        [
            gate.id.as_str(),
            reworded.id.as_str(),
            refused_run(&import_refused),
            refused_run(&refused),
            broken.id.as_str(),
            clean.id.as_str()
        ]
    );
    let triggers: Vec<RegressionTrigger> = listed
        .runs
        .iter()
        .map(|r| RegressionTrigger::try_from(r.trigger).unwrap())
        .collect();
    use RegressionTrigger::{Manual, PublishGate};
    assert_eq!(
        triggers,
        [
            PublishGate,
            Manual,
            PublishGate,
            PublishGate,
            Manual,
            Manual
        ]
    );
    assert_eq!(
        listed.runs[0].asset_overrides,
        ["mapping:plant_ops_answer@draft"]
    );
    let read = regression
        .get_regression_run(request(
            "acme",
            GetRegressionRunRequest {
                id: broken.id.clone(),
            },
        ))
        .await
        .expect("get run")
        .into_inner()
        .run
        .unwrap();
    assert_eq!(read, broken);

    // Golden queries: listed by name, deleted, names unique, bad input named.
    let golden = regression
        .list_golden_queries(request(
            "acme",
            ListGoldenQueriesRequest {
                page_size: 5,
                ..Default::default()
            },
        ))
        .await
        .expect("list golden")
        .into_inner();
    assert_eq!(golden.golden_queries.len(), 5);
    assert!(!golden.next_page_token.is_empty());
    let first = &golden.golden_queries[0];
    assert!(first.request.as_ref().is_some_and(|r| r.as_of.is_some()));
    let duplicate = regression
        .create_golden_query(request(
            "acme",
            CreateGoldenQueryRequest {
                name: first.name.clone(),
                baseline_trace_id: first.baseline_trace_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("a duplicate name");
    assert_eq!(duplicate.code(), Code::InvalidArgument);
    assert!(duplicate.message().contains("name"), "{duplicate:?}");
    let no_expectation = regression
        .create_golden_query(request(
            "acme",
            CreateGoldenQueryRequest {
                name: "bare".into(),
                request: Some(AskRequest {
                    question: "GT-01 CPU average last week".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .expect_err("neither a baseline nor expected values");
    assert_eq!(no_expectation.code(), Code::InvalidArgument);
    assert!(no_expectation.message().contains("expected_values"));
    regression
        .delete_golden_query(request(
            "acme",
            DeleteGoldenQueryRequest {
                id: first.id.clone(),
            },
        ))
        .await
        .expect("delete");
    let again = regression
        .delete_golden_query(request(
            "acme",
            DeleteGoldenQueryRequest {
                id: first.id.clone(),
            },
        ))
        .await
        .expect_err("already deleted");
    assert_eq!(again.code(), Code::NotFound);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_queries_are_judged_on_expected_values_and_a_lost_baseline_fails() {
    let demo = pipeline_support::start_demo(ExecutorMode::Spawn).await;
    let mut regression = RegressionClient::new(demo.channel.clone());
    let as_of = ops_proto::convert::parse_rfc3339("2026-01-31T00:00:00Z").unwrap();
    for (name, expected) in [("right", "ERP-DB-01"), ("wrong", "ERP-DB-99")] {
        regression
            .create_golden_query(request(
                "acme",
                CreateGoldenQueryRequest {
                    name: name.into(),
                    request: Some(AskRequest {
                        question: "ERP 시스템의 모든 서버를 나열해줘".into(),
                        as_of: Some(as_of),
                        ..Default::default()
                    }),
                    expected_values: vec![expected.into()],
                    ..Default::default()
                },
            ))
            .await
            .expect("create");
    }
    // A golden query whose baseline trace retention has since removed.
    let mut ops = OpsServiceClient::new(demo.channel.clone());
    let asked = ops
        .ask(request(
            "acme",
            AskRequest {
                question: "GT-01 CPU average last week".into(),
                as_of: Some(as_of),
                ..Default::default()
            },
        ))
        .await
        .expect("ask")
        .into_inner();
    regression
        .create_golden_query(request(
            "acme",
            CreateGoldenQueryRequest {
                name: "gone".into(),
                baseline_trace_id: asked.trace_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("bless");
    for table in ["trace_assets", "traces"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE trace_id = $1"
        )))
        .bind(&asked.trace_id)
        .execute(demo.registry.db().pool())
        .await
        .expect("remove the baseline");
    }
    let judged = run(&mut regression, &[]).await;
    let verdicts: Vec<i32> = judged.results.iter().map(|r| r.judgment).collect();
    assert_eq!(
        verdicts,
        [
            Judgment::Fail as i32,
            Judgment::Pass as i32,
            Judgment::Fail as i32
        ],
        "{judged:#?}"
    );
    assert!(judged.results[0].verdict_reason.contains("is gone"));
    assert!(judged.results[2].verdict_reason.contains("ERP-DB-99"));
    demo.stop().await;
}
