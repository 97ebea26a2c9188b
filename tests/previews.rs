//! Author previews and screen actions on the demo with real sidecars: PreviewQuery (the
//! tenant-scoped statement, the caller's rows only, precise refusals), TestTool for every tool
//! type (published and draft), and UiAction (load_more_rows pages without gaps or repeats,
//! drill_down, refresh).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod executor_support;
mod pipeline_support;

use ops_controlplane::config::ExecutorMode;
use ops_controlplane::context::CallerContext;
use ops_proto::v1::asset_registry_client::AssetRegistryClient;
use ops_proto::v1::inspector_client::InspectorClient;
use ops_proto::v1::ops_service_client::OpsServiceClient;
use ops_proto::v1::{
    AskRequest, BundleFile, Plan, PreviewQueryRequest, Rerun, Stage, TestToolRequest, Trace,
    UiActionRequest,
};
use pbjson_types::value::Kind;
use pipeline_support::{Demo, read_trace, request};
use tonic::Code;
use tonic::transport::Channel;

fn structure(json: serde_json::Value) -> pbjson_types::Struct {
    serde_json::from_value(json).unwrap()
}

fn text(v: &pbjson_types::Value) -> String {
    match &v.kind {
        Some(Kind::StringValue(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

async fn draft(demo: &Demo, path: &str, yaml: &str) {
    demo.registry
        .import(
            &CallerContext::new("acme", "test-author"),
            vec![BundleFile {
                path: path.into(),
                content: yaml.as_bytes().to_vec(),
            }],
            false,
            false,
        )
        .await
        .expect("draft");
}

/// Codes of the CI rows the run's last EXECUTE returned, in order.
fn executed_codes(trace: &Trace) -> Vec<String> {
    let execute = trace
        .stages
        .iter()
        .rfind(|s| s.stage == Stage::Execute as i32)
        .expect("an EXECUTE record");
    let output = serde_json::to_value(execute.output.as_ref().unwrap()).unwrap();
    let result = &output["results"][0];
    let column = result["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c == "ci_code")
        .expect("a ci_code column");
    result["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[column].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn preview_query_runs_the_guarded_statement_and_names_what_refuses_it() {
    let demo = pipeline_support::start_demo(ExecutorMode::Spawn).await;
    let mut registry = AssetRegistryClient::new(demo.channel.clone());
    draft(
        &demo,
        "zone_cis.yaml",
        "type: query\nname: zone_cis\nspec:\n  source_ref: source:plant_ops\n  sql: SELECT ci_code, tenant_id FROM ci_master WHERE zone = :zone ORDER BY ci_code\n  params:\n    - {name: zone, type: PARAM_TYPE_STRING, required: true}\n",
    )
    .await;
    let preview = registry
        .preview_query(request(
            "acme",
            PreviewQueryRequest {
                name: "zone_cis".into(),
                draft: true,
                params: Some(structure(serde_json::json!({"zone": "core"}))),
                max_rows: 5,
            },
        ))
        .await
        .expect("preview")
        .into_inner();
    // The statement as it ran: scoped to the caller's tenant and clamped to the preview cap.
    assert!(
        preview.executed_sql.contains("tenant_id"),
        "{}",
        preview.executed_sql
    );
    assert!(
        preview.executed_sql.contains("LIMIT 5"),
        "{}",
        preview.executed_sql
    );
    let binds: Vec<String> = preview
        .binds
        .as_ref()
        .unwrap()
        .values
        .iter()
        .map(text)
        .collect();
    assert!(binds.contains(&"acme".to_owned()), "{binds:?}");
    assert_eq!(preview.columns, ["ci_code", "tenant_id"]);
    // zone core holds 8 CIs of acme and one of globex: five of acme's come back, capped.
    assert_eq!(preview.rows.len(), 5);
    assert!(preview.truncated);
    assert!(preview.rows.iter().all(|r| text(&r.values[1]) == "acme"));
    assert!(
        preview.source.starts_with("source:plant_ops@"),
        "{}",
        preview.source
    );

    let missing = registry
        .preview_query(request(
            "acme",
            PreviewQueryRequest {
                name: "zone_cis".into(),
                draft: true,
                ..Default::default()
            },
        ))
        .await
        .expect_err("no zone");
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert!(
        missing.message().starts_with("params.zone:"),
        "{}",
        missing.message()
    );

    let unpublished = registry
        .preview_query(request(
            "acme",
            PreviewQueryRequest {
                name: "zone_cis".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("the draft is not published");
    assert_eq!(unpublished.code(), Code::NotFound);

    // The Policy now restricts documents: a query over them is refused, naming table and rule.
    draft(
        &demo,
        "doc_titles.yaml",
        "type: query\nname: doc_titles\nspec:\n  source_ref: source:plant_ops\n  sql: SELECT title FROM documents\n",
    )
    .await;
    let policy = include_str!("../datasets/plant-ops/assets/policy.yaml").replace(
        "restricted_tables: [users, credentials]",
        "restricted_tables: [users, credentials, documents]",
    );
    demo.publish("acme", vec![("policy.yaml", policy)]).await;
    let refused = registry
        .preview_query(request(
            "acme",
            PreviewQueryRequest {
                name: "doc_titles".into(),
                draft: true,
                ..Default::default()
            },
        ))
        .await
        .expect_err("a restricted table");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("documents"),
        "{}",
        refused.message()
    );
    assert!(
        refused.message().contains("sql.restricted_table"),
        "{}",
        refused.message()
    );

    // A source nobody listens on: UNAVAILABLE, naming the source.
    demo.publish(
        "acme",
        vec![(
            "down.yaml",
            "type: source\nname: down_pg\nspec:\n  kind: SOURCE_KIND_POSTGRES\n  connection: {host: 127.0.0.1, port: 1, database: ops, user: ops, password_ref: \"env:OPS_TEST_NO_SUCH_PASSWORD\"}\n  permissions: {read_only: true}\n".to_owned(),
        )],
    )
    .await;
    draft(
        &demo,
        "down_q.yaml",
        "type: query\nname: down_q\nspec:\n  source_ref: source:down_pg\n  sql: SELECT ci_code FROM ci_master\n",
    )
    .await;
    let down = registry
        .preview_query(request(
            "acme",
            PreviewQueryRequest {
                name: "down_q".into(),
                draft: true,
                ..Default::default()
            },
        ))
        .await
        .expect_err("an unreachable source");
    assert!(
        matches!(down.code(), Code::Unavailable | Code::FailedPrecondition),
        "{down:?}"
    );
    assert!(
        down.message().contains("source:down_pg@1"),
        "{}",
        down.message()
    );
    demo.stop().await;
}

#[tokio::test]
async fn test_tool_answers_for_every_tool_type_and_for_a_draft() {
    let demo = pipeline_support::start_demo(ExecutorMode::Spawn).await;
    let mut registry = AssetRegistryClient::new(demo.channel.clone());
    let cases = [
        ("ci_tool", "zone-a에 위치한 서버를 나열해줘"),
        ("history_tool", "지난 7일간 critical 알람 몇 건?"),
        ("metric_tool", "GT-01 CPU average last week"),
        ("graph_tool", "what breaks if SAN-01 fails?"),
        ("document_tool", "GT-01 정비 절차 문서"),
    ];
    for (tool, question) in cases {
        let tested = registry
            .test_tool(request(
                "acme",
                TestToolRequest {
                    name: tool.into(),
                    draft: false,
                    input: Some(structure(serde_json::json!({
                        "question": question, "as_of": "2026-01-31T00:00:00Z",
                    }))),
                },
            ))
            .await
            .unwrap_or_else(|s| panic!("{tool}: {s:?}"))
            .into_inner();
        assert!(tested.error.is_empty(), "{tool}: {}", tested.error);
        let result = serde_json::to_value(tested.result.unwrap()).unwrap();
        assert_eq!(result["plan"]["tools"], serde_json::json!([tool]), "{tool}");
        let results = result["results"].as_array().unwrap();
        assert!(!results.is_empty(), "{tool}: {result}");
        let answered = results.iter().any(|r| {
            r["rows"].as_array().is_some_and(|rows| !rows.is_empty())
                || r["graph"]["nodes"].as_array().is_some_and(|n| n.len() > 1)
        });
        assert!(answered, "{tool} returned nothing: {result}");
    }

    // A draft of ci_tool reading fewer columns: the draft's statement runs, not the published.
    let tools: Vec<serde_yaml::Value> =
        serde_yaml::from_str(include_str!("../datasets/plant-ops/assets/tools.yaml")).unwrap();
    let mut ci_tool = tools.into_iter().find(|t| t["name"] == "ci_tool").unwrap();
    ci_tool["spec"]["config"]["columns"] = serde_yaml::from_str("[ci_code, status]").unwrap();
    draft(
        &demo,
        "ci_tool.yaml",
        &serde_yaml::to_string(&ci_tool).unwrap(),
    )
    .await;
    let plan = Plan {
        intent: "LIST".into(),
        mode: "config".into(),
        filters: [("zone".to_owned(), "zone-a".to_owned())].into(),
        ..Default::default()
    };
    let tested = registry
        .test_tool(request(
            "acme",
            TestToolRequest {
                name: "ci_tool".into(),
                draft: true,
                input: Some(structure(serde_json::json!({ "plan": plan }))),
            },
        ))
        .await
        .expect("draft tool")
        .into_inner();
    let result = serde_json::to_value(tested.result.unwrap()).unwrap();
    assert_eq!(
        result["results"][0]["columns"],
        serde_json::json!(["ci_code", "status"]),
        "{result}"
    );
    assert_eq!(result["results"][0]["rows"].as_array().unwrap().len(), 7);
    let unknown = registry
        .test_tool(request(
            "acme",
            TestToolRequest {
                name: "no_such_tool".into(),
                input: Some(structure(serde_json::json!({ "plan": plan }))),
                ..Default::default()
            },
        ))
        .await
        .expect_err("an unknown tool");
    assert_eq!(unknown.code(), Code::NotFound);
    let no_input = registry
        .test_tool(request(
            "acme",
            TestToolRequest {
                name: "ci_tool".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("no input");
    assert_eq!(no_input.code(), Code::InvalidArgument);
    demo.stop().await;
}

struct Screen {
    ops: OpsServiceClient<Channel>,
    inspector: InspectorClient<Channel>,
}

impl Screen {
    async fn act(
        &mut self,
        trace_id: &str,
        action: &str,
        inputs: serde_json::Value,
    ) -> Result<(ops_proto::v1::UiActionResponse, Trace), tonic::Status> {
        let response = self
            .ops
            .ui_action(request(
                "acme",
                UiActionRequest {
                    trace_id: trace_id.into(),
                    action_id: action.into(),
                    inputs: Some(structure(inputs)),
                    context: None,
                },
            ))
            .await?
            .into_inner();
        let trace = read_trace(&mut self.inspector, "acme", &response.trace_id).await;
        Ok((response, trace))
    }
}

#[tokio::test]
async fn ui_actions_page_drill_down_and_refresh_against_their_trace() {
    let demo = pipeline_support::start_demo(ExecutorMode::Spawn).await;
    let mut screen = Screen {
        ops: OpsServiceClient::new(demo.channel.clone()),
        inspector: InspectorClient::new(demo.channel.clone()),
    };
    // Every CI of acme (59): one list, then the same list in pages of 10.
    let list = screen
        .ops
        .ask(request(
            "acme",
            AskRequest {
                rerun: Some(Rerun {
                    base_plan: Some(Plan {
                        intent: "LIST".into(),
                        mode: "config".into(),
                        tools: vec!["ci_tool".into()],
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner();
    let all = executed_codes(&read_trace(&mut screen.inspector, "acme", &list.trace_id).await);
    assert!(all.len() >= 40, "{}", all.len());
    let mut paged = Vec::new();
    let mut offset = 0;
    loop {
        let (page, trace) = screen
            .act(
                &list.trace_id,
                "load_more_rows",
                serde_json::json!({"offset": offset, "limit": 10}),
            )
            .await
            .expect("a page");
        assert_eq!(trace.parent_trace_id, list.trace_id);
        let codes = executed_codes(&trace);
        assert!(codes.len() <= 10);
        paged.extend(codes);
        let state = serde_json::to_value(page.state_patch.unwrap()).unwrap();
        assert_eq!(state["table_offset"].as_f64(), Some(paged.len() as f64));
        if state["has_more"] == serde_json::json!(false) {
            break;
        }
        offset = paged.len();
        assert!(offset < 200, "paging does not end");
    }
    assert_eq!(paged, all, "every row once, in the list's order");

    let (_, drilled) = screen
        .act(
            &list.trace_id,
            "drill_down",
            serde_json::json!({"ci_code": "GT-01"}),
        )
        .await
        .expect("drill down");
    assert_eq!(drilled.parent_trace_id, list.trace_id);
    assert_eq!(drilled.plan_validated.as_ref().unwrap().ci_codes, ["GT-01"]);
    assert_eq!(executed_codes(&drilled), ["GT-01"]);

    let metric = screen
        .ops
        .ask(request(
            "acme",
            AskRequest {
                question: "GT-01 CPU average last week".into(),
                as_of: Some(ops_proto::convert::timestamp(
                    time::macros::datetime!(2026-01-31 00:00 UTC),
                )),
                ..Default::default()
            },
        ))
        .await
        .expect("metric")
        .into_inner();
    let (refreshed, trace) = screen
        .act(
            &metric.trace_id,
            "refresh",
            serde_json::json!({"as_of": "2026-02-01T00:00:00Z"}),
        )
        .await
        .expect("refresh");
    assert_eq!(trace.parent_trace_id, metric.trace_id);
    let window = |p: &Plan| p.metric.as_ref().unwrap().window.clone().unwrap();
    let before = window(metric.plan.as_ref().unwrap());
    let after = window(trace.plan_validated.as_ref().unwrap());
    assert_eq!(
        after.to.unwrap().seconds - before.to.unwrap().seconds,
        86_400
    );
    assert_eq!(
        after.from.unwrap().seconds - before.from.unwrap().seconds,
        86_400
    );
    assert!(!refreshed.blocks.is_empty());

    let unknown = screen
        .act(&list.trace_id, "delete_everything", serde_json::json!({}))
        .await
        .expect_err("an unknown action");
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(
        unknown.message().contains("load_more_rows"),
        "{}",
        unknown.message()
    );
    let not_a_list = screen
        .act(
            &metric.trace_id,
            "load_more_rows",
            serde_json::json!({"offset": 0}),
        )
        .await
        .expect_err("a metric has no list");
    assert_eq!(not_a_list.code(), Code::FailedPrecondition);
    demo.stop().await;
}
