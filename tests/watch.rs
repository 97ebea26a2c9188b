//! What opsd runs on its own, with a real HTTP receiver on loopback: a Policy's
//! `regression_schedule` fires on its cron, a failing scheduled run's alert reaches the webhook
//! (retried while the receiver answers 500, signed with the alert's secret), and deliveries,
//! runs and a golden query's trend read back; webhook delivery retries server errors and
//! connection failures, stops at a refusal and never records the URL's token.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod executor_support;
mod pipeline_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use ops_controlplane::config::{ExecutorMode, WebhookConfig};
use ops_controlplane::context::CallerContext;
use ops_controlplane::storage::Db;
use ops_controlplane::watch::alerts::AlertStore;
use ops_controlplane::watch::webhook::{Target, Webhooks};
use ops_datasets::plant_ops;
use ops_proto::v1::alerts_client::AlertsClient;
use ops_proto::v1::regression_client::RegressionClient;
use ops_proto::v1::{
    AlertConfig, AlertRule, AskRequest, CreateAlertRequest, CreateGoldenQueryRequest,
    GetGoldenQueryTrendRequest, Judgment, ListAlertDeliveriesRequest, ListRegressionRunsRequest,
    RegressionTrigger,
};
use pipeline_support::request;
use sqlx::Row;
use tonic::Code;

const POLICY: &str = include_str!("../datasets/plant-ops/assets/policy.yaml");

#[derive(Debug, Clone)]
struct Received {
    delivery: String,
    event: String,
    signature: String,
    body: String,
    answered: u16,
}

/// A real HTTP/1.1 server on loopback; `answer(n)` is the status of the n-th request (from 0).
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(answer: fn(usize) -> u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/ops", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let log = log.clone();
                            async move {
                                let header = |name: &str| {
                                    req.headers()
                                        .get(name)
                                        .and_then(|v| v.to_str().ok())
                                        .unwrap_or_default()
                                        .to_owned()
                                };
                                let (delivery, event, signature) = (
                                    header("x-ops-delivery"),
                                    header("x-ops-event"),
                                    header("x-ops-signature"),
                                );
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let mut log = log.lock().unwrap();
                                let answered = answer(log.len());
                                log.push(Received {
                                    delivery,
                                    event,
                                    signature,
                                    body: String::from_utf8_lossy(&body).into_owned(),
                                    answered,
                                });
                                hyper::Response::builder()
                                    .status(answered)
                                    .body(http_body_util::Full::new(hyper::body::Bytes::new()))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, seen }
    }

    fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

