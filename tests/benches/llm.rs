//! What the LLM path costs (one run). (1) Ask latency at one client over the public questions
//! with `[llm] mode = "off"` and `"fallback"` (a loopback LLM server that would answer at
//! once): the deterministic planner knows these questions, so fallback must equal off within
//! noise and call the LLM never; the two servers are asked in turns, so drift hits both.
//! (2) The client's own cost per call: `Llm::chat` against a loopback server answering at
//! once, beside a bare HTTP POST of the same body to it, and the planner's prompt build and
//! reply parse on plant-ops. `cargo bench -p ops-tests --bench llm`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../executor_support/mod.rs"]
mod executor_support;
#[path = "../llm_support/mod.rs"]
mod llm_support;
#[path = "../pipeline_support/mod.rs"]
mod pipeline_support;
#[path = "../planner_support/mod.rs"]
mod planner_support;

use std::time::Instant;

use llm_support::{Scripted, ScriptedLlm};
use ops_controlplane::config::{ExecutorMode, LlmConfig, LlmMode};
use ops_controlplane::llm::{Llm, Message, Request};
use ops_controlplane::route_plan::llm_plan;
use ops_proto::v1::AskRequest;
use ops_proto::v1::ops_service_client::OpsServiceClient;

const ROUNDS: usize = 5;
const CALLS: usize = 2_000;

fn percentile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[((samples.len() - 1) as f64 * q) as usize]
}

fn questions() -> Vec<(String, String)> {
    ops_datasets::plant_ops::QUESTIONS_JSONL
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let q: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                q["question"].as_str().unwrap().to_owned(),
                q["as_of"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn config(url: &str, mode: LlmMode) -> LlmConfig {
    LlmConfig {
        mode,
        endpoint: url.to_owned(),
        model: "bench-model".into(),
        ..LlmConfig::default()
    }
}

async fn ask(client: &mut OpsServiceClient<tonic::transport::Channel>, q: &(String, String)) {
    let request = pipeline_support::request(
        "acme",
        AskRequest {
            question: q.0.clone(),
            as_of: ops_proto::convert::parse_rfc3339(&q.1),
            ..Default::default()
        },
    );
    client.ask(request).await.expect("answered");
}

async fn ask_latency() {
    let server = ScriptedLlm::start().await;
    server.otherwise(Scripted::plan(
        serde_json::json!({"mode": "history", "intent": "LIST"}),
    ));
    let off = pipeline_support::start_demo_with(ExecutorMode::Spawn, |_| {}).await;
    let url = server.url.clone();
    let fallback = pipeline_support::start_demo_with(ExecutorMode::Spawn, move |c| {
        c.llm = config(&url, LlmMode::Fallback);
    })
    .await;
    let questions = questions();
    let mut clients = [
        OpsServiceClient::new(off.channel.clone()),
        OpsServiceClient::new(fallback.channel.clone()),
    ];
    for client in &mut clients {
        for q in &questions {
            ask(client, q).await;
        }
    }
    let mut samples = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for q in &questions {
            for (i, client) in clients.iter_mut().enumerate() {
                let started = Instant::now();
                ask(client, q).await;
                samples[i].push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    let [mut off_ms, mut fallback_ms] = samples;
    let asks = off_ms.len();
    let (off_p50, fallback_p50) = (
        percentile(&mut off_ms, 0.5),
        percentile(&mut fallback_ms, 0.5),
    );
    println!(
        "Ask at 1 client, {} public questions × {ROUNDS} rounds ({asks} asks each, in turns): off p50 {off_p50:.2} ms, fallback p50 {fallback_p50:.2} ms: fallback/off = {:.3}; LLM calls made: {}",
        questions.len(),
        fallback_p50 / off_p50,
        server.calls()
    );
    off.stop().await;
    fallback.stop().await;
}

async fn client_overhead() {
    let server = ScriptedLlm::start().await;
    server.otherwise(Scripted::plan(
        serde_json::json!({"mode": "history", "intent": "LIST"}),
    ));
    let llm = Llm::from_config(&config(&server.url, LlmMode::Primary))
        .unwrap()
        .unwrap();
    let messages = || {
        vec![
            Message::system("You are the planner."),
            Message::user("{\"question\":\"what's going on at the plant?\"}"),
        ]
    };
    let request = || Request {
        purpose: "planner",
        prompt: None,
        model: "",
        messages: messages(),
        json: true,
    };
    let body = serde_json::json!({
        "model": "bench-model",
        "messages": [{"role": "system", "content": "You are the planner."}, {"role": "user", "content": "{\"question\":\"what's going on at the plant?\"}"}],
        "max_tokens": 800, "temperature": 0, "response_format": {"type": "json_object"}
    })
    .to_string();
    let raw = reqwest::Client::builder().build().unwrap();
    for _ in 0..200 {
        llm.chat(request()).await.content.unwrap();
        raw.post(&server.url)
            .body(body.clone())
            .send()
            .await
            .unwrap();
    }
    let (mut chat, mut bare) = (Vec::with_capacity(CALLS), Vec::with_capacity(CALLS));
    for _ in 0..CALLS {
        let started = Instant::now();
        llm.chat(request()).await.content.unwrap();
        chat.push(started.elapsed().as_secs_f64() * 1e6);
        let started = Instant::now();
        let reply = raw
            .post(&server.url)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        reply.bytes().await.unwrap();
        bare.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let (chat_p50, bare_p50) = (percentile(&mut chat, 0.5), percentile(&mut bare, 0.5));
    println!(
        "LLM client per call, {CALLS} calls, loopback server answering at once (p50, µs): Llm::chat {chat_p50:.1}, bare POST {bare_p50:.1}: the client's own cost {:.1} µs (×{:.2})",
        chat_p50 - bare_p50,
        chat_p50 / bare_p50
    );
}

fn prompt_cost() {
    let knowledge = planner_support::knowledge("acme");
    let as_of = time::OffsetDateTime::now_utc();
    let reply = serde_json::json!({"mode": "metric", "ci_codes": ["GT-01"], "metric": {"metric": "cpu_usage", "aggregation": "avg"}}).to_string();
    let (mut build, mut parse) = (Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..CALLS {
        let started = Instant::now();
        let (system, user) = llm_plan::messages(
            &knowledge,
            "",
            None,
            "what's going on at the plant?",
            None,
            as_of,
        );
        build.push(started.elapsed().as_secs_f64() * 1e6);
        size = system.len() + user.len();
        let started = Instant::now();
        std::hint::black_box(llm_plan::parse_reply(&knowledge, &reply, as_of).unwrap());
        parse.push(started.elapsed().as_secs_f64() * 1e6);
    }
    println!(
        "planner prompt on plant-ops: build p50 {:.1} µs ({size} bytes), reply parse p50 {:.1} µs",
        percentile(&mut build, 0.5),
        percentile(&mut parse, 0.5)
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    prompt_cost();
    runtime.block_on(client_overhead());
    runtime.block_on(ask_latency());
}
