//! Safety at the executor alone, as if the control plane had been bypassed: a raw gRPC client
//! talks straight to real sidecar processes.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod executor_support;

use std::time::{Duration, Instant};

use executor_support::*;
use ops_proto::executor::executor_client::ExecutorClient as RawClient;
use ops_proto::executor::{
    ExecuteRequest, ExecuteResponse, SourceConfig, SqlRequest, TestConnectionRequest,
    execute_request, execute_response,
};
use tonic::Code;

async fn raw(sidecar: &Sidecar) -> RawClient<tonic::transport::Channel> {
    RawClient::connect(sidecar.uri()).await.expect("connect")
}

fn sql_request(source: &SourceConfig, sql: &str, max_rows: u32) -> ExecuteRequest {
    ExecuteRequest {
        source: Some(source.clone()),
        request: Some(execute_request::Request::Sql(SqlRequest {
            sql: sql.to_owned(),
            max_rows,
            ..Default::default()
        })),
        trace_id: "safety".into(),
    }
}

async fn run(
    client: &mut RawClient<tonic::transport::Channel>,
    request: ExecuteRequest,
    timeout: Duration,
) -> Result<ExecuteResponse, tonic::Status> {
    let mut request = tonic::Request::new(request);
    request.set_timeout(timeout);
    client.execute(request).await.map(|r| r.into_inner())
}

fn rows(response: ExecuteResponse) -> ops_proto::executor::ResultSet {
    match response.result {
        Some(execute_response::Result::Rows(rows)) => rows,
        other => panic!("expected rows, got {other:?}"),
    }
}

const WRITES: [&str; 7] = [
    "INSERT INTO ci_master (ci_id) VALUES ('x')",
    "UPDATE ci_master SET ci_name = 'pwned'",
    "DELETE FROM events",
    "WITH gone AS (DELETE FROM events RETURNING event_id) SELECT event_id FROM gone",
    "SELECT ci_code FROM ci_master FOR UPDATE",
    "SELECT 1; DELETE FROM events",
    "DROP TABLE ci_master",
];

async fn writes_are_refused(plant: PlantOps) {
    let sidecar = Sidecar::start(&SQL).await;
    let mut client = raw(&sidecar).await;
    for sql in WRITES {
        let status = run(
            &mut client,
            sql_request(&plant.source, sql, 0),
            Duration::from_secs(5),
        )
        .await
        .expect_err(sql);
        assert!(
            matches!(
                status.code(),
                Code::PermissionDenied | Code::InvalidArgument
            ),
            "{sql}: {status:?}"
        );
    }
    // Nothing changed.
    let count = rows(
        run(
            &mut client,
            sql_request(&plant.source, "SELECT COUNT(*) FROM events", 0),
            Duration::from_secs(5),
        )
        .await
        .expect("count"),
    );
    assert_eq!(
        format!("{:?}", count.rows[0].values[0].kind),
        "Some(IntValue(437))"
    );
    plant.cleanup().await;
}

#[tokio::test]
async fn writes_are_refused_on_sqlite() {
    writes_are_refused(PlantOps::sqlite().await).await;
}

#[tokio::test]
async fn writes_are_refused_on_postgres() {
    writes_are_refused(PlantOps::postgres().await).await;
}

#[tokio::test]
async fn writes_are_refused_on_mariadb() {
    writes_are_refused(PlantOps::mysql().await).await;
}

#[tokio::test]
async fn the_read_only_transaction_holds_where_the_parser_sees_a_plain_select() {
    // nextval() writes, yet parses as an ordinary SELECT: PostgreSQL's READ ONLY transaction is
    // what refuses it.
    let plant = PlantOps::postgres().await;
    let admin = sqlx::PgPool::connect(&plant_url(&plant))
        .await
        .expect("admin pool");
    sqlx::query("CREATE SEQUENCE probe_seq")
        .execute(&admin)
        .await
        .expect("sequence");
    let sidecar = Sidecar::start(&SQL).await;
    let mut client = raw(&sidecar).await;
    let status = run(
        &mut client,
        sql_request(&plant.source, "SELECT nextval('probe_seq')", 0),
        Duration::from_secs(5),
    )
    .await
    .expect_err("nextval");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("read-only"),
        "{}",
        status.message()
    );
    admin.close().await;
    plant.cleanup().await;
}

