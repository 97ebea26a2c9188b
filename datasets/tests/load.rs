//! Loads plant-ops into the real local PostgreSQL and MariaDB servers (see
//! `ops_datasets::testing` for the URLs) and checks what arrived.
#![allow(clippy::expect_used, clippy::panic)]

use ops_datasets::testing;
use sqlx::{AssertSqlSafe, Row};
use time::macros::{datetime, format_description};

const COUNTS: &[(&str, i64)] = &[
    ("ci_master", 64),
    ("ci_relation", 103),
    ("metric_timeseries", 25_872),
    ("events", 437),
    ("documents", 12),
    ("users", 3),
    ("credentials", 2),
];

#[tokio::test]
async fn postgres_load() {
    let db = testing::loaded_postgres().await.expect("loaded postgres");
    println!(
        "load_postgres: {:?} ({} rows) into {}",
        db.report.elapsed,
        db.report.total_rows(),
        db.db_name
    );
    assert!(db.url.ends_with(&db.db_name));
    for (table, n) in COUNTS {
        let count: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&db.pool)
            .await
            .expect("count");
        assert_eq!(count, *n, "{table}");
        assert_eq!(db.report.rows(table), Some(*n as u64), "{table}");
    }

    let row = sqlx::query(
        "SELECT ci_id, ci_name, ci_name_ko, capacity, created_at FROM ci_master
         WHERE tenant_id = 'acme' AND ci_code = 'GT-01'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("GT-01");
    assert_eq!(
        row.get::<uuid::Uuid, _>("ci_id").to_string(),
        "1bf10170-6373-5c06-a495-142737dfc240"
    );
    assert_eq!(row.get::<String, _>("ci_name"), "Gas Turbine Unit 1");
    assert_eq!(row.get::<String, _>("ci_name_ko"), "가스터빈 1호기");
    assert_eq!(row.get::<Option<f64>, _>("capacity"), Some(150.0));
    assert_eq!(
        row.get::<time::OffsetDateTime, _>("created_at"),
        datetime!(2024-05-21 00:00:00 UTC)
    );

    let ip: Option<String> = sqlx::query_scalar(
        "SELECT ip_address FROM ci_master WHERE tenant_id = 'acme' AND ci_code = 'SYS-ERP'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("SYS-ERP");
    assert_eq!(ip, None);

    let (first, last): (time::OffsetDateTime, time::OffsetDateTime) =
        sqlx::query_as("SELECT MIN(ts), MAX(ts) FROM metric_timeseries")
            .fetch_one(&db.pool)
            .await
            .expect("range");
    assert_eq!(first, datetime!(2026-01-17 00:00:00 UTC));
    assert!(last < ops_datasets::plant_ops::ANCHOR_TIME);
    let value: f64 = sqlx::query_scalar(
        "SELECT value FROM metric_timeseries
         WHERE ci_id = '334b23d1-2a80-5580-853c-3b5de5199830' AND metric_name = 'cpu_usage'
           AND ts = '2026-01-17T01:00:00Z'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("metric");
    assert_eq!(value, 41.11);

    db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn mysql_load() {
    let db = testing::loaded_mysql().await.expect("loaded mysql");
    println!(
        "load_mysql: {:?} ({} rows) into {}",
        db.report.elapsed,
        db.report.total_rows(),
        db.db_name
    );
    for (table, n) in COUNTS {
        let count: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&db.pool)
            .await
            .expect("count");
        assert_eq!(count, *n, "{table}");
    }

    let row = sqlx::query(
        "SELECT ci_id, ci_name, ci_name_ko, capacity, created_at FROM ci_master
         WHERE tenant_id = 'acme' AND ci_code = 'GT-01'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("GT-01");
    assert_eq!(
        row.get::<String, _>("ci_id"),
        "1bf10170-6373-5c06-a495-142737dfc240"
    );
    assert_eq!(row.get::<String, _>("ci_name"), "Gas Turbine Unit 1");
    assert_eq!(row.get::<String, _>("ci_name_ko"), "가스터빈 1호기");
    assert_eq!(row.get::<Option<f64>, _>("capacity"), Some(150.0));
    assert_eq!(
        row.get::<time::PrimitiveDateTime, _>("created_at"),
        datetime!(2024-05-21 00:00:00)
    );

    // Korean text round-trips, also as a bound parameter in a comparison.
    let code: String =
        sqlx::query_scalar("SELECT ci_code FROM ci_master WHERE tenant_id = ? AND ci_name_ko = ?")
            .bind("acme")
            .bind("가스터빈 1호기")
            .fetch_one(&db.pool)
            .await
            .expect("by Korean name");
    assert_eq!(code, "GT-01");
    let content: String =
        sqlx::query_scalar("SELECT content FROM documents WHERE doc_id = 'DOC-001'")
            .fetch_one(&db.pool)
            .await
            .expect("DOC-001");
    assert!(content.starts_with("가스터빈(GT) 기동 절차."), "{content}");

    let ip: Option<String> = sqlx::query_scalar(
        "SELECT ip_address FROM ci_master WHERE tenant_id = 'acme' AND ci_code = 'SYS-ERP'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("SYS-ERP");
    assert_eq!(ip, None);

    // DATETIME holds the UTC wall clock of the CSV.
    let ts: time::PrimitiveDateTime = sqlx::query_scalar("SELECT MIN(ts) FROM metric_timeseries")
        .fetch_one(&db.pool)
        .await
        .expect("min ts");
    assert_eq!(
        ts.format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .expect("format"),
        "2026-01-17T00:00:00Z"
    );

    let charset: String = sqlx::query_scalar(
        "SELECT CCSA.character_set_name FROM information_schema.TABLES T
         JOIN information_schema.COLLATION_CHARACTER_SET_APPLICABILITY CCSA
           ON CCSA.collation_name = T.table_collation
         WHERE T.table_schema = DATABASE() AND T.table_name = 'ci_master'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("charset");
    assert_eq!(charset, "utf8mb4");

    // MariaDB ≥ 10.5 honours column-level REFERENCES (MySQL ignores them).
    let fks: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS
         WHERE constraint_schema = DATABASE()",
    )
    .fetch_one(&db.pool)
    .await
    .expect("fks");
    assert_eq!(fks, 4);

    let name = db.db_name.clone();
    let admin_url = db.admin_url.clone();
    db.cleanup().await.expect("cleanup");
    // Gone afterwards.
    let mut admin = <sqlx::MySqlConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .expect("admin");
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE schema_name = ?",
    )
    .bind(&name)
    .fetch_one(&mut admin)
    .await
    .expect("schemata");
    assert_eq!(left, 0);
}

#[tokio::test]
async fn fresh_databases_are_empty_and_dropped() {
    let (pool, name, admin_url) = testing::fresh_postgres().await.expect("fresh postgres");
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&pool)
    .await
    .expect("tables");
    assert_eq!(tables, 0);
    let current: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .expect("current");
    assert_eq!(current, name);
    testing::drop_postgres(pool, &name, &admin_url)
        .await
        .expect("drop");
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .expect("admin");
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .expect("pg_database");
    assert_eq!(left, 0);

    let (pool, name, admin_url) = testing::fresh_mysql().await.expect("fresh mysql");
    let current: String = sqlx::query_scalar("SELECT DATABASE()")
        .fetch_one(&pool)
        .await
        .expect("current");
    assert_eq!(current, name);
    testing::drop_mysql(pool, &name, &admin_url)
        .await
        .expect("drop");
}

/// Bad input fails cleanly: loading twice into the same database names the table.
#[tokio::test]
async fn second_postgres_load_fails_with_context() {
    let db = testing::loaded_postgres().await.expect("loaded postgres");
    let err = ops_datasets::load_postgres(&db.pool)
        .await
        .expect_err("tables exist");
    let msg = err.to_string();
    assert!(
        msg.starts_with("creating the postgres schema: CREATE TABLE ci_master"),
        "{msg}"
    );
    db.cleanup().await.expect("cleanup");
}
