//! Pipeline benchmark (one run): `OpsService.Ask` over gRPC on the demo (plant-ops in SQLite,
//! three real sidecar processes, durable traces) with 1 and 16 concurrent clients, beside the
//! raw sidecar `Execute` calls of the same plans in the same run; the time each stage takes
//! outside EXECUTE; the SQL guard's cost per statement.
//! `cargo bench -p ops-tests --bench pipeline`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../executor_support/mod.rs"]
mod executor_support;
#[path = "../pipeline_support/mod.rs"]
mod pipeline_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use ops_controlplane::config::ExecutorMode;
use ops_controlplane::execute::Executors;
use ops_controlplane::execute::source_health::SourceHealth;
use ops_controlplane::pipeline::snapshot::SnapshotCache;
use ops_controlplane::route_plan::planner::{self, Routed};
use ops_controlplane::validate::plan::{self as plan_check, TaskRequest};
use ops_controlplane::validate::sql_prepare;
use ops_proto::convert::timestamp as ts;
use ops_proto::executor::{ExecuteRequest, SqlRequest, execute_request};
use ops_proto::executor_api::{CallContext, ExecutorApi};
use ops_proto::v1::ops_service_client::OpsServiceClient;
use ops_proto::v1::{AskRequest, AskResponse, Stage};
use pipeline_support::request;
use time::OffsetDateTime;

const QUESTIONS: [(&str, &str); 5] = [
    ("config list", "ERP 시스템의 모든 서버를 나열해줘"),
    ("metric avg", "GT-01 CPU 사용률 평균 최근 1주일"),
    ("graph impact", "ERP-DB-01 장애 시 영향받는 CI 전부"),
    ("history count", "지난 7일간 critical 알람 몇 건?"),
    ("direct", "오늘 날짜는?"),
];

fn percentile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[((samples.len() - 1) as f64 * q) as usize]
}

