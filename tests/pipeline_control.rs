//! The control loop on the demo over gRPC: each of the seven triggers is provoked for real
//! (an unknown CI, an empty window, weak document evidence, a row limit, a restricted table, a
//! broken tool, a stopped sidecar), and its replan events are read back from the trace.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod executor_support;
mod pipeline_support;

use ops_controlplane::config::ExecutorMode;
use ops_controlplane::demo;
use ops_proto::v1::inspector_client::InspectorClient;
use ops_proto::v1::ops_service_client::OpsServiceClient;
use ops_proto::v1::{
    AskMode, AskRequest, AskResponse, AskStreamRequest, ListTracesRequest, ReplanTrigger, Route,
    Stage, Trace, TraceStatus, ask_stream_response, block,
};
use pipeline_support::{Demo, read_trace, request};
use tonic::transport::Channel;

struct Client {
    ops: OpsServiceClient<Channel>,
    inspector: InspectorClient<Channel>,
}

impl Client {
    async fn ask(&mut self, question: &str) -> (AskResponse, Trace) {
        self.ask_in(question, AskMode::All).await
    }

    async fn ask_in(&mut self, question: &str, mode: AskMode) -> (AskResponse, Trace) {
        let response = self
            .ops
            .ask(request("acme", ask_request(question, mode)))
            .await
            .unwrap_or_else(|s| panic!("{question}: {s:?}"))
            .into_inner();
        let trace = read_trace(&mut self.inspector, "acme", &response.trace_id).await;
        (response, trace)
    }
}

fn ask_request(question: &str, mode: AskMode) -> AskRequest {
    let as_of = time::OffsetDateTime::parse(
        "2026-01-31T00:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    AskRequest {
        question: question.into(),
        mode: mode as i32,
        as_of: Some(ops_proto::convert::timestamp(as_of)),
        ..Default::default()
    }
}

/// (trigger, decision) of every replan event.
fn events(trace: &Trace) -> Vec<(ReplanTrigger, String)> {
    trace
        .replan_events
        .iter()
        .map(|e| {
            (
                ReplanTrigger::try_from(e.trigger).unwrap(),
                e.decision.clone(),
            )
        })
        .collect()
}

fn numbers(response: &AskResponse) -> Vec<f64> {
    response
        .blocks
        .iter()
        .filter_map(|b| match &b.content {
            Some(block::Content::Number(n)) => Some(n.value),
            _ => None,
        })
        .collect()
}

fn policy_with(extra: &str) -> String {
    let mut policy = demo::PLANT_OPS_POLICY_YAML.to_owned();
    policy.push_str(extra);
    policy
}

fn tool_yaml(name: &str, edit: impl Fn(&mut serde_yaml::Value)) -> String {
    let mut tools: Vec<serde_yaml::Value> =
        serde_yaml::from_str(demo::PLANT_OPS_TOOLS_YAML).unwrap();
    let tool = tools
        .iter_mut()
        .find(|t| t["name"].as_str() == Some(name))
        .unwrap();
    edit(tool);
    serde_yaml::to_string(tool).unwrap()
}

