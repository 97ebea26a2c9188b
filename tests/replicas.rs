//! Two `opsd` replicas (real child processes) on one PostgreSQL database, sharing the three
//! real sidecars in `connect` mode: both answer the public questions at once (40/40 through
//! each); under 16 clients, a `kill -9` of one leaves every request answered by the survivor
//! after a client retry, each answer with exactly one committed trace (and one audit record);
//! a publish through one replica is seen by the other within the snapshot recheck interval;
//! the Policy's rate limit holds across both together.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod answer_support;
mod common;
mod executor_support;
mod pipeline_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use answer_support::{ask_file, plant_ops_data};
use common::{Backend, TestDatabase};
use executor_support::{GRAPH, METRICS, SQL, Sidecar};
use ops_controlplane::server;
use ops_datasets::plant_ops;
use ops_proto::v1::asset_registry_client::AssetRegistryClient;
use ops_proto::v1::inspector_client::InspectorClient;
use ops_proto::v1::ops_service_client::OpsServiceClient;
use ops_proto::v1::{AskRequest, BundleFile, ImportBundleRequest, Route};
use pipeline_support::{question_request, request};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const RECHECK_MS: u64 = 1000;

/// One `opsd serve` child process; killed (SIGKILL) when dropped.
struct Replica {
    child: std::process::Child,
    channel: Channel,
}

impl Replica {
    async fn start(database: &TestDatabase, sidecars: &[Sidecar]) -> Self {
        let endpoints = |i: usize| format!("[\"{}\"]", sidecars[i].uri());
        let recheck = RECHECK_MS.to_string();
        let (child, addr, before) = common::spawn_opsd(
            "serve",
            database.dir.path(),
            &[
                ("OPS__STORAGE__URL", database.url.as_str()),
                ("OPS__EXECUTORS__MODE", "connect"),
                ("OPS__EXECUTORS__SQL_ENDPOINTS", endpoints(0).as_str()),
                ("OPS__EXECUTORS__METRICS_ENDPOINTS", endpoints(1).as_str()),
                ("OPS__EXECUTORS__GRAPH_ENDPOINTS", endpoints(2).as_str()),
                ("OPS__REGISTRY__SNAPSHOT_RECHECK_MS", recheck.as_str()),
            ],
        );
        assert!(before.is_empty(), "unexpected first lines {before:?}");
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("connect to the replica");
        Self { child, channel }
    }