fn sign(secret: &str, body: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The Policy of the demo with a regression schedule.
fn policy_with_schedule(cron: &str) -> String {
    let mut policy: serde_yaml::Value = serde_yaml::from_str(POLICY).unwrap();
    policy["spec"]["regression_schedule"] = cron.into();
    serde_yaml::to_string(&policy).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_fires_on_its_cron_and_its_failure_reaches_the_webhook() {
    let demo = pipeline_support::start_demo_with(ExecutorMode::Spawn, |config| {
        config.watch.schedule_tick_ms = 200;
        config.watch.alert_interval_ms = 200;
        config.watch.webhook.initial_backoff_ms = 50;
    })
    .await;
    let mut regression = RegressionClient::new(demo.channel.clone());
    let mut alerts = AlertsClient::new(demo.channel.clone());
    let receiver = Receiver::start(|n| if n < 2 { 500 } else { 200 }).await;
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("webhook-key");
    std::fs::write(&secret_file, "hook-signing-key\n").unwrap();

    // A golden query whose answer cannot contain what it expects: every run fails it.
    let first: serde_json::Value = plant_ops::QUESTIONS_JSONL
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .find(|q: &serde_json::Value| q["tenant"] == "acme")
        .unwrap();
    let golden = regression
        .create_golden_query(request(
            "acme",
            CreateGoldenQueryRequest {
                name: "never-satisfied".into(),
                request: Some(AskRequest {
                    question: first["question"].as_str().unwrap().into(),
                    as_of: ops_proto::convert::parse_rfc3339(first["as_of"].as_str().unwrap()),
                    ..Default::default()
                }),
                expected_values: vec!["NO-SUCH-CODE-9999".into()],
                ..Default::default()
            },
        ))
        .await
        .expect("golden query")
        .into_inner()
        .golden_query
        .unwrap();

    // Bad alerts are refused field by field; a good one is created.
    let refused = alerts
        .create_alert(request(
            "acme",
            CreateAlertRequest {
                alert: Some(AlertConfig {
                    name: "oncall".into(),
                    rule: AlertRule::RegressionFailed as i32,
                    webhook_url: "not a url".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("alert.webhook_url"),
        "{}",
        refused.message()
    );
    let alert = alerts
        .create_alert(request(
            "acme",
            CreateAlertRequest {
                alert: Some(AlertConfig {
                    name: "oncall".into(),
                    rule: AlertRule::RegressionFailed as i32,
                    webhook_url: receiver.url.clone(),
                    secret_ref: format!("file:{}", secret_file.display()),
                    ..Default::default()
                }),
            },
        ))
        .await
        .expect("alert")
        .into_inner()
        .alert
        .unwrap();

    // A Policy whose schedule is not cron is refused; every second is accepted.
    let bad = demo
        .registry
        .import(
            &CallerContext::new("acme", "test-admin"),
            vec![ops_proto::v1::BundleFile {
                path: "policy.yaml".into(),
                content: policy_with_schedule("every morning").into_bytes(),
            }],
            true,
            false,
        )
        .await;
    let bad = match bad {
        Ok(_) => panic!("a schedule that is not cron is refused"),
        Err(error) => format!("{error:?}"),
    };
    assert!(bad.contains("regression_schedule"), "{bad}");
    demo.publish(
        "acme",
        vec![("policy.yaml", policy_with_schedule("*/1 * * * * *"))],
    )
    .await;

    let delivered = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Some(ok) = receiver.seen().into_iter().find(|r| r.answered == 200) {
                return ok;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("a failing scheduled run's alert reaches the webhook within a minute");

    // The receiver answered 500 twice: the same delivery came a third time and was accepted.
    let attempts: Vec<Received> = receiver
        .seen()
        .into_iter()
        .filter(|r| r.delivery == delivered.delivery)
        .collect();
    assert_eq!(
        attempts.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert_eq!(delivered.event, "regression_failed");
    assert_eq!(
        delivered.signature,
        sign("hook-signing-key", &delivered.body)
    );
    let payload: serde_json::Value = serde_json::from_str(&delivered.body).unwrap();
    assert_eq!(payload["alert"]["id"], alert.id.as_str());
    assert_eq!(payload["tenant"], "acme");
    assert_eq!(payload["details"]["trigger"], "schedule");
    assert_eq!(
        payload["details"]["failing"][0]["golden_query"],
        "never-satisfied"
    );
    assert_eq!(payload["delivery_id"], delivered.delivery.as_str());
    assert!(
        payload["summary"]
            .as_str()
            .unwrap()
            .contains("never-satisfied"),
        "{payload}"
    );

    // The delivery's record: delivered on the third attempt.
    let deliveries = alerts
        .list_alert_deliveries(request(
            "acme",
            ListAlertDeliveriesRequest {
                alert_id: alert.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .deliveries;
    let record = deliveries
        .iter()
        .find(|d| d.id == delivered.delivery)
        .expect("the delivery is recorded");
    assert_eq!(
        (record.status.as_str(), record.attempts, record.http_status),
        ("delivered", 3, 200)
    );
    assert_eq!(record.payload, delivered.body);

    // The scheduled runs: on whole seconds, one per occurrence, each recorded with its run.
    let fired: Vec<(i64, Option<String>)> = sqlx::query(
        "SELECT fire_at, run_id FROM scheduled_runs WHERE tenant_id = 'acme' ORDER BY fire_at",
    )
    .fetch_all(demo.registry.db().pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert!(!fired.is_empty());
    assert!(fired.iter().all(|(at, _)| at % 1_000_000 == 0), "{fired:?}");
    let runs = regression
        .list_regression_runs(request("acme", ListRegressionRunsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .runs;
    let scheduled: Vec<_> = runs
        .iter()
        .filter(|r| r.trigger == RegressionTrigger::Schedule as i32)
        .collect();
    assert!(!scheduled.is_empty());
    assert!(
        scheduled
            .iter()
            .all(|r| r.failed == 1 && r.results.len() == 1)
    );
    assert!(
        fired
            .iter()
            .filter_map(|(_, run)| run.as_deref())
            .all(|id| runs.iter().any(|r| r.id == id)),
        "every recorded scheduled run id is a stored run"
    );

    // The golden query's trend: one failing judgment per scheduled run, newest first.
    let trend = regression
        .get_golden_query_trend(request(
            "acme",
            GetGoldenQueryTrendRequest {
                golden_query_id: golden.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(trend.judgments.len() >= scheduled.len());
    assert_eq!(trend.failed as usize, trend.judgments.len());
    assert!(
        trend
            .judgments
            .iter()
            .all(|j| j.judgment == Judgment::Fail as i32
                && j.trigger == RegressionTrigger::Schedule as i32
                && j.verdict_reason.contains("NO-SUCH-CODE-9999"))
    );
    assert!(
        trend.judgments.windows(2).all(|w| w[0]
            .started_at
            .as_ref()
            .map(ops_proto::convert::micros)
            >= w[1].started_at.as_ref().map(ops_proto::convert::micros))
    );
    let missing = regression
        .get_golden_query_trend(request(
            "acme",
            GetGoldenQueryTrendRequest {
                golden_query_id: "no-such-id".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    demo.stop().await;
}

#[tokio::test]
async fn deliveries_retry_server_errors_and_connection_failures_and_stop_at_a_refusal() {
    let db = Db::open("sqlite::memory:", 1, None).await.unwrap();
    let config = WebhookConfig {
        timeout_ms: 2000,
        max_attempts: 3,
        initial_backoff_ms: 10,
        max_backoff_ms: 40,
    };
    let webhooks = Webhooks::new(db.clone(), &config).unwrap();
    let target = |url| Target {
        tenant: "acme",
        alert_id: "alert-1",
        url,
        secret_ref: "",
    };
    let payload = || serde_json::json!({"summary": "test"});

    let down = Receiver::start(|_| 503).await;
    let out = webhooks
        .deliver(&target(&down.url), "regression_failed", payload())
        .await
        .unwrap();
    assert!(!out.delivered);
    assert_eq!(out.attempts, 3);
    assert_eq!(down.seen().len(), 3, "503 is retried up to max_attempts");

    let gone = Receiver::start(|_| 404).await;
    let out = webhooks
        .deliver(&target(&gone.url), "regression_failed", payload())
        .await
        .unwrap();
    assert_eq!((out.delivered, out.attempts), (false, 1), "404 is final");

    // Nobody listens there: retried, and the recorded error does not carry the URL's token.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused_url = format!(
        "http://{}/hook?token=s3cr3t-token",
        closed.local_addr().unwrap()
    );
    drop(closed);
    let out = webhooks
        .deliver(&target(&refused_url), "regression_failed", payload())
        .await
        .unwrap();
    assert_eq!((out.delivered, out.attempts), (false, 3));

    // A secret that cannot be read: nothing is sent unsigned.
    let unsigned = Receiver::start(|_| 200).await;
    let out = webhooks
        .deliver(
            &Target {
                secret_ref: "file:/nonexistent/ops-webhook-key",
                ..target(&unsigned.url)
            },
            "regression_failed",
            payload(),
        )
        .await
        .unwrap();
    assert_eq!((out.delivered, out.attempts), (false, 0));
    assert!(unsigned.seen().is_empty());

    // A delivery an opsd left pending long ago is closed as failed; a recent one is not.
    for (id, age_s) in [("abandoned", 3600), ("in-progress", 1)] {
        sqlx::query(
            "INSERT INTO alert_deliveries (delivery_id, alert_id, tenant_id, event, payload, status, created_at) \
             VALUES ($1, 'alert-2', 'acme', 'regression_failed', '{}', 'pending', $2)",
        )
        .bind(id)
        .bind(ops_controlplane::storage::unix_micros() - age_s * 1_000_000)
        .execute(db.pool())
        .await
        .unwrap();
    }
    assert_eq!(webhooks.close_abandoned().await.unwrap(), 1);
    let statuses: Vec<(String, String)> =
        sqlx::query("SELECT delivery_id, status FROM alert_deliveries WHERE alert_id = 'alert-2' ORDER BY delivery_id")
            .fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    assert_eq!(
        statuses,
        [
            ("abandoned".to_owned(), "failed".to_owned()),
            ("in-progress".to_owned(), "pending".to_owned())
        ]
    );

    let records = AlertStore::new(db)
        .deliveries(&CallerContext::new("acme", "admin"), "alert-1", 0, "")
        .await
        .unwrap()
        .0;
    assert_eq!(records.len(), 4);
    let refused = records
        .iter()
        .find(|d| d.attempts == 3 && d.http_status == 0)
        .unwrap();
    assert_eq!(refused.status, "failed");
    assert!(!refused.last_error.is_empty());
    assert!(
        !refused.last_error.contains("s3cr3t"),
        "{}",
        refused.last_error
    );
    assert!(
        records
            .iter()
            .any(|d| d.http_status == 503 && d.attempts == 3)
    );
    assert!(
        records
            .iter()
            .any(|d| d.http_status == 404 && d.attempts == 1)
    );
    assert!(
        records
            .iter()
            .any(|d| d.attempts == 0 && d.last_error.contains("cannot be read")),
        "{records:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_minutes_roll_up_into_performance_records_read_by_the_inspector_and_rca() {
    use ops_controlplane::trace::rollup::{self, MINUTE_MICROS};
    use ops_proto::v1::GetPerformanceRequest;
    use ops_proto::v1::inspector_client::InspectorClient;
    use ops_proto::v1::ops_service_client::OpsServiceClient;

    // The watch's own rollup waits for minutes to close; this test rolls up directly.
    let demo = pipeline_support::start_demo_with(ExecutorMode::Spawn, |config| {
        config.watch.enabled = false;
    })
    .await;
    let db = demo.registry.db().clone();
    let mut ops = OpsServiceClient::new(demo.channel.clone());
    let started = ops_controlplane::storage::unix_micros();
    let questions: Vec<serde_json::Value> = plant_ops::QUESTIONS_JSONL
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|q: &serde_json::Value| q["tenant"] == "acme")
        .take(24)
        .collect();
    for q in &questions {
        ops.ask(request(
            "acme",
            AskRequest {
                question: q["question"].as_str().unwrap().into(),
                as_of: ops_proto::convert::parse_rfc3339(q["as_of"].as_str().unwrap()),
                ..Default::default()
            },
        ))
        .await
        .expect("ask");
    }
    // The mirror rows (stage runs) follow the answers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = ops_controlplane::storage::unix_micros();
    let mut minute = started - started.rem_euclid(MINUTE_MICROS);
    let first = minute;
    let mut written = 0;
    while minute <= now {
        let metrics = rollup::minute(&db, minute).await.unwrap();
        rollup::store(&db, &metrics).await.unwrap();
        // A second replica rolling up the same minute writes nothing new.
        rollup::store(&db, &metrics).await.unwrap();
        written += metrics.len();
        minute += MINUTE_MICROS;
    }
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM performance_metrics")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(stored as usize, written);

    let mut inspector = InspectorClient::new(demo.channel.clone());
    let read = |names: &[&str], page_size: u32, page_token: String| GetPerformanceRequest {
        since: Some(ops_proto::convert::timestamp(
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(first) * 1000).unwrap(),
        )),
        until: None,
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        page_size,
        page_token,
    };
    let points = inspector
        .get_performance(request("acme", read(&[], 0, String::new())))
        .await
        .unwrap()
        .into_inner()
        .points;
    let sum = |name: &str| -> f64 {
        points
            .iter()
            .filter(|p| p.name == name)
            .map(|p| p.value)
            .sum()
    };
    assert_eq!(
        sum("asks") as usize,
        questions.len(),
        "every ask is counted once"
    );
    let replans: i64 =
        sqlx::query_scalar("SELECT COALESCE(SUM(replans), 0) FROM traces WHERE test_mode = FALSE")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(sum("replans") as i64, replans, "replans by trigger add up");
    for stage in ["route_plan", "validate", "execute", "compose", "present"] {
        let of = |q: &str| {
            points
                .iter()
                .filter(|p| {
                    p.name == "stage_latency_ms"
                        && p.labels.get("stage").map(String::as_str) == Some(stage)
                        && p.labels.get("quantile").map(String::as_str) == Some(q)
                })
                .map(|p| p.value)
                .collect::<Vec<_>>()
        };
        let (p50, p99) = (of("p50"), of("p99"));
        assert!(!p50.is_empty(), "{stage} has per-minute latencies");
        assert!(
            p50.iter().zip(&p99).all(|(a, b)| a <= b),
            "{stage}: p50 <= p99"
        );
    }
    assert!(
        points
            .iter()
            .all(|p| !p.unit.is_empty() && p.minute.is_some())
    );

    // Names filter and pages.
    let latency = inspector
        .get_performance(request("acme", read(&["ask_latency_ms"], 2, String::new())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(latency.points.len(), 2);
    assert!(latency.points.iter().all(|p| p.name == "ask_latency_ms"));
    assert!(!latency.next_page_token.is_empty());
    let rest = inspector
        .get_performance(request(
            "acme",
            read(&["ask_latency_ms"], 0, latency.next_page_token.clone()),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        latency.points.len() + rest.points.len(),
        points.iter().filter(|p| p.name == "ask_latency_ms").count()
    );
    let other_tenant = inspector
        .get_performance(request("globex", read(&[], 0, String::new())))
        .await
        .unwrap()
        .into_inner();
    assert!(
        other_tenant.points.is_empty(),
        "records are the tenant's own"
    );
    let bad = inspector
        .get_performance(request("acme", read(&[], 0, "not-a-token".into())))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    // RCA's "slower than usual" reads the tenant's usual p95 from these records.
    let usual = ops_controlplane::trace::read::recent_stage_p95(&db, "acme")
        .await
        .unwrap();
    let recorded = rollup::usual_stage_p95(&db, "acme", first, 20.0)
        .await
        .unwrap();
    assert!(!recorded.is_empty(), "24 asks give every stage 20 runs");
    for (slug, p95) in &recorded {
        let stage = ops_controlplane::model::refs::parse_stage_slug(slug).unwrap();
        assert_eq!(usual.get(&(stage as i32)), Some(p95), "{slug}");
    }
    demo.stop().await;
}
