//! The SQL guard corpus against real databases: every statement the corpus allows is prepared
//! for tenant `acme` and run by the real SQL sidecar on plant-ops in its own engine (SQLite,
//! PostgreSQL, MariaDB). It must return exactly what the same statement returns on a copy
//! holding only acme's rows — so no rewrite lets another tenant's row through. The same
//! statement left unscoped is run too, to show how many would have leaked without the guard.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod executor_support;

use std::collections::HashMap;

use executor_support::*;
use ops_controlplane::execute::ExecutorClient;
use ops_controlplane::validate::sql_guard::Dialect;
use ops_controlplane::validate::sql_prepare::{self, Bind, GuardContext};
use ops_proto::executor::{
    ExecuteRequest, SqlRequest, Value, execute_request, execute_response, value::Kind,
};
use ops_proto::executor_api::{CallContext, ExecutorApi};

fn value(v: &serde_yaml::Value) -> Value {
    let kind = match v {
        serde_yaml::Value::Number(n) if n.is_i64() => Kind::IntValue(n.as_i64().unwrap()),
        serde_yaml::Value::Number(n) => Kind::FloatValue(n.as_f64().unwrap()),
        serde_yaml::Value::String(s) => {
            match time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
                Ok(t) => Kind::TimestampValue(ops_proto::convert::timestamp(t)),
                Err(_) => Kind::TextValue(s.clone()),
            }
        }
        other => Kind::TextValue(serde_yaml::to_string(other).unwrap()),
    };
    Value { kind: Some(kind) }
}

fn cell(v: &Value) -> String {
    ops_proto::cells::display(v)
}

/// Sorted rows as text, so row order (unspecified without ORDER BY) does not matter.
async fn rows(
    client: &ExecutorClient,
    plant: &PlantOps,
    sql: &str,
    binds: &[Bind],
    entry: &CorpusEntry,
) -> Result<Vec<String>, String> {
    let params = binds
        .iter()
        .map(|b| match b {
            Bind::Tenant => ops_proto::cells::text("acme"),
            Bind::Param(name) => value(&entry.params[name]),
        })
        .collect();
    let request = ExecuteRequest {
        source: Some(plant.source.clone()),
        request: Some(execute_request::Request::Sql(SqlRequest {
            sql: sql.to_owned(),
            params,
            ..Default::default()
        })),
        trace_id: entry.name.clone(),
    };
    match client.execute(CallContext::default(), request).await {
        Ok(response) => match response.result {
            Some(execute_response::Result::Rows(set)) => {
                let mut out: Vec<String> = set
                    .rows
                    .iter()
                    .map(|r| r.values.iter().map(cell).collect::<Vec<_>>().join("|"))
                    .collect();
                out.sort();
                Ok(out)
            }
            other => Err(format!("{}: not rows: {other:?}", entry.name)),
        },
        Err(e) => Err(format!("{}: {e}\n{sql}", entry.name)),
    }
}

async fn run_engine(
    dialect: Dialect,
    name: &str,
    full: PlantOps,
    acme_only: PlantOps,
) -> (usize, usize) {
    acme_only.keep_only_tenant("acme").await;
    let sidecar = Sidecar::start(&SQL).await;
    let client = client("sql", &[sidecar.uri()], fast_retry());
    let corpus = GuardCorpus::load();
    let scoped = corpus.context(dialect);
    // The same statement with no table scoped: what it would return without the rewrite.
    let no_tenant_columns = HashMap::new();
    let unscoped = GuardContext {
        tenant_columns: &no_tenant_columns,
        global_tables: &corpus.scoped_tables,
        ..scoped
    };
    let (mut checked, mut would_leak) = (0, 0);
    let mut failures = Vec::new();
    for entry in corpus
        .entries
        .iter()
        .filter(|e| e.allowed && e.dialect == name)
    {
        let prepared = sql_prepare::prepare(&entry.sql, &scoped).unwrap_or_else(|r| {
            panic!(
                "{} is allowed by the corpus: {:?}",
                entry.name, r.violations
            )
        });
        let (got, expected) = (
            rows(&client, &full, &prepared.sql, &prepared.binds, entry).await,
            rows(&client, &acme_only, &prepared.sql, &prepared.binds, entry).await,
        );
        match (got, expected) {
            (Ok(got), Ok(expected)) if got == expected => checked += 1,
            (Ok(got), Ok(expected)) => failures.push(format!(
                "{}: {} rows on the full database, {} on acme's alone",
                entry.name,
                got.len(),
                expected.len()
            )),
            (Err(e), _) | (_, Err(e)) => failures.push(e),
        }
        let raw = sql_prepare::prepare(&entry.sql, &unscoped).expect("unscoped");
        let leaked = rows(&client, &full, &raw.sql, &raw.binds, entry).await;
        let acme = rows(&client, &acme_only, &raw.sql, &raw.binds, entry).await;
        if leaked.ok() != acme.ok() {
            would_leak += 1;
        }
    }
    let _ = sidecar.stop_and_logs().await;
    full.cleanup().await;
    acme_only.cleanup().await;
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
    (checked, would_leak)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_corpus_statements_return_only_the_callers_rows_on_every_engine() {
    let mut total = 0;
    let mut leaks = 0;
    for (dialect, name) in [
        (Dialect::Sqlite, "sqlite"),
        (Dialect::Postgres, "postgres"),
        (Dialect::MySql, "mysql"),
    ] {
        let (full, acme_only) = match dialect {
            Dialect::Postgres => (PlantOps::postgres().await, PlantOps::postgres().await),
            Dialect::MySql => (PlantOps::mysql().await, PlantOps::mysql().await),
            _ => (PlantOps::sqlite().await, PlantOps::sqlite().await),
        };
        let (checked, would_leak) = run_engine(dialect, name, full, acme_only).await;
        println!(
            "{name}: {checked} statements scoped, {would_leak} would return other rows unscoped"
        );
        assert!(checked > 0, "{name} has corpus statements");
        total += checked;
        leaks += would_leak;
    }
    println!("{total} allowed statements return only acme's rows; {leaks} would leak unscoped");
    // The comparison can fail: without the rewrite, many statements see other tenants.
    assert!(leaks > 0);
}
