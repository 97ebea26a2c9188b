//! `Inspector.Rca` on the demo with real sidecars: each kind of failure is provoked for real (a
//! misspelt name, an empty window, a truncated list, a restricted table, a stopped sidecar, a
//! trapping plugin, a failing source with a fallback) and RCA must name it first; RCA of two runs
//! around a Resolver or Mapping publish names that asset and its stage; each analysis is traced.
//! Feedback on an answer is stored against its trace, filters ListTraces and turns a disliked
//! answer into a golden-query candidate.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod executor_support;
mod pipeline_support;

use ops_controlplane::config::ExecutorMode;
use ops_controlplane::demo;
use ops_proto::v1::asset_registry_client::AssetRegistryClient;
use ops_proto::v1::inspector_client::InspectorClient;
use ops_proto::v1::ops_service_client::OpsServiceClient;
use ops_proto::v1::regression_client::RegressionClient;
use ops_proto::v1::{
    AskRequest, AssetType, CreateGoldenQueryRequest, DiffTracesRequest, FeedbackCategory,
    FeedbackRating, FeedbackRequest, Hypothesis, ListTracesRequest, PluginWorld, RcaOptions,
    RcaRequest, RcaResponse, Stage, UploadPluginRequest, rca_request,
};
use pipeline_support::{Demo, read_trace, request};
use tonic::Code;
use tonic::transport::Channel;

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

    async fn ask(&mut self, question: &str) -> String {
        self.ops
            .ask(request(
                "acme",
                AskRequest {
                    question: question.into(),
                    as_of: Some(ops_proto::convert::timestamp(
                        time::macros::datetime!(2026-01-31 00:00 UTC),
                    )),
                    ..Default::default()
                },
            ))
            .await
            .expect("ask")
            .into_inner()
            .trace_id
    }

    async fn rca(&mut self, target: rca_request::Target) -> RcaResponse {
        self.inspector
            .rca(request(
                "acme",
                RcaRequest {
                    target: Some(target),
                    options: Some(RcaOptions {
                        max_hypotheses: 10,
                        ..Default::default()
                    }),
                },
            ))
            .await
            .expect("rca")
            .into_inner()
    }

    /// RCA of the run of `question`; its top hypothesis must come from `rule` at `stage`.
    async fn top(&mut self, question: &str, rule: &str, stage: Stage) -> Hypothesis {
        let trace_id = self.ask(question).await;
        let analysed = self
            .rca(rca_request::Target::TraceId(trace_id.clone()))
            .await;
        let top = analysed
            .hypotheses
            .first()
            .unwrap_or_else(|| panic!("{question}: no hypothesis"))
            .clone();
        assert_eq!(top.rule, rule, "{question}: {:#?}", analysed.hypotheses);
        assert_eq!(top.stage, stage as i32, "{question}: {top:#?}");
        assert_eq!(top.rank, 1);
        assert!(!top.evidence.is_empty() && !top.suggested_fixes.is_empty());
        // The blocks: a summary and one per hypothesis.
        assert_eq!(analysed.blocks.len(), analysed.hypotheses.len() + 1);
        // The analysis is itself a trace, linked to the one it analysed.
        let recorded = read_trace(&mut self.inspector, "acme", &analysed.rca_trace_id).await;
        assert_eq!(recorded.mode, "rca");
        assert_eq!(recorded.parent_trace_id, trace_id);
        top
    }

    async fn diff(&mut self, baseline: &str, candidate: &str) -> RcaResponse {
        self.rca(rca_request::Target::Diff(DiffTracesRequest {
            baseline_trace_id: baseline.into(),
            candidate_trace_id: candidate.into(),
        }))
        .await
    }
}