fn plant_url(plant: &PlantOps) -> String {
    let s = &plant.source;
    format!("postgres://{}@{}:{}/{}", s.user, s.host, s.port, s.database)
}

#[tokio::test]
async fn a_sleep_past_the_deadline_is_cancelled_and_the_pool_recovers() {
    let plant = PlantOps::postgres().await;
    let sidecar = Sidecar::start(&SQL).await;
    let mut client = raw(&sidecar).await;
    let started = Instant::now();
    let status = run(
        &mut client,
        sql_request(&plant.source, "SELECT pg_sleep(10)", 0),
        Duration::from_millis(500),
    )
    .await
    .expect_err("pg_sleep");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // The database cancelled the statement itself (statement_timeout), so no backend is still
    // sleeping, and the next call works.
    let admin = sqlx::PgPool::connect(&plant_url(&plant))
        .await
        .expect("admin pool");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sleeping: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active'",
    )
    .fetch_one(&admin)
    .await
    .expect("activity");
    assert_eq!(sleeping, 0);
    admin.close().await;
    let ok = run(
        &mut client,
        sql_request(&plant.source, "SELECT 1 AS one", 0),
        Duration::from_secs(5),
    )
    .await;
    assert!(ok.is_ok(), "{ok:?}");
    plant.cleanup().await;
}

#[tokio::test]
async fn a_runaway_sqlite_query_is_interrupted_at_the_deadline() {
    let plant = PlantOps::sqlite().await;
    let sidecar = Sidecar::start(&SQL).await;
    let mut client = raw(&sidecar).await;
    let endless =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c";
    let started = Instant::now();
    let status = run(
        &mut client,
        sql_request(&plant.source, endless, 0),
        Duration::from_millis(500),
    )
    .await
    .expect_err("endless");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        run(
            &mut client,
            sql_request(&plant.source, "SELECT 1", 0),
            Duration::from_secs(5)
        )
        .await
        .is_ok()
    );
    plant.cleanup().await;
}

async fn fifty_thousand_rows_are_cut_at_the_cap(plant: PlantOps, sql: &str) {
    let sidecar = Sidecar::start(&SQL).await;
    let mut client = raw(&sidecar).await;
    let capped = rows(
        run(
            &mut client,
            sql_request(&plant.source, sql, 1000),
            Duration::from_secs(20),
        )
        .await
        .expect("capped"),
    );
    assert_eq!(capped.rows.len(), 1000);
    assert!(capped.truncated);
    // Without a request cap the executor's own limit (10,000 rows) applies.
    let default = rows(
        run(
            &mut client,
            sql_request(&plant.source, sql, 0),
            Duration::from_secs(20),
        )
        .await
        .expect("default cap"),
    );
    assert_eq!(default.rows.len(), 10_000);
    assert!(default.truncated);
    // A small result is not flagged.
    let small = rows(
        run(
            &mut client,
            sql_request(&plant.source, "SELECT ci_code FROM ci_master", 1000),
            Duration::from_secs(5),
        )
        .await
        .expect("small"),
    );
    assert_eq!(small.rows.len(), 64);
    assert!(!small.truncated);
    plant.cleanup().await;
}

#[tokio::test]
async fn row_cap_on_postgres() {
    fifty_thousand_rows_are_cut_at_the_cap(
        PlantOps::postgres().await,
        "SELECT g FROM generate_series(1, 50000) AS g",
    )
    .await;
}

#[tokio::test]
async fn row_cap_on_sqlite() {
    fifty_thousand_rows_are_cut_at_the_cap(
        PlantOps::sqlite().await,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000) SELECT x FROM c",
    )
    .await;
}

