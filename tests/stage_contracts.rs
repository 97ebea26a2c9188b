//! The stages as contracts on the demo with real sidecars: StageTest of each of the five stages
//! on a baseline trace with a draft override, replay from COMPOSE with the sidecars stopped,
//! test mode with asset overrides, and stage-aligned DiffTraces.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod executor_support;
mod pipeline_support;

use ops_controlplane::config::ExecutorMode;
use ops_proto::v1::inspector_client::InspectorClient;
use ops_proto::v1::ops_service_client::OpsServiceClient;
use ops_proto::v1::{
    AskRequest, AskResponse, DiffTracesRequest, DiffTracesResponse, Replay, Stage,
    StageTestRequest, StageTestResponse, Trace, block,
};
use pipeline_support::{Demo, read_trace, request};
use tonic::Code;
use tonic::transport::Channel;

const METRIC_QUESTION: &str = "GT-01 CPU average last week";
const MAPPING_DRAFT: &str = "mapping:plant_ops_answer@draft";

struct Client {
    ops: OpsServiceClient<Channel>,
    inspector: InspectorClient<Channel>,
}

impl Client {
    fn new(demo: &Demo) -> Self {
        Self {
            ops: OpsServiceClient::new(demo.channel.clone()),
            inspector: InspectorClient::new(demo.channel.clone()),
        }
    }

    async fn ask(&mut self, ask: AskRequest) -> Result<AskResponse, tonic::Status> {
        self.ops
            .ask(request("acme", ask))
            .await
            .map(|r| r.into_inner())
    }

    async fn stage_test(
        &mut self,
        test: StageTestRequest,
    ) -> Result<StageTestResponse, tonic::Status> {
        self.ops
            .stage_test(request("acme", test))
            .await
            .map(|r| r.into_inner())
    }

    async fn diff(&mut self, baseline: &str, candidate: &str) -> DiffTracesResponse {
        self.inspector
            .diff_traces(request(
                "acme",
                DiffTracesRequest {
                    baseline_trace_id: baseline.into(),
                    candidate_trace_id: candidate.into(),
                },
            ))
            .await
            .expect("diff")
            .into_inner()
    }

    async fn trace(&mut self, id: &str) -> Trace {
        read_trace(&mut self.inspector, "acme", id).await
    }
}

fn question(text: &str) -> AskRequest {
    let as_of = time::OffsetDateTime::parse(
        "2026-01-31T00:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    AskRequest {
        question: text.into(),
        as_of: Some(ops_proto::convert::timestamp(as_of)),
        ..Default::default()
    }
}

fn replay(trace_id: &str, from: Stage, overrides: &[&str]) -> AskRequest {
    AskRequest {
        test_mode: true,
        asset_overrides: overrides.iter().map(|o| (*o).to_owned()).collect(),
        replay: Some(Replay {
            trace_id: trace_id.into(),
            from_stage: from as i32,
        }),
        ..Default::default()
    }
}

/// A draft of the demo Mapping whose metric sentence reads differently.
async fn draft_mapping(demo: &Demo) {
    let yaml = include_str!("../datasets/plant-ops/assets/mapping.yaml").replace(
        "{{ci_code}} {{metric_name}} {{aggregation}} over {{window}}: {{value}} {{unit}}",
        "DRAFT {{ci_code}} {{metric_name}} is {{value}} {{unit}}",
    );
    demo.registry
        .import(
            &ops_controlplane::context::CallerContext::new("acme", "test-author"),
            vec![ops_proto::v1::BundleFile {
                path: "mapping.yaml".into(),
                content: yaml.into_bytes(),
            }],
            false,
            false,
        )
        .await
        .expect("mapping draft");
}

fn texts(blocks: &[ops_proto::v1::Block]) -> Vec<String> {
    blocks
        .iter()
        .filter_map(|b| match &b.content {
            Some(block::Content::Text(t)) => Some(t.text.clone()),
            _ => None,
        })
        .collect()
}