fn policy(edit: impl Fn(String) -> String) -> (&'static str, String) {
    ("policy.yaml", edit(demo::PLANT_OPS_POLICY_YAML.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rca_names_the_cause_of_each_kind_of_failure() {
    let mut demo = pipeline_support::start_demo(ExecutorMode::Connect).await;
    let mut c = Client::new(&demo);

    let clean = c.ask("GT-01 CPU 사용률 평균 최근 1주일").await;
    let analysed = c.rca(rca_request::Target::TraceId(clean)).await;
    assert!(analysed.hypotheses.is_empty(), "{:#?}", analysed.hypotheses);

    let misspelt = c
        .top("GT-99 CPU 평균", "unresolved_name", Stage::RoutePlan)
        .await;
    assert!(misspelt.title.contains("GT-99"), "{misspelt:#?}");
    assert!(
        misspelt.description.contains("GT-01"),
        "similar codes: {misspelt:#?}"
    );
    assert_eq!(misspelt.assets[0].r#type, AssetType::Resolver as i32);

    let empty = c
        .top(
            "GT-01 이벤트 이력 지난 1시간",
            "empty_result",
            Stage::Execute,
        )
        .await;
    assert!(
        empty.evidence.iter().any(|e| e.contains("history.window")),
        "{empty:#?}"
    );

    demo.publish(
        "acme",
        vec![policy(|p| p.replace("row_limit: 1000", "row_limit: 3"))],
    )
    .await;
    let truncated = c
        .top(
            "ERP 시스템의 모든 서버를 나열해줘",
            "truncated",
            Stage::Execute,
        )
        .await;
    assert!(
        truncated.suggested_fixes[0].contains("row_limit"),
        "{truncated:#?}"
    );

    demo.publish(
        "acme",
        vec![policy(|p| {
            p.replace("[users, credentials]", "[users, credentials, documents]")
        })],
    )
    .await;
    let blocked = c
        .top(
            "가스터빈 기동 절차 문서 찾아줘",
            "policy_blocked",
            Stage::Validate,
        )
        .await;
    assert!(blocked.title.contains("sql."), "{blocked:#?}");
    assert_eq!(blocked.assets[0].r#type, AssetType::Policy as i32);
    demo.publish("acme", vec![policy(|p| p)]).await;

    // The metrics sidecar is gone: EXECUTE could not reach it.
    let metrics = demo.sidecars.remove(1);
    let _ = metrics.stop_and_logs().await;
    let stopped = c
        .top(
            "GT-01 CPU 최근 24시간 평균",
            "tool_unavailable",
            Stage::Execute,
        )
        .await;
    assert!(
        stopped.evidence.iter().any(|e| e.contains("tool_calls[")),
        "{stopped:#?}"
    );

    // A Mapping whose plugin traps: the Policy falls back to the default mapper.
    let mut registry = AssetRegistryClient::new(demo.channel.clone());
    let digest = registry
        .upload_plugin(request(
            "acme",
            UploadPluginRequest {
                wasm: ops_plugin_artifacts::fixtures::HOSTILE.to_vec(),
                expected_world: PluginWorld::Mapper as i32,
            },
        ))
        .await
        .expect("upload")
        .into_inner()
        .plugin
        .expect("plugin")
        .digest;
    demo.publish(
        "acme",
        vec![(
            "mapping.yaml",
            format!(
                "type: mapping\nname: plant_ops_answer\nspec:\n  plugin: {{digest: \"{digest}\", config: {{attack: panic}}}}\n"
            ),
        )],
    )
    .await;
    let trapped = c
        .top(
            "ERP 시스템의 모든 서버를 나열해줘",
            "plugin_fallback",
            Stage::Compose,
        )
        .await;
    assert_eq!(trapped.assets[0].r#type, AssetType::Mapping as i32);

    demo.publish(
        "acme",
        vec![(
            "mapping.yaml",
            include_str!("../datasets/plant-ops/assets/mapping.yaml").to_owned(),
        )],
    )
    .await;

    // The primary source is unreachable; the Policy's fallback (plant-ops in PostgreSQL) answers.
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
            policy(|mut p| {
                p.push_str("  fallback_sources: [source:plant_ops_replica]\n");
                p
            }),
        ],
    )
    .await;
    let fallback = c
        .top(
            "ERP 시스템의 모든 서버를 나열해줘",
            "fallback_source_used",
            Stage::Execute,
        )
        .await;
    assert_eq!(fallback.assets[0].r#type, AssetType::Source as i32);
    replica.cleanup().await;

    for (id, code) in [
        ("not-a-trace-id", Code::InvalidArgument),
        ("6f1c2a3e-0000-4000-8000-000000000000", Code::NotFound),
    ] {
        let refused = c
            .inspector
            .rca(request(
                "acme",
                RcaRequest {
                    target: Some(rca_request::Target::TraceId(id.into())),
                    options: None,
                },
            ))
            .await
            .expect_err("no such trace");
        assert_eq!(refused.code(), code, "{refused:?}");
    }
    let no_target = c
        .inspector
        .rca(request("acme", RcaRequest::default()))
        .await
        .expect_err("no target");
    assert_eq!(no_target.code(), Code::InvalidArgument);
    assert!(no_target.message().contains("target"), "{no_target:?}");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rca_of_two_runs_names_the_published_asset_and_its_stage() {
    let demo = pipeline_support::start_demo(ExecutorMode::Spawn).await;
    let mut c = Client::new(&demo);
    let question = "1호기 가스터빈 발전량 평균 (최근 24시간)";
    let before = c.ask(question).await;
    let again = c.ask(question).await;
    let same = c.diff(&before, &again).await;
    assert!(same.hypotheses.is_empty(), "{:#?}", same.hypotheses);

    // The resolver now sends "1호기" to GT-02.
    let mut resolver: serde_json::Value =
        serde_yaml::from_str(demo::PLANT_OPS_RESOLVER_YAML).unwrap();
    for rule in resolver["spec"]["rules"].as_array_mut().unwrap() {
        if rule["rule_data"]["target_entity"] == "ci_code:GT-01" {
            rule["rule_data"]["target_entity"] = "ci_code:GT-02".into();
        }
    }
    demo.publish("acme", vec![("resolver.json", resolver.to_string())])
        .await;
    let after_resolver = c.ask(question).await;
    let analysed = c.diff(&before, &after_resolver).await;
    let top = &analysed.hypotheses[0];
    assert_eq!(top.rule, "asset_changed", "{:#?}", analysed.hypotheses);
    assert_eq!(top.stage, Stage::RoutePlan as i32);
    assert!(top.title.contains("resolver `plant_resolver`"), "{top:#?}");
    assert!(top.evidence.iter().any(|e| e.contains("GT-02")), "{top:#?}");
    assert_eq!(top.assets[0].version, 2);

    // The Mapping words the metric differently: COMPOSE diverges first.
    let mapping = include_str!("../datasets/plant-ops/assets/mapping.yaml").replace(
        "{{ci_code}} {{metric_name}} {{aggregation}} over {{window}}: {{value}} {{unit}}",
        "{{ci_code}} {{metric_name}} is {{value}} {{unit}}",
    );
    demo.publish("acme", vec![("mapping.yaml", mapping)]).await;
    let after_mapping = c.ask(question).await;
    let analysed = c.diff(&after_resolver, &after_mapping).await;
    let top = &analysed.hypotheses[0];
    assert_eq!(top.rule, "asset_changed", "{:#?}", analysed.hypotheses);
    assert_eq!(top.stage, Stage::Compose as i32);
    assert!(top.title.contains("mapping `plant_ops_answer`"), "{top:#?}");
    let recorded = read_trace(&mut c.inspector, "acme", &analysed.rca_trace_id).await;
    assert_eq!(recorded.parent_trace_id, after_mapping);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_stored_against_the_trace_and_filters_list_traces() {
    let demo = pipeline_support::start_demo(ExecutorMode::Spawn).await;
    let mut c = Client::new(&demo);
    let liked = c.ask("GT-01 CPU 사용률 평균 최근 1주일").await;
    let disliked = c.ask("ERP 시스템의 모든 서버를 나열해줘").await;
    let feedback = |trace_id: &str, rating: FeedbackRating| FeedbackRequest {
        trace_id: trace_id.into(),
        rating: rating as i32,
        comment: "two servers are missing".into(),
        score: 2,
        category: FeedbackCategory::WrongData as i32,
    };
    let mut stored = Vec::new();
    for (trace_id, rating) in [
        (&liked, FeedbackRating::Positive),
        (&disliked, FeedbackRating::Negative),
    ] {
        let response = c
            .ops
            .feedback(request("acme", feedback(trace_id, rating)))
            .await
            .expect("feedback")
            .into_inner();
        stored.push(response.feedback_id);
    }
    let (principal, rating, score, category): (String, String, Option<i64>, String) =
        sqlx::query_as(
            "SELECT principal, rating, score, category FROM user_feedback WHERE feedback_id = $1",
        )
        .bind(&stored[1])
        .fetch_one(demo.registry.db().pool())
        .await
        .expect("the stored feedback");
    assert_eq!(
        (rating.as_str(), score, category.as_str()),
        ("negative", Some(2), "wrong_data")
    );
    assert!(!principal.is_empty());

    let negative = c
        .inspector
        .list_traces(request(
            "acme",
            ListTracesRequest {
                feedback: FeedbackRating::Negative as i32,
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner();
    let ids: Vec<&str> = negative
        .traces
        .iter()
        .map(|t| t.trace_id.as_str())
        .collect();
    assert_eq!(ids, [disliked.as_str()]);

    // The disliked answer becomes a golden-query candidate in one call, with what the right
    // answer must contain (the disliked run is no baseline).
    let mut regression = RegressionClient::new(demo.channel.clone());
    let candidate = regression
        .create_golden_query(request(
            "acme",
            CreateGoldenQueryRequest {
                name: "erp-servers".into(),
                feedback_id: stored[1].clone(),
                expected_values: vec!["ERP-DB-01".into()],
                ..Default::default()
            },
        ))
        .await
        .expect("candidate from feedback")
        .into_inner()
        .golden_query
        .unwrap();
    assert_eq!(
        candidate.request.as_ref().map(|r| r.question.as_str()),
        Some("ERP 시스템의 모든 서버를 나열해줘")
    );
    assert!(candidate.baseline_trace_id.is_empty());
    let bare = regression
        .create_golden_query(request(
            "acme",
            CreateGoldenQueryRequest {
                name: "erp-servers-2".into(),
                feedback_id: stored[1].clone(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("no expectation");
    assert_eq!(bare.code(), Code::InvalidArgument);
    assert!(bare.message().contains("expected_values"), "{bare:?}");

    // Bad input names the field; another tenant's trace is not found.
    for (bad, field) in [
        (
            FeedbackRequest {
                rating: 0,
                ..feedback(&liked, FeedbackRating::Positive)
            },
            "rating",
        ),
        (
            FeedbackRequest {
                score: 6,
                ..feedback(&liked, FeedbackRating::Positive)
            },
            "score",
        ),
        (
            FeedbackRequest {
                comment: "x".repeat(2001),
                ..feedback(&liked, FeedbackRating::Positive)
            },
            "comment",
        ),
    ] {
        let refused = c
            .ops
            .feedback(request("acme", bad))
            .await
            .expect_err("bad feedback");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains(field), "{refused:?}");
    }
    let elsewhere = c
        .ops
        .feedback(request(
            "globex",
            feedback(&liked, FeedbackRating::Negative),
        ))
        .await
        .expect_err("another tenant's trace");
    assert_eq!(elsewhere.code(), Code::NotFound);
    demo.stop().await;
}
