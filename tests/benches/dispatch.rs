//! Executor dispatch benchmark (one run, medians): a point lookup through the control plane's
//! executor client and a real sidecar process vs the same SQL through sqlx in-process; a 7-day
//! metric average; the impact closure. `cargo bench -p ops-tests --bench dispatch`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../executor_support/mod.rs"]
mod executor_support;

use std::time::{Duration, Instant};

use executor_support::*;
use ops_controlplane::execute::ExecutorClient;
use ops_proto::executor::{
    Aggregation, ExecuteRequest, GraphOperation, GraphRequest, MetricRequest, SqlRequest,
    execute_request,
};
use ops_proto::executor_api::{CallContext, ExecutorApi};

const POINT: &str = "SELECT ci_code, ci_name, ip_address FROM ci_master WHERE tenant_id = 'acme' AND ci_code = 'ERP-DB-01'";

fn stats(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

async fn time<F, Fut>(n: usize, mut f: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n / 10 {
        f().await;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        f().await;
        samples.push(started.elapsed());
    }
    stats(samples)
}

async fn call(client: &ExecutorClient, request: &ExecuteRequest) {
    client
        .execute(CallContext::default(), request.clone())
        .await
        .expect("call");
}

fn request(plant: &PlantOps, kind: execute_request::Request) -> ExecuteRequest {
    ExecuteRequest {
        source: Some(plant.source.clone()),
        request: Some(kind),
        trace_id: String::new(),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let n = 2000;
        let as_of = ops_datasets::plant_ops::ANCHOR_TIME;
        let ts = ops_executors::values::to_timestamp;
        for engine in ["sqlite", "postgres"] {
            let plant = if engine == "sqlite" { PlantOps::sqlite().await } else { PlantOps::postgres().await };
            let (sql, metrics, graph) = (Sidecar::start(&SQL).await, Sidecar::start(&METRICS).await, Sidecar::start(&GRAPH).await);
            let sql_client = client("sql", &[sql.uri()], fast_retry());
            let metrics_client = client("metrics", &[metrics.uri()], fast_retry());
            let graph_client = client("graph", &[graph.uri()], fast_retry());

            let point = request(&plant, execute_request::Request::Sql(SqlRequest { sql: POINT.into(), ..Default::default() }));
            let (via_client, via_client_p99) = time(n, || call(&sql_client, &point)).await;

            let (direct, direct_p99) = if engine == "sqlite" {
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&plant.source.path).read_only(true))
                    .await
                    .unwrap();
                time(n, || {
                    let pool = pool.clone();
                    async move {
                        sqlx::query(POINT).fetch_all(&pool).await.unwrap();
                    }
                })
                .await
            } else {
                let s = &plant.source;
                let url = format!("postgres://{}@{}:{}/{}", s.user, s.host, s.port, s.database);
                let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&url).await.unwrap();
                time(n, || {
                    let pool = pool.clone();
                    async move {
                        sqlx::query(POINT).fetch_all(&pool).await.unwrap();
                    }
                })
                .await
            };

            let metric = request(
                &plant,
                execute_request::Request::Metric(MetricRequest {
                    columns: Some(metric_columns()),
                    tenant: "acme".into(),
                    ci_codes: vec!["GT-01".into()],
                    metric: "cpu_usage".into(),
                    from: Some(ts(as_of - time::Duration::days(7))),
                    to: Some(ts(as_of)),
                    aggregation: Aggregation::Avg as i32,
                    ..Default::default()
                }),
            );
            let (metric_p50, metric_p99) = time(n / 4, || call(&metrics_client, &metric)).await;
            let impact = request(
                &plant,
                execute_request::Request::Graph(GraphRequest {
                    columns: Some(graph_columns()),
                    tenant: "acme".into(),
                    operation: GraphOperation::Impact as i32,
                    ci_code: "ERP-DB-01".into(),
                    ..Default::default()
                }),
            );
            let (impact_p50, impact_p99) = time(n / 4, || call(&graph_client, &impact)).await;

            println!("{engine}: point lookup via executor client + sidecar  p50 {via_client:>8.1} us  p99 {via_client_p99:>8.1} us");
            println!("{engine}: point lookup via sqlx in-process            p50 {direct:>8.1} us  p99 {direct_p99:>8.1} us");
            println!("{engine}: ratio (client / in-process, medians)        {:.2}x", via_client / direct);
            println!("{engine}: 7-day metric average (GT-01 cpu_usage)       p50 {metric_p50:>8.1} us  p99 {metric_p99:>8.1} us");
            println!("{engine}: impact closure (ERP-DB-01, 8 CIs)            p50 {impact_p50:>8.1} us  p99 {impact_p99:>8.1} us");
            drop((sql, metrics, graph));
            plant.cleanup().await;
        }
    });
}
