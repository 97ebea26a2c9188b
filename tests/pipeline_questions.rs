//! Every question of `plant-ops.public.jsonl` through `OpsService.Ask` over gRPC, on the demo
//! (plant-ops in SQLite, the three real sidecars supervised by opsd, the demo assets
//! published): the route must match and the answer blocks must contain the expected codes,
//! numbers (two decimals), counts, event ids, documents and path order. The expectations are
//! read from the question file only to check answers; nothing here tells the pipeline what to
//! do. Prints `N passed, M failed`, then the same for our own variants
//! (`questions/plant-ops.variants.jsonl`), and for the second data set, hospital-fm, onboarded
//! with the assets in `datasets/hospital-fm/assets` alone.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod answer_support;
mod executor_support;
mod pipeline_support;

use answer_support::{VARIANTS_JSONL, ask_file, hospital_fm_data, plant_ops_data};
use ops_controlplane::config::ExecutorMode;
use ops_datasets::{hospital_fm, plant_ops};
use ops_proto::v1::inspector_client::InspectorClient;
use ops_proto::v1::ops_service_client::OpsServiceClient;
use ops_proto::v1::{ListTracesRequest, Route};
use pipeline_support::request;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_public_question_is_answered_over_grpc_with_a_trace() {
    let demo = pipeline_support::start_demo(ExecutorMode::Spawn).await;
    let mut ops = OpsServiceClient::new(demo.channel.clone());
    let mut inspector = InspectorClient::new(demo.channel.clone());
    let data = plant_ops_data();
    let public = ask_file(&mut ops, &mut inspector, plant_ops::QUESTIONS_JSONL, &data).await;
    println!("{} passed, {} failed", public.passed, public.failures.len());
    let variants = ask_file(&mut ops, &mut inspector, VARIANTS_JSONL, &data).await;
    println!(
        "variants: {} passed, {} failed",
        variants.passed,
        variants.failures.len()
    );
    assert_eq!(
        public.routes.len(),
        3,
        "direct, orch and reject are each traced"
    );
    let listed = inspector
        .list_traces(request(
            "acme",
            ListTracesRequest {
                route: Route::Reject as i32,
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner();
    assert!(!listed.traces.is_empty());
    assert!(
        listed
            .traces
            .iter()
            .all(|t| t.route == Route::Reject as i32)
    );
    demo.stop().await;
    let failures: Vec<&String> = public.failures.iter().chain(&variants.failures).collect();
    assert!(
        failures.is_empty(),
        "{}",
        failures
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The second data set, in another domain (a hospital facilities estate: other table and
/// column names, the tenant column `org_code`, two tenants with the same asset tags), loaded
/// beside plant-ops and onboarded with the asset directory written from `docs/assets.md`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hospital_fm_question_is_answered_from_its_assets_alone() {
    let demo = pipeline_support::start_demo(ExecutorMode::Spawn).await;
    hospital_fm::load_sqlite(&demo.data_dir().join("hospital-fm.sqlite"))
        .await
        .expect("load hospital-fm");
    let assets =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/hospital-fm/assets");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&assets)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    for tenant in hospital_fm::TENANTS {
        demo.publish(
            tenant,
            files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect(),
        )
        .await;
    }
    let mut ops = OpsServiceClient::new(demo.channel.clone());
    let mut inspector = InspectorClient::new(demo.channel.clone());
    let data = hospital_fm_data();
    let run = ask_file(
        &mut ops,
        &mut inspector,
        hospital_fm::QUESTIONS_JSONL,
        &data,
    )
    .await;
    let total = run.passed + run.failures.len();
    println!(
        "hospital-fm: {} passed, {} failed",
        run.passed,
        run.failures.len()
    );
    demo.stop().await;
    // Every question: the issue asks 95 % of a schema onboarded from the docs, and this file
    // passes whole, so any failure is a regression.
    assert!(
        run.failures.is_empty(),
        "{} of {total} passed:\n{}",
        run.passed,
        run.failures.join("\n")
    );
}
