//! Regression-run benchmark (one run): the demo's public questions blessed as golden queries,
//! then, alternating in rounds, the questions asked one after another (`OpsService.Ask`) and
//! the golden set run (`Regression.RunRegression`: each question asked again in test mode at
//! its `as_of`, its trace read back and judged against the baseline, the run stored). Medians
//! of the wall times, their ratio and the overhead per golden query.
//! `cargo bench -p ops-tests --bench regression`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../executor_support/mod.rs"]
mod executor_support;
#[path = "../pipeline_support/mod.rs"]
mod pipeline_support;

use std::time::Instant;

use ops_controlplane::config::ExecutorMode;
use ops_datasets::plant_ops;
use ops_proto::v1::ops_service_client::OpsServiceClient;
use ops_proto::v1::regression_client::RegressionClient;
use ops_proto::v1::{AskRequest, CreateGoldenQueryRequest, RunRegressionRequest};
use pipeline_support::request;

const ROUNDS: usize = 7;

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[samples.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let demo = pipeline_support::start_demo(ExecutorMode::Spawn).await;
        // The demo Policy's rate limit (600 a minute) would refuse a benchmark.
        demo.publish(
            "acme",
            vec![(
                "policy.yaml",
                ops_controlplane::demo::PLANT_OPS_POLICY_YAML.replace(
                    "rate_limit: {requests_per_minute: 600, requests_per_hour: 20000}",
                    "rate_limit: {requests_per_minute: 0, requests_per_hour: 0}",
                ),
            )],
        )
        .await;
        let mut ops = OpsServiceClient::new(demo.channel.clone());
        let mut regression = RegressionClient::new(demo.channel.clone());
        let questions: Vec<(String, AskRequest)> = plant_ops::QUESTIONS_JSONL
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|q| q["tenant"] == "acme")
            .map(|q| {
                (
                    q["id"].as_str().unwrap().to_owned(),
                    AskRequest {
                        question: q["question"].as_str().unwrap().into(),
                        as_of: ops_proto::convert::parse_rfc3339(q["as_of"].as_str().unwrap()),
                        ..Default::default()
                    },
                )
            })
            .collect();
        for (name, question) in &questions {
            let answered = ops
                .ask(request("acme", question.clone()))
                .await
                .expect("ask")
                .into_inner();
            regression
                .create_golden_query(request(
                    "acme",
                    CreateGoldenQueryRequest {
                        name: name.clone(),
                        baseline_trace_id: answered.trace_id,
                        ..Default::default()
                    },
                ))
                .await
                .expect("bless");
        }
        let n = questions.len();
        let (mut asks_ms, mut runs_ms, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..=ROUNDS {
            let started = Instant::now();
            for (_, question) in &questions {
                ops.ask(request("acme", question.clone())).await.expect("ask");
            }
            let asks = started.elapsed().as_secs_f64() * 1000.0;
            let started = Instant::now();
            let run = regression
                .run_regression(request("acme", RunRegressionRequest::default()))
                .await
                .expect("run")
                .into_inner()
                .run
                .unwrap();
            let run_ms = started.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(run.passed as usize, n, "the golden set passes");
            // Round 0 warms caches and connections.
            if round > 0 {
                asks_ms.push(asks);
                runs_ms.push(run_ms);
                ratios.push(run_ms / asks);
            }
        }
        let (asks, runs) = (median(&mut asks_ms), median(&mut runs_ms));
        println!("\nRegression run of {n} golden queries vs asking the {n} questions, {ROUNDS} rounds (medians):");
        println!("  {n} asks, one after another: {asks:.1} ms ({:.2} ms per question)", asks / n as f64);
        println!("  RunRegression:              {runs:.1} ms ({:.2} ms per golden query)", runs / n as f64);
        println!(
            "  ratio {:.2}x (median of per-round ratios {:.2}x); overhead per golden query {:.2} ms",
            runs / asks,
            median(&mut ratios),
            (runs - asks) / n as f64
        );
        demo.stop().await;
    });
}