async fn client(demo: &Demo) -> Client {
    Client {
        ops: OpsServiceClient::new(demo.channel.clone()),
        inspector: InspectorClient::new(demo.channel.clone()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trigger_is_decided_under_the_policy_and_traced() {
    let mut demo = pipeline_support::start_demo(ExecutorMode::Connect).await;
    let mut c = client(&demo).await;

    // slot_missing, fixed: a code written without one separator is the one CI it squashes to.
    let (r, t) = c.ask("ERP-DB01 CPU 최근 24시간 평균").await;
    assert_eq!(
        events(&t),
        [(ReplanTrigger::SlotMissing, "replan".into())],
        "{}",
        r.answer
    );
    assert!(
        r.answer.contains("ERP-DB-01") && r.answer.contains("CPU 사용률 평균"),
        "{}",
        r.answer
    );
    assert_eq!(t.plan_validated.as_ref().unwrap().ci_codes, ["ERP-DB-01"]);
    assert_eq!(r.meta.as_ref().unwrap().replans, 1);

    // slot_missing, given up: an unknown CI is named, with similar codes, never guessed.
    let (r, t) = c.ask("GT-99 CPU 평균").await;
    assert_eq!(events(&t), [(ReplanTrigger::SlotMissing, "give_up".into())]);
    assert!(
        r.answer.contains("GT-99") && r.answer.contains("GT-01"),
        "{}",
        r.answer
    );
    assert_eq!(t.status, TraceStatus::Partial as i32);

    // empty_result: a window the question gave is its answer, not widened.
    let (r, t) = c.ask("GT-01 이벤트 이력 지난 1시간").await;
    assert_eq!(
        events(&t),
        [(ReplanTrigger::EmptyResult, "give_up".into())],
        "{}",
        r.answer
    );
    // The empty answer restates what found nothing, in the question's language.
    assert!(
        r.answer.contains("GT-01")
            && r.answer.contains("최근 1시간")
            && r.answer.contains("없습니다"),
        "{}",
        r.answer
    );

    // empty_result: a defaulted window doubles twice (GT-05 is in maintenance and reports
    // nothing), then max_replans (2) stops the loop.
    let (r, t) = c.ask("GT-05 온도").await;
    assert_eq!(
        events(&t),
        [
            (ReplanTrigger::EmptyResult, "replan".into()),
            (ReplanTrigger::EmptyResult, "replan".into()),
            (ReplanTrigger::EmptyResult, "give_up".into()),
        ],
        "{}",
        r.answer
    );
    let after = t.replan_events[1].patch_after.as_ref().unwrap();
    assert!(
        serde_json::to_string(after).unwrap().contains("widened"),
        "{after:?}"
    );
    assert!(
        r.meta
            .as_ref()
            .unwrap()
            .data_quality
            .contains(&"empty_result".to_owned())
    );

    // low_evidence: one word found once in one document's body.
    let (r, t) = c.ask("윤활유 문서 찾아줘").await;
    assert_eq!(
        events(&t),
        [(ReplanTrigger::LowEvidence, "give_up".into())],
        "{}",
        r.answer
    );
    assert!(
        r.meta
            .as_ref()
            .unwrap()
            .data_quality
            .contains(&"low_evidence".to_owned())
    );

    // present_limit: at a row limit of 3 the list is truncated; the replan counts all rows.
    demo.publish(
        "acme",
        vec![(
            "policy.yaml",
            demo::PLANT_OPS_POLICY_YAML.replace("row_limit: 1000", "row_limit: 3"),
        )],
    )
    .await;
    let (r, t) = c.ask("ERP 시스템의 모든 서버를 나열해줘").await;
    assert_eq!(
        events(&t)[0],
        (ReplanTrigger::PresentLimit, "replan".into()),
        "{}",
        r.answer
    );
    assert!(numbers(&r).contains(&5.0), "{:?}", r.blocks);
    assert!(
        r.meta
            .as_ref()
            .unwrap()
            .data_quality
            .contains(&"truncated".to_owned())
    );

    // policy_blocked: a restricted table is refused by the SQL guard, recorded as a violation.
    demo.publish(
        "acme",
        vec![(
            "policy.yaml",
            demo::PLANT_OPS_POLICY_YAML
                .replace("[users, credentials]", "[users, credentials, documents]"),
        )],
    )
    .await;
    let (r, t) = c.ask("가스터빈 기동 절차 문서 찾아줘").await;
    assert_eq!(r.route, Route::Orch as i32);
    assert_eq!(
        events(&t),
        [(ReplanTrigger::PolicyBlocked, "give_up".into())]
    );
    assert_eq!(t.status, TraceStatus::Rejected as i32);
    assert!(
        t.violations
            .iter()
            .any(|v| v.r#type == "sql_guard" && v.blocking),
        "{:?}",
        t.violations
    );

    // tool_error_fatal (a critical trigger): a column the database does not have.
    demo.publish(
        "acme",
        vec![
            ("policy.yaml", policy_with("")),
            // The database lost a column the catalog still lists (a scan is out of date).
            (
                "catalog.yaml",
                demo::PLANT_OPS_CATALOG_YAML.replacen(
                    "      columns:\n",
                    "      columns:\n        - {name: no_such_column, data_type: TEXT}\n",
                    1,
                ),
            ),
            (
                "tool.yaml",
                tool_yaml("ci_tool", |t| {
                    t["spec"]["config"]["columns"]
                        .as_sequence_mut()
                        .unwrap()
                        .push("no_such_column".into());
                }),
            ),
        ],
    )
    .await;
    let (r, t) = c.ask("MES 시스템의 웹 서버 목록을 보여줘").await;
    assert_eq!(
        events(&t),
        [(ReplanTrigger::ToolErrorFatal, "give_up".into())],
        "{}",
        r.answer
    );
    assert_eq!(t.status, TraceStatus::Error as i32);
    assert!(
        t.tool_calls
            .iter()
            .any(|c| c.error.contains("no_such_column")),
        "{:?}",
        t.tool_calls
    );

    // tool_error_retryable: the metrics sidecar is gone; two replans retry, then give up.
    let metrics = demo.sidecars.remove(1);
    let _ = metrics.stop_and_logs().await;
    let (r, t) = c.ask("GT-01 CPU 최근 24시간 평균").await;
    assert_eq!(
        events(&t),
        [
            (ReplanTrigger::ToolErrorRetryable, "replan".into()),
            (ReplanTrigger::ToolErrorRetryable, "replan".into()),
            (ReplanTrigger::ToolErrorRetryable, "give_up".into()),
        ],
        "{}",
        r.answer
    );
    assert_eq!(t.status, TraceStatus::Error as i32);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_stream_mode_fixed_asks_and_trace_retention() {
    let demo = pipeline_support::start_demo(ExecutorMode::Connect).await;
    let mut c = client(&demo).await;

    // AskStream: one event per stage as it finishes, in order, then the final response.
    let mut stream = c
        .ops
        .ask_stream(request(
            "acme",
            AskStreamRequest {
                ask: Some(ask_request(
                    "ERP-DB-01 장애 시 영향받는 CI 전부",
                    AskMode::All,
                )),
            },
        ))
        .await
        .expect("stream")
        .into_inner();
    let mut stages = Vec::new();
    let mut last = None;
    while let Some(event) = stream.message().await.expect("event") {
        match event.event {
            Some(ask_stream_response::Event::Stage(s)) => {
                stages.push(s.stage.expect("stage record").stage)
            }
            Some(ask_stream_response::Event::Final(r)) => last = Some(r),
            None => panic!("empty event"),
        }
    }
    assert_eq!(
        stages,
        [
            Stage::RoutePlan as i32,
            Stage::Validate as i32,
            Stage::Execute as i32,
            Stage::Compose as i32,
            Stage::Present as i32
        ]
    );
    let last = last.expect("final response");
    assert_eq!(last.route, Route::Orch as i32);
    assert!(
        last.answer.contains("영향받는 CI는 8개입니다"),
        "{}",
        last.answer
    );

    // Mode-fixed: the same words answered as history, whatever the planner would pick.
    let (r, t) = c.ask_in("GT-01", AskMode::History).await;
    assert_eq!(t.mode, "history");
    assert_eq!(r.plan.as_ref().unwrap().mode, "history");
    assert!(r.answer.contains("events"), "{}", r.answer);
    let (r, _) = c.ask_in("GT-01", AskMode::Config).await;
    assert!(r.answer.contains("Gas Turbine Unit 1"), "{}", r.answer);

    // Invalid input is refused naming the field.
    let err = c
        .ops
        .ask(request("acme", ask_request("  ", AskMode::All)))
        .await
        .expect_err("empty question");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().starts_with("question:"), "{}", err.message());

    // Retention keeps the newest traces of the tenant, with their mirror rows.
    let db = demo.registry.db().clone();
    let removed = ops_controlplane::trace::orchestration::apply_retention(
        &db,
        "acme",
        ops_controlplane::trace::Retention {
            days: 0,
            max_traces: 2,
            audit_days: 0,
        },
        ops_controlplane::storage::unix_micros(),
    )
    .await
    .expect("retention");
    assert_eq!(
        removed, 1,
        "3 traces (the refused request has none), 2 kept"
    );
    let listed = c
        .inspector
        .list_traces(request("acme", ListTracesRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.traces.len(), 2);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_source_falls_back_to_the_policys_next_source() {
    let demo = pipeline_support::start_demo(ExecutorMode::Connect).await;
    let mut c = client(&demo).await;
    // plant-ops in PostgreSQL serves as the replica; the primary moves to a closed port.
    let replica = executor_support::PlantOps::postgres().await;
    let source = |name: &str, port: u32| {
        format!(
            "type: source\nname: {name}\nspec:\n  kind: SOURCE_KIND_POSTGRES\n  connection: {{host: {}, port: {port}, database: {}, user: {}}}\n  permissions: {{read_only: true}}\n",
            replica.source.host, replica.source.database, replica.source.user
        )
    };
    demo.publish(
        "acme",
        vec![
            ("primary.yaml", source("plant_ops", 1)),
            (
                "replica.yaml",
                source("plant_ops_replica", replica.source.port),
            ),
            (
                "policy.yaml",
                policy_with("  fallback_sources: [source:plant_ops_replica]\n"),
            ),
        ],
    )
    .await;
    let (r, t) = c.ask("ERP 시스템의 모든 서버를 나열해줘").await;
    let meta = r.meta.as_ref().unwrap();
    assert!(meta.fallback_used, "{}", r.answer);
    assert!(meta.data_quality.contains(&"fallback_source".to_owned()));
    assert!(r.answer.contains("5개입니다"), "{}", r.answer);
    assert!(
        t.tool_calls
            .iter()
            .all(|call| call.endpoint.starts_with("source:plant_ops_replica@")),
        "{:?}",
        t.tool_calls
    );
    demo.stop().await;
    replica.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_can_run_a_written_query_with_params_from_the_plan() {
    let demo = pipeline_support::start_demo(ExecutorMode::Connect).await;
    let mut c = client(&demo).await;
    // History questions now go to a tool that runs a written Query asset.
    let admin = ops_controlplane::context::CallerContext::new("acme", "test-admin");
    let history = demo
        .registry
        .get(
            &admin,
            ops_proto::v1::AssetType::Tool as i32,
            "history_tool",
            None,
        )
        .await
        .expect("history_tool");
    demo.registry
        .archive(
            &admin,
            ops_proto::v1::AssetType::Tool as i32,
            "history_tool",
            history.revision,
        )
        .await
        .expect("archive");
    demo.publish(
        "acme",
        vec![
            (
                "query.yaml",
                "type: query\nname: ci_events\nspec:\n  source_ref: source:plant_ops\n  sql: |-\n    SELECT e.event_id, e.event_type, e.occurred_at FROM events e\n    JOIN ci_master c ON c.ci_id = e.ci_id\n    WHERE c.ci_code = :ci_code AND e.occurred_at >= :from AND e.occurred_at < :to\n    ORDER BY e.occurred_at DESC\n  params:\n    - {name: ci_code, type: PARAM_TYPE_STRING, required: true}\n    - {name: from, type: PARAM_TYPE_TIMESTAMP, required: true}\n    - {name: to, type: PARAM_TYPE_TIMESTAMP, required: true}\n".to_owned(),
            ),
            (
                "tool.yaml",
                "type: tool\nname: ci_events_tool\nspec:\n  tool_type: TOOL_TYPE_DATABASE_QUERY\n  description: events of one CI\n  query_ref: query:ci_events\n  source_ref: source:plant_ops\n  config: {mode: history}\n".to_owned(),
            ),
        ],
    )
    .await;
    let (r, t) = c.ask("GT-01 이벤트 이력").await;
    assert_eq!(r.route, Route::Orch as i32, "{}", r.answer);
    let ids: Vec<String> = r
        .blocks
        .iter()
        .filter_map(|b| match &b.content {
            Some(block::Content::Table(t)) => Some(t),
            _ => None,
        })
        .flat_map(|t| t.rows.iter())
        .filter_map(|row| match &row.values.first()?.kind {
            Some(pbjson_types::value::Kind::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        ids,
        ["EV-00080", "EV-00095", "EV-00118", "EV-00278"],
        "{:?}",
        r.blocks
    );
    assert_eq!(t.tool_calls[0].tool, "ci_events_tool");
    assert!(
        t.applied_assets.iter().any(|a| a.name == "ci_events_tool"),
        "{:?}",
        t.applied_assets
    );

    // Without a CI the query's :ci_code is missing: refused, naming the parameter.
    let (r, t) = c.ask("이벤트 이력").await;
    assert_eq!(t.status, TraceStatus::Rejected as i32, "{}", r.answer);
    assert!(r.answer.contains(":ci_code"), "{}", r.answer);
    demo.stop().await;
}

/// A tenant's Prompt of purpose `answer` words its answer lines: its sentences and words
/// override the built-in ones, the rest stay; PRESENT records the prompt's version; a prompt
/// that does not compile is refused at publish, naming the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_words_its_answers_with_an_answer_prompt() {
    let demo = pipeline_support::start_demo(ExecutorMode::Connect).await;
    let mut c = client(&demo).await;
    let (r, _) = c.ask("지난 7일간 critical 알람 몇 건?").await;
    assert_eq!(r.answer, "최근 7일간 심각 알람은 17건입니다.");
    let (r, _) = c.ask("How many Windows servers are there?").await;
    assert_eq!(
        r.answer,
        "There are 6 configuration items with type Server, OS Windows."
    );

    let prompt = r#"type: prompt
name: acme_answers
spec:
  purpose: PROMPT_PURPOSE_ANSWER
  vocabulary:
    - {meaning: "sentence:en:count", terms: ["{subject}: {count} in all."]}
    - {meaning: "word:ko:window.last_week", terms: ["지난 한 주 동안"]}
"#;
    demo.publish("acme", vec![("answers.yaml", prompt.to_owned())])
        .await;
    let (r, t) = c.ask("How many Windows servers are there?").await;
    assert_eq!(
        r.answer,
        "configuration items with type Server, OS Windows: 6 in all."
    );
    let present = t
        .stages
        .iter()
        .find(|s| s.stage == Stage::Present as i32)
        .expect("PRESENT record");
    assert!(
        present
            .applied_assets
            .iter()
            .any(|a| a.name == "acme_answers"),
        "{:?}",
        present.applied_assets
    );
    let (r, _) = c.ask("지난주 ERP-DB-01 장애 몇 건?").await;
    assert!(r.answer.starts_with("지난 한 주 동안 "), "{}", r.answer);
    // Globex did not publish it: the built-in wording.
    let mut globex = OpsServiceClient::new(demo.channel.clone());
    let g = globex
        .ask(request(
            "globex",
            ask_request("How many Windows servers are there?", AskMode::All),
        ))
        .await
        .expect("ask")
        .into_inner();
    assert!(g.answer.starts_with("There are "), "{}", g.answer);

    let broken = prompt.replace(
        "    - {meaning: \"word:ko:window.last_week\"",
        "    - {meaning: \"language:ja\", terms: [\"kana\"]}\n    - {meaning: \"summary:ja\", terms: [\"x\"]}\n    - {meaning: \"word:ko:window.last_week\"",
    );
    let err = demo
        .try_publish("acme", vec![("answers.yaml", broken)])
        .await
        .expect_err("refused");
    let message = err.to_string();
    assert!(
        message.contains("summary:ja") && message.contains("language:ja"),
        "{message}"
    );
    // A planner Prompt's meaning the planner never reads is refused too, saying what is.
    let planner = demo::PLANT_OPS_PLANNER_YAML.replace(
        "  vocabulary:\n",
        "  vocabulary:\n    - {meaning: \"time:next_week\", terms: [다음 주, next week]}\n",
    );
    let err = demo
        .try_publish("acme", vec![("planner.yaml", planner)])
        .await
        .expect_err("refused");
    let message = err.to_string();
    assert!(
        message.contains("time:next_week") && message.contains("this_month"),
        "{message}"
    );
    // So is a Tool config key no tool reads, and a catalog role naming a column not listed.
    let tool = tool_yaml("history_tool", |t| {
        t["spec"]["config"]["severity_colum"] = "severity".into();
    });
    let err = demo
        .try_publish("acme", vec![("tool.yaml", tool)])
        .await
        .expect_err("refused");
    let message = err.to_string();
    assert!(
        message.contains("config.severity_colum") && message.contains("severity_column"),
        "{message}"
    );
    let catalog =
        demo::PLANT_OPS_CATALOG_YAML.replace("value_column: value", "value_column: reading");
    assert_ne!(catalog, demo::PLANT_OPS_CATALOG_YAML);
    let err = demo
        .try_publish("acme", vec![("catalog.yaml", catalog)])
        .await
        .expect_err("refused");
    let message = err.to_string();
    assert!(
        message.contains("metrics.value_column") && message.contains("\"reading\""),
        "{message}"
    );
    demo.stop().await;
}
