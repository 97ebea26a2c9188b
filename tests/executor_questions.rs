//! The data behind every plant-ops benchmark question, served by real sidecar processes through
//! the control plane's executor client, on SQLite, PostgreSQL and (SQL executor) MariaDB. The
//! requests below are what a planner would send; the expected answers come from the question
//! file, never from this test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod executor_support;

use std::collections::BTreeMap;

use executor_support::*;
use ops_controlplane::execute::ExecutorClient;
use ops_proto::executor::{
    Aggregation, ExecuteRequest, GraphOperation, GraphRequest, GraphResult, MetricRequest,
    ResultSet, SqlRequest, Value, execute_request, execute_response, value::Kind,
};
use ops_proto::executor_api::{CallContext, ExecutorApi};
use serde_json::Value as Json;
use time::{Duration, OffsetDateTime};

struct Clients {
    sql: ExecutorClient,
    metrics: ExecutorClient,
    graph: ExecutorClient,
}

/// What a question's data produced.
#[derive(Debug, Default)]
struct Observed {
    codes: Vec<String>,
    numbers: Vec<f64>,
    count: Option<i64>,
    event_ids: Vec<String>,
    doc_ids: Vec<String>,
    path: Vec<String>,
    series_points: Option<usize>,
    text: String,
}

fn text(v: &str) -> Value {
    ops_executors::values::text(v)
}

fn ts(v: OffsetDateTime) -> Value {
    ops_executors::values::timestamp(v)
}

fn cell_text(v: &Value) -> String {
    match &v.kind {
        Some(Kind::TextValue(s)) | Some(Kind::UuidValue(s)) | Some(Kind::DecimalValue(s)) => {
            s.clone()
        }
        Some(Kind::IntValue(i)) => i.to_string(),
        Some(Kind::FloatValue(f)) => f.to_string(),
        _ => String::new(),
    }
}

fn cell_f64(v: &Value) -> f64 {
    match &v.kind {
        Some(Kind::FloatValue(f)) => *f,
        Some(Kind::IntValue(i)) => *i as f64,
        Some(Kind::DecimalValue(s)) => s.parse().unwrap(),
        other => panic!("not a number: {other:?}"),
    }
}