fn diff_equal(response: &StageTestResponse) -> bool {
    let diff = response.diff.as_ref().expect("a diff against the baseline");
    matches!(
        diff.fields.get("equal").and_then(|v| v.kind.as_ref()),
        Some(pbjson_types::value::Kind::BoolValue(true))
    )
}

#[tokio::test]
async fn stage_test_runs_each_stage_alone_on_a_baseline_with_a_draft() {
    let demo = pipeline_support::start_demo(ExecutorMode::Connect).await;
    let mut client = Client::new(&demo);
    let baseline = client.ask(question(METRIC_QUESTION)).await.expect("ask");
    draft_mapping(&demo).await;

    for stage in [
        Stage::RoutePlan,
        Stage::Validate,
        Stage::Execute,
        Stage::Compose,
        Stage::Present,
    ] {
        let tested = client
            .stage_test(StageTestRequest {
                stage: stage as i32,
                baseline_trace_id: baseline.trace_id.clone(),
                asset_overrides: vec![MAPPING_DRAFT.into()],
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("{stage:?}: {s:?}"));
        let record = tested.result.as_ref().expect("record");
        assert_eq!(record.stage, stage as i32);
        assert!(
            record.output.as_ref().is_some_and(|o| !o.fields.is_empty()),
            "{stage:?} has an output"
        );
        assert_eq!(tested.asset_overrides_used, [MAPPING_DRAFT]);
        // Only COMPOSE reads the Mapping: its output changes, every other stage's is the same.
        assert_eq!(
            diff_equal(&tested),
            stage != Stage::Compose,
            "{stage:?}: {:?}",
            tested.diff
        );
        let trace = client.trace(&tested.trace_id).await;
        assert!(trace.test_mode);
        assert_eq!(trace.parent_trace_id, baseline.trace_id);
        assert_eq!(trace.stages.len(), 1);
        assert_eq!(trace.stages[0].stage, stage as i32);
    }

    // COMPOSE on tool results given in the request; EXECUTE only from a plan.
    let baseline_trace = client.trace(&baseline.trace_id).await;
    let execute = baseline_trace
        .stages
        .iter()
        .rfind(|s| s.stage == Stage::Execute as i32)
        .unwrap();
    let mut compose_input = execute.output.clone().unwrap();
    compose_input.fields.retain(|k, _| k == "results");
    compose_input.fields.insert(
        "question".into(),
        pbjson_types::Value {
            kind: Some(pbjson_types::value::Kind::StringValue(
                METRIC_QUESTION.into(),
            )),
        },
    );
    let composed = client
        .stage_test(StageTestRequest {
            stage: Stage::Compose as i32,
            input: Some(compose_input),
            ..Default::default()
        })
        .await
        .expect("compose from the request");
    assert!(composed.diff.is_none(), "no baseline, no diff");
    let refused = client
        .stage_test(StageTestRequest {
            stage: Stage::Execute as i32,
            input: execute.input.clone(),
            ..Default::default()
        })
        .await
        .expect_err("tasks from the request");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("input.tasks"),
        "{}",
        refused.message()
    );
    let refused = client
        .stage_test(StageTestRequest {
            stage: Stage::Control as i32,
            baseline_trace_id: baseline.trace_id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("CONTROL is no stage of its own");
    assert_eq!(refused.code(), Code::InvalidArgument);
    demo.stop().await;
}

#[tokio::test]
async fn replay_from_compose_reads_no_source_and_gives_the_same_blocks_twice() {
    let mut demo = pipeline_support::start_demo(ExecutorMode::Connect).await;
    let mut client = Client::new(&demo);
    let baseline = client.ask(question(METRIC_QUESTION)).await.expect("ask");
    draft_mapping(&demo).await;

    // Test mode with an override: the draft answers; without test mode the override is refused.
    let mut with_draft = question(METRIC_QUESTION);
    with_draft.asset_overrides = vec![MAPPING_DRAFT.into()];
    let refused = client
        .ask(with_draft.clone())
        .await
        .expect_err("override outside test mode");
    assert_eq!(refused.code(), Code::InvalidArgument);
    with_draft.test_mode = true;
    let drafted = client.ask(with_draft).await.expect("test mode");
    assert!(
        texts(&drafted.blocks)
            .iter()
            .any(|t| t.starts_with("DRAFT GT-01")),
        "{:?}",
        drafted.blocks
    );
    assert!(
        !texts(&baseline.blocks)
            .iter()
            .any(|t| t.starts_with("DRAFT"))
    );
    assert!(client.trace(&drafted.trace_id).await.test_mode);

    for sidecar in demo.sidecars.drain(..) {
        let _ = sidecar.stop_and_logs().await;
    }
    let first = client
        .ask(replay(&baseline.trace_id, Stage::Compose, &[MAPPING_DRAFT]))
        .await
        .expect("replay with the sidecars stopped");
    assert!(
        texts(&first.blocks)
            .iter()
            .any(|t| t.starts_with("DRAFT GT-01")),
        "{:?}",
        first.blocks
    );
    assert_ne!(first.blocks, baseline.blocks);
    let second = client
        .ask(replay(&baseline.trace_id, Stage::Compose, &[MAPPING_DRAFT]))
        .await
        .expect("second replay");
    // Byte-identical in the proto3 JSON form (keys sorted). Protobuf's binary form writes the
    // maps inside a Struct in hash order, so only the JSON form is canonical.
    let bytes =
        |r: &AskResponse| serde_json::to_vec(&serde_json::to_value(&r.blocks).unwrap()).unwrap();
    assert_eq!(bytes(&first), bytes(&second));
    assert_eq!(first.blocks, second.blocks);

    let trace = client.trace(&first.trace_id).await;
    assert!(trace.test_mode);
    assert_eq!(trace.parent_trace_id, baseline.trace_id);
    assert_eq!(trace.replayed_from, Stage::Compose as i32);
    let frozen: Vec<i32> = trace
        .stages
        .iter()
        .filter(|s| s.frozen)
        .map(|s| s.stage)
        .collect();
    assert_eq!(
        frozen,
        [
            Stage::RoutePlan as i32,
            Stage::Validate as i32,
            Stage::Execute as i32
        ]
    );
    assert!(
        trace
            .stages
            .iter()
            .filter(|s| !s.frozen)
            .all(|s| s.stage == Stage::Compose as i32 || s.stage == Stage::Present as i32)
    );

    // Replaying EXECUTE needs the data: with the sidecars gone it is an error answer, traced.
    let executed = client
        .ask(replay(&baseline.trace_id, Stage::Execute, &[]))
        .await
        .expect("replay from EXECUTE");
    assert!(
        executed.answer.starts_with("The data could not be read"),
        "{}",
        executed.answer
    );
    let refused = client
        .ask(AskRequest {
            replay: Some(Replay {
                trace_id: baseline.trace_id.clone(),
                from_stage: Stage::Compose as i32,
            }),
            ..Default::default()
        })
        .await
        .expect_err("a replay outside test mode");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let refused = client
        .ask(replay(
            &uuid::Uuid::new_v4().to_string(),
            Stage::Compose,
            &[],
        ))
        .await
        .expect_err("an unknown trace");
    assert_eq!(refused.code(), Code::NotFound);
    demo.stop().await;
}

#[tokio::test]
async fn diff_traces_names_the_first_diverging_stage() {
    let demo = pipeline_support::start_demo(ExecutorMode::Spawn).await;
    let mut client = Client::new(&demo);
    let ask = question("1호기 가스터빈 발전량 평균 (최근 24시간)");
    let first = client.ask(ask.clone()).await.expect("first");
    let second = client.ask(ask.clone()).await.expect("second");
    let same = client.diff(&first.trace_id, &second.trace_id).await;
    assert_eq!(same.first_divergence, Stage::Unspecified as i32, "{same:?}");
    assert!(same.stages.iter().all(|s| s.changes.is_empty()), "{same:?}");
    assert!(!same.answer_changed);
    assert!(same.stages.iter().any(|s| s.candidate_ms > 0.0));

    // The resolver now sends "1호기" to GT-02: ROUTE+PLAN diverges first, on the plan's CI.
    let mut resolver: serde_json::Value =
        serde_yaml::from_str(ops_controlplane::demo::PLANT_OPS_RESOLVER_YAML).unwrap();
    for rule in resolver["spec"]["rules"].as_array_mut().unwrap() {
        if rule["rule_data"]["target_entity"] == "ci_code:GT-01" {
            rule["rule_data"]["target_entity"] = "ci_code:GT-02".into();
        }
    }
    demo.publish("acme", vec![("resolver.json", resolver.to_string())])
        .await;
    let after = client.ask(ask).await.expect("after the publish");
    let diff = client.diff(&first.trace_id, &after.trace_id).await;
    assert_eq!(diff.first_divergence, Stage::RoutePlan as i32, "{diff:?}");
    let route_plan = &diff.stages[0];
    assert!(
        route_plan
            .changes
            .iter()
            .any(|c| c.starts_with("plan.ci_codes[0]: \"GT-01\" → \"GT-02\"")),
        "{:?}",
        route_plan.changes
    );
    assert!(
        diff.asset_versions_changed
            .iter()
            .any(|a| a.starts_with("resolver:plant_resolver@1 → 2")),
        "{:?}",
        diff.asset_versions_changed
    );
    assert!(diff.answer_changed);
    let unknown = client
        .inspector
        .diff_traces(request(
            "acme",
            DiffTracesRequest {
                baseline_trace_id: "not-a-trace".into(),
                candidate_trace_id: after.trace_id.clone(),
            },
        ))
        .await
        .expect_err("a malformed id");
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(
        unknown.message().starts_with("baseline_trace_id"),
        "{}",
        unknown.message()
    );
    demo.stop().await;
}

/// VALIDATE names what is wrong in a hand-written plan's comparisons and history filters:
/// the rule and the field, never a silently dropped condition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_names_a_bad_comparison_or_filter() {
    let demo = pipeline_support::start_demo(ExecutorMode::Connect).await;
    let mut client = Client::new(&demo);
    let config = |comparison: serde_json::Value| {
        serde_json::json!({"plan": {
            "intent": "LIST", "mode": "config", "view": "SUMMARY", "tools": ["ci_tool"],
            "comparisons": [comparison],
        }})
    };
    let cases = [
        (
            config(serde_json::json!({"column": "ci_name", "op": "gt", "value": "1"})),
            "plan.comparison_column",
            "plan.comparisons[0].column",
        ),
        (
            config(serde_json::json!({"column": "capacity", "op": "between", "value": "1"})),
            "plan.comparison_op",
            "plan.comparisons[0].op",
        ),
        (
            config(serde_json::json!({"column": "capacity", "op": "gt", "value": "lots"})),
            "plan.comparison_value",
            "plan.comparisons[0].value",
        ),
        (
            serde_json::json!({"plan": {
                "intent": "LIST", "mode": "history", "view": "SUMMARY", "tools": ["history_tool"],
                "filters": {"ci_master.ip_address": "10.0.0.1"},
            }}),
            "plan.filter_column",
            "plan.filters[ci_master.ip_address]",
        ),
    ];
    for (input, rule, field) in cases {
        let tested = client
            .stage_test(StageTestRequest {
                stage: Stage::Validate as i32,
                input: Some(ops_proto::convert::to_struct(&input)),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("{rule}: {s:?}"));
        let output = tested
            .result
            .and_then(|r| r.output)
            .map(|o| ops_proto::convert::struct_to_json(&o))
            .unwrap_or_default();
        let violations = output["violations"].as_array().cloned().unwrap_or_default();
        assert!(
            violations
                .iter()
                .any(|v| v["rule"] == rule && v["field"] == field && v["blocking"] == true),
            "{rule}: {output}"
        );
    }
    // A valid comparison compiles into the guarded statement with a bind.
    let tested = client
        .stage_test(StageTestRequest {
            stage: Stage::Validate as i32,
            input: Some(ops_proto::convert::to_struct(&config(
                serde_json::json!({"column": "capacity", "op": "gte", "value": "200"}),
            ))),
            ..Default::default()
        })
        .await
        .expect("valid plan");
    let output = tested
        .result
        .and_then(|r| r.output)
        .map(|o| ops_proto::convert::struct_to_json(&o))
        .unwrap_or_default();
    assert_eq!(
        output["violations"].as_array().map(Vec::len).unwrap_or(0),
        0,
        "{output}"
    );
    assert!(output.to_string().contains("capacity"), "{output}");
    demo.stop().await;
}

fn stage_output(trace: &Trace, stage: Stage) -> serde_json::Value {
    trace
        .stages
        .iter()
        .find(|s| s.stage == stage as i32)
        .and_then(|s| s.output.as_ref())
        .map(ops_proto::convert::struct_to_json)
        .unwrap_or_default()
}

/// The related CIs (depth > 0) of every graph result in an EXECUTE output.
fn related_codes(execute: &serde_json::Value) -> Vec<String> {
    let mut codes: Vec<String> = execute["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["graph"]["nodes"].as_array().cloned().unwrap_or_default())
        .filter(|n| n["depth"].as_f64().unwrap_or(0.0) > 0.0)
        .filter_map(|n| n["id"].as_str().map(str::to_owned))
        .collect();
    codes.sort();
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_step_feeds_the_events_statement_its_related_codes() {
    let demo = pipeline_support::start_demo(ExecutorMode::Connect).await;
    let mut client = Client::new(&demo);
    let impact = client
        .ask(question("what breaks if SAN-01 fails"))
        .await
        .expect("impact");
    let impacted = related_codes(&stage_output(
        &client.trace(&impact.trace_id).await,
        Stage::Execute,
    ));
    assert!(
        impacted.len() > 1,
        "{}",
        stage_output(&client.trace(&impact.trace_id).await, Stage::Execute)
    );

    let asked = client
        .ask(question(
            "Incidents in the last 30 days on what SAN-01's failure would impact",
        ))
        .await
        .expect("two-step");
    let trace = client.trace(&asked.trace_id).await;
    // VALIDATE: a hidden graph task, then one guarded statement whose code slots it fills.
    let validate = stage_output(&trace, Stage::Validate);
    let tasks = validate["tasks"].as_array().cloned().unwrap_or_default();
    assert_eq!(tasks.len(), 2, "{validate}");
    assert_eq!(tasks[0]["request"]["type"], "graph", "{validate}");
    assert_eq!(tasks[0]["hidden"], true);
    let slots = &tasks[1]["request"]["codes_into"];
    assert_eq!(slots["from"]["task"].as_f64(), Some(0.0), "{validate}");
    assert_eq!(
        slots["count"].as_f64(),
        Some(500.0),
        "the graph tool's max_nodes: {validate}"
    );
    assert_eq!(tasks[1]["depends_on"].as_f64(), Some(0.0));
    // EXECUTE sent exactly the graph's related CIs (not SAN-01 itself) into those slots.
    let call = trace
        .tool_calls
        .iter()
        .find(|c| c.tool == "history_tool")
        .expect("the events call");
    let params = ops_proto::convert::struct_to_json(call.input_params.as_ref().expect("input"));
    let first = slots["first"].as_f64().unwrap() as usize;
    let sent: Vec<serde_json::Value> =
        params["params"].as_array().unwrap()[first..first + 500].to_vec();
    let mut codes: Vec<String> = sent
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    codes.sort();
    assert_eq!(codes, impacted);
    assert!(sent[codes.len()..].iter().all(serde_json::Value::is_null));
    assert!(
        asked.answer.contains("on the CIs affected if") && asked.answer.contains("(SAN-01)"),
        "{}",
        asked.answer
    );

    // Nothing depends on a system: no events statement runs, and the answer says none.
    let none = client
        .ask(question(
            "Incidents in the last 30 days on what SYS-HR's failure would impact",
        ))
        .await
        .expect("empty two-step");
    let trace = client.trace(&none.trace_id).await;
    assert!(trace.tool_calls.iter().all(|c| c.tool != "history_tool"));
    assert!(none.answer.starts_with("There were no"), "{}", none.answer);
    demo.stop().await;
}