fn as_of() -> OffsetDateTime {
    OffsetDateTime::parse(
        "2026-01-31T00:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

async fn ask(client: &mut OpsServiceClient<tonic::transport::Channel>, q: &str) -> AskResponse {
    client
        .ask(request(
            "acme",
            AskRequest {
                question: q.to_owned(),
                as_of: Some(ts(as_of())),
                ..Default::default()
            },
        ))
        .await
        .expect("ask")
        .into_inner()
}

fn stage_ms(r: &AskResponse, stage: Stage) -> f64 {
    r.meta
        .as_ref()
        .map(|m| {
            m.timings
                .iter()
                .filter(|t| t.stage == stage as i32)
                .map(|t| t.duration_ms)
                .sum()
        })
        .unwrap_or(0.0)
}

/// The executor requests of a question's plan, as EXECUTE sends them.
async fn raw_requests(
    executors: &Executors,
    demo: &pipeline_support::Demo,
    q: &str,
) -> Vec<ExecuteRequest> {
    let snapshot = SnapshotCache::default()
        .get(
            &demo.registry,
            executors,
            &SourceHealth::default(),
            "acme",
            &[],
        )
        .await
        .expect("snapshot");
    let Routed::Plan(plan) = planner::plan(&snapshot.knowledge, q, as_of(), None).routed else {
        return Vec::new();
    };
    let compiled = plan_check::compile(&snapshot, &plan, "acme");
    let source = snapshot.source.as_ref().unwrap().config.clone();
    compiled
        .tasks
        .iter()
        .map(|t| ExecuteRequest {
            source: Some(source.clone()),
            request: Some(match &t.request {
                TaskRequest::Sql { sql, params, .. } => execute_request::Request::Sql(SqlRequest {
                    sql: sql.clone(),
                    params: params.clone(),
                    ..Default::default()
                }),
                TaskRequest::Metric { request, .. } => {
                    execute_request::Request::Metric(request.clone())
                }
                TaskRequest::Graph { request } => execute_request::Request::Graph(request.clone()),
            }),
            trace_id: String::new(),
        })
        .collect()
}

async fn run_raw(executors: &Executors, requests: &[ExecuteRequest]) {
    for r in requests {
        let client = match r.request {
            Some(execute_request::Request::Sql(_)) => &executors.sql,
            Some(execute_request::Request::Metric(_)) => &executors.metrics,
            _ => &executors.graph,
        };
        client
            .execute(CallContext::default(), r.clone())
            .await
            .expect("execute");
    }
}

fn guard_cost() {
    let corpus = executor_support::GuardCorpus::load();
    let mut allowed = Vec::new();
    let mut rejected = Vec::new();
    for _ in 0..20 {
        for e in &corpus.entries {
            let ctx = corpus.context(e.dialect());
            let started = Instant::now();
            let outcome = sql_prepare::prepare(&e.sql, &ctx);
            let us = started.elapsed().as_secs_f64() * 1e6;
            assert_eq!(outcome.is_ok(), e.allowed);
            if e.allowed {
                allowed.push(us);
            } else {
                rejected.push(us);
            }
        }
    }
    println!(
        "sql guard, per statement (µs): allowed+scoped p50 {:.1} p99 {:.1} (n={}); rejected p50 {:.1} p99 {:.1} (n={})",
        percentile(&mut allowed, 0.5),
        percentile(&mut allowed, 0.99),
        allowed.len(),
        percentile(&mut rejected, 0.5),
        percentile(&mut rejected, 0.99),
        rejected.len()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    guard_cost();
    runtime.block_on(async {
        let demo = pipeline_support::start_demo(ExecutorMode::Connect).await;
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
        let executors = demo.executors.clone();
        let mut client = OpsServiceClient::new(demo.channel.clone());
        let n = 200;
        println!(
            "\nOne client, {n} asks per question (ms): client p50/p99 | EXECUTE p50 | outside EXECUTE p50 (route+plan, validate, compose, present, trace commit) | raw sidecar Execute p50 of the same plan"
        );
        let mut outside_all = Vec::new();
        let mut stage_samples: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        // Ask and raw Execute p50 of every question that reads data, for the 1-client ratio.
        let (mut ask_p50s, mut raw_p50s) = (Vec::new(), Vec::new());
        for (label, q) in QUESTIONS {
            for _ in 0..20 {
                ask(&mut client, q).await;
            }
            let (mut client_ms, mut exec_ms, mut outside_ms) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..n {
                let started = Instant::now();
                let r = ask(&mut client, q).await;
                client_ms.push(started.elapsed().as_secs_f64() * 1000.0);
                let exec = stage_ms(&r, Stage::Execute);
                let total = r.meta.as_ref().unwrap().total_ms;
                exec_ms.push(exec);
                outside_ms.push(total - exec);
                outside_all.push(total - exec);
                for (name, stage) in [
                    ("route_plan", Stage::RoutePlan),
                    ("validate", Stage::Validate),
                    ("compose", Stage::Compose),
                    ("present", Stage::Present),
                ] {
                    stage_samples.entry(name).or_default().push(stage_ms(&r, stage));
                }
                let stages: f64 = r.meta.as_ref().unwrap().timings.iter().map(|t| t.duration_ms).sum();
                stage_samples.entry("commit+rest").or_default().push(total - stages);
            }
            let raw = raw_requests(&executors, &demo, q).await;
            let mut raw_ms = Vec::new();
            if !raw.is_empty() {
                for _ in 0..n {
                    let started = Instant::now();
                    run_raw(&executors, &raw).await;
                    raw_ms.push(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
            let raw_p50 = if raw_ms.is_empty() { 0.0 } else { percentile(&mut raw_ms, 0.5) };
            if raw_p50 > 0.0 {
                ask_p50s.push(percentile(&mut client_ms, 0.5));
                raw_p50s.push(raw_p50);
            }
            println!(
                "  {label:<14} {:>7.3} / {:>7.3} | {:>7.3} | {:>7.3} | {:>7.3} ({} calls)",
                percentile(&mut client_ms, 0.5),
                percentile(&mut client_ms, 0.99),
                percentile(&mut exec_ms, 0.5),
                percentile(&mut outside_ms, 0.5),
                raw_p50,
                raw.len()
            );
        }
        let (ask_sum, raw_sum): (f64, f64) = (ask_p50s.iter().sum(), raw_p50s.iter().sum());
        println!(
            "  1 client, questions that read data: Ask p50 / raw Execute p50 = {:.2}x (sum of p50s {:.3} ms / {:.3} ms)",
            ask_sum / raw_sum,
            ask_sum,
            raw_sum
        );
        println!(
            "  outside EXECUTE, all questions: p50 {:.3} ms, p99 {:.3} ms",
            percentile(&mut outside_all, 0.5),
            percentile(&mut outside_all, 0.99)
        );
        for (name, samples) in stage_samples.iter_mut() {
            println!(
                "    {name:<12} p50 {:.3} ms  p99 {:.3} ms",
                percentile(samples, 0.5),
                percentile(samples, 0.99)
            );
        }

        // The trace commit alone: one config-list trace, written again under new ids through
        // the same group-commit writer, one at a time (so each commit also waits for the
        // writer to finish the previous trace's mirror rows, which an Ask does not).
        let sample = ask(&mut client, QUESTIONS[0].1).await;
        let mut inspector =
            ops_proto::v1::inspector_client::InspectorClient::new(demo.channel.clone());
        let trace = inspector
            .get_trace(request(
                "acme",
                ops_proto::v1::GetTraceRequest {
                    trace_id: sample.trace_id.clone(),
                },
            ))
            .await
            .expect("trace")
            .into_inner()
            .trace
            .expect("trace body");
        let (writer, writer_task) =
            ops_controlplane::trace::TraceWriter::start(
                demo.registry.db().clone(),
                ops_controlplane::config::TraceSync::Normal,
            );
        let mut commit_ms = Vec::new();
        for _ in 0..n {
            let mut copy = trace.clone();
            copy.trace_id = uuid::Uuid::new_v4().to_string();
            let started = Instant::now();
            writer
                .commit(copy, ops_controlplane::trace::Retention::default(), None)
                .await
                .expect("commit");
            commit_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        drop(writer);
        let _ = writer_task.await;
        println!(
            "  trace commit alone, back to back ({} bytes encoded): p50 {:.3} ms p99 {:.3} ms",
            prost::Message::encoded_len(&trace),
            percentile(&mut commit_ms, 0.5),
            percentile(&mut commit_ms, 0.99)
        );

        // StageTest of COMPOSE on the recorded config-list trace: the stage alone (its record's
        // duration) and the whole RPC (trace read, snapshot, the stage, the test trace's commit).
        let mut stage_ms_samples = Vec::new();
        let mut rpc_ms = Vec::new();
        for _ in 0..n {
            let started = Instant::now();
            let tested = client
                .stage_test(request(
                    "acme",
                    ops_proto::v1::StageTestRequest {
                        stage: Stage::Compose as i32,
                        baseline_trace_id: sample.trace_id.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .expect("stage test")
                .into_inner();
            rpc_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            stage_ms_samples.push(tested.result.unwrap().duration_ms);
        }
        println!(
            "  StageTest COMPOSE on a recorded trace: the stage p50 {:.3} ms p99 {:.3} ms; the RPC p50 {:.3} ms p99 {:.3} ms",
            percentile(&mut stage_ms_samples, 0.5),
            percentile(&mut stage_ms_samples, 0.99),
            percentile(&mut rpc_ms, 0.5),
            percentile(&mut rpc_ms, 0.99)
        );

        for clients in [1usize, 16] {
            let per_client = 400 / clients.max(1);
            let started = Instant::now();
            let mut tasks = Vec::new();
            for c in 0..clients {
                let channel = demo.channel.clone();
                tasks.push(tokio::spawn(async move {
                    let mut client = OpsServiceClient::new(channel);
                    let mut samples = Vec::new();
                    for i in 0..per_client {
                        let q = QUESTIONS[(c + i) % QUESTIONS.len()].1;
                        let t = Instant::now();
                        ask(&mut client, q).await;
                        samples.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    samples
                }));
            }
            let mut samples = Vec::new();
            for t in tasks {
                samples.extend(t.await.unwrap());
            }
            let elapsed = started.elapsed().as_secs_f64();
            let count = samples.len();
            // The same mix of plans, sent straight to the sidecars.
            let mut raws = Vec::new();
            for (_, q) in QUESTIONS {
                raws.push(Arc::new(raw_requests(&executors, &demo, q).await));
            }
            let raw_started = Instant::now();
            let mut raw_tasks = Vec::new();
            for c in 0..clients {
                let executors = executors.clone();
                let raws = raws.clone();
                raw_tasks.push(tokio::spawn(async move {
                    let mut samples = Vec::new();
                    for i in 0..per_client {
                        let t = Instant::now();
                        run_raw(&executors, &raws[(c + i) % raws.len()]).await;
                        samples.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    samples
                }));
            }
            let mut raw_samples = Vec::new();
            for t in raw_tasks {
                raw_samples.extend(t.await.unwrap());
            }
            let raw_elapsed = raw_started.elapsed().as_secs_f64();
            let asks_per_s = count as f64 / elapsed;
            let plans_per_s = raw_samples.len() as f64 / raw_elapsed;
            println!(
                "\n{clients} clients: Ask throughput / raw plans/s = {:.2}x; Ask p50 / raw p50 = {:.2}x",
                asks_per_s / plans_per_s,
                percentile(&mut samples.clone(), 0.5) / percentile(&mut raw_samples.clone(), 0.5)
            );
            println!(
                "\n{clients} concurrent clients, {count} asks of the mix: Ask p50 {:.3} ms p99 {:.3} ms, {:.0} asks/s | raw Execute of the same plans p50 {:.3} ms p99 {:.3} ms, {:.0} plans/s",
                percentile(&mut samples, 0.5),
                percentile(&mut samples, 0.99),
                count as f64 / elapsed,
                percentile(&mut raw_samples, 0.5),
                percentile(&mut raw_samples, 0.99),
                raw_samples.len() as f64 / raw_elapsed,
            );
        }
        demo.stop().await;
    });
}
