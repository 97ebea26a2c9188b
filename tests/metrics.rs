//! The Prometheus endpoint of a real opsd with real sidecars: after every public question,
//! `curl /metrics` shows one ask per question and, per stage, as many stage observations as
//! the answers' own stage timings list; executor calls are counted by kind and endpoint; RPCs,
//! trace commits, snapshot loads and plugin calls are counted.
//! (Its own test binary: the metrics are process-wide.)
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod executor_support;
mod pipeline_support;

use std::collections::BTreeMap;
use std::process::Command;

use ops_controlplane::config::ExecutorMode;
use ops_proto::v1::Stage;
use ops_proto::v1::ops_service_client::OpsServiceClient;
use pipeline_support::question_request;
use serde_json::Value as Json;

/// Sum of a metric's samples whose labels contain every `label="value"` given.
fn sum(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_counts_every_ask_and_stage() {
    // A free port for the metrics listener (the server binds it itself).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let demo = pipeline_support::start_demo_with(ExecutorMode::Connect, |config| {
        config.metrics.listen = listen.clone();
    })
    .await;
    let mut ops = OpsServiceClient::new(demo.channel.clone());

    let mut asked = 0.0;
    let mut by_tenant: BTreeMap<String, f64> = BTreeMap::new();
    let mut stages: BTreeMap<String, f64> = BTreeMap::new();
    for line in ops_datasets::plant_ops::QUESTIONS_JSONL
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let q: Json = serde_json::from_str(line).unwrap();
        let response = ops
            .ask(question_request(&q))
            .await
            .expect("answered")
            .into_inner();
        asked += 1.0;
        *by_tenant
            .entry(q["tenant"].as_str().unwrap().to_owned())
            .or_default() += 1.0;
        for timing in response.meta.map(|m| m.timings).unwrap_or_default() {
            let stage = Stage::try_from(timing.stage).unwrap().as_str_name();
            let stage = stage.trim_start_matches("STAGE_").to_lowercase();
            *stages.entry(stage).or_default() += 1.0;
        }
    }
    assert_eq!(asked, 40.0);

    let out = Command::new("curl")
        .args(["-sS", "--fail", &format!("http://{listen}/metrics")])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(sum(&text, "ops_asks_total", &[]), asked, "{text}");
    for (tenant, count) in &by_tenant {
        let label = format!("tenant=\"{tenant}\"");
        assert_eq!(sum(&text, "ops_asks_total", &[&label]), *count, "{tenant}");
    }
    assert_eq!(sum(&text, "ops_ask_duration_seconds_count", &[]), asked);
    assert!(stages.contains_key("route_plan") && stages.contains_key("present"));
    for (stage, count) in &stages {
        let label = format!("stage=\"{stage}\"");
        assert_eq!(
            sum(&text, "ops_stage_duration_seconds_count", &[&label]),
            *count,
            "{stage}"
        );
    }
    // Every kind of executor the public questions use was called, on a real endpoint.
    for kind in ["sql", "metric", "graph"] {
        let label = format!("kind=\"{kind}\"");
        assert!(
            sum(
                &text,
                "ops_executor_calls_total",
                &[&label, "outcome=\"ok\""]
            ) > 0.0,
            "{kind}: {text}"
        );
    }
    assert!(text.contains("# TYPE ops_stage_duration_seconds histogram"));
    // Every RPC is counted by code; the trace writer committed one trace per ask; snapshots
    // came from the cache or were rebuilt once per tenant; the built-in plugins ran.
    assert_eq!(
        sum(
            &text,
            "ops_rpc_calls_total",
            &["method=\"Ask\"", "code=\"OK\""]
        ),
        asked
    );
    assert_eq!(
        sum(&text, "ops_traces_committed_total", &["outcome=\"ok\""]),
        asked
    );
    let commits = sum(&text, "ops_trace_commit_duration_seconds_count", &[]);
    assert!(commits >= 1.0 && commits <= asked, "{commits}");
    assert!(sum(&text, "ops_snapshot_loads_total", &[]) >= asked);
    assert!(sum(&text, "ops_snapshot_loads_total", &["result=\"rebuilt\""]) >= 1.0);
    let plugin_calls = sum(&text, "ops_plugin_calls_total", &["outcome=\"ok\""]);
    assert!(plugin_calls > 0.0, "{text}");
    assert_eq!(
        sum(&text, "ops_plugin_call_duration_seconds_count", &[]),
        plugin_calls
    );
    assert!(text.contains("ops_trace_queue_depth"));
    demo.stop().await;
}