fn column(rows: &ResultSet, name: &str) -> Vec<Value> {
    let index = rows
        .columns
        .iter()
        .position(|c| c.name == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    rows.rows.iter().map(|r| r.values[index].clone()).collect()
}

impl Clients {
    async fn sql(
        &self,
        source: &ops_proto::executor::SourceConfig,
        sql: &str,
        params: &[(&str, Value)],
    ) -> ResultSet {
        let request = ExecuteRequest {
            source: Some(source.clone()),
            request: Some(execute_request::Request::Sql(SqlRequest {
                sql: sql.to_owned(),
                named_params: params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect::<BTreeMap<_, _>>(),
                ..Default::default()
            })),
            trace_id: "questions".into(),
        };
        match self
            .sql
            .execute(CallContext::default(), request)
            .await
            .expect("sql")
            .result
        {
            Some(execute_response::Result::Rows(rows)) => rows,
            other => panic!("expected rows, got {other:?}"),
        }
    }

    async fn metric(
        &self,
        source: &ops_proto::executor::SourceConfig,
        request: MetricRequest,
    ) -> ResultSet {
        let request = ExecuteRequest {
            source: Some(source.clone()),
            request: Some(execute_request::Request::Metric(MetricRequest {
                columns: Some(metric_columns()),
                ..request
            })),
            trace_id: "questions".into(),
        };
        match self
            .metrics
            .execute(CallContext::default(), request)
            .await
            .expect("metric")
            .result
        {
            Some(execute_response::Result::Rows(rows)) => rows,
            other => panic!("expected rows, got {other:?}"),
        }
    }

    async fn graph(
        &self,
        source: &ops_proto::executor::SourceConfig,
        request: GraphRequest,
    ) -> GraphResult {
        let request = ExecuteRequest {
            source: Some(source.clone()),
            request: Some(execute_request::Request::Graph(GraphRequest {
                columns: Some(graph_columns()),
                ..request
            })),
            trace_id: "questions".into(),
        };
        match self
            .graph
            .execute(CallContext::default(), request)
            .await
            .expect("graph")
            .result
        {
            Some(execute_response::Result::Graph(graph)) => graph,
            other => panic!("expected a graph, got {other:?}"),
        }
    }
}

const CI_SELECT: &str =
    "SELECT ci_code, ci_name, ip_address FROM ci_master WHERE tenant_id = :tenant";

fn codes(rows: &ResultSet) -> Vec<String> {
    column(rows, "ci_code").iter().map(cell_text).collect()
}

fn graph_codes(graph: &GraphResult) -> Vec<String> {
    graph
        .nodes
        .iter()
        .filter(|n| n.depth > 0)
        .map(|n| n.code.clone())
        .collect()
}

/// The request a planner would make for each question, run through the executors.
async fn observe(
    clients: &Clients,
    source: &ops_proto::executor::SourceConfig,
    q: &Json,
) -> Option<Observed> {
    let id = q["id"].as_str().unwrap();
    let tenant = q["tenant"].as_str().unwrap().to_owned();
    let as_of = OffsetDateTime::parse(
        q["as_of"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let t = || ("tenant", text(&tenant));
    let window = |hours: i64| {
        (
            Some(ops_executors::values::to_timestamp(
                as_of - Duration::hours(hours),
            )),
            Some(ops_executors::values::to_timestamp(as_of)),
        )
    };
    let list = |filters: &[(&'static str, &'static str)]| {
        let mut sql = CI_SELECT.to_owned();
        let mut params = vec![t()];
        for (column, value) in filters {
            sql.push_str(&format!(" AND {column} = :{column}"));
            params.push((column, text(value)));
        }
        sql.push_str(" ORDER BY ci_code");
        (sql, params)
    };
    let events = |filters: &[(&'static str, &'static str)], code: Option<&str>, hours: i64| {
        let mut sql = "SELECT e.event_id FROM events e JOIN ci_master c ON c.ci_id = e.ci_id AND c.tenant_id = e.tenant_id WHERE e.tenant_id = :tenant AND e.occurred_at >= :from AND e.occurred_at < :to".to_owned();
        let mut params = vec![
            t(),
            ("from", ts(as_of - Duration::hours(hours))),
            ("to", ts(as_of)),
        ];
        for (column, value) in filters {
            sql.push_str(&format!(" AND e.{column} = :{column}"));
            params.push((column, text(value)));
        }
        if let Some(code) = code {
            sql.push_str(" AND c.ci_code = :code");
            params.push(("code", text(code)));
        }
        sql.push_str(" ORDER BY e.occurred_at DESC");
        (sql, params)
    };
    let metric = |codes: &[&str], metric: &str, aggregation: Aggregation, hours: Option<i64>| {
        let (from, to) = match hours {
            Some(h) => window(h),
            None => (None, Some(ops_executors::values::to_timestamp(as_of))),
        };
        MetricRequest {
            tenant: tenant.clone(),
            ci_codes: codes.iter().map(|c| (*c).to_owned()).collect(),
            metric: metric.to_owned(),
            from,
            to,
            aggregation: aggregation as i32,
            ..Default::default()
        }
    };
    let graph = |operation: GraphOperation, code: &str, relations: &[&str]| GraphRequest {
        tenant: tenant.clone(),
        operation: operation as i32,
        ci_code: code.to_owned(),
        relation_types: relations.iter().map(|r| (*r).to_owned()).collect(),
        ..Default::default()
    };

    let mut o = Observed::default();
    let run_list = |filters: Vec<(&'static str, &'static str)>| async move {
        let (sql, params) = list(&filters);
        clients.sql(source, &sql, &params).await
    };
    match id {
        "p01" => o.codes = codes(&run_list(vec![("system", "ERP"), ("ci_type", "Server")]).await),
        "p02" => {
            o.codes = codes(
                &run_list(vec![
                    ("system", "MES"),
                    ("role", "web"),
                    ("ci_type", "Server"),
                ])
                .await,
            )
        }
        "p03" => o.codes = codes(&run_list(vec![("zone", "zone-a"), ("ci_type", "Server")]).await),
        "p04" | "p38" | "p07" => {
            let code = if id == "p07" { "ERP-DB-01" } else { "GT-01" };
            let rows = run_list(vec![("ci_code", code)]).await;
            o.codes = codes(&rows);
            o.text = rows
                .rows
                .iter()
                .flat_map(|r| r.values.iter().map(cell_text))
                .collect::<Vec<_>>()
                .join(" ");
        }
        "p05" => {
            o.codes = codes(&run_list(vec![("ci_type", "Server"), ("status", "maintenance")]).await)
        }
        "p06" | "p09" => {
            let (column, value) = if id == "p06" {
                ("os", "Windows")
            } else {
                ("status", "inactive")
            };
            let rows = clients
                .sql(source, &format!("SELECT COUNT(*) AS n FROM ci_master WHERE tenant_id = :tenant AND ci_type = :type AND {column} = :v"), &[t(), ("type", text("Server")), ("v", text(value))])
                .await;
            o.count = Some(cell_f64(&column_of(&rows, "n")) as i64);
        }
        "p08" => o.codes = codes(&run_list(vec![("ci_type", "GasTurbine")]).await),
        "p10" => o.codes = codes(&run_list(vec![("system", "SCADA"), ("ci_type", "Server")]).await),
        "p19" | "p21" | "p23" => {
            let (filters, code, hours): (&[(&'static str, &'static str)], &str, i64) = match id {
                "p19" => (&[], "GT-01", 30 * 24),
                "p21" => (&[("event_type", "incident")], "ERP-DB-01", 30 * 24),
                _ => (&[], "SCADA-SRV-03", 3 * 24),
            };
            let (sql, params) = events(filters, Some(code), hours);
            o.event_ids = column(&clients.sql(source, &sql, &params).await, "event_id")
                .iter()
                .map(cell_text)
                .collect();
        }
        "p20" | "p22" => {
            let (filters, hours): (&[(&'static str, &'static str)], i64) = if id == "p20" {
                (&[("event_type", "alarm"), ("severity", "critical")], 7 * 24)
            } else {
                (&[("event_type", "maintenance")], 30 * 24)
            };
            let (sql, params) = events(filters, None, hours);
            o.count = Some(clients.sql(source, &sql, &params).await.rows.len() as i64);
        }
        "p31" | "p32" => {
            let terms: &[&str] = if id == "p31" {
                &["가스터빈", "기동", "절차"]
            } else {
                &["back up", "backup", "erp", "database"]
            };
            let score = terms
                .iter()
                .enumerate()
                .map(|(i, _)| format!("CASE WHEN LOWER(title) LIKE :t{i} OR LOWER(content) LIKE :t{i} THEN 1 ELSE 0 END"))
                .collect::<Vec<_>>()
                .join(" + ");
            let names: Vec<String> = (0..terms.len()).map(|i| format!("t{i}")).collect();
            let mut params: Vec<(&str, Value)> = vec![t()];
            for (name, term) in names.iter().zip(terms) {
                params.push((name.as_str(), text(&format!("%{term}%"))));
            }
            let sql = format!(
                "SELECT doc_id, {score} AS score FROM documents WHERE tenant_id = :tenant ORDER BY score DESC, doc_id LIMIT 3"
            );
            o.doc_ids = column(&clients.sql(source, &sql, &params).await, "doc_id")
                .iter()
                .map(cell_text)
                .collect();
        }
        "p11" | "p12" | "p15" | "p16" | "p17" | "p18" | "p39" | "p40" => {
            let request = match id {
                "p11" => metric(&["GT-01"], "cpu_usage", Aggregation::Avg, Some(7 * 24)),
                "p12" => metric(
                    &["ERP-DB-01"],
                    "memory_usage",
                    Aggregation::Max,
                    Some(3 * 24),
                ),
                "p15" => metric(&["GT-02"], "power_output", Aggregation::Sum, Some(7 * 24)),
                "p16" => metric(&["HR-DB-01"], "disk_usage", Aggregation::Latest, None),
                "p17" => metric(&["MES-DB-01"], "cpu_usage", Aggregation::Min, Some(48)),
                "p18" => metric(&["GT-01"], "power_output", Aggregation::Avg, Some(24)),
                "p39" => metric(&["ERP-WEB-01"], "cpu_usage", Aggregation::Avg, Some(24)),
                _ => metric(&["ERP-DB-01"], "cpu_usage", Aggregation::Avg, Some(24)),
            };
            let rows = clients.metric(source, request).await;
            o.codes = codes(&rows);
            o.numbers = column(&rows, "value").iter().map(cell_f64).collect();
        }
        "p13" => {
            let mut request = metric(&["GT-03"], "temperature", Aggregation::Avg, Some(24));
            request.bucket_seconds = 3600;
            let rows = clients.metric(source, request).await;
            o.series_points = Some(rows.rows.len());
            let values: Vec<f64> = column(&rows, "value").iter().map(cell_f64).collect();
            o.numbers = vec![values.iter().cloned().fold(f64::MIN, f64::max)];
        }
        "p14" => {
            let servers = codes(&run_list(vec![("ci_type", "Server")]).await);
            let servers: Vec<&str> = servers.iter().map(String::as_str).collect();
            let mut request = metric(&servers, "cpu_usage", Aggregation::Avg, Some(24));
            request.top_n = 3;
            let rows = clients.metric(source, request).await;
            o.codes = codes(&rows);
            o.numbers = column(&rows, "value").iter().map(cell_f64).collect();
        }
        "p24" => {
            o.codes = graph_codes(
                &clients
                    .graph(
                        source,
                        graph(GraphOperation::Dependents, "ERP-DB-01", &["depends_on"]),
                    )
                    .await,
            )
        }
        "p25" => {
            o.codes = graph_codes(
                &clients
                    .graph(source, graph(GraphOperation::Impact, "ERP-DB-01", &[]))
                    .await,
            )
        }
        "p26" => {
            let mut request = graph(GraphOperation::ShortestPath, "GT-01", &[]);
            request.target_ci_code = "TR-01".into();
            o.path = clients.graph(source, request).await.path;
        }
        "p27" => {
            o.codes = graph_codes(
                &clients
                    .graph(source, graph(GraphOperation::Neighbors, "PLC-03", &[]))
                    .await,
            )
        }
        "p28" => {
            o.codes = graph_codes(
                &clients
                    .graph(
                        source,
                        graph(GraphOperation::Dependents, "SAN-02", &["stored_on"]),
                    )
                    .await,
            )
        }
        "p29" => {
            o.codes = graph_codes(
                &clients
                    .graph(
                        source,
                        graph(GraphOperation::Dependencies, "MES-APP-01", &["depends_on"]),
                    )
                    .await,
            )
        }
        "p30" => {
            o.codes = graph_codes(
                &clients
                    .graph(source, graph(GraphOperation::Composition, "SYS-SCADA", &[]))
                    .await,
            )
        }
        // Direct answers and rejections have no data behind them.
        _ => return None,
    }
    Some(o)
}

fn column_of(rows: &ResultSet, name: &str) -> Value {
    column(rows, name).into_iter().next().expect("one row")
}

fn check(q: &Json, o: &Observed) {
    let id = q["id"].as_str().unwrap();
    let e = &q["expect"];
    if let Some(expected) = e.get("codes") {
        let mut expected = strings(expected);
        expected.sort();
        let mut got = o.codes.clone();
        got.sort();
        if e["codes_exact"].as_bool() == Some(true) {
            assert_eq!(got, expected, "{id}: codes");
        } else {
            for code in &expected {
                assert!(got.contains(code), "{id}: {code} missing from {got:?}");
            }
        }
    }
    if let Some(expected) = e.get("ranked_codes") {
        assert_eq!(o.codes, strings(expected), "{id}: ranking");
    }
    if let Some(expected) = e.get("numbers").and_then(Json::as_array) {
        let got: Vec<f64> = o.numbers.iter().map(|v| round2(*v)).collect();
        for n in expected.iter().filter_map(Json::as_f64) {
            assert!(
                got.iter().any(|g| (g - n).abs() < 0.005),
                "{id}: {n} not among {got:?}"
            );
        }
    }
    if let Some(expected) = e.get("count").and_then(Json::as_i64) {
        assert_eq!(o.count, Some(expected), "{id}: count");
    }
    if let Some(expected) = e.get("event_ids") {
        let mut expected = strings(expected);
        expected.sort();
        let mut got = o.event_ids.clone();
        got.sort();
        assert_eq!(got, expected, "{id}: event ids");
    }
    if let Some(expected) = e.get("doc_ids") {
        let expected = strings(expected);
        assert_eq!(
            o.doc_ids.first(),
            expected.first(),
            "{id}: best document among {:?}",
            o.doc_ids
        );
    }
    if let Some(expected) = e.get("path") {
        assert_eq!(o.path, strings(expected), "{id}: path");
    }
    if let Some(expected) = e.get("series_points").and_then(Json::as_u64) {
        assert_eq!(
            o.series_points,
            Some(expected as usize),
            "{id}: series points"
        );
    }
    for needle in strings(&e["contains"]) {
        assert!(
            o.text.contains(&needle),
            "{id}: {needle:?} not in {:?}",
            o.text
        );
    }
    for needle in strings(&e["absent"]) {
        assert!(
            !o.text.contains(&needle),
            "{id}: {needle:?} must not appear in {:?}",
            o.text
        );
    }
}

async fn run_all(plant: PlantOps) -> usize {
    let (sql, metrics, graph) = (
        Sidecar::start(&SQL).await,
        Sidecar::start(&METRICS).await,
        Sidecar::start(&GRAPH).await,
    );
    let clients = Clients {
        sql: client("sql", &[sql.uri()], fast_retry()),
        metrics: client("metrics", &[metrics.uri()], fast_retry()),
        graph: client("graph", &[graph.uri()], fast_retry()),
    };
    let mut checked = 0;
    for line in ops_datasets::plant_ops::QUESTIONS_JSONL
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let q: Json = serde_json::from_str(line).unwrap();
        if let Some(observed) = observe(&clients, &plant.source, &q).await {
            check(&q, &observed);
            checked += 1;
        }
    }
    plant.cleanup().await;
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_question_on_sqlite() {
    // 40 questions, of which 5 are direct answers or rejections without data.
    assert_eq!(run_all(PlantOps::sqlite().await).await, 35);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_question_on_postgres() {
    assert_eq!(run_all(PlantOps::postgres().await).await, 35);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_question_on_mariadb() {
    assert_eq!(run_all(PlantOps::mysql().await).await, 35);
}