    /// `kill -9`: no draining, no goodbye.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn public_questions() -> Vec<serde_json::Value> {
    plant_ops::QUESTIONS_JSONL
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A question's answer from `replicas[first]`, or after a transport failure from the next
/// replica that answers (what a client behind a load balancer does).
async fn ask_with_retry(
    replicas: &[OpsServiceClient<Channel>],
    first: usize,
    q: &serde_json::Value,
) -> (String, usize) {
    let mut target = first;
    for _ in 0..20 {
        match replicas[target].clone().ask(question_request(q)).await {
            Ok(answer) => return (answer.into_inner().trace_id, target),
            Err(status)
                if matches!(
                    status.code(),
                    Code::Unavailable | Code::Unknown | Code::Cancelled
                ) =>
            {
                target = (target + 1) % replicas.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("{}: {status:?}", q["id"]),
        }
    }
    panic!("{}: no replica answered", q["id"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_postgres_answer_survive_a_kill_and_share_publishes_and_limits() {
    let database = TestDatabase::create(Backend::Postgres).await;
    // The demo's data (plant-ops as a SQLite source file in the shared data dir) and its
    // assets, published once into the shared registry.
    let registry = server::open_registry(&database.config())
        .await
        .expect("registry");
    ops_controlplane::demo::prepare(database.dir.path(), &registry)
        .await
        .expect("demo data and assets");
    let db = registry.db().clone();
    let mut sidecars = Vec::new();
    for program in [&*SQL, &*METRICS, &*GRAPH] {
        sidecars.push(Sidecar::start(program).await);
    }
    let mut a = Replica::start(&database, &sidecars).await;
    let b = Replica::start(&database, &sidecars).await;

    // 1. The public questions through both replicas at once: 40/40 through each.
    let data = plant_ops_data();
    let (mut ops_a, mut inspector_a) = (
        OpsServiceClient::new(a.channel.clone()),
        InspectorClient::new(a.channel.clone()),
    );
    let (mut ops_b, mut inspector_b) = (
        OpsServiceClient::new(b.channel.clone()),
        InspectorClient::new(b.channel.clone()),
    );
    let (through_a, through_b) = tokio::join!(
        ask_file(
            &mut ops_a,
            &mut inspector_a,
            plant_ops::QUESTIONS_JSONL,
            &data
        ),
        ask_file(
            &mut ops_b,
            &mut inspector_b,
            plant_ops::QUESTIONS_JSONL,
            &data
        ),
    );
    let total = public_questions().len();
    println!(
        "replica A: {}/{total}, replica B: {}/{total}",
        through_a.passed, through_b.passed
    );
    assert!(through_a.failures.is_empty(), "{:#?}", through_a.failures);
    assert!(through_b.failures.is_empty(), "{:#?}", through_b.failures);
    assert_eq!((through_a.passed, through_b.passed), (total, total));

    // 2. 16 clients share the two replicas; A is killed with SIGKILL mid-load. Every request
    // is answered (by B after a retry), and each answer has exactly one committed trace.
    let clients = [ops_a.clone(), ops_b.clone()];
    let questions = Arc::new(public_questions());
    let answered = Arc::new(AtomicUsize::new(0));
    const PER_CLIENT: usize = 8;
    let mut load = Vec::new();
    for client in 0..16 {
        let (clients, questions, answered) = (clients.clone(), questions.clone(), answered.clone());
        load.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in 0..PER_CLIENT {
                let q = &questions[(client * PER_CLIENT + i) % questions.len()];
                let (trace_id, by) = ask_with_retry(&clients, (client + i) % 2, q).await;
                answered.fetch_add(1, Ordering::SeqCst);
                answers.push((trace_id, q["question"].as_str().unwrap().to_owned(), by));
            }
            answers
        }));
    }
    let loading = Instant::now();
    while answered.load(Ordering::SeqCst) < 24 {
        assert!(
            loading.elapsed() < Duration::from_secs(120),
            "the load stalled before the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.kill();
    let killed_after = answered.load(Ordering::SeqCst);
    let mut answers = Vec::new();
    for client in load {
        answers.extend(client.await.expect("client"));
    }
    assert_eq!(answers.len(), 16 * PER_CLIENT, "every request answered");
    let by_b = answers.iter().filter(|(_, _, by)| *by == 1).count();
    println!(
        "kill -9 after {killed_after} answers; {} requests answered, {by_b} by the survivor",
        answers.len()
    );
    assert!(killed_after < answers.len(), "the kill happened under load");
    for (trace_id, question, _) in &answers {
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT question FROM traces WHERE trace_id = $1")
                .bind(trace_id)
                .fetch_all(db.pool())
                .await
                .unwrap();
        assert_eq!(stored, vec![question.clone()], "trace {trace_id}");
        let audited: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE trace_id = $1")
            .bind(trace_id)
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(audited, 1, "audit record of trace {trace_id}");
    }
    let mut ids: Vec<&String> = answers.iter().map(|(id, _, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), answers.len(), "one trace per answer");

    // 3. A replacement replica; a Policy published through it (a new reject rule and a
    // per-principal limit) is seen by B within the recheck interval.
    drop(a);
    let a = Replica::start(&database, &sidecars).await;
    let probe = |principal: &str| {
        let mut ask = request(
            "acme",
            AskRequest {
                question: "zebra-unicorn status".into(),
                ..Default::default()
            },
        );
        ask.metadata_mut()
            .insert("x-ops-principal", principal.parse().unwrap());
        ask
    };
    let mut ops_b = OpsServiceClient::new(b.channel.clone());
    let before = ops_b.ask(probe("watcher")).await.unwrap().into_inner();
    assert_ne!(before.route, Route::Reject as i32, "{before:?}");
    let policy = ops_controlplane::demo::PLANT_OPS_POLICY_YAML
        .replace(
            "  reject_rules:\n",
            "  reject_rules:\n    - name: replica_probe\n      reason: \"zebra-unicorns are not ours to discuss\"\n      terms: [zebra-unicorn]\n",
        )
        .replace(
            "rate_limit: {requests_per_minute: 600, requests_per_hour: 20000}",
            "rate_limit: {requests_per_minute: 600, requests_per_hour: 20000, principal_requests_per_minute: 4}",
        );
    assert!(policy.contains("replica_probe") && policy.contains("principal_requests_per_minute"));
    AssetRegistryClient::new(a.channel.clone())
        .import_bundle(request(
            "acme",
            ImportBundleRequest {
                files: vec![BundleFile {
                    path: "policy.yaml".into(),
                    content: policy.into_bytes(),
                }],
                publish: true,
                ..Default::default()
            },
        ))
        .await
        .expect("published through A");
    let published = Instant::now();
    let seen = loop {
        let answer = ops_b.ask(probe("watcher")).await.unwrap().into_inner();
        if answer.route == Route::Reject as i32 {
            assert!(answer.answer.contains("zebra-unicorns"), "{answer:?}");
            break published.elapsed();
        }
        assert!(
            published.elapsed() < Duration::from_millis(RECHECK_MS * 3),
            "B still answers from the old Policy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("publish through A seen by B after {seen:?} (recheck {RECHECK_MS} ms)");
    assert!(seen <= Duration::from_millis(RECHECK_MS + 500), "{seen:?}");

    // 4. The per-principal limit (4 a minute) holds across both replicas together.
    let second = time::OffsetDateTime::now_utc().second();
    if second > 40 {
        // Stay inside one minute window.
        tokio::time::sleep(Duration::from_secs(u64::from(61 - second))).await;
    }
    let mut ops_a = OpsServiceClient::new(a.channel.clone());
    let (mut admitted, mut refused) = (0, 0);
    for i in 0..10 {
        let client = if i % 2 == 0 { &mut ops_a } else { &mut ops_b };
        match client.ask(probe("rate-probe")).await {
            Ok(_) => admitted += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(
                    status.message().contains("principal rate-probe"),
                    "{status:?}"
                );
                let retry = status
                    .get_details_retry_info()
                    .and_then(|r| r.retry_delay)
                    .expect("a retry hint");
                assert!(retry > Duration::ZERO && retry <= Duration::from_secs(60));
                refused += 1;
            }
        }
    }
    println!("rate limit across replicas: {admitted} admitted, {refused} refused");
    assert_eq!((admitted, refused), (4, 6));
    // Another principal of the same tenant is not held back by rate-probe's limit.
    ops_a
        .ask(probe("someone-else"))
        .await
        .expect("another principal");

    drop((a, b));
    for sidecar in sidecars {
        sidecar.stop_and_logs().await;
    }
    db.close().await;
    database.cleanup().await;
}