#[tokio::test]
async fn the_byte_cap_truncates() {
    let plant = PlantOps::sqlite().await;
    let sidecar = Sidecar::start(&SQL).await;
    let mut client = raw(&sidecar).await;
    let mut request = sql_request(&plant.source, "SELECT content FROM documents", 0);
    if let Some(execute_request::Request::Sql(sql)) = request.request.as_mut() {
        sql.max_bytes = 600;
    }
    let capped = rows(
        run(&mut client, request, Duration::from_secs(5))
            .await
            .expect("bytes"),
    );
    assert!(capped.truncated);
    assert!(
        capped.bytes <= 600 && capped.rows.len() < 12,
        "{} rows, {} bytes",
        capped.rows.len(),
        capped.bytes
    );
    plant.cleanup().await;
}

#[tokio::test]
async fn credentials_never_appear_in_logs_errors_or_responses() {
    const SECRET: &str = "s3cr3t-Pa55word-for-ops-test";
    let pg = PlantOps::postgres().await;
    let my = PlantOps::mysql().await;
    let sidecar = Sidecar::start_with(
        &SQL,
        &[
            ("OPS_TEST_SOURCE_SECRET", SECRET),
            ("OPS_EXECUTOR__LOG__FILTER", "trace"),
        ],
    )
    .await;
    let mut client = raw(&sidecar).await;
    let mut seen = Vec::new();

    // PostgreSQL here trusts local connections, so the password is sent and the query runs.
    let mut source = pg.source.clone();
    source.password_ref = "env:OPS_TEST_SOURCE_SECRET".into();
    let ok = run(
        &mut client,
        sql_request(&source, "SELECT current_user, ci_code FROM ci_master", 5),
        Duration::from_secs(10),
    )
    .await
    .expect("query with a password");
    seen.push(format!("{ok:?}"));
    let test = client
        .test_connection(TestConnectionRequest {
            source: Some(source.clone()),
        })
        .await
        .expect("test connection");
    seen.push(format!("{test:?}"));

    // MariaDB refuses a wrong password for an unknown user: the error must not carry it.
    let mut source = my.source.clone();
    source.user = "ops_nobody".into();
    source.password_ref = "env:OPS_TEST_SOURCE_SECRET".into();
    let denied = run(
        &mut client,
        sql_request(&source, "SELECT 1", 0),
        Duration::from_secs(10),
    )
    .await
    .expect_err("access denied");
    assert!(
        matches!(
            denied.code(),
            Code::PermissionDenied | Code::Unavailable | Code::FailedPrecondition
        ),
        "{denied:?}"
    );
    seen.push(format!("{denied:?}"));

    // A literal password instead of a reference is refused without being echoed.
    let mut source = my.source.clone();
    source.password_ref = SECRET.into();
    let literal = run(
        &mut client,
        sql_request(&source, "SELECT 1", 0),
        Duration::from_secs(10),
    )
    .await
    .expect_err("literal password");
    assert_eq!(literal.code(), Code::InvalidArgument);
    seen.push(format!("{literal:?}"));

    let logs = sidecar.stop_and_logs().await;
    assert!(
        logs.contains("source pool created"),
        "trace logs were captured: {logs}"
    );
    seen.push(logs);
    for text in &seen {
        assert!(!text.contains(SECRET), "the secret leaked: {text}");
    }
    pg.cleanup().await;
    my.cleanup().await;
}

#[tokio::test]
async fn each_sidecar_serves_only_its_kind() {
    let plant = PlantOps::sqlite().await;
    let sidecar = Sidecar::start(&GRAPH).await;
    let mut client = raw(&sidecar).await;
    let status = run(
        &mut client,
        sql_request(&plant.source, "SELECT 1", 0),
        Duration::from_secs(5),
    )
    .await
    .expect_err("sql to the graph executor");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("graph"), "{}", status.message());
    plant.cleanup().await;
}
